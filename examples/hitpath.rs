//! The cache-hit path, natively: what `decide` and its parts cost per call on a token the
//! cache already holds (fuzz/config.json, the first verify seed). A profiling aid, not a test:
//! `cargo run --release --example hitpath`. Inside Envoy's V8 the same code runs about 3× slower,
//! on top of the ~8 µs a request costs any proxy-wasm filter.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cognito_edge_auth::cache::TokenCache;
use cognito_edge_auth::config::Config;
use cognito_edge_auth::decision::{decide, Request};
use cognito_edge_auth::jwks::KeySet;
use cognito_edge_auth::signature::PureRust;
use std::time::Instant;
fn main() {
    let config = Config::parse(include_bytes!("../fuzz/config.json")).unwrap();
    let keys = vec![Some(
        KeySet::parse(include_bytes!("../fuzz/jwks.json"))
            .unwrap()
            .keys,
    )];
    let token = std::fs::read_to_string("fuzz/corpus/verify/seed-0").unwrap();
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":authority".into(), b"localhost".to_vec()),
        (":path".into(), b"/x".to_vec()),
        (":method".into(), b"GET".to_vec()),
        (":scheme".into(), b"http".to_vec()),
        ("user-agent".into(), b"wrk".to_vec()),
        (
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        ),
    ];
    let req = Request {
        method: b"GET",
        path: b"/x",
        headers: &headers,
    };
    let mut cache = TokenCache::new(4096);
    let now = 1_800_000_100;
    let _ = decide(&req, &config, &keys, &PureRust, &mut cache, now);
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(decide(&req, &config, &keys, &PureRust, &mut cache, now));
    }
    println!(
        "decide (cache hit): {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cache.get(&token, now, &keys));
    }
    println!(
        "cache.get: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let claims = cache.get(&token, now, &keys).unwrap();
    let route = cognito_edge_auth::policy::route(&config.policy, b"GET", b"/x").unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            cognito_edge_auth::policy::route(&config.policy, b"GET", b"/x").unwrap(),
        );
    }
    println!(
        "route: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            cognito_edge_auth::policy::authorize(&claims, route.access, &config.policy).unwrap(),
        );
    }
    println!(
        "authorize: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let identity = cognito_edge_auth::policy::authorize(&claims, route.access, &config.policy)
        .unwrap()
        .unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cognito_edge_auth::response::identity_headers(
            &identity,
            &claims,
            "cognito",
            &config.identity,
        ));
    }
    println!(
        "identity_headers: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            cognito_edge_auth::token::extract(&headers, config.token_sources()).unwrap(),
        );
    }
    println!(
        "extract: {:.2} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
