//! The ranking training loop: sparse embedding gathers and scatters, MLP forward and
//! hand-written backward over the model crate's GEMM seam, seeded shuffling, per-epoch
//! metrics and early stopping.

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shortlist_core::dataset::Dataset;
use shortlist_core::hash::fnv1a64;
use shortlist_core::progress::{NoProgress, Progress};
use shortlist_core::Rng;
use shortlist_data::loaders::tsv::SplitData;
use shortlist_features::FeatureSpec;
use shortlist_model::kernel::{gemm, Operand};
use shortlist_model::{Activation, RankingModel, Scratch, Side};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::optim::{DenseState, OptimParams, SparseGrad, SparseState};

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
    /// Mean of the batch MSE losses (what Keras prints).
    pub train_loss: f64,
    /// RMSE over the epoch's training examples (predictions before each step's update).
    pub train_rmse: f64,
    /// Validation MSE (when a validation split exists).
    pub valid_loss: Option<f64>,
    /// Validation RMSE.
    pub valid_rmse: Option<f64>,
    /// RMSE on the monitored test rows (reporting only; never used for decisions).
    pub test_rmse: Option<f64>,
    /// MAE on the monitored test rows.
    pub test_mae: Option<f64>,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
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

/// Dataset user/item index → model vocabulary row.
fn vocab_rows(spec: &FeatureSpec, dataset: &Dataset) -> (Vec<u32>, Vec<u32>) {
    let u = dataset
        .users
        .raw_ids()
        .iter()
        .map(|r| spec.user_id.index(r))
        .collect();
    let i = dataset
        .items
        .raw_ids()
        .iter()
        .map(|r| spec.item_id.index(r))
        .collect();
    (u, i)
}

fn evaluate_mapped(
    model: &RankingModel,
    dataset: &Dataset,
    rows: &[usize],
    map: &(Vec<u32>, Vec<u32>),
) -> Metrics {
    let it = &dataset.interactions;
    let parts: Vec<(f64, f64)> = rows
        .par_chunks(4096)
        .map(|chunk| {
            let users: Vec<u32> = chunk.iter().map(|&r| map.0[it.users[r] as usize]).collect();
            let items: Vec<u32> = chunk.iter().map(|&r| map.1[it.items[r] as usize]).collect();
            let mut out = vec![0.0; chunk.len()];
            model.predict_batch_with(&users, &items, &mut Scratch::default(), &mut out);
            chunk
                .iter()
                .zip(&out)
                .fold((0.0, 0.0), |(s2, s1), (&r, &p)| {
                    let e = (p - it.ratings[r]) as f64;
                    (s2 + e * e, s1 + e.abs())
                })
        })
        .collect();
    let (s2, s1) = parts.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = rows.len().max(1) as f64;
    Metrics {
        rmse: (s2 / n).sqrt(),
        mae: s1 / n,
        count: rows.len(),
    }
}

/// RMSE and MAE of `model` on interaction `rows` of `dataset` (ids unseen in training
/// use their out-of-vocabulary rows). Deterministic for any thread count.
pub fn evaluate(model: &RankingModel, dataset: &Dataset, rows: &[usize]) -> Metrics {
    let map = vocab_rows(&model.spec, dataset);
    evaluate_mapped(model, dataset, rows, &map)
}

/// Trains on `split.train`, reporting test metrics on `split.test` every epoch.
pub fn train_split(split: &SplitData, cfg: &TrainConfig) -> Result<(RankingModel, History)> {
    train_ranking(&split.dataset, &split.train, &split.test, cfg)
}

fn init_model(model: &mut RankingModel, rng: &mut Rng, mean: f32, cfg: &TrainConfig) {
    // Keras: Embedding uniform(-0.05, 0.05); Dense glorot-uniform weights, zero bias.
    for f in &mut model.features {
        if let Some(t) = &mut f.table {
            for v in t.data_mut() {
                *v = (rng.next_f32() * 2.0 - 1.0) * 0.05;
            }
        }
    }
    for l in &mut model.mlp.layers {
        let limit = (6.0 / (l.input + l.output) as f32).sqrt();
        for v in &mut l.weight {
            *v = (rng.next_f32() * 2.0 - 1.0) * limit;
        }
        l.bias.fill(0.0);
    }
    if cfg.init_bias_to_mean {
        if let Some(last) = model.mlp.layers.last_mut() {
            last.bias.fill(mean);
        }
    }
}

/// Optimizer state and scratch buffers of one training run.
struct Trainer {
    sparse_p: OptimParams,
    dense_p: OptimParams,
    grads: Vec<Option<SparseGrad>>,
    states: Vec<Option<SparseState>>,
    bias_grads: Vec<SparseGrad>,
    bias_states: Vec<SparseState>,
    dense_states: Vec<(DenseState, DenseState)>,
    /// Forward/backward buffers of each half of a batch (data parallelism).
    lanes: [Lane; 2],
}

/// Forward/backward of one slice of a batch: inputs, activations, the error signal
/// and the MLP gradients of that slice.
#[derive(Default)]
struct Lane {
    x: Vec<f32>,
    acts: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_prev: Vec<f32>,
    g: Vec<f32>,
    dgrads: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Batches at least this large are split in two halves computed on two threads.
const PARALLEL_BATCH: usize = 1024;

impl Lane {
    /// Forward and backward of `users/items/ratings` (a slice of a batch of `batch`
    /// examples): fills `delta` with dL/dX, `g` with dL/dprediction and `dgrads`.
    /// Returns the slice's sum of squared errors.
    fn run(
        &mut self,
        model: &RankingModel,
        users: &[u32],
        items: &[u32],
        ratings: &[f32],
        batch: usize,
    ) -> f64 {
        let b = users.len();
        let width = model.input_width();
        self.x.resize(b * width, 0.0);
        for k in 0..b {
            model.fill_input(users[k], items[k], &mut self.x[k * width..(k + 1) * width]);
        }
        model.mlp.forward_all(&self.x, b, &mut self.acts);
        self.g.resize(b, 0.0);
        let mut sse = 0.0f64;
        let scale = 2.0 / batch as f32;
        let out = self.acts.last().map_or(&[][..], |a| &a[..]);
        for k in 0..b {
            let x = &self.x[k * width..(k + 1) * width];
            let e = out[k] + model.extra_from_input(users[k], items[k], x) - ratings[k];
            sse += (e * e) as f64;
            self.g[k] = scale * e;
        }
        self.dgrads
            .resize_with(model.mlp.layers.len(), Default::default);
        // Backward through the MLP.
        self.delta.clear();
        self.delta.extend_from_slice(&self.g);
        for l in (0..model.mlp.layers.len()).rev() {
            let layer = &model.mlp.layers[l];
            let (inp, outw) = (layer.input, layer.output);
            if layer.activation == Activation::Relu {
                for (d, a) in self.delta.iter_mut().zip(&self.acts[l]) {
                    if *a <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
            let input: &[f32] = if l == 0 { &self.x } else { &self.acts[l - 1] };
            let (dw, db) = &mut self.dgrads[l];
            dw.resize(layer.weight.len(), 0.0);
            db.resize(layer.bias.len(), 0.0);
            gemm(
                inp,
                b,
                outw,
                Operand::t(input),
                Operand::new(&self.delta),
                0.0,
                dw,
            );
            db.fill(0.0);
            for row in self.delta.chunks_exact(outw) {
                for (s, d) in db.iter_mut().zip(row) {
                    *s += d;
                }
            }
            self.delta_prev.resize(b * inp, 0.0);
            gemm(
                b,
                outw,
                inp,
                Operand::new(&self.delta),
                Operand::t(&layer.weight),
                0.0,
                &mut self.delta_prev,
            );
            std::mem::swap(&mut self.delta, &mut self.delta_prev);
        }
        // self.delta is now dL/dX (b × width). The dot term's gradient joins it (it reads
        // the gathered user, item and implicit embeddings).
        if model.config.dot {
            let d = model.features[0].width();
            let implicit = model.config.implicit;
            for k in 0..b {
                let g = self.g[k];
                let x = &self.x[k * width..(k + 1) * width];
                let dx = &mut self.delta[k * width..(k + 1) * width];
                for j in 0..d {
                    let (p, q) = (x[j], x[d + j]);
                    let pu = if implicit { p + x[2 * d + j] } else { p };
                    dx[j] += g * q;
                    dx[d + j] += g * pu;
                    if implicit {
                        dx[2 * d + j] += g * q;
                    }
                }
            }
        }
        sse
    }
}

impl Trainer {
    fn new(model: &RankingModel, cfg: &TrainConfig) -> Self {
        let sparse_p = OptimParams {
            lr: cfg.embedding_lr(),
            eps: cfg.epsilon,
            init_acc: cfg.initial_accumulator,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            decay: cfg.embedding_l2,
        };
        let dense_p = OptimParams {
            lr: cfg.learning_rate,
            decay: cfg.weight_decay,
            ..sparse_p
        };
        let bias_p = OptimParams {
            decay: cfg.embedding_l2,
            ..sparse_p
        };
        let grads = model
            .features
            .iter()
            .map(|f| f.table.as_ref().map(|t| SparseGrad::new(t.rows(), t.dim())))
            .collect();
        let states = model
            .features
            .iter()
            .map(|f| {
                f.table
                    .as_ref()
                    .map(|t| SparseState::new(cfg.embedding_optimizer, t, &sparse_p))
            })
            .collect();
        let biases: Vec<_> = model
            .user_bias
            .iter()
            .chain(model.item_bias.iter())
            .collect();
        Trainer {
            sparse_p,
            dense_p,
            grads,
            states,
            bias_grads: biases
                .iter()
                .map(|t| SparseGrad::new(t.rows(), 1))
                .collect(),
            bias_states: biases
                .iter()
                .map(|t| SparseState::new(cfg.embedding_optimizer, t, &bias_p))
                .collect(),
            dense_states: model
                .mlp
                .layers
                .iter()
                .map(|l| {
                    (
                        DenseState::new(cfg.optimizer, l.weight.len(), &dense_p),
                        DenseState::new(cfg.optimizer, l.bias.len(), &dense_p),
                    )
                })
                .collect(),
            lanes: Default::default(),
        }
    }

    /// One optimisation step on a batch; returns the batch's sum of squared errors.
    fn step(
        &mut self,
        model: &mut RankingModel,
        users: &[u32],
        items: &[u32],
        ratings: &[f32],
    ) -> f64 {
        let b = users.len();
        let width = model.input_width();
        // Forward and backward: in two halves on two threads for large batches (a fixed
        // split and a fixed summation order: bit-identical for a given thread count).
        let halves = if b >= PARALLEL_BATCH && rayon::current_num_threads() > 1 {
            2
        } else {
            1
        };
        let mid = if halves == 2 { b / 2 } else { b };
        let [l0, l1] = &mut self.lanes;
        let sse = {
            let m: &RankingModel = model;
            if halves == 2 {
                let (a, c) = rayon::join(
                    || l0.run(m, &users[..mid], &items[..mid], &ratings[..mid], b),
                    || l1.run(m, &users[mid..], &items[mid..], &ratings[mid..], b),
                );
                for ((w0, b0), (w1, b1)) in l0.dgrads.iter_mut().zip(&l1.dgrads) {
                    w0.iter_mut().zip(w1).for_each(|(x, y)| *x += y);
                    b0.iter_mut().zip(b1).for_each(|(x, y)| *x += y);
                }
                a + c
            } else {
                l0.run(m, users, items, ratings, b)
            }
        };
        // Scatter dL/dX to the touched embedding rows, in example order.
        let lanes: &[(&Lane, usize)] = if halves == 2 {
            &[(&*l0, 0), (&*l1, mid)]
        } else {
            &[(&*l0, 0)]
        };
        let mut at = 0;
        for (f, grad) in model.features.iter().zip(&mut self.grads) {
            let w = f.width();
            if let Some(grad) = grad {
                let mut one = 0;
                for &(lane, first) in lanes {
                    let dx = &lane.delta;
                    let row_of = |k: usize| match f.side {
                        Side::User => users[first + k],
                        Side::Item => items[first + k],
                    };
                    let prefetch = grad.wants_prefetch();
                    for k in 0..lane.g.len() {
                        // Big tables: fetch the slots of the rows a few examples ahead.
                        if prefetch && k + 16 < lane.g.len() {
                            let mut tmp = 0;
                            for &id in f.ids(row_of(k + 16), &mut tmp) {
                                grad.prefetch(id);
                            }
                        }
                        let row = row_of(k);
                        let ids = f.ids(row, &mut one);
                        let s = 1.0 / ids.len().max(1) as f32;
                        for &id in ids {
                            grad.add(id, s, &dx[k * width + at..k * width + at + w]);
                        }
                    }
                }
            }
            at += w;
        }
        if self.bias_grads.len() == 2 {
            for &(lane, first) in lanes {
                for k in 0..lane.g.len() {
                    self.bias_grads[0].add(users[first + k], 1.0, &lane.g[k..k + 1]);
                    self.bias_grads[1].add(items[first + k], 1.0, &lane.g[k..k + 1]);
                }
            }
        }
        // Updates.
        for ((f, grad), state) in model
            .features
            .iter_mut()
            .zip(&mut self.grads)
            .zip(&mut self.states)
        {
            if let (Some(t), Some(grad), Some(state)) = (&mut f.table, grad, state) {
                state.step(t, grad, &self.sparse_p);
                grad.clear();
            }
        }
        let bias_p = self.sparse_p;
        for ((t, grad), state) in [&mut model.user_bias, &mut model.item_bias]
            .into_iter()
            .flatten()
            .zip(&mut self.bias_grads)
            .zip(&mut self.bias_states)
        {
            state.step(t, grad, &bias_p);
            grad.clear();
        }
        for ((layer, (sw, sb)), (dw, db)) in model
            .mlp
            .layers
            .iter_mut()
            .zip(&mut self.dense_states)
            .zip(&mut self.lanes[0].dgrads)
        {
            sw.step(&mut layer.weight, dw, &self.dense_p, true);
            sb.step(&mut layer.bias, db, &self.dense_p, false);
        }
        sse
    }
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
pub fn train_ranking_with(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> Result<(RankingModel, History)> {
    cfg.validate()?;
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
    let runs: Vec<Result<(RankingModel, History)>> = (0..cfg.ensemble)
        .into_par_iter()
        .map(|k| {
            let c = TrainConfig {
                seed: cfg.seed.wrapping_add(k as u64),
                ..cfg.clone()
            };
            train_one(
                dataset,
                train,
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
    if let Some(acfg) = &cfg.autorec {
        // The rows the first model was fitted on (validation rows excluded), mapped to
        // its vocabularies.
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
    }
    if let Some(rcfg) = &cfg.relevance {
        let (head, _) =
            crate::relevance::train_relevance(dataset, train, &model.spec, rcfg, progress)?;
        model.relevance = Some(head);
    }
    model.prepare_scoring();
    if !test.is_empty() {
        let m = evaluate(&model, dataset, test);
        if !model.members.is_empty() || model.autorec.is_some() {
            let single = model.meta.metrics.get("test_rmse").copied();
            if let Some(v) = single {
                model.meta.metrics.insert("member_test_rmse".into(), v);
            }
            model.meta.metrics.insert("test_rmse".into(), m.rmse);
            model.meta.metrics.insert("test_mae".into(), m.mae);
        }
        history.final_test = Some(m);
    }
    Ok((model, history))
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

/// Trains one model (see [`train_ranking`]).
///
/// A validation split (`cfg.validation_fraction`) is carved from `train` with the seed;
/// it drives early stopping and the kept weights are the best validation epoch's.
/// `test` rows are only evaluated for the [`History`] (pass `&[]` to skip).
/// The same seed and thread count give bit-identical weights.
fn train_one(
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
    cfg: &TrainConfig,
    progress: &dyn Progress,
) -> Result<(RankingModel, History)> {
    cfg.validate()?;
    let n_all = dataset.interactions.len();
    if let Some(&r) = train.iter().chain(test).find(|&&r| r >= n_all) {
        return Err(Error::NoData(format!(
            "row {r} is out of the dataset's {n_all} interactions"
        )));
    }
    let (fit_rows, valid_rows) = fit_rows(train, cfg);
    if fit_rows.is_empty() {
        return Err(Error::NoData("the training rows are empty".into()));
    }
    let spec = FeatureSpec::fit(dataset, &fit_rows, &cfg.features)?;
    let (ue, ie) = (spec.encode_users(dataset), spec.encode_items(dataset));
    let map = vocab_rows(&spec, dataset);
    let mut model = RankingModel::new(cfg.model_config(), spec, &ue, &ie)?;
    let it = &dataset.interactions;
    let us: Vec<u32> = fit_rows
        .iter()
        .map(|&r| map.0[it.users[r] as usize])
        .collect();
    let is: Vec<u32> = fit_rows
        .iter()
        .map(|&r| map.1[it.items[r] as usize])
        .collect();
    let rs: Vec<f32> = fit_rows.iter().map(|&r| it.ratings[r]).collect();
    let mean = (rs.iter().map(|&r| r as f64).sum::<f64>() / rs.len() as f64) as f32;
    init_model(&mut model, &mut Rng::with_stream(cfg.seed, 0), mean, cfg);
    if cfg.implicit {
        let mut bags = vec![Vec::new(); model.num_users()];
        for (&u, &i) in us.iter().zip(&is) {
            bags[u as usize].push(i);
        }
        for b in &mut bags {
            b.sort_unstable();
            b.dedup();
        }
        model.set_implicit(&bags)?;
    }
    if cfg.clip_predictions {
        let lo = rs.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = rs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        model.config.clip = Some([lo, hi]);
    }
    let mut trainer = Trainer::new(&model, cfg);

    let n = us.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut shuffle = Rng::with_stream(cfg.seed, 2);
    let (mut bu, mut bi, mut br) = (Vec::new(), Vec::new(), Vec::new());
    let mut history = History {
        train_examples: n,
        valid_examples: valid_rows.len(),
        ..History::default()
    };
    let mut best: Option<(f64, RankingModel)> = None;
    let mut since_best = 0;
    for epoch in 1..=cfg.epochs {
        if epoch == 1 || cfg.reshuffle_each_epoch {
            shuffle.shuffle(&mut order);
        }
        let start = Instant::now();
        let (mut sse, mut loss_sum, mut batches) = (0.0, 0.0, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            bu.clear();
            bi.clear();
            br.clear();
            for &k in chunk {
                bu.push(us[k as usize]);
                bi.push(is[k as usize]);
                br.push(rs[k as usize]);
            }
            let s = trainer.step(&mut model, &bu, &bi, &br);
            progress.advance(1);
            sse += s;
            loss_sum += s / chunk.len() as f64;
            batches += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        trainer.sparse_p.lr *= cfg.lr_decay;
        trainer.dense_p.lr *= cfg.lr_decay;
        let valid =
            (!valid_rows.is_empty()).then(|| evaluate_mapped(&model, dataset, &valid_rows, &map));
        let tm = (!test.is_empty()).then(|| evaluate_mapped(&model, dataset, test, &map));
        history.epochs.push(EpochRecord {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            train_rmse: (sse / n as f64).sqrt(),
            valid_loss: valid.map(|m| m.rmse * m.rmse),
            valid_rmse: valid.map(|m| m.rmse),
            test_rmse: tm.map(|m| m.rmse),
            test_mae: tm.map(|m| m.mae),
            seconds,
        });
        history.best_epoch = epoch;
        if let Some(v) = valid {
            if best.as_ref().is_none_or(|(b, _)| v.rmse < *b) {
                best = Some((v.rmse, model.clone()));
                since_best = 0;
            } else {
                since_best += 1;
                if cfg.patience > 0 && since_best >= cfg.patience {
                    history.stopped_early = true;
                    break;
                }
            }
        }
    }
    if let Some((_, m)) = best {
        model = m;
        history.best_epoch = history.epochs.len() - since_best;
    }
    let rec = history.best().cloned();
    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert("epochs_run".into(), history.epochs.len() as f64);
    metrics.insert("best_epoch".into(), history.best_epoch as f64);
    if let Some(r) = rec {
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
    model.meta.metrics = metrics;
    model.meta.hyper_parameters = serde_json::to_value(cfg).unwrap_or_default();
    model.meta.data_fingerprint = fingerprint(dataset, &fit_rows);
    Ok((model, history))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{EmbeddingOptimizer, OptimizerKind};
    use shortlist_data::synth::{generate, SynthConfig};

    fn data() -> (Dataset, Vec<usize>, Vec<usize>) {
        let (d, _) = generate(&SynthConfig {
            users: 200,
            items: 100,
            interactions: 20_000,
            rank: 4,
            noise: 0.3,
            ..Default::default()
        })
        .unwrap();
        let mut rows: Vec<usize> = (0..d.interactions.len()).collect();
        Rng::new(5).shuffle(&mut rows);
        let test = rows.split_off(16_000);
        (d, rows, test)
    }

    fn small() -> TrainConfig {
        TrainConfig {
            embedding_dim: 8,
            hidden: vec![32, 16],
            biases: true,
            dot: true,
            init_bias_to_mean: true,
            optimizer: OptimizerKind::Adam,
            embedding_optimizer: EmbeddingOptimizer::Adam,
            learning_rate: 0.01,
            batch_size: 256,
            epochs: 8,
            ..Default::default()
        }
    }

    #[test]
    fn learns_planted_structure_well_below_the_mean_baseline() {
        let (d, train, test) = data();
        let it = &d.interactions;
        let mean = train.iter().map(|&r| it.ratings[r] as f64).sum::<f64>() / train.len() as f64;
        let base = (test
            .iter()
            .map(|&r| (it.ratings[r] as f64 - mean).powi(2))
            .sum::<f64>()
            / test.len() as f64)
            .sqrt();
        for cfg in [
            small(),
            TrainConfig {
                embedding_optimizer: EmbeddingOptimizer::RowwiseAdagrad,
                optimizer: OptimizerKind::Adagrad,
                learning_rate: 0.1,
                dot: false,
                biases: false,
                epochs: 30,
                ..small()
            },
            TrainConfig {
                implicit: true,
                clip_predictions: true,
                ensemble: 2,
                lr_decay: 0.95,
                autorec: Some(crate::AutoRecTrainConfig {
                    hidden: 16,
                    l2: 1.0,
                    learning_rate: 0.02,
                    epochs: 60,
                    ..Default::default()
                }),
                ..small()
            },
        ] {
            let (model, h) = train_ranking(&d, &train, &test, &cfg).unwrap();
            let m = evaluate(&model, &d, &test);
            assert!(
                m.rmse < 0.75 * base,
                "rmse {} vs baseline {base} ({cfg:?})",
                m.rmse
            );
            assert_eq!(Some(m.rmse), h.final_test.map(|t| t.rmse));
            assert_eq!(model.members.len() + 1, cfg.ensemble);
            if cfg.ensemble == 1 {
                // per-epoch metrics use the plain forward, the returned model its cache
                let last = h.epochs.last().and_then(|e| e.test_rmse).unwrap();
                assert!((m.rmse - last).abs() < 1e-6, "{} vs {last}", m.rmse);
            }
            if cfg.implicit {
                // the bags hold training items only, and the model round-trips
                assert_eq!(model.features[2].name, shortlist_model::IMPLICIT);
                let dir = tempfile::tempdir().unwrap();
                model.save(&dir.path().join("m")).unwrap();
                let back = crate::load_model(&dir.path().join("m")).unwrap();
                assert_eq!(back.features, model.features);
                assert_eq!(back.mlp, model.mlp);
                assert_eq!(back.members.len(), model.members.len());
                assert_eq!(back.members[0].features, model.members[0].features);
                assert_eq!(back.meta.metrics, model.meta.metrics);
                assert_eq!(back.autorec, model.autorec);
                assert!(back.autorec.is_some());
                assert_eq!(back, model);
                let (us, is): (Vec<u32>, Vec<u32>) = (0..500u32)
                    .map(|k| {
                        (
                            k % model.num_users() as u32,
                            (k * 7) % model.num_items() as u32,
                        )
                    })
                    .unzip();
                let bits = |m: &RankingModel| -> Vec<u32> {
                    m.predict_batch(&us, &is)
                        .iter()
                        .map(|p| p.to_bits())
                        .collect()
                };
                assert_eq!(bits(&back), bits(&model));
                assert_eq!(evaluate(&back, &d, &test).rmse.to_bits(), m.rmse.to_bits());
            }
            let first = h.epochs[0].train_rmse;
            assert!(h.epochs.last().unwrap().train_rmse < first);
        }
    }

    #[test]
    fn same_seed_gives_identical_weights_and_other_seeds_differ() {
        let (d, train, test) = data();
        let cfg = TrainConfig {
            epochs: 2,
            ..small()
        };
        let (a, ha) = train_ranking(&d, &train[..4000], &test[..500], &cfg).unwrap();
        let (b, hb) = train_ranking(&d, &train[..4000], &test[..500], &cfg).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            ha.epochs.iter().map(|e| e.test_rmse).collect::<Vec<_>>(),
            hb.epochs.iter().map(|e| e.test_rmse).collect::<Vec<_>>()
        );
        let (c, _) = train_ranking(
            &d,
            &train[..4000],
            &test[..500],
            &TrainConfig { seed: 7, ..cfg },
        )
        .unwrap();
        assert_ne!(a.mlp, c.mlp);
    }

    #[test]
    fn early_stopping_keeps_the_best_validation_epoch_and_model_round_trips() {
        let (d, train, test) = data();
        let cfg = TrainConfig {
            validation_fraction: 0.2,
            patience: 1,
            epochs: 30,
            learning_rate: 0.05,
            ..small()
        };
        let (model, h) = train_ranking(&d, &train[..6000], &test, &cfg).unwrap();
        assert_eq!(h.valid_examples, 1200);
        assert_eq!(h.train_examples, 4800);
        let best = h.best().unwrap();
        let min = h
            .epochs
            .iter()
            .filter_map(|e| e.valid_rmse)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(best.valid_rmse, Some(min));
        assert_eq!(model.meta.metrics.get("test_rmse"), best.test_rmse.as_ref());
        let dir = tempfile::tempdir().unwrap();
        model.save(&dir.path().join("m")).unwrap();
        let back = crate::load_model(&dir.path().join("m")).unwrap();
        let (m1, m2) = (evaluate(&model, &d, &test), evaluate(&back, &d, &test));
        assert_eq!(m1.rmse.to_bits(), m2.rmse.to_bits());
        h.write_curves(dir.path()).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("curves.csv")).unwrap();
        assert_eq!(csv.lines().count(), h.epochs.len() + 1);
        let png = std::fs::read(dir.path().join("curves.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn side_features_train_and_unknown_rows_are_rejected() {
        let (d, train, test) = data();
        let mut cfg = TrainConfig {
            epochs: 2,
            ..small()
        };
        cfg.features.item_features = vec!["*".into()];
        cfg.features.user_features = vec!["*".into()];
        let (model, _) = train_ranking(&d, &train[..3000], &test[..300], &cfg).unwrap();
        assert!(
            model.features.len() > 2,
            "{:?}",
            model.features.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
        assert!(evaluate(&model, &d, &test).rmse.is_finite());
        let err = train_ranking(&d, &[usize::MAX], &[], &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of the dataset"), "{err}");
        let err = train_ranking(
            &d,
            &train,
            &[],
            &TrainConfig {
                batch_size: 0,
                ..cfg
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid batch_size: expected at least 1");
    }
}
