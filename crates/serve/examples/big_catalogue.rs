//! End-to-end serving benchmark on a 1M-item synthetic catalogue: generate a log with
//! planted structure, train a retrieval model (IVF or HNSW index built at export) and a
//! ranking model, write a model base directory that `shortlist serve` loads, check the
//! model cheaply on a user sample, and time one in-process recommend call.
//!
//! ```text
//! cargo build --release -p shortlist-cli -p shortlist-serve --example big_catalogue
//! RAYON_NUM_THREADS=2 target/release/examples/big_catalogue --out target/big-catalogue
//! # then, against the real server (release build):
//! target/release/shortlist serve --model-base-path target/big-catalogue/models --port 8601 &
//! until curl -sf localhost:8601/readyz >/dev/null; do sleep 1; done
//! oha -q 1000 -z 20s -c 16 --latency-correction -m POST \
//!     -H 'content-type: application/json' -Z target/big-catalogue/bodies.jsonl \
//!     http://127.0.0.1:8601/v1/recommend
//! ```
//!
//! What it does, with the defaults (`--users 100000 --items 1000000
//! --interactions 4000000 --epochs 1`):
//!
//! 1. `shortlist_data::synth::generate` (rank-8 planted factors, item popularity
//!    exponent 0.5 so the long tail is still drawn). One interaction per sampled user
//!    (`--sample-users`, default 1000) is held out as a test row. Every item that has
//!    no training interaction gets one, with the best of 16 random users by planted
//!    affinity, so the model's vocabulary holds every one of the 1M items.
//! 2. Retrieval: dim 64, in-batch softmax (the default loss), `--epochs` epochs,
//!    per-epoch evaluation off, ids-only towers (`--history` adds the pooled-history
//!    query feature: its leave-one-out pooling costs O(Σ n_u²) random row reads, over
//!    10 min per epoch here with power-law user activity), the index `--index` picks (default `auto`: IVF at 1M items) with its default
//!    parameters; written to `OUT/models/retrieval/1/` exactly as `shortlist train
//!    retrieval` does (model files + index file).
//! 3. Ranking: ids only, dim 32, MLP 64-32, one epoch, written to
//!    `OUT/models/ranking/1/`.
//! 4. Sanity on the sampled users: recall@100 of the held-out item for the model
//!    (exact top-100, seen items excluded) and for popularity; overlap of the
//!    approximate top-10/top-100 with the exact one (what the server returns vs brute
//!    force).
//! 5. Loads both directories with the server's own loaders and times `retrieve(100,
//!    exclude_seen) → rank → top 10` in process.
//! 6. Measures the served candidate recall: `retrieve(100, exclude_seen)` through the
//!    server's loader against the exact top-100 under the same exclusions.
//! 7. Writes `OUT/bodies.jsonl` (10,000 `/v1/recommend` bodies over random users, for
//!    `oha -Z`) and `OUT/vectors/{items,queries}.npy` (every candidate vector; the
//!    sampled users' query vectors, then as many other random users', for
//!    `ann_bench --vectors DIR --queries 1000 --calibration 1000`).
//!
//! `--skip-train` reuses `OUT/models` and only repeats steps 5–7; `--reindex` (with
//! `--skip-train`) first rebuilds the saved retrieval model's index as `--index
//! auto|exact|ivf|hnsw` asks (default `auto`: IVF at this size).
#![allow(missing_docs)]

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shortlist_core::Rng;
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_index::{AnyIndex, ExactIndex, Filter, IndexConfig, IndexKind, TopKIndex};
use shortlist_pipeline::{
    load_dir, recommend, CandidateSource, Order, Ranker, Request, Stage, Stages, User,
};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::TrainConfig;

type Res<T> = Result<T, Box<dyn Error>>;

struct Args {
    out: PathBuf,
    users: usize,
    items: usize,
    interactions: usize,
    epochs: usize,
    sample_users: usize,
    skip_train: bool,
    history: bool,
    index: IndexKind,
    reindex: bool,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        out: PathBuf::from("target/big-catalogue"),
        users: 100_000,
        items: 1_000_000,
        interactions: 4_000_000,
        epochs: 1,
        sample_users: 1000,
        skip_train: false,
        history: false,
        index: IndexKind::Auto,
        reindex: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        if flag == "--skip-train" || flag == "--history" || flag == "--reindex" {
            match flag {
                "--history" => a.history = true,
                "--reindex" => a.reindex = true,
                _ => a.skip_train = true,
            }
            i += 1;
            continue;
        }
        let v = argv
            .get(i + 1)
            .ok_or_else(|| format!("{flag}: missing value"))?;
        let num = || -> Res<usize> {
            v.parse::<usize>()
                .map_err(|e| format!("{flag} {v:?}: expected a non-negative integer ({e})").into())
        };
        match flag {
            "--out" => a.out = PathBuf::from(v),
            "--users" => a.users = num()?,
            "--items" => a.items = num()?,
            "--interactions" => a.interactions = num()?,
            "--epochs" => a.epochs = num()?,
            "--sample-users" => a.sample_users = num()?,
            "--index" => a.index = v.parse().map_err(|e| format!("--index: {e}"))?,
            other => return Err(format!("unknown argument {other:?} (see the file header)").into()),
        }
        i += 2;
    }
    if a.users == 0 || a.items == 0 || a.epochs == 0 || a.sample_users == 0 {
        return Err("--users, --items, --epochs and --sample-users must be at least 1".into());
    }
    Ok(a)
}

fn write_npy(path: &Path, descr: &str, shape: (usize, usize), data: &[u8]) -> Res<()> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape.0, shape.1
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&u16::try_from(header.len())?.to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    f.write_all(data)?;
    f.flush()?;
    Ok(())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Generates, trains, saves and checks; returns the raw ids of the sampled users.
fn build(a: &Args, models: &Path) -> Res<Vec<String>> {
    let t = Instant::now();
    let (mut d, planted) = generate(&SynthConfig {
        users: a.users,
        items: a.items,
        interactions: a.interactions,
        item_exponent: 0.5,
        ..Default::default()
    })?;
    let n = d.interactions.len();
    println!(
        "generated {} users × {} items, {n} interactions in {:.1}s",
        a.users,
        a.items,
        t.elapsed().as_secs_f64()
    );

    // Hold out one interaction for each of `sample_users` random users that have at
    // least two (the first one in log order; the log is in random order).
    let mut rng = Rng::new(7);
    let mut count = vec![0u32; a.users];
    for &u in &d.interactions.users {
        count[u as usize] += 1;
    }
    let mut candidates: Vec<u32> = (0..a.users as u32)
        .filter(|&u| count[u as usize] >= 2)
        .collect();
    rng.shuffle(&mut candidates);
    candidates.truncate(a.sample_users);
    let mut sampled = vec![false; a.users];
    for &u in &candidates {
        sampled[u as usize] = true;
    }
    let mut test = Vec::with_capacity(candidates.len());
    let mut train = Vec::with_capacity(n + a.items / 10);
    for r in 0..n {
        let u = d.interactions.users[r] as usize;
        if sampled[u] {
            sampled[u] = false;
            test.push(r);
        } else {
            train.push(r);
        }
    }
    // Every item gets at least one training interaction.
    let mut item_count = vec![0u32; a.items];
    for &r in &train {
        item_count[d.interactions.items[r] as usize] += 1;
    }
    let mut filled = 0;
    for (i, _) in item_count.iter().enumerate().filter(|(_, &c)| c == 0) {
        let mut best = (f32::NEG_INFINITY, 0usize);
        for _ in 0..16 {
            let u = rng.below(a.users as u64) as usize;
            let s = planted.affinity(u, i);
            if s > best.0 {
                best = (s, u);
            }
        }
        let it = &mut d.interactions;
        it.users.push(best.1 as u32);
        it.items.push(i as u32);
        it.ratings
            .push(planted.expected_rating(best.1, i).round().clamp(1.0, 5.0));
        if let Some(ts) = &mut it.timestamps {
            ts.push(ts.last().copied().unwrap_or(0));
        }
        train.push(it.len() - 1);
        filled += 1;
    }
    println!(
        "split: {} train rows ({filled} added so every item is in training), {} test rows (one per sampled user)",
        train.len(),
        test.len()
    );

    // Retrieval model + its index (`--index`, default auto: IVF at this size).
    let rcfg = RetrievalTrainConfig {
        embedding_dim: 64,
        history: a.history,
        epochs: a.epochs,
        eval_every_epoch: false,
        index: IndexConfig {
            kind: a.index,
            ..IndexConfig::default()
        },
        ..Default::default()
    };
    let t = Instant::now();
    let (model, _) = train_retrieval(&d, &train, &[], &rcfg, |e| {
        println!(
            "retrieval epoch {}: loss {:.4} ({:.1}s)",
            e.epoch, e.train_loss, e.seconds
        );
    })?;
    println!(
        "retrieval trained in {:.1}s: {} users, {} item rows (incl. OOV), dim {}",
        t.elapsed().as_secs_f64(),
        model.num_users(),
        model.num_items(),
        model.dim()
    );
    let rdir = models.join("retrieval").join("1");
    let staging = shortlist_core::atomic::AtomicDir::new(&rdir)?;
    let titles: Vec<String> = (0..model.num_items() as u32)
        .map(|r| {
            model
                .spec
                .item_id
                .value(r)
                .and_then(|raw| d.items.get(raw))
                .map(|i| d.item_title(i).to_owned())
                .unwrap_or_default()
        })
        .collect();
    model.save_into(staging.path(), &titles)?;
    let candidates_vecs = model.all_candidates();
    let t = Instant::now();
    // As `shortlist train` does: an IVF index calibrated with the model's own users.
    let index = AnyIndex::build_with_queries(
        candidates_vecs.clone(),
        model.dim(),
        &rcfg.index,
        Some(&model.all_queries()),
    )?;
    let build_s = t.elapsed().as_secs_f64();
    index.save_dir(staging.path())?;
    std::fs::write(staging.path().join("config.toml"), rcfg.to_toml()?)?;
    shortlist_model::files::seal(staging.path())?;
    staging.commit()?;
    println!(
        "{} index over {} items built in {build_s:.1}s; saved to {}",
        index.kind_name(),
        index.len(),
        rdir.display()
    );

    // Sanity on the sampled users.
    let dim = model.dim();
    let queries_all = model.all_queries();
    let oov: Vec<u32> = (0..model.spec.item_id.num_oov()).collect();
    let mut users = Vec::new(); // (model user row, held-out item row, raw id)
    for &r in &test {
        let raw_u = d.users.raw(d.interactions.users[r]);
        let raw_i = d.items.raw(d.interactions.items[r]);
        if let (Some(u), Some(i)) = (model.spec.user_id.get(raw_u), model.spec.item_id.get(raw_i)) {
            users.push((u, i, raw_u.to_owned()));
        }
    }
    let mut q = Vec::with_capacity(users.len() * dim);
    let mut excl: Vec<Vec<u32>> = Vec::with_capacity(users.len());
    for (u, _, _) in &users {
        let u = *u as usize;
        q.extend_from_slice(&queries_all[u * dim..(u + 1) * dim]);
        let mut e = oov.clone();
        e.extend_from_slice(model.seen_items(u as u32));
        excl.push(e);
    }
    let exact = ExactIndex::new(candidates_vecs, dim)?;
    let t = Instant::now();
    let truth = exact.search_batch(&q, 100, &|j| Filter::Exclude(&excl[j]))?;
    let exact_s = t.elapsed().as_secs_f64();
    drop(exact);
    let mut lat = Vec::with_capacity(users.len());
    let mut approx = Vec::with_capacity(users.len());
    for (j, qv) in q.chunks_exact(dim).enumerate() {
        let t = Instant::now();
        let hits = index.search(qv, 100, &Filter::Exclude(&excl[j]))?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        approx.push(hits);
    }
    lat.sort_by(f64::total_cmp);
    let overlap = |k: usize| -> f64 {
        let mut f = 0;
        for (t, a) in truth.iter().zip(&approx) {
            let t: Vec<u32> = t.iter().take(k).map(|h| h.item).collect();
            f += a.iter().take(k).filter(|h| t.contains(&h.item)).count();
        }
        f as f64 / (truth.len() * k).max(1) as f64
    };
    let mut popular: Vec<u32> = (model.spec.item_id.num_oov()..model.num_items() as u32).collect();
    popular.sort_by_key(|&i| (std::cmp::Reverse(model.popularity[i as usize]), i));
    let (mut hit_model, mut hit_approx, mut hit_pop) = (0, 0, 0);
    for (j, (u, item, _)) in users.iter().enumerate() {
        hit_model += truth[j].iter().any(|h| h.item == *item) as usize;
        hit_approx += approx[j].iter().any(|h| h.item == *item) as usize;
        let seen = model.seen_items(*u);
        hit_pop += popular
            .iter()
            .filter(|i| seen.binary_search(i).is_err())
            .take(100)
            .any(|i| i == item) as usize;
    }
    let nu = users.len().max(1) as f64;
    println!(
        "sanity on {} sampled users: held-out recall@100 model (exact) {:.4}, model ({}) {:.4}, popularity {:.4}",
        users.len(),
        hit_model as f64 / nu,
        index.kind_name(),
        hit_approx as f64 / nu,
        hit_pop as f64 / nu
    );
    println!(
        "{} vs exact (k = 100, seen excluded, default search parameters): overlap@10 {:.4}, overlap@100 {:.4}; approximate p50 {:.0} µs p99 {:.0} µs per query; exact batch {:.0} µs/query (2 threads)",
        index.kind_name(),
        overlap(10),
        overlap(100),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        exact_s * 1e6 / nu
    );

    // Vectors for ann_bench --vectors.
    let vdir = a.out.join("vectors");
    std::fs::create_dir_all(&vdir)?;
    let cands = model.all_candidates();
    write_npy(
        &vdir.join("items.npy"),
        "<f4",
        (model.num_items(), dim),
        &f32_bytes(&cands),
    )?;
    // The sampled users, then as many other random users (ann_bench --calibration).
    let mut rows = q.clone();
    for _ in 0..users.len() {
        let u = rng.below(model.num_users() as u64) as usize;
        rows.extend_from_slice(&queries_all[u * dim..(u + 1) * dim]);
    }
    write_npy(
        &vdir.join("queries.npy"),
        "<f4",
        (rows.len() / dim, dim),
        &f32_bytes(&rows),
    )?;
    drop(cands);
    drop(index);
    drop(model);

    // Ranking model.
    let cfg = TrainConfig {
        embedding_dim: 32,
        hidden: vec![64, 32],
        epochs: 1,
        ..Default::default()
    };
    let t = Instant::now();
    let (ranking, history) = shortlist_train::train_ranking(&d, &train, &test, &cfg)?;
    println!(
        "ranking trained in {:.1}s, test RMSE {:.4}",
        t.elapsed().as_secs_f64(),
        history.final_test.as_ref().map_or(f64::NAN, |m| m.rmse)
    );
    ranking.save(&models.join("ranking").join("1"))?;
    Ok(users.into_iter().map(|u| u.2).collect())
}

/// Candidate recall of the served retrieval: the 100 candidates `retrieve` returns
/// for each sampled user (seen items excluded, through the server's own loader and
/// index) against the exact top-100 under the same exclusions (the OOV rows and the
/// user's seen items).
fn served_recall(dir: &Path, retriever: &dyn CandidateSource, sample: &[String]) -> Res<()> {
    let (model, _) = shortlist_model::RetrievalModel::load(dir)?;
    let dim = model.dim();
    let exact = ExactIndex::new(model.all_candidates(), dim)?;
    let queries = model.all_queries();
    let oov: Vec<u32> = (0..model.spec.item_id.num_oov()).collect();
    let (mut found, mut total, mut users) = (0usize, 0usize, 0usize);
    let index = AnyIndex::load_dir(dir)?.ok_or("no index saved with the retrieval model")?;
    let (mut plain, mut excluding) = (Vec::new(), Vec::new());
    for raw in sample {
        let Some(u) = model.spec.user_id.get(raw) else {
            continue;
        };
        let mut excl = oov.clone();
        excl.extend_from_slice(model.seen_items(u));
        let q = &queries[u as usize * dim..(u as usize + 1) * dim];
        let t = Instant::now();
        index.search(q, 100, &Filter::None)?;
        plain.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        index.search(q, 100, &Filter::Exclude(&excl))?;
        excluding.push(t.elapsed().as_secs_f64() * 1e6);
        let truth: Vec<&str> = exact
            .search(q, 100, &Filter::Exclude(&excl))?
            .iter()
            .filter_map(|h| model.spec.item_id.value(h.item))
            .collect();
        let got = retriever
            .retrieve(&User::id(raw), 100, true, &[])
            .map_err(|e| e.to_string())?;
        found += got
            .candidates
            .iter()
            .filter(|c| truth.contains(&c.item_id))
            .count();
        total += truth.len();
        users += 1;
    }
    println!(
        "served candidate recall@100 (retrieve 100, seen excluded, vs the exact index) over {users} users: {:.4}",
        found as f64 / total.max(1) as f64
    );
    plain.sort_by(f64::total_cmp);
    excluding.sort_by(f64::total_cmp);
    println!(
        "the index alone (k = 100): p50 {:.0} µs p99 {:.0} µs; with the seen items excluded p50 {:.0} µs p99 {:.0} µs",
        pct(&plain, 0.5),
        pct(&plain, 0.99),
        pct(&excluding, 0.5),
        pct(&excluding, 0.99)
    );
    Ok(())
}

/// `--reindex`: rebuilds the saved retrieval model's index as `--index` asks, with
/// this build's default index parameters (not those saved with the model, which may
/// predate them), and records the choice in its `config.toml`.
fn reindex(a: &Args, models: &Path) -> Res<()> {
    let dir = models.join("retrieval").join("1");
    let (model, _) = shortlist_model::RetrievalModel::load(&dir)?;
    let config_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let mut cfg = RetrievalTrainConfig::from_toml(&text, &config_path)?;
    cfg.index = IndexConfig {
        kind: a.index,
        ..IndexConfig::default()
    };
    let t = Instant::now();
    let index = AnyIndex::build_with_queries(
        model.all_candidates(),
        model.dim(),
        &cfg.index,
        Some(&model.all_queries()),
    )?;
    let head = match &index {
        AnyIndex::Ivf(ivf) => format!(" (head {} items)", ivf.head_len()),
        _ => String::new(),
    };
    println!(
        "reindex: {} index{head} over {} items built and calibrated in {:.1}s",
        index.kind_name(),
        index.len(),
        t.elapsed().as_secs_f64()
    );
    index.save_dir(&dir)?;
    shortlist_core::atomic::write_file(&config_path, cfg.to_toml()?.as_bytes())?;
    shortlist_model::files::seal(&dir)?;
    Ok(())
}

fn main() -> Res<()> {
    let a = parse_args()?;
    let models = a.out.join("models");
    if a.reindex {
        reindex(&a, &models)?;
    }
    let sample: Vec<String> = if a.skip_train {
        (0..a.sample_users).map(|u| format!("u{u}")).collect()
    } else {
        build(&a, &models)?
    };

    // The server's loaders, in process.
    let t = Instant::now();
    let Stage::Source(retriever) = load_dir(&models.join("retrieval").join("1"))? else {
        return Err("retrieval/1 is not a candidate source".into());
    };
    let Stage::Ranking(ranker) = load_dir(&models.join("ranking").join("1"))? else {
        return Err("ranking/1 is not a ranking model".into());
    };
    let stages = Stages {
        primary: &retriever,
        extra: &[],
        ranker: Some(&ranker as &dyn Ranker),
    };
    println!(
        "server loaders: both models loaded in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let one = |user: &str| -> Res<usize> {
        let r = recommend(
            &stages,
            &Request {
                user: User::id(user),
                k: 10,
                num_candidates: 100,
                exclude_seen: true,
                exclude_items: &[],
                order: Order::Auto,
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(r.items.len())
    };
    for u in &sample {
        one(u)?; // warm-up
    }
    let mut total = Vec::with_capacity(sample.len());
    let mut retrieval = Vec::with_capacity(sample.len());
    for u in &sample {
        let t = Instant::now();
        retriever
            .retrieve(&User::id(u), 100, true, &[])
            .map_err(|e| e.to_string())?;
        retrieval.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        one(u)?;
        total.push(t.elapsed().as_secs_f64() * 1e6);
    }
    total.sort_by(f64::total_cmp);
    retrieval.sort_by(f64::total_cmp);
    println!(
        "in-process recommend (retrieve 100, seen excluded → rank → top 10) over {} users: p50 {:.0} µs p99 {:.0} µs; retrieval alone p50 {:.0} µs p99 {:.0} µs",
        sample.len(),
        pct(&total, 0.5),
        pct(&total, 0.99),
        pct(&retrieval, 0.5),
        pct(&retrieval, 0.99)
    );

    served_recall(&models.join("retrieval").join("1"), &retriever, &sample)?;

    // Request bodies for oha -Z (random users; a few unknown ones).
    let mut rng = Rng::new(11);
    let mut bodies = String::new();
    for _ in 0..10_000 {
        let u = rng.below(a.users as u64);
        bodies.push_str(&format!(
            "{{\"user_id\": \"u{u}\", \"k\": 10, \"num_candidates\": 100}}\n"
        ));
    }
    let path = a.out.join("bodies.jsonl");
    std::fs::write(&path, bodies).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "wrote {}; peak RSS {:.0} MiB",
        path.display(),
        peak_rss_mib()
    );
    Ok(())
}
