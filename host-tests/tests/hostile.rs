//! Hostile input, bounded: each case is generated here at run time (nothing large is
//! committed), run through the built `apart` CLI as a child process, and must end in a clear
//! error (exit 2, naming the file and the position or object) or the correct answer, never a
//! hang, a trap, a panic or an out-of-memory kill. Each case prints its wall time and the
//! child's peak resident memory (from `wait4`); `docs/reliability.md` records them.
//!
//! The heaviest cases (a 100 MB manifest file, a 50 MB object, a 50 MB settings payload to
//! the module) are `#[ignore]`d in CI:
//! `cargo test --release -p apart --test hostile -- --ignored --nocapture`.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apart_host::host::evaluator::Evaluator;
use apart_host::host::wapc::{CallError, PolicyModule};
use support::{apart, built_module, root};

/// A policy whose subject is `app: web`, peers `app.kubernetes.io/part-of: flux` in
/// flux-system; validate only.
const POLICY: &str = "apiVersion: apart.dev/v1alpha1\nkind: DecorrelationPolicy\nmetadata: {name: web-apart-from-flux}\nspec:\n  subject: {labelSelector: {matchLabels: {app: web}}}\n  apartFrom:\n    - namespaces: [flux-system]\n      labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}\n";

/// A Deployment of `app: web` with (`good`) or without the term the policy asks for.
fn deployment(name: &str, good: bool) -> String {
    let affinity = if good {
        "      affinity:\n        podAntiAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n            - weight: 100\n              podAffinityTerm:\n                namespaces: [default, flux-system]\n                topologyKey: kubernetes.io/hostname\n                labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: c, image: i}}]\n{affinity}"
    )
}

/// A folder for one case's files, removed when the case ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("apart-hostile-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write");
        path.to_str().expect("utf-8 temp path").to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// What one run of the CLI did.
struct Ran {
    code: i32,
    stderr: String,
    stdout: String,
    wall: Duration,
    peak_mib: u64,
}

/// Runs the CLI with its output in files (so that waiting for it cannot block on a pipe),
/// then reaps it with `wait4` for its peak memory; a run past `limit` is killed and fails.
///
/// The CLI is started by a shell that leaves it running in the background and exits, so that
/// it is reparented to this process (a child subreaper) and reaped here; it starts only
/// after the shell has exited. Started straight
/// from this process it would not report its own peak: Linux carries the peak of the
/// address space a process is executed from into its `ru_maxrss`, and this process's peak
/// (the inputs it generated, the in-process cases that ran before) is far above most cases'
/// (it made a 100 MB file's check read 2.1 GiB when the CLI itself stays under 20 MiB).
/// The shell's own address space is a few MiB, below every figure measured here.
fn measured(case: &str, args: &[&str], limit: Duration) -> Ran {
    let scratch = Scratch::new(&format!("{case}-out"));
    let out = scratch.0.join("stdout");
    let err = scratch.0.join("stderr");
    let pid_file = scratch.0.join("pid");
    become_subreaper();
    let started = Instant::now();
    let status = Command::new("/bin/sh")
        .arg("-c")
        // The CLI starts only once this shell is gone (`kill -0 $$` fails once this process
        // has reaped it): a CLI that ended first would be the shell's child still, and the
        // shell may reap it itself, leaving nothing for `wait4` here.
        .arg(r#"(while kill -0 $$ 2>/dev/null; do :; done; exec "$@") & echo $! > "$APART_HOSTILE_PID""#)
        .arg("sh")
        .arg(apart())
        .args(args)
        .env("APART_HOSTILE_PID", &pid_file)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .status()
        .expect("sh runs");
    assert!(status.success(), "{case}: sh: {status}");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the shell wrote the CLI's pid")
        .trim()
        .parse()
        .expect("a pid");
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(limit);
        // SAFETY: a signal to our own child, by its id; if it has been reaped the id is
        // gone (the test has ended by then) and kill fails harmlessly.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(libc::pid_t::try_from(pid).unwrap_or(0), libc::SIGKILL);
        }
    });
    let (code, peak_kib) = wait4(pid);
    let wall = started.elapsed();
    drop(watchdog); // detached: it only signals a child that no longer exists
    let ran = Ran {
        code,
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        wall,
        peak_mib: peak_kib / 1024,
    };
    eprintln!(
        "hostile {case}: exit {}, {:.2} s, peak {} MiB; stderr: {}",
        ran.code,
        ran.wall.as_secs_f64(),
        ran.peak_mib,
        ran.stderr
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>()
    );
    assert!(wall < limit, "{case}: killed after {limit:?} (a hang)");
    for bad in [
        "panicked",
        "trapped",
        "RUST_BACKTRACE",
        "memory allocation of",
    ] {
        assert!(!ran.stderr.contains(bad), "{case}: {bad}:\n{}", ran.stderr);
    }
    ran
}

/// Makes this process the reaper of its orphaned descendants (the CLI, once its shell exits).
#[allow(unsafe_code)]
fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(done, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

/// The exit code and peak resident memory (KiB) of a process this one reaps, which only
/// `wait4` reports.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> (i32, u64) {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data, zeroed is a valid value; wait4 writes both out-params.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: the pointers are to live locals of the right types.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, u64::try_from(usage.ru_maxrss).unwrap_or(0))
}

/// An input error: exit 2, naming the file and a `:line:column:` (or `:line:`) position.
fn assert_input_error(ran: &Ran, file: &str) {
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    let at = ran
        .stderr
        .find(file)
        .unwrap_or_else(|| panic!("the error names {file}: {}", ran.stderr));
    let rest = ran.stderr.get(at + file.len()..).unwrap_or_default();
    let line: String = rest
        .strip_prefix(':')
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!line.is_empty(), "the error gives a line: {}", ran.stderr);
}

const QUICK: Duration = Duration::from_secs(60);

#[test]
fn json_nested_10000_deep_is_an_error_with_its_position() {
    let s = Scratch::new("json-deep");
    let text = format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {{\"name\": \"p\"}}, \"spec\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let policy = s.write("policy.yaml", POLICY);
    let input = s.write("deep.json", text);
    let ran = measured("json-10000-deep", &["check", "-p", &policy, &input], QUICK);
    assert_input_error(&ran, &input);
    assert!(ran.stderr.contains("deep"), "{}", ran.stderr);
}

#[test]
fn yaml_nested_10000_deep_is_an_error_with_its_position() {
    let s = Scratch::new("yaml-deep");
    let policy = s.write("policy.yaml", POLICY);
    // Flow style and block style.
    let flow = format!(
        "kind: Pod\nspec: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut block = String::from("kind: Pod\nspec:\n");
    for depth in 0..10_000 {
        let _ = writeln!(block, "{}k:", " ".repeat(depth + 2));
    }
    for (name, text) in [("flow.yaml", flow), ("block.yaml", block)] {
        let input = s.write(name, text);
        let ran = measured(
            &format!("yaml-10000-deep-{name}"),
            &["check", "-p", &policy, &input],
            QUICK,
        );
        assert_input_error(&ran, &input);
    }
    // A policy file nested as deep.
    let deep_policy = s.write(
        "deep-policy.yaml",
        format!("spec: {}{}\n", "{a: ".repeat(10_000), "}".repeat(10_000)),
    );
    let input = s.write("ok.yaml", deployment("web", true));
    let ran = measured(
        "policy-10000-deep",
        &["check", "-p", &deep_policy, &input],
        QUICK,
    );
    assert_input_error(&ran, &deep_policy);
}

#[test]
fn alias_bomb_is_an_error_not_a_billion_nodes() {
    let s = Scratch::new("alias");
    let policy = s.write("policy.yaml", POLICY);
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        let _ = writeln!(
            text,
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]"
        );
    }
    text.push_str("kind: Pod\napiVersion: v1\nmetadata: {name: bomb}\n");
    let input = s.write("bomb.yaml", text);
    let ran = measured("alias-bomb", &["check", "-p", &policy, &input], QUICK);
    assert_input_error(&ran, &input);
    assert!(ran.stderr.contains("alias"), "{}", ran.stderr);
    assert!(ran.peak_mib < 512, "{} MiB", ran.peak_mib);
}

#[test]
fn hundred_thousand_labels_are_answered() {
    let s = Scratch::new("labels");
    let policy = s.write("policy.yaml", POLICY);
    let mut labels = String::from("app: web\n");
    for i in 0..100_000 {
        let _ = writeln!(labels, "        l{i}: v{i}");
    }
    let text = deployment("web", false).replace(
        "metadata: {labels: {app: web}}",
        &format!("metadata:\n      labels:\n        {labels}"),
    );
    let input = s.write("labels.yaml", text);
    let ran = measured(
        "100000-labels",
        &["check", "-p", &policy, "--output", "json", &input],
        QUICK,
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("missing-anti-affinity"),
        "{}",
        ran.stdout
    );
}

#[test]
fn hundred_thousand_affinity_terms_are_answered() {
    let s = Scratch::new("terms");
    let policy = s.write("policy.yaml", POLICY);
    let mut text = deployment("web", false);
    text.push_str("      affinity:\n        podAntiAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n");
    for i in 0..100_000 {
        let _ = writeln!(
            text,
            "            - {{weight: 1, podAffinityTerm: {{topologyKey: kubernetes.io/hostname, labelSelector: {{matchLabels: {{app: x{i}}}}}}}}}"
        );
    }
    let input = s.write("terms.yaml", text);
    let ran = measured(
        "100000-terms",
        &[
            "check",
            "-p",
            &policy,
            "--timeout",
            "30",
            "--output",
            "json",
            &input,
        ],
        Duration::from_secs(120),
    );
    // An answer (the peers' term is missing among them), or refused: over the API server's
    // 3 MiB object limit (as this one is), or the deadline naming the object.
    match ran.code {
        1 => assert!(
            ran.stdout.contains("missing-anti-affinity"),
            "{}",
            ran.stdout
        ),
        2 => assert!(
            ran.stderr.contains(&format!("{input}:1:1: object is"))
                || ran.stderr.contains("Deployment web"),
            "{}",
            ran.stderr
        ),
        c => panic!("exit {c}: {}", ran.stderr),
    }
}

#[test]
fn ten_thousand_policies_are_answered() {
    let s = Scratch::new("policies");
    let mut text = String::new();
    for i in 0..10_000 {
        let _ = writeln!(
            text,
            "---\n{}",
            POLICY.replace("web-apart-from-flux", &format!("p{i}"))
        );
    }
    let policy = s.write("policies.yaml", text);
    let input = s.write("web.yaml", deployment("web", true));
    let ran = measured(
        "10000-policies",
        &[
            "check",
            "-p",
            &policy,
            "--timeout",
            "30",
            "--output",
            "json",
            &input,
        ],
        QUICK,
    );
    // The Deployment keeps apart from the peers, which the set does not hold: no error, and
    // each policy's `peers-not-found`, at its own peer group (document i takes 10 lines from
    // line 10i + 1, its marker, its 8 lines and a blank one: its peer group is line 10i + 8).
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: serde_json::Value = serde_json::from_str(&ran.stdout).expect("json");
    assert_eq!(out["summary"]["errors"], 0);
    assert_eq!(out["summary"]["warnings"], 10_000);
    let findings = out["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 10_000);
    for (i, f) in findings.iter().enumerate() {
        assert_eq!(f["code"], "peers-not-found", "{f}");
        assert_eq!(f["policy"], format!("p{i}"), "{f}");
        assert_eq!(f["file"].as_str(), Some(policy.as_str()), "{f}");
        assert_eq!(f["line"], 10 * i + 8, "{f}");
    }
}

#[test]
fn ten_megabyte_policy_is_answered_or_refused_with_its_position() {
    let s = Scratch::new("big-policy");
    // 10 MB of peer namespaces (valid names): a policy nobody writes, that must not break.
    let mut names = String::new();
    let mut i = 0;
    while names.len() < 10 << 20 {
        let _ = write!(names, "ns-{i}, ");
        i += 1;
    }
    let text = POLICY.replace(
        "namespaces: [flux-system]",
        &format!("namespaces: [{names}flux-system]"),
    );
    let policy = s.write("big-policy.yaml", text);
    let input = s.write("web.yaml", deployment("web", false));
    let ran = measured(
        "10-MB-policy",
        &["check", "-p", &policy, "--timeout", "30", &input],
        Duration::from_secs(120),
    );
    match ran.code {
        1 => {}
        2 => assert!(
            ran.stderr.contains("big-policy.yaml") || ran.stderr.contains("web.yaml"),
            "{}",
            ran.stderr
        ),
        c => panic!("exit {c}: {}", ran.stderr),
    }
}

#[test]
fn invalid_utf8_is_an_error_naming_the_file_everywhere() {
    let s = Scratch::new("utf8");
    let bad = b"apiVersion: v1\nkind: Pod\nmetadata: {name: \xff\xfe}\n".to_vec();
    let policy = s.write("policy.yaml", POLICY);
    let good = s.write("good.yaml", deployment("web", true));
    let bad_manifest = s.write("bad.yaml", &bad);
    let mut bad_policy_text = POLICY.as_bytes().to_vec();
    bad_policy_text.extend_from_slice(b"# \xc3\x28\n");
    let bad_policy = s.write("bad-policy.yaml", bad_policy_text);
    let bad_cluster = s.write(
        "cluster.json",
        b"{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\"\xff\"]}",
    );
    for (case, args, file) in [
        (
            "manifest",
            vec!["check", "-p", &policy, &bad_manifest],
            &bad_manifest,
        ),
        (
            "policy",
            vec!["check", "-p", &bad_policy, &good],
            &bad_policy,
        ),
        (
            "fix",
            vec!["fix", "-p", &policy, &bad_manifest],
            &bad_manifest,
        ),
        (
            "audit-cluster",
            vec!["audit", "-p", &policy, "--cluster", &bad_cluster],
            &bad_cluster,
        ),
        (
            "simulate-cluster",
            vec!["simulate", "--cluster", &bad_cluster, "--pod", &good],
            &bad_cluster,
        ),
        (
            "simulate-pod",
            vec![
                "simulate",
                "--cluster",
                &bad_cluster,
                "--pod",
                &bad_manifest,
            ],
            &bad_cluster,
        ),
    ] {
        let ran = measured(&format!("invalid-utf8-{case}"), &args, QUICK);
        assert_eq!(ran.code, 2, "{case}: {}", ran.stderr);
        assert!(ran.stderr.contains(file.as_str()), "{case}: {}", ran.stderr);
    }
    // Standard input.
    let out = support::run_program(&apart(), &["check", "-p", &policy, "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("<stdin>"),
        "{out:?}"
    );
    // The module: settings and requests that are not UTF-8 are refused, not trapped on.
    let module = PolicyModule::new(&built_module()).expect("compiles");
    let answer = module
        .validate_settings(b"{\"policies\": [\"\xff\"]}")
        .expect("answers");
    assert!(!answer.valid);
    let answer = module
        .validate(b"{\"request\": {\"uid\": \"\xff\"}}")
        .expect("answers");
    assert!(!answer.accepted);
}

#[test]
fn the_memory_limit_and_the_deadline_name_the_object() {
    let s = Scratch::new("limits");
    let policy = s.write("policy.yaml", POLICY);
    // ~2.5 MB of labels (under the API server's 3 MiB object limit): more than an 8 MiB
    // module may hold as the request, its copy and the object read.
    let mut text = deployment("big-web", false);
    let mut labels = String::new();
    for i in 0..150_000 {
        let _ = write!(labels, "l{i}: v{i}, ");
    }
    text = text.replace(
        "labels: {app: web}",
        &format!("labels: {{{labels}app: web}}"),
    );
    let input = s.write("big.yaml", &text);
    let ran = measured(
        "memory-limit",
        &["check", "-p", &policy, "--memory", "8", &input],
        QUICK,
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("Deployment big-web"), "{}", ran.stderr);
    assert!(ran.stderr.contains("memory limit"), "{}", ran.stderr);
    assert!(ran.stderr.contains("--memory"), "{}", ran.stderr);
    let ran = measured(
        "deadline",
        &["check", "-p", &policy, "--timeout", "0.01", &input],
        QUICK,
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("Deployment big-web"), "{}", ran.stderr);
    assert!(ran.stderr.contains("deadline"), "{}", ran.stderr);
    assert!(ran.stderr.contains(&format!("{input}:")), "{}", ran.stderr);
    // Limits out of range are usage errors.
    for bad in [
        ["--timeout", "0"],
        ["--timeout", "x"],
        ["--memory", "0"],
        ["--memory", "5000"],
    ] {
        let out = support::run_program(
            &apart(),
            &["check", "-p", &policy, bad[0], bad[1], &input],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
    }
}

#[test]
#[ignore = "writes and checks a 100 MB file: run with --ignored (figures in docs/reliability.md)"]
fn hundred_megabyte_manifest_file_is_answered() {
    let s = Scratch::new("100mb");
    let policy = s.write("policy.yaml", POLICY);
    let mut text = String::with_capacity(101 << 20);
    let mut n = 0;
    while text.len() < 100 << 20 {
        text.push_str("---\n");
        text.push_str(&deployment(&format!("web-{n}"), n % 2 == 0));
        n += 1;
    }
    let input = s.write("big.yaml", &text);
    let ran = measured(
        "100-MB-file",
        &["check", "-p", &policy, "--output", "json", &input],
        Duration::from_secs(900),
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let out: serde_json::Value = serde_json::from_str(&ran.stdout).expect("json");
    assert_eq!(out["summary"]["objects"], n);
    assert_eq!(out["summary"]["errors"], n / 2);
}

#[test]
#[ignore = "a 50 MB object: run with --ignored (figures in docs/reliability.md)"]
fn fifty_megabyte_object_is_answered_or_refused_by_its_limits() {
    let s = Scratch::new("50mb");
    let policy = s.write("policy.yaml", POLICY);
    let annotation = "x".repeat(50 << 20);
    let text = deployment("huge", true).replace(
        "metadata: {name: huge, namespace: default}",
        &format!(
            "metadata: {{name: huge, namespace: default, annotations: {{big: {annotation}}}}}"
        ),
    );
    let input = s.write("huge.yaml", &text);
    let ran = measured(
        "50-MB-object",
        &["check", "-p", &policy, "--timeout", "60", &input],
        Duration::from_secs(600),
    );
    match ran.code {
        0 => {}
        2 => assert!(
            ran.stderr.contains(&format!("{input}:1:1: object is"))
                || ran.stderr.contains("Deployment huge"),
            "{}",
            ran.stderr
        ),
        c => panic!("exit {c}: {}", ran.stderr),
    }
}

#[test]
#[ignore = "a 50 MB settings payload: run with --ignored (figures in docs/reliability.md)"]
fn fifty_megabyte_settings_to_the_module_are_answered() {
    // 50 MB of policies in the settings, straight to the module's validate_settings.
    let one: serde_json::Value = serde_json::from_str(
        r#"{"apiVersion":"apart.dev/v1alpha1","kind":"DecorrelationPolicy","metadata":{"name":"p"},"spec":{"subject":{"labelSelector":{"matchLabels":{"app":"web"}}},"apartFrom":[{"namespaces":["flux-system"],"labelSelector":{"matchLabels":{"app.kubernetes.io/part-of":"flux"}}}]}}"#,
    )
    .expect("json");
    let size = one.to_string().len();
    let policies: Vec<serde_json::Value> = (0..(50 << 20) / size)
        .map(|i| {
            let mut p = one.clone();
            p["metadata"]["name"] = format!("p{i}").into();
            p
        })
        .collect();
    let settings = serde_json::json!({ "policies": policies }).to_string();
    let module =
        PolicyModule::with_deadline(&built_module(), Duration::from_secs(120)).expect("compiles");
    let started = Instant::now();
    let answer = module.validate_settings(settings.as_bytes());
    eprintln!(
        "hostile 50-MB-settings ({} policies, {} bytes): {:.2} s, {:?}",
        policies.len(),
        settings.len(),
        started.elapsed().as_secs_f64(),
        answer.as_ref().map(|a| a.valid)
    );
    match answer {
        Ok(a) => assert!(a.valid, "{:?}", a.message),
        Err(e) => assert!(
            matches!(
                e,
                apart_host::host::evaluator::EvalError::Call(
                    CallError::MemoryLimit { .. } | CallError::Deadline { .. }
                )
            ),
            "{e}"
        ),
    }
    // Garbage of the same size: refused with a message.
    let garbage = vec![b'['; 50 << 20];
    let answer = module.validate_settings(&garbage).expect("answers");
    assert!(!answer.valid);
}
