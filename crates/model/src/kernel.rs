//! The dense-kernel seam of the models and of training: [`gemm`] and [`gemv_row`] over
//! [`Operand`]s, re-exported from [`shortlist_core::gemm`], the one wrapper of
//! `matrixmultiply::sgemm` (shared with evaluation, which may not depend on this crate).

pub use shortlist_core::gemm::{gemm, gemv_row, Operand};
