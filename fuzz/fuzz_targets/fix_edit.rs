//! The in-place YAML editor behind `apart fix`, on manifest text: every repaired document's
//! new text reads back as exactly the repaired object (or the editor declines and the object
//! is written anew, which must read back too), and the repaired object evaluates clean.
#![no_main]

use std::sync::OnceLock;

use apart_policy::PolicySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    let set = SET.get_or_init(apart_fuzz::fix_policies);
    if let Ok(text) = std::str::from_utf8(data) {
        apart_fuzz::check_fix(set, text);
    }
});
