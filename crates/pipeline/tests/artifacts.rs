//! Committed model artifacts (`tests/fixtures/format-v1/`, written once by
//! `cargo run --release -p shortlist-pipeline --example write_fixtures`) load with the
//! real loaders of this build and answer exactly as when they were written; a
//! manifest of another format version is refused with a clear error, both ways.
//!
//! The format-version policy: a build reads exactly its own
//! [`FORMAT_VERSION`](shortlist_model::FORMAT_VERSION). A newer model in an older
//! build, or an older model in a newer build, is an error that names the manifest and
//! both versions ("format version N, this build reads M"), never a misread model. A
//! deliberate format change bumps `FORMAT_VERSION`, writes `format-v{N}/` with the
//! generator, and keeps `format-v1/` with a test of that error (or of its loading, if
//! a reader for the old format is kept). If a test below fails without such a change,
//! the format or the inference changed by accident: fix the code, do not regenerate.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use shortlist_index::AnyIndex;
use shortlist_model::{RankingModel, RetrievalModel, FORMAT_VERSION};
use shortlist_pipeline::{load_dir, CandidateSource, HistoryItem, Ranker, Stage, User};

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-v1")
        .join(kind)
}

/// Scores pass through different SIMD kernels (`SHORTLIST_SIMD`, the CPU), whose
/// summation orders differ in the last bits: equal within a few f32 ulps.
fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1.0)
}

/// `predict_raw` of the committed ranking model: (user, item, rating, user OOV, item OOV).
const RANKING: [(&str, &str, f32, bool, bool); 6] = [
    ("u0", "i0", 3.503_546_2, false, false),
    ("u1", "i3", 3.637_005, false, false),
    ("u7", "i11", 3.842_010_5, false, false),
    ("u12", "i5", 4.518_379_7, false, false),
    ("nobody", "i2", 3.595_441_6, true, false),
    ("u3", "i-unknown", 0.951_916_8, false, true),
];

/// Top 5 of the committed retrieval model through its committed exact index, the
/// user's training items excluded.
const TOP5: [(&str, [(&str, f32); 5]); 3] = [
    (
        "u0",
        [
            ("i14", 0.430_115_43),
            ("i15", 0.428_344_64),
            ("i10", 0.367_744_6),
            ("i3", 0.338_631_24),
            ("i4", 0.280_008_85),
        ],
    ),
    (
        "u5",
        [
            ("i10", 1.646_637_1),
            ("i4", 1.556_305_6),
            ("i1", 1.442_406_7),
            ("i14", 1.411_438_3),
            ("i2", -1.161_729_6),
        ],
    ),
    (
        "u9",
        [
            ("i11", 0.269_664_56),
            ("i10", -0.012_941_061),
            ("i4", -0.024_004_45),
            ("i12", -1.128_620_4),
            ("i5", -1.481_798_6),
        ],
    ),
];

#[test]
fn the_fixtures_are_of_this_builds_format() {
    for kind in ["ranking", "retrieval"] {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture(kind).join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(
            m["format_version"], FORMAT_VERSION,
            "FORMAT_VERSION changed: keep format-v1/ with a test of the version error and \
             write format-v{FORMAT_VERSION}/ with the write_fixtures example"
        );
        assert_eq!(m["kind"], kind);
        // Sealed: every other file listed with its size and SHA-256.
        let files = m["files"].as_object().unwrap();
        let mut listed: Vec<&str> = files.keys().map(String::as_str).collect();
        listed.sort_unstable();
        let want: &[&str] = if kind == "ranking" {
            &["features.json", "weights.safetensors"]
        } else {
            &[
                "features.json",
                "index.safetensors",
                "items.tsv",
                "weights.safetensors",
            ]
        };
        assert_eq!(listed, want, "{kind}");
    }
}

#[test]
fn the_committed_ranking_model_predicts_its_golden_values() {
    let model = RankingModel::load(&fixture("ranking")).unwrap();
    assert_eq!(model.config.embedding_dim, 3);
    assert_eq!(model.config.cross_layers, 1);
    let names: Vec<&str> = model.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["user_id", "item_id", "genre", "tags", "price"]);
    for (user, item, rating, user_oov, item_oov) in RANKING {
        let p = model.predict_raw(user, item);
        assert!(
            close(p.rating, rating),
            "{user} × {item}: {} (bits {:#010x}), recorded {rating}",
            p.rating,
            p.rating.to_bits()
        );
        assert_eq!(
            (p.user_oov, p.item_oov),
            (user_oov, item_oov),
            "{user} × {item}"
        );
    }
    // The same answers through the pipeline's loader and ranking stage.
    let Stage::Ranking(stage) = load_dir(&fixture("ranking")).unwrap() else {
        panic!("the ranking fixture loaded as a candidate source");
    };
    // The stage scores through the batched path (another summation order than
    // `predict_raw`): equal within the same tolerance.
    for (user, item, rating, user_oov, item_oov) in RANKING {
        let ranked = stage.rank(&User::id(user), &[item], None).unwrap();
        assert_eq!(ranked.known_user, !user_oov, "{user}");
        assert_eq!(ranked.unknown_items.is_empty(), !item_oov, "{item}");
        if !item_oov {
            assert!(
                close(ranked.ratings[0], rating),
                "{user} × {item} through the ranking stage: {} vs {rating}",
                ranked.ratings[0]
            );
        }
    }
}

#[test]
fn the_committed_retrieval_model_and_index_answer_their_golden_top_k() {
    let dir = fixture("retrieval");
    let (model, titles) = RetrievalModel::load(&dir).unwrap();
    assert_eq!((model.dim(), model.num_items()), (4, 17));
    assert_eq!(&titles[..2], ["title 0", "title 1"]);
    let mut q = vec![0f32; model.dim()];
    model.query_into(model.user_row("u0").0, &mut q);
    let want = [0.217_631_67, -0.043_117_82, -0.082_267_46, -0.154_396_83];
    assert!(q.iter().zip(&want).all(|(&a, &b)| close(a, b)), "{q:?}");
    // The committed index is the exact one, and holds the candidate tower's vectors.
    let index = AnyIndex::load_dir(&dir).unwrap().unwrap();
    assert_eq!(index.kind_name(), "exact");
    let AnyIndex::Exact(exact) = &index else {
        unreachable!()
    };
    assert_eq!(exact.items(), &model.all_candidates()[..]);

    let Stage::Source(source) = load_dir(&dir).unwrap() else {
        panic!("the retrieval fixture loaded as a ranking model");
    };
    assert_eq!(source.kind(), "retrieval");
    for (user, top) in TOP5 {
        let r = source.retrieve(&User::id(user), 5, true, &[]).unwrap();
        assert!(r.known_user);
        let ids: Vec<&str> = r.candidates.iter().map(|c| c.item_id).collect();
        let want_ids: Vec<&str> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, want_ids, "{user}");
        for (c, (_, s)) in r.candidates.iter().zip(top) {
            assert!(
                close(c.score, s),
                "{user} × {}: {} vs {s}",
                c.item_id,
                c.score
            );
        }
    }
    // An unknown user described by a history: the pooled history tower.
    let history: Vec<HistoryItem<'_>> = ["i1", "i4", "i9"]
        .into_iter()
        .map(|item_id| HistoryItem {
            item_id,
            strength: 1.0,
        })
        .collect();
    let r = source
        .retrieve(
            &User {
                id: "nobody",
                history: &history,
            },
            5,
            true,
            &[],
        )
        .unwrap();
    let got: Vec<(&str, f32)> = r.candidates.iter().map(|c| (c.item_id, c.score)).collect();
    let want = [
        ("i6", 3.564_164_4),
        ("i12", 1.212_109_1),
        ("i15", 1.104_417_9),
        ("i8", -0.148_998_74),
        ("i2", -0.196_624),
    ];
    assert_eq!(got.len(), want.len());
    for ((gi, gs), (wi, ws)) in got.iter().zip(want) {
        assert!(*gi == wi && close(*gs, ws), "{got:?} vs {want:?}");
    }
}

/// Copies the fixture `kind` into a temporary directory with the manifest's
/// `format_version` set to `version`.
fn with_version(kind: &str, version: u32) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(kind);
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(fixture(kind)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let mpath = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["format_version"] = version.into();
    // The manifest is not in its own file list: the seal still holds.
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    (tmp, dir)
}

#[test]
fn a_model_of_another_format_version_is_a_clear_error_both_ways() {
    let newer = FORMAT_VERSION + 1;
    let older = FORMAT_VERSION - 1;
    for version in [newer, older] {
        let want = |dir: &Path| {
            format!(
                "{}: format version {version}, this build reads {FORMAT_VERSION}",
                dir.join("manifest.json").display()
            )
        };
        let (_t, dir) = with_version("ranking", version);
        assert_eq!(
            RankingModel::load(&dir).unwrap_err().to_string(),
            want(&dir)
        );
        assert_eq!(
            load_dir(&dir).err().map(|e| e.to_string()),
            Some(want(&dir))
        );
        let (_t, dir) = with_version("retrieval", version);
        assert_eq!(
            RetrievalModel::load(&dir).unwrap_err().to_string(),
            want(&dir)
        );
        assert_eq!(
            load_dir(&dir).err().map(|e| e.to_string()),
            Some(want(&dir))
        );
    }
    // The unmodified copy loads: the error is the version's, not the copy's.
    let (_t, dir) = with_version("retrieval", FORMAT_VERSION);
    assert!(load_dir(&dir).is_ok());
}

#[test]
fn an_index_file_of_another_version_is_a_clear_error() {
    let (_t, dir) = with_version("retrieval", FORMAT_VERSION);
    let path = dir.join("index.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    // Same length, so the safetensors header stays valid; then re-seal the directory.
    let from = br#""version":"1""#;
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the index records its version");
    let mut changed = bytes.clone();
    changed[at..at + from.len()].copy_from_slice(br#""version":"2""#);
    std::fs::write(&path, changed).unwrap();
    shortlist_model::files::seal(&dir).unwrap();
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains(&path.display().to_string())
            && err.contains(r#"metadata `version` is Some("2"); this build reads version 1"#),
        "{err}"
    );
}
