//! Fitting [`ItemNeighbours`]: each item's `n` most similar items by the cosine of
//! their interaction columns, counted from the training matrix.

use rayon::prelude::*;
use shortlist_model::ItemNeighbours;

use crate::interactions::UserItems;

/// At most this many of an item's users are counted (every `k`-th user of a more
/// popular item, its counts scaled back up): an item's cost is bounded by this many
/// users' histories, whatever its popularity.
pub const MAX_USERS_PER_ITEM: usize = 2_000;

/// The `n` nearest items of every item row of `ui` by cosine (ties to the lower row),
/// counted over each item's users (at most [`MAX_USERS_PER_ITEM`] of them). Items with
/// no interaction, and the out-of-vocabulary rows, have no neighbours and are nobody's.
pub fn fit_neighbours(ui: &UserItems, n: usize) -> ItemNeighbours {
    let ni = ui.by_item.rows();
    let num_oov = ui.spec.item_id.num_oov() as usize;
    let degree: Vec<f64> = (0..ni).map(|i| ui.by_item.row(i).len() as f64).collect();
    let rows: Vec<Vec<(u32, f32)>> = (0..ni)
        .into_par_iter()
        .map_init(
            || (vec![0u32; ni], Vec::<u32>::new()),
            |(counts, touched), a| {
                let users = ui.by_item.row(a);
                if a < num_oov || users.is_empty() || n == 0 {
                    return Vec::new();
                }
                let step = users.len().div_ceil(MAX_USERS_PER_ITEM);
                let mut sampled = 0usize;
                for &u in users.iter().step_by(step) {
                    sampled += 1;
                    for &b in ui.by_user.row(u as usize) {
                        if b as usize == a || (b as usize) < num_oov {
                            continue;
                        }
                        if counts[b as usize] == 0 {
                            touched.push(b);
                        }
                        counts[b as usize] += 1;
                    }
                }
                let scale = degree[a] / sampled as f64;
                let mut row: Vec<(u32, f32)> = touched
                    .iter()
                    .map(|&b| {
                        let c = counts[b as usize] as f64 * scale;
                        (
                            b,
                            (c / (degree[a] * degree[b as usize]).sqrt()).min(1.0) as f32,
                        )
                    })
                    .collect();
                for &b in touched.iter() {
                    counts[b as usize] = 0;
                }
                touched.clear();
                let better =
                    |x: &(u32, f32), y: &(u32, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
                if row.len() > n {
                    row.select_nth_unstable_by(n - 1, better);
                    row.truncate(n);
                }
                row.sort_unstable_by_key(|x| x.0);
                row
            },
        )
        .collect();
    let mut out = ItemNeighbours {
        offsets: Vec::with_capacity(ni + 1),
        items: Vec::new(),
        sims: Vec::new(),
    };
    out.offsets.push(0);
    for row in rows {
        for (b, s) in row {
            out.items.push(b);
            out.sims.push(s);
        }
        out.offsets.push(out.items.len() as u32);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use shortlist_core::dataset::{Dataset, IdMap, Interactions};
    use shortlist_features::FeatureConfig;

    fn dataset(pairs: &[(&str, &str)]) -> Dataset {
        let (mut users, mut items) = (IdMap::default(), IdMap::default());
        let mut it = Interactions::default();
        for (u, i) in pairs {
            it.users.push(users.intern(u));
            it.items.push(items.intern(i));
            it.ratings.push(1.0);
        }
        Dataset {
            users,
            items,
            interactions: it,
            ..Default::default()
        }
    }

    /// Four users: u0 {a, b}, u1 {a, b, c}, u2 {c}, u3 {a}. Item columns: a {u0, u1,
    /// u3}, b {u0, u1}, c {u1, u2}: cos(a, b) = 2/√6, cos(a, c) = 1/√6, cos(b, c) = 1/2.
    #[test]
    fn neighbours_are_the_top_cosines_of_the_item_columns() {
        let pairs = [
            ("u0", "a"),
            ("u0", "b"),
            ("u1", "a"),
            ("u1", "b"),
            ("u1", "c"),
            ("u2", "c"),
            ("u3", "a"),
        ];
        let data = dataset(&pairs);
        let rows: Vec<usize> = (0..pairs.len()).collect();
        let ui = UserItems::build(&data, &rows, &FeatureConfig::default()).unwrap();
        let row = |id: &str| ui.spec.item_id.get(id).unwrap();
        let (a, b, c) = (row("a"), row("b"), row("c"));
        let all = fit_neighbours(&ui, 5);
        all.check(ui.by_item.rows()).unwrap();
        let cos = |m: &ItemNeighbours, x: u32, y: u32| {
            let (items, sims) = m.row(x);
            items.iter().position(|&i| i == y).map(|p| sims[p])
        };
        let close = |v: Option<f32>, w: f64| (v.unwrap() as f64 - w).abs() < 1e-6;
        assert!(close(cos(&all, a, b), 2.0 / 6f64.sqrt()));
        assert!(close(cos(&all, b, a), 2.0 / 6f64.sqrt()));
        assert!(close(cos(&all, a, c), 1.0 / 6f64.sqrt()));
        assert!(close(cos(&all, c, b), 0.5));
        assert_eq!(cos(&all, a, a), None);
        // One neighbour each: the most similar.
        let one = fit_neighbours(&ui, 1);
        one.check(ui.by_item.rows()).unwrap();
        assert_eq!(one.row(a).0, [b]);
        assert_eq!(one.row(b).0, [a]);
        assert_eq!(one.row(c).0, [b]);
        assert!(fit_neighbours(&ui, 0).items.is_empty());
    }
}
