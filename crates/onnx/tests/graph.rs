//! The exported files' structure: the ONNX messages decode, opset and IR version are
//! the declared ones, every node reads only graph inputs, initializers or earlier
//! outputs (a valid topological order), names are unique; the features JSON's index
//! rule gives the rows our vocabularies give, unknown ids and hashed OOV buckets
//! included.

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;

use prost::Message as _;
use shortlist_model::{RankingModel, RetrievalModel};
use shortlist_onnx::proto::{ModelProto, TensorShapeProto};

fn fixture(kind: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipeline/tests/fixtures/format-v1")
        .join(kind)
}

/// Decodes `bytes` and checks the graph's well-formedness; returns the model.
fn well_formed(bytes: &[u8]) -> ModelProto {
    let m = ModelProto::decode(bytes).unwrap();
    assert_eq!(m.ir_version, 7);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(
        (m.opset_import[0].domain.as_str(), m.opset_import[0].version),
        ("", 13)
    );
    let g = m.graph.as_ref().unwrap();
    let mut defined: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
    for t in &g.initializer {
        assert!(
            defined.insert(&t.name),
            "initializer {} defined twice",
            t.name
        );
        let elems: i64 = t.dims.iter().product();
        let width = match t.data_type {
            1 => 4,
            7 | 11 => 8,
            9 => 1,
            other => panic!("unexpected data type {other}"),
        };
        assert_eq!(t.raw_data.len() as i64, elems * width, "{}", t.name);
    }
    for n in &g.node {
        for i in &n.input {
            assert!(
                defined.contains(i.as_str()),
                "{} reads {i} before it exists",
                n.op_type
            );
        }
        for o in &n.output {
            assert!(defined.insert(o), "{o} defined twice");
        }
    }
    for o in &g.output {
        assert!(
            defined.contains(o.name.as_str()),
            "output {} never computed",
            o.name
        );
    }
    m
}

fn shape(v: &shortlist_onnx::proto::ValueInfoProto) -> (i32, TensorShapeProto) {
    let t = v.r#type.clone().unwrap().tensor_type.unwrap();
    (t.elem_type, t.shape.unwrap())
}

#[test]
fn ranking_graphs_are_well_formed_with_two_index_inputs_and_one_output() {
    let model = RankingModel::load(&fixture("ranking")).unwrap();
    let e = shortlist_onnx::export_ranking(&model).unwrap();
    assert_eq!(e.graphs.len(), 1);
    for bytes in [
        e.graphs[0].bytes.clone(),
        shortlist_onnx::ranking::graph_with(&model, false).unwrap(),
    ] {
        let m = well_formed(&bytes);
        let g = m.graph.unwrap();
        let names: Vec<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["user", "item"]);
        assert_eq!(shape(&g.input[0]).0, 7, "int64 input");
        assert_eq!(g.output.len(), 1);
        assert_eq!(g.output[0].name, "prediction");
        let (elem, s) = shape(&g.output[0]);
        assert_eq!((elem, s.dim.len()), (1, 1), "float [N]");
        assert!(m
            .metadata_props
            .iter()
            .any(|p| p.key == "shortlist.kind" && p.value == "ranking"));
    }
}

#[test]
fn compact_graph_of_the_full_model_has_few_nodes() {
    let model = common::ranking_full();
    let m = well_formed(&shortlist_onnx::ranking::graph(&model).unwrap());
    let nodes = m.graph.unwrap().node.len();
    // First layer 4 (two gathers, add, ReLU); per member of its [32, 16] MLP a slice,
    // a Gemm and a ReLU (9); concat and the stacked last layer (2); the shared product
    // (two gathers, mul, group matmul, split: 5); extra and blend (4); clip, reshape.
    // (The quickstart's one-hidden-layer MLP needs no slices: 16 nodes.)
    assert_eq!(nodes, 4 + 9 + 2 + 5 + 4 + 2);
    let full = well_formed(&shortlist_onnx::ranking::graph_with(&model, false).unwrap());
    assert!(full.graph.unwrap().node.len() > 2 * nodes);
}

#[test]
fn towers_are_well_formed_gathers_of_dim_wide_rows() {
    let (model, _) = RetrievalModel::load(&fixture("retrieval")).unwrap();
    let e = shortlist_onnx::export_retrieval(&model).unwrap();
    let roles: Vec<&str> = e.graphs.iter().map(|g| g.role).collect();
    // The fixture has item side features: the new-item graph comes third.
    assert_eq!(roles, ["query", "candidate", "candidate_features"]);
    for (graph, (input, output)) in e
        .graphs
        .iter()
        .zip([("user", "query"), ("item", "candidate")])
    {
        let g = well_formed(&graph.bytes).graph.unwrap();
        assert_eq!(g.input[0].name, input);
        assert_eq!(g.output[0].name, output);
        let dims: Vec<_> = shape(&g.output[0])
            .1
            .dim
            .into_iter()
            .map(|d| d.value)
            .collect();
        assert_eq!(
            dims,
            [
                Some(shortlist_onnx::proto::DimValue::DimParam("N".into())),
                Some(shortlist_onnx::proto::DimValue::DimValue(model.dim() as i64)),
            ]
        );
        assert_eq!(g.node.len(), 1);
    }
}

#[test]
fn a_model_with_item_features_has_a_well_formed_new_item_graph() {
    let model = common::retrieval();
    let e = shortlist_onnx::export_retrieval(&model).unwrap();
    let roles: Vec<&str> = e.graphs.iter().map(|g| g.role).collect();
    assert_eq!(roles, ["query", "candidate", "candidate_features"]);
    let g = well_formed(&e.graphs[2].bytes).graph.unwrap();
    let inputs: Vec<(&str, i32, usize)> = g
        .input
        .iter()
        .map(|v| {
            let (elem, s) = shape(v);
            (v.name.as_str(), elem, s.dim.len())
        })
        .collect();
    // Bags of rows are int64 [N, L]; the number is float64 [N].
    assert_eq!(
        inputs,
        [
            ("title", 7, 2),
            ("genre", 7, 2),
            ("tags", 7, 2),
            ("price", 11, 1)
        ]
    );
    assert_eq!(g.output[0].name, "candidate");
    // The JSON says how to fill each input.
    let json = e.features_json(&["q.onnx".into(), "c.onnx".into(), "f.onnx".into()]);
    let described = &json["graphs"][2]["inputs"];
    assert_eq!(described[0]["type"], "int64");
    assert_eq!(described[0]["shape"], serde_json::json!(["N", "L_title"]));
    assert!(described[0]["about"]
        .as_str()
        .unwrap()
        .contains("padded with -1"));
    assert_eq!(described[3]["type"], "float64");
    assert!(described[3]["about"]
        .as_str()
        .unwrap()
        .contains("NaN when missing"));
    assert_eq!(
        json["graphs"][2]["outputs"][0]["shape"],
        serde_json::json!(["N", model.dim()])
    );
}

#[test]
fn the_index_rule_of_the_json_gives_our_rows() {
    let model = common::ranking_full();
    let e = shortlist_onnx::export_ranking(&model).unwrap();
    let json = e.features_json(&["r.onnx".into()]);
    assert_eq!(json["format"], "shortlist-onnx-features");
    assert_eq!(json["graphs"][0]["file"], "r.onnx");
    assert_eq!(json["feature_spec"]["user_id"]["num_oov_buckets"], 3);
    let pairs = common::raw_pairs(
        model.spec.user_id.values(),
        model.spec.item_id.values(),
        2000,
        9,
    );
    let mut buckets = HashSet::new();
    for (u, i) in &pairs {
        let (ur, ir) = model.rows_of(u, i);
        assert_eq!(
            common::row_from_json(&json, "user_id", u),
            i64::from(ur),
            "{u}"
        );
        assert_eq!(
            common::row_from_json(&json, "item_id", i),
            i64::from(ir),
            "{i}"
        );
        if model.spec.user_id.is_oov(ur) {
            buckets.insert(ur);
        }
    }
    // Unknown users land in more than one of the three OOV buckets.
    assert!(buckets.len() > 1, "{buckets:?}");
}
