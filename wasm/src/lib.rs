//! apart as a Kubewarden policy: the waPC guest.
//!
//! An adapter only: it decodes policy-server's payloads, calls the engine
//! ([`apart_policy::admission::review_with_cluster`]) and encodes the answer with the
//! Kubewarden SDK's types. The engine reaches the cluster (for a running Pod that a policy
//! protects, nothing else) through [`WapcHost`], Kubewarden's `kubernetes` host capabilities.
//! Settings are `{"policies": [DecorrelationPolicy, ...]}`; they are compiled once and reused
//! while policy-server keeps sending the same settings bytes. The verdict, and what the
//! request's operation and the object's lifecycle make of the findings (a Pod UPDATE, a
//! deletion in progress, an existing violation), is the engine's
//! ([`apart_policy::admission`]); the findings travel in the [`FINDINGS_ANNOTATION`] audit
//! annotation, a key without a prefix, since the API server prefixes it with the webhook's
//! name.
//!
//! Baked policies: `apart build` writes policies into a copy of this module (the
//! region [`apart_policy::rules::baked`] describes), so that a module deployed with `settings: {}`
//! enforces them. Settings that carry policies replace the baked ones. `apart build` then
//! pre-initialises the module ([`preinitialize`]), so that the baked policies are compiled
//! once, at build time, not in every new instance.
//!
//! Every failure is an answer (a rejection or an invalid-settings response), never a waPC
//! error or a trap: the engine has no panicking paths, and the module is built with
//! `panic = "abort"` so a bug would surface as a trap in tests rather than unwind.

use std::cell::RefCell;
use std::collections::HashMap;

use apart_policy::PolicySet;
use apart_policy::admission::{
    self, FINDINGS_ANNOTATION, MutatedObject, ValidationRequest, Verdict,
};
use apart_policy::placement::colocation::KubernetesHost;
use apart_policy::rules::baked;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use wapc_guest::{CallResult, register_function};

/// HTTP status policy-server puts in a rejection's `status.code`.
const REJECTION_CODE: u16 = 400;

/// Settings bytes and what they compiled to.
type Compiled = (Vec<u8>, Result<PolicySet, String>);

thread_local! {
    /// The last settings seen and what they compiled to.
    static COMPILED: RefCell<Option<Compiled>> = const { RefCell::new(None) };
}

/// Settings that name no policy (absent, blank, `null`) are read as `{}`, so that all of them
/// share one cache entry: the one a pre-initialised module already holds.
fn normalized(settings: &[u8]) -> &[u8] {
    let blank = settings.iter().all(u8::is_ascii_whitespace) || settings == b"null";
    if blank { b"{}" } else { settings }
}

/// Compiles settings, or returns the cached result for the same bytes.
fn with_policies<T>(settings: &[u8], f: impl FnOnce(&Result<PolicySet, String>) -> T) -> T {
    let settings = normalized(settings);
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

/// Compiles the settings; settings that name no policy (`{}`, `{"policies": []}`) stand for
/// the baked policies. The settings are read once either way.
fn compile(settings: &[u8]) -> Result<PolicySet, String> {
    let set = PolicySet::from_settings(settings).map_err(|e| e.to_string())?;
    if !set.is_empty() {
        return Ok(set);
    }
    match baked::settings() {
        Some(bytes) => PolicySet::from_settings(&bytes)
            .map_err(|e| format!("the baked policies cannot be read: {e}")),
        None => Err(
            "settings.policies is empty and no policies are baked into this module: give at least one DecorrelationPolicy document (or bake them in with `apart build`)".to_owned(),
        ),
    }
}

/// Kubewarden's `ValidationResponse` as policy-server reads it: the SDK's fields, names and
/// order, `null` for what is not set. The SDK's own type holds the mutated object as a
/// `serde_json::Value`; this one holds the engine's JSON text, written as it is, so a repair
/// costs no tree and no second serialisation of the object.
#[derive(Debug, serde::Serialize)]
pub struct ValidationResponse {
    /// Let the request through?
    pub accepted: bool,
    /// Why not, for the user.
    pub message: Option<String>,
    /// The HTTP status of a rejection.
    pub code: Option<u16>,
    /// The repaired object (`action: mutate`).
    pub mutated_object: Option<MutatedObject>,
    /// Audit annotations (the findings).
    pub audit_annotations: Option<HashMap<String, String>>,
    /// Warnings for the user.
    pub warnings: Option<Vec<String>>,
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

/// Kubewarden's `kubernetes` host capabilities, reached with waPC `host_call`. The SDK's
/// typed helpers need its `cluster-context` feature (k8s-openapi), which this module does not
/// build; the engine writes the SDK's request JSON itself.
pub struct WapcHost;

impl KubernetesHost for WapcHost {
    fn call(&mut self, operation: &str, request: &[u8]) -> Result<Vec<u8>, String> {
        wapc_guest::host_call("kubewarden", "kubernetes", operation, request).map_err(|e| {
            // wapc-guest wraps the host's message as "Host error: ..."; the message is what
            // the user needs (and what a native run with the same host answers).
            let text = e.to_string();
            text.strip_prefix("Host error: ")
                .map_or_else(|| text.clone(), str::to_owned)
        })
    }
}

/// The `validate` waPC function, as a function of the payload and the host's capabilities.
pub fn validate_payload(payload: &[u8]) -> ValidationResponse {
    validate_payload_with(payload, &mut WapcHost)
}

/// [`validate_payload`] with another host (recorded answers, when run natively).
pub fn validate_payload_with(payload: &[u8], host: &mut dyn KubernetesHost) -> ValidationResponse {
    let verdict = match ValidationRequest::parse(payload) {
        Err(e) => Verdict::reject(format!("apart: {e}")),
        Ok(request) => {
            let settings = request.settings.map_or(&b"{}"[..], |s| s.get().as_bytes());
            with_policies(settings, |compiled| match compiled {
                Ok(policies) => {
                    admission::review_with_cluster(policies, request.request, payload, host)
                }
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

/// The export `apart build` runs once, through Wizer, in a module it has baked policies into:
/// it compiles the baked policies into the settings cache, and the memory that results becomes
/// the module's initial memory. Every instance policy-server creates from that module then
/// starts with the policies compiled, so a request with empty settings compiles nothing. Wizer
/// removes the export from the module it writes, so a module that still has it has not been
/// pre-initialised. It calls no import: Wizer's snapshot cannot hold host state.
// Hosts find the export by name; exporting it needs an unmangled symbol.
#[allow(unsafe_code)]
#[unsafe(export_name = "apart.preinitialize")]
pub extern "C" fn preinitialize() {
    with_policies(b"{}", |_| ());
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
