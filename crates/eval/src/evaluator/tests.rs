//! Tests of the evaluator: metrics against hand-computed values, exclusion of seen
//! items, and agreement of the chunked ranking with a naive full sort.

use super::*;
use shortlist_core::Rng;

/// [`Evaluator::new`] over the (user, item) columns of the train and test pairs.
fn evaluator(
    n_users: usize,
    n_items: usize,
    train: (&[u32], &[u32]),
    test: (&[u32], &[u32]),
) -> Result<Evaluator> {
    let train = Pairs::new(train.0, train.1).unwrap();
    Evaluator::new(n_users, n_items, train, Pairs::new(test.0, test.1).unwrap())
}

/// A fixed `n_users × n_items` score matrix.
struct Dense {
    n_items: usize,
    scores: Vec<f32>,
}

impl Scorer for Dense {
    fn n_items(&self) -> usize {
        self.n_items
    }
    fn score_users(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
        let n = self.n_items;
        for (r, &u) in users.iter().enumerate() {
            out[r * n..(r + 1) * n]
                .copy_from_slice(&self.scores[u as usize * n..(u as usize + 1) * n]);
        }
        Ok(())
    }
}

fn close(m: &Metrics, key: &str, want: f64) {
    let got = m.get(key).unwrap_or_else(|| panic!("no {key} in {m:?}"));
    assert!((got - want).abs() < 1e-6, "{key}: got {got}, want {want}");
}

/// Hand computation (6 items; user 3 has no test items and is not evaluated):
///
/// user 0: scores [.9 .5 .5 .1 .7 .5], train {0}, test {2, 3}
///   all items:   0(.9) 4(.7) 1(.5) 2(.5) 5(.5) 3(.1) → rank(2)=3, rank(3)=5
///   train masked:      4     1     2     5     3     → rank(2)=2, rank(3)=4
/// user 1: scores all .2 (one big tie), train {1, 3}, test {0, 5, 5} (5 twice)
///   all items: 0 1 2 3 4 5 → rank(0)=0, rank(5)=5 (counted twice)
///   masked:    0 2 4 5     → rank(0)=0, rank(5)=3; relevant {0, 5}
/// user 2: scores [.3 .8 .6 .8 0 .4], train {1}, test {3, 1}
///   all items: 1(.8) 3(.8) 2 5 0 4 → rank(1)=0, rank(3)=1
///   masked:    3 2 5 0 4 → rank(3)=0; item 1 is relevant but masked
///
/// top_k_accuracy over the 7 test interactions, ranks 3,5,0,5,5,1,0:
///   @1 = 2/7, @4 = 4/7, @6 = 7/7
/// full ranking, |R| = 2 for every user, IDCG(2) = 1 + 1/log2(3) = 1.6309298:
///   @2: user0 no hit; user1 hit at 0; user2 hit at 0
///       recall = (0 + .5 + .5)/3 = 1/3, hit_rate = 2/3,
///       ndcg = (0 + 2 · 1/1.6309298)/3 = 0.4087648
///   @3: user0 hit at 2 (DCG 1/log2(4) = .5); users 1, 2 as at @2
///       recall = .5, hit_rate = 1, ndcg = (.5/1.6309298 + 2/1.6309298)/3 = 0.5109560
#[test]
fn hand_computed_example_with_ties_and_masking() {
    let scores = vec![
        0.9, 0.5, 0.5, 0.1, 0.7, 0.5, //
        0.2, 0.2, 0.2, 0.2, 0.2, 0.2, //
        0.3, 0.8, 0.6, 0.8, 0.0, 0.4, //
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
    ];
    let scorer = Dense { n_items: 6, scores };
    let train = Pairs::new(&[0, 1, 1, 2, 3, 1], &[0, 1, 3, 1, 4, 3]).unwrap();
    let test = Pairs::new(&[0, 0, 1, 1, 1, 2, 2], &[2, 3, 0, 5, 5, 3, 1]).unwrap();
    let eval = Evaluator::new(4, 6, train, test).unwrap();
    assert_eq!(eval.users(), &[0, 1, 2]);
    let config = EvalConfig {
        ks: vec![3, 2],
        accuracy_ks: vec![1, 4, 6],
        block_users: 2,
    };
    let m = eval.evaluate(&scorer, &config).unwrap();
    assert_eq!(m.users_evaluated, 3);
    assert_eq!(m.values.len(), 9);
    close(&m, "top_k_accuracy@1", 2.0 / 7.0);
    close(&m, "top_k_accuracy@4", 4.0 / 7.0);
    close(&m, "top_k_accuracy@6", 1.0);
    close(&m, "recall@2", 1.0 / 3.0);
    close(&m, "hit_rate@2", 2.0 / 3.0);
    close(&m, "ndcg@2", 0.4087648);
    close(&m, "recall@3", 0.5);
    close(&m, "hit_rate@3", 1.0);
    close(&m, "ndcg@3", 0.5109560);
}

/// The same hand-computed example as explicit lists: each user's list is the score
/// order of the example above, so the full-ranking metrics must be identical; a
/// list holding a training item and a repeat, or ending early, follows the rules.
#[test]
fn lists_follow_the_full_ranking_definitions() {
    let train = Pairs::new(&[0, 1, 1, 2, 3, 1], &[0, 1, 3, 1, 4, 3]).unwrap();
    let test = Pairs::new(&[0, 0, 1, 1, 1, 2, 2], &[2, 3, 0, 5, 5, 3, 1]).unwrap();
    let eval = Evaluator::new(4, 6, train, test).unwrap();
    let config = EvalConfig {
        ks: vec![3, 2],
        accuracy_ks: vec![1],
        block_users: 2,
    };
    let lists = |u: u32| match u {
        0 => vec![0, 4, 1, 2, 5, 3],
        1 => vec![0, 1, 2, 3, 4, 5],
        2 => vec![1, 3, 2, 5, 0, 4],
        _ => vec![],
    };
    let m = eval.evaluate_lists(lists, &config).unwrap();
    assert_eq!(m.values.len(), 6);
    close(&m, "recall@2", 1.0 / 3.0);
    close(&m, "hit_rate@2", 2.0 / 3.0);
    close(&m, "ndcg@2", 0.4087648);
    close(&m, "recall@3", 0.5);
    close(&m, "ndcg@3", 0.5109560);
    // User 0: [4, 4, 2] → the repeat is skipped, 2 lands at rank 1 (DCG 1/log2 3).
    // User 1: [] → nothing. User 2: [3] → hit at rank 0.
    let short = |u: u32| match u {
        0 => vec![4, 4, 2],
        2 => vec![3],
        _ => vec![],
    };
    let m = eval.evaluate_lists(short, &config).unwrap();
    let idcg2 = 1.0 + 1.0 / 3f64.log2();
    close(
        &m,
        "ndcg@2",
        ((1.0 / 3f64.log2()) / idcg2 + 1.0 / idcg2) / 3.0,
    );
    close(&m, "recall@3", (0.5 + 0.0 + 0.5) / 3.0);
    let err = eval.evaluate_lists(|_| vec![9], &config).unwrap_err();
    assert!(err.to_string().contains("list of user 0"), "{err}");
}

#[test]
fn default_keys_and_json_shape() {
    let scorer = Dense {
        n_items: 3,
        scores: vec![1.0, 2.0, 3.0],
    };
    let eval = evaluator(1, 3, (&[], &[]), (&[0], &[1])).unwrap();
    let m = eval.evaluate(&scorer, &EvalConfig::default()).unwrap();
    let json: serde_json::Value = serde_json::to_value(&m).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "hit_rate@10",
        "hit_rate@20",
        "top_k_accuracy@1",
        "top_k_accuracy@5",
        "top_k_accuracy@10",
        "top_k_accuracy@50",
        "top_k_accuracy@100",
        "users_evaluated",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(json["users_evaluated"], 1);
    // Item 1 is second of 3: a top-1 miss, a top-5 hit; NDCG = 1/log2(3).
    assert_eq!(json["top_k_accuracy@1"], 0.0);
    assert_eq!(json["top_k_accuracy@5"], 1.0);
    close(&m, "ndcg@10", 1.0 / 3f64.log2());
    let back: Metrics = serde_json::from_value(json).unwrap();
    assert_eq!(back, m);
}

/// Reference: sort every user's admissible items, truncate, look up.
fn naive(
    n_users: usize,
    n_items: usize,
    scores: &[f32],
    train: &[(u32, u32)],
    test: &[(u32, u32)],
    ks: &[usize],
    acc_ks: &[usize],
) -> Metrics {
    let key = |u: usize, j: usize| {
        let s = scores[u * n_items + j];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    };
    let order = |u: usize, keep: &dyn Fn(usize) -> bool| {
        let mut v: Vec<usize> = (0..n_items).filter(|&j| keep(j)).collect();
        v.sort_by(|&a, &b| key(u, b).partial_cmp(&key(u, a)).unwrap().then(a.cmp(&b)));
        v
    };
    let mut values = std::collections::BTreeMap::new();
    for &k in acc_ks {
        let hits = test
            .iter()
            .filter(|&&(u, i)| {
                order(u as usize, &|_| true)[..k.min(n_items)].contains(&(i as usize))
            })
            .count();
        values.insert(
            format!("top_k_accuracy@{k}"),
            hits as f64 / test.len() as f64,
        );
    }
    let mut users = 0;
    let mut sums = vec![[0f64; 3]; ks.len()];
    for u in 0..n_users {
        let mut rel: Vec<usize> = test
            .iter()
            .filter(|p| p.0 as usize == u)
            .map(|p| p.1 as usize)
            .collect();
        rel.sort_unstable();
        rel.dedup();
        if rel.is_empty() {
            continue;
        }
        users += 1;
        let seen: Vec<usize> = train
            .iter()
            .filter(|p| p.0 as usize == u)
            .map(|p| p.1 as usize)
            .collect();
        let ranked = order(u, &|j| !seen.contains(&j));
        for (x, &k) in ks.iter().enumerate() {
            let top = &ranked[..k.min(ranked.len())];
            let hits: Vec<usize> = (0..top.len()).filter(|&r| rel.contains(&top[r])).collect();
            let dcg: f64 = hits.iter().map(|&r| 1.0 / ((r + 2) as f64).log2()).sum();
            let idcg: f64 = (0..k.min(rel.len()))
                .map(|r| 1.0 / ((r + 2) as f64).log2())
                .sum();
            sums[x][0] += hits.len() as f64 / rel.len() as f64;
            sums[x][1] += dcg / idcg;
            sums[x][2] += if hits.is_empty() { 0.0 } else { 1.0 };
        }
    }
    for (x, &k) in ks.iter().enumerate() {
        values.insert(format!("recall@{k}"), sums[x][0] / users as f64);
        values.insert(format!("ndcg@{k}"), sums[x][1] / users as f64);
        values.insert(format!("hit_rate@{k}"), sums[x][2] / users as f64);
    }
    Metrics {
        values,
        users_evaluated: users,
    }
}

#[test]
fn equals_naive_sort_on_random_data_with_ties_repeats_and_nan() {
    for seed in 0..8 {
        let mut rng = Rng::new(100 + seed);
        let (nu, ni) = (1 + rng.below(40) as usize, 1 + rng.below(300) as usize);
        // Few distinct score values: ties everywhere; a few NaN.
        let scores: Vec<f32> = (0..nu * ni)
            .map(|_| {
                if rng.below(50) == 0 {
                    f32::NAN
                } else {
                    rng.below(6) as f32
                }
            })
            .collect();
        let pairs = |rng: &mut Rng, n: usize| -> Vec<(u32, u32)> {
            (0..n)
                .map(|_| (rng.below(nu as u64) as u32, rng.below(ni as u64) as u32))
                .collect()
        };
        let train = pairs(&mut rng, 20 * nu);
        let test = pairs(&mut rng, 1 + 5 * nu);
        let cols = |p: &[(u32, u32)]| -> (Vec<u32>, Vec<u32>) { p.iter().copied().unzip() };
        let ((tu, ti), (su, si)) = (cols(&train), cols(&test));
        let eval = evaluator(nu, ni, (&tu, &ti), (&su, &si)).unwrap();
        let (ks, acc) = (vec![1, 3, 10, 50], vec![1, 5, 20, 100]);
        let config = EvalConfig {
            ks: ks.clone(),
            accuracy_ks: acc.clone(),
            block_users: 1 + seed as usize,
        };
        let got = eval
            .evaluate(
                &Dense {
                    n_items: ni,
                    scores: scores.clone(),
                },
                &config,
            )
            .unwrap();
        let want = naive(nu, ni, &scores, &train, &test, &ks, &acc);
        assert_eq!(got.users_evaluated, want.users_evaluated, "seed {seed}");
        for (k, v) in &want.values {
            close(&got, k, *v);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let e = evaluator(2, 3, (&[0], &[0]), (&[0, 1], &[1, 3])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "test items row 1: index 3 is out of range (there are 3)"
    );
    let e = evaluator(2, 3, (&[2], &[0]), (&[], &[])).unwrap_err();
    assert!(e.to_string().starts_with("train users row 0"), "{e}");
    assert!(Pairs::new(&[0, 1], &[0]).is_err());
    let eval = evaluator(1, 3, (&[], &[]), (&[], &[])).unwrap();
    let dense = Dense {
        n_items: 3,
        scores: vec![0.0; 3],
    };
    assert!(eval
        .evaluate(&dense, &EvalConfig::default())
        .unwrap_err()
        .to_string()
        .contains("no test"));
    let eval = evaluator(1, 4, (&[], &[]), (&[0], &[0])).unwrap();
    assert!(eval
        .evaluate(&dense, &EvalConfig::default())
        .unwrap_err()
        .to_string()
        .contains("expected 4, got 3"));
    let config = EvalConfig {
        ks: vec![0],
        ..Default::default()
    };
    assert!(eval.evaluate(&dense, &config).is_err());
}

/// Item popularity follows a power law and each user's test items are drawn like
/// their training items, so counting training interactions must beat chance.
#[test]
fn popularity_beats_random_on_skewed_data() {
    let (nu, ni) = (300, 200);
    let mut rng = Rng::new(5);
    // P(item j) ∝ 1 / (j + 1): draw by inverting the cumulative weights.
    let cum: Vec<f64> = (0..ni)
        .scan(0.0, |acc, j| {
            *acc += 1.0 / (j as f64 + 1.0);
            Some(*acc)
        })
        .collect();
    let total = cum[ni - 1];
    let draw = |rng: &mut Rng, n: usize| -> (Vec<u32>, Vec<u32>) {
        (0..n)
            .map(|_| {
                let x = rng.next_f64() * total;
                (
                    rng.below(nu as u64) as u32,
                    cum.partition_point(|&c| c < x).min(ni - 1) as u32,
                )
            })
            .unzip()
    };
    let (tu, ti) = draw(&mut rng, 12_000);
    let (su, si) = draw(&mut rng, 3_000);
    let eval = evaluator(nu, ni, (&tu, &ti), (&su, &si)).unwrap();
    let pop = crate::PopularityScorer::fit(ni, &ti).unwrap();
    let random = Dense {
        n_items: ni,
        scores: (0..nu * ni).map(|_| rng.next_f32()).collect(),
    };
    let config = EvalConfig::default();
    let (p, r) = (
        eval.evaluate(&pop, &config).unwrap(),
        eval.evaluate(&random, &config).unwrap(),
    );
    for key in ["recall@10", "ndcg@10", "hit_rate@20", "top_k_accuracy@10"] {
        assert!(
            p.get(key).unwrap() > 1.5 * r.get(key).unwrap(),
            "{key}: popularity {p:?} vs random {r:?}"
        );
    }
}
