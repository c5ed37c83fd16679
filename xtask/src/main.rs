//! apart's single task runner: `cargo xtask setup | build | ci | demo | bench | playground`.
//!
//! - `setup`: the wasm targets and toolchain components the build needs, the Debian
//!   packages the tests drive (a real OCI registry, headless Chromium), and the official OPA
//!   npm SDK the OPA-ABI module is tested under (into `target/opa-node`), and Microsoft's SARIF
//!   Multitool that validates the SARIF output (into `target/sarif-node`), cargo-fuzz, and
//!   OPA's engine as a C library for the differential test and the bench (into
//!   `target/opa-bridge`), and the `wasm-bindgen` CLI of the crate's exact version and
//!   TypeScript for the JS build (`js.rs`).
//! - `build`: the Kubewarden module (wasm32-wasip1, release, then `wasm-opt -Oz` into
//!   `target/wasm/apart_wasm.wasm`), then the CLI with that exact module embedded: afterwards
//!   `target/release/apart` works with no flags. Also the OPA-ABI
//!   module (wasm32-unknown-unknown), with its ABI version globals added after linking, and
//!   the JS build (`wasm-bindgen`, web and Node) as an npm package in `target/js/`.
//! - `playground [--serve]`: the browser playground into `target/playground/` (after
//!   `build`), served on 127.0.0.1 with `--serve`.
//! - `ci`: setup, format check, the modules, one release build of the host side (the CLI and
//!   every test), clippy (`-D warnings`, host and wasm), then every test against the modules
//!   just built, the JS build's tests (the corpus under Node, `tsc`, the packed package) and
//!   the playground's in Chromium, then a 5 s smoke of every fuzz target. One release profile throughout, so
//!   wasmtime is compiled once.
//! - `demo`: setup, build, then `apart check` and `apart fix` on the bundled seed example.
//! - `fuzz`: the libFuzzer targets of `fuzz/` (see `fuzz.rs` and `docs/reliability.md`).
//! - `bench`: build, then the benchmarks, each printing its table beside its floor: every
//!   admission path in one table (`host-tests/benches/admission/`: the native engine, the
//!   module warm and fresh as policy-server runs it, an empty guest, the generated Rego under
//!   regorus and the real OPA engine beside a hand-written Rego) and the CLI on generated
//!   manifest sets (`host-tests/benches/cli.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod fuzz;
mod js;
mod opa_abi;

/// The guest crate and where its module lands.
const GUEST: &str = "apart-wasm";
const WASM_TARGET: &str = "wasm32-wasip1";
const WASM_PROFILE: &str = "wasm";

/// The OPA-ABI guest crate, its target and profile.
const OPA_GUEST: &str = "apart-opa";
const OPA_TARGET: &str = "wasm32-unknown-unknown";
const OPA_PROFILE: &str = "opa";

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    // xtask/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The waPC module as shipped: cargo's output optimised for size by `wasm-opt` (the linker's
/// output stays cargo's, so cargo's freshness checks keep working).
fn module_path() -> PathBuf {
    root().join("target").join("wasm").join("apart_wasm.wasm")
}

/// `wasm-opt` (binaryen) flags for the shipped modules: size first (`-Oz`; on apart's code it
/// is as fast as `-O2`, and the 20% smaller module instantiates and compiles sooner), with the
/// WebAssembly features rustc's wasm32 targets emit.
const WASM_OPT_FLAGS: &[&str] = &[
    "-Oz",
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
];

/// Optimises a linked module into `out` with `wasm-opt` (installed by `cargo xtask setup`;
/// `ci` requires it). A `build` without it ships the linked module as it is, and says so: the
/// module works the same, only larger.
fn wasm_opt(linked: &Path, out: &Path, required: bool) -> Result {
    wasm_opt_with(linked, out, required, &[])
}

/// [`wasm_opt`] with further WebAssembly features enabled.
fn wasm_opt_with(linked: &Path, out: &Path, required: bool, features: &[&str]) -> Result {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let present = Command::new("wasm-opt").arg("--version").output().is_ok();
    if !present && !required {
        eprintln!(
            "xtask: wasm-opt not found (Debian/Ubuntu: apt-get install binaryen; or `cargo xtask setup`): {} is not size-optimised",
            out.display()
        );
        return std::fs::copy(linked, out)
            .map(drop)
            .map_err(|e| format!("{}: {e}", out.display()));
    }
    run(Command::new("wasm-opt")
        .args(WASM_OPT_FLAGS)
        .args(features)
        .arg(linked)
        .arg("-o")
        .arg(out))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("\n$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("failed ({status}): {shown}"))
    }
}

fn setup() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<&str> = [WASM_TARGET, "wasm32-unknown-unknown"]
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        run(Command::new("rustup")
            .arg("target")
            .arg("add")
            .args(&missing))?;
    }
    let components = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|c| !components.lines().any(|l| l.starts_with(c)))
        .collect();
    if !missing.is_empty() {
        run(Command::new("rustup")
            .arg("component")
            .arg("add")
            .args(&missing))?;
    }
    debian_packages()?;
    opa_npm_sdk()?;
    sarif_multitool()?;
    fuzz::install_cargo_fuzz()?;
    js::setup()?;
    opa_bridge()
}

/// OPA's own engine (1.20, Go) as a C shared library, from the PyPI wheel that ships it
/// (`opa-golib-python-bindings`, pinned): the differential and Gatekeeper tests evaluate the
/// generated Gatekeeper Rego with it, as Gatekeeper does, and the admission bench times it. Only the wheel is downloaded (no Python
/// package is installed); the library needs only libc.
const OPA_BRIDGE_WHEEL: &str = "opa-golib-python-bindings==0.4.4";
/// Where the library lands under `target/opa-bridge`.
pub const OPA_BRIDGE_LIBRARY: &str = "opa_bindings/libopabridge.so";

fn opa_bridge() -> Result {
    let dir = root().join("target").join("opa-bridge");
    if dir.join(OPA_BRIDGE_LIBRARY).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(Command::new("python3")
        .current_dir(&dir)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--python-version",
            "3.14",
            "--only-binary=:all:",
            "--dest",
            ".",
        ])
        .arg(OPA_BRIDGE_WHEEL))?;
    let wheel = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip left no wheel")?;
    // A wheel is a zip; Python's zipfile module unpacks it without an unzip binary.
    run(Command::new("python3")
        .current_dir(&dir)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg("."))
}

/// Microsoft's SARIF Multitool, pinned: the validator `apart check --output sarif` is
/// judged by (with GitHub's ingestion rules). A self-contained .NET binary from npm.
const SARIF_MULTITOOL: &str = "@microsoft/sarif-multitool-linux@5.7.0";
/// Where it lands under `target/sarif-node`.
const SARIF_MULTITOOL_BINARY: &str =
    "node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool";

fn sarif_multitool() -> Result {
    let dir = root().join("target").join("sarif-node");
    let binary = dir.join(SARIF_MULTITOOL_BINARY);
    if !binary.is_file() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        run(Command::new("npm")
            .current_dir(&dir)
            .args(["install", "--no-audit", "--no-fund", "--prefix", "."])
            .arg(SARIF_MULTITOOL))?;
    }
    // npm may not run the package's own `chmod u+x` (install scripts can be disabled).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", binary.display()))?;
    }
    Ok(())
}

/// The official OPA Wasm SDK for Node, pinned: a second, independent OPA host for the OPA-ABI
/// module's tests. Installed under `target/` so the repository holds no `node_modules`.
const OPA_NPM_SDK: &str = "@open-policy-agent/opa-wasm@1.10.0";

fn opa_npm_sdk() -> Result {
    let dir = root().join("target").join("opa-node");
    let installed = dir
        .join("node_modules/@open-policy-agent/opa-wasm/package.json")
        .is_file();
    if installed {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(Command::new("npm")
        .current_dir(&dir)
        .args(["install", "--no-audit", "--no-fund", "--prefix", "."])
        .arg(OPA_NPM_SDK))
}

/// Debian packages the build and the tests use: `binaryen` (`wasm-opt`, which makes the
/// shipped waPC module small), `docker-registry` (the CNCF distribution registry, for `apart
/// push`/`pull` against a real registry) and `chromium` (renders `apart audit --output html`
/// for a screenshot test).
const DEBIAN_PACKAGES: &[&str] = &[
    "docker-registry",
    "chromium",
    "fonts-liberation",
    "binaryen",
];

fn debian_packages() -> Result {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = |cmd: &str| -> Command {
        // Root (CI, containers) runs apt directly; others go through sudo.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let mut c = if is_root {
            Command::new(cmd)
        } else {
            let mut c = Command::new("sudo");
            c.arg(cmd);
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(sudo("apt-get").arg("update").arg("-q"))?;
    run(sudo("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing))?;
    // The package's own service (auth forced by its packaged config) is not what the tests
    // use; they start their own registries on loopback with their own configs.
    let _ = Command::new("systemctl")
        .args(["disable", "--now", "docker-registry"])
        .output();
    Ok(())
}

/// Builds a guest crate for its target and profile; returns where cargo left the module.
fn build_guest(package: &str, target: &str, profile: &str) -> Result<PathBuf> {
    run(cargo().args([
        "build",
        "--package",
        package,
        "--target",
        target,
        "--profile",
        profile,
    ]))?;
    let file = format!("{}.wasm", package.replace('-', "_"));
    Ok(root().join("target").join(target).join(profile).join(file))
}

/// Builds the waPC module; `wasm-opt` must be there when `optimised` is required (CI).
fn build_module(required: bool) -> Result {
    let linked = build_guest(GUEST, WASM_TARGET, WASM_PROFILE)?;
    wasm_opt(&linked, &module_path(), required)?;
    let size = std::fs::metadata(module_path())
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!("module: {} ({size} bytes)", module_path().display());
    Ok(())
}

/// The OPA-ABI module as deployed: the linked module with its ABI globals added.
fn opa_module_path() -> PathBuf {
    root().join("target").join("opa").join("apart_opa.wasm")
}

/// Builds the OPA-ABI module, adds the `opa_wasm_abi_version` globals, which Rust cannot
/// define, and fits its memory import to the pages OPA hosts create, in a copy (the linker's
/// output stays cargo's).
fn build_opa_module() -> Result {
    let linked = build_guest(OPA_GUEST, OPA_TARGET, OPA_PROFILE)?;
    let bytes = std::fs::read(&linked).map_err(|e| format!("{}: {e}", linked.display()))?;
    let module = opa_abi::add_version_globals(&bytes)
        .and_then(|m| opa_abi::fit_host_memory(&m))
        .map_err(|e| format!("{}: {e}", linked.display()))?;
    let out = opa_module_path();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&out, &module).map_err(|e| format!("{}: {e}", out.display()))?;
    let (major, minor) = opa_abi::ABI_VERSION;
    eprintln!(
        "OPA module (ABI {major}.{minor}): {} ({} bytes)",
        out.display(),
        module.len()
    );
    Ok(())
}

/// A cargo command that embeds (and tests) the module just built.
fn cargo_with_module() -> Command {
    let mut cmd = cargo();
    cmd.env("APART_WASM_MODULE", module_path());
    cmd.env("APART_OPA_MODULE", opa_module_path());
    cmd
}

fn build() -> Result {
    build_module(false)?;
    build_opa_module()?;
    run(cargo_with_module().args(["build", "--release", "--package", "apart"]))?;
    eprintln!("CLI: {}", root().join("target/release/apart").display());
    js::build(false)
}

fn ci() -> Result {
    let started = Instant::now();
    // Idempotent and quick when everything is there: `cargo xtask ci` alone works on a fresh
    // machine too.
    setup()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    build_module(true)?;
    build_opa_module()?;
    js::build(true)?;
    // One release build of the host side, with the features the tests' dev-dependencies
    // unify in: it also leaves target/release/apart (the integration tests need the binary),
    // so wasmtime is compiled once. A separate `cargo build -p apart` would resolve other
    // features and compile wasmtime a second time.
    run(cargo_with_module().args(["test", "--workspace", "--release", "--no-run"]))?;
    run(cargo_with_module().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "--package",
        GUEST,
        "--target",
        WASM_TARGET,
        "--profile",
        WASM_PROFILE,
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "--package",
        "apart-js",
        "--target",
        OPA_TARGET,
        "--profile",
        "wasm-js",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "--package",
        OPA_GUEST,
        "--target",
        OPA_TARGET,
        "--profile",
        OPA_PROFILE,
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo_with_module().args(["test", "--workspace", "--release"]))?;
    js::test()?;
    js::playground(false)?;
    js::playground_test()?;
    // A short smoke of every fuzz target over the committed corpus (the corpus replay through
    // the modules, the differential and the property tests ran with the tests above).
    fuzz::fuzz(&["--seconds".to_owned(), "5".to_owned()])?;
    eprintln!("\nci passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn demo() -> Result {
    setup()?;
    build()?;
    let apart = root().join("target/release/apart");
    let policy = "examples/seed/policy.yaml";
    let seed = "examples/seed/cilium-helmrelease.yaml";
    let show = |args: &[&str]| -> Result<i32> {
        let mut cmd = Command::new(&apart);
        cmd.current_dir(root()).args(args);
        eprintln!("\n$ apart {}", args.join(" "));
        let status = cmd.status().map_err(|e| format!("cannot run apart: {e}"))?;
        let code = status.code().unwrap_or(-1);
        eprintln!("(exit {code})");
        Ok(code)
    };
    let checked = show(&["check", "-p", policy, seed, "examples/rendered"])?;
    if checked != 1 {
        return Err(format!(
            "expected `apart check` to find the namespace-blind term (exit 1), got exit {checked}"
        ));
    }
    show(&["fix", "-p", policy, "--diff", seed])?;
    // The repaired manifest passes.
    let fixed = Command::new(&apart)
        .current_dir(root())
        .args(["fix", "-p", policy, seed])
        .output()
        .map_err(|e| format!("cannot run apart fix: {e}"))?;
    let dir = root().join("target/demo");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let fixed_path = dir.join("cilium-helmrelease.fixed.yaml");
    std::fs::write(&fixed_path, &fixed.stdout).map_err(|e| e.to_string())?;
    let fixed_arg = fixed_path.display().to_string();
    let rechecked = show(&["check", "-p", policy, &fixed_arg])?;
    if rechecked != 0 {
        return Err(format!(
            "the repaired manifest should pass (exit 0), got exit {rechecked}"
        ));
    }
    eprintln!("\ndemo: apart found the silent no-op, repaired it, and the repair passes.");
    Ok(())
}

/// The empty waPC guest the admission bench measures the instantiation floor with.
fn build_empty_guest() -> Result<PathBuf> {
    run(cargo().args([
        "build",
        "--package",
        GUEST,
        "--example",
        "empty_guest",
        "--target",
        WASM_TARGET,
        "--profile",
        WASM_PROFILE,
    ]))?;
    Ok(root()
        .join("target")
        .join(WASM_TARGET)
        .join(WASM_PROFILE)
        .join("examples/empty_guest.wasm"))
}

fn bench() -> Result {
    build()?;
    let empty_guest = build_empty_guest()?;
    if let Err(e) = opa_bridge() {
        eprintln!("xtask: the real OPA engine is not available ({e}); its rows are left out");
    }
    run(cargo_with_module()
        .env("APART_EMPTY_GUEST", empty_guest)
        .args(["bench", "--package", "apart", "--bench", "admission"]))?;
    run(cargo_with_module().args(["bench", "--package", "apart", "--bench", "cli"]))
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "setup" => setup(),
        "build" => build(),
        "ci" => ci(),
        "demo" => demo(),
        "bench" => bench(),
        "playground" => js::playground(std::env::args().nth(2).as_deref() == Some("--serve")),
        "fuzz" => fuzz::fuzz(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => Err(
            "usage: cargo xtask <setup|build|ci|demo|bench|playground [--serve]|fuzz [--seconds N] [--seed] [--cmin] [TARGET...]>"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
