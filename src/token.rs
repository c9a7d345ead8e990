//! Finding the token in a request's headers.
//!
//! Headers arrive as raw bytes: a client can send values that are not UTF-8, and such a
//! value is an invalid token, not a crash.

use crate::config::{same_header_name, Config, HeaderSource};

/// Where a request may carry its token, and how long it may be.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'c> {
    pub headers: &'c [HeaderSource],
    /// Cookie names, exact.
    pub cookies: &'c [String],
    /// Longer tokens are refused before any parsing.
    pub max_bytes: usize,
}

impl Sources<'_> {
    /// Where the configuration lets requests carry their token.
    pub fn of(config: &Config) -> Sources<'_> {
        Sources {
            headers: &config.from_headers,
            cookies: &config.from_cookies,
            max_bytes: config.max_token_bytes,
        }
    }
}

/// Why a request's token could not be taken from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// Longer than `max_token_bytes`; refused without parsing.
    TooLong,
    /// Characters a compact JWS cannot contain (including non-UTF-8 bytes), empty, or the
    /// header's scheme in another form than `<value_prefix><token>`.
    Malformed,
    /// More than one credential in the request: we do not guess which one counts.
    Multiple,
}

impl ExtractError {
    pub fn description(self) -> &'static str {
        match self {
            ExtractError::TooLong => "the token is longer than this gateway accepts",
            ExtractError::Malformed => "the token is not a compact JWT",
            ExtractError::Multiple => "the request carries more than one credential",
        }
    }
}

/// Returns the one token the request carries, `None` when it carries none.
///
/// `headers` holds (lowercase name, raw value) pairs as Envoy hands them over. A token
/// header is a `from_headers` name, read with `_` as `-`. In one, a value that does not
/// start with the source's scheme word (say `Basic …` for `Bearer `) is another kind of
/// credential; a value that starts with the scheme word but not exactly with
/// `value_prefix` (`Bearer:x`, a tab, the scheme alone) is a malformed token, never an
/// absent one. A token found in two places (two headers, a header and a cookie, two
/// cookies, a comma-folded pair), or next to another credential in a token header, is
/// refused: we do not guess which counts.
pub fn extract<'h>(
    headers: &'h [(String, Vec<u8>)],
    sources: Sources,
) -> Result<Option<&'h str>, ExtractError> {
    let mut found: Option<&[u8]> = None;
    let mut other_credential = false;
    let mut take = |raw: &'h [u8]| {
        if found.is_some() {
            return Err(ExtractError::Multiple);
        }
        found = Some(raw);
        Ok(())
    };
    for (name, value) in headers {
        if let Some(source) = sources
            .headers
            .iter()
            .find(|s| same_header_name(&s.name, name))
        {
            match credential(value, source.value_prefix.as_bytes())? {
                Some(raw) => take(raw)?,
                None => other_credential |= !trim_ascii_whitespace(value).is_empty(),
            }
        }
        if !sources.cookies.is_empty() && name.eq_ignore_ascii_case("cookie") {
            for raw in cookie_values(value, sources.cookies) {
                take(raw)?;
            }
        }
    }
    match found {
        Some(_) if other_credential => Err(ExtractError::Multiple),
        Some(raw) => check_token(raw, sources.max_bytes).map(Some),
        None => Ok(None),
    }
}

/// Whether request header `name` is one a token may arrive in (so `forward: false` removes
/// it whatever it holds).
pub fn is_token_header(name: &str, sources: &[HeaderSource]) -> bool {
    sources.iter().any(|s| same_header_name(&s.name, name))
}

/// The token in one token header's value; `None` for another scheme's credential.
fn credential<'v>(value: &'v [u8], prefix: &[u8]) -> Result<Option<&'v [u8]>, ExtractError> {
    let value = trim_ascii_whitespace(value);
    if value.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = strip_prefix_ignore_case(value, prefix) {
        return Ok(Some(trim_ascii_whitespace(rest)));
    }
    let scheme = trim_ascii_whitespace(prefix);
    if scheme.is_empty() {
        return Ok(Some(value));
    }
    if strip_prefix_ignore_case(value, scheme).is_some() {
        return Err(ExtractError::Malformed);
    }
    // `Basic …, Bearer …`: Envoy folds repeated headers with commas.
    let folded = value
        .split(|&b| b == b',')
        .any(|part| strip_prefix_ignore_case(trim_ascii_whitespace(part), scheme).is_some());
    if folded {
        return Err(ExtractError::Multiple);
    }
    Ok(None)
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
            Some(trim_ascii_whitespace(unquoted))
        })
        .collect()
}

/// The bytes a compact JWS may hold (base64url, `.`, and `=` padding some issuers leave), as
/// a table (1: allowed), one load a byte on a path every request takes over tokens of a
/// kilobyte. A test checks it against the definition.
#[rustfmt::skip]
static JWS_BYTES: [u8; 256] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x00
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x10
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, // 0x20
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, // 0x30
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0x40
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, // 0x50
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0x60
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, // 0x70
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x80
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0x90
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0xa0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0xb0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0xc0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0xd0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0xe0
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 0xf0
];

fn is_jws_byte(b: u8) -> bool {
    JWS_BYTES.get(usize::from(b)) == Some(&1)
}

fn check_token(raw: &[u8], max_bytes: usize) -> Result<&str, ExtractError> {
    if raw.len() > max_bytes {
        return Err(ExtractError::TooLong);
    }
    if raw.is_empty() {
        return Err(ExtractError::Malformed);
    }
    if !raw.iter().all(|&b| is_jws_byte(b)) {
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

    #[test]
    fn the_jws_byte_table_is_base64url_dot_and_padding() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=');
            assert_eq!(is_jws_byte(b), expected, "byte {b:#04x}");
        }
    }

    const MAX: usize = 32 * 1024;

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

    fn ex<'h>(
        headers: &'h [(String, Vec<u8>)],
        sources: &[HeaderSource],
        cookies: &[String],
    ) -> Result<Option<&'h str>, ExtractError> {
        extract(
            headers,
            Sources {
                headers: sources,
                cookies,
                max_bytes: MAX,
            },
        )
    }

    fn auth(value: &[u8]) -> Result<Option<String>, ExtractError> {
        ex(&h(&[("authorization", value)]), &bearer(), &[]).map(|t| t.map(str::to_string))
    }

    #[test]
    fn bearer_token_with_any_scheme_case() {
        for v in [
            &b"Bearer a.b.c"[..],
            b"bearer a.b.c",
            b"BEARER   a.b.c  ",
            b"  Bearer a.b.c",
        ] {
            assert_eq!(auth(v), Ok(Some("a.b.c".into())), "{v:?}");
        }
    }

    #[test]
    fn no_header_or_another_scheme_is_no_token() {
        assert_eq!(ex(&h(&[("host", b"x")]), &bearer(), &[]), Ok(None));
        assert_eq!(auth(b"Basic dXNlcjpwYXNz"), Ok(None));
        assert_eq!(auth(b"Bear"), Ok(None));
        assert_eq!(auth(b""), Ok(None));
    }

    #[test]
    fn the_scheme_in_any_other_form_is_a_malformed_token_never_an_absent_one() {
        for v in [
            &b"Bearer\ta.b.c"[..],
            b"Bearer:a.b.c",
            b"Bearer: a.b.c",
            b"Bearer,a.b.c",
            b"Bearer=a.b.c",
            b"Bearer",
            b"Bearer ",
            b"bearer\t",
            b"Bearera.b.c",
            b"Bearer a.b\xff.c",
            b"Bearer a b.c",
            b"Bearer a.\"b.c",
        ] {
            assert_eq!(auth(v), Err(ExtractError::Malformed), "{v:?}");
        }
    }

    #[test]
    fn a_second_credential_beside_the_token_is_refused() {
        // Comma-folded, either order.
        for v in [
            &b"Basic dXNlcjpwYXNz, Bearer a.b.c"[..],
            b"Basic x,bearer a.b.c",
            b"Bearer a.b.c, Basic dXNlcjpwYXNz",
            b"Bearer a.b.c,Bearer d.e.f",
        ] {
            assert_eq!(auth(v), Err(ExtractError::Multiple), "{v:?}");
        }
        // In two headers.
        let two = h(&[
            ("authorization", b"Basic dXNlcjpwYXNz"),
            ("authorization", b"Bearer a.b.c"),
        ]);
        assert_eq!(ex(&two, &bearer(), &[]), Err(ExtractError::Multiple));
        let two = h(&[
            ("authorization", b"Bearer a.b.c"),
            ("authorization", b"Bearer d.e.f"),
        ]);
        assert_eq!(ex(&two, &bearer(), &[]), Err(ExtractError::Multiple));
        // Another scheme alone is not ours to judge.
        let basic = h(&[
            ("authorization", b"Basic dXNlcjpwYXNz"),
            ("x-other", b"Bearer a.b.c"),
        ]);
        assert_eq!(ex(&basic, &bearer(), &[]), Ok(None));
    }

    #[test]
    fn configured_header_without_prefix_and_its_underscore_twin() {
        let sources = vec![HeaderSource {
            name: "x-jwt".into(),
            value_prefix: String::new(),
        }];
        assert_eq!(
            ex(&h(&[("x-jwt", b"a.b.c")]), &sources, &[]),
            Ok(Some("a.b.c"))
        );
        assert_eq!(
            ex(&h(&[("x_jwt", b"a.b.c")]), &sources, &[]),
            Ok(Some("a.b.c")),
            "read as x-jwt"
        );
        assert_eq!(
            ex(
                &h(&[("x-jwt", b"a.b.c"), ("x_jwt", b"d.e.f")]),
                &sources,
                &[]
            ),
            Err(ExtractError::Multiple)
        );
        assert_eq!(
            ex(&h(&[("x-jwt", b"Bearer a.b.c")]), &sources, &[]),
            Err(ExtractError::Malformed)
        );
        assert_eq!(
            ex(&h(&[("authorization", b"Bearer a.b.c")]), &sources, &[]),
            Ok(None)
        );
        assert!(is_token_header("X_JWT", &sources) && !is_token_header("x-jwt2", &sources));
    }

    #[test]
    fn the_size_bound_is_checked_before_parsing() {
        let token = |n: usize| {
            let mut v = b"Bearer ".to_vec();
            v.extend(std::iter::repeat_n(b'a', n));
            v
        };
        let within = |n: usize, max: usize| {
            let headers = h(&[("authorization", &token(n))]);
            let sources = Sources {
                headers: &bearer(),
                cookies: &[],
                max_bytes: max,
            };
            extract(&headers, sources).map(|t| t.is_some())
        };
        assert_eq!(within(MAX, MAX), Ok(true));
        assert_eq!(within(MAX + 1, MAX), Err(ExtractError::TooLong));
        assert_eq!(within(2000, 1024), Err(ExtractError::TooLong));
        // Cognito-shaped ID tokens of users in many groups fit the default.
        assert_eq!(within(12 * 1000, MAX), Ok(true));
        assert_eq!(within(17 * 1000, MAX), Ok(true));
    }

    #[test]
    fn tokens_in_cookies() {
        let names = vec!["id_token".to_string()];
        let headers = h(&[("cookie", b"theme=dark; id_token=a.b.c; other=x")]);
        assert_eq!(ex(&headers, &bearer(), &names), Ok(Some("a.b.c")));
        let quoted = h(&[("cookie", b"id_token=\"a.b.c\"")]);
        assert_eq!(ex(&quoted, &bearer(), &names), Ok(Some("a.b.c")));
        assert_eq!(
            ex(&headers, &bearer(), &[]),
            Ok(None),
            "cookies are off by default"
        );
        let other = h(&[("cookie", b"ID_TOKEN=a.b.c; xid_token=d")]);
        assert_eq!(ex(&other, &bearer(), &names), Ok(None), "names are exact");
        let both = h(&[
            ("authorization", b"Bearer a.b.c"),
            ("cookie", b"id_token=a.b.c"),
        ]);
        assert_eq!(ex(&both, &bearer(), &names), Err(ExtractError::Multiple));
        let beside_basic = h(&[
            ("authorization", b"Basic eA=="),
            ("cookie", b"id_token=a.b.c"),
        ]);
        assert_eq!(
            ex(&beside_basic, &bearer(), &names),
            Err(ExtractError::Multiple)
        );
        let twice = h(&[("cookie", b"id_token=a.b.c; id_token=d.e.f")]);
        assert_eq!(ex(&twice, &bearer(), &names), Err(ExtractError::Multiple));
        let bad = h(&[("cookie", b"id_token=not a jwt")]);
        assert_eq!(ex(&bad, &bearer(), &names), Err(ExtractError::Malformed));
    }
}
