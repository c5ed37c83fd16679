//! Which policy module the CLI runs.
//!
//! `cargo xtask build` compiles the Kubewarden module first and then the CLI with
//! `APART_WASM_MODULE` pointing at it, so the release binary carries the exact `.wasm` the
//! tests ran. Without it (a plain `cargo build`), the module is looked up at run time.

use std::path::{Path, PathBuf};

/// The module embedded at build time, if any.
pub fn embedded() -> Option<&'static [u8]> {
    #[cfg(apart_embedded_module)]
    {
        Some(include_bytes!(env!("APART_EMBEDDED_MODULE")))
    }
    #[cfg(not(apart_embedded_module))]
    {
        None
    }
}

/// The OPA-ABI module embedded at build time, if any.
pub fn embedded_opa() -> Option<&'static [u8]> {
    #[cfg(apart_embedded_opa_module)]
    {
        Some(include_bytes!(env!("APART_EMBEDDED_OPA_MODULE")))
    }
    #[cfg(not(apart_embedded_opa_module))]
    {
        None
    }
}

/// Where `cargo xtask build` leaves the OPA-ABI module, relative to the workspace.
pub const BUILT_OPA_MODULE: &str = "target/opa/apart_opa.wasm";

/// The OPA-ABI module: an explicit path, else the embedded one, else `APART_OPA_MODULE`,
/// else the built one next to the running binary's target directory.
pub fn load_opa(explicit: Option<&Path>) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    if let Some(path) = explicit {
        return std::fs::read(path)
            .map(Into::into)
            .map_err(|e| format!("cannot read module {}: {e}", path.display()));
    }
    if let Some(bytes) = embedded_opa() {
        return Ok(bytes.into());
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("APART_OPA_MODULE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
    {
        candidates.push(target.join("opa/apart_opa.wasm"));
    }
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes.into());
        }
    }
    Err("no OPA-ABI module: run `cargo xtask build` (it embeds the module in target/release/apart), or pass --module PATH".to_owned())
}

/// Where `cargo xtask build` leaves the module, relative to the workspace.
pub const BUILT_MODULE: &str = "target/wasm32-wasip1/wasm/apart_wasm.wasm";

/// Candidate locations: `APART_WASM_MODULE`, then the build output next to the running
/// binary's target directory.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("APART_WASM_MODULE") {
        out.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/apart -> target/wasm32-wasip1/wasm/apart_wasm.wasm
        if let Some(target) = exe.parent().and_then(Path::parent) {
            out.push(target.join("wasm32-wasip1/wasm/apart_wasm.wasm"));
        }
    }
    out
}

/// The module bytes: an explicit path, else the embedded module, else a built one.
pub fn load(explicit: Option<&Path>) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    if let Some(path) = explicit {
        return std::fs::read(path)
            .map(Into::into)
            .map_err(|e| format!("cannot read module {}: {e}", path.display()));
    }
    if let Some(bytes) = embedded() {
        return Ok(bytes.into());
    }
    for path in candidates() {
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes.into());
        }
    }
    Err("no policy module: run `cargo xtask build` (it embeds the module in target/release/apart), or pass --module PATH".to_owned())
}
