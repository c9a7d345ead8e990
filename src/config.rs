//! The filter's JSON configuration: serde types, defaults and validation.
//!
//! `Config::parse` is the only way in. It refuses unknown fields and bad values with a
//! message that names the field (`providers[0].jwks.uri: …`), so Envoy can refuse to start.

use serde::Deserialize;
use std::fmt;

mod identity_headers;
mod online;
mod provider;
mod revocation;
mod rules;
pub mod values;
pub use identity_headers::{same_header_name, ClaimToHeader, IdentityHeaders};
pub use online::{OnlineCheck, WhenUnreachable};
use provider::*;
pub use provider::{KeySource, Provider, RemoteJwks, TokenUse, Trust};
pub use revocation::{RemoteList, Revocation};
use rules::*;
pub use rules::{Access, PathMatch, Requirement, Rule};
use values::*;
pub mod login;
pub use login::Login;

/// Tokens longer than `max_token_bytes` are refused before any parsing. The default fits a
/// Cognito ID token of a user in a hundred long-named groups with room to spare; the bound
/// stays well inside Envoy's default 60 KiB request-header limit.
const DEFAULT_MAX_TOKEN_BYTES: usize = 32 * 1024;
const MAX_TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

const DEFAULT_REALM: &str = "cognito-edge-auth";
const DEFAULT_STARTUP_WAIT_MS: u64 = 5_000;
const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 4096;
const MAX_TOKEN_CACHE_ENTRIES: usize = 1_000_000;
const MAX_TOKEN_CACHE_BYTES: usize = 1 << 30;
/// The default bound on what a worker's token cache may cost (`token_cache.max_bytes`).
pub const DEFAULT_TOKEN_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// `preferred_username` is not among them: users set it themselves.
const DEFAULT_PRINCIPAL_CLAIMS: [&str; 4] = ["email", "cognito:username", "username", "sub"];
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
    /// Cookies that may carry the token (exact names).
    pub from_cookies: Vec<String>,
    pub realm: String,
    /// How long a request may wait for a provider's first keys before it gets 503.
    pub startup_wait_ms: u64,
    /// Verified tokens remembered per worker (0: no cache).
    pub token_cache_entries: usize,
    /// What the remembered tokens may cost per worker, in bytes.
    pub token_cache_bytes: usize,
    /// Longer tokens are refused before any parsing.
    pub max_token_bytes: usize,
    /// Verify signatures with the host's native `verify_signature` when it has one.
    pub native_verification: bool,
    /// The level of the one line logged per denied request.
    pub denial_log_level: LogLevel,
    /// Who the caller is and what they may do: principal, domain, admins, route rules.
    pub policy: Policy,
    /// The identity headers set upstream (and always stripped from incoming requests).
    pub identity: IdentityHeaders,
    /// Whether the header that carried the token is forwarded upstream.
    pub forward: bool,
    /// CORS preflight requests (OPTIONS with Origin and Access-Control-Request-Method)
    /// pass without a token.
    pub bypass_cors_preflight: bool,
    /// Browser sign-in, when configured.
    pub login: Option<Login>,
    /// Report-only mode for the whole filter: a request it would refuse is logged, counted
    /// and forwarded instead (see [`crate::decision::Reported`]).
    pub report_only: bool,
}

/// The level of the one log line written per denied request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Off,
    Debug,
    Info,
    Warn,
}

/// A request header that may carry the token, after an optional prefix such as `Bearer `.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSource {
    pub name: String,
    #[serde(default)]
    pub value_prefix: String,
}

/// From verified claims to a principal, and the rules a request must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub principal: PrincipalSource,
    /// Lowercase; the domain of principals whose claim carries no `@`.
    pub principal_domain: Option<String>,
    pub enforce_principal_domain: bool,
    /// Lowercase; domains accepted besides `principal_domain`.
    pub allowed_domains: Vec<String>,
    /// What each provider's tokens can prove, in the order of `Config::providers`.
    pub trust: Vec<Trust>,
    /// Principal names, as configured (see `Identity::is_named` for how they compare).
    pub admin_principals: Vec<String>,
    /// `cognito:groups` members of any of these are admins.
    pub admin_groups: Vec<String>,
    pub rules: Vec<Rule>,
    /// What applies when no rule matches: any authenticated caller (fail closed).
    pub fallback: Access,
}

impl Policy {
    /// What the tokens of provider `index` can prove (nothing special for an unknown one).
    pub fn trust(&self, index: usize) -> &Trust {
        self.trust.get(index).unwrap_or(&STRICT_TRUST)
    }

    /// `principal_domain` or one of `allowed_domains` (lowercase `domain`).
    pub fn is_own_domain(&self, domain: &str) -> bool {
        self.principal_domain.as_deref() == Some(domain)
            || self.allowed_domains.iter().any(|d| d == domain)
    }
}

/// Where the principal comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSource {
    /// The first of these claims with a usable value.
    Claims(Vec<String>),
    /// Named claims: the principal from `username`, the email from `email` if set.
    Mapping {
        username: String,
        email: Option<String>,
    },
}

impl Config {
    /// Parses and validates the plugin configuration (the JSON in the wasm filter's
    /// `configuration`).
    pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
        Config::parse_with_env(json, &|_| None)
    }

    /// As [`Config::parse`], with `env` looking up the VM's environment variables (the
    /// `login` section's secrets).
    pub fn parse_with_env(
        json: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| ConfigError {
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        raw.validate(env)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    providers: Vec<RawProvider>,
    from_headers: Option<Vec<HeaderSource>>,
    #[serde(default)]
    from_cookies: Vec<String>,
    realm: Option<String>,
    startup_wait_ms: Option<u64>,
    token_cache: Option<RawTokenCache>,
    max_token_bytes: Option<usize>,
    denial_log_level: Option<LogLevel>,
    native_verification: Option<bool>,
    principal_claims: Option<Vec<String>>,
    principal_claim_mapping: Option<RawClaimMapping>,
    principal_domain: Option<String>,
    #[serde(default)]
    enforce_principal_domain: bool,
    #[serde(default)]
    allowed_domains: Vec<String>,
    require_email_verified: Option<bool>,
    #[serde(default)]
    admin_principals: Vec<String>,
    #[serde(default)]
    admin_groups: Vec<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
    path_case_sensitive: Option<bool>,
    #[serde(default)]
    bypass_cors_preflight: bool,
    forward: Option<bool>,
    identity_header_prefix: Option<String>,
    #[serde(default)]
    claim_to_headers: Vec<ClaimToHeader>,
    login: Option<login::RawLogin>,
    #[serde(default)]
    report_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimMapping {
    username: String,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenCache {
    max_entries: Option<usize>,
    max_bytes: Option<usize>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl RawConfig {
    fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        if self.providers.is_empty() {
            return Err(err("providers", "at least one provider is required"));
        }
        let mut providers: Vec<Provider> = Vec::with_capacity(self.providers.len());
        let mut trust = Vec::with_capacity(self.providers.len());
        let require_email_verified = self.require_email_verified.unwrap_or(true);
        for (i, raw) in self.providers.into_iter().enumerate() {
            let at = format!("providers[{i}]");
            trust.push(raw.trust(&at, require_email_verified)?);
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

        let from_cookies = self.from_cookies;
        if let Some(i) = from_cookies.iter().position(|c| !is_cookie_name(c)) {
            return Err(err(
                format!("from_cookies[{i}]"),
                "must be a cookie name (visible ASCII, no separators)",
            ));
        }
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

        let token_cache_entries = self
            .token_cache
            .as_ref()
            .and_then(|c| c.max_entries)
            .unwrap_or(DEFAULT_TOKEN_CACHE_ENTRIES);
        let token_cache_bytes = self
            .token_cache
            .as_ref()
            .and_then(|c| c.max_bytes)
            .unwrap_or(DEFAULT_TOKEN_CACHE_BYTES);
        if !(4096..=MAX_TOKEN_CACHE_BYTES).contains(&token_cache_bytes) {
            return Err(err(
                "token_cache.max_bytes",
                format!("must be between 4096 and {MAX_TOKEN_CACHE_BYTES}"),
            ));
        }
        if token_cache_entries > MAX_TOKEN_CACHE_ENTRIES {
            return Err(err(
                "token_cache.max_entries",
                format!("must be at most {MAX_TOKEN_CACHE_ENTRIES}"),
            ));
        }
        let max_token_bytes = self.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if !MAX_TOKEN_BYTES_RANGE.contains(&max_token_bytes) {
            return Err(err(
                "max_token_bytes",
                format!(
                    "must be between {} and {}",
                    MAX_TOKEN_BYTES_RANGE.start(),
                    MAX_TOKEN_BYTES_RANGE.end()
                ),
            ));
        }
        let startup_wait_ms = self.startup_wait_ms.unwrap_or(DEFAULT_STARTUP_WAIT_MS);
        if startup_wait_ms > 60_000 {
            return Err(err("startup_wait_ms", "must be at most 60000"));
        }

        let policy = Policy {
            principal: principal_source(self.principal_claims, self.principal_claim_mapping)?,
            principal_domain: self
                .principal_domain
                .map(|d| domain(&d, "principal_domain"))
                .transpose()?,
            enforce_principal_domain: self.enforce_principal_domain,
            allowed_domains: each(&self.allowed_domains, "allowed_domains", domain)?,
            trust,
            admin_principals: each(&self.admin_principals, "admin_principals", principal_name)?,
            admin_groups: each(&self.admin_groups, "admin_groups", group)?,
            rules: self
                .rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.validate(&format!("rules[{i}]"), self.path_case_sensitive))
                .collect::<Result<_, _>>()?,
            fallback: Access::Require(vec![Requirement::default()]),
        };
        if let Some(i) = policy.rules.iter().position(Rule::needs_active) {
            if providers.iter().all(|p| p.online_check.is_none()) {
                return Err(err(
                    format!("rules[{i}].require.active"),
                    "no provider has online_check: nothing could check the token",
                ));
            }
        }
        if policy.enforce_principal_domain
            && policy.principal_domain.is_none()
            && policy.allowed_domains.is_empty()
        {
            return Err(err(
                "enforce_principal_domain",
                "needs principal_domain or allowed_domains to enforce",
            ));
        }

        let identity =
            identity_headers::identity_headers(self.identity_header_prefix, self.claim_to_headers)?;
        if let Some((i, h)) = from_headers
            .iter()
            .enumerate()
            .find(|(_, h)| identity.strips(&h.name))
        {
            return Err(err(
                format!("from_headers[{i}].name"),
                format!(
                    "{} is an identity header (identity_header_prefix or claim_to_headers): \
                     it is stripped from every request",
                    h.name
                ),
            ));
        }

        let login = self
            .login
            .map(|l| l.validate(&providers, env))
            .transpose()?;
        Ok(Config {
            login,
            providers,
            from_headers,
            from_cookies,
            realm,
            startup_wait_ms,
            token_cache_entries,
            token_cache_bytes,
            max_token_bytes,
            native_verification: self.native_verification.unwrap_or(true),
            denial_log_level: self.denial_log_level.unwrap_or(LogLevel::Info),
            policy,
            identity,
            forward: self.forward.unwrap_or(true),
            bypass_cors_preflight: self.bypass_cors_preflight,
            report_only: self.report_only,
        })
    }
}

impl Config {
    /// Whether report-only mode is on anywhere: for the whole filter or for a rule.
    pub fn reports_anywhere(&self) -> bool {
        self.report_only || self.policy.rules.iter().any(|r| r.report_only)
    }
}

fn principal_source(
    claims: Option<Vec<String>>,
    mapping: Option<RawClaimMapping>,
) -> Result<PrincipalSource, ConfigError> {
    match (claims, mapping) {
        (Some(_), Some(_)) => Err(err(
            "principal_claim_mapping",
            "set either principal_claims or principal_claim_mapping, not both",
        )),
        (None, None) => Ok(PrincipalSource::Claims(
            DEFAULT_PRINCIPAL_CLAIMS
                .iter()
                .map(|c| c.to_string())
                .collect(),
        )),
        (Some(list), None) if list.is_empty() => {
            Err(err("principal_claims", "must list at least one claim"))
        }
        (Some(list), None) => Ok(PrincipalSource::Claims(each(
            &list,
            "principal_claims",
            claim_name,
        )?)),
        (None, Some(m)) => Ok(PrincipalSource::Mapping {
            username: claim_name(&m.username, "principal_claim_mapping.username")?,
            email: m
                .email
                .map(|e| claim_name(&e, "principal_claim_mapping.email"))
                .transpose()?,
        }),
    }
}

fn validate_header(h: HeaderSource, at: &str) -> Result<HeaderSource, ConfigError> {
    if !is_header_name(&h.name) {
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

/// A cookie name: an RFC 6265 token.
pub fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

#[cfg(test)]
mod tests;
