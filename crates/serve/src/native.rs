//! The native endpoints: `/v1/recommend` (retrieve, then rank) and `/v1/rank`.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;
use axum::response::Response;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use shortlist_pipeline::{
    history_strength, CandidateSource, HistoryItem, Limits, Order, RankAnswer, Ranker,
    RecommendAnswer, Stages, User,
};

use crate::error::{json_response, ApiError};
use crate::events::EventTable;
use crate::registry::Snapshot;
use crate::AppState;

/// An id given as a JSON string or integer; borrows from the body when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or integer id")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Id(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendRequest<'a> {
    #[serde(borrow)]
    user_id: Id<'a>,
    k: Option<u64>,
    num_candidates: Option<u64>,
    exclude_seen: Option<bool>,
    #[serde(borrow, default)]
    exclude_items: Vec<Id<'a>>,
    #[serde(borrow)]
    retrieval_model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ranking_model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    order_by: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    candidate_sources: std::collections::BTreeMap<Cow<'a, str>, u64>,
    #[serde(borrow, default)]
    history: Vec<HistoryEntry<'a>>,
    filter: Option<Value>,
    max_per: Option<Value>,
    freshness: Option<Value>,
}

/// One history entry: an item id, or `{"item_id", "strength"?, "event"?,
/// "timestamp"?}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum HistoryEntry<'a> {
    Id(#[serde(borrow)] Id<'a>),
    Full(#[serde(borrow)] HistoryObject<'a>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryObject<'a> {
    #[serde(borrow)]
    item_id: Id<'a>,
    strength: Option<f64>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RankRequest<'a> {
    #[serde(borrow)]
    user_id: Id<'a>,
    #[serde(borrow)]
    item_ids: Vec<Id<'a>>,
    #[serde(borrow)]
    ranking_model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    retrieval_model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    history: Vec<HistoryEntry<'a>>,
    filter: Option<Value>,
}

/// What a request field must hold, for error messages.
#[derive(Clone, Copy)]
enum Kind {
    Id,
    Count,
    Bool,
    Name,
    IdList,
    Order,
    Quotas,
    History,
    /// Checked with its meaning by `shortlist_pipeline::Rules::parse`.
    Rule,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        let is_id = |v: &Value| v.is_string() || v.is_i64() || v.is_u64();
        match self {
            Kind::Id => is_id(v),
            Kind::Count => v.is_u64() || v.is_null(),
            Kind::Bool => v.is_boolean() || v.is_null(),
            Kind::Name => v.is_string() || v.is_null(),
            Kind::IdList => v.as_array().is_some_and(|a| a.iter().all(is_id)),
            Kind::Order => v.is_null() || v.as_str().is_some_and(|s| Order::parse(s).is_ok()),
            Kind::Rule => true,
            Kind::Quotas => v
                .as_object()
                .is_some_and(|m| m.values().all(|q| q.is_u64())),
            Kind::History => v.as_array().is_some_and(|a| {
                a.iter().all(|e| {
                    is_id(e)
                        || e.as_object().is_some_and(|o| {
                            o.get("item_id").is_some_and(is_id)
                                && o.keys().all(|k| {
                                    ["item_id", "strength", "event", "timestamp"]
                                        .contains(&k.as_str())
                                })
                                && o.get("strength").is_none_or(Value::is_number)
                                && o.get("event").is_none_or(Value::is_string)
                                && o.get("timestamp").is_none_or(|t| t.is_i64() || t.is_u64())
                        })
                })
            }),
        }
    }
    fn expected(self) -> &'static str {
        match self {
            Kind::Id => "a string or integer id",
            Kind::Count => "a non-negative integer",
            Kind::Bool => "true or false",
            Kind::Name => "a model name (string)",
            Kind::IdList => "a list of string or integer ids",
            Kind::Order => "one of \"auto\", \"relevance\", \"rating\", \"retrieval\"",
            Kind::Quotas => "an object of model name → number of candidates",
            Kind::History => "a list of item ids or {\"item_id\", \"strength\", \"event\", \"timestamp\"} objects",
            Kind::Rule => "an object",
        }
    }
}

const RECOMMEND_FIELDS: &[(&str, Kind, bool)] = &[
    ("user_id", Kind::Id, true),
    ("k", Kind::Count, false),
    ("num_candidates", Kind::Count, false),
    ("exclude_seen", Kind::Bool, false),
    ("exclude_items", Kind::IdList, false),
    ("retrieval_model", Kind::Name, false),
    ("ranking_model", Kind::Name, false),
    ("order_by", Kind::Order, false),
    ("candidate_sources", Kind::Quotas, false),
    ("history", Kind::History, false),
    ("filter", Kind::Rule, false),
    ("max_per", Kind::Rule, false),
    ("freshness", Kind::Rule, false),
];

const RANK_FIELDS: &[(&str, Kind, bool)] = &[
    ("user_id", Kind::Id, true),
    ("item_ids", Kind::IdList, true),
    ("ranking_model", Kind::Name, false),
    ("retrieval_model", Kind::Name, false),
    ("history", Kind::History, false),
    ("filter", Kind::Rule, false),
];

/// Explains why a body did not deserialize, naming the field (slow path only).
fn explain(body: &[u8], fields: &[(&str, Kind, bool)], serde_err: serde_json::Error) -> ApiError {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return ApiError::invalid(format!("JSON Parse error: {e}")),
    };
    let Value::Object(map) = v else {
        return ApiError::invalid("Request body must be a JSON object");
    };
    for key in map.keys() {
        if !fields.iter().any(|(f, _, _)| f == key) {
            let names: Vec<&str> = fields.iter().map(|(f, _, _)| *f).collect();
            return ApiError::invalid(format!(
                "unknown field \"{key}\"; expected one of: {}",
                names.join(", ")
            ));
        }
    }
    for (name, kind, required) in fields {
        match map.get(*name) {
            None if *required => return ApiError::invalid(format!("missing field \"{name}\"")),
            None => {}
            Some(v) if !kind.accepts(v) => {
                return ApiError::invalid(format!(
                    "field \"{name}\" must be {}, got {v}",
                    kind.expected()
                ))
            }
            Some(_) => {}
        }
    }
    ApiError::invalid(format!("invalid request: {serde_err}"))
}

fn parse<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    fields: &[(&str, Kind, bool)],
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| explain(body, fields, e))
}

/// The user's history as the pipeline takes it: the `remembered` events, then the
/// request's entries; strengths from `strength`, else the `event`'s strength in the
/// table, else 1. Errors name the entry.
fn history<'a>(
    remembered: &'a [crate::events::Stored],
    entries: &'a [HistoryEntry<'a>],
    limits: &Limits,
    table: &EventTable,
) -> Result<Vec<HistoryItem<'a>>, ApiError> {
    limits.list("history", "items", entries.len())?;
    let request = entries
        .iter()
        .enumerate()
        .map(|(n, e)| match e {
            HistoryEntry::Id(id) => Ok(HistoryItem {
                item_id: &id.0,
                strength: 1.0,
            }),
            HistoryEntry::Full(o) => {
                let strength = match (o.strength, o.event.as_deref()) {
                    (Some(s), _) => history_strength(n, s)?,
                    (None, Some(ev)) => table.strength(ev).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "history[{n}].event must be one of {}, got {ev:?}",
                            table.names()
                        ))
                    })?,
                    (None, None) => 1.0,
                };
                if let Some(t) = o.timestamp {
                    if !(0..=MAX_TIMESTAMP).contains(&t) {
                        return Err(ApiError::invalid(format!(
                            "history[{n}].timestamp must be Unix seconds between 0 and {MAX_TIMESTAMP}, got {t}"
                        )));
                    }
                }
                Ok(HistoryItem {
                    item_id: &o.item_id.0,
                    strength,
                })
            }
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(with_remembered(remembered, request))
}

/// The server's limits on a request's counts and lists.
fn limits(cfg: &crate::ServeConfig) -> Limits {
    Limits {
        max_k: cfg.max_k,
        max_items: cfg.max_num_candidates,
        default_num_candidates: cfg.default_num_candidates,
    }
}

/// The server's clock in Unix seconds (for the freshness boost).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Latest accepted timestamp (year 3000).
const MAX_TIMESTAMP: i64 = 32_503_680_000;

/// The user's remembered events (`POST /v1/events`) followed by the request's
/// `history`: what the pipeline treats as the user's history beyond training.
fn with_remembered<'a>(
    remembered: &'a [crate::events::Stored],
    request: Vec<HistoryItem<'a>>,
) -> Vec<HistoryItem<'a>> {
    if remembered.is_empty() {
        return request;
    }
    let mut all: Vec<HistoryItem<'a>> = remembered
        .iter()
        .map(|e| HistoryItem {
            item_id: &e.item_id,
            strength: e.strength,
        })
        .collect();
    all.extend(request);
    all
}

fn respond<T: Serialize>(v: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(v)
        .map_err(|e| ApiError::Internal(format!("serializing a response: {e}")))?;
    Ok(json_response(StatusCode::OK, body))
}

/// The candidate source named `name` in `snap` (an error naming `field` otherwise).
fn source_named<'s>(
    snap: &'s Snapshot,
    name: &str,
    field: &str,
) -> Result<(&'s dyn CandidateSource, u64), ApiError> {
    let live = snap.servable(name, None)?;
    let source = live.servable.as_retrieval().ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "model \"{name}\" is a {} model, not a candidate source ({field})",
            live.servable.kind().as_str()
        ))
    })?;
    Ok((source, live.version))
}

/// The ranking model: an empty name disables it; a missing default model means none;
/// a missing model named in the request is an error.
fn ranker_named<'s>(
    snap: &'s Snapshot,
    name: &str,
    explicit: bool,
) -> Result<Option<(&'s dyn Ranker, u64)>, ApiError> {
    if name.is_empty() {
        return Ok(None);
    }
    let live = match snap.servable(name, None) {
        Ok(l) => l,
        Err(e) if explicit => return Err(e),
        Err(_) => return Ok(None),
    };
    let ranker = live.servable.as_ranking().ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "model \"{name}\" is a {} model, not a ranking model (ranking_model)",
            live.servable.kind().as_str()
        ))
    })?;
    Ok(Some((ranker, live.version)))
}

/// Brings every served candidate model up to date with the item changes
/// (`/v1/items`).
pub(crate) fn sync_items(st: &AppState) {
    if st.items.seq() == 0 {
        return;
    }
    let snap = st.registry.snapshot();
    for m in snap.models.values() {
        if let Some(source) = m.live.as_ref().and_then(|l| l.servable.as_retrieval()) {
            st.items.sync(source);
        }
    }
}

/// Checks item changes against the default retrieval model, when it is served
/// (features it knows, values of their types); errors name the entry.
pub(crate) fn check_items(
    st: &AppState,
    changes: &[shortlist_pipeline::ItemChange],
) -> Result<(), ApiError> {
    let snap = st.registry.snapshot();
    let Ok((source, _)) = source_named(&snap, &st.config.retrieval_model, "retrieval_model") else {
        return Ok(());
    };
    for (n, c) in changes.iter().enumerate() {
        source
            .check_item(c)
            .map_err(|e| ApiError::invalid(format!("items[{n}].{e}")))?;
    }
    Ok(())
}

/// `POST /v1/recommend`: the pipeline of `shortlist-pipeline`, as `shortlist eval
/// --pipeline` evaluates it.
pub(crate) fn recommend(st: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: RecommendRequest<'_> = parse(body, RECOMMEND_FIELDS)?;
    let cfg = &st.config;
    let limits = limits(cfg);
    let (k, num_candidates) = limits.counts(req.k, req.num_candidates)?;
    limits.list("exclude_items", "ids", req.exclude_items.len())?;
    let quota_total: u64 = req.candidate_sources.values().sum();
    if quota_total > cfg.max_num_candidates as u64 {
        return Err(ApiError::invalid(format!(
            "candidate_sources: {quota_total} candidates in all exceed the limit of {}",
            cfg.max_num_candidates
        )));
    }
    let order = Order::parse(req.order_by.as_deref().unwrap_or("auto"))?;
    let retrieval_name: &str = req
        .retrieval_model
        .as_deref()
        .unwrap_or(&cfg.retrieval_model);
    let ranking_name: &str = req.ranking_model.as_deref().unwrap_or(&cfg.ranking_model);
    let user_id: &str = &req.user_id.0;
    let exclude: Vec<&str> = req.exclude_items.iter().map(|i| i.0.as_ref()).collect();
    let remembered = st.events.history(user_id);
    let history = history(&remembered, &req.history, &limits, &cfg.event_table)?;
    let user = User {
        id: user_id,
        history: &history,
    };

    let snap = st.registry.snapshot();
    let (primary, primary_version) = source_named(&snap, retrieval_name, "retrieval_model")?;
    st.items.sync(primary);
    let mut versions: Vec<(&str, u64)> = vec![(retrieval_name, primary_version)];
    let mut extra: Vec<(&dyn CandidateSource, usize)> = Vec::new();
    for (name, &quota) in &req.candidate_sources {
        let (s, v) = source_named(&snap, name, "candidate_sources")?;
        st.items.sync(s);
        extra.push((s, quota as usize));
        versions.push((name, v));
    }
    let ranker = ranker_named(&snap, ranking_name, req.ranking_model.is_some())?;
    if let Some((_, v)) = ranker {
        versions.push((ranking_name, v));
    }
    let rules = shortlist_pipeline::Rules::parse(
        req.filter.as_ref(),
        req.max_per.as_ref(),
        req.freshness.as_ref(),
        unix_now(),
    )?;
    let rec = shortlist_pipeline::recommend_with(
        &Stages {
            primary,
            extra: &extra,
            ranker: ranker.map(|(r, _)| r),
        },
        &shortlist_pipeline::Request {
            user,
            k,
            num_candidates,
            exclude_seen: req.exclude_seen.unwrap_or(true),
            exclude_items: &exclude,
            order,
        },
        &rules,
    )?;
    respond(&RecommendAnswer::new(user_id, &rec, Some(&versions[..])))
}

/// `POST /v1/rank`: the ranking model's scores of given items, best first. With a
/// relevance head, `score` is the relevance score (the retrieval model's scores of the
/// items are its first input, when that model is served) and orders the answer;
/// otherwise `score` is the predicted rating.
pub(crate) fn rank(st: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: RankRequest<'_> = parse(body, RANK_FIELDS)?;
    let cfg = &st.config;
    let limits = limits(cfg);
    limits.list("item_ids", "ids", req.item_ids.len())?;
    let name: &str = req.ranking_model.as_deref().unwrap_or(&cfg.ranking_model);
    let snap = st.registry.snapshot();
    let Some((ranker, version)) = ranker_named(&snap, name, true)? else {
        return Err(ApiError::invalid("ranking_model must not be empty"));
    };
    // Retired items (DELETE /v1/items) are never returned.
    let mut ids: Vec<&str> = req
        .item_ids
        .iter()
        .map(|i| i.0.as_ref())
        .filter(|id| !st.items.is_retired(id))
        .collect();
    let retrieval_name: &str = req
        .retrieval_model
        .as_deref()
        .unwrap_or(&cfg.retrieval_model);
    if req.filter.as_ref().is_some_and(|f| !f.is_null()) {
        // The filter of /v1/recommend, over the retrieval model's item attributes:
        // items that do not pass are left out of the answer.
        let rules = shortlist_pipeline::Rules::parse(req.filter.as_ref(), None, None, unix_now())?;
        let (source, _) = source_named(&snap, retrieval_name, "retrieval_model")?;
        st.items.sync(source);
        let attrs = source.attributes();
        let ruled = rules.compile(attrs.as_deref(), source.kind())?;
        ids.retain(|id| ruled.admits(source.item_row(id)));
    }
    let user_id: &str = &req.user_id.0;
    let remembered = st.events.history(user_id);
    let history = history(&remembered, &req.history, &limits, &cfg.event_table)?;
    let user = User {
        id: user_id,
        history: &history,
    };
    let retrieval_scores = if ranker.has_relevance() {
        match source_named(&snap, retrieval_name, "retrieval_model") {
            Ok((source, _)) => {
                st.items.sync(source);
                let mut s = vec![0f32; ids.len()];
                source.score_items(&user, &ids, &mut s);
                Some(s)
            }
            Err(e) if req.retrieval_model.is_some() => return Err(e),
            Err(_) => None,
        }
    } else {
        None
    };
    let ranked = ranker.rank(&user, &ids, retrieval_scores.as_deref())?;
    let answer = RankAnswer::new(user_id, &ranked, &ids, Some(version))
        .map_err(|e| ApiError::Internal(format!("ranking model {name}: {e}")))?;
    respond(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_names_the_field() {
        let body = br#"{"user_id": "1", "k": "ten"}"#;
        let e = serde_json::from_slice::<RecommendRequest<'_>>(body)
            .err()
            .map(|e| explain(body, RECOMMEND_FIELDS, e));
        assert_eq!(
            e,
            Some(ApiError::invalid(
                "field \"k\" must be a non-negative integer, got \"ten\""
            ))
        );
        let body = br#"{"k": 3}"#;
        let e = serde_json::from_slice::<RecommendRequest<'_>>(body)
            .err()
            .map(|e| explain(body, RECOMMEND_FIELDS, e));
        assert_eq!(e, Some(ApiError::invalid("missing field \"user_id\"")));
        let body = br#"{"user_id": 1, "kk": 3}"#;
        let e = serde_json::from_slice::<RecommendRequest<'_>>(body)
            .err()
            .map(|e| explain(body, RECOMMEND_FIELDS, e));
        assert!(
            matches!(e, Some(ApiError::InvalidArgument(m)) if m.starts_with("unknown field \"kk\""))
        );
        let body = br#"{"user_id": "#;
        let e = serde_json::from_slice::<RecommendRequest<'_>>(body)
            .err()
            .map(|e| explain(body, RECOMMEND_FIELDS, e));
        assert!(
            matches!(e, Some(ApiError::InvalidArgument(m)) if m.starts_with("JSON Parse error"))
        );
    }

    #[test]
    fn ids_borrow_or_convert() {
        let r: RankRequest<'_> =
            serde_json::from_slice(br#"{"user_id": 42, "item_ids": ["a", 7, "b\"c"]}"#).unwrap();
        assert_eq!(r.user_id.0, "42");
        assert!(matches!(r.item_ids[0].0, Cow::Borrowed("a")));
        assert_eq!(r.item_ids[1].0, "7");
        assert_eq!(r.item_ids[2].0, "b\"c");
    }

    #[test]
    fn nan_sorts_last() {
        let mut v = [1.0, f32::NAN, 3.0, 2.0];
        v.sort_by(|a, b| shortlist_pipeline::desc(*a, *b));
        assert_eq!(&v[..3], &[3.0, 2.0, 1.0]);
        assert!(v[3].is_nan());
    }
}
