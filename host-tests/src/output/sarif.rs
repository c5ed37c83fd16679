//! SARIF 2.1.0 for code scanning (GitHub's and any other SARIF reader).
//!
//! One run, one rule per finding code (all of them, so a result's `ruleIndex` is stable and
//! a reader can show the help of a code that did not fire this time). A result points at the
//! node it is about (the key's line and column to the end of its value, from the reader's
//! positions), relative to `%SRCROOT%` (the directory apart runs in) when the file is under it,
//! so code scanning shows it on the right line of the repository. Its fingerprint is built
//! from what the finding is about (rule, policy, object, JSON path), not from its line, so an
//! unrelated edit above it does not make it a new alert. Mutate rules' repairs are SARIF
//! `fixes`: the document's lines as `apart fix` rewrites them.

use std::collections::BTreeMap;
use std::path::Path;

use apart_policy::{Code, Severity};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::commands::check::{Edit, Outcome, Reported};

/// The tool's home, and the README section on findings.
const HOME: &str = "https://github.com/apart-dev/apart";
const FINDINGS_HELP: &str = "https://github.com/apart-dev/apart#findings";
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The base the results' paths are relative to.
const SRCROOT: &str = "%SRCROOT%";

/// The SARIF log of a run; `root` is the directory relative paths are resolved from.
pub fn render(outcome: &Outcome, root: &Path) -> String {
    let rules: Vec<Value> = Code::ALL.iter().map(|c| rule(*c)).collect();
    // Each file's edits by the document they rewrite, for the repairs.
    let edits: BTreeMap<(usize, usize), &Edit> = outcome
        .files
        .iter()
        .enumerate()
        .flat_map(|(file, record)| record.edits.iter().map(move |e| ((file, e.document), e)))
        .collect();
    let results: Vec<Value> = outcome
        .findings
        .iter()
        .map(|f| result(f, outcome, &edits, root))
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "apart",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": HOME,
                "rules": rules,
            }},
            "originalUriBaseIds": {SRCROOT: {"uri": directory_uri(root)}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// A code as a SARIF rule: what it means, what to write instead, where to read more.
fn rule(code: Code) -> Value {
    let title: String = code
        .as_str()
        .split('-')
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().collect::<String>() + chars.as_str()
            })
        })
        .collect();
    let meaning = sentence(code.meaning());
    let remedy = sentence(code.remedy());
    json!({
        "id": code.as_str(),
        "name": title,
        "shortDescription": {"text": meaning},
        "fullDescription": {"text": format!("{meaning} Severity: {}.", level(code.severity()))},
        "help": {
            "text": format!("{meaning} To fix it: {remedy}"),
            "markdown": format!(
                "**{}**: {meaning}\n\nTo fix it: {remedy}\n\nSee [the findings]({FINDINGS_HELP}) in apart's README.",
                code.as_str()
            ),
        },
        "helpUri": FINDINGS_HELP,
        "defaultConfiguration": {"level": level(code.severity())},
        "properties": {"tags": ["kubernetes", "reliability", "affinity"]},
    })
}

/// A phrase as a sentence: capitalised, ending with a full stop.
fn sentence(phrase: &str) -> String {
    let mut chars = phrase.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn result(
    f: &Reported,
    outcome: &Outcome,
    edits: &BTreeMap<(usize, usize), &Edit>,
    root: &Path,
) -> Value {
    let index = Code::ALL.iter().position(|c| *c == f.code).unwrap_or(0);
    let artifact = artifact(&f.file, root);
    let mut region = serde_json::Map::new();
    if let Some(line) = f.line {
        region.insert("startLine".into(), json!(line));
        if let Some(column) = f.column {
            region.insert("startColumn".into(), json!(column));
        }
        if let Some(end) = f.end.filter(|e| e.line >= line) {
            region.insert("endLine".into(), json!(end.line));
            region.insert("endColumn".into(), json!(end.column));
        }
    }
    let mut location = json!({"artifactLocation": artifact});
    if !region.is_empty() {
        location["region"] = Value::Object(region);
    }
    let object = &f.object;
    let qualified = format!(
        "{}/{}/{}",
        object.api_version,
        object.kind,
        match &object.namespace {
            Some(ns) => format!("{ns}/{}", object.name.as_deref().unwrap_or("")),
            None => object.name.clone().unwrap_or_default(),
        }
    );
    let mut result = json!({
        "ruleId": f.code.as_str(),
        "ruleIndex": index,
        "level": level(f.severity),
        "message": {"text": format!("{} (policy {}): {}", f.object, f.policy, f.message)},
        "locations": [{
            "physicalLocation": location,
            "logicalLocations": [{
                "name": object.name.clone().unwrap_or_default(),
                "fullyQualifiedName": qualified,
                "kind": "resource",
                "properties": {
                    "apiVersion": object.api_version,
                    "kind": object.kind,
                    "namespace": object.namespace,
                },
            }],
        }],
        "partialFingerprints": {"apartFinding/v1": fingerprint(f)},
        "properties": {"policy": f.policy, "path": f.path},
    });
    // The repair: the document's lines as `apart fix` writes them.
    let edit = f
        .fix
        .as_ref()
        .and(f.manifest)
        .and_then(|m| outcome.objects.get(m))
        .and_then(|o| edits.get(&(o.file, o.document)).copied());
    if let Some(edit) = edit {
        result["fixes"] = json!([{
            "description": {"text": format!("Repair the affinity of {} as `apart fix` does.", f.object)},
            "artifactChanges": [{
                "artifactLocation": artifact,
                "replacements": [{
                    "deletedRegion": {
                        "startLine": edit.lines.0,
                        "startColumn": 1,
                        "endLine": edit.lines.1,
                        "endColumn": edit.end_column,
                    },
                    "insertedContent": {"text": edit.text},
                }],
            }],
        }]);
    }
    result
}

/// Stable across runs and edits elsewhere in the file: what the finding is about, not where.
fn fingerprint(f: &Reported) -> String {
    let o = &f.object;
    let key = [
        f.code.as_str(),
        &f.policy,
        &o.api_version,
        &o.kind,
        o.namespace.as_deref().unwrap_or(""),
        o.name.as_deref().unwrap_or(""),
        &f.path,
    ]
    .join("\u{0}");
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Where a file is: relative to the root when it is under it, else an absolute `file:` URI.
fn artifact(file: &str, root: &Path) -> Value {
    let path = Path::new(file);
    let relative = if path.is_absolute() {
        path.strip_prefix(root).ok().map(Path::to_path_buf)
    } else {
        Some(path.components().collect())
    };
    match relative {
        Some(rel) => json!({"uri": encode(&slashes(&rel)), "uriBaseId": SRCROOT}),
        None => json!({"uri": format!("file://{}", encode(&slashes(path)))}),
    }
}

fn slashes(path: &Path) -> String {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
        .replace("//", "/")
}

/// `file:` URI of a directory, ending with `/` as SARIF requires of a base.
fn directory_uri(dir: &Path) -> String {
    let mut text = slashes(dir);
    if !text.starts_with('/') {
        text.insert(0, '/');
    }
    if !text.ends_with('/') {
        text.push('/');
    }
    format!("file://{}", encode(&text))
}

/// Percent-encodes what a URI path cannot hold as is.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'/'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'+'
            | b'='
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b','
            | b';'
            | b':' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_under_the_root_are_relative_and_others_absolute() {
        let root = Path::new("/work/repo");
        assert_eq!(
            artifact("/work/repo/deploy/a b.yaml", root),
            json!({"uri": "deploy/a%20b.yaml", "uriBaseId": SRCROOT})
        );
        assert_eq!(
            artifact("./deploy/x.yaml", root),
            json!({"uri": "deploy/x.yaml", "uriBaseId": SRCROOT})
        );
        assert_eq!(
            artifact("/elsewhere/x.yaml", root),
            json!({"uri": "file:///elsewhere/x.yaml"})
        );
        assert_eq!(directory_uri(root), "file:///work/repo/");
    }

    #[test]
    fn rules_say_what_to_do() {
        let r = rule(Code::NamespaceBlind);
        assert_eq!(r["id"], "namespace-blind");
        assert_eq!(r["name"], "NamespaceBlind");
        assert_eq!(r["defaultConfiguration"]["level"], "error");
        assert!(
            r["help"]["text"]
                .as_str()
                .unwrap()
                .contains("To fix it: Add the peers' namespaces")
        );
    }
}
