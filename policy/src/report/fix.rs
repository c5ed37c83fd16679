//! `fix`'s output: the rewrites a check left per input ([`Edit`]s: YAML edited in place,
//! comments and formatting outside the repaired nodes kept; a document the editor cannot
//! rewrite, and JSON, written anew) applied to the input's text, and the unified diff
//! between the two.
//!
//! Several inputs print as one stream of documents, each input after a `---` line and a
//! `# Source:` comment (as `helm template` prints), so that the stream reads back as every
//! document. One input prints as it is, byte for byte where nothing was repaired.

use super::Source;
use super::outcome::{Edit, FileRecord, Outcome};

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

impl FixedSource {
    /// The input repaired by its record's edits.
    pub fn new(name: String, original: String, record: &FileRecord) -> Self {
        Self {
            fixed: apply_edits(&original, &record.edits),
            reformatted: record.edits.iter().filter(|e| e.reformatted).count(),
            name,
            original,
        }
    }

    /// The unified diff from the original to the repaired text (empty when they are the
    /// same), both sides named by the input's name.
    pub fn diff(&self) -> String {
        similar::TextDiff::from_lines(&self.original, &self.fixed)
            .unified_diff()
            .header(&self.name, &self.name)
            .to_string()
    }
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

/// Repairs sources already read (their outcome's inputs, in the same order).
pub fn fix_sources(sources: &[Source], outcome: &Outcome) -> Vec<FixedSource> {
    sources
        .iter()
        .zip(&outcome.files)
        .map(|(source, record)| FixedSource::new(source.name.clone(), source.text.clone(), record))
        .collect()
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
