//! The ranking model's prediction as one graph: every ensemble member's forward pass
//! (features → optional cross layers → MLP, plus biases and the dot term), their mean,
//! the AutoRec blend for covered pairs, and the clip — what
//! [`RankingModel::predict_batch`] computes.

use shortlist_model::{Activation, Dense, Lookup, Objective, RankingModel, Side};

use crate::builder::{Attr, Graph};
use crate::{Error, Result};

/// Name of the ranking graph's output.
pub const OUTPUT: &str = "prediction";

/// The serialised ranking graph of `model` (inputs `user`, `item`: vocabulary rows).
pub fn graph(model: &RankingModel) -> Result<Vec<u8>> {
    let mut g = Graph::default();
    let user = g.index_input(
        "user",
        "user vocabulary rows (features.json: user_id; unknown ids → their OOV row)",
    );
    let item = g.index_input(
        "item",
        "item vocabulary rows (features.json: item_id; unknown ids → their OOV row)",
    );
    let click = model.config.objective == Objective::Click;
    let mut acc = match folded(&mut g, model, &user, &item, click) {
        Some(sum) => sum,
        None => {
            let mut acc = member(&mut g, model, 0, &user, &item, click)?;
            for (k, m) in model.members.iter().enumerate() {
                let r = member(&mut g, m, k + 1, &user, &item, click)?;
                acc = g.bin("Add", &acc, &r);
            }
            acc
        }
    };
    if !model.members.is_empty() {
        let inv = g.scalar("inv_members", 1.0 / (model.members.len() + 1) as f32);
        acc = g.bin("Mul", &acc, &inv);
    }
    if let Some(a) = &model.autorec {
        let h = a.config.hidden;
        let (nu, ni) = (a.user_bias.len(), a.item_known.len());
        let code = g.f32s("autorec/item_code", &[ni, h], &a.item_code);
        let dec = g.f32s("autorec/user_decoder", &[nu, h], &a.user_decoder);
        let bias = g.f32s("autorec/user_bias", &[nu, 1], &a.user_bias);
        let code = g.gather(&code, &item);
        let dec = g.gather(&dec, &user);
        let prod = g.bin("Mul", &code, &dec);
        let dot = g.row_sum(&prod);
        let bias = g.gather(&bias, &user);
        let pred = g.bin("Add", &dot, &bias);
        let w = a.config.weight;
        let (keep, take) = (g.scalar("autorec/1-w", 1.0 - w), g.scalar("autorec/w", w));
        let kept = g.bin("Mul", &acc, &keep);
        let taken = g.bin("Mul", &pred, &take);
        let blended = g.bin("Add", &kept, &taken);
        let uk: Vec<bool> = a.user_known.iter().map(|&k| k == 1).collect();
        let ik: Vec<bool> = a.item_known.iter().map(|&k| k == 1).collect();
        let uk = g.bools("autorec/user_known", &[nu, 1], &uk);
        let ik = g.bools("autorec/item_known", &[ni, 1], &ik);
        let uk = g.gather(&uk, &user);
        let ik = g.gather(&ik, &item);
        let covered = g.bin("And", &uk, &ik);
        acc = g.op("Where", &[&covered, &blended, &acc], vec![]);
    }
    if let Some([lo, hi]) = model.config.clip {
        let (lo, hi) = (g.scalar("clip_lo", lo), g.scalar("clip_hi", hi));
        acc = g.op("Clip", &[&acc, &lo, &hi], vec![]);
    }
    let shape = g.i64s("flat", &[1], &[-1]);
    g.op_named("Reshape", &[&acc, &shape], vec![], Some(OUTPUT));
    let what = if click {
        "click probability"
    } else {
        "predicted rating"
    };
    g.float_output(OUTPUT, &[None], what);
    let doc = format!(
        "shortlist ranking model ({} objective): the {what} of each (user, item) pair: the \
         mean of {} ensemble member(s){}{}",
        model.config.objective.name(),
        model.members.len() + 1,
        if model.autorec.is_some() {
            ", blended with an I-AutoRec for pairs whose user and item had training ratings"
        } else {
            ""
        },
        match model.config.clip {
            Some([lo, hi]) => format!(", clipped to [{lo}, {hi}]"),
            None => String::new(),
        }
    );
    Ok(g.finish(
        "shortlist_ranking",
        &doc,
        &[
            ("shortlist.kind", "ranking".into()),
            ("shortlist.objective", model.config.objective.name().into()),
        ],
    ))
}

/// The sum over the ensemble of the members' scores (through the link for a click
/// model), `[N, 1]`, from the members' scoring caches (`RankingModel::prepare_scoring`:
/// the first MLP layer's user part and item part per vocabulary row), as our scorer
/// computes it: `None` when a member has no cache (cross layers, a one-layer MLP, a
/// cache too large), and the graph is then built from the features.
///
/// The members run side by side: one gather of every member's first-layer user part
/// and one of their item parts, ReLU, each member's middle layers on its slice, the
/// last layers as one block-diagonal `Gemm` (`[N, members]`), and the biases and dot
/// terms of all members as one product of gathered rows `[u_vec, b_u, 1] · [q_i, 1,
/// b_i]` summed per member. A few dozen nodes instead of a few per feature and member:
/// ONNX Runtime's cost per pair is mostly per node.
fn folded(
    g: &mut Graph,
    model: &RankingModel,
    user: &str,
    item: &str,
    click: bool,
) -> Option<String> {
    let members: Vec<&RankingModel> = std::iter::once(model).chain(&model.members).collect();
    let caches: Vec<_> = members
        .iter()
        .map(|m| m.scoring_cache())
        .collect::<Option<_>>()?;
    let (nu, ni) = (model.num_users(), model.num_items());
    let h1: Vec<usize> = members.iter().map(|m| m.mlp.layers[0].output).collect();
    let width: usize = h1.iter().sum();
    // Row-major [rows, Σ h1] tables: member k's columns are its cache's.
    let user_parts: Vec<&[f32]> = caches.iter().map(|c| &c.user[..]).collect();
    let item_parts: Vec<&[f32]> = caches.iter().map(|c| &c.item[..]).collect();
    let cu = side_by_side(nu, &h1, &user_parts);
    let ci = side_by_side(ni, &h1, &item_parts);
    let cu = g.f32s("first_layer/user", &[nu, width], &cu);
    let ci = g.f32s("first_layer/item", &[ni, width], &ci);
    let (cu, ci) = (g.gather(&cu, user), g.gather(&ci, item));
    let pre = g.bin("Add", &cu, &ci);
    let h = g.op("Relu", &[&pre], vec![]);
    // Each member's middle layers on its slice of the first layer's output.
    let mut lasts = Vec::with_capacity(members.len());
    let mut at = 0;
    for (k, m) in members.iter().enumerate() {
        let layers = &m.mlp.layers;
        let mut x = if members.len() == 1 {
            h.clone()
        } else {
            let starts = g.i64s("slice/start", &[1], &[at as i64]);
            let ends = g.i64s("slice/end", &[1], &[(at + h1[k]) as i64]);
            let axes = g.i64s("slice/axes", &[1], &[1]);
            g.op("Slice", &[&h, &starts, &ends, &axes], vec![])
        };
        at += h1[k];
        for (l, layer) in layers[1..layers.len() - 1].iter().enumerate() {
            x = dense(g, &format!("m{k}/mlp{}", l + 1), layer, &x);
        }
        lasts.push((x, &layers[layers.len() - 1]));
    }
    let refs: Vec<&str> = lasts.iter().map(|(x, _)| x.as_str()).collect();
    let x = if refs.len() == 1 {
        lasts[0].0.clone()
    } else {
        g.op("Concat", &refs, vec![("axis", Attr::Int(1))])
    };
    // Block-diagonal last layer: column k holds member k's output weights.
    let rows: usize = lasts.iter().map(|(_, l)| l.input).sum();
    let m = members.len();
    let mut w = vec![0.0; rows * m];
    let mut r0 = 0;
    for (k, (_, l)) in lasts.iter().enumerate() {
        for (j, v) in l.weight.iter().enumerate() {
            w[(r0 + j) * m + k] = *v;
        }
        r0 += l.input;
    }
    let b: Vec<f32> = lasts.iter().map(|(_, l)| l.bias[0]).collect();
    let w = g.f32s("last_layer/weight", &[rows, m], &w);
    let b = g.f32s("last_layer/bias", &[m], &b);
    let mut raw = g.op("Gemm", &[&x, &w, &b], vec![]);
    // Biases and dot terms: [u_vec, b_u, 1] · [q_i, 1, b_i] per member.
    let (dot, biases) = (model.config.dot, model.config.biases);
    let d = model.features[0].width();
    let e = if dot { d } else { 0 } + if biases { 2 } else { 0 };
    if e > 0 {
        let mut uv = vec![0.0; nu * m * e];
        let mut iv = vec![0.0; ni * m * e];
        for (k, mm) in members.iter().enumerate() {
            for u in 0..nu {
                let row = &mut uv[(u * m + k) * e..(u * m + k + 1) * e];
                if dot {
                    row[..d].copy_from_slice(&caches[k].user_vec[u * d..(u + 1) * d]);
                }
                if let Some(ub) = &mm.user_bias {
                    row[e - 2] = ub.row(u)[0];
                    row[e - 1] = 1.0;
                }
            }
            for i in 0..ni {
                let row = &mut iv[(i * m + k) * e..(i * m + k + 1) * e];
                if dot {
                    if let Some(t) = &mm.features[1].table {
                        row[..d].copy_from_slice(t.row(i));
                    }
                }
                if let Some(ib) = &mm.item_bias {
                    row[e - 2] = 1.0;
                    row[e - 1] = ib.row(i)[0];
                }
            }
        }
        let uv = g.f32s("extra/user", &[nu, m * e], &uv);
        let iv = g.f32s("extra/item", &[ni, m * e], &iv);
        let (uv, iv) = (g.gather(&uv, user), g.gather(&iv, item));
        let prod = g.bin("Mul", &uv, &iv);
        let shape = g.i64s("extra/shape", &[3], &[0, m as i64, e as i64]);
        let per = g.op("Reshape", &[&prod, &shape], vec![]);
        let axes = g.i64s("axes", &[1], &[2]);
        let extra = g.op(
            "ReduceSum",
            &[&per, &axes],
            vec![("keepdims", Attr::Int(0))],
        );
        raw = g.bin("Add", &raw, &extra);
    }
    if click {
        raw = g.op("Sigmoid", &[&raw], vec![]);
    }
    Some(g.row_sum(&raw))
}

/// `rows × Σ widths` row-major: row r is row r of every part (`rows × widths[k]`) in turn.
fn side_by_side(rows: usize, widths: &[usize], parts: &[&[f32]]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * widths.iter().sum::<usize>());
    for r in 0..rows {
        for (p, &w) in parts.iter().zip(widths) {
            out.extend_from_slice(&p[r * w..(r + 1) * w]);
        }
    }
    out
}

/// One member's raw score (through the link for a click model), `[N, 1]`.
fn member(
    g: &mut Graph,
    m: &RankingModel,
    k: usize,
    user: &str,
    item: &str,
    click: bool,
) -> Result<String> {
    let mut parts = Vec::with_capacity(m.features.len());
    for f in &m.features {
        let rows = match f.side {
            Side::User => user,
            Side::Item => item,
        };
        let name = format!("m{k}/{}", f.name);
        let part = match (&f.lookup, &f.table) {
            (Lookup::Id, Some(t)) => {
                let table = g.f32s(&name, &[t.rows(), t.dim()], t.data());
                g.gather(&table, rows)
            }
            (Lookup::Index(values), Some(t)) => {
                let table = g.f32s(&name, &[t.rows(), t.dim()], t.data());
                let values: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
                let index = g.i64s(&format!("{name}/index"), &[values.len()], &values);
                let index = g.gather(&index, rows);
                g.gather(&table, &index)
            }
            // Bags (their mean embedding) and numeric values: fixed per entity row, so
            // the graph holds each row's value as the model computes it.
            _ => {
                let n = f.entity_rows().ok_or_else(|| {
                    Error::invalid(format!("feature {}", f.name), "no entity rows")
                })?;
                let w = f.width();
                let mut table = vec![0.0; n * w];
                for (r, out) in table.chunks_exact_mut(w).enumerate() {
                    f.fill(r as u32, out);
                }
                let table = g.f32s(&name, &[n, w], &table);
                g.gather(&table, rows)
            }
        };
        parts.push(part);
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let x0 = g.op("Concat", &refs, vec![("axis", Attr::Int(1))]);
    let mut x = x0.clone();
    for (l, layer) in m.cross.layers.iter().enumerate() {
        let t = dense(g, &format!("m{k}/cross{l}"), layer, &x);
        let prod = g.bin("Mul", &x0, &t);
        x = g.bin("Add", &prod, &x);
    }
    for (l, layer) in m.mlp.layers.iter().enumerate() {
        x = dense(g, &format!("m{k}/mlp{l}"), layer, &x);
    }
    let mut extra: Option<String> = None;
    if let (Some(ub), Some(ib)) = (&m.user_bias, &m.item_bias) {
        let ub = g.f32s(&format!("m{k}/user_bias"), &[ub.rows(), 1], ub.data());
        let ib = g.f32s(&format!("m{k}/item_bias"), &[ib.rows(), 1], ib.data());
        let (ub, ib) = (g.gather(&ub, user), g.gather(&ib, item));
        extra = Some(g.bin("Add", &ub, &ib));
    }
    if m.config.dot {
        let mut p = parts[0].clone();
        if m.config.implicit {
            p = g.bin("Add", &p, &parts[2]);
        }
        let prod = g.bin("Mul", &p, &parts[1]);
        let dot = g.row_sum(&prod);
        extra = Some(match extra {
            Some(s) => g.bin("Add", &s, &dot),
            None => dot,
        });
    }
    if let Some(s) = extra {
        x = g.bin("Add", &x, &s);
    }
    if click {
        x = g.op("Sigmoid", &[&x], vec![]);
    }
    Ok(x)
}

/// `x · W + b` (then ReLU for a ReLU layer) as one `Gemm`.
fn dense(g: &mut Graph, name: &str, layer: &Dense, x: &str) -> String {
    let w = g.f32s(
        &format!("{name}/weight"),
        &[layer.input, layer.output],
        &layer.weight,
    );
    let b = g.f32s(&format!("{name}/bias"), &[layer.output], &layer.bias);
    let y = g.op("Gemm", &[x, &w, &b], vec![]);
    match layer.activation {
        Activation::Relu => g.op("Relu", &[&y], vec![]),
        Activation::Linear => y,
    }
}
