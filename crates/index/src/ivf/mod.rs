//! [`IvfIndex`]: an inverted-file index (k-means lists) whose opened lists are scanned
//! with the int8 prefilter of `quant` and re-scored exactly, sized per query.
//!
//! * Build: k-means (L2, seeded) on a sample of the items, every item to
//!   its nearest centre, except a *head* list of the largest norms that every query
//!   scans first. Lists are stored one after the other, padded to whole blocks of 16,
//!   each sorted by decreasing norm, and quantised once for the int8 kernel.
//! * List order: by `q·c + β‖q‖r` (centre `c`, radius `r` = the largest `‖v − c‖` of
//!   the list, `β` = [`IvfParams::spread_weight`]): an optimistic estimate of the
//!   list's best score. With `β = 1` it is the list's proven bound; `β = 0` is the
//!   classic centre order, which under heavy-tailed norms favours tiny lists of
//!   outliers and misses the wide lists that hold the deeper hits.
//! * How much to scan: in [`SearchMode::Target`] (the default) a query opens lists
//!   until it has opened the number of items that the index's calibration (below)
//!   measured to reach the recall target at the query's depth (`k`, deepened by the
//!   share a filter excludes). When the admissible items are so few that scoring them
//!   one by one is cheaper than that, the query is an exact scan over them.
//!   [`SearchMode::Probes`] opens a fixed number of lists instead.
//! * Scanning: one exact top-k over the opened lists (shared k-th bound across lists,
//!   exact `f32` re-scoring of the few candidates). Exact skips on top: a list whose
//!   proven bound (`q·c + ‖q‖r`, or `‖q‖ ·` its largest norm) cannot reach the k-th
//!   score proven so far is not scanned, and a list stops once the norms left cannot.
//!   Within the opened lists the answer is exact — same scores, bit for bit, as
//!   [`ExactIndex`], same tie order — so recall is lost only to lists not opened.
//! * Filters: a short exclusion list is mapped to stored positions and masked inside
//!   the scan; a long one, an allow-list the scan handles, or an
//!   [`ItemBitmap`] are tested item by item in the scan (one bit
//!   each).
//! * Memory: the `f32` items once (permuted) plus one byte per coordinate; no graph.
//! * Persistence: safetensors with the items in their original order, the centres,
//!   each item's list and the calibration table; loading re-lays out and
//!   re-quantises (linear time, no k-means).
//!
//! Without AVX-512 VNNI the opened lists are scored in `f32`, eight items at a time.
//!
//! # Calibration
//!
//! For a sample of queries (or several samples: the table keeps the lowest mean
//! recall of the samples at every point), every list is ranked as a search ranks
//! them (head first, then by the list key), and each of the exact top-`K` items gets
//! its *opening position*: the number of items opened before its list (0 for a head
//! item). A search with budget `B` opens lists while it has opened fewer than `B`
//! items, so it finds exactly the items of position `< B`; the recall@k at `B` is the
//! share of the top-k found, and the table keeps, by `k` (a ladder 10, 30, 100, 300,
//! 1000) and `B` (geometric steps up to every item), the lower 97.5 % confidence bound
//! of its mean over the queries (mean − 1.96 standard errors): the recall new queries
//! of the same kind reach, not only the ones measured.
//!
//! A search with target `t` opens the smallest `B` whose recall reaches `t` at its
//! *depth* — `k` without a filter; under a filter that leaves `a` of `n` items and
//! excludes `e`, `k · n / a + min(e, k)`: with a random filter the admissible top-k
//! lie about as deep as the unfiltered top-`k·n/a`, and the second term covers
//! exclusions that hit the top itself (a user's seen items) — the smallest measured
//! `B` that reaches it (recall grows in steps, a list at a time), interpolated in
//! `log k` between the measured k and proportionally beyond the largest; and never
//! fewer items than hold `k` admissible ones. A search whose opened lists still hold
//! fewer than `k` admissible items opens twice as many, up to every list.

mod calibration;
mod file;
mod layout;
mod params;
mod search;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::Path;

use rayon::prelude::*;
use safetensors::tensor::Dtype;
use shortlist_core::Rng;

use crate::bitmap::ItemBitmap;
use crate::error::{Error, Result};
use crate::exact::ExactIndex;
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::kernel::{Kernel, BLOCK};
use crate::persist;
use crate::quant::{self, up, Int8Items, Range};
use crate::recall::RecallTarget;
use crate::select::{sanitize, Admissible, TopK};

pub(crate) use calibration::Calibration;
use layout::norm;
pub use params::{IvfParams, SearchMode};
use search::{range_len, Budget};

/// Value of the `format` metadata key of a saved IVF index.
pub const FORMAT: &str = "shortlist.ivf-index";
/// Value of the `version` metadata key written by this crate (version 1, without the
/// calibration table, is still read: it is measured at load).
pub const FORMAT_VERSION: &str = "2";

/// Unit roundoff of `f32`.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Cost of scoring one admissible item exactly, in items scanned by the int8 kernel
/// (measured: ≈ 10 ns against ≈ 1 ns per scanned item): a filtered query whose
/// admissible items times this is below its budget is an exact scan over them.
const EXACT_COST: f64 = 8.0;

/// The head sizes a build tries, as multiples of [`IvfParams::head_fraction`].
const HEAD_STEPS: [f64; 4] = [0.125, 0.25, 0.5, 1.0];

/// [`IvfIndex::calibrate`] measures at most this many queries.
pub const MAX_CALIBRATION_QUERIES: usize = 256;

/// An exclusion list longer than `n / LONG_EXCLUSION` is tested as a bitmap during the
/// scan instead of being mapped to sorted positions.
const LONG_EXCLUSION: usize = 256;

/// Inverted-file index: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct IvfIndex {
    dim: usize,
    n: usize,
    mode: SearchMode,
    spread_weight: f64,
    /// `lists × dim`, the k-means centres.
    centroids: Vec<f32>,
    /// `lists × (dim + 1)`: each centre with `β r` appended, so that the exact index
    /// ranks lists by `q·c + β‖q‖r` for the query `[q, ‖q‖]`.
    coarse: ExactIndex,
    /// `‖[c, βr]‖` per list, rounded up (rounding slack of the list bound).
    coarse_norm: Vec<f32>,
    /// Per list: the largest `‖v − c‖`, rounded up.
    radius: Vec<f32>,
    /// Per list (the head last): its blocks, where its padding starts, largest norm.
    ranges: Vec<Range>,
    /// `positions × dim`, the items list after list (padding rows are zero).
    items: Vec<f32>,
    /// Item number at each stored position (`u32::MAX` for padding).
    ids: Vec<u32>,
    /// Stored position of each item.
    pos: Vec<u32>,
    int8: Option<Int8Items>,
    calibration: Calibration,
    /// The centres as [`layout::nearest`] searches them, made on the first
    /// [`IvfIndex::lists_of`] (items added while serving).
    centres: std::sync::OnceLock<ExactIndex>,
}

impl IvfIndex {
    /// Builds an index over `items` (`n × dim`, row-major, finite), calibrated without
    /// the model's queries: [`IvfParams::calibration_queries`] queries of each of two
    /// kinds, keeping the lower recall of the two at every point — sampled items as
    /// unit vectors (item-to-item queries), and random Gaussian combinations of eight
    /// unit items (queries spread like the catalogue's directions, not tied to one
    /// item). [`build_with_queries`](Self::build_with_queries) calibrates with real
    /// queries instead.
    pub fn build(items: &[f32], dim: usize, params: IvfParams) -> Result<Self> {
        Self::build_with_queries(items, dim, params, None)
    }

    /// [`build`](Self::build), calibrated with `queries` (`m × dim`, e.g. the model's
    /// user vectors, see [`calibrate`](Self::calibrate)) when given.
    pub fn build_with_queries(
        items: &[f32],
        dim: usize,
        params: IvfParams,
        queries: Option<&[f32]>,
    ) -> Result<Self> {
        params.validate()?;
        let n = crate::index_base::item_count(items.len(), dim)?;
        crate::index_base::check_finite(items, dim)?;
        let lists = params.lists_for(n);
        let centroids = layout::kmeans(items, dim, lists, &params)?;
        let nearest = if n == 0 {
            Vec::new()
        } else {
            layout::nearest(items, dim, &centroids)?
        };
        let mode = if params.probes > 0 {
            SearchMode::Probes(params.probes)
        } else {
            SearchMode::Target(RecallTarget::default())
        };
        let (thinned, from_items);
        let groups: Vec<&[f32]> = match queries {
            Some(q) => {
                thinned = thin_out(q, dim)?;
                vec![&thinned]
            }
            None => {
                from_items = sample_queries(items, dim, params.calibration_queries, params.seed);
                vec![&from_items.0, &from_items.1]
            }
        };
        // The head's size: each candidate fraction is laid out and calibrated, and the
        // one whose calibration opens the fewest items (summed over k = 10 and 100 at
        // the default target) is kept. How deep a catalogue's top scores reach
        // into its norm outliers differs by model: on a trained 1M-item tower the
        // top-100 needed a head four times the size that suits the synthetic sets.
        let fractions: Vec<f64> = if params.tune_head && params.head_fraction > 0.0 {
            HEAD_STEPS
                .iter()
                .map(|s| params.head_fraction * s)
                .collect()
        } else {
            vec![params.head_fraction]
        };
        let norms: Vec<f64> = items.chunks_exact(dim).map(norm).collect();
        let mut best: Option<(f64, IvfIndex)> = None;
        let mut last_len = None;
        for fraction in fractions {
            let (assign, head) = layout::with_head(
                &norms,
                lists,
                nearest.clone(),
                fraction,
                params.head_norm_ratio,
            );
            if last_len == Some(head) {
                continue; // the norm floor capped the head: the same layout again
            }
            last_len = Some(head);
            let mut index = Self::from_parts(
                items,
                dim,
                centroids.clone(),
                &assign,
                params.spread_weight,
                mode.clone(),
            )?;
            index.calibration = Calibration::measure(&index, &groups)?;
            let cost = index.calibrated_cost();
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, index));
            }
        }
        best.map(|(_, index)| index)
            .ok_or_else(|| Error::invalid("head_fraction", "no layout was built"))
    }

    /// The items a query opens by the calibration at the default target, summed over
    /// k = 10 and 100 (those `≤ n`): what the build minimises over head sizes. A sum,
    /// not a mean of ratios, so that the deeper query the pipeline asks for (100
    /// candidates) weighs most.
    fn calibrated_cost(&self) -> f64 {
        let t = crate::recall::DEFAULT_RECALL_TARGET;
        [10usize, 100]
            .into_iter()
            .filter(|&k| k <= self.n)
            .map(|k| self.calibration.budget(k as f64, t).min(self.n as f64))
            .sum()
    }

    /// Lays out the lists of a trained index (`assign[i] ≤ lists`); the calibration
    /// is left empty (to be measured).
    fn from_parts(
        items: &[f32],
        dim: usize,
        centroids: Vec<f32>,
        assign: &[u32],
        spread_weight: f64,
        mode: SearchMode,
    ) -> Result<Self> {
        let n = items.len() / dim;
        let lay = layout::lay_out(items, dim, &centroids, assign);
        let beta = spread_weight as f32;
        let aug: Vec<f32> = centroids
            .chunks_exact(dim)
            .zip(&lay.radius)
            .flat_map(|(c, &r)| c.iter().copied().chain([beta * r]))
            .collect();
        let coarse_norm = aug.chunks_exact(dim + 1).map(|c| up(norm(c))).collect();
        let int8 = if quant::available() {
            Int8Items::new(&lay.items, dim)
        } else {
            None
        };
        Ok(IvfIndex {
            dim,
            n,
            mode,
            spread_weight,
            centroids,
            coarse: ExactIndex::new(aug, dim + 1)?,
            coarse_norm,
            radius: lay.radius,
            ranges: lay.ranges,
            items: lay.items,
            ids: lay.ids,
            pos: lay.pos,
            int8,
            calibration: Calibration::empty(),
            centres: std::sync::OnceLock::new(),
        })
    }

    /// Re-measures the calibration with `queries` (`m × dim`, `m ≥ 1`, e.g. the model's
    /// user vectors; more than [`MAX_CALIBRATION_QUERIES`] are thinned out evenly):
    /// the recall a query reaches for each number of items opened (see the
    /// [module docs](self)).
    pub fn calibrate(&mut self, queries: &[f32]) -> Result<()> {
        let queries = thin_out(queries, self.dim)?;
        self.calibration = Calibration::measure(self, &[&queries])?;
        Ok(())
    }

    /// Calibrates without the model's queries (see [`build`](Self::build)).
    fn calibrate_from_items(&mut self, items: &[f32], count: usize, seed: u64) -> Result<()> {
        let (like_items, mixed) = sample_queries(items, self.dim, count, seed);
        self.calibration = Calibration::measure(self, &[&like_items, &mixed])?;
        Ok(())
    }

    /// The measured recall table: per k, `(items opened, mean recall@k)`.
    pub fn calibration_table(&self) -> Vec<(usize, Vec<(usize, f64)>)> {
        self.calibration.table()
    }

    /// Number of k-means lists (the head list not counted).
    pub fn lists(&self) -> usize {
        self.ranges.len() - 1
    }

    /// Items in the head list (scanned by every query).
    pub fn head_len(&self) -> usize {
        range_len(&self.ranges[self.lists()])
    }

    /// How queries are sized.
    pub fn mode(&self) -> &SearchMode {
        &self.mode
    }

    /// Opens a fixed number of lists per query (clamped to `1..=lists`).
    pub fn set_probes(&mut self, probes: usize) {
        self.mode = SearchMode::Probes(probes.clamp(1, self.lists().max(1)));
    }

    /// Sizes each query from `target` (the default mode).
    pub fn set_recall_target(&mut self, target: RecallTarget) {
        self.mode = SearchMode::Target(target);
    }

    /// Sizes of the k-means lists (items per list; the head not included).
    pub fn list_sizes(&self) -> Vec<usize> {
        self.ranges[..self.lists()].iter().map(range_len).collect()
    }

    /// Bytes held in memory (items, int8 copy, centres, maps), approximately.
    pub fn memory_bytes(&self) -> usize {
        let positions = self.ids.len();
        positions * self.dim * 5
            + positions * 16
            + self.n * 8
            + self.coarse.items().len() * 4 * 3
            + self.ranges.len() * std::mem::size_of::<Range>()
    }

    /// For calibration: the opening positions (see [`calibration`]) of the exact
    /// top-`k` of each query (`m × dim`), in rank order.
    fn opening_positions(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<u32>>> {
        let lists = self.lists();
        // The exact answers in batches (one pass over memory per 32 queries).
        let tops: Vec<Vec<u32>> = queries
            .par_chunks(32 * self.dim)
            .map(|chunk| self.exact_batch(chunk, k))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        queries
            .par_chunks_exact(self.dim)
            .zip(tops)
            .map(|(query, top)| {
                let order = self.open(query, &Budget::Lists(lists))?;
                // Items opened before each list (a search opens lists while it has
                // opened fewer items than its budget).
                let mut opened_at = vec![0u32; lists + 1];
                let mut opened = 0u32;
                for r in order.iter().filter(|r| range_len(r) > 0) {
                    // The list whose blocks start there.
                    opened_at[self.list_at(r.blocks.start * BLOCK)] = opened;
                    opened += range_len(r) as u32;
                }
                Ok(top
                    .iter()
                    .map(|&item| opened_at[self.list_at(self.pos[item as usize] as usize)])
                    .collect())
            })
            .collect()
    }

    /// The exact top-`k` items (as numbers, best first) of each query of `queries`:
    /// the int8 kernel's batch path over every stored position (padding excluded;
    /// ties may come in position rather than item order, which calibration ignores),
    /// else every list opened, one query at a time.
    fn exact_batch(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<u32>>> {
        let m = queries.len() / self.dim;
        let mut found: Vec<Option<Vec<Hit>>> = vec![None; m];
        if let Some(t) = &self.int8 {
            let padding: Vec<u32> = (0..self.ids.len() as u32)
                .filter(|&p| self.ids[p as usize] == u32::MAX)
                .collect();
            let adms = vec![Admissible::excluding_sorted(Cow::Borrowed(&padding[..])); m];
            found = quant::search(t, &self.items, queries, adms, k);
            for hits in found.iter_mut().flatten() {
                for h in hits.iter_mut() {
                    h.item = self.ids[h.item as usize];
                }
            }
        }
        queries
            .chunks_exact(self.dim)
            .zip(found)
            .map(|(q, hits)| {
                let hits = match hits {
                    Some(h) => h,
                    None => {
                        self.search_mode(q, k, &Filter::None, &SearchMode::Probes(self.lists()))?
                    }
                };
                Ok(hits.iter().map(|h| h.item).collect())
            })
            .collect()
    }

    /// The list (the head is `lists`) holding stored position `p`.
    fn list_at(&self, p: usize) -> usize {
        let l = self.ranges.partition_point(|r| r.blocks.end * BLOCK <= p);
        // Empty lists share their start with the next one: the partition finds the
        // first range ending after `p`, which is the non-empty one holding it.
        l.min(self.ranges.len() - 1)
    }
}

/// `queries` (`m × dim`, `m ≥ 1`) thinned out evenly to at most
/// [`MAX_CALIBRATION_QUERIES`].
fn thin_out(queries: &[f32], dim: usize) -> Result<Cow<'_, [f32]>> {
    crate::index_base::check_queries(queries.len(), dim)?;
    let m = queries.len() / dim;
    if m == 0 {
        return Err(Error::invalid(
            "queries",
            "calibration needs at least one query",
        ));
    }
    let step = m.div_ceil(MAX_CALIBRATION_QUERIES);
    Ok(if step > 1 {
        Cow::Owned(
            queries
                .chunks_exact(dim)
                .step_by(step)
                .flatten()
                .copied()
                .collect(),
        )
    } else {
        Cow::Borrowed(queries)
    })
}

/// Calibration queries from the items (see [`IvfIndex::build`]):
/// `(unit items, Gaussian combinations of unit items)`, `count` each (zero items
/// skipped; the first axis when nothing is left, e.g. an empty catalogue).
fn sample_queries(items: &[f32], dim: usize, count: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let n = items.len() / dim;
    let mut rng = Rng::new(seed ^ 0xCA11_B4A7);
    let unit = |rng: &mut Rng| -> Option<Vec<f64>> {
        let i = rng.below(n as u64) as usize;
        let v = &items[i * dim..(i + 1) * dim];
        let len = norm(v);
        (len > 0.0).then(|| v.iter().map(|&x| f64::from(x) / len).collect())
    };
    let (mut like_items, mut mixed) = (Vec::with_capacity(count * dim), Vec::new());
    for _ in 0..count.min(n) {
        if let Some(v) = unit(&mut rng) {
            like_items.extend(v.iter().map(|&x| x as f32));
        }
        let mut sum = vec![0f64; dim];
        for _ in 0..8 {
            let g = rng.normal();
            if let Some(v) = unit(&mut rng) {
                sum.iter_mut().zip(&v).for_each(|(s, x)| *s += g * x);
            }
        }
        if sum.iter().any(|&x| x != 0.0) {
            mixed.extend(sum.iter().map(|&x| x as f32));
        }
    }
    for group in [&mut like_items, &mut mixed] {
        if group.is_empty() {
            group.resize(dim, 0.0);
            group[0] = 1.0;
        }
    }
    (like_items, mixed)
}
