//! Fitting [`IalsModel`]s: implicit alternating least squares (Hu, Koren & Volinsky
//! 2008) with the conjugate-gradient inner solve of Takács, Pilászy & Tikk (2011), the
//! method `implicit`'s `AlternatingLeastSquares` uses on CPU.
//!
//! Loss: `Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ (Σ‖x_u‖² + Σ‖y_i‖²)` over **all** pairs,
//! `p_ui = 1` for an interaction (else 0) and `c_ui = 1 + alpha` (else 1). A half-step
//! fixes one side and solves each row's normal equations
//! `(YᵀY + Σ_{i∈I_u} (c_ui − 1) y_i y_iᵀ + λI) x_u = Σ_{i∈I_u} c_ui y_i`,
//! so it costs `O(|I_u| · f)` per row beyond the shared `YᵀY` — linear in the number of
//! interactions. Rows are independent, so they run in parallel and the result does not
//! depend on the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shortlist_core::{Dataset, Rng};
use shortlist_features::FeatureConfig;
use shortlist_model::{Csr, EmbeddingTable, IalsConfig, IalsModel, ModelMeta};

use crate::error::{Error, Result};
use crate::interactions::UserItems;

/// `[ials]` configuration (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IalsTrainConfig {
    /// Factor width.
    pub factors: usize,
    /// L2 penalty λ (absolute, as in `implicit`).
    pub regularization: f32,
    /// Confidence of an interaction: `1 + alpha`.
    pub alpha: f32,
    /// Alternating iterations (a user half-step and an item half-step each).
    pub iterations: usize,
    /// Conjugate-gradient steps per row and half-step (warm-started; 0: exact
    /// Cholesky solve per row, for testing).
    pub cg_steps: usize,
    /// Initial factors are uniform in `[0, init_scale)`.
    pub init_scale: f32,
    /// Seed of the initial factors.
    pub seed: u64,
    /// Id vocabularies (side features are not used).
    pub features: FeatureConfig,
}

impl Default for IalsTrainConfig {
    fn default() -> Self {
        IalsTrainConfig {
            factors: 64,
            regularization: 30.0,
            alpha: 3.0,
            iterations: 15,
            cg_steps: 3,
            init_scale: 0.01,
            seed: 42,
            features: FeatureConfig::default(),
        }
    }
}

crate::config::config_file!(IalsTrainConfig, pretty = false);

impl IalsTrainConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.factors == 0 || self.factors > 1024 {
            return Err(Error::invalid(
                "factors",
                format!("expected 1 to 1024, got {}", self.factors),
            ));
        }
        for (name, v) in [
            ("regularization", self.regularization),
            ("alpha", self.alpha),
            ("init_scale", self.init_scale),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("expected a non-negative number, got {v}"),
                ));
            }
        }
        if self.regularization == 0.0 && self.cg_steps == 0 {
            return Err(Error::invalid(
                "regularization",
                "must be positive for exact solves (cg_steps = 0)",
            ));
        }
        Ok(())
    }
}

/// Per-epoch timing, for progress reports and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IalsEpoch {
    /// 1-based iteration.
    pub iteration: usize,
    /// Wall seconds of the iteration (both half-steps).
    pub seconds: f64,
}

/// Fits iALS on `rows` of `dataset`; `on_epoch` is called after every iteration.
pub fn train_ials(
    dataset: &Dataset,
    rows: &[usize],
    cfg: &IalsTrainConfig,
    on_epoch: impl FnMut(IalsEpoch),
) -> Result<IalsModel> {
    cfg.validate()?;
    let (ui, meta) = UserItems::for_fit(dataset, rows, &cfg.features, cfg)?;
    fit_ials(ui, cfg, meta, on_epoch)
}

/// Fits iALS on a prepared matrix (its vocabularies become the model's).
pub fn fit_ials(
    ui: UserItems,
    cfg: &IalsTrainConfig,
    meta: ModelMeta,
    on_epoch: impl FnMut(IalsEpoch),
) -> Result<IalsModel> {
    cfg.validate()?;
    let (users, items) = fit_factors(&ui.by_user, &ui.by_item, cfg, on_epoch)?;
    let model = IalsModel {
        config: IalsConfig {
            factors: cfg.factors,
            regularization: cfg.regularization,
            alpha: cfg.alpha,
        },
        spec: ui.spec,
        user_factors: users,
        item_factors: items,
        seen: ui.by_user,
        popularity: ui.popularity,
        meta,
    };
    model.check()?;
    Ok(model)
}

/// Alternates user and item half-steps on a binary matrix given both ways.
pub fn fit_factors(
    by_user: &Csr,
    by_item: &Csr,
    cfg: &IalsTrainConfig,
    mut on_epoch: impl FnMut(IalsEpoch),
) -> Result<(EmbeddingTable, EmbeddingTable)> {
    let f = cfg.factors;
    let mut rng = Rng::new(cfg.seed);
    let mut init = |rows: usize| -> Result<EmbeddingTable> {
        let v = (0..rows * f)
            .map(|_| rng.next_f32() * cfg.init_scale)
            .collect();
        Ok(EmbeddingTable::new(rows, f, v)?)
    };
    let mut users = init(by_user.rows())?;
    let mut items = init(by_item.rows())?;
    for iteration in 1..=cfg.iterations {
        let t = std::time::Instant::now();
        half_step(&mut users, &items, by_user, cfg)?;
        half_step(&mut items, &users, by_item, cfg)?;
        on_epoch(IalsEpoch {
            iteration,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    Ok((users, items))
}

/// `Yᵀ Y` of a factor table (`f × f`), summed in fixed-size chunks so that the result
/// does not depend on the thread count.
fn gram(y: &EmbeddingTable) -> Vec<f32> {
    let f = y.dim();
    let part = |rows: &[f32]| {
        let mut g = vec![0f32; f * f];
        for r in rows.chunks_exact(f) {
            for a in 0..f {
                let ra = r[a];
                g[a * f..(a + 1) * f]
                    .iter_mut()
                    .zip(r)
                    .for_each(|(v, rb)| *v += ra * rb);
            }
        }
        g
    };
    let parts: Vec<Vec<f32>> = y.data().par_chunks(1024 * f).map(part).collect();
    let mut g = vec![0f32; f * f];
    for p in parts {
        g.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    g
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves every row of `x` against the fixed `y` (rows of `x` interact with the rows of
/// `y` listed in `rows`).
fn half_step(
    x: &mut EmbeddingTable,
    y: &EmbeddingTable,
    rows: &Csr,
    cfg: &IalsTrainConfig,
) -> Result<()> {
    let f = cfg.factors;
    let mut yty = gram(y);
    for d in 0..f {
        yty[d * f + d] += cfg.regularization;
    }
    let extra = cfg.alpha; // c − 1 for an interaction
    let conf = 1.0 + cfg.alpha;
    let failures: Vec<usize> = x
        .data_mut()
        .par_chunks_mut(f)
        .enumerate()
        .filter_map(|(u, xu)| {
            let list = rows.row(u);
            if cfg.cg_steps == 0 {
                return exact_row(xu, &yty, y, list, extra, conf).err().map(|_| u);
            }
            cg_row(xu, &yty, y, list, extra, conf, cfg.cg_steps);
            None
        })
        .collect();
    if let Some(u) = failures.first() {
        return Err(Error::invalid(
            "ials",
            format!("row {u}: the normal equations are not positive definite"),
        ));
    }
    Ok(())
}

/// `A v` for row `list`: `(YᵀY + λI) v + Σ (c − 1)(y_i·v) y_i`.
fn apply(out: &mut [f32], yty: &[f32], y: &EmbeddingTable, list: &[u32], extra: f32, v: &[f32]) {
    let f = v.len();
    for (a, o) in out.iter_mut().enumerate() {
        *o = dot(&yty[a * f..(a + 1) * f], v);
    }
    for &i in list {
        let yi = y.row(i as usize);
        let w = extra * dot(yi, v);
        out.iter_mut().zip(yi).for_each(|(o, yv)| *o += w * yv);
    }
}

/// A few conjugate-gradient steps from the current row (warm start).
fn cg_row(
    xu: &mut [f32],
    yty: &[f32],
    y: &EmbeddingTable,
    list: &[u32],
    extra: f32,
    conf: f32,
    steps: usize,
) {
    let f = xu.len();
    let mut ap = vec![0f32; f];
    // r = b − A x, b = Σ c y_i
    apply(&mut ap, yty, y, list, extra, xu);
    let mut r: Vec<f32> = ap.iter().map(|v| -v).collect();
    for &i in list {
        r.iter_mut()
            .zip(y.row(i as usize))
            .for_each(|(rv, yv)| *rv += conf * yv);
    }
    let mut p = r.clone();
    let mut rs_old = dot(&r, &r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        apply(&mut ap, yty, y, list, extra, &p);
        let pap = dot(&p, &ap);
        if pap <= 0.0 {
            break;
        }
        let a = rs_old / pap;
        xu.iter_mut().zip(&p).for_each(|(x, pv)| *x += a * pv);
        r.iter_mut().zip(&ap).for_each(|(rv, av)| *rv -= a * av);
        let rs_new = dot(&r, &r);
        let beta = rs_new / rs_old;
        p.iter_mut()
            .zip(&r)
            .for_each(|(pv, rv)| *pv = rv + beta * *pv);
        rs_old = rs_new;
    }
}

/// The exact solve of one row (reference for the CG path).
fn exact_row(
    xu: &mut [f32],
    yty: &[f32],
    y: &EmbeddingTable,
    list: &[u32],
    extra: f32,
    conf: f32,
) -> shortlist_model::Result<()> {
    let f = xu.len();
    let mut a = yty.to_vec();
    let mut b = vec![0f32; f];
    for &i in list {
        let yi = y.row(i as usize);
        for p in 0..f {
            b[p] += conf * yi[p];
            let w = extra * yi[p];
            a[p * f..(p + 1) * f]
                .iter_mut()
                .zip(yi)
                .for_each(|(v, yq)| *v += w * yq);
        }
    }
    shortlist_model::linalg::cholesky_solve_small(&mut a, &mut b)?;
    xu.copy_from_slice(&b);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_data::synth::{generate, SynthConfig};

    fn data() -> (Dataset, Vec<usize>) {
        let (data, _) = generate(&SynthConfig::sized(60, 40, 900)).unwrap();
        let rows = (0..data.interactions.len()).collect();
        (data, rows)
    }

    /// The user-item matrices of [`data`] under `cfg`'s features.
    fn user_items(cfg: &IalsTrainConfig) -> UserItems {
        let (data, rows) = data();
        UserItems::build(&data, &rows, &cfg.features).unwrap()
    }

    /// Both factor tables fitted on `ui` under `cfg`.
    fn fit(ui: &UserItems, cfg: &IalsTrainConfig) -> (EmbeddingTable, EmbeddingTable) {
        fit_factors(&ui.by_user, &ui.by_item, cfg, |_| {}).unwrap()
    }

    /// The preference and confidence of item `i` for a user who saw `seen` (sorted):
    /// (1, 1 + α) for a seen item, (0, 1) otherwise.
    fn preference(seen: &[u32], i: usize, alpha: f32) -> (f32, f32) {
        if seen.binary_search(&(i as u32)).is_ok() {
            (1.0, 1.0 + alpha)
        } else {
            (0.0, 1.0)
        }
    }

    /// The iALS loss over all pairs (dense, the definition in the module docs).
    fn loss(ui: &UserItems, x: &EmbeddingTable, y: &EmbeddingTable, cfg: &IalsTrainConfig) -> f64 {
        let mut l = 0f64;
        for u in 0..x.rows() {
            let seen = ui.by_user.row(u);
            for i in 0..y.rows() {
                let (p, c) = preference(seen, i, cfg.alpha);
                let e = p - dot(x.row(u), y.row(i));
                l += (c * e * e) as f64;
            }
        }
        let sq = |t: &EmbeddingTable| t.data().iter().map(|v| (v * v) as f64).sum::<f64>();
        l + cfg.regularization as f64 * (sq(x) + sq(y))
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // textbook index notation
    fn exact_half_step_solves_the_dense_normal_equations() {
        let cfg = IalsTrainConfig {
            factors: 5,
            regularization: 0.5,
            cg_steps: 0,
            ..Default::default()
        };
        let ui = user_items(&cfg);
        let (_, y) = fit(&ui, &cfg);
        let mut x = EmbeddingTable::zeros(ui.num_users(), 5);
        half_step(&mut x, &y, &ui.by_user, &cfg).unwrap();
        // Reference: Σ_i c_ui (x·y_i − p_ui) y_i + λ x = 0 over all items, densely.
        for u in [1usize, 7, 30] {
            let seen = ui.by_user.row(u);
            let xu = x.row(u);
            let mut grad = vec![0f64; 5];
            for i in 0..y.rows() {
                let (p, c) = preference(seen, i, cfg.alpha);
                let e = (dot(xu, y.row(i)) - p) as f64;
                for d in 0..5 {
                    grad[d] += c as f64 * e * y.row(i)[d] as f64;
                }
            }
            for d in 0..5 {
                grad[d] += cfg.regularization as f64 * xu[d] as f64;
                assert!(grad[d].abs() < 1e-3, "user {u}: gradient {grad:?}");
            }
        }
    }

    #[test]
    fn cg_decreases_the_loss_and_approaches_the_exact_solution() {
        let base = IalsTrainConfig {
            factors: 8,
            regularization: 1.0,
            iterations: 1,
            ..Default::default()
        };
        let ui = user_items(&base);
        let mut last = f64::INFINITY;
        for iterations in [1, 3, 10] {
            let cfg = IalsTrainConfig {
                iterations,
                ..base.clone()
            };
            let (x, y) = fit(&ui, &cfg);
            let l = loss(&ui, &x, &y, &cfg);
            assert!(l < last, "{iterations} iterations: loss {l} ≥ {last}");
            last = l;
        }
        let exact = IalsTrainConfig {
            iterations: 10,
            cg_steps: 0,
            ..base.clone()
        };
        let (x, y) = fit(&ui, &exact);
        let le = loss(&ui, &x, &y, &exact);
        assert!(last < le * 1.02, "CG {last} vs exact {le}");
    }

    #[test]
    fn fold_in_of_a_known_history_reproduces_the_user_factor() {
        let (data, rows) = data();
        let cfg = IalsTrainConfig {
            factors: 6,
            cg_steps: 0,
            iterations: 4,
            ..Default::default()
        };
        let mut m = train_ials(&data, &rows, &cfg, |_| {}).unwrap();
        // Re-solve the users exactly against the final item factors: fold-in must
        // give the same factor from the same history.
        half_step(&mut m.user_factors, &m.item_factors, &m.seen, &cfg).unwrap();
        let g = m.gram();
        // The serving gram (upper triangle, mirrored) is the training one (every
        // entry summed; one chunk here) bit for bit.
        assert!(m.num_items() < 1024);
        assert_eq!(
            g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            gram(&m.item_factors)
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        );
        for u in [2usize, 11] {
            let hist: Vec<(u32, f32)> = m.seen.row(u).iter().map(|&i| (i, 1.0)).collect();
            let x = m.fold_in(&g, &hist).unwrap();
            for (a, b) in x.iter().zip(m.user_factors.row(u)) {
                assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "{x:?}");
            }
        }
    }

    #[test]
    fn runs_are_deterministic_and_round_trip() {
        let (data, rows) = data();
        let cfg = IalsTrainConfig {
            factors: 4,
            iterations: 2,
            ..Default::default()
        };
        let a = train_ials(&data, &rows, &cfg, |_| {}).unwrap();
        let b = train_ials(&data, &rows, &cfg, |_| {}).unwrap();
        assert_eq!(a, b);
        let dir = tempfile::tempdir().unwrap();
        a.save(&dir.path().join("m"), &[]).unwrap();
        assert_eq!(IalsModel::load(&dir.path().join("m")).unwrap(), a);
        let err = IalsTrainConfig::from_toml("factors = 0", std::path::Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid factors: expected 1 to 1024, got 0");
    }
}
