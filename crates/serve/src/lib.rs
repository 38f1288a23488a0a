//! Model server of **shortlist**, at the end of the pipeline
//! (`core` → `data` → `features` → models → training → evaluation → index → **serving**).
//!
//! It serves TensorFlow Serving's model layout (`BASE/<model name>/<version>/`)
//! with TensorFlow Serving's REST contract, so existing clients work unchanged, and
//! adds a native two-stage endpoint (retrieve, then rank). It depends on no model,
//! training or data-loading crate: models plug in through the small traits of
//! [`servable`] and a [`Loader`] that turns a version directory into one.
//!
//! * [`servable`]: [`Servable`], [`Loader`] (and the pipeline's [`CandidateSource`], [`Ranker`]).
//! * [`registry`]: version discovery, hot reload with [`arc_swap`], status.
//! * [`ServeConfig`]: address, poll interval, default model names and every limit.
//! * [`conn`]: the accept loop — header-read and idle timeouts, the connection cap.
//! * [`compute`]: model computations on a bounded pool; 503 beyond the in-flight limit.
//! * [`app`] builds the [`axum::Router`]; [`bind`] / [`Server::run`] or [`serve`] run it.
//!
//! # Endpoints
//!
//! Every error, whatever the endpoint, is `{"error": "<message>"}` with
//! `content-type: application/json`, and HTTP status mapped from TensorFlow
//! Serving's canonical codes (see [`ApiError`]): 400 malformed JSON, wrong type,
//! missing field, value out of range (the message names the field); 404 unknown
//! model or version; 413 body larger than [`ServeConfig::max_body_bytes`]; 500
//! internal (generic message, detail logged); 501 `:classify`/`:regress`/labels;
//! 503 not ready, or overloaded (with `Retry-After: 1`, see [`compute`]); 504
//! request timeout. Requests the HTTP layer rejects itself get its bare 400, 414 or
//! 431 (counted in the metrics).
//!
//! ## TensorFlow Serving REST API
//!
//! `GET /v1/models/{name}` and `GET /v1/models/{name}/versions/{v}`: the versions
//! seen, highest first (`AVAILABLE` is the one served; `END` were replaced or failed
//! to load, with `error_code` `UNKNOWN` and the loader's message):
//! ```json
//! {"model_version_status": [
//!   {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
//!   {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}}]}
//! ```
//! Unknown model: 404 `Could not find any versions of model {name}`; unknown
//! version: 404 `Could not find version {v} of model {name}`.
//!
//! `GET /v1/models/{name}[/versions/{v}]/metadata` (`signature_def` holds
//! [`Servable::signature`]):
//! ```json
//! {"model_spec": {"name": "ranking", "signature_name": "", "version": "2"},
//!  "metadata": {"signature_def": {"signature_def": {"serving_default": {
//!    "inputs": {...}, "outputs": {...}, "method_name": "tensorflow/serving/predict"}}}}}
//! ```
//!
//! `POST /v1/models/{name}[/versions/{v}]:predict`, row format
//! `{"signature_name"?: "serving_default", "instances": [...]}` →
//! `{"predictions": [...]}`, one prediction per instance; columnar format
//! `{"inputs": [...]}` or `{"inputs": {"field": [...], ...}}` (equal-length
//! lists, turned into one instance per index) → `{"outputs": ...}`: a list for
//! single-output models, an object of lists for models with named outputs.
//! Only the served (highest) version can be addressed; another gives 404
//! `Servable not found for request: Specific({name}, {v})`, an unknown model
//! `Servable not found for request: Latest({name})`. At most
//! [`ServeConfig::max_instances`] instances.
//!
//! * Retrieval model: an instance is a user id (`"42"`, `42`, or
//!   `{"user_id": "42"}`); a prediction is, like TensorFlow Recommenders'
//!   exported `BruteForce` layer, `{"output_1": [scores...], "output_2": [item ids...]}`
//!   ([`ServeConfig::predict_k`] items, best first):
//!   `{"instances": ["42"]}` → `{"predictions": [{"output_1": [3.1, 2.9], "output_2": ["3142", "2574"]}]}`.
//! * Ranking model: an instance is `{"user_id": "42", "item_id" | "movie_id" |
//!   "movie_title": "..."}`; a prediction is `[rating]` (a Keras output of shape
//!   `[1]`): `{"instances": [{"user_id": "42", "item_id": "1"}]}` →
//!   `{"predictions": [[4.2]]}`.
//!
//! ## Native endpoints
//!
//! `POST /v1/recommend`: retrieves `num_candidates` with the retrieval model,
//! drops `exclude_items` (and, with `exclude_seen`, items seen in training), scores
//! the rest with the ranking model and returns the `k` best by ranking score.
//! ```json
//! {"user_id": "42", "k": 10, "num_candidates": 100, "exclude_seen": true,
//!  "exclude_items": ["1"], "retrieval_model": "retrieval", "ranking_model": "ranking"}
//! ```
//! Only `user_id` (string or integer) is required. Defaults: `k` 10 (1 ..=
//! [`ServeConfig::max_k`]), `num_candidates` `max(k, default_num_candidates)` (k ..=
//! [`ServeConfig::max_num_candidates`]), `exclude_seen` true, model names from the
//! config. If the default ranking model is not loaded, or `ranking_model` is `""`,
//! items are ordered by retrieval score and `ranking_score` is `null`; a
//! `ranking_model` named in the request must exist (else 404). Unknown fields are
//! rejected (400). Response:
//! ```json
//! {"user_id": "42", "known_user": true, "model_versions": {"retrieval": 3, "ranking": 2},
//!  "items": [{"item_id": "3142", "title": "Toy Story (1995)", "retrieval_score": 3.1, "ranking_score": 4.6}]}
//! ```
//! `known_user: false` means the retrieval model did not know the user and
//! answered its popularity fallback (see [`shortlist_pipeline::Retrieved::known_user`]).
//!
//! `POST /v1/events`: `{"events": [{"user_id", "item_id", "event", "timestamp"?}]}`
//! → `{"accepted": n}`; remembered and logged, then part of the user's history in
//! `/v1/recommend` and `/v1/rank` from the next request on (see [`events`]).
//!
//! `POST /v1/rank`: scores the given items, best first.
//! `{"user_id": "42", "item_ids": ["1", "2"], "ranking_model"?: "ranking"}` →
//! ```json
//! {"user_id": "42", "known_user": true, "model_version": 2,
//!  "items": [{"item_id": "2", "score": 4.1, "known_item": true}, {"item_id": "1", "score": 3.0, "known_item": true}]}
//! ```
//!
//! ## Operations
//!
//! * `GET /healthz`: 200 `{"status": "ok"}` while the process runs.
//! * `GET /readyz`: 200 `{"ready": true, "models": {"ranking": 2, "retrieval": 3}}`
//!   once every required model has a loaded version (the rule is in [`registry`]:
//!   the `--models` list, else the default `retrieval` / `ranking` models present);
//!   else 503 `{"ready": false, "error": "...", "models": {"ranking": null, ...}}`.
//!   Models without a loaded version, required or not, are listed with their last
//!   error under `"unavailable"` (e.g. a stray directory), paths relative to the
//!   base path.
//! * `GET /monitoring/prometheus/metrics` (TensorFlow Serving's path): Prometheus
//!   text with `shortlist_requests_total{endpoint,code}`,
//!   `shortlist_request_errors_total{endpoint,code}`,
//!   `shortlist_request_duration_seconds{endpoint}` (histogram),
//!   `shortlist_model_version{model}`, `shortlist_model_load_failures_total{model}`,
//!   `shortlist_open_connections`, `shortlist_connections_accepted_total`,
//!   `shortlist_connections_closed_by_server_total{reason}`,
//!   `shortlist_protocol_errors_total{kind}`, `shortlist_in_flight_requests` and
//!   `shortlist_shed_requests_total`.
//!
//! Other paths: 404 (400 `Malformed request` under `/v1/`, as TensorFlow Serving);
//! a wrong method on a native endpoint: 405; all with the JSON error body.

pub mod compute;
pub mod config;
pub mod conn;
pub mod error;
pub mod events;
pub mod items;
pub mod layout;
pub mod metrics;
pub mod models;
pub mod registry;
pub mod servable;

mod demo;
mod native;
mod strict_json;
mod tfs;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Map, Value};

pub use compute::ComputePool;
pub use config::ServeConfig;
pub use error::{ApiError, ServeError};
pub use metrics::{Endpoint, Metrics};
pub use registry::{LiveModel, Registry};
pub use servable::{Loader, ModelKind, Servable};
pub use shortlist_pipeline::{Candidate, CandidateSource, Ranked, Ranker, Retrieved};

use error::json_response;

/// Shared state of the HTTP handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The models.
    pub registry: Arc<Registry>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and defaults.
    pub config: Arc<ServeConfig>,
    /// Where model computations run, behind the in-flight limit.
    pub pool: Arc<ComputePool>,
    /// The users' events (`POST /v1/events`), remembered and logged.
    pub events: Arc<events::Events>,
    /// Items added or retired while serving (`/v1/items`), logged.
    pub items: Arc<items::Items>,
}

impl AppState {
    /// State over a registry built from `config` and `loader` (nothing loaded yet:
    /// call [`Registry::poll_once`] or [`Registry::spawn_poller`]).
    ///
    /// # Panics
    /// If the computation pool's threads cannot be started.
    pub fn new(config: ServeConfig, loader: Loader) -> Self {
        Self::try_new(config, loader).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`AppState::new`], with an error if the computation pool cannot start.
    pub fn try_new(config: ServeConfig, loader: Loader) -> Result<Self, ServeError> {
        let registry = Arc::new(
            Registry::new(
                config.model_base_path.clone(),
                loader,
                config.models.clone(),
            )
            .with_default_models(vec![
                config.retrieval_model.clone(),
                config.ranking_model.clone(),
            ])
            .with_settle_time(config.poll_interval),
        );
        let metrics = Arc::new(Metrics::default());
        let pool = ComputePool::new(&config, Arc::clone(&metrics))
            .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
        let events = Arc::new(events::Events::open(&config.events()));
        let items = Arc::new(items::Items::open(&items::log_path(
            &config.model_base_path,
        )));
        Ok(AppState {
            registry,
            metrics,
            config: Arc::new(config),
            pool: Arc::new(pool),
            events,
            items,
        })
    }

    /// Runs a model computation on the pool (see [`compute`]): refused at once with
    /// 503 beyond the in-flight limit, never blocking an async I/O worker.
    pub async fn compute<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    {
        let st = self.clone();
        self.pool.run(move || job(&st)).await
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "Request body is larger than the limit of {limit} bytes"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::invalid(format!(
            "Failed to read the request body: {e}"
        ))),
    }
}

/// Admits a model computation (see [`compute`]) before reading the body, so a
/// refused request costs no buffering:
///
/// * a client that sent `Expect: 100-continue` is waiting for leave to send its
///   body: the body is never asked for (hyper then skips the `100 Continue`), the
///   503 goes out at once and says `Connection: close`, so a refused upload costs
///   the network nothing — what curl and other clients do for large bodies;
/// * any other refused body (up to the limit) is read and dropped first, so the
///   connection stays usable, then 503 is answered. Answering first and dropping
///   the body in a task of its own was measured and dropped: under the overload
///   test (RELIABILITY.md) the refusals got no faster at the median and the
///   accepted requests slower (p99 353–376 ms against 263–271 ms), the refused
///   connections' next requests arriving sooner to compete with them.
async fn admit_and_read(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(compute::Admission, Bytes), ApiError> {
    match st.pool.admit() {
        Ok(admission) => Ok((
            admission,
            read_body(headers, body, st.config.max_body_bytes).await?,
        )),
        Err(refused) => {
            if expects_continue(headers) {
                return Err(match refused {
                    ApiError::Overloaded(m) => ApiError::OverloadedBodyUnsent(m),
                    other => other,
                });
            }
            let mut body = Limited::new(body, st.config.max_body_bytes);
            while let Some(Ok(_)) = body.frame().await {}
            Err(refused)
        }
    }
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Runs a handler under the request timeout and records its metrics.
async fn instrumented<F>(st: &AppState, endpoint: Endpoint, start: Instant, fut: F) -> Response
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let timeout = st.config.request_timeout;
    let resp = match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::DeadlineExceeded(format!(
            "Request timed out after {} ms",
            timeout.as_millis()
        ))
        .into_response(),
    };
    st.metrics
        .record(endpoint, resp.status().as_u16(), start.elapsed());
    resp
}

async fn models_handler(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let path = uri.path();
    let route = match tfs::parse_model_path(&method, path) {
        Ok(r) => r,
        Err(e) => {
            return instrumented(&st, Endpoint::Other, start, async { Err(e) }).await;
        }
    };
    let st2 = st.clone();
    instrumented(&st, route.endpoint(), start, async move {
        match route {
            tfs::ModelRoute::Status { name, version } => tfs::model_status(&st2, name, version),
            tfs::ModelRoute::Metadata { name, version } => tfs::model_metadata(&st2, name, version),
            tfs::ModelRoute::Predict { name, version } => {
                let (admission, bytes) = admit_and_read(&st2, &headers, body).await?;
                let name = name.to_owned();
                let st3 = st2.clone();
                admission
                    .run(move || tfs::predict(&st3, &name, version, &bytes))
                    .await
            }
        }
    })
    .await
}

async fn recommend_handler(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Recommend, start, async {
        let (admission, bytes) = admit_and_read(&st, &headers, body).await?;
        let st2 = st.clone();
        admission.run(move || native::recommend(&st2, &bytes)).await
    })
    .await
}

async fn rank_handler(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Rank, start, async {
        let (admission, bytes) = admit_and_read(&st, &headers, body).await?;
        let st2 = st.clone();
        admission.run(move || native::rank(&st2, &bytes)).await
    })
    .await
}

async fn events_handler(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Events, start, async {
        let (admission, bytes) = admit_and_read(&st, &headers, body).await?;
        let st2 = st.clone();
        // Checking the batch is computation; waiting for the disk is not, so the
        // commit is awaited off the pool.
        let batch = admission
            .run(move || {
                let batch = events::parse_batch(&st2.config.event_table, &bytes)?;
                match batch.iter().position(|e| st2.items.is_retired(&e.item_id)) {
                    Some(n) => Err(ApiError::invalid(format!(
                        "events[{n}].item_id {:?} is a retired item (DELETE /v1/items): events for it are refused",
                        batch[n].item_id
                    ))),
                    None => Ok(batch),
                }
            })
            .await?;
        let accepted = st.events.commit(batch).await?;
        Ok(json_response(
            StatusCode::OK,
            format!("{{\"accepted\":{accepted}}}").into_bytes(),
        ))
    })
    .await
}

async fn items_handler(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Items, start, async {
        let (admission, bytes) = admit_and_read(&st, &headers, body).await?;
        let st2 = st.clone();
        let changes = admission
            .run(move || {
                let changes = items::parse_body(&bytes)?;
                native::check_items(&st2, &changes)?;
                Ok(changes)
            })
            .await?;
        let st3 = st.clone();
        let n = tokio::task::spawn_blocking(move || {
            let n = st3.items.commit(changes)?;
            native::sync_items(&st3);
            Ok::<_, ApiError>(n)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("item log: {e}")))??;
        Ok(json_response(
            StatusCode::OK,
            format!("{{\"accepted\":{n}}}").into_bytes(),
        ))
    })
    .await
}

async fn item_delete_handler(
    State(st): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Items, start, async {
        if id.is_empty() || id.len() > events::log::MAX_ID_BYTES {
            return Err(ApiError::invalid(format!(
                "item id must be 1 to {} bytes, got {}",
                events::log::MAX_ID_BYTES,
                id.len()
            )));
        }
        let st2 = st.clone();
        let id2 = id.clone();
        tokio::task::spawn_blocking(move || {
            st2.items
                .commit(vec![shortlist_pipeline::ItemChange::Retire {
                    item_id: id2,
                }])?;
            native::sync_items(&st2);
            Ok::<_, ApiError>(())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("item log: {e}")))??;
        let body = serde_json::to_vec(&json!({ "retired": id })).unwrap_or_default();
        Ok(json_response(StatusCode::OK, body))
    })
    .await
}

async fn healthz_handler(State(st): State<AppState>) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Healthz, start, async {
        Ok(json_response(
            StatusCode::OK,
            br#"{"status":"ok"}"#.to_vec(),
        ))
    })
    .await
}

async fn readyz_handler(State(st): State<AppState>) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Readyz, start, async {
        let r = st.registry.readiness();
        let models: Map<String, Value> = r
            .models
            .iter()
            .map(|(n, v)| (n.clone(), v.map_or(Value::Null, Value::from)))
            .collect();
        let mut body = json!({ "ready": r.ready, "models": models });
        if !r.problems.is_empty() {
            let problems: Map<String, Value> = r
                .problems
                .iter()
                .map(|(n, e)| (n.clone(), Value::from(e.as_str())))
                .collect();
            body["unavailable"] = Value::Object(problems);
        }
        let status = if r.ready {
            StatusCode::OK
        } else {
            body["error"] = Value::from(if r.models.is_empty() {
                "No model found under the model base path".to_string()
            } else if r.waiting.is_empty() {
                "No model has a loaded version".to_string()
            } else {
                format!("Models without a loaded version: {}", r.waiting.join(", "))
            });
            StatusCode::SERVICE_UNAVAILABLE
        };
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| ApiError::Internal(format!("serializing readiness: {e}")))?;
        Ok(json_response(status, bytes))
    })
    .await
}

async fn metrics_handler(State(st): State<AppState>) -> Response {
    let start = Instant::now();
    instrumented(&st, Endpoint::Metrics, start, async {
        let text = st.metrics.render(&st.registry.snapshot());
        let mut resp = (StatusCode::OK, text).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        Ok(resp)
    })
    .await
}

async fn fallback_handler(State(st): State<AppState>, method: Method, uri: Uri) -> Response {
    let start = Instant::now();
    let path = uri.path().to_string();
    instrumented(&st, Endpoint::Other, start, async move {
        if path.starts_with("/v1/") {
            Err(ApiError::invalid(format!(
                "Malformed request: {method} {path}"
            )))
        } else {
            Err(ApiError::NotFound(format!("Not found: {method} {path}")))
        }
    })
    .await
}

async fn method_not_allowed_handler(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
) -> Response {
    let start = Instant::now();
    let msg = format!("Method {method} is not allowed for {}", uri.path());
    let resp = {
        let body = serde_json::to_vec(&json!({ "error": msg })).unwrap_or_default();
        json_response(StatusCode::METHOD_NOT_ALLOWED, body)
    };
    st.metrics
        .record(Endpoint::Other, resp.status().as_u16(), start.elapsed());
    resp
}

/// The HTTP application: every endpoint of the crate documentation.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/models/{*rest}", any(models_handler))
        .route("/v1/recommend", post(recommend_handler))
        .route("/v1/rank", post(rank_handler))
        .route("/v1/events", post(events_handler))
        .route("/v1/items", post(items_handler))
        .route("/v1/items/{id}", axum::routing::delete(item_delete_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .route("/monitoring/prometheus/metrics", get(metrics_handler))
        .merge(demo::routes())
        .fallback(fallback_handler)
        .method_not_allowed_fallback(method_not_allowed_handler)
        .with_state(state)
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    local_addr: SocketAddr,
    connections: Arc<conn::Connections>,
}

impl std::fmt::Debug for conn::Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

/// Longest queue of connections not yet accepted (the kernel caps it at
/// `net.core.somaxconn`): a burst of thousands of connections waits there instead
/// of being reset.
const LISTEN_BACKLOG: u32 = 65_535;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds `config.addr` and prepares the state. Models are loaded by the poller once
/// [`Server::run`] starts (`/readyz` tells when they are), so `/healthz` answers
/// during long loads.
pub async fn bind(config: ServeConfig, loader: Loader) -> Result<Server, ServeError> {
    if !config.model_base_path.is_dir() {
        return Err(ServeError::BasePath(config.model_base_path.clone()));
    }
    let addr = config.addr;
    let listener = listen(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener.local_addr()?;
    let state = AppState::try_new(config, loader)?;
    let connections = Arc::new(conn::Connections::new(
        &state.config,
        Arc::clone(&state.metrics),
    ));
    Ok(Server {
        listener,
        state,
        local_addr,
        connections,
    })
}

impl Server {
    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared state (registry, metrics, config).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The connection cap in force ([`ServeConfig::max_connections`] or the one
    /// derived from the file-descriptor limit).
    pub fn max_connections(&self) -> usize {
        self.connections.max()
    }

    /// Serves until `shutdown` completes, then stops accepting connections and
    /// lets in-flight requests finish (at most [`ServeConfig::request_timeout`]
    /// plus a second). Starts the model poller (first scan at once).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let cfg = Arc::clone(&self.state.config);
        let poller = Arc::clone(&self.state.registry).spawn_poller(cfg.poll_interval);
        tracing::info!(addr = %self.local_addr, base = %cfg.model_base_path.display(),
            max_connections = self.connections.max(), compute_threads = self.state.pool.threads(),
            max_in_flight = cfg.max_in_flight, "serving");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let acceptor = Arc::clone(&self.connections).spawn_acceptor(
            self.listener,
            app(self.state),
            stop_rx,
            tokio::runtime::Handle::current(),
        )?;
        shutdown.await;
        let _ = stop_tx.send(true);
        let joined = tokio::task::spawn_blocking(move || acceptor.join()).await;
        self.connections
            .drain(cfg.request_timeout + std::time::Duration::from_secs(1))
            .await;
        poller.abort();
        tracing::info!("server stopped");
        match joined {
            Ok(Ok(())) => Ok(()),
            _ => Err(ServeError::Io(std::io::Error::other(
                "the accept thread failed",
            ))),
        }
    }
}

/// Binds `config.addr`, logs the bound address and serves until `shutdown`
/// completes. For the CLI, pass [`shutdown_signal`] to stop on SIGTERM or SIGINT.
pub async fn serve(
    config: ServeConfig,
    loader: Loader,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    bind(config, loader).await?.run(shutdown).await
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
