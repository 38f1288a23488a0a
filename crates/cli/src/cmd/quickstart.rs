//! `shortlist quickstart`: the whole pipeline on MovieLens 100k in one command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde_json::Value;
use shortlist_pipeline::{recommend, Order, Request, User};

use super::data::LoadArgs;
use super::train::{
    add_ranking_section, add_retrieval_section, load_data, train_ranking, train_retrieval_cmd,
    DataArgs, RankingReport, TrainArgs,
};
use super::{BadInput, Context};
use crate::table::Table;

/// The retrieval rows of the quickstart table.
const RETRIEVAL_ROWS: &[&str] = &[
    "recall@10",
    "recall@20",
    "ndcg@10",
    "ndcg@20",
    "top_k_accuracy@10",
    "top_k_accuracy@100",
];

/// The version quickstart writes under `base`: one more than the highest version of
/// either model already there (both models get the same number), else 1.
pub fn next_version(base: &Path) -> u64 {
    let layout = shortlist_serve::layout::scan(base);
    layout
        .models
        .iter()
        .filter(|m| m.name == "retrieval" || m.name == "ranking")
        .flat_map(|m| m.versions.iter().map(|v| v.version))
        .max()
        .map_or(1, |v| v + 1)
}

/// Checks that `user` is in the dataset before anything is trained.
fn check_user(user: &str, split: &shortlist_data::loaders::tsv::SplitData) -> Result<()> {
    let users = &split.dataset.users;
    let Some(index) = users.get(user) else {
        let numeric: Vec<u64> = users
            .raw_ids()
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        let ids = match (numeric.iter().min(), numeric.iter().max()) {
            (Some(lo), Some(hi)) if numeric.len() == users.len() => {
                format!("its user ids are {lo} to {hi}")
            }
            _ => format!("it has {} users", users.len()),
        };
        return Err(BadInput(format!(
            "--user {user}: MovieLens 100k has no user {user:?} ({ids}); pick one of them, e.g. --user 42"
        ))
        .into());
    };
    let it = &split.dataset.interactions;
    if !split.train.iter().any(|&r| it.users[r] == index) {
        tracing::warn!("user {user} has no ratings in the training split: the recommendations will be the most popular films");
    }
    Ok(())
}

/// One sentence reading the table, from its numbers.
fn reading(r: &Value, k: &RankingReport) -> String {
    let g = |key: &str| r.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let p = |key: &str| {
        r.get("popularity")
            .and_then(|p| p.get(key))
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let (recall, pop_recall) = (g("recall@20"), p("recall@20"));
    let retrieval = if pop_recall > 0.0 {
        format!(
            "the retrieval model finds {:.1}× as many of a user's held-out films in its top 20 as the most-popular list (recall@20 {recall:.3} vs {pop_recall:.3})",
            recall / pop_recall
        )
    } else {
        format!(
            "the retrieval model finds {:.1}% of a user's held-out films in its top 20 (recall@20)",
            recall * 100.0
        )
    };
    // "7% less than" or, when a baseline does better, "3% more than".
    let versus = |base: f64| {
        let change = (k.rmse / base - 1.0) * 100.0;
        let word = if change <= 0.0 { "less" } else { "more" };
        format!("{:.0}% {word} than", change.abs())
    };
    format!(
        "Reading: {retrieval}, and the ranking model's predicted ratings miss by {:.2} stars (RMSE), {} user + item biases ({:.2}) and {} always predicting the mean rating ({:.2}).",
        k.rmse,
        versus(k.baselines.user_item_bias.rmse),
        k.baselines.user_item_bias.rmse,
        versus(k.baselines.global_mean.rmse),
        k.baselines.global_mean.rmse,
    )
}

/// Notes under the table: why popularity can win top-K accuracy, and what the
/// ranking model is.
fn notes(r: &Value, k: &RankingReport) -> Vec<String> {
    let mut notes = Vec::new();
    let model = r.get("top_k_accuracy@10").and_then(Value::as_f64);
    let pop = r
        .get("popularity")
        .and_then(|p| p.get("top_k_accuracy@10"))
        .and_then(Value::as_f64);
    if let (Some(m), Some(p)) = (model, pop) {
        if p >= m {
            notes.push(
                "Popularity beats the model on top_k_accuracy@10 because that metric (TensorFlow Recommenders' factorized top-K accuracy) excludes nothing: the model learned to rank the films a user rated in training first, and those are never that user's test ratings, so they fill its top 10; the most-popular list wastes fewer of its 10 places. recall@K and ndcg@K rank only films the user has not rated in training, which is what a recommender shows."
                    .to_owned(),
            );
        }
    }
    notes.push(format!(
        "The ranking model is a {}; baselines fitted on the same training ratings: user + item biases = mean + damped per-user and per-item offsets (Koren), global mean = one number for every prediction.",
        k.model
    ));
    notes
}

/// Fetches ml-100k, splits it, trains and evaluates both stages, writes
/// `OUT/movielens/{retrieval,ranking}/V/` (V: the next free version), and
/// recommends for `user`.
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
    check_user(user, &split)?;
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
    let version = next_version(&base);
    if version > 1 {
        tracing::info!(
            "{} already holds version {}: writing version {version} (serve picks the highest; delete old versions to free space)",
            base.display(),
            version - 1
        );
    }
    let retrieval_dir = base.join("retrieval").join(version.to_string());
    let ranking_dir = base.join("ranking").join(version.to_string());
    tracing::info!("training the retrieval model");
    let r = train_retrieval_cmd(&args(retrieval_dir.clone()), &split, ctx)?;
    tracing::info!("training the ranking model");
    let k = train_ranking(&args(ranking_dir.clone()), &split, ctx)?;

    // The lists the server returns, evaluated like `shortlist eval --pipeline`.
    let pipeline = super::pipeline::Pipeline::load(&super::pipeline::PipelineArgs {
        base: &base,
        retrieval: "retrieval",
        ranking: "ranking",
        sources: &[],
    })?;
    let test = shortlist_core::Dataset {
        users: split.dataset.users.clone(),
        items: split.dataset.items.clone(),
        interactions: split.dataset.interactions.select(&split.test),
        ..Default::default()
    };
    let served = super::pipeline::served_metrics(&pipeline, &test, &[100], false)?;

    let mut table = Table::new(4);
    add_retrieval_section(&mut table, &r, RETRIEVAL_ROWS);
    super::pipeline::add_served_section(&mut table, &served);
    add_ranking_section(&mut table, &k);
    crate::outln!("\n{}", table.render().trim_end());
    crate::outln!("\n{}", reading(&r, &k));
    if let (Some(alone), Some(list)) = (served.rows.first(), served.rows.last()) {
        let g = |m: &shortlist_eval::Metrics| m.get("ndcg@10").unwrap_or(f64::NAN);
        crate::outln!(
            "The served list (100 retrieved → the ranking model's relevance head → top 10) scores NDCG@10 {:.3} against {:.3} for the retrieval model alone: the relevance head orders candidates by how likely the user is to pick them (it was trained on held-out interactions), while the rating head predicts how much a user would like a film and only answers rating requests.",
            g(&list.1),
            g(&alone.1)
        );
    }
    for note in notes(&r, &k) {
        crate::outln!("{note}");
    }
    crate::outln!(
        "\nmodels: {}, {} (training curves: curves.png in each)",
        retrieval_dir.display(),
        ranking_dir.display()
    );

    // Two stages, exactly as the server runs them: 100 candidates → ranking → top 10.
    let rec = recommend(
        &pipeline.stages(&[], true),
        &Request {
            user: User::id(user),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version_follows_the_highest_of_either_model() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("movielens");
        assert_eq!(next_version(&base), 1, "no folder yet");
        std::fs::create_dir_all(base.join("retrieval").join("1")).unwrap();
        std::fs::create_dir_all(base.join("ranking").join("3")).unwrap();
        std::fs::create_dir_all(base.join("ranking").join(".4.partial-x")).unwrap();
        std::fs::create_dir_all(base.join("other").join("9")).unwrap();
        assert_eq!(next_version(&base), 4);
    }
}
