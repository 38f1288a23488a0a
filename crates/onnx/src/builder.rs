//! A small builder of ONNX graphs: initializers, nodes with fresh output names, and
//! the model wrapper (opset, IR version, metadata).

use prost::Message as _;

use crate::proto::{
    AttributeProto, DimValue, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto, ATTR_FLOAT, ATTR_INT, ATTR_INTS, BOOL, DOUBLE, FLOAT, INT64,
};

/// The default-domain opset the graphs use: 13 has every operator needed (`Gather`,
/// `Gemm`, `ReduceSum` with axes as an input, `Clip` with bounds as inputs, `Where`)
/// and is read by every runtime released since 2021.
pub const OPSET: i64 = 13;
/// The IR version that goes with [`OPSET`] (ONNX 1.8).
pub const IR_VERSION: i64 = 7;

/// A node attribute.
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f32),
    /// A list of integers.
    Ints(Vec<i64>),
}

/// A graph under construction.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    next: usize,
}

/// A tensor type: element type and dimensions (`None`: the symbolic batch size `N`).
fn value_info(name: &str, elem: i32, dims: &[Option<i64>], doc: &str) -> ValueInfoProto {
    let dims: Vec<DimValue> = dims
        .iter()
        .map(|d| match d {
            Some(v) => DimValue::DimValue(*v),
            None => DimValue::DimParam("N".into()),
        })
        .collect();
    value_info_dims(name, elem, dims, doc)
}

/// A tensor type with any dimensions, fixed or symbolic.
fn value_info_dims(name: &str, elem: i32, dims: Vec<DimValue>, doc: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: elem,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|d| Dimension { value: Some(d) })
                        .collect(),
                }),
            }),
        }),
        doc_string: doc.into(),
    }
}

impl Graph {
    /// A fresh value name with `prefix`.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}", self.next)
    }

    /// Declares a graph input of int64 indices, shape `[N]`.
    pub fn index_input(&mut self, name: &str, doc: &str) -> String {
        self.inputs.push(value_info(name, INT64, &[None], doc));
        name.into()
    }

    /// Declares a graph input of element type `elem` (a `proto` data type) whose
    /// dimensions are all symbolic, named by `params` (`N`, `L_genres`, …).
    pub fn symbolic_input(&mut self, name: &str, elem: i32, params: &[&str], doc: &str) -> String {
        let dims = params
            .iter()
            .map(|p| DimValue::DimParam((*p).into()))
            .collect();
        self.inputs.push(value_info_dims(name, elem, dims, doc));
        name.into()
    }

    /// Declares a float graph output of shape `dims` (`None`: `N`).
    pub fn float_output(&mut self, name: &str, dims: &[Option<i64>], doc: &str) {
        self.outputs.push(value_info(name, FLOAT, dims, doc));
    }

    fn init(&mut self, prefix: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> String {
        let name = self.fresh(prefix);
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.clone(),
            raw_data: raw,
        });
        name
    }

    /// A float constant of shape `dims` (row-major `data`).
    pub fn f32s(&mut self, prefix: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(prefix, dims, FLOAT, raw)
    }

    /// A float scalar.
    pub fn scalar(&mut self, prefix: &str, v: f32) -> String {
        self.f32s(prefix, &[], &[v])
    }

    /// A double constant of shape `dims`.
    pub fn f64s(&mut self, prefix: &str, dims: &[usize], data: &[f64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(prefix, dims, DOUBLE, raw)
    }

    /// An int64 constant of shape `dims`.
    pub fn i64s(&mut self, prefix: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(prefix, dims, INT64, raw)
    }

    /// A bool constant of shape `dims`.
    pub fn bools(&mut self, prefix: &str, dims: &[usize], data: &[bool]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let raw = data.iter().map(|&b| u8::from(b)).collect();
        self.init(prefix, dims, BOOL, raw)
    }

    /// Adds a node of `op` on `inputs` with one output, named `out` or fresh.
    pub fn op_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        out: Option<&str>,
    ) -> String {
        let out = out.map_or_else(|| self.fresh(&op.to_lowercase()), str::to_owned);
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto {
                    name: name.into(),
                    ..Default::default()
                };
                match a {
                    Attr::Int(v) => (p.i, p.r#type) = (v, ATTR_INT),
                    Attr::Float(v) => (p.f, p.r#type) = (v, ATTR_FLOAT),
                    Attr::Ints(v) => (p.ints, p.r#type) = (v, ATTR_INTS),
                }
                p
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![out.clone()],
            name: format!("n{}", self.nodes.len()),
            op_type: op.into(),
            attribute,
            domain: String::new(),
        });
        out
    }

    /// Adds a node of `op` with `n` outputs, named fresh.
    pub fn op_multi(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        n: usize,
    ) -> Vec<String> {
        let first = self.op_named(op, inputs, attrs, None);
        let mut outs = vec![first];
        for _ in 1..n {
            outs.push(self.fresh(&op.to_lowercase()));
        }
        if let Some(node) = self.nodes.last_mut() {
            node.output = outs.clone();
        }
        outs
    }

    /// Adds a node of `op` with a fresh output name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.op_named(op, inputs, attrs, None)
    }

    /// `Gather(table, indices, axis = 0)`: rows of `table`.
    pub fn gather(&mut self, table: &str, indices: &str) -> String {
        self.op("Gather", &[table, indices], vec![("axis", Attr::Int(0))])
    }

    /// A binary elementwise op (`Add`, `Mul`, …).
    pub fn bin(&mut self, op: &str, a: &str, b: &str) -> String {
        self.op(op, &[a, b], vec![])
    }

    /// The row sums of a `[N, d]` tensor as `[N, 1]`.
    pub fn row_sum(&mut self, x: &str) -> String {
        let axes = self.i64s("axes", &[1], &[1]);
        self.op("ReduceSum", &[x, &axes], vec![("keepdims", Attr::Int(1))])
    }

    /// The model holding this graph, serialised.
    pub fn finish(self, name: &str, doc: &str, metadata: &[(&str, String)]) -> Vec<u8> {
        let model = ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "shortlist".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            domain: String::new(),
            model_version: 1,
            doc_string: doc.into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: name.into(),
                initializer: self.inits,
                doc_string: doc.into(),
                input: self.inputs,
                output: self.outputs,
            }),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: (*k).into(),
                    value: v.clone(),
                })
                .collect(),
        };
        model.encode_to_vec()
    }
}
