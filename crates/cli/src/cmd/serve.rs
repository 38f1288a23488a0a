//! `shortlist serve`: the HTTP server over a TensorFlow-Serving-style model directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::BadInput;

/// Runs the server until SIGINT/SIGTERM.
pub fn run(model_base_path: PathBuf, port: u16, poll_seconds: f64) -> Result<()> {
    if !model_base_path.is_dir() {
        return Err(BadInput(format!(
            "--model-base-path {}: not a directory (expected DIR/<model name>/<version>/)",
            model_base_path.display()
        ))
        .into());
    }
    if !(poll_seconds.is_finite() && poll_seconds > 0.0) {
        return Err(BadInput(format!(
            "--poll-seconds: expected a positive number, found {poll_seconds}"
        ))
        .into());
    }
    let mut config = shortlist_serve::config::ServeConfig::new(model_base_path, port);
    config.poll_interval = Duration::from_secs_f64(poll_seconds);
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
