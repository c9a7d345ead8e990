//! End to end against moto, the Cognito emulator: the online check of access tokens
//! (`GetUser`). Sign in, call (200), `GlobalSignOut`, call again → 401 within the configured
//! cache time on every worker; and what requests get while the emulator cannot be reached.
//!
//! Moto answers every access token; Cognito does not. The tests in `online_check/cognito.rs`
//! run against a stand-in that answers as Cognito's API reference documents (scopes, error
//! kinds, throttling), and show the fairness and quota bounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "online_check/cognito.rs"]
mod cognito;
mod common;

use common::*;
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

const CACHE_SECONDS: u64 = 2;
/// Far longer than moto takes to answer GetUser, also on a loaded machine.
const CHECK_TIMEOUT_MS: u64 = 3000;

struct Pool {
    id: String,
    client: String,
}

fn make_pool(moto: &Moto) -> Pool {
    let pool = moto.cognito("CreateUserPool", json!({ "PoolName": "online-check" }));
    let id = pool["UserPool"]["Id"].as_str().unwrap().to_string();
    let c = moto.cognito(
        "CreateUserPoolClient",
        json!({ "UserPoolId": id, "ClientName": "web", "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"] }),
    );
    let client = c["UserPoolClient"]["ClientId"]
        .as_str()
        .unwrap()
        .to_string();
    moto.cognito(
        "AdminCreateUser",
        json!({ "UserPoolId": id, "Username": "alice", "MessageAction": "SUPPRESS",
                "UserAttributes": [{ "Name": "email", "Value": "alice@example.com" }, { "Name": "email_verified", "Value": "true" }] }),
    );
    moto.cognito(
        "AdminSetUserPassword",
        json!({ "UserPoolId": id, "Username": "alice", "Password": "Correct-Horse-9", "Permanent": true }),
    );
    Pool { id, client }
}

/// (ID token, access token) for alice.
fn sign_in(moto: &Moto, pool: &Pool) -> (String, String) {
    let auth = moto.cognito(
        "AdminInitiateAuth",
        json!({ "UserPoolId": pool.id, "ClientId": pool.client, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
                "AuthParameters": { "USERNAME": "alice", "PASSWORD": "Correct-Horse-9" } }),
    );
    let r = &auth["AuthenticationResult"];
    (
        r["IdToken"].as_str().unwrap().into(),
        r["AccessToken"].as_str().unwrap().into(),
    )
}

/// The filter configuration: the pool with an online check through cluster `cognito_idp`;
/// `/account` requires a live token, everything else a valid one.
fn config(moto: &Moto, pool: &Pool, keys: Value, online: Value) -> Value {
    let mut check = json!({ "cluster": "cognito_idp", "cache_seconds": CACHE_SECONDS, "timeout_ms": CHECK_TIMEOUT_MS });
    for (k, v) in online.as_object().unwrap() {
        check[k] = v.clone();
    }
    let mut provider = json!({
        "name": "cognito",
        "user_pool_id": pool.id,
        "client_ids": [pool.client],
        "online_check": check,
    });
    if keys.is_null() {
        provider["jwks"] = json!({ "cluster": "cognito_idp",
            "uri": format!("http://127.0.0.1:{}/{}/.well-known/jwks.json", moto.port, pool.id) });
    } else {
        provider["local_jwks"] = keys;
    }
    json!({ "providers": [provider], "rules": [
        { "match": { "prefix": "/account" }, "require": { "active": true } },
        { "match": { "prefix": "/" }, "require": { "authenticated": true } },
    ]})
}

/// Connections accepted so far by each worker of the main listener.
fn per_worker_connections(envoy: &Envoy) -> Vec<u64> {
    let r = get(
        envoy.admin_port,
        "/stats?filter=worker_[0-9]+\\.downstream_cx_total$",
    );
    let mut counts: Vec<(String, u64)> = r
        .body
        .lines()
        .filter(|l| l.starts_with("listener.127.0.0.1_"))
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(n, v)| Some((n.to_string(), v.trim().parse().ok()?)))
        .collect();
    counts.sort();
    counts.into_iter().map(|(_, v)| v).collect()
}

fn status(envoy: &Envoy, path: &str, token: &str) -> Reply {
    get_with_token(envoy.port, path, token)
}

#[test]
fn a_signed_out_access_token_is_refused_within_the_cache_time_on_every_worker() {
    let moto = Moto::start();
    let pool = make_pool(&moto);
    let upstream = echo_upstream();
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("cognito_idp", moto.port),
    ];
    let cfg = config(&moto, &pool, Value::Null, json!({}));
    let envoy = Envoy::start_with(&bootstrap_with_clusters(&cfg, clusters), 2);
    let (id_token, access) = sign_in(&moto, &pool);
    envoy.wait_for_keys(&id_token);

    // Signed in: the live access token passes the checked route, on both workers (each
    // request is a new connection; Envoy spreads them over its workers).
    let before = per_worker_connections(&envoy);
    for _ in 0..10 {
        let r = status(&envoy, "/account", &access);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let after = per_worker_connections(&envoy);
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("GET /account (signed in) x10 → 200 (connections per worker: {served:?})");
    // An ID token cannot be checked with GetUser: refused on the checked route only.
    let r = status(&envoy, "/account", &id_token);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error_description"],
        "this route requires an access token that can be checked with its issuer"
    );
    assert_eq!(status(&envoy, "/catalog", &id_token).status, 200);

    moto.cognito("GlobalSignOut", json!({ "AccessToken": access }));
    let signed_out = Instant::now();
    eprintln!("GlobalSignOut → 200");
    let mut statuses = Vec::new();
    let took = loop {
        let r = status(&envoy, "/account", &access);
        statuses.push(r.status);
        if r.status == 401 {
            assert_eq!(r.json()["error"], "invalid_token");
            assert_eq!(r.json()["error_description"], "the token has been revoked");
            break signed_out.elapsed();
        }
        assert_eq!(r.status, 200, "before the answer expires: {}", r.body);
        assert!(
            signed_out.elapsed() < Duration::from_secs(CACHE_SECONDS + 10),
            "still accepted long after the cache time:\n{}",
            envoy.log()
        );
        thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "GET /account after sign-out: {} x 200, then 401 after {took:?}",
        statuses.len() - 1
    );
    assert!(
        took <= Duration::from_secs(CACHE_SECONDS + 1) + Duration::from_millis(CHECK_TIMEOUT_MS + 1000),
        "within the cache time ({CACHE_SECONDS} s, answers read to the second) and one check: {took:?}"
    );
    // From now on, every worker refuses it (the answer is in shared data).
    let before = per_worker_connections(&envoy);
    for i in 0..20 {
        let r = status(&envoy, "/account", &access);
        assert_eq!(r.status, 401, "request {i} after the first 401");
    }
    let after = per_worker_connections(&envoy);
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("GET /account x20 → 401 (connections per worker: {served:?})");
    assert_eq!(served.len(), 2, "two workers: {after:?}");
    assert!(
        served.iter().all(|&n| n > 0),
        "both workers answered 401: {served:?}"
    );
    // Counters reach Envoy on the filter's next tick: wait for them.
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.online.cognito.revoked", 1);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.online.cognito.active", 1);
    // Routes without `active` still accept the offline-verified token (documented).
    assert_eq!(status(&envoy, "/catalog", &access).status, 200);
    // A new sign-in gives a live token again.
    let (_, fresh) = sign_in(&moto, &pool);
    assert_eq!(status(&envoy, "/account", &fresh).status, 200);
    assert!(!envoy.log().contains(&access), "the token is never logged");
}

#[test]
fn while_the_emulator_cannot_be_reached_checks_fail_closed_or_open_as_configured() {
    let mut moto = Some(Moto::start());
    let m = moto.as_ref().unwrap();
    let pool = make_pool(m);
    let keys: Value =
        serde_json::from_str(&get(m.port, &format!("/{}/.well-known/jwks.json", pool.id)).body)
            .unwrap();
    let upstream = echo_upstream();
    let start = |online: Value| {
        let cfg = config(m, &pool, keys.clone(), online);
        let clusters = vec![
            cluster("upstream", upstream.port),
            cluster("cognito_idp", m.port),
        ];
        Envoy::start_with(&bootstrap_with_clusters(&cfg, clusters), 2)
    };
    let closed = start(json!({}));
    let open = start(json!({ "when_unreachable": "allow" }));
    let (_, access) = sign_in(m, &pool);
    assert_eq!(status(&closed, "/account", &access).status, 200);
    assert_eq!(status(&open, "/account", &access).status, 200);

    moto.take(); // the emulator stops: connections are refused from now on
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = status(&closed, "/account", &access);
        if r.status == 503 {
            break r;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(Instant::now() < deadline, "never 503:\n{}", closed.log());
        thread::sleep(Duration::from_millis(100));
    };
    eprintln!("emulator down, when_unreachable deny: GET /account → 503");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(
        status(&closed, "/catalog", &access).status,
        200,
        "routes without active do not need Cognito"
    );

    // Fail open: once its kept answer has expired, the check fails and the token passes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !open.log().contains("online check: Unreachable") {
        let r = status(&open, "/account", &access);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(Instant::now() < deadline, "never checked:\n{}", open.log());
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&open, "/account", &access).status, 200);
    eprintln!("emulator down, when_unreachable allow: GET /account → 200");
}

/// A slow stand-in for Cognito: counts its calls, checks their form, answers 200 after 1.5 s.
#[test]
fn calls_are_bounded_per_worker_and_shared_by_requests_with_the_same_token() {
    use common::tokens::{checkable_access_claims, sign, with};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<ServerRequest>>> = Arc::default();
    let s = seen.clone();
    let cognito = Server::start(Arc::new(move |r: &ServerRequest| {
        s.lock().unwrap().push(ServerRequest {
            method: r.method.clone(),
            path: r.path.clone(),
            headers: r.headers.clone(),
        });
        Canned {
            status: 200,
            body: br#"{"Username":"alice","UserAttributes":[]}"#.to_vec(),
            delay: Duration::from_millis(1500),
            hang_up: false,
        }
    }));
    let jwks = JwksServer::start(&common::tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let mut p = provider("cognito", jwks.port());
    p["online_check"] =
        json!({ "cluster": "cognito_idp", "max_in_flight": 1, "every_request": true });
    let cfg = json!({ "providers": [p] });
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("jwks", jwks.port()),
        cluster("cognito_idp", cognito.port),
    ];
    let envoy = Envoy::start(&bootstrap_with_clusters(&cfg, clusters));
    let token = |jti: &str| {
        sign(
            "key1",
            "k1",
            &with(checkable_access_claims(now()), "jti", jti.into()),
        )
    };
    let (a, b) = (token("a"), token("b"));
    // Keys first (an ID token is not checked online).
    envoy.wait_for_keys(&sign("key1", "k1", &common::tokens::id_claims(now())));

    let port = envoy.port;
    let first: Vec<_> = [a.clone(), a.clone()]
        .into_iter()
        .map(|t| thread::spawn(move || get_with_token(port, "/", &t).status))
        .collect();
    thread::sleep(Duration::from_millis(300));
    // One check under way: a second distinct token gets 503 at once, not a call.
    let busy = get_with_token(port, "/", &b);
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.header("retry-after"), Some("1"));
    let statuses: Vec<u16> = first.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses,
        vec![200, 200],
        "both requests waited for the one answer"
    );
    assert_eq!(
        cognito.hits(),
        1,
        "one call for two requests with the same token"
    );
    assert_eq!(get_with_token(port, "/", &a).status, 200, "the kept answer");
    assert_eq!(cognito.hits(), 1);

    let calls = seen.lock().unwrap();
    let call = &calls[0];
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/"));
    let header = |n: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        header("x-amz-target"),
        Some("AWSCognitoIdentityProviderService.GetUser")
    );
    assert_eq!(header("content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(
        header(":authority").or(header("host")),
        Some("cognito-idp.us-east-1.amazonaws.com")
    );
    assert_eq!(header("authorization"), None, "no AWS credentials");
    assert_eq!(
        envoy.wait_for_stat("wasmcustom.cognito_edge_auth.denied.online_busy", 1),
        1
    );
}

/// A check that cannot even be dispatched (no such cluster) is decided as unreachable.
#[test]
fn a_check_that_cannot_be_made_is_decided_as_unreachable() {
    use common::tokens::{checkable_access_claims, id_claims, sign};
    let jwks = JwksServer::start(&common::tokens::jwks(&[("key1", "k1")]));
    let upstream = echo_upstream();
    let start = |when: &str| {
        let mut p = provider("cognito", jwks.port());
        p["online_check"] = json!({ "cluster": "no_such_cluster", "every_request": true, "when_unreachable": when });
        let envoy = Envoy::start(&bootstrap(
            &json!({ "providers": [p] }),
            upstream.port,
            jwks.port(),
        ));
        envoy.wait_for_keys(&sign("key1", "k1", &id_claims(now())));
        envoy
    };
    let access = sign("key1", "k1", &checkable_access_claims(now()));
    let closed = start("deny");
    let r = get_with_token(closed.port, "/", &access);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    let open = start("allow");
    assert_eq!(get_with_token(open.port, "/", &access).status, 200);
}
