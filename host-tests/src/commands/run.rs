//! `apart run`: one admission request through a policy module, answered as policy-server
//! answers the API server (what `kwctl run` prints).
//!
//! The module is validated with its settings first (policy-server refuses to load a policy
//! whose `validate_settings` fails), then `validate` gets the `ValidationRequest`; the
//! module's `mutated_object` becomes an RFC 6902 patch of `request.object`, base64-encoded
//! with `patchType: JSONPatch`, exactly the form the API server applies.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::host::evaluator::Evaluator;

/// Why a request cannot be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request file is not an AdmissionReview or AdmissionRequest.
    #[error("the request is not an AdmissionReview or AdmissionRequest: {0}")]
    Request(String),
    /// The module refused its settings.
    #[error("the module refused its settings: {0}")]
    Settings(String),
    /// The module call failed (trap, deadline, bad answer).
    #[error(transparent)]
    Eval(#[from] crate::host::evaluator::EvalError),
}

/// `status` of a rejection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// HTTP-like code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// The `AdmissionResponse` policy-server returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Admitted?
    pub allowed: bool,
    /// `JSONPatch` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 of the RFC 6902 patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Audit annotations (apart's findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<std::collections::BTreeMap<String, String>>,
    /// Warnings for the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl AdmissionResponse {
    /// The decoded patch, when mutating.
    pub fn json_patch(&self) -> Option<json_patch::Patch> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.patch.as_deref()?)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The AdmissionRequest inside an AdmissionReview (or the request itself).
pub fn admission_request(review: Value) -> Result<Value, RunError> {
    let request = match review {
        Value::Object(mut map) if map.contains_key("request") => {
            map.remove("request").unwrap_or(Value::Null)
        }
        other => other,
    };
    let ok = request.get("uid").is_some_and(Value::is_string)
        && request.get("operation").is_some_and(Value::is_string);
    if !ok {
        return Err(RunError::Request(
            "expected `request.uid` and `request.operation` (an AdmissionReview as the API server sends it)".to_owned(),
        ));
    }
    Ok(request)
}

/// Evaluates one AdmissionRequest with `settings`, as policy-server does.
pub fn run(
    evaluator: &dyn Evaluator,
    request: &Value,
    settings: &Value,
) -> Result<AdmissionResponse, RunError> {
    let settings_bytes = serde_json::to_vec(settings).unwrap_or_default();
    let answer = evaluator.validate_settings(&settings_bytes)?;
    if !answer.valid {
        return Err(RunError::Settings(answer.message.unwrap_or_default()));
    }
    let payload = json!({"request": request, "settings": settings});
    let response = evaluator.validate(payload.to_string().as_bytes())?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let patch = response.mutated_object.as_ref().map(|mutated| {
        let original = request.get("object").unwrap_or(&Value::Null);
        let diff = json_patch::diff(original, mutated);
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&diff).unwrap_or_default())
    });
    let status = (!response.accepted).then(|| Status {
        message: response.message.clone(),
        code: response.code,
    });
    Ok(AdmissionResponse {
        uid,
        allowed: response.accepted,
        patch_type: patch.as_ref().map(|_| "JSONPatch".to_owned()),
        patch,
        status,
        audit_annotations: response.audit_annotations.map(|a| a.into_iter().collect()),
        warnings: response.warnings,
    })
}
