//! The real models behind the [`Servable`] traits: the pipeline's candidate sources
//! (two-tower retrieval, iALS, EASE) and ranking stage, loaded from the model
//! directories that `shortlist train` writes. [`load_model_dir`] is the server's
//! [`crate::Loader`].

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use shortlist_pipeline::{CandidateSource, ModelSource, Ranker, RankingStage, Stage};

use crate::error::ApiError;
use crate::servable::{
    predict_with_ranker, predict_with_retriever, ranking_signature, retrieval_signature, ModelKind,
    Servable,
};

/// How many items a TF-Serving `:predict` on a retrieval model returns.
pub const PREDICT_K: usize = 10;

/// A candidate source (retrieval, iALS or EASE model) ready to answer requests.
pub struct RetrievalServable(ModelSource);

impl Servable for RetrievalServable {
    fn kind(&self) -> ModelKind {
        ModelKind::Retrieval
    }

    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        predict_with_retriever(&self.0, PREDICT_K, instances)
    }

    fn signature(&self) -> Value {
        retrieval_signature(PREDICT_K)
    }

    fn as_retrieval(&self) -> Option<&dyn CandidateSource> {
        Some(&self.0)
    }
}

/// A ranking model ready to answer requests.
pub struct RankingServable(RankingStage);

impl Servable for RankingServable {
    fn kind(&self) -> ModelKind {
        ModelKind::Ranking
    }

    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        predict_with_ranker(&self.0, instances)
    }

    fn signature(&self) -> Value {
        ranking_signature()
    }

    fn as_ranking(&self) -> Option<&dyn Ranker> {
        Some(&self.0)
    }
}

/// Loads one model version directory, whatever its kind (read from `manifest.json`).
pub fn load_model_dir(dir: &Path) -> Result<Arc<dyn Servable>, String> {
    match shortlist_pipeline::load_dir(dir).map_err(|e| e.to_string())? {
        Stage::Source(s) => Ok(Arc::new(RetrievalServable(s))),
        Stage::Ranking(r) => Ok(Arc::new(RankingServable(r))),
    }
}
