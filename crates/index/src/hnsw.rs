//! [`HnswIndex`]: approximate maximum-inner-product top-K over an HNSW graph (the
//! [usearch](https://github.com/unum-cloud/usearch) C++ core, inner-product metric),
//! behind the same [`TopKIndex`] trait as the exact index.
//!
//! * **MIPS → nearest neighbour** (optional, [`HnswParams::mips_augment`]). Inner
//!   product is not a metric; with the option, items are scaled by `1 / max‖x‖`
//!   and given one extra coordinate `sqrt(1 - ‖x‖²)` (all items then have norm 1, so
//!   inner product ranks them like cosine / L2 while the graph is built), and queries
//!   get a `0` there, so the query–item inner product is still exactly `q·x / max‖x‖`
//!   (Bachrach et al., 2014). The graph then stores `dim + 1` coordinates. On our
//!   benchmark (norms varying 3×) it *lowered* recall, so it is off by default;
//!   without it items are only scaled by `1 / max‖x‖` (ranking unchanged).
//! * **Scores** are inner products. usearch's `IP` metric returns `1 - dot`; the hit
//!   score is `1 - distance` (exact to f32 rounding for `f32` storage; an approximation
//!   of the dot product for `f16` / `i8` storage).
//! * **Filters** ([`Filter`]) run *inside* the graph walk as a predicate (excluded items
//!   are traversed but never returned), so recall holds when many items are excluded.
//!   When few items are admissible (at most [`HnswParams::exact_below`]) the query is an
//!   exact scan over the admissible items instead, and if the graph walk ever returns
//!   fewer than `min(k, admissible)` hits it falls back to that exact scan too, so a
//!   filtered query never returns an excluded item and never comes back short.
//! * **Persistence**: [`save`](HnswIndex::save) writes the usearch file plus a JSON
//!   manifest next to it (`<file>.json`: format, version, shape, build parameters, byte
//!   length and SHA-256 of the index file), each atomically (temporary file + rename).
//!   [`load`](HnswIndex::load) reads it into memory, [`view`](HnswIndex::view)
//!   memory-maps it; both check the manifest, the length, the checksum and the usearch
//!   header *before* the file reaches the C++ side, so a truncated or corrupt file is
//!   an [`Error::Format`] naming the file, never a crash.
//!   [`view_unverified`](HnswIndex::view_unverified) skips only the checksum (fast
//!   start for files this process wrote itself).
//! * **Threads**: usearch keeps one search context per concurrent caller; the index
//!   reserves [`thread_slots`] of them and a small semaphore makes further callers
//!   wait for a free one instead of failing.
//! * Building inserts items in parallel (rayon), so two builds of the same items can
//!   give slightly different graphs (and results); a saved index is deterministic.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, Result};
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::select::{rank_order, TopK};

/// Value of the manifest's `format` key.
pub const MANIFEST_FORMAT: &str = "shortlist.hnsw-index";
/// Manifest version written (and the only one read) by this build.
pub const MANIFEST_VERSION: u32 = 1;

/// How item vectors are stored in the graph (and compared during the walk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// 32-bit floats: exact scores, 4 bytes per dimension.
    #[default]
    F32,
    /// IEEE half precision: 2 bytes per dimension, scores to ~3 significant digits.
    F16,
    /// 8-bit integers after scaling the catalogue to `max |x| = 1`: 1 byte per
    /// dimension, coarse scores (rank by them, do not report them as exact).
    I8,
}

impl Quantization {
    /// The name used in configs and the manifest (`f32`, `f16`, `i8`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::F32 => "f32",
            Quantization::F16 => "f16",
            Quantization::I8 => "i8",
        }
    }

    fn scalar(self) -> ScalarKind {
        match self {
            Quantization::F32 => ScalarKind::F32,
            Quantization::F16 => ScalarKind::F16,
            Quantization::I8 => ScalarKind::I8,
        }
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Quantization {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Quantization::F32),
            "f16" => Ok(Quantization::F16),
            "i8" => Ok(Quantization::I8),
            other => Err(Error::invalid(
                "quantization",
                format!("{other:?} is not one of f32, f16, i8"),
            )),
        }
    }
}

/// Build and search parameters of an [`HnswIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswParams {
    /// Graph connectivity `M` (edges per node on the upper levels; `2M` on the base
    /// level). Higher: better recall, bigger index, slower build. Default 16.
    pub connectivity: usize,
    /// Candidate-list size while inserting (`efConstruction`). Default 128.
    pub expansion_add: usize,
    /// Candidate-list size while searching (`ef`); the walk uses at least `k`.
    /// Changeable after loading ([`HnswIndex::set_expansion_search`]). Default 128.
    pub expansion_search: usize,
    /// Storage of the vectors. Default `f32`.
    pub quantization: Quantization,
    /// A filtered query with at most this many admissible items is answered by an
    /// exact scan over them instead of the graph walk. Default 4096.
    pub exact_below: usize,
    /// Add the MIPS→NN coordinate `sqrt(1 - ‖x‖²)` (see the module docs). Helps when
    /// item norms are similar; hurts badly when they vary a lot (the extra coordinate
    /// dominates), so it is off by default: measure with `shortlist index tune`.
    pub mips_augment: bool,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 128,
            quantization: Quantization::F32,
            exact_below: 4096,
            mips_augment: false,
        }
    }
}

impl HnswParams {
    /// Checks the ranges (connectivity ≥ 2, expansions ≥ 1).
    pub fn validate(&self) -> Result<()> {
        if self.connectivity < 2 {
            return Err(Error::invalid(
                "connectivity",
                format!("must be at least 2, got {}", self.connectivity),
            ));
        }
        if self.expansion_add == 0 {
            return Err(Error::invalid("expansion_add", "must be at least 1"));
        }
        if self.expansion_search == 0 {
            return Err(Error::invalid("expansion_search", "must be at least 1"));
        }
        Ok(())
    }
}

/// The manifest stored next to the index file (`<file>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    items: usize,
    dim: usize,
    params: HnswParams,
    /// Items were multiplied by this (`1 / max‖x‖`) before augmentation.
    scale: f32,
    bytes: u64,
    sha256: String,
    usearch_version: String,
}

/// Path of the manifest of the index file `path`: `path` with `.json` appended.
pub fn manifest_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Number of concurrent searches an index supports without waiting: twice the
/// available parallelism (at least 8), or the rayon pool size if larger.
pub fn thread_slots() -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    (2 * cpus).max(rayon::current_num_threads()).max(8)
}

/// A counting semaphore: at most `slots` callers inside usearch at once.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

struct SlotGuard<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Self {
        Slots {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// Approximate maximum-inner-product top-K over an HNSW graph (see the
/// [module docs](self)).
pub struct HnswIndex {
    index: Index,
    dim: usize,
    n: usize,
    params: HnswParams,
    scale: f32,
    slots: Slots,
}

impl fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dim", &self.dim)
            .field("len", &self.n)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn usearch_err(what: &str, e: impl fmt::Display) -> Error {
    Error::invalid("usearch", format!("{what}: {e}"))
}

fn new_native(dim: usize, params: &HnswParams) -> Result<Index> {
    let options = IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: params.quantization.scalar(),
        connectivity: params.connectivity,
        expansion_add: params.expansion_add,
        expansion_search: params.expansion_search,
        multi: false,
    };
    Index::new(&options).map_err(|e| usearch_err("cannot create the index", e))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A filter made ready for the graph walk: a sorted (deduplicated for allow-lists)
/// list and the number of admissible items.
enum Prepared<'a> {
    All,
    Exclude(Cow<'a, [u32]>),
    Allow(Cow<'a, [u32]>),
}

fn prepare<'a>(filter: &Filter<'a>, n: usize) -> Result<(Prepared<'a>, usize)> {
    let sorted = |l: &[u32]| l.windows(2).all(|w| w[0] <= w[1]);
    let count_in_range = |l: &[u32]| {
        // `l` is sorted: count distinct entries below n.
        let mut c = 0;
        let mut prev = None;
        for &x in l {
            if (x as usize) < n && prev != Some(x) {
                c += 1;
            }
            prev = Some(x);
        }
        c
    };
    Ok(match *filter {
        Filter::None => (Prepared::All, n),
        Filter::ExcludeSorted(list) => {
            if let Some(p) = list.windows(2).position(|w| w[0] > w[1]) {
                return Err(Error::invalid(
                    "filter",
                    format!(
                        "Filter::ExcludeSorted needs an ascending list, but entry {} ({}) > entry {} ({}); use Filter::Exclude for unsorted lists",
                        p, list[p], p + 1, list[p + 1]
                    ),
                ));
            }
            (
                Prepared::Exclude(Cow::Borrowed(list)),
                n - count_in_range(list),
            )
        }
        Filter::Exclude(list) => {
            let list = if sorted(list) {
                Cow::Borrowed(list)
            } else {
                let mut v = list.to_vec();
                v.sort_unstable();
                Cow::Owned(v)
            };
            let c = count_in_range(&list);
            (Prepared::Exclude(list), n - c)
        }
        Filter::AllowOnly(list) => {
            if let Some(&bad) = list.iter().find(|&&i| i as usize >= n) {
                return Err(Error::invalid(
                    "filter",
                    format!("allow-list item {bad} is out of range (the index has {n} items)"),
                ));
            }
            let list = if list.windows(2).all(|w| w[0] < w[1]) {
                Cow::Borrowed(list)
            } else {
                let mut v = list.to_vec();
                v.sort_unstable();
                v.dedup();
                Cow::Owned(v)
            };
            let c = list.len();
            (Prepared::Allow(list), c)
        }
    })
}

impl HnswIndex {
    /// Builds an index over `items` (`n × dim`, row-major), inserting in parallel on
    /// the rayon pool. Errors on `dim = 0`, a length that is not a multiple of `dim`,
    /// more than `u32::MAX` items, a non-finite value (naming the item) or bad params.
    pub fn build(items: &[f32], dim: usize, params: HnswParams) -> Result<Self> {
        params.validate()?;
        let n = crate::index_base::item_count(items.len(), dim)?;
        crate::index_base::check_finite(items, dim)?;
        let max_norm = items
            .chunks_exact(dim)
            .map(|v| dot(v, v))
            .fold(0f32, f32::max)
            .sqrt();
        let scale = if max_norm > 0.0 { 1.0 / max_norm } else { 1.0 };
        let index = new_native(dim + params.mips_augment as usize, &params)?;
        let threads = thread_slots();
        index
            .reserve_capacity_and_threads(n.max(1), threads)
            .map_err(|e| usearch_err("cannot reserve memory", e))?;
        let this = HnswIndex {
            index,
            dim,
            n,
            params,
            scale,
            slots: Slots::new(threads),
        };
        items.par_chunks_exact(dim).enumerate().try_for_each_init(
            || vec![0f32; dim + params.mips_augment as usize],
            |buf, (i, v)| {
                for (b, &x) in buf.iter_mut().zip(v) {
                    *b = x * scale;
                }
                if params.mips_augment {
                    let sq = dot(&buf[..dim], &buf[..dim]);
                    buf[dim] = (1.0 - sq).max(0.0).sqrt();
                }
                let _slot = this.slots.acquire();
                this.index
                    .add(i as u64, &buf[..])
                    .map_err(|e| usearch_err(&format!("cannot insert item {i}"), e))
            },
        )?;
        Ok(this)
    }

    /// The build and search parameters.
    pub fn params(&self) -> &HnswParams {
        &self.params
    }

    /// Changes the search expansion (`ef`): higher is slower and more accurate.
    pub fn set_expansion_search(&mut self, expansion: usize) {
        let expansion = expansion.max(1);
        self.params.expansion_search = expansion;
        self.index.change_expansion_search(expansion);
    }

    /// Changes the admissible-item count at or below which filtered queries scan
    /// exactly (see [`HnswParams::exact_below`]).
    pub fn set_exact_below(&mut self, exact_below: usize) {
        self.params.exact_below = exact_below;
    }

    /// Bytes of memory the index holds (graph and vectors; 0-ish for a view).
    pub fn memory_usage(&self) -> usize {
        self.index.memory_usage()
    }

    /// Size in bytes of the saved index file.
    pub fn serialized_len(&self) -> usize {
        self.index.serialized_length()
    }

    /// Saves the index to `path` and its manifest to [`manifest_path`]`(path)`, each
    /// atomically (temporary file in the same directory + rename). The data file is
    /// renamed first: a crash in between leaves a manifest whose length/checksum no
    /// longer match, which loading reports as an error naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs_err::create_dir_all(&dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(".hnsw-tmp-")
            .tempfile_in(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
            .into_temp_path();
        let tmp_str = tmp.to_str().ok_or_else(|| {
            Error::invalid(
                "path",
                format!(
                    "{} is not valid UTF-8 (usearch needs a UTF-8 path)",
                    path.display()
                ),
            )
        })?;
        self.index
            .save(tmp_str)
            .map_err(|e| usearch_err(&format!("cannot save {}", path.display()), e))?;
        let (bytes, sha256) = hash_file(&tmp)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            items: self.n,
            dim: self.dim,
            params: self.params,
            scale: self.scale,
            bytes,
            sha256,
            usearch_version: usearch::version().to_string(),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| usearch_err("cannot serialise the manifest", e))?;
        tmp.persist(path).map_err(|e| {
            std::io::Error::new(e.error.kind(), format!("{}: {}", path.display(), e.error))
        })?;
        shortlist_core::atomic::write_file(&manifest_path(path), &json)?;
        Ok(())
    }

    /// Loads an index saved by [`save`](Self::save) into memory, after checking the
    /// manifest, the file length, the SHA-256 and the usearch header.
    pub fn load(path: &Path) -> Result<Self> {
        Self::open(path, false, true)
    }

    /// Memory-maps an index saved by [`save`](Self::save) (no copy: the pages are
    /// shared with the OS cache), after the same checks as [`load`](Self::load)
    /// (the checksum reads the file once).
    pub fn view(path: &Path) -> Result<Self> {
        Self::open(path, true, true)
    }

    /// [`view`](Self::view) without the checksum: the manifest, length and header are
    /// still checked, but a file corrupted in the middle is not detected. For files
    /// this deployment wrote and already verified.
    pub fn view_unverified(path: &Path) -> Result<Self> {
        Self::open(path, true, false)
    }

    fn open(path: &Path, mmap: bool, verify: bool) -> Result<Self> {
        let bad = |message: String| Error::Format {
            path: path.to_path_buf(),
            message,
        };
        let mpath = manifest_path(path);
        let mbytes = fs_err::read(&mpath)?;
        let m: Manifest = serde_json::from_slice(&mbytes).map_err(|e| Error::Format {
            path: mpath.clone(),
            message: format!("not a readable index manifest ({e})"),
        })?;
        if m.format != MANIFEST_FORMAT || m.version != MANIFEST_VERSION {
            return Err(Error::Format {
                path: mpath,
                message: format!(
                    "manifest format {:?} version {}; this build reads {MANIFEST_FORMAT:?} version {MANIFEST_VERSION}",
                    m.format, m.version
                ),
            });
        }
        m.params.validate().map_err(|e| Error::Format {
            path: mpath.clone(),
            message: e.to_string(),
        })?;
        let len = fs_err::metadata(path)?.len();
        if len != m.bytes {
            return Err(bad(format!(
                "the file is {len} bytes but its manifest says {} (truncated or replaced?)",
                m.bytes
            )));
        }
        if verify {
            let (_, sha) = hash_file(path)?;
            if sha != m.sha256 {
                return Err(bad(format!(
                    "SHA-256 {sha} does not match the manifest's {} (corrupt file)",
                    m.sha256
                )));
            }
        }
        let path_str = path
            .to_str()
            .ok_or_else(|| bad("path is not valid UTF-8 (usearch needs a UTF-8 path)".into()))?;
        // The header is read by usearch only after the length check above, so it exists.
        let meta = Index::metadata(path_str)
            .map_err(|e| bad(format!("unreadable usearch header ({e})")))?;
        if meta.dimensions as usize != m.dim + m.params.mips_augment as usize
            || meta.count_present as usize != m.items
            || meta.metric != MetricKind::IP
            || meta.quantization != m.params.quantization.scalar()
            || meta.multi
        {
            return Err(bad(format!(
                "usearch header (dim {}, {} items, metric {:?}, scalar {:?}) does not match the manifest (dim {} without augmentation, {} items, IP, {})",
                meta.dimensions,
                meta.count_present,
                meta.metric,
                meta.quantization,
                m.dim,
                m.items,
                m.params.quantization
            )));
        }
        let index = new_native(m.dim + m.params.mips_augment as usize, &m.params)?;
        if mmap {
            index.view(path_str)
        } else {
            index.load(path_str)
        }
        .map_err(|e| bad(format!("usearch cannot open it ({e})")))?;
        if index.size() != m.items || index.dimensions() != m.dim + m.params.mips_augment as usize {
            return Err(bad(format!(
                "opened index has {} items of dim {}, the manifest says {} of dim {} (without augmentation)",
                index.size(),
                index.dimensions(),
                m.items,
                m.dim
            )));
        }
        let threads = thread_slots();
        index
            .reserve_capacity_and_threads(m.items.max(1), threads)
            .map_err(|e| bad(format!("cannot reserve search threads ({e})")))?;
        index.change_expansion_search(m.params.expansion_search);
        Ok(HnswIndex {
            index,
            dim: m.dim,
            n: m.items,
            params: m.params,
            scale: m.scale,
            slots: Slots::new(threads),
        })
    }

    /// Exact top-k over the admissible items (vectors read back from the index).
    fn exact_scan(&self, query: &[f32], k: usize, prep: &Prepared<'_>) -> Result<Vec<Hit>> {
        let mut top = TopK::new(k, self.n);
        let mut buf = vec![0f32; self.dim + self.params.mips_augment as usize];
        let inv = 1.0 / self.scale;
        let mut offer = |item: u32, top: &mut TopK| -> Result<()> {
            self.index
                .get(item as u64, &mut buf)
                .map_err(|e| usearch_err(&format!("cannot read item {item}"), e))?;
            let s = dot(query, &buf[..self.dim]) * inv;
            top.push(Hit {
                item,
                score: if s.is_nan() { f32::NEG_INFINITY } else { s },
            });
            Ok(())
        };
        match prep {
            Prepared::Allow(list) => {
                for &i in list.iter() {
                    offer(i, &mut top)?;
                }
            }
            Prepared::All | Prepared::Exclude(_) => {
                let excl: &[u32] = match prep {
                    Prepared::Exclude(l) => l,
                    _ => &[],
                };
                let mut c = 0;
                for i in 0..self.n as u32 {
                    while c < excl.len() && excl[c] < i {
                        c += 1;
                    }
                    if c < excl.len() && excl[c] == i {
                        continue;
                    }
                    offer(i, &mut top)?;
                }
            }
        }
        Ok(top.into_sorted())
    }

    fn search_one(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        crate::index_base::check_query(query.len(), self.dim)?;
        let (prep, admissible) = prepare(filter, self.n)?;
        if k == 0 || admissible == 0 {
            return Ok(Vec::new());
        }
        let want = k.min(admissible);
        if !matches!(prep, Prepared::All) && admissible <= self.params.exact_below {
            let _slot = self.slots.acquire();
            return self.exact_scan(query, k, &prep);
        }
        // The query gets a 0 in the augmented coordinate; for i8 storage it is also
        // scaled to unit norm (i8 casts clip at |x| = 1).
        let qscale = if self.params.quantization == Quantization::I8 {
            let m = dot(query, query).sqrt();
            if m > 0.0 {
                1.0 / m
            } else {
                1.0
            }
        } else {
            1.0
        };
        let mut q = Vec::with_capacity(self.dim + 1);
        q.extend(query.iter().map(|x| x * qscale));
        if self.params.mips_augment {
            q.push(0.0);
        }
        let _slot = self.slots.acquire();
        let matches = match &prep {
            Prepared::All => self.index.search(&q, want),
            Prepared::Exclude(list) => self.index.filtered_search(&q, want, |key: u64| {
                u32::try_from(key).is_ok_and(|k| list.binary_search(&k).is_err())
            }),
            Prepared::Allow(list) => self.index.filtered_search(&q, want, |key: u64| {
                u32::try_from(key).is_ok_and(|k| list.binary_search(&k).is_ok())
            }),
        }
        .map_err(|e| usearch_err("search failed", e))?;
        if matches.keys.len() < want {
            // The walk ran out of admissible candidates: answer exactly.
            return self.exact_scan(query, k, &prep);
        }
        // usearch's i8 inner product is the integer dot product of `round(127 x)`.
        let unit = if self.params.quantization == Quantization::I8 {
            127.0 * 127.0
        } else {
            1.0
        };
        let inv = 1.0 / (self.scale * qscale * unit);
        let mut hits: Vec<Hit> = matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&key, &d)| {
                let s = (1.0 - d) * inv;
                Hit {
                    item: key as u32,
                    score: if s.is_nan() { f32::NEG_INFINITY } else { s },
                }
            })
            .collect();
        hits.sort_by(rank_order);
        Ok(hits)
    }
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = fs_err::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let r = f.read(&mut buf)?;
        if r == 0 {
            break;
        }
        total += r as u64;
        h.update(&buf[..r]);
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((total, hex))
}

impl TopKIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.n
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.search_one(query, k, filter)
    }

    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        crate::index_base::check_queries(queries.len(), self.dim)?;
        queries
            .par_chunks_exact(self.dim)
            .enumerate()
            .map(|(q, query)| self.search_one(query, k, &filter_of(q)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod probe {
    use super::*;

    /// Per-query cost of the HNSW path at 100k × 64 (run with `cargo test --release -p
    /// shortlist-index hnsw::probe -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing probe"]
    fn hnsw_query_cost() {
        let mut rng = shortlist_core::Rng::new(5);
        let (n, dim, centres) = (100_000, 64, 316);
        let c: Vec<f32> = (0..centres * dim).map(|_| rng.normal() as f32).collect();
        let mut items = Vec::with_capacity(n * dim);
        for i in 0..n {
            let s = 0.5 + rng.next_f32();
            for d in 0..dim {
                items.push((c[(i % centres) * dim + d] + 0.5 * rng.normal() as f32) * s);
            }
        }
        let queries: Vec<f32> = (0..1000 * dim).map(|_| rng.normal() as f32).collect();
        let t = std::time::Instant::now();
        let mut index = HnswIndex::build(&items, dim, HnswParams::default()).unwrap();
        println!("build {:?}", t.elapsed());
        for ef in [16, 64] {
            index.set_expansion_search(ef);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                for q in queries.chunks_exact(dim) {
                    std::hint::black_box(index.search(q, 10, &Filter::None).unwrap());
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("ef {ef}: {:.1} µs/query", best * 1e6 / 1000.0);
        }
    }
}
