//! Fuzz harnesses, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`,
//! nightly) and by the stable replay test (`crates/serve/tests/fuzz_replay.rs`),
//! which runs every committed input of `fuzz/regressions/<target>/` through the
//! same function on every CI run.
//!
//! Each harness turns arbitrary bytes into one input of a parser and runs it; the
//! only outcomes allowed are `Ok` or a clean error — a panic, a hang or a huge
//! allocation (libFuzzer's `-malloc_limit_mb`) is a finding.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use shortlist_core::progress::NoProgress;
use shortlist_data::loaders::{recbole, schema, tsv, LoadOptions};
use shortlist_data::RowPolicy;

/// Bytes that separate the parts of a multi-file input (schema TOML | data file).
pub const SEP: &[u8] = b"\n----8<----\n";

fn split_parts(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(i) => (&data[..i], &data[i + SEP.len()..]),
        None => (data, &[]),
    }
}

/// Prefix of the scratch directories; the process id follows.
const SCRATCH_PREFIX: &str = "shortlist-fuzz-";

/// A private scratch directory (in memory when `/dev/shm` exists), with input
/// files bounded to 1 MiB so a fuzzed path to a large file costs nothing.
///
/// It lives as long as the process (the served fuzz models are read from it) and a
/// static is never dropped, so it is named after the process id and each new
/// process removes those of processes that are gone: without that every replay
/// run left one directory in `/dev/shm` (found after a day of CI runs: 13).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Read by shortlist_core::input::max_input_bytes at every file read.
        std::env::set_var("SHORTLIST_MAX_INPUT_BYTES", "1048576");
        let shm = Path::new("/dev/shm");
        let parent = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        remove_stale_scratch(&parent);
        let dir = parent.join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Removes the scratch directories in `parent` whose process no longer runs (or
/// cannot be told to run: only where `/proc` exists).
fn remove_stale_scratch(parent: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn options() -> [LoadOptions; 2] {
    let strict = LoadOptions::default();
    let skip = LoadOptions {
        policy: RowPolicy {
            skip_bad_rows: true,
        },
        ..LoadOptions::default()
    };
    [strict, skip]
}

/// The split-file (TSV) reader, strict and skipping bad rows.
pub fn load_tsv(data: &[u8]) {
    let p = scratch().join("in.tsv");
    std::fs::write(&p, data).unwrap();
    for o in options() {
        let _ = tsv::load_tsv(&p, &o, &NoProgress);
    }
}

/// The schema reader: `schema.toml` SEP data, the data written under every file
/// name the seeds' schemas use (`events.csv`, `events.tsv`, `items.tsv`).
pub fn load_schema(data: &[u8]) {
    let (toml, rows) = split_parts(data);
    let dir = scratch().join("schema");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("schema.toml"), toml).unwrap();
    for name in ["events.csv", "events.tsv", "items.tsv"] {
        std::fs::write(dir.join(name), rows).unwrap();
    }
    for o in options() {
        let _ = schema::load_schema(&dir.join("schema.toml"), &o, &NoProgress);
    }
}

/// The RecBole atomic-file reader: `x.inter` SEP `x.item`.
pub fn load_recbole(data: &[u8]) {
    let (inter, item) = split_parts(data);
    let dir = scratch().join("recbole");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x.inter"), inter).unwrap();
    std::fs::write(dir.join("x.item"), item).unwrap();
    for o in options() {
        let _ = recbole::load_recbole(&dir.join("x.inter"), &o, &NoProgress);
    }
}

/// A small zero-initialised retrieval model (with an `index` of the given kind)
/// or ranking model, saved and sealed in `dir`.
fn write_model(dir: &Path, which: u8) {
    use shortlist_data::synth::{generate, SynthConfig};
    use shortlist_features::{FeatureConfig, FeatureSpec};
    use shortlist_index::{AnyIndex, IndexConfig, IndexKind};
    let (data, _) = generate(&SynthConfig {
        users: 12,
        items: 9,
        interactions: 120,
        ..Default::default()
    })
    .unwrap();
    let rows: Vec<usize> = (0..data.interactions.len()).collect();
    let cfg = FeatureConfig {
        user_features: vec!["*".into()],
        item_features: vec!["*".into()],
        ..FeatureConfig::default()
    };
    let spec = FeatureSpec::fit(&data, &rows, &cfg).unwrap();
    let (users, items) = (spec.encode_users(&data), spec.encode_items(&data));
    let titles: Vec<String> = (0..spec.item_id.len() as u32)
        .map(|r| format!("title {r}"))
        .collect();
    if which == 2 {
        let config = shortlist_model::RankingConfig {
            embedding_dim: 4,
            hidden: vec![6],
            biases: true,
            ..Default::default()
        };
        let m = shortlist_model::RankingModel::new(config, spec, &users, &items).unwrap();
        m.save(dir).unwrap();
        return;
    }
    let (nu, ni) = (spec.user_id.len(), spec.item_id.len());
    let pairs: Vec<(u32, u32)> = (0..data.interactions.len())
        .filter_map(|r| {
            let u = spec
                .user_id
                .get(data.users.raw(data.interactions.users[r]))?;
            let i = spec
                .item_id
                .get(data.items.raw(data.interactions.items[r]))?;
            Some((u, i))
        })
        .collect();
    let seen = shortlist_model::Csr::from_pairs(nu, pairs.into_iter());
    let config = shortlist_model::RetrievalConfig {
        embedding_dim: 4,
        ..Default::default()
    };
    let m = shortlist_model::RetrievalModel::new(config, spec, &users, &items, seen, vec![1; ni])
        .unwrap();
    m.save(dir, &titles).unwrap();
    let mut icfg = IndexConfig {
        kind: if which == 0 {
            IndexKind::Exact
        } else {
            IndexKind::Ivf
        },
        ..IndexConfig::default()
    };
    icfg.ivf.lists = 2;
    icfg.ivf.probes = 1;
    let index = AnyIndex::build(m.all_candidates(), m.dim(), &icfg).unwrap();
    index.save_dir(dir).unwrap();
    shortlist_model::files::seal(dir).unwrap();
}

/// The files of one model directory: (relative path, content), sorted.
type ModelDir = Vec<(String, Vec<u8>)>;

/// The files of the three template models (retrieval + exact index, retrieval +
/// IVF index, ranking), by relative path.
fn templates() -> &'static [ModelDir; 3] {
    static T: OnceLock<[ModelDir; 3]> = OnceLock::new();
    T.get_or_init(|| {
        let make = |which: u8| {
            let dir = scratch().join(format!("template-{which}"));
            let _ = std::fs::remove_dir_all(&dir);
            write_model(&dir, which);
            let mut files = Vec::new();
            for e in std::fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                files.push((name, std::fs::read(e.path()).unwrap()));
            }
            files.sort();
            files
        };
        [make(0), make(1), make(2)]
    })
}

/// The model-artifact loader: byte 0 picks a template model and one of its files,
/// byte 1 how the rest replaces it (whole file, overwrite at an offset, truncate
/// and append); the directory is sealed again unless the manifest itself was
/// changed (so the parsers behind the checksums are reached), then loaded as the
/// server loads it and, if it loads, queried.
pub fn model_loader(data: &[u8]) {
    let [pick, mode, rest @ ..] = data else {
        return;
    };
    let t = &templates()[usize::from(*pick) % 3];
    let target = usize::from(*pick / 3) % t.len();
    let dir = scratch().join("model");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (k, (name, bytes)) in t.iter().enumerate() {
        let content = if k != target {
            bytes.clone()
        } else {
            match mode % 3 {
                0 => rest.to_vec(),
                1 => {
                    let mut b = bytes.clone();
                    let (off, patch) = match rest {
                        [a, b2, p @ ..] => (usize::from(u16::from_le_bytes([*a, *b2])), p),
                        _ => (0, rest),
                    };
                    let off = off % (b.len() + 1);
                    let end = (off + patch.len()).min(b.len());
                    b[off..end].copy_from_slice(&patch[..end - off]);
                    b
                }
                _ => {
                    let keep =
                        usize::from(rest.first().copied().unwrap_or(0)) * b_len_step(bytes.len());
                    let mut b = bytes[..keep.min(bytes.len())].to_vec();
                    b.extend_from_slice(rest.get(1..).unwrap_or(&[]));
                    b
                }
            }
        };
        std::fs::write(dir.join(name), content).unwrap();
    }
    if t[target].0 != "manifest.json" {
        let _ = shortlist_model::files::seal(&dir);
    }
    if let Ok(servable) = shortlist_serve::models::load_model_dir(&dir) {
        let users = serde_json::json!(["u1", "nobody", 3]);
        let _ = servable.predict_instances(users.as_array().unwrap());
        let pairs = serde_json::json!([{"user_id": "u1", "item_id": "i1"}, {"user_id": "x", "item_id": "y"}]);
        let _ = servable.predict_instances(pairs.as_array().unwrap());
    }
}

fn b_len_step(len: usize) -> usize {
    (len / 256).max(1)
}

/// The HTTP request bodies of every endpoint, through the real router and real
/// (tiny) models: byte 0 picks the endpoint, the rest is the body. A 500 answer
/// is a finding (an internal error is a bug); every error answer must be the
/// JSON error shape.
pub fn http_body(data: &[u8]) {
    let [pick, body @ ..] = data else {
        return;
    };
    let (app, rt) = http_app();
    let path = match pick % 6 {
        0 => "/v1/recommend",
        1 => "/v1/rank",
        2 => "/v1/models/retrieval:predict",
        3 => "/v1/models/ranking:predict",
        4 => "/v1/models/retrieval/versions/1:predict",
        _ => "/v1/models/ranking/versions/1:predict",
    };
    let req = axum::http::Request::post(path)
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    let (status, bytes) = rt.block_on(async {
        use tower::ServiceExt;
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes)
    });
    assert_ne!(
        status.as_u16(),
        500,
        "internal error for {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    if status.as_u16() != 200 {
        assert!(v["error"].is_string(), "{status} without an error: {v}");
    }
}

fn http_app() -> &'static (axum::Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(axum::Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let base: PathBuf = scratch().join("base");
        let _ = std::fs::remove_dir_all(&base);
        write_model(&base.join("retrieval/1"), 0);
        write_model(&base.join("ranking/1"), 2);
        let config = shortlist_serve::ServeConfig {
            model_base_path: base,
            compute_threads: 1,
            ..Default::default()
        };
        let loader: shortlist_serve::Loader = Arc::new(shortlist_serve::models::load_model_dir);
        let state = shortlist_serve::AppState::new(config, loader);
        state.registry.poll_once();
        assert!(state.registry.readiness().ready, "fuzz models did not load");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        (shortlist_serve::app(state), rt)
    })
}

/// Whether each unmodified template model loads (the loader target must reach
/// the parsers of valid files, not only error paths) and the HTTP seeds' models
/// answer: for the replay test.
pub fn templates_load() -> Vec<String> {
    let mut errors = Vec::new();
    for (k, t) in templates().iter().enumerate() {
        let dir = scratch().join(format!("check-{k}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in t {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        if let Err(e) = shortlist_serve::models::load_model_dir(&dir) {
            errors.push(format!("template {k}: {e}"));
        }
    }
    http_app();
    errors
}
