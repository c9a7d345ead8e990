//! End to end against moto, a Cognito emulator: a pool, app clients and a user made through
//! the Cognito API, real Cognito-issued ID and access tokens, JWKS served by the emulator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::json;

struct Pool {
    id: String,
    client: String,
    other_client: String,
}

fn make_pool(moto: &Moto) -> Pool {
    let pool = moto.cognito("CreateUserPool", json!({ "PoolName": "edge-test" }));
    let id = pool["UserPool"]["Id"].as_str().unwrap().to_string();
    let client = |name: &str| {
        let c = moto.cognito(
            "CreateUserPoolClient",
            json!({ "UserPoolId": id, "ClientName": name, "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"] }),
        );
        c["UserPoolClient"]["ClientId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (client, other_client) = (client("web"), client("other-app"));
    moto.cognito(
        "AdminCreateUser",
        json!({ "UserPoolId": id, "Username": "alice", "MessageAction": "SUPPRESS",
                "UserAttributes": [{ "Name": "email", "Value": "alice@example.com" }, { "Name": "email_verified", "Value": "true" }] }),
    );
    moto.cognito(
        "AdminSetUserPassword",
        json!({ "UserPoolId": id, "Username": "alice", "Password": "Correct-Horse-9", "Permanent": true }),
    );
    Pool {
        id,
        client,
        other_client,
    }
}

/// (ID token, access token) for alice through `client`.
fn sign_in(moto: &Moto, pool: &Pool, client: &str) -> (String, String) {
    let auth = moto.cognito(
        "AdminInitiateAuth",
        json!({ "UserPoolId": pool.id, "ClientId": client, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
                "AuthParameters": { "USERNAME": "alice", "PASSWORD": "Correct-Horse-9" } }),
    );
    let result = &auth["AuthenticationResult"];
    (
        result["IdToken"].as_str().unwrap().into(),
        result["AccessToken"].as_str().unwrap().into(),
    )
}

#[test]
fn tokens_issued_by_the_cognito_emulator() {
    let moto = Moto::start();
    let pool = make_pool(&moto);
    let upstream = echo_upstream();
    let config = json!({ "providers": [{
        "name": "cognito",
        "user_pool_id": pool.id,
        "client_ids": [pool.client],
        "jwks": { "cluster": "cognito_idp", "uri": format!("http://127.0.0.1:{}/{}/.well-known/jwks.json", moto.port, pool.id) },
    }]});
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("cognito_idp", moto.port),
    ];
    let envoy = Envoy::start(&bootstrap_with_clusters(&config, clusters));

    let (id_token, access_token) = sign_in(&moto, &pool, &pool.client);
    envoy.wait_for_keys(&id_token);
    let r = get_with_token(envoy.port, "/catalog", &access_token);
    assert_eq!(r.status, 200, "access token: {}", r.body);
    assert_eq!(r.json()["path"], "/catalog");

    let (other_id, other_access) = sign_in(&moto, &pool, &pool.other_client);
    for token in [other_id, other_access] {
        let r = get_with_token(envoy.port, "/catalog", &token);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(
            r.json()["error_description"],
            "the token was not issued for an accepted client"
        );
    }
    assert_eq!(get(envoy.port, "/catalog").status, 401);
}
