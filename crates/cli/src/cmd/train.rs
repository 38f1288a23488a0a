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
use shortlist_eval::{BiasBaseline, ClickMetrics, RatingErrors, SplitEvaluator};
use shortlist_index::AnyIndex;
use shortlist_model::retrieval_artifact::write_titles;
use shortlist_model::Objective;
use shortlist_train::retrieval::{train_retrieval_with, DatasetScorer, RetrievalTrainConfig};
use shortlist_train::{ClickBaselines, TrainConfig};

use super::data::{open, LoadArgs};
use super::{print_json, BadInput, Context};
use crate::table::Table;

/// The shipped default configurations (the files in `configs/`).
pub const RANKING_DEFAULT: &str = include_str!("../../../../configs/ranking-default.toml");
/// The shipped default retrieval configuration.
pub const RETRIEVAL_DEFAULT: &str = include_str!("../../../../configs/retrieval-default.toml");

/// `shortlist train` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train the ranking model (embeddings + MLP → rating, or click probability with
    /// objective = "click").
    Ranking(TrainArgs),
    /// Train the retrieval model (two towers, softmax over items).
    Retrieval(TrainArgs),
    /// Train an EASE candidate source (closed-form item–item model).
    Ease(TrainArgs),
    /// Train an iALS candidate source (implicit alternating least squares).
    Ials(TrainArgs),
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
    #[allow(missing_docs)] // clap: a flattened group documents its own flags
    pub load: LoadArgs,
}

/// Flags of `train ranking` and `train retrieval`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    #[allow(missing_docs)] // clap: a flattened group documents its own flags
    pub data: DataArgs,
    /// TOML configuration (default: the shipped configs/*-default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the number of epochs. Ranking: every ensemble member trains N epochs,
    /// and the AutoRec's full-batch epochs are scaled by the same factor (N / the
    /// configuration's epochs, at least 1; the command logs both). Retrieval: N epochs.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Override the batch size.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = at_least_one)]
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

/// Parses a whole number ≥ 1 (`--epochs`, `--batch-size`). Negative numbers reach
/// this parser (`allow_negative_numbers`), so clap's error names the flag:
/// `invalid value '-1' for '--epochs <N>': expected a whole number ≥ 1, found -1`.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 => {
            usize::try_from(n).map_err(|_| format!("expected a whole number ≥ 1, found {s}"))
        }
        Ok(_) => Err(format!("expected a whole number ≥ 1, found {s}")),
        Err(_) => Err(format!("expected a whole number ≥ 1, found {s:?}")),
    }
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

/// Writes the raw item attributes (`attributes.json`: the item features that
/// requests may filter on) into a model's staging directory, when the dataset has
/// any non-text item feature.
pub fn write_attributes(
    dir: &std::path::Path,
    vocab: &shortlist_features::Vocabulary,
    dataset: &Dataset,
) -> shortlist_model::Result<()> {
    let attrs = shortlist_model::attributes::ItemAttributes::from_table(
        vocab,
        &dataset.items,
        &dataset.item_features,
    );
    if attrs.columns().is_empty() {
        return Ok(());
    }
    attrs.save(dir, vocab)
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
        Some(p) => match shortlist_core::input::read_text(p) {
            Ok(text) => Ok((text, p.clone())),
            Err(e) => Err(BadInput(format!("--config {e}")).into()),
        },
        None => Ok((default.to_owned(), PathBuf::from("<default config>"))),
    }
}

/// Test errors of the rating baselines, fitted on the same training rows as the model.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RatingBaselines {
    /// Always predicting the mean training rating.
    pub global_mean: RatingErrors,
    /// Mean + damped user and item biases ([`BiasBaseline`], Koren's λ).
    pub user_item_bias: RatingErrors,
}

/// Fits the rating baselines on `split.train` and measures them on `split.test`.
pub fn rating_baselines(split: &SplitData) -> Result<RatingBaselines> {
    let it = &split.dataset.interactions;
    let columns = |rows: &[usize]| -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        (
            rows.iter().map(|&r| it.users[r]).collect(),
            rows.iter().map(|&r| it.items[r]).collect(),
            rows.iter().map(|&r| it.ratings[r]).collect(),
        )
    };
    let (u, i, r) = columns(&split.train);
    let b = BiasBaseline::fit(
        &u,
        &i,
        &r,
        split.dataset.users.len(),
        split.dataset.items.len(),
        BiasBaseline::KOREN,
    )?;
    let (tu, ti, tr) = columns(&split.test);
    Ok(RatingBaselines {
        global_mean: RatingErrors::of(&tr, |_| b.mean),
        user_item_bias: RatingErrors::of(&tr, |k| b.predict(tu[k], ti[k])),
    })
}

/// The click metrics `train ranking` reports for objective = "click" (test rows).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClickReport {
    /// The model's AUC, group AUC and log-loss.
    pub model: ClickMetrics,
    /// The baselines fitted on the same training rows.
    pub baselines: ClickBaselines,
}

/// What `train ranking` reports.
#[derive(Debug, Serialize)]
pub struct RankingReport {
    /// Output directory.
    pub out: PathBuf,
    /// The objective trained (`rating`, `click`, `multitask`).
    pub objective: &'static str,
    /// Test RMSE (of the click probabilities against the 0/1 labels for `click`).
    pub rmse: f64,
    /// Test MAE.
    pub mae: f64,
    /// What the reported model is: `model`, `3-member ensemble`,
    /// `3-member ensemble + AutoRec blend`.
    pub model: String,
    /// Test errors of the baselines (same training rows).
    pub baselines: RatingBaselines,
    /// Epochs run (by the first ensemble member).
    pub epochs: usize,
    /// Full-batch epochs of the AutoRec, when the model has one.
    pub autorec_epochs: Option<usize>,
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
    /// `click`: AUC, group AUC and log-loss beside the baselines'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click: Option<ClickReport>,
    /// `multitask`: full-ranking metrics of the shared embeddings as a retrieval model
    /// (with `popularity`'s beside them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_retrieval: Option<Value>,
}

/// `--epochs N` on a ranking configuration: the members train N epochs and the
/// AutoRec's epochs scale by N / the configured epochs (rounded, at least 1), so a
/// quick run is quick throughout; both are logged.
fn scale_autorec_epochs(cfg: &mut TrainConfig, epochs: Option<usize>) {
    let (Some(n), Some(a)) = (epochs, cfg.autorec.as_mut()) else {
        return;
    };
    if n == cfg.epochs {
        return;
    }
    let scaled = ((a.epochs as f64) * n as f64 / cfg.epochs.max(1) as f64)
        .round()
        .max(1.0) as usize;
    tracing::info!(
        "--epochs {n}: each ensemble member trains {n} epochs instead of {}, and the AutoRec {scaled} full-batch epochs instead of {} (scaled alike)",
        cfg.epochs,
        a.epochs
    );
    a.epochs = scaled;
}

/// Trains, evaluates and saves a ranking model.
pub fn train_ranking(args: &TrainArgs, split: &SplitData, ctx: &Context) -> Result<RankingReport> {
    let (text, path) = config_text(args, RANKING_DEFAULT)?;
    let mut cfg = TrainConfig::from_toml(&text, &path)?;
    scale_autorec_epochs(&mut cfg, args.epochs);
    apply_overrides!(cfg, args);
    if let (Some(seed), Some(r)) = (args.seed, cfg.relevance.as_mut()) {
        // One seed for the whole model: the relevance head's split, first stage and iALS.
        r.seed = seed;
        r.retrieval.seed = seed;
        r.ials.seed = seed;
    }
    cfg.validate()?;
    let baselines = rating_baselines(split)?;
    let start = Instant::now();
    let (model, history) = shortlist_train::train_ranking_with(
        &split.dataset,
        &split.train,
        &split.test,
        &cfg,
        &ctx.progress(),
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let m = shortlist_train::evaluate(&model, &split.dataset, &split.test);
    let m = match (cfg.objective, history.final_test) {
        // click: the probabilities' errors against the 0/1 labels, not the ratings
        (Objective::Click, Some(t)) => t,
        _ => m,
    };
    let click = match (cfg.objective, history.final_click) {
        (Objective::Click, Some(model)) => Some(ClickReport {
            model,
            baselines: ClickBaselines::measure(
                &split.dataset,
                &split.train,
                &split.test,
                cfg.click_threshold,
            )?,
        }),
        _ => None,
    };
    let shared_retrieval = match cfg.objective {
        Objective::Multitask if !split.test.is_empty() => {
            let (m, pop) = shortlist_train::multitask::shared_retrieval(
                &model,
                &split.dataset,
                &split.train,
                &split.test,
            )?;
            let mut v = serde_json::to_value(&m)?;
            if let Value::Object(map) = &mut v {
                map.insert("popularity".into(), serde_json::to_value(&pop)?);
            }
            Some(v)
        }
        _ => None,
    };
    let staging = AtomicDir::new(&args.out)?;
    model.save(staging.path())?;
    history.write_curves_with(
        staging.path(),
        &[
            (
                "user + item biases".to_owned(),
                baselines.user_item_bias.rmse,
            ),
            ("global mean".to_owned(), baselines.global_mean.rmse),
        ],
    )?;
    shortlist_core::atomic::write_file(
        &staging.path().join("config.toml"),
        cfg.to_toml()?.as_bytes(),
    )?;
    write_titles(
        staging.path(),
        &model.spec,
        &titles_by_row(&model.spec.item_id, &split.dataset),
    )?;
    // Every file is in place: list them with their checksums in the manifest.
    shortlist_model::files::seal(staging.path())?;
    staging.commit()?;
    let median = history.median_epoch_seconds();
    let used = (split.train.len() as f64 * (1.0 - cfg.validation_fraction as f64)).round();
    Ok(RankingReport {
        out: args.out.clone(),
        objective: cfg.objective.name(),
        rmse: m.rmse,
        mae: m.mae,
        model: history.composition().unwrap_or_else(|| "model".into()),
        baselines,
        epochs: history.epochs.len(),
        autorec_epochs: cfg.autorec.as_ref().map(|a| a.epochs),
        train_seconds_per_epoch: median,
        examples_per_second: if median > 0.0 { used / median } else { 0.0 },
        train_examples: split.train.len(),
        test_examples: split.test.len(),
        train_seconds,
        click,
        shared_retrieval,
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
    let bars = ctx.progress();
    let (model, history) = train_retrieval_with(
        &split.dataset,
        &split.train,
        &split.test,
        &cfg,
        &bars,
        |e| {
            if !quiet {
                let m = |k: &str| e.test.as_ref().and_then(|t| t.get(k)).unwrap_or(f64::NAN);
                bars.suspend(|| {
                    tracing::info!(
                        "epoch {:>3}  loss {:.4}  recall@20 {:.4}  ndcg@10 {:.4}  top-100 acc {:.4}  ({:.2}s)",
                        e.epoch,
                        e.train_loss,
                        m("recall@20"),
                        m("ndcg@10"),
                        m("top_k_accuracy@100"),
                        e.seconds
                    )
                });
            }
        },
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    // No test rows (a model fitted from Python without `valid`): no metrics.
    let (metrics, popularity) = if split.test.is_empty() {
        (None, None)
    } else {
        let ev = SplitEvaluator::new(&split.dataset, &split.train, &split.test)?;
        (
            Some(ev.scorer(&DatasetScorer::new(&model, &split.dataset))?),
            Some(ev.popularity()?),
        )
    };
    let staging = AtomicDir::new(&args.out)?;
    model.save_into(
        staging.path(),
        &titles_by_row(&model.spec.item_id, &split.dataset),
    )?;
    write_attributes(staging.path(), &model.spec.item_id, &split.dataset)?;
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
    history.write_curves_with(staging.path(), popularity.as_ref())?;
    shortlist_core::atomic::write_file(
        &staging.path().join("config.toml"),
        cfg.to_toml()?.as_bytes(),
    )?;
    // Every file is in place (the index too): list them with their checksums.
    shortlist_model::files::seal(staging.path())?;
    staging.commit()?;
    let median = history.median_epoch_seconds();
    let mut report = match &metrics {
        Some(m) => serde_json::to_value(m)?,
        None => json!({}),
    };
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
        if let Some(p) = &popularity {
            map.insert("popularity".into(), serde_json::to_value(p)?);
        }
        map.insert("index".into(), json!(index.kind_name()));
    }
    Ok(report)
}

/// Runs a `train` subcommand.
pub fn run(cmd: TrainCommand, ctx: &Context) -> Result<()> {
    match cmd {
        TrainCommand::Ranking(args) => {
            let split = load_data(&args.data, ctx)?;
            let r = train_ranking(&args, &split, ctx)?;
            if args.json {
                print_json(&r)
            } else {
                crate::outln!(
                    "ranking model ({} objective) → {}",
                    r.objective,
                    r.out.display()
                );
                let mut t = Table::new(4);
                match &r.click {
                    Some(c) => add_click_section(&mut t, c),
                    None => add_ranking_section(&mut t, &r),
                }
                if let Some(s) = &r.shared_retrieval {
                    add_retrieval_section_titled(
                        &mut t,
                        "shared embeddings as a retrieval model",
                        s,
                        RETRIEVAL_ROWS,
                    );
                }
                crate::outln!("{}", t.render().trim_end());
                crate::outln!(
                    "  {} epochs, {:.3} s/epoch, {:.0} examples/s",
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
        TrainCommand::Ease(args) => {
            let split = load_data(&args.data, ctx)?;
            let r = super::train_implicit::train_ease_cmd(&args, &split)?;
            if args.json {
                print_json(&r)
            } else {
                super::train_implicit::print(&r)
            }
        }
        TrainCommand::Ials(args) => {
            let split = load_data(&args.data, ctx)?;
            let r = super::train_implicit::train_ials_cmd(&args, &split, ctx)?;
            if args.json {
                print_json(&r)
            } else {
                super::train_implicit::print(&r)
            }
        }
    }
}

fn print_retrieval(r: &Value, out: &Path) -> Result<()> {
    crate::outln!("retrieval model → {}", out.display());
    let mut t = Table::new(4);
    add_retrieval_section(&mut t, r, RETRIEVAL_ROWS);
    crate::outln!("{}", t.render().trim_end());
    let g = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    crate::outln!(
        "  {} epochs, {:.3} s/epoch",
        g("epochs"),
        g("train_seconds_per_epoch")
    );
    Ok(())
}

/// The retrieval metrics shown in text reports, in order.
pub const RETRIEVAL_ROWS: &[&str] = &[
    "recall@10",
    "recall@20",
    "ndcg@10",
    "ndcg@20",
    "hit_rate@10",
    "top_k_accuracy@10",
    "top_k_accuracy@100",
];

/// Adds the retrieval section (model beside popularity) of a retrieval report or
/// `eval` result (`r`: the metrics, with `popularity` and `users_evaluated`).
pub fn add_retrieval_section(t: &mut Table, r: &Value, keys: &[&str]) {
    add_retrieval_section_titled(t, "retrieval", r, keys)
}

/// [`add_retrieval_section`] under another title.
pub fn add_retrieval_section_titled(t: &mut Table, title: &str, r: &Value, keys: &[&str]) {
    let users = r
        .get("users_evaluated")
        .and_then(Value::as_u64)
        .map(|n| format!("{} users", super::thousands(n as usize)))
        .unwrap_or_else(|| "users".into());
    let section = t.section(
        &format!("{title} (test: {users}; higher is better)"),
        &["model", "popularity"],
    );
    for key in keys {
        let model = r.get(*key).and_then(Value::as_f64);
        let pop = r
            .get("popularity")
            .and_then(|p| p.get(*key))
            .and_then(Value::as_f64);
        section.row(key, &[model, pop]);
    }
}

/// Adds the click section of a click model (model beside its two baselines): AUC and
/// group AUC (higher is better), log-loss (lower is better).
pub fn add_click_section(t: &mut Table, c: &ClickReport) {
    let (m, b) = (&c.model, &c.baselines);
    t.section(
        &format!(
            "click (test: {} impressions, {} clicks; AUC higher, log-loss lower is better)",
            super::thousands(m.count),
            super::thousands(m.positives)
        ),
        &["model", "item rate", "global rate"],
    )
    .row("AUC", &[m.auc, b.item_rate.auc, b.global_rate.auc])
    .row(
        "group AUC",
        &[m.group_auc, b.item_rate.group_auc, b.global_rate.group_auc],
    )
    .row(
        "log-loss",
        &[
            Some(m.log_loss),
            Some(b.item_rate.log_loss),
            Some(b.global_rate.log_loss),
        ],
    );
}

/// Adds the ranking section (model beside its two baselines) of a ranking report.
pub fn add_ranking_section(t: &mut Table, r: &RankingReport) {
    let b = &r.baselines;
    t.section(
        &format!(
            "ranking (test: {} ratings; lower is better)",
            super::thousands(r.test_examples)
        ),
        &["model", "user+item biases", "global mean"],
    )
    .row(
        "RMSE",
        &[
            Some(r.rmse),
            Some(b.user_item_bias.rmse),
            Some(b.global_mean.rmse),
        ],
    )
    .row(
        "MAE",
        &[
            Some(r.mae),
            Some(b.user_item_bias.mae),
            Some(b.global_mean.mae),
        ],
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn epochs_scale_the_autorec_alike_and_bad_counts_are_named() {
        let default = || TrainConfig::from_toml(RANKING_DEFAULT, Path::new("d")).unwrap();
        let autorec = |c: &TrainConfig| c.autorec.as_ref().map(|a| a.epochs);
        let base = default();
        assert_eq!((base.epochs, autorec(&base)), (14, Some(200)));
        for (n, want) in [(2, 29), (7, 100), (28, 400), (14, 200)] {
            let mut c = default();
            scale_autorec_epochs(&mut c, Some(n));
            assert_eq!(autorec(&c), Some(want), "--epochs {n}");
        }
        let mut c = default();
        scale_autorec_epochs(&mut c, None);
        assert_eq!(autorec(&c), Some(200));
        // 200 × 1 / 400 rounds to 0: at least one epoch.
        let mut c = default();
        c.epochs = 400;
        scale_autorec_epochs(&mut c, Some(1));
        assert_eq!(autorec(&c), Some(1));

        assert_eq!(at_least_one("3"), Ok(3));
        assert_eq!(
            at_least_one("-1"),
            Err("expected a whole number ≥ 1, found -1".into())
        );
        assert_eq!(
            at_least_one("0"),
            Err("expected a whole number ≥ 1, found 0".into())
        );
        assert_eq!(
            at_least_one("two"),
            Err("expected a whole number ≥ 1, found \"two\"".into())
        );
    }
}
