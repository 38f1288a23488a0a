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
///
/// The steps: `check_ratings`, `ItemRatings::by_item`, `init_params`, then per
/// epoch the gradients of the two item halves and `Adam::step`.
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
    let n = check_ratings(users, items, ratings, num_users, num_items)?;
    let (nu, ni, h) = (num_users, num_items, cfg.hidden);
    let data = ItemRatings::by_item(&users[..n], &items[..n], &ratings[..n], ni);
    let mut user_known = vec![0u32; nu];
    for &u in &users[..n] {
        user_known[u as usize] = 1;
    }
    let item_known: Vec<u32> = (0..ni)
        .map(|i| u32::from(data.offsets[i + 1] > data.offsets[i]))
        .collect();
    let mut p = init_params(&user_known, h, seed);
    let (mut g0, mut g1) = (Params::zeros(nu, h), Params::zeros(nu, h));
    let mut adam = Adam::new(nu, h, cfg);
    // Split the items into two halves of about equal rating counts.
    let mid = (0..=ni).find(|&i| 2 * data.offsets[i] >= n).unwrap_or(ni);
    let mut per_epoch = Vec::with_capacity(cfg.epochs);
    for t in 1..=cfg.epochs {
        let (s0, s1) = rayon::join(
            || grad_range(&p, &data, h, 0..mid, &mut g0),
            || grad_range(&p, &data, h, mid..ni, &mut g1),
        );
        per_epoch.push(((s0 + s1) / n as f64).sqrt());
        adam.step(&mut p, &mut g0, &mut g1, t);
        progress.advance(1);
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
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

/// The number of ratings (the shortest of the three lists), checked: at least one,
/// every row inside the vocabularies.
fn check_ratings(
    users: &[u32],
    items: &[u32],
    ratings: &[f32],
    num_users: usize,
    num_items: usize,
) -> Result<usize> {
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
    Ok(n)
}

impl ItemRatings {
    /// CSR by item of `ni` item rows (stable: the rating order within an item follows
    /// the input).
    fn by_item(users: &[u32], items: &[u32], ratings: &[f32], ni: usize) -> Self {
        let n = items.len();
        let mut offsets = vec![0usize; ni + 1];
        for &i in items {
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
        ItemRatings {
            offsets,
            users: cu,
            ratings: cr,
        }
    }
}

/// Initialisation from the seed's stream 7: uniform(±1/√rated users) encoder, then
/// uniform(±1/√hidden) decoder; zero biases.
fn init_params(user_known: &[u32], h: usize, seed: u64) -> Params {
    let mut rng = Rng::with_stream(seed, 7);
    let known_users = user_known.iter().filter(|&&k| k == 1).count().max(1);
    let mut p = Params::zeros(user_known.len(), h);
    let (se, sd) = (1.0 / (known_users as f32).sqrt(), 1.0 / (h as f32).sqrt());
    for v in &mut p.enc {
        *v = (rng.next_f32() * 2.0 - 1.0) * se;
    }
    for v in &mut p.dec {
        *v = (rng.next_f32() * 2.0 - 1.0) * sd;
    }
    p
}

/// Full-batch Adam with L2 on the weights (not the biases) and a learning rate that
/// decays after every epoch.
struct Adam {
    m: Params,
    v: Params,
    lr: f32,
    lr_decay: f32,
    l2: f32,
}

impl Adam {
    fn new(nu: usize, h: usize, cfg: &AutoRecTrainConfig) -> Self {
        Adam {
            m: Params::zeros(nu, h),
            v: Params::zeros(nu, h),
            lr: cfg.learning_rate,
            lr_decay: cfg.lr_decay,
            l2: cfg.l2,
        }
    }

    /// Epoch `t`'s update (1-based) with the gradient `g0 + g1` of the two halves.
    /// **Hot**: the loop runs per parameter.
    fn step(&mut self, p: &mut Params, g0: &mut Params, g1: &mut Params, t: usize) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let lr = self.lr;
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        let g1p = g1.parts_mut();
        let l2 = [self.l2, 0.0, self.l2, 0.0];
        for ((((w, ga), gb), (mm, vv)), l2) in p
            .parts_mut()
            .into_iter()
            .zip(g0.parts_mut())
            .zip(g1p)
            .zip(self.m.parts_mut().into_iter().zip(self.v.parts_mut()))
            .zip(l2)
        {
            for k in 0..w.len() {
                let g = ga[k] + gb[k] + l2 * w[k];
                mm[k] = b1 * mm[k] + (1.0 - b1) * g;
                vv[k] = b2 * vv[k] + (1.0 - b2) * g * g;
                w[k] -= lr * (mm[k] / c1) / ((vv[k] / c2).sqrt() + eps);
            }
        }
        self.lr *= self.lr_decay;
    }
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

    /// The hand-written backward of [`grad_range`] against central differences of
    /// `½·Σ_observed (W_u·σ(V·r_i + μ) + b_u − r_ui)²` written out here in f64, for every
    /// parameter (encoder rows, encoder bias, decoder rows, decoder bias), with the
    /// items in the trainer's two halves and the halves' gradients summed as it does.
    #[test]
    fn gradients_match_finite_differences() {
        let (nu, ni, h) = (6usize, 5usize, 3usize);
        let mut rng = Rng::new(21);
        // Item-major observed ratings; user 5 never rates (its rows get no gradient).
        let mut offsets = vec![0usize];
        let (mut users, mut ratings) = (Vec::new(), Vec::new());
        for _ in 0..ni {
            for u in 0..nu - 1 {
                if rng.next_f32() < 0.6 {
                    users.push(u as u32);
                    ratings.push(1.0 + rng.below(5) as f32);
                }
            }
            offsets.push(users.len());
        }
        let data = ItemRatings {
            offsets,
            users,
            ratings,
        };
        let mut p = Params::zeros(nu, h);
        for part in p.parts_mut() {
            for v in part.iter_mut() {
                *v = (rng.normal() * 0.3) as f32;
            }
        }
        let (mut g, mut g1) = (Params::zeros(nu, h), Params::zeros(nu, h));
        let sse = grad_range(&p, &data, h, 0..2, &mut g) + grad_range(&p, &data, h, 2..ni, &mut g1);
        for (a, b) in g.parts_mut().into_iter().zip(g1.parts_mut()) {
            a.iter_mut().zip(b.iter()).for_each(|(x, y)| *x += y);
        }

        let loss = |q: &[Vec<f64>]| -> f64 {
            let (enc, enc_bias, dec, dec_bias) = (&q[0], &q[1], &q[2], &q[3]);
            let mut total = 0.0;
            for i in 0..ni {
                let rated = data.offsets[i]..data.offsets[i + 1];
                let code: Vec<f64> = (0..h)
                    .map(|c| {
                        let z = enc_bias[c]
                            + rated
                                .clone()
                                .map(|j| {
                                    f64::from(data.ratings[j]) * enc[data.users[j] as usize * h + c]
                                })
                                .sum::<f64>();
                        1.0 / (1.0 + (-z).exp())
                    })
                    .collect();
                for j in rated {
                    let u = data.users[j] as usize;
                    let pred = (0..h).map(|c| dec[u * h + c] * code[c]).sum::<f64>() + dec_bias[u];
                    total += 0.5 * (pred - f64::from(data.ratings[j])).powi(2);
                }
            }
            total
        };
        let mut q: Vec<Vec<f64>> = p
            .parts_mut()
            .iter()
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
            .collect();
        assert!(
            (sse / 2.0 - loss(&q)).abs() < 1e-4 * loss(&q),
            "{sse} vs {}",
            loss(&q)
        );
        let analytic = g.parts_mut();
        let step = 1e-6;
        let mut nonzero = 0;
        for (t, part) in analytic.iter().enumerate() {
            for e in 0..part.len() {
                q[t][e] += step;
                let up = loss(&q);
                q[t][e] -= 2.0 * step;
                let down = loss(&q);
                q[t][e] += step;
                let numeric = (up - down) / (2.0 * step);
                let got = f64::from(part[e]);
                assert!(
                    (got - numeric).abs() <= 1e-4 * (1.0 + numeric.abs()),
                    "part {t} element {e}: analytic {got} vs finite difference {numeric}"
                );
                nonzero += usize::from(numeric.abs() > 1e-3);
            }
        }
        // Every part but the never-rating user's rows carries gradient.
        assert!(nonzero >= 30, "{nonzero} of 38 possible");
        assert!(analytic[2][(nu - 1) * h..].iter().all(|&x| x == 0.0));
    }
}
