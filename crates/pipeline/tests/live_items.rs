//! Items added while serving are placed by the item tower's feature-only path: for
//! every product new to a trained two-tower model (a cold item: a row with a zero id
//! embedding), the vector built from its raw features alone equals the trained
//! model's own vector of it; an item added live with those features scores as that
//! product does, is retrieved, and is gone once retired.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use shortlist_core::dataset::ColumnValues;
use shortlist_data::products::{generate, ProductConfig};
use shortlist_data::split::{split, SplitMethod};
use shortlist_features::FeatureConfig;
use shortlist_model::attributes::RawValue;
use shortlist_pipeline::{load_dir, CandidateSource, ItemChange, Stage, User};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};

#[test]
fn added_items_are_placed_as_the_trained_model_places_cold_items() {
    let (d, _) = generate(&ProductConfig {
        customers: 200,
        products: 150,
        sessions: 4000,
        seed: 3,
        ..ProductConfig::default()
    })
    .unwrap();
    let s = split(&d.interactions, SplitMethod::Temporal { ratio: 0.8 }).unwrap();
    let cfg = RetrievalTrainConfig {
        embedding_dim: 8,
        epochs: 1,
        batch_size: 256,
        item_id_dropout: 0.5,
        features: FeatureConfig {
            item_features: vec!["*".into()],
            ..FeatureConfig::default()
        },
        eval_every_epoch: false,
        ..RetrievalTrainConfig::default()
    };
    let (model, _) = train_retrieval(&d, &s.train, &[], &cfg, |_| {}).unwrap();
    let raw = |item: u32| -> Vec<(String, RawValue)> {
        d.item_features
            .columns
            .iter()
            .filter_map(|c| {
                let i = item as usize;
                let v = match &c.values {
                    ColumnValues::Categorical(v) | ColumnValues::Text(v) => {
                        RawValue::Label(v[i].clone())
                    }
                    ColumnValues::MultiCategorical(v) => RawValue::Labels(v[i].clone()),
                    ColumnValues::Numeric(v) if v[i].is_nan() => return None,
                    ColumnValues::Numeric(v) => RawValue::Number(v[i]),
                };
                Some((c.name.clone(), v))
            })
            .collect()
    };
    let dim = model.dim();
    let (mut from_features, mut trained) = (vec![0f32; dim], vec![0f32; dim]);
    let mut cold = Vec::new();
    for row in 0..model.num_items() as u32 {
        let Some(id) = model.spec.item_id.value(row) else {
            continue;
        };
        if model.popularity[row as usize] > 0 {
            continue;
        }
        let item = d.items.get(id).unwrap();
        model
            .candidate_from_features(&raw(item), &mut from_features)
            .unwrap();
        model.candidate_into(row, &mut trained);
        for (a, b) in from_features.iter().zip(&trained) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{id}: {a} vs {b}");
        }
        cold.push((id.to_owned(), item));
    }
    assert!(cold.len() >= 10, "{} cold products", cold.len());

    // The same through a loaded source: a copy of a cold product added live.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1");
    model
        .save(&path, &vec![String::new(); model.num_items()])
        .unwrap();
    let Stage::Source(source) = load_dir(&path).unwrap() else {
        panic!("a candidate source")
    };
    let (cold_id, cold_item) = &cold[0];
    let put = ItemChange::Put {
        item_id: "COPY".into(),
        title: Some("Copy".into()),
        features: raw(*cold_item),
    };
    source.check_item(&put).unwrap();
    assert_eq!(source.items_applied(), 0);
    assert!(source.apply_items(0, &[put]).is_empty());
    assert_eq!(source.items_applied(), 1);
    let user = User::id(d.users.raw(d.interactions.users[s.train[0]]));
    let mut scores = [0f32; 2];
    source.score_items(&user, &["COPY", cold_id], &mut scores);
    assert!(
        scores[0].is_finite() && (scores[0] - scores[1]).abs() <= 1e-4,
        "{scores:?}"
    );
    assert_eq!(source.item_title("COPY"), Some("Copy"));
    let all = source.retrieve(&user, 10_000, false, &[]).unwrap();
    let ids: Vec<&str> = all.candidates.iter().map(|c| c.item_id).collect();
    assert!(ids.contains(&"COPY"));
    let pos = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    // Equal scores: adjacent in the list.
    assert!(pos("COPY").abs_diff(pos(cold_id)) <= 1, "{ids:?}");

    // Replaced with another cold product's features: one row for COPY, scored as
    // that product now.
    let (other_id, other_item) = &cold[1];
    let replace = [ItemChange::Put {
        item_id: "COPY".into(),
        title: None,
        features: raw(*other_item),
    }];
    assert!(source.apply_items(1, &replace).is_empty());
    source.score_items(&user, &["COPY", other_id], &mut scores);
    assert!((scores[0] - scores[1]).abs() <= 1e-4, "{scores:?}");
    assert_eq!(source.item_title("COPY"), None);
    let again = source.retrieve(&user, 10_000, false, &[]).unwrap();
    assert_eq!(again.candidates.len(), ids.len());
    assert_eq!(
        again
            .candidates
            .iter()
            .filter(|c| c.item_id == "COPY")
            .count(),
        1
    );

    // Retired: gone; applying the same changes again changes nothing.
    let retire = [ItemChange::Retire {
        item_id: "COPY".into(),
    }];
    source.apply_items(2, &retire);
    source.apply_items(2, &retire);
    assert_eq!(source.items_applied(), 3);
    assert!(source.is_retired("COPY") && !source.is_retired(cold_id));
    let all = source.retrieve(&user, 10_000, false, &[]).unwrap();
    assert!(!all.candidates.iter().any(|c| c.item_id == "COPY"));
    assert_eq!(all.candidates.len(), ids.len() - 1);
}
