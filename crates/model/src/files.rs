//! Verified access to the files of a model directory.
//!
//! A model directory is *sealed* ([`seal`]) as the last step of writing it: its
//! `manifest.json` gets a `files` map with the size and SHA-256 of every other
//! file — weights, feature spec, titles, index, curves, configuration. A
//! sub-directory with its own `manifest.json` (an ensemble member) is listed by
//! that manifest only, which lists its own files.
//!
//! [`ModelFiles`] reads such a directory defensively:
//!
//! * only regular files are read (a FIFO, device or directory in place of a file
//!   is an error, never a hang), through
//!   [`shortlist_core::input::open_regular`];
//! * sizes are checked **before** reading: a listed file must have exactly its
//!   listed size (a truncated, half-copied or sparse-inflated file is refused
//!   without reading it), an unlisted one (old manifests) at most the size limit;
//! * every listed file's SHA-256 is checked, the ones the loader parses as it
//!   reads them and the others (index files…) by [`ModelFiles::verify_unread`];
//! * a file present but not listed (e.g. an index copied in later) is an error,
//!   so nothing unverified is ever loaded. Hidden files (`.name`) are ignored.
//!
//! The same checks apply to a model directory held in memory
//! ([`ModelFiles::in_memory`]), except that a listed file left out of the tree (a
//! saved index, curves) is not an error until something reads it. A bundle's
//! directories ([`crate::bundle::open`]) skip recomputing the SHA-256s: the bundle
//! was packed from files checked against them, and each file's CRC-32 was checked
//! when it was unpacked.
//!
//! Manifests written before sealing existed have no `files` map and still load
//! (their weights checksum is checked as before; other files only for kind and
//! size).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shortlist_core::input::{max_input_bytes, open_regular};
use shortlist_features::FeatureSpec;

use crate::error::{Error, Result};

/// Manifest file name.
pub const MANIFEST: &str = "manifest.json";
/// Largest `manifest.json` read.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Size and checksum of one file of a model directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content (lower-case hex).
    pub sha256: String,
}

/// The `files` map of a manifest: path relative to the model directory → entry.
pub type FileList = BTreeMap<String, FileEntry>;

/// A directory tree held in memory: `/`-separated path relative to its root →
/// content (see [`ModelFiles::in_memory`]).
pub type MemoryFiles = BTreeMap<String, Vec<u8>>;

/// Where the files of a [`ModelFiles`] come from.
#[derive(Clone)]
enum Backing {
    /// The directory on disk.
    Disk,
    /// A tree in memory; `prefix` is this model directory's path inside it (empty,
    /// or ending in `/`). `checked`: the contents were verified before they reached
    /// memory (a bundle: against the manifests when packed, by checksum when
    /// unpacked), so reading checks sizes but does not recompute SHA-256s.
    Memory {
        files: Arc<MemoryFiles>,
        prefix: String,
        checked: bool,
    },
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    files: Option<FileList>,
}

/// An I/O error of `path` whose message may already start with the path (those of
/// [`shortlist_core::input`]): the path is said once.
fn io(path: &Path, e: std::io::Error) -> Error {
    let prefix = format!("{}: ", path.display());
    let msg = e.to_string();
    match msg.strip_prefix(&prefix) {
        Some(rest) => Error::io(path, std::io::Error::new(e.kind(), rest.to_string())),
        None => Error::io(path, e),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn rel_name(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file of `dir` a seal covers, as relative paths: regular files and
/// anything else that is not a directory (so a FIFO is listed and then refused),
/// recursively, hidden names skipped, the top `manifest.json` left out, and a
/// sub-directory with its own manifest represented by that manifest only.
fn covered_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, rel: &Path, depth: usize, out: &mut Vec<String>) -> Result<()> {
        let here = root.join(rel);
        let rd = std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&here, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let r = rel.join(&name);
            let meta = std::fs::metadata(entry.path());
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                if depth == 0 {
                    return Err(Error::corrupt(entry.path(), "directories nested too deep"));
                }
                let sub = entry.path();
                if sub.join(MANIFEST).exists() {
                    out.push(rel_name(&r.join(MANIFEST)));
                } else {
                    walk(root, &r, depth - 1, out)?;
                }
            } else if rel.as_os_str().is_empty() && name == MANIFEST {
                continue;
            } else {
                out.push(rel_name(&r));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), 4, &mut out)?;
    out.sort();
    Ok(out)
}

/// [`covered_files`] of the directory at `prefix` of an in-memory tree.
fn covered_memory(files: &MemoryFiles, prefix: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for key in files.keys() {
        let Some(rel) = key.strip_prefix(prefix) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        if rel == MANIFEST || parts.iter().any(|p| p.starts_with('.')) {
            continue;
        }
        // A sub-directory with its own manifest is represented by that manifest.
        let nested = (1..parts.len()).find_map(|i| {
            let m = format!("{}/{MANIFEST}", parts[..i].join("/"));
            files.contains_key(&format!("{prefix}{m}")).then_some(m)
        });
        out.insert(nested.unwrap_or_else(|| rel.to_string()));
    }
    out.into_iter().collect()
}

/// Lists every file of the model directory `dir` (see the module docs) with its
/// size and SHA-256 in `dir/manifest.json`, rewritten atomically. The last step of
/// writing a model directory, after every file is in place.
pub fn seal(dir: &Path) -> Result<()> {
    let mpath = dir.join(MANIFEST);
    let text = shortlist_core::input::read_regular(&mpath, MAX_MANIFEST_BYTES)
        .map_err(|e| io(&mpath, e))?;
    let mut manifest: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::corrupt(&mpath, format!("invalid manifest: {e}")))?;
    let obj = manifest
        .as_object_mut()
        .ok_or_else(|| Error::corrupt(&mpath, "the manifest is not a JSON object"))?;
    let mut files = FileList::new();
    for rel in covered_files(dir)? {
        let path = dir.join(&rel);
        let bytes = shortlist_core::input::read_regular(&path, max_input_bytes())
            .map_err(|e| io(&path, e))?;
        files.insert(
            rel,
            FileEntry {
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            },
        );
    }
    let files = serde_json::to_value(&files).map_err(|e| Error::invalid("files", e.to_string()))?;
    obj.insert("files".into(), files);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::invalid("manifest", e.to_string()))?;
    shortlist_core::atomic::write_file(&mpath, json.as_bytes()).map_err(|e| io(&mpath, e))
}

/// The files of one model directory, read and verified against its manifest.
#[derive(Debug)]
pub struct ModelFiles {
    dir: PathBuf,
    manifest: Vec<u8>,
    listed: Option<FileList>,
    max_bytes: u64,
    read: Mutex<BTreeSet<String>>,
    backing: Backing,
    /// The last `features.json` parsed in this directory tree, with its bytes (see
    /// [`ModelFiles::parsed_spec`]).
    last_spec: Arc<SpecMemo>,
}

/// The last `features.json` parsed in a directory tree: its bytes and spec.
#[derive(Default)]
struct SpecMemo(Mutex<Option<(Vec<u8>, FeatureSpec)>>);

impl std::fmt::Debug for SpecMemo {
    // Not the bytes nor the vocabularies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpecMemo")
    }
}

impl std::fmt::Debug for Backing {
    // Not the bytes: a bundle holds megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::Disk => f.write_str("Disk"),
            Backing::Memory { files, prefix, .. } => f
                .debug_struct("Memory")
                .field("files", &files.len())
                .field("prefix", prefix)
                .finish(),
        }
    }
}

impl ModelFiles {
    /// Opens `dir` with the default size limit of unlisted files
    /// ([`max_input_bytes`]).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_limit(dir, max_input_bytes())
    }

    /// Opens `dir`: reads its manifest and, for a sealed directory, checks that no
    /// file is missing from the list and no listed name leaves the directory.
    pub fn open_with_limit(dir: &Path, max_bytes: u64) -> Result<Self> {
        let mpath = dir.join(MANIFEST);
        let manifest = shortlist_core::input::read_regular(&mpath, MAX_MANIFEST_BYTES)
            .map_err(|e| io(&mpath, e))?;
        Self::with_manifest(dir, manifest, max_bytes, Backing::Disk)
    }

    /// Opens the model directory at the root of the in-memory tree `files`, with
    /// the checks of [`ModelFiles::open`] (no file outside the manifest's list,
    /// listed sizes and SHA-256s on reading); `label` stands for its path in
    /// messages. A listed file absent from `files` is reported when read, and
    /// skipped by [`ModelFiles::verify_unread`] (a bundle leaves out what inference
    /// does not need: saved indexes, curves).
    pub fn in_memory(label: &Path, files: Arc<MemoryFiles>) -> Result<Self> {
        Self::memory_at(label, files, String::new(), false)
    }

    /// The model directory at `prefix` of an in-memory tree; `checked`: see
    /// `Backing::Memory`.
    pub(crate) fn memory_at(
        label: &Path,
        files: Arc<MemoryFiles>,
        prefix: String,
        checked: bool,
    ) -> Result<Self> {
        let mpath = label.join(MANIFEST);
        let manifest = files
            .get(&format!("{prefix}{MANIFEST}"))
            .ok_or_else(|| {
                Error::io(
                    &mpath,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "not in the bundle"),
                )
            })?
            .clone();
        if manifest.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::corrupt(
                &mpath,
                format!("is over the limit of {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        let max_bytes = max_input_bytes();
        Self::with_manifest(
            label,
            manifest,
            max_bytes,
            Backing::Memory {
                files,
                prefix,
                checked,
            },
        )
    }

    /// The model directory `name` inside this one (an ensemble member, a relevance
    /// model), from the same source.
    pub fn sub(&self, name: &str) -> Result<Self> {
        let mut sub = match &self.backing {
            Backing::Disk => Self::open_with_limit(&self.dir.join(name), self.max_bytes),
            Backing::Memory {
                files,
                prefix,
                checked,
            } => Self::memory_at(
                &self.dir.join(name),
                Arc::clone(files),
                format!("{prefix}{name}/"),
                *checked,
            ),
        }?;
        sub.last_spec = Arc::clone(&self.last_spec);
        Ok(sub)
    }

    /// The feature spec of `bytes` (a `features.json` just read and verified), parsed
    /// by `parse` unless the same bytes were parsed last in this directory tree: an
    /// ensemble's members and a ranking model's relevance models carry the same
    /// vocabularies, parsed once per load instead of once per directory.
    pub(crate) fn parsed_spec(
        &self,
        bytes: Vec<u8>,
        parse: impl FnOnce(&[u8]) -> Result<FeatureSpec>,
    ) -> Result<FeatureSpec> {
        let mut last = self.last_spec.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, spec)) = last.as_ref() {
            if *b == bytes {
                return Ok(spec.clone());
            }
        }
        let spec = parse(&bytes)?;
        *last = Some((bytes, spec.clone()));
        Ok(spec)
    }

    /// Whether the files are read from disk (rather than from memory).
    pub fn on_disk(&self) -> bool {
        matches!(self.backing, Backing::Disk)
    }

    /// The model's `kind` (from its manifest).
    pub fn kind(&self) -> Result<String> {
        #[derive(Deserialize)]
        struct Kind {
            kind: String,
        }
        let k: Kind = serde_json::from_slice(&self.manifest)
            .map_err(|e| Error::corrupt(self.path(MANIFEST), format!("no model kind: {e}")))?;
        Ok(k.kind)
    }

    fn covered(&self) -> Result<Vec<String>> {
        match &self.backing {
            Backing::Disk => covered_files(&self.dir),
            Backing::Memory { files, prefix, .. } => Ok(covered_memory(files, prefix)),
        }
    }

    fn with_manifest(
        dir: &Path,
        manifest: Vec<u8>,
        max_bytes: u64,
        backing: Backing,
    ) -> Result<Self> {
        let mpath = dir.join(MANIFEST);
        let listed: Listed = serde_json::from_slice(&manifest)
            .map_err(|e| Error::corrupt(&mpath, format!("invalid manifest: {e}")))?;
        if let Some(files) = &listed.files {
            for name in files.keys() {
                let p = Path::new(name);
                let plain = !name.is_empty()
                    && p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !plain || name == MANIFEST {
                    return Err(Error::corrupt(
                        &mpath,
                        format!("files: {name:?} is not a file name inside the model directory"),
                    ));
                }
            }
        }
        let files = ModelFiles {
            dir: dir.to_path_buf(),
            manifest,
            listed: listed.files,
            max_bytes,
            read: Mutex::new(BTreeSet::new()),
            backing,
            last_spec: Arc::default(),
        };
        if let Some(listed) = &files.listed {
            for rel in files.covered()? {
                if !listed.contains_key(&rel) {
                    return Err(Error::corrupt(
                        dir.join(&rel),
                        "not listed in manifest.json (added after the model was saved?); remove it or save the model again",
                    ));
                }
            }
        }
        Ok(files)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a file of the directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The manifest's bytes.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// Whether the manifest lists (and so checksums) every file.
    pub fn is_sealed(&self) -> bool {
        self.listed.is_some()
    }

    /// Reads the file `rel`: for a sealed directory it must be listed, have its
    /// listed size (checked before reading) and its listed SHA-256.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.read_checked(rel, true)
    }

    /// Like [`ModelFiles::read`], `None` when the file is absent (and, for a
    /// sealed directory, not listed).
    pub fn read_optional(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match &self.listed {
            Some(files) if !files.contains_key(rel) => Ok(None),
            Some(_) => self.read(rel).map(Some),
            None => match self.read(rel) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(None)
                }
                r => r.map(Some),
            },
        }
    }

    fn read_checked(&self, rel: &str, keep: bool) -> Result<Vec<u8>> {
        let path = self.path(rel);
        let entry = match &self.listed {
            Some(files) => Some(
                files
                    .get(rel)
                    .ok_or_else(|| Error::corrupt(&path, "not listed in manifest.json"))?,
            ),
            None => None,
        };
        let checked = matches!(self.backing, Backing::Memory { checked: true, .. });
        let bytes = match &self.backing {
            Backing::Disk => self.read_disk(&path, entry)?,
            Backing::Memory { files, prefix, .. } => {
                let bytes = files.get(&format!("{prefix}{rel}")).ok_or_else(|| {
                    Error::io(
                        &path,
                        std::io::Error::new(std::io::ErrorKind::NotFound, "not in the bundle"),
                    )
                })?;
                let len = bytes.len() as u64;
                if len > self.max_bytes {
                    return Err(Error::corrupt(
                        &path,
                        format!("is {len} bytes, over the limit of {} bytes", self.max_bytes),
                    ));
                }
                if let Some(e) = entry {
                    if len != e.bytes {
                        return Err(Error::corrupt(
                            &path,
                            format!("is {len} bytes, manifest.json lists {}", e.bytes),
                        ));
                    }
                }
                bytes.clone()
            }
        };
        if let Some(e) = entry.filter(|_| !checked) {
            let sum = sha256_hex(&bytes);
            if sum != e.sha256 {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "SHA-256 {sum} differs from manifest.json's {} (corrupt or changed after saving)",
                        e.sha256
                    ),
                ));
            }
        }
        self.read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rel.to_string());
        Ok(if keep { bytes } else { Vec::new() })
    }

    /// Reads `path` from disk: a regular file within the size limit, of its listed
    /// size (checked before reading).
    fn read_disk(&self, path: &Path, entry: Option<&FileEntry>) -> Result<Vec<u8>> {
        use std::io::Read;
        let (file, len) = open_regular(path, self.max_bytes).map_err(|e| io(path, e))?;
        if let Some(e) = entry {
            if len != e.bytes {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "is {len} bytes, manifest.json lists {} (truncated, still being copied, or replaced)",
                        e.bytes
                    ),
                ));
            }
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(len.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io(path, e))?;
        if bytes.len() as u64 != len {
            return Err(Error::corrupt(path, "changed size while being read"));
        }
        Ok(bytes)
    }

    /// Checks the files the loader did not read itself (index files, members'
    /// manifests, curves…): size and SHA-256 for a sealed directory; for an old
    /// one, that every top-level file is a regular file within the size limit.
    pub fn verify_unread(&self) -> Result<()> {
        match &self.listed {
            Some(files) => {
                let done = self.read.lock().unwrap_or_else(|p| p.into_inner()).clone();
                for rel in files.keys().filter(|r| !done.contains(*r)) {
                    if let Backing::Memory { files, prefix, .. } = &self.backing {
                        if !files.contains_key(&format!("{prefix}{rel}")) {
                            continue; // left out of the bundle, never read
                        }
                    }
                    self.read_checked(rel, false)?;
                }
            }
            None if !self.on_disk() => {}
            None => {
                for rel in covered_files(&self.dir)? {
                    if !rel.contains('/') {
                        let path = self.path(&rel);
                        open_regular(&path, self.max_bytes).map_err(|e| io(&path, e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The `kind` of the model in `dir` (from its manifest), read with the limits of
/// [`ModelFiles`].
pub fn manifest_kind(dir: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let mpath = dir.join(MANIFEST);
    let text = shortlist_core::input::read_regular(&mpath, MAX_MANIFEST_BYTES)
        .map_err(|e| io(&mpath, e))?;
    let k: Kind = serde_json::from_slice(&text)
        .map_err(|e| Error::corrupt(&mpath, format!("no model kind: {e}")))?;
    Ok(k.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        d
    }

    #[test]
    fn sealed_files_are_verified() {
        let d = dir_with(&[
            (MANIFEST, br#"{"kind": "ranking"}"#),
            ("weights.safetensors", b"0123456789"),
            ("items.tsv", b"row\titem_id\ttitle\n"),
            ("member-0/manifest.json", br#"{"kind": "ranking"}"#),
            ("member-0/weights.safetensors", b"abc"),
            (".hidden", b"x"),
        ]);
        seal(d.path()).unwrap();
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(m["kind"], "ranking");
        let names: Vec<&String> = m["files"].as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            ["items.tsv", "member-0/manifest.json", "weights.safetensors"]
        );
        assert_eq!(
            m["files"]["weights.safetensors"],
            serde_json::json!({"bytes": 10, "sha256": sha256_hex(b"0123456789")})
        );

        let f = ModelFiles::open(d.path()).unwrap();
        assert!(f.is_sealed());
        assert_eq!(f.read("weights.safetensors").unwrap(), b"0123456789");
        f.verify_unread().unwrap();
        assert_eq!(f.read_optional("absent.tsv").unwrap(), None);

        // Same size, other content: checksum error.
        std::fs::write(d.path().join("items.tsv"), b"row\titem_id\ttitlX\n").unwrap();
        let e = ModelFiles::open(d.path())
            .unwrap()
            .verify_unread()
            .unwrap_err();
        assert!(e.to_string().contains("items.tsv: SHA-256 "), "{e}");
        // Truncated: refused on its size, before reading.
        std::fs::write(d.path().join("weights.safetensors"), b"01234").unwrap();
        let e = ModelFiles::open(d.path())
            .unwrap()
            .read("weights.safetensors")
            .unwrap_err();
        assert!(e
            .to_string()
            .ends_with("weights.safetensors: is 5 bytes, manifest.json lists 10 (truncated, still being copied, or replaced)"));
        // A file added later: the directory does not open.
        std::fs::write(d.path().join("index.hnsw"), b"x").unwrap();
        let e = ModelFiles::open(d.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains("index.hnsw: not listed in manifest.json"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn special_files_and_escaping_names_are_refused() {
        let d = dir_with(&[(MANIFEST, br#"{"kind": "ranking"}"#), ("w", b"1")]);
        seal(d.path()).unwrap();
        std::fs::remove_file(d.path().join("w")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("w")).unwrap();
        let e = ModelFiles::open(d.path()).unwrap().read("w").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("w: is a character device, expected a regular file"),
            "{e}"
        );

        let d = dir_with(&[(
            MANIFEST,
            br#"{"kind": "ranking", "files": {"../../etc/passwd": {"bytes": 1, "sha256": "00"}}}"#,
        )]);
        let e = ModelFiles::open(d.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains("is not a file name inside the model directory"),
            "{e}"
        );
    }

    #[test]
    fn old_manifests_still_load() {
        let d = dir_with(&[(MANIFEST, br#"{"kind": "retrieval"}"#), ("w", b"1")]);
        let f = ModelFiles::open(d.path()).unwrap();
        assert!(!f.is_sealed());
        assert_eq!(f.read("w").unwrap(), b"1");
        assert_eq!(f.read_optional("items.tsv").unwrap(), None);
        f.verify_unread().unwrap();
        assert_eq!(manifest_kind(d.path()).unwrap(), "retrieval");
        // An unlisted file over the limit is refused before reading.
        let f = ModelFiles::open_with_limit(d.path(), 0).unwrap();
        assert!(f
            .read("w")
            .unwrap_err()
            .to_string()
            .contains("over the limit"));
    }
}
