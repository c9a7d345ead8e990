//! The `login` section: browser sign-in through Cognito's hosted UI (authorization code +
//! PKCE, a confidential app client).
//!
//! Secrets (the client secret, the cookie keys) come from the VM's environment
//! (`vm_config.environment_variables`), looked up through the `env` function the caller
//! passes in, so this module stays pure.

use super::{err, is_cookie_name, split_uri, ConfigError, Provider, TokenUse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use std::fmt;

const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// The cookies' name prefix: `__Host-` makes the browser refuse them from any other host, over
/// plain HTTP, with a `Domain` or with a path other than `/` (RFC 6265bis §4.1.3.2).
const DEFAULT_COOKIE_PREFIX: &str = "__Host-cea_";
/// With a shared `cookie_domain` (`__Host-` forbids `Domain`): still `Secure` only.
const DEFAULT_SHARED_COOKIE_PREFIX: &str = "__Secure-cea_";

const DEFAULT_CALLBACK_PATH: &str = "/oauth2/callback";
const DEFAULT_TOKEN_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_TOKEN_MAX_IN_FLIGHT: usize = 32;
const MAX_TOKEN_IN_FLIGHT: usize = 1_024;
/// How long a renewed session stays on hand for requests that still carry its predecessor
/// (Cognito keeps a rotated refresh token good for up to 60 s: `RetryGracePeriodSeconds`).
const DEFAULT_REFRESH_GRACE_SECONDS: u64 = 60;
const MAX_REFRESH_GRACE_SECONDS: u64 = 300;
/// The scope Cognito's `GetUser` requires of an access token: Cognito refuses any other token
/// with `NotAuthorizedException` "Access Token does not have required scopes".
pub const ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";
/// The length of an XChaCha20-Poly1305 key.
pub const COOKIE_KEY_BYTES: usize = 32;

/// Browser sign-in, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// Index of the provider whose ID tokens the sign-in yields.
    pub provider: usize,
    pub client_id: String,
    pub client_secret: Secret,
    /// The key cookies are sealed with, then the keys they may still be opened with.
    pub cookie_keys: Vec<CookieKey>,
    /// `https://<domain>/oauth2/authorize`.
    pub authorize_url: String,
    /// `https://<domain>/logout`.
    pub logout_url: String,
    /// `/oauth2/revoke` on the token endpoint's host: where logout revokes the refresh token.
    pub revoke_path: String,
    /// The token endpoint, reached through an Envoy cluster.
    pub token: TokenEndpoint,
    pub callback_path: String,
    pub logout_path: Option<String>,
    /// Where Cognito's `/logout` sends the browser back to (`logout_uri`), a path on this host.
    pub post_logout_path: String,
    /// Space-separated, for the `scope` parameter.
    pub scopes: String,
    pub cookie_prefix: String,
    pub cookie_domain: Option<String>,
    /// `https`, or `http` for a local test setup: the scheme of `redirect_uri`.
    pub external_scheme: String,
    /// Whether a request allowed on its session also carries `Authorization: Bearer <ID token>`
    /// upstream, for applications that verify tokens themselves.
    pub forward_id_token: bool,
    /// A session whose ID token expires within this many seconds is refreshed (with its
    /// refresh token) before the request goes on.
    pub refresh_before_seconds: u64,
    /// How long a renewed session is kept in the process for requests that still carry the
    /// session it renewed (parallel requests, or a rotated refresh token's predecessor).
    pub refresh_grace_seconds: u64,
    /// The provider has an `online_check`: sessions keep their access token (sealed with the
    /// rest), the sign-in asks for the scope `GetUser` requires, and browser sessions are
    /// checked online as bearer access tokens are.
    pub online: bool,
    /// What the glue should log once at start-up (an inline secret).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEndpoint {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    /// Calls (code exchanges, refreshes, revocations) under way per worker beyond which a
    /// request that needs one more gets 503.
    pub max_in_flight: usize,
}

/// A secret value; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A 32-byte cookie key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieKey(pub [u8; COOKIE_KEY_BYTES]);

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieKey(…)")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    provider: String,
    client_id: String,
    client_secret_env: Option<String>,
    client_secret: Option<String>,
    cookie_key_env: String,
    previous_cookie_key_env: Option<String>,
    domain: String,
    token_cluster: String,
    token_timeout_ms: Option<u64>,
    token_max_in_flight: Option<usize>,
    callback_path: Option<String>,
    logout_path: Option<String>,
    post_logout_path: Option<String>,
    scopes: Option<Vec<String>>,
    cookie_prefix: Option<String>,
    cookie_domain: Option<String>,
    external_scheme: Option<String>,
    #[serde(default)]
    forward_id_token: bool,
    refresh_before_seconds: Option<u64>,
    refresh_grace_seconds: Option<u64>,
}

impl RawLogin {
    pub(super) fn validate(
        self,
        providers: &[Provider],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Login, ConfigError> {
        let mut warnings = Vec::new();
        let provider = providers
            .iter()
            .position(|p| p.name == self.provider)
            .ok_or_else(|| err("login.provider", "must name one of the providers"))?;
        let p = providers
            .get(provider)
            .ok_or_else(|| err("login.provider", "must name one of the providers"))?;
        if !p.client_ids.contains(&self.client_id) {
            return Err(err(
                "login.client_id",
                "must be one of the provider's client_ids (the ID tokens' aud)",
            ));
        }
        if p.cognito && !p.token_use.contains(&TokenUse::Id) {
            return Err(err(
                "login.provider",
                "the provider must accept ID tokens (token_use includes \"id\")",
            ));
        }
        let client_secret = match (self.client_secret_env, self.client_secret) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "login.client_secret",
                    "set either client_secret_env or client_secret, not both",
                ))
            }
            (None, None) => {
                return Err(err(
                    "login.client_secret_env",
                    "must name the VM environment variable that holds the app client's secret",
                ))
            }
            (Some(name), None) => Secret(from_env(env, &name, "login.client_secret_env")?),
            (None, Some(inline)) if inline.is_empty() => {
                return Err(err("login.client_secret", "must not be empty"))
            }
            (None, Some(inline)) => {
                warnings.push(
                    "login.client_secret is set inline in the configuration: prefer \
                     client_secret_env (vm_config.environment_variables, from a Secret)"
                        .to_string(),
                );
                Secret(inline)
            }
        };
        let mut cookie_keys = vec![cookie_key(
            env,
            &self.cookie_key_env,
            "login.cookie_key_env",
        )?];
        if let Some(name) = &self.previous_cookie_key_env {
            cookie_keys.push(cookie_key(env, name, "login.previous_cookie_key_env")?);
        }

        let domain = self.domain.trim_end_matches('/');
        let (authority, _) = split_uri(domain)
            .filter(|(_, path)| path == "/" && !domain.contains('?'))
            .ok_or_else(|| {
                err(
                    "login.domain",
                    "must be the user pool domain as an http(s) URL without a path, \
                     e.g. https://auth.example.com or https://<prefix>.auth.<region>.amazoncognito.com",
                )
            })?;
        if self.token_cluster.is_empty() {
            return Err(err(
                "login.token_cluster",
                "must name the Envoy cluster that reaches the user pool domain",
            ));
        }
        let timeout_ms = self.token_timeout_ms.unwrap_or(DEFAULT_TOKEN_TIMEOUT_MS);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(err("login.token_timeout_ms", "must be between 1 and 60000"));
        }
        let max_in_flight = self
            .token_max_in_flight
            .unwrap_or(DEFAULT_TOKEN_MAX_IN_FLIGHT);
        if !(1..=MAX_TOKEN_IN_FLIGHT).contains(&max_in_flight) {
            return Err(err(
                "login.token_max_in_flight",
                format!("must be between 1 and {MAX_TOKEN_IN_FLIGHT}"),
            ));
        }
        let callback_path = plain_path(
            self.callback_path,
            DEFAULT_CALLBACK_PATH,
            "login.callback_path",
        )?;
        let logout_path = self
            .logout_path
            .map(|p| plain_path(Some(p), "/", "login.logout_path"))
            .transpose()?;
        if logout_path.as_deref() == Some(callback_path.as_str()) {
            return Err(err("login.logout_path", "must differ from callback_path"));
        }
        let post_logout_path = plain_path(self.post_logout_path, "/", "login.post_logout_path")?;
        let mut scopes = match self.scopes {
            None => DEFAULT_SCOPES.map(str::to_string).to_vec(),
            Some(list) => list,
        };
        if let Some(i) = scopes.iter().position(|s| !is_scope(s)) {
            return Err(err(
                format!("login.scopes[{i}]"),
                "must be a scope name (visible ASCII, no quotes or backslashes)",
            ));
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(err(
                "login.scopes",
                "must include openid (for the ID token)",
            ));
        }
        // A session is checked online with its access token, which Cognito's GetUser answers
        // only when it carries the admin scope: ask for it (the app client must allow it).
        let online = p.online_check.is_some();
        if online && !scopes.iter().any(|s| s == ADMIN_SCOPE) {
            scopes.push(ADMIN_SCOPE.to_string());
        }
        let cookie_domain = self.cookie_domain;
        if let Some(d) = &cookie_domain {
            let ok = !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(err(
                    "login.cookie_domain",
                    "must be a host name such as example.com",
                ));
            }
        }
        let cookie_prefix = cookie_prefix(self.cookie_prefix, cookie_domain.is_some())?;
        let refresh_before_seconds = self.refresh_before_seconds.unwrap_or(60);
        if refresh_before_seconds > 3600 {
            return Err(err("login.refresh_before_seconds", "must be at most 3600"));
        }
        let refresh_grace_seconds = self
            .refresh_grace_seconds
            .unwrap_or(DEFAULT_REFRESH_GRACE_SECONDS);
        if refresh_grace_seconds > MAX_REFRESH_GRACE_SECONDS {
            return Err(err(
                "login.refresh_grace_seconds",
                format!("must be at most {MAX_REFRESH_GRACE_SECONDS}"),
            ));
        }
        let external_scheme = self.external_scheme.unwrap_or_else(|| "https".into());
        if external_scheme != "https" && external_scheme != "http" {
            return Err(err("login.external_scheme", "must be https or http"));
        }
        Ok(Login {
            provider,
            client_id: self.client_id,
            client_secret,
            cookie_keys,
            authorize_url: format!("{domain}/oauth2/authorize"),
            logout_url: format!("{domain}/logout"),
            revoke_path: "/oauth2/revoke".into(),
            token: TokenEndpoint {
                cluster: self.token_cluster,
                authority,
                path: "/oauth2/token".into(),
                timeout_ms,
                max_in_flight,
            },
            callback_path,
            logout_path,
            post_logout_path,
            scopes: scopes.join(" "),
            cookie_prefix,
            cookie_domain,
            external_scheme,
            forward_id_token: self.forward_id_token,
            refresh_before_seconds,
            refresh_grace_seconds,
            online,
            warnings,
        })
    }
}

/// The cookies' name prefix. A name another host of the site can set is attacker input, so the
/// prefix is one the browser guards: `__Host-` (host-only, `Path=/`, `Secure`), or with a shared
/// `cookie_domain`, where `__Host-` is impossible, `__Secure-` (still `Secure`).
fn cookie_prefix(prefix: Option<String>, shared: bool) -> Result<String, ConfigError> {
    let field = "login.cookie_prefix";
    let prefix = prefix.unwrap_or_else(|| {
        if shared {
            DEFAULT_SHARED_COOKIE_PREFIX
        } else {
            DEFAULT_COOKIE_PREFIX
        }
        .into()
    });
    if !is_cookie_name(&prefix) {
        return Err(err(
            field,
            "must be a cookie name (visible ASCII, no separators)",
        ));
    }
    match (
        shared,
        prefix.starts_with("__Host-"),
        prefix.starts_with("__Secure-"),
    ) {
        (false, true, _) => Ok(prefix),
        (false, false, _) => Err(err(
            field,
            "must start with __Host- (the browser then refuses these cookies from any other host \
             of the site), e.g. __Host-cea_",
        )),
        (true, false, true) => Ok(prefix),
        (true, _, _) => Err(err(
            field,
            "with cookie_domain must start with __Secure- (__Host- cookies cannot have a \
             Domain), e.g. __Secure-cea_",
        )),
    }
}

fn from_env(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    field: &str,
) -> Result<String, ConfigError> {
    match env(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(err(
            field,
            format!(
                "environment variable {name} is not set in the VM \
                 (vm_config.environment_variables)"
            ),
        )),
    }
}

/// A key: 32 bytes in base64 (standard or URL-safe, padded or not).
fn cookie_key(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    field: &str,
) -> Result<CookieKey, ConfigError> {
    let value = from_env(env, name, field)?;
    let value = value.trim();
    let bytes = STANDARD
        .decode(value)
        .or_else(|_| URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
        .ok()
        .and_then(|b| <[u8; COOKIE_KEY_BYTES]>::try_from(b).ok())
        .ok_or_else(|| {
            err(
                field,
                format!(
                    "environment variable {name} must hold 32 random bytes in base64 \
                     (openssl rand -base64 32)"
                ),
            )
        })?;
    Ok(CookieKey(bytes))
}

/// A path of visible ASCII that starts with a single `/`, without query or fragment.
fn plain_path(path: Option<String>, default: &str, field: &str) -> Result<String, ConfigError> {
    let path = path.unwrap_or_else(|| default.into());
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#\\%\"".contains(&b));
    if ok {
        Ok(path)
    } else {
        Err(err(
            field,
            "must be a path starting with a single '/', without query, fragment or '%'",
        ))
    }
}

fn is_scope(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
pub mod tests {
    use crate::config::Config;
    use serde_json::{json, Value};

    pub const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    pub const OLD_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    pub fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cret".into()),
            "KEY" => Some(KEY.into()),
            "OLD_KEY" => Some(OLD_KEY.into()),
            "SHORT" => Some("c2hvcnQ=".into()),
            _ => None,
        }
    }

    fn with_login(login: Value) -> Result<Config, crate::config::ConfigError> {
        let config = json!({
            "providers": [{ "name": "cognito", "user_pool_id": "us-east-1_Abc123",
                "client_ids": ["client1"],
                "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } }],
            "login": login,
        });
        Config::parse_with_env(config.to_string().as_bytes(), &env)
    }

    fn minimal() -> Value {
        json!({ "provider": "cognito", "client_id": "client1", "client_secret_env": "SECRET",
                "cookie_key_env": "KEY", "domain": "https://auth.example.com", "token_cluster": "auth" })
    }

    #[test]
    fn defaults_follow_cognito() {
        let login = with_login(minimal()).unwrap().login.unwrap();
        assert_eq!(
            login.authorize_url,
            "https://auth.example.com/oauth2/authorize"
        );
        assert_eq!(login.logout_url, "https://auth.example.com/logout");
        assert_eq!(
            (login.token.authority.as_str(), login.token.path.as_str()),
            ("auth.example.com", "/oauth2/token")
        );
        assert_eq!(login.scopes, "openid email profile");
        assert_eq!(login.callback_path, "/oauth2/callback");
        assert_eq!(login.client_secret.0, "s3cret");
        assert_eq!(login.cookie_keys.len(), 1);
        assert!(login.warnings.is_empty());
        assert!(
            !format!("{login:?}").contains("s3cret"),
            "secrets are not printed"
        );
    }

    #[test]
    fn an_inline_secret_is_accepted_with_a_warning() {
        let mut l = minimal();
        l.as_object_mut().unwrap().remove("client_secret_env");
        l["client_secret"] = "inline".into();
        let login = with_login(l).unwrap().login.unwrap();
        assert_eq!(login.client_secret.0, "inline");
        assert_eq!(login.warnings.len(), 1);
    }

    #[test]
    fn bad_login_values_are_refused_naming_the_field() {
        for (field, value, named) in [
            ("provider", json!("other"), "login.provider"),
            ("client_id", json!("client9"), "login.client_id"),
            (
                "client_secret_env",
                json!("MISSING"),
                "login.client_secret_env",
            ),
            ("client_secret", json!("x"), "login.client_secret"),
            ("cookie_key_env", json!("SHORT"), "login.cookie_key_env"),
            ("cookie_key_env", json!("MISSING"), "login.cookie_key_env"),
            (
                "previous_cookie_key_env",
                json!("SHORT"),
                "login.previous_cookie_key_env",
            ),
            ("domain", json!("auth.example.com"), "login.domain"),
            (
                "domain",
                json!("https://auth.example.com/x"),
                "login.domain",
            ),
            ("token_cluster", json!(""), "login.token_cluster"),
            ("token_timeout_ms", json!(0), "login.token_timeout_ms"),
            ("token_max_in_flight", json!(0), "login.token_max_in_flight"),
            (
                "token_max_in_flight",
                json!(1025),
                "login.token_max_in_flight",
            ),
            ("callback_path", json!("//evil"), "login.callback_path"),
            (
                "logout_path",
                json!("/oauth2/callback"),
                "login.logout_path",
            ),
            (
                "post_logout_path",
                json!("https://evil.example/"),
                "login.post_logout_path",
            ),
            ("scopes", json!(["email"]), "login.scopes"),
            ("scopes", json!(["openid", "a\"b"]), "login.scopes[1]"),
            ("cookie_prefix", json!("a;b"), "login.cookie_prefix"),
            ("cookie_prefix", json!("cea_"), "login.cookie_prefix"),
            (
                "cookie_prefix",
                json!("__Secure-cea_"),
                "login.cookie_prefix",
            ),
            ("cookie_prefix", json!("__host-cea_"), "login.cookie_prefix"),
            ("cookie_domain", json!("a;b"), "login.cookie_domain"),
            ("external_scheme", json!("ftp"), "login.external_scheme"),
            ("forward_id_token", json!("yes"), "login.forward_id_token"),
            (
                "refresh_before_seconds",
                json!(3601),
                "login.refresh_before_seconds",
            ),
            ("unknown", json!(1), "login"),
        ] {
            let mut l = minimal();
            l[field] = value;
            let e = with_login(l).unwrap_err();
            assert!(e.field.starts_with(named), "{field}: {e}");
        }
    }

    #[test]
    fn cookie_names_are_guarded_by_the_browser() {
        let login = with_login(minimal()).unwrap().login.unwrap();
        assert_eq!(login.cookie_prefix, "__Host-cea_");
        let mut l = minimal();
        l["cookie_domain"] = "example.com".into();
        let login = with_login(l.clone()).unwrap().login.unwrap();
        assert_eq!(login.cookie_prefix, "__Secure-cea_");
        // __Host- cookies cannot carry a Domain, so with one they would never be stored.
        l["cookie_prefix"] = "__Host-x_".into();
        let e = with_login(l).unwrap_err();
        assert_eq!(e.field, "login.cookie_prefix");
    }

    #[test]
    fn a_previous_key_is_kept_for_opening() {
        let mut l = minimal();
        l["previous_cookie_key_env"] = "OLD_KEY".into();
        let login = with_login(l).unwrap().login.unwrap();
        assert_eq!(login.cookie_keys.len(), 2);
        assert_ne!(login.cookie_keys[0], login.cookie_keys[1]);
    }
}
