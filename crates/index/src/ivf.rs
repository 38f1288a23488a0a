//! [`IvfIndex`]: an inverted-file index (k-means lists) whose probed lists are scanned
//! with the int8 prefilter of `quant` and re-scored exactly — the ScaNN-style second
//! approximate method next to HNSW.
//!
//! * Build: k-means (L2, seeded) on a sample of the items, then every item goes to its
//!   nearest centre. The items are stored permuted, list after list, each list padded
//!   to whole blocks of 16, and quantised once for the int8 kernel.
//! * Search: the `probes` lists whose centres have the highest inner product with the
//!   query, best first, scanned as one exact top-k over their items (shared k-th
//!   bound across lists, exact `f32` re-scoring of the few candidates). Within the
//!   probed lists the answer is exact — same scores, bit for bit, as [`ExactIndex`],
//!   same tie order (lower item first) — so recall is lost only to lists not probed.
//!   `probes = lists` is an exact search.
//! * Filters: exclusions are mapped to stored positions and masked inside the scan
//!   (no recall lost to them); an allow-list is scored exactly, item by item.
//! * Memory: the `f32` items once (permuted) plus one byte per coordinate; no graph.
//! * Persistence: safetensors with the items in their original order, the centres and
//!   each item's list; loading re-lays out and re-quantises (linear time, no k-means).
//!
//! Without AVX-512 VNNI the probed lists are scanned in `f32`, item by item.

use std::path::Path;

use rayon::prelude::*;
use safetensors::tensor::Dtype;
use shortlist_core::Rng;

use crate::error::{Error, Result};
use crate::exact::ExactIndex;
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::kernel::{Kernel, BLOCK};
use crate::persist;
use crate::quant::{self, up, Int8Items, Range};
use crate::select::{sanitize, Admissible, TopK};

/// Value of the `format` metadata key of a saved IVF index.
pub const FORMAT: &str = "shortlist.ivf-index";
/// Value of the `version` metadata key written by this crate.
pub const FORMAT_VERSION: &str = "1";

/// Build and search parameters of an [`IvfIndex`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "ann", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "ann", serde(default, deny_unknown_fields))]
pub struct IvfParams {
    /// Number of lists (k-means centres); 0 picks `4 · √n`. More lists: each probe
    /// scans fewer items, but more probes are needed for the same recall.
    pub lists: usize,
    /// Lists scanned per query (changeable after loading with
    /// [`IvfIndex::set_probes`]); 0 picks `lists / 32` (at least 1). The recall /
    /// speed dial: measure with `shortlist index tune`.
    pub probes: usize,
    /// k-means iterations. Default 10.
    pub iterations: usize,
    /// k-means trains on at most this many items per list (a seeded sample). Default 64.
    pub sample_per_list: usize,
    /// Fraction of the items, those of largest norm, kept in a head list that every
    /// query scans first. With popularity-driven norms (trained towers) the top
    /// scores come mostly from these items, wherever their k-means list lies; the head
    /// also proves a high k-th score early, so lists whose largest norm cannot reach
    /// it are skipped exactly. Default 0.005; 0 turns it off.
    pub head_fraction: f64,
    /// Seed of the sample and the initial centres.
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

    /// The number of probes for `lists` lists (resolving `probes = 0`).
    pub fn probes_for(&self, lists: usize) -> usize {
        let p = if self.probes == 0 {
            lists / 32
        } else {
            self.probes
        };
        p.clamp(1, lists.max(1))
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.iterations == 0 {
            return Err(Error::invalid("iterations", "must be at least 1, got 0"));
        }
        if !(0.0..=1.0).contains(&self.head_fraction) {
            return Err(Error::invalid(
                "head_fraction",
                format!("must be within [0, 1], got {}", self.head_fraction),
            ));
        }
        if self.sample_per_list == 0 {
            return Err(Error::invalid(
                "sample_per_list",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// Inverted-file index: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct IvfIndex {
    dim: usize,
    n: usize,
    probes: usize,
    /// The `lists × dim` centres as an exact index, to pick the lists to probe.
    coarse: ExactIndex,
    /// Per list: its blocks of stored positions and where its padding starts.
    ranges: Vec<Range>,
    /// `positions × dim`, the items list after list (padding rows are zero).
    items: Vec<f32>,
    /// Item number at each stored position (`u32::MAX` for padding).
    ids: Vec<u32>,
    /// Stored position of each item.
    pos: Vec<u32>,
    int8: Option<Int8Items>,
}

impl IvfIndex {
    /// Builds an index over `items` (`n × dim`, row-major, finite).
    pub fn build(items: &[f32], dim: usize, params: IvfParams) -> Result<Self> {
        params.validate()?;
        let n = crate::index_base::item_count(items.len(), dim)?;
        crate::index_base::check_finite(items, dim)?;
        let lists = params.lists_for(n);
        let centroids = kmeans(items, dim, lists, &params)?;
        let mut assign = if n == 0 {
            Vec::new()
        } else {
            nearest(items, dim, &centroids)?
        };
        // The head: the largest norms (ties: lower item), list number `lists`.
        let head = ((n as f64 * params.head_fraction).round() as usize).min(n);
        if head > 0 {
            let norms: Vec<f64> = items.chunks_exact(dim).map(norm).collect();
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.select_nth_unstable_by(head - 1, |&a, &b| {
                norms[b as usize]
                    .total_cmp(&norms[a as usize])
                    .then(a.cmp(&b))
            });
            for &i in &order[..head] {
                assign[i as usize] = lists as u32;
            }
        }
        Self::from_parts(items, dim, centroids, assign, params.probes_for(lists))
    }

    /// Lays out the lists of a trained index (`assign[i] < lists` for every item).
    fn from_parts(
        items: &[f32],
        dim: usize,
        centroids: Vec<f32>,
        assign: Vec<u32>,
        probes: usize,
    ) -> Result<Self> {
        let n = items.len() / dim;
        let lists = centroids.len() / dim;
        // Lists `0..lists`, then the head (list `lists`, possibly empty).
        let mut count = vec![0usize; lists + 1];
        let mut max_norm = vec![0f32; lists + 1];
        for (&l, v) in assign.iter().zip(items.chunks_exact(dim)) {
            count[l as usize] += 1;
            let m = &mut max_norm[l as usize];
            *m = m.max(up(norm(v)));
        }
        let mut ranges = Vec::with_capacity(lists + 1);
        let mut next = vec![0usize; lists + 1];
        let mut block = 0usize;
        for (l, &c) in count.iter().enumerate() {
            let blocks = c.div_ceil(BLOCK);
            next[l] = block * BLOCK;
            ranges.push(Range {
                blocks: block..block + blocks,
                valid_end: block * BLOCK + c,
                max_norm: max_norm[l],
            });
            block += blocks;
        }
        let positions = block * BLOCK;
        let mut permuted = vec![0f32; positions * dim];
        let mut ids = vec![u32::MAX; positions];
        let mut pos = vec![0u32; n];
        // Items in ascending order, so each list holds its items in ascending order.
        for (i, (&l, v)) in assign.iter().zip(items.chunks_exact(dim)).enumerate() {
            let p = next[l as usize];
            next[l as usize] += 1;
            permuted[p * dim..(p + 1) * dim].copy_from_slice(v);
            ids[p] = i as u32;
            pos[i] = p as u32;
        }
        let int8 = if quant::available() {
            Int8Items::new(&permuted, dim)
        } else {
            None
        };
        let coarse = ExactIndex::new(centroids, dim)?;
        Ok(IvfIndex {
            dim,
            n,
            probes: probes.clamp(1, lists.max(1)),
            coarse,
            ranges,
            items: permuted,
            ids,
            pos,
            int8,
        })
    }

    /// Number of k-means lists (the head list not counted).
    pub fn lists(&self) -> usize {
        self.ranges.len() - 1
    }

    /// Items in the head list (scanned by every query).
    pub fn head_len(&self) -> usize {
        let r = &self.ranges[self.lists()];
        r.valid_end - r.blocks.start * BLOCK
    }

    /// Lists scanned per query.
    pub fn probes(&self) -> usize {
        self.probes
    }

    /// Sets the lists scanned per query (clamped to `1..=lists`).
    pub fn set_probes(&mut self, probes: usize) {
        self.probes = probes.clamp(1, self.lists().max(1));
    }

    /// Sizes of the k-means lists (items per list; the head not included).
    pub fn list_sizes(&self) -> Vec<usize> {
        self.ranges[..self.lists()]
            .iter()
            .map(|r| r.valid_end - r.blocks.start * BLOCK)
            .collect()
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

    /// [`TopKIndex::search`] probing `probes` lists.
    pub fn search_probes(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
        probes: usize,
    ) -> Result<Vec<Hit>> {
        crate::index_base::check_query(query.len(), self.dim)?;
        let adm = Admissible::prepare(filter, self.n)?;
        if k == 0 || self.n == 0 {
            return Ok(Vec::new());
        }
        if let Some(allowed) = adm.allow_list() {
            return Ok(self.search_allowed(query, k, allowed));
        }
        let probes = probes.clamp(1, self.lists());
        // The head first (it proves a high k-th score early), then the probed lists,
        // best centre first.
        let head = &self.ranges[self.lists()];
        let ranges: Vec<Range> = std::iter::once(head.clone())
            .filter(|r| !r.blocks.is_empty())
            .chain(
                self.coarse
                    .search(query, probes, &Filter::None)?
                    .iter()
                    .map(|h| self.ranges[h.item as usize].clone()),
            )
            .collect();
        let excluded = self.excluded_positions(adm.excluded(), &ranges);
        if let Some(t) = &self.int8 {
            let adm = Admissible::prepare(&Filter::ExcludeSorted(&excluded), self.ids.len())?;
            if let Some(hits) =
                quant::search_ranges(t, &self.items, &self.ids, query, adm, k, &ranges)
            {
                return Ok(hits);
            }
        }
        Ok(self.scan_f32(query, k, &excluded, &ranges))
    }

    /// The stored positions, ascending, of the excluded items (`excluded`: sorted
    /// item numbers) that lie in `ranges`: mapped and sorted when the list is short,
    /// else found by looking each scanned item up in it, galloping (a long exclusion
    /// list, say 90 % of the catalogue, costs about the items scanned, not its
    /// length).
    fn excluded_positions(&self, excluded: &[u32], ranges: &[Range]) -> Vec<u32> {
        let scanned: usize = ranges
            .iter()
            .map(|r| r.valid_end - r.blocks.start * BLOCK)
            .sum();
        let mut out: Vec<u32> = if excluded.len() <= scanned {
            excluded
                .iter()
                .filter(|&&i| (i as usize) < self.n)
                .map(|&i| self.pos[i as usize])
                .collect()
        } else {
            // A list's items are in ascending order: gallop through `excluded`.
            let mut out = Vec::new();
            for r in ranges {
                let first = r.blocks.start * BLOCK;
                let mut lo = 0usize;
                for (p, &id) in self.ids[first..r.valid_end].iter().enumerate() {
                    let rest = &excluded[lo..];
                    let mut bound = 1usize;
                    while bound < rest.len() && rest[bound] < id {
                        bound *= 2;
                    }
                    lo += rest[..bound.min(rest.len())].partition_point(|&x| x < id);
                    if excluded.get(lo) == Some(&id) {
                        out.push((first + p) as u32);
                    }
                }
            }
            out
        };
        out.sort_unstable();
        out
    }

    /// The probed lists in `f32`, item by item (no VNNI, or a query the int8 path
    /// cannot quantise).
    fn scan_f32(&self, query: &[f32], k: usize, excluded: &[u32], ranges: &[Range]) -> Vec<Hit> {
        let kernel = Kernel::best();
        let mut top = TopK::new(k, k.saturating_mul(4));
        for r in ranges {
            for p in r.blocks.start * BLOCK..r.valid_end {
                if excluded.binary_search(&(p as u32)).is_ok() {
                    continue;
                }
                let s = kernel.dot(&self.items[p * self.dim..(p + 1) * self.dim], query);
                top.push(Hit {
                    item: self.ids[p],
                    score: sanitize(s),
                });
            }
        }
        top.into_sorted()
    }

    /// Scores only the allowed items (sorted, deduplicated, in range).
    fn search_allowed(&self, query: &[f32], k: usize, allowed: &[u32]) -> Vec<Hit> {
        let kernel = Kernel::best();
        let mut top = TopK::new(k, allowed.len());
        for &item in allowed {
            let p = self.pos[item as usize] as usize;
            let s = kernel.dot(&self.items[p * self.dim..(p + 1) * self.dim], query);
            top.push(Hit {
                item,
                score: sanitize(s),
            });
        }
        top.into_sorted()
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
        save_parts(
            path,
            &items,
            self.coarse.items(),
            &assign,
            self.dim,
            self.probes,
        )
    }

    /// Loads an index written by [`save`](Self::save). A missing, truncated or corrupt
    /// file, or one that holds something else, is an error naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let file = persist::open(path, &bytes, FORMAT, FORMAT_VERSION)?;
        let found = file.meta.get("probes");
        let probes: usize = found.and_then(|p| p.parse().ok()).ok_or_else(|| {
            persist::bad(
                path,
                format!("metadata `probes` is {found:?}, expected an integer"),
            )
        })?;
        let (items_shape, items) = file.f32s("items", 2)?;
        let (cent_shape, centroids) = file.f32s("centroids", 2)?;
        let (assign_shape, assign) = file.u32s("assign", 1)?;
        let (n, dim, lists) = (items_shape[0], items_shape[1], cent_shape[0]);
        if cent_shape[1] != dim || assign_shape[0] != n || dim == 0 || (n > 0 && lists == 0) {
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
        crate::index_base::check_finite(&items, dim)
            .and_then(|()| crate::index_base::check_finite(&centroids, dim))
            .and_then(|()| Self::from_parts(&items, dim, centroids, assign, probes))
            .map_err(|e| persist::bad(path, e.to_string()))
    }
}

/// Writes the parts of an index (items in original order, centres, each item's list).
fn save_parts(
    path: &Path,
    items: &[f32],
    centroids: &[f32],
    assign: &[u32],
    dim: usize,
    probes: usize,
) -> Result<()> {
    let (items_b, cent_b, assign_b) = (
        persist::f32_bytes(items),
        persist::f32_bytes(centroids),
        persist::u32_bytes(assign),
    );
    persist::write(
        path,
        &[
            ("items", Dtype::F32, vec![items.len() / dim, dim], &items_b),
            (
                "centroids",
                Dtype::F32,
                vec![centroids.len() / dim, dim],
                &cent_b,
            ),
            ("assign", Dtype::U32, vec![assign.len()], &assign_b),
        ],
        FORMAT,
        FORMAT_VERSION,
        &[("probes", probes.to_string())],
    )
}

impl TopKIndex for IvfIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.n
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.search_probes(query, k, filter, self.probes)
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

/// `‖v‖` in `f64`.
fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// k-means (L2) centres of a seeded sample of `items`: `lists × dim`.
fn kmeans(items: &[f32], dim: usize, lists: usize, params: &IvfParams) -> Result<Vec<f32>> {
    let n = items.len() / dim;
    if n == 0 {
        return Ok(vec![0.0; dim]);
    }
    let mut rng = Rng::new(params.seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    order.truncate(lists.saturating_mul(params.sample_per_list).max(lists));
    let sample: Vec<f32> = order
        .iter()
        .flat_map(|&i| &items[i as usize * dim..(i as usize + 1) * dim])
        .copied()
        .collect();
    let m = order.len();
    // Initial centres: the first `lists` sampled items (a random subset).
    let mut centroids = sample[..lists * dim].to_vec();
    for _ in 0..params.iterations {
        let assign = nearest(&sample, dim, &centroids)?;
        let mut sum = vec![0f64; lists * dim];
        let mut count = vec![0usize; lists];
        for (v, &l) in sample.chunks_exact(dim).zip(&assign) {
            count[l as usize] += 1;
            for (s, &x) in sum[l as usize * dim..(l as usize + 1) * dim]
                .iter_mut()
                .zip(v)
            {
                *s += f64::from(x);
            }
        }
        for l in 0..lists {
            let c = &mut centroids[l * dim..(l + 1) * dim];
            if count[l] == 0 {
                // An empty list restarts from a random sampled item.
                let r = rng.below(m as u64) as usize;
                c.copy_from_slice(&sample[r * dim..(r + 1) * dim]);
            } else {
                for (c, s) in c.iter_mut().zip(&sum[l * dim..(l + 1) * dim]) {
                    *c = (s / count[l] as f64) as f32;
                }
            }
        }
    }
    Ok(centroids)
}

/// The nearest centre (L2; ties: the lower list) of every row of `data`, through the
/// exact index: `argmin ‖v − c‖² = argmax v·c − ‖c‖²/2`.
fn nearest(data: &[f32], dim: usize, centroids: &[f32]) -> Result<Vec<u32>> {
    let aug: Vec<f32> = centroids
        .chunks_exact(dim)
        .flat_map(|c| {
            let half = c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / 2.0;
            c.iter().copied().chain([-half as f32])
        })
        .collect();
    let index = ExactIndex::new(aug, dim + 1)?;
    let mut out = Vec::with_capacity(data.len() / dim);
    for chunk in data.chunks(65_536 * dim) {
        let queries: Vec<f32> = chunk
            .chunks_exact(dim)
            .flat_map(|v| v.iter().copied().chain([1.0]))
            .collect();
        let hits = index.search_batch(&queries, 1, &|_| Filter::None)?;
        out.extend(hits.iter().map(|h| h.first().map_or(0, |h| h.item)));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    pub(super) fn clustered(rng: &mut Rng, n: usize, dim: usize, centres: usize) -> Vec<f32> {
        let c: Vec<f32> = (0..centres * dim).map(|_| rng.normal() as f32).collect();
        (0..n)
            .flat_map(|_| {
                let k = rng.below(centres as u64) as usize;
                let scale = 0.5 + rng.next_f32();
                (0..dim)
                    .map(|d| (c[k * dim + d] + 0.5 * rng.normal() as f32) * scale)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn bits(h: &[Hit]) -> Vec<(u32, u32)> {
        h.iter().map(|h| (h.item, h.score.to_bits())).collect()
    }

    #[test]
    fn all_probes_equal_the_exact_index_bit_for_bit_with_filters() {
        let mut rng = Rng::new(5);
        let (n, dim) = (3000, 24);
        let items = clustered(&mut rng, n, dim, 20);
        let exact = ExactIndex::new(items.clone(), dim).unwrap();
        let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
        assert_eq!(ivf.lists(), 219); // 4 · √3000
        assert_eq!(ivf.head_len(), 15); // 0.5 %
        assert_eq!(ivf.list_sizes().iter().sum::<usize>() + ivf.head_len(), n);
        let excluded: Vec<u32> = (0..n as u32).filter(|i| i % 3 == 0).collect();
        let allowed: Vec<u32> = (0..n as u32).filter(|i| i % 7 == 1).collect();
        for q in 0..20 {
            let query: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            for filter in [
                Filter::None,
                Filter::ExcludeSorted(&excluded),
                Filter::AllowOnly(&allowed),
            ] {
                for k in [1, 10, 100] {
                    let want = exact.search(&query, k, &filter).unwrap();
                    let got = ivf.search_probes(&query, k, &filter, ivf.lists()).unwrap();
                    assert_eq!(bits(&got), bits(&want), "query {q}, k {k}, {filter:?}");
                }
            }
        }
    }

    #[test]
    fn few_probes_keep_high_recall_on_clustered_data_and_never_return_excluded() {
        let mut rng = Rng::new(9);
        let (n, dim) = (20_000, 32);
        let items = clustered(&mut rng, n, dim, 100);
        let exact = ExactIndex::new(items.clone(), dim).unwrap();
        let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
        let excluded: Vec<u32> = (0..n as u32).filter(|i| i % 2 == 0).collect();
        let (mut hit, mut total) = (0, 0);
        for _ in 0..100 {
            let query = clustered(&mut rng, 1, dim, 100);
            let want = exact.search(&query, 10, &Filter::None).unwrap();
            let got = ivf.search(&query, 10, &Filter::None).unwrap();
            total += want.len();
            hit += got
                .iter()
                .filter(|h| want.iter().any(|w| w.item == h.item))
                .count();
            let f = ivf
                .search(&query, 10, &Filter::ExcludeSorted(&excluded))
                .unwrap();
            assert_eq!(f.len(), 10);
            assert!(f.iter().all(|h| h.item % 2 == 1), "{f:?}");
        }
        let recall = hit as f64 / total as f64;
        // 566 lists, 17 probed (3 % of the items).
        assert!(recall >= 0.9, "recall@10 {recall}");
    }

    #[test]
    fn both_exclusion_strategies_find_the_same_positions() {
        let mut rng = Rng::new(4);
        let (n, dim) = (5000, 8);
        let items: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
        let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
        let ranges: Vec<Range> = [3usize, 40, 7, ivf.lists()]
            .iter()
            .map(|&l| ivf.ranges[l].clone())
            .collect();
        let scanned: usize = ranges
            .iter()
            .map(|r| r.valid_end - r.blocks.start * BLOCK)
            .sum();
        for frac in [0.01, 0.5, 0.9, 1.0] {
            let excluded: Vec<u32> = (0..n as u32).filter(|_| rng.next_f64() < frac).collect();
            let got = ivf.excluded_positions(&excluded, &ranges);
            let in_ranges = |p: u32| {
                ranges
                    .iter()
                    .any(|r| (r.blocks.start * BLOCK..r.valid_end).contains(&(p as usize)))
            };
            let mut want: Vec<u32> = excluded
                .iter()
                .map(|&i| ivf.pos[i as usize])
                .filter(|&p| in_ranges(p))
                .collect();
            want.sort_unstable();
            let mut got_in: Vec<u32> = got.into_iter().filter(|&p| in_ranges(p)).collect();
            got_in.dedup();
            assert_eq!(
                got_in,
                want,
                "{frac} ({} excluded, {scanned} scanned)",
                excluded.len()
            );
        }
    }

    #[test]
    fn recall_on_random_data_grows_with_probes_to_exact() {
        let mut rng = Rng::new(21);
        let (n, dim) = (10_000, 16);
        let items: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
        let exact = ExactIndex::new(items.clone(), dim).unwrap();
        let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
        let queries: Vec<f32> = (0..100 * dim).map(|_| rng.normal() as f32).collect();
        let truth = exact.search_batch(&queries, 10, &|_| Filter::None).unwrap();
        let recall = |probes: usize| {
            let mut hit = 0;
            for (q, t) in queries.chunks_exact(dim).zip(&truth) {
                let got = ivf.search_probes(q, 10, &Filter::None, probes).unwrap();
                hit += got
                    .iter()
                    .filter(|h| t.iter().any(|w| w.item == h.item))
                    .count();
            }
            hit as f64 / 1000.0
        };
        // 400 lists of ~25 unclustered items: the hard case for a partition.
        let (r10, r40, r400) = (recall(10), recall(40), recall(400));
        assert!(
            r10 >= 0.5 && r40 >= 0.8 && r400 == 1.0,
            "{r10} {r40} {r400}"
        );
        assert!(r10 <= r40);
    }

    #[test]
    fn save_load_round_trip_and_corrupt_files() {
        let mut rng = Rng::new(3);
        let items = clustered(&mut rng, 500, 8, 5);
        let mut ivf = IvfIndex::build(&items, 8, IvfParams::default()).unwrap();
        ivf.set_probes(7);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.ivf.safetensors");
        ivf.save(&path).unwrap();
        let back = IvfIndex::load(&path).unwrap();
        assert_eq!(back.probes(), 7);
        assert_eq!(back.lists(), ivf.lists());
        let queries: Vec<f32> = (0..40 * 8).map(|_| rng.normal() as f32).collect();
        let a = ivf.search_batch(&queries, 10, &|_| Filter::None).unwrap();
        let b = back.search_batch(&queries, 10, &|_| Filter::None).unwrap();
        assert_eq!(a, b);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = IvfIndex::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("index.ivf.safetensors") && e.contains("not a readable safetensors"),
            "{e}"
        );
        // A list number beyond the lists (and the head) is named.
        let (items, mut assign) = ivf.original_order();
        assign[3] = (ivf.lists() + 1) as u32;
        save_parts(&path, &items, ivf.coarse.items(), &assign, 8, 7).unwrap();
        let e = IvfIndex::load(&path).unwrap_err().to_string();
        assert!(e.contains("item 3 is assigned to list"), "{e}");
        let exact = dir.path().join("exact.safetensors");
        ExactIndex::new(items, 8).unwrap().save(&exact).unwrap();
        let e = IvfIndex::load(&exact).unwrap_err().to_string();
        assert!(e.contains("metadata `format`"), "{e}");
    }

    #[test]
    fn bad_input_gives_named_errors() {
        let e = IvfIndex::build(&[1.0, f32::NAN, 0.0, 1.0], 2, IvfParams::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid items: item 0 has a non-finite value (NaN) at dimension 1"
        );
        let ivf = IvfIndex::build(&[1.0, 0.0, 0.0, 1.0], 2, IvfParams::default()).unwrap();
        let e = ivf
            .search(&[1.0], 1, &Filter::None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("query"), "{e}");
        let p = IvfParams {
            iterations: 0,
            ..IvfParams::default()
        };
        assert!(IvfIndex::build(&[1.0], 1, p)
            .unwrap_err()
            .to_string()
            .contains("iterations"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod probe {
    use super::*;

    /// Time per filtered query (100k clustered items × 64, 16 probes) by exclusion
    /// fraction. `cargo test --release -p shortlist-index ivf::probe -- --ignored
    /// --nocapture`; `PROBE_FRACS=0.9 PROBE_REPS=100` to profile one case.
    /// (At 90 %: ≈ 95 µs per query, half of it matching the 90k-item list against the
    /// scanned items, against ≈ 12 µs unfiltered.)
    #[test]
    #[ignore = "timing probe"]
    fn filtered_cost() {
        let mut rng = Rng::new(1);
        let (n, dim) = (100_000, 64);
        let items = super::tests::clustered(&mut rng, n, dim, 316);
        let mut ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
        ivf.set_probes(16);
        let queries = super::tests::clustered(&mut rng, 200, dim, 316);
        for frac in std::env::var("PROBE_FRACS").map_or(vec![0.0, 0.1, 0.5, 0.9], |v| {
            v.split(',').map(|x| x.parse().unwrap()).collect()
        }) {
            let excl: Vec<u32> = (0..n as u32).filter(|_| rng.next_f64() < frac).collect();
            let t = std::time::Instant::now();
            let reps: usize = std::env::var("PROBE_REPS").map_or(5, |v| v.parse().unwrap());
            for _ in 0..reps {
                for q in queries.chunks_exact(dim) {
                    std::hint::black_box(ivf.search(q, 10, &Filter::ExcludeSorted(&excl)).unwrap());
                }
            }
            println!(
                "{frac}: {:.1} µs/query",
                t.elapsed().as_secs_f64() * 1e6 / (reps * 200) as f64
            );
        }
    }
}
