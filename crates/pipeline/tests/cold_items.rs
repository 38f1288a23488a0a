//! The served pipeline recommends new products: on the synthetic product log split by
//! time, items launched after the training period (side features, no training
//! interaction) come out of `recommend` — the function `/v1/recommend` calls — for the
//! customers whose favourite categories they belong to, and some of them are what the
//! customers then chose.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use shortlist_core::Dataset;
use shortlist_data::products::{catalogue_index, generate, ProductConfig, ProductTruth};
use shortlist_data::split::{split, SplitMethod};
use shortlist_features::FeatureConfig;
use shortlist_pipeline::{load_dir, recommend, Order, Request, Stage, Stages, User};
use shortlist_train::relevance::{HoldoutBy, RelevanceTrainConfig};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::TrainConfig;

fn retrieval_config() -> RetrievalTrainConfig {
    RetrievalTrainConfig {
        embedding_dim: 32,
        epochs: 8,
        batch_size: 512,
        item_id_dropout: 0.5,
        features: FeatureConfig {
            item_features: vec!["*".into()],
            ..FeatureConfig::default()
        },
        eval_every_epoch: false,
        ..RetrievalTrainConfig::default()
    }
}

/// Trains and saves `BASE/retrieval/1` and `BASE/ranking/1` (a relevance head learned
/// on a time hold-out, whose newest products are cold to the models fitted before it).
fn train_models(d: &Dataset, train: &[usize], base: &std::path::Path) {
    let (retrieval, _) = train_retrieval(d, train, &[], &retrieval_config(), |_| {}).unwrap();
    let titles = vec![String::new(); retrieval.num_items()];
    retrieval.save(&base.join("retrieval/1"), &titles).unwrap();
    let cfg = TrainConfig {
        relevance: Some(RelevanceTrainConfig {
            holdout_by: HoldoutBy::Time,
            retrieval: retrieval_config(),
            ..RelevanceTrainConfig::default()
        }),
        ..TrainConfig::default()
    };
    let (ranking, _) = shortlist_train::train_ranking(d, train, &[], &cfg).unwrap();
    let head = ranking.relevance.as_ref().unwrap();
    assert_eq!(head.weights.cold_weights.len(), head.weights.weights.len());
    assert!(head.weights.metrics["cold_positives"] > 0.0);
    ranking.save(&base.join("ranking/1")).unwrap();
}

fn favourite(truth: &ProductTruth, customer: usize, product: usize) -> bool {
    let best = (0..truth.categories)
        .map(|k| truth.category_weight(customer, k))
        .fold(0f32, f32::max);
    truth.category_weight(customer, truth.category[product] as usize) >= best
}

#[test]
fn served_lists_hold_new_products_where_the_customer_shops() {
    let (d, truth) = generate(&ProductConfig {
        customers: 1200,
        products: 500,
        sessions: 40_000,
        seed: 11,
        ..ProductConfig::default()
    })
    .unwrap();
    let s = split(&d.interactions, SplitMethod::Temporal { ratio: 0.9 }).unwrap();
    let mut cold = vec![true; d.items.len()];
    for &r in &s.train {
        cold[d.interactions.items[r] as usize] = false;
    }
    let tmp = tempfile::tempdir().unwrap();
    train_models(&d, &s.train, tmp.path());
    let Stage::Source(primary) = load_dir(&tmp.path().join("retrieval/1")).unwrap() else {
        panic!("retrieval is a candidate source")
    };
    let Stage::Ranking(ranker) = load_dir(&tmp.path().join("ranking/1")).unwrap() else {
        panic!("ranking is a ranking model")
    };
    let stages = Stages {
        primary: &primary,
        extra: &[],
        ranker: Some(&ranker),
    };

    let is_cold = |raw: &str| d.items.get(raw).is_some_and(|i| cold[i as usize]);
    let cust = |raw: &str| raw[5..].parse::<usize>().unwrap();
    let mut test_items: Vec<Vec<u32>> = vec![Vec::new(); d.users.len()];
    for &r in &s.test {
        test_items[d.interactions.users[r] as usize].push(d.interactions.items[r]);
    }
    let (mut served_cold, mut in_favourite, mut cold_hits, mut lists) = (0, 0, 0, 0);
    for (u, wanted) in test_items.iter().enumerate() {
        if wanted.is_empty() {
            continue;
        }
        let user = d.users.raw(u as u32);
        let r = recommend(
            &stages,
            &Request {
                user: User::id(user),
                k: 20,
                num_candidates: 100,
                exclude_seen: true,
                exclude_items: &[],
                order: Order::Auto,
            },
        )
        .unwrap();
        assert_eq!(r.order, Order::Relevance);
        lists += 1;
        for it in &r.items {
            if !is_cold(it.item_id) {
                continue;
            }
            served_cold += 1;
            assert!(it.retrieval_score.is_finite() && it.ranking_score.is_some());
            in_favourite += usize::from(favourite(&truth, cust(user), catalogue_index(it.item_id)));
            let i = d.items.get(it.item_id).unwrap();
            cold_hits += usize::from(wanted.contains(&i));
        }
    }
    // Measured: 491 cold items served in 988 lists, 486 of them in a favourite category,
    // 22 chosen in the test period.
    let msg = format!(
        "{served_cold} cold items served in {lists} lists, {in_favourite} in a favourite \
         category of the customer, {cold_hits} chosen in the test period"
    );
    assert!(served_cold > lists / 10, "{msg}");
    // A customer has 1–3 favourite categories of 12: at random, a product would be in
    // one of them about a sixth of the time.
    assert!(in_favourite as f64 > 0.8 * served_cold as f64, "{msg}");
    assert!(cold_hits > 10, "{msg}");
}
