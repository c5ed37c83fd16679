//! The cluster snapshot reader (`kubectl get nodes,pods,namespaces -A -o json`, a v1/List):
//! a snapshot or a typed error, never a panic; every placed pod's node is in the snapshot.
#![no_main]

use apart_policy::kube::cluster::Cluster;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cluster) = Cluster::from_json(data) {
        for (_, node) in cluster.placed() {
            assert!(cluster.node(&node.name).is_some());
        }
    }
});
