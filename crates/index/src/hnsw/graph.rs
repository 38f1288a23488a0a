//! [`HnswIndex`] over usearch (see the [module docs](super)).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::{HnswParams, Quantization};
use crate::bitmap::ItemBitmap;
use crate::error::{Error, Result};
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::select::{rank_order, TopK};

/// Value of the manifest's `format` key.
pub const MANIFEST_FORMAT: &str = "shortlist.hnsw-index";
/// Manifest version written (and the only one read) by this build.
pub const MANIFEST_VERSION: u32 = 1;

fn scalar(q: Quantization) -> ScalarKind {
    match q {
        Quantization::F32 => ScalarKind::F32,
        Quantization::F16 => ScalarKind::F16,
        Quantization::I8 => ScalarKind::I8,
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
/// [module docs](crate::hnsw)).
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
        quantization: scalar(params.quantization),
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
    Bitmap(&'a ItemBitmap),
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
        Filter::AllowBitmap(b) => {
            if b.universe() != n {
                return Err(Error::invalid(
                    "filter",
                    format!(
                        "the bitmap covers {} items, the index has {n}",
                        b.universe()
                    ),
                ));
            }
            (Prepared::Bitmap(b), b.count())
        }
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
        let mut bytes = vec![0u8; self.index.serialized_length()];
        self.index
            .save_to_buffer(&mut bytes)
            .map_err(|e| usearch_err(&format!("cannot save {}", path.display()), e))?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            items: self.n,
            dim: self.dim,
            params: self.params,
            scale: self.scale,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            usearch_version: usearch::version().to_string(),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| usearch_err("cannot serialise the manifest", e))?;
        shortlist_core::atomic::write_file(path, &bytes)?;
        shortlist_core::atomic::write_file(&manifest_path(path), &json)?;
        Ok(())
    }

    /// Loads an index saved by [`save`](Self::save) into memory: the file is read
    /// once, and the manifest, its length, its SHA-256 and the usearch header are
    /// checked on those bytes before usearch copies them. Nothing stays mapped or
    /// open, so the file may be replaced, rewritten or truncated afterwards without
    /// affecting the loaded index.
    pub fn load(path: &Path) -> Result<Self> {
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
        let bytes = fs_err::read(path)?;
        if bytes.len() as u64 != m.bytes {
            return Err(bad(format!(
                "read {} bytes but its manifest says {} (changed while reading?)",
                bytes.len(),
                m.bytes
            )));
        }
        let sha = sha256_hex(&bytes);
        if sha != m.sha256 {
            return Err(bad(format!(
                "SHA-256 {sha} does not match the manifest's {} (corrupt file)",
                m.sha256
            )));
        }
        let meta = Index::metadata_from_buffer(&bytes)
            .map_err(|e| bad(format!("unreadable usearch header ({e})")))?;
        if meta.dimensions as usize != m.dim + m.params.mips_augment as usize
            || meta.count_present as usize != m.items
            || meta.metric != MetricKind::IP
            || meta.quantization != scalar(m.params.quantization)
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
        index
            .load_from_buffer(&bytes)
            .map_err(|e| bad(format!("usearch cannot open it ({e})")))?;
        drop(bytes);
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
            Prepared::Bitmap(b) => {
                for i in b.iter() {
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
            Prepared::Bitmap(b) => self.index.filtered_search(&q, want, |key: u64| {
                u32::try_from(key).is_ok_and(|k| b.contains(k))
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

/// SHA-256 of `bytes` as lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        crate::index_base::search_each(self, queries, k, filter_of)
    }
}
