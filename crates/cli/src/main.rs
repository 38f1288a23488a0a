//! `shortlist`: the command-line tool of the shortlist recommender system.
//!
//! Exit codes: 0 success, 1 failure, 2 bad input or usage. With `--json`, stdout
//! carries exactly one JSON object; logs and progress go to stderr.

use shortlist_cli::cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Recommender system: data → features → models → evaluation → index → serving.
///
/// Exit codes: 0 success, 1 failure, 2 bad input or usage. With --json, stdout holds one
/// JSON object; logs and progress go to stderr.
#[derive(Debug, Parser)]
#[command(name = "shortlist", version)]
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
    /// Train a model: ranking (rating prediction) or retrieval (two towers).
    #[command(subcommand)]
    Train(cmd::train::TrainCommand),
    /// Evaluate a saved model on a test file (RMSE/MAE, or Recall/NDCG/top-K accuracy),
    /// or, with --pipeline, the lists the server returns (retrieve → rank) beside each
    /// stage alone and popularity.
    Eval {
        /// Model directory written by `shortlist train`.
        #[arg(
            long,
            required_unless_present = "pipeline",
            conflicts_with = "pipeline"
        )]
        model: Option<PathBuf>,
        /// A model base directory as served (`BASE/retrieval/N/`, `BASE/ranking/N/`):
        /// evaluate the served lists.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// With --pipeline: candidate counts to evaluate (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [20, 50, 100, 200])]
        num_candidates: Vec<usize>,
        /// With --pipeline: an extra candidate source merged in, NAME=QUOTA (repeatable).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// With --pipeline: also serve each test user as an unknown user described by
        /// their first N training interactions (comma-separated lengths; needs --train).
        #[arg(long, value_delimiter = ',')]
        cold_history: Vec<usize>,
        /// With --cold-history: the training split file.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Test split file (user_id, item_id, rating, timestamp).
        #[arg(long)]
        test: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Predict ratings of items for a user with a ranking model, best first.
    Predict {
        /// Ranking model directory.
        #[arg(long)]
        model: PathBuf,
        /// Raw user id.
        #[arg(long)]
        user: String,
        /// Raw item id (repeatable).
        #[arg(long = "item")]
        items: Vec<String>,
        /// Item title, e.g. "Speed (1994)" (repeatable).
        #[arg(long = "title")]
        titles: Vec<String>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Recommend items with a retrieval model, or with --pipeline through both stages
    /// as the server does, for one user or all users.
    Recommend {
        /// Retrieval model directory.
        #[arg(
            long,
            required_unless_present = "pipeline",
            conflicts_with = "pipeline"
        )]
        model: Option<PathBuf>,
        /// A model base directory as served: retrieve, rank and filter like /v1/recommend.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// With --pipeline: candidates retrieved before ranking.
        #[arg(long, default_value_t = 100)]
        num_candidates: usize,
        /// Raw user id.
        #[arg(
            long,
            required_unless_present = "all_users",
            conflicts_with = "all_users"
        )]
        user: Option<String>,
        /// Every user of the model: JSON Lines (the default, or --jsonl), or one JSON
        /// object with --json.
        #[arg(long)]
        all_users: bool,
        /// Number of items.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Leave out the user's training items.
        #[arg(long)]
        exclude_seen: bool,
        /// Print one JSON object: the user's items, or with --all-users
        /// {"k", "exclude_seen", "users": [{"user_id", "items", "scores"}, …]}.
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// With --all-users: one JSON line per user, {"user_id", "items", "scores"}
        /// (best first). The default for --all-users.
        #[arg(long)]
        jsonl: bool,
        /// With --all-users: write to this file (atomically) instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Serve models over HTTP (TensorFlow Serving REST API + /v1/recommend).
    Serve(cmd::serve::ServeArgs),
    /// Fetch MovieLens 100k, train and evaluate both stages, recommend for a user.
    Quickstart {
        /// Where models are written: OUT/movielens/{retrieval,ranking}/V/, V = 1, or the
        /// next version when earlier runs left some (serve picks the highest).
        #[arg(long, default_value = "models")]
        out: PathBuf,
        /// The user to recommend for (a MovieLens 100k user id, 1 to 943; checked
        /// before training).
        #[arg(long, default_value = "42")]
        user: String,
    },
    /// The server's event log: import a file of events, export it for training.
    #[command(subcommand)]
    Events(cmd::events::EventsCommand),
    /// Catalogue items added without retraining (the server's item log).
    #[command(subcommand)]
    Items(cmd::items::ItemsCommand),
    /// Export models for other runtimes: a bundle for the WebAssembly build, ONNX graphs.
    #[command(subcommand)]
    Export(cmd::export::ExportCommand),
    /// Top-K index tools.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Benchmarks that print figures (not tests).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Recall/latency frontier of IVF recall targets and HNSW expansions on a retrieval
    /// model's items: top-k at each k, top-10 with 10/50/90 % of the items excluded,
    /// and top-100 with each user's seen items excluded.
    Tune {
        /// Which index to sweep: ivf, hnsw or all.
        #[arg(long, default_value = "all")]
        method: String,
        /// Retrieval model directory.
        #[arg(long)]
        model: PathBuf,
        /// The k whose recall is measured (comma-separated).
        #[arg(
            short,
            long = "ks",
            value_delimiter = ',',
            default_value = "10,100,1000"
        )]
        k: Vec<usize>,
        /// IVF recall targets measured (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "0.8,0.9,0.95,0.98,0.99")]
        targets: Vec<f64>,
        /// Users sampled as queries (as many others calibrate IVF).
        #[arg(long, default_value_t = 500)]
        queries: usize,
        /// Seed of the sample.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
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

/// Large model arrays on transparent huge pages: fewer TLB misses on the scattered
/// row reads of a request (see `shortlist_core::alloc`).
#[global_allocator]
static ALLOC: shortlist_core::alloc::HugePageAlloc = shortlist_core::alloc::HugePageAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let ctx = cmd::Context::new(cli.quiet);
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c, &ctx),
        Command::Train(c) => cmd::train::run(c, &ctx),
        Command::Eval {
            model,
            pipeline,
            num_candidates,
            sources,
            cold_history,
            train,
            test,
            json,
        } => match (model, pipeline) {
            (_, Some(base)) => cmd::pipeline::eval(
                &cmd::pipeline::EvalArgs {
                    models: cmd::pipeline::PipelineArgs {
                        base: &base,
                        retrieval: "retrieval",
                        ranking: "ranking",
                        sources: &sources,
                    },
                    test: &test,
                    num_candidates: &num_candidates,
                    train: train.as_deref(),
                    cold: &cold_history,
                    json,
                },
                &ctx,
            ),
            (Some(model), None) => cmd::model::eval(&model, &test, json, &ctx),
            (None, None) => unreachable!("clap requires --model or --pipeline"),
        },
        Command::Predict {
            model,
            user,
            items,
            titles,
            json,
        } => cmd::model::predict(&model, &user, &items, &titles, json),
        Command::Recommend {
            model,
            pipeline,
            num_candidates,
            user,
            all_users: _,
            k,
            exclude_seen,
            json,
            jsonl,
            output,
        } => match (model, pipeline) {
            (_, Some(base)) => cmd::pipeline::recommend_cmd(&cmd::pipeline::RecommendArgs {
                models: cmd::pipeline::PipelineArgs {
                    base: &base,
                    retrieval: "retrieval",
                    ranking: "ranking",
                    sources: &[],
                },
                user: user.as_deref(),
                k,
                num_candidates,
                exclude_seen,
                json,
                jsonl,
                output,
            }),
            (Some(model), None) => cmd::model::recommend(&cmd::model::RecommendArgs {
                model: &model,
                user: user.as_deref(),
                k,
                exclude_seen,
                json,
                jsonl,
                output,
            }),
            (None, None) => unreachable!("clap requires --model or --pipeline"),
        },
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Quickstart { out, user } => cmd::quickstart::run(&out, &user, &ctx),
        Command::Index(IndexCommand::Tune {
            method,
            model,
            k,
            targets,
            queries,
            seed,
            json,
        }) => cmd::index::tune(&cmd::index::TuneArgs {
            dir: &model,
            method: &method,
            ks: &k,
            targets: &targets,
            queries,
            seed,
            json,
        }),
        Command::Events(c) => cmd::events::run(c),
        Command::Items(c) => cmd::items::run(c),
        Command::Export(c) => cmd::export::run(c),
        Command::Bench(c) => cmd::bench::run(c, &ctx),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cmd::report_error(&e),
    }
}
