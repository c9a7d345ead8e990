//! End to end: Envoy refuses to start with a bad filter configuration, naming the field.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::json;

fn refused(config: serde_json::Value, field: &str) {
    let (code, log) = Envoy::expect_refusal(&bootstrap(&config, 9, 9));
    assert_ne!(code, Some(0), "envoy must exit with an error");
    assert!(
        log.contains(&format!("configuration field `{field}`")),
        "the log does not name `{field}`:\n{log}"
    );
}

#[test]
fn an_unknown_field_stops_envoy() {
    let mut p = provider("cognito", 9);
    p["jwks"]["url"] = "https://example.com".into();
    refused(json!({ "providers": [p] }), "providers[0].jwks.url");
}

#[test]
fn a_bad_value_stops_envoy() {
    let mut p = provider("cognito", 9);
    p["algorithms"] = json!(["HS256"]);
    refused(json!({ "providers": [p] }), "providers[0].algorithms[0]");
}

#[test]
fn a_wrong_type_stops_envoy() {
    let mut p = provider("cognito", 9);
    p["client_ids"] = json!("client1");
    refused(json!({ "providers": [p] }), "providers[0].client_ids");
}

#[test]
fn a_bad_rule_stops_envoy() {
    let rule =
        json!({ "match": { "prefix": "/" }, "allow": "public", "require": { "admin": true } });
    refused(
        json!({ "providers": [provider("cognito", 9)], "rules": [{ "match": { "exact": "/healthz" }, "allow": "public" }, rule] }),
        "rules[1]",
    );
}

#[test]
fn a_pool_that_would_accept_tokens_without_exp_stops_envoy() {
    let mut p = provider("cognito", 9);
    p["require_expiration"] = false.into();
    refused(
        json!({ "providers": [p] }),
        "providers[0].require_expiration",
    );
}

#[test]
fn an_active_rule_without_an_online_check_stops_envoy() {
    refused(
        json!({ "providers": [provider("cognito", 9)],
                "rules": [{ "match": { "prefix": "/account" }, "require": { "active": true } }] }),
        "rules[0].require.active",
    );
}

#[test]
fn a_login_secret_missing_from_the_vm_environment_stops_envoy() {
    let login = json!({ "provider": "cognito", "client_id": "client1",
        "client_secret_env": "CEA_TEST_UNSET_SECRET", "cookie_key_env": "CEA_TEST_UNSET_KEY",
        "domain": "https://auth.example.com", "token_cluster": "jwks" });
    refused(
        json!({ "providers": [provider("cognito", 9)], "login": login }),
        "login.client_secret_env",
    );
}
