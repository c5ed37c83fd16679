//! The real OPA engine (Go, OPA 1.20) as an independent judge of the generated Rego: the
//! C library `libopabridge.so` from the PyPI wheel `opa-golib-python-bindings`, loaded at run
//! time. It evaluates Rego as Gatekeeper's OPA does, with prepared queries cached per query
//! string. The differential and Gatekeeper tests and the admission bench share it (the bench
//! includes this file by path). Where it is not installed (`cargo xtask setup` unpacks it into
//! `target/opa-bridge`; `APART_OPA_BRIDGE` names another copy), [`OpaEngine::load`] answers
//! `None` and the callers skip its rows or cases.
//!
//! The library's C API: `OpaNew() -> handle`, `OpaAddPolicy(handle, path, source)` and
//! `OpaEvalQuery(handle, query, input_json, coverage, trace)` return a JSON envelope
//! (`{"result": ...}` or `{"error": {"code", "message"}}`) that the caller frees with
//! `OpaFreeString`.
// Calling a C library needs `unsafe`; every call passes NUL-terminated strings that outlive
// it and frees each returned envelope exactly once.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::PathBuf;

use serde_json::Value;

type New = unsafe extern "C" fn() -> u64;
type AddPolicy = unsafe extern "C" fn(u64, *const c_char, *const c_char) -> *mut c_char;
type EvalQuery =
    unsafe extern "C" fn(u64, *const c_char, *const c_char, c_int, c_int) -> *mut c_char;
type FreeString = unsafe extern "C" fn(*mut c_char);
type Destroy = unsafe extern "C" fn(u64);

/// One OPA engine instance in the loaded library.
pub struct OpaEngine {
    // Kept loaded while the function pointers below are used.
    _library: libloading::Library,
    handle: u64,
    add_policy: AddPolicy,
    eval_query: EvalQuery,
    free_string: FreeString,
    destroy: Destroy,
}

/// Where the library is looked for.
pub fn library_path() -> PathBuf {
    std::env::var_os("APART_OPA_BRIDGE").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/opa-bridge/opa_bindings/libopabridge.so")
        },
        PathBuf::from,
    )
}

impl OpaEngine {
    /// Loads the library and creates an engine, or `None` when the library is not there.
    pub fn load() -> Option<Self> {
        let path = library_path();
        if !path.is_file() {
            return None;
        }
        // SAFETY: the library is the OPA bridge (its initialisers start the Go runtime, nothing
        // else); the symbols' types are those of its C header.
        unsafe {
            let library = libloading::Library::new(&path).ok()?;
            let new: New = *library.get::<New>(b"OpaNew\0").ok()?;
            let add_policy = *library.get::<AddPolicy>(b"OpaAddPolicy\0").ok()?;
            let eval_query = *library.get::<EvalQuery>(b"OpaEvalQuery\0").ok()?;
            let free_string = *library.get::<FreeString>(b"OpaFreeString\0").ok()?;
            let destroy = *library.get::<Destroy>(b"OpaDestroy\0").ok()?;
            let handle = new();
            Some(Self {
                _library: library,
                handle,
                add_policy,
                eval_query,
                free_string,
                destroy,
            })
        }
    }

    /// Reads a returned envelope and frees it.
    fn envelope(&self, raw: *mut c_char) -> Result<Value, String> {
        if raw.is_null() {
            return Err("the OPA bridge returned NULL".to_owned());
        }
        // SAFETY: a non-NULL envelope is a NUL-terminated string the library allocated; it is
        // copied before it is freed, once.
        let text = unsafe {
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (self.free_string)(raw);
            text
        };
        let mut envelope: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        match envelope.get("error") {
            Some(error) if !error.is_null() => Err(error.to_string()),
            _ => Ok(envelope["result"].take()),
        }
    }

    /// Adds a Rego module.
    pub fn add_policy(&mut self, path: &str, source: &str) -> Result<(), String> {
        let path = CString::new(path).map_err(|e| e.to_string())?;
        let source = CString::new(source).map_err(|e| e.to_string())?;
        // SAFETY: both strings outlive the call.
        let raw = unsafe { (self.add_policy)(self.handle, path.as_ptr(), source.as_ptr()) };
        self.envelope(raw).map(drop)
    }

    /// Evaluates `query` with `input` (JSON text): the result set, as OPA's REST API gives it
    /// (`[{"expressions": [{"value": ...}], "bindings": {...}}]`, or `null` when undefined).
    pub fn eval(&mut self, query: &CStr, input: &CStr) -> Result<Value, String> {
        // SAFETY: both strings outlive the call.
        let raw = unsafe { (self.eval_query)(self.handle, query.as_ptr(), input.as_ptr(), 0, 0) };
        self.envelope(raw)
    }

    /// The document at `data.<path>` (dots between the parts) for `input`; `None` when it is
    /// undefined.
    pub fn document(&mut self, path: &str, input: &Value) -> Result<Option<Value>, String> {
        let query = CString::new(format!("data.{path}")).map_err(|e| e.to_string())?;
        let input = CString::new(input.to_string()).map_err(|e| e.to_string())?;
        let mut result = self.eval(&query, &input)?;
        Ok(result
            .pointer_mut("/0/expressions/0/value")
            .map(Value::take))
    }
}

impl Drop for OpaEngine {
    fn drop(&mut self) {
        // SAFETY: the handle came from OpaNew and is destroyed once.
        unsafe { (self.destroy)(self.handle) }
    }
}
