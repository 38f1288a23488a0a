//! Models loaded from a bundle (`shortlist_model::bundle`, what the WebAssembly
//! build loads in a browser) answer exactly as the same models loaded from their
//! directories; a file that differs from its manifest is refused when packed, a
//! corrupt bundle when unpacked, with an error naming the file.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shortlist_model::bundle;
use shortlist_pipeline::{
    load_dir, load_files, recommend, CandidateSource, HistoryItem, Order, Ranker, Request, Stage,
    Stages, User,
};

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-v1")
        .join(kind)
}

fn fixture_bundle() -> Vec<u8> {
    bundle::pack(&[
        ("retrieval", &fixture("retrieval")),
        ("ranking", &fixture("ranking")),
    ])
    .unwrap()
}

fn stages_of(files: &[Stage]) -> (&dyn CandidateSource, &dyn Ranker) {
    let (Stage::Source(s), Stage::Ranking(r)) = (&files[0], &files[1]) else {
        panic!("expected a candidate source and a ranking model");
    };
    (s, r)
}

#[test]
fn a_bundle_holds_the_inference_files_only_and_answers_as_the_directories() {
    let bytes = fixture_bundle();
    let files = Arc::new(bundle::unpack(&bytes).unwrap());
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    // The saved index stays out: the loader builds the exact index from the model.
    assert_eq!(
        names,
        [
            "ranking/features.json",
            "ranking/manifest.json",
            "ranking/weights.safetensors",
            "retrieval/features.json",
            "retrieval/items.tsv",
            "retrieval/manifest.json",
            "retrieval/weights.safetensors",
        ]
    );
    for name in &names {
        let (model, rel) = name.split_once('/').unwrap();
        assert_eq!(
            files[*name],
            std::fs::read(fixture(model).join(rel)).unwrap(),
            "{name}"
        );
    }

    let from_bundle = [
        load_files(&bundle::open(&files, "retrieval").unwrap()).unwrap(),
        load_files(&bundle::open(&files, "ranking").unwrap()).unwrap(),
    ];
    let from_disk = [
        load_dir(&fixture("retrieval")).unwrap(),
        load_dir(&fixture("ranking")).unwrap(),
    ];
    let (bs, br) = stages_of(&from_bundle);
    let (ds, dr) = stages_of(&from_disk);
    let history: Vec<HistoryItem<'_>> = ["i1", "i4", "i9"]
        .into_iter()
        .map(|item_id| HistoryItem {
            item_id,
            strength: 1.0,
        })
        .collect();
    let users = [
        User::id("u0"),
        User::id("u5"),
        User {
            id: "nobody",
            history: &history,
        },
        User::id("nobody"),
    ];
    for user in &users {
        for order in [Order::Retrieval, Order::Rating] {
            let req = Request {
                user: *user,
                k: 5,
                num_candidates: 10,
                exclude_seen: true,
                exclude_items: &["i10"],
                order,
            };
            let b = recommend(
                &Stages {
                    primary: bs,
                    extra: &[],
                    ranker: Some(br),
                },
                &req,
            )
            .unwrap();
            let d = recommend(
                &Stages {
                    primary: ds,
                    extra: &[],
                    ranker: Some(dr),
                },
                &req,
            )
            .unwrap();
            assert!(!b.items.is_empty(), "{}", user.id);
            // Bit for bit: the same code over the same bytes.
            assert_eq!(b, d, "{} ordered by {}", user.id, order.as_str());
        }
        let ids = ["i0", "i3", "i-unknown"];
        let (b, d) = (
            br.rank(user, &ids, None).unwrap(),
            dr.rank(user, &ids, None).unwrap(),
        );
        assert_eq!(b.ratings, d.ratings, "{}", user.id);
        assert_eq!(b.unknown_items, [2], "{}", user.id);
    }
}

#[test]
fn a_bundle_file_that_differs_from_its_manifest_is_refused_naming_it() {
    // Packing checks each file against its manifest.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ranking");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(fixture("ranking")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let w = dir.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, &bytes).unwrap();
    let err = bundle::pack(&[("ranking", &dir)]).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: SHA-256 ", w.display()))
            && err.ends_with("(corrupt or changed after saving)"),
        "{err}"
    );

    // Unpacking checks each file's CRC-32.
    let mut packed = fixture_bundle();
    let weights = std::fs::read(fixture("ranking").join("weights.safetensors")).unwrap();
    let at = packed
        .windows(weights.len())
        .position(|w| w == weights.as_slice())
        .unwrap();
    packed[at + weights.len() - 1] ^= 1;
    let err = bundle::unpack(&packed).unwrap_err().to_string();
    assert!(
        err.starts_with("bundle: ranking/weights.safetensors: CRC-32 ")
            && err.ends_with("(corrupt)"),
        "{err}"
    );

    // A file the manifest does not list is refused as on disk.
    let mut extra = bundle::unpack(&fixture_bundle()).unwrap();
    extra.insert("ranking/stray.bin".into(), vec![1, 2, 3]);
    let err = bundle::open(&Arc::new(extra), "ranking")
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "bundle/ranking/stray.bin: not listed in manifest.json (added after the model was \
         saved?); remove it or save the model again"
    );

    let files = Arc::new(bundle::unpack(&fixture_bundle()).unwrap());
    assert_eq!(
        bundle::open(&files, "ease").err().unwrap().to_string(),
        "invalid bundle model: no model \"ease\" in the bundle (it holds: {\"ranking\", \"retrieval\"})"
    );
}
