//! The waPC `validate_settings` payload (the settings JSON), through the guest's own function
//! compiled natively: valid or invalid with a message, never a panic; valid settings compile
//! the same way a second time (the guest caches them by their bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = apart_wasm::validate_settings_payload(data);
    if !first.valid {
        assert!(
            first.message.as_deref().is_some_and(|m| !m.is_empty()),
            "invalid settings without a message"
        );
    }
    serde_json::to_vec(&first).expect("the response encodes");
    // Another payload in between, then the same bytes: the cache must not change the answer.
    let _ = apart_wasm::validate_settings_payload(b"{}");
    let again = apart_wasm::validate_settings_payload(data);
    assert_eq!(first.valid, again.valid);
    assert_eq!(first.message, again.message);
});
