//! cognito-edge-auth: an Envoy filter that validates Amazon Cognito tokens, built as a
//! proxy-wasm module (`wasm32-wasip1`) and as an Envoy dynamic module (the native `.so`).
//!
//! The core is pure and tested on the host; `runtime` is the host-agnostic orchestration
//! around it; `filter` is the proxy-wasm glue and `hosts::native` the dynamic-module one.

pub mod cache;
pub mod config;
pub mod decision;
pub mod headers;
pub mod jwks;
pub mod online;
pub mod policy;
pub mod refresh;
pub mod response;
pub mod revocation;
pub mod runtime;
pub mod session;
pub mod signature;
pub mod token;
pub mod verify;

/// Test keys and token minting, shared with the end-to-end tests.
#[cfg(test)]
#[path = "../tests/common/tokens.rs"]
mod test_tokens;

#[cfg(target_arch = "wasm32")]
mod filter;

#[cfg(not(target_arch = "wasm32"))]
mod hosts;

/// The native build's signature verifier (`aws-lc-rs`), for the fuzz targets' differential
/// check against [`signature::PureRust`].
#[cfg(not(target_arch = "wasm32"))]
pub fn native_verifier() -> impl signature::SignatureVerifier {
    hosts::native::AwsLc
}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(filter::root::Root::default())
    });
}}
