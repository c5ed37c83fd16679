//! The `apart` CLI on generated manifest sets, side by side with the floor of merely reading
//! the same YAML with the same parser (events only, no values).
//!
//! `cargo xtask bench` runs it (it needs `target/release/apart`, which `cargo xtask build`
//! leaves). Rows:
//! - one file of N and of 4N workload documents: wall and CPU time of `apart check`, against
//!   the parse-only floor of the same file (target: the CLI within 2× of the floor; 4N within
//!   4.5× of N);
//! - 4N documents in 4N files (one object per file, as a repository of manifests is);
//! - N documents under the same rule with `action: validate` (findings, no repairs), to show
//!   what the mutate path of the engine costs;
//! - start-up: `apart check` on one small file against `apart --version` (target: within
//!   50 ms), with the compiled module cached as after the first run;
//! - peak memory of `apart check` for N and 4N (target: 4N within 1.3× of N);
//! - one Deployment under P and 4P policies (each with its own finding and its own
//!   `peers-not-found`): the cost of the policies themselves, read, compiled by each module
//!   instance, evaluated and located (target: 4P within 4.5× of P).
//!
//! Each timed row is the median of several runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use saphyr_parser::Parser;

/// Workload documents in the smaller file.
const N: usize = 1_000;
/// Policies in the smaller policy file.
const P: usize = 1_000;
const RUNS: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bench's rule: critical workloads apart from the GitOps controllers, on hostname.
const POLICY: &str = "apiVersion: apart.dev/v1alpha1
kind: DecorrelationPolicy
metadata: {name: critical-apart-from-gitops}
spec:
  subject:
    labelSelector: {matchLabels: {tier: critical}}
  apartFrom:
    - namespaces: [flux-system]
      labelSelector: {matchLabels: {app.kubernetes.io/part-of: flux}}
  action: mutate
";

/// A Deployment as charts render them: labels, a replica spread, probes, resources; every
/// other one a subject of the rule, every third of those with a namespace-blind peer term.
fn workload(i: usize) -> String {
    let critical = if i.is_multiple_of(2) {
        "critical"
    } else {
        "web"
    };
    let peer_term = if i.is_multiple_of(6) {
        "          - weight: 100
            podAffinityTerm:
              labelSelector:
                matchLabels: {app.kubernetes.io/part-of: flux}
              topologyKey: kubernetes.io/hostname
"
    } else {
        ""
    };
    format!(
        "---
# Source: app-{i}/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{ns}
  labels:
    app.kubernetes.io/name: app-{i}
    app.kubernetes.io/instance: release-{i}
    app.kubernetes.io/version: \"1.{i}.0\"
    helm.sh/chart: app-0.{i}.0
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{i}
      app.kubernetes.io/instance: release-{i}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{i}
        app.kubernetes.io/instance: release-{i}
        tier: {critical}
      annotations:
        checksum/config: 3f2a9c{i:08x}
    spec:
      serviceAccountName: app-{i}
      securityContext: {{runAsNonRoot: true, fsGroup: 2000}}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            podAffinityTerm:
              labelSelector:
                matchLabels:
                  app.kubernetes.io/name: app-{i}
              topologyKey: kubernetes.io/hostname
{peer_term}      containers:
      - name: app
        image: registry.example.com/app-{i}:1.{i}.0
        args: [--port=8080, --log-level=info]
        ports:
        - {{name: http, containerPort: 8080, protocol: TCP}}
        env:
        - {{name: GOMAXPROCS, value: \"2\"}}
        livenessProbe:
          httpGet: {{path: /healthz, port: http}}
        readinessProbe:
          httpGet: {{path: /readyz, port: http}}
        resources:
          limits: {{cpu: 500m, memory: 256Mi}}
          requests: {{cpu: 100m, memory: 128Mi}}
",
        ns = i % 20
    )
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("bench folder");
    }
    std::fs::write(path, text).expect("bench file");
}

/// The parse-only floor: every event of the text, nothing built.
fn parse_floor(text: &str) -> Duration {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut events = 0usize;
        for event in Parser::new_from_str(text) {
            event.expect("the generated YAML parses");
            events += 1;
        }
        std::hint::black_box(events);
        runs.push(started.elapsed());
    }
    median(runs)
}

fn median<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Wall time, CPU time (user + system) and peak memory of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// One run of the CLI, started by a shell that leaves it in the background and exits, so that
/// it is reparented to this process (a child subreaper) and reaped here with its own peak
/// memory. Started straight from here, its `ru_maxrss` would include this process's peak
/// (Linux carries the peak of the address space a process is executed from into it), and
/// the generated files this process holds are larger than a check's whole peak
/// (`host-tests/tests/hostile.rs` measures the same way).
fn run(args: &[&str]) -> Run {
    let apart = root().join("target/release/apart");
    assert!(
        apart.is_file(),
        "{} is missing: run `cargo xtask build`",
        apart.display()
    );
    let pid_file = root().join("target/bench/cli/pid");
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    #[allow(unsafe_code)]
    let subreaper = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(subreaper, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
    let started = Instant::now();
    let shell = Command::new("/bin/sh")
        .arg("-c")
        // The CLI starts only once the shell is gone, so the shell cannot reap it first (as
        // in `tests/hostile.rs`).
        .arg(r#"(while kill -0 $$ 2>/dev/null; do :; done; exec "$@") & echo $! > "$APART_BENCH_PID""#)
        .arg("sh")
        .arg(&apart)
        .args(args)
        .env("APART_BENCH_PID", &pid_file)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sh runs");
    assert!(shell.success(), "sh: {shell}");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the shell wrote the CLI's pid")
        .trim()
        .parse()
        .expect("a pid");
    let (status, usage) = wait4(pid);
    let wall = started.elapsed();
    assert!(
        status == 0 || status == 1,
        "apart {args:?} exited with {status}"
    );
    Run {
        wall,
        cpu: usage.0,
        max_rss_kib: usage.1,
    }
}

/// Waits for a child and returns its exit code, CPU time and peak resident memory (KiB),
/// which only `wait4` reports.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> (i32, (Duration, u64)) {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data, zeroed is a valid value; wait4 writes both out-params.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: the pointers are to live locals of the right types.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4 failed");
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        code,
        (
            time(usage.ru_utime) + time(usage.ru_stime),
            u64::try_from(usage.ru_maxrss).unwrap_or(0),
        ),
    )
}

fn runs(args: &[&str]) -> Run {
    let all: Vec<Run> = (0..RUNS).map(|_| run(args)).collect();
    Run {
        wall: median(all.iter().map(|r| r.wall).collect()),
        cpu: median(all.iter().map(|r| r.cpu).collect()),
        max_rss_kib: median(all.iter().map(|r| r.max_rss_kib).collect()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let dir = root().join("target/bench/cli");
    let policy = dir.join("policy.yaml");
    write(&policy, POLICY);
    let small_file = dir.join("small.yaml");
    write(&small_file, &workload(0));
    let mut texts = Vec::new();
    for count in [N, 4 * N] {
        let text: String = (0..count).map(workload).collect();
        let path = dir.join(format!("workloads-{count}.yaml"));
        write(&path, &text);
        texts.push((count, path, text));
    }
    let files = dir.join("files");
    let _ = std::fs::remove_dir_all(&files);
    for i in 0..4 * N {
        write(&files.join(format!("app-{i:05}.yaml")), &workload(i));
    }
    let policy_arg = policy.display().to_string();
    // The first run compiles the module and caches it; the rows measure what every later
    // run costs.
    run(&[
        "check",
        "-p",
        &policy_arg,
        &small_file.display().to_string(),
    ]);

    println!("\n## apart check on generated manifests ({RUNS} runs each, medians)\n");
    println!(
        "| input | size | parse-only floor | apart check wall | × floor | CPU | peak memory |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut measured = Vec::new();
    for (count, path, text) in &texts {
        let floor = parse_floor(text);
        let r = runs(&["check", "-p", &policy_arg, &path.display().to_string()]);
        println!(
            "| one file, {count} Deployments | {:.1} MB | {:.1} ms | {:.1} ms | {:.2} | {:.1} ms | {:.1} MB |",
            text.len() as f64 / 1e6,
            ms(floor),
            ms(r.wall),
            r.wall.as_secs_f64() / floor.as_secs_f64(),
            ms(r.cpu),
            r.max_rss_kib as f64 / 1024.0
        );
        measured.push((*count, floor, r));
    }
    let validate_policy = dir.join("policy-validate.yaml");
    write(
        &validate_policy,
        &POLICY.replace("action: mutate", "action: validate"),
    );
    if let Some((count, path, text)) = texts.first() {
        let floor = parse_floor(text);
        let r = runs(&[
            "check",
            "-p",
            &validate_policy.display().to_string(),
            &path.display().to_string(),
        ]);
        println!(
            "| one file, {count} Deployments, validate-only rule | {:.1} MB | {:.1} ms | {:.1} ms | {:.2} | {:.1} ms | {:.1} MB |",
            text.len() as f64 / 1e6,
            ms(floor),
            ms(r.wall),
            r.wall.as_secs_f64() / floor.as_secs_f64(),
            ms(r.cpu),
            r.max_rss_kib as f64 / 1024.0
        );
    }
    let many_text_len: usize = texts.get(1).map_or(0, |t| t.2.len());
    let many_floor = texts.get(1).map_or(Duration::ZERO, |t| parse_floor(&t.2));
    let many = runs(&["check", "-p", &policy_arg, &files.display().to_string()]);
    println!(
        "| {} files, one Deployment each | {:.1} MB | {:.1} ms | {:.1} ms | {:.2} | {:.1} ms | {:.1} MB |",
        4 * N,
        many_text_len as f64 / 1e6,
        ms(many_floor),
        ms(many.wall),
        many.wall.as_secs_f64() / many_floor.as_secs_f64(),
        ms(many.cpu),
        many.max_rss_kib as f64 / 1024.0
    );
    let version = runs(&["--version"]);
    let small = runs(&[
        "check",
        "-p",
        &policy_arg,
        &small_file.display().to_string(),
    ]);
    println!("\n| start-up | wall | peak memory |");
    println!("|---|---:|---:|");
    println!(
        "| `apart --version` | {:.1} ms | {:.1} MB |",
        ms(version.wall),
        version.max_rss_kib as f64 / 1024.0
    );
    println!(
        "| `apart check` of one small file | {:.1} ms | {:.1} MB |",
        ms(small.wall),
        small.max_rss_kib as f64 / 1024.0
    );
    let mut by_policies = Vec::new();
    println!("\n| one Deployment under | wall | CPU | peak memory |");
    println!("|---|---:|---:|---:|");
    for count in [P, 4 * P] {
        let path = dir.join(format!("policies-{count}.yaml"));
        let text: String = (0..count)
            .map(|i| {
                format!(
                    "---\n{}",
                    POLICY.replace(
                        "critical-apart-from-gitops",
                        &format!("critical-apart-from-gitops-{i}")
                    )
                )
            })
            .collect();
        write(&path, &text);
        let r = runs(&[
            "check",
            "-p",
            &path.display().to_string(),
            &small_file.display().to_string(),
        ]);
        println!(
            "| {count} policies | {:.1} ms | {:.1} ms | {:.1} MB |",
            ms(r.wall),
            ms(r.cpu),
            r.max_rss_kib as f64 / 1024.0
        );
        by_policies.push(r);
    }
    if let [(n, n_floor, n_run), (_, _, big_run)] = measured.as_slice() {
        let scaling = big_run.wall.as_secs_f64() / n_run.wall.as_secs_f64();
        let memory = big_run.max_rss_kib as f64 / n_run.max_rss_kib.max(1) as f64;
        let floor_ratio = n_run.wall.as_secs_f64() / n_floor.as_secs_f64();
        let startup = ms(small.wall) - ms(version.wall);
        println!("\n| target | measured | met |");
        println!("|---|---:|---|");
        let row = |what: &str, value: String, met: bool| {
            println!("| {what} | {value} | {} |", if met { "yes" } else { "NO" });
        };
        row(
            &format!("4N ({}) within 4.5× of N ({n})", 4 * n),
            format!("{scaling:.2}×"),
            scaling <= 4.5,
        );
        row(
            "CLI within 2× of the parse-only floor (N)",
            format!("{floor_ratio:.2}×"),
            floor_ratio <= 2.0,
        );
        row(
            "start-up within 50 ms of `apart --version`",
            format!("+{startup:.1} ms"),
            startup <= 50.0,
        );
        row(
            "peak memory of 4N within 1.3× of N",
            format!("{memory:.2}×"),
            memory <= 1.3,
        );
        if let [p_run, big_p_run] = by_policies.as_slice() {
            let policies = big_p_run.wall.as_secs_f64() / p_run.wall.as_secs_f64();
            row(
                &format!("4P ({} policies) within 4.5× of P ({P})", 4 * P),
                format!("{policies:.2}×"),
                policies <= 4.5,
            );
        }
    }
}
