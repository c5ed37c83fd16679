//! Reading manifest inputs: files, folders (recursively, `*.yaml`, `*.yml`, `*.json`), or
//! `-` for standard input; multi-document YAML, JSON, and `v1/List` (or `*List`) objects.
//!
//! Every object keeps where it came from (file, document, path inside the document) so that
//! findings and errors can name a line, and `apart fix` can edit the right text.

use std::io::Read;
use std::path::{Path, PathBuf};

use apart_policy::source::path::JsonPath;
use apart_policy::source::read::{self, Document};
use serde_json::Value;

use crate::diagnostic::Diagnostic;

/// Kubernetes refuses requests over 3 MiB; no real object is larger.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// One input text.
#[derive(Debug, Clone)]
pub struct Source {
    /// File path, or `<stdin>`.
    pub name: String,
    /// Its text.
    pub text: String,
}

impl Source {
    /// Was it JSON (so output stays JSON)?
    pub fn is_json(&self) -> bool {
        read::looks_like_json(&self.text)
    }
}

/// One Kubernetes object from the inputs.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Index into the sources.
    pub source: usize,
    /// Which document of the source.
    pub document: usize,
    /// Where the object is inside its document (`$`, or `$.items[i]` in a List).
    pub base: JsonPath,
    /// The object.
    pub value: Value,
    /// The object's first line.
    pub line: usize,
}

fn io_error(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| io_error(path, &e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let is_manifest = entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if entry.is_dir() || is_manifest {
                collect_files(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Reads the inputs named on the command line (`-` is standard input).
pub fn read_sources(args: &[PathBuf]) -> Result<Vec<Source>, Diagnostic> {
    let mut sources = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| io_error(Path::new("<stdin>"), &e))?;
            sources.push(Source {
                name: "<stdin>".to_owned(),
                text,
            });
            continue;
        }
        let mut files = Vec::new();
        collect_files(arg, &mut files)?;
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| io_error(&file, &e))?;
            let text = String::from_utf8(bytes).map_err(|e| Diagnostic::Io {
                path: file.clone(),
                message: format!(
                    "not UTF-8 text (byte {}): manifests must be YAML or JSON",
                    e.utf8_error().valid_up_to()
                ),
            })?;
            sources.push(Source {
                name: file.display().to_string(),
                text,
            });
        }
    }
    Ok(sources)
}

fn input_error(source: &Source, position: read::Position, message: String) -> Diagnostic {
    Diagnostic::Input {
        file: source.name.clone(),
        line: position.line,
        column: position.column,
        message,
    }
}

/// Splits the sources into Kubernetes objects.
pub fn objects(sources: &[Source]) -> Result<Vec<Manifest>, Diagnostic> {
    let mut out = Vec::new();
    for (index, src) in sources.iter().enumerate() {
        let docs = read::parse_documents(&src.text)
            .map_err(|e| input_error(src, e.position, e.message))?;
        for Document {
            value,
            index: document,
            start,
        } in docs
        {
            let position = |base: &JsonPath| {
                read::locate(&src.text, document, base).map_or(start, |s| s.start)
            };
            let is_list = value
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && value.get("items").is_some_and(Value::is_array);
            let items: Vec<(JsonPath, Value)> = if is_list {
                let Some(Value::Array(items)) = value.get("items") else {
                    continue;
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (JsonPath::root().name("items").index(i), item.clone()))
                    .collect()
            } else {
                vec![(JsonPath::root(), value)]
            };
            for (base, object) in items {
                let at = position(&base);
                check_object(src, &object, at)?;
                out.push(Manifest {
                    source: index,
                    document,
                    base,
                    value: object,
                    line: at.line,
                });
            }
        }
    }
    Ok(out)
}

fn check_object(src: &Source, object: &Value, at: read::Position) -> Result<(), Diagnostic> {
    let Value::Object(map) = object else {
        return Err(input_error(
            src,
            at,
            "not a Kubernetes object: expected a mapping with apiVersion, kind and metadata"
                .to_owned(),
        ));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(input_error(
                    src,
                    at,
                    format!("not a Kubernetes object: {field} must be a non-empty string"),
                ));
            }
            None => {
                return Err(input_error(
                    src,
                    at,
                    format!("not a Kubernetes object: {field} is missing"),
                ));
            }
        }
    }
    let size = serde_json::to_vec(object).map_or(0, |v| v.len());
    if size > MAX_OBJECT_BYTES {
        return Err(input_error(
            src,
            at,
            format!(
                "object is {:.1} MiB; the Kubernetes API server refuses objects over 3 MiB, so apart does too",
                size as f64 / (1024.0 * 1024.0)
            ),
        ));
    }
    Ok(())
}
