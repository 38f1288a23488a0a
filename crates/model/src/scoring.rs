//! The ranking model's scoring cache: the first MLP layer precomputed per user row
//! and per item row, so that scoring a pair on the serving path is an add, a ReLU and
//! the remaining layers instead of gathers and the widest GEMM.

use crate::ranking::{RankingModel, Scratch, Side};

/// Per-vocabulary-row partial products of the first MLP layer. The first layer is linear
/// in the concatenated inputs, so `x·W1 + b1 = (user inputs)·W1_user + b1 + (item
/// inputs)·W1_item`; scoring a pair is then an add, a ReLU and the remaining layers.
#[derive(Debug, Clone, Default)]
pub struct ScoringCache {
    /// `users × h1`: user-side inputs times their rows of `W1`, plus `b1`.
    pub user: Vec<f32>,
    /// `items × h1`: item-side inputs times their rows of `W1`.
    pub item: Vec<f32>,
    /// `users × dim`: the user vector of the dot term (`p_u`, plus the implicit mean).
    pub user_vec: Vec<f32>,
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
            let (cu, ci) = (
                &c.user[u as usize * h..(u as usize + 1) * h],
                &c.item[i as usize * h..(i as usize + 1) * h],
            );
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
        let d = self.features[0].width();
        for k in 0..n {
            let (u, i) = (users[k] as usize, items[k] as usize);
            let mut v = last[k];
            if let (Some(ub), Some(ib)) = (&self.user_bias, &self.item_bias) {
                v += ub.row(u)[0] + ib.row(i)[0];
            }
            if self.config.dot {
                if let Some(t) = &self.features[1].table {
                    v += c.user_vec[u * d..(u + 1) * d]
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
        // Each side's inputs of every row and the first layer's rows for them, then one
        // GEMM per side: the other side's columns would only add zero products.
        let side_part = |side: Side, rows: usize| -> Vec<f32> {
            let mut cols = Vec::new();
            let mut at = 0;
            for f in &self.features {
                let fw = f.width();
                if f.side == side {
                    cols.extend(at..at + fw);
                }
                at += fw;
            }
            let ws = cols.len();
            let mut x = vec![0.0; rows * ws];
            for r in 0..rows {
                let mut off = r * ws;
                for f in self.features.iter().filter(|f| f.side == side) {
                    f.fill(r as u32, &mut x[off..off + f.width()]);
                    off += f.width();
                }
            }
            let weight: Vec<f32> = cols
                .iter()
                .flat_map(|&c| layer.weight[c * h..(c + 1) * h].iter().copied())
                .collect();
            let mut y = vec![0.0; rows * h];
            if side == Side::User {
                for row in y.chunks_exact_mut(h) {
                    row.copy_from_slice(&layer.bias);
                }
            }
            crate::kernel::gemm(
                rows,
                ws,
                h,
                crate::kernel::Operand::new(&x),
                crate::kernel::Operand::new(&weight),
                1.0,
                &mut y,
            );
            y
        };
        let user = side_part(Side::User, nu);
        let item = side_part(Side::Item, ni);
        let mut user_vec = vec![0.0; nu * d];
        if self.config.dot {
            let mut tmp = vec![0.0; d];
            for u in 0..nu {
                let dst = &mut user_vec[u * d..(u + 1) * d];
                self.features[0].fill(u as u32, dst);
                if self.config.implicit {
                    self.features[2].fill(u as u32, &mut tmp);
                    for (a, b) in dst.iter_mut().zip(&tmp) {
                        *a += b;
                    }
                }
            }
        }
        self.cache = Some(ScoringCache {
            user,
            item,
            user_vec,
        });
    }
}
