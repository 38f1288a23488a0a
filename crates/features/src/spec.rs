//! The fitted feature spec: everything preprocessing learned from the training split,
//! serialised as JSON and loaded unchanged by serving.

use std::path::Path;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use shortlist_core::dataset::{ColumnValues, Dataset, FeatureTable, IdMap};

use crate::error::{Error, Result};
use crate::normalize::{Bucketizer, Normalizer};
use crate::text::Tokenizer;
use crate::vocab::{VocabConfig, Vocabulary};

/// Version of the JSON layout; bumped on incompatible changes.
pub const SPEC_VERSION: u32 = 1;

/// What to fit (a section of training configs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// User and item id vocabularies.
    pub ids: VocabConfig,
    /// User side features to use, by column name (`["*"]`: all).
    pub user_features: Vec<String>,
    /// Item side features to use, by column name (`["*"]`: all).
    pub item_features: Vec<String>,
    /// Vocabularies of categorical, multi-categorical and text features.
    pub categorical: VocabConfig,
    /// Tokenizer of text features.
    pub text: Tokenizer,
    /// Fit a normaliser on interaction timestamps.
    pub timestamp: bool,
    /// Quantile buckets for timestamps (0: none).
    pub timestamp_buckets: usize,
    /// Quantile buckets for numeric side features, in addition to the normalised value (0: none).
    pub numeric_buckets: usize,
}

/// How one side feature is turned into model inputs.
///
/// Written as an object tagged by `"type"`; read through `TransformFields` rather
/// than serde's internally tagged enum, which buffers every value of the object
/// (vocabularies of thousands of strings) before reading it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", try_from = "TransformFields")]
pub enum Transform {
    /// One value → one vocabulary index.
    Categorical {
        /// The fitted vocabulary.
        vocab: Vocabulary,
    },
    /// Several values → a bag of indices (pooled by the model).
    MultiCategorical {
        /// The fitted vocabulary.
        vocab: Vocabulary,
    },
    /// A number → its z-score (and optionally a bucket index).
    Numeric {
        /// The fitted normaliser.
        normalizer: Normalizer,
        /// The fitted buckets, when configured.
        buckets: Option<Bucketizer>,
    },
    /// Text → a bag of token indices.
    Text {
        /// The tokenizer.
        tokenizer: Tokenizer,
        /// The token vocabulary.
        vocab: Vocabulary,
    },
}

/// The kinds of [`Transform`], as its `"type"` names them.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum TransformKind {
    Categorical,
    MultiCategorical,
    Numeric,
    Text,
}

/// Every field a [`Transform`] object may have, read in one pass.
#[derive(Deserialize)]
struct TransformFields {
    #[serde(rename = "type")]
    kind: TransformKind,
    vocab: Option<Vocabulary>,
    normalizer: Option<Normalizer>,
    buckets: Option<Bucketizer>,
    tokenizer: Option<Tokenizer>,
}

impl TryFrom<TransformFields> for Transform {
    type Error = String;

    fn try_from(f: TransformFields) -> std::result::Result<Self, String> {
        let missing = |name: &str| format!("missing field `{name}`");
        Ok(match f.kind {
            TransformKind::Categorical => Transform::Categorical {
                vocab: f.vocab.ok_or_else(|| missing("vocab"))?,
            },
            TransformKind::MultiCategorical => Transform::MultiCategorical {
                vocab: f.vocab.ok_or_else(|| missing("vocab"))?,
            },
            TransformKind::Numeric => Transform::Numeric {
                normalizer: f.normalizer.ok_or_else(|| missing("normalizer"))?,
                buckets: f.buckets,
            },
            TransformKind::Text => Transform::Text {
                tokenizer: f.tokenizer.ok_or_else(|| missing("tokenizer"))?,
                vocab: f.vocab.ok_or_else(|| missing("vocab"))?,
            },
        })
    }
}

/// One fitted side feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedFeature {
    /// Column name in the dataset.
    pub name: String,
    /// The fitted transform.
    pub transform: Transform,
}

/// Fitted timestamp preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimestampFeature {
    /// Z-score of the Unix time.
    pub normalizer: Normalizer,
    /// Quantile buckets, when configured.
    pub buckets: Option<Bucketizer>,
}

/// Everything fitted on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// JSON layout version ([`SPEC_VERSION`]).
    pub format_version: u32,
    /// User ids.
    pub user_id: Vocabulary,
    /// Item ids.
    pub item_id: Vocabulary,
    /// User side features.
    pub user_features: Vec<FittedFeature>,
    /// Item side features.
    pub item_features: Vec<FittedFeature>,
    /// Timestamp preprocessing.
    pub timestamp: Option<TimestampFeature>,
}

fn select<'a>(
    table: &'a FeatureTable,
    wanted: &[String],
    entity: &str,
) -> Result<Vec<&'a shortlist_core::Column>> {
    if wanted.iter().any(|w| w == "*") {
        return Ok(table.columns.iter().collect());
    }
    wanted
        .iter()
        .map(|w| {
            table.get(w).ok_or_else(|| Error::UnknownFeature {
                entity: entity.into(),
                name: w.clone(),
                available: if table.columns.is_empty() {
                    "no such features".into()
                } else {
                    format!(
                        "these: {}",
                        table
                            .columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            })
        })
        .collect()
}

fn id_vocab(ids: &IdMap, in_train: &[u64], cfg: &VocabConfig) -> Vocabulary {
    Vocabulary::from_counts(
        ids.raw_ids()
            .iter()
            .zip(in_train)
            .filter(|(_, &c)| c > 0)
            .map(|(r, &c)| (r.as_str(), c)),
        cfg,
    )
}

fn fit_column(
    col: &shortlist_core::Column,
    in_train: &[u64],
    cfg: &FeatureConfig,
) -> FittedFeature {
    let rows = || (0..col.values.len()).filter(|&r| in_train.get(r).is_some_and(|&c| c > 0));
    let transform = match &col.values {
        ColumnValues::Categorical(v) => Transform::Categorical {
            vocab: Vocabulary::fit(rows().map(|r| v[r].as_str()), &cfg.categorical),
        },
        ColumnValues::MultiCategorical(v) => Transform::MultiCategorical {
            vocab: Vocabulary::fit(
                rows().flat_map(|r| v[r].iter().map(String::as_str)),
                &cfg.categorical,
            ),
        },
        ColumnValues::Numeric(v) => Transform::Numeric {
            normalizer: Normalizer::fit(rows().map(|r| v[r])),
            buckets: (cfg.numeric_buckets > 0)
                .then(|| Bucketizer::fit(rows().map(|r| v[r]), cfg.numeric_buckets)),
        },
        ColumnValues::Text(v) => {
            let tokens: Vec<Vec<String>> = rows().map(|r| cfg.text.tokenize(&v[r])).collect();
            Transform::Text {
                tokenizer: cfg.text,
                vocab: Vocabulary::fit(
                    tokens.iter().flatten().map(String::as_str),
                    &cfg.categorical,
                ),
            }
        }
    };
    FittedFeature {
        name: col.name.clone(),
        transform,
    }
}

impl FeatureSpec {
    /// Fits ids, side features and timestamps on the rows `train` of `dataset`'s
    /// interactions. Ids and feature values of users and items absent from training
    /// stay out of the vocabularies (they map to OOV slots).
    pub fn fit(dataset: &Dataset, train: &[usize], cfg: &FeatureConfig) -> Result<FeatureSpec> {
        cfg.ids.validate("features.ids.")?;
        cfg.categorical.validate("features.categorical.")?;
        let inter = &dataset.interactions;
        let mut user_counts = vec![0u64; dataset.users.len()];
        let mut item_counts = vec![0u64; dataset.items.len()];
        for &r in train {
            user_counts[inter.users[r] as usize] += 1;
            item_counts[inter.items[r] as usize] += 1;
        }
        let user_cols = select(&dataset.user_features, &cfg.user_features, "user")?;
        let item_cols = select(&dataset.item_features, &cfg.item_features, "item")?;
        let timestamp = match (&inter.timestamps, cfg.timestamp) {
            (Some(ts), true) => {
                let values = || train.iter().map(|&r| ts[r] as f64);
                Some(TimestampFeature {
                    normalizer: Normalizer::fit(values()),
                    buckets: (cfg.timestamp_buckets > 0)
                        .then(|| Bucketizer::fit(values(), cfg.timestamp_buckets)),
                })
            }
            (None, true) => {
                return Err(Error::InvalidParameter {
                    parameter: "features.timestamp".into(),
                    message: "the dataset has no timestamps".into(),
                })
            }
            _ => None,
        };
        Ok(FeatureSpec {
            format_version: SPEC_VERSION,
            user_id: id_vocab(&dataset.users, &user_counts, &cfg.ids),
            item_id: id_vocab(&dataset.items, &item_counts, &cfg.ids),
            user_features: user_cols
                .iter()
                .map(|c| fit_column(c, &user_counts, cfg))
                .collect(),
            item_features: item_cols
                .iter()
                .map(|c| fit_column(c, &item_counts, cfg))
                .collect(),
            timestamp,
        })
    }

    /// Adds to the item vocabulary, after its fitted rows, every item of `dataset` that
    /// has no row yet but a value in one of the fitted item features: catalogue items
    /// without training interactions (products launched after training), which a model
    /// can then describe by their features alone. Returns how many were added; the
    /// fitted rows keep their indices.
    pub fn add_featured_items(&mut self, dataset: &Dataset) -> usize {
        let columns: Vec<&ColumnValues> = self
            .item_features
            .iter()
            .filter_map(|f| dataset.item_features.get(&f.name).map(|c| &c.values))
            .collect();
        let has_value = |i: usize| {
            columns.iter().any(|c| match c {
                ColumnValues::Categorical(v) | ColumnValues::Text(v) => {
                    v.get(i).is_some_and(|x| !x.is_empty())
                }
                ColumnValues::MultiCategorical(v) => v.get(i).is_some_and(|x| !x.is_empty()),
                ColumnValues::Numeric(v) => v.get(i).is_some_and(|x| x.is_finite()),
            })
        };
        let added: Vec<String> = dataset
            .items
            .raw_ids()
            .iter()
            .enumerate()
            .filter(|(i, raw)| self.item_id.get(raw).is_none() && has_value(*i))
            .map(|(_, raw)| raw.clone())
            .collect();
        if added.is_empty() {
            return 0;
        }
        let n = added.len();
        let mut values = self.item_id.values().to_vec();
        values.extend(added);
        self.item_id = Vocabulary::from_values(values, self.item_id.num_oov());
        n
    }

    /// The spec as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data structures cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a spec (`path` is for messages).
    pub fn from_json(text: &str, path: &Path) -> Result<FeatureSpec> {
        let spec: FeatureSpec = serde_json::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if spec.format_version != SPEC_VERSION {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "format_version {} is not supported (this build reads {SPEC_VERSION})",
                    spec.format_version
                ),
            });
        }
        Ok(spec)
    }

    /// Writes the spec atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(shortlist_core::atomic::write_file(
            path,
            self.to_json().as_bytes(),
        )?)
    }

    /// Reads a spec file.
    pub fn load(path: &Path) -> Result<FeatureSpec> {
        let text = shortlist_core::input::read_text(path)?;
        Self::from_json(&text, path)
    }

    /// Encodes `dataset`'s user features by user vocabulary index.
    pub fn encode_users(&self, dataset: &Dataset) -> EncodedTable {
        encode(
            &self.user_id,
            &dataset.users,
            &dataset.user_features,
            &self.user_features,
        )
    }

    /// Encodes `dataset`'s item features by item vocabulary index.
    pub fn encode_items(&self, dataset: &Dataset) -> EncodedTable {
        encode(
            &self.item_id,
            &dataset.items,
            &dataset.item_features,
            &self.item_features,
        )
    }

    /// Normalised timestamp (0 when no timestamp feature was fitted).
    pub fn timestamp_value(&self, ts: i64) -> f32 {
        self.timestamp
            .as_ref()
            .map_or(0.0, |t| t.normalizer.transform(ts as f64))
    }
}

/// Model inputs of one side feature for every vocabulary row.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodedColumn {
    /// One index per row (categorical, or a numeric feature's bucket).
    Index {
        /// Feature name.
        name: String,
        /// Number of distinct indices (embedding rows).
        cardinality: usize,
        /// Index per row.
        values: Vec<u32>,
    },
    /// A bag of indices per row, CSR-style (multi-categorical, text tokens).
    Bag {
        /// Feature name.
        name: String,
        /// Number of distinct indices (embedding rows).
        cardinality: usize,
        /// Row r holds `ids[offsets[r]..offsets[r + 1]]`.
        offsets: Vec<u32>,
        /// Concatenated indices.
        ids: Vec<u32>,
    },
    /// A float per row (normalised numeric).
    Dense {
        /// Feature name.
        name: String,
        /// Value per row.
        values: Vec<f32>,
    },
}

/// Encoded side features, one row per vocabulary index (OOV rows hold missing values).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedTable {
    /// Number of rows (the id vocabulary's size).
    pub rows: usize,
    /// The columns.
    pub columns: Vec<EncodedColumn>,
}

fn encode(
    ids: &Vocabulary,
    raw: &IdMap,
    table: &FeatureTable,
    features: &[FittedFeature],
) -> EncodedTable {
    let rows = ids.len();
    // Model row → dataset row (known ids only).
    let mut source: Vec<Option<usize>> = vec![None; rows];
    let by_raw: FxHashMap<&str, usize> = raw
        .raw_ids()
        .iter()
        .enumerate()
        .map(|(k, r)| (r.as_str(), k))
        .collect();
    for (k, value) in ids.values().iter().enumerate() {
        source[ids.num_oov() as usize + k] = by_raw.get(value.as_str()).copied();
    }
    let mut columns = Vec::new();
    for f in features {
        let Some(col) = table.get(&f.name) else {
            continue;
        };
        match (&f.transform, &col.values) {
            (Transform::Categorical { vocab }, ColumnValues::Categorical(v)) => {
                columns.push(EncodedColumn::Index {
                    name: f.name.clone(),
                    cardinality: vocab.len(),
                    values: source
                        .iter()
                        .map(|s| s.map_or(0, |r| vocab.index(&v[r])))
                        .collect(),
                })
            }
            (Transform::MultiCategorical { vocab }, ColumnValues::MultiCategorical(v)) => columns
                .push(bag(&f.name, vocab, &source, |r| {
                    v[r].iter().map(|s| vocab.index(s)).collect()
                })),
            (Transform::Text { tokenizer, vocab }, ColumnValues::Text(v)) => {
                columns.push(bag(&f.name, vocab, &source, |r| {
                    tokenizer
                        .tokenize(&v[r])
                        .iter()
                        .map(|t| vocab.index(t))
                        .collect()
                }))
            }
            (
                Transform::Numeric {
                    normalizer,
                    buckets,
                },
                ColumnValues::Numeric(v),
            ) => {
                let value = |s: &Option<usize>| s.map_or(f64::NAN, |r| v[r]);
                columns.push(EncodedColumn::Dense {
                    name: f.name.clone(),
                    values: source
                        .iter()
                        .map(|s| normalizer.transform(value(s)))
                        .collect(),
                });
                if let Some(b) = buckets {
                    columns.push(EncodedColumn::Index {
                        name: format!("{}#bucket", f.name),
                        cardinality: b.len(),
                        values: source.iter().map(|s| b.bucket(value(s))).collect(),
                    });
                }
            }
            // The table's column has another type than the one fitted: no input for it.
            _ => {}
        }
    }
    EncodedTable { rows, columns }
}

fn bag(
    name: &str,
    vocab: &Vocabulary,
    source: &[Option<usize>],
    ids_of: impl Fn(usize) -> Vec<u32>,
) -> EncodedColumn {
    let mut offsets = Vec::with_capacity(source.len() + 1);
    let mut ids = Vec::new();
    offsets.push(0);
    for s in source {
        if let Some(r) = s {
            ids.extend(ids_of(*r));
        }
        offsets.push(ids.len() as u32);
    }
    EncodedColumn::Bag {
        name: name.to_owned(),
        cardinality: vocab.len(),
        offsets,
        ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shortlist_core::dataset::{Column, Interactions};

    fn dataset() -> Dataset {
        Dataset {
            name: "t".into(),
            users: IdMap::from_raw(vec!["u1".into(), "u2".into(), "u3".into()]),
            items: IdMap::from_raw(vec!["a".into(), "b".into(), "c".into()]),
            interactions: Interactions {
                users: vec![0, 0, 1, 2],
                items: vec![0, 1, 0, 2],
                ratings: vec![5.0, 3.0, 4.0, 1.0],
                timestamps: Some(vec![100, 200, 300, 400]),
            },
            item_features: FeatureTable {
                columns: vec![
                    Column {
                        name: "title".into(),
                        values: ColumnValues::Text(vec![
                            "Toy Story (1995)".into(),
                            "Heat (1995)".into(),
                            "Zzz".into(),
                        ]),
                    },
                    Column {
                        name: "genres".into(),
                        values: ColumnValues::MultiCategorical(vec![
                            vec!["Comedy".into()],
                            vec!["Action".into(), "Crime".into()],
                            vec!["Horror".into()],
                        ]),
                    },
                    Column {
                        name: "year".into(),
                        values: ColumnValues::Numeric(vec![1995.0, 1995.0, f64::NAN]),
                    },
                ],
            },
            user_features: FeatureTable {
                columns: vec![Column {
                    name: "job".into(),
                    values: ColumnValues::Categorical(vec!["x".into(), "y".into(), "z".into()]),
                }],
            },
            ..Dataset::default()
        }
    }

    fn config() -> FeatureConfig {
        FeatureConfig {
            user_features: vec!["*".into()],
            item_features: vec!["*".into()],
            timestamp: true,
            ..FeatureConfig::default()
        }
    }

    #[test]
    fn fits_on_training_rows_only() {
        let d = dataset();
        // Row 3 (user u3, item c) is the test split.
        let spec = FeatureSpec::fit(&d, &[0, 1, 2], &config()).unwrap();
        assert_eq!(spec.user_id.values(), ["u1", "u2"]);
        assert_eq!(spec.item_id.values(), ["a", "b"]);
        assert_eq!(spec.item_id.index("c"), 0, "test-only item is OOV");
        let Transform::Text { vocab, .. } = &spec.item_features[0].transform else {
            panic!()
        };
        assert_eq!(vocab.values(), ["1995", "heat", "story", "toy"]);
        let ts = spec.timestamp.as_ref().unwrap();
        assert_eq!(ts.normalizer.mean, 200.0);
        let Transform::Categorical { vocab } = &spec.user_features[0].transform else {
            panic!()
        };
        assert_eq!(vocab.get("z"), None);
    }

    #[test]
    fn json_round_trip_is_identical() {
        let d = dataset();
        let spec = FeatureSpec::fit(&d, &[0, 1, 2, 3], &config()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("features.json");
        spec.save(&path).unwrap();
        let back = FeatureSpec::load(&path).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.encode_items(&d), spec.encode_items(&d));
        assert_eq!(back.to_json(), spec.to_json());
    }

    #[test]
    fn encoding_aligns_rows_with_vocabulary() {
        let d = dataset();
        let spec = FeatureSpec::fit(&d, &[0, 1, 2], &config()).unwrap();
        let t = spec.encode_items(&d);
        assert_eq!(t.rows, 3); // OOV + a + b
        let EncodedColumn::Bag { offsets, ids, .. } = &t.columns[1] else {
            panic!()
        };
        assert_eq!(
            offsets,
            &vec![0, 0, 1, 3],
            "OOV row empty, a: 1 genre, b: 2"
        );
        let Transform::MultiCategorical { vocab } = &spec.item_features[1].transform else {
            panic!()
        };
        assert_eq!(ids[0], vocab.index("Comedy"));
        let EncodedColumn::Dense { values, .. } = &t.columns[2] else {
            panic!()
        };
        assert_eq!(values, &vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn featured_items_without_training_rows_join_the_vocabulary_after_the_fitted_ones() {
        let mut d = dataset();
        // A fourth item with no interactions and no feature values stays out.
        d.items.intern("d");
        d.item_features.pad_to(4);
        let mut spec = FeatureSpec::fit(&d, &[0, 1, 2], &config()).unwrap();
        let fitted = spec.item_id.clone();
        assert_eq!(spec.add_featured_items(&d), 1);
        assert_eq!(spec.item_id.values(), ["a", "b", "c"]);
        for v in fitted.values() {
            assert_eq!(
                spec.item_id.get(v),
                fitted.get(v),
                "fitted rows keep their index"
            );
        }
        assert_eq!(spec.item_id.get("d"), None);
        // Its features are encoded in its new row ("Horror" is unknown to the genre
        // vocabulary fitted on training items: an OOV index, but present).
        let t = spec.encode_items(&d);
        assert_eq!(t.rows, 4);
        let EncodedColumn::Bag { offsets, .. } = &t.columns[1] else {
            panic!()
        };
        assert_eq!(offsets[3..], [3, 4]);
        assert_eq!(spec.add_featured_items(&d), 0, "idempotent");
        // Without item features nothing is added.
        let mut bare = FeatureSpec::fit(&d, &[0, 1, 2], &FeatureConfig::default()).unwrap();
        assert_eq!(bare.add_featured_items(&d), 0);
    }

    #[test]
    fn unknown_feature_and_bad_file_are_named() {
        let d = dataset();
        let cfg = FeatureConfig {
            item_features: vec!["colour".into()],
            ..FeatureConfig::default()
        };
        let e = FeatureSpec::fit(&d, &[0], &cfg).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown item feature \"colour\": the dataset has these: title, genres, year"
        );
        let e = FeatureSpec::from_json("{}", Path::new("m/features.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m/features.json: invalid feature spec: missing field"),
            "{e}"
        );
        // A transform without the field of its kind, or of an unknown kind.
        let spec = FeatureSpec::fit(&d, &[0, 1, 2, 3], &config()).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&spec.to_json()).unwrap();
        let t = &mut json["item_features"][1]["transform"];
        assert_eq!(t["type"], "multi-categorical");
        t.as_object_mut().unwrap().remove("vocab");
        let e = FeatureSpec::from_json(&json.to_string(), Path::new("f.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f.json: invalid feature spec: missing field `vocab`"),
            "{e}"
        );
        json["item_features"][1]["transform"]["type"] = "colour".into();
        let e = FeatureSpec::from_json(&json.to_string(), Path::new("f.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "f.json: invalid feature spec: unknown variant `colour`, expected one of"
            ),
            "{e}"
        );
    }
}
