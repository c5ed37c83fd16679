//! `apart audit`: policy documents (YAML), then (after a 0xFF byte) a cluster snapshot
//! (JSON). The report encodes; a clean report has no violations.
#![no_main]

use apart_policy::PolicySet;
use apart_policy::kube::cluster::Cluster;
use apart_policy::placement::audit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (policies, cluster) = apart_fuzz::split(data);
    let Ok(text) = std::str::from_utf8(policies) else {
        return;
    };
    let mut set = PolicySet::default();
    if set.parse_into(text, "policy.yaml").is_err() {
        return;
    }
    let Ok(cluster) = Cluster::from_json(cluster) else {
        return;
    };
    let report = audit::audit(&set, &cluster);
    assert_eq!(report.is_clean(), report.violations.is_empty());
    serde_json::to_value(&report).expect("the report encodes");
});
