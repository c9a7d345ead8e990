//! Verifying one token against the providers and their key sets: signature, then claims.
//!
//! The token's unverified `iss` picks the provider; everything else is checked only after
//! the signature holds, so an unauthenticated caller learns nothing about claim rules.

use crate::config::{Provider, TokenUse};
use crate::jwks::KeySet;
use crate::signature::SignatureVerifier;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A token without `exp` is kept in the token cache at most this long, then verified again
/// (and checked against the revocation lists on every request, cached or not).
pub const NO_EXP_CACHE_SECONDS: u64 = 300;

/// A token whose signature and claims hold, with the claims the rest of the filter uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// Index of the provider in the configuration.
    pub provider: usize,
    pub issuer: String,
    /// `None` for a provider that is not a Cognito pool.
    pub token_use: Option<TokenUse>,
    /// `aud` of an ID token, `client_id` of an access token; for a plain JWT issuer, the
    /// accepted `aud` if `client_ids` is configured.
    pub client_id: Option<String>,
    pub kid: String,
    /// `exp`, in whole seconds since the epoch; `None` for a token without one (accepted only
    /// by a provider with `require_expiration: false`).
    pub expires_at: Option<u64>,
    /// How long the token cache may keep the token: the first second at which `verify`
    /// refuses it (`exp` plus the provider's clock skew), or, for a token without `exp`,
    /// [`NO_EXP_CACHE_SECONDS`] after it was verified.
    pub valid_until: u64,
    /// Every claim of the payload, for the policy and `claim_to_headers`.
    pub all: Map<String, Value>,
}

/// Why a token was refused. Each reason is what the caller and the metrics see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// Not three base64url parts of JSON.
    Malformed,
    /// `alg` is `none`, HMAC, or not in the provider's allow-list.
    AlgorithmNotAllowed,
    /// A `crit` header asks for an extension we do not implement.
    CriticalHeader,
    MissingKid,
    /// No provider has the token's `iss`.
    UnknownIssuer,
    /// The provider's keys have not been loaded yet.
    NoKeys {
        provider: usize,
    },
    /// The provider's key set has no key with the token's `kid`.
    UnknownKid {
        provider: usize,
    },
    /// The JWKS pins the key to another algorithm.
    KeyAlgorithmMismatch,
    BadSignature,
    Expired,
    NotYetValid,
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type.
    InvalidClaim(&'static str),
    /// `token_use` is not one the provider accepts.
    TokenUse,
    /// `aud` (ID token) or `client_id` (access token) is not a configured client.
    Audience,
}

impl VerifyError {
    /// The `error_description` a client gets. Never contains the token.
    pub fn description(self) -> String {
        match self {
            VerifyError::Malformed => "the token is not a well-formed JWT".into(),
            VerifyError::AlgorithmNotAllowed => {
                "the token's signing algorithm is not allowed".into()
            }
            VerifyError::CriticalHeader => {
                "the token has critical header parameters that are not supported".into()
            }
            VerifyError::MissingKid => "the token has no key id (kid)".into(),
            VerifyError::UnknownIssuer => "the token's issuer is not accepted".into(),
            VerifyError::NoKeys { .. } => "signing keys are not available yet".into(),
            VerifyError::UnknownKid { .. } => "the token's signing key is not known".into(),
            VerifyError::KeyAlgorithmMismatch => {
                "the token's algorithm does not match its key".into()
            }
            VerifyError::BadSignature => "the token's signature is invalid".into(),
            VerifyError::Expired => "the token has expired".into(),
            VerifyError::NotYetValid => "the token is not valid yet".into(),
            VerifyError::MissingClaim(c) => format!("the token has no {c} claim"),
            VerifyError::InvalidClaim(c) => format!("the token's {c} claim is invalid"),
            VerifyError::TokenUse => "the token's token_use is not accepted".into(),
            VerifyError::Audience => "the token was not issued for an accepted client".into(),
        }
    }

    /// A short, stable name for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            VerifyError::Malformed | VerifyError::CriticalHeader | VerifyError::MissingKid => {
                "invalid"
            }
            VerifyError::MissingClaim(_) | VerifyError::InvalidClaim(_) => "invalid",
            VerifyError::AlgorithmNotAllowed | VerifyError::KeyAlgorithmMismatch => "invalid",
            VerifyError::UnknownKid { .. } | VerifyError::BadSignature => "invalid",
            VerifyError::UnknownIssuer => "issuer",
            VerifyError::NoKeys { .. } => "no_keys",
            VerifyError::Expired | VerifyError::NotYetValid => "expired",
            VerifyError::TokenUse | VerifyError::Audience => "audience",
        }
    }
}

/// Verifies `token` at time `now` (seconds since the epoch).
///
/// `keys[i]` is the key set of `providers[i]`, `None` while it has not been loaded.
pub fn verify(
    token: &str,
    providers: &[Provider],
    keys: &[Option<KeySet>],
    verifier: &dyn SignatureVerifier,
    now: u64,
) -> Result<Claims, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header: Header = decode_json(header_b64)?;
    let claims: Map<String, Value> = decode_json(payload_b64)?;

    let alg = header_algorithm(&header.alg)?;
    if header.crit.is_some() {
        return Err(VerifyError::CriticalHeader);
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(VerifyError::MissingKid)?;

    let issuer = string_claim(&claims, "iss")?;
    let (index, provider) = providers
        .iter()
        .enumerate()
        .find(|(_, p)| p.issuers.iter().any(|i| i == issuer))
        .ok_or(VerifyError::UnknownIssuer)?;
    if !provider.algorithms.contains(&alg) {
        return Err(VerifyError::AlgorithmNotAllowed);
    }
    let key_set = keys
        .get(index)
        .and_then(Option::as_ref)
        .ok_or(VerifyError::NoKeys { provider: index })?;
    let key = key_set
        .get(&kid)
        .ok_or(VerifyError::UnknownKid { provider: index })?;
    if key.alg.is_some_and(|pinned| pinned != alg) {
        return Err(VerifyError::KeyAlgorithmMismatch);
    }

    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let message = token.get(..signed_len).ok_or(VerifyError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| VerifyError::Malformed)?;
    if !verifier.verify(alg, key, message.as_bytes(), &signature) {
        return Err(VerifyError::BadSignature);
    }

    let expires_at = check_times(
        &claims,
        provider.clock_skew_seconds,
        now,
        provider.require_expiration,
    )?;
    let (token_use, client_id) = if provider.cognito {
        let token_use = check_token_use(&claims, provider)?;
        let client_id = match token_use {
            TokenUse::Access => check_client_id(&claims, provider)?,
            TokenUse::Id => check_audience(&claims, provider)?,
        };
        (Some(token_use), Some(client_id))
    } else if provider.client_ids.is_empty() {
        (None, None)
    } else {
        (None, Some(check_audience(&claims, provider)?))
    };
    Ok(Claims {
        provider: index,
        issuer: issuer.to_string(),
        token_use,
        client_id,
        kid,
        expires_at,
        valid_until: match expires_at {
            Some(exp) => exp.saturating_add(provider.clock_skew_seconds),
            None => now.saturating_add(NO_EXP_CACHE_SECONDS),
        },
        all: claims,
    })
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

fn decode_json<T: serde::de::DeserializeOwned>(b64: &str) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

/// Only RSA signature algorithms exist for us; `none` and HMAC are refused by name.
fn header_algorithm(alg: &str) -> Result<Algorithm, VerifyError> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        _ => Err(VerifyError::AlgorithmNotAllowed),
    }
}

fn string_claim<'c>(
    claims: &'c Map<String, Value>,
    name: &'static str,
) -> Result<&'c str, VerifyError> {
    match claims.get(name) {
        None => Err(VerifyError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

/// A NumericDate claim, if present; any other JSON type is invalid.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(VerifyError::InvalidClaim(name)),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

/// `exp` is required unless `require_exp` is false; `nbf` and `iat` may not lie in the
/// future. All with the skew. Returns `exp` in whole seconds, if the token has one.
fn check_times(
    claims: &Map<String, Value>,
    skew: u64,
    now: u64,
    require_exp: bool,
) -> Result<Option<u64>, VerifyError> {
    let now = now as f64;
    let skew = skew as f64;
    let exp = match numeric_date(claims, "exp")? {
        Some(exp) => Some(exp),
        None if require_exp => return Err(VerifyError::MissingClaim("exp")),
        None => None,
    };
    if exp.is_some_and(|exp| now >= exp + skew) {
        return Err(VerifyError::Expired);
    }
    for name in ["nbf", "iat"] {
        if numeric_date(claims, name)?.is_some_and(|t| t > now + skew) {
            return Err(VerifyError::NotYetValid);
        }
    }
    // Saturating float-to-int conversion: a huge exp becomes u64::MAX.
    Ok(exp.map(|exp| exp.max(0.0) as u64))
}

fn check_token_use(
    claims: &Map<String, Value>,
    provider: &Provider,
) -> Result<TokenUse, VerifyError> {
    let token_use = match string_claim(claims, "token_use")? {
        "id" => TokenUse::Id,
        "access" => TokenUse::Access,
        _ => return Err(VerifyError::TokenUse),
    };
    if provider.token_use.contains(&token_use) {
        Ok(token_use)
    } else {
        Err(VerifyError::TokenUse)
    }
}

/// Cognito access tokens have no `aud`; they name their app client in `client_id`.
fn check_client_id(
    claims: &Map<String, Value>,
    provider: &Provider,
) -> Result<String, VerifyError> {
    let client = string_claim(claims, "client_id")?;
    if provider.client_ids.iter().any(|id| id == client) {
        Ok(client.to_string())
    } else {
        Err(VerifyError::Audience)
    }
}

/// `aud` (a string or an array of strings) must hold one of the configured clients.
fn check_audience(claims: &Map<String, Value>, provider: &Provider) -> Result<String, VerifyError> {
    let accepted = |c: &&str| provider.client_ids.iter().any(|id| id == c);
    let found = match claims.get("aud") {
        None => return Err(VerifyError::MissingClaim("aud")),
        Some(Value::String(aud)) => Some(aud.as_str()).filter(accepted),
        Some(Value::Array(auds)) => {
            let strings: Option<Vec<&str>> = auds.iter().map(Value::as_str).collect();
            strings
                .ok_or(VerifyError::InvalidClaim("aud"))?
                .into_iter()
                .find(accepted)
        }
        Some(_) => return Err(VerifyError::InvalidClaim("aud")),
    };
    found.map(str::to_string).ok_or(VerifyError::Audience)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::signature::PureRust;

    use crate::test_tokens as tokens;
    use serde_json::json;
    pub use tokens::{b64, hs256_with_public_key, jwks, sign, tamper_signature, unsigned, with};

    pub const NOW: u64 = 1_800_000_000;

    pub fn id_claims() -> Value {
        tokens::id_claims(NOW)
    }

    pub fn access_claims() -> Value {
        tokens::access_claims(NOW)
    }

    pub fn config() -> Config {
        Config::parse(
            json!({ "providers": [{
                "name": "cognito", "user_pool_id": tokens::POOL, "client_ids": ["client1", "client2"],
                "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" }
            }]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    pub fn keys() -> Vec<Option<KeySet>> {
        let doc = jwks(&[("key1", "k1"), ("key2", "k2")]);
        vec![Some(KeySet::parse(doc.as_bytes()).unwrap().keys)]
    }

    fn check(token: &str) -> Result<Claims, VerifyError> {
        verify(token, &config().providers, &keys(), &PureRust, NOW)
    }

    #[test]
    fn valid_id_and_access_tokens() {
        let c = check(&sign("key1", "k1", &id_claims())).unwrap();
        assert_eq!(
            (c.token_use, c.client_id.as_deref(), c.kid.as_str()),
            (Some(TokenUse::Id), Some("client1"), "k1")
        );
        assert_eq!(c.expires_at, Some(NOW + 3600));
        assert_eq!(c.all["email"], "alice@example.com");
        let c = check(&sign("key2", "k2", &access_claims())).unwrap();
        assert_eq!(
            (c.token_use, c.client_id.as_deref()),
            (Some(TokenUse::Access), Some("client1"))
        );
    }

    #[test]
    fn a_plain_jwt_issuer_skips_the_cognito_checks() {
        let bots = |client_ids: serde_json::Value| {
            Config::parse(
                json!({ "providers": [{ "name": "bots", "issuer": "https://app.example.com",
                    "client_ids": client_ids, "local_jwks": serde_json::from_str::<Value>(&jwks(&[("key1", "b1")])).unwrap() }]})
                .to_string()
                .as_bytes(),
            )
            .unwrap()
        };
        let claims =
            json!({ "iss": "https://app.example.com", "sub": "ingestion-bot", "exp": NOW + 60 });
        let token = sign("key1", "b1", &claims);
        let doc = jwks(&[("key1", "b1")]);
        let keys = vec![Some(KeySet::parse(doc.as_bytes()).unwrap().keys)];
        let c = verify(&token, &bots(json!([])).providers, &keys, &PureRust, NOW).unwrap();
        assert_eq!((c.token_use, c.client_id), (None, None));
        let audience = bots(json!(["app"]));
        assert_eq!(
            verify(&token, &audience.providers, &keys, &PureRust, NOW),
            Err(VerifyError::MissingClaim("aud"))
        );
        let with_aud = sign("key1", "b1", &with(claims, "aud", "app".into()));
        assert_eq!(
            verify(&with_aud, &audience.providers, &keys, &PureRust, NOW)
                .unwrap()
                .client_id
                .as_deref(),
            Some("app")
        );
    }

    #[test]
    fn the_second_cognito_issuer_form_is_accepted() {
        let iss = "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123";
        assert!(check(&sign("key1", "k1", &with(id_claims(), "iss", iss.into()))).is_ok());
    }

    #[test]
    fn time_claims_with_skew() {
        let at = |k: &str, t: u64| check(&sign("key1", "k1", &with(id_claims(), k, t.into())));
        assert!(at("exp", NOW - 59).is_ok(), "within the 60 s skew");
        assert_eq!(at("exp", NOW - 60), Err(VerifyError::Expired));
        assert_eq!(at("nbf", NOW + 61), Err(VerifyError::NotYetValid));
        assert!(at("nbf", NOW + 60).is_ok());
        assert_eq!(at("iat", NOW + 3000), Err(VerifyError::NotYetValid));
        let no_exp = with(id_claims(), "exp", Value::Null);
        assert_eq!(
            check(&sign("key1", "k1", &no_exp)),
            Err(VerifyError::MissingClaim("exp"))
        );
        let str_exp = with(id_claims(), "exp", "9999999999".into());
        assert_eq!(
            check(&sign("key1", "k1", &str_exp)),
            Err(VerifyError::InvalidClaim("exp"))
        );
        let huge = with(id_claims(), "exp", json!(1e300));
        assert_eq!(
            check(&sign("key1", "k1", &huge)).unwrap().expires_at,
            Some(u64::MAX)
        );
    }

    /// An OpenMetadata-style bots provider, with `require_expiration` as given (if any).
    pub fn bots(require_expiration: Option<bool>) -> (Config, Vec<Option<KeySet>>) {
        let doc = jwks(&[("key1", "om1")]);
        let mut p = json!({ "name": "bots", "issuer": "open-metadata.org",
            "local_jwks": serde_json::from_str::<Value>(&doc).unwrap() });
        if let Some(r) = require_expiration {
            p["require_expiration"] = r.into();
        }
        let config = Config::parse(json!({ "providers": [p] }).to_string().as_bytes()).unwrap();
        (
            config,
            vec![Some(KeySet::parse(doc.as_bytes()).unwrap().keys)],
        )
    }

    #[test]
    fn tokens_without_exp_only_where_the_provider_opted_in() {
        let unlimited = json!({ "iss": "open-metadata.org", "sub": "ingestion-bot",
            "isBot": true, "tokenType": "BOT", "iat": NOW - 86_400 * 400 });
        let token = sign("key1", "om1", &unlimited);
        for opt in [None, Some(true)] {
            let (config, keys) = bots(opt);
            assert_eq!(
                verify(&token, &config.providers, &keys, &PureRust, NOW),
                Err(VerifyError::MissingClaim("exp")),
                "require_expiration {opt:?}"
            );
        }
        let (config, keys) = bots(Some(false));
        let c = verify(&token, &config.providers, &keys, &PureRust, NOW).unwrap();
        assert_eq!(c.expires_at, None);
        assert_eq!(
            c.valid_until,
            NOW + NO_EXP_CACHE_SECONDS,
            "the cache keeps it for the bound, not forever"
        );
        // A token that has an exp is still held to it, and iat still may not be in the future.
        let expired = with(unlimited.clone(), "exp", (NOW - 61).into());
        assert_eq!(
            verify(
                &sign("key1", "om1", &expired),
                &config.providers,
                &keys,
                &PureRust,
                NOW
            ),
            Err(VerifyError::Expired)
        );
        let c = verify(
            &sign(
                "key1",
                "om1",
                &with(unlimited.clone(), "exp", (NOW + 10).into()),
            ),
            &config.providers,
            &keys,
            &PureRust,
            NOW,
        )
        .unwrap();
        assert_eq!((c.expires_at, c.valid_until), (Some(NOW + 10), NOW + 70));
        let future = with(unlimited.clone(), "iat", (NOW + 600).into());
        assert_eq!(
            verify(
                &sign("key1", "om1", &future),
                &config.providers,
                &keys,
                &PureRust,
                NOW
            ),
            Err(VerifyError::NotYetValid)
        );
        let str_exp = with(unlimited, "exp", "never".into());
        assert_eq!(
            verify(
                &sign("key1", "om1", &str_exp),
                &config.providers,
                &keys,
                &PureRust,
                NOW
            ),
            Err(VerifyError::InvalidClaim("exp"))
        );
    }

    #[test]
    fn issuer_client_and_token_use() {
        let wrong_iss = with(
            id_claims(),
            "iss",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other".into(),
        );
        assert_eq!(
            check(&sign("key1", "k1", &wrong_iss)),
            Err(VerifyError::UnknownIssuer)
        );
        let no_iss = with(id_claims(), "iss", Value::Null);
        assert_eq!(
            check(&sign("key1", "k1", &no_iss)),
            Err(VerifyError::MissingClaim("iss"))
        );
        let wrong_aud = with(id_claims(), "aud", "client9".into());
        assert_eq!(
            check(&sign("key1", "k1", &wrong_aud)),
            Err(VerifyError::Audience)
        );
        let aud_list = with(id_claims(), "aud", json!(["x", "client2"]));
        assert_eq!(
            check(&sign("key1", "k1", &aud_list))
                .unwrap()
                .client_id
                .as_deref(),
            Some("client2")
        );
        let aud_obj = with(id_claims(), "aud", json!({"client1": true}));
        assert_eq!(
            check(&sign("key1", "k1", &aud_obj)),
            Err(VerifyError::InvalidClaim("aud"))
        );
        let wrong_client = with(access_claims(), "client_id", "client9".into());
        assert_eq!(
            check(&sign("key1", "k1", &wrong_client)),
            Err(VerifyError::Audience)
        );
        // An access token does not pass on an aud claim: Cognito access tokens carry client_id.
        let access_aud = with(
            with(access_claims(), "client_id", Value::Null),
            "aud",
            "client1".into(),
        );
        assert_eq!(
            check(&sign("key1", "k1", &access_aud)),
            Err(VerifyError::MissingClaim("client_id"))
        );
        let refresh = with(id_claims(), "token_use", "refresh".into());
        assert_eq!(
            check(&sign("key1", "k1", &refresh)),
            Err(VerifyError::TokenUse)
        );
        let mut only_access = config();
        only_access.providers[0].token_use = vec![TokenUse::Access];
        let id = sign("key1", "k1", &id_claims());
        assert_eq!(
            verify(&id, &only_access.providers, &keys(), &PureRust, NOW),
            Err(VerifyError::TokenUse)
        );
    }

    #[test]
    fn signature_and_key_failures() {
        assert_eq!(
            check(&tamper_signature(&sign("key1", "k1", &id_claims()))),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(&sign("key1", "k2", &id_claims())),
            Err(VerifyError::BadSignature),
            "signed by another pool key"
        );
        assert_eq!(
            check(&sign("key_other", "k1", &id_claims())),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(&sign("key1", "nope", &id_claims())),
            Err(VerifyError::UnknownKid { provider: 0 })
        );
        let tampered = sign("key1", "k1", &id_claims());
        let mut parts: Vec<&str> = tampered.split('.').collect();
        let evil = b64(&with(id_claims(), "cognito:username", "mallory".into()));
        parts[1] = &evil;
        assert_eq!(check(&parts.join(".")), Err(VerifyError::BadSignature));
        let none = verify(
            &sign("key1", "k1", &id_claims()),
            &config().providers,
            &[None],
            &PureRust,
            NOW,
        );
        assert_eq!(none, Err(VerifyError::NoKeys { provider: 0 }));
    }

    #[test]
    fn forbidden_algorithms_and_headers() {
        let alg_none = unsigned(&json!({"alg": "none", "kid": "k1"}), &id_claims(), "");
        assert_eq!(check(&alg_none), Err(VerifyError::AlgorithmNotAllowed));
        assert_eq!(
            check(&hs256_with_public_key("key1", "k1", &id_claims())),
            Err(VerifyError::AlgorithmNotAllowed)
        );
        assert_eq!(
            check(&sign("key1", "", &id_claims())),
            Err(VerifyError::MissingKid)
        );
        let crit = unsigned(
            &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
            &id_claims(),
            "AAAA",
        );
        assert_eq!(check(&crit), Err(VerifyError::CriticalHeader));
        let ps = unsigned(&json!({"alg": "PS256", "kid": "k1"}), &id_claims(), "AAAA");
        assert_eq!(
            check(&ps),
            Err(VerifyError::AlgorithmNotAllowed),
            "not in the default allow-list"
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for t in ["", "a", "a.b", "a.b.c.d", "x.y.z", "....", "eyJ.eyJ.sig"] {
            assert_eq!(check(t), Err(VerifyError::Malformed), "{t}");
        }
        let not_object = unsigned(
            &json!({"alg": "RS256", "kid": "k1"}),
            &json!([1, 2]),
            "AAAA",
        );
        assert_eq!(check(&not_object), Err(VerifyError::Malformed));
    }

    #[test]
    fn descriptions_never_carry_the_token() {
        let token = sign("key1", "nope", &id_claims());
        let e = check(&token).unwrap_err();
        assert!(!e.description().contains(&token[..20]));
    }
}
