//! Signing out at `logout_path`: a cross-site request asks first; otherwise the session is
//! cleared, ended in the process and its refresh token revoked, and the browser goes to
//! Cognito's `/logout`.

use super::{
    chunk_name, clear, redirect, session, session_chunk_count, token_call, url, Call, Failure,
    Opened, Session, ENDED_REFRESHABLE_SECONDS,
};
use crate::config::login::Login;
use crate::response::Response;

/// A session ended at logout: refused in the whole process until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub sid: String,
    pub until: u64,
}

/// What a request to `logout_path` gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Logout {
    /// A cross-site request: a page that asks to confirm (a same-origin form post), and
    /// nothing ended.
    Confirm(Response),
    /// Signed out: the session to end, the refresh token to revoke first, then the answer.
    Out {
        response: Response,
        revoke: Option<Call>,
        ended: Option<Ended>,
    },
}

/// A request to `logout_path`. A browser that says the request comes from another site
/// (`Sec-Fetch-Site: cross-site`, or a POST whose `Origin` is another) gets a page that asks to
/// confirm with a same-origin form post: a cross-site page cannot sign a user out. Otherwise
/// the session is cleared and ended in the process, its refresh token revoked, and the browser
/// sent to Cognito's `/logout`, which ends the hosted UI's own session and comes back to
/// `post_logout_path`.
pub fn logout(
    login: &Login,
    method: &[u8],
    authority: &[u8],
    headers: &[(String, Vec<u8>)],
    now: u64,
) -> Result<Logout, Failure> {
    let host = url::host(authority).ok_or(Failure::BadHost)?;
    if is_cross_site(login, method, host, headers) {
        return Ok(Logout::Confirm(confirm_logout(login)));
    }
    let back = format!(
        "{}://{host}{}",
        login.external_scheme, login.post_logout_path
    );
    let location = format!(
        "{}?client_id={}&logout_uri={}",
        login.logout_url,
        url::encode(&login.client_id),
        url::encode(&back)
    );
    let chunks = session_chunk_count(login, headers).max(1);
    let cookies = (0..chunks)
        .map(|i| clear(login, &chunk_name(login, i)))
        .collect();
    let opened = match session(login, headers) {
        Session::Open(o) => Some(o),
        _ => None,
    };
    Ok(Logout::Out {
        response: redirect(&location, cookies),
        revoke: opened.as_ref().and_then(|o| revoke_call(login, o)),
        ended: opened.map(|o| Ended {
            until: match o.refresh {
                Some(_) => o
                    .expires_at
                    .max(now.saturating_add(ENDED_REFRESHABLE_SECONDS)),
                None => o.expires_at,
            },
            sid: o.sid,
        }),
    })
}

/// Whether the browser says a logout request comes from another site. A same-site link, a
/// typed URL and the confirmation page's form are not; a client that sends neither Fetch
/// Metadata nor `Origin` (not a browser, or an old one) is taken at its word.
fn is_cross_site(login: &Login, method: &[u8], host: &str, headers: &[(String, Vec<u8>)]) -> bool {
    match crate::headers::header(headers, "sec-fetch-site") {
        Some(site) => !matches!(site, b"same-origin" | b"same-site" | b"none"),
        None if method != b"GET" && method != b"HEAD" => {
            let origin = format!("{}://{host}", login.external_scheme);
            crate::headers::header(headers, "origin").is_some_and(|o| o != origin.as_bytes())
        }
        None => false,
    }
}

/// The page a cross-site logout gets: one button, a same-origin POST to `logout_path`, and a
/// page no other site may frame (a click on it must be the user's own).
fn confirm_logout(login: &Login) -> Response {
    let action = login.logout_path.as_deref().unwrap_or("/");
    Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
            (
                "content-security-policy".into(),
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'".into(),
            ),
            ("x-frame-options".into(), "DENY".into()),
        ],
        body: format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sign out?</title></head>\
             <body><h1>Sign out?</h1><p>Another site sent you here to sign out.</p>\
             <form method=\"post\" action=\"{action}\"><button type=\"submit\">Sign out</button></form>\
             <p><a href=\"/\">Stay signed in</a></p></body></html>\n"
        ),
    }
}

/// At logout, the request that revokes the session's refresh token (RFC 7009, Cognito's
/// `/oauth2/revoke`, `client_secret_basic`), if the session has one.
fn revoke_call(login: &Login, session: &Opened) -> Option<Call> {
    let refresh = session.refresh.as_deref()?;
    let body = format!(
        "token={}&token_type_hint=refresh_token&client_id={}",
        url::encode(refresh),
        url::encode(&login.client_id),
    );
    let mut call = token_call(login, body);
    for (name, value) in &mut call.headers {
        if name == ":path" {
            value.clone_from(&login.revoke_path);
        }
    }
    Some(call)
}
