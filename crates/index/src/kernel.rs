//! Fused scoring + selection kernels over a packed item matrix.
//!
//! Layout ([`Packed`]): items in blocks of [`BLOCK`] = 16, each block stored dim-major
//! (`block[d][lane]` = item `16·b + lane`, coordinate `d`), 64-byte aligned, the last
//! block padded with zeros. One AVX-512 register (or two AVX2 registers) then holds the
//! partial scores of 16 items, and the inner loop is `acc += splat(q[d]) * block[d]`:
//! no horizontal sums.
//!
//! A *tile* is `Q` queries × `NV` vectors of items (8 × 32 items under AVX-512 for
//! batches, 1 × 128 for a lone query); its `Q × NV` accumulators live in registers
//! for the whole `d` loop (a GEMM micro-kernel) and are then stored to a per-query
//! scratch chunk of up to 2048 scores (64 KiB for 8 queries, L2-resident), never to a
//! full score matrix. Per chunk and query ([`select_chunk`]): excluded items are set
//! to `-inf` by merging the sorted exclusion list, the 16 lane maxima are taken, and
//! their k-th largest `t` is an exact lower bound on the k-th best score (16 distinct
//! admissible items); one vector pass then hands only the lanes with `s ≥ t` (and
//! above the bound carried from earlier chunks) to the [`Gate`], typically about `k`
//! per chunk. For `k > 16` the maxima are taken per lane and row group (`≥ 2k`
//! groups); the exact per-item fallback only runs when fewer than `k` finite maxima
//! exist (tiny chunks, masses of excluded or `-inf`/NaN scores).
//!
//! Bit-exact results across paths: every kernel computes each item's score as the same
//! serial chain `s = fma(q[d], x[d], s)` for `d = 0, 1, …, dim-1` starting from `0`
//! (one fused multiply-add per step, i.e. one rounding per step), whatever the lane
//! width, tile shape or query count. So the single-query and batched paths, and the
//! AVX-512, AVX2 and scalar kernels, give identical scores and identical hits.
//!
//! `unsafe` is confined to this module: the `std::arch` intrinsics (callable only in
//! functions compiled with the matching target feature, entered after runtime
//! detection) and raw-pointer loads whose bounds are argued next to them.
#![allow(unsafe_code)]

mod simd;

#[cfg(target_arch = "x86_64")]
use crate::cpu::{simd_cap, SimdCap};
pub(crate) use crate::cpu::{Row, BLOCK};
use crate::select::Gate;
#[cfg(target_arch = "x86_64")]
use simd::x86;
use simd::{Scalar, Simd};

/// Packed matrices larger than this many bytes get software prefetch (about L2 size).
const PREFETCH_ABOVE: usize = 1 << 20;

/// The item matrix in blocks of 16 items, dim-major inside a block (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Packed {
    dim: usize,
    n: usize,
    /// `blocks × dim` rows; block `b` is `rows[b * dim .. (b + 1) * dim]`.
    rows: Vec<Row>,
}

impl Packed {
    /// Packs `items` (`n × dim`, row-major); `dim ≥ 1`.
    pub(crate) fn new(items: &[f32], dim: usize) -> Self {
        let n = items.len() / dim;
        let blocks = n.div_ceil(BLOCK);
        let mut rows = vec![Row([0.0; BLOCK]); blocks * dim];
        for (i, item) in items.chunks_exact(dim).enumerate() {
            let (b, lane) = (i / BLOCK, i % BLOCK);
            for (d, &x) in item.iter().enumerate() {
                rows[b * dim + d].0[lane] = x;
            }
        }
        Packed { dim, n, rows }
    }

    fn blocks(&self) -> usize {
        self.rows.len() / self.dim.max(1)
    }
}

/// Which kernel scores the items. [`Kernel::best`] picks the widest the CPU runs;
/// tests force each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Portable: 16 lanes of `f32::mul_add`.
    Scalar,
    /// AVX2 + FMA: two 8-lane registers per block.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F: one 16-lane register per block.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The int8 prefilter with exact rescoring (`quant`, AVX-512 VNNI); the exact
    /// index routes through it, and anything it does not take (or a bare
    /// [`scan`](Kernel::scan)) runs as [`Avx512`](Kernel::Avx512).
    #[cfg(target_arch = "x86_64")]
    Int8,
}

impl Kernel {
    /// The widest kernel this CPU supports (detection is cached by `std`) and
    /// [`simd_cap`] allows.
    pub(crate) fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            let cap = simd_cap();
            if crate::quant::available() {
                return Kernel::Int8;
            }
            if cap >= SimdCap::Avx512 && std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if cap >= SimdCap::Avx2
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    }

    /// Every kernel this CPU supports, narrowest first (for tests and benchmarks).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Kernel> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Kernel::Avx512);
            }
            if crate::quant::available() {
                v.push(Kernel::Int8);
            }
        }
        v
    }

    /// Scores every item of `packed` against each query of `queries` (`gates.len() ×
    /// dim`, row-major) and offers the passing lanes to that query's gate, items in
    /// increasing index order.
    pub(crate) fn scan(self, packed: &Packed, queries: &[f32], gates: &mut [Gate<'_>]) {
        assert_eq!(queries.len(), gates.len() * packed.dim, "queries × dim");
        if packed.n == 0 || gates.is_empty() {
            return;
        }
        match self {
            Kernel::Scalar => scan_all::<Scalar>(packed, queries, gates),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                );
                // SAFETY: AVX2 and FMA are present (asserted just above), the only
                // requirement of calling a `#[target_feature(enable = "avx2,fma")]` fn.
                unsafe { scan_avx2(packed, queries, gates) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 | Kernel::Int8 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"));
                // SAFETY: AVX-512F is present (asserted just above).
                unsafe { scan_avx512(packed, queries, gates) }
            }
        }
    }

    /// The score of every item of `packed` (padding lanes included, as 0) against
    /// one `query`, each the same serial fma chain as the scans, into `out` (one
    /// [`Row`] per block of 16 items). No selection: for small matrices whose every
    /// score is needed (an IVF index's list order).
    pub(crate) fn score_all(self, packed: &Packed, query: &[f32], out: &mut Vec<Row>) {
        assert_eq!(query.len(), packed.dim, "query × dim");
        out.clear();
        out.resize(packed.blocks(), Row([0.0; BLOCK]));
        if packed.n == 0 {
            return;
        }
        match self {
            Kernel::Scalar => score_all_with::<Scalar, 4>(packed, query, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                );
                // SAFETY: AVX2 and FMA are present (asserted just above).
                unsafe { score_all_avx2(packed, query, out) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 | Kernel::Int8 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"));
                // SAFETY: AVX-512F is present (asserted just above).
                unsafe { score_all_avx512(packed, query, out) }
            }
        }
    }

    /// `Σ_d row[d]·q[d]` as the same serial fma chain as the block kernels (so an
    /// allow-list query scores each item bit-identically to a full scan).
    pub(crate) fn dot(self, row: &[f32], q: &[f32]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 | Kernel::Avx512 | Kernel::Int8 => {
                assert!(std::arch::is_x86_feature_detected!("fma"));
                // SAFETY: FMA is present (asserted just above).
                unsafe { dot_fma(row, q) }
            }
            Kernel::Scalar => dot_chain(row, q),
        }
    }
}

#[inline(always)]
fn dot_chain(row: &[f32], q: &[f32]) -> f32 {
    row.iter().zip(q).fold(0.0f32, |s, (&x, &y)| fused(y, x, s))
}

/// `a × b + c` rounded once, as the FMA kernels compute it, so every kernel gives
/// the same scores. WebAssembly has no fused multiply-add: there `f32::mul_add` is a
/// software routine (about 10 ns, which made a browser query over 1,682 × 64 factors
/// take 1 ms). The product of two f32 is exact in f64, so the sum rounded in f64 then
/// to f32 is the fused result except when the double rounding lands on an f32 tie
/// (vanishingly rare, and then one unit in the last place).
#[inline(always)]
pub(crate) fn fused(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        fused_in_f64(a, b, c)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        a.mul_add(b, c)
    }
}

/// [`fused`] without a fused multiply-add instruction (WebAssembly's path; tested
/// against `mul_add` on every target).
#[cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code))]
#[inline(always)]
fn fused_in_f64(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

#[cfg(test)]
mod fused_tests {
    #[test]
    fn the_f64_path_rounds_as_a_fused_multiply_add() {
        // xorshift64: products and sums across magnitudes, signs and exponents.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut differ = 0;
        for _ in 0..2_000_000 {
            let r = next();
            let v = |shift: u32, scale: i32| {
                ((r >> shift) & 0xff_ffff) as f32 / (1 << 23) as f32 * 2f32.powi(scale) - 1.0
            };
            let (a, b, c) = (v(0, 0), v(20, 3), v(40, (r % 9) as i32 - 4));
            if super::fused_in_f64(a, b, c).to_bits() != a.mul_add(b, c).to_bits() {
                differ += 1;
            }
        }
        assert_eq!(differ, 0);
    }
}

/// [`dot_chain`] compiled with FMA, so `mul_add` is one instruction, not a libm call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn dot_fma(row: &[f32], q: &[f32]) -> f32 {
    dot_chain(row, q)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scan_avx2(packed: &Packed, queries: &[f32], gates: &mut [Gate<'_>]) {
    // 16 ymm registers: 4 queries × 2 vectors (8 accumulators) for batches, 1 × 8 alone.
    scan_shapes::<x86::Avx2, 4, 2, 8>(packed, queries, gates);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scan_avx512(packed: &Packed, queries: &[f32], gates: &mut [Gate<'_>]) {
    // 32 zmm registers: 8 queries × 2 blocks (16 accumulators), or 1 query × 8 blocks.
    scan_shapes::<x86::Avx512, 8, 2, 8>(packed, queries, gates);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn score_all_avx2(packed: &Packed, query: &[f32], out: &mut [Row]) {
    score_all_with::<x86::Avx2, 8>(packed, query, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn score_all_avx512(packed: &Packed, query: &[f32], out: &mut [Row]) {
    score_all_with::<x86::Avx512, 8>(packed, query, out);
}

/// [`Kernel::score_all`] with tiles of one query × `NV` vectors (`out` holds one row
/// per block).
#[inline(always)]
fn score_all_with<S: Simd, const NV: usize>(packed: &Packed, query: &[f32], out: &mut [Row]) {
    let nb = packed.blocks();
    let per_block = BLOCK / S::W;
    let tile_blocks = NV.div_ceil(per_block);
    let mut b = 0;
    if NV.is_multiple_of(per_block) {
        while b + tile_blocks <= nb {
            tile::<S, 1, NV>(packed, query, out, nb, 0, b);
            b += tile_blocks;
        }
    }
    while b < nb {
        if S::W == BLOCK {
            tile::<S, 1, 1>(packed, query, out, nb, 0, b);
        } else {
            tile::<S, 1, 2>(packed, query, out, nb, 0, b);
        }
        b += 1;
    }
}

fn scan_all<S: Simd>(packed: &Packed, queries: &[f32], gates: &mut [Gate<'_>]) {
    scan_shapes::<S, 4, 1, 4>(packed, queries, gates);
}

/// Groups of `QB` queries with `NB` vectors per tile; the leftover queries in groups of
/// 4, 2 and 1; a lone query with `N1` vectors per tile (independent fma chains to hide
/// latency).
#[inline(always)]
fn scan_shapes<S: Simd, const QB: usize, const NB: usize, const N1: usize>(
    packed: &Packed,
    queries: &[f32],
    gates: &mut [Gate<'_>],
) {
    let dim = packed.dim;
    let m = gates.len();
    let chunk = CHUNK_BLOCKS.min(packed.blocks());
    // The per-thread scratch is reused across calls (every row of a chunk is written
    // by a tile before selection reads it, so old contents never matter); taken out
    // of the thread-local for the call, so nothing is borrowed across it.
    let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let need = m.min(QB) * chunk;
    if scratch.len() < need {
        scratch.resize(need, Row([0.0; BLOCK]));
    }
    let mut q0 = 0;
    while m - q0 >= QB {
        group::<S, QB, NB>(
            packed,
            &queries[q0 * dim..],
            &mut gates[q0..q0 + QB],
            &mut scratch,
        );
        q0 += QB;
    }
    if QB > 4 && m - q0 >= 4 {
        group::<S, 4, NB>(
            packed,
            &queries[q0 * dim..],
            &mut gates[q0..q0 + 4],
            &mut scratch,
        );
        q0 += 4;
    }
    if QB > 2 && m - q0 >= 2 {
        group::<S, 2, NB>(
            packed,
            &queries[q0 * dim..],
            &mut gates[q0..q0 + 2],
            &mut scratch,
        );
        q0 += 2;
    }
    while q0 < m {
        group::<S, 1, N1>(
            packed,
            &queries[q0 * dim..],
            &mut gates[q0..q0 + 1],
            &mut scratch,
        );
        q0 += 1;
    }
    SCRATCH.with(|s| *s.borrow_mut() = scratch);
}

thread_local! {
    /// Score chunks of the current thread's scans (see `scan_shapes`).
    static SCRATCH: std::cell::RefCell<Vec<Row>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Blocks per chunk: the scores of `Q` queries × this many blocks go to a scratch
/// buffer (64 KiB for 8 queries, in L2) before selection. A multiple of every tile
/// width in blocks.
const CHUNK_BLOCKS: usize = 128;

/// All items for `Q` queries, chunk by chunk: full tiles of `NV` vectors, the leftover
/// blocks one by one, then selection of each query's chunk of scores.
#[inline(always)]
fn group<S: Simd, const Q: usize, const NV: usize>(
    packed: &Packed,
    queries: &[f32],
    gates: &mut [Gate<'_>],
    scratch: &mut [Row],
) {
    let nb = packed.blocks();
    let chunk = CHUNK_BLOCKS.min(nb);
    assert!(gates.len() == Q && queries.len() >= Q * packed.dim);
    assert!(scratch.len() >= Q * chunk);
    let per_block = BLOCK / S::W;
    // Blocks per tile, rounded up: an AVX2 tile of one vector still spans a block.
    let tile_blocks = NV.div_ceil(per_block);
    for cb in (0..nb).step_by(chunk) {
        let end = nb.min(cb + chunk);
        let mut b = cb;
        if NV.is_multiple_of(per_block) {
            while b + tile_blocks <= end {
                tile::<S, Q, NV>(packed, queries, scratch, chunk, cb, b);
                b += tile_blocks;
            }
        }
        while b < end {
            if S::W == BLOCK {
                tile::<S, Q, 1>(packed, queries, scratch, chunk, cb, b);
            } else {
                tile::<S, Q, 2>(packed, queries, scratch, chunk, cb, b);
            }
            b += 1;
        }
        let valid = packed.n.min(end * BLOCK) - cb * BLOCK;
        for (q, gate) in gates.iter_mut().enumerate() {
            let rows = &mut scratch[q * chunk..q * chunk + (end - cb)];
            select_chunk::<S>(gate, rows, (cb * BLOCK) as u32, valid);
        }
    }
}

/// Scores `Q` queries × the `NV · W` items starting at block `b` in registers and
/// stores them to `scratch` (query `q`'s chunk, which starts at block `cb`, is
/// `scratch[q · chunk ..][..chunk]`).
#[inline(always)]
fn tile<S: Simd, const Q: usize, const NV: usize>(
    packed: &Packed,
    queries: &[f32],
    scratch: &mut [Row],
    chunk: usize,
    cb: usize,
    b: usize,
) {
    let dim = packed.dim;
    let per_block = BLOCK / S::W;
    debug_assert!(NV.is_multiple_of(per_block));
    let blocks = NV / per_block;
    assert!((b + blocks) * dim <= packed.rows.len() && queries.len() >= Q * dim);
    assert!(b >= cb && b + blocks - cb <= chunk && scratch.len() >= Q * chunk);
    let rows = packed.rows.as_ptr().cast::<f32>();
    let qp = queries.as_ptr();
    let out = scratch.as_mut_ptr().cast::<f32>();
    // Catalogues beyond L2 stream from memory: fetch the next tile into L2 while this
    // one is scored (each of its blocks is its own stream of `dim` cache lines, about
    // a page, which the hardware prefetchers pick up late). Measured on 1M × 64, one
    // query: no prefetch ≈ T0 (L1) ≈ 11.8 ms, T1 (L2) one tile ahead ≈ 8.2–8.8 ms,
    // two tiles ahead ≈ 9.1 ms.
    let prefetch = packed.rows.len() * BLOCK * 4 > PREFETCH_ABOVE;
    // SAFETY (whole block): the backend's features are enabled (every caller is a
    // kernel entered after detection). Loads: vector `v` of the tile reads row
    // `(b + v / per_block) · dim + d` at lane offset `(v % per_block) · W`, `W` floats;
    // the first assertion keeps the row index below `rows.len()` for `d < dim`, and
    // `(v % per_block) · W + W ≤ 16`. `Row` is 64-byte aligned, so the aligned loads
    // are too (lane offsets are multiples of `W` floats = the vector size). Query
    // reads `qp + q · dim + d` stay below `Q · dim ≤ queries.len()`. Stores: query
    // `q`, vector `v` writes floats `(q · chunk + b - cb) · 16 + v · W ..+ W`, inside
    // `scratch` by the second assertion (`v · W + W ≤ blocks · 16`).
    unsafe {
        // One pointer per vector of the tile (row `d` of it is `+ d · 16` floats), so
        // the loop needs no per-`d` index arithmetic.
        let streams: [*const f32; NV] = std::array::from_fn(|v| {
            rows.add((b + v / per_block) * dim * BLOCK + (v % per_block) * S::W)
        });
        let mut acc = [[S::zero(); NV]; Q];
        for d in 0..dim {
            if prefetch {
                for bi in 0..blocks {
                    // Any address is fine for a prefetch; `wrapping_add` keeps the
                    // pointer arithmetic defined past the end.
                    S::prefetch(rows.wrapping_add(((b + blocks + bi) * dim + d) * BLOCK));
                }
            }
            let mut x = [S::zero(); NV];
            for (xv, p) in x.iter_mut().zip(&streams) {
                *xv = S::load(p.add(d * BLOCK));
            }
            for (q, accq) in acc.iter_mut().enumerate() {
                let s = S::splat(*qp.add(q * dim + d));
                for v in 0..NV {
                    accq[v] = S::fma(s, x[v], accq[v]);
                }
            }
        }
        for (q, accq) in acc.iter().enumerate() {
            let dst = out.add((q * chunk + b - cb) * BLOCK);
            for (v, &a) in accq.iter().enumerate() {
                S::store(dst.add(v * S::W), a);
            }
        }
    }
}

/// Lane-wise maxima of `rows` (`-inf` for an empty slice; NaN never wins).
///
/// # Safety
/// The backend's features must be enabled (true inside every kernel).
#[inline(always)]
unsafe fn group_maxima<S: Simd>(rows: &[Row]) -> [f32; BLOCK] {
    let per_block = BLOCK / S::W;
    let mut out = [0f32; BLOCK];
    // SAFETY: features enabled (caller); every load reads `W` floats at offset
    // `h · W ≤ 16 - W` of a 64-byte aligned `Row`, and every store writes `W` floats
    // at offset `h · W` of the 16-float `out`.
    unsafe {
        // Four independent running maxima per half, so the loop is not one serial
        // chain of max latencies; merged at the end (max is exact and order-free).
        let mut m = [[S::splat(f32::NEG_INFINITY); 2]; 4];
        let mut quads = rows.chunks_exact(4);
        for quad in &mut quads {
            for (mj, row) in m.iter_mut().zip(quad) {
                for (h, mh) in mj.iter_mut().enumerate().take(per_block) {
                    *mh = S::max(S::load(row.0.as_ptr().add(h * S::W)), *mh);
                }
            }
        }
        for row in quads.remainder() {
            for (h, mh) in m[0].iter_mut().enumerate().take(per_block) {
                *mh = S::max(S::load(row.0.as_ptr().add(h * S::W)), *mh);
            }
        }
        let [m0, m1, m2, m3] = m;
        for h in 0..per_block {
            let all = S::max(S::max(m0[h], m1[h]), S::max(m2[h], m3[h]));
            S::store(out.as_mut_ptr().add(h * S::W), all);
        }
    }
    out
}

/// The `k`-th largest of 16 values without NaN (`1 ≤ k ≤ 16`): the largest `v` with
/// at least `k` values `≥ v`. Branch-free counting, which vectorises, instead of a
/// data-dependent partial sort.
#[inline(always)]
fn kth_largest(m: &[f32; BLOCK], k: usize) -> f32 {
    let mut t = f32::NEG_INFINITY;
    for &v in m {
        let at_least = m.iter().map(|&x| u32::from(x >= v)).sum::<u32>() as usize;
        if at_least >= k && v > t {
            t = v;
        }
    }
    t
}

/// Selection over one query's chunk of scores (`rows`, items `start ..`, the first
/// `valid` real): exclusions and padding to `-inf`, lane maxima, then a vector pass
/// that offers only lanes within the gate's bounds (see [`Gate`]).
#[inline(always)]
fn select_chunk<S: Simd>(gate: &mut Gate<'_>, rows: &mut [Row], start: u32, valid: usize) {
    let per_block = BLOCK / S::W;
    {
        let flat = rows.as_mut_ptr().cast::<f32>();
        // SAFETY: `rows` is `rows.len()` rows of 16 contiguous floats (`Row` is
        // `repr(C)` around `[f32; 16]`), so the flat view covers exactly its memory,
        // and `rows` is not used while the view lives.
        let flat = unsafe { std::slice::from_raw_parts_mut(flat, rows.len() * BLOCK) };
        gate.begin_chunk(flat, start, valid);
    }
    let k = gate.k();
    let t = if k <= BLOCK {
        // SAFETY: as in `group_maxima`.
        let lane_max = unsafe { group_maxima::<S>(rows) };
        kth_largest(&lane_max, k)
    } else {
        // Maxima of 16 lanes × `groups` row groups: `16 · groups ≥ 2k` distinct items.
        let groups = k.saturating_mul(2).div_ceil(BLOCK).min(rows.len());
        let per = rows.len().div_ceil(groups).max(1);
        let mut maxima: Vec<f32> = Vec::with_capacity(groups * BLOCK);
        for g in rows.chunks(per) {
            // SAFETY: as in `group_maxima`.
            maxima.extend_from_slice(&unsafe { group_maxima::<S>(g) });
        }
        if maxima.len() >= k {
            let (_, &mut t, _) = maxima.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            t
        } else {
            f32::NEG_INFINITY
        }
    };
    match gate.bounds(t) {
        Some((t, b)) => {
            // SAFETY: as above (features enabled, aligned in-bounds loads of a `Row`).
            unsafe {
                let (tv, bv) = (S::splat(t), S::splat(b));
                for (r, row) in rows.iter().enumerate() {
                    let mut mask = 0u32;
                    for h in 0..per_block {
                        let v = S::load(row.0.as_ptr().add(h * S::W));
                        mask |= (S::ge(v, tv) & S::gt(v, bv)) << (h * S::W);
                    }
                    if mask != 0 {
                        gate.push_lanes(&row.0, mask, start + (r * BLOCK) as u32);
                    }
                }
            }
            gate.end_chunk(Some(t));
        }
        None => {
            let flat: Vec<f32> = rows.iter().flat_map(|r| r.0).collect();
            gate.fallback(&flat, start, valid);
            gate.end_chunk(None);
        }
    }
}
