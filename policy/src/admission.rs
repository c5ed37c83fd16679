//! Admission: a Kubewarden `ValidationRequest` in, a verdict out.
//!
//! The request is read leanly (the object is borrowed as raw JSON and read once by the
//! evaluator), so validating costs about two passes over the object's text. The verdict is
//! what the module returns to policy-server and what `apart check` reports, so CI and the
//! cluster cannot disagree.
//!
//! The verdict follows the object's lifecycle, not only its findings (the README's table):
//!
//! - DELETE, CONNECT and subresource requests, and any object whose deletion has begun
//!   (`metadata.deletionTimestamp`), are accepted untouched: a deletion must be able to end.
//! - CREATE is judged: error findings reject, `action: mutate` rules repair.
//! - UPDATE of a Pod is accepted and never patched: a pod's affinity cannot change after it
//!   is created (the API server refuses the patch), so findings are warnings.
//! - The mirror of a static pod is never rejected nor patched: the kubelet runs the static
//!   pod from its file whatever admission answers.
//! - Any other UPDATE is compared with its `oldObject`, pod source by pod source
//!   ([`object::update_changes`]). A source the update leaves as it was holds an *existing*
//!   violation: accepted with a warning (`existingViolations: allow`, the default) or
//!   rejected (`deny`), and never patched, since a repair would roll out pods nobody asked
//!   to restart. A changed source is judged and repaired as on CREATE, except a Job's pod
//!   template, which the API server never lets an UPDATE change: it is judged, not patched.
//!   An UPDATE without `oldObject` is judged as a CREATE.
//!
//! Messages name the object as the API server does, and never echo a huge value whole
//! ([`names::clip_values`]).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::ObjectError;
use crate::kube::affinity::NamespaceFacts;
use crate::kube::names;
use crate::kube::object::{self, ObjectName, ObjectView, SourceChange};
use crate::placement::colocation::{self, KubernetesHost, Placement};
use crate::rules::evaluate::Context;
use crate::rules::finding::{Finding, Severity};
use crate::rules::policy::{ExistingViolations, PolicySet};
use crate::source::path::{JsonPath, Segment};
use crate::source::splice::{self, MemberSpan};

/// The audit annotation key that carries the findings as JSON. The API server writes each
/// webhook audit annotation as `<webhook name>/<key>` and drops a key that does not make a
/// qualified name of it (one `/` at most), so the key has no prefix of its own: with
/// Kubewarden the audit log shows `clusterwide-<policy>.kubewarden.admission/apart-findings`.
pub const FINDINGS_ANNOTATION: &str = "apart-findings";

/// `request.kind`.
#[derive(Debug, Deserialize, Default)]
pub struct GroupVersionKind {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// The parts of a Kubernetes `AdmissionRequest` apart reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest<'a> {
    /// Request UID.
    #[serde(default)]
    pub uid: String,
    /// Kind of the object.
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default)]
    pub operation: String,
    /// Namespace of the request.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Subresource (`scale`, `status`, ...), if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object (absent for DELETE), read leanly in the same pass as the request.
    #[serde(default, borrow)]
    pub object: Option<ObjectView<'a>>,
    /// The object before an UPDATE, kept as raw JSON: only an UPDATE reads it, to compare.
    #[serde(default, borrow)]
    pub old_object: Option<&'a RawValue>,
}

/// Kubewarden's `ValidationRequest`: the admission request and the policy settings.
#[derive(Debug, Deserialize)]
pub struct ValidationRequest<'a> {
    /// The admission request.
    #[serde(borrow)]
    pub request: AdmissionRequest<'a>,
    /// The settings, raw (compiled once and cached by the caller).
    #[serde(default, borrow)]
    pub settings: Option<&'a RawValue>,
}

impl<'a> ValidationRequest<'a> {
    /// Reads a `ValidationRequest` in one pass over its text.
    pub fn parse(json: &'a [u8]) -> Result<Self, ObjectError> {
        serde_json::from_slice(json).map_err(|e| {
            let path = crate::source::locate::error_path(json, &e);
            let in_object = matches!(path.segments(), [Segment::Name(r), Segment::Name(o), ..] if r == "request" && o == "object");
            if in_object {
                let inner: Vec<Segment> = path.segments().iter().skip(2).cloned().collect();
                let at = inner.iter().fold(JsonPath::root(), |p, s| match s {
                    Segment::Name(n) => p.name(n),
                    Segment::Index(i) => p.index(*i),
                });
                ObjectError {
                    message: names::clip_values(&format!(
                        "cannot read the object: {}: {}",
                        names::shortened(&at.to_string()),
                        strip_position(&e.to_string())
                    )),
                }
            } else {
                ObjectError {
                    message: names::clip_values(&format!(
                        "the validation request is not valid JSON of the expected shape: {e}"
                    )),
                }
            }
        })
    }
}

fn strip_position(message: &str) -> &str {
    message
        .find(" at line ")
        .and_then(|i| message.get(..i))
        .unwrap_or(message)
}

/// The object's JSON text in a validation request, found when a repair or a value target
/// needs more than the lean view (once: one pass over the request, which is what reading
/// `request.object` whole would cost anyway).
struct ObjectText<'a> {
    payload: &'a [u8],
    found: Option<Result<&'a str, ObjectError>>,
}

impl<'a> ObjectText<'a> {
    fn new(payload: &'a [u8]) -> Self {
        Self {
            payload,
            found: None,
        }
    }

    fn get(&mut self) -> Result<&'a str, ObjectError> {
        let payload = self.payload;
        self.found
            .get_or_insert_with(|| {
                let unreadable = |e: &dyn std::fmt::Display| ObjectError {
                    message: format!("cannot read the object: {e}"),
                };
                let text = std::str::from_utf8(payload).map_err(|e| unreadable(&e))?;
                let path = [Segment::Name("request".to_owned())];
                // The payload was read as JSON before anything asks for the object's text.
                match splice::member(text, &path, "object") {
                    Some(MemberSpan::Value(range)) => {
                        text.get(range).ok_or_else(|| unreadable(&"out of range"))
                    }
                    _ => Err(unreadable(&"the request has no object")),
                }
            })
            .clone()
    }

    fn whole(&mut self) -> Result<Value, ObjectError> {
        let text = self.get()?;
        serde_json::from_str(text).map_err(|e| ObjectError {
            message: format!("cannot read the object: {e}"),
        })
    }
}

/// A repaired object as JSON text, checked to be JSON: Kubewarden's `mutated_object`, written
/// as it is, with no tree in between. Its text is the submitted object's, except the repaired
/// affinities (or, where that could not be done in place, the whole object written anew).
#[derive(Debug, Clone)]
pub struct MutatedObject(Box<RawValue>);

impl MutatedObject {
    /// Checks that `json` is JSON.
    fn new(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(Self)
    }

    /// The object's JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The object read into a tree.
    pub fn to_value(&self) -> Value {
        // Checked to be JSON when it was made.
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

impl PartialEq for MutatedObject {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl serde::Serialize for MutatedObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The outcome of an admission review.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Let the request through?
    pub accepted: bool,
    /// Why not (error findings), for the user.
    pub message: Option<String>,
    /// Warnings for the user (warning findings).
    pub warnings: Vec<String>,
    /// Every finding on the object as submitted (with fixes for mutate rules).
    pub findings: Vec<Finding>,
    /// The repaired object, when the request is accepted after mutation.
    pub mutated_object: Option<MutatedObject>,
    /// The error findings on the object as submitted that this request is judged by, before
    /// any repair: what an engine that only validates denies (the OPA-ABI module, the
    /// Gatekeeper Rego). Empty for what the lifecycle lets through (a Pod UPDATE, an existing
    /// violation under `existingViolations: allow`, a deletion, a mirror pod).
    pub violations: Vec<Finding>,
}

impl Verdict {
    fn accept() -> Self {
        Self {
            accepted: true,
            ..Self::default()
        }
    }

    /// A rejection that is not about findings (unreadable input). A long value the message
    /// quotes is cut.
    pub fn reject(message: String) -> Self {
        Self {
            accepted: false,
            message: Some(names::clip_values(&message)),
            ..Self::default()
        }
    }

    /// The findings as the audit annotation value (JSON), when there are any.
    pub fn findings_annotation(&self) -> Option<String> {
        (!self.findings.is_empty())
            .then(|| serde_json::to_string(&self.findings).unwrap_or_default())
    }
}

fn line(f: &Finding) -> String {
    format!("[{}] {} at {}: {}", f.code, f.policy, f.path, f.message)
}

/// A finding's line with what the lifecycle made of it.
fn noted(f: &Finding, note: Option<&str>) -> String {
    match note {
        Some(n) => format!("{} ({n})", line(f)),
        None => line(f),
    }
}

fn rejection(findings: &[(&Finding, Option<&str>)], object: &ObjectName) -> String {
    let mut out = format!(
        "apart: {} {} on {object}:",
        findings.len(),
        if findings.len() == 1 {
            "problem"
        } else {
            "problems"
        }
    );
    for (f, note) in findings {
        out.push('\n');
        out.push_str(&noted(f, *note));
    }
    out
}

/// Where a request stands in its object's lifecycle.
#[derive(Debug, Clone, Copy)]
enum Stage<'a> {
    /// A CREATE (or an UPDATE without `oldObject`, or an operation apart does not know):
    /// judged and repaired.
    Create,
    /// The CREATE of a static pod's mirror.
    Mirror,
    /// An UPDATE of a Pod.
    PodUpdate,
    /// Any other UPDATE, with the object before it.
    Update(&'a RawValue),
}

/// What the lifecycle makes of an error finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// Judged as on CREATE: it rejects unless a repair removes it.
    Judged,
    /// Rejects, whatever the rule's action: no repair may be written now. Says why.
    Refused(&'static str),
    /// A warning only. Says why.
    Tolerated(&'static str),
}

const POD_UPDATE: &str = "not enforced on UPDATE: a Pod's affinity cannot change once it is created; fix its workload's pod template, then recreate the pod";
const MIRROR: &str = "not enforced: this is the mirror of a static pod, which the kubelet runs from its manifest file on its own node whatever admission answers; fix the static pod's manifest";
const EXISTING: &str = "an existing violation: this UPDATE leaves the pod template or the value target's affinity as it was, so existingViolations: allow lets it through unrepaired, as a repair now would restart pods nobody asked to restart; fix the manifest, or set existingViolations: deny to refuse such updates";
const EXISTING_DENIED: &str = "an existing violation, refused by existingViolations: deny: this UPDATE leaves the pod template or the value target's affinity as it was, and apart repairs nothing on such an UPDATE; fix the manifest in this update";
const JOB_EXISTING: &str = "an existing violation: a Job's pod template cannot change after it is created, so no UPDATE can repair it, and existingViolations: allow lets the update through; delete the Job and create it again with the term";
const JOB_EXISTING_DENIED: &str = "an existing violation, refused by existingViolations: deny: a Job's pod template cannot change after it is created, so no UPDATE can repair it; delete the Job and create it again with the term";
const JOB_CHANGED: &str = "a Job's pod template cannot be repaired on UPDATE, since the API server refuses changes to it: delete the Job and create it again with the term";

/// Is `path` (a finding's) `at` or below it?
fn under(path: &str, at: &str) -> bool {
    path.strip_prefix(at)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

impl Stage<'_> {
    /// What this stage makes of error finding `f`, given how the update changed each pod
    /// source (`changes`, for [`Stage::Update`]).
    fn treat(self, f: &Finding, changes: &[SourceChange], policies: &PolicySet) -> Treatment {
        match self {
            Stage::Create => Treatment::Judged,
            Stage::Mirror => Treatment::Tolerated(MIRROR),
            Stage::PodUpdate => Treatment::Tolerated(POD_UPDATE),
            Stage::Update(_) => {
                // The source the finding is about: the deepest scope above it (a spread
                // constraint's finding is the template's, as its affinity's are).
                let Some(change) = changes
                    .iter()
                    .filter(|c| under(&f.path, &c.scope.to_string()))
                    .max_by_key(|c| c.scope.segments().len())
                else {
                    return Treatment::Judged;
                };
                let deny = policies
                    .policy(&f.policy)
                    .is_some_and(|p| p.existing_violations == ExistingViolations::Deny);
                match (change.unchanged, change.immutable, deny) {
                    (true, false, false) => Treatment::Tolerated(EXISTING),
                    (true, false, true) => Treatment::Refused(EXISTING_DENIED),
                    (true, true, false) => Treatment::Tolerated(JOB_EXISTING),
                    (true, true, true) => Treatment::Refused(JOB_EXISTING_DENIED),
                    (false, true, _) => Treatment::Refused(JOB_CHANGED),
                    (false, false, _) => Treatment::Judged,
                }
            }
        }
    }

    /// May this stage write repairs at all? (An UPDATE then undoes those of the pod sources
    /// it leaves alone.)
    fn repairs(self) -> bool {
        matches!(self, Stage::Create | Stage::Update(_))
    }
}

/// Puts back, in `mutated`, what `original` has at `path` (removing what a repair created
/// there): the repair of a source the lifecycle leaves alone is undone.
fn restore(mutated: &mut Value, original: &Value, path: &JsonPath) {
    // The first member on the way that the original lacks is where the repair began.
    let mut at = JsonPath::root();
    for segment in path.segments() {
        at = match segment {
            Segment::Name(n) => at.name(n),
            Segment::Index(i) => at.index(*i),
        };
        match at.get(original) {
            Some(Value::Null) | None => break,
            Some(_) => {}
        }
    }
    match at.get(original) {
        Some(value) => {
            if let Some(slot) = at.get_mut(mutated) {
                *slot = value.clone();
            }
        }
        None => {
            let mut parent = at.clone();
            let last = at.segments().last().cloned();
            parent.pop();
            if let (Some(Value::Object(map)), Some(Segment::Name(name))) =
                (parent.get_mut(mutated), last)
            {
                map.shift_remove(&name);
            }
        }
    }
}

/// Reviews an admission request against a policy set. `payload` is the request's JSON text,
/// read again whole only when a value target or a repair needs the complete object. No
/// cluster context: a running Pod is judged by its manifest only.
pub fn review(policies: &PolicySet, request: AdmissionRequest<'_>, payload: &[u8]) -> Verdict {
    review_in(policies, request, payload, None)
}

/// As [`review`]; in addition, the CREATE of a Pod already bound to a node (what the audit
/// scanner sends for a running pod) that a policy protects is checked for co-located peers
/// through `host` ([`colocation::check`]). When the host cannot answer (the policy was
/// deployed without the `contextAwareResources` it needs), the check is skipped with a
/// warning; the request is never failed for it. Every other request takes [`review`]'s path
/// unchanged and makes no host call.
pub fn review_with_cluster(
    policies: &PolicySet,
    request: AdmissionRequest<'_>,
    payload: &[u8],
    host: &mut dyn KubernetesHost,
) -> Verdict {
    review_in(policies, request, payload, Some(host))
}

fn review_in(
    policies: &PolicySet,
    request: AdmissionRequest<'_>,
    payload: &[u8],
    host: Option<&mut dyn KubernetesHost>,
) -> Verdict {
    let operation = request.operation.as_str();
    if matches!(operation, "DELETE" | "CONNECT")
        || request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        return Verdict::accept();
    }
    let Some(mut object) = request.object else {
        return match operation {
            "CREATE" | "UPDATE" => Verdict::reject(format!(
                "apart: the {operation} request carries no object, so there is nothing to check: send request.object as the API server does"
            )),
            _ => Verdict::accept(),
        };
    };
    let kind = &request.kind;
    object.fill_type(&kind.group, &kind.version, &kind.kind);
    if object.deleting() {
        // Only finalizers are still to be removed; refusing that would leave the object
        // stuck in deletion.
        return Verdict::accept();
    }
    if object.api_version().is_empty() || object.kind().is_empty() {
        return Verdict::reject(
            "apart: the object has no apiVersion or kind, and request.kind names none, so apart cannot tell whether it carries pods: write apiVersion and kind (the API server always does)".to_owned(),
        );
    }
    let request_namespace = request.namespace.as_deref().filter(|n| !n.is_empty());
    let name = object.name(request_namespace);
    let stage = match (operation, request.old_object) {
        ("UPDATE", _) if object.is_pod() => Stage::PodUpdate,
        ("UPDATE", Some(old)) if old.get() != "null" => Stage::Update(old),
        _ if object.is_mirror_pod() => Stage::Mirror,
        _ => Stage::Create,
    };
    let facts = NamespaceFacts::default();
    let ctx = Context {
        default_namespace: request_namespace.unwrap_or("default"),
        namespaces: &facts,
    };
    // Only a CREATE: an UPDATE of a running pod (labels, finalizers) must not be blocked for
    // where the pod already runs; binding goes through the `binding` subresource anyway.
    let subject = match (&host, stage) {
        (Some(_), Stage::Create) if operation == "CREATE" => {
            object.bound_pod(ctx.default_namespace)
        }
        _ => None,
    };
    let mut text = ObjectText::new(payload);
    let mut evaluation = match policies.evaluate_view(object, &ctx, &mut || text.get()) {
        Ok(e) => e,
        Err(e) => return Verdict::reject(format!("apart: {e}")),
    };
    // Only an UPDATE with findings needs to know what it changed: the UPDATEs of objects no
    // rule is about (nearly all of them) cost no more than before.
    let changes = match stage {
        Stage::Update(old) if !evaluation.findings.is_empty() => {
            let targets = policies.value_targets();
            match object::update_changes(payload, old, &evaluation.object, &targets, &mut || {
                text.whole()
            }) {
                Ok(c) => c,
                Err(e) => return Verdict::reject(format!("apart: {e}")),
            }
        }
        _ => Vec::new(),
    };
    let mut warnings = Vec::new();
    let co_located = match (subject, host) {
        (Some(subject), Some(host)) => {
            let faulty: BTreeSet<&str> = evaluation
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| f.policy.as_str())
                .collect();
            match colocation::check(host, &subject, &evaluation.object, policies, &faulty) {
                Ok(found) if subject.placement == Placement::BoundByCreator => {
                    // The request is the binding itself: say what it does, refuse nothing.
                    warnings.extend(found.iter().map(line));
                    Vec::new()
                }
                Ok(found) => found,
                Err(e) => {
                    // A refused call is what a policy deployed without its context-aware
                    // resources meets; say what to grant.
                    let grant = match e {
                        colocation::ContextError::Host { .. } => {
                            " (the module needs contextAwareResources v1 Pod, v1 Node and v1 Namespace to check co-location)"
                        }
                        colocation::ContextError::Answer { .. } => "",
                    };
                    warnings.push(format!(
                        "apart: co-location of Pod {}/{} on node {} not checked{grant}: {e}",
                        subject.namespace, subject.name, subject.node
                    ));
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    let treat = |f: &Finding| stage.treat(f, &changes, policies);
    let mut verdict = Verdict {
        findings: evaluation.findings.clone(),
        ..Verdict::default()
    };
    verdict.findings.extend(co_located.iter().cloned());
    verdict.violations = verdict
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && !matches!(treat(f), Treatment::Tolerated(_)))
        .cloned()
        .collect();
    // Repairs only where the lifecycle allows them: none for a Pod UPDATE or a mirror pod,
    // and on an UPDATE none for a source left as it was or a Job's template.
    let left_alone: Vec<&JsonPath> = changes
        .iter()
        .filter(|c| c.unchanged || c.immutable)
        .map(|c| &c.affinity_path)
        .collect();
    let mut mutated = evaluation.mutated.take().filter(|_| stage.repairs());
    if let (Some(m), false) = (mutated.as_deref(), left_alone.is_empty()) {
        let (original, repaired) = match (text.whole(), serde_json::from_str::<Value>(m)) {
            (Ok(o), Ok(r)) => (o, r),
            (Err(e), _) => return Verdict::reject(format!("apart: {e}")),
            (_, Err(e)) => {
                return Verdict::reject(format!("apart: the repaired object cannot be read: {e}"));
            }
        };
        let mut repaired = repaired;
        for path in &left_alone {
            restore(&mut repaired, &original, path);
        }
        mutated = (repaired != original).then(|| repaired.to_string());
    }
    let mut remaining = match &mutated {
        None => evaluation.findings,
        Some(_) => policies.recheck(&evaluation, &ctx, |source| {
            !left_alone.contains(&&source.affinity_path)
        }),
    };
    // A repair cannot move a running pod: co-located findings remain whatever was repaired.
    remaining.extend(co_located);
    let mut refusing = Vec::new();
    let mut warned = Vec::new();
    for f in &remaining {
        match (f.severity, treat(f)) {
            (Severity::Warning, _) => warned.push(line(f)),
            (Severity::Error, Treatment::Judged) => refusing.push((f, None)),
            (Severity::Error, Treatment::Refused(why)) => refusing.push((f, Some(why))),
            (Severity::Error, Treatment::Tolerated(why)) => warned.push(noted(f, Some(why))),
        }
    }
    if refusing.is_empty() {
        verdict.accepted = true;
        verdict.mutated_object = match mutated.map(MutatedObject::new).transpose() {
            Ok(m) => m,
            Err(e) => {
                return Verdict::reject(format!(
                    "apart: internal: the repaired object is not JSON ({e}); please report this with the request"
                ));
            }
        };
    } else {
        verdict.message = Some(names::clip_values(&rejection(&refusing, &name)));
    }
    warned.extend(warnings);
    verdict.warnings = warned.iter().map(|w| names::clip_values(w)).collect();
    for f in verdict
        .findings
        .iter_mut()
        .chain(verdict.violations.iter_mut())
    {
        f.message = names::clip_values(&f.message);
    }
    verdict
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_path_is_under_another_at_a_segment_boundary() {
        let at = "$.spec.template.spec.affinity";
        assert!(under(at, at));
        assert!(under("$.spec.template.spec.affinity.podAntiAffinity", at));
        assert!(under("$.spec.template.spec.affinity['x']", at));
        assert!(!under("$.spec.template.spec.affinityX", at));
        assert!(!under("$.spec", at));
    }

    #[test]
    fn restore_undoes_a_repair_and_the_parents_it_created() {
        let original = json!({"spec": {"values": {"other": 1}}});
        let path = JsonPath::parse("$.spec.values.server.affinity").unwrap();
        let mut mutated = json!({"spec": {"values": {"other": 1,
            "server": {"affinity": {"podAntiAffinity": {}}}}}});
        restore(&mut mutated, &original, &path);
        assert_eq!(mutated, original);
        // A value that was there is put back as it was; a null one stays null.
        let original = json!({"spec": {"affinity": null, "template": {"a": [1]}}});
        let mut mutated = json!({"spec": {"affinity": {"x": 1}, "template": {"a": [1, 2]}}});
        restore(
            &mut mutated,
            &original,
            &JsonPath::parse("$.spec.affinity").unwrap(),
        );
        restore(
            &mut mutated,
            &original,
            &JsonPath::parse("$.spec.template.a").unwrap(),
        );
        assert_eq!(mutated, original);
    }

    fn verdict(policy: &str, request: Value) -> Verdict {
        let mut set = PolicySet::default();
        set.parse_into(policy, "p.yaml").unwrap();
        let payload = json!({ "request": request }).to_string();
        let parsed = ValidationRequest::parse(payload.as_bytes()).unwrap();
        review(&set, parsed.request, payload.as_bytes())
    }

    const POLICY: &str = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: p}\nspec:\n  subject: {labelSelector: {matchLabels: {app: web}}}\n  apartFrom: [{namespaces: [db], labelSelector: {matchLabels: {app: db}}}]\n  action: mutate\n";

    fn deployment(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn an_update_is_repaired_only_where_it_changes_the_template() {
        let update = |old: Value, new: Value| {
            json!({"uid": "u", "operation": "UPDATE", "namespace": "shop",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "object": new, "oldObject": old})
        };
        let same = verdict(POLICY, update(deployment("web:1"), deployment("web:1")));
        assert!(same.accepted && same.mutated_object.is_none());
        assert_eq!(same.violations, [], "an existing violation is let through");
        assert!(
            same.warnings[0].contains("an existing violation"),
            "{:?}",
            same.warnings
        );
        let denied = verdict(
            &format!("{POLICY}  existingViolations: deny\n"),
            update(deployment("web:1"), deployment("web:1")),
        );
        assert!(!denied.accepted && denied.mutated_object.is_none());
        assert_eq!(denied.violations.len(), 1);
        let bumped = verdict(POLICY, update(deployment("web:1"), deployment("web:2")));
        assert!(bumped.accepted && bumped.mutated_object.is_some());
        assert_eq!(bumped.violations.len(), 1, "judged as a CREATE");
    }

    #[test]
    fn a_request_without_an_object_or_a_type_is_refused_and_a_deletion_passes() {
        let no_object = verdict(POLICY, json!({"uid": "u", "operation": "CREATE"}));
        assert!(!no_object.accepted);
        let mut untyped = deployment("web:1");
        untyped.as_object_mut().unwrap().remove("kind");
        let refused = verdict(
            POLICY,
            json!({"uid": "u", "operation": "CREATE", "object": untyped}),
        );
        assert!(
            refused
                .message
                .unwrap()
                .contains("cannot tell whether it carries pods")
        );
        let mut deleting = deployment("web:1");
        deleting["metadata"]["deletionTimestamp"] = json!("2025-03-02T08:30:00Z");
        let passed = verdict(
            POLICY,
            json!({"uid": "u", "operation": "UPDATE", "object": deleting, "oldObject": deployment("web:1")}),
        );
        assert_eq!(passed, Verdict::accept());
    }
}
