//! [`RecallTarget`]: the mean recall@k an approximate index is asked to deliver, per k
//! (a configuration's `[index] recall_target`), instead of raw search knobs.
//!
//! In TOML either one number for every k, or a table from k to the target, where a
//! query of size k uses the entry with the largest key `≤ k` (the smallest key's entry
//! below it):
//!
//! ```toml
//! [index]
//! recall_target = 0.95
//! # or
//! recall_target = { "10" = 0.99, "100" = 0.95, "1000" = 0.9 }
//! ```
//!
//! As text (index files, command-line flags): `0.95` or `10:0.99,100:0.95,1000:0.9`.
//!
//! A target of 1 asks for exact answers (the index opens everything it must).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The default target: recall@k ≥ 0.95 for every k.
pub const DEFAULT_RECALL_TARGET: f64 = 0.95;

/// Mean recall@k to aim for, per k (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct RecallTarget {
    /// `(k, target)` sorted by `k`, at least one entry, targets in `(0, 1]`.
    entries: Vec<(usize, f64)>,
}

impl Default for RecallTarget {
    fn default() -> Self {
        RecallTarget {
            entries: vec![(1, DEFAULT_RECALL_TARGET)],
        }
    }
}

fn check_target(t: f64) -> Result<f64> {
    if t > 0.0 && t <= 1.0 {
        Ok(t)
    } else {
        Err(Error::invalid(
            "recall_target",
            format!("{t} is not within (0, 1]"),
        ))
    }
}

impl RecallTarget {
    /// The same target for every k.
    pub fn uniform(target: f64) -> Result<Self> {
        Ok(RecallTarget {
            entries: vec![(1, check_target(target)?)],
        })
    }

    /// A target per k (see the [module docs](self) for the k in between).
    pub fn per_k(entries: impl IntoIterator<Item = (usize, f64)>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (k, t) in entries {
            if k == 0 {
                return Err(Error::invalid("recall_target", "k must be at least 1"));
            }
            if map.insert(k, check_target(t)?).is_some() {
                return Err(Error::invalid(
                    "recall_target",
                    format!("k = {k} is given twice"),
                ));
            }
        }
        if map.is_empty() {
            return Err(Error::invalid("recall_target", "no target given"));
        }
        Ok(RecallTarget {
            entries: map.into_iter().collect(),
        })
    }

    /// The target for queries of size `k`.
    pub fn for_k(&self, k: usize) -> f64 {
        let i = self.entries.partition_point(|&(key, _)| key <= k);
        self.entries[i.saturating_sub(1)].1
    }
}

impl fmt::Display for RecallTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [(1, t)] = self.entries[..] {
            return write!(f, "{t}");
        }
        for (i, (k, t)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}:{t}")?;
        }
        Ok(())
    }
}

impl FromStr for RecallTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |what: &str| {
            Error::invalid(
                "recall_target",
                format!(
                    "{s:?}: {what}; expected a number like 0.95 or a list like 10:0.99,100:0.95"
                ),
            )
        };
        if !s.contains(':') {
            return Self::uniform(s.trim().parse().map_err(|_| bad("not a number"))?);
        }
        let entries = s
            .split(',')
            .map(|part| {
                let (k, t) = part
                    .split_once(':')
                    .ok_or_else(|| bad("an entry lacks `:`"))?;
                Ok((
                    k.trim().parse().map_err(|_| bad("a k is not an integer"))?,
                    t.trim()
                        .parse()
                        .map_err(|_| bad("a target is not a number"))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::per_k(entries)
    }
}

impl serde::Serialize for RecallTarget {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let [(1, t)] = self.entries[..] {
            return ser.serialize_f64(t);
        }
        let mut map = ser.serialize_map(Some(self.entries.len()))?;
        for (k, t) in &self.entries {
            map.serialize_entry(&k.to_string(), t)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for RecallTarget {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(f64),
            PerK(BTreeMap<String, f64>),
        }
        let raw = Raw::deserialize(de).map_err(|_| {
            D::Error::custom(
                "recall_target: expected a number in (0, 1] or a table like { \"10\" = 0.99, \"100\" = 0.95 }",
            )
        })?;
        match raw {
            Raw::One(t) => RecallTarget::uniform(t),
            Raw::PerK(map) => map
                .into_iter()
                .map(|(k, t)| {
                    k.trim().parse::<usize>().map(|k| (k, t)).map_err(|_| {
                        Error::invalid("recall_target", format!("key {k:?} is not an integer k"))
                    })
                })
                .collect::<Result<Vec<_>>>()
                .and_then(RecallTarget::per_k),
        }
        .map_err(D::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn per_k_lookup_uses_the_largest_key_not_above_k() {
        let t = RecallTarget::per_k([(100, 0.95), (10, 0.99), (1000, 0.9)]).unwrap();
        let got: Vec<f64> = [1, 9, 10, 99, 100, 999, 1000, 5000]
            .iter()
            .map(|&k| t.for_k(k))
            .collect();
        assert_eq!(got, [0.99, 0.99, 0.99, 0.99, 0.95, 0.95, 0.9, 0.9]);
        assert_eq!(RecallTarget::uniform(0.8).unwrap().for_k(12345), 0.8);
    }

    #[test]
    fn text_and_serde_round_trip() {
        for text in ["0.95", "10:0.99,100:0.95,1000:0.9"] {
            let t: RecallTarget = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<RecallTarget>(&json).unwrap(), t);
        }
        let t: RecallTarget = serde_json::from_str(r#"{"10": 0.99, "100": 0.95}"#).unwrap();
        assert_eq!(t.to_string(), "10:0.99,100:0.95");
    }

    #[test]
    fn bad_targets_are_named_errors() {
        let e = |s: &str| s.parse::<RecallTarget>().unwrap_err().to_string();
        assert_eq!(e("1.5"), "invalid recall_target: 1.5 is not within (0, 1]");
        assert!(e("x").contains("not a number"), "{}", e("x"));
        assert_eq!(
            e("10:0.9,10:0.8"),
            "invalid recall_target: k = 10 is given twice"
        );
        assert_eq!(e("0:0.9"), "invalid recall_target: k must be at least 1");
        let j = serde_json::from_str::<RecallTarget>(r#"{"ten": 0.9}"#)
            .unwrap_err()
            .to_string();
        assert!(j.contains("key \"ten\" is not an integer k"), "{j}");
        let j = serde_json::from_str::<RecallTarget>(r#""high""#)
            .unwrap_err()
            .to_string();
        assert!(j.contains("expected a number in (0, 1]"), "{j}");
    }
}
