//! The waPC `validate` payload (a Kubewarden `ValidationRequest`: settings and an
//! AdmissionRequest), through the guest's own function compiled natively: any bytes get an
//! answer that encodes, and a rejection says why.
#![no_main]

use apart_fuzz::NoHost;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let response = apart_wasm::validate_payload_with(data, &mut NoHost);
    let encoded = serde_json::to_vec(&response).expect("the response encodes");
    assert!(!encoded.is_empty());
    if !response.accepted {
        assert!(
            response.message.as_deref().is_some_and(|m| !m.is_empty()),
            "a rejection without a message"
        );
        assert!(
            response.mutated_object.is_none(),
            "a rejection that mutates"
        );
    }
});
