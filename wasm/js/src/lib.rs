//! apart for JavaScript: a thin adapter from wasm-bindgen to the engine's text front end
//! ([`apart_policy::report`]), the same code the `apart` CLI prints from, so a browser page
//! or a Node tool gets the CLI's findings, lines, fixes and reports byte for byte.
//!
//! Every function takes text (YAML or JSON, several documents) and returns what the CLI
//! prints as JSON, parsed into a plain object. Bad input throws an `Error` whose message is
//! the CLI's (`manifests.yaml:12:5: ...`), with `file`, `line` and `column` properties when
//! the error is at a place. Nothing panics into JS: the engine has no
//! panicking paths and every result here is a `Result`.
//!
//! Objects are judged by the engine's own admission review ([`report::Engine`]), the
//! function the Kubewarden module calls for the same request.

use apart_policy::PolicyError;
use apart_policy::placement::simulate::{DEFAULT_HARD_POD_AFFINITY_WEIGHT, Options as Plugin};
use apart_policy::report::{
    self, Engine, Options, Policies, ReportError, Source, audit, render, simulate,
};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

/// What `check` and `fix` take beside the texts.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct CheckOptions {
    /// The manifests' name in findings and errors.
    file: String,
    /// The policies' name in errors and set findings.
    policy_file: String,
    /// The namespace of objects that name none.
    default_namespace: String,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            file: "manifests.yaml".to_owned(),
            policy_file: "policy.yaml".to_owned(),
            default_namespace: "default".to_owned(),
        }
    }
}

/// What `simulate` takes beside the texts.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct SimulateOptions {
    /// Policies to judge the chosen node by: a text, or `{name, text}`s.
    #[serde(deserialize_with = "option_texts")]
    policies: Option<Vec<NamedText>>,
    /// The plugin's hardPodAffinityWeight (0 to 100).
    hard_pod_affinity_weight: i64,
    /// The plugin's ignorePreferredTermsOfExistingPods.
    ignore_preferred_terms_of_existing_pods: bool,
    /// Names in errors.
    cluster_file: String,
    /// See `cluster_file`.
    pod_file: String,
    /// See `cluster_file`.
    policy_file: String,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            policies: None,
            hard_pod_affinity_weight: DEFAULT_HARD_POD_AFFINITY_WEIGHT,
            ignore_preferred_terms_of_existing_pods: false,
            cluster_file: "cluster.yaml".to_owned(),
            pod_file: "pod.yaml".to_owned(),
            policy_file: "policy.yaml".to_owned(),
        }
    }
}

/// What `audit` and `validatePolicies` take beside the texts.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct AuditOptions {
    /// The snapshot's name in errors and in the report's title.
    cluster_file: String,
    /// The policies' name in errors.
    policy_file: String,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            cluster_file: "cluster.yaml".to_owned(),
            policy_file: "policy.yaml".to_owned(),
        }
    }
}

// The shapes the functions take and return, for TypeScript (wasm-bindgen writes them into
// `apart.d.ts`); each is the JSON the CLI prints for the same run.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** One text, or several named ones (each named in findings and errors). */
export type Texts = string | { name: string; text: string }[];
export interface CheckOptions {
  /** The manifests' name when one text is given (default "manifests.yaml"). */
  file?: string;
  /** The policies' name when one text is given (default "policy.yaml"). */
  policyFile?: string;
  /** The namespace of objects that name none (default "default"). */
  defaultNamespace?: string;
}
export interface PatchOp { op: string; path: string; value?: unknown }
export interface Finding {
  code: string;
  severity: "error" | "warning";
  policy: string;
  object: { apiVersion: string; kind: string; namespace?: string; name?: string };
  file: string;
  /** 1-based, in the text the finding is about. */
  line?: number;
  column?: number;
  /** JSONPath of the node inside the object. */
  path: string;
  message: string;
  fix?: PatchOp[];
}
export interface Summary { objects: number; policies: number; errors: number; warnings: number; mutated: number }
export interface CheckReport { findings: Finding[]; summary: Summary }
export interface FixedFile { name: string; output: string; diff: string; reformatted: number }
export interface FixResult extends CheckReport { output: string; diff: string; files: FixedFile[] }
export interface SimulateOptions {
  policies?: Texts;
  hardPodAffinityWeight?: number;
  ignorePreferredTermsOfExistingPods?: boolean;
  clusterFile?: string;
  podFile?: string;
  policyFile?: string;
}
/** `apart simulate --output json`: feasible_nodes, scores, raw_scores, infeasible, chosen_node, ... */
export type Simulation = Record<string, unknown>;
export interface AuditOptions { clusterFile?: string; policyFile?: string }
/** `report` is `apart audit --output json`; `svg` the picture of the failure domains. */
export interface AuditResult { report: Record<string, unknown>; svg: string }
export interface PolicyError { message: string; line: number | null; column: number | null; field: string | null }
/** What the functions throw for bad texts: the CLI's message, and where when it is at a place. */
export interface ApartError extends Error { file?: string; line?: number; column?: number }
export interface PolicyValidation { valid: boolean; policies: string[]; errors: PolicyError[] }
"#;

#[wasm_bindgen]
extern "C" {
    /// `CheckOptions` on the JS side.
    #[wasm_bindgen(typescript_type = "CheckOptions")]
    pub type JsCheckOptions;
    /// `SimulateOptions` on the JS side.
    #[wasm_bindgen(typescript_type = "SimulateOptions")]
    pub type JsSimulateOptions;
    /// `AuditOptions` on the JS side.
    #[wasm_bindgen(typescript_type = "AuditOptions")]
    pub type JsAuditOptions;
}

/// A named text, as JS passes several: `{name, text}` (in options, a bare string is one
/// text named by the options' file name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedText {
    name: String,
    text: String,
}

/// Options' texts: one string, or `{name, text}`s.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OptionTexts {
    One(String),
    Many(Vec<NamedText>),
}

fn option_texts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<NamedText>>, D::Error> {
    Ok(Option::<OptionTexts>::deserialize(d)?.map(|t| match t {
        // Named once the options are read (`policyFile`).
        OptionTexts::One(text) => vec![NamedText {
            name: String::new(),
            text,
        }],
        OptionTexts::Many(many) => many,
    }))
}

/// Texts as JS passes them: one string (named `default_name`), or an array of `{name,
/// text}` (several files, each named in findings and errors).
fn texts(value: &JsValue, default_name: &str, what: &str) -> Result<Vec<Source>, JsValue> {
    if let Some(text) = value.as_string() {
        return Ok(vec![Source::new(default_name, text)]);
    }
    if !js_sys::Array::is_array(value) {
        return Err(fail(&format!(
            "{what}: expected a string or an array of {{name, text}}"
        )));
    }
    let json: String = js_sys::JSON::stringify(value)
        .map_err(|_| fail(&format!("{what}: expected an array of {{name, text}}")))?
        .into();
    let named: Vec<NamedText> =
        serde_json::from_str(&json).map_err(|e| fail(&format!("{what}: {e}")))?;
    Ok(named
        .into_iter()
        .map(|n| Source::new(n.name, n.text))
        .collect())
}

/// An error about the call itself (its options, its argument types): an `Error`.
fn fail(message: &str) -> JsValue {
    js_sys::Error::new(message).into()
}

/// An error about the texts as JS receives it: an `Error` with the CLI's message and, when
/// it is at a place, `file`, `line` and `column` properties (1-based), so an editor can mark
/// the place without reading the message.
fn error(e: impl Into<ReportError>) -> JsValue {
    let e = e.into();
    let thrown = js_sys::Error::new(&e.to_string());
    let (file, line, column) = match &e {
        ReportError::Input {
            file, line, column, ..
        } => (Some(file.as_str()), Some(line), Some(column)),
        ReportError::Policy(PolicyError::Syntax {
            origin,
            line,
            column,
            ..
        }) => (Some(origin.as_str()), Some(line), Some(column)),
        ReportError::Policy(PolicyError::Invalid { origin, line, .. }) => {
            (Some(origin.as_str()), Some(line), None)
        }
        ReportError::Policy(PolicyError::Empty { origin }) => (Some(origin.as_str()), None, None),
        _ => (None, None, None),
    };
    let set = |key: &str, value: JsValue| {
        // Setting a property on a fresh `Error` cannot fail.
        let _ = js_sys::Reflect::set(&thrown, &JsValue::from_str(key), &value);
    };
    if let Some(file) = file {
        set("file", JsValue::from_str(file));
    }
    // Lines and columns are far below 2^53: exact as JS numbers.
    if let Some(line) = line {
        set("line", JsValue::from_f64(*line as f64));
    }
    if let Some(column) = column {
        set("column", JsValue::from_f64(*column as f64));
    }
    thrown.into()
}

/// The options object (absent, `undefined` or `null`: the defaults); a field it does not
/// know is an error naming it, so a misspelt option is not silently ignored.
fn options<T: for<'de> Deserialize<'de> + Default>(
    value: Option<impl AsRef<JsValue>>,
) -> Result<T, JsValue> {
    let Some(value) = value
        .as_ref()
        .map(AsRef::as_ref)
        .filter(|v| !v.is_undefined() && !v.is_null())
    else {
        return Ok(T::default());
    };
    let text: String = js_sys::JSON::stringify(value)
        .map_err(|_| fail("options: expected a plain object"))?
        .into();
    serde_json::from_str(&text).map_err(|e| fail(&format!("options: {e}")))
}

/// A JSON text as a JS value.
fn parsed(json: &str) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(json).map_err(|_| fail("internal: a report is not JSON"))
}

/// A check of manifests texts: the policies, the texts and the outcome.
fn run(
    policies: &JsValue,
    manifests: &JsValue,
    options: Option<JsCheckOptions>,
    fix: bool,
) -> Result<(Policies, Vec<Source>, report::Outcome), JsValue> {
    let options: CheckOptions = self::options(options)?;
    let policies = Policies::from_sources(texts(policies, &options.policy_file, "policies")?)
        .map_err(error)?;
    let sources = texts(manifests, &options.file, "manifests")?;
    let outcome = report::check_sources(
        &policies,
        &sources,
        &mut Engine(&policies.set),
        Options {
            default_namespace: &options.default_namespace,
            fix,
            retain: false,
        },
    )
    .map_err(error)?;
    Ok((policies, sources, outcome))
}

/// The apart version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Checks manifests against policies: what `apart check --output json` prints,
/// `{findings, summary}`. Each of `policies` and `manifests` is a text or an array of
/// `{name, text}`.
#[wasm_bindgen(unchecked_return_type = "CheckReport")]
pub fn check(
    #[wasm_bindgen(unchecked_param_type = "Texts")] policies: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Texts")] manifests: JsValue,
    options: Option<JsCheckOptions>,
) -> Result<JsValue, JsValue> {
    let (policies, _, outcome) = run(&policies, &manifests, options, false)?;
    parsed(&render::render(
        &outcome,
        policies.set.policies().len(),
        render::Style::Json,
    ))
}

/// Repairs manifests: `{output, diff, files, findings, summary}`: `output` is what `apart
/// fix` prints (several inputs as one stream, each after a `# Source:` line), `diff` what
/// `apart fix --diff` prints (empty when nothing changed), `files` each input's repaired
/// text and diff.
#[wasm_bindgen(unchecked_return_type = "FixResult")]
pub fn fix(
    #[wasm_bindgen(unchecked_param_type = "Texts")] policies: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Texts")] manifests: JsValue,
    options: Option<JsCheckOptions>,
) -> Result<JsValue, JsValue> {
    let (policies, sources, outcome) = run(&policies, &manifests, options, true)?;
    let fixed = report::fix::fix_sources(&sources, &outcome);
    let several = fixed.len() > 1;
    let mut output = String::new();
    let mut diff = String::new();
    let mut files = Vec::new();
    for f in &fixed {
        if several {
            output.push_str(&report::fix::stream_header(&f.name, &f.fixed));
        }
        output.push_str(&f.fixed);
        if several && !f.fixed.is_empty() && !f.fixed.ends_with('\n') {
            output.push('\n');
        }
        let file_diff = f.diff();
        diff.push_str(&file_diff);
        files.push(serde_json::json!({
            "name": f.name,
            "output": f.fixed,
            "diff": file_diff,
            "reformatted": f.reformatted,
        }));
    }
    let mut report: serde_json::Value = serde_json::from_str(&render::render(
        &outcome,
        policies.set.policies().len(),
        render::Style::Json,
    ))
    .map_err(|_| fail("internal: a report is not JSON"))?;
    let result = serde_json::json!({
        "output": output,
        "diff": diff,
        "files": files,
        "findings": report["findings"].take(),
        "summary": report["summary"].take(),
    });
    parsed(&result.to_string())
}

/// Where kube-scheduler would place `pod` on the `cluster` snapshot: what `apart simulate
/// --output json` prints.
#[wasm_bindgen(unchecked_return_type = "Simulation")]
pub fn simulate(
    cluster: &str,
    pod: &str,
    options: Option<JsSimulateOptions>,
) -> Result<JsValue, JsValue> {
    let options: SimulateOptions = self::options(options)?;
    if !(0..=100).contains(&options.hard_pod_affinity_weight) {
        return Err(fail("options.hardPodAffinityWeight: expected 0 to 100"));
    }
    let cluster =
        audit::parse_cluster(&Source::new(&options.cluster_file, cluster)).map_err(error)?;
    let pod = simulate::parse_pod(Source::new(&options.pod_file, pod)).map_err(error)?;
    let policies = options
        .policies
        .map(|texts| {
            let sources = texts
                .into_iter()
                .map(|t| {
                    let name = if t.name.is_empty() {
                        options.policy_file.clone()
                    } else {
                        t.name
                    };
                    Source::new(name, t.text)
                })
                .collect();
            Policies::from_sources(sources)
        })
        .transpose()
        .map_err(error)?;
    let plugin = Plugin {
        hard_pod_affinity_weight: options.hard_pod_affinity_weight,
        ignore_preferred_terms_of_existing_pods: options.ignore_preferred_terms_of_existing_pods,
    };
    let decision = simulate::decide(&cluster, &pod, &plugin, policies.as_ref()).map_err(error)?;
    parsed(&simulate::json(&decision))
}

/// Where the `cluster` snapshot already runs subjects beside their peers:
/// `{report, svg}`, `report` being what `apart audit --output json` prints and `svg` the
/// picture of the failure domains its HTML page shows.
#[wasm_bindgen(unchecked_return_type = "AuditResult")]
pub fn audit(
    #[wasm_bindgen(unchecked_param_type = "Texts")] policies: JsValue,
    cluster: &str,
    options: Option<JsAuditOptions>,
) -> Result<JsValue, JsValue> {
    let options: AuditOptions = self::options(options)?;
    let policies = Policies::from_sources(texts(&policies, &options.policy_file, "policies")?)
        .map_err(error)?;
    let cluster =
        audit::parse_cluster(&Source::new(&options.cluster_file, cluster)).map_err(error)?;
    let report = apart_policy::placement::audit::audit(&policies.set, &cluster);
    let json = audit::json(&report);
    let result = format!(
        r#"{{"report":{},"svg":{}}}"#,
        json.trim_end(),
        serde_json::Value::String(audit::svg(&report))
    );
    parsed(&result)
}

/// Checks policy documents: `{valid, policies, errors}`, the names of the policies when
/// they are valid, else the error as the CLI words it, with its line and column (syntax)
/// or line and field (a document that breaks the schema or the rules).
#[wasm_bindgen(js_name = validatePolicies, unchecked_return_type = "PolicyValidation")]
pub fn validate_policies(
    #[wasm_bindgen(unchecked_param_type = "Texts")] policies: JsValue,
    options: Option<JsAuditOptions>,
) -> Result<JsValue, JsValue> {
    let options: AuditOptions = self::options(options)?;
    let sources = texts(&policies, &options.policy_file, "policies")?;
    let result = match Policies::from_sources(sources) {
        Ok(p) => serde_json::json!({
            "valid": true,
            "policies": p.set.names(),
            "errors": [],
        }),
        Err(e) => {
            let (line, column, field) = match &e {
                PolicyError::Syntax { line, column, .. } => (Some(*line), Some(*column), None),
                PolicyError::Invalid { line, field, .. } => {
                    (Some(*line), None, Some(field.clone()))
                }
                _ => (None, None, None),
            };
            serde_json::json!({
                "valid": false,
                "policies": [],
                "errors": [{"message": e.to_string(), "line": line, "column": column, "field": field}],
            })
        }
    };
    parsed(&result.to_string())
}
