//! The scoring seam: anything that can score every item for a batch of users can be
//! evaluated, whether it is an embedding model, a popularity count or another system's
//! exported score matrix.

use crate::error::Result;

/// Scores all items for a batch of users.
///
/// Implementations must be deterministic and `Sync` (the evaluator calls them from
/// several threads, one batch of users each). Higher scores rank first; a NaN score
/// ranks as `-inf`.
pub trait Scorer: Sync {
    /// Number of items scored per user.
    fn n_items(&self) -> usize;

    /// Writes the scores of `users` into `out`, `users.len() × n_items()`, row-major
    /// (row `r` holds user `users[r]`). Errors on a user the scorer does not know.
    fn score_users(&self, users: &[u32], out: &mut [f32]) -> Result<()>;
}
