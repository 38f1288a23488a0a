//! The ranking model's **relevance head**: the score that orders a user's candidate
//! list, trained for the list (a listwise softmax over candidate lists, in
//! `shortlist-train`'s `relevance.rs`) rather than for the rating.
//!
//! For a list of `n` candidates it builds `F` features per candidate, standardises each
//! feature **within the list** (`(x − mean) / std`; a constant or missing feature
//! contributes 0), and scores `Σ_f w_f · z_f`. The features ([`ListFeature`]) are the
//! first stage's retrieval score, the scores of the EASE and iALS models the head
//! carries, the item's popularity and, for a `multitask` ranking model, the score of
//! its shared user·item embeddings. Standardising per
//! list makes the head independent of each model's score scale and of the list's
//! length, so the weights learned on lists of one size and on models fitted to part of
//! the training data transfer to the served lists.
//!
//! **Cold items** — items without a training interaction (popularity 0: products
//! launched after training, which the two-tower model retrieves by their features) —
//! have no EASE, iALS, popularity or multitask feature: those are missing (the list
//! mean, so they do not distort the others' standardisation), and the item is scored
//! with its own weights, `cold_weights · z + cold_bias`, learned on the same lists.
//! One set of weights for both kinds would rank every cold item low: a known item's
//! score sums several correlated features where a cold item's has one.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::implicit::{EaseModel, IalsModel};
use crate::neighbours::ItemNeighbours;

/// Above this many items the head proposes no candidates of its own (its iALS scan
/// is exhaustive), in training and serving alike.
pub const OWN_CANDIDATES_MAX_ITEMS: usize = 100_000;

/// One input of the relevance head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFeature {
    /// The candidate's score from the first stage (given with the list).
    Retrieval,
    /// The head's EASE model: `Σ_{i ∈ history} B[i][item]`.
    Ease,
    /// The head's iALS model: `x_user · y_item`.
    Ials,
    /// `ln(1 + training interactions of the item)`.
    LogPopularity,
    /// The ranking model's shared-embedding score (`RankingModel::shared_scores`,
    /// trained as a retrieval score by the `multitask` objective; given with the list).
    Multitask,
    /// `Σ_{i ∈ history} cos(i, item)` over the head's [`ItemNeighbours`]. Computed for
    /// new users only (a list with [`ListInputs::new_user`]): a short history is where
    /// item–item similarity beats the trained models, and a known user's full history
    /// would cost `history × neighbours` per list for no measured gain.
    Cosine,
}

impl ListFeature {
    /// The name used in configurations and manifests.
    pub fn name(self) -> &'static str {
        match self {
            ListFeature::Retrieval => "retrieval",
            ListFeature::Ease => "ease",
            ListFeature::Ials => "ials",
            ListFeature::LogPopularity => "log_popularity",
            ListFeature::Multitask => "multitask",
            ListFeature::Cosine => "cosine",
        }
    }
}

/// The learned part of the head, stored in the ranking model's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelevanceWeights {
    /// The inputs, in weight order.
    pub features: Vec<ListFeature>,
    /// One weight per feature.
    pub weights: Vec<f32>,
    /// Training facts (validation metrics of the head, list sizes).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The head's own candidates: its iALS model proposes `own_share × num_candidates`
    /// items that are merged into the first stage's before ranking (as in training),
    /// so a list is never limited to what one first stage finds. 0: none.
    #[serde(default)]
    pub own_share: f32,
    /// Weights of cold items (no training interaction), one per feature (only those a
    /// cold item has matter: the retrieval score). Empty: cold items are scored with
    /// `weights` (models saved before cold-item weights existed).
    #[serde(default)]
    pub cold_weights: Vec<f32>,
    /// Added to a cold item's score: how a cold item compares with known ones at equal
    /// standardised features.
    #[serde(default)]
    pub cold_bias: f32,
    /// The weights of new users' lists (users known only by a request's history), one
    /// set per history length trained on, ascending ([`RelevanceWeights::for_new_user`]
    /// picks one); empty: new users are scored with `weights`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_users: Vec<NewUserWeights>,
}

impl RelevanceWeights {
    /// The new-user weights for a history of `len` items: the set trained on the
    /// nearest history length (on a log scale; ties to the shorter), or `None` — the
    /// known users' weights apply — without sets or beyond twice the longest length
    /// trained on. Weights learned on short histories rank a long one worse than the
    /// known users' weights do: with one set for every length, split42's users sent
    /// their whole training history scored 0.403 NDCG@10 against 0.467, while from
    /// their first 20 items the set won, 0.341 against 0.321.
    pub fn for_new_user(&self, len: usize) -> Option<&NewUserWeights> {
        let longest = self.new_users.iter().map(|n| n.history).max()?;
        if len > 2 * longest as usize {
            return None;
        }
        let distance =
            |n: &NewUserWeights| ((len.max(1) as f64) / n.history.max(1) as f64).ln().abs();
        self.new_users.iter().min_by(|a, b| {
            distance(a)
                .total_cmp(&distance(b))
                .then(a.history.cmp(&b.history))
        })
    }
}

/// The weights of new users' lists of one history length
/// ([`RelevanceWeights::new_users`]), over the same features as the known users' weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserWeights {
    /// The history length of the lists they were learned on.
    pub history: u32,
    /// One weight per feature.
    pub weights: Vec<f32>,
    /// One weight per feature for cold items (empty: cold items use `weights`).
    #[serde(default)]
    pub cold_weights: Vec<f32>,
    /// Added to a cold item's score.
    #[serde(default)]
    pub cold_bias: f32,
    /// Training facts (lists, history lengths, NDCG@10 on the training lists).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// The relevance head: weights plus the models behind its features.
#[derive(Debug, Clone, PartialEq)]
pub struct RelevanceHead {
    /// Features and weights.
    pub weights: RelevanceWeights,
    /// Present when [`ListFeature::Ease`] is used (same vocabularies as the ranking model).
    pub ease: Option<EaseModel>,
    /// Present when [`ListFeature::Ials`] is used (same vocabularies as the ranking model).
    pub ials: Option<IalsModel>,
    /// Training interactions per item row of the ranking model.
    pub popularity: Vec<u32>,
    /// Present when [`ListFeature::Cosine`] is used (same item rows as the ranking model).
    pub neighbours: Option<ItemNeighbours>,
}

/// One candidate list, in the ranking model's rows.
#[derive(Debug, Clone, Copy)]
pub struct ListInputs<'a> {
    /// The user's iALS factor: the trained one of a known user, or one folded in from
    /// a history ([`RelevanceHead::ials_query`]); `None`: the iALS feature is missing.
    pub ials_query: Option<&'a [f32]>,
    /// The user's item rows (their training items, plus any history given).
    pub history: &'a [u32],
    /// The user's EASE scores over every item row, precomputed for a known user whose
    /// history is exactly their training items ([`EaseModel::user_scores`]); `None`:
    /// the EASE feature is summed from `history`.
    pub ease_user: Option<&'a [f32]>,
    /// Candidate item rows.
    pub items: &'a [u32],
    /// First-stage scores, one per candidate (NaN: unknown to the first stage).
    pub retrieval: &'a [f32],
    /// The ranking model's shared-embedding scores, one per candidate, when the head
    /// uses [`ListFeature::Multitask`] (empty otherwise: the feature is then missing).
    pub shared: &'a [f32],
    /// The user is known only by `history` (no training row): the list is scored with
    /// [`RelevanceWeights::for_new_user`] when the head has them, and
    /// [`ListFeature::Cosine`] is computed.
    pub new_user: bool,
}

impl RelevanceHead {
    /// Checks the weights and the carried models against the ranking vocabularies.
    pub fn check(&self, users: usize, items: usize) -> Result<()> {
        let w = &self.weights;
        if w.features.len() != w.weights.len() || w.features.is_empty() {
            return Err(Error::invalid(
                "relevance",
                format!(
                    "{} features and {} weights",
                    w.features.len(),
                    w.weights.len()
                ),
            ));
        }
        if w.weights.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("relevance", "a weight is not finite"));
        }
        if !(w.cold_weights.is_empty() || w.cold_weights.len() == w.weights.len())
            || w.cold_weights.iter().any(|v| !v.is_finite())
            || !w.cold_bias.is_finite()
        {
            return Err(Error::invalid(
                "relevance.cold_weights",
                format!(
                    "expected none or {} finite weights and a finite bias",
                    w.weights.len()
                ),
            ));
        }
        if self.popularity.len() != items {
            return Err(Error::invalid(
                "relevance.popularity",
                format!("expected {items} items, got {}", self.popularity.len()),
            ));
        }
        let uses = |f| w.features.contains(&f);
        match (&self.ease, uses(ListFeature::Ease)) {
            (Some(m), true) if m.num_users() == users && m.num_items() == items => {}
            (None, false) => {}
            _ => {
                return Err(Error::invalid(
                    "relevance.ease",
                    "the EASE model is missing, unused or of other vocabularies",
                ))
            }
        }
        match (&self.ials, uses(ListFeature::Ials)) {
            (Some(m), true) if m.num_users() == users && m.num_items() == items => {}
            (None, false) => {}
            _ => {
                return Err(Error::invalid(
                    "relevance.ials",
                    "the iALS model is missing, unused or of other vocabularies",
                ))
            }
        }
        match (&self.neighbours, uses(ListFeature::Cosine)) {
            (Some(m), true) => m.check(items)?,
            (None, false) => {}
            _ => {
                return Err(Error::invalid(
                    "relevance.neighbours",
                    "the item neighbours are missing or unused",
                ))
            }
        }
        for n in &w.new_users {
            let nf = w.weights.len();
            if n.weights.len() != nf
                || !(n.cold_weights.is_empty() || n.cold_weights.len() == nf)
                || n.weights
                    .iter()
                    .chain(&n.cold_weights)
                    .any(|v| !v.is_finite())
                || !n.cold_bias.is_finite()
            {
                return Err(Error::invalid(
                    "relevance.new_users",
                    format!("expected {nf} finite weights, none or {nf} finite cold weights and a finite bias"),
                ));
            }
        }
        Ok(())
    }

    /// The weights that score `list`: `(weights, cold weights, cold bias)`, the new
    /// users' for a new user's list when the head has them.
    fn weights_for(&self, list: &ListInputs<'_>) -> (&[f32], &[f32], f32) {
        let w = &self.weights;
        match w.for_new_user(list.history.len()).filter(|_| list.new_user) {
            Some(n) => (&n.weights, &n.cold_weights, n.cold_bias),
            None => (&w.weights, &w.cold_weights, w.cold_bias),
        }
    }

    /// Writes the relevance score of every candidate of `list` into `out`.
    /// `features` is scratch (`F × n` values after the call: the standardised features).
    pub fn score(&self, list: &ListInputs<'_>, features: &mut Vec<f32>, out: &mut [f32]) {
        self.features_into(list, features);
        let n = list.items.len();
        let (weights, cold_weights, cold_bias) = self.weights_for(list);
        list_scores(features, n, weights, out);
        if cold_weights.is_empty() {
            return;
        }
        for (j, &i) in list.items.iter().enumerate() {
            if self.is_cold(i) {
                out[j] = cold_bias
                    + cold_weights
                        .iter()
                        .enumerate()
                        .map(|(f, cw)| cw * features[f * n + j])
                        .sum::<f32>();
            }
        }
    }

    /// Whether item row `i` has no training interaction (or is unknown): a cold item.
    pub fn is_cold(&self, i: u32) -> bool {
        self.popularity.get(i as usize).is_none_or(|&p| p == 0)
    }

    /// The raw features of `list`, feature-major (`F × n`).
    pub fn features_into(&self, list: &ListInputs<'_>, features: &mut Vec<f32>) {
        let n = list.items.len();
        features.clear();
        features.resize(self.weights.features.len() * n, 0.0);
        for (f, col) in self
            .weights
            .features
            .iter()
            .zip(features.chunks_exact_mut(n.max(1)))
        {
            match f {
                ListFeature::Retrieval => col.copy_from_slice(&list.retrieval[..n]),
                ListFeature::Multitask => match list.shared.get(..n) {
                    Some(s) => col.copy_from_slice(s),
                    None => col.fill(f32::NAN),
                },
                ListFeature::LogPopularity => {
                    for (c, &i) in col.iter_mut().zip(list.items) {
                        let p = self.popularity.get(i as usize).copied().unwrap_or(0);
                        *c = (p as f32).ln_1p();
                    }
                }
                ListFeature::Ease => match (&self.ease, list.ease_user) {
                    (Some(_), Some(scores)) => {
                        for (c, &i) in col.iter_mut().zip(list.items) {
                            *c = scores.get(i as usize).copied().unwrap_or(0.0);
                        }
                    }
                    (Some(m), None) => m.score_items(list.history, list.items, col),
                    (None, _) => col.fill(f32::NAN),
                },
                ListFeature::Ials => match (&self.ials, list.ials_query) {
                    (Some(m), Some(x)) if x.len() == m.dim() => {
                        for (c, &i) in col.iter_mut().zip(list.items) {
                            *c = match m
                                .item_factors
                                .data()
                                .get(i as usize * m.dim()..(i as usize + 1) * m.dim())
                            {
                                Some(y) => crate::autorec::dot(x, y),
                                None => f32::NAN,
                            };
                        }
                    }
                    _ => col.fill(f32::NAN),
                },
                ListFeature::Cosine => match (&self.neighbours, list.new_user) {
                    (Some(m), true) => m.score_items(list.history, list.items, col),
                    _ => col.fill(f32::NAN),
                },
            }
            // What the head's models learned nothing about is missing, not zero.
            if *f != ListFeature::Retrieval {
                for (c, &i) in col.iter_mut().zip(list.items) {
                    if self.is_cold(i) {
                        *c = f32::NAN;
                    }
                }
            }
        }
    }

    /// The iALS factor of a user: the trained one (`known` user row, no extra
    /// history), else folded in from `history` (item rows with strengths; a known
    /// user's training items should be included by the caller). `None` without an
    /// iALS model or history. `gram` is the iALS model's [`IalsModel::gram`].
    pub fn ials_query(
        &self,
        known: Option<u32>,
        history: &[(u32, f32)],
        extra: bool,
        gram: &[f32],
    ) -> Option<Vec<f32>> {
        let m = self.ials.as_ref()?;
        match known {
            Some(u) if !extra && (u as usize) < m.num_users() => {
                Some(m.user_factors.row(u as usize).to_vec())
            }
            _ if history.is_empty() => None,
            _ => m.fold_in(gram, history).ok(),
        }
    }
}

/// Standardises each feature row of `features` (`F × n`, feature-major) within the
/// list and writes `Σ_f w_f · z_f` per candidate into `out`. Non-finite values (a
/// feature a model cannot compute for that item) are set to the row's mean of the
/// finite values first; a row with no spread contributes 0.
pub fn list_scores(features: &mut [f32], n: usize, weights: &[f32], out: &mut [f32]) {
    out[..n].fill(0.0);
    if n == 0 {
        return;
    }
    for (row, &w) in features.chunks_exact_mut(n).zip(weights) {
        standardise(row);
        out.iter_mut()
            .zip(row.iter())
            .for_each(|(o, z)| *o += w * z);
    }
}

/// `(x − mean) / std` in place over the finite values; the others become 0.
pub fn standardise(row: &mut [f32]) {
    let (mut sum, mut count) = (0f64, 0usize);
    for &v in row.iter() {
        if v.is_finite() {
            sum += v as f64;
            count += 1;
        }
    }
    if count == 0 {
        row.fill(0.0);
        return;
    }
    let mean = sum / count as f64;
    let var = row
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / count as f64;
    let sd = var.sqrt();
    for v in row.iter_mut() {
        *v = if v.is_finite() && sd > 1e-12 {
            ((*v as f64 - mean) / sd) as f32
        } else {
            0.0
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn standardise_handles_constants_and_missing_values() {
        let mut r = [1.0, 3.0, f32::NAN, 5.0];
        standardise(&mut r);
        let sd = (8.0f32 / 3.0).sqrt();
        for (got, want) in r.iter().zip([-2.0 / sd, 0.0, 0.0, 2.0 / sd]) {
            assert!((got - want).abs() < 1e-6, "{r:?}");
        }
        let mut c = [2.0; 3];
        standardise(&mut c);
        assert_eq!(c, [0.0; 3]);
        let mut m = [f32::NAN, f32::INFINITY];
        standardise(&mut m);
        assert_eq!(m, [0.0, 0.0]);
    }

    /// A head over retrieval and popularity: items with popularity 0 are cold, their
    /// popularity is missing (the others are standardised without it) and they are
    /// scored `cold_weights · z + cold_bias`.
    #[test]
    fn cold_items_have_missing_features_and_their_own_weights() {
        let head = RelevanceHead {
            weights: RelevanceWeights {
                features: vec![ListFeature::Retrieval, ListFeature::LogPopularity],
                weights: vec![1.0, 2.0],
                metrics: Default::default(),
                own_share: 0.0,
                cold_weights: vec![3.0, 5.0],
                cold_bias: -1.0,
                new_users: Vec::new(),
            },
            ease: None,
            ials: None,
            neighbours: None,
            // Row 0: OOV; rows 1, 2 known; row 3 without training interactions.
            popularity: vec![0, 3, 0, 7],
        };
        assert!(head.check(1, 4).is_ok());
        assert!(head.is_cold(0) && !head.is_cold(1) && head.is_cold(2) && head.is_cold(9));
        let list = ListInputs {
            ials_query: None,
            history: &[],
            ease_user: None,
            items: &[1, 2, 3],
            retrieval: &[0.0, 1.0, 2.0],
            shared: &[],
            new_user: false,
        };
        let mut f = Vec::new();
        head.features_into(&list, &mut f);
        assert_eq!(f[..3], [0.0, 1.0, 2.0]);
        assert!(f[3] == 4f32.ln() && f[4].is_nan() && f[5] == 8f32.ln());
        let mut out = [0.0; 3];
        head.score(&list, &mut f, &mut out);
        // Retrieval z = [−1.2247, 0, 1.2247]; popularity z over items 1 and 3 = [−1, 1].
        let z = 1.5f32.sqrt();
        let want = [-z - 2.0, 3.0 * 0.0 + 5.0 * 0.0 - 1.0, z + 2.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-5, "{out:?}");
        }
        // Without cold weights (models saved before them) the warm weights apply.
        let mut old = head.clone();
        old.weights.cold_weights.clear();
        old.score(&list, &mut f, &mut out);
        assert!(out[1].abs() < 1e-6, "{out:?}");
        let mut bad = head.clone();
        bad.weights.cold_weights.pop();
        assert_eq!(
            bad.check(1, 4).unwrap_err().to_string(),
            "invalid relevance.cold_weights: expected none or 2 finite weights and a finite bias"
        );
    }

    /// A history uses the weights of the nearest trained length on a log scale (ties to
    /// the shorter), and none beyond twice the longest; a bad set is refused by name.
    #[test]
    fn new_users_get_the_weights_of_the_nearest_history_length() {
        let set = |history: u32| NewUserWeights {
            history,
            weights: vec![history as f32],
            cold_weights: Vec::new(),
            cold_bias: 0.0,
            metrics: Default::default(),
        };
        let mut w = RelevanceWeights {
            features: vec![ListFeature::Retrieval],
            weights: vec![1.0],
            metrics: Default::default(),
            own_share: 0.0,
            cold_weights: Vec::new(),
            cold_bias: 0.0,
            new_users: vec![set(20), set(5)],
        };
        let pick = |w: &RelevanceWeights, len| w.for_new_user(len).map(|n| n.history);
        // 10 is exactly between 5 and 20 on a log scale: the shorter.
        for (len, want) in [(0, Some(5)), (1, Some(5)), (9, Some(5)), (10, Some(5))] {
            assert_eq!(pick(&w, len), want, "{len}");
        }
        for (len, want) in [(11, Some(20)), (40, Some(20)), (41, None), (1000, None)] {
            assert_eq!(pick(&w, len), want, "{len}");
        }
        let head = RelevanceHead {
            weights: w.clone(),
            ease: None,
            ials: None,
            popularity: vec![1, 1],
            neighbours: None,
        };
        let list = ListInputs {
            ials_query: None,
            history: &[0; 30],
            ease_user: None,
            items: &[0, 1],
            retrieval: &[0.0, 1.0],
            shared: &[],
            new_user: true,
        };
        assert_eq!(head.weights_for(&list).0, [20.0]);
        let known = ListInputs {
            new_user: false,
            ..list
        };
        assert_eq!(head.weights_for(&known).0, [1.0]);
        assert!(head.check(1, 2).is_ok());
        w.new_users[1].weights.push(0.0);
        let bad = RelevanceHead { weights: w, ..head };
        assert_eq!(
            bad.check(1, 2).unwrap_err().to_string(),
            "invalid relevance.new_users: expected 1 finite weights, none or 1 finite cold weights and a finite bias"
        );
    }

    #[test]
    fn list_scores_are_the_weighted_sum_of_standardised_features() {
        // Two features over three candidates: [0, 1, 2] (z = −1.2247, 0, 1.2247) and
        // [10, 10, 40] (z = −0.7071, −0.7071, 1.4142).
        let mut f = vec![0.0, 1.0, 2.0, 10.0, 10.0, 40.0];
        let mut out = [0.0; 3];
        list_scores(&mut f, 3, &[2.0, -1.0], &mut out);
        let (a, b) = (1.5f32.sqrt(), std::f32::consts::FRAC_1_SQRT_2);
        let want = [-2.0 * a + b, b, 2.0 * a - 2.0 * b];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-5, "{out:?}");
        }
        // Scale and shift of a feature never change the scores.
        let mut g = vec![5.0, 15.0, 25.0, -1.0, -1.0, -4.0];
        let mut out2 = [0.0; 3];
        list_scores(&mut g, 3, &[2.0, 1.0], &mut out2);
        for (a, b) in out.iter().zip(out2) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
