//! Runs the real `shortlist` binary in temporary directories. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod offline;

use std::path::Path;

use offline::{eval_model, exit_2, info_json, json, on_model, shortlist, synth_data, train_model};

#[test]
fn synth_info_split_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synth");
    let d = dir.to_str().unwrap();
    let out = synth_data("200", "80", "5000", &["--out", d, "--json"], tmp.path());
    assert_eq!(json(&out)["interactions"], 5000);

    let info = info_json(d, tmp.path());
    assert_eq!(info["interactions"], 5000);
    assert_eq!(info["name"], "synth");
    assert!(info["users"].as_u64().unwrap() <= 200);
    let features: Vec<&str> = info["item_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["title", "genre", "tags", "price"]);

    let split = |out_dir: &str, method: &[&str]| {
        let mut args = vec!["data", "split", d, "--out", out_dir, "--json"];
        args.extend_from_slice(method);
        json(&shortlist(&args, tmp.path()))
    };
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    let a = split(a_dir.to_str().unwrap(), &["--seed", "42"]);
    let b = split(b_dir.to_str().unwrap(), &["--seed", "42"]);
    assert_eq!(
        (a["train"].as_u64(), a["test"].as_u64()),
        (Some(4000), Some(1000))
    );
    assert_eq!(a["sha256"], b["sha256"], "same seed, same split");
    assert_eq!(
        std::fs::read(a_dir.join("train.tsv")).unwrap(),
        std::fs::read(b_dir.join("train.tsv")).unwrap()
    );
    let c = split(tmp.path().join("c").to_str().unwrap(), &["--seed", "43"]);
    assert_ne!(a["sha256"], c["sha256"]);

    // The split files load back and together hold every interaction exactly once.
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut both = lines(&a_dir.join("train.tsv"));
    both.extend(lines(&a_dir.join("test.tsv")));
    both.sort();
    let mut all = lines(&dir.join("interactions.tsv"));
    all.sort();
    assert_eq!(both, all);
    let train_info = info_json(a_dir.join("train.tsv").to_str().unwrap(), tmp.path());
    assert_eq!(train_info["interactions"], 4000);

    let lo = split(
        tmp.path().join("lo").to_str().unwrap(),
        &["--method", "leave-last-out", "--n", "1"],
    );
    assert_eq!(
        lo["test"].as_u64().unwrap() + lo["train"].as_u64().unwrap(),
        5000
    );
    let t = split(
        tmp.path().join("t").to_str().unwrap(),
        &["--method", "temporal", "--ratio", "0.9"],
    );
    assert_eq!(t["test"], 500);
}

#[test]
fn bad_input_exits_2_with_a_named_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, "user_id\titem_id\trating\ttimestamp\n1\t2\tfive\t3\n").unwrap();
    let out = shortlist(&["data", "info", bad.to_str().unwrap()], tmp.path());
    assert_eq!(
        exit_2(&out),
        format!(
            "error: {}:2: column 3 (rating): expected a number, found \"five\"",
            bad.display()
        )
    );
    let out = shortlist(
        &["data", "info", bad.to_str().unwrap(), "--skip-bad-rows"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "nothing left after skipping");
    let out = shortlist(
        &[
            "data",
            "split",
            bad.to_str().unwrap(),
            "--ratio",
            "1.5",
            "--out",
            "x",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = shortlist(&["data", "info", "ml-999"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset \"ml-999\""));
    // A path that does not exist is "no such file", not an unknown dataset name.
    let out = shortlist(&["data", "info", "nope/ratings.csv"], tmp.path());
    assert_eq!(
        exit_2(&out),
        "error: nope/ratings.csv: no such file or directory"
    );
    // A name close to a known one gets a "did you mean".
    let out = shortlist(&["data", "info", "ml-100K"], tmp.path());
    assert_eq!(
        exit_2(&out),
        "error: unknown dataset \"ml-100K\" (did you mean \"ml-100k\"?): expected one of ml-100k, ml-1m, ml-latest-small, ml-25m or the path of a file or directory"
    );
    // A MovieLens ratings.csv given as a file is read as MovieLens (titles included).
    let ml = tmp.path().join("ml-latest-small");
    std::fs::create_dir(&ml).unwrap();
    std::fs::write(
        ml.join("ratings.csv"),
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,964982224\n",
    )
    .unwrap();
    std::fs::write(
        ml.join("movies.csv"),
        "movieId,title,genres\n1,Toy Story (1995),Animation\n3,Heat (1995),Action\n",
    )
    .unwrap();
    let info = info_json(ml.join("ratings.csv").to_str().unwrap(), tmp.path());
    assert_eq!(info["interactions"], 3);
    assert_eq!(info["name"], "ml-latest-small");
    // Negative numbers reach the flag's parser, whose error names the flag.
    let out = shortlist(
        &[
            "train", "ranking", "--data", "x", "--epochs", "-1", "--out", "m",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "error: invalid value '-1' for '--epochs <N>': expected a whole number ≥ 1, found -1"
        ),
        "{err}"
    );
    let out = shortlist(
        &[
            "train",
            "retrieval",
            "--data",
            "x",
            "--batch-size",
            "0",
            "--out",
            "m",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(
        "error: invalid value '0' for '--batch-size <N>': expected a whole number ≥ 1, found 0"
    ));
}

#[test]
fn fetch_without_any_source_explains_what_was_tried() {
    let tmp = tempfile::tempdir().unwrap();
    let out = shortlist(&["data", "fetch", "ml-100k"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fetching ml-100k: every source failed"),
        "{err}"
    );
    assert!(err.contains("recbole==1.2.1 wheel via pip: "), "{err}");
    assert!(!tmp.path().join("datasets").join("ml-100k").exists());
}

/// Trains both stages on a small synthetic log through the CLI, then evaluates,
/// predicts and recommends with the saved models.
#[test]
fn train_eval_predict_recommend() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let synth = home.join("synth");
    let out = synth_data(
        "120",
        "60",
        "6000",
        &["--seed", "3", "--out", synth.to_str().unwrap()],
        home,
    );
    assert!(out.status.success());
    let split = home.join("split");
    json(&shortlist(
        &[
            "data",
            "split",
            synth.to_str().unwrap(),
            "--out",
            split.to_str().unwrap(),
            "--json",
        ],
        home,
    ));
    let (train, test) = (split.join("train.tsv"), split.join("test.tsv"));
    let cfg = home.join("ranking.toml");
    std::fs::write(&cfg, "embedding_dim = 8\nhidden = [16]\nbiases = true\ninit_bias_to_mean = true\noptimizer = \"adam\"\nembedding_optimizer = \"adam\"\nlearning_rate = 0.01\nbatch_size = 256\nepochs = 4\n").unwrap();
    let ranking = home.join("ranking");
    let r = json(&train_model(
        "ranking",
        train.to_str().unwrap(),
        test.to_str().unwrap(),
        &[
            "--data",
            synth.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--epochs",
            "3",
            "--out",
            ranking.to_str().unwrap(),
            "--json",
        ],
        home,
    ));
    assert_eq!(r["epochs"], 3, "--epochs overrides the config");
    let rmse = r["rmse"].as_f64().unwrap();
    assert!(rmse > 0.0 && rmse < 1.2, "rmse {rmse}");
    for f in [
        "manifest.json",
        "weights.safetensors",
        "features.json",
        "curves.csv",
        "curves.png",
        "config.toml",
        "items.tsv",
    ] {
        assert!(ranking.join(f).exists(), "{f}");
    }
    // eval on the same test file reproduces the training report.
    let e = json(&eval_model(
        ranking.to_str().unwrap(),
        test.to_str().unwrap(),
        &["--json"],
        home,
    ));
    assert!((e["rmse"].as_f64().unwrap() - rmse).abs() < 1e-9);
    // Without --json, eval prints a table.
    let table = eval_model(ranking.to_str().unwrap(), test.to_str().unwrap(), &[], home);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("{} on {}", ranking.display(), test.display())
    );
    assert!(
        lines[1].starts_with("ranking (test: ") && lines[1].contains(" ratings; lower is better)"),
        "{text}"
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["RMSE", &format!("{rmse:.4}")]
    );
    // predict: by id and by title, unknown item flagged.
    let items_tsv = std::fs::read_to_string(synth.join("items.tsv")).unwrap();
    let title = items_tsv
        .lines()
        .find(|l| l.starts_with("i5\t"))
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .to_owned();
    let p = json(&on_model(
        &["predict"],
        ranking.to_str().unwrap(),
        &[
            "--user", "u1", "--item", "i2", "--item", "nope", "--title", &title, "--json",
        ],
        home,
    ));
    assert!(p["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["item_id"] == "i5" && x["title"] == title.as_str()));
    let preds = p["predictions"].as_array().unwrap();
    assert!(preds.len() >= 2);
    assert!(preds
        .iter()
        .any(|x| x["item_id"] == "nope" && x["known_item"] == false));
    let ratings: Vec<f64> = preds
        .iter()
        .map(|x| x["rating"].as_f64().unwrap())
        .collect();
    assert!(
        ratings.windows(2).all(|w| w[0] >= w[1]),
        "sorted best first: {ratings:?}"
    );

    let retrieval = home.join("retrieval");
    let rcfg = home.join("retrieval.toml");
    std::fs::write(
        &rcfg,
        "embedding_dim = 8\nepochs = 3\nbatch_size = 256\nlearning_rate = 0.01\n",
    )
    .unwrap();
    // A retrieval model trained on the split with `cfg` into `out`: its report.
    let train_retrieval = |cfg: &Path, out: &Path| {
        let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
        let args = ["--config", c, "--out", o, "--json"];
        let (train, test) = (train.to_str().unwrap(), test.to_str().unwrap());
        json(&train_model("retrieval", train, test, &args, home))
    };
    // What `recommend` gives u1 from `model`: 5 item ids, seen items excluded.
    let recommend_u1 = |model: &Path| -> Vec<String> {
        let args = ["--user", "u1", "-k", "5", "--exclude-seen", "--json"];
        let rec = json(&on_model(
            &["recommend"],
            model.to_str().unwrap(),
            &args,
            home,
        ));
        rec["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["item_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let m = train_retrieval(&rcfg, &retrieval);
    for key in [
        "recall@10",
        "recall@20",
        "ndcg@10",
        "ndcg@20",
        "hit_rate@10",
        "top_k_accuracy@1",
        "top_k_accuracy@100",
    ] {
        assert!(m[key].as_f64().is_some(), "{key} in {m}");
    }
    let e = json(&eval_model(
        retrieval.to_str().unwrap(),
        test.to_str().unwrap(),
        &["--json"],
        home,
    ));
    assert!(
        (e["ndcg@10"].as_f64().unwrap() - m["ndcg@10"].as_f64().unwrap()).abs() < 1e-9,
        "{e} vs {m}"
    );

    // recommend: seen items excluded, k honoured, one JSON line per user.
    let items = recommend_u1(&retrieval);
    assert_eq!(items.len(), 5);
    let seen: Vec<String> = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("u1\t"))
        .map(|l| l.split('\t').nth(1).unwrap().to_owned())
        .collect();
    assert!(
        items.iter().all(|i| !seen.iter().any(|s| s == i)),
        "{items:?} overlaps {seen:?}"
    );
    let all = on_model(
        &["recommend"],
        retrieval.to_str().unwrap(),
        &["--all-users", "-k", "3", "--exclude-seen", "--jsonl"],
        home,
    );
    assert!(all.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(all.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 50);
    assert!(lines
        .iter()
        .all(|l| l["items"].as_array().unwrap().len() == 3
            && l["scores"].as_array().unwrap().len() == 3));
    // --json with --all-users: one object holding the same lines.
    let one = json(&on_model(
        &["recommend"],
        retrieval.to_str().unwrap(),
        &["--all-users", "-k", "3", "--exclude-seen", "--json"],
        home,
    ));
    assert_eq!(one["k"], 3);
    assert_eq!(one["exclude_seen"], true);
    assert_eq!(one["users"].as_array().unwrap(), &lines);
    // --jsonl belongs to --all-users, and excludes --json.
    for bad in [
        &["--user", "u1", "--jsonl"][..],
        &["--user", "u1", "--output", "x.jsonl"][..],
        &["--all-users", "--json", "--jsonl"][..],
    ] {
        let mut args = vec!["recommend", "--model", retrieval.to_str().unwrap()];
        args.extend_from_slice(bad);
        let out = shortlist(&args, home);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        if bad[0] == "--user" {
            assert_eq!(
                String::from_utf8_lossy(&out.stderr).trim(),
                "error: --jsonl and --output go with --all-users (one line per user); for one user use --json"
            );
        }
    }
    // The same model with an approximate index (the config chooses): saved, used by
    // recommend; on 60 items HNSW is exact, and so is IVF probing every list.
    let with_index = |name: &str, index_toml: &str, file: &str| {
        let dir = home.join(format!("retrieval-{name}"));
        let cfg = home.join(format!("retrieval-{name}.toml"));
        std::fs::write(
            &cfg,
            format!("embedding_dim = 8\nepochs = 3\nbatch_size = 256\nlearning_rate = 0.01\n{index_toml}"),
        )
        .unwrap();
        let t = train_retrieval(&cfg, &dir);
        assert_eq!(t["index"], name);
        assert!(dir.join(file).exists() && !dir.join("index.safetensors").exists());
        recommend_u1(&dir)
    };
    let hnsw_items = with_index("hnsw", "[index]\nkind = \"hnsw\"\n", "index.hnsw");
    assert_eq!(hnsw_items, items, "on 60 items the HNSW search is exact");
    let ivf_items = with_index(
        "ivf",
        "[index]\nkind = \"ivf\"\n[index.ivf]\nlists = 6\nprobes = 6\n",
        "index.ivf.safetensors",
    );
    assert_eq!(ivf_items, items, "probing every list, IVF is exact");

    // The sweep reports recall against the exact index for every task and setting:
    // at recall target 1 the IVF index opens everything it must (recall 1), and on 60
    // items every task is within reach.
    let tune = json(&on_model(
        &["index", "tune"],
        retrieval.to_str().unwrap(),
        &[
            "--queries",
            "20",
            "--ks",
            "5,10",
            "--targets",
            "0.5,1",
            "--json",
        ],
        home,
    ));
    let text = on_model(
        &["index", "tune"],
        retrieval.to_str().unwrap(),
        &["--queries", "5", "--method", "ivf"],
        home,
    );
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.ends_with("expansion_search = …\n"),
        "the table ends with its hint and a newline: {text:?}"
    );
    let settings = tune["settings"].as_array().unwrap();
    let tasks = ["k=5", "k=10", "excl=10", "excl=50", "excl=90", "seen,k=10"];
    for task in tasks {
        let ivf: Vec<_> = settings
            .iter()
            .filter(|r| r["method"] == "ivf" && r["task"] == task)
            .collect();
        assert_eq!(ivf.len(), 2, "{task}: one row per target");
        assert_eq!(ivf[1]["setting"], "recall_target 1");
        assert!(
            ivf[1]["recall"].as_f64().unwrap() >= 0.9999,
            "{task}: {}",
            ivf[1]
        );
        let hnsw = settings
            .iter()
            .filter(|r| r["method"] == "hnsw" && r["task"] == task)
            .count();
        assert_eq!(hnsw, 7, "{task}: one row per expansion_search");
    }
    assert_eq!(settings.len(), tasks.len() * (2 + 7));
    assert!(settings
        .iter()
        .all(|r| (0.0..=1.0).contains(&r["recall"].as_f64().unwrap())));
    assert_eq!(tune["queries"], 20);
    assert_eq!(tune["calibration_queries"], 20);
    let bad = on_model(
        &["index", "tune"],
        retrieval.to_str().unwrap(),
        &["--method", "faiss"],
        home,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--method: \"faiss\" is not one of ivf, hnsw, all"));

    // The wrong kind of model is a clear usage error.
    let out = on_model(
        &["predict"],
        retrieval.to_str().unwrap(),
        &["--user", "u1", "--item", "i1"],
        home,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("`predict` needs a ranking model, this is a retrieval model"));
}

#[test]
fn bad_training_config_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.tsv");
    std::fs::write(
        &data,
        "user_id\titem_id\trating\ttimestamp\na\tx\t5\t1\nb\tx\t3\t2\n",
    )
    .unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "batch_size = 0\n").unwrap();
    let d = data.to_str().unwrap();
    let train_with = |cfg: &Path| {
        let args = ["--config", cfg.to_str().unwrap(), "--out", "m"];
        train_model("ranking", d, d, &args, tmp.path())
    };
    let out = train_with(&cfg);
    assert_eq!(
        exit_2(&out),
        "error: invalid batch_size: expected at least 1"
    );
    let missing = tmp.path().join("missing.toml");
    let out = train_with(&missing);
    assert_eq!(
        exit_2(&out),
        format!(
            "error: --config {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let out = eval_model(tmp.path().to_str().unwrap(), d, &[], tmp.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "a directory without a model is bad input"
    );
    let out = shortlist(&["train", "retrieval", "--out", "m"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("give --data NAME|PATH, or --train FILE --test FILE"));
}

/// `data split` publishes its files as one directory: a second split replaces the
/// first whole, a directory holding anything else is refused, nothing is left
/// behind.
#[test]
fn split_output_is_one_unit() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    json(&synth_data(
        "50",
        "30",
        "800",
        &["--out", d, "--json"],
        home,
    ));
    let out = tmp.path().join("split");
    let o = out.to_str().unwrap();
    let a = json(&shortlist(
        &["data", "split", d, "--out", o, "--json"],
        home,
    ));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("split.json")).unwrap()).unwrap();
    assert_eq!(record["sha256"], a["sha256"]);
    assert_eq!(record["train"]["rows"], a["train"]);
    let b = json(&shortlist(
        &["data", "split", d, "--out", o, "--seed", "7", "--json"],
        home,
    ));
    assert_ne!(a["sha256"], b["sha256"]);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("split.json")).unwrap()).unwrap();
    assert_eq!(record["sha256"], b["sha256"]);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "split"], "leftovers next to the split");

    // The dataset directory itself holds other files: refused, untouched.
    let before = std::fs::read_dir(&data).unwrap().count();
    let r = shortlist(&["data", "split", d, "--out", d], home);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("holds files other than a split's (interactions.tsv, items.tsv, schema.toml, users.tsv)"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), before);
}
