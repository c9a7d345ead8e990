//! The decision for a filter with browser sign-in: the callback, the logout, a browser sent to
//! sign in, and a request allowed on its session — around [`super::decide_token`].

use super::{deny, Decision, Denied, Lists, Redirected, Request};
use crate::cache::TokenCache;
use crate::config::login::Login;
use crate::config::Config;
use crate::headers::header;
use crate::jwks::KeySet;
use crate::response::Response;
use crate::session::{self, Failure, Random, Session};
use crate::signature::SignatureVerifier;
use crate::token;

#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    request: &Request,
    config: &Config,
    login: &Login,
    keys: &[Option<KeySet>],
    lists: &Lists,
    signatures: &dyn SignatureVerifier,
    cache: &mut TokenCache,
    now: u64,
    random: &dyn Fn() -> Option<Random>,
) -> Decision {
    let authority = header(request.headers, ":authority")
        .or_else(|| header(request.headers, "host"))
        .unwrap_or_default();
    if session::is_path(request.path, &login.callback_path) {
        // A code is good for one exchange, and the ID token it yields needs the provider's
        // keys: before they are in, a valid callback is answered "again in a second" with
        // its code unused (once its login state expires, that failure is shown instead).
        let has_keys = keys.get(login.provider).is_some_and(Option::is_some);
        return match session::callback(login, authority, request.path, request.headers, now) {
            Ok(_) if !has_keys => failed_callback(login, request, Failure::KeysNotLoaded),
            Ok(call) => Decision::Call(Box::new(call)),
            Err(f) => failed_callback(login, request, f),
        };
    }
    if login
        .logout_path
        .as_deref()
        .is_some_and(|p| session::is_path(request.path, p))
    {
        return match session::logout(login, request.method, authority, request.headers, now) {
            Ok(logout) => Decision::Logout(Box::new(logout)),
            Err(f) => deny(f.page(), f.reason(), None),
        };
    }
    let bearer = !matches!(
        token::extract(request.headers, token::Sources::of(config)),
        Ok(None)
    );
    match super::decide_token(request, config, keys, lists, signatures, cache, now) {
        // A browser that a sign-in can help is sent to sign in; a request that carried a token
        // header, an API call or an XHR keeps its 401.
        Decision::Deny(denied)
            if denied.sign_in
                && !bearer
                && session::is_navigation(request.method, request.headers) =>
        {
            let start = |r: Random| {
                session::start(login, authority, request.path, request.headers, &r, now)
            };
            match random().map(start) {
                Some(Ok(response)) => Decision::Redirect(Redirected {
                    response,
                    reason: "login",
                }),
                _ => Decision::Deny(denied),
            }
        }
        // Signed in, and refused for what a new sign-in cannot change (the route needs more
        // than this session gives): a page that says why, never another trip to sign in.
        Decision::Deny(mut denied)
            if !bearer
                && matches!(denied.response.status, 401 | 403)
                && session::is_navigation(request.method, request.headers)
                && matches!(session::session(login, request.headers), Session::Open(_)) =>
        {
            denied.response = refusal_page(&denied.response);
            Decision::Deny(denied)
        }
        Decision::Allow(mut allowed) => {
            // The session's ID token as a bearer token, when asked for and when the request
            // was allowed on its session (it carried no token of its own).
            if login.forward_id_token && !bearer {
                if let Session::Open(s) = session::session(login, request.headers) {
                    allowed
                        .replace
                        .push(("authorization".into(), format!("Bearer {}", s.id).into()));
                }
            }
            match session::upstream_cookie(login, request.headers) {
                None => {}
                Some(None) => allowed.remove.push("cookie".into()),
                Some(Some(rest)) => allowed.replace.push(("cookie".into(), rest)),
            }
            Decision::Allow(allowed)
        }
        decision => decision,
    }
}

/// The answer to a callback that failed: its page (clearing the attempt's cookie), its reason.
fn failed_callback(login: &Login, request: &Request, f: Failure) -> Decision {
    Decision::Deny(Denied {
        login: Some(f),
        ..Denied::new(
            session::callback_failed(login, request.path, f),
            f.reason(),
            None,
        )
    })
}

/// A refusal as a page for a signed-in browser: the same status and challenge, the reason in
/// words.
fn refusal_page(refusal: &Response) -> Response {
    let description = serde_json::from_str::<serde_json::Value>(&refusal.body)
        .ok()
        .and_then(|v| v.get("error_description")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let escaped: String = description
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect();
    let mut headers: Vec<(String, String)> = refusal
        .headers
        .iter()
        .filter(|(n, _)| n != "content-type")
        .cloned()
        .collect();
    headers.push(("content-type".into(), "text/html; charset=utf-8".into()));
    headers.push(("cache-control".into(), "no-store".into()));
    Response {
        status: refusal.status,
        headers,
        body: format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Not allowed</title></head>\
             <body><h1>You are signed in, but this page is not open to you</h1><p>{escaped}</p>\
             <p><a href=\"/\">Home</a></p></body></html>\n"
        ),
    }
}
