//! What every test binary of the host shares: where the workspace, the built module and the
//! built CLI are, the case folders, and golden files (`APART_BLESS=1` rewrites them from the
//! code's output, for review; otherwise they are compared byte for byte).
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// True when golden files are to be rewritten.
pub fn bless() -> bool {
    std::env::var_os("APART_BLESS").is_some()
}

/// The Kubewarden module `cargo xtask build` built (`APART_WASM_MODULE` names it in CI).
pub fn built_module_path() -> PathBuf {
    std::env::var_os("APART_WASM_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/wasm32-wasip1/wasm/apart_wasm.wasm"))
}

/// The built module's bytes.
pub fn built_module() -> Vec<u8> {
    let path = built_module_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the built module {} is needed (run `cargo xtask build`): {e}",
            path.display()
        )
    })
}

/// The CLI `cargo xtask build` built, with the module embedded.
pub fn apart() -> PathBuf {
    let path = root().join("target/release/apart");
    assert!(
        path.is_file(),
        "{} is needed (run `cargo xtask build`)",
        path.display()
    );
    path
}

/// The folders under `tests/<corpus>` that `wanted` accepts, sorted.
pub fn case_dirs(corpus: &str, wanted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let dir = root().join("tests").join(corpus);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && wanted(p))
        .collect();
    dirs.sort();
    dirs
}

/// The YAML/JSON files of a case folder whose names start with `prefix`, sorted.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("case folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(prefix)
                && [".yaml", ".yml", ".json"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
        })
        .collect();
    out.sort();
    out
}

/// Compares `actual` with the golden file at `path` (or rewrites it when blessing); a
/// difference or a missing file is recorded in `failures`.
pub fn check_golden(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if bless() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("golden folder");
        }
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs from the output:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => failures.push(format!(
            "{} is missing (run with APART_BLESS=1, then review it)",
            path.display()
        )),
    }
}
