//! The module driven as Kubewarden's policy-server drives it, over AdmissionReview fixtures.
//!
//! `tests/admission/<name>/` holds `request.json` (an AdmissionReview as the API server sends
//! it), optional `settings.json`, a `README.md` saying what the case is and what it must get,
//! and `expected.json`: the AdmissionResponse policy-server would return, with its JSONPatch
//! decoded (or, when `validate_settings` refuses the settings, its answer). The module is the
//! built one with the seed policy baked in by `apart build`'s code, deployed with `settings:
//! {}` unless the case gives settings. Every case also runs natively (the guest's functions
//! compiled for the host, given the seed policy as settings), and both answers must be the
//! same. Every patch must apply cleanly to `request.object`, and the patched object must then
//! be admitted untouched. `APART_BLESS=1` rewrites the golden files, for review.

mod support;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use apart_host::commands::check::{self, Policies};
use apart_host::commands::run::{self, RunError};
use apart_host::host::evaluator::{Evaluator, Native};
use apart_host::host::wapc::{CallError, PolicyModule};
use apart_host::ship::kubewarden::{self, Mode};
use apart_host::ship::preinit;
use serde_json::{Value, json};
use support::{
    apart, assert_no_failures, built_module, case_dirs, check_json_golden, read_json, root,
    run_program,
};

fn seed() -> &'static Policies {
    static SEED: OnceLock<Policies> = OnceLock::new();
    SEED.get_or_init(|| {
        check::read_policies(&[root().join("examples/seed/policy.yaml")])
            .expect("the seed policy reads")
    })
}

/// The built module with the seed policy baked in, as `apart build` ships it (pre-initialised).
fn baked() -> &'static [u8] {
    static BAKED: OnceLock<Vec<u8>> = OnceLock::new();
    BAKED.get_or_init(|| {
        kubewarden::build_for(&built_module(), &seed().set, Mode::KubewardenWapc).expect("builds")
    })
}

fn module() -> &'static PolicyModule {
    static MODULE: OnceLock<PolicyModule> = OnceLock::new();
    MODULE.get_or_init(|| PolicyModule::new(baked()).expect("the baked module compiles"))
}

/// One case through one evaluator with its settings: the golden document, checking the
/// patch on the way.
fn answer(
    evaluator: &dyn Evaluator,
    dir: &Path,
    request: &Value,
    settings: &Value,
    failures: &mut Vec<String>,
) -> Value {
    let response = match run::run(evaluator, request, settings) {
        Ok(r) => r,
        Err(RunError::Settings(message)) => {
            return json!({"settings": {"valid": false, "message": message}});
        }
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let patch = response.json_patch();
    if let Some(patch) = &patch {
        let mut object = request["object"].clone();
        match json_patch::patch(&mut object, patch) {
            Err(e) => failures.push(format!("{}: the patch does not apply: {e}", dir.display())),
            Ok(()) => {
                // The API server admits the patched object; evaluated again, it is clean.
                let mut again = request.clone();
                again["object"] = object;
                let second = run::run(evaluator, &again, settings).expect("evaluates");
                if !second.allowed || second.patch.is_some() {
                    failures.push(format!(
                        "{}: the patched object is not admitted untouched: {second:?}",
                        dir.display()
                    ));
                }
            }
        }
    }
    let mut golden = serde_json::to_value(&response).expect("serializes");
    if let Some(patch) = patch {
        golden["patch"] = json!({"decoded": patch});
    }
    golden
}

/// Runs one case through the baked module and natively; returns the golden document.
fn evaluate(dir: &Path, failures: &mut Vec<String>) -> Value {
    let review = read_json(&dir.join("request.json"));
    let request = run::admission_request(review).expect("an AdmissionReview");
    let settings_path = dir.join("settings.json");
    let given = settings_path.is_file().then(|| read_json(&settings_path));
    // The module enforces its baked policies with empty settings; natively nothing is baked,
    // so the same policies are given as settings.
    let wasm = answer(
        module(),
        dir,
        &request,
        given.as_ref().unwrap_or(&json!({})),
        failures,
    );
    let seed_settings = seed().set.settings();
    let native = answer(
        &Native,
        dir,
        &request,
        given.as_ref().unwrap_or(&seed_settings),
        failures,
    );
    if native != wasm {
        failures.push(format!(
            "{}: native and wasm disagree:\nnative: {native:#}\nwasm: {wasm:#}",
            dir.display()
        ));
    }
    wasm
}

#[test]
fn admission_reviews_answer_as_policy_server_would() {
    let mut failures = Vec::new();
    let dirs = case_dirs("admission", |p| p.join("request.json").is_file());
    for dir in &dirs {
        if !dir.join("README.md").is_file() {
            failures.push(format!(
                "{}: no README.md says what the case is",
                dir.display()
            ));
        }
        let actual = evaluate(dir, &mut failures);
        check_json_golden(&dir.join("expected.json"), &actual, &mut failures);
    }
    assert!(dirs.len() >= 26, "only {} admission cases", dirs.len());
    assert_no_failures(&failures);
}

#[test]
fn the_baked_module_is_annotated_and_enforces_its_policies_with_empty_settings() {
    let module = module();
    assert_eq!(
        module.call("protocol_version", b"").expect("answers"),
        br#""v1""#.to_vec()
    );
    let empty = module.validate_settings(b"{}").expect("answers");
    assert!(empty.valid, "{:?}", empty.message);
    // Settings with policies replace the baked ones, and are checked.
    let bad = module
        .validate_settings(br#"{"policies": [{"apiVersion": "apart.dev/v1alpha1"}]}"#)
        .expect("answers");
    assert!(!bad.valid);
    let metadata = kubewarden::metadata(baked())
        .expect("reads")
        .expect("annotated");
    assert_eq!(metadata.protocol_version, "v1");
    assert_eq!(metadata.execution_mode, "kubewarden-wapc");
    assert!(metadata.mutating, "the seed policy mutates");
    let resources: Vec<&str> = metadata
        .rules
        .iter()
        .flat_map(|r| r.resources.iter().map(String::as_str))
        .collect();
    for r in ["statefulsets", "deployments", "cronjobs", "helmreleases"] {
        assert!(resources.contains(&r), "no rule for {r}: {resources:?}");
    }
    let baked_settings = kubewarden::baked_settings(baked())
        .expect("reads")
        .expect("baked");
    assert_eq!(
        baked_settings["policies"][0]["metadata"]["name"],
        "identity-apart-from-gitops"
    );
    // The plain module carries no policies and refuses empty settings.
    let plain = PolicyModule::new(&built_module()).expect("compiles");
    assert!(!plain.validate_settings(b"{}").expect("answers").valid);
}

#[test]
fn the_built_module_is_pre_initialised_answers_as_the_baked_one_and_cannot_be_baked_again() {
    let baked_only = kubewarden::bake(&built_module(), &seed().set).expect("bakes");
    assert!(preinit::can_preinitialize(&baked_only));
    assert!(!kubewarden::is_preinitialized(&baked_only).expect("reads"));
    assert!(kubewarden::is_preinitialized(baked()).expect("reads"));
    assert!(
        !preinit::can_preinitialize(baked()),
        "Wizer removes the export it ran"
    );
    // Same answers, with empty settings and with settings that replace the baked policies.
    let baked_module = PolicyModule::new(&baked_only).expect("compiles");
    let review = read_json(&root().join("tests/admission/create-helmrelease-mutated/request.json"));
    let request = &review["request"];
    for settings in [json!({}), json!(null), json!({"policies": []})] {
        let ours = run::run(module(), request, &settings).expect("evaluates");
        let theirs = run::run(&baked_module, request, &settings).expect("evaluates");
        assert_eq!(ours, theirs, "settings {settings}");
        assert!(
            ours.patch.is_some(),
            "the seed policy repairs the release: {ours:?}"
        );
    }
    let err = kubewarden::bake(baked(), &seed().set).expect_err("refused");
    assert!(
        matches!(err, kubewarden::PackageError::AlreadyPreinitialized),
        "{err}"
    );
    assert!(err.to_string().contains("omit --module"), "{err}");
}

#[test]
fn an_evaluation_past_its_deadline_is_interrupted_and_the_next_one_is_fresh() {
    // The deadline must leave a small evaluation (instantiation, baked settings) ample time,
    // whatever moment the epoch ticks: 100 ms is ten ticks.
    let module =
        PolicyModule::with_deadline(baked(), Duration::from_millis(100)).expect("compiles");
    // Millions of small JSON values: the guest must walk every one of them (even skipping a
    // value is a parse), which takes well over the deadline in wasm.
    let mut items = String::with_capacity(48 << 20);
    items.push('[');
    for i in 0..6_000_000 {
        if i > 0 {
            items.push(',');
        }
        items.push_str(r#"{"a":[1]}"#);
    }
    items.push(']');
    let request = format!(
        r#"{{"request": {{"uid": "u", "operation": "CREATE", "namespace": "kube-system",
            "kind": {{"group": "", "version": "v1", "kind": "ConfigMap"}},
            "object": {{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "big"}}, "spec": {{"items": {items}}}}}}},
            "settings": {{}}}}"#
    );
    match module.call("validate", request.as_bytes()) {
        Err(e @ CallError::Deadline { .. }) => {
            // Said as what it is, with what to do, not as a crash with a wasm backtrace.
            let message = e.to_string();
            assert!(
                message.starts_with("the module hit its 0.1 s deadline in validate and was interrupted: evaluating the request")
                    && message.contains("MB of input")
                    && message.contains("timeoutEvalSeconds")
                    && !message.contains("backtrace"),
                "{message}"
            );
        }
        other => panic!("expected the deadline to interrupt the evaluation, got {other:?}"),
    }
    // Settings too large to compile within the deadline say so too, naming the operation.
    let document = seed().set.settings()["policies"][0].clone();
    let policies: Vec<Value> = (0..20_000)
        .map(|i| {
            let mut p = document.clone();
            p["metadata"]["name"] = json!(format!("policy-{i}"));
            p
        })
        .collect();
    let settings = json!({ "policies": policies }).to_string();
    match module.call("validate_settings", settings.as_bytes()) {
        Err(e @ CallError::Deadline { .. }) => assert!(
            e.to_string().starts_with(
                "the module hit its 0.1 s deadline in validate_settings and was interrupted: compiling the settings ("
            ) && e.to_string().contains("split the policies"),
            "{e}"
        ),
        other => panic!("expected the deadline to interrupt validate_settings, got {other:?}"),
    }
    // A fresh instance per evaluation: the interrupted one leaves nothing behind.
    let small = json!({"request": {"uid": "v", "operation": "DELETE"}, "settings": {}});
    let answer = module
        .validate(small.to_string().as_bytes())
        .expect("answers");
    assert!(answer.accepted);
}

#[test]
fn an_evaluation_past_its_memory_limit_says_so_and_the_next_one_is_fresh() {
    let module = PolicyModule::new(baked())
        .expect("compiles")
        .with_memory_limit(32 << 20);
    // The guest copies the 48 MB payload into its memory first: more than it may have.
    let request = json!({"request": {"uid": "u", "operation": "CREATE", "namespace": "kube-system",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
            "data": {"blob": "x".repeat(48 << 20)}}}, "settings": {}});
    match module.call("validate", request.to_string().as_bytes()) {
        Err(e @ CallError::MemoryLimit { .. }) => {
            let message = e.to_string();
            assert!(
                message.starts_with("the module hit its 32.0 MB memory limit in validate and stopped: evaluating the request")
                    && message.contains("48.0 MB of input")
                    && !message.contains("backtrace"),
                "{message}"
            );
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    let small = json!({"request": {"uid": "v", "operation": "DELETE"}, "settings": {}});
    assert!(
        module
            .validate(small.to_string().as_bytes())
            .expect("answers")
            .accepted
    );
}

#[test]
fn apart_run_prints_the_admission_response() {
    let apart = apart();
    let dir = std::env::temp_dir().join(format!("apart-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let wasm = dir.join("seed.wasm");
    std::fs::write(&wasm, baked()).expect("write module");
    let case = root().join("tests/admission/create-helmrelease-mutated");
    let request = case.join("request.json");
    let out = run_program(
        &apart,
        &[Path::new("run"), Path::new("-r"), &request, &wasm],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let mut expected = read_json(&case.join("expected.json"));
    // The golden shows the patch decoded; the CLI prints it as the API server receives it.
    expected["patch"] = printed["patch"].clone();
    assert_eq!(printed, expected);
    assert_eq!(printed["patchType"], "JSONPatch");
    // A request file that is not an AdmissionReview is a usage error.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, br#"{"kind": "Pod"}"#).expect("write");
    let out = run_program(
        &apart,
        &[Path::new("run"), Path::new("-r"), &bad, &wasm],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AdmissionReview"));
    let _ = std::fs::remove_dir_all(&dir);
}
