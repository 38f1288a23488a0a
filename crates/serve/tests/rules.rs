//! Business rules over HTTP (`/v1/recommend`'s `filter`, `max_per`, `freshness`) and
//! items added and retired while serving (`/v1/items`), with a real retrieval model
//! trained on the synthetic product log and its item attributes (`attributes.json`):
//! every answer checked against the catalogue, every bad rule or item answered 400
//! with the field named, the item log replayed after a restart.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{item_ids, start_real_connected as start_connected, Client};
use serde_json::{json, Value};
use shortlist_core::dataset::{Column, ColumnValues};
use shortlist_data::products::{generate, ProductConfig};
use shortlist_features::FeatureConfig;
use shortlist_model::attributes::ItemAttributes;
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};

/// The catalogue as the test checks it: item id → (category, price, launched).
type Catalogue = HashMap<String, (String, f64, i64)>;

/// Trains `BASE/retrieval/1` in a new temporary model base path with item features and
/// its attribute table (plus the products' launch dates, which are not a model feature).
fn train_model(with_ranking: bool) -> (tempfile::TempDir, Catalogue, String) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let (mut d, truth) = generate(&ProductConfig {
        customers: 150,
        products: 90,
        sessions: 2500,
        seed: 5,
        ..ProductConfig::default()
    })
    .unwrap();
    let train: Vec<usize> = (0..d.interactions.len()).collect();
    let cfg = RetrievalTrainConfig {
        embedding_dim: 8,
        epochs: 1,
        batch_size: 256,
        features: FeatureConfig {
            item_features: vec!["*".into()],
            ..FeatureConfig::default()
        },
        eval_every_epoch: false,
        ..RetrievalTrainConfig::default()
    };
    let (model, _) = train_retrieval(&d, &train, &[], &cfg, |_| {}).unwrap();
    let dir = base.join("retrieval").join("1");
    model
        .save(&dir, &vec![String::new(); model.num_items()])
        .unwrap();
    // Launch dates moved so that the newest product launched a day before now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let shift = now - 86_400 - truth.launch.iter().max().unwrap();
    let launched: Vec<f64> = (0..d.items.len() as u32)
        .map(|i| {
            let p = shortlist_data::products::catalogue_index(d.items.raw(i));
            (truth.launch[p] + shift) as f64
        })
        .collect();
    d.item_features.columns.push(Column {
        name: "launched".into(),
        values: ColumnValues::Numeric(launched),
    });
    let ranking = shortlist_train::TrainConfig {
        embedding_dim: 8,
        hidden: vec![8],
        epochs: 1,
        batch_size: 256,
        relevance: None,
        ..Default::default()
    };
    if with_ranking {
        let (r, _) = shortlist_train::train_ranking(&d, &train, &[], &ranking).unwrap();
        r.save(&base.join("ranking").join("1")).unwrap();
    }
    let attrs = ItemAttributes::from_table(&model.spec.item_id, &d.items, &d.item_features);
    attrs.save(&dir, &model.spec.item_id).unwrap();
    shortlist_model::files::seal(&dir).unwrap();
    let col = |name: &str| d.item_features.get(name).unwrap().values.clone();
    let (ColumnValues::Categorical(cat), ColumnValues::Numeric(price), ColumnValues::Numeric(l)) =
        (col("category"), col("price"), col("launched"))
    else {
        panic!("product features")
    };
    let catalogue = (0..d.items.len())
        .map(|i| {
            (
                d.items.raw(i as u32).to_owned(),
                (cat[i].clone(), price[i], l[i] as i64),
            )
        })
        .collect();
    (tmp, catalogue, d.users.raw(0).to_owned())
}

async fn ask(c: &mut Client, body: Value) -> (u16, Value) {
    let r = c.post("/v1/recommend", &body).await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_caps_and_freshness_shape_the_answer_and_bad_rules_are_named() {
    let (base, cat, user) = train_model(true);
    let user = user.as_str();
    let (mut c, _, _stop, _task) = start_connected(base.path()).await;

    // A category filter: k items come back (retrieved among the category's items,
    // not cut from the unfiltered list), all of the category.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for v in cat.values() {
        *counts.entry(v.0.as_str()).or_default() += 1;
    }
    let (category, in_category) = counts
        .iter()
        .map(|(c, n)| (c.to_string(), *n))
        .max_by_key(|(c, n)| (*n, c.clone()))
        .unwrap();
    assert!(in_category >= 6, "{in_category}");
    let (s, r) = ask(
        &mut c,
        json!({"user_id": user, "k": 5, "num_candidates": 5, "exclude_seen": false,
        "filter": {"category": [category]}}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let got = item_ids(&r);
    assert_eq!(got.len(), 5, "{r}");
    assert!(got.iter().all(|i| cat[i].0 == category), "{r}");

    // A filter that leaves fewer than k items answers with exactly those.
    let mut prices: Vec<f64> = cat
        .values()
        .filter(|v| v.0 == category)
        .map(|v| v.1)
        .collect();
    prices.sort_by(f64::total_cmp);
    let bound = (prices[1] + prices[2]) / 2.0;
    let (s, r) = ask(
        &mut c,
        json!({"user_id": user, "k": 10, "exclude_seen": false,
        "filter": {"category": category, "price": {"lt": bound}}}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let mut got = item_ids(&r);
    got.sort();
    let mut want: Vec<String> = cat
        .iter()
        .filter(|(_, v)| v.0 == category && v.1 < bound)
        .map(|(k, _)| k.clone())
        .collect();
    want.sort();
    assert_eq!((got.len(), &got), (2, &want));
    // Unknown users (popularity) are filtered the same way.
    let (s, r) = ask(
        &mut c,
        json!({"user_id": "nobody", "k": 10,
        "filter": {"category": category, "price": {"lt": bound}}}),
    )
    .await;
    assert_eq!((s, r["user_path"].as_str()), (200, Some("popular")));
    let mut got = item_ids(&r);
    got.sort();
    assert_eq!(got, want);

    // At most two per category.
    let (s, r) = ask(
        &mut c,
        json!({"user_id": user, "k": 8, "num_candidates": 60, "max_per": {"category": 2}}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let got = item_ids(&r);
    assert_eq!(got.len(), 8, "{r}");
    let mut per: HashMap<&str, usize> = HashMap::new();
    for i in &got {
        *per.entry(cat[i].0.as_str()).or_default() += 1;
    }
    assert!(per.values().all(|&n| n <= 2), "{per:?}");

    // Freshness: a heavy boost with a short half-life puts the newest products first.
    let (s, r) = ask(
        &mut c,
        json!({"user_id": user, "k": 3, "num_candidates": 90, "exclude_seen": false,
        "freshness": {"attribute": "launched", "half_life_days": 1, "weight": 1000}}),
    )
    .await;
    assert_eq!((s, r["user_path"].as_str()), (200, Some("known")), "{r}");
    let mut newest: Vec<(&String, i64)> = cat.iter().map(|(k, v)| (k, v.2)).collect();
    newest.sort_by_key(|(k, t)| (std::cmp::Reverse(*t), (*k).clone()));
    let got = item_ids(&r);
    assert_eq!(cat[&got[0]].2, newest[0].1, "{r}");
    assert!(got.iter().all(|i| cat[i].2 >= newest[5].1), "{r}");

    // /v1/rank takes the filter too: items that do not pass are left out.
    let mut ids: Vec<&String> = cat.keys().collect();
    ids.sort();
    let r = c
        .post(
            "/v1/rank",
            &json!({"user_id": user, "item_ids": ids, "filter": {"category": [category]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got = item_ids(&r.json());
    got.sort();
    let mut want: Vec<String> = cat
        .iter()
        .filter(|(_, v)| v.0 == category)
        .map(|(k, _)| k.clone())
        .collect();
    want.sort();
    assert_eq!(got, want);
    let r = c
        .post(
            "/v1/rank",
            &json!({"user_id": user, "item_ids": ids, "filter": {"size": ["XL"]}}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap_or("")),
        (400, "filter.size: unknown attribute; the items have: category, brand, tags, price, launched")
    );

    // Bad rules: 400 naming the field.
    let cases = [
        (json!({"filter": {"colour": ["red"]}}),
         "filter.colour: unknown attribute; the items have: category, brand, tags, price, launched"),
        (json!({"filter": {"price": {"below": 5}}}),
         "filter.price: unknown operator \"below\"; expected one of lt, lte, gt, gte"),
        (json!({"filter": {"price": {"lt": "5"}}}), "filter.price.lt must be a number, got \"5\""),
        (json!({"filter": {"category": {"gt": 1}}}),
         "filter.category: \"category\" is a categorical attribute: expected a list of labels, not a comparison"),
        (json!({"filter": "shoes"}),
         "field \"filter\" must be an object of attribute → a list of labels, or {\"lt\"|\"lte\"|\"gt\"|\"gte\": number}, got \"shoes\""),
        (json!({"max_per": {"price": 2}}),
         "max_per.price: \"price\" is a numeric attribute: the cap needs a categorical one (one label per item)"),
        (json!({"freshness": {"attribute": "brand"}}),
         "freshness.attribute: \"brand\" is a categorical attribute: expected a numeric one (Unix seconds)"),
    ];
    for (extra, want) in cases {
        let mut body = json!({"user_id": user});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, r) = ask(&mut c, body).await;
        assert_eq!((s, r["error"].as_str().unwrap_or("")), (400, want));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every item of a full-catalogue answer (k and num_candidates above the catalogue).
async fn everything(c: &mut Client, user: &str) -> Value {
    let (s, r) = ask(
        c,
        json!({"user_id": user, "k": 500, "num_candidates": 500, "exclude_seen": false}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_added_and_retired_while_serving_change_answers_and_survive_a_restart() {
    let (base, cat, user) = train_model(false);
    let user = user.as_str();
    let (mut c, addr, stop, task) = start_connected(base.path()).await;
    let (category, brand) = {
        let mut v: Vec<&(String, f64, i64)> = cat.values().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        (v[0].0.clone(), "brand-new")
    };

    // Two new products: features of the model (title text, category, brand, tags,
    // price) and the launch date (an attribute only).
    let body = json!({"items": [
        {"item_id": "NEW-1", "title": "Trail boot",
         "features": {"title": "trail boot", "category": category, "brand": brand,
                      "tags": ["outdoor"], "price": 12.5, "launched": now()}},
        {"item_id": "NEW-2", "features": {"category": category, "price": 99.0}}
    ]});
    let r = c.post("/v1/items", &body).await;
    assert_eq!((r.status, r.json()), (200, json!({"accepted": 2})));

    // Both are in the index (every item of the catalogue comes back, with a score
    // from the item tower), with their title and attributes.
    let all = everything(&mut c, user).await;
    let ids = item_ids(&all);
    assert_eq!(ids.len(), cat.len() + 2, "{all}");
    let new1 = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item_id"] == "NEW-1")
        .unwrap();
    assert!(new1["retrieval_score"].as_f64().unwrap().is_finite());
    assert_eq!(new1["title"], "Trail boot");
    let (s, r) = ask(
        &mut c,
        json!({"user_id": user, "k": 10, "exclude_seen": false,
        "filter": {"category": [category], "price": {"lt": 13, "gt": 12}}}),
    )
    .await;
    assert_eq!((s, item_ids(&r)), (200, vec!["NEW-1".to_owned()]), "{r}");
    let (s, r) = ask(
        &mut c,
        json!({"user_id": user, "k": 1, "num_candidates": 200, "exclude_seen": false,
        "freshness": {"attribute": "launched", "half_life_days": 0.01, "weight": 1000}}),
    )
    .await;
    assert_eq!((s, item_ids(&r)), (200, vec!["NEW-1".to_owned()]), "{r}");

    // Bad items: 400 naming the entry and feature; nothing is added.
    let bad = [
        (json!({"items": [{"item_id": "X", "features": {"price": "cheap"}}]}),
         "items[0].features.price: expected a finite number (numeric)"),
        (json!({"items": [{"item_id": "X"}, {"item_id": "Y", "features": {"colour": "red"}}]}),
         "items[1].features.colour: unknown feature; expected one of: title, category, brand, tags, price, launched"),
        (json!({"items": [{"item_id": "X", "features": {"tags": 3}}]}),
         "items[0].features.tags: expected a list of strings (multi-categorical)"),
    ];
    for (b, want) in bad {
        let r = c.post("/v1/items", &b).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str().unwrap_or("")),
            (400, want)
        );
    }
    assert_eq!(
        item_ids(&everything(&mut c, user).await).len(),
        cat.len() + 2
    );

    // Retire a new item and the user's best trained item: neither comes back, for
    // a known user, for an unknown one (popularity), or from /v1/rank.
    let best = item_ids(&everything(&mut c, user).await)
        .into_iter()
        .find(|i| !i.starts_with("NEW"))
        .unwrap();
    for id in ["NEW-2", best.as_str()] {
        let r = c
            .request("DELETE", &format!("/v1/items/{id}"), None)
            .await
            .unwrap();
        assert_eq!((r.status, r.json()), (200, json!({"retired": id})));
    }
    let ids = item_ids(&everything(&mut c, user).await);
    assert_eq!(ids.len(), cat.len(), "two retired of {} + 2", cat.len());
    assert!(!ids.contains(&best) && !ids.contains(&"NEW-2".to_owned()));
    let pop = everything(&mut c, "somebody-new").await;
    assert_eq!(pop["user_path"], "popular");
    assert!(!item_ids(&pop).contains(&best));
    let r = c
        .post(
            "/v1/rank",
            &json!({"user_id": user, "item_ids": [best, "NEW-1"]}),
        )
        .await;
    // No ranking model is served: the answer is an error, never the retired item.
    assert!(!r.text().contains(&format!("\"{best}\"")), "{}", r.text());
    // Events for a retired item are refused.
    let r = c
        .post(
            "/v1/events",
            &json!({"events": [{"user_id": user, "item_id": "NEW-2", "event": "view"}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str().unwrap_or("")),
        (400, "events[0].item_id \"NEW-2\" is a retired item (DELETE /v1/items): events for it are refused")
    );

    // Items added while requests run: every request answers 200.
    let reader = {
        let user = user.to_owned();
        tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut codes = Vec::new();
            for _ in 0..150 {
                let (s, _) = ask(&mut c, json!({"user_id": user, "k": 10})).await;
                codes.push(s);
            }
            codes
        })
    };
    for b in 0..20 {
        let batch: Vec<Value> = (0..10)
            .map(|i| json!({"item_id": format!("BULK-{b}-{i}"), "features": {"category": category, "price": 10 + i}}))
            .collect();
        let r = c.post("/v1/items", &json!({ "items": batch })).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let codes = reader.await.unwrap();
    assert!(codes.iter().all(|&s| s == 200), "{codes:?}");
    let ids = item_ids(&everything(&mut c, user).await);
    assert_eq!(ids.len(), cat.len() + 200);

    // Restart: the item log is replayed.
    let _ = stop.send(());
    let _ = task.await;
    let path = shortlist_serve::items::log_path(base.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while shortlist_serve::events::log::Appender::open_kind(
        &path,
        &shortlist_serve::items::ITEM_LOG,
        |_| true,
    )
    .is_err()
    {
        assert!(Instant::now() < deadline, "the item log stayed locked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut c, _, _stop, _task) = start_connected(base.path()).await;
    let ids = item_ids(&everything(&mut c, user).await);
    assert_eq!(ids.len(), cat.len() + 200);
    assert!(ids.contains(&"NEW-1".to_owned()));
    assert!(!ids.contains(&best) && !ids.contains(&"NEW-2".to_owned()));
}
