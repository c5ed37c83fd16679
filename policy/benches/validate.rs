//! One object through the engine, natively: `PolicySet::evaluate` on the seed's two
//! manifests, the rendered spire-server StatefulSet (`examples/rendered`, a workload: its pod
//! template read leanly) and the cilium HelmRelease (`examples/seed`, a value target: the
//! object read whole and its affinity found by the target's JSONPath), under the seed policy
//! with `action: validate` (findings only) and `action: mutate` (findings and the repair).
//! The HelmRelease also runs under a policy whose target is a JSONPath query
//! (`$.spec.values..server.affinity`), which selects the same affinity.
//!
//! `cargo bench -p apart-policy --bench validate` prints the median µs per call.
//! `APART_BENCH_SECONDS` sets the time per row (1 s by default).

use std::hint::black_box;
use std::time::{Duration, Instant};

use apart_policy::source::read;
use apart_policy::{Context, NamespaceFacts, PolicySet};

const POLICY: &str = include_str!("../../examples/seed/policy.yaml");
const STATEFULSET: &str = include_str!("../../examples/rendered/spire-server-statefulset.yaml");
const HELMRELEASE: &str = include_str!("../../examples/seed/cilium-helmrelease.yaml");

/// Median time per call over about `budget`.
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < 10 || started.elapsed() < budget {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The first document of a YAML text, as JSON text.
fn json(yaml: &str) -> String {
    let doc = read::documents(yaml)
        .next()
        .expect("a document")
        .expect("readable");
    doc.value.to_string()
}

fn policies(text: &str) -> PolicySet {
    let mut set = PolicySet::default();
    set.parse_into(text, "policy.yaml").expect("seed policy");
    set
}

fn main() {
    let seconds = std::env::var("APART_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(seconds);
    let statefulset = json(STATEFULSET);
    let helmrelease = json(HELMRELEASE);
    let mutate = policies(POLICY);
    let validate = policies(&POLICY.replace("action: mutate", "action: validate"));
    let query_text = POLICY.replace(
        "$.spec.values.authentication.mutual.spire.install.server.affinity",
        "$.spec.values..server.affinity",
    );
    // Before value-target queries, such a policy does not compile: its row is left out.
    let query = {
        let mut set = PolicySet::default();
        set.parse_into(&query_text, "policy.yaml").ok().map(|_| set)
    };
    let facts = NamespaceFacts::default();
    let ctx = Context {
        default_namespace: "default",
        namespaces: &facts,
    };
    println!(
        "{:<52} {:>10} {:>9}",
        "object, policy", "median µs", "findings"
    );
    let mut rows: Vec<(&str, &PolicySet, &str)> = vec![
        ("StatefulSet, validate", &validate, &statefulset),
        ("StatefulSet, mutate", &mutate, &statefulset),
        ("HelmRelease, validate", &validate, &helmrelease),
        ("HelmRelease, mutate", &mutate, &helmrelease),
    ];
    if let Some(q) = &query {
        rows.push((
            "HelmRelease, mutate, query $.spec.values..server",
            q,
            &helmrelease,
        ));
    }
    for (name, set, object) in rows {
        let found = set
            .evaluate(object.as_bytes(), &ctx)
            .expect("evaluates")
            .findings
            .len();
        let time = measure(budget, || {
            black_box(set.evaluate(black_box(object.as_bytes()), &ctx).ok());
        });
        println!("{name:<52} {:>10.1} {found:>9}", time.as_secs_f64() * 1e6);
    }
}
