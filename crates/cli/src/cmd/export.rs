//! `shortlist export`: models in forms other runtimes load — a bundle for the
//! WebAssembly build (`shortlist-wasm`), ONNX graphs (`shortlist-onnx`), compact
//! 8-bit copies of a base path (`shortlist_model::compact`).

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
    /// Write a ranking model's prediction (ensemble, AutoRec blend, clip) as one ONNX
    /// graph, or a retrieval model's query and candidate towers as two, with the feature
    /// spec and vocabularies beside them as JSON (how raw ids become the graphs' inputs).
    Onnx {
        /// A model version directory (`BASE/<name>/<version>/`), or a model directory
        /// (`BASE/<name>/`, whose latest version is exported).
        #[arg(long)]
        model: PathBuf,
        /// The ONNX file to write, ending in `.onnx`: a ranking model's graph; for a
        /// retrieval model `STEM.query.onnx` and `STEM.candidate.onnx` are written
        /// instead (and `STEM.candidate_features.onnx`, the candidate tower of new
        /// items from their side features, when the model has item side features).
        /// `STEM.features.json` is written beside either.
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write 8-bit copies of the latest version of every model under a model base
    /// path to another base path (same names and versions), for a small browser
    /// bundle: float matrices quantised per row, an EASE model's item–item weights
    /// cut to their largest per row, ids in 16 bits. The copies are served, evaluated
    /// and bundled like any model; saved indexes are left out (the exact index is
    /// built on load).
    Compact {
        /// A model base directory as served (`BASE/<name>/<version>/`).
        #[arg(long)]
        model_base_path: PathBuf,
        /// The base directory to write (each version directory replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Weights kept per row of an EASE model's item–item matrix.
        #[arg(long, default_value_t = shortlist_model::compact::DEFAULT_EASE_KEEP)]
        ease_keep: usize,
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
        ExportCommand::Onnx { model, out, json } => onnx(&model, &out, json),
        ExportCommand::Compact {
            model_base_path,
            out,
            ease_keep,
            json,
        } => compact(&model_base_path, &out, ease_keep, json),
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

fn compact(base: &Path, out: &Path, ease_keep: usize, json: bool) -> Result<()> {
    if ease_keep == 0 {
        return Err(BadInput("--ease-keep must be at least 1".into()).into());
    }
    // Only comparable when both exist; an --out yet to be created is never the base.
    let same = matches!(
        (base.canonicalize(), out.canonicalize()),
        (Ok(b), Ok(o)) if b == o
    );
    if same {
        return Err(BadInput(format!(
            "--out {} is the model base path itself: write the compact copies elsewhere",
            out.display()
        ))
        .into());
    }
    let rd = std::fs::read_dir(base).map_err(|e| {
        BadInput(format!(
            "{}: {e} (expected a model base directory, BASE/<name>/<version>/)",
            base.display()
        ))
    })?;
    // (name, latest version, its directory) of every model under the base path.
    let mut models: Vec<(String, u64, PathBuf)> = Vec::new();
    for entry in rd {
        let entry = entry.with_context(|| format!("reading {}", base.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        if let Some((version, dir)) = shortlist_pipeline::latest_version(&entry.path())? {
            models.push((name, version, dir));
        }
    }
    models.sort();
    if models.is_empty() {
        return Err(BadInput(format!(
            "{}: no model in it (expected BASE/<name>/<version>/)",
            base.display()
        ))
        .into());
    }
    let opts = shortlist_model::compact::CompactOptions {
        ease_keep,
        ..Default::default()
    };
    let mut rows = Vec::new();
    for (name, version, dir) in &models {
        let to = out.join(name).join(version.to_string());
        let r = shortlist_model::compact::compact_dir(dir, &to, &opts)
            .with_context(|| format!("compacting {}", dir.display()))?;
        // Checked as the server will read it.
        shortlist_pipeline::load_dir(&to)
            .with_context(|| format!("{} does not load", to.display()))?;
        rows.push((name, version, to, r));
    }
    if json {
        let models: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(n, v, to, r)| {
                (
                    n.to_string(),
                    json!({
                        "version": v,
                        "dir": to.display().to_string(),
                        "bytes_before": r.bytes_before,
                        "bytes_after": r.bytes_after,
                        "models": r.models,
                        "quantised_tensors": r.quantised,
                        "left_out": r.left_out,
                    }),
                )
            })
            .collect();
        return print_json(&json!({ "out": out.display().to_string(), "models": models }));
    }
    for (n, v, to, r) in &rows {
        println!(
            "{n} version {v}: {:.2} MB -> {:.2} MB ({} tensors in 8 bits, {} model director{}) in {}",
            r.bytes_before as f64 / 1e6,
            r.bytes_after as f64 / 1e6,
            r.quantised,
            r.models,
            if r.models == 1 { "y" } else { "ies" },
            to.display()
        );
        if !r.left_out.is_empty() {
            println!("  left out (built on load): {}", r.left_out.join(", "));
        }
    }
    println!(
        "serve them with `shortlist serve --model-base-path {}`; `shortlist eval --pipeline {} --test TEST` measures them",
        out.display(),
        out.display()
    );
    Ok(())
}

/// The version directory `dir` names: itself when it has a manifest, else its latest
/// integer version.
fn version_dir(dir: &Path) -> Result<PathBuf> {
    if dir.join("manifest.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    if !dir.is_dir() {
        return Err(BadInput(format!(
            "{}: no such model directory (expected BASE/<name>/<version>/ or BASE/<name>/)",
            dir.display()
        ))
        .into());
    }
    match shortlist_pipeline::latest_version(dir)? {
        Some((_, v)) => Ok(v),
        None => Err(BadInput(format!(
            "{}: neither a model version (no manifest.json) nor a model directory (no integer version directory in it)",
            dir.display()
        ))
        .into()),
    }
}

fn onnx(model: &Path, out: &Path, json: bool) -> Result<()> {
    let stem = match out.to_str().and_then(|s| s.strip_suffix(".onnx")) {
        Some(stem) if !stem.is_empty() && !stem.ends_with('/') => stem.to_owned(),
        _ => {
            return Err(BadInput(format!(
                "--out {}: expected a file name ending in .onnx",
                out.display()
            ))
            .into())
        }
    };
    let dir = version_dir(model)?;
    let kind = shortlist_model::files::manifest_kind(&dir)?;
    let export = match kind.as_str() {
        shortlist_model::artifact::RANKING_KIND => {
            let m = shortlist_model::RankingModel::load(&dir)
                .with_context(|| format!("loading {}", dir.display()))?;
            shortlist_onnx::export_ranking(&m)
                .with_context(|| format!("exporting {}", dir.display()))?
        }
        shortlist_model::retrieval_artifact::RETRIEVAL_KIND => {
            let (m, _) = shortlist_model::RetrievalModel::load(&dir)
                .with_context(|| format!("loading {}", dir.display()))?;
            shortlist_onnx::export_retrieval(&m)
                .with_context(|| format!("exporting {}", dir.display()))?
        }
        other => {
            return Err(BadInput(format!(
            "{}: a model of kind {other:?} has no ONNX export (ranking and retrieval models do)",
            dir.display()
        ))
            .into())
        }
    };
    let paths: Vec<PathBuf> = export
        .graphs
        .iter()
        .map(|g| {
            if export.graphs.len() == 1 {
                out.to_path_buf()
            } else {
                PathBuf::from(format!("{stem}.{}.onnx", g.role))
            }
        })
        .collect();
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let features = PathBuf::from(format!("{stem}.features.json"));
    let mut text = serde_json::to_vec_pretty(&export.features_json(&names))?;
    text.push(b'\n');
    // Each file is written atomically; the JSON, which names the graphs, comes last.
    for (g, p) in export.graphs.iter().zip(&paths) {
        shortlist_core::atomic::write_file(p, &g.bytes)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    shortlist_core::atomic::write_file(&features, &text)
        .with_context(|| format!("writing {}", features.display()))?;
    let mut files: Vec<serde_json::Value> = export
        .graphs
        .iter()
        .zip(&paths)
        .map(|(g, p)| json!({"role": g.role, "path": p.display().to_string(), "bytes": g.bytes.len()}))
        .collect();
    files.push(
        json!({"role": "features", "path": features.display().to_string(), "bytes": text.len()}),
    );
    if json {
        return print_json(&json!({
            "model": dir.display().to_string(),
            "kind": export.kind,
            "opset": shortlist_onnx::builder::OPSET,
            "files": files,
        }));
    }
    println!(
        "exported the {} model {} (ONNX opset {}):",
        export.kind,
        dir.display(),
        shortlist_onnx::builder::OPSET
    );
    for (g, p) in export.graphs.iter().zip(&paths) {
        println!(
            "  {}: {} ({:.2} MB)",
            g.role,
            p.display(),
            g.bytes.len() as f64 / 1e6
        );
    }
    println!("  features and vocabularies: {}", features.display());
    Ok(())
}
