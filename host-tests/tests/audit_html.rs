//! `apart audit --output html` opened in headless Chromium: the screenshot must show the
//! picture (the highlighted domain, the subject and peer blocks, the legend), and a clean
//! cluster must show no highlighted domain.
//!
//! Chromium is the Debian package `chromium`, installed by `cargo xtask setup`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use apart_host::commands::audit::{self, AuditFormat, HIGHLIGHT, PALETTE};
use apart_host::commands::check;
use support::root;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("chromium is not installed: run `cargo xtask setup` (it installs the Debian package chromium)")
        })
}

fn rgb(hex: &str) -> [u8; 3] {
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex color");
    [channel(1), channel(3), channel(5)]
}

/// Renders the audit of `cluster` as HTML, screenshots it, and returns the RGB pixels.
fn screenshot(name: &str, policy: &str, cluster: &str) -> (PathBuf, u32, u32, Vec<[u8; 3]>) {
    let dir = root().join("target/audit-html");
    std::fs::create_dir_all(&dir).expect("output folder");
    let policies = check::read_policies(&[root().join(policy)]).expect("policy");
    let (_, snapshot) = audit::read_cluster(&root().join(cluster)).expect("cluster");
    let report = apart_policy::placement::audit::audit(&policies.set, &snapshot);
    let page = audit::render(&report, AuditFormat::Html, cluster);
    assert!(
        !page.contains("<script") && !page.contains(" src=") && !page.contains("url("),
        "the page must be self-contained"
    );
    let html = dir.join(format!("{name}.html"));
    let png = dir.join(format!("{name}.png"));
    std::fs::write(&html, page).expect("write page");
    let _ = std::fs::remove_file(&png);
    let html = html.canonicalize().expect("page path");
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            // Colors as written: the test compares exact pixel values.
            "--force-color-profile=srgb",
            &format!(
                "--user-data-dir={}",
                dir.join(format!("profile-{name}")).display()
            ),
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={WIDTH},{HEIGHT}"),
            &format!("file://{}", html.display()),
        ])
        .output()
        .expect("chromium runs");
    assert!(
        png.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = std::io::BufReader::new(std::fs::File::open(&png).expect("screenshot"));
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG color type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (png, info.width, info.height, pixels)
}

fn count(pixels: &[[u8; 3]], hex: &str) -> usize {
    let want = rgb(hex);
    pixels.iter().filter(|p| **p == want).count()
}

#[test]
fn the_incident_page_highlights_the_shared_node() {
    let (png, width, height, pixels) = screenshot(
        "incident",
        "examples/seed/policy.yaml",
        "examples/incident/cluster.json",
    );
    assert_eq!((width, height), (WIDTH, HEIGHT), "{}", png.display());
    // The violated column's header band (300 x 44) and thick border, plus the legend swatch.
    let highlight = count(&pixels, HIGHLIGHT);
    assert!(
        highlight > 10_000,
        "{}: only {highlight} highlight pixels",
        png.display()
    );
    // The subject (spire-server-0) and the peers (four Flux controllers): blocks and swatches.
    let subject = count(&pixels, PALETTE[0]);
    let peers = count(&pixels, PALETTE[1]);
    assert!(
        subject > 3_000,
        "{}: {subject} subject pixels",
        png.display()
    );
    assert!(
        peers > 3 * subject,
        "{}: {peers} peer pixels for {subject} subject pixels",
        png.display()
    );
}

#[test]
fn a_clean_page_highlights_nothing() {
    let (png, width, height, pixels) = screenshot(
        "clean",
        "tests/cases/audit-clean/policy.yaml",
        "tests/cases/audit-clean/cluster.json",
    );
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // Only the legend's swatch (18 x 16) carries the highlight color.
    let highlight = count(&pixels, HIGHLIGHT);
    assert!(
        (100..=400).contains(&highlight),
        "{}: {highlight} highlight pixels",
        png.display()
    );
    assert!(count(&pixels, PALETTE[0]) > 3_000, "{}", png.display());
}
