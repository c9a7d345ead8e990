//! The deny responses, as data: status, headers and a JSON body (RFC 6750 for 401/403);
//! and the identity headers a verified request carries upstream.
//!
//! Descriptions come from this crate's own fixed texts and validated configuration values
//! (claim names), never from the request, so they need no escaping inside the
//! `WWW-Authenticate` quoted string.

use crate::config::values::is_safe_value;
use crate::config::IdentityHeaders;
use crate::policy::Identity;
use crate::verify::Claims;
use serde_json::{json, Value};

/// A response the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// 401 without an error code: the request carried no token (RFC 6750 §3.1).
pub fn missing_token(realm: &str) -> Response {
    let challenge = format!("Bearer realm=\"{realm}\"");
    build(401, challenge, "unauthorized", "a bearer token is required")
}

/// 401 `invalid_token`: a token was present but is not acceptable.
pub fn invalid_token(realm: &str, description: &str) -> Response {
    bearer_error(401, realm, "invalid_token", description)
}

/// 400 `invalid_request`: the request is malformed (for example, two tokens).
pub fn invalid_request(realm: &str, description: &str) -> Response {
    bearer_error(400, realm, "invalid_request", description)
}

/// 403 `insufficient_scope`: the token is valid but lacks a scope the route requires.
pub fn insufficient_scope(realm: &str, description: &str) -> Response {
    bearer_error(403, realm, "insufficient_scope", description)
}

/// 403 without a challenge: the caller is known and not allowed; another token of the same
/// caller would not help.
pub fn forbidden(description: &str) -> Response {
    json_response(403, "forbidden", description)
}

/// 503 with `Retry-After`: signing keys are not available.
pub fn unavailable(retry_after_seconds: u64, description: &str) -> Response {
    let mut r = json_response(503, "temporarily_unavailable", description);
    r.headers
        .push(("retry-after".into(), retry_after_seconds.to_string()));
    r
}

/// The headers that tell the upstream who the verified caller is, in a fixed order.
///
/// A value that could be misread upstream (empty, surrounding whitespace, control
/// characters such as CR or LF, quotes, `,` or `;` — see [`is_safe_value`]) is left out
/// rather than altered; list values (groups, array claims) are joined with `,` from items
/// that are each safe.
pub fn identity_headers(
    identity: &Identity,
    claims: &Claims,
    provider: &str,
    names: &IdentityHeaders,
) -> Vec<(String, String)> {
    let safe = |v: Option<String>| v.filter(|v| is_safe_value(v));
    let groups = identity.groups.join(",");
    let fixed: [(&str, Option<String>); 9] = [
        (&names.principal, safe(Some(identity.principal.clone()))),
        (
            &names.email,
            safe(identity.verified_email().map(str::to_string)),
        ),
        (&names.sub, claim_value(claims.all.get("sub"))),
        (&names.groups, Some(groups).filter(|g| !g.is_empty())),
        (&names.admin, Some(identity.admin.to_string())),
        (
            &names.token_use,
            claims.token_use.map(|t| t.as_str().to_string()),
        ),
        (&names.client_id, safe(claims.client_id.clone())),
        (&names.issuer, safe(Some(claims.issuer.clone()))),
        (&names.provider, Some(provider.to_string())),
    ];
    let copied = names.claim_to_headers.iter().map(|c| {
        (
            c.header_name.as_str(),
            claim_value(claims.all.get(&c.claim_name)),
        )
    });
    fixed
        .into_iter()
        .chain(copied)
        .filter_map(|(name, value)| Some((name.to_string(), value?)))
        .collect()
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON writes
/// them, arrays of those joined by commas. Objects, and arrays holding objects or unsafe
/// values, have no faithful header form.
fn claim_value(claim: Option<&Value>) -> Option<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()).filter(|s| is_safe_value(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match claim? {
        Value::Array(items) if !items.is_empty() => {
            let items: Option<Vec<String>> = items.iter().map(scalar).collect();
            Some(items?.join(","))
        }
        Value::Array(_) => None,
        other => scalar(other),
    }
}

fn bearer_error(status: u32, realm: &str, error: &str, description: &str) -> Response {
    let challenge =
        format!("Bearer realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\"");
    build(status, challenge, error, description)
}

fn build(status: u32, challenge: String, error: &str, description: &str) -> Response {
    let mut r = json_response(status, error, description);
    r.headers.push(("www-authenticate".into(), challenge));
    r
}

fn json_response(status: u32, error: &str, description: &str) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: json!({ "error": error, "error_description": description }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn missing_token_has_a_bare_challenge() {
        let r = missing_token("api");
        assert_eq!(r.status, 401);
        assert_eq!(header(&r, "www-authenticate"), Some("Bearer realm=\"api\""));
    }

    #[test]
    fn invalid_token_names_the_error() {
        let r = invalid_token("api", "the token has expired");
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\"")
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "the token has expired");
    }

    #[test]
    fn forbidden_and_insufficient_scope_are_403() {
        let r = insufficient_scope("api", "the token lacks a scope this route requires");
        assert_eq!(r.status, 403);
        assert_eq!(
            header(&r, "www-authenticate"),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a scope this route requires\"")
        );
        let r = forbidden("this route is for administrators");
        assert_eq!(r.status, 403);
        assert_eq!(header(&r, "www-authenticate"), None);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "forbidden");
        assert_eq!(
            body["error_description"],
            "this route is for administrators"
        );
    }

    #[test]
    fn identity_headers_for_a_verified_caller() {
        use crate::policy::tests::{claims, config};
        let config = config(serde_json::json!({
            "claim_to_headers": [
                { "header_name": "x-tenant", "claim_name": "custom:tenant" },
                { "header_name": "x-level", "claim_name": "custom:level" },
                { "header_name": "x-roles", "claim_name": "roles" },
                { "header_name": "x-absent", "claim_name": "nope" },
            ]
        }));
        let admin = crate::policy::tests::policy(serde_json::json!({ "admin_groups": ["d"] }));
        let identity = crate::policy::tests::identify_in(
            &admin,
            serde_json::json!({ "email": "alice@example.com", "email_verified": true, "cognito:groups": ["a", "b,c", "d"] }),
        )
        .unwrap();
        let claims = claims(serde_json::json!({
            "sub": "s-1", "custom:tenant": "acme", "custom:level": 3, "roles": ["r1", true]
        }));
        let headers = identity_headers(&identity, &claims, "cognito", &config.identity);
        let expected: Vec<(String, String)> = [
            ("x-auth-principal", "alice"),
            ("x-auth-email", "alice@example.com"),
            ("x-auth-sub", "s-1"),
            ("x-auth-groups", "a,d"),
            ("x-auth-admin", "true"),
            ("x-auth-token-use", "id"),
            ("x-auth-client-id", "client1"),
            (
                "x-auth-issuer",
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123",
            ),
            ("x-auth-provider", "cognito"),
            ("x-tenant", "acme"),
            ("x-level", "3"),
            ("x-roles", "r1,true"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(headers, expected);
    }

    #[test]
    fn unsafe_values_are_left_out() {
        use crate::policy::tests::{claims, config};
        let config = config(serde_json::json!({
            "claim_to_headers": [{ "header_name": "x-c", "claim_name": "c" }]
        }));
        let identity = crate::policy::tests::identify_in(
            &config.policy,
            serde_json::json!({ "username": "bob", "email": "bob@example.com" }),
        )
        .unwrap();
        for bad in [
            serde_json::json!("a\r\nx-auth-admin: true"),
            serde_json::json!("a\u{0}b"),
            serde_json::json!("tab\there"),
            serde_json::json!(" padded "),
            serde_json::json!(""),
            serde_json::json!({ "nested": 1 }),
            serde_json::json!(["a,b"]),
            serde_json::json!([["a"]]),
            serde_json::json!(null),
        ] {
            let claims = claims(serde_json::json!({ "c": bad, "sub": bad }));
            let headers = identity_headers(&identity, &claims, "cognito", &config.identity);
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            assert!(
                !names.contains(&"x-c") && !names.contains(&"x-auth-sub"),
                "{bad}"
            );
            assert!(!names.contains(&"x-auth-email") && !names.contains(&"x-auth-groups"));
            assert!(names.contains(&"x-auth-admin"));
        }
        let claims = claims(serde_json::json!({ "c": "Zoë" }));
        let headers = identity_headers(&identity, &claims, "cognito", &config.identity);
        assert!(
            headers.contains(&("x-c".into(), "Zoë".into())),
            "UTF-8 is kept"
        );
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let r = unavailable(5, "signing keys are not available yet");
        assert_eq!((r.status, header(&r, "retry-after")), (503, Some("5")));
        assert_eq!(header(&r, "www-authenticate"), None);
    }
}
