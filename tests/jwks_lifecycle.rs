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

/// Envoy with the filter whose JWKS is refreshed every `refresh_seconds` and fetched with a
/// `timeout_ms` deadline (the fetch lease lasts that plus 1 s).
fn config_with_timeout(jwks: &JwksServer, refresh_seconds: u64, timeout_ms: u64) -> Value {
    let mut c = config(jwks, refresh_seconds, json!({}));
    c["providers"][0]["jwks"]["timeout_ms"] = timeout_ms.into();
    c
}

#[test]
fn four_workers_fetch_once_per_refresh_interval() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    // Refresh every 1 s; a 3 s timeout keeps each fetch's lease (4 s) far longer than a local
    // fetch takes, so no other worker may take a fetch over.
    let envoy = Envoy::start_with(
        &bootstrap(
            &config_with_timeout(&jwks, 1, 3000),
            upstream.port,
            jwks.port(),
        ),
        4,
    );
    envoy.wait_for_keys(&token("key1", "k1"));
    // The first fetch and three refreshes, whenever the machine gets to them.
    jwks.wait_for_fetches(4);
    let times = jwks.fetch_times();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("--concurrency 4, refresh 1 s: fetches {gaps:?} apart");
    // One fetch per interval for the whole process: the next is due 1 s after the last one
    // finished, which is after it arrived here. Workers fetching on their own (four at start-up,
    // or one each per interval) would arrive together.
    for (i, gap) in gaps.iter().enumerate() {
        assert!(
            *gap >= Duration::from_millis(900),
            "fetches {i} and {} came {gap:?} apart, under the 1 s refresh interval: {gaps:?}",
            i + 1
        );
    }
    // Every worker has the keys: many requests, spread over connections, all pass.
    for _ in 0..40 {
        assert_eq!(status(&envoy, &token("key1", "k1")), 200);
    }
}

#[test]
fn keys_rotate_in_by_unknown_kid_and_out_by_refresh_and_random_kids_are_rate_limited() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    // Refresh every 3 s. A request waiting on an unknown-kid refetch waits the fetch timeout
    // plus 2 s: a 3 s timeout gives it 5 s, for a fetch that starts on the next 200 ms tick.
    let envoy = Envoy::start_with(
        &bootstrap(
            &config_with_timeout(&jwks, 3, 3000),
            upstream.port,
            jwks.port(),
        ),
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
    let started = Instant::now();
    let after_refetch = jwks.fetches();
    for t in &flood {
        let r = get_with_token(envoy.port, "/", t);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json()["error_description"],
            "the token's signing key is not known"
        );
    }
    let flood_fetches = jwks.fetches() - after_refetch;
    // However long the flood took (E): refreshes come at least 3 s apart (at most E/3 + 1 of
    // them), and unknown kids bring at most one fetch forward per 10 s (E/10 + 1). A fetch per
    // random kid would be 30.
    let elapsed = started.elapsed().as_secs_f64();
    let bound = (elapsed / 3.0).ceil() as usize + (elapsed / 10.0).ceil() as usize + 1;
    assert!(
        flood_fetches <= bound,
        "{flood_fetches} fetches during a {elapsed:.1} s flood of 30 unknown kids (at most {bound})"
    );

    // Rotation out: the key leaves the JWKS and stops being accepted after the next refresh
    // (due within 3 s).
    // Each of the two workers takes the new key set on its own next tick, so one may still
    // accept key2 for a moment after the other refuses it: wait until ten requests in a row
    // (new connections, spread over both workers) are refused.
    jwks.set(200, &tokens::jwks(&[("key1", "k1")]));
    wait_until(
        "key2 to be refused by every worker after a refresh",
        PATIENCE,
        || {
            (0..10)
                .all(|_| status(&envoy, &token("key2", "k2")) == 401)
                .then_some(())
        },
    );
    assert_eq!(status(&envoy, &token("key1", "k1")), 200);
}

#[test]
fn requests_wait_for_the_first_keys_then_pass() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    // The first fetch is held until the request is seen waiting: the order of events is the
    // test's, not the machine's. Timeout and start-up wait are far longer than any of it takes.
    jwks.hold();
    let upstream = echo_upstream();
    let mut cfg = config(&jwks, 600, json!({ "startup_wait_ms": 30000 }));
    cfg["providers"][0]["jwks"]["timeout_ms"] = 30000.into();
    let envoy = Envoy::start(&bootstrap(&cfg, upstream.port, jwks.port()));
    jwks.wait_for_fetches(1);
    let port = envoy.port;
    let client = thread::spawn(move || get_with_token(port, "/", &token("key1", "k1")));
    // The request has reached Envoy and is not answered: it waits for the keys.
    wait_until("the request to be in flight in Envoy", PATIENCE, || {
        (client.is_finished() || envoy.stat("http.ingress.downstream_rq_active")? >= 1)
            .then_some(())
    });
    if client.is_finished() {
        let r = client.join().unwrap();
        panic!(
            "answered {} before the keys came, instead of waiting: {}",
            r.status, r.body
        );
    }
    assert_eq!(upstream.hits(), 0, "nothing unverified is let through");
    let released = Instant::now();
    jwks.release();
    let r = client.join().unwrap();
    assert_eq!(
        r.status, 200,
        "the paused request is served once keys land: {}",
        r.body
    );
    assert_eq!(upstream.hits(), 1);
    assert_eq!(jwks.fetches(), 1, "one fetch, no retry");
    eprintln!(
        "served {:?} after the keys were released",
        released.elapsed()
    );
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
    // The wait ends at its deadline, never earlier (a failed fetch does not end it); a loaded
    // machine can only make it longer.
    assert!(
        waited >= Duration::from_millis(950),
        "it waited startup_wait_ms for keys first ({waited:?})"
    );
    assert_eq!(upstream.hits(), 0, "nothing unverified is let through");
    envoy.wait_for_log("provider cognito: JWKS fetch failed: HTTP status 503");
    // Failed fetches are retried (the first retry 1 s after the first failure).
    jwks.wait_for_fetches(2);
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
        // The first of the two fetches got this answer, and its failure was logged.
        envoy.wait_for_log(logged);
    }

    // A good answer that never comes in time: held (not delayed, which a stalled Envoy could
    // outlast) past the 500 ms timeout. The fetch fails (Envoy answers the call itself with a
    // 504); it does not succeed late.
    let count = |envoy: &Envoy, what: &str| envoy.log().matches(what).count();
    let timed_out = "JWKS fetch failed: HTTP status 504";
    jwks.set(200, &tokens::jwks(&[("key1", "k1")]));
    jwks.hold();
    let (n, before) = (jwks.fetches(), count(&envoy, timed_out));
    jwks.wait_for_fetches(n + 2);
    wait_until("a timed-out fetch logged", PATIENCE, || {
        (count(&envoy, timed_out) > before).then_some(())
    });
    assert_eq!(
        status(&envoy, &good),
        200,
        "timeout: the last good keys stay"
    );
    jwks.release();

    // A connection closed without an answer: Envoy answers the call with a 503.
    jwks.hang_up();
    let hung_up = "JWKS fetch failed: HTTP status 503";
    let (n, before) = (jwks.fetches(), count(&envoy, hung_up));
    jwks.wait_for_fetches(n + 2);
    wait_until("a hung-up fetch logged", PATIENCE, || {
        (count(&envoy, hung_up) > before).then_some(())
    });
    assert_eq!(
        status(&envoy, &good),
        200,
        "hang-up: the last good keys stay"
    );

    jwks.stop();
    // Two more failed fetches: the second one started after the port was closed.
    let failed = envoy
        .stat("wasmcustom.cognito_edge_auth.jwks.cognito.fetch_failure")
        .unwrap();
    envoy.wait_for_stat(
        "wasmcustom.cognito_edge_auth.jwks.cognito.fetch_failure",
        failed + 2,
    );
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
