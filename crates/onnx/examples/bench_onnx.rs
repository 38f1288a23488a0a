//! File size and latency of the exported ranking graph per (user, item) pair in tract
//! and in our own scorer, on saved models (the quickstart's by default), plus a parity
//! check on 10,000 raw-id pairs; it also writes what `scripts/onnx/ort_check.py` and
//! `scripts/onnx/ort_bench.py` read, for the same figures in ONNX Runtime.
//!
//! ```sh
//! cargo run --release -p shortlist-onnx --features tract --example bench_onnx -- \
//!     [--ranking models/movielens/ranking/1] [--retrieval models/movielens/retrieval/1] \
//!     [--out target/onnx-bench]
//! python3 scripts/onnx/ort_check.py target/onnx-bench
//! python3 scripts/onnx/ort_bench.py target/onnx-bench
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use shortlist_core::Rng;
use shortlist_model::{RankingModel, RetrievalModel, Scratch};
use tract_onnx::prelude::*;

fn arg(name: &str, default: &str) -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|k| args.get(k + 1))
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Median over `rounds` of the time per call of `f` (called `reps` times a round), in µs.
fn median_us(rounds: usize, reps: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut t: Vec<f64> = (0..rounds)
        .map(|r| {
            let s = Instant::now();
            for k in 0..reps {
                f(r * reps + k);
            }
            s.elapsed().as_secs_f64() * 1e6 / reps as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[rounds / 2]
}

type Plan = TypedSimplePlan<TypedModel>;

fn plan(bytes: &[u8], inputs: usize, n: usize) -> Plan {
    let mut m = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    for k in 0..inputs {
        m = m
            .with_input_fact(k, InferenceFact::dt_shape(i64::datum_type(), tvec!(n)))
            .unwrap();
    }
    m.into_optimized().unwrap().into_runnable().unwrap()
}

fn tensors(cols: &[&[i64]]) -> TVec<TValue> {
    cols.iter()
        .map(|c| Tensor::from(tract_ndarray::Array1::from_vec(c.to_vec())).into())
        .collect()
}

fn main() {
    let ranking = arg("--ranking", "models/movielens/ranking/1");
    let retrieval = arg("--retrieval", "models/movielens/retrieval/1");
    let out = arg("--out", "target/onnx-bench");
    std::fs::create_dir_all(&out).unwrap();
    let model = RankingModel::load(&ranking).unwrap();
    let e = shortlist_onnx::export_ranking(&model).unwrap();
    let bytes = &e.graphs[0].bytes;
    std::fs::write(out.join("ranking.onnx"), bytes).unwrap();
    let json = e.features_json(&["ranking.onnx".into()]);
    std::fs::write(
        out.join("ranking.features.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    println!(
        "ranking model {}: {} member(s), AutoRec {}, ONNX file {:.2} MB",
        ranking.display(),
        model.members.len() + 1,
        model.autorec.is_some(),
        bytes.len() as f64 / 1e6
    );

    // 10,000 raw pairs, about 10 % unknown on each side.
    let mut rng = Rng::new(42);
    let (uv, iv) = (model.spec.user_id.values(), model.spec.item_id.values());
    let mut pick = |vals: &[String], kind: &str| {
        let r = rng.below((vals.len() + vals.len() / 9 + 1) as u64) as usize;
        vals.get(r)
            .cloned()
            .unwrap_or_else(|| format!("unknown-{kind}-{r}"))
    };
    let pairs: Vec<(String, String)> = (0..10_000)
        .map(|_| (pick(uv, "u"), pick(iv, "i")))
        .collect();
    let rows: Vec<(u32, u32)> = pairs.iter().map(|(u, i)| model.rows_of(u, i)).collect();
    let users: Vec<i64> = rows.iter().map(|r| i64::from(r.0)).collect();
    let items: Vec<i64> = rows.iter().map(|r| i64::from(r.1)).collect();
    let ours: Vec<f32> = pairs
        .iter()
        .map(|(u, i)| model.predict_raw(u, i).rating)
        .collect();
    let mut text = String::new();
    for ((u, i), p) in pairs.iter().zip(&ours) {
        writeln!(text, "{u}\t{i}\t{p}").unwrap();
    }
    std::fs::write(out.join("ranking.pairs.tsv"), text).unwrap();

    let all = plan(bytes, 2, pairs.len());
    let got = all.run(tensors(&[&users, &items])).unwrap();
    let got = got[0].to_array_view::<f32>().unwrap();
    let worst = got
        .iter()
        .zip(&ours)
        .map(|(g, w)| (f64::from(*g) - f64::from(*w)).abs() / f64::from(w.abs()).max(1e-3))
        .fold(0f64, f64::max);
    println!("parity in tract, 10,000 pairs: worst relative difference {worst:.2e}");

    let one = plan(bytes, 2, 1);
    let batch = plan(bytes, 2, 1000);
    let n = pairs.len();
    let tract_one = median_us(15, 400, |k| {
        let k = k % n;
        one.run(tensors(&[&users[k..k + 1], &items[k..k + 1]]))
            .unwrap();
    });
    let tract_batch = median_us(15, 4, |k| {
        let s = (k * 1000) % (n - 1000);
        batch
            .run(tensors(&[&users[s..s + 1000], &items[s..s + 1000]]))
            .unwrap();
    }) / 1000.0;
    let ours_one = median_us(15, 4000, |k| {
        let (u, i) = rows[k % n];
        std::hint::black_box(model.predict(u, i));
    });
    let (u32s, i32s): (Vec<u32>, Vec<u32>) = rows.iter().copied().unzip();
    let mut scratch = Scratch::default();
    let mut o = vec![0.0; 1000];
    let ours_batch = median_us(15, 20, |k| {
        let s = (k * 1000) % (n - 1000);
        model.predict_batch_with(&u32s[s..s + 1000], &i32s[s..s + 1000], &mut scratch, &mut o);
    }) / 1000.0;
    println!("latency per pair (median of 15 rounds):");
    println!("  tract, one pair per call      {tract_one:8.2} µs");
    println!("  tract, batch of 1000          {tract_batch:8.3} µs");
    println!("  ours, one pair (predict)      {ours_one:8.3} µs");
    println!("  ours, batch of 1000           {ours_batch:8.3} µs (two threads from 512 pairs)");

    if retrieval.join("manifest.json").is_file() {
        let (r, _) = RetrievalModel::load(&retrieval).unwrap();
        let e = shortlist_onnx::export_retrieval(&r).unwrap();
        for g in &e.graphs {
            println!(
                "retrieval {} tower: {:.2} MB",
                g.role,
                g.bytes.len() as f64 / 1e6
            );
        }
    }
}
