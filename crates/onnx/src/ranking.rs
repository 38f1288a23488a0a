//! The ranking model's prediction as one graph: every ensemble member's forward pass
//! (features → optional cross layers → MLP, plus biases and the dot term), their mean,
//! the AutoRec blend for covered pairs, and the clip — what
//! [`RankingModel::predict_batch`] computes.

use shortlist_model::{
    Activation, AutoRec, Dense, Lookup, Objective, RankingModel, ScoringCache, Side,
};

use crate::builder::{Attr, Graph};
use crate::{Error, Result};

/// Name of the ranking graph's output.
pub const OUTPUT: &str = "prediction";

/// The serialised ranking graph of `model` (inputs `user`, `item`: vocabulary rows).
pub fn graph(model: &RankingModel) -> Result<Vec<u8>> {
    graph_with(model, true)
}

/// [`graph`], from the scoring caches when `from_caches` and every member has one
/// (the compact graph), else from the features member by member (what a model with
/// cross layers gets; the tests check both forms).
pub fn graph_with(model: &RankingModel, from_caches: bool) -> Result<Vec<u8>> {
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
    let folded = if click || !from_caches {
        None
    } else {
        folded(&mut g, model, &user, &item)
    };
    let mut acc = match folded {
        Some(out) => out,
        None => {
            let mut acc = member(&mut g, model, 0, &user, &item, click)?;
            for (k, m) in model.members.iter().enumerate() {
                let r = member(&mut g, m, k + 1, &user, &item, click)?;
                acc = g.bin("Add", &acc, &r);
            }
            if !model.members.is_empty() {
                let inv = g.scalar("inv_members", 1.0 / (model.members.len() + 1) as f32);
                acc = g.bin("Mul", &acc, &inv);
            }
            if let Some(a) = &model.autorec {
                acc = autorec_blend(&mut g, a, &acc, &user, &item);
            }
            acc
        }
    };
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

/// A row's first-layer part from a member's scoring cache.
type Part = for<'a> fn(&'a ScoringCache, &RankingModel, usize) -> &'a [f32];

/// The ensemble's prediction before the clip, `[N, 1]`, for a rating (or multitask)
/// model whose members all carry the scoring cache our scorer uses
/// (`RankingModel::prepare_scoring`: the first MLP layer's user part and item part per
/// vocabulary row); `None` when one has none (cross layers, a one-layer MLP, a cache
/// too large), and the graph is then built from the features, member by member.
///
/// ONNX Runtime's cost per pair is mostly per node, so the members run side by side
/// and every term that is a product of a user row and an item row shares one product:
///
/// * `mlp`: one gather of every member's first-layer user part and one of their item
///   parts, add, ReLU, each member's middle layers (deeper MLPs only) and their last
///   layers stacked into one column scaled by `1/M`: the members' mean MLP output;
/// * `P = X_user[u] ⊙ X_item[i]`, summed by column groups with a constant selector
///   matrix: `extra = Σ_k [u_vec_k, b_u_k, 1] · [q_i_k, 1, b_i_k] / M` (biases and dot
///   terms), `blend = w·(dec_u · code_i + b_u)` (the AutoRec, its rows zero for users
///   and items without training ratings) and `c = −w·known_u·known_i`;
/// * `out = (mlp + extra)·(1 + c) + blend`: `(1 − w)·mean + w·autorec` on covered
///   pairs, the mean elsewhere, as `AutoRec::blend`.
fn folded(g: &mut Graph, model: &RankingModel, user: &str, item: &str) -> Option<String> {
    let members: Vec<&RankingModel> = std::iter::once(model).chain(&model.members).collect();
    let caches: Vec<&ScoringCache> = members
        .iter()
        .map(|m| m.scoring_cache())
        .collect::<Option<_>>()?;
    let (nu, ni) = (model.num_users(), model.num_items());
    let m = members.len();
    let inv = 1.0 / m as f32;
    let h1: Vec<usize> = members.iter().map(|m| m.mlp.layers[0].output).collect();
    let width: usize = h1.iter().sum();
    // Each member's first-layer parts of every row (computed now where the cache
    // fills its rows on first use).
    let tables = |rows: usize, part: Part| -> Vec<Vec<f32>> {
        members
            .iter()
            .zip(&caches)
            .map(|(mm, c)| {
                (0..rows)
                    .flat_map(|r| part(c, mm, r).iter().copied())
                    .collect()
            })
            .collect()
    };
    let (user_tables, item_tables) = (
        tables(nu, ScoringCache::user_part),
        tables(ni, ScoringCache::item_part),
    );
    let cu = side_by_side(nu, &h1, &user_tables);
    let ci = side_by_side(ni, &h1, &item_tables);
    let cu = g.f32s("first_layer/user", &[nu, width], &cu);
    let ci = g.f32s("first_layer/item", &[ni, width], &ci);
    let (cu, ci) = (g.gather(&cu, user), g.gather(&ci, item));
    let pre = g.bin("Add", &cu, &ci);
    let h = g.op("Relu", &[&pre], vec![]);
    let deep = members.iter().any(|m| m.mlp.layers.len() > 2);
    let x = if deep {
        // Each member's middle layers on its slice of the first layer's output.
        let mut outs = Vec::with_capacity(m);
        let mut at = 0;
        for (k, mm) in members.iter().enumerate() {
            let layers = &mm.mlp.layers;
            let starts = g.i64s("slice/start", &[1], &[at as i64]);
            let ends = g.i64s("slice/end", &[1], &[(at + h1[k]) as i64]);
            let axes = g.i64s("slice/axes", &[1], &[1]);
            let mut x = g.op("Slice", &[&h, &starts, &ends, &axes], vec![]);
            at += h1[k];
            for (l, layer) in layers[1..layers.len() - 1].iter().enumerate() {
                x = dense(g, &format!("m{k}/mlp{}", l + 1), layer, &x);
            }
            outs.push(x);
        }
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        g.op("Concat", &refs, vec![("axis", Attr::Int(1))])
    } else {
        h
    };
    // The last layers stacked into one column: Σ_k (w_k · x_k + b_k) / M.
    let lasts: Vec<&Dense> = members.iter().filter_map(|m| m.mlp.layers.last()).collect();
    let w: Vec<f32> = lasts
        .iter()
        .flat_map(|l| l.weight.iter().map(|v| v * inv))
        .collect();
    let b: f32 = lasts.iter().map(|l| l.bias[0]).sum::<f32>() * inv;
    let wt = g.f32s("last_layer/weight", &[w.len(), 1], &w);
    let bt = g.f32s("last_layer/bias", &[1], &[b]);
    let mut out = g.op("Gemm", &[&x, &wt, &bt], vec![]);

    // Column groups of the shared product: (user columns, item columns) per group.
    let (dot, biases) = (model.config.dot, model.config.biases);
    let d = model.features[0].width();
    let e = if dot { d } else { 0 } + if biases { 2 } else { 0 };
    let mut groups: Vec<(Vec<f32>, Vec<f32>, usize)> = Vec::new();
    if e > 0 {
        let (mut uv, mut iv) = (vec![0.0; nu * m * e], vec![0.0; ni * m * e]);
        for (k, mm) in members.iter().enumerate() {
            for u in 0..nu {
                let row = &mut uv[(u * m + k) * e..(u * m + k + 1) * e];
                if dot {
                    for (r, v) in row.iter_mut().zip(caches[k].user_vector(mm, u)) {
                        *r = v * inv;
                    }
                }
                if let Some(ub) = &mm.user_bias {
                    (row[e - 2], row[e - 1]) = (ub.row(u)[0] * inv, inv);
                }
            }
            for i in 0..ni {
                let row = &mut iv[(i * m + k) * e..(i * m + k + 1) * e];
                if let (true, Some(t)) = (dot, &mm.features[1].table) {
                    row[..d].copy_from_slice(t.row(i));
                }
                if let Some(ib) = &mm.item_bias {
                    (row[e - 2], row[e - 1]) = (1.0, ib.row(i)[0]);
                }
            }
        }
        groups.push((uv, iv, m * e));
    }
    if let Some(a) = &model.autorec {
        let (h, w) = (a.config.hidden, a.config.weight);
        let (mut uv, mut iv) = (vec![0.0; nu * (h + 1)], vec![0.0; ni * (h + 1)]);
        for u in (0..nu).filter(|&u| a.user_known[u] == 1) {
            let row = &mut uv[u * (h + 1)..(u + 1) * (h + 1)];
            for (r, v) in row.iter_mut().zip(&a.user_decoder[u * h..(u + 1) * h]) {
                *r = w * v;
            }
            row[h] = w * a.user_bias[u];
        }
        for i in (0..ni).filter(|&i| a.item_known[i] == 1) {
            let row = &mut iv[i * (h + 1)..(i + 1) * (h + 1)];
            row[..h].copy_from_slice(&a.item_code[i * h..(i + 1) * h]);
            row[h] = 1.0;
        }
        groups.push((uv, iv, h + 1));
        let uk: Vec<f32> = a
            .user_known
            .iter()
            .map(|&k| if k == 1 { -w } else { 0.0 })
            .collect();
        let ik: Vec<f32> = a
            .item_known
            .iter()
            .map(|&k| if k == 1 { 1.0 } else { 0.0 })
            .collect();
        groups.push((uk, ik, 1));
    }
    if groups.is_empty() {
        return Some(out);
    }
    let cols: usize = groups.iter().map(|(_, _, c)| c).sum();
    let table = |rows: usize, side: usize| -> Vec<f32> {
        let mut t = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for grp in &groups {
                let (v, c) = (if side == 0 { &grp.0 } else { &grp.1 }, grp.2);
                t.extend_from_slice(&v[r * c..(r + 1) * c]);
            }
        }
        t
    };
    let (ut, it) = (table(nu, 0), table(ni, 1));
    let ut = g.f32s("pair/user", &[nu, cols], &ut);
    let it = g.f32s("pair/item", &[ni, cols], &it);
    let (ur, ir) = (g.gather(&ut, user), g.gather(&it, item));
    let prod = g.bin("Mul", &ur, &ir);
    let sums = if groups.len() == 1 {
        vec![g.row_sum(&prod)]
    } else {
        let mut sel = vec![0.0; cols * groups.len()];
        let mut at = 0;
        for (k, (_, _, c)) in groups.iter().enumerate() {
            for r in at..at + c {
                sel[r * groups.len() + k] = 1.0;
            }
            at += c;
        }
        let sel = g.f32s("pair/groups", &[cols, groups.len()], &sel);
        let grouped = g.op("MatMul", &[&prod, &sel], vec![]);
        let split = g.i64s("pair/split", &[groups.len()], &vec![1; groups.len()]);
        g.op_multi(
            "Split",
            &[&grouped, &split],
            vec![("axis", Attr::Int(1))],
            groups.len(),
        )
    };
    let mut next = sums.iter();
    if e > 0 {
        if let Some(extra) = next.next() {
            out = g.bin("Add", &out, extra);
        }
    }
    if let (Some(blend), Some(c)) = (next.next(), next.next()) {
        let one = g.scalar("one", 1.0);
        let s = g.bin("Add", c, &one);
        out = g.bin("Mul", &out, &s);
        out = g.bin("Add", &out, blend);
    }
    Some(out)
}

/// `(1 − w)·acc + w·(code_i · dec_u + b_u)` where the user and the item had training
/// ratings, `acc` elsewhere (`AutoRec::blend`).
fn autorec_blend(g: &mut Graph, a: &AutoRec, acc: &str, user: &str, item: &str) -> String {
    let h = a.config.hidden;
    let (nu, ni) = (a.user_bias.len(), a.item_known.len());
    let code = g.f32s("autorec/item_code", &[ni, h], &a.item_code);
    let dec = g.f32s("autorec/user_decoder", &[nu, h], &a.user_decoder);
    let bias = g.f32s("autorec/user_bias", &[nu, 1], &a.user_bias);
    let code = g.gather(&code, item);
    let dec = g.gather(&dec, user);
    let prod = g.bin("Mul", &code, &dec);
    let dot = g.row_sum(&prod);
    let bias = g.gather(&bias, user);
    let pred = g.bin("Add", &dot, &bias);
    let w = a.config.weight;
    let (keep, take) = (g.scalar("autorec/1-w", 1.0 - w), g.scalar("autorec/w", w));
    let kept = g.bin("Mul", acc, &keep);
    let taken = g.bin("Mul", &pred, &take);
    let blended = g.bin("Add", &kept, &taken);
    let uk: Vec<bool> = a.user_known.iter().map(|&k| k == 1).collect();
    let ik: Vec<bool> = a.item_known.iter().map(|&k| k == 1).collect();
    let uk = g.bools("autorec/user_known", &[nu, 1], &uk);
    let ik = g.bools("autorec/item_known", &[ni, 1], &ik);
    let uk = g.gather(&uk, user);
    let ik = g.gather(&ik, item);
    let covered = g.bin("And", &uk, &ik);
    g.op("Where", &[&covered, &blended, acc], vec![])
}

/// `rows × Σ widths` row-major: row r is row r of every part (`rows × widths[k]`) in turn.
fn side_by_side(rows: usize, widths: &[usize], parts: &[Vec<f32>]) -> Vec<f32> {
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
