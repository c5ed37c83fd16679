//! OPA's own engine (OPA 1.20, Go) through its C interface: `libopabridge.so` from the PyPI
//! wheel `opa-golib-python-bindings`, which `cargo xtask setup` unpacks under
//! `target/opa-bridge`. The differential test evaluates the generated Gatekeeper Rego with it,
//! as Gatekeeper does.
//!
//! The library's functions (learnt from its exported symbols and the wheel's ctypes
//! declarations): `OpaNew() -> u64` a handle; `OpaAddPolicy(h, path, source)`,
//! `OpaEvalDocument(h, path, input_json, coverage, trace)` answer a NUL-terminated JSON
//! envelope (`{"error": {...}}` or `{"result": [...]}`) that the caller frees with
//! `OpaFreeString`; `OpaDestroy(h)`.
// The one place in the tests that calls C: a foreign library has no safe interface.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;

use serde_json::Value;

use super::root;

type New = unsafe extern "C" fn() -> u64;
type Destroy = unsafe extern "C" fn(u64);
type Free = unsafe extern "C" fn(*mut c_char);
type AddPolicy = unsafe extern "C" fn(u64, *const c_char, *const c_char) -> *mut c_char;
type EvalDocument =
    unsafe extern "C" fn(u64, *const c_char, *const c_char, c_int, c_int) -> *mut c_char;

/// Where `cargo xtask setup` leaves the library (`APART_OPA_BRIDGE` names another).
pub fn library_path() -> PathBuf {
    std::env::var_os("APART_OPA_BRIDGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/opa-bridge/opa_bindings/libopabridge.so"))
}

/// One OPA engine with policies loaded.
pub struct OpaEngine {
    lib: libloading::Library,
    handle: u64,
}

impl OpaEngine {
    /// Loads the library; `None` when it is not there (then the test says so and skips OPA).
    pub fn load() -> Option<Result<Self, String>> {
        let path = library_path();
        if !path.is_file() {
            return None;
        }
        // SAFETY: loading a shared library runs its initialisers; this one is the Go
        // runtime's, which expects nothing of the host process.
        let lib = match unsafe { libloading::Library::new(&path) } {
            Ok(l) => l,
            Err(e) => return Some(Err(format!("{}: {e}", path.display()))),
        };
        // SAFETY: `OpaNew` takes nothing and returns a handle.
        let handle = unsafe {
            match lib.get::<New>(b"OpaNew") {
                Ok(f) => f(),
                Err(e) => return Some(Err(e.to_string())),
            }
        };
        Some(Ok(Self { lib, handle }))
    }

    /// Reads an envelope the library returned and frees it.
    fn envelope(&self, ptr: *mut c_char) -> Result<Value, String> {
        if ptr.is_null() {
            return Err("the OPA library returned NULL".to_owned());
        }
        // SAFETY: a NUL-terminated string the library allocated; it stays valid until
        // OpaFreeString, called right after the copy.
        let text = unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: the pointer the library returned, freed once.
        unsafe {
            if let Ok(free) = self.lib.get::<Free>(b"OpaFreeString") {
                free(ptr);
            }
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        match value.get("error") {
            Some(e) if !e.is_null() => Err(e.to_string()),
            _ => Ok(value),
        }
    }

    fn c(text: &str) -> Result<CString, String> {
        CString::new(text).map_err(|e| e.to_string())
    }

    /// Adds a Rego module.
    pub fn add_policy(&mut self, path: &str, source: &str) -> Result<(), String> {
        let (path, source) = (Self::c(path)?, Self::c(source)?);
        // SAFETY: the handle is live; both strings are NUL-terminated and outlive the call.
        let ptr = unsafe {
            let f = self
                .lib
                .get::<AddPolicy>(b"OpaAddPolicy")
                .map_err(|e| e.to_string())?;
            f(self.handle, path.as_ptr(), source.as_ptr())
        };
        self.envelope(ptr).map(|_| ())
    }

    /// The document at `data.<path>` (dots between the parts) for `input`; `None` when it is
    /// undefined.
    pub fn eval(&self, path: &str, input: &Value) -> Result<Option<Value>, String> {
        let (path, input) = (Self::c(path)?, Self::c(&input.to_string())?);
        // SAFETY: as in add_policy.
        let ptr = unsafe {
            let f = self
                .lib
                .get::<EvalDocument>(b"OpaEvalDocument")
                .map_err(|e| e.to_string())?;
            f(self.handle, path.as_ptr(), input.as_ptr(), 0, 0)
        };
        let envelope = self.envelope(ptr)?;
        Ok(envelope.pointer("/result/0/expressions/0/value").cloned())
    }
}

impl Drop for OpaEngine {
    fn drop(&mut self) {
        // SAFETY: the handle is live and destroyed once.
        unsafe {
            if let Ok(f) = self.lib.get::<Destroy>(b"OpaDestroy") {
                f(self.handle);
            }
        }
    }
}
