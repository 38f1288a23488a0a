//! The dense-kernel seam: every `f32` matrix product of the models, of training and of
//! evaluation goes through [`gemm`] (the models' path is `shortlist_model::kernel`, a
//! re-export), so swapping the implementation (today `matrixmultiply::sgemm`;
//! candidates: the `gemm` crate, a BLAS, a hand-written AVX-512 micro-kernel) is a
//! change to this one module, measurable with the `bench_ranking` example. It lives in
//! `core` because both `model` and `eval` need it and neither may depend on the other.
//!
//! All matrices are row-major and contiguous; transposes are expressed by strides, so
//! no copy is ever made.
#![allow(unsafe_code)]

/// Row-major matrix operand, possibly read transposed.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    /// The stored elements.
    pub data: &'a [f32],
    /// Read the stored matrix transposed.
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// A matrix read as stored.
    pub fn new(data: &'a [f32]) -> Self {
        Operand {
            data,
            transposed: false,
        }
    }

    /// A matrix read transposed.
    pub fn t(data: &'a [f32]) -> Self {
        Operand {
            data,
            transposed: true,
        }
    }
}

/// `C (m×n) = A (m×k) · B (k×n) + beta · C`.
///
/// `A` is stored `m×k` (or `k×m` when transposed), `B` is stored `k×n` (or `n×k`).
/// With `beta == 0` the previous contents of `C` are ignored (NaN-safe).
///
/// # Panics
/// When a slice is shorter than its dimensions require (a programming error).
#[inline]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.data.len() >= m * k,
        "gemm: A has {} < {m}×{k} elements",
        a.data.len()
    );
    assert!(
        b.data.len() >= k * n,
        "gemm: B has {} < {k}×{n} elements",
        b.data.len()
    );
    assert!(
        c.len() >= m * n,
        "gemm: C has {} < {m}×{n} elements",
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for v in &mut c[..m * n] {
            *v = if beta == 0.0 { 0.0 } else { *v * beta };
        }
        return;
    }
    let (rsa, csa) = if a.transposed {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb) = if b.transposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the asserts above guarantee that every element addressed by the
    // (row stride, column stride) pairs lies inside its slice: the largest offset of A
    // is (m-1)·rsa + (k-1)·csa = m·k - 1 in both layouts, likewise for B and C; C is
    // borrowed mutably and cannot alias A or B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            rsa,
            csa,
            b.data.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `y (n) = x (k) · W (k×n) + bias`: one row, without GEMM packing overhead
/// (a chain of `axpy`s over the rows of `W`, which the compiler vectorises).
#[inline]
pub fn gemv_row(x: &[f32], w: &[f32], bias: &[f32], y: &mut [f32]) {
    let n = bias.len();
    y[..n].copy_from_slice(bias);
    for (xk, row) in x.iter().zip(w.chunks_exact(n)) {
        for (yj, wj) in y[..n].iter_mut().zip(row) {
            *yj += xk * wj;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(r: usize, c: usize, x: &[f32]) -> Vec<f32> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = x[i * c + j];
            }
        }
        t
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|v| (v as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v as f32 * 0.11).cos()).collect();
        let want = naive(m, k, n, &a, &b);
        let at = transpose(m, k, &a);
        let bt = transpose(k, n, &b);
        for (oa, ob) in [
            (Operand::new(&a), Operand::new(&b)),
            (Operand::t(&at), Operand::new(&b)),
            (Operand::new(&a), Operand::t(&bt)),
            (Operand::t(&at), Operand::t(&bt)),
        ] {
            let mut c = vec![f32::NAN; m * n];
            gemm(m, k, n, oa, ob, 0.0, &mut c);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-5);
            }
        }
        let mut y = vec![0.0; n];
        gemv_row(&a[..k], &b, &[0.0; 3], &mut y);
        for (x, w) in y.iter().zip(&want[..n]) {
            assert!((x - w).abs() < 1e-5);
        }
    }
}
