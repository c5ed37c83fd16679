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
        text.contains(&format!("{SEED}:171:25: error[namespace-blind]")),
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

fn temp_dir(name: &str) -> PathBuf {
    let dir = root().join("target/cli-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const RENDERED: &str = "examples/rendered";

#[test]
fn fix_over_several_files_is_one_stream_of_documents() {
    let out = run_cli(&["fix", "-p", POLICY, SEED, RENDERED], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stream = stdout(&out);
    for name in [SEED, "examples/rendered/flux-controllers.yaml"] {
        assert!(
            stream.contains(&format!("# Source: {name}\n")),
            "{name} is introduced:\n{stream}"
        );
    }
    // The stream reads back as every object, repaired: no document runs into the next.
    let again = run_cli(
        &["check", "-p", POLICY, "--output", "json", "-"],
        Some(stream.as_bytes()),
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let report: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    let direct = run_cli(
        &["check", "-p", POLICY, "--output", "json", SEED, RENDERED],
        None,
    );
    let direct: Value = serde_json::from_slice(&direct.stdout).expect("JSON");
    assert_eq!(report["summary"]["objects"], direct["summary"]["objects"]);
    assert_eq!(report["summary"]["errors"], 0);
}

#[test]
fn fix_that_leaves_errors_says_why_on_stderr() {
    let validate_only = std::fs::read_to_string(root().join(POLICY))
        .expect("policy")
        .replace("action: mutate", "action: validate");
    let policy = temp_file("validate-only.yaml", validate_only.as_bytes());
    let out = run_cli(&["fix", "-p", &policy.to_string_lossy(), SEED], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("1 error finding remains that no repair removes")
            && err.contains(&format!("{SEED}:171: error[namespace-blind]")),
        "{err}"
    );
}

#[test]
fn every_json_finding_has_a_line_and_a_column() {
    let out = run_cli(
        &[
            "check",
            "-p",
            POLICY,
            "--output",
            "json",
            SEED,
            RENDERED,
            "tests/cases/input-json-lines/input-spire-server.json",
        ],
        None,
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let findings = report["findings"].as_array().expect("findings");
    assert!(findings.len() >= 3, "{report:#}");
    for f in findings {
        assert!(
            f["line"].as_u64().is_some() && f["column"].as_u64().is_some(),
            "{f:#}"
        );
    }
}

#[test]
fn the_order_of_the_output_does_not_depend_on_the_workers() {
    let dir = temp_dir("many");
    let seed = std::fs::read_to_string(root().join(SEED)).expect("seed");
    for i in 0..40 {
        let text = format!("# copy {i}\n{seed}");
        std::fs::write(dir.join(format!("release-{i:02}.yaml")), text).expect("write");
    }
    let dir = dir.to_string_lossy().into_owned();
    let one = run_cli(&["check", "-p", POLICY, "--jobs", "1", &dir], None);
    let four = run_cli(&["check", "-p", POLICY, "--jobs", "4", &dir], None);
    assert_eq!(one.status.code(), Some(1));
    assert_eq!(stdout(&one), stdout(&four));
    let fixed_one = run_cli(&["fix", "-p", POLICY, "-j", "1", &dir], None);
    let fixed_four = run_cli(&["fix", "-p", POLICY, "-j", "4", &dir], None);
    assert_eq!(stdout(&fixed_one), stdout(&fixed_four));
    assert_eq!(stdout(&fixed_one).matches("# Source: ").count(), 40);
}

#[test]
fn the_compiled_module_is_cached_and_a_damaged_cache_is_not_used() {
    let cache = temp_dir("cache");
    let cache_dir = cache.to_string_lossy().into_owned();
    let run = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_apart"));
        cmd.current_dir(root())
            .env("APART_CACHE_DIR", &cache_dir)
            .args(["check", "-p", POLICY, SEED]);
        cmd.output().expect("runs")
    };
    let first = run();
    assert_eq!(first.status.code(), Some(1));
    let cached: Vec<PathBuf> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one compiled module: {cached:?}");
    let second = run();
    assert_eq!(stdout(&second), stdout(&first));
    // A damaged file is compiled again, not run.
    let path = cached.first().expect("cached");
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    if let Some(b) = bytes.get_mut(middle) {
        *b ^= 0x55;
    }
    std::fs::write(path, &bytes).expect("damage");
    let third = run();
    assert_eq!(stdout(&third), stdout(&first), "{}", stderr(&third));
    assert_ne!(std::fs::read(path).expect("rewritten"), bytes);
}

#[test]
fn inputs_that_must_be_rendered_first_say_what_to_run() {
    let dir = temp_dir("render");
    std::fs::create_dir_all(dir.join("chart/templates")).expect("chart");
    std::fs::write(
        dir.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: x\nversion: 1.0.0\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("chart/templates/a.yaml"),
        "metadata:\n  name: {{ .Release.Name }}\n",
    )
    .expect("write");
    std::fs::create_dir_all(dir.join("base")).expect("base");
    std::fs::write(
        dir.join("base/kustomization.yaml"),
        "resources: [deploy.yaml]\n",
    )
    .expect("write");
    std::fs::copy(root().join(SEED), dir.join("seed.yaml")).expect("copy");
    // Other tools' files beside the manifests: a dashboard, a values file.
    std::fs::create_dir_all(dir.join("dashboards")).expect("dashboards");
    std::fs::write(
        dir.join("dashboards/kafka.json"),
        "{\"title\": \"Kafka\", \"panels\": []}\n",
    )
    .expect("write");
    std::fs::write(dir.join("values.yaml"), "replicaCount: 3\n").expect("write");
    // Named on the command line: an error that says what to run.
    let chart = dir.join("chart").to_string_lossy().into_owned();
    let out = run_cli(&["check", "-p", POLICY, &chart], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("helm template"), "{}", stderr(&out));
    let base = dir.join("base").to_string_lossy().into_owned();
    let out = run_cli(&["check", "-p", POLICY, &base], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("kustomize build"), "{}", stderr(&out));
    // Met while walking a folder: skipped, with a warning; the rest is checked.
    let all = dir.to_string_lossy().into_owned();
    let out = run_cli(&["check", "-p", POLICY, "--output", "json", &all], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: skipped")
            && err.contains("helm template")
            && err.contains("kustomize build"),
        "{err}"
    );
    assert!(
        err.contains("kafka.json:1: skipped: not a Kubernetes object")
            && err.contains("values.yaml:1: skipped: not a Kubernetes object"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["summary"]["objects"], 1);
    // Named on its own, a file that is not a manifest is an error.
    let values = dir.join("values.yaml").to_string_lossy().into_owned();
    let out = run_cli(&["check", "-p", POLICY, &values], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a Kubernetes object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn input_with_no_objects_warns() {
    let out = run_cli(
        &["check", "-p", POLICY, "-"],
        Some(b"# nothing here\n---\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("warning: no Kubernetes objects"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_policy_field_is_reported_on_its_own_line() {
    let text = std::fs::read_to_string(root().join(POLICY))
        .expect("policy")
        .replace("  weight: 100\n", "  weight: 100\n  wieght: 100\n");
    let path = temp_file("unknown-field.yaml", text.as_bytes());
    let out = run_cli(&["check", "-p", &path.to_string_lossy(), SEED], None);
    assert_eq!(out.status.code(), Some(2));
    let line = text
        .lines()
        .position(|l| l.contains("wieght"))
        .map(|i| i + 1)
        .expect("line");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("unknown-field.yaml:{line}:")) && err.contains("wieght"),
        "line {line}: {err}"
    );
}

/// A file far larger than one part of the pipeline: `copies` copies of the rendered
/// spire-server StatefulSet (each one a subject with the namespace-blind term), ConfigMaps
/// between them, the copies named apart. Returns the text and each copy's first line.
fn many_parts(copies: usize) -> (String, Vec<usize>) {
    let statefulset =
        std::fs::read_to_string(root().join("examples/rendered/spire-server-statefulset.yaml"))
            .expect("rendered spire-server");
    let mut text = String::new();
    let mut starts = Vec::new();
    for i in 0..copies {
        for j in 0..20 {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: filler-{i}-{j}\ndata:\n  key: \"{}\"\n",
                "x".repeat(200)
            ));
        }
        text.push_str("---\n");
        starts.push(text.lines().count() + 1);
        text.push_str(
            &statefulset.replace("name: spire-server\n", &format!("name: spire-server-{i}\n")),
        );
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    (text, starts)
}

#[test]
fn a_file_of_many_parts_reads_as_one() {
    let (text, starts) = many_parts(30);
    assert!(text.len() > 4 * 64 * 1024, "the file spans several parts");
    let path = temp_file("many-parts.yaml", text.as_bytes());
    let path = path.to_string_lossy().into_owned();
    let out = run_cli(&["check", "-p", POLICY, "--output", "json", &path], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let findings = json["findings"].as_array().expect("findings");
    let blind: Vec<&Value> = findings
        .iter()
        .filter(|f| f["code"] == "namespace-blind")
        .collect();
    assert_eq!(blind.len(), starts.len());
    // Each finding's line is the same as in the StatefulSet alone, moved by where it starts.
    let alone = run_cli(
        &[
            "check",
            "-p",
            POLICY,
            "--output",
            "json",
            "examples/rendered/spire-server-statefulset.yaml",
        ],
        None,
    );
    let alone: Value = serde_json::from_str(&stdout(&alone)).expect("json");
    let line_alone = alone["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["code"] == "namespace-blind"))
        .and_then(|f| f["line"].as_u64())
        .expect("a namespace-blind finding");
    for (finding, start) in blind.iter().zip(&starts) {
        let start = u64::try_from(*start).expect("line");
        assert_eq!(
            finding["line"].as_u64(),
            Some(start + line_alone - 1),
            "{finding}"
        );
    }
    assert_eq!(json["summary"]["objects"], 30 * 21);
    // Standard input streams the same way.
    let piped = run_cli(
        &["check", "-p", POLICY, "--output", "json", "-"],
        Some(text.as_bytes()),
    );
    let piped: Value = serde_json::from_str(&stdout(&piped)).expect("json");
    assert_eq!(
        piped["findings"].as_array().map(Vec::len),
        Some(findings.len())
    );
    // The repairs land in the right documents of every part, and nothing else changes.
    let fixed = run_cli(&["fix", "-p", POLICY, &path], None);
    let fixed_text = stdout(&fixed);
    let again = temp_file("many-parts-fixed.yaml", fixed_text.as_bytes());
    let again = run_cli(&["check", "-p", POLICY, &again.to_string_lossy()], None);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let removed = similar::TextDiff::from_lines(&text, &fixed_text)
        .iter_all_changes()
        .filter(|c| c.tag() == similar::ChangeTag::Delete)
        .count();
    assert!(
        removed <= 12,
        "only the repaired lines change ({removed} removed)"
    );
}

#[test]
fn errors_late_in_a_large_file_name_their_own_line() {
    let (text, _) = many_parts(30);
    let lines = text.lines().count();
    let tail = "---\napiVersion: v1\nkind: Pod\nmetadata: [a, b\n";
    // Where the reader stops on the broken document alone, moved down by what precedes it.
    let alone = run_cli(&["check", "-p", POLICY, "-"], Some(tail.as_bytes()));
    let alone = stderr(&alone);
    let line_alone: usize = alone
        .strip_prefix("apart: <stdin>:")
        .and_then(|rest| rest.split(':').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("a line in {alone}"));
    let path = temp_file("late-syntax-error.yaml", format!("{text}{tail}").as_bytes());
    let out = run_cli(&["check", "-p", POLICY, &path.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let at = format!("late-syntax-error.yaml:{}:", lines + line_alone);
    assert!(err.contains(&at), "expected {at} in {err}");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(
        b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {key: \"\xff\"}\n",
    );
    let path = temp_file("late-not-utf8.yaml", &bytes);
    let out = run_cli(&["check", "-p", POLICY, &path.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let at = format!("late-not-utf8.yaml:{}:", lines + 5);
    assert!(err.contains(&at), "expected {at} in {err}");
}

#[test]
fn builtin_rule_pack_is_listed_printed_and_checked() {
    let listed = run_cli(&["rules"], None);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let names: Vec<String> = stdout(&listed)
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        [
            "builtin:replicas-apart",
            "builtin:replicas-apart-zones",
            "builtin:replicas-apart-required"
        ]
    );
    // `apart rules NAME` prints the document users copy: the comparison cases run it as is.
    let printed = run_cli(&["rules", "replicas-apart"], None);
    assert_eq!(printed.status.code(), Some(0));
    for case in std::fs::read_dir(root().join("tests/cases")).expect("corpus") {
        let dir = case.expect("entry").path();
        if dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("compare-"))
        {
            let policy = std::fs::read_to_string(dir.join("policy.yaml")).expect("policy");
            assert_eq!(
                policy,
                stdout(&printed),
                "{} is builtin:replicas-apart",
                dir.display()
            );
        }
    }
    let checked = run_cli(
        &[
            "check",
            "-p",
            "builtin:replicas-apart",
            "--output",
            "json",
            "tests/cases/self-missing/input.yaml",
        ],
        None,
    );
    assert_eq!(checked.status.code(), Some(1), "{}", stderr(&checked));
    let json: serde_json::Value = serde_json::from_str(&stdout(&checked)).expect("json");
    assert_eq!(json["findings"][0]["code"], "missing-anti-affinity");
    assert_eq!(json["findings"][0]["policy"], "replicas-apart");
    let unknown = run_cli(&["check", "-p", "builtin:nope", "-"], Some(b""));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("apart rules lists them"),
        "{}",
        stderr(&unknown)
    );
}
