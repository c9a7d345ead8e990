//! The native build's verifier (`aws-lc-rs`) against the pure-Rust one, on any token: both must
//! accept the same tokens and refuse the others for the same reason (the .so and the .wasm make
//! the same decisions).
#![no_main]

use cognito_edge_auth::signature::PureRust;
use cognito_edge_auth::verify::verify;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let providers = &common::config().providers;
        let native = cognito_edge_auth::native_verifier();
        let by_native = verify(token, providers, common::keys(), &native, common::NOW);
        let by_rust = verify(token, providers, common::keys(), &PureRust, common::NOW);
        assert_eq!(
            by_native.as_ref().map(|c| c.provider).map_err(|e| *e),
            by_rust.as_ref().map(|c| c.provider).map_err(|e| *e),
            "{token}"
        );
    }
});
