//! The filter's JSON configuration: serde types, defaults and validation.
//!
//! `Config::parse` is the only way in. It refuses unknown fields and bad values with a
//! message that names the field (`providers[0].jwks.uri: …`), so Envoy can refuse to start.

use serde::Deserialize;
use std::fmt;

pub mod login;
pub use login::Login;

/// Tokens longer than `max_token_bytes` are refused before any parsing. The default fits a
/// Cognito ID token of a user in a hundred long-named groups with room to spare; the bound
/// stays well inside Envoy's default 60 KiB request-header limit.
const DEFAULT_MAX_TOKEN_BYTES: usize = 32 * 1024;
const MAX_TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

const DEFAULT_REALM: &str = "cognito-edge-auth";
const DEFAULT_TIMEOUT_MS: u64 = 3_000;
const DEFAULT_REFRESH_SECONDS: u64 = 600;
const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
const DEFAULT_STARTUP_WAIT_MS: u64 = 5_000;
const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 4096;
const MAX_TOKEN_CACHE_ENTRIES: usize = 1_000_000;
const MAX_TOKEN_CACHE_BYTES: usize = 1 << 30;
/// `preferred_username` is not among them: users set it themselves.
const DEFAULT_PRINCIPAL_CLAIMS: [&str; 4] = ["email", "cognito:username", "username", "sub"];
/// The claims a Cognito pool's `name_claims` may name: Cognito sets them and no user can
/// change them after sign-up.
const COGNITO_NAME_CLAIMS: [&str; 3] = ["sub", "cognito:username", "username"];
/// Claims that users can set themselves (OIDC standard claims, Cognito attributes users
/// may update): never a name that proves who someone is.
const USER_SET_CLAIMS: [&str; 9] = [
    "email",
    "preferred_username",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "middle_name",
    "profile",
    "website",
];
const DEFAULT_IDENTITY_HEADER_PREFIX: &str = "x-auth-";
/// The methods a rule may name.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];
/// Headers an identity header prefix must not cover: stripping them would break requests.
const PROTECTED_HEADERS: [&str; 10] = [
    "authorization",
    "cookie",
    "host",
    "content-type",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "x-envoy-internal",
    "x-real-ip",
];
/// Headers a claim may not be copied into: framing, routing and credentials.
const RESERVED_HEADERS: [&str; 13] = [
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "expect",
    "authorization",
    "cookie",
];

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

/// The level of the one log line written per denied request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Off,
    Debug,
    Info,
    Warn,
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

/// What a provider's tokens can prove about who the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Claims whose values name the caller for `admin_principals` and `principals`.
    pub name_claims: Vec<String>,
    /// Names compare byte for byte; when false, ignoring ASCII case.
    pub username_case_sensitive: bool,
    /// An `email` counts only with `email_verified` true.
    pub require_email_verified: bool,
    /// App clients whose user-less access tokens (client credentials) pass
    /// `enforce_principal_domain`.
    pub machine_clients: Vec<String>,
}

/// Trusts nothing beyond a verified email: what a provider gets by default.
static STRICT_TRUST: Trust = Trust {
    name_claims: Vec::new(),
    username_case_sensitive: true,
    require_email_verified: true,
    machine_clients: Vec::new(),
};

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

/// One route rule: the first rule whose path and method match decides the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub path: PathMatch,
    /// Upper case; empty for every method. `GET` also covers `HEAD`.
    pub methods: Vec<String>,
    /// `false`: the path is compared ASCII-case-insensitively (for Express, ASP.NET, IIS).
    pub case_sensitive: bool,
    pub access: Access,
}

/// Compared with the request path without its query string, percent escapes decoded
/// (see `policy::path`); the pattern is stored decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// No token needed; a token that is present must still be valid.
    Public,
    /// A valid token meeting at least one of these requirement sets.
    Require(Vec<Requirement>),
}

/// What an authenticated caller must also satisfy; every field that is set must hold.
/// The default (nothing set) is any authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirement {
    pub admin: bool,
    /// Principal names, as configured.
    pub principals: Vec<String>,
    /// Lowercase email domains.
    pub domains: Vec<String>,
    pub groups_any: Vec<String>,
    pub groups_all: Vec<String>,
    pub scopes_any: Vec<String>,
    pub scopes_all: Vec<String>,
}

/// The names of the identity headers, all lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// Every incoming header with this prefix is removed.
    pub prefix: String,
    pub principal: String,
    pub email: String,
    pub sub: String,
    pub groups: String,
    pub admin: String,
    pub token_use: String,
    pub client_id: String,
    pub issuer: String,
    pub provider: String,
    pub claim_to_headers: Vec<ClaimToHeader>,
}

/// Copy a claim into a request header, as Envoy's `jwt_authn` does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    pub header_name: String,
    pub claim_name: String,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimMapping {
    username: String,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    matcher: RawMatch,
    allow: Option<RawAllow>,
    require: Option<RawRequirement>,
    require_any: Option<Vec<RawRequirement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    exact: Option<String>,
    prefix: Option<String>,
    methods: Option<Vec<String>>,
    case_sensitive: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawAllow {
    Public,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    authenticated: Option<bool>,
    admin: Option<bool>,
    principals: Option<Vec<String>>,
    domains: Option<Vec<String>>,
    groups_any: Option<Vec<String>>,
    groups_all: Option<Vec<String>>,
    scopes_any: Option<Vec<String>>,
    scopes_all: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenCache {
    max_entries: Option<usize>,
    max_bytes: Option<usize>,
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
    name_claims: Option<Vec<String>>,
    username_case_sensitive: Option<bool>,
    require_email_verified: Option<bool>,
    machine_clients: Option<Vec<String>>,
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
            .unwrap_or(crate::cache::DEFAULT_MAX_BYTES);
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
        if policy.enforce_principal_domain
            && policy.principal_domain.is_none()
            && policy.allowed_domains.is_empty()
        {
            return Err(err(
                "enforce_principal_domain",
                "needs principal_domain or allowed_domains to enforce",
            ));
        }

        let identity = identity_headers(self.identity_header_prefix, self.claim_to_headers)?;
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
        })
    }
}

impl Config {
    /// Where requests may carry their token.
    pub fn token_sources(&self) -> crate::token::Sources<'_> {
        crate::token::Sources {
            headers: &self.from_headers,
            cookies: &self.from_cookies,
            max_bytes: self.max_token_bytes,
        }
    }
}

impl IdentityHeaders {
    /// Whether the filter owns incoming header `name`: it starts with the prefix or is a
    /// `claim_to_headers` name, ignoring case and reading `_` as `-` (CGI, WSGI and PHP
    /// upstreams turn both into the same `HTTP_X_AUTH_…` variable).
    pub fn strips(&self, name: &str) -> bool {
        name.get(..self.prefix.len())
            .is_some_and(|head| same_header_name(head, &self.prefix))
            || self
                .claim_to_headers
                .iter()
                .any(|c| same_header_name(&c.header_name, name))
    }
}

/// Header names that an upstream could read as the same: ASCII case ignored, `_` read as `-`.
pub fn same_header_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
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

impl RawRule {
    fn validate(self, at: &str, path_case_sensitive: Option<bool>) -> Result<Rule, ConfigError> {
        let m = self.matcher;
        let case_sensitive = m.case_sensitive.or(path_case_sensitive).unwrap_or(true);
        let path = match (m.exact, m.prefix) {
            (Some(p), None) => PathMatch::Exact(path_pattern(
                p,
                false,
                case_sensitive,
                &format!("{at}.match.exact"),
            )?),
            (None, Some(p)) => PathMatch::Prefix(path_pattern(
                p,
                true,
                case_sensitive,
                &format!("{at}.match.prefix"),
            )?),
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{at}.match"),
                    "set either exact or prefix, not both",
                ))
            }
            (None, None) => {
                return Err(err(
                    format!("{at}.match"),
                    "needs a path: exact or prefix (\"prefix\": \"/\" matches every path)",
                ))
            }
        };
        let methods = match m.methods {
            None => Vec::new(),
            Some(list) if list.is_empty() => {
                return Err(err(
                    format!("{at}.match.methods"),
                    "must list at least one method; leave it out to match every method",
                ))
            }
            Some(list) => each(&list, &format!("{at}.match.methods"), method)?,
        };
        let access = match (self.allow, self.require, self.require_any) {
            (Some(RawAllow::Public), None, None) => Access::Public,
            (None, Some(r), None) => Access::Require(vec![r.validate(&format!("{at}.require"))?]),
            (None, None, Some(list)) if list.is_empty() => {
                return Err(err(
                    format!("{at}.require_any"),
                    "must list at least one requirement",
                ))
            }
            (None, None, Some(list)) => Access::Require(
                list.into_iter()
                    .enumerate()
                    .map(|(i, r)| r.validate(&format!("{at}.require_any[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            (None, None, None) => {
                return Err(err(
                    at,
                    "needs an action: \"allow\": \"public\", require or require_any",
                ))
            }
            _ => return Err(err(at, "set only one of allow, require and require_any")),
        };
        Ok(Rule {
            path,
            methods,
            case_sensitive,
            access,
        })
    }
}

impl RawRequirement {
    fn validate(self, at: &str) -> Result<Requirement, ConfigError> {
        if self.authenticated == Some(false) {
            return Err(err(
                format!("{at}.authenticated"),
                "only true is meaningful; use \"allow\": \"public\" for a route without a token",
            ));
        }
        if self.admin == Some(false) {
            return Err(err(
                format!("{at}.admin"),
                "only true is meaningful; leave it out to admit non-admins",
            ));
        }
        let list = |v: Option<Vec<String>>,
                    name: &str,
                    check: fn(&str, &str) -> Result<String, ConfigError>| {
            let field = format!("{at}.{name}");
            match v {
                None => Ok(Vec::new()),
                Some(v) if v.is_empty() => Err(err(field, "must list at least one value")),
                Some(v) => each(&v, &field, check),
            }
        };
        let requirement = Requirement {
            admin: self.admin == Some(true),
            principals: list(self.principals, "principals", principal_name)?,
            domains: list(self.domains, "domains", domain)?,
            groups_any: list(self.groups_any, "groups_any", group)?,
            groups_all: list(self.groups_all, "groups_all", group)?,
            scopes_any: list(self.scopes_any, "scopes_any", scope)?,
            scopes_all: list(self.scopes_all, "scopes_all", scope)?,
        };
        if self.authenticated.is_none() && requirement == Requirement::default() {
            return Err(err(
                at,
                "must state at least one requirement, e.g. {\"authenticated\": true}",
            ));
        }
        Ok(requirement)
    }
}

fn identity_headers(
    prefix: Option<String>,
    claim_to_headers: Vec<ClaimToHeader>,
) -> Result<IdentityHeaders, ConfigError> {
    let prefix = prefix
        .unwrap_or_else(|| DEFAULT_IDENTITY_HEADER_PREFIX.into())
        .to_ascii_lowercase();
    if !is_header_name(&prefix) || !prefix.ends_with('-') || prefix.len() < 3 {
        return Err(err(
            "identity_header_prefix",
            "must be a header name prefix ending in '-', such as x-auth-",
        ));
    }
    if let Some(h) = PROTECTED_HEADERS.iter().find(|h| h.starts_with(&prefix)) {
        return Err(err(
            "identity_header_prefix",
            format!("would strip the {h} header from every request"),
        ));
    }
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let mut identity = IdentityHeaders {
        principal: name("principal"),
        email: name("email"),
        sub: name("sub"),
        groups: name("groups"),
        admin: name("admin"),
        token_use: name("token-use"),
        client_id: name("client-id"),
        issuer: name("issuer"),
        provider: name("provider"),
        prefix,
        claim_to_headers: Vec::with_capacity(claim_to_headers.len()),
    };
    let fixed = [
        &identity.principal,
        &identity.email,
        &identity.sub,
        &identity.groups,
        &identity.admin,
        &identity.token_use,
        &identity.client_id,
        &identity.issuer,
        &identity.provider,
    ]
    .map(String::clone);
    for (i, c) in claim_to_headers.into_iter().enumerate() {
        let at = format!("claim_to_headers[{i}]");
        let header_name = c.header_name.to_ascii_lowercase();
        if !is_header_name(&header_name) {
            return Err(err(
                format!("{at}.header_name"),
                "must be a header name (letters, digits, '-', '_')",
            ));
        }
        if RESERVED_HEADERS.contains(&header_name.as_str()) || fixed.contains(&header_name) {
            return Err(err(
                format!("{at}.header_name"),
                format!("{header_name} is reserved"),
            ));
        }
        if identity
            .claim_to_headers
            .iter()
            .any(|c| c.header_name == header_name)
        {
            return Err(err(format!("{at}.header_name"), "duplicate header name"));
        }
        if c.claim_name.is_empty() {
            return Err(err(format!("{at}.claim_name"), "must not be empty"));
        }
        identity.claim_to_headers.push(ClaimToHeader {
            header_name,
            claim_name: c.claim_name,
        });
    }
    Ok(identity)
}

/// Checks every value of a list with `check`, naming `field[i]` on failure.
fn each(
    values: &[String],
    field: &str,
    check: fn(&str, &str) -> Result<String, ConfigError>,
) -> Result<Vec<String>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| check(v, &format!("{field}[{i}]")))
        .collect()
}

/// Claim names also appear in error descriptions, inside a quoted string.
fn claim_name(v: &str, at: &str) -> Result<String, ConfigError> {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(err(
            at,
            "must be a claim name: printable ASCII without quotes or backslashes",
        ));
    }
    Ok(v.to_string())
}

fn principal_name(v: &str, at: &str) -> Result<String, ConfigError> {
    if v.contains('@') {
        return Err(err(
            at,
            "principals are names, the part before '@' (e.g. user1 for user1@example.com)",
        ));
    }
    if !crate::policy::is_name(v) {
        return Err(err(
            at,
            "must be a name of visible ASCII without quotes, ',', ';' or '\\' (a token's name never matches anything else)",
        ));
    }
    Ok(v.to_string())
}

fn group(v: &str, at: &str) -> Result<String, ConfigError> {
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(err(at, "must be a non-empty group name"));
    }
    Ok(v.to_string())
}

/// A scope-token (RFC 6749 §3.3).
fn scope(v: &str, at: &str) -> Result<String, ConfigError> {
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(err(
            at,
            "must be a scope: printable ASCII without spaces, quotes or backslashes",
        ));
    }
    Ok(v.to_string())
}

/// A DNS domain such as `example.com`, lowercased.
fn domain(v: &str, at: &str) -> Result<String, ConfigError> {
    let d = v.to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if d.len() > 253 || !d.split('.').all(label_ok) {
        let hint = if d.starts_with('@') {
            " (without the '@')"
        } else {
            ""
        };
        return Err(err(
            at,
            format!("must be a domain such as example.com{hint}"),
        ));
    }
    Ok(d)
}

fn method(v: &str, at: &str) -> Result<String, ConfigError> {
    if METHODS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(err(
            at,
            format!("{v:?} is not a method; use one of {}", METHODS.join(", ")),
        ))
    }
}

/// Paths are matched without the query string, so a pattern cannot hold one; and decoded,
/// so the pattern is stored decoded.
fn path_pattern(
    p: String,
    prefix: bool,
    case_sensitive: bool,
    at: &str,
) -> Result<String, ConfigError> {
    if !p.starts_with('/') || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            at,
            "must be a path starting with '/', printable ASCII without spaces",
        ));
    }
    if p.contains('?') || p.contains('#') {
        return Err(err(
            at,
            "must not hold '?' or '#': rules match the path without its query string",
        ));
    }
    crate::policy::path::pattern(&p, prefix, case_sensitive).map_err(|m| err(at, m))
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl RawProvider {
    /// What this provider's tokens may prove (its `name_claims`, case sensitivity, email
    /// verification and machine clients), checked against what kind of issuer it is.
    fn trust(&self, at: &str, require_email_verified: bool) -> Result<Trust, ConfigError> {
        let cognito = self.user_pool_id.is_some();
        let name_claims = match &self.name_claims {
            None => Vec::new(),
            Some(list) if list.is_empty() => return Err(err(
                format!("{at}.name_claims"),
                "must list at least one claim; leave it out to match names by verified email only",
            )),
            Some(list) => each(list, &format!("{at}.name_claims"), claim_name)?,
        };
        for (i, claim) in name_claims.iter().enumerate() {
            let field = format!("{at}.name_claims[{i}]");
            if USER_SET_CLAIMS.contains(&claim.as_str()) {
                return Err(err(
                    field,
                    format!("{claim} is set by users or is an email: it cannot name an administrator or a principal"),
                ));
            }
            if cognito && !COGNITO_NAME_CLAIMS.contains(&claim.as_str()) {
                return Err(err(
                    field,
                    format!(
                        "a user pool's names that users cannot change are {}",
                        COGNITO_NAME_CLAIMS.join(", ")
                    ),
                ));
            }
        }
        let machine_clients = self.machine_clients.clone().unwrap_or_default();
        if !machine_clients.is_empty() && !cognito {
            return Err(err(
                format!("{at}.machine_clients"),
                "only applies to Cognito providers (with user_pool_id)",
            ));
        }
        if let Some(i) = machine_clients
            .iter()
            .position(|c| !self.client_ids.contains(c))
        {
            return Err(err(
                format!("{at}.machine_clients[{i}]"),
                "must be one of the provider's client_ids",
            ));
        }
        Ok(Trust {
            name_claims,
            username_case_sensitive: self.username_case_sensitive.unwrap_or(true),
            require_email_verified: self
                .require_email_verified
                .unwrap_or(require_email_verified),
            machine_clients,
        })
    }

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
                // A pool's issuer is a URL (an emulator's, say); a plain JWT issuer's `iss` may
                // be any StringOrURI, such as OpenMetadata's default `open-metadata.org`.
                let url = issuer.starts_with("https://") || issuer.starts_with("http://");
                let plain = !issuer.is_empty() && issuer.bytes().all(|b| b.is_ascii_graphic());
                if self.user_pool_id.is_some() && !url {
                    return Err(err(
                        format!("{at}.issuer"),
                        "must be an http(s) URL for a user pool, compared exactly with the token's `iss`",
                    ));
                }
                if !plain {
                    return Err(err(
                        format!("{at}.issuer"),
                        "must be non-empty printable ASCII without spaces, compared exactly with the token's `iss`",
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
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
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
        v["claim_to_headers"] =
            serde_json::json!([{ "header_name": "x-jwt", "claim_name": "sub" }]);
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
}
