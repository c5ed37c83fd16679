//! Concrete JSONPath: `$`, `.name`, `['name']`, `[index]`, one node of an object.
//!
//! Findings point at one node (`$.spec.template.spec.affinity...`) and fixes write there, so
//! this type is the singular subset of RFC 9535 that designates a single node; it converts to
//! JSON Pointer for patches. Value targets' queries, which may select many nodes, are
//! [`crate::source::query::Query`]; each node they select is named by one of these, read
//! from the query engine's normalized path ([`JsonPath::from_normalized`]).

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An object member.
    Name(String),
    /// An array element.
    Index(usize),
}

/// A singular JSONPath.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

/// Why a JSONPath was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?} at character {at}: {reason}")]
pub struct PathError {
    /// The path as written.
    pub path: String,
    /// 0-based character offset of the problem.
    pub at: usize,
    /// What was expected.
    pub reason: String,
}

impl JsonPath {
    /// The root, `$`.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses a singular JSONPath.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let err = |at: usize, reason: &str| PathError {
            path: text.to_owned(),
            at,
            reason: reason.to_owned(),
        };
        let chars: Vec<char> = text.chars().collect();
        if chars.first() != Some(&'$') {
            return Err(err(0, "a JSONPath starts with '$'"));
        }
        let mut segments = Vec::new();
        let mut i = 1;
        while let Some(&c) = chars.get(i) {
            match c {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while chars
                        .get(end)
                        .is_some_and(|c| is_name_char(*c, end == start))
                    {
                        end += 1;
                    }
                    if end == start {
                        return Err(err(
                            start,
                            "expected a member name after '.' (letters, digits, '_'; use ['name'] for other characters; wildcards and '..' are not singular)",
                        ));
                    }
                    segments.push(Segment::Name(
                        chars.get(start..end).unwrap_or_default().iter().collect(),
                    ));
                    i = end;
                }
                '[' => {
                    i += 1;
                    match chars.get(i) {
                        Some(&q @ ('\'' | '"')) => {
                            i += 1;
                            let mut name = String::new();
                            loop {
                                match chars.get(i) {
                                    None => return Err(err(i, "unterminated quoted name")),
                                    Some('\\') => {
                                        let (c, used) =
                                            unescape(&chars, i + 1).ok_or_else(|| {
                                                err(i, "unsupported escape in quoted name")
                                            })?;
                                        name.push(c);
                                        i += 1 + used;
                                    }
                                    Some(c) if *c == q => {
                                        i += 1;
                                        break;
                                    }
                                    Some(c) => {
                                        name.push(*c);
                                        i += 1;
                                    }
                                }
                            }
                            segments.push(Segment::Name(name));
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let start = i;
                            while chars.get(i).is_some_and(char::is_ascii_digit) {
                                i += 1;
                            }
                            let digits: String =
                                chars.get(start..i).unwrap_or_default().iter().collect();
                            if digits.len() > 1 && digits.starts_with('0') {
                                return Err(err(start, "array indexes have no leading zeros"));
                            }
                            let index = digits
                                .parse()
                                .map_err(|_| err(start, "array index too large"))?;
                            segments.push(Segment::Index(index));
                        }
                        _ => {
                            return Err(err(
                                i,
                                "expected a quoted name or a non-negative index; wildcards, slices, negative indexes and filters are not singular",
                            ));
                        }
                    }
                    if chars.get(i) != Some(&']') {
                        return Err(err(i, "expected ']'"));
                    }
                    i += 1;
                }
                _ => return Err(err(i, "expected '.' or '['")),
            }
        }
        Ok(Self { segments })
    }

    /// Reads a normalized path (RFC 9535, section 2.7: `$['spec'][0]`, what a query engine
    /// names each selected node by). Every normalized path is a singular path, so this is
    /// [`JsonPath::parse`], named for what it reads.
    pub fn from_normalized(text: &str) -> Result<Self, PathError> {
        Self::parse(text)
    }

    /// The steps.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// This path with a member appended.
    #[must_use]
    pub fn name(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.segments.push(Segment::Name(name.to_owned()));
        p
    }

    /// This path with an index appended.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.segments.push(Segment::Index(index));
        p
    }

    /// This path followed by another.
    #[must_use]
    pub fn join(&self, rest: &JsonPath) -> Self {
        let mut p = self.clone();
        p.segments.extend(rest.segments.iter().cloned());
        p
    }

    /// Removes the last step; false at the root.
    pub fn pop(&mut self) -> bool {
        self.segments.pop().is_some()
    }

    /// The value at this path.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(value, |v, s| match s {
            Segment::Name(n) => v.get(n.as_str()),
            Segment::Index(i) => v.get(*i),
        })
    }

    /// The value at this path, mutably.
    pub fn get_mut<'v>(&self, value: &'v mut Value) -> Option<&'v mut Value> {
        self.segments.iter().try_fold(value, |v, s| match s {
            Segment::Name(n) => v.get_mut(n.as_str()),
            Segment::Index(i) => v.get_mut(*i),
        })
    }

    /// RFC 6901 JSON Pointer form (`/spec/template/...`).
    pub fn pointer(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Name(n) => out.push_str(&n.replace('~', "~0").replace('/', "~1")),
                Segment::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }
}

/// The character an RFC 9535 escape stands for (`chars[at]` follows the backslash), and how
/// many characters the escape takes after the backslash: `\b \f \n \r \t \/ \\ \' \"` and
/// `\uXXXX` (a surrogate pair as two).
fn unescape(chars: &[char], at: usize) -> Option<(char, usize)> {
    let hex = |from: usize| -> Option<u32> {
        let digits: String = chars.get(from..from + 4)?.iter().collect();
        u32::from_str_radix(&digits, 16).ok()
    };
    let simple = match chars.get(at)? {
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        c @ ('/' | '\\' | '\'' | '"') => *c,
        'u' => {
            let high = hex(at + 1)?;
            if (0xD800..0xDC00).contains(&high) {
                if chars.get(at + 5..at + 7)? != ['\\', 'u'] {
                    return None;
                }
                let low = hex(at + 7)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(code).map(|c| (c, 11));
            }
            return char::from_u32(high).map(|c| (c, 5));
        }
        _ => return None,
    };
    Some((simple, 1))
}

/// RFC 9535's member-name shorthand: `name-first` (`first`) or `name-char`.
pub(crate) fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii() || (!first && c.is_ascii_digit())
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.segments {
            match s {
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Name(n) => {
                    let mut chars = n.chars();
                    let shorthand = chars.next().is_some_and(|c| is_name_char(c, true))
                        && chars.all(|c| is_name_char(c, false));
                    if shorthand {
                        write!(f, ".{n}")?;
                    } else {
                        f.write_str("['")?;
                        for c in n.chars() {
                            match c {
                                '\\' => f.write_str("\\\\")?,
                                '\'' => f.write_str("\\'")?,
                                '\u{8}' => f.write_str("\\b")?,
                                '\u{c}' => f.write_str("\\f")?,
                                '\n' => f.write_str("\\n")?,
                                '\r' => f.write_str("\\r")?,
                                '\t' => f.write_str("\\t")?,
                                c if c < ' ' => write!(f, "\\u{:04x}", u32::from(c))?,
                                c => write!(f, "{c}")?,
                            }
                        }
                        f.write_str("']")?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl serde::Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use jsonpath_rust::JsonPath as _;
    use serde_json::json;

    #[test]
    fn round_trips_and_pointer() {
        for p in [
            "$",
            "$.spec.values.authentication.mutual.spire.install.server.affinity",
            "$.metadata.labels['app.kubernetes.io/part-of']",
            "$.items[3].spec",
            "$['it\\'s']",
        ] {
            assert_eq!(JsonPath::parse(p).unwrap().to_string(), p);
        }
        let p = JsonPath::parse("$.metadata.labels['a/b~c'][0]").unwrap();
        assert_eq!(p.pointer(), "/metadata/labels/a~1b~0c/0");
        assert_eq!(JsonPath::parse("$[\"x\"]").unwrap().to_string(), "$.x");
    }

    #[test]
    fn normalized_paths_read_with_every_escape() {
        // What jsonpath-rust names nodes by (RFC 9535, 2.7): `'` and `\` escaped, controls as
        // \b \f \n \r \t or \u00XX.
        let p = JsonPath::from_normalized(
            "$['spec']['a.b'][3]['it\\'s']['back\\\\slash']['\\b\\f\\n\\r\\t\\u0001']",
        )
        .unwrap();
        assert_eq!(
            p.segments(),
            [
                Segment::Name("spec".into()),
                Segment::Name("a.b".into()),
                Segment::Index(3),
                Segment::Name("it's".into()),
                Segment::Name("back\\slash".into()),
                Segment::Name("\u{8}\u{c}\n\r\t\u{1}".into()),
            ]
        );
        assert_eq!(
            p.to_string(),
            "$.spec['a.b'][3]['it\\'s']['back\\\\slash']['\\b\\f\\n\\r\\t\\u0001']"
        );
        assert_eq!(JsonPath::parse(&p.to_string()).unwrap(), p, "round trip");
        // A surrogate pair is one character; a lone one is refused.
        assert_eq!(
            JsonPath::parse("$['\\ud83d\\ude00']").unwrap().segments(),
            [Segment::Name("\u{1F600}".into())]
        );
        assert!(JsonPath::parse("$['\\ud83d']").is_err());
        assert!(JsonPath::parse("$['\\x']").is_err());
    }

    #[test]
    fn refuses_non_singular_paths() {
        for p in [
            "spec",
            "$.*",
            "$..affinity",
            "$.a[*]",
            "$.a[-1]",
            "$.a[?@.b]",
            "$.a[0:2]",
            "$.a.",
            "$.a[01]",
            "$.1a",
        ] {
            assert!(JsonPath::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn agrees_with_jsonpath_rust() {
        let doc =
            json!({"spec": {"values": {"a-b": [1, {"c": "x"}], "server": {"affinity": {"k": 1}}}}});
        for p in [
            "$.spec.values.server.affinity",
            "$.spec.values['a-b'][1].c",
            "$.spec.values['a-b'][0]",
            "$.spec.missing",
            "$.spec.values['a-b'][7]",
        ] {
            let ours = JsonPath::parse(p).unwrap().get(&doc).cloned();
            let theirs: Vec<Value> = doc.query(p).unwrap().into_iter().cloned().collect();
            assert_eq!(ours.into_iter().collect::<Vec<_>>(), theirs, "{p}");
        }
    }
}
