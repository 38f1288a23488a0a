//! Model registry with hot reload, over TensorFlow Serving's directory layout
//! `BASE/<model name>/<integer version>/`.
//!
//! * The highest version of each model that loads is served. When a higher version
//!   directory appears, the poller ([`Registry::spawn_poller`]) loads it in a
//!   blocking task, off the request path, then swaps it in with one atomic pointer
//!   store ([`arc_swap::ArcSwap`]). Requests that already hold the old version finish
//!   on it; the old version is freed by the poller thread once nobody uses it, so a
//!   large model is never dropped on a request thread.
//! * A version that fails to load (error or panic in the loader) is logged, shown
//!   as `END` with its error in the status API, and the live version stays. It is
//!   not retried on every poll: only when its directory's modification time changes.
//!   A lower version that is still above the live one is tried next.
//! * Directories whose name is not an integer are ignored, so the temporary
//!   `.<version>.partial-*` directories of atomic writes are never loaded half-written.
//! * If the served version's directory disappears while lower versions exist, the
//!   highest remaining one is loaded (rollback by deleting the bad version).
//! * If a model's directory disappears entirely, or holds no version any more, the
//!   last good version **keeps being served** (logged once as a warning): a
//!   mistaken `rm` or a storage hiccup must not take recommendations down. Restart
//!   the server to drop a model.
//!
//! The request path only does [`ArcSwap::load`] and a hash lookup.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::ApiError;
use crate::servable::{Loader, Servable};

/// The version of a model that answers requests.
#[derive(Clone)]
pub struct LiveModel {
    /// Its version number (the directory name).
    pub version: u64,
    /// The loaded model.
    pub servable: Arc<dyn Servable>,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("version", &self.version)
            .field("kind", &self.servable.kind())
            .finish()
    }
}

/// TensorFlow Serving's `ModelVersionStatus.State` values that this server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Being loaded.
    Loading,
    /// Loaded and served.
    Available,
    /// Replaced by a newer version, or failed to load (then with an error).
    End,
}

impl VersionState {
    /// The string used in the status JSON (`"LOADING"`, `"AVAILABLE"`, `"END"`).
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Loading => "LOADING",
            VersionState::Available => "AVAILABLE",
            VersionState::End => "END",
        }
    }
}

/// Status of one version, as reported by `GET /v1/models/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// Version number.
    pub version: u64,
    /// Lifecycle state.
    pub state: VersionState,
    /// The load error, if loading failed.
    pub error: Option<String>,
}

/// Everything known about one model.
#[derive(Debug, Clone, Default)]
pub struct ModelState {
    /// The served version, if any loaded.
    pub live: Option<LiveModel>,
    /// Versions seen, highest first.
    pub versions: Vec<VersionStatus>,
    /// Number of failed loads since start.
    pub load_failures: u64,
}

impl ModelState {
    fn set_status(&mut self, version: u64, state: VersionState, error: Option<String>) {
        match self.versions.iter_mut().find(|s| s.version == version) {
            Some(s) => {
                s.state = state;
                s.error = error;
            }
            None => {
                self.versions.push(VersionStatus {
                    version,
                    state,
                    error,
                });
                self.versions.sort_by_key(|s| std::cmp::Reverse(s.version));
            }
        }
    }
}

/// An immutable view of all models, swapped as a whole on every change.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Models by name.
    pub models: FxHashMap<String, ModelState>,
    /// The model base path (named in not-found answers).
    pub base: PathBuf,
}

impl Snapshot {
    /// The live version of `name` (`version` `None`: latest), with TensorFlow
    /// Serving's `NOT_FOUND` message otherwise, followed by what the base path lacks
    /// ([`crate::layout::not_found_message`]).
    pub fn servable(&self, name: &str, version: Option<u64>) -> Result<&LiveModel, ApiError> {
        let model = self.models.get(name);
        let live = model.and_then(|m| m.live.as_ref());
        match (live, version) {
            (Some(l), None) => Ok(l),
            (Some(l), Some(v)) if l.version == v => Ok(l),
            _ => Err(ApiError::NotFound(crate::layout::not_found_message(
                &self.base,
                name,
                version,
                model.is_some_and(|m| !m.versions.is_empty()),
                live.map(|l| l.version),
                &self.loaded(),
            ))),
        }
    }

    /// Names of the models with a loaded version, sorted.
    fn loaded(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .models
            .iter()
            .filter(|(_, m)| m.live.is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// Version statuses of `name` (all, or only `version`), with TensorFlow
    /// Serving's `NOT_FOUND` messages for unknown models and versions.
    pub fn status(&self, name: &str, version: Option<u64>) -> Result<Vec<VersionStatus>, ApiError> {
        let model = self
            .models
            .get(name)
            .filter(|m| !m.versions.is_empty())
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Could not find any versions of model {name}. {}",
                    crate::layout::missing_model(&self.base, name, &self.loaded())
                ))
            })?;
        match version {
            None => Ok(model.versions.clone()),
            Some(v) => model
                .versions
                .iter()
                .find(|s| s.version == v)
                .map(|s| vec![s.clone()])
                .ok_or_else(|| {
                    ApiError::NotFound(format!("Could not find version {v} of model {name}"))
                }),
        }
    }
}

/// Bookkeeping of the poller; never touched by requests.
#[derive(Default)]
struct PollBook {
    /// Failed versions and the directory mtime they failed with.
    failed: FxHashMap<(String, u64), Option<SystemTime>>,
    /// Models whose disappearance was already logged.
    missing_logged: FxHashSet<String>,
    /// Replaced versions waiting for their last in-flight request to finish.
    retired: Vec<Arc<dyn Servable>>,
}

/// The set of served models. Cheap to share (`Arc<Registry>`).
pub struct Registry {
    base: PathBuf,
    loader: Loader,
    only: Vec<String>,
    state: ArcSwap<Snapshot>,
    book: Mutex<PollBook>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .field("only", &self.only)
            .finish_non_exhaustive()
    }
}

/// Lists the integer-named sub-directories of a model directory, highest first.
/// `None` if the directory cannot be read.
fn list_versions(dir: &Path) -> Option<Vec<(u64, PathBuf, Option<SystemTime>)>> {
    let rd = std::fs::read_dir(dir).ok()?;
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(v) = name.to_str().and_then(parse_version) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            out.push((v, entry.path(), meta.modified().ok()));
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Some(out)
}

/// A version directory name: decimal digits only (no sign, no dot).
pub(crate) fn parse_version(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Registry {
    /// A registry over `base` that loads versions with `loader`. `models` empty:
    /// every non-hidden sub-directory of `base` is a model; otherwise only those.
    /// Nothing is loaded until [`Registry::poll_once`].
    pub fn new(base: impl Into<PathBuf>, loader: Loader, models: Vec<String>) -> Self {
        let base = base.into();
        let mut snap = Snapshot {
            base: PathBuf::clone(&base),
            ..Snapshot::default()
        };
        for m in &models {
            snap.models.insert(m.clone(), ModelState::default());
        }
        Registry {
            base,
            loader,
            only: models,
            state: ArcSwap::from_pointee(snap),
            book: Mutex::new(PollBook::default()),
        }
    }

    /// The current view of all models (lock-free).
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.state.load()
    }

    /// `(ready, models)`: ready when at least one model is known and every known
    /// model has a live version; `models` lists each model with its live version.
    pub fn readiness(&self) -> (bool, Vec<(String, Option<u64>)>) {
        let snap = self.snapshot();
        let mut models: Vec<(String, Option<u64>)> = snap
            .models
            .iter()
            .map(|(n, m)| (n.clone(), m.live.as_ref().map(|l| l.version)))
            .collect();
        models.sort();
        let ready = !models.is_empty() && models.iter().all(|(_, v)| v.is_some());
        (ready, models)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut ModelState)) {
        // Only the poller writes, so load + store cannot lose an update.
        let mut next = Snapshot::clone(&self.state.load());
        f(next.models.entry(name.to_string()).or_default());
        self.state.store(Arc::new(next));
    }

    /// One scan of the base path: loads every new highest version and swaps it in.
    /// Blocking (file system and loader); the server runs it in
    /// [`tokio::task::spawn_blocking`].
    pub fn poll_once(&self) {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        // Free replaced versions that no request uses any more.
        book.retired.retain(|s| Arc::strong_count(s) > 1);

        let names: Vec<String> = if self.only.is_empty() {
            match std::fs::read_dir(&self.base) {
                Ok(rd) => {
                    let mut v: Vec<String> = rd
                        .flatten()
                        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .filter(|n| !n.starts_with('.'))
                        .collect();
                    v.sort();
                    v
                }
                Err(e) => {
                    tracing::warn!(base = %self.base.display(), error = %e, "cannot read the model base path");
                    Vec::new()
                }
            }
        } else {
            self.only.clone()
        };

        // Models that were served but whose directory is gone: keep them.
        let snap = self.snapshot();
        for (name, m) in snap.models.iter() {
            if !names.contains(name) {
                if let Some(live) = &m.live {
                    if book.missing_logged.insert(name.clone()) {
                        tracing::warn!(model = %name, version = live.version,
                            "model directory disappeared; keeping the last good version");
                    }
                }
            }
        }
        drop(snap);

        for name in &names {
            self.poll_model(name, &mut book);
        }
    }

    fn poll_model(&self, name: &str, book: &mut PollBook) {
        let dir = self.base.join(name);
        let live_version = self
            .snapshot()
            .models
            .get(name)
            .and_then(|m| m.live.as_ref().map(|l| l.version));
        let versions = list_versions(&dir).unwrap_or_default();
        if versions.is_empty() {
            if let Some(v) = live_version {
                if book.missing_logged.insert(name.to_string()) {
                    tracing::warn!(model = %name, version = v,
                        "model has no version directory any more; keeping the last good version");
                }
            }
            return;
        }
        book.missing_logged.remove(name);

        for (version, path, mtime) in versions {
            if Some(version) == live_version {
                return;
            }
            let key = (name.to_string(), version);
            if book.failed.get(&key).is_some_and(|m| *m == mtime) {
                continue;
            }
            self.update(name, |m| m.set_status(version, VersionState::Loading, None));
            tracing::info!(model = %name, version, path = %path.display(), "loading model version");
            let started = std::time::Instant::now();
            let loader = &self.loader;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader(&path)))
                .unwrap_or_else(|_| Err("the loader panicked".to_string()));
            match result {
                Ok(servable) => {
                    book.failed.remove(&key);
                    let mut old = None;
                    self.update(name, |m| {
                        if let Some(prev) = m.live.take() {
                            m.set_status(prev.version, VersionState::End, None);
                            old = Some(prev.servable);
                        }
                        m.set_status(version, VersionState::Available, None);
                        m.live = Some(LiveModel { version, servable });
                    });
                    book.retired.extend(old);
                    tracing::info!(model = %name, version, previous = ?live_version,
                        load_ms = started.elapsed().as_millis() as u64, "model version now served");
                    return;
                }
                Err(msg) => {
                    tracing::error!(model = %name, version, path = %path.display(), error = %msg,
                        "model version failed to load; keeping the previous one");
                    book.failed.insert(key, mtime);
                    self.update(name, |m| {
                        m.load_failures += 1;
                        m.set_status(version, VersionState::End, Some(msg));
                    });
                }
            }
        }
    }

    /// Polls every `interval` until the returned task is aborted. Each scan runs in
    /// a blocking task, so loading never blocks request threads.
    pub fn spawn_poller(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let reg = Arc::clone(&self);
                if let Err(e) = tokio::task::spawn_blocking(move || reg.poll_once()).await {
                    tracing::error!(error = %e, "model poller task failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("0012"), Some(12));
        assert_eq!(parse_version(".1.partial-abc"), None);
        assert_eq!(parse_version("1.old-42"), None);
        assert_eq!(parse_version("-1"), None);
        assert_eq!(parse_version("+1"), None);
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("99999999999999999999999"), None);
    }

    #[test]
    fn not_found_messages_start_with_tf_serving_wording() {
        let snap = Snapshot {
            base: PathBuf::from("models"),
            ..Snapshot::default()
        };
        let why = "The model base path models has no model \"m\" (expected models/m/<version>); models loaded: none (the server log says at start-up what the path holds)";
        assert_eq!(
            snap.servable("m", None).unwrap_err().to_string(),
            format!("Servable not found for request: Latest(m). {why}")
        );
        assert_eq!(
            snap.servable("m", Some(3)).unwrap_err().to_string(),
            format!("Servable not found for request: Specific(m, 3). {why}")
        );
        assert_eq!(
            snap.status("m", None).unwrap_err().to_string(),
            format!("Could not find any versions of model m. {why}")
        );
    }
}
