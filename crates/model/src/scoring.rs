//! The ranking model's scoring cache: the first MLP layer precomputed per user row
//! and per item row, so that scoring a pair on the serving path is an add, a ReLU and
//! the remaining layers instead of gathers and the widest GEMM.

use std::sync::OnceLock;

use crate::ranking::{RankingModel, Scratch, Side};

/// Per-vocabulary-row partial products of the first MLP layer. The first layer is linear
/// in the concatenated inputs, so `x·W1 + b1 = (user inputs)·W1_user + b1 + (item
/// inputs)·W1_item`; scoring a pair is then an add, a ReLU and the remaining layers.
///
/// The rows are computed when the cache is built natively, and each on its first use
/// in WebAssembly ([`crate::PRECOMPUTE_USER_TABLES`]), where building them all would
/// delay the page's first list for users and items a visit never scores.
#[derive(Debug, Clone, Default)]
pub struct ScoringCache {
    /// `users × h1`: user-side inputs times their rows of `W1`, plus `b1`.
    user: Rows,
    /// `items × h1`: item-side inputs times their rows of `W1`.
    item: Rows,
    /// `users × dim`: the user vector of the dot term (`p_u`, plus the implicit mean).
    user_vec: Rows,
    /// The rows of `W1` for the user-side inputs (`user inputs × h1`), for rows
    /// computed on first use.
    user_weight: Vec<f32>,
    /// The rows of `W1` for the item-side inputs (`item inputs × h1`).
    item_weight: Vec<f32>,
}

/// The rows of a per-user or per-item table: all computed up front, or each on first
/// use.
#[derive(Debug, Clone)]
enum Rows {
    /// Every row, `rows × width`, row-major.
    Table(Vec<f32>),
    /// One slot per row, filled on first use.
    OnFirstUse(Vec<OnceLock<Box<[f32]>>>),
}

impl Default for Rows {
    fn default() -> Self {
        Rows::Table(Vec::new())
    }
}

impl Rows {
    /// `n` empty slots.
    fn on_first_use(n: usize) -> Self {
        Rows::OnFirstUse((0..n).map(|_| OnceLock::new()).collect())
    }

    /// Row `r` (`width` values), computed by `compute` if it is not yet.
    fn row(&self, r: usize, width: usize, compute: impl FnOnce(&mut [f32])) -> &[f32] {
        match self {
            Rows::Table(t) => &t[r * width..(r + 1) * width],
            Rows::OnFirstUse(rows) => rows[r].get_or_init(|| {
                let mut r = vec![0f32; width];
                compute(&mut r);
                r.into()
            }),
        }
    }
}

impl ScoringCache {
    /// User row `u`'s part of the first layer (`h1` values, `b1` included) for
    /// `model`, the model whose cache this is.
    pub fn user_part(&self, model: &RankingModel, u: usize) -> &[f32] {
        let h = model.mlp.layers[0].output;
        self.user.row(u, h, |out| {
            out.copy_from_slice(&model.mlp.layers[0].bias);
            model.side_part(Side::User, u, 1, &self.user_weight, out);
        })
    }

    /// Item row `i`'s part of the first layer (`h1` values) for `model`, the model
    /// whose cache this is.
    pub fn item_part(&self, model: &RankingModel, i: usize) -> &[f32] {
        let h = model.mlp.layers[0].output;
        self.item.row(i, h, |out| {
            model.side_part(Side::Item, i, 1, &self.item_weight, out);
        })
    }

    /// User row `u`'s vector of the dot term (`dim` values) for `model`, the model
    /// whose cache this is.
    pub fn user_vector(&self, model: &RankingModel, u: usize) -> &[f32] {
        self.user_vec.row(u, model.features[0].width(), |out| {
            model.dot_user_vector(u as u32, out)
        })
    }
}

/// Largest cache [`RankingModel::prepare_scoring`] builds, in floats (256 MiB).
pub const MAX_CACHE_FLOATS: usize = 64 << 20;

impl RankingModel {
    /// The cached forward pass of `out.len()` pairs (this model alone, unclipped).
    pub(crate) fn raw_batch_cached(
        &self,
        c: &ScoringCache,
        users: &[u32],
        items: &[u32],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) {
        let n = out.len();
        let h = self.mlp.layers[0].output;
        scratch.input.resize(n * h, 0.0);
        for (k, (&u, &i)) in users.iter().zip(items).take(n).enumerate() {
            let dst = &mut scratch.input[k * h..(k + 1) * h];
            let (cu, ci) = (c.user_part(self, u as usize), c.item_part(self, i as usize));
            for ((d, a), b) in dst.iter_mut().zip(cu).zip(ci) {
                *d = (a + b).max(0.0);
            }
        }
        let rest = &self.mlp.layers[1..];
        scratch.acts.resize_with(rest.len(), Vec::new);
        for (l, layer) in rest.iter().enumerate() {
            let (done, todo) = scratch.acts.split_at_mut(l);
            let o = &mut todo[0];
            o.resize(n * layer.output, 0.0);
            let input: &[f32] = if l == 0 { &scratch.input } else { &done[l - 1] };
            layer.forward(input, n, o);
        }
        let last = scratch.acts.last().map_or(&scratch.input[..], |a| &a[..]);
        for k in 0..n {
            let (u, i) = (users[k] as usize, items[k] as usize);
            let mut v = last[k];
            if let (Some(ub), Some(ib)) = (&self.user_bias, &self.item_bias) {
                v += ub.row(u)[0] + ib.row(i)[0];
            }
            if self.config.dot {
                if let Some(t) = &self.features[1].table {
                    v += c
                        .user_vector(self, u)
                        .iter()
                        .zip(t.row(i))
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
                }
            }
            out[k] = v;
        }
    }

    /// The scoring cache built by [`RankingModel::prepare_scoring`], if it was built
    /// (`None` before, after a weight change that dropped it, or when it would exceed
    /// [`MAX_CACHE_FLOATS`]).
    pub fn scoring_cache(&self) -> Option<&ScoringCache> {
        self.cache.as_ref()
    }

    /// Precomputes the first MLP layer's user part and item part per vocabulary row (and
    /// the dot term's user vectors), here and in every member, so that scoring skips the
    /// gathers and the first (widest) GEMM. Skipped (the plain path is used) when the
    /// cache would exceed [`MAX_CACHE_FLOATS`]. Call again after changing any weight;
    /// [`RankingModel::load`] and the trainer call it.
    pub fn prepare_scoring(&mut self) {
        for m in &mut self.members {
            m.prepare_scoring();
        }
        self.prepare_own_scoring();
    }

    /// [`RankingModel::prepare_scoring`] of this model alone, its members left as they
    /// are (loading prepares each member as it reads it).
    pub(crate) fn prepare_own_scoring(&mut self) {
        self.prepare_own_scoring_with(crate::PRECOMPUTE_USER_TABLES);
    }

    /// [`RankingModel::prepare_own_scoring`] with the rows computed now or each on
    /// first use.
    pub(crate) fn prepare_own_scoring_with(&mut self, rows_now: bool) {
        self.cache = None;
        let (nu, ni) = (self.num_users(), self.num_items());
        let layer = &self.mlp.layers[0];
        let (h, w) = (layer.output, layer.input);
        let d = self.features[0].width();
        // Cross layers multiply user and item inputs together: the first MLP layer is no
        // longer a sum of a user part and an item part, so there is nothing to cache.
        if (nu + ni) * (h + w) + nu * d > MAX_CACHE_FLOATS
            || self.mlp.layers.len() < 2
            || !self.cross.is_empty()
        {
            return;
        }
        // Each side's rows of the first layer (see `side_part`).
        let side_weight = |side: Side| -> Vec<f32> {
            let mut at = 0;
            let mut weight = Vec::new();
            for f in &self.features {
                let fw = f.width();
                if f.side == side {
                    weight.extend_from_slice(&layer.weight[at * h..(at + fw) * h]);
                }
                at += fw;
            }
            weight
        };
        let (user_weight, item_weight) = (side_weight(Side::User), side_weight(Side::Item));
        let table = |side: Side, rows: usize, weight: &[f32]| {
            let mut y = vec![0.0; rows * h];
            if side == Side::User {
                for row in y.chunks_exact_mut(h) {
                    row.copy_from_slice(&layer.bias);
                }
            }
            self.side_part(side, 0, rows, weight, &mut y);
            Rows::Table(y)
        };
        let (user, item, user_vec) = if rows_now {
            let mut user_vec = vec![0.0; nu * d];
            if self.config.dot {
                for (u, dst) in user_vec.chunks_exact_mut(d.max(1)).enumerate().take(nu) {
                    self.dot_user_vector(u as u32, dst);
                }
            }
            (
                table(Side::User, nu, &user_weight),
                table(Side::Item, ni, &item_weight),
                Rows::Table(user_vec),
            )
        } else {
            (
                Rows::on_first_use(nu),
                Rows::on_first_use(ni),
                Rows::on_first_use(nu),
            )
        };
        self.cache = Some(ScoringCache {
            user,
            item,
            user_vec,
            user_weight,
            item_weight,
        });
    }

    /// Adds to `out` (`rows × h1`) the first layer's part of `rows` vocabulary rows of
    /// `side` from `first`: their inputs (the side's features in order) times
    /// `weight`, the side's rows of `W1`. One GEMM, the other side's columns left out
    /// (they would only add zero products).
    fn side_part(&self, side: Side, first: usize, rows: usize, weight: &[f32], out: &mut [f32]) {
        let h = self.mlp.layers[0].output;
        let ws = weight.len() / h;
        let mut x = vec![0.0; rows * ws];
        for (r, xr) in x.chunks_exact_mut(ws.max(1)).enumerate().take(rows) {
            self.fill_side(side, (first + r) as u32, xr);
        }
        crate::kernel::gemm(
            rows,
            ws,
            h,
            crate::kernel::Operand::new(&x),
            crate::kernel::Operand::new(weight),
            1.0,
            out,
        );
    }

    /// The inputs of `side` (its features in order) of vocabulary row `row`.
    fn fill_side(&self, side: Side, row: u32, out: &mut [f32]) {
        let mut off = 0;
        for f in self.features.iter().filter(|f| f.side == side) {
            f.fill(row, &mut out[off..off + f.width()]);
            off += f.width();
        }
    }

    /// The dot term's vector of user row `u`: its embedding, plus its implicit mean
    /// when the model has one.
    fn dot_user_vector(&self, u: u32, out: &mut [f32]) {
        self.features[0].fill(u, out);
        if self.config.implicit {
            let mut tmp = vec![0.0; out.len()];
            self.features[2].fill(u, &mut tmp);
            for (a, b) in out.iter_mut().zip(&tmp) {
                *a += b;
            }
        }
    }
}
