//! JSONPath queries (RFC 9535) of value targets: `affinityPath`, `namespacePath` and
//! `podLabelsPath` may use wildcards (`.*`, `[*]`), descendants (`..`), filters
//! (`[?@.name == 'server']`) and slices, evaluated by `jsonpath-rust`, so the Kubewarden
//! module and the CLI read a custom resource the same way.
//!
//! A query is parsed once, when its policy is compiled. A *singular* query (names and
//! non-negative indexes only) is evaluated as a [`JsonPath`], as before queries: one subject,
//! whether the node is there or not. Any other query names each node it selects by its
//! normalized path, read back into a [`JsonPath`], which is where findings point and fixes
//! write.
//!
//! The affinity query selects *subjects* ([`Query::subjects`]): when its last segment is one
//! member name (`.affinity`, `['affinity']`), every object the rest of the query selects holds
//! a subject, whose affinity is that member, present or not (so a fix can create it);
//! otherwise the subjects are exactly the selected nodes (`$..affinity`: only the `affinity`
//! members that exist).

use std::fmt;

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::{JpQuery, Segment as JpSegment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

use crate::source::path::{JsonPath, Segment};

/// A parsed JSONPath query, with the text it was written as.
#[derive(Debug, Clone)]
pub struct Query {
    /// As written.
    text: String,
    /// Written with `@`: evaluated at the node that holds a subject's affinity.
    relative: bool,
    /// How it is evaluated.
    plan: Plan,
    /// The query's leading names and indexes: where a query that selects nothing points.
    prefix: JsonPath,
}

#[derive(Debug, Clone)]
enum Plan {
    /// Names and non-negative indexes only.
    Singular(JsonPath),
    /// The last segment is one member name: the rest selects the holders.
    Holders {
        /// The query without its last segment.
        holders: JpQuery,
        /// The member that holds each subject's affinity.
        name: String,
    },
    /// Every selected node is a subject.
    Nodes(JpQuery),
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {text:?}{}: {reason}", at.map(|a| format!(" at character {a}")).unwrap_or_default())]
pub struct QueryError {
    /// The query as written.
    pub text: String,
    /// 0-based character offset of the problem, when the parser says.
    pub at: Option<usize>,
    /// What was expected.
    pub reason: String,
}

/// What an affinity query selects in one object.
#[derive(Debug)]
pub enum Selection<'v> {
    /// The subjects: each one's affinity path and value (`None`: not there).
    Subjects(Vec<(JsonPath, Option<&'v Value>)>),
    /// No subject at all (a non-singular query only): the deepest node of the query's
    /// leading names and indexes that the object has.
    Nothing(JsonPath),
}

/// One selector as a concrete step, when it is one.
fn step(selector: &Selector) -> Option<Segment> {
    match selector {
        Selector::Name(n) => Some(Segment::Name(n.clone())),
        Selector::Index(i) => usize::try_from(*i).ok().map(Segment::Index),
        _ => None,
    }
}

/// A child segment of one name or non-negative index, as a concrete step.
fn concrete(segment: &JpSegment) -> Option<Segment> {
    match segment {
        JpSegment::Selector(s) => step(s),
        JpSegment::Selectors(list) => match list.as_slice() {
            [one] => step(one),
            _ => None,
        },
        JpSegment::Descendant(_) => None,
    }
}

/// The member name of a child segment with a single name selector.
fn single_name(segment: &JpSegment) -> Option<String> {
    match concrete(segment)? {
        Segment::Name(n) => Some(n),
        Segment::Index(_) => None,
    }
}

/// Does this segment select only by index or slice (nothing in a mapping)?
fn indexes_only(segment: &JpSegment) -> bool {
    let index = |s: &Selector| matches!(s, Selector::Index(_) | Selector::Slice(..));
    match segment {
        JpSegment::Selector(s) => index(s),
        JpSegment::Selectors(list) => list.iter().all(index),
        JpSegment::Descendant(_) => false,
    }
}

/// pest's rule names, as words (`bracketed_selection` → `bracketed selection`).
fn readable(message: &str) -> String {
    message
        .replace("ALPHA", "a letter")
        .replace("DIGIT", "a digit")
        .replace('_', " ")
}

/// `$.a.b.c`, member-name shorthands only, as a path; `None` for any other form. Its grammar
/// is RFC 9535's exactly, so reading it here is what the query engine's parser would read.
fn dotted(absolute: &str) -> Option<JsonPath> {
    let rest = absolute.strip_prefix('$')?;
    let mut path = JsonPath::root();
    if !rest.is_empty() {
        for name in rest.strip_prefix('.')?.split('.') {
            let mut chars = name.chars();
            let first = chars.next()?;
            if !crate::source::path::is_name_char(first, true)
                || !chars.all(|c| crate::source::path::is_name_char(c, false))
            {
                return None;
            }
            path = path.name(name);
        }
    }
    Some(path)
}

/// The plan of an absolute query (`$...`) and its leading names and indexes.
fn plan(
    absolute: &str,
    error: impl Fn(Option<usize>, String) -> QueryError,
) -> Result<(Plan, JsonPath), QueryError> {
    // The form nearly every value target is written in skips the query engine's parser, which
    // costs tens of µs per path at every settings compile (each fresh module instance's).
    match dotted(absolute) {
        Some(path) => Ok((Plan::Singular(path.clone()), path)),
        None => engine_plan(absolute, error),
    }
}

/// [`plan`] by jsonpath-rust's parser.
fn engine_plan(
    absolute: &str,
    error: impl Fn(Option<usize>, String) -> QueryError,
) -> Result<(Plan, JsonPath), QueryError> {
    let parsed = parse_json_path(absolute).map_err(|e| match e {
        JsonPathError::PestError(e) => {
            let byte = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((start, _)) => start,
            };
            let at = absolute.get(..byte).map_or(0, |s| s.chars().count());
            error(Some(at), readable(&e.variant.message()))
        }
        other => error(None, other.to_string()),
    })?;
    let mut prefix = JsonPath::root();
    for segment in &parsed.segments {
        match concrete(segment) {
            Some(Segment::Name(n)) => prefix = prefix.name(&n),
            Some(Segment::Index(i)) => prefix = prefix.index(i),
            None => break,
        }
    }
    let plan = if prefix.segments().len() == parsed.segments.len() {
        Plan::Singular(prefix.clone())
    } else {
        match parsed.segments.split_last() {
            Some((last, rest)) => match single_name(last) {
                Some(name) => Plan::Holders {
                    name,
                    holders: JpQuery::new(rest.to_vec()),
                },
                None => Plan::Nodes(parsed),
            },
            None => Plan::Nodes(parsed),
        }
    };
    Ok((plan, prefix))
}

impl Query {
    /// Parses an absolute query (`$...`).
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        Self::parse_with(text, false)
    }

    /// Parses an absolute query, or one relative to the node holding a subject's affinity
    /// (`@.namespace`).
    pub fn parse_relative(text: &str) -> Result<Self, QueryError> {
        Self::parse_with(text, true)
    }

    fn parse_with(text: &str, relative_allowed: bool) -> Result<Self, QueryError> {
        let error = |at: Option<usize>, reason: String| QueryError {
            text: text.to_owned(),
            at,
            reason,
        };
        let (relative, absolute) = match text.strip_prefix('@') {
            Some(rest) if relative_allowed => (true, format!("${rest}")),
            _ if text.starts_with('$') => (false, text.to_owned()),
            _ => {
                let starts = if relative_allowed {
                    "a JSONPath starts with '$' (or '@': relative to the node holding the affinity)"
                } else {
                    "a JSONPath starts with '$'"
                };
                return Err(error(Some(0), starts.to_owned()));
            }
        };
        let (plan, prefix) = plan(&absolute, error)?;
        Ok(Self {
            text: text.to_owned(),
            relative,
            plan,
            prefix,
        })
    }

    /// The query as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Is it relative to the node holding the affinity (`@...`)?
    pub fn relative(&self) -> bool {
        self.relative
    }

    /// The path, when the query is an absolute singular one (names and non-negative indexes
    /// only): the one node it can select.
    pub fn singular(&self) -> Option<&JsonPath> {
        match &self.plan {
            Plan::Singular(p) if !self.relative => Some(p),
            _ => None,
        }
    }

    /// Is it singular (names and non-negative indexes only), absolute or relative?
    pub fn is_singular(&self) -> bool {
        self.singular_plan().is_some()
    }

    /// The path of a singular plan, relative or not.
    fn singular_plan(&self) -> Option<&JsonPath> {
        match &self.plan {
            Plan::Singular(p) => Some(p),
            _ => None,
        }
    }

    /// The query's leading names and indexes, as a path.
    pub fn prefix(&self) -> &JsonPath {
        &self.prefix
    }

    /// The nodes `query` selects in `value`, by concrete path (each once, in the engine's
    /// order).
    fn nodes<'v>(query: &JpQuery, value: &'v Value) -> Vec<(JsonPath, &'v Value)> {
        let mut out: Vec<(JsonPath, &'v Value)> = Vec::new();
        for found in js_path_process(query, value).unwrap_or_default() {
            // The engine's normalized paths always read; a path that did not could not be
            // written at, so it is not a subject.
            if let Ok(path) = JsonPath::from_normalized(&found.path)
                && !out.iter().any(|(p, _)| *p == path)
            {
                out.push((path, found.val));
            }
        }
        out
    }

    /// What a query that is not singular selects at `at`: the holders' member (`Some`: the
    /// member, `None`: the holder has none) or each node. Empty for a singular one.
    fn selected<'v>(&self, at: &'v Value) -> Vec<(JsonPath, Option<&'v Value>)> {
        match &self.plan {
            Plan::Singular(_) => Vec::new(),
            Plan::Holders { holders, name } => Self::nodes(holders, at)
                .into_iter()
                .filter_map(|(path, holder)| {
                    let member = holder.as_object()?.get(name.as_str());
                    Some((path.name(name), member))
                })
                .collect(),
            Plan::Nodes(query) => Self::nodes(query, at)
                .into_iter()
                .map(|(path, v)| (path, Some(v)))
                .collect(),
        }
    }

    /// The subjects this affinity query selects in `value` (see the module's doc).
    pub fn subjects<'v>(&self, value: &'v Value) -> Selection<'v> {
        if let Some(p) = self.singular_plan() {
            return Selection::Subjects(vec![(p.clone(), p.get(value))]);
        }
        let subjects = self.selected(value);
        if !subjects.is_empty() {
            return Selection::Subjects(subjects);
        }
        let mut at = JsonPath::root();
        for segment in self.prefix.segments() {
            let next = match segment {
                Segment::Name(n) => at.name(n),
                Segment::Index(i) => at.index(*i),
            };
            if next.get(value).is_none() {
                break;
            }
            at = next;
        }
        Selection::Nothing(at)
    }

    /// The non-null values this query selects, by concrete path: over the whole object
    /// `root`, or for a relative query at `holder` (the node holding a subject's affinity,
    /// with its path; none: nothing is selected).
    pub fn values<'v>(
        &self,
        root: &'v Value,
        holder: Option<(&JsonPath, &'v Value)>,
    ) -> Vec<(JsonPath, &'v Value)> {
        let (base, at) = match (self.relative, holder) {
            (false, _) => (JsonPath::root(), root),
            (true, Some((path, value))) => (path.clone(), value),
            (true, None) => return Vec::new(),
        };
        let found: Vec<(JsonPath, &Value)> = match self.singular_plan() {
            Some(p) => p.get(at).map(|v| vec![(p.clone(), v)]).unwrap_or_default(),
            None => self
                .selected(at)
                .into_iter()
                .filter_map(|(p, v)| v.map(|v| (p, v)))
                .collect(),
        };
        found
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(p, v)| (base.join(&p), v))
            .collect()
    }

    /// How many segments the query has.
    fn depth(&self) -> usize {
        match &self.plan {
            Plan::Singular(p) => p.segments().len(),
            Plan::Holders { holders, .. } => holders.segments.len() + 1,
            Plan::Nodes(q) => q.segments.len(),
        }
    }

    /// Does the first segment select by index or slice only?
    fn first_indexes(&self) -> bool {
        match &self.plan {
            Plan::Singular(p) => matches!(p.segments().first(), Some(Segment::Index(_))),
            Plan::Holders { holders: q, .. } | Plan::Nodes(q) => {
                q.segments.first().is_some_and(indexes_only)
            }
        }
    }

    /// Why this query can never select anything in an object of `kind`, when that can be
    /// known without the object: its first segment reads an index of the object (which is a
    /// mapping), or it reads below a member that is always a string (`apiVersion`, `kind`,
    /// `metadata.name`, `metadata.namespace`).
    pub fn impossible(&self, kind: &str) -> Option<String> {
        if self.relative {
            return None;
        }
        if self.first_indexes() {
            return Some(format!(
                "a {kind} is a mapping, never a list, so the query's first segment (an array index or slice) selects nothing in any {kind}"
            ));
        }
        let names: Vec<&str> = self
            .prefix
            .segments()
            .iter()
            .map(|s| match s {
                Segment::Name(n) => n.as_str(),
                Segment::Index(_) => "",
            })
            .collect();
        let (string_member, depth) = match names.as_slice() {
            [n @ ("apiVersion" | "kind"), ..] => (format!("$.{n}"), 1),
            ["metadata", n @ ("name" | "namespace"), ..] => (format!("$.metadata.{n}"), 2),
            _ => return None,
        };
        (self.depth() > depth).then(|| {
            format!(
                "{string_member} of a {kind} is a string, so the query, which reads below it, selects nothing in any {kind}"
            )
        })
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_read_as_the_query_engine_reads_them() {
        let engine = |text: &str| match engine_plan(text, |_, r| QueryError {
            text: text.to_owned(),
            at: None,
            reason: r,
        })
        .ok()
        {
            Some((Plan::Singular(p), _)) => Some(p),
            _ => None,
        };
        for text in [
            "$",
            "$.spec",
            "$.spec.values.authentication.mutual.spire.install.server.affinity",
            "$._a1.b_2",
            "$.ünï.日本",
        ] {
            let fast = dotted(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, engine(text), "{text}");
        }
        // Anything else is the engine's to read (or refuse).
        for text in [
            "$.", "$..a", "$.1a", "$.a-b", "$.a.", "$.a[0]", "$.*", "$['a']", "$ .a", "$.a b",
            "a.b",
        ] {
            assert_eq!(dotted(text), None, "{text}");
        }
    }

    fn chart() -> Value {
        json!({"spec": {"values": {
            "global": "x",
            "server": {"replicas": 1, "affinity": {"podAntiAffinity": {}}},
            "repoServer": {},
            "controller": {"affinity": null},
            "components": [
                {"name": "server", "namespace": "a", "affinity": {}},
                {"name": "web", "labels": {"app": "web"}}
            ],
            "a.b": {"it's": {"affinity": {}}},
            "nested": {"deep": {"affinity": {"k": 1}}}
        }}})
    }

    fn paths(query: &str) -> Vec<String> {
        let doc = chart();
        match Query::parse(query).unwrap().subjects(&doc) {
            Selection::Subjects(s) => s.iter().map(|(p, _)| p.to_string()).collect(),
            Selection::Nothing(at) => vec![format!("nothing at {at}")],
        }
    }

    #[test]
    fn holders_are_the_objects_whose_member_the_query_names() {
        // `global` is a string: not a holder. `repoServer` has no affinity yet: a subject.
        assert_eq!(
            paths("$.spec.values.*.affinity"),
            [
                "$.spec.values.server.affinity",
                "$.spec.values.repoServer.affinity",
                "$.spec.values.controller.affinity",
                "$.spec.values['a.b'].affinity",
                "$.spec.values.nested.affinity",
            ]
        );
        assert_eq!(
            paths("$.spec.values.components[*]['affinity']"),
            [
                "$.spec.values.components[0].affinity",
                "$.spec.values.components[1].affinity"
            ]
        );
        assert_eq!(
            paths("$.spec.values.components[?@.name == 'server'].affinity"),
            ["$.spec.values.components[0].affinity"]
        );
        assert_eq!(
            paths("$.spec.values.components[-1:].affinity"),
            ["$.spec.values.components[1].affinity"]
        );
        let doc = chart();
        let Selection::Subjects(s) = Query::parse("$.spec.values.*.affinity")
            .unwrap()
            .subjects(&doc)
        else {
            panic!("subjects")
        };
        assert_eq!(s[1].1, None, "absent");
        assert_eq!(s[2].1, Some(&Value::Null), "null");
    }

    #[test]
    fn a_descendant_or_wildcard_last_selects_only_what_exists() {
        assert_eq!(
            paths("$..affinity"),
            [
                "$.spec.values.server.affinity",
                "$.spec.values.controller.affinity",
                "$.spec.values.components[0].affinity",
                "$.spec.values['a.b']['it\\'s'].affinity",
                "$.spec.values.nested.deep.affinity",
            ]
        );
        assert_eq!(
            paths("$.spec.values.server[*]"),
            [
                "$.spec.values.server.replicas",
                "$.spec.values.server.affinity"
            ]
        );
        // The same node twice is one subject.
        assert_eq!(
            paths("$.spec.values['server','server']"),
            ["$.spec.values.server"]
        );
    }

    #[test]
    fn nothing_selected_points_at_the_deepest_present_prefix() {
        assert_eq!(
            paths("$.spec.values.missing[*].affinity"),
            ["nothing at $.spec.values"]
        );
        assert_eq!(paths("$..nowhere"), ["nothing at $"]);
        assert_eq!(
            paths("$.spec.values.components[?@.name == 'db'].affinity"),
            ["nothing at $.spec.values.components"]
        );
        // A singular query always has its one subject, there or not.
        assert_eq!(
            paths("$.spec.values.missing.affinity"),
            ["$.spec.values.missing.affinity"]
        );
        assert_eq!(
            Query::parse("$['spec'].values[0]")
                .unwrap()
                .singular()
                .map(ToString::to_string),
            Some("$.spec.values[0]".to_owned())
        );
        assert!(Query::parse("$.a[-1]").unwrap().singular().is_none());
    }

    #[test]
    fn escaped_names_come_back_as_the_same_members() {
        let doc = json!({"x": {"it's": {"a\\b": {"tab\there": {"\u{1}": 1}}}}});
        let q = Query::parse("$..*").unwrap();
        let found = q.values(&doc, None);
        for (path, value) in &found {
            assert_eq!(path.get(&doc), Some(*value), "{path}");
            assert_eq!(
                JsonPath::parse(&path.to_string()).unwrap(),
                *path,
                "{path} reads back"
            );
        }
        assert_eq!(found.len(), 5);
        assert_eq!(
            found[4].0.to_string(),
            "$.x['it\\'s']['a\\\\b']['tab\\there']['\\u0001']"
        );
    }

    #[test]
    fn relative_queries_read_at_the_holder() {
        let doc = chart();
        let q = Query::parse_relative("@.namespace").unwrap();
        let holder = JsonPath::parse("$.spec.values.components[0]").unwrap();
        let at = holder.get(&doc).unwrap();
        let found = q.values(&doc, Some((&holder, at)));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].0.to_string(),
            "$.spec.values.components[0].namespace"
        );
        assert!(q.values(&doc, None).is_empty());
        assert!(Query::parse("@.namespace").is_err());
        // Absolute ones read the whole object; nulls count as absent.
        let q = Query::parse_relative("$.spec.values.controller.affinity").unwrap();
        assert!(q.values(&doc, Some((&holder, at))).is_empty());
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = Query::parse("$.spec.values.").unwrap_err();
        assert_eq!(e.at, Some(14));
        assert!(
            e.to_string()
                .starts_with("invalid JSONPath \"$.spec.values.\" at character 14: expected"),
            "{e}"
        );
        let e = Query::parse("spec.values").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid JSONPath \"spec.values\" at character 0: a JSONPath starts with '$'"
        );
        let e = Query::parse_relative("@.a[?@.b ~ 'x']").unwrap_err();
        assert_eq!(e.at, Some(9), "{e}");
    }

    #[test]
    fn impossible_queries_are_known_by_kind() {
        let why = |q: &str| Query::parse(q).unwrap().impossible("HelmRelease");
        assert!(why("$[0].affinity").unwrap().contains("never a list"));
        assert!(why("$[*][0:1]").is_none());
        assert!(why("$[0:2]").is_some());
        assert!(
            why("$.kind.x")
                .unwrap()
                .contains("$.kind of a HelmRelease is a string")
        );
        assert!(why("$.metadata.name[*]").is_some());
        assert!(why("$.kind").is_none());
        assert!(why("$.metadata.labels.x").is_none());
        assert!(why("$.spec..affinity").is_none());
        assert!(
            Query::parse_relative("@[0]")
                .unwrap()
                .impossible("X")
                .is_none()
        );
    }
}
