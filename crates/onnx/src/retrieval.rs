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
