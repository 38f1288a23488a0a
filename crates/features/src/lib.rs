//! Feature preprocessing for **shortlist**, the second stage of the pipeline
//! (`core` → `data` → **`features`** → models → training → evaluation → index → serving).
//!
//! What TFRS tutorials do with Keras preprocessing layers, done once, fitted on the
//! training split only, and saved as one JSON [`FeatureSpec`] that training and serving
//! both load — the very same object, so there is no training/serving skew.
//!
//! * [`Vocabulary`]: raw value → index, with out-of-vocabulary slots first (index 0, or
//!   several hashed buckets), `min_count` and `max_size`.
//! * [`Normalizer`] (z-score) and [`Bucketizer`] (quantile buckets) for numbers and timestamps.
//! * [`Tokenizer`]: lowercase, strip punctuation, split on whitespace (movie titles).
//! * [`FeatureSpec`]: ids, side features and timestamp, fitted together; [`EncodedTable`]
//!   turns a feature table into model inputs.
//!
//! ```
//! use shortlist_features::{VocabConfig, Vocabulary};
//! let v = Vocabulary::fit(["b", "a", "b", "c"], &VocabConfig::default());
//! assert_eq!(v.index("b"), 1); // most frequent first, after the OOV slot 0
//! assert_eq!(v.index("never seen"), 0);
//! ```

pub mod error;
pub mod normalize;
pub mod spec;
pub mod text;
pub mod vocab;

pub use error::{Error, Result};
pub use normalize::{Bucketizer, Normalizer};
pub use spec::{EncodedColumn, EncodedTable, FeatureConfig, FeatureSpec, FittedFeature, Transform};
pub use text::Tokenizer;
pub use vocab::{VocabConfig, Vocabulary};
