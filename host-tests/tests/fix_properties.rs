//! What `apart fix` promises, as properties over random (policies, object) pairs
//! (`apart-testkit`, drawn by proptest from a fixed seed and shrunk to the smallest failing
//! pair):
//!
//! 1. fixing is idempotent: the repaired object needs no repair;
//! 2. nothing outside the repaired affinity changes (the objects are equal once the affinity
//!    subtrees are removed);
//! 3. no user term is removed or weakened: every original anti-affinity term is still at its
//!    place with everything it said (its namespaces may grow; a namespaceSelector may be
//!    added where it had none), and a preferred term's weight is not lowered;
//! 4. the repaired object evaluates clean for the rules it repaired (a policy whose findings
//!    were all given a fix has no error finding left);
//! 5. the in-place text edit of the object written as YAML reads back as exactly the
//!    object-level repair.
//!
//! `APART_PROPTEST_CASES` (512) cases per property, seed `APART_PROPTEST_SEED` (2026). A long
//! run: `APART_PROPTEST_CASES=1000000 cargo test --release -p apart --test fix_properties`.

use std::collections::BTreeSet;

use apart_policy::source::path::JsonPath;
use apart_policy::source::{edit, read};
use apart_policy::{Context, Evaluation, NamespaceFacts, PatchOp, PolicySet, Severity};
use apart_testkit::Tape;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::Value;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where the generated objects hold their affinity (pod, workload, CronJob, value target).
const AFFINITY_PATHS: &[&str] = &[
    "/spec/affinity",
    "/spec/template/spec/affinity",
    "/spec/jobTemplate/spec/template/spec/affinity",
    "/spec/values/server/affinity",
];

/// A pair with its policies compiled, its evaluation and its repair (`None`: no repair, or
/// settings that do not compile).
struct Repaired {
    set: PolicySet,
    object: Value,
    first: Evaluation,
    mutated: Value,
}

fn evaluate(set: &PolicySet, object: &Value) -> Evaluation {
    let facts = NamespaceFacts::default();
    let ctx = Context {
        default_namespace: "default",
        namespaces: &facts,
    };
    set.evaluate(object.to_string().as_bytes(), &ctx)
        .expect("a generated object evaluates")
}

fn repaired(numbers: &[u32]) -> Option<Repaired> {
    let (mut policies, object) = apart_testkit::pair(&mut Tape::new(numbers));
    // Every rule repairs here: the properties are about repairs.
    for p in &mut policies {
        p["spec"]["action"] = "mutate".into();
    }
    let settings = apart_testkit::settings(&policies).to_string();
    let set = PolicySet::from_settings(settings.as_bytes()).ok()?;
    let first = evaluate(&set, &object);
    let mutated = serde_json::from_str(first.mutated.as_deref()?).expect("the repair is JSON");
    Some(Repaired {
        set,
        object,
        first,
        mutated,
    })
}

fn without_affinity(v: &Value) -> Value {
    let mut v = v.clone();
    for p in AFFINITY_PATHS {
        let (parent, key) = p.rsplit_once('/').unwrap_or_default();
        if let Some(Value::Object(m)) = v.pointer_mut(parent) {
            m.shift_remove(key);
        }
    }
    v
}

/// Does `new` say at least what `old` said? (A term: same fields, namespaces a superset, a
/// namespaceSelector kept if there was one.)
fn keeps_term(old: &Value, new: &Value) -> Result<(), String> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return if old == new {
            Ok(())
        } else {
            Err(format!("{old} became {new}"))
        };
    };
    for (k, v) in old {
        let got = new.get(k);
        match k.as_str() {
            "namespaces" => {
                let want: BTreeSet<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect();
                let have: BTreeSet<String> = got
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect();
                if !want.is_subset(&have) {
                    return Err(format!("namespaces {want:?} became {have:?}"));
                }
            }
            _ if got == Some(v) => {}
            _ => return Err(format!("{k}: {v} became {got:?}")),
        }
    }
    Ok(())
}

fn keeps_user_terms(old: &Value, new: &Value) -> Result<(), String> {
    for p in AFFINITY_PATHS {
        let Some(anti) = old.pointer(&format!("{p}/podAntiAffinity")) else {
            continue;
        };
        let new_anti = new
            .pointer(&format!("{p}/podAntiAffinity"))
            .ok_or(format!("{p}/podAntiAffinity removed"))?;
        let list = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).cloned();
        let req = "requiredDuringSchedulingIgnoredDuringExecution";
        if let Some(terms) = list(anti, req) {
            let now = list(new_anti, req).ok_or("required terms removed")?;
            for (i, t) in terms.iter().enumerate() {
                let n = now.get(i).ok_or(format!("required term {i} removed"))?;
                keeps_term(t, n).map_err(|e| format!("required term {i}: {e}"))?;
            }
        }
        let pref = "preferredDuringSchedulingIgnoredDuringExecution";
        if let Some(terms) = list(anti, pref) {
            let now = list(new_anti, pref).ok_or("preferred terms removed")?;
            for (i, t) in terms.iter().enumerate() {
                let n = now.get(i).ok_or(format!("preferred term {i} removed"))?;
                let (w0, w1) = (t["weight"].as_i64(), n["weight"].as_i64());
                if w1 < w0 {
                    return Err(format!(
                        "preferred term {i}: weight {w0:?} lowered to {w1:?}"
                    ));
                }
                keeps_term(&t["podAffinityTerm"], &n["podAffinityTerm"])
                    .map_err(|e| format!("preferred term {i}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn ops(first: &Evaluation) -> Vec<PatchOp> {
    let mut out: Vec<PatchOp> = Vec::new();
    let mut seen: Vec<&Vec<PatchOp>> = Vec::new();
    for fix in first.findings.iter().filter_map(|f| f.fix.as_ref()) {
        if !seen.contains(&fix) {
            out.extend(fix.iter().cloned());
            seen.push(fix);
        }
    }
    out
}

/// One property over `cases` pairs; how many of them were repaired (the property's subject).
fn property(name: &str, check: impl Fn(&Repaired) -> Result<(), String>) -> u64 {
    let cases = u32::try_from(env_number("APART_PROPTEST_CASES", 512)).unwrap_or(u32::MAX);
    let seed = env_number("APART_PROPTEST_SEED", 2026);
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    });
    let repairs = std::cell::Cell::new(0u64);
    let started = std::time::Instant::now();
    let result = runner.run(&vec(any::<u32>(), 0..300), |numbers| {
        let Some(r) = repaired(&numbers) else {
            return Ok(());
        };
        repairs.set(repairs.get() + 1);
        check(&r).map_err(|e| {
            TestCaseError::fail(format!(
                "{e}\n  object {}\n  repaired {}",
                r.object, r.mutated
            ))
        })
    });
    eprintln!(
        "{name}: {cases} cases (seed {seed}), {} repaired, in {:.1} s",
        repairs.get(),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    repairs.get()
}

/// Enough of the pairs are repaired for the properties to say something.
fn enough(repairs: u64) {
    let cases = env_number("APART_PROPTEST_CASES", 512);
    assert!(
        repairs * 4 >= cases,
        "only {repairs} of {cases} pairs repaired"
    );
}

#[test]
fn fix_is_idempotent() {
    enough(property("idempotent", |r| {
        let again = evaluate(&r.set, &r.mutated);
        match again.mutated {
            None => Ok(()),
            Some(m) => Err(format!("repaired again into {m}: {:?}", again.findings)),
        }
    }));
}

#[test]
fn fix_changes_nothing_outside_the_affinity() {
    enough(property("only the affinity", |r| {
        if without_affinity(&r.object) == without_affinity(&r.mutated) {
            Ok(())
        } else {
            Err("something outside the affinity changed".to_owned())
        }
    }));
}

#[test]
fn fix_never_removes_or_weakens_a_user_term() {
    enough(property("user terms kept", |r| {
        keeps_user_terms(&r.object, &r.mutated)
    }));
}

#[test]
fn fixed_object_evaluates_clean_for_the_rules_it_repaired() {
    enough(property("clean after repair", |r| {
        let all_fixed: BTreeSet<&str> = r
            .set
            .names()
            .into_iter()
            .filter(|p| {
                let mine: Vec<_> = r.first.findings.iter().filter(|f| f.policy == *p).collect();
                !mine.is_empty() && mine.iter().all(|f| f.fix.is_some())
            })
            .collect();
        let again = evaluate(&r.set, &r.mutated);
        let left: Vec<_> = again
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && all_fixed.contains(f.policy.as_str()))
            .map(|f| format!("{} {} {}", f.policy, f.code, f.path))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left after repair: {left:?}"))
        }
    }));
}

#[test]
fn in_place_edit_equals_the_object_repair() {
    enough(property("in-place edit", |r| {
        let text = apart_testkit::to_block_yaml(&r.object);
        let doc = read::parse_one(&text)
            .map_err(|e| format!("the block YAML does not read: {e}\n{text}"))?
            .ok_or("no document")?;
        if doc.value != r.object {
            return Err(format!("the block YAML reads as another object:\n{text}"));
        }
        let lines = doc.lines(&text);
        let original = text.get(lines).unwrap_or_default();
        let edited =
            edit::edit_document(original, &[(JsonPath::root(), ops(&r.first))], &r.mutated)
                .ok_or_else(|| format!("the editor declined a plain block document:\n{text}"))?;
        let back = read::parse_one(&edited)
            .map_err(|e| format!("the edit does not read: {e}\n{edited}"))?
            .map(|d| d.value);
        if back.as_ref() == Some(&r.mutated) {
            Ok(())
        } else {
            Err(format!("the edit reads as another object:\n{edited}"))
        }
    }));
}
