//! Admission: a Kubewarden `ValidationRequest` in, a verdict out.
//!
//! The request is read leanly (the object is borrowed as raw JSON and read once by the
//! evaluator), so validating costs about two passes over the object's text. The verdict is
//! what the module returns to policy-server and what `apart check` reports, so CI and the
//! cluster cannot disagree.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::kube::object::ObjectView;
use crate::source::path::{JsonPath, Segment};

use crate::error::ObjectError;
use crate::kube::affinity::NamespaceFacts;
use crate::placement::colocation::{self, KubernetesHost};
use crate::rules::evaluate::Context;
use crate::rules::finding::{Finding, Severity};
use crate::rules::policy::PolicySet;

/// The audit annotation that carries the findings as JSON.
pub const FINDINGS_ANNOTATION: &str = "apart.dev/findings";

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
            // Read again, tracking the path, only to say where the problem is.
            let mut de = serde_json::Deserializer::from_slice(json);
            let located = serde_path_to_error::deserialize::<_, ValidationRequest<'_>>(&mut de).err();
            let path = located.as_ref().map(|l| crate::error::serde_path(l.path())).unwrap_or_default();
            let in_object = matches!(path.segments(), [Segment::Name(r), Segment::Name(o), ..] if r == "request" && o == "object");
            if in_object {
                let inner: Vec<Segment> = path.segments().iter().skip(2).cloned().collect();
                let at = inner.iter().fold(JsonPath::root(), |p, s| match s {
                    Segment::Name(n) => p.name(n),
                    Segment::Index(i) => p.index(*i),
                });
                ObjectError {
                    message: format!("cannot read the object: {at}: {}", strip_position(&e.to_string())),
                }
            } else {
                ObjectError {
                    message: format!("the validation request is not valid JSON of the expected shape: {e}"),
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

/// Only the object of a validation request, read whole (for repairs and value targets).
#[derive(Deserialize)]
struct WholeObject {
    request: WholeRequest,
}

#[derive(Deserialize)]
struct WholeRequest {
    object: Value,
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
    pub mutated_object: Option<Value>,
}

impl Verdict {
    fn accept() -> Self {
        Self {
            accepted: true,
            ..Self::default()
        }
    }

    /// A rejection that is not about findings (unreadable input).
    pub fn reject(message: String) -> Self {
        Self {
            accepted: false,
            message: Some(message),
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

fn rejection(findings: &[&Finding], object: &crate::ObjectRef) -> String {
    let mut out = format!(
        "apart: {} {} on {object}:",
        findings.len(),
        if findings.len() == 1 {
            "problem"
        } else {
            "problems"
        }
    );
    for f in findings {
        out.push('\n');
        out.push_str(&line(f));
    }
    out
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
    if matches!(request.operation.as_str(), "DELETE" | "CONNECT")
        || request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        return Verdict::accept();
    }
    let Some(object) = request.object else {
        return Verdict::accept();
    };
    let facts = NamespaceFacts::default();
    let ctx = Context {
        default_namespace: request
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default"),
        namespaces: &facts,
    };
    // Only a CREATE: an UPDATE of a running pod (labels, finalizers) must not be blocked for
    // where the pod already runs; binding goes through the `binding` subresource anyway.
    let subject = match &host {
        Some(_) if request.operation == "CREATE" => object.bound_pod(ctx.default_namespace),
        _ => None,
    };
    let mut whole = || -> Result<Value, ObjectError> {
        serde_json::from_slice::<WholeObject>(payload)
            .map(|w| w.request.object)
            .map_err(|e| ObjectError {
                message: format!("cannot read the object: {e}"),
            })
    };
    let evaluation = match policies.evaluate_view(object, &ctx, &mut whole) {
        Ok(e) => e,
        Err(e) => return Verdict::reject(format!("apart: {e}")),
    };
    let warnings = |fs: &[Finding]| -> Vec<String> {
        fs.iter()
            .filter(|f| f.severity == Severity::Warning)
            .map(line)
            .collect()
    };
    let mut unchecked = None;
    let co_located = match (subject, host) {
        (Some(subject), Some(host)) => {
            match colocation::check(host, &subject, &evaluation.object, policies) {
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
                    unchecked = Some(format!(
                        "apart: co-location of Pod {}/{} on node {} not checked{grant}: {e}",
                        subject.namespace, subject.name, subject.node
                    ));
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    let mut verdict = Verdict {
        findings: evaluation.findings.clone(),
        ..Verdict::default()
    };
    verdict.findings.extend(co_located.iter().cloned());
    let mut remaining = match &evaluation.mutated {
        None => evaluation.findings,
        Some(mutated) => {
            let text = mutated.to_string();
            match policies.evaluate(text.as_bytes(), &ctx) {
                Ok(after) => after.findings,
                Err(e) => {
                    return Verdict::reject(format!(
                        "apart: the repaired object cannot be read: {e}"
                    ));
                }
            }
        }
    };
    // A repair cannot move a running pod: co-located findings remain whatever was repaired.
    remaining.extend(co_located);
    let errors: Vec<&Finding> = remaining
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        verdict.accepted = true;
        verdict.mutated_object = evaluation.mutated;
    } else {
        verdict.message = Some(rejection(&errors, &evaluation.object));
    }
    verdict.warnings = warnings(&remaining);
    verdict.warnings.extend(unchecked);
    verdict
}
