//! ONNX export of **shortlist** models, for runtimes other than ours (ONNX Runtime on a
//! server or a phone, tract, a browser's ONNX runtime).
//!
//! * A ranking model ([`export_ranking`]) becomes **one graph**, `ranking.onnx`: inputs
//!   `user` and `item` (int64 `[N]`, vocabulary rows), output `prediction` (float
//!   `[N]`): the rating (a click probability for a `click` model) that
//!   [`RankingModel::predict_batch`] gives — every ensemble member's features →
//!   cross layers → MLP plus biases and the dot term (with the implicit-feedback
//!   mean), the members' mean, the I-AutoRec blend where the user and the item had
//!   training ratings, the clip. When the members carry the scoring cache our scorer
//!   uses (`RankingModel::prepare_scoring`: the first MLP layer's user part and item
//!   part per vocabulary row; every model without cross layers) the graph starts from
//!   it and runs the members side by side, whatever the number of features (16 nodes
//!   for the quickstart's model: ONNX Runtime's cost per pair is mostly per node);
//!   otherwise it is built from the features (embedding gathers, concat,
//!   cross layers, MLP) member by member.
//! * A retrieval model ([`export_retrieval`]) becomes two graphs, the **query tower**
//!   (`user` → `query`, `[N, dim]`, already divided by the temperature) and the
//!   **candidate tower** (`item` → `candidate`); a score is their dot product. A model
//!   with item side features has a third graph, the candidate tower of a **new item**
//!   from its side features alone (`candidate_features`: one input per side feature —
//!   label rows padded with −1, or the raw number — and the same output), which is
//!   what the server computes for items added without retraining.
//! * Beside them, [`Export::features_json`]: the model's `FeatureSpec` (every
//!   vocabulary) and the rule that turns a raw id into the input row — the id's
//!   position in `values` plus `num_oov_buckets`; an unknown id goes to OOV row 0, or
//!   with several OOV buckets to FNV-1a 64 of its UTF-8 bytes modulo their number —
//!   exactly [`shortlist_features::Vocabulary::index`].
//!
//! Side features (genres, age, title tokens, …) and each user's training items are
//! fixed per vocabulary row when a model is trained, so the graphs hold them keyed by
//! the row, as our models do: a caller passes only the two id rows (and, for an item
//! that did not exist at training time, its raw side features to `candidate_features`).
//!
//! **Not exported: the relevance head** that orders served candidate lists. Its inputs
//! are list-level — the first stage's scores of the whole list, EASE summed over the
//! user's history, an iALS user factor folded in by a linear solve per request — and it
//! standardises each feature within the list; only its last step (a weighted sum) is a
//! graph. A caller that needs served lists runs `shortlist serve` or the WebAssembly
//! build; the ONNX graphs give the rating and the two towers.
//!
//! The graphs use the default ONNX opset 13 (IR version 7): `Gather`, `Concat`, `Gemm`,
//! `Relu`, `Add`, `Mul`, `ReduceSum`, `Sigmoid`, `And`, `Where`, `Clip`, `Reshape`, and for
//! `candidate_features` `GreaterOrEqual`, `Max`, `Div`, `Sub`, `Cast`, `Unsqueeze`, `Equal`, `Not`, `Identity`.
//! The protobuf messages are derived with `prost` in [`proto`] (no `protoc`).

pub mod builder;
pub mod proto;
pub mod ranking;
pub mod retrieval;

pub use shortlist_model::{Error, Result};
use shortlist_model::{RankingModel, RetrievalModel};

use serde_json::{json, Value};

/// Version of the layout of [`Export::features_json`].
pub const FEATURES_FORMAT_VERSION: u32 = 1;

/// How a raw id becomes an input row (written into the features JSON for callers).
pub const INDEX_RULE: &str = "row = num_oov_buckets + the id's position in values; an id not \
in values maps to row 0 when num_oov_buckets is 1, else to fnv1a64(its UTF-8 bytes) mod \
num_oov_buckets (FNV-1a 64: offset basis 0xcbf29ce484222325, prime 0x100000001b3, wrapping u64)";

/// One exported graph.
#[derive(Debug, Clone)]
pub struct OnnxGraph {
    /// What it computes: `ranking`, `query`, `candidate` or `candidate_features`.
    pub role: &'static str,
    /// The serialised `ModelProto`.
    pub bytes: Vec<u8>,
    /// Its inputs: name, and the vocabulary whose rows it takes (each an int64 `[N]` tensor).
    pub inputs: Vec<(&'static str, &'static str)>,
    /// The inputs of the cold-candidate graph (item side features; empty for the others).
    pub feature_inputs: Vec<retrieval::FeatureInput>,
    /// Its output name and shape (`"N"`: the batch size).
    pub output: (&'static str, Value),
}

/// The graphs of one model and what a caller needs to feed them.
#[derive(Debug, Clone)]
pub struct Export {
    /// `ranking` or `retrieval`.
    pub kind: &'static str,
    /// The graphs: `[ranking]`, or `[query, candidate]` plus `candidate_features`
    /// when the retrieval model has item side features.
    pub graphs: Vec<OnnxGraph>,
    /// The model's feature spec, as saved.
    pub spec: Value,
    /// Facts about the model for the caller (objective, clip, dimension, …).
    pub model: Value,
}

/// The rating graph of a ranking model (ensemble, AutoRec blend and clip included).
pub fn export_ranking(model: &RankingModel) -> Result<Export> {
    model.check()?;
    let bytes = ranking::graph(model)?;
    Ok(Export {
        kind: "ranking",
        graphs: vec![OnnxGraph {
            role: "ranking",
            bytes,
            inputs: vec![("user", "user_id"), ("item", "item_id")],
            feature_inputs: Vec::new(),
            output: (ranking::OUTPUT, json!(["N"])),
        }],
        spec: spec_json(&model.spec)?,
        model: json!({
            "objective": model.config.objective.name(),
            "prediction": if model.config.objective == shortlist_model::Objective::Click {
                "click probability"
            } else {
                "rating"
            },
            "ensemble_members": model.members.len() + 1,
            "autorec_weight": model.autorec.as_ref().map(|a| a.config.weight),
            "clip": model.config.clip,
            "relevance_head": if model.relevance.is_some() {
                "not exported (list-level inputs; see the shortlist-onnx crate docs)"
            } else {
                "none"
            },
        }),
    })
}

/// The query and candidate towers of a retrieval model, and the candidate tower of
/// new items from their side features when the model has item side features
/// ([`retrieval::candidate_features_graph`]).
pub fn export_retrieval(model: &RetrievalModel) -> Result<Export> {
    model.check()?;
    let d = model.dim();
    let mut graphs = vec![
        OnnxGraph {
            role: "query",
            bytes: retrieval::query_graph(model),
            inputs: vec![("user", "user_id")],
            feature_inputs: Vec::new(),
            output: (retrieval::QUERY, json!(["N", d])),
        },
        OnnxGraph {
            role: "candidate",
            bytes: retrieval::candidate_graph(model),
            inputs: vec![("item", "item_id")],
            feature_inputs: Vec::new(),
            output: (retrieval::CANDIDATE, json!(["N", d])),
        },
    ];
    if let Some((bytes, feature_inputs)) = retrieval::candidate_features_graph(model) {
        graphs.push(OnnxGraph {
            role: "candidate_features",
            bytes,
            inputs: Vec::new(),
            feature_inputs,
            output: (retrieval::CANDIDATE_FEATURES, json!(["N", d])),
        });
    }
    Ok(Export {
        kind: "retrieval",
        graphs,
        spec: spec_json(&model.spec)?,
        model: json!({
            "embedding_dim": d,
            "temperature": model.config.temperature,
            "score": "query · candidate (the query is already divided by the temperature)",
        }),
    })
}

fn spec_json(spec: &shortlist_features::FeatureSpec) -> Result<Value> {
    serde_json::to_value(spec)
        .map_err(|e| Error::invalid("feature spec", format!("cannot serialise it: {e}")))
}

impl Export {
    /// The JSON written beside the graphs: per graph its file (`files[k]` for
    /// `graphs[k]`), inputs and output; the index rule; the feature spec.
    pub fn features_json(&self, files: &[String]) -> Value {
        let graphs: Vec<Value> = self
            .graphs
            .iter()
            .zip(files)
            .map(|(g, file)| {
                let inputs: Vec<Value> = g
                    .inputs
                    .iter()
                    .map(|(n, v)| {
                        json!({"name": n, "type": "int64", "shape": ["N"], "vocabulary": v})
                    })
                    .chain(g.feature_inputs.iter().map(|f| {
                        json!({"name": f.name, "type": f.dtype, "shape": f.shape, "about": f.about})
                    }))
                    .collect();
                json!({
                    "role": g.role,
                    "file": file,
                    "inputs": inputs,
                    "outputs": [{"name": g.output.0, "type": "float32", "shape": g.output.1}],
                })
            })
            .collect();
        json!({
            "format": "shortlist-onnx-features",
            "format_version": FEATURES_FORMAT_VERSION,
            "kind": self.kind,
            "opset": builder::OPSET,
            "graphs": graphs,
            "model": self.model,
            "index_rule": INDEX_RULE,
            "feature_spec": self.spec,
        })
    }
}
