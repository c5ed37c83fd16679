//! The JS build (`wasm/js`, issue 9) and the playground: building them, the tools they need,
//! and their tests (the corpus under Node, the TypeScript consumer, the packed package, the
//! playground in Chromium).
//!
//! `target/js/` is the npm package: `web/` (wasm-bindgen `--target web`, an ES module with
//! `init`), `node/` (`--target nodejs`), their shared `.wasm` optimised by `wasm-opt`, and the
//! `package.json` and README from `wasm/js/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cargo, root, run};

const JS_GUEST: &str = "apart-js";
const JS_TARGET: &str = "wasm32-unknown-unknown";
const JS_PROFILE: &str = "wasm-js";
/// TypeScript for checking the generated declarations on a consumer (`tsc --noEmit`).
const TYPESCRIPT: &str = "typescript@5.9.3";

/// The npm package's folder.
pub fn package_dir() -> PathBuf {
    root().join("target").join("js")
}

/// The `wasm-bindgen` crate's version in `Cargo.lock`: the CLI must be exactly it.
fn bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == r#"name = "wasm-bindgen""#
            && let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    Err("Cargo.lock: no wasm-bindgen package".to_owned())
}

/// Installs the `wasm-bindgen` CLI of the crate's version (not `--locked`: its own lock
/// file pins crates that no longer build on this toolchain), and TypeScript.
pub fn setup() -> Result {
    let version = bindgen_version()?;
    let installed = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if installed.split_whitespace().nth(1) != Some(version.as_str()) {
        run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    }
    let tools = root().join("target").join("js-tools");
    if !tools.join("node_modules/typescript/package.json").is_file() {
        std::fs::create_dir_all(&tools).map_err(|e| format!("{}: {e}", tools.display()))?;
        run(Command::new("npm")
            .current_dir(&tools)
            .args(["install", "--no-audit", "--no-fund", "--prefix", "."])
            .arg(TYPESCRIPT))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

/// Builds the package into `target/js/`; `wasm-opt` must be there when `required` (CI).
pub fn build(required: bool) -> Result {
    run(cargo().args([
        "build",
        "--package",
        JS_GUEST,
        "--target",
        JS_TARGET,
        "--profile",
        JS_PROFILE,
    ]))?;
    let linked = root()
        .join("target")
        .join(JS_TARGET)
        .join(JS_PROFILE)
        .join("apart_js.wasm");
    // Optimised before wasm-bindgen reads it: binaryen 108 (Debian's) breaks the externref
    // table wasm-bindgen's glue adds, and keeps the custom sections wasm-bindgen reads.
    let optimised = root().join("target").join(JS_PROFILE).join("apart_js.wasm");
    crate::wasm_opt_with(
        &linked,
        &optimised,
        required,
        &["--enable-reference-types", "--enable-multivalue"],
    )?;
    let out = package_dir();
    for (target, dir) in [("web", "web"), ("nodejs", "node")] {
        run(Command::new("wasm-bindgen")
            .args(["--target", target, "--out-name", "apart", "--out-dir"])
            .arg(out.join(dir))
            .arg(&optimised))?;
    }
    // The Node build is CommonJS inside an ES-module package.
    std::fs::write(out.join("node/package.json"), "{\"type\": \"commonjs\"}\n")
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let source = root().join("wasm").join("js");
    copy(&source.join("package.json"), &out.join("package.json"))?;
    copy(&source.join("README.md"), &out.join("README.md"))?;
    let size = std::fs::metadata(out.join("web/apart_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "JS package: {} (apart_bg.wasm: {size} bytes)",
        out.display()
    );
    Ok(())
}

fn node() -> Command {
    let mut cmd = Command::new("node");
    cmd.current_dir(root());
    cmd.env("APART_JS_DIR", package_dir());
    cmd
}

/// The JS tests: the corpus under Node's test runner, the declarations on a TypeScript
/// consumer, and the package as `npm pack` makes it, installed and run as its README says.
pub fn test() -> Result {
    run(node().args(["--test", "wasm/js/tests/"]))?;
    let tsc = root().join("target/js-tools/node_modules/typescript/bin/tsc");
    run(node()
        .arg(&tsc)
        .args(["--noEmit", "-p", "wasm/js/tests/tsconfig.json"]))?;
    let consumer = root().join("target").join("js-consumer");
    let _ = std::fs::remove_dir_all(&consumer);
    std::fs::create_dir_all(&consumer).map_err(|e| format!("{}: {e}", consumer.display()))?;
    let packed = Command::new("npm")
        .current_dir(root())
        .args(["pack", "--pack-destination"])
        .arg(&consumer)
        .arg("./target/js")
        .output()
        .map_err(|e| format!("npm pack: {e}"))?;
    if !packed.status.success() {
        return Err(format!(
            "npm pack: {}",
            String::from_utf8_lossy(&packed.stderr)
        ));
    }
    // npm prints the tarball's name last.
    let stdout = String::from_utf8_lossy(&packed.stdout);
    let tarball = stdout.lines().last().unwrap_or_default().trim().to_owned();
    std::fs::write(consumer.join("package.json"), "{\"type\": \"module\"}\n")
        .map_err(|e| format!("{}: {e}", consumer.display()))?;
    run(Command::new("npm")
        .current_dir(&consumer)
        .args(["install", "--no-audit", "--no-fund", "--offline"])
        .arg(format!("./{tarball}")))?;
    // Run from the consumer's folder, so that `apart-policy` resolves to what was installed
    // there (from `wasm/js/` it would resolve to the package's own folder).
    copy(
        &root().join("wasm/js/tests/packed.mjs"),
        &consumer.join("packed.mjs"),
    )?;
    run(Command::new("node")
        .current_dir(&consumer)
        .env("APART_ROOT", root())
        .arg("packed.mjs"))
}

/// Builds the playground into `target/playground/` (its npm dependencies from its lock
/// file), and serves it on 127.0.0.1 when `serve` is set.
pub fn playground(serve: bool) -> Result {
    let dir = root().join("playground");
    if !dir.join("node_modules").is_dir() {
        run(Command::new("npm")
            .current_dir(&dir)
            .args(["ci", "--no-audit", "--no-fund"]))?;
    }
    let mut build = Command::new("node");
    build
        .current_dir(root())
        .arg("playground/build.mjs")
        .arg("--js")
        .arg(package_dir().join("web"))
        .arg("--out")
        .arg(root().join("target").join("playground"));
    if serve {
        build.arg("--serve");
    }
    run(&mut build)
}

/// The playground's end-to-end test in Debian's Chromium.
pub fn playground_test() -> Result {
    run(node()
        .env(
            "APART_PLAYGROUND_DIR",
            root().join("target").join("playground"),
        )
        .args(["--test", "playground/e2e.test.mjs"]))
}
