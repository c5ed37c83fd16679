//! The context-aware mode: running Pods checked for co-located peers through Kubewarden's
//! `kubernetes` host capabilities, answered from recorded interactions the way
//! `kwctl run --replay-host-capabilities-interactions` answers them.
//!
//! `tests/context-aware/<name>/` holds `request.json` (an AdmissionReview as the API server or
//! the audit scanner sends it), `settings.json`, `replay.yaml` (the recorded interactions, in
//! kwctl's session format) and `expected.json`: the AdmissionResponse policy-server would
//! return, and every host call the module made, in order. Each case runs through the built
//! module on wasmtime and natively (the guest's functions with the same recorded host), and
//! both must agree exactly. Every recorded interaction must be asked for, so a fixture cannot
//! carry answers the module no longer needs. `APART_BLESS=1` rewrites the golden files, for
//! review.

mod support;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use apart_host::commands::run;
use apart_host::host::evaluator::{EvalError, Evaluator, Native};
use apart_host::host::replay::{HostCall, Replay, ReplayHost};
use apart_host::host::wapc::PolicyModule;
use apart_host::ship::kubewarden;
use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use serde_json::{Value, json};
use support::{
    assert_no_failures, built_module, built_module_path, case_dirs, check_json_golden, read_json,
    root, run_cli,
};

/// The recorded cases, `tests/context-aware/<name>/`.
fn cases() -> Vec<PathBuf> {
    case_dirs("context-aware", |p| p.join("request.json").is_file())
}

/// The built module, recording the host calls of each `validate`.
struct Traced<'a> {
    module: &'a PolicyModule,
    calls: RefCell<Vec<HostCall>>,
}

impl Evaluator for Traced<'_> {
    fn validate_settings(&self, settings: &[u8]) -> Result<SettingsValidationResponse, EvalError> {
        self.module.validate_settings(settings)
    }

    fn validate(&self, request: &[u8]) -> Result<ValidationResponse, EvalError> {
        let (bytes, calls) = self.module.call_traced("validate", request)?;
        self.calls.borrow_mut().extend(calls);
        serde_json::from_slice(&bytes).map_err(|e| EvalError::Answer {
            operation: "validate".to_owned(),
            message: e.to_string(),
        })
    }
}

/// The guest's functions compiled for the host, meeting the same recorded host.
struct NativeReplay<'a> {
    replay: &'a Replay,
    calls: RefCell<Vec<HostCall>>,
}

impl Evaluator for NativeReplay<'_> {
    fn validate_settings(&self, settings: &[u8]) -> Result<SettingsValidationResponse, EvalError> {
        Native.validate_settings(settings)
    }

    fn validate(&self, request: &[u8]) -> Result<ValidationResponse, EvalError> {
        let mut host = ReplayHost::new(self.replay);
        let response = apart_wasm::validate_payload_with(request, &mut host);
        self.calls.borrow_mut().extend(host.calls);
        // Through its JSON, as the module answers: the SDK's type reads it.
        let json = serde_json::to_vec(&response).expect("the response encodes");
        Ok(serde_json::from_slice(&json).expect("the SDK reads the response"))
    }
}

/// One case through one evaluator: the golden document.
fn golden(evaluator: &dyn Evaluator, calls: &RefCell<Vec<HostCall>>, dir: &Path) -> Value {
    let request = run::admission_request(read_json(&dir.join("request.json"))).expect("request");
    let settings = read_json(&dir.join("settings.json"));
    let response = run::run(evaluator, &request, &settings).expect("evaluates");
    json!({"response": response, "hostCalls": calls.take()})
}

#[test]
fn running_pods_are_checked_through_recorded_host_capabilities() {
    let mut module = PolicyModule::new(&built_module()).expect("the module compiles");
    let mut failures = Vec::new();
    let dirs = cases();
    for dir in &dirs {
        let replay = Replay::read(&dir.join("replay.yaml")).expect("the replay file reads");
        module = module.with_replay(replay.clone());
        let wasm = Traced {
            module: &module,
            calls: RefCell::default(),
        };
        let actual = golden(&wasm, &wasm.calls, dir);
        let native = NativeReplay {
            replay: &replay,
            calls: RefCell::default(),
        };
        let natively = golden(&native, &native.calls, dir);
        if natively != actual {
            failures.push(format!(
                "{}: native and wasm disagree:\nnative: {natively:#}\nwasm: {actual:#}",
                dir.display()
            ));
            continue;
        }
        // Every recorded interaction is asked for: none is dead weight.
        let asked: BTreeSet<String> = actual["hostCalls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["answered"] == true)
            .map(|c| format!("{}{}", c["call"], c["request"]))
            .collect();
        if asked.len() != replay.len() {
            failures.push(format!(
                "{}: {} interactions recorded, {} asked for",
                dir.display(),
                replay.len(),
                asked.len()
            ));
        }
        check_json_golden(&dir.join("expected.json"), &actual, &mut failures);
    }
    assert!(dirs.len() >= 5, "only {} context-aware cases", dirs.len());
    assert_no_failures(&failures);
}

#[test]
fn without_recorded_interactions_the_module_refuses_nothing_but_warns() {
    // The plain host (no replay) answers every capability with an error, as a policy-server
    // that does not grant it: the incident pod is then judged by its manifest only.
    let module = PolicyModule::new(&built_module()).expect("the module compiles");
    let dir = root().join("tests/context-aware/incident");
    let traced = Traced {
        module: &module,
        calls: RefCell::default(),
    };
    let golden = golden(&traced, &traced.calls, &dir);
    let warnings = golden["response"]["warnings"].to_string();
    assert!(
        warnings.contains("needs contextAwareResources v1 Pod, v1 Node and v1 Namespace")
            && warnings.contains("is not available in apart's host"),
        "{warnings}"
    );
    let findings =
        &golden["response"]["auditAnnotations"][apart_policy::admission::FINDINGS_ANNOTATION];
    assert!(!findings.to_string().contains("co-located"), "{findings}");
    assert_eq!(golden["hostCalls"].as_array().map(Vec::len), Some(1));
}

#[test]
fn apart_run_replays_host_capability_interactions() {
    let case = root().join("tests/context-aware/incident");
    let request = case.join("request.json");
    let module = built_module_path();
    let out = run_cli(
        &[
            Path::new("run"),
            Path::new("-r"),
            &request,
            Path::new("--settings"),
            &case.join("settings.json"),
            Path::new("--replay-host-capabilities-interactions"),
            &case.join("replay.yaml"),
            &module,
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed, read_json(&case.join("expected.json"))["response"]);
    assert_eq!(printed["allowed"], false);
    // A session that is not one is a usage error with its position.
    let dir = std::env::temp_dir().join(format!("apart-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("session.yaml");
    std::fs::write(
        &bad,
        "- type: Exchange\n  request: |\n    !DNSLookupHost\n    host: example.com\n  response: {type: Error, message: no}\n",
    )
    .expect("write");
    let out = run_cli(
        &[
            Path::new("run"),
            Path::new("-r"),
            &request,
            Path::new("--replay-host-capabilities-interactions"),
            &bad,
            &module,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("session.yaml:2:3:")
            && stderr.contains("request type DNSLookupHost is not replayed by apart"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_metadata_grants_every_resource_the_module_asks_for() {
    let mut asked = BTreeSet::new();
    for dir in cases() {
        let expected = read_json(&dir.join("expected.json"));
        for call in expected["hostCalls"].as_array().into_iter().flatten() {
            let request = &call["request"];
            asked.insert(format!(
                "{}/{}",
                request["api_version"].as_str().unwrap_or_default(),
                request["kind"].as_str().unwrap_or_default()
            ));
        }
    }
    assert!(
        asked.contains("v1/Namespace"),
        "a case lists namespaces: {asked:?}"
    );
    let policies =
        apart_host::commands::check::read_policies(&[root().join("examples/seed/policy.yaml")])
            .expect("the seed policy reads");
    let granted: BTreeSet<String> = kubewarden::metadata_for(&policies.set)
        .context_aware_resources
        .iter()
        .map(|r| format!("{}/{}", r.api_version, r.kind))
        .collect();
    assert_eq!(granted, asked, "apart build's metadata");
    // The module's own metadata (for `kwctl annotate`) says the same.
    let text = std::fs::read_to_string(root().join("wasm/metadata.yml")).expect("metadata.yml");
    let doc = apart_policy::source::read::parse_documents(&text).expect("YAML");
    let listed: BTreeSet<String> = doc[0].value["contextAwareResources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                r["apiVersion"].as_str().unwrap_or_default(),
                r["kind"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(listed, asked, "wasm/metadata.yml");
}
