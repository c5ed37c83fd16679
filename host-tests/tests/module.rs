//! The built Kubewarden module, called over waPC as policy-server calls it: its exports, its
//! three functions, and its answers to hostile or malformed input (a rejection, never a trap).

mod support;

use apart_host::host::evaluator::Evaluator;
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
    let findings: Value =
        serde_json::from_str(&answer.audit_annotations.expect("annotations")["apart.dev/findings"])
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
