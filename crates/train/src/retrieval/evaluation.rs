//! Evaluating a retrieval model in the dataset's index space: the scorer adapter
//! (unknown users and items handled) and the split evaluator reused by every epoch.

use shortlist_core::Dataset;
use shortlist_eval::{
    EmbeddingScorer, EvalConfig, Evaluator, Metrics as EvalMetrics, Pairs, PopularityScorer, Scorer,
};
use shortlist_model::retrieval::RetrievalModel;

use crate::error::{Error, Result};

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

/// Evaluation of models and baselines on one train/test split (dataset index space).
pub struct SplitEvaluator {
    evaluator: Evaluator,
    config: EvalConfig,
    train_items: Vec<u32>,
    n_items: usize,
}

impl SplitEvaluator {
    /// Groups the split once; reuse it for every epoch.
    pub fn new(dataset: &Dataset, train: &[usize], test: &[usize]) -> Result<Self> {
        let it = &dataset.interactions;
        let pick = |rows: &[usize], col: &[u32]| rows.iter().map(|&r| col[r]).collect::<Vec<u32>>();
        let (tu, ti) = (pick(train, &it.users), pick(train, &it.items));
        let (su, si) = (pick(test, &it.users), pick(test, &it.items));
        let e = |e: shortlist_eval::Error| Error::invalid("evaluation", e.to_string());
        let evaluator = Evaluator::new(
            dataset.users.len(),
            dataset.items.len(),
            Pairs::new(&tu, &ti).map_err(e)?,
            Pairs::new(&su, &si).map_err(e)?,
        )
        .map_err(e)?;
        Ok(SplitEvaluator {
            evaluator,
            config: EvalConfig::default(),
            train_items: ti,
            n_items: dataset.items.len(),
        })
    }

    /// Metrics of `model`.
    pub fn model(&self, model: &RetrievalModel, dataset: &Dataset) -> Result<EvalMetrics> {
        let scorer = DatasetScorer::new(model, dataset);
        self.evaluator
            .evaluate(&scorer, &self.config)
            .map_err(|e| Error::invalid("evaluation", e.to_string()))
    }

    /// Metrics of any scorer in the dataset's index space (e.g. a
    /// [`crate::interactions::RowScorer`] over an EASE or iALS model).
    pub fn scorer(&self, scorer: &dyn shortlist_eval::Scorer) -> Result<EvalMetrics> {
        self.evaluator
            .evaluate(scorer, &self.config)
            .map_err(|e| Error::invalid("evaluation", e.to_string()))
    }

    /// Metrics of the popularity baseline (training interaction counts).
    pub fn popularity(&self) -> Result<EvalMetrics> {
        let e = |e: shortlist_eval::Error| Error::invalid("evaluation", e.to_string());
        let pop = PopularityScorer::fit(self.n_items, &self.train_items).map_err(e)?;
        self.evaluator.evaluate(&pop, &self.config).map_err(e)
    }
}
