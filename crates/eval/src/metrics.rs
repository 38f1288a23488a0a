//! [`Metrics`], the evaluator's output, and [`EvalConfig`], which cut-offs it reports.
//!
//! JSON shape (keys sorted; one `recall@K`, `ndcg@K`, `hit_rate@K` per full-ranking
//! cut-off and one `top_k_accuracy@K` per accuracy cut-off, values in `[0, 1]`):
//!
//! ```json
//! {"hit_rate@10": 0.61, "hit_rate@20": 0.74, "ndcg@10": 0.21, "ndcg@20": 0.23,
//!  "recall@10": 0.12, "recall@20": 0.19, "top_k_accuracy@1": 0.01,
//!  "top_k_accuracy@5": 0.05, "top_k_accuracy@10": 0.09, "top_k_accuracy@50": 0.3,
//!  "top_k_accuracy@100": 0.45, "users_evaluated": 943}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which cut-offs to report. Serialisable so it can be saved next to the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalConfig {
    /// Cut-offs of the full-ranking metrics (Recall, NDCG, HitRate). Default 10, 20.
    pub ks: Vec<usize>,
    /// Cut-offs of factorized top-K categorical accuracy. Default 1, 5, 10, 50, 100.
    pub accuracy_ks: Vec<usize>,
    /// Users scored per block (the unit of parallel work and of score memory:
    /// `block_users × n_items` floats per worker). Default 64.
    pub block_users: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            ks: vec![10, 20],
            accuracy_ks: vec![1, 5, 10, 50, 100],
            block_users: 64,
        }
    }
}

impl EvalConfig {
    /// Errors on a cut-off of 0, or a block size of 0.
    pub fn validate(&self) -> Result<()> {
        if self.ks.contains(&0) {
            return Err(Error::invalid("ks", "cut-offs must be at least 1"));
        }
        if self.accuracy_ks.contains(&0) {
            return Err(Error::invalid("accuracy_ks", "cut-offs must be at least 1"));
        }
        if self.block_users == 0 {
            return Err(Error::invalid("block_users", "must be at least 1"));
        }
        Ok(())
    }
}

/// Evaluation results: metric name → value, plus how many users were evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// `recall@K`, `ndcg@K`, `hit_rate@K`, `top_k_accuracy@K`.
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
    /// Users with at least one test item (the denominator of the full-ranking metrics).
    pub users_evaluated: usize,
}

impl Metrics {
    /// A metric by name, e.g. `recall@10`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }
}
