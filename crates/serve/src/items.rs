//! `POST /v1/items` and `DELETE /v1/items/{id}`: the catalogue changed while serving,
//! without retraining.
//!
//! `{"items": [{"item_id", "title"?, "features": {"category": "shoes", "tags": ["a"],
//! "price": 30}}, …]}` adds items or replaces them (features of the retrieval model
//! and attributes of its items; see [`shortlist_pipeline::live`]); `DELETE
//! /v1/items/{id}` retires one: never returned again, and events for it refused.
//!
//! Every change is appended to the item log `BASE/.items/items.log` — the event
//! log's framing ([`crate::events::log`]: magic `SLITLOG1`, then `len u32 · crc32 u32
//! · payload`, the payload the change as JSON) — and fsynced before it is
//! acknowledged. The changes form one sequence, replayed on restart; each candidate
//! model applies the part it has not seen before it answers (so a model version
//! loaded later catches up at its first request). At start, a log whose changes are
//! mostly superseded (an item put again, or put and retired) is compacted to each
//! item's last change ([`compacted`], [`COMPACT_MIN_CHANGES`]), rewritten as a unit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shortlist_model::attributes::RawValue;
use shortlist_pipeline::{CandidateSource, ItemChange};

use crate::error::ApiError;
use crate::events::log::{self, Appender, LogKind};

/// First bytes of the item log.
pub const ITEM_MAGIC: &[u8; 8] = b"SLITLOG1";
/// The item log's framing.
pub const ITEM_LOG: LogKind = LogKind {
    magic: ITEM_MAGIC,
    name: "item",
    max_payload: 4 << 20,
};

/// The item log of a model base path.
pub fn log_path(base: &Path) -> PathBuf {
    base.join(".items").join("items.log")
}

/// One change as logged (JSON).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum Record {
    Put {
        item_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        features: Map<String, Value>,
    },
    Retire {
        item_id: String,
    },
}

fn to_record(c: &ItemChange) -> Record {
    match c {
        ItemChange::Put {
            item_id,
            title,
            features,
        } => Record::Put {
            item_id: item_id.clone(),
            title: title.clone(),
            features: features
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        RawValue::Label(s) => Value::from(s.clone()),
                        RawValue::Labels(l) => Value::from(l.clone()),
                        RawValue::Number(x) => Value::from(*x),
                    };
                    (k.clone(), v)
                })
                .collect(),
        },
        ItemChange::Retire { item_id } => Record::Retire {
            item_id: item_id.clone(),
        },
    }
}

fn from_record(r: Record) -> Option<ItemChange> {
    Some(match r {
        Record::Put {
            item_id,
            title,
            features,
        } => ItemChange::Put {
            item_id,
            title,
            features: features_of(&features, "").ok()?,
        },
        Record::Retire { item_id } => ItemChange::Retire { item_id },
    })
}

/// Encodes `change` as one log record into `out`.
pub fn encode(change: &ItemChange, out: &mut Vec<u8>) {
    // Serialising plain data cannot fail.
    let json = serde_json::to_vec(&to_record(change)).unwrap_or_default();
    log::frame(&json, out);
}

/// Decodes one record's payload.
pub fn decode(payload: &[u8]) -> Option<ItemChange> {
    from_record(serde_json::from_slice(payload).ok()?)
}

/// Raw feature values of a JSON object; errors name `{at}features.{name}`.
fn features_of(m: &Map<String, Value>, at: &str) -> Result<Vec<(String, RawValue)>, String> {
    let mut out = Vec::with_capacity(m.len());
    for (name, v) in m {
        let value = match v {
            Value::Null => continue,
            Value::String(s) => RawValue::Label(s.clone()),
            Value::Number(n) => match n.as_f64().filter(|x| x.is_finite()) {
                Some(x) => RawValue::Number(x),
                None => {
                    return Err(format!(
                        "{at}features.{name} must be a finite number, got {n}"
                    ))
                }
            },
            Value::Array(a) => RawValue::Labels(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_str().map(str::to_owned).ok_or_else(|| {
                            format!("{at}features.{name}[{i}] must be a string, got {x}")
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(format!(
                "{at}features.{name} must be a string, a number or a list of strings, got {other}"
            ))
            }
        };
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// An id: a non-empty string or an integer, at most [`log::MAX_ID_BYTES`].
fn id_of(v: Option<&Value>, at: &str) -> Result<String, String> {
    let id = match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(other) => {
            return Err(format!(
                "{at}.item_id must be a string or integer id, got {other}"
            ))
        }
        None => return Err(format!("{at}: missing field \"item_id\"")),
    };
    if id.is_empty() || id.len() > log::MAX_ID_BYTES {
        return Err(format!(
            "{at}.item_id must be 1 to {} bytes, got {}",
            log::MAX_ID_BYTES,
            id.len()
        ));
    }
    Ok(id)
}

/// Parses a `POST /v1/items` body (or a line of `shortlist items add`'s file: one
/// item object, `at` naming it); errors name the entry and field.
pub fn parse_item(v: &Value, at: &str) -> Result<ItemChange, String> {
    let Value::Object(o) = v else {
        return Err(format!(
            "{at} must be an object {{\"item_id\", \"title\"?, \"features\"?}}, got {v}"
        ));
    };
    if let Some(k) = o
        .keys()
        .find(|k| !["item_id", "title", "features"].contains(&k.as_str()))
    {
        return Err(format!(
            "{at}: unknown field {k:?}; expected one of: item_id, title, features"
        ));
    }
    let dot = format!("{at}.");
    let item_id = id_of(o.get("item_id"), at)?;
    let title = match o.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("{at}.title must be a string, got {other}")),
    };
    let features = match o.get("features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => features_of(m, &dot)?,
        Some(other) => {
            return Err(format!(
                "{at}.features must be an object of feature name → value, got {other}"
            ))
        }
    };
    Ok(ItemChange::Put {
        item_id,
        title,
        features,
    })
}

/// Parses a whole `POST /v1/items` body.
pub(crate) fn parse_body(body: &[u8]) -> Result<Vec<ItemChange>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("JSON Parse error: {e}")))?;
    let Value::Object(o) = &v else {
        return Err(ApiError::invalid("Request body must be a JSON object"));
    };
    if let Some(k) = o.keys().find(|k| *k != "items") {
        return Err(ApiError::invalid(format!(
            "unknown field {k:?}; expected one of: items"
        )));
    }
    let Some(Value::Array(items)) = o.get("items") else {
        return Err(ApiError::invalid(
            "field \"items\" must be a list of {\"item_id\", \"title\"?, \"features\"?} objects",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(n, it)| parse_item(it, &format!("items[{n}]")).map_err(ApiError::invalid))
        .collect()
}

/// A replayed item log is compacted when it holds at least this many changes and
/// at least half of them are superseded.
pub const COMPACT_MIN_CHANGES: usize = 1024;

/// The changes that give the same catalogue as `changes`: each item's last change,
/// in the order of those last changes (an item put again gets one row instead of a
/// new row per put; a retirement stays, since it may retire a trained item).
pub fn compacted(changes: &[ItemChange]) -> Vec<ItemChange> {
    let mut last: rustc_hash::FxHashMap<&str, usize> = Default::default();
    for (n, c) in changes.iter().enumerate() {
        last.insert(c.item_id(), n);
    }
    changes
        .iter()
        .enumerate()
        .filter(|(n, c)| last.get(c.item_id()) == Some(n))
        .map(|(_, c)| c.clone())
        .collect()
}

/// The item changes of a server: logged, in memory, applied to models on demand.
#[derive(Debug)]
pub struct Items {
    log: Result<Mutex<Appender>, String>,
    changes: RwLock<Vec<ItemChange>>,
    seq: AtomicU64,
    retired: RwLock<FxHashSet<String>>,
}

impl Items {
    /// Opens (creating) the log at `path` and replays it. A log that cannot be
    /// opened leaves item changes unavailable (503 with the reason), logged.
    pub fn open(path: &Path) -> Self {
        let mut changes = Vec::new();
        let wait = crate::events::LOCK_WAIT;
        let opened = Appender::open_waiting(path, &ITEM_LOG, wait, |p| match decode(p) {
            Some(c) => {
                changes.push(c);
                true
            }
            None => false,
        });
        let log = match opened {
            Ok((mut a, replay)) => {
                if replay.dropped_bytes > 0 {
                    tracing::warn!(log = %path.display(), dropped_bytes = replay.dropped_bytes,
                        "item log: dropped a torn or damaged tail (a write cut off by a crash)");
                }
                if !changes.is_empty() {
                    tracing::info!(log = %path.display(), changes = changes.len(), "item log replayed");
                }
                let kept = compacted(&changes);
                if changes.len() >= COMPACT_MIN_CHANGES && kept.len() * 2 <= changes.len() {
                    let mut bytes = Vec::new();
                    for c in &kept {
                        encode(c, &mut bytes);
                    }
                    match a.replace(&ITEM_LOG, &bytes) {
                        Ok(()) => {
                            tracing::info!(log = %path.display(), before = changes.len(),
                                after = kept.len(), "item log compacted");
                            changes = kept;
                        }
                        // The log as it was still holds every change.
                        Err(e) => tracing::warn!(error = %e, "item log: compaction failed"),
                    }
                }
                Ok(Mutex::new(a))
            }
            Err(e) => {
                tracing::warn!(error = %e, "item log unavailable: /v1/items will answer 503");
                Err(format!("the item log is unavailable: {e}"))
            }
        };
        let items = Items {
            log,
            changes: RwLock::new(Vec::new()),
            seq: AtomicU64::new(0),
            retired: RwLock::new(FxHashSet::default()),
        };
        items.push(changes);
        items
    }

    fn push(&self, new: Vec<ItemChange>) {
        let mut retired = self.retired.write().unwrap_or_else(|p| p.into_inner());
        for c in &new {
            match c {
                ItemChange::Retire { item_id } => retired.insert(item_id.clone()),
                ItemChange::Put { item_id, .. } => retired.remove(item_id),
            };
        }
        let mut all = self.changes.write().unwrap_or_else(|p| p.into_inner());
        all.extend(new);
        self.seq.store(all.len() as u64, Ordering::Release);
    }

    /// Number of changes so far.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Whether `item_id` is retired now.
    pub fn is_retired(&self, item_id: &str) -> bool {
        self.seq() > 0
            && self
                .retired
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(item_id)
    }

    /// Brings `source` up to date with every change (cheap when it is).
    pub fn sync(&self, source: &dyn CandidateSource) {
        let n = self.seq();
        if n == 0 {
            return;
        }
        let applied = source.items_applied();
        if applied >= n {
            return;
        }
        let all = self.changes.read().unwrap_or_else(|p| p.into_inner());
        let from = applied as usize;
        for w in source.apply_items(applied, all.get(from..).unwrap_or(&[])) {
            tracing::warn!("{w}");
        }
    }

    /// Appends `changes` to the log (fsynced) and to the sequence; blocking.
    pub fn commit(&self, changes: Vec<ItemChange>) -> Result<usize, ApiError> {
        let log = self
            .log
            .as_ref()
            .map_err(|e| ApiError::Unavailable(e.clone()))?;
        let n = changes.len();
        if n == 0 {
            return Ok(0);
        }
        let mut bytes = Vec::new();
        for c in &changes {
            encode(c, &mut bytes);
        }
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.append(&bytes, true)
            .map_err(|e| ApiError::Internal(format!("item log: {e}")))?;
        // Under the log's lock: the sequence is in log order.
        self.push(changes);
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_parse_with_named_errors() {
        let ok = parse_body(
            br#"{"items": [{"item_id": 7, "title": "Boot", "features": {"category": "shoes", "tags": ["a", "b"], "price": 30, "x": null}}]}"#,
        )
        .unwrap();
        assert_eq!(
            ok,
            [ItemChange::Put {
                item_id: "7".into(),
                title: Some("Boot".into()),
                features: vec![
                    ("category".into(), RawValue::Label("shoes".into())),
                    ("price".into(), RawValue::Number(30.0)),
                    (
                        "tags".into(),
                        RawValue::Labels(vec!["a".into(), "b".into()])
                    ),
                ],
            }]
        );
        let err = |b: Value| match parse_body(&serde_json::to_vec(&b).unwrap()) {
            Err(ApiError::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(json!({"items": [{"item_id": "a"}, {"id": "b"}]})),
            "items[1]: unknown field \"id\"; expected one of: item_id, title, features"
        );
        assert_eq!(
            err(json!({"items": [{"title": "x"}]})),
            "items[0]: missing field \"item_id\""
        );
        assert_eq!(
            err(json!({"items": [{"item_id": "a", "features": {"price": true}}]})),
            "items[0].features.price must be a string, a number or a list of strings, got true"
        );
        assert_eq!(
            err(json!({"items": [{"item_id": "a", "features": {"tags": ["x", 1]}}]})),
            "items[0].features.tags[1] must be a string, got 1"
        );
        assert_eq!(
            err(json!({"item": []})),
            "unknown field \"item\"; expected one of: items"
        );
        assert_eq!(
            err(json!({"items": [{"item_id": ""}]})),
            "items[0].item_id must be 1 to 1024 bytes, got 0"
        );
    }

    #[test]
    fn changes_survive_a_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        let put = parse_item(
            &json!({"item_id": "n1", "features": {"price": 3.5, "category": "hats"}}),
            "x",
        )
        .unwrap();
        let retire = ItemChange::Retire {
            item_id: "old".into(),
        };
        {
            let items = Items::open(&path);
            assert_eq!(items.commit(vec![put.clone(), retire.clone()]).unwrap(), 2);
            assert!(items.is_retired("old") && !items.is_retired("n1"));
        }
        // A torn record after them (a crash mid-write) is dropped on reopening.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, &[40, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let items = Items::open(&path);
        assert_eq!(items.seq(), 2);
        assert_eq!(*items.changes.read().unwrap(), [put, retire]);
        assert!(items.is_retired("old"));
        // Adding it again brings it back.
        items
            .commit(vec![parse_item(&json!({"item_id": "old"}), "x").unwrap()])
            .unwrap();
        assert!(!items.is_retired("old"));
        // A second server on the same log is refused, naming it.
        let e = format!("{:?}", Items::open(&path).log.err().unwrap());
        assert!(e.contains("locked by another process"), "{e}");
    }

    fn put(id: &str, price: f64) -> ItemChange {
        parse_item(&json!({"item_id": id, "features": {"price": price}}), "x").unwrap()
    }

    #[test]
    fn compaction_keeps_each_items_last_change_in_order() {
        let retire = |id: &str| ItemChange::Retire { item_id: id.into() };
        let changes = [
            put("a", 1.0),
            put("b", 1.0),
            retire("t"),
            put("a", 2.0),
            retire("b"),
            put("c", 1.0),
            put("t", 5.0),
        ];
        assert_eq!(
            compacted(&changes),
            [put("a", 2.0), retire("b"), put("c", 1.0), put("t", 5.0)]
        );
    }

    #[test]
    fn a_mostly_superseded_log_is_compacted_at_start_as_a_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        // 3 items re-put 400 times each, one retired: 1,201 changes, 3 live.
        let mut all = Vec::new();
        for round in 0..400 {
            for id in ["a", "b", "c"] {
                all.push(put(id, f64::from(round)));
            }
        }
        all.push(ItemChange::Retire {
            item_id: "b".into(),
        });
        assert!(all.len() >= COMPACT_MIN_CHANGES);
        {
            let items = Items::open(&path);
            items.commit(all.clone()).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        {
            let items = Items::open(&path);
            let want = [
                put("a", 399.0),
                put("c", 399.0),
                ItemChange::Retire {
                    item_id: "b".into(),
                },
            ];
            assert_eq!(*items.changes.read().unwrap(), want);
            assert!(items.is_retired("b") && !items.is_retired("a"));
            // The rewritten log is locked like the old one, and appends go to it.
            let e = format!("{:?}", Items::open(&path).log.err().unwrap());
            assert!(e.contains("locked by another process"), "{e}");
            items.commit(vec![put("d", 1.0)]).unwrap();
        }
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after * 100 < before, "{before} → {after} bytes");
        assert!(!dir.path().join(".items/items.log.compacting").exists());
        // Reopened: the compacted changes and the append, nothing compacted again.
        let items = Items::open(&path);
        assert_eq!(items.seq(), 4);
        assert_eq!(items.changes.read().unwrap()[3], put("d", 1.0));
    }
}
