//! Synthetic impression logs with planted click structure: every row is an item shown
//! to a user and its rating column holds the outcome, 1 (clicked) or 0 (not clicked) —
//! the input of the ranking model's `click` objective.
//!
//! Users and items get latent factors (rank `rank`, standard normal entries scaled by
//! `1/√rank`) and items a bias (standard normal times `item_bias_scale`). Each user is
//! shown `impressions_per_user` distinct items drawn uniformly, and clicks one with
//! probability `σ(intercept + item bias + scale · u·v)`. The probabilities are
//! returned with the log, so a test can compare a model with the oracle (the AUC of
//! the true probabilities is the best any model can reach on the log).

use shortlist_core::dataset::{Dataset, Feedback, IdMap};
use shortlist_core::{Interactions, Rng};

use crate::error::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickSynthConfig {
    /// Number of users (raw ids `u0`, `u1`, …).
    pub users: usize,
    /// Number of items (raw ids `i0`, `i1`, …).
    pub items: usize,
    /// Distinct items shown to each user (at most `items`).
    pub impressions_per_user: usize,
    /// Rank of the planted factors.
    pub rank: usize,
    /// Weight of the user·item affinity in the logit.
    pub scale: f64,
    /// Standard deviation of the item bias in the logit.
    pub item_bias_scale: f64,
    /// Constant of the logit (sets the click rate: −1.5 gives about 25 %).
    pub intercept: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for ClickSynthConfig {
    fn default() -> Self {
        ClickSynthConfig {
            users: 300,
            items: 200,
            impressions_per_user: 40,
            rank: 4,
            scale: 2.5,
            item_bias_scale: 0.7,
            intercept: -1.5,
            seed: 42,
        }
    }
}

/// Generates the log; returns it with each row's true click probability. Rows are in
/// user order, with increasing timestamps.
///
/// # Errors
/// When a size is zero or more impressions per user than items are asked for.
pub fn generate_clicks(cfg: &ClickSynthConfig) -> Result<(Dataset, Vec<f32>)> {
    for (name, v) in [
        ("users", cfg.users),
        ("items", cfg.items),
        ("impressions_per_user", cfg.impressions_per_user),
        ("rank", cfg.rank),
    ] {
        if v == 0 {
            return Err(Error::invalid(name, "expected at least 1"));
        }
    }
    if cfg.impressions_per_user > cfg.items {
        return Err(Error::invalid(
            "impressions_per_user",
            format!(
                "{} is more than the {} items",
                cfg.impressions_per_user, cfg.items
            ),
        ));
    }
    let mut rng = Rng::new(cfg.seed);
    let r = cfg.rank;
    let norm = 1.0 / (r as f64).sqrt();
    let mut factors = |n: usize| -> Vec<f64> { (0..n * r).map(|_| rng.normal() * norm).collect() };
    let (uf, vf) = (factors(cfg.users), factors(cfg.items));
    let bias: Vec<f64> = (0..cfg.items)
        .map(|_| rng.normal() * cfg.item_bias_scale)
        .collect();
    let mut it = Interactions {
        timestamps: Some(Vec::new()),
        ..Interactions::default()
    };
    let mut probability = Vec::new();
    let mut shown: Vec<u32> = (0..cfg.items as u32).collect();
    for u in 0..cfg.users {
        // A partial Fisher–Yates shuffle: the first k slots are k distinct items.
        for k in 0..cfg.impressions_per_user {
            let j = k + rng.below((cfg.items - k) as u64) as usize;
            shown.swap(k, j);
        }
        for &i in &shown[..cfg.impressions_per_user] {
            let dot: f64 = (0..r).map(|f| uf[u * r + f] * vf[i as usize * r + f]).sum();
            let logit = cfg.intercept + bias[i as usize] + cfg.scale * dot;
            let p = 1.0 / (1.0 + (-logit).exp());
            let click = rng.next_f64() < p;
            it.users.push(u as u32);
            it.items.push(i);
            it.ratings.push(f32::from(u8::from(click)));
            if let Some(t) = &mut it.timestamps {
                t.push(t.len() as i64);
            }
            probability.push(p as f32);
        }
    }
    let dataset = Dataset {
        name: "synthetic impressions".into(),
        users: IdMap::from_raw((0..cfg.users).map(|u| format!("u{u}")).collect()),
        items: IdMap::from_raw((0..cfg.items).map(|i| format!("i{i}")).collect()),
        interactions: it,
        feedback: Feedback::Explicit,
        ..Dataset::default()
    };
    Ok((dataset, probability))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_planted_probabilities_and_generation_is_seeded() {
        let cfg = ClickSynthConfig::default();
        let (d, p) = generate_clicks(&cfg).unwrap();
        let n = cfg.users * cfg.impressions_per_user;
        assert_eq!((d.interactions.len(), p.len()), (n, n));
        assert!(d.interactions.ratings.iter().all(|&y| y == 0.0 || y == 1.0));
        // distinct items per user
        for u in 0..cfg.users {
            let mut items: Vec<u32> = d.interactions.items
                [u * cfg.impressions_per_user..(u + 1) * cfg.impressions_per_user]
                .to_vec();
            items.sort_unstable();
            items.dedup();
            assert_eq!(items.len(), cfg.impressions_per_user);
        }
        // the click rate matches the mean probability (12 000 draws: σ ≈ 0.004)
        let rate = d.interactions.ratings.iter().sum::<f32>() / n as f32;
        let mean_p = p.iter().sum::<f32>() / n as f32;
        assert!((rate - mean_p).abs() < 0.015, "{rate} vs {mean_p}");
        assert!((0.15..0.45).contains(&mean_p), "{mean_p}");
        assert_eq!(generate_clicks(&cfg).unwrap().0, d);
        let other = generate_clicks(&ClickSynthConfig {
            seed: 1,
            ..cfg.clone()
        })
        .unwrap();
        assert_ne!(other.0.interactions.ratings, d.interactions.ratings);
        let e = generate_clicks(&ClickSynthConfig {
            impressions_per_user: 500,
            ..cfg
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid impressions_per_user: 500 is more than the 200 items"
        );
    }
}
