//! Placement on cluster snapshots: `apart simulate` (the InterPodAffinity plugin, and with a
//! second pod that has topology spread constraints, PodTopologySpread too) and `apart audit`
//! (co-located subjects and peers, blast radius) at three sizes, and the cost of reading the
//! snapshot they run on.
//!
//! `cargo bench -p apart-policy --bench placement` prints a table. Snapshots come from
//! [`generate`]: nodes spread over 3 regions × 3 zones, 30 pods per node in 60 namespaces,
//! a fifth of the pods with inter-pod affinity terms (required and preferred, affinity and
//! anti-affinity, some with `namespaceSelector` or `matchLabelKeys`), a few terminated or
//! unbound pods.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use apart_policy::PolicySet;
use apart_policy::kube::cluster::Cluster;
use apart_policy::placement::audit;
use apart_policy::placement::simulate::{self, IncomingPod, Options};
use serde::de::IgnoredAny;

/// Median time per call, over at least `runs` calls and about `budget` in total.
fn measure(budget: Duration, runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < runs || started.elapsed() < budget {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The affinity of the `i`-th pod (about one pod in five has one), as JSON.
fn affinity(i: usize, app: usize) -> Option<String> {
    let term = |key: &str, app: usize, extra: &str| {
        format!(
            r#"{{"topologyKey":"{key}","labelSelector":{{"matchLabels":{{"app":"app-{app}"}}}}{extra}}}"#
        )
    };
    let host = "kubernetes.io/hostname";
    let zone = "topology.kubernetes.io/zone";
    match i % 20 {
        // Spread replicas of one app over hosts (the most common term there is).
        0 | 1 => Some(format!(
            r#"{{"podAntiAffinity":{{"preferredDuringSchedulingIgnoredDuringExecution":[{{"weight":100,"podAffinityTerm":{}}}]}}}}"#,
            term(host, app, "")
        )),
        // Hard spread, within one rollout.
        2 => Some(format!(
            r#"{{"podAntiAffinity":{{"requiredDuringSchedulingIgnoredDuringExecution":[{}]}}}}"#,
            term(host, app, r#","matchLabelKeys":["pod-template-hash"]"#)
        )),
        // Prefer a zone holding a dependency, in the team's namespaces.
        3 => Some(format!(
            r#"{{"podAffinity":{{"preferredDuringSchedulingIgnoredDuringExecution":[{{"weight":40,"podAffinityTerm":{}}}]}}}}"#,
            term(
                zone,
                (app + 1) % 1000,
                r#","namespaceSelector":{"matchLabels":{"team":"team-1"}}"#
            )
        )),
        // Required co-location in a zone, plus preferred separation.
        4 if i % 40 == 4 => Some(format!(
            r#"{{"podAffinity":{{"requiredDuringSchedulingIgnoredDuringExecution":[{}]}},"podAntiAffinity":{{"preferredDuringSchedulingIgnoredDuringExecution":[{{"weight":10,"podAffinityTerm":{}}}]}}}}"#,
            term(zone, (app + 2) % 1000, r#","namespaceSelector":{}"#),
            term(host, app, "")
        )),
        _ => None,
    }
}

/// A synthetic `kubectl get nodes,pods,namespaces -A -o json` output with `nodes` nodes and
/// `pods` pods.
pub fn generate(nodes: usize, pods: usize) -> String {
    let mut out = String::with_capacity(pods * 700 + nodes * 600);
    out.push_str(r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":["#);
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    for n in 0..60 {
        sep(&mut out);
        let _ = write!(
            out,
            r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"ns-{n}","uid":"ns-uid-{n}","labels":{{"kubernetes.io/metadata.name":"ns-{n}","team":"team-{}"}}}},"spec":{{"finalizers":["kubernetes"]}},"status":{{"phase":"Active"}}}}"#,
            n % 6
        );
    }
    for i in 0..nodes {
        sep(&mut out);
        let (region, zone) = (i % 3, i % 9);
        let _ = write!(
            out,
            r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"node-{i:05}","uid":"node-uid-{i}","labels":{{"beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"node-{i:05}","kubernetes.io/os":"linux","node.kubernetes.io/instance-type":"m5.xlarge","topology.kubernetes.io/region":"region-{region}","topology.kubernetes.io/zone":"zone-{region}-{zone}"}}}},"spec":{{"podCIDR":"10.{}.{}.0/24"}},"status":{{"capacity":{{"cpu":"4","memory":"16Gi","pods":"110"}},"allocatable":{{"cpu":"3920m","memory":"15Gi","pods":"110"}},"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady"}}],"nodeInfo":{{"kubeletVersion":"v1.33.1","osImage":"Ubuntu 24.04"}}}}}}"#,
            i / 250,
            i % 250
        );
    }
    for i in 0..pods {
        sep(&mut out);
        let app = (i * 7919) % 1000;
        let ns = app % 60;
        // One pod in fifty has finished, one in a hundred is not bound yet.
        let phase = if i % 50 == 49 { "Succeeded" } else { "Running" };
        let node = if i % 100 == 98 {
            String::new()
        } else {
            format!(r#""nodeName":"node-{:05}","#, (i * 31) % nodes.max(1))
        };
        let affinity = affinity(i, app)
            .map(|a| format!(r#""affinity":{a},"#))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"app-{app}-{i}","namespace":"ns-{ns}","uid":"pod-uid-{i}","labels":{{"app":"app-{app}","tier":"tier-{}","pod-template-hash":"h{}"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"app-{app}-h","controller":true}}]}},"spec":{{{node}{affinity}"containers":[{{"name":"main","image":"registry.example/app-{app}:1.0","resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}}}}}}],"schedulerName":"default-scheduler"}},"status":{{"phase":"{phase}","podIP":"10.0.0.1","qosClass":"Burstable"}}}}"#,
            app % 3,
            app % 4
        );
    }
    out.push_str("]}");
    out
}

/// The pod to place: a Deployment's template with a term of every kind.
const INCOMING: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"app-7","namespace":"ns-7"},
"spec":{"template":{"metadata":{"labels":{"app":"app-7","tier":"tier-1"}},"spec":{"affinity":{
 "podAntiAffinity":{
   "requiredDuringSchedulingIgnoredDuringExecution":[{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"app":"app-7"}}}],
   "preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"podAffinityTerm":{"topologyKey":"topology.kubernetes.io/zone","labelSelector":{"matchLabels":{"tier":"tier-1"}},"namespaceSelector":{"matchLabels":{"team":"team-1"}}}}]},
 "podAffinity":{
   "preferredDuringSchedulingIgnoredDuringExecution":[{"weight":20,"podAffinityTerm":{"topologyKey":"topology.kubernetes.io/region","labelSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["app-8","app-9"]}]},"namespaces":["ns-8","ns-9"]}}]}
}}}}}"#;

/// The same workload with topology spread constraints as well: a hard one over zones (its
/// own replicas, tolerating taints as the scheduler counts them) and a soft one over hosts
/// (its tier, in its namespace).
const INCOMING_SPREAD: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"app-7","namespace":"ns-7"},
"spec":{"template":{"metadata":{"labels":{"app":"app-7","tier":"tier-1"}},"spec":{
 "topologySpreadConstraints":[
   {"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"app":"app-7"}},"nodeTaintsPolicy":"Honor"},
   {"maxSkew":2,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"tier":"tier-1"}}}],
 "affinity":{"podAntiAffinity":{
   "requiredDuringSchedulingIgnoredDuringExecution":[{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"app":"app-7"}}}]}}
}}}}"#;

/// Rules for the audit: one app kept off the hosts of one tier (a hostname rule), and a
/// hundred apps kept out of the zones of another app's pods in any namespace (a zone rule),
/// so that about 4% of the pods are subjects or peers.
const POLICIES: &str = r#"
apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: app-7-apart-from-tier-1}
spec:
  subject: {labelSelector: {matchLabels: {app: app-7}}}
  apartFrom:
    - namespaceSelector: {}
      labelSelector: {matchLabels: {tier: tier-1}}
---
apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: apps-apart-from-app-500}
spec:
  subject:
    labelSelector:
      matchExpressions:
        - {key: app, operator: In, values: [app-0, app-1, app-2, app-3, app-4, app-5, app-6, app-8, app-9, app-10]}
  apartFrom:
    - labelSelector: {matchLabels: {app: app-500}}
  topologyKey: topology.kubernetes.io/zone
  strength: required
"#;

fn main() {
    let pod = IncomingPod::from_json(INCOMING.as_bytes()).expect("incoming pod");
    let spread_pod = IncomingPod::from_json(INCOMING_SPREAD.as_bytes()).expect("spread pod");
    let options = Options::default();
    let mut policies = PolicySet::default();
    policies
        .parse_into(POLICIES, "bench.yaml")
        .expect("bench policies");
    println!(
        "{:>6} {:>8} {:>8} {:>10} {:>9} {:>12} {:>7} {:>9} {:>10} {:>9} {:>9} {:>10}",
        "nodes",
        "pods",
        "JSON MB",
        "floor ms",
        "parse ms",
        "simulate ms",
        "ns/pod",
        "feasible",
        "spread ms",
        "feasible",
        "audit ms",
        "violations"
    );
    for (nodes, pods) in [(500, 15_000), (1_500, 45_000), (5_000, 150_000)] {
        let json = generate(nodes, pods);
        // The floor: checking the JSON and nothing else.
        let floor = measure(Duration::from_secs(3), 3, || {
            black_box(serde_json::from_slice::<IgnoredAny>(black_box(json.as_bytes())).ok());
        });
        let parse = measure(Duration::from_secs(3), 3, || {
            black_box(Cluster::from_json(black_box(json.as_bytes())).ok());
        });
        let cluster = Cluster::from_json(json.as_bytes()).expect("snapshot");
        let result = simulate::simulate(&cluster, &pod, &options, None).expect("simulate");
        let run = measure(Duration::from_secs(3), 5, || {
            black_box(simulate::simulate(&cluster, black_box(&pod), &options, None).ok());
        });
        let spread = simulate::simulate(&cluster, &spread_pod, &options, None).expect("spread");
        let spread_run = measure(Duration::from_secs(3), 5, || {
            black_box(simulate::simulate(&cluster, black_box(&spread_pod), &options, None).ok());
        });
        let report = audit::audit(&policies, &cluster);
        let audited = measure(Duration::from_secs(3), 3, || {
            black_box(audit::audit(black_box(&policies), &cluster));
        });
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{nodes:>6} {pods:>8} {:>8.1} {:>10.1} {:>9.1} {:>12.1} {:>7.0} {:>9} {:>10.1} {:>9} {:>9.1} {:>10}",
            json.len() as f64 / 1e6,
            ms(floor),
            ms(parse),
            ms(run),
            run.as_secs_f64() * 1e9 / pods as f64,
            result.feasible_nodes.len(),
            ms(spread_run),
            spread.feasible_nodes.len(),
            ms(audited),
            report.violations.len()
        );
    }
}
