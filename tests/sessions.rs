//! Browser sessions end to end, at the HTTP level: the real Envoy with the built filter, a
//! stand-in for the user pool domain's token endpoint (it answers what the test scripts, with
//! ID tokens signed by the pool's key), and upstreams that show what they received.
//!
//! What a real browser makes real (a sibling host planting cookies, a flood of sign-ins, the
//! no-loop page) is in tests/browser_sessions.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

const SECRET: &str = "the-client-secret";
const COOKIE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const NAVIGATION: [(&str, &[u8]); 3] = [
    ("accept", b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
    ("sec-fetch-mode", b"navigate"),
    ("sec-fetch-dest", b"document"),
];

/// The token endpoint's next answers: the claims of the ID token it signs (the nonce of the
/// attempt filled in) and the refresh token it hands out; every call counted.
#[derive(Default)]
struct Script {
    claims: Value,
    refresh: Option<String>,
    /// The claims of the access token it signs (`None`: an opaque one).
    access: Option<Value>,
    /// Hands out a new refresh token with every answer (Cognito's refresh-token rotation).
    rotate: bool,
    /// How long it takes to answer.
    delay: std::time::Duration,
    nonce: String,
    calls: usize,
}

struct Gateway {
    envoy: Envoy,
    script: Arc<Mutex<Script>>,
    _servers: Vec<Server>,
}

/// The filter with browser sign-in (provider `cognito`, its token endpoint the stand-in),
/// `login` merged into the login section; the upstream is `upstream_port`.
fn gateway(upstream_port: u16, login: Value, concurrency: u32) -> Gateway {
    gateway_with(upstream_port, login, concurrency, |_, _| {})
}

/// As [`gateway`], with the configuration and the clusters changed by `edit` first.
fn gateway_with(
    upstream_port: u16,
    login: Value,
    concurrency: u32,
    edit: impl FnOnce(&mut Value, &mut Vec<Value>),
) -> Gateway {
    let jwks = Server::start(Arc::new(|_r: &ServerRequest| {
        canned(200, tokens::jwks(&[("key1", "k1")]))
    }));
    let script = Arc::new(Mutex::new(Script {
        claims: tokens::id_claims(now()),
        ..Script::default()
    }));
    let token_endpoint = {
        let script = script.clone();
        Server::start(Arc::new(move |_r: &ServerRequest| {
            let mut s = script.lock().unwrap();
            s.calls += 1;
            let claims = tokens::with(s.claims.clone(), "nonce", s.nonce.clone().into());
            let access = s.access.as_ref().map_or("opaque".to_string(), |claims| {
                tokens::sign(
                    "key1",
                    "k1",
                    &tokens::with(claims.clone(), "jti", s.calls.into()),
                )
            });
            let mut answer = json!({ "id_token": tokens::sign("key1", "k1", &claims),
                "access_token": access, "token_type": "Bearer", "expires_in": 3600 });
            if s.rotate {
                s.refresh = Some(format!("rotated-refresh-token-{}", s.calls));
            }
            if let Some(r) = &s.refresh {
                answer["refresh_token"] = r.clone().into();
            }
            Canned {
                delay: s.delay,
                ..canned(200, answer.to_string())
            }
        }))
    };
    let mut config = json!({
        "providers": [provider("cognito", jwks.port)],
        "rules": [{ "match": { "prefix": "/" }, "require": { "authenticated": true } }],
        "login": { "provider": "cognito", "client_id": tokens::CLIENT,
            "client_secret_env": "CEA_CLIENT_SECRET", "cookie_key_env": "CEA_COOKIE_KEY",
            "domain": "https://auth.example.com", "token_cluster": "token",
            "logout_path": "/logout" },
    });
    for (k, v) in login.as_object().unwrap() {
        config["login"][k] = v.clone();
    }
    let mut clusters = vec![
        cluster("upstream", upstream_port),
        cluster("jwks", jwks.port),
        cluster("token", token_endpoint.port),
    ];
    edit(&mut config, &mut clusters);
    let mut boot = bootstrap_with_clusters(&config, clusters);
    set_filter_env(
        &mut boot,
        json!({ "CEA_CLIENT_SECRET": SECRET, "CEA_COOKIE_KEY": COOKIE_KEY }),
    );
    let envoy = Envoy::start_with(&boot, concurrency);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.jwks.cognito.keys", 1);
    Gateway {
        envoy,
        script,
        _servers: vec![jwks, token_endpoint],
    }
}

fn canned(status: u16, body: String) -> Canned {
    Canned {
        status,
        body: body.into_bytes(),
        delay: std::time::Duration::ZERO,
        hang_up: false,
    }
}

fn set_cookies(r: &Reply) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.clone())
        .collect()
}

/// The `name=value` pairs the browser would keep from these `Set-Cookie`s.
fn kept(set: &[String]) -> Vec<String> {
    set.iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect()
}

impl Gateway {
    /// A whole sign-in: the navigation's 302, the callback with a code, the token endpoint's
    /// answer; returns the session's cookie header.
    fn sign_in(&self) -> String {
        let r = request(self.envoy.port, "GET", "/app", &NAVIGATION);
        assert_eq!(r.status, 302, "{}", r.body);
        let location = r.header("location").unwrap().to_string();
        let param = |name: &str| {
            location
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_string()
        };
        self.script.lock().unwrap().nonce = param("nonce");
        let attempt = kept(&set_cookies(&r)).join("; ");
        let mut headers = NAVIGATION.to_vec();
        headers.push(("cookie", attempt.as_bytes()));
        let path = format!("/oauth2/callback?code=c0de&state={}", param("state"));
        // Just after start-up a worker may not have the keys yet: the page comes back.
        let r = wait_until("a callback after the keys", PATIENCE, || {
            let r = request(self.envoy.port, "GET", &path, &headers);
            (r.status != 503).then_some(r)
        });
        assert_eq!(r.status, 302, "{}\n{}", r.body, self.envoy.log());
        let session = kept(&set_cookies(&r));
        assert!(session.iter().all(|c| c.starts_with("__Host-cea_session_")));
        session.join("; ")
    }

    fn calls(&self) -> usize {
        self.script.lock().unwrap().calls
    }
}

/// An XHR with `cookie`.
fn xhr(port: u16, path: &str, cookie: &str) -> Reply {
    request(
        port,
        "GET",
        path,
        &[
            ("accept", b"application/json"),
            ("cookie", cookie.as_bytes()),
        ],
    )
}

#[test]
fn a_logout_ends_every_copy_of_the_session_on_every_worker() {
    let upstream = echo_upstream();
    let g = gateway(upstream.port, json!({}), 2);
    let session = g.sign_in();
    // A copy taken before logout works, on whichever worker a connection lands.
    for _ in 0..10 {
        assert_eq!(xhr(g.envoy.port, "/api", &session).status, 200);
    }
    let mut logout_headers = NAVIGATION.to_vec();
    logout_headers.push(("cookie", session.as_bytes()));
    logout_headers.push(("sec-fetch-site", b"same-origin"));
    let r = request(g.envoy.port, "GET", "/logout", &logout_headers);
    assert_eq!(r.status, 302);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("https://auth.example.com/logout?"));
    // The copy is dead at once, on every new connection (two workers).
    for _ in 0..20 {
        let r = xhr(g.envoy.port, "/api", &session);
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // A navigation with the dead copy signs in again rather than using it.
    let mut nav = NAVIGATION.to_vec();
    nav.push(("cookie", session.as_bytes()));
    let r = request(g.envoy.port, "GET", "/app", &nav);
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().contains("/oauth2/authorize?"));
    // A new sign-in is a new session.
    let again = g.sign_in();
    assert_eq!(xhr(g.envoy.port, "/api", &again).status, 200);
}

#[test]
fn a_cross_site_logout_asks_first_and_a_same_origin_one_signs_out() {
    let upstream = echo_upstream();
    let g = gateway(upstream.port, json!({}), 1);
    let session = g.sign_in();
    let with = |site: &'static [u8]| {
        let mut h = NAVIGATION.to_vec();
        h.push(("sec-fetch-site", site));
        h.push(("cookie", session.as_bytes()));
        h
    };
    // Another site's link: a page with a same-origin form, nothing cleared, still signed in.
    let r = request(g.envoy.port, "GET", "/logout", &with(b"cross-site"));
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<form method=\"post\" action=\"/logout\">"),
        "{}",
        r.body
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(set_cookies(&r).is_empty());
    assert_eq!(xhr(g.envoy.port, "/api", &session).status, 200);
    // Another site's form post: the same.
    let mut post = with(b"cross-site");
    post.push(("origin", b"https://evil.example"));
    let r = send(g.envoy.port, "POST", "/logout", &post, b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(xhr(g.envoy.port, "/api", &session).status, 200);
    // The confirmation page's own form: signed out.
    let r = send(g.envoy.port, "POST", "/logout", &with(b"same-origin"), b"").unwrap();
    assert_eq!(r.status, 302);
    assert!(set_cookies(&r).iter().all(|c| c.contains("Max-Age=0")));
    assert_eq!(xhr(g.envoy.port, "/api", &session).status, 401);
    g.envoy
        .wait_for_stat("wasmcustom.cognito_edge_auth.logout.confirm", 2);
}

#[test]
fn a_refresh_that_names_another_user_ends_the_session() {
    let upstream = echo_upstream();
    let g = gateway(upstream.port, json!({}), 1);
    // An ID token already inside the refresh window (60 s), with a refresh token.
    {
        let mut s = g.script.lock().unwrap();
        let claims = tokens::with(tokens::id_claims(now()), "exp", (now() + 30).into());
        s.claims = tokens::with(claims, "iat", (now() - 3600).into());
        s.refresh = Some("the-refresh-token".into());
    }
    let session = g.sign_in();
    assert_eq!(g.calls(), 1);
    // The refresh answers with someone else's ID token.
    g.script.lock().unwrap().claims = tokens::with(
        tokens::id_claims(now()),
        "sub",
        "someone-else-0000-4000-8000-000000000002".into(),
    );
    let r = xhr(g.envoy.port, "/api", &session);
    assert_eq!(g.calls(), 2, "one refresh");
    assert_eq!(r.status, 401, "answered as without a session: {}", r.body);
    g.envoy
        .wait_for_log("refresh failed reason=refresh_session_changed");
    // The session is over: a copy neither passes nor renews itself again.
    let r = xhr(g.envoy.port, "/api", &session);
    assert_eq!(r.status, 401);
    assert_eq!(g.calls(), 2, "no second refresh");
    // Control: a refresh for the same user renews the session (a new sign-in, a new refresh
    // token).
    g.script.lock().unwrap().refresh = Some("the-next-refresh-token".into());
    g.script.lock().unwrap().claims = tokens::with(
        tokens::with(tokens::id_claims(now()), "exp", (now() + 30).into()),
        "iat",
        (now() - 3600).into(),
    );
    let session = g.sign_in();
    g.script.lock().unwrap().claims = tokens::id_claims(now());
    let r = xhr(g.envoy.port, "/api", &session);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("__Host-cea_session_0=") && !c.contains("Max-Age=0")));
}

#[test]
fn a_short_lived_token_is_not_renewed_on_every_request() {
    let upstream = echo_upstream();
    // A window of an hour against ID tokens of five minutes: clamped to half their life.
    let g = gateway(upstream.port, json!({ "refresh_before_seconds": 3600 }), 1);
    {
        let mut s = g.script.lock().unwrap();
        let claims = tokens::with(tokens::id_claims(now()), "iat", now().into());
        s.claims = tokens::with(claims, "exp", (now() + 300).into());
        s.refresh = Some("the-refresh-token".into());
    }
    let session = g.sign_in();
    for _ in 0..5 {
        let r = xhr(g.envoy.port, "/api", &session);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(
        g.calls(),
        1,
        "the code exchange only: no token call per request"
    );
}

/// An upstream that keeps the raw bytes of each request head it receives.
fn raw_upstream() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            keep.lock().unwrap().push(head);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, seen)
}

#[test]
fn the_filters_cookies_never_reach_the_upstream_and_others_arrive_byte_for_byte() {
    let (port, seen) = raw_upstream();
    let g = gateway(port, json!({}), 1);
    let session = g.sign_in();
    // Legacy application cookies that are not UTF-8 around the session, and copies of the
    // filter's names another host could plant.
    let mut cookie = b"legacy=caf\xe9; ".to_vec();
    cookie.extend_from_slice(session.as_bytes());
    cookie.extend_from_slice(b"; cea_session_0=planted; __Host-cea_login_x=y; other=\x80\xff");
    let r = request(
        g.envoy.port,
        "GET",
        "/api",
        &[("accept", b"application/json"), ("cookie", &cookie)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let head = seen.lock().unwrap().last().unwrap().clone();
    let line = head
        .split(|&b| b == b'\n')
        .find(|l| l.to_ascii_lowercase().starts_with(b"cookie:"))
        .expect("a cookie header upstream")
        .to_vec();
    assert_eq!(line, b"cookie: legacy=caf\xe9; other=\x80\xff\r".to_vec());
    let text = String::from_utf8_lossy(&head);
    assert!(!text.contains("cea_"), "{text}");
    assert!(text.contains("x-auth-principal: alice"), "{text}");
}

/// The filter with browser sign-in whose provider checks tokens online with the `GetUser`
/// stand-in `cognito` (answers kept 1 s), `/account` needing a live token; `every_request` as
/// given. The token endpoint hands out checkable access tokens, as the hosted UI does when the
/// app client allows the admin scope and the sign-in asks for it.
fn checked_gateway(upstream_port: u16, cognito: &cognito::Cognito, every_request: bool) -> Gateway {
    let g = gateway_with(upstream_port, json!({}), 2, |config, clusters| {
        config["providers"][0]["online_check"] =
            json!({ "cluster": "cognito_idp", "cache_seconds": 1, "every_request": every_request });
        config["rules"] = json!([
            { "match": { "prefix": "/account" }, "require": { "active": true } },
            { "match": { "prefix": "/" }, "require": { "authenticated": true } },
        ]);
        clusters.push(cluster("cognito_idp", cognito.port));
    });
    g.script.lock().unwrap().access = Some(tokens::checkable_access_claims(now()));
    g
}

const ALICE: &str = "7c1e0b1c-0000-4000-8000-000000000001";

/// Waits until `path` with the session's cookie answers `status` to a script (the kept answer
/// of the online check lives a second), then checks a navigation is sent to sign in.
fn until_refused(g: &Gateway, path: &str, session: &str) {
    let r = wait_until("the session refused after the sign-out", PATIENCE, || {
        let r = xhr(g.envoy.port, path, session);
        (r.status != 200).then_some(r)
    });
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_token", "{}", r.body);
    let mut navigation = NAVIGATION.to_vec();
    navigation.push(("cookie", session.as_bytes()));
    let r = request(g.envoy.port, "GET", path, &navigation);
    assert_eq!(r.status, 302, "sent to sign in again: {}", r.body);
}

#[test]
fn a_cognito_sign_out_ends_a_browser_session_on_routes_that_need_a_live_token() {
    let cognito = cognito::Cognito::start();
    let upstream = echo_upstream();
    let g = checked_gateway(upstream.port, &cognito, false);
    // The sign-in asks the hosted UI for the scope GetUser requires.
    let r = request(g.envoy.port, "GET", "/app", &NAVIGATION);
    let location = r.header("location").unwrap();
    assert!(
        location.contains("scope=openid%20email%20profile%20aws.cognito.signin.user.admin"),
        "{location}"
    );
    let session = g.sign_in();
    assert_eq!(xhr(g.envoy.port, "/account", &session).status, 200);
    assert_eq!(cognito.calls_for(ALICE), 1, "checked with its access token");
    assert_eq!(xhr(g.envoy.port, "/app", &session).status, 200);
    assert_eq!(cognito.calls_for(ALICE), 1, "other routes are not checked");

    // GlobalSignOut in Cognito: within cache_seconds the session is refused where a live token
    // is needed (and elsewhere it lives until its ID token expires, as the docs say).
    cognito.set_user(ALICE, cognito::User::SignedOut);
    until_refused(&g, "/account", &session);
    assert_eq!(xhr(g.envoy.port, "/app", &session).status, 200);
}

#[test]
fn under_every_request_a_cognito_sign_out_or_a_disabled_user_ends_the_browser_session() {
    let cognito = cognito::Cognito::start();
    let upstream = echo_upstream();
    let g = checked_gateway(upstream.port, &cognito, true);
    let session = g.sign_in();
    assert_eq!(xhr(g.envoy.port, "/app", &session).status, 200);
    assert!(cognito.calls_for(ALICE) >= 1);
    cognito.set_user(ALICE, cognito::User::Disabled);
    until_refused(&g, "/app", &session);
    // A fresh sign-in of an active user works again (the control).
    cognito.set_user(ALICE, cognito::User::Active);
    let again = g.sign_in();
    let r = wait_until("the new session let in", PATIENCE, || {
        let r = xhr(g.envoy.port, "/app", &again);
        (r.status == 200).then_some(r)
    });
    assert_eq!(r.status, 200);
}

#[test]
fn parallel_requests_of_one_session_on_two_workers_renew_it_once_and_all_go_on() {
    let upstream = echo_upstream();
    let g = gateway(upstream.port, json!({}), 2);
    // An ID token inside the refresh window at once; Cognito rotates refresh tokens.
    {
        let mut s = g.script.lock().unwrap();
        let claims = tokens::with(tokens::id_claims(now()), "exp", (now() + 30).into());
        s.claims = tokens::with(claims, "iat", (now() - 3600).into());
        s.refresh = Some("the-first-refresh-token".into());
    }
    let session = g.sign_in();
    assert_eq!(g.calls(), 1);
    {
        let mut s = g.script.lock().unwrap();
        s.claims = tokens::id_claims(now());
        s.rotate = true;
        // Long enough that the parallel requests find the refresh under way.
        s.delay = std::time::Duration::from_millis(1500);
    }
    // Twelve requests of the session at once, each on its own connection: Envoy spreads
    // connections over both workers.
    let port = g.envoy.port;
    let replies: Vec<Reply> = thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| scope.spawn(|| xhr(port, "/api", &session)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(g.calls(), 2, "one refresh for the whole process");
    let renewed: Vec<String> = replies
        .iter()
        .map(|r| kept(&set_cookies(r)))
        .find(|c| !c.is_empty())
        .expect("the renewed session reaches the browser");
    let renewed = renewed.join("; ");
    assert_eq!(
        xhr(port, "/api", &renewed).status,
        200,
        "the renewed session works"
    );
    // Within refresh_grace_seconds (60 s by default), a tab that still sends the session
    // with the rotated refresh token's predecessor gets the renewed one, without a call that
    // Cognito would refuse.
    let r = xhr(port, "/api", &session);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(g.calls(), 2, "no second refresh");
    assert_eq!(kept(&set_cookies(&r)).join("; "), renewed);
    g.envoy
        .wait_for_stat("wasmcustom.cognito_edge_auth.refresh.completed", 1);
    assert_eq!(
        g.envoy
            .stat("wasmcustom.cognito_edge_auth.refresh.completed"),
        Some(1)
    );
    // Natively the counter is defined up front, at zero.
    assert_eq!(
        g.envoy
            .stat("wasmcustom.cognito_edge_auth.refresh.failed")
            .unwrap_or(0),
        0
    );
}
