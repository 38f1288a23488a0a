//! Model artifacts: a directory holding `manifest.json` (kind, format version,
//! hyper-parameters, metrics, data fingerprint, tensor layout, weights checksum,
//! and the size and SHA-256 of every file — see [`crate::files`]),
//! `weights.safetensors` and `features.json` (the [`FeatureSpec`]). Saving builds the
//! directory under a temporary name, seals it and renames it into place.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use shortlist_core::atomic::{write_file, AtomicDir};
use shortlist_core::hash::fnv1a64;
use shortlist_features::FeatureSpec;

use crate::autorec::AutoRec;
use crate::cross::CrossNet;
use crate::dense::{Activation, Dense, Mlp};
use crate::embedding::EmbeddingTable;
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::implicit::{EaseModel, IalsModel};
use crate::neighbours::ItemNeighbours;
use crate::ranking::{InputFeature, Lookup, ModelMeta, RankingConfig, RankingModel, Side};
use crate::relevance::{RelevanceHead, RelevanceWeights};

/// Version of the artifact layout; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
/// Model kind written in ranking manifests.
pub const RANKING_KIND: &str = "ranking";
/// Manifest file name.
pub const MANIFEST: &str = crate::files::MANIFEST;
/// Weights file name.
pub const WEIGHTS: &str = "weights.safetensors";
/// Feature spec file name.
pub const FEATURES: &str = "features.json";

/// How an input feature is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureKind {
    /// [`Lookup::Id`].
    Id,
    /// [`Lookup::Index`].
    Index,
    /// [`Lookup::Bag`].
    Bag,
    /// [`Lookup::Dense`].
    Dense,
}

/// One input feature in the manifest (tensors `feature.{k}.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureEntry {
    /// Feature name.
    pub name: String,
    /// Whose feature.
    pub side: Side,
    /// Storage kind.
    pub kind: FeatureKind,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model kind (`ranking`).
    pub kind: String,
    /// [`FORMAT_VERSION`] at save time.
    pub format_version: u32,
    /// Crate version that wrote it.
    pub written_by: String,
    /// Architecture.
    pub config: RankingConfig,
    /// Input features in MLP order.
    pub features: Vec<FeatureEntry>,
    /// Activations of the MLP layers.
    pub activations: Vec<Activation>,
    /// Training facts.
    pub meta: ModelMeta,
    /// FNV-1a 64 of the weights file (hex).
    pub weights_checksum: String,
    /// Number of ensemble members saved in `member-{k}/` sub-directories (same layout).
    #[serde(default)]
    pub members: usize,
    /// The relevance head's features and weights; its EASE / iALS models are saved in
    /// `relevance-ease/` and `relevance-ials/`. Absent: a rating-only model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevance: Option<RelevanceWeights>,
}

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) struct Tensors(pub(crate) Vec<(String, Dtype, Vec<usize>, Vec<u8>)>);

impl Tensors {
    pub(crate) fn f32(&mut self, name: String, shape: Vec<usize>, v: &[f32]) {
        self.0.push((name, Dtype::F32, shape, f32_bytes(v)));
    }
    /// The tensors as safetensors bytes (`path` names the file in errors).
    pub(crate) fn serialize(&self, path: &Path) -> Result<Vec<u8>> {
        self.serialize_with(path, None)
    }

    /// [`Tensors::serialize`] with the file's metadata (string pairs).
    pub(crate) fn serialize_with(
        &self,
        path: &Path,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Vec<u8>> {
        let views = self
            .0
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::invalid(name.clone(), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, metadata).map_err(|e| Error::corrupt(path, e.to_string()))
    }

    pub(crate) fn u32(&mut self, name: String, v: &[u32]) {
        self.0.push((name, Dtype::U32, vec![v.len()], u32_bytes(v)));
    }
}

impl RankingModel {
    /// Saves the model into directory `dir` (replaced atomically if it exists).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut t = Tensors(Vec::new());
        let entries = put_features(&mut t, "feature", &self.features);
        for (name, b) in [
            ("user_bias", &self.user_bias),
            ("item_bias", &self.item_bias),
        ] {
            if let Some(b) = b {
                t.f32(name.into(), vec![b.rows()], b.data());
            }
        }
        for (l, layer) in self.cross.layers.iter().enumerate() {
            t.f32(
                format!("cross.{l}.weight"),
                vec![layer.input, layer.output],
                &layer.weight,
            );
            t.f32(format!("cross.{l}.bias"), vec![layer.output], &layer.bias);
        }
        for (l, layer) in self.mlp.layers.iter().enumerate() {
            t.f32(
                format!("mlp.{l}.weight"),
                vec![layer.input, layer.output],
                &layer.weight,
            );
            t.f32(format!("mlp.{l}.bias"), vec![layer.output], &layer.bias);
        }
        if let Some(a) = &self.autorec {
            let (h, nu, ni) = (a.config.hidden, a.user_bias.len(), a.item_known.len());
            t.f32("autorec.item_code".into(), vec![ni, h], &a.item_code);
            t.f32("autorec.user_decoder".into(), vec![nu, h], &a.user_decoder);
            t.f32("autorec.user_bias".into(), vec![nu], &a.user_bias);
            t.u32("autorec.user_known".into(), &a.user_known);
            t.u32("autorec.item_known".into(), &a.item_known);
        }
        if let Some(r) = &self.relevance {
            t.u32("relevance.popularity".into(), &r.popularity);
            if let Some(n) = &r.neighbours {
                t.u32("relevance.neighbours.offsets".into(), &n.offsets);
                t.u32("relevance.neighbours.items".into(), &n.items);
                t.f32(
                    "relevance.neighbours.sims".into(),
                    vec![n.sims.len()],
                    &n.sims,
                );
            }
        }
        let weights = t.serialize(&dir.join(WEIGHTS))?;
        let manifest = Manifest {
            kind: RANKING_KIND.into(),
            format_version: FORMAT_VERSION,
            written_by: format!("shortlist-model {}", env!("CARGO_PKG_VERSION")),
            config: self.config.clone(),
            features: entries,
            activations: self.mlp.layers.iter().map(|l| l.activation).collect(),
            meta: self.meta.clone(),
            weights_checksum: format!("{:016x}", fnv1a64(&weights)),
            members: self.members.len(),
            relevance: self.relevance.as_ref().map(|r| r.weights.clone()),
        };
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| Error::invalid("manifest", e.to_string()))?;
        let staging = AtomicDir::new(dir).map_err(|e| Error::io(dir, e))?;
        let p = staging.path();
        write_file(&p.join(WEIGHTS), &weights).map_err(|e| Error::io(dir.join(WEIGHTS), e))?;
        write_file(&p.join(FEATURES), self.spec.to_json().as_bytes())
            .map_err(|e| Error::io(dir.join(FEATURES), e))?;
        write_file(&p.join(MANIFEST), json.as_bytes())
            .map_err(|e| Error::io(dir.join(MANIFEST), e))?;
        for (k, m) in self.members.iter().enumerate() {
            m.save(&p.join(format!("member-{k}")))?;
        }
        if let Some(r) = &self.relevance {
            if let Some(m) = &r.ease {
                m.save(&p.join(RELEVANCE_EASE), &[])?;
            }
            if let Some(m) = &r.ials {
                m.save(&p.join(RELEVANCE_IALS), &[])?;
            }
        }
        crate::files::seal(p)?;
        staging.commit().map_err(|e| Error::io(dir, e))?;
        Ok(())
    }

    /// Loads a model saved by [`RankingModel::save`], every file verified (see
    /// [`crate::files`]). Errors name the offending file.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_from(&ModelFiles::open(dir)?)
    }

    /// Loads a model from opened model files (a directory, or one held in memory),
    /// every file verified.
    pub fn load_from(files: &ModelFiles) -> Result<Self> {
        let model = Self::load_files(files)?;
        files.verify_unread()?;
        Ok(model)
    }

    fn load_files(files: &ModelFiles) -> Result<Self> {
        let dir = files.dir();
        let (mpath, manifest): (_, Manifest) = parse_manifest(files)?;
        check_manifest(
            &mpath,
            &manifest.kind,
            RANKING_KIND,
            manifest.format_version,
        )?;
        let spec = read_spec(files)?;
        let (wpath, bytes) = read_weights(files, &manifest.weights_checksum)?;
        let st = tensors(&wpath, &bytes)?;
        let r = Reader::new(&st, &wpath);
        let features = get_features(&r, "feature", &manifest.features)?;
        let bias = |name: &str| -> Result<Option<EmbeddingTable>> {
            if !manifest.config.biases {
                return Ok(None);
            }
            let (_, v) = r.f32(name)?;
            Ok(Some(EmbeddingTable::new(v.len(), 1, v)?))
        };
        let (user_bias, item_bias) = (bias("user_bias")?, bias("item_bias")?);
        let mut layers = Vec::new();
        for (l, &activation) in manifest.activations.iter().enumerate() {
            let (shape, weight) = r.f32(&format!("mlp.{l}.weight"))?;
            let (_, b) = r.f32(&format!("mlp.{l}.bias"))?;
            if shape.len() != 2 {
                return Err(Error::corrupt(&wpath, format!("mlp.{l}.weight is not 2-d")));
            }
            layers.push(
                Dense::new(shape[0], shape[1], weight, b, activation)
                    .map_err(|e| Error::corrupt(&wpath, e.to_string()))?,
            );
        }
        // Cross layers (absent from models written before they existed: 0 layers).
        let mut cross = CrossNet::default();
        for l in 0..manifest.config.cross_layers {
            let (shape, weight) = r.f32(&format!("cross.{l}.weight"))?;
            let (_, b) = r.f32(&format!("cross.{l}.bias"))?;
            if shape.len() != 2 {
                return Err(Error::corrupt(
                    &wpath,
                    format!("cross.{l}.weight is not 2-d"),
                ));
            }
            cross.layers.push(
                Dense::new(shape[0], shape[1], weight, b, Activation::Linear)
                    .map_err(|e| Error::corrupt(&wpath, e.to_string()))?,
            );
        }
        let autorec = match manifest.config.autorec {
            None => None,
            Some(config) => Some(AutoRec {
                config,
                item_code: r.f32("autorec.item_code")?.1,
                user_decoder: r.f32("autorec.user_decoder")?.1,
                user_bias: r.f32("autorec.user_bias")?.1,
                user_known: r.u32("autorec.user_known")?,
                item_known: r.u32("autorec.item_known")?,
            }),
        };
        let relevance_popularity = match manifest.relevance {
            Some(_) => Some(r.u32("relevance.popularity")?),
            None => None,
        };
        let neighbours = match &manifest.relevance {
            Some(w) if w.features.contains(&crate::ListFeature::Cosine) => Some(ItemNeighbours {
                offsets: r.u32("relevance.neighbours.offsets")?,
                items: r.u32("relevance.neighbours.items")?,
                sims: r.f32("relevance.neighbours.sims")?.1,
            }),
            _ => None,
        };
        let model = RankingModel {
            config: manifest.config,
            spec,
            features,
            user_bias,
            item_bias,
            cross,
            mlp: Mlp { layers },
            meta: manifest.meta,
            members: Vec::new(),
            autorec,
            relevance: None,
            cache: None,
        };

        model
            .check()
            .map_err(|e| Error::corrupt(&wpath, format!("inconsistent with the manifest: {e}")))?;
        let mut model = model;
        for k in 0..manifest.members {
            let m = Self::load_from(&files.sub(&format!("member-{k}"))?)?;
            if m.num_users() != model.num_users() || m.num_items() != model.num_items() {
                return Err(Error::corrupt(
                    dir.join(format!("member-{k}")),
                    "ensemble member with other vocabularies",
                ));
            }
            model.members.push(m);
        }
        if let Some(weights) = manifest.relevance {
            let ease = weights
                .features
                .contains(&crate::ListFeature::Ease)
                .then(|| EaseModel::load_from(&files.sub(RELEVANCE_EASE)?))
                .transpose()?;
            let ials = weights
                .features
                .contains(&crate::ListFeature::Ials)
                .then(|| IalsModel::load_from(&files.sub(RELEVANCE_IALS)?))
                .transpose()?;
            let head = RelevanceHead {
                weights,
                ease,
                ials,
                popularity: relevance_popularity.unwrap_or_default(),
                neighbours,
            };
            for (name, spec) in [
                (RELEVANCE_EASE, head.ease.as_ref().map(|m| &m.spec)),
                (RELEVANCE_IALS, head.ials.as_ref().map(|m| &m.spec)),
            ] {
                if let Some(spec) = spec {
                    if spec.user_id != model.spec.user_id || spec.item_id != model.spec.item_id {
                        return Err(Error::corrupt(
                            dir.join(name),
                            "the relevance model's vocabularies differ from the ranking model's",
                        ));
                    }
                }
            }
            head.check(model.num_users(), model.num_items())
                .map_err(|e| Error::corrupt(&mpath, e.to_string()))?;
            model.relevance = Some(head);
        }
        // Each member prepared its own cache in its `load_from`.
        model.prepare_own_scoring();
        Ok(model)
    }
}

/// Sub-directory of a ranking model holding its relevance head's EASE model.
pub const RELEVANCE_EASE: &str = "relevance-ease";
/// Sub-directory of a ranking model holding its relevance head's iALS model.
pub const RELEVANCE_IALS: &str = "relevance-ials";

/// Adds the tensors of `features` under `{prefix}.{k}.*` and returns their manifest entries.
pub(crate) fn put_features(
    t: &mut Tensors,
    prefix: &str,
    features: &[InputFeature],
) -> Vec<FeatureEntry> {
    let mut entries = Vec::new();
    for (k, f) in features.iter().enumerate() {
        if let Some(tab) = &f.table {
            t.f32(
                format!("{prefix}.{k}.table"),
                vec![tab.rows(), tab.dim()],
                tab.data(),
            );
        }
        let kind = match &f.lookup {
            Lookup::Id => FeatureKind::Id,
            Lookup::Index(v) => {
                t.u32(format!("{prefix}.{k}.values"), v);
                FeatureKind::Index
            }
            Lookup::Bag { offsets, ids } => {
                t.u32(format!("{prefix}.{k}.offsets"), offsets);
                t.u32(format!("{prefix}.{k}.ids"), ids);
                FeatureKind::Bag
            }
            Lookup::Dense(v) => {
                t.f32(format!("{prefix}.{k}.values"), vec![v.len()], v);
                FeatureKind::Dense
            }
        };
        entries.push(FeatureEntry {
            name: f.name.clone(),
            side: f.side,
            kind,
        });
    }
    entries
}

/// Reads the features written by [`put_features`]. A dense feature has a table only
/// when one was saved (retrieval towers scale a vector; the ranking MLP takes the value).
pub(crate) fn get_features(
    r: &Reader<'_, '_>,
    prefix: &str,
    entries: &[FeatureEntry],
) -> Result<Vec<InputFeature>> {
    entries
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let name = format!("{prefix}.{k}.table");
            let table = match e.kind {
                FeatureKind::Dense if r.st.tensor(&name).is_err() => None,
                _ => Some(r.table(&name)?),
            };
            let lookup = match e.kind {
                FeatureKind::Id => Lookup::Id,
                FeatureKind::Index => Lookup::Index(r.u32(&format!("{prefix}.{k}.values"))?),
                FeatureKind::Bag => Lookup::Bag {
                    offsets: r.u32(&format!("{prefix}.{k}.offsets"))?,
                    ids: r.u32(&format!("{prefix}.{k}.ids"))?,
                },
                FeatureKind::Dense => Lookup::Dense(r.f32(&format!("{prefix}.{k}.values"))?.1),
            };
            Ok(InputFeature {
                name: e.name.clone(),
                side: e.side,
                lookup,
                table,
            })
        })
        .collect()
}

/// Parses the manifest of `files`; returns its path too (for later messages).
pub(crate) fn parse_manifest<M: serde::de::DeserializeOwned>(
    files: &ModelFiles,
) -> Result<(std::path::PathBuf, M)> {
    let mpath = files.path(MANIFEST);
    let manifest = serde_json::from_slice(files.manifest())
        .map_err(|e| Error::corrupt(&mpath, format!("invalid manifest: {e}")))?;
    Ok((mpath, manifest))
}

/// Reads and parses the verified `features.json` of `files`.
pub(crate) fn read_spec(files: &ModelFiles) -> Result<FeatureSpec> {
    let path = files.path(FEATURES);
    files.parsed_spec(files.read(FEATURES)?, |bytes| {
        let text =
            std::str::from_utf8(bytes).map_err(|_| Error::corrupt(&path, "not UTF-8 text"))?;
        Ok(FeatureSpec::from_json(text, &path)?)
    })
}

/// Checks a manifest's model kind and format version (errors name the manifest).
pub(crate) fn check_manifest(mpath: &Path, kind: &str, expected: &str, version: u32) -> Result<()> {
    if kind != expected {
        return Err(Error::corrupt(
            mpath,
            format!("model kind {kind:?}, expected {expected:?}"),
        ));
    }
    if version != FORMAT_VERSION {
        return Err(Error::corrupt(
            mpath,
            format!("format version {version}, this build reads {FORMAT_VERSION}"),
        ));
    }
    Ok(())
}

/// Reads the weights file of `files`, checked against the file list of a sealed
/// manifest, or against the manifest's weights checksum for an older one.
pub(crate) fn read_weights(
    files: &ModelFiles,
    checksum: &str,
) -> Result<(std::path::PathBuf, Vec<u8>)> {
    let wpath = files.path(WEIGHTS);
    if !files.is_sealed() {
        // No listed size: check the size the file's own header implies first.
        check_safetensors_len(&wpath)?;
    }
    let bytes = files.read(WEIGHTS)?;
    if files.is_sealed() {
        return Ok((wpath, bytes));
    }
    let sum = format!("{:016x}", fnv1a64(&bytes));
    if sum != checksum {
        return Err(Error::corrupt(
            &wpath,
            format!("checksum {sum} differs from the manifest's {checksum} (truncated or corrupt weights)"),
        ));
    }
    Ok((wpath, bytes))
}

/// Checks that a safetensors file is exactly as long as its header says (8 bytes
/// of header length, the JSON header, the tensors' data), reading the header only:
/// a sparse, padded or truncated file is refused before it is read whole.
fn check_safetensors_len(path: &Path) -> Result<()> {
    use std::io::Read;
    let (mut f, len) =
        shortlist_core::input::open_regular(path, shortlist_core::input::max_input_bytes())
            .map_err(|e| Error::io(path, e))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| Error::io(path, e))?;
    let header_len = u64::from_le_bytes(n);
    if header_len > (100 << 20) || header_len.saturating_add(8) > len {
        return Err(Error::corrupt(
            path,
            format!("invalid safetensors header length {header_len} in a {len}-byte file"),
        ));
    }
    let mut header = vec![0; header_len as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| Error::corrupt(path, format!("invalid safetensors header: {e}")))?;
    let data_end = v
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = 8 + header_len + data_end;
    if expected != len {
        return Err(Error::corrupt(
            path,
            format!("is {len} bytes, its safetensors header describes {expected} (padded, sparse or truncated)"),
        ));
    }
    Ok(())
}

/// The tensors of a weights file read by [`read_weights`] (an error names the file).
pub(crate) fn tensors<'d>(path: &Path, bytes: &'d [u8]) -> Result<SafeTensors<'d>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| Error::corrupt(path, format!("invalid safetensors: {e}")))
}

/// Typed access to the tensors of a weights file; errors name the file.
pub(crate) struct Reader<'a, 'd> {
    pub(crate) st: &'a SafeTensors<'d>,
    pub(crate) path: &'a Path,
}

impl<'a, 'd> Reader<'a, 'd> {
    pub(crate) fn new(st: &'a SafeTensors<'d>, path: &'a Path) -> Self {
        Reader { st, path }
    }
}

impl Reader<'_, '_> {
    /// A float tensor with its shape, F32 or compact ([`crate::compact`]).
    pub(crate) fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        crate::compact::read_f32(self.st, self.path, name)
    }

    /// An id tensor, U32 or compact U16 ([`crate::compact`]).
    pub(crate) fn u32(&self, name: &str) -> Result<Vec<u32>> {
        crate::compact::read_u32(self.st, self.path, name)
    }

    pub(crate) fn table(&self, name: &str) -> Result<EmbeddingTable> {
        let (shape, v) = self.f32(name)?;
        match shape[..] {
            [rows, dim] => EmbeddingTable::new(rows, dim, v)
                .map_err(|e| Error::corrupt(self.path, format!("tensor {name}: {e}"))),
            _ => Err(Error::corrupt(
                self.path,
                format!("tensor {name} is not 2-d"),
            )),
        }
    }
}
