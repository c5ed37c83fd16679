//! The CI formats of `apart check` through the built binary: SARIF over the whole policy
//! corpus, judged by Microsoft's SARIF Multitool with GitHub's ingestion rules (`cargo xtask
//! setup` installs it under `target/sarif-node`); JUnit and GitHub workflow commands against
//! golden files (`expected.junit.xml`, `expected.github.txt` in a few case folders), the
//! JUnit also read back by an XML parser.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{assert_no_failures, case_dirs, check_golden, files, root, run_cli};

/// Cases whose JUnit and GitHub outputs are kept as golden files: the seed (with a set-level
/// warning), one with several diagnoses, a mutate rule, one that passes.
const GOLDEN_CASES: &[&str] = &[
    "seed-helmrelease",
    "real-one-diagnosis-per-term",
    "kind-job-mutate",
    "ns-scope-namespaces-list",
    "helmrelease-query-components-map",
];

/// `apart check -o FORMAT` of a case folder's inputs, from the repository root (so paths
/// are relative, as in a CI checkout).
fn check(dir: &Path, format: &str, extra_env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let relative = |p: &Path| {
        p.strip_prefix(root())
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let mut args = vec![
        "check".to_owned(),
        "-p".to_owned(),
        relative(&dir.join("policy.yaml")),
        "-o".to_owned(),
        format.to_owned(),
    ];
    args.extend(files(dir, "input").iter().map(|p| relative(p)));
    let mut command = Command::new(support::apart());
    command.current_dir(root()).args(&args);
    command.env_remove("GITHUB_STEP_SUMMARY");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let out = command.output().expect("apart runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn policy_cases() -> Vec<PathBuf> {
    case_dirs("cases", |p| {
        !files(p, "input").is_empty() && p.join("policy.yaml").is_file()
    })
}

fn multitool() -> PathBuf {
    root().join("target/sarif-node/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool")
}

#[test]
fn sarif_of_the_whole_corpus_passes_the_sarif_multitool_with_github_rules() {
    let tool = multitool();
    assert!(
        tool.is_file(),
        "{} is needed (run `cargo xtask setup`)",
        tool.display()
    );
    let out_dir = root().join("target/sarif-corpus");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("sarif folder");
    let mut results = 0;
    let mut failures = Vec::new();
    for dir in policy_cases() {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (code, sarif) = check(&dir, "sarif", &[]);
        if code == Some(2) {
            // An input error: no SARIF, and the case says so in its expected.json.
            continue;
        }
        let log: Value = match serde_json::from_str(&sarif) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: not JSON: {e}"));
                continue;
            }
        };
        let run = &log["runs"][0];
        for result in run["results"].as_array().into_iter().flatten() {
            results += 1;
            let region = &result["locations"][0]["physicalLocation"]["region"];
            if region["startLine"].as_u64().is_none_or(|l| l == 0) {
                failures.push(format!("{name}: a result without a line: {result}"));
            }
            let rule = result["ruleIndex"].as_u64().and_then(|i| {
                run["tool"]["driver"]["rules"]
                    .get(usize::try_from(i).ok()?)
                    .cloned()
            });
            if rule.is_none_or(|r| r["id"] != result["ruleId"]) {
                failures.push(format!("{name}: ruleIndex does not name ruleId"));
            }
        }
        std::fs::write(out_dir.join(format!("{name}.sarif")), sarif).expect("write");
    }
    assert!(results > 50, "the corpus yields results ({results})");
    let report = root().join("target/sarif-corpus-validation.sarif");
    // The files first: `--log` takes a list and would swallow them.
    let out = Command::new(&tool)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .arg("validate")
        .arg(out_dir.join("*.sarif"))
        .args(["--rule-kind", "Sarif;Gh", "--level", "Error;Warning"])
        .arg("--output")
        .arg(&report)
        .args(["--log", "ForceOverwrite"])
        .output()
        .expect("the SARIF Multitool runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "multitool failed: {text}");
    assert!(
        text.contains("Analysis completed successfully"),
        "multitool: {text}"
    );
    for line in text.lines() {
        if line.contains(": error ") || line.contains(": warning ") {
            failures.push(line.to_owned());
        }
    }
    // The validator's own log: no result at error or warning level.
    let validation: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    for result in validation["runs"][0]["results"]
        .as_array()
        .into_iter()
        .flatten()
    {
        failures.push(format!("validator: {result}"));
    }
    assert_no_failures(&failures);
}

#[test]
fn sarif_fingerprints_ignore_unrelated_edits() {
    let dir = root().join("tests/cases/seed-helmrelease");
    let (_, before) = check(&dir, "sarif", &[]);
    let seed = std::fs::read_to_string(dir.join("input.yaml")).expect("seed");
    let moved = format!("# a comment\n# and another\n{seed}");
    let work = root().join("target/sarif-fingerprint");
    std::fs::create_dir_all(&work).expect("folder");
    std::fs::copy(dir.join("policy.yaml"), work.join("policy.yaml")).expect("policy");
    std::fs::write(work.join("input.yaml"), moved).expect("input");
    let (_, after) = check(&work, "sarif", &[]);
    // The results in the input (the set-level one is in the policy file, which did not move).
    let fingerprints = |text: &str| -> Vec<(Value, Value)> {
        let log: Value = serde_json::from_str(text).expect("json");
        log["runs"][0]["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("input.yaml"))
            })
            .map(|r| {
                (
                    r["partialFingerprints"].clone(),
                    r["locations"][0]["physicalLocation"]["region"]["startLine"].clone(),
                )
            })
            .collect()
    };
    let (before, after) = (fingerprints(&before), fingerprints(&after));
    assert!(!before.is_empty());
    assert_eq!(before.len(), after.len());
    for ((fp_before, line_before), (fp_after, line_after)) in before.iter().zip(&after) {
        assert_eq!(fp_before, fp_after, "same finding, same fingerprint");
        assert_eq!(
            line_after.as_u64(),
            line_before.as_u64().map(|l| l + 2),
            "the region moves with the text"
        );
    }
}

#[test]
fn junit_and_github_outputs_match_their_goldens() {
    let mut failures = Vec::new();
    for name in GOLDEN_CASES {
        let dir = root().join("tests/cases").join(name);
        assert!(dir.is_dir(), "{} exists", dir.display());
        let (code, junit) = check(&dir, "junit", &[]);
        assert!(matches!(code, Some(0 | 1)), "{name}: exit {code:?}");
        // Well-formed, one document: an XML parser reads it whole.
        if let Err(e) = roxmltree::Document::parse(&junit) {
            failures.push(format!("{name}: JUnit is not well-formed XML: {e}"));
        }
        check_golden(&dir.join("expected.junit.xml"), &junit, &mut failures);
        let summary = root().join(format!("target/github-summary-{name}.md"));
        let _ = std::fs::remove_file(&summary);
        let (_, github) = check(&dir, "github", &[("GITHUB_STEP_SUMMARY", &summary)]);
        let markdown = std::fs::read_to_string(&summary).unwrap_or_default();
        let both = format!("{github}--- step summary ---\n{markdown}");
        check_golden(&dir.join("expected.github.txt"), &both, &mut failures);
    }
    assert_no_failures(&failures);
}

#[test]
fn junit_counts_every_subject_and_fails_only_on_errors() {
    let dir = root().join("tests/cases/seed-helmrelease");
    let (code, junit) = check(&dir, "junit", &[]);
    assert_eq!(code, Some(1));
    let doc = roxmltree::Document::parse(&junit).expect("xml");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1, "one suite per policy");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let failing = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .count();
    let attr = |name: &str| {
        suites
            .first()
            .and_then(|s| s.attribute(name))
            .and_then(|v| v.parse::<usize>().ok())
    };
    assert_eq!(attr("tests"), Some(cases.len()));
    assert_eq!(attr("failures"), Some(failing));
    assert!(failing >= 1);
    // The warning-only case of the set (peers-not-found) is not a failure.
    for case in &cases {
        let has_failure = case.children().any(|n| n.has_tag_name("failure"));
        let only_warnings = case.children().any(|n| n.has_tag_name("system-out")) && !has_failure;
        if only_warnings {
            assert!(case.attribute("name").is_some());
        }
        assert!(case.attribute("file").is_some_and(|f| !f.is_empty()));
    }
}

#[test]
fn github_annotations_stop_at_ten_per_level_and_say_how_many_more() {
    // Twelve copies of the seed's subject, each with the namespace-blind term.
    let seed = std::fs::read_to_string(root().join("tests/cases/seed-helmrelease/input.yaml"))
        .expect("seed");
    let mut text = String::new();
    for i in 0..12 {
        text.push_str("---\n");
        // Another namespace each: the rule's value target names the release `cilium`.
        text.push_str(&seed.replacen(
            "  namespace: kube-system\n",
            &format!("  namespace: team-{i}\n"),
            1,
        ));
    }
    let out = run_cli(
        &[
            "check",
            "-p",
            "tests/cases/seed-helmrelease/policy.yaml",
            "-o",
            "github",
            "-",
        ],
        Some(text.as_bytes()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let errors = stdout.lines().filter(|l| l.starts_with("::error ")).count();
    assert_eq!(errors, 10, "{stdout}");
    let notice = stdout
        .lines()
        .find(|l| l.starts_with("::notice "))
        .expect("a notice");
    assert!(notice.contains("2 more errors"), "{notice}");
    assert!(
        stdout.contains("<stdin>:"),
        "the rest are in the log: {stdout}"
    );
}
