//! Where in a JSON text a `serde_json` error is: the JSON path of the node it is about.
//!
//! Reading a JSON text into a typed value says what is wrong and at which line and column,
//! not at which field. The usual remedy, reading the text again through
//! `serde_path_to_error`, instantiates every `Deserialize` impl a second time, wrapped: in the
//! wasm guest that was a quarter of the module's code, for a path needed only when input is
//! refused. This finds the path from the error's position instead, with one small walk over
//! the text that knows nothing of the target type, so it is the same code for every type.
//!
//! `serde_json` reports the position of the last byte it consumed or peeked when it failed:
//! the last byte of a value it could not accept (a string's closing quote, a number's last
//! digit, an object's `}` for a missing field), the closing quote of a key it does not know,
//! or the byte before a value of the wrong kind. The node is the deepest value that holds
//! that byte, the member whose key or whose gap before its value holds it, or the value that
//! was being read when the text stopped being JSON.

use super::path::JsonPath;
use super::scan::Scan;

/// serde_json's own nesting limit; a text nested deeper was refused before this depth.
const MAX_DEPTH: usize = 256;

/// The path of the node `error` (from reading `json`) is about; the root when the error has no
/// position (it was not raised while reading this text) or is about the document itself.
pub fn error_path(json: &[u8], error: &serde_json::Error) -> JsonPath {
    let Some(last) = byte_at(json, error.line(), error.column()) else {
        return JsonPath::root();
    };
    let mut walk = Walk {
        scan: Scan::new(json),
        last,
    };
    match walk.value(&JsonPath::root(), 0) {
        Ok(()) => JsonPath::root(),
        Err(found) => found,
    }
}

/// The index of the byte at 1-based `line` and `column` (column 0: the line's first byte).
fn byte_at(json: &[u8], line: usize, column: usize) -> Option<usize> {
    let start = match line {
        0 => return None,
        1 => 0,
        _ => {
            json.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(line - 2)?
                .0
                + 1
        }
    };
    Some(
        (start + column)
            .saturating_sub(1)
            .min(json.len().saturating_sub(1)),
    )
}

/// A walk over the text that stops, with `Err(path)`, at the node holding byte `last`.
struct Walk<'a> {
    scan: Scan<'a>,
    last: usize,
}

impl Walk<'_> {
    /// Reads the value at `path`; `Err` with the path found once the walk reaches `last`.
    fn value(&mut self, path: &JsonPath, depth: usize) -> Result<(), JsonPath> {
        self.scan.space();
        // Past `last` before the value starts: the error was raised on seeing it.
        if self.scan.at > self.last || depth > MAX_DEPTH {
            return Err(path.clone());
        }
        match self.scan.peek() {
            Some(b'{') => self.object(path, depth),
            Some(b'[') => self.array(path, depth),
            Some(b'"') => {
                self.scan.string().ok_or_else(|| path.clone())?;
                self.ended(path)
            }
            Some(b'-' | b'0'..=b'9') => {
                while matches!(
                    self.scan.peek(),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.scan.at += 1;
                }
                self.ended(path)
            }
            Some(b't' | b'f' | b'n') => {
                let word = ["true", "false", "null"].into_iter().find(|w| {
                    self.scan
                        .bytes
                        .get(self.scan.at..)
                        .is_some_and(|t| t.starts_with(w.as_bytes()))
                });
                // Not a literal: serde_json stopped in it.
                let word = word.ok_or_else(|| path.clone())?;
                self.scan.at += word.len();
                self.ended(path)
            }
            _ => Err(path.clone()),
        }
    }

    /// The value at `path` ended just before `self.scan.at`: it is the node if it holds `last`.
    fn ended(&self, path: &JsonPath) -> Result<(), JsonPath> {
        if self.scan.at > self.last {
            Err(path.clone())
        } else {
            Ok(())
        }
    }

    fn object(&mut self, path: &JsonPath, depth: usize) -> Result<(), JsonPath> {
        self.scan.at += 1;
        loop {
            self.scan.space();
            match self.scan.peek() {
                Some(b'}') => {
                    self.scan.at += 1;
                    return self.ended(path);
                }
                Some(b',') if self.scan.at < self.last => self.scan.at += 1,
                Some(b'"') => {
                    let range = self.scan.string().ok_or_else(|| path.clone())?;
                    let key = self
                        .scan
                        .bytes
                        .get(range)
                        .and_then(|k| serde_json::from_slice::<String>(k).ok())
                        .ok_or_else(|| path.clone())?;
                    let member = path.name(&key);
                    // The key itself, or the gap after it, holds `last`: this member.
                    if self.scan.at > self.last {
                        return Err(member);
                    }
                    self.scan.space();
                    if self.scan.peek() != Some(b':') || self.scan.at >= self.last {
                        return Err(member);
                    }
                    self.scan.at += 1;
                    self.value(&member, depth + 1)?;
                }
                _ => return Err(path.clone()),
            }
        }
    }

    fn array(&mut self, path: &JsonPath, depth: usize) -> Result<(), JsonPath> {
        self.scan.at += 1;
        let mut index = 0;
        loop {
            self.scan.space();
            match self.scan.peek() {
                Some(b']') => {
                    self.scan.at += 1;
                    return self.ended(path);
                }
                Some(b',') if self.scan.at < self.last => self.scan.at += 1,
                None => return Err(path.clone()),
                Some(_) => {
                    self.value(&path.index(index), depth + 1)?;
                    index += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        b: u32,
        #[serde(default)]
        c: Option<String>,
        #[serde(default)]
        flag: Option<bool>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        a: Inner,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        w: u32,
        #[serde(default, rename = "odd key\"")]
        odd: Option<u8>,
    }

    /// The path this module finds and the one serde_path_to_error tracks, for one text.
    fn both(text: &str) -> (String, String) {
        let error = serde_json::from_str::<Outer>(text).err().unwrap();
        let mut de = serde_json::Deserializer::from_str(text);
        let tracked = serde_path_to_error::deserialize::<_, Outer>(&mut de)
            .err()
            .unwrap();
        (
            error_path(text.as_bytes(), &error).to_string(),
            crate::error::serde_path(tracked.path()).to_string(),
        )
    }

    #[test]
    fn finds_the_node_serde_path_to_error_tracks() {
        for text in [
            r#"{"a": {"b": "x"}}"#,
            r#"{"a": {"b": 1, "d": 2}}"#,
            r#"{"a": {"c": "x"}}"#,
            r#"{"a": {"b": 1}, "list": [{"b": 1}, {"b": -1}]}"#,
            r#"{"a": {"b": 1}, "list": [{"b": 1}, {}]}"#,
            r#"{"a": {"b": 1}, "w": "s" }"#,
            r#"{"a": {"b": 1}, "w": 5000000000 }"#,
            r#"{"a": {"b": 1}, "list": {"b": 1}}"#,
            r#"{"a": {"b": 1}, "list": [{"b": 1},]}"#,
            r#"{"a": {"b": 1}, "w": tru}"#,
            r#"{"a": 3}"#,
            r#"{"a":{"b":1},"w":"s"}"#,
            r#"{"a":{"c":"x"}}"#,
            r#"{"a": {"b": 1, "flag": "yes"}}"#,
            r#"{"a": {"b": 1, "flag": nul}}"#,
            r#"{"a": {"b": 1}, "odd key\"": -3}"#,
            "{\n  \"a\": {\n    \"b\": 1,\n    \"c\": 7\n  }\n}",
            "{\r\n\"a\": {\"b\": 1},\r\n\"list\": [\r\n{\"b\": 2, \"e\": 1}]}",
            r#"[1]"#,
        ] {
            let (found, tracked) = both(text);
            assert_eq!(found, tracked, "{text}");
        }
    }

    #[test]
    fn a_text_that_stops_is_about_the_value_being_read() {
        // serde_path_to_error does not know the key yet ("a.?"); the member is the one read.
        let text = r#"{"a": {"b": 1"#;
        let error = serde_json::from_str::<Outer>(text).err().unwrap();
        assert_eq!(error_path(text.as_bytes(), &error).to_string(), "$.a.b");
        // Text after the document is about the document.
        let text = r#"{"a": {"b": 1}} x"#;
        let error = serde_json::from_str::<Outer>(text).err().unwrap();
        assert_eq!(error_path(text.as_bytes(), &error).to_string(), "$");
        let deep = "[".repeat(10_000);
        let error = serde_json::from_str::<serde_json::Value>(&deep)
            .err()
            .unwrap();
        assert!(error_path(deep.as_bytes(), &error).segments().len() <= MAX_DEPTH + 1);
    }
}
