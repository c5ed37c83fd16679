//! Every admission path, side by side in one run: the native engine, the built module as
//! policy-server runs it, an empty guest, and the generated Gatekeeper Rego under regorus and
//! the real OPA engine, beside a hand-written Rego for the same rule. `cargo xtask bench` runs
//! it after building the modules (`APART_WASM_MODULE` and `APART_EMPTY_GUEST` name them;
//! `APART_BENCH_SECONDS` sets the time per row, 1 s by default; `APART_BENCH_ONLY=TEXT` times
//! only the rows whose name contains TEXT).
//!
//! The request is the rendered spire-server StatefulSet (`examples/rendered`) in a Kubewarden
//! `ValidationRequest` with the seed policy as settings, in three forms: compliant (its term
//! reaches flux-system), violating under `action: validate` (a rejection with findings) and
//! violating under the seed's `action: mutate` (a repair, re-checked). Each row is the median
//! time per call and its ratio to the JSON floor of the same payload (checking the JSON and
//! nothing else). Before timing, every row's decision is compared with the native engine's
//! for the same input; the bench stops if one differs.
//!
//! The module rows are policy-server's pattern: one compiled module, pre-instantiated
//! (`InstancePre`), then either one instance kept warm for every call, or a fresh store and
//! instance per call (the guest's initialisation and `wapc_init` included) under an epoch
//! deadline. The empty guest (`wasm/examples/empty_guest.rs`) is the instantiation floor. The
//! module `apart build` makes (the seed policy baked in and pre-initialised) is timed with
//! `settings: {}`, as policy-server runs it, beside the same module baked only.

// Shared with the tests, which also read whole documents (`OpaEngine::document`).
#[path = "../../tests/support/opa_engine.rs"]
#[allow(
    dead_code,
    reason = "the bench evaluates; only the tests read documents"
)]
mod opa_engine;

use std::ffi::CString;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use apart_host::host::wapc::PolicyModule;
use apart_host::ship::gatekeeper;
use apart_host::ship::kubewarden::{self, Mode};
use apart_policy::PolicySet;
use apart_policy::source::read;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

const POLICY: &str = include_str!("../../../examples/seed/policy.yaml");
const STATEFULSET: &str = include_str!("../../../examples/rendered/spire-server-statefulset.yaml");
const HAND_WRITTEN_REGO: &str = include_str!("seed-rule.rego");
/// The module size the issue asks for.
const MODULE_SIZE_TARGET: u64 = 700_000;

/// The process's minor page faults so far (`getrusage`): a fresh instance's first touch of
/// each page of its memory is one.
#[allow(unsafe_code)]
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` writes the struct it is given and nothing else; an all-zero
    // `rusage` is a valid value of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always a valid target.
    let got = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if got == 0 { usage.ru_minflt } else { 0 }
}

/// Median time per call, over batches of about 2 ms each lasting `budget` in total.
fn measure(budget: Duration, f: impl FnMut()) -> Duration {
    measure_counted(budget, f).0
}

/// [`measure`], with the number of calls made.
fn measure_counted(budget: Duration, mut f: impl FnMut()) -> (Duration, u64) {
    let probe = Instant::now();
    let mut warm = 0u32;
    while warm < 20 || probe.elapsed() < Duration::from_millis(50) {
        f();
        warm += 1;
    }
    let per_call = probe.elapsed() / warm;
    let batch = (Duration::from_millis(2).as_nanos() / per_call.as_nanos().max(1)).clamp(1, 1000);
    let batch = u32::try_from(batch).unwrap_or(1);
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed() / batch);
    }
    let calls = u64::from(warm) + samples.len() as u64 * u64::from(batch);
    samples.sort();
    (samples[samples.len() / 2], calls)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// An AdmissionRequest for the StatefulSet.
fn admission_request(object: &Value) -> Value {
    json!({
        "uid": "bench", "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
        "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
        "name": "spire-server", "namespace": "kube-system", "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": object, "oldObject": null, "dryRun": false
    })
}

/// Kubewarden's ValidationRequest: the request and the settings.
fn validation_request(object: &Value, policies: &PolicySet) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"request": admission_request(object), "settings": policies.settings()}),
    )
    .expect("json")
}

fn policies(text: &str) -> PolicySet {
    let mut set = PolicySet::default();
    set.parse_into(text, "policy.yaml").expect("seed policy");
    set
}

fn module_path(variable: &str, built: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(built)
        },
        PathBuf::from,
    )
}

/// The parts of a Kubewarden response that are its decision.
fn decision(response: &[u8]) -> (bool, bool) {
    let value: Value = serde_json::from_slice(response).expect("response JSON");
    (
        value["accepted"].as_bool().expect("accepted"),
        !value["mutated_object"].is_null(),
    )
}

/// One line of the table.
struct Row {
    name: String,
    time: Duration,
    floor: Duration,
    /// Minor page faults per call.
    faults: f64,
}

struct Table {
    budget: Duration,
    rows: Vec<Row>,
}

impl Table {
    fn time(&mut self, name: &str, floor: Duration, f: impl FnMut()) -> Duration {
        // APART_BENCH_ONLY=TEXT times only the rows whose name contains TEXT (to profile one
        // path); the others are left out of the table.
        if std::env::var("APART_BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
            return Duration::from_nanos(1);
        }
        let faults = minor_faults();
        let (time, calls) = measure_counted(self.budget, f);
        self.rows.push(Row {
            name: name.to_owned(),
            time,
            floor,
            faults: (minor_faults() - faults) as f64 / calls.max(1) as f64,
        });
        time
    }

    fn print(&self) {
        println!(
            "{:<60} {:>10} {:>9} {:>12}",
            "path", "median µs", "× floor", "faults/call"
        );
        for row in &self.rows {
            println!(
                "{:<60} {:>10.1} {:>9.1} {:>12.1}",
                row.name,
                micros(row.time),
                micros(row.time) / micros(row.floor),
                row.faults
            );
        }
    }
}

/// The three payloads and their floors.
struct Payload {
    bytes: Vec<u8>,
    floor: Duration,
}

fn main() {
    let seconds = std::env::var("APART_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    let mut table = Table {
        budget: Duration::from_secs_f64(seconds),
        rows: Vec::new(),
    };
    let mutate = policies(POLICY);
    let validate_only = policies(&POLICY.replace("action: mutate", "action: validate"));
    let violating = read::parse_documents(STATEFULSET)
        .expect("statefulset")
        .remove(0)
        .value;
    let mut compliant = violating.clone();
    compliant["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"]["namespaces"] = json!(["kube-system", "flux-system"]);

    let floor_of = |bytes: Vec<u8>| {
        let floor = measure(table.budget, || {
            black_box(serde_json::from_slice::<IgnoredAny>(black_box(&bytes)).ok());
        });
        Payload { bytes, floor }
    };
    let cases = [
        (
            "compliant",
            floor_of(validation_request(&compliant, &mutate)),
        ),
        (
            "reject",
            floor_of(validation_request(&violating, &validate_only)),
        ),
        ("mutate", floor_of(validation_request(&violating, &mutate))),
    ];
    let floor = cases[0].1.floor;
    println!(
        "payload: {} bytes (the spire-server StatefulSet in a Kubewarden ValidationRequest, settings included)",
        cases[0].1.bytes.len()
    );
    table.rows.push(Row {
        name: "floor: validate the JSON (serde IgnoredAny)".to_owned(),
        time: floor,
        floor,
        faults: 0.0,
    });
    let bytes = &cases[0].1.bytes;
    table.time("parse into serde_json::Value", floor, || {
        black_box(serde_json::from_slice::<Value>(black_box(bytes)).ok());
    });

    // The guest's own entry compiled natively: the same code as the module, settings cached.
    let native = |payload: &[u8]| {
        serde_json::to_vec(&apart_wasm::validate_payload(payload)).expect("response")
    };
    let mut native_time = Vec::new();
    for (name, payload) in &cases {
        native_time.push(
            table.time(&format!("native engine: {name}"), payload.floor, || {
                black_box(native(black_box(&payload.bytes)));
            }),
        );
    }
    let settings = serde_json::to_vec(&mutate.settings()).expect("settings");
    table.time("native: compile the settings alone", floor, || {
        black_box(PolicySet::from_settings(black_box(&settings)).ok());
    });

    let wasm = std::fs::read(module_path(
        "APART_WASM_MODULE",
        "target/wasm/apart_wasm.wasm",
    ))
    .expect("the module: run `cargo xtask build` (or `cargo xtask bench`)");
    let module = PolicyModule::new(&wasm).expect("module");
    let mut session = module.session();
    for (name, payload) in &cases {
        let expected = decision(&native(&payload.bytes));
        let warm = session.call("validate", &payload.bytes).expect("warm call");
        let fresh = module.call("validate", &payload.bytes).expect("fresh call");
        assert_eq!(warm, native(&payload.bytes), "{name}: warm module ≠ native");
        assert_eq!(decision(&fresh), expected, "{name}: fresh module ≠ native");
    }
    let mut warm_time = Vec::new();
    let mut fresh_time = Vec::new();
    for (name, payload) in &cases {
        warm_time.push(table.time(
            &format!("module, warm instance: {name}"),
            payload.floor,
            || {
                black_box(session.call("validate", black_box(&payload.bytes)).ok());
            },
        ));
    }
    for (name, payload) in &cases {
        fresh_time.push(table.time(
            &format!("module, fresh instance per call: {name}"),
            payload.floor,
            || {
                black_box(module.call("validate", black_box(&payload.bytes)).ok());
            },
        ));
    }
    // What a fresh instance costs before any work: instantiation, the guest's initialisation
    // and `wapc_init`, then the smallest call there is.
    table.time(
        "module, fresh instance per call: protocol_version (no work)",
        floor,
        || {
            black_box(module.call("protocol_version", b"").ok());
        },
    );
    let settings_payload = settings.clone();
    table.time(
        "module, fresh instance per call: validate_settings",
        floor,
        || {
            black_box(
                module
                    .call("validate_settings", black_box(&settings_payload))
                    .ok(),
            );
        },
    );
    // A module `apart build` made (the seed policy baked in, pre-initialised), deployed with
    // `settings: {}` as policy-server then sends it; beside it, the same module baked but not
    // pre-initialised, whose every fresh instance compiles the baked policies.
    let built = kubewarden::build_for(&wasm, &mutate, Mode::KubewardenWapc).expect("builds");
    let baked_only = kubewarden::bake(&wasm, &mutate).expect("bakes");
    let built_module = PolicyModule::new(&built).expect("built module");
    let baked_module = PolicyModule::new(&baked_only).expect("baked module");
    let mut built_session = built_module.session();
    let mut built_warm = Vec::new();
    let mut built_fresh = Vec::new();
    for (name, object) in [("compliant", &compliant), ("mutate", &violating)] {
        let payload =
            serde_json::to_vec(&json!({"request": admission_request(object), "settings": {}}))
                .expect("json");
        let with_settings = if name == "compliant" {
            &cases[0]
        } else {
            &cases[2]
        };
        let expected = decision(&native(&with_settings.1.bytes));
        for (which, answer) in [
            ("built, warm", built_session.call("validate", &payload)),
            ("built, fresh", built_module.call("validate", &payload)),
            ("baked only, fresh", baked_module.call("validate", &payload)),
        ] {
            assert_eq!(
                decision(&answer.expect("answers")),
                expected,
                "{name}: {which} module ≠ native"
            );
        }
        let floor = with_settings.1.floor;
        built_warm.push(table.time(
            &format!("built module (`settings: {{}}`), warm: {name}"),
            floor,
            || {
                black_box(built_session.call("validate", black_box(&payload)).ok());
            },
        ));
        built_fresh.push(table.time(
            &format!("built module (`settings: {{}}`), fresh per call: {name}"),
            floor,
            || {
                black_box(built_module.call("validate", black_box(&payload)).ok());
            },
        ));
        table.time(
            &format!("baked, not pre-initialised, fresh per call: {name}"),
            floor,
            || {
                black_box(baked_module.call("validate", black_box(&payload)).ok());
            },
        );
    }

    let empty = std::fs::read(module_path(
        "APART_EMPTY_GUEST",
        "target/wasm32-wasip1/wasm/examples/empty_guest.wasm",
    ))
    .ok()
    .map(|bytes| PolicyModule::new(&bytes).expect("empty guest"));
    let empty_overhead = empty.as_ref().map(|empty| {
        let mut session = empty.session();
        let warm = table.time("empty guest, warm instance", floor, || {
            black_box(session.call("validate", black_box(bytes)).ok());
        });
        let fresh = table.time("empty guest, fresh instance per call", floor, || {
            black_box(empty.call("validate", black_box(bytes)).ok());
        });
        table.time(
            "empty guest, fresh instance per call: protocol_version",
            floor,
            || {
                black_box(empty.call("protocol_version", b"").ok());
            },
        );
        fresh.saturating_sub(warm)
    });

    // Gatekeeper: the same object as `input.review`, the policy as `input.parameters`.
    let parameters = gatekeeper::parameters(&mutate, 0).expect("parameters");
    let rego_inputs =
        [("compliant", &compliant), ("violating", &violating)].map(|(name, object)| {
            let input = json!({"parameters": parameters, "review": admission_request(object)});
            (name, input.to_string(), object == &violating)
        });
    let mut generated = regorus::Engine::new();
    generated
        .add_policy("apart.rego".to_owned(), gatekeeper::REGO.to_owned())
        .expect("generated Rego");
    let mut hand = regorus::Engine::new();
    hand.add_policy("seed.rego".to_owned(), HAND_WRITTEN_REGO.to_owned())
        .expect("hand-written Rego");
    let regorus_violations = |engine: &mut regorus::Engine, rule: &str, input: &str| {
        engine.set_input(regorus::Value::from_json_str(input).expect("input"));
        let result = engine.eval_rule(rule.to_owned()).expect("eval");
        result.as_set().map_or(0, |s| s.len()) + result.as_array().map_or(0, |a| a.len())
    };
    let mut rego_time = Vec::new();
    // The real OPA engine, one instance per Rego, each compiled once (absent: no OPA rows).
    let mut opa = opa_engine::OpaEngine::load()
        .zip(opa_engine::OpaEngine::load())
        .map(|(mut generated, mut hand)| {
            generated
                .add_policy("apart.rego", gatekeeper::REGO)
                .expect("generated Rego in OPA");
            hand.add_policy("seed.rego", HAND_WRITTEN_REGO)
                .expect("hand-written Rego in OPA");
            (generated, hand)
        });
    for (name, input, violating) in &rego_inputs {
        let rego_floor = measure(table.budget, || {
            black_box(serde_json::from_str::<IgnoredAny>(black_box(input)).ok());
        });
        let found = regorus_violations(&mut generated, "data.apart.decorrelation.violation", input);
        assert_eq!(found > 0, *violating, "regorus, generated Rego, {name}");
        let found = regorus_violations(&mut hand, "data.seed.violation", input);
        assert_eq!(found > 0, *violating, "regorus, hand-written Rego, {name}");
        let generated_time = table.time(
            &format!("regorus, generated Rego: {name}"),
            rego_floor,
            || {
                black_box(regorus_violations(
                    &mut generated,
                    "data.apart.decorrelation.violation",
                    black_box(input),
                ));
            },
        );
        let hand_time = table.time(
            &format!("regorus, hand-written Rego: {name}"),
            rego_floor,
            || {
                black_box(regorus_violations(
                    &mut hand,
                    "data.seed.violation",
                    black_box(input),
                ));
            },
        );
        rego_time.push(("regorus", *name, generated_time, hand_time));
        if let Some((opa_generated, opa_hand)) = opa.as_mut() {
            let c_input = CString::new(input.as_str()).expect("input");
            let generated_query =
                CString::new("data.apart.decorrelation.violation").expect("query");
            let hand_query = CString::new("data.seed.violation").expect("query");
            let count = |result: Value| {
                result[0]["expressions"][0]["value"]
                    .as_array()
                    .map_or(0, Vec::len)
            };
            let found = count(
                opa_generated
                    .eval(&generated_query, &c_input)
                    .expect("OPA eval"),
            );
            assert_eq!(found > 0, *violating, "OPA, generated Rego, {name}");
            let found = count(opa_hand.eval(&hand_query, &c_input).expect("OPA eval"));
            assert_eq!(found > 0, *violating, "OPA, hand-written Rego, {name}");
            let generated_time = table.time(
                &format!("OPA 1.20, generated Rego: {name}"),
                rego_floor,
                || {
                    black_box(
                        opa_generated
                            .eval(&generated_query, black_box(&c_input))
                            .ok(),
                    );
                },
            );
            let hand_time = table.time(
                &format!("OPA 1.20, hand-written Rego: {name}"),
                rego_floor,
                || {
                    black_box(opa_hand.eval(&hand_query, black_box(&c_input)).ok());
                },
            );
            rego_time.push(("OPA 1.20", *name, generated_time, hand_time));
        }
    }
    if opa.is_none() {
        println!(
            "(no OPA rows: {} is absent; `cargo xtask bench` fetches it)",
            opa_engine::library_path().display()
        );
    }
    println!("decisions: every row agrees with the native engine on every input");
    table.print();

    if std::env::var_os("APART_BENCH_ONLY").is_some() {
        return;
    }
    println!();
    println!(
        "{:<60} {:>10} {:>9}",
        "target (issue 14)", "measured", "met"
    );
    let ratio = |a: Duration, b: Duration| micros(a) / micros(b);
    let target = |name: String, measured: String, met: bool| {
        println!(
            "{name:<60} {measured:>10} {:>9}",
            if met { "yes" } else { "no" }
        );
    };
    for (i, (name, _)) in cases.iter().enumerate() {
        let r = ratio(warm_time[i], native_time[i]);
        target(
            format!("warm module within 2.5× native: {name}"),
            format!("{r:.2}×"),
            r <= 2.5,
        );
    }
    if let Some(empty_overhead) = empty_overhead {
        let apart = fresh_time[0].saturating_sub(warm_time[0]);
        let r = ratio(apart, empty_overhead);
        target(
            "(fresh − warm) within 1.1× the empty guest's: settings".to_owned(),
            format!("{r:.2}×"),
            r <= 1.1,
        );
        for (i, name) in ["compliant", "mutate"].iter().enumerate() {
            let apart = built_fresh[i].saturating_sub(built_warm[i]);
            let r = ratio(apart, empty_overhead);
            target(
                format!("(fresh − warm) within 1.1× the empty guest's: built, {name}"),
                format!("{r:.2}×"),
                r <= 1.1,
            );
        }
    }
    for (level, times) in [
        ("native", &native_time),
        ("warm", &warm_time),
        ("fresh", &fresh_time),
    ] {
        let r = ratio(times[2], times[1]);
        target(
            format!("mutate within 1.5× reject: {level}"),
            format!("{r:.2}×"),
            r <= 1.5,
        );
    }
    let size = wasm.len() as u64;
    target(
        "module under 700 KB".to_owned(),
        format!("{} KB", size / 1000),
        size < MODULE_SIZE_TARGET,
    );
    for (engine, name, generated_time, hand_time) in rego_time {
        let r = ratio(generated_time, hand_time);
        target(
            format!("{engine}: generated Rego within 2× hand-written: {name}"),
            format!("{r:.2}×"),
            r <= 2.0,
        );
    }
}
