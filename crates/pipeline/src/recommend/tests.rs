use super::*;
use crate::ranking::Ranked;
use crate::source::Retrieved;
use crate::testing::retrieved;

/// A source over a fixed score table; `seen` items are excluded on request.
struct Fixed {
    scores: Vec<(&'static str, f32)>,
    seen: Vec<&'static str>,
    title_prefix: &'static str,
}

impl CandidateSource for Fixed {
    fn kind(&self) -> &'static str {
        "retrieval"
    }
    fn retrieve<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        exclude_seen: bool,
        exclude_items: &[&str],
    ) -> Result<Retrieved<'a>> {
        let mut c: Vec<Candidate<'a>> = self
            .scores
            .iter()
            .filter(|(id, _)| !(exclude_seen && self.seen.contains(id)))
            .filter(|(id, _)| !exclude_items.contains(id))
            .map(|&(item_id, score)| Candidate { item_id, score })
            .collect();
        c.sort_by(|a, b| desc(a.score, b.score));
        c.truncate(k);
        Ok(retrieved(c, user.id != "stranger"))
    }
    fn score_items(&self, _user: &User<'_>, item_ids: &[&str], out: &mut [f32]) {
        for (o, id) in out.iter_mut().zip(item_ids) {
            *o = self
                .scores
                .iter()
                .find(|(i, _)| i == id)
                .map_or(f32::NAN, |s| s.1);
        }
    }
    fn item_title(&self, item_id: &str) -> Option<&str> {
        self.scores
            .iter()
            .any(|(i, _)| *i == item_id)
            .then_some(self.title_prefix)
    }
}

/// A ranker whose relevance is a table (default 0) and rating = 5 − relevance;
/// it proposes `own` as its own candidates.
struct Table {
    relevance: Vec<(&'static str, f32)>,
    head: bool,
    own: Vec<&'static str>,
}

impl Ranker for Table {
    fn rank(&self, _u: &User<'_>, ids: &[&str], retrieval: Option<&[f32]>) -> Result<Ranked> {
        assert_eq!(retrieval.map(<[f32]>::len), Some(ids.len()));
        let rel: Vec<f32> = ids
            .iter()
            .map(|id| {
                self.relevance
                    .iter()
                    .find(|(i, _)| i == id)
                    .map_or(0.0, |r| r.1)
            })
            .collect();
        Ok(Ranked {
            ratings: rel.iter().map(|r| 5.0 - r).collect(),
            relevance: self.head.then_some(rel),
            known_user: true,
            unknown_items: Vec::new(),
        })
    }
    fn has_relevance(&self) -> bool {
        self.head
    }
    fn candidates<'a>(
        &'a self,
        _u: &User<'_>,
        _k: usize,
        _n: usize,
        _seen: bool,
        exclude: &[&str],
    ) -> Vec<Candidate<'a>> {
        self.own
            .iter()
            .filter(|id| !exclude.contains(id))
            .map(|&item_id| Candidate {
                item_id,
                score: 0.0,
            })
            .collect()
    }
}

fn primary() -> Fixed {
    Fixed {
        scores: vec![("a", 9.0), ("b", 8.0), ("c", 7.0), ("d", 6.0), ("e", 5.0)],
        seen: vec!["a"],
        title_prefix: "primary",
    }
}

fn req<'a>(k: usize, n: usize, order: Order, exclude: &'a [&'a str]) -> Request<'a> {
    Request {
        user: User::id("u"),
        k,
        num_candidates: n,
        exclude_seen: true,
        exclude_items: exclude,
        order,
    }
}

fn ids<'a>(r: &Recommendation<'a>) -> Vec<&'a str> {
    r.items.iter().map(|i| i.item_id).collect()
}

#[test]
fn relevance_orders_the_candidates_and_keeps_ratings() {
    let p = primary();
    let t = Table {
        relevance: vec![("d", 3.0), ("c", 2.0)],
        head: true,
        own: vec![],
    };
    let st = Stages {
        primary: &p,
        extra: &[],
        ranker: Some(&t),
    };
    // Candidates b, c, d (a is seen, e beyond num_candidates): d, c, then b.
    let r = recommend(&st, &req(3, 3, Order::Auto, &[])).unwrap();
    assert_eq!(r.order, Order::Relevance);
    assert_eq!(ids(&r), ["d", "c", "b"]);
    assert_eq!(r.items[0].predicted_rating, Some(2.0));
    assert_eq!(r.items[0].retrieval_score, 6.0);
    assert_eq!(r.items[0].title, Some("primary"));
    // By rating (5 − relevance): b (5), c (3), d (2); by retrieval: b, c, d.
    let r = recommend(&st, &req(3, 3, Order::Rating, &[])).unwrap();
    assert_eq!(ids(&r), ["b", "c", "d"]);
    let r = recommend(&st, &req(2, 3, Order::Retrieval, &["b"])).unwrap();
    assert_eq!(ids(&r), ["c", "d"]);
}

/// `Table`, but rating only the items the pipeline asks for after the cut.
struct Deferring {
    table: Table,
    rated: std::sync::Mutex<Vec<String>>,
}

impl Ranker for Deferring {
    fn rank(&self, u: &User<'_>, ids: &[&str], retrieval: Option<&[f32]>) -> Result<Ranked> {
        self.table.rank(u, ids, retrieval)
    }
    fn rank_relevance(
        &self,
        u: &User<'_>,
        ids: &[&str],
        retrieval: Option<&[f32]>,
    ) -> Result<Ranked> {
        let mut r = self.table.rank(u, ids, retrieval)?;
        r.ratings.clear();
        Ok(r)
    }
    fn ratings(&self, u: &User<'_>, ids: &[&str]) -> Result<Vec<f32>> {
        self.rated
            .lock()
            .unwrap()
            .extend(ids.iter().map(|s| s.to_string()));
        let fake = vec![0.0; ids.len()];
        Ok(self.table.rank(u, ids, Some(&fake))?.ratings)
    }
    fn has_relevance(&self) -> bool {
        true
    }
}

#[test]
fn ordered_by_relevance_only_the_returned_items_are_rated() {
    let p = primary();
    let t = Deferring {
        table: Table {
            relevance: vec![("d", 3.0), ("c", 2.0)],
            head: true,
            own: vec![],
        },
        rated: Default::default(),
    };
    let st = Stages {
        primary: &p,
        extra: &[],
        ranker: Some(&t),
    };
    let r = recommend(&st, &req(2, 4, Order::Auto, &[])).unwrap();
    assert_eq!(ids(&r), ["d", "c"]);
    let ratings: Vec<Option<f32>> = r.items.iter().map(|i| i.predicted_rating).collect();
    assert_eq!(ratings, [Some(2.0), Some(3.0)]);
    assert_eq!(*t.rated.lock().unwrap(), ["d", "c"], "only the top k rated");
    // Ordered by rating, every candidate is rated in the one ranking pass.
    t.rated.lock().unwrap().clear();
    let r = recommend(&st, &req(2, 4, Order::Rating, &[])).unwrap();
    assert_eq!(ids(&r), ["b", "e"]);
    assert!(t.rated.lock().unwrap().is_empty());
}

#[test]
fn a_rating_only_ranker_keeps_the_first_stage_order() {
    let p = primary();
    let t = Table {
        relevance: vec![("d", 3.0)],
        head: false,
        own: vec![],
    };
    let st = Stages {
        primary: &p,
        extra: &[],
        ranker: Some(&t),
    };
    let r = recommend(&st, &req(3, 4, Order::Auto, &[])).unwrap();
    assert_eq!((r.order, ids(&r)), (Order::Retrieval, vec!["b", "c", "d"]));
    assert!(r.items.iter().all(|i| i.ranking_score.is_none()));
    let err = recommend(&st, &req(3, 4, Order::Relevance, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "order_by \"relevance\" needs a ranking model with a relevance head"
    );
    let none = Stages {
        primary: &p,
        extra: &[],
        ranker: None,
    };
    let err = recommend(&none, &req(3, 4, Order::Rating, &[])).unwrap_err();
    assert_eq!(err.to_string(), "order_by \"rating\" needs a ranking model");
    assert_eq!(
        recommend(&none, &req(0, 4, Order::Auto, &[]))
            .unwrap_err()
            .to_string(),
        "k must be at least 1"
    );
}

#[test]
fn extra_sources_and_own_candidates_are_merged_once_and_scored_by_the_primary() {
    let p = primary();
    let other = Fixed {
        scores: vec![("e", 1.0), ("x", 0.5), ("b", 0.4)],
        seen: vec![],
        title_prefix: "other",
    };
    let t = Table {
        relevance: vec![("x", 9.0), ("e", 8.0), ("own", 7.0), ("a", 100.0)],
        head: true,
        own: vec!["own", "b", "a"],
    };
    let extra: [(&dyn CandidateSource, usize); 1] = [(&other, 2)];
    let st = Stages {
        primary: &p,
        extra: &extra,
        ranker: Some(&t),
    };
    // Primary gives b, c (n = 2); the other source adds e and x (quota 2); the
    // ranker adds "own" ("b" is a duplicate; "a" is excluded by the request).
    let r = recommend(&st, &req(10, 2, Order::Auto, &["a"])).unwrap();
    assert_eq!(ids(&r), ["x", "e", "own", "b", "c"]);
    // Items the primary does not know have a NaN retrieval score; titles come
    // from the source that proposed them.
    assert!(r.items[0].retrieval_score.is_nan());
    assert_eq!(r.items[0].title, Some("other"));
    assert_eq!(r.items[1].retrieval_score, 5.0);
    assert_eq!(r.items[1].title, Some("primary"));
    assert_eq!(r.items[2].title, None);
}

#[test]
fn unknown_users_get_no_own_candidates() {
    let p = primary();
    let t = Table {
        relevance: vec![],
        head: true,
        own: vec!["own"],
    };
    let st = Stages {
        primary: &p,
        extra: &[],
        ranker: Some(&t),
    };
    let mut q = req(10, 10, Order::Auto, &[]);
    q.user = User::id("stranger");
    let r = recommend(&st, &q).unwrap();
    assert!(!r.known_user);
    assert!(!ids(&r).contains(&"own"));
}

/// A source over items a..f (rows 1..6 of `rules::tests::attributes`), scored
/// f > e > … > a, that honours an allow-bitmap as an index would.
struct Attributed {
    attrs: shortlist_model::attributes::ItemAttributes,
}

const ITEMS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

impl CandidateSource for Attributed {
    fn kind(&self) -> &'static str {
        "retrieval"
    }
    fn retrieve<'a>(
        &'a self,
        user: &User<'_>,
        k: usize,
        seen: bool,
        exclude: &[&str],
    ) -> Result<Retrieved<'a>> {
        let all = shortlist_index::ItemBitmap::all(7);
        self.retrieve_allowed(user, k, seen, exclude, &all)
    }
    fn retrieve_allowed<'a>(
        &'a self,
        _user: &User<'_>,
        k: usize,
        _seen: bool,
        exclude: &[&str],
        allow: &shortlist_index::ItemBitmap,
    ) -> Result<Retrieved<'a>> {
        let candidates = ITEMS
            .iter()
            .enumerate()
            .rev()
            .filter(|(r, id)| allow.contains(*r as u32 + 1) && !exclude.contains(id))
            .take(k)
            .map(|(r, &item_id)| Candidate {
                item_id,
                score: r as f32,
            })
            .collect();
        Ok(Retrieved {
            candidates,
            known_user: true,
            path: UserPath::Known,
        })
    }
    fn score_items(&self, _user: &User<'_>, ids: &[&str], out: &mut [f32]) {
        for (o, id) in out.iter_mut().zip(ids) {
            *o = ITEMS
                .iter()
                .position(|i| i == id)
                .map_or(f32::NAN, |p| p as f32);
        }
    }
    fn item_title(&self, _item_id: &str) -> Option<&str> {
        None
    }
    fn attributes(&self) -> Option<std::sync::Arc<shortlist_model::attributes::ItemAttributes>> {
        Some(std::sync::Arc::new(self.attrs.clone()))
    }
    fn item_row(&self, item_id: &str) -> Option<u32> {
        ITEMS
            .iter()
            .position(|i| *i == item_id)
            .map(|p| p as u32 + 1)
    }
}

#[test]
fn rules_filter_inside_retrieval_cap_per_label_and_boost_fresh_items() {
    use serde_json::json;
    let p = Attributed {
        attrs: crate::rules::tests::attributes(),
    };
    // Another source proposes "x" (unknown to the primary: never admitted by a
    // filter) and "b" and "c".
    let other = Fixed {
        scores: vec![("x", 9.0), ("b", 8.0), ("c", 7.0)],
        seen: vec![],
        title_prefix: "other",
    };
    let extra: [(&dyn CandidateSource, usize); 1] = [(&other, 3)];
    let st = Stages {
        primary: &p,
        extra: &extra,
        ranker: None,
    };
    let run = |k: usize,
               n: usize,
               f: Option<serde_json::Value>,
               m: Option<serde_json::Value>,
               fr: Option<serde_json::Value>| {
        let rules = Rules::parse(f.as_ref(), m.as_ref(), fr.as_ref(), 2_000_000).unwrap();
        let r = recommend_with(&st, &req(k, n, Order::Auto, &[]), &rules).unwrap();
        ids(&r).into_iter().map(String::from).collect::<Vec<_>>()
    };
    // Without rules: f, e, d (n = 3) then the other source's x, b, c by the
    // primary's score (x unknown: NaN, last).
    assert_eq!(run(10, 3, None, None, None), ["f", "e", "d", "c", "b", "x"]);
    // Shoes are a, b, d: with n = 2 the index still finds two shoes (d, b), not
    // the two best items minus the non-shoes; the other source's c and x drop out.
    let shoes = json!({"category": ["shoes"]});
    assert_eq!(run(2, 2, Some(shoes.clone()), None, None), ["d", "b"]);
    // A filter that leaves fewer than k items returns those there are.
    assert_eq!(run(10, 10, Some(shoes), None, None), ["d", "b", "a"]);
    let cheap = json!({"price": {"lt": 20}});
    assert_eq!(run(10, 10, Some(cheap), None, None), ["e", "a"]);
    // At most one per category: f (hats), d (shoes), e (no category: uncapped).
    let one = json!({"category": 1});
    assert_eq!(run(3, 6, None, Some(one.clone()), None), ["f", "e", "d"]);
    assert_eq!(
        run(10, 6, None, Some(one.clone()), None),
        ["f", "e", "d", "x"]
    );
    // Caps that leave fewer than k of the candidates fetch more: the primary alone,
    // 2 candidates (f, e) hold one hat and one uncategorised item; asked for 3, the
    // refill (8 candidates) finds the shoe d.
    let alone = Stages {
        primary: &p,
        extra: &[],
        ranker: None,
    };
    let capped = |k: usize, n: usize| {
        let rules = Rules::parse(None, Some(&one), None, 2_000_000).unwrap();
        let r = recommend_with(&alone, &req(k, n, Order::Auto, &[]), &rules).unwrap();
        ids(&r).into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(capped(3, 2), ["f", "e", "d"]);
    assert_eq!(capped(3, 1), ["f", "e", "d"]);
    // Every item fetched and still fewer than k: those there are.
    assert_eq!(capped(10, 2), ["f", "e", "d"]);
    // a launched at 1,000,000 s, e has no date, the others launched at 0; now is
    // 2,000,000 s (a is 11.6 days old, the others 23.1). A 1-day half-life leaves
    // boosts too small to move anything.
    let old = json!({"attribute": "launched", "half_life_days": 1, "weight": 10});
    assert_eq!(run(2, 6, None, None, Some(old)), ["f", "e"]);
    // 100 days, weight 10: a +9.23, the others +8.52, e (no date) nothing: e
    // falls behind b.
    let fresh = json!({"attribute": "launched", "half_life_days": 100, "weight": 10});
    assert_eq!(
        run(10, 3, None, None, Some(fresh)),
        ["f", "d", "c", "b", "e", "x"]
    );
    // Weight 100: a (score 0 + 92.3) overtakes f (5 + 85.2).
    let strong = json!({"attribute": "launched", "half_life_days": 100, "weight": 100});
    assert_eq!(run(2, 6, None, None, Some(strong)), ["a", "f"]);
    // An attribute the items lack: the 400 names it.
    let rules = Rules::parse(Some(&json!({"colour": ["red"]})), None, None, 0).unwrap();
    let e = recommend_with(&st, &req(3, 3, Order::Auto, &[]), &rules).unwrap_err();
    assert_eq!(
        e.to_string(),
        "filter.colour: unknown attribute; the items have: category, tags, price, launched"
    );
}

#[test]
fn order_names_round_trip() {
    for o in [
        Order::Auto,
        Order::Relevance,
        Order::Rating,
        Order::Retrieval,
    ] {
        assert_eq!(Order::parse(o.as_str()).unwrap(), o);
    }
    assert!(Order::parse("best").is_err());
}
