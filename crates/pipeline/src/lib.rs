//! The retrieve → rank → filter pipeline of **shortlist**, the one place where a
//! recommendation list is made: the server's `/v1/recommend`, `shortlist recommend`
//! and `shortlist eval --pipeline` all call [`recommend()`], so the list evaluated
//! offline is the list served.
//!
//! * [`source`]: the first stage. [`CandidateSource`] (top items for a user, scores
//!   of given items) and [`ModelSource`], which loads any candidate model kind: the
//!   two-tower `retrieval` model, `ials` and `ease`.
//! * [`ranking`]: the second stage. [`Ranker`] and [`RankingStage`] (the ranking
//!   model: a rating head, and a relevance head that orders lists).
//! * [`recommend()`]: candidates from a primary source (plus other sources with
//!   quotas, merged and de-duplicated), exclusions, ranking, ordering ([`Order`]);
//!   [`recommend_with`] adds a request's business rules ([`rules`]: attribute
//!   filters inside the index search, a cap per attribute value, a freshness boost).
//! * [`request`]: the checks of a request body shared by the server and the
//!   WebAssembly engine ([`Limits`], [`history_strength`]), and the answers
//!   ([`RecommendAnswer`], [`RankAnswer`]) as both serialize them.
//! * [`load_dir`]: any model version directory, by the kind in its manifest
//!   ([`load_files`]: the same from memory, e.g. a bundle in a browser).
//!
//! It depends on the model and index crates only (no training, no data loading), so
//! the server stays free of both.

pub mod error;
pub mod live;
pub mod ranking;
pub mod recommend;
pub mod request;
pub mod rules;
pub mod source;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::path::{Path, PathBuf};

pub use error::{Error, Result};
pub use live::ItemChange;
pub use ranking::{Ranked, RankedItem, RankedRow, Ranker, RankingStage};
pub use recommend::{
    desc, recommend, recommend_with, Item, Order, Recommendation, Request, Stages,
};
pub use request::{history_strength, Limits, RankAnswer, RecommendAnswer};
pub use rules::{Condition, Freshness, Op, Rules};
pub use source::{Candidate, CandidateSource, HistoryItem, ModelSource, Retrieved, User, UserPath};

pub(crate) use shortlist_model::PRECOMPUTE_USER_TABLES;

/// A loaded model version: a candidate source or a ranking model. Built once per
/// load, so the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Stage {
    /// `retrieval`, `ials` or `ease`.
    Source(ModelSource),
    /// `ranking`.
    Ranking(RankingStage),
}

/// Loads one model version directory, whatever its kind (read from `manifest.json`).
pub fn load_dir(dir: &Path) -> Result<Stage> {
    let kind =
        shortlist_model::files::manifest_kind(dir).map_err(|e| Error::Load(e.to_string()))?;
    match kind.as_str() {
        shortlist_model::artifact::RANKING_KIND => Ok(Stage::Ranking(RankingStage::load(dir)?)),
        other => Ok(Stage::Source(ModelSource::load(dir, other)?)),
    }
}

/// [`load_dir`] from opened model files: a directory, or one held in memory (a
/// model of a [`shortlist_model::bundle`]).
pub fn load_files(files: &shortlist_model::files::ModelFiles) -> Result<Stage> {
    let kind = files.kind().map_err(|e| Error::Load(e.to_string()))?;
    match kind.as_str() {
        shortlist_model::artifact::RANKING_KIND => {
            Ok(Stage::Ranking(RankingStage::load_from(files)?))
        }
        other => Ok(Stage::Source(ModelSource::load_from(files, other)?)),
    }
}

/// The highest integer version directory under `model_dir` (TensorFlow Serving's
/// layout `BASE/<model>/<version>/`), if any.
pub fn latest_version(model_dir: &Path) -> Result<Option<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(model_dir)
        .map_err(|e| Error::Load(format!("{}: {e}", model_dir.display())))?;
    let mut best: Option<(u64, PathBuf)> = None;
    for e in entries.flatten() {
        let Some(v) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if e.path().is_dir() && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, e.path()));
        }
    }
    Ok(best)
}
