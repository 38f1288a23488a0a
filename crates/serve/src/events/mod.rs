//! `POST /v1/events`: interactions that change the next answer.
//!
//! A batch `{"events": [{"user_id", "item_id", "event", "timestamp"?}, …]}` is
//! checked whole (one bad entry refuses the batch, naming it), appended to the
//! durable log ([`log`]) and added to the users' in-memory histories ([`store`]);
//! only then is it acknowledged. From the next request on, `/v1/recommend` and
//! `/v1/rank` treat a user's remembered events as history (seen items are excluded,
//! the query moves; an unknown user is folded in from them) — see
//! [`Events::history`]. On restart the log is replayed, a torn last record dropped.
//!
//! Writes go through one writer thread that takes every batch waiting and commits
//! them together (group commit): one `write` and, with [`FsyncPolicy::Batch`], one
//! `fsync` per group, so many small concurrent batches cost one disk flush.

pub mod log;
pub mod store;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::native::Id;

pub use store::{EventStore, Stored};

/// One interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The user's raw id (may be unknown to the models).
    pub user_id: String,
    /// The item's raw id (may be unknown to the models).
    pub item_id: String,
    /// The event's name, from the event table.
    pub event: String,
    /// Its strength, from the event table.
    pub strength: f32,
    /// Unix seconds.
    pub timestamp: i64,
}

/// When appended events reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before every acknowledgement (one `fsync` per group of batches). Default:
    /// an acknowledged event survives a power cut.
    Batch,
    /// At most this long after being written; acknowledgements do not wait. A crash
    /// of the process loses nothing, a power cut at most this much.
    Interval(Duration),
    /// When the operating system decides.
    Never,
}

impl FsyncPolicy {
    /// Parses `batch`, `never`, or an interval such as `100ms` or `2s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let interval = |n: &str, unit: u64| {
            n.parse::<u64>()
                .ok()
                .filter(|&v| v > 0)
                .map(|v| FsyncPolicy::Interval(Duration::from_millis(v * unit)))
        };
        match s {
            "batch" => Ok(FsyncPolicy::Batch),
            "never" => Ok(FsyncPolicy::Never),
            _ => s
                .strip_suffix("ms")
                .and_then(|n| interval(n, 1))
                .or_else(|| s.strip_suffix('s').and_then(|n| interval(n, 1000)))
                .ok_or_else(|| {
                    format!("expected \"batch\", \"never\" or an interval such as \"100ms\" or \"1s\", got {s:?}")
                }),
        }
    }
}

/// Event names and their strengths (how much an event says about the user's
/// interest; the models weigh history items by it).
#[derive(Debug, Clone, PartialEq)]
pub struct EventTable(pub Vec<(String, f32)>);

impl Default for EventTable {
    fn default() -> Self {
        EventTable(vec![
            ("view".into(), 1.0),
            ("click".into(), 2.0),
            ("like".into(), 3.0),
            ("purchase".into(), 5.0),
        ])
    }
}

impl EventTable {
    /// Parses `name=strength,…` (e.g. `view=1,click=2,purchase=5`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out: Vec<(String, f32)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected name=strength, got {part:?}"))?;
            let name = name.trim();
            if name.is_empty() || name.len() > log::MAX_EVENT_BYTES {
                return Err(format!(
                    "event name {name:?}: expected 1 to {} bytes",
                    log::MAX_EVENT_BYTES
                ));
            }
            let strength: f32 = v
                .trim()
                .parse()
                .ok()
                .filter(|x: &f32| x.is_finite() && *x > 0.0 && *x <= 1e6)
                .ok_or_else(|| {
                    format!("event {name:?}: expected a positive strength up to 1e6, got {v:?}")
                })?;
            if out.iter().any(|(n, _)| n == name) {
                return Err(format!("event {name:?} is given twice"));
            }
            out.push((name.to_string(), strength));
        }
        if out.is_empty() {
            return Err("expected at least one name=strength".into());
        }
        Ok(EventTable(out))
    }

    /// The strength of event `name`.
    pub fn strength(&self, name: &str) -> Option<f32> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
    }

    /// The names, quoted, for error messages.
    pub fn names(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|(n, _)| format!("{n:?}")).collect();
        names.join(", ")
    }
}

/// Settings of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// The log file. Default `BASE/.events/events.log`.
    pub log_path: PathBuf,
    /// When appended events reach the disk.
    pub fsync: FsyncPolicy,
    /// Events remembered per user (the latest). Default 200.
    pub max_per_user: usize,
    /// Users remembered (the most recently active). Default 1,000,000.
    pub max_users: usize,
    /// Accepted event names.
    pub table: EventTable,
}

impl EventsConfig {
    /// The defaults for a model base path.
    pub fn for_base(base: &Path) -> Self {
        EventsConfig {
            log_path: base.join(".events").join("events.log"),
            fsync: FsyncPolicy::Batch,
            max_per_user: 200,
            max_users: 1_000_000,
            table: EventTable::default(),
        }
    }
}

struct Commit {
    bytes: Vec<u8>,
    events: Vec<Event>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The event log and the users' histories; see the [module](self) documentation.
#[derive(Debug)]
pub struct Events {
    store: Arc<EventStore>,
    writer: Result<SyncSender<Commit>, String>,
    table: EventTable,
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Commit({} events)", self.events.len())
    }
}

/// How long opening a log waits for another process (a server shutting down) to
/// release its lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Batches waiting for the writer before new ones are refused with 503.
const QUEUE: usize = 1024;

impl Events {
    /// Opens the log (creating it), replays it into memory and starts the writer.
    /// A log that cannot be opened leaves events unavailable (`POST /v1/events`
    /// answers 503 with the reason; recommendations work without them) and is logged.
    pub fn open(cfg: &EventsConfig) -> Self {
        let store = Arc::new(EventStore::new(cfg.max_per_user, cfg.max_users));
        let mut replayed = 0usize;
        // A server still shutting down may hold the log for a moment.
        let opened = log::Appender::open_waiting(&cfg.log_path, &log::EVENT_LOG, LOCK_WAIT, |p| {
            match log::decode_event(p) {
                Some(e) => {
                    replayed += 1;
                    store.apply(std::slice::from_ref(&e));
                    true
                }
                None => false,
            }
        });
        let writer = match opened {
            Ok((appender, replay)) => {
                if replay.dropped_bytes > 0 {
                    tracing::warn!(
                        log = %cfg.log_path.display(),
                        dropped_bytes = replay.dropped_bytes,
                        "event log: dropped a torn or damaged tail (a write cut off by a crash)"
                    );
                }
                tracing::info!(
                    log = %cfg.log_path.display(),
                    events = replayed,
                    users = store.num_users(),
                    "event log replayed"
                );
                spawn_writer(appender, cfg.fsync, Arc::clone(&store))
                    .map_err(|e| format!("cannot start the event log writer: {e}"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "event log unavailable: POST /v1/events will answer 503");
                Err(format!("the event log is unavailable: {e}"))
            }
        };
        Events {
            store,
            writer,
            table: cfg.table.clone(),
        }
    }

    /// The user's remembered events, oldest first.
    pub fn history(&self, user_id: &str) -> Vec<Stored> {
        self.store.history(user_id)
    }

    /// The event table.
    pub fn table(&self) -> &EventTable {
        &self.table
    }

    /// Appends `events` to the log and the store; returns when they are durable
    /// (per the fsync policy) and visible to the next request.
    pub async fn commit(&self, events: Vec<Event>) -> Result<usize, ApiError> {
        let writer = self
            .writer
            .as_ref()
            .map_err(|e| ApiError::Unavailable(e.clone()))?;
        let n = events.len();
        if n == 0 {
            return Ok(0);
        }
        let mut bytes = Vec::with_capacity(n * 48);
        for e in &events {
            log::encode(e, &mut bytes);
        }
        let (done, rx) = tokio::sync::oneshot::channel();
        match writer.try_send(Commit {
            bytes,
            events,
            done,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::Overloaded(
                    "the event log is busy; retry later".into(),
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::Unavailable("the event log writer stopped".into()))
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(n),
            Ok(Err(e)) => Err(ApiError::Internal(format!("event log: {e}"))),
            Err(_) => Err(ApiError::Unavailable("the event log writer stopped".into())),
        }
    }
}

fn spawn_writer(
    mut log: log::Appender,
    policy: FsyncPolicy,
    store: Arc<EventStore>,
) -> std::io::Result<SyncSender<Commit>> {
    let (tx, rx) = mpsc::sync_channel::<Commit>(QUEUE);
    std::thread::Builder::new()
        .name("shortlist-events".into())
        .spawn(move || {
            let mut dirty_since: Option<Instant> = None;
            loop {
                let first = match (policy, dirty_since) {
                    (FsyncPolicy::Interval(every), Some(t)) => {
                        match rx.recv_timeout(every.saturating_sub(t.elapsed())) {
                            Ok(c) => Some(c),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    _ => match rx.recv() {
                        Ok(c) => Some(c),
                        Err(_) => break,
                    },
                };
                if let (FsyncPolicy::Interval(every), Some(t)) = (policy, dirty_since) {
                    if t.elapsed() >= every {
                        if let Err(e) = log.sync() {
                            tracing::error!(error = %e, "event log: fsync failed");
                        }
                        dirty_since = None;
                    }
                }
                let Some(first) = first else { continue };
                let mut group = vec![first];
                let mut size = group[0].bytes.len();
                while size < 8 << 20 {
                    match rx.try_recv() {
                        Ok(c) => {
                            size += c.bytes.len();
                            group.push(c);
                        }
                        Err(_) => break,
                    }
                }
                let mut bytes = Vec::with_capacity(size);
                for c in &group {
                    bytes.extend_from_slice(&c.bytes);
                }
                let result = log
                    .append(&bytes, policy == FsyncPolicy::Batch)
                    .map_err(|e| e.to_string());
                match &result {
                    Ok(()) => {
                        for c in &group {
                            store.apply(&c.events);
                        }
                        if matches!(policy, FsyncPolicy::Interval(_)) && dirty_since.is_none() {
                            dirty_since = Some(Instant::now());
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "event log: append failed; the batch is refused");
                    }
                }
                for c in group {
                    let _ = c.done.send(result.clone());
                }
            }
            if let Err(e) = log.sync() {
                tracing::error!(error = %e, "event log: final fsync failed");
            }
        })?;
    Ok(tx)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody<'a> {
    #[serde(borrow)]
    events: Vec<EventIn<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn<'a> {
    #[serde(borrow)]
    user_id: Id<'a>,
    #[serde(borrow)]
    item_id: Id<'a>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    timestamp: Option<i64>,
}

/// Latest accepted event timestamp: a day past the clock `now` (clock skew). The
/// server and `shortlist events import` accept `0..=latest_timestamp(now)`.
pub fn latest_timestamp(now: i64) -> i64 {
    now + 86_400
}

/// The clock, in Unix seconds.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Checks a `POST /v1/events` body whole; errors name the entry and field.
pub(crate) fn parse_batch(table: &EventTable, body: &[u8]) -> Result<Vec<Event>, ApiError> {
    let parsed: EventsBody<'_> = serde_json::from_slice(body).map_err(|e| explain(body, e))?;
    let now = now_secs();
    let latest = latest_timestamp(now);
    parsed
        .events
        .into_iter()
        .enumerate()
        .map(|(n, e)| {
            for (field, id) in [("user_id", &e.user_id), ("item_id", &e.item_id)] {
                if id.0.is_empty() || id.0.len() > log::MAX_ID_BYTES {
                    return Err(ApiError::invalid(format!(
                        "events[{n}].{field}: expected 1 to {} bytes, got {}",
                        log::MAX_ID_BYTES,
                        id.0.len()
                    )));
                }
            }
            let strength = table.strength(&e.event).ok_or_else(|| {
                ApiError::invalid(format!(
                    "events[{n}].event must be one of {}, got {:?}",
                    table.names(),
                    e.event
                ))
            })?;
            let timestamp = e.timestamp.unwrap_or(now);
            if !(0..=latest).contains(&timestamp) {
                return Err(ApiError::invalid(format!(
                    "events[{n}].timestamp must be Unix seconds between 0 and {latest} (a day past the server's clock), got {timestamp}"
                )));
            }
            Ok(Event {
                user_id: e.user_id.0.into_owned(),
                item_id: e.item_id.0.into_owned(),
                event: e.event.into_owned(),
                strength,
                timestamp,
            })
        })
        .collect()
}

/// Why a body did not deserialize, naming the entry and field (slow path only).
fn explain(body: &[u8], serde_err: serde_json::Error) -> ApiError {
    let v = match crate::strict_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return ApiError::invalid(format!("JSON Parse error: {e}")),
    };
    let Value::Object(map) = &v else {
        return ApiError::invalid("Request body must be a JSON object {\"events\": [...]}");
    };
    if let Some(k) = map.keys().find(|k| *k != "events") {
        return ApiError::invalid(format!("unknown field \"{k}\"; expected \"events\""));
    }
    let Some(list) = map.get("events") else {
        return ApiError::invalid("missing field \"events\"");
    };
    let Some(list) = list.as_array() else {
        return ApiError::invalid(format!("field \"events\" must be a list, got {list}"));
    };
    const FIELDS: [&str; 4] = ["user_id", "item_id", "event", "timestamp"];
    let is_id = |v: &Value| v.is_string() || v.is_i64() || v.is_u64();
    for (n, e) in list.iter().enumerate() {
        let Some(o) = e.as_object() else {
            return ApiError::invalid(format!(
                "events[{n}] must be an object {{\"user_id\", \"item_id\", \"event\", \"timestamp\"}}, got {e}"
            ));
        };
        if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return ApiError::invalid(format!(
                "events[{n}]: unknown field \"{k}\"; expected one of: {}",
                FIELDS.join(", ")
            ));
        }
        for f in ["user_id", "item_id"] {
            match o.get(f) {
                None => return ApiError::invalid(format!("events[{n}]: missing field \"{f}\"")),
                Some(v) if !is_id(v) => {
                    return ApiError::invalid(format!(
                        "events[{n}].{f} must be a string or integer id, got {v}"
                    ))
                }
                Some(_) => {}
            }
        }
        match o.get("event") {
            None => return ApiError::invalid(format!("events[{n}]: missing field \"event\"")),
            Some(v) if !v.is_string() => {
                return ApiError::invalid(format!("events[{n}].event must be a string, got {v}"))
            }
            Some(_) => {}
        }
        if let Some(t) = o.get("timestamp") {
            if !(t.is_i64() || t.is_null()) {
                return ApiError::invalid(format!(
                    "events[{n}].timestamp must be an integer (Unix seconds), got {t}"
                ));
            }
        }
    }
    ApiError::invalid(format!("invalid request: {serde_err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<Vec<Event>, ApiError>) -> String {
        match r {
            Err(ApiError::InvalidArgument(m)) => m,
            other => panic!("expected an invalid-argument error, got {other:?}"),
        }
    }

    #[test]
    fn batches_parse_with_strengths_from_the_table() {
        let t = EventTable::default();
        let got = parse_batch(
            &t,
            br#"{"events": [{"user_id": 7, "item_id": "a", "event": "purchase", "timestamp": 100},
                            {"user_id": "u", "item_id": 3, "event": "view", "timestamp": 0}]}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Event {
                    user_id: "7".into(),
                    item_id: "a".into(),
                    event: "purchase".into(),
                    strength: 5.0,
                    timestamp: 100
                },
                Event {
                    user_id: "u".into(),
                    item_id: "3".into(),
                    event: "view".into(),
                    strength: 1.0,
                    timestamp: 0
                },
            ]
        );
        // No timestamp: the server's clock.
        let got = parse_batch(
            &t,
            br#"{"events": [{"user_id": 1, "item_id": 2, "event": "like"}]}"#,
        )
        .unwrap();
        assert!((got[0].timestamp - now_secs()).abs() <= 2);
    }

    #[test]
    fn bad_batches_name_the_entry_and_field() {
        let t = EventTable::default();
        let p = |b: &str| msg(parse_batch(&t, b.as_bytes()));
        assert_eq!(
            p(r#"{"events": [{"user_id": 1, "item_id": 2, "event": "view"}, {"user_id": 1, "item_id": 2, "event": "view", "rating": 5}]}"#),
            "events[1]: unknown field \"rating\"; expected one of: user_id, item_id, event, timestamp"
        );
        assert_eq!(
            p(r#"{"events": [{"user_id": 1, "item_id": 2, "event": "buy"}]}"#),
            "events[0].event must be one of \"view\", \"click\", \"like\", \"purchase\", got \"buy\""
        );
        assert!(p(
            r#"{"events": [{"user_id": 1, "item_id": 2, "event": "view", "timestamp": -1}]}"#
        )
        .starts_with("events[0].timestamp must be Unix seconds between 0 and "));
        assert!(p(r#"{"events": [{"user_id": 1, "item_id": 2, "event": "view", "timestamp": 99999999999}]}"#)
            .ends_with("(a day past the server's clock), got 99999999999"));
        assert_eq!(
            p(r#"{"events": [{"user_id": 1, "item_id": 2, "event": "view", "timestamp": 1.5}]}"#),
            "events[0].timestamp must be an integer (Unix seconds), got 1.5"
        );
        assert_eq!(
            p(r#"{"events": [{"item_id": 2, "event": "view"}]}"#),
            "events[0]: missing field \"user_id\""
        );
        assert_eq!(
            p(r#"{"events": [{"user_id": [1], "item_id": 2, "event": "view"}]}"#),
            "events[0].user_id must be a string or integer id, got [1]"
        );
        assert_eq!(
            p(r#"{"events": [{"user_id": "", "item_id": 2, "event": "view"}]}"#),
            "events[0].user_id: expected 1 to 1024 bytes, got 0"
        );
        assert_eq!(
            p(r#"{"event": []}"#),
            "unknown field \"event\"; expected \"events\""
        );
        assert_eq!(
            p(r#"{"events": {}}"#),
            "field \"events\" must be a list, got {}"
        );
        assert_eq!(
            p(r#"{"events": [], "events": []}"#),
            "JSON Parse error: duplicate key \"events\" at line 1 column 23"
        );
        assert!(p("{\"events\": [").starts_with("JSON Parse error: "));
    }

    #[test]
    fn tables_and_policies_parse_with_named_errors() {
        let t = EventTable::parse("view=1, cart=2.5,purchase=5").unwrap();
        assert_eq!(t.strength("cart"), Some(2.5));
        assert_eq!(t.strength("click"), None);
        assert_eq!(
            EventTable::parse("view=0").unwrap_err(),
            "event \"view\": expected a positive strength up to 1e6, got \"0\""
        );
        assert_eq!(
            EventTable::parse("view").unwrap_err(),
            "expected name=strength, got \"view\""
        );
        assert_eq!(
            EventTable::parse("a=1,a=2").unwrap_err(),
            "event \"a\" is given twice"
        );
        assert_eq!(FsyncPolicy::parse("batch"), Ok(FsyncPolicy::Batch));
        assert_eq!(
            FsyncPolicy::parse("250ms"),
            Ok(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        assert_eq!(
            FsyncPolicy::parse("2s"),
            Ok(FsyncPolicy::Interval(Duration::from_secs(2)))
        );
        assert!(FsyncPolicy::parse("0ms").is_err());
        assert!(FsyncPolicy::parse("sometimes")
            .unwrap_err()
            .contains("got \"sometimes\""));
    }

    #[tokio::test]
    async fn committed_events_are_visible_and_replayed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = EventsConfig::for_base(dir.path());
        let ev = |u: &str, i: &str| Event {
            user_id: u.into(),
            item_id: i.into(),
            event: "click".into(),
            strength: 2.0,
            timestamp: 5,
        };
        {
            let events = Events::open(&cfg);
            assert_eq!(
                events
                    .commit(vec![ev("a", "1"), ev("b", "2")])
                    .await
                    .unwrap(),
                2
            );
            assert_eq!(events.commit(vec![ev("a", "3")]).await.unwrap(), 1);
            let h: Vec<String> = events.history("a").into_iter().map(|s| s.item_id).collect();
            assert_eq!(h, ["1", "3"]);
        }
        // The writer thread ends with the channel; the lock goes with the file.
        let mut reopened = None;
        for _ in 0..100 {
            let e = Events::open(&cfg);
            if e.writer.is_ok() {
                reopened = Some(e);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let events = reopened.expect("the log reopens once the first writer is gone");
        let h: Vec<String> = events.history("a").into_iter().map(|s| s.item_id).collect();
        assert_eq!(h, ["1", "3"]);
        assert_eq!(events.history("b")[0].strength, 2.0);
    }

    #[tokio::test]
    async fn an_unopenable_log_makes_events_unavailable_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".events"), b"a file, not a directory").unwrap();
        let events = Events::open(&EventsConfig::for_base(dir.path()));
        match events.commit(vec![]).await {
            Err(ApiError::Unavailable(m)) => {
                assert!(m.starts_with("the event log is unavailable: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(events.history("x").is_empty());
    }
}
