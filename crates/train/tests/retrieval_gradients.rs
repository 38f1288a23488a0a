//! Finite-difference check of the two-tower training step, end to end and from the
//! outside: every trainable table (query tower: user id and user side features;
//! candidate tower: item id and categorical, bag and dense item features; the pooled
//! leave-one-out history table) under the in-batch softmax with temperature, logQ
//! correction and accidental-hit removal.
//!
//! The analytic gradient is read off the trainer without touching its code: one
//! element-wise Adagrad step from the same seeded initialisation at two learning
//! rates `a` and `2a` gives `w_a = w₀ − a·t` and `w_2a = w₀ − 2a·t`, so
//! `w₀ = 2·w_a − w_2a` and `t = (w_a − w_2a) / a`, where `t = g / (√(acc₀ + g²) + ε)`
//! is inverted for the gradient `g`. The finite differences are of a loss written
//! here from the definition (f64), at `w₀`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use shortlist_core::Dataset;
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_features::FeatureConfig;
use shortlist_model::{InputFeature, Lookup, RetrievalModel};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::EmbeddingOptimizer;

const ACC0: f32 = 1.0;
const EPS: f32 = 1e-10;
const LR: f32 = 1.0;

fn data() -> Dataset {
    generate(&SynthConfig {
        users: 20,
        items: 12,
        interactions: 150,
        seed: 5,
        rank: 3,
        ..Default::default()
    })
    .unwrap()
    .0
}

fn config(learning_rate: f32) -> RetrievalTrainConfig {
    RetrievalTrainConfig {
        embedding_dim: 3,
        history: true,
        temperature: 0.5,
        logq_correction: true,
        remove_accidental_hits: true,
        optimizer: EmbeddingOptimizer::Adagrad,
        learning_rate,
        initial_accumulator: ACC0,
        epsilon: EPS,
        init_scale: 0.5,
        // One batch of every example, one step.
        batch_size: 100_000,
        epochs: 1,
        eval_every_epoch: false,
        features: FeatureConfig {
            user_features: vec!["segment".into(), "age".into()],
            item_features: vec!["genre".into(), "tags".into(), "price".into()],
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Every trainable table of the model, in a fixed order: query features, candidate
/// features, history.
fn tables(m: &RetrievalModel) -> Vec<Vec<f32>> {
    m.query
        .iter()
        .chain(&m.candidate)
        .map(|f| f.table.as_ref().unwrap().data().to_vec())
        .chain(m.history.iter().map(|h| h.data().to_vec()))
        .collect()
}

/// `Σ_features` of entity `row`'s embedding, from the lookups' definition.
fn tower(features: &[InputFeature], params: &[Vec<f64>], d: usize, row: usize) -> Vec<f64> {
    let mut out = vec![0.0; d];
    let mut add = |w: f64, t: &[f64], r: usize| {
        for c in 0..d {
            out[c] += w * t[r * d + c];
        }
    };
    for (f, t) in features.iter().zip(params) {
        match &f.lookup {
            Lookup::Id => add(1.0, t, row),
            Lookup::Index(v) => add(1.0, t, v[row] as usize),
            Lookup::Bag { offsets, ids } => {
                let bag = &ids[offsets[row] as usize..offsets[row + 1] as usize];
                for &b in bag {
                    add(1.0 / bag.len() as f64, t, b as usize);
                }
            }
            Lookup::Dense(v) => add(f64::from(v[row]), t, 0),
        }
    }
    out
}

/// The training loss at `params` (laid out as [`tables`]): the mean over the batch of
/// `−log softmax`, example k's logits over the batch's items `q_k·c_j / τ − log Q_j −
/// ln b`, other copies of its own item removed; `q_k` pools the user's training items
/// but item k's (leave one out).
fn loss(m: &RetrievalModel, pairs: &[(u32, u32)], params: &[Vec<f64>]) -> f64 {
    let d = m.config.embedding_dim;
    let (nq, nc) = (m.query.len(), m.candidate.len());
    let (qp, rest) = params.split_at(nq);
    let (cp, hp) = rest.split_at(nc);
    let h = &hp[0];
    let b = pairs.len();
    let mut popularity = vec![0u32; m.num_items()];
    for &(_, i) in pairs {
        popularity[i as usize] += 1;
    }
    let log_q = |i: u32| (f64::from(popularity[i as usize].max(1)) / b as f64).ln();
    let queries: Vec<Vec<f64>> = pairs
        .iter()
        .map(|&(u, i)| {
            let mut q = tower(&m.query, qp, d, u as usize);
            let others: Vec<u32> = m
                .seen
                .row(u as usize)
                .iter()
                .copied()
                .filter(|&j| j != i)
                .collect();
            for &j in &others {
                for c in 0..d {
                    q[c] += h[j as usize * d + c] / others.len() as f64;
                }
            }
            q
        })
        .collect();
    let cands: Vec<Vec<f64>> = pairs
        .iter()
        .map(|&(_, i)| tower(&m.candidate, cp, d, i as usize))
        .collect();
    let tau = f64::from(m.config.temperature);
    let mut total = 0.0;
    for (k, q) in queries.iter().enumerate() {
        // Columns: the batch's items, other copies of item k's own item removed.
        let cols: Vec<usize> = (0..b)
            .filter(|&j| j == k || pairs[j].1 != pairs[k].1)
            .collect();
        let logits: Vec<f64> = cols
            .iter()
            .map(|&j| {
                let dot: f64 = q.iter().zip(&cands[j]).map(|(x, y)| x * y).sum();
                dot / tau - log_q(pairs[j].1) - (b as f64).ln()
            })
            .collect();
        let pos = cols.iter().position(|&j| j == k).unwrap();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        total += lse - logits[pos];
    }
    total / b as f64
}

#[test]
fn two_tower_training_gradients_match_finite_differences() {
    let d = data();
    let rows: Vec<usize> = (0..d.interactions.len()).collect();
    let (a, _) = train_retrieval(&d, &rows, &[], &config(LR), |_| {}).unwrap();
    let (b, _) = train_retrieval(&d, &rows, &[], &config(2.0 * LR), |_| {}).unwrap();
    let (ta, tb) = (tables(&a), tables(&b));
    // The tables' lookups, as the towers use them: one of each kind.
    let kinds: Vec<String> = a
        .query
        .iter()
        .chain(&a.candidate)
        .map(|f| {
            let kind = match f.lookup {
                Lookup::Id => "id",
                Lookup::Index(_) => "index",
                Lookup::Bag { .. } => "bag",
                Lookup::Dense(_) => "dense",
            };
            format!("{}:{kind}", f.name)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "user_id:id",
            "segment:index",
            "age:dense",
            "item_id:id",
            "genre:index",
            "tags:bag",
            "price:dense"
        ]
    );
    assert_eq!(ta.len(), kinds.len() + 1, "and the history table");

    // w₀ and the analytic gradient, per element.
    let mut w0: Vec<Vec<f64>> = Vec::new();
    let mut analytic: Vec<Vec<f64>> = Vec::new();
    for (x, y) in ta.iter().zip(&tb) {
        let (x, y): (Vec<f64>, Vec<f64>) = (
            x.iter().map(|&v| f64::from(v)).collect(),
            y.iter().map(|&v| f64::from(v)).collect(),
        );
        w0.push(x.iter().zip(&y).map(|(p, q)| 2.0 * p - q).collect());
        analytic.push(
            x.iter()
                .zip(&y)
                .map(|(p, q)| {
                    let t = (p - q) / f64::from(LR);
                    // t = g / √(acc₀ + g²)  (ε = 1e-10 is below f32 resolution here)
                    t * (f64::from(ACC0) / (1.0 - t * t)).sqrt()
                })
                .collect(),
        );
    }

    let pairs: Vec<(u32, u32)> = rows
        .iter()
        .map(|&r| {
            let it = &d.interactions;
            (
                a.spec.user_id.index(d.users.raw(it.users[r])),
                a.spec.item_id.index(d.items.raw(it.items[r])),
            )
        })
        .collect();
    let step = 1e-5;
    let mut worst = 0.0f64;
    let mut nonzero = vec![0usize; w0.len()];
    for t in 0..w0.len() {
        for e in 0..w0[t].len() {
            let mut p = w0.clone();
            p[t][e] += step;
            let up = loss(&a, &pairs, &p);
            p[t][e] -= 2.0 * step;
            let down = loss(&a, &pairs, &p);
            let numeric = (up - down) / (2.0 * step);
            let got = analytic[t][e];
            let err = (got - numeric).abs() / (1e-4 + numeric.abs());
            worst = worst.max(err);
            assert!(
                (got - numeric).abs() <= 1e-6 + 2e-4 * numeric.abs(),
                "table {t} ({}) element {e}: analytic {got:.8} vs finite difference {numeric:.8}",
                kinds.get(t).map_or("history", |k| k.as_str()),
            );
            if numeric.abs() > 1e-4 {
                nonzero[t] += 1;
            }
        }
    }
    eprintln!("worst relative error {worst:.2e}; non-zero gradients per table {nonzero:?}");
    // Every table received a real gradient (a check of zeros against zeros proves nothing).
    assert!(nonzero.iter().all(|&n| n >= 3), "{nonzero:?}");
}
