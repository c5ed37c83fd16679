//! `apart push` and `apart pull` against a real registry: Debian's `docker-registry` (the CNCF
//! distribution registry), started by each test on a free loopback port with its own storage
//! and config, and killed when the test ends. The manifest is checked over raw HTTP, not
//! through the client under test. `cargo xtask setup` installs the registry.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apart_host::ship::kubewarden;
use apart_host::ship::oci::{self, Credentials, OciError, Options, Target};
use serde_json::Value;
use support::{built_module, built_module_path, root};

const IO_TIMEOUT: Duration = Duration::from_secs(20);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

const USER: &str = "apart-ci";
const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "Tr0ub4dor&3";

/// A fresh folder under `target/oci-tests`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = root()
            .join("target/oci-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn registry_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("docker-registry"))
        .chain([PathBuf::from("/usr/bin/docker-registry")])
        .find(|p| p.is_file());
    match found {
        Some(path) => path,
        None => panic!(
            "the OCI tests need Debian's docker-registry (the CNCF distribution registry), \
             which is not installed: run `cargo xtask setup`"
        ),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local addr").port()
}

/// A `docker-registry serve` child on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    // Removed after the child is killed (fields drop after `Drop::drop`).
    _dir: Option<TempDir>,
}

impl Registry {
    fn start(name: &str, auth: bool) -> Registry {
        let binary = registry_binary();
        let dir = TempDir::new(name);
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:PORT\n  secret: apart-oci-tests\n",
            dir.path().join("storage").display()
        );
        if auth {
            // bcrypt, as htpasswd -B writes it; distribution accepts no other scheme.
            let hash = bcrypt::hash_with_result(PASSWORD, 4)
                .expect("bcrypt")
                .format_for_version(bcrypt::Version::TwoY);
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{USER}:{hash}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: apart-oci-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        // The free port can be taken between our probe and the registry's bind: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config.replace("PORT", &port.to_string()))
                .expect("config");
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).expect("log");
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut registry = Registry {
                child,
                port,
                _dir: None,
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Ok(Some(_)) = registry.child.try_wait() {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    break;
                }
                if let Some(r) = try_http(port, "GET", "/v2/", &[], b"")
                    && (r.status == 200 || r.status == 401)
                {
                    registry._dir = Some(dir);
                    return registry;
                }
                if Instant::now() > deadline {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "the registry did not answer GET /v2/ within {START_TIMEOUT:?}:\n{last_log}"
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the registry would not start:\n{last_log}");
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn target(&self, repository_and_tag: &str) -> Target {
        Target::parse(&format!("registry://{}/{repository_and_tag}", self.host())).expect("target")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`); `None` when nothing
/// listens.
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_response(&raw, method == "HEAD")
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_http(port, method, path, headers, body)
        .unwrap_or_else(|| panic!("{method} {path} on 127.0.0.1:{port}: no HTTP answer"))
}

fn parse_response(raw: &[u8], head_only: bool) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if head_only {
        Vec::new()
    } else if chunked {
        let mut out = Vec::new();
        let mut reader = BufReader::new(rest);
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).ok()?;
            out.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
        out
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic_auth() -> String {
    format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()))
}

const ACCEPT_OCI: (&str, &str) = ("Accept", oci::MANIFEST_MEDIA_TYPE);

/// Uploads a blob over raw HTTP (POST, then PUT with the digest); returns its digest.
fn upload_blob(port: u16, repository: &str, bytes: &[u8]) -> String {
    let digest = oci::sha256_digest(bytes);
    let started = http(
        port,
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let location = started.header("Location").expect("upload location");
    let path = location
        .find("/v2/")
        .map_or(location, |i| &location[i..])
        .to_owned();
    let sep = if path.contains('?') { '&' } else { '?' };
    let done = http(
        port,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(done.status, 201, "{}", String::from_utf8_lossy(&done.body));
    digest
}

fn put_manifest(port: u16, repository: &str, tag: &str, manifest: &str) {
    let put = http(
        port,
        "PUT",
        &format!("/v2/{repository}/manifests/{tag}"),
        &[("Content-Type", oci::MANIFEST_MEDIA_TYPE)],
        manifest.as_bytes(),
    );
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut content = leb128(name.len());
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = vec![0];
    out.extend(leb128(content.len()));
    out.extend(content);
    out
}

const SOURCE: &str = "https://github.com/apart-dev/apart";

/// A valid (empty) module annotated as `kwctl annotate` does, with `padding` more bytes in a
/// second custom section (over 4 MiB makes oci-client upload in several chunks).
fn annotated_module(padding: usize) -> Vec<u8> {
    let metadata = serde_json::json!({
        "protocolVersion": "v1",
        "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
                   "operations": ["CREATE", "UPDATE"]}],
        "annotations": {
            "io.kubewarden.policy.title": "apart",
            "io.kubewarden.policy.source": SOURCE,
            "io.kubewarden.policy.usage": "# apart\n\nKeeps subsystems apart.\n",
        },
        "mutating": true,
        "backgroundAudit": true,
        "executionMode": "kubewarden-wapc",
        "policyType": "kubernetes",
    });
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend(custom_section(
        kubewarden::METADATA_SECTION,
        metadata.to_string().as_bytes(),
    ));
    // Deterministic, incompressible-looking filler (xorshift).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let filler: Vec<u8> = (0..padding)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    module.extend(custom_section("apart-test-padding", &filler));
    module
}

/// Runs the built `apart` with a clean credential environment plus `env`; bounded in time.
fn apart(args: &[&str], env: &[(&str, &str)], docker_config: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_apart"));
    cmd.current_dir(root())
        .args(args)
        .env_remove(oci::USERNAME_ENV)
        .env_remove(oci::PASSWORD_ENV)
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("apart runs");
    let deadline = Instant::now() + CLI_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("apart {args:?} did not finish within {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("apart output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn manifest_over_http(registry: &Registry, path: &str, auth: Option<&str>) -> Response {
    let mut headers = vec![ACCEPT_OCI];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    http(registry.port, "GET", path, &headers, b"")
}

#[test]
fn push_writes_the_kwctl_artifact_and_pull_returns_the_same_bytes() {
    let registry = Registry::start("roundtrip", false);
    let module = annotated_module(5 * 1024 * 1024);
    let target = registry.target("apart/policy:v1");
    let pushed = oci::push(&module, &target, &Options::default()).expect("push");

    // The manifest as the registry serves it, read without the client under test.
    let got = manifest_over_http(&registry, "/v2/apart/policy/manifests/v1", None);
    assert_eq!(got.status, 200, "{}", text(&got.body));
    assert_eq!(got.header("Content-Type"), Some(oci::MANIFEST_MEDIA_TYPE));
    assert_eq!(
        got.header("Docker-Content-Digest"),
        Some(pushed.digest.as_str())
    );
    assert_eq!(oci::sha256_digest(&got.body), pushed.digest);
    assert_eq!(got.body, pushed.artifact.manifest_bytes);
    let manifest: Value = serde_json::from_slice(&got.body).expect("JSON");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], oci::MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], oci::CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["config"]["size"], 2);
    assert_eq!(manifest["config"]["digest"], oci::sha256_digest(b"{}"));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], oci::LAYER_MEDIA_TYPE);
    assert_eq!(layers[0]["digest"], oci::sha256_digest(&module));
    assert_eq!(layers[0]["size"], module.len());
    assert!(layers[0].get("annotations").is_none());
    // kwctl's annotation rule applied to what the metadata reader gives.
    let expected = oci::oci_annotations(kubewarden::metadata_annotations(&module));
    let annotations: std::collections::BTreeMap<String, String> =
        serde_json::from_value(manifest["annotations"].clone()).unwrap_or_default();
    assert_eq!(annotations, expected);
    let config = http(
        registry.port,
        "GET",
        &format!("/v2/apart/policy/blobs/{}", oci::sha256_digest(b"{}")),
        &[],
        b"",
    );
    assert_eq!(
        (config.status, config.body.as_slice()),
        (200, b"{}".as_slice())
    );

    let pulled = oci::pull(&target, &Options::default()).expect("pull");
    assert!(
        pulled.module == module,
        "the pulled module differs from the pushed one"
    );
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(pulled.annotations, expected);

    let by_digest = registry.target(&format!("apart/policy@{}", pushed.digest));
    let pinned = oci::pull(&by_digest, &Options::default()).expect("pull by digest");
    assert!(pinned.module == module);

    // Pushing the same module again is reproducible: same manifest, same digest.
    let again = oci::push(
        &module,
        &registry.target("apart/policy:v2"),
        &Options::default(),
    )
    .expect("push again");
    assert_eq!(again.digest, pushed.digest);
}

#[test]
fn metadata_annotations_reach_the_manifest_single_line_only() {
    let registry = Registry::start("annotations", false);
    let module = annotated_module(0);
    oci::push(
        &module,
        &registry.target("apart/annotated:v1"),
        &Options::default(),
    )
    .expect("push");
    let got = manifest_over_http(&registry, "/v2/apart/annotated/manifests/v1", None);
    let manifest: Value = serde_json::from_slice(&got.body).expect("JSON");
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["io.kubewarden.policy.title"], "apart");
    assert_eq!(annotations["io.kubewarden.policy.source"], SOURCE);
    assert_eq!(annotations["org.opencontainers.image.source"], SOURCE);
    assert!(
        annotations.get("io.kubewarden.policy.usage").is_none(),
        "a multi-line annotation reached the manifest: {annotations}"
    );
    assert!(
        annotations
            .get("org.opencontainers.image.created")
            .is_none()
    );
}

#[test]
fn cli_push_and_pull_round_trip_the_built_module() {
    let registry = Registry::start("cli", false);
    let module_path = built_module_path();
    let module = built_module();
    let work = TempDir::new("cli-work");
    let reference = format!("registry://{}/apart/cli:v1", registry.host());
    let module_arg = module_path.to_string_lossy().into_owned();

    let push = apart(&["push", &module_arg, &reference], &[], work.path());
    assert_eq!(push.status.code(), Some(0), "{}", text(&push.stderr));
    let digest = text(&push.stdout).trim().to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let got = manifest_over_http(&registry, "/v2/apart/cli/manifests/v1", None);
    assert_eq!(got.header("Docker-Content-Digest"), Some(digest.as_str()));

    let out = work.path().join("pulled.wasm");
    let out_arg = out.to_string_lossy().into_owned();
    let pull = apart(&["pull", &reference, "-o", &out_arg], &[], work.path());
    assert_eq!(pull.status.code(), Some(0), "{}", text(&pull.stderr));
    assert_eq!(text(&pull.stdout).trim(), digest);
    assert!(std::fs::read(&out).expect("pulled file") == module);
    let leftovers: Vec<String> = std::fs::read_dir(work.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn auth_registry_takes_the_right_password_and_names_the_wrong_one() {
    let registry = Registry::start("auth", true);
    let module = annotated_module(0);
    let target = registry.target("apart/private:v1");
    let right = Options {
        credentials: Some(Credentials::new(USER, PASSWORD)),
        insecure_http: false,
    };
    let pushed = oci::push(&module, &target, &right).expect("push with the right password");
    let got = manifest_over_http(
        &registry,
        "/v2/apart/private/manifests/v1",
        Some(&basic_auth()),
    );
    assert_eq!(
        got.header("Docker-Content-Digest"),
        Some(pushed.digest.as_str())
    );
    let pulled = oci::pull(&target, &right).expect("pull with the right password");
    assert!(pulled.module == module);

    let wanted = format!(
        "authentication failed for {} (check APART_REGISTRY_USERNAME/PASSWORD or docker login)",
        registry.host()
    );
    let wrong = Options {
        credentials: Some(Credentials::new(USER, WRONG_PASSWORD)),
        insecure_http: false,
    };
    for options in [&wrong, &Options::default()] {
        let e = oci::push(&module, &registry.target("apart/private:v2"), options)
            .expect_err("push refused");
        assert!(matches!(e, OciError::Unauthorized { .. }), "{e:?}");
        assert_eq!(e.to_string(), wanted);
        let e = oci::pull(&target, options).expect_err("pull refused");
        assert_eq!(e.to_string(), wanted);
        assert!(!format!("{e:?}").contains(WRONG_PASSWORD));
    }
    // The refused pushes created nothing.
    let v2 = manifest_over_http(
        &registry,
        "/v2/apart/private/manifests/v2",
        Some(&basic_auth()),
    );
    assert_eq!(v2.status, 404);
}

#[test]
fn cli_reads_credentials_from_the_environment_and_the_docker_config() {
    let registry = Registry::start("cli-auth", true);
    let work = TempDir::new("cli-auth-work");
    let module = work.path().join("module.wasm");
    std::fs::write(&module, annotated_module(0)).expect("module");
    let module_arg = module.to_string_lossy().into_owned();
    let reference = format!("registry://{}/apart/cli-auth:v1", registry.host());
    let no_config = work.path().join("no-docker-config");

    let env_right = [(oci::USERNAME_ENV, USER), (oci::PASSWORD_ENV, PASSWORD)];
    let ok = apart(&["push", &module_arg, &reference], &env_right, &no_config);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));

    let env_wrong = [
        (oci::USERNAME_ENV, USER),
        (oci::PASSWORD_ENV, WRONG_PASSWORD),
    ];
    let refused = apart(&["push", &module_arg, &reference], &env_wrong, &no_config);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "apart: authentication failed for {} (check APART_REGISTRY_USERNAME/PASSWORD or docker login)\n",
            registry.host()
        )
    );
    assert!(text(&refused.stdout).is_empty());

    // Only one of the two variables: a usage error before any request.
    let half = apart(
        &["push", &module_arg, &reference],
        &[(oci::USERNAME_ENV, USER)],
        &no_config,
    );
    assert_eq!(half.status.code(), Some(2));
    assert!(
        text(&half.stderr).contains("set both APART_REGISTRY_USERNAME and APART_REGISTRY_PASSWORD")
    );

    // docker login's format: auths.<host>.auth = base64(user:password).
    let docker = work.path().join("docker");
    std::fs::create_dir_all(&docker).expect("docker dir");
    let config = serde_json::json!({"auths": {registry.host(): {
        "auth": base64(format!("{USER}:{PASSWORD}").as_bytes())}}});
    std::fs::write(docker.join("config.json"), config.to_string()).expect("config");
    let out = work.path().join("pulled.wasm");
    let out_arg = out.to_string_lossy().into_owned();
    let pulled = apart(&["pull", &reference, "-o", &out_arg], &[], &docker);
    assert_eq!(pulled.status.code(), Some(0), "{}", text(&pulled.stderr));
    assert!(std::fs::read(&out).expect("pulled") == std::fs::read(&module).expect("module"));
}

#[test]
fn an_unreachable_registry_is_named() {
    // A port nothing listens on: bound, then released, on 127.0.0.2, where the other tests'
    // registries (all on 127.0.0.1) cannot take it meanwhile.
    let port = TcpListener::bind("127.0.0.2:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.2")
        .port();
    let host = format!("127.0.0.2:{port}");
    let target = Target::parse(&format!("registry://{host}/apart/policy:v1")).expect("target");
    let e = oci::push(&annotated_module(0), &target, &Options::default()).expect_err("refused");
    assert!(matches!(e, OciError::Unreachable { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("cannot reach {host}: ")),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );

    let work = TempDir::new("unreachable");
    let out = work.path().join("never.wasm");
    let out_arg = out.to_string_lossy().into_owned();
    let pull = apart(
        &[
            "pull",
            &format!("registry://{host}/apart/policy:v1"),
            "-o",
            &out_arg,
        ],
        &[],
        work.path(),
    );
    assert_eq!(pull.status.code(), Some(2));
    assert!(
        text(&pull.stderr).starts_with(&format!("apart: cannot reach {host}: ")),
        "{}",
        text(&pull.stderr)
    );
    assert!(!out.exists());
}

/// A proxy in front of the registry that passes every request through but fails each
/// manifest upload with a 500: the push dies after its blobs have landed.
struct ManifestBreaker {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ManifestBreaker {
    fn start(upstream: u16) -> ManifestBreaker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || {
                        let _ = relay(conn, upstream);
                    });
                }
            }
        });
        ManifestBreaker {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ManifestBreaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay(mut client: TcpStream, upstream: u16) -> std::io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut raw = Vec::new();
    let mut buf = [0; 8192];
    let head_end = loop {
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + length {
        let n = client.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let request_line = head.lines().next().unwrap_or("");
    if request_line.starts_with("PUT ") && request_line.contains("/manifests/") {
        let body = br#"{"errors":[{"code":"UNKNOWN","message":"injected by the test proxy"}]}"#;
        write!(
            client,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        client.write_all(body)?;
        return client.shutdown(Shutdown::Both);
    }
    // Pass through, one request per connection.
    let mut forwarded: String = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.set_read_timeout(Some(IO_TIMEOUT))?;
    server.write_all(forwarded.as_bytes())?;
    server.write_all(&raw[head_end..])?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    client.write_all(&answer)?;
    client.shutdown(Shutdown::Both)
}

#[test]
fn a_push_that_fails_midway_moves_no_tag() {
    let registry = Registry::start("midway", false);
    let first = annotated_module(16);
    let pushed = oci::push(
        &first,
        &registry.target("apart/policy:v1"),
        &Options::default(),
    )
    .expect("first push");

    let breaker = ManifestBreaker::start(registry.port);
    let second = annotated_module(32);
    for tag in ["v1", "v2"] {
        let through = Target::parse(&format!(
            "registry://127.0.0.1:{}/apart/policy:{tag}",
            breaker.port
        ))
        .expect("target");
        let e = oci::push(&second, &through, &Options::default()).expect_err("manifest refused");
        assert!(
            e.to_string()
                .contains("pushing the manifest failed: HTTP 500"),
            "{e}"
        );
    }
    // The blobs went up (the failure was midway) ...
    let layer = http(
        registry.port,
        "HEAD",
        &format!("/v2/apart/policy/blobs/{}", oci::sha256_digest(&second)),
        &[],
        b"",
    );
    assert_eq!(layer.status, 200);
    // ... but v1 still names the first push and v2 was never created.
    let v1 = manifest_over_http(&registry, "/v2/apart/policy/manifests/v1", None);
    assert_eq!(
        v1.header("Docker-Content-Digest"),
        Some(pushed.digest.as_str())
    );
    let v2 = manifest_over_http(&registry, "/v2/apart/policy/manifests/v2", None);
    assert_eq!(v2.status, 404);
}

#[test]
fn pull_takes_kwctl_manifests_and_refuses_other_artifacts() {
    let registry = Registry::start("foreign", false);
    let port = registry.port;
    let module = annotated_module(0);
    let config = upload_blob(port, "apart/foreign", b"{}");
    let layer = upload_blob(port, "apart/foreign", &module);
    let manifest = |config_type: &str, layer_type: &str| {
        // kwctl's shape: canonical JSON, no top-level mediaType.
        format!(
            r#"{{"config":{{"digest":"{config}","mediaType":"{config_type}","size":2}},"layers":[{{"digest":"{layer}","mediaType":"{layer_type}","size":{}}}],"schemaVersion":2}}"#,
            module.len()
        )
    };
    put_manifest(
        port,
        "apart/foreign",
        "kwctl",
        &manifest(oci::CONFIG_MEDIA_TYPE, oci::LAYER_MEDIA_TYPE),
    );
    let pulled = oci::pull(&registry.target("apart/foreign:kwctl"), &Options::default())
        .expect("a kwctl-shaped manifest pulls");
    assert!(pulled.module == module);

    put_manifest(
        port,
        "apart/foreign",
        "tar",
        &manifest(
            oci::CONFIG_MEDIA_TYPE,
            "application/vnd.oci.image.layer.v1.tar",
        ),
    );
    let e = oci::pull(&registry.target("apart/foreign:tar"), &Options::default())
        .expect_err("tar layer");
    assert_eq!(
        e.to_string(),
        format!(
            "registry://{}/apart/foreign:tar is not a Kubewarden policy: the layer has media type application/vnd.oci.image.layer.v1.tar, expected application/vnd.wasm.content.layer.v1+wasm",
            registry.host()
        )
    );

    put_manifest(
        port,
        "apart/foreign",
        "image",
        &manifest(
            "application/vnd.oci.image.config.v1+json",
            oci::LAYER_MEDIA_TYPE,
        ),
    );
    let work = TempDir::new("foreign-work");
    let out = work.path().join("module.wasm");
    let out_arg = out.to_string_lossy().into_owned();
    let cli = apart(
        &[
            "pull",
            &format!("registry://{}/apart/foreign:image", registry.host()),
            "-o",
            &out_arg,
        ],
        &[],
        work.path(),
    );
    assert_eq!(cli.status.code(), Some(2));
    assert!(
        text(&cli.stderr).contains("the config has media type application/vnd.oci.image.config.v1+json, expected application/vnd.wasm.config.v1+json"),
        "{}",
        text(&cli.stderr)
    );
    assert!(!out.exists());

    let e = oci::pull(
        &registry.target("apart/foreign:missing"),
        &Options::default(),
    )
    .expect_err("no such tag");
    assert!(matches!(e, OciError::NotFound { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "registry://{}/apart/foreign:missing not found",
            registry.host()
        )),
        "{e}"
    );
}

/// The issue's whole path: the seed policy baked into the built module, pushed to and pulled
/// from a real registry, then deployed as policy-server deploys it (`settings: {}`): every
/// object of the seed HelmRelease and the rendered manifests gets exactly the findings
/// `apart check` reports for them with the embedded module and the policy file.
#[test]
fn a_baked_module_from_the_registry_decides_as_apart_check() {
    use apart_host::commands::check;
    use apart_host::host::evaluator::Evaluator;
    use apart_host::host::wapc::PolicyModule;
    use apart_host::manifests;

    let policies =
        check::read_policies(&[root().join("examples/seed/policy.yaml")]).expect("seed policy");
    let plain = built_module();
    let baked = kubewarden::bake(&plain, &policies.set).expect("bakes");
    let registry = Registry::start("baked", false);
    let target = registry.target("apart/seed:v1");
    let pushed = oci::push(&baked, &target, &Options::default()).expect("push");
    let pulled = oci::pull(&target, &Options::default()).expect("pull");
    assert!(pulled.module == baked, "the pulled module differs");
    assert_eq!(pulled.digest, pushed.digest);
    let metadata = kubewarden::metadata(&pulled.module)
        .expect("reads")
        .expect("annotated");
    assert_eq!(metadata, kubewarden::metadata_for(&policies.set));

    let inputs = [
        root().join("examples/seed/cilium-helmrelease.yaml"),
        root().join("examples/rendered"),
    ];
    let sources = manifests::read_sources(&inputs).expect("manifests");
    let objects = manifests::objects(&sources).expect("objects");
    let reference = PolicyModule::new(&plain).expect("compiles");
    let checked = check::run(&reference, &policies, &sources, "default").expect("check");
    let deployed = PolicyModule::new(&pulled.module).expect("compiles");
    assert!(deployed.validate_settings(b"{}").expect("answers").valid);
    let mut evaluated = 0;
    for (uid, object) in objects.iter().enumerate() {
        let request =
            check::validation_request(uid, &object.value, "default", &serde_json::json!({}));
        let response = deployed
            .validate(request.to_string().as_bytes())
            .expect("answers");
        let findings: Vec<Value> = response
            .audit_annotations
            .as_ref()
            .and_then(|a| a.get(apart_policy::admission::FINDINGS_ANNOTATION))
            .map(|json| serde_json::from_str(json).expect("findings JSON"))
            .unwrap_or_default();
        let expected: Vec<Value> = checked
            .findings
            .iter()
            .filter(|f| f.manifest == Some(uid))
            .map(|f| {
                serde_json::json!({"code": f.code, "path": f.path, "message": f.message, "policy": f.policy})
            })
            .collect();
        let got: Vec<Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({"code": f["code"], "path": f["path"], "message": f["message"], "policy": f["policy"]})
            })
            .collect();
        assert_eq!(
            got, expected,
            "object {uid} ({:?})",
            object.value["metadata"]["name"]
        );
        assert_eq!(
            response.accepted,
            checked.objects.get(uid).is_some_and(|o| o.accepted)
        );
        evaluated += usize::from(!expected.is_empty());
    }
    assert_eq!(
        evaluated, 2,
        "the HelmRelease and the StatefulSet both carry the namespace-blind term"
    );
}
