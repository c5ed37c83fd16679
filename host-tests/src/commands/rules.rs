//! The built-in rule pack: `-p builtin:NAME` wherever a policy file is read, `apart rules` to
//! list the names and `apart rules NAME` to print a document. The documents themselves are the
//! engine's ([`apart_policy::rules::builtin`]); this is only how the CLI names them.

use std::path::PathBuf;

use apart_policy::rules::builtin::{self, BUILTIN, PREFIX};

use crate::diagnostic::Diagnostic;
use crate::manifests::{self, Source};

/// The policy sources named by `-p`, in order: a `builtin:NAME` is the shipped document
/// (named `builtin:NAME` in messages), anything else a file or folder read as usual.
pub fn policy_sources(paths: &[PathBuf]) -> Result<Vec<Source>, Diagnostic> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let Some(name) = path.to_str().and_then(|p| p.strip_prefix(PREFIX)) else {
            files.push(path.clone());
            continue;
        };
        // Files before it keep their place.
        if !files.is_empty() {
            out.extend(manifests::read_sources(&std::mem::take(&mut files))?);
        }
        out.push(Source {
            name: format!("{PREFIX}{name}"),
            text: document(name)?.to_owned(),
        });
    }
    if !files.is_empty() {
        out.extend(manifests::read_sources(&files)?);
    }
    Ok(out)
}

/// The document of built-in rule file `name`, or a usage error listing the names.
pub fn document(name: &str) -> Result<&'static str, Diagnostic> {
    builtin::document(name).ok_or_else(|| {
        Diagnostic::Usage(format!(
            "no built-in rule file named {name:?}: the built-in ones are {} (apart rules lists them)",
            names().join(", ")
        ))
    })
}

/// The names, in order.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// What `apart rules` prints: each name as `-p` takes it, and the first sentence of the
/// comment that opens its document (`# builtin:NAME: what it asks.`).
pub fn listing() -> String {
    let mut out = String::new();
    for (name, text) in BUILTIN {
        let comment: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("# ")).collect();
        let comment = comment.join(" ");
        let about = comment
            .split_once(": ")
            .map_or(comment.as_str(), |(_, rest)| rest);
        let summary = about
            .split_once(". ")
            .map_or(about, |(first, _)| first)
            .trim_end_matches('.');
        out.push_str(&format!("{PREFIX}{name}\t{summary}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_files_keep_their_order() {
        let sources = policy_sources(&[
            PathBuf::from("builtin:replicas-apart"),
            PathBuf::from("builtin:replicas-apart-zones"),
        ])
        .unwrap_or_default();
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["builtin:replicas-apart", "builtin:replicas-apart-zones"]
        );
        let unknown = policy_sources(&[PathBuf::from("builtin:nope")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            unknown.contains("replicas-apart, replicas-apart-zones, replicas-apart-required"),
            "{unknown}"
        );
    }
}
