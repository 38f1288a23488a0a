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
mod layout;
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

/// [`IvfIndex::calibrate`] measures at most this many queries.
pub const MAX_CALIBRATION_QUERIES: usize = 256;

/// An exclusion list longer than `n / LONG_EXCLUSION` is tested as a bitmap during the
/// scan instead of being mapped to sorted positions.
const LONG_EXCLUSION: usize = 256;

/// Build parameters of an [`IvfIndex`] (a configuration's `[index.ivf]`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IvfParams {
    /// Number of lists (k-means centres); 0 picks `4 · √n`. More lists: each scans
    /// fewer items, the list order costs more per query.
    pub lists: usize,
    /// Lists opened per query when non-zero ([`SearchMode::Probes`]); 0 (the default)
    /// sizes each query from the recall target instead ([`SearchMode::Target`]).
    pub probes: usize,
    /// k-means iterations. Default 10.
    pub iterations: usize,
    /// k-means trains on at most this many items per list (a seeded sample). Default 64.
    pub sample_per_list: usize,
    /// At most this fraction of the items, those of largest norm, is kept in a head
    /// list that every query scans first. With popularity-driven norms (trained
    /// towers) the top scores come mostly from these items, wherever their k-means
    /// list lies; the head also proves a high k-th score early, so lists whose bound
    /// cannot reach it are skipped exactly. Default 0.005; 0 turns it off.
    pub head_fraction: f64,
    /// Only items whose norm is at least this many times the median norm go to the
    /// head: without outliers of norm (norms within a factor of two, say) a head only
    /// adds work to every query. Default 2.
    pub head_norm_ratio: f64,
    /// `β` of the list order `q·c + β‖q‖r` (see the [module docs](self)), in `[0, 1]`.
    /// Default 0.25.
    pub spread_weight: f64,
    /// Queries of each of two kinds (see [`IvfIndex::build`]) the build calibrates
    /// with when the caller gives none. Default 128.
    pub calibration_queries: usize,
    /// Seed of the sample, the initial centres and the calibration queries.
    pub seed: u64,
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams {
            lists: 0,
            probes: 0,
            iterations: 10,
            sample_per_list: 64,
            head_fraction: 0.005,
            head_norm_ratio: 2.0,
            spread_weight: 0.25,
            calibration_queries: 128,
            seed: 42,
        }
    }
}

impl IvfParams {
    /// The number of lists for `n` items (resolving `lists = 0`), at least 1 and at
    /// most `n`.
    pub fn lists_for(&self, n: usize) -> usize {
        let lists = if self.lists == 0 {
            (4.0 * (n as f64).sqrt()).round() as usize
        } else {
            self.lists
        };
        lists.clamp(1, n.max(1))
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.iterations == 0 {
            return Err(Error::invalid("iterations", "must be at least 1, got 0"));
        }
        for (name, v) in [
            ("head_fraction", self.head_fraction),
            ("spread_weight", self.spread_weight),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(
                    name,
                    format!("must be within [0, 1], got {v}"),
                ));
            }
        }
        if !(self.head_norm_ratio >= 0.0 && self.head_norm_ratio.is_finite()) {
            return Err(Error::invalid(
                "head_norm_ratio",
                format!("must be a finite number ≥ 0, got {}", self.head_norm_ratio),
            ));
        }
        if self.sample_per_list == 0 {
            return Err(Error::invalid(
                "sample_per_list",
                "must be at least 1, got 0",
            ));
        }
        if self.calibration_queries == 0 {
            return Err(Error::invalid(
                "calibration_queries",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// How much of the index a query scans.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchMode {
    /// Open as many items as the calibration says reach this mean recall at the
    /// query's depth (the default, [`RecallTarget::default`]).
    Target(RecallTarget),
    /// Open this many lists (by the list order), whatever `k` and the filter.
    Probes(usize),
}

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
        let assign = layout::assign(
            items,
            dim,
            &centroids,
            params.head_fraction,
            params.head_norm_ratio,
        )?;
        let mode = if params.probes > 0 {
            SearchMode::Probes(params.probes)
        } else {
            SearchMode::Target(RecallTarget::default())
        };
        let mut index =
            Self::from_parts(items, dim, centroids, &assign, params.spread_weight, mode)?;
        match queries {
            Some(q) => index.calibrate(q)?,
            None => index.calibrate_from_items(items, params.calibration_queries, params.seed)?,
        }
        Ok(index)
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
        })
    }

    /// Re-measures the calibration with `queries` (`m × dim`, `m ≥ 1`, e.g. the model's
    /// user vectors; more than [`MAX_CALIBRATION_QUERIES`] are thinned out evenly):
    /// the recall a query reaches for each number of items opened (see the
    /// [module docs](self)).
    pub fn calibrate(&mut self, queries: &[f32]) -> Result<()> {
        crate::index_base::check_queries(queries.len(), self.dim)?;
        let m = queries.len() / self.dim;
        if m == 0 {
            return Err(Error::invalid(
                "queries",
                "calibration needs at least one query",
            ));
        }
        let step = m.div_ceil(MAX_CALIBRATION_QUERIES);
        let thinned: Vec<f32>;
        let queries = if step > 1 {
            thinned = queries
                .chunks_exact(self.dim)
                .step_by(step)
                .flatten()
                .copied()
                .collect();
            &thinned[..]
        } else {
            queries
        };
        self.calibration = Calibration::measure(self, &[queries])?;
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

    /// [`TopKIndex::search`] opening `probes` lists.
    pub fn search_probes(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        probes: usize,
    ) -> Result<Vec<Hit>> {
        self.search_mode(query, k, filter, &SearchMode::Probes(probes))
    }

    /// [`TopKIndex::search`] sized by `mode`.
    pub fn search_mode(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        mode: &SearchMode,
    ) -> Result<Vec<Hit>> {
        crate::index_base::check_query(query.len(), self.dim)?;
        let adm = Admissible::prepare(filter, self.n)?;
        if k == 0 || self.n == 0 {
            return Ok(Vec::new());
        }
        let admissible = adm.admissible_count(self.n);
        if admissible == 0 {
            return Ok(Vec::new());
        }
        let budget = match mode {
            SearchMode::Probes(p) => Budget::Lists((*p).clamp(1, self.lists())),
            SearchMode::Target(t) => {
                // At least as many items as hold `k` admissible ones on average.
                let depth = calibration::depth(k, admissible, self.n);
                let needed = k as f64 * self.n as f64 / admissible as f64;
                Budget::Items(self.calibration.budget(depth, t.for_k(k)).max(needed))
            }
        };
        let exact_is_cheaper = match budget {
            Budget::Items(b) => admissible as f64 * EXACT_COST <= b.min(self.n as f64),
            // A fixed number of lists: allow-lists are scored exactly, as always.
            Budget::Lists(_) => adm.allow_list().is_some(),
        };
        if exact_is_cheaper {
            return Ok(self.search_allowed(query, k, &self.admissible_items(&adm)));
        }
        // The filter over stored positions: short exclusion lists mapped and sorted,
        // everything else tested against a bitmap of items.
        let owned;
        let bitmap = match (adm.bitmap(), adm.allow_list()) {
            (Some(b), _) => Some(b),
            (None, Some(allowed)) => {
                owned = ItemBitmap::allowing(self.n, allowed)?;
                Some(&owned)
            }
            (None, None) if adm.excluded().len() > self.n / LONG_EXCLUSION => {
                owned = ItemBitmap::excluding(self.n, adm.excluded());
                Some(&owned)
            }
            (None, None) => None,
        };
        let scan_adm = match bitmap {
            Some(b) => Admissible::prepare(&Filter::AllowBitmap(b), self.n)?,
            None => {
                let mut p: Vec<u32> = adm
                    .excluded()
                    .iter()
                    .filter(|&&i| (i as usize) < self.n)
                    .map(|&i| self.pos[i as usize])
                    .collect();
                p.sort_unstable();
                Admissible::excluding_sorted(Cow::Owned(p))
            }
        };
        let mut budget = budget;
        loop {
            let ranges = self.open(query, &budget)?;
            let all = ranges.len() >= self.lists() + usize::from(self.head_len() > 0);
            let hits = self.scan(query, k, &scan_adm, &ranges);
            // Never short: when the opened lists held fewer admissible items than asked
            // for (a strict filter, small lists), open twice as much, up to every list.
            if hits.len() >= k.min(admissible) || all {
                return Ok(hits);
            }
            budget = match budget {
                Budget::Lists(p) => Budget::Lists((p * 2).min(self.lists())),
                Budget::Items(b) => Budget::Items((b * 2.0).min(self.n as f64)),
            };
        }
    }

    /// One exact top-`k` over `ranges` (`adm` filters stored positions, or items for a
    /// bitmap): the int8 kernel, or `f32` for a query it cannot take.
    fn scan(&self, query: &[f32], k: usize, adm: &Admissible<'_>, ranges: &[Range]) -> Vec<Hit> {
        if let Some(t) = &self.int8 {
            let found =
                quant::search_ranges(t, &self.items, &self.ids, query, adm.clone(), k, ranges);
            if let Some(hits) = found {
                return hits;
            }
        }
        self.scan_f32(query, k, adm, ranges)
    }

    /// The lists a query opens, head first, each with its bound for this query.
    fn open(&self, query: &[f32], budget: &Budget) -> Result<Vec<Range>> {
        let lists = self.lists();
        let qn = norm(query);
        let nu = qn as f32;
        let mut aug = Vec::with_capacity(self.dim + 1);
        aug.extend_from_slice(query);
        aug.push(nu);
        // Every list's key `q·c + β ν r`, then the best ones in order, as many as the
        // budget needs (a partial selection, extended if the estimate falls short).
        let mut rows = Vec::new();
        Kernel::best().score_all(self.coarse.packed(), &aug, &mut rows);
        let score = |l: usize| sanitize(rows[l / BLOCK].0[l % BLOCK]);
        let key_of = |l: usize| quant::key(score(l), l as u32);
        let head = &self.ranges[lists];
        let mut out: Vec<Range> = Vec::new();
        if !head.blocks.is_empty() {
            out.push(head.clone());
        }
        let (m, want) = match *budget {
            Budget::Lists(p) => (p.min(lists), f64::INFINITY),
            Budget::Items(b) => {
                let mean = (self.n.saturating_sub(self.head_len()) as f64 / lists as f64).max(1.0);
                let m = ((b - self.head_len() as f64).max(0.0) / mean * 2.0).ceil() as usize + 8;
                (m.min(lists), b)
            }
        };
        let finite = query.iter().all(|x| x.is_finite());
        let mut opened = self.head_len() as f64;
        // Opens lists in key order until the budget is met; true when it is.
        let mut walk = |keys: &[u64], out: &mut Vec<Range>| {
            for &x in keys {
                if opened >= want {
                    return true;
                }
                let l = x as u32 as usize;
                let mut r = self.ranges[l].clone();
                if finite {
                    r.bound = self.list_bound(l, score(l), qn, nu);
                }
                opened += range_len(&r) as f64;
                out.push(r);
            }
            opened >= want
        };
        // The best `m` lists through a bounded heap (one comparison for most lists),
        // enough for the budget as estimated; the rest in order only if it falls short.
        let mut heap = std::collections::BinaryHeap::with_capacity(m + 1);
        // The score of the worst list kept: most lists fail this one comparison.
        let mut floor = f32::NEG_INFINITY;
        for l in 0..lists {
            if heap.len() >= m && score(l) < floor {
                continue;
            }
            let x = key_of(l);
            if heap.len() < m {
                heap.push(x);
            } else if let Some(mut worst) = heap.peek_mut().filter(|w| x < **w) {
                *worst = x;
            }
            if heap.len() >= m {
                floor = heap
                    .peek()
                    .map_or(f32::NEG_INFINITY, |&w| quant::unkey(w).score);
            }
        }
        let first = heap.into_sorted_vec();
        if walk(&first, &mut out) || matches!(budget, Budget::Lists(_)) || m >= lists {
            return Ok(out);
        }
        let last = first.last().copied();
        let mut rest: Vec<u64> = (0..lists)
            .map(key_of)
            .filter(|&x| last.is_none_or(|l| x > l))
            .collect();
        rest.sort_unstable();
        walk(&rest, &mut out);
        Ok(out)
    }

    /// A proven upper bound on the `f32` score of every item of list `l` for a query of
    /// norm `qn` whose list score (`q·c + β ν r`, `ν = f32(qn)`, an fma chain) is `s`:
    /// `q·v ≤ q·c + ‖q‖ r`, plus the rounding of `s` and of the item's own score.
    fn list_bound(&self, l: usize, s: f32, qn: f64, nu: f32) -> f64 {
        let d = self.dim as f64;
        let s = f64::from(s);
        let rho = f64::from(self.spread_weight as f32 * self.radius[l]);
        let q_aug = (qn * qn + f64::from(nu) * f64::from(nu)).sqrt();
        let coarse_err = (d + 5.0) * 2.0 * U * q_aug * f64::from(self.coarse_norm[l]);
        let item_err = (d + 4.0) * 2.0 * U * qn * f64::from(self.ranges[l].max_norm);
        let b = s + coarse_err - f64::from(nu) * rho + qn * f64::from(self.radius[l]) + item_err;
        b + b.abs() * 1e-6 + f64::from(f32::MIN_POSITIVE)
    }

    /// The admissible items of a prepared filter, ascending.
    fn admissible_items(&self, adm: &Admissible<'_>) -> Vec<u32> {
        if let Some(allowed) = adm.allow_list() {
            return allowed.to_vec();
        }
        if let Some(b) = adm.bitmap() {
            return b.iter().collect();
        }
        (0..self.n as u32).filter(|&i| adm.admits(i)).collect()
    }

    /// The probed lists in `f32`, eight items at a time (no VNNI, or a query the int8
    /// path cannot quantise). `adm` filters stored positions (a bitmap: their items).
    fn scan_f32(
        &self,
        query: &[f32],
        k: usize,
        adm: &Admissible<'_>,
        ranges: &[Range],
    ) -> Vec<Hit> {
        let mut top = TopK::new(k, k.saturating_mul(4));
        let mut which = Vec::with_capacity(4096);
        let mut scores = Vec::with_capacity(4096);
        let admits = |p: usize| match adm.bitmap() {
            Some(b) => b.contains(self.ids[p]),
            None => adm.admits(p as u32),
        };
        for r in ranges {
            which.clear();
            which.extend(
                (r.blocks.start * BLOCK..r.valid_end)
                    .filter(|&p| admits(p))
                    .map(|p| p as u32),
            );
            quant::exact_scores(&self.items, self.dim, query, &which, &mut scores);
            for (&p, &s) in which.iter().zip(&scores) {
                top.push(Hit {
                    item: self.ids[p as usize],
                    score: sanitize(s),
                });
            }
        }
        top.into_sorted()
    }

    /// Scores only the allowed items (sorted, deduplicated, in range).
    fn search_allowed(&self, query: &[f32], k: usize, allowed: &[u32]) -> Vec<Hit> {
        let mut top = TopK::new(k, allowed.len());
        let mut which = Vec::with_capacity(allowed.len().min(4096));
        let mut scores = Vec::with_capacity(allowed.len().min(4096));
        for chunk in allowed.chunks(4096) {
            which.clear();
            which.extend(chunk.iter().map(|&i| self.pos[i as usize]));
            quant::exact_scores(&self.items, self.dim, query, &which, &mut scores);
            for (&item, &s) in chunk.iter().zip(&scores) {
                top.push(Hit {
                    item,
                    score: sanitize(s),
                });
            }
        }
        top.into_sorted()
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

    /// The items in their original order (`n × dim`) and the list of each (the head
    /// is list `lists`).
    fn original_order(&self) -> (Vec<f32>, Vec<u32>) {
        let mut items = vec![0f32; self.n * self.dim];
        let mut assign = vec![0u32; self.n];
        for (l, r) in self.ranges.iter().enumerate() {
            for p in r.blocks.start * BLOCK..r.valid_end {
                let i = self.ids[p] as usize;
                assign[i] = l as u32;
                items[i * self.dim..(i + 1) * self.dim]
                    .copy_from_slice(&self.items[p * self.dim..(p + 1) * self.dim]);
            }
        }
        (items, assign)
    }

    /// Saves the index as safetensors at `path` (atomically: temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let (items, assign) = self.original_order();
        let (items_b, cent_b, assign_b) = (
            persist::f32_bytes(&items),
            persist::f32_bytes(&self.centroids),
            persist::u32_bytes(&assign),
        );
        let calib = self.calibration.to_bytes();
        let mut tensors: Vec<(&str, Dtype, Vec<usize>, &[u8])> = vec![
            ("items", Dtype::F32, vec![self.n, self.dim], &items_b),
            (
                "centroids",
                Dtype::F32,
                vec![self.lists(), self.dim],
                &cent_b,
            ),
            ("assign", Dtype::U32, vec![self.n], &assign_b),
        ];
        for ((name, dtype), (shape, bytes)) in Calibration::TENSORS.iter().zip(&calib) {
            tensors.push((name, *dtype, shape.clone(), bytes));
        }
        let (probes, target) = match &self.mode {
            SearchMode::Probes(p) => (*p, RecallTarget::default()),
            SearchMode::Target(t) => (0, t.clone()),
        };
        persist::write(
            path,
            &tensors,
            FORMAT,
            FORMAT_VERSION,
            &[
                ("probes", probes.to_string()),
                ("recall_target", target.to_string()),
                ("spread_weight", self.spread_weight.to_string()),
            ],
        )
    }

    /// Loads an index written by [`save`](Self::save) (or by the version-1 format,
    /// whose calibration is then measured with sampled items). A missing, truncated
    /// or corrupt file, or one that holds something else, is an error naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let file = persist::open(path, &bytes, FORMAT, &["1", FORMAT_VERSION])?;
        let meta = |key: &str| file.meta.get(key).map(String::as_str);
        let parse_err = |key: &str, what: &str| {
            persist::bad(
                path,
                format!("metadata `{key}` is {:?}, expected {what}", meta(key)),
            )
        };
        let probes: usize = meta("probes")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| parse_err("probes", "an integer"))?;
        let v1 = meta("version") == Some("1");
        let (spread_weight, target) = if v1 {
            (0.0, RecallTarget::default())
        } else {
            let w: f64 = meta("spread_weight")
                .and_then(|p| p.parse().ok())
                .filter(|w| (0.0..=1.0).contains(w))
                .ok_or_else(|| parse_err("spread_weight", "a number in [0, 1]"))?;
            let t: RecallTarget = meta("recall_target")
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| parse_err("recall_target", "a recall target like 0.95"))?;
            (w, t)
        };
        let (items_shape, items) = file.f32s("items", 2)?;
        let (cent_shape, centroids) = file.f32s("centroids", 2)?;
        let (assign_shape, assign) = file.u32s("assign", 1)?;
        let (n, dim, lists) = (items_shape[0], items_shape[1], cent_shape[0]);
        if cent_shape[1] != dim || assign_shape[0] != n || dim == 0 || lists == 0 {
            return Err(persist::bad(
                path,
                format!(
                    "inconsistent shapes: items {items_shape:?}, centroids {cent_shape:?}, assign {assign_shape:?}"
                ),
            ));
        }
        if let Some(i) = assign.iter().position(|&l| l as usize > lists) {
            return Err(persist::bad(
                path,
                format!(
                    "item {i} is assigned to list {}, but there are {lists} lists (+ the head, {lists})",
                    assign[i]
                ),
            ));
        }
        let mode = if probes > 0 {
            SearchMode::Probes(probes.min(lists))
        } else {
            SearchMode::Target(target)
        };
        let mut index = crate::index_base::check_finite(&items, dim)
            .and_then(|()| crate::index_base::check_finite(&centroids, dim))
            .and_then(|()| Self::from_parts(&items, dim, centroids, &assign, spread_weight, mode))
            .map_err(|e| persist::bad(path, e.to_string()))?;
        if v1 {
            let p = IvfParams::default();
            index.calibrate_from_items(&items, p.calibration_queries, p.seed)?;
        } else {
            index.calibration = Calibration::read(&file, path, n)?;
        }
        Ok(index)
    }
}

/// How much a query opens.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// This many lists (the head not counted).
    Lists(usize),
    /// Lists until this many items (the head included) are opened.
    Items(f64),
}

/// Items in a range (padding excluded).
fn range_len(r: &Range) -> usize {
    r.valid_end - r.blocks.start * BLOCK
}

/// Calibration queries from the items (see [`IvfIndex::calibrate_from_items`]):
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

impl TopKIndex for IvfIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.n
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.search_mode(query, k, filter, &self.mode)
    }

    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        crate::index_base::check_queries(queries.len(), self.dim)?;
        queries
            .par_chunks(self.dim)
            .enumerate()
            .map(|(q, v)| self.search(v, k, &filter_of(q)))
            .collect()
    }
}
