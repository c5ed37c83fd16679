//! `apart check` and `apart fix`: every manifest goes through the policy module's `validate`
//! exactly as policy-server would send it, then the set-level checks run over the whole set.

use std::path::PathBuf;

use apart_policy::admission::FINDINGS_ANNOTATION;
use apart_policy::source::path::JsonPath;
use apart_policy::source::read;
use apart_policy::{Finding, ObjectRef, PatchOp, PolicySet, Severity};
use serde::Serialize;
use serde_json::{Value, json};

use crate::diagnostic::Diagnostic;
use crate::host::evaluator::Evaluator;
use crate::manifests::{self, Manifest, Source};

/// Policies read from files, with where each came from.
#[derive(Debug)]
pub struct Policies {
    /// The compiled set.
    pub set: PolicySet,
    /// The policy files.
    pub sources: Vec<Source>,
    /// For each policy: (source index, document index).
    pub origins: Vec<(usize, usize)>,
}

impl Policies {
    /// Reads and checks policy files.
    pub fn read(paths: &[PathBuf]) -> Result<Self, Diagnostic> {
        if paths.is_empty() {
            return Err(Diagnostic::Usage(
                "no policy: pass -p POLICY.yaml".to_owned(),
            ));
        }
        let sources = manifests::read_sources(paths)?;
        let mut set = PolicySet::default();
        let mut origins = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            for doc in set.parse_into(&src.text, &src.name)? {
                origins.push((i, doc));
            }
        }
        Ok(Self {
            set,
            sources,
            origins,
        })
    }

    /// The Kubewarden settings carrying these policies.
    pub fn settings(&self) -> Vec<u8> {
        self.set.settings().to_string().into_bytes()
    }
}

/// A finding as the CLI reports it: the engine's finding plus file and line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reported {
    /// Stable code.
    pub code: apart_policy::Code,
    /// Severity.
    pub severity: Severity,
    /// Policy name.
    pub policy: String,
    /// The object.
    pub object: ObjectRef,
    /// The file.
    pub file: String,
    /// The line of the path (or of its nearest written parent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// JSONPath inside the object.
    pub path: String,
    /// What to do.
    pub message: String,
    /// The repair, for mutate rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Vec<PatchOp>>,
    /// Index of the manifest it is about (none for set findings).
    #[serde(skip)]
    pub manifest: Option<usize>,
}

/// The result of running the policies over a manifest set.
#[derive(Debug)]
pub struct Outcome {
    /// Every finding, object findings in input order, then set findings.
    pub findings: Vec<Reported>,
    /// The objects read.
    pub manifests: Vec<Manifest>,
    /// Per object, the repaired object when a mutate rule changed it.
    pub mutated: Vec<Option<Value>>,
    /// Per object, was it accepted at admission (after repairs)?
    pub accepted: Vec<bool>,
}

impl Outcome {
    /// Number of findings of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Builds the `ValidationRequest` policy-server sends for creating `object`.
pub fn validation_request(
    uid: usize,
    object: &Value,
    default_namespace: &str,
    settings: &Value,
) -> Value {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_namespace);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())});
    json!({
        "request": {
            "uid": format!("apart-{uid}"),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "apart", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        },
        "settings": settings
    })
}

fn line_of(src: &Source, document: usize, path: &JsonPath) -> Option<usize> {
    read::locate_nearest(&src.text, document, path).map(|s| s.start.line)
}

fn report(f: Finding, file: &str, line: Option<usize>, manifest: Option<usize>) -> Reported {
    Reported {
        code: f.code,
        severity: f.severity,
        policy: f.policy,
        object: f.object,
        file: file.to_owned(),
        line,
        path: f.path,
        message: f.message,
        fix: f.fix,
        manifest,
    }
}

/// Runs the policies over the manifests.
pub fn run(
    evaluator: &dyn Evaluator,
    policies: &Policies,
    sources: &[Source],
    default_namespace: &str,
) -> Result<Outcome, Diagnostic> {
    let settings_bytes = policies.settings();
    let answer = evaluator
        .validate_settings(&settings_bytes)
        .map_err(|e| Diagnostic::Module(e.to_string()))?;
    if !answer.valid {
        return Err(Diagnostic::Module(format!(
            "the module refused the policies: {}",
            answer.message.unwrap_or_default()
        )));
    }
    let settings = policies.set.settings();
    let manifests = manifests::objects(sources)?;
    let mut findings = Vec::new();
    let mut mutated = Vec::with_capacity(manifests.len());
    let mut accepted = Vec::with_capacity(manifests.len());
    let mut members = Vec::with_capacity(manifests.len());
    for (uid, m) in manifests.iter().enumerate() {
        let src = sources
            .get(m.source)
            .ok_or_else(|| Diagnostic::Module("internal: source index".to_owned()))?;
        let request = validation_request(uid, &m.value, default_namespace, &settings);
        let response = evaluator
            .validate(request.to_string().as_bytes())
            .map_err(|e| Diagnostic::Module(format!("{}:{}: {e}", src.name, m.line)))?;
        let object_findings: Vec<Finding> = match response
            .audit_annotations
            .as_ref()
            .and_then(|a| a.get(FINDINGS_ANNOTATION))
        {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                Diagnostic::Module(format!(
                    "the module's findings annotation is not valid: {e}"
                ))
            })?,
            None => Vec::new(),
        };
        if !response.accepted && object_findings.is_empty() {
            // Not about the rules: the module could not read the object.
            return Err(Diagnostic::Input {
                file: src.name.clone(),
                line: m.line,
                column: 1,
                message: response
                    .message
                    .unwrap_or_else(|| "rejected without a message".to_owned()),
            });
        }
        for f in object_findings {
            let line = JsonPath::parse(&f.path)
                .ok()
                .and_then(|p| line_of(src, m.document, &m.base.join(&p)));
            findings.push(report(f, &src.name, line, Some(uid)));
        }
        members.push(
            policies
                .set
                .set_member(m.value.to_string().as_bytes(), default_namespace),
        );
        mutated.push(response.mutated_object);
        accepted.push(response.accepted);
    }
    for f in policies.set.check_set(&members) {
        let origin = policies
            .set
            .policies()
            .iter()
            .position(|p| p.name == f.policy)
            .and_then(|i| policies.origins.get(i));
        let (file, line) =
            match origin.and_then(|(s, d)| policies.sources.get(*s).map(|src| (src, *d))) {
                Some((src, doc)) => (
                    src.name.clone(),
                    JsonPath::parse(&f.path)
                        .ok()
                        .and_then(|p| line_of(src, doc, &p)),
                ),
                None => (String::new(), None),
            };
        findings.push(report(f, &file, line, None));
    }
    Ok(Outcome {
        findings,
        manifests,
        mutated,
        accepted,
    })
}
