//! `apart fix`: the repaired manifests, as text.
//!
//! The check pipeline leaves, per input, the rewrites of the documents a mutate rule changed
//! ([`Edit`]s: YAML edited in place, comments and formatting outside the repaired nodes kept;
//! a document the editor cannot rewrite, and JSON, written anew). Here they are applied to the
//! input's text, read again when its turn comes, so the run holds one input at a time.
//!
//! Several inputs print as one stream of documents, each input after a `---` line and a
//! `# Source:` comment (as `helm template` prints), so that `apart fix DIR | kubectl apply -f
//! -` and `apart fix DIR | apart check -p ... -` read every document. One input prints as it
//! is, byte for byte where nothing was repaired.

use crate::commands::check::{Edit, FileRecord, Outcome};
use crate::diagnostic::Diagnostic;
use crate::manifests::{Input, Source};

/// One input's repaired text.
#[derive(Debug, Clone)]
pub struct FixedSource {
    /// The input's name.
    pub name: String,
    /// The original text.
    pub original: String,
    /// The repaired text.
    pub fixed: String,
    /// Documents that could not be repaired in place and were written anew.
    pub reformatted: usize,
}

/// The text with the edits (in order, not overlapping) applied.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for edit in edits {
        if edit.range.start < at {
            continue;
        }
        out.push_str(text.get(at..edit.range.start).unwrap_or_default());
        out.push_str(&edit.text);
        at = edit.range.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

fn fixed(name: String, original: String, record: &FileRecord) -> FixedSource {
    FixedSource {
        fixed: apply_edits(&original, &record.edits),
        reformatted: record.edits.iter().filter(|e| e.reformatted).count(),
        name,
        original,
    }
}

/// Repairs sources already read (their outcome's inputs, in the same order).
pub fn fix_sources(sources: &[Source], outcome: &Outcome) -> Vec<FixedSource> {
    sources
        .iter()
        .zip(&outcome.files)
        .map(|(source, record)| fixed(source.name.clone(), source.text.clone(), record))
        .collect()
}

/// Repairs one input of a run, reading it again; an input that changed since the run read
/// it is an error (its edits would land in the wrong place).
pub fn fix_input(input: &Input, record: &FileRecord) -> Result<FixedSource, Diagnostic> {
    let text = input.load()?;
    if text.len() != record.len {
        return Err(Diagnostic::Usage(format!(
            "{}: the file changed while apart was reading it: run apart fix again",
            record.name
        )));
    }
    Ok(fixed(record.name.clone(), text.to_string(), record))
}

/// How one input starts the stream of several: after a `---` line (unless its text opens a
/// document itself) and a `# Source:` comment.
pub fn stream_header(name: &str, text: &str) -> String {
    let opens_document = text
        .lines()
        .find(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .is_some_and(|l| l == "---" || l.starts_with("--- "));
    if opens_document {
        format!("# Source: {name}\n")
    } else {
        format!("---\n# Source: {name}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_replace_their_ranges_in_order() {
        let edits = [
            Edit {
                range: 2..3,
                text: "B".into(),
                ..Edit::default()
            },
            Edit {
                range: 6..7,
                text: "DD".into(),
                ..Edit::default()
            },
        ];
        assert_eq!(apply_edits("a b c d e", &edits), "a B c DD e");
    }

    #[test]
    fn each_input_of_a_stream_opens_a_document() {
        assert_eq!(
            stream_header("a.yaml", "kind: A\n"),
            "---\n# Source: a.yaml\n"
        );
        assert_eq!(
            stream_header("b.yaml", "# c\n---\nkind: B\n"),
            "# Source: b.yaml\n"
        );
    }
}
