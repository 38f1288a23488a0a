//! Items added while serving, measured: a two-tower model over a large catalogue with
//! an IVF index, 10,000 items added (in batches of 100, through the live layer the
//! server's `/v1/items` uses) while reader threads keep retrieving; recall@10 of the
//! served lists against the exact top 10 over every item, before and after, the
//! requests served and failed meanwhile, the time to apply a batch, how many of the
//! exact top-10 slots that added items hold were found, and the median time of one
//! `retrieve(k = 100)` before and after.
//!
//! ```text
//! cargo run --release -p shortlist-pipeline --example live_items -- [--items 1000000] [--added 10000] [--save DIR]
//! ```
//!
//! The model is synthetic (no training: the figures are about the index and the live
//! layer, not about quality): 64 categories, each item's vector its category's vector
//! plus a price term (z-score × a learned-like direction) plus a small id vector; a user's query is a category's vector plus
//! noise; an added item gets its category and price, so the item tower places it
//! without an id vector. In process, not over HTTP.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shortlist_core::dataset::{Column, ColumnValues, Dataset, FeatureTable, IdMap, Interactions};
use shortlist_core::Rng;
use shortlist_features::{FeatureConfig, FeatureSpec};
use shortlist_index::{AnyIndex, ExactIndex, Filter, IndexConfig, IndexKind, TopKIndex};
use shortlist_model::attributes::RawValue;
use shortlist_model::{Csr, RetrievalConfig, RetrievalModel};
use shortlist_pipeline::{load_dir, CandidateSource, ItemChange, ModelSource, Stage, User};

const DIM: usize = 32;
const CATEGORIES: usize = 64;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|p| args.get(p + 1))
        .map(|v| v.parse().unwrap())
        .unwrap_or(default)
}

fn fill(rng: &mut Rng, v: &mut [f32], scale: f32) {
    for x in v {
        *x = rng.normal() as f32 * scale;
    }
}

/// The synthetic catalogue: `n` items with a category and a price (plus `added` more
/// drawn now for the items added later), one interaction per item.
fn catalogue(n: usize, added: usize, users: usize, rng: &mut Rng) -> (Dataset, Vec<u32>, Vec<f64>) {
    let cats: Vec<u32> = (0..n + added)
        .map(|_| rng.below(CATEGORIES as u64) as u32)
        .collect();
    let prices: Vec<f64> = (0..n + added)
        .map(|_| 1.0 + rng.next_f64() * 99.0)
        .collect();
    let d = Dataset {
        name: "live".into(),
        users: IdMap::from_raw((0..users).map(|u| format!("u{u}")).collect()),
        items: IdMap::from_raw((0..n).map(|i| format!("i{i}")).collect()),
        interactions: Interactions {
            users: (0..n).map(|i| (i % users) as u32).collect(),
            items: (0..n as u32).collect(),
            ratings: vec![1.0; n],
            timestamps: None,
        },
        item_features: FeatureTable {
            columns: vec![
                Column {
                    name: "category".into(),
                    values: ColumnValues::Categorical(
                        cats[..n].iter().map(|c| format!("c{c}")).collect(),
                    ),
                },
                Column {
                    name: "price".into(),
                    values: ColumnValues::Numeric(prices[..n].to_vec()),
                },
            ],
        },
        ..Dataset::default()
    };
    (d, cats, prices)
}

/// The two-tower model over `d` with drawn weights: category vectors (norm ~3), a
/// price direction, small id vectors; each user's query near a category.
fn synthetic_model(d: &Dataset, rng: &mut Rng) -> RetrievalModel {
    let rows: Vec<usize> = (0..d.interactions.len()).collect();
    let cfg = FeatureConfig {
        item_features: vec!["*".into()],
        ..FeatureConfig::default()
    };
    let spec = FeatureSpec::fit(d, &rows, &cfg).unwrap();
    let seen = Csr::from_pairs(spec.user_id.len(), std::iter::empty());
    let mut model = RetrievalModel::new(
        RetrievalConfig {
            embedding_dim: DIM,
            history: false,
            temperature: 1.0,
        },
        spec.clone(),
        &spec.encode_users(d),
        &spec.encode_items(d),
        seen,
        vec![1; spec.item_id.len()],
    )
    .unwrap();
    let mut cat_vecs = vec![0f32; 0];
    for f in &mut model.candidate {
        let t = f.table.as_mut().unwrap();
        let scale = match f.name.as_str() {
            "item_id" => 0.02,
            "category" => 0.55,
            _ => 0.5,
        };
        fill(rng, t.data_mut(), scale);
        if f.name == "category" {
            cat_vecs = t.data().to_vec();
        }
    }
    let ncat_rows = cat_vecs.len() / DIM;
    let qt = model.query[0].table.as_mut().unwrap();
    for u in 0..qt.rows() {
        let c = rng.below(ncat_rows as u64) as usize;
        let row = qt.row_mut(u);
        fill(rng, row, 0.2);
        for (x, y) in row.iter_mut().zip(&cat_vecs[c * DIM..(c + 1) * DIM]) {
            *x += y;
        }
    }
    model
}

/// Saves `model` with an IVF index (trained with its users' queries) as a sealed
/// version directory at `path`.
fn save_with_ivf(model: &RetrievalModel, queries: &[f32], path: &std::path::Path) {
    let staging = shortlist_core::atomic::AtomicDir::new(path).unwrap();
    model
        .save_into(staging.path(), &vec![String::new(); model.num_items()])
        .unwrap();
    let index = AnyIndex::build_with_queries(
        model.all_candidates(),
        DIM,
        &IndexConfig {
            kind: IndexKind::Ivf,
            ..IndexConfig::default()
        },
        Some(queries),
    )
    .unwrap();
    index.save_dir(staging.path()).unwrap();
    shortlist_model::files::seal(staging.path()).unwrap();
    staging.commit().unwrap();
}

/// How `source`'s top-10 lists for the `sample` users compare with `exact`'s top 10
/// of their queries (rows past the model's are the added items `live_ids`).
struct Recall {
    /// recall@10.
    recall: f64,
    /// Slots of the served lists that hold added items.
    served_added: usize,
    /// Slots of the exact lists that hold added items, and how many of those the
    /// served lists hold.
    exact_added: usize,
    found_added: usize,
}

fn recall(
    model: &RetrievalModel,
    queries: &[f32],
    sample: &[String],
    source: &dyn CandidateSource,
    exact: &ExactIndex,
    live_ids: &[String],
) -> Recall {
    let mut r = Recall {
        recall: 0.0,
        served_added: 0,
        exact_added: 0,
        found_added: 0,
    };
    let mut hit = 0usize;
    let excl: Vec<u32> = (0..model.spec.item_id.num_oov()).collect();
    for u in sample {
        let row = model.spec.user_id.get(u).unwrap() as usize;
        let q = &queries[row * DIM..(row + 1) * DIM];
        let got = source.retrieve(&User::id(u), 10, false, &[]).unwrap();
        let served = |id: &str| got.candidates.iter().any(|c| c.item_id == id);
        for h in exact.search(q, 10, &Filter::Exclude(&excl)).unwrap() {
            let id = match (h.item as usize).checked_sub(model.num_items()) {
                None => model.spec.item_id.value(h.item).unwrap(),
                Some(i) => {
                    r.exact_added += 1;
                    r.found_added += usize::from(served(&live_ids[i]));
                    &live_ids[i]
                }
            };
            hit += usize::from(served(id));
        }
        r.served_added += got
            .candidates
            .iter()
            .filter(|c| c.item_id.starts_with("new"))
            .count();
    }
    r.recall = hit as f64 / (10 * sample.len()) as f64;
    r
}

/// Median time of one `retrieve(k = 100)` over the `sample` users, one thread, in µs
/// (three passes).
fn retrieve_us(source: &dyn CandidateSource, sample: &[String]) -> f64 {
    let mut t: Vec<f64> = Vec::with_capacity(3 * sample.len());
    for _ in 0..3 {
        for u in sample {
            let s = Instant::now();
            let r = source.retrieve(&User::id(u), 100, false, &[]).unwrap();
            t.push(s.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(r);
        }
    }
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Requests served and failed by the readers, stopped by `stop`.
struct Readers {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<f64>>>,
}

impl Readers {
    /// Two threads retrieving 100 candidates for the `sample` users in turn.
    fn start(source: &Arc<ModelSource>, sample: &[String]) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let threads = (0..2)
            .map(|t| {
                let (source, stop, served, failed) = (
                    Arc::clone(source),
                    Arc::clone(&stop),
                    Arc::clone(&served),
                    Arc::clone(&failed),
                );
                let users: Vec<String> = sample.to_vec();
                std::thread::spawn(move || {
                    let mut lat = Vec::new();
                    let mut k = t;
                    while !stop.load(Ordering::Relaxed) {
                        let s = Instant::now();
                        match source.retrieve(&User::id(&users[k % users.len()]), 100, false, &[]) {
                            Ok(r) if r.candidates.len() == 100 => {
                                served.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        lat.push(s.elapsed().as_secs_f64() * 1e3);
                        k += 2;
                    }
                    lat
                })
            })
            .collect();
        Readers {
            stop,
            served,
            failed,
            threads,
        }
    }

    /// Stops the readers; their request latencies (ms), sorted.
    fn stop(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut lat: Vec<f64> = self
            .threads
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        lat.sort_by(f64::total_cmp);
        lat
    }
}

/// The `added` items to add (ids `new{i}`), each with the category and price drawn
/// for it.
fn additions(n: usize, added: usize, cats: &[u32], prices: &[f64]) -> Vec<ItemChange> {
    (0..added)
        .map(|i| ItemChange::Put {
            item_id: format!("new{i}"),
            title: None,
            features: vec![
                (
                    "category".into(),
                    RawValue::Label(format!("c{}", cats[n + i])),
                ),
                ("price".into(), RawValue::Number(prices[n + i])),
            ],
        })
        .collect()
}

fn main() {
    let n = arg("--items", 1_000_000);
    let added = arg("--added", 10_000);
    let users = 20_000usize;
    let mut rng = Rng::new(7);
    let t = Instant::now();
    let (d, cats, prices) = catalogue(n, added, users, &mut rng);
    let model = synthetic_model(&d, &mut rng);
    eprintln!("model built in {:.1}s", t.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1");
    // `--save DIR`: also keep the model as `DIR/retrieval/1` (to serve it over HTTP).
    let args: Vec<String> = std::env::args().collect();
    let save = args
        .iter()
        .position(|a| a == "--save")
        .and_then(|p| args.get(p + 1))
        .map(|d| std::path::Path::new(d).join("retrieval").join("1"));
    let t = Instant::now();
    let queries = model.all_queries();
    save_with_ivf(&model, &queries, &path);
    if let Some(keep) = &save {
        save_with_ivf(&model, &queries, keep);
        eprintln!("saved to {}", keep.display());
    }
    eprintln!(
        "IVF index of {n} items built and saved in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let Stage::Source(source) = load_dir(&path).unwrap() else {
        panic!("a candidate source")
    };
    let source = Arc::new(source);

    let sample: Vec<String> = (0..1000)
        .map(|_| format!("u{}", rng.below(users as u64)))
        .collect();
    let mut all = model.all_candidates();
    let exact = ExactIndex::new(all.clone(), DIM).unwrap();
    let before = recall(&model, &queries, &sample, &*source, &exact, &[]).recall;
    println!(
        "recall@10 before: {before:.4} ({} sampled users, IVF vs exact over {n} items); retrieve(k=100) median {:.1} µs",
        sample.len(),
        retrieve_us(&*source, &sample)
    );

    // Readers retrieve while the items are added.
    let readers = Readers::start(&source, &sample);
    let changes = additions(n, added, &cats, &prices);
    let live_ids: Vec<String> = (0..added).map(|i| format!("new{i}")).collect();
    let mut apply_ms = Vec::new();
    let t = Instant::now();
    for (b, batch) in changes.chunks(100).enumerate() {
        let s = Instant::now();
        let w = source.apply_items((b * 100) as u64, batch);
        assert!(w.is_empty(), "{w:?}");
        apply_ms.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let add_s = t.elapsed().as_secs_f64();
    let (served, failed) = (Arc::clone(&readers.served), Arc::clone(&readers.failed));
    let lat = readers.stop();
    apply_ms.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "added {added} items in {} batches in {add_s:.2}s: apply per batch median {:.2} ms, max {:.2} ms",
        apply_ms.len(),
        pct(&apply_ms, 0.5),
        pct(&apply_ms, 1.0)
    );
    println!(
        "meanwhile {} retrieve(k=100) calls served, {} failed; latency p50 {:.2} ms, p99 {:.2} ms",
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    let mut v = vec![0f32; DIM];
    for c in &changes {
        let ItemChange::Put { features, .. } = c else {
            unreachable!()
        };
        model.candidate_from_features(features, &mut v).unwrap();
        all.extend_from_slice(&v);
    }
    let exact = ExactIndex::new(all, DIM).unwrap();
    let after = recall(&model, &queries, &sample, &*source, &exact, &live_ids);
    println!(
        "recall@10 after: {:.4} (exact over {} items; {} of the sampled top-10 slots hold added items); change {:+.4}",
        after.recall,
        n + added,
        after.served_added,
        after.recall - before
    );
    println!(
        "added items: {} of the {} exact top-10 slots they hold found; retrieve(k=100) median {:.1} µs",
        after.found_added,
        after.exact_added,
        retrieve_us(&*source, &sample)
    );
}
