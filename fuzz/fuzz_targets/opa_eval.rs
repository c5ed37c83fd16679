//! The OPA-ABI module's `opa_eval` input (Gatekeeper-mode JSON: parameters and review),
//! through the module's evaluation compiled natively: a result set of the ABI's shape, and
//! never an admission of input it could not read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // opa_eval reads the input with serde_json; text that is not JSON is a violation there.
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let result = apart_opa::evaluate(0, Some(&input)).expect("entrypoint 0 exists");
    let set = result.as_array().expect("a result set");
    assert_eq!(set.len(), 1);
    let violations = set[0]["result"].as_array().expect("a list of violations");
    for v in violations {
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    // Without a review or parameters there is nothing to admit.
    if input.get("review").is_none() {
        assert!(!violations.is_empty(), "no review, but admitted");
    }
    assert!(
        apart_opa::evaluate(1, Some(&input)).is_none(),
        "only entrypoint 0"
    );
    serde_json::to_vec(&result).expect("the result encodes");
});
