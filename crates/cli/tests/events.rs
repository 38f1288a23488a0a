//! `shortlist events import|export` on the real binary: round trips through the
//! server's log format, the split file for training, and named errors.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shortlist(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shortlist"))
        .args(args)
        .env("SHORTLIST_HOME", home)
        .env_remove("RUST_LOG")
        .output()
        .expect("run shortlist")
}

/// `shortlist events import --model-base-path BASE --file FILE`, then `extra`.
fn import_events(base: &str, file: &str, extra: &[&str], home: &Path) -> Output {
    let args = [
        "events",
        "import",
        "--model-base-path",
        base,
        "--file",
        file,
    ];
    shortlist(&[&args[..], extra].concat(), home)
}

/// `shortlist events export --model-base-path BASE --out OUT`, then `extra`.
fn export_events(base: &str, out: &str, extra: &[&str], home: &Path) -> Output {
    let args = ["events", "export", "--model-base-path", base, "--out", out];
    shortlist(&[&args[..], extra].concat(), home)
}

/// A temporary directory holding `home` (`SHORTLIST_HOME`) and the base path
/// `models`, created empty.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (home, base) = (dir.path().join("home"), dir.path().join("models"));
    std::fs::create_dir_all(&base).unwrap();
    (dir, home, base)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn import_then_export_round_trips_and_feeds_training() {
    let (dir, home, base) = setup();
    let base_s = base.to_str().unwrap();
    let events = dir.path().join("events.tsv");
    std::fs::write(
        &events,
        "user_id\titem_id\tevent\ttimestamp\nu1\ti1\tpurchase\t100\nu2\ti1\tview\t200\r\n\nu1\ti7\tclick\t300\n",
    )
    .unwrap();
    let out = ok(&import_events(base_s, events.to_str().unwrap(), &[], &home));
    assert!(out.starts_with("imported 3 events from "), "{out}");
    // A split file (no event column) with --event.
    let split_in = dir.path().join("more.tsv");
    std::fs::write(
        &split_in,
        "user_id\titem_id\trating\ttimestamp\nu3\ti2\t4\t400\n",
    )
    .unwrap();
    ok(&import_events(
        base_s,
        split_in.to_str().unwrap(),
        &["--event", "like"],
        &home,
    ));

    let back = dir.path().join("back.tsv");
    ok(&export_events(
        base_s,
        back.to_str().unwrap(),
        &["--format", "events"],
        &home,
    ));
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "user_id\titem_id\tevent\ttimestamp\nu1\ti1\tpurchase\t100\nu2\ti1\tview\t200\nu1\ti7\tclick\t300\nu3\ti2\tlike\t400\n"
    );
    let train = dir.path().join("train.tsv");
    let out = ok(&export_events(base_s, train.to_str().unwrap(), &[], &home));
    assert!(out.starts_with("exported 4 events from "), "{out}");
    assert_eq!(
        std::fs::read_to_string(&train).unwrap(),
        "user_id\titem_id\trating\ttimestamp\nu1\ti1\t5\t100\nu2\ti1\t1\t200\nu1\ti7\t2\t300\nu3\ti2\t3\t400\n"
    );
    // The split file is what `data info` (and so `train`) reads.
    let info = ok(&shortlist(
        &["data", "info", train.to_str().unwrap()],
        &home,
    ));
    assert!(info.contains("interactions  4\n"), "{info}");
    assert!(info.contains("rating mean   2.75000"), "{info}");

    // A torn last record (a crash mid-write) is left out of the export and cut off
    // by the next writer.
    let log = base.join(".events").join("events.log");
    let len = std::fs::metadata(&log).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, &[40, 0, 0, 0, 1, 2]).unwrap();
    drop(f);
    let out = export_events(base_s, train.to_str().unwrap(), &[], &home);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a torn last record (6 bytes) was left out")
    );
    ok(&out);
    ok(&import_events(
        base_s,
        split_in.to_str().unwrap(),
        &["--event", "view"],
        &home,
    ));
    let mut n = 0;
    shortlist_serve::events::log::read(&log, |_| n += 1).unwrap();
    assert_eq!(n, 5);
    assert!(std::fs::metadata(&log).unwrap().len() > len);
}

#[test]
fn bad_event_files_are_named_and_exit_2() {
    let (dir, home, base) = setup();
    let base_s = base.to_str().unwrap();
    let f = dir.path().join("e.tsv");
    let import = |text: &str, extra: &[&str]| {
        std::fs::write(&f, text).unwrap();
        fails(&import_events(base_s, f.to_str().unwrap(), extra, &home), 2)
    };
    let name = f.display().to_string();
    assert!(import("user_id\titem_id\tevent\nu1\ti1\tstare\n", &[])
        .contains(&format!("{name}: line 2: event: expected one of \"view\", \"click\", \"like\", \"purchase\", got \"stare\"")));
    assert!(import(
        "user_id\titem_id\tevent\ttimestamp\nu1\ti1\tview\t-4\n",
        &[]
    )
    .contains(&format!(
        "{name}: line 2: timestamp: expected Unix seconds between 0 and "
    )));
    assert!(
        import("user_id\titem_id\tevent\nu1\ti1\n", &[]).contains(&format!(
            "{name}: line 2: expected 3 tab-separated fields, found 2"
        ))
    );
    assert!(import("user\titem\n", &[]).contains(&format!(
        "{name}: line 1: expected a header with user_id and item_id columns, got [\"user\", \"item\"]"
    )));
    assert!(import("user_id\titem_id\n", &[]).contains(&format!(
        "{name}: line 1: no event column: add one or give --event NAME"
    )));
    assert!(import("user_id\titem_id\n", &["--event", "buy"]).contains(
        "--event: expected one of \"view\", \"click\", \"like\", \"purchase\", got \"buy\""
    ));
    assert!(import(
        "user_id\titem_id\n",
        &["--event", "view", "--event-strengths", "view=-1"]
    )
    .contains(
        "--event-strengths: event \"view\": expected a positive strength up to 1e6, got \"-1\""
    ));
    // Nothing was written by the refused imports.
    assert!(!base.join(".events").join("events.log").exists());
    let err = fails(
        &export_events(base_s, "x.tsv", &["--format", "csv"], &home),
        2,
    );
    assert!(
        err.contains("--format: expected \"split\" or \"events\", got \"csv\""),
        "{err}"
    );
}
