//! End to end: authorization at the edge — principals, the principal domain, admins, route
//! rules and the identity the upstream receives — through a real Envoy with the filter.
//!
//! Each Envoy start costs a second or two, so each test starts one Envoy and checks
//! everything that shares its configuration.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, access_claims, id_claims, id_claims_for, sign, with};
use common::*;
use serde_json::{json, Value};

fn start(extra: Value) -> Stack {
    Stack::start(
        extra,
        token(id_claims_for(now(), "user3@open-metadata.org")),
    )
}

fn token(claims: Value) -> String {
    sign("key1", "k1", &claims)
}

/// The values of `name` among the headers the echo upstream received.
fn upstream_saw(r: &Reply, name: &str) -> Vec<String> {
    assert_eq!(r.status, 200, "not forwarded: {}", r.body);
    r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str() == Some(name))
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

fn one(r: &Reply, name: &str) -> Option<String> {
    let values = upstream_saw(r, name);
    assert!(values.len() <= 1, "{name} arrived {} times", values.len());
    values.into_iter().next()
}

fn call(port: u16, method: &str, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &[u8])> = extra.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_bytes()));
    }
    request(port, method, path, &headers)
}

fn assert_forbidden(r: &Reply, description: &str) {
    assert_eq!(r.status, 403, "{description}: {}", r.body);
    assert_eq!(r.json()["error"], "forbidden", "{}", r.body);
    assert_eq!(r.json()["error_description"], description);
    assert_eq!(r.header("www-authenticate"), None);
}

/// The OpenMetadata example (`adminPrincipals`, `principalDomain`, enforced), with rules of
/// every kind and a claim copied to a header.
fn openmetadata() -> Value {
    json!({
        "principal_claims": ["email", "preferred_username", "sub"],
        "admin_principals": ["user1", "user2"],
        "admin_groups": ["platform-admins"],
        "principal_domain": "open-metadata.org",
        "enforce_principal_domain": true,
        "allowed_domains": ["partner.example"],
        "bypass_cors_preflight": true,
        "claim_to_headers": [{ "header_name": "x-tenant", "claim_name": "custom:tenant" }],
        "rules": [
            { "match": { "exact": "/healthz" }, "allow": "public" },
            { "match": { "prefix": "/public/" }, "allow": "public" },
            { "match": { "prefix": "/admin" }, "require": { "admin": true } },
            { "match": { "prefix": "/reports", "methods": ["POST", "PUT", "DELETE"] },
              "require": { "groups_all": ["analysts", "writers"] } },
            { "match": { "prefix": "/reports" }, "require": { "groups_any": ["analysts", "viewers"] } },
            { "match": { "prefix": "/api/" }, "require": { "scopes_any": ["api/read", "api/write"] } },
            { "match": { "prefix": "/team" }, "require": { "principals": ["user3", "user4"] } },
            { "match": { "prefix": "/partners" }, "require": { "domains": ["partner.example"] } },
        ],
    })
}

#[test]
fn the_openmetadata_example_with_every_kind_of_rule() {
    let s = start(openmetadata());
    principals_domain_and_admins(&s);
    public_routes(&s);
    admin_group_and_method_rules(&s);
    scope_principal_and_domain_rules(&s);
    spoofed_identity_headers_never_reach_the_upstream(&s);
    cors_preflight_is_let_through(&s);
}

fn principals_domain_and_admins(s: &Stack) {
    let (port, now) = (s.envoy.port, now());

    // An admin: every identity header, as the upstream receives it.
    let admin = token(with(
        id_claims_for(now, "User1@Open-Metadata.org"),
        "cognito:groups",
        json!(["analysts", "writers"]),
    ));
    let r = call(port, "GET", "/admin/settings", Some(&admin), &[]);
    assert_eq!(one(&r, "x-auth-principal").as_deref(), Some("user1"));
    assert_eq!(
        one(&r, "x-auth-email").as_deref(),
        Some("User1@Open-Metadata.org")
    );
    assert_eq!(one(&r, "x-auth-admin").as_deref(), Some("true"));
    assert_eq!(
        one(&r, "x-auth-sub").as_deref(),
        Some("7c1e0b1c-0000-4000-8000-000000000001")
    );
    assert_eq!(
        one(&r, "x-auth-groups").as_deref(),
        Some("analysts,writers")
    );
    assert_eq!(one(&r, "x-auth-token-use").as_deref(), Some("id"));
    assert_eq!(one(&r, "x-auth-client-id").as_deref(), Some(tokens::CLIENT));
    assert_eq!(one(&r, "x-auth-issuer").as_deref(), Some(tokens::POOL_ISS));
    assert_eq!(one(&r, "x-auth-provider").as_deref(), Some("cognito"));
    assert_eq!(one(&r, "x-tenant"), None, "the token has no custom:tenant");
    assert!(
        one(&r, "authorization").is_some(),
        "forward defaults to true"
    );

    // A user of the domain who is not an admin.
    let user3 = token(id_claims_for(now, "user3@open-metadata.org"));
    let r = call(port, "GET", "/anything", Some(&user3), &[]);
    assert_eq!(one(&r, "x-auth-principal").as_deref(), Some("user3"));
    assert_eq!(one(&r, "x-auth-admin").as_deref(), Some("false"));
    assert_eq!(one(&r, "x-auth-groups"), None, "no groups, no header");

    // A user outside the domain, even one called user1.
    for email in ["alice@example.com", "user1@evil.example"] {
        let outsider = token(id_claims_for(now, email));
        assert_forbidden(
            &call(port, "GET", "/anything", Some(&outsider), &[]),
            "the principal's email domain is not allowed",
        );
    }

    // An email the token does not mark as verified; moto's string "true" counts.
    let unverified = token(with(
        id_claims_for(now, "user3@open-metadata.org"),
        "email_verified",
        false.into(),
    ));
    assert_forbidden(
        &call(port, "GET", "/anything", Some(&unverified), &[]),
        "the principal's email address is not verified",
    );
    let moto_style = token(with(
        id_claims_for(now, "user3@open-metadata.org"),
        "email_verified",
        "true".into(),
    ));
    assert_eq!(
        call(port, "GET", "/anything", Some(&moto_style), &[]).status,
        200
    );

    // Without an email nothing is completed with the principal domain: no domain is proven,
    // and a user-set preferred_username names nobody.
    let no_email = token(with(
        with(id_claims(now), "email", Value::Null),
        "preferred_username",
        "User2".into(),
    ));
    assert_forbidden(
        &call(port, "GET", "/admin", Some(&no_email), &[]),
        "the token has no verified email address to check the domain of (Cognito access tokens carry none unless a pre token generation trigger adds email and email_verified)",
    );

    // No principal claim at all: the token is unusable here.
    let nameless = token(with(
        with(id_claims(now), "email", Value::Null),
        "sub",
        Value::Null,
    ));
    let r = call(port, "GET", "/anything", Some(&nameless), &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json()["error_description"],
        "the token has no usable principal claim (looked for email, preferred_username, sub)"
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
}

fn public_routes(s: &Stack) {
    let (port, now) = (s.envoy.port, now());
    let before = s.upstream.hits();
    // No token needed; the query string does not change the route.
    for path in ["/healthz", "/healthz?verbose=1", "/public/logo.png"] {
        let r = call(port, "GET", path, None, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(one(&r, "x-auth-principal"), None);
    }
    // /healthz is exact: /healthz/more is not public.
    assert_eq!(call(port, "GET", "/healthz/more", None, &[]).status, 401);
    // A valid token on a public route: the identity goes along.
    let user3 = token(id_claims_for(now, "user3@open-metadata.org"));
    let r = call(port, "GET", "/public/x", Some(&user3), &[]);
    assert_eq!(one(&r, "x-auth-principal").as_deref(), Some("user3"));
    // An identity refused elsewhere (outside the domain) goes on as anonymous.
    let outsider = token(id_claims_for(now, "alice@example.com"));
    let r = call(port, "GET", "/public/x", Some(&outsider), &[]);
    assert_eq!(one(&r, "x-auth-principal"), None);
    // A token that is present must be valid, public route or not.
    for bad in [
        "not-a-jwt".to_string(),
        token(with(id_claims(now), "exp", (now - 3600).into())),
        tokens::tamper_signature(&user3),
    ] {
        let r = call(port, "GET", "/healthz", Some(&bad), &[]);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error"], "invalid_token");
    }
    // A path the upstream could resolve to what another rule guards is refused.
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "//admin",
        "/%61dmin",
    ] {
        let r = call(port, "GET", path, Some(&user3), &[]);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request");
    }
    assert_eq!(s.upstream.hits(), before + 5);
}

fn admin_group_and_method_rules(s: &Stack) {
    let (port, now) = (s.envoy.port, now());
    let member = |groups: Value| {
        token(with(
            id_claims_for(now, "user3@open-metadata.org"),
            "cognito:groups",
            groups,
        ))
    };

    // Admin: by name (user1), or by group; not a plain user.
    let user1 = token(id_claims_for(now, "user1@open-metadata.org"));
    assert_eq!(call(port, "GET", "/admin", Some(&user1), &[]).status, 200);
    let by_group = member(json!(["platform-admins"]));
    let r = call(port, "DELETE", "/admin/users/9", Some(&by_group), &[]);
    assert_eq!(one(&r, "x-auth-admin").as_deref(), Some("true"));
    assert_forbidden(
        &call(port, "GET", "/admin", Some(&member(json!([]))), &[]),
        "this route is for administrators",
    );

    // GET /reports: any of analysts, viewers. POST/PUT/DELETE: all of analysts, writers.
    let viewer = member(json!(["viewers"]));
    let editor = member(json!(["analysts", "writers"]));
    let outsider = member(json!(["sales"]));
    assert_eq!(
        call(port, "GET", "/reports/q1", Some(&viewer), &[]).status,
        200
    );
    assert_eq!(
        call(port, "GET", "/reports/q1", Some(&editor), &[]).status,
        200
    );
    assert_forbidden(
        &call(port, "GET", "/reports/q1", Some(&outsider), &[]),
        "the principal is in none of the groups this route requires",
    );
    assert_forbidden(
        &call(port, "POST", "/reports", Some(&viewer), &[]),
        "the principal is not in every group this route requires",
    );
    assert_forbidden(
        &call(
            port,
            "PUT",
            "/reports",
            Some(&member(json!(["analysts"]))),
            &[],
        ),
        "the principal is not in every group this route requires",
    );
    assert_eq!(
        call(port, "POST", "/reports", Some(&editor), &[]).status,
        200
    );
    // Methods the write rule does not name fall through to the next /reports rule.
    assert_eq!(
        call(port, "HEAD", "/reports", Some(&viewer), &[]).status,
        200
    );
}

fn read_claims(now: u64) -> Value {
    with(access_claims(now), "scope", "openid api/read".into())
}

fn scope_principal_and_domain_rules(s: &Stack) {
    let (port, now) = (s.envoy.port, now());

    // Scopes come from an access token's `scope`; an ID token has none.
    let id_token = token(id_claims_for(now, "user3@open-metadata.org"));
    let r = call(port, "GET", "/api/tables", Some(&id_token), &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "insufficient_scope");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"cognito-edge-auth\", error=\"insufficient_scope\""),
        "{challenge}"
    );
    // Under domain enforcement an access token needs a verified email of its own, as a pre
    // token generation trigger can add; without one it is refused whatever its scopes.
    let read = token(with(access_claims(now), "scope", "openid api/read".into()));
    assert_forbidden(
        &call(port, "GET", "/api/tables", Some(&read), &[]),
        "the token has no verified email address to check the domain of (Cognito access tokens carry none unless a pre token generation trigger adds email and email_verified)",
    );
    let read = token(with(
        with(read_claims(now), "email", "user3@open-metadata.org".into()),
        "email_verified",
        true.into(),
    ));
    let r = call(port, "GET", "/api/tables", Some(&read), &[]);
    assert_eq!(one(&r, "x-auth-token-use").as_deref(), Some("access"));
    assert_eq!(one(&r, "x-auth-principal").as_deref(), Some("user3"));

    // Principals, by name, case-insensitive.
    let user4 = token(id_claims_for(now, "User4@open-metadata.org"));
    assert_eq!(call(port, "GET", "/team", Some(&user4), &[]).status, 200);
    let user1 = token(id_claims_for(now, "user1@open-metadata.org"));
    assert_forbidden(
        &call(port, "GET", "/team", Some(&user1), &[]),
        "the principal is not allowed on this route",
    );

    // Domains.
    let partner = token(id_claims_for(now, "pat@partner.example"));
    assert_eq!(
        call(port, "GET", "/partners", Some(&partner), &[]).status,
        200
    );
    assert_forbidden(
        &call(port, "GET", "/partners", Some(&id_token), &[]),
        "the principal's email domain is not allowed on this route",
    );
}

fn spoofed_identity_headers_never_reach_the_upstream(s: &Stack) {
    let (port, now) = (s.envoy.port, now());
    let spoofed: [(&str, &str); 6] = [
        ("x-auth-admin", "true"),
        ("X-Auth-Principal", "user1"),
        ("x-auth-email", "user1@open-metadata.org"),
        ("x-auth-groups", "platform-admins"),
        ("x-auth-made-up", "1"),
        ("x-tenant", "someone-else"),
    ];
    let owned = [
        "x-auth-admin",
        "x-auth-principal",
        "x-auth-email",
        "x-auth-groups",
        "x-auth-made-up",
        "x-tenant",
    ];
    // Public route, no token: all stripped, nothing set.
    let r = call(port, "GET", "/healthz", None, &spoofed);
    for name in owned {
        assert_eq!(upstream_saw(&r, name), Vec::<String>::new(), "{name}");
    }
    // Twice the same header: both go.
    let r = call(
        port,
        "GET",
        "/public/x",
        None,
        &[("x-auth-admin", "true"), ("x-auth-admin", "yes")],
    );
    assert_eq!(upstream_saw(&r, "x-auth-admin"), Vec::<String>::new());
    // Authenticated: the verified values replace the spoofed ones.
    let user3 = token(with(
        id_claims_for(now, "user3@open-metadata.org"),
        "custom:tenant",
        "acme".into(),
    ));
    let r = call(port, "GET", "/anything", Some(&user3), &spoofed);
    assert_eq!(upstream_saw(&r, "x-auth-admin"), ["false"]);
    assert_eq!(upstream_saw(&r, "x-auth-principal"), ["user3"]);
    assert_eq!(
        upstream_saw(&r, "x-auth-email"),
        ["user3@open-metadata.org"]
    );
    assert_eq!(upstream_saw(&r, "x-auth-groups"), Vec::<String>::new());
    assert_eq!(upstream_saw(&r, "x-auth-made-up"), Vec::<String>::new());
    assert_eq!(upstream_saw(&r, "x-tenant"), ["acme"]);
    // Not an admin by claiming to be one.
    assert_forbidden(
        &call(port, "GET", "/admin", Some(&user3), &spoofed),
        "this route is for administrators",
    );
}

fn cors_preflight_is_let_through(s: &Stack) {
    let preflight = [
        ("origin", "https://catalog.example.com"),
        ("access-control-request-method", "POST"),
        ("x-auth-admin", "true"),
    ];
    let r = call(s.envoy.port, "OPTIONS", "/admin/users", None, &preflight);
    assert_eq!(r.json()["method"], "OPTIONS");
    assert_eq!(upstream_saw(&r, "x-auth-admin"), Vec::<String>::new());
    // An OPTIONS request that is not a preflight still needs a token.
    let r = call(s.envoy.port, "OPTIONS", "/admin/users", None, &[]);
    assert_eq!(r.status, 401);
}

#[test]
fn forward_false_custom_prefix_and_no_preflight_bypass() {
    let s = start(json!({
        "forward": false,
        "identity_header_prefix": "x-user-",
        "principal_claim_mapping": { "username": "cognito:username", "email": "email" },
    }));
    let (port, now) = (s.envoy.port, now());
    let user3 = token(id_claims_for(now, "user3@open-metadata.org"));
    let r = call(
        port,
        "GET",
        "/x",
        Some(&user3),
        &[("x-user-admin", "true"), ("x-auth-admin", "not ours")],
    );
    assert_eq!(upstream_saw(&r, "authorization"), Vec::<String>::new());
    assert_eq!(upstream_saw(&r, "x-user-admin"), ["false"]);
    assert_eq!(upstream_saw(&r, "x-user-principal"), ["user3"]);
    assert_eq!(
        upstream_saw(&r, "x-auth-admin"),
        ["not ours"],
        "other prefixes are the upstream's business"
    );
    // Another Authorization scheme is not a token, and this route is not public.
    assert_eq!(
        request(
            port,
            "GET",
            "/x",
            &[("authorization", b"Basic dXNlcjpwYXNz")]
        )
        .status,
        401
    );
    // The mapping names the claims: no `cognito:username`, no principal.
    let access = token(access_claims(now));
    let r = call(port, "GET", "/x", Some(&access), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error_description"],
        "the token has no usable cognito:username claim"
    );
    // Without bypass_cors_preflight, a preflight is an unauthenticated request.
    let r = call(
        port,
        "OPTIONS",
        "/x",
        None,
        &[
            ("origin", "https://catalog.example.com"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(r.status, 401);
}
