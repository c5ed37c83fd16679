//! `cargo xtask fuzz [--seconds N] [--seed] [--cmin] [TARGET...]`: the libFuzzer targets of
//! `fuzz/` (see `docs/reliability.md`).
//!
//! The targets are built once with cargo-fuzz (`-O -a --sanitizer none`: optimised, with
//! debug assertions and overflow checks; apart's engine is safe Rust, so AddressSanitizer
//! would only halve the speed) into `target/fuzz`, on the stable toolchain with
//! `RUSTC_BOOTSTRAP=1` for the `-Z` flags cargo-fuzz passes. Each target binary then runs for
//! the given seconds with one job, reading the committed corpus `fuzz/corpus/<target>` and
//! writing what it finds to `target/fuzz/corpus/<target>` (so a run leaves the repository as
//! it was; `--cmin` merges both into the smallest set that keeps the coverage and writes it
//! back to `fuzz/corpus`). `--seed` first writes the seeds from the test corpora
//! (`host-tests/tests/fuzz_corpus.rs`).
//!
//! Printed per target: executions, executions per second, coverage (libFuzzer's `cov`, edges
//! reached, and `ft`, features), peak memory and crashes; a crash (its input is left under
//! `fuzz/artifacts/<target>/`) fails the task.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cargo, root, run};

/// Every target, in `fuzz/Cargo.toml`'s order.
pub const TARGETS: &[&str] = &[
    "wapc_validate",
    "wapc_settings",
    "opa_eval",
    "opa_value",
    "policy_parse",
    "source_read",
    "fix_edit",
    "evaluate_structured",
    "cluster_read",
    "simulate",
    "audit",
];

/// cargo-fuzz, pinned (what `cargo xtask setup` installs).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Installs cargo-fuzz when it is missing or another version.
pub fn install_cargo_fuzz() -> Result {
    let have = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if have {
        return Ok(());
    }
    run(cargo().args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}

/// What one run of a target reported.
#[derive(Debug, Default)]
struct Stats {
    executions: u64,
    per_second: u64,
    edges: u64,
    features: u64,
    corpus: u64,
    peak_rss_mb: u64,
    crashed: bool,
}

/// The number after `key` in a libFuzzer line (`cov: 123`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = line.split(key).nth(1)?;
    rest.split_whitespace()
        .next()?
        .trim_end_matches("/")
        .parse()
        .ok()
}

fn parse(output: &str) -> Stats {
    let mut s = Stats::default();
    for line in output.lines() {
        if line.starts_with('#') {
            if let Some(v) = number_after(line, "cov: ") {
                s.edges = v;
            }
            if let Some(v) = number_after(line, "ft: ") {
                s.features = v;
            }
            if let Some(v) = line
                .split("corp: ")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .and_then(|n| n.parse().ok())
            {
                s.corpus = v;
            }
        }
        for (key, slot) in [
            ("stat::number_of_executed_units: ", &mut s.executions),
            ("stat::average_exec_per_sec: ", &mut s.per_second),
            ("stat::peak_rss_mb: ", &mut s.peak_rss_mb),
        ] {
            if let Some(v) = line.strip_prefix(key).and_then(|v| v.trim().parse().ok()) {
                *slot = v;
            }
        }
        if line.contains("panicked at") || line.starts_with("==") && line.contains("ERROR") {
            s.crashed = true;
        }
    }
    s
}

fn host_triple() -> String {
    Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".to_owned())
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

fn target_dir() -> PathBuf {
    root().join("target").join("fuzz")
}

fn binary(target: &str) -> PathBuf {
    target_dir()
        .join(host_triple())
        .join("release")
        .join(target)
}

fn build() -> Result {
    install_cargo_fuzz()?;
    let mut cmd = cargo();
    cmd.current_dir(fuzz_dir())
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "fuzz",
            "build",
            "-O",
            "-a",
            "--sanitizer",
            "none",
            "--target-dir",
        ])
        .arg(target_dir());
    run(&mut cmd)
}

fn mkdir(dir: &Path) -> Result {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs one target for `seconds`; its stats.
fn run_target(target: &str, seconds: u64) -> Result<Stats> {
    let found = target_dir().join("corpus").join(target);
    let saved = fuzz_dir().join("corpus").join(target);
    let artifacts = fuzz_dir().join("artifacts").join(target);
    mkdir(&found)?;
    mkdir(&saved)?;
    mkdir(&artifacts)?;
    eprintln!("\n$ fuzz {target} for {seconds} s");
    let output = Command::new(binary(target))
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        // Inputs up to 64 KB: room for whole manifests and requests, fast enough to mutate.
        .arg("-max_len=65536")
        // A slow input is reported (as libFuzzer's timeout) rather than waited on.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&found)
        .arg(&saved)
        .output()
        .map_err(|e| format!("cannot run {}: {e} (built?)", binary(target).display()))?;
    let text = String::from_utf8_lossy(&output.stderr);
    let log = target_dir().join("logs");
    mkdir(&log)?;
    std::fs::write(log.join(format!("{target}.log")), text.as_bytes())
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut stats = parse(&text);
    stats.crashed |= !output.status.success();
    if stats.crashed {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(stats)
}

/// Merges the committed and the found corpus into the smallest set with the same coverage,
/// written back to `fuzz/corpus/<target>`.
fn minimize(target: &str) -> Result {
    let saved = fuzz_dir().join("corpus").join(target);
    let found = target_dir().join("corpus").join(target);
    let merged = target_dir().join("merged").join(target);
    let _ = std::fs::remove_dir_all(&merged);
    mkdir(&merged)?;
    mkdir(&found)?;
    run(Command::new(binary(target))
        .arg("-merge=1")
        .arg("-max_len=65536")
        .arg(&merged)
        .arg(&saved)
        .arg(&found))?;
    std::fs::remove_dir_all(&saved).map_err(|e| format!("{}: {e}", saved.display()))?;
    std::fs::rename(&merged, &saved).map_err(|e| format!("{}: {e}", saved.display()))?;
    let _ = std::fs::remove_dir_all(&found);
    Ok(())
}

/// The task.
pub fn fuzz(args: &[String]) -> Result {
    let mut seconds = 60;
    let mut seed = false;
    let mut cmin = false;
    let mut targets: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a number")?;
            }
            "--seed" => seed = true,
            "--cmin" => cmin = true,
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => {
                return Err(format!(
                    "unknown fuzz target or flag {other}; targets: {}",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    if seed {
        run(cargo().args([
            "test",
            "--release",
            "--package",
            "apart",
            "--test",
            "fuzz_corpus",
            "--",
            "--ignored",
            "--exact",
            "seed_the_fuzz_corpus",
        ]))?;
    }
    build()?;
    let mut rows = Vec::new();
    for t in &targets {
        let stats = run_target(t, seconds)?;
        if cmin && !stats.crashed {
            minimize(t)?;
        }
        rows.push((t.clone(), stats));
    }
    eprintln!(
        "\n{:<20} {:>12} {:>9} {:>7} {:>8} {:>7} {:>7} {:>7}",
        "target", "executions", "exec/s", "cov", "ft", "corpus", "rss MB", "crashes"
    );
    let mut total = 0;
    let mut crashes = 0;
    for (t, s) in &rows {
        total += s.executions;
        crashes += usize::from(s.crashed);
        eprintln!(
            "{t:<20} {:>12} {:>9} {:>7} {:>8} {:>7} {:>7} {:>7}",
            s.executions,
            s.per_second,
            s.edges,
            s.features,
            s.corpus,
            s.peak_rss_mb,
            usize::from(s.crashed)
        );
    }
    eprintln!("{:<20} {total:>12}", "total");
    if crashes > 0 {
        return Err(format!(
            "{crashes} target(s) crashed: the inputs are under fuzz/artifacts/"
        ));
    }
    Ok(())
}
