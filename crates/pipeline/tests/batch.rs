//! `ModelSource::retrieve_rows_batch` (every user's list in one batched index search)
//! answers exactly as one `retrieve` per user: the same items, the same score bits,
//! the same order, for every candidate model kind, known and unknown users, repeated
//! users, with and without `exclude_seen`, a `k` beyond the catalogue, and a retired
//! item.
#![allow(missing_docs, clippy::unwrap_used)] // tests fail loudly on purpose

use shortlist_data::synth::{generate, SynthConfig};
use shortlist_pipeline::{load_dir, CandidateSource, ItemChange, ModelSource, Stage, User};
use shortlist_train::ease::{train_ease, EaseTrainConfig};
use shortlist_train::ials::{train_ials, IalsTrainConfig};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};

fn assert_batch_equals_one_by_one(source: &ModelSource, users: &[&str], what: &str) {
    for k in [1, 10, 1000] {
        for exclude_seen in [true, false] {
            let batch = source.retrieve_rows_batch(users, k, exclude_seen).unwrap();
            assert_eq!(batch.len(), users.len());
            for (u, got) in users.iter().zip(&batch) {
                let want = source.retrieve(&User::id(u), k, exclude_seen, &[]).unwrap();
                let ctx = format!("{what}: user {u}, k {k}, exclude_seen {exclude_seen}");
                assert_eq!(got.path, want.path, "{ctx}");
                assert_eq!(got.hits.len(), want.candidates.len(), "{ctx}");
                for ((row, score), c) in got.hits.iter().zip(&want.candidates) {
                    assert_eq!(source.item_id_of(*row), c.item_id, "{ctx}");
                    assert_eq!(score.to_bits(), c.score.to_bits(), "{ctx}");
                }
            }
        }
    }
}

#[test]
fn batched_lists_equal_the_per_user_lists_bit_for_bit() {
    let (d, _) = generate(&SynthConfig {
        users: 300,
        items: 150,
        interactions: 9_000,
        rank: 5,
        seed: 11,
        ..Default::default()
    })
    .unwrap();
    let train: Vec<usize> = (0..d.interactions.len()).filter(|r| r % 5 != 0).collect();
    let base = tempfile::tempdir().unwrap();
    let cfg = RetrievalTrainConfig {
        embedding_dim: 16,
        epochs: 1,
        batch_size: 256,
        ..Default::default()
    };
    let (r, _) = train_retrieval(&d, &train, &[], &cfg, |_| {}).unwrap();
    r.save(&base.path().join("retrieval"), &[]).unwrap();
    let ials = train_ials(&d, &train, &IalsTrainConfig::default(), |_| {}).unwrap();
    ials.save(&base.path().join("ials"), &[]).unwrap();
    let ease = train_ease(&d, &train, &EaseTrainConfig::default()).unwrap();
    ease.save(&base.path().join("ease"), &[]).unwrap();

    let mut users: Vec<&str> = (0..d.users.len() as u32).map(|u| d.users.raw(u)).collect();
    users.extend(["stranger", users[3], users[0]]);
    for kind in ["retrieval", "ials", "ease"] {
        let Stage::Source(source) = load_dir(&base.path().join(kind)).unwrap() else {
            panic!("{kind}: a candidate source")
        };
        assert_eq!(source.num_item_rows(), source.num_items(), "no item added");
        assert_batch_equals_one_by_one(&source, &users, kind);
        // A retired item is left out of both.
        let popular = source
            .retrieve(&User::id("stranger"), 1, true, &[])
            .unwrap();
        let retired = popular.candidates[0].item_id.to_owned();
        let top = source.retrieve(&User::id(users[0]), 1, false, &[]).unwrap();
        let top = top.candidates[0].item_id.to_owned();
        let changes = [
            ItemChange::Retire { item_id: retired },
            ItemChange::Retire { item_id: top },
        ];
        source.apply_items(0, &changes);
        assert_batch_equals_one_by_one(&source, &users, &format!("{kind}, items retired"));
    }
}
