//! TEMPORARY STUB (being replaced by the real implementation).
use apart_policy::{PatchOp, path::JsonPath};
use serde_json::Value;
/// stub
pub fn to_yaml(value: &Value) -> String {
    format!("{}\n", value)
}
/// stub
pub fn apply_patch(
    _text: &str,
    _doc_index: usize,
    _base: &JsonPath,
    _ops: &[PatchOp],
    _expected_doc: &Value,
) -> Option<String> {
    None
}
