//! Benchmark of the approximate indexes (IVF, and HNSW with the `hnsw` feature)
//! against the exact one, writing the vectors, the ground truth and the filters as
//! `.npy` for `bench/ann_peers.py` (faiss, hnswlib), which answers the same queries.
//!
//! ```text
//! cargo build --release -p shortlist-index --features hnsw --example ann_bench
//! target/release/examples/ann_bench --synthetic topics --n 200000 --out target/ann-bench/topics
//! /tmp/pyenv/bin/python bench/ann_peers.py target/ann-bench/topics
//! # trained vectors (written by the serve crate's big_catalogue example):
//! target/release/examples/ann_bench --vectors target/big-catalogue/vectors --out target/ann-bench/1m
//! ```
//!
//! Vector sets:
//! * `--synthetic clustered` (default): `--clusters` Gaussian centres (default √n),
//!   offsets σ 0.5, a per-vector norm factor in [0.5, 1.5].
//! * `--synthetic topics`: item directions from `--topics` topics (default 1000) with
//!   Zipf(0.8) popularity, 30 % of the items mixing in a second topic (weight 0.6),
//!   Gaussian noise of norm ≈ 2 so that topics overlap; log-normal item norms (σ 0.6:
//!   heavy-tailed, the largest of 200k ≈ 13× the median, like popularity-driven
//!   tower norms). Queries follow the same direction model, unit norm.
//! * `--vectors DIR`: `DIR/items.npy` and `DIR/queries.npy` (`<f4`, 2-D).
//!
//! Queries: `--queries` measured ones; with `--calibration N` another N queries of
//! the same kind (for `--vectors`: the rows after the measured ones) re-calibrate the
//! IVF index (never measured), else it keeps its build-time calibration (sampled
//! items). Every search is single-threaded, one `search()` call per query, filter
//! preparation and result sort included; recall is against the exact index.
//!
//! Printed: per method and setting, recall@k and q/s at k = 10, 100, 1000 (`--ks`), by
//! the wall clock and by CPU time (on a shared machine the wall clock also counts the
//! time other processes held the cores);
//! then recall@10 with 10 / 50 / 90 % of the items excluded (one random set per
//! share, the same for every query, passed as an `ItemBitmap` prepared once, as faiss
//! takes its `IDSelectorBitmap`); build time, file size, load time, memory. Writes
//! `ours.json` (every row) for `ann_peers.py`'s side-by-side summary.
//!
//! `--reuse` loads the indexes a previous run saved in `--out` instead of building them
//! (same vectors and build flags assumed; the build time printed is then ~0).
//!
//! IVF settings are recall targets (`--targets`, the adaptive default mode) and, for
//! comparison, fixed probe counts (`--probes`); HNSW settings are `ef` (`--ef`), built
//! with `--m`, `--ef-add` and `--quant f32|f16|i8`.
#![allow(missing_docs)]

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shortlist_index::{
    ExactIndex, Filter, ItemBitmap, IvfIndex, IvfParams, RecallTarget, TopKIndex,
};
#[cfg(feature = "hnsw")]
use shortlist_index::{HnswIndex, HnswParams};

struct Args {
    n: usize,
    dim: usize,
    queries: usize,
    calibration: usize,
    clusters: usize,
    topics: usize,
    synthetic: String,
    vectors: Option<PathBuf>,
    out: PathBuf,
    ks: Vec<usize>,
    methods: Vec<String>,
    ivf: IvfParams,
    targets: Vec<f64>,
    probes: Vec<usize>,
    #[cfg(feature = "hnsw")]
    hnsw: HnswParams,
    efs: Vec<usize>,
    threads_build: Option<usize>,
    filter_queries: usize,
    reuse: bool,
}

/// Errors of this program, already worded for the user.
type Res<T> = Result<T, Box<dyn Error>>;

/// `v` as a `T`, or an error naming the flag.
fn value<T: std::str::FromStr>(flag: &str, v: &str) -> Res<T>
where
    T::Err: std::fmt::Display,
{
    v.parse()
        .map_err(|e| format!("{flag}: cannot parse {v:?}: {e}").into())
}

/// A comma-separated list for `flag`.
fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Res<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    v.split(',').map(|x| value(flag, x)).collect()
}

fn parse() -> Res<Args> {
    let mut a = Args {
        n: 100_000,
        dim: 64,
        queries: 1000,
        calibration: 0,
        clusters: 0,
        topics: 1000,
        synthetic: "clustered".into(),
        vectors: None,
        out: PathBuf::from("target/ann-bench"),
        ks: vec![10, 100, 1000],
        methods: vec!["ivf".into(), "hnsw".into()],
        ivf: IvfParams::default(),
        targets: vec![0.8, 0.9, 0.95, 0.98, 0.99],
        probes: vec![],
        #[cfg(feature = "hnsw")]
        hnsw: HnswParams::default(),
        efs: vec![16, 32, 64, 128, 256, 512, 1024, 2048],
        threads_build: None,
        filter_queries: 200,
        reuse: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        if flag == "--reuse" {
            a.reuse = true;
            i += 1;
            continue;
        }
        let v = argv
            .get(i + 1)
            .ok_or_else(|| format!("{flag}: expected a value after it"))?;
        match flag {
            "--n" => a.n = value(flag, v)?,
            "--dim" => a.dim = value(flag, v)?,
            "--queries" => a.queries = value(flag, v)?,
            "--calibration" => a.calibration = value(flag, v)?,
            "--clusters" => a.clusters = value(flag, v)?,
            "--topics" => a.topics = value(flag, v)?,
            "--synthetic" => {
                if !["clustered", "topics"].contains(&v.as_str()) {
                    return Err(format!("--synthetic: {v:?} is not clustered or topics").into());
                }
                a.synthetic = v.clone();
            }
            "--vectors" => a.vectors = Some(PathBuf::from(v)),
            "--out" => a.out = PathBuf::from(v),
            "--ks" => a.ks = list(flag, v)?,
            "--methods" => {
                a.methods = v.split(',').map(str::to_string).collect();
                if let Some(m) = a
                    .methods
                    .iter()
                    .find(|m| !["hnsw", "ivf"].contains(&m.as_str()))
                {
                    return Err(format!("--methods: {m:?} is not hnsw or ivf").into());
                }
            }
            "--lists" => a.ivf.lists = value(flag, v)?,
            "--spread-weight" => a.ivf.spread_weight = value(flag, v)?,
            "--head-fraction" => a.ivf.head_fraction = value(flag, v)?,
            "--tune-head" => a.ivf.tune_head = value(flag, v)?,
            "--targets" => a.targets = list(flag, v)?,
            "--probes" => a.probes = list(flag, v)?,
            #[cfg(feature = "hnsw")]
            "--m" => a.hnsw.connectivity = value(flag, v)?,
            #[cfg(feature = "hnsw")]
            "--ef-add" => a.hnsw.expansion_add = value(flag, v)?,
            #[cfg(feature = "hnsw")]
            "--quant" => a.hnsw.quantization = value(flag, v)?,
            "--ef" => a.efs = list(flag, v)?,
            "--build-threads" => a.threads_build = Some(value(flag, v)?),
            "--filter-queries" => a.filter_queries = value(flag, v)?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
        i += 2;
    }
    if a.clusters == 0 {
        a.clusters = (a.n as f64).sqrt() as usize;
    }
    if a.targets.iter().any(|t| !(*t > 0.0 && *t <= 1.0)) {
        return Err(format!("--targets: {:?} must be within (0, 1]", a.targets).into());
    }
    if a.ks.is_empty() || a.ks.contains(&0) {
        return Err("--ks: expected positive k values".into());
    }
    Ok(a)
}

/// xorshift64* Gaussian generator (deterministic; the `clustered` set's generator,
/// kept so that its figures stay comparable with earlier runs).
struct Xorshift(u64);
impl Xorshift {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
    fn gauss(&mut self) -> f32 {
        let u = self.uniform().max(1e-7);
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * self.uniform()).cos()
    }
}

/// `n` vectors around `c` centres: centre ~ N(0, I), offset ~ N(0, 0.5² I), and a
/// per-vector norm factor in [0.5, 1.5].
fn clustered(rng: &mut Xorshift, centres: &[f32], n: usize, dim: usize) -> Vec<f32> {
    let c = centres.len() / dim;
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let j = ((rng.uniform() as f64 * c as f64) as usize).min(c - 1);
        let norm = 0.5 + rng.uniform();
        for d in 0..dim {
            out.push(norm * (centres[j * dim + d] + 0.5 * rng.gauss()));
        }
    }
    out
}

/// The `topics` set (see the file header): `(items, queries)`.
fn topics(n: usize, nq: usize, dim: usize, topics: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = shortlist_core::Rng::new(seed);
    let mut centres: Vec<f64> = (0..topics * dim).map(|_| rng.normal()).collect();
    for c in centres.chunks_exact_mut(dim) {
        let norm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        c.iter_mut().for_each(|x| *x /= norm);
    }
    let mut cdf: Vec<f64> = (1..=topics).map(|j| (j as f64).powf(-0.8)).collect();
    for j in 1..topics {
        cdf[j] += cdf[j - 1];
    }
    let total = cdf[topics - 1];
    let draw = |rng: &mut shortlist_core::Rng| {
        let u = rng.next_f64() * total;
        cdf.partition_point(|&c| c < u).min(topics - 1)
    };
    let direction = |rng: &mut shortlist_core::Rng, out: &mut Vec<f32>, norm: f64| {
        let a = draw(rng);
        let mix = rng.next_f64() < 0.3;
        let b = draw(rng);
        let noise = 2.0 / (dim as f64).sqrt();
        let v: Vec<f64> = (0..dim)
            .map(|d| {
                centres[a * dim + d]
                    + if mix { 0.6 * centres[b * dim + d] } else { 0.0 }
                    + noise * rng.normal()
            })
            .collect();
        let len = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        out.extend(v.iter().map(|x| (x / len * norm) as f32));
    };
    let mut items = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let norm = (0.6 * rng.normal()).exp();
        direction(&mut rng, &mut items, norm);
    }
    let mut queries = Vec::with_capacity(nq * dim);
    for _ in 0..nq {
        direction(&mut rng, &mut queries, 1.0);
    }
    (items, queries)
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
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    f.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    f.write_all(&(header.len() as u16).to_le_bytes())
        .map_err(io)?;
    f.write_all(header.as_bytes()).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.flush().map_err(io)?;
    Ok(())
}

/// Reads a 2-D little-endian `<f4` `.npy` file: `(rows, cols, data)`; errors name the
/// file and what is wrong with it.
fn read_npy_f32(path: &Path) -> Res<(usize, usize, Vec<f32>)> {
    let bad = |what: String| -> Box<dyn Error> { format!("{}: {what}", path.display()).into() };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if bytes.len() < 12 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not an .npy file".into()));
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-UTF-8 header".into()))?;
    if !(header.contains("'<f4'") && header.contains("'fortran_order': False")) {
        return Err(bad(format!(
            "expected a C-order <f4 array, header {header}"
        )));
    }
    let dims: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("no shape in header {header}")))?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e| bad(format!("shape entry {s:?}: {e}")))
        })
        .collect::<Res<_>>()?;
    let &[rows, cols] = &dims[..] else {
        return Err(bad(format!("expected a 2-D array, shape {dims:?}")));
    };
    let data: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if data.len() != rows * cols {
        return Err(bad(format!(
            "holds {} floats, shape [{rows}, {cols}] needs {}",
            data.len(),
            rows * cols
        )));
    }
    Ok((rows, cols, data))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32_bytes(rows: &[Vec<u32>], width: usize) -> Vec<u8> {
    rows.iter()
        .flat_map(|r| {
            (0..width).flat_map(move |j| (r.get(j).map_or(-1, |&x| x as i32)).to_le_bytes())
        })
        .collect()
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn recall(truth: &[Vec<u32>], got: &[Vec<u32>], k: usize) -> f64 {
    let (mut found, mut total) = (0, 0);
    for (t, g) in truth.iter().zip(got) {
        let t = &t[..k.min(t.len())];
        total += t.len();
        found += g.iter().take(k).filter(|x| t.contains(x)).count();
    }
    found as f64 / total.max(1) as f64
}

/// CPU time of this process in seconds (all threads; the searches run on one):
/// under load the wall clock also counts the time other processes held the cores.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid `timespec` to write to; the clock id is a constant.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return f64::NAN;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One measured setting, for the table and `ours.json`.
struct Row {
    method: String,
    setting: String,
    /// `"k=10"` or `"excl=50"`.
    task: String,
    recall: f64,
    qps: f64,
    /// Queries per second of CPU time.
    cpu_qps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// An index with one search-time setting.
trait Setting: TopKIndex {
    fn set(&mut self, s: &str) -> Res<()>;
}

impl Setting for IvfIndex {
    fn set(&mut self, s: &str) -> Res<()> {
        match s.split_once('=') {
            Some(("target", t)) => self.set_recall_target(t.parse::<RecallTarget>()?),
            Some(("probes", p)) => self.set_probes(value("probes", p)?),
            _ => return Err(format!("bad IVF setting {s:?}").into()),
        }
        Ok(())
    }
}

#[cfg(feature = "hnsw")]
impl Setting for HnswIndex {
    fn set(&mut self, s: &str) -> Res<()> {
        match s.split_once('=') {
            Some(("ef", v)) => self.set_expansion_search(value("ef", v)?),
            _ => return Err(format!("bad HNSW setting {s:?}").into()),
        }
        Ok(())
    }
}

/// Queries, ground truth and filtered cases shared by every method.
struct Bench {
    queries: Vec<f32>,
    dim: usize,
    /// Exact top-max(ks) per query.
    truth: Vec<Vec<u32>>,
    ks: Vec<usize>,
    /// `(percent excluded, admissible items, filtered exact top-10)`.
    filters: Vec<(usize, ItemBitmap, Vec<Vec<u32>>)>,
    filter_queries: usize,
    rows: Vec<Row>,
}

impl Bench {
    /// Times `filter`ed searches of the first `nq` queries at `k`: (ids, q/s, q/s of
    /// CPU time, p50, p99).
    fn run(&self, index: &dyn TopKIndex, nq: usize, k: usize, filter: &Filter<'_>) -> Res<Timed> {
        let qs = &self.queries[..nq * self.dim];
        for q in qs.chunks_exact(self.dim).take(50) {
            std::hint::black_box(index.search(q, k, filter)?);
        }
        let mut got = Vec::with_capacity(nq);
        let mut lat = Vec::with_capacity(nq);
        let cpu = cpu_seconds();
        let t = Instant::now();
        for q in qs.chunks_exact(self.dim) {
            let t1 = Instant::now();
            let hits = index.search(q, k, filter)?;
            lat.push(t1.elapsed().as_secs_f64() * 1e6);
            got.push(hits.into_iter().map(|h| h.item).collect::<Vec<_>>());
        }
        let qps = nq as f64 / t.elapsed().as_secs_f64();
        let cpu_qps = nq as f64 / (cpu_seconds() - cpu);
        lat.sort_by(f64::total_cmp);
        Ok((
            got,
            qps,
            cpu_qps,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
        ))
    }

    /// Every k, then every filter, for each setting.
    fn measure(
        &mut self,
        index: &mut dyn Setting,
        method: &str,
        settings: &[String],
        min_k: impl Fn(&str) -> usize,
    ) -> Res<()> {
        let nq = self.truth.len();
        for s in settings {
            index.set(s)?;
            for &k in &self.ks.clone() {
                if min_k(s) < k {
                    continue;
                }
                let (got, qps, cpu_qps, p50, p99) = self.run(index, nq, k, &Filter::None)?;
                let r = recall(&self.truth, &got, k);
                self.push(method, s, format!("k={k}"), r, (qps, cpu_qps, p50, p99));
            }
            for f in 0..self.filters.len() {
                let (pct, bitmap, truth) = &self.filters[f];
                let (got, qps, cpu_qps, p50, p99) =
                    self.run(index, self.filter_queries, 10, &Filter::AllowBitmap(bitmap))?;
                if let Some(x) = got.iter().flatten().find(|&&x| !bitmap.contains(x)) {
                    return Err(format!("{method} {s}: returned excluded item {x}").into());
                }
                let r = recall(truth, &got, 10);
                self.push(
                    method,
                    s,
                    format!("excl={pct}"),
                    r,
                    (qps, cpu_qps, p50, p99),
                );
            }
        }
        Ok(())
    }

    /// Prints and keeps one row; `t` is (q/s, q/s of CPU time, p50 µs, p99 µs).
    fn push(
        &mut self,
        method: &str,
        setting: &str,
        task: String,
        recall: f64,
        t: (f64, f64, f64, f64),
    ) {
        let (qps, cpu_qps, p50, p99) = t;
        println!(
            "| {method} | {setting} | {task} | {recall:.4} | {qps:.0} | {cpu_qps:.0} | {p50:.0} | {p99:.0} |"
        );
        self.rows.push(Row {
            method: method.into(),
            setting: setting.into(),
            task,
            recall,
            qps,
            cpu_qps,
            p50_us: p50,
            p99_us: p99,
        });
    }
}

/// What [`Bench::run`] measures: answers, q/s, q/s of CPU time, p50 µs, p99 µs.
type Timed = (Vec<Vec<u32>>, f64, f64, f64, f64);

/// The vectors: items, measured queries, calibration queries, description.
type Vectors = (Vec<f32>, Vec<f32>, Vec<f32>, String);

/// The vector set the flags ask for.
fn vectors(a: &mut Args) -> Res<Vectors> {
    let total = a.queries + a.calibration;
    if let Some(dir) = &a.vectors {
        let (n, dim, items) = read_npy_f32(&dir.join("items.npy"))?;
        let (nq, qdim, mut queries) = read_npy_f32(&dir.join("queries.npy"))?;
        if qdim != dim {
            return Err(format!(
                "{}: queries.npy has {qdim} columns, items.npy {dim}",
                dir.display()
            )
            .into());
        }
        if nq < total {
            return Err(format!(
                "{}: queries.npy has {nq} rows, --queries {} + --calibration {} need {total}",
                dir.display(),
                a.queries,
                a.calibration
            )
            .into());
        }
        (a.n, a.dim) = (n, dim);
        queries.truncate(total * dim);
        let calib = queries.split_off(a.queries * dim);
        return Ok((
            items,
            queries,
            calib,
            format!("vectors from {}", dir.display()),
        ));
    }
    let (items, mut queries, what) = if a.synthetic == "topics" {
        let (i, q) = topics(a.n, total, a.dim, a.topics, 0x7091C);
        (
            i,
            q,
            format!("topics: {} topics, log-normal norms", a.topics),
        )
    } else {
        let mut rng = Xorshift(0x5EED);
        let centres: Vec<f32> = (0..a.clusters * a.dim).map(|_| rng.gauss()).collect();
        let items = clustered(&mut rng, &centres, a.n, a.dim);
        let queries = clustered(&mut rng, &centres, total, a.dim);
        (
            items,
            queries,
            format!("clustered Gaussians, {} clusters", a.clusters),
        )
    };
    let calib = queries.split_off(a.queries * a.dim);
    Ok((items, queries, calib, what))
}

fn main() -> Res<()> {
    let mut a = parse()?;
    if let Some(t) = a.threads_build {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    std::fs::create_dir_all(&a.out)?;
    let (items, queries, calib, source) = vectors(&mut a)?;
    let (n, dim) = (a.n, a.dim);
    write_npy(
        &a.out.join("items.npy"),
        "<f4",
        (n, dim),
        &f32_bytes(&items),
    )?;
    write_npy(
        &a.out.join("queries.npy"),
        "<f4",
        (a.queries, dim),
        &f32_bytes(&queries),
    )?;

    // Ground truth from the exact index (batched, all threads).
    let kmax = *a.ks.iter().max().unwrap_or(&10);
    let exact = ExactIndex::new(items.clone(), dim)?;
    let t = Instant::now();
    let truth: Vec<Vec<u32>> = exact
        .search_batch(&queries, kmax, &|_| Filter::None)?
        .into_iter()
        .map(|h| h.into_iter().map(|x| x.item).collect())
        .collect();
    let gt_s = t.elapsed().as_secs_f64();
    write_npy(
        &a.out.join("gt.npy"),
        "<i4",
        (a.queries, kmax),
        &i32_bytes(&truth, kmax),
    )?;
    // The exact index one query at a time (top 10): passes over the first 200 queries
    // (every query on small sets, where one pass is a fraction of a millisecond),
    // repeated for at least 0.2 s after one warm-up pass; the median pass.
    let nq_exact = a.queries.min(200);
    let mut passes = Vec::new();
    let started = Instant::now();
    while passes.len() < 6 || started.elapsed().as_secs_f64() < 0.2 {
        let t = Instant::now();
        for q in queries.chunks_exact(dim).take(nq_exact) {
            std::hint::black_box(exact.search(q, 10, &Filter::None)?);
        }
        passes.push(t.elapsed().as_secs_f64());
        if passes.len() >= 1001 {
            break;
        }
    }
    let mut timed = passes.split_off(1);
    timed.sort_by(f64::total_cmp);
    let exact_qps = nq_exact as f64 / timed[timed.len() / 2];
    println!(
        "# n={n} dim={dim} queries={} calibration queries={} ({source}) threads={} | ground truth {gt_s:.2}s | exact single-thread {exact_qps:.0} q/s",
        a.queries,
        a.calibration,
        rayon::current_num_threads()
    );

    // Filtered queries: 10 / 50 / 90 % of the items excluded (one random set each,
    // the same for every query), with the filtered ground truth; written for the peers.
    let nq_f = a.queries.min(a.filter_queries);
    let mut filters = Vec::new();
    for pct in [10usize, 50, 90] {
        let mut r = Xorshift(77 + pct as u64);
        let excl: Vec<u32> = (0..n as u32)
            .filter(|_| r.uniform() < pct as f32 / 100.0)
            .collect();
        let bitmap = ItemBitmap::excluding(n, &excl);
        let ftruth: Vec<Vec<u32>> = exact
            .search_batch(&queries[..nq_f * dim], 10, &|_| {
                Filter::AllowBitmap(&bitmap)
            })?
            .into_iter()
            .map(|h| h.into_iter().map(|x| x.item).collect())
            .collect();
        let mask: Vec<u8> = (0..n as u32)
            .map(|i| u8::from(!bitmap.contains(i)))
            .collect();
        write_npy(&a.out.join(format!("excl{pct}.npy")), "|u1", (1, n), &mask)?;
        write_npy(
            &a.out.join(format!("gt_excl{pct}.npy")),
            "<i4",
            (nq_f, 10),
            &i32_bytes(&ftruth, 10),
        )?;
        filters.push((pct, bitmap, ftruth));
    }
    drop(exact);
    let mut bench = Bench {
        queries,
        dim,
        truth,
        ks: a.ks.clone(),
        filters,
        filter_queries: nq_f,
        rows: Vec::new(),
    };
    println!("| method | setting | task | recall | q/s | q/s of CPU time | p50 µs | p99 µs |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");

    if a.methods.iter().any(|m| m == "ivf") {
        let rss_before = peak_rss_mib();
        let path = a.out.join("index.ivf.safetensors");
        let t = Instant::now();
        if !(a.reuse && path.exists()) {
            let calib = (!calib.is_empty()).then_some(&calib[..]);
            IvfIndex::build_with_queries(&items, dim, a.ivf, calib)?.save(&path)?;
        }
        let build_s = t.elapsed().as_secs_f64();
        let rss_build = peak_rss_mib();
        let size_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
        let t = Instant::now();
        let mut index = IvfIndex::load(&path)?;
        let sizes = index.list_sizes();
        let load_s = t.elapsed().as_secs_f64();
        println!(
            "# IVF lists={} (largest {} items), head {}: build+save {build_s:.1}s (calibrated with {}) | file {size_mib:.1} MiB | load {load_s:.2}s | index memory {:.1} MiB | peak RSS before build {rss_before:.0} MiB, after {rss_build:.0} MiB",
            index.lists(),
            sizes.iter().max().unwrap_or(&0),
            index.head_len(),
            if calib.is_empty() {
                "sampled items".to_string()
            } else {
                format!("{} held-out queries", calib.len() / dim)
            },
            index.memory_bytes() as f64 / (1 << 20) as f64
        );
        let mut settings: Vec<String> = a.targets.iter().map(|t| format!("target={t}")).collect();
        settings.extend(a.probes.iter().map(|p| format!("probes={p}")));
        bench.measure(&mut index, "shortlist-ivf", &settings, |_| usize::MAX)?;
    }
    #[cfg(feature = "hnsw")]
    if a.methods.iter().any(|m| m == "hnsw") {
        let path = a.out.join(format!(
            "index-m{}-{}.hnsw",
            a.hnsw.connectivity, a.hnsw.quantization
        ));
        let t = Instant::now();
        if !(a.reuse && path.exists()) {
            HnswIndex::build(&items, dim, a.hnsw)?.save(&path)?;
        }
        let build_s = t.elapsed().as_secs_f64();
        let size_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
        let t = Instant::now();
        let mut index = HnswIndex::load(&path)?;
        let load_s = t.elapsed().as_secs_f64();
        println!(
            "# HNSW M={} ef_add={} {}: build+save {build_s:.1}s | file {size_mib:.1} MiB | load {load_s:.2}s | memory (usearch) {:.1} MiB",
            a.hnsw.connectivity,
            a.hnsw.expansion_add,
            a.hnsw.quantization,
            index.memory_usage() as f64 / (1 << 20) as f64
        );
        let settings: Vec<String> = a.efs.iter().map(|e| format!("ef={e}")).collect();
        // The walk uses max(ef, k): a setting is measured at the k it can serve.
        let name = format!("shortlist-hnsw-{}", a.hnsw.quantization);
        bench.measure(&mut index, &name, &settings, |s| {
            s.trim_start_matches("ef=").parse().unwrap_or(0)
        })?;
    }
    #[cfg(not(feature = "hnsw"))]
    if a.methods.iter().any(|m| m == "hnsw") {
        println!("# HNSW skipped: build with --features hnsw");
    }
    let json: Vec<String> = bench
        .rows
        .iter()
        .map(|r| {
            format!(
                "{{\"library\": \"{}\", \"setting\": \"{}\", \"task\": \"{}\", \"recall\": {:.6}, \"qps\": {:.1}, \"cpu_qps\": {:.1}, \"p50_us\": {:.1}, \"p99_us\": {:.1}}}",
                r.method, r.setting, r.task, r.recall, r.qps, r.cpu_qps, r.p50_us, r.p99_us
            )
        })
        .collect();
    let path = a.out.join("ours.json");
    std::fs::write(&path, format!("[\n{}\n]\n", json.join(",\n")))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "# peak RSS {:.0} MiB; rows in {}",
        peak_rss_mib(),
        path.display()
    );
    Ok(())
}
