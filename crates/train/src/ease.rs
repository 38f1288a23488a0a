//! Fitting [`EaseModel`]s: `G = XᵀX + λI`, `P = G⁻¹`, `B = I − P · diag(1/diag(P))`
//! (Steck, "Embarrassingly Shallow Autoencoders", 2019), in `f64`.
//!
//! The closed form needs two dense `items × items` `f64` matrices at once, so a fit
//! refuses, before allocating anything large, a catalogue whose matrices would exceed
//! `max_items` or `max_memory_gb` (use iALS or the two-tower model there).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shortlist_core::Dataset;
use shortlist_features::FeatureConfig;
use shortlist_model::linalg::spd_inverse;
use shortlist_model::{EaseConfig, EaseModel, ItemWeights, ModelMeta};

use crate::error::{Error, Result};
use crate::interactions::UserItems;

/// `[ease]` configuration (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EaseTrainConfig {
    /// L2 penalty λ on the diagonal of the Gram matrix.
    pub lambda: f64,
    /// Largest catalogue (item vocabulary rows) a fit accepts.
    pub max_items: usize,
    /// Largest memory (GB, 10⁹ bytes) the fit's two `items × items` `f64` matrices
    /// may take.
    pub max_memory_gb: f64,
    /// Id vocabularies (side features are not used).
    pub features: FeatureConfig,
}

impl Default for EaseTrainConfig {
    fn default() -> Self {
        EaseTrainConfig {
            lambda: 400.0,
            max_items: 30_000,
            max_memory_gb: 8.0,
            features: FeatureConfig::default(),
        }
    }
}

crate::config::config_file!(EaseTrainConfig, pretty = false);

impl EaseTrainConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(Error::invalid(
                "lambda",
                format!("expected a positive number, got {}", self.lambda),
            ));
        }
        if !(self.max_memory_gb.is_finite() && self.max_memory_gb > 0.0) {
            return Err(Error::invalid(
                "max_memory_gb",
                format!("expected a positive number, got {}", self.max_memory_gb),
            ));
        }
        Ok(())
    }

    /// Refuses a catalogue of `n` item rows above the limits, with the reason.
    pub fn check_size(&self, n: usize) -> Result<()> {
        let gb = 2.0 * 8.0 * (n as f64) * (n as f64) / 1e9;
        if n > self.max_items {
            return Err(Error::invalid(
                "ease",
                format!(
                    "{n} items exceed max_items = {} (EASE inverts an items × items matrix; \
                     use iALS or the two-tower model for this catalogue, or raise [ease] max_items)",
                    self.max_items
                ),
            ));
        }
        if gb > self.max_memory_gb {
            return Err(Error::invalid(
                "ease",
                format!(
                    "{n} items need {gb:.1} GB for two {n} × {n} f64 matrices, above \
                     max_memory_gb = {} (use iALS or the two-tower model, or raise [ease] max_memory_gb)",
                    self.max_memory_gb
                ),
            ));
        }
        Ok(())
    }
}

/// Fits EASE on `rows` of `dataset`.
pub fn train_ease(dataset: &Dataset, rows: &[usize], cfg: &EaseTrainConfig) -> Result<EaseModel> {
    cfg.validate()?;
    let (ui, meta) = UserItems::for_fit(dataset, rows, &cfg.features, cfg)?;
    fit_ease(ui, cfg, meta)
}

/// Fits EASE on a prepared matrix (its vocabularies become the model's).
pub fn fit_ease(ui: UserItems, cfg: &EaseTrainConfig, meta: ModelMeta) -> Result<EaseModel> {
    cfg.validate()?;
    cfg.check_size(ui.num_items())?;
    let weights = fit_weights(&ui, cfg.lambda)?;
    let model = EaseModel {
        config: EaseConfig { lambda: cfg.lambda },
        spec: ui.spec,
        weights: ItemWeights::Dense(weights),
        seen: ui.by_user,
        popularity: ui.popularity,
        meta,
    };
    model.check()?;
    Ok(model)
}

/// The EASE weight matrix `B` (`f32`, row-major) of the binary matrix `ui`.
pub fn fit_weights(ui: &UserItems, lambda: f64) -> Result<Vec<f32>> {
    let n = ui.num_items();
    // G = XᵀX + λI, row i from the users of item i (rows are independent).
    let mut g = vec![0f64; n * n];
    g.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for &u in ui.by_item.row(i) {
            for &j in ui.by_user.row(u as usize) {
                row[j as usize] += 1.0;
            }
        }
        row[i] += lambda;
    });
    let p = spd_inverse(g, n)?;
    // B[i][j] = −P[i][j] / P[j][j], zero diagonal.
    let diag: Vec<f64> = (0..n).map(|j| p[j * n + j]).collect();
    let mut b = vec![0f32; n * n];
    b.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for (j, w) in row.iter_mut().enumerate() {
            if i != j {
                *w = (-p[i * n + j] / diag[j]) as f32;
            }
        }
    });
    Ok(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_data::synth::{generate, SynthConfig};

    /// The textbook solve on a tiny matrix: minimise ‖X − XB‖² + λ‖B‖² subject to
    /// diag(B) = 0, column by column with a Lagrange multiplier, by Gaussian
    /// elimination on the (n+1) × (n+1) KKT system (no inverse, no Cholesky).
    #[allow(clippy::needless_range_loop)] // textbook index notation
    fn direct(x: &[Vec<f64>], lambda: f64) -> Vec<f64> {
        let n = x[0].len();
        let mut g = vec![vec![0f64; n]; n];
        for row in x {
            for i in 0..n {
                for j in 0..n {
                    g[i][j] += row[i] * row[j];
                }
            }
        }
        let mut b = vec![0f64; n * n];
        for j in 0..n {
            // [G+λI  e_j] [b]   [G e_j]
            // [e_jᵀ   0 ] [μ] = [  0  ]
            let m = n + 1;
            let mut a = vec![vec![0f64; m + 1]; m];
            for i in 0..n {
                for k in 0..n {
                    a[i][k] = g[i][k] + if i == k { lambda } else { 0.0 };
                }
                a[i][n] = if i == j { 1.0 } else { 0.0 };
                a[i][m] = g[i][j];
            }
            a[n][j] = 1.0;
            for c in 0..m {
                let piv = (c..m)
                    .max_by(|&p, &q| a[p][c].abs().total_cmp(&a[q][c].abs()))
                    .unwrap();
                a.swap(c, piv);
                for r in 0..m {
                    if r != c {
                        let f = a[r][c] / a[c][c];
                        for k in c..=m {
                            a[r][k] -= f * a[c][k];
                        }
                    }
                }
            }
            for i in 0..n {
                b[i * n + j] = a[i][m] / a[i][i];
            }
        }
        b
    }

    #[test]
    fn closed_form_equals_the_direct_constrained_solve() {
        let (data, _) = generate(&SynthConfig::sized(40, 12, 200)).unwrap();
        let rows: Vec<usize> = (0..data.interactions.len()).collect();
        let cfg = EaseTrainConfig {
            lambda: 3.0,
            ..Default::default()
        };
        let model = train_ease(&data, &rows, &cfg).unwrap();
        let ui = UserItems::build(&data, &rows, &cfg.features).unwrap();
        let n = ui.num_items();
        let x: Vec<Vec<f64>> = (0..ui.num_users())
            .map(|u| {
                let mut r = vec![0f64; n];
                for &i in ui.by_user.row(u) {
                    r[i as usize] = 1.0;
                }
                r
            })
            .collect();
        let want = direct(&x, 3.0);
        let weights = model.weights.to_dense(n);
        for (k, (&got, &w)) in weights.iter().zip(&want).enumerate() {
            assert!(
                (got as f64 - w).abs() < 1e-5,
                "B[{}][{}]: {got} vs {w}",
                k / n,
                k % n
            );
        }
        assert!((0..n).all(|i| weights[i * n + i] == 0.0));
        // Scoring sums the rows of the user's items.
        let hist = model.seen.row(1).to_vec();
        let mut all = vec![0f32; n];
        model.scores_into(&hist, &mut all);
        let items: Vec<u32> = (0..n as u32).rev().collect();
        let mut some = vec![0f32; n];
        model.score_items(&hist, &items, &mut some);
        for (k, &j) in items.iter().enumerate() {
            assert_eq!(some[k], all[j as usize]);
            let want: f64 = hist
                .iter()
                .map(|&h| want[h as usize * n + j as usize])
                .sum();
            assert!((all[j as usize] as f64 - want).abs() < 1e-4);
        }
    }

    #[test]
    fn large_catalogues_are_refused_before_allocating() {
        let cfg = EaseTrainConfig::default();
        let err = cfg.check_size(40_000).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid ease: 40000 items exceed max_items = 30000 (EASE inverts an items × items \
             matrix; use iALS or the two-tower model for this catalogue, or raise [ease] max_items)"
        );
        let cfg = EaseTrainConfig {
            max_memory_gb: 1.0,
            ..Default::default()
        };
        let err = cfg.check_size(10_000).unwrap_err().to_string();
        assert!(err.contains("10000 items need 1.6 GB"), "{err}");
        assert!(cfg.check_size(7_000).is_ok());
    }

    /// EASE with the default configuration on 30 users × 20 items of generated data.
    fn small_model() -> EaseModel {
        let (data, _) = generate(&SynthConfig::sized(30, 20, 300)).unwrap();
        let rows: Vec<usize> = (0..data.interactions.len()).collect();
        train_ease(&data, &rows, &EaseTrainConfig::default()).unwrap()
    }

    #[test]
    fn precomputed_user_scores_equal_the_summed_ones_bit_for_bit() {
        let m = small_model();
        let all = m.user_scores();
        let n = m.num_items();
        assert_eq!(all.len(), m.num_users() * n);
        let items: Vec<u32> = (0..n as u32).collect();
        let mut summed = vec![0f32; n];
        let mut nonzero = 0;
        for u in 0..m.num_users() {
            m.score_items(m.seen.row(u), &items, &mut summed);
            let row = &all[u * n..(u + 1) * n];
            assert!(row
                .iter()
                .zip(&summed)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            nonzero += row.iter().filter(|v| **v != 0.0).count();
        }
        assert!(nonzero > 0);
    }

    #[test]
    fn sparse_weights_score_like_their_dense_matrix_bit_for_bit() {
        let m = small_model();
        let n = m.num_items();
        let dense = m.weights.to_dense(n).into_owned();
        // Keep the 4 largest weights of each row, columns increasing.
        let keep = 4;
        let (mut col_index, mut values) = (Vec::new(), Vec::new());
        for i in 0..n {
            let row = &dense[i * n..(i + 1) * n];
            let mut cols: Vec<u32> = (0..n as u32).collect();
            cols.sort_by(|&a, &b| row[b as usize].abs().total_cmp(&row[a as usize].abs()));
            cols.truncate(keep);
            cols.sort_unstable();
            values.extend(cols.iter().map(|&c| row[c as usize]));
            col_index.extend(cols);
        }
        let sparse = shortlist_model::compact::SparseRows {
            rows: n,
            cols: n,
            keep,
            col_index,
            values,
        };
        let mut s = m.clone();
        s.weights = ItemWeights::Sparse(sparse.clone());
        s.check().unwrap();
        let mut d = m.clone();
        d.weights = ItemWeights::Dense(sparse.to_dense());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&s.user_scores()), bits(&d.user_scores()));
        let items: Vec<u32> = (0..n as u32).rev().collect();
        let history = [3u32, 1, 7, n as u32 + 5];
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        s.score_items(&history, &items, &mut a);
        d.score_items(&history, &items, &mut b);
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().filter(|v| **v != 0.0).count() >= keep);
        s.scores_into(&history, &mut a);
        d.scores_into(&history, &mut b);
        assert_eq!(bits(&a), bits(&b));
        // Saved dense; loaded back equal to the dense form.
        let dir = tempfile::tempdir().unwrap();
        s.save(&dir.path().join("s"), &[]).unwrap();
        assert_eq!(EaseModel::load(&dir.path().join("s")).unwrap(), d);
        // A matrix of another shape is refused.
        let mut wrong = s.clone();
        wrong.weights = ItemWeights::Sparse(shortlist_model::compact::SparseRows {
            rows: n - 1,
            ..sparse
        });
        assert_eq!(
            wrong.check().unwrap_err().to_string(),
            format!(
                "invalid weights: expected {n}×{n} values, got {}×{n}",
                n - 1
            )
        );
    }

    #[test]
    fn save_load_round_trip_is_bit_identical() {
        let m = small_model();
        let dir = tempfile::tempdir().unwrap();
        m.save(&dir.path().join("e"), &[]).unwrap();
        let back = EaseModel::load(&dir.path().join("e")).unwrap();
        assert_eq!(back, m);
        let err = shortlist_model::IalsModel::load(&dir.path().join("e"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("manifest.json: model kind \"ease\", expected \"ials\""),
            "{err}"
        );
    }
}
