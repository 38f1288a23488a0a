//! Shared types of **shortlist**, at the root of the pipeline
//! (`core` → `data` → `features` → models → training → evaluation → index → serving).
//!
//! * [`dataset`]: the in-memory dataset every loader produces: columnar interactions,
//!   user and item feature tables, and the raw-id ↔ index maps.
//! * [`rng`]: a small seeded generator whose streams are identical on every platform
//!   and every version of this crate (splits and synthetic data depend on that).
//! * [`atomic`]: write files and directories so that a reader never sees half of one.
//! * [`input`]: read input files defensively (regular files only, size-limited).
//! * [`progress`]: a progress-reporting seam, so libraries stay free of terminal code.
//! * [`gemm`]: the one `f32` matrix-product wrapper (`matrixmultiply::sgemm`), shared by
//!   the models, training and evaluation.
//!
//! ```
//! use shortlist_core::dataset::{Dataset, IdMap};
//! let mut users = IdMap::default();
//! assert_eq!(users.intern("alice"), 0);
//! assert_eq!(users.intern("bob"), 1);
//! assert_eq!(users.intern("alice"), 0);
//! assert_eq!(users.raw(1), "bob");
//! let _ = Dataset::default();
//! ```

pub mod alloc;
pub mod atomic;
pub mod dataset;
pub mod gemm;
pub mod hash;
pub mod input;
pub mod progress;
pub mod rng;

pub use dataset::{Column, ColumnValues, Dataset, FeatureTable, IdMap, Interactions};
pub use rng::Rng;
