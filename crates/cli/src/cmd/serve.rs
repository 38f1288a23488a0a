//! `shortlist serve`: the HTTP server over a TensorFlow-Serving-style model directory.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::BadInput;

/// Flags of `shortlist serve` (defaults and limits: README, "Serving").
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of `<model name>/<integer version>/` model directories.
    #[arg(long)]
    pub model_base_path: PathBuf,
    /// Address to listen on: 0.0.0.0 (every IPv4 interface, as TensorFlow Serving), 127.0.0.1 (this machine only), :: …
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// TCP port.
    #[arg(long, default_value_t = 8501)]
    pub port: u16,
    /// Seconds between scans for new versions.
    #[arg(long, default_value_t = 1.0)]
    pub poll_seconds: f64,
    /// Models to serve and to require for readiness, comma-separated (default: every directory; readiness requires the default models present).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Seconds a connection may take to send a complete request head.
    #[arg(long, default_value_t = 5.0)]
    pub header_timeout_seconds: f64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, default_value_t = 60.0)]
    pub idle_timeout_seconds: f64,
    /// Seconds from a request head to its answer (body and computation included); 504 past it.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout_seconds: f64,
    /// Most open connections (default: the file-descriptor limit minus a reserve of 1/8).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Threads computing predictions (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub compute_threads: usize,
    /// Most computations admitted at once; beyond it 503 with Retry-After.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Refuse (503) a computation whose estimated queue wait exceeds this many milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub max_queue_ms: f64,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Event names of POST /v1/events and `history` with their strengths.
    #[arg(long, default_value = "view=1,click=2,like=3,purchase=5")]
    pub event_strengths: String,
    /// When logged events reach the disk: batch (before each acknowledgement), never, or an interval such as 100ms.
    #[arg(long, default_value = "batch")]
    pub events_fsync: String,
    /// Events remembered per user (the latest).
    #[arg(long, default_value_t = 200)]
    pub events_per_user: usize,
    /// Users whose events are remembered; beyond it the least recently active user is forgotten.
    #[arg(long, default_value_t = 1_000_000)]
    pub events_max_users: usize,
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(BadInput(format!("--{flag}: expected a positive number, found {v}")).into())
    }
}

fn positive(flag: &str, v: usize) -> Result<usize> {
    if v == 0 {
        Err(BadInput(format!("--{flag}: expected a positive integer, found 0")).into())
    } else {
        Ok(v)
    }
}

/// The server configuration of `args`, every flag checked.
pub fn config(args: &ServeArgs) -> Result<shortlist_serve::ServeConfig> {
    if !args.model_base_path.is_dir() {
        return Err(BadInput(format!(
            "--model-base-path {}: not a directory (expected DIR/<model name>/<version>/)",
            args.model_base_path.display()
        ))
        .into());
    }
    if let Some(bad) = args
        .models
        .iter()
        .find(|m| m.is_empty() || m.contains('/') || m.starts_with('.'))
    {
        return Err(BadInput(format!("--models: {bad:?} is not a model directory name")).into());
    }
    let mut c = shortlist_serve::ServeConfig::new(&args.model_base_path, args.port);
    c.addr = SocketAddr::new(args.host, args.port);
    c.poll_interval = seconds("poll-seconds", args.poll_seconds)?;
    c.models = args.models.clone();
    c.header_timeout = seconds("header-timeout-seconds", args.header_timeout_seconds)?;
    c.idle_timeout = seconds("idle-timeout-seconds", args.idle_timeout_seconds)?;
    c.request_timeout = seconds("request-timeout-seconds", args.request_timeout_seconds)?;
    c.max_connections = args
        .max_connections
        .map(|n| positive("max-connections", n))
        .transpose()?;
    c.compute_threads = args.compute_threads;
    c.max_in_flight = positive("max-in-flight", args.max_in_flight)?;
    c.max_queue_wait = seconds("max-queue-ms", args.max_queue_ms / 1000.0)?;
    c.max_body_bytes = positive("max-body-bytes", args.max_body_bytes)?;
    c.event_table = shortlist_serve::events::EventTable::parse(&args.event_strengths)
        .map_err(|e| BadInput(format!("--event-strengths: {e}")))?;
    c.events_fsync = shortlist_serve::events::FsyncPolicy::parse(&args.events_fsync)
        .map_err(|e| BadInput(format!("--events-fsync: {e}")))?;
    c.events_per_user = positive("events-per-user", args.events_per_user)?;
    c.events_max_users = positive("events-max-users", args.events_max_users)?;
    Ok(c)
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(args: &ServeArgs) -> Result<()> {
    let config = config(args)?;
    // Hot reloads free and allocate whole models: without a fixed threshold glibc
    // would carve each new version from the heap and RSS would climb (see the docs).
    shortlist_core::alloc::fix_mmap_threshold();
    report_layout(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let loader: shortlist_serve::servable::Loader =
            Arc::new(shortlist_serve::models::load_model_dir);
        shortlist_serve::serve(config, loader, shortlist_serve::shutdown_signal()).await
    })?;
    Ok(())
}

/// Says what the base path holds before serving: the models, versions and kinds
/// found, or (a warning) why nothing can be served and which path was probably
/// meant. The server still starts: versions written later are picked up.
fn report_layout(config: &shortlist_serve::config::ServeConfig) {
    let layout = shortlist_serve::layout::scan(&config.model_base_path);
    let lines = layout.report(&[&config.retrieval_model, &config.ranking_model]);
    if layout.has_servable() {
        for line in lines {
            tracing::info!("{line}");
        }
    } else {
        for line in lines {
            tracing::warn!("{line}");
        }
        tracing::warn!(
            "serving nothing until a version appears under {} (polled every {:.1} s)",
            config.model_base_path.display(),
            config.poll_interval.as_secs_f64()
        );
    }
}
