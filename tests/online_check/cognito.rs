//! The online check against a stand-in that answers as Cognito's API reference documents
//! (tests/common/cognito.rs): which tokens can be checked, the answers by kind, the fair share
//! of calls per principal, one call per token per process, the back-off after throttling; and
//! the bound on sign-in calls to the token endpoint.

use super::common::cognito::{Cognito, Service, User};
use super::common::tokens::{access_claims, checkable_access_claims, id_claims, jwks, sign, with};
use super::common::*;
use super::per_worker_connections;
use serde_json::{json, Value};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;

const STAT: &str = "wasmcustom.cognito_edge_auth";

/// Envoy with one pool provider checking through the stand-in: `/account` needs a live token,
/// everything else a valid one; `online` is merged into `online_check`.
struct Stand {
    envoy: Envoy,
    cognito: Cognito,
    _jwks: JwksServer,
    _upstream: Server,
}

fn stand(online: Value, concurrency: u32) -> Stand {
    let cognito = Cognito::start();
    let jwks = JwksServer::start(&jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let mut check = json!({ "cluster": "cognito_idp", "timeout_ms": 10_000 });
    for (k, v) in online.as_object().unwrap() {
        check[k] = v.clone();
    }
    let mut p = provider("cognito", jwks.port());
    p["online_check"] = check;
    p["clock_skew_seconds"] = json!(60);
    let cfg = json!({ "providers": [p], "rules": [
        { "match": { "prefix": "/account" }, "require": { "active": true } },
        { "match": { "prefix": "/" }, "require": { "authenticated": true } },
    ]});
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("jwks", jwks.port()),
        cluster("cognito_idp", cognito.port),
    ];
    let envoy = Envoy::start_with(&bootstrap_with_clusters(&cfg, clusters), concurrency);
    envoy.wait_for_keys(&sign("key1", "k1", &id_claims(now())));
    Stand {
        envoy,
        cognito,
        _jwks: jwks,
        _upstream: upstream,
    }
}

/// A checkable access token (the SDK's scope) of user `sub`; `jti` makes it a fresh one.
fn token(sub: &str, jti: &str) -> String {
    let claims = with(checkable_access_claims(now()), "sub", sub.into());
    sign("key1", "k1", &with(claims, "jti", jti.into()))
}

#[test]
fn tokens_get_user_cannot_judge_are_never_sent_to_cognito_nor_called_revoked() {
    let s = stand(json!({ "every_request": true }), 1);
    let port = s.envoy.port;
    // A hosted-UI token without the admin scope, and a machine's client-credentials token.
    let hosted_ui = sign(
        "key1",
        "k1",
        &with(access_claims(now()), "sub", "hosted".into()),
    );
    let machine = with(access_claims(now()), "scope", "reports/read".into());
    let machine = with(
        with(machine, "username", Value::Null),
        "sub",
        "client1".into(),
    );
    let machine = sign("key1", "k1", &machine);
    for t in [&hosted_ui, &machine] {
        let r = get_with_token(port, "/account", t);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error"], "invalid_token");
        let why = r.json()["error_description"].as_str().unwrap().to_string();
        assert!(why.contains("aws.cognito.signin.user.admin"), "{why}");
        assert!(!why.contains("revoked"), "{why}");
        let r = get_with_token(port, "/catalog", t);
        assert_eq!(r.status, 200, "every_request: passes unchecked: {}", r.body);
    }
    assert_eq!(s.cognito.calls(), 0, "never sent to Cognito");
    s.envoy
        .wait_for_stat(&format!("{STAT}.denied.not_checkable_scope"), 2);
    s.envoy
        .wait_for_stat(&format!("{STAT}.online.cognito.unchecked"), 4);
    s.envoy.wait_for_log("are not checked online");
    let log = s.envoy.log();
    assert_eq!(log.matches("are not checked online").count(), 1, "{log}");
    assert!(log.contains("AllowedOAuthScopes"), "{log}");
    // A token with the scope is checked.
    let r = get_with_token(port, "/account", &token("alice", "1"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.cognito.calls(), 1);
}

#[test]
fn cognito_answers_are_read_by_kind() {
    let s = stand(json!({ "every_request": true }), 1);
    let port = s.envoy.port;
    for (sub, user) in [
        ("signed-out", User::SignedOut),
        ("disabled", User::Disabled),
        ("deleted", User::Deleted),
        ("scope-refused", User::ScopeRefused),
    ] {
        s.cognito.set_user(sub, user);
    }
    assert_eq!(
        get_with_token(port, "/account", &token("alice", "1")).status,
        200
    );
    // Expired for Cognito, still within the filter's clock skew.
    let expired = with(checkable_access_claims(now()), "exp", (now() - 5).into());
    let expired = sign("key1", "k1", &with(expired, "sub", "late".into()));
    let dead = [
        token("signed-out", "1"),
        token("disabled", "1"),
        token("deleted", "1"),
        expired,
    ];
    for t in &dead {
        let r = get_with_token(port, "/catalog", t);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error_description"], "the token has been revoked");
    }
    s.envoy
        .wait_for_stat(&format!("{STAT}.online.cognito.revoked"), 4);
    // Cognito says the scope is missing (a trigger put it in the claims): not checkable, and a
    // warning; never revoked.
    let refused = token("scope-refused", "1");
    assert_eq!(get_with_token(port, "/catalog", &refused).status, 200);
    let r = get_with_token(port, "/account", &refused);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.body.contains("aws.cognito.signin.user.admin"),
        "{}",
        r.body
    );
    s.envoy
        .wait_for_stat(&format!("{STAT}.online.cognito.not_checkable"), 1);
    s.envoy
        .wait_for_log("does not have the scopes GetUser requires");
    // A failing service and an answer of no documented shape: unreachable, fail closed.
    for (service, jti) in [(Service::Failing, "failing"), (Service::Garbled, "garbled")] {
        s.cognito.set_service(service);
        let r = get_with_token(port, "/catalog", &token("alice", jti));
        assert_eq!(r.status, 503, "{service:?}: {}", r.body);
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    s.envoy
        .wait_for_stat(&format!("{STAT}.online.cognito.unreachable"), 2);
}

#[test]
fn one_user_flooding_with_fresh_tokens_cannot_starve_another() {
    // Four checks per worker, one per principal (the default quarter).
    let s = stand(json!({ "every_request": true, "max_in_flight": 4 }), 1);
    let port = s.envoy.port;
    s.cognito.hold("mallory");
    let (tx, rx) = mpsc::channel();
    let flood: Vec<_> = (0..6)
        .map(|i| {
            let (t, tx) = (token("mallory", &i.to_string()), tx.clone());
            thread::spawn(move || tx.send(get_with_token(port, "/", &t).status).unwrap())
        })
        .collect();
    // Two answered: every flood request has been decided (with or without a fair share).
    let mut statuses: Vec<u16> = (0..2).map(|_| rx.recv_timeout(PATIENCE).unwrap()).collect();
    wait_until("mallory's call", PATIENCE, || {
        (s.cognito.calls_for("mallory") >= 1).then_some(())
    });
    let r = get_with_token(port, "/", &token("alice", "1"));
    assert_eq!(
        r.status, 200,
        "alice's first request while mallory floods: {}",
        r.body
    );
    assert_eq!(s.cognito.calls_for("mallory"), 1, "mallory's fair share");
    s.cognito.release("mallory");
    statuses.extend((0..4).map(|_| rx.recv_timeout(PATIENCE).unwrap()));
    flood.into_iter().for_each(|h| h.join().unwrap());
    statuses.sort();
    assert_eq!(statuses, vec![200, 503, 503, 503, 503, 503]);
    s.envoy
        .wait_for_stat(&format!("{STAT}.denied.online_busy"), 5);
}

#[test]
fn workers_racing_for_one_token_make_one_call() {
    let s = stand(json!({ "every_request": true }), 2);
    let port = s.envoy.port;
    s.cognito.hold("bob");
    let t = token("bob", "1");
    let before = per_worker_connections(&s.envoy);
    let requests: Vec<_> = (0..12)
        .map(|_| {
            let t = t.clone();
            thread::spawn(move || get_with_token(port, "/", &t).status)
        })
        .collect();
    wait_until("both workers to take requests", PATIENCE, || {
        let after = per_worker_connections(&s.envoy);
        let both = after.len() == 2 && after.iter().zip(&before).all(|(a, b)| a > b);
        both.then_some(())
    });
    // The second worker joins the first one's call instead of making its own.
    s.envoy
        .wait_for_log("online check: joined the call of another worker");
    s.cognito.release("bob");
    let statuses: Vec<u16> = requests.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses, vec![200; 12]);
    assert_eq!(s.cognito.calls(), 1, "one call per token per process");
}

#[test]
fn throttling_backs_off_per_provider() {
    let s = stand(json!({ "every_request": true }), 1);
    let port = s.envoy.port;
    s.cognito.set_service(Service::Throttling);
    let r = get_with_token(port, "/", &token("alice", "1"));
    assert_eq!(r.status, 503, "when_unreachable deny: {}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    // Backing off: another token is not asked about.
    let r = get_with_token(port, "/", &token("carol", "1"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(s.cognito.calls(), 1, "no call while backing off");
    s.envoy
        .wait_for_stat(&format!("{STAT}.online.cognito.throttled"), 1);
    s.envoy
        .wait_for_stat(&format!("{STAT}.online.cognito.backed_off"), 1);
    s.envoy.wait_for_log("Cognito throttles GetUser");
    // Cognito recovers: once the back-off ends, tokens are checked again.
    s.cognito.set_service(Service::Normal);
    wait_until("a check after the back-off", PATIENCE, || {
        (get_with_token(port, "/", &token("dave", "1")).status == 200).then_some(())
    });
    assert_eq!(s.cognito.calls(), 2);

    // when_unreachable allow: throttling lets offline-verified tokens through.
    let open = stand(
        json!({ "every_request": true, "when_unreachable": "allow" }),
        1,
    );
    open.cognito.set_service(Service::Throttling);
    for jti in ["1", "2"] {
        let r = get_with_token(open.envoy.port, "/", &token("alice", jti));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(open.cognito.calls(), 1);
}

#[test]
fn token_endpoint_calls_are_bounded_per_worker() {
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    // A slow token endpoint: every answer waits until the test opens the gate.
    let gate: Arc<(Mutex<bool>, Condvar)> = Arc::default();
    let g = gate.clone();
    let token_endpoint = Server::start(Arc::new(move |_r: &ServerRequest| {
        let (open, opened) = &*g;
        let mut o = open.lock().unwrap();
        while !*o {
            o = opened.wait(o).unwrap();
        }
        Canned {
            status: 400,
            body: br#"{"error":"invalid_grant"}"#.to_vec(),
            delay: std::time::Duration::ZERO,
            hang_up: false,
        }
    }));
    let open_gate = || {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    };
    let jwks = JwksServer::start(&jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let cfg = json!({
        "providers": [provider("cognito", jwks.port())],
        "login": { "provider": "cognito", "client_id": "client1", "client_secret": "s3cret",
            "cookie_key_env": "CEA_COOKIE_KEY", "domain": format!("http://127.0.0.1:{}", token_endpoint.port),
            "token_cluster": "token", "external_scheme": "http", "token_max_in_flight": 2 },
    });
    let mut boot = bootstrap_with_clusters(
        &cfg,
        vec![
            cluster("upstream", upstream.port),
            cluster("jwks", jwks.port()),
            cluster("token", token_endpoint.port),
        ],
    );
    set_filter_env(&mut boot, json!({ "CEA_COOKIE_KEY": KEY }));
    let envoy = Envoy::start(&boot);
    envoy.wait_for_keys(&sign("key1", "k1", &id_claims(now())));

    // Three sign-ins started (anyone can start one), then three junk callbacks at once.
    let navigation: [(&str, &[u8]); 2] =
        [("accept", b"text/html"), ("sec-fetch-mode", b"navigate")];
    let callbacks: Vec<(String, String)> = (0..3)
        .map(|_| {
            let r = request(envoy.port, "GET", "/", &navigation);
            assert_eq!(r.status, 302, "{}", r.body);
            let location = r.header("location").unwrap();
            let state = location
                .split("state=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap();
            let cookie = r
                .headers
                .iter()
                .find(|(n, v)| n == "set-cookie" && v.contains(&format!("_login_{state}=")))
                .map(|(_, v)| v.split(';').next().unwrap().to_string())
                .unwrap();
            (format!("/oauth2/callback?code=junk&state={state}"), cookie)
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let port = envoy.port;
    let calls: Vec<_> = callbacks
        .into_iter()
        .map(|(path, cookie)| {
            let tx = tx.clone();
            thread::spawn(move || {
                tx.send(request(
                    port,
                    "GET",
                    &path,
                    &[("cookie", cookie.as_bytes())],
                ))
                .unwrap()
            })
        })
        .collect();
    // Two calls reach the slow endpoint; the third callback is answered at once.
    let busy = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.header("retry-after"), Some("1"));
    wait_until("two calls at the token endpoint", PATIENCE, || {
        (token_endpoint.hits() == 2).then_some(())
    });
    open_gate();
    let rest: Vec<u16> = (0..2)
        .map(|_| rx.recv_timeout(PATIENCE).unwrap().status)
        .collect();
    calls.into_iter().for_each(|h| h.join().unwrap());
    assert!(rest.iter().all(|&s| s != 503), "{rest:?}");
    assert_eq!(token_endpoint.hits(), 2);
    envoy.wait_for_stat(&format!("{STAT}.denied.login_busy"), 1);
}
