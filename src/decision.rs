//! One request, as data: headers → token → verified claims → a decision the glue acts on.

use crate::config::Config;
use crate::jwks::KeySet;
use crate::response::{self, Response};
use crate::signature::SignatureVerifier;
use crate::token::{self, ExtractError};
use crate::verify::{self, Claims, VerifyError};

/// How long a client is told to wait when keys are not loaded yet.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// What the filter does with a request.
#[derive(Debug)]
pub enum Decision {
    /// Forward the request upstream.
    Allow(Box<Claims>),
    /// Answer the request with `response` and do not forward it.
    Deny(Denied),
}

#[derive(Debug)]
pub struct Denied {
    pub response: Response,
    /// A short, stable reason for logs and metrics.
    pub reason: &'static str,
    /// The verification failure, when a token was present and checked.
    pub error: Option<VerifyError>,
}

/// Decides a request from its headers (lowercase name, raw value) at time `now`.
pub fn decide(
    headers: &[(String, Vec<u8>)],
    config: &Config,
    keys: &[Option<KeySet>],
    verifier: &dyn SignatureVerifier,
    now: u64,
) -> Decision {
    let realm = config.realm.as_str();
    let token = match token::extract(headers, &config.from_headers) {
        Ok(Some(token)) => token,
        Ok(None) => return deny(response::missing_token(realm), "missing", None),
        Err(ExtractError::Multiple) => {
            return deny(
                response::invalid_request(realm, ExtractError::Multiple.description()),
                "invalid",
                None,
            )
        }
        Err(e) => {
            return deny(
                response::invalid_token(realm, e.description()),
                "invalid",
                None,
            )
        }
    };
    match verify::verify(token, &config.providers, keys, verifier, now) {
        Ok(claims) => Decision::Allow(Box::new(claims)),
        Err(e @ VerifyError::NoKeys { .. }) => deny(
            response::unavailable(RETRY_AFTER_SECONDS, &e.description()),
            e.reason(),
            Some(e),
        ),
        Err(e) => deny(
            response::invalid_token(realm, &e.description()),
            e.reason(),
            Some(e),
        ),
    }
}

fn deny(response: Response, reason: &'static str, error: Option<VerifyError>) -> Decision {
    Decision::Deny(Denied {
        response,
        reason,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::PureRust;
    use crate::verify::tests::{config, id_claims, keys, sign, NOW};

    fn bearer(token: &str) -> Vec<(String, Vec<u8>)> {
        vec![(
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        )]
    }

    fn denied(d: Decision) -> Denied {
        match d {
            Decision::Deny(d) => d,
            Decision::Allow(c) => panic!("allowed: {c:?}"),
        }
    }

    #[test]
    fn valid_token_is_allowed() {
        let d = decide(
            &bearer(&sign("key1", "k1", &id_claims())),
            &config(),
            &keys(),
            &PureRust,
            NOW,
        );
        assert!(matches!(d, Decision::Allow(c) if c.client_id.as_deref() == Some("client1")));
    }

    #[test]
    fn each_failure_maps_to_its_status() {
        let d = denied(decide(&[], &config(), &keys(), &PureRust, NOW));
        assert_eq!((d.response.status, d.reason), (401, "missing"));
        let d = denied(decide(
            &bearer("not-a-jwt"),
            &config(),
            &keys(),
            &PureRust,
            NOW,
        ));
        assert_eq!((d.response.status, d.reason), (401, "invalid"));
        let token = sign("key1", "k1", &id_claims());
        let d = denied(decide(&bearer(&token), &config(), &[None], &PureRust, NOW));
        assert_eq!((d.response.status, d.reason), (503, "no_keys"));
        let d = denied(decide(
            &bearer(&token),
            &config(),
            &keys(),
            &PureRust,
            NOW + 7200,
        ));
        assert_eq!(
            (d.response.status, d.reason, d.error),
            (401, "expired", Some(VerifyError::Expired))
        );
        let mut two = bearer(&token);
        two.extend(bearer(&token));
        assert_eq!(
            denied(decide(&two, &config(), &keys(), &PureRust, NOW))
                .response
                .status,
            400
        );
    }

    #[test]
    fn missing_token_needs_no_keys() {
        let d = denied(decide(&[], &config(), &[None], &PureRust, NOW));
        assert_eq!(d.response.status, 401);
    }
}
