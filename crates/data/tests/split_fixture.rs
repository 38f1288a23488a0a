//! The split contract, pinned on a committed file: the same file, method and seed must
//! give the same rows in test, and the same bytes in `train.tsv` / `test.tsv`, on every
//! platform and in every future version. See `tests/fixtures/README.md` for how the
//! golden values were computed (independently of this code).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};

use shortlist_core::progress::NoProgress;
use shortlist_data::fetch::sha256_hex;
use shortlist_data::loaders::tsv;
use shortlist_data::split::{split, SplitMethod};
use shortlist_data::{load_path, LoadOptions, Loaded};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/split_log.tsv")
}

fn load() -> Loaded {
    load_path(&fixture(), &LoadOptions::default(), &NoProgress).unwrap()
}

/// SHA-256 of train.tsv, of test.tsv, and of both concatenated (the `sha256` that
/// `data split` prints and records in `split.json`).
struct Hashes {
    train: &'static str,
    test: &'static str,
    both: &'static str,
}

/// Splits the fixture with `method`, checks the test rows and the written files' hashes.
fn check(method: SplitMethod, test_rows: &[usize], hashes: Hashes) {
    let loaded = load();
    let d = &loaded.dataset;
    assert_eq!(d.interactions.len(), 120, "the fixture file changed");
    let s = split(&d.interactions, method).unwrap();
    assert_eq!(s.test, test_rows, "{method:?}: rows in test");
    let train_rows: Vec<usize> = (0..120).filter(|r| !test_rows.contains(r)).collect();
    assert_eq!(s.train, train_rows, "{method:?}: rows in train");

    let tmp = tempfile::tempdir().unwrap();
    let train = tsv::write_rows(&tmp.path().join("train.tsv"), d, &s.train).unwrap();
    let test = tsv::write_rows(&tmp.path().join("test.tsv"), d, &s.test).unwrap();
    assert_eq!(sha256_hex(&train), hashes.train, "{method:?}: train.tsv");
    assert_eq!(sha256_hex(&test), hashes.test, "{method:?}: test.tsv");
    let mut both = train;
    both.extend_from_slice(&test);
    assert_eq!(sha256_hex(&both), hashes.both, "{method:?}: both files");
}

#[test]
fn fixture_is_the_committed_file() {
    // Guards against an editor or a checkout rewriting the fixture (line endings,
    // trailing newline): every golden value below depends on its bytes.
    let bytes = std::fs::read(fixture()).unwrap();
    assert_eq!(bytes.len(), 2597);
    assert_eq!(
        sha256_hex(&bytes),
        "7844603377b2e3d263d9adcd201ec7ce517bcfc653b45677dbef2b0d78d9dce3"
    );
}

#[test]
fn random_split_with_the_default_ratio_and_seed_is_pinned() {
    check(
        SplitMethod::Random {
            ratio: 0.8,
            seed: 42,
        },
        &[
            5, 7, 14, 16, 22, 23, 37, 42, 47, 50, 57, 58, 61, 63, 67, 68, 73, 82, 85, 92, 97, 103,
            115, 116,
        ],
        Hashes {
            train: "775acc7e2604cbc48400073243ad1bcaba64cc080ac3d2150efd31ec5281943b",
            test: "6893a7594bea154ef498e17ff7e906294bf09c454c391409e53ece856776abbc",
            both: "e39eaec46cb12d312c1d0ed80b556a17b6e534a95636cb5c440ad1190e943cae",
        },
    );
}

#[test]
fn temporal_split_is_pinned_with_ties_broken_by_file_order() {
    check(
        SplitMethod::Temporal { ratio: 0.8 },
        &[
            2, 6, 17, 22, 25, 27, 34, 36, 45, 47, 53, 56, 59, 65, 72, 78, 80, 85, 86, 94, 100, 113,
            114, 118,
        ],
        Hashes {
            train: "77d0de51d6f7db215626171b6ed7e0a2f978b71f32319ab56abb5b3299dd6e39",
            test: "2824b5ff60b0eb6a218c6b8b49b7ff4907ea6c7aefef88b2de6115a35af6944a",
            both: "4af1127ec56655bf4110c220a6b9a9f0f0f72421f2848a2201daa68e57f48b18",
        },
    );
}

#[test]
fn leave_last_out_split_is_pinned() {
    check(
        SplitMethod::LeaveLastOut { n: 1 },
        &[10, 17, 27, 34, 36, 47, 59, 72, 78, 85, 100, 113],
        Hashes {
            train: "1094dbe6e04461f0d1f9a965003ec8b54f133c301b9a564c462ce27893fa51e8",
            test: "aa5d5961a335df5c1a7a4275fa85bef4fd6c0c12ca5944191de6737a79365b09",
            both: "40d9a72c0941baa5cd046794679ba93cd7a07dc7c351c197e7e49c05206c2e2b",
        },
    );
}
