use super::*;
use crate::loaders::LoadOptions;
use crate::split::{split, SplitMethod};

fn small() -> ProductConfig {
    ProductConfig {
        customers: 800,
        products: 400,
        sessions: 20_000,
        seed: 7,
        ..ProductConfig::default()
    }
}

/// The contract: deterministic per seed, the written schema loads into exactly the
/// in-memory dataset, string ids, four event strengths, and late products whose
/// events all fall in the test part of a temporal 90/10 split.
#[test]
fn written_log_loads_as_generated_and_has_cold_test_items() {
    let cfg = small();
    let (a, truth) = generate(&cfg).unwrap();
    let (b, _) = generate(&cfg).unwrap();
    assert_eq!(a, b, "same seed, same log");
    let (other, _) = generate(&ProductConfig {
        seed: 8,
        ..cfg.clone()
    })
    .unwrap();
    assert_ne!(a.interactions, other.interactions);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let summary = write(&cfg, &dir, &shortlist_core::progress::NoProgress).unwrap();
    let first = fs_err::read(dir.join("events.tsv")).unwrap();
    let again = tmp.path().join("shop2");
    write(&cfg, &again, &shortlist_core::progress::NoProgress).unwrap();
    assert_eq!(first, fs_err::read(again.join("events.tsv")).unwrap());
    let head = String::from_utf8_lossy(&first[..200]).into_owned();
    assert!(
        head.starts_with("customer_id\tsku\tevent\tstrength\ttimestamp\ncust-"),
        "{head}"
    );

    let loaded = crate::load_path(
        &dir,
        &LoadOptions::default(),
        &shortlist_core::progress::NoProgress,
    )
    .unwrap();
    let d = &loaded.dataset;
    assert_eq!(d.users, a.users);
    assert_eq!(d.items, a.items);
    assert_eq!(d.interactions, a.interactions);
    assert_eq!(d.feedback, Feedback::Explicit);
    assert_eq!(d.items.len(), 400, "every catalogue product is an item");
    assert_eq!(
        loaded.report.duplicates_removed,
        summary.interactions - a.interactions.len()
    );
    for (x, y) in d.item_features.columns.iter().zip(&a.item_features.columns) {
        assert_eq!(x.name, y.name);
        if let (ColumnValues::Numeric(p), ColumnValues::Numeric(q)) = (&x.values, &y.values) {
            assert!(p.iter().zip(q).all(|(p, q)| (p - q).abs() < 1e-9));
        } else {
            assert_eq!(x.values, y.values);
        }
    }
    assert!(d.items.raw(0).starts_with("SKU-") && d.users.raw(0).starts_with("cust-"));
    // Every strength occurs; deeper funnel steps are rarer.
    let mut counts = [0usize; 5];
    for &r in &d.interactions.ratings {
        counts[r as usize] += 1;
    }
    assert!(counts[1..].iter().all(|&c| c > 0), "{counts:?}");
    assert!(counts[1] > counts[4], "{counts:?}");

    // Late launches: products launched in the last 10 % of the timeline have no
    // training event in a temporal 90/10 split, and test events do land on them.
    let s = split(&d.interactions, SplitMethod::Temporal { ratio: 0.9 }).unwrap();
    let mut in_train = vec![false; d.items.len()];
    for &r in &s.train {
        in_train[d.interactions.items[r] as usize] = true;
    }
    let cold_hits = s
        .test
        .iter()
        .filter(|&&r| !in_train[d.interactions.items[r] as usize])
        .count();
    let share = cold_hits as f64 / s.test.len() as f64;
    assert!(share > 0.04 && share < 0.5, "cold share of test {share}");
    let ts = d.interactions.timestamps.as_ref().unwrap();
    let cut = s.test.iter().map(|&r| ts[r]).min().unwrap();
    for (i, raw) in d.items.raw_ids().iter().enumerate() {
        let p = catalogue_index(raw);
        if truth.launch[p] > cut {
            assert!(!in_train[i], "{raw} launched after the cut");
        }
    }
    assert!(truth.launch.iter().filter(|&&l| l > cut).count() > 10);
}

/// Customers choose by the planted affinity, and the side features carry it: the
/// chosen products' category is one the customer's factors favour.
#[test]
fn choices_follow_the_planted_affinity() {
    let cfg = small();
    let (d, truth) = generate(&cfg).unwrap();
    let it = &d.interactions;
    let cust = |u: u32| d.users.raw(u)[5..].parse::<usize>().unwrap();
    let chosen: f64 = (0..it.len())
        .map(|r| {
            truth.affinity(cust(it.users[r]), catalogue_index(d.items.raw(it.items[r]))) as f64
        })
        .sum::<f64>()
        / it.len() as f64;
    let mut rng = Rng::new(3);
    let random: f64 = (0..20_000)
        .map(|_| truth.affinity(rng.below(800) as usize, rng.below(400) as usize) as f64)
        .sum::<f64>()
        / 20_000.0;
    assert!(chosen > random + 0.5, "chosen {chosen} random {random}");
    // Purchases have higher affinity than views.
    let mean_at = |s: f32| {
        let rows: Vec<usize> = (0..it.len()).filter(|&r| it.ratings[r] == s).collect();
        rows.iter()
            .map(|&r| {
                truth.affinity(cust(it.users[r]), catalogue_index(d.items.raw(it.items[r]))) as f64
            })
            .sum::<f64>()
            / rows.len() as f64
    };
    assert!(mean_at(4.0) > mean_at(1.0) + 0.3);
}

#[test]
fn bad_configs_are_named() {
    let e = generate(&ProductConfig {
        late_share: 1.5,
        ..small()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid late_share: expected a fraction in [0, 1), found 1.5"
    );
    let e = generate(&ProductConfig {
        products: 0,
        ..small()
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "invalid --items: expected at least 1");
}
