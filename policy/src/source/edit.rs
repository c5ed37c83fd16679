//! Editing YAML text in place, so that `apart fix` changes only the repaired nodes.
//!
//! A repair is a list of RFC 6902 operations (`add` of a key, `add` appended to a sequence,
//! `replace` of a scalar). Each is applied to the text at the node's position (found with
//! [`read::locate`]): the new key or item is written after the last line of its mapping
//! or sequence, at that collection's indentation; a replaced scalar is rewritten where it
//! stands. Comments, key order, quoting and blank lines elsewhere are untouched.
//!
//! The edited text is then read again and must give exactly the repaired object; when it
//! does not (an exotic layout: anchors, complex keys, multi-line flow collections), the
//! caller falls back to re-emitting the document with [`to_yaml`].

use crate::rules::finding::PatchOp;
use crate::source::path::{JsonPath, Segment};
use crate::source::read;
use serde_json::Value;

/// Applies `ops` (pointers relative to the object at `base` in document `doc_index`) to the
/// YAML `text`. Returns the edited text only when it reads back as `expected_doc`.
pub fn apply_patch(
    text: &str,
    doc_index: usize,
    base: &JsonPath,
    ops: &[PatchOp],
    expected_doc: &Value,
) -> Option<String> {
    let object = base.get(expected_doc)?;
    let mut text = text.to_owned();
    for op in ops {
        let path = base.join(&path_of_pointer(&op.path, object)?);
        text = apply_op(&text, doc_index, &path, op)?;
    }
    let docs = read::parse_documents(&text).ok()?;
    let edited = docs.iter().find(|d| d.index == doc_index)?;
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

fn apply_op(text: &str, doc: usize, path: &JsonPath, op: &PatchOp) -> Option<String> {
    let mut parent = path.clone();
    let last = path.segments().last()?.clone();
    parent.pop();
    match (op.op.as_str(), last) {
        ("replace", _) => replace_node(text, doc, path, &parent, &op.value),
        ("add", Segment::Name(key)) => match read::locate(text, doc, path) {
            // `add` of an existing member replaces it (e.g. `affinity: null`).
            Some(_) => replace_node(text, doc, path, &parent, &op.value),
            None => add_key(text, doc, &parent, &key, &op.value),
        },
        ("add", Segment::Index(_)) => append_item(text, doc, &parent, &op.value),
        _ => None,
    }
}

/// The character at a byte offset.
fn char_at(text: &str, offset: usize) -> Option<char> {
    text.get(offset..).and_then(|s| s.chars().next())
}

/// The column (0-based, in characters) of `offset` on its line: for a block collection's
/// first entry, the indentation of every entry.
fn column_of(text: &str, offset: usize) -> usize {
    let line_start = text
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    text.get(line_start..offset)
        .map_or(0, |s| s.chars().count())
}

fn replace_node(
    text: &str,
    doc: usize,
    path: &JsonPath,
    parent: &JsonPath,
    value: &Value,
) -> Option<String> {
    let span = read::locate(text, doc, path)?;
    let (start, end) = (span.start.offset, span.end.offset);
    let old = text.get(start..end)?;
    let replacement = if is_block_value(value) {
        // Only a null may become a collection in place: the key's indentation decides the
        // block's, so the parent must be a block mapping.
        if !matches!(old.trim(), "" | "null" | "Null" | "NULL" | "~") {
            return None;
        }
        let parent_span = read::locate(text, doc, parent)?;
        if matches!(char_at(text, parent_span.start.offset), Some('{' | '[')) {
            flow(value)
        } else {
            let indent = column_of(text, parent_span.start.offset) + 2;
            let mut out = String::new();
            for line in block(value, indent) {
                out.push('\n');
                out.push_str(&line);
            }
            // The key keeps no trailing space before its new block.
            return Some(format!(
                "{}{}{}",
                text.get(..start)?.trim_end_matches(' '),
                out,
                text.get(end..)?
            ));
        }
    } else {
        flow(value)
    };
    Some(format!(
        "{}{replacement}{}",
        text.get(..start)?,
        text.get(end..)?
    ))
}

/// Byte offset of the end of the line holding the last character of a node that ends at
/// `end` (spans end just past a collection's last scalar): where a following entry goes.
fn line_end(text: &str, end: usize) -> usize {
    let last = end.saturating_sub(1);
    if char_at(text, last) == Some('\n') {
        return last;
    }
    text.get(last..)
        .and_then(|s| s.find('\n'))
        .map_or(text.len(), |i| last + i)
}

fn add_key(text: &str, doc: usize, mapping: &JsonPath, key: &str, value: &Value) -> Option<String> {
    let span = read::locate(text, doc, mapping)?;
    let start = span.start.offset;
    let entry = format!("{}:", scalar(&Value::String(key.to_owned())));
    if char_at(text, start) == Some('{') {
        return insert_in_flow(
            text,
            span.end.offset,
            '}',
            &format!("{entry} {}", flow(value)),
        );
    }
    // For a mapping that opens a `- ` item, this is the column after the dash.
    let column = column_of(text, start);
    let end = line_end(text, span.end.offset);
    let mut inserted = format!("\n{}{entry}", " ".repeat(column));
    push_value(&mut inserted, value, column);
    Some(format!(
        "{}{inserted}{}",
        text.get(..end)?,
        text.get(end..)?
    ))
}

fn append_item(text: &str, doc: usize, sequence: &JsonPath, value: &Value) -> Option<String> {
    let span = read::locate(text, doc, sequence)?;
    let start = span.start.offset;
    if char_at(text, start) == Some('[') {
        return insert_in_flow(text, span.end.offset, ']', &flow(value));
    }
    // A block sequence's span starts at its first dash, or (indentless) at the first item's
    // content after it.
    let dash = if char_at(text, start) == Some('-') {
        start
    } else {
        text.get(..start)?
            .trim_end_matches(' ')
            .len()
            .checked_sub(1)?
    };
    if char_at(text, dash) != Some('-') {
        return None;
    }
    let column = column_of(text, dash);
    let end = line_end(text, span.end.offset);
    let mut inserted = String::new();
    for line in sequence_item(value, column) {
        inserted.push('\n');
        inserted.push_str(&line);
    }
    Some(format!(
        "{}{inserted}{}",
        text.get(..end)?,
        text.get(end..)?
    ))
}

/// Inserts `entry` before the closing bracket of a one-line flow collection ending at `end`.
fn insert_in_flow(text: &str, end: usize, close: char, entry: &str) -> Option<String> {
    let close_at = end.checked_sub(1)?;
    if char_at(text, close_at) != Some(close) {
        return None;
    }
    let before = text.get(..close_at)?;
    let empty = before.trim_end().ends_with(['{', '[']);
    let separator = if empty { "" } else { ", " };
    Some(format!(
        "{}{separator}{entry}{}",
        before.trim_end(),
        text.get(close_at..)?
    ))
}

/// Appends ` value` or the block lines of `value` after a `key:` at `column`.
fn push_value(out: &mut String, value: &Value, column: usize) {
    if is_block_value(value) {
        for line in block(value, column + 2) {
            out.push('\n');
            out.push_str(&line);
        }
    } else {
        out.push(' ');
        out.push_str(&flow(value));
    }
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
        apply_patch(text, 0, &JsonPath::root(), ops, &expected)
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

    #[test]
    fn adds_a_key_after_the_last_one_and_keeps_comments() {
        let ops = [op(
            "add",
            "/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm/namespaces",
            json!(["kube-system", "flux-system"]),
        )];
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
            out.ends_with("  affinity:\n    podAntiAffinity:\n      x: [1] # none yet\n"),
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
            apply_patch(text, 0, &JsonPath::root(), &ops, &expected),
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
