//! The retrieval model's towers as two graphs. Both towers are sums of embeddings of
//! features fixed per vocabulary row at training time (the id, the side features,
//! the mean embedding of the user's training items; a numeric feature scales its
//! vector), so a tower's exact output for every row is a `rows × dim` table and the
//! graph is one `Gather` from it — smaller than the tower's own tables (the id table
//! alone has that shape) and exact. The query vectors are already divided by the
//! temperature: a score is the plain dot product of a query and a candidate.

use shortlist_model::RetrievalModel;

use crate::builder::Graph;

/// Name of the query graph's output.
pub const QUERY: &str = "query";
/// Name of the candidate graph's output.
pub const CANDIDATE: &str = "candidate";

/// The serialised query-tower graph (input `user`: user vocabulary rows; output
/// `query`, `[N, dim]`).
pub fn query_graph(model: &RetrievalModel) -> Vec<u8> {
    let (n, d) = (model.num_users(), model.dim());
    tower(
        "user",
        QUERY,
        "user vocabulary rows (features.json: user_id; unknown ids → their OOV row)",
        &model.all_queries(),
        [n, d],
        "the query vector of each user row, divided by the temperature",
    )
}

/// The serialised candidate-tower graph (input `item`: item vocabulary rows; output
/// `candidate`, `[N, dim]`).
pub fn candidate_graph(model: &RetrievalModel) -> Vec<u8> {
    let (n, d) = (model.num_items(), model.dim());
    tower(
        "item",
        CANDIDATE,
        "item vocabulary rows (features.json: item_id; unknown ids → their OOV row)",
        &model.all_candidates(),
        [n, d],
        "the candidate vector of each item row",
    )
}

fn tower(
    input: &str,
    output: &str,
    input_doc: &str,
    table: &[f32],
    [rows, dim]: [usize; 2],
    doc: &str,
) -> Vec<u8> {
    let mut g = Graph::default();
    let x = g.index_input(input, input_doc);
    let t = g.f32s(&format!("{output}_table"), &[rows, dim], table);
    g.op_named(
        "Gather",
        &[&t, &x],
        vec![("axis", crate::builder::Attr::Int(0))],
        Some(output),
    );
    g.float_output(output, &[None, Some(dim as i64)], doc);
    g.finish(
        &format!("shortlist_retrieval_{output}"),
        &format!("shortlist retrieval model, {output} tower: {doc}"),
        &[
            ("shortlist.kind", "retrieval".into()),
            ("shortlist.tower", output.into()),
        ],
    )
}

/// Name of the cold-candidate graph's output.
pub const CANDIDATE_FEATURES: &str = "candidate";

/// The padding row of a bag input (categorical, multi-categorical and text features):
/// an entry with this row is not part of the bag.
pub const PAD_ROW: i64 = -1;

/// One input of the cold-candidate graph: an item side feature.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureInput {
    /// The input's name: the feature's column name.
    pub name: String,
    /// `int64` (a bag of vocabulary rows, `[N, L]`, padded with [`PAD_ROW`]) or
    /// `float64` (a raw number, `[N]`, NaN when missing).
    pub dtype: &'static str,
    /// The symbolic shape.
    pub shape: Vec<String>,
    /// How a caller fills it from a raw value.
    pub about: String,
}

/// The candidate tower of a **new item** from its side features alone (no id
/// embedding): what `RetrievalModel::candidate_from_features` computes and the server
/// uses for items added without retraining, so a caller with another runtime can
/// embed products launched after training. `None` when the model has no item side
/// feature with an embedding (a new item then has no vector of its own).
///
/// Inputs, one per item side feature (in the feature spec's order):
/// * categorical, multi-categorical and text features: `int64 [N, L]`, each row the
///   vocabulary rows of the item's labels (tokens for text), padded with [`PAD_ROW`];
///   the graph averages their embeddings. A missing categorical value is the empty
///   string's row; a missing multi-categorical or text value is an all-padding row.
/// * numeric features: `float64 [N]`, the raw value (NaN when missing); the graph
///   applies the fitted normaliser (`(x − mean) / std`, 0 when missing) and the
///   fitted buckets (`1 + #{boundaries ≤ x}`, 0 when missing).
///
/// Output `candidate`, `[N, dim]`.
pub fn candidate_features_graph(model: &RetrievalModel) -> Option<(Vec<u8>, Vec<FeatureInput>)> {
    use crate::builder::Attr;
    use crate::proto::{DOUBLE, FLOAT, INT64};
    use shortlist_features::spec::Transform;
    let d = model.dim();
    let table = |name: &str| {
        model
            .candidate
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.table.as_ref())
    };
    let mut g = Graph::default();
    let mut inputs = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    for f in &model.spec.item_features {
        let name = f.name.as_str();
        match &f.transform {
            Transform::Categorical { .. }
            | Transform::MultiCategorical { .. }
            | Transform::Text { .. } => {
                let Some(t) = table(name) else { continue };
                let len = format!("L_{name}");
                let about = match &f.transform {
                    Transform::Categorical { .. } => format!(
                        "the row of the item's label in feature_spec's item feature {name:?} by index_rule (a missing value: the row of \"\"), shape [N, 1]"
                    ),
                    Transform::MultiCategorical { .. } => format!(
                        "the rows of the item's labels in feature_spec's item feature {name:?} by index_rule, padded with {PAD_ROW} (no label: all padding)"
                    ),
                    _ => format!(
                        "the rows of the text's tokens in feature_spec's item feature {name:?} by index_rule, padded with {PAD_ROW}; tokens: keep alphanumeric characters and whitespace, lower-case, split on whitespace, the first tokenizer.max_tokens (0: all)"
                    ),
                };
                let x = g.symbolic_input(name, INT64, &["N", &len], &about);
                inputs.push(FeatureInput {
                    name: name.into(),
                    dtype: "int64",
                    shape: vec!["N".into(), len],
                    about,
                });
                let zero = g.i64s("zero", &[], &[0]);
                let real = g.bin("GreaterOrEqual", &x, &zero);
                let mask = g.op("Cast", &[&real], vec![("to", Attr::Int(FLOAT.into()))]);
                let rows = g.bin("Max", &x, &zero);
                let tab = g.f32s(&format!("{name}_table"), &[t.rows(), t.dim()], t.data());
                let emb = g.gather(&tab, &rows);
                let count = g.row_sum(&mask);
                let one = g.scalar("one", 1.0);
                let denom = g.bin("Max", &count, &one);
                let w = g.bin("Div", &mask, &denom);
                let axis2 = g.i64s("axes", &[1], &[2]);
                let w3 = g.op("Unsqueeze", &[&w, &axis2], vec![]);
                let weighted = g.bin("Mul", &emb, &w3);
                let axis1 = g.i64s("axes", &[1], &[1]);
                terms.push(g.op(
                    "ReduceSum",
                    &[&weighted, &axis1],
                    vec![("keepdims", Attr::Int(0))],
                ));
            }
            Transform::Numeric {
                normalizer,
                buckets,
            } => {
                let value = table(name);
                let bucket = buckets.as_ref().zip(table(&format!("{name}#bucket")));
                if value.is_none() && bucket.is_none() {
                    continue;
                }
                let about = format!(
                    "the item's raw value of the numeric feature {name:?} (NaN when missing)"
                );
                let x = g.symbolic_input(name, DOUBLE, &["N"], &about);
                inputs.push(FeatureInput {
                    name: name.into(),
                    dtype: "float64",
                    shape: vec!["N".into()],
                    about,
                });
                // NaN ≠ NaN (tract types `IsNaN`'s output as its input).
                let equal = g.bin("Equal", &x, &x);
                let missing = g.op("Not", &[&equal], vec![]);
                let axis1 = g.i64s("axes", &[1], &[1]);
                if let Some(t) = value {
                    let mean = g.f64s("mean", &[], &[normalizer.mean]);
                    let std = g.f64s("std", &[], &[normalizer.std]);
                    let centred = g.bin("Sub", &x, &mean);
                    let z = g.bin("Div", &centred, &std);
                    let z = g.op("Cast", &[&z], vec![("to", Attr::Int(FLOAT.into()))]);
                    let zero = g.scalar("zero", 0.0);
                    let z = g.op("Where", &[&missing, &zero, &z], vec![]);
                    let z = g.op("Unsqueeze", &[&z, &axis1], vec![]);
                    let row0 = g.f32s(&format!("{name}_row0"), &[1, d], t.row(0));
                    terms.push(g.bin("Mul", &z, &row0));
                }
                if let Some((b, t)) = bucket {
                    let present = g.op("Not", &[&missing], vec![]);
                    let present = g.op("Cast", &[&present], vec![("to", Attr::Int(INT64.into()))]);
                    let row = if b.boundaries.is_empty() {
                        present
                    } else {
                        let bounds = g.f64s("boundaries", &[b.boundaries.len()], &b.boundaries);
                        let col = g.op("Unsqueeze", &[&x, &axis1], vec![]);
                        let above = g.bin("GreaterOrEqual", &col, &bounds);
                        let above = g.op("Cast", &[&above], vec![("to", Attr::Int(INT64.into()))]);
                        let passed = g.op(
                            "ReduceSum",
                            &[&above, &axis1],
                            vec![("keepdims", Attr::Int(0))],
                        );
                        let one = g.i64s("one", &[], &[1]);
                        let row = g.bin("Add", &passed, &one);
                        // NaN: row 0 (present is 0 then, and so is the product).
                        g.bin("Mul", &row, &present)
                    };
                    let tab = g.f32s(&format!("{name}_buckets"), &[t.rows(), t.dim()], t.data());
                    terms.push(g.gather(&tab, &row));
                }
            }
        }
    }
    let (last, rest) = terms.split_last()?;
    let mut sum = rest.first().cloned();
    for t in rest.iter().skip(1) {
        sum = sum.map(|s| g.bin("Add", &s, t));
    }
    match sum {
        Some(s) => {
            g.op_named("Add", &[&s, last], vec![], Some(CANDIDATE_FEATURES));
        }
        None => {
            g.op_named("Identity", &[last], vec![], Some(CANDIDATE_FEATURES));
        }
    }
    g.float_output(
        CANDIDATE_FEATURES,
        &[None, Some(d as i64)],
        "the candidate vector of each new item, from its side features alone",
    );
    let bytes = g.finish(
        "shortlist_retrieval_candidate_features",
        "shortlist retrieval model, candidate tower of new items from their side features",
        &[
            ("shortlist.kind", "retrieval".into()),
            ("shortlist.tower", "candidate_features".into()),
        ],
    );
    Some((bytes, inputs))
}
