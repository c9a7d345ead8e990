//! A token, verified against the test pool's keys: signature, then claims.
#![no_main]

use cognito_edge_auth::signature::PureRust;
use cognito_edge_auth::verify::verify;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = verify(token, &common::config().providers, common::keys(), &PureRust, common::NOW);
    }
});
