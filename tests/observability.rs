//! End to end: the filter's metrics in Envoy's admin endpoint, and its denial log lines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::tokens::{self, id_claims, sign, with};
use common::*;
use serde_json::{json, Value};

const P: &str = "wasmcustom.cognito_edge_auth";

fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(&format!("{P}.{name}")).unwrap_or_else(|| {
        panic!(
            "{P}.{name} not in /stats:\n{}",
            get(envoy.admin_port, "/stats?filter=cognito").body
        )
    })
}

/// The stat once it has reached `at_least` (counts are flushed on the workers' ticks); panics
/// if it does not within the harness's patience.
fn settled(envoy: &Envoy, name: &str, at_least: u64) -> u64 {
    envoy.wait_for_stat(&format!("{P}.{name}"), at_least)
}

/// Waits until `name` has reached `expected`, then checks that it is exactly that.
fn settles_at(envoy: &Envoy, name: &str, expected: u64) {
    assert_eq!(settled(envoy, name, expected), expected, "{name}");
}

#[test]
fn metrics_count_decisions_fetches_keys_and_cache_use() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1"), ("key2", "k2")]));
    let upstream = echo_upstream();
    let mut p = provider("cognito", jwks.port());
    p["jwks"]["refresh_interval_seconds"] = 600.into();
    let config = json!({
        "providers": [p],
        "admin_principals": ["root"],
        "rules": [{ "match": { "prefix": "/admin" }, "require": { "admin": true } }],
        "denial_log_level": "warn",
    });
    let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
    let now = now();
    let token = sign("key1", "k1", &id_claims(now));
    envoy.wait_for_keys(&token);

    assert_eq!(stat(&envoy, "jwks.cognito.fetch_success"), 1);
    assert_eq!(stat(&envoy, "jwks.cognito.fetch_failure"), 0);
    assert_eq!(stat(&envoy, "jwks.cognito.keys"), 2);
    let allowed = settled(&envoy, "allowed", 1);
    let hits = stat(&envoy, "cache.hits");

    for _ in 0..3 {
        assert_eq!(get_with_token(envoy.port, "/", &token).status, 200);
    }
    assert_eq!(get(envoy.port, "/").status, 401);
    let expired = sign(
        "key1",
        "k1",
        &with(id_claims(now), "exp", (now - 600).into()),
    );
    assert_eq!(get_with_token(envoy.port, "/", &expired).status, 401);
    let wrong_iss = sign(
        "key1",
        "k1",
        &with(id_claims(now), "iss", "https://evil.example.com".into()),
    );
    assert_eq!(get_with_token(envoy.port, "/", &wrong_iss).status, 401);
    let wrong_aud = sign("key1", "k1", &with(id_claims(now), "aud", "nope".into()));
    assert_eq!(get_with_token(envoy.port, "/", &wrong_aud).status, 401);
    assert_eq!(
        get_with_token(envoy.port, "/admin/x?secret=1", &token).status,
        403
    );

    // Per-request counts reach Envoy on the worker's next tick, one stat after another: wait
    // for each to arrive, then check it is exact.
    settles_at(&envoy, "allowed", allowed + 3);
    // Three repeats and the 403 came from the cache.
    settles_at(&envoy, "cache.hits", hits + 4);
    assert!(stat(&envoy, "cache.misses") >= 1);
    for (reason, n) in [
        ("missing", 1),
        ("expired", 1),
        ("issuer", 1),
        ("audience", 1),
        ("not_admin", 1),
    ] {
        settles_at(&envoy, &format!("denied.{reason}"), n);
    }
    assert_eq!(stat(&envoy, "denied.forbidden"), 0, "denied.forbidden");

    let prometheus = get(envoy.admin_port, "/stats/prometheus").body;
    let build = prometheus_build();
    assert!(
        prometheus.contains(&format!(
            "\nenvoy_cognito_edge_auth_denied{{build=\"{build}\",reason=\"not_admin\"}} 1\n"
        )),
        "{prometheus}"
    );
    assert!(prometheus.contains(&format!(
        "\nenvoy_cognito_edge_auth_jwks_keys{{build=\"{build}\",provider=\"cognito\"}} 2\n"
    )));

    let log = envoy.log();
    let line = log
        .lines()
        .find(|l| l.contains("reason=not_admin"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("[warning]"), "{line}");
    assert!(
        line.contains("denied 403 reason=not_admin provider=cognito principal=alice GET /admin/x"),
        "{line}"
    );
    assert!(
        !line.contains("secret"),
        "the query string is not logged: {line}"
    );
    assert!(log.contains("denied 401 reason=missing provider=- principal=- GET /"));
    for t in [&token, &expired, &wrong_iss] {
        assert!(!log.contains(t.as_str()), "a token is in the log");
        let signature = t.rsplit('.').next().unwrap();
        assert!(!log.contains(signature));
    }
}

#[test]
fn fetch_failures_are_counted_per_provider() {
    let jwks = JwksServer::start("");
    jwks.set(500, "down");
    let upstream = echo_upstream();
    let local: Value = serde_json::from_str(&tokens::jwks(&[("key2", "b1")])).unwrap();
    let config = json!({ "providers": [
        provider("cognito", jwks.port()),
        { "name": "bots", "issuer": "https://app.example.com", "local_jwks": local },
    ], "denial_log_level": "off" });
    let envoy = Envoy::start(&bootstrap(&config, upstream.port, jwks.port()));
    // Two failed fetches counted (the first retry comes 1 s after the first failure).
    settled(&envoy, "jwks.cognito.fetch_failure", 2);
    assert!(jwks.fetches() >= 2);
    assert_eq!(stat(&envoy, "jwks.cognito.fetch_success"), 0);
    assert_eq!(
        stat(&envoy, "jwks.bots.keys"),
        1,
        "local keys are counted too"
    );
    assert_eq!(get(envoy.port, "/").status, 401);
    assert!(
        !envoy.log().contains("reason=missing"),
        "denial_log_level off"
    );
}

/// The `build` label of the build under test (what Envoy names the stats' namespace).
fn prometheus_build() -> &'static str {
    match build() {
        Build::Wasm => "wasm",
        Build::Native => "dynamicmodules",
    }
}

/// The filter's samples in `/stats/prometheus`: (name, labels as `k="v"` sorted, value).
fn samples(envoy: &Envoy) -> Vec<(String, String, String)> {
    let body = get(envoy.admin_port, "/stats/prometheus").body;
    body.lines()
        // The filter's own: tagged, untagged (wasm), untagged (native); not Envoy's stats of
        // the plugin (`envoy_wasm_cognito_edge_auth_…`).
        .filter(|l| {
            [
                "envoy_cognito_edge_auth_",
                "cognito_edge_auth_",
                "envoy_dynamicmodulescustom_",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap();
            let mut labels: Vec<&str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .collect();
            labels.sort_unstable();
            (name.to_string(), labels.join(","), value.to_string())
        })
        .collect()
}

fn value_of(samples: &[(String, String, String)], name: &str, labels: &str) -> Option<String> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map(|(_, _, v)| v.clone())
}

/// `/stats/prometheus` of the real admin endpoint, with the `stats_config` that every example in
/// `envoy/` ships: one metric per concept, labelled, the same names and labels for both builds
/// (`build` says which); no metric of the filter is left with a reason or a provider in its
/// name.
#[test]
fn prometheus_has_one_metric_per_concept_with_labels() {
    let jwks = JwksServer::start(&tokens::jwks(&[("key1", "k1")]));
    let list = JwksServer::start(r#"{ "sub": ["someone"] }"#);
    let upstream = echo_upstream();
    let bots = json!({ "name": "bots", "issuer": "https://bots.example.com",
        "jwks": { "cluster": "jwks", "uri": format!("http://127.0.0.1:{}/bots.json", jwks.port()) },
        "revocation_list": { "cluster": "revocation",
            "uri": format!("http://127.0.0.1:{}/revoked.json", list.port()) } });
    let mut cognito = provider("cognito", jwks.port());
    if build() == Build::Wasm {
        // The online check's answers (the native module does not have it yet).
        cognito["online_check"] = json!({ "cluster": "jwks" });
    }
    let config = json!({
        "providers": [cognito, bots],
        "admin_principals": ["root"],
        "rules": [
            { "match": { "prefix": "/admin" }, "require": { "admin": true } },
            { "match": { "prefix": "/shadow" }, "require": { "admin": true }, "report_only": true },
        ],
    });
    let clusters = vec![
        cluster("upstream", upstream.port),
        cluster("jwks", jwks.port()),
        cluster("revocation", list.port()),
    ];
    let envoy = Envoy::start(&bootstrap_with_clusters(&config, clusters));
    let token = sign("key1", "k1", &id_claims(now()));
    envoy.wait_for_keys(&token);
    envoy.wait_for_stat(&format!("{P}.revocation.bots.entries"), 1);
    assert_eq!(get(envoy.port, "/").status, 401);
    assert_eq!(get_with_token(envoy.port, "/admin/x", &token).status, 403);
    assert_eq!(get_with_token(envoy.port, "/shadow/x", &token).status, 200);
    settled(&envoy, "denied.not_admin", 1);
    settled(&envoy, "denied.missing", 1);
    settled(&envoy, "report.denied.not_admin", 1);

    let s = samples(&envoy);
    let text = format!(
        "{s:#?}\n{}",
        get(envoy.admin_port, "/stats/prometheus")
            .body
            .lines()
            .filter(|l| l.contains("cognito_edge_auth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (name, labels, value) in [
        (
            "envoy_cognito_edge_auth_denied",
            "reason=\"missing\"",
            Some("1"),
        ),
        (
            "envoy_cognito_edge_auth_denied",
            "reason=\"not_admin\"",
            Some("1"),
        ),
        (
            "envoy_cognito_edge_auth_denied",
            "reason=\"expired\"",
            Some("0"),
        ),
        (
            "envoy_cognito_edge_auth_report_denied",
            "reason=\"not_admin\"",
            Some("1"),
        ),
        (
            "envoy_cognito_edge_auth_report_denied",
            "reason=\"missing\"",
            Some("0"),
        ),
        (
            "envoy_cognito_edge_auth_jwks_fetch",
            "provider=\"cognito\",result=\"success\"",
            None,
        ),
        (
            "envoy_cognito_edge_auth_jwks_fetch",
            "provider=\"cognito\",result=\"failure\"",
            Some("0"),
        ),
        (
            "envoy_cognito_edge_auth_jwks_fetch",
            "provider=\"bots\",result=\"success\"",
            None,
        ),
        (
            "envoy_cognito_edge_auth_jwks_keys",
            "provider=\"cognito\"",
            Some("1"),
        ),
        (
            "envoy_cognito_edge_auth_jwks_keys",
            "provider=\"bots\"",
            Some("1"),
        ),
        (
            "envoy_cognito_edge_auth_revocation_fetch",
            "provider=\"bots\",result=\"success\"",
            None,
        ),
        (
            "envoy_cognito_edge_auth_revocation_fetch",
            "provider=\"bots\",result=\"failure\"",
            Some("0"),
        ),
        (
            "envoy_cognito_edge_auth_revocation_entries",
            "provider=\"bots\"",
            Some("1"),
        ),
        ("envoy_cognito_edge_auth_cache", "result=\"hits\"", None),
        ("envoy_cognito_edge_auth_cache", "result=\"misses\"", None),
        ("envoy_cognito_edge_auth_allowed", "", None),
    ] {
        let labels = match labels {
            "" => format!("build=\"{}\"", prometheus_build()),
            l => format!("build=\"{}\",{l}", prometheus_build()),
        };
        let got = value_of(&s, name, &labels)
            .unwrap_or_else(|| panic!("{name}{{{labels}}} is not in /stats/prometheus:\n{text}"));
        if let Some(v) = value {
            assert_eq!(got, v, "{name}{{{labels}}}");
        }
    }
    if build() == Build::Wasm {
        for result in [
            "active",
            "revoked",
            "not_checkable",
            "throttled",
            "unreachable",
            "backed_off",
            "unchecked",
        ] {
            let labels = format!("build=\"wasm\",provider=\"cognito\",result=\"{result}\"");
            assert_eq!(
                value_of(&s, "envoy_cognito_edge_auth_online", &labels).as_deref(),
                Some("0"),
                "envoy_cognito_edge_auth_online{{{labels}}}:\n{text}"
            );
        }
    }
    // Every sample of the filter is one of these concepts: nothing left unlabelled by a
    // regex (a reason, a provider or a result baked into the name).
    let concepts = [
        "envoy_cognito_edge_auth_allowed",
        "envoy_cognito_edge_auth_denied",
        "envoy_cognito_edge_auth_report_denied",
        "envoy_cognito_edge_auth_jwks_fetch",
        "envoy_cognito_edge_auth_jwks_keys",
        "envoy_cognito_edge_auth_revocation_fetch",
        "envoy_cognito_edge_auth_revocation_entries",
        "envoy_cognito_edge_auth_cache",
        "envoy_cognito_edge_auth_online",
        "envoy_cognito_edge_auth_panics",
    ];
    for (name, labels, _) in &s {
        assert!(
            concepts.contains(&name.as_str()),
            "{name}{{{labels}}}:\n{text}"
        );
    }
    eprintln!(
        "{}",
        get(envoy.admin_port, "/stats/prometheus")
            .body
            .lines()
            .filter(|l| l.contains("envoy_cognito_edge_auth_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every Envoy example in `envoy/` ships the same `stats_config` (the one the tests' Envoys
/// use, from `envoy/production.yaml`), and docs/operations.md shows it; the Kubernetes
/// ConfigMaps hold those files verbatim (tests/deployment.rs).
#[test]
fn every_example_envoy_file_ships_the_labelled_metrics() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let production = std::fs::read_to_string(root.join("envoy/production.yaml")).unwrap();
    let start = production.find("\nstats_config:").unwrap() + 1;
    let len = production[start..].find("\n\n").unwrap();
    let block = &production[start..start + len];
    assert!(block.contains("tag_name: reason"), "{block}");
    let mut files: Vec<_> = std::fs::read_dir(root.join("envoy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    // And the operations doc shows that one.
    files.push(root.join("docs/operations.md"));
    for file in files {
        let mut text = std::fs::read_to_string(&file).unwrap();
        if file.ends_with("demo.yaml") {
            // A template (scripts/demo.sh): `$$` is a `$`.
            text = text.replace("$$", "$");
        }
        assert!(
            text.contains(block),
            "{} does not ship the stats_config of envoy/production.yaml",
            file.display()
        );
    }
}
