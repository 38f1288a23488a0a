//! Fetching MovieLens into the cache (`$SHORTLIST_HOME`, else `$XDG_CACHE_HOME/shortlist`,
//! else `~/.cache/shortlist`), under `datasets/<name>/`.
//!
//! Sources, tried in order:
//! 1. GroupLens' official zip (checksummed with the SHA-256 published alongside
//!    TensorFlow Datasets), when built with the `download` feature.
//! 2. For `ml-100k` only: RecBole 1.2.1's copy, shipped inside its Python wheel as RecBole
//!    atomic files. The wheel is obtained with the machine's own package client
//!    (`python3 -m pip download --no-deps recbole==1.2.1`), so machines that reach only
//!    package registries can still get the data. Each extracted file is checksummed.
//!
//! A dataset directory is built under a temporary name and renamed into place, so an
//! interrupted fetch never leaves half a dataset behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use shortlist_core::atomic::AtomicDir;
use shortlist_core::progress::Progress;

use crate::error::{Error, Result};

/// A dataset GroupLens publishes as a zip.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// Name used on the command line.
    pub name: &'static str,
    /// Zip file name under GroupLens' dataset URL.
    pub zip: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the zip.
    pub sha256: &'static str,
}

/// GroupLens' dataset location.
pub const GROUPLENS_BASE: &str = "https://files.grouplens.org/datasets/movielens";

/// Datasets `shortlist data fetch` knows.
pub const KNOWN: [Known; 4] = [
    Known {
        name: "ml-100k",
        zip: "ml-100k.zip",
        size: 4_924_029,
        sha256: "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    },
    Known {
        name: "ml-1m",
        zip: "ml-1m.zip",
        size: 5_917_549,
        sha256: "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    },
    Known {
        name: "ml-latest-small",
        zip: "ml-latest-small.zip",
        size: 978_202,
        sha256: "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    },
    Known {
        name: "ml-25m",
        zip: "ml-25m.zip",
        size: 261_978_986,
        sha256: "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
    },
];

/// The known dataset called `name`.
pub fn known(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name == name)
}

/// Names of the known datasets, for messages.
pub fn known_names() -> String {
    KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// The error for a name that is neither a known dataset nor a path, with the closest
/// known name when one is close: a different case, one edit away, or two edits away
/// from a long name (`ml-7` is not taken for `ml-1m`).
pub fn unknown_dataset(name: &str) -> Error {
    let lower = name.to_lowercase();
    let suggestion = KNOWN
        .iter()
        .map(|k| (strsim::levenshtein(&lower, k.name), k.name))
        .filter(|&(d, n)| d <= 1 || (d == 2 && n.len() >= 8))
        .min()
        .map(|(_, n)| n.to_owned());
    Error::UnknownDataset {
        name: name.to_owned(),
        known: known_names(),
        suggestion,
    }
}

/// A Python wheel holding a dataset, fetched with `python -m pip download`.
#[derive(Debug, Clone)]
pub struct WheelSource {
    /// Pip requirement, e.g. `recbole==1.2.1`.
    pub requirement: String,
    /// (path inside the wheel, file name to write, SHA-256).
    pub members: Vec<(String, String, String)>,
}

/// RecBole 1.2.1's copy of ML-100k.
pub fn recbole_ml100k() -> WheelSource {
    let member = |ext: &str, sha: &str| {
        (
            format!("recbole/dataset_example/ml-100k/ml-100k.{ext}"),
            format!("ml-100k.{ext}"),
            sha.to_owned(),
        )
    };
    WheelSource {
        requirement: "recbole==1.2.1".into(),
        members: vec![
            member(
                "inter",
                "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            ),
            member(
                "item",
                "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
            ),
            member(
                "user",
                "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
            ),
        ],
    }
}

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Cache root.
    pub home: PathBuf,
    /// GroupLens base URL (overridable for mirrors and tests).
    pub base_url: String,
    /// Try the GroupLens download (off: go straight to fallbacks).
    pub download: bool,
    /// Python interpreter used for the pip fallback.
    pub python: String,
}

impl FetchOptions {
    /// Defaults from the environment: `SHORTLIST_HOME`, `SHORTLIST_PYTHON` (default `python3`),
    /// `SHORTLIST_GROUPLENS_URL`.
    pub fn from_env() -> Self {
        FetchOptions {
            home: cache_home(),
            base_url: std::env::var("SHORTLIST_GROUPLENS_URL")
                .unwrap_or_else(|_| GROUPLENS_BASE.to_owned()),
            download: cfg!(feature = "download"),
            python: std::env::var("SHORTLIST_PYTHON").unwrap_or_else(|_| "python3".to_owned()),
        }
    }
}

/// The cache root: `$SHORTLIST_HOME`, else `$XDG_CACHE_HOME/shortlist`, else `~/.cache/shortlist`.
pub fn cache_home() -> PathBuf {
    if let Some(h) = std::env::var_os("SHORTLIST_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("shortlist");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("shortlist")
}

/// Directory of dataset `name` under `home`.
pub fn dataset_dir(home: &Path, name: &str) -> PathBuf {
    home.join("datasets").join(name)
}

const MARKER: &str = ".shortlist-source";

/// Result of a fetch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    /// Dataset name.
    pub name: String,
    /// Where the files are.
    pub dir: PathBuf,
    /// Which source provided them.
    pub source: String,
    /// True when they were already in the cache.
    pub cached: bool,
}

/// Makes sure dataset `name` is in the cache, fetching it if needed.
pub fn fetch(name: &str, opts: &FetchOptions, progress: &dyn Progress) -> Result<Fetched> {
    let known = known(name).ok_or_else(|| unknown_dataset(name))?;
    let dir = dataset_dir(&opts.home, name);
    if let Ok(source) = fs_err::read_to_string(dir.join(MARKER)) {
        return Ok(Fetched {
            name: name.to_owned(),
            dir,
            source: source.trim().to_owned(),
            cached: true,
        });
    }
    let mut tried = Vec::new();
    if opts.download {
        match download_zip(known, opts, &dir, progress) {
            Ok(source) => return done(name, dir, source),
            Err(e) => {
                tracing::info!("GroupLens is not reachable ({e}); trying the fallback sources");
                tried.push(format!("GroupLens ({}/{}): {e}", opts.base_url, known.zip));
            }
        }
    } else {
        tried.push("GroupLens: download support not compiled in (feature `download`)".into());
    }
    if name == "ml-100k" {
        let wheel = recbole_ml100k();
        match fetch_wheel(&wheel, &opts.python, &dir, progress) {
            Ok(source) => return done(name, dir, source),
            Err(e) => tried.push(format!("{} wheel via pip: {e}", wheel.requirement)),
        }
    }
    Err(Error::Fetch {
        dataset: name.to_owned(),
        message: format!("every source failed:\n  - {}", tried.join("\n  - ")),
    })
}

fn done(name: &str, dir: PathBuf, source: String) -> Result<Fetched> {
    tracing::info!("{name}: fetched from {source}");
    Ok(Fetched {
        name: name.to_owned(),
        dir,
        source,
        cached: false,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(feature = "download")]
fn download_zip(
    known: &Known,
    opts: &FetchOptions,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<String> {
    let url = format!("{}/{}", opts.base_url.trim_end_matches('/'), known.zip);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(10)))
        .timeout_global(Some(std::time::Duration::from_secs(3600)))
        .build()
        .into();
    let fail = |m: String| Error::Fetch {
        dataset: known.name.to_owned(),
        message: m,
    };
    use std::io::Write as _;
    let mut response = agent.get(&url).call().map_err(|e| fail(e.to_string()))?;
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(known.size + 1)
        .reader();
    let mut tmp = tempfile::NamedTempFile::new_in(ensure_dir(&opts.home)?)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    progress.start(&format!("downloading {}", known.zip), Some(known.size));
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| fail(format!("{url}: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])?;
        progress.advance(n as u64);
    }
    progress.finish();
    let actual = hex(&hasher.finalize());
    if actual != known.sha256 {
        return Err(Error::Checksum {
            path: url.into(),
            expected: known.sha256.to_owned(),
            actual,
        });
    }
    let top = known.zip.trim_end_matches(".zip");
    unzip_dataset(tmp.path(), top, dir, &format!("GroupLens {url}"))?;
    Ok(format!("GroupLens ({url})"))
}

#[cfg(not(feature = "download"))]
fn download_zip(_: &Known, _: &FetchOptions, _: &Path, _: &dyn Progress) -> Result<String> {
    Err(Error::invalid("download", "not compiled in"))
}

#[cfg(feature = "download")]
fn ensure_dir(p: &Path) -> Result<&Path> {
    fs_err::create_dir_all(p)?;
    Ok(p)
}

/// Extracts the files under `top/` of a GroupLens zip into `dir` (atomically).
#[cfg_attr(not(feature = "download"), allow(dead_code))]
fn unzip_dataset(zip_path: &Path, top: &str, dir: &Path, source: &str) -> Result<()> {
    let file = fs_err::File::open(zip_path)?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(zip_path, format!("not a zip archive: {e}")))?;
    let building = AtomicDir::new(dir)?;
    for k in 0..archive.len() {
        let mut entry = archive
            .by_index(k)
            .map_err(|e| Error::format(zip_path, e.to_string()))?;
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix(top) else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let out = building.path().join(rel);
        if let Some(parent) = out.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let mut f = fs_err::File::create(&out)?;
        std::io::copy(&mut entry, &mut f)?;
    }
    fs_err::write(building.path().join(MARKER), source)?;
    building.commit()?;
    Ok(())
}

/// Fetches `wheel` with `python -m pip download --no-deps`, extracts and checks its
/// members into `dir` (atomically). Returns a description of the source.
pub fn fetch_wheel(
    wheel: &WheelSource,
    python: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<String> {
    let fail = |m: String| Error::Fetch {
        dataset: dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        message: m,
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let download = tempfile::Builder::new()
        .prefix(".wheel-")
        .tempdir_in(parent)?;
    progress.start(&format!("pip download {}", wheel.requirement), None);
    let run = || {
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(download.path())
            .arg(&wheel.requirement)
            .output()
    };
    // An interpreter written a moment ago can be "busy" (ETXTBSY) while a process
    // forked meanwhile still holds its write descriptor until it execs: retry briefly.
    let mut output = run();
    for _ in 0..10 {
        match &output {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                output = run();
            }
            _ => break,
        }
    }
    let output = output.map_err(|e| {
        fail(format!(
            "cannot run {python:?}: {e} (set SHORTLIST_PYTHON to a Python with pip)"
        ))
    })?;
    progress.finish();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(fail(format!(
            "`{python} -m pip download {}` failed: {last}",
            wheel.requirement
        )));
    }
    let whl = fs_err::read_dir(download.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| fail(format!("pip downloaded no wheel for {}", wheel.requirement)))?;
    let mut archive = zip::ZipArchive::new(fs_err::File::open(&whl)?)
        .map_err(|e| Error::format(&whl, format!("not a wheel (zip) archive: {e}")))?;
    let building = AtomicDir::new(dir)?;
    for (inner, out_name, sha) in &wheel.members {
        let mut entry = archive
            .by_name(inner)
            .map_err(|_| Error::format(&whl, format!("the wheel has no {inner}")))?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        let actual = sha256_hex(&bytes);
        if &actual != sha {
            return Err(Error::Checksum {
                path: whl.join(inner),
                expected: sha.clone(),
                actual,
            });
        }
        fs_err::write(building.path().join(out_name), &bytes)?;
    }
    let name = whl
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = format!("{} (Python wheel {name}, via pip)", wheel.requirement);
    fs_err::write(building.path().join(MARKER), &source)?;
    building.commit()?;
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shortlist_core::progress::NoProgress;
    use std::io::Write;

    /// A fake wheel and a fake `python` that "downloads" it by copying.
    fn fake_pip(root: &Path, members: &[(&str, &[u8])]) -> (String, WheelSource) {
        let whl = root.join("fake-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&whl).unwrap());
        let mut sources = Vec::new();
        for (name, bytes) in members {
            zip.start_file(
                format!("pkg/data/{name}"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(bytes).unwrap();
            sources.push((
                format!("pkg/data/{name}"),
                name.to_string(),
                sha256_hex(bytes),
            ));
        }
        zip.finish().unwrap();
        let script = root.join("python");
        // Arguments: -m pip download --no-deps --disable-pip-version-check -d DIR REQ
        std::fs::write(
            &script,
            format!("#!/bin/sh\ncp '{}' \"$7\"\n", whl.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (
            script.display().to_string(),
            WheelSource {
                requirement: "fake==1.0".into(),
                members: sources,
            },
        )
    }

    #[test]
    fn wheel_fallback_extracts_and_verifies() {
        let root = tempfile::tempdir().unwrap();
        let (python, wheel) = fake_pip(
            root.path(),
            &[("a.inter", b"user_id:token\n"), ("a.item", b"x")],
        );
        let dir = root.path().join("datasets").join("a");
        let source = fetch_wheel(&wheel, &python, &dir, &NoProgress).unwrap();
        assert_eq!(
            source,
            "fake==1.0 (Python wheel fake-1.0-py3-none-any.whl, via pip)"
        );
        assert_eq!(
            std::fs::read(dir.join("a.inter")).unwrap(),
            b"user_id:token\n"
        );
        assert_eq!(std::fs::read_to_string(dir.join(MARKER)).unwrap(), source);
    }

    #[test]
    fn wheel_fallback_rejects_bad_checksum_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let (python, mut wheel) = fake_pip(root.path(), &[("a.inter", b"data")]);
        wheel.members[0].2 = "00".repeat(32);
        let dir = root.path().join("datasets").join("a");
        let err = fetch_wheel(&wheel, &python, &dir, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256 mismatch: expected 0000"), "{err}");
        assert!(!dir.exists());
        assert_eq!(
            std::fs::read_dir(root.path().join("datasets"))
                .unwrap()
                .count(),
            0,
            "no partial directory left"
        );
    }

    #[test]
    fn missing_python_is_explained() {
        let root = tempfile::tempdir().unwrap();
        let wheel = recbole_ml100k();
        let err = fetch_wheel(
            &wheel,
            "/nonexistent/python3",
            &root.path().join("d"),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot run \"/nonexistent/python3\""), "{err}");
        assert!(err.contains("SHORTLIST_PYTHON"), "{err}");
    }

    #[test]
    fn cached_dataset_is_not_refetched() {
        let root = tempfile::tempdir().unwrap();
        let dir = dataset_dir(root.path(), "ml-100k");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MARKER), "somewhere").unwrap();
        let opts = FetchOptions {
            home: root.path().to_path_buf(),
            base_url: "http://127.0.0.1:1".into(),
            download: true,
            python: "/nonexistent".into(),
        };
        let f = fetch("ml-100k", &opts, &NoProgress).unwrap();
        assert!(f.cached);
        assert_eq!(f.source, "somewhere");
        let err = fetch("ml-7", &opts, &NoProgress).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown dataset \"ml-7\": expected one of ml-100k, ml-1m, ml-latest-small, ml-25m or the path of a file or directory"
        );
        for (typed, meant) in [
            ("ml-100K", "ml-100k"),
            ("ml100k", "ml-100k"),
            ("ML-1M", "ml-1m"),
            ("ml-latest-smal", "ml-latest-small"),
        ] {
            assert_eq!(
                fetch(typed, &opts, &NoProgress).unwrap_err().to_string(),
                format!("unknown dataset {typed:?} (did you mean {meant:?}?): expected one of ml-100k, ml-1m, ml-latest-small, ml-25m or the path of a file or directory")
            );
        }
    }

    /// Serves `body` once over HTTP on a loopback port; returns the base URL.
    #[cfg(feature = "download")]
    fn serve_once(body: Vec<u8>) -> String {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        format!("http://{addr}")
    }

    #[cfg(feature = "download")]
    #[test]
    fn download_is_checksummed() {
        let root = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            home: root.path().to_path_buf(),
            base_url: serve_once(b"not the real zip".to_vec()),
            download: true,
            python: "/nonexistent".into(),
        };
        let err = fetch("ml-1m", &opts, &NoProgress).unwrap_err().to_string();
        assert!(
            err.starts_with("fetching ml-1m: every source failed:"),
            "{err}"
        );
        assert!(
            err.contains("/ml-1m.zip: SHA-256 mismatch: expected a6898adb"),
            "{err}"
        );
        assert!(!dataset_dir(root.path(), "ml-1m").exists());
    }

    #[test]
    fn every_failed_source_is_listed() {
        let root = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            home: root.path().to_path_buf(),
            base_url: "http://127.0.0.1:1".into(),
            download: cfg!(feature = "download"),
            python: "/nonexistent/python3".into(),
        };
        let err = fetch("ml-100k", &opts, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("GroupLens"), "{err}");
        assert!(err.contains("recbole==1.2.1 wheel via pip: "), "{err}");
        assert!(!dataset_dir(root.path(), "ml-100k").exists());
    }
}
