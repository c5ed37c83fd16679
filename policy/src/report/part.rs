//! One part of an input (whole documents of a text) checked: its documents read with every
//! node's position, cut into objects, each sent to `validate` as the `ValidationRequest`
//! policy-server sends for its creation; the findings placed at their lines, and for `fix`
//! each repaired document rewritten (in place where the YAML editor can, else anew).

use std::ops::Range;

use serde_json::Value;

use super::outcome::{Edit, Reported, point_at};
use super::policies::Policies;
use super::{Options, ReportError, Validator};
use crate::source::edit;
use crate::source::manifest::{self, Contents, Unrendered};
use crate::source::path::JsonPath;
use crate::source::read::{self, Chunk};
use crate::{ObjectRef, PatchOp, SetMember};

/// A part to check: whole documents of an input.
#[derive(Debug, Clone)]
pub struct PartText<'a> {
    /// The input's name.
    pub name: &'a str,
    /// The part's text.
    pub text: &'a str,
    /// The part's documents in `text`, and the line `text` starts on.
    pub chunk: Chunk,
    /// Where `text` starts in the input.
    pub offset: usize,
    /// Named by the user (so a document that must be rendered first is an error, not a
    /// document skipped with a note).
    pub explicit: bool,
}

impl<'a> PartText<'a> {
    /// A whole text as its one part.
    pub fn whole(name: &'a str, text: &'a str) -> PartText<'a> {
        PartText {
            name,
            text,
            chunk: Chunk {
                range: 0..text.len(),
                line: 1,
            },
            offset: 0,
            explicit: true,
        }
    }
}

/// What one part holds, checked.
#[derive(Debug, Default)]
pub struct Part {
    /// Its objects, in the order of their lines.
    pub objects: Vec<Answered>,
    /// Documents skipped, and why.
    pub notes: Vec<String>,
    /// Its documents' rewrites (`fix`).
    pub edits: Vec<Edit>,
}

/// One object, answered.
#[derive(Debug)]
pub struct Answered {
    /// Which document of its input.
    pub document: usize,
    /// Where it is inside its document.
    pub base: JsonPath,
    /// Its first line.
    pub line: usize,
    /// Its findings, by line.
    pub findings: Vec<Reported>,
    /// Let through (after repairs)?
    pub accepted: bool,
    /// Did a mutate rule change it?
    pub changed: bool,
    /// The repaired object, when retained.
    pub mutated: Option<Value>,
    /// The object, when retained.
    pub value: Option<Value>,
    /// Its type and name, as written.
    pub object: ObjectRef,
    /// What the set-level checks need of it.
    pub member: SetMember,
}

/// Checks one part: every object through `validator`, findings with positions, and (for
/// `fix`) the rewrite of each document a mutate rule changed.
pub fn answer_part(
    part: &PartText<'_>,
    validator: &mut dyn Validator,
    policies: &Policies,
    settings: &[u8],
    options: Options<'_>,
) -> Result<Part, ReportError> {
    let mut out = Part::default();
    let name = part.name;
    for document in read::chunk_documents(part.text, &part.chunk) {
        let document = document.map_err(|e| {
            let e = manifest::syntax_error(part.text, part.chunk.line, e);
            ReportError::input(name, e.position, e.message)
        })?;
        let positions = document.positions.clone();
        let lines = document.lines(part.text);
        let document_index = document.index;
        let whole = options.fix.then(|| document.value.clone());
        let objects = match manifest::contents(document, name)
            .map_err(|e| ReportError::input(name, e.position, e.message))?
        {
            Contents::Objects(objects) => objects,
            // Named by the user: an error. Met in a folder: another tool's file, or one to
            // render first; skipped with a warning.
            Contents::Unrendered(Unrendered { position, message })
            | Contents::Foreign(Unrendered { position, message }) => {
                if part.explicit {
                    return Err(ReportError::input(name, position, message));
                }
                out.notes
                    .push(format!("{name}:{}: skipped: {message}", position.line));
                continue;
            }
        };
        let mut repairs: Vec<(JsonPath, Vec<PatchOp>, Value)> = Vec::new();
        for object in objects {
            let object_json = serde_json::to_vec(&object.value).unwrap_or_default();
            let request = request_bytes(
                0,
                &object.value,
                &object_json,
                options.default_namespace,
                settings,
            );
            let answer = validator.validate(&request).map_err(|e| {
                // A deadline or memory limit hit names the object, so that the user knows
                // which one to split or raise the limit for.
                let kind = object.value.get("kind").and_then(Value::as_str);
                let id = object
                    .value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str);
                ReportError::Module(format!(
                    "{name}:{}: {} {}: {e}",
                    object.start.line,
                    kind.unwrap_or("object"),
                    id.unwrap_or("(unnamed)"),
                ))
            })?;
            if !answer.accepted && answer.findings.is_empty() {
                // Not about the rules: the object could not be read.
                return Err(ReportError::input(
                    name,
                    object.start,
                    answer
                        .message
                        .unwrap_or_else(|| "rejected without a message".to_owned()),
                ));
            }
            let mut reported: Vec<Reported> = answer
                .findings
                .into_iter()
                .map(|f| {
                    let at = JsonPath::parse(&f.path)
                        .ok()
                        .and_then(|p| point_at(&positions, &object.base.join(&p)));
                    Reported::new(f, name, at, None)
                })
                .collect();
            reported.sort_by_key(|f| (f.line, f.column));
            if let Some(mutated) = &answer.mutated {
                let ops = ops_of(&reported);
                repairs.push((object.base.clone(), ops, mutated.clone()));
            }
            let member = policies
                .set
                .set_member(&object_json, options.default_namespace);
            out.objects.push(Answered {
                object: object_ref(&object.value),
                document: object.document,
                base: object.base,
                line: object.start.line,
                findings: reported,
                accepted: answer.accepted,
                changed: answer.mutated.is_some(),
                mutated: answer.mutated.filter(|_| options.retain),
                value: options.retain.then_some(object.value),
                member,
            });
        }
        if let Some(mut whole) = whole
            && !repairs.is_empty()
        {
            let mut edit = narrow(part.text, rewrite(part.text, lines, &mut whole, repairs));
            (edit.lines, edit.end_column) = line_span(part.text, part.chunk.line, &edit.range);
            edit.document = document_index;
            edit.range = edit.range.start + part.offset..edit.range.end + part.offset;
            out.edits.push(edit);
        }
    }
    Ok(out)
}

/// Writes the `ValidationRequest` policy-server sends for creating an object, around the
/// object's JSON text (written once, and reused for the set-level checks).
pub fn request_bytes(
    uid: usize,
    object: &Value,
    object_json: &[u8],
    default_namespace: &str,
    settings: &[u8],
) -> Vec<u8> {
    fn text<'v>(v: &'v Value, key: &str) -> &'v str {
        v.get(key).and_then(Value::as_str).unwrap_or_default()
    }
    let api_version = text(object, "apiVersion");
    let kind = text(object, "kind");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let metadata = object.get("metadata").unwrap_or(&Value::Null);
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_namespace);
    let name = text(metadata, "name");
    let quote = |s: &str| Value::String(s.to_owned()).to_string();
    let gvk = format!(
        r#"{{"group":{},"version":{},"kind":{}}}"#,
        quote(group),
        quote(version),
        quote(kind)
    );
    let gvr = format!(
        r#"{{"group":{},"version":{},"resource":{}}}"#,
        quote(group),
        quote(version),
        quote(&format!("{}s", kind.to_lowercase()))
    );
    let mut out = Vec::with_capacity(object_json.len() + settings.len() + 512);
    out.extend_from_slice(
        format!(
            r#"{{"request":{{"uid":"apart-{uid}","kind":{gvk},"resource":{gvr},"requestKind":{gvk},"requestResource":{gvr},"name":{},"namespace":{},"operation":"CREATE","userInfo":{{"username":"apart","groups":["system:authenticated"]}},"object":"#,
            quote(name),
            quote(namespace)
        )
        .as_bytes(),
    );
    out.extend_from_slice(object_json);
    out.extend_from_slice(
        br#","oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}},"settings":"#,
    );
    out.extend_from_slice(settings);
    out.push(b'}');
    out
}

/// An object's type and name as written (`generateName` when it has no name).
fn object_ref(value: &Value) -> ObjectRef {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let metadata = value.get("metadata");
    ObjectRef {
        api_version: text(value.get("apiVersion")).unwrap_or_default(),
        kind: text(value.get("kind")).unwrap_or_default(),
        namespace: text(metadata.and_then(|m| m.get("namespace"))),
        name: text(metadata.and_then(|m| m.get("name")))
            .or_else(|| text(metadata.and_then(|m| m.get("generateName")))),
    }
}
/// The edit reduced to the lines it changes: the lines it leaves as they were, at its start
/// and at its end, are not part of it (one line is kept on each side, so the edit is never
/// empty of lines to replace).
fn narrow(text: &str, edit: Edit) -> Edit {
    let original = text.get(edit.range.clone()).unwrap_or_default();
    let old: Vec<&str> = original.split('\n').collect();
    let new: Vec<&str> = edit.text.split('\n').collect();
    let keep = old.len().min(new.len()).saturating_sub(1);
    let prefix = old
        .iter()
        .zip(&new)
        .take(keep)
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(keep - prefix)
        .take_while(|(a, b)| a == b)
        .count();
    let cut = |lines: &[&str]| lines.iter().map(|l| l.len() + 1).sum::<usize>();
    let start = edit.range.start + cut(old.get(..prefix).unwrap_or_default());
    let end = edit.range.end - cut(old.get(old.len() - suffix..).unwrap_or_default());
    Edit {
        range: start..end,
        text: new
            .get(prefix..new.len() - suffix)
            .unwrap_or_default()
            .join("\n"),
        ..edit
    }
}

/// The lines (first and last, 1-based) that `range` of `text` covers, `text` starting on
/// line `first`, and the column just past the range's end on its last line.
fn line_span(text: &str, first: usize, range: &Range<usize>) -> ((usize, usize), usize) {
    let before = text.get(..range.start).unwrap_or_default();
    let inside = text.get(range.clone()).unwrap_or_default();
    let start = first + before.matches('\n').count();
    let end = start + inside.matches('\n').count();
    let last_line = inside.rsplit('\n').next().unwrap_or_default();
    ((start, end), last_line.chars().count() + 1)
}

/// The fix operations of one object's findings, each plan's once (the findings of one plan
/// share its operations).
fn ops_of(findings: &[Reported]) -> Vec<PatchOp> {
    let mut ops: Vec<PatchOp> = Vec::new();
    let mut seen: Vec<&Vec<PatchOp>> = Vec::new();
    for fix in findings.iter().filter_map(|f| f.fix.as_ref()) {
        if !seen.contains(&fix) {
            ops.extend(fix.iter().cloned());
            seen.push(fix);
        }
    }
    ops
}

/// A document's rewrite: in place when the editor can make it (and it reads back as the
/// repaired document), else the repaired document written anew. JSON is written anew.
fn rewrite(
    text: &str,
    lines: Range<usize>,
    whole: &mut Value,
    repairs: Vec<(JsonPath, Vec<PatchOp>, Value)>,
) -> Edit {
    let mut all = Vec::new();
    for (base, ops, mutated) in repairs {
        if let Some(slot) = base.get_mut(whole) {
            *slot = mutated;
        }
        all.push((base, ops));
    }
    let original = text.get(lines.clone()).unwrap_or_default();
    let json = read::looks_like_json(original);
    let in_place = if json {
        None
    } else {
        edit::edit_document(original, &all, whole)
    };
    match in_place {
        Some(text) => Edit {
            range: lines,
            text,
            reformatted: false,
            ..Edit::default()
        },
        None => {
            let mut text = if json {
                serde_json::to_string_pretty(whole).unwrap_or_default()
            } else {
                edit::to_yaml(whole)
            };
            // The document's lines end before their line break.
            if text.ends_with('\n') {
                text.pop();
            }
            Edit {
                range: lines,
                text,
                reformatted: !json,
                ..Edit::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(range: Range<usize>, text: &str) -> Edit {
        Edit {
            range,
            text: text.to_owned(),
            ..Edit::default()
        }
    }

    #[test]
    fn an_edit_keeps_only_the_lines_it_changes() {
        let text = "a: 1\nb:\n  c: 2\nd: 3";
        let whole = edit(0..text.len(), "a: 1\nb:\n  c: 2\n  e: 4\nd: 3");
        let narrowed = narrow(text, whole.clone());
        // The inserted line goes before the last one, which is kept as the line replaced.
        assert_eq!(narrowed.range, 15..19);
        assert_eq!(narrowed.text, "  e: 4\nd: 3");
        assert_eq!(line_span(text, 1, &narrowed.range), ((4, 4), 5));
        // Applying either gives the same text.
        let apply = |e: &Edit| {
            let mut out = text.to_owned();
            out.replace_range(e.range.clone(), &e.text);
            out
        };
        assert_eq!(apply(&narrowed), apply(&whole));
        // A one-line document keeps its line.
        let one = narrow("a: 1", edit(0..4, "a: 2"));
        assert_eq!((one.range, one.text.as_str()), (0..4, "a: 2"));
    }
}
