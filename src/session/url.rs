//! The URL pieces of a sign-in: percent-encoding, query strings, and the checks that keep a
//! return URL on this origin.

/// The longest return path kept in a login-state cookie; a longer one is not kept (it would
/// make the cookie large) and the browser returns to `/`.
const MAX_RETURN_BYTES: usize = 1024;

/// `s` with every byte but the unreserved ones (RFC 3986 §2.3) percent-encoded: safe in a
/// query value, a form body and a Basic credential (RFC 6749 §2.3.1).
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0xf] {
                out.push(HEX.get(usize::from(nibble)).map_or('0', |&h| char::from(h)));
            }
        }
    }
    out
}

/// The value of query parameter `name` in `query` (`a=1&b=2`), form-decoded; `None` when it
/// is absent or not valid UTF-8 once decoded. A parameter given twice counts as absent: we
/// do not guess which one is meant.
pub fn query_param(query: &[u8], name: &str) -> Option<String> {
    let mut found = None;
    for pair in query.split(|&b| b == b'&') {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (pair.get(..i)?, pair.get(i.saturating_add(1)..)?),
            None => (pair, &b""[..]),
        };
        if decode(key).as_deref() == Some(name) {
            if found.is_some() {
                return None;
            }
            found = Some(decode(value)?);
        }
    }
    found
}

/// Form-decodes `raw`: `+` is a space, `%XX` a byte.
fn decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|&h| char::from(h).to_digit(16))?;
                let lo = bytes.next().and_then(|&l| char::from(l).to_digit(16))?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The request path (with its query) as a return URL, if it surely stays on this origin: a
/// path that starts with a single `/` — never `//host` or `/\host`, which browsers read as
/// another host — of visible ASCII without a backslash.
pub fn safe_return(path: &[u8]) -> Option<String> {
    let ok = path.len() <= MAX_RETURN_BYTES
        && path.first() == Some(&b'/')
        && !matches!(path.get(1), Some(b'/' | b'\\'))
        && path.iter().all(|&b| b.is_ascii_graphic() && b != b'\\');
    ok.then(|| String::from_utf8_lossy(path).into_owned())
}

/// The request's `:authority`, if it is a plain `host[:port]` that may go into a URL.
pub fn host(authority: &[u8]) -> Option<&str> {
    let ok = !authority.is_empty()
        && authority.len() <= 255
        && authority
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if ok {
        std::str::from_utf8(authority).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_decoding() {
        assert_eq!(encode("openid email"), "openid%20email");
        assert_eq!(encode("a+b/c:d?é"), "a%2Bb%2Fc%3Ad%3F%C3%A9");
        assert_eq!(
            query_param(b"code=a%2Bb+c&state=xyz", "code").as_deref(),
            Some("a+b c")
        );
        assert_eq!(query_param(b"code=1&code=2", "code"), None, "twice");
        assert_eq!(query_param(b"code=%zz", "code"), None);
        assert_eq!(query_param(b"state", "state").as_deref(), Some(""));
        assert_eq!(query_param(b"", "state"), None);
    }

    #[test]
    fn a_return_url_never_leaves_the_origin() {
        for ok in ["/", "/app?x=1&y=%2F", "/a/b#c"] {
            assert_eq!(safe_return(ok.as_bytes()).as_deref(), Some(ok));
        }
        for bad in [
            "//evil.example/",
            "/\\evil.example/",
            "/a\\b",
            "https://evil.example/",
            "evil",
            "",
            "/a b",
            "/a\r\nSet-Cookie: x",
            "/\u{e9}",
        ] {
            assert_eq!(safe_return(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(
            safe_return(format!("/{}", "a".repeat(4096)).as_bytes()),
            None
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(host(b"app.example.com:8443"), Some("app.example.com:8443"));
        assert_eq!(host(b"[::1]:80"), Some("[::1]:80"));
        for bad in [&b""[..], b"a/b", b"a@b", b"evil.com#", b"a b"] {
            assert_eq!(host(bad), None);
        }
    }
}
