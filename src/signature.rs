//! Checking an RSA signature, natively through the host or in pure Rust.
//!
//! Envoy exports a foreign function, `verify_signature`, that verifies with BoringSSL: about
//! 50× faster than RSA in Rust inside V8. It takes a protobuf `VerifySignatureArguments`
//! (envoy `source/extensions/common/wasm/ext/verify_signature.proto`) and answers a
//! `VerifySignatureResult`; both are encoded here by hand. Hosts without it use the pure-Rust
//! verifier of `jsonwebtoken`.

use crate::jwks::Key;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use rsa::{Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Checks one signature. Implemented by the host-native verifier (in the glue) and by
/// [`PureRust`].
pub trait SignatureVerifier {
    /// Whether `signature` (decoded from the token's base64url) signs `message` with `key`.
    fn verify(&self, alg: Algorithm, key: &Key, message: &[u8], signature: &[u8]) -> bool;
}

/// RSA in Rust (RustCrypto's `rsa`, with each key's public key prepared once): works on any
/// host, but costs about a millisecond a verify inside V8.
pub struct PureRust;

impl SignatureVerifier for PureRust {
    fn verify(&self, alg: Algorithm, key: &Key, message: &[u8], sig: &[u8]) -> bool {
        let public = &key.public;
        let ok = match alg {
            Algorithm::RS256 => {
                public.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message), sig)
            }
            Algorithm::RS384 => {
                public.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(message), sig)
            }
            Algorithm::RS512 => {
                public.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(message), sig)
            }
            Algorithm::PS256 => public.verify(Pss::new::<Sha256>(), &Sha256::digest(message), sig),
            Algorithm::PS384 => public.verify(Pss::new::<Sha384>(), &Sha384::digest(message), sig),
            Algorithm::PS512 => public.verify(Pss::new::<Sha512>(), &Sha512::digest(message), sig),
            _ => return false,
        };
        ok.is_ok()
    }
}

/// The digest name `verify_signature` expects for an algorithm, for the PKCS#1 v1.5 ones it
/// can check. RSA-PSS is not supported by the host function.
pub fn host_hash(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::RS256 => Some("sha256"),
        Algorithm::RS384 => Some("sha384"),
        Algorithm::RS512 => Some("sha512"),
        _ => None,
    }
}

/// The `VerifySignatureArguments` message for the host function.
pub fn encode_arguments(hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(hash.len() + spki_der.len() + signature.len() + text.len() + 16);
    proto_bytes(&mut out, 1, hash.as_bytes());
    proto_bytes(&mut out, 2, spki_der);
    proto_bytes(&mut out, 3, signature);
    proto_bytes(&mut out, 4, text);
    out
}

/// `VerifySignatureResult.result`; `None` if the message cannot be read.
pub fn decode_result(mut msg: &[u8]) -> Option<bool> {
    let mut result = false;
    while let Some((&tag, rest)) = msg.split_first() {
        msg = rest;
        match (tag >> 3, tag & 7) {
            (1, 0) => {
                let (value, rest) = read_varint(msg)?;
                result = value != 0;
                msg = rest;
            }
            (_, 0) => msg = read_varint(msg)?.1,
            (_, 2) => {
                let (len, rest) = read_varint(msg)?;
                msg = rest.get(usize::try_from(len).ok()?..)?;
            }
            _ => return None,
        }
    }
    Some(result)
}

/// A known-good signature, for detecting once at start-up whether the host function works.
pub struct SelfTest {
    pub spki_der: Vec<u8>,
    pub text: &'static [u8],
    pub signature: Vec<u8>,
}

pub fn self_test() -> SelfTest {
    SelfTest {
        spki_der: STANDARD.decode(SELF_TEST_SPKI).unwrap_or_default(),
        text: SELF_TEST_TEXT,
        signature: STANDARD.decode(SELF_TEST_SIGNATURE).unwrap_or_default(),
    }
}

const SELF_TEST_TEXT: &[u8] = b"cognito-edge-auth self-test";
/// A throwaway 2048-bit public key (its private half was discarded) …
const SELF_TEST_SPKI: &str = "\
    MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxWGkQQ9TUqsFUZk0dcAS0iQ2XIvvyIaWd3YDa1OP//o9\
    +ExmOIyZjADhLL/oIBNrLgM0AAIBdT/KroZxPPIggDJnzVWyKTtLvCyOH3iWDO5QFvg09Y/0aSNVeHGwPeOtE7h9\
    wn998cXDP4HmNwOxohp04gZ33kIPAtXjSexrU34NLKO/xDnta1Uz2KsskNfxK9bhLV0Lgv/JptmdM9e3vzX0BOgf\
    svxAPV0+tF5KP3G3NHEb0f9agtatFdPhv4yWgEDeF878m4g6Nejgc6J3M3354Q5bcxqK8PiSfR3VCWqN2inA+edF\
    vBjKRkY2nKVlxkse16n3pSKfPP1a6w5tiwIDAQAB";
/// … and its RS256 signature over [`SELF_TEST_TEXT`].
const SELF_TEST_SIGNATURE: &str = "\
    GZfuOYssxFurKZA/ob//1VO6uGMQpqW6YfqYGUsEIiupPmpixN4zKJgcNKa+07/8zJFKNwh1v9XpZyJMsyODvutG\
    ybE/70Dd9TfLc7v6oIC62+bh3v/I574643D3Bs9M2lWsDj6F0fvozNOsVB6mpDutfsTpi3/bCfqXfyQN7kqcRuQw\
    FAqymwU1WG9NZGM2Lxdgn8AYySgLgIJ+Oa2B0nrNYBtFu53EquuILhnrm7AnOqiTgnX62TAajNt9BIzVHTI+BdJb\
    nchwvZ5cCk/Pczym/PuYuD9HCfSzfDVxuMsQXYLf2kfecquogYdlbqTjPD3nZYHN7pdQVCT32t4/ww==";

fn proto_bytes(out: &mut Vec<u8>, field: u8, value: &[u8]) {
    out.push(field << 3 | 2);
    write_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::KeySet;
    use crate::test_tokens::{jwks, sign};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rsa::pkcs8::DecodePublicKey;

    #[test]
    fn spki_matches_what_openssl_produces() {
        let t = self_test();
        let key = rsa::RsaPublicKey::from_public_key_der(&t.spki_der).unwrap();
        use rsa::traits::PublicKeyParts;
        let rebuilt = crate::jwks::rsa_spki_der(&key.n().to_bytes_be(), &key.e().to_bytes_be());
        assert_eq!(rebuilt, t.spki_der);
    }

    #[test]
    fn the_self_test_vector_verifies_in_pure_rust() {
        let t = self_test();
        let key = rsa::RsaPublicKey::from_public_key_der(&t.spki_der).unwrap();
        use rsa::traits::PublicKeyParts;
        let doc = serde_json::json!({ "keys": [{ "kty": "RSA", "kid": "t",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()) }] });
        let keys = KeySet::parse(doc.to_string().as_bytes()).unwrap().keys;
        let sig = &t.signature;
        assert!(PureRust.verify(Algorithm::RS256, keys.get("t").unwrap(), t.text, sig));
        assert!(!PureRust.verify(Algorithm::RS256, keys.get("t").unwrap(), b"other text", sig));
    }

    #[test]
    fn arguments_are_protobuf() {
        let msg = encode_arguments("sha256", &[1, 2], &[3; 200], b"hi");
        assert_eq!(&msg[..8], &[0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6']);
        assert_eq!(&msg[8..12], &[0x12, 2, 1, 2]);
        assert_eq!(&msg[12..15], &[0x1a, 0xc8, 0x01], "200 as a varint");
        assert_eq!(&msg[msg.len() - 4..], &[0x22, 2, b'h', b'i']);
    }

    #[test]
    fn results_decode() {
        assert_eq!(decode_result(&[0x08, 0x01, 0x12, 0x00]), Some(true));
        assert_eq!(decode_result(&[0x08, 0x00]), Some(false));
        assert_eq!(decode_result(&[]), Some(false), "proto3 default");
        assert_eq!(decode_result(&[0x12, 0x03, b'b', b'a', b'd']), Some(false));
        assert_eq!(decode_result(&[0x08]), None);
        assert_eq!(decode_result(&[0x12, 0x09, b'x']), None);
        assert_eq!(
            decode_result(&[0x0d, 0, 0, 0, 0]),
            None,
            "fixed32 is not expected"
        );
    }

    #[test]
    fn jwks_keys_carry_their_spki() {
        let keys = KeySet::parse(jwks(&[("key1", "k1")]).as_bytes())
            .unwrap()
            .keys;
        let key = keys.get("k1").unwrap();
        let parsed = rsa::RsaPublicKey::from_public_key_der(&key.spki_der).unwrap();
        use rsa::traits::PublicKeyParts;
        assert_eq!(parsed.n().bits(), 2048);
        let token = sign("key1", "k1", &serde_json::json!({ "a": 1 }));
        let (message, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(PureRust.verify(Algorithm::RS256, key, message.as_bytes(), &sig));
    }

    #[test]
    fn every_rsa_algorithm_verifies_in_pure_rust() {
        let keys = KeySet::parse(jwks(&[("key1", "k1")]).as_bytes())
            .unwrap()
            .keys;
        let mut key = keys.get("k1").unwrap().clone();
        key.alg = None;
        let pem = crate::test_tokens::pem("key1");
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg),
                &serde_json::json!({ "a": 1 }),
                &encoding,
            )
            .unwrap();
            let (message, sig) = token.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            assert!(
                PureRust.verify(alg, &key, message.as_bytes(), &sig),
                "{alg:?}"
            );
            assert!(!PureRust.verify(alg, &key, b"x", &sig), "{alg:?}");
        }
        assert!(!PureRust.verify(Algorithm::HS256, &key, b"x", &[0; 256]));
    }
}
