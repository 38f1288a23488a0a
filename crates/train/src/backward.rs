//! The ranking model's forward and hand-written backward pass over one slice of a
//! batch ([`Lane`]): inputs gathered, DCN-v2 cross layers, the MLP (ReLU hidden
//! layers) over the model crate's GEMM seam, the loss of the objective, and the
//! gradients of every dense layer and of the gathered input rows (which the trainer
//! scatters to the embedding tables). Finite-difference checks of all of it against
//! the model crate's forward pass are in `gradcheck.rs`.

use shortlist_model::kernel::{gemm, Operand};
use shortlist_model::{Activation, CrossNet, Mlp, Objective, RankingModel};

use crate::losses::{bce_with_logit, squared_error};

/// Weight and bias gradients of a stack of dense layers, one pair per layer.
pub(crate) type LayerGrads = Vec<(Vec<f32>, Vec<f32>)>;

/// What one training step optimises (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Task {
    /// The objective (rating, click, multitask).
    pub objective: Objective,
    /// Weight of the rating loss (1 unless `multitask` sets it).
    pub rating_weight: f32,
    /// Weight of the `multitask` retrieval loss (0 otherwise).
    pub retrieval_weight: f32,
}

/// Backward through `mlp` for `b` rows: `input` is what the first layer read, `acts`
/// every layer's output (from [`Mlp::forward_all`]). On entry `delta` holds ∂L/∂output
/// (`b × output`), on exit ∂L/∂input (`b × input`); `grads` receives each layer's
/// weight and bias gradients. A ReLU's derivative at 0 is taken as 0.
pub(crate) fn mlp_backward(
    mlp: &Mlp,
    input: &[f32],
    acts: &[Vec<f32>],
    b: usize,
    delta: &mut Vec<f32>,
    tmp: &mut Vec<f32>,
    grads: &mut LayerGrads,
) {
    grads.resize_with(mlp.layers.len(), Default::default);
    for l in (0..mlp.layers.len()).rev() {
        let layer = &mlp.layers[l];
        let (inp, outw) = (layer.input, layer.output);
        if layer.activation == Activation::Relu {
            for (d, a) in delta.iter_mut().zip(&acts[l]) {
                if *a <= 0.0 {
                    *d = 0.0;
                }
            }
        }
        let x: &[f32] = if l == 0 { input } else { &acts[l - 1] };
        let (dw, db) = &mut grads[l];
        dense_grads(x, delta, b, inp, outw, dw, db);
        tmp.resize(b * inp, 0.0);
        gemm(
            b,
            outw,
            inp,
            Operand::new(delta),
            Operand::t(&layer.weight),
            0.0,
            tmp,
        );
        std::mem::swap(delta, tmp);
    }
}

/// `dw = xᵀ · delta`, `db = Σ_rows delta` of a layer `inp → outw` over `b` rows.
fn dense_grads(
    x: &[f32],
    delta: &[f32],
    b: usize,
    inp: usize,
    outw: usize,
    dw: &mut Vec<f32>,
    db: &mut Vec<f32>,
) {
    dw.resize(inp * outw, 0.0);
    db.resize(outw, 0.0);
    gemm(inp, b, outw, Operand::t(x), Operand::new(delta), 0.0, dw);
    db.fill(0.0);
    for row in delta.chunks_exact(outw) {
        for (s, d) in db.iter_mut().zip(row) {
            *s += d;
        }
    }
}

/// The cross layers' forward results and backward buffers of one lane.
#[derive(Debug, Default)]
pub(crate) struct CrossState {
    /// `x_1 … x_L` (see [`CrossNet::forward_all`]).
    xs: Vec<Vec<f32>>,
    /// `x_l · W_l + b_l`.
    ts: Vec<Vec<f32>>,
    h: Vec<f32>,
    direct: Vec<f32>,
}

/// Backward through the cross layers for `b` rows of `x0` (`state` from their
/// forward pass). With `G = ∂L/∂x_{l+1}` and `H = G ⊙ x₀`:
/// `∂L/∂W_l = x_lᵀ H`, `∂L/∂b_l = Σ H`, `∂L/∂x_l = G + H W_lᵀ`, and `x₀` also
/// collects `G ⊙ (x_l W_l + b_l)` from every layer. On entry `delta` holds ∂L/∂x_L,
/// on exit ∂L/∂x₀.
pub(crate) fn cross_backward(
    cross: &CrossNet,
    x0: &[f32],
    b: usize,
    delta: &mut [f32],
    bufs: &mut CrossState,
    grads: &mut LayerGrads,
) {
    grads.resize_with(cross.layers.len(), Default::default);
    let Some(w) = cross.layers.first().map(|l| l.input) else {
        return;
    };
    let n = b * w;
    bufs.h.resize(n, 0.0);
    bufs.direct.clear();
    bufs.direct.resize(n, 0.0);
    for l in (0..cross.layers.len()).rev() {
        let layer = &cross.layers[l];
        let xl: &[f32] = if l == 0 { &x0[..n] } else { &bufs.xs[l - 1] };
        for k in 0..n {
            bufs.h[k] = delta[k] * x0[k];
            bufs.direct[k] += delta[k] * bufs.ts[l][k];
        }
        let (dw, db) = &mut grads[l];
        dense_grads(xl, &bufs.h, b, w, w, dw, db);
        // delta ← delta + H · Wᵀ
        gemm(
            b,
            w,
            w,
            Operand::new(&bufs.h),
            Operand::t(&layer.weight),
            1.0,
            &mut delta[..n],
        );
    }
    for (d, x) in delta[..n].iter_mut().zip(&bufs.direct) {
        *d += x;
    }
}

/// Forward/backward of one slice of a batch: inputs, activations, the error signal
/// and the dense gradients of that slice.
#[derive(Default)]
pub(crate) struct Lane {
    /// Gathered inputs `x₀`, `b × width`.
    pub x: Vec<f32>,
    cross: CrossState,
    acts: Vec<Vec<f32>>,
    /// After [`Lane::run`]: ∂L/∂x₀ (`b × width`), what the embedding rows receive.
    pub delta: Vec<f32>,
    delta_prev: Vec<f32>,
    /// ∂L/∂(model output) per example (the bias terms' gradient).
    pub g: Vec<f32>,
    /// MLP layer gradients.
    pub dgrads: LayerGrads,
    /// Cross layer gradients.
    pub cgrads: LayerGrads,
}

/// Sums of one slice's per-example losses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LaneLoss {
    /// Σ of the objective's per-example loss (squared error or cross-entropy).
    pub loss: f64,
    /// Σ of squared errors of the model's output (probabilities for `click`).
    pub sse: f64,
}

impl Lane {
    /// Forward and backward of `users/items/labels` (a slice of a batch of `batch`
    /// examples, the loss being the batch mean): fills `delta` with ∂L/∂x₀, `g` with
    /// ∂L/∂output and the layer gradients.
    pub(crate) fn run(
        &mut self,
        model: &RankingModel,
        users: &[u32],
        items: &[u32],
        labels: &[f32],
        batch: usize,
        task: &Task,
    ) -> LaneLoss {
        let b = users.len();
        let width = model.input_width();
        self.x.resize(b * width, 0.0);
        for k in 0..b {
            model.fill_input(users[k], items[k], &mut self.x[k * width..(k + 1) * width]);
        }
        let crossed = !model.cross.is_empty();
        if crossed {
            let c = &mut self.cross;
            model.cross.forward_all(&self.x, b, &mut c.xs, &mut c.ts);
        }
        let mlp_in: &[f32] = match self.cross.xs.last() {
            Some(v) if crossed => v,
            _ => &self.x,
        };
        model.mlp.forward_all(mlp_in, b, &mut self.acts);
        self.g.resize(b, 0.0);
        let mut sums = LaneLoss::default();
        let out = self.acts.last().map_or(&[][..], |a| &a[..]);
        for k in 0..b {
            let x = &self.x[k * width..(k + 1) * width];
            let z = out[k] + model.extra_from_input(users[k], items[k], x);
            let (loss, dz) = match task.objective {
                Objective::Click => bce_with_logit(z, labels[k]),
                Objective::Rating | Objective::Multitask => {
                    let (l, d) = squared_error(z, labels[k]);
                    (l, task.rating_weight * d)
                }
            };
            let e = model.link(z) - labels[k];
            sums.loss += loss as f64;
            sums.sse += (e * e) as f64;
            self.g[k] = dz / batch as f32;
        }
        self.delta.clear();
        self.delta.extend_from_slice(&self.g);
        mlp_backward(
            &model.mlp,
            mlp_in,
            &self.acts,
            b,
            &mut self.delta,
            &mut self.delta_prev,
            &mut self.dgrads,
        );
        if crossed {
            cross_backward(
                &model.cross,
                &self.x,
                b,
                &mut self.delta,
                &mut self.cross,
                &mut self.cgrads,
            );
        }
        // self.delta is now dL/dx₀ (b × width). The dot term's gradient joins it (it
        // reads the gathered user, item and implicit embeddings).
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
        sums
    }
}
