//! Label selectors exactly as Kubernetes evaluates them, plus the set reasoning apart needs
//! to prove things about selectors without seeing pods.
//!
//! `metav1.LabelSelector` semantics: a *null* selector selects nothing, an empty one (`{}`)
//! selects everything; `matchLabels` and `matchExpressions` are ANDed; operators are `In`,
//! `NotIn`, `Exists`, `DoesNotExist` (`NotIn` also matches pods without the key).
//!
//! On top of matching, a [`Selector`] answers two questions about *all* label sets at once:
//! [`Selector::implies`] (every set this one selects, the other selects too: "the term covers
//! the peers") and [`Selector::intersects`] (some set satisfies both: "the term can match at
//! least one peer"). Both are exact for conjunctions of requirements.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::MapAccess;
use serde::{Deserialize, Deserializer};

use crate::kube::strict::{self, Members, Strict};

use crate::kube::names;
use crate::source::path::JsonPath;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Reads a `LabelSelector` (for `#[serde(deserialize_with)]` on an optional member: null
/// or absent is `None`) as the API server does: an unknown member is an error, which
/// `k8s-openapi`'s own reader would skip.
pub fn strict_selector<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LabelSelector>, D::Error> {
    Option::<Strict<SelectorMembers>>::deserialize(d).map(|s| s.map(|s| s.0))
}

/// Reads a `LabelSelector` from JSON text, strictly (see [`strict_selector`]).
pub fn read_selector(text: &str) -> Result<LabelSelector, serde_json::Error> {
    serde_json::from_str::<Strict<SelectorMembers>>(text).map(|s| s.0)
}

/// The strict reader of a `LabelSelector`.
pub(crate) struct SelectorMembers;

impl Members for SelectorMembers {
    type Value = LabelSelector;
    // The names derive gave apart's own structs, so that messages stay as they were.
    const NAME: &'static str = "LabelSelectorSpec";
    const FIELDS: &'static [&'static str] = &["matchLabels", "matchExpressions"];

    fn member<'de, A: MapAccess<'de>>(
        s: &mut LabelSelector,
        map: &mut A,
        field: usize,
    ) -> Result<(), A::Error> {
        if field == 0 {
            s.match_labels = map.next_value()?;
        } else {
            s.match_expressions = strict::list::<RequirementMembers, A>(map)?;
        }
        Ok(())
    }
}

// The name derive gave apart's own struct, so that messages stay as they were.
strict::requirement_members!(
    RequirementMembers,
    LabelSelectorRequirement,
    "RequirementSpec"
);

/// A selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent, or present with none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A compiled requirement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (empty for `Exists`/`DoesNotExist`).
    pub values: BTreeSet<String>,
}

/// Why a written selector is not valid, with the field it concerns relative to the selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorProblem {
    /// Path relative to the selector, such as `$.matchExpressions[0].values`.
    pub field: JsonPath,
    /// What is wrong and what is expected.
    pub message: String,
}

/// A compiled selector: `None` requirements means the null selector (selects nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Option<Vec<Requirement>>,
}

/// Everything a conjunction of requirements says about one key.
#[derive(Debug, Clone, Default)]
struct KeyFacts {
    must_exist: bool,
    must_not_exist: bool,
    /// The value must be one of these (intersection of all `In`s), when any `In` applies.
    allowed: Option<BTreeSet<String>>,
    /// The value must be none of these (union of all `NotIn`s).
    forbidden: BTreeSet<String>,
}

impl KeyFacts {
    fn add(&mut self, req: &Requirement) {
        match req.operator {
            Operator::In => {
                self.must_exist = true;
                self.allowed = Some(match self.allowed.take() {
                    Some(prev) => prev.intersection(&req.values).cloned().collect(),
                    None => req.values.clone(),
                });
            }
            Operator::NotIn => self.forbidden.extend(req.values.iter().cloned()),
            Operator::Exists => self.must_exist = true,
            Operator::DoesNotExist => self.must_not_exist = true,
        }
    }

    /// Values the key may take, when that set is finite.
    fn possible(&self) -> Option<BTreeSet<&String>> {
        self.allowed
            .as_ref()
            .map(|a| a.iter().filter(|v| !self.forbidden.contains(*v)).collect())
    }

    fn satisfiable(&self) -> bool {
        if self.must_exist && self.must_not_exist {
            return false;
        }
        !matches!(self.possible(), Some(p) if p.is_empty())
    }

    /// Does every label set with these facts satisfy `req`?
    fn entails(&self, req: &Requirement) -> bool {
        match req.operator {
            Operator::Exists => self.must_exist,
            Operator::DoesNotExist => self.must_not_exist,
            Operator::In => {
                self.must_exist
                    && matches!(self.possible(), Some(p) if p.iter().all(|v| req.values.contains(*v)))
            }
            Operator::NotIn => {
                self.must_not_exist
                    || req.values.iter().all(|v| self.forbidden.contains(v))
                    || matches!(self.possible(), Some(p) if p.iter().all(|v| !req.values.contains(*v)))
            }
        }
    }
}

impl Selector {
    /// The null selector: selects nothing.
    pub fn nothing() -> Self {
        Self { requirements: None }
    }

    /// The empty selector: selects everything.
    pub fn everything() -> Self {
        Self {
            requirements: Some(Vec::new()),
        }
    }

    /// A selector from already-valid requirements (used for derived selectors).
    pub fn from_requirements(requirements: Vec<Requirement>) -> Self {
        Self {
            requirements: Some(requirements),
        }
    }

    /// `key In [value]`.
    pub fn label_equals(key: &str, value: &str) -> Requirement {
        Requirement {
            key: key.to_owned(),
            operator: Operator::In,
            values: BTreeSet::from([value.to_owned()]),
        }
    }

    /// Compiles a written selector (`None` = null), reporting every API-server validation
    /// problem rather than the first.
    pub fn compile(spec: Option<&LabelSelector>) -> Result<Self, Vec<SelectorProblem>> {
        let Some(spec) = spec else {
            return Ok(Self::nothing());
        };
        let mut problems = Vec::new();
        let mut requirements = Vec::new();
        for (key, value) in spec.match_labels.iter().flatten() {
            if let Err(m) = names::label_key(key) {
                problems.push(problem(JsonPath::root().name("matchLabels").name(key), m));
            }
            if let Err(m) = names::label_value(value) {
                problems.push(problem(JsonPath::root().name("matchLabels").name(key), m));
            }
            requirements.push(Self::label_equals(key, value));
        }
        for (i, expr) in spec.match_expressions.iter().flatten().enumerate() {
            let at = |f: &str| JsonPath::root().name("matchExpressions").index(i).name(f);
            if let Err(m) = names::label_key(&expr.key) {
                problems.push(problem(at("key"), m));
            }
            let values = expr.values.as_deref().unwrap_or_default();
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    problems.push(problem(
                        at("operator"),
                        format!(
                            "unsupported operator {other:?}: use In, NotIn, Exists or DoesNotExist (operators are case-sensitive)"
                        ),
                    ));
                    continue;
                }
            };
            match operator {
                Operator::In | Operator::NotIn if values.is_empty() => problems.push(problem(
                    at("values"),
                    format!("{} needs at least one value", expr.operator),
                )),
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    problems.push(problem(
                        at("values"),
                        format!("{} must not have values: remove them", expr.operator),
                    ))
                }
                _ => {}
            }
            for (j, v) in values.iter().enumerate() {
                if let Err(m) = names::label_value(v) {
                    problems.push(problem(at("values").index(j), m));
                }
            }
            requirements.push(Requirement {
                key: expr.key.clone(),
                operator,
                values: values.iter().cloned().collect(),
            });
        }
        if problems.is_empty() {
            Ok(Self::from_requirements(requirements))
        } else {
            Err(problems)
        }
    }

    /// True for the null selector.
    pub fn is_nothing(&self) -> bool {
        self.requirements.is_none()
    }

    /// True for a selector with no requirements (selects everything).
    pub fn is_everything(&self) -> bool {
        matches!(&self.requirements, Some(r) if r.is_empty())
    }

    /// The requirements (empty for the null selector).
    pub fn requirements(&self) -> &[Requirement] {
        self.requirements.as_deref().unwrap_or_default()
    }

    /// This selector with more requirements ANDed in (the null selector stays null).
    pub fn and(&self, more: impl IntoIterator<Item = Requirement>) -> Self {
        match &self.requirements {
            None => Self::nothing(),
            Some(r) => Self::from_requirements(r.iter().cloned().chain(more).collect()),
        }
    }

    /// Does the selector select a pod (or namespace) with these labels?
    pub fn matches<'a>(&self, mut label: impl FnMut(&str) -> Option<&'a str>) -> bool {
        let Some(reqs) = &self.requirements else {
            return false;
        };
        reqs.iter().all(|r| {
            let value = label(&r.key);
            match r.operator {
                Operator::In => value.is_some_and(|v| r.values.contains(v)),
                Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }

    /// [`Selector::matches`] over a label map.
    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches(|k| labels.get(k).map(String::as_str))
    }

    fn facts(&self) -> BTreeMap<&str, KeyFacts> {
        let mut facts: BTreeMap<&str, KeyFacts> = BTreeMap::new();
        for r in self.requirements() {
            facts.entry(r.key.as_str()).or_default().add(r);
        }
        facts
    }

    /// Can any label set satisfy this selector?
    pub fn satisfiable(&self) -> bool {
        !self.is_nothing() && self.facts().values().all(KeyFacts::satisfiable)
    }

    /// Does every label set this selector selects also satisfy `other`?
    /// (A selector that selects nothing implies everything.)
    pub fn implies(&self, other: &Selector) -> bool {
        if !self.satisfiable() {
            return true;
        }
        let Some(theirs) = &other.requirements else {
            return false;
        };
        let facts = self.facts();
        let none = KeyFacts::default();
        theirs
            .iter()
            .all(|r| facts.get(r.key.as_str()).unwrap_or(&none).entails(r))
    }

    /// Is there a label set that both selectors select?
    pub fn intersects(&self, other: &Selector) -> bool {
        self.and(other.requirements().iter().cloned()).satisfiable() && !other.is_nothing()
    }

    /// Keys this selector constrains.
    pub fn keys(&self) -> BTreeSet<&str> {
        self.requirements().iter().map(|r| r.key.as_str()).collect()
    }

    /// If the selector pins `key` to a finite set of values, that set.
    pub fn pinned_values(&self, key: &str) -> Option<BTreeSet<String>> {
        let facts = self.facts();
        facts
            .get(key)
            .and_then(KeyFacts::possible)
            .map(|p| p.into_iter().cloned().collect())
    }

    /// A short human form: `app.kubernetes.io/part-of=flux, tier notin (db)`; `<none>` for
    /// null and `<all>` for empty.
    pub fn describe(&self) -> String {
        match &self.requirements {
            None => "<none: a null selector matches no pod>".to_owned(),
            Some(r) if r.is_empty() => "<all pods>".to_owned(),
            Some(r) => r
                .iter()
                .map(describe_requirement)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

fn describe_requirement(r: &Requirement) -> String {
    let values = || r.values.iter().cloned().collect::<Vec<_>>().join(", ");
    match r.operator {
        Operator::In if r.values.len() == 1 => format!("{}={}", r.key, values()),
        Operator::In => format!("{} in ({})", r.key, values()),
        Operator::NotIn => format!("{} notin ({})", r.key, values()),
        Operator::Exists => r.key.clone(),
        Operator::DoesNotExist => format!("!{}", r.key),
    }
}

fn problem(field: JsonPath, message: String) -> SelectorProblem {
    SelectorProblem { field, message }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn sel(json: &str) -> Selector {
        let spec: Option<LabelSelector> = serde_json::from_str(json).unwrap();
        Selector::compile(spec.as_ref()).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn null_selects_nothing_and_empty_selects_everything() {
        assert!(!sel("null").matches_map(&labels(&[])));
        assert!(sel("{}").matches_map(&labels(&[])));
        assert!(sel("{}").matches_map(&labels(&[("a", "b")])));
    }

    #[test]
    fn operators_match_like_kubernetes() {
        let s = sel(r#"{"matchExpressions":[{"key":"tier","operator":"NotIn","values":["db"]}]}"#);
        assert!(
            s.matches_map(&labels(&[])),
            "NotIn matches pods without the key"
        );
        assert!(!s.matches_map(&labels(&[("tier", "db")])));
        let s = sel(
            r#"{"matchLabels":{"a":"1"},"matchExpressions":[{"key":"b","operator":"Exists"}]}"#,
        );
        assert!(s.matches_map(&labels(&[("a", "1"), ("b", "")])));
        assert!(!s.matches_map(&labels(&[("a", "1")])), "ANDed");
        let s = sel(r#"{"matchExpressions":[{"key":"b","operator":"DoesNotExist"}]}"#);
        assert!(!s.matches_map(&labels(&[("b", "x")])));
    }

    #[test]
    fn implication_is_exact_for_conjunctions() {
        let flux = sel(r#"{"matchLabels":{"app.kubernetes.io/part-of":"flux"}}"#);
        let wider = sel(
            r#"{"matchExpressions":[{"key":"app.kubernetes.io/part-of","operator":"In","values":["flux","argo"]}]}"#,
        );
        let narrower = sel(
            r#"{"matchLabels":{"app.kubernetes.io/part-of":"flux","app":"kustomize-controller"}}"#,
        );
        assert!(flux.implies(&wider));
        assert!(!wider.implies(&flux));
        assert!(narrower.implies(&flux));
        assert!(!flux.implies(&narrower));
        assert!(flux.implies(&sel("{}")));
        assert!(!flux.implies(&sel("null")));
        let exists = sel(
            r#"{"matchExpressions":[{"key":"app.kubernetes.io/part-of","operator":"Exists"}]}"#,
        );
        assert!(flux.implies(&exists));
        let not_argo = sel(
            r#"{"matchExpressions":[{"key":"app.kubernetes.io/part-of","operator":"NotIn","values":["argo"]}]}"#,
        );
        assert!(flux.implies(&not_argo));
        let not_flux = sel(
            r#"{"matchExpressions":[{"key":"app.kubernetes.io/part-of","operator":"NotIn","values":["flux"]}]}"#,
        );
        assert!(!flux.intersects(&not_flux));
        assert!(flux.intersects(&wider));
        let typo = sel(r#"{"matchLabels":{"app.kubernetes.io/part-of":"flux-system"}}"#);
        assert!(!flux.intersects(&typo));
    }

    #[test]
    fn selectors_are_read_as_strictly_as_the_api_server_reads_them() {
        let err = |json: &str| {
            let e = read_selector(json).unwrap_err().to_string();
            e.split(" at line ").next().unwrap().to_owned()
        };
        // k8s-openapi's own reader skips the unknown member (a selector of every pod)...
        let lenient: LabelSelector = serde_json::from_str(r#"{"matchLabel":{"a":"b"}}"#).unwrap();
        assert_eq!(lenient, LabelSelector::default());
        // ...apart's does not, with derive's own messages.
        assert_eq!(
            err(r#"{"matchLabel":{"a":"b"}}"#),
            "unknown field `matchLabel`, expected `matchLabels` or `matchExpressions`"
        );
        assert_eq!(
            err(r#"{"matchExpressions":[{"key":"a","operator":"Exists","value":[]}]}"#),
            "unknown field `value`, expected one of `key`, `operator`, `values`"
        );
        assert_eq!(
            err(r#"{"matchExpressions":[{"operator":"Exists"}]}"#),
            "missing field `key`"
        );
        assert_eq!(
            err(r#"{"matchExpressions":[{"key":null,"operator":"Exists"}]}"#),
            "invalid type: null, expected a string"
        );
        assert_eq!(
            err(r#"{"matchLabels":{},"matchLabels":{}}"#),
            "duplicate field `matchLabels`"
        );
        let read =
            read_selector(r#"{"matchExpressions":[{"key":"a","operator":"In","values":["x"]}]}"#)
                .unwrap();
        let expr = &read.match_expressions.unwrap()[0];
        assert_eq!((expr.key.as_str(), expr.operator.as_str()), ("a", "In"));
        assert_eq!(expr.values.as_deref(), Some(&["x".to_owned()][..]));
    }

    #[test]
    fn invalid_selectors_name_the_field() {
        let spec: LabelSelector = serde_json::from_str(
            r#"{"matchExpressions":[{"key":"a","operator":"in","values":["x"]},{"key":"b","operator":"Exists","values":["x"]},{"key":"c","operator":"In"}],"matchLabels":{"bad key!":"v"}}"#,
        )
        .unwrap();
        let problems = Selector::compile(Some(&spec)).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field.to_string()).collect();
        assert_eq!(
            fields,
            [
                "$.matchLabels['bad key!']",
                "$.matchExpressions[0].operator",
                "$.matchExpressions[1].values",
                "$.matchExpressions[2].values"
            ]
        );
    }
}
