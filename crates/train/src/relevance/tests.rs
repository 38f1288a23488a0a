//! Tests of the relevance head's fitting (kept out of `relevance.rs` so that the
//! fitting code reads on its own).

use super::*;
use rustc_hash::FxHashSet;

/// A generated log of 300 interactions (30 users, 20 items) and all its rows.
fn small_log() -> (shortlist_core::Dataset, Vec<usize>) {
    let (data, _) =
        shortlist_data::synth::generate(&shortlist_data::synth::SynthConfig::sized(30, 20, 300))
            .unwrap();
    (data, (0..300).collect())
}

fn lists() -> Lists {
    let mut rng = Rng::new(5);
    let mut l = Lists {
        features: 3,
        ..Default::default()
    };
    for k in 0..6 {
        let n = 4 + k;
        l.z.push((0..3 * n).map(|_| rng.normal() as f32).collect());
        let mut y = vec![0.0; n];
        y[k % n] = 1.0;
        y[(k + 2) % n] = 1.0;
        l.labels.push(y);
        // Every third item cold, positives among them.
        l.cold.push((0..n).map(|j| j % 3 == k % 3).collect());
    }
    l
}

fn check_gradient(l: &Lists, w: &[f32]) {
    let (_, g) = loss_and_grad(l, w, 0.25);
    assert_eq!(g.len(), w.len());
    for f in 0..w.len() {
        let h = 1e-3f32;
        let mut wp = w.to_vec();
        wp[f] += h;
        let mut wm = w.to_vec();
        wm[f] -= h;
        let fd = (loss_and_grad(l, &wp, 0.25).0 - loss_and_grad(l, &wm, 0.25).0) / (2.0 * h as f64);
        assert!((fd - g[f]).abs() < 1e-4, "parameter {f}: {fd} vs {}", g[f]);
    }
}

#[test]
fn gradient_matches_finite_differences() {
    // One set of weights for every item (cold flags ignored) …
    check_gradient(&lists(), &[0.3, -0.7, 1.1]);
    // … and cold items with their own weights and bias.
    check_gradient(&lists(), &[0.3, -0.7, 1.1, 0.9, 0.2, -0.4, -0.6]);
}

#[test]
fn cold_items_are_scored_by_their_own_weights() {
    // One list of 3, features [1, 0, -1]; item 2 is cold. Warm weight 2, cold
    // weight 1 and bias 3: s = [2, 0, -1 + 3 = 2], positive 2.
    let l = Lists {
        features: 1,
        z: vec![vec![1.0, 0.0, -1.0]],
        labels: vec![vec![0.0, 0.0, 1.0]],
        cold: vec![vec![false, false, true]],
    };
    let (loss, g) = loss_and_grad(&l, &[2.0, 1.0, 3.0], 0.0);
    let z = 2f64.exp() + 1.0 + 2f64.exp();
    assert!((loss - -(2f64.exp() / z).ln()).abs() < 1e-9);
    // ∂/∂bias = p_cold − 1; ∂/∂w_cold = (p_cold − 1)·(−1); ∂/∂w = p_0 · 1.
    let p = 2f64.exp() / z;
    assert!((g[2] - (p - 1.0)).abs() < 1e-9);
    assert!((g[1] - (1.0 - p)).abs() < 1e-9);
    assert!((g[0] - p).abs() < 1e-9);
    // Without cold parameters the same list scores item 2 with the warm weight.
    let (loss, _) = loss_and_grad(&l, &[2.0], 0.0);
    let z = 2f64.exp() + 1.0 + (-2f64).exp();
    assert!((loss - -((-2f64).exp() / z).ln()).abs() < 1e-9);
}

#[test]
fn time_holdout_takes_the_latest_rows() {
    let (data, rows) = small_log();
    let (fit, held) = holdout_by_time(&data, &rows, 0.2).unwrap();
    assert_eq!((fit.len(), held.len()), (240, 60));
    let ts = data.interactions.timestamps.as_ref().unwrap();
    let last_fit = fit.iter().map(|&r| ts[r]).max().unwrap();
    assert!(held.iter().all(|&r| ts[r] >= last_fit));
    let mut none = data.clone();
    none.interactions.timestamps = None;
    assert_eq!(
        holdout_by_time(&none, &rows, 0.2).unwrap_err().to_string(),
        "invalid relevance.holdout_by: \"time\" needs timestamps, and the training rows have none"
    );
}

#[test]
fn loss_is_the_softmax_cross_entropy_of_a_hand_computed_list() {
    // One list of 3, features [1, 0, -1], weight 2: s = [2, 0, -2], positive 0.
    let l = Lists {
        features: 1,
        z: vec![vec![1.0, 0.0, -1.0]],
        labels: vec![vec![1.0, 0.0, 0.0]],
        cold: Vec::new(),
    };
    let (loss, _) = loss_and_grad(&l, &[2.0], 0.0);
    let want = -(2f64.exp() / (2f64.exp() + 1.0 + (-2f64).exp())).ln();
    assert!((loss - want).abs() < 1e-9);
}

#[test]
fn holdout_keeps_one_row_per_user_and_is_seeded() {
    let (data, rows) = small_log();
    let (fit, held) = holdout(&data, &rows, 0.2, 1);
    assert_eq!(fit.len() + held.len(), 300);
    assert_eq!(holdout(&data, &rows, 0.2, 1), (fit.clone(), held.clone()));
    assert_ne!(holdout(&data, &rows, 0.2, 2).1, held);
    let users_fit: FxHashSet<u32> = fit.iter().map(|&r| data.interactions.users[r]).collect();
    let users_all: FxHashSet<u32> = rows.iter().map(|&r| data.interactions.users[r]).collect();
    assert_eq!(users_fit, users_all);
    assert!((held.len() as f64 - 60.0).abs() <= 20.0, "{}", held.len());
}

#[test]
fn new_user_settings_are_checked_by_name() {
    let bad = |cfg: RelevanceTrainConfig| cfg.validate().unwrap_err().to_string();
    assert_eq!(
        bad(RelevanceTrainConfig {
            neighbours: 0,
            ..Default::default()
        }),
        "invalid relevance.neighbours: the cosine feature needs at least 1 neighbour per item"
    );
    assert_eq!(
        bad(RelevanceTrainConfig {
            new_user_histories: vec![5, 0],
            ..Default::default()
        }),
        "invalid relevance.new_user_histories: expected history lengths of at least 1"
    );
    // Without the cosine feature no neighbours are needed.
    assert!(RelevanceTrainConfig {
        features: vec![ListFeature::Retrieval],
        neighbours: 0,
        ..Default::default()
    }
    .validate()
    .is_ok());
}

#[test]
fn fitted_parameters_split_into_warm_and_cold_weights() {
    assert_eq!(
        split_weights(&[1.0, 2.0, 3.0, 4.0, 5.0], 2),
        (vec![1.0, 2.0], vec![3.0, 4.0], 5.0)
    );
    assert_eq!(
        split_weights(&[1.0, 2.0], 2),
        (vec![1.0, 2.0], Vec::new(), 0.0)
    );
}
