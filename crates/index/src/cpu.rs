//! What the CPU may run and the 16-lane block every kernel shares: [`BLOCK`], [`Row`],
//! and the `SHORTLIST_SIMD` cap ([`simd_cap`]). It sits below both the f32 kernels
//! (`kernel`) and the int8 prefilter (`quant`), so that neither imports the other for
//! these (`kernel` picks `quant` as one of its kernels; `quant` needs only the layout).

/// Items per packed block (one AVX-512 register of `f32`).
pub(crate) const BLOCK: usize = 16;

/// One 64-byte aligned row of a packed block: coordinate `d` of 16 items.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
pub(crate) struct Row(pub(crate) [f32; BLOCK]);

/// The widest instruction set the index may use, from the environment variable
/// `SHORTLIST_SIMD` (read once): `off` (the scalar kernels), `avx2` (no AVX-512),
/// `avx512` (AVX-512 f32 kernels, no int8 prefilter), unset or `all` (whatever the
/// CPU has). It lets the fallbacks be tested on a CPU that has everything (CI runs
/// the index tests once with `SHORTLIST_SIMD=off`). An unknown value means `all`,
/// with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum SimdCap {
    Off,
    Avx2,
    Avx512,
    All,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn simd_cap() -> SimdCap {
    static CAP: std::sync::OnceLock<SimdCap> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("SHORTLIST_SIMD").as_deref() {
        Err(_) | Ok("" | "all") => SimdCap::All,
        Ok("off") => SimdCap::Off,
        Ok("avx2") => SimdCap::Avx2,
        Ok("avx512") => SimdCap::Avx512,
        Ok(other) => {
            eprintln!(
                "warning: SHORTLIST_SIMD={other:?} is not one of off, avx2, avx512, all; using all"
            );
            SimdCap::All
        }
    })
}
