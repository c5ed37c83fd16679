//! DecorrelationPolicy documents (YAML or JSON text, several per file): an error names a
//! line, and policies that compile survive the trip through Kubewarden settings (what
//! `apart build` and the module read) with the same names.
#![no_main]

use apart_policy::PolicySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = PolicySet::default();
    match set.parse_into(text, "fuzz.yaml") {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(_) => {
            let settings = set.settings().to_string();
            let again = PolicySet::from_settings(settings.as_bytes())
                .unwrap_or_else(|e| panic!("compiled policies do not read back: {e}\n{settings}"));
            assert_eq!(set.names(), again.names());
            assert_eq!(
                again.settings().to_string(),
                settings,
                "settings are stable"
            );
        }
    }
});
