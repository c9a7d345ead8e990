//! End to end in a real browser: Debian's chromium (driven by playwright-core) signs in at the
//! edge through a real OpenID provider (oidc-provider on Cognito's routes, with Cognito-shaped
//! ID tokens), its own login form, Envoy with the filter, and the echo upstream.
//!
//! Needs `node`, `/usr/bin/chromium` and `tests/browser/node_modules` (`make e2e` installs
//! them: apt chromium, `npm ci` in tests/browser).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CLIENT: &str = "browser-app";
const SECRET: &str = "the-client-secret-of-browser-app";
/// 32 bytes, base64: the cookie key the VM gets from its environment.
const COOKIE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The filter configured for browser sign-in against the provider on `op_port`, with `extra`
/// merged into the top level, the provider and the login section.
fn gateway(op_port: u16, upstream_port: u16, extra: Value) -> Envoy {
    Envoy::start(&gateway_bootstrap(op_port, upstream_port, extra))
}

fn gateway_bootstrap(op_port: u16, upstream_port: u16, extra: Value) -> Value {
    let op = format!("http://localhost:{op_port}");
    let mut config = json!({
        "providers": [{ "name": "op", "issuer": op, "client_ids": [CLIENT],
            "jwks": { "cluster": "op", "uri": format!("{op}/.well-known/jwks.json") } }],
        "rules": [{ "match": { "prefix": "/" }, "require": { "authenticated": true } }],
        "login": {
            "provider": "op", "client_id": CLIENT,
            "client_secret_env": "CEA_CLIENT_SECRET", "cookie_key_env": "CEA_COOKIE_KEY",
            "domain": op, "token_cluster": "op", "external_scheme": "http", "logout_path": "/logout",
            "forward_id_token": true,
        },
    });
    for (section, fields) in extra.as_object().unwrap() {
        for (k, v) in fields.as_object().unwrap() {
            match section.as_str() {
                "provider" => config["providers"][0][k] = v.clone(),
                "login" => config["login"][k] = v.clone(),
                _ => config[k] = v.clone(),
            }
        }
    }
    let mut boot = bootstrap_with_clusters(
        &config,
        vec![cluster("upstream", upstream_port), cluster("op", op_port)],
    );
    set_filter_env(
        &mut boot,
        json!({ "CEA_CLIENT_SECRET": SECRET, "CEA_COOKIE_KEY": COOKIE_KEY }),
    );
    boot
}

fn identity(echo: &Value) -> (Option<&str>, Option<&str>) {
    let header = |name: &str| {
        echo["headers"]
            .as_array()?
            .iter()
            .find(|h| h[0] == name)
            .and_then(|h| h[1].as_str())
    };
    (header("x-auth-principal"), header("x-auth-email"))
}

/// The provider (tests/browser/provider.mjs), waiting for [`set_up`].
fn provider_process() -> Process {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/key1.pem");
    Process::start(
        Path::new("node"),
        &[
            browser_dir().join("provider.mjs").to_str().unwrap(),
            key.to_str().unwrap(),
            "k1",
            CLIENT,
            SECRET,
        ],
    )
}

/// Registers the gateway at `origin` with the provider; ID tokens live `id_token_ttl`
/// seconds (`None`: the provider's hour).
fn set_up(op: &Process, origin: &str, id_token_ttl: Option<u64>) {
    set_up_with(op, origin, json!({ "id_token_ttl": id_token_ttl }));
}

/// [`set_up`] with `extra` setup fields (tests/browser/provider.mjs).
fn set_up_with(op: &Process, origin: &str, extra: Value) {
    let mut setup = json!({ "redirect_uri": format!("{origin}/oauth2/callback"),
        "logout_uri": format!("{origin}/") });
    for (k, v) in extra.as_object().unwrap() {
        setup[k] = v.clone();
    }
    let r = send(
        op.port,
        "POST",
        "/__setup",
        &[],
        setup.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Runs tests/browser/drive.mjs (in `mode`) and returns what it observed.
fn drive(origin: &str, op: &Process, mode: &str, envoy: &Envoy) -> Value {
    run_driver("drive.mjs", origin, op, &[mode.as_ref()], envoy)
}

/// Runs a driver script of tests/browser with the gateway's and the provider's origins, a fresh
/// profile and `args`; returns the JSON it printed last, after checking it reports no error.
fn run_driver(
    script: &str,
    origin: &str,
    op: &Process,
    args: &[&std::ffi::OsStr],
    envoy: &Envoy,
) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join(script))
        .args([origin, &format!("http://localhost:{}", op.port)])
        .arg(profile.path())
        .args(args)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("the driver printed no JSON ({e}): {stdout}"));
    eprintln!("observed: {seen:#}");
    assert!(
        seen["error"].is_null(),
        "the browser run failed: {seen:#}\n{}",
        envoy.log()
    );
    seen
}

#[test]
fn an_expiring_session_is_refreshed_without_the_user_seeing_it() {
    let op = provider_process();
    let upstream = echo_upstream();
    // ID tokens of 4 s, no clock skew, renewed when 1 s is left.
    let envoy = gateway(
        op.port,
        upstream.port,
        json!({
            "provider": { "clock_skew_seconds": 0 },
            "login": { "refresh_before_seconds": 1 },
            "top": { "claim_to_headers": [{ "header_name": "x-token-iat", "claim_name": "iat" }] },
        }),
    );
    let origin = format!("http://localhost:{}", envoy.port);
    set_up(&op, &origin, Some(4));
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.jwks.op.keys", 1);
    let seen = drive(&origin, &op, "refresh", &envoy);
    assert!(seen["first_iat"].is_string(), "{seen}");
    assert_ne!(
        seen["renewed_iat"], seen["first_iat"],
        "a newer ID token reached the upstream"
    );
    assert_eq!(seen["renewed_url"], format!("{origin}/app/r"));
    assert!(
        seen["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == 200),
        "{seen}"
    );
    assert_eq!(seen["refresh_went_to_provider"], false, "no sign-in page");
    assert_eq!(seen["parallel"], json!([200, 200, 200, 200, 200]));
    assert_eq!(seen["parallel_went_to_provider"], false);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.refresh.completed", 1);
    // Never counted (the .wasm defines a sign-in counter when first counted, the native module
    // up front, at zero).
    assert_eq!(
        envoy
            .stat("wasmcustom.cognito_edge_auth.refresh.failed")
            .unwrap_or(0),
        0
    );
}

#[test]
fn a_browser_signs_in_at_the_edge() {
    let op = provider_process();
    let upstream = echo_upstream();
    let envoy = gateway(op.port, upstream.port, json!({}));
    let origin = format!("http://localhost:{}", envoy.port);
    set_up(&op, &origin, None);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.jwks.op.keys", 1);

    // An API call without a session keeps today's 401, a navigation is sent to sign in.
    let api = request(
        envoy.port,
        "GET",
        "/api/x",
        &[("accept", b"application/json")],
    );
    assert_eq!(api.status, 401);
    let nav = request(
        envoy.port,
        "GET",
        "/app",
        &[("accept", b"text/html"), ("sec-fetch-mode", b"navigate")],
    );
    assert_eq!(nav.status, 302);
    assert!(nav
        .header("location")
        .unwrap()
        .starts_with(&format!("http://localhost:{}/oauth2/authorize?", op.port)));

    let seen = drive(&origin, &op, "everything", &envoy);

    // Signed in on the provider's form, back at the original page with the identity.
    assert!(seen["login_form_url"]
        .as_str()
        .unwrap()
        .contains(&format!("localhost:{}", op.port)));
    assert_eq!(seen["after_login_url"], format!("{origin}/app/page?x=1"));
    assert_eq!(
        identity(&seen["after_login"]),
        (Some("alice"), Some("alice@example.com"))
    );
    let cookies_upstream: Vec<&Value> = seen["after_login"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "cookie")
        .collect();
    assert!(
        cookies_upstream
            .iter()
            .all(|h| !h[1].as_str().unwrap().contains("cea_")),
        "the filter's cookies stay at the edge: {cookies_upstream:?}"
    );
    let bearer = seen["after_login"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .and_then(|h| h[1].as_str());
    assert!(
        bearer.is_some_and(|b| b.starts_with("Bearer ey")),
        "forward_id_token: {bearer:?}"
    );
    let cookie = &seen["session_cookie"];
    assert_eq!(
        (cookie["secure"].as_bool(), cookie["httpOnly"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        (cookie["sameSite"].as_str(), cookie["path"].as_str()),
        (Some("Lax"), Some("/"))
    );
    let size = cookie["size"].as_u64().unwrap();
    eprintln!("session cookie: {size} bytes (name=value)");
    assert!(size < 4096, "{size}");
    assert_eq!(
        seen["login_cookies_left"], 0,
        "the attempt's cookie is cleared"
    );
    // A reload needs no login.
    assert_eq!(seen["reload_went_to_provider"], false);
    assert_eq!(identity(&seen["reload"]).1, Some("alice@example.com"));
    // XHR: 200 with the session (identity upstream), 401 without, never a redirect.
    assert_eq!(seen["xhr"]["with_session"], 200);
    assert_eq!(
        identity(&seen["xhr"]["with_session_body"]).1,
        Some("alice@example.com")
    );
    assert_eq!(
        (
            seen["xhr"]["without"].as_u64(),
            seen["xhr"]["without_redirected"].as_bool()
        ),
        (Some(401), Some(false))
    );
    // A tampered cookie: a new login, then a new session.
    assert_eq!(seen["tampered_went_to_provider"], true);
    assert_eq!(identity(&seen["tampered"]).1, Some("alice@example.com"));
    assert_eq!(seen["tampered_new_cookie"], true);
    // Logout: Cognito's /logout with client_id and logout_uri, the session gone, the next
    // visit through the provider again.
    let logout = seen["logout_url"].as_str().unwrap();
    assert!(logout.starts_with(&format!("http://localhost:{}/logout?client_id={CLIENT}&logout_uri=http%3A%2F%2Flocalhost%3A{}%2F", op.port, envoy.port)), "{logout}");
    assert_eq!(seen["logout_cleared"], true);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.logout.revoked", 1);
    // Never counted (the .wasm defines a sign-in counter when first counted, the native module
    // up front, at zero).
    assert_eq!(
        envoy
            .stat("wasmcustom.cognito_edge_auth.logout.revoke_failed")
            .unwrap_or(0),
        0
    );
    assert_eq!(seen["after_logout_went_to_provider"], true);
    // An open redirect in the return URL (`//evil.example/…`): the browser stays on the
    // gateway. With rules the path check refuses it (400) before any login; a return path
    // that is not a same-origin path is never kept (the unit tests of session::url).
    let landed = seen["open_redirect_url"].as_str().unwrap();
    assert!(landed.starts_with(&format!("{origin}/")), "{landed}");
    assert_eq!(seen["open_redirect_status"], 400, "{landed}");
    // Two tabs signing in at once both end on their own page, signed in.
    for (tab, path) in seen["two_tabs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["/tab/one", "/tab/two"])
    {
        assert_eq!(tab["url"], format!("{origin}{path}"));
        assert_eq!(identity(&tab["echo"]).1, Some("alice@example.com"));
    }
    // The secret and the code never reach the log.
    assert!(!envoy.log().contains(SECRET));
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.login.completed", 2);
}

/// A self-signed certificate for `app.example.test` and its siblings: (cert, key) files.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=example.test"])
        .args([
            "-addext",
            "subjectAltName=DNS:*.example.test,DNS:attacker.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req");
    (cert, key)
}

/// A sibling host of the same site cannot plant a session or a login state, a cross-site page
/// cannot flood a browser with sign-ins until its next one fails, and a route no session can
/// satisfy is a page, not a loop — in Chromium, with the gateway on HTTPS at
/// `app.example.test`, the sibling at `evil.example.test`, the other site at `attacker.test`.
#[test]
fn an_attacker_on_a_sibling_host_or_another_site_cannot_plant_flood_or_loop() {
    let op = provider_process();
    let upstream = echo_upstream();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let mut boot = gateway_bootstrap(
        op.port,
        upstream.port,
        json!({
            "provider": { "user_pool_id": "us-east-1_Abc123", "online_check": { "cluster": "op" } },
            "login": { "external_scheme": "https" },
            "top": { "rules": [
                { "match": { "prefix": "/live" }, "require": { "authenticated": true, "active": true } },
                { "match": { "prefix": "/" }, "require": { "authenticated": true } }] },
        }),
    );
    boot["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": { "tls_certificates": [{
                "certificate_chain": { "filename": cert.to_str().unwrap() },
                "private_key": { "filename": key.to_str().unwrap() } }] } } });
    let envoy = Envoy::start(&boot);
    let origin = format!("https://app.example.test:{}", envoy.port);
    set_up(&op, &origin, None);
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.jwks.op.keys", 1);

    let seen = run_driver(
        "attacks.mjs",
        &origin,
        &op,
        &[cert.as_os_str(), key.as_os_str()],
        &envoy,
    );
    assert_eq!(seen["attacker_identity"], "mallory@example.com");
    assert_eq!(seen["csrf_prepared"], true);
    // 1. The browser refused the __Host- names from the sibling; what it took (unprefixed,
    //    __Secure-) is not a session: the victim is sent to sign in.
    let planted: Vec<&str> = seen["cookies_after_plant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        !planted.iter().any(|c| c.starts_with("__Host-")),
        "{planted:?}"
    );
    assert!(
        planted.contains(&"cea_session_0"),
        "the sibling did plant: {planted:?}"
    );
    assert!(seen["planted_without_session_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("http://localhost:{}/", op.port)));
    // 2. Signed in as herself, a plant does not change who she is.
    assert_eq!(seen["signed_in_identity"], "alice@example.com");
    assert_eq!(seen["planted_with_session_identity"], "alice@example.com");
    // 3. Login CSRF: mallory's callback with a planted login state is refused, no session.
    assert_eq!(seen["csrf_status"], 400, "{seen:#}");
    assert_eq!(seen["csrf_session"], 0);
    // 4. The flood leaves at most MAX_LOGIN_STATES login states, and the next sign-in works.
    assert!(
        seen["login_states_after_flood"].as_u64().unwrap() <= 4,
        "{seen:#}"
    );
    assert_eq!(seen["after_flood_url"], format!("{origin}/app/after-flood"));
    assert_eq!(seen["after_flood_identity"], "alice@example.com");
    // 5. No loop: a page that says why, no trip to sign in.
    assert_eq!(seen["live_status"], 401);
    assert_eq!(seen["live_url"], format!("{origin}/live/report"));
    assert!(
        seen["live_page"].as_str().unwrap().contains("checked"),
        "{seen:#}"
    );
    assert_eq!(seen["live_went_to_provider"], false);
    assert!(!envoy.log().contains(SECRET));
}

/// Item 8 of the sessions work: Cognito's sign-out ends a browser session. The hosted-UI
/// stand-in grants the admin scope (the app client allows it; the filter asks for it), the
/// session keeps its access token, and `GetUser` (the Cognito stand-in) judges it.
#[test]
fn a_cognito_sign_out_sends_the_browser_through_sign_in_again() {
    let op = provider_process();
    let cognito = cognito::Cognito::start();
    let upstream = echo_upstream();
    let mut boot = gateway_bootstrap(
        op.port,
        upstream.port,
        json!({
            "provider": { "user_pool_id": "us-east-1_Abc123",
                "online_check": { "cluster": "cognito_idp", "cache_seconds": 1 } },
            "top": { "rules": [
                { "match": { "prefix": "/live" }, "require": { "authenticated": true, "active": true } },
                { "match": { "prefix": "/" }, "require": { "authenticated": true } }] },
        }),
    );
    boot["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(cluster("cognito_idp", cognito.port));
    let envoy = Envoy::start(&boot);
    let origin = format!("http://localhost:{}", envoy.port);
    set_up_with(&op, &origin, json!({ "admin_scope": true }));
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.jwks.op.keys", 1);

    let cognito_origin = format!("http://127.0.0.1:{}", cognito.port);
    let seen = run_driver(
        "drive.mjs",
        &origin,
        &op,
        &["cognito-signout".as_ref(), cognito_origin.as_ref()],
        &envoy,
    );
    assert_eq!(seen["before_identity"], "alice@example.com");
    assert_eq!(seen["again_identity"], "alice@example.com");
    assert_eq!(
        seen["again_went_to_provider"], false,
        "a live session stays"
    );
    assert_eq!(seen["sign_out_status"], 200);
    assert_eq!(seen["after_went_to_provider"], true, "{seen:#}");
    assert_eq!(seen["after_identity"], "alice@example.com", "a new session");
    assert!(
        cognito.calls_for("alice") >= 3,
        "every session checked with Cognito"
    );
    envoy.wait_for_stat("wasmcustom.cognito_edge_auth.login.completed", 2);
    assert!(!envoy.log().contains(SECRET));
}
