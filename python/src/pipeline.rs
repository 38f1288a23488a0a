//! `Pipeline`: retrieve → rank → order, as `/v1/recommend` answers.

use std::path::PathBuf;

use numpy::PyArray1;
use pyo3::prelude::*;
use rayon::prelude::*;
use shortlist_cli::cmd::pipeline::Pipeline as CliPipeline;
use shortlist_pipeline::{HistoryItem, ModelSource, Order, RankingStage, Request, Rules, User};

use crate::model::Model;
use crate::{bad, py_err};

/// Retrieve → rank → order, through `shortlist_pipeline::recommend`: the lists
/// `POST /v1/recommend` answers for the same models.
#[pyclass(module = "shortlist._shortlist")]
pub struct Pipeline {
    inner: CliPipeline,
}

#[pymethods]
impl Pipeline {
    /// A pipeline of a candidate model and (optionally) a ranking model.
    #[new]
    #[pyo3(signature = (retrieval, ranking = None))]
    fn new(py: Python<'_>, retrieval: &Model, ranking: Option<&Model>) -> PyResult<Self> {
        if retrieval.kind == "ranking" {
            return Err(bad("retrieval: a ranking model cannot produce candidates"));
        }
        if let Some(r) = ranking {
            if r.kind != "ranking" {
                return Err(bad(format!(
                    "ranking: not a ranking model (a {} model)",
                    r.kind
                )));
            }
        }
        let (rdir, rkind) = (retrieval.dir.clone(), retrieval.kind.clone());
        let kdir = ranking.map(|r| r.dir.clone());
        let inner = py
            .detach(|| -> anyhow::Result<CliPipeline> {
                let source = ModelSource::load(&rdir, &rkind)?;
                let ranker = match kdir {
                    Some(d) => Some(("ranking".to_owned(), d.clone(), RankingStage::load(&d)?)),
                    None => None,
                };
                Ok(CliPipeline {
                    primary: (rkind.clone(), rdir.clone(), source),
                    extra: Vec::new(),
                    ranker,
                })
            })
            .map_err(py_err)?;
        Ok(Pipeline { inner })
    }

    /// Loads the served models of a base directory (`BASE/retrieval/N/`,
    /// `BASE/ranking/N/`, the latest versions), as `shortlist recommend --pipeline`.
    #[staticmethod]
    fn load(py: Python<'_>, base: PathBuf) -> PyResult<Self> {
        let args = shortlist_cli::cmd::pipeline::PipelineArgs {
            base: &base,
            retrieval: "retrieval",
            ranking: "ranking",
            sources: &[],
        };
        let inner = py.detach(|| CliPipeline::load(&args)).map_err(py_err)?;
        Ok(Pipeline { inner })
    }

    /// Each user's list as `/v1/recommend` answers it: `(user_ids, item_ids,
    /// retrieval_scores, ranking_scores, predicted_ratings, order_by, titles)`
    /// flattened (NaN where a stage gave no score; `""`: no title).
    ///
    /// `histories`: per user (aligned with `user_ids`), items the user interacted
    /// with beyond training (the request's `"history"`); `exclude_items`: items left
    /// out of every list; `filter`, `max_per`, `freshness`: the business rules of
    /// `/v1/recommend` as JSON text, checked with the server's messages.
    #[pyo3(signature = (user_ids, k = 10, num_candidates = 100, exclude_seen = true, histories = None, exclude_items = None, filter = None, max_per = None, freshness = None))]
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        user_ids: Vec<String>,
        k: usize,
        num_candidates: usize,
        exclude_seen: bool,
        histories: Option<Vec<Vec<String>>>,
        exclude_items: Option<Vec<String>>,
        filter: Option<String>,
        max_per: Option<String>,
        freshness: Option<String>,
    ) -> PyResult<(
        Vec<String>,
        Vec<String>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<f32>>,
        Vec<String>,
        Vec<String>,
    )> {
        if k == 0 {
            return Err(bad("k: expected at least 1"));
        }
        if let Some(h) = &histories {
            if h.len() != user_ids.len() {
                return Err(bad(format!(
                    "histories: expected one per user ({}), got {}",
                    user_ids.len(),
                    h.len()
                )));
            }
        }
        let json = |name: &str, text: &Option<String>| -> PyResult<Option<serde_json::Value>> {
            text.as_deref()
                .map(|t| {
                    serde_json::from_str(t)
                        .map_err(|e| bad(format!("{name}: not valid JSON ({e})")))
                })
                .transpose()
        };
        let (filter, max_per, freshness) = (
            json("filter", &filter)?,
            json("max_per", &max_per)?,
            json("freshness", &freshness)?,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let rules = Rules::parse(filter.as_ref(), max_per.as_ref(), freshness.as_ref(), now)
            .map_err(|e| bad(e.to_string()))?;
        let exclude: Vec<&str> = exclude_items.iter().flatten().map(String::as_str).collect();
        let cols = py
            .detach(|| -> anyhow::Result<_> {
                let stages = self.inner.stages(&[], true);
                let mut c = (
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                );
                // One request per user, as the server answers them, on every core.
                let lists = user_ids
                    .par_iter()
                    .enumerate()
                    .map(|(n, u)| {
                        let history: Vec<HistoryItem<'_>> = histories
                            .as_ref()
                            .map(|h| {
                                h[n].iter()
                                    .map(|item_id| HistoryItem {
                                        item_id,
                                        strength: 1.0,
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        shortlist_pipeline::recommend_with(
                            &stages,
                            &Request {
                                user: User {
                                    id: u,
                                    history: &history,
                                },
                                k,
                                num_candidates: num_candidates.max(k),
                                exclude_seen,
                                exclude_items: &exclude,
                                order: Order::Auto,
                            },
                            &rules,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for (u, r) in user_ids.iter().zip(lists) {
                    for i in r.items {
                        c.0.push(u.clone());
                        c.1.push(i.item_id.to_owned());
                        c.2.push(i.retrieval_score);
                        c.3.push(i.ranking_score.unwrap_or(f32::NAN));
                        c.4.push(i.predicted_rating.unwrap_or(f32::NAN));
                        c.5.push(r.order.as_str().to_owned());
                        c.6.push(i.title.unwrap_or("").to_owned());
                    }
                }
                Ok(c)
            })
            .map_err(py_err)?;
        Ok((
            cols.0,
            cols.1,
            PyArray1::from_vec(py, cols.2),
            PyArray1::from_vec(py, cols.3),
            PyArray1::from_vec(py, cols.4),
            cols.5,
            cols.6,
        ))
    }
}
