//! A provider's revocation settings: `revoked` (inline) and `revocation_list` (fetched).

use super::provider::{Fetched, RawFetch};
use super::{err, ConfigError, RemoteJwks};
use crate::revocation::{ListError, RawList, RevocationList, MAX_ENTRY_BYTES};

/// A fetched list is refetched this often by default: a revoked token stops within a minute.
const DEFAULT_REFRESH_SECONDS: u64 = 60;

/// Where a fetched revocation list comes from: the same shape as a remote JWKS.
pub type RemoteList = RemoteJwks;

/// Tokens of a provider that are refused although they verify.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Revocation {
    /// `revoked`: the list in the configuration.
    pub inline: Option<RevocationList>,
    /// `revocation_list`: fetched through an Envoy cluster and refreshed.
    pub remote: Option<RemoteList>,
}

pub type RawRevoked = RawList;

/// `revocation_list`: fetched like a JWKS.
pub type RawRevocationList = RawFetch;

/// A fetched revocation list.
const LIST: Fetched = Fetched {
    host: "the revocation list's host",
    example_uri: "https://auth.example.com/revoked.json",
    default_refresh_seconds: DEFAULT_REFRESH_SECONDS,
};

/// Checks `revoked` and `revocation_list` of the provider at `at`.
pub fn validate(
    revoked: Option<RawRevoked>,
    remote: Option<RawRevocationList>,
    username_case_sensitive: bool,
    at: &str,
) -> Result<Revocation, ConfigError> {
    let inline = revoked
        .map(|raw| {
            RevocationList::from_raw(raw, username_case_sensitive).map_err(|e| match e {
                ListError::BadEntry(field, i) => err(
                    format!("{at}.revoked.{field}[{i}]"),
                    format!("must be a non-empty string of at most {MAX_ENTRY_BYTES} bytes"),
                ),
                other => err(format!("{at}.revoked"), other.to_string()),
            })
        })
        .transpose()?;
    let remote = remote
        .map(|r| r.validate(&format!("{at}.revocation_list"), &LIST))
        .transpose()?;
    Ok(Revocation { inline, remote })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use serde_json::{json, Value};

    fn provider(extra: Value) -> Value {
        let mut p = json!({
            "name": "bots", "issuer": "open-metadata.org",
            "jwks": { "cluster": "om", "uri": "http://om:8585/api/v1/system/config/jwks" },
        });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({ "providers": [p] })
    }

    fn parse(v: &Value) -> Result<Config, crate::config::ConfigError> {
        Config::parse(v.to_string().as_bytes())
    }

    #[test]
    fn no_revocation_by_default() {
        let c = parse(&provider(json!({}))).unwrap();
        assert_eq!(c.providers[0].revocation, Default::default());
    }

    #[test]
    fn an_inline_list_and_a_fetched_one_with_defaults() {
        let c = parse(&provider(json!({
            "revoked": { "sub": ["ingestion-bot"], "jti": ["j1"] },
            "revocation_list": { "cluster": "om", "uri": "https://auth.example.com/revoked.json" },
        })))
        .unwrap();
        let r = &c.providers[0].revocation;
        assert_eq!(r.inline.as_ref().map(|l| l.len()), Some(2));
        let remote = r.remote.as_ref().unwrap();
        assert_eq!(
            (remote.authority.as_str(), remote.path.as_str()),
            ("auth.example.com", "/revoked.json")
        );
        assert_eq!(
            (remote.timeout_ms, remote.refresh_interval_seconds),
            (3000, 60)
        );
    }

    #[test]
    fn bad_revocation_settings_are_refused_naming_the_field() {
        let cases = [
            (
                json!({ "revoked": { "subs": ["x"] } }),
                "providers[0].revoked.subs",
            ),
            (
                json!({ "revoked": { "sub": ["ok", ""] } }),
                "providers[0].revoked.sub[1]",
            ),
            (
                json!({ "revoked": { "sub": "x" } }),
                "providers[0].revoked.sub",
            ),
            (
                json!({ "revocation_list": { "cluster": "", "uri": "https://a/b" } }),
                "providers[0].revocation_list.cluster",
            ),
            (
                json!({ "revocation_list": { "cluster": "c", "uri": "ftp://a/b" } }),
                "providers[0].revocation_list.uri",
            ),
            (
                json!({ "revocation_list": { "cluster": "c", "uri": "https://a/b", "timeout_ms": 0 } }),
                "providers[0].revocation_list.timeout_ms",
            ),
            (
                json!({ "revocation_list": { "cluster": "c", "uri": "https://a/b", "refresh_interval_seconds": 0 } }),
                "providers[0].revocation_list.refresh_interval_seconds",
            ),
            (
                json!({ "revocation_list": { "cluster": "c", "url": "https://a/b" } }),
                "providers[0].revocation_list.url",
            ),
        ];
        for (extra, field) in cases {
            let e = parse(&provider(extra.clone())).unwrap_err();
            assert_eq!(e.field, field, "{extra}: {e}");
        }
    }

    #[test]
    fn require_expiration_only_for_plain_issuers() {
        let c = parse(&provider(json!({}))).unwrap();
        assert!(c.providers[0].require_expiration, "required by default");
        let c = parse(&provider(json!({ "require_expiration": false }))).unwrap();
        assert!(!c.providers[0].require_expiration);
        let pool = json!({ "providers": [{
            "name": "cognito", "user_pool_id": "us-east-1_Abc123", "client_ids": ["c1"],
            "require_expiration": false,
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/x" },
        }]});
        let e = parse(&pool).unwrap_err();
        assert_eq!(e.field, "providers[0].require_expiration");
        assert!(e.message.contains("Cognito"), "{e}");
        let mut ok = pool.clone();
        ok["providers"][0]["require_expiration"] = json!(true);
        assert!(parse(&ok).is_ok(), "true is allowed (the default)");
    }
}
