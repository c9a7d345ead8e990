//! End to end: how keys are fetched, shared, rotated, waited for and kept through outages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, id_claims, sign};
use common::*;
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

fn config(jwks: &JwksServer, refresh_seconds: u64, extra: Value) -> Value {
    let mut p = provider("cognito", jwks.port());
    p["jwks"]["refresh_interval_seconds"] = refresh_seconds.into();
    p["jwks"]["timeout_ms"] = 500.into();
    let mut c = json!({ "providers": [p] });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

fn token(key: &str, kid: &str) -> String {
    sign(key, kid, &id_claims(now()))
}

fn status(envoy: &Envoy, token: &str) -> u16 {
    get_with_token(envoy.port, "/", token).status
}

#[test]
fn four_workers_fetch_once_per_refresh_interval() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let envoy = Envoy::start_with(
        &bootstrap(&config(&jwks, 1, json!({})), upstream.port, jwks.port()),
        4,
    );
    envoy.wait_for_keys(&token("key1", "k1"));
    let start = Instant::now();
    let at_start = jwks.fetches();
    thread::sleep(Duration::from_millis(4500));
    let fetched = jwks.fetches() - at_start;
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!("--concurrency 4, refresh 1 s: {fetched} fetches in {elapsed:.1} s (plus {at_start} at start)");
    // One fetch per interval for the whole process; a fetch per worker would be 5× that.
    assert!(
        fetched <= elapsed.ceil() as usize + 1,
        "{fetched} fetches in {elapsed:.1} s"
    );
    assert!(
        fetched >= 3,
        "refreshes happen: {fetched} in {elapsed:.1} s"
    );
    assert_eq!(at_start, 1, "one fetch at start-up for all workers");
    // Every worker has the keys: many requests, spread over connections, all pass.
    for _ in 0..40 {
        assert_eq!(status(&envoy, &token("key1", "k1")), 200);
    }
}

#[test]
fn keys_rotate_in_by_unknown_kid_and_out_by_refresh_and_random_kids_are_rate_limited() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let envoy = Envoy::start_with(
        &bootstrap(&config(&jwks, 3, json!({})), upstream.port, jwks.port()),
        2,
    );
    envoy.wait_for_keys(&token("key1", "k1"));
    let before = jwks.fetches();

    // Rotation in: a new key appears upstream; its first token triggers one refetch and passes.
    jwks.set(200, &tokens::jwks(&[("key1", "k1"), ("key2", "k2")]));
    assert_eq!(status(&envoy, &token("key2", "k2")), 200, "{}", envoy.log());
    assert!(
        jwks.fetches() > before,
        "the unknown kid triggered a refetch"
    );

    // A flood of random kids right after: all 401, and no more fetches than the refresh makes.
    let flood: Vec<String> = (0..30)
        .map(|i| token("key1", &format!("random-{i}")))
        .collect();
    let after_refetch = jwks.fetches();
    let started = Instant::now();
    for t in &flood {
        let r = get_with_token(envoy.port, "/", t);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json()["error_description"],
            "the token's signing key is not known"
        );
    }
    let flood_fetches = jwks.fetches() - after_refetch;
    // The refreshes every 3 s, plus at most one fetch brought forward by an unknown kid.
    let refreshes = started.elapsed().as_secs() / 3 + 2;

    assert!(
        flood_fetches as u64 <= refreshes,
        "{flood_fetches} fetches during the flood"
    );

    // Rotation out: the key leaves the JWKS and stops being accepted after the next refresh.
    jwks.set(200, &tokens::jwks(&[("key1", "k1")]));
    let deadline = Instant::now() + Duration::from_secs(8);
    while status(&envoy, &token("key2", "k2")) == 200 {
        assert!(Instant::now() < deadline, "key2 is still accepted");
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status(&envoy, &token("key2", "k2")), 401);
    assert_eq!(status(&envoy, &token("key1", "k1")), 200);
}

#[test]
fn requests_wait_for_the_first_keys_then_pass() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    jwks.set_delay(Duration::from_millis(1500));
    let upstream = echo_upstream();
    let mut cfg = config(&jwks, 600, json!({ "startup_wait_ms": 5000 }));
    cfg["providers"][0]["jwks"]["timeout_ms"] = 3000.into();
    let envoy = Envoy::start(&bootstrap(&cfg, upstream.port, jwks.port()));
    let started = Instant::now();
    let r = get_with_token(envoy.port, "/", &token("key1", "k1"));
    assert_eq!(
        r.status, 200,
        "the paused request is served once keys land: {}",
        r.body
    );
    assert_eq!(upstream.hits(), 1);
    eprintln!("first request served after {:?}", started.elapsed());
}

#[test]
fn requests_get_503_when_the_jwks_never_comes() {
    let jwks = JwksServer::start("");
    jwks.set(503, "unavailable");
    let upstream = echo_upstream();
    let envoy = Envoy::start(&bootstrap(
        &config(&jwks, 600, json!({ "startup_wait_ms": 1000 })),
        upstream.port,
        jwks.port(),
    ));
    let started = Instant::now();
    let r = get_with_token(envoy.port, "/", &token("key1", "k1"));
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert!(
        waited >= Duration::from_millis(800),
        "it waited for keys first ({waited:?})"
    );
    assert_eq!(upstream.hits(), 0, "nothing unverified is let through");
    assert!(jwks.fetches() >= 2, "failed fetches are retried");
    assert!(
        envoy
            .log()
            .contains("provider cognito: JWKS fetch failed: HTTP status 503"),
        "{}",
        envoy.log()
    );
}

#[test]
fn outages_and_bad_answers_keep_the_last_good_keys() {
    let mut jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let envoy = Envoy::start(&bootstrap(
        &config(&jwks, 1, json!({})),
        upstream.port,
        jwks.port(),
    ));
    let good = token("key1", "k1");
    envoy.wait_for_keys(&good);

    let oversize = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    let no_usable_key =
        json!({ "keys": [{ "kty": "EC", "kid": "e1", "crv": "P-256", "x": "AA", "y": "AA" }] })
            .to_string();
    let bad_answers: Vec<(&str, u16, &str, &str)> = vec![
        ("non-200", 500, "oops", "HTTP status 500"),
        (
            "invalid JSON",
            200,
            "<html>not json</html>",
            "is not a JSON object",
        ),
        ("no usable key", 200, &no_usable_key, "no usable key"),
        ("oversize body", 200, &oversize, "bound"),
    ];
    for (name, code, body, logged) in bad_answers {
        jwks.set(code, body);
        let n = jwks.fetches();
        jwks.wait_for_fetches(n + 2);
        assert_eq!(
            status(&envoy, &good),
            200,
            "{name}: the last good keys stay"
        );
        assert!(
            envoy.log().contains(logged),
            "{name}: the failure is logged with its reason"
        );
    }

    jwks.set(200, &tokens::jwks(&[("key1", "k1")]));
    jwks.set_delay(Duration::from_millis(1500)); // over the 500 ms timeout
    let n = jwks.fetches();
    jwks.wait_for_fetches(n + 2);
    assert_eq!(
        status(&envoy, &good),
        200,
        "timeout: the last good keys stay"
    );
    jwks.set_delay(Duration::ZERO);

    jwks.hang_up();
    let n = jwks.fetches();
    jwks.wait_for_fetches(n + 2);
    assert_eq!(
        status(&envoy, &good),
        200,
        "hang-up: the last good keys stay"
    );

    jwks.stop();
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        status(&envoy, &good),
        200,
        "connection refused: the last good keys stay"
    );
    let log = envoy.log();
    let failures = log.matches("provider cognito: JWKS fetch failed").count();
    assert!(failures >= 5, "{failures} failures logged");
    assert!(
        log.contains("keeping the last good keys; retry in"),
        "{log}"
    );
}

#[test]
fn two_providers_are_told_apart_by_issuer() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let bots_iss = "https://catalog.example.com";
    let local: Value = serde_json::from_str(&tokens::jwks(&[("key2", "bot-key")])).unwrap();
    let cfg = json!({ "providers": [
        provider("cognito", jwks.port()),
        { "name": "bots", "issuer": bots_iss, "local_jwks": local },
    ]});
    let envoy = Envoy::start(&bootstrap(&cfg, upstream.port, jwks.port()));
    envoy.wait_for_keys(&token("key1", "k1"));

    let bot_claims = json!({ "iss": bots_iss, "sub": "ingestion-bot", "email": "ingestion-bot@example.com", "exp": now() + 600 });
    assert_eq!(
        status(&envoy, &sign("key2", "bot-key", &bot_claims)),
        200,
        "a bot token from local_jwks"
    );
    assert_eq!(status(&envoy, &token("key1", "k1")), 200, "a pool token");
    // A bot-issuer token signed with the pool's key is not the bots' key: refused.
    let r = get_with_token(envoy.port, "/", &sign("key1", "bot-key", &bot_claims));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error_description"],
        "the token's signature is invalid"
    );
    // A pool token naming the bots' kid is looked up in the pool's keys only.
    let r = get_with_token(envoy.port, "/", &sign("key2", "bot-key", &id_claims(now())));
    assert_eq!(r.status, 401);
}
