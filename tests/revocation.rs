//! End to end: OpenMetadata's bot and personal access tokens (with and without `exp`) against
//! an OpenMetadata-shaped JWKS, tokens without `exp` where the provider did not opt in, and
//! revocation lists (inline, and fetched through a cluster: an entry cuts a token off within
//! one refresh; outages and oversized lists keep the last good list).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, id_claims, openmetadata_claims, sign, with, OM_ISS, OM_KID};
use common::*;
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

/// Envoy with the pool (keys key1/k1), OpenMetadata's bots (its JWKS on a test server, key
/// `key_other`, `require_expiration: false`, a fetched revocation list refreshed every second)
/// and a strict plain issuer that did not opt in.
struct Bots {
    envoy: Envoy,
    list: JwksServer,
    _om: JwksServer,
    _pool: JwksServer,
    _upstream: Server,
}

const STRICT_ISS: &str = "https://strict.example.com";

fn start(initial_list: &str) -> Bots {
    let pool = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let om = JwksServer::start(&tokens::openmetadata_jwks("key_other", OM_KID));
    let list = JwksServer::start(initial_list);
    let upstream = echo_upstream();
    let mut cognito = provider("cognito", pool.port());
    cognito["revoked"] = json!({ "username": ["mallory"] });
    let config = json!({ "providers": [
        cognito,
        {
            "name": "openmetadata-bots",
            "issuer": OM_ISS,
            "require_email_verified": false,
            "require_expiration": false,
            "jwks": { "cluster": "om", "uri": format!("http://127.0.0.1:{}/api/v1/system/config/jwks", om.port()) },
            "revocation_list": { "cluster": "revocation", "uri": format!("http://127.0.0.1:{}/revoked.json", list.port()),
                                 "refresh_interval_seconds": 1, "timeout_ms": 500 },
        },
        {
            "name": "strict",
            "issuer": STRICT_ISS,
            "jwks": { "cluster": "om", "uri": format!("http://127.0.0.1:{}/api/v1/system/config/jwks", om.port()) },
        },
    ]});
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("jwks", pool.port()),
        cluster("om", om.port()),
        cluster("revocation", list.port()),
    ];
    let envoy = Envoy::start(&bootstrap_with_clusters(&config, clusters));
    envoy.wait_for_keys(&sign("key1", "k1", &id_claims(now())));
    list.wait_for_fetches(1);
    Bots {
        envoy,
        list,
        _om: om,
        _pool: pool,
        _upstream: upstream,
    }
}

fn om_token(name: &str, token_type: &str, exp: Option<u64>) -> String {
    sign(
        "key_other",
        OM_KID,
        &openmetadata_claims(now(), name, token_type, exp),
    )
}

fn upstream_header(r: &Reply, name: &str) -> Option<String> {
    r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap().to_string())
}

/// Polls until `token` gets `status` (an event: a list fetched and picked up), or panics.
fn wait_for_status(envoy: &Envoy, token: &str, status: u16, what: &str) -> (Reply, Duration) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    loop {
        let r = get_with_token(envoy.port, "/api/v1/tables", token);
        if r.status == status {
            return (r, start.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} {} after 20 s:\n{}",
            r.status,
            r.body,
            envoy.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn openmetadata_bots_and_personal_access_tokens_with_and_without_exp() {
    let bots = start("{}");
    let port = bots.envoy.port;
    for (name, kind) in [("ingestion-bot", "BOT"), ("user3", "PERSONAL_ACCESS")] {
        for exp in [Some(now() + 3600), None] {
            let r = get_with_token(port, "/api/v1/tables", &om_token(name, kind, exp));
            assert_eq!(r.status, 200, "{kind} {name} exp {exp:?}: {}", r.body);
            assert_eq!(
                upstream_header(&r, "x-auth-provider").as_deref(),
                Some("openmetadata-bots")
            );
            assert_eq!(upstream_header(&r, "x-auth-sub").as_deref(), Some(name));
            assert_eq!(
                upstream_header(&r, "x-auth-email"),
                Some(format!("{name}@open-metadata.org")),
                "the bots provider vouches for its emails"
            );
        }
    }
    // An expired bot token is still refused: opting in to no exp does not waive a given one.
    let r = get_with_token(
        port,
        "/",
        &om_token("ingestion-bot", "BOT", Some(now() - 3600)),
    );
    assert_eq!(
        (r.status, r.json()["error_description"].as_str()),
        (401, Some("the token has expired"))
    );
}

#[test]
fn a_token_without_exp_is_refused_where_the_provider_did_not_opt_in() {
    let bots = start("{}");
    let port = bots.envoy.port;
    let pool_no_exp = sign("key1", "k1", &with(id_claims(now()), "exp", Value::Null));
    let strict_no_exp = sign(
        "key_other",
        OM_KID,
        &with(
            openmetadata_claims(now(), "ingestion-bot", "BOT", None),
            "iss",
            STRICT_ISS.into(),
        ),
    );
    for (what, token) in [("pool", pool_no_exp), ("strict issuer", strict_no_exp)] {
        let r = get_with_token(port, "/", &token);
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(
            r.json()["error_description"],
            "the token has no exp claim",
            "{what}"
        );
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""));
    }
}

#[test]
fn a_revocation_list_entry_cuts_a_token_off_within_one_refresh() {
    let bots = start("{}");
    let envoy = &bots.envoy;
    let bot = om_token("ingestion-bot", "BOT", None);
    let user = om_token("user3", "PERSONAL_ACCESS", None);
    assert_eq!(get_with_token(envoy.port, "/", &bot).status, 200);

    // The inline list of the pool: mallory's tokens never pass.
    let mallory = sign(
        "key1",
        "k1",
        &with(id_claims(now()), "cognito:username", "mallory".into()),
    );
    let r = get_with_token(envoy.port, "/", &mallory);
    assert_eq!(
        (r.status, r.json()["error_description"].as_str()),
        (401, Some("the token has been revoked"))
    );

    // The bot's leaked unlimited token goes on the fetched list.
    bots.list.set(200, r#"{ "sub": ["ingestion-bot"] }"#);
    let (r, took) = wait_for_status(envoy, &bot, 401, "revoked bot");
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(r.json()["error_description"], "the token has been revoked");
    assert!(took < Duration::from_secs(10), "within a refresh: {took:?}");
    assert_eq!(
        get_with_token(envoy.port, "/", &user).status,
        200,
        "others pass"
    );

    // Outages, bad and oversized lists keep the last good list.
    let fetches = bots.list.fetches();
    bots.list.set(503, "down");
    bots.list.wait_for_fetches(fetches + 1);
    bots.list.set(200, "{ not json");
    bots.list.wait_for_fetches(fetches + 2);
    let too_many: Vec<String> = (0..100_001).map(|i| format!("j{i}")).collect();
    bots.list.set(200, &json!({ "jti": too_many }).to_string());
    bots.list.wait_for_fetches(fetches + 3);
    bots.list.set(200, &" ".repeat(4 * 1024 * 1024 + 1));
    bots.list.wait_for_fetches(fetches + 4);
    // A fetch that reached the server is judged a moment later, and counted on the next tick.
    envoy.wait_for_stat(
        "wasmcustom.cognito_edge_auth.revocation.openmetadata-bots.fetch_failure",
        4,
    );
    assert_eq!(get_with_token(envoy.port, "/", &bot).status, 401);
    // mallory, the bot at least once, and the bot just now.
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.denied.revoked", 3);

    // Taken off the list: it passes again within a refresh.
    bots.list.set(200, "{}");
    wait_for_status(envoy, &bot, 200, "unrevoked bot");
    let log = envoy.log();
    assert!(
        log.contains("revocation list fetch failed: HTTP status 503; keeping the last good list")
    );
    assert!(
        log.contains("over the 4194304-byte bound"),
        "oversized list refused"
    );
    assert!(!log.contains(&bot), "the token is never logged");
}
