//! Choosing the index per model: [`IndexConfig`] (`kind = "auto" | "exact" | "ivf" |
//! "hnsw"`, `recall_target`) and [`AnyIndex`], one [`TopKIndex`] that is the
//! [`ExactIndex`], the approximate [`IvfIndex`] or (feature `hnsw`) the approximate
//! `HnswIndex` ([`hnsw`](crate::hnsw)), with save/load inside a model directory.
//!
//! `auto` picks the exact index below [`IndexConfig::auto_threshold`] items and IVF
//! from there: measured on 100k clustered and 1M trained vectors (BENCHMARKS-ann.md),
//! IVF with its head list answers 2.8× (100k) to over 10× (1M) more queries per second
//! than HNSW (ours or hnswlib's) at higher recall, builds 5–35× faster and filters
//! without losing recall; HNSW stays available by name.
//!
//! Files in the model directory: [`EXACT_FILE`] (`index.safetensors`, as before),
//! [`IVF_FILE`] (`index.ivf.safetensors`) or [`HNSW_FILE`] (`index.hnsw`) plus its
//! manifest `index.hnsw.json`. Saving one removes the others.

use std::path::Path;

use crate::error::{Error, Result};
use crate::exact::ExactIndex;
#[cfg(feature = "hnsw")]
use crate::hnsw::HnswIndex;
use crate::hnsw::HnswParams;
use crate::index_base::{Filter, Hit, TopKIndex};
use crate::ivf::{IvfIndex, IvfParams};
use crate::recall::RecallTarget;

/// File name of the exact index inside a model directory.
pub const EXACT_FILE: &str = "index.safetensors";
/// File name of the IVF index inside a model directory.
pub const IVF_FILE: &str = "index.ivf.safetensors";
/// File name of the HNSW index inside a model directory (manifest: [`HNSW_MANIFEST`]).
pub const HNSW_FILE: &str = "index.hnsw";
/// File name of the HNSW index's manifest inside a model directory.
pub const HNSW_MANIFEST: &str = "index.hnsw.json";
/// Default catalogue size from which `kind = "auto"` builds an IVF index.
pub const DEFAULT_AUTO_THRESHOLD: usize = 100_000;

/// Which index a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Exact below [`IndexConfig::auto_threshold`] items, IVF from there.
    #[default]
    Auto,
    /// Always the exact index.
    Exact,
    /// Always IVF.
    Ivf,
    /// Always HNSW (an error without the `hnsw` feature).
    Hnsw,
}

impl std::str::FromStr for IndexKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(IndexKind::Auto),
            "exact" => Ok(IndexKind::Exact),
            "ivf" => Ok(IndexKind::Ivf),
            "hnsw" => Ok(IndexKind::Hnsw),
            other => Err(Error::invalid(
                "index",
                format!("{other:?} is not one of auto, exact, ivf, hnsw"),
            )),
        }
    }
}

/// Index choice and parameters (a retrieval config's `[index]` section).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Which index.
    pub kind: IndexKind,
    /// Catalogue size from which `Auto` picks IVF.
    pub auto_threshold: usize,
    /// Mean recall@k the IVF index sizes each query for (one number, or one per k;
    /// see [`RecallTarget`]). Ignored when `[index.ivf] probes` is set, and by the
    /// exact and HNSW indexes (HNSW: `[index.hnsw] expansion_search`).
    pub recall_target: RecallTarget,
    /// IVF parameters (used when the index is IVF).
    pub ivf: IvfParams,
    /// HNSW parameters (used when the index is HNSW).
    pub hnsw: HnswParams,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            kind: IndexKind::Auto,
            auto_threshold: DEFAULT_AUTO_THRESHOLD,
            recall_target: RecallTarget::default(),
            ivf: IvfParams::default(),
            hnsw: HnswParams::default(),
        }
    }
}

impl IndexConfig {
    /// The kind a catalogue of `n` items gets under this config (`Auto` resolved).
    pub fn kind_for(&self, n: usize) -> Result<IndexKind> {
        match self.kind {
            IndexKind::Hnsw if !cfg!(feature = "hnsw") => Err(Error::invalid(
                "index",
                "\"hnsw\" needs shortlist-index built with the `hnsw` feature",
            )),
            IndexKind::Auto if n >= self.auto_threshold => Ok(IndexKind::Ivf),
            IndexKind::Auto => Ok(IndexKind::Exact),
            kind => Ok(kind),
        }
    }

    /// Whether a catalogue of `n` items gets an HNSW index under this config.
    pub fn wants_hnsw(&self, n: usize) -> Result<bool> {
        Ok(self.kind_for(n)? == IndexKind::Hnsw)
    }
}

/// The exact or the approximate index, as one [`TopKIndex`].
#[derive(Debug)]
pub enum AnyIndex {
    /// Brute force.
    Exact(ExactIndex),
    /// Inverted file (k-means lists, int8 scan); boxed, it is the largest variant.
    Ivf(Box<IvfIndex>),
    /// HNSW (feature `hnsw`).
    #[cfg(feature = "hnsw")]
    Hnsw(HnswIndex),
}

impl AnyIndex {
    /// Builds the index `config` asks for over `items` (`n × dim`, row-major). An IVF
    /// index is calibrated with sampled items as queries
    /// ([`build_with_queries`](Self::build_with_queries) takes the model's own).
    pub fn build(items: Vec<f32>, dim: usize, config: &IndexConfig) -> Result<Self> {
        Self::build_with_queries(items, dim, config, None)
    }

    /// [`build`](Self::build), an IVF index calibrated with `queries` (`m × dim`: e.g.
    /// the model's user vectors, which may sit elsewhere than the items) when given.
    pub fn build_with_queries(
        items: Vec<f32>,
        dim: usize,
        config: &IndexConfig,
        queries: Option<&[f32]>,
    ) -> Result<Self> {
        let n = items.len().checked_div(dim).unwrap_or(0);
        match config.kind_for(n)? {
            IndexKind::Ivf => {
                let mut ivf = IvfIndex::build_with_queries(&items, dim, config.ivf, queries)?;
                if config.ivf.probes == 0 {
                    ivf.set_recall_target(config.recall_target.clone());
                }
                Ok(AnyIndex::Ivf(Box::new(ivf)))
            }
            #[cfg(feature = "hnsw")]
            IndexKind::Hnsw => Ok(AnyIndex::Hnsw(HnswIndex::build(&items, dim, config.hnsw)?)),
            _ => Ok(AnyIndex::Exact(ExactIndex::new(items, dim)?)),
        }
    }

    /// Re-measures how much an IVF index must scan for its recall target with
    /// `queries` (`m × dim`: e.g. a sample of the model's user vectors, which may sit
    /// elsewhere than the items); nothing for the other indexes.
    pub fn calibrate(&mut self, queries: &[f32]) -> Result<()> {
        match self {
            AnyIndex::Ivf(i) => i.calibrate(queries),
            _ => Ok(()),
        }
    }

    /// Short name: `exact`, `ivf` or `hnsw`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            AnyIndex::Exact(_) => "exact",
            AnyIndex::Ivf(_) => "ivf",
            #[cfg(feature = "hnsw")]
            AnyIndex::Hnsw(_) => "hnsw",
        }
    }

    /// Saves into the model directory `dir` ([`EXACT_FILE`] or [`HNSW_FILE`]),
    /// atomically. Saving an HNSW index removes a stale [`EXACT_FILE`] and vice versa,
    /// so [`load_dir`](Self::load_dir) cannot pick up an index of another model version.
    pub fn save_dir(&self, dir: &Path) -> Result<()> {
        fs_err::create_dir_all(dir)?;
        let keep = match self {
            AnyIndex::Exact(e) => {
                e.save(&dir.join(EXACT_FILE))?;
                EXACT_FILE
            }
            AnyIndex::Ivf(i) => {
                i.save(&dir.join(IVF_FILE))?;
                IVF_FILE
            }
            #[cfg(feature = "hnsw")]
            AnyIndex::Hnsw(h) => {
                h.save(&dir.join(HNSW_FILE))?;
                HNSW_FILE
            }
        };
        for file in [EXACT_FILE, IVF_FILE, HNSW_FILE] {
            if file != keep {
                remove_if_exists(&dir.join(file))?;
            }
        }
        if keep != HNSW_FILE {
            remove_if_exists(&dir.join(HNSW_MANIFEST))?;
        }
        Ok(())
    }

    /// Loads the index saved in the model directory `dir`, into memory (never mapped:
    /// the directory may be rewritten while a server uses the index): the HNSW index
    /// (checksum verified) when [`HNSW_FILE`] exists, else the IVF index
    /// ([`IVF_FILE`]), else [`EXACT_FILE`]. `Ok(None)` when none exists (the caller
    /// builds one).
    pub fn load_dir(dir: &Path) -> Result<Option<Self>> {
        let hnsw = dir.join(HNSW_FILE);
        if hnsw.exists() {
            #[cfg(feature = "hnsw")]
            return Ok(Some(AnyIndex::Hnsw(HnswIndex::load(&hnsw)?)));
            #[cfg(not(feature = "hnsw"))]
            return Err(Error::Format {
                path: hnsw,
                message: "an HNSW index needs shortlist-index built with the `hnsw` feature".into(),
            });
        }
        let ivf = dir.join(IVF_FILE);
        if ivf.exists() {
            return Ok(Some(AnyIndex::Ivf(Box::new(IvfIndex::load(&ivf)?))));
        }
        let exact = dir.join(EXACT_FILE);
        if exact.exists() {
            return Ok(Some(AnyIndex::Exact(ExactIndex::load(&exact)?)));
        }
        Ok(None)
    }

    fn inner(&self) -> &dyn TopKIndex {
        match self {
            AnyIndex::Exact(e) => e,
            AnyIndex::Ivf(i) => i.as_ref(),
            #[cfg(feature = "hnsw")]
            AnyIndex::Hnsw(h) => h,
        }
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())).into()),
    }
}

impl TopKIndex for AnyIndex {
    fn dim(&self) -> usize {
        self.inner().dim()
    }

    fn len(&self) -> usize {
        self.inner().len()
    }

    fn search(&self, query: &[f32], k: usize, filter: &Filter<'_>) -> Result<Vec<Hit>> {
        self.inner().search(query, k, filter)
    }

    fn search_batch<'f>(
        &self,
        queries: &[f32],
        k: usize,
        filter_of: &(dyn Fn(usize) -> Filter<'f> + Sync),
    ) -> Result<Vec<Vec<Hit>>> {
        self.inner().search_batch(queries, k, filter_of)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn index_config_round_trips_through_toml_with_either_target_form() {
        let text = "kind = \"ivf\"\nrecall_target = { \"10\" = 0.99, \"100\" = 0.95 }\n[ivf]\nlists = 64\n";
        let c: IndexConfig = toml::from_str(text).unwrap();
        assert_eq!(c.kind, IndexKind::Ivf);
        assert_eq!(c.recall_target.for_k(10), 0.99);
        assert_eq!(c.recall_target.for_k(500), 0.95);
        assert_eq!(c.ivf.lists, 64);
        let back: IndexConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let one: IndexConfig = toml::from_str("recall_target = 0.9").unwrap();
        assert_eq!(one.recall_target, RecallTarget::uniform(0.9).unwrap());
        assert_eq!(IndexConfig::default().recall_target.for_k(100), 0.95);
        let e = toml::from_str::<IndexConfig>("recall_target = 2.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 is not within (0, 1]"), "{e}");
        // HNSW parameters parse without the `hnsw` feature too.
        let h: IndexConfig = toml::from_str("kind = \"hnsw\"\n[hnsw]\nconnectivity = 8\n").unwrap();
        assert_eq!(h.hnsw.connectivity, 8);
        assert_eq!(h.kind_for(10).is_ok(), cfg!(feature = "hnsw"));
    }
}
