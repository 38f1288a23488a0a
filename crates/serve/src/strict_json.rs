//! JSON parsing that refuses duplicate object keys at any depth.
//!
//! `serde_json::Value` keeps the last of two equal keys, so `{"instances": [a],
//! "instances": [b]}` would silently predict for `b` only. A client that sends such a
//! body has a bug; it gets a 400 naming the key and where it is instead.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `body` as JSON into a [`Value`], with the error of `serde_json` (line and
/// column) for malformed input and `duplicate key "K" at line L column C` for a key
/// repeated within one object.
pub(crate) fn from_slice(body: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Strict>(body).map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so this is always Some.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key \"{key}\"")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_serde_json() {
        let text = br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        assert_eq!(
            from_slice(text).unwrap(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
        assert_eq!(from_slice(b"[]").unwrap(), json!([]));
    }

    #[test]
    fn duplicate_keys_are_named_with_their_place() {
        let e = from_slice(br#"{"instances": [1], "instances": [2]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "duplicate key \"instances\" at line 1 column 30"
        );
        let e = from_slice(b"{\"instances\": [{\"user_id\": \"1\",\n \"user_id\": \"2\"}]}")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "duplicate key \"user_id\" at line 2 column 10"
        );
        // The same key in sibling objects is fine.
        assert!(from_slice(br#"[{"a": 1}, {"a": 2}]"#).is_ok());
    }

    #[test]
    fn malformed_json_keeps_serde_json_errors() {
        let e = from_slice(br#"{"a": }"#).unwrap_err();
        assert_eq!(e.to_string(), "expected value at line 1 column 7");
    }
}
