//! Differential testing: four evaluators, one answer.
//!
//! Random (policies, object) pairs from `apart-testkit` (namespaces, selectors with every
//! operator, namespaceSelectors, topology keys, weights, required and preferred, value
//! targets, workloads of every kind, terms aimed at the peers or a slip away, some invalid)
//! are sent as a CREATE admission request to:
//!
//! 1. the engine, natively (`apart_policy::admission::review`, and the waPC guest's own
//!    function compiled for the host);
//! 2. the waPC module under wasmtime: its answer must equal the native guest's, byte for byte
//!    as JSON;
//! 3. the OPA-ABI module under wasmtime (both the evaluation-context and the one-call path):
//!    its violations must be the engine's violations, one line each;
//! 4. the generated Gatekeeper Rego, one Constraint per policy, under `regorus`, and under
//!    OPA 1.20's own engine when `cargo xtask setup` has unpacked it (`target/opa-bridge`):
//!    the same set of (policy, code, JSON path) as the engine judges the request by.
//!
//! Settings that do not compile must be refused by every module. The number of pairs and the
//! seed are `APART_DIFF_PAIRS` (300) and `APART_DIFF_SEED` (2026); a long run:
//! `APART_DIFF_PAIRS=100000 cargo test --release -p apart --test differential`. A
//! disagreement prints the seed and pair index and every evaluator's answer; it becomes a
//! case in `tests/cases` once fixed.

mod support;

use std::collections::BTreeSet;

use apart_host::host::replay::{Replay, ReplayHost};
use apart_host::host::wapc::PolicyModule;
use apart_host::ship::gatekeeper;
use apart_policy::PolicySet;
use apart_policy::admission::{self, ValidationRequest};
use apart_testkit::Seeded;
use serde_json::{Value, json};
use support::opa_engine::OpaEngine;
use support::opa_host::{OpaPolicy, opa_module_bytes};
use support::{built_module, root};

/// (policy, code, path): what a violation is, for every evaluator.
type Violations = BTreeSet<(String, String, String)>;

/// The Rego's violations document.
const VIOLATION_RULE: &str = "data.apart.decorrelation.violation";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn create_request(policies: &[Value], object: &Value) -> Value {
    json!({
        "settings": apart_testkit::settings(policies),
        "request": {
            "uid": "diff", "operation": "CREATE",
            "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(json!("default")),
            "kind": {"group": "", "version": "v1", "kind": object["kind"]},
            "object": object,
        },
    })
}

/// The Rego's violations (`[{"msg", "details": {"code", "path"}}]`) as (policy, code, path).
fn rego_set(policy: &str, result: &Value) -> Violations {
    result
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                policy.to_owned(),
                v["details"]["code"].as_str().unwrap_or_default().to_owned(),
                v["details"]["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The Gatekeeper inputs for a request: one per policy (its Constraint's parameters).
fn gatekeeper_inputs(set: &PolicySet, review: &Value) -> Vec<(String, Value)> {
    set.policies()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let parameters = gatekeeper::parameters(set, i)?;
            Some((
                p.name.clone(),
                json!({"parameters": parameters, "review": review}),
            ))
        })
        .collect()
}

struct Evaluators {
    wapc: PolicyModule,
    opa: OpaPolicy,
    rego: regorus::Engine,
    opa_engine: Option<OpaEngine>,
}

impl Evaluators {
    fn new() -> Self {
        let wapc = PolicyModule::new(&built_module())
            .expect("the module compiles")
            .with_replay(Replay::empty());
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, opa_module_bytes()).expect("compiles");
        let opa = OpaPolicy::new(&engine, &module).expect("instantiates");
        let mut rego = regorus::Engine::new();
        rego.add_policy("apart.rego".to_owned(), gatekeeper::REGO.to_owned())
            .expect("the generated Rego parses");
        let opa_engine = match OpaEngine::load() {
            None => {
                eprintln!(
                    "OPA's engine is not at {} (cargo xtask setup puts it there): compared without it",
                    support::opa_engine::library_path().display()
                );
                None
            }
            Some(mut e) => {
                e.add_policy("apart.rego", gatekeeper::REGO)
                    .expect("OPA compiles the generated Rego");
                Some(e)
            }
        };
        Self {
            wapc,
            opa,
            rego,
            opa_engine,
        }
    }

    /// Every disagreement for one pair (empty: one answer), and whether the request was
    /// denied by the engine.
    fn compare(&mut self, policies: &[Value], object: &Value) -> (Vec<String>, bool) {
        let request = create_request(policies, object);
        let payload = request.to_string();
        let mut out = Vec::new();
        // 1. The engine, natively.
        let replay = Replay::empty();
        let mut host = ReplayHost::new(&replay);
        let native = serde_json::to_value(apart_wasm::validate_payload_with(
            payload.as_bytes(),
            &mut host,
        ))
        .expect("encodes");
        // 2. The waPC module.
        match self.wapc.call("validate", payload.as_bytes()) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(wasm) if wasm == native => {}
                Ok(wasm) => out.push(format!("waPC module {wasm}\n  native {native}")),
                Err(e) => out.push(format!("waPC module answered no JSON: {e}")),
            },
            Err(e) => out.push(format!("waPC module: {e}")),
        }
        let input = json!({"parameters": request["settings"], "review": request["request"]});
        let opa_native = apart_opa::messages(Some(&input));
        // 3. The OPA-ABI module, both paths.
        match self.opa.violations(&input) {
            Ok(msgs) if msgs == opa_native => {}
            Ok(msgs) => out.push(format!("OPA module {msgs:?}\n  native {opa_native:?}")),
            Err(e) => out.push(format!("OPA module: {e:#}")),
        }
        let Ok(set) = PolicySet::from_settings(request["settings"].to_string().as_bytes()) else {
            // Refused settings: every module must refuse (there is no Constraint to write).
            if native["accepted"] != json!(false) {
                out.push(format!("invalid settings admitted: {native}"));
            }
            if opa_native.len() != 1 {
                out.push(format!("invalid settings, OPA module: {opa_native:?}"));
            }
            return (out, true);
        };
        let parsed = ValidationRequest::parse(payload.as_bytes()).expect("the request reads");
        let verdict = admission::review(&set, parsed.request, payload.as_bytes());
        let want: Violations = verdict
            .violations
            .iter()
            .map(|f| (f.policy.clone(), f.code.to_string(), f.path.clone()))
            .collect();
        let lines: Vec<String> = verdict.violations.iter().map(apart_opa::line).collect();
        if verdict.accepted || !lines.is_empty() {
            // The OPA module's lines are the engine's violations (unless the object was refused
            // unread, one message).
            if opa_native != lines {
                out.push(format!(
                    "OPA module (native) {opa_native:?}\n  engine {lines:?}"
                ));
            }
        }
        // 4. The Rego, under regorus and under OPA.
        let inputs = gatekeeper_inputs(&set, &request["request"]);
        let mut regorus_got = Violations::new();
        let mut opa_got = Violations::new();
        for (name, input) in &inputs {
            self.rego.set_input(
                regorus::Value::from_json_str(&input.to_string()).expect("input converts"),
            );
            match self.rego.eval_rule(VIOLATION_RULE.to_owned()) {
                Ok(v) => {
                    let v: Value = serde_json::from_str(&v.to_json_str().unwrap_or_default())
                        .unwrap_or_default();
                    regorus_got.extend(rego_set(name, &v));
                }
                Err(e) => out.push(format!("regorus: {e}")),
            }
            if let Some(engine) = &mut self.opa_engine {
                match engine.document("apart.decorrelation.violation", input) {
                    Ok(v) => opa_got.extend(rego_set(name, &v.unwrap_or(Value::Null))),
                    Err(e) => out.push(format!("OPA engine: {e}")),
                }
            }
        }
        if regorus_got != want {
            out.push(format!("Rego (regorus) {regorus_got:?}\n  engine {want:?}"));
        }
        if self.opa_engine.is_some() && opa_got != want {
            out.push(format!("Rego (OPA 1.20) {opa_got:?}\n  engine {want:?}"));
        }
        (out, !want.is_empty())
    }
}

#[test]
fn four_evaluators_give_one_answer_on_random_pairs() {
    let pairs = env_number("APART_DIFF_PAIRS", 300);
    let seed = env_number("APART_DIFF_SEED", 2026);
    let mut evaluators = Evaluators::new();
    let mut c = Seeded::new(seed);
    let mut failures = Vec::new();
    let mut denied = 0;
    let started = std::time::Instant::now();
    for i in 0..pairs {
        let (policies, object) = apart_testkit::pair(&mut c);
        let (diffs, deny) = evaluators.compare(&policies, &object);
        denied += u64::from(deny);
        if !diffs.is_empty() && failures.len() < 10 {
            failures.push(format!(
                "seed {seed} pair {i}:\n  policies {}\n  object {}\n  {}",
                Value::Array(policies),
                object,
                diffs.join("\n  ")
            ));
        }
    }
    eprintln!(
        "{pairs} pairs (seed {seed}, {denied} denied) in {:.1} s through the native engine, the waPC module, the OPA-ABI module, the Rego under regorus{}: {} disagreeing",
        started.elapsed().as_secs_f64(),
        if evaluators.opa_engine.is_some() {
            " and under OPA 1.20"
        } else {
            ""
        },
        failures.len()
    );
    assert!(
        denied * 5 >= pairs && denied * 5 <= pairs * 4,
        "the pairs mix admitted and denied requests ({denied} of {pairs} denied)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The OPA engine, when present, reads the Rego the way regorus does on the bundled seed.
#[test]
fn opa_engine_denies_the_seed_case() {
    let Some(engine) = OpaEngine::load() else {
        eprintln!("OPA's engine is not installed: nothing to check");
        return;
    };
    let mut engine = engine;
    engine
        .add_policy("apart.rego", gatekeeper::REGO)
        .expect("compiles");
    let policies =
        apart_host::commands::check::read_policies(&[root().join("examples/seed/policy.yaml")])
            .expect("seed policy");
    let sources =
        apart_host::manifests::read_sources(
            &[root().join("examples/seed/cilium-helmrelease.yaml")],
        )
        .expect("seed manifest");
    let objects = apart_host::manifests::objects(&sources).expect("objects");
    let object = &objects.first().expect("one object").value;
    let parameters = gatekeeper::parameters(&policies.set, 0).expect("parameters");
    let input = json!({"parameters": parameters, "review": {"object": object, "operation": "CREATE", "kind": {"kind": "HelmRelease"}}});
    let got = engine
        .document("apart.decorrelation.violation", &input)
        .expect("evaluates")
        .unwrap_or(Value::Null);
    let codes: Vec<&str> = got
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["details"]["code"].as_str())
        .collect();
    assert_eq!(codes, ["namespace-blind"], "{got}");
}
