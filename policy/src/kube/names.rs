//! The API server's syntax rules for label keys, label values and namespace names
//! (`k8s.io/apimachinery/pkg/util/validation`), written out without regex so the Kubernetes
//! module stays small. Each check returns a message that says what is expected.

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= 63
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let lower_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    bytes.len() <= 63
        && lower_alnum(first)
        && lower_alnum(last)
        && bytes.iter().all(|b| lower_alnum(b) || *b == b'-')
}

/// DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A label key (also a `topologyKey`): `[prefix/]name`.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return Err(format!(
            "{key:?} is not a valid label key: the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)"
        ));
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "{key:?} is not a valid label key: the name must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or a qualified-name part.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid label value: at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// A namespace name.
pub fn namespace(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid namespace name: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        assert!(label_key("app").is_ok());
        assert!(label_key("app.kubernetes.io/part-of").is_ok());
        assert!(label_key("kubernetes.io/hostname").is_ok());
        assert!(label_key("").is_err());
        assert!(label_key("/x").is_err());
        assert!(label_key("Example.com/x").is_err());
        assert!(label_key("a/b/c").is_err());
        assert!(label_key(&"x".repeat(64)).is_err());
        assert!(label_key("-x").is_err());
    }

    #[test]
    fn label_values_and_namespaces() {
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_3-x").is_ok());
        assert!(label_value("a b").is_err());
        assert!(namespace("flux-system").is_ok());
        assert!(namespace("Flux").is_err());
        assert!(namespace("").is_err());
    }
}
