//! Model registry with hot reload, over TensorFlow Serving's directory layout
//! `BASE/<model name>/<integer version>/`.
//!
//! * The highest version of each model that loads is served. When a higher version
//!   directory appears, the poller ([`Registry::spawn_poller`]) loads it in a
//!   blocking task, off the request path, then swaps it in with one atomic pointer
//!   store ([`arc_swap::ArcSwap`]). Requests that already hold the old version finish
//!   on it; the old version is freed by the poller thread once nobody uses it, so a
//!   large model is never dropped on a request thread, and its freed pages are then
//!   given back to the system (memory stays level across reloads).
//! * Models load independently: each model's versions load on their own thread, so
//!   a slow or huge version of one model never delays another's.
//! * A version that fails to load (error or panic in the loader) is logged, shown
//!   as `END` with its error in the status API, and the live version stays. It is
//!   retried with exponential backoff (1 s, 2 s, 4 s … at most 5 min) until it loads
//!   or a higher version replaces it, and sooner when its files change (once they
//!   have been still for one poll interval, so a slow copy is not re-read at every
//!   change). A lower version that is still above the live one is tried meanwhile.
//! * A version whose kind (ranking / retrieval) differs from the served version's
//!   is refused with an error in the log and the status API: a model's kind cannot
//!   change under its clients.
//! * Directories whose name is not an integer are ignored, so the temporary
//!   `.<version>.partial-*` directories of atomic writes are never loaded
//!   half-written. A version directory may be a symbolic link (followed).
//! * A version whose files change while it loads (same names, sizes, times and
//!   inodes before and after) is refused and retried once they are still.
//! * Error messages in the status API name files relative to the base path, never
//!   the server's absolute paths.
//! * If the served version's directory disappears while lower versions exist, the
//!   highest remaining one is loaded (rollback by deleting the bad version).
//! * If a model's directory disappears entirely, or holds no version any more, the
//!   last good version **keeps being served** (logged once as a warning): a
//!   mistaken `rm` or a storage hiccup must not take recommendations down. Restart
//!   the server to drop a model.
//!
//! The request path only does [`ArcSwap::load`] and a hash lookup.
//!
//! # Readiness
//!
//! [`Registry::readiness`]: the server is ready when at least one model is served
//! and every *required* model is. Required are the models named in
//! [`ServeConfig::models`](crate::ServeConfig::models) when that list is set
//! (whether or not their directory exists); otherwise the default models of the
//! native endpoints (`retrieval`, `ranking`) whose directory exists. Any other
//! directory that has no loadable version — e.g. a stray `BASE/junk/1` — is
//! reported in `/readyz` with its error but does not make the server not-ready.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::ApiError;
use crate::servable::{Loader, ModelKind, Servable};

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

/// First retry delay of a failed version; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay of a failed version.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most directory entries a version fingerprint looks at.
const FINGERPRINT_ENTRIES: usize = 10_000;

/// A version that failed to load, and when to try it again.
struct Failure {
    /// Fingerprint of its files at the last look.
    fingerprint: u64,
    attempts: u32,
    next_try: Instant,
}

/// Bookkeeping of the poller; never touched by requests.
#[derive(Default)]
struct PollBook {
    failed: FxHashMap<(String, u64), Failure>,
    /// Models whose disappearance was already logged.
    missing_logged: FxHashSet<String>,
    /// Models being loaded now (one load at a time per model).
    loading: FxHashSet<String>,
    /// Replaced versions waiting for their last in-flight request to finish.
    retired: Vec<Arc<dyn Servable>>,
}

/// A version directory to try.
struct Candidate {
    version: u64,
    path: PathBuf,
    fingerprint: u64,
}

/// The readiness of the server and of each model (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every required model is served, and at least one model is.
    pub ready: bool,
    /// Every known model with its served version, by name.
    pub models: Vec<(String, Option<u64>)>,
    /// Required models without a served version.
    pub waiting: Vec<String>,
    /// Models without a served version and the last load error of their highest
    /// version (paths relative to the base path), required or not.
    pub problems: Vec<(String, String)>,
}

/// The set of served models. Cheap to share (`Arc<Registry>`).
pub struct Registry {
    base: PathBuf,
    loader: Loader,
    only: Vec<String>,
    defaults: Vec<String>,
    settle: Duration,
    state: ArcSwap<Snapshot>,
    /// Serializes snapshot updates (loads of different models run concurrently).
    writer: Mutex<()>,
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

/// Lists the integer-named sub-directories of a model directory (symbolic links
/// followed), highest first. `None` if the directory cannot be read.
fn list_versions(dir: &Path) -> Option<Vec<(u64, PathBuf)>> {
    let rd = std::fs::read_dir(dir).ok()?;
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(v) = name.to_str().and_then(parse_version) else {
            continue;
        };
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            out.push((v, path));
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Some(out)
}

/// A cheap fingerprint of a version directory's files: names, sizes, modification
/// times and inodes, two levels deep (stat calls only, no reads).
fn fingerprint(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize, seen: &mut usize, h: &mut rustc_hash::FxHasher) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            0u8.hash(h);
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            *seen += 1;
            if *seen > FINGERPRINT_ENTRIES {
                return;
            }
            e.file_name().hash(h);
            if let Ok(m) = std::fs::metadata(e.path()) {
                m.len().hash(h);
                m.modified().ok().hash(h);
                #[cfg(unix)]
                std::os::unix::fs::MetadataExt::ino(&m).hash(h);
                if m.is_dir() && depth > 0 {
                    walk(&e.path(), depth - 1, seen, h);
                }
            }
        }
    }
    let mut h = rustc_hash::FxHasher::default();
    let mut seen = 0;
    if let Ok(m) = std::fs::metadata(dir) {
        m.modified().ok().hash(&mut h);
    }
    walk(dir, 1, &mut seen, &mut h);
    h.finish()
}

/// A version directory name: decimal digits only (no sign, no dot).
pub(crate) fn parse_version(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Delay before the `attempts`-th retry.
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

impl Registry {
    /// A registry over `base` that loads versions with `loader`. `models` empty:
    /// every non-hidden sub-directory of `base` is a model; otherwise only those.
    /// Nothing is loaded until [`Registry::poll_once`].
    pub fn new(base: impl Into<PathBuf>, loader: Loader, models: Vec<String>) -> Self {
        let base = base.into();
        // Answers name the base path as the operator typed it when relative; an
        // absolute path is never shown to clients.
        let shown = if base.is_absolute() {
            PathBuf::from(".")
        } else {
            base.clone()
        };
        let mut snap = Snapshot {
            base: shown,
            ..Snapshot::default()
        };
        for m in &models {
            snap.models.insert(m.clone(), ModelState::default());
        }
        Registry {
            base,
            loader,
            only: models,
            defaults: Vec::new(),
            settle: Duration::from_secs(1),
            state: ArcSwap::from_pointee(snap),
            writer: Mutex::new(()),
            book: Mutex::new(PollBook::default()),
        }
    }

    /// Models required for readiness when no explicit model list is set, if their
    /// directory exists (the server passes the native endpoints' default models).
    pub fn with_default_models(mut self, names: Vec<String>) -> Self {
        self.defaults = names;
        self
    }

    /// How long a failed version's files must stay unchanged before a retry
    /// (the server passes its poll interval). Default 1 s.
    pub fn with_settle_time(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The current view of all models (lock-free).
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.state.load()
    }

    /// Readiness of the server and of each model; see the module documentation
    /// for the rule.
    pub fn readiness(&self) -> Readiness {
        let snap = self.snapshot();
        let mut models: Vec<(String, Option<u64>)> = snap
            .models
            .iter()
            .map(|(n, m)| (n.clone(), m.live.as_ref().map(|l| l.version)))
            .collect();
        models.sort();
        let required: Vec<&String> = if self.only.is_empty() {
            self.defaults
                .iter()
                .filter(|d| snap.models.contains_key(*d))
                .collect()
        } else {
            self.only.iter().collect()
        };
        let served = |n: &str| snap.models.get(n).is_some_and(|m| m.live.is_some());
        let waiting: Vec<String> = required
            .iter()
            .filter(|n| !served(n))
            .map(|n| (*n).clone())
            .collect();
        let problems = models
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| {
                let why = snap
                    .models
                    .get(n)
                    .and_then(|m| {
                        m.versions.iter().find_map(|s| {
                            s.error
                                .as_ref()
                                .map(|e| format!("version {}: {e}", s.version))
                        })
                    })
                    .unwrap_or_else(|| "no version loaded yet".to_string());
                (n.clone(), why)
            })
            .collect();
        let ready = waiting.is_empty() && models.iter().any(|(_, v)| v.is_some());
        Readiness {
            ready,
            models,
            waiting,
            problems,
        }
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut ModelState)) {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Snapshot::clone(&self.state.load());
        f(next.models.entry(name.to_string()).or_default());
        self.state.store(Arc::new(next));
    }

    fn book(&self) -> std::sync::MutexGuard<'_, PollBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `msg` with the base path removed, so API answers never show server paths.
    fn relative(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        let mut bases = vec![self.base.clone()];
        if let Ok(c) = self.base.canonicalize() {
            bases.push(c);
        }
        for b in bases {
            let b = b.display().to_string();
            let b = b.trim_end_matches('/');
            if !b.is_empty() {
                out = out.replace(&format!("{b}/"), "").replace(b, ".");
            }
        }
        out
    }

    /// One scan of the base path that loads every new highest version and swaps it
    /// in, each model on its own thread; returns when all loads are done.
    /// Blocking (file system and loader).
    pub fn poll_once(&self) {
        let work = self.scan();
        std::thread::scope(|s| {
            for (name, candidates) in &work {
                s.spawn(move || self.load_model(name, candidates));
            }
        });
    }

    /// One scan that starts a load thread for each model with work and returns at
    /// once; a model still loading from an earlier scan is skipped.
    fn poll_in_background(self: &Arc<Self>) {
        for (name, candidates) in self.scan() {
            let reg = Arc::clone(self);
            let n = name.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("shortlist-load-{name}"))
                .spawn(move || reg.load_model(&n, &candidates));
            if let Err(e) = spawned {
                tracing::error!(model = %name, error = %e, "cannot start a model-loading thread");
                // Nothing was loaded: the next scan tries again.
                self.book().loading.remove(&name);
            }
        }
    }

    /// Frees replaced versions that no request uses any more, then gives the freed
    /// pages back to the system ([`shortlist_core::alloc::release_free_memory`]):
    /// without it, the small blocks of each version settle in the allocator's heaps
    /// and the resident size creeps up by a few MB per reload.
    fn free_retired(&self) {
        let freed: Vec<Arc<dyn Servable>> = {
            let mut book = self.book();
            let (freed, kept) = std::mem::take(&mut book.retired)
                .into_iter()
                .partition(|s| Arc::strong_count(s) == 1);
            book.retired = kept;
            freed
        };
        if !freed.is_empty() {
            drop(freed);
            shortlist_core::alloc::release_free_memory();
        }
    }

    /// Finds the models with versions to load and marks them loading.
    fn scan(&self) -> Vec<(String, Vec<Candidate>)> {
        self.free_retired();
        let mut book = self.book();

        let names: Vec<String> = if self.only.is_empty() {
            match std::fs::read_dir(&self.base) {
                Ok(rd) => {
                    let mut v: Vec<String> = rd
                        .flatten()
                        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .filter(|n| !n.starts_with('.'))
                        .collect();
                    v.sort();
                    v
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the model base path");
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

        let mut work = Vec::new();
        for name in names {
            if book.loading.contains(&name) {
                continue;
            }
            let candidates = self.plan(&name, &mut book);
            if !candidates.is_empty() {
                book.loading.insert(name.clone());
                work.push((name, candidates));
            }
        }
        work
    }

    /// The versions of `name` to try now, highest first: those above the served
    /// one (all, if the served one's directory is gone), minus failed versions
    /// still waiting for their retry.
    fn plan(&self, name: &str, book: &mut PollBook) -> Vec<Candidate> {
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
            } else if !self.snapshot().models.contains_key(name) {
                // Known (and reported by /readyz) from the first scan on.
                self.update(name, |_| {});
            }
            return Vec::new();
        }
        book.missing_logged.remove(name);
        // Forget failures of versions that no longer exist.
        book.failed
            .retain(|(n, v), _| n != name || versions.iter().any(|(x, _)| x == v));

        let now = Instant::now();
        let mut out = Vec::new();
        for (version, path) in versions {
            if Some(version) == live_version {
                break;
            }
            let fp = fingerprint(&path);
            if let Some(f) = book.failed.get_mut(&(name.to_string(), version)) {
                if f.fingerprint != fp {
                    // Changed since it failed: retry once it has been still a while.
                    f.fingerprint = fp;
                    f.next_try = now + self.settle;
                    continue;
                }
                if now < f.next_try {
                    continue;
                }
            }
            out.push(Candidate {
                version,
                path,
                fingerprint: fp,
            });
        }
        out
    }

    /// Tries `candidates` highest first until one loads; records failures.
    fn load_model(&self, name: &str, candidates: &[Candidate]) {
        for c in candidates {
            if self.load_version(name, c) {
                break;
            }
        }
        self.book().loading.remove(name);
    }

    /// Loads one version and swaps it in; `false` if it failed or was refused.
    fn load_version(&self, name: &str, c: &Candidate) -> bool {
        let version = c.version;
        let rel = self.relative(&c.path.display().to_string());
        self.update(name, |m| m.set_status(version, VersionState::Loading, None));
        tracing::info!(model = %name, version, path = %rel, "loading model version");
        let started = Instant::now();
        let loader = &self.loader;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader(&c.path)))
            .unwrap_or_else(|_| Err("the loader panicked".to_string()));
        let live = self
            .snapshot()
            .models
            .get(name)
            .and_then(|m| m.live.clone());
        // A file changed while it was read (copied in place, rewritten): what was
        // loaded may mix old and new bytes, so it is not served.
        let result = result.and_then(|servable| {
            if fingerprint(&c.path) == c.fingerprint {
                Ok(servable)
            } else {
                Err("its files changed while it was loading; retrying once they are still".into())
            }
        });
        let result = result.and_then(|servable| match &live {
            Some(l) if l.servable.kind() != servable.kind() => {
                Err(kind_change(servable.kind(), l.servable.kind(), l.version))
            }
            _ => Ok(servable),
        });
        match result {
            Ok(servable) => {
                self.book().failed.remove(&(name.to_string(), version));
                let mut old = None;
                self.update(name, |m| {
                    if let Some(prev) = m.live.take() {
                        m.set_status(prev.version, VersionState::End, None);
                        old = Some(prev.servable);
                    }
                    m.set_status(version, VersionState::Available, None);
                    m.live = Some(LiveModel { version, servable });
                });
                self.book().retired.extend(old);
                tracing::info!(model = %name, version, previous = ?live.map(|l| l.version),
                    load_ms = started.elapsed().as_millis() as u64, "model version now served");
                true
            }
            Err(msg) => {
                let msg = self.relative(&msg);
                let attempts = {
                    let mut book = self.book();
                    let f = book
                        .failed
                        .entry((name.to_string(), version))
                        .or_insert(Failure {
                            fingerprint: c.fingerprint,
                            attempts: 0,
                            next_try: Instant::now(),
                        });
                    f.attempts += 1;
                    f.fingerprint = c.fingerprint;
                    f.next_try = Instant::now() + backoff(f.attempts);
                    f.attempts
                };
                tracing::error!(model = %name, version, path = %rel, error = %msg, attempts,
                    retry_in_s = backoff(attempts).as_secs(),
                    "model version failed to load; keeping the previous one");
                self.update(name, |m| {
                    m.load_failures += 1;
                    m.set_status(version, VersionState::End, Some(msg));
                });
                false
            }
        }
    }

    /// Polls every `interval` until the returned task is aborted. Each scan runs in
    /// a blocking task and each model's load on its own thread, so loading never
    /// blocks request threads or other models.
    pub fn spawn_poller(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let reg = Arc::clone(&self);
                if let Err(e) = tokio::task::spawn_blocking(move || reg.poll_in_background()).await
                {
                    tracing::error!(error = %e, "model poller task failed");
                }
            }
        })
    }
}

fn kind_change(new: ModelKind, served: ModelKind, served_version: u64) -> String {
    format!(
        "refused: this version is a {} model but version {served_version}, being served, is a {} model \
         (a model's kind cannot change while it is served; use another model name, or restart the server)",
        new.as_str(),
        served.as_str()
    )
}

#[cfg(test)]
mod tests;
