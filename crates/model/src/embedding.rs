//! Embedding tables: `rows × dim` floats, row-major, with single-row and mean-pooled
//! bag lookups. Training (sparse row updates) lives in `shortlist-train`.

use crate::error::{Error, Result};

/// `madvise(MADV_HUGEPAGE)` on the 2 MiB-aligned part of a large buffer (Linux; a hint
/// the kernel may ignore, so failures are ignored too).
#[allow(unsafe_code)]
fn advise_huge_pages(data: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(data);
        if bytes >= 16 * HUGE {
            let ptr = data.as_mut_ptr() as usize;
            let start = (ptr + HUGE - 1) & !(HUGE - 1);
            let end = (ptr + bytes) & !(HUGE - 1);
            if end > start {
                // SAFETY: [start, end) lies inside `data`'s allocation, which we own
                // mutably; MADV_HUGEPAGE only changes how the kernel backs the pages,
                // never their contents.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = data;
}

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

    /// An all-zero table. Large tables ask the kernel for huge pages before their
    /// memory is first touched: a sparse step reads rows at random, and with 4 KiB pages
    /// nearly every row of a multi-GB table is a TLB miss on top of a cache miss.
    pub fn zeros(rows: usize, dim: usize) -> Self {
        let mut data = vec![0.0; rows * dim];
        advise_huge_pages(&mut data);
        EmbeddingTable { rows, dim, data }
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
#[allow(clippy::unwrap_used)]
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
