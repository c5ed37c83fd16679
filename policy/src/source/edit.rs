//! Editing YAML text in place, so that `apart fix` changes only the repaired nodes.
//!
//! A repair is a list of RFC 6902 operations (`add` of a key, `add` appended to a sequence,
//! `replace` of a scalar). Each is applied to one document's text at the node's position
//! (taken from [`read::Positions`]): a new key or item is written after the last line of its
//! mapping or sequence, at that collection's indentation; a key whose value is empty or
//! `null` (what Helm and kustomize emit for `affinity:`) gets its block on the lines below; a
//! replaced scalar is rewritten where it stands; a flow collection gets the entry before its
//! closing bracket. Comments, key order, quoting, blank lines and line endings (CRLF stays
//! CRLF) elsewhere are untouched.
//!
//! The edited text is then read again and must give exactly the repaired object; when it
//! does not (an exotic layout: anchors, complex keys, multi-line flow collections), the
//! caller falls back to re-emitting that one document with [`to_yaml`].

use serde_json::Value;

use crate::rules::finding::PatchOp;
use crate::source::path::{JsonPath, Segment};
use crate::source::read::{self, NodeSpan};

/// Applies repairs to the text of one document's lines ([`read::Document::lines`]): for each
/// object of the document (at `base`: `$`, or `$.items[i]` in a List), its operations, whose
/// pointers are relative to that object. Returns the new text of those lines only when it
/// reads back as `expected_doc`, the repaired document.
pub fn edit_document(
    text: &str,
    repairs: &[(JsonPath, Vec<PatchOp>)],
    expected_doc: &Value,
) -> Option<String> {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut text = text.to_owned();
    for (base, ops) in repairs {
        let object = base.get(expected_doc)?;
        for op in ops {
            let path = base.join(&path_of_pointer(&op.path, object)?);
            let doc = read::parse_one(&text).ok()??;
            let edit = Editor {
                text: &text,
                doc: &doc,
                newline,
            };
            text = edit.apply(&path, op)?;
        }
    }
    let edited = read::parse_one(&text).ok()??;
    (edited.value == *expected_doc).then_some(text)
}

/// A JSON Pointer as a path, telling array indexes from member names by the value it
/// points into (`/0` is an index in an array, a name in an object).
fn path_of_pointer(pointer: &str, value: &Value) -> Option<JsonPath> {
    let mut path = JsonPath::root();
    let mut node = Some(value);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                let i: usize = token.parse().ok()?;
                node = items.get(i);
                path = path.index(i);
            }
            Some(Value::Object(map)) => {
                node = map.get(&token);
                path = path.name(&token);
            }
            _ => return None,
        }
    }
    Some(path)
}

/// One document's text, its positions, and the line break it uses.
struct Editor<'a> {
    text: &'a str,
    doc: &'a read::Document,
    newline: &'a str,
}

impl Editor<'_> {
    fn apply(&self, path: &JsonPath, op: &PatchOp) -> Option<String> {
        let mut parent = path.clone();
        let last = path.segments().last()?.clone();
        parent.pop();
        match (op.op.as_str(), last) {
            ("replace", _) => self.replace_node(path, &parent, &op.value),
            ("add", Segment::Name(key)) => match self.doc.positions.get(path) {
                // `add` of an existing member replaces it (e.g. `affinity: null`).
                Some(_) => self.replace_node(path, &parent, &op.value),
                None => self.add_key(&parent, &key, &op.value),
            },
            ("add", Segment::Index(_)) => self.append_item(&parent, &op.value),
            _ => None,
        }
    }

    fn node(&self, path: &JsonPath) -> Option<NodeSpan> {
        self.doc.positions.get(path)
    }

    fn splice(&self, start: usize, end: usize, insert: &str) -> Option<String> {
        Some(format!(
            "{}{insert}{}",
            self.text.get(..start)?,
            self.text.get(end..)?
        ))
    }

    /// The byte offset just before the line break of the line holding `offset` (or the end
    /// of the text): where a following line goes.
    fn line_end(&self, offset: usize) -> usize {
        let end = self
            .text
            .get(offset..)
            .and_then(|s| s.find('\n'))
            .map_or(self.text.len(), |i| offset + i);
        if end > offset && self.text.as_bytes().get(end - 1) == Some(&b'\r') {
            end - 1
        } else {
            end
        }
    }

    /// The end of the line of a node's last character (spans end just past it).
    fn line_end_of_node(&self, end: usize) -> usize {
        self.line_end(end.saturating_sub(1).max(self.line_start(end)))
    }

    fn line_start(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .and_then(|s| s.rfind('\n'))
            .map_or(0, |i| i + 1)
    }

    /// Lines joined after a line break each.
    fn lines(&self, lines: &[String]) -> String {
        let mut out = String::new();
        for line in lines {
            out.push_str(self.newline);
            out.push_str(line);
        }
        out
    }

    fn replace_node(&self, path: &JsonPath, parent: &JsonPath, value: &Value) -> Option<String> {
        let node = self.node(path)?;
        let (start, end) = (node.value.start.offset, node.value.end.offset);
        let old = self.text.get(start..end)?;
        if !is_block_value(value) {
            return self.splice(start, end, &flow(value));
        }
        // Only an empty or null value may become a collection in place.
        if !matches!(old.trim(), "" | "null" | "Null" | "NULL" | "~") {
            return None;
        }
        let in_flow = self
            .node(parent)
            .and_then(|p| char_at(self.text, p.value.start.offset))
            .is_some_and(|c| c == '{' || c == '[');
        if in_flow {
            return self.splice(start, end, &flow(value));
        }
        // A block under its key: the key's column decides the block's indentation. The
        // value's own text (`null`) goes; the rest of the key's line (a comment) stays.
        let key = node.key?;
        let indent = key.start.column - 1 + 2;
        let block = self.lines(&block(value, indent));
        if old.trim().is_empty() {
            let at = self.line_end(key.end.offset);
            return self.splice(at, at, &block);
        }
        let before = self.text.get(..start)?.trim_end_matches([' ', '\t']);
        let after = self.text.get(end..)?;
        let line_end = self.line_end(end);
        let rest_of_line = after.get(..line_end - end)?;
        let tail = after.get(line_end - end..)?;
        let rest = rest_of_line.trim_start();
        let comment = if rest.is_empty() {
            String::new()
        } else {
            format!(" {rest}")
        };
        Some(format!("{before}{comment}{block}{tail}"))
    }

    fn add_key(&self, mapping: &JsonPath, key: &str, value: &Value) -> Option<String> {
        let node = self.node(mapping)?;
        let start = node.value.start.offset;
        let entry = format!("{}:", scalar(&Value::String(key.to_owned())));
        if char_at(self.text, start) == Some('{') {
            return self.insert_in_flow(
                node.value.end.offset,
                '}',
                &format!("{entry} {}", flow(value)),
            );
        }
        if !self.is_block_start(start) {
            return None;
        }
        // For a mapping that opens a `- ` item, this is the column after the dash.
        let column = node.value.start.column - 1;
        let end = self.line_end_of_node(node.value.end.offset);
        let mut line = format!("{}{entry}", " ".repeat(column));
        let mut lines = Vec::new();
        if is_block_value(value) {
            lines.push(line);
            lines.extend(block(value, column + 2));
        } else {
            line.push(' ');
            line.push_str(&flow(value));
            lines.push(line);
        }
        self.splice(end, end, &self.lines(&lines))
    }

    /// Is `offset` the first thing on its line after indentation and `- ` dashes (where a
    /// block collection's first entry stands)?
    fn is_block_start(&self, offset: usize) -> bool {
        let start = self.line_start(offset);
        self.text
            .get(start..offset)
            .is_some_and(|s| s.chars().all(|c| c == ' ' || c == '-'))
    }

    fn append_item(&self, sequence: &JsonPath, value: &Value) -> Option<String> {
        let node = self.node(sequence)?;
        let start = node.value.start.offset;
        if char_at(self.text, start) == Some('[') {
            return self.insert_in_flow(node.value.end.offset, ']', &flow(value));
        }
        // A block sequence's span starts at its first dash, or (indentless) at the first
        // item's content after it.
        let dash = if char_at(self.text, start) == Some('-') {
            start
        } else {
            self.text
                .get(..start)?
                .trim_end_matches(' ')
                .len()
                .checked_sub(1)?
        };
        if char_at(self.text, dash) != Some('-') || !self.is_block_start(dash) {
            return None;
        }
        let column = column_of(self.text, dash);
        let end = self.line_end_of_node(node.value.end.offset);
        self.splice(end, end, &self.lines(&sequence_item(value, column)))
    }

    /// Inserts `entry` before the closing bracket of a flow collection ending at `end`.
    fn insert_in_flow(&self, end: usize, close: char, entry: &str) -> Option<String> {
        let close_at = end.checked_sub(1)?;
        if char_at(self.text, close_at) != Some(close) {
            return None;
        }
        let before = self.text.get(..close_at)?;
        let trimmed = before.trim_end();
        let empty = trimmed.ends_with(['{', '[']);
        let separator = if empty { "" } else { ", " };
        Some(format!(
            "{trimmed}{separator}{entry}{}",
            self.text.get(close_at..)?
        ))
    }
}

/// The character at a byte offset.
fn char_at(text: &str, offset: usize) -> Option<char> {
    text.get(offset..).and_then(|s| s.chars().next())
}

/// The column (0-based, in characters) of `offset` on its line.
fn column_of(text: &str, offset: usize) -> usize {
    let line_start = text
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    text.get(line_start..offset)
        .map_or(0, |s| s.chars().count())
}

/// Objects with members and arrays holding collections are written as blocks; scalars and
/// arrays of scalars fit on their key's line.
fn is_block_value(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => items
            .iter()
            .any(|i| matches!(i, Value::Object(_) | Value::Array(_))),
        _ => false,
    }
}

/// The lines of a block collection at `indent`.
fn block(value: &Value, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let mut line = format!("{pad}{}:", scalar(&Value::String(k.clone())));
                if is_block_value(v) {
                    lines.push(line);
                    lines.extend(block(v, indent + 2));
                } else {
                    line.push(' ');
                    line.push_str(&flow(v));
                    lines.push(line);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                lines.extend(sequence_item(item, indent));
            }
        }
        other => lines.push(format!("{pad}{}", flow(other))),
    }
    lines
}

/// One `- item` of a block sequence whose dashes stand at `column`.
fn sequence_item(value: &Value, column: usize) -> Vec<String> {
    let dash = format!("{}- ", " ".repeat(column));
    if let Value::Object(map) = value
        && !map.is_empty()
    {
        let mut lines = block(value, column + 2);
        if let Some(first) = lines.first_mut() {
            *first = format!("{dash}{}", first.trim_start_matches(' '));
        }
        return lines;
    }
    vec![format!("{dash}{}", flow(value))]
}

/// A value on one line: flow collections, plain scalars where YAML reads them back as the
/// same string, JSON quoting otherwise.
fn flow(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar(&Value::String(k.clone())), flow(v)))
                .collect();
            format!("{{{}}}", members.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        other => scalar(other),
    }
}

/// Words YAML 1.1 or 1.2 readers take for booleans or null.
const RESERVED: &[&str] = &[
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
];

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let plain = s
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
                && !s.ends_with(':')
                && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
                && !s.starts_with(".inf")
                && !s.starts_with(".nan");
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        other => other.to_string(),
    }
}

/// A document re-emitted from its value (block style), for edits that cannot be made in
/// place. Comments are lost; the note printed by `apart fix` says so.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    if is_block_value(value) {
        for line in block(value, 0) {
            out.push_str(&line);
            out.push('\n');
        }
    } else {
        out.push_str(&flow(value));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn op(op: &str, path: &str, value: Value) -> PatchOp {
        PatchOp {
            op: op.to_owned(),
            path: path.to_owned(),
            value,
        }
    }

    /// Applies ops to the YAML text, checking against the value patched the same way.
    fn edit(text: &str, ops: &[PatchOp]) -> Option<String> {
        let mut expected = read::parse_documents(text).unwrap().remove(0).value;
        for o in ops {
            let path = path_of_pointer_lenient(&o.path, &expected);
            let mut parent = path.clone();
            let last = parent.segments().last().cloned();
            parent.pop();
            match (parent.get_mut(&mut expected).unwrap(), last.unwrap()) {
                (Value::Object(m), Segment::Name(k)) => {
                    m.insert(k, o.value.clone());
                }
                (Value::Array(a), Segment::Index(i)) if o.op == "add" => {
                    a.insert(i, o.value.clone())
                }
                (Value::Array(a), Segment::Index(i)) => a[i] = o.value.clone(),
                _ => panic!("bad op"),
            }
        }
        edit_document(text, &[(JsonPath::root(), ops.to_vec())], &expected)
    }

    /// Resolves a pointer whose last step may not exist yet.
    fn path_of_pointer_lenient(pointer: &str, value: &Value) -> JsonPath {
        let (head, last) = pointer.rsplit_once('/').unwrap();
        let parent = path_of_pointer(head, value).unwrap();
        match parent.get(value) {
            Some(Value::Array(_)) => parent.index(last.parse().unwrap()),
            _ => parent.name(last),
        }
    }

    const TERM: &str = "# the rule\nspec:\n  affinity:\n    podAntiAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n        - weight: 40 # too low\n          podAffinityTerm:\n            labelSelector:\n              matchLabels: {app: x}\n            topologyKey: kubernetes.io/hostname\n\n  # containers follow\n  containers: []\n";

    const NAMESPACES: &str = "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm/namespaces";

    #[test]
    fn adds_a_key_after_the_last_one_and_keeps_comments() {
        let ops = [op("add", NAMESPACES, json!(["kube-system", "flux-system"]))];
        let out = edit(TERM, &ops).unwrap();
        assert_eq!(
            out,
            TERM.replace(
                "topologyKey: kubernetes.io/hostname\n",
                "topologyKey: kubernetes.io/hostname\n            namespaces: [kube-system, flux-system]\n"
            )
        );
    }

    #[test]
    fn crlf_stays_crlf() {
        let text = TERM.replace('\n', "\r\n");
        let ops = [op("add", NAMESPACES, json!(["kube-system", "flux-system"]))];
        let out = edit(&text, &ops).unwrap();
        assert_eq!(
            out,
            text.replace(
                "topologyKey: kubernetes.io/hostname\r\n",
                "topologyKey: kubernetes.io/hostname\r\n            namespaces: [kube-system, flux-system]\r\n"
            )
        );
        let term = json!({"weight": 100, "podAffinityTerm": {"topologyKey": "k"}});
        let out = edit(
            &text,
            &[op(
                "add",
                "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/1",
                term,
            )],
        )
        .unwrap();
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
    }

    #[test]
    fn after_a_flow_node_with_a_comment() {
        let text =
            "spec:\n  podAffinityTerm:\n    labelSelector: {matchLabels: {app: x}} # the peers\n";
        let out = edit(
            text,
            &[op("add", "/spec/podAffinityTerm/namespaces", json!(["a"]))],
        )
        .unwrap();
        assert_eq!(
            out,
            "spec:\n  podAffinityTerm:\n    labelSelector: {matchLabels: {app: x}} # the peers\n    namespaces: [a]\n"
        );
        let out = edit(
            text,
            &[op(
                "add",
                "/spec/podAffinityTerm/labelSelector/matchLabels/b",
                json!("c"),
            )],
        )
        .unwrap();
        assert_eq!(
            out,
            "spec:\n  podAffinityTerm:\n    labelSelector: {matchLabels: {app: x, b: c}} # the peers\n"
        );
    }

    #[test]
    fn empty_values_get_a_block() {
        let term = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100}]}});
        for text in [
            "spec:\n  affinity:\n  containers: []\n",
            "spec:\n  affinity:   # from values.yaml\n  containers: []\n",
            "spec:\n  affinity: null # none yet\n  containers: []\n",
            "spec:\n  affinity: ~\n  containers: []\n",
            "spec:\n  containers: []\n  affinity:\n",
        ] {
            let out = edit(text, &[op("add", "/spec/affinity", term.clone())])
                .unwrap_or_else(|| panic!("{text:?}"));
            assert!(
                out.contains("  affinity:")
                    && out.contains("\n    podAntiAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n        - weight: 100"),
                "{text:?} -> {out}"
            );
            assert!(
                !text.contains('#') || out.contains('#'),
                "the comment is kept: {out}"
            );
        }
        let nested = "spec:\n  affinity:\n    podAntiAffinity:\n";
        let out = edit(
            nested,
            &[op(
                "add",
                "/spec/affinity/podAntiAffinity",
                json!({"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "k"}]}),
            )],
        )
        .unwrap();
        assert_eq!(
            out,
            "spec:\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        - topologyKey: k\n"
        );
    }

    #[test]
    fn replaces_a_scalar_where_it_stands() {
        let ops = [op(
            "replace",
            "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/weight",
            json!(100),
        )];
        let out = edit(TERM, &ops).unwrap();
        assert_eq!(
            out,
            TERM.replace("weight: 40 # too low", "weight: 100 # too low")
        );
    }

    #[test]
    fn appends_a_term_to_a_block_sequence() {
        let term = json!({"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"a": "b"}}, "topologyKey": "kubernetes.io/hostname"}});
        let ops = [op(
            "add",
            "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/1",
            term,
        )];
        let out = edit(TERM, &ops).unwrap();
        assert!(out.contains("            topologyKey: kubernetes.io/hostname\n        - weight: 100\n          podAffinityTerm:\n            labelSelector:\n              matchLabels:\n                a: b\n            topologyKey: kubernetes.io/hostname\n\n  # containers follow\n"), "{out}");
    }

    #[test]
    fn flow_collections_and_nulls() {
        let text = "spec:\n  namespaces: [a]\n  sel: {}\n  affinity: null # none yet\n";
        let out = edit(text, &[op("add", "/spec/namespaces/1", json!("b"))]).unwrap();
        assert!(out.contains("namespaces: [a, b]\n"), "{out}");
        let out = edit(text, &[op("add", "/spec/sel/k", json!("v"))]).unwrap();
        assert!(out.contains("sel: {k: v}\n"), "{out}");
        let out = edit(
            text,
            &[op(
                "add",
                "/spec/affinity",
                json!({"podAntiAffinity": {"x": [1]}}),
            )],
        )
        .unwrap();
        assert!(
            out.ends_with("  affinity: # none yet\n    podAntiAffinity:\n      x: [1]\n"),
            "{out}"
        );
    }

    #[test]
    fn indentless_sequences_and_item_mappings() {
        let text = "items:\n- name: a\n  list:\n  - x\n- name: b\nafter: 1\n";
        let out = edit(text, &[op("add", "/items/2", json!({"name": "c"}))]).unwrap();
        assert_eq!(
            out,
            "items:\n- name: a\n  list:\n  - x\n- name: b\n- name: c\nafter: 1\n"
        );
        let out = edit(text, &[op("add", "/items/0/extra", json!(true))]).unwrap();
        assert_eq!(
            out,
            "items:\n- name: a\n  list:\n  - x\n  extra: true\n- name: b\nafter: 1\n"
        );
    }

    #[test]
    fn an_edit_that_does_not_read_back_is_refused() {
        let text = "spec: {a: 1,\n  b: 2}\n";
        // The expected value says something the operation does not do.
        let ops = [op("add", "/spec/c", json!(3))];
        let expected = json!({"spec": {"a": 1, "b": 2, "c": 4}});
        assert_eq!(
            edit_document(text, &[(JsonPath::root(), ops.to_vec())], &expected),
            None
        );
    }

    #[test]
    fn re_emitted_yaml_reads_back_identically() {
        let value = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"app.kubernetes.io/part-of": "flux", "version": "1.14.2", "on": "yes", "empty": "", "colon": "a: b", "hash": "a #b"}},
            "spec": {"n": 3, "f": 1.5, "b": false, "z": null, "list": [{"a": [1, 2]}, "s", []], "o": {}}});
        let text = to_yaml(&value);
        let back = read::parse_documents(&text).unwrap().remove(0).value;
        assert_eq!(back, value, "{text}");
    }
}
