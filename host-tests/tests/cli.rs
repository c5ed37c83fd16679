//! The built `apart` binary, driven through arguments, stdin and stdout; exit codes checked.

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::{root, run_cli};

const POLICY: &str = "examples/seed/policy.yaml";
const SEED: &str = "examples/seed/cilium-helmrelease.yaml";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_file(name: &str, content: &[u8]) -> PathBuf {
    let dir = root().join("target/cli-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("temp file");
    path
}

#[test]
fn seed_check_finds_the_namespace_blind_term_in_json() {
    let out = run_cli(&["check", "-p", POLICY, "--output", "json", SEED], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let findings = report["findings"].as_array().expect("findings");
    let blind = findings
        .iter()
        .find(|f| f["code"] == "namespace-blind")
        .expect("a namespace-blind finding");
    assert_eq!(blind["severity"], "error");
    assert_eq!(blind["policy"], "identity-apart-from-gitops");
    assert_eq!(blind["object"]["kind"], "HelmRelease");
    assert_eq!(blind["object"]["namespace"], "kube-system");
    assert_eq!(blind["object"]["name"], "cilium");
    assert_eq!(blind["file"], SEED);
    assert_eq!(blind["line"], 171);
    assert!(
        blind["path"]
            .as_str()
            .unwrap_or_default()
            .ends_with("podAffinityTerm.namespaces")
    );
    assert!(
        blind["message"]
            .as_str()
            .unwrap_or_default()
            .contains("flux-system")
    );
    assert_eq!(report["summary"]["errors"], 1);
    assert_eq!(report["summary"]["objects"], 1);
}

#[test]
fn seed_fix_passes_check_and_is_idempotent() {
    let fixed = run_cli(&["fix", "-p", POLICY, SEED], None);
    assert_eq!(fixed.status.code(), Some(0), "{}", stderr(&fixed));
    let text = stdout(&fixed);
    assert!(text.contains("flux-system"), "{text}");
    assert!(
        text.contains("# spire-server is a single replica"),
        "comments are kept:\n{text}"
    );
    // Check the repaired manifest from stdin.
    let checked = run_cli(
        &["check", "-p", POLICY, "--output", "json", "-"],
        Some(text.as_bytes()),
    );
    let report: Value = serde_json::from_slice(&checked.stdout).expect("JSON output");
    assert_eq!(checked.status.code(), Some(0), "{report:#}");
    assert_eq!(report["summary"]["errors"], 0);
    // Fixing again changes nothing.
    let again = run_cli(&["fix", "-p", POLICY, "-"], Some(text.as_bytes()));
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(stdout(&again), text);
}

#[test]
fn fix_diff_shows_only_the_repair() {
    let out = run_cli(&["fix", "-p", POLICY, "--diff", SEED], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let diff = stdout(&out);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|l| l.starts_with('+')),
        "only additions:\n{diff}"
    );
    assert!(diff.contains("flux-system"));
}

#[test]
fn rendered_manifests_from_a_folder() {
    let out = run_cli(
        &[
            "check",
            "-p",
            POLICY,
            "--output",
            "json",
            "examples/rendered",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["namespace-blind"],
        "flux peers are in the set, so no peers-not-found"
    );
}

#[test]
fn text_output_names_file_line_and_code() {
    let out = run_cli(&["check", "-p", POLICY, SEED], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{SEED}:171: error[namespace-blind]")),
        "{text}"
    );
    assert!(
        text.contains("1 error, 1 warning in 1 object (1 policy)"),
        "{text}"
    );
}

#[test]
fn usage_and_missing_files_exit_2() {
    let out = run_cli(&["check", SEED], None);
    assert_eq!(out.status.code(), Some(2), "no policy is a usage error");
    let out = run_cli(&["check", "-p", POLICY, "does/not/exist.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does/not/exist.yaml"),
        "{}",
        stderr(&out)
    );
    let out = run_cli(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn malformed_input_names_file_and_line() {
    let out = run_cli(
        &["check", "-p", POLICY, "-"],
        Some(b"apiVersion: v1\nkind: Pod\nmetadata: [a, b\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("apart: <stdin>:"), "{err}");
    let out = run_cli(
        &["check", "-p", POLICY, "-"],
        Some(b"{\"apiVersion\": \"v1\",\n \"kind\": }"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<stdin>:2:"), "{}", stderr(&out));
}

#[test]
fn invalid_policy_names_file_line_and_field() {
    let bad = std::fs::read_to_string(root().join(POLICY))
        .expect("policy")
        .replace("weight: 100", "weight: 0");
    let path = temp_file("bad-weight.yaml", bad.as_bytes());
    let path = path.to_string_lossy().into_owned();
    let out = run_cli(&["check", "-p", &path, SEED], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = bad
        .lines()
        .position(|l| l.contains("weight: 0"))
        .map(|i| i + 1)
        .expect("line");
    assert!(
        err.contains(&format!(
            "bad-weight.yaml:{line}: $.spec.weight: weight must be 1 to 100, got 0"
        )),
        "{err}"
    );
}

#[test]
fn huge_and_deep_documents_are_refused_without_a_crash() {
    // A 50 MB document: one object with a huge annotation.
    let mut huge =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: \"");
    huge.push_str(&"x".repeat(50 * 1024 * 1024));
    huge.push_str("\"\n");
    let path = temp_file("huge.yaml", huge.as_bytes());
    let out = run_cli(&["check", "-p", POLICY, &path.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 MiB"), "{}", stderr(&out));
    // 10,000-deep nesting, block and flow YAML, and JSON.
    let mut deep =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n");
    for i in 0..10_000 {
        deep.push_str(&" ".repeat(2 + i));
        deep.push_str("k:\n");
    }
    for (name, text) in [
        ("deep-block.yaml", deep),
        (
            "deep-flow.yaml",
            format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "deep.json",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
    ] {
        let path = temp_file(name, text.as_bytes());
        let out = run_cli(&["check", "-p", POLICY, &path.to_string_lossy()], None);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(name), "{name}: {}", stderr(&out));
    }
}

#[test]
fn objects_that_carry_no_pods_pass() {
    let input = b"apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: x, namespace: kube-system}\nspec:\n  template:\n    metadata: {labels: {app: spire-server}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let out = run_cli(
        &["check", "-p", POLICY, "--output", "json", "-"],
        Some(input),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["summary"]["objects"], 2);
    assert_eq!(report["findings"], serde_json::json!([]));
}
