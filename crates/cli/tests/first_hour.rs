//! The first hour of a new user on the real binary: `quickstart` on a cached
//! MovieLens stand-in, `serve` and `--model` given the natural wrong paths, and every
//! way of naming a bad path. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod offline;

use std::path::Path;
use std::process::{Command, Output};

use offline::{eval_model, exit_2, run_offline, shortlist};

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
