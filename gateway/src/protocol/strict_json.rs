//! JSON bodies read the way every reader must read them: an object that names a key twice is
//! refused. Parsers disagree on which of the two counts (serde_json keeps the last, others the
//! first), so a plugin would judge one value while the upstream acted on the other.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Parses `raw` as one JSON document, refusing duplicate keys at any depth.
pub fn from_slice(raw: &[u8]) -> Result<Value, serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_slice(raw);
    let StrictValue(value) = StrictValue::deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// Longest key quoted in the error (keys are the client's; the error goes back to it).
const QUOTED_KEY: usize = 64;

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(reader: D) -> Result<Self, D::Error> {
        reader.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<StrictValue, A::Error> {
        let mut list = Vec::with_capacity(items.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(item)) = items.next_element()? {
            list.push(item);
        }
        Ok(StrictValue(Value::Array(list)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<StrictValue, A::Error> {
        let mut map = Map::new();
        while let Some(key) = fields.next_key::<String>()? {
            match map.entry(key) {
                Entry::Occupied(taken) => {
                    let key = taken.key();
                    let shown = if key.chars().count() <= QUOTED_KEY {
                        format!("`{key}`")
                    } else {
                        "(a long key)".to_string()
                    };
                    return Err(de::Error::custom(format!(
                        "an object names the key {shown} twice"
                    )));
                }
                Entry::Vacant(slot) => {
                    let StrictValue(value) = fields.next_value()?;
                    slot.insert(value);
                }
            }
        }
        Ok(StrictValue(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_key_named_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"params": {"name": "add", "name": "rm"}}"#,
            r#"[{"ok": 1}, {"x": [ {"k": 1, "k": 1} ]}]"#,
        ] {
            let error = from_slice(body.as_bytes()).unwrap_err().to_string();
            assert!(error.contains("twice"), "{body}: {error}");
        }
        let long = "k".repeat(100);
        let error = from_slice(format!(r#"{{"{long}": 1, "{long}": 2}}"#).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(!error.contains(&long), "{error}");
    }

    #[test]
    fn trailing_text_and_deep_nesting_are_refused_as_before() {
        assert!(from_slice(b"{} {}").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            from_slice(deep.as_bytes()).is_err(),
            "the recursion limit holds"
        );
    }

    proptest! {
        /// Without duplicate keys it reads exactly what serde_json reads.
        #[test]
        fn it_reads_what_serde_json_reads(value in json_value()) {
            let text = value.to_string();
            let plain: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(from_slice(text.as_bytes()).unwrap(), plain);
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
