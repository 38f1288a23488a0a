//! Compact (8-bit) copies of models (`shortlist_model::compact`): they load from
//! their directories and from a bundle with the same answers bit for bit (what the
//! demo's server/browser comparison needs), stay close to the original model, are
//! written as a unit, and a corrupt source is refused naming the file.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shortlist_model::bundle;
use shortlist_model::compact::{compact_dir, CompactOptions};
use shortlist_pipeline::{
    load_dir, load_files, recommend, CandidateSource, Order, Ranker, Request, Stage, Stages, User,
};

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-v1")
        .join(kind)
}

/// Every float tensor in 8 bits, however small (the fixtures are tiny).
const ALL: CompactOptions = CompactOptions {
    ease_keep: 64,
    min_elements: 1,
};

fn stages(loaded: &[Stage]) -> Stages<'_> {
    let (Stage::Source(s), Stage::Ranking(r)) = (&loaded[0], &loaded[1]) else {
        panic!("expected a candidate source and a ranking model");
    };
    Stages {
        primary: s as &dyn CandidateSource,
        extra: &[],
        ranker: Some(r as &dyn Ranker),
    }
}

/// Each list's (item, retrieval score, predicted rating).
fn lists(loaded: &[Stage]) -> Vec<Vec<(String, [f32; 2])>> {
    let mut out = Vec::new();
    for user in ["u0", "u3", "u5", "nobody"] {
        for order in [Order::Retrieval, Order::Rating] {
            let req = Request {
                user: User::id(user),
                k: 5,
                num_candidates: 10,
                exclude_seen: true,
                exclude_items: &[],
                order,
            };
            let r = recommend(&stages(loaded), &req).unwrap();
            assert!(!r.items.is_empty(), "{user}");
            out.push(
                r.items
                    .iter()
                    .map(|i| {
                        let rating = i.predicted_rating.unwrap_or(f32::NAN);
                        (i.item_id.to_string(), [i.retrieval_score, rating])
                    })
                    .collect(),
            );
        }
    }
    out
}

#[test]
fn compact_models_answer_alike_from_disk_and_bundle_and_close_to_the_original() {
    let tmp = tempfile::tempdir().unwrap();
    let (retr, rank) = (tmp.path().join("retrieval/1"), tmp.path().join("ranking/1"));
    let r = compact_dir(&fixture("retrieval"), &retr, &ALL).unwrap();
    assert_eq!(r.left_out, ["index.safetensors"]);
    assert!(r.quantised >= 2 && r.models == 1, "{r:?}");
    assert!(!retr.join("index.safetensors").exists());
    let k = compact_dir(&fixture("ranking"), &rank, &ALL).unwrap();
    assert!(k.quantised >= 2 && k.bytes_after < k.bytes_before, "{k:?}");

    let from_disk = [load_dir(&retr).unwrap(), load_dir(&rank).unwrap()];
    let bytes = bundle::pack(&[("retrieval", &retr), ("ranking", &rank)]).unwrap();
    let files = Arc::new(bundle::unpack(&bytes).unwrap());
    let from_bundle = [
        load_files(&bundle::open(&files, "retrieval").unwrap()).unwrap(),
        load_files(&bundle::open(&files, "ranking").unwrap()).unwrap(),
    ];
    let compact = lists(&from_disk);
    assert_eq!(compact, lists(&from_bundle));

    // The original's scores, within what 8 bits per weight allow.
    let original = lists(&[
        load_dir(&fixture("retrieval")).unwrap(),
        load_dir(&fixture("ranking")).unwrap(),
    ]);
    let (mut worst, mut same) = (0f32, 0);
    for (c, o) in compact.iter().zip(&original) {
        same += usize::from(c.iter().map(|x| &x.0).eq(o.iter().map(|x| &x.0)));
        let by_id: std::collections::HashMap<_, _> = o.iter().cloned().collect();
        for (id, s) in c {
            if let Some(os) = by_id.get(id) {
                for (a, b) in s.iter().zip(os) {
                    if a.is_finite() || b.is_finite() {
                        worst = worst.max((a - b).abs() / b.abs().max(1.0));
                    }
                }
            }
        }
    }
    assert!(worst < 0.05, "worst relative score difference {worst}");
    // Measured: 7 of the 8 lists keep their items and order.
    assert!(
        same + 2 >= compact.len(),
        "{same} of {} lists unchanged",
        compact.len()
    );

    // Compacting a compact model changes no weights.
    let again = tmp.path().join("again");
    compact_dir(&rank, &again, &ALL).unwrap();
    assert_eq!(
        std::fs::read(again.join("weights.safetensors")).unwrap(),
        std::fs::read(rank.join("weights.safetensors")).unwrap()
    );
}

#[test]
fn a_corrupt_source_is_refused_naming_the_file_and_the_old_output_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for e in std::fs::read_dir(fixture("ranking")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), src.join(e.file_name())).unwrap();
    }
    let out = tmp.path().join("out");
    compact_dir(&src, &out, &ALL).unwrap();
    let before = std::fs::read(out.join("weights.safetensors")).unwrap();

    let w = src.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let err = compact_dir(&src, &out, &ALL).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: SHA-256 ", w.display()))
            && err.ends_with("(corrupt or changed after saving)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("weights.safetensors")).unwrap(),
        before
    );
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no partial directory left: {names:?}");

    let err = compact_dir(
        &src,
        &out,
        &CompactOptions {
            ease_keep: 0,
            ..ALL
        },
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err, "invalid ease_keep: must be at least 1");
}
