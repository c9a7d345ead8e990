//! Checks of single configuration values (claim names, principal names, groups, scopes,
//! domains, header names), each naming its field on failure.

use super::*;

/// Checks every value of a list with `check`, naming `field[i]` on failure.
pub(super) fn each(
    values: &[String],
    field: &str,
    check: fn(&str, &str) -> Result<String, ConfigError>,
) -> Result<Vec<String>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| check(v, &format!("{field}[{i}]")))
        .collect()
}

/// Claim names also appear in error descriptions, inside a quoted string.
pub(super) fn claim_name(v: &str, at: &str) -> Result<String, ConfigError> {
    if !is_quotable_word(v) {
        return Err(err(
            at,
            "must be a claim name: printable ASCII without quotes or backslashes",
        ));
    }
    Ok(v.to_string())
}

pub(super) fn principal_name(v: &str, at: &str) -> Result<String, ConfigError> {
    if v.contains('@') {
        return Err(err(
            at,
            "principals are names, the part before '@' (e.g. user1 for user1@example.com)",
        ));
    }
    if !is_name(v) {
        return Err(err(
            at,
            "must be a name of visible ASCII without quotes, ',', ';' or '\\' (a token's name never matches anything else)",
        ));
    }
    Ok(v.to_string())
}

/// A group name a token's group can equal: tokens' groups with quotes, `,`, `;`, `\`,
/// control characters or surrounding spaces are dropped, so such a name could never match.
pub(super) fn group(v: &str, at: &str) -> Result<String, ConfigError> {
    if !is_safe_value(v) {
        return Err(err(
            at,
            "must be a group name without quotes, ',', ';', '\\', control characters or surrounding spaces",
        ));
    }
    Ok(v.to_string())
}

/// A scope-token (RFC 6749 §3.3).
pub(super) fn scope(v: &str, at: &str) -> Result<String, ConfigError> {
    if !is_quotable_word(v) {
        return Err(err(
            at,
            "must be a scope: printable ASCII without spaces, quotes or backslashes",
        ));
    }
    Ok(v.to_string())
}

/// Non-empty visible ASCII without quotes or backslashes: safe inside a quoted string.
fn is_quotable_word(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A DNS domain such as `example.com`, lowercased.
pub(super) fn domain(v: &str, at: &str) -> Result<String, ConfigError> {
    let d = v.to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if d.len() > 253 || !d.split('.').all(label_ok) {
        let hint = if d.starts_with('@') {
            " (without the '@')"
        } else {
            ""
        };
        return Err(err(
            at,
            format!("must be a domain such as example.com{hint}"),
        ));
    }
    Ok(d)
}

pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A name: 1–256 bytes of visible ASCII without `@` and without characters that upstreams
/// read as separators or quotes. Configured names must be names too, so a token's value
/// can only match one byte for byte (or ignoring ASCII case where declared).
pub fn is_name(v: &str) -> bool {
    (1..=256).contains(&v.len()) && v.bytes().all(|b| is_name_byte(b) && b != b'@')
}

/// A byte of a name (and of an address's local part).
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\')
}

/// A value that may be compared with configuration and sent in an identity header: not
/// empty, no surrounding whitespace, no control characters, no `"` `,` `;` `\`. UTF-8
/// letters are kept (they are compared exactly, never folded).
pub fn is_safe_value(v: &str) -> bool {
    !v.is_empty()
        && v.trim() == v
        && !v
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | ',' | ';' | '\\'))
}
