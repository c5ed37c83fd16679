//! Reading YAML and JSON text into JSON values while keeping where each node came from.
//!
//! Manifests and policy documents are multi-document YAML or JSON. apart turns each document
//! into a `serde_json::Value` (the form the Kubernetes API and the module work with) and can
//! later say at which line a JSON path starts, so that every error and finding names a line.
//! Scalars are resolved with the YAML 1.2 core schema, as Kubernetes' YAML reader does for the
//! values that matter here. Limits protect against hostile input: nesting deeper than
//! [`MAX_DEPTH`] and alias expansion beyond [`MAX_ALIAS_NODES`] are errors, not crashes.

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};
use serde_json::{Map, Number, Value};

use crate::source::path::{JsonPath, Segment};

/// Deepest nesting accepted (serde_json's own limit, so YAML and JSON agree).
pub const MAX_DEPTH: usize = 128;
/// Most nodes alias expansion may produce in one document (stops "billion laughs").
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// A position in source text: 1-based line and column, 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Byte offset into the text.
    pub offset: usize,
}

/// Where a node's text starts and ends (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First character of the node (its anchor or tag included).
    pub start: Position,
    /// Just past the node's last character.
    pub end: Position,
}

/// Malformed text: what the parser expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", position.line, position.column)]
pub struct SyntaxError {
    /// Where the problem was found.
    pub position: Position,
    /// What is wrong.
    pub message: String,
}

/// One document of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's content.
    pub value: Value,
    /// Which document of the file it is (0-based, counting empty ones).
    pub index: usize,
    /// Where the document's content starts.
    pub start: Position,
}

/// Text whose lines can be found from byte offsets, and character columns turned into bytes.
struct Text<'a> {
    text: &'a str,
    /// Byte offset of each character, when the text is not pure ASCII.
    char_offsets: Option<Vec<usize>>,
}

impl<'a> Text<'a> {
    fn new(text: &'a str) -> Self {
        let char_offsets =
            (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        Self { text, char_offsets }
    }

    fn position(&self, marker: &saphyr_parser::Marker) -> Position {
        let offset = match &self.char_offsets {
            None => marker.index(),
            Some(offsets) => offsets
                .get(marker.index())
                .copied()
                .unwrap_or(self.text.len()),
        };
        Position {
            line: marker.line(),
            column: marker.col() + 1,
            offset,
        }
    }

    fn span(&self, span: &YamlSpan) -> Span {
        Span {
            start: self.position(&span.start),
            end: self.position(&span.end),
        }
    }
}

/// Is this text JSON rather than YAML? (First non-blank character opens an object or array
/// and the text does not look like a YAML stream of several documents.)
pub fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// Parses JSON or YAML (chosen by [`looks_like_json`]) into its documents. Empty documents
/// (`---` with nothing after it) are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    if looks_like_json(text) {
        parse_json(text).map(|d| vec![d])
    } else {
        parse_yaml(text)
    }
}

/// Parses one JSON document.
pub fn parse_json(text: &str) -> Result<Document, SyntaxError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SyntaxError {
        position: line_column_to_position(text, e.line(), e.column()),
        message: e.to_string(),
    })?;
    let start = text.len() - text.trim_start().len();
    Ok(Document {
        value,
        index: 0,
        start: offset_to_position(text, start),
    })
}

/// Parses multi-document YAML.
pub fn parse_yaml(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut docs = Vec::new();
    let mut builder = Builder::new(text, None);
    let mut index = 0;
    while let Some(result) = builder.next_document()? {
        if let Some((value, start)) = result {
            docs.push(Document {
                value,
                index,
                start,
            });
        }
        index += 1;
    }
    Ok(docs)
}

/// Finds the span of the node at `path` in the `index`-th document of a YAML text (re-reads
/// the text: used only to report positions and to edit, never on a hot path).
pub fn locate(text: &str, index: usize, path: &JsonPath) -> Option<Span> {
    if looks_like_json(text) {
        return None;
    }
    let mut builder = Builder::new(text, Some(path.segments().to_vec()));
    let mut current = 0;
    while let Ok(Some(_)) = builder.next_document() {
        if current == index {
            return builder.found;
        }
        builder.found = None;
        current += 1;
    }
    None
}

/// The position of the nearest enclosing node of `path` that exists in the text.
pub fn locate_nearest(text: &str, index: usize, path: &JsonPath) -> Option<Span> {
    let mut path = path.clone();
    loop {
        if let Some(span) = locate(text, index, &path) {
            return Some(span);
        }
        if !path.pop() {
            return None;
        }
    }
}

fn offset_to_position(text: &str, offset: usize) -> Position {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line,
        column: before.get(line_start..).map_or(0, |s| s.chars().count()) + 1,
        offset,
    }
}

fn line_column_to_position(text: &str, line: usize, column: usize) -> Position {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    Position {
        line: line.max(1),
        column: column.max(1),
        offset: (line_start + column.saturating_sub(1)).min(text.len()),
    }
}

/// A collection being built.
enum Frame {
    Map {
        map: Map<String, Value>,
        /// A key read, waiting for its value.
        key: Option<String>,
        /// Keys that came from merge keys (`<<`): explicit keys may override them.
        merged: Vec<String>,
        anchor: usize,
        start: Position,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
        start: Position,
    },
}

/// Turns parser events into values, one document at a time.
struct Builder<'a> {
    text: Text<'a>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    stack: Vec<Frame>,
    /// Path from the document root to the node being read.
    path: Vec<Segment>,
    anchors: Vec<(usize, Value)>,
    alias_nodes: usize,
    /// The path to find, and where it was found.
    target: Option<Vec<Segment>>,
    found: Option<Span>,
    /// Start of the node the target path designates, awaiting its end.
    target_start: Option<(Position, usize)>,
    last_end: Position,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str, target: Option<Vec<Segment>>) -> Self {
        Self {
            text: Text::new(text),
            parser: Parser::new_from_str(text),
            stack: Vec::new(),
            path: Vec::new(),
            anchors: Vec::new(),
            alias_nodes: 0,
            target,
            found: None,
            target_start: None,
            last_end: Position::default(),
        }
    }

    fn error(&self, position: Position, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position,
            message: message.into(),
        }
    }

    /// Reads the next document: `Ok(None)` at the end of the stream, `Ok(Some(None))` for an
    /// empty document.
    #[allow(clippy::type_complexity)]
    fn next_document(&mut self) -> Result<Option<Option<(Value, Position)>>, SyntaxError> {
        self.anchors.clear();
        self.alias_nodes = 0;
        let mut root: Option<(Value, Position)> = None;
        let mut in_document = false;
        loop {
            let Some(event) = self.parser.next_event() else {
                return Ok(None);
            };
            let (event, span) = event.map_err(|e| {
                let position = self.text.position(e.marker());
                self.error(position, e.info().to_owned())
            })?;
            let span = self.text.span(&span);
            match event {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(if in_document { Some(root) } else { None }),
                Event::DocumentStart(_) => in_document = true,
                Event::DocumentEnd => {
                    let root = root.take().filter(|(v, _)| !v.is_null());
                    return Ok(Some(root));
                }
                Event::Alias(id) => {
                    let value = self
                        .anchors
                        .iter()
                        .rev()
                        .find(|(a, _)| *a == id)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| self.error(span.start, "alias to an unknown anchor"))?;
                    self.alias_nodes += count_nodes(&value);
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        return Err(self.error(
                            span.start,
                            format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        ));
                    }
                    self.node_start(span.start)?;
                    self.node_end(span.end);
                    if let Some(done) = self.push_value(value, span.start)? {
                        root = Some(done);
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                    let tag = tag.as_ref().map(|t| t.suffix.as_str());
                    let value = if is_key {
                        Value::String(text.into_owned())
                    } else {
                        resolve_scalar(&text, style, tag)
                    };
                    if !is_key {
                        self.node_start(span.start)?;
                        self.node_end(span.end);
                    }
                    if anchor != 0 {
                        self.anchors.push((anchor, value.clone()));
                    }
                    if let Some(done) = self.push_value(value, span.start)? {
                        root = Some(done);
                    }
                }
                Event::MappingStart(anchor, _) => {
                    self.node_start(span.start)?;
                    self.stack.push(Frame::Map {
                        map: Map::new(),
                        key: None,
                        merged: Vec::new(),
                        anchor,
                        start: span.start,
                    });
                }
                Event::SequenceStart(anchor, _) => {
                    self.node_start(span.start)?;
                    self.path.push(Segment::Index(0));
                    self.stack.push(Frame::Seq {
                        items: Vec::new(),
                        anchor,
                        start: span.start,
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    let (value, anchor, start) = match self.stack.pop() {
                        Some(Frame::Map {
                            map, anchor, start, ..
                        }) => (Value::Object(map), anchor, start),
                        Some(Frame::Seq {
                            items,
                            anchor,
                            start,
                        }) => {
                            self.path.pop();
                            (Value::Array(items), anchor, start)
                        }
                        None => return Err(self.error(span.start, "unbalanced collection end")),
                    };
                    // A flow collection ends at its closing bracket; a block one at its last child.
                    let end = if matches!(
                        self.text.text.as_bytes().get(span.start.offset),
                        Some(b']' | b'}')
                    ) {
                        span.end
                    } else {
                        self.last_end
                    };
                    self.node_end(end);
                    if anchor != 0 {
                        self.anchors.push((anchor, value.clone()));
                    }
                    if let Some(done) = self.push_value(value, start)? {
                        root = Some(done);
                    }
                }
            }
        }
    }

    /// Called when a value node starts at the current path.
    fn node_start(&mut self, start: Position) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                start,
                format!("nesting deeper than {MAX_DEPTH} levels is not accepted"),
            ));
        }
        if self.target.as_deref() == Some(self.path.as_slice()) && self.found.is_none() {
            self.target_start = Some((start, self.stack.len()));
        }
        Ok(())
    }

    /// Called when the value node at the current path ends.
    fn node_end(&mut self, end: Position) {
        self.last_end = end;
        if let Some((start, depth)) = self.target_start
            && depth == self.stack.len()
        {
            self.found = Some(Span { start, end });
            self.target_start = None;
        }
    }

    /// Adds a finished value to its parent; returns it when it is the document's root.
    fn push_value(
        &mut self,
        value: Value,
        start: Position,
    ) -> Result<Option<(Value, Position)>, SyntaxError> {
        let error_at = start;
        match self.stack.last_mut() {
            None => Ok(Some((value, start))),
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                if let Some(Segment::Index(i)) = self.path.last_mut() {
                    *i = items.len();
                }
                Ok(None)
            }
            Some(Frame::Map {
                map, key, merged, ..
            }) => match key.take() {
                None => {
                    let Value::String(k) = value else {
                        return Err(self.error(error_at, "mapping keys must be scalars"));
                    };
                    if map.contains_key(&k) && k != "<<" && !merged.contains(&k) {
                        return Err(self.error(error_at, format!("duplicate key {k:?}")));
                    }
                    self.path.push(Segment::Name(k.clone()));
                    *key = Some(k);
                    Ok(None)
                }
                Some(k) => {
                    self.path.pop();
                    if k == "<<" {
                        merge(map, merged, value);
                    } else {
                        merged.retain(|m| *m != k);
                        map.insert(k, value);
                    }
                    Ok(None)
                }
            },
        }
    }
}

/// YAML merge keys (`<<: *base`): keys not already present are copied in.
fn merge(map: &mut Map<String, Value>, merged: &mut Vec<String>, value: Value) {
    let sources = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        if let Value::Object(source) = source {
            for (k, v) in source {
                if !map.contains_key(&k) {
                    merged.push(k.clone());
                    map.insert(k, v);
                }
            }
        }
    }
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of a scalar.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_owned()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if is_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(d) = digits.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = digits.strip_prefix("0o") {
        (8, d)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or((magnitude == 1u64 << 63).then_some(i64::MIN))?;
        Some(Number::from(n))
    } else {
        Some(Number::from(magnitude))
    }
}

fn is_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (t.get(..i).unwrap_or(""), t.get(i + 1..)),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (digits(int) || int.is_empty())
                && (digits(frac) || (frac.is_empty() && !int.is_empty()))
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_yaml_with_core_schema() {
        let docs =
            parse_yaml("a: 1\nb: [x, 'y', true, ~, 1.5, 0x10]\n---\n---\nc: |\n  lit\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].value,
            json!({"a": 1, "b": ["x", "y", true, null, 1.5, 16]})
        );
        assert_eq!(docs[1].value, json!({"c": "lit\n"}));
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].start.line, 5);
    }

    #[test]
    fn anchors_merge_keys_and_key_order() {
        let docs = parse_yaml("base: &b {x: 1, y: 2}\nz: 0\nuse:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(
            docs[0].value,
            json!({"base": {"x": 1, "y": 2}, "z": 0, "use": {"y": 3, "x": 1}})
        );
        let keys: Vec<_> = docs[0].value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["base", "z", "use"]);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse_yaml("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.position.line >= 2, "{e}");
        let e = parse_yaml("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.position.line, 2);
        assert!(e.message.contains("duplicate key"));
        let e = parse_json("{\n \"a\": }").unwrap_err();
        assert_eq!(e.position.line, 2);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&" ".repeat(i));
            text.push_str("k:\n");
        }
        let e = parse_yaml(&text).unwrap_err();
        assert!(e.message.contains("nesting"), "{e}");
        let flow = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_yaml(&flow).is_err());
        let json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_json(&json).is_err());
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let e = parse_yaml(&text).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e}");
    }

    #[test]
    fn locate_finds_nodes() {
        let text = "a: 1\nb:\n  c: [x, y]\n  d:\n  - e: f\n  - g: h\n---\nz: 9\n";
        let at = |doc, p: &str| locate(text, doc, &JsonPath::parse(p).unwrap());
        let span = at(0, "$.b.d[1].g").unwrap();
        assert_eq!((span.start.line, span.start.column), (6, 8));
        assert_eq!(&text[span.start.offset..span.end.offset], "h");
        let span = at(0, "$.b.c").unwrap();
        assert_eq!(&text[span.start.offset..span.end.offset], "[x, y]");
        let span = at(0, "$.b.d").unwrap();
        assert_eq!(&text[span.start.offset..span.end.offset], "e: f\n  - g: h");
        assert_eq!(at(1, "$.z").unwrap().start.line, 8);
        assert!(at(0, "$.nope").is_none());
    }

    #[test]
    fn floats_and_ints() {
        assert!(is_float("1.5") && is_float("-2e10") && is_float(".5") && is_float("1."));
        assert!(!is_float("1.2.3") && !is_float("e5") && !is_float("."));
        assert_eq!(
            parse_int("-9223372036854775808"),
            Some(Number::from(i64::MIN))
        );
        assert_eq!(resolve_scalar("012", ScalarStyle::Plain, None), json!(12));
        assert_eq!(
            resolve_scalar("1.0.0", ScalarStyle::Plain, None),
            json!("1.0.0")
        );
    }
}
