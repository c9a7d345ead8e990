//! For the end-to-end tests only — compiled with the feature `panic-probe`, which no shipped
//! build has: a request that carries [`HEADER`] makes the request-headers hook panic, so that
//! the test can show what a panic in the module does in a real Envoy (caught at the ABI,
//! answered 500, counted, logged once, and the next request served).

/// The request header that sets the probe off.
pub const HEADER: &str = "x-cognito-edge-auth-panic-probe";

/// Panics when the request carries [`HEADER`].
#[allow(clippy::panic)] // the probe's whole purpose
pub fn on_request_headers(headers: &[(String, Vec<u8>)]) {
    if headers.iter().any(|(name, _)| name == HEADER) {
        panic!("the panic probe was set off");
    }
}
