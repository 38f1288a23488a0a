//! `shortlist index tune`: the recall / latency frontier of the approximate indexes on
//! a retrieval model's items, for what the pipeline asks: top-k at several k, under
//! random exclusions (10 / 50 / 90 % of the items) and with each user's seen items
//! excluded, measured against the exact index.
//!
//! IVF settings are recall targets (what `[index] recall_target` sets): the index is
//! calibrated with one sample of the model's users and measured on another, so the
//! report shows how closely each target is met. HNSW settings are `expansion_search`.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};
use shortlist_core::Rng;
use shortlist_index::hnsw::{HnswIndex, HnswParams};
use shortlist_index::{
    ExactIndex, Filter, ItemBitmap, IvfIndex, IvfParams, RecallTarget, TopKIndex,
};
use shortlist_model::RetrievalModel;

use super::{print_json, BadInput};

/// What `index tune` measures.
pub struct TuneArgs<'a> {
    /// Retrieval model directory.
    pub dir: &'a Path,
    /// `ivf`, `hnsw` or `all`.
    pub method: &'a str,
    /// The k of the unfiltered tasks.
    pub ks: &'a [usize],
    /// IVF recall targets to measure.
    pub targets: &'a [f64],
    /// Users measured (another sample of the same size calibrates IVF).
    pub queries: usize,
    /// Seed of the samples.
    pub seed: u64,
    /// One JSON object instead of the table.
    pub json: bool,
}

/// One task: a name, its k, the filter of each query, the exact answers.
struct Task {
    name: String,
    k: usize,
    filters: Vec<Filters>,
    truth: Vec<Vec<u32>>,
}

/// A query's filter, owned.
enum Filters {
    None,
    Bitmap(usize),
    Seen(u32),
}

/// Shared state of the sweep.
struct Sweep<'a> {
    model: &'a RetrievalModel,
    queries: &'a [f32],
    dim: usize,
    bitmaps: Vec<ItemBitmap>,
    oov: Vec<u32>,
}

impl Sweep<'_> {
    fn filter<'s>(&'s self, f: &Filters, scratch: &'s mut Vec<u32>) -> Filter<'s> {
        match f {
            Filters::None => Filter::Exclude(&self.oov),
            Filters::Bitmap(i) => Filter::AllowBitmap(&self.bitmaps[*i]),
            Filters::Seen(u) => {
                scratch.clear();
                scratch.extend_from_slice(&self.oov);
                scratch.extend_from_slice(self.model.seen_items(*u));
                Filter::Exclude(scratch)
            }
        }
    }

    /// Recall of `index` on `task` and its single-threaded µs per query.
    fn measure(&self, index: &dyn TopKIndex, task: &Task) -> Result<(f64, f64)> {
        let mut scratch = Vec::new();
        let (mut found, mut total) = (0usize, 0usize);
        let t = Instant::now();
        for (q, (f, truth)) in task.filters.iter().zip(&task.truth).enumerate() {
            let query = &self.queries[q * self.dim..(q + 1) * self.dim];
            let hits = index.search(query, task.k, &self.filter(f, &mut scratch))?;
            found += hits.iter().filter(|h| truth.contains(&h.item)).count();
            total += truth.len();
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / task.truth.len().max(1) as f64;
        Ok((found as f64 / total.max(1) as f64, us))
    }
}

/// Runs the sweep and prints the frontier.
pub fn tune(a: &TuneArgs<'_>) -> Result<()> {
    if a.queries == 0 || a.ks.is_empty() || a.ks.contains(&0) {
        return Err(BadInput("--ks and --queries: expected values of at least 1".into()).into());
    }
    if let Some(t) = a.targets.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
        return Err(BadInput(format!("--targets: {t} is not within (0, 1]")).into());
    }
    let (ivf, hnsw) = match a.method {
        "all" => (true, true),
        "ivf" => (true, false),
        "hnsw" => (false, true),
        other => {
            return Err(
                BadInput(format!("--method: {other:?} is not one of ivf, hnsw, all")).into(),
            )
        }
    };
    let kind = super::model::model_kind(a.dir)?;
    if kind != "retrieval" {
        return Err(BadInput(format!(
            "{}: `index tune` needs a retrieval model, this is a {kind} model",
            a.dir.display()
        ))
        .into());
    }
    let (model, _) = RetrievalModel::load(a.dir)?;
    let d = model.dim();
    let n = model.num_items();
    let items = model.all_candidates();
    let all = model.all_queries();
    let users = model.num_users();
    // Two disjoint samples when there are enough users: measured, then calibration.
    let mut order: Vec<u32> = (0..users as u32).collect();
    Rng::new(a.seed).shuffle(&mut order);
    let measured: Vec<u32> = order.iter().copied().take(a.queries).collect();
    let calibration: Vec<u32> = order
        .iter()
        .copied()
        .skip(measured.len())
        .take(a.queries)
        .collect();
    let vectors = |users: &[u32]| -> Vec<f32> {
        users
            .iter()
            .flat_map(|&u| &all[u as usize * d..(u as usize + 1) * d])
            .copied()
            .collect()
    };
    let queries = vectors(&measured);
    let mut rng = Rng::new(a.seed ^ 0x5EE0);
    let oov: Vec<u32> = (0..model.spec.item_id.num_oov()).collect();
    let pcts = [10usize, 50, 90];
    let bitmaps: Vec<ItemBitmap> = pcts
        .iter()
        .map(|&p| {
            let mut b = ItemBitmap::all(n);
            for i in 0..n as u32 {
                if oov.contains(&i) || rng.next_f64() < p as f64 / 100.0 {
                    b.remove(i);
                }
            }
            b
        })
        .collect();
    let sweep = Sweep {
        model: &model,
        queries: &queries,
        dim: d,
        bitmaps,
        oov,
    };
    // The tasks and their exact answers.
    let exact = ExactIndex::new(items.clone(), d)?;
    let mut tasks = Vec::new();
    let seen_k = if a.ks.contains(&100) {
        100
    } else {
        a.ks[a.ks.len() - 1]
    };
    // (name, k, the filter of user `u`): `None` unfiltered, `Some(i)` bitmap `i`, and
    // the seen task's own kind below.
    let mut specs: Vec<(String, usize, Option<Option<usize>>)> =
        a.ks.iter()
            .map(|&k| (format!("k={k}"), k, Some(None)))
            .collect();
    for (i, p) in pcts.iter().enumerate() {
        specs.push((format!("excl={p}"), 10, Some(Some(i))));
    }
    specs.push((format!("seen,k={seen_k}"), seen_k, None));
    for (name, k, kind) in specs {
        let filters: Vec<Filters> = measured
            .iter()
            .map(|&u| match kind {
                Some(None) => Filters::None,
                Some(Some(i)) => Filters::Bitmap(i),
                None => Filters::Seen(u),
            })
            .collect();
        let mut scratch = Vec::new();
        let truth = filters
            .iter()
            .enumerate()
            .map(|(q, f)| {
                let hits = exact.search(
                    &queries[q * d..(q + 1) * d],
                    k,
                    &sweep.filter(f, &mut scratch),
                )?;
                Ok(hits.iter().map(|h| h.item).collect())
            })
            .collect::<Result<Vec<Vec<u32>>>>()?;
        tasks.push(Task {
            name,
            k,
            filters,
            truth,
        });
    }
    drop(exact);
    let mut rows = Vec::new();
    let mut push = |method: &str, setting: String, task: &Task, (recall, us): (f64, f64)| {
        rows.push(json!({
            "method": method, "setting": setting, "task": task.name, "k": task.k,
            "recall": recall, "us_per_query": us,
        }));
    };
    let mut builds = Vec::new();
    if ivf {
        let t = Instant::now();
        let mut index = IvfIndex::build(&items, d, IvfParams::default())?;
        if !calibration.is_empty() {
            index.calibrate(&vectors(&calibration))?;
        }
        builds.push(json!({"method": "ivf", "lists": index.lists(), "build_seconds": t.elapsed().as_secs_f64()}));
        for &target in a.targets {
            index.set_recall_target(RecallTarget::uniform(target)?);
            for task in &tasks {
                push(
                    "ivf",
                    format!("recall_target {target}"),
                    task,
                    sweep.measure(&index, task)?,
                );
            }
        }
    }
    if hnsw {
        let t = Instant::now();
        let params = HnswParams {
            exact_below: 0,
            ..HnswParams::default()
        };
        let mut index = HnswIndex::build(&items, d, params)?;
        builds.push(json!({"method": "hnsw", "connectivity": params.connectivity, "build_seconds": t.elapsed().as_secs_f64()}));
        for ef in [16, 32, 64, 128, 256, 512, 1024] {
            index.set_expansion_search(ef);
            for task in tasks.iter().filter(|t| t.k <= ef) {
                push(
                    "hnsw",
                    format!("expansion_search {ef}"),
                    task,
                    sweep.measure(&index, task)?,
                );
            }
        }
    }
    let calibrated = calibration.len();
    if a.json {
        return print_json(&json!({
            "items": n, "queries": measured.len(), "calibration_queries": calibrated,
            "builds": builds, "settings": rows,
        }));
    }
    report(n, d, measured.len(), calibrated, &builds, &rows, &tasks)
}

/// The human report: one table per task.
fn report(
    n: usize,
    d: usize,
    nq: usize,
    nc: usize,
    builds: &[Value],
    rows: &[Value],
    tasks: &[Task],
) -> Result<()> {
    crate::outln!(
        "{n} items × {d}; {nq} users measured, {nc} others calibrate IVF; recall against the exact index, single-threaded"
    );
    for b in builds {
        crate::outln!(
            "{} built in {:.1} s",
            b["method"].as_str().unwrap_or(""),
            b["build_seconds"].as_f64().unwrap_or(0.0)
        );
    }
    for task in tasks {
        crate::outln!("\n{} (k = {}):", task.name, task.k);
        crate::outln!(
            "{:>6} {:>24} {:>9} {:>12}",
            "method",
            "setting",
            "recall",
            "µs/query"
        );
        for r in rows.iter().filter(|r| r["task"] == task.name.as_str()) {
            crate::outln!(
                "{:>6} {:>24} {:>9.4} {:>12.1}",
                r["method"].as_str().unwrap_or(""),
                r["setting"].as_str().unwrap_or(""),
                r["recall"].as_f64().unwrap_or(0.0),
                r["us_per_query"].as_f64().unwrap_or(0.0)
            );
        }
    }
    crate::outln!("\nset the chosen target in the retrieval config: [index] recall_target = 0.95 (or per k: recall_target = {{ \"10\" = 0.99, \"100\" = 0.95 }}); for HNSW, [index] kind = \"hnsw\" with [index.hnsw] expansion_search = …");
    Ok(())
}
