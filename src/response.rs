//! The deny responses, as data: status, headers and a JSON body (RFC 6750 for 401/403).
//!
//! Descriptions come from this crate's own fixed texts, never from the request, so they
//! need no escaping inside the `WWW-Authenticate` quoted string.

use serde_json::json;

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

/// 503 with `Retry-After`: signing keys are not available.
pub fn unavailable(retry_after_seconds: u64, description: &str) -> Response {
    let mut r = json_response(503, "temporarily_unavailable", description);
    r.headers
        .push(("retry-after".into(), retry_after_seconds.to_string()));
    r
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
    fn unavailable_says_when_to_retry() {
        let r = unavailable(5, "signing keys are not available yet");
        assert_eq!((r.status, header(&r, "retry-after")), (503, Some("5")));
        assert_eq!(header(&r, "www-authenticate"), None);
    }
}
