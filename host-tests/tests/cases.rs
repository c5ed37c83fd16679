//! The behaviour corpus: `tests/cases/<name>/` folders, each with `policy*.yaml`, inputs
//! (`input*.yaml|yml|json`) and `expected.json` (findings with codes, paths, lines, messages
//! and fixes; repaired objects; or the input error). Repaired inputs are checked against
//! `fixed/<input file>`.
//!
//! Every case runs twice, natively (the guest's functions compiled for the host) and through
//! the built `.wasm` on wasmtime, and both must agree exactly. `APART_BLESS=1` rewrites the
//! golden files from the code's output, for review.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use apart_host::commands::check::{self, Outcome, Policies};
use apart_host::commands::fix;
use apart_host::host::evaluator::{Evaluator, Native};
use apart_host::manifests;
use serde_json::{Value, json};
use support::{
    assert_no_failures, case_dirs, check_golden, check_json_golden, compiled_module, files,
};

/// A case's outcome with names relative to the case folder.
fn run_case(
    dir: &Path,
    evaluator: &(dyn Evaluator + Sync),
) -> (Value, Option<(Vec<manifests::Source>, Outcome)>) {
    // Names in messages are the case folder's (the folder may also appear inside a message,
    // e.g. in the command it suggests).
    let relative = |s: &str| s.replace(&format!("{}/", dir.display()), "");
    let policies = match check::read_policies(&files(dir, "policy")) {
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
            let file_of = |m: &check::ObjectRecord| {
                sources
                    .get(m.file)
                    .map(|s| relative(&s.name))
                    .unwrap_or_default()
            };
            let mutated: Vec<Value> = outcome
                .objects
                .iter()
                .zip(&outcome.retained)
                .filter_map(|(m, retained)| {
                    retained
                        .mutated
                        .as_ref()
                        .map(|v| json!({"file": file_of(m), "line": m.line, "object": v}))
                })
                .collect();
            let rejected: Vec<Value> = outcome
                .objects
                .iter()
                .filter(|m| !m.accepted)
                .map(|m| json!({"file": file_of(m), "line": m.line}))
                .collect();
            let errors = outcome.count(apart_policy::Severity::Error);
            let mut result = json!({
                "exit": u8::from(errors > 0),
                "findings": findings,
                "rejected": rejected,
                "mutated": mutated,
            });
            if !outcome.notes.is_empty() {
                let notes: Vec<String> = outcome.notes.iter().map(|n| relative(n)).collect();
                result["notes"] = json!(notes);
            }
            (result, Some((sources, outcome)))
        }
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
        match check::run(compiled_module(), policies, &again, "default") {
            Err(e) => failures.push(format!(
                "{}: the repaired text cannot be read: {e}",
                dir.display()
            )),
            Ok(second) => {
                if second.mutated() > 0 {
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
    // Policy cases have input* files; other corpora sharing tests/cases (simulate-*, audit-*)
    // have their own runners.
    let dirs = case_dirs("cases", |p| !files(p, "input").is_empty());
    let mut failures = Vec::new();
    for dir in &dirs {
        let (native, _) = run_case(dir, &Native);
        let (wasm, ran) = run_case(dir, compiled_module());
        if native != wasm {
            failures.push(format!(
                "{}: native and wasm disagree:\nnative: {native:#}\nwasm: {wasm:#}",
                dir.display()
            ));
            continue;
        }
        check_json_golden(&dir.join("expected.json"), &wasm, &mut failures);
        if let Some((sources, outcome)) = ran {
            let policies =
                check::read_policies(&files(dir, "policy")).expect("policies read once already");
            check_fixes(dir, &policies, &sources, &outcome, &mut failures);
        }
    }
    assert_no_failures(&failures);
    assert!(dirs.len() >= 20, "the corpus has only {} cases", dirs.len());
}

/// Every finding code and every workload kind appears somewhere in the corpus (codes that
/// need cluster context, in the context-aware cases).
#[test]
fn corpus_covers_every_code_and_kind() {
    let mut codes = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut mutated_kinds = BTreeSet::new();
    for dir in case_dirs("cases", |_| true) {
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
    for dir in case_dirs("context-aware", |_| true) {
        let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else {
            continue;
        };
        let expected: Value = serde_json::from_str(&text).expect("expected.json is JSON");
        let annotation = expected["response"]["auditAnnotations"]
            [apart_policy::admission::FINDINGS_ANNOTATION]
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
    for (_, kind) in apart_policy::kube::object::workload_kinds() {
        assert!(kinds.contains(kind), "no case has a finding on a {kind}");
        assert!(mutated_kinds.contains(kind), "no case mutates a {kind}");
    }
    assert!(kinds.contains("HelmRelease") && mutated_kinds.contains("HelmRelease"));
}
