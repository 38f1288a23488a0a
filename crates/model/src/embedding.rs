//! Embedding tables: `rows × dim` floats, row-major, with single-row and mean-pooled
//! bag lookups. Training (sparse row updates) lives in `shortlist-train`.

use crate::error::{Error, Result};

/// A `rows × dim` embedding table.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingTable {
    rows: usize,
    dim: usize,
    data: Vec<f32>,
}

impl EmbeddingTable {
    /// A table from its row-major data; errors when `data.len() != rows × dim`.
    pub fn new(rows: usize, dim: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * dim {
            return Err(Error::invalid(
                "embedding table",
                format!(
                    "expected {rows}×{dim} = {} values, got {}",
                    rows * dim,
                    data.len()
                ),
            ));
        }
        Ok(EmbeddingTable { rows, dim, data })
    }

    /// An all-zero table.
    pub fn zeros(rows: usize, dim: usize) -> Self {
        EmbeddingTable {
            rows,
            dim,
            data: vec![0.0; rows * dim],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All values, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Row `r`.
    ///
    /// # Panics
    /// When `r >= rows`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// Row `r`, mutable.
    ///
    /// # Panics
    /// When `r >= rows`.
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.data[r * self.dim..(r + 1) * self.dim]
    }

    /// Copies row `r` into `out` (`dim` values).
    pub fn lookup_into(&self, r: usize, out: &mut [f32]) {
        out[..self.dim].copy_from_slice(self.row(r));
    }

    /// Writes the mean of the rows `ids` into `out` (zeros for an empty bag).
    pub fn bag_mean_into(&self, ids: &[u32], out: &mut [f32]) {
        let out = &mut out[..self.dim];
        out.fill(0.0);
        if ids.is_empty() {
            return;
        }
        for &id in ids {
            for (o, v) in out.iter_mut().zip(self.row(id as usize)) {
                *o += v;
            }
        }
        let inv = 1.0 / ids.len() as f32;
        for o in out {
            *o *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let t = EmbeddingTable::new(3, 2, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let mut out = [0.0; 2];
        t.lookup_into(1, &mut out);
        assert_eq!(out, [2.0, 3.0]);
        t.bag_mean_into(&[0, 2], &mut out);
        assert_eq!(out, [2.0, 3.0]);
        t.bag_mean_into(&[], &mut out);
        assert_eq!(out, [0.0, 0.0]);
        assert!(EmbeddingTable::new(3, 2, vec![0.0; 5]).is_err());
    }
}
