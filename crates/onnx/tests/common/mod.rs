//! Models trained in the tests on small generated data, exported, and the raw-id
//! pairs the runtimes are checked on.

#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;
use shortlist_core::{Dataset, Rng};
use shortlist_data::synth::{generate, SynthConfig};
use shortlist_data::synth_clicks::{generate_clicks, ClickSynthConfig};
use shortlist_features::{FeatureConfig, VocabConfig};
use shortlist_model::attributes::RawValue;
use shortlist_model::{Objective, RankingModel, RetrievalModel};
use shortlist_train::retrieval::{train_retrieval, RetrievalTrainConfig};
use shortlist_train::{train_ranking, AutoRecTrainConfig, TrainConfig};

/// Pairs each parity check scores.
pub const PAIRS: usize = 10_000;

fn split(n: usize) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..n).collect();
    Rng::new(7).shuffle(&mut rows);
    let test = rows.split_off(n * 4 / 5);
    (rows, test)
}

/// The generated log the rating and two-tower models train on (120 users, 80 items,
/// 4,000 interactions), with its train and test rows.
fn synth_split() -> (Dataset, Vec<usize>, Vec<usize>) {
    let (data, _) = generate(&SynthConfig::sized(120, 80, 4000)).unwrap();
    let (train, test) = split(data.interactions.len());
    (data, train, test)
}

/// Every side feature, and three hashed OOV buckets for the ids (so the index rule's
/// hashing is exercised, not only row 0).
fn features() -> FeatureConfig {
    FeatureConfig {
        ids: VocabConfig {
            num_oov_buckets: 3,
            ..Default::default()
        },
        user_features: vec!["*".into()],
        item_features: vec!["*".into()],
        ..Default::default()
    }
}

/// The quickstart's ranking architecture in small: side features, biases, dot and
/// implicit terms, clipping, a 3-seed ensemble blended with an I-AutoRec.
pub fn ranking_full() -> RankingModel {
    let (data, train, test) = synth_split();
    let cfg = TrainConfig {
        embedding_dim: 8,
        hidden: vec![32, 16],
        biases: true,
        dot: true,
        implicit: true,
        clip_predictions: true,
        ensemble: 3,
        init_bias_to_mean: true,
        batch_size: 256,
        epochs: 3,
        features: features(),
        autorec: Some(AutoRecTrainConfig {
            hidden: 16,
            epochs: 3,
            ..Default::default()
        }),
        ..Default::default()
    };
    let (model, _) = train_ranking(&data, &train, &test, &cfg).unwrap();
    assert_eq!(model.members.len(), 2);
    assert!(model.autorec.is_some() && model.config.clip.is_some());
    model
}

/// A click model with DCN-v2 cross layers (the sigmoid link, no clip).
pub fn ranking_click_cross() -> RankingModel {
    let (data, _) = generate_clicks(&ClickSynthConfig {
        users: 100,
        impressions_per_user: 30,
        ..Default::default()
    })
    .unwrap();
    let (train, test) = split(data.interactions.len());
    let cfg = TrainConfig {
        objective: Objective::Click,
        embedding_dim: 6,
        hidden: vec![16],
        cross_layers: 2,
        biases: true,
        dot: true,
        ensemble: 2,
        batch_size: 256,
        epochs: 2,
        features: FeatureConfig {
            ids: VocabConfig::default(),
            ..features()
        },
        ..Default::default()
    };
    let (model, _) = train_ranking(&data, &train, &test, &cfg).unwrap();
    assert_eq!(model.cross.layers.len(), 2);
    model
}

/// A two-tower model with side features and the history term.
pub fn retrieval() -> RetrievalModel {
    let (data, train, test) = synth_split();
    let cfg = RetrievalTrainConfig {
        embedding_dim: 8,
        history: true,
        temperature: 0.5,
        epochs: 2,
        batch_size: 256,
        eval_every_epoch: false,
        // Buckets for the numeric feature and hashed OOV labels: every input path of
        // the new-item graph.
        features: FeatureConfig {
            numeric_buckets: 4,
            categorical: VocabConfig {
                num_oov_buckets: 2,
                ..Default::default()
            },
            ..features()
        },
        ..Default::default()
    };
    let (model, _) = train_retrieval(&data, &train, &test, &cfg, |_| {}).unwrap();
    assert!(model.history.is_some());
    model
}

/// `n` raw (user, item) id pairs: mostly known ids, about 10 % unknown on each side.
pub fn raw_pairs(users: &[String], items: &[String], n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng::new(seed);
    let mut pick = |known: &[String], kind: &str| -> String {
        let r = rng.below((known.len() + known.len() / 9 + 1) as u64) as usize;
        match known.get(r) {
            Some(id) => id.clone(),
            None => format!("unknown-{kind}-{}", rng.below(1000)),
        }
    };
    (0..n)
        .map(|_| (pick(users, "user"), pick(items, "item")))
        .collect()
}

/// FNV-1a 64, written here from its definition (not the crate's).
fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The input row of a raw id by the exported features JSON's rule, read from the JSON.
pub fn row_from_json(features: &Value, vocab: &str, id: &str) -> i64 {
    row_in(&features["feature_spec"][vocab], id)
}

/// The row of `id` in a vocabulary of the exported features JSON, by its rule.
pub fn row_in(v: &Value, id: &str) -> i64 {
    let oov = v["num_oov_buckets"].as_u64().unwrap();
    let values = v["values"].as_array().unwrap();
    match values.iter().position(|x| x.as_str() == Some(id)) {
        Some(p) => (oov + p as u64) as i64,
        None if oov <= 1 => 0,
        None => (fnv1a64(id) % oov) as i64,
    }
}

/// Relative difference with a floor of 1e-3 on the scale (click probabilities can be
/// small; ratings are 1–5).
pub fn rel(a: f32, b: f32) -> f64 {
    (f64::from(a) - f64::from(b)).abs() / f64::from(b.abs()).max(1e-3)
}

/// Writes the export of `e` under `dir` as `NAME.onnx` / `NAME.<role>.onnx` plus
/// `NAME.features.json` and returns the JSON.
pub fn write_export(e: &shortlist_onnx::Export, dir: &Path, name: &str) -> Value {
    let files: Vec<String> = e
        .graphs
        .iter()
        .map(|g| {
            if e.graphs.len() == 1 {
                format!("{name}.onnx")
            } else {
                format!("{name}.{}.onnx", g.role)
            }
        })
        .collect();
    for (g, f) in e.graphs.iter().zip(&files) {
        std::fs::write(dir.join(f), &g.bytes).unwrap();
    }
    let json = e.features_json(&files);
    std::fs::write(
        dir.join(format!("{name}.features.json")),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    json
}

/// `n` new items' raw side features over the retrieval model's item features: known
/// and unknown labels, text with capitals, punctuation and unknown words, numbers on
/// and between the bucket boundaries, and missing values of every kind.
pub fn new_items(model: &RetrievalModel, n: usize, seed: u64) -> Vec<Vec<(String, RawValue)>> {
    use shortlist_features::spec::Transform;
    let mut rng = Rng::new(seed);
    let label = |values: &[String], rng: &mut Rng| -> String {
        match rng.below(values.len() as u64 + 2) as usize {
            k if k < values.len() => values[k].clone(),
            k => format!("new-label-{k}-{}", rng.below(5)),
        }
    };
    (0..n)
        .map(|_| {
            let mut item = Vec::new();
            for f in &model.spec.item_features {
                if rng.below(8) == 0 {
                    continue; // missing
                }
                let v = match &f.transform {
                    Transform::Categorical { vocab } => {
                        RawValue::Label(label(vocab.values(), &mut rng))
                    }
                    Transform::MultiCategorical { vocab } => RawValue::Labels(
                        (0..rng.below(4))
                            .map(|_| label(vocab.values(), &mut rng))
                            .collect(),
                    ),
                    Transform::Text { vocab, .. } => {
                        let words: Vec<String> = (0..rng.below(5))
                            .map(|k| {
                                let w = label(vocab.values(), &mut rng);
                                if k % 2 == 0 {
                                    w.to_uppercase() + ","
                                } else {
                                    format!("({w})")
                                }
                            })
                            .collect();
                        RawValue::Label(words.join("  "))
                    }
                    Transform::Numeric {
                        normalizer,
                        buckets,
                    } => {
                        let bounds = buckets
                            .as_ref()
                            .map(|b| b.boundaries.clone())
                            .unwrap_or_default();
                        match (rng.below(3), bounds.is_empty()) {
                            (0, false) => {
                                RawValue::Number(bounds[rng.below(bounds.len() as u64) as usize])
                            }
                            _ => RawValue::Number(
                                normalizer.mean
                                    + normalizer.std * (rng.below(4001) as f64 / 1000.0 - 2.0),
                            ),
                        }
                    }
                };
                item.push((f.name.clone(), v));
            }
            item
        })
        .collect()
}

/// One input tensor of the new-item graph.
pub enum FeatureTensor {
    /// `int64 [n, len]`, row-major.
    Bag {
        rows: Vec<i64>,
        n: usize,
        len: usize,
    },
    /// `float64 [n]`.
    Number(Vec<f64>),
}

/// The inputs of the exported `candidate_features` graph for `items`, built from the
/// features JSON alone by the rules its inputs state (as a caller without shortlist
/// would): labels and tokens to rows by the index rule, padding −1, NaN for a missing
/// number. In the graph's input order.
pub fn feature_tensors(json: &Value, items: &[Vec<(String, RawValue)>]) -> Vec<FeatureTensor> {
    let graph = json["graphs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role"] == "candidate_features")
        .unwrap();
    let specs = json["feature_spec"]["item_features"].as_array().unwrap();
    graph["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| {
            let name = input["name"].as_str().unwrap();
            let spec = specs.iter().find(|f| f["name"] == name).unwrap();
            let t = &spec["transform"];
            let raw = |item: &Vec<(String, RawValue)>| {
                item.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
            };
            if input["type"] == "float64" {
                return FeatureTensor::Number(
                    items
                        .iter()
                        .map(|it| match raw(it) {
                            Some(RawValue::Number(x)) => x,
                            _ => f64::NAN,
                        })
                        .collect(),
                );
            }
            let kind = t["type"].as_str().unwrap();
            let bags: Vec<Vec<i64>> = items
                .iter()
                .map(|it| {
                    let labels: Vec<String> = match (kind, raw(it)) {
                        ("categorical", None) => vec![String::new()],
                        (_, None) => vec![],
                        (_, Some(RawValue::Labels(ls))) => ls,
                        ("text", Some(RawValue::Label(text))) => {
                            let clean: String = text
                                .chars()
                                .filter(|c| c.is_alphanumeric() || c.is_whitespace())
                                .flat_map(char::to_lowercase)
                                .collect();
                            let max = t["tokenizer"]["max_tokens"].as_u64().unwrap() as usize;
                            let tokens = clean.split_whitespace().map(str::to_owned);
                            if max == 0 {
                                tokens.collect()
                            } else {
                                tokens.take(max).collect()
                            }
                        }
                        (_, Some(RawValue::Label(l))) => vec![l],
                        (_, Some(RawValue::Number(_))) => panic!("a number for {name}"),
                    };
                    labels.iter().map(|l| row_in(&t["vocab"], l)).collect()
                })
                .collect();
            let len = bags.iter().map(Vec::len).max().unwrap_or(0).max(1);
            let mut rows = vec![-1i64; items.len() * len];
            for (k, b) in bags.iter().enumerate() {
                rows[k * len..k * len + b.len()].copy_from_slice(b);
            }
            FeatureTensor::Bag {
                rows,
                n: items.len(),
                len,
            }
        })
        .collect()
}

/// Our vector of each new item (`RetrievalModel::candidate_from_features`).
pub fn new_item_vectors(
    model: &RetrievalModel,
    items: &[Vec<(String, RawValue)>],
) -> Vec<Vec<f32>> {
    items
        .iter()
        .map(|it| {
            let mut v = vec![0f32; model.dim()];
            model.candidate_from_features(it, &mut v).unwrap();
            v
        })
        .collect()
}
