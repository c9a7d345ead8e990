//! End to end: the filter's metrics in Envoy's admin endpoint, and its denial log lines.

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

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("{P}.{name}")).unwrap_or_else(|| {
        panic!(
            "{P}.{name} not in /stats:\n{}",
            get(envoy.admin_port, "/stats?filter=cognito").body
        )
    })
}

/// The stat once it has reached `at_least` (counts are flushed on the workers' ticks); panics
/// if it does not within the harness's patience.
fn settled(envoy: &Envoy, name: &str, at_least: u64) -> u64 {
    envoy.wait_for_stat(&format!("{P}.{name}"), at_least)
}

/// Waits until `name` has reached `expected`, then checks that it is exactly that.
fn settles_at(envoy: &Envoy, name: &str, expected: u64) {
    assert_eq!(settled(envoy, name, expected), expected, "{name}");
}

#[test]
fn metrics_count_decisions_fetches_keys_and_cache_use() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1"), ("key2", "k2")]));
    let upstream = echo_upstream();
    let mut p = provider("cognito", jwks.port());
    p["jwks"]["refresh_interval_seconds"] = 600.into();
    let config = json!({
        "providers": [p],
        "admin_principals": ["root"],
        "rules": [{ "match": { "prefix": "/admin" }, "require": { "admin": true } }],
        "denial_log_level": "warn",
    });
    let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
    let now = now();
    let token = sign("key1", "k1", &id_claims(now));
    envoy.wait_for_keys(&token);

    assert_eq!(stat(&envoy, "jwks.cognito.fetch_success"), 1);
    assert_eq!(stat(&envoy, "jwks.cognito.fetch_failure"), 0);
    assert_eq!(stat(&envoy, "jwks.cognito.keys"), 2);
    let allowed = settled(&envoy, "allowed", 1);
    let hits = stat(&envoy, "cache.hits");

    for _ in 0..3 {
        assert_eq!(get_with_token(envoy.port, "/", &token).status, 200);
    }
    assert_eq!(get(envoy.port, "/").status, 401);
    let expired = sign(
        "key1",
        "k1",
        &with(id_claims(now), "exp", (now - 600).into()),
    );
    assert_eq!(get_with_token(envoy.port, "/", &expired).status, 401);
    let wrong_iss = sign(
        "key1",
        "k1",
        &with(id_claims(now), "iss", "https://evil.example.com".into()),
    );
    assert_eq!(get_with_token(envoy.port, "/", &wrong_iss).status, 401);
    let wrong_aud = sign("key1", "k1", &with(id_claims(now), "aud", "nope".into()));
    assert_eq!(get_with_token(envoy.port, "/", &wrong_aud).status, 401);
    assert_eq!(
        get_with_token(envoy.port, "/admin/x?secret=1", &token).status,
        403
    );

    // Per-request counts reach Envoy on the worker's next tick, one stat after another: wait
    // for each to arrive, then check it is exact.
    settles_at(&envoy, "allowed", allowed + 3);
    // Three repeats and the 403 came from the cache.
    settles_at(&envoy, "cache.hits", hits + 4);
    assert!(stat(&envoy, "cache.misses") >= 1);
    for (reason, n) in [
        ("missing", 1),
        ("expired", 1),
        ("issuer", 1),
        ("audience", 1),
        ("not_admin", 1),
    ] {
        settles_at(&envoy, &format!("denied.{reason}"), n);
    }
    assert_eq!(stat(&envoy, "denied.forbidden"), 0, "denied.forbidden");

    let prometheus = get(envoy.admin_port, "/stats/prometheus").body;
    assert!(
        prometheus.contains("cognito_edge_auth_denied_not_admin{} 1"),
        "{prometheus}"
    );
    assert!(prometheus.contains("cognito_edge_auth_jwks_cognito_keys{} 2"));

    let log = envoy.log();
    let line = log
        .lines()
        .find(|l| l.contains("reason=not_admin"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("[warning]"), "{line}");
    assert!(
        line.contains("denied 403 reason=not_admin provider=cognito principal=alice GET /admin/x"),
        "{line}"
    );
    assert!(
        !line.contains("secret"),
        "the query string is not logged: {line}"
    );
    assert!(log.contains("denied 401 reason=missing provider=- principal=- GET /"));
    for t in [&token, &expired, &wrong_iss] {
        assert!(!log.contains(t.as_str()), "a token is in the log");
        let signature = t.rsplit('.').next().unwrap();
        assert!(!log.contains(signature));
    }
}

#[test]
fn fetch_failures_are_counted_per_provider() {
    let jwks = JwksServer::start("");
    jwks.set(500, "down");
    let upstream = echo_upstream();
    let local: Value = serde_json::from_str(&tokens::jwks(&[("key2", "b1")])).unwrap();
    let config = json!({ "providers": [
        provider("cognito", jwks.port()),
        { "name": "bots", "issuer": "https://app.example.com", "local_jwks": local },
    ], "denial_log_level": "off" });
    let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
    // Two failed fetches counted (the first retry comes 1 s after the first failure).
    settled(&envoy, "jwks.cognito.fetch_failure", 2);
    assert!(jwks.fetches() >= 2);
    assert_eq!(stat(&envoy, "jwks.cognito.fetch_success"), 0);
    assert_eq!(
        stat(&envoy, "jwks.bots.keys"),
        1,
        "local keys are counted too"
    );
    assert_eq!(get(envoy.port, "/").status, 401);
    assert!(
        !envoy.log().contains("reason=missing"),
        "denial_log_level off"
    );
}
