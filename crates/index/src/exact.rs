//! [`ExactIndex`]: brute-force maximum inner product search, the ground truth that
//! approximate indexes are measured against.
//!
//! * The items are kept three times: row-major (for [`ExactIndex::items`], saving and
//!   exact rescoring), packed in blocks of 16 for the fused f32 kernels of `kernel`
//!   (AVX-512, AVX2+FMA or portable, picked at run time), which score a tile of
//!   queries × items in registers and select per chunk of 2048 items with an exact
//!   lower bound on the k-th best, so only about `k` candidates per chunk reach the
//!   buffer; and, on CPUs with AVX-512 VNNI, quantised to int8 for `quant`'s prefilter
//!   (approximate scores with a rigorous error bound, then exact rescoring of the few
//!   candidates it cannot rule out: the same results, bit for bit, about 1.5× faster).
//! * Single query: one pass of the kernel over the packed items (no allocation
//!   proportional to the catalogue). An allow-list scores only the listed items.
//! * Batch: blocks of queries in parallel (rayon); inside a block the kernel takes 8
//!   queries at a time, so the query × item score matrix never reaches memory.
//! * Every path computes each score with the same serial fma chain over `d`, so single
//!   and batched searches (and the different kernels) agree bit for bit.
//! * Persistence: safetensors, one `F32` tensor `items` of shape `[n, dim]` plus
//!   `format`/`version` metadata, written atomically.

use std::path::Path;

use rayon::prelude::*;
use safetensors::tensor::Dtype;

use crate::error::Result;
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::kernel::{Kernel, Packed};
use crate::persist;
use crate::quant::{self, Int8Items};
use crate::select::{sanitize, Admissible, Gate, TopK};

/// Value of the `format` metadata key of a saved index.
pub const FORMAT: &str = "shortlist.exact-index";
/// Value of the `version` metadata key written by this crate.
pub const FORMAT_VERSION: &str = "1";
/// Name of the item-embedding tensor in a saved index.
pub const TENSOR_NAME: &str = "items";

/// Queries per parallel task in the batch path: 943 ML-100k users make 30 tasks, enough
/// to balance 2–16 threads, each task long enough (≈ 32 × n × dim fmas) to amortise
/// the scheduling.
const QUERY_BLOCK: usize = 32;

/// Up to this many bytes of `f32` items, a single query may skip the int8 prefilter:
/// the items stay in a core's L2 cache, the f32 kernel is then compute-bound and fast,
/// and the prefilter's exact rescoring of the candidates it cannot rule out can cost
/// more than its smaller scan saves — when `k` is large beside the catalogue (see
/// [`INT8_ITEMS_PER_RESULT`]). First measured with `examples/exact_single.rs` on an
/// AVX-512 VNNI core (1 MiB L2), k = 100, 85 excluded: 1,682 × 64 (0.4 MiB) 7.9 µs f32
/// vs 15.9 µs int8; 5,000 × 64 (1.3 MiB) 23.9 vs 31.9; 7,000 × 64 (1.8 MiB) a tie;
/// 10,000 × 64 (2.6 MiB) 92 vs 56. Both kernels give the same hits bit for bit.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const F32_RESIDENT_BYTES: usize = 3 << 19;

/// A cache-resident catalogue still goes through the int8 prefilter for a single query
/// when it holds at least this many items per result asked for (and at least
/// [`INT8_MIN_ITEMS`]): the prefilter then rules out almost every item. The int8 path
/// has become faster since that first measurement (2026-12-04, the same example on a
/// Zen 4 VM, wall time per query, f32 vs int8): 1,682 items, dim 32, k 10: 2.56 vs
/// 1.53 µs; k 40: 3.88 vs 2.72; k 100: 5.53 vs 5.16; dim 64, k 10: 5.02 vs 2.24; k 100
/// with 85 excluded: 8.87 vs 7.18; 500 items, k 10: 1.32 vs 0.83 (dim 32); but 500
/// items, k 100: 3.16 vs 5.14, and 200 items, k 10: 0.76 vs 1.00.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const INT8_ITEMS_PER_RESULT: usize = 16;

/// See [`INT8_ITEMS_PER_RESULT`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const INT8_MIN_ITEMS: usize = 512;

/// Exact top-K by inner product over an `n × dim` row-major item matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactIndex {
    items: Vec<f32>,
    dim: usize,
    packed: Packed,
    /// The int8 copy for the prefilter (`None` without AVX-512 VNNI or when an item is
    /// not finite).
    int8: Option<Int8Items>,
}

impl ExactIndex {
    /// An index over `items` (`n × dim`, row-major). Errors when `dim` is 0, when the
    /// length is not a multiple of `dim`, or when `n` does not fit in `u32`.
    pub fn new(items: Vec<f32>, dim: usize) -> Result<Self> {
        crate::index_base::item_count(items.len(), dim)?;
        let packed = Packed::new(&items, dim);
        let int8 = if quant::available() {
            Int8Items::new(&items, dim)
        } else {
            None
        };
        Ok(ExactIndex {
            items,
            dim,
            packed,
            int8,
        })
    }

    /// Whether the int8 prefilter serves this index (AVX-512 VNNI and finite items).
    #[cfg(all(test, target_arch = "x86_64"))]
    pub(crate) fn has_int8(&self) -> bool {
        self.int8.is_some()
    }

    /// The packed copy of the items (for kernels that score them all).
    pub(crate) fn packed(&self) -> &Packed {
        &self.packed
    }

    /// The item matrix, `len() × dim()`, row-major.
    pub fn items(&self) -> &[f32] {
        &self.items
    }

    /// Embedding of item `i`.
    pub fn item(&self, i: usize) -> Option<&[f32]> {
        self.items.get(i * self.dim..(i + 1) * self.dim)
    }

    /// Saves the index as safetensors at `path` (atomically: temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = persist::f32_bytes(&self.items);
        persist::write(
            path,
            &[(TENSOR_NAME, Dtype::F32, vec![self.len(), self.dim], &bytes)],
            FORMAT,
            FORMAT_VERSION,
            &[],
        )
    }

    /// Loads an index written by [`save`](Self::save). A missing, truncated or corrupt
    /// file, or one that holds something else, is an error naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let file = persist::open(path, &bytes, FORMAT, &[FORMAT_VERSION])?;
        let (shape, items) = file.f32s(TENSOR_NAME, 2)?;
        ExactIndex::new(items, shape[1]).map_err(|e| persist::bad(path, e.to_string()))
    }

    /// [`TopKIndex::search`] with a given kernel.
    pub(crate) fn search_with(
        &self,
        kernel: Kernel,
        query: &[f32],
        k: usize,
        filter: &Filter<'_>,
    ) -> Result<Vec<Hit>> {
        crate::index_base::check_query(query.len(), self.dim)?;
        let n = self.len();
        let adm = Admissible::prepare(filter, n)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        if let Some(allowed) = adm.allow_list() {
            return Ok(self.search_allowed(kernel, query, k, allowed));
        }
        if let Some(allowed) = sparse_bitmap(&adm, n) {
            return Ok(self.search_allowed(kernel, query, k, &allowed));
        }
        let adm = match (&self.int8, Self::int8_kernel(kernel)) {
            (Some(t), true) => {
                if let [Some(hits)] = &mut quant::search(t, &self.items, query, vec![adm], k)[..] {
                    return Ok(std::mem::take(hits));
                }
                // A query the prefilter does not take: the f32 kernel, with a fresh
                // filter (the prefilter consumed the first).
                Admissible::prepare(filter, n)?
            }
            _ => adm,
        };
        let mut gate = [Gate::new(adm, k, n)];
        kernel.scan(&self.packed, query, &mut gate);
        let [gate] = gate;
        Ok(gate.into_sorted())
    }

    /// The kernel for one query asking for `k` results: the best one, except that a
    /// catalogue small enough to stay in cache skips the int8 prefilter when `k` is
    /// large beside it or it is tiny (see [`F32_RESIDENT_BYTES`],
    /// [`INT8_ITEMS_PER_RESULT`]).
    fn single_query_kernel(&self, k: usize) -> Kernel {
        let kernel = Kernel::best();
        #[cfg(target_arch = "x86_64")]
        {
            let n = self.len();
            let prefilter_pays =
                n >= INT8_MIN_ITEMS && n >= k.saturating_mul(INT8_ITEMS_PER_RESULT);
            if kernel == Kernel::Int8
                && self.items.len() * 4 <= F32_RESIDENT_BYTES
                && !prefilter_pays
            {
                return Kernel::Avx512;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = k;
        kernel
    }

    /// Whether `kernel` asks for the int8 prefilter.
    fn int8_kernel(kernel: Kernel) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            kernel == Kernel::Int8
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = kernel;
            false
        }
    }

    /// The rows `which` of a row-major block of queries, as one matrix.
    fn gather_rows(block: &[f32], dim: usize, which: &[usize]) -> Vec<f32> {
        which
            .iter()
            .flat_map(|&q| &block[q * dim..(q + 1) * dim])
            .copied()
            .collect()
    }

    /// Scores only the allowed items (sorted, deduplicated, in range).
    fn search_allowed(&self, kernel: Kernel, query: &[f32], k: usize, allowed: &[u32]) -> Vec<Hit> {
        let mut top = TopK::new(k, allowed.len());
        for &item in allowed {
            let i = item as usize;
            let s = kernel.dot(&self.items[i * self.dim..(i + 1) * self.dim], query);
            top.push(Hit {
                item,
                score: sanitize(s),
            });
        }
        top.into_sorted()
    }

    /// [`TopKIndex::search_batch`] with a given kernel.
    pub(crate) fn search_batch_with<'f>(
        &self,
        kernel: Kernel,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        crate::index_base::check_queries(queries.len(), self.dim)?;
        let blocks = queries
            .par_chunks(QUERY_BLOCK * self.dim)
            .enumerate()
            .map(|(b, block)| self.search_block(kernel, block, b * QUERY_BLOCK, k, filter_of))
            .collect::<Result<Vec<_>>>()?;
        Ok(blocks.into_iter().flatten().collect())
    }

    /// Top-K for one block of queries (`m × dim`); `first` is the index of the block's
    /// first query (for `filter_of`). Allow-list queries score only their items; the
    /// others go through the kernel together.
    pub(crate) fn search_block<'f>(
        &self,
        kernel: Kernel,
        block: &[f32],
        first: usize,
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        let n = self.len();
        let dim = self.dim;
        let m = block.len() / dim;
        let mut out = vec![Vec::new(); m];
        let mut gates = Vec::with_capacity(m);
        let mut gated = Vec::with_capacity(m);
        let int8 = self.int8.as_ref().filter(|_| Self::int8_kernel(kernel));
        let mut int8_adms = Vec::new();
        for (q, query) in block.chunks_exact(dim).enumerate() {
            let adm = Admissible::prepare(&filter_of(first + q), n)?;
            if k == 0 {
                continue;
            }
            if let Some(allowed) = adm.allow_list() {
                out[q] = self.search_allowed(kernel, query, k, allowed);
            } else if let Some(allowed) = sparse_bitmap(&adm, n) {
                out[q] = self.search_allowed(kernel, query, k, &allowed);
            } else if int8.is_some() {
                int8_adms.push(adm);
                gated.push(q);
            } else {
                gates.push(Gate::new(adm, k, n));
                gated.push(q);
            }
        }
        if let Some(t) = int8 {
            // The prefilter takes what it can; the rest go through the f32 kernel.
            let found = if gated.len() == m {
                quant::search(t, &self.items, block, int8_adms, k)
            } else {
                let rows = Self::gather_rows(block, dim, &gated);
                quant::search(t, &self.items, &rows, int8_adms, k)
            };
            let mut rest = Vec::new();
            for (q, hits) in gated.into_iter().zip(found) {
                match hits {
                    Some(h) => out[q] = h,
                    None => {
                        let adm = Admissible::prepare(&filter_of(first + q), n)?;
                        gates.push(Gate::new(adm, k, n));
                        rest.push(q);
                    }
                }
            }
            gated = rest;
        }
        if gates.is_empty() {
            return Ok(out);
        }
        if gated.len() == m {
            kernel.scan(&self.packed, block, &mut gates);
        } else {
            kernel.scan(
                &self.packed,
                &Self::gather_rows(block, dim, &gated),
                &mut gates,
            );
        }
        for (q, gate) in gated.into_iter().zip(gates) {
            out[q] = gate.into_sorted();
        }
        Ok(out)
    }
}

/// The admissible items of a bitmap filter that admits at most one item in 16 (then
/// scoring just those beats a scan of the whole catalogue), else `None`.
fn sparse_bitmap(adm: &Admissible<'_>, n: usize) -> Option<Vec<u32>> {
    adm.bitmap()
        .filter(|b| b.count() <= n / 16)
        .map(|b| b.iter().collect())
}

impl TopKIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.items.len() / self.dim
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.search_with(self.single_query_kernel(k), query, k, filter)
    }

    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        self.search_batch_with(Kernel::best(), queries, k, filter_of)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;
    use crate::select::rank_order;
    use safetensors::tensor::TensorView;
    use shortlist_core::Rng;

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.normal() as f32).collect()
    }

    /// A single query over a catalogue that stays in cache skips the int8 prefilter
    /// when it asks for many results beside the catalogue's size, or the catalogue is
    /// tiny; otherwise (and always over a larger catalogue) it uses it, when the CPU
    /// has it. Every case gives the hits of the brute-force reference.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn single_queries_skip_the_prefilter_only_for_cache_resident_catalogues() {
        let mut rng = Rng::new(5);
        let dim = 64;
        let small_n = F32_RESIDENT_BYTES / (4 * dim);
        let few = small_n / INT8_ITEMS_PER_RESULT;
        for (n, k, f32_wins) in [
            (small_n, few + 1, true),
            (small_n, few, false),
            (small_n, 100, false),
            (INT8_MIN_ITEMS - 1, 10, true),
            (INT8_MIN_ITEMS, 10, false),
            (small_n + 1, small_n, false),
        ] {
            let items = random(&mut rng, n * dim);
            let index = ExactIndex::new(items.clone(), dim).unwrap();
            let want = match Kernel::best() {
                Kernel::Int8 if f32_wins => Kernel::Avx512,
                best => best,
            };
            assert_eq!(index.single_query_kernel(k), want, "n {n} k {k}");
            let q = random(&mut rng, dim);
            let got = index.search(&q, k, &Filter::None).unwrap();
            assert_same(
                &got,
                &brute_force(&items, dim, &q, k, |_| true),
                &format!("n {n} k {k}"),
            );
        }
    }

    /// Reference: score every admissible item with a plain serial dot product, sort,
    /// truncate.
    fn brute_force(
        items: &[f32],
        dim: usize,
        q: &[f32],
        k: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<Hit> {
        let mut all: Vec<Hit> = items
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| keep(*i as u32))
            .map(|(i, row)| Hit {
                item: i as u32,
                score: row.iter().zip(q).map(|(a, b)| a * b).sum(),
            })
            .collect();
        all.sort_by(rank_order);
        all.truncate(k);
        all
    }

    /// Same items in the same order; scores equal up to summation-order rounding. A
    /// different item is only accepted where the two reference scores are a near-tie.
    fn assert_same(got: &[Hit], want: &[Hit], ctx: &str) {
        assert_eq!(got.len(), want.len(), "{ctx}: lengths");
        for (p, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g.score - w.score).abs() <= 1e-4,
                "{ctx}: rank {p}: {g:?} vs {w:?}"
            );
            if g.item != w.item {
                let other = want.iter().find(|h| h.item == g.item);
                assert!(
                    other.is_some_and(|o| (o.score - w.score).abs() <= 1e-4),
                    "{ctx}: rank {p}: got {g:?}, want {w:?}"
                );
            }
        }
    }

    #[test]
    fn equals_brute_force_single_and_batch_with_filters() {
        for seed in 0..6u64 {
            let mut rng = Rng::new(seed);
            let dim = [1, 3, 8, 16, 32, 37][seed as usize];
            let n = 1 + rng.below(5000) as usize;
            let items = random(&mut rng, n * dim);
            let index = ExactIndex::new(items.clone(), dim).unwrap();
            let nq = 1 + rng.below(80) as usize;
            let queries = random(&mut rng, nq * dim);
            let k = [1, 10, 100, n + 3][rng.below(4) as usize];
            // Per query: a sorted seen list, an unsorted exclusion list, an allow-list.
            let seen: Vec<Vec<u32>> = (0..nq)
                .map(|_| {
                    let mut v: Vec<u32> = (0..rng.below(200))
                        .map(|_| rng.below(n as u64) as u32)
                        .collect();
                    v.sort_unstable();
                    v
                })
                .collect();
            let allow: Vec<Vec<u32>> = (0..nq)
                .map(|_| {
                    (0..rng.below(50))
                        .map(|_| rng.below(n as u64) as u32)
                        .collect()
                })
                .collect();
            let filter = |q: usize| match q % 4 {
                0 => Filter::None,
                1 => Filter::ExcludeSorted(&seen[q]),
                2 => Filter::Exclude(&allow[q]),
                _ => Filter::AllowOnly(&allow[q]),
            };
            let batch = index.search_batch(&queries, k, &filter).unwrap();
            assert_eq!(batch.len(), nq);
            for q in 0..nq {
                let query = &queries[q * dim..(q + 1) * dim];
                let keep = |i: u32| match q % 4 {
                    0 => true,
                    1 => !seen[q].contains(&i),
                    2 => !allow[q].contains(&i),
                    _ => allow[q].contains(&i),
                };
                let want = brute_force(&items, dim, query, k, keep);
                let single = index.search(query, k, &filter(q)).unwrap();
                let ctx = format!("seed {seed} query {q} k {k} n {n} dim {dim}");
                assert_same(&single, &want, &ctx);
                assert_same(&batch[q], &want, &ctx);
                // Filters are exact, not approximate: never an excluded item.
                assert!(
                    single.iter().chain(&batch[q]).all(|h| keep(h.item)),
                    "{ctx}"
                );
            }
        }
    }

    /// Reference with the kernels' exact arithmetic: each score is the serial chain
    /// `s = fma(q[d], x[d], s)` from `s = 0` (as `kernel` documents), NaN as `-inf`,
    /// then a full sort by (score desc, index asc). Results must match bit for bit.
    fn naive_fma(
        items: &[f32],
        dim: usize,
        q: &[f32],
        k: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<Hit> {
        let mut all: Vec<Hit> = items
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| keep(*i as u32))
            .map(|(i, row)| {
                let s = row
                    .iter()
                    .zip(q)
                    .fold(0f32, |s, (&x, &y)| crate::kernel::fused(y, x, s));
                Hit {
                    item: i as u32,
                    score: sanitize(s),
                }
            })
            .collect();
        all.sort_by(rank_order);
        all.truncate(k);
        all
    }

    /// Small integers as coordinates: many exact ties between items, so the tie
    /// order is tested for real, not just by luck of distinct floats.
    fn tied(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.below(3) as f32 - 1.0).collect()
    }

    #[test]
    fn every_kernel_equals_the_naive_fma_reference_bit_for_bit() {
        let kernels = Kernel::available();
        for seed in 0..24u64 {
            let mut rng = Rng::new(100 + seed);
            let dim = [1, 2, 7, 16, 32, 33, 64][seed as usize % 7];
            // Sizes around block (16), tile and chunk (2048) boundaries.
            let n = [1, 15, 16, 17, 100, 257, 2047, 2048, 2049, 4500][rng.below(10) as usize];
            let with_ties = seed % 2 == 0;
            let mut items = if with_ties {
                tied(&mut rng, n * dim)
            } else {
                random(&mut rng, n * dim)
            };
            if seed % 6 == 1 && n > 3 {
                // NaN and infinite scores: a NaN coordinate, and +inf against a
                // query coordinate that may be 0 (inf · 0 = NaN) or not.
                items[dim] = f32::NAN;
                items[2 * dim] = f32::INFINITY;
                items[3 * dim] = f32::NEG_INFINITY;
            }
            let index = ExactIndex::new(items.clone(), dim).unwrap();
            let nq = 1 + rng.below(21) as usize;
            let queries = if with_ties {
                tied(&mut rng, nq * dim)
            } else {
                random(&mut rng, nq * dim)
            };
            let k = [1, 3, 10, 16, 17, 40, n + 5][rng.below(7) as usize];
            let seen: Vec<Vec<u32>> = (0..nq)
                .map(|_| {
                    let mut v: Vec<u32> = (0..rng.below(n as u64 + 1))
                        .map(|_| rng.below(n as u64 + 2) as u32)
                        .collect();
                    v.sort_unstable();
                    v
                })
                .collect();
            let filter = |q: usize| match q % 3 {
                0 => Filter::None,
                1 => Filter::ExcludeSorted(&seen[q]),
                _ => Filter::AllowOnly(&[]),
            };
            let keep = |q: usize, i: u32| match q % 3 {
                0 => true,
                1 => seen[q].binary_search(&i).is_err(),
                _ => false,
            };
            for &kernel in &kernels {
                let batch = index
                    .search_batch_with(kernel, &queries, k, &filter)
                    .unwrap();
                for q in 0..nq {
                    let query = &queries[q * dim..(q + 1) * dim];
                    let want = naive_fma(&items, dim, query, k, |i| keep(q, i));
                    let single = index.search_with(kernel, query, k, &filter(q)).unwrap();
                    let ctx = format!("{kernel:?} seed {seed} q {q} n {n} dim {dim} k {k}");
                    let bits = |h: &[Hit]| {
                        h.iter()
                            .map(|h| (h.item, h.score.to_bits()))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&single), bits(&want), "single {ctx}");
                    assert_eq!(bits(&batch[q]), bits(&want), "batch {ctx}");
                }
            }
        }
    }

    #[test]
    fn allow_lists_score_bit_identically_to_full_scans() {
        let mut rng = Rng::new(9);
        let (n, dim) = (300, 19);
        let items = random(&mut rng, n * dim);
        let index = ExactIndex::new(items.clone(), dim).unwrap();
        let q = random(&mut rng, dim);
        let all = index.search(&q, n, &Filter::None).unwrap();
        let allow: Vec<u32> = (0..n as u32).rev().step_by(3).collect();
        for kernel in Kernel::available() {
            let got = index
                .search_with(kernel, &q, n, &Filter::AllowOnly(&allow))
                .unwrap();
            let want: Vec<Hit> = all
                .iter()
                .filter(|h| allow.contains(&h.item))
                .copied()
                .collect();
            assert_eq!(got, want, "{kernel:?}");
        }
    }

    #[test]
    fn bitmap_filters_equal_allow_lists_dense_and_sparse() {
        let mut rng = Rng::new(17);
        let (n, dim) = (3000, 24);
        let items = random(&mut rng, n * dim);
        let index = ExactIndex::new(items, dim).unwrap();
        let queries = random(&mut rng, 9 * dim);
        // Dense (a scan with masking) and sparse (the allow-list path).
        for every in [2u32, 3, 50] {
            let allowed: Vec<u32> = (0..n as u32).filter(|i| i % every == 1).collect();
            let bitmap = crate::ItemBitmap::allowing(n, &allowed).unwrap();
            for kernel in Kernel::available() {
                let want = index
                    .search_batch_with(kernel, &queries, 25, &|_| Filter::AllowOnly(&allowed))
                    .unwrap();
                let got = index
                    .search_batch_with(kernel, &queries, 25, &|_| Filter::AllowBitmap(&bitmap))
                    .unwrap();
                assert_eq!(got, want, "{kernel:?} 1 in {every}");
                for (q, w) in queries.chunks_exact(dim).zip(&want) {
                    let single = index
                        .search_with(kernel, q, 25, &Filter::AllowBitmap(&bitmap))
                        .unwrap();
                    assert_eq!(&single, w, "{kernel:?} 1 in {every}, single");
                }
            }
        }
        let e = index
            .search(
                &queries[..dim],
                3,
                &Filter::AllowBitmap(&crate::ItemBitmap::all(7)),
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid filter: the bitmap covers 7 items, the index has 3000"
        );
    }

    #[test]
    fn ties_break_by_lower_index_in_both_paths() {
        // Items 1, 3 and 4 tie for the best score; 0 and 2 tie below.
        let items = vec![1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 2.0, 0.0, 2.0, 0.0];
        let index = ExactIndex::new(items, 2).unwrap();
        let want = vec![1, 3, 4, 0];
        let single: Vec<u32> = index
            .search(&[1.0, 5.0], 4, &Filter::None)
            .unwrap()
            .iter()
            .map(|h| h.item)
            .collect();
        assert_eq!(single, want);
        let batch = index
            .search_batch(&[1.0, 5.0], 4, &|_| Filter::None)
            .unwrap();
        assert_eq!(batch[0].iter().map(|h| h.item).collect::<Vec<_>>(), want);
        let allow: Vec<u32> = index
            .search(&[1.0, 5.0], 10, &Filter::AllowOnly(&[4, 0, 3, 4]))
            .unwrap()
            .iter()
            .map(|h| h.item)
            .collect();
        assert_eq!(allow, vec![3, 4, 0]);
    }

    #[test]
    fn shapes_and_edge_cases() {
        let index = ExactIndex::new(vec![1.0; 12], 4).unwrap();
        assert_eq!((index.len(), index.dim()), (3, 4));
        let e = index.search(&[1.0; 3], 1, &Filter::None).unwrap_err();
        assert!(
            e.to_string().contains("dim 4") && e.to_string().contains("got 3"),
            "{e}"
        );
        assert!(index.search_batch(&[1.0; 6], 1, &|_| Filter::None).is_err());
        assert!(index
            .search(&[1.0; 4], 0, &Filter::None)
            .unwrap()
            .is_empty());
        assert_eq!(index.search(&[1.0; 4], 99, &Filter::None).unwrap().len(), 3);
        assert_eq!(
            index
                .search(&[1.0; 4], usize::MAX, &Filter::None)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            index
                .search_batch(&[1.0; 8], usize::MAX, &|_| Filter::ExcludeSorted(&[1]))
                .unwrap(),
            vec![index.search(&[1.0; 4], 9, &Filter::Exclude(&[1])).unwrap(); 2]
        );
        assert!(index
            .search_batch(&[], 5, &|_| Filter::None)
            .unwrap()
            .is_empty());
        assert!(ExactIndex::new(vec![1.0; 5], 4).is_err());
        assert!(ExactIndex::new(vec![], 0).is_err());
        let empty = ExactIndex::new(vec![], 4).unwrap();
        assert!(empty
            .search(&[1.0; 4], 3, &Filter::None)
            .unwrap()
            .is_empty());
        assert_eq!(
            empty.search_batch(&[1.0; 8], 3, &|_| Filter::None).unwrap(),
            vec![vec![], vec![]]
        );
    }

    #[test]
    fn save_load_round_trip_is_bit_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/items.safetensors");
        let mut rng = Rng::new(3);
        let mut items = random(&mut rng, 50 * 7);
        // Values whose bits must survive: -0.0, subnormal, infinities, a NaN payload.
        items[..5].copy_from_slice(&[
            -0.0,
            f32::MIN_POSITIVE / 3.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7fc0_1234),
        ]);
        let index = ExactIndex::new(items, 7).unwrap();
        index.save(&path).unwrap();
        let back = ExactIndex::load(&path).unwrap();
        assert_eq!(back.dim(), 7);
        let bits = |x: &ExactIndex| x.items().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&index));
        // Only the final file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn saving_the_same_index_always_writes_the_same_bytes() {
        // The metadata map is a HashMap inside safetensors: without sorting the header,
        // its two keys came out in either order from one save to the next.
        let dir = tempfile::tempdir().unwrap();
        let index = ExactIndex::new(random(&mut Rng::new(5), 20 * 4), 4).unwrap();
        let path = dir.path().join("items.safetensors");
        index.save(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        for _ in 0..20 {
            index.save(&path).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), first);
        }
        // Still a valid safetensors file: header length, then a space-padded header.
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&first[8..8 + n]).unwrap();
        assert!(header.contains(r#""__metadata__":{"format":"#), "{header}");
        assert_eq!(ExactIndex::load(&path).unwrap().items(), index.items());
    }

    #[test]
    fn truncated_garbage_and_foreign_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.safetensors");
        let index = ExactIndex::new((0..40).map(|i| i as f32).collect(), 4).unwrap();
        index.save(&path).unwrap();
        let full = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        for cut in [0, 4, 8, 20, full.len() / 2, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let e = ExactIndex::load(&path).unwrap_err().to_string();
            assert!(e.contains(&name), "cut {cut}: {e}");
        }
        std::fs::write(
            &path,
            b"this is not a safetensors file at all, just some text",
        )
        .unwrap();
        let e = ExactIndex::load(&path).unwrap_err().to_string();
        assert!(e.contains(&name), "{e}");
        // A valid safetensors file that is not an index.
        let other = safetensors::serialize(
            [(
                "weights",
                TensorView::new(Dtype::F32, vec![1], &[0, 0, 0, 0]).unwrap(),
            )],
            None,
        )
        .unwrap();
        std::fs::write(&path, other).unwrap();
        let e = ExactIndex::load(&path).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("format"), "{e}");
        let missing = dir.path().join("missing.safetensors");
        let e = ExactIndex::load(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.safetensors"), "{e}");
    }
}
