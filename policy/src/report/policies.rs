//! Policy texts read and compiled into one [`PolicySet`], with where each policy came from,
//! so that a set finding (`peers-not-found`) is reported at its policy's line.

use std::collections::{BTreeMap, HashMap};

use super::Source;
use super::outcome::{Reported, point_at};
use crate::source::path::JsonPath;
use crate::source::read::{self, Position};
use crate::{Finding, Policy, PolicyError, PolicySet};

/// Policies read from texts, with where each came from.
#[derive(Debug)]
pub struct Policies {
    /// The compiled set.
    pub set: PolicySet,
    /// The policy texts.
    pub sources: Vec<Source>,
    /// For each policy: (source index, document index).
    pub origins: Vec<(usize, usize)>,
    /// For each policy: where the nodes that set findings name are (its peer groups), kept
    /// from the reading so that reporting them does not read the policy texts again.
    set_spans: Vec<Vec<SetSpan>>,
}

/// A path a set finding may name (as findings write it) and where its node is.
type SetSpan = (String, Option<(Position, Position)>);

impl Policies {
    /// Reads and checks policy texts (YAML or JSON, several documents each).
    pub fn from_sources(sources: Vec<Source>) -> Result<Self, PolicyError> {
        let mut set = PolicySet::default();
        let mut origins = Vec::new();
        let mut set_spans = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            let keep = |policy: &Policy, document: &read::Document| {
                set_spans.push(set_finding_spans(policy, &document.positions));
            };
            for doc in set.parse_into_with(&src.text, &src.name, keep)? {
                origins.push((i, doc));
            }
        }
        Ok(Self {
            set,
            sources,
            origins,
            set_spans,
        })
    }

    /// The Kubewarden settings carrying these policies.
    pub fn settings(&self) -> Vec<u8> {
        self.set.settings().to_string().into_bytes()
    }

    /// Set findings as a check reports them, each with its policy's file and the position of
    /// its path in the policy's document: kept from the reading for the paths set findings
    /// name (one finding per policy is common: `peers-not-found` in a set without the
    /// peers); for any other path, each policy text is read again at most once, only as far
    /// as its last document with such a finding.
    pub fn locate(&self, findings: Vec<Finding>) -> Vec<Reported> {
        let index: HashMap<&str, usize> = self
            .set
            .policies()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        // The origin of each finding's policy, and the documents each source must be read for.
        let origins: Vec<Option<(usize, usize)>> = findings
            .iter()
            .map(|f| {
                index
                    .get(f.policy.as_str())
                    .and_then(|i| self.origins.get(*i))
                    .copied()
                    .filter(|(s, _)| *s < self.sources.len())
            })
            .collect();
        let mut spans: Vec<Option<(Position, Position)>> = vec![None; findings.len()];
        let mut wanted: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (at, (f, origin)) in findings.iter().zip(&origins).enumerate() {
            let kept = index
                .get(f.policy.as_str())
                .and_then(|i| self.set_spans.get(*i))
                .and_then(|kept| kept.iter().find(|(path, _)| *path == f.path));
            match (kept, origin) {
                (Some((_, span)), _) => {
                    if let Some(slot) = spans.get_mut(at) {
                        *slot = *span;
                    }
                }
                (None, Some(origin)) => wanted.entry(*origin).or_default().push(at),
                (None, None) => {}
            }
        }
        let paths: Vec<JsonPath> = findings
            .iter()
            .map(|f| JsonPath::parse(&f.path).unwrap_or_default())
            .collect();
        for (src_index, src) in self.sources.iter().enumerate() {
            let mut docs: Vec<(usize, &Vec<usize>)> = wanted
                .range((src_index, 0)..=(src_index, usize::MAX))
                .map(|((_, doc), at)| (*doc, at))
                .collect();
            let Some(&(last, _)) = docs.last() else {
                continue;
            };
            docs.reverse();
            for document in read::documents(&src.text).map_while(Result::ok) {
                while docs.last().is_some_and(|(doc, _)| *doc < document.index) {
                    docs.pop();
                }
                if let Some((_, at)) = docs.last().filter(|(doc, _)| *doc == document.index) {
                    for &i in *at {
                        if let (Some(slot), Some(path)) = (spans.get_mut(i), paths.get(i)) {
                            *slot = point_at(&document.positions, path);
                        }
                    }
                }
                if document.index >= last {
                    break;
                }
            }
        }
        findings
            .into_iter()
            .zip(origins)
            .zip(spans)
            .map(|((f, origin), span)| {
                let file = origin
                    .and_then(|(s, _)| self.sources.get(s))
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                Reported::new(f, &file, span, None)
            })
            .collect()
    }
}

/// Where the nodes a set finding about `policy` names are in its document: its peer groups
/// (`peers-not-found` points at `$.spec.apartFrom[i]`), by the path as findings write it.
fn set_finding_spans(policy: &Policy, positions: &read::Positions) -> Vec<SetSpan> {
    (0..policy.peers.len())
        .map(|g| {
            let path = JsonPath::root().name("spec").name("apartFrom").index(g);
            let span = point_at(positions, &path);
            (path.to_string(), span)
        })
        .collect()
}
