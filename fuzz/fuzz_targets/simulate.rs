//! `apart simulate`: a cluster snapshot, then (after a 0xFF byte) the incoming pod, both JSON.
//! The simulation answers or errors; scores are 0..=100 and only feasible nodes are scored.
#![no_main]

use apart_policy::kube::cluster::Cluster;
use apart_policy::placement::simulate::{self, IncomingPod, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cluster, pod) = apart_fuzz::split(data);
    let (Ok(cluster), Ok(pod)) = (Cluster::from_json(cluster), IncomingPod::from_json(pod)) else {
        return;
    };
    if let Ok(sim) = simulate::simulate(&cluster, &pod, &Options::default(), None) {
        let out = serde_json::to_value(&sim).expect("a simulation encodes");
        let feasible: Vec<_> = out["feasible_nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(scores) = out["scores"].as_object() {
            for (node, score) in scores {
                let s = score.as_i64().expect("an integer score");
                assert!((0..=100).contains(&s), "{node}: {s}");
                assert!(
                    feasible.iter().any(|f| f == node),
                    "{node} scored but not feasible"
                );
            }
        }
    }
});
