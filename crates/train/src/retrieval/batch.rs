//! One epoch of two-tower training, batch by batch: the query tower, the candidate
//! columns, the softmax loss over `Q · Cᵀ / τ`, the gradients back through both towers
//! and the optimiser's update. **Hot**: everything here runs once per batch, and the
//! loops inside run per example, per candidate or per logit; the buffers live in
//! [`BatchStep`] and are reused from batch to batch (no allocation per batch once
//! they have grown).

use rayon::prelude::*;

use shortlist_core::progress::Progress;
use shortlist_core::Rng;
use shortlist_model::kernel::{gemm, Operand};
use shortlist_model::retrieval::RetrievalModel;
use shortlist_model::Lookup;

use super::towers::{backprop_feature, features_only_into, tower_into, HistoryPool};
use super::{Examples, TowerStates};
use super::{NegativeSampling, Reduction, RetrievalLoss, RetrievalTrainConfig};
use crate::losses::softmax_row;

/// The reusable buffers of a batch and the run's constants.
pub(super) struct BatchStep<'r> {
    cfg: &'r RetrievalTrainConfig,
    examples: &'r Examples,
    /// Embedding width.
    d: usize,
    /// `1 / temperature`.
    inv_t: f32,
    /// Probability of dropping a candidate's id embedding (0 without item features).
    id_dropout: f32,
    drop_rng: Rng,
    /// Per candidate column: its id embedding is dropped in this batch.
    dropped: Vec<bool>,
    /// The batch's (user row, positive item row) pairs.
    pairs: Vec<(u32, u32)>,
    /// Query vectors, `b × d`.
    q: Vec<f32>,
    /// Candidate vectors, `nc × d`.
    c: Vec<f32>,
    /// Logits, then their gradients, `b × nc`.
    logits: Vec<f32>,
    dq: Vec<f32>,
    dc: Vec<f32>,
    /// Candidate columns' item rows: the distinct in-batch items (first-seen order),
    /// then the sampled negatives; with the full softmax, every trained item.
    cand_items: Vec<u32>,
    /// Copies of each distinct in-batch item in the batch.
    cand_counts: Vec<u32>,
    /// Column of each example's positive item.
    pos_cols: Vec<u32>,
    /// Item row → column (`u32::MAX` between uses).
    col_of: Vec<u32>,
    pool: HistoryPool,
}

impl<'r> BatchStep<'r> {
    pub(super) fn new(
        model: &RetrievalModel,
        examples: &'r Examples,
        cfg: &'r RetrievalTrainConfig,
    ) -> Self {
        let d = cfg.embedding_dim;
        BatchStep {
            cfg,
            examples,
            d,
            inv_t: 1.0 / cfg.temperature,
            // Id dropout only means something when the item tower has side features.
            id_dropout: if model.candidate.len() > 1 {
                cfg.item_id_dropout
            } else {
                0.0
            },
            drop_rng: Rng::with_stream(cfg.seed, 0x1d_d0),
            dropped: Vec::new(),
            pairs: Vec::new(),
            q: Vec::new(),
            c: Vec::new(),
            logits: Vec::new(),
            dq: Vec::new(),
            dc: Vec::new(),
            cand_items: Vec::new(),
            cand_counts: Vec::new(),
            pos_cols: Vec::new(),
            col_of: vec![u32::MAX; examples.items],
            pool: HistoryPool::new(model.seen.rows(), d),
        }
    }

    /// One pass over the examples in `order`, batch by batch; returns the sum of the
    /// examples' losses (summed in example order). `rng` draws the sampled negatives.
    pub(super) fn epoch(
        &mut self,
        model: &mut RetrievalModel,
        states: &mut TowerStates,
        order: &[usize],
        rng: &mut Rng,
        progress: &dyn Progress,
    ) -> f64 {
        let mut loss_sum = 0.0f64;
        for batch in order.chunks(self.cfg.batch_size) {
            if progress.cancelled() {
                break; // the caller returns the error after the epoch
            }
            progress.advance(1);
            self.queries(model, batch);
            self.choose_candidates(batch, rng);
            self.candidate_vectors(model);
            self.loss_and_logit_grads(batch, &mut loss_sum);
            self.backward(model, states);
            states.update(model);
        }
        loss_sum
    }

    /// Query vectors (leave-one-out history). The history sum of each distinct user of
    /// the batch is computed once, S_u = Σ_{j ∈ seen(u)} h_j, and each example takes
    /// (S_u − h_i) / (n_u − 1): O(Σ_{users in batch} n_u) per batch instead of
    /// O(Σ_{examples} n_u), which is quadratic in a heavy user's activity.
    fn queries(&mut self, model: &RetrievalModel, batch: &[usize]) {
        let (d, b) = (self.d, batch.len());
        let examples = &self.examples.pairs;
        self.q.clear();
        self.q.resize(b * d, 0.0);
        self.pairs.clear();
        self.pairs.extend(batch.iter().map(|&e| examples[e]));
        // Each example's query is independent: computed in parallel, bit-identical
        // for any thread count.
        self.q
            .par_chunks_mut(d)
            .zip(self.pairs.par_iter())
            .for_each(|(out, &(u, _))| tower_into(&model.query, u, out));
        if let Some(h) = &model.history {
            self.pool.forward(&model.seen, h, &self.pairs, &mut self.q);
        }
    }

    /// The candidate columns and each example's positive column. In-batch candidates
    /// are deduplicated: B columns holding U distinct items are equivalent to U
    /// columns whose logits carry ln(count) — same loss, same gradients, (B/U)× less
    /// work (at batch 8192 on MovieLens, ~5×).
    fn choose_candidates(&mut self, batch: &[usize], rng: &mut Rng) {
        let cfg = self.cfg;
        let ex = self.examples;
        let examples = &ex.pairs;
        let (trained, ni) = (ex.trained, ex.items);
        let (cand_items, cand_counts, col_of) = (
            &mut self.cand_items,
            &mut self.cand_counts,
            &mut self.col_of,
        );
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
                for &i in cand_items.iter() {
                    col_of[i as usize] = u32::MAX;
                }
                for _ in 0..cfg.sampled_negatives {
                    let j = match cfg.negative_sampling {
                        NegativeSampling::Uniform => rng.below(trained as u64) as u32,
                        NegativeSampling::Popularity => {
                            let x = rng.next_f64() * ex.total;
                            ex.cumulative.partition_point(|&s| s <= x).min(ni - 1) as u32
                        }
                    };
                    cand_items.push(j);
                }
            }
        }
        let unique = cand_counts.len();
        // Column of each example's positive item.
        self.pos_cols.clear();
        match cfg.loss {
            RetrievalLoss::FullSoftmax => {
                self.pos_cols.extend(batch.iter().map(|&e| examples[e].1))
            }
            RetrievalLoss::InBatch => {
                for (k, &i) in cand_items[..unique].iter().enumerate() {
                    col_of[i as usize] = k as u32;
                }
                self.pos_cols
                    .extend(batch.iter().map(|&e| col_of[examples[e].1 as usize]));
                for &i in &cand_items[..unique] {
                    col_of[i as usize] = u32::MAX;
                }
            }
        }
    }

    /// The candidate columns' vectors, each without its id embedding when id dropout
    /// drops it in this batch.
    fn candidate_vectors(&mut self, model: &RetrievalModel) {
        let d = self.d;
        let nc = self.cand_items.len();
        self.c.clear();
        self.c.resize(nc * d, 0.0);
        self.dropped.clear();
        if self.id_dropout > 0.0 {
            let (drop_rng, p) = (&mut self.drop_rng, self.id_dropout);
            self.dropped
                .extend((0..nc).map(|_| drop_rng.next_f32() < p));
        } else {
            self.dropped.resize(nc, false);
        }
        for (k, &j) in self.cand_items.iter().enumerate() {
            let out = &mut self.c[k * d..(k + 1) * d];
            if self.dropped[k] {
                features_only_into(&model.candidate, j, out);
            } else {
                tower_into(&model.candidate, j, out);
            }
        }
    }

    /// logits = Q · Cᵀ / τ with the in-batch corrections (logQ, accidental hits,
    /// copies of an item), then the softmax in place: each row becomes the gradient
    /// of its logits, `(p − y) · scale`. Adds each example's loss to `loss_sum`, in
    /// example order. **Hot**: the loop runs per logit.
    fn loss_and_logit_grads(&mut self, batch: &[usize], loss_sum: &mut f64) {
        let cfg = self.cfg;
        let ex = self.examples;
        let (examples, log_q, ni) = (&ex.pairs, &ex.log_q, ex.items);
        let (b, d, inv_t) = (batch.len(), self.d, self.inv_t);
        let (cand_items, cand_counts, pos_cols) =
            (&self.cand_items, &self.cand_counts, &self.pos_cols);
        let unique = cand_counts.len();
        let nc = cand_items.len();
        let logits = &mut self.logits;
        logits.clear();
        logits.resize(b * nc, 0.0);
        gemm(
            b,
            d,
            nc,
            Operand::new(&self.q),
            Operand::t(&self.c),
            0.0,
            logits,
        );
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
            *loss_sum += loss_offset as f64 + softmax_row(row, pos_col, grad_scale);
        }
    }

    /// dQ = G · C / τ ;  dC = Gᵀ · Q / τ, scattered into the gradients of the query
    /// tables, the history table and the candidate tables (a dropped id embedding
    /// gets none).
    fn backward(&mut self, model: &RetrievalModel, states: &mut TowerStates) {
        let (b, d, inv_t) = (self.pairs.len(), self.d, self.inv_t);
        let nc = self.cand_items.len();
        self.dq.clear();
        self.dq.resize(b * d, 0.0);
        gemm(
            b,
            nc,
            d,
            Operand::new(&self.logits),
            Operand::new(&self.c),
            0.0,
            &mut self.dq,
        );
        self.dc.clear();
        self.dc.resize(nc * d, 0.0);
        gemm(
            nc,
            b,
            d,
            Operand::t(&self.logits),
            Operand::new(&self.q),
            0.0,
            &mut self.dc,
        );
        for (k, &(u, _)) in self.pairs.iter().enumerate() {
            let g = &self.dq[k * d..(k + 1) * d];
            for (f, st) in model.query.iter().zip(states.query.iter_mut()) {
                backprop_feature(f, st, u, inv_t, g);
            }
        }
        if let Some(hs) = &mut states.history {
            self.pool
                .backward(&model.seen, &self.pairs, &self.dq, inv_t, &mut hs.grad);
        }
        for (k, &j) in self.cand_items.iter().enumerate() {
            let g = &self.dc[k * d..(k + 1) * d];
            if g.iter().all(|&x| x == 0.0) {
                continue;
            }
            for (f, st) in model.candidate.iter().zip(states.candidate.iter_mut()) {
                if self.dropped[k] && matches!(f.lookup, Lookup::Id) {
                    continue;
                }
                backprop_feature(f, st, j, inv_t, g);
            }
        }
    }
}
