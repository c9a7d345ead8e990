//! The filter's cookies on the wire: their names, reading them from a request's `Cookie`
//! headers, writing `Set-Cookie`, and keeping them from the upstream.
//!
//! Everything works on bytes: an application's own cookies may hold bytes that are not UTF-8,
//! and they must reach the upstream exactly as the browser sent them. A name is compared
//! exactly; a cookie of ours that the request carries twice is not ours to trust (a browser
//! never sends a `__Host-` cookie twice: it is host-only and `Path=/`).

use crate::config::login::Login;

/// What a request's cookies say about one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'h> {
    Absent,
    One(&'h str),
    /// Sent more than once, or with a value that is not UTF-8: never the filter's.
    Unusable,
}

/// Every `(name, value)` of the request's `Cookie` headers, in order, as bytes.
pub fn pairs(headers: &[(String, Vec<u8>)]) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((
                pair.get(..eq)?.trim_ascii(),
                pair.get(eq.saturating_add(1)..)?,
            ))
        })
}

/// The value of cookie `name`, if the request carries it exactly once.
pub fn lookup<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Lookup<'h> {
    let mut found = Lookup::Absent;
    for (n, v) in pairs(headers) {
        if n != name.as_bytes() {
            continue;
        }
        found = match (found, std::str::from_utf8(v.trim_ascii())) {
            (Lookup::Absent, Ok(v)) => Lookup::One(v),
            _ => return Lookup::Unusable,
        };
    }
    found
}

/// The names of the login-state cookies the request carries (each attempt's is named after its
/// state), with their values; a name sent twice appears twice.
pub fn login_states<'h>(
    login: &Login,
    headers: &'h [(String, Vec<u8>)],
) -> Vec<(&'h [u8], &'h [u8])> {
    let prefix = login_prefix(login);
    pairs(headers)
        .filter(|(n, _)| n.starts_with(prefix.as_bytes()))
        .collect()
}

/// Whether cookie `name` is one the filter sets or could be taken for one: its session and
/// login-state names, compared ASCII-case-insensitively (a browser reads the `__Host-` prefix
/// so), with or without the `__Host-`/`__Secure-` prefix (a copy planted by another host).
pub fn is_ours(login: &Login, name: &[u8]) -> bool {
    let bare = strip_browser_prefix(login.cookie_prefix.as_bytes());
    let name = strip_browser_prefix(name);
    let starts = |tail: &[u8]| {
        let mut expected = bare.to_vec();
        expected.extend_from_slice(tail);
        name.len() >= expected.len()
            && name
                .get(..expected.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(&expected))
    };
    starts(b"session_") || starts(b"login_")
}

fn strip_browser_prefix(name: &[u8]) -> &[u8] {
    for prefix in [&b"__host-"[..], b"__secure-"] {
        if let Some(head) = name.get(..prefix.len()) {
            if head.eq_ignore_ascii_case(prefix) {
                return name.get(prefix.len()..).unwrap_or_default();
            }
        }
    }
    name
}

/// The `Cookie` header without the filter's cookies, byte for byte otherwise: `None` when the
/// request carries none of them (leave the header alone), `Some(None)` when nothing is left.
pub fn without_ours(login: &Login, headers: &[(String, Vec<u8>)]) -> Option<Option<Vec<u8>>> {
    let mut removed = false;
    let mut kept: Vec<u8> = Vec::new();
    for (_, value) in headers.iter().filter(|(n, _)| n == "cookie") {
        for pair in value.split(|&b| b == b';') {
            let trimmed = pair.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let name = trimmed
                .split(|&b| b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if is_ours(login, name) {
                removed = true;
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(trimmed);
        }
    }
    removed.then(|| (!kept.is_empty()).then_some(kept))
}

/// The request's headers with every session cookie replaced by `session` (`name=value` pairs;
/// none: without a session), the rest byte for byte.
pub fn replace_session(
    login: &Login,
    headers: &[(String, Vec<u8>)],
    session: &[String],
) -> Vec<(String, Vec<u8>)> {
    let prefix = session_prefix(login);
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len().saturating_add(1));
    let mut cookie: Vec<u8> = Vec::new();
    let mut push = |pair: &[u8]| {
        if !cookie.is_empty() {
            cookie.extend_from_slice(b"; ");
        }
        cookie.extend_from_slice(pair);
    };
    for (name, value) in headers {
        if name != "cookie" {
            out.push((name.clone(), value.clone()));
            continue;
        }
        for pair in value.split(|&b| b == b';').map(<[u8]>::trim_ascii) {
            if !pair.is_empty() && !pair.starts_with(prefix.as_bytes()) {
                push(pair);
            }
        }
    }
    for pair in session {
        push(pair.as_bytes());
    }
    if !cookie.is_empty() {
        out.push(("cookie".into(), cookie));
    }
    out
}

/// A `Set-Cookie` for one of the filter's cookies. Always `Path=/`, `Secure`, `HttpOnly`,
/// `SameSite=Lax` (what `__Host-` needs, and the callback is a cross-site top-level GET).
pub fn set_cookie(login: &Login, name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if let Some(domain) = &login.cookie_domain {
        c.push_str(&format!("; Domain={domain}"));
    }
    c
}

/// The `Set-Cookie` that removes cookie `name`.
pub fn clear(login: &Login, name: &str) -> String {
    set_cookie(login, name, "", Some(0))
}

/// The `name=value` of a `Set-Cookie` the filter made, if it sets a value.
pub fn pair_of(set_cookie: &str) -> Option<&str> {
    let pair = set_cookie.split(';').next()?;
    (!pair.ends_with('=')).then_some(pair)
}

pub fn session_name(login: &Login) -> String {
    format!("{}session", login.cookie_prefix)
}

pub fn chunk_name(login: &Login, i: usize) -> String {
    format!("{}session_{i}", login.cookie_prefix)
}

pub fn login_cookie_name(login: &Login, state: &str) -> String {
    format!("{}{state}", login_prefix(login))
}

fn session_prefix(login: &Login) -> String {
    format!("{}session_", login.cookie_prefix)
}

fn login_prefix(login: &Login) -> String {
    format!("{}login_", login.cookie_prefix)
}
