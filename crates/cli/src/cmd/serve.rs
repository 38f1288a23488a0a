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
