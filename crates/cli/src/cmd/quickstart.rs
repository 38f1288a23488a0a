//! `shortlist quickstart`: the whole pipeline on MovieLens 100k in one command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde_json::Value;
use shortlist_pipeline::{recommend, Order, Request};

use super::data::LoadArgs;
use super::train::{load_data, train_ranking, train_retrieval_cmd, DataArgs, TrainArgs};
use super::Context;

/// Fetches ml-100k, splits it, trains and evaluates both stages, writes
/// `OUT/movielens/{retrieval,ranking}/1/`, and recommends for `user`.
pub fn run(out: &Path, user: &str, ctx: &Context) -> Result<()> {
    let start = Instant::now();
    let data = DataArgs {
        data: Some("ml-100k".into()),
        train: None,
        test: None,
        split_seed: 42,
        load: LoadArgs {
            skip_bad_rows: false,
            duplicates: Default::default(),
        },
    };
    let split = load_data(&data, ctx)?;
    crate::outln!(
        "MovieLens 100k: {} training / {} test interactions (random 80/20 split, seed 42)",
        split.train.len(),
        split.test.len()
    );
    let args = |dir: PathBuf| TrainArgs {
        data: data.clone(),
        config: None,
        epochs: None,
        batch_size: None,
        seed: None,
        out: dir,
        json: false,
    };
    let base = out.join("movielens");
    let retrieval_dir = base.join("retrieval").join("1");
    let ranking_dir = base.join("ranking").join("1");
    tracing::info!("training the retrieval model");
    let r = train_retrieval_cmd(&args(retrieval_dir.clone()), &split, ctx)?;
    tracing::info!("training the ranking model");
    let k = train_ranking(&args(ranking_dir.clone()), &split)?;

    let g = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let p = |k: &str| {
        r.get("popularity")
            .and_then(|p| p.get(k))
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    crate::outln!(
        "\n{:<24} {:>9} {:>11}",
        "retrieval (test)",
        "model",
        "popularity"
    );
    for key in [
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "top_k_accuracy@10",
        "top_k_accuracy@100",
    ] {
        crate::outln!("{key:<24} {:>9.4} {:>11.4}", g(key), p(key));
    }
    crate::outln!("\n{:<24} {:>9}", "ranking (test)", "model");
    crate::outln!("{:<24} {:>9.4}", "RMSE", k.rmse);
    crate::outln!("{:<24} {:>9.4}", "MAE", k.mae);
    crate::outln!(
        "\nmodels: {}, {} (training curves: curves.png in each)",
        retrieval_dir.display(),
        ranking_dir.display()
    );

    // Two stages, exactly as the server runs them: 100 candidates → ranking → top 10.
    let pipeline = super::pipeline::Pipeline::load(&super::pipeline::PipelineArgs {
        base: &base,
        retrieval: "retrieval",
        ranking: "ranking",
        sources: &[],
    })?;
    let rec = recommend(
        &pipeline.stages(&[], true),
        &Request {
            user_id: user,
            k: 10,
            num_candidates: 100,
            exclude_seen: true,
            exclude_items: &[],
            order: Order::Auto,
        },
    )?;
    crate::outln!(
        "\ntop 10 for user {user} (100 retrieved, seen items excluded, ordered by {}):",
        rec.order.as_str()
    );
    for (n, it) in rec.items.iter().enumerate() {
        crate::outln!(
            "{:>3}. {}  {}",
            n + 1,
            it.predicted_rating
                .map(|r| format!("{r:.2}★"))
                .unwrap_or_default(),
            it.title.unwrap_or(it.item_id)
        );
    }
    crate::outln!(
        "\ndone in {:.1} s. Serve both models:",
        start.elapsed().as_secs_f64()
    );
    crate::outln!(
        "  shortlist serve --model-base-path {} --port 8501",
        base.display()
    );
    crate::outln!(
        "  (from the source tree: cargo run --release -- serve --model-base-path {} --port 8501)",
        base.display()
    );
    crate::outln!("then, in another terminal:");
    crate::outln!(
        "  curl -s -d '{{\"instances\": [\"{user}\"]}}' http://localhost:8501/v1/models/retrieval:predict"
    );
    crate::outln!(
        "  curl -s -d '{{\"user_id\": \"{user}\", \"k\": 10, \"exclude_seen\": true}}' http://localhost:8501/v1/recommend"
    );
    Ok(())
}
