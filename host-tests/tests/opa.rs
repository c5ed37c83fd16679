//! The OPA-ABI module (`apart-opa`) under a Rust OPA-Wasm host, against the waPC module.
//!
//! The host here is written from OPA's Wasm ABI documentation and does what the OPA SDKs do
//! (`@open-policy-agent/opa-wasm`, kubewarden's burrego): it creates `env.memory` (5 pages),
//! provides `opa_abort`, `opa_println` and `opa_builtin0..4`, loads data once, saves the heap
//! pointer, and per evaluation loads the input, evaluates (both through the evaluation context
//! and through the one-call `opa_eval` of ABI 1.2) and resets the heap pointer.
//!
//! Over every policy case of `tests/cases` that has inputs, each object's violations from the
//! OPA module must be exactly the error findings the waPC module reports for it (or, when the
//! waPC module rejects without findings, its message). The same corpus runs under the
//! official `@open-policy-agent/opa-wasm` npm SDK on Node (`tests/opa-node/evaluate.cjs`;
//! `cargo xtask setup` installs the package under `target/opa-node`).

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use apart_host::commands::check;
use apart_host::manifests;
use serde_json::{Value, json};
use support::opa_host::{OpaPolicy, messages, opa_module_bytes, opa_module_path};
use support::{assert_no_failures, case_dirs, compiled_module, files, root};
use wasmtime::{Engine, Error, ExternType, Module, Mutability, Result};

/// An error with a message (wasmtime 48 has its own error type, not anyhow's).
macro_rules! fail {
    ($($t:tt)*) => { Error::msg(format!($($t)*)) };
}

fn engine() -> Engine {
    Engine::default()
}

/// What the waPC module reports for a validation request, as violation messages: each
/// error finding (from the findings annotation) as its rejection message writes it; a
/// rejection without findings is its message.
fn wapc_violations(request: &Value) -> Result<Vec<String>> {
    let answer = compiled_module()
        .call("validate", request.to_string().as_bytes())
        .map_err(|e| fail!("{e}"))?;
    let response: Value = serde_json::from_slice(&answer)?;
    let findings: Vec<apart_policy::Finding> = match response
        .get("audit_annotations")
        .and_then(|a| a.get(apart_policy::admission::FINDINGS_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some(json) => serde_json::from_str(json)?,
        None => Vec::new(),
    };
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == apart_policy::Severity::Error)
        .map(|f| format!("[{}] {} at {}: {}", f.code, f.policy, f.path, f.message))
        .collect();
    let accepted = response.get("accepted").and_then(Value::as_bool) == Some(true);
    if errors.is_empty() && !accepted {
        let message = response
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Ok(vec![message.to_owned()]);
    }
    Ok(errors)
}

#[test]
fn the_module_speaks_the_opa_abi_1_3() {
    let engine = engine();
    let module = Module::new(&engine, opa_module_bytes()).expect("the OPA module compiles");
    let imports: Vec<(String, String)> = module
        .imports()
        .map(|i| (i.module().to_owned(), i.name().to_owned()))
        .collect();
    let mut wanted = vec![
        ("env".to_owned(), "memory".to_owned()),
        ("env".to_owned(), "opa_abort".to_owned()),
        ("env".to_owned(), "opa_println".to_owned()),
    ];
    wanted.extend((0..=4).map(|n| ("env".to_owned(), format!("opa_builtin{n}"))));
    for w in &wanted {
        assert!(imports.contains(w), "missing import {w:?} in {imports:?}");
    }
    // The SDKs create 5 pages unless told otherwise; the module asks for its stack's 2 and its
    // start function grows memory for its data.
    let memory = module
        .imports()
        .find_map(|i| match i.ty() {
            ExternType::Memory(m) => Some(m),
            _ => None,
        })
        .expect("a memory import");
    assert_eq!(memory.minimum(), 2, "the pages the module asks for");
    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let parameters: Value = serde_json::from_slice(&policies.settings()).expect("settings");
    let review = support::read_json(
        &root().join("tests/admission/update-helmrelease-affinity-changed/request.json"),
    );
    let seed = json!({"parameters": parameters, "review": review["request"]});
    let given_five = OpaPolicy::new(&engine, &module)
        .and_then(|mut p| p.violations(&seed))
        .expect("evaluates in 5 pages");
    let given_two = OpaPolicy::with_pages(&engine, &module, 2)
        .and_then(|mut p| p.violations(&seed))
        .expect("evaluates in 2 pages");
    assert!(!given_five.is_empty(), "the seed violates");
    assert_eq!(
        given_two, given_five,
        "the same decision whatever the host created"
    );

    let exports: Vec<String> = module.exports().map(|e| e.name().to_owned()).collect();
    for name in [
        "memory",
        "eval",
        "opa_eval",
        "builtins",
        "entrypoints",
        "opa_eval_ctx_new",
        "opa_eval_ctx_set_input",
        "opa_eval_ctx_set_data",
        "opa_eval_ctx_set_entrypoint",
        "opa_eval_ctx_get_result",
        "opa_malloc",
        "opa_free",
        "opa_json_parse",
        "opa_json_dump",
        "opa_value_parse",
        "opa_value_dump",
        "opa_value_free",
        "opa_heap_ptr_get",
        "opa_heap_ptr_set",
        "opa_value_add_path",
        "opa_value_remove_path",
        "opa_heap_blocks_stash",
        "opa_heap_blocks_restore",
        "opa_heap_stash_clear",
        "opa_wasm_abi_version",
        "opa_wasm_abi_minor_version",
    ] {
        assert!(exports.iter().any(|e| e == name), "missing export {name}");
    }

    let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
    for (name, value) in [
        ("opa_wasm_abi_version", 1),
        ("opa_wasm_abi_minor_version", 3),
    ] {
        let global = policy
            .instance
            .get_global(&mut policy.store, name)
            .unwrap_or_else(|| panic!("{name} is a global"));
        let ty = global.ty(&policy.store);
        assert_eq!(ty.mutability(), Mutability::Const, "{name}");
        assert_eq!(global.get(&mut policy.store).i32(), Some(value), "{name}");
    }
    let builtins = policy.func::<(), i32>("builtins").expect("builtins");
    let builtins = builtins.call(&mut policy.store, ()).expect("builtins()");
    assert_eq!(policy.dump(builtins).expect("dump"), json!({}));
    let entrypoints = policy.func::<(), i32>("entrypoints").expect("entrypoints");
    let entrypoints = entrypoints
        .call(&mut policy.store, ())
        .expect("entrypoints()");
    assert_eq!(
        policy.dump(entrypoints).expect("dump"),
        json!({"apart/violation": 0})
    );
    // An unknown entrypoint aborts, as the ABI says.
    let err = policy.eval_ctx(b"{}", 7).expect_err("entrypoint 7 aborts");
    assert!(format!("{err:#}").contains("opa_abort"), "{err:#}");
}

#[test]
fn data_paths_are_added_and_removed() {
    let engine = engine();
    let module = Module::new(&engine, opa_module_bytes()).expect("the OPA module compiles");
    let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
    let base = policy.load_json(br#"{"a": {"b": 123}}"#).expect("base");
    let path = policy.load_json(br#"["a", "x", "y"]"#).expect("path");
    let value = policy.load_json(br#"{"foo": "bar"}"#).expect("value");
    let add = policy
        .func::<(i32, i32, i32), i32>("opa_value_add_path")
        .expect("export");
    assert_eq!(
        add.call(&mut policy.store, (base, path, value))
            .expect("add"),
        0
    );
    assert_eq!(
        policy.dump(base).expect("dump"),
        json!({"a": {"b": 123, "x": {"y": {"foo": "bar"}}}})
    );
    let bad = policy.load_json(br#"["a", "b", "c"]"#).expect("path");
    assert_eq!(
        add.call(&mut policy.store, (base, bad, value))
            .expect("add"),
        3
    );
    let remove = policy
        .func::<(i32, i32), i32>("opa_value_remove_path")
        .expect("export");
    let x = policy.load_json(br#"["a", "x"]"#).expect("path");
    assert_eq!(
        remove.call(&mut policy.store, (base, x)).expect("remove"),
        0
    );
    assert_eq!(policy.dump(base).expect("dump"), json!({"a": {"b": 123}}));
}

#[test]
fn bad_input_is_a_violation_never_an_admission() {
    let engine = engine();
    let module = Module::new(&engine, opa_module_bytes()).expect("the OPA module compiles");
    let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
    let settings = json!({"policies": []});
    for input in [
        json!({}),
        json!({"parameters": settings, "review": {}}),
        json!({"parameters": {"policies": "none"}, "review": {}}),
        json!({"parameters": {"policies": [{"kind": "DecorrelationPolicy"}]}, "review": {}}),
    ] {
        let v = policy.violations(&input).expect("evaluates");
        assert_eq!(v.len(), 1, "{input}: {v:?}");
    }
    // A malformed review under valid parameters.
    let dir = root().join("examples/seed");
    let policies = check::read_policies(&[dir.join("policy.yaml")]).expect("seed policy");
    let parameters: Value = serde_json::from_slice(&policies.settings()).expect("settings");
    for review in [
        json!("x"),
        json!({"operation": "CREATE"}),
        json!({"object": 1}),
    ] {
        let input = json!({"parameters": parameters, "review": review});
        let v = policy.violations(&input).expect("evaluates");
        assert_eq!(v.len(), 1, "{input}: {v:?}");
    }
    // Nesting near serde_json's limit fits in the module's small stack (128 KiB, not the
    // usual 1 MiB: the stack lies in the first of the 5 pages the hosts create).
    let mut deep = json!("leaf");
    for _ in 0..110 {
        deep = json!([deep]);
    }
    let mut object =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
    object["metadata"]["deep"] = deep;
    let review = json!({"operation": "CREATE", "namespace": "default", "object": object});
    let input = json!({"parameters": parameters, "review": review});
    policy.violations(&input).expect("a deep object evaluates");
    // Input that is not JSON, through opa_eval.
    let v = policy.eval_once(b"{not json", 0).expect("evaluates");
    assert_eq!(
        v.pointer("/0/result")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(1),
        "{v}"
    );
}

/// One object of the corpus: where it is from, the OPA input, and the waPC module's
/// violations for it.
struct Check {
    label: String,
    input: Value,
    wanted: Vec<String>,
    /// The settings use value-target queries (not singular paths).
    queries: bool,
}

/// Do these settings have a value-target query that is not singular?
fn uses_queries(settings: &Value) -> bool {
    apart_policy::PolicySet::from_settings(settings.to_string().as_bytes()).is_ok_and(|set| {
        set.policies().iter().any(|p| {
            p.value_targets.iter().any(|t| {
                !t.affinity_path.is_singular()
                    || [&t.namespace_path, &t.pod_labels_path]
                        .into_iter()
                        .flatten()
                        .any(|q| !q.is_singular())
            })
        })
    })
}

/// Every object of the policy cases that have inputs, with the waPC module's answer.
fn corpus_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    for dir in case_dirs("cases", |d| !files(d, "input").is_empty()) {
        let case = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // Cases whose policies or inputs are refused before any module runs have nothing to
        // compare.
        let Ok(policies) = check::read_policies(&files(&dir, "policy")) else {
            continue;
        };
        let Ok(sources) = manifests::read_sources(&files(&dir, "input")) else {
            continue;
        };
        let Ok(manifests) = manifests::objects(&sources) else {
            continue;
        };
        let settings: Value = serde_json::from_slice(&policies.settings()).expect("settings");
        for (i, manifest) in manifests.iter().enumerate() {
            let request = check::validation_request(i, &manifest.value, "default", &settings);
            let label = format!("{case} object {i}");
            let wanted = wapc_violations(&request)
                .unwrap_or_else(|e| panic!("{label}: the waPC module failed: {e:#}"));
            checks.push(Check {
                label,
                input: json!({"parameters": settings, "review": request["request"]}),
                wanted,
                queries: uses_queries(&settings),
            });
        }
    }
    assert!(
        checks.iter().filter(|c| c.queries).count() >= 5,
        "the corpus has value-target queries"
    );
    let objects = checks.len();
    let violations: usize = checks.iter().map(|c| c.wanted.len()).sum();
    assert!(objects > 50, "only {objects} objects in the corpus");
    assert!(
        violations > 10,
        "only {violations} violations in the corpus"
    );
    checks
}

#[test]
fn the_corpus_gets_the_same_decisions_as_from_the_wapc_module() {
    let engine = engine();
    let module = Module::new(&engine, opa_module_bytes()).expect("the OPA module compiles");
    let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
    let mut failures = Vec::new();
    let checks = corpus_checks();
    for check in &checks {
        match policy.violations(&check.input) {
            Ok(got) if got == check.wanted => {}
            Ok(got) => failures.push(format!(
                "{}: the OPA module reports\n  {got:?}\nthe waPC module\n  {:?}",
                check.label, check.wanted
            )),
            Err(e) => failures.push(format!("{}: OPA module: {e:#}", check.label)),
        }
    }
    assert_no_failures(&failures);
    let violations: usize = checks.iter().map(|c| c.wanted.len()).sum();
    eprintln!(
        "{} objects, {violations} violations: the same from both modules",
        checks.len()
    );
}

/// What the engine judges a Gatekeeper-mode input by, natively: the `violations` of its
/// admission, as violation lines; a rejection without them is its message.
fn engine_violations(input: &Value) -> Vec<String> {
    let set =
        match apart_policy::PolicySet::from_settings(input["parameters"].to_string().as_bytes()) {
            Ok(set) => set,
            Err(e) => return vec![format!("apart: invalid parameters: {e}")],
        };
    let payload = json!({"request": input["review"]}).to_string();
    let request = match apart_policy::admission::ValidationRequest::parse(payload.as_bytes()) {
        Ok(r) => r,
        Err(e) => return vec![format!("apart: {e}")],
    };
    let verdict = apart_policy::admission::review(&set, request.request, payload.as_bytes());
    let lines: Vec<String> = verdict
        .violations
        .iter()
        .map(|f| format!("[{}] {} at {}: {}", f.code, f.policy, f.path, f.message))
        .collect();
    match (lines.is_empty(), verdict.accepted) {
        (true, false) => vec![verdict.message.unwrap_or_default()],
        _ => lines,
    }
}

/// The lifecycle through the OPA-ABI module: every AdmissionReview of `tests/admission`
/// (Pod UPDATEs, deletions in progress, Jobs, mirror pods, existing violations under `allow`
/// and `deny`, changed templates) gets the violations the engine judges it by, and the
/// requests the lifecycle lets through get none, although most of them violate the rule.
#[test]
fn admission_requests_are_judged_in_their_lifecycle() {
    let engine = engine();
    let module = Module::new(&engine, opa_module_bytes()).expect("the OPA module compiles");
    let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
    let seed =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let seed: Value = serde_json::from_slice(&seed.settings()).expect("settings");
    // Requests whose objects violate the rule but that the lifecycle lets through.
    let let_through = [
        "update-pod-label-change",
        "update-pod-finalizer-removal-while-deleting",
        "update-deployment-foreground-deletion",
        "update-job-admitted-by-a-queue",
        "update-deployment-labels-existing-violation",
        "update-helmrelease-chart-bump-affinity-unchanged",
        "create-mirror-pod",
    ];
    // Requests judged as a CREATE: violations (Gatekeeper mode repairs nothing).
    let judged = [
        "update-job-template-labels-changed",
        "update-deployment-existing-violation-denied",
        "update-deployment-template-changed",
        "update-helmrelease-affinity-changed",
        "update-without-old-object",
        "create-extensions-v1beta1-deployment",
        "create-batch-v1beta1-cronjob",
        "create-object-without-apiversion-and-kind",
    ];
    let mut failures = Vec::new();
    let mut seen = 0;
    for dir in support::case_dirs("admission", |p| p.join("request.json").is_file()) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let review = support::read_json(&dir.join("request.json"));
        let settings = match dir.join("settings.json") {
            p if p.is_file() => support::read_json(&p),
            _ => seed.clone(),
        };
        let input = json!({"parameters": settings, "review": review["request"]});
        let wanted = engine_violations(&input);
        let got = match policy.violations(&input) {
            Ok(got) => got,
            Err(e) => {
                failures.push(format!("{name}: OPA module: {e:#}"));
                continue;
            }
        };
        if got != wanted {
            failures.push(format!(
                "{name}: the OPA module reports\n  {got:?}\nthe engine\n  {wanted:?}"
            ));
        }
        if let_through.contains(&name) && !got.is_empty() {
            failures.push(format!("{name}: let through by the lifecycle, yet {got:?}"));
        }
        if judged.contains(&name) && got.is_empty() {
            failures.push(format!("{name}: judged as a CREATE, yet no violation"));
        }
        seen += usize::from(let_through.contains(&name) || judged.contains(&name));
    }
    assert_eq!(
        seen,
        let_through.len() + judged.len(),
        "every named case exists"
    );
    assert_no_failures(&failures);
}

/// Where `cargo xtask setup` installs `@open-policy-agent/opa-wasm`.
fn npm_sdk() -> PathBuf {
    root().join("target/opa-node/node_modules/@open-policy-agent/opa-wasm")
}

#[test]
fn the_official_npm_sdk_gets_the_same_decisions() {
    let sdk = npm_sdk();
    assert!(
        sdk.join("package.json").is_file(),
        "{} is needed (run `cargo xtask setup`)",
        sdk.display()
    );
    let checks = corpus_checks();
    let mut stdin = String::new();
    for check in &checks {
        stdin.push_str(&check.input.to_string());
        stdin.push('\n');
    }
    let script = root().join("host-tests/tests/opa-node/evaluate.cjs");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(&sdk)
        .arg(opa_module_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (Node.js is needed)");
    let mut pipe = child.stdin.take().expect("stdin");
    // Written from a thread: node answers line by line and a full stdout pipe would block it.
    let writer = std::thread::spawn(move || pipe.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("node finishes");
    writer.join().expect("writer").expect("stdin written");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines = stdout.lines();
    let loaded: Value = serde_json::from_str(lines.next().expect("a first line")).expect("json");
    assert_eq!(
        loaded,
        json!({"abi": [1, 3], "entrypoints": {"apart/violation": 0}}),
        "what the SDK read from the module"
    );
    let mut failures = Vec::new();
    let results: Vec<&str> = lines.collect();
    assert_eq!(results.len(), checks.len(), "one result per input");
    for (check, line) in checks.iter().zip(results) {
        let result: Value = serde_json::from_str(line).expect("json");
        match messages(&result) {
            Ok(got) if got == check.wanted => {}
            Ok(got) => failures.push(format!(
                "{}: under the npm SDK the OPA module reports\n  {got:?}\nthe waPC module\n  {:?}",
                check.label, check.wanted
            )),
            Err(e) => failures.push(format!("{}: npm SDK: {e:#}", check.label)),
        }
    }
    assert_no_failures(&failures);
    eprintln!(
        "{} objects: the same violations under the npm SDK",
        checks.len()
    );
}

/// `apart build --mode gatekeeper`: the seed policy baked into the OPA-ABI module, annotated
/// `executionMode: gatekeeper`, answers Kubewarden's gatekeeper-mode input with empty
/// `parameters` (a ClusterAdmissionPolicy with `settings: {}`) exactly as the waPC module
/// given the policy as settings; parameters with policies replace the baked ones.
#[test]
fn a_module_baked_for_gatekeeper_mode_enforces_its_policies_with_empty_parameters() {
    use apart_host::ship::kubewarden::{self, Mode};

    let policies = check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed");
    let baked =
        kubewarden::bake_for(&opa_module_bytes(), &policies.set, Mode::Gatekeeper).expect("bakes");
    let metadata = kubewarden::metadata(&baked)
        .expect("reads")
        .expect("annotated");
    assert_eq!(metadata.execution_mode, "gatekeeper");
    assert!(!metadata.mutating, "gatekeeper mode only validates");
    assert!(metadata.context_aware_resources.is_empty());
    let engine = engine();
    let module = Module::new(&engine, &baked).expect("the baked OPA module compiles");
    let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
    let settings: Value = serde_json::from_slice(&policies.settings()).expect("settings");
    let sources = manifests::read_sources(&[
        root().join("examples/seed/cilium-helmrelease.yaml"),
        root().join("examples/rendered"),
    ])
    .expect("manifests");
    let mut violating = 0;
    for (i, object) in manifests::objects(&sources)
        .expect("objects")
        .iter()
        .enumerate()
    {
        let request = check::validation_request(i, &object.value, "default", &settings);
        let wanted = wapc_violations(&request).expect("the waPC module answers");
        for parameters in [json!({}), Value::Null, json!({"policies": []})] {
            let input = json!({"parameters": parameters, "review": request["request"]});
            let got = policy.violations(&input).expect("evaluates");
            assert_eq!(got, wanted, "object {i} with parameters {parameters}");
        }
        violating += usize::from(!wanted.is_empty());
    }
    assert_eq!(
        violating, 2,
        "the HelmRelease and the StatefulSet violate the rule"
    );
    // Parameters with policies replace the baked ones: a rule about other pods finds nothing.
    let other = json!({"policies": [{
        "apiVersion": "apart.dev/v1alpha1", "kind": "DecorrelationPolicy",
        "metadata": {"name": "other"},
        "spec": {"subject": {"labelSelector": {"matchLabels": {"app": "nothing-here"}}},
                 "apartFrom": [{"namespaces": ["x"], "labelSelector": {"matchLabels": {"a": "b"}}}]}}]});
    let seed = manifests::objects(&sources).expect("objects");
    let request = check::validation_request(0, &seed[0].value, "default", &settings);
    let input = json!({"parameters": other, "review": request["request"]});
    assert_eq!(
        policy.violations(&input).expect("evaluates"),
        Vec::<String>::new()
    );
    // The plain module has nothing baked: empty parameters are a violation, never an admission.
    let plain = Module::new(&engine, opa_module_bytes()).expect("compiles");
    let mut plain = OpaPolicy::new(&engine, &plain).expect("instantiates");
    let input = json!({"parameters": {}, "review": request["request"]});
    let got = plain.violations(&input).expect("evaluates");
    assert!(got.len() == 1 && got[0].contains("no policies"), "{got:?}");
}

/// The CLI bakes the OPA-ABI module it carries: `apart build --mode gatekeeper`, then
/// `apart inspect` shows the gatekeeper metadata and the baked policy.
#[test]
fn apart_build_mode_gatekeeper_through_the_cli() {
    let dir = root().join("target/opa-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join(format!("gk-{}.wasm", std::process::id()));
    let policy = root().join("examples/seed/policy.yaml");
    let built = support::run_cli(
        &[
            "build".as_ref(),
            "--mode".as_ref(),
            "gatekeeper".as_ref(),
            "-p".as_ref(),
            policy.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
        None,
    );
    assert_eq!(
        built.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let inspected = support::run_cli(
        &[
            "inspect".as_ref(),
            out.as_os_str(),
            "--output".as_ref(),
            "json".as_ref(),
        ],
        None,
    );
    assert_eq!(inspected.status.code(), Some(0));
    let shown: Value = serde_json::from_slice(&inspected.stdout).expect("JSON");
    assert_eq!(shown["metadata"]["executionMode"], "gatekeeper");
    assert_eq!(shown["metadata"]["mutating"], false);
    assert_eq!(
        shown["baked"]["policies"][0]["metadata"]["name"],
        "identity-apart-from-gitops"
    );
    // The module it wrote is the OPA-ABI one: it exports the ABI version.
    let bytes = std::fs::read(&out).expect("written");
    let engine = engine();
    let module = Module::new(&engine, &bytes).expect("compiles");
    assert!(module.get_export("opa_wasm_abi_version").is_some());
    let _ = std::fs::remove_file(&out);
}

/// A measurement, not a check: `cargo test --release -p apart --test opa -- --ignored
/// --nocapture opa_eval_time` prints the table in docs/performance.md: one warm instance,
/// `opa_eval` (the input written, parsed, evaluated and the result set written back) on a
/// CREATE of the rendered spire-server StatefulSet and on an UPDATE of the cilium HelmRelease
/// under the seed policy, beside the JSON floor of the same input.
#[test]
#[ignore = "a measurement; run it explicitly (see docs/performance.md)"]
fn opa_eval_time() {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let time = |f: &mut dyn FnMut()| {
        let runs: Vec<f64> = (0..5)
            .map(|_| {
                median(
                    (0..400)
                        .map(|_| {
                            let t = std::time::Instant::now();
                            f();
                            t.elapsed().as_secs_f64() * 1e6
                        })
                        .collect(),
                )
            })
            .collect();
        median(runs)
    };
    let engine = engine();
    let module = Module::new(&engine, opa_module_bytes()).expect("the OPA module compiles");
    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let parameters: Value = serde_json::from_slice(&policies.settings()).expect("settings");
    let rendered = root().join("examples/rendered/spire-server-statefulset.yaml");
    let statefulset = manifests::objects(&manifests::read_sources(&[rendered]).expect("reads"))
        .expect("objects")
        .remove(0)
        .value;
    let create = json!({
        "uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
        "namespace": "kube-system", "operation": "CREATE", "object": statefulset,
    });
    let update = support::read_json(
        &root().join("tests/admission/update-helmrelease-affinity-changed/request.json"),
    );
    eprintln!("| input | bytes | JSON floor µs | `opa_eval` µs | × floor |");
    eprintln!("|---|---:|---:|---:|---:|");
    for (name, review) in [
        ("CREATE StatefulSet", &create),
        ("UPDATE HelmRelease", &update["request"]),
    ] {
        let text = json!({"parameters": parameters, "review": review}).to_string();
        let floor = time(&mut || {
            std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(
                std::hint::black_box(text.as_bytes()),
            ))
            .ok();
        });
        let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
        let eval = time(&mut || {
            policy.eval_once(text.as_bytes(), 0).expect("evaluates");
        });
        eprintln!(
            "| {name} | {} | {floor:.1} | {eval:.1} | {:.0} |",
            text.len(),
            eval / floor
        );
    }
}
