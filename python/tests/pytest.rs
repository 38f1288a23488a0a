//! Runs the Python package's pytest suite (`python/tests/*.py`) from
//! `cargo test --release --workspace`, against the extension this very build
//! compiled (`lib_shortlist.so`, staged with `python/shortlist/*.py` as a package)
//! and the `shortlist` binary of the same build (the CLI-agreement tests).
//!
//! Needs `python3` (≥ 3.9; `SHORTLIST_PYTHON` picks another) with numpy, pandas
//! and pytest; without them it prints `skipped: …` and passes, so the Rust suite
//! runs on machines without Python. Set `SHORTLIST_REQUIRE_PYTHON=1` to make a
//! missing Python an error instead (CI).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> String {
    std::env::var("SHORTLIST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// `Err(reason)` when the interpreter cannot run the suite.
fn check_python(py: &str) -> Result<String, String> {
    let probe = "import sys; assert sys.version_info >= (3, 9), sys.version; \
                 import numpy, pandas, pytest; print(sys.version.split()[0])";
    match Command::new(py).args(["-c", probe]).output() {
        Err(e) => Err(format!("no {py} ({e})")),
        Ok(o) if !o.status.success() => Err(format!(
            "{py} lacks numpy, pandas or pytest, or is older than 3.9 (pip install numpy pandas pytest): {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        )),
        Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
    }
}

/// The directory of this build's artifacts (`target/release`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// The newest `lib_shortlist*.so` of this build.
fn extension(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = [dir.to_path_buf(), dir.join("deps")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("lib_shortlist") && n.ends_with(".so"))
        })
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop()
}

#[test]
fn pytest_suite() {
    let py = python();
    let version = match check_python(&py) {
        Ok(v) => v,
        Err(why) => {
            assert!(
                std::env::var_os("SHORTLIST_REQUIRE_PYTHON").is_none(),
                "SHORTLIST_REQUIRE_PYTHON is set but {why}"
            );
            // Straight to stderr: the test harness captures `println!`.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the Python package's tests (python/tests): {why}"
            );
            return;
        }
    };
    let dir = build_dir();
    let Some(so) = extension(&dir) else {
        panic!(
            "no lib_shortlist*.so under {} (cargo builds it with the python/ package)",
            dir.display()
        );
    };
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stage = tempfile::tempdir().expect("temporary directory");
    let pkg = stage.path().join("shortlist");
    std::fs::create_dir(&pkg).expect("package directory");
    for entry in std::fs::read_dir(here.join("shortlist")).expect("python/shortlist") {
        let p = entry.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".py") || name.ends_with(".pyi") || name == "py.typed" {
            std::fs::copy(&p, pkg.join(name)).expect("copy a module");
        }
    }
    std::fs::copy(&so, pkg.join("_shortlist.abi3.so")).expect("copy the extension");
    let bin = dir.join("shortlist");
    let start = std::time::Instant::now();
    let out = Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .arg(here.join("tests"))
        .env("PYTHONPATH", stage.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SHORTLIST_BIN", &bin)
        .env("SHORTLIST_EXPECT_PACKAGE", &pkg)
        .current_dir(stage.path())
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = writeln!(
        std::io::stderr(),
        "pytest (Python {version}, {}, binary {}) in {:.1} s:\n{text}",
        so.display(),
        if bin.exists() { "present" } else { "absent" },
        start.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "the Python tests failed:\n{text}");
    assert!(
        !text.contains("skipped"),
        "tests were skipped (is target/release/shortlist built?):\n{text}"
    );
}
