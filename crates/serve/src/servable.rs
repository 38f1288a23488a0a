//! The model plug-in seam: what the server needs from a model, as small traits.
//!
//! The server never sees a concrete model type. A [`Loader`] turns one version
//! directory into an `Arc<dyn Servable>`; the servable answers TensorFlow Serving
//! style `:predict` calls in row format and, through [`Servable::as_retrieval`] /
//! [`Servable::as_ranking`], exposes the typed [`CandidateSource`] and [`Ranker`]
//! used by the native `/v1/recommend` and `/v1/rank` endpoints. Those two traits, and the
//! pipeline that uses them, live in `shortlist-pipeline`.
//!
//! Most implementations can answer `predict_instances` with
//! [`predict_with_retriever`] or [`predict_with_ranker`], which fix the JSON shapes
//! documented in the crate root, and `signature` with [`retrieval_signature`] or
//! [`ranking_signature`].

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use shortlist_pipeline::{CandidateSource, Ranker, User};

use crate::error::ApiError;

/// What a model does; decides which native endpoints accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Scores one (user, item) pair, e.g. a rating regressor with a relevance head.
    Ranking,
    /// Returns the top candidates of the catalogue for a user: a two-tower model with
    /// an index, iALS or EASE.
    Retrieval,
}

impl ModelKind {
    /// `"ranking"` or `"retrieval"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Ranking => "ranking",
            ModelKind::Retrieval => "retrieval",
        }
    }
}

/// One loaded model version, shared by all requests (hence `Send + Sync`).
pub trait Servable: Send + Sync + 'static {
    /// Ranking or retrieval.
    fn kind(&self) -> ModelKind;

    /// Answers a TensorFlow Serving row-format predict call: one prediction per
    /// instance, in order. Errors about an instance should name its index and field,
    /// e.g. `instances[3]: missing field "user_id"`.
    fn predict_instances(&self, instances: &[Value]) -> Result<Vec<Value>, ApiError>;

    /// The signature map for the metadata endpoint, keyed by signature name
    /// (`{"serving_default": {...}}`), in TensorFlow Serving's `SignatureDef` JSON.
    fn signature(&self) -> Value;

    /// The candidate-source interface, for `/v1/recommend`.
    fn as_retrieval(&self) -> Option<&dyn CandidateSource> {
        None
    }

    /// The ranking interface, for `/v1/recommend` and `/v1/rank`.
    fn as_ranking(&self) -> Option<&dyn Ranker> {
        None
    }
}

/// Loads and validates one version directory (`BASE/<model>/<version>/`).
///
/// Called off the request path (in a blocking task); an `Err` message is logged and
/// shown in the model status API, and the previous version stays live.
pub type Loader = Arc<dyn Fn(&Path) -> Result<Arc<dyn Servable>, String> + Send + Sync>;

/// Reads an id that may be a JSON string or an integer (`"42"` or `42`).
fn id_of(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// What a JSON value is, for error messages ("a string", "a list", …).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The user id of a retrieval instance: a string (`"42"`), an integer, or an object
/// with a `user_id` field (as a columnar request turns into). `index` is used in
/// error messages.
pub fn instance_user_id(instance: &Value, index: usize) -> Result<Cow<'_, str>, ApiError> {
    if let Value::Object(map) = instance {
        return instance_field(instance, &["user_id"], index).or_else(|e| {
            // A single unnamed input, e.g. {"input_1": "42"} from columnar `inputs`.
            match (map.len(), map.values().next()) {
                (1, Some(v)) => id_of(v).ok_or(e),
                _ => Err(e),
            }
        });
    }
    id_of(instance).ok_or_else(|| {
        ApiError::invalid(format!(
            "instances[{index}]: expected a user id (string or integer), got {}",
            type_name(instance)
        ))
    })
}

/// Reads the first present field of `names` from an object instance as an id
/// (string or integer). Errors name the instance index and the expected field.
pub fn instance_field<'v>(
    instance: &'v Value,
    names: &[&str],
    index: usize,
) -> Result<Cow<'v, str>, ApiError> {
    let Value::Object(map) = instance else {
        return Err(ApiError::invalid(format!(
            "instances[{index}]: expected an object with field \"{}\", got {}",
            names.first().copied().unwrap_or_default(),
            type_name(instance)
        )));
    };
    for name in names {
        if let Some(v) = map.get(*name) {
            return id_of(v).ok_or_else(|| {
                ApiError::invalid(format!(
                    "instances[{index}].{name}: expected a string or integer id, got {}",
                    type_name(v)
                ))
            });
        }
    }
    Err(ApiError::invalid(format!(
        "instances[{index}]: missing field \"{}\"",
        names.join("\" or \"")
    )))
}

/// Row-format predictions of a retrieval model, shaped like TensorFlow
/// Recommenders' exported `BruteForce`/`ScaNN` layer: for each instance (a user id)
/// `{"output_1": [scores...], "output_2": [item ids...]}`, best first, `k` long.
pub fn predict_with_retriever(
    retriever: &dyn CandidateSource,
    k: usize,
    instances: &[Value],
) -> Result<Vec<Value>, ApiError> {
    instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let user = instance_user_id(inst, i)?;
            let r = retriever.retrieve(&User::id(&user), k, false, &[])?;
            let scores: Vec<Value> = r.candidates.iter().map(|c| json!(c.score)).collect();
            let ids: Vec<Value> = r.candidates.iter().map(|c| json!(c.item_id)).collect();
            Ok(json!({ "output_1": scores, "output_2": ids }))
        })
        .collect()
}

/// The item-id fields a ranking instance may use, in order of preference
/// (`movie_title`/`movie_id` as in the TensorFlow Recommenders MovieLens tutorials).
pub const ITEM_FIELDS: &[&str] = &["item_id", "movie_id", "movie_title"];

/// Row-format predictions of a ranking model: each instance is
/// `{"user_id": ..., "item_id" | "movie_id" | "movie_title": ...}` and each
/// prediction a one-element list `[rating]` (a Keras output of shape `[1]`): the
/// rating head, as TensorFlow Recommenders' ranking model answers.
///
/// An unknown user or item id is scored with the model's fallback (a new id is
/// normal), but a `movie_title` the model does not know is an error naming the
/// instance: a title is a lookup key, and a typo must not come back as a rating.
pub fn predict_with_ranker(
    ranker: &dyn Ranker,
    instances: &[Value],
) -> Result<Vec<Value>, ApiError> {
    instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let user = instance_field(inst, &["user_id"], i)?;
            let item = instance_field(inst, ITEM_FIELDS, i)?;
            let by_title = inst.as_object().is_some_and(|m| {
                ITEM_FIELDS
                    .iter()
                    .find(|f| m.contains_key(**f))
                    .is_some_and(|f| *f == "movie_title")
            });
            let r = ranker.rank(&User::id(&user), &[&item], None)?;
            if by_title && !r.unknown_items.is_empty() {
                return Err(ApiError::invalid(format!(
                    "instances[{i}].movie_title: {item:?} is not a title of the model's catalogue (titles match exactly, e.g. \"Speed (1994)\"; an unknown item_id is scored as a new item instead)"
                )));
            }
            let score = r.ratings.first().copied().ok_or_else(|| {
                ApiError::Internal(format!(
                    "ranker returned {} scores for 1 item",
                    r.ratings.len()
                ))
            })?;
            Ok(json!([score]))
        })
        .collect()
}

fn tensor_info(name: &str, dtype: &str, dims: &[i64]) -> Value {
    let dim: Vec<Value> = dims
        .iter()
        .map(|d| json!({ "size": d.to_string(), "name": "" }))
        .collect();
    json!({
        "dtype": dtype,
        "tensor_shape": { "dim": dim, "unknown_rank": false },
        "name": name,
    })
}

/// A `serving_default` signature map for a retrieval model returning `k` items, in
/// TensorFlow Serving's `SignatureDef` JSON (input `input_1`: string `[-1]`;
/// outputs `output_1`: float `[-1, k]`, `output_2`: string `[-1, k]`).
pub fn retrieval_signature(k: usize) -> Value {
    let k = i64::try_from(k).unwrap_or(i64::MAX);
    json!({
        "serving_default": {
            "inputs": { "input_1": tensor_info("serving_default_input_1:0", "DT_STRING", &[-1]) },
            "outputs": {
                "output_1": tensor_info("StatefulPartitionedCall:0", "DT_FLOAT", &[-1, k]),
                "output_2": tensor_info("StatefulPartitionedCall:1", "DT_STRING", &[-1, k]),
            },
            "method_name": "tensorflow/serving/predict",
        }
    })
}

/// A `serving_default` signature map for a ranking model (inputs `user_id` and
/// `item_id`: string `[-1]`; output `output_1`: float `[-1, 1]`).
pub fn ranking_signature() -> Value {
    json!({
        "serving_default": {
            "inputs": {
                "user_id": tensor_info("serving_default_user_id:0", "DT_STRING", &[-1]),
                "item_id": tensor_info("serving_default_item_id:0", "DT_STRING", &[-1]),
            },
            "outputs": {
                "output_1": tensor_info("StatefulPartitionedCall:0", "DT_FLOAT", &[-1, 1]),
            },
            "method_name": "tensorflow/serving/predict",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_forms() {
        assert_eq!(
            instance_user_id(&json!("42"), 0).ok().as_deref(),
            Some("42")
        );
        assert_eq!(instance_user_id(&json!(42), 0).ok().as_deref(), Some("42"));
        assert_eq!(
            instance_user_id(&json!({"user_id": "7"}), 0)
                .ok()
                .as_deref(),
            Some("7")
        );
        assert_eq!(
            instance_user_id(&json!({"input_1": "7"}), 0)
                .ok()
                .as_deref(),
            Some("7")
        );
        let e = instance_user_id(&json!(1.5), 3).unwrap_err();
        assert_eq!(
            e,
            ApiError::invalid("instances[3]: expected a user id (string or integer), got a number")
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let e = instance_field(&json!({"user_id": "1"}), ITEM_FIELDS, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "instances[2]: missing field \"item_id\" or \"movie_id\" or \"movie_title\""
        );
        let e = instance_field(&json!({"user_id": [1]}), &["user_id"], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "instances[0].user_id: expected a string or integer id, got a list"
        );
    }
}
