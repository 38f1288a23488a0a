//! How many items an IVF search must open for a given recall: measured once per index
//! (at build, or with the model's own queries) and stored with it.
//!
//! (The method is described in the `ivf` module docs, "Calibration".)

use std::path::Path;

use safetensors::tensor::Dtype;

use super::IvfIndex;
use crate::error::Result;
use crate::index_base::TopKIndex;
use crate::persist;

/// The ladder of k measured (those `≤ n`).
const KS: [usize; 5] = [10, 30, 100, 300, 1000];
/// The table holds the mean recall minus this many standard errors (one-sided 97.5 %).
const CONFIDENCE_Z: f64 = 1.96;
/// Budget points measured (geometric, the last one every item).
const BUDGET_POINTS: usize = 64;

/// The recall table of one index (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Calibration {
    /// The k measured, ascending.
    ks: Vec<u32>,
    /// Items opened, ascending; the last is every item.
    budgets: Vec<u32>,
    /// `ks.len() × budgets.len()`: mean recall@k when `budgets[j]` items are opened.
    recall: Vec<f32>,
}

/// The depth of a query for `k` hits when `admissible` of `n` items are admissible
/// (see the [module docs](self)).
pub(crate) fn depth(k: usize, admissible: usize, n: usize) -> f64 {
    let excluded = n - admissible;
    if excluded == 0 {
        k as f64
    } else {
        k as f64 * n as f64 / admissible.max(1) as f64 + excluded.min(k) as f64
    }
}

impl Calibration {
    /// A table that opens every item (before the first measurement).
    pub(crate) fn empty() -> Self {
        Calibration {
            ks: vec![1],
            budgets: vec![u32::MAX],
            recall: vec![1.0],
        }
    }

    /// Measures `index` with each group of queries (`m × dim`, `m ≥ 1`) and keeps, per
    /// point of the table, the lowest of the groups' mean recalls.
    pub(crate) fn measure(index: &IvfIndex, groups: &[&[f32]]) -> Result<Self> {
        let n = index.len();
        let ks: Vec<usize> = if n < KS[0] {
            vec![n.max(1)]
        } else {
            KS.iter().copied().filter(|&k| k <= n).collect()
        };
        let kmax = *ks.last().unwrap_or(&1);
        let first = index.head_len().max(BLOCK_ITEMS).min(n.max(1));
        let budgets: Vec<u32> = if n == 0 {
            vec![0]
        } else {
            let ratio = (n as f64 / first as f64).powf(1.0 / (BUDGET_POINTS - 1) as f64);
            let mut b: Vec<u32> = (0..BUDGET_POINTS)
                .map(|j| (first as f64 * ratio.powi(j as i32)).round() as u32)
                .collect();
            b[BUDGET_POINTS - 1] = n as u32;
            b.dedup();
            b
        };
        let mut recall = vec![1f32; ks.len() * budgets.len()];
        for queries in groups {
            // Per query: the opening positions of its exact top-kmax, in rank order.
            let positions = index.opening_positions(queries, kmax)?;
            let m = positions.len().max(1) as f64;
            for (i, &k) in ks.iter().enumerate() {
                for (j, &b) in budgets.iter().enumerate() {
                    let per_query: Vec<f64> = positions
                        .iter()
                        .map(|p| {
                            let top = &p[..k.min(p.len())];
                            top.iter().filter(|&&x| x < b).count() as f64 / top.len().max(1) as f64
                        })
                        .collect();
                    let mean = per_query.iter().sum::<f64>() / m;
                    let var = per_query
                        .iter()
                        .map(|r| (r - mean) * (r - mean))
                        .sum::<f64>()
                        / (m - 1.0).max(1.0);
                    // The lower 97.5 % confidence bound of the mean: what new queries of
                    // the same kind reach, not just the ones measured.
                    let low = (mean - CONFIDENCE_Z * (var / m).sqrt()).max(0.0);
                    let r = &mut recall[i * budgets.len() + j];
                    *r = r.min(low as f32);
                }
            }
        }
        Ok(Calibration {
            ks: ks.into_iter().map(|k| k as u32).collect(),
            budgets,
            recall,
        })
    }

    /// Items to open for mean recall `target` at `depth`: `+inf` when no budget short
    /// of every item reaches it, or when the target is 1 (then the search is exact:
    /// a sample of queries reaching recall 1 proves nothing about the next query).
    pub(crate) fn budget(&self, depth: f64, target: f64) -> f64 {
        if target >= 1.0 {
            return f64::INFINITY;
        }
        let (ks, last) = (&self.ks, self.ks.len() - 1);
        let depth = depth.max(1.0);
        if depth <= f64::from(ks[0]) {
            return self.row_budget(0, target);
        }
        if depth >= f64::from(ks[last]) {
            return self.row_budget(last, target) * depth / f64::from(ks[last]);
        }
        let i = ks.partition_point(|&k| f64::from(k) <= depth) - 1;
        let (b0, b1) = (self.row_budget(i, target), self.row_budget(i + 1, target));
        if !b1.is_finite() {
            return f64::INFINITY;
        }
        let (k0, k1) = (f64::from(ks[i]).ln(), f64::from(ks[i + 1]).ln());
        let w = (depth.ln() - k0) / (k1 - k0);
        (b0.ln() + w * (b1.ln() - b0.ln())).exp()
    }

    /// Row `i`'s smallest measured budget reaching `target` (not interpolated: recall
    /// grows in steps, a list at a time, so a point between two measured ones may fall
    /// short), `+inf` when only opening every item does.
    fn row_budget(&self, i: usize, target: f64) -> f64 {
        let nb = self.budgets.len();
        let row = &self.recall[i * nb..(i + 1) * nb];
        match row.iter().position(|&r| f64::from(r) >= target - 1e-6) {
            Some(j) if j + 1 < nb || nb == 1 => f64::from(self.budgets[j]).max(1.0),
            _ => f64::INFINITY,
        }
    }

    /// The measured recall, for reports: `(k, [(items opened, mean recall@k)])`.
    pub(crate) fn table(&self) -> Vec<(usize, Vec<(usize, f64)>)> {
        let nb = self.budgets.len();
        self.ks
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let row = self.budgets.iter().zip(&self.recall[i * nb..(i + 1) * nb]);
                (
                    k as usize,
                    row.map(|(&b, &r)| (b as usize, f64::from(r))).collect(),
                )
            })
            .collect()
    }

    /// The table as tensors `(ks, budgets, recall bytes)`.
    pub(crate) fn to_bytes(&self) -> [(Vec<usize>, Vec<u8>); 3] {
        [
            (vec![self.ks.len()], persist::u32_bytes(&self.ks)),
            (vec![self.budgets.len()], persist::u32_bytes(&self.budgets)),
            (
                vec![self.ks.len(), self.budgets.len()],
                persist::f32_bytes(&self.recall),
            ),
        ]
    }

    /// Names and dtypes of the three tensors.
    pub(crate) const TENSORS: [(&'static str, Dtype); 3] = [
        ("calibration_k", Dtype::U32),
        ("calibration_budget", Dtype::U32),
        ("calibration_recall", Dtype::F32),
    ];

    /// Reads the table of a saved index of `n` items, checking it.
    pub(crate) fn read(file: &persist::Opened<'_>, path: &Path, n: usize) -> Result<Self> {
        let (_, ks) = file.u32s(Self::TENSORS[0].0, 1)?;
        let (_, budgets) = file.u32s(Self::TENSORS[1].0, 1)?;
        let (shape, recall) = file.f32s(Self::TENSORS[2].0, 2)?;
        let ascending = |v: &[u32]| v.windows(2).all(|w| w[0] < w[1]);
        if ks.is_empty()
            || budgets.is_empty()
            || shape != [ks.len(), budgets.len()]
            || !ascending(&ks)
            || !ascending(&budgets)
            || budgets.last().is_some_and(|&b| b as usize != n)
            || recall.iter().any(|r| !(0.0..=1.0).contains(r))
        {
            return Err(persist::bad(
                path,
                format!(
                    "inconsistent calibration: k {ks:?}, {} budgets (last {:?}, expected {n}), recall shape {shape:?}",
                    budgets.len(),
                    budgets.last()
                ),
            ));
        }
        Ok(Calibration {
            ks,
            budgets,
            recall,
        })
    }
}

/// Items per block: the smallest budget measured.
const BLOCK_ITEMS: usize = crate::kernel::BLOCK;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    fn table() -> Calibration {
        // Two rows: k = 10 reaches 0.9 at 100 items and 1.0 at 1000; k = 100 reaches
        // 0.5 at 100, 0.9 at 1000, 1.0 only at every item (10,000).
        Calibration {
            ks: vec![10, 100],
            budgets: vec![100, 1000, 10_000],
            recall: vec![0.9, 1.0, 1.0, 0.5, 0.9, 1.0],
        }
    }

    #[test]
    fn budgets_are_measured_points_interpolated_in_log_k_and_beyond_the_ladder() {
        let c = table();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
        assert!(close(c.budget(10.0, 0.9), 100.0));
        assert!(close(c.budget(5.0, 0.8), 100.0), "below the ladder: row 0");
        // Between 0.9 (100 items) and 1.0 (1000): the point that reaches it.
        assert!(close(c.budget(10.0, 0.95), 1000.0));
        // Depth 100, target 0.9: 1000 items; depth √(10 · 100) is halfway in log k.
        assert!(close(c.budget(100.0, 0.9), 1000.0));
        assert!(close(c.budget(31.622_776_6, 0.9), 316.227_766));
        // Beyond the ladder: proportional.
        assert!(close(c.budget(200.0, 0.9), 2000.0));
        // Reached only by opening every item: exact.
        assert_eq!(c.budget(100.0, 0.99), f64::INFINITY);
        assert_eq!(c.budget(50.0, 0.99), f64::INFINITY);
        // Target 1: exact whatever the table says.
        assert_eq!(c.budget(10.0, 1.0), f64::INFINITY);
    }

    #[test]
    fn depth_grows_with_the_excluded_share() {
        assert_eq!(depth(10, 1000, 1000), 10.0);
        // Half excluded: twice as deep, plus k for exclusions hitting the top.
        assert_eq!(depth(10, 500, 1000), 30.0);
        // Three seen items of a million: about k + 3.
        assert!((depth(100, 999_997, 1_000_000) - 103.0).abs() < 0.01);
    }
}
