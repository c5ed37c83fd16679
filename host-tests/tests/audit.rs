//! The audit corpus: `tests/cases/audit-<name>/` folders, each with `policy*.yaml`, a
//! `cluster.yaml` or `cluster.json` snapshot, and the goldens `expected-audit.json` (the JSON
//! output, or `{"error", "exit"}` for bad input) and `expected-audit.txt` (the text output).
//! `APART_BLESS=1` rewrites the goldens from the code's output, for review.

mod support;

use std::path::Path;

use apart_host::commands::audit::{self, AuditFormat};
use apart_host::commands::check;
use serde_json::{Value, json};
use support::{assert_no_failures, case_dirs, check_golden, corpus, files, named, root, run_cli};

/// The JSON and text outputs of a case, names relative to its folder.
fn run_case(dir: &Path) -> (String, Option<String>) {
    let relative = |s: &str| s.replace(&format!("{}/", dir.display()), "");
    let error = |e: apart_host::diagnostic::Diagnostic| {
        let value = json!({"error": relative(&e.to_string()), "exit": e.exit_code()});
        (
            serde_json::to_string_pretty(&value).expect("json") + "\n",
            None,
        )
    };
    let policies = match check::read_policies(&files(dir, "policy")) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    let clusters = files(dir, "cluster");
    assert_eq!(
        clusters.len(),
        1,
        "{}: one cluster.yaml or cluster.json",
        dir.display()
    );
    let (name, cluster) = match audit::read_cluster(&clusters[0]) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let report = apart_policy::placement::audit::audit(&policies.set, &cluster);
    let name = relative(&name);
    (
        audit::render(&report, AuditFormat::Json, &name),
        Some(audit::render(&report, AuditFormat::Text, &name)),
    )
}

#[test]
fn audit_cases_match_their_goldens() {
    let dirs = case_dirs("cases", named("audit-"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let (json_out, text_out) = run_case(dir);
        check_golden(&dir.join("expected-audit.json"), &json_out, &mut failures);
        let text_golden = dir.join("expected-audit.txt");
        match text_out {
            Some(text) => check_golden(&text_golden, &text, &mut failures),
            None if text_golden.exists() => failures.push(format!(
                "{}: the case fails to read, but has a text golden",
                dir.display()
            )),
            None => {}
        }
    }
    assert_no_failures(&failures);
    assert!(dirs.len() >= 8, "only {} audit cases", dirs.len());
}

fn expected(case: &str) -> Value {
    let text = std::fs::read_to_string(corpus().join(case).join("expected-audit.json"))
        .expect("golden exists");
    serde_json::from_str(&text).expect("golden is JSON")
}

fn pods(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}/{}",
                p["namespace"].as_str().unwrap_or_default(),
                p["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// What each case is for, stated independently of the goldens (which bless rewrites).
#[test]
fn audit_cases_say_what_they_are_for() {
    let incident = expected("audit-incident");
    let v = &incident["violations"][0];
    assert_eq!(incident["violations"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["domain"], "worker-2");
    assert_eq!(pods(&v["subjects"]), ["kube-system/spire-server-0"]);
    assert_eq!(
        pods(&v["peers"]),
        ["flux-system/kustomize-controller-7b5d9f8c4-x2x9k"]
    );

    assert_eq!(expected("audit-clean")["violations"], json!([]));

    let zone = expected("audit-zone");
    assert_eq!(
        zone["violations"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(zone["violations"][0]["nodes"], json!(["a-1", "a-2"]));
    assert_eq!(zone["violations"].as_array().map(Vec::len), Some(1));

    let selected = expected("audit-namespace-selector");
    assert_eq!(
        pods(&selected["violations"][0]["peers"]),
        ["gitops-sre/source-controller-6ff87cdb4b-z8r2v"]
    );

    let unplaced = expected("audit-unplaced-ignored");
    assert_eq!(unplaced["violations"], json!([]));
    assert_eq!(unplaced["summary"]["podsOnUnknownNodes"], 1);
    assert_eq!(unplaced["summary"]["placedPods"], 2);

    let unlabelled = expected("audit-unlabelled");
    assert_eq!(unlabelled["violations"], json!([]));
    let nodes: Vec<&str> = unlabelled["unlabelled"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["node"].as_str())
        .collect();
    assert_eq!(nodes, ["edge-1", "edge-2", "edge-3"]);
    assert_eq!(
        unlabelled["unlabelled"][2]["together"],
        json!(["identity-zone-apart"])
    );

    let ranked = expected("audit-blast-radius");
    let order: Vec<&str> = ranked["blastRadius"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    assert_eq!(order, ["worker-2", "worker-3", "worker-4", "worker-1"]);
    assert_eq!(
        ranked["blastRadius"][0]["policies"],
        json!(["identity-apart-from-gitops", "dns-apart-from-gitops"])
    );

    let bad = expected("audit-bad-cluster");
    assert_eq!(bad["exit"], 2);
    assert!(
        bad["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("cluster.yaml:11:"),
        "{bad}"
    );
}

// The built binary: exit codes, formats, `-o FILE`.

const SEED_POLICY: &str = "examples/seed/policy.yaml";
const INCIDENT: &str = "examples/incident/cluster.json";

#[test]
fn cli_audit_exit_codes_and_outputs() {
    // The bundled incident: exit 1, both pods named.
    let out = run_cli(&["audit", "-p", SEED_POLICY, "--cluster", INCIDENT], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("subject  cilium-spire/spire-server-0 on worker-2")
            && text
                .contains("peers    flux-system/kustomize-controller-7b5d9f8c4-x2x9k on worker-2"),
        "{text}"
    );

    let out = run_cli(
        &[
            "audit",
            "-p",
            SEED_POLICY,
            "--cluster",
            INCIDENT,
            "--output",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(report["summary"]["violations"], 1);
    assert_eq!(report["violations"][0]["domain"], "worker-2");
    assert_eq!(
        pods(&report["violations"][0]["subjects"]),
        ["cilium-spire/spire-server-0"]
    );
    assert_eq!(report["blastRadius"][0]["domain"], "worker-2");

    // A clean cluster: exit 0.
    let out = run_cli(
        &[
            "audit",
            "-p",
            "tests/cases/audit-clean/policy.yaml",
            "--cluster",
            "tests/cases/audit-clean/cluster.json",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Bad input: exit 2 with file and position.
    let out = run_cli(
        &[
            "audit",
            "-p",
            SEED_POLICY,
            "--cluster",
            "tests/cases/audit-bad-cluster/cluster.yaml",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("tests/cases/audit-bad-cluster/cluster.yaml:11:7: cannot read the cluster snapshot: $.items[1].metadata.labels"),
        "{err}"
    );
    // Malformed JSON from stdin.
    let out = run_cli(
        &["audit", "-p", SEED_POLICY, "--cluster", "-"],
        Some(b"{\"kind\": \"List\",\n \"items\": [}"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("<stdin>:2:"), "{err}");
    // Pods without nodes would judge nothing: refused.
    let out = run_cli(
        &["audit", "-p", SEED_POLICY, "--cluster", "-"],
        Some(b"kind: PodList\nitems:\n  - metadata: {name: p}\n    spec: {nodeName: w1}\n"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("<stdin>:1:1: 1 pod is bound to nodes, but the snapshot holds no Node"),
        "{err}"
    );

    // HTML into a file: nothing on stdout, one self-contained page.
    let dir = root().join("target/cli-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let page = dir.join("audit-incident.html");
    let _ = std::fs::remove_file(&page);
    let out = run_cli(
        &[
            "audit",
            "-p",
            SEED_POLICY,
            "--cluster",
            INCIDENT,
            "--output",
            "html",
            "-o",
            page.to_str().expect("utf-8 path"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let html = std::fs::read_to_string(&page).expect("the page is written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("spire-server-0"));
    assert!(html.contains("kustomize-controller-7b5d9f8c4-x2x9k"));
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains("url("));
}
