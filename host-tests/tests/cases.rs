//! The behaviour corpus: `tests/cases/<name>/` folders, each with `policy*.yaml`, inputs
//! (`input*.yaml|yml|json`) and `expected.json` (findings with codes, paths, lines, messages
//! and fixes; repaired objects; or the input error). Repaired inputs are checked against
//! `fixed/<input file>`.
//!
//! Every case runs twice, natively (the guest's functions compiled for the host) and through
//! the built `.wasm` on wasmtime, and both must agree exactly. `APART_BLESS=1` rewrites the
//! golden files from the code's output, for review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use apart_host::check::{self, Outcome, Policies};
use apart_host::evaluator::{Evaluator, Native};
use apart_host::wapc::PolicyModule;
use apart_host::{fix, manifests};
use serde_json::{Value, json};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cases")
}

fn module() -> &'static PolicyModule {
    static MODULE: OnceLock<PolicyModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let path = std::env::var_os("APART_WASM_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/wasm32-wasip1/wasm/apart_wasm.wasm")
            });
        let wasm = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "the built module {} is needed (run `cargo xtask build`): {e}",
                path.display()
            )
        });
        PolicyModule::new(&wasm).expect("the module compiles")
    })
}

fn bless() -> bool {
    std::env::var_os("APART_BLESS").is_some()
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
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

/// A case's outcome with names relative to the case folder.
fn run_case(
    dir: &Path,
    evaluator: &dyn Evaluator,
) -> (Value, Option<(Vec<manifests::Source>, Outcome)>) {
    let relative = |s: &str| {
        s.strip_prefix(&format!("{}/", dir.display()))
            .unwrap_or(s)
            .to_owned()
    };
    let policies = match Policies::read(&files(dir, "policy")) {
        Ok(p) => p,
        Err(e) => {
            return (
                json!({"error": relative(&e.to_string()), "exit": e.exit_code()}),
                None,
            );
        }
    };
    let sources = match manifests::read_sources(&files(dir, "input")) {
        Ok(s) => s,
        Err(e) => {
            return (
                json!({"error": relative(&e.to_string()), "exit": e.exit_code()}),
                None,
            );
        }
    };
    match check::run(evaluator, &policies, &sources, "default") {
        Err(e) => (
            json!({"error": relative(&e.to_string()), "exit": e.exit_code()}),
            None,
        ),
        Ok(outcome) => {
            let findings: Vec<Value> = outcome
                .findings
                .iter()
                .map(|f| {
                    let mut v = serde_json::to_value(f).expect("finding serializes");
                    v["file"] = json!(relative(&f.file));
                    v
                })
                .collect();
            let mutated: Vec<Value> = outcome
                .manifests
                .iter()
                .zip(&outcome.mutated)
                .filter_map(|(m, mutated)| {
                    mutated.as_ref().map(|v| {
                        let file = sources
                            .get(m.source)
                            .map(|s| relative(&s.name))
                            .unwrap_or_default();
                        json!({"file": file, "line": m.line, "object": v})
                    })
                })
                .collect();
            let rejected: Vec<Value> = outcome
                .manifests
                .iter()
                .zip(&outcome.accepted)
                .filter(|(_, accepted)| !**accepted)
                .map(|(m, _)| {
                    let file = sources
                        .get(m.source)
                        .map(|s| relative(&s.name))
                        .unwrap_or_default();
                    json!({"file": file, "line": m.line})
                })
                .collect();
            let errors = outcome.count(apart_policy::Severity::Error);
            let result = json!({
                "exit": u8::from(errors > 0),
                "findings": findings,
                "rejected": rejected,
                "mutated": mutated,
            });
            (result, Some((sources, outcome)))
        }
    }
}

fn check_golden(path: &Path, actual: &str, failures: &mut Vec<String>) {
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

/// Repaired inputs: golden text, and a second pass that finds nothing left to repair.
fn check_fixes(
    dir: &Path,
    policies: &Policies,
    sources: &[manifests::Source],
    outcome: &Outcome,
    failures: &mut Vec<String>,
) {
    for fixed in fix::fix_sources(sources, outcome) {
        if fixed.fixed == fixed.original {
            continue;
        }
        let name = Path::new(&fixed.name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        check_golden(&dir.join("fixed").join(&name), &fixed.fixed, failures);
        let again = vec![manifests::Source {
            name: fixed.name.clone(),
            text: fixed.fixed.clone(),
        }];
        match check::run(module(), policies, &again, "default") {
            Err(e) => failures.push(format!(
                "{}: the repaired text cannot be read: {e}",
                dir.display()
            )),
            Ok(second) => {
                if second.mutated.iter().any(Option::is_some) {
                    failures.push(format!(
                        "{}: fixing {name} again changes it (not idempotent)",
                        dir.display()
                    ));
                }
                let refixed = fix::fix_sources(&again, &second);
                if refixed.iter().any(|f| f.fixed != f.original) {
                    failures.push(format!(
                        "{}: the repaired text of {name} is repaired again",
                        dir.display()
                    ));
                }
            }
        }
    }
}

#[test]
fn corpus_agrees_natively_and_through_the_module() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Policy cases have input* files; other corpora sharing tests/cases (simulate-*,
        // audit-*) have their own runners.
        .filter(|p| p.is_dir() && !files(p, "input").is_empty())
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    for dir in &dirs {
        let (native, _) = run_case(dir, &Native);
        let (wasm, ran) = run_case(dir, module());
        if native != wasm {
            failures.push(format!(
                "{}: native and wasm disagree:\nnative: {native:#}\nwasm: {wasm:#}",
                dir.display()
            ));
            continue;
        }
        let mut text = serde_json::to_string_pretty(&wasm).expect("json");
        text.push('\n');
        check_golden(&dir.join("expected.json"), &text, &mut failures);
        if let Some((sources, outcome)) = ran {
            let policies =
                Policies::read(&files(dir, "policy")).expect("policies read once already");
            check_fixes(dir, &policies, &sources, &outcome, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(dirs.len() >= 20, "the corpus has only {} cases", dirs.len());
}

/// Every finding code and every workload kind appears somewhere in the corpus (codes that
/// need cluster context, in the context-aware cases).
#[test]
fn corpus_covers_every_code_and_kind() {
    let mut codes = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut mutated_kinds = BTreeSet::new();
    for entry in std::fs::read_dir(corpus()).expect("tests/cases") {
        let dir = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else {
            continue;
        };
        let expected: Value = serde_json::from_str(&text).expect("expected.json is JSON");
        for f in expected["findings"].as_array().into_iter().flatten() {
            codes.insert(f["code"].as_str().unwrap_or_default().to_owned());
            kinds.insert(f["object"]["kind"].as_str().unwrap_or_default().to_owned());
        }
        for m in expected["mutated"].as_array().into_iter().flatten() {
            mutated_kinds.insert(m["object"]["kind"].as_str().unwrap_or_default().to_owned());
        }
    }
    // Codes that need cluster context (co-located) come from the context-aware cases: the
    // findings their goldens carry in the audit annotation.
    let context_aware = corpus().join("../context-aware");
    for entry in std::fs::read_dir(&context_aware).expect("tests/context-aware") {
        let dir = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else {
            continue;
        };
        let expected: Value = serde_json::from_str(&text).expect("expected.json is JSON");
        let annotation = expected["response"]["auditAnnotations"]["apart.dev/findings"]
            .as_str()
            .unwrap_or("[]");
        let findings: Vec<Value> = serde_json::from_str(annotation).expect("findings are JSON");
        for f in &findings {
            codes.insert(f["code"].as_str().unwrap_or_default().to_owned());
        }
    }
    for code in apart_policy::Code::ALL {
        assert!(codes.contains(code.as_str()), "no case produces {code}");
    }
    for (_, kind) in apart_policy::object::workload_kinds() {
        assert!(kinds.contains(kind), "no case has a finding on a {kind}");
        assert!(mutated_kinds.contains(kind), "no case mutates a {kind}");
    }
    assert!(kinds.contains("HelmRelease") && mutated_kinds.contains("HelmRelease"));
}
