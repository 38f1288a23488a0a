//! The vector operations the f32 kernels are written over (the [`Simd`] trait) and its
//! three backends: portable 16-lane arrays, AVX2 + FMA, AVX-512F. Kept apart from the
//! kernels so that the tiling and selection code reads without the intrinsics.

use crate::cpu::BLOCK;

/// The vector operations a kernel needs; `W` lanes per vector, `16 / W` vectors per
/// block.
pub(super) trait Simd {
    type V: Copy;
    const W: usize;
    /// # Safety
    /// The CPU must support the backend's features (all methods).
    unsafe fn zero() -> Self::V;
    /// # Safety
    /// `p` must be valid for reading `W` floats.
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// `a * b + c` with one rounding.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Bit `l` set when lane `l` is `> thr` (NaN never is).
    unsafe fn gt(v: Self::V, thr: Self::V) -> u32;
    /// # Safety
    /// `p` must be valid for writing `W` floats.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Lane-wise `if s > m { s } else { m }` (a NaN `s` keeps `m`).
    unsafe fn max(s: Self::V, m: Self::V) -> Self::V;
    /// Bit `l` set when lane `l` is `>= thr` (NaN never is).
    unsafe fn ge(v: Self::V, thr: Self::V) -> u32;
    /// Hint that the cache line at `p` will be read soon, into L2 (any address is
    /// allowed: a prefetch never faults). L2, not L1: a tile ahead is as large as L1.
    unsafe fn prefetch(_p: *const f32) {}
}

/// Portable backend: a whole 16-lane block as an array.
pub(super) struct Scalar;

impl Simd for Scalar {
    type V = [f32; BLOCK];
    const W: usize = BLOCK;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; BLOCK]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees `p` is valid for 16 reads.
        unsafe { std::ptr::read_unaligned(p.cast::<[f32; BLOCK]>()) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; BLOCK]
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|l| super::fused(a[l], b[l], c[l]))
    }
    #[inline(always)]
    unsafe fn gt(v: Self::V, thr: Self::V) -> u32 {
        let mut m = 0;
        for l in 0..BLOCK {
            m |= u32::from(v[l] > thr[l]) << l;
        }
        m
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller guarantees `p` is valid for 16 writes.
        unsafe { std::ptr::write_unaligned(p.cast::<[f32; BLOCK]>(), v) }
    }
    #[inline(always)]
    unsafe fn max(s: Self::V, m: Self::V) -> Self::V {
        std::array::from_fn(|l| if s[l] > m[l] { s[l] } else { m[l] })
    }
    #[inline(always)]
    unsafe fn ge(v: Self::V, thr: Self::V) -> u32 {
        let mut m = 0;
        for l in 0..BLOCK {
            m |= u32::from(v[l] >= thr[l]) << l;
        }
        m
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    pub(in crate::kernel) struct Avx2;
    pub(in crate::kernel) struct Avx512;

    // SAFETY (all methods of both impls): they are only reached from
    // `scan_avx2` / `scan_avx512`, entered after runtime detection of the features;
    // pointer validity is the caller's contract, documented on the trait.
    impl Simd for Avx2 {
        type V = __m256;
        const W: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_load_ps(p) }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn gt(v: __m256, thr: __m256) -> u32 {
            unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, thr)) as u32 }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn max(s: __m256, m: __m256) -> __m256 {
            // maxps returns its second operand unless the first is greater.
            unsafe { _mm256_max_ps(s, m) }
        }
        #[inline(always)]
        unsafe fn ge(v: __m256, thr: __m256) -> u32 {
            unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, thr)) as u32 }
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast::<i8>()) }
        }
    }

    impl Simd for Avx512 {
        type V = __m512;
        const W: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_load_ps(p) }
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn gt(v: __m512, thr: __m512) -> u32 {
            unsafe { u32::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, thr)) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn max(s: __m512, m: __m512) -> __m512 {
            // maxps returns its second operand unless the first is greater.
            unsafe { _mm512_max_ps(s, m) }
        }
        #[inline(always)]
        unsafe fn ge(v: __m512, thr: __m512) -> u32 {
            unsafe { u32::from(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, thr)) }
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast::<i8>()) }
        }
    }
}
