//! A JWKS document as fetched from the network.
#![no_main]

use cognito_edge_auth::jwks::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = KeySet::parse(data) {
        assert!(!parsed.keys.is_empty() && parsed.keys.len() <= cognito_edge_auth::jwks::MAX_KEYS);
    }
});
