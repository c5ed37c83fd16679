//! The API server's syntax rules for label keys, label values and namespace names
//! (`k8s.io/apimachinery/pkg/util/validation`), written out without regex so the Kubernetes
//! module stays small. Each check returns a message that says what is expected.
//!
//! Messages quote the offending value, but never whole: a label value can be megabytes long
//! (the API server refuses it, apart still reads it), and a message that echoes it would be
//! as long. [`quoted`] and [`shortened`] cut a value after [`ECHO_LIMIT`] characters and say
//! how long it was; [`clip_values`] does the same to the values a JSON reader's message
//! quotes.

use std::borrow::Cow;

/// Characters of a value a message shows before cutting it: more than any valid label key
/// (317), name or value needs to be recognised.
pub const ECHO_LIMIT: usize = 320;

/// The first [`ECHO_LIMIT`] characters of `value`, when it is longer.
fn head(value: &str) -> Option<&str> {
    value
        .char_indices()
        .nth(ECHO_LIMIT)
        .and_then(|(at, _)| value.get(..at))
}

/// `value` for a message: whole when short, else its head and how long it was
/// (`abc… (10485760 bytes)`).
pub fn shortened(value: &str) -> Cow<'_, str> {
    match head(value) {
        None => Cow::Borrowed(value),
        Some(h) => Cow::Owned(format!("{h}… ({} bytes)", value.len())),
    }
}

/// `value` quoted for a message (as `{:?}` writes it), its head only when it is long.
pub fn quoted(value: &str) -> String {
    match head(value) {
        None => format!("{value:?}"),
        Some(h) => format!("{h:?}… ({} bytes)", value.len()),
    }
}

/// A message with every long value it quotes (between `"` with `\` escapes, as serde
/// writes strings, or between backticks, as it writes field and variant names) cut to its
/// head, with how long it was after the closing quote.
pub fn clip_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4 * ECHO_LIMIT));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let mut chars = from.char_indices();
        let Some((_, quote)) = chars.next() else {
            break;
        };
        // Where the quoted run ends: the matching unescaped quote, or the end of the text.
        let mut escaped = false;
        let mut close = None;
        for (at, c) in chars {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote == '"' {
                escaped = true;
            } else if c == quote {
                close = Some(at);
                break;
            }
        }
        let end = close.unwrap_or(from.len());
        let inner = from.get(quote.len_utf8()..end).unwrap_or_default();
        out.push(quote);
        match head(inner) {
            None => out.push_str(inner),
            Some(h) => out.push_str(h),
        }
        if close.is_some() {
            out.push(quote);
        }
        if head(inner).is_some() {
            out.push_str(&format!("… ({} bytes)", inner.len()));
        }
        rest = from
            .get(end + close.map_or(0, |_| quote.len_utf8())..)
            .unwrap_or_default();
    }
    out.push_str(rest);
    out
}

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
            "{} is not a valid label key: the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)",
            quoted(key)
        ));
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "{} is not a valid label key: the name must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            quoted(key)
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
            "{} is not a valid label value: at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
            quoted(value)
        ))
    }
}

/// A namespace name.
pub fn namespace(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid namespace name: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            quoted(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
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
    fn long_values_are_cut_with_their_length() {
        let huge = "v".repeat(10 << 20);
        let message = label_value(&huge).unwrap_err();
        assert!(message.len() < 1000, "{} bytes", message.len());
        assert!(
            message.starts_with(&format!(
                "\"{}\"… (10485760 bytes) is not a valid label value",
                "v".repeat(ECHO_LIMIT)
            )),
            "{}",
            &message[..400]
        );
        assert_eq!(quoted("short"), "\"short\"");
        assert_eq!(shortened("ns"), "ns");
        // Multi-byte characters are cut on a character boundary.
        let wide = "é".repeat(ECHO_LIMIT + 1);
        assert_eq!(
            shortened(&wide),
            format!("{}… ({} bytes)", "é".repeat(ECHO_LIMIT), wide.len())
        );
        // A JSON reader's message: the string it quotes and the field name it quotes are cut,
        // escapes are honoured, the rest is kept.
        let serde = format!(
            "invalid type: string \"{}\\\"{}\", expected i64 at `{}` and `short`",
            "a".repeat(400),
            "b".repeat(10),
            "k".repeat(1000)
        );
        assert_eq!(
            clip_values(&serde),
            format!(
                "invalid type: string \"{}\"… (412 bytes), expected i64 at `{}`… (1000 bytes) and `short`",
                "a".repeat(ECHO_LIMIT),
                "k".repeat(ECHO_LIMIT)
            )
        );
        // An unclosed quote runs to the end; short messages are unchanged.
        assert_eq!(clip_values("the pod's \"x"), "the pod's \"x");
        assert_eq!(
            clip_values(&format!("`{}", "z".repeat(500))),
            format!("`{}… (500 bytes)", "z".repeat(ECHO_LIMIT))
        );
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
