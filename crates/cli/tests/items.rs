//! `shortlist items add` on the real binary: items checked against the served
//! retrieval model's features (the committed format-v1 fixture), appended to the
//! server's item log, named errors for every bad line.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::Path;

use common::shortlist;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn items_are_checked_against_the_model_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("models");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipeline/tests/fixtures/format-v1/retrieval");
    copy_dir(&fixture, &base.join("retrieval").join("1"));
    let file = dir.path().join("items.jsonl");
    let add = |lines: &str| {
        std::fs::write(&file, lines).unwrap();
        shortlist(&[
            "items",
            "add",
            "--model-base-path",
            base.to_str().unwrap(),
            "--file",
            file.to_str().unwrap(),
        ])
    };
    let out = add("{\"item_id\": \"new-1\", \"title\": \"A\", \"features\": {\"genre\": \"Drama\"}}\n\n{\"item_id\": 7}\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = base.join(".items").join("items.log");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("added 2 items from "));
    let items = shortlist_serve::items::Items::open(&log);
    assert_eq!(items.seq(), 2);
    drop(items);

    let cases = [
        (
            "{\"item_id\": \"x\", \"features\": {\"genre\": 3}}\n",
            "line 1: features.genre: expected a string (categorical)",
        ),
        (
            "{\"item_id\": \"x\"}\n{\"item_id\": \"y\", \"features\": {\"colour\": \"red\"}}\n",
            "line 2: features.colour: unknown feature; expected one of: genre",
        ),
        (
            "{\"item_id\": \"x\", \"sku\": 1}\n",
            "line 1: item: unknown field \"sku\"; expected one of: item_id, title, features",
        ),
        ("{\"item_id\": \n", "line 1: not JSON: "),
        ("\n", "no items (expected JSON lines)"),
    ];
    for (lines, want) in cases {
        let out = add(lines);
        assert_eq!(out.status.code(), Some(2), "{lines}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{lines}: {err}");
    }
    // Nothing of the refused files was logged.
    assert_eq!(shortlist_serve::items::Items::open(&log).seq(), 2);
}
