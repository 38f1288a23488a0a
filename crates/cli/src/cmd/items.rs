//! `shortlist items add`: catalogue items added without retraining, from the command
//! line — the same changes as the server's `POST /v1/items`, appended to its item log
//! `BASE/.items/items.log` (see `shortlist_serve::items`). The log's lock makes it
//! refuse while a server owns the log (post the items to that server instead); a
//! server started afterwards replays them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;
use shortlist_pipeline::{CandidateSource, ItemChange, Stage};
use shortlist_serve::events::log::Appender;
use shortlist_serve::items;

use super::BadInput;

/// `shortlist items` subcommands.
#[derive(Debug, Subcommand)]
pub enum ItemsCommand {
    /// Add or replace items: a file of JSON lines, one item per line, as in
    /// `POST /v1/items`: `{"item_id": "SKU-9", "title": "…", "features": {"category":
    /// "shoes", "tags": ["a"], "price": 30}}`.
    Add {
        /// The model base path the server runs on.
        #[arg(long)]
        model_base_path: PathBuf,
        /// The items file (JSON lines).
        #[arg(long)]
        file: PathBuf,
        /// The retrieval model whose features the items are checked against (its
        /// latest version under the base path; skipped when absent).
        #[arg(long, default_value = "retrieval")]
        model: String,
    },
}

/// Runs an `items` subcommand.
pub fn run(cmd: ItemsCommand) -> Result<()> {
    match cmd {
        ItemsCommand::Add {
            model_base_path,
            file,
            model,
        } => {
            if !model_base_path.is_dir() {
                return Err(BadInput(format!(
                    "--model-base-path {}: not a directory",
                    model_base_path.display()
                ))
                .into());
            }
            let changes = read_items(&file)?;
            let model_dir = model_base_path.join(&model);
            if model_dir.is_dir() {
                if let Some((_, dir)) = shortlist_pipeline::latest_version(&model_dir)? {
                    if let Stage::Source(source) = shortlist_pipeline::load_dir(&dir)? {
                        for (n, c) in &changes {
                            source.check_item(c).map_err(|e| {
                                BadInput(format!("{}: line {n}: {e}", file.display()))
                            })?;
                        }
                    }
                }
            }
            let path = items::log_path(&model_base_path);
            let (mut appender, replay) = Appender::open_kind(&path, &items::ITEM_LOG, |_| true)?;
            if replay.dropped_bytes > 0 {
                eprintln!(
                    "note: {}: dropped a torn tail of {} bytes (a write cut off by a crash)",
                    path.display(),
                    replay.dropped_bytes
                );
            }
            let mut bytes = Vec::new();
            for (_, c) in &changes {
                items::encode(c, &mut bytes);
            }
            appender.append(&bytes, true)?;
            println!(
                "added {} items from {} to {}",
                changes.len(),
                file.display(),
                path.display()
            );
            Ok(())
        }
    }
}

/// Reads a JSON-lines items file (blank lines skipped); errors name the file and line.
fn read_items(path: &Path) -> Result<Vec<(usize, ItemChange)>> {
    let (file, _) =
        shortlist_core::input::open_regular(path, shortlist_core::input::max_input_bytes())?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let n = n + 1;
        let bad = |msg: String| BadInput(format!("{}: line {n}: {msg}", path.display()));
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
        out.push((n, items::parse_item(&v, "item").map_err(bad)?));
    }
    if out.is_empty() {
        return Err(BadInput(format!(
            "{}: no items (expected JSON lines)",
            path.display()
        ))
        .into());
    }
    Ok(out)
}
