//! The OPA-ABI value functions: `opa_json_parse` (serde_json in the module), then
//! `opa_value_add_path` / `opa_value_remove_path` on what it parsed, with their documented
//! contract: on error the base is unchanged; after an add the value is at its path; removing
//! what was added succeeds.
#![no_main]

use apart_opa::{ErrorCode, add_path, remove_path};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn at<'v>(base: &'v Value, path: &Value) -> Option<&'v Value> {
    let mut v = base;
    for k in path.as_array()? {
        v = v.get(k.as_str()?)?;
    }
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    let (base, rest) = apart_fuzz::split(data);
    let (path, value) = apart_fuzz::split(rest);
    let (Ok(base), Ok(path), Ok(value)) = (
        serde_json::from_slice::<Value>(base),
        serde_json::from_slice::<Value>(path),
        serde_json::from_slice::<Value>(value),
    ) else {
        return;
    };
    let mut added = base.clone();
    match add_path(&mut added, &path, value.clone()) {
        ErrorCode::Ok => {
            assert_eq!(at(&added, &path), Some(&value), "add_path wrote elsewhere");
            if path.as_array().is_some_and(|p| !p.is_empty()) {
                let mut removed = added.clone();
                assert_eq!(remove_path(&mut removed, &path), ErrorCode::Ok);
                assert_eq!(at(&removed, &path), None);
            }
        }
        _ => assert_eq!(added, base, "a failed add_path changed the base"),
    }
    let mut removed = base.clone();
    if remove_path(&mut removed, &path) != ErrorCode::Ok {
        assert_eq!(removed, base, "a failed remove_path changed the base");
    }
});
