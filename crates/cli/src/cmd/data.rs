//! `shortlist data …`: fetch, info, split, synth.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use shortlist_data::fetch::{self, FetchOptions, Fetched};
use shortlist_data::info::DatasetInfo;
use shortlist_data::loaders::{self, tsv};
use shortlist_data::products::{self, ProductConfig};
use shortlist_data::split::{self, SplitMethod};
use shortlist_data::synth::{self, SynthConfig};
use shortlist_data::{DuplicatePolicy, LoadOptions, LoadReport, Loaded, RowPolicy};

use super::{print_json, thousands, Context};

/// `shortlist data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a MovieLens dataset into the cache ($SHORTLIST_HOME, else the XDG cache dir).
    Fetch {
        /// ml-100k, ml-1m, ml-latest-small or ml-25m.
        name: String,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Summarise a dataset: users, items, interactions, density, ratings, time, features.
    Info {
        /// A dataset name (fetched if needed) or the path of a dataset file or directory.
        dataset: String,
        #[command(flatten)]
        #[allow(missing_docs)] // clap: a flattened group documents its own flags
        load: LoadArgs,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Split a dataset into train.tsv and test.tsv (user_id, item_id, rating, timestamp), published together.
    Split {
        /// A dataset name or path.
        dataset: String,
        /// random (seeded), temporal (global time cut) or leave-last-out (per user).
        #[arg(long, value_enum, default_value_t = Method::Random)]
        method: Method,
        /// Share of interactions in training (random and temporal).
        #[arg(long, default_value_t = 0.8)]
        ratio: f64,
        /// Seed of the random split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Interactions held out per user (leave-last-out).
        #[arg(long, default_value_t = 1)]
        n: usize,
        /// Output directory (new, empty, or holding a previous split: it is replaced as a whole).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        #[allow(missing_docs)] // clap: a flattened group documents its own flags
        load: LoadArgs,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Generate a synthetic log with planted low-rank structure (for tests and benchmarks).
    Synth {
        /// planted: ratings from low-rank factors (interactions.tsv, items.tsv, users.tsv);
        /// products: a product log with string ids, catalogue features, view / click /
        /// like / purchase events and late launches (events.tsv, products.tsv).
        #[arg(long, value_enum, default_value = "planted")]
        kind: SynthKind,
        /// Number of users [planted: 1000; products: 6000 customers].
        #[arg(long)]
        users: Option<usize>,
        /// Number of items [planted: 500; products: 3000 products].
        #[arg(long)]
        items: Option<usize>,
        /// Number of interactions [planted: 50000; products: 150000 sessions of 1–4 events].
        #[arg(long)]
        interactions: Option<usize>,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Rank of the planted factors (planted only).
        #[arg(long, default_value_t = 8)]
        rank: usize,
        /// Output directory (with a schema.toml describing the files).
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// What `data synth` generates.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SynthKind {
    /// Ratings with planted low-rank structure.
    Planted,
    /// A product log (see `shortlist_data::products`).
    Products,
}

/// Split methods on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    /// Seeded random split.
    Random,
    /// Global time cut.
    Temporal,
    /// Each user's last n interactions are tested.
    LeaveLastOut,
}

/// Flags of every command that reads a dataset.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Skip malformed rows (their count and the first few are reported) instead of failing.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Repeated (user, item) pairs: keep-all, keep-last or average.
    #[arg(long, default_value = "keep-all", value_name = "POLICY")]
    pub duplicates: DuplicatePolicy,
}

impl LoadArgs {
    /// As loader options.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            policy: RowPolicy {
                skip_bad_rows: self.skip_bad_rows,
            },
            duplicates: self.duplicates,
        }
    }
}

/// A loaded dataset and where it came from.
pub struct Opened {
    /// The dataset and load report.
    pub loaded: Loaded,
    /// The fetch, when the dataset was named rather than given by path.
    pub fetched: Option<Fetched>,
}

/// Loads `spec`: a known dataset name (fetched into the cache if needed) or a path.
pub fn open(spec: &str, load: &LoadArgs, ctx: &Context) -> Result<Opened> {
    let progress = ctx.progress();
    let path = Path::new(spec);
    let (dir, fetched) = if fetch::known(spec).is_some() && !path.exists() {
        let f = fetch::fetch(spec, &FetchOptions::from_env(), &progress)?;
        if f.cached {
            tracing::info!(
                "{spec}: cached in {} (source: {})",
                f.dir.display(),
                f.source
            );
        }
        (f.dir.clone(), Some(f))
    } else if path.exists() || looks_like_path(spec) {
        // A missing path is reported as such by the loader ("no such file or directory").
        (path.to_path_buf(), None)
    } else {
        return Err(fetch::unknown_dataset(spec).into());
    };
    let loaded = loaders::load_path(&dir, &load.options(), &progress)?;
    warn_report(&loaded.report);
    Ok(Opened { loaded, fetched })
}

/// A dataset argument that names a file or directory rather than a dataset: it has a
/// path separator or a file extension (`nope/ratings.csv`, `log.tsv`).
fn looks_like_path(spec: &str) -> bool {
    let p = Path::new(spec);
    spec.contains(std::path::MAIN_SEPARATOR)
        || spec.contains('/')
        || spec.starts_with('.')
        || p.extension().is_some()
}

/// Logs what loading skipped or merged (never silent).
pub fn warn_report(report: &LoadReport) {
    if report.skipped_rows > 0 {
        tracing::warn!(
            "skipped {} malformed row(s) (--skip-bad-rows); first: {}",
            report.skipped_rows,
            report.examples.join("; ")
        );
    }
    if report.duplicates_removed > 0 {
        tracing::info!(
            "duplicate policy removed {} interaction(s)",
            report.duplicates_removed
        );
    }
}

#[derive(Serialize)]
struct InfoJson<'a> {
    #[serde(flatten)]
    info: &'a DatasetInfo,
    source: Option<&'a str>,
    load_report: &'a LoadReport,
}

/// Runs a `data` subcommand.
pub fn run(cmd: DataCommand, ctx: &Context) -> Result<()> {
    match cmd {
        DataCommand::Fetch { name, json } => {
            let f = fetch::fetch(&name, &FetchOptions::from_env(), &ctx.progress())?;
            if json {
                print_json(&f)
            } else {
                crate::outln!(
                    "{}: {} in {}\nsource: {}",
                    f.name,
                    if f.cached {
                        "already cached"
                    } else {
                        "fetched"
                    },
                    f.dir.display(),
                    f.source
                );
                Ok(())
            }
        }
        DataCommand::Info {
            dataset,
            load,
            json,
        } => {
            let opened = open(&dataset, &load, ctx)?;
            let info = shortlist_data::info::info(&opened.loaded.dataset);
            let source = opened.fetched.as_ref().map(|f| f.source.as_str());
            if json {
                print_json(&InfoJson {
                    info: &info,
                    source,
                    load_report: &opened.loaded.report,
                })
            } else {
                print_info(&info, source)
            }
        }
        DataCommand::Split {
            dataset,
            method,
            ratio,
            seed,
            n,
            out,
            load,
            json,
        } => {
            let opened = open(&dataset, &load, ctx)?;
            let method = match method {
                Method::Random => SplitMethod::Random { ratio, seed },
                Method::Temporal => SplitMethod::Temporal { ratio },
                Method::LeaveLastOut => SplitMethod::LeaveLastOut { n },
            };
            let summary = write_split(&opened.loaded.dataset, method, &out)?;
            if json {
                print_json(&summary)
            } else {
                crate::outln!(
                    "train: {} rows → {}\ntest:  {} rows → {}\nsha256: {}",
                    thousands(summary.train),
                    summary.train_file.display(),
                    thousands(summary.test),
                    summary.test_file.display(),
                    summary.sha256
                );
                Ok(())
            }
        }
        DataCommand::Synth {
            kind,
            users,
            items,
            interactions,
            seed,
            rank,
            out,
            json,
        } => {
            let s = match kind {
                SynthKind::Planted => {
                    let d = SynthConfig::default();
                    let cfg = SynthConfig {
                        users: users.unwrap_or(d.users),
                        items: items.unwrap_or(d.items),
                        interactions: interactions.unwrap_or(d.interactions),
                        seed,
                        rank,
                        ..d
                    };
                    synth::write(&cfg, &out, &ctx.progress())?
                }
                SynthKind::Products => {
                    let d = ProductConfig::default();
                    let cfg = ProductConfig {
                        customers: users.unwrap_or(d.customers),
                        products: items.unwrap_or(d.products),
                        sessions: interactions.unwrap_or(d.sessions),
                        seed,
                        ..d
                    };
                    products::write(&cfg, &out, &ctx.progress())?
                }
            };
            if json {
                print_json(&s)
            } else {
                crate::outln!(
                    "wrote {} interactions ({} users, {} items) to {}\nload it with: shortlist data info {}",
                    thousands(s.interactions),
                    thousands(s.users),
                    thousands(s.items),
                    s.dir.display(),
                    s.dir.display()
                );
                Ok(())
            }
        }
    }
}

/// What `data split` wrote.
#[derive(Debug, Serialize)]
pub struct SplitSummary {
    /// The method and its parameters.
    pub method: SplitMethod,
    /// Training rows.
    pub train: usize,
    /// Test rows.
    pub test: usize,
    /// Training file.
    pub train_file: PathBuf,
    /// Test file.
    pub test_file: PathBuf,
    /// SHA-256 of the training file's bytes followed by the test file's.
    pub sha256: String,
}

/// The files `data split` owns in its output directory.
const SPLIT_FILES: [&str; 3] = ["train.tsv", "test.tsv", "split.json"];

/// Splits `dataset` and publishes `out/train.tsv`, `out/test.tsv` and
/// `out/split.json` as one unit: the directory is built under a temporary name and
/// swapped into place, so a crash at any moment leaves the old split or the new
/// one, never a mixed pair. `out` must be new, empty or hold only a previous split.
pub fn write_split(
    dataset: &shortlist_core::Dataset,
    method: SplitMethod,
    out: &Path,
) -> Result<SplitSummary> {
    check_split_dir(out)?;
    let parts = split::split(&dataset.interactions, method)?;
    let train_file = out.join("train.tsv");
    let test_file = out.join("test.tsv");
    let staging = shortlist_core::atomic::AtomicDir::new(out)
        .with_context(|| format!("creating {}", out.display()))?;
    let train_bytes = tsv::write_rows(&staging.path().join("train.tsv"), dataset, &parts.train)
        .with_context(|| format!("writing {}", train_file.display()))?;
    let test_bytes = tsv::write_rows(&staging.path().join("test.tsv"), dataset, &parts.test)
        .with_context(|| format!("writing {}", test_file.display()))?;
    let mut both = train_bytes.clone();
    both.extend_from_slice(&test_bytes);
    let summary = SplitSummary {
        method,
        train: parts.train.len(),
        test: parts.test.len(),
        train_file,
        test_file,
        sha256: fetch::sha256_hex(&both),
    };
    let record = serde_json::json!({
        "format": "shortlist.split",
        "method": summary.method,
        "train": {"file": "train.tsv", "rows": summary.train, "sha256": fetch::sha256_hex(&train_bytes)},
        "test": {"file": "test.tsv", "rows": summary.test, "sha256": fetch::sha256_hex(&test_bytes)},
        "sha256": summary.sha256,
    });
    shortlist_core::atomic::write_file(
        &staging.path().join("split.json"),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    staging
        .commit()
        .with_context(|| format!("publishing {}", out.display()))?;
    Ok(summary)
}

/// `data split` replaces its output directory as a whole, so it refuses one that
/// holds anything but a previous split.
fn check_split_dir(out: &Path) -> Result<()> {
    let bad = |msg: String| -> anyhow::Error { super::BadInput(msg).into() };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(format!("--out {}: {e}", out.display()))),
        Ok(m) if !m.is_dir() => {
            return Err(bad(format!(
                "--out {}: exists and is not a directory",
                out.display()
            )))
        }
        Ok(_) => {}
    }
    let mut others: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !SPLIT_FILES.contains(&n.as_str()))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    others.sort();
    others.truncate(5);
    Err(bad(format!(
        "--out {}: holds files other than a split's ({}); data split replaces the whole directory, so choose a new or empty one",
        out.display(),
        others.join(", ")
    )))
}

fn print_info(info: &DatasetInfo, source: Option<&str>) -> Result<()> {
    crate::outln!("{}", info.name);
    if let Some(s) = source {
        crate::outln!("  source        {s}");
    }
    crate::outln!("  users         {}", thousands(info.users));
    crate::outln!("  items         {}", thousands(info.items));
    if info.catalogue_items != info.items || info.catalogue_users != info.users {
        crate::outln!(
            "  catalogue     {} users, {} items (with metadata but no interactions included)",
            thousands(info.catalogue_users),
            thousands(info.catalogue_items)
        );
    }
    crate::outln!("  interactions  {}", thousands(info.interactions));
    crate::outln!("  density       {:.4}%", info.density * 100.0);
    if let Some(m) = info.rating_mean {
        crate::outln!("  rating mean   {m:.5}");
        let total = info.interactions.max(1) as f64;
        for b in &info.rating_histogram {
            let label = match b.upper {
                Some(u) => format!("{:.2}–{:.2}", b.rating, u),
                None => format!("{}", b.rating),
            };
            let share = b.count as f64 / total;
            crate::outln!(
                "    {label:>9}  {:>10}  {:5.1}%  {}",
                thousands(b.count),
                share * 100.0,
                "█".repeat((share * 60.0).round() as usize)
            );
        }
    } else {
        crate::outln!("  feedback      implicit (no ratings)");
    }
    if let Some(t) = &info.time_range {
        crate::outln!("  time range    {} .. {}", t.first_date, t.last_date);
    }
    for (label, cols) in [
        ("user features", &info.user_features),
        ("item features", &info.item_features),
    ] {
        if cols.is_empty() {
            continue;
        }
        let parts: Vec<String> = cols
            .iter()
            .map(|c| {
                let kind = serde_json::to_value(&c.kind)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_owned)))
                    .unwrap_or_default();
                match c.distinct {
                    Some(d) => format!("{} ({kind}, {d} values)", c.name),
                    None => format!("{} ({kind})", c.name),
                }
            })
            .collect();
        crate::outln!("  {label} {}", parts.join(", "));
    }
    Ok(())
}
