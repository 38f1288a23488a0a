//! [`ExactIndex`]: brute-force maximum inner product search, the ground truth that
//! approximate indexes are measured against.
//!
//! * Single query: dot products tile by tile (a 4 KiB stack buffer, no allocation per
//!   query proportional to the catalogue), then the partial selection of `select`.
//! * Batch: a block of queries × a tile of items is one GEMM (`matrixmultiply`), each
//!   score row then goes through the same selection; query blocks run in parallel.
//! * Persistence: safetensors, one `F32` tensor `items` of shape `[n, dim]` plus
//!   `format`/`version` metadata, written atomically.
//!
//! `unsafe` is allowed in this module only, for two reasons, each next to its use:
//! calling the AVX2+FMA instantiation of the dot kernel after runtime detection, and
//! the raw-pointer `sgemm` call, whose bounds are asserted first.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::select::{Admissible, TopK};

/// Value of the `format` metadata key of a saved index.
pub const FORMAT: &str = "shortlist.exact-index";
/// Value of the `version` metadata key written by this crate.
pub const FORMAT_VERSION: &str = "1";
/// Name of the item-embedding tensor in a saved index.
pub const TENSOR_NAME: &str = "items";

/// Items scored per tile in the single-query path (a stack buffer of this many f32).
const SINGLE_TILE: usize = 1024;
/// Queries per GEMM block in the batch path (also the unit of parallel work).
const QUERY_BLOCK: usize = 128;
/// Items per GEMM tile in the batch path: QUERY_BLOCK × ITEM_TILE × 4 B = 256 KiB of
/// scores, so a block's scores stay in L2 while they are selected.
const ITEM_TILE: usize = 2048;

/// Exact top-K by inner product over an `n × dim` row-major item matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactIndex {
    items: Vec<f32>,
    dim: usize,
}

impl ExactIndex {
    /// An index over `items` (`n × dim`, row-major). Errors when `dim` is 0, when the
    /// length is not a multiple of `dim`, or when `n` does not fit in `u32`.
    pub fn new(items: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("dim", "must be at least 1"));
        }
        if !items.len().is_multiple_of(dim) {
            return Err(Error::Dimension {
                what: format!("items (length {} is not n × dim)", items.len()),
                expected: dim,
                found: items.len() % dim,
            });
        }
        let n = items.len() / dim;
        if n > u32::MAX as usize {
            return Err(Error::invalid(
                "items",
                format!("{n} items do not fit in u32 item indices"),
            ));
        }
        Ok(ExactIndex { items, dim })
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
        let bytes: Vec<u8> = self.items.iter().flat_map(|x| x.to_le_bytes()).collect();
        let view =
            TensorView::new(Dtype::F32, vec![self.len(), self.dim], &bytes).map_err(|e| {
                Error::Format {
                    path: path.to_path_buf(),
                    message: format!("cannot build tensor {TENSOR_NAME}: {e}"),
                }
            })?;
        let metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), FORMAT_VERSION.to_string()),
        ]);
        let buf = safetensors::serialize([(TENSOR_NAME, view)], Some(metadata)).map_err(|e| {
            Error::Format {
                path: path.to_path_buf(),
                message: format!("cannot serialise: {e}"),
            }
        })?;
        shortlist_core::atomic::write_file(path, &buf)?;
        Ok(())
    }

    /// Loads an index written by [`save`](Self::save). A missing, truncated or corrupt
    /// file, or one that holds something else, is an error naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let bad = |message: String| Error::Format {
            path: path.to_path_buf(),
            message,
        };
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
        let format = meta.metadata().as_ref().and_then(|m| m.get("format"));
        if format.map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "metadata `format` is {format:?}, expected {FORMAT:?}"
            )));
        }
        let version = meta.metadata().as_ref().and_then(|m| m.get("version"));
        if version.map(String::as_str) != Some(FORMAT_VERSION) {
            return Err(bad(format!(
                "metadata `version` is {version:?}; this build reads version {FORMAT_VERSION}"
            )));
        }
        let t = st
            .tensor(TENSOR_NAME)
            .map_err(|e| bad(format!("no tensor {TENSOR_NAME:?} ({e})")))?;
        if t.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor {TENSOR_NAME:?} has dtype {:?}, expected F32",
                t.dtype()
            )));
        }
        let &[n, dim] = t.shape() else {
            return Err(bad(format!(
                "tensor {TENSOR_NAME:?} has shape {:?}, expected [n, dim]",
                t.shape()
            )));
        };
        let data = t.data();
        if data.len() != n * dim * 4 {
            return Err(bad(format!(
                "tensor {TENSOR_NAME:?} holds {} bytes, shape [{n}, {dim}] needs {}",
                data.len(),
                n * dim * 4
            )));
        }
        let items = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        ExactIndex::new(items, dim).map_err(|e| bad(e.to_string()))
    }

    fn check_query(&self, what: &str, len: usize) -> Result<()> {
        if len != self.dim {
            return Err(Error::Dimension {
                what: what.into(),
                expected: self.dim,
                found: len,
            });
        }
        Ok(())
    }

    /// Top-K for one block of queries (`m × dim`, `m ≤ QUERY_BLOCK`); `first` is the
    /// index of the block's first query (for `filter_of`).
    fn search_block<'f>(
        &self,
        block: &[f32],
        first: usize,
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        let n = self.len();
        let m = block.len() / self.dim;
        let mut states = (0..m)
            .map(|q| {
                Ok((
                    Admissible::prepare(&filter_of(first + q), n)?,
                    TopK::new(k, n),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let tile = ITEM_TILE.min(n);
        let mut scores = vec![0f32; m * tile];
        for start in (0..n).step_by(tile.max(1)) {
            let width = tile.min(n - start);
            gemm_abt(
                m,
                width,
                self.dim,
                block,
                &self.items[start * self.dim..(start + width) * self.dim],
                &mut scores,
                width,
            );
            for (q, (adm, top)) in states.iter_mut().enumerate() {
                adm.scan(&scores[q * width..(q + 1) * width], start, top);
            }
        }
        Ok(states
            .into_iter()
            .map(|(_, top)| top.into_sorted())
            .collect())
    }
}

impl TopKIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.items.len() / self.dim
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.check_query("query", query.len())?;
        let n = self.len();
        let mut adm = Admissible::prepare(filter, n)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut top = TopK::new(k, n);
        if let Some(allowed) = adm.allow_list() {
            // Score only the allowed items.
            for &item in allowed {
                let row = &self.items[item as usize * self.dim..(item as usize + 1) * self.dim];
                let mut s = [0f32; 1];
                scores_into(row, self.dim, query, &mut s);
                top.push(Hit {
                    item,
                    score: if s[0].is_nan() {
                        f32::NEG_INFINITY
                    } else {
                        s[0]
                    },
                });
            }
            return Ok(top.into_sorted());
        }
        let mut buf = [0f32; SINGLE_TILE];
        for start in (0..n).step_by(SINGLE_TILE) {
            let width = SINGLE_TILE.min(n - start);
            let rows = &self.items[start * self.dim..(start + width) * self.dim];
            scores_into(rows, self.dim, query, &mut buf[..width]);
            adm.scan(&buf[..width], start, &mut top);
        }
        Ok(top.into_sorted())
    }

    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        if !queries.len().is_multiple_of(self.dim) {
            return Err(Error::Dimension {
                what: format!(
                    "queries (length {} is not n × dim; remainder)",
                    queries.len()
                ),
                expected: self.dim,
                found: queries.len() % self.dim,
            });
        }
        let blocks = queries
            .par_chunks(QUERY_BLOCK * self.dim)
            .enumerate()
            .map(|(b, block)| self.search_block(block, b * QUERY_BLOCK, k, filter_of))
            .collect::<Result<Vec<_>>>()?;
        Ok(blocks.into_iter().flatten().collect())
    }
}

/// `out[i] = rows[i] · q` for the `out.len()` rows of `rows` (`out.len() × dim`).
fn scores_into(rows: &[f32], dim: usize, q: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above), the only
            // requirement of calling a `#[target_feature(enable = "avx2,fma")]` function.
            unsafe { scores_avx2(rows, dim, q, out) };
            return;
        }
    }
    scores_portable(rows, dim, q, out);
}

/// The portable kernel compiled with AVX2 and FMA enabled, so LLVM uses 8-lane vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scores_avx2(rows: &[f32], dim: usize, q: &[f32], out: &mut [f32]) {
    scores_portable(rows, dim, q, out);
}

#[inline(always)]
fn scores_portable(rows: &[f32], dim: usize, q: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim)) {
        *o = dot(row, q);
    }
}

/// Dot product with 16 independent lanes, so the loop vectorises (8-wide × 2 under
/// AVX2, 4-wide × 4 under SSE2) and the additions are not one serial chain.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut w = 8;
    while w > 0 {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
        w /= 2;
    }
    acc[0] + tail
}

/// `c[i * ldc + j] = Σ_d a[i * k + d] · b[j * k + d]` for `i < m`, `j < n`: A (m × k)
/// times Bᵀ where B is n × k, both row-major.
fn gemm_abt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= m * k && b.len() >= n * k && ldc >= n && c.len() >= (m - 1) * ldc + n);
    // SAFETY: the assertion above keeps every access of sgemm (rows of A with stride k,
    // columns of Bᵀ with stride k, rows of C with stride ldc) inside the three slices;
    // `c` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;
    use crate::select::rank_order;
    use shortlist_core::Rng;

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.normal() as f32).collect()
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
