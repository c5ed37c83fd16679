//! `apart audit`'s reports: the snapshot read from its text (`kubectl get
//! nodes,pods,namespaces -A -o json`, or the same as YAML; errors at their line), and the
//! engine's [`AuditReport`] presented as text, JSON (the report as serialized, a stable
//! shape), one self-contained HTML page, or the page's SVG picture of the failure domains
//! alone. The JSON shape and the blast-radius ranking are documented in
//! [`crate::placement::audit`].
//!
//! The picture draws, per topology key, the domains holding subject or peer pods as columns
//! (worst first, at most [`MAX_COLUMNS`]; the rest are counted), each pod as a block in its
//! group's color (further groups as tabs), domains where a subject meets its peers in the
//! [`HIGHLIGHT`] color, and nodes without the key's label as dashed columns. Every text is
//! escaped; nothing is fetched (no script, no external font or image).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::{ReportError, Source};
use crate::HOSTNAME;
use crate::kube::cluster::Cluster;
use crate::placement::audit::{AuditReport, DomainRisk, GroupPods, PodRef, Role};
use crate::source::path::JsonPath;
use crate::source::read;

fn input_error(src: &Source, position: read::Position, message: String) -> ReportError {
    ReportError::Input {
        file: src.name.clone(),
        line: position.line.max(1),
        column: position.column.max(1),
        message,
    }
}

/// Reads a snapshot from text: JSON straight into the lean reader; YAML (or JSON the reader
/// refuses) through the positioned parser, so errors name a line.
pub fn parse_cluster(src: &Source) -> Result<Cluster, ReportError> {
    if read::looks_like_json(&src.text)
        && let Ok(cluster) = Cluster::from_json(src.text.as_bytes())
    {
        return checked(src, cluster, read::Position::default());
    }
    // YAML, or JSON the lean reader refused: read (again, slowly) to say where.
    let docs =
        read::parse_documents(&src.text).map_err(|e| input_error(src, e.position, e.message))?;
    let doc = match docs.as_slice() {
        [doc] => doc,
        [] => {
            return Err(input_error(
                src,
                read::Position::default(),
                "empty: expected the output of `kubectl get nodes,pods,namespaces -A -o json`"
                    .to_owned(),
            ));
        }
        [_, second, ..] => {
            return Err(input_error(
                src,
                second.start,
                "a second document: the snapshot is one List (`kubectl get nodes,pods,namespaces -A -o json`)".to_owned(),
            ));
        }
    };
    let cluster = Cluster::from_value(&doc.value).map_err(|e| {
        let position = error_path(&e.message)
            .and_then(|path| doc.positions.nearest(&path))
            .map_or(doc.start, |(span, _)| span.start());
        input_error(src, position, e.message)
    })?;
    checked(src, cluster, doc.start)
}

/// The JSONPath a snapshot error names (`cannot read the cluster snapshot: $.items[3].x: ...`):
/// the first `: `-separated prefix that parses as a path.
fn error_path(message: &str) -> Option<JsonPath> {
    let start = message.find("$")?;
    let rest = message.get(start..)?;
    rest.match_indices(": ")
        .find_map(|(end, _)| rest.get(..end).and_then(|p| JsonPath::parse(p).ok()))
}

/// A snapshot without nodes would judge nothing and pass: refuse it.
fn checked(src: &Source, cluster: Cluster, at: read::Position) -> Result<Cluster, ReportError> {
    let bound = cluster.pods.iter().filter(|p| p.is_placed()).count();
    if cluster.nodes.is_empty() && bound > 0 {
        return Err(input_error(
            src,
            at,
            format!(
                "{} bound to nodes, but the snapshot holds no Node: take it with `kubectl get nodes,pods,namespaces -A -o json`",
                if bound == 1 {
                    "1 pod is".to_owned()
                } else {
                    format!("{bound} pods are")
                }
            ),
        ));
    }
    Ok(cluster)
}

/// The JSON output: the report as the engine serializes it, pretty, newline-terminated.
pub fn json(report: &AuditReport) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn policies(n: usize) -> String {
    format!("{n} {}", if n == 1 { "policy" } else { "policies" })
}

fn pod_name(p: &PodRef) -> String {
    format!("{}/{}", p.namespace, p.name)
}

/// Up to `max` pod names, then how many more.
fn pod_list(pods: &[PodRef], max: usize, with_node: bool) -> String {
    let mut parts: Vec<String> = pods
        .iter()
        .take(max)
        .map(|p| {
            if with_node {
                format!("{} on {}", pod_name(p), p.node)
            } else {
                pod_name(p)
            }
        })
        .collect();
    if pods.len() > max {
        parts.push(format!("+{} more", pods.len() - max));
    }
    parts.join(", ")
}

/// `identity subject` / `identity apartFrom[0]`.
fn group_label(policy: &str, role: Role, peer_group: Option<usize>) -> String {
    match (role, peer_group) {
        (Role::Peers, Some(i)) => format!("{policy} apartFrom[{i}]"),
        _ => format!("{policy} subject"),
    }
}

/// `1 of 1 pod (the whole group)`, `1 of 4 pods`.
fn share(g: &GroupPods) -> String {
    let share = format!("{} of {}", g.pods.len(), plural(g.total, "pod"));
    if g.whole {
        format!("{share} (the whole group)")
    } else {
        share
    }
}

/// The most domains the text lists; JSON lists them all.
const TEXT_DOMAINS: usize = 20;
/// The most pods named on one line.
const TEXT_PODS: usize = 6;

/// The text output: verdict, violations (worst first), blast radius, what cannot be judged.
pub fn text(report: &AuditReport, cluster_name: &str) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "apart audit of {cluster_name}: {}, {}, {} ({} protected)",
        policies(s.policies),
        plural(s.nodes, "node"),
        plural(s.placed_pods, "placed pod"),
        s.protected_pods
    );
    if report.is_clean() {
        let _ = writeln!(
            out,
            "clean: no subject shares a failure domain with its peers"
        );
    } else {
        let _ = writeln!(
            out,
            "VIOLATED: {} of {}: subjects and peers share a failure domain",
            plural(s.violations, "violation"),
            policies(s.violated_policies)
        );
    }
    for v in &report.violations {
        let _ = writeln!(
            out,
            "\n{} ({}) on {}={}",
            v.policy,
            match v.strength {
                crate::Strength::Required => "required",
                crate::Strength::Preferred => "preferred",
            },
            v.topology_key,
            v.domain
        );
        let _ = writeln!(out, "  subject  {}", pod_list(&v.subjects, TEXT_PODS, true));
        let _ = writeln!(out, "  peers    {}", pod_list(&v.peers, TEXT_PODS, true));
        let _ = writeln!(
            out,
            "           (apartFrom[{}]: {})",
            v.peer_group, v.peers_select
        );
        let _ = writeln!(
            out,
            "  if {} fails, both go down together. Placed pods never move (IgnoredDuringExecution):",
            v.domain
        );
        let _ = writeln!(
            out,
            "  make sure the workload carries the rule (apart check), then delete one of these pods so the scheduler places it again."
        );
    }
    if !report.blast_radius.is_empty() {
        let _ = writeln!(
            out,
            "\nBlast radius, worst first (policies violated, groups lost whole, groups hit, pods):"
        );
    }
    for (i, d) in report.blast_radius.iter().take(TEXT_DOMAINS).enumerate() {
        // A hostname domain is its node; say which nodes only when that is news.
        let nodes = if d.topology_key == HOSTNAME && d.nodes == [d.domain.clone()] {
            String::new()
        } else {
            format!(
                " ({}; protected pods on {})",
                plural(d.node_count, "node"),
                d.nodes.join(", ")
            )
        };
        let violates = if d.policies.is_empty() {
            String::new()
        } else {
            format!(": violates {}", d.policies.join(", "))
        };
        let _ = writeln!(
            out,
            "  {}. {}={}{nodes}{violates}",
            i + 1,
            d.topology_key,
            d.domain
        );
        for g in &d.groups {
            let _ = writeln!(
                out,
                "       {}, {}: {}",
                group_label(&g.policy, g.role, g.peer_group),
                share(g),
                pod_list(&g.pods, TEXT_PODS, false)
            );
        }
    }
    if report.blast_radius.len() > TEXT_DOMAINS {
        let _ = writeln!(
            out,
            "  ... and {} more (--output json lists every domain)",
            plural(report.blast_radius.len() - TEXT_DOMAINS, "domain")
        );
    }
    if !report.unlabelled.is_empty() {
        let _ = writeln!(
            out,
            "\nCannot be judged: these nodes lack the policy's topology label, so they are in no failure domain:"
        );
    }
    for u in &report.unlabelled {
        let _ = writeln!(out, "  node {} has no {} label", u.node, u.topology_key);
        for g in &u.groups {
            let _ = writeln!(
                out,
                "       {}: {}",
                group_label(&g.policy, g.role, g.peer_group),
                pod_list(&g.pods, TEXT_PODS, false)
            );
        }
        if !u.together.is_empty() {
            let _ = writeln!(
                out,
                "       subjects and peers of {} run on this very node: they share whatever domain it is given",
                u.together.join(", ")
            );
        }
    }
    let mut notes = Vec::new();
    if s.pods_on_unknown_nodes > 0 {
        notes.push(format!(
            "not judged: {} bound to nodes the snapshot does not list (take it with `kubectl get nodes,pods,namespaces -A -o json`)",
            plural(s.pods_on_unknown_nodes, "placed pod")
        ));
    }
    for g in report.groups.iter().filter(|g| g.pods == 0) {
        notes.push(format!(
            "{} selects no placed pod ({})",
            group_label(&g.policy, g.role, g.peer_group),
            g.selects
        ));
    }
    if !notes.is_empty() {
        out.push('\n');
    }
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

// ---------------------------------------------------------------------------------------
// HTML

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shortens to `max` characters by cutting the middle, where generated pod names differ
/// least (`kustomize-controller-7b…x2x9k` keeps the workload and the pod's own suffix).
fn fit(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max || max < 3 {
        return text.to_owned();
    }
    let tail = (max - 1) / 3;
    let head = max - 1 - tail;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// The highlight of a domain where subjects and peers meet. The screenshot test looks for it.
pub const HIGHLIGHT: &str = "#d62728";
/// Group colors, in group order (red is kept for the highlight).
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
];
const HIGHLIGHT_BG: &str = "#fdeaea";
const COLUMN_BG: &str = "#f5f6f8";
const HEADER_BG: &str = "#e3e7ed";
const BORDER: &str = "#c4cad3";
const INK: &str = "#1d2329";
const MUTED: &str = "#5f6b7a";

const PAD: usize = 16;
const COL_W: usize = 300;
const GAP: usize = 12;
const PER_ROW: usize = 4;
const HEADER_H: usize = 44;
const LINE_H: usize = 26;
const BLOCK_H: usize = 22;
/// Columns drawn per topology key; the rest are counted, not drawn.
pub const MAX_COLUMNS: usize = 20;
/// Lines (pods and node captions) drawn per column.
const MAX_LINES: usize = 14;
/// Width of a character of the monospace label font (11px DejaVu Sans Mono and kin: 0.6em).
const CHAR_W: f64 = 6.6;

/// The color of group `i`.
fn color(i: usize) -> &'static str {
    PALETTE.get(i % PALETTE.len()).copied().unwrap_or("#7f7f7f")
}

/// Dark text on light colors, white on dark ones (WCAG relative luminance).
fn ink_on(hex: &str) -> &'static str {
    let channel = |i: usize| {
        let v = hex
            .get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map_or(0.0, |v| f64::from(v) / 255.0);
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    if l > 0.4 { INK } else { "#ffffff" }
}

/// Group (policy, peer group) -> its color index and its policy's topology key.
type GroupIndex<'a> = HashMap<(String, Option<usize>), (usize, &'a str)>;

/// One column of the picture: a domain (or an unlabelled node) and what runs there.
struct Column<'a> {
    title: String,
    subtitle: String,
    violated: bool,
    unlabelled: bool,
    groups: &'a [GroupPods],
    captions: bool,
    /// The topology key of the picture the column is in.
    key: &'a str,
}

/// A line inside a column: a node caption, or a pod with its groups.
enum Line {
    Node(String),
    Pod {
        pod: PodRef,
        groups: Vec<usize>,
        tip: String,
    },
}

/// A pod of a column while its lines are laid out.
struct Member<'a> {
    pod: &'a PodRef,
    /// (not judged by this picture's key, group index): judged groups sort first.
    groups: Vec<(bool, usize)>,
    labels: Vec<String>,
}

impl Column<'_> {
    fn lines(&self, index: &GroupIndex<'_>) -> Vec<Line> {
        // Each pod once, with every group it belongs to.
        let mut pods: BTreeMap<(&str, &str), Member> = BTreeMap::new();
        for g in self.groups {
            let Some(&(gi, key)) = index.get(&(g.policy.clone(), g.peer_group)) else {
                continue;
            };
            // The groups this picture judges come first: they give the block its color.
            let gi = (key != self.key, gi);
            for p in &g.pods {
                let member = pods
                    .entry((p.namespace.as_str(), p.name.as_str()))
                    .or_insert_with(|| Member {
                        pod: p,
                        groups: Vec::new(),
                        labels: Vec::new(),
                    });
                member.groups.push(gi);
                member
                    .labels
                    .push(group_label(&g.policy, g.role, g.peer_group));
            }
        }
        let mut list: Vec<Member> = pods.into_values().collect();
        for m in &mut list {
            m.groups.sort();
        }
        // Subjects first (group order), by name; in a wider domain, node by node.
        let node = |m: &Member| {
            if self.captions {
                m.pod.node.clone()
            } else {
                String::new()
            }
        };
        list.sort_by(|a, b| {
            (node(a), a.groups.first(), &a.pod.name).cmp(&(node(b), b.groups.first(), &b.pod.name))
        });
        let mut lines = Vec::new();
        let mut last_node: Option<&str> = None;
        for m in list {
            if self.captions && last_node != Some(m.pod.node.as_str()) {
                lines.push(Line::Node(m.pod.node.clone()));
                last_node = Some(m.pod.node.as_str());
            }
            lines.push(Line::Pod {
                tip: format!(
                    "{} on {} ({})",
                    pod_name(m.pod),
                    m.pod.node,
                    m.labels.join("; ")
                ),
                pod: m.pod.clone(),
                groups: m.groups.into_iter().map(|(_, g)| g).collect(),
            });
        }
        lines
    }
}

/// An SVG being written, with its cursor.
struct Svg {
    body: String,
    width: usize,
    y: usize,
}

impl Svg {
    fn text(&mut self, x: usize, y: usize, class: &str, text: &str) {
        let _ = write!(
            self.body,
            r#"<text x="{x}" y="{y}" class="{class}">{}</text>"#,
            escape(text)
        );
    }

    fn legend(&mut self, report: &AuditReport) {
        self.text(PAD, self.y + 14, "h", "Legend");
        self.y += 26;
        for (i, g) in report.groups.iter().enumerate() {
            let role = match g.role {
                Role::Subject => "subject".to_owned(),
                Role::Peers => format!("apartFrom[{}]", g.peer_group.unwrap_or_default()),
            };
            let _ = write!(
                self.body,
                r#"<rect x="{PAD}" y="{}" width="18" height="16" rx="3" fill="{}"/>"#,
                self.y,
                color(i)
            );
            let label = format!(
                "{} {role}: {} ({} placed)",
                g.policy,
                g.selects,
                plural(g.pods, "pod")
            );
            self.text(PAD + 28, self.y + 12, "l", &fit(&label, 150));
            self.y += 22;
        }
        let _ = write!(
            self.body,
            r#"<rect x="{PAD}" y="{}" width="18" height="16" rx="3" fill="{HIGHLIGHT}"/>"#,
            self.y
        );
        self.text(
            PAD + 28,
            self.y + 12,
            "l",
            "a domain where a subject and its peers run together: one failure takes both down",
        );
        self.y += 22;
        if !report.unlabelled.is_empty() {
            let _ = write!(
                self.body,
                r##"<rect x="{}" y="{}" width="16" height="14" rx="3" fill="#ffffff" stroke="{MUTED}" stroke-dasharray="4 3" stroke-width="1.5"/>"##,
                PAD + 1,
                self.y + 1
            );
            self.text(
                PAD + 28,
                self.y + 12,
                "l",
                "a node without the topology label: in no failure domain, cannot be judged",
            );
            self.y += 22;
        }
        self.y += 10;
    }

    /// Draws the columns in rows of [`PER_ROW`].
    fn columns(&mut self, columns: &[Column<'_>], index: &GroupIndex<'_>) {
        for row in columns.chunks(PER_ROW) {
            let lines: Vec<Vec<Line>> = row.iter().map(|c| c.lines(index)).collect();
            let tallest = lines
                .iter()
                .map(|l| l.len().min(MAX_LINES) + usize::from(l.len() > MAX_LINES))
                .max()
                .unwrap_or_default();
            let height = HEADER_H + 10 + tallest * LINE_H + 6;
            for (i, (column, lines)) in row.iter().zip(&lines).enumerate() {
                let x = PAD + i * (COL_W + GAP);
                self.column(x, height, column, lines);
            }
            self.y += height + GAP;
        }
    }

    fn column(&mut self, x: usize, height: usize, c: &Column<'_>, lines: &[Line]) {
        let y = self.y;
        let (bg, stroke, header, title_class) = if c.violated {
            (HIGHLIGHT_BG, HIGHLIGHT, HIGHLIGHT, "th w")
        } else if c.unlabelled {
            ("#ffffff", MUTED, "#f1f1f1", "th")
        } else {
            (COLUMN_BG, BORDER, HEADER_BG, "th")
        };
        let dash = if c.unlabelled {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let width = if c.violated { 3 } else { 1 };
        let _ = write!(
            self.body,
            r#"<g class="domain{}"><rect x="{x}" y="{y}" width="{COL_W}" height="{height}" rx="6" fill="{bg}" stroke="{stroke}" stroke-width="{width}"{dash}/>"#,
            if c.violated { " violated" } else { "" }
        );
        let _ = write!(
            self.body,
            r#"<path d="M{x} {} a6 6 0 0 1 6 -6 h{} a6 6 0 0 1 6 6 v{} h-{COL_W} z" fill="{header}"/>"#,
            y + 6,
            COL_W - 12,
            HEADER_H - 6
        );
        let chars = |w: usize| ((w as f64) / CHAR_W) as usize;
        self.text(
            x + 10,
            y + 18,
            title_class,
            &fit(&c.title, chars(COL_W - 20) * 6 / 7),
        );
        let sub_class = if c.violated { "ts w" } else { "ts" };
        self.text(
            x + 10,
            y + 35,
            sub_class,
            &fit(&c.subtitle, chars(COL_W - 20)),
        );
        let mut ly = y + HEADER_H + 10;
        for line in lines.iter().take(MAX_LINES) {
            match line {
                Line::Node(node) => {
                    self.text(
                        x + 10,
                        ly + 16,
                        "n",
                        &fit(&format!("node {node}"), chars(COL_W - 20)),
                    );
                }
                Line::Pod { pod, groups, tip } => {
                    let fill = color(groups.first().copied().unwrap_or_default());
                    let _ = write!(
                        self.body,
                        r#"<g class="pod"><title>{}</title><rect x="{}" y="{ly}" width="{}" height="{BLOCK_H}" rx="4" fill="{fill}"/>"#,
                        escape(tip),
                        x + 8,
                        COL_W - 16
                    );
                    // Pods in several groups carry a tab per further group.
                    let tabs = groups.len().saturating_sub(1);
                    for (t, g) in groups.iter().skip(1).enumerate() {
                        let _ = write!(
                            self.body,
                            r##"<rect x="{}" y="{}" width="7" height="{}" fill="{}" stroke="#ffffff" stroke-width="1"/>"##,
                            x + COL_W - 12 - 8 * (t + 1),
                            ly + 3,
                            BLOCK_H - 6,
                            color(*g)
                        );
                    }
                    let label = fit(&pod.name, chars(COL_W - 32 - 8 * tabs));
                    let _ = write!(
                        self.body,
                        r#"<text x="{}" y="{}" class="p" fill="{}">{}</text></g>"#,
                        x + 16,
                        ly + 15,
                        ink_on(fill),
                        escape(&label)
                    );
                }
            }
            ly += LINE_H;
        }
        if lines.len() > MAX_LINES {
            self.text(
                x + 10,
                ly + 15,
                "n",
                &format!("+{} more", lines.len() - MAX_LINES),
            );
        }
        self.body.push_str("</g>");
    }
}

/// The columns of one topology key: its domains worst first, then its unlabelled nodes.
fn key_columns<'a>(report: &'a AuditReport, key: &'a str) -> (Vec<Column<'a>>, usize) {
    let captions = key != HOSTNAME;
    let domains: Vec<&DomainRisk> = report
        .blast_radius
        .iter()
        .filter(|d| d.topology_key == key)
        .collect();
    let mut columns: Vec<Column> = domains
        .iter()
        .map(|d| {
            let pods = d.pods;
            Column {
                title: d.domain.clone(),
                subtitle: if d.policies.is_empty() {
                    if captions {
                        format!("{} · {}", plural(d.node_count, "node"), plural(pods, "pod"))
                    } else {
                        plural(pods, "protected pod")
                    }
                } else {
                    format!("⚠ violates {}", d.policies.join(", "))
                },
                violated: !d.policies.is_empty(),
                unlabelled: false,
                groups: &d.groups,
                captions,
                key,
            }
        })
        .collect();
    columns.extend(
        report
            .unlabelled
            .iter()
            .filter(|u| u.topology_key == key)
            .map(|u| Column {
                title: u.node.clone(),
                subtitle: if u.together.is_empty() {
                    "no label: cannot be judged".to_owned()
                } else {
                    "no label · subject + peers on it".to_owned()
                },
                violated: false,
                unlabelled: true,
                groups: &u.groups,
                captions: false,
                key,
            }),
    );
    let omitted = columns.len().saturating_sub(MAX_COLUMNS);
    columns.truncate(MAX_COLUMNS);
    (columns, omitted)
}

const CSS: &str = "
body{font-family:'DejaVu Sans','Segoe UI',Helvetica,Arial,sans-serif;color:#1d2329;margin:0;padding:20px 24px;background:#ffffff}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:28px 0 8px}
.verdict{font-size:16px;font-weight:bold;margin:4px 0;padding:8px 12px;border-radius:6px;display:inline-block}
.bad{background:#fdeaea;color:#a51d1e;border:2px solid #d62728}
.good{background:#e8f5e9;color:#1b5e20;border:2px solid #2e7d32}
.meta{color:#5f6b7a;margin:6px 0 14px}
svg{display:block}
svg .h{font-size:14px;font-weight:bold;fill:#1d2329}
svg .l{font-size:12px;fill:#1d2329}
svg .th{font-size:13px;font-weight:bold;fill:#1d2329}
svg .ts{font-size:11px;fill:#5f6b7a}
svg .w{fill:#ffffff}
svg .n{font-size:11px;fill:#5f6b7a;font-style:italic}
svg .p{font-size:11px;font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace}
svg .k{font-size:15px;font-weight:bold;fill:#1d2329}
svg .o{font-size:12px;fill:#5f6b7a}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d5dae1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.pods{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px}
";

/// The HTML output: one self-contained page (inline CSS and SVG, no script, nothing fetched).
pub fn html(report: &AuditReport, cluster_name: &str) -> String {
    let s = &report.summary;
    let index = group_index(report);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>apart audit: {}</title><style>{CSS}</style></head><body>\n",
        escape(cluster_name)
    );
    let _ = write!(out, "<h1>apart audit</h1>");
    if report.is_clean() {
        let _ = write!(
            out,
            r#"<div class="verdict good">Clean: no subject shares a failure domain with its peers</div>"#
        );
    } else {
        let _ = write!(
            out,
            r#"<div class="verdict bad">{} of {}: subjects and peers share a failure domain</div>"#,
            plural(s.violations, "violation"),
            escape(&policies(s.violated_policies))
        );
    }
    let _ = write!(
        out,
        r#"<p class="meta">{}: {}, {}, {} placed ({} protected by a rule)</p>"#,
        escape(cluster_name),
        policies(s.policies),
        plural(s.nodes, "node"),
        plural(s.placed_pods, "pod"),
        s.protected_pods
    );

    out.push_str(&svg_element(report, &index, ""));

    if !report.violations.is_empty() {
        out.push_str("<h2>Violations, worst first</h2><table><tr><th>policy</th><th>domain</th><th>subject</th><th>peers</th></tr>");
        for v in &report.violations {
            let _ = write!(
                out,
                "<tr><td>{}<br><small>{}</small></td><td>{}={}</td><td class=\"pods\">{}</td><td class=\"pods\">{}<br><small>apartFrom[{}]: {}</small></td></tr>",
                escape(&v.policy),
                escape(&format!("{:?}", v.strength).to_lowercase()),
                escape(&v.topology_key),
                escape(&v.domain),
                escape(&pod_list(&v.subjects, 20, true)),
                escape(&pod_list(&v.peers, 20, true)),
                v.peer_group,
                escape(&v.peers_select)
            );
        }
        out.push_str("</table>");
    }
    if !report.blast_radius.is_empty() {
        out.push_str("<h2>Blast radius, worst first</h2><p class=\"meta\">Ranked by policies violated, then groups lost whole, groups hit, pods.</p><table><tr><th>#</th><th>domain</th><th>violates</th><th>goes down with it</th></tr>");
        for (i, d) in report.blast_radius.iter().take(50).enumerate() {
            let groups: Vec<String> = d
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "{}: {}",
                        group_label(&g.policy, g.role, g.peer_group),
                        share(g)
                    )
                })
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}={}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                escape(&d.topology_key),
                escape(&d.domain),
                escape(&d.policies.join(", ")),
                groups
                    .iter()
                    .map(|g| escape(g))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        out.push_str("</table>");
        if report.blast_radius.len() > 50 {
            let _ = write!(
                out,
                "<p class=\"meta\">{} more in the JSON output.</p>",
                plural(report.blast_radius.len() - 50, "domain")
            );
        }
    }
    if !report.unlabelled.is_empty() {
        out.push_str("<h2>Cannot be judged</h2><p class=\"meta\">These nodes lack the policy's topology label: they are in no failure domain.</p><table><tr><th>node</th><th>missing label</th><th>protected pods</th></tr>");
        for u in &report.unlabelled {
            let pods: Vec<String> = u
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "{}: {}",
                        group_label(&g.policy, g.role, g.peer_group),
                        pod_list(&g.pods, 10, false)
                    )
                })
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&u.node),
                escape(&u.topology_key),
                pods.iter()
                    .map(|p| escape(p))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        out.push_str("</table>");
    }
    out.push_str("\n</body></html>\n");
    out
}

/// Each group's index and topology key, by policy and peer group.
fn group_index(report: &AuditReport) -> GroupIndex<'_> {
    report
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                (g.policy.clone(), g.peer_group),
                (i, g.topology_key.as_str()),
            )
        })
        .collect()
}

/// The picture alone, as one self-contained SVG document (its styles inside it): what the JS
/// build shows beside the report.
pub fn svg(report: &AuditReport) -> String {
    let index = group_index(report);
    let style: String = CSS
        .lines()
        .filter(|l| l.starts_with("svg"))
        .collect::<Vec<_>>()
        .join("");
    svg_element(report, &index, &format!("<style>{style}</style>"))
}

/// The picture: legend, then per topology key its domains as columns; `style` opens it.
fn svg_element(report: &AuditReport, index: &GroupIndex<'_>, style: &str) -> String {
    // The picture: legend, then per topology key its domains as columns.
    let width = 2 * PAD + PER_ROW * COL_W + (PER_ROW - 1) * GAP;
    let mut svg = Svg {
        body: String::new(),
        width,
        y: 8,
    };
    svg.legend(report);
    for key in &report.summary.topology_keys {
        let (columns, omitted) = key_columns(report, &key.topology_key);
        svg.text(
            PAD,
            svg.y + 16,
            "k",
            &format!("Failure domains by {}", key.topology_key),
        );
        let drawn = columns.iter().filter(|c| !c.unlabelled).count();
        let empty = key.domains.saturating_sub(key.domains_with_protected_pods);
        let mut note = format!(
            "{} of {} drawn, worst first",
            drawn,
            plural(key.domains, "domain")
        );
        if empty > 0 {
            let _ = write!(note, "; {empty} hold no subject or peer pod");
        }
        if omitted > 0 {
            let _ = write!(note, "; {omitted} more not drawn (see the tables)");
        }
        if key.unlabelled_nodes > 0 {
            let _ = write!(
                note,
                "; {} without the label",
                plural(key.unlabelled_nodes, "node")
            );
        }
        svg.text(PAD, svg.y + 34, "o", &note);
        svg.y += 46;
        if columns.is_empty() {
            svg.text(
                PAD,
                svg.y + 14,
                "o",
                "no subject or peer pod runs on a labelled node",
            );
            svg.y += 26;
        }
        svg.columns(&columns, index);
        svg.y += 8;
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="failure domains with subject and peer pods">{style}{}</svg>"#,
        svg.body,
        w = svg.width,
        h = svg.y
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_fits() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(fit("short", 10), "short");
        // Two thirds of the room for the workload's name, one third for the pod's suffix.
        assert_eq!(
            fit("kustomize-controller-7b5d9f8c4-x2x9k", 25),
            "kustomize-contro…c4-x2x9k"
        );
    }

    #[test]
    fn error_paths_are_found_in_messages() {
        let path = error_path(
            "cannot read the cluster snapshot: $.items[3].metadata.labels: invalid type: integer",
        );
        assert_eq!(
            path.map(|p| p.to_string()).as_deref(),
            Some("$.items[3].metadata.labels")
        );
        assert!(error_path("no path here").is_none());
    }

    #[test]
    fn ink_contrast() {
        assert_eq!(ink_on("#ffffff"), INK);
        assert_eq!(ink_on("#1f77b4"), "#ffffff");
    }
}
