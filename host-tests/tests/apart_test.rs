//! `apart test`: the built CLI on the suites under `tests/suites/` (one folder per behaviour)
//! and on the repository's own example suite, exit codes and reports checked.

mod support;

use std::process::Output;

use support::run_cli;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `apart test` on the arguments; returns the exit code and stdout.
fn apart_test(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["test"];
    all.extend_from_slice(args);
    let out = run_cli(&all, None);
    assert!(
        out.status.code() != Some(101),
        "apart panicked: {}",
        stderr(&out)
    );
    (out.status.code(), stdout(&out))
}

#[test]
fn the_seed_example_suite_passes() {
    let (code, text) = apart_test(&["examples/seed"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("PASS suite seed (examples/seed/apart-test.yaml): 3 of 3 cases passed"),
        "{text}"
    );
    assert!(
        text.contains(
            "PASS HelmRelease kube-system/cilium under identity-apart-from-gitops: fail [namespace-blind], fixed"
        ),
        "{text}"
    );
    // The Flux controllers are in the set, so the peers are found: no peers-not-found note.
    assert!(!text.contains("peers-not-found"), "{text}");
    assert!(
        text.ends_with("1 suite: 1 passed, 0 failed; 3 cases: 3 passed, 0 failed\n"),
        "{text}"
    );
}

#[test]
fn a_passing_suite_covers_fail_pass_skip_codes_and_the_repair() {
    let (code, text) = apart_test(&["tests/suites/pass"]);
    assert_eq!(code, Some(0), "{text}");
    for line in [
        "  PASS Deployment default/db under db-apart-from-web: fail [missing-anti-affinity], fixed\n",
        "  PASS StatefulSet default/db-replica under db-apart-from-web: pass []\n",
        "  PASS Deployment default/web under db-apart-from-web: skip\n",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    // A suite named by its file runs the same.
    let (code, again) = apart_test(&["tests/suites/pass/apart-test.yaml"]);
    assert_eq!((code, again), (Some(0), text));
}

#[test]
fn mismatches_fail_with_expected_against_actual() {
    let (code, text) = apart_test(&["tests/suites/mismatch"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "FAIL suite mismatch (tests/suites/mismatch/apart-test.yaml): 1 of 5 cases passed"
        ),
        "{text}"
    );
    // A wrong result, with the findings that make it.
    assert!(
        text.contains("  FAIL Deployment default/db under db-apart-from-web: pass (line 10)\n    result: expected pass, got fail\n    findings:\n      tests/suites/pass/manifests.yaml:31:7: error[missing-anti-affinity] "),
        "{text}"
    );
    // Wrong codes: both sets, and what is missing.
    assert!(
        text.contains("    codes: expected [too-weak], got []\n      - missing:    [too-weak]\n"),
        "{text}"
    );
    // A stale repair: a unified diff from the expected file to what apart fix prints.
    assert!(
        text.contains(
            "    fixed: apart fix prints something else than tests/suites/mismatch/db.fixed.yaml:\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("      --- tests/suites/mismatch/db.fixed.yaml (expected)\n      +++ apart fix (actual)\n"),
        "{text}"
    );
    assert!(
        text.contains("      -            - weight: 50\n      +            - weight: 100\n"),
        "{text}"
    );
    // `pass` is not what a rule says of an object it does not judge.
    assert!(
        text.contains(
            "    result: expected pass, got skip (the object is not a subject of the policy"
        ),
        "{text}"
    );
    // The one right expectation still passes.
    assert!(
        text.contains(
            "  PASS Deployment default/db under db-apart-from-web: fail [missing-anti-affinity]\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("1 suite: 0 passed, 1 failed; 5 cases: 1 passed, 4 failed\n"),
        "{text}"
    );
}

#[test]
fn a_suite_whose_policies_judge_no_object_is_invalid() {
    let (code, text) = apart_test(&["tests/suites/silent-pass"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("INVALID suite silent-pass (tests/suites/silent-pass/apart-test.yaml)\n"),
        "{text}"
    );
    assert!(
        text.contains("  tests/suites/silent-pass/apart-test.yaml:7:1: $.manifests: none of the 3 object(s) in the manifests is a subject of the suite's policies (db-apart-from-web)"),
        "{text}"
    );
    assert!(!text.contains("PASS"), "{text}");
}

#[test]
fn expectations_naming_what_the_suite_does_not_hold_are_invalid() {
    let (code, text) = apart_test(&["tests/suites/missing-object"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tests/suites/missing-object/apart-test.yaml:14:5: $.results[1].object: no Deployment default/dbx in the manifests (objects that name no namespace are in default); they hold: Deployment default/web, Deployment default/db, StatefulSet default/db-replica"),
        "{text}"
    );
    assert!(
        text.contains("tests/suites/missing-object/apart-test.yaml:16:5: $.results[2].policy: no policy named \"db-apart-from-cache\" is loaded by this suite; its policies are: db-apart-from-web"),
        "{text}"
    );
    // No case is reported as passing when the suite is invalid.
    assert!(!text.contains("PASS"), "{text}");
}

#[test]
fn an_unknown_field_is_invalid_at_its_line() {
    let (code, text) = apart_test(&["tests/suites/bad-field"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("  tests/suites/bad-field/apart-test.yaml:12:5: $.results[0].code: unknown field `code`, expected one of `policy`, `object`, `result`, `codes`, `fixed`\n"),
        "{text}"
    );
}

#[test]
fn a_policy_that_does_not_load_shows_the_engines_error() {
    let (code, text) = apart_test(&["tests/suites/policy-error"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("  tests/suites/policy-error/apart-test.yaml:8:5: $.policies[1]: the policy file does not load: tests/suites/policy-error/policy.yaml:14: $.spec.weight: weight must be 1 to 100, got 500\n"),
        "{text}"
    );
}

#[test]
fn a_suite_names_the_shipped_rule_pack_as_dash_p_does() {
    let (code, text) = apart_test(&["tests/suites/builtin"]);
    assert_eq!(code, Some(0), "{text}");
    for line in [
        "  PASS Deployment default/web under replicas-apart: fail [missing-anti-affinity]\n",
        // A spread constraint keeps the replicas apart; one replica has nothing to spread.
        "  PASS Deployment default/cache under replicas-apart: pass []\n",
        "  PASS Deployment default/admin under replicas-apart: pass []\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    // An unknown name makes the suite invalid, at its line, with the names there are.
    let dir = support::root().join("target/cli-tests/apart-test-builtin-unknown");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let suite =
        std::fs::read_to_string(support::root().join("tests/suites/builtin/apart-test.yaml"))
            .expect("read")
            .replace(
                "builtin:replicas-apart]",
                "builtin:replicas-apart-everywhere]",
            )
            .replace(
                "[manifests.yaml]",
                &format!(
                    "[{}]",
                    support::root()
                        .join("tests/suites/builtin/manifests.yaml")
                        .display()
                ),
            );
    std::fs::write(dir.join("apart-test.yaml"), suite).expect("write");
    let (code, text) = apart_test(&[&dir.display().to_string()]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(":6:12: $.policies[0]: no built-in rule file named \"replicas-apart-everywhere\": the built-in ones are replicas-apart, replicas-apart-zones, replicas-apart-required"),
        "{text}"
    );
}

#[test]
fn a_folder_runs_every_suite_below_it_and_the_worst_decides() {
    let (code, text) = apart_test(&["tests/suites"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.ends_with("7 suites: 2 passed, 1 failed, 4 invalid; 11 cases: 7 passed, 4 failed\n"),
        "{text}"
    );
}

#[test]
fn a_folder_without_suites_is_a_usage_error() {
    let out = run_cli(&["test", "examples/rendered"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("examples/rendered: no apart-test.yaml in this folder or below it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn folders_skip_hidden_ones_and_a_suite_sets_the_default_namespace() {
    let dir = support::root().join("target/cli-tests/apart-test-walk");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".git")).expect("temp dir");
    std::fs::create_dir_all(dir.join("visible")).expect("temp dir");
    // Read, it would make the run invalid.
    std::fs::write(dir.join(".git/apart-test.yaml"), "not: a suite\n").expect("write");
    let pass = support::root().join("tests/suites/pass");
    let suite = format!(
        "apiVersion: apart.dev/v1alpha1\nkind: Test\nmetadata: {{name: prod}}\npolicies: [{}]\nmanifests: [{}]\ndefaultNamespace: prod\nresults:\n  - policy: db-apart-from-web\n    object: {{kind: Deployment, name: db}}\n    result: fail\n  - policy: db-apart-from-web\n    object: {{kind: Deployment, namespace: prod, name: db}}\n    result: fail\n  - policy: db-apart-from-web\n    object: {{kind: StatefulSet, namespace: default, name: db-replica}}\n    result: pass\n",
        pass.join("policy.yaml").display(),
        pass.join("manifests.yaml").display(),
    );
    std::fs::write(dir.join("visible/apart-test.yaml"), suite).expect("write");
    let shown = dir.display().to_string();
    let (code, text) = apart_test(&[&shown]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(".git"), "{text}");
    // Objects that name no namespace are in the suite's default namespace.
    assert!(
        text.contains("  PASS Deployment prod/db under db-apart-from-web: fail\n"),
        "{text}"
    );
    assert!(
        text.ends_with("1 suite: 1 passed, 0 failed; 3 cases: 3 passed, 0 failed\n"),
        "{text}"
    );
    // The same expectation no longer finds the object once it is said to be in `default`.
    let moved = std::fs::read_to_string(dir.join("visible/apart-test.yaml"))
        .expect("read")
        .replace("namespace: prod, name: db", "namespace: default, name: db");
    std::fs::write(dir.join("visible/apart-test.yaml"), moved).expect("write");
    let (code, text) = apart_test(&[&shown]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("$.results[1].object: no Deployment default/db in the manifests (objects that name no namespace are in prod)"),
        "{text}"
    );
}

#[test]
fn junit_reports_every_case_failures_and_invalid_suites() {
    let (code, xml) = apart_test(&["tests/suites", "--output", "junit"]);
    assert_eq!(code, Some(2), "an invalid suite decides");
    let doc = roxmltree::Document::parse(&xml).expect("one well-formed XML document");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let count = |node: roxmltree::Node<'_, '_>, tag: &str| {
        node.descendants().filter(|n| n.has_tag_name(tag)).count()
    };
    let attr = |name: &str| root.attribute(name).and_then(|v| v.parse::<usize>().ok());
    assert_eq!(attr("tests"), Some(count(root, "testcase")));
    assert_eq!(attr("failures"), Some(count(root, "failure")));
    assert_eq!(attr("errors"), Some(count(root, "error")));
    // The same cases as the text report: one per expectation, and the mismatch suite fails.
    let (_, text) = apart_test(&["tests/suites"]);
    let cases_in_text = text
        .lines()
        .filter(|l| l.starts_with("  PASS ") || l.starts_with("  FAIL "))
        .count();
    assert_eq!(
        count(root, "testcase") - count(root, "error"),
        cases_in_text
    );
    let mismatch = root
        .children()
        .find(|n| n.attribute("name") == Some("mismatch"))
        .expect("the mismatch suite");
    assert!(count(mismatch, "failure") >= 1);
}
