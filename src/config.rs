//! The filter's JSON configuration: serde types, defaults and validation.
//!
//! `Config::parse` is the only way in. It refuses unknown fields and bad values with a
//! message that names the field (`providers[0].jwks.uri: …`), so Envoy can refuse to start.

use serde::Deserialize;
use std::fmt;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

const DEFAULT_REALM: &str = "cognito-edge-auth";
const DEFAULT_TIMEOUT_MS: u64 = 3_000;
const DEFAULT_REFRESH_SECONDS: u64 = 600;
const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
const DEFAULT_STARTUP_WAIT_MS: u64 = 5_000;

/// A configuration error: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.field == "." {
            write!(f, "configuration: {}", self.message)
        } else {
            write!(f, "configuration field `{}`: {}", self.field, self.message)
        }
    }
}

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub providers: Vec<Provider>,
    pub from_headers: Vec<HeaderSource>,
    pub realm: String,
    /// How long a request may wait for a provider's first keys before it gets 503.
    pub startup_wait_ms: u64,
}

/// One token issuer: a Cognito user pool, or any JWKS-backed issuer with `issuer` set.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    /// Every `iss` value this provider accepts, compared exactly.
    pub issuers: Vec<String>,
    /// A Cognito user pool (`user_pool_id` set): `token_use` and the client are checked the
    /// Cognito way. Otherwise a plain JWT issuer: `aud` is checked against `client_ids` if any.
    pub cognito: bool,
    pub client_ids: Vec<String>,
    pub token_use: Vec<TokenUse>,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub keys: KeySource,
    pub clock_skew_seconds: u64,
}

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Fetched through an Envoy cluster and refreshed.
    Remote(RemoteJwks),
    /// Inline JWKS JSON from the configuration (already checked to hold a usable key).
    Local(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    Id,
    Access,
}

impl TokenUse {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Id => "id",
            TokenUse::Access => "access",
        }
    }
}

/// Where and how often to fetch a provider's JWKS, through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub uri: String,
    /// `:authority` for the fetch, from `uri`.
    pub authority: String,
    /// `:path` for the fetch, from `uri`.
    pub path: String,
    pub timeout_ms: u64,
    pub refresh_interval_seconds: u64,
}

/// A request header that may carry the token, after an optional prefix such as `Bearer `.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSource {
    pub name: String,
    #[serde(default)]
    pub value_prefix: String,
}

impl Config {
    /// Parses and validates the plugin configuration (the JSON in the wasm filter's
    /// `configuration`).
    pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| ConfigError {
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        raw.validate()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    providers: Vec<RawProvider>,
    from_headers: Option<Vec<HeaderSource>>,
    realm: Option<String>,
    startup_wait_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    user_pool_id: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    client_ids: Vec<String>,
    token_use: Option<Vec<TokenUse>>,
    algorithms: Option<Vec<String>>,
    jwks: Option<RawJwks>,
    local_jwks: Option<serde_json::Value>,
    clock_skew_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    cluster: String,
    uri: String,
    timeout_ms: Option<u64>,
    refresh_interval_seconds: Option<u64>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        if self.providers.is_empty() {
            return Err(err("providers", "at least one provider is required"));
        }
        let mut providers: Vec<Provider> = Vec::with_capacity(self.providers.len());
        for (i, raw) in self.providers.into_iter().enumerate() {
            let at = format!("providers[{i}]");
            let provider = raw.validate(&at)?;
            if providers.iter().any(|p| p.name == provider.name) {
                return Err(err(format!("{at}.name"), "duplicate provider name"));
            }
            if let Some(iss) = provider
                .issuers
                .iter()
                .find(|iss| providers.iter().any(|p| p.issuers.contains(iss)))
            {
                return Err(err(
                    format!("{at}.issuer"),
                    format!("issuer {iss} is already used by another provider"),
                ));
            }
            providers.push(provider);
        }

        let from_headers = match self.from_headers {
            None => vec![HeaderSource {
                name: "authorization".into(),
                value_prefix: "Bearer ".into(),
            }],
            Some(list) if list.is_empty() => {
                return Err(err("from_headers", "must list at least one header"))
            }
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, h)| validate_header(h, &format!("from_headers[{i}]")))
                .collect::<Result<_, _>>()?,
        };

        let realm = self.realm.unwrap_or_else(|| DEFAULT_REALM.into());
        if realm.is_empty()
            || !realm.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            || realm.contains('"')
            || realm.contains('\\')
        {
            return Err(err(
                "realm",
                "must be printable ASCII without quotes or backslashes",
            ));
        }

        let startup_wait_ms = self.startup_wait_ms.unwrap_or(DEFAULT_STARTUP_WAIT_MS);
        if startup_wait_ms > 60_000 {
            return Err(err("startup_wait_ms", "must be at most 60000"));
        }

        Ok(Config {
            providers,
            from_headers,
            realm,
            startup_wait_ms,
        })
    }
}

impl RawProvider {
    fn validate(self, at: &str) -> Result<Provider, ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(
                format!("{at}.name"),
                "must be non-empty and use only letters, digits, '-' and '_'",
            ));
        }
        let issuers = match (&self.user_pool_id, &self.issuer) {
            (_, Some(issuer)) => {
                if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                    return Err(err(
                        format!("{at}.issuer"),
                        "must be an http(s) URL, compared exactly with the token's `iss`",
                    ));
                }
                if let Some(pool) = &self.user_pool_id {
                    pool_region(pool).ok_or_else(|| bad_pool(at))?;
                }
                vec![issuer.clone()]
            }
            (Some(pool), None) => {
                let region = pool_region(pool).ok_or_else(|| bad_pool(at))?;
                cognito_issuers(region, pool)
            }
            (None, None) => {
                return Err(err(
                    format!("{at}.user_pool_id"),
                    "either user_pool_id or issuer is required",
                ));
            }
        };

        let cognito = self.user_pool_id.is_some();
        if cognito && self.client_ids.is_empty() {
            return Err(err(
                format!("{at}.client_ids"),
                "at least one app client id is required",
            ));
        }
        if !cognito && self.token_use.is_some() {
            return Err(err(
                format!("{at}.token_use"),
                "only applies to Cognito providers (with user_pool_id)",
            ));
        }
        if let Some(i) = self.client_ids.iter().position(|c| c.is_empty()) {
            return Err(err(format!("{at}.client_ids[{i}]"), "must not be empty"));
        }

        let token_use = self
            .token_use
            .unwrap_or_else(|| vec![TokenUse::Id, TokenUse::Access]);
        if token_use.is_empty() {
            return Err(err(
                format!("{at}.token_use"),
                "must list \"id\", \"access\" or both",
            ));
        }

        let algorithms = match self.algorithms {
            None => vec![jsonwebtoken::Algorithm::RS256],
            Some(names) if names.is_empty() => {
                return Err(err(format!("{at}.algorithms"), "must list at least one algorithm"));
            }
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    parse_algorithm(n).ok_or_else(|| {
                        err(
                            format!("{at}.algorithms[{i}]"),
                            format!("{n:?} is not allowed; use RS256, RS384, RS512, PS256, PS384 or PS512"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };

        let clock_skew_seconds = self
            .clock_skew_seconds
            .unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
        if clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
            return Err(err(
                format!("{at}.clock_skew_seconds"),
                format!("must be at most {MAX_CLOCK_SKEW_SECONDS}"),
            ));
        }

        let keys = match (self.jwks, self.local_jwks) {
            (Some(remote), None) => KeySource::Remote(remote.validate(&format!("{at}.jwks"))?),
            (None, Some(local)) => {
                let text = local.to_string();
                crate::jwks::KeySet::parse(text.as_bytes())
                    .map_err(|e| err(format!("{at}.local_jwks"), e.to_string()))?;
                KeySource::Local(text)
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{at}.local_jwks"),
                    "set either jwks or local_jwks, not both",
                ))
            }
            (None, None) => {
                return Err(err(
                    format!("{at}.jwks"),
                    "either jwks or local_jwks is required",
                ))
            }
        };

        Ok(Provider {
            name: self.name,
            issuers,
            cognito,
            client_ids: self.client_ids,
            token_use,
            algorithms,
            keys,
            clock_skew_seconds,
        })
    }
}

impl RawJwks {
    fn validate(self, at: &str) -> Result<RemoteJwks, ConfigError> {
        if self.cluster.is_empty() {
            return Err(err(
                format!("{at}.cluster"),
                "must name the Envoy cluster that reaches the JWKS host",
            ));
        }
        let (authority, path) = split_uri(&self.uri)
            .ok_or_else(|| err(format!("{at}.uri"), "must be an absolute http(s) URL such as https://cognito-idp.us-east-1.amazonaws.com/<pool>/.well-known/jwks.json"))?;
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(err(
                format!("{at}.timeout_ms"),
                "must be between 1 and 60000",
            ));
        }
        let refresh_interval_seconds = self
            .refresh_interval_seconds
            .unwrap_or(DEFAULT_REFRESH_SECONDS);
        if !(1..=86_400).contains(&refresh_interval_seconds) {
            return Err(err(
                format!("{at}.refresh_interval_seconds"),
                "must be between 1 and 86400",
            ));
        }
        Ok(RemoteJwks {
            cluster: self.cluster,
            authority,
            path,
            uri: self.uri,
            timeout_ms,
            refresh_interval_seconds,
        })
    }
}

fn validate_header(h: HeaderSource, at: &str) -> Result<HeaderSource, ConfigError> {
    let valid_name = !h.name.is_empty()
        && h.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(err(
            format!("{at}.name"),
            "must be a header name (letters, digits, '-', '_')",
        ));
    }
    Ok(HeaderSource {
        name: h.name.to_ascii_lowercase(),
        value_prefix: h.value_prefix,
    })
}

fn bad_pool(at: &str) -> ConfigError {
    err(
        format!("{at}.user_pool_id"),
        "must look like <region>_<id>, e.g. us-east-1_Abc123",
    )
}

/// The region of a user pool id such as `us-east-1_Abc123`.
fn pool_region(pool: &str) -> Option<&str> {
    let (region, id) = pool.split_once('_')?;
    let region_ok = region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (region_ok && id_ok).then_some(region)
}

/// Both issuer forms Cognito uses for a pool.
fn cognito_issuers(region: &str, pool: &str) -> Vec<String> {
    vec![
        format!("https://cognito-idp.{region}.amazonaws.com/{pool}"),
        format!("https://issuer-cognito-idp.{region}.amazonaws.com/{pool}"),
    ]
}

fn parse_algorithm(name: &str) -> Option<jsonwebtoken::Algorithm> {
    use jsonwebtoken::Algorithm::*;
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        _ => return None,
    })
}

/// `https://host[:port]/path?query` → (`host[:port]`, `/path?query`).
fn split_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let authority_ok = !authority.is_empty()
        && !authority.contains('@')
        && authority.bytes().all(|b| b.is_ascii_graphic());
    let path_ok = path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains('#');
    (authority_ok && path_ok).then(|| (authority.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
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
            "name": "bots", "issuer": "open-metadata.org-bots", "local_jwks": local,
        }]});
        assert_eq!(
            field_of(v.clone()),
            "providers[0].issuer",
            "issuer must be a URL"
        );
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
    fn uri_split() {
        assert_eq!(
            split_uri("http://127.0.0.1:9/a/b?c=d"),
            Some(("127.0.0.1:9".into(), "/a/b?c=d".into()))
        );
        assert_eq!(split_uri("https://host"), Some(("host".into(), "/".into())));
        assert_eq!(split_uri("https:///x"), None);
        assert_eq!(split_uri("https://u@h/x"), None);
    }
}
