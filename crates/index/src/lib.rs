//! Top-K retrieval for **shortlist**, after evaluation in the pipeline
//! (`core` → `data` → `features` → models → training → evaluation → **`index`** → serving).
//!
//! * [`index_base`]: the object-safe [`TopKIndex`] trait, its [`Hit`] results and the
//!   per-query [`Filter`] (exclude seen items, exclude a list, allow only a list or
//!   the items of an [`ItemBitmap`] prepared once, [`bitmap`]).
//! * [`exact`]: [`ExactIndex`], brute-force maximum inner product search (fused
//!   scoring + selection kernels over items packed in blocks of 16: AVX-512, AVX2+FMA
//!   or portable, picked at run time; one query or register-tiled batches) with
//!   safetensors persistence. Every path computes a score with the same fma chain, so
//!   single and batched searches agree bit for bit.
//!   It is the ground truth an approximate index is tested against.
//! * [`ivf`]: [`IvfIndex`] (alias `ApproximateIndex`), the default approximate index:
//!   k-means lists plus a head list of the largest-norm items, the opened lists
//!   scanned with the exact index's int8 prefilter and re-scored exactly; how much a
//!   query opens is calibrated per index for a [`RecallTarget`] ([`recall`]) and
//!   grows with `k` and with the share a filter excludes, down to an exact scan of
//!   the admissible items; safetensors persistence.
//! * [`hnsw`] (feature `hnsw`, off by default; the CLI enables it): `HnswIndex`,
//!   approximate maximum inner product search over an HNSW graph (usearch), with
//!   in-walk filters, persistence read into memory and checked file integrity.
//! * [`approx`]: [`IndexConfig`] / [`AnyIndex`], the per-model choice (exact below
//!   100k items by default, IVF above) and save/load in a model directory.
//! * [`error`]: the crate's [`Error`]; messages name the file or parameter.
//!
//! Ordering contract: score descending, ties by lower item index, NaN as `-inf`.
//!
//! ```
//! use shortlist_index::{ExactIndex, Filter, TopKIndex};
//! // Three items in 2 dimensions.
//! let index = ExactIndex::new(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2)?;
//! let hits = index.search(&[1.0, 0.5], 2, &Filter::None)?;
//! assert_eq!(hits.iter().map(|h| h.item).collect::<Vec<_>>(), vec![2, 0]);
//! // Exclude item 2 (e.g. already seen by the user).
//! let hits = index.search(&[1.0, 0.5], 2, &Filter::ExcludeSorted(&[2]))?;
//! assert_eq!(hits.iter().map(|h| h.item).collect::<Vec<_>>(), vec![0, 1]);
//! // Two queries at once, the same filter for both.
//! let all = index.search_batch(&[1.0, 0.5, 0.0, 1.0], 1, &|_| Filter::None)?;
//! assert_eq!((all[0][0].item, all[1][0].item), (2, 1));
//! # Ok::<(), shortlist_index::Error>(())
//! ```

pub mod approx;
pub mod bitmap;
mod cpu;
pub mod error;
pub mod exact;
pub mod hnsw;
pub mod index_base;
pub mod ivf;
mod kernel;
mod persist;
mod quant;
pub mod recall;
mod select;

pub use approx::{AnyIndex, IndexConfig, IndexKind};
pub use bitmap::ItemBitmap;
pub use error::{Error, Result};
pub use exact::ExactIndex;
#[cfg(feature = "hnsw")]
pub use hnsw::HnswIndex;
pub use hnsw::{HnswParams, Quantization};
pub use index_base::{Filter, Hit, TopKIndex};
pub use ivf::{IvfIndex, IvfIndex as ApproximateIndex, IvfParams, SearchMode};
pub use recall::RecallTarget;
