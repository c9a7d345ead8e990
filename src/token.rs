//! Finding the token in a request's headers.
//!
//! Headers arrive as raw bytes: a client can send values that are not UTF-8, and such a
//! value is an invalid token, not a crash.

use crate::config::{HeaderSource, MAX_TOKEN_BYTES};

/// Why a request's token could not be taken from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// Longer than [`MAX_TOKEN_BYTES`]; refused without parsing.
    TooLong,
    /// Characters a compact JWS cannot contain (including non-UTF-8 bytes), or empty.
    Malformed,
    /// More than one token in the request: we do not guess which one counts.
    Multiple,
}

impl ExtractError {
    pub fn description(self) -> &'static str {
        match self {
            ExtractError::TooLong => "the token is longer than 8192 bytes",
            ExtractError::Malformed => "the token is not a compact JWT",
            ExtractError::Multiple => "the request carries more than one token",
        }
    }
}

/// Returns the one token the request carries, `None` when it carries none.
///
/// `headers` holds (lowercase name, raw value) pairs as Envoy hands them over; a header that
/// does not start with the source's prefix (say `Basic …` for `Bearer `) is not a token.
/// `cookies` names the cookies that may carry a token. A token found in two places (two
/// headers, a header and a cookie, two cookies) is refused: we do not guess which counts.
pub fn extract<'h>(
    headers: &'h [(String, Vec<u8>)],
    sources: &[HeaderSource],
    cookies: &[String],
) -> Result<Option<&'h str>, ExtractError> {
    let mut found: Option<&[u8]> = None;
    let mut take = |raw: &'h [u8]| {
        if found.is_some() {
            return Err(ExtractError::Multiple);
        }
        found = Some(trim_ascii_whitespace(raw));
        Ok(())
    };
    for (name, value) in headers {
        if let Some(source) = sources.iter().find(|s| s.name.eq_ignore_ascii_case(name)) {
            if let Some(raw) = strip_prefix_ignore_case(value, source.value_prefix.as_bytes()) {
                take(raw)?;
            }
        }
        if !cookies.is_empty() && name.eq_ignore_ascii_case("cookie") {
            for raw in cookie_values(value, cookies) {
                take(raw)?;
            }
        }
    }
    found.map(check_token).transpose()
}

/// The values of the named cookies in one `cookie` header (`a=1; b=2`), quotes removed.
fn cookie_values<'v>(header: &'v [u8], names: &[String]) -> Vec<&'v [u8]> {
    header
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let pair = trim_ascii_whitespace(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (name, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
            if !names.iter().any(|n| n.as_bytes() == name) {
                return None;
            }
            let unquoted = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            Some(unquoted)
        })
        .collect()
}

fn check_token(raw: &[u8]) -> Result<&str, ExtractError> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(ExtractError::TooLong);
    }
    let jws_chars = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=');
    if raw.is_empty() {
        return Err(ExtractError::Malformed);
    }
    if !raw.iter().all(jws_chars) {
        // Envoy folds repeated headers into one value joined by commas.
        return Err(if raw.contains(&b',') {
            ExtractError::Multiple
        } else {
            ExtractError::Malformed
        });
    }

    std::str::from_utf8(raw).map_err(|_| ExtractError::Malformed)
}

fn strip_prefix_ignore_case<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

fn trim_ascii_whitespace(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer() -> Vec<HeaderSource> {
        vec![HeaderSource {
            name: "authorization".into(),
            value_prefix: "Bearer ".into(),
        }]
    }

    fn h(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn bearer_token_with_any_scheme_case() {
        for v in [&b"Bearer a.b.c"[..], b"bearer a.b.c", b"BEARER   a.b.c  "] {
            assert_eq!(
                extract(&h(&[("authorization", v)]), &bearer(), &[]),
                Ok(Some("a.b.c"))
            );
        }
    }

    #[test]
    fn no_header_or_other_scheme_is_no_token() {
        assert_eq!(extract(&h(&[("host", b"x")]), &bearer(), &[]), Ok(None));
        assert_eq!(
            extract(
                &h(&[("authorization", b"Basic dXNlcjpwYXNz")]),
                &bearer(),
                &[]
            ),
            Ok(None)
        );
        assert_eq!(
            extract(&h(&[("authorization", b"Bear")]), &bearer(), &[]),
            Ok(None)
        );
    }

    #[test]
    fn configured_header_without_prefix() {
        let sources = vec![HeaderSource {
            name: "x-jwt".into(),
            value_prefix: String::new(),
        }];
        assert_eq!(
            extract(&h(&[("x-jwt", b"a.b.c")]), &sources, &[]),
            Ok(Some("a.b.c"))
        );
        assert_eq!(
            extract(&h(&[("authorization", b"Bearer a.b.c")]), &sources, &[]),
            Ok(None)
        );
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let mut v = b"Bearer ".to_vec();
        v.extend(std::iter::repeat_n(b'a', MAX_TOKEN_BYTES + 1));
        assert_eq!(
            extract(&h(&[("authorization", &v)]), &bearer(), &[]),
            Err(ExtractError::TooLong)
        );
        let mut v = b"Bearer ".to_vec();
        v.extend(std::iter::repeat_n(b'a', MAX_TOKEN_BYTES));
        assert!(extract(&h(&[("authorization", &v)]), &bearer(), &[])
            .unwrap()
            .is_some());
    }

    #[test]
    fn bytes_a_jwt_cannot_hold_are_malformed() {
        for v in [
            &b"Bearer a.b\xff.c"[..],
            b"Bearer a b.c",
            b"Bearer ",
            b"Bearer a.\"b.c",
        ] {
            assert_eq!(
                extract(&h(&[("authorization", v)]), &bearer(), &[]),
                Err(ExtractError::Malformed),
                "{v:?}"
            );
        }
    }

    #[test]
    fn tokens_in_cookies() {
        let names = vec!["id_token".to_string()];
        let headers = h(&[("cookie", b"theme=dark; id_token=a.b.c; other=x")]);
        assert_eq!(extract(&headers, &bearer(), &names), Ok(Some("a.b.c")));
        let quoted = h(&[("cookie", b"id_token=\"a.b.c\"")]);
        assert_eq!(extract(&quoted, &bearer(), &names), Ok(Some("a.b.c")));
        assert_eq!(
            extract(&headers, &bearer(), &[]),
            Ok(None),
            "cookies are off by default"
        );
        let other = h(&[("cookie", b"ID_TOKEN=a.b.c; xid_token=d")]);
        assert_eq!(
            extract(&other, &bearer(), &names),
            Ok(None),
            "names are exact"
        );
        let both = h(&[
            ("authorization", b"Bearer a.b.c"),
            ("cookie", b"id_token=a.b.c"),
        ]);
        assert_eq!(
            extract(&both, &bearer(), &names),
            Err(ExtractError::Multiple)
        );
        let twice = h(&[("cookie", b"id_token=a.b.c; id_token=d.e.f")]);
        assert_eq!(
            extract(&twice, &bearer(), &names),
            Err(ExtractError::Multiple)
        );
    }

    #[test]
    fn two_tokens_are_refused() {
        let headers = h(&[
            ("authorization", b"Bearer a.b.c"),
            ("authorization", b"Bearer d.e.f"),
        ]);
        assert_eq!(
            extract(&headers, &bearer(), &[]),
            Err(ExtractError::Multiple)
        );
        let folded = h(&[("authorization", b"Bearer a.b.c,Bearer d.e.f")]);
        assert_eq!(
            extract(&folded, &bearer(), &[]),
            Err(ExtractError::Multiple)
        );
    }
}
