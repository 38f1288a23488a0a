//! The TensorFlow Serving REST API: model status, metadata and `:predict`.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::error::{json_response, ApiError};
use crate::metrics::Endpoint;
use crate::registry::{parse_version, VersionState};
use crate::servable::type_name;
use crate::AppState;

/// A parsed `/v1/models/...` request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModelRoute<'a> {
    /// `GET /v1/models/{name}[/versions/{v}]`
    Status { name: &'a str, version: Option<u64> },
    /// `GET /v1/models/{name}[/versions/{v}]/metadata`
    Metadata { name: &'a str, version: Option<u64> },
    /// `POST /v1/models/{name}[/versions/{v}]:predict`
    Predict { name: &'a str, version: Option<u64> },
}

impl ModelRoute<'_> {
    pub(crate) fn endpoint(&self) -> Endpoint {
        match self {
            ModelRoute::Status { .. } => Endpoint::Status,
            ModelRoute::Metadata { .. } => Endpoint::Metadata,
            ModelRoute::Predict { .. } => Endpoint::Predict,
        }
    }
}

fn malformed(method: &Method, path: &str) -> ApiError {
    ApiError::invalid(format!("Malformed request: {method} {path}"))
}

fn version_of(s: &str) -> Result<u64, ApiError> {
    parse_version(s)
        .ok_or_else(|| ApiError::invalid(format!("Failed to convert version: {s} to numeric.")))
}

fn check_name(name: &str) -> Result<&str, ApiError> {
    if name.is_empty() {
        Err(ApiError::invalid("Missing model name in request."))
    } else {
        Ok(name)
    }
}

/// Parses the path of a `/v1/models/...` request the way TensorFlow Serving's REST
/// handler does: the verb is the part after `:` in the last segment; versions are
/// decimal; labels are not supported.
pub(crate) fn parse_model_path<'a>(
    method: &Method,
    path: &'a str,
) -> Result<ModelRoute<'a>, ApiError> {
    let Some(rest) = path.strip_prefix("/v1/models/") else {
        return Err(malformed(method, path));
    };
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.get(1) == Some(&"labels") {
        return Err(ApiError::Unimplemented(
            "Model version labels are not supported; use /versions/{version}".into(),
        ));
    }
    if *method == Method::GET {
        if segs.iter().any(|s| s.contains(':')) {
            return Err(malformed(method, path));
        }
        return match segs.as_slice() {
            [name] => Ok(ModelRoute::Status {
                name: check_name(name)?,
                version: None,
            }),
            [name, "metadata"] => Ok(ModelRoute::Metadata {
                name: check_name(name)?,
                version: None,
            }),
            [name, "versions", v] => Ok(ModelRoute::Status {
                name: check_name(name)?,
                version: Some(version_of(v)?),
            }),
            [name, "versions", v, "metadata"] => Ok(ModelRoute::Metadata {
                name: check_name(name)?,
                version: Some(version_of(v)?),
            }),
            _ => Err(malformed(method, path)),
        };
    }
    if *method == Method::POST {
        let Some((last, verb)) = segs.last().and_then(|s| s.rsplit_once(':')) else {
            return Err(malformed(method, path));
        };
        let (name, version) = match segs.as_slice() {
            [_] => (last, None),
            [name, "versions", _] => (*name, Some(version_of(last)?)),
            _ => return Err(malformed(method, path)),
        };
        let name = check_name(name)?;
        return if verb.eq_ignore_ascii_case("predict") {
            Ok(ModelRoute::Predict { name, version })
        } else if verb.eq_ignore_ascii_case("classify") || verb.eq_ignore_ascii_case("regress") {
            Err(ApiError::Unimplemented(format!(
                "The :{verb} API is not supported; use :predict"
            )))
        } else {
            Err(malformed(method, path))
        };
    }
    Err(malformed(method, path))
}

fn to_json(v: &Value) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(v)
        .map_err(|e| ApiError::Internal(format!("serializing a response: {e}")))?;
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /v1/models/{name}[/versions/{v}]`.
pub(crate) fn model_status(
    st: &AppState,
    name: &str,
    version: Option<u64>,
) -> Result<Response, ApiError> {
    let statuses = st.registry.snapshot().status(name, version)?;
    let list: Vec<Value> = statuses
        .iter()
        .map(|s| {
            let (code, msg) = match (&s.error, s.state) {
                (Some(e), _) => ("UNKNOWN", e.as_str()),
                (None, VersionState::Available | VersionState::Loading | VersionState::End) => {
                    ("OK", "")
                }
            };
            json!({
                "version": s.version.to_string(),
                "state": s.state.as_str(),
                "status": { "error_code": code, "error_message": msg },
            })
        })
        .collect();
    to_json(&json!({ "model_version_status": list }))
}

/// `GET /v1/models/{name}[/versions/{v}]/metadata`.
pub(crate) fn model_metadata(
    st: &AppState,
    name: &str,
    version: Option<u64>,
) -> Result<Response, ApiError> {
    let snap = st.registry.snapshot();
    let live = snap.servable(name, version)?;
    to_json(&json!({
        "model_spec": {
            "name": name,
            "signature_name": "",
            "version": live.version.to_string(),
        },
        "metadata": { "signature_def": { "signature_def": live.servable.signature() } },
    }))
}

/// Turns columnar `inputs` into rows: a list is already rows; an object of
/// equal-length lists becomes one object per index.
fn columns_to_rows(inputs: Value) -> Result<Vec<Value>, ApiError> {
    match inputs {
        Value::Array(rows) => Ok(rows),
        Value::Object(cols) => {
            let mut len = None;
            for (k, v) in &cols {
                let Value::Array(a) = v else {
                    return Err(ApiError::invalid(format!(
                        "inputs.{k}: expected a list (one value per instance), got {}",
                        type_name(v)
                    )));
                };
                match len {
                    None => len = Some((k.clone(), a.len())),
                    Some((ref k0, n)) if n != a.len() => {
                        return Err(ApiError::invalid(format!(
                            "inputs: all lists must have the same length, but \"{k0}\" has {n} and \"{k}\" has {}",
                            a.len()
                        )))
                    }
                    Some(_) => {}
                }
            }
            let n = len.map_or(0, |(_, n)| n);
            let mut rows: Vec<Map<String, Value>> = (0..n).map(|_| Map::new()).collect();
            for (k, v) in cols {
                if let Value::Array(a) = v {
                    for (row, x) in rows.iter_mut().zip(a) {
                        row.insert(k.clone(), x);
                    }
                }
            }
            Ok(rows.into_iter().map(Value::Object).collect())
        }
        other => Err(ApiError::invalid(format!(
            "inputs: expected a list of instances or an object of lists, got {}",
            type_name(&other)
        ))),
    }
}

/// Turns per-instance predictions into columnar `outputs`: objects with named
/// outputs become an object of lists; anything else stays a list.
fn rows_to_columns(preds: Vec<Value>) -> Value {
    let all_objects = !preds.is_empty() && preds.iter().all(Value::is_object);
    if !all_objects {
        return Value::Array(preds);
    }
    let mut cols: Map<String, Value> = Map::new();
    let n = preds.len();
    for p in preds {
        if let Value::Object(m) = p {
            for (k, v) in m {
                let col = cols
                    .entry(k)
                    .or_insert_with(|| Value::Array(Vec::with_capacity(n)));
                if let Value::Array(a) = col {
                    a.push(v);
                }
            }
        }
    }
    Value::Object(cols)
}

/// `POST /v1/models/{name}[/versions/{v}]:predict`.
pub(crate) fn predict(
    st: &AppState,
    name: &str,
    version: Option<u64>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let parsed: Value = crate::strict_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("JSON Parse error: {e}")))?;
    let Value::Object(mut req) = parsed else {
        return Err(ApiError::invalid(format!(
            "Request body must be a JSON object with \"instances\" or \"inputs\", got {}",
            type_name(&parsed)
        )));
    };
    if let Some(sig) = req.get("signature_name") {
        match sig.as_str() {
            Some("" | "serving_default") => {}
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "Serving signature name: \"{other}\" not found in signature def"
                )))
            }
            None => {
                return Err(ApiError::invalid(format!(
                    "signature_name: expected a string, got {}",
                    type_name(sig)
                )))
            }
        }
    }
    let (instances, columnar) = match (req.remove("instances"), req.remove("inputs")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Not formatted correctly: expecting only one of \"inputs\" or \"instances\" keys",
            ))
        }
        (None, None) => return Err(ApiError::invalid("Missing \"inputs\" or \"instances\" key")),
        (Some(Value::Array(rows)), None) => (rows, false),
        (Some(other), None) => {
            return Err(ApiError::invalid(format!(
                "instances: expected a list, got {}",
                type_name(&other)
            )))
        }
        (None, Some(inputs)) => (columns_to_rows(inputs)?, true),
    };
    if instances.len() > st.config.max_instances {
        return Err(ApiError::invalid(format!(
            "instances: {} instances exceed the limit of {} per request",
            instances.len(),
            st.config.max_instances
        )));
    }
    let live = st.registry.snapshot().servable(name, version)?.clone();
    let preds = live.servable.predict_instances(&instances)?;
    if preds.len() != instances.len() {
        return Err(ApiError::Internal(format!(
            "model {name} version {} returned {} predictions for {} instances",
            live.version,
            preds.len(),
            instances.len()
        )));
    }
    let out = if columnar {
        json!({ "outputs": rows_to_columns(preds) })
    } else {
        json!({ "predictions": preds })
    };
    to_json(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(m: Method, p: &str) -> Result<ModelRoute<'_>, ApiError> {
        parse_model_path(&m, p)
    }

    #[test]
    fn status_and_metadata_paths() {
        assert_eq!(
            parse(Method::GET, "/v1/models/ranking"),
            Ok(ModelRoute::Status {
                name: "ranking",
                version: None
            })
        );
        assert_eq!(
            parse(Method::GET, "/v1/models/ranking/versions/12"),
            Ok(ModelRoute::Status {
                name: "ranking",
                version: Some(12)
            })
        );
        assert_eq!(
            parse(Method::GET, "/v1/models/ranking/metadata"),
            Ok(ModelRoute::Metadata {
                name: "ranking",
                version: None
            })
        );
        assert_eq!(
            parse(Method::GET, "/v1/models/ranking/versions/3/metadata"),
            Ok(ModelRoute::Metadata {
                name: "ranking",
                version: Some(3)
            })
        );
        assert_eq!(
            parse(Method::GET, "/v1/models/ranking/versions/x"),
            Err(ApiError::invalid(
                "Failed to convert version: x to numeric."
            ))
        );
        assert_eq!(
            parse(Method::GET, "/v1/models//metadata"),
            Err(ApiError::invalid("Missing model name in request."))
        );
        assert!(matches!(
            parse(Method::GET, "/v1/models/a/b/c"),
            Err(ApiError::InvalidArgument(m)) if m == "Malformed request: GET /v1/models/a/b/c"
        ));
        assert!(parse(Method::GET, "/v1/models/a:predict").is_err());
    }

    #[test]
    fn predict_paths() {
        assert_eq!(
            parse(Method::POST, "/v1/models/retrieval:predict"),
            Ok(ModelRoute::Predict {
                name: "retrieval",
                version: None
            })
        );
        assert_eq!(
            parse(Method::POST, "/v1/models/retrieval:PREDICT"),
            Ok(ModelRoute::Predict {
                name: "retrieval",
                version: None
            })
        );
        assert_eq!(
            parse(Method::POST, "/v1/models/retrieval/versions/2:predict"),
            Ok(ModelRoute::Predict {
                name: "retrieval",
                version: Some(2)
            })
        );
        assert!(matches!(
            parse(Method::POST, "/v1/models/retrieval:classify"),
            Err(ApiError::Unimplemented(_))
        ));
        assert!(matches!(
            parse(Method::POST, "/v1/models/retrieval/labels/stable:predict"),
            Err(ApiError::Unimplemented(_))
        ));
        assert!(matches!(
            parse(Method::POST, "/v1/models/retrieval"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(matches!(
            parse(Method::POST, "/v1/models/retrieval:explode"),
            Err(ApiError::InvalidArgument(_))
        ));
        assert_eq!(
            parse(Method::POST, "/v1/models/retrieval/versions/v2:predict"),
            Err(ApiError::invalid(
                "Failed to convert version: v2 to numeric."
            ))
        );
        assert_eq!(
            parse(Method::POST, "/v1/models/:predict"),
            Err(ApiError::invalid("Missing model name in request."))
        );
        assert!(matches!(
            parse(Method::DELETE, "/v1/models/x"),
            Err(ApiError::InvalidArgument(_))
        ));
    }

    #[test]
    fn columnar_conversion() {
        let rows = columns_to_rows(json!({"user_id": ["1", "2"], "item_id": ["a", "b"]})).unwrap();
        assert_eq!(
            rows,
            vec![
                json!({"user_id": "1", "item_id": "a"}),
                json!({"user_id": "2", "item_id": "b"})
            ]
        );
        let e = columns_to_rows(json!({"user_id": ["1", "2"], "item_id": ["a"]})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("inputs: all lists must have the same length"),
            "{e}"
        );
        let e = columns_to_rows(json!({"user_id": "1"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inputs.user_id: expected a list (one value per instance), got a string"
        );
        let cols = rows_to_columns(vec![
            json!({"output_1": [1.0], "output_2": ["a"]}),
            json!({"output_1": [2.0], "output_2": ["b"]}),
        ]);
        assert_eq!(
            cols,
            json!({"output_1": [[1.0], [2.0]], "output_2": [["a"], ["b"]]})
        );
        assert_eq!(
            rows_to_columns(vec![json!([1.5]), json!([2.5])]),
            json!([[1.5], [2.5]])
        );
    }
}
