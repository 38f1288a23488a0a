//! `shortlist export`: models in forms other runtimes load — a bundle for the
//! WebAssembly build (`shortlist-wasm`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use serde_json::json;

use super::{print_json, BadInput};

/// `shortlist export …`
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Pack the files inference needs from the latest version of a candidate model
    /// and a ranking model under a model base path into one bundle, which the
    /// WebAssembly build (`shortlist-wasm`, the demo's browser mode) loads from bytes.
    Bundle {
        /// A model base directory as served (`BASE/retrieval/N/`, `BASE/ranking/N/`).
        #[arg(long)]
        model_base_path: PathBuf,
        /// The candidate model's name under the base path.
        #[arg(long, default_value = "retrieval")]
        retrieval: String,
        /// The ranking model's name under the base path ("" for none).
        #[arg(long, default_value = "ranking")]
        ranking: String,
        /// The bundle file to write (atomically).
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an export subcommand.
pub fn run(c: ExportCommand) -> Result<()> {
    match c {
        ExportCommand::Bundle {
            model_base_path,
            retrieval,
            ranking,
            out,
            json,
        } => bundle(&model_base_path, &retrieval, &ranking, &out, json),
    }
}

/// The latest version directory of `base/name`, or an error naming what is missing.
fn latest(base: &Path, name: &str) -> Result<(u64, PathBuf)> {
    let dir = base.join(name);
    if !dir.is_dir() {
        return Err(BadInput(format!(
            "{}: no such model directory (expected BASE/{name}/<version>/)",
            dir.display()
        ))
        .into());
    }
    shortlist_pipeline::latest_version(&dir)?.ok_or_else(|| {
        BadInput(format!(
            "{}: no integer version directory in it",
            dir.display()
        ))
        .into()
    })
}

fn bundle(base: &Path, retrieval: &str, ranking: &str, out: &Path, json: bool) -> Result<()> {
    let mut models = vec![("retrieval", latest(base, retrieval)?)];
    if !ranking.is_empty() {
        models.push(("ranking", latest(base, ranking)?));
    }
    let dirs: Vec<(&str, &Path)> = models.iter().map(|(n, (_, d))| (*n, d.as_path())).collect();
    let bytes = shortlist_model::bundle::pack(&dirs)?;
    // Checked the way the browser will read it: every model loads from the bytes.
    let files = std::sync::Arc::new(shortlist_model::bundle::unpack(&bytes)?);
    for (name, (_, dir)) in &models {
        shortlist_pipeline::load_files(&shortlist_model::bundle::open(&files, name)?)
            .with_context(|| format!("{} does not load from the bundle", dir.display()))?;
    }
    shortlist_core::atomic::write_file(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    let versions: serde_json::Map<String, serde_json::Value> = models
        .iter()
        .map(|(n, (v, d))| {
            (
                n.to_string(),
                json!({ "version": v, "dir": d.display().to_string() }),
            )
        })
        .collect();
    if json {
        return print_json(&json!({
            "out": out.display().to_string(),
            "bytes": bytes.len(),
            "files": files.len(),
            "models": versions,
        }));
    }
    println!(
        "wrote {} ({:.2} MB, {} files) from:",
        out.display(),
        bytes.len() as f64 / 1e6,
        files.len()
    );
    for (n, (v, d)) in &models {
        println!("  {n}: version {v} ({})", d.display());
    }
    Ok(())
}
