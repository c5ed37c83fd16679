//! Structure-aware: the fuzzer's bytes choose policies (selectors with every operator,
//! namespaces and namespaceSelectors, topology keys, strengths, weights, value targets) and
//! an object (Pod, workloads, HelmRelease) with anti-affinity terms aimed at the peers or a
//! slip away. The object is evaluated, written as block YAML, repaired in place as `apart
//! fix` does, and the repair checked (reads back as the repaired object, evaluates clean);
//! the same request through the waPC and OPA-ABI entry points answers without panicking.
#![no_main]

use apart_fuzz::NoHost;
use apart_policy::PolicySet;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let (policies, object) = apart_testkit::pair_of_bytes(data);
    let settings = apart_testkit::settings(&policies);
    let Ok(set) = PolicySet::from_settings(settings.to_string().as_bytes()) else {
        return;
    };
    apart_fuzz::check_fix(&set, &apart_testkit::to_block_yaml(&object));
    let request = json!({
        "settings": settings,
        "request": {"uid": "u", "operation": "CREATE", "namespace": "default",
                    "kind": {"group": "", "version": "v1", "kind": object["kind"]},
                    "object": object},
    });
    let response = apart_wasm::validate_payload_with(request.to_string().as_bytes(), &mut NoHost);
    let input = json!({"parameters": settings, "review": request["request"]});
    let opa = apart_opa::messages(Some(&input));
    // Both modules judge the same findings: the OPA module denies whenever the waPC module
    // rejects (it never repairs, so it may deny what the waPC module repairs and admits).
    if !response.accepted {
        assert!(!opa.is_empty(), "waPC rejects, OPA admits: {request}");
    }
});
