//! One member of a ranking model trained from start to end ([`train_one`]): its
//! vocabularies, labels and initial weights, the epochs (the hot loop in
//! [`run_epoch`]), the evaluation of each epoch and early stopping.

use std::time::Instant;

use shortlist_core::dataset::Dataset;
use shortlist_core::progress::Progress;
use shortlist_core::Rng;
use shortlist_features::FeatureSpec;
use shortlist_model::{Objective, RankingModel};

use super::{fingerprint, EpochRecord, History, Labelled};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::interactions::vocab_rows;
use crate::step::Trainer;

/// Trains one model (see [`train_ranking`]) on `fit_rows`.
///
/// The validation rows (carved by [`fit_rows`]) drive early stopping and the kept
/// weights are the best validation epoch's.
/// `test` rows are only evaluated for the [`History`] (pass `&[]` to skip).
/// The same seed and thread count give bit-identical weights.
///
/// The steps: [`check_rows`], [`Prepared::new`] (vocabularies, labels, the
/// initialised model), [`new_trainer`], then per epoch a shuffle, [`run_epoch`] (the
/// hot loop), [`Prepared::epoch_record`] and [`EarlyStopping::observe`]; at the end
/// the kept epoch's weights and [`kept_metrics`].
pub(super) fn train_one(
    dataset: &Dataset,
    (fit_rows, valid_rows): (&[usize], &[usize]),
    test: &[usize],
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> Result<(RankingModel, History)> {
    cfg.validate()?;
    check_rows(dataset, fit_rows, valid_rows, test)?;
    let (mut model, data) = Prepared::new(dataset, (fit_rows, valid_rows), test, cfg)?;
    let mut trainer = new_trainer(&model, cfg, &data.items);

    let n = data.users.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut shuffle = Rng::with_stream(cfg.seed, 2);
    let mut batch = Batch::default();
    let mut history = History {
        train_examples: n,
        valid_examples: data.valid.rows.len(),
        ..History::default()
    };
    let mut stopping = EarlyStopping::default();
    for epoch in 1..=cfg.epochs {
        if epoch == 1 || cfg.reshuffle_each_epoch {
            shuffle.shuffle(&mut order);
        }
        let start = Instant::now();
        let sums = run_epoch(
            &mut trainer,
            &mut model,
            &data,
            &order,
            &mut batch,
            cfg,
            progress,
        );
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        let seconds = start.elapsed().as_secs_f64();
        trainer.sparse_p.lr *= cfg.lr_decay;
        trainer.dense_p.lr *= cfg.lr_decay;
        let record = data.epoch_record(&model, dataset, cfg, epoch, &sums, seconds)?;
        let valid_loss = record.valid_loss;
        history.epochs.push(record);
        history.best_epoch = epoch;
        if stopping.observe(valid_loss, &model, cfg.patience) {
            history.stopped_early = true;
            break;
        }
    }
    if let Some((_, m)) = stopping.best {
        model = m;
        history.best_epoch = history.epochs.len() - stopping.since_best;
    }
    model.meta.metrics = kept_metrics(&history);
    model.meta.hyper_parameters = serde_json::to_value(cfg).unwrap_or_default();
    model.meta.data_fingerprint = fingerprint(dataset, fit_rows);
    Ok((model, history))
}

/// Every row must be one of the dataset's, and some must be left to fit.
fn check_rows(dataset: &Dataset, fit: &[usize], valid: &[usize], test: &[usize]) -> Result<()> {
    let n_all = dataset.interactions.len();
    if let Some(&r) = fit.iter().chain(valid).chain(test).find(|&&r| r >= n_all) {
        return Err(Error::NoData(format!(
            "row {r} is out of the dataset's {n_all} interactions"
        )));
    }
    if fit.is_empty() {
        return Err(Error::NoData("the training rows are empty".into()));
    }
    Ok(())
}

/// A run's data in the model's vocabulary rows: the fitted examples (users, items,
/// labels) and the labelled validation and test rows.
struct Prepared {
    /// Dataset user/item index → vocabulary row.
    map: (Vec<u32>, Vec<u32>),
    users: Vec<u32>,
    items: Vec<u32>,
    labels: Vec<f32>,
    valid: Labelled,
    test: Labelled,
}

impl Prepared {
    /// Fits the vocabularies on the fitted rows, labels the rows and builds the
    /// initialised model (weights from the seed's stream 0, the output bias at the
    /// mean label, the implicit bags, the prediction clip).
    fn new(
        dataset: &Dataset,
        (fit_rows, valid_rows): (&[usize], &[usize]),
        test: &[usize],
        cfg: &TrainConfig,
    ) -> Result<(RankingModel, Prepared)> {
        let spec = FeatureSpec::fit(dataset, fit_rows, &cfg.features)?;
        let (ue, ie) = (spec.encode_users(dataset), spec.encode_items(dataset));
        let map = vocab_rows(&spec, dataset);
        let mut model = RankingModel::new(cfg.model_config(), spec, &ue, &ie)?;
        let it = &dataset.interactions;
        let users: Vec<u32> = fit_rows
            .iter()
            .map(|&r| map.0[it.users[r] as usize])
            .collect();
        let items: Vec<u32> = fit_rows
            .iter()
            .map(|&r| map.1[it.items[r] as usize])
            .collect();
        let labels = Labelled::new(dataset, fit_rows, cfg, "training")?.labels;
        let valid = Labelled::new(dataset, valid_rows, cfg, "validation")?;
        let test = Labelled::new(dataset, test, cfg, "test")?;
        let mean = (labels.iter().map(|&r| r as f64).sum::<f64>() / labels.len() as f64) as f32;
        init_model(&mut model, &mut Rng::with_stream(cfg.seed, 0), mean, cfg);
        if cfg.implicit {
            let mut bags = vec![Vec::new(); model.num_users()];
            for (&u, &i) in users.iter().zip(&items) {
                bags[u as usize].push(i);
            }
            for b in &mut bags {
                b.sort_unstable();
                b.dedup();
            }
            model.set_implicit(&bags)?;
        }
        if cfg.clip_predictions {
            let lo = labels.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = labels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            model.config.clip = Some([lo, hi]);
        }
        let data = Prepared {
            map,
            users,
            items,
            labels,
            valid,
            test,
        };
        Ok((model, data))
    }

    /// The record of an epoch: its training sums, and the model's errors on the
    /// validation and test rows after it.
    fn epoch_record(
        &self,
        model: &RankingModel,
        dataset: &Dataset,
        cfg: &TrainConfig,
        epoch: usize,
        sums: &EpochSums,
        seconds: f64,
    ) -> Result<EpochRecord> {
        let n = self.users.len();
        let multitask = cfg.objective == Objective::Multitask;
        let v = (!self.valid.rows.is_empty())
            .then(|| self.valid.measure(model, dataset, &self.map))
            .transpose()?;
        let t = (!self.test.rows.is_empty())
            .then(|| self.test.measure(model, dataset, &self.map))
            .transpose()?;
        // The objective's validation loss: the rating MSE, or the click log-loss.
        let valid_loss = v.map(|(m, c)| c.map_or(m.rmse * m.rmse, |c| c.log_loss));
        Ok(EpochRecord {
            epoch,
            train_loss: sums.loss / sums.batches.max(1) as f64,
            train_rmse: (sums.sse / n as f64).sqrt(),
            valid_loss,
            valid_rmse: v.map(|(m, _)| m.rmse),
            test_rmse: t.map(|(m, _)| m.rmse),
            test_mae: t.map(|(m, _)| m.mae),
            seconds,
            train_retrieval_loss: multitask.then(|| sums.retrieval / sums.batches.max(1) as f64),
            test_log_loss: t.and_then(|(_, c)| c.map(|c| c.log_loss)),
            test_auc: t.and_then(|(_, c)| c.and_then(|c| c.auc)),
        })
    }
}

/// The step's optimiser state for `model`, with the logQ correction of the
/// `multitask` retrieval task's columns from the fitted `items`.
fn new_trainer(model: &RankingModel, cfg: &TrainConfig, items: &[u32]) -> Trainer {
    let mut trainer = Trainer::new(model, cfg);
    if cfg.multitask_settings().is_some_and(|m| m.logq_correction) {
        let mut counts = vec![0u32; model.num_items()];
        for &i in items {
            counts[i as usize] += 1;
        }
        let n = items.len() as f32;
        // Items absent from the rows never fill a column; their entry is unused.
        trainer.set_log_q(counts.iter().map(|&c| (c.max(1) as f32 / n).ln()).collect());
    }
    trainer
}

/// One batch's users, items and labels (reused from batch to batch).
#[derive(Default)]
struct Batch {
    users: Vec<u32>,
    items: Vec<u32>,
    labels: Vec<f32>,
}

/// An epoch's sums over its batches.
struct EpochSums {
    /// Σ squared errors of the predictions before each step.
    sse: f64,
    /// Σ of the batches' losses (see [`EpochRecord::train_loss`]).
    loss: f64,
    /// Σ of the batches' retrieval losses (`multitask`).
    retrieval: f64,
    batches: usize,
}

/// One pass over the examples in `order`, one [`Trainer::step`] per batch.
/// **Hot**: the batch gathering runs per example.
fn run_epoch(
    trainer: &mut Trainer,
    model: &mut RankingModel,
    data: &Prepared,
    order: &[u32],
    batch: &mut Batch,
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> EpochSums {
    let multitask = cfg.objective == Objective::Multitask;
    let (rating_w, retrieval_w) = cfg.loss_weights();
    let (mut sse, mut loss_sum, mut retrieval_sum, mut batches) = (0.0, 0.0, 0.0, 0usize);
    let (us, is, rs) = (&data.users, &data.items, &data.labels);
    let Batch {
        users: bu,
        items: bi,
        labels: br,
    } = batch;
    for chunk in order.chunks(cfg.batch_size) {
        if progress.cancelled() {
            break; // `train_one` returns the error after the epoch
        }
        bu.clear();
        bi.clear();
        br.clear();
        for &k in chunk {
            bu.push(us[k as usize]);
            bi.push(is[k as usize]);
            br.push(rs[k as usize]);
        }
        let s = trainer.step(model, bu, bi, br);
        progress.advance(1);
        sse += s.sse;
        let mean_loss = s.loss / chunk.len() as f64;
        // multitask: the retrieval loss is summed over the batch (see step.rs)
        loss_sum += if multitask {
            rating_w as f64 * mean_loss + retrieval_w as f64 * s.retrieval * chunk.len() as f64
        } else {
            mean_loss
        };
        retrieval_sum += s.retrieval;
        batches += 1;
    }
    EpochSums {
        sse,
        loss: loss_sum,
        retrieval: retrieval_sum,
        batches,
    }
}

/// Early stopping on the validation loss: the best epoch's weights, and the epochs
/// since.
#[derive(Default)]
struct EarlyStopping {
    best: Option<(f64, RankingModel)>,
    since_best: usize,
}

impl EarlyStopping {
    /// Records an epoch's validation loss (none without validation rows): keeps a
    /// copy of `model` when it is the best so far. True when the run should stop
    /// (`patience > 0` epochs without improvement).
    fn observe(&mut self, valid_loss: Option<f64>, model: &RankingModel, patience: usize) -> bool {
        let Some(v) = valid_loss else {
            return false;
        };
        if self.best.as_ref().is_none_or(|(b, _)| v < *b) {
            self.best = Some((v, model.clone()));
            self.since_best = 0;
            false
        } else {
            self.since_best += 1;
            patience > 0 && self.since_best >= patience
        }
    }
}

/// The kept epoch's figures as model metadata.
fn kept_metrics(history: &History) -> std::collections::BTreeMap<String, f64> {
    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert("epochs_run".into(), history.epochs.len() as f64);
    metrics.insert("best_epoch".into(), history.best_epoch as f64);
    if let Some(r) = history.best() {
        metrics.insert("train_rmse".into(), r.train_rmse);
        for (k, v) in [
            ("valid_rmse", r.valid_rmse),
            ("test_rmse", r.test_rmse),
            ("test_mae", r.test_mae),
        ] {
            if let Some(v) = v {
                metrics.insert(k.into(), v);
            }
        }
    }
    metrics
}

fn init_model(model: &mut RankingModel, rng: &mut Rng, mean: f32, cfg: &TrainConfig) {
    // Keras: Embedding uniform(-0.05, 0.05); Dense glorot-uniform weights, zero bias.
    // Cross layers are drawn after the MLP, so models without them keep their stream.
    for f in &mut model.features {
        if let Some(t) = &mut f.table {
            for v in t.data_mut() {
                *v = (rng.next_f32() * 2.0 - 1.0) * 0.05;
            }
        }
    }
    for l in model.mlp.layers.iter_mut().chain(&mut model.cross.layers) {
        let limit = (6.0 / (l.input + l.output) as f32).sqrt();
        for v in &mut l.weight {
            *v = (rng.next_f32() * 2.0 - 1.0) * limit;
        }
        l.bias.fill(0.0);
    }
    if cfg.init_bias_to_mean {
        // The output starts at the mean label: for a click model, the logit of the
        // click rate.
        let start = match cfg.objective {
            Objective::Click => {
                let p = mean.clamp(1e-4, 1.0 - 1e-4);
                (p / (1.0 - p)).ln()
            }
            Objective::Rating | Objective::Multitask => mean,
        };
        if let Some(last) = model.mlp.layers.last_mut() {
            last.bias.fill(start);
        }
    }
}
