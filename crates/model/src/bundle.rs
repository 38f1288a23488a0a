//! Model bundles: the files inference needs from several model directories, packed
//! into one blob, so that a runtime without a file system (the WebAssembly build in
//! a browser) can load the models from bytes.
//!
//! A bundle is
//!
//! ```text
//! "SLBUNDL2"                                    8 bytes, the magic (format version 2)
//! count                                         u32 little-endian
//! count × { path_len u32 · path · entry }       little-endian lengths
//! entry = 0u8 · len u64 · crc u32 · content     a file, with its CRC-32
//!       | 1u8 · index u32                       the same content as entry `index` (earlier)
//! ```
//!
//! Identical files (the feature spec shared by a model and its members, the titles
//! of both models) are stored once. A format 1 bundle (`"SLBUNDL1"`: no CRCs, no
//! repeats) is refused with a message saying to export it again.
//!
//! **Checks.** [`pack`] reads every file through [`ModelFiles`], so each is checked
//! against its manifest's size and SHA-256 before it is packed; [`unpack`] checks
//! each file's CRC-32; [`open`] then checks sizes and manifests' file lists but does
//! not recompute the SHA-256s (5 MB of them cost 30–70 ms in a browser's
//! WebAssembly, the CRCs a few).
//!
//! where `path` is `<model name>/<path inside its directory>` (UTF-8, `/`-separated,
//! no empty, `.` or `..` component), e.g. `ranking/member-0/weights.safetensors`.
//! Nothing may follow the last entry. Only the files the loaders read are packed
//! ([`INFERENCE_FILES`], in the model directory and its nested model directories:
//! ensemble members, the relevance head's models); saved indexes and curves stay
//! out. The files are not re-encoded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::files::{MemoryFiles, ModelFiles};

/// The first 8 bytes of a bundle (format version 2, written).
pub const MAGIC: &[u8; 8] = b"SLBUNDL2";
/// The first 8 bytes of a format version 1 bundle (refused with a clear message).
pub const MAGIC_V1: &[u8; 8] = b"SLBUNDL1";
/// Entry tag: the content follows.
const CONTENT: u8 = 0;
/// Entry tag: the content of an earlier entry.
const SAME_AS: u8 = 1;

/// The files of a model directory that inference reads: the manifest, the
/// weights, the feature spec, the titles and the item attributes (business rules;
/// a candidate model lists it in its manifest when it was trained with item
/// features, and its loader reads it).
pub const INFERENCE_FILES: [&str; 5] = [
    crate::files::MANIFEST,
    crate::artifact::WEIGHTS,
    crate::artifact::FEATURES,
    crate::retrieval_artifact::ITEMS,
    crate::attributes::ATTRIBUTES,
];

/// Deepest nesting of model directories packed (a model, its members, theirs…).
const MAX_DEPTH: usize = 4;

/// Whether `path` is a plain relative `/`-separated path.
fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
}

/// Packs the inference files of each `(name, directory)` into one bundle. Names
/// must be plain single path components (`retrieval`, `ranking`), each used once.
/// Errors name the file or the name.
pub fn pack(models: &[(&str, &Path)]) -> Result<Vec<u8>> {
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, dir) in models {
        if !plain_path(name) || name.contains('/') {
            return Err(Error::invalid(
                "bundle model name",
                format!("{name:?} is not a plain directory name"),
            ));
        }
        if entries.keys().any(|k| k.starts_with(&format!("{name}/"))) {
            return Err(Error::invalid(
                "bundle model name",
                format!("{name:?} is given twice"),
            ));
        }
        if !dir.join(crate::files::MANIFEST).is_file() {
            return Err(Error::corrupt(
                dir.join(crate::files::MANIFEST),
                "missing: not a model directory",
            ));
        }
        collect(dir, name, MAX_DEPTH, &mut entries)?;
    }
    encode(&entries)
}

/// Adds the inference files of the model directory `dir` under `prefix/`, each
/// read through [`ModelFiles`] (checked against the manifest's size and SHA-256).
fn collect(dir: &Path, prefix: &str, depth: usize, out: &mut MemoryFiles) -> Result<()> {
    let files = ModelFiles::open(dir)?;
    out.insert(
        format!("{prefix}/{}", crate::files::MANIFEST),
        files.manifest().to_vec(),
    );
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || name == crate::files::MANIFEST {
            continue;
        }
        let path = entry.path();
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            if path.join(crate::files::MANIFEST).exists() {
                if depth == 0 {
                    return Err(Error::corrupt(&path, "model directories nested too deep"));
                }
                collect(&path, &format!("{prefix}/{name}"), depth - 1, out)?;
            }
        } else if INFERENCE_FILES.contains(&name.as_str()) {
            out.insert(format!("{prefix}/{name}"), files.read(&name)?);
        }
    }
    Ok(())
}

/// Encodes `entries` (paths already checked) as a bundle, identical contents once.
fn encode(entries: &MemoryFiles) -> Result<Vec<u8>> {
    let too_big = |what: &str| Error::invalid("bundle", format!("{what} does not fit a bundle"));
    let total: usize = entries.iter().map(|(k, v)| 17 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(12 + total);
    out.extend_from_slice(MAGIC);
    let count = u32::try_from(entries.len()).map_err(|_| too_big("the number of files"))?;
    out.extend_from_slice(&count.to_le_bytes());
    let mut first: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    for (i, (path, content)) in entries.iter().enumerate() {
        let len = u32::try_from(path.len()).map_err(|_| too_big(path))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        match first.get(content.as_slice()) {
            Some(&earlier) => {
                out.push(SAME_AS);
                out.extend_from_slice(&earlier.to_le_bytes());
            }
            None => {
                // `i` fits: the count does.
                first.insert(content, i as u32);
                out.push(CONTENT);
                out.extend_from_slice(&(content.len() as u64).to_le_bytes());
                out.extend_from_slice(&crc32fast::hash(content).to_le_bytes());
                out.extend_from_slice(content);
            }
        }
    }
    Ok(out)
}

/// A reader over the bundle's bytes whose errors say what was expected where.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::corrupt(
                "bundle",
                format!(
                    "truncated: {what} needs {n} bytes at offset {}, the bundle has {}",
                    self.at,
                    self.bytes.len()
                ),
            ));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// Decodes a bundle into its files (path → content). Errors say what is wrong
/// and where (entry number, offset, path).
pub fn unpack(bytes: &[u8]) -> Result<MemoryFiles> {
    let mut c = Cursor { bytes, at: 0 };
    let magic = c.take(MAGIC.len(), "the magic")?;
    if magic == MAGIC_V1 {
        return Err(Error::corrupt(
            "bundle",
            "format version 1 (written before 3 December 2026): export it again with `shortlist export bundle`",
        ));
    }
    if magic != MAGIC {
        return Err(Error::corrupt(
            "bundle",
            format!(
                "starts with {:?}, expected {:?} (not a shortlist bundle, or another format version)",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(MAGIC)
            ),
        ));
    }
    let count = c.u32("the file count")?;
    let mut files = MemoryFiles::new();
    // Every entry's content in order, for references to earlier entries.
    let mut order: Vec<&[u8]> = Vec::new();
    for i in 0..count {
        let len = c.u32(&format!("entry {i}'s path length"))? as usize;
        let raw = c.take(len, &format!("entry {i}'s path"))?;
        let path = std::str::from_utf8(raw)
            .ok()
            .filter(|p| plain_path(p))
            .ok_or_else(|| {
                Error::corrupt(
                    "bundle",
                    format!(
                        "entry {i}'s path {:?} is not a plain relative path",
                        String::from_utf8_lossy(raw)
                    ),
                )
            })?;
        let tag = c.u8(&format!("the entry tag of {path}"))?;
        let content = match tag {
            CONTENT => {
                let size = c.u64(&format!("the length of {path}"))?;
                let size = usize::try_from(size)
                    .map_err(|_| Error::corrupt("bundle", format!("{path}: {size} bytes")))?;
                let want = c.u32(&format!("the CRC-32 of {path}"))?;
                let content = c.take(size, path)?;
                let got = crc32fast::hash(content);
                if got != want {
                    return Err(Error::corrupt(
                        "bundle",
                        format!("{path}: CRC-32 {got:08x} differs from the bundle's {want:08x} (corrupt)"),
                    ));
                }
                content
            }
            SAME_AS => {
                let j = c.u32(&format!("the entry {path} repeats"))?;
                match order.get(j as usize) {
                    Some(content) => content,
                    None => {
                        return Err(Error::corrupt(
                            "bundle",
                            format!("{path} repeats entry {j}, which is not an earlier entry (it is entry {i})"),
                        ))
                    }
                }
            }
            other => {
                return Err(Error::corrupt(
                    "bundle",
                    format!("{path}: entry tag {other}, expected {CONTENT} (content) or {SAME_AS} (an earlier entry's)"),
                ))
            }
        };
        if files.insert(path.to_string(), content.to_vec()).is_some() {
            return Err(Error::corrupt("bundle", format!("{path} appears twice")));
        }
        order.push(content);
    }
    if c.at != bytes.len() {
        return Err(Error::corrupt(
            "bundle",
            format!(
                "{} bytes follow the last of its {count} files",
                bytes.len() - c.at
            ),
        ));
    }
    Ok(files)
}

/// The model directory `name` of a bundle's files ([`unpack`]), opened with the
/// checks of [`ModelFiles`] (no file outside its manifest's list, listed sizes)
/// except the SHA-256s, checked when the bundle was packed (its CRCs when it was
/// unpacked); messages name it `bundle/<name>/…`.
pub fn open(files: &Arc<MemoryFiles>, name: &str) -> Result<ModelFiles> {
    let prefix = format!("{name}/");
    if !files
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix))
    {
        let names: std::collections::BTreeSet<&str> =
            files.keys().filter_map(|k| k.split('/').next()).collect();
        return Err(Error::invalid(
            "bundle model",
            format!("no model {name:?} in the bundle (it holds: {names:?})"),
        ));
    }
    ModelFiles::memory_at(
        &Path::new("bundle").join(name),
        Arc::clone(files),
        prefix,
        true,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &[u8])]) {
        for (name, bytes) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }

    #[test]
    fn pack_takes_inference_files_of_nested_models_and_unpack_inverts_it() {
        let d = tempfile::tempdir().unwrap();
        let rank = d.path().join("rank");
        write(
            &rank,
            &[
                ("manifest.json", b"{}"),
                ("weights.safetensors", b"w0"),
                ("features.json", b"f0"),
                ("curves.png", b"not packed"),
                ("index.safetensors", b"not packed"),
                (".hidden/manifest.json", b"not packed"),
                ("member-0/manifest.json", b"{\"m\": 0}"),
                ("member-0/weights.safetensors", b""),
                ("member-0/curves.csv", b"not packed"),
                ("notes/manifest.txt", b"not a model directory"),
            ],
        );
        let retr = d.path().join("retr");
        write(&retr, &[("manifest.json", b"{}"), ("items.tsv", b"t")]);
        let bytes = pack(&[("ranking", &rank), ("retrieval", &retr)]).unwrap();
        // Hand-computed layout: magic, count, then the entries sorted by path.
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 7);
        let first = "ranking/features.json";
        assert_eq!(
            u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize,
            first.len()
        );
        assert_eq!(&bytes[16..16 + first.len()], first.as_bytes());
        let files = unpack(&bytes).unwrap();
        let got: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("ranking/features.json", &b"f0"[..]),
                ("ranking/manifest.json", b"{}"),
                ("ranking/member-0/manifest.json", b"{\"m\": 0}"),
                ("ranking/member-0/weights.safetensors", b""),
                ("ranking/weights.safetensors", b"w0"),
                ("retrieval/items.tsv", b"t"),
                ("retrieval/manifest.json", b"{}"),
            ]
        );
        // Each entry: path length, path, tag, then the content's length, CRC-32 and content,
        // or for retrieval/manifest.json (the same `{}` as entry 1) the entry number.
        let total: usize = got
            .iter()
            .map(|(k, v)| {
                let rest = if *k == "retrieval/manifest.json" {
                    4
                } else {
                    8 + 4 + v.len()
                };
                4 + k.len() + 1 + rest
            })
            .sum();
        assert_eq!(bytes.len(), 12 + total);
        let repeat = bytes.len() - 4;
        assert_eq!(bytes[repeat - 1], SAME_AS);
        assert_eq!(u32::from_le_bytes(bytes[repeat..].try_into().unwrap()), 1);
        // A nested model opens from the same tree.
        let files = Arc::new(files);
        let member = open(&files, "ranking").unwrap().sub("member-0").unwrap();
        assert_eq!(member.manifest(), b"{\"m\": 0}");
        assert_eq!(
            member.dir(),
            Path::new("bundle").join("ranking").join("member-0")
        );
    }

    /// CRC-32 (IEEE, as zlib's `crc32`) of `{}` and of `{]`.
    const CRC_OF_BRACES: u32 = 0xa3a6_bf43;
    const CRC_OF_CORRUPT: u32 = 0x98c8_9f8b;

    #[test]
    fn a_version_1_bundle_is_refused_saying_to_export_it_again() {
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            unpack(&v1).unwrap_err().to_string(),
            "bundle: format version 1 (written before 3 December 2026): export it again with \
             `shortlist export bundle`"
        );
    }

    #[test]
    fn bad_bundles_and_names_are_errors_saying_what_and_where() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &[("m/manifest.json", b"{}")]);
        let m = d.path().join("m");
        let good = pack(&[("a", &m)]).unwrap();
        assert_eq!(good.len(), 12 + 4 + "a/manifest.json".len() + 1 + 8 + 4 + 2);
        let err = |b: &[u8]| unpack(b).unwrap_err().to_string();
        // The CRC-32 of `{}`, then a corrupt byte (`{]`).
        let crc_at = good.len() - 6;
        assert_eq!(&good[crc_at..crc_at + 4], &CRC_OF_BRACES.to_le_bytes());
        let mut corrupt = good.clone();
        *corrupt.last_mut().unwrap() = b']';
        assert_eq!(
            err(&corrupt),
            format!(
                "bundle: a/manifest.json: CRC-32 {CRC_OF_CORRUPT:08x} differs from the bundle's \
                 {CRC_OF_BRACES:08x} (corrupt)"
            )
        );
        assert_eq!(
            err(b"PK\x03\x04 not a bundle"),
            "bundle: starts with \"PK\\u{3}\\u{4} not\", expected \"SLBUNDL2\" (not a shortlist \
             bundle, or another format version)"
        );
        assert_eq!(
            err(&good[..good.len() - 1]),
            format!(
                "bundle: truncated: a/manifest.json needs 2 bytes at offset {}, the bundle has {}",
                good.len() - 2,
                good.len() - 1
            )
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(err(&long), "bundle: 1 bytes follow the last of its 1 files");
        let mut evil = good.clone();
        evil[16] = b'.';
        assert_eq!(
            err(&evil),
            "bundle: entry 0's path \"./manifest.json\" is not a plain relative path"
        );
        assert_eq!(
            err(&good[..10]),
            "bundle: truncated: the file count needs 4 bytes at offset 8, the bundle has 10"
        );
        // An entry repeating one that is not earlier, and an unknown tag.
        let tag_at = 12 + 4 + "a/manifest.json".len();
        let mut forward = good[..tag_at].to_vec();
        forward.push(SAME_AS);
        forward.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            err(&forward),
            "bundle: a/manifest.json repeats entry 0, which is not an earlier entry (it is entry 0)"
        );
        let mut tag = good.clone();
        tag[tag_at] = 7;
        assert_eq!(
            err(&tag),
            "bundle: a/manifest.json: entry tag 7, expected 0 (content) or 1 (an earlier entry's)"
        );
        assert_eq!(
            pack(&[("a/b", &m)]).unwrap_err().to_string(),
            "invalid bundle model name: \"a/b\" is not a plain directory name"
        );
        assert_eq!(
            pack(&[("a", &m), ("a", &m)]).unwrap_err().to_string(),
            "invalid bundle model name: \"a\" is given twice"
        );
        let err = pack(&[("a", d.path())]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: missing: not a model directory",
                d.path().join("manifest.json").display()
            )
        );
    }
}
