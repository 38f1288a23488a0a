//! [`SplitEvaluator`]: the full-ranking evaluation of one train/test split of a
//! [`Dataset`], in the dataset's index space, grouped once and reused for every epoch,
//! every model and every baseline. It lives here, beside the metrics, so that
//! evaluating a split needs no training code (a model is evaluated through its
//! [`Scorer`]).

use shortlist_core::Dataset;

use crate::error::Result;
use crate::evaluator::{Evaluator, Pairs};
use crate::metrics::{EvalConfig, Metrics};
use crate::popularity::PopularityScorer;
use crate::scorer_base::Scorer;

/// Evaluation of models and baselines on one train/test split (dataset index space).
pub struct SplitEvaluator {
    evaluator: Evaluator,
    config: EvalConfig,
    train_items: Vec<u32>,
    n_items: usize,
}

impl SplitEvaluator {
    /// Groups the split (`train` and `test` are rows of `dataset.interactions`) once;
    /// reuse it for every epoch.
    ///
    /// # Errors
    /// When a row's user or item is out of the dataset's range, or the test rows hold
    /// no user.
    pub fn new(dataset: &Dataset, train: &[usize], test: &[usize]) -> Result<Self> {
        let it = &dataset.interactions;
        let pick = |rows: &[usize], col: &[u32]| rows.iter().map(|&r| col[r]).collect::<Vec<u32>>();
        let (tu, ti) = (pick(train, &it.users), pick(train, &it.items));
        let (su, si) = (pick(test, &it.users), pick(test, &it.items));
        let evaluator = Evaluator::new(
            dataset.users.len(),
            dataset.items.len(),
            Pairs::new(&tu, &ti)?,
            Pairs::new(&su, &si)?,
        )?;
        Ok(SplitEvaluator {
            evaluator,
            config: EvalConfig::default(),
            train_items: ti,
            n_items: dataset.items.len(),
        })
    }

    /// The grouped split, for metrics of given lists ([`Evaluator::evaluate_lists`]).
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// The configuration every metric here uses (the default cut-offs).
    pub fn config(&self) -> &EvalConfig {
        &self.config
    }

    /// Metrics of any scorer in the dataset's index space (a retrieval model through
    /// its dataset scorer, an EASE or iALS model through a row scorer, …).
    ///
    /// # Errors
    /// When the scorer fails or does not score the dataset's items.
    pub fn scorer(&self, scorer: &dyn Scorer) -> Result<Metrics> {
        self.evaluator.evaluate(scorer, &self.config)
    }

    /// Metrics of the popularity baseline (training interaction counts).
    ///
    /// # Errors
    /// As [`SplitEvaluator::scorer`].
    pub fn popularity(&self) -> Result<Metrics> {
        let pop = PopularityScorer::fit(self.n_items, &self.train_items)?;
        self.evaluator.evaluate(&pop, &self.config)
    }
}
