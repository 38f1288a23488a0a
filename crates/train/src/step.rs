//! One optimisation step of the ranking model ([`Trainer`]): the forward/backward of
//! the batch's halves ([`Lane`], on two threads for large batches), the `multitask`
//! retrieval loss over the whole batch, the scatter of the input gradients to the
//! embedding rows, and the sparse and dense optimizer updates.

use shortlist_model::{Objective, RankingModel, Side};

use crate::backward::{Lane, LaneLoss, LayerGrads, Task};
use crate::config::TrainConfig;
use crate::losses::{in_batch_softmax, SoftmaxScratch};
use crate::optim::{DenseState, OptimParams, SparseGrad, SparseState};

/// Batches at least this large are split in two halves computed on two threads.
const PARALLEL_BATCH: usize = 1024;

/// The losses of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StepLoss {
    /// Σ over the batch of the objective's per-example loss (squared error of the
    /// rating, or cross-entropy of the click).
    pub loss: f64,
    /// Σ of squared errors of the output (the probability for `click`).
    pub sse: f64,
    /// Mean in-batch softmax loss per example of the `multitask` retrieval task (0
    /// otherwise; the loss optimised is its sum over the batch).
    pub retrieval: f64,
}

/// Optimizer state and scratch buffers of one training run.
pub(crate) struct Trainer {
    pub(crate) task: Task,
    pub(crate) sparse_p: OptimParams,
    pub(crate) dense_p: OptimParams,
    /// Per input feature: the gradient of its table's touched rows.
    pub(crate) grads: Vec<Option<SparseGrad>>,
    states: Vec<Option<SparseState>>,
    /// User then item bias gradients (when the model has biases).
    pub(crate) bias_grads: Vec<SparseGrad>,
    bias_states: Vec<SparseState>,
    dense_states: Vec<(DenseState, DenseState)>,
    cross_states: Vec<(DenseState, DenseState)>,
    /// Forward/backward buffers of each half of a batch (data parallelism).
    pub(crate) lanes: [Lane; 2],
    softmax: SoftmaxScratch,
    shared_u: Vec<f32>,
    shared_q: Vec<f32>,
    /// `log q(item row)` of the logQ correction (empty: none), and the batch's shifts.
    log_q: Vec<f32>,
    shift: Vec<f32>,
}

fn dense_states(
    layers: &[shortlist_model::Dense],
    cfg: &TrainConfig,
    p: &OptimParams,
) -> Vec<(DenseState, DenseState)> {
    layers
        .iter()
        .map(|l| {
            (
                DenseState::new(cfg.optimizer, l.weight.len(), p),
                DenseState::new(cfg.optimizer, l.bias.len(), p),
            )
        })
        .collect()
}

fn add_grads(into: &mut LayerGrads, from: &LayerGrads) {
    for ((w0, b0), (w1, b1)) in into.iter_mut().zip(from) {
        w0.iter_mut().zip(w1).for_each(|(x, y)| *x += y);
        b0.iter_mut().zip(b1).for_each(|(x, y)| *x += y);
    }
}

impl Trainer {
    pub(crate) fn new(model: &RankingModel, cfg: &TrainConfig) -> Self {
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
        let (rating_weight, retrieval_weight) = cfg.loss_weights();
        Trainer {
            task: Task {
                objective: cfg.objective,
                rating_weight,
                retrieval_weight,
            },
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
            dense_states: dense_states(&model.mlp.layers, cfg, &dense_p),
            cross_states: dense_states(&model.cross.layers, cfg, &dense_p),
            lanes: Default::default(),
            softmax: SoftmaxScratch::default(),
            shared_u: Vec::new(),
            shared_q: Vec::new(),
            log_q: Vec::new(),
            shift: Vec::new(),
        }
    }

    /// Sets the logQ correction of the `multitask` retrieval loss: `log_q[i]` is
    /// `ln(share of the training rows with item row i)` (see
    /// [`crate::losses::in_batch_softmax`]); empty: no correction.
    pub(crate) fn set_log_q(&mut self, log_q: Vec<f32>) {
        self.log_q = log_q;
    }

    /// One optimisation step on a batch.
    pub(crate) fn step(
        &mut self,
        model: &mut RankingModel,
        users: &[u32],
        items: &[u32],
        labels: &[f32],
    ) -> StepLoss {
        let loss = self.backward(model, users, items, labels);
        self.update(model);
        loss
    }

    /// Forward and backward of a batch: leaves the gradients of the mean loss in
    /// `grads` (embedding rows), `bias_grads`, and `lanes[0].dgrads` / `.cgrads` (MLP
    /// and cross layers, both halves summed).
    ///
    /// The steps: [`run_lanes`] (the network's forward and backward, per half),
    /// [`retrieval_backward`] (`multitask` only), [`scatter_embedding_grads`] and
    /// [`scatter_bias_grads`]. **Hot**: once per batch; the steps loop per example.
    pub(crate) fn backward(
        &mut self,
        model: &RankingModel,
        users: &[u32],
        items: &[u32],
        labels: &[f32],
    ) -> StepLoss {
        let b = users.len();
        // Forward and backward: in two halves on two threads for large batches (a fixed
        // split and a fixed summation order: bit-identical for a given thread count).
        let halves = if b >= PARALLEL_BATCH && rayon::current_num_threads() > 1 {
            2
        } else {
            1
        };
        let mid = if halves == 2 { b / 2 } else { b };
        let task = self.task;
        let [l0, l1] = &mut self.lanes;
        let split = (halves == 2).then_some(mid);
        let sums = run_lanes(
            model,
            (&mut *l0, &mut *l1),
            (users, items, labels),
            split,
            &task,
        );
        let mut out = StepLoss {
            loss: sums.loss,
            sse: sums.sse,
            retrieval: 0.0,
        };
        let lanes: &mut [(&mut Lane, usize)] = if halves == 2 {
            &mut [(l0, 0), (l1, mid)]
        } else {
            &mut [(l0, 0)]
        };
        if task.objective == Objective::Multitask && task.retrieval_weight > 0.0 {
            self.shift.clear();
            if !self.log_q.is_empty() {
                self.shift
                    .extend(items.iter().map(|&i| self.log_q[i as usize]));
            }
            out.retrieval = retrieval_backward(
                model,
                lanes,
                b,
                (task.retrieval_weight, &self.shift),
                (&mut self.shared_u, &mut self.shared_q),
                &mut self.softmax,
            );
        }
        scatter_embedding_grads(model, lanes, users, items, &mut self.grads);
        if self.bias_grads.len() == 2 {
            scatter_bias_grads(lanes, users, items, &mut self.bias_grads);
        }
        out
    }

    /// Applies the gradients left by [`Trainer::backward`] and clears them.
    pub(crate) fn update(&mut self, model: &mut RankingModel) {
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
        let lane = &mut self.lanes[0];
        for ((layer, (sw, sb)), (dw, db)) in model
            .mlp
            .layers
            .iter_mut()
            .chain(model.cross.layers.iter_mut())
            .zip(self.dense_states.iter_mut().chain(&mut self.cross_states))
            .zip(lane.dgrads.iter_mut().chain(&mut lane.cgrads))
        {
            sw.step(&mut layer.weight, dw, &self.dense_p, true);
            sb.step(&mut layer.bias, db, &self.dense_p, false);
        }
    }
}

/// The network's forward and backward over the batch: in one lane, or with `split =
/// Some(mid)` in two (rows `..mid` and `mid..`) on two threads, their layer gradients
/// then summed into the first lane's. `b` in each lane's loss is the whole batch.
fn run_lanes(
    model: &RankingModel,
    (l0, l1): (&mut Lane, &mut Lane),
    (users, items, labels): (&[u32], &[u32], &[f32]),
    split: Option<usize>,
    task: &Task,
) -> LaneLoss {
    let b = users.len();
    let Some(mid) = split else {
        return l0.run(model, users, items, labels, b, task);
    };
    let (a, c) = rayon::join(
        || l0.run(model, &users[..mid], &items[..mid], &labels[..mid], b, task),
        || l1.run(model, &users[mid..], &items[mid..], &labels[mid..], b, task),
    );
    add_grads(&mut l0.dgrads, &l1.dgrads);
    add_grads(&mut l0.cgrads, &l1.cgrads);
    LaneLoss {
        loss: a.loss + c.loss,
        sse: a.sse + c.sse,
    }
}

/// Scatters each lane's ∂L/∂x to the touched embedding rows of every feature with a
/// table, in example order (a bag's rows share its gradient equally). **Hot**: runs
/// per example and feature; big tables prefetch the rows a few examples ahead.
fn scatter_embedding_grads(
    model: &RankingModel,
    lanes: &[(&mut Lane, usize)],
    users: &[u32],
    items: &[u32],
    grads: &mut [Option<SparseGrad>],
) {
    let width = model.input_width();
    let mut at = 0;
    for (f, grad) in model.features.iter().zip(grads) {
        let w = f.width();
        if let Some(grad) = grad {
            let mut one = 0;
            for (lane, first) in lanes.iter() {
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
}

/// Adds each example's output gradient to its user's and item's bias gradient
/// (`bias_grads`: user, then item). **Hot**: runs per example.
fn scatter_bias_grads(
    lanes: &[(&mut Lane, usize)],
    users: &[u32],
    items: &[u32],
    bias_grads: &mut [SparseGrad],
) {
    for (lane, first) in lanes.iter() {
        for k in 0..lane.g.len() {
            bias_grads[0].add(users[first + k], 1.0, &lane.g[k..k + 1]);
            bias_grads[1].add(items[first + k], 1.0, &lane.g[k..k + 1]);
        }
    }
}

/// The `multitask` retrieval loss over the whole batch (its halves' gathered inputs):
/// the in-batch softmax of the shared user vectors (`p_u`, plus the implicit mean)
/// against the batch's item embeddings (logits shifted by `shift`), **summed** over
/// the batch as TensorFlow Recommenders' `Retrieval` task does (while the rating MSE is
/// the batch mean, as its `Ranking` task), weighted by `weight`; its gradient joins
/// each lane's ∂L/∂x₀. Returns the loss per example.
fn retrieval_backward(
    model: &RankingModel,
    lanes: &mut [(&mut Lane, usize)],
    b: usize,
    (weight, shift): (f32, &[f32]),
    (u, q): (&mut Vec<f32>, &mut Vec<f32>),
    softmax: &mut SoftmaxScratch,
) -> f64 {
    let width = model.input_width();
    let d = model.features[0].width();
    let implicit = model.config.implicit;
    u.resize(b * d, 0.0);
    q.resize(b * d, 0.0);
    for (lane, first) in lanes.iter() {
        for k in 0..lane.g.len() {
            let x = &lane.x[k * width..(k + 1) * width];
            let at = (first + k) * d;
            u[at..at + d].copy_from_slice(&x[..d]);
            if implicit {
                u[at..at + d]
                    .iter_mut()
                    .zip(&x[2 * d..3 * d])
                    .for_each(|(a, y)| *a += y);
            }
            q[at..at + d].copy_from_slice(&x[d..2 * d]);
        }
    }
    let loss = in_batch_softmax(u, q, b, d, shift, weight * b as f32, softmax);
    for (lane, first) in lanes.iter_mut() {
        for k in 0..lane.g.len() {
            let at = (*first + k) * d;
            let dx = &mut lane.delta[k * width..(k + 1) * width];
            let (du, dq) = (&softmax.du[at..at + d], &softmax.dq[at..at + d]);
            dx[..d].iter_mut().zip(du).for_each(|(a, g)| *a += g);
            dx[d..2 * d].iter_mut().zip(dq).for_each(|(a, g)| *a += g);
            if implicit {
                dx[2 * d..3 * d]
                    .iter_mut()
                    .zip(du)
                    .for_each(|(a, g)| *a += g);
            }
        }
    }
    loss
}
