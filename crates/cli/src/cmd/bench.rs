//! `shortlist bench …`: benchmark programs that print figures (not tests).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use shortlist_data::split::{self, SplitMethod};
use shortlist_data::synth::{self, SynthConfig};
use shortlist_data::LoadOptions;
use shortlist_features::{FeatureConfig, FeatureSpec};

use super::{print_json, thousands, Context};

/// `shortlist bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load + fit features + split a large synthetic log; wall time and peak memory.
    Data {
        /// Interactions in the synthetic log.
        #[arg(long, default_value_t = 25_000_000)]
        interactions: usize,
        /// Users in the synthetic log.
        #[arg(long, default_value_t = 1_000_000)]
        users: usize,
        /// Items in the synthetic log.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Where the log is generated (reused if present).
        #[arg(long, default_value = "target/bench-data")]
        dir: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct DataBench {
    interactions: usize,
    users: usize,
    items: usize,
    file_bytes: u64,
    threads: usize,
    load_seconds: f64,
    fit_features_seconds: f64,
    split_seconds: f64,
    total_seconds: f64,
    peak_rss_mib: Option<f64>,
    generate_seconds: Option<f64>,
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak-memory counter (Linux: write 5 to clear_refs), so a phase measures alone.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand, ctx: &Context) -> Result<()> {
    match cmd {
        BenchCommand::Data {
            interactions,
            users,
            items,
            dir,
            json,
        } => {
            let cfg = SynthConfig {
                users,
                items,
                interactions,
                seed: 7,
                ..SynthConfig::default()
            };
            let schema = dir.join("schema.toml");
            let mut generate_seconds = None;
            let existing = dir.join("interactions.tsv");
            let fresh = std::fs::read_to_string(dir.join("bench.json")).ok()
                != Some(serde_json::to_string(&cfg)?);
            if !existing.exists() || fresh {
                let t = Instant::now();
                tracing::info!(
                    "generating {} interactions into {}",
                    thousands(interactions),
                    dir.display()
                );
                synth::write(&cfg, &dir, &ctx.progress())?;
                std::fs::write(dir.join("bench.json"), serde_json::to_string(&cfg)?)?;
                generate_seconds = Some(t.elapsed().as_secs_f64());
            }
            let file_bytes = std::fs::metadata(&existing)?.len();
            reset_peak_rss();
            let start = Instant::now();
            let loaded =
                shortlist_data::load_path(&schema, &LoadOptions::default(), &ctx.progress())?;
            let load_seconds = start.elapsed().as_secs_f64();
            let t = Instant::now();
            let parts = split::split(
                &loaded.dataset.interactions,
                SplitMethod::Random {
                    ratio: 0.8,
                    seed: 42,
                },
            )?;
            let split_seconds = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let fc = FeatureConfig {
                user_features: vec!["*".into()],
                item_features: vec!["*".into()],
                timestamp: true,
                timestamp_buckets: 16,
                ..FeatureConfig::default()
            };
            let spec = FeatureSpec::fit(&loaded.dataset, &parts.train, &fc)?;
            let _items = spec.encode_items(&loaded.dataset);
            let _users = spec.encode_users(&loaded.dataset);
            let fit_features_seconds = t.elapsed().as_secs_f64();
            let result = DataBench {
                interactions: loaded.dataset.interactions.len(),
                users: loaded.dataset.users.len(),
                items: loaded.dataset.items.len(),
                file_bytes,
                threads: rayon::current_num_threads(),
                load_seconds,
                fit_features_seconds,
                split_seconds,
                total_seconds: start.elapsed().as_secs_f64(),
                peak_rss_mib: peak_rss_mib(),
                generate_seconds,
            };
            if json {
                print_json(&result)
            } else {
                crate::outln!(
                    "{} interactions ({} users, {} items, {:.0} MiB file), {} threads",
                    thousands(result.interactions),
                    thousands(result.users),
                    thousands(result.items),
                    file_bytes as f64 / 1048576.0,
                    result.threads
                );
                crate::outln!("  load          {:8.2} s", result.load_seconds);
                crate::outln!("  split         {:8.2} s", result.split_seconds);
                crate::outln!("  fit features  {:8.2} s", result.fit_features_seconds);
                crate::outln!("  total         {:8.2} s", result.total_seconds);
                if let Some(m) = result.peak_rss_mib {
                    crate::outln!("  peak memory   {m:8.0} MiB");
                }
                Ok(())
            }
        }
    }
}
