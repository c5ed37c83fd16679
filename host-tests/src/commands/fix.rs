//! `apart fix`: the repaired manifests, as text.
//!
//! YAML inputs are edited in place (comments, order and formatting outside the repaired
//! nodes survive); when an edit cannot be made textually, that file is re-emitted from its
//! values and a note says so. JSON inputs are printed as JSON.

use apart_policy::PatchOp;
use apart_policy::source::path::JsonPath;
use apart_policy::source::read;
use serde_json::Value;

use crate::commands::check::Outcome;
use crate::manifests::Source;
use apart_policy::source::edit;

/// One input's repaired text.
#[derive(Debug, Clone)]
pub struct FixedSource {
    /// The input's name.
    pub name: String,
    /// The original text.
    pub original: String,
    /// The repaired text.
    pub fixed: String,
    /// True when formatting could not be kept (the file was re-emitted).
    pub reformatted: bool,
}

fn set_at(doc: &mut Value, base: &JsonPath, value: Value) {
    if let Some(slot) = base.get_mut(doc) {
        *slot = value;
    }
}

/// The fix operations for manifest `index`, each plan's once.
fn ops_for(outcome: &Outcome, index: usize) -> Vec<PatchOp> {
    let mut ops: Vec<PatchOp> = Vec::new();
    let mut last: Option<&Vec<PatchOp>> = None;
    for f in outcome
        .findings
        .iter()
        .filter(|f| f.manifest == Some(index))
    {
        if let Some(fix) = &f.fix
            && last != Some(fix)
        {
            ops.extend(fix.iter().cloned());
            last = Some(fix);
        }
    }
    ops
}

/// Repairs every source.
pub fn fix_sources(sources: &[Source], outcome: &Outcome) -> Vec<FixedSource> {
    let mut out = Vec::new();
    for (s, src) in sources.iter().enumerate() {
        let changed: Vec<(usize, &Value)> = outcome
            .manifests
            .iter()
            .enumerate()
            .filter(|(_, m)| m.source == s)
            .filter_map(|(i, _)| {
                outcome
                    .mutated
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|v| (i, v))
            })
            .collect();
        let mut fixed = FixedSource {
            name: src.name.clone(),
            original: src.text.clone(),
            fixed: src.text.clone(),
            reformatted: false,
        };
        if changed.is_empty() {
            out.push(fixed);
            continue;
        }
        let Ok(mut docs) = read::parse_documents(&src.text) else {
            out.push(fixed);
            continue;
        };
        let mut text = src.text.clone();
        for (index, mutated) in changed {
            let Some(m) = outcome.manifests.get(index) else {
                continue;
            };
            let Some(doc) = docs.iter_mut().find(|d| d.index == m.document) else {
                continue;
            };
            set_at(&mut doc.value, &m.base, mutated.clone());
            if fixed.reformatted || src.is_json() {
                continue;
            }
            match edit::apply_patch(
                &text,
                m.document,
                &m.base,
                &ops_for(outcome, index),
                &doc.value,
            ) {
                Some(edited) => text = edited,
                None => fixed.reformatted = true,
            }
        }
        fixed.fixed = if src.is_json() {
            let value = docs
                .into_iter()
                .next()
                .map(|d| d.value)
                .unwrap_or(Value::Null);
            let mut t = serde_json::to_string_pretty(&value).unwrap_or_default();
            t.push('\n');
            t
        } else if fixed.reformatted {
            docs.iter()
                .map(|d| edit::to_yaml(&d.value))
                .collect::<Vec<_>>()
                .join("---\n")
        } else {
            text
        };
        out.push(fixed);
    }
    out
}
