//! `shortlist train ranking|retrieval`: train, evaluate and save a model directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};
use shortlist_core::atomic::AtomicDir;
use shortlist_core::dataset::Dataset;
use shortlist_data::loaders::tsv::{load_split, SplitData};
use shortlist_data::split::{self, SplitMethod};
use shortlist_index::AnyIndex;
use shortlist_model::retrieval_artifact::write_titles;
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig, SplitEvaluator};
use shortlist_train::TrainConfig;

use super::data::{open, LoadArgs};
use super::{print_json, BadInput, Context};

/// The shipped default configurations (the files in `configs/`).
pub const RANKING_DEFAULT: &str = include_str!("../../../../configs/ranking-default.toml");
/// The shipped default retrieval configuration.
pub const RETRIEVAL_DEFAULT: &str = include_str!("../../../../configs/retrieval-default.toml");

/// `shortlist train` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train the ranking model (embeddings + MLP → rating).
    Ranking(TrainArgs),
    /// Train the retrieval model (two towers, softmax over items).
    Retrieval(TrainArgs),
}

/// Where the training data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// A dataset name or path, split at random 80/20 (--split-seed). With --train/--test,
    /// only its titles and side features are used (joined by raw id).
    #[arg(long)]
    pub data: Option<String>,
    /// Training split file (user_id, item_id, rating, timestamp).
    #[arg(long, requires = "test")]
    pub train: Option<PathBuf>,
    /// Test split file.
    #[arg(long, requires = "train")]
    pub test: Option<PathBuf>,
    /// Seed of the 80/20 split of --data.
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Flags of `train ranking` and `train retrieval`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// TOML configuration (default: the shipped configs/*-default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override the batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Override the seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output model directory (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Loads the training data the flags describe.
pub fn load_data(args: &DataArgs, ctx: &Context) -> Result<SplitData> {
    match (&args.data, &args.train, &args.test) {
        (data, Some(train), Some(test)) => {
            let mut s = load_split(train, test, &args.load.options(), &ctx.progress())?;
            super::data::warn_report(&s.report);
            if let Some(name) = data {
                let full = open(name, &args.load, ctx)?.loaded.dataset;
                let (users, items) = shortlist_data::loaders::tsv::attach_features(&mut s, &full);
                tracing::info!("joined side features of {name}: {users} users and {items} items matched by raw id");
            }
            Ok(s)
        }
        (Some(name), None, None) => {
            let opened = open(name, &args.load, ctx)?;
            let dataset = opened.loaded.dataset;
            let parts = split::split(
                &dataset.interactions,
                SplitMethod::Random {
                    ratio: 0.8,
                    seed: args.split_seed,
                },
            )?;
            Ok(SplitData {
                dataset,
                train: parts.train,
                test: parts.test,
                report: opened.loaded.report,
            })
        }
        _ => Err(BadInput("give --data NAME|PATH, or --train FILE --test FILE".into()).into()),
    }
}

/// Display titles by item vocabulary row.
pub fn titles_by_row(vocab: &shortlist_features::Vocabulary, dataset: &Dataset) -> Vec<String> {
    (0..vocab.len() as u32)
        .map(
            |row| match vocab.value(row).and_then(|raw| dataset.items.get(raw)) {
                Some(i) => dataset.item_title(i).to_owned(),
                None => String::new(),
            },
        )
        .collect()
}

/// `--epochs`, `--batch-size` and `--seed` override the configuration file (both
/// config types have these fields).
macro_rules! apply_overrides {
    ($cfg:ident, $args:ident) => {
        if let Some(e) = $args.epochs {
            $cfg.epochs = e;
        }
        if let Some(b) = $args.batch_size {
            $cfg.batch_size = b;
        }
        if let Some(s) = $args.seed {
            $cfg.seed = s;
        }
    };
}

fn config_text(args: &TrainArgs, default: &str) -> Result<(String, PathBuf)> {
    match &args.config {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => Ok((text, p.clone())),
            Err(e) => Err(BadInput(format!("--config {}: {e}", p.display())).into()),
        },
        None => Ok((default.to_owned(), PathBuf::from("<default config>"))),
    }
}

/// What `train ranking` reports.
#[derive(Debug, Serialize)]
pub struct RankingReport {
    /// Output directory.
    pub out: PathBuf,
    /// Test RMSE.
    pub rmse: f64,
    /// Test MAE.
    pub mae: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Median training seconds per epoch.
    pub train_seconds_per_epoch: f64,
    /// Training examples per second (median epoch).
    pub examples_per_second: f64,
    /// Training interactions.
    pub train_examples: usize,
    /// Test interactions.
    pub test_examples: usize,
    /// Wall time of the command's training.
    pub train_seconds: f64,
}

/// Trains, evaluates and saves a ranking model.
pub fn train_ranking(args: &TrainArgs, split: &SplitData) -> Result<RankingReport> {
    let (text, path) = config_text(args, RANKING_DEFAULT)?;
    let mut cfg = TrainConfig::from_toml(&text, &path)?;
    apply_overrides!(cfg, args);
    cfg.validate()?;
    let start = Instant::now();
    let (model, history) =
        shortlist_train::train_ranking(&split.dataset, &split.train, &split.test, &cfg)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let m = shortlist_train::evaluate(&model, &split.dataset, &split.test);
    let staging = AtomicDir::new(&args.out)?;
    model.save(staging.path())?;
    history.write_curves(staging.path())?;
    shortlist_core::atomic::write_file(
        &staging.path().join("config.toml"),
        cfg.to_toml().as_bytes(),
    )?;
    write_titles(
        staging.path(),
        &model.spec,
        &titles_by_row(&model.spec.item_id, &split.dataset),
    )?;
    staging.commit()?;
    let median = history.median_epoch_seconds();
    let used = (split.train.len() as f64 * (1.0 - cfg.validation_fraction as f64)).round();
    Ok(RankingReport {
        out: args.out.clone(),
        rmse: m.rmse,
        mae: m.mae,
        epochs: history.epochs.len(),
        train_seconds_per_epoch: median,
        examples_per_second: if median > 0.0 { used / median } else { 0.0 },
        train_examples: split.train.len(),
        test_examples: split.test.len(),
        train_seconds,
    })
}

/// Trains, evaluates and saves a retrieval model; returns the JSON report.
pub fn train_retrieval_cmd(args: &TrainArgs, split: &SplitData, ctx: &Context) -> Result<Value> {
    let (text, path) = config_text(args, RETRIEVAL_DEFAULT)?;
    let mut cfg = RetrievalTrainConfig::from_toml(&text, &path)?;
    apply_overrides!(cfg, args);
    cfg.validate()?;
    let start = Instant::now();
    let quiet = ctx.quiet;
    let (model, history) = train_retrieval(&split.dataset, &split.train, &split.test, &cfg, |e| {
        if !quiet {
            let m = |k: &str| e.test.as_ref().and_then(|t| t.get(k)).unwrap_or(f64::NAN);
            tracing::info!(
                "epoch {:>3}  loss {:.4}  recall@20 {:.4}  ndcg@10 {:.4}  top-100 acc {:.4}  ({:.2}s)",
                e.epoch,
                e.train_loss,
                m("recall@20"),
                m("ndcg@10"),
                m("top_k_accuracy@100"),
                e.seconds
            );
        }
    })?;
    let train_seconds = start.elapsed().as_secs_f64();
    let ev = SplitEvaluator::new(&split.dataset, &split.train, &split.test)?;
    let metrics = ev.model(&model, &split.dataset)?;
    let popularity = ev.popularity()?;
    let staging = AtomicDir::new(&args.out)?;
    model.save_into(
        staging.path(),
        &titles_by_row(&model.spec.item_id, &split.dataset),
    )?;
    // An IVF index sizes each search for the recall target from a calibration:
    // measured with the model's own users, whose vectors may sit elsewhere than items.
    let queries = model.all_queries();
    let index = AnyIndex::build_with_queries(
        model.all_candidates(),
        model.dim(),
        &cfg.index,
        Some(&queries),
    )?;
    index.save_dir(staging.path())?;
    history.write_curves(staging.path())?;
    shortlist_core::atomic::write_file(
        &staging.path().join("config.toml"),
        cfg.to_toml().as_bytes(),
    )?;
    staging.commit()?;
    let median = history.median_epoch_seconds();
    let mut report = serde_json::to_value(&metrics)?;
    if let Value::Object(map) = &mut report {
        map.insert("out".into(), json!(args.out));
        map.insert("epochs".into(), json!(history.epochs.len()));
        map.insert("train_seconds_per_epoch".into(), json!(median));
        map.insert(
            "examples_per_second".into(),
            json!(if median > 0.0 {
                split.train.len() as f64 / median
            } else {
                0.0
            }),
        );
        map.insert(
            "eval_seconds_per_epoch".into(),
            json!(
                history.epochs.iter().map(|e| e.eval_seconds).sum::<f64>()
                    / history.epochs.len().max(1) as f64
            ),
        );
        map.insert("train_seconds".into(), json!(train_seconds));
        map.insert("popularity".into(), serde_json::to_value(&popularity)?);
        map.insert("index".into(), json!(index.kind_name()));
    }
    Ok(report)
}

/// Runs a `train` subcommand.
pub fn run(cmd: TrainCommand, ctx: &Context) -> Result<()> {
    match cmd {
        TrainCommand::Ranking(args) => {
            let split = load_data(&args.data, ctx)?;
            let r = train_ranking(&args, &split)?;
            if args.json {
                print_json(&r)
            } else {
                crate::outln!(
                    "ranking model → {}\n  test RMSE {:.4}  MAE {:.4}  ({} epochs, {:.3} s/epoch, {:.0} examples/s)",
                    r.out.display(),
                    r.rmse,
                    r.mae,
                    r.epochs,
                    r.train_seconds_per_epoch,
                    r.examples_per_second
                );
                Ok(())
            }
        }
        TrainCommand::Retrieval(args) => {
            let split = load_data(&args.data, ctx)?;
            let r = train_retrieval_cmd(&args, &split, ctx)?;
            if args.json {
                print_json(&r)
            } else {
                print_retrieval(&r, &args.out)
            }
        }
    }
}

fn print_retrieval(r: &Value, out: &Path) -> Result<()> {
    let g = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let p = |k: &str| {
        r.get("popularity")
            .and_then(|p| p.get(k))
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    crate::outln!("retrieval model → {}", out.display());
    crate::outln!("  {:<20} {:>8} {:>11}", "metric", "model", "popularity");
    for k in [
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "hit_rate@10",
        "top_k_accuracy@10",
        "top_k_accuracy@100",
    ] {
        crate::outln!("  {k:<20} {:>8.4} {:>11.4}", g(k), p(k));
    }
    crate::outln!(
        "  {} epochs, {:.3} s/epoch",
        g("epochs"),
        g("train_seconds_per_epoch")
    );
    Ok(())
}
