//! Finite-difference gradient checks of the ranking model's training: every trainable
//! parameter (id, implicit and side-feature embedding rows, user/item biases, MLP and
//! DCN-v2 cross layers) under every loss (rating MSE, click cross-entropy, the
//! multitask MSE + in-batch softmax), the analytic gradients of [`Trainer::backward`]
//! against central differences of a loss computed from the **model crate's forward
//! pass** (`RankingModel::raw_batch`, `shared_scores`), an independent implementation.

use shortlist_core::{Dataset, Rng};
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_features::{FeatureConfig, FeatureSpec};
use shortlist_model::{Objective, RankingModel, Scratch};

use crate::config::{MultitaskConfig, TrainConfig};
use crate::step::Trainer;

/// A model with every kind of parameter: ids, implicit bags, side features of each
/// lookup kind (categorical, bag, text, dense), biases, dot, two cross layers.
fn model(objective: Objective, cross_layers: usize) -> (RankingModel, TrainConfig) {
    let (data, _): (Dataset, _) = generate(&SynthConfig::sized(25, 15, 300)).unwrap();
    let rows: Vec<usize> = (0..data.interactions.len()).collect();
    let cfg = TrainConfig {
        objective,
        multitask: (objective == Objective::Multitask).then_some(MultitaskConfig {
            rating_weight: 0.7,
            retrieval_weight: 1.3,
            logq_correction: true,
        }),
        embedding_dim: 3,
        hidden: vec![6, 4],
        biases: true,
        dot: true,
        implicit: true,
        cross_layers,
        features: FeatureConfig {
            user_features: vec!["*".into()],
            item_features: vec!["*".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let spec = FeatureSpec::fit(&data, &rows, &cfg.features).unwrap();
    let (u, i) = (spec.encode_users(&data), spec.encode_items(&data));
    let mut m = RankingModel::new(cfg.model_config(), spec, &u, &i).unwrap();
    let mut rng = Rng::new(11);
    let ni = m.num_items() as u64;
    let bags: Vec<Vec<u32>> = (0..m.num_users())
        .map(|u| {
            let mut b: Vec<u32> = (0..1 + u % 4)
                .map(|_| 1 + rng.below(ni - 1) as u32)
                .collect();
            b.sort_unstable();
            b.dedup();
            b
        })
        .collect();
    m.set_implicit(&bags).unwrap();
    let mut fill =
        |v: &mut [f32], s: f64| v.iter_mut().for_each(|x| *x = (rng.normal() * s) as f32);
    for f in &mut m.features {
        if let Some(t) = &mut f.table {
            fill(t.data_mut(), 0.5);
        }
    }
    for t in [&mut m.user_bias, &mut m.item_bias].into_iter().flatten() {
        fill(t.data_mut(), 0.3);
    }
    for l in &mut m.mlp.layers {
        fill(&mut l.weight, 0.5);
        fill(&mut l.bias, 0.2);
    }
    for l in &mut m.cross.layers {
        fill(&mut l.weight, 0.3);
        fill(&mut l.bias, 0.2);
    }
    assert!(
        m.features.len() >= 8,
        "{:?}",
        m.features.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    (m, cfg)
}

/// The logQ shifts of the check: any numbers will do (they are constants of the loss).
fn log_q(items: usize) -> Vec<f32> {
    (0..items).map(|i| -1.0 - (i % 5) as f32 * 0.3).collect()
}

/// The batch mean loss of the objective, from the model's forward pass, in f64.
fn loss(m: &RankingModel, cfg: &TrainConfig, users: &[u32], items: &[u32], labels: &[f32]) -> f64 {
    let n = users.len();
    let mut z = vec![0.0; n];
    m.raw_batch(users, items, &mut Scratch::default(), &mut z);
    let (rw, tw) = cfg.loss_weights();
    let per: f64 = z
        .iter()
        .zip(labels)
        .map(|(&z, &y)| {
            let (z, y) = (z as f64, y as f64);
            match cfg.objective {
                Objective::Click => {
                    let p = 1.0 / (1.0 + (-z).exp());
                    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
                }
                Objective::Rating | Objective::Multitask => rw as f64 * (z - y).powi(2),
            }
        })
        .sum::<f64>()
        / n as f64;
    if cfg.objective != Objective::Multitask {
        return per;
    }
    // In-batch softmax over the shared embeddings (each example's own item positive).
    let shift = log_q(m.num_items());
    let mut logits = vec![0f64; n * n];
    let mut s = vec![0f32; n];
    for k in 0..n {
        m.shared_scores(users[k], items, &mut s);
        for j in 0..n {
            logits[k * n + j] = s[j] as f64 - shift[items[j] as usize] as f64;
        }
    }
    let softmax: f64 = (0..n)
        .map(|k| {
            let row = &logits[k * n..(k + 1) * n];
            row.iter().map(|v| v.exp()).sum::<f64>().ln() - row[k]
        })
        .sum::<f64>()
        / n as f64;
    // the retrieval loss is summed over the batch, the rating loss averaged
    per + tw as f64 * softmax * n as f64
}

/// A parameter's location: (group, tensor index, element).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Param {
    Table(usize),
    Bias(usize),
    Mlp(usize, bool),
    Cross(usize, bool),
}

fn slot(m: &mut RankingModel, p: Param) -> &mut [f32] {
    match p {
        Param::Table(f) => m.features[f].table.as_mut().unwrap().data_mut(),
        Param::Bias(0) => m.user_bias.as_mut().unwrap().data_mut(),
        Param::Bias(_) => m.item_bias.as_mut().unwrap().data_mut(),
        Param::Mlp(l, w) => {
            let layer = &mut m.mlp.layers[l];
            if w {
                &mut layer.weight
            } else {
                &mut layer.bias
            }
        }
        Param::Cross(l, w) => {
            let layer = &mut m.cross.layers[l];
            if w {
                &mut layer.weight
            } else {
                &mut layer.bias
            }
        }
    }
}

/// The analytic gradient of every parameter after `Trainer::backward`, dense.
fn analytic(tr: &Trainer, m: &RankingModel) -> Vec<(Param, Vec<f32>)> {
    let mut out = Vec::new();
    for (f, g) in m.features.iter().zip(&tr.grads) {
        let (Some(t), Some(g)) = (&f.table, g) else {
            continue;
        };
        let mut dense = vec![0.0; t.data().len()];
        let d = t.dim();
        for (k, &r) in g.rows.iter().enumerate() {
            dense[r as usize * d..(r as usize + 1) * d]
                .copy_from_slice(&g.grad[k * d..(k + 1) * d]);
        }
        out.push((Param::Table(out.len()), dense));
    }
    for (b, g) in tr.bias_grads.iter().enumerate() {
        let rows = if b == 0 { m.num_users() } else { m.num_items() };
        let mut dense = vec![0.0; rows];
        for (k, &r) in g.rows.iter().enumerate() {
            dense[r as usize] = g.grad[k];
        }
        out.push((Param::Bias(b), dense));
    }
    let lane = &tr.lanes[0];
    for (l, (w, b)) in lane.dgrads.iter().enumerate() {
        out.push((Param::Mlp(l, true), w.clone()));
        out.push((Param::Mlp(l, false), b.clone()));
    }
    for (l, (w, b)) in lane.cgrads.iter().enumerate() {
        out.push((Param::Cross(l, true), w.clone()));
        out.push((Param::Cross(l, false), b.clone()));
    }
    out
}

/// Checks `every`-th parameter of each tensor (all with 1); returns how many
/// gradients were non-zero.
fn check(objective: Objective, batch: usize, every: usize) -> usize {
    let (mut m, cfg) = model(objective, 2);
    let mut rng = Rng::new(3);
    let (nu, ni) = (m.num_users() as u64, m.num_items() as u64);
    // Known rows (row 0 is the OOV row) with repeats, so rows collect several examples.
    let users: Vec<u32> = (0..batch).map(|_| 1 + rng.below(nu - 1) as u32).collect();
    let items: Vec<u32> = (0..batch).map(|_| 1 + rng.below(ni - 1) as u32).collect();
    let labels: Vec<f32> = (0..batch)
        .map(|_| match objective {
            Objective::Click => rng.below(2) as f32,
            _ => 1.0 + rng.below(5) as f32,
        })
        .collect();
    let mut tr = Trainer::new(&m, &cfg);
    tr.set_log_q(log_q(m.num_items()));
    tr.backward(&m, &users, &items, &labels);
    // Table indices in `analytic` count only features with tables: map them back.
    let tables: Vec<usize> = (0..m.features.len())
        .filter(|&f| m.features[f].table.is_some())
        .collect();
    let grads = analytic(&tr, &m);
    let mut nonzero = 0;
    let mut groups_seen = std::collections::BTreeSet::new();
    for (param, g) in grads {
        let param = match param {
            Param::Table(k) => Param::Table(tables[k]),
            p => p,
        };
        for e in (0..g.len()).step_by(every) {
            // Two step sizes: a ReLU kink within ±h spoils the larger, the rounding of
            // the f32 forward pass the smaller; a wrong gradient disagrees with both.
            let fd = [3e-3f32, 1e-3].map(|h| {
                let v0 = slot(&mut m, param)[e];
                slot(&mut m, param)[e] = v0 + h;
                let up = loss(&m, &cfg, &users, &items, &labels);
                slot(&mut m, param)[e] = v0 - h;
                let down = loss(&m, &cfg, &users, &items, &labels);
                slot(&mut m, param)[e] = v0;
                (up - down) / (2.0 * h as f64)
            });
            let an = g[e] as f64;
            assert!(
                fd.iter().any(|fd| (fd - an).abs() <= 3e-4 + 2e-2 * an.abs()),
                "{objective:?} batch {batch}: {param:?}[{e}]: analytic {an} vs finite differences {fd:?}"
            );
            if an.abs() > 1e-4 {
                nonzero += 1;
                groups_seen.insert(format!("{param:?}"));
            }
        }
    }
    // Every tensor (each table, both biases, every layer's weights and biases) had
    // gradient flowing through it: the check compared real values, not zeros.
    let tensors = tables.len() + 2 + 2 * (m.mlp.layers.len() + m.cross.layers.len());
    assert_eq!(groups_seen.len(), tensors, "{groups_seen:?}");
    nonzero
}

#[test]
fn rating_mse_gradients_of_every_parameter_match_finite_differences() {
    assert!(check(Objective::Rating, 12, 1) > 300);
}

#[test]
fn click_cross_entropy_gradients_of_every_parameter_match_finite_differences() {
    assert!(check(Objective::Click, 12, 1) > 300);
}

#[test]
fn multitask_gradients_of_every_parameter_match_finite_differences() {
    assert!(check(Objective::Multitask, 12, 1) > 300);
}

#[test]
fn a_batch_split_over_two_threads_has_the_gradients_of_one_lane() {
    // ≥ 1024 examples run in two halves on two threads, and the in-batch softmax spans
    // both halves; one thread computes the whole batch in one lane (the path checked
    // against finite differences above). Both must give the same gradients.
    let (m, cfg) = model(Objective::Multitask, 2);
    let batch = 1100;
    let mut rng = Rng::new(5);
    let (nu, ni) = (m.num_users() as u64, m.num_items() as u64);
    let users: Vec<u32> = (0..batch).map(|_| 1 + rng.below(nu - 1) as u32).collect();
    let items: Vec<u32> = (0..batch).map(|_| 1 + rng.below(ni - 1) as u32).collect();
    let labels: Vec<f32> = (0..batch).map(|_| 1.0 + rng.below(5) as f32).collect();
    let grads = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut tr = Trainer::new(&m, &cfg);
            tr.set_log_q(log_q(m.num_items()));
            let l = tr.backward(&m, &users, &items, &labels);
            (l, analytic(&tr, &m))
        })
    };
    let ((l1, g1), (l2, g2)) = (grads(1), grads(2));
    assert!((l1.loss - l2.loss).abs() <= 1e-9 * l1.loss.abs());
    assert!((l1.retrieval - l2.retrieval).abs() <= 1e-6 * l1.retrieval.abs());
    assert_eq!(g1.len(), g2.len());
    for ((p, a), (_, b)) in g1.iter().zip(&g2) {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0f32, |s, v| s.max(v.abs())).max(1e-6);
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * scale, "{p:?}[{k}]: {x} vs {y}");
        }
        assert!(a.iter().any(|&v| v != 0.0), "{p:?} has no gradient");
    }
}
