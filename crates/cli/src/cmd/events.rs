//! `shortlist events import|export`: the server's event log from the command line.
//!
//! The log is `BASE/.events/events.log` (see `shortlist_serve::events::log`).
//! `export` reads it (a running server may be appending: a torn last record is left
//! out) and writes a split-format file for the next `shortlist train`, or the
//! events format that `import` reads back. `import` appends a file of events to the
//! log; it takes the log's lock, so it refuses while a server owns the log (post the
//! events to that server's `/v1/events` instead).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use shortlist_serve::events::{log, Event, EventTable, EventsConfig};

use super::BadInput;

/// `shortlist events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Append a tab-separated file of events (header `user_id item_id event
    /// [timestamp]`, or any header with user_id and item_id given `--event`) to the
    /// event log of a model base path.
    Import {
        /// The model base path the server runs on.
        #[arg(long)]
        model_base_path: PathBuf,
        /// The events file.
        #[arg(long)]
        file: PathBuf,
        /// Give every row this event (for files without an `event` column, e.g. a split file).
        #[arg(long)]
        event: Option<String>,
        /// Event names and strengths, as the server's `--event-strengths`.
        #[arg(long, default_value = "view=1,click=2,like=3,purchase=5")]
        event_strengths: String,
    },
    /// Write the events of the log as a file.
    Export {
        /// The model base path the server runs on.
        #[arg(long)]
        model_base_path: PathBuf,
        /// Output file (written atomically).
        #[arg(long)]
        out: PathBuf,
        /// `split`: `user_id item_id rating timestamp`, rating = the event's strength,
        /// for `shortlist train --train`; `events`: `user_id item_id event timestamp`,
        /// which `import` reads back.
        #[arg(long, default_value = "split")]
        format: String,
    },
}

/// Runs an `events` subcommand.
pub fn run(cmd: EventsCommand) -> Result<()> {
    match cmd {
        EventsCommand::Import {
            model_base_path,
            file,
            event,
            event_strengths,
        } => {
            let table = EventTable::parse(&event_strengths)
                .map_err(|e| BadInput(format!("--event-strengths: {e}")))?;
            if let Some(ev) = &event {
                if table.strength(ev).is_none() {
                    return Err(BadInput(format!(
                        "--event: expected one of {}, got {ev:?}",
                        table.names()
                    ))
                    .into());
                }
            }
            let events = read_events(&file, &table, event.as_deref())?;
            let path = log_path(&model_base_path)?;
            let (mut appender, replay) = log::Appender::open(&path, |_| {})?;
            if replay.dropped_bytes > 0 {
                eprintln!(
                    "note: {}: dropped a torn tail of {} bytes (a write cut off by a crash)",
                    path.display(),
                    replay.dropped_bytes
                );
            }
            let mut bytes = Vec::with_capacity(events.len() * 48);
            for e in &events {
                log::encode(e, &mut bytes);
            }
            appender.append(&bytes, true)?;
            println!(
                "imported {} events from {} into {}",
                events.len(),
                file.display(),
                path.display()
            );
            Ok(())
        }
        EventsCommand::Export {
            model_base_path,
            out,
            format,
        } => {
            let split = match format.as_str() {
                "split" => true,
                "events" => false,
                other => {
                    return Err(BadInput(format!(
                        "--format: expected \"split\" or \"events\", got {other:?}"
                    ))
                    .into())
                }
            };
            let path = log_path(&model_base_path)?;
            let mut text = String::from(if split {
                "user_id\titem_id\trating\ttimestamp\n"
            } else {
                "user_id\titem_id\tevent\ttimestamp\n"
            });
            let mut n = 0usize;
            let mut bad_id = None;
            let replay = log::read(&path, |e| {
                n += 1;
                if [&e.user_id, &e.item_id]
                    .iter()
                    .any(|s| s.contains(['\t', '\n', '\r']))
                {
                    bad_id.get_or_insert(n);
                }
                let _ = if split {
                    writeln!(
                        text,
                        "{}\t{}\t{}\t{}",
                        e.user_id, e.item_id, e.strength, e.timestamp
                    )
                } else {
                    writeln!(
                        text,
                        "{}\t{}\t{}\t{}",
                        e.user_id, e.item_id, e.event, e.timestamp
                    )
                };
            })?;
            if let Some(k) = bad_id {
                return Err(BadInput(format!(
                    "{}: event {k} has an id with a tab or line break, which a tab-separated file cannot hold",
                    path.display()
                ))
                .into());
            }
            shortlist_core::atomic::write_file(&out, text.as_bytes())?;
            if replay.dropped_bytes > 0 {
                eprintln!(
                    "note: {}: a torn last record ({} bytes) was left out (a crash, or a write in progress)",
                    path.display(),
                    replay.dropped_bytes
                );
            }
            println!(
                "exported {n} events from {} to {}",
                path.display(),
                out.display()
            );
            Ok(())
        }
    }
}

fn log_path(base: &Path) -> Result<PathBuf> {
    if !base.is_dir() {
        return Err(BadInput(format!(
            "--model-base-path {}: not a directory",
            base.display()
        ))
        .into());
    }
    Ok(EventsConfig::for_base(base).log_path)
}

/// Reads an events file; every error names the file, line and column.
fn read_events(path: &Path, table: &EventTable, event: Option<&str>) -> Result<Vec<Event>> {
    let (file, _) =
        shortlist_core::input::open_regular(path, shortlist_core::input::max_input_bytes())?;
    let mut lines = BufReader::new(file).lines();
    let bad =
        |line: usize, msg: String| BadInput(format!("{}: line {line}: {msg}", path.display()));
    let header = match lines.next() {
        Some(h) => h.map_err(|e| bad(1, e.to_string()))?,
        None => return Err(bad(1, "empty file (expected a header line)".into()).into()),
    };
    let cols: Vec<&str> = header.trim_end_matches('\r').split('\t').collect();
    let find = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(u), Some(i)) = (find("user_id"), find("item_id")) else {
        return Err(bad(
            1,
            format!("expected a header with user_id and item_id columns, got {cols:?}"),
        )
        .into());
    };
    let ev_col = find("event");
    if ev_col.is_none() && event.is_none() {
        return Err(bad(1, "no event column: add one or give --event NAME".into()).into());
    }
    let ts_col = find("timestamp");
    let now = shortlist_serve::events::now_secs();
    let latest = shortlist_serve::events::latest_timestamp(now);
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let line_no = n + 2;
        let line = line.map_err(|e| bad(line_no, e.to_string()))?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != cols.len() {
            return Err(bad(
                line_no,
                format!(
                    "expected {} tab-separated fields, found {}",
                    cols.len(),
                    fields.len()
                ),
            )
            .into());
        }
        let id = |c: usize, name: &str| -> Result<String> {
            let v = fields[c];
            if v.is_empty() || v.len() > log::MAX_ID_BYTES {
                return Err(bad(
                    line_no,
                    format!(
                        "{name}: expected 1 to {} bytes, got {}",
                        log::MAX_ID_BYTES,
                        v.len()
                    ),
                )
                .into());
            }
            Ok(v.to_owned())
        };
        let name = match ev_col {
            Some(c) => fields[c],
            None => event.unwrap_or_default(),
        };
        let strength = table.strength(name).ok_or_else(|| {
            bad(
                line_no,
                format!("event: expected one of {}, got {name:?}", table.names()),
            )
        })?;
        let timestamp = match ts_col {
            Some(c) => fields[c]
                .parse::<i64>()
                .ok()
                .filter(|t| (0..=latest).contains(t))
                .ok_or_else(|| {
                    bad(line_no, format!("timestamp: expected Unix seconds between 0 and {latest} (a day from now), got {:?}", fields[c]))
                })?,
            None => now,
        };
        out.push(Event {
            user_id: id(u, "user_id")?,
            item_id: id(i, "item_id")?,
            event: name.to_owned(),
            strength,
            timestamp,
        });
    }
    Ok(out)
}
