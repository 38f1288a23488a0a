//! Safetensors files of the indexes written by this crate (exact, IVF): metadata
//! `format` / `version` checked on load, tensors checked for dtype, rank and byte
//! length, atomic writes; every error names the file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// A format error about `path`.
pub(crate) fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Little-endian bytes of `f32` values.
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of `u32` values.
pub(crate) fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `tensors` (name, dtype, shape, bytes) with `format` / `version` and `extra`
/// metadata to `path`, atomically.
pub(crate) fn write(
    path: &Path,
    tensors: &[(&str, Dtype, Vec<usize>, &[u8])],
    format: &str,
    version: &str,
    extra: &[(&str, String)],
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (*name, v))
                .map_err(|e| bad(path, format!("cannot build tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut metadata = HashMap::from([
        ("format".to_string(), format.to_string()),
        ("version".to_string(), version.to_string()),
    ]);
    metadata.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let buf = safetensors::serialize(views, Some(metadata))
        .map_err(|e| bad(path, format!("cannot serialise: {e}")))?;
    let buf = sorted_header(buf).map_err(|e| bad(path, format!("cannot serialise: {e}")))?;
    shortlist_core::atomic::write_file(path, &buf)?;
    Ok(())
}

/// The same safetensors bytes with the header's keys in sorted order. The safetensors
/// crate writes the `__metadata__` map in `HashMap` order, which changes from run to
/// run, so without this two saves of the same index differed in their bytes (and in
/// the SHA-256 a manifest records).
fn sorted_header(buf: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let n = buf
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("no header length")? as usize;
    let header = buf.get(8..8 + n).ok_or("header longer than the file")?;
    let mut top: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| e.to_string())?;
    if let Some(m) = top.get_mut("__metadata__") {
        let sorted: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(m.take()).map_err(|e| e.to_string())?;
        *m = serde_json::to_value(sorted).map_err(|e| e.to_string())?;
    }
    let mut json = serde_json::to_vec(&top).map_err(|e| e.to_string())?;
    // Padded with spaces to a multiple of 8 bytes, as safetensors aligns its data.
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + buf.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&buf[8 + n..]);
    Ok(out)
}

/// A parsed file whose metadata says `format` / `version`, with its metadata.
pub(crate) struct Opened<'a> {
    path: &'a Path,
    st: SafeTensors<'a>,
    /// The file's metadata.
    pub(crate) meta: HashMap<String, String>,
}

/// Parses `bytes` (read from `path`) and checks its `format` and that its `version`
/// is one of `versions`.
pub(crate) fn open<'a>(
    path: &'a Path,
    bytes: &'a [u8],
    format: &str,
    versions: &[&str],
) -> Result<Opened<'a>> {
    let unreadable = |e| bad(path, format!("not a readable safetensors file ({e})"));
    let st = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let found = meta.get("format");
    if found.map(String::as_str) != Some(format) {
        return Err(bad(
            path,
            format!("metadata `format` is {found:?}, expected {format:?}"),
        ));
    }
    let found = meta.get("version");
    if !found.is_some_and(|v| versions.contains(&v.as_str())) {
        return Err(bad(
            path,
            format!(
                "metadata `version` is {found:?}; this build reads version {}",
                versions.join(" or ")
            ),
        ));
    }
    Ok(Opened { path, st, meta })
}

impl Opened<'_> {
    /// Tensor `name` as `(shape, 4-byte words)`, checked for dtype, rank and length.
    pub(crate) fn words(
        &self,
        name: &str,
        dtype: Dtype,
        rank: usize,
    ) -> Result<(Vec<usize>, Vec<[u8; 4]>)> {
        let t = self
            .st
            .tensor(name)
            .map_err(|e| bad(self.path, format!("no tensor {name:?} ({e})")))?;
        if t.dtype() != dtype || t.shape().len() != rank {
            return Err(bad(
                self.path,
                format!(
                    "tensor {name:?} is {:?} of shape {:?}, expected {dtype:?} of rank {rank}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        let want = t.shape().iter().product::<usize>() * 4;
        if t.data().len() != want {
            return Err(bad(
                self.path,
                format!(
                    "tensor {name:?} holds {} bytes, shape {:?} needs {want}",
                    t.data().len(),
                    t.shape()
                ),
            ));
        }
        let words = t
            .data()
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect();
        Ok((t.shape().to_vec(), words))
    }

    /// `f32` tensor `name` of rank `rank`: `(shape, values)`.
    pub(crate) fn f32s(&self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, w) = self.words(name, Dtype::F32, rank)?;
        Ok((shape, w.into_iter().map(f32::from_le_bytes).collect()))
    }

    /// `u32` tensor `name` of rank `rank`: `(shape, values)`.
    pub(crate) fn u32s(&self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<u32>)> {
        let (shape, w) = self.words(name, Dtype::U32, rank)?;
        Ok((shape, w.into_iter().map(u32::from_le_bytes).collect()))
    }
}
