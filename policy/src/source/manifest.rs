//! Kubernetes objects in manifest text: each document, or each item of a `v1/List` (or any
//! `*List`), with where it is; and what is not an object to check, said with what to run
//! instead (`helm template`, `kustomize build`).
//!
//! The CLI and the JS build read manifests through here, so both see the same objects and
//! refuse the same inputs with the same words.

use serde_json::Value;

use crate::source::path::JsonPath;
use crate::source::read::{Document, Position, SyntaxError};

/// Kubernetes refuses requests over 3 MiB; no real object is larger.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// One Kubernetes object of a manifest text.
#[derive(Debug, Clone)]
pub struct Object {
    /// Which document of the text it is in.
    pub document: usize,
    /// Where the object is inside its document (`$`, or `$.items[i]` in a List).
    pub base: JsonPath,
    /// The object.
    pub value: Value,
    /// Where the object starts.
    pub start: Position,
}

/// A document that is not an object to check, and what to run instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrendered {
    /// Where the document starts.
    pub position: Position,
    /// What it is and what to run.
    pub message: String,
}

/// Input that cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// Where the problem is.
    pub position: Position,
    /// What is wrong and what to do.
    pub message: String,
}

/// What a document holds.
#[derive(Debug, Clone)]
pub enum Contents {
    /// Objects to check.
    Objects(Vec<Object>),
    /// Source that must be rendered first (a Kustomization, a chart's `Chart.yaml`).
    Unrendered(Unrendered),
    /// Something other than a Kubernetes object: a document with neither `apiVersion` nor
    /// `kind` (a values file, a dashboard, a CI workflow). Met in a folder, it is another
    /// tool's file; named on its own, it is an error.
    Foreign(Unrendered),
}

/// The objects of one document, or why it holds none to check. `file` is the input's name,
/// used to recognise a `kustomization.yaml` that names no `kind`.
pub fn contents(document: Document, file: &str) -> Result<Contents, InputError> {
    let Document {
        value,
        index,
        start,
        positions,
    } = document;
    if let Some(message) = unrendered(&value, file) {
        return Ok(Contents::Unrendered(Unrendered {
            position: start,
            message,
        }));
    }
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list
        && value.get("apiVersion").is_none()
        && value.get("kind").is_none()
        && let Err(e) = check_object(&value, start)
    {
        return Ok(Contents::Foreign(Unrendered {
            position: e.position,
            message: e.message,
        }));
    }
    let mut objects = Vec::new();
    if is_list {
        let Value::Object(mut list) = value else {
            return Ok(Contents::Objects(objects));
        };
        let Some(Value::Array(items)) = list.remove("items") else {
            return Ok(Contents::Objects(objects));
        };
        for (i, item) in items.into_iter().enumerate() {
            let base = JsonPath::root().name("items").index(i);
            let at = positions.get(&base).map_or(start, |s| s.value.start);
            check_object(&item, at)?;
            objects.push(Object {
                document: index,
                base,
                value: item,
                start: at,
            });
        }
    } else {
        check_object(&value, start)?;
        objects.push(Object {
            document: index,
            base: JsonPath::root(),
            value,
            start,
        });
    }
    Ok(Contents::Objects(objects))
}

/// A Kustomization or a Helm chart's metadata: what it is and what to run instead.
fn unrendered(value: &Value, file: &str) -> Option<String> {
    let kind = value.get("kind").and_then(Value::as_str);
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let base_name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let folder = file
        .len()
        .checked_sub(base_name.len())
        .and_then(|n| file.get(..n))
        .filter(|f| !f.is_empty())
        .unwrap_or("./");
    let is_kustomization = kind == Some("Kustomization")
        && api_version.is_none_or(|v| v.starts_with("kustomize.config.k8s.io/"))
        || kind.is_none()
            && matches!(
                base_name,
                "kustomization.yaml" | "kustomization.yml" | "Kustomization"
            );
    if is_kustomization {
        return Some(format!(
            "this is a Kustomization, which kustomize renders and the cluster never sees: check what it renders, e.g. `kustomize build {folder} | apart check -p POLICY -`"
        ));
    }
    let is_chart = kind.is_none()
        && matches!(api_version, Some("v1" | "v2"))
        && value.get("name").is_some()
        && value.get("version").is_some();
    if is_chart {
        return Some(format!(
            "this is a Helm chart's Chart.yaml: check what the chart renders, e.g. `helm template {folder} | apart check -p POLICY -`"
        ));
    }
    None
}

fn check_object(object: &Value, at: Position) -> Result<(), InputError> {
    let error = |message: String| InputError {
        position: at,
        message,
    };
    let Value::Object(map) = object else {
        let template = object.as_str().is_some_and(|s| s.contains("{{"));
        return Err(error(if template {
            HELM_TEMPLATE.to_owned()
        } else {
            "not a Kubernetes object: expected a mapping with apiVersion, kind and metadata"
                .to_owned()
        }));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(error(format!(
                    "not a Kubernetes object: {field} must be a non-empty string"
                )));
            }
            None => {
                return Err(error(format!(
                    "not a Kubernetes object: {field} is missing"
                )));
            }
        }
    }
    let size = serde_json::to_vec(object).map_or(0, |v| v.len());
    if size > MAX_OBJECT_BYTES {
        return Err(error(format!(
            "object is {:.1} MiB; the Kubernetes API server refuses objects over 3 MiB, so apart does too",
            size as f64 / (1024.0 * 1024.0)
        )));
    }
    Ok(())
}

/// What a Helm template that was not rendered gets.
const HELM_TEMPLATE: &str = "this looks like an unrendered Helm template ({{ ... }} actions): check what the chart renders, e.g. `helm template RELEASE CHART | apart check -p POLICY -`";

/// A syntax error, said as a Helm template when the text holds template actions the YAML
/// reader stumbled on (a line that starts with `{{`, or `{{` on the line of the error).
/// `text` is the part of the file that was read, starting on line `first_line`.
pub fn syntax_error(text: &str, first_line: usize, error: SyntaxError) -> InputError {
    let line_of_error = text
        .lines()
        .nth(error.position.line.saturating_sub(first_line));
    let template = line_of_error.is_some_and(|l| l.contains("{{"))
        || text.lines().any(|l| l.trim_start().starts_with("{{"));
    InputError {
        position: error.position,
        message: if template {
            format!("{HELM_TEMPLATE} (the YAML reader says: {})", error.message)
        } else {
            error.message
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::source::read::parse_documents;

    fn read(text: &str, file: &str) -> Vec<Result<Contents, InputError>> {
        parse_documents(text)
            .unwrap()
            .into_iter()
            .map(|d| contents(d, file))
            .collect()
    }

    #[test]
    fn lists_give_their_items_with_their_lines() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n- {apiVersion: v1, kind: Service}\n";
        let Ok(Contents::Objects(objects)) = &read(text, "a.yaml")[0] else {
            panic!()
        };
        let found: Vec<_> = objects
            .iter()
            .map(|o| (o.base.to_string(), o.start.line))
            .collect();
        assert_eq!(found, [("$.items[0]".into(), 4), ("$.items[1]".into(), 6)]);
    }

    #[test]
    fn what_must_be_rendered_says_what_to_run() {
        let k = read(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
            "base/kustomization.yaml",
        );
        let Ok(Contents::Unrendered(u)) = &k[0] else {
            panic!()
        };
        assert!(u.message.contains("kustomize build base/"), "{}", u.message);
        let old = read("resources: [a.yaml]\n", "kustomization.yml");
        assert!(matches!(&old[0], Ok(Contents::Unrendered(_))));
        let chart = read(
            "apiVersion: v2\nname: x\nversion: 1.0.0\n",
            "charts/x/Chart.yaml",
        );
        let Ok(Contents::Unrendered(u)) = &chart[0] else {
            panic!()
        };
        assert!(
            u.message.contains("helm template charts/x/"),
            "{}",
            u.message
        );
        let text =
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n";
        let e = syntax_error(text, 1, parse_documents(text).unwrap_err());
        assert!(e.message.contains("helm template"), "{}", e.message);
        let plain = "a: [\n";
        let e = syntax_error(plain, 1, parse_documents(plain).unwrap_err());
        assert!(!e.message.contains("helm"), "{}", e.message);
    }

    #[test]
    fn objects_need_api_version_and_kind() {
        let e = read("kind: Pod\n", "p.yaml").remove(0).unwrap_err();
        assert!(e.message.contains("apiVersion is missing"), "{e}");
        let e = read("- a\n", "p.yaml").remove(0).unwrap_err();
        assert!(e.message.contains("expected a mapping"), "{e}");
    }
}
