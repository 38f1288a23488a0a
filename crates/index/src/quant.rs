//! Exact top-K through an int8 prefilter (AVX-512 VNNI), for batches and single queries.
//!
//! The f32 kernels of `kernel` spend two fused multiply-adds per score (dim 32); one
//! `vpdpbusd` does 64 int8 multiply-adds, four times the f32 rate. So the items are also
//! kept quantised (per item: `v ≈ s_v · v̂`, `v̂ ∈ [-127, 127]`, stored `+128` as u8 in
//! blocks of 16 items × 4 dimensions), each query is quantised the same way, and every
//! item gets an approximate score `a = s_q · s_v · (q̂ · v̂)` plus a rigorous bound on its
//! distance to the f32 score the other kernels compute:
//!
//! `|q·v − a| ≤ ‖q − s_q q̂‖·‖v‖ + ‖s_q q̂‖·‖v − s_v v̂‖` (+ float rounding slack),
//!
//! i.e. `E = A_q·‖v‖ + B_q·‖v − s_v v̂‖`, per query two numbers, per item two norms.
//! With `lb = a − E` and `ub = a + E`: at least `k` items score `≥ L`, the k-th largest
//! lower bound (taken, as in `kernel`, from the maxima of disjoint groups of items), so
//! the k-th best f32 score is `≥ L` and every item of the top k (ties included) has
//! `ub ≥ L`. Only those candidates — about 17 of 1682 for k = 10 on random vectors —
//! are scored exactly, with the same serial fma chain as every other path, so the
//! result is the exact top-k, bit for bit. (Approximate scores are kept in units of
//! `s_q`, and so are `A_q`, `B_q`: one multiply less per score.)
//!
//! Measured at ML-100k sizes (943 × 1682, dim 32, one thread): 0.95–1.05 µs per query
//! against 1.55–1.65 µs for the f32 AVX-512 kernel; of that, int8 scoring ≈ 0.3 µs
//! (one `vpdpbusd` per 16 items × 4 dims, the floor of this design), bounds and the
//! k-th lower bound ≈ 0.15, exact rescoring ≈ 0.12, query preparation ≈ 0.08, the rest
//! selection and the result. Things tried that did not pay on this CPU (Zen 4): 16-lane
//! gathers for rescoring (the compiler's own auto-vectorised gathers were the slowest),
//! scoring whole packed f32 blocks, a global instead of per-item bound, bounds fused
//! into the tile epilogue, 4 × 4 tiles, smaller chunks, a branch per row on its
//! candidate mask; and a compress-and-store of candidate numbers per row was replaced
//! (its 64-byte unaligned stores cost 13 % of one thread, and two threads reached only
//! 1.5–1.8× of one; scanning the set bits of the masks reaches 1.7–2.0×).
//!
//! Used only when the CPU has AVX-512 F/BW/VNNI and every item is finite (and its norms
//! fit `f32`); a query that cannot be quantised (zero, non-finite) takes the f32 path.

// The int8 path runs on x86-64 only; elsewhere its machinery is compiled (the
// layout is shared) but never called.
#![cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_imports, unused_variables)
)]
#![allow(unsafe_code)]

use crate::index_base::Hit;
use crate::kernel::{Row, BLOCK};
use crate::select::{sanitize, Admissible};

#[cfg(test)]
thread_local! {
    /// Candidates scored exactly on this thread (tests check the prefilter actually
    /// prunes; per thread, so tests running in parallel do not count each other's).
    pub(crate) static CANDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Unit roundoff of `f32`.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Items per chunk of approximate scores kept in scratch (as in `kernel`).
const CHUNK_BLOCKS: usize = 128;

/// One 64-byte row of a quantised block: 16 items × 4 coordinates, `v̂ + 128`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct QRow([u8; 64]);

/// The items quantised to int8 with their per-item scale and norms (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Int8Items {
    dim: usize,
    /// Coordinates padded to a multiple of 4 (zeros), in groups of 4.
    dim4: usize,
    n: usize,
    /// `blocks × dim4` rows; block `b` is `rows[b * dim4 .. (b + 1) * dim4]`.
    rows: Vec<QRow>,
    /// Per block: the 16 items' scales `s_v` (0 for padding).
    scale: Vec<Row>,
    /// Per block: `‖v‖`, rounded up.
    norm: Vec<Row>,
    /// Per block: `‖v − s_v v̂‖`, rounded up.
    resid: Vec<Row>,
}

/// Whether this CPU runs the int8 kernel (and `SHORTLIST_SIMD` allows it, see
/// [`simd_cap`](crate::kernel::simd_cap)).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::kernel::simd_cap() == crate::kernel::SimdCap::All
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` (≥ 0) as `f32`, rounded up.
pub(crate) fn up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x {
        f.next_up()
    } else {
        f
    }
}

/// Symmetric int8 quantisation of finite `v`: `Some(s)` with `v ≈ s · v̂` written to
/// `out`; `None` when the scale over- or underflows (tiny, subnormal coordinates).
#[inline(always)]
fn quantize(v: &[f32], out: &mut [i8]) -> Option<f32> {
    // Eight partial maxima, so that it vectorises (`v` is finite: no NaN to order).
    let mut m8 = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            m8[l] = if c[l].abs() > m8[l] {
                c[l].abs()
            } else {
                m8[l]
            };
        }
    }
    let max =
        chunks
            .remainder()
            .iter()
            .chain(&m8)
            .fold(0f32, |m, x| if x.abs() > m { x.abs() } else { m });
    if max == 0.0 {
        out.fill(0);
        return Some(0.0);
    }
    let s = max / 127.0;
    let inv = 127.0 / max;
    if !(s > 0.0 && inv.is_finite()) {
        return None;
    }
    for (o, &x) in out.iter_mut().zip(v) {
        // Round half away from zero without a libm call (`as` truncates toward 0).
        // (`q̂` need not be the nearest: the bound uses the `q̂` actually chosen.)
        let y = (x * inv).clamp(-127.0, 127.0);
        // SAFETY: `x` and `inv` are finite and `|x| ≤ max`, so `y` is finite and
        // `y ± 0.5` lies within ±127.5, which fits `i32`.
        *o = unsafe { (y + 0.5f32.copysign(y)).to_int_unchecked::<i32>() } as i8;
    }
    Some(s)
}

/// `(‖v‖, ‖v − s·v̂‖, ‖s·v̂‖)` in `f64` (eight partial sums, so it vectorises).
#[inline(always)]
fn norms(v: &[f32], s: f32, vh: &[i8]) -> (f64, f64, f64) {
    let (mut n, mut r, mut h) = ([0f64; 8], [0f64; 8], [0f64; 8]);
    let s = f64::from(s);
    let vh = &vh[..v.len()]; // `vh` may carry zero padding
    let mut xs = v.chunks_exact(8);
    let mut qs = vh.chunks_exact(8);
    for (x8, q8) in (&mut xs).zip(&mut qs) {
        for l in 0..8 {
            let x = f64::from(x8[l]);
            let y = s * f64::from(q8[l]);
            n[l] += x * x;
            r[l] += (x - y) * (x - y);
            h[l] += y * y;
        }
    }
    for (&x, &q) in xs.remainder().iter().zip(qs.remainder()) {
        let x = f64::from(x);
        let y = s * f64::from(q);
        n[0] += x * x;
        r[0] += (x - y) * (x - y);
        h[0] += y * y;
    }
    let sum = |a: [f64; 8]| a.iter().sum::<f64>().sqrt();
    (sum(n), sum(r), sum(h))
}

impl Int8Items {
    /// Quantises `items` (`n × dim`, row-major). `None` when the kernel cannot serve
    /// them exactly: a non-finite coordinate or a norm beyond `f32`.
    pub(crate) fn new(items: &[f32], dim: usize) -> Option<Self> {
        // Beyond ~66k dimensions the i32 dot products could wrap.
        if dim == 0 || dim > 60_000 || items.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let n = items.len() / dim;
        let dim4 = dim.div_ceil(4);
        let blocks = n.div_ceil(BLOCK);
        let mut rows = vec![QRow([128; 64]); blocks * dim4];
        let mut scale = vec![Row([0.0; BLOCK]); blocks];
        let mut norm = vec![Row([0.0; BLOCK]); blocks];
        let mut resid = vec![Row([0.0; BLOCK]); blocks];
        let mut vh = vec![0i8; dim];
        for (i, v) in items.chunks_exact(dim).enumerate() {
            let (b, lane) = (i / BLOCK, i % BLOCK);
            let s = quantize(v, &mut vh)?;
            let (nv, ev, _) = norms(v, s, &vh);
            let (nv, ev) = (up(nv), up(ev));
            if !nv.is_finite() || !ev.is_finite() {
                return None;
            }
            scale[b].0[lane] = s;
            norm[b].0[lane] = nv;
            resid[b].0[lane] = ev;
            for (d, &q) in vh.iter().enumerate() {
                rows[b * dim4 + d / 4].0[lane * 4 + d % 4] = (i16::from(q) + 128) as u8;
            }
        }
        Some(Int8Items {
            dim,
            dim4,
            n,
            rows,
            scale,
            norm,
            resid,
        })
    }

    fn blocks(&self) -> usize {
        self.scale.len()
    }
}

/// A quantised query with its error coefficients.
#[derive(Debug, Clone)]
struct QQuery {
    /// Where its `dim4` words (`q̂` in groups of 4 bytes, little-endian, zero-padded)
    /// start in the scan's shared word buffer.
    off: usize,
    /// `128 · Σ q̂`: the offset the `+128` item encoding adds to every dot product.
    corr: i32,
    /// Coefficient of `‖v‖` in the bound.
    a: f32,
    /// Coefficient of `‖v − s_v v̂‖` in the bound.
    b: f32,
    /// Absolute slack (underflow).
    c: f32,
    /// The query's scale `s_q` (thresholds `l` are in its units).
    s: f32,
    /// `‖q‖`.
    norm: f64,
}

impl QQuery {
    /// `None` for a query the bound cannot cover (zero or non-finite).
    /// Appends the query's words to `words` (`qh` is a work buffer).
    #[inline(always)]
    fn new(q: &[f32], dim4: usize, words: &mut Vec<i32>, qh: &mut Vec<i8>) -> Option<Self> {
        if q.iter().any(|x| !x.is_finite()) {
            return None;
        }
        qh.clear();
        qh.resize(dim4 * 4, 0);
        let s = quantize(q, &mut qh[..q.len()])?;
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        let (nq, eq, nqh) = norms(q, s, qh);
        let d = q.len() as f64;
        // The f32 chain's rounding (γ_d · ‖q‖‖v‖), the rounding of `a` (a few u ·
        // ‖s_q q̂‖‖s_v v̂‖ ≤ … (‖v‖ + ‖v − s_v v̂‖)) and of the bound arithmetic itself,
        // all generously rounded up: a few parts per million of ‖q‖‖v‖.
        let slack = (d + 16.0) * 2.0 * U * (nq + nqh + eq);
        // Approximate scores are kept in units of `s_q` (one multiply less per score),
        // so the coefficients are too.
        let sq = f64::from(s);
        let a = up((eq + slack) * (1.0 + 1e-6) / sq);
        let b = up((nqh + slack) * (1.0 + 1e-6) / sq);
        if !a.is_finite() || !b.is_finite() {
            return None;
        }
        let off = words.len();
        words.extend(
            qh.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])),
        );
        let corr = 128 * qh.iter().map(|&x| i32::from(x)).sum::<i32>();
        // Subnormal products round to multiples of the smallest subnormal.
        let c = up(f64::from(f32::from_bits(1)) * (d + 8.0) * 4.0 / sq);
        Some(QQuery {
            off,
            corr,
            a,
            b,
            c,
            s,
            norm: nq,
        })
    }
}

/// Per-query selection state across chunks.
struct State<'a> {
    q: QQuery,
    adm: Admissible<'a>,
    k: usize,
    /// At least `k` admissible items have a lower bound `≥ l`.
    l: f32,
    /// Exactly scored candidates as [`key`]s (ascending = rank order), cut back to
    /// the best `k` when they pile up.
    keys: Vec<u64>,
    /// The answer, when the catalogue is one chunk (finished in place, no `keys`).
    result: Option<Vec<Hit>>,
    /// Item number of each position, when the items are stored permuted (IVF lists).
    ids: Option<&'a [u32]>,
    /// With `ids`: the best `k` exactly scored candidates as [`key`]s, worst on top.
    best: std::collections::BinaryHeap<u64>,
}

impl<'a> State<'a> {
    fn new(q: QQuery, adm: Admissible<'a>, k: usize, ids: Option<&'a [u32]>) -> Self {
        State {
            q,
            adm,
            k,
            l: f32::NEG_INFINITY,
            keys: Vec::new(),
            result: None,
            ids,
            best: std::collections::BinaryHeap::with_capacity(if ids.is_some() { k } else { 0 }),
        }
    }

    /// `kth`, the exact k-th best score of `k` admissible items already scored, is a
    /// proven lower bound on the final k-th score: it bounds the candidates of later
    /// chunks (a chunk's own lower bounds cannot when it holds fewer than `k` items:
    /// small IVF lists, large `k`). Raises `l` to it, in units of `s_q`, rounded down.
    fn raise(&mut self, kth: f32) {
        let kth = f64::from(kth) / f64::from(self.q.s);
        let l = (kth - kth.abs() * 1e-6) as f32;
        // `as` rounds to nearest: step down once more if that rounded up.
        let l = if f64::from(l) > kth { l.next_down() } else { l };
        if l > self.l {
            self.l = l;
        }
    }
}

/// Sort key of a hit: ascending order is rank order (higher score first, then lower
/// item). `score` must not be NaN.
#[inline(always)]
pub(crate) fn key(score: f32, item: u32) -> u64 {
    let bits = (score + 0.0).to_bits(); // -0 → +0
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    (u64::from(!ordered) << 32) | u64::from(item)
}

/// Inverse of [`key`].
pub(crate) fn unkey(k: u64) -> Hit {
    let ordered = !((k >> 32) as u32);
    let bits = if ordered >> 31 == 1 {
        ordered & 0x7FFF_FFFF
    } else {
        !ordered
    };
    Hit {
        item: k as u32,
        score: f32::from_bits(bits),
    }
}

/// The best `k` of `keys` (distinct: each holds its item), best first. Reorders
/// `keys`.
fn finish(keys: &mut [u64], k: usize) -> Vec<Hit> {
    let n = keys.len();
    if n <= 64 {
        // A few dozen candidates, in item order: place each at its rank (the number
        // of smaller keys), branch-free, instead of an insertion sort that
        // mispredicts on every shift.
        let mut out = vec![
            Hit {
                item: 0,
                score: 0.0
            };
            n.min(k)
        ];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only reached from the int8 path, which requires AVX-512.
        unsafe {
            x86::place_by_rank(keys, &mut out)
        };
        #[cfg(not(target_arch = "x86_64"))]
        for &x in keys.iter() {
            let rank = keys.iter().filter(|&&y| y < x).count();
            if rank < out.len() {
                out[rank] = unkey(x);
            }
        }
        return out;
    }
    keys.sort_unstable();
    keys[..k.min(n)].iter().map(|&x| unkey(x)).collect()
}

/// Per-chunk work buffers, shared by the queries of a scan.
#[derive(Default)]
struct Bufs {
    maxima: Vec<f32>,
    keys: Vec<u64>,
    cand: Vec<u32>,
    scores: Vec<f32>,
}

/// The exact top-`k` of every query of `queries` (`m × dim`) whose filter is not an
/// allow-list; `None` for a query the int8 path does not take (the caller runs it
/// through the f32 kernel). Requires [`available`].
pub(crate) fn search<'a>(
    t: &Int8Items,
    items: &[f32],
    queries: &[f32],
    adms: Vec<Admissible<'a>>,
    k: usize,
) -> Vec<Option<Vec<Hit>>> {
    assert!(available() && k > 0);
    // SAFETY: `available()` asserted above: the target features are present.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::search(t, items, queries, adms, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("available() is false off x86_64")
}

/// A run of stored positions scanned by [`search_ranges`]: blocks `blocks` (of 16
/// positions), of which positions `< valid_end` hold items (the rest is padding).
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) blocks: std::ops::Range<usize>,
    pub(crate) valid_end: usize,
    /// The largest `‖v‖` of its items, rounded up: the range is skipped when
    /// `‖q‖ · max_norm` (plus rounding) is below the k-th best score already proven.
    pub(crate) max_norm: f32,
    /// An upper bound, for the current query, on the `f32` score of every item of the
    /// range (rounding included), or `+inf`: the range is skipped when it is below the
    /// k-th best score already proven (an IVF list's centre bound).
    pub(crate) bound: f64,
    /// The items are stored by decreasing norm: the scan stops inside the range, chunk
    /// by chunk, once `‖q‖ ·` the next item's norm cannot reach the proven k-th score.
    pub(crate) sorted: bool,
}

/// Blocks per chunk inside a range sorted by norm (the granularity of the early stop).
const SORTED_CHUNK_BLOCKS: usize = 4;

/// Exact `f32` scores of the rows `which` of `items` (`n × dim`) against `q`, each the
/// same serial fma chain as every kernel (so they match a full scan bit for bit),
/// appended to `out` in the order of `which`. Fast (eight chains at a time) when the
/// CPU has FMA.
pub(crate) fn exact_scores(
    items: &[f32],
    dim: usize,
    q: &[f32],
    which: &[u32],
    out: &mut Vec<f32>,
) {
    assert_eq!(q.len(), dim);
    assert!(which.iter().all(|&i| (i as usize + 1) * dim <= items.len()));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: FMA is present; rows `which` lie inside `items` (asserted above).
        unsafe { x86::exact_chains_fma(items, dim, q, which, out) };
        return;
    }
    out.clear();
    out.extend(which.iter().map(|&i| {
        let row = &items[i as usize * dim..(i as usize + 1) * dim];
        row.iter().zip(q).fold(0f32, |s, (&x, &y)| y.mul_add(x, s))
    }));
}

/// The exact top-`k` of one query over the items in `ranges` only (an IVF probe):
/// `t` and `items` hold the items at permuted positions, `ids[p]` is the item number
/// at position `p`, `adm` excludes positions (sorted ascending). The hits carry item
/// numbers. `None` when the query cannot be quantised (the caller scans in `f32`).
/// Requires [`available`].
pub(crate) fn search_ranges(
    t: &Int8Items,
    items: &[f32],
    ids: &[u32],
    query: &[f32],
    adm: Admissible<'_>,
    k: usize,
    ranges: &[Range],
) -> Option<Vec<Hit>> {
    assert!(available() && k > 0);
    assert_eq!(query.len(), t.dim);
    assert_eq!(items.len(), t.n * t.dim);
    assert!(ids.len() >= t.n);
    assert!(ranges
        .iter()
        .all(|r| r.blocks.end <= t.blocks() && r.valid_end <= t.n.min(r.blocks.end * BLOCK)));
    let mut words = Vec::with_capacity(t.dim4);
    let mut qh = Vec::new();
    let q = QQuery::new(query, t.dim4, &mut words, &mut qh)?;
    let mut st = State::new(q, adm, k, Some(ids));
    // SAFETY: `available()` asserted above: the target features are present.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::scan_ranges(t, items, query, &words, &mut st, ranges)
    };
    let mut keys = std::mem::take(&mut st.best).into_vec();
    Some(match st.result.take() {
        Some(hits) => hits,
        None => finish(&mut keys, k),
    })
}

/// [`search`]'s body, inlined into `x86::search` so that the query preparation is
/// compiled for AVX-512 too.
#[inline(always)]
fn search_inline<'a>(
    t: &Int8Items,
    items: &[f32],
    queries: &[f32],
    adms: Vec<Admissible<'a>>,
    k: usize,
) -> Vec<Option<Vec<Hit>>> {
    assert_eq!(queries.len(), adms.len() * t.dim);
    assert_eq!(items.len(), t.n * t.dim);
    let mut out: Vec<Option<Vec<Hit>>> = vec![None; adms.len()];
    let mut states = Vec::with_capacity(adms.len());
    let mut which = Vec::with_capacity(adms.len());
    let mut words = Vec::with_capacity(adms.len() * t.dim4);
    let mut qh = Vec::new();
    for (i, (q, adm)) in queries.chunks_exact(t.dim).zip(adms).enumerate() {
        if let Some(q) = QQuery::new(q, t.dim4, &mut words, &mut qh) {
            states.push(State::new(q, adm, k, None));
            which.push(i);
        }
    }
    if t.n > 0 && !states.is_empty() {
        let qs: Vec<&[f32]> = which
            .iter()
            .map(|&i| &queries[i * t.dim..(i + 1) * t.dim])
            .collect();
        // SAFETY: `available()` asserted above: the target features are present.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::scan(t, items, &qs, &words, &mut states)
        };
    }
    for (i, s) in which.into_iter().zip(states) {
        let mut s = s;
        out[i] = Some(match s.result.take() {
            Some(hits) => hits,
            None => finish(&mut s.keys, k),
        });
    }
    out
}

/// Sets padding lanes (from `valid` on) and the excluded items of a chunk to `-inf`
/// (an exclusion list holds positions; a bitmap holds items, found through `ids` when
/// the items are stored permuted).
fn mask_chunk(
    adm: &mut Admissible<'_>,
    scores: &mut [f32],
    start: u32,
    valid: usize,
    ids: Option<&[u32]>,
) {
    for s in &mut scores[valid..] {
        *s = f32::NEG_INFINITY;
    }
    if let Some(b) = adm.bitmap() {
        crate::select::mask_bitmap(b, &mut scores[..valid], start, ids);
        return;
    }
    let list = adm.excluded();
    let end = u64::from(start) + valid as u64;
    let mut c = adm.cursor();
    while c < list.len() && list[c] < start {
        c += 1;
    }
    while c < list.len() && u64::from(list[c]) < end {
        scores[(list[c] - start) as usize] = f32::NEG_INFINITY;
        c += 1;
    }
    adm.set_cursor(c);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    thread_local! {
        /// Approximate-score chunks and work buffers of the current thread (as in
        /// `kernel`), reused across calls.
        static SCRATCH: std::cell::RefCell<(Vec<Row>, Bufs)> =
            std::cell::RefCell::new((Vec::new(), Bufs::default()));
    }

    /// [`super::search`] compiled for the int8 kernel's features.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,popcnt")]
    pub(super) fn search<'a>(
        t: &Int8Items,
        items: &[f32],
        queries: &[f32],
        adms: Vec<Admissible<'a>>,
        k: usize,
    ) -> Vec<Option<Vec<Hit>>> {
        search_inline(t, items, queries, adms, k)
    }

    /// All queries in groups of 8 (then 4, 2, 1), chunk by chunk.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,popcnt")]
    pub(super) fn scan(
        t: &Int8Items,
        items: &[f32],
        qs: &[&[f32]],
        words: &[i32],
        states: &mut [State<'_>],
    ) {
        let chunk = CHUNK_BLOCKS.min(t.blocks());
        let (mut scratch, mut bufs) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let need = states.len().min(8) * chunk;
        if scratch.len() < need {
            scratch.resize(need, Row([0.0; BLOCK]));
        }
        let m = states.len();
        let mut q0 = 0;
        while q0 < m {
            let left = m - q0;
            let (s, q) = (&mut states[q0..], &qs[q0..]);
            let used = if left >= 8 {
                group::<8>(t, items, q, words, s, &mut scratch, &mut bufs)
            } else if left >= 4 {
                group::<4>(t, items, q, words, s, &mut scratch, &mut bufs)
            } else if left >= 2 {
                group::<2>(t, items, q, words, s, &mut scratch, &mut bufs)
            } else {
                group::<1>(t, items, q, words, s, &mut scratch, &mut bufs)
            };
            q0 += used;
        }
        SCRATCH.with(|s| *s.borrow_mut() = (scratch, bufs));
    }

    /// One query over the blocks of `ranges`, each cut into chunks (see
    /// [`super::search_ranges`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,popcnt")]
    pub(super) fn scan_ranges(
        t: &Int8Items,
        items: &[f32],
        query: &[f32],
        words: &[i32],
        st: &mut State<'_>,
        ranges: &[Range],
    ) {
        let (mut scratch, mut bufs) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        if scratch.len() < CHUNK_BLOCKS {
            scratch.resize(CHUNK_BLOCKS, Row([0.0; BLOCK]));
        }
        let words: [&[i32]; 1] = [&words[..t.dim4]];
        let corr = [st.q.corr];
        // `fl(q·v) ≤ ‖q‖‖v‖ (1 + γ_d)`: a range whose bound is below the proven k-th
        // score (`l · s_q`, shaved by a relative 1e-6 for its own rounding) cannot
        // hold a result (ties included: the comparison is strict).
        let slack = 1.0 + (t.dim as f64 + 4.0) * 2.0 * U;
        let proven = |st: &State<'_>| {
            let p = f64::from(st.l) * f64::from(st.q.s);
            p - p.abs() * 1e-6
        };
        for r in ranges {
            if (st.q.norm * f64::from(r.max_norm) * slack).min(r.bound) < proven(st) {
                continue;
            }
            let start = (r.blocks.start * BLOCK) as u32;
            // Ranges come in any order: re-seek the exclusion cursor.
            let c = st.adm.excluded().partition_point(|&x| x < start);
            st.adm.set_cursor(c);
            let step = if r.sorted {
                SORTED_CHUNK_BLOCKS
            } else {
                CHUNK_BLOCKS
            };
            for cb in r.blocks.clone().step_by(step) {
                // Sorted by norm: the first item of the chunk has the largest norm of
                // the rest of the range.
                if r.sorted
                    && cb > r.blocks.start
                    && st.q.norm * f64::from(t.norm[cb].0[0]) * slack < proven(st)
                {
                    break;
                }
                let end = r.blocks.end.min(cb + step);
                let mut b = cb;
                while b + 4 <= end {
                    // SAFETY: features enabled; `b + 4 ≤ end ≤ blocks` (asserted by
                    // the caller); scratch holds `CHUNK_BLOCKS ≥ end - cb` rows.
                    unsafe { tile::<1, 4>(t, &words, &corr, &mut scratch, CHUNK_BLOCKS, cb, b) };
                    b += 4;
                }
                while b < end {
                    // SAFETY: as above with one block.
                    unsafe { tile::<1, 1>(t, &words, &corr, &mut scratch, CHUNK_BLOCKS, cb, b) };
                    b += 1;
                }
                let valid = r.valid_end.min(end * BLOCK).saturating_sub(cb * BLOCK);
                let rows = &mut scratch[..end - cb];
                select(t, items, query, st, &mut bufs, rows, cb, valid);
            }
        }
        SCRATCH.with(|s| *s.borrow_mut() = (scratch, bufs));
    }

    /// `Q` queries over all items; returns `Q`.
    #[inline(always)]
    fn group<const Q: usize>(
        t: &Int8Items,
        items: &[f32],
        qs: &[&[f32]],
        words: &[i32],
        states: &mut [State<'_>],
        scratch: &mut [Row],
        bufs: &mut Bufs,
    ) -> usize {
        let nb = t.blocks();
        let chunk = CHUNK_BLOCKS.min(nb);
        assert!(states.len() >= Q && qs.len() >= Q && scratch.len() >= Q * chunk);
        let words: [&[i32]; Q] =
            std::array::from_fn(|q| &words[states[q].q.off..states[q].q.off + t.dim4]);
        let corr: [i32; Q] = std::array::from_fn(|q| states[q].q.corr);
        for cb in (0..nb).step_by(chunk) {
            let end = nb.min(cb + chunk);
            let mut b = cb;
            // One query alone: four blocks per tile, for independent accumulators.
            while Q == 1 && b + 4 <= end {
                // SAFETY: as below with four blocks.
                unsafe { tile::<Q, 4>(t, &words, &corr, scratch, chunk, cb, b) };
                b += 4;
            }
            while b + 2 <= end {
                // SAFETY: features enabled (caller); `b + 2 ≤ nb`, scratch holds `Q`
                // chunks of `chunk ≥ end - cb` rows (asserted above).
                unsafe { tile::<Q, 2>(t, &words, &corr, scratch, chunk, cb, b) };
                b += 2;
            }
            if b < end {
                // SAFETY: as above with one block.
                unsafe { tile::<Q, 1>(t, &words, &corr, scratch, chunk, cb, b) };
            }
            let valid = t.n.min(end * BLOCK) - cb * BLOCK;
            for q in 0..Q {
                let rows = &mut scratch[q * chunk..q * chunk + (end - cb)];
                select(t, items, qs[q], &mut states[q], bufs, rows, cb, valid);
            }
        }
        Q
    }

    /// Approximate scores of `Q` queries × the `NB` blocks from `b`, to scratch.
    ///
    /// # Safety
    /// AVX-512 F/BW/VNNI must be enabled; `b + NB ≤ blocks`, `cb ≤ b`,
    /// `b + NB - cb ≤ chunk` and `scratch.len() ≥ Q · chunk`; every `words[q]` holds
    /// `dim4` words.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn tile<const Q: usize, const NB: usize>(
        t: &Int8Items,
        words: &[&[i32]; Q],
        corr: &[i32; Q],
        scratch: &mut [Row],
        chunk: usize,
        cb: usize,
        b: usize,
    ) {
        let dim4 = t.dim4;
        debug_assert!(b + NB <= t.blocks() && b >= cb && b + NB - cb <= chunk);
        debug_assert!(scratch.len() >= Q * chunk && words.iter().all(|w| w.len() == dim4));
        let rows = t.rows.as_ptr();
        let out = scratch.as_mut_ptr();
        // SAFETY: row `(b + v) · dim4 + d4` exists for `v < NB`, `d4 < dim4` (caller's
        // `b + NB ≤ blocks`); `QRow` is 64-byte aligned for the aligned loads; word
        // `d4` of each query exists; stores go to row `q · chunk + b + v - cb` of
        // scratch, below `Q · chunk`; scale rows `b + v` exist.
        unsafe {
            // Starting from `-128 · Σ q̂` removes the `+128` of the item encoding.
            let mut acc: [[__m512i; NB]; Q] =
                std::array::from_fn(|q| [_mm512_set1_epi32(corr[q].wrapping_neg()); NB]);
            for d4 in 0..dim4 {
                let x: [__m512i; NB] = std::array::from_fn(|v| {
                    _mm512_load_si512(rows.add((b + v) * dim4 + d4).cast::<__m512i>())
                });
                for q in 0..Q {
                    let s = _mm512_set1_epi32(*words[q].get_unchecked(d4));
                    for v in 0..NB {
                        acc[q][v] = _mm512_dpbusd_epi32(acc[q][v], x[v], s);
                    }
                }
            }
            for q in 0..Q {
                for v in 0..NB {
                    let sv = _mm512_load_ps(t.scale.as_ptr().add(b + v).cast::<f32>());
                    // In units of `s_q` (the bound coefficients are divided by it too).
                    let a = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[q][v]), sv);
                    _mm512_store_ps(out.add(q * chunk + b + v - cb).cast::<f32>(), a);
                }
            }
        }
    }

    /// Writes `unkey(x)` to `out[rank(x)]` for every key of rank `< out.len()`, the
    /// rank being the number of smaller keys (`keys.len() ≤ 64`, distinct).
    ///
    /// # Safety
    /// AVX-512 F must be enabled.
    #[target_feature(enable = "avx512f,popcnt")]
    pub(super) fn place_by_rank(keys: &[u64], out: &mut [Hit]) {
        debug_assert!(keys.len() <= 64);
        let mut vals = [u64::MAX; 64];
        vals[..keys.len()].copy_from_slice(keys);
        let groups = keys.len().div_ceil(8);
        // SAFETY: loads of 8 u64 at offsets `8 · g < 64`.
        unsafe {
            let v: [__m512i; 8] =
                std::array::from_fn(|g| _mm512_loadu_si512(vals.as_ptr().add(8 * g).cast()));
            for &x in keys {
                let bx = _mm512_set1_epi64(x as i64);
                let mut rank = 0u32;
                for vg in v.iter().take(groups) {
                    rank += _mm512_cmplt_epu64_mask(*vg, bx).count_ones();
                }
                if let Some(slot) = out.get_mut(rank as usize) {
                    *slot = unkey(x);
                }
            }
        }
    }

    /// The `k`-th largest of `m` (`k ≤ len ≤ 64`, a multiple of 16, no NaN): the
    /// largest value with at least `k` values `≥` it. Counts for all values at once
    /// (one broadcast compare per value), then a masked maximum.
    ///
    /// # Safety
    /// AVX-512 F must be enabled.
    #[inline(always)]
    unsafe fn kth_largest_simd(m: &[f32], k: usize) -> f32 {
        debug_assert!(m.len().is_multiple_of(BLOCK) && (1..=4).contains(&(m.len() / BLOCK)));
        let g = m.len() / BLOCK;
        // SAFETY: loads of 16 floats at offsets `16 · i < m.len()`.
        unsafe {
            let vals: [__m512; 4] = std::array::from_fn(|i| {
                if i < g {
                    _mm512_loadu_ps(m.as_ptr().add(i * BLOCK))
                } else {
                    _mm512_set1_ps(f32::NEG_INFINITY)
                }
            });
            let one = _mm512_set1_epi32(1);
            let mut count = [_mm512_setzero_si512(); 4];
            for &v in m {
                let vb = _mm512_set1_ps(v);
                for i in 0..g {
                    let ge = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(vals[i], vb);
                    count[i] = _mm512_mask_add_epi32(count[i], ge, count[i], one);
                }
            }
            let kv = _mm512_set1_epi32(k as i32);
            let mut best = f32::NEG_INFINITY;
            for i in 0..g {
                let ok = _mm512_cmpge_epi32_mask(count[i], kv);
                best = best.max(_mm512_mask_reduce_max_ps(ok, vals[i]));
            }
            best
        }
    }

    /// Exact scores of the candidates, each the serial chain `s = fma(q[d], x[d], s)`
    /// from 0 (as every kernel computes it): scalar fmas, eight independent chains at
    /// a time (a short last group repeats its last item, scored and dropped) — on
    /// this hardware cheaper than 16-lane gathers or scoring whole packed blocks.
    ///
    /// # Safety
    /// FMA must be enabled; `items` is `n × dim`, every id is `< n`, `q.len() == dim`.
    #[inline(always)]
    unsafe fn exact_chains(items: &[f32], dim: usize, q: &[f32], ids: &[u32], out: &mut Vec<f32>) {
        debug_assert!(ids.iter().all(|&i| (i as usize + 1) * dim <= items.len()));
        out.clear();
        let base = items.as_ptr();
        for g in ids.chunks(8) {
            let last = g.len() - 1;
            // SAFETY (whole block): row `g[j] · dim` starts inside `items` and `d < dim`
            // stays inside the row (contract).
            unsafe {
                let rows: [*const f32; 8] =
                    std::array::from_fn(|j| base.add(g[j.min(last)] as usize * dim));
                // Scalar `vfmadd231ss` on purpose: left to itself the compiler turns the
                // eight chains into one vector fma fed by gathers, slow on this CPU.
                let mut acc = [_mm_setzero_ps(); 8];
                for (d, &qd) in q.iter().enumerate() {
                    let qv = _mm_set_ss(qd);
                    for j in 0..8 {
                        // One `vfmadd231ss` with a memory operand: the intrinsic's
                        // upper-lane semantics cost a blend or permute per fma.
                        std::arch::asm!(
                            "vfmadd231ss {acc}, {q}, dword ptr [{p}]",
                            acc = inout(xmm_reg) acc[j],
                            q = in(xmm_reg) qv,
                            p = in(reg) rows[j].add(d),
                            options(pure, readonly, nostack, preserves_flags),
                        );
                    }
                }
                let s: [f32; 8] = std::array::from_fn(|j| _mm_cvtss_f32(acc[j]));
                out.extend_from_slice(&s[..g.len()]);
            }
        }
    }

    /// [`exact_chains`] for [`super::exact_scores`].
    ///
    /// # Safety
    /// FMA must be present; rows `ids` lie inside `items` (`n × dim`), `q.len() == dim`.
    #[target_feature(enable = "fma")]
    pub(super) unsafe fn exact_chains_fma(
        items: &[f32],
        dim: usize,
        q: &[f32],
        ids: &[u32],
        out: &mut Vec<f32>,
    ) {
        // SAFETY: the caller's contract is `exact_chains`'.
        unsafe { exact_chains(items, dim, q, ids, out) }
    }

    /// One query's chunk: mask, bounds, the k-th largest lower bound, candidates, exact
    /// scores.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn select(
        t: &Int8Items,
        items: &[f32],
        query: &[f32],
        st: &mut State<'_>,
        bufs: &mut Bufs,
        rows: &mut [Row],
        cb: usize,
        valid: usize,
    ) {
        let start = (cb * BLOCK) as u32;
        {
            let flat = rows.as_mut_ptr().cast::<f32>();
            // SAFETY: `rows` is `rows.len()` contiguous `[f32; 16]` (`Row` is
            // `repr(C)`), not used while this view lives.
            let flat = unsafe { std::slice::from_raw_parts_mut(flat, rows.len() * BLOCK) };
            mask_chunk(&mut st.adm, flat, start, valid, st.ids);
        }
        let k = st.k;
        // Lower bounds' maxima over `groups` disjoint row ranges × 16 lanes (≥ 2k
        // distinct items), upper bounds stored in place of the scores.
        let groups = k.saturating_mul(2).div_ceil(BLOCK).max(1).min(rows.len());
        let per = rows.len().div_ceil(groups).max(1);
        let maxima = &mut bufs.maxima;
        maxima.clear();
        // SAFETY: features enabled (caller); loads/stores of 16 floats at 64-byte
        // aligned `Row`s: scratch rows, and the norm rows `cb + r` (< blocks).
        unsafe {
            let (av, bv, cv) = (
                _mm512_set1_ps(st.q.a),
                _mm512_set1_ps(st.q.b),
                _mm512_set1_ps(st.q.c),
            );
            for (g, part) in rows.chunks_mut(per).enumerate() {
                // Per row: `E`, then `lb` into the running maximum and `ub` stored
                // over `a`; `-inf` (masked) stays `-inf` in `lb`. Two maxima chains.
                let bound = |blk: usize, p: *mut f32, mx: __m512| {
                    let nv = _mm512_load_ps(t.norm.as_ptr().add(blk).cast::<f32>());
                    let ev = _mm512_load_ps(t.resid.as_ptr().add(blk).cast::<f32>());
                    let e = _mm512_fmadd_ps(av, nv, _mm512_fmadd_ps(bv, ev, cv));
                    let a = _mm512_load_ps(p);
                    _mm512_store_ps(p, _mm512_add_ps(a, e));
                    _mm512_max_ps(_mm512_sub_ps(a, e), mx)
                };
                let (mut m0, mut m1) = (
                    _mm512_set1_ps(f32::NEG_INFINITY),
                    _mm512_set1_ps(f32::NEG_INFINITY),
                );
                let base = cb + g * per;
                let last_blk = base + part.len() - 1;
                let mut pairs = part.chunks_exact_mut(2);
                for (j, pair) in (&mut pairs).enumerate() {
                    m0 = bound(base + 2 * j, pair[0].0.as_mut_ptr(), m0);
                    m1 = bound(base + 2 * j + 1, pair[1].0.as_mut_ptr(), m1);
                }
                if let [last] = pairs.into_remainder() {
                    m0 = bound(last_blk, last.0.as_mut_ptr(), m0);
                }
                let mut m = [0f32; BLOCK];
                _mm512_storeu_ps(m.as_mut_ptr(), _mm512_max_ps(m0, m1));
                maxima.extend_from_slice(&m);
            }
        }
        let t_k = if maxima.len() >= k && maxima.len() <= 4 * BLOCK {
            // SAFETY: features enabled (caller).
            unsafe { kth_largest_simd(maxima, k) }
        } else if maxima.len() >= k {
            let (_, &mut t, _) = maxima.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            t
        } else {
            f32::NEG_INFINITY
        };
        if t_k > st.l {
            st.l = t_k;
        }
        let cand = &mut bufs.cand;
        cand.clear();
        // SAFETY: as above.
        unsafe {
            // Only masked lanes (excluded, padding) have `ub = -inf` or NaN
            // (`-inf + inf`): an admissible item's `a` and `E` are finite, so
            // `ub ≥ max(L, -MAX)` keeps exactly the admissible candidates.
            let lv = _mm512_set1_ps(st.l.max(f32::MIN));
            cand.reserve(rows.len() * BLOCK);
            let dst = cand.as_mut_ptr();
            let mut len = 0usize;
            debug_assert!(rows.len() <= CHUNK_BLOCKS);
            // Masks of all rows first (independent compares), then the item numbers
            // of the set bits, 64 lanes (4 rows) per word: few words have any, and a
            // compress-and-store per row costs more than the branch on the word.
            let mut masks = [0u64; CHUNK_BLOCKS / 4];
            // Row `r`'s 16 lanes are bits `16 (r % 4) ..` of word `r / 4` (little
            // endian); `r < CHUNK_BLOCKS` keeps the `u16` writes inside `masks`.
            let m16 = masks.as_mut_ptr().cast::<u16>();
            for (r, row) in rows.iter().enumerate() {
                *m16.add(r) = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_load_ps(row.0.as_ptr()), lv);
            }
            for (w, &word) in masks[..rows.len().div_ceil(4)].iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    *dst.add(len) = start + (w * 64) as u32 + bits.trailing_zeros();
                    len += 1;
                    bits &= bits - 1;
                }
            }
            // The first `len` entries were written above (at most one per lane of
            // the chunk, within the reserved capacity).
            cand.set_len(len);
        }
        #[cfg(test)]
        CANDS.with(|c| c.set(c.get() + cand.len()));
        // SAFETY: FMA is enabled (caller); candidates are item numbers `< n` and
        // `items` is `n × dim`.
        unsafe { exact_chains(items, t.dim, query, cand, &mut bufs.scores) };
        if let Some(ids) = st.ids {
            // Ranked and returned under their item numbers (ties: lower item first).
            for c in cand.iter_mut() {
                *c = ids[*c as usize];
            }
        }
        if cb == 0 && rows.len() == t.blocks() {
            // The whole catalogue in one chunk: finish now, from a reused buffer.
            bufs.keys.clear();
            bufs.keys.extend(
                cand.iter()
                    .zip(&bufs.scores)
                    .map(|(&item, &s)| key(sanitize(s), item)),
            );
            st.result = Some(finish(&mut bufs.keys, k));
            return;
        }
        if st.ids.is_some() {
            // Ranges (an IVF probe): many small chunks, so the best `k` so far are
            // kept in a heap whose worst, once `k` are in, bounds every later chunk.
            for (&item, &s) in cand.iter().zip(&bufs.scores) {
                let x = key(sanitize(s), item);
                if st.best.len() < k {
                    st.best.push(x);
                } else if st.best.peek().is_some_and(|&worst| x < worst) {
                    if let Some(mut worst) = st.best.peek_mut() {
                        *worst = x;
                    }
                }
            }
            if st.best.len() == k {
                if let Some(&worst) = st.best.peek() {
                    st.raise(unkey(worst).score);
                }
            }
            return;
        }
        st.keys.extend(
            cand.iter()
                .zip(&bufs.scores)
                .map(|(&item, &s)| key(sanitize(s), item)),
        );
        // Bounded memory over many chunks: keep the best `k`.
        if st.keys.len() > k.saturating_mul(4).max(64) {
            st.keys.select_nth_unstable(k - 1);
            st.keys.truncate(k);
            st.raise(unkey(st.keys[k - 1]).score);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;
    use crate::kernel::Kernel;
    use crate::{ExactIndex, Filter};
    use shortlist_core::Rng;

    fn bits(h: &[Hit]) -> Vec<(u32, u32)> {
        h.iter().map(|h| (h.item, h.score.to_bits())).collect()
    }

    /// Adversarial catalogues for the bound: norms over six orders of magnitude,
    /// near-duplicate clusters (gaps far below the quantisation error), huge and
    /// subnormal-producing magnitudes, several chunks; the int8 path must equal the
    /// portable f32 kernel bit for bit, with and without exclusions.
    #[test]
    fn prefilter_is_exact_on_adversarial_data() {
        if !available() {
            eprintln!("skipped: no AVX-512 VNNI on this CPU");
            return;
        }
        for case in 0..10u64 {
            let mut rng = Rng::new(500 + case);
            let dim = [32, 7, 64, 33, 3][case as usize % 5];
            let n = [1682, 5000, 300, 2049, 40][case as usize % 5];
            let base: Vec<f32> = (0..8 * dim).map(|_| rng.normal() as f32).collect();
            let mut items = Vec::with_capacity(n * dim);
            for i in 0..n {
                let scale = match case % 4 {
                    0 => 10f32.powf(rng.next_f32() * 6.0 - 3.0),
                    1 => 1e18,
                    2 => 1e-20,
                    _ => 1.0,
                };
                for d in 0..dim {
                    let x = if case % 2 == 1 {
                        // Clusters of near-duplicates around 8 centres.
                        base[(i % 8) * dim + d] + 1e-6 * rng.normal() as f32
                    } else {
                        rng.normal() as f32
                    };
                    items.push(x * scale);
                }
            }
            let index = ExactIndex::new(items.clone(), dim).unwrap();
            assert!(index.has_int8(), "case {case}: int8 copy built");
            let nq = 37;
            let queries: Vec<f32> = (0..nq * dim).map(|_| rng.normal() as f32).collect();
            let excluded: Vec<Vec<u32>> = (0..nq)
                .map(|q| {
                    let frac = [0.0, 0.1, 0.5, 0.9][q % 4];
                    (0..n as u32).filter(|_| rng.next_f32() < frac).collect()
                })
                .collect();
            for k in [1, 10, 20, 100] {
                let filter = |q: usize| Filter::ExcludeSorted(&excluded[q]);
                let got = index
                    .search_batch_with(Kernel::Int8, &queries, k, &filter)
                    .unwrap();
                CANDS.with(|c| c.set(0));
                let want = index
                    .search_batch_with(Kernel::Scalar, &queries, k, &filter)
                    .unwrap();
                for q in 0..nq {
                    assert_eq!(bits(&got[q]), bits(&want[q]), "case {case} k {k} q {q}");
                    let single = index
                        .search_with(
                            Kernel::Int8,
                            &queries[q * dim..(q + 1) * dim],
                            k,
                            &filter(q),
                        )
                        .unwrap();
                    assert_eq!(
                        bits(&single),
                        bits(&want[q]),
                        "single: case {case} k {k} q {q}"
                    );
                }
                // Random data prunes well (clusters of near-duplicates cannot);
                // counted over the single-query searches (this thread).
                let cands = CANDS.with(|c| c.get());
                if case % 2 == 0 && n >= 1682 && k == 10 {
                    assert!(cands < nq * n / 10, "case {case}: {cands} candidates");
                }
            }
        }
    }

    #[test]
    fn queries_it_cannot_bound_take_the_f32_path() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(3);
        let (n, dim) = (500, 16);
        let items: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
        let index = ExactIndex::new(items, dim).unwrap();
        let mut queries: Vec<f32> = (0..4 * dim).map(|_| rng.normal() as f32).collect();
        queries[..dim].fill(0.0); // zero query: every score 0, ties by index
        queries[dim] = f32::NAN;
        queries[2 * dim] = f32::INFINITY;
        let got = index
            .search_batch_with(Kernel::Int8, &queries, 5, &|_| Filter::None)
            .unwrap();
        let want = index
            .search_batch_with(Kernel::Scalar, &queries, 5, &|_| Filter::None)
            .unwrap();
        for q in 0..4 {
            assert_eq!(bits(&got[q]), bits(&want[q]), "q {q}");
        }
        assert_eq!(
            got[0].iter().map(|h| h.item).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn non_finite_items_disable_the_int8_copy() {
        assert!(Int8Items::new(&[1.0, f32::NAN], 2).is_none());
        assert!(Int8Items::new(&[1.0, f32::INFINITY], 2).is_none());
        assert!(
            Int8Items::new(&[f32::MAX, f32::MAX], 2).is_none(),
            "norm overflows f32"
        );
        assert!(
            Int8Items::new(&[1e-40, 0.0], 2).is_none(),
            "scale underflows"
        );
        assert!(Int8Items::new(&[1.0, -2.0], 2).is_some());
    }

    #[test]
    fn keys_sort_in_rank_order_and_round_trip() {
        let hits = [
            (3.0, 7),
            (3.0, 2),
            (-0.0, 1),
            (0.0, 0),
            (-5.0, 4),
            (f32::NEG_INFINITY, 9),
            (f32::INFINITY, 8),
        ];
        let mut keys: Vec<u64> = hits.iter().map(|&(s, i)| key(s, i)).collect();
        keys.sort_unstable();
        let order: Vec<u32> = keys.iter().map(|&k| unkey(k).item).collect();
        assert_eq!(order, [8, 2, 7, 0, 1, 4, 9]);
        assert_eq!(
            unkey(key(2.5, 3)),
            Hit {
                item: 3,
                score: 2.5
            }
        );
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
#[allow(clippy::unwrap_used)]
mod probe {
    /// Cost of the int8 path against the f32 AVX-512 kernel at ML-100k sizes (943
    /// queries × 1682 items × dim 32, random), minimum of 300 runs, and the average
    /// number of exactly rescored candidates. Run with `cargo test --release -p
    /// shortlist-index quant::probe -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing probe"]
    fn int8_vs_f32() {
        use crate::kernel::Kernel;
        use crate::{ExactIndex, Filter};
        let mut rng = shortlist_core::Rng::new(42);
        let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let users = random(943 * 32);
        let index = ExactIndex::new(random(1682 * 32), 32).unwrap();
        super::CANDS.with(|c| c.set(0));
        index
            .search_block(Kernel::Int8, &users, 0, 10, &|_| Filter::None)
            .unwrap();
        let c = super::CANDS.with(|c| c.get());
        println!("candidates per query: {:.1}", c as f64 / 943.0);
        for kernel in [Kernel::Avx512, Kernel::Int8] {
            let min_ms = |f: &dyn Fn()| {
                let mut best = f64::MAX;
                for _ in 0..300 {
                    let t = std::time::Instant::now();
                    f();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                best * 1e3
            };
            let one = min_ms(&|| {
                index
                    .search_block(kernel, &users, 0, 10, &|_| Filter::None)
                    .unwrap();
            });
            let batch = min_ms(&|| {
                index
                    .search_batch_with(kernel, &users, 10, &|_| Filter::None)
                    .unwrap();
            });
            println!("{kernel:?}: one thread {one:.3} ms, rayon pool {batch:.3} ms");
        }
    }
}
