//! The saved fuzz corpus (`fuzz/corpus/<target>/`) through the built modules under wasmtime:
//! every input the fuzzers kept for the module entry points runs through the `.wasm` and must
//! answer (no trap, no host error, no deadline) exactly as the guest's own code compiled
//! natively does:
//!
//! - `wapc_validate`, `wapc_settings`: the waPC module's `validate` / `validate_settings`
//!   against `apart_wasm`'s functions (a host that grants no capability on both sides);
//! - `opa_eval`: the OPA-ABI module's one-call `opa_eval` (ABI 1.2) against
//!   `apart_opa::evaluate`;
//! - `evaluate_structured`: each input decoded into its (policies, object) pair as the fuzz
//!   target does, sent to both modules as a CREATE request.
//!
//! `seed_the_fuzz_corpus` (ignored; `cargo xtask fuzz --seed` runs it) writes the seeds the
//! fuzzers start from, from `tests/cases`, `tests/admission` and `examples/`.

mod support;

use std::path::{Path, PathBuf};

use apart_host::commands::check;
use apart_host::host::evaluator::{Evaluator, Native};
use apart_host::host::replay::{Replay, ReplayHost};
use apart_host::host::wapc::PolicyModule;
use apart_host::manifests;
use apart_policy::source::read;
use serde_json::{Value, json};
use support::opa_host::{OpaPolicy, opa_module_bytes};
use support::{assert_no_failures, built_module, case_dirs, files, read_json, root};

/// The corpus folder of a target.
fn corpus(target: &str) -> PathBuf {
    root().join("fuzz/corpus").join(target)
}

/// The inputs saved for a target, sorted by name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the fuzz corpus is committed)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let bytes = std::fs::read(&p).expect("corpus file");
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

fn module() -> PolicyModule {
    PolicyModule::new(&built_module())
        .expect("the module compiles")
        .with_replay(Replay::empty())
}

/// The native guest meeting the same host as the module: one that grants nothing.
fn native_validate(payload: &[u8]) -> Value {
    let replay = Replay::empty();
    let mut host = ReplayHost::new(&replay);
    serde_json::to_value(apart_wasm::validate_payload_with(payload, &mut host)).expect("encodes")
}

fn wasm_validate(module: &PolicyModule, payload: &[u8]) -> Result<Value, String> {
    let answer = module
        .call("validate", payload)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&answer).map_err(|e| format!("the answer is not JSON: {e}"))
}

#[test]
fn wapc_validate_corpus_answers_through_the_module_as_natively() {
    let module = module();
    let inputs = inputs("wapc_validate");
    assert!(inputs.len() >= 20, "{} inputs", inputs.len());
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        match wasm_validate(&module, bytes) {
            Ok(wasm) if wasm == native_validate(bytes) => {}
            Ok(wasm) => failures.push(format!(
                "{name}: module {wasm}, native {}",
                native_validate(bytes)
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!("{} wapc_validate inputs replayed", inputs.len());
    assert_no_failures(&failures);
}

#[test]
fn wapc_settings_corpus_answers_through_the_module_as_natively() {
    let module = module();
    let inputs = inputs("wapc_settings");
    assert!(inputs.len() >= 20, "{} inputs", inputs.len());
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        let native = Native.validate_settings(bytes).expect("native answers");
        match module.validate_settings(bytes) {
            Ok(wasm) if (wasm.valid, &wasm.message) == (native.valid, &native.message) => {}
            Ok(wasm) => failures.push(format!("{name}: module {wasm:?}, native {native:?}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert_no_failures(&failures);
}

/// What the OPA module's `opa_eval` answers for input text, computed natively (the module
/// reads the text with serde_json; text that is not JSON is one violation saying so).
fn native_opa(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return apart_opa::evaluate(0, None).expect("entrypoint 0");
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => apart_opa::evaluate(0, Some(&v)).expect("entrypoint 0"),
        Err(e) => json!([{"result": [{"msg": format!("apart: the input is not JSON: {e}")}]}]),
    }
}

#[test]
fn opa_eval_corpus_answers_through_the_module_as_natively() {
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, opa_module_bytes()).expect("compiles");
    let inputs = inputs("opa_eval");
    assert!(inputs.len() >= 20, "{} inputs", inputs.len());
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        // A fresh instance each time: a trap must not hide behind the previous input's state.
        let mut policy = OpaPolicy::new(&engine, &module).expect("instantiates");
        match policy.eval_once(bytes, 0) {
            Ok(wasm) if wasm == native_opa(bytes) => {}
            Ok(wasm) => failures.push(format!(
                "{name}: module {wasm}, native {}",
                native_opa(bytes)
            )),
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }
    assert_no_failures(&failures);
}

/// A CREATE request for a generated object under generated policies.
pub fn create_request(policies: &[Value], object: &Value) -> Value {
    json!({
        "settings": apart_testkit::settings(policies),
        "request": {
            "uid": "fuzz", "operation": "CREATE",
            "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(json!("default")),
            "kind": {"group": "", "version": "v1", "kind": object["kind"]},
            "object": object,
        },
    })
}

#[test]
fn structured_corpus_answers_through_both_modules_as_natively() {
    let wapc = module();
    let engine = wasmtime::Engine::default();
    let opa = wasmtime::Module::new(&engine, opa_module_bytes()).expect("compiles");
    let mut policy = OpaPolicy::new(&engine, &opa).expect("instantiates");
    let inputs = inputs("evaluate_structured");
    assert!(inputs.len() >= 20, "{} inputs", inputs.len());
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        let (policies, object) = apart_testkit::pair_of_bytes(bytes);
        let request = create_request(&policies, &object);
        let payload = request.to_string();
        match wasm_validate(&wapc, payload.as_bytes()) {
            Ok(wasm) if wasm == native_validate(payload.as_bytes()) => {}
            Ok(wasm) => failures.push(format!("{name}: waPC module {wasm}")),
            Err(e) => failures.push(format!("{name}: waPC module: {e}")),
        }
        let input = json!({"parameters": request["settings"], "review": request["request"]});
        let text = input.to_string();
        match policy.eval_once(text.as_bytes(), 0) {
            Ok(wasm) if wasm == native_opa(text.as_bytes()) => {}
            Ok(wasm) => failures.push(format!("{name}: OPA module {wasm}")),
            Err(e) => failures.push(format!("{name}: OPA module: {e:#}")),
        }
    }
    assert_no_failures(&failures);
}

/// Writes `bytes` as `fuzz/corpus/<target>/seed-<name>`.
fn seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

/// A YAML or JSON file's first document as JSON text.
fn json_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc = read::parse_one(&text).ok()??;
    Some(doc.value.to_string())
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

/// The seeds: every policy, manifest, cluster and admission request of the corpus, as each
/// target reads its input.
#[test]
#[ignore = "writes fuzz/corpus/*/seed-*: run by `cargo xtask fuzz --seed`"]
fn seed_the_fuzz_corpus() {
    let seed_policy = root().join("examples/seed/policy.yaml");
    for dir in case_dirs("cases", |_| true) {
        let case = name_of(&dir);
        let policy_files = files(&dir, "policy");
        for p in &policy_files {
            let text = std::fs::read(p).expect("policy");
            seed("policy_parse", &case, &text);
            seed("source_read", &format!("{case}-policy"), &text);
        }
        let policies = check::read_policies(&policy_files).ok();
        if let Some(p) = &policies {
            seed("wapc_settings", &case, &p.settings());
        }
        for (i, input) in files(&dir, "input").iter().enumerate() {
            let text = std::fs::read(input).expect("input");
            seed("source_read", &format!("{case}-{i}"), &text);
            seed("fix_edit", &format!("{case}-{i}"), &text);
        }
        if let (Some(p), Ok(sources)) = (&policies, manifests::read_sources(&files(&dir, "input")))
            && let Ok(objects) = manifests::objects(&sources)
        {
            let settings = p.settings();
            for (i, o) in objects.iter().enumerate() {
                let json = o.value.to_string();
                let request =
                    check::request_bytes(i, &o.value, json.as_bytes(), "default", &settings);
                seed("wapc_validate", &format!("{case}-{i}"), &request);
                if let Ok(r) = serde_json::from_slice::<Value>(&request) {
                    let input = json!({"parameters": r["settings"], "review": r["request"]});
                    seed(
                        "opa_eval",
                        &format!("{case}-{i}"),
                        input.to_string().as_bytes(),
                    );
                }
            }
        }
        let cluster = ["cluster.json", "cluster.yaml"]
            .iter()
            .find_map(|f| json_of(&dir.join(f)));
        if let Some(cluster) = &cluster {
            seed("cluster_read", &case, cluster.as_bytes());
            if let Some(pod) = ["pod.yaml", "pod.json"]
                .iter()
                .find_map(|f| json_of(&dir.join(f)))
            {
                let mut bytes = cluster.clone().into_bytes();
                bytes.push(0xFF);
                bytes.extend_from_slice(pod.as_bytes());
                seed("simulate", &case, &bytes);
            }
            for p in &policy_files {
                let mut bytes = std::fs::read(p).expect("policy");
                bytes.push(0xFF);
                bytes.extend_from_slice(cluster.as_bytes());
                seed("audit", &case, &bytes);
            }
        }
    }
    let seed_settings = check::read_policies(&[seed_policy])
        .expect("seed policy")
        .settings();
    let seed_settings: Value = serde_json::from_slice(&seed_settings).expect("settings");
    for dir in case_dirs("admission", |d| d.join("request.json").is_file()) {
        let case = name_of(&dir);
        let review = read_json(&dir.join("request.json"));
        let request = review.get("request").cloned().unwrap_or(review);
        let settings = match dir.join("settings.json") {
            p if p.is_file() => read_json(&p),
            _ => seed_settings.clone(),
        };
        let payload = json!({"settings": settings, "request": request});
        seed("wapc_validate", &case, payload.to_string().as_bytes());
        seed("wapc_settings", &case, settings.to_string().as_bytes());
        let input = json!({"parameters": settings, "review": request});
        seed("opa_eval", &case, input.to_string().as_bytes());
    }
    for (i, text) in [
        "{\"a\":{\"b\":1}}\u{FF}[\"a\",\"x\",\"y\"]\u{FF}{\"foo\":\"bar\"}",
        "{\"a\":{\"b\":1}}\u{FF}[\"a\",\"b\",\"c\"]\u{FF}1",
        "{}\u{FF}[]\u{FF}null",
        "[1,2]\u{FF}[\"a\"]\u{FF}{}",
    ]
    .iter()
    .enumerate()
    {
        // U+00FF is written as the separator byte itself, as the target splits on it.
        let bytes: Vec<u8> = text
            .chars()
            .flat_map(|ch| match ch {
                '\u{FF}' => vec![0xFF],
                c => c.to_string().into_bytes(),
            })
            .collect();
        seed("opa_value", &i.to_string(), &bytes);
    }
    // Structure-aware seeds: random bytes, each a different pair.
    let mut s = apart_testkit::Seeded::new(12);
    for i in 0..40 {
        use apart_testkit::Choices as _;
        let bytes: Vec<u8> = (0..256)
            .map(|_| u8::try_from(s.below(256)).unwrap_or(0))
            .collect();
        seed("evaluate_structured", &i.to_string(), &bytes);
    }
}
