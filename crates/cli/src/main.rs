//! `shortlist`: the command-line tool of the shortlist recommender system.
//!
//! Exit codes: 0 success, 1 failure, 2 bad input or usage. With `--json`, stdout
//! carries exactly one JSON object; logs and progress go to stderr.

mod cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Recommender system: data → features → models → evaluation → serving.
///
/// Exit codes: 0 success, 1 failure, 2 bad input or usage.
#[derive(Debug, Parser)]
#[command(name = "shortlist", version, about, long_about = None)]
struct Cli {
    /// More logging (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars and only warnings in the log.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Datasets: fetch, inspect, split, generate.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Benchmarks that print figures (not tests).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let ctx = cmd::Context { quiet: cli.quiet };
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c, &ctx),
        Command::Bench(c) => cmd::bench::run(c, &ctx),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cmd::report_error(&e),
    }
}
