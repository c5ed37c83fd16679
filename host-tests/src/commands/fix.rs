//! `apart fix`: the repaired manifests, as text. What a repair is, how several inputs print
//! as one stream (`apart fix DIR | kubectl apply -f -`) and the diff are the library's
//! ([`apart_policy::report::fix`]); here an input is read again when its turn comes, so the
//! run holds one input at a time.

use apart_policy::report::FileRecord;

use crate::diagnostic::Diagnostic;
use crate::manifests::Input;

pub use apart_policy::report::fix::{FixedSource, apply_edits, fix_sources, stream_header};

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
    Ok(FixedSource::new(
        record.name.clone(),
        text.to_string(),
        record,
    ))
}
