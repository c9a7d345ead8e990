//! Test keys and token minting, shared by the unit tests (`#[path]`) and the end-to-end tests.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

pub const POOL: &str = "us-east-1_Abc123";
pub const POOL_ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123";
pub const CLIENT: &str = "client1";

/// The PEM of a test key in `tests/keys` (key1, key2, key_other).
pub fn pem(name: &str) -> String {
    let path = format!("{}/tests/keys/{name}.pem", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The public JWK of a test key, as Cognito publishes it.
pub fn jwk(key: &str, kid: &str) -> Value {
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem(key)).unwrap();
    json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    })
}

/// A JWKS document holding the given (key, kid) pairs.
pub fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(k, kid)| jwk(k, kid)).collect();
    json!({ "keys": keys }).to_string()
}

/// An RS256 token over `claims`, signed with test key `key` and headed with `kid`.
pub fn sign(key: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(pem(key).as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A token with a hand-made header and no valid signature: `alg: none` and friends.
pub fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// HS256 with the RSA public key (PEM) as the HMAC secret: the classic key-confusion attack.
pub fn hs256_with_public_key(key: &str, kid: &str, claims: &Value) -> String {
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem(key)).unwrap();
    let public_pem = private
        .to_public_key()
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap()
}

/// Cognito-shaped ID token claims for `alice`, valid from `now` for an hour.
pub fn id_claims(now: u64) -> Value {
    json!({
        "sub": "7c1e0b1c-0000-4000-8000-000000000001", "iss": POOL_ISS, "aud": CLIENT, "token_use": "id",
        "cognito:username": "alice", "email": "alice@example.com", "email_verified": true,
        "iat": now - 10, "auth_time": now - 10, "exp": now + 3600,
    })
}

/// Cognito-shaped access token claims for `alice`: `client_id`, no `aud`.
pub fn access_claims(now: u64) -> Value {
    json!({
        "sub": "7c1e0b1c-0000-4000-8000-000000000001", "iss": POOL_ISS, "client_id": CLIENT,
        "token_use": "access", "username": "alice", "scope": "openid email",
        "iat": now - 10, "auth_time": now - 10, "exp": now + 3600,
    })
}

/// The scope Cognito's `GetUser` requires of an access token.
pub const ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

/// Access token claims as the SDK's `InitiateAuth` issues them: with [`ADMIN_SCOPE`], so that
/// the online check can judge them.
pub fn checkable_access_claims(now: u64) -> Value {
    with(access_claims(now), "scope", ADMIN_SCOPE.into())
}

/// ID token claims for the user with this (verified) email; `cognito:username` is its
/// part before the `@`.
pub fn id_claims_for(now: u64, email: &str) -> Value {
    let username = email.split('@').next().unwrap_or(email);
    let claims = with(id_claims(now), "email", email.into());
    with(claims, "cognito:username", username.into())
}

/// `claims` with `key` set to `value`, or removed when `value` is null.
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

/// The token with one character of its signature changed.
pub fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    format!("{head}.{first}{}", &sig[1..])
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// base64url of raw text (for JSON that `serde_json` would refuse to build).
pub fn b64_raw(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// An RS256 signature by test key `key` over a hand-made header and `claims`.
pub fn sign_with_header(key: &str, header: &Value, claims: &Value) -> String {
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem(key)).unwrap();
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = SigningKey::<sha2::Sha256>::new(private).sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// The key id OpenMetadata's sample configuration uses (`jwtTokenConfiguration.keyId`).
pub const OM_KID: &str = "Gb389a-9f76-gdjs-a92j-0242bk94356";
pub const OM_ISS: &str = "open-metadata.org";

/// A public JWK as OpenMetadata serves it at `/api/v1/system/config/jwks`: Java's
/// `BigInteger.toByteArray()` (two's complement, so a leading zero byte before a modulus whose
/// top bit is set) in padded base64url (`Base64.getUrlEncoder()`).
pub fn openmetadata_jwk(key: &str, kid: &str) -> Value {
    use base64::engine::general_purpose::URL_SAFE;
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&pem(key)).unwrap();
    let twos_complement = |mut be: Vec<u8>| {
        if be.first().is_some_and(|b| b & 0x80 != 0) {
            be.insert(0, 0);
        }
        be
    };
    json!({
        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": URL_SAFE.encode(twos_complement(private.n().to_bytes_be())),
        "e": URL_SAFE.encode(twos_complement(private.e().to_bytes_be())),
    })
}

/// OpenMetadata's JWKS document with one key.
pub fn openmetadata_jwks(key: &str, kid: &str) -> String {
    json!({ "keys": [openmetadata_jwk(key, kid)] }).to_string()
}

/// Claims of a token OpenMetadata signs for `name`: a bot (`BOT`) or a user's personal access
/// token (`PERSONAL_ACCESS`); `exp: None` is the expiry "Unlimited".
pub fn openmetadata_claims(now: u64, name: &str, token_type: &str, exp: Option<u64>) -> Value {
    let bot = token_type == "BOT";
    let mut claims = json!({
        "iss": OM_ISS, "sub": name, "username": name, "preferred_username": name,
        "email": format!("{name}@open-metadata.org"), "isBot": bot, "tokenType": token_type,
        "roles": if bot { json!(["IngestionBotRole"]) } else { json!(["DataConsumer"]) },
        "iat": now - 10,
    });
    if let Some(exp) = exp {
        claims["exp"] = exp.into();
    }
    claims
}
