//! [`EmbeddingScorer`]: score = dot product of a user and an item embedding, for every
//! two-tower / matrix-factorisation model.
//!
//! Shapes: `user_emb` is `n_users × dim`, `item_emb` is `n_items × dim`, both
//! row-major; `score_users(users, out)` fills `out` (`users.len() × n_items`) with
//! `U[users] · Iᵀ` through blocked GEMM ([`shortlist_core::gemm`]), user blocks in
//! parallel.

use rayon::prelude::*;
use shortlist_core::gemm::{gemm, Operand};

use crate::error::{Error, Result};
use crate::scorer_base::Scorer;

/// Users per GEMM call (and per parallel task).
const USER_BLOCK: usize = 64;

/// Inner-product scores from user and item embedding matrices (borrowed).
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingScorer<'a> {
    user_emb: &'a [f32],
    item_emb: &'a [f32],
    dim: usize,
}

impl<'a> EmbeddingScorer<'a> {
    /// A scorer over `user_emb` (`n_users × dim`) and `item_emb` (`n_items × dim`).
    /// Errors when `dim` is 0 or a length is not a multiple of `dim`.
    pub fn new(user_emb: &'a [f32], item_emb: &'a [f32], dim: usize) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid("dim", "must be at least 1"));
        }
        for (what, m) in [("user embeddings", user_emb), ("item embeddings", item_emb)] {
            if !m.len().is_multiple_of(dim) {
                return Err(Error::invalid(
                    what,
                    format!("length {} is not a multiple of dim {dim}", m.len()),
                ));
            }
        }
        Ok(EmbeddingScorer {
            user_emb,
            item_emb,
            dim,
        })
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.user_emb.len() / self.dim
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl Scorer for EmbeddingScorer<'_> {
    fn n_items(&self) -> usize {
        self.item_emb.len() / self.dim
    }

    fn score_users(&self, users: &[u32], out: &mut [f32]) -> Result<()> {
        let (n, d, n_users) = (self.n_items(), self.dim, self.n_users());
        if out.len() != users.len() * n {
            return Err(Error::size(
                "score buffer (users × items)",
                users.len() * n,
                out.len(),
            ));
        }
        if let Some((row, &u)) = users
            .iter()
            .enumerate()
            .find(|(_, &u)| u as usize >= n_users)
        {
            return Err(Error::OutOfRange {
                what: "users to score".into(),
                row,
                index: u,
                len: n_users,
            });
        }
        if n == 0 {
            return Ok(());
        }
        out.par_chunks_mut(USER_BLOCK * n)
            .zip(users.par_chunks(USER_BLOCK))
            .for_each(|(c, block)| {
                // Gather the block's user rows so A is one contiguous m × d matrix.
                let mut a = Vec::with_capacity(block.len() * d);
                for &u in block {
                    a.extend_from_slice(&self.user_emb[u as usize * d..(u as usize + 1) * d]);
                }
                gemm_abt(block.len(), n, d, &a, self.item_emb, c);
            });
        Ok(())
    }
}

/// `c[i * n + j] = Σ_t a[i * k + t] · b[j * k + t]`: A (m × k) times Bᵀ, B (n × k),
/// all row-major.
fn gemm_abt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm(m, k, n, Operand::new(a), Operand::t(b), 0.0, c);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;
    use shortlist_core::Rng;

    #[test]
    fn matches_naive_dot_products() {
        let mut rng = Rng::new(1);
        let (nu, ni, d) = (150, 77, 13);
        let u: Vec<f32> = (0..nu * d).map(|_| rng.normal() as f32).collect();
        let it: Vec<f32> = (0..ni * d).map(|_| rng.normal() as f32).collect();
        let s = EmbeddingScorer::new(&u, &it, d).unwrap();
        let users: Vec<u32> = (0..140).map(|_| rng.below(nu as u64) as u32).collect();
        let mut out = vec![0f32; users.len() * ni];
        s.score_users(&users, &mut out).unwrap();
        for (r, &user) in users.iter().enumerate() {
            for j in 0..ni {
                let want: f32 = (0..d)
                    .map(|t| u[user as usize * d + t] * it[j * d + t])
                    .sum();
                assert!(
                    (out[r * ni + j] - want).abs() < 1e-4,
                    "user {user} item {j}"
                );
            }
        }
    }

    #[test]
    fn bad_shapes_and_users_are_errors() {
        assert!(EmbeddingScorer::new(&[0.0; 6], &[0.0; 5], 2).is_err());
        assert!(EmbeddingScorer::new(&[], &[], 0).is_err());
        let s = EmbeddingScorer::new(&[0.0; 6], &[0.0; 4], 2).unwrap();
        let mut out = vec![0f32; 2];
        let e = s.score_users(&[3], &mut out).unwrap_err().to_string();
        assert!(e.contains("index 3") && e.contains("there are 3"), "{e}");
        assert!(s.score_users(&[0, 1], &mut out).is_err());
    }
}
