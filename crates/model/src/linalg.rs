//! Dense symmetric positive-definite algebra: a blocked Cholesky factorisation and
//! inverse in `f64` (EASE's closed form inverts an items × items Gram matrix) and a
//! small `f32` Cholesky solve (iALS fold-in of one user).
//!
//! The big operations spend their time in GEMM calls (`matrixmultiply::dgemm`, split
//! over rayon tasks by rows); the unblocked parts are `O(n² · block)`. A LAPACK or
//! `faer` would be faster still but costs minutes of build time on two cores for one
//! call per training run; `crates/train/examples/bench_ease.rs` measures this one.
#![allow(unsafe_code)]

use rayon::prelude::*;

use crate::autorec::dot;
use crate::error::{Error, Result};

/// Columns per block of the blocked algorithms.
const BLOCK: usize = 96;
/// Rows per parallel GEMM task.
const TASK_ROWS: usize = 128;

/// `C (m×n) = alpha · A (m×k) · B (k×n) + C`, every operand given by a pointer and its
/// row/column strides (so transposes and sub-blocks need no copy).
///
/// # Safety
/// Every element addressed through the strides must lie inside its allocation, and
/// `c` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn dgemm_acc(
    m: usize,
    k: usize,
    n: usize,
    alpha: f64,
    a: (*const f64, isize, isize),
    b: (*const f64, isize, isize),
    c: (*mut f64, isize, isize),
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        matrixmultiply::dgemm(
            m, k, n, alpha, a.0, a.1, a.2, b.0, b.1, b.2, 1.0, c.0, c.1, c.2,
        );
    }
}

/// Factors the symmetric positive-definite `n × n` row-major matrix `a` in place into
/// its lower Cholesky factor `L` (`a = L Lᵀ`; the strict upper triangle is left as
/// scratch). Errors when `a` is not positive definite, naming the pivot.
pub fn cholesky(a: &mut [f64], n: usize) -> Result<()> {
    if a.len() != n * n {
        return Err(Error::invalid(
            "matrix",
            format!("expected {n}×{n} = {} values, got {}", n * n, a.len()),
        ));
    }
    let mut k0 = 0;
    while k0 < n {
        let b = BLOCK.min(n - k0);
        // 1. The diagonal block, unblocked (earlier blocks were subtracted already).
        for j in k0..k0 + b {
            let rj = j * n;
            let d = a[rj + j] - (k0..j).map(|p| a[rj + p] * a[rj + p]).sum::<f64>();
            if !(d > 0.0 && d.is_finite()) {
                return Err(Error::invalid(
                    "matrix",
                    format!("not positive definite (pivot {j} is {d})"),
                ));
            }
            let d = d.sqrt();
            a[rj + j] = d;
            for i in j + 1..k0 + b {
                let ri = i * n;
                let s = a[ri + j] - (k0..j).map(|p| a[ri + p] * a[rj + p]).sum::<f64>();
                a[ri + j] = s / d;
            }
        }
        let rest = k0 + b;
        if rest == n {
            break;
        }
        // 2. The panel below it: L21 = A21 · L11⁻ᵀ, row by row (rows are independent).
        let l11: Vec<f64> = (k0..rest)
            .flat_map(|i| a[i * n + k0..i * n + rest].to_vec())
            .collect();
        a[rest * n..].par_chunks_mut(n).for_each(|row| {
            for j in 0..b {
                let s = row[k0 + j] - (0..j).map(|p| row[k0 + p] * l11[j * b + p]).sum::<f64>();
                row[k0 + j] = s / l11[j * b + j];
            }
        });
        // 3. The trailing matrix: A22 -= L21 · L21ᵀ (one GEMM, split by rows).
        let m = n - rest;
        let l21: Vec<f64> = (rest..n)
            .flat_map(|i| a[i * n + k0..i * n + rest].to_vec())
            .collect();
        a[rest * n..]
            .par_chunks_mut(TASK_ROWS * n)
            .enumerate()
            .for_each(|(t, chunk)| {
                let rows = chunk.len() / n;
                let r0 = t * TASK_ROWS;
                // SAFETY: A = l21 rows r0..r0+rows (rows × b, contiguous); B = l21ᵀ
                // (b × m, read with strides 1 and b); C = this chunk's columns
                // rest..n (rows × m, row stride n), inside `chunk`, disjoint from l21.
                unsafe {
                    dgemm_acc(
                        rows,
                        b,
                        m,
                        -1.0,
                        (l21.as_ptr().add(r0 * b), b as isize, 1),
                        (l21.as_ptr(), 1, b as isize),
                        (chunk.as_mut_ptr().add(rest), n as isize, 1),
                    );
                }
            });
        k0 = rest;
    }
    Ok(())
}

/// The inverse of the symmetric positive-definite `n × n` row-major matrix `a`
/// (consumed): Cholesky `a = L Lᵀ`, `X = L⁻¹` by blocked forward substitution, then
/// `a⁻¹ = Xᵀ X`. About `n³` multiply-adds, nearly all in GEMM calls.
pub fn spd_inverse(mut a: Vec<f64>, n: usize) -> Result<Vec<f64>> {
    cholesky(&mut a, n)?;
    // X = L⁻¹ (lower triangular), block row by block row:
    // X_i = L_ii⁻¹ · (E_i − L_i,<i · X_<i), E_i the identity's rows.
    let mut x = vec![0f64; n * n];
    let mut i0 = 0;
    while i0 < n {
        let b = BLOCK.min(n - i0);
        let (done, block) = x.split_at_mut(i0 * n);
        let block = &mut block[..b * n];
        for r in 0..b {
            block[r * n + i0 + r] = 1.0;
        }
        if i0 > 0 {
            // block[:, 0..i0] -= L[i0.., 0..i0] · X[0..i0, 0..i0]
            // SAFETY: A = rows i0..i0+b, columns 0..i0 of `a` (stride n); B = the first
            // i0 rows/columns of X (stride n) in `done`; C = `block`'s first i0
            // columns. C is a different allocation region than A and B.
            unsafe {
                dgemm_acc(
                    b,
                    i0,
                    i0,
                    -1.0,
                    (a.as_ptr().add(i0 * n), n as isize, 1),
                    (done.as_ptr(), n as isize, 1),
                    (block.as_mut_ptr(), n as isize, 1),
                );
            }
        }
        // Forward substitution with L_ii on columns 0..i0+b.
        for r in 0..b {
            let i = i0 + r;
            let lii = a[i * n + i];
            for p in 0..r {
                let l = a[i * n + i0 + p];
                if l != 0.0 {
                    let (above, cur) = block.split_at_mut(r * n);
                    let src = &above[p * n..p * n + i0 + b];
                    for (c, s) in cur[..i0 + b].iter_mut().zip(src) {
                        *c -= l * s;
                    }
                }
            }
            block[r * n..r * n + i0 + b]
                .iter_mut()
                .for_each(|v| *v /= lii);
        }
        i0 += b;
    }
    // a⁻¹ = Xᵀ X, by row blocks of the result (L is no longer needed: at most two
    // n × n matrices are alive at any time).
    drop(a);
    let mut inv = vec![0f64; n * n];
    inv.par_chunks_mut(TASK_ROWS * n)
        .enumerate()
        .for_each(|(t, chunk)| {
            let rows = chunk.len() / n;
            let r0 = t * TASK_ROWS;
            // SAFETY: A = Xᵀ rows r0..r0+rows = X columns (strides 1, n) inside `x`;
            // B = X (n × n, stride n); C = `chunk` (rows × n), a separate allocation.
            unsafe {
                dgemm_acc(
                    rows,
                    n,
                    n,
                    1.0,
                    (x.as_ptr().add(r0), 1, n as isize),
                    (x.as_ptr(), n as isize, 1),
                    (chunk.as_mut_ptr(), n as isize, 1),
                );
            }
        });
    Ok(inv)
}

/// Solves `a · x = b` for a small symmetric positive-definite `f × f` matrix (row-major,
/// overwritten by its Cholesky factor); `b` is overwritten by `x`. Errors when `a` is
/// not positive definite.
pub fn cholesky_solve_small(a: &mut [f32], b: &mut [f32]) -> Result<()> {
    let f = b.len();
    if a.len() != f * f {
        return Err(Error::invalid(
            "matrix",
            format!("expected {f}×{f} values, got {}", a.len()),
        ));
    }
    // The inner products run over contiguous row prefixes with the 8-accumulator dot
    // (a serial sum here made an iALS fold-in of 64 factors cost ~60 µs, a quarter of a
    // served request with a history).
    for j in 0..f {
        // Rows 0..=j above the split (row j last), the rows below it after.
        let (upper, lower) = a.split_at_mut((j + 1) * f);
        let row_j = &mut upper[j * f..];
        let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if !(d > 0.0 && d.is_finite()) {
            return Err(Error::invalid(
                "matrix",
                format!("not positive definite (pivot {j} is {d})"),
            ));
        }
        let d = d.sqrt();
        row_j[j] = d;
        let lj = &row_j[..j];
        for row_i in lower.chunks_exact_mut(f) {
            let s = row_i[j] - dot(&row_i[..j], lj);
            row_i[j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..f {
        let s = b[i] - dot(&a[i * f..i * f + i], &b[..i]);
        b[i] = s / a[i * f + i];
    }
    for i in (0..f).rev() {
        let s = b[i] - (i + 1..f).map(|p| a[p * f + i] * b[p]).sum::<f32>();
        b[i] = s / a[i * f + i];
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_core::Rng;

    /// A random SPD matrix `M Mᵀ + n·I`.
    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let m: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|p| m[i * n + p] * m[j * n + p]).sum::<f64>();
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn inverse_times_matrix_is_identity_across_block_boundaries() {
        // Sizes below, at and across the block size and the task rows.
        for n in [1, 2, 5, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 7, 300] {
            let a = spd(n, n as u64);
            let inv = spd_inverse(a.clone(), n).unwrap();
            let mut worst = 0f64;
            for i in 0..n {
                for j in 0..n {
                    let v: f64 = (0..n).map(|p| a[i * n + p] * inv[p * n + j]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    worst = worst.max((v - want).abs());
                }
            }
            assert!(worst < 1e-10, "n = {n}: max |A·A⁻¹ − I| = {worst}");
        }
    }

    #[test]
    fn cholesky_factor_reproduces_the_matrix() {
        let n = 2 * BLOCK + 3;
        let a = spd(n, 9);
        let mut l = a.clone();
        cholesky(&mut l, n).unwrap();
        for i in 0..n {
            for j in 0..=i {
                let v: f64 = (0..=j).map(|p| l[i * n + p] * l[j * n + p]).sum();
                assert!((v - a[i * n + j]).abs() < 1e-9 * a[i * n + j].abs().max(1.0));
            }
        }
    }

    #[test]
    fn indefinite_matrices_are_refused_with_the_pivot() {
        let a = vec![1.0, 2.0, 2.0, 1.0]; // eigenvalues 3 and -1
        let err = spd_inverse(a, 2).unwrap_err().to_string();
        assert_eq!(err, "invalid matrix: not positive definite (pivot 1 is -3)");
        let err = spd_inverse(vec![1.0; 3], 2).unwrap_err().to_string();
        assert_eq!(err, "invalid matrix: expected 2×2 = 4 values, got 3");
    }

    #[test]
    fn small_solve_matches_the_f64_inverse() {
        let n = 7;
        let a = spd(n, 3);
        let inv = spd_inverse(a.clone(), n).unwrap();
        let b: Vec<f64> = (0..n).map(|i| i as f64 - 2.5).collect();
        let want: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|p| inv[i * n + p] * b[p]).sum())
            .collect();
        let mut a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let mut x: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        cholesky_solve_small(&mut a32, &mut x).unwrap();
        for (g, w) in x.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
