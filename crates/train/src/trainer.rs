//! The ranking training loop: labels of the objective, seeded shuffling, one
//! `Trainer::step` (`step.rs`) per batch (forward and hand-written backward in
//! `backward.rs`, updates in `step.rs`), per-epoch metrics and early stopping, seed
//! ensembles, the AutoRec blend and the relevance head.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shortlist_core::dataset::Dataset;
use shortlist_core::hash::fnv1a64;
use shortlist_core::progress::{NoProgress, Progress};
use shortlist_core::Rng;
use shortlist_data::loaders::tsv::SplitData;
use shortlist_eval::ClickMetrics;
use shortlist_model::{Objective, RankingModel, Scratch};

use crate::click::{click_labels, metrics_of};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::interactions::vocab_rows;
use one::train_one;

/// Accuracy of rating predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Number of rows evaluated.
    pub count: usize,
}

/// One epoch of a [`History`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean of the batch losses (what Keras prints): MSE, or the click cross-entropy,
    /// or for `multitask` the weighted sum of the MSE and the batch-summed retrieval loss.
    pub train_loss: f64,
    /// RMSE over the epoch's training examples (predictions before each step's update).
    pub train_rmse: f64,
    /// Validation loss of the objective (when a validation split exists): MSE of the
    /// rating, or log-loss of the click; early stopping keeps its best epoch.
    pub valid_loss: Option<f64>,
    /// Validation RMSE.
    pub valid_rmse: Option<f64>,
    /// RMSE on the monitored test rows (reporting only; never used for decisions).
    pub test_rmse: Option<f64>,
    /// MAE on the monitored test rows.
    pub test_mae: Option<f64>,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
    /// `multitask`: in-batch softmax loss of the retrieval task per example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_retrieval_loss: Option<f64>,
    /// `click`: log-loss on the monitored test rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_log_loss: Option<f64>,
    /// `click`: AUC on the monitored test rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_auc: Option<f64>,
}

/// Per-epoch record of a training run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The epochs run.
    pub epochs: Vec<EpochRecord>,
    /// Epoch whose weights were kept (the best validation epoch, else the last).
    pub best_epoch: usize,
    /// Early stopping ended the run.
    pub stopped_early: bool,
    /// Training examples per epoch (validation rows excluded).
    pub train_examples: usize,
    /// Validation rows carved from the training rows.
    pub valid_examples: usize,
    /// Test metrics of the returned model (with `ensemble > 1`, of the averaged
    /// ensemble; `epochs` then follow its first member).
    pub final_test: Option<Metrics>,
    /// Ensemble members of the returned model (0 or 1: a single model).
    #[serde(default)]
    pub members: usize,
    /// Training RMSE of the AutoRec per full-batch epoch (empty without AutoRec).
    #[serde(default)]
    pub autorec_rmse: Vec<f64>,
    /// `click`: AUC, group AUC and log-loss of the returned model on the test rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_click: Option<ClickMetrics>,
}

impl History {
    /// Median seconds per epoch.
    pub fn median_epoch_seconds(&self) -> f64 {
        let mut s: Vec<f64> = self.epochs.iter().map(|e| e.seconds).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(0.0)
    }

    /// The record of the kept epoch.
    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs.iter().find(|e| e.epoch == self.best_epoch)
    }
}

/// Fingerprint (FNV-1a 64, hex) of interaction rows: raw ids and ratings.
pub fn fingerprint(dataset: &Dataset, rows: &[usize]) -> String {
    let it = &dataset.interactions;
    let mut bytes = Vec::with_capacity(rows.len() * 16);
    for &r in rows {
        bytes.extend_from_slice(dataset.users.raw(it.users[r]).as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(dataset.items.raw(it.items[r]).as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&it.ratings[r].to_le_bytes());
    }
    format!("{:016x}", fnv1a64(&bytes))
}

/// Predictions of `model` for `rows` (in `map`'s vocabulary rows), in row order;
/// computed in fixed chunks on the thread pool.
fn predictions_mapped(
    model: &RankingModel,
    dataset: &Dataset,
    rows: &[usize],
    map: &(Vec<u32>, Vec<u32>),
) -> Vec<f32> {
    let it = &dataset.interactions;
    let parts: Vec<Vec<f32>> = rows
        .par_chunks(4096)
        .map(|chunk| {
            let users: Vec<u32> = chunk.iter().map(|&r| map.0[it.users[r] as usize]).collect();
            let items: Vec<u32> = chunk.iter().map(|&r| map.1[it.items[r] as usize]).collect();
            let mut out = vec![0.0; chunk.len()];
            model.predict_batch_with(&users, &items, &mut Scratch::default(), &mut out);
            out
        })
        .collect();
    parts.concat()
}

/// Predictions of `model` (ratings, or click probabilities) for interaction `rows`
/// of `dataset`, in row order (unknown ids use their out-of-vocabulary rows).
pub fn predictions(model: &RankingModel, dataset: &Dataset, rows: &[usize]) -> Vec<f32> {
    predictions_mapped(model, dataset, rows, &vocab_rows(&model.spec, dataset))
}

/// RMSE and MAE of predictions against labels.
fn errors(pred: &[f32], labels: &[f32]) -> Metrics {
    let (s2, s1) = pred
        .iter()
        .zip(labels)
        .fold((0f64, 0f64), |(s2, s1), (&p, &y)| {
            let e = (p - y) as f64;
            (s2 + e * e, s1 + e.abs())
        });
    let n = pred.len().max(1) as f64;
    Metrics {
        rmse: (s2 / n).sqrt(),
        mae: s1 / n,
        count: pred.len(),
    }
}

/// RMSE and MAE of `model` on interaction `rows` of `dataset` against their ratings
/// (ids unseen in training use their out-of-vocabulary rows). Deterministic for any
/// thread count.
pub fn evaluate(model: &RankingModel, dataset: &Dataset, rows: &[usize]) -> Metrics {
    let labels: Vec<f32> = rows
        .iter()
        .map(|&r| dataset.interactions.ratings[r])
        .collect();
    errors(&predictions(model, dataset, rows), &labels)
}

/// Rows with the labels the objective learns (ratings, or 0/1 clicks).
struct Labelled {
    rows: Vec<usize>,
    labels: Vec<f32>,
}

impl Labelled {
    fn new(dataset: &Dataset, rows: &[usize], cfg: &TrainConfig, what: &str) -> Result<Self> {
        let labels = match cfg.objective {
            Objective::Click => click_labels(dataset, rows, cfg.click_threshold, what)?,
            Objective::Rating | Objective::Multitask => rows
                .iter()
                .map(|&r| dataset.interactions.ratings[r])
                .collect(),
        };
        Ok(Labelled {
            rows: rows.to_vec(),
            labels,
        })
    }

    /// Errors of `model` on the rows and, for a click model, its click metrics.
    fn measure(
        &self,
        model: &RankingModel,
        dataset: &Dataset,
        map: &(Vec<u32>, Vec<u32>),
    ) -> Result<(Metrics, Option<ClickMetrics>)> {
        let p = predictions_mapped(model, dataset, &self.rows, map);
        let click = match model.config.objective {
            Objective::Click => Some(metrics_of(dataset, &self.rows, &self.labels, &p)?),
            Objective::Rating | Objective::Multitask => None,
        };
        Ok((errors(&p, &self.labels), click))
    }
}

/// Trains on `split.train`, reporting test metrics on `split.test` every epoch.
pub fn train_split(split: &SplitData, cfg: &TrainConfig) -> Result<(RankingModel, History)> {
    train_ranking(&split.dataset, &split.train, &split.test, cfg)
}

/// Trains a ranking model on `train` rows of `dataset`.
///
/// With `cfg.ensemble = K > 1`, K models are trained (seeds `seed..seed+K`, in parallel,
/// each deterministic) and the first one is returned holding the others as
/// [`RankingModel::members`]; its predictions are their mean. The returned model has its
/// scoring cache prepared ([`RankingModel::prepare_scoring`]).
pub fn train_ranking(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &TrainConfig,
) -> Result<(RankingModel, History)> {
    train_ranking_with(dataset, train, test, cfg, &NoProgress)
}

/// [`train_ranking`] reporting progress: one phase for the ensemble members (in
/// batches of all members together), one for the AutoRec (in epochs).
///
/// The steps: `train_members`, then the optional `add_autorec` and
/// `add_relevance`, then `measure_final` on the test rows.
pub fn train_ranking_with(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> Result<(RankingModel, History)> {
    cfg.validate()?;
    let (mut model, mut history) = train_members(dataset, train, test, cfg, progress)?;
    if let Some(acfg) = &cfg.autorec {
        add_autorec(
            &mut model,
            &mut history,
            dataset,
            train,
            cfg,
            acfg,
            progress,
        )?;
    }
    if let Some(rcfg) = &cfg.relevance {
        add_relevance(&mut model, dataset, train, cfg, rcfg, progress)?;
    }
    model.prepare_scoring();
    if !test.is_empty() {
        measure_final(&mut model, &mut history, dataset, test, cfg)?;
    }
    Ok((model, history))
}

/// Trains the `cfg.ensemble` members in parallel (seeds `seed..seed+K`); returns the
/// first holding the others as its members, with its history.
fn train_members(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> Result<(RankingModel, History)> {
    // The rows each member fits (as `fit_rows` carves them), without shuffling here.
    let carved = ((train.len() as f64) * cfg.validation_fraction.max(0.0) as f64).round() as usize;
    let fitted = train.len() - carved.min(train.len());
    let batches = fitted.div_ceil(cfg.batch_size.max(1)) as u64;
    let members = if cfg.ensemble > 1 {
        format!("{} ensemble members", cfg.ensemble)
    } else {
        "model".to_owned()
    };
    progress.start(
        &format!("ranking: {members} × {} epochs", cfg.epochs),
        Some(batches * (cfg.epochs * cfg.ensemble) as u64),
    );
    // One validation carve (with the base seed) for every member: members must share
    // the vocabularies fitted on their rows, since the ensemble scores them with one.
    let (fit, valid) = fit_rows(train, cfg);
    let runs: Vec<Result<(RankingModel, History)>> = (0..cfg.ensemble)
        .into_par_iter()
        .map(|k| {
            let c = TrainConfig {
                seed: cfg.seed.wrapping_add(k as u64),
                ..cfg.clone()
            };
            train_one(
                dataset,
                (&fit, &valid),
                if k == 0 { test } else { &[] },
                &c,
                progress,
            )
        })
        .collect();
    progress.finish();
    let mut runs = runs.into_iter();
    let (mut model, mut history) = runs
        .next()
        .unwrap_or_else(|| Err(Error::NoData("no model".into())))?;
    for r in runs {
        let (m, _) = r?;
        model.members.push(m);
    }
    history.members = cfg.ensemble;
    Ok((model, history))
}

/// Trains the AutoRec on the rows the first member was fitted on (validation rows
/// excluded), mapped to its vocabularies, and blends it into `model`.
fn add_autorec(
    model: &mut RankingModel,
    history: &mut History,
    dataset: &Dataset,
    train: &[usize],
    cfg: &TrainConfig,
    acfg: &crate::autorec::AutoRecTrainConfig,
    progress: &dyn Progress,
) -> Result<()> {
    let fit = fit_rows(train, cfg).0;
    let map = vocab_rows(&model.spec, dataset);
    let it = &dataset.interactions;
    let us: Vec<u32> = fit.iter().map(|&r| map.0[it.users[r] as usize]).collect();
    let is: Vec<u32> = fit.iter().map(|&r| map.1[it.items[r] as usize]).collect();
    let rs: Vec<f32> = fit.iter().map(|&r| it.ratings[r]).collect();
    let (nu, ni) = (model.num_users(), model.num_items());
    progress.start(
        &format!("ranking: AutoRec × {} epochs", acfg.epochs),
        Some(acfg.epochs as u64),
    );
    let trained =
        crate::autorec::train_autorec_with(&us, &is, &rs, nu, ni, acfg, cfg.seed, progress);
    progress.finish();
    let (a, per_epoch) = trained?;
    let rmse = per_epoch.last().copied().unwrap_or(f64::NAN);
    history.autorec_rmse = per_epoch;
    model.meta.metrics.insert("autorec_train_rmse".into(), rmse);
    model.config.autorec = Some(a.config);
    model.autorec = Some(a);
    model.check()?;
    Ok(())
}

/// Fits the relevance head on the training rows and attaches it to `model`.
fn add_relevance(
    model: &mut RankingModel,
    dataset: &Dataset,
    train: &[usize],
    cfg: &TrainConfig,
    rcfg: &crate::relevance::RelevanceTrainConfig,
    progress: &dyn Progress,
) -> Result<()> {
    // The head's `multitask` feature needs the shared embeddings of a model that
    // did not see the held-out rows: one member trained on the fitting part alone.
    let shared_model = |rows: &[usize]| -> Result<RankingModel> {
        let c = TrainConfig {
            ensemble: 1,
            autorec: None,
            relevance: None,
            ..cfg.clone()
        };
        let (fit, valid) = fit_rows(rows, &c);
        Ok(train_one(dataset, (&fit, &valid), &[], &c, &NoProgress)?.0)
    };
    let (head, _) = crate::relevance::train_relevance_with(
        dataset,
        train,
        &model.spec,
        rcfg,
        progress,
        &shared_model,
    )?;
    model.relevance = Some(head);
    model.check()?;
    Ok(())
}

/// Measures the returned model (the ensemble's mean, with the AutoRec blend) on the
/// test rows: its click metrics, and its errors where they differ from the first
/// member's.
fn measure_final(
    model: &mut RankingModel,
    history: &mut History,
    dataset: &Dataset,
    test: &[usize],
    cfg: &TrainConfig,
) -> Result<()> {
    let labelled = Labelled::new(dataset, test, cfg, "test")?;
    let (m, click) = labelled.measure(model, dataset, &vocab_rows(&model.spec, dataset))?;
    if let Some(c) = click {
        for (k, v) in [
            ("test_auc", c.auc),
            ("test_group_auc", c.group_auc),
            ("test_log_loss", Some(c.log_loss)),
        ] {
            if let Some(v) = v {
                model.meta.metrics.insert(k.into(), v);
            }
        }
        history.final_click = Some(c);
    }
    if !model.members.is_empty() || model.autorec.is_some() {
        let single = model.meta.metrics.get("test_rmse").copied();
        if let Some(v) = single {
            model.meta.metrics.insert("member_test_rmse".into(), v);
        }
        model.meta.metrics.insert("test_rmse".into(), m.rmse);
        model.meta.metrics.insert("test_mae".into(), m.mae);
    }
    history.final_test = Some(m);
    Ok(())
}

/// The rows a model with `cfg.seed` is fitted on and its validation rows (carved
/// from `train` with the seed when `cfg.validation_fraction > 0`).
fn fit_rows(train: &[usize], cfg: &TrainConfig) -> (Vec<usize>, Vec<usize>) {
    let mut fit = train.to_vec();
    let mut valid = Vec::new();
    if cfg.validation_fraction > 0.0 {
        Rng::with_stream(cfg.seed, 1).shuffle(&mut fit);
        let nv = ((fit.len() as f64) * cfg.validation_fraction as f64).round() as usize;
        valid = fit.split_off(fit.len() - nv.min(fit.len()));
    }
    (fit, valid)
}

mod one;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
