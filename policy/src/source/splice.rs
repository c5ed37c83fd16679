//! One member of a JSON text, found and replaced in place: the repair of an admission
//! request rewrites only the affinity it repairs and copies every other byte of the object
//! as it came, instead of reading the object into a tree and writing all of it again.
//!
//! The text has already been read by serde_json (the request, leanly, before anything is
//! repaired), so it is known to be JSON: the member is found by a byte scan that trusts that
//! structure, steps over strings with `memchr` and stops as soon as the member, or the end of
//! its parent object, is reached. That costs a fraction of a parse, where running serde_json's
//! parser again over the request cost as much as reading it. Keys are compared as JSON reads
//! them (an escaped key is decoded before it is compared).

use std::ops::Range;

use crate::source::path::Segment;
use crate::source::scan::Scan;

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
/// root) in `text`, which serde_json has read as JSON. The first member of a name is taken
/// where a name repeats. `None` when the path does not lead to an object, leads to an empty
/// one (it has no member to write after), or the text breaks off before the answer.
pub fn member(text: &str, parent: &[Segment], key: &str) -> Option<MemberSpan> {
    let mut scan = Scan::new(text.as_bytes());
    for segment in parent {
        match segment {
            Segment::Name(name) => enter_member(&mut scan, name)?,
            Segment::Index(index) => enter_element(&mut scan, *index)?,
        }
    }
    scan.space();
    scan.expect(b'{')?;
    let mut last = None;
    loop {
        scan.space();
        if scan.peek()? == b'}' {
            return last.map(MemberSpan::After);
        }
        let name = scan.key()?;
        let value = scan.value()?;
        if key_is(name, key) {
            return Some(MemberSpan::Value(value));
        }
        last = Some(value.end);
        scan.space();
        if scan.peek()? == b',' {
            scan.at += 1;
        }
    }
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

/// Is `raw` (a key's text, quotes included) the key `wanted`?
fn key_is(raw: &[u8], wanted: &str) -> bool {
    match raw.get(1..raw.len().saturating_sub(1)) {
        Some(inner) if !inner.contains(&b'\\') => inner == wanted.as_bytes(),
        _ => serde_json::from_slice::<String>(raw).is_ok_and(|k| k == wanted),
    }
}

/// Moves into the value of member `name` of the object here (the first of that name).
fn enter_member(scan: &mut Scan<'_>, name: &str) -> Option<()> {
    scan.space();
    scan.expect(b'{')?;
    loop {
        scan.space();
        if scan.peek()? == b'}' {
            return None;
        }
        let key = scan.key()?;
        if key_is(key, name) {
            scan.space();
            return Some(());
        }
        scan.value()?;
        scan.space();
        if scan.peek()? == b',' {
            scan.at += 1;
        }
    }
}

/// Moves into element `index` of the array here.
fn enter_element(scan: &mut Scan<'_>, index: usize) -> Option<()> {
    scan.space();
    scan.expect(b'[')?;
    for _ in 0..index {
        scan.space();
        if scan.peek()? == b']' {
            return None;
        }
        scan.value()?;
        scan.space();
        scan.expect(b',')?;
    }
    scan.space();
    (scan.peek()? != b']').then_some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::source::path::JsonPath;
    use serde_json::{Value, json};

    fn spliced(text: &str, parent: &str, key: &str, value: &str) -> Option<Value> {
        let path = JsonPath::parse(parent).unwrap();
        let span = member(text, path.segments(), key)?;
        Some(serde_json::from_str(&with_member(text, &span, key, value)).unwrap())
    }

    #[test]
    fn a_member_is_replaced_and_everything_else_is_kept_byte_for_byte() {
        let text = r#"{"spec": {"template": {"spec": {"containers": [{"name": "a"}], "affinity": {"x": 1}, "z": "\u00e9"}}}, "n": 1.50}"#;
        let path = JsonPath::parse("$.spec.template.spec").unwrap();
        let span = member(text, path.segments(), "affinity").unwrap();
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
        let span = member(text, path.segments(), "affinity").unwrap();
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
        assert!(member(text, path.segments(), "zz").is_some());
    }

    #[test]
    fn no_span_without_an_object_with_members_or_where_the_text_breaks_off() {
        for (text, parent) in [
            (r#"{"spec": []}"#, "$.spec"),
            (r#"{"spec": "x"}"#, "$.spec"),
            (r#"{"spec": {}}"#, "$.spec"),
            (r#"{"other": {"a": 1}}"#, "$.spec"),
            (r#"[{"a": 1}]"#, "$[3]"),
            (r#"{"spec": {"a": 1"#, "$.spec"),
            (r#"{"spec": {"a": "1}"#, "$.spec"),
            (r#"{"spec": {"a" 1}}"#, "$.spec"),
        ] {
            let path = JsonPath::parse(parent).unwrap();
            assert_eq!(member(text, path.segments(), "affinity"), None, "{text}");
        }
    }

    /// The scan agrees with serde_json's reading: over values of every kind, with strings
    /// holding brackets, quotes and escapes, each member found is the value serde_json reads
    /// under that key, and a missing one goes after the last.
    #[test]
    fn every_member_found_is_the_one_serde_json_reads() {
        let text = r#" { "a" : [1, {"]": "}"}, "x\"[{"], "b":{"c":true,"d":null,"e":-1.5e3},
            "\u0062x": "q\\", "f": {"g": [[], {}], "h": "é"} , "z": 0 } "#;
        let tree: Value = serde_json::from_str(text).unwrap();
        for (parent, key) in [
            ("$", "a"),
            ("$", "b"),
            ("$", "bx"),
            ("$", "f"),
            ("$", "z"),
            ("$", "none"),
            ("$.b", "c"),
            ("$.b", "d"),
            ("$.b", "e"),
            ("$.b", "none"),
            ("$.f", "g"),
            ("$.f", "h"),
            ("$.a[1]", "]"),
            ("$.f.g[1]", "k"),
        ] {
            let path = JsonPath::parse(parent).unwrap();
            let span = member(text, path.segments(), key);
            let object = path.get(&tree).and_then(Value::as_object);
            match (span, object.and_then(|o| o.get(key))) {
                (Some(MemberSpan::Value(range)), Some(expected)) => {
                    let got: Value = serde_json::from_str(&text[range]).unwrap();
                    assert_eq!(&got, expected, "{parent} {key}");
                }
                (Some(span @ MemberSpan::After(_)), None) => {
                    let out: Value =
                        serde_json::from_str(&with_member(text, &span, key, "7")).unwrap();
                    assert_eq!(path.get(&out).unwrap()[key], json!(7), "{parent} {key}");
                }
                (None, None) => assert!(object.is_none_or(serde_json::Map::is_empty)),
                (span, expected) => panic!("{parent} {key}: {span:?} against {expected:?}"),
            }
        }
    }
}
