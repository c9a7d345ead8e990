//! Signatures checked by the host: Envoy's `verify_signature` foreign function (BoringSSL).

use crate::jwks::Key;
use crate::signature::{self, PureRust, SignatureVerifier};
use jsonwebtoken::Algorithm;
use log::{info, warn};
use proxy_wasm::hostcalls;

const FUNCTION: &str = "verify_signature";

/// Verifies natively; algorithms the host cannot check (RSA-PSS) go to [`PureRust`].
pub struct Host;

impl SignatureVerifier for Host {
    fn verify(&self, alg: Algorithm, key: &Key, message: &[u8], sig: &[u8]) -> bool {
        let Some(hash) = signature::host_hash(alg) else {
            return PureRust.verify(alg, key, message, sig);
        };
        call(hash, &key.spki_der, sig, message) == Some(true)
    }
}

/// The verifier this host supports best, found with a known signature (and a wrong one).
pub fn detect() -> Box<dyn SignatureVerifier> {
    let t = signature::self_test();
    let good = call("sha256", &t.spki_der, &t.signature, t.text);
    let bad = call("sha256", &t.spki_der, &t.signature, b"not the signed text");
    if good == Some(true) && bad == Some(false) {
        info!("cognito-edge-auth: signatures are verified natively by the host ({FUNCTION})");
        Box::new(Host)
    } else {
        warn!("cognito-edge-auth: the host has no working {FUNCTION} ({good:?}/{bad:?}); verifying in pure Rust, which is much slower");
        Box::new(PureRust)
    }
}

fn call(hash: &str, spki_der: &[u8], sig: &[u8], text: &[u8]) -> Option<bool> {
    let args = signature::encode_arguments(hash, spki_der, sig, text);
    match hostcalls::call_foreign_function(FUNCTION, Some(&args)) {
        Ok(Some(reply)) => signature::decode_result(&reply),
        Ok(None) => Some(false),
        Err(_) => None,
    }
}
