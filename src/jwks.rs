//! Parsing a JWKS document into a key set, and what counts as a usable key.
//!
//! A usable key has a `kid`, `kty: RSA`, `use: sig` or no `use`, an `alg` we know or none,
//! and a modulus of at least 2048 bits. Other keys are skipped (and reported), not fatal:
//! one odd key must not take the good ones down with it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;

/// JWKS documents larger than this are refused.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys beyond this count are ignored (Cognito serves two).
pub const MAX_KEYS: usize = 64;
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// The usable keys of one JWKS, looked up by `kid`.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<Key>,
}

#[derive(Clone)]
pub struct Key {
    pub kid: String,
    /// The `alg` the JWKS pins this key to, if any.
    pub alg: Option<Algorithm>,
    /// The key for the pure-Rust verifier, built once.
    pub public: RsaPublicKey,
    /// DER SubjectPublicKeyInfo, for the host's native verifier.
    pub spki_der: Vec<u8>,
    /// Identifies the key material (a kid can be reused for another key).
    pub fingerprint: u64,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    TooLarge(usize),
    NotJson(String),
    NoUsableKey(Vec<String>),
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::TooLarge(n) => {
                write!(f, "JWKS is {n} bytes, over the {MAX_JWKS_BYTES}-byte bound")
            }
            JwksError::NotJson(e) => {
                write!(f, "JWKS is not a JSON object with a `keys` array: {e}")
            }
            JwksError::NoUsableKey(skipped) => {
                write!(f, "JWKS has no usable key")?;
                if !skipped.is_empty() {
                    write!(f, " ({})", skipped.join("; "))?;
                }
                Ok(())
            }
        }
    }
}

/// A parsed key set, and why any keys were skipped (for the log).
pub struct Parsed {
    pub keys: KeySet,
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Parses a JWKS document. Fails when it is not a JWKS or has no usable key.
    pub fn parse(body: &[u8]) -> Result<Parsed, JwksError> {
        if body.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge(body.len()));
        }
        let doc: RawJwks =
            serde_json::from_slice(body).map_err(|e| JwksError::NotJson(e.to_string()))?;
        let mut keys: Vec<Key> = Vec::new();
        let mut skipped = Vec::new();
        for (i, value) in doc.keys.into_iter().enumerate() {
            if keys.len() >= MAX_KEYS {
                skipped.push(format!(
                    "keys after the first {MAX_KEYS} usable ones ignored"
                ));
                break;
            }
            match usable_key(value) {
                Ok(key) if keys.iter().any(|k| k.kid == key.kid) => {
                    skipped.push(format!("key {i}: duplicate kid"));
                }
                Ok(key) => keys.push(key),
                Err(why) => skipped.push(format!("key {i}: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey(skipped));
        }
        Ok(Parsed {
            keys: KeySet { keys },
            skipped,
        })
    }

    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn usable_key(value: serde_json::Value) -> Result<Key, &'static str> {
    let jwk: RawJwk = serde_json::from_value(value).map_err(|_| "not a JWK object")?;
    let kid = jwk.kid.filter(|k| !k.is_empty()).ok_or("no kid")?;
    if jwk.kty.as_deref() != Some("RSA") {
        return Err("kty is not RSA");
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some("RS256") => Some(Algorithm::RS256),
        Some("RS384") => Some(Algorithm::RS384),
        Some("RS512") => Some(Algorithm::RS512),
        Some("PS256") => Some(Algorithm::PS256),
        Some("PS384") => Some(Algorithm::PS384),
        Some("PS512") => Some(Algorithm::PS512),
        Some(_) => return Err("alg is not an RSA signature algorithm"),
    };
    let n = decode_uint(jwk.n.as_deref().ok_or("no modulus")?).ok_or("modulus is not base64url")?;
    let e =
        decode_uint(jwk.e.as_deref().ok_or("no exponent")?).ok_or("exponent is not base64url")?;
    let bits = significant_bits(&n);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err("modulus is not 2048 to 8192 bits");
    }
    if e.is_empty() || e.len() > 4 {
        return Err("exponent out of range");
    }
    Ok(Key {
        kid,
        alg,
        public: RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
            .map_err(|_| "not a valid RSA public key")?,

        fingerprint: std::hash::BuildHasher::hash_one(
            &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
            (&n, &e),
        ),
        spki_der: rsa_spki_der(&n, &e),
    })
}

fn decode_uint(b64: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).ok()?;
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).map(<[u8]>::to_vec)
}

fn significant_bits(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// The DER `SubjectPublicKeyInfo` of an RSA key, built once per key when the JWKS loads.
pub fn rsa_spki_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut rsa_key = der_integer(n);
    rsa_key.extend(der_integer(e));
    let rsa_key = der(0x30, &rsa_key);
    let mut bits = vec![0u8]; // no unused bits
    bits.extend(rsa_key);
    let mut spki = RSA_ALGORITHM.to_vec();
    spki.extend(der(0x03, &bits));
    der(0x30, &spki)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A positive DER INTEGER from big-endian bytes.
fn der_integer(be: &[u8]) -> Vec<u8> {
    let start = be
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(be.len().saturating_sub(1));
    let trimmed = be.get(start..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    der(0x02, &content)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A syntactically valid 2048-bit modulus (not a real key; parsing does not need one).
    pub fn fake_n() -> String {
        let mut n = vec![0xC3u8; 256];
        n[255] = 0x01;
        URL_SAFE_NO_PAD.encode(n)
    }

    /// A JWK that parses (its modulus is not a real key).
    pub fn fake_rsa_jwk(kid: &str) -> serde_json::Value {
        rsa(kid)
    }

    fn rsa(kid: &str) -> serde_json::Value {
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": fake_n(), "e": "AQAB" })
    }

    fn parse(v: serde_json::Value) -> Result<Parsed, JwksError> {
        KeySet::parse(v.to_string().as_bytes())
    }

    #[test]
    fn cognito_shaped_jwks_parses() {
        let p = parse(json!({ "keys": [rsa("a"), rsa("b")] })).unwrap();
        assert_eq!(p.keys.kids().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(p.keys.get("b").unwrap().alg, Some(Algorithm::RS256));
        assert!(p.keys.get("c").is_none());
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let mut enc = rsa("enc");
        enc["use"] = "enc".into();
        let mut ec = rsa("ec");
        ec["kty"] = "EC".into();
        let mut hs = rsa("hs");
        hs["alg"] = "HS256".into();
        let mut nokid = rsa("");
        nokid.as_object_mut().unwrap().remove("kid");
        let mut small = rsa("small");
        small["n"] = URL_SAFE_NO_PAD.encode([0xffu8; 128]).into();
        let mut noalg = rsa("noalg");
        noalg.as_object_mut().unwrap().remove("alg");
        noalg.as_object_mut().unwrap().remove("use");
        let p = parse(
            json!({ "keys": [enc, ec, hs, nokid, small, "text", rsa("good"), rsa("good"), noalg] }),
        )
        .unwrap();
        assert_eq!(p.keys.kids().collect::<Vec<_>>(), vec!["good", "noalg"]);
        assert_eq!(p.keys.get("noalg").unwrap().alg, None);
        assert_eq!(p.skipped.len(), 7, "{:?}", p.skipped);
        assert!(p.skipped[0].contains("use"));
        assert!(p.skipped[4].contains("2048"));
    }

    #[test]
    fn documents_without_usable_keys_are_refused() {
        assert!(matches!(
            parse(json!({ "keys": [] })),
            Err(JwksError::NoUsableKey(_))
        ));
        assert!(matches!(
            parse(json!({ "nokeys": [] })),
            Err(JwksError::NotJson(_))
        ));
        assert!(matches!(
            KeySet::parse(b"<html>"),
            Err(JwksError::NotJson(_))
        ));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(
            KeySet::parse(&big).err(),
            Some(JwksError::TooLarge(MAX_JWKS_BYTES + 1))
        );
    }

    #[test]
    fn key_count_is_bounded() {
        let keys: Vec<_> = (0..MAX_KEYS + 10).map(|i| rsa(&format!("k{i}"))).collect();
        let p = parse(json!({ "keys": keys })).unwrap();
        assert_eq!(p.keys.len(), MAX_KEYS);
    }

    #[test]
    fn openmetadata_shaped_jwks_parses_to_the_same_key() {
        use crate::test_tokens as t;
        let om = t::openmetadata_jwk("key_other", t::OM_KID);
        let n = om["n"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE.decode(n).unwrap();
        assert_eq!(
            (bytes.len(), bytes[0]),
            (257, 0),
            "two's complement: a leading zero byte"
        );
        assert!(n.ends_with('='), "padded base64url: {n}");
        assert_eq!(om["e"], "AQAB");
        let cognito = t::jwk("key_other", t::OM_KID);
        let a = KeySet::parse(json!({ "keys": [om] }).to_string().as_bytes())
            .unwrap()
            .keys;
        let b = KeySet::parse(json!({ "keys": [cognito] }).to_string().as_bytes())
            .unwrap()
            .keys;
        let (a, b) = (a.get(t::OM_KID).unwrap(), b.get(t::OM_KID).unwrap());
        assert_eq!(a.fingerprint, b.fingerprint, "the same key material");
        assert_eq!(a.spki_der, b.spki_der);
    }

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(der_integer(&[0x00, 0x7f]), vec![0x02, 1, 0x7f]);
        assert_eq!(der_integer(&[0x80]), vec![0x02, 2, 0x00, 0x80]);
        assert_eq!(der_integer(&[]), vec![0x02, 1, 0x00]);
        assert_eq!(&der(0x04, &[0; 300])[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
