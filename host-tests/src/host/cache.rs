//! Compiled modules kept on disk, so that a module is compiled by cranelift once per machine
//! rather than on every run (1.5-2 s for apart's module; loading the compiled form takes a few
//! milliseconds).
//!
//! A compiled module is found by the SHA-256 of the module's bytes and wasmtime's
//! compatibility hash of the engine's configuration (its version, target and settings), so
//! another module, another apart or another configuration never picks it up. Files live in
//! `$APART_CACHE_DIR`, else `$XDG_CACHE_HOME/apart`, else `~/.cache/apart`; `APART_CACHE=off`
//! turns the cache off. Each file carries the SHA-256 of its contents, checked before use, so
//! a truncated or damaged file is compiled again, never run; files are written to a temporary
//! name and renamed, so concurrent runs see whole files only.
//!
//! Trust: loading a compiled module runs its machine code, so the cache must be as private as
//! the user's home (it is created `0700`); whoever can write there can already run code as the
//! user. This is the same model as wasmtime's own cache.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Where compiled modules are kept, when caching is on.
pub fn dir() -> Option<PathBuf> {
    if std::env::var_os("APART_CACHE").is_some_and(|v| v == "off" || v == "0") {
        return None;
    }
    if let Some(dir) = std::env::var_os("APART_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("apart"))
}

fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut config = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut config);
    let module = Sha256::digest(wasm);
    let hex: String = module.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{:016x}", config.finish())
}

/// The module compiled for `engine`: from the cache when it holds it, else compiled (and
/// then kept, when the cache can be written; a cache that cannot be written only costs time).
pub fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Module> {
    let Some(dir) = dir() else {
        return Module::new(engine, wasm);
    };
    let path = dir.join(format!("{}.cwasm", key(engine, wasm)));
    if let Some(module) = load(engine, &path) {
        return Ok(module);
    }
    let module = Module::new(engine, wasm)?;
    if let Ok(compiled) = module.serialize() {
        store(&dir, &path, &compiled);
    }
    Ok(module)
}

fn load(engine: &Engine, path: &Path) -> Option<Module> {
    let file = std::fs::read(path).ok()?;
    let body_len = file.len().checked_sub(32)?;
    let (body, digest) = file.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    deserialize(engine, body)
}

/// Turns bytes this program serialized (and whose digest was just checked) back into a module.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> Option<Module> {
    // SAFETY: wasmtime requires the bytes to come from `Module::serialize` of a compatible
    // engine. They do: the file is named by this engine's compatibility hash, was written by
    // `store` below from `Module::serialize`, and its SHA-256 was checked. wasmtime checks the
    // engine compatibility again and refuses a mismatch with an error, not a crash.
    unsafe { Module::deserialize(engine, bytes) }.ok()
}

fn store(dir: &Path, path: &Path, compiled: &[u8]) {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if builder.create(dir).is_err() {
        return;
    }
    let mut file = compiled.to_vec();
    file.extend_from_slice(&Sha256::digest(compiled));
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("module"),
        std::process::id()
    ));
    if std::fs::write(&temporary, &file).is_ok() && std::fs::rename(&temporary, path).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiled_module_is_found_again_and_a_damaged_one_is_not_used() {
        let engine = Engine::default();
        // An empty module, and one with a custom section: different bytes, different keys.
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        let other = [&wasm[..], b"\x00\x04\x03abc"].concat();
        let dir = std::env::temp_dir().join(format!("apart-cache-test-{}", std::process::id()));
        let path = dir.join(format!("{}.cwasm", key(&engine, &wasm)));
        let module = Module::new(&engine, &wasm).expect("compiles");
        store(&dir, &path, &module.serialize().expect("serializes"));
        assert!(load(&engine, &path).is_some(), "the stored module loads");
        let mut damaged = std::fs::read(&path).expect("stored");
        let middle = damaged.len() / 2;
        if let Some(b) = damaged.get_mut(middle) {
            *b ^= 0xff;
        }
        std::fs::write(&path, &damaged).expect("rewrites");
        assert!(load(&engine, &path).is_none(), "a damaged file is not run");
        assert_ne!(key(&engine, &wasm), key(&engine, &other));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
