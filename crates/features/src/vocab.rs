//! Vocabularies: raw value → dense index, out-of-vocabulary slots first.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use shortlist_core::hash::fnv1a64;

use crate::error::{Error, Result};

/// How to build a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VocabConfig {
    /// Values seen fewer times are out of vocabulary.
    pub min_count: u64,
    /// Keep at most this many values (the most frequent).
    pub max_size: Option<usize>,
    /// Out-of-vocabulary slots (≥ 1). With more than one, unknown values are hashed
    /// (FNV-1a, stable everywhere) into a slot, so different unknowns can differ.
    pub num_oov_buckets: u32,
}

impl Default for VocabConfig {
    fn default() -> Self {
        VocabConfig {
            min_count: 1,
            max_size: None,
            num_oov_buckets: 1,
        }
    }
}

impl VocabConfig {
    /// Checks the values.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if self.num_oov_buckets == 0 {
            return Err(Error::InvalidParameter {
                parameter: format!("{prefix}num_oov_buckets"),
                message: "expected at least 1 (index 0 is the out-of-vocabulary slot)".into(),
            });
        }
        if self.max_size == Some(0) {
            return Err(Error::InvalidParameter {
                parameter: format!("{prefix}max_size"),
                message: "expected at least 1".into(),
            });
        }
        Ok(())
    }
}

/// A fitted vocabulary. Indices `0..num_oov_buckets` are out-of-vocabulary slots;
/// known values follow, most frequent first (ties by value, so fitting is deterministic).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "VocabularyRepr", into = "VocabularyRepr")]
pub struct Vocabulary {
    values: Vec<String>,
    num_oov: u32,
    lookup: FxHashMap<String, u32>,
}

impl PartialEq for Vocabulary {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values && self.num_oov == other.num_oov
    }
}

#[derive(Serialize, Deserialize)]
struct VocabularyRepr {
    num_oov_buckets: u32,
    values: Vec<String>,
}

impl From<VocabularyRepr> for Vocabulary {
    fn from(r: VocabularyRepr) -> Self {
        Vocabulary::from_values(r.values, r.num_oov_buckets.max(1))
    }
}

impl From<Vocabulary> for VocabularyRepr {
    fn from(v: Vocabulary) -> Self {
        VocabularyRepr {
            num_oov_buckets: v.num_oov,
            values: v.values,
        }
    }
}

impl Vocabulary {
    /// A vocabulary of `values` in this order after `num_oov` OOV slots.
    pub fn from_values(values: Vec<String>, num_oov: u32) -> Self {
        let lookup = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), num_oov + i as u32))
            .collect();
        Vocabulary {
            values,
            num_oov,
            lookup,
        }
    }

    /// Fits on `values` (each occurrence counts once).
    pub fn fit<'a>(values: impl IntoIterator<Item = &'a str>, cfg: &VocabConfig) -> Self {
        let mut counts: FxHashMap<&'a str, u64> = FxHashMap::default();
        for v in values {
            *counts.entry(v).or_insert(0) += 1;
        }
        Self::from_counts(counts.into_iter(), cfg)
    }

    /// Fits from (value, count) pairs.
    pub fn from_counts<'a>(
        counts: impl Iterator<Item = (&'a str, u64)>,
        cfg: &VocabConfig,
    ) -> Self {
        let mut kept: Vec<(&str, u64)> = counts
            .filter(|(v, c)| *c >= cfg.min_count && !v.is_empty())
            .collect();
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        if let Some(max) = cfg.max_size {
            kept.truncate(max);
        }
        Self::from_values(
            kept.into_iter().map(|(v, _)| v.to_owned()).collect(),
            cfg.num_oov_buckets.max(1),
        )
    }

    /// Index of `value`; unknown values get an OOV slot.
    pub fn index(&self, value: &str) -> u32 {
        match self.lookup.get(value) {
            Some(&i) => i,
            None => self.oov_index(value),
        }
    }

    /// Index of a known value, `None` when out of vocabulary.
    pub fn get(&self, value: &str) -> Option<u32> {
        self.lookup.get(value).copied()
    }

    /// The OOV slot of `value`.
    pub fn oov_index(&self, value: &str) -> u32 {
        if self.num_oov <= 1 {
            0
        } else {
            (fnv1a64(value.as_bytes()) % self.num_oov as u64) as u32
        }
    }

    /// True if `index` is an out-of-vocabulary slot.
    pub fn is_oov(&self, index: u32) -> bool {
        index < self.num_oov
    }

    /// The value at `index` (`None` for OOV slots and out-of-range indices).
    pub fn value(&self, index: u32) -> Option<&str> {
        index
            .checked_sub(self.num_oov)
            .and_then(|k| self.values.get(k as usize))
            .map(String::as_str)
    }

    /// Number of OOV slots.
    pub fn num_oov(&self) -> u32 {
        self.num_oov
    }

    /// Known values in index order.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Total size (OOV slots + known values): the number of embedding rows needed.
    pub fn len(&self) -> usize {
        self.num_oov as usize + self.values.len()
    }

    /// True when no value is known.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_order_and_oov() {
        let v = Vocabulary::fit(["x", "y", "y", "z", "z", "z"], &VocabConfig::default());
        assert_eq!(v.values(), ["z", "y", "x"]);
        assert_eq!((v.index("z"), v.index("x"), v.index("w")), (1, 3, 0));
        assert_eq!(v.get("w"), None);
        assert!(v.is_oov(0) && !v.is_oov(1));
        assert_eq!(v.value(2), Some("y"));
        assert_eq!(v.value(0), None);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn min_count_and_max_size() {
        let data = ["a", "a", "a", "b", "b", "c"];
        let v = Vocabulary::fit(
            data,
            &VocabConfig {
                min_count: 2,
                ..Default::default()
            },
        );
        assert_eq!(v.values(), ["a", "b"]);
        let v = Vocabulary::fit(
            data,
            &VocabConfig {
                max_size: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(v.values(), ["a"]);
        assert_eq!(v.index("b"), 0);
    }

    #[test]
    fn ties_are_broken_by_value() {
        let v = Vocabulary::fit(["q", "p", "r"], &VocabConfig::default());
        assert_eq!(v.values(), ["p", "q", "r"]);
    }

    #[test]
    fn hashed_oov_buckets_are_stable_and_in_range() {
        let cfg = VocabConfig {
            num_oov_buckets: 4,
            ..Default::default()
        };
        let v = Vocabulary::fit(["a", "b"], &cfg);
        assert_eq!(v.index("a"), 4);
        let unknown: Vec<u32> = ["u1", "u2", "u3", "u4", "u5", "u6"]
            .iter()
            .map(|s| v.index(s))
            .collect();
        assert!(unknown.iter().all(|&i| i < 4));
        assert!(
            unknown.iter().any(|&i| i != unknown[0]),
            "hashing spreads unknowns: {unknown:?}"
        );
        // FNV-1a("u1") mod 4, pinned: a change would silently remap saved models.
        assert_eq!(
            v.index("u1"),
            (shortlist_core::hash::fnv1a64(b"u1") % 4) as u32
        );
    }

    #[test]
    fn json_round_trip_rebuilds_lookup() {
        let v = Vocabulary::fit(
            ["a", "b", "b"],
            &VocabConfig {
                num_oov_buckets: 2,
                ..Default::default()
            },
        );
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"num_oov_buckets":2,"values":["b","a"]}"#);
        let back: Vocabulary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.index("a"), 3);
    }

    #[test]
    fn config_validation_names_parameter() {
        let e = VocabConfig {
            num_oov_buckets: 0,
            ..Default::default()
        }
        .validate("features.ids.")
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid features.ids.num_oov_buckets: expected at least 1 (index 0 is the out-of-vocabulary slot)"
        );
    }
}
