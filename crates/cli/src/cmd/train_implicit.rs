//! `shortlist train ease|ials`: the implicit-feedback candidate sources. Each writes a
//! model directory that `serve` loads like a retrieval model (it answers `:predict`,
//! and `/v1/recommend` with `retrieval_model` or `candidate_sources` naming it).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};
use shortlist_core::atomic::{write_file, AtomicDir};
use shortlist_data::loaders::tsv::SplitData;
use shortlist_eval::SplitEvaluator;
use shortlist_features::FeatureSpec;
use shortlist_index::{AnyIndex, IndexConfig};
use shortlist_model::{EaseModel, IalsModel};
use shortlist_train::ease::{train_ease, EaseTrainConfig};
use shortlist_train::ials::{train_ials, IalsTrainConfig};
use shortlist_train::interactions::RowScorer;

use super::train::{titles_by_row, write_attributes, TrainArgs};
use super::{BadInput, Context};

/// The shipped default EASE configuration.
pub const EASE_DEFAULT: &str = include_str!("../../../../configs/ease-default.toml");
/// The shipped default iALS configuration.
pub const IALS_DEFAULT: &str = include_str!("../../../../configs/ials-default.toml");

fn config(args: &TrainArgs, default: &str) -> Result<(String, std::path::PathBuf)> {
    match &args.config {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => Ok((text, p.clone())),
            Err(e) => Err(BadInput(format!("--config {}: {e}", p.display())).into()),
        },
        None => Ok((default.to_owned(), "<default config>".into())),
    }
}

/// Trains, evaluates and saves an EASE model; returns the report.
pub fn train_ease_cmd(args: &TrainArgs, split: &SplitData) -> Result<Value> {
    let (text, path) = config(args, EASE_DEFAULT)?;
    let cfg = EaseTrainConfig::from_toml(&text, &path)?;
    if args.epochs.is_some() || args.batch_size.is_some() {
        return Err(BadInput(
            "EASE is fitted in closed form: --epochs and --batch-size do not apply".into(),
        )
        .into());
    }
    let t = Instant::now();
    let model = train_ease(&split.dataset, &split.train, &cfg)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let score = ease_scorer(&model);
    let (metrics, popularity) =
        evaluate(split, &RowScorer::new(&model.spec, &split.dataset, &score))?;
    let staging = stage(args, split, &model.spec, |dir, titles| {
        Ok(model.save(dir, titles)?)
    })?;
    commit(staging, &cfg.to_toml()?)?;
    Ok(report(args, "ease", metrics, popularity, fit_seconds))
}

/// Trains, evaluates and saves an iALS model (with its top-K index); returns the report.
pub fn train_ials_cmd(args: &TrainArgs, split: &SplitData, ctx: &Context) -> Result<Value> {
    let (text, path) = config(args, IALS_DEFAULT)?;
    let mut cfg = IalsTrainConfig::from_toml(&text, &path)?;
    if let Some(e) = args.epochs {
        cfg.iterations = e;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if args.batch_size.is_some() {
        return Err(BadInput(
            "iALS solves every row each iteration: --batch-size does not apply".into(),
        )
        .into());
    }
    let t = Instant::now();
    let quiet = ctx.quiet;
    let model = train_ials(&split.dataset, &split.train, &cfg, |e| {
        if !quiet {
            tracing::info!("iteration {:>3}  ({:.2}s)", e.iteration, e.seconds);
        }
    })?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let score = ials_scorer(&model);
    let (metrics, popularity) =
        evaluate(split, &RowScorer::new(&model.spec, &split.dataset, &score))?;
    let staging = stage(args, split, &model.spec, |dir, titles| {
        Ok(model.save(dir, titles)?)
    })?;
    let index = AnyIndex::build(
        model.item_factors.data().to_vec(),
        model.dim(),
        &IndexConfig::default(),
    )?;
    index.save_dir(staging.path())?;
    commit(staging, &cfg.to_toml()?)?;
    let mut r = report(args, "ials", metrics, popularity, fit_seconds);
    r["index"] = json!(index.kind_name());
    Ok(r)
}

/// Scores every item row for a user row with an EASE model (its training items as history).
pub fn ease_scorer(model: &EaseModel) -> impl Fn(u32, &mut [f32]) + Sync + '_ {
    |u, out| model.scores_into(model.seen.row(u as usize), out)
}

/// Scores every item row for a user row with an iALS model.
pub fn ials_scorer(model: &IalsModel) -> impl Fn(u32, &mut [f32]) + Sync + '_ {
    |u, out| model.user_scores_into(u as usize, out)
}

/// The output directory under construction with the model (saved by `save` with the
/// items' titles) and the items' attributes.
fn stage(
    args: &TrainArgs,
    split: &SplitData,
    spec: &FeatureSpec,
    save: impl FnOnce(&Path, &[String]) -> Result<()>,
) -> Result<AtomicDir> {
    let staging = AtomicDir::new(&args.out)?;
    save(
        staging.path(),
        &titles_by_row(&spec.item_id, &split.dataset),
    )?;
    write_attributes(staging.path(), &spec.item_id, &split.dataset)?;
    Ok(staging)
}

/// Adds the configuration, seals the files and renames the directory into place.
fn commit(staging: AtomicDir, config_toml: &str) -> Result<()> {
    write_file(&staging.path().join("config.toml"), config_toml.as_bytes())?;
    shortlist_model::files::seal(staging.path())?;
    staging.commit()?;
    Ok(())
}

/// The model's and popularity's metrics on the test rows; `None` without test rows
/// (a model fitted from Python without `valid`).
fn evaluate(
    split: &SplitData,
    scorer: &dyn shortlist_eval::Scorer,
) -> Result<(
    Option<shortlist_eval::Metrics>,
    Option<shortlist_eval::Metrics>,
)> {
    if split.test.is_empty() {
        return Ok((None, None));
    }
    let ev = SplitEvaluator::new(&split.dataset, &split.train, &split.test)?;
    Ok((Some(ev.scorer(scorer)?), Some(ev.popularity()?)))
}

fn report(
    args: &TrainArgs,
    kind: &str,
    metrics: Option<shortlist_eval::Metrics>,
    popularity: Option<shortlist_eval::Metrics>,
    fit_seconds: f64,
) -> Value {
    json!({
        "model": kind,
        "out": args.out,
        "fit_seconds": fit_seconds,
        "metrics": metrics,
        "popularity": popularity,
    })
}

/// Prints a report of [`train_ease_cmd`] or [`train_ials_cmd`].
pub fn print(r: &Value) -> Result<()> {
    let g = |part: &str, k: &str| r[part].get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    crate::outln!(
        "{} model → {} (fitted in {:.2} s)",
        r["model"].as_str().unwrap_or("?"),
        r["out"].as_str().unwrap_or("?"),
        r["fit_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    crate::outln!("  {:<20} {:>8} {:>11}", "metric", "model", "popularity");
    for k in [
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "hit_rate@10",
    ] {
        crate::outln!(
            "  {k:<20} {:>8.4} {:>11.4}",
            g("metrics", k),
            g("popularity", k)
        );
    }
    Ok(())
}
