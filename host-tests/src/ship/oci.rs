//! `apart push` and `apart pull`: a policy module as an OCI artifact, exactly as Kubewarden's
//! tooling (kwctl, through policy-fetcher and oci-client) writes and reads it.
//!
//! The artifact is an OCI image manifest whose config blob is `{}` with media type
//! [`CONFIG_MEDIA_TYPE`], and whose one layer is the module's bytes with media type
//! [`LAYER_MEDIA_TYPE`]. The manifest carries the module metadata's single-line annotations
//! (trimmed; OCI annotation values cannot span lines, so kwctl drops multi-line ones, such as a
//! long `io.kubewarden.policy.usage`) and `org.opencontainers.image.source` copied from
//! `io.kubewarden.policy.source`, which is what Renovate and Artifact Hub read. kwctl writes no
//! `org.opencontainers.image.created`, so neither do we: a push of the same module is
//! reproducible, byte for byte and digest for digest. The one deliberate difference from
//! kwctl: the manifest states its own `mediaType`, as the image spec recommends (kwctl leaves
//! it to the `Content-Type` header); policy-fetcher accepts both.
//!
//! Credentials: `APART_REGISTRY_USERNAME`/`APART_REGISTRY_PASSWORD`, else the Docker config
//! file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths.<host>` with `auth` =
//! base64 `user:password`, or `username`/`password`; credential helpers are not run), else
//! anonymous. They are never printed: [`Credentials`]'s `Debug` redacts the password and no
//! error carries either.
//!
//! Transport: plain HTTP only to a loopback registry (`127.0.0.0/8`, `::1`, `localhost`) or
//! with `--insecure-http`; HTTPS (rustls, the platform's roots) everywhere else.
//!
//! oci-client is async; each command runs it on a current-thread tokio runtime of its own, so
//! nothing async leaves this module. Calling [`push`] or [`pull`] from inside a tokio runtime
//! is not supported.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;

use crate::ship::kubewarden;

/// The manifest's media type (an OCI image manifest).
pub const MANIFEST_MEDIA_TYPE: &str = oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
/// The config blob's media type.
pub const CONFIG_MEDIA_TYPE: &str = oci_client::manifest::WASM_CONFIG_MEDIA_TYPE;
/// The one layer's media type: the module's bytes.
pub const LAYER_MEDIA_TYPE: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
/// The config blob policy-fetcher writes: an empty JSON object.
pub const CONFIG_BLOB: &[u8] = b"{}";

/// The Kubewarden annotation whose value becomes `org.opencontainers.image.source`.
pub const KUBEWARDEN_SOURCE: &str = "io.kubewarden.policy.source";
/// The OCI annotation Renovate and Artifact Hub read for the source repository.
pub const OCI_SOURCE: &str = oci_client::annotations::ORG_OPENCONTAINERS_IMAGE_SOURCE;

/// Environment variable holding the registry user name.
pub const USERNAME_ENV: &str = "APART_REGISTRY_USERNAME";
/// Environment variable holding the registry password (or token).
pub const PASSWORD_ENV: &str = "APART_REGISTRY_PASSWORD";

/// The largest module `pull` accepts, so that a hostile manifest cannot make us allocate
/// without bound (policy modules are a few MiB; Rego bundles a few tens).
pub const MAX_MODULE_BYTES: u64 = 512 * 1024 * 1024;

const WASM_MAGIC: &[u8] = b"\0asm";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
// Per read, not per transfer: a large module on a slow link still completes, a stalled
// registry does not hang the command.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A push or pull that failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference is not `registry://HOST/REPOSITORY[:TAG|@DIGEST]`.
    #[error("{reference}: {reason}; expected registry://HOST/REPOSITORY:TAG")]
    Reference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The credentials in the environment or the Docker config cannot be used.
    #[error("credentials for {host}: {reason}")]
    Credentials {
        /// The registry.
        host: String,
        /// What is wrong (never the secret itself).
        reason: String,
    },
    /// The registry refused the credentials (HTTP 401), or wants some and got none.
    #[error("authentication failed for {host} (check {USERNAME_ENV}/PASSWORD or docker login)")]
    Unauthorized {
        /// The registry.
        host: String,
    },
    /// The credentials are valid but may not do this (HTTP 403).
    #[error("{host} denied access to {reference}: {message}")]
    Denied {
        /// The registry.
        host: String,
        /// The artifact.
        reference: String,
        /// The registry's reason.
        message: String,
    },
    /// No connection to the registry (refused, unresolvable, TLS, timeout).
    #[error("cannot reach {host}: {reason}")]
    Unreachable {
        /// The registry.
        host: String,
        /// The transport's reason.
        reason: String,
    },
    /// The tag, digest or repository does not exist.
    #[error("{reference} not found ({message})")]
    NotFound {
        /// The artifact.
        reference: String,
        /// The registry's reason.
        message: String,
    },
    /// The artifact is not a Kubewarden policy: a media type is not the one kwctl writes.
    #[error(
        "{reference} is not a Kubewarden policy: the {part} has media type {found}, expected {expected}"
    )]
    MediaType {
        /// The artifact.
        reference: String,
        /// `manifest`, `config` or `layer`.
        part: &'static str,
        /// The media type found (`<none>` when absent).
        found: String,
        /// The media type kwctl writes.
        expected: &'static str,
    },
    /// The artifact is not a Kubewarden policy for another reason (layer count, size, bytes).
    #[error("{reference} is not a Kubewarden policy: {reason}")]
    NotAPolicy {
        /// The artifact.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Content whose digest is not the one it was addressed by.
    #[error("{reference}: the {part}'s digest is {actual}, expected {expected}")]
    Digest {
        /// The artifact.
        reference: String,
        /// `manifest` or `layer`.
        part: &'static str,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// The module to push is not WebAssembly.
    #[error("not a WebAssembly module (it does not start with \\0asm)")]
    NotWasm,
    /// Any other refusal by the registry.
    #[error("{host}: {step} failed: {message}")]
    Registry {
        /// The registry.
        host: String,
        /// What apart was doing.
        step: &'static str,
        /// The registry's or the client's reason.
        message: String,
    },
    /// A local file that cannot be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A registry reference given as `registry://HOST/REPOSITORY[:TAG|@DIGEST]`.
#[derive(Clone, Debug)]
pub struct Target {
    reference: Reference,
}

impl Target {
    /// Parses `registry://HOST/REPOSITORY:TAG` (or `@sha256:...`). As with kwctl, a reference
    /// without a host means Docker Hub and one without a tag means `latest`.
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let rest = text
            .strip_prefix("registry://")
            .ok_or_else(|| OciError::Reference {
                reference: text.to_owned(),
                reason: "it does not start with registry://".to_owned(),
            })?;
        let reference: Reference = rest.parse().map_err(|e| OciError::Reference {
            reference: text.to_owned(),
            reason: format!("{e}"),
        })?;
        Ok(Target { reference })
    }

    /// The registry, as written (`HOST[:PORT]`).
    pub fn host(&self) -> &str {
        self.reference.registry()
    }

    /// The repository inside the registry.
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The tag, when the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The digest, when the reference names one.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// Whether apart talks plain HTTP to this registry.
    pub fn uses_plain_http(&self, insecure_http: bool) -> bool {
        insecure_http || is_loopback_host(self.host())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registry://{}", self.reference.whole())
    }
}

/// Whether `host` (`NAME`, `NAME:PORT`, `IP`, `IP:PORT` or `[IPv6]:PORT`) is this machine:
/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else if host.matches(':').count() == 1 {
        host.split_once(':').map_or(host, |(name, _)| name)
    } else {
        host
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A user name and password for a registry. `Debug` shows the user name only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The credentials for `host` from the environment: `APART_REGISTRY_USERNAME` and
    /// `APART_REGISTRY_PASSWORD` (both or neither), else the Docker config file. `None` means
    /// anonymous access.
    pub fn from_environment(host: &str) -> Result<Option<Self>, OciError> {
        let username = std::env::var(USERNAME_ENV).ok();
        let password = std::env::var(PASSWORD_ENV).ok();
        match (username, password) {
            (Some(username), Some(password)) => {
                return Ok(Some(Credentials::new(username, password)));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(OciError::Credentials {
                    host: host.to_owned(),
                    reason: format!("set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither"),
                });
            }
            (None, None) => {}
        }
        let Some(path) = docker_config_path() else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(OciError::Credentials {
                    host: host.to_owned(),
                    reason: format!("cannot read {}: {e}", path.display()),
                });
            }
        };
        Credentials::from_docker_config(&text, host).map_err(|reason| OciError::Credentials {
            host: host.to_owned(),
            reason: format!("{}: {reason}", path.display()),
        })
    }

    /// The credentials for `host` in a Docker config file's text (`auths.<host>`; the key may
    /// carry a scheme and path, as `https://index.docker.io/v1/` does). The error never
    /// quotes the file, which holds secrets.
    pub fn from_docker_config(text: &str, host: &str) -> Result<Option<Self>, String> {
        #[derive(serde::Deserialize)]
        struct DockerConfig {
            #[serde(default)]
            auths: BTreeMap<String, DockerAuth>,
        }
        #[derive(serde::Deserialize)]
        struct DockerAuth {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
        }
        // serde_json's messages can quote the offending value: report the position only.
        let config: DockerConfig = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a Docker config file (invalid at line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let entry = config
            .auths
            .iter()
            .find(|(key, _)| key.as_str() == host)
            .or_else(|| {
                config
                    .auths
                    .iter()
                    .find(|(key, _)| same_registry(auth_key_host(key), host))
            });
        let Some((key, entry)) = entry else {
            return Ok(None);
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || format!("auths.\"{key}\".auth is not base64 of user:password");
            let decoded = decode_base64(auth).ok_or_else(bad)?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::new(username, password)));
        }
        match (&entry.username, &entry.password) {
            (Some(username), Some(password)) => Ok(Some(Credentials::new(username, password))),
            _ => Ok(None),
        }
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// `https://index.docker.io/v1/` -> `index.docker.io`.
fn auth_key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn same_registry(a: &str, b: &str) -> bool {
    const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    a.eq_ignore_ascii_case(b)
        || (DOCKER_HUB.iter().any(|h| a.eq_ignore_ascii_case(h))
            && DOCKER_HUB.iter().any(|h| b.eq_ignore_ascii_case(h)))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    // docker login pads; hand-written config files sometimes do not.
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine.decode(text.trim()).ok()
}

/// How to talk to the registry.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Credentials; `None` for anonymous access.
    pub credentials: Option<Credentials>,
    /// Plain HTTP even to a registry that is not on this machine.
    pub insecure_http: bool,
}

/// A module packaged as the artifact kwctl pushes, ready to upload.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The manifest, as parsed.
    pub manifest: OciImageManifest,
    /// The manifest's bytes: canonical JSON, as oci-client serialises it for kwctl.
    pub manifest_bytes: Vec<u8>,
    /// `sha256:` of [`Artifact::manifest_bytes`]: what the tag will point at.
    pub digest: String,
}

/// The manifest annotations kwctl derives from a module's metadata annotations: multi-line
/// values are dropped (the OCI annotation rules do not allow them), the others trimmed, and
/// `org.opencontainers.image.source` set from `io.kubewarden.policy.source` unless the
/// metadata already sets it.
pub fn oci_annotations(metadata: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = metadata
        .into_iter()
        .filter(|(_, value)| value.lines().count() <= 1)
        .map(|(key, value)| (key, value.trim().to_owned()))
        .collect();
    if let Some(source) = out.get(KUBEWARDEN_SOURCE).cloned() {
        out.entry(OCI_SOURCE.to_owned()).or_insert(source);
    }
    out
}

/// Packages `module` as kwctl does: config `{}`, one layer holding the module, the
/// annotations of [`oci_annotations`] (none when the module carries no metadata).
pub fn artifact(module: &[u8]) -> Artifact {
    let annotations = oci_annotations(kubewarden::metadata_annotations(module));
    let layers = [ImageLayer::new(
        module.to_vec(),
        LAYER_MEDIA_TYPE.to_owned(),
        None,
    )];
    let config = Config::new(CONFIG_BLOB, CONFIG_MEDIA_TYPE.to_owned(), None);
    let mut manifest = OciImageManifest::build(
        &layers,
        &config,
        (!annotations.is_empty()).then_some(annotations),
    );
    manifest.media_type = Some(MANIFEST_MEDIA_TYPE.to_owned());
    let manifest_bytes = canonical_json(&manifest);
    let digest = sha256_digest(&manifest_bytes);
    Artifact {
        manifest,
        manifest_bytes,
        digest,
    }
}

/// Canonical JSON (sorted keys, no whitespace), the serialisation oci-client gives the
/// manifest it uploads, so our digest is the registry's.
fn canonical_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    // A manifest is strings, integers, arrays and maps: the canonical formatter refuses only
    // floats, so this cannot fail; an empty result would be refused by the registry anyway.
    let _ = value.serialize(&mut ser);
    out
}

/// What a push left in the registry.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The manifest digest the tag now points at (`sha256:...`).
    pub digest: String,
    /// The immutable reference: `HOST/REPOSITORY@sha256:...`.
    pub immutable: String,
    /// The manifest that was pushed.
    pub artifact: Artifact,
}

/// What a pull fetched and verified.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The module's bytes (the layer, digest-checked).
    pub module: Vec<u8>,
    /// The manifest's digest (`sha256:...`).
    pub digest: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Pushes `module` to `target` as kwctl does. The blobs go first and the manifest last:
/// the manifest PUT is what creates or moves the tag, so a push that fails anywhere before it
/// leaves the tag where it was, never pointing at an artifact whose blobs are missing.
pub fn push(module: &[u8], target: &Target, options: &Options) -> Result<Pushed, OciError> {
    if !module.starts_with(WASM_MAGIC) {
        return Err(OciError::NotWasm);
    }
    let packaged = artifact(module);
    let host = target.host().to_owned();
    let reference = &target.reference;
    let manifest_url = block_on(&host, async {
        let client = client(target, options)?;
        client
            .store_auth_if_needed(reference.resolve_registry(), &registry_auth(options))
            .await;
        let fail = |step: &'static str| move |e: OciDistributionError| classify(e, target, step);
        for layer in &packaged.manifest.layers {
            client
                .push_blob(reference, module.to_vec(), &layer.digest)
                .await
                .map_err(fail("uploading the module"))?;
        }
        client
            .push_blob(reference, CONFIG_BLOB, &packaged.manifest.config.digest)
            .await
            .map_err(fail("uploading the config"))?;
        // Last: this creates the tag.
        client
            .push_manifest(reference, &OciManifest::Image(packaged.manifest.clone()))
            .await
            .map_err(fail("pushing the manifest"))
    })?;
    // The registry answers with the manifest's location, by digest: it must be ours, or the
    // digest we print would not be what the tag points at.
    if let Some(stored) = manifest_url
        .rsplit('/')
        .next()
        .filter(|d| d.starts_with("sha256:"))
        && stored != packaged.digest
    {
        return Err(OciError::Digest {
            reference: target.to_string(),
            part: "manifest",
            expected: packaged.digest.clone(),
            actual: stored.to_owned(),
        });
    }
    Ok(Pushed {
        digest: packaged.digest.clone(),
        immutable: format!(
            "{}/{}@{}",
            target.host(),
            target.repository(),
            packaged.digest
        ),
        artifact: packaged,
    })
}

/// Pulls the module at `source`: checks that the manifest is a Kubewarden policy (media types,
/// one layer), that it has the digest the reference names (if any), and that the layer has
/// the digest and size the manifest names.
pub fn pull(source: &Target, options: &Options) -> Result<Pulled, OciError> {
    let host = source.host().to_owned();
    let reference = &source.reference;
    let name = source.to_string();
    block_on(&host, async {
        let client = client(source, options)?;
        let auth = registry_auth(options);
        // Accept the other manifest kinds too, so that a wrong artifact gets a clear media
        // type error rather than the registry's 404 for an unacceptable type.
        let accepted = [
            MANIFEST_MEDIA_TYPE,
            oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
            oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
            oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        ];
        let (body, _) = client
            .pull_manifest_raw(reference, &auth, &accepted)
            .await
            .map_err(|e| classify(e, source, "fetching the manifest"))?;
        let digest = sha256_digest(&body);
        if let Some(expected) = reference.digest() {
            verify_digest(expected, &body).map_err(|actual| OciError::Digest {
                reference: name.clone(),
                part: "manifest",
                expected: expected.to_owned(),
                actual,
            })?;
        }
        let manifest = policy_manifest(&body, &name)?;
        let layer = manifest
            .layers
            .first()
            .ok_or_else(|| OciError::NotAPolicy {
                reference: name.clone(),
                reason: "the manifest has no layer".to_owned(),
            })?;
        let size = u64::try_from(layer.size).map_err(|_| OciError::NotAPolicy {
            reference: name.clone(),
            reason: format!("the layer's size {} is negative", layer.size),
        })?;
        if size > MAX_MODULE_BYTES {
            return Err(OciError::NotAPolicy {
                reference: name.clone(),
                reason: format!(
                    "the layer is {size} bytes, over the {MAX_MODULE_BYTES} apart accepts"
                ),
            });
        }
        let mut out = Bounded::new(size);
        client
            .pull_blob(reference, layer, &mut out)
            .await
            .map_err(|e| classify(e, source, "fetching the module layer"))?;
        let module = out.buf;
        // oci-client checks the layer digest as it streams; check again here, with the size,
        // so that what we write is verified by this code and not only by a dependency.
        verify_digest(&layer.digest, &module).map_err(|actual| OciError::Digest {
            reference: name.clone(),
            part: "layer",
            expected: layer.digest.clone(),
            actual,
        })?;
        if module.len() as u64 != size {
            return Err(OciError::NotAPolicy {
                reference: name.clone(),
                reason: format!(
                    "the layer is {} bytes, the manifest says {size}",
                    module.len()
                ),
            });
        }
        if !module.starts_with(WASM_MAGIC) {
            return Err(OciError::NotAPolicy {
                reference: name.clone(),
                reason: "the layer is not a WebAssembly module".to_owned(),
            });
        }
        Ok(Pulled {
            module,
            digest,
            annotations: manifest.annotations.unwrap_or_default(),
        })
    })
}

/// Checks a fetched manifest against what kwctl writes.
fn policy_manifest(body: &[u8], name: &str) -> Result<OciImageManifest, OciError> {
    let not_a_policy = |reason: String| OciError::NotAPolicy {
        reference: name.to_owned(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| not_a_policy(format!("the manifest is not JSON: {e}")))?;
    if value
        .get("schemaVersion")
        .and_then(serde_json::Value::as_u64)
        != Some(2)
    {
        return Err(not_a_policy(
            "the manifest's schemaVersion is not 2".to_owned(),
        ));
    }
    // kwctl's manifests state no mediaType (the registry knows it from the upload's
    // Content-Type, and we asked for OCI manifests first); when there is one, it must be ours.
    match value.get("mediaType") {
        None => {}
        Some(serde_json::Value::String(m)) if m == MANIFEST_MEDIA_TYPE => {}
        Some(other) => {
            return Err(OciError::MediaType {
                reference: name.to_owned(),
                part: "manifest",
                found: other.as_str().unwrap_or("<not a string>").to_owned(),
                expected: MANIFEST_MEDIA_TYPE,
            });
        }
    }
    if value.get("manifests").is_some() {
        return Err(OciError::MediaType {
            reference: name.to_owned(),
            part: "manifest",
            found: oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned(),
            expected: MANIFEST_MEDIA_TYPE,
        });
    }
    let manifest: OciImageManifest = serde_json::from_value(value)
        .map_err(|e| not_a_policy(format!("the manifest is not an OCI image manifest: {e}")))?;
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(OciError::MediaType {
            reference: name.to_owned(),
            part: "config",
            found: manifest.config.media_type.clone(),
            expected: CONFIG_MEDIA_TYPE,
        });
    }
    let [layer] = manifest.layers.as_slice() else {
        return Err(not_a_policy(format!(
            "the manifest has {} layers, a policy has exactly one",
            manifest.layers.len()
        )));
    };
    if layer.media_type != LAYER_MEDIA_TYPE {
        return Err(OciError::MediaType {
            reference: name.to_owned(),
            part: "layer",
            found: layer.media_type.clone(),
            expected: LAYER_MEDIA_TYPE,
        });
    }
    Ok(manifest)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then
/// renamed over `path`, so a failed or interrupted pull never leaves a truncated module.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let io = |path: &Path, e: std::io::Error| OciError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file_name = path.file_name().ok_or_else(|| OciError::Io {
        path: path.to_owned(),
        message: "not a file name".to_owned(),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.apart-pull-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        // A leftover from an earlier run of the same process id: ours to replace.
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temp);
        return Err(io(&temp, e));
    }
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io(path, e)
    })
}

fn client(target: &Target, options: &Options) -> Result<Client, OciError> {
    // oci-client's reqwest is built without a bundled crypto provider (no aws-lc build):
    // install ring process-wide. A second install is refused, harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = if target.uses_plain_http(options.insecure_http) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let config = ClientConfig {
        protocol,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| OciError::Registry {
        host: target.host().to_owned(),
        step: "setting up the HTTP client",
        message: e.to_string(),
    })
}

fn registry_auth(options: &Options) -> RegistryAuth {
    match &options.credentials {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// Runs one command's future on a current-thread runtime made for it.
fn block_on<T>(
    host: &str,
    future: impl Future<Output = Result<T, OciError>>,
) -> Result<T, OciError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OciError::Registry {
            host: host.to_owned(),
            step: "starting the async runtime",
            message: e.to_string(),
        })?;
    runtime.block_on(future)
}

/// Maps oci-client's errors to the ones a user can act on.
fn classify(error: OciDistributionError, target: &Target, step: &'static str) -> OciError {
    let host = target.host().to_owned();
    let reference = target.to_string();
    let by_status = |code: u16, message: String| match code {
        401 => OciError::Unauthorized { host: host.clone() },
        403 => OciError::Denied {
            host: host.clone(),
            reference: reference.clone(),
            message: message.clone(),
        },
        404 => OciError::NotFound {
            reference: reference.clone(),
            message: message.clone(),
        },
        _ => OciError::Registry {
            host: host.clone(),
            step,
            message: format!("HTTP {code}: {message}"),
        },
    };
    match error {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => OciError::Unauthorized { host },
        OciDistributionError::ImageManifestNotFoundError(message) => {
            OciError::NotFound { reference, message }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let message = envelope
                .errors
                .iter()
                .map(|e| {
                    if e.message.is_empty() {
                        format!("{:?}", e.code)
                    } else {
                        e.message.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            let code = match envelope.errors.first().map(|e| &e.code) {
                Some(OciErrorCode::Unauthorized) => 401,
                Some(OciErrorCode::Denied) => 403,
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown,
                ) => 404,
                _ => 400,
            };
            by_status(code, message)
        }
        OciDistributionError::ServerError { code, message, .. } => {
            by_status(code, first_line(&message))
        }
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            let mut reason = error_chain(&e);
            // rustls's word for a server that answered the handshake in plain HTTP.
            if reason.contains("InvalidContentType") {
                reason.push_str(" (the registry speaks plain HTTP: pass --insecure-http)");
            }
            OciError::Unreachable { host, reason }
        }
        OciDistributionError::RequestError(e) => OciError::Registry {
            host,
            step,
            message: error_chain(&e),
        },
        other => OciError::Registry {
            host,
            step,
            message: other.to_string(),
        },
    }
}

/// A registry's error body, shortened to its first line.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if out.is_empty() {
        out.push_str("no message");
    }
    out
}

/// `error: cause: cause`, the chain reqwest hides behind "error sending request".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

/// Checks `bytes` against `expected` (`sha256:` or `sha512:`); the error is the actual digest.
fn verify_digest(expected: &str, bytes: &[u8]) -> Result<(), String> {
    use sha2::Digest as _;
    let actual = match expected.split_once(':') {
        Some(("sha512", _)) => format!("sha512:{}", hex(&sha2::Sha512::digest(bytes))),
        Some(("sha256", _)) => sha256_digest(bytes),
        _ => return Err(format!("an unsupported digest ({expected})")),
    };
    if actual == expected {
        Ok(())
    } else {
        Err(actual)
    }
}

/// A buffer that refuses to grow past the layer's declared size: a registry that sends more
/// than the manifest says is cut off, not buffered.
struct Bounded {
    buf: Vec<u8>,
    limit: u64,
}

impl Bounded {
    fn new(limit: u64) -> Self {
        // The limit is at most MAX_MODULE_BYTES, which fits in memory by construction.
        let capacity = usize::try_from(limit).unwrap_or(0);
        Bounded {
            buf: Vec::with_capacity(capacity),
            limit,
        }
    }
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if (this.buf.len() + data.len()) as u64 > this.limit {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest declares",
                this.limit
            ))));
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn annotations_follow_kwctl_multi_line_dropped_source_copied() {
        let out = oci_annotations(map(&[
            (KUBEWARDEN_SOURCE, "https://github.com/apart-dev/apart"),
            ("io.kubewarden.policy.usage", "line one\nline two"),
            ("io.kubewarden.policy.description", "ends with a newline\n"),
            ("io.kubewarden.policy.title", "  apart  "),
        ]));
        assert_eq!(
            out,
            map(&[
                (KUBEWARDEN_SOURCE, "https://github.com/apart-dev/apart"),
                (OCI_SOURCE, "https://github.com/apart-dev/apart"),
                ("io.kubewarden.policy.description", "ends with a newline"),
                ("io.kubewarden.policy.title", "apart"),
            ])
        );
    }

    #[test]
    fn annotations_keep_an_explicit_oci_source() {
        let out = oci_annotations(map(&[
            (KUBEWARDEN_SOURCE, "https://example.com/a"),
            (OCI_SOURCE, "https://example.com/b"),
        ]));
        assert_eq!(
            out.get(OCI_SOURCE).map(String::as_str),
            Some("https://example.com/b")
        );
        assert!(oci_annotations(BTreeMap::new()).is_empty());
    }

    #[test]
    fn artifact_is_the_kwctl_layout_in_canonical_json() {
        let module = b"\0asm\x01\0\0\0";
        let a = artifact(module);
        let text = String::from_utf8(a.manifest_bytes.clone()).expect("utf-8");
        let layer_digest = sha256_digest(module);
        let config_digest = sha256_digest(b"{}");
        // The annotations depend on the metadata reader; the rest is fixed.
        let annotations = oci_annotations(kubewarden::metadata_annotations(module));
        let annotations = if annotations.is_empty() {
            String::new()
        } else {
            format!(
                "\"annotations\":{},",
                String::from_utf8(canonical_json(&annotations)).expect("utf-8")
            )
        };
        assert_eq!(
            text,
            format!(
                "{{{annotations}\"config\":{{\"digest\":\"{config_digest}\",\"mediaType\":\"application/vnd.wasm.config.v1+json\",\"size\":2}},\
                 \"layers\":[{{\"digest\":\"{layer_digest}\",\"mediaType\":\"application/vnd.wasm.content.layer.v1+wasm\",\"size\":8}}],\
                 \"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"schemaVersion\":2}}"
            )
        );
        assert_eq!(a.digest, sha256_digest(text.as_bytes()));
        assert_eq!(
            config_digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn targets_need_the_registry_scheme() {
        let t = Target::parse("registry://127.0.0.1:5000/apart/policy:v1").expect("valid");
        assert_eq!(t.host(), "127.0.0.1:5000");
        assert_eq!(t.repository(), "apart/policy");
        assert_eq!(t.tag(), Some("v1"));
        assert_eq!(t.to_string(), "registry://127.0.0.1:5000/apart/policy:v1");
        let e = Target::parse("127.0.0.1:5000/apart:v1").expect_err("no scheme");
        assert!(
            e.to_string().contains("does not start with registry://"),
            "{e}"
        );
        let e = Target::parse("registry://Host/UPPER:v1").expect_err("uppercase repository");
        assert!(
            e.to_string().starts_with("registry://Host/UPPER:v1: "),
            "{e}"
        );
    }

    #[test]
    fn plain_http_only_for_loopback_or_when_asked() {
        for host in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "LOCALHOST",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "192.168.1.1",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let remote = Target::parse("registry://ghcr.io/apart-dev/apart:v1").expect("valid");
        assert!(!remote.uses_plain_http(false));
        assert!(remote.uses_plain_http(true));
    }

    #[test]
    fn docker_config_auth_and_username_password() {
        // "apart:pa:ss" — a password may contain colons.
        let config = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
            "127.0.0.1:5000": {"auth": "YXBhcnQ6cGE6c3M="},
            "ghcr.io": {"username": "u", "password": "p"},
            "quay.io": {"identitytoken": "t"}
        }}"#;
        let get = |host| Credentials::from_docker_config(config, host).expect("valid");
        assert_eq!(
            get("127.0.0.1:5000"),
            Some(Credentials::new("apart", "pa:ss"))
        );
        assert_eq!(get("docker.io"), Some(Credentials::new("hub", "hubpw")));
        assert_eq!(get("ghcr.io"), Some(Credentials::new("u", "p")));
        assert_eq!(get("quay.io"), None);
        assert_eq!(get("example.com"), None);
        // Unpadded base64, as some hand-written files have it.
        let unpadded = r#"{"auths": {"h": {"auth": "YXBhcnQ6cGE6c3M"}}}"#;
        assert_eq!(
            Credentials::from_docker_config(unpadded, "h").expect("valid"),
            Some(Credentials::new("apart", "pa:ss"))
        );
    }

    #[test]
    fn docker_config_errors_never_quote_the_secret() {
        let bad_json = r#"{"auths": {"h": "hunter2"}}"#;
        let e = Credentials::from_docker_config(bad_json, "h").expect_err("invalid");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let bad_auth = r#"{"auths": {"h": {"auth": "hunter2!"}}}"#;
        let e = Credentials::from_docker_config(bad_auth, "h").expect_err("invalid");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("auths.\"h\".auth"), "{e}");
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let options = Options {
            credentials: Some(Credentials::new("apart", "hunter2")),
            insecure_http: false,
        };
        let text = format!("{options:?}");
        assert!(
            text.contains("apart") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn pull_refuses_what_kwctl_would_not_have_written() {
        let digest = sha256_digest(b"x");
        let manifest = |config: &str, layers: &str| {
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"{config}","digest":"{digest}","size":2}},"layers":[{layers}]}}"#
            )
        };
        let layer =
            |media: &str| format!(r#"{{"mediaType":"{media}","digest":"{digest}","size":1}}"#);
        let wasm_layer = layer(LAYER_MEDIA_TYPE);
        // kwctl's own manifests have no top-level mediaType: accepted.
        let ok = manifest(CONFIG_MEDIA_TYPE, &wasm_layer);
        assert!(policy_manifest(ok.as_bytes(), "r").is_ok());
        let e = policy_manifest(
            manifest(
                CONFIG_MEDIA_TYPE,
                &layer("application/vnd.oci.image.layer.v1.tar"),
            )
            .as_bytes(),
            "r",
        )
        .expect_err("tar layer");
        assert!(
            matches!(e, OciError::MediaType { part: "layer", .. }),
            "{e}"
        );
        let e = policy_manifest(
            manifest("application/vnd.oci.image.config.v1+json", &wasm_layer).as_bytes(),
            "r",
        )
        .expect_err("image config");
        assert!(
            matches!(e, OciError::MediaType { part: "config", .. }),
            "{e}"
        );
        let two = format!("{wasm_layer},{wasm_layer}");
        let e = policy_manifest(manifest(CONFIG_MEDIA_TYPE, &two).as_bytes(), "r")
            .expect_err("two layers");
        assert!(e.to_string().contains("2 layers"), "{e}");
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let e = policy_manifest(index.as_bytes(), "r").expect_err("index");
        assert!(
            matches!(
                e,
                OciError::MediaType {
                    part: "manifest",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn digests_are_verified_for_both_algorithms() {
        assert!(verify_digest(&sha256_digest(b"abc"), b"abc").is_ok());
        assert_eq!(
            verify_digest(&sha256_digest(b"abc"), b"abd"),
            Err(sha256_digest(b"abd"))
        );
        use sha2::Digest as _;
        let sha512 = format!("sha512:{}", hex(&sha2::Sha512::digest(b"abc")));
        assert!(verify_digest(&sha512, b"abc").is_ok());
        assert!(verify_digest("md5:00", b"abc").is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../target/oci-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("module.wasm");
        write_atomically(&path, b"first").expect("write");
        write_atomically(&path, b"second").expect("overwrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let e = write_atomically(&dir.join("missing/module.wasm"), b"x").expect_err("no folder");
        assert!(matches!(e, OciError::Io { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
