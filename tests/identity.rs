//! End to end: identities that cannot be forged (docs/security-model.md).
//!
//! Tokens come from moto, the Cognito emulator, through the real Cognito API (a look-alike of
//! an admin signs itself up); identity headers are checked at a real WSGI server that folds
//! `_` into `-` as CGI, WSGI and PHP servers do.

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

const PASSWORD: &str = "Correct-Horse-9";

/// A user pool in moto, made as an operator would through the Cognito API.
struct Pool {
    id: String,
    client: String,
}

fn make_pool(moto: &Moto) -> Pool {
    // Pools made through the API are case-sensitive unless told otherwise; say so anyway.
    let pool = moto.cognito(
        "CreateUserPool",
        json!({ "PoolName": "identity", "UsernameConfiguration": { "CaseSensitive": true } }),
    );
    let id = pool["UserPool"]["Id"].as_str().unwrap().to_string();
    let c = moto.cognito(
        "CreateUserPoolClient",
        json!({ "UserPoolId": id, "ClientName": "web", "ReadAttributes": ["email", "email_verified"],
                "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"] }),
    );
    let client = c["UserPoolClient"]["ClientId"]
        .as_str()
        .unwrap()
        .to_string();
    Pool { id, client }
}

/// A user the operator creates, with a verified email.
fn admin_create(moto: &Moto, pool: &Pool, username: &str, email: &str) {
    moto.cognito(
        "AdminCreateUser",
        json!({ "UserPoolId": pool.id, "Username": username, "MessageAction": "SUPPRESS",
                "UserAttributes": [{ "Name": "email", "Value": email }, { "Name": "email_verified", "Value": "true" }] }),
    );
    moto.cognito(
        "AdminSetUserPassword",
        json!({ "UserPoolId": pool.id, "Username": username, "Password": PASSWORD, "Permanent": true }),
    );
}

/// (ID token, access token) of `username`.
fn sign_in(moto: &Moto, pool: &Pool, username: &str) -> (String, String) {
    let auth = moto.cognito(
        "AdminInitiateAuth",
        json!({ "UserPoolId": pool.id, "ClientId": pool.client, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
                "AuthParameters": { "USERNAME": username, "PASSWORD": PASSWORD } }),
    );
    let result = &auth["AuthenticationResult"];
    (
        result["IdToken"].as_str().unwrap().into(),
        result["AccessToken"].as_str().unwrap().into(),
    )
}

/// (ID token, access token) of each person in the pool.
struct People {
    /// `user1`, with the verified email user1@open-metadata.org.
    admin: (String, String),
    /// `alice`, with the verified email alice@example.com.
    outsider: (String, String),
    /// `USER1`, who signed itself up with user1@open-metadata.org as its email.
    look_alike: (String, String),
}

fn people(moto: &Moto) -> (Pool, People) {
    let pool = make_pool(moto);
    admin_create(moto, &pool, "user1", "user1@open-metadata.org");
    admin_create(moto, &pool, "alice", "alice@example.com");
    // The look-alike signs itself up: its email is whatever it typed, never verified.
    moto.cognito(
        "SignUp",
        json!({ "ClientId": pool.client, "Username": "USER1", "Password": PASSWORD,
                "UserAttributes": [{ "Name": "email", "Value": "user1@open-metadata.org" }] }),
    );
    moto.cognito(
        "AdminConfirmSignUp",
        json!({ "UserPoolId": pool.id, "Username": "USER1" }),
    );
    let people = People {
        admin: sign_in(moto, &pool, "user1"),
        outsider: sign_in(moto, &pool, "alice"),
        look_alike: sign_in(moto, &pool, "USER1"),
    };
    (pool, people)
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Envoy with the filter in front of the echo upstream, the pool's keys from moto.
fn envoy_for(moto: &Moto, pool: &Pool, provider_extra: Value, extra: Value) -> (Envoy, Server) {
    let upstream = echo_upstream();
    let mut provider = json!({
        "name": "cognito",
        "user_pool_id": pool.id,
        "client_ids": [pool.client],
        "jwks": { "cluster": "cognito_idp", "uri": format!("http://127.0.0.1:{}/{}/.well-known/jwks.json", moto.port, pool.id) },
    });
    for (k, v) in provider_extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    let mut config = json!({ "providers": [provider] });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("cognito_idp", moto.port),
    ];
    (
        Envoy::start(&bootstrap_with_clusters(&config, clusters)),
        upstream,
    )
}

/// The value of `name` the echo upstream received, if any (at most once).
fn upstream_header(r: &Reply, name: &str) -> Option<String> {
    assert_eq!(r.status, 200, "not forwarded: {}", r.body);
    let values: Vec<String> = r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str() == Some(name))
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect();
    assert!(values.len() <= 1, "{name} arrived {} times", values.len());
    values.into_iter().next()
}

fn assert_403(r: &Reply, description: &str) {
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error_description"], description, "{}", r.body);
}

const NO_VERIFIED_EMAIL: &str = "the token has no verified email address to check the domain of (Cognito access tokens carry none unless a pre token generation trigger adds email and email_verified)";

/// OpenMetadata's model with domain enforcement, tokens from the emulator: an outsider, a
/// look-alike of an admin (`USER1` for `user1`, with the admin's address as its unverified
/// email) and the admin, with ID and access tokens.
#[test]
fn look_alikes_and_outsiders_get_nothing_the_admin_gets_in() {
    let moto = Moto::start();
    let (pool, people) = people(&moto);
    let (admin_id, admin_access) = people.admin;
    let (alice_id, alice_access) = people.outsider;
    let (fake_id, fake_access) = people.look_alike;
    assert_eq!(claims_of(&admin_id)["email"], "user1@open-metadata.org");
    assert_eq!(
        claims_of(&fake_id)["email"],
        "user1@open-metadata.org",
        "the same address"
    );
    assert_eq!(
        claims_of(&fake_id)["cognito:username"],
        "USER1",
        "two people"
    );
    assert_ne!(claims_of(&fake_id)["email_verified"], json!(true));
    assert_ne!(claims_of(&fake_id)["email_verified"], json!("true"));
    assert!(
        claims_of(&admin_access).get("email").is_none(),
        "access tokens carry no email"
    );

    let rules = json!([
        { "match": { "prefix": "/admin/" }, "require": { "admin": true } },
        { "match": { "prefix": "/" }, "require": { "authenticated": true } },
    ]);
    let (envoy, _upstream) = envoy_for(
        &moto,
        &pool,
        json!({}),
        json!({
            "admin_principals": ["user1"],
            "principal_domain": "open-metadata.org",
            "enforce_principal_domain": true,
            "rules": rules,
        }),
    );
    envoy.wait_for_keys(&admin_id);

    // The admin, by the verified email of the domain.
    let r = get_with_token(envoy.port, "/admin/settings", &admin_id);
    assert_eq!(upstream_header(&r, "x-auth-admin").as_deref(), Some("true"));
    assert_eq!(
        upstream_header(&r, "x-auth-principal").as_deref(),
        Some("user1")
    );
    assert_eq!(
        upstream_header(&r, "x-auth-email").as_deref(),
        Some("user1@open-metadata.org")
    );
    // Her access token proves no domain: refused, and why.
    assert_403(
        &get_with_token(envoy.port, "/", &admin_access),
        NO_VERIFIED_EMAIL,
    );
    // The outsider: 403 with either token (the access token no longer becomes
    // alice@open-metadata.org).
    assert_403(
        &get_with_token(envoy.port, "/", &alice_id),
        "the principal's email domain is not allowed",
    );
    assert_403(
        &get_with_token(envoy.port, "/", &alice_access),
        NO_VERIFIED_EMAIL,
    );
    // The look-alike: its email is not verified, its name is not user1.
    assert_403(
        &get_with_token(envoy.port, "/admin/settings", &fake_id),
        "the principal's email address is not verified",
    );
    assert_403(
        &get_with_token(envoy.port, "/admin/settings", &fake_access),
        NO_VERIFIED_EMAIL,
    );
    // Counted by reason (the counters reach Envoy on the filter's next tick).
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.denied.domain", 4);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.denied.unverified_email", 1);
}

/// Names from the pool's own claims, declared by the operator: the admin gets in with both
/// token kinds, the look-alike with neither; nothing is completed with the domain.
#[test]
fn declared_name_claims_compare_exactly_in_a_case_sensitive_pool() {
    let moto = Moto::start();
    let (pool, people) = people(&moto);
    let (admin_id, admin_access) = people.admin;
    let (fake_id, fake_access) = people.look_alike;
    let (_, alice_access) = people.outsider;

    let (envoy, _upstream) = envoy_for(
        &moto,
        &pool,
        json!({ "name_claims": ["cognito:username", "username"] }),
        json!({
            "admin_principals": ["user1"],
            "principal_domain": "open-metadata.org",
            "rules": [
                { "match": { "prefix": "/admin/" }, "require": { "admin": true } },
                { "match": { "prefix": "/" }, "require": { "authenticated": true } },
            ],
        }),
    );
    envoy.wait_for_keys(&admin_id);

    for token in [&admin_id, &admin_access] {
        let r = get_with_token(envoy.port, "/admin/settings", token);
        assert_eq!(upstream_header(&r, "x-auth-admin").as_deref(), Some("true"));
        assert_eq!(
            upstream_header(&r, "x-auth-principal").as_deref(),
            Some("user1")
        );
    }
    for token in [&fake_id, &fake_access] {
        assert_403(
            &get_with_token(envoy.port, "/admin/settings", token),
            "this route is for administrators",
        );
        let r = get_with_token(envoy.port, "/", token);
        assert_eq!(
            upstream_header(&r, "x-auth-principal").as_deref(),
            Some("USER1")
        );
        assert_eq!(
            upstream_header(&r, "x-auth-admin").as_deref(),
            Some("false")
        );
        assert_eq!(upstream_header(&r, "x-auth-email"), None, "never verified");
    }
    // An access token has no email, and none is made up from principal_domain.
    let r = get_with_token(envoy.port, "/", &alice_access);
    assert_eq!(
        upstream_header(&r, "x-auth-principal").as_deref(),
        Some("alice")
    );
    assert_eq!(upstream_header(&r, "x-auth-email"), None);
}

// ---------------------------------------------------------------------------------------
// A WSGI upstream (Python's wsgiref): `x_auth_principal` and `x-auth-principal` are the same
// HTTP_X_AUTH_PRINCIPAL to it.

fn environ(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "not forwarded: {}", r.body);
    r.json()["environ"].clone()
}

#[test]
fn underscore_twins_of_identity_headers_never_reach_a_wsgi_upstream() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/upstreams/wsgiref_app.py"
    );
    let wsgi = Process::start(&venv_python(), &[script]);
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let config = json!({
        "providers": [provider("cognito", jwks.port())],
        "claim_to_headers": [{ "header_name": "x-tenant", "claim_name": "custom:tenant" }],
        "rules": [
            { "match": { "prefix": "/public/" }, "allow": "public" },
            { "match": { "prefix": "/" }, "require": { "authenticated": true } },
        ],
    });
    // Envoy's defaults: headers_with_underscores_action ALLOW, as docs/configuration.md's snippet and
    // an Istio WasmPlugin get.
    let envoy = Envoy::start(&bootstrap(&config, wsgi.port, jwks.port()));
    let token = sign(
        "key1",
        "k1",
        &with(id_claims(now()), "custom:tenant", json!("acme")),
    );
    envoy.wait_for_keys(&token);

    let spoof: [(&str, &[u8]); 6] = [
        ("x_auth_principal", b"root"),
        ("X_Auth_Admin", b"true"),
        ("x-auth_email", b"root@example.com"),
        ("x_auth-groups", b"admins"),
        ("x_tenant", b"evil"),
        ("x_unrelated", b"kept"),
    ];
    // Anonymous, on a public route.
    let env = environ(&request(envoy.port, "GET", "/public/x", &spoof));
    assert_eq!(
        env["HTTP_X_UNRELATED"], "kept",
        "the upstream folds '_' (control)"
    );
    for key in [
        "HTTP_X_AUTH_PRINCIPAL",
        "HTTP_X_AUTH_ADMIN",
        "HTTP_X_AUTH_EMAIL",
        "HTTP_X_AUTH_GROUPS",
        "HTTP_X_TENANT",
    ] {
        assert!(env.get(key).is_none(), "{key} reached the upstream: {env}");
    }
    // With a token: exactly the verified values, nothing appended.
    let bearer = format!("Bearer {token}");
    let mut with_token = spoof.to_vec();
    with_token.push(("authorization", bearer.as_bytes()));
    let env = environ(&request(envoy.port, "GET", "/private", &with_token));
    assert_eq!(env["HTTP_X_AUTH_PRINCIPAL"], "alice");
    assert_eq!(env["HTTP_X_AUTH_ADMIN"], "false");
    assert_eq!(env["HTTP_X_AUTH_EMAIL"], "alice@example.com");
    assert_eq!(env["HTTP_X_TENANT"], "acme");
    assert!(env.get("HTTP_X_AUTH_GROUPS").is_none(), "{env}");
}

/// A credential in the token header that the filter does not accept is refused, never
/// forwarded; with `forward: false` no token header reaches the upstream; a 17 KB ID token
/// (a user in many groups) passes with the default bound.
#[test]
fn credentials_the_filter_cannot_read_are_refused_and_large_tokens_pass() {
    let public = json!({ "rules": [
        { "match": { "prefix": "/public/" }, "allow": "public" },
        { "match": { "prefix": "/" }, "require": { "authenticated": true } },
    ], "forward": false });
    let ready = sign("key1", "k1", &id_claims(now()));
    let s = Stack::start(public, ready.clone());
    let port = s.envoy.port;
    for (value, status) in [
        (format!("Bearer\t{ready}"), 401),
        (format!("Bearer:{ready}"), 401),
        ("Bearer".to_string(), 401),
        (format!("Basic dXNlcjpwYXNz, Bearer {ready}"), 400),
        (format!("Bearer {ready}, Basic dXNlcjpwYXNz"), 400),
    ] {
        let r = request(
            port,
            "GET",
            "/public/x",
            &[("authorization", value.as_bytes())],
        );
        assert_eq!(r.status, status, "{value:?}: {}", r.body);
    }
    // Two headers: a Basic credential next to a valid token.
    let bearer = format!("Bearer {ready}");
    let r = request(
        port,
        "GET",
        "/private",
        &[
            ("authorization", b"Basic dXNlcjpwYXNz"),
            ("authorization", bearer.as_bytes()),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // forward: false — not even another scheme's credential goes upstream.
    let r = request(
        port,
        "GET",
        "/public/x",
        &[("authorization", b"Basic dXNlcjpwYXNz")],
    );
    assert_eq!(upstream_header(&r, "authorization"), None);
    let r = get_with_token(port, "/private", &ready);
    assert_eq!(upstream_header(&r, "authorization"), None);

    let groups: Vec<String> = (0..100)
        .map(|i| format!("group-with-a-long-name-{i:03}-{}", "x".repeat(100)))
        .collect();
    let big = sign(
        "key1",
        "k1",
        &with(id_claims(now()), "cognito:groups", json!(groups)),
    );
    assert!((16_000..20_000).contains(&big.len()), "{} bytes", big.len());
    let r = get_with_token(port, "/private", &big);
    assert_eq!(r.status, 200, "{}", r.body);
    let huge = sign(
        "key1",
        "k1",
        &with(id_claims(now()), "custom:pad", json!("x".repeat(40_000))),
    );
    let r = get_with_token(port, "/private", &huge);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["error_description"],
        "the token is longer than this gateway accepts"
    );
}
