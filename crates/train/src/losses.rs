//! The losses of the ranking model and their gradients with respect to the model's
//! outputs (what the backward pass starts from):
//!
//! * squared error of a rating (`rating` and `multitask` objectives);
//! * binary cross-entropy of a click label on the logit (`click`), computed from the
//!   logit so that it never takes the log of a rounded probability;
//! * the in-batch softmax of the `multitask` objective's retrieval task: each example's
//!   user vector against every item of the batch, its own item the positive.
//!
//! Each has a finite-difference check in the tests below.

use shortlist_model::kernel::{gemm, Operand};
use shortlist_model::sigmoid;

/// Squared error of `prediction` against `label` and its derivative in the prediction.
#[inline]
pub fn squared_error(prediction: f32, label: f32) -> (f32, f32) {
    let e = prediction - label;
    (e * e, 2.0 * e)
}

/// Binary cross-entropy of the probability `σ(logit)` against a 0/1 `label`, and its
/// derivative in the logit (`σ(logit) − label`). The loss is
/// `softplus(logit) − label · logit`, stable for any logit.
#[inline]
pub fn bce_with_logit(logit: f32, label: f32) -> (f32, f32) {
    let softplus = logit.max(0.0) + (-logit.abs()).exp().ln_1p();
    (softplus - label * logit, sigmoid(logit) - label)
}

/// Softmax cross-entropy of one row of logits (any adjustments already applied; a
/// `-inf` logit is a removed column) whose positive is column `pos`: returns
/// `−log softmax(row)[pos]` and leaves `scale · ∂loss/∂row` (softmax − one-hot) in
/// `row`. The retrieval model's softmax losses are made of these rows.
pub fn softmax_row(row: &mut [f32], pos: usize, scale: f32) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0.0f32;
    for l in row.iter_mut() {
        *l = (*l - max).exp();
        z += *l;
    }
    let pos_p = row[pos] / z;
    let loss = -(pos_p.max(1e-30) as f64).ln();
    let s = scale / z;
    for l in row.iter_mut() {
        *l *= s;
    }
    row[pos] -= scale;
    loss
}

/// Buffers and gradients of [`in_batch_softmax`] (reused across batches).
#[derive(Debug, Default)]
pub struct SoftmaxScratch {
    logits: Vec<f32>,
    /// `scale · ∂L/∂users`, `b × d`.
    pub du: Vec<f32>,
    /// `scale · ∂L/∂items`, `b × d`.
    pub dq: Vec<f32>,
}

/// Mean in-batch softmax cross-entropy of `b` examples: example `k`'s logits are its
/// user vector `users[k]` against every item vector of the batch (`items`, `b × d`,
/// row-major), each shifted by `−shift[j]`, the positive being its own item `k`:
///
/// `L = (1/b) Σ_k [ log Σ_j exp(u_k · q_j − s_j) − (u_k · q_k − s_k) ]`.
///
/// With `s_j = log q(item j)`, the item's share of the training examples (the
/// probability that it fills a column), this is the logQ correction of sampled
/// softmax (Yi et al., 2019): the scores then estimate `log p(item | user)` rather
/// than a popularity-free ratio. An empty `shift` means no shift.
///
/// Leaves `scale · ∂L/∂users` in `scratch.du` and `scale · ∂L/∂items` in `scratch.dq`
/// (each `b × d`) and returns `L`. Duplicated items are separate columns (as in
/// TensorFlow Recommenders' retrieval task without accidental-hit removal).
pub fn in_batch_softmax(
    users: &[f32],
    items: &[f32],
    b: usize,
    d: usize,
    shift: &[f32],
    scale: f32,
    scratch: &mut SoftmaxScratch,
) -> f64 {
    let SoftmaxScratch { logits, du, dq } = scratch;
    du.resize(b * d, 0.0);
    dq.resize(b * d, 0.0);
    logits.clear();
    logits.resize(b * b, 0.0);
    gemm(
        b,
        d,
        b,
        Operand::new(&users[..b * d]),
        Operand::t(&items[..b * d]),
        0.0,
        logits,
    );
    let mut loss = 0f64;
    let g = scale / b as f32;
    for (k, row) in logits.chunks_exact_mut(b).enumerate() {
        if !shift.is_empty() {
            row.iter_mut().zip(shift).for_each(|(l, s)| *l -= s);
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let pos = row[k];
        let mut z = 0f32;
        for l in row.iter_mut() {
            *l = (*l - max).exp();
            z += *l;
        }
        loss += (max + z.ln() - pos) as f64;
        // The row becomes ∂L/∂logits · scale = (softmax − one-hot) · scale / b.
        for l in row.iter_mut() {
            *l *= g / z;
        }
        row[k] -= g;
    }
    // dU = G · Q ; dQ = Gᵀ · U
    gemm(
        b,
        b,
        d,
        Operand::new(logits),
        Operand::new(&items[..b * d]),
        0.0,
        du,
    );
    gemm(
        b,
        b,
        d,
        Operand::t(logits),
        Operand::new(&users[..b * d]),
        0.0,
        dq,
    );
    loss / b as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_core::Rng;

    /// Central difference of `f` at `x` in f64.
    fn fd(f: impl Fn(f64) -> f64, x: f64) -> f64 {
        let h = 1e-4;
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    #[test]
    fn squared_error_and_bce_gradients_match_finite_differences() {
        for (p, y) in [(3.2f32, 4.0f32), (-1.0, 0.5), (5.0, 5.0)] {
            let (l, g) = squared_error(p, y);
            assert!((l - (p - y) * (p - y)).abs() < 1e-6);
            let want = fd(|x| (x - y as f64).powi(2), p as f64);
            assert!((g as f64 - want).abs() < 1e-3, "{g} vs {want}");
        }
        let bce = |z: f64, y: f64| {
            let p = 1.0 / (1.0 + (-z).exp());
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        };
        for (z, y) in [
            (0.3f32, 1.0f32),
            (-2.0, 0.0),
            (4.0, 0.0),
            (-6.0, 1.0),
            (0.0, 1.0),
        ] {
            let (l, g) = bce_with_logit(z, y);
            assert!((l as f64 - bce(z as f64, y as f64)).abs() < 1e-5, "z {z}");
            let want = fd(|x| bce(x, y as f64), z as f64);
            assert!((g as f64 - want).abs() < 1e-4, "z {z}: {g} vs {want}");
        }
        // far logits stay finite (a probability would round to 0 or 1)
        assert!((bce_with_logit(-100.0, 1.0).0 - 100.0).abs() < 1e-3);
        assert!(bce_with_logit(100.0, 1.0).0.abs() < 1e-6);
    }

    #[test]
    fn softmax_row_matches_finite_differences_with_removed_columns() {
        // Column 3 removed (an accidental hit), positive column 1.
        let logits = [0.3f32, -1.2, 2.0, f32::NEG_INFINITY, 0.7];
        let loss = |v: &[f64]| {
            let z: f64 = v.iter().map(|x| x.exp()).sum();
            z.ln() - v[1]
        };
        let l64: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
        let mut row = logits;
        let got = softmax_row(&mut row, 1, 0.5);
        assert!((got - loss(&l64)).abs() < 1e-6);
        assert_eq!(row[3], 0.0);
        for k in [0, 1, 2, 4] {
            let want = fd(
                |x| {
                    let mut v = l64.clone();
                    v[k] = x;
                    loss(&v)
                },
                l64[k],
            );
            assert!((row[k] as f64 - 0.5 * want).abs() < 1e-5, "column {k}");
        }
    }

    /// The in-batch softmax loss in f64, straight from its definition.
    fn softmax_loss(u: &[f64], q: &[f64], shift: &[f32], b: usize, d: usize) -> f64 {
        let dot = |k: usize, j: usize| {
            (0..d).map(|f| u[k * d + f] * q[j * d + f]).sum::<f64>() - shift[j] as f64
        };
        (0..b)
            .map(|k| (0..b).map(|j| dot(k, j).exp()).sum::<f64>().ln() - dot(k, k))
            .sum::<f64>()
            / b as f64
    }

    #[test]
    fn in_batch_softmax_matches_its_definition_and_finite_differences() {
        let (b, d) = (5, 3);
        let mut rng = Rng::new(4);
        let u: Vec<f32> = (0..b * d).map(|_| rng.normal() as f32).collect();
        let mut q: Vec<f32> = (0..b * d).map(|_| rng.normal() as f32).collect();
        // a duplicated item: two columns of the same vector
        let (first, rest) = q.split_at_mut(d);
        rest[2 * d..3 * d].copy_from_slice(first);
        let mut s = SoftmaxScratch::default();
        let scale = 0.7;
        let shift = [0.5, -1.0, 0.0, 2.0, 0.5];
        let loss = in_batch_softmax(&u, &q, b, d, &shift, scale, &mut s);
        let (du, dq) = (s.du.clone(), s.dq.clone());
        let (u64_, q64): (Vec<f64>, Vec<f64>) = (
            u.iter().map(|&v| v as f64).collect(),
            q.iter().map(|&v| v as f64).collect(),
        );
        // No shift: the plain softmax of TensorFlow Recommenders' retrieval task.
        let plain = in_batch_softmax(&u, &q, b, d, &[], 1.0, &mut s);
        assert!((plain - softmax_loss(&u64_, &q64, &[0.0; 5], b, d)).abs() < 1e-5);
        assert!((loss - softmax_loss(&u64_, &q64, &shift, b, d)).abs() < 1e-5);
        for k in 0..b * d {
            let fu = fd(
                |x| {
                    let mut v = u64_.clone();
                    v[k] = x;
                    softmax_loss(&v, &q64, &shift, b, d)
                },
                u64_[k],
            );
            let fq = fd(
                |x| {
                    let mut v = q64.clone();
                    v[k] = x;
                    softmax_loss(&u64_, &v, &shift, b, d)
                },
                q64[k],
            );
            assert!((du[k] as f64 - scale as f64 * fu).abs() < 1e-4, "du[{k}]");
            assert!((dq[k] as f64 - scale as f64 * fq).abs() < 1e-4, "dq[{k}]");
        }
    }
}
