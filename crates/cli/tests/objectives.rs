//! The ranking objectives from the command line: click and multitask models train,
//! report and evaluate, and the shipped objective configurations train. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod offline;

use std::path::Path;

use offline::{eval_model, exit_2, json, shortlist, train_model};

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
    let k = head["features"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f == "multitask")
        .unwrap();
    let w = head["weights"].as_array().unwrap();
    assert!(w[k].as_f64().unwrap() != 0.0, "{head}");

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
