//! What every test binary of the host shares: where the workspace, the built module and the
//! built CLI are, the case folders, golden files (`APART_BLESS=1` rewrites them from the
//! code's output, for review; otherwise they are compared byte for byte), and running the
//! CLI cargo built for the tests.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

pub mod opa_engine;
pub mod opa_host;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use apart_host::host::wapc::PolicyModule;
use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The behaviour corpus, `tests/cases`.
pub fn corpus() -> PathBuf {
    root().join("tests/cases")
}

/// True when golden files are to be rewritten.
pub fn bless() -> bool {
    std::env::var_os("APART_BLESS").is_some()
}

/// The Kubewarden module `cargo xtask build` built (`APART_WASM_MODULE` names it in CI).
pub fn built_module_path() -> PathBuf {
    std::env::var_os("APART_WASM_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(apart_host::host::module::BUILT_MODULE))
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

/// The built module, compiled once per test binary.
pub fn compiled_module() -> &'static PolicyModule {
    static MODULE: OnceLock<PolicyModule> = OnceLock::new();
    MODULE.get_or_init(|| PolicyModule::new(&built_module()).expect("the module compiles"))
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

/// A `case_dirs` filter: the folders whose names start with `prefix`.
pub fn named(prefix: &str) -> impl Fn(&Path) -> bool + '_ {
    move |p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
    }
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

/// `check_golden` for a JSON value, written as pretty JSON with a final newline.
pub fn check_json_golden(path: &Path, actual: &Value, failures: &mut Vec<String>) {
    let mut text = serde_json::to_string_pretty(actual).expect("json");
    text.push('\n');
    check_golden(path, &text, failures);
}

/// Fails the test with every recorded problem, if there are any.
#[track_caller]
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} problem(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A JSON file's value; panics naming the file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the `apart` cargo built for these tests from the workspace root, with `stdin` on its
/// standard input (none: an empty one); stdout and stderr are captured.
pub fn run_cli<S: AsRef<OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Output {
    run_program(Path::new(env!("CARGO_BIN_EXE_apart")), args, stdin)
}

/// Runs `program` from the workspace root, with `stdin` on its standard input (none: an empty
/// one); stdout and stderr are captured.
pub fn run_program<S: AsRef<OsStr>>(program: &Path, args: &[S], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(program)
        .current_dir(root())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // A refused (closed) pipe is fine: the exit code says what happened.
        let _ = pipe.write_all(input);
    }
    child.wait_with_output().expect("apart finishes")
}
