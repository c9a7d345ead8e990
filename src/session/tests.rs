//! The login state machine, driven without a VM: start → callback → finish → session.

use super::*;
use crate::cache::TokenCache;
use crate::config::login::tests::{env, KEY, OLD_KEY};
use crate::decision::{decide_with, Decision, Lists, Request};
use crate::signature::PureRust;
use crate::verify::tests::{id_claims, keys, sign, with, NOW};
use base64::engine::general_purpose::STANDARD;
use serde_json::{json, Value};

/// No fetched revocation lists and no online answers.
const NO_LISTS: Lists<'static> = Lists {
    fetched: &[],
    online: &crate::online::NoAnswers,
};

type Headers = Vec<(String, Vec<u8>)>;

const HOST: &str = "app.example.com";

fn config_with(login: Value, top: Value) -> Config {
    let mut c = json!({
        "providers": [{ "name": "cognito", "user_pool_id": crate::test_tokens::POOL,
            "client_ids": ["client1", "client2"],
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } }],
        "login": login,
    });
    for (k, v) in top.as_object().unwrap() {
        c[k] = v.clone();
    }
    Config::parse_with_env(c.to_string().as_bytes(), &env).unwrap()
}

fn login_json() -> Value {
    json!({ "provider": "cognito", "client_id": "client1", "client_secret_env": "SECRET",
            "cookie_key_env": "KEY", "domain": "https://auth.example.com", "token_cluster": "auth",
            "logout_path": "/logout" })
}

fn config() -> Config {
    config_with(login_json(), json!({}))
}

fn random(b: u8) -> Random {
    Random {
        state: [b; 16],
        verifier: [b.wrapping_add(1); 32],
        nonce: [b.wrapping_add(2); 16],
        seal: [b.wrapping_add(3); 24],
    }
}

fn header<'r>(r: &'r Response, name: &str) -> Vec<&'r str> {
    r.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `Cookie` header a browser sends back for these `Set-Cookie`s (those not cleared).
fn cookie_header(set_cookies: &[&str]) -> (String, Vec<u8>) {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .filter_map(|c| c.split(';').next())
        .collect();
    ("cookie".into(), pairs.join("; ").into_bytes())
}

fn navigation() -> Headers {
    vec![
        (":authority".into(), HOST.as_bytes().to_vec()),
        (
            "accept".into(),
            b"text/html,application/xhtml+xml,*/*;q=0.8".to_vec(),
        ),
        ("sec-fetch-mode".into(), b"navigate".to_vec()),
        ("sec-fetch-dest".into(), b"document".to_vec()),
    ]
}

fn param(location: &str, name: &str) -> String {
    let query = location.split_once('?').unwrap().1;
    url::query_param(query.as_bytes(), name).unwrap()
}

/// start → (the browser at Cognito) → the callback's request headers and query.
fn started(config: &Config, path: &str) -> (Response, Headers, String) {
    let login = config.login.as_ref().unwrap();
    let r = start(login, HOST.as_bytes(), path.as_bytes(), &random(1), NOW).unwrap();
    let location = header(&r, "location")[0].to_string();
    let state = param(&location, "state");
    let mut headers = navigation();
    headers.push(cookie_header(&header(&r, "set-cookie")));
    let callback = format!("/oauth2/callback?code=the-code&state={state}");
    (r, headers, callback)
}

fn id_token_with_nonce(nonce: &str) -> String {
    sign("key1", "k1", &with(id_claims(), "nonce", nonce.into()))
}

/// A token endpoint's answer to a step of `config`'s sign-in, verified with the test keys.
fn answer<'a>(
    config: &'a Config,
    status: Option<u32>,
    body: &'a [u8],
    keys: &'a [Option<crate::jwks::KeySet>],
    now: u64,
    random: &'a Random,
) -> Answered<'a> {
    Answered {
        config,
        login: config.login.as_ref().unwrap(),
        status,
        body,
        keys,
        signatures: &PureRust,
        now,
        random,
    }
}

fn finished(config: &Config, path: &str) -> Response {
    finished_answering(
        config,
        path,
        json!({ "access_token": "a", "token_type": "Bearer" }),
    )
}

/// The whole flow, the token endpoint answering `body` plus the ID token for the attempt's
/// nonce.
fn finished_answering(config: &Config, path: &str, mut body: Value) -> Response {
    let (r, headers, callback) = started(config, path);
    let nonce = param(header(&r, "location")[0], "nonce");
    let (_, pending) = callback_of(config, &headers, &callback).unwrap();
    body["id_token"] = id_token_with_nonce(&nonce).into();
    let body = body.to_string();
    finish(
        &answer(config, Some(200), body.as_bytes(), &keys(), NOW, &random(9)),
        &pending,
    )
    .unwrap()
}

fn callback_of(config: &Config, headers: &Headers, path: &str) -> Result<(Call, Pending), Failure> {
    callback(
        config.login.as_ref().unwrap(),
        HOST.as_bytes(),
        path.as_bytes(),
        headers,
        NOW,
    )
}

#[test]
fn a_navigation_is_one_an_api_call_is_not() {
    assert!(is_navigation(b"GET", &navigation()));
    assert!(is_navigation(b"HEAD", &navigation()));
    assert!(!is_navigation(b"POST", &navigation()));
    let accept_only = vec![("accept".to_string(), b"text/html".to_vec())];
    assert!(
        is_navigation(b"GET", &accept_only),
        "no Fetch Metadata: Accept decides"
    );
    assert!(!is_navigation(b"GET", &[]), "no Accept");
    let json_accept = vec![("accept".to_string(), b"application/json".to_vec())];
    assert!(!is_navigation(b"GET", &json_accept));
    for (name, value) in [
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-mode", "same-origin"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-dest", "iframe"),
        ("x-requested-with", "XMLHttpRequest"),
    ] {
        let mut h = navigation();
        h.retain(|(n, _)| n != name);
        h.push((name.into(), value.as_bytes().to_vec()));
        assert!(!is_navigation(b"GET", &h), "{name}: {value}");
    }
}

#[test]
fn start_redirects_to_authorize_with_pkce_state_and_nonce() {
    let c = config();
    let (r, _, _) = started(&c, "/app/page?x=1");
    assert_eq!(r.status, 302);
    let location = header(&r, "location")[0];
    assert!(
        location.starts_with("https://auth.example.com/oauth2/authorize?"),
        "{location}"
    );
    assert_eq!(param(location, "response_type"), "code");
    assert_eq!(param(location, "client_id"), "client1");
    assert_eq!(
        param(location, "redirect_uri"),
        "https://app.example.com/oauth2/callback"
    );
    assert_eq!(param(location, "scope"), "openid email profile");
    assert_eq!(param(location, "code_challenge_method"), "S256");
    let verifier = URL_SAFE_NO_PAD.encode([2u8; 32]);
    assert_eq!(
        param(location, "code_challenge"),
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    );
    assert!(
        !location.contains(&verifier),
        "the verifier stays in the cookie"
    );
    let state = param(location, "state");
    assert_eq!(state.len(), 22);
    assert_eq!(param(location, "nonce").len(), 22);
    let cookies = header(&r, "set-cookie");
    assert_eq!(cookies.len(), 1);
    let cookie = cookies[0];
    assert!(
        cookie.starts_with(&format!("cea_login_{state}=")),
        "{cookie}"
    );
    for attribute in [
        "Path=/oauth2/callback",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(attribute), "{cookie}: {attribute}");
    }
    assert!(!cookie.contains("/app/page"), "sealed, not readable");
}

#[test]
fn the_whole_flow_sets_a_session_and_returns_to_the_original_path() {
    let c = config();
    let r = finished(&c, "/app/page?x=1");
    assert_eq!(r.status, 302);
    assert_eq!(header(&r, "location"), ["/app/page?x=1"]);
    let cookies = header(&r, "set-cookie");
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("cea_session_0="))
        .unwrap();
    for attribute in [
        "Path=/;",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=3600",
    ] {
        assert!(
            session_cookie.contains(attribute),
            "{session_cookie}: {attribute}"
        );
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("cea_login_") && c.contains("Max-Age=0")),
        "the attempt's cookie is cleared: {cookies:?}"
    );
    let browser = vec![cookie_header(&cookies)];
    let login = c.login.as_ref().unwrap();
    let Session::Token(token) = session(login, &browser) else {
        panic!("no session")
    };
    assert_eq!(
        verify::verify(&token, &c.providers, &keys(), &PureRust, NOW)
            .unwrap()
            .all["email"],
        "alice@example.com"
    );
}

#[test]
fn the_callback_exchanges_the_code_with_client_secret_basic_and_the_verifier() {
    let c = config();
    let (_, headers, callback) = started(&c, "/");
    let (call, _) = callback_of(&c, &headers, &callback).unwrap();
    assert_eq!(call.cluster, "auth");
    let h = |name: &str| {
        call.headers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(h(":method"), "POST");
    assert_eq!(h(":path"), "/oauth2/token");
    assert_eq!(h(":authority"), "auth.example.com");
    assert_eq!(h("content-type"), "application/x-www-form-urlencoded");
    assert_eq!(
        h("authorization"),
        format!("Basic {}", STANDARD.encode("client1:s3cret"))
    );
    let body = String::from_utf8(call.body).unwrap();
    for part in [
        "grant_type=authorization_code",
        "code=the-code",
        "client_id=client1",
        "redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth2%2Fcallback",
        &format!("code_verifier={}", URL_SAFE_NO_PAD.encode([2u8; 32])),
    ] {
        assert!(body.contains(part), "{body}: {part}");
    }
    assert!(!body.contains("s3cret"), "the secret is in the header only");
}

#[test]
fn a_callback_without_its_own_login_state_is_refused() {
    let c = config();
    let (_, headers, callback) = started(&c, "/");
    let state = callback.split("state=").nth(1).unwrap();
    // Another state (another tab's, or an attacker's): no cookie of that name.
    let other = callback.replace(state, &URL_SAFE_NO_PAD.encode([7u8; 16]));
    assert_eq!(
        callback_of(&c, &headers, &other).unwrap_err(),
        Failure::State
    );
    // No cookie at all (another browser: login CSRF).
    assert_eq!(
        callback_of(&c, &navigation(), &callback).unwrap_err(),
        Failure::State
    );
    // A tampered cookie.
    let mut tampered = headers.clone();
    let cookie = String::from_utf8(tampered.last().unwrap().1.clone()).unwrap();
    let flipped = if cookie.ends_with('A') {
        cookie[..cookie.len() - 1].to_string() + "B"
    } else {
        cookie[..cookie.len() - 1].to_string() + "A"
    };
    tampered.last_mut().unwrap().1 = flipped.into_bytes();
    assert_eq!(
        callback_of(&c, &tampered, &callback).unwrap_err(),
        Failure::State
    );
    // Too late.
    let login = c.login.as_ref().unwrap();
    let late = super::callback(
        login,
        HOST.as_bytes(),
        callback.as_bytes(),
        &headers,
        NOW + LOGIN_STATE_SECONDS,
    );
    assert_eq!(late.unwrap_err(), Failure::State);
    // The provider's error, no code, a bad host.
    let error = format!("/oauth2/callback?error=access_denied&state={state}");
    assert_eq!(
        callback_of(&c, &headers, &error).unwrap_err(),
        Failure::Provider
    );
    let no_code = format!("/oauth2/callback?state={state}");
    assert_eq!(
        callback_of(&c, &headers, &no_code).unwrap_err(),
        Failure::NoCode
    );
    assert_eq!(
        super::callback(login, b"evil/x", callback.as_bytes(), &headers, NOW).unwrap_err(),
        Failure::BadHost
    );
    assert!(callback_of(&c, &headers, &callback).is_ok());
}

#[test]
fn a_callback_before_the_keys_are_in_comes_back_with_its_code_unused() {
    let c = config();
    let (_, headers, callback) = started(&c, "/");
    let Decision::Deny(d) = decide_keyed(&c, &[None], "GET", &callback, &headers) else {
        panic!("exchanged without keys")
    };
    assert_eq!(
        (d.response.status, d.reason),
        (503, "login_keys_not_loaded")
    );
    assert_eq!(header(&d.response, "retry-after"), ["1"]);
    assert!(d
        .response
        .body
        .contains("<meta http-equiv=\"refresh\" content=\"1\">"));
    let code = param(&callback, "code");
    assert!(!d.response.body.contains(&code), "the page shows the code");
    // No "Set-Cookie": the login state stays for the retry.
    assert!(header(&d.response, "set-cookie").is_empty());
    // Once the keys are in, the same callback is exchanged.
    assert!(matches!(
        decide_at(&c, "GET", &callback, &headers),
        Decision::Call(_)
    ));
    // A callback that is no valid sign-in shows its failure, keys or not: no endless reload.
    let Decision::Deny(d) = decide_keyed(&c, &[None], "GET", &callback, &navigation()) else {
        panic!()
    };
    assert_eq!(d.reason, "login_state");
    assert!(!d.response.body.contains("refresh"));
    assert!(header(&d.response, "retry-after").is_empty());
}

#[test]
fn finish_refuses_what_a_bearer_token_would_not_pass_and_a_wrong_nonce() {
    let c = config();
    let (r, headers, callback) = started(&c, "/");
    let nonce = param(header(&r, "location")[0], "nonce");
    let (_, pending) = callback_of(&c, &headers, &callback).unwrap();
    let run = |status: Option<u32>, body: Value| {
        let body = body.to_string();
        finish(
            &answer(&c, status, body.as_bytes(), &keys(), NOW, &random(9)),
            &pending,
        )
    };
    let good = id_token_with_nonce(&nonce);
    assert!(run(Some(200), json!({ "id_token": good })).is_ok());
    assert_eq!(
        run(Some(400), json!({ "error": "invalid_grant" })).unwrap_err(),
        Failure::Exchange
    );
    assert_eq!(run(None, json!({})).unwrap_err(), Failure::Exchange);
    assert_eq!(
        run(Some(200), json!({ "access_token": "x" })).unwrap_err(),
        Failure::TokenResponse
    );
    assert_eq!(
        run(
            Some(200),
            json!({ "id_token": id_token_with_nonce("other") })
        )
        .unwrap_err(),
        Failure::Nonce
    );
    let no_nonce = sign("key1", "k1", &id_claims());
    assert_eq!(
        run(Some(200), json!({ "id_token": no_nonce })).unwrap_err(),
        Failure::Nonce
    );
    let expired = sign(
        "key1",
        "k1",
        &with(
            with(id_claims(), "nonce", nonce.clone().into()),
            "exp",
            (NOW - 3600).into(),
        ),
    );
    assert_eq!(
        run(Some(200), json!({ "id_token": expired })).unwrap_err(),
        Failure::IdToken(VerifyError::Expired)
    );
    let other_client = sign(
        "key1",
        "k1",
        &with(
            with(id_claims(), "nonce", nonce.clone().into()),
            "aud",
            "client2".into(),
        ),
    );
    assert_eq!(
        run(Some(200), json!({ "id_token": other_client })).unwrap_err(),
        Failure::IdToken(VerifyError::Audience)
    );
    let access = sign(
        "key1",
        "k1",
        &with(
            crate::verify::tests::access_claims(),
            "nonce",
            nonce.clone().into(),
        ),
    );
    assert!(matches!(
        run(Some(200), json!({ "id_token": access })).unwrap_err(),
        Failure::IdToken(_)
    ));
    // The policy of the return path applies.
    let admin_only = config_with(
        login_json(),
        json!({ "rules": [{ "match": { "prefix": "/" }, "require": { "admin": true } }] }),
    );
    let body = json!({ "id_token": good }).to_string();
    let forbidden = finish(
        &answer(
            &admin_only,
            Some(200),
            body.as_bytes(),
            &keys(),
            NOW,
            &random(9),
        ),
        &pending,
    );
    assert_eq!(forbidden.unwrap_err(), Failure::Forbidden);
}

#[test]
fn an_error_page_shows_no_secret() {
    for f in [
        Failure::State,
        Failure::Exchange,
        Failure::Nonce,
        Failure::IdToken(VerifyError::BadSignature),
        Failure::Forbidden,
    ] {
        let page = f.page();
        assert!(page.body.contains("Sign-in failed"));
        assert!(!page.body.contains("s3cret") && !page.body.contains("the-code"));
        assert_eq!(header(&page, "content-type"), ["text/html; charset=utf-8"]);
    }
    assert_eq!(Failure::Exchange.page().status, 502);
    assert_eq!(Failure::Forbidden.page().status, 403);
}

#[test]
fn an_open_redirect_in_the_return_path_becomes_the_root() {
    let c = config();
    for path in ["//evil.example/", "/\\evil.example/", "/%0d%0a\r\nx"] {
        let r = finished(&c, path);
        assert_eq!(header(&r, "location"), ["/"], "{path:?}");
    }
}

#[test]
fn a_session_cookie_of_a_cognito_id_token_is_small_and_a_large_one_is_split() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let token = id_token_with_nonce(&"n".repeat(22));
    let cookies = session_cookies(login, &token, None, 3600, &[1; 24]).unwrap();
    assert_eq!(cookies.len(), 1);
    let size = cookies[0].len();
    // A Cognito-shaped ID token (RS256, 2048-bit key) of ~0.9 KB: its cookie ~1.3 KB.
    println!("ID token {} bytes → Set-Cookie {size} bytes", token.len());
    assert!(size < 2 * token.len() && size < 4096, "{size}");
    // With a Cognito refresh token (an encrypted JWT of about 1.8 KB) the session still fits
    // in one cookie.
    let with_refresh =
        session_cookies(login, &token, Some(&"r".repeat(1800)), 3600, &[1; 24]).unwrap();
    println!(
        "with a 1800-byte refresh token → {} cookie(s), {} bytes",
        with_refresh.len(),
        with_refresh[0].len()
    );
    assert_eq!(with_refresh.len(), 1);
    assert!(with_refresh[0].len() < 4096);
    // A user in a hundred long-named groups: a 17 KB token in numbered cookies.
    let groups: Vec<String> = (0..100)
        .map(|i| format!("{i:03}-{}", "g".repeat(118)))
        .collect();
    let big = sign(
        "key1",
        "k1",
        &with(id_claims(), "cognito:groups", json!(groups)),
    );
    let cookies = session_cookies(login, &big, None, 3600, &[1; 24]).unwrap();
    assert!(cookies.len() > 4, "{}", cookies.len());
    assert!(cookies.iter().all(|c| c.len() < 4096));
    let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
    assert_eq!(
        session(login, &[cookie_header(&refs)]),
        Session::Token(big.clone())
    );
    // Beyond MAX_CHUNKS cookies the login fails rather than set a session no browser keeps.
    let huge = sign(
        "key1",
        "k1",
        &with(id_claims(), "custom:pad", "x".repeat(40_000).into()),
    );
    assert_eq!(
        session_cookies(login, &huge, None, 3600, &[1; 24]).unwrap_err(),
        Failure::TooLarge
    );
}

#[test]
fn a_session_opens_only_with_a_configured_key_and_untouched() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let cookies = session_cookies(login, "a.b.c", None, 60, &[1; 24]).unwrap();
    let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
    let good = cookie_header(&refs);
    assert_eq!(
        session(login, std::slice::from_ref(&good)),
        Session::Token("a.b.c".into())
    );
    assert_eq!(session(login, &[]), Session::None);
    let mut bad = good.clone();
    let last = bad.1.len() - 1;
    bad.1[last] = if bad.1[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(session(login, &[bad]), Session::Unreadable);
    // Rotation: the new key seals, the old one still opens.
    let mut rotated = login_json();
    rotated["cookie_key_env"] = "OLD_KEY".into();
    let old = config_with(rotated, json!({}));
    let old_cookies =
        session_cookies(old.login.as_ref().unwrap(), "a.b.c", None, 60, &[1; 24]).unwrap();
    let refs: Vec<&str> = old_cookies.iter().map(String::as_str).collect();
    let from_old = cookie_header(&refs);
    assert_eq!(
        session(login, std::slice::from_ref(&from_old)),
        Session::Unreadable,
        "a foreign key"
    );
    let mut both = login_json();
    both["previous_cookie_key_env"] = "OLD_KEY".into();
    let both = config_with(both, json!({}));
    assert_eq!(
        session(both.login.as_ref().unwrap(), &[from_old]),
        Session::Token("a.b.c".into())
    );
    assert_ne!(KEY, OLD_KEY);
}

#[test]
fn the_upstream_gets_the_cookies_without_the_filters_own() {
    let login = config().login.unwrap();
    let h = |v: &str| vec![("cookie".to_string(), v.as_bytes().to_vec())];
    assert_eq!(upstream_cookie(&login, &h("a=1; b=2")), None, "unchanged");
    assert_eq!(upstream_cookie(&login, &[]), None);
    assert_eq!(upstream_cookie(&login, &h("cea_session_0=x")), Some(None));
    assert_eq!(
        upstream_cookie(
            &login,
            &h("a=1; cea_session_0=x; cea_session_1=y; cea_login_abc=z; b=2")
        ),
        Some(Some("a=1; b=2".into()))
    );
    let mut two = h("a=1");
    two.extend(h("cea_session_0=x"));
    assert_eq!(upstream_cookie(&login, &two), Some(Some("a=1".into())));
}

#[test]
fn a_session_request_replaces_what_it_may_carry_and_adds_only_owned_headers() {
    let mut login = login_json();
    login["forward_id_token"] = json!(true);
    let c = config_with(login, json!({}));
    let r = finished(&c, "/app");
    let (name, mut cookie) = cookie_header(&header(&r, "set-cookie"));
    cookie.extend_from_slice(b"; theme=dark");
    // The session, an application cookie, and a forged identity header.
    let headers = vec![
        (name, cookie),
        ("x-auth-email".to_string(), b"root@example.com".to_vec()),
    ];
    let Decision::Allow(a) = decide_at(&c, "GET", "/app", &headers) else {
        panic!()
    };
    assert_eq!(a.remove, ["x-auth-email"]);
    // Added, never replaced: every name is one the filter owns, so none is left in the
    // request once `remove` is done.
    assert!(!a.set.is_empty());
    for (n, _) in a.set.iter() {
        assert!(c.identity.strips(n), "{n} is not an identity header");
    }
    let replaced: Vec<&str> = a.replace.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(replaced, ["authorization", "cookie"]);
    assert!(
        a.replace[0].1.starts_with("Bearer ey"),
        "{}",
        a.replace[0].1
    );
    assert_eq!(a.replace[1].1, "theme=dark");
}

#[test]
fn logout_clears_the_session_and_goes_to_cognito_logout() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let r = logout(login, HOST.as_bytes(), &[]).unwrap();
    let location = header(&r, "location")[0];
    assert!(
        location.starts_with("https://auth.example.com/logout?"),
        "{location}"
    );
    assert_eq!(param(location, "client_id"), "client1");
    assert_eq!(param(location, "logout_uri"), "https://app.example.com/");
    assert!(header(&r, "set-cookie")
        .iter()
        .all(|c| c.contains("Max-Age=0")));
}

fn decide_at(c: &Config, method: &str, path: &str, headers: &Headers) -> Decision {
    decide_keyed(c, &keys(), method, path, headers)
}

/// As [`decide_at`], with these keys.
fn decide_keyed(
    c: &Config,
    keys: &[Option<crate::jwks::KeySet>],
    method: &str,
    path: &str,
    headers: &Headers,
) -> Decision {
    let request = Request {
        method: method.as_bytes(),
        path: path.as_bytes(),
        headers,
    };
    decide_with(
        &request,
        c,
        keys,
        &NO_LISTS,
        &PureRust,
        &mut TokenCache::new(0),
        NOW,
        &|| Some(random(1)),
    )
}

#[test]
fn decisions_with_login_configured() {
    let c = config();
    // A navigation without a session is sent to sign in; an XHR or an API call is not.
    assert!(matches!(
        decide_at(&c, "GET", "/app", &navigation()),
        Decision::Redirect(_)
    ));
    let xhr = vec![
        ("accept".to_string(), b"*/*".to_vec()),
        ("sec-fetch-mode".to_string(), b"cors".to_vec()),
    ];
    let Decision::Deny(d) = decide_at(&c, "GET", "/app", &xhr) else {
        panic!()
    };
    assert_eq!(d.response.status, 401);
    // A session is a token source: identity headers as for a bearer token.
    let r = finished(&c, "/app");
    let mut with_session = xhr.clone();
    with_session.push(cookie_header(&header(&r, "set-cookie")));
    let Decision::Allow(a) = decide_at(&c, "GET", "/app", &with_session) else {
        panic!()
    };
    assert!(
        a.set
            .contains(&("x-auth-email".into(), "alice@example.com".into())),
        "{:?}",
        a.set
    );
    // A tampered session: a navigation signs in again, an XHR gets 401.
    let mut tampered = with_session.clone();
    let v = &mut tampered.last_mut().unwrap().1;
    let i = v.iter().position(|&b| b == b'=').unwrap() + 5;
    v[i] = if v[i] == b'A' { b'B' } else { b'A' };
    let Decision::Deny(d) = decide_at(&c, "GET", "/app", &tampered) else {
        panic!()
    };
    assert_eq!(d.response.status, 401);
    let mut nav_tampered = navigation();
    nav_tampered.push(tampered.last().unwrap().clone());
    assert!(matches!(
        decide_at(&c, "GET", "/app", &nav_tampered),
        Decision::Redirect(_)
    ));
    // Bearer tokens keep working, and a bad one is not turned into a login.
    let mut bearer = navigation();
    bearer.push((
        "authorization".into(),
        format!("Bearer {}", sign("key1", "k1", &id_claims())).into_bytes(),
    ));
    assert!(matches!(
        decide_at(&c, "GET", "/app", &bearer),
        Decision::Allow(_)
    ));
    bearer.last_mut().unwrap().1 = b"Bearer x.y.z".to_vec();
    assert!(matches!(
        decide_at(&c, "GET", "/app", &bearer),
        Decision::Deny(_)
    ));
    // Without randomness, no login: today's 401.
    let request = Request {
        method: b"GET",
        path: b"/app",
        headers: &navigation(),
    };
    let d = decide_with(
        &request,
        &c,
        &keys(),
        &NO_LISTS,
        &PureRust,
        &mut TokenCache::new(0),
        NOW,
        &|| None,
    );
    assert!(matches!(d, Decision::Deny(_)));
    // The callback and the logout path.
    let (_, headers, callback) = started(&c, "/");
    assert!(matches!(
        decide_at(&c, "GET", &callback, &headers),
        Decision::Call(_)
    ));
    let Decision::Deny(d) = decide_at(&c, "GET", "/oauth2/callback?code=x", &navigation()) else {
        panic!()
    };
    assert_eq!((d.response.status, d.reason), (400, "login_state"));
    assert!(matches!(
        decide_at(&c, "GET", "/logout", &navigation()),
        Decision::Redirect(_)
    ));
    // A public route stays public.
    let public = config_with(
        login_json(),
        json!({ "rules": [{ "match": { "prefix": "/" }, "allow": "public" }] }),
    );
    assert!(matches!(
        decide_at(&public, "GET", "/", &navigation()),
        Decision::Allow(_)
    ));
}

/// The whole flow with a token response that carries a refresh token.
fn finished_with_refresh(config: &Config, refresh: &str) -> Response {
    finished_answering(config, "/app", json!({ "refresh_token": refresh }))
}

#[test]
fn a_session_with_a_refresh_token_is_renewed_before_its_id_token_expires() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let r = finished_with_refresh(&c, "the-refresh-token");
    let cookies = header(&r, "set-cookie");
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("cea_session_0="))
        .unwrap();
    assert!(
        !session_cookie.contains("Max-Age"),
        "outlives its ID token: {session_cookie}"
    );
    let mut browser = vec![("accept".to_string(), b"*/*".to_vec())];
    browser.push(cookie_header(&cookies));
    let Session::Refreshable { refresh, .. } = session(login, &browser) else {
        panic!()
    };
    assert_eq!(refresh, "the-refresh-token");
    // Valid for an hour: no refresh now; within refresh_before_seconds (60) of exp: refresh.
    assert!(matches!(
        decide_at(&c, "GET", "/app", &browser),
        Decision::Allow(_)
    ));
    let request = Request {
        method: b"GET",
        path: b"/app",
        headers: &browser,
    };
    let late = decide_with(
        &request,
        &c,
        &keys(),
        &NO_LISTS,
        &PureRust,
        &mut TokenCache::new(0),
        NOW + 3550,
        &|| None,
    );
    let Decision::Refresh(refresh) = late else {
        panic!("{late:?}")
    };
    let (call, pending) = *refresh;
    let body = String::from_utf8(call.body.clone()).unwrap();
    assert_eq!(
        body,
        "grant_type=refresh_token&client_id=client1&refresh_token=the-refresh-token"
    );
    assert!(call.headers.contains(&(
        "authorization".into(),
        format!("Basic {}", STANDARD.encode("client1:s3cret"))
    )));
    // Expired past the skew: refresh too, not a 401.
    let expired = decide_with(
        &request,
        &c,
        &keys(),
        &NO_LISTS,
        &PureRust,
        &mut TokenCache::new(0),
        NOW + 7200,
        &|| None,
    );
    assert!(matches!(expired, Decision::Refresh(_)));

    // The answer: a new ID token (no nonce), a rotated refresh token kept, the old one if none.
    let new_id = sign("key1", "k1", &with(id_claims(), "iat", (NOW + 3540).into()));
    let run = |status: Option<u32>, body: Value| {
        let body = body.to_string();
        refreshed(
            &answer(&c, status, body.as_bytes(), &keys(), NOW + 3550, &random(5)),
            &pending,
        )
    };
    for (answer, kept) in [
        (
            json!({ "id_token": new_id, "refresh_token": "rotated" }),
            "rotated",
        ),
        (json!({ "id_token": new_id }), "the-refresh-token"),
    ] {
        let cookies = run(Some(200), answer).unwrap();
        let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
        let renewed = with_session(login, &browser, Some(&cookies));
        assert_eq!(
            session(login, &renewed),
            Session::Refreshable {
                id: new_id.clone(),
                refresh: kept.into()
            }
        );
        assert_eq!(
            session(login, &[cookie_header(&refs)]),
            Session::Refreshable {
                id: new_id.clone(),
                refresh: kept.into()
            }
        );
    }
    assert_eq!(
        run(Some(400), json!({ "error": "invalid_grant" })).unwrap_err(),
        Failure::Exchange
    );
    assert_eq!(run(None, json!({})).unwrap_err(), Failure::Exchange);
    let foreign = sign("key1", "k1", &with(id_claims(), "aud", "client2".into()));
    assert_eq!(
        run(Some(200), json!({ "id_token": foreign })).unwrap_err(),
        Failure::IdToken(VerifyError::Audience)
    );
    // Without the session: a browser signs in again, an API call gets 401.
    let without = with_session(login, &browser, None);
    assert_eq!(session(login, &without), Session::None);
    let Decision::Deny(d) = decide_at(&c, "GET", "/app", &without) else {
        panic!()
    };
    assert_eq!(d.response.status, 401);
}

#[test]
fn with_session_keeps_the_other_cookies() {
    let login = config().login.unwrap();
    let headers = vec![
        ("accept".to_string(), b"*/*".to_vec()),
        (
            "cookie".to_string(),
            b"a=1; cea_session_0=old; cea_session_1=old1".to_vec(),
        ),
        ("cookie".to_string(), b"b=2".to_vec()),
    ];
    let renewed = with_session(
        &login,
        &headers,
        Some(&[
            "cea_session_0=new; Path=/".to_string(),
            "cea_session_1=; Max-Age=0".to_string(),
        ]),
    );
    assert_eq!(
        renewed,
        vec![
            ("accept".to_string(), b"*/*".to_vec()),
            (
                "cookie".to_string(),
                b"a=1; b=2; cea_session_0=new".to_vec()
            ),
        ]
    );
    let none = with_session(&login, &headers, None);
    assert_eq!(none[1], ("cookie".to_string(), b"a=1; b=2".to_vec()));
}

#[test]
fn logout_revokes_the_refresh_token_first() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let r = finished_with_refresh(&c, "the-refresh-token");
    let mut browser = navigation();
    browser.push(cookie_header(&header(&r, "set-cookie")));
    let call = revoke_call(login, &browser).unwrap();
    let h = |name: &str| {
        call.headers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        (h(":method"), h(":path")),
        ("POST".into(), "/oauth2/revoke".into())
    );
    assert_eq!(
        h("authorization"),
        format!("Basic {}", STANDARD.encode("client1:s3cret"))
    );
    assert_eq!(
        String::from_utf8(call.body).unwrap(),
        "token=the-refresh-token&token_type_hint=refresh_token&client_id=client1"
    );
    let Decision::Revoke(revoke) = decide_at(&c, "GET", "/logout", &browser) else {
        panic!()
    };
    let (_, answer) = *revoke;
    assert!(header(&answer, "location")[0].starts_with("https://auth.example.com/logout?"));
    assert!(
        revoke_call(login, &navigation()).is_none(),
        "no session, nothing to revoke"
    );
}
