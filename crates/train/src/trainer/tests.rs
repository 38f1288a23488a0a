//! Tests of the ranking trainer (kept beside, not inside, `trainer.rs` so that the
//! training loop reads without scrolling past them).

use super::*;
use crate::config::{EmbeddingOptimizer, OptimizerKind};
use shortlist_data::synth::{generate, SynthConfig};

fn data() -> (Dataset, Vec<usize>, Vec<usize>) {
    let (d, _) = generate(&SynthConfig {
        users: 200,
        items: 100,
        interactions: 20_000,
        rank: 4,
        noise: 0.3,
        ..Default::default()
    })
    .unwrap();
    let mut rows: Vec<usize> = (0..d.interactions.len()).collect();
    Rng::new(5).shuffle(&mut rows);
    let test = rows.split_off(16_000);
    (d, rows, test)
}

fn small() -> TrainConfig {
    TrainConfig {
        embedding_dim: 8,
        hidden: vec![32, 16],
        biases: true,
        dot: true,
        init_bias_to_mean: true,
        optimizer: OptimizerKind::Adam,
        embedding_optimizer: EmbeddingOptimizer::Adam,
        learning_rate: 0.01,
        batch_size: 256,
        epochs: 8,
        ..Default::default()
    }
}

#[test]
fn learns_planted_structure_well_below_the_mean_baseline() {
    let (d, train, test) = data();
    let it = &d.interactions;
    let mean = train.iter().map(|&r| it.ratings[r] as f64).sum::<f64>() / train.len() as f64;
    let base = (test
        .iter()
        .map(|&r| (it.ratings[r] as f64 - mean).powi(2))
        .sum::<f64>()
        / test.len() as f64)
        .sqrt();
    for cfg in [
        small(),
        TrainConfig {
            embedding_optimizer: EmbeddingOptimizer::RowwiseAdagrad,
            optimizer: OptimizerKind::Adagrad,
            learning_rate: 0.1,
            dot: false,
            biases: false,
            epochs: 30,
            ..small()
        },
        TrainConfig {
            implicit: true,
            clip_predictions: true,
            ensemble: 2,
            lr_decay: 0.95,
            autorec: Some(crate::AutoRecTrainConfig {
                hidden: 16,
                l2: 1.0,
                learning_rate: 0.02,
                epochs: 60,
                ..Default::default()
            }),
            ..small()
        },
    ] {
        let (model, h) = train_ranking(&d, &train, &test, &cfg).unwrap();
        let m = evaluate(&model, &d, &test);
        assert!(
            m.rmse < 0.75 * base,
            "rmse {} vs baseline {base} ({cfg:?})",
            m.rmse
        );
        assert_eq!(Some(m.rmse), h.final_test.map(|t| t.rmse));
        assert_eq!(model.members.len() + 1, cfg.ensemble);
        if cfg.ensemble == 1 {
            // per-epoch metrics use the plain forward, the returned model its cache
            let last = h.epochs.last().and_then(|e| e.test_rmse).unwrap();
            assert!((m.rmse - last).abs() < 1e-6, "{} vs {last}", m.rmse);
        }
        if cfg.implicit {
            // the bags hold training items only, and the model round-trips
            assert_eq!(model.features[2].name, shortlist_model::IMPLICIT);
            let dir = tempfile::tempdir().unwrap();
            model.save(&dir.path().join("m")).unwrap();
            let back = crate::load_model(&dir.path().join("m")).unwrap();
            assert_eq!(back.features, model.features);
            assert_eq!(back.mlp, model.mlp);
            assert_eq!(back.members.len(), model.members.len());
            assert_eq!(back.members[0].features, model.members[0].features);
            assert_eq!(back.meta.metrics, model.meta.metrics);
            assert_eq!(back.autorec, model.autorec);
            assert!(back.autorec.is_some());
            assert_eq!(back, model);
            let (us, is): (Vec<u32>, Vec<u32>) = (0..500u32)
                .map(|k| {
                    (
                        k % model.num_users() as u32,
                        (k * 7) % model.num_items() as u32,
                    )
                })
                .unzip();
            let bits = |m: &RankingModel| -> Vec<u32> {
                m.predict_batch(&us, &is)
                    .iter()
                    .map(|p| p.to_bits())
                    .collect()
            };
            assert_eq!(bits(&back), bits(&model));
            assert_eq!(evaluate(&back, &d, &test).rmse.to_bits(), m.rmse.to_bits());
        }
        let first = h.epochs[0].train_rmse;
        assert!(h.epochs.last().unwrap().train_rmse < first);
    }
}

#[test]
fn same_seed_gives_identical_weights_and_other_seeds_differ() {
    let (d, train, test) = data();
    let cfg = TrainConfig {
        epochs: 2,
        ..small()
    };
    let (a, ha) = train_ranking(&d, &train[..4000], &test[..500], &cfg).unwrap();
    let (b, hb) = train_ranking(&d, &train[..4000], &test[..500], &cfg).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        ha.epochs.iter().map(|e| e.test_rmse).collect::<Vec<_>>(),
        hb.epochs.iter().map(|e| e.test_rmse).collect::<Vec<_>>()
    );
    let (c, _) = train_ranking(
        &d,
        &train[..4000],
        &test[..500],
        &TrainConfig { seed: 7, ..cfg },
    )
    .unwrap();
    assert_ne!(a.mlp, c.mlp);
}

#[test]
fn early_stopping_keeps_the_best_validation_epoch_and_model_round_trips() {
    let (d, train, test) = data();
    let cfg = TrainConfig {
        validation_fraction: 0.2,
        patience: 1,
        epochs: 30,
        learning_rate: 0.05,
        ..small()
    };
    let (model, h) = train_ranking(&d, &train[..6000], &test, &cfg).unwrap();
    assert_eq!(h.valid_examples, 1200);
    assert_eq!(h.train_examples, 4800);
    let best = h.best().unwrap();
    let min = h
        .epochs
        .iter()
        .filter_map(|e| e.valid_rmse)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best.valid_rmse, Some(min));
    assert_eq!(model.meta.metrics.get("test_rmse"), best.test_rmse.as_ref());
    let dir = tempfile::tempdir().unwrap();
    model.save(&dir.path().join("m")).unwrap();
    let back = crate::load_model(&dir.path().join("m")).unwrap();
    let (m1, m2) = (evaluate(&model, &d, &test), evaluate(&back, &d, &test));
    assert_eq!(m1.rmse.to_bits(), m2.rmse.to_bits());
    h.write_curves(dir.path()).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), h.epochs.len() + 1);
    if cfg!(feature = "plot") {
        let png = std::fs::read(dir.path().join("curves.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    } else {
        assert!(!dir.path().join("curves.png").exists());
    }
}

#[test]
fn side_features_train_and_unknown_rows_are_rejected() {
    let (d, train, test) = data();
    let mut cfg = TrainConfig {
        epochs: 2,
        ..small()
    };
    cfg.features.item_features = vec!["*".into()];
    cfg.features.user_features = vec!["*".into()];
    let (model, _) = train_ranking(&d, &train[..3000], &test[..300], &cfg).unwrap();
    assert!(
        model.features.len() > 2,
        "{:?}",
        model.features.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    assert!(evaluate(&model, &d, &test).rmse.is_finite());
    let err = train_ranking(&d, &[usize::MAX], &[], &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of the dataset"), "{err}");
    let err = train_ranking(
        &d,
        &train,
        &[],
        &TrainConfig {
            batch_size: 0,
            ..cfg
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid batch_size: expected at least 1");
}
