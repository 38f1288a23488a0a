//! I-AutoRec (Sedhain et al., 2015), the item-based rating autoencoder blended into a
//! [`RankingModel`](crate::RankingModel). Each item's vector of training ratings (one
//! entry per user, unobserved entries zero) is encoded as `h_i = σ(V·r_i + μ)` and
//! decoded per user as `W_u·h_i + b_u`. At inference only the item codes `h_i`
//! (computed once from the training ratings), the decoder rows `W_u` and biases `b_u`
//! are needed: a prediction is one dot product.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Architecture of the AutoRec member of a ranking model (stored in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRecConfig {
    /// Width of the item code (hidden layer).
    pub hidden: usize,
    /// Blend weight `w` of the AutoRec prediction: `(1 − w)·ranking + w·autorec`.
    pub weight: f32,
}

/// A trained AutoRec (inference part) over the ranking model's vocabularies.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoRec {
    /// Architecture and blend weight.
    pub config: AutoRecConfig,
    /// `items × hidden`: the code of every item vocabulary row.
    pub item_code: Vec<f32>,
    /// `users × hidden`: the decoder row of every user vocabulary row.
    pub user_decoder: Vec<f32>,
    /// Decoder bias per user vocabulary row.
    pub user_bias: Vec<f32>,
    /// Per user row: 1 when the user had training ratings (else the blend is skipped).
    pub user_known: Vec<u32>,
    /// Per item row: 1 when the item had training ratings.
    pub item_known: Vec<u32>,
}

impl AutoRec {
    /// Checks shapes against `users`/`items` vocabulary rows and the weight's range.
    pub fn check(&self, users: usize, items: usize) -> Result<()> {
        let h = self.config.hidden;
        if h == 0 {
            return Err(Error::invalid("autorec.hidden", "expected at least 1"));
        }
        let w = self.config.weight;
        if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
            return Err(Error::invalid(
                "autorec.weight",
                format!("expected a number in [0, 1], got {w}"),
            ));
        }
        let shapes = [
            ("autorec.item_code", self.item_code.len(), items * h),
            ("autorec.user_decoder", self.user_decoder.len(), users * h),
            ("autorec.user_bias", self.user_bias.len(), users),
            ("autorec.user_known", self.user_known.len(), users),
            ("autorec.item_known", self.item_known.len(), items),
        ];
        for (name, got, want) in shapes {
            if got != want {
                return Err(Error::invalid(
                    name,
                    format!("expected {want} values, got {got}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the pair (user row, item row) is scored by AutoRec (both had training
    /// ratings); out-of-range rows are not.
    #[inline]
    pub fn covers(&self, user: u32, item: u32) -> bool {
        self.user_known.get(user as usize) == Some(&1)
            && self.item_known.get(item as usize) == Some(&1)
    }

    /// AutoRec's own (unblended, unclipped) prediction for covered rows.
    ///
    /// # Panics
    /// When a row is out of range.
    #[inline]
    pub fn predict(&self, user: u32, item: u32) -> f32 {
        let h = self.config.hidden;
        let (u, i) = (user as usize, item as usize);
        dot(
            &self.item_code[i * h..(i + 1) * h],
            &self.user_decoder[u * h..(u + 1) * h],
        ) + self.user_bias[u]
    }

    /// Blends AutoRec into `out[k]` (the ranking prediction of `users[k]`, `items[k]`)
    /// for every covered pair: `out = (1 − w)·out + w·autorec`.
    pub fn blend(&self, users: &[u32], items: &[u32], out: &mut [f32]) {
        let w = self.config.weight;
        for ((o, &u), &i) in out.iter_mut().zip(users).zip(items) {
            if self.covers(u, i) {
                *o = (1.0 - w) * *o + w * self.predict(u, i);
            }
        }
    }

    /// Number of stored parameters.
    pub fn num_parameters(&self) -> usize {
        self.item_code.len() + self.user_decoder.len() + self.user_bias.len()
    }
}

/// Dot product in a fixed order that vectorises: 32 independent accumulators over
/// blocks of 32, then 8 over blocks of 8, then the tail. Independent accumulators
/// matter more than the vector width: with one vector of 8 every block waits for the
/// previous block's add (4 cycles), which made AutoRec's 500-wide dot ~4× slower.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut wide = [0.0f32; 32];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..32 {
            wide[k] += x[k] * y[k];
        }
    }
    let mut acc = [0.0f32; 8];
    for (k, a) in acc.iter_mut().enumerate() {
        *a = (wide[k] + wide[k + 16]) + (wide[k + 8] + wide[k + 24]);
    }
    let (ca, cb) = (ra.chunks_exact(8), rb.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tiny() -> AutoRec {
        AutoRec {
            config: AutoRecConfig {
                hidden: 2,
                weight: 0.5,
            },
            item_code: vec![1.0, 0.0, 0.5, 0.5],
            user_decoder: vec![2.0, 4.0, 0.0, 0.0],
            user_bias: vec![1.0, 0.0],
            user_known: vec![1, 0],
            item_known: vec![1, 1],
        }
    }

    #[test]
    fn predicts_blends_and_skips_uncovered_pairs() {
        let a = tiny();
        a.check(2, 2).unwrap();
        assert_eq!(a.predict(0, 0), 3.0);
        assert_eq!(a.predict(0, 1), 4.0);
        let mut out = [1.0, 2.0, 5.0];
        a.blend(&[0, 0, 1], &[0, 1, 0], &mut out);
        assert_eq!(out, [2.0, 3.0, 5.0]);
        assert!(!a.covers(7, 0));
    }

    #[test]
    fn bad_shapes_and_weights_are_named() {
        let mut a = tiny();
        assert_eq!(
            a.check(3, 2).unwrap_err().to_string(),
            "invalid autorec.user_decoder: expected 6 values, got 4"
        );
        a.config.weight = 1.5;
        assert_eq!(
            a.check(2, 2).unwrap_err().to_string(),
            "invalid autorec.weight: expected a number in [0, 1], got 1.5"
        );
    }

    #[test]
    fn dot_matches_the_naive_sum() {
        // Lengths through every part: below 8, blocks of 8 only, 32-blocks with and
        // without 8-blocks and tails.
        for n in [0usize, 5, 8, 19, 32, 40, 45, 64, 500] {
            let a: Vec<f32> = (0..n).map(|k| (k % 13) as f32 * 0.5 - 2.0).collect();
            let b: Vec<f32> = (0..n).map(|k| 1.0 - (k % 7) as f32 * 0.25).collect();
            let naive: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-4, "n = {n}");
            // The shorter slice decides the length.
            assert_eq!(dot(&a, &b[..n / 2]), dot(&a[..n / 2], &b[..n / 2]));
        }
    }
}
