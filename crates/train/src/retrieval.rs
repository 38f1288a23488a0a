//! Training the two-tower retrieval model.
//!
//! Losses (softmax cross-entropy of each positive (user, item) pair):
//! * `full-softmax`: against every item of the catalogue (exact; cheap for catalogues of
//!   thousands of items, like MovieLens).
//! * `in-batch`: against the other candidates of the batch (TFRS's `Retrieval` task), with
//!   optional extra sampled negatives (uniform or by popularity), optional removal of
//!   accidental hits (the positive item appearing elsewhere among the candidates), and
//!   optional logQ correction: each candidate column's logit is reduced by
//!   `ln(expected count of that item among the candidates)` — `B·q(i)` for in-batch
//!   candidates with `q(i)` the item's share of training interactions, `M·p(i)` for `M`
//!   sampled negatives drawn with probability `p(i)` — so that popular items, which are
//!   over-represented as negatives, are not pushed down (Yi et al., RecSys 2019).
//!
//! The query's history term is computed leave-one-out during training (the positive
//! item is removed from the pooled history), otherwise the model would learn to find
//! the target in its own input.
//!
//! Item cold start: with item side features, the catalogue's items that have feature
//! values but no training interaction get rows after the trained ones (`cold_items`),
//! with zero id and history embeddings, so their candidate vector is their features'
//! sum. They are left out of every softmax (neither positives nor negatives: they did
//! not exist in the training period). Id dropout (`item_id_dropout`) trains the item
//! tower for that case: each batch drops the id embedding of each candidate item with
//! that probability, forward and backward.
//!
//! The file holds the training loop; its parts live beside it: the configuration
//! (`config.rs`), the per-epoch history and curves (`history.rs`), the model as an
//! evaluation scorer (`scorer.rs`; the split evaluator is
//! [`shortlist_eval::SplitEvaluator`]) and the towers' forward/backward helpers with
//! the history pool (`towers.rs`).

mod config;
mod history;
mod scorer;
#[cfg(test)]
mod tests;
mod towers;

use std::time::Instant;

use rayon::prelude::*;

use shortlist_core::{Dataset, Rng};
use shortlist_eval::SplitEvaluator;
use shortlist_features::FeatureSpec;
use shortlist_model::kernel::{gemm, Operand};
use shortlist_model::retrieval::{Csr, RetrievalConfig, RetrievalModel};
use shortlist_model::{InputFeature, Lookup};

use crate::error::{Error, Result};
use crate::losses::softmax_row;
use crate::optim::{SparseGrad, SparseState};
use crate::trainer::fingerprint;

pub use config::{NegativeSampling, Reduction, RetrievalLoss, RetrievalTrainConfig};
pub use history::{RetrievalEpoch, RetrievalHistory};
pub use scorer::DatasetScorer;
use towers::{
    backprop_feature, features_only_into, init_table, tower_into, zero_rows_from, HistoryPool,
    TableState,
};

/// Trains a retrieval model on `train` rows of `dataset`, evaluating on `test` rows.
/// Deterministic for a seed (the step is sequential; evaluation reduces in a fixed order).
pub fn train_retrieval(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &RetrievalTrainConfig,
    on_epoch: impl FnMut(&RetrievalEpoch),
) -> Result<(RetrievalModel, RetrievalHistory)> {
    train_retrieval_with(
        dataset,
        train,
        test,
        cfg,
        &shortlist_core::progress::NoProgress,
        on_epoch,
    )
}

/// [`train_retrieval`] reporting progress in batches over all epochs (one phase;
/// `on_epoch` runs after each epoch's evaluation).
pub fn train_retrieval_with(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &RetrievalTrainConfig,
    progress: &dyn shortlist_core::progress::Progress,
    mut on_epoch: impl FnMut(&RetrievalEpoch),
) -> Result<(RetrievalModel, RetrievalHistory)> {
    cfg.validate()?;
    if train.is_empty() {
        return Err(Error::NoData("the training split is empty".into()));
    }
    let mut spec = FeatureSpec::fit(dataset, train, &cfg.features)?;
    // Rows 0..trained hold the items of the training rows; cold items follow.
    let trained = spec.item_id.len();
    if cfg.cold_items {
        spec.add_featured_items(dataset);
    }
    let users_enc = spec.encode_users(dataset);
    let items_enc = spec.encode_items(dataset);
    let it = &dataset.interactions;
    // Dataset index → vocabulary row.
    let urow: Vec<u32> = dataset
        .users
        .raw_ids()
        .iter()
        .map(|r| spec.user_id.index(r))
        .collect();
    let irow: Vec<u32> = dataset
        .items
        .raw_ids()
        .iter()
        .map(|r| spec.item_id.index(r))
        .collect();
    let (nu, ni) = (spec.user_id.len(), spec.item_id.len());
    let seen = Csr::from_pairs(
        nu,
        train
            .iter()
            .map(|&r| (urow[it.users[r] as usize], irow[it.items[r] as usize])),
    );
    let mut popularity = vec![0u32; ni];
    for &r in train {
        popularity[irow[it.items[r] as usize] as usize] += 1;
    }
    let model_cfg = RetrievalConfig {
        embedding_dim: cfg.embedding_dim,
        history: cfg.history,
        temperature: cfg.temperature,
    };
    let mut model = RetrievalModel::new(
        model_cfg,
        spec,
        &users_enc,
        &items_enc,
        seen,
        popularity.clone(),
    )?;
    let mut rng = Rng::new(cfg.seed);
    let p = cfg.optim();
    let make_state = |f: &mut InputFeature, rng: &mut Rng| -> TableState {
        let t = f
            .table
            .as_mut()
            .expect("retrieval features always have tables");
        init_table(t, rng, cfg.init_scale);
        TableState {
            grad: SparseGrad::new(t.rows(), t.dim()),
            opt: SparseState::new(cfg.optimizer, t, &p),
        }
    };
    let mut qstate: Vec<TableState> = model
        .query
        .iter_mut()
        .map(|f| make_state(f, &mut rng))
        .collect();
    let mut cstate: Vec<TableState> = model
        .candidate
        .iter_mut()
        .map(|f| make_state(f, &mut rng))
        .collect();
    let mut hstate = model.history.as_mut().map(|h| {
        init_table(h, &mut rng, cfg.init_scale);
        TableState {
            grad: SparseGrad::new(h.rows(), h.dim()),
            opt: SparseState::new(cfg.optimizer, h, &p),
        }
    });
    // Cold items are described by their features alone: zero id and history rows
    // (never touched in training: they are neither positives nor negatives).
    zero_rows_from(&mut model, trained);
    // Id dropout only means something when the item tower has side features.
    let id_dropout = if model.candidate.len() > 1 {
        cfg.item_id_dropout
    } else {
        0.0
    };
    let mut drop_rng = Rng::with_stream(cfg.seed, 0x1d_d0);
    let mut dropped: Vec<bool> = Vec::new();

    let examples: Vec<(u32, u32)> = train
        .iter()
        .map(|&r| (urow[it.users[r] as usize], irow[it.items[r] as usize]))
        .collect();
    let total = examples.len() as f64;
    let log_q: Vec<f32> = popularity
        .iter()
        .map(|&c| ((c.max(1) as f64) / total).ln() as f32)
        .collect();
    let cumulative: Vec<f64> = popularity
        .iter()
        .scan(0.0, |acc, &c| {
            *acc += c as f64;
            Some(*acc)
        })
        .collect();
    let evaluator = if test.is_empty() {
        None
    } else {
        Some(SplitEvaluator::new(dataset, train, test)?)
    };

    let d = cfg.embedding_dim;
    let inv_t = 1.0 / cfg.temperature;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut history = RetrievalHistory::default();
    let mut q = Vec::new();
    let mut c = Vec::new();
    let mut logits = Vec::new();
    let mut dq = Vec::new();
    let mut dc = Vec::new();
    let mut cand_items: Vec<u32> = Vec::new();
    let mut cand_counts: Vec<u32> = Vec::new();
    let mut pos_cols: Vec<u32> = Vec::new();
    let mut col_of = vec![u32::MAX; ni];
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut pool = HistoryPool::new(model.seen.rows(), d);
    let batches = examples.len().div_ceil(cfg.batch_size.max(1)) as u64;
    progress.start(
        &format!("retrieval: {} epochs", cfg.epochs),
        Some(batches * cfg.epochs as u64),
    );
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        if epoch == 1 || cfg.reshuffle_each_epoch {
            rng.shuffle(&mut order);
        }
        let mut loss_sum = 0.0f64;
        for batch in order.chunks(cfg.batch_size) {
            progress.advance(1);
            let b = batch.len();
            // Query vectors (leave-one-out history). The history sum of each distinct
            // user of the batch is computed once, S_u = Σ_{j ∈ seen(u)} h_j, and each
            // example takes (S_u − h_i) / (n_u − 1): O(Σ_{users in batch} n_u) per batch
            // instead of O(Σ_{examples} n_u), which is quadratic in a heavy user's
            // activity.
            q.clear();
            q.resize(b * d, 0.0);
            pairs.clear();
            pairs.extend(batch.iter().map(|&e| examples[e]));
            // Each example's query is independent: computed in parallel, bit-identical
            // for any thread count.
            {
                let model = &model;
                q.par_chunks_mut(d)
                    .zip(pairs.par_iter())
                    .for_each(|(out, &(u, _))| tower_into(&model.query, u, out));
            }
            if let Some(h) = &model.history {
                pool.forward(&model.seen, h, &pairs, &mut q);
            }
            // Candidates. In-batch candidates are deduplicated: B columns holding U distinct
            // items are equivalent to U columns whose logits carry ln(count) — same loss,
            // same gradients, (B/U)× less work (at batch 8192 on MovieLens, ~5×).
            cand_items.clear();
            cand_counts.clear();
            match cfg.loss {
                RetrievalLoss::FullSoftmax => cand_items.extend(0..trained as u32),
                RetrievalLoss::InBatch => {
                    for &e in batch {
                        let i = examples[e].1;
                        let slot = &mut col_of[i as usize];
                        if *slot == u32::MAX {
                            *slot = cand_items.len() as u32;
                            cand_items.push(i);
                            cand_counts.push(0);
                        }
                        cand_counts[*slot as usize] += 1;
                    }
                    for &i in &cand_items {
                        col_of[i as usize] = u32::MAX;
                    }
                    for _ in 0..cfg.sampled_negatives {
                        let j = match cfg.negative_sampling {
                            NegativeSampling::Uniform => rng.below(trained as u64) as u32,
                            NegativeSampling::Popularity => {
                                let x = rng.next_f64() * total;
                                cumulative.partition_point(|&s| s <= x).min(ni - 1) as u32
                            }
                        };
                        cand_items.push(j);
                    }
                }
            }
            let unique = cand_counts.len();
            // Column of each example's positive item.
            pos_cols.clear();
            match cfg.loss {
                RetrievalLoss::FullSoftmax => pos_cols.extend(batch.iter().map(|&e| examples[e].1)),
                RetrievalLoss::InBatch => {
                    for (k, &i) in cand_items[..unique].iter().enumerate() {
                        col_of[i as usize] = k as u32;
                    }
                    pos_cols.extend(batch.iter().map(|&e| col_of[examples[e].1 as usize]));
                    for &i in &cand_items[..unique] {
                        col_of[i as usize] = u32::MAX;
                    }
                }
            }
            let nc = cand_items.len();
            c.clear();
            c.resize(nc * d, 0.0);
            dropped.clear();
            if id_dropout > 0.0 {
                dropped.extend((0..nc).map(|_| drop_rng.next_f32() < id_dropout));
            } else {
                dropped.resize(nc, false);
            }
            for (k, &j) in cand_items.iter().enumerate() {
                let out = &mut c[k * d..(k + 1) * d];
                if dropped[k] {
                    features_only_into(&model.candidate, j, out);
                } else {
                    tower_into(&model.candidate, j, out);
                }
            }
            // logits = Q · Cᵀ / τ
            logits.clear();
            logits.resize(b * nc, 0.0);
            gemm(b, d, nc, Operand::new(&q), Operand::t(&c), 0.0, &mut logits);
            let in_batch = cfg.loss == RetrievalLoss::InBatch;
            let grad_scale = match cfg.loss_reduction {
                Reduction::Mean => 1.0 / b as f32,
                Reduction::Sum => 1.0,
            };
            for (k, row) in logits.chunks_exact_mut(nc).enumerate() {
                let pos_item = examples[batch[k]].1;
                let pos_col = pos_cols[k] as usize;
                let mut loss_offset = 0.0f32;
                for (col, l) in row.iter_mut().enumerate() {
                    *l *= inv_t;
                    if in_batch {
                        let sampled = col >= unique;
                        if cfg.logq_correction {
                            let expected = if sampled {
                                cfg.sampled_negatives as f32
                            } else {
                                b as f32
                            };
                            let lq = match (sampled, cfg.negative_sampling) {
                                (false, _) | (true, NegativeSampling::Popularity) => {
                                    log_q[cand_items[col] as usize]
                                }
                                (true, NegativeSampling::Uniform) => -(ni as f32).ln(),
                            };
                            *l -= lq + expected.ln();
                        }
                        let accidental = cand_items[col] == pos_item && col != pos_col;
                        if cfg.remove_accidental_hits && accidental {
                            *l = f32::NEG_INFINITY;
                        } else if !sampled {
                            // Copies of this item in the batch; the positive's own column
                            // counts once when its other copies are removed as accidental hits.
                            let count = if col == pos_col && cfg.remove_accidental_hits {
                                1
                            } else {
                                cand_counts[col]
                            };
                            let lc = (count as f32).ln();
                            *l += lc;
                            if col == pos_col {
                                loss_offset = lc;
                            }
                        }
                    }
                }
                // Softmax in place; the row becomes the logits' gradient (p - y) · scale.
                loss_sum += loss_offset as f64 + softmax_row(row, pos_col, grad_scale);
            }
            // dQ = G · C / τ ;  dC = Gᵀ · Q / τ
            dq.clear();
            dq.resize(b * d, 0.0);
            gemm(
                b,
                nc,
                d,
                Operand::new(&logits),
                Operand::new(&c),
                0.0,
                &mut dq,
            );
            dc.clear();
            dc.resize(nc * d, 0.0);
            gemm(
                nc,
                b,
                d,
                Operand::t(&logits),
                Operand::new(&q),
                0.0,
                &mut dc,
            );
            for (k, &(u, _)) in pairs.iter().enumerate() {
                let g = &dq[k * d..(k + 1) * d];
                for (f, st) in model.query.iter().zip(qstate.iter_mut()) {
                    backprop_feature(f, st, u, inv_t, g);
                }
            }
            if let Some(hs) = &mut hstate {
                pool.backward(&model.seen, &pairs, &dq, inv_t, &mut hs.grad);
            }
            for (k, &j) in cand_items.iter().enumerate() {
                let g = &dc[k * d..(k + 1) * d];
                if g.iter().all(|&x| x == 0.0) {
                    continue;
                }
                for (f, st) in model.candidate.iter().zip(cstate.iter_mut()) {
                    if dropped[k] && matches!(f.lookup, Lookup::Id) {
                        continue;
                    }
                    backprop_feature(f, st, j, inv_t, g);
                }
            }
            for (f, st) in model
                .query
                .iter_mut()
                .zip(qstate.iter_mut())
                .chain(model.candidate.iter_mut().zip(cstate.iter_mut()))
            {
                if let Some(t) = f.table.as_mut() {
                    st.opt.step(t, &mut st.grad, &p);
                }
                st.grad.clear();
            }
            if let (Some(h), Some(hs)) = (model.history.as_mut(), hstate.as_mut()) {
                hs.opt.step(h, &mut hs.grad, &p);
                hs.grad.clear();
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let eval_start = Instant::now();
        let test_metrics = match &evaluator {
            Some(ev) if cfg.eval_every_epoch || epoch == cfg.epochs => {
                let scorer = DatasetScorer::new(&model, dataset);
                Some(ev.scorer(&scorer)?)
            }
            _ => None,
        };
        let record = RetrievalEpoch {
            epoch,
            train_loss: loss_sum / total,
            test: test_metrics,
            seconds,
            eval_seconds: eval_start.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.epochs.push(record);
    }
    progress.finish();
    model.meta.hyper_parameters = serde_json::to_value(cfg).unwrap_or_default();
    model.meta.data_fingerprint = fingerprint(dataset, train);
    if let Some(m) = history.epochs.last().and_then(|e| e.test.as_ref()) {
        model.meta.metrics = m.values.clone();
    }
    Ok((model, history))
}
