//! One member of a JSON text, found and replaced in place: the repair of an admission
//! request rewrites only the affinity it repairs and copies every other byte of the object
//! as it came, instead of reading the object into a tree and writing all of it again.
//!
//! The member is found by serde_json's own parser (escaped keys, nesting and the rest as it
//! reads them), in one pass that skips everything off the path. Positions come from the
//! borrowed values serde_json hands out, which are slices of the text itself.

use std::ops::Range;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::source::path::Segment;

/// Where a member of an object is in a JSON text, or would go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberSpan {
    /// The member is there: the byte range of its value.
    Value(Range<usize>),
    /// The object has other members but not this one: a new member goes right after the
    /// last member's value (so it is written with a comma before it).
    After(usize),
}

/// Finds member `key` of the object at `parent` (a path of names and indices from the
/// root) in `text`. `None` when the path does not lead to an object, or leads to an empty
/// one (it has no member to write after). An error when `text` is not JSON.
pub fn member(
    text: &str,
    parent: &[Segment],
    key: &str,
) -> Result<Option<MemberSpan>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = Descend { path: parent, key }.deserialize(&mut de)?;
    de.end()?;
    let offset = |raw: &RawValue| {
        // A borrowed value is a slice of `text`: its place is its distance from the start.
        let start = (raw.get().as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
        let end = start.saturating_add(raw.get().len());
        (end <= text.len()).then_some(start..end)
    };
    Ok(match found {
        Some(Found {
            value: Some(raw), ..
        }) => offset(raw).map(MemberSpan::Value),
        Some(Found {
            last: Some(raw), ..
        }) => offset(raw).map(|r| MemberSpan::After(r.end)),
        _ => None,
    })
}

/// `text` with `span` filled by `key: value` (`value` is JSON text).
pub fn with_member(text: &str, span: &MemberSpan, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + key.len() + value.len() + 4);
    match span {
        MemberSpan::Value(range) => {
            out.push_str(text.get(..range.start).unwrap_or_default());
            out.push_str(value);
            out.push_str(text.get(range.end..).unwrap_or_default());
        }
        MemberSpan::After(at) => {
            out.push_str(text.get(..*at).unwrap_or_default());
            out.push(',');
            // A key is a JSON string; writing a `&str` cannot fail.
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push(':');
            out.push_str(value);
            out.push_str(text.get(*at..).unwrap_or_default());
        }
    }
    out
}

/// What the descent finds in the parent object.
struct Found<'de> {
    /// The member's value.
    value: Option<&'de RawValue>,
    /// The last member's value.
    last: Option<&'de RawValue>,
}

/// Walks down `path`, skipping everything else, then reads the parent object's members.
struct Descend<'p> {
    path: &'p [Segment],
    key: &'p str,
}

impl<'de> DeserializeSeed<'de> for Descend<'_> {
    type Value = Option<Found<'de>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Descend<'_> {
    type Value = Option<Found<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match self.path.split_first() {
            None => {
                let mut found = Found {
                    value: None,
                    last: None,
                };
                while let Some(wanted) = map.next_key_seed(KeyIs(self.key))? {
                    let raw: &'de RawValue = map.next_value()?;
                    if wanted && found.value.is_none() {
                        found.value = Some(raw);
                    }
                    found.last = Some(raw);
                }
                Ok(Some(found))
            }
            Some((Segment::Name(name), rest)) => {
                let mut found = None;
                let mut seen = false;
                while let Some(wanted) = map.next_key_seed(KeyIs(name))? {
                    if wanted && !seen {
                        seen = true;
                        found = map.next_value_seed(Descend {
                            path: rest,
                            key: self.key,
                        })?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
            Some((Segment::Index(_), _)) => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        if let Some((Segment::Index(wanted), rest)) = self.path.split_first() {
            let mut at = 0;
            loop {
                if at == *wanted {
                    match seq.next_element_seed(Descend {
                        path: rest,
                        key: self.key,
                    })? {
                        Some(f) => found = f,
                        None => break,
                    }
                } else if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                at += 1;
            }
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(found)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A key, compared with the one wanted as serde_json reads it (escapes resolved).
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<bool, E> {
        Err(E::custom("an object key is not a string"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::source::path::JsonPath;
    use serde_json::{Value, json};

    fn spliced(text: &str, parent: &str, key: &str, value: &str) -> Option<Value> {
        let path = JsonPath::parse(parent).unwrap();
        let span = member(text, path.segments(), key).unwrap()?;
        Some(serde_json::from_str(&with_member(text, &span, key, value)).unwrap())
    }

    #[test]
    fn a_member_is_replaced_and_everything_else_is_kept_byte_for_byte() {
        let text = r#"{"spec": {"template": {"spec": {"containers": [{"name": "a"}], "affinity": {"x": 1}, "z": "\u00e9"}}}, "n": 1.50}"#;
        let path = JsonPath::parse("$.spec.template.spec").unwrap();
        let span = member(text, path.segments(), "affinity").unwrap().unwrap();
        let MemberSpan::Value(range) = &span else {
            panic!("{span:?}")
        };
        assert_eq!(&text[range.clone()], r#"{"x": 1}"#);
        let out = with_member(text, &span, "affinity", r#"{"y":2}"#);
        assert_eq!(out, text.replace(r#"{"x": 1}"#, r#"{"y":2}"#));
    }

    #[test]
    fn a_missing_member_goes_after_the_last_one() {
        let got = spliced(
            r#"{"spec": {"containers": [], "nodeName": null} }"#,
            "$.spec",
            "affinity",
            r#"{"a":1}"#,
        );
        assert_eq!(
            got,
            Some(json!({"spec": {"containers": [], "nodeName": null, "affinity": {"a": 1}}}))
        );
    }

    #[test]
    fn keys_are_read_as_json_reads_them_and_the_first_path_match_is_taken() {
        // An escaped key is the same key; a look-alike at another depth is not.
        let text = r#"{"affinity": 0, "sp\u0065c": {"x": {"affinity": 1}, "affinity": null}}"#;
        let path = JsonPath::parse("$.spec").unwrap();
        let span = member(text, path.segments(), "affinity").unwrap().unwrap();
        let MemberSpan::Value(range) = span else {
            panic!()
        };
        assert_eq!(&text[range], "null");
        // Through arrays, by index.
        let text = r#"{"items": [{"a": 1}, {"b": {"c": 2}}]}"#;
        let path = JsonPath::parse("$.items[1].b").unwrap();
        assert_eq!(
            spliced(text, "$.items[1].b", "c", "3"),
            Some(json!({"items": [{"a": 1}, {"b": {"c": 3}}]}))
        );
        assert!(member(text, path.segments(), "zz").unwrap().is_some());
    }

    #[test]
    fn no_span_without_an_object_with_members_and_an_error_for_bad_json() {
        for (text, parent) in [
            (r#"{"spec": []}"#, "$.spec"),
            (r#"{"spec": "x"}"#, "$.spec"),
            (r#"{"spec": {}}"#, "$.spec"),
            (r#"{"other": {"a": 1}}"#, "$.spec"),
            (r#"[{"a": 1}]"#, "$[3]"),
        ] {
            let path = JsonPath::parse(parent).unwrap();
            assert_eq!(
                member(text, path.segments(), "affinity").unwrap(),
                None,
                "{text}"
            );
        }
        let path = JsonPath::parse("$.spec").unwrap();
        assert!(member(r#"{"spec": {"a": 1}"#, path.segments(), "b").is_err());
        assert!(member(r#"{"spec": {"a": 1}} x"#, path.segments(), "b").is_err());
    }
}
