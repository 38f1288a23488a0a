//! `/demo`: a web page (plain HTML + JavaScript embedded in the binary, no CDN, no
//! build step) to search the catalogue by title, mark items as liked, and watch
//! `/v1/recommend` answer for that history, with a toggle that runs the same
//! models in the browser through the WebAssembly build (`crates/wasm`) and shows
//! whether both lists agree.
//!
//! | path | what |
//! | --- | --- |
//! | `GET /demo` | the page |
//! | `GET /demo/demo.js` | its script |
//! | `GET /demo/status` | `{"wasm": bool, "wasm_dir", "build": "scripts/wasm/build.sh", "models": {name: version}}` |
//! | `GET /demo/items` | the served candidate model's catalogue: `[[item_id, title], …]` |
//! | `GET /demo/bundle` | the served candidate and ranking models' inference files as one bundle (`shortlist_model::bundle`) |
//! | `GET /demo/shortlist_wasm.js`, `/demo/shortlist_wasm_bg.wasm` | the WebAssembly build, read from `$SHORTLIST_DEMO_WASM_DIR` (default `target/wasm-pkg`, where `scripts/wasm/build.sh` writes it) |
//!
//! `/demo/bundle` hands the served models' weights to whoever can reach the
//! server; `SHORTLIST_DEMO=off` in the server's environment turns `/demo` off
//! (every path answers 404).

use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::error::{json_response, ApiError};
use crate::metrics::Endpoint;
use crate::registry::Snapshot;
use crate::AppState;

const PAGE: &str = include_str!("demo/index.html");
const SCRIPT: &str = include_str!("demo/demo.js");

/// The WebAssembly build's files served under `/demo/`.
const WASM_FILES: [(&str, &str); 2] = [
    ("shortlist_wasm.js", "text/javascript; charset=utf-8"),
    ("shortlist_wasm_bg.wasm", "application/wasm"),
];

/// Largest WebAssembly build file served.
const MAX_WASM_BYTES: u64 = 64 << 20;

/// The routes of `/demo` (merged into [`crate::app`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/demo", get(page))
        .route("/demo/", get(page))
        .route("/demo/{file}", get(file))
}

fn enabled() -> bool {
    std::env::var("SHORTLIST_DEMO").map_or(true, |v| v != "off")
}

/// Where the WebAssembly build is read from.
fn wasm_dir() -> PathBuf {
    std::env::var_os("SHORTLIST_DEMO_WASM_DIR")
        .map_or_else(|| PathBuf::from("target/wasm-pkg"), PathBuf::from)
}

fn with_type(body: impl IntoResponse, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn disabled() -> ApiError {
    ApiError::NotFound("Not found: /demo is turned off (SHORTLIST_DEMO=off)".into())
}

async fn page(State(st): State<AppState>) -> Response {
    crate::instrumented(&st, Endpoint::Other, Instant::now(), async {
        if !enabled() {
            return Err(disabled());
        }
        // Pack the served models' bundle while the page loads, so that turning the
        // browser mode on waits only for its transfer (packing reads and checks every
        // file: about 20 ms for MovieLens 100k). Failures are logged by `bundle`.
        if WASM_FILES.iter().all(|(f, _)| wasm_dir().join(f).is_file()) {
            let st = st.clone();
            tokio::spawn(async move { bundle(&st).await });
        }
        Ok(with_type(PAGE, "text/html; charset=utf-8"))
    })
    .await
}

async fn file(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    let start = Instant::now();
    let st2 = st.clone();
    crate::instrumented(&st, Endpoint::Other, start, async move {
        if !enabled() {
            return Err(disabled());
        }
        match name.as_str() {
            "demo.js" => Ok(with_type(SCRIPT, "text/javascript; charset=utf-8")),
            "status" => Ok(json_response(StatusCode::OK, status(&st2)?)),
            "items" => {
                let snap = st2.registry.snapshot();
                let dir = served_dir(&st2, &snap, &st2.config.retrieval_model)?;
                let body = blocking(move || items_json(&dir)).await?;
                Ok(json_response(StatusCode::OK, body))
            }
            "bundle" => {
                let bytes = bundle(&st2).await?;
                Ok(with_type(bytes, "application/octet-stream"))
            }
            _ => match WASM_FILES.iter().find(|(f, _)| *f == name) {
                Some(&(f, content_type)) => {
                    let path = wasm_dir().join(f);
                    let bytes = blocking(move || {
                        shortlist_core::input::read_regular(&path, MAX_WASM_BYTES).map_err(|e| {
                            ApiError::NotFound(format!(
                                "{e}: the WebAssembly build is not there; build it with scripts/wasm/build.sh \
                                 (or point SHORTLIST_DEMO_WASM_DIR at its output)"
                            ))
                        })
                    })
                    .await?;
                    Ok(with_type(bytes, content_type))
                }
                None => Err(ApiError::NotFound(format!("Not found: GET /demo/{name}"))),
            },
        }
    })
    .await
}

/// Runs file work off the I/O threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("demo file task: {e}")))?
}

fn status(st: &AppState) -> Result<Vec<u8>, ApiError> {
    let snap = st.registry.snapshot();
    let dir = wasm_dir();
    let wasm = WASM_FILES.iter().all(|(f, _)| dir.join(f).is_file());
    let mut models = serde_json::Map::new();
    for name in [&st.config.retrieval_model, &st.config.ranking_model] {
        if let Ok(live) = snap.servable(name, None) {
            models.insert(name.clone(), Value::from(live.version));
        }
    }
    serde_json::to_vec(&json!({
        "wasm": wasm,
        "wasm_dir": dir.display().to_string(),
        "build": "scripts/wasm/build.sh",
        "retrieval_model": st.config.retrieval_model,
        "ranking_model": st.config.ranking_model,
        "models": models,
    }))
    .map_err(|e| ApiError::Internal(format!("serializing the demo status: {e}")))
}

/// The directory of the served version of `name`.
fn served_dir(st: &AppState, snap: &Snapshot, name: &str) -> Result<PathBuf, ApiError> {
    let live = snap.servable(name, None)?;
    let base = &st.config.model_base_path;
    version_dir(&base.join(name), live.version).ok_or_else(|| {
        // Answers never show server paths: the base path as the snapshot names it.
        ApiError::Unavailable(format!(
            "the served version {} of model {name} is no longer under {}",
            live.version,
            snap.base.display()
        ))
    })
}

/// The directory under `model_dir` whose name is the integer `version`.
fn version_dir(model_dir: &Path, version: u64) -> Option<PathBuf> {
    let plain = model_dir.join(version.to_string());
    if plain.is_dir() {
        return Some(plain);
    }
    std::fs::read_dir(model_dir).ok()?.flatten().find_map(|e| {
        let v = e.file_name().to_str()?.parse::<u64>().ok()?;
        (v == version && e.path().is_dir()).then(|| e.path())
    })
}

/// `[[item_id, title], …]` from a model directory's `items.tsv` (verified against
/// its manifest); OOV rows (no id) left out.
fn items_json(dir: &Path) -> Result<Vec<u8>, ApiError> {
    use shortlist_model::files::ModelFiles;
    use shortlist_model::retrieval_artifact::ITEMS;
    let bad = |e: shortlist_model::Error| {
        tracing::warn!(error = %e, "reading the demo catalogue");
        ApiError::Unavailable(
            "the served model's catalogue could not be read (the server log says why)".into(),
        )
    };
    let files = ModelFiles::open(dir).map_err(bad)?;
    let text = files.read_optional(ITEMS).map_err(bad)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let items: Vec<(&str, &str)> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.splitn(3, '\t');
            let (_row, id, title) = (cols.next()?, cols.next()?, cols.next().unwrap_or(""));
            (!id.is_empty()).then_some((id, title))
        })
        .collect();
    serde_json::to_vec(&items).map_err(|e| ApiError::Internal(format!("serializing items: {e}")))
}

/// The last bundle built: (base, candidate version, ranking version) → bytes.
type Cached = Option<((PathBuf, u64, Option<u64>), Bytes)>;
/// Held while a bundle is packed, so that a request arriving meanwhile (the page's
/// own early packing, then its fetch) waits for that one instead of packing again.
static BUNDLE: tokio::sync::Mutex<Cached> = tokio::sync::Mutex::const_new(None);

/// The bundle of the served candidate and ranking models (built once per pair of
/// versions).
async fn bundle(st: &AppState) -> Result<Bytes, ApiError> {
    let snap = st.registry.snapshot();
    let retrieval = &st.config.retrieval_model;
    let ranking = &st.config.ranking_model;
    let rv = snap.servable(retrieval, None)?.version;
    let kv = snap.servable(ranking, None).ok().map(|l| l.version);
    let key = (st.config.model_base_path.clone(), rv, kv);
    let mut cached = BUNDLE.lock().await;
    if let Some((k, bytes)) = cached.as_ref() {
        if *k == key {
            return Ok(bytes.clone());
        }
    }
    let mut dirs = vec![("retrieval", served_dir(st, &snap, retrieval)?)];
    if kv.is_some() {
        dirs.push(("ranking", served_dir(st, &snap, ranking)?));
    }
    let bytes = blocking(move || {
        let refs: Vec<(&str, &Path)> = dirs.iter().map(|(n, d)| (*n, d.as_path())).collect();
        shortlist_model::bundle::pack(&refs)
            .map(Bytes::from)
            .map_err(|e| {
                tracing::warn!(error = %e, "packing the demo bundle");
                ApiError::Unavailable(
                    "the served models could not be packed (the server log says why)".into(),
                )
            })
    })
    .await?;
    *cached = Some((key, bytes.clone()));
    Ok(bytes)
}
