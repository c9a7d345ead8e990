//! Signatures verified natively with `aws-lc-rs` (AWS-LC, a fork of the BoringSSL that Envoy's
//! own `jwt_authn` verifies with): every algorithm a provider may allow, PKCS#1 v1.5 and PSS. Chosen by measurement over `ring` (docs/benchmarks.md): an RS256 verify with a key
//! parsed once costs 300k instructions against ring's 417k.
//!
//! A key is parsed once per worker thread and algorithm, and kept while its key set is current.

use crate::jwks::Key;
use crate::signature::SignatureVerifier;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::Algorithm;
use std::cell::RefCell;
use std::collections::HashMap;

/// Parsed keys kept per worker thread; beyond this many (a JWKS rotated over and over) they are
/// dropped and parsed again.
const MAX_PARSED: usize = 64;

/// A parsed key, with the DER it was parsed from.
type Parsed = (Vec<u8>, ParsedPublicKey);

thread_local! {
    /// This thread's parsed keys, by the key's fingerprint and the algorithm, each with the
    /// key's DER it was parsed from (compared on every use: a fingerprint is not proof).
    static PARSED: RefCell<HashMap<(u64, Algorithm), Parsed>> = RefCell::new(HashMap::new());
}

/// Verifies with `aws-lc-rs`.
pub struct AwsLc;

impl SignatureVerifier for AwsLc {
    fn verify(&self, alg: Algorithm, key: &Key, message: &[u8], sig: &[u8]) -> bool {
        let Some(algorithm) = algorithm(alg) else {
            return false;
        };
        PARSED.with(|parsed| {
            let mut parsed = parsed.borrow_mut();
            let id = (key.fingerprint, alg);
            let kept = parsed.get(&id).filter(|(der, _)| *der == key.spki_der);
            if kept.is_none() {
                let Ok(new) = ParsedPublicKey::new(algorithm, &key.spki_der) else {
                    return false;
                };
                if parsed.len() >= MAX_PARSED {
                    parsed.clear();
                }
                parsed.insert(id, (key.spki_der.clone(), new));
            }
            parsed
                .get(&id)
                .is_some_and(|(_, k)| k.verify_sig(message, sig).is_ok())
        })
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

#[cfg(test)]
mod tests {
    //! Differential: `aws-lc-rs` and the pure-Rust verifier must agree on every input.
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
    fn aws_lc_agrees_with_pure_rust_on_good_and_bad_signatures() {
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
                let (r, p) = (AwsLc.verify(alg, k, m, s), PureRust.verify(alg, k, m, s));
                assert_eq!(r, p, "{alg:?} case {i}: aws-lc-rs {r}, pure Rust {p}");
                assert_eq!(r, expected, "{alg:?} case {i}");
            }
        }
        let (message, sig) = signed(Algorithm::RS256, serde_json::json!({}));
        for other in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(!AwsLc.verify(other, &right, message.as_bytes(), &sig));
            assert!(!PureRust.verify(other, &right, message.as_bytes(), &sig));
        }
        assert!(
            !AwsLc.verify(Algorithm::PS256, &right, message.as_bytes(), &sig),
            "a PKCS#1 signature is no PSS one"
        );
    }

    #[test]
    fn the_self_test_vector_verifies() {
        let t = crate::signature::self_test();
        let mut k = key("key1", "k1");
        k.spki_der = t.spki_der.clone();
        assert!(AwsLc.verify(Algorithm::RS256, &k, t.text, &t.signature));
        assert!(!AwsLc.verify(Algorithm::RS256, &k, b"other", &t.signature));
    }

    #[test]
    fn a_key_that_is_no_rsa_key_verifies_nothing() {
        let (message, sig) = signed(Algorithm::RS256, serde_json::json!({}));
        let mut k = key("key1", "k1");
        for (i, spki) in [
            vec![],
            vec![0x30, 0x03, 0x02, 0x01, 0x00],
            k.spki_der[..40].to_vec(),
        ]
        .into_iter()
        .enumerate()
        {
            k.spki_der = spki;
            k.fingerprint = 1000 + i as u64;
            assert!(!AwsLc.verify(Algorithm::RS256, &k, message.as_bytes(), &sig));
        }
    }

    #[test]
    fn a_key_under_another_keys_fingerprint_is_never_verified_with_the_other() {
        let (message, sig) = signed(Algorithm::RS256, serde_json::json!({}));
        let (right, mut impostor) = (key("key1", "k1"), key("key2", "k2"));
        impostor.fingerprint = right.fingerprint;
        assert!(AwsLc.verify(Algorithm::RS256, &right, message.as_bytes(), &sig));
        assert!(!AwsLc.verify(Algorithm::RS256, &impostor, message.as_bytes(), &sig));
        assert!(AwsLc.verify(Algorithm::RS256, &right, message.as_bytes(), &sig));
    }

    #[test]
    fn parsed_keys_are_kept_per_key_and_algorithm_and_bounded() {
        let right = key("key1", "k1");
        let (message, sig) = signed(Algorithm::RS256, serde_json::json!({}));
        for round in 0..(MAX_PARSED as u64 + 10) {
            let mut k = right.clone();
            k.fingerprint = round;
            assert!(AwsLc.verify(Algorithm::RS256, &k, message.as_bytes(), &sig));
            assert!(!AwsLc.verify(Algorithm::PS256, &k, message.as_bytes(), &sig));
        }
        PARSED.with(|p| assert!(p.borrow().len() <= MAX_PARSED));
    }
}
