//! The `apart simulate` conformance corpus: `tests/cases/simulate-*/` folders, each with
//! `cluster.yaml` (or `.json`), `pod.yaml`, optional `policy*.yaml`, optional `args.json`
//! (`{"hardPodAffinityWeight": N, "ignorePreferredTermsOfExistingPods": true}`) and
//! `expected-simulate.json`: the JSON output, or `{"error", "exit"}` for refused input. A case
//! may also hold `expected-simulate.txt`, the text output.
//!
//! Every case runs through the host library, and again through the built binary, whose
//! stdout must equal the golden file byte for byte and whose exit code must match it. The
//! `simulate-spread-*` cases (PodTopologySpread) each hold a `README.md` naming the upstream
//! kube-scheduler test or code they follow and the result derived by hand, which the goldens
//! were reviewed against.
//! `APART_BLESS=1` rewrites the golden files from the library's output, for review.

mod support;

use std::path::{Path, PathBuf};

use apart_host::commands::simulate::{self, SimulateArgs, SimulateFormat};
use serde_json::{Value, json};
use support::{assert_no_failures, case_dirs, check_golden, corpus, files, named, root, run_cli};

fn cases() -> Vec<PathBuf> {
    case_dirs("cases", named("simulate-"))
}

fn file_with(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["yaml", "json"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

/// The case's arguments, with paths relative to the repository root (as the binary sees
/// them when run from there).
fn args(dir: &Path, output: SimulateFormat) -> SimulateArgs {
    let options: Value = std::fs::read_to_string(dir.join("args.json"))
        .map(|t| serde_json::from_str(&t).expect("args.json is JSON"))
        .unwrap_or_else(|_| json!({}));
    let name = dir.file_name().expect("case name");
    let relative = |p: PathBuf| {
        Path::new("tests/cases")
            .join(name)
            .join(p.file_name().expect("file"))
    };
    SimulateArgs {
        cluster: relative(file_with(dir, "cluster").expect("cluster.yaml or cluster.json")),
        pod: relative(file_with(dir, "pod").expect("pod.yaml")),
        output,
        hard_pod_affinity_weight: options["hardPodAffinityWeight"]
            .as_i64()
            .unwrap_or(apart_policy::placement::simulate::DEFAULT_HARD_POD_AFFINITY_WEIGHT),
        ignore_preferred_terms_of_existing_pods: options["ignorePreferredTermsOfExistingPods"]
            .as_bool()
            .unwrap_or(false),
        policies: files(dir, "policy").into_iter().map(relative).collect(),
    }
}

/// The CLI's flags for these arguments.
fn flags(a: &SimulateArgs, output: &str) -> Vec<String> {
    let mut out = vec![
        "simulate".to_owned(),
        "--cluster".to_owned(),
        a.cluster.display().to_string(),
        "--pod".to_owned(),
        a.pod.display().to_string(),
        "--output".to_owned(),
        output.to_owned(),
        "--hard-pod-affinity-weight".to_owned(),
        a.hard_pod_affinity_weight.to_string(),
    ];
    if a.ignore_preferred_terms_of_existing_pods {
        out.push("--ignore-preferred-terms-of-existing-pods".to_owned());
    }
    for p in &a.policies {
        out.push("-p".to_owned());
        out.push(p.display().to_string());
    }
    out
}

/// What the library prints (or the error it refuses the input with), and the exit code.
fn library_run(a: &SimulateArgs) -> (String, u8) {
    let root = root();
    let absolute = |p: &Path| root.join(p);
    let local = SimulateArgs {
        cluster: absolute(&a.cluster),
        pod: absolute(&a.pod),
        output: a.output,
        hard_pod_affinity_weight: a.hard_pod_affinity_weight,
        ignore_preferred_terms_of_existing_pods: a.ignore_preferred_terms_of_existing_pods,
        policies: a.policies.iter().map(|p| absolute(p)).collect(),
    };
    let mut out = Vec::new();
    match simulate::run(&local, &mut out) {
        Ok(code) => (String::from_utf8(out).expect("UTF-8"), code),
        Err(e) => {
            let message = e.to_string().replace(&format!("{}/", root.display()), "");
            let mut text =
                serde_json::to_string_pretty(&json!({"error": message, "exit": e.exit_code()}))
                    .expect("json");
            text.push('\n');
            (text, e.exit_code())
        }
    }
}

#[test]
fn corpus_matches_the_golden_decisions() {
    let dirs = cases();
    let mut failures = Vec::new();
    for dir in &dirs {
        let (json_text, code) = library_run(&args(dir, SimulateFormat::Json));
        check_golden(
            &dir.join("expected-simulate.json"),
            &json_text,
            &mut failures,
        );
        let golden: Value = serde_json::from_str(&json_text).expect("output is JSON");
        let wanted = match golden["exit"].as_u64() {
            Some(exit) => exit,
            None => u64::from(
                golden["feasible_nodes"]
                    .as_array()
                    .is_none_or(Vec::is_empty),
            ),
        };
        if u64::from(code) != wanted {
            failures.push(format!("{}: exit {code}, wanted {wanted}", dir.display()));
        }
        let txt = dir.join("expected-simulate.txt");
        if txt.exists() {
            let (text, _) = library_run(&args(dir, SimulateFormat::Text));
            check_golden(&txt, &text, &mut failures);
        }
    }
    assert_no_failures(&failures);
    assert!(dirs.len() >= 30, "the corpus has only {} cases", dirs.len());
}

/// The built binary prints exactly the golden output and exits as it says.
#[test]
fn binary_agrees_with_the_goldens() {
    let mut failures = Vec::new();
    for dir in cases() {
        let a = args(&dir, SimulateFormat::Json);
        let out = run_cli(&flags(&a, "json"), None);
        let Ok(golden) = std::fs::read_to_string(dir.join("expected-simulate.json")) else {
            failures.push(format!("{}: no golden", dir.display()));
            continue;
        };
        let expected: Value = serde_json::from_str(&golden).expect("golden is JSON");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match expected["error"].as_str() {
            Some(error) => {
                if out.status.code() != Some(2) || !stderr.contains(error) {
                    failures.push(format!(
                        "{}: wanted exit 2 with {error:?}, got {:?}: {stderr}",
                        dir.display(),
                        out.status.code()
                    ));
                }
            }
            None => {
                let wanted = i32::from(
                    expected["feasible_nodes"]
                        .as_array()
                        .is_none_or(Vec::is_empty),
                );
                if out.stdout != golden.as_bytes() || out.status.code() != Some(wanted) {
                    failures.push(format!(
                        "{}: exit {:?} (wanted {wanted}), stdout:\n{}\nstderr: {stderr}",
                        dir.display(),
                        out.status.code(),
                        String::from_utf8_lossy(&out.stdout)
                    ));
                }
            }
        }
        let txt = dir.join("expected-simulate.txt");
        if let Ok(text) = std::fs::read_to_string(&txt) {
            let out = run_cli(&flags(&a, "text"), None);
            if out.stdout != text.as_bytes() {
                failures.push(format!(
                    "{}: text differs:\n{}",
                    txt.display(),
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
    }
    assert_no_failures(&failures);
}

/// Each PodTopologySpread case says where its expectation comes from.
#[test]
fn spread_cases_cite_their_upstream_scenario() {
    let dirs = case_dirs("cases", named("simulate-spread-"));
    let mut failures = Vec::new();
    for dir in &dirs {
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
        if !readme.contains("kubernetes/kubernetes") || !readme.contains("Expected") {
            failures.push(format!(
                "{}: README.md must cite the upstream scenario and give the expected result",
                dir.display()
            ));
        }
    }
    assert_no_failures(&failures);
    assert!(dirs.len() >= 20, "only {} spread cases", dirs.len());
}

/// kube-scheduler accepts hardPodAffinityWeight 0 to 100; so does the command line.
#[test]
fn hard_pod_affinity_weight_out_of_range_is_a_usage_error() {
    let a = args(
        &corpus().join("simulate-anti-affinity-hostname"),
        SimulateFormat::Json,
    );
    for bad in ["101", "-1"] {
        let mut flags = flags(&a, "json");
        let at = flags
            .iter()
            .position(|f| f == "--hard-pod-affinity-weight")
            .expect("flag");
        flags[at + 1] = bad.to_owned();
        let out = run_cli(&flags, None);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(out.stdout.is_empty());
    }
}

/// Both inputs on standard input is a usage error; a pod on standard input works.
#[test]
fn standard_input() {
    let out = run_cli(&["simulate", "--cluster", "-", "--pod", "-"], None);
    assert_eq!(out.status.code(), Some(2));
    let dir = corpus().join("simulate-anti-affinity-hostname");
    let a = args(&dir, SimulateFormat::Json);
    let pod = std::fs::read(root().join(&a.pod)).expect("pod");
    let cluster = a.cluster.to_str().expect("UTF-8 path");
    let out = run_cli(
        &[
            "simulate",
            "--output",
            "json",
            "--pod",
            "-",
            "--cluster",
            cluster,
        ],
        Some(&pod),
    );
    let golden = std::fs::read_to_string(dir.join("expected-simulate.json")).expect("golden");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), golden);
}
