//! apart as a Kubewarden policy: the waPC guest.
//!
//! An adapter only: it decodes policy-server's payloads, calls the engine
//! ([`apart_policy::admission::review`]) and encodes the answer with the Kubewarden SDK's
//! types. Settings are `{"policies": [DecorrelationPolicy, ...]}`; they are compiled once and
//! reused while policy-server keeps sending the same settings bytes.
//!
//! Every failure is an answer (a rejection or an invalid-settings response), never a waPC
//! error or a trap: the engine has no panicking paths, and the module is built with
//! `panic = "abort"` so a bug would surface as a trap in tests rather than unwind.

use std::cell::RefCell;
use std::collections::HashMap;

use apart_policy::PolicySet;
use apart_policy::admission::{self, FINDINGS_ANNOTATION, ValidationRequest, Verdict};
use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use wapc_guest::{CallResult, register_function};

/// HTTP status policy-server puts in a rejection's `status.code`.
const REJECTION_CODE: u16 = 400;

thread_local! {
    /// The last settings seen and what they compiled to.
    static COMPILED: RefCell<Option<(Vec<u8>, Result<PolicySet, String>)>> = const { RefCell::new(None) };
}

/// Compiles settings, or returns the cached result for the same bytes.
fn with_policies<T>(settings: &[u8], f: impl FnOnce(&Result<PolicySet, String>) -> T) -> T {
    COMPILED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.as_ref().is_none_or(|(bytes, _)| bytes != settings) {
            let compiled = compile(settings);
            *cached = Some((settings.to_vec(), compiled));
        }
        match cached.as_ref() {
            Some((_, compiled)) => f(compiled),
            None => f(&Err("internal: settings cache empty".to_owned())),
        }
    })
}

fn compile(settings: &[u8]) -> Result<PolicySet, String> {
    let settings = if settings.iter().all(u8::is_ascii_whitespace) || settings == b"null" {
        &b"{}"[..]
    } else {
        settings
    };
    let set = PolicySet::from_settings(settings).map_err(|e| e.to_string())?;
    if set.is_empty() {
        return Err(
            "settings.policies is empty: give at least one DecorrelationPolicy document".to_owned(),
        );
    }
    Ok(set)
}

/// Encodes a verdict as Kubewarden's `ValidationResponse`.
pub fn response(verdict: Verdict) -> ValidationResponse {
    let audit_annotations = verdict
        .findings_annotation()
        .map(|json| HashMap::from([(FINDINGS_ANNOTATION.to_owned(), json)]));
    ValidationResponse {
        accepted: verdict.accepted,
        code: (!verdict.accepted).then_some(REJECTION_CODE),
        message: verdict.message,
        mutated_object: verdict.mutated_object,
        audit_annotations,
        warnings: (!verdict.warnings.is_empty()).then_some(verdict.warnings),
    }
}

/// The `validate` waPC function, as a pure function of the payload.
pub fn validate_payload(payload: &[u8]) -> ValidationResponse {
    let verdict = match ValidationRequest::parse(payload) {
        Err(e) => Verdict::reject(format!("apart: {e}")),
        Ok(request) => {
            let settings = request.settings.map_or(&b"{}"[..], |s| s.get().as_bytes());
            with_policies(settings, |compiled| match compiled {
                Ok(policies) => admission::review(policies, request.request, payload),
                Err(e) => Verdict::reject(format!("apart: invalid settings: {e}")),
            })
        }
    };
    response(verdict)
}

/// The `validate_settings` waPC function, as a pure function of the payload.
pub fn validate_settings_payload(payload: &[u8]) -> SettingsValidationResponse {
    with_policies(payload, |compiled| match compiled {
        Ok(_) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(e) => SettingsValidationResponse {
            valid: false,
            message: Some(e.clone()),
        },
    })
}

fn encode<T: serde::Serialize>(value: &T) -> CallResult {
    Ok(serde_json::to_vec(value)?)
}

fn validate(payload: &[u8]) -> CallResult {
    encode(&validate_payload(payload))
}

fn validate_settings(payload: &[u8]) -> CallResult {
    encode(&validate_settings_payload(payload))
}

/// waPC entry point: registers the functions policy-server calls.
// waPC hosts call this export by name after instantiation; exporting it needs `no_mangle`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", validate);
    register_function("validate_settings", validate_settings);
    register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
}
