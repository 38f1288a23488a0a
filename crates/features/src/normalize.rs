//! Numeric preprocessing: z-score normalisation and quantile bucketisation.

use serde::{Deserialize, Serialize};

/// Z-score normaliser fitted on the training split. Missing values (NaN) map to 0,
/// the mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Mean of the fitted values.
    pub mean: f64,
    /// Population standard deviation (1 when the values are constant).
    pub std: f64,
    /// Number of non-missing values fitted.
    pub count: u64,
}

impl Normalizer {
    /// Fits on `values`, ignoring NaN (Welford's algorithm: stable for large timestamps).
    pub fn fit(values: impl IntoIterator<Item = f64>) -> Self {
        let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
        for x in values.into_iter().filter(|x| !x.is_nan()) {
            n += 1;
            let d = x - mean;
            mean += d / n as f64;
            m2 += d * (x - mean);
        }
        let var = if n > 0 { m2 / n as f64 } else { 0.0 };
        let std = var.sqrt();
        Normalizer {
            mean,
            std: if std > 1e-12 { std } else { 1.0 },
            count: n,
        }
    }

    /// `(x - mean) / std`; NaN → 0.
    pub fn transform(&self, x: f64) -> f32 {
        if x.is_nan() {
            0.0
        } else {
            ((x - self.mean) / self.std) as f32
        }
    }
}

/// Quantile buckets. Bucket 0 holds missing values; buckets `1..=boundaries.len() + 1`
/// hold values by the fitted boundaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucketizer {
    /// Sorted, distinct boundaries: bucket k+1 holds `boundaries[k-1] <= x < boundaries[k]`.
    pub boundaries: Vec<f64>,
}

impl Bucketizer {
    /// Fits `buckets` equal-frequency buckets on `values` (NaN ignored).
    pub fn fit(values: impl IntoIterator<Item = f64>, buckets: usize) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_unstable_by(f64::total_cmp);
        let mut boundaries = Vec::new();
        if !v.is_empty() {
            for k in 1..buckets.max(1) {
                let b = v[(k * v.len() / buckets).min(v.len() - 1)];
                if boundaries.last().is_none_or(|&last| b > last) {
                    boundaries.push(b);
                }
            }
        }
        Bucketizer { boundaries }
    }

    /// Bucket of `x` (0 for NaN).
    pub fn bucket(&self, x: f64) -> u32 {
        if x.is_nan() {
            0
        } else {
            1 + self.boundaries.partition_point(|&b| b <= x) as u32
        }
    }

    /// Number of buckets including the missing-value bucket.
    pub fn len(&self) -> usize {
        self.boundaries.len() + 2
    }

    /// Never empty (there is always the missing bucket and one value bucket).
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizer_statistics() {
        // mean 5, population variance ((9+1+1+9)/4) = 5
        let n = Normalizer::fit([2.0, 4.0, 6.0, 8.0, f64::NAN]);
        assert_eq!(n.count, 4);
        assert!((n.mean - 5.0).abs() < 1e-12);
        assert!((n.std - 5f64.sqrt()).abs() < 1e-12);
        assert!((n.transform(8.0) - (3.0 / 5f64.sqrt()) as f32).abs() < 1e-6);
        assert_eq!(n.transform(f64::NAN), 0.0);
    }

    #[test]
    fn normalizer_is_stable_on_timestamps() {
        let ts: Vec<f64> = (0..1000).map(|k| 880_000_000.0 + k as f64).collect();
        let n = Normalizer::fit(ts.iter().copied());
        assert!((n.mean - 880_000_499.5).abs() < 1e-6);
        assert!((n.std - 288.674990257).abs() < 1e-6);
    }

    #[test]
    fn constant_values_do_not_divide_by_zero() {
        let n = Normalizer::fit([3.0, 3.0]);
        assert_eq!(n.std, 1.0);
        assert_eq!(n.transform(3.0), 0.0);
    }

    #[test]
    fn quantile_buckets() {
        let b = Bucketizer::fit((0..100).map(f64::from), 4);
        assert_eq!(b.boundaries, vec![25.0, 50.0, 75.0]);
        assert_eq!(
            (
                b.bucket(0.0),
                b.bucket(25.0),
                b.bucket(99.0),
                b.bucket(f64::NAN)
            ),
            (1, 2, 4, 0)
        );
        assert_eq!(b.len(), 5);
    }
}
