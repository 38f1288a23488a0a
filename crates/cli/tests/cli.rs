//! Runs the real `shortlist` binary in temporary directories. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cmd` (the binary, or a shell that runs it) with `args`, `home` as
/// `SHORTLIST_HOME`, and the download source and the Python interpreter pointed at
/// nothing: no test reaches the network or a Python.
fn run_offline(cmd: &mut Command, args: &[&str], home: &Path) -> Output {
    cmd.args(args)
        .env("SHORTLIST_HOME", home)
        .env("SHORTLIST_GROUPLENS_URL", "http://127.0.0.1:1")
        .env("SHORTLIST_PYTHON", "/nonexistent/python3")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}

fn shortlist(args: &[&str], home: &Path) -> Output {
    run_offline(
        &mut Command::new(env!("CARGO_BIN_EXE_shortlist")),
        args,
        home,
    )
}

/// `shortlist eval --model MODEL --test TEST`, then `extra`.
fn eval_model(model: &str, test: &str, extra: &[&str], home: &Path) -> Output {
    let args = ["eval", "--model", model, "--test", test];
    shortlist(&[&args[..], extra].concat(), home)
}

/// `shortlist train KIND --train TRAIN --test TEST`, then `extra`.
fn train_model(kind: &str, train: &str, test: &str, extra: &[&str], home: &Path) -> Output {
    let args = ["train", kind, "--train", train, "--test", test];
    shortlist(&[&args[..], extra].concat(), home)
}

/// `shortlist data synth --users U --items I --interactions N`, then `extra`.
fn synth_data(users: &str, items: &str, interactions: &str, extra: &[&str], home: &Path) -> Output {
    let args = ["data", "synth", "--users", users, "--items", items];
    shortlist(
        &[&args[..], &["--interactions", interactions], extra].concat(),
        home,
    )
}

/// `shortlist COMMAND… --model MODEL`, then `extra` (predict, recommend, index tune).
fn on_model(command: &[&str], model: &str, extra: &[&str], home: &Path) -> Output {
    shortlist(&[command, &["--model", model], extra].concat(), home)
}

/// The report of `shortlist data info FILE --json`.
fn info_json(file: &str, home: &Path) -> serde_json::Value {
    json(&shortlist(&["data", "info", file, "--json"], home))
}

/// The trimmed stderr of a run that must have exited 2 (bad input).
fn exit_2(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
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

/// A small MovieLens 100k stand-in in the dataset cache (users 1..=60, films 1..=40,
/// about a third of the pairs rated), so `quickstart` runs without the network.
fn fake_ml100k(home: &Path) {
    let dir = home.join("datasets").join("ml-100k");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut data, mut items, mut users) = (String::new(), String::new(), String::new());
    let mut rng = shortlist_core::Rng::new(7);
    for u in 1..=60u64 {
        for i in 1..=40u64 {
            let x = rng.next_u64();
            if !(x >> 33).is_multiple_of(2) {
                continue;
            }
            // Item quality, a harsh third of the users, noise: biases to learn.
            let quality = 1 + i % 5;
            let harsh = u64::from(u % 3 == 0);
            let r = (quality + (x >> 40) % 2).saturating_sub(harsh).clamp(1, 5);
            data.push_str(&format!("{u}\t{i}\t{r}\t{}\n", 880_000_000 + u * 100 + i));
        }
        users.push_str(&format!("{u}|{}|M|student|12345\n", 20 + u % 40));
    }
    for i in 1..=40u64 {
        let flags: Vec<&str> = (0..19)
            .map(|k| if k as u64 == i % 19 { "1" } else { "0" })
            .collect();
        items.push_str(&format!(
            "{i}|Film {i} (1995)|01-Jan-1995||http://x|{}\n",
            flags.join("|")
        ));
    }
    std::fs::write(dir.join("u.data"), data).unwrap();
    std::fs::write(dir.join("u.item"), items).unwrap();
    std::fs::write(dir.join("u.user"), users).unwrap();
    std::fs::write(dir.join(".shortlist-source"), "test fixture").unwrap();
}

/// `shortlist` under umask 022 (through `sh`, which sets it before exec).
fn shortlist_umask_022(args: &[&str], home: &Path) -> Output {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_shortlist"));
    run_offline(&mut sh, args, home)
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The first hour of a new user: quickstart (user checked first, a table with
/// baselines, the next version on a re-run, files readable by others under umask
/// 022), then the wrong paths one naturally gives to `serve` and `--model`.
#[test]
fn quickstart_then_the_natural_wrong_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    fake_ml100k(home);
    let out = home.join("models");
    let o = out.to_str().unwrap();

    let r = shortlist(&["quickstart", "--out", o, "--user", "99999"], home);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&r.stderr).lines().last().unwrap(),
        "error: --user 99999: MovieLens 100k has no user \"99999\" (its user ids are 1 to 60); pick one of them, e.g. --user 42"
    );
    assert!(!out.exists(), "nothing trained or written");

    let first = shortlist_umask_022(&["quickstart", "--out", o, "--user", "7"], home);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let row = |name: &str| -> Vec<f64> {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in {stdout}"));
        line.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    // Every metric has its baseline beside it.
    assert!(lines.iter().any(
        |l| l.starts_with("retrieval (test: 60 users; higher is better)")
            && l.ends_with("model  popularity")
    ));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ranking (test: ")
            && l.ends_with("model  user+item biases  global mean")));
    for metric in [
        "recall@10",
        "ndcg@10",
        "top_k_accuracy@10",
        "top_k_accuracy@100",
    ] {
        let v = row(metric);
        assert_eq!(v.len(), 2, "{metric}: model and popularity");
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "{metric} {v:?}");
    }
    for metric in ["RMSE", "MAE"] {
        let v = row(metric);
        assert_eq!(v.len(), 3, "{metric}: model and two baselines");
        assert!(v.iter().all(|x| *x > 0.0 && *x < 4.0), "{metric} {v:?}");
    }
    // Item quality and harsh users: the biases beat the mean, and so does the model.
    let rmse = row("RMSE");
    assert!(rmse[1] < rmse[2] && rmse[0] < rmse[2], "{stdout}");
    assert!(
        stdout.contains("\nReading: the retrieval model finds "),
        "{stdout}"
    );
    assert!(stdout.contains(
        "The ranking model is a 3-member ensemble + AutoRec blend; baselines fitted on the same training ratings"
    ));
    let v1 = out.join("movielens").join("ranking").join("1");
    assert!(v1.join("curves.png").exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&v1.join("manifest.json")), 0o644);
        assert_eq!(mode(&v1.join("curves.png")), 0o644);
        assert_eq!(mode(&v1), 0o755);
    }

    // A second run writes version 2 next to version 1, and says so.
    let second = shortlist(&["quickstart", "--out", o, "--user", "7"], home);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains(&format!(
        "{} already holds version 1: writing version 2",
        out.join("movielens").display()
    )));
    for model in ["retrieval", "ranking"] {
        for v in ["1", "2"] {
            let d = out.join("movielens").join(model).join(v);
            assert!(d.join("manifest.json").exists(), "{}", d.display());
        }
    }

    // --model given a model folder or a base path: the versions to pass instead.
    let retrieval = out.join("movielens").join("retrieval");
    let test_file = home.join("datasets").join("ml-100k").join("u.data");
    let r = eval_model(
        retrieval.to_str().unwrap(),
        test_file.to_str().unwrap(),
        &[],
        home,
    );
    assert_eq!(
        exit_2(&r),
        format!(
            "error: --model {} is a model folder that holds versions: 1, 2; pass a version folder, e.g. {}",
            retrieval.display(),
            retrieval.join("2").display()
        )
    );
    let r = shortlist(&["recommend", "--model", o, "--user", "7"], home);
    assert_eq!(r.status.code(), Some(2));
    let base = out.join("movielens");
    assert_eq!(
        String::from_utf8_lossy(&r.stderr).trim(),
        format!(
            "error: --model {o} holds models, not one model's files; pass a version folder: {} (ranking) or {} (retrieval)",
            base.join("ranking").join("2").display(),
            base.join("retrieval").join("2").display()
        )
    );

    // serve at quickstart's --out (the natural mistake): it says what it found and
    // which path was meant; at the right path it lists models, versions and kinds.
    let said = serve_start_up(&out, home, "did you mean");
    assert!(
        said.contains(&format!(
            "no models directly under {o}, but found ranking/ and retrieval/ under {} — did you mean --model-base-path {}?",
            base.display(),
            base.display()
        )),
        "{said}"
    );
    let said = serve_start_up(&base, home, "found model retrieval");
    assert!(
        said.contains("found model ranking (versions 1: ranking model, 2: ranking model)"),
        "{said}"
    );
}

/// Starts `serve` on a free port, returns its log once a line contains `until`
/// (or after 30 s), and stops it.
fn serve_start_up(base: &Path, home: &Path, until: &str) -> String {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args([
            "serve",
            "--model-base-path",
            base.to_str().unwrap(),
            "--port",
            "0",
        ])
        .env("SHORTLIST_HOME", home)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut log = String::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(until) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    log
}

/// Every way of naming a bad path exits 2 with a message naming it: missing,
/// empty, a directory, a FIFO (without hanging), a device.
#[cfg(unix)]
#[test]
fn bad_paths_exit_2_and_never_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let d = |p: &str| tmp.path().join(p).to_str().unwrap().to_owned();
    std::fs::write(
        tmp.path().join("t.tsv"),
        "user_id\titem_id\trating\ttimestamp\n1\t1\t4\t1\n2\t1\t3\t2\n",
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("adir")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(tmp.path().join("fifo"))
        .status()
        .unwrap()
        .success());
    // Schemas whose interactions path is a FIFO, a directory, has a NUL, is empty.
    for (name, path) in [
        ("fifo", "fifo"),
        ("dir", "adir"),
        ("nul", "a\\u0000b"),
        ("empty", ""),
    ] {
        std::fs::write(
            tmp.path().join(format!("{name}-schema.toml")),
            format!("[interactions]\npath = \"{path}\"\nuser = \"u\"\nitem = \"i\"\n"),
        )
        .unwrap();
    }
    let empty_schema = d("empty-schema.toml");
    let (t, adir, fifo) = (d("t.tsv"), d("adir"), d("fifo"));
    let (missing, out_s, out_m) = (d("missing.tsv"), d("s"), d("m"));
    let (fifo_schema, dir_schema, nul_schema) = (
        d("fifo-schema.toml"),
        d("dir-schema.toml"),
        d("nul-schema.toml"),
    );
    let (none_toml, nomodel, nobase) = (d("none.toml"), d("nomodel"), d("nobase"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["data", "info", ""], "unknown dataset \"\""),
        (vec!["data", "info", &missing], "missing.tsv"),
        (
            vec!["data", "info", &fifo_schema],
            "fifo: is a FIFO (named pipe), expected a regular file",
        ),
        (
            vec!["data", "info", &dir_schema],
            "adir: is a directory, expected a regular file",
        ),
        (vec!["data", "info", &nul_schema], "NUL"),
        (
            vec!["data", "split", &missing, "--out", &out_s],
            "missing.tsv",
        ),
        (
            vec![
                "train", "ranking", "--train", "", "--test", &t, "--out", &out_m,
            ],
            "a value is required for '--train",
        ),
        (
            vec!["data", "info", &empty_schema],
            "is a directory, expected a regular file",
        ),
        (
            vec![
                "train", "ranking", "--train", &adir, "--test", &t, "--out", &out_m,
            ],
            "adir: is a directory",
        ),
        (
            vec![
                "train", "ranking", "--train", &fifo, "--test", &t, "--out", &out_m,
            ],
            "fifo: is a FIFO",
        ),
        (
            vec![
                "train",
                "ranking",
                "--train",
                &t,
                "--test",
                &t,
                "--config",
                "/dev/null",
                "--out",
                &out_m,
            ],
            "/dev/null: is a character device",
        ),
        (
            vec![
                "train", "ranking", "--train", &t, "--test", &t, "--config", &none_toml, "--out",
                &out_m,
            ],
            "none.toml",
        ),
        (vec!["eval", "--model", &nomodel, "--test", &t], "nomodel"),
        (
            vec!["eval", "--model", &adir, "--test", &t],
            "manifest.json",
        ),
        (
            vec!["predict", "--model", &nomodel, "--user", "1", "--item", "1"],
            "nomodel",
        ),
        (
            vec!["recommend", "--model", "", "--user", "1"],
            "a value is required for '--model",
        ),
        (vec!["index", "tune", "--model", &nomodel], "nomodel"),
        (vec!["serve", "--model-base-path", &nobase], "nobase"),
    ];
    let mut failures = Vec::new();
    for (args, needle) in cases {
        let out = shortlist(&args, home);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !err.contains(needle) || err.contains("panicked") {
            failures.push(format!(
                "{args:?}: exit {:?}, {err:?} (expected {needle:?})",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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

/// Writes `rows` of `d` as a split file.
fn write_split(path: &Path, d: &shortlist_core::Dataset, rows: &[usize]) {
    shortlist_data::loaders::tsv::write_rows(path, d, rows).unwrap();
}

#[test]
fn click_and_multitask_objectives_train_report_and_evaluate() {
    use shortlist_data::synth_clicks::{generate_clicks, ClickSynthConfig};
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    // An impression log: every row an item shown, the rating column 1 (clicked) or 0;
    // 800 users × 100 impressions give enough clicks per user to learn the planted
    // user·item term, which per-item click rates cannot see.
    let (d, _) = generate_clicks(&ClickSynthConfig {
        users: 800,
        impressions_per_user: 100,
        ..Default::default()
    })
    .unwrap();
    let rows: Vec<usize> = (0..d.interactions.len()).collect();
    let (train_rows, test_rows): (Vec<usize>, Vec<usize>) =
        rows.into_iter().partition(|&r| r % 5 != 0);
    let (train, test) = (home.join("train.tsv"), home.join("test.tsv"));
    write_split(&train, &d, &train_rows);
    write_split(&test, &d, &test_rows);
    let cfg = home.join("click.toml");
    std::fs::write(&cfg, "objective = \"click\"\nembedding_dim = 8\nhidden = [16]\nbiases = true\ndot = true\ninit_bias_to_mean = true\noptimizer = \"adam\"\nembedding_optimizer = \"adam\"\nlearning_rate = 0.01\nbatch_size = 256\nepochs = 8\n").unwrap();
    let model = home.join("click");
    // `train ranking` on the split with `cfg` into `out` (its report in JSON or text).
    let run = |cfg: &Path, out: &Path, json: bool| {
        let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
        let args = ["--config", c, "--out", o, "--json"];
        let (train, test) = (train.to_str().unwrap(), test.to_str().unwrap());
        train_model(
            "ranking",
            train,
            test,
            &args[..if json { 5 } else { 4 }],
            home,
        )
    };
    let r = json(&run(&cfg, &model, true));
    assert_eq!(r["objective"], "click");
    let c = &r["click"];
    let auc = c["model"]["auc"].as_f64().unwrap();
    assert_eq!(c["baselines"]["global_rate"]["auc"], 0.5);
    assert!(
        auc > c["baselines"]["item_rate"]["auc"].as_f64().unwrap() + 0.05,
        "{c}"
    );
    assert_eq!(c["model"]["count"], test_rows.len());
    let csv = std::fs::read_to_string(model.join("curves.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",test_log_loss,test_auc"),
        "{csv}"
    );
    // eval --model on the same test file reproduces the report, JSON and text.
    let e = json(&eval_model(
        model.to_str().unwrap(),
        test.to_str().unwrap(),
        &["--json"],
        home,
    ));
    assert_eq!(e["objective"], "click");
    for k in ["auc", "group_auc", "log_loss", "count", "positives"] {
        assert_eq!(e[k], c["model"][k], "{k}");
    }
    let text = eval_model(model.to_str().unwrap(), test.to_str().unwrap(), &[], home);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("group AUC") && text.contains("log-loss"),
        "{text}"
    );
    // A test file whose ratings are not 0/1 is refused by name.
    let bad = home.join("bad.tsv");
    std::fs::write(&bad, "user_id\titem_id\trating\ttimestamp\nu1\ti3\t4\t1\n").unwrap();
    let out = eval_model(model.to_str().unwrap(), bad.to_str().unwrap(), &[], home);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.tsv")
            && err.contains("needs 0/1 labels")
            && err.contains("(user \"u1\", item \"i3\") has 4"),
        "{err}"
    );

    // multitask on the same rows (every impression an interaction): the text report
    // shows the shared embeddings' retrieval metrics beside popularity.
    let cfg = home.join("multitask.toml");
    std::fs::write(&cfg, "objective = \"multitask\"\nembedding_dim = 8\nhidden = [16]\ndot = true\noptimizer = \"adam\"\nembedding_optimizer = \"adam\"\nlearning_rate = 0.01\nbatch_size = 256\nepochs = 2\n[multitask]\nretrieval_weight = 0.5\n").unwrap();
    let r = json(&run(&cfg, &home.join("mt"), true));
    assert_eq!(r["objective"], "multitask");
    let s = &r["shared_retrieval"];
    assert!(
        s["recall@20"].as_f64().is_some() && s["popularity"]["recall@20"].as_f64().is_some(),
        "{s}"
    );
    let out = run(&cfg, &home.join("mt2"), false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ranking model (multitask objective)")
            && text.contains("shared embeddings as a retrieval model"),
        "{text}"
    );
    // A click configuration with a rating-only option is refused before training.
    std::fs::write(&cfg, "objective = \"click\"\nclip_predictions = true\n").unwrap();
    let out = run(&cfg, &home.join("x"), false);
    assert_eq!(
        exit_2(&out),
        "error: invalid clip_predictions: objective = \"click\" predicts probabilities in (0, 1): clipping to the label range does not apply"
    );
}

/// The shipped objective configurations train from the command line on a generated
/// log (two epochs each): `ranking-click.toml` turns ratings ≥ 4 into clicks and
/// reports click metrics, `ranking-multitask.toml` carries a relevance head that uses
/// the shared score, and `ranking-dcn.toml`'s cross layers survive the sealed artifact.
#[test]
fn shipped_objective_configs_train_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let p = |name: &str| home.join(name).to_str().unwrap().to_owned();
    for args in [
        vec![
            "data",
            "synth",
            "--users",
            "300",
            "--items",
            "150",
            "--interactions",
            "12000",
            "--out",
            &p("synth"),
        ],
        vec!["data", "split", &p("synth"), "--out", &p("split")],
    ] {
        let out = shortlist(&[&args[..], &["-q"]].concat(), home);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let train = |name: &str| -> serde_json::Value {
        let cfg = configs.join(format!("ranking-{name}.toml"));
        json(&shortlist(
            &[
                "train",
                "ranking",
                "--data",
                &p("synth"),
                "--train",
                &p("split/train.tsv"),
                "--test",
                &p("split/test.tsv"),
                "--config",
                cfg.to_str().unwrap(),
                "--epochs",
                "2",
                "--out",
                &p(name),
                "--json",
                "-q",
            ],
            home,
        ))
    };
    let manifest = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(home.join(name).join("manifest.json")).unwrap())
            .unwrap()
    };

    let r = train("click");
    assert_eq!(r["objective"], "click");
    let c = &r["click"];
    let auc = c["model"]["auc"].as_f64().unwrap();
    // Measured: 0.764 against the item click rate's 0.695.
    assert!(
        auc > c["baselines"]["item_rate"]["auc"].as_f64().unwrap(),
        "{c}"
    );
    assert!(
        c["model"]["log_loss"].as_f64().unwrap()
            < c["baselines"]["global_rate"]["log_loss"].as_f64().unwrap(),
        "{c}"
    );
    assert_eq!(manifest("click")["config"]["objective"], "click");

    let r = train("multitask");
    assert_eq!(r["objective"], "multitask");
    assert!(
        r["shared_retrieval"]["ndcg@10"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    let m = manifest("multitask");
    let head = &m["relevance"];
    assert_eq!(
        head["features"].as_array().unwrap().last().unwrap(),
        "multitask"
    );
    let w = head["weights"].as_array().unwrap();
    assert!(w.last().unwrap().as_f64().unwrap() != 0.0, "{head}");

    let r = train("dcn");
    assert_eq!(r["objective"], "rating");
    assert_eq!(manifest("dcn")["config"]["cross_layers"], 2);
    // The cross layers are read back from the sealed artifact: eval --model scores the
    // test file exactly as training did.
    let e = json(&eval_model(
        &p("dcn"),
        &p("split/test.tsv"),
        &["--json", "-q"],
        home,
    ));
    assert_eq!(e["rmse"], r["rmse"]);
    assert!(
        r["rmse"].as_f64().unwrap() < r["baselines"]["global_mean"]["rmse"].as_f64().unwrap(),
        "{r}"
    );
}
