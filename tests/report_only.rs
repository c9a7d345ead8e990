//! End to end: report-only mode (`"report_only": true` for the whole filter or a rule). A
//! request the filter would refuse reaches the upstream, with the client's identity headers
//! stripped and the verified identity set; the refusal it would have had is logged and counted
//! in `report.denied.<reason>`. The same configuration without the switch refuses it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, id_claims, sign, with};
use common::*;
use serde_json::{json, Value};

const P: &str = "wasmcustom.cognito_edge_auth";

/// What the upstream received as header `name` (the echo upstream answers with the request).
fn upstream_saw(r: &Reply, name: &str) -> Vec<String> {
    assert_eq!(r.status, 200, "not forwarded: {}", r.body);
    r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

fn call(port: u16, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &[u8])> = extra.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_bytes()));
    }
    request(port, "GET", path, &headers)
}

fn config(jwks_port: u16, top: Value) -> Value {
    let mut c = json!({
        "providers": [provider("cognito", jwks_port)],
        "admin_principals": ["root"],
        "rules": [
            { "match": { "prefix": "/admin" }, "require": { "admin": true } },
            { "match": { "prefix": "/" }, "require": { "authenticated": true } }
        ],
    });
    for (k, v) in top.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Envoy with `config`, its keys loaded.
fn start(config: &Value, upstream: &Server, jwks: &JwksServer) -> Envoy {
    let envoy = Envoy::start(&bootstrap(config, upstream.port, jwks.port()));
    envoy.wait_for_stat(&format!("{P}.jwks.cognito.keys"), 1);
    envoy
}

#[test]
fn a_request_that_would_be_refused_reaches_the_upstream_logged_and_counted() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let now = now();
    let alice = sign("key1", "k1", &id_claims(now));
    let expired = sign(
        "key1",
        "k1",
        &with(id_claims(now), "exp", (now - 600).into()),
    );
    let spoofed = [("x-auth-admin", "true"), ("X-Auth-Principal", "root")];

    // Without the switch: refused.
    let enforcing = start(&config(jwks.port(), json!({})), &upstream, &jwks);
    assert_eq!(
        call(enforcing.port, "/admin/x", Some(&alice), &[]).status,
        403
    );
    assert_eq!(call(enforcing.port, "/", None, &[]).status, 401);
    assert_eq!(call(enforcing.port, "/", Some(&expired), &[]).status, 401);
    drop(enforcing);

    let envoy = start(
        &config(jwks.port(), json!({ "report_only": true })),
        &upstream,
        &jwks,
    );
    let hits = upstream.hits();

    // A non-admin on an admin route: forwarded with her verified identity, the spoofed
    // headers gone.
    let r = call(envoy.port, "/admin/x?secret=1", Some(&alice), &spoofed);
    assert_eq!(upstream_saw(&r, "x-auth-principal"), ["alice"]);
    assert_eq!(upstream_saw(&r, "x-auth-admin"), ["false"]);
    assert_eq!(upstream_saw(&r, "x-auth-email"), ["alice@example.com"]);
    // No token, and an expired one: forwarded without an identity.
    for token in [None, Some(expired.as_str())] {
        let r = call(envoy.port, "/", token, &spoofed);
        assert_eq!(upstream_saw(&r, "x-auth-admin"), Vec::<String>::new());
        assert_eq!(upstream_saw(&r, "x-auth-principal"), Vec::<String>::new());
    }
    assert_eq!(
        upstream.hits(),
        hits + 3,
        "every request reached the upstream"
    );

    envoy.wait_for_log(
        "report-only: would deny 403 reason=not_admin provider=cognito principal=alice GET /admin/x",
    );
    envoy.wait_for_log("report-only: would deny 401 reason=missing provider=- principal=- GET /");
    envoy.wait_for_log("report-only: would deny 401 reason=expired");
    for reason in ["not_admin", "missing", "expired"] {
        let name = format!("{P}.report.denied.{reason}");
        assert_eq!(envoy.wait_for_stat(&name, 1), 1, "{name}");
        assert_eq!(
            envoy.stat(&format!("{P}.denied.{reason}")),
            Some(0),
            "{reason}"
        );
    }
    let log = envoy.log();
    assert!(!log.contains("secret=1"), "the query string is not logged");
    assert!(!log.contains(&expired), "a token is in the log");
    assert!(!log.contains(" denied 40"), "nothing was refused:\n{log}");
}

#[test]
fn a_rule_in_report_only_mode_affects_only_its_rule() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let alice = sign("key1", "k1", &id_claims(now()));
    let mut c = config(jwks.port(), json!({}));
    c["rules"][0]["report_only"] = true.into();
    let envoy = start(&c, &upstream, &jwks);

    // The admin rule reports.
    let r = call(envoy.port, "/admin/x", Some(&alice), &[]);
    assert_eq!(upstream_saw(&r, "x-auth-principal"), ["alice"]);
    assert_eq!(call(envoy.port, "/admin/y", None, &[]).status, 200);
    // The other rule refuses, as without the switch.
    assert_eq!(call(envoy.port, "/other", None, &[]).status, 401);
    assert_eq!(call(envoy.port, "/other", Some(&alice), &[]).status, 200);

    envoy.wait_for_log("report-only: would deny 403 reason=not_admin provider=cognito principal=alice GET /admin/x");
    envoy.wait_for_log("denied 401 reason=missing provider=- principal=- GET /other");
    assert_eq!(
        envoy.wait_for_stat(&format!("{P}.report.denied.not_admin"), 1),
        1
    );
    assert_eq!(
        envoy.wait_for_stat(&format!("{P}.report.denied.missing"), 1),
        1
    );
    assert_eq!(envoy.wait_for_stat(&format!("{P}.denied.missing"), 1), 1);
    assert_eq!(envoy.stat(&format!("{P}.denied.not_admin")), Some(0));
}

/// A request that comes before the keys waits for them as it would before a refusal; when they
/// never come it is forwarded (not answered 503) and reported `no_keys`.
#[test]
fn a_request_before_the_keys_waits_then_is_forwarded_and_reported() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    jwks.set(500, "down");
    let upstream = echo_upstream();
    let alice = sign("key1", "k1", &id_claims(now()));
    let c = config(
        jwks.port(),
        json!({ "report_only": true, "startup_wait_ms": 1000 }),
    );
    let envoy = Envoy::start(&bootstrap(&c, upstream.port, jwks.port()));
    envoy.wait_for_stat(&format!("{P}.jwks.cognito.fetch_failure"), 1);
    // The next fetch hangs, so no finished fetch ends the wait before its deadline.
    jwks.hold();
    let started = std::time::Instant::now();
    let r = call(envoy.port, "/", Some(&alice), &[]);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1000),
        "it waited for the keys first"
    );
    assert_eq!(upstream_saw(&r, "x-auth-principal"), Vec::<String>::new());
    assert_eq!(
        envoy.wait_for_stat(&format!("{P}.report.denied.no_keys"), 1),
        1
    );
    envoy.wait_for_log("report-only: would deny 503 reason=no_keys provider=- principal=- GET /");
}

/// With browser sign-in: report-only mode never sends a browser to sign in (the navigation
/// reaches the upstream, reported `missing`), and a callback is answered as without the switch.
#[test]
fn report_only_never_sends_a_browser_to_sign_in() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let navigation: [(&str, &str); 3] = [
        ("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    let gateway = |report_only: bool| {
        let c = json!({
            "providers": [provider("cognito", jwks.port())],
            "report_only": report_only,
            "login": { "provider": "cognito", "client_id": tokens::CLIENT,
                "client_secret_env": "CEA_CLIENT_SECRET", "cookie_key_env": "CEA_COOKIE_KEY",
                "domain": "https://auth.example.com", "token_cluster": "jwks",
                "logout_path": "/logout" },
        });
        let mut boot = bootstrap(&c, upstream.port, jwks.port());
        set_filter_env(
            &mut boot,
            json!({ "CEA_CLIENT_SECRET": "s3cret",
                "CEA_COOKIE_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }),
        );
        let envoy = Envoy::start(&boot);
        envoy.wait_for_stat(&format!("{P}.jwks.cognito.keys"), 1);
        envoy
    };
    let callback = "/oauth2/callback?code=c&state=forged";

    let enforcing = gateway(false);
    let r = call(enforcing.port, "/app", None, &navigation);
    assert_eq!(r.status, 302, "{}", r.body);
    let refused_callback = call(enforcing.port, callback, None, &navigation);
    drop(enforcing);

    let envoy = gateway(true);
    let r = call(envoy.port, "/app", None, &navigation);
    assert_eq!(r.header("location"), None);
    assert_eq!(upstream_saw(&r, "x-auth-principal"), Vec::<String>::new());
    envoy
        .wait_for_log("report-only: would deny 401 reason=missing provider=- principal=- GET /app");
    let r = call(envoy.port, callback, None, &navigation);
    assert_eq!(
        (r.status, &r.body),
        (refused_callback.status, &refused_callback.body),
        "a callback is answered as without the switch"
    );
    assert_ne!(r.status, 200);
}
