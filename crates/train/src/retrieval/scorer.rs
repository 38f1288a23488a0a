//! [`DatasetScorer`]: a retrieval model as an evaluation [`Scorer`] in the dataset's
//! index space (unknown users and items handled), for
//! [`shortlist_eval::SplitEvaluator`].

use shortlist_core::Dataset;
use shortlist_eval::{EmbeddingScorer, Scorer};
use shortlist_model::retrieval::RetrievalModel;

/// Scores in the dataset's index space: users and items that are not in the model's
/// vocabulary are handled here (unknown items can never be recommended: `-inf`).
pub struct DatasetScorer {
    queries: Vec<f32>,
    candidates: Vec<f32>,
    unknown_items: Vec<usize>,
    dim: usize,
}

impl DatasetScorer {
    /// Precomputes every dataset user's query and every dataset item's candidate vector.
    pub fn new(model: &RetrievalModel, dataset: &Dataset) -> Self {
        let d = model.dim();
        let mut queries = vec![0.0; dataset.users.len() * d];
        for (u, q) in queries.chunks_exact_mut(d).enumerate() {
            let (row, _) = model.user_row(dataset.users.raw(u as u32));
            model.query_into(row, q);
        }
        let mut candidates = vec![0.0; dataset.items.len() * d];
        let mut unknown_items = Vec::new();
        for (i, c) in candidates.chunks_exact_mut(d).enumerate() {
            match model.spec.item_id.get(dataset.items.raw(i as u32)) {
                Some(row) => model.candidate_into(row, c),
                None => unknown_items.push(i),
            }
        }
        DatasetScorer {
            queries,
            candidates,
            unknown_items,
            dim: d,
        }
    }
}

impl Scorer for DatasetScorer {
    fn n_items(&self) -> usize {
        self.candidates.len() / self.dim.max(1)
    }

    fn score_users(&self, users: &[u32], out: &mut [f32]) -> shortlist_eval::Result<()> {
        EmbeddingScorer::new(&self.queries, &self.candidates, self.dim)?.score_users(users, out)?;
        let n = self.n_items();
        for row in out.chunks_exact_mut(n) {
            for &i in &self.unknown_items {
                row[i] = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }
}
