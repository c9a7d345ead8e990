//! Where a request's time goes, natively: each stage of a cache hit and of a verification, on
//! the request the bench sends (fuzz/config.json, the first verify seed, the headers Envoy
//! hands the filter). A profiling aid, not a test:
//!
//!     cargo run --release --example hitpath            # µs per call of each stage
//!     valgrind --tool=callgrind target/release/examples/hitpath --calls 2000
//!     callgrind_annotate --inclusive=yes callgrind.out.* | grep stage_
//!
//! Each stage runs in its own `stage_*` function (never inlined), so callgrind's inclusive
//! count of that function divided by the calls is the stage's instructions per request —
//! repeatable on a busy machine, unlike the wall clock. Inside Envoy's V8 the same code runs
//! roughly 3× slower; the VM boundary (headers in, headers out) is not in this example: see
//! docs/benchmarks.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cognito_edge_auth::cache::TokenCache;
use cognito_edge_auth::config::Config;
use cognito_edge_auth::decision::{decide, Request};
use cognito_edge_auth::jwks::{Key, KeySet};
use cognito_edge_auth::policy;
use cognito_edge_auth::signature::{self, PureRust, SignatureVerifier};
use cognito_edge_auth::{response, token, verify};
use jsonwebtoken::Algorithm;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

/// The native verifier's stand-in: what the glue does before the host call (encode the
/// `VerifySignatureArguments`), without BoringSSL itself. The token is genuinely signed, so
/// accepting it decides as the host would.
struct HostArgumentsOnly;

impl SignatureVerifier for HostArgumentsOnly {
    fn verify(&self, alg: Algorithm, key: &Key, message: &[u8], sig: &[u8]) -> bool {
        let hash = signature::host_hash(alg).unwrap_or("sha256");
        black_box(signature::encode_arguments(
            hash,
            &key.spki_der,
            sig,
            message,
        ));
        true
    }
}

struct Fixture {
    config: Config,
    keys: Vec<Option<KeySet>>,
    token: String,
    headers: Vec<(String, Vec<u8>)>,
    now: u64,
}

fn fixture() -> Fixture {
    let config = Config::parse(include_bytes!("../fuzz/config.json")).unwrap();
    let keys = vec![Some(
        KeySet::parse(include_bytes!("../fuzz/jwks.json"))
            .unwrap()
            .keys,
    )];
    let token = std::fs::read_to_string("fuzz/corpus/verify/seed-0").unwrap();
    // What Envoy hands the filter for wrk's request.
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":authority".into(), b"127.0.0.1:10000".to_vec()),
        (":path".into(), b"/x".to_vec()),
        (":method".into(), b"GET".to_vec()),
        (":scheme".into(), b"http".to_vec()),
        (
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        ),
        ("x-forwarded-proto".into(), b"http".to_vec()),
        (
            "x-request-id".into(),
            b"6f1c8b0e-3d2a-4b8e-9c1d-2f7a5e4b3c21".to_vec(),
        ),
    ];
    Fixture {
        config,
        keys,
        token,
        headers,
        now: 1_800_000_100,
    }
}

fn request(f: &Fixture) -> Request<'_> {
    Request::new(b"GET", b"/x", &f.headers)
}

// ---- a cache hit -------------------------------------------------------------------------

#[inline(never)]
fn stage_hit_decide(f: &Fixture, cache: &mut TokenCache, n: usize) {
    let req = request(f);
    for _ in 0..n {
        black_box(decide(&req, &f.config, &f.keys, &PureRust, cache, f.now));
    }
}

#[inline(never)]
fn stage_hit_route(f: &Fixture, n: usize) {
    for _ in 0..n {
        black_box(policy::route(&f.config.policy, b"GET", b"/x").unwrap());
    }
}

#[inline(never)]
fn stage_hit_extract(f: &Fixture, n: usize) {
    for _ in 0..n {
        black_box(token::extract(&f.headers, token::Sources::of(&f.config)).unwrap());
    }
}

#[inline(never)]
fn stage_hit_strip_scan(f: &Fixture, n: usize) {
    for _ in 0..n {
        let stripped = f
            .headers
            .iter()
            .filter(|(name, _)| f.config.identity.strips(name))
            .count();
        black_box(stripped);
    }
}

#[inline(never)]
fn stage_hit_cache_get(f: &Fixture, cache: &mut TokenCache, n: usize) {
    for _ in 0..n {
        black_box(cache.get(&f.token, f.now, &f.keys));
    }
}

#[inline(never)]
fn stage_hit_authorize(f: &Fixture, claims: &verify::Claims, n: usize) {
    let route = policy::route(&f.config.policy, b"GET", b"/x").unwrap();
    for _ in 0..n {
        black_box(policy::authorize(claims, route.access, &f.config.policy).unwrap());
    }
}

#[inline(never)]
fn stage_hit_identity_headers(
    f: &Fixture,
    identity: &policy::Identity,
    claims: &verify::Claims,
    n: usize,
) {
    for _ in 0..n {
        black_box(response::identity_headers(
            identity,
            claims,
            "cognito",
            &f.config.identity,
        ));
    }
}

/// What the glue copies out of the host for every request, natively: one owned
/// (String, Vec<u8>) per header (`get_map_bytes` builds them the same way).
#[inline(never)]
fn stage_hit_copy_headers(f: &Fixture, n: usize) {
    for _ in 0..n {
        let copy: Vec<(String, Vec<u8>)> = f
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        black_box(copy);
    }
}

// ---- a verification ----------------------------------------------------------------------

#[inline(never)]
fn stage_verify_decide(f: &Fixture, n: usize) {
    let req = request(f);
    let mut cache = TokenCache::new(0);
    for _ in 0..n {
        black_box(decide(
            &req,
            &f.config,
            &f.keys,
            &HostArgumentsOnly,
            &mut cache,
            f.now,
        ));
    }
}

/// A verification when the cache is full: the token evicts the one entry (put back each
/// time: an `Rc` clone and one insert, a small part of the whole) and is inserted.
#[inline(never)]
fn stage_verify_decide_full_cache(f: &Fixture, other: &Rc<verify::Claims>, n: usize) {
    let req = request(f);
    let mut cache = TokenCache::new(1);
    for _ in 0..n {
        cache.insert("another token", Rc::clone(other), 0);
        black_box(decide(
            &req,
            &f.config,
            &f.keys,
            &HostArgumentsOnly,
            &mut cache,
            f.now,
        ));
    }
}

#[inline(never)]
fn stage_verify_verify(f: &Fixture, n: usize) {
    for _ in 0..n {
        black_box(
            verify::verify(
                &f.token,
                &f.config.providers,
                &f.keys,
                &HostArgumentsOnly,
                f.now,
            )
            .unwrap(),
        );
    }
}

#[inline(never)]
fn stage_verify_base64(f: &Fixture, n: usize) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    for _ in 0..n {
        for part in f.token.split('.') {
            black_box(URL_SAFE_NO_PAD.decode(part).unwrap());
        }
    }
}

#[inline(never)]
fn stage_verify_json_payload(payload: &[u8], n: usize) {
    for _ in 0..n {
        black_box(
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(payload).unwrap(),
        );
    }
}

#[inline(never)]
fn stage_verify_host_arguments(f: &Fixture, sig: &[u8], n: usize) {
    let key = f.keys[0].as_ref().unwrap().get("k1").unwrap();
    let message = &f.token[..f.token.rfind('.').unwrap()];
    for _ in 0..n {
        black_box(signature::encode_arguments(
            "sha256",
            &key.spki_der,
            sig,
            message.as_bytes(),
        ));
    }
}

#[inline(never)]
fn stage_verify_pure_rust_rsa(f: &Fixture, sig: &[u8], n: usize) {
    let key = f.keys[0].as_ref().unwrap().get("k1").unwrap();
    let message = &f.token[..f.token.rfind('.').unwrap()];
    for _ in 0..n {
        black_box(PureRust.verify(Algorithm::RS256, key, message.as_bytes(), sig));
    }
}

fn timed(label: &str, n: usize, run: impl FnOnce(usize)) {
    let t = Instant::now();
    run(n);
    println!(
        "{label:<32} {:>8.3} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    // `--calls N`: N calls per stage (default 200,000; a few thousand under callgrind).
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--calls")
        .and_then(|i| args.get(i + 1))
        .map_or(200_000, |v| v.parse().unwrap());
    let f = fixture();
    let mut cache = TokenCache::new(4096);
    let _ = decide(
        &request(&f),
        &f.config,
        &f.keys,
        &PureRust,
        &mut cache,
        f.now,
    );
    let claims = cache.get(&f.token, f.now, &f.keys).unwrap();
    let route = policy::route(&f.config.policy, b"GET", b"/x").unwrap();
    let identity = policy::authorize(&claims, route.access, &f.config.policy)
        .unwrap()
        .unwrap();
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let parts: Vec<&str> = f.token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();

    println!(
        "token {} bytes, payload {} bytes",
        f.token.len(),
        payload.len()
    );
    println!("-- a cache hit");
    timed("decide (cache hit), in all", n, |n| {
        stage_hit_decide(&f, &mut cache, n)
    });
    timed("  copy the headers (glue)", n, |n| {
        stage_hit_copy_headers(&f, n)
    });
    timed("  strip scan", n, |n| stage_hit_strip_scan(&f, n));
    timed("  route", n, |n| stage_hit_route(&f, n));
    timed("  extract", n, |n| stage_hit_extract(&f, n));
    timed("  cache.get", n, |n| stage_hit_cache_get(&f, &mut cache, n));
    timed("  authorize", n, |n| stage_hit_authorize(&f, &claims, n));
    timed("  identity_headers", n, |n| {
        stage_hit_identity_headers(&f, &identity, &claims, n)
    });
    println!("-- a verification (signature by the host: its arguments built, BoringSSL not run)");
    timed("decide (verify), in all", n, |n| stage_verify_decide(&f, n));
    timed("decide (verify, cache full)", n, |n| {
        stage_verify_decide_full_cache(&f, &claims, n)
    });
    timed("  verify", n, |n| stage_verify_verify(&f, n));
    timed("    base64 of the 3 parts", n, |n| {
        stage_verify_base64(&f, n)
    });
    timed("    JSON payload → map", n, |n| {
        stage_verify_json_payload(&payload, n)
    });
    timed("    host call arguments", n, |n| {
        stage_verify_host_arguments(&f, &sig, n)
    });
    let rsa_n = (n / 100).max(1);
    timed("pure-Rust RSA (fallback)", rsa_n, |n| {
        stage_verify_pure_rust_rsa(&f, &sig, n)
    });
}
