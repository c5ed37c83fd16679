//! The OPA Wasm ABI 1.3 surface: the exports OPA hosts call, the imports they provide, and the
//! allocator whose heap pointer they read and reset.
//!
//! The only module with `unsafe`: the ABI passes addresses into the shared linear memory as
//! `i32`s, and the hosts give back exactly the addresses this module handed out (values,
//! contexts, strings) or regions they wrote themselves (input text). A value address is a
//! `Box<serde_json::Value>`; a string address is a NUL-terminated byte buffer.
//!
//! Memory: the host creates `env.memory` and the module allocates from `__heap_base` upwards
//! with a bump allocator that never frees. That is what the ABI's heap protocol expects: a
//! host saves `opa_heap_ptr_get()` after loading data and sets it back after each evaluation,
//! releasing everything evaluated since in one step. Because of that, nothing allocated during
//! an evaluation may outlive it: the module keeps no cache across calls.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::arch::wasm32;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// Bytes in a Wasm page.
const PAGE: usize = 65536;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// The host's `opa_abort(addr)`: an internal error; `addr` is a NUL-terminated message.
    fn opa_abort(addr: i32);
    /// `opa_println(addr)`: a message from the policy (this module prints nothing).
    fn opa_println(addr: i32);
    /// `opa_builtin0(id, ctx)`..`opa_builtin4`: host built-ins (`builtins()` asks for none).
    fn opa_builtin0(id: i32, ctx: i32) -> i32;
    fn opa_builtin1(id: i32, ctx: i32, a: i32) -> i32;
    fn opa_builtin2(id: i32, ctx: i32, a: i32, b: i32) -> i32;
    fn opa_builtin3(id: i32, ctx: i32, a: i32, b: i32, c: i32) -> i32;
    fn opa_builtin4(id: i32, ctx: i32, a: i32, b: i32, c: i32, d: i32) -> i32;
}

/// The ABI's import list is part of the contract hosts check (and policy-server's burrego
/// instantiates exactly it); the linker would drop imports no code calls, so this table keeps
/// them.
// Read by nothing: the fields exist to be linked.
#[allow(dead_code)]
struct AbiImports {
    println: unsafe extern "C" fn(i32),
    builtin0: unsafe extern "C" fn(i32, i32) -> i32,
    builtin1: unsafe extern "C" fn(i32, i32, i32) -> i32,
    builtin2: unsafe extern "C" fn(i32, i32, i32, i32) -> i32,
    builtin3: unsafe extern "C" fn(i32, i32, i32, i32, i32) -> i32,
    builtin4: unsafe extern "C" fn(i32, i32, i32, i32, i32, i32) -> i32,
}

#[used]
static ABI_IMPORTS: AbiImports = AbiImports {
    println: opa_println,
    builtin0: opa_builtin0,
    builtin1: opa_builtin1,
    builtin2: opa_builtin2,
    builtin3: opa_builtin3,
    builtin4: opa_builtin4,
};

/// The allocator's next free address; 0 until first used (then `__heap_base`).
static HEAP: AtomicUsize = AtomicUsize::new(0);

fn heap_base() -> usize {
    unsafe extern "C" {
        // Defined by wasm-ld: the first address after the data and the stack.
        static __heap_base: u8;
    }
    // Only the address is taken; the byte is never read.
    (&raw const __heap_base) as usize
}

fn heap_ptr() -> usize {
    match HEAP.load(Ordering::Relaxed) {
        0 => heap_base(),
        p => p,
    }
}

/// Makes sure memory extends to `end`, growing it if needed; false when it cannot.
fn reserve(end: usize) -> bool {
    let have = wasm32::memory_size(0) * PAGE;
    if end <= have {
        return true;
    }
    wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) != usize::MAX
}

/// Bump allocation over the imported memory; `dealloc` is a no-op (see the module doc).
struct Bump;

// SAFETY: every block is fresh memory between the heap pointer and the end of (grown)
// memory, aligned as asked, and never handed out twice until a host resets the heap pointer,
// which the ABI defines as releasing everything allocated after it.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(start) = heap_ptr().checked_next_multiple_of(layout.align()) else {
            return std::ptr::null_mut();
        };
        match start.checked_add(layout.size()) {
            Some(end) if reserve(end) => {
                HEAP.store(end, Ordering::Relaxed);
                start as *mut u8
            }
            _ => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The last block grows in place: serialising into a Vec does not copy each time.
        let end = (ptr as usize).checked_add(layout.size());
        if end == Some(heap_ptr())
            && let Some(new_end) = (ptr as usize).checked_add(new_size)
            && reserve(new_end)
        {
            HEAP.store(new_end, Ordering::Relaxed);
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a valid layout, as GlobalAlloc::realloc's caller guarantees.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap (the new
            // one lies above the heap pointer, the old one below).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;

/// A panic (none is expected: the engine has no panicking paths) reaches the host as
/// `opa_abort` with the message, not as a bare `unreachable` trap.
fn abort_on_panic() {
    // A zero-sized closure: setting the hook allocates nothing that a heap reset could free.
    std::panic::set_hook(Box::new(|info| {
        let message = format!("apart: {info}\0");
        // SAFETY: a NUL-terminated string in linear memory, as opa_abort expects.
        unsafe { opa_abort(message.as_ptr() as i32) };
    }));
}

fn addr<T>(ptr: *const T) -> i32 {
    ptr as usize as i32
}

/// A new value's address.
fn new_value(value: Value) -> i32 {
    addr(Box::into_raw(Box::new(value)))
}

/// The value at `addr`, or `None` for the null address.
fn value<'a>(addr: i32) -> Option<&'a mut Value> {
    let ptr = addr as usize as *mut Value;
    // SAFETY: the ABI gives back only value addresses this module returned (`opa_json_parse`,
    // `opa_value_parse`, `entrypoints`, `builtins`, results), each a live Box<Value> until the
    // host resets the heap below it.
    unsafe { ptr.as_mut() }
}

/// A NUL-terminated copy of `text`; its address.
fn new_string(mut bytes: Vec<u8>) -> i32 {
    bytes.push(0);
    addr(bytes.leak().as_ptr())
}

/// `len` bytes the host wrote at `addr`.
fn bytes<'a>(addr: i32, len: i32) -> &'a [u8] {
    let Ok(len) = usize::try_from(len) else {
        return &[];
    };
    if addr == 0 || len == 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `addr` in this module's memory (opa_malloc'd, or
    // at the heap pointer it passes to opa_eval), as the ABI requires.
    unsafe { std::slice::from_raw_parts(addr as usize as *const u8, len) }
}

fn abort(message: &str) {
    let text = format!("{message}\0");
    // SAFETY: a NUL-terminated string in linear memory, as opa_abort expects.
    unsafe { opa_abort(text.as_ptr() as i32) };
}

/// An evaluation context (`opa_eval_ctx_*`).
#[derive(Default)]
struct Context {
    input: i32,
    data: i32,
    entrypoint: i32,
    result: i32,
}

fn context<'a>(addr: i32) -> Option<&'a mut Context> {
    let ptr = addr as usize as *mut Context;
    // SAFETY: the ABI gives back only context addresses `opa_eval_ctx_new` returned, each a
    // live Box<Context> until the host resets the heap below it.
    unsafe { ptr.as_mut() }
}

/// `value_addr builtins()`: `{}`, no host built-in is needed.
#[unsafe(no_mangle)]
pub extern "C" fn builtins() -> i32 {
    new_value(crate::builtins())
}

/// `value_addr entrypoints()`: `{"apart/violation": 0}`.
#[unsafe(no_mangle)]
pub extern "C" fn entrypoints() -> i32 {
    new_value(crate::entrypoints())
}

/// `ctx_addr opa_eval_ctx_new()`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_new() -> i32 {
    addr(Box::into_raw(Box::new(Context::default())))
}

/// `opa_eval_ctx_set_input(ctx, value)`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_input(ctx: i32, input: i32) {
    if let Some(c) = context(ctx) {
        c.input = input;
    }
}

/// `opa_eval_ctx_set_data(ctx, value)`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_data(ctx: i32, data: i32) {
    if let Some(c) = context(ctx) {
        c.data = data;
    }
}

/// `opa_eval_ctx_set_entrypoint(ctx, id)`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_entrypoint(ctx: i32, entrypoint: i32) {
    if let Some(c) = context(ctx) {
        c.entrypoint = entrypoint;
    }
}

/// `value_addr opa_eval_ctx_get_result(ctx)`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_get_result(ctx: i32) -> i32 {
    context(ctx).map_or(0, |c| c.result)
}

/// `int32 eval(ctx)`: evaluates the context's entrypoint on its input; 0. An unknown
/// entrypoint aborts, as the ABI says.
#[unsafe(no_mangle)]
pub extern "C" fn eval(ctx: i32) -> i32 {
    abort_on_panic();
    let Some(c) = context(ctx) else {
        abort("apart: eval: no evaluation context");
        return 1;
    };
    let input = value(c.input).map(|v| &*v);
    match crate::evaluate(c.entrypoint, input) {
        Some(result) => c.result = new_value(result),
        None => abort(&format!("apart: unknown entrypoint {}", c.entrypoint)),
    }
    0
}

/// `str_addr opa_eval(0, entrypoint, data, input_addr, input_len, heap_ptr, format)` (ABI
/// 1.2): the one-call evaluation. Allocation starts at `heap_ptr`, above the input the host
/// wrote. The result is JSON in both formats: it holds no Rego set.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval(
    _reserved: i32,
    entrypoint: i32,
    _data: i32,
    input: i32,
    input_len: i32,
    heap_ptr: i32,
    _format: i32,
) -> i32 {
    abort_on_panic();
    if heap_ptr != 0 {
        HEAP.store(heap_ptr as usize, Ordering::Relaxed);
    }
    let text = bytes(input, input_len);
    let result = if text.is_empty() {
        crate::evaluate(entrypoint, None)
    } else {
        match serde_json::from_slice::<Value>(text) {
            Ok(v) => crate::evaluate(entrypoint, Some(&v)),
            // Unreadable input is a violation, never an admission.
            Err(e) => (entrypoint == 0).then(|| {
                serde_json::json!([{"result": [{"msg": format!("apart: the input is not JSON: {e}")}]}])
            }),
        }
    };
    match result {
        Some(r) => new_string(serde_json::to_vec(&r).unwrap_or_default()),
        None => {
            abort(&format!("apart: unknown entrypoint {entrypoint}"));
            0
        }
    }
}

/// `addr opa_malloc(size)`; 0 when memory cannot grow.
#[unsafe(no_mangle)]
pub extern "C" fn opa_malloc(size: i32) -> i32 {
    let Ok(layout) = Layout::from_size_align(usize::try_from(size).unwrap_or(0).max(1), 8) else {
        return 0;
    };
    // SAFETY: a non-zero-sized, valid layout.
    addr(unsafe { ALLOCATOR.alloc(layout) })
}

/// `opa_free(addr)`: nothing; the heap is released by `opa_heap_ptr_set`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_free(_addr: i32) {}

/// `value_addr opa_json_parse(str_addr, size)`; 0 when the text is not JSON.
#[unsafe(no_mangle)]
pub extern "C" fn opa_json_parse(text: i32, len: i32) -> i32 {
    serde_json::from_slice::<Value>(bytes(text, len)).map_or(0, new_value)
}

/// `value_addr opa_value_parse(str_addr, size)`: as `opa_json_parse` (set literals are not
/// read: the module's values hold no sets).
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_parse(text: i32, len: i32) -> i32 {
    opa_json_parse(text, len)
}

/// `str_addr opa_json_dump(value_addr)`: NUL-terminated JSON.
#[unsafe(no_mangle)]
pub extern "C" fn opa_json_dump(value_addr: i32) -> i32 {
    let json = value(value_addr).map_or_else(
        || b"null".to_vec(),
        |v| serde_json::to_vec(v).unwrap_or_default(),
    );
    new_string(json)
}

/// `str_addr opa_value_dump(value_addr)`: as `opa_json_dump` (no sets, only string keys).
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_dump(value_addr: i32) -> i32 {
    opa_json_dump(value_addr)
}

/// `opa_value_free(value_addr)` (ABI 1.3): nothing; the heap is released by
/// `opa_heap_ptr_set`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_free(_value_addr: i32) {}

/// `addr opa_heap_ptr_get()`: the allocator's next free address.
#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_ptr_get() -> i32 {
    heap_ptr() as i32
}

/// `opa_heap_ptr_set(addr)`: releases everything allocated at or above `addr`.
#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_ptr_set(ptr: i32) {
    HEAP.store(ptr as usize, Ordering::Relaxed);
}

/// `opa_heap_blocks_stash()` (ABI 1.3): nothing to stash, a bump allocator keeps no free
/// blocks that an evaluation could reuse below the saved heap pointer.
#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_blocks_stash() {}

/// `opa_heap_blocks_restore()` (ABI 1.3): nothing was stashed.
#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_blocks_restore() {}

/// `opa_heap_stash_clear()` (ABI 1.3): nothing was stashed.
#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_stash_clear() {}

/// `int32 opa_value_add_path(base, path, value)`: an OPA error code; on error `base` is
/// unchanged.
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_add_path(base: i32, path: i32, value_addr: i32) -> i32 {
    let (Some(path), Some(new)) = (value(path).map(|p| p.clone()), value(value_addr)) else {
        return crate::ErrorCode::InvalidType as i32;
    };
    let new = new.clone();
    match value(base) {
        Some(base) => crate::add_path(base, &path, new) as i32,
        None => crate::ErrorCode::InvalidType as i32,
    }
}

/// `int32 opa_value_remove_path(base, path)`: an OPA error code.
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_remove_path(base: i32, path: i32) -> i32 {
    let Some(path) = value(path).map(|p| p.clone()) else {
        return crate::ErrorCode::InvalidType as i32;
    };
    match value(base) {
        Some(base) => crate::remove_path(base, &path) as i32,
        None => crate::ErrorCode::InvalidType as i32,
    }
}
