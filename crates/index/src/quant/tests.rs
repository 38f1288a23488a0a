//! Tests of the int8 prefilter: exactness against the f32 kernel on adversarial data,
//! the f32 fallback for queries it cannot bound and for non-finite items, and the sort keys.

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

/// The bound's coefficients are normal floats for queries of any magnitude: a
/// subnormal operand costs a microcode assist per fma on Intel cores, and the bound
/// is evaluated once per block per query (the batched scan ran 5–10× slower).
#[test]
fn bound_coefficients_are_never_subnormal() {
    let mut rng = Rng::new(77);
    for (dim, magnitude) in [
        (64usize, 1e-30f32),
        (64, 1e-3),
        (64, 1.0),
        (64, 1e3),
        (7, 1e20),
        (300, 0.5),
    ] {
        let q: Vec<f32> = (0..dim).map(|_| rng.normal() as f32 * magnitude).collect();
        let (mut words, mut qh) = (Vec::new(), Vec::new());
        let qq = QQuery::new(&q, dim.div_ceil(4), &mut words, &mut qh).unwrap();
        for (name, x) in [("a", qq.a), ("b", qq.b), ("c", qq.c)] {
            assert!(
                x.is_normal(),
                "dim {dim}, magnitude {magnitude}: {name} = {x:e}"
            );
        }
    }
}
