//! The rule pack shipped with apart: ordinary DecorrelationPolicy documents, compiled into
//! the engine so that every edge (the CLI's `-p builtin:NAME`, a module's settings built from
//! them) reads the same text, and `apart rules NAME` prints it for users to copy and edit.

/// `(name, document)`, in the order `apart rules` lists them.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "replicas-apart",
        include_str!("../../builtin/replicas-apart.yaml"),
    ),
    (
        "replicas-apart-zones",
        include_str!("../../builtin/replicas-apart-zones.yaml"),
    ),
    (
        "replicas-apart-required",
        include_str!("../../builtin/replicas-apart-required.yaml"),
    ),
];

/// The prefix that names a built-in rule file where a policy file is expected.
pub const PREFIX: &str = "builtin:";

/// The document of built-in rule file `name`.
pub fn document(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_builtin_compiles_and_is_named_as_listed() {
        for (name, text) in BUILTIN {
            let mut set = crate::PolicySet::default();
            set.parse_into(text, name).unwrap();
            assert_eq!(set.names(), [*name]);
        }
        assert!(document("replicas-apart").is_some() && document("nope").is_none());
    }
}
