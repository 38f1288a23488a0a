//! The models of a bundle and the JSON requests they answer, in plain Rust (no
//! `wasm-bindgen` types), so that the native tests run exactly what the browser
//! runs.
//!
//! The request and answer bodies are those of the server's `/v1/recommend` and
//! `/v1/rank` (README, "Serving"), less what needs the server: no event log (a
//! history entry's `event` name is refused: give a `strength`), no
//! `candidate_sources` and no model names (the bundle holds one candidate model,
//! `retrieval`, and optionally one ranking model, `ranking`).

use std::sync::Arc;

use serde::Deserialize;
use shortlist_model::bundle;
use shortlist_pipeline::{
    history_strength, load_files, recommend, CandidateSource, HistoryItem, Limits, ModelSource,
    Order, RankAnswer, Ranker, RankingStage, RecommendAnswer, Request, Stage, Stages, User,
};

/// Largest `k` accepted (the server's default `--max-k`).
pub const MAX_K: usize = 1000;
/// Largest `num_candidates`, history, `exclude_items` or `item_ids` length (the
/// server's default limit).
pub const MAX_ITEMS: usize = 10_000;
/// `num_candidates` when the request has none (the server's default).
pub const DEFAULT_NUM_CANDIDATES: usize = 100;

/// The limits a request is checked against (the server's defaults).
const LIMITS: Limits = Limits {
    max_k: MAX_K,
    max_items: MAX_ITEMS,
    default_num_candidates: DEFAULT_NUM_CANDIDATES,
};

/// The models of one bundle, ready to answer.
pub struct Engine {
    source: ModelSource,
    ranker: Option<RankingStage>,
}

/// An id given as a JSON string or integer (as the server accepts).
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Id::Text(s) => s.as_str().into(),
            Id::Number(n) => n.to_string().into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullEntry {
    item_id: Id,
    #[serde(default)]
    strength: Option<f64>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HistoryEntry {
    Id(Id),
    Full(FullEntry),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendBody {
    #[serde(default)]
    user_id: Option<Id>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
    #[serde(default)]
    k: Option<u64>,
    #[serde(default)]
    num_candidates: Option<u64>,
    #[serde(default)]
    exclude_seen: Option<bool>,
    #[serde(default)]
    exclude_items: Vec<Id>,
    #[serde(default)]
    order_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RankBody {
    #[serde(default)]
    user_id: Option<Id>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
    item_ids: Vec<Id>,
}

/// The pipeline's history from a request's entries; errors name the entry.
fn history(entries: &[HistoryEntry]) -> Result<Vec<(String, f32)>, String> {
    LIMITS
        .list("history", "items", entries.len())
        .map_err(|e| e.to_string())?;
    entries
        .iter()
        .enumerate()
        .map(|(n, e)| match e {
            HistoryEntry::Id(id) => Ok((id.text().into_owned(), 1.0)),
            HistoryEntry::Full(o) => {
                if o.event.is_some() {
                    return Err(format!(
                        "history[{n}].event is not available in the browser (no event table): give a strength"
                    ));
                }
                let _ = o.timestamp;
                let strength = match o.strength {
                    Some(s) => history_strength(n, s).map_err(|e| e.to_string())?,
                    None => 1.0,
                };
                Ok((o.item_id.text().into_owned(), strength))
            }
        })
        .collect()
}

/// The pipeline's view of a history made by [`history`].
fn history_items(owned: &[(String, f32)]) -> Vec<HistoryItem<'_>> {
    owned
        .iter()
        .map(|(id, s)| HistoryItem {
            item_id: id,
            strength: *s,
        })
        .collect()
}

fn parse<'a, T: Deserialize<'a>>(body: &'a str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| format!("Malformed request body: {e}"))
}

impl Engine {
    /// Loads the models of a bundle: `retrieval` (any candidate model kind) and,
    /// when present, `ranking`. Every file is checked against its manifest.
    pub fn from_bundle(bytes: &[u8]) -> Result<Self, String> {
        let files = Arc::new(bundle::unpack(bytes).map_err(|e| e.to_string())?);
        let retrieval = bundle::open(&files, "retrieval").map_err(|e| e.to_string())?;
        let source = match load_files(&retrieval).map_err(|e| e.to_string())? {
            Stage::Source(s) => s,
            Stage::Ranking(_) => {
                return Err("bundle/retrieval: a ranking model, expected a candidate model".into())
            }
        };
        let has_ranking = files.keys().any(|k| k.starts_with("ranking/"));
        let ranker = if has_ranking {
            let ranking = bundle::open(&files, "ranking").map_err(|e| e.to_string())?;
            match load_files(&ranking).map_err(|e| e.to_string())? {
                Stage::Ranking(r) => Some(r),
                Stage::Source(_) => {
                    return Err(
                        "bundle/ranking: a candidate model, expected a ranking model".into(),
                    )
                }
            }
        } else {
            None
        };
        Ok(Engine { source, ranker })
    }

    /// Item ids and titles of the candidate model, in row order (OOV rows left
    /// out), as a JSON array of `[item_id, title]` pairs.
    pub fn items_json(&self) -> String {
        let spec = self.source.spec();
        let items: Vec<(&str, &str)> = (spec.item_id.num_oov()..self.source.num_items() as u32)
            .filter_map(|row| {
                let id = spec.item_id.value(row)?;
                Some((id, self.source.item_title(id).unwrap_or("")))
            })
            .collect();
        serde_json::to_string(&items).unwrap_or_else(|_| "[]".into())
    }

    /// `/v1/recommend` (see the module documentation): a JSON body in, the JSON
    /// answer out; errors say which field is wrong.
    pub fn recommend_json(&self, body: &str) -> Result<String, String> {
        let req: RecommendBody = parse(body)?;
        let (k, num_candidates) = LIMITS
            .counts(req.k, req.num_candidates)
            .map_err(|e| e.to_string())?;
        LIMITS
            .list("exclude_items", "ids", req.exclude_items.len())
            .map_err(|e| e.to_string())?;
        let order =
            Order::parse(req.order_by.as_deref().unwrap_or("auto")).map_err(|e| e.to_string())?;
        let user_id = req.user_id.as_ref().map(Id::text).unwrap_or_default();
        let owned = history(&req.history)?;
        let hist = history_items(&owned);
        let exclude_owned: Vec<_> = req.exclude_items.iter().map(Id::text).collect();
        let exclude: Vec<&str> = exclude_owned.iter().map(|s| s.as_ref()).collect();
        let stages = Stages {
            primary: &self.source,
            extra: &[],
            ranker: self.ranker.as_ref().map(|r| r as &dyn Ranker),
        };
        let rec = recommend(
            &stages,
            &Request {
                user: User {
                    id: &user_id,
                    history: &hist,
                },
                k,
                num_candidates,
                exclude_seen: req.exclude_seen.unwrap_or(true),
                exclude_items: &exclude,
                order,
            },
        )
        .map_err(|e| e.to_string())?;
        let answer = RecommendAnswer::new(&user_id, &rec, None);
        serde_json::to_string(&answer).map_err(|e| format!("serializing the answer: {e}"))
    }

    /// `/v1/rank`: the ranking model's scores of the given items, best first (the
    /// relevance score with the candidate model's scores as its first input, when
    /// the model has a relevance head; else the predicted rating).
    pub fn rank_json(&self, body: &str) -> Result<String, String> {
        let Some(ranker) = &self.ranker else {
            return Err("the bundle has no ranking model".into());
        };
        let req: RankBody = parse(body)?;
        LIMITS
            .list("item_ids", "ids", req.item_ids.len())
            .map_err(|e| e.to_string())?;
        let user_id = req.user_id.as_ref().map(Id::text).unwrap_or_default();
        let owned = history(&req.history)?;
        let hist = history_items(&owned);
        let user = User {
            id: &user_id,
            history: &hist,
        };
        let ids_owned: Vec<_> = req.item_ids.iter().map(Id::text).collect();
        let ids: Vec<&str> = ids_owned.iter().map(|s| s.as_ref()).collect();
        let retrieval = ranker.has_relevance().then(|| {
            let mut s = vec![0f32; ids.len()];
            self.source.score_items(&user, &ids, &mut s);
            s
        });
        let ranked = ranker
            .rank(&user, &ids, retrieval.as_deref())
            .map_err(|e| e.to_string())?;
        let answer = RankAnswer::new(&user_id, &ranked, &ids, None).map_err(|e| e.to_string())?;
        serde_json::to_string(&answer).map_err(|e| format!("serializing the answer: {e}"))
    }
}
