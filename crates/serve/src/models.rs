//! The real models behind the [`Servable`] traits: a retrieval model (two towers +
//! exact top-K index) and a ranking model, loaded from the model directories that
//! `shortlist train` writes. [`load_model_dir`] is the server's [`crate::Loader`].
//!
//! Everything that does not depend on the request is computed at load time, off the
//! request path: every user's query vector, the index over every candidate vector,
//! the popularity fallback list, and title → item lookups.

use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;
use shortlist_index::{AnyIndex, ExactIndex, Filter, TopKIndex};
use shortlist_model::{RankingModel, RetrievalModel, Scratch};

use crate::error::ApiError;
use crate::servable::{
    predict_with_ranker, predict_with_retriever, ranking_signature, retrieval_signature, Candidate,
    ModelKind, Ranked, Ranker, Retrieved, Retriever, Servable,
};

/// How many items a TF-Serving `:predict` on a retrieval model returns.
pub const PREDICT_K: usize = 10;

/// A retrieval model ready to answer requests.
pub struct RetrievalServable {
    model: RetrievalModel,
    titles: Vec<String>,
    queries: Vec<f32>,
    index: AnyIndex,
    popular: Vec<u32>,
    oov_rows: Vec<u32>,
}

impl RetrievalServable {
    /// Loads a retrieval model directory (and its saved index, if any).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let (model, titles) = RetrievalModel::load(dir).map_err(|e| e.to_string())?;
        // The index saved at training time (exact or HNSW, memory-mapped), else an exact
        // index built now.
        let index = match AnyIndex::load_dir(dir).map_err(|e| e.to_string())? {
            Some(index) => {
                if index.dim() != model.dim() || index.len() != model.num_items() {
                    return Err(format!(
                        "{}: the saved index ({} items × {}) does not match the model ({} items × {})",
                        dir.display(),
                        index.len(),
                        index.dim(),
                        model.num_items(),
                        model.dim()
                    ));
                }
                index
            }
            None => AnyIndex::Exact(
                ExactIndex::new(model.all_candidates(), model.dim()).map_err(|e| e.to_string())?,
            ),
        };
        let oov_rows: Vec<u32> = (0..model.spec.item_id.num_oov()).collect();
        let mut popular: Vec<u32> =
            (model.spec.item_id.num_oov()..model.num_items() as u32).collect();
        popular.sort_by_key(|&i| (std::cmp::Reverse(model.popularity[i as usize]), i));
        Ok(RetrievalServable {
            queries: model.all_queries(),
            model,
            titles,
            index,
            popular,
            oov_rows,
        })
    }

    fn item_id(&self, row: u32) -> &str {
        self.model.spec.item_id.value(row).unwrap_or("")
    }
}

impl Servable for RetrievalServable {
    fn kind(&self) -> ModelKind {
        ModelKind::Retrieval
    }

    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        predict_with_retriever(self, PREDICT_K, instances)
    }

    fn signature(&self) -> Value {
        retrieval_signature(PREDICT_K)
    }

    fn as_retrieval(&self) -> Option<&dyn Retriever> {
        Some(self)
    }
}

impl Retriever for RetrievalServable {
    fn retrieve<'a>(
        &'a self,
        user_id: &str,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> Result<Retrieved<'a>, ApiError> {
        let excluded_rows = exclude_items
            .iter()
            .filter_map(|id| self.model.spec.item_id.get(id));
        let Some(user) = self.model.spec.user_id.get(user_id) else {
            // Unknown user: the most popular items, flagged.
            let skip: Vec<u32> = excluded_rows.collect();
            let total = self
                .model
                .popularity
                .iter()
                .map(|&c| c as f32)
                .sum::<f32>()
                .max(1.0);
            let candidates = self
                .popular
                .iter()
                .filter(|i| !skip.contains(i))
                .take(k)
                .map(|&i| Candidate {
                    item_id: self.item_id(i),
                    score: self.model.popularity[i as usize] as f32 / total,
                })
                .collect();
            return Ok(Retrieved {
                candidates,
                known_user: false,
            });
        };
        let mut exclude: Vec<u32> = self.oov_rows.clone();
        if exclude_seen {
            exclude.extend_from_slice(self.model.seen_items(user));
        }
        exclude.extend(excluded_rows);
        let d = self.model.dim();
        let q = &self.queries[user as usize * d..(user as usize + 1) * d];
        let hits = self
            .index
            .search(q, k, &Filter::Exclude(&exclude))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Retrieved {
            candidates: hits
                .iter()
                .map(|h| Candidate {
                    item_id: self.item_id(h.item),
                    score: h.score,
                })
                .collect(),
            known_user: true,
        })
    }

    fn item_title(&self, item_id: &str) -> Option<&str> {
        let row = self.model.spec.item_id.get(item_id)?;
        self.titles
            .get(row as usize)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }
}

/// A ranking model ready to answer requests.
pub struct RankingServable {
    model: RankingModel,
    by_title: FxHashMap<String, String>,
}

impl RankingServable {
    /// Loads a ranking model directory (titles from its `items.tsv`, if present).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let model = RankingModel::load(dir).map_err(|e| e.to_string())?;
        let titles = shortlist_model::retrieval_artifact::read_titles(dir, model.num_items())
            .map_err(|e| e.to_string())?;
        let by_title = titles
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty())
            .filter_map(|(row, t)| {
                Some((t.clone(), model.spec.item_id.value(row as u32)?.to_owned()))
            })
            .collect();
        Ok(RankingServable { model, by_title })
    }
}

impl Servable for RankingServable {
    fn kind(&self) -> ModelKind {
        ModelKind::Ranking
    }

    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError> {
        predict_with_ranker(self, instances)
    }

    fn signature(&self) -> Value {
        ranking_signature()
    }

    fn as_ranking(&self) -> Option<&dyn Ranker> {
        Some(self)
    }
}

impl Ranker for RankingServable {
    fn rank(&self, user_id: &str, item_ids: &[&str]) -> Result<Ranked, ApiError> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
        }
        let spec = &self.model.spec;
        let user = spec.user_id.index(user_id);
        let mut out = Ranked {
            scores: vec![0.0; item_ids.len()],
            known_user: !spec.user_id.is_oov(user),
            unknown_items: Vec::new(),
        };
        let users = vec![user; item_ids.len()];
        let mut items = Vec::with_capacity(item_ids.len());
        for (k, id) in item_ids.iter().enumerate() {
            // An id, or a title (the seeds send `movie_title`).
            let row = match spec.item_id.get(id) {
                Some(r) => r,
                None => spec
                    .item_id
                    .index(self.by_title.get(*id).map(String::as_str).unwrap_or(id)),
            };
            if spec.item_id.is_oov(row) {
                out.unknown_items.push(k);
            }
            items.push(row);
        }
        // One batched pass (GEMMs over every candidate) instead of one pass per item.
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self
                .model
                .predict_batch_with(&users, &items, &mut s, &mut out.scores),
            Err(_) => self.model.predict_batch_with(
                &users,
                &items,
                &mut Scratch::default(),
                &mut out.scores,
            ),
        });
        Ok(out)
    }
}

/// Loads one model version directory, whatever its kind (read from `manifest.json`).
pub fn load_model_dir(dir: &Path) -> Result<Arc<dyn Servable>, String> {
    let manifest = dir.join("manifest.json");
    let kind = shortlist_model::files::manifest_kind(dir).map_err(|e| e.to_string())?;
    match kind.as_str() {
        "retrieval" => Ok(Arc::new(RetrievalServable::load(dir)?)),
        "ranking" => Ok(Arc::new(RankingServable::load(dir)?)),
        other => Err(format!(
            "{}: unknown model kind {other:?}",
            manifest.display()
        )),
    }
}
