//! End to end, the native build: a panic in the module never reaches Envoy. The module built
//! with the test-only feature `panic-probe` (`CEA_SO_PANIC_PROBE`, built by `make e2e`) panics
//! in its request-headers hook when a request carries the probe header; the hook catches it,
//! answers 500 as docs/deployment.md says, counts it in `cognito_edge_auth.panics`, logs the
//! first one only, and the same worker serves the next request. The shipped `.so` has no probe:
//! the header changes nothing there.
//!
//! One test in this file: it points `CEA_SO` at the probe build for the Envoy it starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{id_claims, sign};
use common::*;
use serde_json::json;

const PROBE: &str = "x-cognito-edge-auth-panic-probe";
const LOGGED: &str = "panic in request_headers";

#[test]
fn a_panic_in_the_native_module_is_answered_500_counted_logged_once_and_the_worker_goes_on() {
    if build() == Build::Wasm {
        eprintln!(
            "SKIPPED on the wasm build: a panic there traps the worker's VM (the probe is native)"
        );
        return;
    }
    let token = sign("key1", "k1", &id_claims(now()));
    let bearer = format!("Bearer {token}");
    let probed = |port: u16, with_token: bool| {
        let mut headers: Vec<(&str, &[u8])> = vec![(PROBE, b"1")];
        if with_token {
            headers.push(("authorization", bearer.as_bytes()));
        }
        request(port, "GET", "/", &headers)
    };

    // Control: the shipped module ignores the header.
    {
        let s = Stack::start(json!({}), token.clone());
        assert_eq!(
            probed(s.envoy.port, true).status,
            200,
            "the shipped .so with a token"
        );
        assert_eq!(
            probed(s.envoy.port, false).status,
            401,
            "the shipped .so without one"
        );
        assert_eq!(
            s.envoy
                .stat(&stat_name("wasmcustom.cognito_edge_auth.panics")),
            Some(0)
        );
        assert!(!s.envoy.log().contains(LOGGED));
    }

    let probe = std::env::var("CEA_SO_PANIC_PROBE").expect(
        "CEA_SO_PANIC_PROBE: the .so built with --features panic-probe (make e2e builds it)",
    );
    std::env::set_var("CEA_SO", &probe);
    let s = Stack::start(json!({}), token.clone());
    let panics = stat_name("wasmcustom.cognito_edge_auth.panics");

    let hits = s.upstream.hits();
    let first = probed(s.envoy.port, true);
    assert_eq!(first.status, 500, "{}", first.body);
    assert_eq!(first.json()["error"], "internal_error", "{}", first.body);
    assert_eq!(s.envoy.wait_for_stat(&panics, 1), 1);
    s.envoy.wait_for_log(LOGGED);

    assert_eq!(
        s.upstream.hits(),
        hits,
        "the request that panicked went no further"
    );

    // The same worker (--concurrency 1) goes on deciding as before.
    assert_eq!(get_with_token(s.envoy.port, "/", &token).status, 200);
    assert_eq!(s.upstream.hits(), hits + 1);
    assert_eq!(get(s.envoy.port, "/").status, 401);

    // A second panic, without a token: 500 (not the 401 it would have got), counted, not logged.
    let second = probed(s.envoy.port, false);
    assert_eq!(second.status, 500, "{}", second.body);
    assert_eq!(s.envoy.wait_for_stat(&panics, 2), 2);
    assert_eq!(get_with_token(s.envoy.port, "/", &token).status, 200);
    assert_eq!(
        s.envoy.log().matches(LOGGED).count(),
        1,
        "{}",
        s.envoy.log()
    );
    assert!(
        !s.envoy.log().contains("panicked at"),
        "Rust's own panic report is replaced by the one log line"
    );
}
