//! apart as an OPA WebAssembly module: the policy Kubewarden's `gatekeeper` mode and OPA's
//! SDKs evaluate.
//!
//! The module speaks the OPA Wasm ABI 1.3 (see [`abi`]) but holds no Rego: its single
//! entrypoint, [`ENTRYPOINT`] (id 0), runs the engine. Gatekeeper-mode input is
//! `{"parameters": {"policies": [...]}, "review": <AdmissionRequest>}`; the result set is
//! `[{"result": [{"msg": "..."}, ...]}]`, one violation per error finding the request is
//! judged by (an empty list admits): the engine's lifecycle decides which, as in the waPC
//! module (a Pod UPDATE, a deletion in progress, an existing violation under
//! `existingViolations: allow` are admitted; see `apart_policy::admission`). Nothing is
//! repaired: Gatekeeper mode only validates. It never fails open: unreadable parameters or a
//! malformed review are a violation that says so.
//!
//! This file is safe Rust over `serde_json::Value`s; the ABI's memory and pointer handling
//! lives in [`abi`] alone. Kept apart from the waPC module on purpose: a waPC module that
//! exports anything named `opa_*` is taken for Rego by kwctl.

use apart_policy::Finding;
use apart_policy::PolicySet;
use apart_policy::admission::{self, ValidationRequest};
use apart_policy::rules::baked;
use serde_json::{Map, Value, json};

#[cfg(target_arch = "wasm32")]
pub mod abi;

/// The name of entrypoint 0, as `entrypoints()` reports it.
pub const ENTRYPOINT: &str = "apart/violation";

/// OPA's error codes for `opa_value_add_path` / `opa_value_remove_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    /// `OPA_ERR_OK`.
    Ok = 0,
    /// `OPA_ERR_INTERNAL`.
    Internal = 1,
    /// `OPA_ERR_INVALID_TYPE`.
    InvalidType = 2,
    /// `OPA_ERR_INVALID_PATH`.
    InvalidPath = 3,
}

/// `entrypoints()`: name to id.
pub fn entrypoints() -> Value {
    json!({ ENTRYPOINT: 0 })
}

/// `builtins()`: the module calls no host built-in.
pub fn builtins() -> Value {
    Value::Object(Map::new())
}

/// One violation line, as the waPC module's rejection message writes a finding.
pub fn line(f: &Finding) -> String {
    format!("[{}] {} at {}: {}", f.code, f.policy, f.path, f.message)
}

/// Evaluates entrypoint `entrypoint` on `input`; the result set the ABI returns. An unknown
/// entrypoint is `None` (the caller aborts, as the ABI says).
pub fn evaluate(entrypoint: i32, input: Option<&Value>) -> Option<Value> {
    (entrypoint == 0).then(|| json!([{ "result": violations(input) }]))
}

/// The violations (`[{"msg": ...}]`) of a Gatekeeper-mode input.
pub fn violations(input: Option<&Value>) -> Value {
    let msgs = messages(input);
    Value::Array(msgs.into_iter().map(|m| json!({ "msg": m })).collect())
}

/// The violation messages of a Gatekeeper-mode input: one per error finding; a rejection
/// that is not about findings (unreadable review or parameters) is one message.
pub fn messages(input: Option<&Value>) -> Vec<String> {
    let Some(input) = input else {
        return vec!["apart: no input: expected {\"parameters\": {\"policies\": [...]}, \"review\": <AdmissionRequest>}".to_owned()];
    };
    // Parameters that name no policy stand for the policies `apart build --mode gatekeeper`
    // baked in; parameters with policies replace them.
    let given = match input.get("parameters") {
        None | Some(Value::Null) => None,
        Some(p) => Some(p.to_string()),
    };
    let policies = match given
        .as_deref()
        .map(|p| PolicySet::from_settings(p.as_bytes()))
    {
        Some(Ok(set)) if !set.is_empty() => set,
        Some(Err(e)) => return vec![format!("apart: invalid parameters: {e}")],
        _ => match baked::settings().map(|b| PolicySet::from_settings(&b)) {
            Some(Ok(set)) if !set.is_empty() => set,
            Some(Err(e)) => return vec![format!("apart: the baked policies cannot be read: {e}")],
            _ => {
                return vec!["apart: invalid parameters: no policies: give {\"policies\": [DecorrelationPolicy, ...]} as parameters (or bake them in with `apart build --mode gatekeeper`)".to_owned()];
            }
        },
    };
    // Gatekeeper mode reports what the request is judged by and repairs nothing: no repair
    // is planned, applied or re-checked.
    let policies = policies.without_repairs();
    let Some(review) = input.get("review") else {
        return vec!["apart: input.review is missing: expected the AdmissionRequest".to_owned()];
    };
    let operation = review.get("operation").and_then(Value::as_str);
    let has_object = review.get("object").is_some_and(|o| !o.is_null());
    if review.is_object() && !has_object && !matches!(operation, Some("DELETE" | "CONNECT")) {
        // Only a DELETE or CONNECT comes without an object; admitting anything else unread
        // would fail open.
        return vec!["apart: input.review.object is missing: nothing to check".to_owned()];
    }
    // The engine reads a Kubewarden ValidationRequest (`{"request": ...}`), and reads that
    // text again whole for value targets and repairs; give it the review in that shape.
    // Written straight from the review: `json!` would copy the whole tree first.
    let mut payload = br#"{"request":"#.to_vec();
    if let Err(e) = serde_json::to_writer(&mut payload, review) {
        return vec![format!(
            "apart: input.review cannot be written as JSON: {e}"
        )];
    }
    payload.push(b'}');
    let request = match ValidationRequest::parse(&payload) {
        Ok(r) => r,
        Err(e) => return vec![format!("apart: {e}")],
    };
    let verdict = admission::review(&policies, request.request, &payload);
    // The findings the request is judged by in its lifecycle (a Pod UPDATE, an existing
    // violation under `existingViolations: allow`, a deletion are let through), before any
    // repair: this module only validates.
    let errors: Vec<String> = verdict.violations.iter().map(line).collect();
    if errors.is_empty() && !verdict.accepted {
        // A rejection without findings: the object could not be read.
        return vec![
            verdict
                .message
                .unwrap_or_else(|| "apart: rejected".to_owned()),
        ];
    }
    errors
}

/// The keys of a path value (`["a", "b"]`), or the error code for another shape.
fn path_keys(path: &Value) -> Result<Vec<&str>, ErrorCode> {
    let Value::Array(items) = path else {
        return Err(ErrorCode::InvalidType);
    };
    items
        .iter()
        .map(|k| k.as_str().ok_or(ErrorCode::InvalidType))
        .collect()
}

/// `opa_value_add_path`: writes `value` at `path` in `base`, creating objects on the way.
/// On error `base` is unchanged.
pub fn add_path(base: &mut Value, path: &Value, value: Value) -> ErrorCode {
    let keys = match path_keys(path) {
        Ok(k) => k,
        Err(e) => return e,
    };
    let Some((last, parents)) = keys.split_last() else {
        // The empty path replaces the whole document.
        *base = value;
        return ErrorCode::Ok;
    };
    // Check first, so that a failure leaves `base` untouched.
    let mut at = &*base;
    for key in parents {
        match at {
            Value::Object(map) => match map.get(*key) {
                Some(next) => at = next,
                None => break,
            },
            _ => return ErrorCode::InvalidPath,
        }
    }
    if !at.is_object() {
        return ErrorCode::InvalidPath;
    }
    let mut at = base;
    for key in parents {
        let Value::Object(map) = at else {
            return ErrorCode::InvalidPath;
        };
        at = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    match at {
        Value::Object(map) => {
            map.insert((*last).to_owned(), value);
            ErrorCode::Ok
        }
        _ => ErrorCode::InvalidPath,
    }
}

/// `opa_value_remove_path`: removes what `path` names from `base`.
pub fn remove_path(base: &mut Value, path: &Value) -> ErrorCode {
    let keys = match path_keys(path) {
        Ok(k) => k,
        Err(e) => return e,
    };
    let Some((last, parents)) = keys.split_last() else {
        *base = Value::Null;
        return ErrorCode::Ok;
    };
    let mut at = base;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return ErrorCode::InvalidPath,
        }
    }
    match at {
        Value::Object(map) => match map.shift_remove(*last) {
            Some(_) => ErrorCode::Ok,
            None => ErrorCode::InvalidPath,
        },
        _ => ErrorCode::InvalidPath,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_add_and_remove() {
        let mut base = json!({"a": {"b": 123}});
        let code = add_path(&mut base, &json!(["a", "x", "y"]), json!({"foo": "bar"}));
        assert_eq!(code, ErrorCode::Ok);
        assert_eq!(base, json!({"a": {"b": 123, "x": {"y": {"foo": "bar"}}}}));
        assert_eq!(
            add_path(&mut base, &json!(["a", "b", "c"]), json!(1)),
            ErrorCode::InvalidPath
        );
        assert_eq!(remove_path(&mut base, &json!(["a", "x"])), ErrorCode::Ok);
        assert_eq!(base, json!({"a": {"b": 123}}));
        assert_eq!(remove_path(&mut base, &json!([1])), ErrorCode::InvalidType);
    }

    #[test]
    fn never_fails_open() {
        for input in [
            None,
            Some(json!({})),
            Some(json!({"parameters": {"policies": []}, "review": {}})),
            Some(json!({"parameters": {"policies": "x"}, "review": {}})),
        ] {
            assert_eq!(messages(input.as_ref()).len(), 1, "{input:?}");
        }
    }
}
