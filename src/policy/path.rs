//! The path and method a route decision rests on: one canonical form, owned by the filter.
//!
//! A rule guards a resource only if the filter and the upstream agree on which resource a
//! request names. Upstreams differ — servlet containers drop `;params` from each segment and
//! Jetty 9.4 / IIS decode `%uXXXX`; Werkzeug, Django and most others decode every escape
//! once; Express, ASP.NET and IIS compare paths without regard to case; Flask and Django
//! upper-case the method — so a path or method that some mainstream upstream could read as
//! another resource than the rules do is refused, and what is left is matched in its
//! decoded form. Nothing here depends on Envoy's path settings.

use std::borrow::Cow;

/// Why a request cannot be matched against the rules reliably (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNormal {
    /// The path could name another resource to some upstream (see [`canonical`]).
    Path,
    /// The method is not an upper-case token (see [`check_method`]).
    Method,
}

impl NotNormal {
    /// The `error_description` a client gets.
    pub fn description(self) -> &'static str {
        match self {
            NotNormal::Path => "the request path is not in normal form (dot segments, '//', ';', backslashes, control or non-ASCII bytes, or escapes that are needless, malformed or of '/', '\\', ';', '.', '%' or control characters)",
            NotNormal::Method => "the request method is not an upper-case token",
        }
    }

    /// A short, stable name for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            NotNormal::Path => "path_not_normal",
            NotNormal::Method => "method_not_normal",
        }
    }
}

/// The path (without query) that rules are matched against: the request's path with its
/// percent escapes decoded, once every form an upstream could read differently is refused.
///
/// Refused: a path that does not start with `/` (except `*`); a raw byte that is not visible
/// ASCII (space, control, non-ASCII), `\` or `;` (servlet path parameters); an empty (`//`),
/// `.` or `..` segment; `%` not followed by two hex digits (`%u0041` included); an escape of
/// an unreserved character (`%61`), of `/`, `\`, `;`, of a control character (`%00`–`%1F`,
/// `%7F`), or of a `%` that starts another escape (`%2561`: decoded twice, that is `a`);
/// escapes whose bytes are not strict UTF-8 (`%C0%AE`, `%E0%80%AE`, `%FF`, surrogates).
/// With `case_folding`, also a decoded character whose case mapping is ASCII (`ı` upper-cases
/// to `I`, `ſ` to `S`, the Kelvin sign lower-cases to `k`).
pub fn canonical(path: &[u8], case_folding: bool) -> Result<Cow<'_, str>, NotNormal> {
    if path == b"*" {
        return Ok(Cow::Borrowed("*"));
    }
    if path.first() != Some(&b'/') || has_bad_segment(path, false) {
        return Err(NotNormal::Path);
    }
    let decoded = decode(path)?;
    if case_folding && decoded.chars().any(folds_to_ascii) {
        return Err(NotNormal::Path);
    }
    Ok(decoded)
}

/// A rule's pattern in the form requests are matched in (decoded), or why it can never
/// match a request that [`canonical`] lets through. A prefix may end in a partial segment
/// (`/a/.` matches `/a/.well-known`), not in a partial escape.
pub fn pattern(p: &str, prefix: bool, case_sensitive: bool) -> Result<String, &'static str> {
    let bytes = p.as_bytes();
    if bytes.first() != Some(&b'/') || has_bad_segment(bytes, prefix) {
        return Err("would never match: requests with '//', '.' or '..' segments are refused");
    }
    let decoded = decode(bytes).map_err(|_| {
        "would never match: requests with ';', '\\', needless, malformed or refused escapes are refused (write the character itself, or a valid UTF-8 escape)"
    })?;
    if !case_sensitive && !decoded.is_ascii() {
        return Err(
            "a case-insensitive pattern must be ASCII: non-ASCII letters have no ASCII case",
        );
    }
    Ok(decoded.into_owned())
}

/// A method the rules can rely on: an RFC 9110 token with no lower-case letter. Envoy's
/// HTTP/2 codec forwards `:method: delete`, which Flask and Django run as `DELETE`.
pub fn check_method(method: &[u8]) -> Result<(), NotNormal> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if method.is_empty() || !method.iter().all(tchar) || method.iter().any(u8::is_ascii_lowercase) {
        return Err(NotNormal::Method);
    }
    Ok(())
}

/// Whether a rule's method list covers `method`: frameworks run the GET handler for HEAD,
/// so `GET` covers `HEAD`. An empty list covers every method.
pub fn method_matches(methods: &[String], method: &[u8]) -> bool {
    methods.is_empty()
        || methods
            .iter()
            .any(|m| m.as_bytes() == method || (m == "GET" && method == b"HEAD"))
}

/// `path` (canonical) equals `p` (a pattern), or starts with it.
pub fn path_matches(path: &str, p: &str, prefix: bool, case_sensitive: bool) -> bool {
    let (path, p) = (path.as_bytes(), p.as_bytes());
    let head = if prefix {
        path.get(..p.len())
    } else {
        Some(path)
    };
    head.is_some_and(|h| {
        if case_sensitive {
            h == p
        } else {
            h.eq_ignore_ascii_case(p)
        }
    })
}

/// An empty, `.` or `..` segment. With `partial_last`, the last segment is the start of one
/// (a prefix pattern), so only an empty one counts.
fn has_bad_segment(path: &[u8], partial_last: bool) -> bool {
    let segments: Vec<&[u8]> = path.split(|b| *b == b'/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    segments.iter().enumerate().any(|(i, s)| match *s {
        b"" => i != last,
        b"." | b".." => !(partial_last && i == last),
        _ => false,
    })
}

/// The path with its escapes decoded, or `NotNormal::Path` for a byte or escape that some
/// upstream reads otherwise (see [`canonical`]). Segments cannot change: `/` is never decoded.
fn decode(path: &[u8]) -> Result<Cow<'_, str>, NotNormal> {
    let visible = |b: &u8| b.is_ascii_graphic() && *b != b'\\' && *b != b';';
    if !path.iter().all(visible) {
        return Err(NotNormal::Path);
    }
    if !path.contains(&b'%') {
        return std::str::from_utf8(path)
            .map(Cow::Borrowed)
            .map_err(|_| NotNormal::Path);
    }
    let mut out = Vec::with_capacity(path.len());
    let mut rest = path;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'%' {
            out.push(b);
            continue;
        }
        let (byte, tail) = match rest {
            [hi, lo, tail @ ..] => match (hex(*hi), hex(*lo)) {
                (Some(hi), Some(lo)) => (hi * 16 + lo, tail),
                _ => return Err(NotNormal::Path),
            },
            _ => return Err(NotNormal::Path),
        };
        rest = tail;
        let starts_escape = match rest {
            [b'u' | b'U', ..] => true,
            [hi, lo, ..] => hex(*hi).is_some() && hex(*lo).is_some(),
            _ => false,
        };
        let refused = byte.is_ascii_control()
            || byte.is_ascii_alphanumeric()
            || b"-._~/\\;".contains(&byte)
            || (byte == b'%' && starts_escape);
        if refused {
            return Err(NotNormal::Path);
        }
        out.push(byte);
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| NotNormal::Path)
}

/// A non-ASCII character that a Unicode-aware case-insensitive comparison could take for an
/// ASCII letter.
fn folds_to_ascii(c: char) -> bool {
    !c.is_ascii()
        && c.to_lowercase()
            .chain(c.to_uppercase())
            .any(|f| f.is_ascii())
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> String {
        canonical(path.as_bytes(), false)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"))
            .into_owned()
    }

    #[test]
    fn refused_paths() {
        for bad in [
            // dot segments, empty segments, backslashes (as before)
            "/healthz/../admin",
            "/healthz/./x",
            "/a/..",
            "/a/.",
            "/..",
            "//admin",
            "/a//b",
            "/a\\b",
            "/a%5cb",
            "/a%5Cb",
            // path parameters: servlet containers drop ';…' from each segment
            "/admin;/settings",
            "/admin;jsessionid=0/users/1",
            "/public/..;/admin",
            "/public/.;/admin",
            "/admin;",
            "/a%3bb",
            "/a%3Bb",
            // encoded slashes and dots
            "/admin%2Fusers",
            "/admin%2fusers",
            "/public/%2e%2e/admin",
            "/a/%2E%2E/admin",
            "/a%2eb",
            // needless escapes of unreserved characters
            "/%61dmin",
            "/%41dmin",
            "/a%7eb",
            "/a%5Fb",
            "/a%2Db",
            "/a%30",
            // '%' not followed by two hex digits, %u included
            "/%",
            "/a%",
            "/a%4",
            "/%zz",
            "/%u0061dmin",
            "/%U0061dmin",
            "/a%g1",
            // encoded '%' that starts another escape (double decoding)
            "/%2561dmin",
            "/%252F",
            "/%25u0061",
            // control characters
            "/a%00b",
            "/a%00",
            "/a%0A",
            "/a%0d",
            "/a%1F",
            "/a%7F",
            "/a%09",
            // invalid or overlong UTF-8 in escapes
            "/%C0%AE",
            "/%C0%AF",
            "/%E0%80%AE",
            "/%F0%80%80%AE",
            "/%FF",
            "/%C3",
            "/%C3x",
            "/%A9",
            "/%ED%A0%80",
            "/%F4%90%80%80",
            // not a path
            "",
            "admin",
            "**",
        ] {
            assert_eq!(
                canonical(bad.as_bytes(), false),
                Err(NotNormal::Path),
                "{bad}"
            );
            assert_eq!(
                canonical(bad.as_bytes(), true),
                Err(NotNormal::Path),
                "{bad}"
            );
        }
        // raw bytes that are not visible ASCII
        for bad in [
            &b"/a b"[..],
            b"/a\tb",
            b"/a\x00",
            b"/a\x7f",
            b"/a\r\n",
            b"/caf\xc3\xa9",
            b"/\xff",
            b"/\xc0\xae",
        ] {
            assert_eq!(canonical(bad, false), Err(NotNormal::Path), "{bad:?}");
        }
    }

    #[test]
    fn legitimate_paths_are_decoded() {
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("*"), "*");
        assert_eq!(ok("/healthz"), "/healthz");
        assert_eq!(ok("/a/b/"), "/a/b/");
        assert_eq!(ok("/a/..b/c."), "/a/..b/c.");
        assert_eq!(ok("/a/.well-known/x"), "/a/.well-known/x");
        assert_eq!(ok("/a%20b"), "/a b");
        assert_eq!(ok("/a%2Bb"), "/a+b");
        assert_eq!(ok("/a+b"), "/a+b");
        assert_eq!(ok("/k%3Dv"), "/k=v");
        assert_eq!(ok("/caf%C3%A9"), "/café");
        assert_eq!(ok("/caf%c3%a9"), "/café", "hex digits in either case");
        assert_eq!(ok("/%E2%82%AC"), "/€");
        assert_eq!(ok("/%F0%9F%98%80"), "/😀");
        assert_eq!(ok("/100%25"), "/100%");
        assert_eq!(ok("/100%25zz"), "/100%zz");
        assert_eq!(ok("/a%3Fb"), "/a?b");
        assert_eq!(
            ok("/api/v1/tables/name/svc.db.%22dim.shop%22"),
            "/api/v1/tables/name/svc.db.\"dim.shop\""
        );
        assert_eq!(ok("/a:b@c!$&'()*,="), "/a:b@c!$&'()*,=");
    }

    #[test]
    fn case_folding_refuses_characters_that_fold_to_ascii() {
        for bad in ["/adm%C4%B1n", "/%C5%BFecret", "/%E2%84%AAey", "/%C4%B0d"] {
            assert!(canonical(bad.as_bytes(), false).is_ok(), "{bad}");
            assert_eq!(
                canonical(bad.as_bytes(), true),
                Err(NotNormal::Path),
                "{bad}"
            );
        }
        assert_eq!(canonical(b"/caf%C3%A9", true).as_deref(), Ok("/café"));
        assert_eq!(canonical(b"/%C3%89t%C3%A9", true).as_deref(), Ok("/Été"));
    }

    #[test]
    fn methods() {
        for good in ["GET", "HEAD", "DELETE", "PROPFIND", "M-SEARCH", "X_1"] {
            assert_eq!(check_method(good.as_bytes()), Ok(()), "{good}");
        }
        for bad in [
            &b"delete"[..],
            b"Delete",
            b"gET",
            b"",
            b"GET ",
            b"G T",
            b"GET\0",
            b"GE\xc3\x89T",
            b"GET/",
            b"(GET)",
        ] {
            assert_eq!(check_method(bad), Err(NotNormal::Method), "{bad:?}");
        }
        let get = ["GET".to_string()];
        assert!(method_matches(&get, b"GET"));
        assert!(method_matches(&get, b"HEAD"), "GET covers HEAD");
        assert!(!method_matches(&get, b"POST"));
        assert!(!method_matches(&["HEAD".to_string()], b"GET"));
        assert!(method_matches(&[], b"PROPFIND"));
    }

    #[test]
    fn patterns() {
        assert_eq!(pattern("/admin/", true, true).as_deref(), Ok("/admin/"));
        assert_eq!(pattern("/caf%C3%A9", false, true).as_deref(), Ok("/café"));
        assert_eq!(pattern("/a+b", true, true).as_deref(), Ok("/a+b"));
        assert_eq!(pattern("/a%2Bb", true, true).as_deref(), Ok("/a+b"));
        assert_eq!(
            pattern("/a/.", true, true).as_deref(),
            Ok("/a/."),
            "a partial segment"
        );
        assert!(
            pattern("/a/.", false, true).is_err(),
            "an exact dot segment"
        );
        assert!(pattern("/a/../b", true, true).is_err());
        assert!(pattern("//a", true, true).is_err());
        assert!(pattern("/a;b", true, true).is_err());
        assert!(pattern("/a%2F", true, true).is_err());
        assert!(pattern("/a%", true, true).is_err(), "a partial escape");
        assert!(pattern("/a%C3", true, true).is_err());
        assert!(
            pattern("/caf%C3%A9", true, false).is_err(),
            "ASCII only, ignoring case"
        );
        assert_eq!(pattern("/Admin", true, false).as_deref(), Ok("/Admin"));
    }

    #[test]
    fn matching_on_the_decoded_path() {
        assert!(path_matches("/admin/x", "/admin/", true, true));
        assert!(!path_matches("/ADMIN/x", "/admin/", true, true));
        assert!(path_matches("/ADMIN/x", "/admin/", true, false));
        assert!(path_matches("/Admin", "/admin", false, false));
        assert!(!path_matches("/admin/", "/admin", false, false));
        assert!(!path_matches("/adm", "/admin", true, false));
        assert!(path_matches("/a+b/c", "/a+b", true, true));
    }

    /// Each path `canonical` accepts, read by each modelled upstream, names the resource the
    /// rules saw (the properties the fuzz target checks, on a sample).
    #[test]
    fn accepted_paths_mean_the_same_to_every_modelled_upstream() {
        for path in ["/a%20b/c", "/caf%C3%A9/x", "/a%2Bb", "/100%25", "/x/y/"] {
            let seen = ok(path);
            for upstream in super::models::UPSTREAMS {
                assert_eq!(
                    upstream.resolve(path.as_bytes()).as_deref(),
                    Some(seen.as_str()),
                    "{path} to {}",
                    upstream.name
                );
            }
        }
    }
}

/// How mainstream upstreams read a raw path: what the fuzz target and tests check accepted
/// paths against. Not used by the filter.
#[doc(hidden)]
pub mod models {
    /// One upstream's reading of a raw path (without query): the resource it routes to, or
    /// `None` where it refuses the request.
    pub struct Upstream {
        pub name: &'static str,
        pub resolve: fn(&[u8]) -> Option<String>,
    }

    impl Upstream {
        pub fn resolve(&self, path: &[u8]) -> Option<String> {
            (self.resolve)(path)
        }
    }

    pub const UPSTREAMS: [Upstream; 3] = [
        Upstream {
            name:
                "servlet (Jetty 9.4: ';' parameters dropped, %uXXXX decoded, dot segments resolved)",
            resolve: servlet,
        },
        Upstream {
            name: "Werkzeug / Flask (escapes decoded once, invalid UTF-8 replaced)",
            resolve: werkzeug,
        },
        Upstream {
            name: "double-decoding proxy in front of an app",
            resolve: double_decode,
        },
    ];

    /// Jetty 9.4 / Tomcat: each segment loses its `;parameters`, then escapes (with `%uXXXX`)
    /// are decoded, then `.` and `..` segments are resolved.
    pub fn servlet(path: &[u8]) -> Option<String> {
        let stripped: Vec<u8> = path
            .split(|b| *b == b'/')
            .map(|s| match s.iter().position(|b| *b == b';') {
                Some(i) => s.get(..i).unwrap_or(s),
                None => s,
            })
            .collect::<Vec<_>>()
            .join(&b'/');
        let decoded = percent_decode(&stripped, true);
        Some(resolve_dots(&String::from_utf8_lossy(&decoded)))
    }

    /// Werkzeug: every valid `%XX` decoded once, invalid UTF-8 replaced, no dot resolution.
    pub fn werkzeug(path: &[u8]) -> Option<String> {
        Some(String::from_utf8_lossy(&percent_decode(path, false)).into_owned())
    }

    /// A proxy that decodes once before an upstream that decodes again.
    pub fn double_decode(path: &[u8]) -> Option<String> {
        let once = percent_decode(path, false);
        Some(String::from_utf8_lossy(&percent_decode(&once, false)).into_owned())
    }

    /// Decodes `%XX` (and `%uXXXX` when asked, as UTF-8); leaves malformed escapes as they are.
    pub fn percent_decode(path: &[u8], percent_u: bool) -> Vec<u8> {
        let hex = |b: u8| char::from(b).to_digit(16);
        let mut out = Vec::with_capacity(path.len());
        let mut i = 0;
        while let Some(&b) = path.get(i) {
            if b == b'%' {
                let h = |k: usize| path.get(i + k).copied().and_then(hex);
                if percent_u && matches!(path.get(i + 1), Some(b'u' | b'U')) {
                    if let (Some(a), Some(b), Some(c), Some(d)) = (h(2), h(3), h(4), h(5)) {
                        let code = ((a * 16 + b) * 16 + c) * 16 + d;
                        let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
                        out.extend_from_slice(ch.to_string().as_bytes());
                        i += 6;
                        continue;
                    }
                }
                if let (Some(hi), Some(lo)) = (h(1), h(2)) {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                    i += 3;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        out
    }

    /// Whether `path` starts with `pattern` to an upstream that compares with Unicode case
    /// mapping (ASP.NET's OrdinalIgnoreCase upper-cases, JavaScript's `/i` regexes fold).
    pub fn unicode_ci_prefix(path: &str, pattern: &str) -> bool {
        let same = |a: char, b: char| {
            a == b || a.to_uppercase().eq(b.to_uppercase()) || a.to_lowercase().eq(b.to_lowercase())
        };
        let mut chars = path.chars();
        pattern
            .chars()
            .all(|p| chars.next().is_some_and(|c| same(c, p)))
    }

    /// Resolves `.` and `..` segments and merges empty ones, as servlet containers do.
    pub fn resolve_dots(path: &str) -> String {
        let trailing = path.ends_with('/') && path.len() > 1;
        let mut stack: Vec<&str> = Vec::new();
        for segment in path.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                s => stack.push(s),
            }
        }
        let mut out = format!("/{}", stack.join("/"));
        if trailing && out != "/" {
            out.push('/');
        }
        out
    }
}
