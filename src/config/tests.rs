//! The configuration's unit tests.

use super::*;

fn minimal() -> serde_json::Value {
    serde_json::json!({
        "providers": [{
            "name": "cognito",
            "user_pool_id": "us-east-1_Abc123",
            "client_ids": ["client1"],
            "jwks": { "cluster": "cognito_idp", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" }
        }]
    })
}

fn parse(v: &serde_json::Value) -> Result<Config, ConfigError> {
    Config::parse(v.to_string().as_bytes())
}

fn field_of(v: serde_json::Value) -> String {
    parse(&v).unwrap_err().field
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(&minimal()).unwrap();
    let p = &c.providers[0];
    assert_eq!(
        p.issuers,
        vec![
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123",
            "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123"
        ]
    );
    assert_eq!(p.token_use, vec![TokenUse::Id, TokenUse::Access]);
    assert_eq!(p.algorithms, vec![jsonwebtoken::Algorithm::RS256]);
    assert_eq!(p.clock_skew_seconds, 60);
    let KeySource::Remote(jwks) = &p.keys else {
        panic!("remote")
    };
    assert_eq!(jwks.timeout_ms, 3000);
    assert_eq!(jwks.refresh_interval_seconds, 600);
    assert_eq!(jwks.authority, "cognito-idp.us-east-1.amazonaws.com");
    assert_eq!(jwks.path, "/us-east-1_Abc123/.well-known/jwks.json");
    assert!(p.cognito);
    assert_eq!(c.startup_wait_ms, 5000);
    assert_eq!(c.token_cache_entries, 4096);
    assert_eq!(c.token_cache_bytes, 16 * 1024 * 1024);
    assert!(c.native_verification);
    assert_eq!(c.denial_log_level, LogLevel::Info);
    assert_eq!(
        c.from_headers,
        vec![HeaderSource {
            name: "authorization".into(),
            value_prefix: "Bearer ".into()
        }]
    );
    assert_eq!(c.realm, "cognito-edge-auth");
}

#[test]
fn issuer_override_replaces_derived_issuers() {
    let mut v = minimal();
    v["providers"][0]["issuer"] = "http://127.0.0.1:5000/us-east-1_Abc123".into();
    let c = parse(&v).unwrap();
    assert_eq!(
        c.providers[0].issuers,
        vec!["http://127.0.0.1:5000/us-east-1_Abc123"]
    );
}

#[test]
fn unknown_fields_are_named() {
    let mut v = minimal();
    v["providers"][0]["jwks"]["url"] = "x".into();
    let e = parse(&v).unwrap_err();
    assert_eq!(e.field, "providers[0].jwks.url");
    assert!(e.message.contains("unknown field `url`"), "{e}");

    let mut v = minimal();
    v["bogus"] = true.into();
    assert!(parse(&v).unwrap_err().to_string().contains("bogus"));
}

#[test]
fn wrong_types_are_named_with_their_path() {
    let mut v = minimal();
    v["providers"][0]["jwks"]["timeout_ms"] = "soon".into();
    assert_eq!(field_of(v), "providers[0].jwks.timeout_ms");
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "/providers/0/user_pool_id",
            "nounderscore".into(),
            "providers[0].user_pool_id",
        ),
        (
            "/providers/0/client_ids",
            serde_json::json!([]),
            "providers[0].client_ids",
        ),
        (
            "/providers/0/client_ids",
            serde_json::json!([""]),
            "providers[0].client_ids[0]",
        ),
        (
            "/providers/0/token_use",
            serde_json::json!([]),
            "providers[0].token_use",
        ),
        (
            "/providers/0/token_use",
            serde_json::json!(["refresh"]),
            "providers[0].token_use[0]",
        ),
        (
            "/providers/0/algorithms",
            serde_json::json!(["HS256"]),
            "providers[0].algorithms[0]",
        ),
        (
            "/providers/0/algorithms",
            serde_json::json!(["none"]),
            "providers[0].algorithms[0]",
        ),
        (
            "/providers/0/jwks/uri",
            "ftp://x/y".into(),
            "providers[0].jwks.uri",
        ),
        (
            "/providers/0/jwks/cluster",
            "".into(),
            "providers[0].jwks.cluster",
        ),
        (
            "/providers/0/jwks/timeout_ms",
            0.into(),
            "providers[0].jwks.timeout_ms",
        ),
        (
            "/providers/0/jwks/refresh_interval_seconds",
            0.into(),
            "providers[0].jwks.refresh_interval_seconds",
        ),
        (
            "/providers/0/clock_skew_seconds",
            3600.into(),
            "providers[0].clock_skew_seconds",
        ),
        (
            "/providers/0/issuer",
            "cognito".into(),
            "providers[0].issuer",
        ),
        ("/providers/0/name", "".into(), "providers[0].name"),
        ("/from_headers", serde_json::json!([]), "from_headers"),
        (
            "/from_headers",
            serde_json::json!([{"name": "bad header"}]),
            "from_headers[0].name",
        ),
        ("/realm", "a\"b".into(), "realm"),
        ("/providers", serde_json::json!([]), "providers"),
    ];
    for (pointer, value, field) in cases {
        let mut v = minimal();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        target[key] = value;
        let e = parse(&v).unwrap_err();
        assert_eq!(e.field, field, "{pointer}: {e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn a_provider_needs_a_pool_or_an_issuer() {
    let mut v = minimal();
    v["providers"][0]
        .as_object_mut()
        .unwrap()
        .remove("user_pool_id");
    assert_eq!(field_of(v), "providers[0].user_pool_id");
}

#[test]
fn duplicate_names_and_issuers_are_refused() {
    let mut v = minimal();
    let p = v["providers"][0].clone();
    v["providers"].as_array_mut().unwrap().push(p.clone());
    assert_eq!(field_of(v.clone()), "providers[1].name");
    v["providers"][1]["name"] = "other".into();
    assert_eq!(field_of(v), "providers[1].issuer");
}

#[test]
fn local_jwks_and_generic_issuers() {
    let local = serde_json::json!({ "keys": [crate::jwks::tests::fake_rsa_jwk("bot")] });
    let v = serde_json::json!({ "providers": [{
        "name": "bots", "issuer": "open-metadata.org", "local_jwks": local,
    }]});
    assert_eq!(
        parse(&v).unwrap().providers[0].issuers,
        vec!["open-metadata.org"],
        "any StringOrURI"
    );
    let mut spaced = v.clone();
    spaced["providers"][0]["issuer"] = "open metadata".into();
    assert_eq!(field_of(spaced), "providers[0].issuer");
    let mut v = v;
    v["providers"][0]["issuer"] = "https://open-metadata.example.com".into();
    let c = parse(&v).unwrap();
    let p = &c.providers[0];

    assert!(!p.cognito);
    assert!(p.client_ids.is_empty());
    assert!(matches!(&p.keys, KeySource::Local(text) if text.contains("bot")));

    let mut bad = v.clone();
    bad["providers"][0]["local_jwks"] = serde_json::json!({ "keys": [] });
    assert_eq!(field_of(bad), "providers[0].local_jwks");
    let mut both = minimal();
    both["providers"][0]["local_jwks"] = local;
    assert_eq!(field_of(both), "providers[0].local_jwks");
    let mut neither = minimal();
    neither["providers"][0]
        .as_object_mut()
        .unwrap()
        .remove("jwks");
    assert_eq!(field_of(neither), "providers[0].jwks");
    let mut token_use = v;
    token_use["providers"][0]["token_use"] = serde_json::json!(["id"]);
    assert_eq!(field_of(token_use), "providers[0].token_use");
    let mut wait = minimal();
    wait["startup_wait_ms"] = 60_001.into();
    assert_eq!(field_of(wait), "startup_wait_ms");
    let mut cache = minimal();
    cache["token_cache"] = serde_json::json!({ "max_entries": 0 });
    assert_eq!(parse(&cache).unwrap().token_cache_entries, 0);
    cache["token_cache"] = serde_json::json!({ "max_entries": 2_000_000 });
    assert_eq!(field_of(cache.clone()), "token_cache.max_entries");
    cache["token_cache"] = serde_json::json!({ "max_bytes": 100 });
    assert_eq!(field_of(cache.clone()), "token_cache.max_bytes");
    cache["token_cache"] = serde_json::json!({ "max_bytes": 1_000_000 });
    assert_eq!(parse(&cache).unwrap().token_cache_bytes, 1_000_000);
    cache["token_cache"] = serde_json::json!({ "size": 1 });
    assert_eq!(field_of(cache), "token_cache.size");
    let mut level = minimal();
    level["denial_log_level"] = "warn".into();
    assert_eq!(parse(&level).unwrap().denial_log_level, LogLevel::Warn);
    level["denial_log_level"] = "trace".into();
    assert_eq!(field_of(level), "denial_log_level");
}

#[test]
fn cookie_names_are_checked() {
    let mut v = minimal();
    v["from_cookies"] = serde_json::json!(["id_token", "AWSELB-x"]);
    assert_eq!(
        parse(&v).unwrap().from_cookies,
        vec!["id_token", "AWSELB-x"]
    );
    v["from_cookies"] = serde_json::json!(["ok", "bad;name"]);
    assert_eq!(field_of(v.clone()), "from_cookies[1]");
    v["from_cookies"] = serde_json::json!([""]);
    assert_eq!(field_of(v), "from_cookies[0]");
}

#[test]
fn header_names_are_lowercased() {
    let mut v = minimal();
    v["from_headers"] = serde_json::json!([{ "name": "X-Access-Token" }]);
    let c = parse(&v).unwrap();
    assert_eq!(c.from_headers[0].name, "x-access-token");
    assert_eq!(c.from_headers[0].value_prefix, "");
}

#[test]
fn not_json_is_refused() {
    assert!(Config::parse(b"{").is_err());
    assert!(Config::parse(b"").is_err());
}

#[test]
fn authorization_defaults() {
    let c = parse(&minimal()).unwrap();
    let p = &c.policy;
    assert_eq!(
        p.principal,
        PrincipalSource::Claims(
            ["email", "cognito:username", "username", "sub"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(p.principal_domain, None);
    assert!(!p.enforce_principal_domain);
    assert!(p.allowed_domains.is_empty());
    assert_eq!(
        p.trust,
        vec![STRICT_TRUST.clone()],
        "a provider proves nothing but verified emails"
    );
    assert_eq!(c.max_token_bytes, 32 * 1024);
    assert!(p.admin_principals.is_empty() && p.admin_groups.is_empty());
    assert!(p.rules.is_empty());
    assert_eq!(p.fallback, Access::Require(vec![Requirement::default()]));
    assert!(c.forward);
    assert!(!c.bypass_cors_preflight);
    let h = &c.identity;
    assert_eq!(h.prefix, "x-auth-");
    assert_eq!(
        [
            &h.principal,
            &h.email,
            &h.sub,
            &h.groups,
            &h.admin,
            &h.token_use,
            &h.client_id,
            &h.issuer,
            &h.provider
        ]
        .map(String::as_str),
        [
            "x-auth-principal",
            "x-auth-email",
            "x-auth-sub",
            "x-auth-groups",
            "x-auth-admin",
            "x-auth-token-use",
            "x-auth-client-id",
            "x-auth-issuer",
            "x-auth-provider"
        ]
    );
    assert!(h.claim_to_headers.is_empty());
}

#[test]
fn the_openmetadata_example_with_rules() {
    let mut v = minimal();
    let extra = serde_json::json!({
        "principal_claims": ["email", "preferred_username", "sub"],
        "admin_principals": ["User1", "user2"],
        "principal_domain": "Open-Metadata.org",
        "enforce_principal_domain": true,
        "allowed_domains": ["partner.example"],
        "admin_groups": ["Admins"],
        "bypass_cors_preflight": true,
        "forward": false,
        "identity_header_prefix": "X-User-",
        "claim_to_headers": [{ "header_name": "X-Tenant", "claim_name": "custom:tenant" }],
        "rules": [
            { "match": { "exact": "/healthz" }, "allow": "public" },
            { "match": { "prefix": "/api/v1/admin", "methods": ["POST", "DELETE"] }, "require": { "admin": true } },
            { "match": { "prefix": "/reports" }, "require_any": [{ "groups_any": ["analysts"] }, { "admin": true }] },
            { "match": { "prefix": "/" }, "require": { "authenticated": true, "scopes_all": ["openid", "api/read"], "domains": ["Partner.Example"] } }
        ]
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    let c = parse(&v).unwrap();
    let p = &c.policy;
    assert_eq!(
        p.principal,
        PrincipalSource::Claims(vec![
            "email".into(),
            "preferred_username".into(),
            "sub".into()
        ])
    );
    assert_eq!(
        p.admin_principals,
        ["User1", "user2"],
        "names as configured"
    );
    assert_eq!(p.principal_domain.as_deref(), Some("open-metadata.org"));
    assert_eq!(p.admin_groups, ["Admins"], "group names keep their case");
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[0].path, PathMatch::Exact("/healthz".into()));
    assert_eq!(p.rules[0].access, Access::Public);
    assert_eq!(p.rules[1].methods, ["POST", "DELETE"]);
    assert_eq!(
        p.rules[1].access,
        Access::Require(vec![Requirement {
            admin: true,
            ..Requirement::default()
        }])
    );
    let Access::Require(any) = &p.rules[2].access else {
        panic!("require_any")
    };
    assert_eq!(any.len(), 2);
    let Access::Require(all) = &p.rules[3].access else {
        panic!("require")
    };
    assert_eq!(all[0].domains, ["partner.example"]);
    assert_eq!(all[0].scopes_all, ["openid", "api/read"]);
    assert!(!c.forward && c.bypass_cors_preflight);
    assert_eq!(c.identity.principal, "x-user-principal");
    assert_eq!(
        c.identity.claim_to_headers,
        vec![ClaimToHeader {
            header_name: "x-tenant".into(),
            claim_name: "custom:tenant".into()
        }]
    );
    assert!(c.identity.strips("x-user-admin") && c.identity.strips("x-user-anything"));
    assert!(c.identity.strips("x-tenant") && !c.identity.strips("x-auth-admin"));
}

#[test]
fn a_principal_claim_mapping() {
    let mut v = minimal();
    v["principal_claim_mapping"] =
        serde_json::json!({ "username": "preferred_username", "email": "email" });
    assert_eq!(
        parse(&v).unwrap().policy.principal,
        PrincipalSource::Mapping {
            username: "preferred_username".into(),
            email: Some("email".into())
        }
    );
    v["principal_claim_mapping"] = serde_json::json!({ "username": "cognito:username" });
    assert!(matches!(
        parse(&v).unwrap().policy.principal,
        PrincipalSource::Mapping { email: None, .. }
    ));
}

/// Sets `value` at the JSON `pointer` of the minimal config and returns the error.
fn refused_at(pointer: &str, value: serde_json::Value) -> ConfigError {
    let mut v = minimal();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut v
    } else {
        v.pointer_mut(parent).unwrap()
    };
    target[key] = value;
    parse(&v).unwrap_err()
}

#[test]
fn bad_authorization_values_are_refused_naming_the_field() {
    use serde_json::json;
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/principal_claims", json!([]), "principal_claims"),
        (
            "/principal_claims",
            json!(["email", ""]),
            "principal_claims[1]",
        ),
        ("/principal_claims", json!(["a\"b"]), "principal_claims[0]"),
        ("/principal_claims", json!("email"), "principal_claims"),
        (
            "/principal_claim_mapping",
            json!({ "email": "email" }),
            "principal_claim_mapping",
        ),
        (
            "/principal_claim_mapping",
            json!({ "username": "" }),
            "principal_claim_mapping.username",
        ),
        (
            "/principal_claim_mapping",
            json!({ "username": "u", "mail": "x" }),
            "principal_claim_mapping.mail",
        ),
        (
            "/principal_domain",
            "@example.com".into(),
            "principal_domain",
        ),
        (
            "/principal_domain",
            "exa mple.com".into(),
            "principal_domain",
        ),
        ("/principal_domain", "".into(), "principal_domain"),
        (
            "/enforce_principal_domain",
            true.into(),
            "enforce_principal_domain",
        ),
        (
            "/enforce_principal_domain",
            "yes".into(),
            "enforce_principal_domain",
        ),
        (
            "/allowed_domains",
            json!(["ok.com", "-bad.com"]),
            "allowed_domains[1]",
        ),
        (
            "/require_email_verified",
            "true".into(),
            "require_email_verified",
        ),
        (
            "/admin_principals",
            json!(["user1@example.com"]),
            "admin_principals[0]",
        ),
        ("/admin_principals", json!([" "]), "admin_principals[0]"),
        ("/admin_groups", json!([""]), "admin_groups[0]"),
        (
            "/bypass_cors_preflight",
            "true".into(),
            "bypass_cors_preflight",
        ),
        ("/forward", 1.into(), "forward"),
        (
            "/identity_header_prefix",
            "x-auth".into(),
            "identity_header_prefix",
        ),
        (
            "/identity_header_prefix",
            "x auth-".into(),
            "identity_header_prefix",
        ),
        (
            "/identity_header_prefix",
            "x-".into(),
            "identity_header_prefix",
        ),
        (
            "/identity_header_prefix",
            "x-forwarded-".into(),
            "identity_header_prefix",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "bad name", "claim_name": "x" }]),
            "claim_to_headers[0].header_name",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "Host", "claim_name": "x" }]),
            "claim_to_headers[0].header_name",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "x-auth-admin", "claim_name": "x" }]),
            "claim_to_headers[0].header_name",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "x-a", "claim_name": "x" }, { "header_name": "X-A", "claim_name": "y" }]),
            "claim_to_headers[1].header_name",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "x-a", "claim_name": "" }]),
            "claim_to_headers[0].claim_name",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "x-a" }]),
            "claim_to_headers[0]",
        ),
        (
            "/claim_to_headers",
            json!([{ "header_name": "x-a", "claim_name": "c", "nested": true }]),
            "claim_to_headers[0].nested",
        ),
    ];
    for (pointer, value, field) in cases {
        let e = refused_at(pointer, value);
        assert_eq!(e.field, field, "{pointer}: {e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn principal_claims_and_a_mapping_exclude_each_other() {
    let mut v = minimal();
    v["principal_claims"] = serde_json::json!(["email"]);
    v["principal_claim_mapping"] = serde_json::json!({ "username": "email" });
    let e = parse(&v).unwrap_err();
    assert_eq!(e.field, "principal_claim_mapping");
    assert!(e.message.contains("not both"), "{e}");
}

#[test]
fn enforcing_the_domain_needs_a_domain() {
    let mut v = minimal();
    v["enforce_principal_domain"] = true.into();
    v["allowed_domains"] = serde_json::json!(["example.com"]);
    assert!(parse(&v).is_ok());
}

#[test]
fn a_token_header_cannot_be_an_identity_header() {
    let mut v = minimal();
    v["from_headers"] = serde_json::json!([{ "name": "X-Auth-Token" }]);
    let e = parse(&v).unwrap_err();
    assert_eq!(e.field, "from_headers[0].name");
    assert!(e.message.contains("stripped"), "{e}");
    v["claim_to_headers"] = serde_json::json!([{ "header_name": "x-jwt", "claim_name": "sub" }]);
    v["from_headers"] = serde_json::json!([{ "name": "x-jwt" }]);
    assert_eq!(parse(&v).unwrap_err().field, "from_headers[0].name");
    v["claim_to_headers"] =
        serde_json::json!([{ "header_name": "authorization", "claim_name": "sub" }]);
    v["from_headers"] = serde_json::json!([{ "name": "authorization" }]);
    assert_eq!(
        parse(&v).unwrap_err().field,
        "claim_to_headers[0].header_name"
    );
}

#[test]
fn bad_rules_are_refused_naming_the_field() {
    use serde_json::json;
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            json!({ "match": { "prefix": "/" }, "allow": "public", "require": { "admin": true } }),
            "rules[0]",
            "only one",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "admin": true }, "require_any": [{ "admin": true }] }),
            "rules[0]",
            "only one",
        ),
        (
            json!({ "match": { "prefix": "/" } }),
            "rules[0]",
            "needs an action",
        ),
        (
            json!({ "match": {}, "allow": "public" }),
            "rules[0].match",
            "needs a path",
        ),
        (
            json!({ "match": { "methods": ["GET"] }, "allow": "public" }),
            "rules[0].match",
            "needs a path",
        ),
        (
            json!({ "match": { "exact": "/a", "prefix": "/a" }, "allow": "public" }),
            "rules[0].match",
            "not both",
        ),
        (
            json!({ "allow": "public" }),
            "rules[0]",
            "missing field `match`",
        ),
        (
            json!({ "match": { "prefix": "api" }, "allow": "public" }),
            "rules[0].match.prefix",
            "starting with '/'",
        ),
        (
            json!({ "match": { "exact": "/a b" }, "allow": "public" }),
            "rules[0].match.exact",
            "without spaces",
        ),
        (
            json!({ "match": { "exact": "/a?b=c" }, "allow": "public" }),
            "rules[0].match.exact",
            "query string",
        ),
        (
            json!({ "match": { "prefix": "/a/../b" }, "allow": "public" }),
            "rules[0].match.prefix",
            "never match",
        ),
        (
            json!({ "match": { "exact": "/a;b" }, "allow": "public" }),
            "rules[0].match.exact",
            "never match",
        ),
        (
            json!({ "match": { "prefix": "/a%2F" }, "allow": "public" }),
            "rules[0].match.prefix",
            "never match",
        ),
        (
            json!({ "match": { "prefix": "/caf%C3%A9", "case_sensitive": false }, "allow": "public" }),
            "rules[0].match.prefix",
            "must be ASCII",
        ),
        (
            json!({ "match": { "prefix": "/", "case_sensitive": "no" }, "allow": "public" }),
            "rules[0].match.case_sensitive",
            "invalid type",
        ),
        (
            json!({ "match": { "prefix": "/", "methods": [] }, "allow": "public" }),
            "rules[0].match.methods",
            "at least one",
        ),
        (
            json!({ "match": { "prefix": "/", "methods": ["GET", "FETCH"] }, "allow": "public" }),
            "rules[0].match.methods[1]",
            "not a method",
        ),
        (
            json!({ "match": { "prefix": "/", "methods": ["get"] }, "allow": "public" }),
            "rules[0].match.methods[0]",
            "not a method",
        ),
        (
            json!({ "match": { "prefix": "/", "path": "/x" }, "allow": "public" }),
            "rules[0].match.path",
            "unknown field",
        ),
        (
            json!({ "match": { "prefix": "/" }, "allow": "everyone" }),
            "rules[0].allow",
            "unknown variant",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": {} }),
            "rules[0].require",
            "at least one requirement",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "authenticated": false } }),
            "rules[0].require.authenticated",
            "allow",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "admin": false } }),
            "rules[0].require.admin",
            "only true",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "groups_any": [] } }),
            "rules[0].require.groups_any",
            "at least one",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "groups_all": ["a", ""] } }),
            "rules[0].require.groups_all[1]",
            "group",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "scopes_any": ["two words"] } }),
            "rules[0].require.scopes_any[0]",
            "scope",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "scopes_all": ["a\"b"] } }),
            "rules[0].require.scopes_all[0]",
            "scope",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "principals": ["bob@example.com"] } }),
            "rules[0].require.principals[0]",
            "before '@'",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "domains": ["*.example.com"] } }),
            "rules[0].require.domains[0]",
            "domain",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require": { "group": ["a"] } }),
            "rules[0].require.group",
            "unknown field",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require_any": [] }),
            "rules[0].require_any",
            "at least one",
        ),
        (
            json!({ "match": { "prefix": "/" }, "require_any": [{ "admin": true }, {}] }),
            "rules[0].require_any[1]",
            "at least one requirement",
        ),
    ];
    for (rule, field, words) in cases {
        let mut v = minimal();
        v["rules"] = json!([rule]);
        let e = parse(&v).unwrap_err();
        assert_eq!(e.field, field, "{rule}: {e}");
        assert!(e.message.contains(words), "{rule}: {e}");
    }
    // The index is that of the offending rule.
    let mut v = minimal();
    v["rules"] = json!([
        { "match": { "exact": "/" }, "allow": "public" },
        { "match": { "exact": "/x" }, "require": {} }
    ]);
    assert_eq!(parse(&v).unwrap_err().field, "rules[1].require");
}

#[test]
fn uri_split() {
    assert_eq!(
        split_uri("http://127.0.0.1:9/a/b?c=d"),
        Some(("127.0.0.1:9".into(), "/a/b?c=d".into()))
    );
    assert_eq!(split_uri("https://host"), Some(("host".into(), "/".into())));
    assert_eq!(split_uri("https:///x"), None);
    assert_eq!(split_uri("https://u@h/x"), None);
}

#[test]
fn group_names_that_no_token_group_could_equal_are_refused() {
    for bad in ["a,b", "a;b", "q\"", " admins", "a\\b", "tab\tx", ""] {
        let e = refused_at("/admin_groups", serde_json::json!([bad]));
        assert_eq!(e.field, "admin_groups[0]", "{bad:?}");
    }
    let mut v = minimal();
    v["admin_groups"] = serde_json::json!(["Admins", "Zoë", "team:ops"]);
    assert_eq!(parse(&v).unwrap().policy.admin_groups.len(), 3);
}
