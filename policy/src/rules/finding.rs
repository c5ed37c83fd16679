//! Findings: one problem each, with a stable code, severity, the object, the JSON path, a
//! message that says what to write instead, and (for mutate) the fix as JSON Patch operations.
//!
//! [`Code`] is the single definition of every finding code; the CLI's JSON, the module's
//! audit annotation and the README's table use exactly these strings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::source::path::JsonPath;

/// How bad a finding is. Error findings fail `apart check` and reject at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported, never blocks.
    Warning,
    /// Blocks: exit 1 in CI, a rejection at admission.
    Error,
}

macro_rules! codes {
    ($($variant:ident = $text:literal, $severity:ident, $meaning:literal, $remedy:literal;)*) => {
        /// The stable finding codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Code {
            $(
                #[doc = $meaning]
                #[serde(rename = $text)]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code's stable string.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text),* }
            }

            /// The code's severity.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity),* }
            }

            /// One sentence on what the code means.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning),* }
            }

            /// What to write instead (each finding's message says it for its own object).
            pub fn remedy(self) -> &'static str {
                match self { $(Code::$variant => $remedy),* }
            }
        }
    };
}

codes! {
    MissingAntiAffinity = "missing-anti-affinity", Error,
        "the subject has no term that keeps it apart from a peer group",
        "add a podAntiAffinity term whose labelSelector selects the peer group's pods, whose namespaces (or namespaceSelector) include the peers' namespaces, on the rule's topologyKey and at the rule's strength; `apart fix` adds it for mutate rules";
    NamespaceBlind = "namespace-blind", Error,
        "a term selects the peers' labels, but its namespace scope cannot see the peers' namespace: a silent no-op",
        "add the peers' namespaces to the term's namespaces (listing the pod's own namespace too keeps it in scope), or give the term a namespaceSelector that selects them";
    SelectorMismatch = "selector-mismatch", Error,
        "a term meant for the peers cannot match (all of) their labels",
        "correct the term's labelSelector so that it selects every pod of the peer group: check its keys, values and operators against the rule's peer selector";
    TopologyMismatch = "topology-mismatch", Error,
        "the term's topologyKey does not separate the rule's failure domain",
        "use the rule's topologyKey (kubernetes.io/hostname for nodes), or a required term on a wider well-known domain such as the zone";
    TooWeak = "too-weak", Error,
        "preferred where the rule says required, or a weight below the rule's",
        "use requiredDuringSchedulingIgnoredDuringExecution where the rule says required, or raise the preferred term's weight to the rule's";
    HardOnSingleton = "hard-on-singleton", Warning,
        "required anti-affinity on a single-replica subject may leave it unschedulable",
        "use a preferred term instead, or run more than one replica, so the pod can still be scheduled when every domain holds a peer";
    PeersNotFound = "peers-not-found", Warning,
        "in a manifest set, no object carries pods that the peer group selects",
        "check the peer group's labelSelector and namespaces for a typo, or add the peers' manifests to the set that is checked";
    InvalidAffinity = "invalid-affinity", Error,
        "the affinity itself would be rejected by the API server",
        "make the affinity valid as the API server checks it: a non-empty topologyKey, weights within 1..100, known operators with the values they need, no unknown fields";
    CoLocated = "co-located", Error,
        "a running subject pod shares a failure domain with a peer right now (what one domain's loss takes down together)",
        "move one of the pods to another failure domain, e.g. delete the subject pod so that the scheduler places it again with its anti-affinity";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace` (as written; absent for cluster-scoped or unset).
    pub namespace: Option<String>,
    /// `metadata.name` (or `generateName`).
    pub name: Option<String>,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, " {ns}/")?;
        } else {
            write!(f, " ")?;
        }
        f.write_str(self.name.as_deref().unwrap_or("<unnamed>"))
    }
}

/// One RFC 6902 operation of a fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    /// `add` or `replace`.
    pub op: String,
    /// JSON Pointer.
    pub path: String,
    /// The value written.
    pub value: Value,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The stable code.
    pub code: Code,
    /// The code's severity.
    pub severity: Severity,
    /// The policy (`metadata.name`) that found it.
    pub policy: String,
    /// The object.
    pub object: ObjectRef,
    /// Where in the object (JSONPath).
    pub path: String,
    /// What is wrong and what to write instead.
    pub message: String,
    /// For `action: mutate`, the operations that repair it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<Vec<PatchOp>>,
}

impl Finding {
    pub(crate) fn new(
        code: Code,
        policy: &str,
        object: &ObjectRef,
        path: &JsonPath,
        message: String,
    ) -> Self {
        Self {
            code,
            severity: code.severity(),
            policy: policy.to_owned(),
            object: object.clone(),
            path: path.to_string(),
            message,
            fix: None,
        }
    }
}
