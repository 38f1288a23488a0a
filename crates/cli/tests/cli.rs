//! Runs the real `shortlist` binary in temporary directories. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;
use std::process::{Command, Output};

fn shortlist(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args(args)
        .env("SHORTLIST_HOME", home)
        .env("SHORTLIST_GROUPLENS_URL", "http://127.0.0.1:1")
        .env("SHORTLIST_PYTHON", "/nonexistent/python3")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn synth_info_split_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synth");
    let d = dir.to_str().unwrap();
    let out = shortlist(
        &[
            "data",
            "synth",
            "--users",
            "200",
            "--items",
            "80",
            "--interactions",
            "5000",
            "--out",
            d,
            "--json",
        ],
        tmp.path(),
    );
    assert_eq!(json(&out)["interactions"], 5000);

    let info = json(&shortlist(&["data", "info", d, "--json"], tmp.path()));
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
    let train_info = json(&shortlist(
        &[
            "data",
            "info",
            a_dir.join("train.tsv").to_str().unwrap(),
            "--json",
        ],
        tmp.path(),
    ));
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
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
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
    let out = shortlist(
        &[
            "data",
            "synth",
            "--users",
            "120",
            "--items",
            "60",
            "--interactions",
            "6000",
            "--seed",
            "3",
            "--out",
            synth.to_str().unwrap(),
        ],
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
    let r = json(&shortlist(
        &[
            "train",
            "ranking",
            "--train",
            train.to_str().unwrap(),
            "--test",
            test.to_str().unwrap(),
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
    let e = json(&shortlist(
        &[
            "eval",
            "--model",
            ranking.to_str().unwrap(),
            "--test",
            test.to_str().unwrap(),
            "--json",
        ],
        home,
    ));
    assert!((e["rmse"].as_f64().unwrap() - rmse).abs() < 1e-9);
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
    let p = json(&shortlist(
        &[
            "predict",
            "--model",
            ranking.to_str().unwrap(),
            "--user",
            "u1",
            "--item",
            "i2",
            "--item",
            "nope",
            "--title",
            &title,
            "--json",
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
    let m = json(&shortlist(
        &[
            "train",
            "retrieval",
            "--train",
            train.to_str().unwrap(),
            "--test",
            test.to_str().unwrap(),
            "--config",
            rcfg.to_str().unwrap(),
            "--out",
            retrieval.to_str().unwrap(),
            "--json",
        ],
        home,
    ));
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
    let e = json(&shortlist(
        &[
            "eval",
            "--model",
            retrieval.to_str().unwrap(),
            "--test",
            test.to_str().unwrap(),
            "--json",
        ],
        home,
    ));
    assert!(
        (e["ndcg@10"].as_f64().unwrap() - m["ndcg@10"].as_f64().unwrap()).abs() < 1e-9,
        "{e} vs {m}"
    );

    // recommend: seen items excluded, k honoured, one JSON line per user.
    let rec = json(&shortlist(
        &[
            "recommend",
            "--model",
            retrieval.to_str().unwrap(),
            "--user",
            "u1",
            "-k",
            "5",
            "--exclude-seen",
            "--json",
        ],
        home,
    ));
    let items: Vec<&str> = rec["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["item_id"].as_str().unwrap())
        .collect();
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
    let all = shortlist(
        &[
            "recommend",
            "--model",
            retrieval.to_str().unwrap(),
            "--all-users",
            "-k",
            "3",
            "--exclude-seen",
            "--jsonl",
        ],
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
        let t = json(&shortlist(
            &[
                "train",
                "retrieval",
                "--train",
                train.to_str().unwrap(),
                "--test",
                test.to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
                "--out",
                dir.to_str().unwrap(),
                "--json",
            ],
            home,
        ));
        assert_eq!(t["index"], name);
        assert!(dir.join(file).exists() && !dir.join("index.safetensors").exists());
        let rec = json(&shortlist(
            &[
                "recommend",
                "--model",
                dir.to_str().unwrap(),
                "--user",
                "u1",
                "-k",
                "5",
                "--exclude-seen",
                "--json",
            ],
            home,
        ));
        rec["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["item_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
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
    let tune = json(&shortlist(
        &[
            "index",
            "tune",
            "--model",
            retrieval.to_str().unwrap(),
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
    let bad = shortlist(
        &[
            "index",
            "tune",
            "--model",
            retrieval.to_str().unwrap(),
            "--method",
            "faiss",
        ],
        home,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--method: \"faiss\" is not one of ivf, hnsw, all"));

    // The wrong kind of model is a clear usage error.
    let out = shortlist(
        &[
            "predict",
            "--model",
            retrieval.to_str().unwrap(),
            "--user",
            "u1",
            "--item",
            "i1",
        ],
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
    let out = shortlist(
        &[
            "train",
            "ranking",
            "--train",
            d,
            "--test",
            d,
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            "m",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: invalid batch_size: expected at least 1"
    );
    let missing = tmp.path().join("missing.toml");
    let out = shortlist(
        &[
            "train",
            "ranking",
            "--train",
            d,
            "--test",
            d,
            "--config",
            missing.to_str().unwrap(),
            "--out",
            "m",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "error: --config {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let out = shortlist(
        &["eval", "--model", tmp.path().to_str().unwrap(), "--test", d],
        tmp.path(),
    );
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
