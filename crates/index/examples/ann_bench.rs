//! Benchmark of the approximate indexes (IVF and HNSW) against the exact one, writing
//! the vectors and the ground truth as `.npy` for `bench/ann_peers.py` (faiss, hnswlib).
//!
//! Vectors: by default synthetic clustered Gaussians drawn directly (not a trained
//! model); with `--vectors DIR`, `DIR/items.npy` and `DIR/queries.npy` (`<f4`, 2-D),
//! e.g. the candidate and query vectors of a trained model written by the serve
//! crate's `big_catalogue` example (`--queries` then caps the number of queries).
//!
//! ```text
//! cargo run --release -p shortlist-index --example ann_bench -- \
//!     --n 100000 --dim 64 --queries 1000 --out target/ann-bench/100k
//! python3 bench/ann_peers.py target/ann-bench/100k
//! # trained vectors:
//! cargo run --release -p shortlist-index --example ann_bench -- \
//!     --vectors target/big-catalogue/vectors --out target/ann-bench/1m-trained
//! python3 bench/ann_peers.py target/ann-bench/1m-trained
//! ```
//!
//! `--methods ivf,hnsw` picks the methods (default both); `--probes` / `--ef` their
//! search knobs, `--lists` the IVF lists (default `4 √n`).
//!
//! Prints, per knob value: recall@10 / recall@100 against the exact index and
//! single-threaded queries/second (one query at a time on the calling thread), plus
//! build time, file size, load/view time, the index's own memory and peak RSS; then
//! filtered recall@10 with 10 / 50 / 90 % of the items excluded (the exclusion masks
//! and filtered ground truth are written too, `excl{P}.npy` / `gt_excl{P}.npy`, so the
//! peers answer the same filtered queries).
#![allow(missing_docs)]

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shortlist_index::{ExactIndex, Filter, HnswIndex, HnswParams, IvfIndex, IvfParams, TopKIndex};

struct Args {
    n: usize,
    dim: usize,
    queries: usize,
    clusters: usize,
    out: PathBuf,
    params: HnswParams,
    efs: Vec<usize>,
    threads_build: Option<usize>,
    vectors: Option<PathBuf>,
    filter_efs: Vec<usize>,
    methods: Vec<String>,
    ivf: IvfParams,
    probes: Vec<usize>,
    filter_probes: Vec<usize>,
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
fn list(flag: &str, v: &str) -> Res<Vec<usize>> {
    v.split(',').map(|x| value(flag, x)).collect()
}

fn parse() -> Res<Args> {
    let mut a = Args {
        n: 100_000,
        dim: 64,
        queries: 1000,
        clusters: 0,
        out: PathBuf::from("target/ann-bench"),
        params: HnswParams::default(),
        efs: vec![16, 32, 64, 128, 256],
        threads_build: None,
        vectors: None,
        filter_efs: vec![64, 128],
        methods: vec!["hnsw".into(), "ivf".into()],
        ivf: IvfParams::default(),
        probes: vec![4, 8, 16, 32, 64, 128, 256],
        filter_probes: vec![16, 64],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let v = argv
            .get(i + 1)
            .ok_or_else(|| format!("{flag}: expected a value after it"))?;
        match flag {
            "--n" => a.n = value(flag, v)?,
            "--dim" => a.dim = value(flag, v)?,
            "--queries" => a.queries = value(flag, v)?,
            "--clusters" => a.clusters = value(flag, v)?,
            "--out" => a.out = PathBuf::from(v),
            "--m" => a.params.connectivity = value(flag, v)?,
            "--ef-add" => a.params.expansion_add = value(flag, v)?,
            "--augment" => a.params.mips_augment = value(flag, v)?,
            "--quant" => a.params.quantization = value(flag, v)?,
            "--ef" => a.efs = list(flag, v)?,
            "--build-threads" => a.threads_build = Some(value(flag, v)?),
            "--vectors" => a.vectors = Some(PathBuf::from(v)),
            "--filter-ef" => a.filter_efs = list(flag, v)?,
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
            "--probes" => a.probes = list(flag, v)?,
            "--filter-probes" => a.filter_probes = list(flag, v)?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
        i += 2;
    }
    if a.clusters == 0 {
        a.clusters = (a.n as f64).sqrt() as usize;
    }
    Ok(a)
}

/// xorshift64* Gaussian generator (deterministic).
struct Rng(u64);
impl Rng {
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
/// per-vector norm factor in [0.5, 1.5] (popularity-like norms, which make MIPS harder
/// than cosine).
fn clustered(rng: &mut Rng, centres: &[f32], n: usize, dim: usize) -> Vec<f32> {
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

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn recall(truth: &[Vec<u32>], got: &[Vec<u32>], k: usize) -> f64 {
    let mut f = 0;
    for (t, g) in truth.iter().zip(got) {
        let t = &t[..k.min(t.len())];
        f += g.iter().take(k).filter(|x| t.contains(x)).count();
    }
    f as f64 / (truth.len() * k) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// An index with one search-time knob (HNSW `ef`, IVF `probes`).
trait Knob: TopKIndex {
    fn set_knob(&mut self, v: usize);
}

impl Knob for HnswIndex {
    fn set_knob(&mut self, v: usize) {
        self.set_expansion_search(v);
    }
}

impl Knob for IvfIndex {
    fn set_knob(&mut self, v: usize) {
        self.set_probes(v);
    }
}

/// A filtered case: percent excluded, the excluded items, the filtered ground truth.
type FilterCase = (usize, Vec<u32>, Vec<Vec<u32>>);

/// Queries, ground truth and filtered cases shared by every method.
struct Bench<'a> {
    queries: &'a [f32],
    dim: usize,
    truth: &'a [Vec<u32>],
    filters: &'a [FilterCase],
    filter_queries: usize,
}

impl Bench<'_> {
    /// Recall@10 / @100 and single-threaded q/s for each knob value.
    fn sweep(&self, index: &mut dyn Knob, name: &str, knobs: &[usize]) -> Res<()> {
        println!("| {name} | recall@10 | q/s @10 | p50 µs @10 | recall@100 | q/s @100 |");
        println!("|---:|---:|---:|---:|---:|---:|");
        let nq = self.truth.len();
        for &v in knobs {
            index.set_knob(v);
            let mut row = Vec::new();
            for k in [10usize, 100] {
                // Warm-up pass, then a timed pass, single-threaded.
                let mut got = Vec::with_capacity(nq);
                let mut lat = Vec::with_capacity(nq);
                for q in self.queries.chunks_exact(self.dim).take(100) {
                    std::hint::black_box(index.search(q, k, &Filter::None)?);
                }
                let t = Instant::now();
                for q in self.queries.chunks_exact(self.dim) {
                    let t1 = Instant::now();
                    let hits = index.search(q, k, &Filter::None)?;
                    lat.push(t1.elapsed().as_secs_f64() * 1e6);
                    got.push(hits.into_iter().map(|h| h.item).collect::<Vec<_>>());
                }
                let qps = nq as f64 / t.elapsed().as_secs_f64();
                row.push((recall(self.truth, &got, k), qps, median(lat)));
            }
            println!(
                "| {v} | {:.4} | {:.0} | {:.0} | {:.4} | {:.0} |",
                row[0].0, row[0].1, row[0].2, row[1].0, row[1].1
            );
        }
        Ok(())
    }

    /// Filtered recall@10 and q/s with 10 / 50 / 90 % of the items excluded.
    fn filtered(&self, index: &mut dyn Knob, name: &str, knobs: &[usize]) -> Res<()> {
        let qs = &self.queries[..self.filter_queries * self.dim];
        for (pct, excl, truth) in self.filters {
            for &v in knobs {
                index.set_knob(v);
                let t = Instant::now();
                let mut got = Vec::new();
                for q in qs.chunks_exact(self.dim) {
                    let hits = index.search(q, 10, &Filter::ExcludeSorted(excl))?;
                    if let Some(h) = hits.iter().find(|h| excl.binary_search(&h.item).is_ok()) {
                        return Err(format!("{name}={v}: returned excluded item {}", h.item).into());
                    }
                    got.push(hits.into_iter().map(|h| h.item).collect::<Vec<_>>());
                }
                let qps = self.filter_queries as f64 / t.elapsed().as_secs_f64();
                println!(
                    "# filtered {name}={v}, {pct}% excluded: recall@10 {:.4}, {qps:.0} q/s",
                    recall(truth, &got, 10)
                );
            }
        }
        Ok(())
    }
}

fn main() -> Res<()> {
    let a = parse()?;
    if let Some(t) = a.threads_build {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
    }
    std::fs::create_dir_all(&a.out)?;
    let mut a = a;
    let (items, queries, source) = if let Some(dir) = &a.vectors {
        let (n, dim, items) = read_npy_f32(&dir.join("items.npy"))?;
        let (nq, qdim, mut queries) = read_npy_f32(&dir.join("queries.npy"))?;
        if qdim != dim {
            return Err(format!(
                "{}: queries.npy has {qdim} columns, items.npy {dim}",
                dir.display()
            )
            .into());
        }
        a.n = n;
        a.dim = dim;
        a.queries = a.queries.min(nq);
        queries.truncate(a.queries * dim);
        (items, queries, format!("vectors from {}", dir.display()))
    } else {
        let mut rng = Rng(0x5EED);
        let centres: Vec<f32> = (0..a.clusters * a.dim).map(|_| rng.gauss()).collect();
        let items = clustered(&mut rng, &centres, a.n, a.dim);
        let queries = clustered(&mut rng, &centres, a.queries, a.dim);
        (
            items,
            queries,
            format!("clustered Gaussians, {} clusters", a.clusters),
        )
    };
    let dim = a.dim;
    write_npy(
        &a.out.join("items.npy"),
        "<f4",
        (a.n, dim),
        &f32_bytes(&items),
    )?;
    write_npy(
        &a.out.join("queries.npy"),
        "<f4",
        (a.queries, dim),
        &f32_bytes(&queries),
    )?;

    // Ground truth (k = 100) from the exact index; also its single-thread latency.
    let exact = ExactIndex::new(items.clone(), dim)?;
    let t = Instant::now();
    let truth: Vec<Vec<u32>> = exact
        .search_batch(&queries, 100, &|_| Filter::None)?
        .into_iter()
        .map(|h| h.into_iter().map(|x| x.item).collect())
        .collect();
    let gt_s = t.elapsed().as_secs_f64();
    let gt_flat: Vec<u8> = truth
        .iter()
        .flat_map(|r| r.iter().flat_map(|&x| (x as i32).to_le_bytes()))
        .collect();
    write_npy(&a.out.join("gt.npy"), "<i4", (a.queries, 100), &gt_flat)?;
    let nq_exact = a.queries.min(200);
    let t = Instant::now();
    for q in queries.chunks_exact(dim).take(nq_exact) {
        std::hint::black_box(exact.search(q, 10, &Filter::None)?);
    }
    let exact_qps = nq_exact as f64 / t.elapsed().as_secs_f64();
    println!(
        "# n={} dim={dim} queries={} ({source}) threads={} | ground truth (batch GEMM) {gt_s:.2}s | exact single-thread {exact_qps:.0} q/s",
        a.n,
        a.queries,
        rayon::current_num_threads()
    );

    // Filtered queries: exclude 10% / 50% / 90% of items (same list for every query),
    // with the filtered ground truth; written for the peers too.
    let nq_f = a.queries.min(200);
    let mut filters = Vec::new();
    for frac in [0.1, 0.5, 0.9] {
        let mut r = Rng(77);
        let excl: Vec<u32> = (0..a.n as u32).filter(|_| r.uniform() < frac).collect();
        let truth: Vec<Vec<u32>> = exact
            .search_batch(&queries[..nq_f * dim], 10, &|_| {
                Filter::ExcludeSorted(&excl)
            })?
            .into_iter()
            .map(|h| h.into_iter().map(|x| x.item).collect())
            .collect();
        let pct = (frac * 100.0).round() as usize;
        let mut mask = vec![0u8; a.n];
        for &i in &excl {
            mask[i as usize] = 1;
        }
        write_npy(
            &a.out.join(format!("excl{pct}.npy")),
            "|u1",
            (1, a.n),
            &mask,
        )?;
        let gt_flat: Vec<u8> = truth
            .iter()
            .flat_map(|r| r.iter().flat_map(|&x| (x as i32).to_le_bytes()))
            .collect();
        write_npy(
            &a.out.join(format!("gt_excl{pct}.npy")),
            "<i4",
            (nq_f, 10),
            &gt_flat,
        )?;
        filters.push((pct, excl, truth));
    }
    drop(exact);
    let bench = Bench {
        queries: &queries,
        dim,
        truth: &truth,
        filters: &filters,
        filter_queries: nq_f,
    };

    if a.methods.iter().any(|m| m == "hnsw") {
        let rss_before = peak_rss_mib();
        let t = Instant::now();
        let index = HnswIndex::build(&items, dim, a.params)?;
        let build_s = t.elapsed().as_secs_f64();
        let rss_build = peak_rss_mib();
        let path = a.out.join(format!(
            "index-m{}-{}.hnsw",
            a.params.connectivity, a.params.quantization
        ));
        let t = Instant::now();
        index.save(&path)?;
        let save_s = t.elapsed().as_secs_f64();
        let size_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
        drop(index);
        let t = Instant::now();
        let loaded = HnswIndex::load(&path)?;
        let load_s = t.elapsed().as_secs_f64();
        drop(loaded);
        let t = Instant::now();
        let _viewed_unverified = HnswIndex::view_unverified(&path)?;
        let view_unverified_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut index = HnswIndex::view(&path)?;
        let view_s = t.elapsed().as_secs_f64();
        println!(
            "# HNSW build M={} ef_add={} {}: {build_s:.1}s | save {save_s:.2}s | file {size_mib:.1} MiB | load {load_s:.2}s | view {view_s:.2}s (unverified {:.4}s) | index memory (usearch) {:.1} MiB | peak RSS before build {rss_before:.0} MiB, after {rss_build:.0} MiB",
            a.params.connectivity,
            a.params.expansion_add,
            a.params.quantization,
            view_unverified_s,
            index.memory_usage() as f64 / (1 << 20) as f64
        );
        bench.sweep(&mut index, "ef", &a.efs)?;
        bench.filtered(&mut index, "ef", &a.filter_efs)?;
    }
    if a.methods.iter().any(|m| m == "ivf") {
        let rss_before = peak_rss_mib();
        let t = Instant::now();
        let index = IvfIndex::build(&items, dim, a.ivf)?;
        let build_s = t.elapsed().as_secs_f64();
        let rss_build = peak_rss_mib();
        let path = a.out.join("index.ivf.safetensors");
        let t = Instant::now();
        index.save(&path)?;
        let save_s = t.elapsed().as_secs_f64();
        let size_mib = std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64;
        let sizes = index.list_sizes();
        drop(index);
        let t = Instant::now();
        let mut index = IvfIndex::load(&path)?;
        let load_s = t.elapsed().as_secs_f64();
        println!(
            "# IVF build lists={} (largest {} items): {build_s:.1}s | save {save_s:.2}s | file {size_mib:.1} MiB | load {load_s:.2}s | index memory {:.1} MiB | peak RSS before build {rss_before:.0} MiB, after {rss_build:.0} MiB",
            index.lists(),
            sizes.iter().max().unwrap_or(&0),
            index.memory_bytes() as f64 / (1 << 20) as f64
        );
        bench.sweep(&mut index, "probes", &a.probes)?;
        bench.filtered(&mut index, "probes", &a.filter_probes)?;
    }
    println!("# peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}
