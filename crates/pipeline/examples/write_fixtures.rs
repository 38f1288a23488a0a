//! Re-creates the committed model artifacts of `tests/fixtures/format-v{N}/` (N =
//! [`shortlist_model::FORMAT_VERSION`]) that `tests/artifacts.rs` loads, and prints
//! the golden values that test records.
//!
//! ```text
//! cargo run --release -p shortlist-pipeline --example write_fixtures
//! ```
//!
//! Run it **only on a deliberate change of the artifact format**, together with a
//! `FORMAT_VERSION` bump: the fixtures are the proof that models saved by an earlier
//! build still load and answer the same. Then keep the previous `format-v{N-1}/`
//! directory (its test now asserts the clear "format version" error, or its loading
//! if a reader for it is kept), paste the printed values into a new test for
//! `format-v{N}/`, and commit both. Re-running it without a format change rewrites
//! files that must not change (training is seeded, but the weights may differ in
//! the last bits with the thread count or CPU).

#![allow(clippy::unwrap_used)] // a developer tool: fail loudly

use std::path::Path;

use shortlist_core::atomic::AtomicDir;
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_features::FeatureConfig;
use shortlist_index::{AnyIndex, ExactIndex};
use shortlist_model::{RankingModel, RetrievalModel, FORMAT_VERSION};
use shortlist_pipeline::{load_dir, CandidateSource, HistoryItem, Stage, User};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::TrainConfig;

/// The users, items and histories whose answers the test pins (raw ids of the
/// generated log; `nobody` and `i-unknown` are out of vocabulary).
const PAIRS: [(&str, &str); 6] = [
    ("u0", "i0"),
    ("u1", "i3"),
    ("u7", "i11"),
    ("u12", "i5"),
    ("nobody", "i2"),
    ("u3", "i-unknown"),
];
/// Users whose top 5 the test pins.
const USERS: [&str; 3] = ["u0", "u5", "u9"];
/// The history of an unknown user (folded in by the two-tower query).
const HISTORY: [&str; 3] = ["i1", "i4", "i9"];

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("format-v{FORMAT_VERSION}"));
    std::fs::create_dir_all(&out).unwrap();
    let (data, _) = generate(&SynthConfig {
        users: 24,
        items: 16,
        interactions: 300,
        seed: 16,
        rank: 3,
        ..Default::default()
    })
    .unwrap();
    let rows: Vec<usize> = (0..data.interactions.len()).collect();

    // Ranking: ids + three kinds of item side feature (categorical, bag, numeric),
    // biases, dot term, one cross layer, a hidden layer.
    let cfg = TrainConfig {
        embedding_dim: 3,
        hidden: vec![4],
        cross_layers: 1,
        biases: true,
        dot: true,
        batch_size: 64,
        epochs: 2,
        features: FeatureConfig {
            item_features: vec!["genre".into(), "tags".into(), "price".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let (ranking, _) = shortlist_train::train_ranking(&data, &rows, &[], &cfg).unwrap();
    let ranking_dir = out.join("ranking");
    ranking.save(&ranking_dir).unwrap();

    // Retrieval: two towers with the pooled-history query and an item feature, saved
    // with its exact index as `shortlist train retrieval` saves it.
    let rcfg = RetrievalTrainConfig {
        embedding_dim: 4,
        batch_size: 64,
        epochs: 20,
        learning_rate: 0.05,
        eval_every_epoch: false,
        features: FeatureConfig {
            item_features: vec!["genre".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let (retrieval, _) = train_retrieval(&data, &rows, &[], &rcfg, |_| {}).unwrap();
    let retrieval_dir = out.join("retrieval");
    save_retrieval(&retrieval, &retrieval_dir);

    print_golden(&ranking_dir, &retrieval_dir);
}

fn save_retrieval(model: &RetrievalModel, dir: &Path) {
    let staging = AtomicDir::new(dir).unwrap();
    let titles: Vec<String> = (0..model.num_items())
        .map(|r| format!("title {r}"))
        .collect();
    model.save_into(staging.path(), &titles).unwrap();
    let index = AnyIndex::Exact(ExactIndex::new(model.all_candidates(), model.dim()).unwrap());
    index.save_dir(staging.path()).unwrap();
    shortlist_model::files::seal(staging.path()).unwrap();
    staging.commit().unwrap();
}

/// Prints the answers of the saved models, loaded back by the real loaders, as Rust
/// literals for `tests/artifacts.rs`.
fn print_golden(ranking_dir: &Path, retrieval_dir: &Path) {
    // Pinned top-k lists must not hold near-ties: the order of two items whose scores
    // differ in the last bits may flip between SIMD kernels (SHORTLIST_SIMD).
    let separated = |top: &[(&str, f32)]| {
        for w in top.windows(2) {
            assert!(
                w[0].1 - w[1].1 > 1e-4 * w[0].1.abs().max(1e-2),
                "near-tie in a pinned list: {top:?}; change the seed or the users"
            );
        }
    };
    let ranking = RankingModel::load(ranking_dir).unwrap();
    println!("// ranking: predict_raw");
    for (u, i) in PAIRS {
        let p = ranking.predict_raw(u, i);
        println!(
            "({u:?}, {i:?}, {:?}, {}, {}), // bits {:#010x}",
            p.rating,
            p.user_oov,
            p.item_oov,
            p.rating.to_bits()
        );
    }
    let Stage::Source(source) = load_dir(retrieval_dir).unwrap() else {
        panic!("not a candidate source");
    };
    println!("// retrieval: top 5, seen items excluded");
    for u in USERS {
        let r = source.retrieve(&User::id(u), 5, true, &[]).unwrap();
        let top: Vec<(&str, f32)> = r.candidates.iter().map(|c| (c.item_id, c.score)).collect();
        separated(&top);
        println!("({u:?}, &{top:?}),");
    }
    let history: Vec<HistoryItem<'_>> = HISTORY
        .iter()
        .map(|&item_id| HistoryItem {
            item_id,
            strength: 1.0,
        })
        .collect();
    let user = User {
        id: "nobody",
        history: &history,
    };
    let r = source.retrieve(&user, 5, true, &[]).unwrap();
    let top: Vec<(&str, f32)> = r.candidates.iter().map(|c| (c.item_id, c.score)).collect();
    separated(&top);
    println!("// unknown user with history {HISTORY:?}\n{top:?}");
    let (model, titles) = RetrievalModel::load(retrieval_dir).unwrap();
    let mut q = vec![0f32; model.dim()];
    model.query_into(model.user_row(USERS[0]).0, &mut q);
    println!("// query vector of {}\n{q:?}", USERS[0]);
    println!("// titles[0..2] {:?}", &titles[..2]);
}
