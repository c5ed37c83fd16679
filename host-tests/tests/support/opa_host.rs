//! A Rust OPA-Wasm host for the OPA-ABI module (`apart-opa`), written from OPA's Wasm ABI
//! documentation, doing what the OPA SDKs do (`@open-policy-agent/opa-wasm`, kubewarden's
//! burrego): it creates `env.memory` (5 pages), provides `opa_abort`, `opa_println` and
//! `opa_builtin0..4`, loads data once, saves the heap pointer, and per evaluation loads the
//! input, evaluates (through the evaluation context, or the one-call `opa_eval` of ABI 1.2)
//! and resets the heap pointer. Shared by the OPA tests, the differential test and the fuzz
//! corpus replay.

use std::path::PathBuf;

use serde_json::Value;
use wasmtime::error::Context as _;
use wasmtime::{
    Caller, Engine, Error, Instance, Linker, Memory, MemoryType, Module, Result, Store, TypedFunc,
};

use super::root;

/// An error with a message (wasmtime 48 has its own error type, not anyhow's).
macro_rules! fail {
    ($($t:tt)*) => { Error::msg(format!($($t)*)) };
}

/// The OPA module `cargo xtask build` built (`APART_OPA_MODULE` names it in CI).
pub fn opa_module_path() -> PathBuf {
    std::env::var_os("APART_OPA_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(apart_host::host::module::BUILT_OPA_MODULE))
}

pub fn opa_module_bytes() -> Vec<u8> {
    let path = opa_module_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the built OPA module {} is needed (run `cargo xtask build`): {e}",
            path.display()
        )
    })
}

/// Bytes in a Wasm page.
pub const PAGE: u64 = 65536;

/// A NUL-terminated string at `addr`.
pub fn c_string(memory: &[u8], addr: i32) -> Result<String> {
    let start = usize::try_from(addr)?;
    let tail = memory
        .get(start..)
        .ok_or_else(|| fail!("string address {addr} is outside memory"))?;
    let end = tail
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| fail!("string at {addr} has no NUL"))?;
    Ok(String::from_utf8(
        tail.get(..end).unwrap_or_default().to_vec(),
    )?)
}

/// An instantiated OPA policy with its data loaded.
pub struct OpaPolicy {
    pub store: Store<()>,
    pub memory: Memory,
    pub instance: Instance,
    /// The heap pointer after data was loaded: every evaluation starts there.
    base_heap: i32,
    data: i32,
}

impl OpaPolicy {
    /// As the SDKs do: the host creates the memory, 5 pages to start, no maximum.
    pub fn new(engine: &Engine, module: &Module) -> Result<Self> {
        Self::with_pages(engine, module, 5)
    }

    /// With a memory of `pages` to start (a host configured otherwise).
    pub fn with_pages(engine: &Engine, module: &Module, pages: u32) -> Result<Self> {
        let mut store = Store::new(engine, ());
        let memory = Memory::new(&mut store, MemoryType::new(pages, None))?;
        let mut linker = Linker::new(engine);
        linker.define(&store, "env", "memory", memory)?;
        linker.func_wrap(
            "env",
            "opa_abort",
            move |caller: Caller<'_, ()>, addr: i32| -> Result<()> {
                let text = c_string(memory.data(&caller), addr)?;
                Err(fail!("opa_abort: {text}"))
            },
        )?;
        linker.func_wrap(
            "env",
            "opa_println",
            move |caller: Caller<'_, ()>, addr: i32| -> Result<()> {
                eprintln!("opa_println: {}", c_string(memory.data(&caller), addr)?);
                Ok(())
            },
        )?;
        // `builtins()` is `{}`: a call to any built-in is a bug.
        linker.func_wrap("env", "opa_builtin0", |id: i32, _: i32| -> Result<i32> {
            Err(fail!("unexpected built-in {id}"))
        })?;
        linker.func_wrap(
            "env",
            "opa_builtin1",
            |id: i32, _: i32, _: i32| -> Result<i32> { Err(fail!("unexpected built-in {id}")) },
        )?;
        linker.func_wrap(
            "env",
            "opa_builtin2",
            |id: i32, _: i32, _: i32, _: i32| -> Result<i32> {
                Err(fail!("unexpected built-in {id}"))
            },
        )?;
        linker.func_wrap(
            "env",
            "opa_builtin3",
            |id: i32, _: i32, _: i32, _: i32, _: i32| -> Result<i32> {
                Err(fail!("unexpected built-in {id}"))
            },
        )?;
        linker.func_wrap(
            "env",
            "opa_builtin4",
            |id: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> Result<i32> {
                Err(fail!("unexpected built-in {id}"))
            },
        )?;
        let instance = linker.instantiate(&mut store, module)?;
        let mut policy = Self {
            store,
            memory,
            instance,
            base_heap: 0,
            data: 0,
        };
        policy.data = policy.load_json(b"{}")?;
        policy.base_heap = policy
            .func::<(), i32>("opa_heap_ptr_get")?
            .call(&mut policy.store, ())?;
        Ok(policy)
    }

    pub fn func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> Result<TypedFunc<P, R>> {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .with_context(|| format!("export {name}"))
    }

    /// Copies `bytes` to an `opa_malloc`ed buffer, parses them (`opa_json_parse`) and frees
    /// the buffer, as the SDKs load input and data.
    pub fn load_json(&mut self, bytes: &[u8]) -> Result<i32> {
        let len = i32::try_from(bytes.len())?;
        let addr = self
            .func::<i32, i32>("opa_malloc")?
            .call(&mut self.store, len)?;
        self.memory
            .write(&mut self.store, usize::try_from(addr)?, bytes)?;
        let value = self
            .func::<(i32, i32), i32>("opa_json_parse")?
            .call(&mut self.store, (addr, len))?;
        self.func::<i32, ()>("opa_free")?
            .call(&mut self.store, addr)?;
        if value == 0 {
            return Err(fail!("opa_json_parse refused the text"));
        }
        Ok(value)
    }

    /// `opa_json_dump` of a value, parsed.
    pub fn dump(&mut self, value: i32) -> Result<Value> {
        let text = self
            .func::<i32, i32>("opa_json_dump")?
            .call(&mut self.store, value)?;
        let json = c_string(self.memory.data(&self.store), text)?;
        Ok(serde_json::from_str(&json)?)
    }

    /// Evaluates through an evaluation context (ABI 1.0).
    pub fn eval_ctx(&mut self, input: &[u8], entrypoint: i32) -> Result<Value> {
        let base = self.base_heap;
        self.func::<i32, ()>("opa_heap_ptr_set")?
            .call(&mut self.store, base)?;
        let input = self.load_json(input)?;
        let ctx = self
            .func::<(), i32>("opa_eval_ctx_new")?
            .call(&mut self.store, ())?;
        self.func::<(i32, i32), ()>("opa_eval_ctx_set_input")?
            .call(&mut self.store, (ctx, input))?;
        let data = self.data;
        self.func::<(i32, i32), ()>("opa_eval_ctx_set_data")?
            .call(&mut self.store, (ctx, data))?;
        self.func::<(i32, i32), ()>("opa_eval_ctx_set_entrypoint")?
            .call(&mut self.store, (ctx, entrypoint))?;
        self.func::<i32, i32>("eval")?.call(&mut self.store, ctx)?;
        let result = self
            .func::<i32, i32>("opa_eval_ctx_get_result")?
            .call(&mut self.store, ctx)?;
        let out = self.dump(result);
        self.func::<i32, ()>("opa_heap_ptr_set")?
            .call(&mut self.store, base)?;
        out
    }

    /// Evaluates with the one-call `opa_eval` (ABI 1.2): the input text is written at the
    /// saved heap pointer and the module allocates above it.
    pub fn eval_once(&mut self, input: &[u8], entrypoint: i32) -> Result<Value> {
        let at = self.base_heap;
        let end = u64::try_from(at)? + u64::try_from(input.len())?;
        let size = self.memory.data_size(&self.store) as u64;
        if end > size {
            self.memory
                .grow(&mut self.store, (end - size).div_ceil(PAGE))?;
        }
        self.memory
            .write(&mut self.store, usize::try_from(at)?, input)?;
        let len = i32::try_from(input.len())?;
        let heap = at + len;
        let data = self.data;
        let text = self
            .func::<(i32, i32, i32, i32, i32, i32, i32), i32>("opa_eval")?
            .call(&mut self.store, (0, entrypoint, data, at, len, heap, 0))?;
        let json = c_string(self.memory.data(&self.store), text)?;
        Ok(serde_json::from_str(&json)?)
    }

    /// The violation messages for an input, requiring both evaluation paths to agree.
    pub fn violations(&mut self, input: &Value) -> Result<Vec<String>> {
        let text = input.to_string();
        let by_ctx = self.eval_ctx(text.as_bytes(), 0)?;
        let once = self.eval_once(text.as_bytes(), 0)?;
        if by_ctx != once {
            return Err(fail!("eval gave {by_ctx} but opa_eval gave {once}"));
        }
        messages(&by_ctx)
    }
}

/// The violation messages of a result set `[{"result": [{"msg": ...}]}]`.
pub fn messages(result_set: &Value) -> Result<Vec<String>> {
    let violations = result_set
        .pointer("/0/result")
        .and_then(Value::as_array)
        .ok_or_else(|| fail!("not a result set with a list of violations: {result_set}"))?;
    violations
        .iter()
        .map(|v| {
            v.get("msg")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| fail!("a violation without msg: {v}"))
        })
        .collect()
}
