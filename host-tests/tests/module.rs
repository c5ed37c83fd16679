//! The built Kubewarden module, called over waPC as policy-server calls it: its exports, its
//! three functions, and its answers to hostile or malformed input (a rejection, never a trap).

mod support;

use std::time::{Duration, Instant};

use apart_host::host::evaluator::Evaluator;
use apart_host::host::wapc::PolicyModule;
use serde_json::{Value, json};
use support::{built_module, compiled_module, root};

fn settings() -> Value {
    let mut set = apart_policy::PolicySet::default();
    let text =
        std::fs::read_to_string(root().join("examples/seed/policy.yaml")).expect("seed policy");
    set.parse_into(&text, "policy.yaml").expect("valid");
    set.settings()
}

fn statefulset(namespaces: Option<Value>) -> Value {
    let mut term = json!({"topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/part-of": "flux"}}});
    if let Some(ns) = namespaces {
        term["namespaces"] = ns;
    }
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "spire-server", "namespace": "kube-system"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "spire-server"}},
            "spec": {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}]}}, "containers": [{"name": "s", "image": "x"}]}}}})
}

fn request(operation: &str, object: Option<Value>) -> Vec<u8> {
    let mut req = json!({"uid": "1", "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
        "operation": operation, "namespace": "kube-system", "name": "spire-server"});
    if let Some(o) = object {
        req["object"] = o;
    }
    json!({"request": req, "settings": settings()})
        .to_string()
        .into_bytes()
}

#[test]
fn exports_are_wapc_only() {
    let engine = wasmtime::Engine::default();
    let wasm = built_module();
    let module = wasmtime::Module::new(&engine, wasm).expect("compiles");
    let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
    assert!(
        exports.contains(&"__guest_call") && exports.contains(&"wapc_init"),
        "{exports:?}"
    );
    assert!(
        !exports.iter().any(|e| e.starts_with("opa_")),
        "kwctl would take it for Rego: {exports:?}"
    );
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    assert!(
        imports
            .iter()
            .all(|i| i.starts_with("wapc.") || i.starts_with("wasi_snapshot_preview1.")),
        "{imports:?}"
    );
}

#[test]
fn protocol_version_is_v1() {
    let answer = compiled_module()
        .call("protocol_version", b"")
        .expect("answers");
    assert_eq!(
        serde_json::from_slice::<Value>(&answer).expect("json"),
        json!("v1")
    );
}

#[test]
fn settings_are_checked_with_a_path() {
    let ok = compiled_module()
        .validate_settings(settings().to_string().as_bytes())
        .expect("answers");
    assert!(ok.valid, "{:?}", ok.message);
    let mut bad = settings();
    bad["policies"][0]["spec"]["weight"] = json!(0);
    let answer = compiled_module()
        .validate_settings(bad.to_string().as_bytes())
        .expect("answers");
    assert!(!answer.valid);
    assert_eq!(
        answer.message.as_deref(),
        Some("settings.policies[0].spec.weight: weight must be 1 to 100, got 0")
    );
    for (payload, expected) in [
        (&b"{}"[..], "settings.policies is empty"),
        (&b"not json"[..], "expected ident"),
        (
            &b"{\"policies\": [], \"extra\": 1}"[..],
            "unknown field `extra`",
        ),
    ] {
        let answer = compiled_module()
            .validate_settings(payload)
            .expect("answers");
        assert!(!answer.valid);
        assert!(
            answer
                .message
                .as_deref()
                .unwrap_or_default()
                .contains(expected),
            "{:?}",
            answer.message
        );
    }
}

#[test]
fn validate_rejects_mutates_and_accepts() {
    // Namespace-blind with a mutate rule: accepted with the repaired object.
    let answer = compiled_module()
        .validate(&request("CREATE", Some(statefulset(None))))
        .expect("answers");
    assert!(answer.accepted, "{:?}", answer.message);
    let mutated = answer.mutated_object.expect("mutated");
    assert_eq!(
        mutated.pointer("/spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm/namespaces"),
        Some(&json!(["kube-system", "flux-system"]))
    );
    let findings: Value = serde_json::from_str(
        &answer.audit_annotations.expect("annotations")
            [apart_policy::admission::FINDINGS_ANNOTATION],
    )
    .expect("json");
    assert_eq!(findings[0]["code"], "namespace-blind");
    // The repaired object is accepted untouched.
    let answer = compiled_module()
        .validate(&request("CREATE", Some(mutated)))
        .expect("answers");
    assert!(
        answer.accepted && answer.mutated_object.is_none() && answer.audit_annotations.is_none()
    );
    // DELETE carries no object: accepted.
    let answer = compiled_module()
        .validate(&request("DELETE", None))
        .expect("answers");
    assert!(answer.accepted);
}

#[test]
fn validate_only_rules_reject_with_the_findings() {
    let mut s = settings();
    s["policies"][0]["spec"]["action"] = json!("validate");
    let payload = json!({"request": {"uid": "1", "operation": "UPDATE", "namespace": "kube-system",
        "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"}, "object": statefulset(None)},
        "settings": s});
    let answer = compiled_module()
        .validate(payload.to_string().as_bytes())
        .expect("answers");
    assert!(!answer.accepted);
    assert_eq!(answer.code, Some(400));
    let message = answer.message.expect("message");
    assert!(
        message.contains(
            "[namespace-blind] identity-apart-from-gitops at $.spec.template.spec.affinity"
        ),
        "{message}"
    );
    assert!(message.contains("flux-system"), "{message}");
}

#[test]
fn malformed_requests_are_rejections_not_traps() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut labels_wrong = statefulset(None);
    labels_wrong["spec"]["template"]["metadata"]["labels"]["version"] = json!(1);
    let mut affinity_wrong = statefulset(None);
    affinity_wrong["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"] = json!("everywhere");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "validation request"),
        (b"\xff\xfe".to_vec(), "validation request"),
        (b"{\"request\": 42}".to_vec(), "validation request"),
        (deep.into_bytes(), "validation request"),
        (request("CREATE", Some(json!("a string"))), "cannot read the object"),
        (request("CREATE", Some(labels_wrong)), "labels"),
        (json!({"request": {"operation": "CREATE", "object": statefulset(None)}, "settings": {"policies": [1]}}).to_string().into_bytes(), "invalid settings"),
    ];
    for (payload, expected) in cases {
        let answer = compiled_module()
            .validate(&payload)
            .expect("an answer, not a trap");
        assert!(!answer.accepted, "{expected}");
        let message = answer.message.unwrap_or_default();
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // An affinity the API server would refuse is a finding, not a failure.
    let answer = compiled_module()
        .validate(&request("CREATE", Some(affinity_wrong)))
        .expect("answers");
    assert!(!answer.accepted);
    assert!(
        answer
            .message
            .unwrap_or_default()
            .contains("[invalid-affinity]")
    );
}

#[test]
fn a_50_mb_object_is_answered() {
    let mut object = statefulset(Some(json!(["kube-system", "flux-system"])));
    object["metadata"]["annotations"] = json!({"blob": "x".repeat(50 * 1024 * 1024)});
    let answer = compiled_module()
        .validate(&request("CREATE", Some(object)))
        .expect("answers within the deadline");
    assert!(answer.accepted, "{:?}", answer.message);
}

/// Settings with `n` distinct policies of the seed's shape (a subject, one peer group with
/// namespaces, a value target on every tenth), about 400 bytes each.
fn many_policies(n: usize) -> Value {
    let policies: Vec<Value> = (0..n)
        .map(|i| {
            let mut spec = json!({
                "subject": {"namespaces": [format!("team-{}", i % 50)],
                    "labelSelector": {"matchLabels": {"app": format!("app-{i}")}}},
                "apartFrom": [{"namespaces": ["flux-system"],
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/part-of": "flux"}}}],
                "strength": if i % 2 == 0 { "preferred" } else { "required" },
                "action": if i % 3 == 0 { "mutate" } else { "validate" }
            });
            if i % 10 == 0 {
                spec["valueTargets"] = json!([{"apiVersion": "helm.toolkit.fluxcd.io/v2",
                    "kind": "HelmRelease", "name": format!("release-{i}"),
                    "affinityPath": "$.spec.values.server.affinity",
                    "podLabels": {"app": format!("app-{i}")}}]);
            }
            json!({"apiVersion": "apart.dev/v1alpha1", "kind": "DecorrelationPolicy",
                "metadata": {"name": format!("policy-{i}")}, "spec": spec})
        })
        .collect();
    json!({ "policies": policies })
}

/// `validate_settings`, then `validate` of the seed StatefulSet, with `settings`, through
/// `module`: how long each call took (a fresh instance each, as policy-server calls).
fn settings_round(
    module: &PolicyModule,
    settings: &Value,
) -> Result<(Duration, Duration), apart_host::host::wapc::CallError> {
    let bytes = settings.to_string().into_bytes();
    let started = Instant::now();
    let answer = module.call("validate_settings", &bytes)?;
    let compiled = started.elapsed();
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(answer["valid"], true, "{answer}");
    let object = statefulset(Some(json!(["kube-system", "flux-system"])));
    let request = json!({"request": {"uid": "1", "operation": "CREATE", "namespace": "kube-system",
        "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"}, "object": object},
        "settings": settings});
    let started = Instant::now();
    module.call("validate", request.to_string().as_bytes())?;
    Ok((compiled, started.elapsed()))
}

#[test]
fn realistic_settings_compile_within_policy_servers_deadline() {
    // A thousand policies is far more than a cluster states; with the default 2 s deadline
    // (what compiled_module has) both calls answer.
    let settings = many_policies(1_000);
    let (compiled, validated) = settings_round(compiled_module(), &settings)
        .unwrap_or_else(|e| panic!("1,000 policies: {e}"));
    eprintln!("1,000 policies: validate_settings {compiled:?}, validate {validated:?}");
}

/// A measurement, not a check: `cargo test --release -p apart --test module --
/// --ignored --nocapture settings_compile_time` prints the table in docs/performance.md.
#[test]
#[ignore = "a measurement; run it explicitly (see docs/performance.md)"]
fn settings_compile_time() {
    let module = PolicyModule::with_deadline(&built_module(), Duration::from_secs(120))
        .expect("the module compiles");
    eprintln!("| policies | settings bytes | validate_settings | validate (compile + evaluate) |");
    eprintln!("|---:|---:|---:|---:|");
    for n in [1, 100, 1_000, 10_000, 27_000] {
        let settings = many_policies(n);
        let bytes = settings.to_string().len();
        let runs = if n > 1_000 { 3 } else { 9 };
        let mut compile = Vec::new();
        let mut validate = Vec::new();
        for _ in 0..runs {
            let (c, v) = settings_round(&module, &settings).expect("answers");
            compile.push(c);
            validate.push(v);
        }
        compile.sort();
        validate.sort();
        eprintln!(
            "| {n} | {bytes} | {:.1} ms | {:.1} ms |",
            compile[runs / 2].as_secs_f64() * 1e3,
            validate[runs / 2].as_secs_f64() * 1e3
        );
    }
}

#[test]
fn a_10_mb_bad_value_gives_a_short_message() {
    let huge = "v".repeat(10 << 20);
    // A label value the API server would refuse, in a term.
    let mut object = statefulset(Some(json!(["kube-system", "flux-system"])));
    object["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"]["labelSelector"]["matchLabels"]["app.kubernetes.io/part-of"] =
        json!(huge);
    let answer = compiled_module()
        .validate(&request("CREATE", Some(object)))
        .expect("answers");
    let message = answer.message.unwrap_or_default();
    assert!(
        !answer.accepted && message.len() < 4096 && message.contains("… (10485760 bytes)"),
        "{} bytes: {}",
        message.len(),
        message.get(..600).unwrap_or_default()
    );
    let annotations = answer.audit_annotations.unwrap_or_default();
    let findings = &annotations[apart_policy::admission::FINDINGS_ANNOTATION];
    assert!(
        findings.len() < 8192,
        "{} bytes of findings",
        findings.len()
    );
    // A string where a number belongs: the reader's message quotes it, cut.
    let mut object = statefulset(Some(json!(["kube-system", "flux-system"])));
    object["spec"]["replicas"] = json!(huge);
    let answer = compiled_module()
        .validate(&request("CREATE", Some(object)))
        .expect("answers");
    let message = answer.message.unwrap_or_default();
    assert!(
        !answer.accepted
            && message.starts_with(
                "apart: cannot read the object: $.spec.replicas: invalid type: string \"vvv"
            )
            && message.contains("… (10485760 bytes), expected i64"),
        "{}",
        message.get(..600).unwrap_or_default()
    );
    // A settings path or value that long is cut too.
    let mut bad = settings();
    bad["policies"][0]["spec"]["weight"] = json!(huge);
    let answer = compiled_module()
        .validate_settings(bad.to_string().as_bytes())
        .expect("answers");
    let message = answer.message.unwrap_or_default();
    assert!(
        !answer.valid && message.len() < 4096,
        "{} bytes",
        message.len()
    );
}
