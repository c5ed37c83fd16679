//! The commands that are more than argument plumbing: `check` and `fix` over manifest sets,
//! `run` of one AdmissionReview, `audit` of a cluster snapshot, `simulate` of a pod and `test`
//! of policy test suites, `rules` (the built-in rule pack).
//!
//! Each reads its input, calls the module (through [`crate::host`]) or the engine, and
//! renders; the rules and their semantics live in `apart-policy`.

pub mod audit;
pub mod check;
pub mod fix;
pub mod rules;
pub mod run;
pub mod simulate;
pub mod test;
