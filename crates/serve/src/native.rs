//! The native endpoints: `/v1/recommend` (retrieve, then rank) and `/v1/rank`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use axum::http::StatusCode;
use axum::response::Response;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{json_response, ApiError};
use crate::servable::Candidate;
use crate::AppState;

/// An id given as a JSON string or integer; borrows from the body when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Id<'a>(Cow<'a, str>);

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
}

/// What a request field must hold, for error messages.
#[derive(Clone, Copy)]
enum Kind {
    Id,
    Count,
    Bool,
    Name,
    IdList,
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
        }
    }
    fn expected(self) -> &'static str {
        match self {
            Kind::Id => "a string or integer id",
            Kind::Count => "a non-negative integer",
            Kind::Bool => "true or false",
            Kind::Name => "a model name (string)",
            Kind::IdList => "a list of string or integer ids",
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
];

const RANK_FIELDS: &[(&str, Kind, bool)] = &[
    ("user_id", Kind::Id, true),
    ("item_ids", Kind::IdList, true),
    ("ranking_model", Kind::Name, false),
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

/// Higher first; NaN last.
fn desc(a: f32, b: f32) -> Ordering {
    let key = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    key(b).total_cmp(&key(a))
}

/// Model name → version, serialized as a JSON object.
struct Versions<'a>(&'a [(&'a str, u64)]);

impl Serialize for Versions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct RecItem<'a> {
    item_id: &'a str,
    title: Option<&'a str>,
    retrieval_score: f32,
    ranking_score: Option<f32>,
}

#[derive(Serialize)]
struct RecResponse<'a> {
    user_id: &'a str,
    known_user: bool,
    model_versions: Versions<'a>,
    items: Vec<RecItem<'a>>,
}

fn respond<T: Serialize>(v: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(v)
        .map_err(|e| ApiError::Internal(format!("serializing a response: {e}")))?;
    Ok(json_response(StatusCode::OK, body))
}

/// Small exclusion sets are scanned; large ones hashed.
enum Excluded<'a> {
    Few(&'a [&'a str]),
    Many(rustc_hash::FxHashSet<&'a str>),
}

impl<'a> Excluded<'a> {
    fn new(ids: &'a [&'a str]) -> Self {
        if ids.len() <= 32 {
            Excluded::Few(ids)
        } else {
            Excluded::Many(ids.iter().copied().collect())
        }
    }
    fn contains(&self, id: &str) -> bool {
        match self {
            Excluded::Few(ids) => ids.contains(&id),
            Excluded::Many(set) => set.contains(id),
        }
    }
}

/// `POST /v1/recommend`.
pub(crate) fn recommend(st: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: RecommendRequest<'_> = parse(body, RECOMMEND_FIELDS)?;
    let cfg = &st.config;
    let k = req.k.unwrap_or(10);
    if k == 0 || k > cfg.max_k as u64 {
        return Err(ApiError::invalid(format!(
            "k must be between 1 and {}, got {k}",
            cfg.max_k
        )));
    }
    let k = k as usize;
    let num_candidates = match req.num_candidates {
        None => cfg
            .default_num_candidates
            .max(k)
            .min(cfg.max_num_candidates),
        Some(n) if n > cfg.max_num_candidates as u64 => {
            return Err(ApiError::invalid(format!(
                "num_candidates must be at most {}, got {n}",
                cfg.max_num_candidates
            )))
        }
        Some(n) if n < k as u64 => {
            return Err(ApiError::invalid(format!(
                "num_candidates ({n}) must be at least k ({k})"
            )))
        }
        Some(n) => n as usize,
    };
    if req.exclude_items.len() > cfg.max_num_candidates {
        return Err(ApiError::invalid(format!(
            "exclude_items: {} ids exceed the limit of {}",
            req.exclude_items.len(),
            cfg.max_num_candidates
        )));
    }
    let retrieval_name: &str = req
        .retrieval_model
        .as_deref()
        .unwrap_or(&cfg.retrieval_model);
    let explicit_ranking = req.ranking_model.is_some();
    let ranking_name: &str = req.ranking_model.as_deref().unwrap_or(&cfg.ranking_model);
    let user_id: &str = &req.user_id.0;
    let exclude: Vec<&str> = req.exclude_items.iter().map(|i| i.0.as_ref()).collect();

    let snap = st.registry.snapshot();
    let retrieval_live = snap.servable(retrieval_name, None)?;
    let retriever = retrieval_live.servable.as_retrieval().ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "model \"{retrieval_name}\" is a {} model, not a retrieval model (retrieval_model)",
            retrieval_live.servable.kind().as_str()
        ))
    })?;
    // Ranking: an empty name disables it; a missing default model falls back to
    // retrieval order; a missing model named in the request is an error.
    let ranking_live = if ranking_name.is_empty() {
        None
    } else {
        match snap.servable(ranking_name, None) {
            Ok(l) => Some(l),
            Err(e) if explicit_ranking => return Err(e),
            Err(_) => None,
        }
    };
    let ranker = match ranking_live {
        Some(l) => Some(l.servable.as_ranking().ok_or_else(|| {
            ApiError::FailedPrecondition(format!(
                "model \"{ranking_name}\" is a {} model, not a ranking model (ranking_model)",
                l.servable.kind().as_str()
            ))
        })?),
        None => None,
    };

    let exclude_seen = req.exclude_seen.unwrap_or(true);
    let retrieved = retriever.retrieve(user_id, num_candidates, exclude_seen, &exclude)?;
    let mut candidates: Vec<Candidate<'_>> = retrieved.candidates;
    if !exclude.is_empty() {
        let ex = Excluded::new(&exclude);
        candidates.retain(|c| !ex.contains(c.item_id));
    }

    let mut versions: [(&str, u64); 2] = [(retrieval_name, retrieval_live.version), ("", 0)];
    let mut n_versions = 1;
    let mut items: Vec<RecItem<'_>> = Vec::with_capacity(candidates.len());
    match ranker {
        Some(ranker) => {
            let ids: Vec<&str> = candidates.iter().map(|c| c.item_id).collect();
            let ranked = ranker.rank(user_id, &ids)?;
            if ranked.scores.len() != ids.len() {
                return Err(ApiError::Internal(format!(
                    "ranking model {ranking_name} returned {} scores for {} items",
                    ranked.scores.len(),
                    ids.len()
                )));
            }
            if let Some(l) = ranking_live {
                versions[1] = (ranking_name, l.version);
                n_versions = 2;
            }
            items.extend(
                candidates
                    .iter()
                    .zip(&ranked.scores)
                    .map(|(c, &s)| RecItem {
                        item_id: c.item_id,
                        title: None,
                        retrieval_score: c.score,
                        ranking_score: Some(s),
                    }),
            );
            let by_rank = |a: &RecItem<'_>, b: &RecItem<'_>| {
                desc(
                    a.ranking_score.unwrap_or(f32::NAN),
                    b.ranking_score.unwrap_or(f32::NAN),
                )
                .then_with(|| desc(a.retrieval_score, b.retrieval_score))
            };
            if items.len() > k {
                items.select_nth_unstable_by(k - 1, by_rank);
                items.truncate(k);
            }
            items.sort_unstable_by(by_rank);
        }
        None => {
            candidates.sort_by(|a, b| desc(a.score, b.score));
            items.extend(candidates.iter().take(k).map(|c| RecItem {
                item_id: c.item_id,
                title: None,
                retrieval_score: c.score,
                ranking_score: None,
            }));
        }
    }
    for it in &mut items {
        it.title = retriever.item_title(it.item_id);
    }
    respond(&RecResponse {
        user_id,
        known_user: retrieved.known_user,
        model_versions: Versions(&versions[..n_versions]),
        items,
    })
}

#[derive(Serialize)]
struct RankItem<'a> {
    item_id: &'a str,
    score: f32,
    known_item: bool,
}

#[derive(Serialize)]
struct RankResponse<'a> {
    user_id: &'a str,
    known_user: bool,
    model_version: u64,
    items: Vec<RankItem<'a>>,
}

/// `POST /v1/rank`.
pub(crate) fn rank(st: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let req: RankRequest<'_> = parse(body, RANK_FIELDS)?;
    let cfg = &st.config;
    if req.item_ids.len() > cfg.max_num_candidates {
        return Err(ApiError::invalid(format!(
            "item_ids: {} ids exceed the limit of {}",
            req.item_ids.len(),
            cfg.max_num_candidates
        )));
    }
    let name: &str = req.ranking_model.as_deref().unwrap_or(&cfg.ranking_model);
    let snap = st.registry.snapshot();
    let live = snap.servable(name, None)?;
    let ranker = live.servable.as_ranking().ok_or_else(|| {
        ApiError::FailedPrecondition(format!(
            "model \"{name}\" is a {} model, not a ranking model (ranking_model)",
            live.servable.kind().as_str()
        ))
    })?;
    let ids: Vec<&str> = req.item_ids.iter().map(|i| i.0.as_ref()).collect();
    let user_id: &str = &req.user_id.0;
    let ranked = ranker.rank(user_id, &ids)?;
    if ranked.scores.len() != ids.len() {
        return Err(ApiError::Internal(format!(
            "ranking model {name} returned {} scores for {} items",
            ranked.scores.len(),
            ids.len()
        )));
    }
    let mut items: Vec<RankItem<'_>> = ids
        .iter()
        .zip(&ranked.scores)
        .map(|(&item_id, &score)| RankItem {
            item_id,
            score,
            known_item: true,
        })
        .collect();
    for &i in &ranked.unknown_items {
        if let Some(it) = items.get_mut(i) {
            it.known_item = false;
        }
    }
    items.sort_by(|a, b| desc(a.score, b.score));
    respond(&RankResponse {
        user_id,
        known_user: ranked.known_user,
        model_version: live.version,
        items,
    })
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
        v.sort_by(|a, b| desc(*a, *b));
        assert_eq!(&v[..3], &[3.0, 2.0, 1.0]);
        assert!(v[3].is_nan());
    }
}
