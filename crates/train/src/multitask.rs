//! The shared embeddings of a ranking model evaluated as a retrieval model: the user
//! vector of the dot term (`p_u`, plus the implicit mean) against every item
//! embedding, ranked over the whole catalogue — what the `multitask` objective trains
//! them for (TensorFlow Recommenders' multitask tutorial reports the same top-K
//! metrics beside the rating RMSE for each loss weighting).

use shortlist_core::Dataset;
use shortlist_eval::{Metrics as EvalMetrics, SplitEvaluator};
use shortlist_model::RankingModel;

use crate::error::Result;
use crate::interactions::RowScorer;

/// Full-ranking metrics of the shared embeddings of `model` on a train/test split of
/// `dataset` (training items masked), and of the popularity baseline on the same split.
///
/// # Errors
/// When the split cannot be evaluated (rows out of range, no test user).
pub fn shared_retrieval(
    model: &RankingModel,
    dataset: &Dataset,
    train: &[usize],
    test: &[usize],
) -> Result<(EvalMetrics, EvalMetrics)> {
    let ev = SplitEvaluator::new(dataset, train, test)?;
    let items: Vec<u32> = (0..model.num_items() as u32).collect();
    let score = |user: u32, out: &mut [f32]| model.shared_scores(user, &items, out);
    let m = ev.scorer(&RowScorer::new(&model.spec, dataset, &score))?;
    Ok((m, ev.popularity()?))
}
