//! From verified claims to a decision: who the caller is (principal, email, domain, admin)
//! and whether the rule of the route lets them in.
//!
//! The request arrives as its method and path bytes, the token as verified `Claims`. Rules
//! match the path without its query string; the first rule that matches decides, and a
//! request no rule matches needs an authenticated caller (fail closed).

mod identity;

pub use identity::{Email, Identity};

use crate::config::{Access, PathMatch, Policy, Requirement, Rule};
use crate::verify::Claims;
use identity::DomainFailure;
use serde_json::{Map, Value};
use std::rc::Rc;

pub mod path;

/// The rule that applies to a request.
#[derive(Debug, Clone, Copy)]
pub struct Route<'p> {
    /// Index of the matching rule; `None` when no rule matched and the fallback applies.
    pub rule: Option<usize>,
    pub access: &'p Access,
}

/// Why a verified token does not get through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No principal claim has a usable value: the token cannot be used here (401).
    NoPrincipal(String),
    /// The caller (named by its principal) is known but not allowed (403).
    Forbidden(Forbidden, String),
}

/// Why a known caller is not allowed. Each reason is what the caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// Domain enforcement: the token has no email address (a Cognito access token, say).
    NoDomain,
    /// Domain enforcement: the domain is neither `principal_domain` nor allowed.
    DomainNotAllowed,
    /// The domain comes from an email the token does not mark as verified.
    UnverifiedEmail,
    NotAdmin,
    Principal,
    Domain,
    GroupsAny,
    GroupsAll,
    ScopesAny,
    ScopesAll,
    /// Several alternative requirements (`require_any`), none met.
    NoneOf,
}

impl Forbidden {
    /// The `error_description` a client gets: fixed texts, nothing from the configuration.
    pub fn description(self) -> &'static str {
        match self {
            Forbidden::NoDomain => "the token has no verified email address to check the domain of (Cognito access tokens carry none unless a pre token generation trigger adds email and email_verified)",
            Forbidden::DomainNotAllowed => "the principal's email domain is not allowed",
            Forbidden::UnverifiedEmail => "the principal's email address is not verified",
            Forbidden::NotAdmin => "this route is for administrators",
            Forbidden::Principal => "the principal is not allowed on this route",
            Forbidden::Domain => "the principal's email domain is not allowed on this route",
            Forbidden::GroupsAny => "the principal is in none of the groups this route requires",
            Forbidden::GroupsAll => "the principal is not in every group this route requires",
            Forbidden::ScopesAny => "the token has none of the scopes this route requires",
            Forbidden::ScopesAll => "the token lacks a scope this route requires",
            Forbidden::NoneOf => "the request meets none of the requirements of this route",
        }
    }

    /// Whether the token's scopes are the reason (RFC 6750 `insufficient_scope`).
    pub fn is_scope(self) -> bool {
        matches!(self, Forbidden::ScopesAny | Forbidden::ScopesAll)
    }

    /// A short, stable name for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Forbidden::NoDomain | Forbidden::DomainNotAllowed | Forbidden::Domain => "domain",
            Forbidden::UnverifiedEmail => "unverified_email",
            Forbidden::NotAdmin => "not_admin",
            Forbidden::Principal => "principal",
            Forbidden::GroupsAny | Forbidden::GroupsAll => "groups",
            Forbidden::ScopesAny | Forbidden::ScopesAll => "insufficient_scope",
            Forbidden::NoneOf => "forbidden",
        }
    }
}

pub use path::NotNormal;

/// The rule for a request: the first whose path and methods match, else the fallback.
///
/// With rules configured, the rules see the path in the form [`path::canonical`] gives it,
/// and a path or method that an upstream could read differently is refused.
pub fn route<'p>(policy: &'p Policy, method: &[u8], path: &[u8]) -> Result<Route<'p>, NotNormal> {
    let fallback = Route {
        rule: None,
        access: &policy.fallback,
    };
    if policy.rules.is_empty() {
        return Ok(fallback);
    }
    path::check_method(method)?;
    let case_folding = policy.rules.iter().any(|r| !r.case_sensitive);
    let path = path::canonical(without_query(path), case_folding)?;
    let matched = policy
        .rules
        .iter()
        .enumerate()
        .find(|(_, rule)| matches(rule, method, &path));
    Ok(match matched {
        Some((i, rule)) => Route {
            rule: Some(i),
            access: &rule.access,
        },
        None => fallback,
    })
}

/// A CORS preflight as Envoy's `jwt_authn` recognises one: OPTIONS with a non-empty
/// `Origin` and `Access-Control-Request-Method`.
pub fn is_cors_preflight(method: &[u8], headers: &[(String, Vec<u8>)]) -> bool {
    let has = |name: &str| {
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
    };
    method == b"OPTIONS" && has("origin") && has("access-control-request-method")
}

/// Who the verified caller is, and whether `access` lets them in.
///
/// On a public route the identity is returned only if it passes domain enforcement, so
/// the upstream never sees an identity the filter would refuse elsewhere; otherwise the
/// request goes on as anonymous (`Ok(None)`).
pub fn authorize(
    claims: &Claims,
    access: &Access,
    policy: &Policy,
) -> Result<Option<Identity>, Refusal> {
    let identity = Identity::of(claims, policy)?;
    let enforced = if policy.enforce_principal_domain {
        identity.domain_check(policy).map_err(|f| match f {
            DomainFailure::NoEmail => Forbidden::NoDomain,
            DomainFailure::OtherDomain => Forbidden::DomainNotAllowed,
            DomainFailure::Unverified => Forbidden::UnverifiedEmail,
        })
    } else {
        Ok(())
    };
    match access {
        Access::Public => Ok(enforced.is_ok().then_some(identity)),
        Access::Require(alternatives) => {
            let refuse = |f| Refusal::Forbidden(f, identity.principal.clone());
            enforced.map_err(refuse)?;
            let scopes = scopes(&claims.all);
            any_met(alternatives, &identity, &scopes, policy).map_err(refuse)?;
            Ok(Some(identity))
        }
    }
}

fn without_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|b| *b == b'?' || *b == b'#') {
        Some(i) => path.get(..i).unwrap_or(path),
        None => path,
    }
}

fn matches(rule: &Rule, method: &[u8], path: &str) -> bool {
    let path_ok = match &rule.path {
        PathMatch::Exact(p) => path::path_matches(path, p, false, rule.case_sensitive),
        PathMatch::Prefix(p) => path::path_matches(path, p, true, rule.case_sensitive),
    };
    path_ok && path::method_matches(&rule.methods, method)
}

/// The space-separated `scope` claim of an access token; ID tokens have none.
fn scopes(claims: &Map<String, Value>) -> Vec<&str> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_ascii_whitespace().collect())
        .unwrap_or_default()
}

/// At least one alternative holds. With several failing, the reason is `insufficient_scope`
/// only if scopes are what every one of them lacks.
fn any_met(
    alternatives: &[Requirement],
    identity: &Identity,
    scopes: &[&str],
    policy: &Policy,
) -> Result<(), Forbidden> {
    let mut failures = Vec::with_capacity(alternatives.len());
    for requirement in alternatives {
        match met(requirement, identity, scopes, policy) {
            Ok(()) => return Ok(()),
            Err(f) => failures.push(f),
        }
    }
    match failures.as_slice() {
        [only] => Err(*only),
        [first, ..] if failures.iter().all(|f| f.is_scope()) => Err(*first),
        _ => Err(Forbidden::NoneOf),
    }
}

/// Every requirement that is set holds. Who the caller is is checked before what the token
/// may do, so `insufficient_scope` means a token with more scopes would get through.
fn met(
    r: &Requirement,
    identity: &Identity,
    scopes: &[&str],
    policy: &Policy,
) -> Result<(), Forbidden> {
    let in_groups = |g: &String| identity.groups.contains(g);
    let has_scope = |s: &String| scopes.contains(&s.as_str());
    if r.admin && !identity.admin {
        return Err(Forbidden::NotAdmin);
    }
    if !r.principals.is_empty() && !r.principals.iter().any(|n| identity.is_named(n, policy)) {
        return Err(Forbidden::Principal);
    }
    if !r.domains.is_empty() {
        match identity.email_domain_in(&r.domains) {
            Ok(()) => {}
            Err(DomainFailure::Unverified) => return Err(Forbidden::UnverifiedEmail),
            Err(_) => return Err(Forbidden::Domain),
        }
    }
    if !r.groups_any.is_empty() && !r.groups_any.iter().any(in_groups) {
        return Err(Forbidden::GroupsAny);
    }
    if !r.groups_all.iter().all(in_groups) {
        return Err(Forbidden::GroupsAll);
    }
    if !r.scopes_any.is_empty() && !r.scopes_any.iter().any(has_scope) {
        return Err(Forbidden::ScopesAny);
    }
    if !r.scopes_all.iter().all(has_scope) {
        return Err(Forbidden::ScopesAll);
    }
    Ok(())
}

/// The policy's answer for one verified token under one route rule: all a decision needs
/// beyond the request's own headers. It depends only on the claims, the rule and the
/// configuration, so the token cache keeps it with the claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed {
        set: Rc<[(String, String)]>,
        reason: &'static str,
    },
    Refused(Refusal),
}

impl Outcome {
    /// What remembering it costs, for the cache's byte bound: its strings plus a little each.
    pub fn cost(&self) -> usize {
        const OVERHEAD: usize = 64;
        match self {
            Outcome::Allowed { set, .. } => set.iter().fold(OVERHEAD, |sum, (n, v)| {
                sum.saturating_add(n.len() + v.len() + OVERHEAD)
            }),
            Outcome::Refused(Refusal::NoPrincipal(s) | Refusal::Forbidden(_, s)) => {
                OVERHEAD.saturating_add(s.len())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Config, TokenUse};
    use serde_json::json;

    /// A policy from the authorization fields of a configuration.
    pub fn policy(fields: Value) -> Policy {
        config(fields).policy
    }

    pub fn config(fields: Value) -> Config {
        let mut v = json!({ "providers": [{
            "name": "cognito", "user_pool_id": "us-east-1_Abc123", "client_ids": ["client1"],
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" }
        }]});
        for (k, val) in fields.as_object().unwrap() {
            v[k] = val.clone();
        }
        Config::parse(v.to_string().as_bytes()).unwrap()
    }

    /// Verified claims holding `all`, as `verify` would return them.
    pub fn claims(all: Value) -> Claims {
        Claims {
            provider: 0,
            issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123".into(),
            token_use: Some(TokenUse::Id),
            client_id: Some("client1".into()),

            kid: "k1".into(),
            expires_at: Some(0),
            valid_until: 0,
            all: all.as_object().unwrap().clone(),
        }
    }

    pub fn om() -> Policy {
        policy(json!({
            "principal_claims": ["email", "preferred_username", "sub"],
            "admin_principals": ["user1", "user2"],
            "principal_domain": "open-metadata.org",
            "enforce_principal_domain": true,
        }))
    }

    pub fn user(email: &str) -> Value {
        json!({ "sub": "s-1", "email": email, "email_verified": true })
    }

    pub fn identify_in(policy: &Policy, claims: Value) -> Result<Identity, Refusal> {
        Identity::of(&self::claims(claims), policy)
    }

    pub fn authenticated() -> Access {
        Access::Require(vec![Requirement::default()])
    }

    pub fn decide(policy: &Policy, claims_json: Value, access: &Access) -> Result<bool, Refusal> {
        authorize(&claims(claims_json), access, policy).map(|i| i.is_some())
    }

    pub fn forbidden(policy: &Policy, claims_json: Value, access: &Access) -> Forbidden {
        match authorize(&claims(claims_json), access, policy) {
            Err(Refusal::Forbidden(f, _)) => f,
            other => panic!("not forbidden: {other:?}"),
        }
    }

    fn rules() -> Policy {
        policy(json!({
            "rules": [
                { "match": { "exact": "/healthz" }, "allow": "public" },
                { "match": { "prefix": "/admin" }, "require": { "admin": true } },
                { "match": { "prefix": "/write", "methods": ["POST", "PUT"] }, "require": { "groups_any": ["writers"] } },
                { "match": { "prefix": "/" , "methods": ["OPTIONS"] }, "allow": "public" },
            ]
        }))
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = rules();
        let at = |m: &str, path: &str| route(&p, m.as_bytes(), path.as_bytes()).unwrap().rule;
        assert_eq!(at("GET", "/healthz"), Some(0));
        assert_eq!(
            at("GET", "/healthz?full=1"),
            Some(0),
            "the query string does not count"
        );
        assert_eq!(at("GET", "/healthz#x"), Some(0));
        assert_eq!(at("GET", "/healthz/"), None, "exact is exact");
        assert_eq!(at("GET", "/HEALTHZ"), None, "case-sensitive");
        assert_eq!(at("GET", "/admin"), Some(1));
        assert_eq!(
            at("GET", "/administrators"),
            Some(1),
            "a prefix is a string prefix"
        );
        assert_eq!(at("OPTIONS", "/admin/x"), Some(1));
        assert_eq!(at("POST", "/write/a"), Some(2));
        assert_eq!(at("GET", "/write/a"), None, "other methods fall through");
        assert_eq!(at("OPTIONS", "/write/a"), Some(3));
        assert_eq!(at("GET", "/?/admin"), None, "matching stops at the query");
        assert_eq!(
            route(&p, b"GET", b"/healthz\xff").map(|r| r.rule),
            Err(NotNormal::Path)
        );
        let fallback = route(&p, b"GET", b"/elsewhere").unwrap();
        assert_eq!(
            fallback.access,
            &Access::Require(vec![Requirement::default()])
        );
        assert_eq!(
            route(&p, b"GET", b"/healthz").unwrap().access,
            &Access::Public
        );
    }

    #[test]
    fn paths_not_in_normal_form_are_refused_when_rules_apply() {
        // The full list is in policy::path; here, that route() applies it.
        for bad in [
            "/healthz/../admin",
            "//admin",
            "/%61dmin",
            "/a%5cb",
            "/admin;/x",
            "/admin%2Fx",
            "/%u0061dmin",
            "/%C0%AE",
            "/a b",
        ] {
            let routed = route(&rules(), b"GET", bad.as_bytes()).map(|r| r.rule);
            assert_eq!(routed, Err(NotNormal::Path), "{bad}");
        }
        let at = |path: &str| route(&rules(), b"GET", path.as_bytes()).map(|r| r.rule);
        assert_eq!(
            at("/healthz?next=/../admin;x%u"),
            Ok(Some(0)),
            "the query is not checked"
        );
        assert_eq!(at("/admin%20x"), Ok(Some(1)));
        assert_eq!(at("/caf%C3%A9"), Ok(None));
        // Without rules there is nothing to confuse.
        assert!(route(&policy(json!({})), b"get", b"/a/../b;x").is_ok());
    }

    #[test]
    fn rules_match_the_decoded_path() {
        let p = policy(json!({ "rules": [
            { "match": { "prefix": "/a+b/" }, "require": { "admin": true } },
            { "match": { "exact": "/caf%c3%a9" }, "require": { "admin": true } },
        ]}));
        let at = |path: &str| route(&p, b"GET", path.as_bytes()).map(|r| r.rule);
        assert_eq!(at("/a+b/x"), Ok(Some(0)));
        assert_eq!(at("/a%2Bb/x"), Ok(Some(0)), "Werkzeug reads %2B as +");
        assert_eq!(at("/a%2bb/x"), Ok(Some(0)));
        assert_eq!(at("/caf%C3%A9"), Ok(Some(1)));
        assert_eq!(at("/caf%c3%a9"), Ok(Some(1)));
    }

    #[test]
    fn methods_must_be_upper_case_tokens_and_get_covers_head() {
        let p = rules();
        let at = |m: &[u8], path: &str| route(&p, m, path.as_bytes()).map(|r| r.rule);
        assert_eq!(at(b"POST", "/write/a"), Ok(Some(2)));
        assert_eq!(
            at(b"post", "/write/a"),
            Err(NotNormal::Method),
            "HTTP/2 lets it through"
        );
        assert_eq!(at(b"Post", "/write/a"), Err(NotNormal::Method));
        assert_eq!(at(b"GET /x", "/write/a"), Err(NotNormal::Method));
        assert_eq!(at(b"", "/"), Err(NotNormal::Method));
        assert_eq!(at(b"PROPFIND", "/write/a"), Ok(None), "an extension method");
        let get = policy(json!({ "rules": [
            { "match": { "prefix": "/", "methods": ["GET"] }, "allow": "public" },
        ]}));
        let rule = |m: &[u8]| route(&get, m, b"/x").map(|r| r.rule);
        assert_eq!(rule(b"GET"), Ok(Some(0)));
        assert_eq!(rule(b"HEAD"), Ok(Some(0)), "GET covers HEAD");
        assert_eq!(rule(b"POST"), Ok(None));
    }

    #[test]
    fn case_insensitive_rules() {
        let all = policy(json!({ "path_case_sensitive": false, "rules": [
            { "match": { "prefix": "/admin/" }, "require": { "admin": true } },
            { "match": { "exact": "/Login", "case_sensitive": true }, "allow": "public" },
        ]}));
        let at = |p: &Policy, path: &str| route(p, b"GET", path.as_bytes()).map(|r| r.rule);
        assert_eq!(at(&all, "/ADMIN/x"), Ok(Some(0)));
        assert_eq!(at(&all, "/aDmIn/x"), Ok(Some(0)));
        assert_eq!(at(&all, "/Login"), Ok(Some(1)));
        assert_eq!(at(&all, "/login"), Ok(None), "the rule's own setting wins");
        // Unicode case folding would make these /admin/ to some upstreams: refused.
        assert_eq!(at(&all, "/adm%C4%B1n/x"), Err(NotNormal::Path));
        assert_eq!(at(&all, "/caf%C3%A9"), Ok(None));
        let one = policy(json!({ "rules": [
            { "match": { "prefix": "/admin/", "case_sensitive": false }, "require": { "admin": true } },
            { "match": { "prefix": "/Public/" }, "allow": "public" },
        ]}));
        assert_eq!(at(&one, "/Admin/x"), Ok(Some(0)));
        assert_eq!(at(&one, "/public/x"), Ok(None));
        assert_eq!(at(&one, "/adm%C4%B1n/x"), Err(NotNormal::Path));
        // Case-sensitive everywhere: no folding to fear, the character is just a character.
        assert_eq!(at(&rules(), "/adm%C4%B1n/x"), Ok(None));
    }

    #[test]
    fn cors_preflight_needs_options_origin_and_request_method() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let full = h(&[
            ("origin", "https://app"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(is_cors_preflight(b"OPTIONS", &full));
        assert!(!is_cors_preflight(b"GET", &full));
        assert!(!is_cors_preflight(
            b"OPTIONS",
            &h(&[("origin", "https://app")])
        ));
        assert!(!is_cors_preflight(
            b"OPTIONS",
            &h(&[("origin", ""), ("access-control-request-method", "GET")])
        ));
    }

    #[test]
    fn each_requirement() {
        let p = policy(
            json!({ "admin_principals": ["root"], "principal_domain": "example.com", "allowed_domains": ["partner.example"] }),
        );
        let require = |r: Value| {
            let p = policy(json!({ "rules": [{ "match": { "prefix": "/" }, "require": r }] }));
            p.rules[0].access.clone()
        };
        let u = |name: &str, groups: Value, scope: &str| json!({ "email": name, "email_verified": true, "cognito:groups": groups, "scope": scope });
        let alice = u("alice@example.com", json!(["a", "b"]), "openid api/read");
        let root = u("root@example.com", json!([]), "");
        let ok = |r: Value, c: &Value| decide(&p, c.clone(), &require(r)).is_ok();
        let why = |r: Value, c: &Value| forbidden(&p, c.clone(), &require(r));

        assert!(ok(json!({ "authenticated": true }), &alice));
        assert!(ok(json!({ "admin": true }), &root));
        assert_eq!(why(json!({ "admin": true }), &alice), Forbidden::NotAdmin);
        assert!(ok(json!({ "principals": ["Alice"] }), &alice));
        assert_eq!(
            why(json!({ "principals": ["bob"] }), &alice),
            Forbidden::Principal
        );
        let alice_elsewhere = u("alice@evil.example", json!([]), "");
        assert_eq!(
            why(json!({ "principals": ["alice"] }), &alice_elsewhere),
            Forbidden::Principal
        );
        assert!(ok(json!({ "domains": ["example.com"] }), &alice));
        assert_eq!(
            why(json!({ "domains": ["partner.example"] }), &alice),
            Forbidden::Domain
        );
        let unverified =
            json!({ "sub": "s", "email": "p@partner.example", "email_verified": false });
        assert_eq!(
            why(json!({ "domains": ["partner.example"] }), &unverified),
            Forbidden::UnverifiedEmail
        );
        assert!(ok(json!({ "groups_any": ["x", "b"] }), &alice));
        assert_eq!(
            why(json!({ "groups_any": ["x", "y"] }), &alice),
            Forbidden::GroupsAny
        );
        assert!(ok(json!({ "groups_all": ["a", "b"] }), &alice));
        assert_eq!(
            why(json!({ "groups_all": ["a", "x"] }), &alice),
            Forbidden::GroupsAll
        );
        assert!(ok(
            json!({ "scopes_any": ["api/write", "api/read"] }),
            &alice
        ));
        assert_eq!(
            why(json!({ "scopes_any": ["api/write"] }), &alice),
            Forbidden::ScopesAny
        );
        assert!(ok(json!({ "scopes_all": ["openid", "api/read"] }), &alice));
        assert_eq!(
            why(json!({ "scopes_all": ["openid", "api/write"] }), &alice),
            Forbidden::ScopesAll
        );
        assert!(Forbidden::ScopesAll.is_scope() && !Forbidden::GroupsAll.is_scope());
        // Every field set must hold; who the caller is comes before the token's scopes.
        let both = json!({ "groups_any": ["x"], "scopes_any": ["api/write"] });
        assert_eq!(why(both, &alice), Forbidden::GroupsAny);
        // ID tokens have no scope claim.
        let id = json!({ "email": "alice@example.com", "email_verified": true });
        assert_eq!(
            why(json!({ "scopes_any": ["openid"] }), &id),
            Forbidden::ScopesAny
        );
    }

    #[test]
    fn require_any_needs_one_alternative() {
        let p = policy(json!({ "admin_groups": ["admins"], "rules": [
            { "match": { "prefix": "/reports" }, "require_any": [{ "admin": true }, { "groups_any": ["analysts"] }] },
            { "match": { "prefix": "/api" }, "require_any": [{ "scopes_all": ["api/read"] }, { "scopes_all": ["api/admin"] }] },
        ]}));
        let reports = &p.rules[0].access;
        let api = &p.rules[1].access;
        let g = |groups: Value| json!({ "sub": "s", "cognito:groups": groups, "scope": "openid" });
        assert_eq!(decide(&p, g(json!(["admins"])), reports), Ok(true));
        assert_eq!(decide(&p, g(json!(["analysts"])), reports), Ok(true));
        assert_eq!(
            forbidden(&p, g(json!(["other"])), reports),
            Forbidden::NoneOf
        );
        assert_eq!(
            forbidden(&p, g(json!([])), api),
            Forbidden::ScopesAll,
            "all alternatives lack scopes"
        );
    }

    #[test]
    fn a_public_route_forwards_only_identities_that_pass_the_domain() {
        let om = om();
        let public = Access::Public;
        let i = authorize(&claims(user("user1@open-metadata.org")), &public, &om).unwrap();
        assert!(i.is_some_and(|i| i.admin));
        assert_eq!(
            decide(&om, user("x@example.com"), &public),
            Ok(false),
            "anonymous"
        );
        assert!(matches!(
            authorize(&claims(json!({ "name": "no principal" })), &public, &om),
            Err(Refusal::NoPrincipal(_))
        ));
    }

    #[test]
    fn descriptions_are_fixed_texts_without_quotes() {
        use Forbidden::*;
        for f in [
            NoDomain,
            DomainNotAllowed,
            UnverifiedEmail,
            NotAdmin,
            Principal,
            Domain,
            GroupsAny,
            GroupsAll,
            ScopesAny,
            ScopesAll,
            NoneOf,
        ] {
            let d = f.description();
            assert!(!d.contains('"') && !d.contains('\\'), "{d}");
            assert!(!f.reason().is_empty());
        }
    }
}
