//! Metrics of click prediction (binary labels, predicted probabilities), exact:
//!
//! * **AUC**: the probability that a random positive scores above a random negative,
//!   ties counting ½ — the Mann–Whitney statistic `(Σ rank(positive) − P(P+1)/2) / (P·N)`
//!   with tied scores given their average rank. Undefined (`None`) without both classes.
//! * **Group AUC** (GAUC, as in industrial CTR papers): each user's AUC over their own
//!   impressions, averaged with the user's number of impressions as weight, over the
//!   users who have both a positive and a negative (the others have no AUC).
//! * **Log-loss**: `−mean(y ln p + (1 − y) ln(1 − p))`, natural log, `p` clamped to
//!   `[1e-7, 1 − 1e-7]` so that one confident mistake is large but finite.
//!
//! Labels are 0 or 1 (anything > 0.5 counts as 1); a NaN score ranks lowest.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Clamp of predicted probabilities in [`log_loss`].
pub const LOG_LOSS_EPS: f64 = 1e-7;

/// Click metrics of a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClickMetrics {
    /// Area under the ROC curve (`None`: only one class present).
    pub auc: Option<f64>,
    /// Impression-weighted mean of per-user AUCs (`None`: no user has both classes).
    pub group_auc: Option<f64>,
    /// Mean binary cross-entropy (nats).
    pub log_loss: f64,
    /// Impressions evaluated.
    pub count: usize,
    /// Positives (clicks) among them.
    pub positives: usize,
    /// Users whose AUC enters the group AUC (both classes present).
    pub group_auc_users: usize,
}

impl ClickMetrics {
    /// All metrics of `scores` (probabilities) against `labels`, grouped by `users`
    /// for the group AUC. The three slices have one entry per impression.
    ///
    /// # Errors
    /// When the slices differ in length or are empty.
    pub fn of(users: &[u32], labels: &[f32], scores: &[f32]) -> Result<Self> {
        if users.len() != labels.len() || labels.len() != scores.len() {
            return Err(Error::invalid(
                "click metrics",
                format!(
                    "{} users, {} labels and {} scores differ in length",
                    users.len(),
                    labels.len(),
                    scores.len()
                ),
            ));
        }
        if labels.is_empty() {
            return Err(Error::invalid("click metrics", "no impressions"));
        }
        let (group_auc, group_auc_users) = group_auc(users, labels, scores);
        Ok(ClickMetrics {
            auc: auc(labels, scores),
            group_auc,
            log_loss: log_loss(labels, scores),
            count: labels.len(),
            positives: labels.iter().filter(|&&y| y > 0.5).count(),
            group_auc_users,
        })
    }
}

/// Sort key of a score: NaN lowest.
fn key(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

/// AUC of `scores` against binary `labels` (ties count ½); `None` without both classes.
pub fn auc(labels: &[f32], scores: &[f32]) -> Option<f64> {
    let mut order: Vec<usize> = (0..labels.len().min(scores.len())).collect();
    order.sort_by(|&a, &b| key(scores[a]).total_cmp(&key(scores[b])));
    auc_sorted(&order, labels, scores)
}

/// AUC over the impressions `order` (sorted by ascending score).
fn auc_sorted(order: &[usize], labels: &[f32], scores: &[f32]) -> Option<f64> {
    let (mut rank_sum, mut pos) = (0f64, 0usize);
    let mut start = 0;
    while start < order.len() {
        // A run of tied scores shares the average of ranks start+1 ..= end.
        let mut end = start + 1;
        while end < order.len() && key(scores[order[end]]) == key(scores[order[start]]) {
            end += 1;
        }
        let avg = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            if labels[k] > 0.5 {
                rank_sum += avg;
                pos += 1;
            }
        }
        start = end;
    }
    let neg = order.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Group AUC and the number of users in it (see the module docs).
pub fn group_auc(users: &[u32], labels: &[f32], scores: &[f32]) -> (Option<f64>, usize) {
    let mut order: Vec<usize> = (0..users.len()).collect();
    // By user, then by score: each user's run is sorted for `auc_sorted`.
    order.sort_by(|&a, &b| {
        users[a]
            .cmp(&users[b])
            .then(key(scores[a]).total_cmp(&key(scores[b])))
    });
    let (mut weighted, mut weight, mut count) = (0f64, 0f64, 0usize);
    for run in order.chunk_by(|&a, &b| users[a] == users[b]) {
        if let Some(a) = auc_sorted(run, labels, scores) {
            weighted += a * run.len() as f64;
            weight += run.len() as f64;
            count += 1;
        }
    }
    ((count > 0).then(|| weighted / weight), count)
}

/// Mean binary cross-entropy of probabilities `scores` against `labels` (see the
/// module docs for the clamp); NaN for no impressions.
pub fn log_loss(labels: &[f32], scores: &[f32]) -> f64 {
    let n = labels.len().min(scores.len());
    let total: f64 = labels
        .iter()
        .zip(scores)
        .map(|(&y, &p)| {
            let p = (p as f64).clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            if y > 0.5 {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    total / n as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_ties_by_hand() {
        // positives scored 0.9, 0.4; negatives 0.4, 0.1, 0.6.
        // Pairs (pos, neg): (0.9 > all three) = 3; (0.4 vs 0.4) = ½, (0.4 > 0.1) = 1,
        // (0.4 < 0.6) = 0 → 4.5 of 6.
        let labels = [1.0, 1.0, 0.0, 0.0, 0.0];
        let scores = [0.9, 0.4, 0.4, 0.1, 0.6];
        assert_eq!(auc(&labels, &scores), Some(0.75));
        // All tied: ½.
        assert_eq!(auc(&labels, &[0.3; 5]), Some(0.5));
        // Perfect and reversed.
        assert_eq!(auc(&[0.0, 1.0], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auc(&[0.0, 1.0], &[0.2, 0.1]), Some(0.0));
        // One class: undefined.
        assert_eq!(auc(&[1.0, 1.0], &[0.1, 0.2]), None);
        // A NaN score ranks lowest: the positive NaN loses to the negative.
        assert_eq!(auc(&[1.0, 0.0], &[f32::NAN, 0.0]), Some(0.0));
    }

    #[test]
    fn auc_equals_the_pair_count_on_random_data() {
        let mut rng = shortlist_core::Rng::new(9);
        let n = 300;
        // Scores on a coarse grid so that ties are frequent.
        let scores: Vec<f32> = (0..n).map(|_| rng.below(20) as f32 / 20.0).collect();
        let labels: Vec<f32> = (0..n).map(|_| rng.below(3).min(1) as f32).collect();
        let (mut wins, mut pairs) = (0f64, 0f64);
        for i in 0..n {
            for j in 0..n {
                if labels[i] == 1.0 && labels[j] == 0.0 {
                    pairs += 1.0;
                    wins += match scores[i].partial_cmp(&scores[j]).unwrap() {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
        }
        let got = auc(&labels, &scores).unwrap();
        assert!(
            (got - wins / pairs).abs() < 1e-12,
            "{got} vs {}",
            wins / pairs
        );
    }

    #[test]
    fn group_auc_weights_users_by_impressions_and_skips_one_class_users() {
        // user 7: 4 impressions, AUC 2/3 (positive 0.8 beats 0.5 and 0.2, loses to 0.9);
        // user 3: 2 impressions, AUC 0 (positive below the negative);
        // user 5: only positives → left out.
        let users = [7, 7, 7, 7, 3, 3, 5, 5];
        let labels = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let scores = [0.8, 0.5, 0.2, 0.9, 0.1, 0.6, 0.3, 0.4];
        let (g, n) = group_auc(&users, &labels, &scores);
        assert_eq!(n, 2);
        let want = (4.0 * (2.0 / 3.0) + 2.0 * 0.0) / 6.0;
        assert!((g.unwrap() - want).abs() < 1e-12, "{g:?} vs {want}");
        assert_eq!(group_auc(&[1, 1], &[1.0, 1.0], &[0.1, 0.2]), (None, 0));
        let m = ClickMetrics::of(&users, &labels, &scores).unwrap();
        assert_eq!(m.group_auc, g);
        assert_eq!((m.count, m.positives, m.group_auc_users), (8, 4, 2));
    }

    #[test]
    fn log_loss_by_hand_and_clamped() {
        let want = -(0.8f64.ln() + 0.75f64.ln()) / 2.0;
        let got = log_loss(&[1.0, 0.0], &[0.8, 0.25]);
        assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        // A certain mistake costs −ln(1e-7), not infinity.
        let worst = log_loss(&[1.0], &[0.0]);
        assert!((worst - 7.0 * 10f64.ln()).abs() < 1e-6, "{worst}");
        assert_eq!(
            ClickMetrics::of(&[1], &[1.0, 0.0], &[0.5, 0.5])
                .unwrap_err()
                .to_string(),
            "invalid click metrics: 1 users, 2 labels and 2 scores differ in length"
        );
    }
}
