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
//! The file holds the training run's steps; its parts live beside it: one epoch's
//! batches (`batch.rs`, the hot loop), the configuration (`config.rs`), the per-epoch history and curves (`history.rs`), the model as an
//! evaluation scorer (`scorer.rs`; the split evaluator is
//! [`shortlist_eval::SplitEvaluator`]) and the towers' forward/backward helpers with
//! the history pool (`towers.rs`).

mod batch;
mod config;
mod history;
mod scorer;
#[cfg(test)]
mod tests;
mod towers;

use std::time::Instant;

use shortlist_core::{Dataset, Rng};
use shortlist_eval::SplitEvaluator;
use shortlist_features::FeatureSpec;
use shortlist_model::retrieval::{Csr, RetrievalConfig, RetrievalModel};
use shortlist_model::{EmbeddingTable, InputFeature};

use crate::error::{Error, Result};
use crate::interactions::vocab_rows;
use crate::optim::{OptimParams, SparseGrad, SparseState};
use crate::trainer::fingerprint;

use batch::BatchStep;
pub use config::{NegativeSampling, Reduction, RetrievalLoss, RetrievalTrainConfig};
pub use history::{RetrievalEpoch, RetrievalHistory};
pub use scorer::DatasetScorer;
use towers::{init_table, zero_rows_from, TableState};

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
///
/// The steps: `build_model` (vocabularies, the model, the training pairs),
/// `TowerStates::init` (initial weights and optimiser state, from the run's one
/// seeded stream), then per epoch a shuffle, `BatchStep::epoch` (the hot loop) and
/// `evaluate_epoch`, and at the end `record_meta`.
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
    let (mut model, examples) = build_model(dataset, train, cfg)?;
    // One stream for the initial weights, the shuffles and the sampled negatives, in
    // that order: the order of the draws is part of a seed's result.
    let mut rng = Rng::new(cfg.seed);
    let mut states = TowerStates::init(&mut model, cfg, &mut rng);
    // Cold items are described by their features alone: zero id and history rows
    // (never touched in training: they are neither positives nor negatives).
    zero_rows_from(&mut model, examples.trained);
    let mut step = BatchStep::new(&model, &examples, cfg);
    let evaluator = if test.is_empty() {
        None
    } else {
        Some(SplitEvaluator::new(dataset, train, test)?)
    };

    let mut order: Vec<usize> = (0..examples.pairs.len()).collect();
    let mut history = RetrievalHistory::default();
    let batches = examples.pairs.len().div_ceil(cfg.batch_size.max(1)) as u64;
    progress.start(
        &format!("retrieval: {} epochs", cfg.epochs),
        Some(batches * cfg.epochs as u64),
    );
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        if epoch == 1 || cfg.reshuffle_each_epoch {
            rng.shuffle(&mut order);
        }
        let loss_sum = step.epoch(&mut model, &mut states, &order, &mut rng, progress);
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let seconds = start.elapsed().as_secs_f64();
        let record = evaluate_epoch(
            &model,
            dataset,
            evaluator.as_ref(),
            cfg,
            (epoch, loss_sum / examples.total, seconds),
        )?;
        on_epoch(&record);
        history.epochs.push(record);
    }
    progress.finish();
    record_meta(&mut model, dataset, train, cfg, &history);
    Ok((model, history))
}

/// The training rows as (user row, item row) pairs of the model's vocabularies, and
/// what the losses derive from their item counts.
struct Examples {
    /// One (user row, item row) per training row, in row order.
    pairs: Vec<(u32, u32)>,
    /// Rows `0..trained` hold the items of the training rows; cold items follow.
    trained: usize,
    /// Item rows in all (trained and cold).
    items: usize,
    /// Number of training rows, as a float (the loss's denominator).
    total: f64,
    /// `ln(share of the training rows)` of each item row (at least one row's share).
    log_q: Vec<f32>,
    /// Running sum of the item counts, for drawing negatives by popularity.
    cumulative: Vec<f64>,
}

/// Fits the vocabularies on the training rows, maps the rows to vocabulary rows and
/// builds the (uninitialised) model with the users' seen items and the popularity.
fn build_model(
    dataset: &Dataset,
    train: &[usize],
    cfg: &RetrievalTrainConfig,
) -> Result<(RetrievalModel, Examples)> {
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
    let (urow, irow) = vocab_rows(&spec, dataset);
    let (nu, ni) = (spec.user_id.len(), spec.item_id.len());
    let pairs: Vec<(u32, u32)> = train
        .iter()
        .map(|&r| (urow[it.users[r] as usize], irow[it.items[r] as usize]))
        .collect();
    let seen = Csr::from_pairs(nu, pairs.iter().copied());
    let mut popularity = vec![0u32; ni];
    for &(_, i) in &pairs {
        popularity[i as usize] += 1;
    }
    let total = pairs.len() as f64;
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
    let model_cfg = RetrievalConfig {
        embedding_dim: cfg.embedding_dim,
        history: cfg.history,
        temperature: cfg.temperature,
    };
    let model = RetrievalModel::new(model_cfg, spec, &users_enc, &items_enc, seen, popularity)?;
    let examples = Examples {
        pairs,
        trained,
        items: ni,
        total,
        log_q,
        cumulative,
    };
    Ok((model, examples))
}

/// Gradients and optimiser state of every table of the two towers.
struct TowerStates {
    params: OptimParams,
    query: Vec<TableState>,
    candidate: Vec<TableState>,
    history: Option<TableState>,
}

impl TowerStates {
    /// Draws the initial weights of the query tables, then the candidate tables, then
    /// the history table (in that order, from `rng`), and sets up their optimisers.
    fn init(model: &mut RetrievalModel, cfg: &RetrievalTrainConfig, rng: &mut Rng) -> Self {
        let params = cfg.optim();
        let p = &params;
        let state_of = |t: &mut EmbeddingTable, rng: &mut Rng| -> TableState {
            init_table(t, rng, cfg.init_scale);
            TableState {
                grad: SparseGrad::new(t.rows(), t.dim()),
                opt: SparseState::new(cfg.optimizer, t, p),
            }
        };
        let query = model
            .query
            .iter_mut()
            .map(|f| state_of(table_of(f), rng))
            .collect();
        let candidate = model
            .candidate
            .iter_mut()
            .map(|f| state_of(table_of(f), rng))
            .collect();
        let history = model.history.as_mut().map(|h| state_of(h, rng));
        TowerStates {
            params,
            query,
            candidate,
            history,
        }
    }

    /// Applies the batch's gradients to every table and clears them.
    fn update(&mut self, model: &mut RetrievalModel) {
        let p = &self.params;
        for (f, st) in model
            .query
            .iter_mut()
            .zip(self.query.iter_mut())
            .chain(model.candidate.iter_mut().zip(self.candidate.iter_mut()))
        {
            if let Some(t) = f.table.as_mut() {
                st.opt.step(t, &mut st.grad, p);
            }
            st.grad.clear();
        }
        if let (Some(h), Some(hs)) = (model.history.as_mut(), self.history.as_mut()) {
            hs.opt.step(h, &mut hs.grad, p);
            hs.grad.clear();
        }
    }
}

/// The embedding table of a tower's input feature.
fn table_of(f: &mut InputFeature) -> &mut EmbeddingTable {
    f.table
        .as_mut()
        .expect("retrieval features always have tables")
}

/// The record of one epoch: its training loss and time, and the test metrics when the
/// run evaluates this epoch (every epoch with `eval_every_epoch`, else the last).
fn evaluate_epoch(
    model: &RetrievalModel,
    dataset: &Dataset,
    evaluator: Option<&SplitEvaluator>,
    cfg: &RetrievalTrainConfig,
    (epoch, train_loss, seconds): (usize, f64, f64),
) -> Result<RetrievalEpoch> {
    let eval_start = Instant::now();
    let test = match evaluator {
        Some(ev) if cfg.eval_every_epoch || epoch == cfg.epochs => {
            let scorer = DatasetScorer::new(model, dataset);
            Some(ev.scorer(&scorer)?)
        }
        _ => None,
    };
    Ok(RetrievalEpoch {
        epoch,
        train_loss,
        test,
        seconds,
        eval_seconds: eval_start.elapsed().as_secs_f64(),
    })
}

/// Writes the run's configuration, the training rows' fingerprint and the last
/// epoch's test metrics into the model's metadata.
fn record_meta(
    model: &mut RetrievalModel,
    dataset: &Dataset,
    train: &[usize],
    cfg: &RetrievalTrainConfig,
    history: &RetrievalHistory,
) {
    model.meta.hyper_parameters = serde_json::to_value(cfg).unwrap_or_default();
    model.meta.data_fingerprint = fingerprint(dataset, train);
    if let Some(m) = history.epochs.last().and_then(|e| e.test.as_ref()) {
        model.meta.metrics = m.values.clone();
    }
}
