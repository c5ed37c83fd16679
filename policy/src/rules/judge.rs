//! How one anti-affinity term measures up to one peer group: does it select every peer, see
//! their namespaces, separate the rule's failure domain, and weigh enough; and, when it does
//! not, was it *meant* for the peers at all.
//!
//! Real charts carry anti-affinity for other reasons: most spread their own replicas
//! (`app.kubernetes.io/name: <self>`), some keep away from a third group. Such a term is not
//! a broken peer term, and advice to rewrite it would destroy what it does. A term counts as
//! meant for the peers only on evidence:
//! - it selects every peer (then only its namespaces, topology and weight can be wrong);
//! - or it does not select the subject's own pods, and
//!   - its namespace scope names a namespace the peers run in (`namespaces: [flux-system]`,
//!     or a `namespaceSelector` on that namespace's name), or
//!   - its selector is a typo-sized edit away from the peers' (one key or one value within two
//!     character edits, and at most a third of the word), or an operator slip (`NotIn` for
//!     `In`, `DoesNotExist` for `Exists`), or
//!   - it selects only peers (the peers' selector and more: aimed at some of them).
//!
//! A term with none of this is about other pods; when no term is meant for a peer group, the
//! group's term is missing.

use crate::kube::affinity::{NamespaceFacts, PodFacts, Term};
use crate::kube::selector::{Operator, Requirement, Selector};
use crate::rules::policy::{PeerGroup, Policy, Strength};

/// Well-known nested failure domains, narrowest first.
const DOMAINS: [&str; 3] = [
    crate::rules::policy::HOSTNAME,
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];

fn rank(key: &str) -> Option<usize> {
    DOMAINS.iter().position(|d| *d == key)
}

/// How a term's selector relates to a peer group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelectorFit {
    /// Selects every peer.
    Covers,
    /// Selects some peers.
    Partial,
    /// Selects no peer.
    Disjoint,
    /// A null selector: selects no pod at all.
    Null,
}

/// A term judged against one peer group.
pub(crate) struct Judgement<'t, 'a> {
    pub term: &'t Term<'a>,
    pub selector: SelectorFit,
    /// Listed peer namespaces the term cannot see.
    pub missing_names: Vec<String>,
    /// The peer group selects namespaces by label, and the term does not provably see them.
    pub selector_unseen: bool,
    pub topology: Option<String>,
    pub strength: Option<String>,
    /// Meant for the peers (the module docs say on what evidence).
    pub meant_for_peers: bool,
    /// Selects the subject's own pods in its own namespace: a replica spread.
    pub spreads_replicas: bool,
}

impl Judgement<'_, '_> {
    /// The findings this term gets: a term that does not select the peers gets one (its
    /// selector), since whether it sees their namespaces or weighs enough means nothing
    /// until it selects them.
    pub fn defects(&self) -> usize {
        if self.selector != SelectorFit::Covers {
            return 1;
        }
        usize::from(self.blind())
            + usize::from(self.topology.is_some())
            + usize::from(self.strength.is_some())
    }

    pub fn satisfies(&self) -> bool {
        self.selector == SelectorFit::Covers && self.defects() == 0
    }

    /// Separates the domain and sees the peers, whatever its strength.
    pub fn separates(&self) -> bool {
        self.selector == SelectorFit::Covers && !self.blind() && self.topology.is_none()
    }

    pub fn blind(&self) -> bool {
        !self.missing_names.is_empty() || self.selector_unseen
    }
}

pub(crate) fn judge<'t, 'a>(
    term: &'t Term<'a>,
    policy: &Policy,
    group: &PeerGroup,
    pod: &PodFacts<'_>,
    facts: &NamespaceFacts,
) -> Judgement<'t, 'a> {
    let selector = if term.selector.is_nothing() {
        SelectorFit::Null
    } else if group.selector.implies(&term.selector) {
        SelectorFit::Covers
    } else if term.selector.intersects(&group.selector) {
        SelectorFit::Partial
    } else {
        SelectorFit::Disjoint
    };
    let missing_names: Vec<String> = group
        .namespaces
        .iter()
        .filter(|n| !term.scope.includes(n, facts))
        .cloned()
        .collect();
    let selector_unseen = group.namespace_selector.as_ref().is_some_and(|(s, _)| {
        if s.is_everything() {
            !term.scope.is_all()
        } else {
            !term.scope.includes_selected(s, facts)
        }
    });
    let key = term.spec.topology_key.as_str();
    let topology = topology_problem(key, &policy.topology_key, term.required());
    let strength = match (policy.strength, term.weight) {
        (Strength::Required, Some(w)) => Some(format!(
            "this term is preferred (weight {w}), but the rule requires it: move it to requiredDuringSchedulingIgnoredDuringExecution"
        )),
        (Strength::Preferred, Some(w)) if w < policy.weight => Some(format!(
            "weight {w} is below the rule's {}: set weight: {}",
            policy.weight, policy.weight
        )),
        _ => None,
    };
    // Its own selector, without matchLabelKeys (which only narrow it to one revision).
    let written = Selector::compile(term.spec.label_selector.as_ref())
        .unwrap_or_else(|_| Selector::nothing());
    let spreads_replicas = !written.is_nothing()
        && written.matches_map(pod.labels)
        && term.scope.includes(pod.namespace, facts);
    let names_peers = !term.scope.own_namespace_only
        && group
            .namespaces
            .iter()
            .any(|n| term.scope.names.contains(n) || scope_selects_by_name(term, n));
    let meant_for_peers = selector == SelectorFit::Covers
        || !spreads_replicas
            && (names_peers
                || near(&written, &group.selector)
                || (written.satisfiable() && written.implies(&group.selector)));
    Judgement {
        term,
        selector,
        missing_names,
        selector_unseen,
        topology,
        strength,
        meant_for_peers,
        spreads_replicas,
    }
}

/// Does the term's `namespaceSelector` name namespace `name` (by its name label)?
fn scope_selects_by_name(term: &Term<'_>, name: &str) -> bool {
    term.scope.selector.as_ref().is_some_and(|s| {
        s.pinned_values(crate::kube::affinity::NAMESPACE_NAME_LABEL)
            .is_some_and(|names| names.contains(name))
    })
}

/// Is `term` one slip away from `peers`: the same requirements but one, and that one with a
/// key or a value a typo away, or its operator turned around?
fn near(term: &Selector, peers: &Selector) -> bool {
    let (t, p) = (term.requirements(), peers.requirements());
    if t.len() != p.len() || t.is_empty() {
        return false;
    }
    let only_t: Vec<&Requirement> = t.iter().filter(|r| !p.contains(r)).collect();
    let only_p: Vec<&Requirement> = p.iter().filter(|r| !t.contains(r)).collect();
    let ([a], [b]) = (only_t.as_slice(), only_p.as_slice()) else {
        return false;
    };
    let slip = |x: Operator, y: Operator| {
        matches!(
            (x, y),
            (Operator::In, Operator::NotIn)
                | (Operator::NotIn, Operator::In)
                | (Operator::Exists, Operator::DoesNotExist)
                | (Operator::DoesNotExist, Operator::Exists)
        )
    };
    if a.key == b.key && a.values == b.values {
        return slip(a.operator, b.operator);
    }
    if a.operator != b.operator {
        return false;
    }
    if a.values == b.values {
        return typo(&a.key, &b.key);
    }
    if a.key != b.key {
        return false;
    }
    let va: Vec<&String> = a.values.difference(&b.values).collect();
    let vb: Vec<&String> = b.values.difference(&a.values).collect();
    matches!((va.as_slice(), vb.as_slice()), ([x], [y]) if typo(x, y))
}

/// Two words a typo apart: at most two edits (insertions, deletions, substitutions or
/// swaps of neighbours), and at most a third of the longer word (`flux`/`fluxcd`, `nginx`/
/// `ngnix`; not `v1`/`v2`, not `argo`/`flux`).
fn typo(a: &str, b: &str) -> bool {
    let d = edit_distance(a, b);
    let longer = a.chars().count().max(b.chars().count());
    (1..=2).contains(&d) && 3 * d <= longer
}

/// Optimal string alignment distance (Levenshtein with adjacent swaps).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut rows: Vec<usize> = (0..(a.len() + 1) * width).collect();
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        if let Some(cell) = rows.get_mut(at(i, 0)) {
            *cell = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(cell) = rows.get_mut(at(0, j)) {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let get = |i: usize, j: usize| rows.get(at(i, j)).copied().unwrap_or(usize::MAX - 1);
            let same = a.get(i - 1) == b.get(j - 1);
            let mut best = (get(i - 1, j) + 1)
                .min(get(i, j - 1) + 1)
                .min(get(i - 1, j - 1) + usize::from(!same));
            let swapped =
                i > 1 && j > 1 && a.get(i - 1) == b.get(j - 2) && a.get(i - 2) == b.get(j - 1);
            if swapped {
                best = best.min(get(i - 2, j - 2) + 1);
            }
            if let Some(cell) = rows.get_mut(at(i, j)) {
                *cell = best;
            }
        }
    }
    rows.get(at(a.len(), b.len()))
        .copied()
        .unwrap_or(usize::MAX)
}

pub(crate) fn topology_problem(key: &str, rule: &str, required: bool) -> Option<String> {
    if key == rule {
        return None;
    }
    match (rank(key), rank(rule)) {
        (Some(k), Some(r)) if k > r && required => None,
        (Some(k), Some(r)) if k > r => Some(format!(
            "topologyKey {key} is wider than the rule's {rule}: a preferred term cannot steer between {rule} domains inside one {key} domain (in a single-domain cluster it does nothing); use topologyKey: {rule}"
        )),
        (Some(_), Some(_)) => Some(format!(
            "topologyKey {key} is narrower than the rule's {rule}: it only keeps pods off the same {key} domain, not the same {rule} domain; use topologyKey: {rule}"
        )),
        _ => Some(format!(
            "topologyKey {key} is not the rule's failure domain {rule}: use topologyKey: {rule}"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nested_domains() {
        let host = crate::rules::policy::HOSTNAME;
        let zone = "topology.kubernetes.io/zone";
        let region = "topology.kubernetes.io/region";
        assert_eq!(topology_problem(host, host, false), None);
        assert_eq!(
            topology_problem(zone, host, true),
            None,
            "required zone separates nodes"
        );
        assert_eq!(topology_problem(region, zone, true), None);
        assert!(topology_problem(zone, host, false).is_some_and(|m| m.contains("wider")));
        assert!(topology_problem(host, zone, true).is_some_and(|m| m.contains("narrower")));
        assert!(
            topology_problem("example.com/rack", host, true)
                .is_some_and(|m| m.contains("not the rule's"))
        );
    }

    #[test]
    fn typos_are_small_edits_of_long_enough_words() {
        assert_eq!(edit_distance("flux", "fluxcd"), 2);
        assert_eq!(edit_distance("nginx", "ngnix"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert!(typo("flux", "fluxcd") && typo("nginx", "ngnix"));
        assert!(typo(
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/partof"
        ));
        assert!(!typo("v1", "v2") && !typo("argo", "flux") && !typo("argocd", "flux"));
        assert!(!typo("flux", "flux"));
    }

    fn selector(json: &str) -> Selector {
        let spec = crate::kube::selector::read_selector(json).unwrap();
        Selector::compile(Some(&spec)).unwrap()
    }

    #[test]
    fn slips_and_typos_are_near_other_groups_are_not() {
        let peers = selector(r#"{"matchLabels": {"app.kubernetes.io/part-of": "flux"}}"#);
        for near_peers in [
            r#"{"matchLabels": {"app.kubernetes.io/part-of": "fluxcd"}}"#,
            r#"{"matchExpressions": [{"key": "app.kubernetes.io/part-of", "operator": "NotIn", "values": ["flux"]}]}"#,
            r#"{"matchLabels": {"app.kubernetes.io/partof": "flux"}}"#,
        ] {
            assert!(near(&selector(near_peers), &peers), "{near_peers}");
        }
        for other in [
            r#"{"matchLabels": {"app.kubernetes.io/part-of": "argocd"}}"#,
            r#"{"matchLabels": {"app.kubernetes.io/name": "argocd-repo-server"}}"#,
            r#"{"matchLabels": {"app.kubernetes.io/part-of": "flux", "app": "x"}}"#,
        ] {
            assert!(!near(&selector(other), &peers), "{other}");
        }
    }
}
