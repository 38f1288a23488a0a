//! Two-tower training helpers: embedding-table state and initialisation, the towers'
//! forward sums, the gradient of one input feature, and the leave-one-out history pool
//! (the pieces of the training step that are not the loss itself).

use rayon::prelude::*;
use shortlist_core::Rng;
use shortlist_model::retrieval::{axpy, Csr, RetrievalModel};
use shortlist_model::{EmbeddingTable, InputFeature, Lookup};

use crate::optim::{SparseGrad, SparseState};

/// Per-table training state.
pub(super) struct TableState {
    pub(super) grad: SparseGrad,
    pub(super) opt: SparseState,
}

pub(super) fn init_table(t: &mut EmbeddingTable, rng: &mut Rng, scale: f32) {
    for w in t.data_mut() {
        *w = (rng.next_f32() * 2.0 - 1.0) * scale;
    }
}

/// Adds `scale · g` to the gradient of feature `f`'s rows for entity `row`.
pub(super) fn backprop_feature(
    f: &InputFeature,
    st: &mut TableState,
    row: u32,
    scale: f32,
    g: &[f32],
) {
    match &f.lookup {
        Lookup::Id => st.grad.add(row, scale, g),
        Lookup::Index(v) => st.grad.add(v[row as usize], scale, g),
        Lookup::Bag { offsets, ids } => {
            let bag = &ids[offsets[row as usize] as usize..offsets[row as usize + 1] as usize];
            if !bag.is_empty() {
                let w = scale / bag.len() as f32;
                for &b in bag {
                    st.grad.add(b, w, g);
                }
            }
        }
        Lookup::Dense(v) => st.grad.add(0, scale * v[row as usize], g),
    }
}

/// Leave-one-out history pooling for a batch of (user, positive item) pairs: each
/// query gains `(S_u − h_i) / (n_u − 1)`, the mean of the user's training items but the
/// positive one, where `S_u = Σ_{j ∈ seen(u)} h_j`. `S_u` is summed once per distinct
/// user of the batch, and the gradient is summed per user and spread over the user's
/// items once: O(Σ_{distinct users} n_u) per batch, where the per-example form is
/// O(Σ_{examples} n_u) — quadratic in a heavy user's activity (over 10 minutes per
/// epoch at 100k users × 1M items with power-law activity).
pub(super) struct HistoryPool {
    d: usize,
    /// Batch slot of each user (`u32::MAX` outside the current batch).
    slot: Vec<u32>,
    /// Distinct users of the batch, first-seen order.
    users: Vec<u32>,
    /// Per slot: `S_u` (forward) or the summed gradient `G_u` (backward).
    sums: Vec<f32>,
}

impl HistoryPool {
    pub(super) fn new(users: usize, d: usize) -> Self {
        HistoryPool {
            d,
            slot: vec![u32::MAX; users],
            users: Vec::new(),
            sums: Vec::new(),
        }
    }

    /// Assigns slots to the batch's distinct users.
    fn enter(&mut self, pairs: &[(u32, u32)]) {
        for &u in &self.users {
            self.slot[u as usize] = u32::MAX;
        }
        self.users.clear();
        for &(u, _) in pairs {
            if self.slot[u as usize] == u32::MAX {
                self.slot[u as usize] = self.users.len() as u32;
                self.users.push(u);
            }
        }
        self.sums.clear();
        self.sums.resize(self.users.len() * self.d, 0.0);
    }

    /// `(n, has_i)`: how many history items example `(u, i)` pools, and whether `i` is
    /// among the user's items.
    fn count(seen: &Csr, u: u32, i: u32) -> (usize, bool) {
        let items = seen.row(u as usize);
        let has_i = items.binary_search(&i).is_ok();
        (items.len() - usize::from(has_i), has_i)
    }

    /// Adds each example's pooled history to its row of `q` (`pairs.len() × d`).
    pub(super) fn forward(
        &mut self,
        seen: &Csr,
        h: &EmbeddingTable,
        pairs: &[(u32, u32)],
        q: &mut [f32],
    ) {
        let d = self.d;
        self.enter(pairs);
        self.sums
            .par_chunks_mut(d)
            .zip(self.users.par_iter())
            .for_each(|(sum, &u)| {
                for &j in seen.row(u as usize) {
                    axpy(1.0, h.row(j as usize), sum);
                }
            });
        let (sums, slot) = (&self.sums, &self.slot);
        q.par_chunks_mut(d).zip(pairs.par_iter()).for_each_init(
            || vec![0.0f32; d],
            |hist, (out, &(u, i))| {
                let (n, has_i) = Self::count(seen, u, i);
                if n > 0 {
                    let s = slot[u as usize] as usize;
                    hist.copy_from_slice(&sums[s * d..(s + 1) * d]);
                    if has_i {
                        axpy(-1.0, h.row(i as usize), hist);
                    }
                    axpy(1.0 / n as f32, hist, out);
                }
            },
        );
    }

    /// Accumulates into `grad` the history table's gradient, `scale · dq` for example
    /// `k` spread as in [`forward`](Self::forward). Call after `forward` on the same
    /// pairs.
    pub(super) fn backward(
        &mut self,
        seen: &Csr,
        pairs: &[(u32, u32)],
        dq: &[f32],
        scale: f32,
        grad: &mut SparseGrad,
    ) {
        let d = self.d;
        self.sums.clear();
        self.sums.resize(self.users.len() * d, 0.0);
        for (k, &(u, i)) in pairs.iter().enumerate() {
            let (n, has_i) = Self::count(seen, u, i);
            if n > 0 {
                // Every item but `i` receives w·g: summed per user, spread below, and
                // taken back from `i`.
                let w = scale / n as f32;
                let g = &dq[k * d..(k + 1) * d];
                let s = self.slot[u as usize] as usize;
                axpy(w, g, &mut self.sums[s * d..(s + 1) * d]);
                if has_i {
                    grad.add(i, -w, g);
                }
            }
        }
        for (s, &u) in self.users.iter().enumerate() {
            let gu = &self.sums[s * d..(s + 1) * d];
            for &j in seen.row(u as usize) {
                grad.add(j, 1.0, gu);
            }
        }
    }
}

pub(super) fn tower_into(features: &[InputFeature], row: u32, out: &mut [f32]) {
    out.fill(0.0);
    for f in features {
        shortlist_model::retrieval::add_feature(f, row, 1.0, out);
    }
}

/// The candidate tower without its id embedding (id dropout): side features only.
pub(super) fn features_only_into(features: &[InputFeature], row: u32, out: &mut [f32]) {
    out.fill(0.0);
    for f in features.iter().filter(|f| !matches!(f.lookup, Lookup::Id)) {
        shortlist_model::retrieval::add_feature(f, row, 1.0, out);
    }
}

/// Sets the id-embedding and history rows `from..` to zero (the cold items' rows).
pub(super) fn zero_rows_from(model: &mut RetrievalModel, from: usize) {
    let tables = model
        .candidate
        .iter_mut()
        .filter(|f| matches!(f.lookup, Lookup::Id))
        .filter_map(|f| f.table.as_mut())
        .chain(model.history.as_mut());
    for t in tables {
        for r in from..t.rows() {
            t.row_mut(r).fill(0.0);
        }
    }
}
