//! Report-only mode: the decision is made as usual, and a refusal becomes forwarding with the
//! refusal reported.

use super::*;
use crate::config::login::tests::env;
use crate::policy::tests::config as config_with;
use crate::signature::PureRust;
use crate::verify::tests::{id_claims, keys, sign, with, NOW};
use serde_json::{json, Value};

type Headers = Vec<(String, Vec<u8>)>;

fn bearer(token: &str) -> Headers {
    vec![(
        "authorization".into(),
        format!("Bearer {token}").into_bytes(),
    )]
}

fn token() -> String {
    sign("key1", "k1", &id_claims())
}

fn run(config: &Config, method: &str, path: &str, headers: &Headers) -> Decision {
    let lists = Lists {
        fetched: &[],
        online: &online::NoAnswers,
        ended: &session::ended::NoneEnded,
    };
    let request = Request::new(method.as_bytes(), path.as_bytes(), headers);
    let random = || {
        Some(Random {
            state: [1; 16],
            verifier: [2; 32],
            nonce: [3; 16],
            seal: [4; 24],
        })
    };
    decide_with(
        &request,
        config,
        &keys(),
        &lists,
        &PureRust,
        &mut TokenCache::new(16),
        NOW,
        &random,
    )
}

/// The request was forwarded with this refusal reported.
fn reported(d: Decision) -> (Allowed, Reported) {
    match d {
        Decision::Allow(mut a) => match a.reported.take() {
            Some(r) => {
                assert_eq!(a.reason, REPORT_ONLY);
                (a, r)
            }
            None => panic!("allowed, and nothing reported: {a:?}"),
        },
        other => panic!("not forwarded: {other:?}"),
    }
}

fn status(d: &Decision) -> Option<u32> {
    match d {
        Decision::Deny(d) => Some(d.response.status),
        _ => None,
    }
}

fn header<'a>(a: &'a Allowed, name: &str) -> Option<&'a str> {
    a.set
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn rules() -> Value {
    json!([
        { "match": { "prefix": "/admin" }, "require": { "admin": true }, "report_only": true },
        { "match": { "prefix": "/" }, "require": { "authenticated": true } }
    ])
}

#[test]
fn a_refusal_is_forwarded_and_reported_with_its_reason_and_status() {
    let enforcing = config_with(json!({}));
    assert_eq!(status(&run(&enforcing, "GET", "/", &vec![])), Some(401));

    let config = config_with(json!({ "report_only": true }));
    let (a, r) = reported(run(&config, "GET", "/", &vec![]));
    assert_eq!((r.status, r.reason), (401, "missing"));
    assert_eq!((r.provider, r.principal), (None, None));
    assert!(a.set.is_empty(), "no identity without a token");

    let expired = sign("key1", "k1", &with(id_claims(), "exp", (NOW - 3600).into()));
    let (a, r) = reported(run(&config, "GET", "/", &bearer(&expired)));
    assert_eq!((r.status, r.reason), (401, "expired"));
    assert_eq!(r.error, Some(VerifyError::Expired));
    assert!(a.set.is_empty(), "an expired token vouches for no one");

    // With rules, a path an upstream could read differently (400) is reported too.
    let config = config_with(json!({ "report_only": true, "rules": rules() }));
    let (_, r) = reported(run(&config, "GET", "/admin/%2e%2e/x", &bearer(&token())));
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_policy_refusal_names_the_caller_and_sets_the_verified_identity() {
    let config = config_with(json!({ "report_only": true, "admin_principals": ["root"],
        "rules": [{ "match": { "prefix": "/admin" }, "require": { "admin": true } }] }));
    let spoofed = {
        let mut h = bearer(&token());
        h.push(("x-auth-admin".into(), b"true".to_vec()));
        h.push(("X_Auth_Principal".into(), b"root".to_vec()));
        h
    };
    let (a, r) = reported(run(&config, "GET", "/admin/x", &spoofed));
    assert_eq!((r.status, r.reason), (403, "not_admin"));
    assert_eq!(r.provider.as_deref(), Some("cognito"));
    assert_eq!(r.principal.as_deref(), Some("alice"));
    assert_eq!(header(&a, "x-auth-principal"), Some("alice"));
    assert_eq!(header(&a, "x-auth-admin"), Some("false"));
    assert!(
        a.remove.contains(&"x-auth-admin".to_string()),
        "{:?}",
        a.remove
    );
    assert!(
        a.remove.contains(&"x_auth_principal".to_string()),
        "{:?}",
        a.remove
    );
}

#[test]
fn what_is_allowed_is_allowed_as_without_the_switch() {
    let config = config_with(json!({ "report_only": true }));
    let without = config_with(json!({}));
    for c in [&config, &without] {
        match run(c, "GET", "/", &bearer(&token())) {
            Decision::Allow(a) => {
                assert_eq!(a.reason, "authorized");
                assert_eq!(a.reported, None);
                assert_eq!(header(&a, "x-auth-principal"), Some("alice"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_rule_in_report_only_mode_affects_only_its_own_requests() {
    let config = config_with(json!({ "rules": rules() }));
    let (_, r) = reported(run(&config, "GET", "/admin/x", &bearer(&token())));
    assert_eq!((r.status, r.reason), (403, "not_admin"));
    let (_, r) = reported(run(&config, "GET", "/admin/x", &vec![]));
    assert_eq!(r.reason, "missing");
    // The other rule enforces.
    assert_eq!(status(&run(&config, "GET", "/other", &vec![])), Some(401));
    // A path no rule can route is refused: only the filter's switch reports it.
    assert_eq!(
        status(&run(&config, "GET", "/admin/%2e%2e/x", &bearer(&token()))),
        Some(400)
    );
}

#[test]
fn report_only_is_refused_where_it_is_not_a_boolean_naming_the_field() {
    for (json, field) in [
        (json!({ "report_only": "yes" }), "report_only"),
        (
            json!({ "rules": [{ "match": { "prefix": "/" }, "allow": "public", "report_only": 1 }] }),
            "rules[0].report_only",
        ),
    ] {
        let mut c = json!({ "providers": [{ "name": "cognito", "user_pool_id": "us-east-1_Abc123",
            "client_ids": ["client1"], "jwks": { "cluster": "c", "uri": "https://x/jwks.json" } }] });
        for (k, v) in json.as_object().unwrap() {
            c[k] = v.clone();
        }
        let e = Config::parse(c.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

fn browser_config(top: Value) -> Config {
    let mut c = json!({
        "providers": [{ "name": "cognito", "user_pool_id": "us-east-1_Abc123",
            "client_ids": ["client1"],
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } }],
        "login": { "provider": "cognito", "client_id": "client1", "client_secret_env": "SECRET",
            "cookie_key_env": "KEY", "domain": "https://auth.example.com", "token_cluster": "auth",
            "logout_path": "/logout" },
    });
    for (k, v) in top.as_object().unwrap() {
        c[k] = v.clone();
    }
    Config::parse_with_env(c.to_string().as_bytes(), &env).unwrap()
}

fn navigation() -> Headers {
    vec![
        (":authority".into(), b"app.example.com".to_vec()),
        ("accept".into(), b"text/html".to_vec()),
        ("sec-fetch-mode".into(), b"navigate".to_vec()),
        ("sec-fetch-dest".into(), b"document".to_vec()),
    ]
}

#[test]
fn report_only_never_sends_a_browser_to_sign_in_nor_changes_callbacks_and_logouts() {
    let enforcing = browser_config(json!({}));
    assert!(matches!(
        run(&enforcing, "GET", "/page", &navigation()),
        Decision::Redirect(_)
    ));
    let config = browser_config(json!({ "report_only": true }));
    let (_, r) = reported(run(&config, "GET", "/page", &navigation()));
    assert_eq!((r.status, r.reason), (401, "missing"));

    // A callback without its login state, and a logout: answered as without the switch.
    for path in ["/oauth2/callback?code=c&state=s", "/logout"] {
        let with_switch = run(&config, "GET", path, &navigation());
        let without = run(&enforcing, "GET", path, &navigation());
        assert_eq!(format!("{with_switch:?}"), format!("{without:?}"), "{path}");
        assert!(
            !matches!(with_switch, Decision::Allow(_)),
            "{path}: {with_switch:?}"
        );
    }
}
