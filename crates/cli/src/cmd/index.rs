//! `shortlist index tune`: the recall / latency frontier of IVF and HNSW parameters
//! for a retrieval model's items, measured against the exact index.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use shortlist_core::Rng;
use shortlist_index::hnsw::{HnswIndex, HnswParams};
use shortlist_index::{ExactIndex, Filter, IvfIndex, IvfParams, TopKIndex};
use shortlist_model::RetrievalModel;

use super::{print_json, BadInput};

/// Recall@k of `index` on the sampled users and its single-threaded µs per query.
fn measure(
    index: &dyn TopKIndex,
    all: &[f32],
    d: usize,
    sample: &[usize],
    truth: &[Vec<u32>],
    k: usize,
) -> Result<(f64, f64)> {
    let t = Instant::now();
    let mut hits = 0usize;
    for (q, &u) in sample.iter().enumerate() {
        let got = index.search(&all[u * d..(u + 1) * d], k, &Filter::None)?;
        hits += got.iter().filter(|h| truth[q].contains(&h.item)).count();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / sample.len() as f64;
    let total: usize = truth.iter().map(Vec::len).sum();
    Ok((hits as f64 / total.max(1) as f64, us))
}

/// Sweeps IVF lists × probes and HNSW connectivity × expansion_search (`method`:
/// `ivf`, `hnsw` or `all`) on `queries` sampled users of the model at `dir`,
/// single-threaded, and prints recall@k and µs per query for each setting.
pub fn tune(
    dir: &Path,
    method: &str,
    k: usize,
    queries: usize,
    seed: u64,
    json_out: bool,
) -> Result<()> {
    if k == 0 || queries == 0 {
        return Err(BadInput("-k and --queries: expected at least 1".into()).into());
    }
    let (ivf, hnsw) = match method {
        "all" => (true, true),
        "ivf" => (true, false),
        "hnsw" => (false, true),
        other => {
            return Err(
                BadInput(format!("--method: {other:?} is not one of ivf, hnsw, all")).into(),
            )
        }
    };
    let kind = super::model::model_kind(dir)?;
    if kind != "retrieval" {
        return Err(BadInput(format!(
            "{}: `index tune` needs a retrieval model, this is a {kind} model",
            dir.display()
        ))
        .into());
    }
    let (model, _) = RetrievalModel::load(dir)?;
    let d = model.dim();
    let items = model.all_candidates();
    let all = model.all_queries();
    let users = model.num_users();
    let mut rng = Rng::new(seed);
    let sample: Vec<usize> = (0..queries.min(users))
        .map(|_| rng.below(users as u64) as usize)
        .collect();
    let exact = ExactIndex::new(items.clone(), d)?;
    let truth: Vec<Vec<u32>> = sample
        .iter()
        .map(|&u| {
            exact
                .search(&all[u * d..(u + 1) * d], k, &Filter::None)
                .map(|h| h.iter().map(|x| x.item).collect())
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    if ivf {
        let auto = IvfParams::default().lists_for(model.num_items());
        let mut lists_sweep = vec![(auto / 2).max(1), auto, auto * 2];
        lists_sweep.dedup();
        for lists in lists_sweep {
            let params = IvfParams {
                lists,
                ..IvfParams::default()
            };
            let t = Instant::now();
            let mut index = IvfIndex::build(&items, d, params)?;
            let build_seconds = t.elapsed().as_secs_f64();
            // 1, 2, 4, … and finally every list (an exact search), until recall 1.
            let mut sweep: Vec<usize> = std::iter::successors(Some(1usize), |p| Some(p * 2))
                .take_while(|&p| p < index.lists())
                .collect();
            sweep.push(index.lists());
            for probes in sweep {
                index.set_probes(probes);
                let (recall, us) = measure(&index, &all, d, &sample, &truth, k)?;
                rows.push(json!({
                    "method": "ivf", "lists": index.lists(), "probes": probes,
                    "recall": recall, "us_per_query": us, "build_seconds": build_seconds,
                }));
                if recall >= 0.9999 {
                    break;
                }
            }
        }
    }
    if hnsw {
        for connectivity in [8, 16, 32] {
            let params = HnswParams {
                connectivity,
                exact_below: 0,
                ..HnswParams::default()
            };
            let t = Instant::now();
            let mut index = HnswIndex::build(&items, d, params)?;
            let build_seconds = t.elapsed().as_secs_f64();
            for ef in [16, 32, 64, 128, 256] {
                index.set_expansion_search(ef);
                let (recall, us) = measure(&index, &all, d, &sample, &truth, k)?;
                rows.push(json!({
                    "method": "hnsw", "connectivity": connectivity, "expansion_search": ef,
                    "recall": recall, "us_per_query": us, "build_seconds": build_seconds,
                }));
            }
        }
    }
    if json_out {
        return print_json(
            &json!({ "k": k, "queries": sample.len(), "items": model.num_items(), "settings": rows }),
        );
    }
    crate::outln!(
        "{} items × {d}, {} queries, recall@{k} against the exact index (single thread)",
        model.num_items(),
        sample.len()
    );
    crate::outln!(
        "{:>6} {:>28} {:>9} {:>12} {:>9}",
        "method",
        "parameters",
        "recall",
        "µs/query",
        "build s"
    );
    for r in &rows {
        let u = |key: &str| r[key].as_u64().unwrap_or(0);
        let params = if r["method"] == "ivf" {
            format!("lists {} probes {}", u("lists"), u("probes"))
        } else {
            format!(
                "M {} expansion_search {}",
                u("connectivity"),
                u("expansion_search")
            )
        };
        crate::outln!(
            "{:>6} {:>28} {:>9.4} {:>12.1} {:>9.2}",
            r["method"].as_str().unwrap_or(""),
            params,
            r["recall"].as_f64().unwrap_or(0.0),
            r["us_per_query"].as_f64().unwrap_or(0.0),
            r["build_seconds"].as_f64().unwrap_or(0.0)
        );
    }
    crate::outln!("set the chosen values in the retrieval config: [index] kind = \"ivf\" with [index.ivf] lists = …, probes = …; or kind = \"hnsw\" with [index.hnsw] connectivity = …, expansion_search = …");
    Ok(())
}
