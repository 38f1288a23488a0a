//! Training of the I-AutoRec member of a ranking model (`[autorec]` in the TOML).
//!
//! Full-batch Adam on `½·Σ_observed (W_u·h_i + b_u − r_ui)² + λ/2·(‖V‖² + ‖W‖²)` with
//! `h_i = σ(V·r_i + μ)`, where `r_i` is item i's sparse vector of training ratings. Every
//! term is computed on the observed entries only, so an epoch costs
//! `O(ratings × hidden)`. The items are processed in two fixed halves on two threads
//! whose gradients are summed in a fixed order: runs are bit-identical for a seed.

use serde::{Deserialize, Serialize};
use shortlist_core::Rng;
use shortlist_model::{AutoRec, AutoRecConfig};

use crate::error::{Error, Result};

/// Hyper-parameters of the AutoRec member (`[autorec]` table of a [`crate::TrainConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoRecTrainConfig {
    /// Width of the item code (hidden sigmoid layer).
    pub hidden: usize,
    /// Blend weight of AutoRec in the final prediction, in `[0, 1]`.
    pub weight: f32,
    /// L2 coefficient λ on the encoder and decoder weights (the loss is a sum over ratings).
    pub l2: f32,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// Learning-rate factor applied after every epoch.
    pub lr_decay: f32,
    /// Full-batch epochs.
    pub epochs: usize,
}

impl Default for AutoRecTrainConfig {
    fn default() -> Self {
        AutoRecTrainConfig {
            hidden: 500,
            weight: 0.6,
            l2: 100.0,
            learning_rate: 0.01,
            lr_decay: 0.99,
            epochs: 200,
        }
    }
}

impl AutoRecTrainConfig {
    /// Checks every value; errors name the parameter (`autorec.…`).
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, msg: String| Err(Error::invalid(format!("autorec.{name}"), msg));
        if self.hidden == 0 {
            return bad("hidden", "expected at least 1".into());
        }
        if self.epochs == 0 {
            return bad("epochs", "expected at least 1".into());
        }
        if !(self.weight.is_finite() && (0.0..=1.0).contains(&self.weight)) {
            return bad(
                "weight",
                format!("expected a number in [0, 1], got {}", self.weight),
            );
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(
                "l2",
                format!("expected a finite number ≥ 0, got {}", self.l2),
            );
        }
        for (name, v) in [
            ("learning_rate", self.learning_rate),
            ("lr_decay", self.lr_decay),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(name, format!("expected a finite number > 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// Per-item observed ratings in CSR form.
struct ItemRatings {
    offsets: Vec<usize>,
    users: Vec<u32>,
    ratings: Vec<f32>,
}

/// Parameters (and their gradients / Adam moments share this layout).
#[derive(Clone)]
struct Params {
    /// `users × hidden` encoder (row u: the weights of user u's rating).
    enc: Vec<f32>,
    enc_bias: Vec<f32>,
    /// `users × hidden` decoder.
    dec: Vec<f32>,
    dec_bias: Vec<f32>,
}

impl Params {
    fn zeros(nu: usize, h: usize) -> Self {
        Params {
            enc: vec![0.0; nu * h],
            enc_bias: vec![0.0; h],
            dec: vec![0.0; nu * h],
            dec_bias: vec![0.0; nu],
        }
    }

    fn parts_mut(&mut self) -> [&mut Vec<f32>; 4] {
        [
            &mut self.enc,
            &mut self.enc_bias,
            &mut self.dec,
            &mut self.dec_bias,
        ]
    }

    fn fill(&mut self, v: f32) {
        for p in self.parts_mut() {
            p.fill(v);
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Item codes `σ(V·r_i + μ)` of `items` into `out` (`items.len() × h`).
fn encode(
    p: &Params,
    data: &ItemRatings,
    h: usize,
    items: std::ops::Range<usize>,
    out: &mut [f32],
) {
    for (k, i) in items.enumerate() {
        let z = &mut out[k * h..(k + 1) * h];
        z.copy_from_slice(&p.enc_bias);
        for j in data.offsets[i]..data.offsets[i + 1] {
            let (u, r) = (data.users[j] as usize, data.ratings[j]);
            for (a, v) in z.iter_mut().zip(&p.enc[u * h..(u + 1) * h]) {
                *a += r * v;
            }
        }
        for a in z.iter_mut() {
            *a = sigmoid(*a);
        }
    }
}

/// Forward and backward of `items`: accumulates into `g`, returns the sum of squared errors.
fn grad_range(
    p: &Params,
    data: &ItemRatings,
    h: usize,
    items: std::ops::Range<usize>,
    g: &mut Params,
) -> f64 {
    g.fill(0.0);
    let mut code = vec![0.0; h];
    let mut dh = vec![0.0; h];
    let mut sse = 0.0f64;
    for i in items {
        encode(p, data, h, i..i + 1, &mut code);
        dh.fill(0.0);
        let (lo, hi) = (data.offsets[i], data.offsets[i + 1]);
        for j in lo..hi {
            let (u, r) = (data.users[j] as usize, data.ratings[j]);
            let w = &p.dec[u * h..(u + 1) * h];
            let e = shortlist_model::autorec::dot(&code, w) + p.dec_bias[u] - r;
            sse += (e * e) as f64;
            g.dec_bias[u] += e;
            for ((gw, d), (c, wv)) in g.dec[u * h..(u + 1) * h]
                .iter_mut()
                .zip(dh.iter_mut())
                .zip(code.iter().zip(w))
            {
                *gw += e * c;
                *d += e * wv;
            }
        }
        // dz = dh·σ'(z); then into the encoder bias and the rows of the rating users.
        for (d, c) in dh.iter_mut().zip(&code) {
            *d *= c * (1.0 - c);
        }
        for (gb, d) in g.enc_bias.iter_mut().zip(&dh) {
            *gb += d;
        }
        for j in lo..hi {
            let (u, r) = (data.users[j] as usize, data.ratings[j]);
            for (gv, d) in g.enc[u * h..(u + 1) * h].iter_mut().zip(&dh) {
                *gv += r * d;
            }
        }
    }
    sse
}

/// Trains an AutoRec on (user row, item row, rating) triples over vocabularies of
/// `num_users`/`num_items` rows. Deterministic for `seed`. Returns the model and the
/// final epoch's training RMSE.
pub fn train_autorec(
    users: &[u32],
    items: &[u32],
    ratings: &[f32],
    num_users: usize,
    num_items: usize,
    cfg: &AutoRecTrainConfig,
    seed: u64,
) -> Result<(AutoRec, f64)> {
    let (model, per_epoch) = train_autorec_with(
        users,
        items,
        ratings,
        num_users,
        num_items,
        cfg,
        seed,
        &shortlist_core::progress::NoProgress,
    )?;
    Ok((model, per_epoch.last().copied().unwrap_or(f64::NAN)))
}

/// [`train_autorec`] advancing `progress` by one per epoch; returns the model and the
/// training RMSE of every epoch (computed before the epoch's update).
#[allow(clippy::too_many_arguments)]
pub fn train_autorec_with(
    users: &[u32],
    items: &[u32],
    ratings: &[f32],
    num_users: usize,
    num_items: usize,
    cfg: &AutoRecTrainConfig,
    seed: u64,
    progress: &dyn shortlist_core::progress::Progress,
) -> Result<(AutoRec, Vec<f64>)> {
    cfg.validate()?;
    let n = users.len().min(items.len()).min(ratings.len());
    if n == 0 {
        return Err(Error::NoData("AutoRec has no training ratings".into()));
    }
    if let Some(k) =
        (0..n).find(|&k| users[k] as usize >= num_users || items[k] as usize >= num_items)
    {
        return Err(Error::NoData(format!(
            "AutoRec rating {k} has a row out of the {num_users} users × {num_items} items"
        )));
    }
    let (nu, ni, h) = (num_users, num_items, cfg.hidden);
    // CSR by item (stable: the rating order within an item follows the input).
    let mut offsets = vec![0usize; ni + 1];
    for &i in &items[..n] {
        offsets[i as usize + 1] += 1;
    }
    for k in 0..ni {
        offsets[k + 1] += offsets[k];
    }
    let mut at = offsets.clone();
    let (mut cu, mut cr) = (vec![0u32; n], vec![0f32; n]);
    for k in 0..n {
        let i = items[k] as usize;
        cu[at[i]] = users[k];
        cr[at[i]] = ratings[k];
        at[i] += 1;
    }
    let data = ItemRatings {
        offsets,
        users: cu,
        ratings: cr,
    };
    let mut user_known = vec![0u32; nu];
    for &u in &users[..n] {
        user_known[u as usize] = 1;
    }
    let item_known: Vec<u32> = (0..ni)
        .map(|i| u32::from(data.offsets[i + 1] > data.offsets[i]))
        .collect();
    // Initialisation: uniform(±1/√rated users) encoder, uniform(±1/√hidden) decoder.
    let mut rng = Rng::with_stream(seed, 7);
    let known_users = user_known.iter().filter(|&&k| k == 1).count().max(1);
    let mut p = Params::zeros(nu, h);
    let (se, sd) = (1.0 / (known_users as f32).sqrt(), 1.0 / (h as f32).sqrt());
    for v in &mut p.enc {
        *v = (rng.next_f32() * 2.0 - 1.0) * se;
    }
    for v in &mut p.dec {
        *v = (rng.next_f32() * 2.0 - 1.0) * sd;
    }
    let (mut g0, mut g1) = (Params::zeros(nu, h), Params::zeros(nu, h));
    let (mut m, mut v) = (Params::zeros(nu, h), Params::zeros(nu, h));
    // Split the items into two halves of about equal rating counts.
    let mid = (0..=ni).find(|&i| 2 * data.offsets[i] >= n).unwrap_or(ni);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut lr = cfg.learning_rate;
    let mut per_epoch = Vec::with_capacity(cfg.epochs);
    for t in 1..=cfg.epochs {
        let (s0, s1) = rayon::join(
            || grad_range(&p, &data, h, 0..mid, &mut g0),
            || grad_range(&p, &data, h, mid..ni, &mut g1),
        );
        per_epoch.push(((s0 + s1) / n as f64).sqrt());
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        let g1p = g1.parts_mut();
        let l2 = [cfg.l2, 0.0, cfg.l2, 0.0];
        for ((((w, ga), gb), (mm, vv)), l2) in p
            .parts_mut()
            .into_iter()
            .zip(g0.parts_mut())
            .zip(g1p)
            .zip(m.parts_mut().into_iter().zip(v.parts_mut()))
            .zip(l2)
        {
            for k in 0..w.len() {
                let g = ga[k] + gb[k] + l2 * w[k];
                mm[k] = b1 * mm[k] + (1.0 - b1) * g;
                vv[k] = b2 * vv[k] + (1.0 - b2) * g * g;
                w[k] -= lr * (mm[k] / c1) / ((vv[k] / c2).sqrt() + eps);
            }
        }
        lr *= cfg.lr_decay;
        progress.advance(1);
    }
    let mut item_code = vec![0.0; ni * h];
    encode(&p, &data, h, 0..ni, &mut item_code);
    let model = AutoRec {
        config: AutoRecConfig {
            hidden: h,
            weight: cfg.weight,
        },
        item_code,
        user_decoder: p.dec,
        user_bias: p.dec_bias,
        user_known,
        item_known,
    };
    Ok((model, per_epoch))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Training users, items, ratings, and held-out (user, item, rating) triples.
    type Planted = (Vec<u32>, Vec<u32>, Vec<f32>, Vec<(u32, u32, f32)>);

    /// Ratings of a planted structure (users and items in two taste groups, plus an
    /// item offset).
    fn planted(seed: u64) -> Planted {
        let (nu, ni) = (120u32, 80u32);
        let mut rng = Rng::new(seed);
        let (mut us, mut is, mut rs, mut held) = (vec![], vec![], vec![], vec![]);
        for u in 0..nu {
            for i in 0..ni {
                let r = if (u % 2) == (i % 2) { 5.0 } else { 1.0 } + (i % 3) as f32 * 0.5;
                let x = rng.next_f32();
                if x < 0.3 {
                    us.push(u);
                    is.push(i);
                    rs.push(r);
                } else if x < 0.35 {
                    held.push((u, i, r));
                }
            }
        }
        (us, is, rs, held)
    }

    fn small() -> AutoRecTrainConfig {
        AutoRecTrainConfig {
            hidden: 16,
            l2: 0.1,
            learning_rate: 0.05,
            lr_decay: 0.995,
            epochs: 400,
            ..Default::default()
        }
    }

    #[test]
    fn recovers_planted_structure_on_held_out_pairs() {
        let (us, is, rs, held) = planted(3);
        let (a, train_rmse) = train_autorec(&us, &is, &rs, 121, 81, &small(), 1).unwrap();
        let mean = rs.iter().sum::<f32>() / rs.len() as f32;
        let (mut se, mut base) = (0.0f64, 0.0f64);
        for &(u, i, r) in &held {
            assert!(a.covers(u, i));
            se += ((a.predict(u, i) - r) as f64).powi(2);
            base += ((mean - r) as f64).powi(2);
        }
        let (rmse, base) = (
            (se / held.len() as f64).sqrt(),
            (base / held.len() as f64).sqrt(),
        );
        assert!(
            rmse < 0.25 * base,
            "held-out rmse {rmse} vs mean baseline {base}"
        );
        assert!(train_rmse < 0.5, "{train_rmse}");
        // the extra vocabulary rows (never rated) are not covered
        assert!(!a.covers(120, 0) && !a.covers(0, 80));
    }

    #[test]
    fn same_seed_is_bit_identical_and_seeds_differ() {
        let (us, is, rs, _) = planted(4);
        let cfg = AutoRecTrainConfig {
            epochs: 5,
            ..small()
        };
        let (a, _) = train_autorec(&us, &is, &rs, 120, 80, &cfg, 1).unwrap();
        let (b, _) = train_autorec(&us, &is, &rs, 120, 80, &cfg, 1).unwrap();
        let (c, _) = train_autorec(&us, &is, &rs, 120, 80, &cfg, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.user_decoder, c.user_decoder);
    }

    #[test]
    fn bad_values_and_rows_give_exact_errors() {
        let e = |c: AutoRecTrainConfig| c.validate().unwrap_err().to_string();
        let d = AutoRecTrainConfig::default();
        assert_eq!(
            e(AutoRecTrainConfig { hidden: 0, ..d }),
            "invalid autorec.hidden: expected at least 1"
        );
        assert_eq!(
            e(AutoRecTrainConfig { epochs: 0, ..d }),
            "invalid autorec.epochs: expected at least 1"
        );
        assert_eq!(
            e(AutoRecTrainConfig { weight: 1.5, ..d }),
            "invalid autorec.weight: expected a number in [0, 1], got 1.5"
        );
        assert_eq!(
            e(AutoRecTrainConfig { l2: -1.0, ..d }),
            "invalid autorec.l2: expected a finite number ≥ 0, got -1"
        );
        assert_eq!(
            e(AutoRecTrainConfig {
                learning_rate: 0.0,
                ..d
            }),
            "invalid autorec.learning_rate: expected a finite number > 0, got 0"
        );
        assert_eq!(
            e(AutoRecTrainConfig {
                lr_decay: f32::NAN,
                ..d
            }),
            "invalid autorec.lr_decay: expected a finite number > 0, got NaN"
        );
        let err = train_autorec(&[3], &[0], &[4.0], 2, 2, &d, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no training data: AutoRec rating 0 has a row out of the 2 users × 2 items"
        );
    }
}
