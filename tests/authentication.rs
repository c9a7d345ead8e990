//! End to end: which tokens a real Envoy with the filter lets through, and how it refuses.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, access_claims, id_claims, sign, with};
use common::*;
use serde_json::{json, Value};

fn setup() -> Stack {
    setup_with(json!({}))
}

fn setup_with(extra: Value) -> Stack {
    Stack::start(extra, sign("key1", "k1", &id_claims(now())))
}

fn assert_invalid_token(r: &Reply, description: &str) {
    assert_eq!(r.status, 401, "{description}: {}", r.body);
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{description}: no challenge"));
    assert!(
        challenge.starts_with("Bearer realm=\"cognito-edge-auth\""),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&format!("error_description=\"{description}\"")),
        "{challenge}"
    );
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(r.json()["error_description"], description);
}

#[test]
fn valid_id_and_access_tokens_reach_the_upstream() {
    let s = setup();
    let now = now();
    for token in [
        sign("key1", "k1", &id_claims(now)),
        sign("key2", "k2", &access_claims(now)),
    ] {
        let r = get_with_token(s.envoy.port, "/hello", &token);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["path"], "/hello");
    }
    let lower = format!("bearer {}", sign("key1", "k1", &id_claims(now)));
    assert_eq!(
        request(
            s.envoy.port,
            "GET",
            "/",
            &[("authorization", lower.as_bytes())]
        )
        .status,
        200
    );
    assert!(s.upstream.hits() >= 3);
    let log = s.envoy.log();
    let native = match build() {
        Build::Wasm => "signatures are verified natively by the host (verify_signature)",
        Build::Native => "signatures are verified natively (ring)",
    };
    assert!(log.contains(native), "{log}");
}

#[test]
fn a_request_without_a_token_gets_a_bare_challenge() {
    let s = setup();
    let before = s.upstream.hits();
    for r in [
        get(s.envoy.port, "/hello"),
        request(
            s.envoy.port,
            "GET",
            "/",
            &[("authorization", b"Basic dXNlcjpwYXNz")],
        ),
    ] {
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"cognito-edge-auth\"")
        );
        assert_eq!(r.json()["error"], "unauthorized");
    }
    assert_eq!(
        s.upstream.hits(),
        before,
        "nothing unauthenticated reaches the upstream"
    );
}

#[test]
fn bad_tokens_get_401_invalid_token_with_the_reason() {
    check_bad_tokens(&setup());
}

/// The pure-Rust verifier (hosts without Envoy's verify_signature) decides every token as the
/// native one does.
#[test]
fn the_pure_rust_verifier_makes_the_same_decisions() {
    let s = setup_with(json!({ "native_verification": false }));
    assert!(s
        .envoy
        .log()
        .contains("native_verification is off: verifying in pure Rust"));
    let now = now();
    for token in [
        sign("key1", "k1", &id_claims(now)),
        sign("key2", "k2", &access_claims(now)),
    ] {
        assert_eq!(get_with_token(s.envoy.port, "/", &token).status, 200);
    }
    check_bad_tokens(&s);
}

fn check_bad_tokens(s: &Stack) {
    let now = now();
    let id = || id_claims(now);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            sign("key1", "k1", &with(id(), "exp", (now - 120).into())),
            "the token has expired",
        ),
        (
            "not yet valid",
            sign("key1", "k1", &with(id(), "nbf", (now + 600).into())),
            "the token is not valid yet",
        ),
        (
            "issued in the future",
            sign("key1", "k1", &with(id(), "iat", (now + 600).into())),
            "the token is not valid yet",
        ),
        (
            "no exp",
            sign("key1", "k1", &with(id(), "exp", Value::Null)),
            "the token has no exp claim",
        ),
        (
            "wrong issuer",
            sign(
                "key1",
                "k1",
                &with(
                    id(),
                    "iss",
                    "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Evil".into(),
                ),
            ),
            "the token's issuer is not accepted",
        ),
        (
            "wrong client (aud)",
            sign("key1", "k1", &with(id(), "aud", "other-client".into())),
            "the token was not issued for an accepted client",
        ),
        (
            "wrong client (client_id)",
            sign(
                "key1",
                "k1",
                &with(access_claims(now), "client_id", "other-client".into()),
            ),
            "the token was not issued for an accepted client",
        ),
        (
            "wrong token_use",
            sign("key1", "k1", &with(id(), "token_use", "refresh".into())),
            "the token's token_use is not accepted",
        ),
        (
            "tampered signature",
            tokens::tamper_signature(&sign("key1", "k1", &id())),
            "the token's signature is invalid",
        ),
        (
            "signed by another key",
            sign("key_other", "k1", &id()),
            "the token's signature is invalid",
        ),
        (
            "alg none",
            tokens::unsigned(&json!({"alg": "none", "kid": "k1"}), &id(), ""),
            "the token's signing algorithm is not allowed",
        ),
        (
            "HS256 with the public key",
            tokens::hs256_with_public_key("key1", "k1", &id()),
            "the token's signing algorithm is not allowed",
        ),
        (
            "unknown kid",
            sign("key1", "k9", &id()),
            "the token's signing key is not known",
        ),
        (
            "no kid",
            sign("key1", "", &id()),
            "the token has no key id (kid)",
        ),
        (
            "garbage",
            "not-a-jwt".into(),
            "the token is not a well-formed JWT",
        ),
        (
            "three parts of garbage",
            "aaa.bbb.ccc".into(),
            "the token is not a well-formed JWT",
        ),
        (
            "oversize",
            format!(
                "{}.{}.{}",
                "a".repeat(17000),
                "b".repeat(16000),
                "c".repeat(200)
            ),
            "the token is longer than this gateway accepts",
        ),
    ];
    let before = s.upstream.hits();
    for (name, token, description) in &cases {
        let r = get_with_token(s.envoy.port, "/", token);
        assert_invalid_token(&r, description);
        assert!(
            !r.body.contains(token.as_str()) || token.len() < 4,
            "{name}: the token is echoed"
        );
    }
    let r = request(
        s.envoy.port,
        "GET",
        "/",
        &[("authorization", b"Bearer \xff\xfe.a.b")],
    );
    assert_invalid_token(&r, "the token is not a compact JWT");
    assert_eq!(
        s.upstream.hits(),
        before,
        "no bad token reaches the upstream"
    );
    // The worker survived all of that.
    assert_eq!(
        get_with_token(s.envoy.port, "/", &sign("key1", "k1", &id())).status,
        200
    );
}

#[test]
fn two_tokens_in_one_request_are_a_bad_request() {
    let s = setup();
    let t = format!("Bearer {}", sign("key1", "k1", &id_claims(now())));
    let r = request(
        s.envoy.port,
        "GET",
        "/",
        &[
            ("authorization", t.as_bytes()),
            ("authorization", t.as_bytes()),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_request\""));
}

#[test]
fn before_any_key_is_loaded_requests_get_503_with_retry_after() {
    let jwks = JwksServer::start("");
    jwks.set(500, "down");
    let upstream = echo_upstream();
    // Explicit timing: no start-up wait (the 503 comes at once), and a 2 s refresh interval,
    // which caps the retry backoff at 2 s, so the keys come soon after the JWKS recovers
    // (with the default 600 s the retries back off to 1, 2, 4, 8, 16 … s).
    let mut p = provider("cognito", jwks.port());
    p["jwks"]["refresh_interval_seconds"] = 2.into();
    let config = json!({ "providers": [p], "startup_wait_ms": 0 });
    let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
    let r = get_with_token(envoy.port, "/", &sign("key1", "k1", &id_claims(now())));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(upstream.hits(), 0);
    // Once the JWKS answers, the same token goes through.
    jwks.set(200, &tokens::jwks(&[("key1", "k1")]));
    envoy.wait_for_keys(&sign("key1", "k1", &id_claims(now())));
    assert_eq!(upstream.hits(), 1);
}

#[test]
fn tokens_from_a_configured_header_with_a_prefix() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let config = json!({
        "providers": [provider("cognito", jwks.port())],
        "from_headers": [{ "name": "x-jwt-assertion", "value_prefix": "" }, { "name": "authorization", "value_prefix": "Bearer " }],
    });
    let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
    let token = sign("key1", "k1", &id_claims(now()));
    envoy.wait_for_keys(&token);
    let r = request(
        envoy.port,
        "GET",
        "/",
        &[("x-jwt-assertion", token.as_bytes())],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
