//! Candidate sources: the first stage. A [`CandidateSource`] returns a user's top
//! items and scores given items; [`ModelSource`] implements it for every model kind
//! that can rank a whole catalogue — the two-tower retrieval model and iALS (query
//! vector · item vectors, through the index saved with the model) and EASE (its
//! item–item weights, scored densely).
//!
//! Everything that does not depend on the request is computed at load time: every
//! known user's query vector, the index, the popularity fallback order.

use std::path::Path;

use shortlist_features::FeatureSpec;
use shortlist_index::{AnyIndex, ExactIndex, Filter, TopKIndex};
use shortlist_model::implicit::{EASE_KIND, IALS_KIND};
use shortlist_model::retrieval_artifact::{read_titles, RETRIEVAL_KIND};
use shortlist_model::{Csr, EaseModel, IalsModel, RetrievalModel};

use crate::error::{Error, Result};

/// One retrieved candidate. The id borrows from the model, so retrieval allocates no
/// string per candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    /// The raw item id (as in the training data).
    pub item_id: &'a str,
    /// The source's score (higher is better), e.g. a dot product.
    pub score: f32,
}

/// The answer of [`CandidateSource::retrieve`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retrieved<'a> {
    /// Candidates, best first.
    pub candidates: Vec<Candidate<'a>>,
    /// `false` when the user id is unknown to the model: the candidates are then the
    /// most popular items (scored by their share of training interactions).
    pub known_user: bool,
}

/// First stage: top candidates for a user, and scores of given items.
pub trait CandidateSource: Send + Sync {
    /// The model kind (`retrieval`, `ease`, `ials`), for answers and logs.
    fn kind(&self) -> &'static str;

    /// Up to `k` candidates for `user_id`, best first, leaving out the items the user
    /// interacted with in training when `exclude_seen` is set and every id in
    /// `exclude_items`. Unknown users get the popularity fallback with
    /// [`Retrieved::known_user`] `false` (not an error).
    fn retrieve<'a>(
        &'a self,
        user_id: &str,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> Result<Retrieved<'a>>;

    /// The source's score of each of `item_ids` for `user_id` into `out` (same
    /// length); NaN for an item or a user the model does not know.
    fn score_items(&self, user_id: &str, item_ids: &[&str], out: &mut [f32]);

    /// The display title of an item, if the model ships item metadata.
    fn item_title(&self, item_id: &str) -> Option<&str>;
}

/// How a [`ModelSource`] scores.
enum Scorer {
    /// `query(user) · candidate(item)` through an index (two towers).
    TwoTower {
        model: RetrievalModel,
        queries: Vec<f32>,
        index: AnyIndex,
    },
    /// `x_user · y_item` through an index (iALS).
    Ials { model: IalsModel, index: AnyIndex },
    /// `Σ_{i ∈ seen(user)} B[i][item]`, dense.
    Ease { model: EaseModel },
}

/// A candidate source backed by a saved model of any candidate kind.
pub struct ModelSource {
    scorer: Scorer,
    titles: Vec<String>,
    /// Item rows by training popularity, most popular first (OOV rows left out).
    popular: Vec<u32>,
    popularity_total: f32,
}

impl ModelSource {
    /// Loads a model directory of kind `retrieval`, `ease` or `ials` (with its saved
    /// index, if any; else an exact index is built).
    pub fn load(dir: &Path, kind: &str) -> Result<Self> {
        let err = |e: &dyn std::fmt::Display| Error::Load(e.to_string());
        let scorer = match kind {
            RETRIEVAL_KIND => {
                let (model, _) = RetrievalModel::load(dir).map_err(|e| err(&e))?;
                let index = load_index(
                    dir,
                    || model.all_candidates(),
                    model.dim(),
                    model.num_items(),
                )?;
                Scorer::TwoTower {
                    queries: model.all_queries(),
                    model,
                    index,
                }
            }
            IALS_KIND => {
                let model = IalsModel::load(dir).map_err(|e| err(&e))?;
                let index = load_index(
                    dir,
                    || model.item_factors.data().to_vec(),
                    model.dim(),
                    model.num_items(),
                )?;
                Scorer::Ials { model, index }
            }
            EASE_KIND => Scorer::Ease {
                model: EaseModel::load(dir).map_err(|e| err(&e))?,
            },
            other => {
                return Err(Error::Load(format!(
                    "{}: a {other} model is not a candidate source",
                    dir.display()
                )))
            }
        };
        Self::new(scorer, dir)
    }

    fn new(scorer: Scorer, dir: &Path) -> Result<Self> {
        let mut s = ModelSource {
            scorer,
            titles: Vec::new(),
            popular: Vec::new(),
            popularity_total: 1.0,
        };
        s.titles = read_titles(dir, s.num_items()).map_err(|e| Error::Load(e.to_string()))?;
        let (oov, pop) = (s.spec().item_id.num_oov(), s.popularity());
        let mut popular: Vec<u32> = (oov..pop.len() as u32).collect();
        popular.sort_by_key(|&i| (std::cmp::Reverse(pop[i as usize]), i));
        s.popularity_total = pop.iter().map(|&c| c as f32).sum::<f32>().max(1.0);
        s.popular = popular;
        Ok(s)
    }

    /// The model's vocabularies.
    pub fn spec(&self) -> &FeatureSpec {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => &model.spec,
            Scorer::Ials { model, .. } => &model.spec,
            Scorer::Ease { model } => &model.spec,
        }
    }

    fn popularity(&self) -> &[u32] {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => &model.popularity,
            Scorer::Ials { model, .. } => &model.popularity,
            Scorer::Ease { model } => &model.popularity,
        }
    }

    /// Each user row's training item rows.
    pub fn seen(&self) -> &Csr {
        match &self.scorer {
            Scorer::TwoTower { model, .. } => &model.seen,
            Scorer::Ials { model, .. } => &model.seen,
            Scorer::Ease { model } => &model.seen,
        }
    }

    /// Number of item rows (vocabulary, OOV slots included).
    pub fn num_items(&self) -> usize {
        self.popularity().len()
    }

    fn item_id(&self, row: u32) -> &str {
        self.spec().item_id.value(row).unwrap_or("")
    }

    /// The user's row, if known.
    fn user_row(&self, user_id: &str) -> Option<u32> {
        self.spec().user_id.get(user_id)
    }

    /// Scores of item rows `items` for known user row `user`.
    fn score_rows(&self, user: u32, items: &[u32], out: &mut [f32]) {
        match &self.scorer {
            Scorer::TwoTower { model, queries, .. } => {
                let d = model.dim();
                let q = &queries[user as usize * d..(user as usize + 1) * d];
                let mut c = vec![0f32; d];
                for (o, &i) in out.iter_mut().zip(items) {
                    model.candidate_into(i, &mut c);
                    *o = dot(q, &c);
                }
            }
            Scorer::Ials { model, .. } => {
                let x = model.user_factors.row(user as usize);
                for (o, &i) in out.iter_mut().zip(items) {
                    *o = dot(x, model.item_factors.row(i as usize));
                }
            }
            Scorer::Ease { model } => model.score_items(model.seen.row(user as usize), items, out),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The index saved with a model (checked against it), else an exact one over
/// `items()` (built only then).
fn load_index(
    dir: &Path,
    items: impl FnOnce() -> Vec<f32>,
    dim: usize,
    n: usize,
) -> Result<AnyIndex> {
    match AnyIndex::load_dir(dir).map_err(|e| Error::Load(e.to_string()))? {
        Some(index) => {
            if index.dim() != dim || index.len() != n {
                return Err(Error::Load(format!(
                    "{}: the saved index ({} items × {}) does not match the model ({n} items × {dim})",
                    dir.display(),
                    index.len(),
                    index.dim(),
                )));
            }
            Ok(index)
        }
        None => Ok(AnyIndex::Exact(
            ExactIndex::new(items(), dim).map_err(|e| Error::Load(e.to_string()))?,
        )),
    }
}

impl CandidateSource for ModelSource {
    fn kind(&self) -> &'static str {
        match &self.scorer {
            Scorer::TwoTower { .. } => RETRIEVAL_KIND,
            Scorer::Ials { .. } => IALS_KIND,
            Scorer::Ease { .. } => EASE_KIND,
        }
    }

    fn retrieve<'a>(
        &'a self,
        user_id: &str,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> Result<Retrieved<'a>> {
        let spec = self.spec();
        let excluded_rows = exclude_items.iter().filter_map(|id| spec.item_id.get(id));
        let Some(user) = self.user_row(user_id) else {
            // Unknown user: the most popular items, flagged.
            let mut skip: Vec<u32> = excluded_rows.collect();
            skip.sort_unstable();
            let pop = self.popularity();
            let candidates = self
                .popular
                .iter()
                .filter(|i| skip.binary_search(i).is_err())
                .take(k)
                .map(|&i| Candidate {
                    item_id: self.item_id(i),
                    score: pop[i as usize] as f32 / self.popularity_total,
                })
                .collect();
            return Ok(Retrieved {
                candidates,
                known_user: false,
            });
        };
        let mut exclude: Vec<u32> = (0..spec.item_id.num_oov()).collect();
        if exclude_seen {
            exclude.extend_from_slice(self.seen().row(user as usize));
        }
        exclude.extend(excluded_rows);
        let hits: Vec<(u32, f32)> = match &self.scorer {
            Scorer::TwoTower {
                model,
                queries,
                index,
            } => {
                let d = model.dim();
                let q = &queries[user as usize * d..(user as usize + 1) * d];
                search(index, q, k, &exclude)?
            }
            Scorer::Ials { model, index } => {
                search(index, model.user_factors.row(user as usize), k, &exclude)?
            }
            Scorer::Ease { model } => {
                let mut scores = vec![0f32; model.num_items()];
                model.scores_into(model.seen.row(user as usize), &mut scores);
                for &e in &exclude {
                    if let Some(s) = scores.get_mut(e as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
                top_k(&scores, k)
            }
        };
        Ok(Retrieved {
            candidates: hits
                .into_iter()
                .map(|(item, score)| Candidate {
                    item_id: self.item_id(item),
                    score,
                })
                .collect(),
            known_user: true,
        })
    }

    fn score_items(&self, user_id: &str, item_ids: &[&str], out: &mut [f32]) {
        let Some(user) = self.user_row(user_id) else {
            out.iter_mut().for_each(|o| *o = f32::NAN);
            return;
        };
        let spec = self.spec();
        let rows: Vec<u32> = item_ids
            .iter()
            .map(|id| spec.item_id.get(id).unwrap_or(u32::MAX))
            .collect();
        let known: Vec<u32> = rows.iter().copied().filter(|&r| r != u32::MAX).collect();
        let mut scores = vec![0f32; known.len()];
        self.score_rows(user, &known, &mut scores);
        let mut next = scores.into_iter();
        for (o, &r) in out.iter_mut().zip(&rows) {
            *o = if r == u32::MAX {
                f32::NAN
            } else {
                next.next().unwrap_or(f32::NAN)
            };
        }
    }

    fn item_title(&self, item_id: &str) -> Option<&str> {
        let row = self.spec().item_id.get(item_id)?;
        self.titles
            .get(row as usize)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }
}

fn search(index: &AnyIndex, q: &[f32], k: usize, exclude: &[u32]) -> Result<Vec<(u32, f32)>> {
    Ok(index
        .search(q, k, &Filter::Exclude(exclude))
        .map_err(|e| Error::Internal(e.to_string()))?
        .into_iter()
        .map(|h| (h.item, h.score))
        .collect())
}

/// The `k` best finite scores, best first (ties: lower row first).
fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut all: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .map(|(i, &s)| (i as u32, s))
        .collect();
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if all.len() > k && k > 0 {
        all.select_nth_unstable_by(k - 1, better);
    }
    all.truncate(k);
    all.sort_unstable_by(better);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_row_and_skips_excluded() {
        let s = [0.5, f32::NEG_INFINITY, 0.9, 0.5, 0.1];
        assert_eq!(top_k(&s, 3), vec![(2, 0.9), (0, 0.5), (3, 0.5)]);
        assert_eq!(top_k(&s, 10).len(), 4);
        assert!(top_k(&s, 0).is_empty());
    }
}
