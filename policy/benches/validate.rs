//! Admission validation speed against the floor of merely validating the JSON.
//!
//! `cargo bench -p apart-policy --bench validate` prints a table. The request is the rendered
//! spire-server StatefulSet (examples/rendered) in a Kubewarden `ValidationRequest`, about 7 KB.

use std::hint::black_box;
use std::time::{Duration, Instant};

use apart_policy::PolicySet;
use apart_policy::admission::{self, ValidationRequest};
use apart_policy::source::read;
use serde::de::IgnoredAny;

const POLICY: &str = include_str!("../../examples/seed/policy.yaml");
const STATEFULSET: &str = include_str!("../../examples/rendered/spire-server-statefulset.yaml");

/// Median time per call over batches lasting about `budget` in total.
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..200 {
        f();
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..100 {
            f();
        }
        samples.push(t.elapsed() / 100);
    }
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn request(object: &serde_json::Value, policies: &PolicySet) -> Vec<u8> {
    let request = serde_json::json!({
        "request": {
            "uid": "bench", "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "name": "spire-server", "namespace": "kube-system", "operation": "CREATE",
            "userInfo": {"username": "bench"}, "object": object, "oldObject": null, "dryRun": false
        },
        "settings": policies.settings()
    });
    serde_json::to_vec(&request).expect("json")
}

fn main() {
    let mutate = {
        let mut p = PolicySet::default();
        p.parse_into(POLICY, "policy.yaml").expect("seed policy");
        p
    };
    let validate_only = {
        let mut p = PolicySet::default();
        p.parse_into(
            &POLICY.replace("action: mutate", "action: validate"),
            "policy.yaml",
        )
        .expect("seed policy");
        p
    };
    let violating = read::parse_documents(STATEFULSET)
        .expect("statefulset")
        .remove(0)
        .value;
    let mut compliant = violating.clone();
    if let Some(term) = compliant.pointer_mut(
        "/spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm",
    ) {
        term["namespaces"] = serde_json::json!(["kube-system", "flux-system"]);
    }
    let bytes = request(&compliant, &mutate);
    let settings = serde_json::to_vec(&mutate.settings()).expect("json");
    let budget = Duration::from_secs(2);

    let floor = measure(budget, || {
        black_box(serde_json::from_slice::<IgnoredAny>(black_box(&bytes)).ok());
    });
    let value = measure(budget, || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).ok());
    });
    let review = |policies: &PolicySet, bytes: &[u8]| {
        let parsed = ValidationRequest::parse(black_box(bytes)).expect("request");
        black_box(admission::review(policies, parsed.request, bytes));
    };
    let validate = measure(budget, || review(&mutate, &bytes));
    let rejecting_bytes = request(&violating, &validate_only);
    let rejecting = measure(budget, || review(&validate_only, &rejecting_bytes));
    let mutating_bytes = request(&violating, &mutate);
    let mutating = measure(budget, || review(&mutate, &mutating_bytes));
    let policies = &mutate;
    let cold = measure(budget, || {
        let parsed = ValidationRequest::parse(black_box(&bytes)).expect("request");
        let compiled = PolicySet::from_settings(black_box(&settings)).expect("settings");
        black_box(admission::review(&compiled, parsed.request, &bytes));
        let _ = policies;
    });
    let compile = measure(budget, || {
        black_box(PolicySet::from_settings(black_box(&settings)).ok());
    });
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "request: {} bytes (StatefulSet spire-server in a ValidationRequest)",
        bytes.len()
    );
    println!("{:<52} {:>9} {:>9}", "case", "µs/op", "× floor");
    for (name, d) in [
        ("floor: validate JSON (serde IgnoredAny)", floor),
        ("parse into serde_json::Value", value),
        ("apart validate, compliant (policies compiled)", validate),
        ("apart validate, violating: reject with findings", rejecting),
        ("apart validate, violating: mutate and re-check", mutating),
        ("apart validate + compile settings (fresh instance)", cold),
        ("compile settings alone", compile),
    ] {
        println!(
            "{name:<52} {:>9.2} {:>9.2}",
            micros(d),
            micros(d) / micros(floor)
        );
    }
}
