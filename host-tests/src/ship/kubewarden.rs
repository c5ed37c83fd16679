//! Kubewarden packaging: policies baked into a copy of the module, the
//! `io.kubewarden.metadata` custom section (as `kwctl annotate` writes it), and the resources
//! that deploy the result (`ClusterAdmissionPolicy`, `artifacthub-pkg.yml`).
//!
//! Baking needs no Rust toolchain: the module carries a small header naming a buffer in its
//! memory (see `apart_policy::rules::baked`), and baking writes the policies there: in place
//! when the module's data holds the buffer, else as one added data segment that fills it at
//! instantiation; the metadata is an appended custom section. Both are read back by
//! [`inspect`].

use std::collections::BTreeMap;

use apart_policy::rules::baked::{
    BUFFER_BYTES as BAKED_BUFFER_BYTES, CAPACITY as BAKED_CAPACITY, MAGIC as BAKED_MAGIC,
};
use apart_policy::{Action, PolicySet};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ship::preinit::{self, PreinitError};
use crate::ship::wasm_binary::{self, NotWasm, custom_section, with_custom_section};

/// The custom section policy-server reads the metadata from.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";
/// Where apart's sources live (annotations, artifact source).
pub const SOURCE_URL: &str = "https://github.com/apart-dev/apart";

/// Why a module cannot be packaged or read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Not a WebAssembly binary, or a truncated one.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(#[from] NotWasm),
    /// The module has no (or more than one) baking region: not apart's waPC module.
    #[error(
        "this module has {0} baked-policy regions (expected 1): pass apart's own Kubewarden module"
    )]
    NoBakingRegion(usize),
    /// The policies do not fit.
    #[error(
        "the policies take {0} bytes of JSON; a module holds at most {BAKED_CAPACITY}: split them over several modules"
    )]
    TooLarge(usize),
    /// The metadata section is not valid JSON of the expected shape.
    #[error("the {METADATA_SECTION} section is not valid: {0}")]
    BadMetadata(String),
    /// The module was built by `apart build` already: its memory holds the policies compiled
    /// from what was baked into it, so it cannot be baked again.
    #[error(
        "this module is already built with baked policies (pre-initialised): bake from apart's own module (omit --module) or an unbaked one"
    )]
    AlreadyPreinitialized,
    /// The baked module could not be pre-initialised.
    #[error(transparent)]
    Preinit(#[from] PreinitError),
}

/// One rule of the metadata: which requests policy-server sends to the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// API versions.
    pub api_versions: Vec<String>,
    /// Resources (plural, lower case).
    pub resources: Vec<String>,
    /// `CREATE`, `UPDATE`, ...
    pub operations: Vec<String>,
}

/// A resource a context-aware policy may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextAwareResource {
    /// `v1`, `apps/v1`, ...
    pub api_version: String,
    /// `Pod`, ...
    pub kind: String,
}

/// The `io.kubewarden.metadata` document (the fields policy-server and kwctl read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Always `v1`.
    pub protocol_version: String,
    /// The requests the policy wants.
    pub rules: Vec<Rule>,
    /// `io.kubewarden.policy.*` annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Does the policy return mutated objects?
    pub mutating: bool,
    /// May the audit scanner evaluate existing resources with it?
    #[serde(default)]
    pub background_audit: bool,
    /// Resources it may read through host capabilities.
    #[serde(default)]
    pub context_aware_resources: Vec<ContextAwareResource>,
    /// `kubewarden-wapc`, `opa`, `gatekeeper` or `wasi`.
    pub execution_mode: String,
    /// `kubernetes` (admission requests) or `raw`.
    #[serde(default)]
    pub policy_type: Option<String>,
}

/// The plural resource name the API server serves a kind under. Exact for the workload
/// kinds; for custom resources, the conventional lower-case plural (`HelmRelease` →
/// `helmreleases`), which is what CRDs use unless they declare otherwise.
fn resource_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with("sh") {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// The rules for exactly the resources the policies read: every workload kind with a pod
/// template, and the custom resources their value targets name.
pub fn rules_for(policies: &PolicySet) -> Vec<Rule> {
    // (group, version) -> resources, in a stable order.
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (group, kind) in apart_policy::kube::object::workload_kinds() {
        groups
            .entry((group.to_owned(), "v1".to_owned()))
            .or_default()
            .push(resource_of(kind));
    }
    for policy in policies.policies() {
        for target in &policy.value_targets {
            let (group, version) = target
                .api_version
                .rsplit_once('/')
                .unwrap_or(("", &target.api_version));
            let resources = groups
                .entry((group.to_owned(), version.to_owned()))
                .or_default();
            let resource = resource_of(&target.kind);
            if !resources.contains(&resource) {
                resources.push(resource);
            }
        }
    }
    groups
        .into_iter()
        .map(|((group, version), resources)| Rule {
            api_groups: vec![group],
            api_versions: vec![version],
            resources,
            operations: vec!["CREATE".to_owned(), "UPDATE".to_owned()],
        })
        .collect()
}

/// Which Kubewarden execution mode a module is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// The waPC module (`kubewarden-wapc`): validates, mutates, context-aware.
    #[default]
    KubewardenWapc,
    /// The OPA-ABI module (`gatekeeper`): validates only; policies arrive as `parameters`.
    Gatekeeper,
}

impl Mode {
    /// The metadata's `executionMode`.
    pub fn execution_mode(self) -> &'static str {
        match self {
            Mode::KubewardenWapc => "kubewarden-wapc",
            Mode::Gatekeeper => "gatekeeper",
        }
    }
}

/// The metadata `apart build` writes for a policy set (waPC module).
pub fn metadata_for(policies: &PolicySet) -> Metadata {
    metadata_for_mode(policies, Mode::KubewardenWapc)
}

/// The metadata `apart build --mode` writes for a policy set.
pub fn metadata_for_mode(policies: &PolicySet, mode: Mode) -> Metadata {
    let names = policies.names();
    // Gatekeeper mode only validates (Gatekeeper mutates with Assign resources instead).
    let mutating = mode == Mode::KubewardenWapc
        && policies
            .policies()
            .iter()
            .any(|p| p.action == Action::Mutate);
    let annotations = BTreeMap::from([
        ("io.kubewarden.policy.title".to_owned(), "apart".to_owned()),
        (
            "io.kubewarden.policy.description".to_owned(),
            format!(
                "Keeps critical subsystems on different failure domains (podAntiAffinity); baked policies: {}",
                names.join(", ")
            ),
        ),
        (
            "io.kubewarden.policy.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        (
            "io.kubewarden.policy.author".to_owned(),
            "apart developers".to_owned(),
        ),
        ("io.kubewarden.policy.url".to_owned(), SOURCE_URL.to_owned()),
        (
            "io.kubewarden.policy.source".to_owned(),
            SOURCE_URL.to_owned(),
        ),
        (
            "io.kubewarden.policy.license".to_owned(),
            "Apache-2.0".to_owned(),
        ),
        (
            "io.kubewarden.policy.category".to_owned(),
            "Resource placement".to_owned(),
        ),
        (
            "io.kubewarden.policy.severity".to_owned(),
            "high".to_owned(),
        ),
        ("io.kubewarden.policy.usage".to_owned(), usage(policies)),
    ]);
    Metadata {
        protocol_version: "v1".to_owned(),
        rules: rules_for(policies),
        annotations,
        mutating,
        background_audit: true,
        // What the co-location check of a running Pod reads (apart_policy::placement::colocation); the
        // OPA-ABI module makes no host call.
        context_aware_resources: match mode {
            Mode::KubewardenWapc => ["Pod", "Node", "Namespace"]
                .map(|kind| ContextAwareResource {
                    api_version: "v1".to_owned(),
                    kind: kind.to_owned(),
                })
                .into(),
            Mode::Gatekeeper => Vec::new(),
        },
        execution_mode: mode.execution_mode().to_owned(),
        policy_type: Some("kubernetes".to_owned()),
    }
}

/// The `io.kubewarden.policy.usage` annotation: Markdown naming what the module enforces.
fn usage(policies: &PolicySet) -> String {
    let mut out = String::from(
        "# apart\n\nThis module enforces the DecorrelationPolicy rules baked into it when its settings are empty (`settings: {}`); settings with `policies: [...]` replace them.\n\n",
    );
    for p in policies.policies() {
        let peers: Vec<String> = p.peers.iter().map(|g| g.describe()).collect();
        out.push_str(&format!(
            "- `{}`: {} apart from {} on `{}` ({:?}, {:?})\n",
            p.name,
            p.subject_selector.describe(),
            peers.join("; "),
            p.topology_key,
            p.strength,
            p.action
        ));
    }
    out
}

/// The custom section that marks a module [`build_for`] pre-initialised. Its memory holds the
/// policies compiled from what was baked, so it must not be baked again. The payload is the
/// baking buffer's address (a little-endian `u32`): Wizer's snapshot writes no run of zeros,
/// which splits the header's [`BAKED_MAGIC`] from the address after it.
pub const PREINITIALIZED_SECTION: &str = "apart.preinitialized";

/// Whether `module` was pre-initialised by [`build_for`].
pub fn is_preinitialized(module: &[u8]) -> Result<bool, PackageError> {
    Ok(custom_section(module, PREINITIALIZED_SECTION)?.is_some())
}

/// Where the module's baking buffer is in linear memory: the address its header (found by
/// [`BAKED_MAGIC`], exactly once) gives, or, in a pre-initialised module, its mark.
fn baking_buffer(module: &[u8]) -> Result<u32, PackageError> {
    if let Some(mark) = custom_section(module, PREINITIALIZED_SECTION)? {
        return <[u8; 4]>::try_from(mark)
            .map(u32::from_le_bytes)
            .map_err(|_| {
                PackageError::BadMetadata(format!(
                    "the {PREINITIALIZED_SECTION} section is not a buffer address"
                ))
            });
    }
    let hits: Vec<usize> = module
        .windows(BAKED_MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == BAKED_MAGIC)
        .map(|(i, _)| i + BAKED_MAGIC.len())
        .collect();
    let address = match hits.as_slice() {
        [at] => module
            .get(*at..*at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok()),
        _ => None,
    };
    address
        .map(u32::from_le_bytes)
        .ok_or(PackageError::NoBakingRegion(hits.len()))
}

/// The settings JSON baked into a module, if any.
pub fn baked_settings(module: &[u8]) -> Result<Option<Value>, PackageError> {
    let address = baking_buffer(module)?;
    let Some(buffer) = wasm_binary::data_at(module, address)? else {
        return Ok(None);
    };
    let len_bytes: [u8; 4] = buffer
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 {
        return Ok(None);
    }
    let bytes = buffer
        .get(4..4 + len.min(BAKED_CAPACITY))
        .unwrap_or_default();
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| PackageError::BadMetadata(format!("baked policies: {e}")))
}

/// A copy of the waPC `module` with `policies` baked in and the metadata section written.
pub fn bake(module: &[u8], policies: &PolicySet) -> Result<Vec<u8>, PackageError> {
    bake_for(module, policies, Mode::KubewardenWapc)
}

/// What `apart build` ships: [`bake_for`], then, for the waPC module, the baked policies
/// compiled into its initial memory ([`preinit::preinitialize`]), so that no instance
/// policy-server makes compiles them again. A module built before the guest had the
/// pre-initialisation export is shipped baked only.
pub fn build_for(module: &[u8], policies: &PolicySet, mode: Mode) -> Result<Vec<u8>, PackageError> {
    let baked = bake_for(module, policies, mode)?;
    if mode == Mode::KubewardenWapc && preinit::can_preinitialize(&baked) {
        let address = baking_buffer(&baked)?;
        let snapshot = preinit::preinitialize(&baked)?;
        return Ok(with_custom_section(
            &snapshot,
            PREINITIALIZED_SECTION,
            &address.to_le_bytes(),
        )?);
    }
    Ok(baked)
}

/// A copy of `module` (the one for `mode`) with `policies` baked in and the metadata
/// section written.
pub fn bake_for(module: &[u8], policies: &PolicySet, mode: Mode) -> Result<Vec<u8>, PackageError> {
    if is_preinitialized(module)? {
        return Err(PackageError::AlreadyPreinitialized);
    }
    let settings = serde_json::to_vec(&policies.settings()).unwrap_or_default();
    if settings.len() > BAKED_CAPACITY {
        return Err(PackageError::TooLarge(settings.len()));
    }
    let address = baking_buffer(module)?;
    let len = u32::try_from(settings.len()).unwrap_or(u32::MAX);
    let mut buffer = Vec::with_capacity(BAKED_BUFFER_BYTES);
    buffer.extend_from_slice(&len.to_le_bytes());
    buffer.extend_from_slice(&settings);
    // A buffer the module's data already holds (the OPA-ABI module's) is rewritten whole, so
    // that baking again leaves nothing of the policies baked before; a buffer in `.bss` (the
    // waPC module's) gets a segment of just what is baked.
    if wasm_binary::data_at(module, address)?.is_some_and(|held| held.len() >= BAKED_BUFFER_BYTES) {
        buffer.resize(BAKED_BUFFER_BYTES, 0);
    }
    let out = wasm_binary::with_data_at(module, address, &buffer)?;
    let metadata = serde_json::to_vec(&metadata_for_mode(policies, mode)).unwrap_or_default();
    Ok(with_custom_section(&out, METADATA_SECTION, &metadata)?)
}

/// The metadata of a module, if it is annotated.
pub fn metadata(module: &[u8]) -> Result<Option<Metadata>, PackageError> {
    custom_section(module, METADATA_SECTION)?
        .map(|bytes| {
            serde_json::from_slice(bytes).map_err(|e| PackageError::BadMetadata(e.to_string()))
        })
        .transpose()
}

/// The metadata's annotations (`io.kubewarden.policy.*`); empty when the module carries no
/// metadata. `oci::oci_annotations` turns them into manifest annotations as kwctl does.
pub fn metadata_annotations(module: &[u8]) -> BTreeMap<String, String> {
    metadata(module)
        .ok()
        .flatten()
        .map(|m| m.annotations)
        .unwrap_or_default()
}

/// What `apart inspect` shows.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The module's size in bytes.
    pub size: usize,
    /// Its metadata, when annotated.
    pub metadata: Option<Metadata>,
    /// The baked settings (`{"policies": [...]}`), when any.
    pub baked: Option<Value>,
}

/// Reads a module's metadata and baked policies.
pub fn inspect(module: &[u8]) -> Result<Inspection, PackageError> {
    Ok(Inspection {
        size: module.len(),
        metadata: metadata(module)?,
        baked: baked_settings(module)?,
    })
}

/// The `ClusterAdmissionPolicy` that deploys a baked module from `module_ref`
/// (`registry://host/repo:tag`).
pub fn cluster_admission_policy(name: &str, module_ref: &str, metadata: &Metadata) -> Value {
    json!({
        "apiVersion": "policies.kubewarden.io/v1",
        "kind": "ClusterAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "module": module_ref,
            "mode": "protect",
            "mutating": metadata.mutating,
            "backgroundAudit": metadata.background_audit,
            // policy-server grants the module's host lookups only for what the policy
            // resource lists.
            "contextAwareResources": metadata.context_aware_resources,
            "rules": metadata.rules,
            "settings": {},
        }
    })
}

/// The Artifact Hub package file (`artifacthub-pkg.yml`) for a baked module.
pub fn artifacthub_pkg(name: &str, module_ref: &str, metadata: &Metadata) -> Value {
    let annotation = |k: &str| metadata.annotations.get(k).cloned().unwrap_or_default();
    let mut kinds: Vec<String> = metadata
        .rules
        .iter()
        .flat_map(|r| r.resources.iter().cloned())
        .collect();
    kinds.sort();
    let image = module_ref.strip_prefix("registry://").unwrap_or(module_ref);
    json!({
        "version": annotation("io.kubewarden.policy.version"),
        "name": name,
        "displayName": format!("apart: {name}"),
        "createdAt": rfc3339_now(),
        "description": annotation("io.kubewarden.policy.description"),
        "license": annotation("io.kubewarden.policy.license"),
        "homeURL": annotation("io.kubewarden.policy.url"),
        "containersImages": [{"name": "policy", "image": image}],
        "keywords": ["podAntiAffinity", "failure domain", "scheduling"],
        "links": [{"name": "source", "url": annotation("io.kubewarden.policy.source")}],
        "install": format!("kwctl pull {module_ref}"),
        "readme": annotation("io.kubewarden.policy.usage"),
        "provider": {"name": "apart"},
        "recommendations": [{"url": "https://artifacthub.io/packages/helm/kubewarden/kubewarden-controller"}],
        "annotations": {
            "kubewarden/mutation": metadata.mutating.to_string(),
            "kubewarden/resources": kinds.join(","),
            "kubewarden/contextAwareResources": metadata
                .context_aware_resources
                .iter()
                .map(|r| format!("{}/{}", r.api_version, r.kind))
                .collect::<Vec<_>>()
                .join(","),
        },
    })
}

/// The current UTC time as RFC 3339 (`2026-11-24T14:02:40Z`).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_resources() {
        assert_eq!(resource_of("HelmRelease"), "helmreleases");
        assert_eq!(resource_of("CronJob"), "cronjobs");
        assert_eq!(resource_of("Policy"), "policies");
        assert_eq!(resource_of("Gateway"), "gateways");
        assert_eq!(resource_of("Ingress"), "ingresses");
    }
}
