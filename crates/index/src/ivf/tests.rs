#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use super::*;

/// `n` vectors around `centres` Gaussian centres (σ 0.5), each scaled by a factor in
/// [0.5, 1.5] (fresh centres: for queries unrelated to the items).
pub(super) fn clustered(rng: &mut Rng, n: usize, dim: usize, centres: usize) -> Vec<f32> {
    let c = centres_of(rng, centres, dim);
    around(rng, &c, n, false)
}

fn centres_of(rng: &mut Rng, centres: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..centres)
        .map(|_| (0..dim).map(|_| rng.normal() as f32).collect())
        .collect()
}

/// `n` vectors around the given centres (σ 0.5), each scaled by a factor in
/// [0.5, 1.5], or by a log-normal factor (σ 0.8: heavy-tailed norms) when `heavy`.
fn around(rng: &mut Rng, centres: &[Vec<f32>], n: usize, heavy: bool) -> Vec<f32> {
    (0..n)
        .flat_map(|_| {
            let c = &centres[rng.below(centres.len() as u64) as usize];
            let scale = if heavy {
                (0.8 * rng.normal()).exp() as f32
            } else {
                0.5 + rng.next_f32()
            };
            c.iter()
                .map(|&x| (x + 0.5 * rng.normal() as f32) * scale)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn generate(rng: &mut Rng, n: usize, dim: usize, centres: usize, heavy: bool) -> Vec<f32> {
    let c = centres_of(rng, centres, dim);
    around(rng, &c, n, heavy)
}

fn bits(h: &[Hit]) -> Vec<(u32, u32)> {
    h.iter().map(|h| (h.item, h.score.to_bits())).collect()
}

fn recall(got: &[Hit], want: &[Hit]) -> usize {
    got.iter()
        .filter(|h| want.iter().any(|w| w.item == h.item))
        .count()
}

#[test]
fn every_list_opened_equals_the_exact_index_bit_for_bit_with_filters() {
    // Heavy-tailed norms: the list bounds and the sorted-norm stop skip most of the
    // work, and must never skip a result.
    for (seed, heavy) in [(5u64, false), (6, true)] {
        let mut rng = Rng::new(seed);
        let (n, dim) = (3000, 24);
        let items = generate(&mut rng, n, dim, 20, heavy);
        let exact = ExactIndex::new(items.clone(), dim).unwrap();
        let p = IvfParams {
            head_fraction: 0.005,
            tune_head: false,
            ..IvfParams::default()
        };
        let ivf = IvfIndex::build(&items, dim, p).unwrap();
        assert_eq!(ivf.lists(), 219); // 4 · √3000
                                      // At most 0.5 %, the outliers of norm (≥ 2 × the median) among them.
        let mut norms: Vec<f64> = items.chunks_exact(dim).map(norm).collect();
        norms.sort_by(|a, b| b.total_cmp(a));
        let median = norms[n / 2];
        let outliers = norms[..15].iter().filter(|&&x| x >= 2.0 * median).count();
        assert_eq!(ivf.head_len(), outliers);
        assert_eq!(outliers == 15, heavy, "{outliers}");
        assert_eq!(ivf.list_sizes().iter().sum::<usize>() + ivf.head_len(), n);
        let excluded: Vec<u32> = (0..n as u32).filter(|i| i % 3 == 0).collect();
        let long: Vec<u32> = (0..n as u32).filter(|i| i % 10 != 0).collect();
        let allowed: Vec<u32> = (0..n as u32).filter(|i| i % 7 == 1).collect();
        let bitmap = ItemBitmap::excluding(n, &excluded);
        for q in 0..20 {
            let query: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            for filter in [
                Filter::None,
                Filter::ExcludeSorted(&excluded),
                Filter::Exclude(&long),
                Filter::AllowOnly(&allowed),
                Filter::AllowBitmap(&bitmap),
            ] {
                for k in [1, 10, 100, 1000] {
                    let want = exact.search(&query, k, &filter).unwrap();
                    let got = ivf.search_probes(&query, k, &filter, ivf.lists()).unwrap();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "seed {seed} query {q}, k {k}, {filter:?}"
                    );
                    // Target 1: exact, whatever the calibration.
                    let target = SearchMode::Target(RecallTarget::uniform(1.0).unwrap());
                    let full = ivf.search_mode(&query, k, &filter, &target).unwrap();
                    assert_eq!(
                        bits(&full),
                        bits(&want),
                        "target 1, query {q}, k {k}, {filter:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_f32_scan_without_the_int8_copy_equals_the_exact_index() {
    // As on a CPU without AVX-512 VNNI: the opened lists scored in f32.
    let mut rng = Rng::new(31);
    let (n, dim) = (2000, 12);
    let items = generate(&mut rng, n, dim, 10, true);
    let exact = ExactIndex::new(items.clone(), dim).unwrap();
    let mut ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    ivf.int8 = None;
    let excluded: Vec<u32> = (0..n as u32).filter(|i| i % 4 == 1).collect();
    let long: Vec<u32> = (0..n as u32).filter(|i| i % 5 != 0).collect();
    let bitmap = ItemBitmap::excluding(n, &excluded);
    for _ in 0..10 {
        let q: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        for filter in [
            Filter::None,
            Filter::ExcludeSorted(&excluded),
            Filter::Exclude(&long),
            Filter::AllowBitmap(&bitmap),
        ] {
            for k in [1, 10, 100] {
                let want = exact.search(&q, k, &filter).unwrap();
                let got = ivf.search_probes(&q, k, &filter, ivf.lists()).unwrap();
                assert_eq!(bits(&got), bits(&want), "k {k} {filter:?}");
                let adaptive = ivf.search(&q, k, &filter).unwrap();
                assert_eq!(adaptive.len(), want.len());
                assert!(adaptive.iter().all(|h| exact
                    .search(&q, n, &filter)
                    .unwrap()
                    .iter()
                    .any(|w| w.item == h.item && w.score.to_bits() == h.score.to_bits())));
            }
        }
    }
}

#[test]
fn the_head_holds_only_outliers_of_norm() {
    let (n, dim) = (4000, 4);
    // Norms 1..1.9 (no outlier), then 40 items of norm 5 (outliers, 1 %).
    let mut items: Vec<f32> = (0..n)
        .flat_map(|i| {
            let r = 1.0 + (i % 10) as f32 / 10.0;
            [r, 0.0, 0.0, 0.0]
        })
        .collect();
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    assert_eq!(ivf.head_len(), 0);
    for i in 0..40 {
        items[i * 97 * dim + 1] = 5.0;
        items[i * 97 * dim] = 0.0;
    }
    let fixed = |head_fraction| IvfParams {
        head_fraction,
        tune_head: false,
        ..IvfParams::default()
    };
    let ivf = IvfIndex::build(&items, dim, fixed(0.005)).unwrap();
    assert_eq!(ivf.head_len(), 20, "0.5 % of 4000, all outliers");
    let p = fixed(0.02);
    assert_eq!(
        IvfIndex::build(&items, dim, p).unwrap().head_len(),
        40,
        "only the 40 outliers"
    );
}

#[test]
fn the_default_target_keeps_recall_and_never_returns_excluded_items() {
    let mut rng = Rng::new(9);
    let (n, dim) = (20_000, 32);
    let centres = centres_of(&mut rng, 100, dim);
    let items = around(&mut rng, &centres, n, false);
    let exact = ExactIndex::new(items.clone(), dim).unwrap();
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    assert_eq!(ivf.mode(), &SearchMode::Target(RecallTarget::default()));
    let excluded: Vec<u32> = (0..n as u32).filter(|i| i % 2 == 0).collect();
    let (mut hit, mut total) = (0, 0);
    for _ in 0..100 {
        // Queries like the items (the default calibration's assumption).
        let query = around(&mut rng, &centres, 1, false);
        for k in [10, 100] {
            let want = exact.search(&query, k, &Filter::None).unwrap();
            let got = ivf.search(&query, k, &Filter::None).unwrap();
            assert_eq!(got.len(), k);
            total += want.len();
            hit += recall(&got, &want);
        }
        let f = ivf
            .search(&query, 10, &Filter::ExcludeSorted(&excluded))
            .unwrap();
        assert_eq!(f.len(), 10);
        assert!(f.iter().all(|h| h.item % 2 == 1), "{f:?}");
    }
    let r = hit as f64 / total as f64;
    assert!(r >= 0.93, "recall@10/100 {r}");
}

/// Recall of `ivf` against `exact` at `k` under `filter`, over `queries`.
fn measured(
    ivf: &IvfIndex,
    exact: &ExactIndex,
    queries: &[f32],
    k: usize,
    filter: &Filter<'_>,
) -> f64 {
    let dim = ivf.dim();
    let (mut hit, mut total) = (0, 0);
    for q in queries.chunks_exact(dim) {
        let want = exact.search(q, k, filter).unwrap();
        let got = ivf.search(q, k, filter).unwrap();
        total += want.len();
        hit += recall(&got, &want);
    }
    hit as f64 / total as f64
}

#[test]
fn targets_are_met_at_every_k_and_under_filters() {
    let mut rng = Rng::new(12);
    let (n, dim) = (30_000, 16);
    let items = generate(&mut rng, n, dim, 60, true);
    let exact = ExactIndex::new(items.clone(), dim).unwrap();
    let mut ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    // Queries unlike the items (isotropic): calibrated with a sample of their kind,
    // measured on others.
    let calib: Vec<f32> = (0..200 * dim).map(|_| rng.normal() as f32).collect();
    ivf.calibrate(&calib).unwrap();
    let queries: Vec<f32> = (0..60 * dim).map(|_| rng.normal() as f32).collect();
    let half = ItemBitmap::excluding(n, &(0..n as u32).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    let tenth = ItemBitmap::allowing(
        n,
        &(0..n as u32).filter(|i| i % 10 == 3).collect::<Vec<_>>(),
    )
    .unwrap();
    for target in [0.8, 0.95] {
        ivf.set_recall_target(RecallTarget::uniform(target).unwrap());
        for (k, filter) in [
            (10, Filter::None),
            (100, Filter::None),
            (1000, Filter::None),
            (10, Filter::AllowBitmap(&half)),
            (10, Filter::AllowBitmap(&tenth)),
        ] {
            let r = measured(&ivf, &exact, &queries, k, &filter);
            // Calibration and test queries differ: allow a little shortfall.
            assert!(
                r >= target - 0.05,
                "target {target}, k {k}, {filter:?}: recall {r}"
            );
        }
    }
}

#[test]
fn a_higher_target_opens_more_and_the_table_is_monotone() {
    let mut rng = Rng::new(14);
    let (n, dim) = (10_000, 16);
    let items = clustered(&mut rng, n, dim, 40);
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    for (k, row) in ivf.calibration_table() {
        assert!(
            row.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "k {k}: {row:?}"
        );
        assert_eq!(
            row.last().unwrap(),
            &(n, 1.0),
            "k {k}: every item opened is exact"
        );
    }
    let b = |depth: f64, t: f64| ivf.calibration.budget(depth, t);
    assert!(b(10.0, 0.8) <= b(10.0, 0.95) && b(10.0, 0.95) <= b(10.0, 0.99));
    assert!(b(10.0, 0.95) <= b(100.0, 0.95) && b(100.0, 0.95) <= b(1000.0, 0.95));
}

#[test]
fn few_admissible_items_are_scored_exactly() {
    let mut rng = Rng::new(15);
    let (n, dim) = (20_000, 16);
    let items = clustered(&mut rng, n, dim, 50);
    let exact = ExactIndex::new(items.clone(), dim).unwrap();
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    // 0.5 % admissible: exact over them, whatever the lists.
    let few: Vec<u32> = (0..n as u32).filter(|i| i % 200 == 7).collect();
    let bitmap = ItemBitmap::allowing(n, &few).unwrap();
    let rest: Vec<u32> = (0..n as u32).filter(|i| i % 200 != 7).collect();
    for _ in 0..20 {
        let q: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let want = exact.search(&q, 10, &Filter::AllowOnly(&few)).unwrap();
        for filter in [
            Filter::AllowBitmap(&bitmap),
            Filter::AllowOnly(&few),
            Filter::ExcludeSorted(&rest),
        ] {
            assert_eq!(
                bits(&ivf.search(&q, 10, &filter).unwrap()),
                bits(&want),
                "{filter:?}"
            );
        }
    }
}

#[test]
fn a_strict_filter_never_comes_back_short() {
    let mut rng = Rng::new(16);
    let (n, dim) = (20_000, 16);
    let items = clustered(&mut rng, n, dim, 50);
    let exact = ExactIndex::new(items.clone(), dim).unwrap();
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    // 2,000 admissible items, all far from the query: the lists opened first hold too
    // few of them, so the search opens twice as much until it has 100.
    let q: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
    let all = ivf
        .search_probes(&q, n, &Filter::None, ivf.lists())
        .unwrap();
    let far: Vec<u32> = all[n - 2000..].iter().map(|h| h.item).collect();
    let bitmap = ItemBitmap::allowing(n, &far).unwrap();
    let want = exact.search(&q, n, &Filter::AllowBitmap(&bitmap)).unwrap();
    for mode in [
        SearchMode::Probes(2),
        SearchMode::Target(RecallTarget::default()),
    ] {
        let got = ivf
            .search_mode(&q, 100, &Filter::AllowBitmap(&bitmap), &mode)
            .unwrap();
        assert_eq!(got.len(), 100, "{mode:?}");
        // Admissible, with their exact scores, best first.
        for h in &got {
            let w = want.iter().find(|w| w.item == h.item).unwrap();
            assert_eq!(w.score.to_bits(), h.score.to_bits(), "{mode:?}");
        }
        assert!(got.windows(2).all(|w| w[0].ranks_before(&w[1])), "{mode:?}");
    }
}

#[test]
fn exclusions_as_short_lists_long_lists_and_bitmaps_agree() {
    let mut rng = Rng::new(4);
    let (n, dim) = (5000, 8);
    let items: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    for frac in [0.001, 0.01, 0.5, 0.9] {
        let excluded: Vec<u32> = (0..n as u32).filter(|_| rng.next_f64() < frac).collect();
        let bitmap = ItemBitmap::excluding(n, &excluded);
        let mut shuffled = excluded.clone();
        rng.shuffle(&mut shuffled);
        for _ in 0..10 {
            let q: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            for mode in [
                SearchMode::Probes(8),
                SearchMode::Target(RecallTarget::default()),
            ] {
                let a = ivf
                    .search_mode(&q, 10, &Filter::ExcludeSorted(&excluded), &mode)
                    .unwrap();
                let b = ivf
                    .search_mode(&q, 10, &Filter::Exclude(&shuffled), &mode)
                    .unwrap();
                let c = ivf
                    .search_mode(&q, 10, &Filter::AllowBitmap(&bitmap), &mode)
                    .unwrap();
                assert_eq!(bits(&a), bits(&b), "{frac} {mode:?}");
                assert_eq!(bits(&a), bits(&c), "{frac} {mode:?}");
                assert!(a.iter().all(|h| bitmap.contains(h.item)));
            }
        }
    }
}

#[test]
fn recall_on_random_data_grows_with_probes_to_exact() {
    let mut rng = Rng::new(21);
    let (n, dim) = (10_000, 16);
    let items: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
    let exact = ExactIndex::new(items.clone(), dim).unwrap();
    let ivf = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    let queries: Vec<f32> = (0..100 * dim).map(|_| rng.normal() as f32).collect();
    let truth = exact.search_batch(&queries, 10, &|_| Filter::None).unwrap();
    let recall_at = |probes: usize| {
        let mut hit = 0;
        for (q, t) in queries.chunks_exact(dim).zip(&truth) {
            let got = ivf.search_probes(q, 10, &Filter::None, probes).unwrap();
            hit += recall(&got, t);
        }
        hit as f64 / 1000.0
    };
    // 400 lists of ~25 unclustered items: the hard case for a partition.
    let (r10, r40, r400) = (recall_at(10), recall_at(40), recall_at(400));
    assert!(
        r10 >= 0.5 && r40 >= 0.8 && r400 == 1.0,
        "{r10} {r40} {r400}"
    );
    assert!(r10 <= r40);
}

#[test]
fn save_load_round_trip_old_versions_and_corrupt_files() {
    let mut rng = Rng::new(3);
    let items = clustered(&mut rng, 500, 8, 5);
    let mut ivf = IvfIndex::build(&items, 8, IvfParams::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.ivf.safetensors");
    let queries: Vec<f32> = (0..40 * 8).map(|_| rng.normal() as f32).collect();
    for mode in [
        SearchMode::Probes(7),
        SearchMode::Target(RecallTarget::per_k([(10, 0.99), (100, 0.9)]).unwrap()),
    ] {
        match &mode {
            SearchMode::Probes(p) => ivf.set_probes(*p),
            SearchMode::Target(t) => ivf.set_recall_target(t.clone()),
        }
        ivf.save(&path).unwrap();
        let back = IvfIndex::load(&path).unwrap();
        assert_eq!(back.mode(), &mode);
        assert_eq!(back.lists(), ivf.lists());
        assert_eq!(back.calibration, ivf.calibration);
        let a = ivf.search_batch(&queries, 10, &|_| Filter::None).unwrap();
        let b = back.search_batch(&queries, 10, &|_| Filter::None).unwrap();
        assert_eq!(a, b);
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = IvfIndex::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("index.ivf.safetensors") && e.contains("not a readable safetensors"),
        "{e}"
    );
    // A version-1 file (no calibration, fixed probes) still loads, calibrated at load.
    let (orig, mut assign) = ivf.original_order();
    let write_v1 = |assign: &[u32]| {
        let (a, c, s) = (
            persist::f32_bytes(&orig),
            persist::f32_bytes(&ivf.centroids),
            persist::u32_bytes(assign),
        );
        persist::write(
            &path,
            &[
                ("items", Dtype::F32, vec![500, 8], &a),
                ("centroids", Dtype::F32, vec![ivf.lists(), 8], &c),
                ("assign", Dtype::U32, vec![500], &s),
            ],
            FORMAT,
            "1",
            &[("probes", "5".into())],
        )
        .unwrap();
    };
    write_v1(&assign);
    let old = IvfIndex::load(&path).unwrap();
    assert_eq!(old.mode(), &SearchMode::Probes(5));
    let all = old
        .search_probes(&queries[..8], 10, &Filter::None, old.lists())
        .unwrap();
    assert_eq!(
        all,
        ivf.search_probes(&queries[..8], 10, &Filter::None, ivf.lists())
            .unwrap()
    );
    // A list number beyond the lists (and the head) is named.
    assign[3] = (ivf.lists() + 1) as u32;
    write_v1(&assign);
    let e = IvfIndex::load(&path).unwrap_err().to_string();
    assert!(e.contains("item 3 is assigned to list"), "{e}");
    let exact = dir.path().join("exact.safetensors");
    ExactIndex::new(orig, 8).unwrap().save(&exact).unwrap();
    let e = IvfIndex::load(&exact).unwrap_err().to_string();
    assert!(e.contains("metadata `format`"), "{e}");
}

#[test]
fn bad_input_gives_named_errors() {
    let e = IvfIndex::build(&[1.0, f32::NAN, 0.0, 1.0], 2, IvfParams::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid items: item 0 has a non-finite value (NaN) at dimension 1"
    );
    let ivf = IvfIndex::build(&[1.0, 0.0, 0.0, 1.0], 2, IvfParams::default()).unwrap();
    let e = ivf
        .search(&[1.0], 1, &Filter::None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("query"), "{e}");
    let e = ivf
        .search(&[1.0, 0.0], 1, &Filter::AllowBitmap(&ItemBitmap::all(3)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid filter: the bitmap covers 3 items, the index has 2"
    );
    for (p, name) in [
        (
            IvfParams {
                iterations: 0,
                ..IvfParams::default()
            },
            "iterations",
        ),
        (
            IvfParams {
                spread_weight: 2.0,
                ..IvfParams::default()
            },
            "spread_weight",
        ),
    ] {
        let e = IvfIndex::build(&[1.0], 1, p).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    // Tiny and empty catalogues.
    let empty = IvfIndex::build(&[], 3, IvfParams::default()).unwrap();
    assert!(empty
        .search(&[1.0, 0.0, 0.0], 5, &Filter::None)
        .unwrap()
        .is_empty());
    let one = IvfIndex::build(&[1.0, 2.0, 3.0], 3, IvfParams::default()).unwrap();
    assert_eq!(
        one.search(&[1.0, 0.0, 0.0], 5, &Filter::None)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_build_keeps_the_head_size_whose_calibration_opens_fewest_items() {
    // Heavy-tailed norms: how many of the largest norms the head should hold is a
    // property of the data, which the build measures.
    let mut rng = Rng::new(17);
    let (n, dim) = (8000, 16);
    let items = generate(&mut rng, n, dim, 40, true);
    let tuned = IvfIndex::build(&items, dim, IvfParams::default()).unwrap();
    let mut costs = Vec::new();
    for step in HEAD_STEPS {
        let p = IvfParams {
            head_fraction: IvfParams::default().head_fraction * step,
            tune_head: false,
            ..IvfParams::default()
        };
        let fixed = IvfIndex::build(&items, dim, p).unwrap();
        costs.push((fixed.head_len(), fixed.calibrated_cost()));
    }
    let best = costs.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    assert_eq!(tuned.calibrated_cost(), best, "{costs:?}");
    assert!(costs
        .iter()
        .any(|&(len, c)| len == tuned.head_len() && c == best));
    // The candidates differ, so the choice was a real one.
    assert!(costs.iter().any(|&(_, c)| c > best), "{costs:?}");
}

#[test]
fn a_query_opens_the_best_lists_by_key_in_order() {
    // Enough lists that whole blocks of sixteen list scores fall below the floor and
    // are passed over at once: the lists opened are still the `p` best keys, in order.
    let mut rng = Rng::new(17);
    let dim = 16;
    let items = clustered(&mut rng, 20_000, dim, 300);
    let p = IvfParams {
        lists: 300,
        head_fraction: 0.0,
        tune_head: false,
        ..IvfParams::default()
    };
    let ivf = IvfIndex::build(&items, dim, p).unwrap();
    assert_eq!(ivf.head_len(), 0);
    for _ in 0..40 {
        let query: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let mut aug = query.clone();
        aug.push(layout::norm(&query) as f32);
        let mut rows = Vec::new();
        Kernel::best().score_all(ivf.coarse.packed(), &aug, &mut rows);
        let mut keys: Vec<u64> = (0..ivf.lists())
            .map(|l| quant::key(sanitize(rows[l / BLOCK].0[l % BLOCK]), l as u32))
            .collect();
        keys.sort_unstable();
        for probes in [1, 3, 16, 17, 40, 300] {
            let got: Vec<_> = ivf
                .open(&query, &Budget::Lists(probes))
                .unwrap()
                .into_iter()
                .map(|r| r.blocks)
                .collect();
            let want: Vec<_> = keys[..probes]
                .iter()
                .map(|&x| ivf.ranges[x as u32 as usize].blocks.clone())
                .collect();
            assert_eq!(got, want, "probes {probes}");
        }
    }
}

#[test]
fn items_kept_beside_the_index_in_their_lists_are_found_as_its_own() {
    let mut rng = Rng::new(23);
    let (n, held, dim) = (20_000, 2_000, 16);
    let centres = centres_of(&mut rng, 80, dim);
    // Heavy-tailed norms, so that the build makes a head and some held-out items join it.
    let all = around(&mut rng, &centres, n + held, true);
    let (items, extra) = all.split_at(n * dim);
    let ivf = IvfIndex::build(items, dim, IvfParams::default()).unwrap();
    assert!(ivf.head_len() > 0);
    // An indexed item's list is the one the build put it in.
    let list_at = |p: usize| {
        (0..=ivf.lists())
            .find(|&l| {
                let r = &ivf.ranges[l];
                r.blocks.start * BLOCK <= p && p < r.valid_end
            })
            .unwrap() as u32
    };
    let mine = ivf.lists_of(items).unwrap();
    let same = (0..n)
        .filter(|&i| mine[i] == list_at(ivf.pos[i] as usize))
        .count();
    // (Every one here; an item whose norm ties the head's smallest may go either way.)
    assert!(same as f64 >= 0.999 * n as f64, "{same} of {n}");
    let extra_lists = ivf.lists_of(extra).unwrap();
    assert_eq!(
        extra_lists[7],
        ivf.list_of(&extra[7 * dim..8 * dim]).unwrap()
    );
    assert!(extra_lists.iter().any(|&l| l as usize == ivf.lists()));
    // Exact top 10 over both sets against: the index's search, plus the held-out items
    // of the lists that search opens, scored exactly.
    let exact = ExactIndex::new(all.to_vec(), dim).unwrap();
    let (mut found, mut total, mut found_extra, mut total_extra) = (0, 0, 0, 0);
    for _ in 0..200 {
        let q = around(&mut rng, &centres, 1, false);
        let opened = ivf.opened_lists(&q, 10, n).unwrap();
        assert!(!opened.is_empty());
        let mut hits: Vec<(u32, f32)> = ivf
            .search(&q, 10, &Filter::None)
            .unwrap()
            .iter()
            .map(|h| (h.item, h.score))
            .collect();
        for (j, v) in extra.chunks_exact(dim).enumerate() {
            if opened.contains(&extra_lists[j]) {
                let s: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
                hits.push(((n + j) as u32, s));
            }
        }
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits.truncate(10);
        let want = exact.search(&q, 10, &Filter::None).unwrap();
        for w in &want {
            let got = hits.iter().any(|h| h.0 == w.item);
            total += 1;
            found += usize::from(got);
            if w.item as usize >= n {
                total_extra += 1;
                found_extra += usize::from(got);
            }
        }
    }
    let (r, r_extra) = (
        found as f64 / total as f64,
        found_extra as f64 / total_extra as f64,
    );
    assert!(total_extra >= 100, "{total_extra}");
    assert!(r >= 0.93, "recall@10 {r}");
    assert!(
        r_extra >= 0.9,
        "recall@10 of the held-out items {r_extra} ({total_extra})"
    );
    // Fewer lists than every list: the scan of held-out items is not the whole set.
    let q = around(&mut rng, &centres, 1, false);
    assert!(ivf.opened_lists(&q, 10, n).unwrap().len() < ivf.lists());
    // Bad input is named.
    assert!(ivf.list_of(&[1.0; 3]).is_err());
    assert!(ivf.lists_of(&[1.0; 17]).is_err());
    assert!(ivf.opened_lists(&[1.0; 3], 10, n).is_err());
}
