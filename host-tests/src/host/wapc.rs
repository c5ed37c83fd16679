//! A waPC host on wasmtime that calls a Kubewarden policy module the way policy-server does.
//!
//! The module is compiled once per machine ([`PolicyModule::new`], through the compiled-module
//! cache) and pre-instantiated; every [`PolicyModule::call`] gets a fresh instance
//! (policy-server's model: no state leaks between evaluations), runs the guest's
//! initialisation (`_initialize`/`_start`, then `wapc_init`), and is interrupted when it runs
//! past its deadline (epoch interruption, 2 s by default as in policy-server). A
//! [`Session`] keeps one instance warm for many calls, as the CLI does over a manifest set. A
//! deadline or memory limit hit is reported as such ([`CallError::Deadline`],
//! [`CallError::MemoryLimit`]: which operation, on how much input, and what to do), not as a
//! crash; only a real trap is [`CallError::Trap`].
//!
//! The waPC protocol: the host calls `__guest_call(op_len, payload_len)`; the guest asks for
//! the operation name and payload with `__guest_request`, and answers with
//! `__guest_response` (return 1) or `__guest_error` (return 0). WASI preview 1 imports are
//! provided minimally: no files, no environment, stderr/stdout captured as logs.
//!
//! Host capabilities (`__host_call`: Kubernetes lookups, OCI, crypto) are answered from
//! recorded interactions when the module is given a [`Replay`]
//! ([`PolicyModule::with_replay`]), as `kwctl run --replay-host-capabilities-interactions`
//! does; any other call gets a waPC host error, as from a policy-server that does not grant
//! the capability. The answer is held for the guest's `__host_response` (or
//! `__host_error`) of that call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::host::replay::{HostCall, Replay};

use wasmtime::{
    Caller, Config, Engine, Extern, FuncType, InstancePre, Linker, Memory, Module, Store,
    TypedFunc, Val, ValType,
};

/// How often the epoch advances.
const TICK: Duration = Duration::from_millis(10);
/// policy-server's default evaluation deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// Memory a guest may grow to by default.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// Why a call did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest answered with `__guest_error`.
    #[error("the module returned an error for {operation}: {message}")]
    Guest {
        /// The waPC operation.
        operation: String,
        /// The guest's message.
        message: String,
    },
    /// The guest ran past its deadline and was interrupted: not a crash, the work was too
    /// big for the time policy-server gives it.
    #[error("{}", deadline_message(operation, *deadline, *payload_bytes))]
    Deadline {
        /// The waPC operation.
        operation: String,
        /// The deadline it ran past.
        deadline: Duration,
        /// The size of the payload it was given.
        payload_bytes: usize,
    },
    /// The guest asked for more memory than it may have and stopped.
    #[error("{}", memory_message(operation, *limit, *payload_bytes))]
    MemoryLimit {
        /// The waPC operation.
        operation: String,
        /// The memory limit, in bytes.
        limit: usize,
        /// The size of the payload it was given.
        payload_bytes: usize,
    },
    /// The guest trapped: a bug in the module (it is built never to trap on any input).
    #[error(
        "the module trapped in {operation} (a bug in the module: please report it with the input): {message}"
    )]
    Trap {
        /// The waPC operation.
        operation: String,
        /// What wasmtime reported.
        message: String,
    },
    /// The module could not be instantiated.
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
}

/// What work an operation does, for the messages below.
fn work(operation: &str) -> &'static str {
    match operation {
        "validate_settings" => "compiling the settings",
        "validate" => {
            "evaluating the request (the settings are compiled again on every evaluation)"
        }
        _ => "the call",
    }
}

/// `1.5 MB` / `800 KB` / `12 bytes`.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} bytes"),
    }
}

fn deadline_message(operation: &str, deadline: Duration, payload_bytes: usize) -> String {
    format!(
        "the module hit its {:.1} s deadline in {operation} and was interrupted: {} ({} of input) took longer than that (policy-server interrupts it the same way, 2 s by default). Give it less to do at once: split the policies over several policies (ClusterAdmissionPolicies) or keep the object smaller; or raise the deadline (apart's --timeout; the policy's spec.timeoutEvalSeconds, up to 30; policy-server's --policy-timeout)",
        deadline.as_secs_f64(),
        work(operation),
        size(payload_bytes),
    )
}

fn memory_message(operation: &str, limit: usize, payload_bytes: usize) -> String {
    format!(
        "the module hit its {} memory limit in {operation} and stopped: {} ({} of input) needs more memory than that. Give it less to do at once: split the policies over several policies (ClusterAdmissionPolicies) or keep the object smaller; or raise the limit (apart's --memory)",
        size(limit),
        work(operation),
        size(payload_bytes),
    )
}

/// A store's memory limit that remembers a refused growth, so that the trap that follows (the
/// guest cannot allocate and aborts) is reported as the limit, not as a crash.
struct MemoryLimiter {
    limit: usize,
    refused: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit && maximum.is_none_or(|m| desired <= m);
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }
}

/// Per-call host state.
struct HostState {
    operation: Vec<u8>,
    payload: Vec<u8>,
    response: Option<Vec<u8>>,
    error: Option<Vec<u8>>,
    host_error: Vec<u8>,
    host_response: Vec<u8>,
    replay: Option<Arc<Replay>>,
    host_calls: Vec<HostCall>,
    logs: Vec<String>,
    limits: MemoryLimiter,
    random: u64,
}

/// A compiled policy module, ready for calls.
pub struct PolicyModule {
    engine: Engine,
    pre: InstancePre<HostState>,
    deadline: Duration,
    deadline_ticks: u64,
    memory_limit: usize,
    stop_ticker: Arc<AtomicBool>,
    replay: Option<Arc<Replay>>,
}

impl Drop for PolicyModule {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn memory(caller: &mut Caller<'_, HostState>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

fn read_guest(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let memory =
        memory(caller).ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))?;
    let mut buf = vec![0; usize::try_from(len)?];
    memory.read(&caller, usize::try_from(ptr)?, &mut buf)?;
    Ok(buf)
}

fn write_guest(caller: &mut Caller<'_, HostState>, ptr: i32, data: &[u8]) -> wasmtime::Result<()> {
    let memory =
        memory(caller).ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))?;
    memory.write(caller, usize::try_from(ptr)?, data)?;
    Ok(())
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// WASI errno values used here.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_NOSYS: i32 = 52;

fn link_wapc(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wapc",
        "__guest_request",
        |mut c: Caller<'_, HostState>, op_ptr: i32, ptr: i32| {
            let op = c.data().operation.clone();
            let payload = c.data().payload.clone();
            write_guest(&mut c, op_ptr, &op)?;
            write_guest(&mut c, ptr, &payload)
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__guest_response",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| {
            let data = read_guest(&mut c, ptr, len)?;
            c.data_mut().response = Some(data);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__guest_error",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| {
            let data = read_guest(&mut c, ptr, len)?;
            c.data_mut().error = Some(data);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__console_log",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| {
            let data = read_guest(&mut c, ptr, len)?;
            c.data_mut()
                .logs
                .push(String::from_utf8_lossy(&data).into_owned());
            Ok(())
        },
    )?;
    // Host capabilities: answered from the replay when one is given, refused otherwise
    // (a waPC host error, as from a policy-server without that capability).
    linker.func_wrap(
        "wapc",
        "__host_call",
        |mut c: Caller<'_, HostState>,
         bd: i32,
         bdl: i32,
         ns: i32,
         nsl: i32,
         op: i32,
         opl: i32,
         p: i32,
         l: i32| {
            let binding = String::from_utf8_lossy(&read_guest(&mut c, bd, bdl)?).into_owned();
            let ns = String::from_utf8_lossy(&read_guest(&mut c, ns, nsl)?).into_owned();
            let op = String::from_utf8_lossy(&read_guest(&mut c, op, opl)?).into_owned();
            let payload = read_guest(&mut c, p, l)?;
            let state = c.data_mut();
            let answer = match &state.replay {
                Some(replay) => replay.answer(&binding, &ns, &op, &payload),
                None => Err(format!(
                    "host capability {ns}/{op} is not available in apart's host (give recorded interactions with --replay-host-capabilities-interactions)"
                )),
            };
            state
                .host_calls
                .push(HostCall::new(&ns, &op, &payload, answer.is_ok()));
            // Each call's answer replaces the previous one: the guest reads it right away.
            Ok(match answer {
                Ok(response) => {
                    state.host_response = response;
                    state.host_error.clear();
                    1i32
                }
                Err(message) => {
                    state.host_response.clear();
                    state.host_error = message.into_bytes();
                    0i32
                }
            })
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__host_response",
        |mut c: Caller<'_, HostState>, ptr: i32| {
            let data = std::mem::take(&mut c.data_mut().host_response);
            let written = write_guest(&mut c, ptr, &data);
            c.data_mut().host_response = data;
            written
        },
    )?;
    linker.func_wrap("wapc", "__host_response_len", |c: Caller<'_, HostState>| {
        len_i32(c.data().host_response.len())
    })?;
    linker.func_wrap("wapc", "__host_error_len", |c: Caller<'_, HostState>| {
        len_i32(c.data().host_error.len())
    })?;
    linker.func_wrap(
        "wapc",
        "__host_error",
        |mut c: Caller<'_, HostState>, ptr: i32| {
            let data = c.data().host_error.clone();
            write_guest(&mut c, ptr, &data)
        },
    )?;
    Ok(())
}

/// The WASI functions given a real implementation.
const WASI_PROVIDED: &[&str] = &[
    "fd_write",
    "environ_sizes_get",
    "args_sizes_get",
    "environ_get",
    "args_get",
    "random_get",
    "proc_exit",
];

fn link_wasi(linker: &mut Linker<HostState>, module: &Module) -> wasmtime::Result<()> {
    const WASI: &str = "wasi_snapshot_preview1";
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nwritten: i32|
         -> wasmtime::Result<i32> {
            if fd != 1 && fd != 2 {
                return Ok(ERRNO_BADF);
            }
            let mut written = Vec::new();
            for i in 0..iovs_len {
                let iov = read_guest(&mut c, iovs + i * 8, 8)?;
                let field = |at: usize| -> i32 {
                    let bytes: [u8; 4] = iov
                        .get(at..at + 4)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 4]);
                    i32::from_le_bytes(bytes)
                };
                written.extend(read_guest(&mut c, field(0), field(4))?);
            }
            let count = len_i32(written.len());
            c.data_mut()
                .logs
                .push(String::from_utf8_lossy(&written).into_owned());
            write_guest(&mut c, nwritten, &count.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(
            WASI,
            name,
            |mut c: Caller<'_, HostState>, count: i32, size: i32| {
                write_guest(&mut c, count, &0i32.to_le_bytes())?;
                write_guest(&mut c, size, &0i32.to_le_bytes())?;
                Ok(ERRNO_SUCCESS)
            },
        )?;
    }
    linker.func_wrap(
        WASI,
        "environ_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| ERRNO_SUCCESS,
    )?;
    linker.func_wrap(
        WASI,
        "args_get",
        |_: Caller<'_, HostState>, _: i32, _: i32| ERRNO_SUCCESS,
    )?;
    linker.func_wrap(
        WASI,
        "random_get",
        |mut c: Caller<'_, HostState>, buf: i32, len: i32| {
            // Only hash-map seeds come from here; a deterministic stream keeps runs reproducible.
            let mut out = Vec::with_capacity(usize::try_from(len)?);
            while out.len() < usize::try_from(len)? {
                let state = &mut c.data_mut().random;
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                out.extend_from_slice(&state.to_le_bytes());
            }
            out.truncate(usize::try_from(len)?);
            write_guest(&mut c, buf, &out)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "the module exited with code {code}"
            )))
        },
    )?;
    // Anything else WASI (files, clocks, sockets) answers ENOSYS.
    for import in module.imports() {
        if import.module() != WASI || WASI_PROVIDED.contains(&import.name()) {
            continue;
        }
        if let wasmtime::ExternType::Func(ty) = import.ty() {
            let ty: FuncType = ty.clone();
            let returns_errno =
                ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
            linker.func_new(WASI, import.name(), ty, move |_, _, results| {
                if returns_errno && let Some(r) = results.first_mut() {
                    *r = Val::I32(ERRNO_NOSYS);
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

impl PolicyModule {
    /// Compiles a module (once per process) and links the host functions.
    pub fn new(wasm: &[u8]) -> anyhow::Result<Self> {
        Self::with_deadline(wasm, DEFAULT_DEADLINE)
    }

    /// As [`PolicyModule::new`], with another evaluation deadline.
    pub fn with_deadline(wasm: &[u8], deadline: Duration) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // APART_PERFMAP=1 writes /tmp/perf-PID.map, so that `perf record` names the guest's
        // functions (with a module built unstripped; see docs/performance.md).
        if std::env::var_os("APART_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let module = crate::host::cache::compile(&engine, wasm)
            .map_err(|e| anyhow::anyhow!("cannot compile the module: {e}"))?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        link_wapc(&mut linker).map_err(anyhow::Error::from)?;
        link_wasi(&mut linker, &module).map_err(anyhow::Error::from)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| anyhow::anyhow!("the module's imports cannot be satisfied: {e}"))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let stop = Arc::clone(&stop_ticker);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(TICK);
                ticker_engine.increment_epoch();
            }
        });
        let deadline_ticks = u64::try_from(deadline.as_millis() / TICK.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Ok(Self {
            engine,
            pre,
            deadline,
            deadline_ticks,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            stop_ticker,
            replay: None,
        })
    }

    /// Answers the guest's host-capability calls from recorded interactions (every call of
    /// every evaluation sees the whole set). Without it, every host call is refused.
    #[must_use]
    pub fn with_replay(mut self, replay: Replay) -> Self {
        self.replay = Some(Arc::new(replay));
        self
    }

    /// Limits each evaluation's memory to `bytes` (2 GiB by default); a guest that needs more
    /// stops with [`CallError::MemoryLimit`].
    #[must_use]
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Calls a waPC operation on a fresh instance.
    pub fn call(&self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_traced(operation, payload)
            .map(|(response, _)| response)
    }

    /// As [`PolicyModule::call`], also returning the host calls the guest made, in order.
    pub fn call_traced(
        &self,
        operation: &str,
        payload: &[u8],
    ) -> Result<(Vec<u8>, Vec<HostCall>), CallError> {
        let mut live = self.instantiate(operation)?;
        live.invoke(self, operation, payload)
    }

    /// A warm instance for many calls from one thread: what the CLI uses for every object of
    /// a run (policy-server's fresh instance per evaluation is [`PolicyModule::call`]). The
    /// guest keeps nothing between calls but its compiled settings, so answers are the same.
    pub fn session(&self) -> Session<'_> {
        Session {
            module: self,
            live: None,
        }
    }

    fn state(&self) -> HostState {
        HostState {
            operation: Vec::new(),
            payload: Vec::new(),
            response: None,
            error: None,
            host_error: Vec::new(),
            host_response: Vec::new(),
            replay: self.replay.clone(),
            host_calls: Vec::new(),
            logs: Vec::new(),
            limits: MemoryLimiter {
                limit: self.memory_limit,
                refused: false,
            },
            random: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// A new instance, initialised as policy-server initialises one.
    fn instantiate(&self, operation: &str) -> Result<Live, CallError> {
        let mut store = Store::new(&self.engine, self.state());
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
        for init in ["_initialize", "_start", "wapc_init"] {
            if let Ok(f) = instance.get_typed_func::<(), ()>(&mut store, init) {
                f.call(&mut store, ())
                    .map_err(|e| trap(self, operation, 0, e, &store))?;
            }
        }
        let guest_call = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "__guest_call")
            .map_err(|e| CallError::Instantiate(format!("not a waPC module: {e}")))?;
        Ok(Live { store, guest_call })
    }
}

/// An instance and its waPC entry point.
struct Live {
    store: Store<HostState>,
    guest_call: TypedFunc<(i32, i32), i32>,
}

impl Live {
    fn invoke(
        &mut self,
        module: &PolicyModule,
        operation: &str,
        payload: &[u8],
    ) -> Result<(Vec<u8>, Vec<HostCall>), CallError> {
        let state = self.store.data_mut();
        state.operation = operation.as_bytes().to_vec();
        state.payload = payload.to_vec();
        state.response = None;
        state.error = None;
        state.host_calls.clear();
        state.logs.clear();
        state.limits.refused = false;
        self.store.set_epoch_deadline(module.deadline_ticks);
        let ok = self
            .guest_call
            .call(
                &mut self.store,
                (len_i32(operation.len()), len_i32(payload.len())),
            )
            .map_err(|e| trap(module, operation, payload.len(), e, &self.store))?;
        let state = self.store.data_mut();
        let host_calls = std::mem::take(&mut state.host_calls);
        match (ok, state.response.take(), state.error.take()) {
            (1, Some(response), _) => Ok((response, host_calls)),
            (_, _, Some(error)) => Err(CallError::Guest {
                operation: operation.to_owned(),
                message: String::from_utf8_lossy(&error).into_owned(),
            }),
            _ => Err(CallError::Guest {
                operation: operation.to_owned(),
                message: "the module returned neither a response nor an error".to_owned(),
            }),
        }
    }
}

/// A trap as a [`CallError`]: the deadline or the memory limit when that is what stopped the
/// guest (a guest refused memory cannot allocate and aborts), else a crash, with what the
/// guest printed.
fn trap(
    module: &PolicyModule,
    operation: &str,
    payload_bytes: usize,
    e: wasmtime::Error,
    store: &Store<HostState>,
) -> CallError {
    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return CallError::Deadline {
            operation: operation.to_owned(),
            deadline: module.deadline,
            payload_bytes,
        };
    }
    if store.data().limits.refused {
        return CallError::MemoryLimit {
            operation: operation.to_owned(),
            limit: module.memory_limit,
            payload_bytes,
        };
    }
    let logs = store.data().logs.join("");
    CallError::Trap {
        operation: operation.to_owned(),
        message: if logs.is_empty() {
            format!("{e:#}")
        } else {
            format!("{e:#}; module output: {}", logs.trim())
        },
    }
}

/// Calls on one warm instance ([`PolicyModule::session`]). An instance that trapped is
/// dropped; the next call gets a fresh one.
pub struct Session<'m> {
    module: &'m PolicyModule,
    live: Option<Live>,
}

impl Session<'_> {
    /// Calls a waPC operation on this session's instance.
    pub fn call(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.module.instantiate(operation)?,
        };
        let answer = live.invoke(self.module, operation, payload);
        if answer.is_ok() {
            self.live = Some(live);
        }
        answer.map(|(response, _)| response)
    }
}
