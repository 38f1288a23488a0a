//! Baselines of rating prediction, the floor a ranking model's RMSE/MAE must clear:
//! the global mean rating, and the damped user + item biases of Koren ("Factor in the
//! neighbors", TKDD 2010, §2.1):
//!
//! * `μ` = mean training rating;
//! * `b_i = Σ_{u ∈ R(i)} (r_ui − μ) / (λ_item + |R(i)|)`;
//! * `b_u = Σ_{i ∈ R(u)} (r_ui − μ − b_i) / (λ_user + |R(u)|)`;
//! * prediction `μ + b_u + b_i`, clipped to the training rating range. A user or item
//!   without training ratings has bias 0.
//!
//! Koren's λ_item = 25 and λ_user = 10 are the defaults ([`BiasBaseline::KOREN`]).

use crate::error::{Error, Result};

/// Root mean squared and mean absolute error of predictions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RatingErrors {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
}

impl RatingErrors {
    /// Errors of `predict(k)` against `truth[k]` for every k (`0` for no rows).
    pub fn of(truth: &[f32], mut predict: impl FnMut(usize) -> f32) -> Self {
        let (mut s2, mut s1) = (0.0f64, 0.0f64);
        for (k, &t) in truth.iter().enumerate() {
            let e = (predict(k) - t) as f64;
            s2 += e * e;
            s1 += e.abs();
        }
        let n = truth.len().max(1) as f64;
        RatingErrors {
            rmse: (s2 / n).sqrt(),
            mae: s1 / n,
        }
    }
}

/// Global mean plus damped user and item biases, fitted on training ratings.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasBaseline {
    /// The mean training rating `μ`.
    pub mean: f32,
    /// `b_u` by user index.
    pub user_bias: Vec<f32>,
    /// `b_i` by item index.
    pub item_bias: Vec<f32>,
    /// The training rating range predictions are clipped to.
    pub range: [f32; 2],
}

impl BiasBaseline {
    /// Koren's damping terms `(λ_user, λ_item)`.
    pub const KOREN: (f32, f32) = (10.0, 25.0);

    /// Fits on training triples (`users[k]`, `items[k]`, `ratings[k]`) over `n_users`
    /// users and `n_items` items with damping `(λ_user, λ_item)`.
    pub fn fit(
        users: &[u32],
        items: &[u32],
        ratings: &[f32],
        n_users: usize,
        n_items: usize,
        (lambda_user, lambda_item): (f32, f32),
    ) -> Result<Self> {
        if users.len() != ratings.len() || items.len() != ratings.len() {
            return Err(Error::Size {
                what: "training users, items and ratings".into(),
                expected: ratings.len(),
                found: users.len().min(items.len()),
            });
        }
        if ratings.is_empty() {
            return Err(Error::invalid("training ratings", "expected at least one"));
        }
        if !(lambda_user >= 0.0 && lambda_item >= 0.0) {
            return Err(Error::invalid("damping", "expected λ ≥ 0"));
        }
        let check = |what: &str, ids: &[u32], len: usize| -> Result<()> {
            match ids.iter().position(|&i| i as usize >= len) {
                Some(row) => Err(Error::OutOfRange {
                    what: what.into(),
                    row,
                    index: ids[row],
                    len,
                }),
                None => Ok(()),
            }
        };
        check("training users", users, n_users)?;
        check("training items", items, n_items)?;
        let mean = (ratings.iter().map(|&r| r as f64).sum::<f64>() / ratings.len() as f64) as f32;
        let (lo, hi) = ratings
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &r| {
                (a.min(r), b.max(r))
            });
        let damped = |sums: Vec<(f64, u32)>, lambda: f32| -> Vec<f32> {
            sums.into_iter()
                .map(|(s, n)| (s / (lambda as f64 + n as f64)) as f32)
                .map(|b| if b.is_finite() { b } else { 0.0 })
                .collect()
        };
        let mut per_item = vec![(0.0f64, 0u32); n_items];
        for (&i, &r) in items.iter().zip(ratings) {
            let e = &mut per_item[i as usize];
            e.0 += (r - mean) as f64;
            e.1 += 1;
        }
        let item_bias = damped(per_item, lambda_item);
        let mut per_user = vec![(0.0f64, 0u32); n_users];
        for ((&u, &i), &r) in users.iter().zip(items).zip(ratings) {
            let e = &mut per_user[u as usize];
            e.0 += (r - mean - item_bias[i as usize]) as f64;
            e.1 += 1;
        }
        let user_bias = damped(per_user, lambda_user);
        Ok(BiasBaseline {
            mean,
            user_bias,
            item_bias,
            range: [lo, hi],
        })
    }

    /// `μ + b_u + b_i` clipped to the training range (an index out of range, i.e. an
    /// id without training ratings, has bias 0).
    pub fn predict(&self, user: u32, item: u32) -> f32 {
        let bu = self.user_bias.get(user as usize).copied().unwrap_or(0.0);
        let bi = self.item_bias.get(item as usize).copied().unwrap_or(0.0);
        (self.mean + bu + bi).clamp(self.range[0], self.range[1])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn biases_match_the_hand_computed_values() {
        // Ratings (user, item, r): (0,0,5) (0,1,3) (1,0,4) (2,1,1); μ = 13/4 = 3.25.
        let (u, i, r) = ([0, 0, 1, 2], [0, 1, 0, 1], [5.0, 3.0, 4.0, 1.0]);
        let b = BiasBaseline::fit(&u, &i, &r, 4, 3, (1.0, 2.0)).unwrap();
        assert_eq!(b.mean, 3.25);
        // b_0 = (1.75 + 0.75) / (2 + 2) = 0.625; b_1 = (−0.25 − 2.25) / 4 = −0.625; item 2: 0.
        assert_eq!(b.item_bias, vec![0.625, -0.625, 0.0]);
        // user 0: ((5 − 3.25 − 0.625) + (3 − 3.25 + 0.625)) / (1 + 2) = 1.5 / 3 = 0.5
        // user 1: (4 − 3.25 − 0.625) / 2 = 0.0625; user 2: (1 − 3.25 + 0.625) / 2 = −0.8125
        assert_eq!(b.user_bias, vec![0.5, 0.0625, -0.8125, 0.0]);
        assert_eq!(b.predict(0, 0), 4.375);
        assert_eq!(b.predict(2, 1), 1.8125);
        // Unknown ids fall back to μ (+ the known side's bias); the range clips.
        assert_eq!(b.predict(9, 9), 3.25);
        let big = BiasBaseline::fit(&[0, 0], &[0, 0], &[5.0, 4.0], 1, 1, (0.0, 0.0)).unwrap();
        assert_eq!(big.predict(0, 0), 4.5);
        assert_eq!(big.range, [4.0, 5.0]);
        // Errors of the predictions against truth.
        let e = RatingErrors::of(&[4.0, 2.0], |k| [5.0, 2.0][k]);
        assert_eq!(e.mae, 0.5);
        assert!((e.rmse - 0.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = BiasBaseline::fit(&[0, 5], &[0, 0], &[1.0, 2.0], 2, 1, BiasBaseline::KOREN);
        assert_eq!(
            e.unwrap_err().to_string(),
            "training users row 1: index 5 is out of range (there are 2)"
        );
        let e = BiasBaseline::fit(&[], &[], &[], 2, 1, BiasBaseline::KOREN);
        assert_eq!(
            e.unwrap_err().to_string(),
            "invalid training ratings: expected at least one"
        );
    }
}
