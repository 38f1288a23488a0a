//! Business rules of one request, applied inside the pipeline so that `k` items still
//! come back when many are ruled out:
//!
//! * `filter`: `{"category": ["shoes", "boots"], "price": {"lt": 50}}` — an item is
//!   admissible when every named attribute matches: a categorical or multi-categorical
//!   attribute holds one of the listed labels (a single string means a list of one),
//!   a numeric attribute satisfies every comparison (`lt`, `lte`, `gt`, `gte`). An item
//!   without a value never matches. The admissible items become an [`ItemBitmap`] the
//!   candidate source's index search is restricted to, so the index returns the best
//!   admissible items rather than the best items minus the inadmissible ones.
//! * `max_per`: `{"category": 2}` — at most 2 items of each label of a categorical
//!   attribute in the answer (items without a label are not capped), applied while the
//!   ordered candidates are cut to `k` (the name of Elasticsearch's and Vespa's
//!   "max hits per group"); the candidates come from `num_candidates`, so a cap can
//!   leave fewer than `k` items when the candidates hold too few groups.
//! * `freshness`: `{"attribute": "launched", "half_life_days": 30, "weight": 0.5}` —
//!   adds `weight × 0.5^(age / half_life_days)` to the score that orders the list, where
//!   `age` is the time in days from the numeric attribute (Unix seconds, e.g. a launch
//!   date) to the request (0 for a date in the future); an item without the attribute
//!   gets no boost.
//!
//! The attributes are the candidate source's [`ItemAttributes`] (the raw side features
//! kept with the model). Every mistake is an [`Error::InvalidArgument`] naming the
//! field: an unknown attribute (listing the known ones), a comparison on a categorical
//! attribute, a list for a numeric one, an unknown operator, a value of the wrong type.

use serde_json::Value;
use shortlist_index::ItemBitmap;
use shortlist_model::attributes::{ItemAttributes, Values};

use crate::error::{Error, Result};

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            _ => return None,
        })
    }

    fn holds(self, x: f64, bound: f64) -> bool {
        match self {
            Op::Lt => x < bound,
            Op::Lte => x <= bound,
            Op::Gt => x > bound,
            Op::Gte => x >= bound,
        }
    }
}

/// One condition of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The attribute holds one of these labels.
    In {
        /// Attribute name.
        attribute: String,
        /// Admissible labels.
        labels: Vec<String>,
    },
    /// The numeric attribute satisfies every comparison.
    Compare {
        /// Attribute name.
        attribute: String,
        /// `(operator, bound)` pairs, all required.
        tests: Vec<(Op, f64)>,
    },
}

/// The freshness boost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness<'a> {
    /// Numeric attribute holding Unix seconds.
    pub attribute: &'a str,
    /// Days after which the boost is halved.
    pub half_life_days: f64,
    /// The boost of an item of age 0, added to the ordering score.
    pub weight: f64,
}

/// The rules of one request (none by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules<'a> {
    /// Conditions, all required.
    pub filter: Vec<Condition>,
    /// At most `n` items per label of each of these categorical attributes.
    pub max_per: Vec<(&'a str, usize)>,
    /// The freshness boost.
    pub freshness: Option<Freshness<'a>>,
    /// The request's time (Unix seconds), for the freshness boost.
    pub now: i64,
}

const FILTER_SHAPE: &str =
    "an object of attribute → a list of labels, or {\"lt\"|\"lte\"|\"gt\"|\"gte\": number}";

fn label(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn bad(m: String) -> Error {
    Error::InvalidArgument(m)
}

/// The request's `filter`: attribute → a list of labels (or one label), or →
/// comparisons with numbers.
fn parse_filter(filter: Option<&Value>) -> Result<Vec<Condition>> {
    let mut conditions = Vec::new();
    match filter {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                conditions.push(match v {
                    Value::Array(items) => Condition::In {
                        attribute: name.clone(),
                        labels: items
                            .iter()
                            .enumerate()
                            .map(|(i, x)| {
                                label(x).ok_or_else(|| {
                                    bad(format!(
                                        "filter.{name}[{i}] must be a string label, got {x}"
                                    ))
                                })
                            })
                            .collect::<Result<_>>()?,
                    },
                    Value::String(s) => Condition::In {
                        attribute: name.clone(),
                        labels: vec![s.clone()],
                    },
                    Value::Object(ops) if !ops.is_empty() => Condition::Compare {
                        attribute: name.clone(),
                        tests: ops
                            .iter()
                            .map(|(op, b)| {
                                let o = Op::parse(op).ok_or_else(|| {
                                    bad(format!(
                                        "filter.{name}: unknown operator {op:?}; expected one of lt, lte, gt, gte"
                                    ))
                                })?;
                                let x = b.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                                    bad(format!("filter.{name}.{op} must be a number, got {b}"))
                                })?;
                                Ok((o, x))
                            })
                            .collect::<Result<_>>()?,
                    },
                    other => {
                        return Err(bad(format!(
                            "filter.{name} must be a list of labels or {{\"lt\"|\"lte\"|\"gt\"|\"gte\": number}}, got {other}"
                        )))
                    }
                });
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "field \"filter\" must be {FILTER_SHAPE}, got {other}"
            )))
        }
    }
    Ok(conditions)
}

/// The request's `max_per`: categorical attribute → a positive integer.
fn parse_max_per(max_per: Option<&Value>) -> Result<Vec<(&str, usize)>> {
    let mut caps = Vec::new();
    match max_per {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                let n = v.as_u64().filter(|&n| n > 0).ok_or_else(|| {
                    bad(format!("max_per.{name} must be a positive integer, got {v}"))
                })?;
                caps.push((name.as_str(), usize::try_from(n).unwrap_or(usize::MAX)));
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "field \"max_per\" must be an object of categorical attribute → a positive integer, got {other}"
            )))
        }
    }
    Ok(caps)
}

/// The request's `freshness`: `{"attribute", "half_life_days"? (30), "weight"? (1)}`.
fn parse_freshness(freshness: Option<&Value>) -> Result<Option<Freshness<'_>>> {
    let m = match freshness {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(bad(format!(
                "field \"freshness\" must be {{\"attribute\", \"half_life_days\"?, \"weight\"?}}, got {other}"
            )))
        }
    };
    const FIELDS: &str = "attribute, half_life_days, weight";
    if let Some(k) = m
        .keys()
        .find(|k| !["attribute", "half_life_days", "weight"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "freshness: unknown field {k:?}; expected one of: {FIELDS}"
        )));
    }
    let attribute = match m.get("attribute") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => {
            return Err(bad(format!(
                "freshness.attribute must be an attribute name (string), got {v}"
            )))
        }
        None => return Err(bad("freshness: missing field \"attribute\"".into())),
    };
    let half_life_days = match m.get("half_life_days") {
        None => 30.0,
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "freshness.half_life_days must be a positive number, got {v}"
                ))
            })?,
    };
    let weight = match m.get("weight") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "freshness.weight must be a non-negative number, got {v}"
                ))
            })?,
    };
    Ok(Some(Freshness {
        attribute,
        half_life_days,
        weight,
    }))
}

impl<'a> Rules<'a> {
    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty() && self.max_per.is_empty() && self.freshness.is_none()
    }

    /// Parses the request fields `filter`, `max_per` and `freshness` (each optional;
    /// JSON `null` counts as absent). `now` is the request's time in Unix seconds.
    pub fn parse(
        filter: Option<&Value>,
        max_per: Option<&'a Value>,
        freshness: Option<&'a Value>,
        now: i64,
    ) -> Result<Rules<'a>> {
        Ok(Rules {
            filter: parse_filter(filter)?,
            max_per: parse_max_per(max_per)?,
            freshness: parse_freshness(freshness)?,
            now,
        })
    }

    /// Checks the rules against the item attributes `attrs` of a source of `kind`
    /// and prepares them (the admissible items as a bitmap over `attrs`' rows).
    pub fn compile<'s>(
        &self,
        attrs: Option<&'s ItemAttributes>,
        kind: &str,
    ) -> Result<Compiled<'s>> {
        let mut out = Compiled::default();
        if self.is_empty() {
            return Ok(out);
        }
        let field = if !self.filter.is_empty() {
            "filter"
        } else if !self.max_per.is_empty() {
            "max_per"
        } else {
            "freshness"
        };
        let attrs = attrs.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{field}: the {kind} model keeps no item attributes (attributes.json: train it with the item features, --data, to keep them)"
            ))
        })?;
        let find = |field: &str, name: &str| {
            attrs.get(name).map(|a| &a.values).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{field}.{name}: unknown attribute; the items have: {}",
                    attrs.names()
                ))
            })
        };
        if !self.filter.is_empty() {
            let mut tests: Vec<Box<dyn Fn(u32) -> bool + 's>> = Vec::new();
            for c in &self.filter {
                match c {
                    Condition::In { attribute, labels } => {
                        let v = find("filter", attribute)?;
                        let Some(dict) = v.labels() else {
                            return Err(Error::InvalidArgument(format!(
                                "filter.{attribute}: \"{attribute}\" is a numeric attribute: expected {{\"lt\"|\"lte\"|\"gt\"|\"gte\": number}}, not a list of labels"
                            )));
                        };
                        // A label no item has matches nothing (not an error: the
                        // catalogue may simply have none today).
                        let mut ids: Vec<u32> = labels.iter().filter_map(|l| dict.get(l)).collect();
                        ids.sort_unstable();
                        tests.push(Box::new(move |r| v.has_any(r, &ids)));
                    }
                    Condition::Compare {
                        attribute,
                        tests: ops,
                    } => {
                        let v = find("filter", attribute)?;
                        if !matches!(v, Values::Numeric(_)) {
                            return Err(Error::InvalidArgument(format!(
                                "filter.{attribute}: \"{attribute}\" is a {} attribute: expected a list of labels, not a comparison",
                                v.type_name()
                            )));
                        }
                        let ops = ops.clone();
                        tests.push(Box::new(move |r| {
                            v.number(r)
                                .is_some_and(|x| ops.iter().all(|&(o, b)| o.holds(x, b)))
                        }));
                    }
                }
            }
            let mut allow = ItemBitmap::none(attrs.rows());
            for r in 0..attrs.rows() as u32 {
                if tests.iter().all(|t| t(r)) {
                    allow.insert(r);
                }
            }
            out.allow = Some(allow);
        }
        for &(name, n) in &self.max_per {
            let v = find("max_per", name)?;
            if !matches!(v, Values::Categorical { .. }) {
                return Err(Error::InvalidArgument(format!(
                    "max_per.{name}: \"{name}\" is a {} attribute: the cap needs a categorical one (one label per item)",
                    v.type_name()
                )));
            }
            out.caps.push((v, n));
        }
        if let Some(f) = self.freshness {
            let v = find("freshness", f.attribute)?;
            if !matches!(v, Values::Numeric(_)) {
                return Err(Error::InvalidArgument(format!(
                    "freshness.attribute: \"{}\" is a {} attribute: expected a numeric one (Unix seconds)",
                    f.attribute,
                    v.type_name()
                )));
            }
            out.fresh = Some((v, f.half_life_days, f.weight, self.now));
        }
        Ok(out)
    }
}

/// Rules checked against one source's attributes, ready to apply.
#[derive(Default)]
pub struct Compiled<'s> {
    /// The admissible item rows (`None`: no filter).
    pub allow: Option<ItemBitmap>,
    caps: Vec<(&'s Values, usize)>,
    /// Dates, half-life (days), weight, now.
    fresh: Option<(&'s Values, f64, f64, i64)>,
}

impl Compiled<'_> {
    /// Whether the item of `row` (`None`: unknown to the source) passes the filter.
    pub fn admits(&self, row: Option<u32>) -> bool {
        match &self.allow {
            None => true,
            Some(b) => row.is_some_and(|r| b.contains(r)),
        }
    }

    /// The freshness boost of the item of `row` (0 without a date or a boost).
    pub fn boost(&self, row: Option<u32>) -> f32 {
        let (Some(&(v, half_life, weight, now)), Some(row)) = (self.fresh.as_ref(), row) else {
            return 0.0;
        };
        let Some(t) = v.number(row) else { return 0.0 };
        let age_days = ((now as f64 - t) / 86_400.0).max(0.0);
        (weight * 0.5f64.powf(age_days / half_life)) as f32
    }

    /// Whether any cap applies.
    pub fn has_caps(&self) -> bool {
        !self.caps.is_empty()
    }

    /// Keeps, in order, the first items of `rows` (an ordered list's item rows) that
    /// no cap rules out, at most `k`; returns their positions in `rows`.
    pub fn capped(&self, rows: &[Option<u32>], k: usize) -> Vec<usize> {
        let mut counts: Vec<rustc_hash::FxHashMap<u32, usize>> =
            vec![Default::default(); self.caps.len()];
        let mut keep = Vec::with_capacity(k.min(rows.len()));
        for (pos, row) in rows.iter().enumerate() {
            if keep.len() == k {
                break;
            }
            let labels: Vec<Option<u32>> = self
                .caps
                .iter()
                .map(|(v, _)| row.and_then(|r| v.label(r)))
                .collect();
            let full = self
                .caps
                .iter()
                .zip(&labels)
                .zip(&counts)
                .any(|(((_, n), l), c)| l.is_some_and(|l| c.get(&l).copied().unwrap_or(0) >= *n));
            if full {
                continue;
            }
            for (l, c) in labels.iter().zip(&mut counts) {
                if let Some(l) = l {
                    *c.entry(*l).or_default() += 1;
                }
            }
            keep.push(pos);
        }
        keep
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use shortlist_core::dataset::{Column, ColumnValues, FeatureTable, IdMap};
    use shortlist_features::Vocabulary;

    /// Items a..f: category, tags, price, launched.
    pub(crate) fn attributes() -> ItemAttributes {
        let ids: Vec<String> = ["a", "b", "c", "d", "e", "f"].map(String::from).to_vec();
        let vocab = Vocabulary::from_values(ids.clone(), 1);
        let cats = ["shoes", "shoes", "hats", "shoes", "", "hats"];
        let table = FeatureTable {
            columns: vec![
                Column {
                    name: "category".into(),
                    values: ColumnValues::Categorical(cats.map(String::from).to_vec()),
                },
                Column {
                    name: "tags".into(),
                    values: ColumnValues::MultiCategorical(
                        [
                            vec!["red"],
                            vec![],
                            vec!["red", "sale"],
                            vec!["sale"],
                            vec![],
                            vec![],
                        ]
                        .map(|t| t.into_iter().map(String::from).collect())
                        .to_vec(),
                    ),
                },
                Column {
                    name: "price".into(),
                    values: ColumnValues::Numeric(vec![10.0, 50.0, 49.5, f64::NAN, 5.0, 80.0]),
                },
                Column {
                    name: "launched".into(),
                    values: ColumnValues::Numeric(vec![1_000_000.0, 0.0, 0.0, 0.0, f64::NAN, 0.0]),
                },
            ],
        };
        ItemAttributes::from_table(&vocab, &IdMap::from_raw(ids), &table)
    }

    fn admitted(rules: &Rules<'_>) -> Vec<u32> {
        let a = attributes();
        let c = rules.compile(Some(&a), "retrieval").unwrap();
        c.allow.unwrap().iter().collect()
    }

    #[test]
    fn filters_admit_exactly_the_matching_rows() {
        // Rows: 0 OOV, then a=1, b=2, c=3, d=4, e=5, f=6.
        let f = json!({"category": ["shoes"]});
        assert_eq!(
            admitted(&Rules::parse(Some(&f), None, None, 0).unwrap()),
            [1, 2, 4]
        );
        let f = json!({"category": "hats", "price": {"lt": 50}});
        assert_eq!(
            admitted(&Rules::parse(Some(&f), None, None, 0).unwrap()),
            [3]
        );
        // Bounds: lte 50 admits b (50), gt 10 leaves out a (10); d has no price.
        let f = json!({"price": {"gt": 10, "lte": 50}});
        assert_eq!(
            admitted(&Rules::parse(Some(&f), None, None, 0).unwrap()),
            [2, 3]
        );
        let f = json!({"price": {"gte": 10, "lt": 50}});
        assert_eq!(
            admitted(&Rules::parse(Some(&f), None, None, 0).unwrap()),
            [1, 3]
        );
        // Tags: any of the labels; an unknown label matches nothing.
        let f = json!({"tags": ["sale", "nope"]});
        assert_eq!(
            admitted(&Rules::parse(Some(&f), None, None, 0).unwrap()),
            [3, 4]
        );
        let f = json!({"category": ["boots"]});
        assert!(admitted(&Rules::parse(Some(&f), None, None, 0).unwrap()).is_empty());
    }

    fn parse_err(filter: Value, max_per: Value, fresh: Value) -> String {
        let some = |v: &Value| (!v.is_null()).then_some(v).cloned();
        let (f, m, r) = (some(&filter), some(&max_per), some(&fresh));
        match Rules::parse(f.as_ref(), m.as_ref(), r.as_ref(), 0) {
            Err(e) => e.to_string(),
            Ok(rules) => rules
                .compile(Some(&attributes()), "retrieval")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn every_bad_rule_names_its_field() {
        let n = Value::Null;
        let cases = [
            (json!({"colour": ["red"]}), n.clone(), n.clone(),
             "filter.colour: unknown attribute; the items have: category, tags, price, launched"),
            (json!({"price": {"less": 5}}), n.clone(), n.clone(),
             "filter.price: unknown operator \"less\"; expected one of lt, lte, gt, gte"),
            (json!({"price": {"lt": "50"}}), n.clone(), n.clone(),
             "filter.price.lt must be a number, got \"50\""),
            (json!({"price": ["cheap"]}), n.clone(), n.clone(),
             "filter.price: \"price\" is a numeric attribute: expected {\"lt\"|\"lte\"|\"gt\"|\"gte\": number}, not a list of labels"),
            (json!({"category": {"lt": 3}}), n.clone(), n.clone(),
             "filter.category: \"category\" is a categorical attribute: expected a list of labels, not a comparison"),
            (json!({"category": [true]}), n.clone(), n.clone(),
             "filter.category[0] must be a string label, got true"),
            (json!({"category": 5}), n.clone(), n.clone(),
             "filter.category must be a list of labels or {\"lt\"|\"lte\"|\"gt\"|\"gte\": number}, got 5"),
            (json!(["shoes"]), n.clone(), n.clone(),
             "field \"filter\" must be an object of attribute → a list of labels, or {\"lt\"|\"lte\"|\"gt\"|\"gte\": number}, got [\"shoes\"]"),
            (n.clone(), json!({"category": 0}), n.clone(),
             "max_per.category must be a positive integer, got 0"),
            (n.clone(), json!({"tags": 1}), n.clone(),
             "max_per.tags: \"tags\" is a multi-categorical attribute: the cap needs a categorical one (one label per item)"),
            (n.clone(), json!({"brand": 1}), n.clone(),
             "max_per.brand: unknown attribute; the items have: category, tags, price, launched"),
            (n.clone(), json!(3), n.clone(),
             "field \"max_per\" must be an object of categorical attribute → a positive integer, got 3"),
            (n.clone(), n.clone(), json!({"attribute": "category"}),
             "freshness.attribute: \"category\" is a categorical attribute: expected a numeric one (Unix seconds)"),
            (n.clone(), n.clone(), json!({"attribute": "launched", "half_life_days": 0}),
             "freshness.half_life_days must be a positive number, got 0"),
            (n.clone(), n.clone(), json!({"attribute": "launched", "boost": 1}),
             "freshness: unknown field \"boost\"; expected one of: attribute, half_life_days, weight"),
            (n.clone(), n.clone(), json!({"weight": 1}),
             "freshness: missing field \"attribute\""),
        ];
        for (f, m, r, want) in cases {
            assert_eq!(parse_err(f, m, r), want);
        }
        let f = json!({"category": ["shoes"]});
        let rules = Rules::parse(Some(&f), None, None, 0).unwrap();
        assert_eq!(
            rules.compile(None, "ials").err().unwrap().to_string(),
            "filter: the ials model keeps no item attributes (attributes.json: train it with the item features, --data, to keep them)"
        );
    }

    #[test]
    fn caps_keep_the_best_items_per_label_and_leave_unlabelled_items_alone() {
        let a = attributes();
        let m = json!({"category": 1});
        let c = Rules::parse(None, Some(&m), None, 0)
            .unwrap()
            .compile(Some(&a), "retrieval")
            .unwrap();
        // Ordered rows: a (shoes), b (shoes), c (hats), e (none), f (hats), d (shoes).
        let rows = [Some(1), Some(2), Some(3), Some(5), Some(6), Some(4), None];
        assert_eq!(c.capped(&rows, 10), [0, 2, 3, 6]);
        assert_eq!(c.capped(&rows, 2), [0, 2]);
    }

    #[test]
    fn freshness_halves_per_half_life_and_ignores_undated_items() {
        let a = attributes();
        let fr = json!({"attribute": "launched", "half_life_days": 2, "weight": 0.8});
        // a launched at 1,000,000 s; now is 4 days later: two half-lives.
        let now = 1_000_000 + 4 * 86_400;
        let c = Rules::parse(None, None, Some(&fr), now)
            .unwrap()
            .compile(Some(&a), "retrieval")
            .unwrap();
        assert!((c.boost(Some(1)) - 0.2).abs() < 1e-6);
        assert_eq!(c.boost(Some(0)), 0.0, "the OOV row has no date");
        assert_eq!(c.boost(Some(5)), 0.0, "e has no date");
        assert_eq!(c.boost(None), 0.0);
        // A launch in the future counts as age 0.
        let c = Rules::parse(None, None, Some(&fr), 0)
            .unwrap()
            .compile(Some(&a), "retrieval")
            .unwrap();
        assert!((c.boost(Some(1)) - 0.8).abs() < 1e-6);
    }
}
