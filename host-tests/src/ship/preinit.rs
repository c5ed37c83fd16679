//! Pre-initialising a baked waPC module: its baked policies compiled once, at build time.
//!
//! policy-server makes a new instance of a module for every request, and a new instance starts
//! from the module's initial memory. A baked module deployed with `settings: {}` would compile
//! its baked policies in each of them. `apart build` instead runs the guest's
//! [`INIT_EXPORT`] once, in wasmtime, and writes the memory and globals that result as the
//! module's initial state (Wizer's snapshot, `wasmtime-wizer`): every instance then starts with
//! the policies compiled. The snapshot is taken through Wizer's [`InstanceState`] over a plain,
//! synchronous wasmtime store, so the CLI needs neither wasmtime's async support nor a runtime.
//! Which modules are pre-initialised, and what that means for baking them again, is
//! [`super::kubewarden`]'s.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::{Config, Engine, Extern, Instance, Linker, Module, Store, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

/// The guest's pre-initialisation export (`wasm/src/lib.rs`); Wizer removes it.
pub const INIT_EXPORT: &str = "apart.preinitialize";

/// Why a module could not be pre-initialised.
#[derive(Debug, thiserror::Error)]
pub enum PreinitError {
    /// The module is not one the snapshot can be taken of (Wizer's checks, or not wasm).
    #[error("the module cannot be pre-initialised: {0}")]
    Unsupported(String),
    /// The guest trapped or failed while compiling its baked policies.
    #[error("the module's pre-initialisation ({INIT_EXPORT}) failed: {0}")]
    Failed(String),
}

/// Whether `module` exports [`INIT_EXPORT`], i.e. can be pre-initialised (modules built before
/// the export existed cannot, and are shipped as they are).
pub fn can_preinitialize(module: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(module)
        .filter_map(Result::ok)
        .any(|payload| match payload {
            wasmparser::Payload::ExportSection(exports) => exports
                .into_iter()
                .filter_map(Result::ok)
                .any(|export| export.name == INIT_EXPORT),
            _ => false,
        })
}

/// `module` with [`INIT_EXPORT`] run and its resulting state as the initial state.
pub fn preinitialize(module: &[u8]) -> Result<Vec<u8>, PreinitError> {
    let unsupported = |e: wasmtime::Error| PreinitError::Unsupported(format!("{e:#}"));
    let failed = |e: wasmtime::Error| PreinitError::Failed(format!("{e:#}"));
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_EXPORT);
    let (context, instrumented) = wizer.instrument(module).map_err(unsupported)?;

    // The snapshot is of this one instance: nothing needs the engine's caches or its
    // parallel compilation beyond the default.
    let engine = Engine::new(&Config::new()).map_err(unsupported)?;
    let compiled = Module::new(&engine, &instrumented).map_err(unsupported)?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    // The export calls no import; one that did would trap here rather than be snapshotted.
    linker
        .define_unknown_imports_as_traps(&compiled)
        .map_err(unsupported)?;
    let instance = linker.instantiate(&mut store, &compiled).map_err(failed)?;
    instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
        .and_then(|init| init.call(&mut store, ()))
        .map_err(failed)?;

    let mut state = Snapshotted {
        store: &mut store,
        instance,
        missing: None,
    };
    let snapshot = poll_once(wizer.snapshot(&context, &mut state)).ok_or_else(|| {
        PreinitError::Unsupported("Wizer's snapshot waited on a ready instance".to_owned())
    })?;
    if let Some(name) = state.missing {
        return Err(PreinitError::Unsupported(format!(
            "the instrumented module has no export {name:?}"
        )));
    }
    snapshot.map_err(unsupported)
}

/// Polls a future once. Every future here is ready at once: [`Snapshotted`] reads a
/// synchronous store, and Wizer's snapshot only awaits it.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// The initialised instance, as Wizer reads it.
struct Snapshotted<'a> {
    store: &'a mut Store<()>,
    instance: Instance,
    /// An export Wizer asked for and the instance lacks (Wizer's instrumentation adds them
    /// all, so this is only a guard): the snapshot is refused rather than taken with a zero.
    missing: Option<String>,
}

impl InstanceState for Snapshotted<'_> {
    fn global_get(&mut self, name: &str, _: ValType) -> impl Future<Output = SnapshotVal> + Send {
        let value = match self
            .instance
            .get_export(&mut *self.store, name)
            .and_then(Extern::into_global)
            .map(|global| global.get(&mut *self.store))
        {
            Some(Val::I32(v)) => Some(SnapshotVal::I32(v)),
            Some(Val::I64(v)) => Some(SnapshotVal::I64(v)),
            Some(Val::F32(v)) => Some(SnapshotVal::F32(v)),
            Some(Val::F64(v)) => Some(SnapshotVal::F64(v)),
            Some(Val::V128(v)) => Some(SnapshotVal::V128(v.as_u128())),
            _ => None,
        };
        if value.is_none() {
            self.missing.get_or_insert_with(|| name.to_owned());
        }
        std::future::ready(value.unwrap_or(SnapshotVal::I32(0)))
    }

    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.missing.get_or_insert_with(|| name.to_owned());
                contents(&[]);
            }
        }
        std::future::ready(())
    }
}
