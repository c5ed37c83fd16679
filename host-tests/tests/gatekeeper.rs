//! The generated Gatekeeper resources (`apart gatekeeper`):
//!
//! - differential: the ConstraintTemplate's Rego, evaluated with each policy's Constraint
//!   parameters by regorus and by the real OPA engine (Gatekeeper's; where its library is
//!   present, see `support/opa_engine.rs`), reports the same error findings as the engine (run natively):
//!   the same set of (policy, code, JSON path) object by object, over every policy case of
//!   the corpus with inputs (every object is evaluated, also those a Constraint's
//!   `match.kinds` would not send);
//! - lifecycle: over every AdmissionReview of `tests/admission` (UPDATEs with `oldObject`,
//!   deletions in progress, mirror pods, existing violations), the Rego denies exactly what
//!   the engine's admission judges the request by;
//! - the gator Suite's samples decide as the Suite asserts;
//! - `gatekeeper/` at the repository root is what `apart gatekeeper` writes for the bundled
//!   example (`APART_BLESS=1` rewrites it).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::path::Path;

use apart_host::commands::check;
use apart_host::commands::run;
use apart_host::host::evaluator::Native;
use apart_host::manifests;
use apart_host::ship::gatekeeper;
use apart_policy::admission::{self, ValidationRequest};
use apart_policy::{PolicySet, Severity};
use serde_json::{Value, json};
use support::opa_engine::{self, OpaEngine};
use support::{assert_no_failures, bless, case_dirs, files, read_json, root, run_cli};

/// Cases where the Rego cannot agree with the engine, with why. The test fails when a listed
/// case agrees, so the list cannot outlive the gap.
/// Empty today: the corpus has no case in the template's documented gaps (see the Rego's
/// header).
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// (policy, code, path) per object: what the engine reports.
type Codes = BTreeSet<(String, String, String)>;

/// A Rego engine with the generated template's Rego loaded.
enum Rego {
    Regorus(Box<regorus::Engine>),
    Opa(OpaEngine),
}

const QUERY: &str = "data.apart.decorrelation.violation";

impl Rego {
    fn regorus() -> Self {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("apart.rego".to_owned(), gatekeeper::REGO.to_owned())
            .expect("the generated Rego parses as Rego v1");
        Self::Regorus(Box::new(engine))
    }

    /// The real OPA engine, when its library is present.
    fn opa() -> Option<Self> {
        let mut opa = OpaEngine::load()?;
        opa.add_policy("apart.rego", gatekeeper::REGO)
            .expect("the generated Rego compiles in OPA");
        Some(Self::Opa(opa))
    }

    /// regorus, and OPA where its library is present (a note says when it is not).
    fn all() -> Vec<(&'static str, Self)> {
        let mut engines = vec![("regorus", Self::regorus())];
        match Self::opa() {
            Some(opa) => engines.push(("OPA", opa)),
            None => eprintln!(
                "note: no OPA pass: {} is absent (`cargo xtask setup` installs it)",
                opa_engine::library_path().display()
            ),
        }
        engines
    }

    /// The `violation` set for `input`, as JSON.
    fn violations(&mut self, input: &Value) -> Result<Value, String> {
        match self {
            Self::Regorus(engine) => {
                engine.set_input(
                    regorus::Value::from_json_str(&input.to_string()).map_err(|e| e.to_string())?,
                );
                let result = engine
                    .eval_rule(QUERY.to_owned())
                    .map_err(|e| e.to_string())?;
                serde_json::from_str(&result.to_json_str().map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())
            }
            Self::Opa(opa) => {
                let query = CString::new(QUERY).map_err(|e| e.to_string())?;
                let input = CString::new(input.to_string()).map_err(|e| e.to_string())?;
                let mut result = opa.eval(&query, &input)?;
                Ok(result[0]["expressions"][0]["value"].take())
            }
        }
    }
}

/// The Rego's violations for one object under one policy, as (code, path) pairs: the object
/// alone, as Gatekeeper's audit reviews it.
fn rego_violations(
    engine: &mut Rego,
    set: &PolicySet,
    index: usize,
    object: &Value,
) -> Result<Vec<(String, String)>, String> {
    let review = json!({"object": object, "kind": {"kind": object["kind"]}});
    rego_review_violations(engine, set, index, &review)
}

/// The Rego's violations for an AdmissionRequest (`input.review`) under one policy.
fn rego_review_violations(
    engine: &mut Rego,
    set: &PolicySet,
    index: usize,
    review: &Value,
) -> Result<Vec<(String, String)>, String> {
    let parameters = gatekeeper::parameters(set, index).ok_or("no parameters")?;
    let input = json!({"parameters": parameters, "review": review});
    let result = engine.violations(&input)?;
    Ok(result
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["details"]["code"].as_str().unwrap_or_default().to_owned(),
                v["details"]["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Why `apart gatekeeper` refuses the set, if it does.
fn unsupported(set: &PolicySet) -> Option<gatekeeper::Unsupported> {
    gatekeeper::generate(set).err()
}

/// Value targets with JSONPath queries (wildcards, descendants, filters, a podLabelsPath)
/// are what the Rego cannot read as the engine does: every corpus case with one is refused
/// at generation, naming the target, the field and the query, and the singular ones are not.
#[test]
fn queries_the_rego_cannot_read_are_refused() {
    let mut refused = Vec::new();
    for dir in case_dirs("cases", |d| !files(d, "input").is_empty()) {
        let Ok(policies) = check::read_policies(&files(dir.as_path(), "policy")) else {
            continue;
        };
        let queries = policies.set.policies().iter().any(|p| {
            p.value_targets.iter().any(|t| {
                t.affinity_path.singular().is_none()
                    || t.namespace_path
                        .as_ref()
                        .is_some_and(|q| q.singular().is_none())
                    || t.pod_labels_path.is_some()
            })
        });
        match (unsupported(&policies.set), queries) {
            (None, false) => {}
            (Some(e), true) => {
                let message = e.to_string();
                assert!(
                    message.starts_with(&format!(
                        "{}: {} {:?} cannot be checked by the Gatekeeper ConstraintTemplate",
                        e.target, e.field, e.query
                    )),
                    "{message}"
                );
                refused.push(dir);
            }
            (e, _) => panic!("{}: refused {e:?}, queries {queries}", dir.display()),
        }
    }
    assert!(
        refused.len() >= 5,
        "the corpus has query cases: {refused:?}"
    );
}

/// Disagreements of one case, one line each (empty: the Rego agrees), and how many engine
/// findings were compared.
fn differences(dir: &Path, engine: &mut Rego) -> (Vec<String>, usize) {
    let Ok(policies) = check::read_policies(&files(dir, "policy")) else {
        return (Vec::new(), 0); // an invalid policy: nothing to generate
    };
    if unsupported(&policies.set).is_some() {
        // `apart gatekeeper` refuses it (see `queries_the_rego_cannot_read_are_refused`).
        return (Vec::new(), 0);
    }
    let Ok(sources) = manifests::read_sources(&files(dir, "input")) else {
        return (Vec::new(), 0);
    };
    let Ok(outcome) = check::run(&Native, &policies, &sources, "default") else {
        return (Vec::new(), 0); // bad input: refused before any policy runs
    };
    let mut compared = 0;
    let mut wanted: BTreeMap<usize, Codes> = BTreeMap::new();
    for f in &outcome.findings {
        if let (Some(m), Severity::Error) = (f.manifest, f.severity) {
            wanted.entry(m).or_default().insert((
                f.policy.clone(),
                f.code.to_string(),
                f.path.clone(),
            ));
        }
    }
    let mut out = Vec::new();
    for (m, (manifest, retained)) in outcome.objects.iter().zip(&outcome.retained).enumerate() {
        let mut got = Codes::new();
        for (index, policy) in policies.set.policies().iter().enumerate() {
            match rego_violations(engine, &policies.set, index, &retained.value) {
                Ok(v) => got.extend(v.into_iter().map(|(c, p)| (policy.name.clone(), c, p))),
                Err(e) => out.push(format!("object {m}: Rego error: {e}")),
            }
        }
        let want = wanted.remove(&m).unwrap_or_default();
        compared += want.len();
        if got != want {
            out.push(format!(
                "object {m} (line {}): engine {want:?}, Rego {got:?}",
                manifest.line
            ));
        }
    }
    (out, compared)
}

#[test]
fn rego_agrees_with_the_engine_over_the_corpus() {
    let dirs = case_dirs("cases", |d| !files(d, "input").is_empty());
    assert!(dirs.len() > 30, "the policy corpus is there");
    let mut failures = Vec::new();
    for (engine_name, mut engine) in Rego::all() {
        let mut findings = 0;
        for dir in &dirs {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let (diffs, n) = differences(dir, &mut engine);
            findings += n;
            match (
                KNOWN_GAPS.iter().find(|(n, _)| *n == name),
                diffs.is_empty(),
            ) {
                (None, true) => {}
                (None, false) => failures.push(format!(
                    "{engine_name}, {name}:\n  {}",
                    diffs.join("\n  ")
                )),
                (Some(_), true) => failures.push(format!(
                    "{engine_name}, {name}: listed in KNOWN_GAPS but the Rego now agrees: remove it from the list"
                )),
                (Some((_, why)), false) => eprintln!(
                    "{engine_name}: known gap {name} ({why}): {}",
                    diffs.join("; ")
                ),
            }
        }
        eprintln!(
            "{engine_name}: {} cases, {findings} engine findings compared",
            dirs.len()
        );
        assert!(
            findings > 50,
            "the corpus has findings to compare ({findings})"
        );
    }
    assert_no_failures(&failures);
}

/// The lifecycle (README, "Admission through an object's lifecycle"): over every request of
/// `tests/admission` (UPDATEs with `oldObject`, deletions in progress, Pods, Jobs, mirror pods,
/// existing violations under `allow` and `deny`, old API versions), the Rego denies with
/// exactly the (policy, code, path) of the engine's `violations`: the findings the request is
/// judged by before any repair.
#[test]
fn rego_judges_each_admission_request_in_its_lifecycle_as_the_engine_does() {
    let seed =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let mut engines = Rego::all();
    let mut failures = Vec::new();
    let (mut denied, mut admitted) = (0, 0);
    for dir in case_dirs("admission", |p| p.join("request.json").is_file()) {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let request =
            run::admission_request(read_json(&dir.join("request.json"))).expect("request");
        let settings = match dir.join("settings.json") {
            p if p.is_file() => read_json(&p),
            _ => seed.set.settings(),
        };
        let Ok(set) = PolicySet::from_settings(settings.to_string().as_bytes()) else {
            continue; // refused settings: no Constraint to generate
        };
        if unsupported(&set).is_some() {
            continue; // refused by apart gatekeeper: no Constraint to generate
        }
        let payload = json!({ "request": request }).to_string();
        let parsed = ValidationRequest::parse(payload.as_bytes()).expect("the request reads");
        let verdict = admission::review(&set, parsed.request, payload.as_bytes());
        let want: Codes = verdict
            .violations
            .iter()
            .map(|f| (f.policy.clone(), f.code.to_string(), f.path.clone()))
            .collect();
        for (engine_name, engine) in &mut engines {
            let mut got = Codes::new();
            for (index, policy) in set.policies().iter().enumerate() {
                match rego_review_violations(engine, &set, index, &request) {
                    Ok(v) => got.extend(v.into_iter().map(|(c, p)| (policy.name.clone(), c, p))),
                    Err(e) => failures.push(format!("{engine_name}, {name}: Rego error: {e}")),
                }
            }
            if got != want {
                failures.push(format!(
                    "{engine_name}, {name}: engine {want:?}, Rego {got:?}"
                ));
            }
        }
        if want.is_empty() {
            admitted += 1;
        } else {
            denied += 1;
        }
    }
    assert!(
        denied >= 8 && admitted >= 10,
        "{denied} denied, {admitted} admitted"
    );
    assert_no_failures(&failures);
}

#[test]
fn suite_samples_decide_as_the_suite_asserts() {
    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let mut engine = Rego::regorus();
    for index in 0..policies.set.policies().len() {
        for allowed in [true, false] {
            let sample = gatekeeper::sample(&policies.set, index, allowed).expect("a sample");
            let v = rego_violations(&mut engine, &policies.set, index, &sample).expect("evaluates");
            if allowed {
                assert!(v.is_empty(), "allowed sample: {v:?}");
            } else {
                assert_eq!(
                    v.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                    ["missing-anti-affinity"]
                );
            }
        }
    }
}

#[test]
fn seed_helmrelease_is_namespace_blind_at_the_engine_path() {
    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let sources = manifests::read_sources(&[root().join("examples/seed/cilium-helmrelease.yaml")])
        .expect("seed manifest");
    let objects = manifests::objects(&sources).expect("objects");
    let object = &objects.first().expect("one object").value;
    let mut engine = Rego::regorus();
    let v = rego_violations(&mut engine, &policies.set, 0, object).expect("evaluates");
    assert_eq!(
        v,
        [(
            "namespace-blind".to_owned(),
            "$.spec.values.authentication.mutual.spire.install.server.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.namespaces".to_owned()
        )]
    );
}

#[test]
fn gatekeeper_folder_is_in_sync() {
    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let dir = root().join("gatekeeper");
    let mut failures = Vec::new();
    let generated = gatekeeper::generate(&policies.set).expect("the seed policy is supported");
    for file in &generated {
        let path = dir.join(&file.name);
        if bless() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create folder");
            }
            std::fs::write(&path, &file.text).expect("bless");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) if text == file.text => {}
            Ok(_) => failures.push(format!(
                "{} differs from apart gatekeeper's output (APART_BLESS=1 rewrites it)",
                path.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn cli_writes_the_folder_and_refuses_bad_input() {
    let out_dir = std::env::temp_dir().join(format!("apart-gatekeeper-{}", std::process::id()));
    let out = run_cli(
        &[
            "gatekeeper",
            "-p",
            "examples/seed/policy.yaml",
            "-o",
            out_dir.to_str().expect("utf-8 temp dir"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    for file in gatekeeper::generate(&policies.set).expect("the seed policy is supported") {
        let text = std::fs::read_to_string(out_dir.join(&file.name)).expect("written");
        assert_eq!(text, file.text, "{}", file.name);
    }
    std::fs::remove_dir_all(&out_dir).ok();
    // A manifest is not a policy: exit 2 with the file and line.
    let out = run_cli(
        &[
            "gatekeeper",
            "-p",
            "examples/seed/cilium-helmrelease.yaml",
            "-o",
            "/nonexistent",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("examples/seed/cilium-helmrelease.yaml:"),
        "{stderr}"
    );
    // A value-target query the Rego cannot read: exit 2 naming the target and the query, and
    // nothing written.
    let refused_dir =
        std::env::temp_dir().join(format!("apart-gatekeeper-q-{}", std::process::id()));
    let out = run_cli(
        &[
            "gatekeeper",
            "-p",
            "tests/cases/helmrelease-query-components-map/policy.yaml",
            "-o",
            refused_dir.to_str().expect("utf-8 temp dir"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("policy gitops-apart-from-ingress, valueTargets[0]: affinityPath \"$.spec.values.*.affinity\" cannot be checked by the Gatekeeper ConstraintTemplate: its Rego reads a value target at a singular path only"),
        "{stderr}"
    );
    assert!(!refused_dir.exists(), "nothing is written");
}

/// Selector implication beyond the corpus: peer requirements on one key combine (`In (a, b)`
/// and `NotIn (b)` pin `a`), and peers no pod can match imply every term.
#[test]
fn rego_combines_peer_requirements_as_the_engine_does() {
    let dir = std::env::temp_dir().join(format!("apart-gatekeeper-sel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = |name: &str, peers: &str| {
        format!(
            "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {{name: {name}}}\nspec:\n  subject: {{labelSelector: {{matchLabels: {{app: web}}}}}}\n  apartFrom:\n    - namespaces: [peers]\n      labelSelector: {{matchExpressions: [{peers}]}}\n"
        )
    };
    let policies = [
        policy(
            "pinned",
            "{key: tier, operator: In, values: [a, b]}, {key: tier, operator: NotIn, values: [b]}",
        ),
        policy(
            "empty",
            "{key: tier, operator: In, values: [a]}, {key: tier, operator: DoesNotExist}",
        ),
        policy(
            "notin",
            "{key: tier, operator: In, values: [a, b]}, {key: tier, operator: NotIn, values: [c]}",
        ),
    ]
    .join("---\n");
    std::fs::write(dir.join("policy.yaml"), policies).expect("write policy");
    let pod = |name: &str, term: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: web, labels: {{app: web}}}}\nspec:\n  containers: [{{name: c, image: i}}]\n  affinity:\n    podAntiAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n        - weight: 100\n          podAffinityTerm: {{namespaces: [peers], topologyKey: kubernetes.io/hostname, labelSelector: {term}}}\n"
        )
    };
    let inputs = [
        pod("equals-a", "{matchLabels: {tier: a}}"),
        pod(
            "not-c",
            "{matchExpressions: [{key: tier, operator: NotIn, values: [c]}]}",
        ),
        pod(
            "exists",
            "{matchExpressions: [{key: tier, operator: Exists}]}",
        ),
        pod("equals-b", "{matchLabels: {tier: b}}"),
    ]
    .join("---\n");
    std::fs::write(dir.join("input.yaml"), inputs).expect("write input");
    for (engine_name, mut engine) in Rego::all() {
        let (diffs, compared) = differences(&dir, &mut engine);
        assert!(diffs.is_empty(), "{engine_name}: {}", diffs.join("\n"));
        assert!(
            compared >= 2,
            "the engine reports findings here ({compared})"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
