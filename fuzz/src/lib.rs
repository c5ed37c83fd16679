//! What apart's fuzz targets share: how one input is split into several, the host a fuzzed
//! module is given, the policies the editor is fuzzed under, and the checks that every target
//! makes beyond "does not panic" (an answer that encodes, a repair that reads back as the
//! repaired object and evaluates clean).
//!
//! A failed check panics: libFuzzer records the input as a crash.

use apart_policy::Context;
use apart_policy::NamespaceFacts;
use apart_policy::PatchOp;
use apart_policy::PolicySet;
use apart_policy::placement::colocation::KubernetesHost;
use apart_policy::source::path::JsonPath;
use apart_policy::source::{edit, read};
use serde_json::Value;

/// The byte that separates the parts of a multi-part input (`cluster 0xFF pod`): it never
/// occurs in UTF-8 text, so each part stays whatever the fuzzer made of it.
pub const SEPARATOR: u8 = 0xFF;

/// The first part and the rest (empty when there is no separator).
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == SEPARATOR) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A cluster that grants nothing: every host call is refused, as by a policy-server that does
/// not give the capability (the module must still answer).
pub struct NoHost;

impl KubernetesHost for NoHost {
    fn call(&mut self, _operation: &str, _request: &[u8]) -> Result<Vec<u8>, String> {
        Err("host capabilities are not granted".to_owned())
    }
}

/// The mutate policies the editor is fuzzed under: the seed's (a HelmRelease value target)
/// and a required zone rule on any workload, so that both value targets and pod templates
/// get repaired.
pub const FIX_POLICIES: &str = r#"
apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: identity-apart-from-gitops}
spec:
  subject:
    namespaces: [kube-system, cilium-spire]
    labelSelector: {matchLabels: {app: spire-server}}
  apartFrom:
    - namespaces: [flux-system]
      labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}
  action: mutate
  valueTargets:
    - apiVersion: helm.toolkit.fluxcd.io/v2
      kind: HelmRelease
      affinityPath: $.spec.values.authentication.mutual.spire.install.server.affinity
      namespacePath: $.spec.values.authentication.mutual.spire.install.namespace
      defaultNamespace: cilium-spire
      podLabels: {app: spire-server}
---
apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: web-apart-from-db}
spec:
  subject: {labelSelector: {matchLabels: {app: web}}}
  apartFrom:
    - namespaces: [db]
      labelSelector: {matchExpressions: [{key: app, operator: In, values: [db]}]}
  topologyKey: topology.kubernetes.io/zone
  strength: required
  action: mutate
"#;

/// [`FIX_POLICIES`], compiled.
pub fn fix_policies() -> PolicySet {
    let mut set = PolicySet::default();
    // A constant the tests read too: it always compiles.
    set.parse_into(FIX_POLICIES, "fix-policies.yaml")
        .expect("the fuzz policies compile");
    set
}

/// The operations of an evaluation's fixes, each plan's once.
pub fn ops(findings: &[apart_policy::Finding]) -> Vec<PatchOp> {
    let mut out: Vec<PatchOp> = Vec::new();
    let mut seen: Vec<&Vec<PatchOp>> = Vec::new();
    for fix in findings.iter().filter_map(|f| f.fix.as_ref()) {
        if !seen.contains(&fix) {
            out.extend(fix.iter().cloned());
            seen.push(fix);
        }
    }
    out
}

/// Repairs every object document of `text` as `apart fix` does and checks the repair: the
/// in-place edit (or, where the editor declines, the document written anew) reads back as
/// exactly the repaired object; the repaired object evaluates with no fix left to make.
/// Returns how many documents were repaired in place.
pub fn check_fix(set: &PolicySet, text: &str) -> usize {
    let facts = NamespaceFacts::default();
    let ctx = Context {
        default_namespace: "default",
        namespaces: &facts,
    };
    let mut in_place = 0;
    for doc in read::documents(text) {
        let Ok(doc) = doc else { break };
        if !doc.value.is_object() || doc.value.get("kind") == Some(&Value::from("List")) {
            continue;
        }
        let json = serde_json::to_vec(&doc.value).expect("a value encodes");
        let Ok(evaluation) = set.evaluate(&json, &ctx) else {
            continue;
        };
        let Some(mutated) = evaluation.mutated else {
            continue;
        };
        let mutated: Value = serde_json::from_str(&mutated).expect("the repaired object is JSON");
        let ops = ops(&evaluation.findings);
        assert!(!ops.is_empty(), "a repaired object without fix operations");
        let lines = doc.lines(text);
        let original = &text[lines];
        let rewritten = match edit::edit_document(original, &[(JsonPath::root(), ops)], &mutated) {
            Some(t) => {
                in_place += 1;
                t
            }
            None => edit::to_yaml(&mutated),
        };
        let back = read::parse_one(&rewritten)
            .unwrap_or_else(|e| panic!("the repaired text does not read: {e}\n{rewritten}"))
            .map(|d| d.value);
        assert_eq!(
            back.as_ref(),
            Some(&mutated),
            "the repaired text reads back as another object:\n{rewritten}"
        );
        check_clean(set, &mutated, &ctx);
    }
    in_place
}

/// A repaired object has nothing left to repair (fixing twice changes nothing).
pub fn check_clean(set: &PolicySet, mutated: &Value, ctx: &Context<'_>) {
    let json = serde_json::to_vec(mutated).expect("a value encodes");
    let again = set
        .evaluate(&json, ctx)
        .unwrap_or_else(|e| panic!("the repaired object does not evaluate: {e}"));
    assert_eq!(
        again.mutated, None,
        "a repaired object is repaired again: {:?}",
        again.findings
    );
    let left: Vec<_> = again.findings.iter().filter(|f| f.fix.is_some()).collect();
    assert!(left.is_empty(), "fixes left after repair: {left:?}");
}
