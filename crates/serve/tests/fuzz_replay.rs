//! Replays the fuzzing inputs on stable, in every CI run: the seeds of each
//! target (`fuzz/seeds/<target>/`) and every input that once found a bug
//! (`fuzz/regressions/<target>/`), through the very harness functions the
//! cargo-fuzz targets call (`fuzz/harness.rs`). A panic fails the test.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = rd
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            eprintln!("{target}: {}", f.display());
            run(&data);
            n += 1;
        }
    }
    assert!(n > 0, "no input for {target}");
}

#[test]
fn load_tsv() {
    replay("load_tsv", harness::load_tsv);
}

#[test]
fn load_schema() {
    replay("load_schema", harness::load_schema);
}

#[test]
fn load_recbole() {
    replay("load_recbole", harness::load_recbole);
}

#[test]
fn model_loader() {
    replay("model_loader", harness::model_loader);
}

#[test]
fn http_body() {
    replay("http_body", harness::http_body);
}

#[test]
fn fuzz_templates_are_valid() {
    assert_eq!(harness::templates_load(), Vec::<String>::new());
}
