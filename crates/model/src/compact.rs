//! Compact model directories: the same model with 8-bit weights, small enough to
//! send to a browser (the WebAssembly build) — the counterpart of TensorFlow Lite's
//! post-training dynamic-range quantisation in seed 003.
//!
//! [`compact_dir`] copies a model directory (with its nested models: ensemble
//! members, the relevance head's models) and re-encodes each `weights.safetensors`:
//!
//! * a float matrix `NAME` (F32, 2-d, at least [`CompactOptions::min_elements`]
//!   values; a 1-d vector that long counts as one row) becomes `NAME` as I8 of the
//!   same shape plus `NAME:scale` (F32, one per row): value = q × scale, with
//!   scale = max |row| / 127 (symmetric, per row);
//! * the item–item weights of an EASE model (`weights`, n × n) keep each row's
//!   [`CompactOptions::ease_keep`] largest magnitudes: `NAME` (I8, rows × keep),
//!   `NAME:cols` (U16, or U32 beyond 65,536 columns: their columns, increasing),
//!   `NAME:scale` (F32, per row) and `NAME:shape` (U32, `[rows, columns]`); the
//!   other weights are 0;
//! * an id tensor (U32) whose values all fit 16 bits is stored as U16.
//!
//! Every loader reads tensors through one reader that accepts both encodings and
//! widens them to the F32 / U32 values it computes with, so a compact model is
//! served, evaluated, bundled and exported like any other; the server and the
//! browser compute with the same decoded values and give the same lists. Saved
//! indexes are left out (the loader builds the exact index from the decoded
//! vectors); every manifest is resealed, and the directory is written atomically.
//!
//! On MovieLens 100k (split42) the quantised models serve lists of the same quality
//! (BENCHMARKS.md, "Compact models").

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};
use shortlist_core::atomic::AtomicDir;
use shortlist_core::hash::fnv1a64;

use crate::artifact::{f32_bytes, Tensors};
use crate::error::{Error, Result};
use crate::files::{ModelFiles, MANIFEST};

/// Default [`CompactOptions::ease_keep`].
pub const DEFAULT_EASE_KEEP: usize = 64;
/// Default [`CompactOptions::min_elements`].
pub const DEFAULT_MIN_ELEMENTS: usize = 4096;
/// Suffix of a quantised tensor's per-row scales.
pub const SCALE: &str = ":scale";
/// Suffix of a sparse tensor's columns.
pub const COLS: &str = ":cols";
/// Suffix of a sparse tensor's dense shape.
pub const SHAPE: &str = ":shape";
/// The weights file re-encoded.
const WEIGHTS: &str = crate::artifact::WEIGHTS;
/// Saved indexes (`shortlist-index`'s exact, IVF and HNSW files): left out, the
/// loader builds the exact index from the decoded vectors.
const SAVED_INDEXES: [&str; 3] = ["index.safetensors", "index.ivf.safetensors", "index.hnsw"];
/// The safetensors metadata key naming the encoding of a compact file.
pub const METADATA_KEY: &str = "shortlist.compact";
/// Deepest nesting of model directories copied.
const MAX_DEPTH: usize = 4;

/// How [`compact_dir`] encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// Weights kept per row of an EASE model's item–item matrix (at least 1).
    pub ease_keep: usize,
    /// Smallest float tensor quantised to 8 bits (smaller ones stay F32).
    pub min_elements: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            ease_keep: DEFAULT_EASE_KEEP,
            min_elements: DEFAULT_MIN_ELEMENTS,
        }
    }
}

/// What [`compact_dir`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of the source files (manifests included).
    pub bytes_before: u64,
    /// Bytes of the written files (manifests included).
    pub bytes_after: u64,
    /// Model directories written (the model and its nested models).
    pub models: usize,
    /// Tensors stored in 8 bits.
    pub quantised: usize,
    /// Files left out (saved indexes), relative to the model directory.
    pub left_out: Vec<String>,
}

/// Writes a compact copy of the model directory `src` to `dst` (see the module
/// docs), replacing `dst` atomically: a crash leaves the old `dst` or the new one.
/// Every source file is verified against its manifest as it is read. Errors name
/// the file or the option.
pub fn compact_dir(src: &Path, dst: &Path, opts: &CompactOptions) -> Result<CompactReport> {
    if opts.ease_keep == 0 {
        return Err(Error::invalid("ease_keep", "must be at least 1"));
    }
    let files = ModelFiles::open(src)?;
    let out = AtomicDir::new(dst).map_err(|e| Error::io(dst, e))?;
    let mut report = CompactReport::default();
    copy_model(&files, src, out.path(), "", opts, MAX_DEPTH, &mut report)?;
    out.commit().map_err(|e| Error::io(dst, e))?;
    Ok(report)
}

/// Copies one model directory (`rel` its path inside the top one, for the report),
/// its nested models first, then seals it.
fn copy_model(
    files: &ModelFiles,
    src: &Path,
    dst: &Path,
    rel: &str,
    opts: &CompactOptions,
    depth: usize,
    report: &mut CompactReport,
) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let ease = files.kind()? == "ease";
    let mut names: Vec<(String, bool)> = Vec::new();
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(Error::corrupt(
                entry.path(),
                "a file name that is not UTF-8 in a model directory",
            ));
        };
        if name.starts_with('.') || name == MANIFEST {
            continue;
        }
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        names.push((name, is_dir));
    }
    names.sort();
    let mut weights_checksum = None;
    for (name, is_dir) in names {
        let (from, to) = (src.join(&name), dst.join(&name));
        if is_dir {
            if !from.join(MANIFEST).exists() {
                return Err(Error::corrupt(
                    &from,
                    "a directory without a manifest in a model directory",
                ));
            }
            if depth == 0 {
                return Err(Error::corrupt(&from, "model directories nested too deep"));
            }
            let sub = files.sub(&name)?;
            copy_model(
                &sub,
                &from,
                &to,
                &format!("{rel}{name}/"),
                opts,
                depth - 1,
                report,
            )?;
            continue;
        }
        let bytes = files.read(&name)?;
        report.bytes_before += bytes.len() as u64;
        if SAVED_INDEXES.contains(&name.as_str()) {
            report.left_out.push(format!("{rel}{name}"));
            continue;
        }
        let bytes = if name == WEIGHTS {
            let (b, quantised) = compact_weights(&from, &bytes, ease, opts)?;
            report.quantised += quantised;
            weights_checksum = Some(format!("{:016x}", fnv1a64(&b)));
            b
        } else {
            bytes
        };
        report.bytes_after += bytes.len() as u64;
        shortlist_core::atomic::write_file(&to, &bytes).map_err(|e| Error::io(&to, e))?;
    }
    // The manifest, with the new weights' checksum (read by loaders of unsealed
    // manifests only, kept true anyway), then sealed: sizes and SHA-256s of the new files.
    let mut manifest: serde_json::Value = serde_json::from_slice(files.manifest())
        .map_err(|e| Error::corrupt(src.join(MANIFEST), format!("invalid manifest: {e}")))?;
    if let (Some(sum), Some(obj)) = (weights_checksum, manifest.as_object_mut()) {
        if obj.contains_key("weights_checksum") {
            obj.insert("weights_checksum".into(), sum.into());
        }
    }
    let mpath = dst.join(MANIFEST);
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::invalid("manifest", e.to_string()))?;
    shortlist_core::atomic::write_file(&mpath, &text).map_err(|e| Error::io(&mpath, e))?;
    crate::files::seal(dst)?;
    report.bytes_before += files.manifest().len() as u64;
    report.bytes_after += std::fs::metadata(&mpath)
        .map_err(|e| Error::io(&mpath, e))?
        .len();
    report.models += 1;
    Ok(())
}

/// One tensor to write: name, dtype, shape, little-endian bytes.
type Encoded = (String, Dtype, Vec<usize>, Vec<u8>);

/// Re-encodes a weights file (see the module docs); returns the bytes and the
/// number of tensors quantised. Tensors already compact are copied unchanged.
fn compact_weights(
    path: &Path,
    bytes: &[u8],
    ease: bool,
    opts: &CompactOptions,
) -> Result<(Vec<u8>, usize)> {
    let st = crate::artifact::tensors(path, bytes)?;
    let mut out: Vec<Encoded> = Vec::new();
    let mut quantised = 0;
    let mut names = st.names();
    names.sort();
    for name in names {
        let t = st
            .tensor(name)
            .map_err(|e| Error::corrupt(path, format!("tensor {name}: {e}")))?;
        let shape = t.shape().to_vec();
        let data = t.data();
        if name.contains(':') {
            // A compact encoding's scales, columns or shape: kept as they are.
            out.push((name.to_string(), t.dtype(), shape, data.to_vec()));
            continue;
        }
        match t.dtype() {
            Dtype::F32 => {
                let v: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
                    return Err(Error::corrupt(
                        path,
                        format!("tensor {name} holds {bad}: only finite weights can be quantised"),
                    ));
                }
                let rows = match shape[..] {
                    [n] => Some((1, n)),
                    [r, c] => Some((r, c)),
                    _ => None,
                };
                match rows {
                    Some((r, c)) if ease && name == "weights" && shape.len() == 2 => {
                        out.extend(sparse_rows(name, &v, r, c, opts.ease_keep));
                        quantised += 1;
                    }
                    Some((r, _)) if v.len() >= opts.min_elements.max(1) => {
                        let (q, scale) = quantise_rows(&v, r);
                        out.push((name.to_string(), Dtype::I8, shape, i8_bytes(&q)));
                        out.push((scale_name(name), Dtype::F32, vec![r], f32_bytes(&scale)));
                        quantised += 1;
                    }
                    _ => out.push((name.to_string(), Dtype::F32, shape, data.to_vec())),
                }
            }
            Dtype::U32 => {
                let v: Vec<u32> = data
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if v.iter().all(|&x| x <= u32::from(u16::MAX)) {
                    let b = v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect();
                    out.push((name.to_string(), Dtype::U16, shape, b));
                } else {
                    out.push((name.to_string(), Dtype::U32, shape, data.to_vec()));
                }
            }
            dtype => out.push((name.to_string(), dtype, shape, data.to_vec())),
        }
    }
    let meta = HashMap::from([(
        METADATA_KEY.to_string(),
        format!(
            "int8 per row from {} values; EASE keeps {} per row",
            opts.min_elements, opts.ease_keep
        ),
    )]);
    let b = Tensors(out).serialize_with(path, Some(meta))?;
    Ok((b, quantised))
}

fn scale_name(name: &str) -> String {
    format!("{name}{SCALE}")
}

fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

/// The scale of values whose largest magnitude is `max` (0 for an all-zero row).
fn scale_of(max: f32) -> f32 {
    max / 127.0
}

fn quantise(x: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        0
    } else {
        (x / scale).round().clamp(-127.0, 127.0) as i8
    }
}

/// Symmetric per-row 8-bit quantisation of a `rows × (len / rows)` matrix: the
/// codes and one scale per row.
pub fn quantise_rows(v: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    if rows == 0 {
        return (Vec::new(), Vec::new());
    }
    let cols = v.len() / rows;
    let mut q = Vec::with_capacity(v.len());
    let mut scales = Vec::with_capacity(rows);
    for row in v.chunks(cols.max(1)).take(rows) {
        let scale = scale_of(row.iter().fold(0f32, |m, x| m.max(x.abs())));
        q.extend(row.iter().map(|&x| quantise(x, scale)));
        scales.push(scale);
    }
    (q, scales)
}

/// The sparse encoding of an `r × c` matrix keeping `keep` weights per row.
fn sparse_rows(name: &str, v: &[f32], r: usize, c: usize, keep: usize) -> Vec<Encoded> {
    let keep = keep.min(c);
    let wide = c > usize::from(u16::MAX) + 1;
    let (mut q, mut cols, mut scales) = (Vec::new(), Vec::new(), Vec::new());
    let mut order: Vec<usize> = Vec::with_capacity(c);
    for row in v.chunks(c.max(1)).take(r) {
        order.clear();
        order.extend(0..c);
        // Largest magnitudes first, the lower column on ties: deterministic.
        order.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()).then(a.cmp(&b)));
        let kept = &mut order[..keep];
        kept.sort_unstable();
        let scale = scale_of(kept.iter().fold(0f32, |m, &j| m.max(row[j].abs())));
        for &j in kept.iter() {
            q.push(quantise(row[j], scale));
            cols.push(j);
        }
        scales.push(scale);
    }
    let cols_bytes: Vec<u8> = if wide {
        cols.iter()
            .flat_map(|&j| (j as u32).to_le_bytes())
            .collect()
    } else {
        cols.iter()
            .flat_map(|&j| (j as u16).to_le_bytes())
            .collect()
    };
    let shape_bytes = [r as u32, c as u32]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    vec![
        (name.to_string(), Dtype::I8, vec![r, keep], i8_bytes(&q)),
        (
            format!("{name}{COLS}"),
            if wide { Dtype::U32 } else { Dtype::U16 },
            vec![r, keep],
            cols_bytes,
        ),
        (scale_name(name), Dtype::F32, vec![r], f32_bytes(&scales)),
        (format!("{name}{SHAPE}"), Dtype::U32, vec![2], shape_bytes),
    ]
}

/// The tensor `name` of a weights file as F32 values with its shape, whichever
/// encoding it has (F32, or a compact one: see the module docs). Errors name the
/// file and the tensor.
pub(crate) fn read_f32(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>)> {
    if let Some(sparse) = read_sparse(st, path, name)? {
        let dense = sparse.to_dense();
        return Ok((vec![sparse.rows, sparse.cols], dense));
    }
    let bad = |msg: String| Error::corrupt(path, format!("tensor {name}{msg}"));
    let t = st.tensor(name).map_err(|e| bad(format!(": {e}")))?;
    match t.dtype() {
        Dtype::F32 => Ok((
            t.shape().to_vec(),
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )),
        Dtype::I8 => {
            let (scale_shape, scales) = scales_of(st, path, name)?;
            let rows = match t.shape() {
                [_] => 1,
                [r, _] => *r,
                s => {
                    return Err(bad(format!(
                        " is {}-d; 8-bit tensors are 1-d or 2-d",
                        s.len()
                    )))
                }
            };
            if scale_shape.len() != 1 || scales.len() != rows {
                return Err(bad(format!(
                    "{SCALE} has {} values, expected {rows} (one per row)",
                    scales.len()
                )));
            }
            let cols = t.data().len().checked_div(rows).unwrap_or(0);
            let mut v = Vec::with_capacity(t.data().len());
            for (row, &s) in t.data().chunks(cols.max(1)).zip(&scales) {
                v.extend(row.iter().map(|&x| f32::from(x as i8) * s));
            }
            Ok((t.shape().to_vec(), v))
        }
        other => Err(bad(format!(
            " has dtype {other:?}, expected F32 (or I8 with {SCALE})"
        ))),
    }
}

/// The per-row scales of the 8-bit tensor `name` (`name:scale`) with their shape.
fn scales_of(st: &SafeTensors<'_>, path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    if st.tensor(&scale_name(name)).is_err() {
        return Err(Error::corrupt(
            path,
            format!("tensor {name} is 8-bit but has no {name}{SCALE}"),
        ));
    }
    read_f32(st, path, &scale_name(name))
}

/// A matrix of which only `keep` entries per row are stored (a compact EASE
/// matrix): row `i`'s columns are `col_index[i·keep..(i+1)·keep]`, increasing, with
/// the values at the same places; every other entry is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns of the dense matrix.
    pub cols: usize,
    /// Entries stored per row.
    pub keep: usize,
    /// Column of each stored entry, `rows × keep`.
    pub col_index: Vec<u32>,
    /// Value of each stored entry, `rows × keep`.
    pub values: Vec<f32>,
}

impl SparseRows {
    /// Row `i`'s columns and values (empty past the last row).
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let range = i * self.keep..(i + 1) * self.keep;
        match (self.col_index.get(range.clone()), self.values.get(range)) {
            (Some(c), Some(v)) => (c, v),
            _ => (&[], &[]),
        }
    }

    /// The dense `rows × cols` matrix, row-major.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut v = vec![0f32; self.rows * self.cols];
        for i in 0..self.rows {
            let (cols, vals) = self.row(i);
            for (&c, &x) in cols.iter().zip(vals) {
                v[i * self.cols + c as usize] = x;
            }
        }
        v
    }
}

/// The tensor `name` when it is stored sparse (`name:cols` beside 8-bit codes
/// `rows × keep`), checked: the columns of each row increasing and inside the dense
/// shape `name:shape`. `None` when the tensor is stored otherwise.
pub(crate) fn read_sparse(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
) -> Result<Option<SparseRows>> {
    let bad = |msg: String| Error::corrupt(path, format!("tensor {name}{msg}"));
    let Ok(t) = st.tensor(name) else {
        return Ok(None);
    };
    if t.dtype() != Dtype::I8 || st.tensor(&format!("{name}{COLS}")).is_err() {
        return Ok(None);
    }
    let (_, scales) = scales_of(st, path, name)?;
    let dense = read_u32(st, path, &format!("{name}{SHAPE}"))?;
    let [r, c] = dense[..] else {
        return Err(bad(format!(
            "{SHAPE} has {} values, expected 2 (rows, columns)",
            dense.len()
        )));
    };
    let (r, c) = (r as usize, c as usize);
    let keep = match t.shape() {
        [rows, keep] if *rows == r && *keep <= c => *keep,
        qshape => {
            return Err(bad(format!(
                " has shape {qshape:?}, expected [{r}, at most {c}]"
            )))
        }
    };
    let col_index = read_u32(st, path, &format!("{name}{COLS}"))?;
    if col_index.len() != r * keep {
        return Err(bad(format!(
            "{COLS} has {} values, expected {} ({r} rows of {keep})",
            col_index.len(),
            r * keep
        )));
    }
    if scales.len() != r {
        return Err(bad(format!(
            "{SCALE} has {} values, expected {r} (one per row)",
            scales.len()
        )));
    }
    r.checked_mul(c)
        .filter(|&n| n <= (1 << 31))
        .ok_or_else(|| bad(format!("{SHAPE} [{r}, {c}] is too large")))?;
    for (i, row) in col_index.chunks(keep.max(1)).enumerate() {
        let increasing = row.windows(2).all(|w| w[0] < w[1]);
        if !increasing || row.last().is_some_and(|&l| l as usize >= c) {
            return Err(bad(format!(
                "{COLS}: row {i}'s columns are not increasing and below {c}"
            )));
        }
    }
    let mut values = Vec::with_capacity(r * keep);
    for (row, &s) in t.data().chunks(keep.max(1)).zip(&scales) {
        values.extend(row.iter().map(|&x| f32::from(x as i8) * s));
    }
    Ok(Some(SparseRows {
        rows: r,
        cols: c,
        keep,
        col_index,
        values,
    }))
}

/// The tensor `name` as U32 values, stored as U32 or (compact) U16.
pub(crate) fn read_u32(st: &SafeTensors<'_>, path: &Path, name: &str) -> Result<Vec<u32>> {
    let t = st
        .tensor(name)
        .map_err(|e| Error::corrupt(path, format!("tensor {name}: {e}")))?;
    match t.dtype() {
        Dtype::U32 => Ok(t
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        Dtype::U16 => Ok(t
            .data()
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect()),
        other => Err(Error::corrupt(
            path,
            format!("tensor {name} has dtype {other:?}, expected U32 (or U16)"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// A weights file of `(name, dtype, shape, bytes)`.
    fn file(tensors: &[Encoded]) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn f32s(name: &str, shape: &[usize], v: &[f32]) -> Encoded {
        (name.into(), Dtype::F32, shape.to_vec(), f32_bytes(v))
    }

    fn u32s(name: &str, v: &[u32]) -> Encoded {
        let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        (name.into(), Dtype::U32, vec![v.len()], b)
    }

    fn opts(min_elements: usize, ease_keep: usize) -> CompactOptions {
        CompactOptions {
            ease_keep,
            min_elements,
        }
    }

    #[test]
    fn rows_are_quantised_symmetrically_with_one_scale_each() {
        let (q, s) = quantise_rows(&[1.0, -0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0], 2);
        // 1 / (1/127) = 127; -0.5 × 127 = -63.5 rounds away from 0; 0.25 × 127 = 31.75.
        assert_eq!(q, [127, -64, 32, 0, 0, 0, 0, 0]);
        assert_eq!(s, [1.0 / 127.0, 0.0]);
    }

    #[test]
    fn compact_weights_decode_to_the_quantised_values_and_ids_widen() {
        let path = Path::new("w.safetensors");
        let m = [1.0, -0.5, 0.25, 0.0, 2.0, 4.0, -8.0, 1.0];
        let bytes = file(&[
            f32s("m", &[2, 4], &m),
            f32s("bias", &[2], &[0.1, 0.2]),
            u32s("ids", &[0, 7, 65535]),
            u32s("big", &[65536]),
        ]);
        let (out, n) = compact_weights(path, &bytes, false, &opts(4, 64)).unwrap();
        assert_eq!(n, 1);
        let st = SafeTensors::deserialize(&out).unwrap();
        assert_eq!(st.tensor("m").unwrap().dtype(), Dtype::I8);
        assert_eq!(st.tensor("ids").unwrap().dtype(), Dtype::U16);
        assert_eq!(st.tensor("big").unwrap().dtype(), Dtype::U32);
        let (shape, v) = read_f32(&st, path, "m").unwrap();
        assert_eq!(shape, [2, 4]);
        // Row 2's scale is 8/127: 2 → 32 (31.75), 4 → 64 (63.5), -8 → -127, 1 → 16 (15.875).
        let s = 8.0 / 127.0;
        let want = [
            1.0,
            -64.0 / 127.0,
            32.0 / 127.0,
            0.0,
            32.0 * s,
            64.0 * s,
            -127.0 * s,
            16.0 * s,
        ];
        assert_eq!(v, want);
        assert_eq!(read_f32(&st, path, "bias").unwrap().1, [0.1, 0.2]);
        assert_eq!(read_u32(&st, path, "ids").unwrap(), [0, 7, 65535]);
        assert_eq!(read_u32(&st, path, "big").unwrap(), [65536]);
        // Compacting again changes nothing.
        let (again, _) = compact_weights(path, &out, false, &opts(4, 64)).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn ease_weights_keep_the_largest_per_row() {
        let path = Path::new("w.safetensors");
        #[rustfmt::skip]
        let w = [
            0.0, 0.1, -0.9, 0.5,
            0.3, 0.0, 0.3, 0.2,
            0.0, 0.0, 0.0, 0.0,
        ];
        let bytes = file(&[f32s("weights", &[3, 4], &w)]);
        let (out, _) = compact_weights(path, &bytes, true, &opts(4096, 2)).unwrap();
        let st = SafeTensors::deserialize(&out).unwrap();
        assert_eq!(
            read_u32(&st, path, "weights:cols").unwrap(),
            [2, 3, 0, 2, 0, 1]
        );
        let (shape, v) = read_f32(&st, path, "weights").unwrap();
        assert_eq!(shape, [3, 4]);
        // Row 0 keeps -0.9 (-127 × 0.9/127) and 0.5 (71 × 0.9/127, 70.56 rounded);
        // row 1 the two 0.3s (ties: lower columns); row 2 is all zero.
        let (s0, s1) = (0.9f32 / 127.0, 0.3f32 / 127.0);
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, -127.0 * s0, 71.0 * s0,
            127.0 * s1, 0.0, 127.0 * s1, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(v, want);
        assert_eq!(
            compact_weights(path, &out, true, &opts(4096, 2)).unwrap().0,
            out
        );
    }

    #[test]
    fn malformed_compact_tensors_are_errors_naming_the_tensor() {
        let path = Path::new("w.safetensors");
        let err = |tensors: &[Encoded], name: &str| {
            let bytes = file(tensors);
            let st = SafeTensors::deserialize(&bytes).unwrap();
            read_f32(&st, path, name).unwrap_err().to_string()
        };
        let q = |name: &str, shape: &[usize], v: &[i8]| -> Encoded {
            (name.into(), Dtype::I8, shape.to_vec(), i8_bytes(v))
        };
        assert_eq!(
            err(
                &[
                    q("m", &[2, 2], &[1, 2, 3, 4]),
                    f32s("m:scale", &[1], &[1.0])
                ],
                "m"
            ),
            "w.safetensors: tensor m:scale has 1 values, expected 2 (one per row)"
        );
        assert_eq!(
            err(&[q("m", &[2, 2], &[1, 2, 3, 4])], "m"),
            "w.safetensors: tensor m is 8-bit but has no m:scale"
        );
        let sparse = |cols: &[u32]| -> Vec<Encoded> {
            vec![
                q("w", &[2, 2], &[1, 2, 3, 4]),
                f32s("w:scale", &[2], &[1.0, 1.0]),
                u32s("w:cols", cols),
                u32s("w:shape", &[2, 3]),
            ]
        };
        assert_eq!(
            read_sparse_ok(&sparse(&[0, 2, 1, 2])),
            [1.0, 0.0, 2.0, 0.0, 3.0, 4.0]
        );
        assert_eq!(
            err(&sparse(&[0, 2, 2, 1]), "w"),
            "w.safetensors: tensor w:cols: row 1's columns are not increasing and below 3"
        );
        assert_eq!(
            err(&sparse(&[0, 3, 0, 1]), "w"),
            "w.safetensors: tensor w:cols: row 0's columns are not increasing and below 3"
        );
        assert_eq!(
            err(&sparse(&[0, 1]), "w"),
            "w.safetensors: tensor w:cols has 2 values, expected 4 (2 rows of 2)"
        );
        assert_eq!(
            err(&[("x".into(), Dtype::U8, vec![1], vec![0])], "x"),
            "w.safetensors: tensor x has dtype U8, expected F32 (or I8 with :scale)"
        );
    }

    fn read_sparse_ok(tensors: &[Encoded]) -> Vec<f32> {
        let bytes = file(tensors);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        read_f32(&st, Path::new("w"), "w").unwrap().1
    }
}
