//! A pool provider's `online_check`: asking Cognito (`GetUser`) whether an access token is
//! still live, for tokens that were signed out or revoked inside Cognito.

use super::{err, ConfigError};
use serde::Deserialize;

const DEFAULT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_CACHE_SECONDS: u64 = 60;
const MAX_CACHE_SECONDS: u64 = 3_600;
const DEFAULT_MAX_IN_FLIGHT: usize = 32;
const MAX_IN_FLIGHT: usize = 1_024;

/// How, and how often, a provider's access tokens are checked with Cognito.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineCheck {
    /// The Envoy cluster that reaches `cognito-idp.<region>.amazonaws.com`.
    pub cluster: String,
    /// `:authority` of the call: the pool region's cognito-idp endpoint by default.
    pub authority: String,
    pub timeout_ms: u64,
    /// How long an answer is kept, shared by all workers of the process.
    pub cache_seconds: u64,
    /// What a request gets while Cognito cannot be reached.
    pub when_unreachable: WhenUnreachable,
    /// Checks under way per worker beyond which new ones get 503.
    pub max_in_flight: usize,
    /// Checks under way per worker for one principal (`sub`) beyond which its new ones get 503:
    /// its fair share of `max_in_flight`, so one user's flood of fresh tokens cannot take all.
    pub max_in_flight_per_principal: usize,
    /// Check on every request, not only on rules with `"active": true`.
    pub every_request: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnreachable {
    /// 503 with `Retry-After` (the default: a signed-out token must not pass because
    /// Cognito is slow).
    Deny,
    /// Let the offline-verified token through.
    Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnlineCheck {
    cluster: String,
    authority: Option<String>,
    timeout_ms: Option<u64>,
    cache_seconds: Option<u64>,
    when_unreachable: Option<WhenUnreachable>,
    max_in_flight: Option<usize>,
    max_in_flight_per_principal: Option<usize>,
    every_request: Option<bool>,
}

impl RawOnlineCheck {
    /// `region` is the pool's (`None` for a plain issuer, which cannot be checked).
    pub fn validate(
        self,
        region: Option<&str>,
        access_tokens: bool,
        at: &str,
    ) -> Result<OnlineCheck, ConfigError> {
        let at = format!("{at}.online_check");
        let Some(region) = region else {
            return Err(err(
                at,
                "only a Cognito pool (user_pool_id) can check its tokens online",
            ));
        };
        if !access_tokens {
            return Err(err(
                at,
                "only access tokens can be checked online (GetUser), and token_use excludes them",
            ));
        }
        if self.cluster.is_empty() {
            return Err(err(
                format!("{at}.cluster"),
                "must name the Envoy cluster that reaches cognito-idp.<region>.amazonaws.com",
            ));
        }
        let authority = self
            .authority
            .unwrap_or_else(|| format!("cognito-idp.{region}.amazonaws.com"));
        if authority.is_empty()
            || !authority.bytes().all(|b| b.is_ascii_graphic())
            || authority.contains('/')
        {
            return Err(err(
                format!("{at}.authority"),
                "must be a host[:port] such as cognito-idp.us-east-1.amazonaws.com",
            ));
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(err(
                format!("{at}.timeout_ms"),
                "must be between 1 and 60000",
            ));
        }
        let cache_seconds = self.cache_seconds.unwrap_or(DEFAULT_CACHE_SECONDS);
        if !(1..=MAX_CACHE_SECONDS).contains(&cache_seconds) {
            return Err(err(
                format!("{at}.cache_seconds"),
                format!("must be between 1 and {MAX_CACHE_SECONDS}"),
            ));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
            return Err(err(
                format!("{at}.max_in_flight"),
                format!("must be between 1 and {MAX_IN_FLIGHT}"),
            ));
        }
        // By default a quarter: four principals must flood at once to fill the bound.
        let per_principal = self
            .max_in_flight_per_principal
            .unwrap_or((max_in_flight / 4).max(1));
        if !(1..=max_in_flight).contains(&per_principal) {
            return Err(err(
                format!("{at}.max_in_flight_per_principal"),
                format!("must be between 1 and max_in_flight ({max_in_flight})"),
            ));
        }
        Ok(OnlineCheck {
            cluster: self.cluster,
            authority,
            timeout_ms,
            cache_seconds,
            when_unreachable: self.when_unreachable.unwrap_or(WhenUnreachable::Deny),
            max_in_flight,
            max_in_flight_per_principal: per_principal,
            every_request: self.every_request.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, WhenUnreachable};
    use serde_json::{json, Value};

    fn pool(online: Value, rules: Value) -> Result<Config, ConfigError> {
        let mut p = json!({
            "name": "cognito", "user_pool_id": "eu-west-1_Abc123", "client_ids": ["c1"],
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123/.well-known/jwks.json" },
        });
        if !online.is_null() {
            p["online_check"] = online;
        }
        Config::parse(
            json!({ "providers": [p], "rules": rules })
                .to_string()
                .as_bytes(),
        )
    }

    #[test]
    fn defaults_and_the_region_endpoint() {
        let c = pool(json!({ "cluster": "cognito_idp" }), json!([])).unwrap();
        let o = c.providers[0].online_check.as_ref().unwrap();
        assert_eq!(o.authority, "cognito-idp.eu-west-1.amazonaws.com");
        assert_eq!(
            (
                o.timeout_ms,
                o.cache_seconds,
                o.max_in_flight,
                o.max_in_flight_per_principal
            ),
            (2000, 60, 32, 8)
        );
        let small = pool(json!({ "cluster": "c", "max_in_flight": 2 }), json!([])).unwrap();
        let o = small.providers[0].online_check.as_ref().unwrap();
        assert_eq!(o.max_in_flight_per_principal, 1, "at least one");
        assert_eq!(
            o.when_unreachable,
            WhenUnreachable::Deny,
            "fail closed by default"
        );
        assert!(!o.every_request);
        assert!(pool(Value::Null, json!([])).unwrap().providers[0]
            .online_check
            .is_none());
    }

    #[test]
    fn active_rules_need_a_provider_that_checks() {
        let active = json!([{ "match": { "prefix": "/admin" }, "require": { "active": true } }]);
        let c = pool(json!({ "cluster": "cognito_idp" }), active.clone()).unwrap();
        assert!(c.policy.rules[0].needs_active());
        let e = pool(Value::Null, active).unwrap_err();
        assert_eq!(e.field, "rules[0].require.active");
        let e = pool(
            json!({ "cluster": "c" }),
            json!([{ "match": { "prefix": "/" }, "require": { "active": false } }]),
        )
        .unwrap_err();
        assert_eq!(e.field, "rules[0].require.active");
        let e = pool(
            json!({ "cluster": "c" }),
            json!([{ "match": { "prefix": "/" }, "require_any": [{ "active": true }, { "admin": true }] }]),
        )
        .unwrap_err();
        assert_eq!(e.field, "rules[0].require_any[0].active");
    }

    #[test]
    fn bad_online_checks_are_refused_naming_the_field() {
        let at = "providers[0].online_check";
        for (online, field) in [
            (json!({ "cluster": "" }), format!("{at}.cluster")),
            (
                json!({ "cluster": "c", "timeout_ms": 0 }),
                format!("{at}.timeout_ms"),
            ),
            (
                json!({ "cluster": "c", "cache_seconds": 0 }),
                format!("{at}.cache_seconds"),
            ),
            (
                json!({ "cluster": "c", "cache_seconds": 3601 }),
                format!("{at}.cache_seconds"),
            ),
            (
                json!({ "cluster": "c", "max_in_flight": 0 }),
                format!("{at}.max_in_flight"),
            ),
            (
                json!({ "cluster": "c", "max_in_flight_per_principal": 0 }),
                format!("{at}.max_in_flight_per_principal"),
            ),
            (
                json!({ "cluster": "c", "max_in_flight": 4, "max_in_flight_per_principal": 5 }),
                format!("{at}.max_in_flight_per_principal"),
            ),
            (
                json!({ "cluster": "c", "authority": "a/b" }),
                format!("{at}.authority"),
            ),
            (
                json!({ "cluster": "c", "when_unreachable": "maybe" }),
                format!("{at}.when_unreachable"),
            ),
            (json!({ "cluster": "c", "url": "x" }), format!("{at}.url")),
        ] {
            let e = pool(online.clone(), json!([])).unwrap_err();
            assert_eq!(e.field, field, "{online}: {e}");
        }
        let plain = json!({ "providers": [{ "name": "bots", "issuer": "open-metadata.org",
            "local_jwks": serde_json::from_str::<Value>(&crate::test_tokens::jwks(&[("key1", "k")])).unwrap(),
            "online_check": { "cluster": "c" } }] });
        let e = Config::parse(plain.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, "providers[0].online_check");
        let mut id_only = json!({ "providers": [{
            "name": "cognito", "user_pool_id": "eu-west-1_Abc123", "client_ids": ["c1"], "token_use": ["id"],
            "jwks": { "cluster": "c", "uri": "https://x/jwks.json" }, "online_check": { "cluster": "c" } }] });
        let e = Config::parse(id_only.to_string().as_bytes()).unwrap_err();
        assert!(e.message.contains("access tokens"), "{e}");
        id_only["providers"][0]["token_use"] = json!(["id", "access"]);
        assert!(Config::parse(id_only.to_string().as_bytes()).is_ok());
    }
}
