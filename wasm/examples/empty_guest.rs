//! The instantiation floor for `cargo xtask bench`: a waPC guest built like apart's module
//! (the same toolchain, profile and waPC runtime) that accepts every request at once and does
//! nothing else. What a fresh instance of it costs is what any Rust Kubewarden policy pays
//! for policy-server's instance per evaluation; apart's module must add nothing to that.

use wapc_guest::{CallResult, register_function};

/// Kubewarden's `ValidationResponse` for an accepted request, without reading it.
fn accept(_payload: &[u8]) -> CallResult {
    Ok(br#"{"accepted":true}"#.to_vec())
}

/// Every settings payload is valid.
fn valid(_payload: &[u8]) -> CallResult {
    Ok(br#"{"valid":true}"#.to_vec())
}

/// waPC entry point: registers the functions policy-server calls.
// waPC hosts call this export by name after instantiation; exporting it needs `no_mangle`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("validate", accept);
    register_function("validate_settings", valid);
    register_function(
        "protocol_version",
        kubewarden_policy_sdk::protocol_version_guest,
    );
}
