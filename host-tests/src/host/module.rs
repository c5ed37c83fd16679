//! Which policy modules the CLI runs and bakes.
//!
//! `cargo xtask build` compiles the Kubewarden waPC module and the OPA-ABI module first, then
//! the CLI with `APART_WASM_MODULE` and `APART_OPA_MODULE` pointing at them, so the release
//! binary carries the exact `.wasm` files the tests ran. Without them (a plain `cargo
//! build`), a module is looked up at run time.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Where `cargo xtask build` leaves the waPC module, relative to the workspace.
pub const BUILT_MODULE: &str = "target/wasm/apart_wasm.wasm";
/// Where `cargo xtask build` leaves the OPA-ABI module, relative to the workspace.
pub const BUILT_OPA_MODULE: &str = "target/opa/apart_opa.wasm";

/// One of the modules: how it is embedded and where it is found otherwise.
struct Kind {
    /// What the user is told is missing.
    what: &'static str,
    embedded: Option<&'static [u8]>,
    /// The environment variable naming a built module.
    variable: &'static str,
    /// Where `cargo xtask build` leaves it, relative to the workspace (under `target/`).
    built: &'static str,
}

fn wapc_kind() -> Kind {
    Kind {
        what: "policy module",
        #[cfg(apart_embedded_module)]
        embedded: Some(include_bytes!(env!("APART_EMBEDDED_MODULE"))),
        #[cfg(not(apart_embedded_module))]
        embedded: None,
        variable: "APART_WASM_MODULE",
        built: BUILT_MODULE,
    }
}

fn opa_kind() -> Kind {
    Kind {
        what: "OPA-ABI module",
        #[cfg(apart_embedded_opa_module)]
        embedded: Some(include_bytes!(env!("APART_EMBEDDED_OPA_MODULE"))),
        #[cfg(not(apart_embedded_opa_module))]
        embedded: None,
        variable: "APART_OPA_MODULE",
        built: BUILT_OPA_MODULE,
    }
}

/// The module bytes: an explicit path, else the embedded module, else the one the
/// environment variable names, else the build output next to the running binary's target
/// directory (`target/<profile>/apart` → `target/...`).
fn load_kind(kind: &Kind, explicit: Option<&Path>) -> Result<Cow<'static, [u8]>, String> {
    if let Some(path) = explicit {
        return std::fs::read(path)
            .map(Into::into)
            .map_err(|e| format!("cannot read module {}: {e}", path.display()));
    }
    if let Some(bytes) = kind.embedded {
        return Ok(bytes.into());
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os(kind.variable)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
    {
        let in_target = Path::new(kind.built)
            .strip_prefix("target")
            .unwrap_or(Path::new(kind.built));
        candidates.push(target.join(in_target));
    }
    candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .map(Into::into)
        .ok_or_else(|| {
            format!(
                "no {}: run `cargo xtask build` (it embeds the module in target/release/apart), or pass --module PATH",
                kind.what
            )
        })
}

/// The Kubewarden waPC module.
pub fn load(explicit: Option<&Path>) -> Result<Cow<'static, [u8]>, String> {
    load_kind(&wapc_kind(), explicit)
}

/// The OPA-ABI module (for `apart build --mode gatekeeper`).
pub fn load_opa(explicit: Option<&Path>) -> Result<Cow<'static, [u8]>, String> {
    load_kind(&opa_kind(), explicit)
}
