//! Recorded host-capability interactions, answered to a policy module the way
//! `kwctl run --replay-host-capabilities-interactions FILE` answers them: tests and `apart run`
//! evaluate context-aware requests without a cluster.
//!
//! The file is kwctl's session format (what `kwctl run --record-host-capabilities-interactions`
//! writes), YAML or JSON: a list of exchanges, each a request (YAML text whose tag names the
//! request type, then the request's fields as the Kubewarden SDK names them) and the host's
//! answer, a `Success` with the payload text or an `Error` with the host's message:
//!
//! ```yaml
//! - type: Exchange
//!   request: |
//!     !KubernetesListResourceAll
//!     api_version: v1
//!     kind: Pod
//!     label_selector: null
//!     field_selector: spec.nodeName=worker-2
//!     field_masks: null
//!   response:
//!     type: Success
//!     payload: '{"apiVersion": "v1", "kind": "List", "items": [...]}'
//! - type: Exchange
//!   request: |
//!     !KubernetesGetResource
//!     api_version: v1
//!     kind: Node
//!     name: worker-9
//!     namespace: null
//!     disable_cache: false
//!   response:
//!     type: Error
//!     message: Cannot find v1/Node named 'worker-9'
//! ```
//!
//! kwctl replays the exchanges strictly in the recorded order; apart answers each call with
//! the first exchange whose request equals it (a `null` field is the same as an absent one),
//! whatever the order, so a session kwctl recorded replays unchanged and a hand-written one
//! need not follow the guest's call order. A call that no exchange answers gets a host error,
//! as from a policy-server that does not grant the resource.

use std::path::Path;

use apart_policy::placement::colocation::KubernetesHost;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The request types (kwctl's `CallbackRequestType` variants) apart replays, and the waPC
/// namespace and operation a guest calls them with.
const REQUEST_TYPES: &[(&str, &str, &str)] = &[
    ("KubernetesGetResource", "kubernetes", "get_resource"),
    (
        "KubernetesListResourceAll",
        "kubernetes",
        "list_resources_all",
    ),
    (
        "KubernetesListResourceNamespace",
        "kubernetes",
        "list_resources_by_namespace",
    ),
];

/// The waPC binding every Kubewarden host capability is called under.
const BINDING: &str = "kubewarden";

/// A replay file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The text is not a session of exchanges.
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what is expected.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum ExchangeDoc {
    Exchange {
        request: String,
        response: ResponseDoc,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum ResponseDoc {
    Success { payload: String },
    Error { message: String },
}

/// One recorded call and its answer.
#[derive(Debug, Clone)]
struct Exchange {
    namespace: &'static str,
    operation: &'static str,
    /// The request's fields, `null` ones dropped.
    request: Map<String, Value>,
    answer: Result<Vec<u8>, String>,
}

/// A set of recorded interactions.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    exchanges: Vec<Exchange>,
}

/// One call a guest made to its host, for tests and reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostCall {
    /// `namespace/operation`, e.g. `kubernetes/list_resources_all`.
    pub call: String,
    /// The request payload (JSON when it is JSON, else its text).
    pub request: Value,
    /// Did the host answer it (rather than fail it)?
    pub answered: bool,
}

impl HostCall {
    /// Records a call.
    pub fn new(namespace: &str, operation: &str, payload: &[u8], answered: bool) -> Self {
        Self {
            call: format!("{namespace}/{operation}"),
            request: serde_json::from_slice(payload)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned())),
            answered,
        }
    }
}

/// Drops `null` fields: kwctl writes `label_selector: null`, a guest may leave it out.
fn without_nulls(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter().filter(|(_, v)| !v.is_null()).collect()
}

/// Equal as requests: YAML may read `name: 1234` as a number where the guest sends a string.
fn same(recorded: &Value, asked: &Value) -> bool {
    match (recorded, asked) {
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            n.to_string() == *s
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => same_fields(a, b),
        _ => recorded == asked,
    }
}

fn same_fields(recorded: &Map<String, Value>, asked: &Map<String, Value>) -> bool {
    let present = |m: &Map<String, Value>| m.iter().filter(|(_, v)| !v.is_null()).count();
    present(recorded) == present(asked)
        && recorded
            .iter()
            .filter(|(_, v)| !v.is_null())
            .all(|(k, v)| asked.get(k).is_some_and(|w| same(v, w)))
}

impl Replay {
    /// No interactions: every host call fails.
    pub fn empty() -> Self {
        Self::default()
    }

    /// How many exchanges the file recorded.
    pub fn len(&self) -> usize {
        self.exchanges.len()
    }

    /// True when the file recorded none.
    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }

    /// Reads a session file.
    pub fn read(path: &Path) -> Result<Self, ReplayError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Reads a session from its text; `origin` (the file name) is in every error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ReplayError> {
        let invalid = |line: usize, column: usize, message: String| ReplayError::Invalid {
            origin: origin.to_owned(),
            line,
            column,
            message,
        };
        let docs = apart_policy::source::read::parse_documents(text)
            .map_err(|e| invalid(e.position.line, e.position.column, e.message))?;
        let mut exchanges = Vec::new();
        for doc in docs {
            let positions = doc.positions;
            let start = doc.start;
            let at = |path: &apart_policy::source::path::JsonPath| {
                positions
                    .nearest(path)
                    .map_or((start.line, start.column), |(s, _)| {
                        let p = s.start();
                        (p.line, p.column)
                    })
            };
            let Value::Array(items) = doc.value else {
                return Err(invalid(
                    doc.start.line,
                    doc.start.column,
                    "expected a list of exchanges (`- type: Exchange`, with `request` and `response`), as kwctl records them".to_owned(),
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let base = apart_policy::source::path::JsonPath::root().index(i);
                let parsed = ExchangeDoc::deserialize(item).map_err(|e| {
                    let (line, column) = at(&base);
                    invalid(line, column, format!("exchange {i}: {e}"))
                })?;
                let ExchangeDoc::Exchange { request, response } = parsed;
                let (namespace, operation, fields) = parse_request(&request).map_err(|m| {
                    let (line, column) = at(&base.clone().name("request"));
                    invalid(line, column, format!("exchange {i}: request: {m}"))
                })?;
                exchanges.push(Exchange {
                    namespace,
                    operation,
                    request: fields,
                    answer: match response {
                        ResponseDoc::Success { payload } => Ok(payload.into_bytes()),
                        ResponseDoc::Error { message } => Err(message),
                    },
                });
            }
        }
        Ok(Self { exchanges })
    }

    /// The recorded answer to a waPC host call: the payload, or the host's error message.
    pub fn answer(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let asked = serde_json::from_slice::<Map<String, Value>>(payload).ok();
        let found = (binding == BINDING)
            .then(|| {
                self.exchanges.iter().find(|e| {
                    e.namespace == namespace
                        && e.operation == operation
                        && asked.as_ref().is_some_and(|a| same_fields(&e.request, a))
                })
            })
            .flatten();
        match found {
            Some(exchange) => exchange.answer.clone(),
            None => Err(format!(
                "no recorded interaction answers {binding}/{namespace}/{operation} {}",
                String::from_utf8_lossy(payload)
            )),
        }
    }
}

/// `!KubernetesListResourceAll\napi_version: v1\n...`: the tag names the request type, the
/// rest is its fields.
fn parse_request(text: &str) -> Result<(&'static str, &'static str, Map<String, Value>), String> {
    let text = text.trim_start();
    let tag_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let (tag, fields) = text.split_at(tag_end);
    let Some(name) = tag.strip_prefix('!') else {
        return Err("expected YAML text that starts with the request type's tag, e.g. `!KubernetesListResourceAll`".to_owned());
    };
    let Some(&(_, namespace, operation)) = REQUEST_TYPES.iter().find(|(t, _, _)| *t == name) else {
        let known: Vec<&str> = REQUEST_TYPES.iter().map(|(t, _, _)| *t).collect();
        return Err(format!(
            "request type {name} is not replayed by apart (it replays {})",
            known.join(", ")
        ));
    };
    let docs = apart_policy::source::read::parse_documents(fields)
        .map_err(|e| format!("the fields of {name}: {e}"))?;
    let map = match docs.into_iter().next().map(|d| d.value) {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "the fields of {name} must be a mapping, got {other}"
            ));
        }
    };
    Ok((namespace, operation, without_nulls(map)))
}

/// A [`KubernetesHost`] that answers from a [`Replay`] and records the calls: the guest's own
/// functions, run natively, meet the same host as the built module on wasmtime.
pub struct ReplayHost<'a> {
    replay: &'a Replay,
    /// The calls made, in order.
    pub calls: Vec<HostCall>,
}

impl<'a> ReplayHost<'a> {
    /// A host answering from `replay`.
    pub fn new(replay: &'a Replay) -> Self {
        Self {
            replay,
            calls: Vec::new(),
        }
    }
}

impl KubernetesHost for ReplayHost<'_> {
    fn call(&mut self, operation: &str, request: &[u8]) -> Result<Vec<u8>, String> {
        let answer = self
            .replay
            .answer(BINDING, "kubernetes", operation, request);
        self.calls.push(HostCall::new(
            "kubernetes",
            operation,
            request,
            answer.is_ok(),
        ));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = r#"- type: Exchange
  request: |
    !KubernetesListResourceAll
    api_version: v1
    kind: Pod
    label_selector: null
    field_selector: spec.nodeName=1234
  response:
    type: Success
    payload: '{"kind": "List", "items": []}'
- type: Exchange
  request: |
    !KubernetesGetResource
    api_version: v1
    kind: Node
    name: gone
    namespace: null
    disable_cache: false
  response:
    type: Error
    message: Cannot find v1/Node named 'gone'
"#;

    #[test]
    fn answers_equal_requests_whatever_their_nulls_and_order() {
        let replay = Replay::parse(SESSION, "s.yml").unwrap();
        assert_eq!(replay.len(), 2);
        let node = br#"{"api_version":"v1","kind":"Node","name":"gone","namespace":null,"disable_cache":false,"field_masks":null}"#;
        assert_eq!(
            replay.answer("kubewarden", "kubernetes", "get_resource", node),
            Err("Cannot find v1/Node named 'gone'".to_owned())
        );
        let pods = br#"{"kind":"Pod","api_version":"v1","field_selector":"spec.nodeName=1234"}"#;
        assert_eq!(
            replay.answer("kubewarden", "kubernetes", "list_resources_all", pods),
            Ok(br#"{"kind": "List", "items": []}"#.to_vec())
        );
        let other = br#"{"api_version":"v1","kind":"Pod","field_selector":"spec.nodeName=w9"}"#;
        let err = replay
            .answer("kubewarden", "kubernetes", "list_resources_all", other)
            .unwrap_err();
        assert!(
            err.starts_with(
                "no recorded interaction answers kubewarden/kubernetes/list_resources_all {"
            ),
            "{err}"
        );
        // Same request under another operation or binding: not recorded.
        assert!(
            replay
                .answer(
                    "kubewarden",
                    "kubernetes",
                    "list_resources_by_namespace",
                    pods
                )
                .is_err()
        );
        assert!(
            replay
                .answer("other", "kubernetes", "list_resources_all", pods)
                .is_err()
        );
        assert!(
            Replay::empty()
                .answer("kubewarden", "kubernetes", "list_resources_all", pods)
                .is_err()
        );
    }

    #[test]
    fn refuses_what_is_not_a_session_with_a_position() {
        let err = |text: &str| Replay::parse(text, "s.yml").unwrap_err().to_string();
        assert!(err("interactions: []\n").starts_with("s.yml:1:1: expected a list of exchanges"));
        assert!(
            err(&SESSION.replace("type: Success", "type: Sucess")).starts_with("s.yml:1:"),
            "{}",
            err(&SESSION.replace("type: Success", "type: Sucess"))
        );
        let unknown = SESSION.replace("!KubernetesGetResource", "!DNSLookupHost");
        assert!(
            err(&unknown).starts_with("s.yml:12:3:")
                && err(&unknown).contains("request type DNSLookupHost is not replayed by apart"),
            "{}",
            err(&unknown)
        );
        assert!(
            err(&SESSION.replace("    !KubernetesGetResource\n", ""))
                .contains("starts with the request type's tag")
        );
        // JSON is YAML too.
        let json = r#"[{"type": "Exchange", "request": "!KubernetesGetResource\nname: n\n", "response": {"type": "Error", "message": "no"}}]"#;
        assert_eq!(Replay::parse(json, "s.json").unwrap().len(), 1);
        assert_eq!(Replay::parse("[]", "s.json").unwrap().len(), 0);
    }
}
