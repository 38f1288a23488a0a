//! The HNSW index: [`HnswParams`] (always available, so that configurations parse the
//! same with or without the feature) and, with the `hnsw` feature, `HnswIndex`:
//! approximate maximum-inner-product top-K over an HNSW graph (the
//! [usearch](https://github.com/unum-cloud/usearch) C++ core, inner-product metric),
//! behind the same [`TopKIndex`](crate::TopKIndex) trait as the exact index.
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
//! * **Filters** ([`Filter`](crate::Filter)) run *inside* the graph walk as a predicate (excluded items
//!   are traversed but never returned), so recall holds when many items are excluded.
//!   When few items are admissible (at most [`HnswParams::exact_below`]) the query is an
//!   exact scan over the admissible items instead, and if the graph walk ever returns
//!   fewer than `min(k, admissible)` hits it falls back to that exact scan too, so a
//!   filtered query never returns an excluded item and never comes back short.
//! * **Persistence**: `HnswIndex::save` writes the usearch file plus a JSON
//!   manifest next to it (`<file>.json`: format, version, shape, build parameters, byte
//!   length and SHA-256 of the index file), each atomically (temporary file + rename).
//!   `HnswIndex::load` reads the file into memory once and checks the
//!   manifest, the length, the checksum and the usearch header on those bytes
//!   *before* they reach the C++ side, so a truncated or corrupt file is an
//!   [`Error::Format`](crate::Error) naming the file, never a crash. The file is never
//!   memory-mapped: a model directory may be rewritten or truncated in place while a
//!   server runs, and a mapped file changed underneath would kill it (SIGBUS).
//! * **Threads**: usearch keeps one search context per concurrent caller; the index
//!   reserves `thread_slots` of them and a small semaphore makes further callers
//!   wait for a free one instead of failing.
//! * Building inserts items in parallel (rayon), so two builds of the same items can
//!   give slightly different graphs (and results); a saved index is deterministic.

#[cfg(feature = "hnsw")]
mod graph;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
#[cfg(feature = "hnsw")]
pub use graph::{manifest_path, thread_slots, HnswIndex, MANIFEST_FORMAT, MANIFEST_VERSION};

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

/// Build and search parameters of an `HnswIndex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswParams {
    /// Graph connectivity `M` (edges per node on the upper levels; `2M` on the base
    /// level). Higher: better recall, bigger index, slower build. Default 16.
    pub connectivity: usize,
    /// Candidate-list size while inserting (`efConstruction`). Default 128.
    pub expansion_add: usize,
    /// Candidate-list size while searching (`ef`); the walk uses at least `k`.
    /// Changeable after loading (`HnswIndex::set_expansion_search`). Default 128.
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
