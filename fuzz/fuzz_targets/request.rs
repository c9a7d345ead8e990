//! A whole request: "METHOD PATH" on the first line, then "name: value" header lines, as raw
//! bytes. Goes through extraction (headers, cookies), verification, routing and the policy.
#![no_main]

use cognito_edge_auth::cache::TokenCache;
use cognito_edge_auth::decision::{decide, Decision, Request};
use cognito_edge_auth::signature::PureRust;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let (method, path, headers) = common::request_parts(data);
    let request = Request::new(method, path, &headers);
    let mut cache = TokenCache::new(8);
    let first = decide(&request, common::config(), common::keys(), &PureRust, &mut cache, common::NOW);
    // The cache never changes a decision.
    let again = decide(&request, common::config(), common::keys(), &PureRust, &mut cache, common::NOW);
    match (&first, &again) {
        (Decision::Allow(a), Decision::Allow(b)) => assert_eq!(a, b),
        (Decision::Deny(a), Decision::Deny(b)) => assert_eq!(a.response, b.response),
        _ => panic!("the cache changed a decision"),
    }
    if let Decision::Allow(allowed) = first {
        // Identity headers are always stripped, so the set ones can be added: every name is
        // one the filter owns. Set values never hold a line break.
        for (name, value) in allowed.set.iter() {
            assert!(common::config().identity.strips(name), "{name}");
            assert!(!value.contains('\r') && !value.contains('\n'), "{name}");
        }
    }
});
