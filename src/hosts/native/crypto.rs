//! Signatures verified natively with `ring` (BoringSSL's RSA code, in assembly where it has
//! some): every algorithm a provider may allow, PKCS#1 v1.5 and PSS.

use crate::jwks::Key;
use crate::signature::SignatureVerifier;
use jsonwebtoken::Algorithm;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// Verifies with `ring`.
pub struct Ring;

impl SignatureVerifier for Ring {
    fn verify(&self, alg: Algorithm, key: &Key, message: &[u8], sig: &[u8]) -> bool {
        let Some(algorithm) = algorithm(alg) else {
            return false;
        };
        let Some(der) = rsa_public_key(&key.spki_der) else {
            return false;
        };
        UnparsedPublicKey::new(algorithm, der)
            .verify(message, sig)
            .is_ok()
    }
}

fn algorithm(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The DER `RSAPublicKey` inside a `SubjectPublicKeyInfo` (what `ring` reads): the content of
/// its BIT STRING after the unused-bits byte.
fn rsa_public_key(spki: &[u8]) -> Option<&[u8]> {
    let (tag, outer, _) = tlv(spki)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, rest) = tlv(outer)?; // AlgorithmIdentifier
    let (tag, bits, _) = tlv(rest)?;
    if tag != 0x03 {
        return None;
    }
    match bits.split_first()? {
        (0, key) => Some(key),
        _ => None,
    }
}

/// One DER element: its tag, its content, and what follows it.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, after) = (rest.get(..n)?, rest.get(n..)?);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    //! Differential: `ring` and the pure-Rust verifier must agree on every input.
    use super::*;
    use crate::jwks::KeySet;
    use crate::signature::PureRust;
    use crate::test_tokens::{jwks, pem};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const ALGS: [Algorithm; 6] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    fn key(name: &str, kid: &str) -> Key {
        let keys = KeySet::parse(jwks(&[(name, kid)]).as_bytes()).unwrap().keys;
        let mut key = keys.get(kid).unwrap().clone();
        key.alg = None;
        key
    }

    fn signed(alg: Algorithm, message_claims: serde_json::Value) -> (String, Vec<u8>) {
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem("key1").as_bytes()).unwrap();
        let token =
            jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &message_claims, &encoding)
                .unwrap();
        let (message, sig) = token.rsplit_once('.').unwrap();
        (message.to_string(), URL_SAFE_NO_PAD.decode(sig).unwrap())
    }

    #[test]
    fn ring_agrees_with_pure_rust_on_good_and_bad_signatures() {
        let (right, wrong) = (key("key1", "k1"), key("key2", "k2"));
        for alg in ALGS {
            let (message, sig) = signed(alg, serde_json::json!({ "sub": "a", "n": 1 }));
            let mut flipped = sig.clone();
            flipped[7] ^= 1;
            let cases: Vec<(&Key, &[u8], &[u8], bool)> = vec![
                (&right, message.as_bytes(), &sig, true),
                (&right, b"another message", &sig, false),
                (&right, message.as_bytes(), &flipped, false),
                (&right, message.as_bytes(), &sig[..sig.len() - 1], false),
                (&right, message.as_bytes(), &[], false),
                (&wrong, message.as_bytes(), &sig, false),
            ];
            for (i, (k, m, s, expected)) in cases.into_iter().enumerate() {
                let (r, p) = (Ring.verify(alg, k, m, s), PureRust.verify(alg, k, m, s));
                assert_eq!(r, p, "{alg:?} case {i}: ring {r}, pure Rust {p}");
                assert_eq!(r, expected, "{alg:?} case {i}");
            }
        }
        let (message, sig) = signed(Algorithm::RS256, serde_json::json!({}));
        for other in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(!Ring.verify(other, &right, message.as_bytes(), &sig));
            assert!(!PureRust.verify(other, &right, message.as_bytes(), &sig));
        }
        assert!(
            !Ring.verify(Algorithm::PS256, &right, message.as_bytes(), &sig),
            "a PKCS#1 signature is no PSS one"
        );
    }

    #[test]
    fn the_self_test_vector_verifies() {
        let t = crate::signature::self_test();
        let mut k = key("key1", "k1");
        k.spki_der = t.spki_der.clone();
        assert!(Ring.verify(Algorithm::RS256, &k, t.text, &t.signature));
        assert!(!Ring.verify(Algorithm::RS256, &k, b"other", &t.signature));
    }

    #[test]
    fn spki_unwrapping_refuses_what_is_not_one() {
        assert_eq!(rsa_public_key(&[]), None);
        assert_eq!(rsa_public_key(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(rsa_public_key(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        let spki = key("key1", "k1").spki_der;
        assert!(rsa_public_key(&spki).is_some());
        assert_eq!(rsa_public_key(&spki[..spki.len() - 1]), None);
    }
}
