//! The whole pipeline on generated data with planted structure: the served list
//! (retrieval → relevance head) measurably beats the first stage alone, every model
//! kind loads through `load_dir`, and each answers like the pipeline expects.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;

use shortlist_core::Dataset;
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_eval::{EvalConfig, Evaluator, Pairs};
use shortlist_pipeline::{
    load_dir, recommend, CandidateSource, Order, Ranker, Request, Stage, Stages,
};
use shortlist_train::ease::{train_ease, EaseTrainConfig};
use shortlist_train::ials::{train_ials, IalsTrainConfig};
use shortlist_train::relevance::RelevanceTrainConfig;
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::TrainConfig;

fn data() -> (Dataset, Vec<usize>, Vec<usize>) {
    let (d, _) = generate(&SynthConfig {
        users: 400,
        items: 200,
        interactions: 16_000,
        rank: 6,
        seed: 3,
        ..Default::default()
    })
    .unwrap();
    let mut rows: Vec<usize> = (0..d.interactions.len()).collect();
    shortlist_core::Rng::new(9).shuffle(&mut rows);
    let test = rows.split_off(rows.len() * 4 / 5);
    (d, rows, test)
}

/// A weak first stage (few epochs, small towers): there is room to rank better.
fn retrieval_config() -> RetrievalTrainConfig {
    RetrievalTrainConfig {
        embedding_dim: 8,
        epochs: 2,
        batch_size: 256,
        ..Default::default()
    }
}

fn ndcg10(d: &Dataset, train: &[usize], test: &[usize], stages: &Stages<'_>) -> f64 {
    let it = &d.interactions;
    let col = |rows: &[usize], c: &[u32]| rows.iter().map(|&r| c[r]).collect::<Vec<u32>>();
    let (tu, ti, su, si) = (
        col(train, &it.users),
        col(train, &it.items),
        col(test, &it.users),
        col(test, &it.items),
    );
    let ev = Evaluator::new(
        d.users.len(),
        d.items.len(),
        Pairs::new(&tu, &ti).unwrap(),
        Pairs::new(&su, &si).unwrap(),
    )
    .unwrap();
    let m = ev
        .evaluate_lists(
            |u| {
                let r = recommend(
                    stages,
                    &Request {
                        user_id: d.users.raw(u),
                        k: 10,
                        num_candidates: 50,
                        exclude_seen: true,
                        exclude_items: &[],
                        order: Order::Auto,
                    },
                )
                .unwrap();
                r.items
                    .iter()
                    .filter_map(|i| d.items.get(i.item_id))
                    .collect()
            },
            &EvalConfig::default(),
        )
        .unwrap();
    m.get("ndcg@10").unwrap()
}

fn source(dir: &Path) -> shortlist_pipeline::ModelSource {
    match load_dir(dir).unwrap() {
        Stage::Source(s) => s,
        Stage::Ranking(_) => panic!("{} is a ranking model", dir.display()),
    }
}

#[test]
fn the_relevance_head_improves_on_its_first_stage() {
    let (d, train, test) = data();
    let base = tempfile::tempdir().unwrap();
    let (r, _) = train_retrieval(&d, &train, &[], &retrieval_config(), |_| {}).unwrap();
    r.save(&base.path().join("retrieval"), &[]).unwrap();
    let cfg = TrainConfig {
        embedding_dim: 4,
        hidden: vec![8],
        epochs: 1,
        batch_size: 512,
        relevance: Some(RelevanceTrainConfig {
            retrieval: retrieval_config(),
            candidates: 50,
            ials: IalsTrainConfig {
                factors: 8,
                regularization: 5.0,
                ..Default::default()
            },
            ease: EaseTrainConfig {
                lambda: 50.0,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let (ranking, _) = shortlist_train::train_ranking(&d, &train, &[], &cfg).unwrap();
    ranking.save(&base.path().join("ranking")).unwrap();
    let primary = source(&base.path().join("retrieval"));
    let Stage::Ranking(ranker) = load_dir(&base.path().join("ranking")).unwrap() else {
        panic!("not a ranking model");
    };
    assert!(ranker.has_relevance());
    let alone = ndcg10(
        &d,
        &train,
        &test,
        &Stages {
            primary: &primary,
            extra: &[],
            ranker: None,
        },
    );
    let served = ndcg10(
        &d,
        &train,
        &test,
        &Stages {
            primary: &primary,
            extra: &[],
            ranker: Some(&ranker),
        },
    );
    eprintln!("served {served:.4} vs first stage alone {alone:.4}");
    assert!(
        served > alone * 1.05,
        "served list NDCG@10 {served:.4} vs first stage alone {alone:.4}"
    );
}

#[test]
fn ease_and_ials_directories_load_as_candidate_sources() {
    let (d, train, _) = data();
    let base = tempfile::tempdir().unwrap();
    let ease = train_ease(&d, &train, &EaseTrainConfig::default()).unwrap();
    let titles: Vec<String> = (0..ease.num_items())
        .map(|r| format!("title {r}"))
        .collect();
    ease.save(&base.path().join("ease"), &titles).unwrap();
    let ials = train_ials(&d, &train, &IalsTrainConfig::default(), |_| {}).unwrap();
    ials.save(&base.path().join("ials"), &[]).unwrap();
    let user = d.users.raw(d.interactions.users[train[0]]);
    for (name, kind) in [("ease", "ease"), ("ials", "ials")] {
        let s = source(&base.path().join(name));
        assert_eq!(s.kind(), kind);
        let r = s.retrieve(user, 5, true, &[]).unwrap();
        assert!(r.known_user && r.candidates.len() == 5);
        assert!(r.candidates.windows(2).all(|w| w[0].score >= w[1].score));
        // The scores of the retrieved items agree with score_items.
        let ids: Vec<&str> = r.candidates.iter().map(|c| c.item_id).collect();
        let mut s2 = vec![0f32; ids.len()];
        s.score_items(user, &ids, &mut s2);
        for (c, v) in r.candidates.iter().zip(&s2) {
            assert!(
                (c.score - v).abs() <= 1e-4 * c.score.abs().max(1.0),
                "{name}"
            );
        }
        // Seen items excluded; unknown users get popular items.
        let seen: Vec<&str> = train
            .iter()
            .filter(|&&row| d.users.raw(d.interactions.users[row]) == user)
            .map(|&row| d.items.raw(d.interactions.items[row]))
            .collect();
        assert!(ids.iter().all(|i| !seen.contains(i)), "{name}");
        assert!(!s.retrieve("nobody", 3, true, &[]).unwrap().known_user);
    }
    let s = source(&base.path().join("ease"));
    let id = s.retrieve(user, 1, true, &[]).unwrap().candidates[0].item_id;
    assert!(s.item_title(id).unwrap().starts_with("title "));
}

#[test]
fn a_multitask_model_feeds_its_shared_scores_to_the_relevance_head() {
    use shortlist_model::{ListFeature, ListInputs, Objective};
    let (d, train, _) = data();
    let cfg = TrainConfig {
        objective: Objective::Multitask,
        embedding_dim: 8,
        hidden: vec![8],
        epochs: 2,
        batch_size: 256,
        relevance: Some(RelevanceTrainConfig {
            features: vec![
                ListFeature::Retrieval,
                ListFeature::LogPopularity,
                ListFeature::Multitask,
            ],
            retrieval: retrieval_config(),
            candidates: 50,
            own_share: 0.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (model, _) = shortlist_train::train_ranking(&d, &train, &[], &cfg).unwrap();
    let head = model.relevance.as_ref().unwrap();
    let w = &head.weights;
    assert_eq!(w.features[2], ListFeature::Multitask);
    assert!(w.weights[2].is_finite() && w.weights[2] != 0.0, "{w:?}");
    let base = tempfile::tempdir().unwrap();
    model.save(&base.path().join("ranking")).unwrap();
    let Stage::Ranking(ranker) = load_dir(&base.path().join("ranking")).unwrap() else {
        panic!("not a ranking model");
    };
    // The served relevance equals the head's score of the list with the model's
    // shared scores as the multitask feature (and differs without them).
    let user = d.users.raw(d.interactions.users[train[0]]);
    let ids: Vec<&str> = (0..20).map(|k| d.items.raw(k)).collect();
    let retrieval: Vec<f32> = (0..20).map(|k| (k as f32 * 0.37).sin()).collect();
    let served = ranker.rank(user, &ids, Some(&retrieval)).unwrap();
    let m = ranker.model();
    let u = m.spec.user_id.index(user);
    let rows: Vec<u32> = ids.iter().map(|i| m.spec.item_id.index(i)).collect();
    let mut shared = vec![0f32; rows.len()];
    m.shared_scores(u, &rows, &mut shared);
    let score = |shared: &[f32]| {
        let mut out = vec![0f32; rows.len()];
        m.relevance.as_ref().unwrap().score(
            &ListInputs {
                user: u,
                history: &[],
                items: &rows,
                retrieval: &retrieval,
                shared,
            },
            &mut Vec::new(),
            &mut out,
        );
        out
    };
    assert_eq!(served.relevance, Some(score(&shared)));
    assert_ne!(served.relevance, Some(score(&[])));
    // A rating model cannot carry a head that uses the multitask feature.
    let mut rating = model.clone();
    rating.config.objective = Objective::Rating;
    assert_eq!(
        rating.check().unwrap_err().to_string(),
        "invalid relevance.features: the multitask feature needs a model trained with objective = \"multitask\""
    );
}
