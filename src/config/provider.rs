//! One token issuer: a Cognito user pool or a plain JWT issuer — its issuers, clients,
//! algorithms, keys, and what its tokens can prove (`Trust`).

use super::*;

const DEFAULT_TIMEOUT_MS: u64 = 3_000;
const DEFAULT_REFRESH_SECONDS: u64 = 600;
const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
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
    /// Tokens without `exp` are refused. Always true for a Cognito pool; a plain issuer may
    /// turn it off (`require_expiration: false`, OpenMetadata's "Unlimited" bot tokens).
    pub require_expiration: bool,
    /// Tokens this provider issued that are refused although they verify.
    pub revocation: revocation::Revocation,
    /// Access tokens checked with Cognito (`GetUser`), on `active` rules or every request.
    pub online_check: Option<OnlineCheck>,
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
pub(super) static STRICT_TRUST: Trust = Trust {
    name_claims: Vec::new(),
    username_case_sensitive: true,
    require_email_verified: true,
    machine_clients: Vec::new(),
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    name: String,
    user_pool_id: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    client_ids: Vec<String>,
    token_use: Option<Vec<TokenUse>>,
    algorithms: Option<Vec<String>>,
    jwks: Option<RawFetch>,
    local_jwks: Option<serde_json::Value>,
    clock_skew_seconds: Option<u64>,
    name_claims: Option<Vec<String>>,
    username_case_sensitive: Option<bool>,
    require_email_verified: Option<bool>,
    machine_clients: Option<Vec<String>>,
    require_expiration: Option<bool>,
    revoked: Option<revocation::RawRevoked>,
    revocation_list: Option<revocation::RawRevocationList>,
    online_check: Option<online::RawOnlineCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFetch {
    cluster: String,
    uri: String,
    timeout_ms: Option<u64>,
    refresh_interval_seconds: Option<u64>,
}

impl RawProvider {
    /// What this provider's tokens may prove (its `name_claims`, case sensitivity, email
    /// verification and machine clients), checked against what kind of issuer it is.
    pub(super) fn trust(
        &self,
        at: &str,
        require_email_verified: bool,
    ) -> Result<Trust, ConfigError> {
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

    pub(super) fn validate(self, at: &str) -> Result<Provider, ConfigError> {
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
            (Some(remote), None) => {
                KeySource::Remote(remote.validate(&format!("{at}.jwks"), &JWKS)?)
            }
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

        if cognito && self.require_expiration == Some(false) {
            return Err(err(
                format!("{at}.require_expiration"),
                "a Cognito pool's tokens always carry exp: only a plain issuer (without user_pool_id) may accept tokens without one",
            ));
        }
        let region = self.user_pool_id.as_deref().and_then(pool_region);
        let online_check = self
            .online_check
            .map(|o| o.validate(region, token_use.contains(&TokenUse::Access), at))
            .transpose()?;
        let revocation = revocation::validate(
            self.revoked,
            self.revocation_list,
            self.username_case_sensitive.unwrap_or(true),
            at,
        )?;

        Ok(Provider {
            name: self.name,
            issuers,
            cognito,
            client_ids: self.client_ids,
            token_use,
            algorithms,
            keys,
            clock_skew_seconds,
            require_expiration: self.require_expiration.unwrap_or(true),
            revocation,
            online_check,
        })
    }
}

/// What a remote document is, for [`RawFetch::validate`]'s defaults and messages.
pub(super) struct Fetched {
    /// What the cluster reaches, in "the Envoy cluster that reaches …".
    pub(super) host: &'static str,
    /// An example URL for the message about a bad `uri`.
    pub(super) example_uri: &'static str,
    pub(super) default_refresh_seconds: u64,
}

/// A provider's JWKS.
pub(super) const JWKS: Fetched = Fetched {
    host: "the JWKS host",
    example_uri: "https://cognito-idp.us-east-1.amazonaws.com/<pool>/.well-known/jwks.json",
    default_refresh_seconds: DEFAULT_REFRESH_SECONDS,
};

impl RawFetch {
    /// `cluster`, `uri`, `timeout_ms` and `refresh_interval_seconds` of a document fetched
    /// through an Envoy cluster (a JWKS, a revocation list), checked, naming `at.field`.
    pub(super) fn validate(self, at: &str, what: &Fetched) -> Result<RemoteJwks, ConfigError> {
        if self.cluster.is_empty() {
            return Err(err(
                format!("{at}.cluster"),
                format!("must name the Envoy cluster that reaches {}", what.host),
            ));
        }
        let (authority, path) = split_uri(&self.uri).ok_or_else(|| {
            err(
                format!("{at}.uri"),
                format!(
                    "must be an absolute http(s) URL such as {}",
                    what.example_uri
                ),
            )
        })?;
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(err(
                format!("{at}.timeout_ms"),
                "must be between 1 and 60000",
            ));
        }
        let refresh_interval_seconds = self
            .refresh_interval_seconds
            .unwrap_or(what.default_refresh_seconds);
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
pub(super) fn split_uri(uri: &str) -> Option<(String, String)> {
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
