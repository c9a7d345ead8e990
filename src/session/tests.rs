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
    ended: &crate::session::ended::NoneEnded,
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
    let r = start(
        login,
        HOST.as_bytes(),
        path.as_bytes(),
        &[],
        &random(1),
        NOW,
    )
    .unwrap();
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

/// The session cookies of a session holding ID token `id` (and `refresh`), living `lifetime`.
fn session_cookies(
    login: &Login,
    id: &str,
    refresh: Option<&str>,
    lifetime: u64,
    seal: &[u8; 24],
) -> Result<Vec<String>, Failure> {
    let stored = Stored {
        s: "the-sid".into(),
        u: "the-sub".into(),
        x: NOW + lifetime,
        i: id.into(),
        r: refresh.map(Into::into),
        a: None,
    };
    let mut r = random(1);
    r.seal = *seal;
    new_session(login, &stored, NOW, &r, 0)
}

/// The ID token of the session the request carries.
fn id_of(s: Session) -> Option<String> {
    match s {
        Session::Open(o) => Some(o.id),
        _ => None,
    }
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
        cookie.starts_with(&format!("__Host-cea_login_{state}=")),
        "{cookie}"
    );
    for attribute in [
        "Path=/;",
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
        .find(|c| c.starts_with("__Host-cea_session_0="))
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
            .any(|c| c.starts_with("__Host-cea_login_") && c.contains("Max-Age=0")),
        "the attempt's cookie is cleared: {cookies:?}"
    );
    let browser = vec![cookie_header(&cookies)];
    let login = c.login.as_ref().unwrap();
    let Session::Open(opened) = session(login, &browser) else {
        panic!("no session")
    };
    assert_eq!(opened.refresh, None);
    assert_eq!(opened.sid, URL_SAFE_NO_PAD.encode([9u8; 16]), "a new id");
    assert_eq!(opened.sub, id_claims()["sub"]);
    assert_eq!(
        verify::verify(&opened.id, &c.providers, &keys(), &PureRust, NOW)
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
    assert_eq!(id_of(session(login, &[cookie_header(&refs)])), Some(big));
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
        id_of(session(login, std::slice::from_ref(&good))),
        Some("a.b.c".into())
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
        id_of(session(both.login.as_ref().unwrap(), &[from_old])),
        Some("a.b.c".into())
    );
    assert_ne!(KEY, OLD_KEY);
}

#[test]
fn the_upstream_gets_the_cookies_without_the_filters_own() {
    let login = config().login.unwrap();
    let h = |v: &[u8]| vec![("cookie".to_string(), v.to_vec())];
    let kept = |v: &str| Some(Some(v.as_bytes().to_vec()));
    assert_eq!(upstream_cookie(&login, &h(b"a=1; b=2")), None, "unchanged");
    assert_eq!(upstream_cookie(&login, &[]), None);
    assert_eq!(
        upstream_cookie(&login, &h(b"__Host-cea_session_0=x")),
        Some(None)
    );
    assert_eq!(
        upstream_cookie(
            &login,
            &h(b"a=1; __Host-cea_session_0=x; __Host-cea_session_1=y; __Host-cea_login_abc=z; b=2")
        ),
        kept("a=1; b=2")
    );
    let mut two = h(b"a=1");
    two.extend(h(b"__Host-cea_session_0=x"));
    assert_eq!(upstream_cookie(&login, &two), kept("a=1"));
    // Copies another host planted (unprefixed, another case, __Secure-) never reach it either.
    assert_eq!(
        upstream_cookie(
            &login,
            &h(b"cea_session_0=p; __host-CEA_session_0=q; __Secure-cea_login_x=r; cea=1")
        ),
        kept("cea=1")
    );
    // An application cookie that is not UTF-8 reaches the upstream byte for byte, and the
    // filter's are still taken out.
    let legacy = b"legacy=caf\xe9\xff; __Host-cea_session_0=x; other=\x80\x81";
    assert_eq!(
        upstream_cookie(&login, &h(legacy)),
        Some(Some(b"legacy=caf\xe9\xff; other=\x80\x81".to_vec()))
    );
}

#[test]
fn a_session_cookie_sent_twice_or_without_the_prefix_is_no_session() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let cookies = session_cookies(login, "a.b.c", None, 60, &[1; 24]).unwrap();
    let pair = cookies[0].split(';').next().unwrap().to_string();
    let one = vec![("cookie".to_string(), pair.clone().into_bytes())];
    assert_eq!(id_of(session(login, &one)), Some("a.b.c".into()));
    let twice = vec![("cookie".to_string(), format!("{pair}; {pair}").into_bytes())];
    assert_eq!(session(login, &twice), Session::Unreadable);
    let unprefixed = pair.replacen("__Host-", "", 1);
    let planted = vec![("cookie".to_string(), unprefixed.into_bytes())];
    assert_eq!(session(login, &planted), Session::None);
    // A login-state cookie sent twice fails the callback.
    let (_, mut headers, callback) = started(&c, "/app");
    let state_cookie = headers.pop().unwrap();
    let mut doubled = state_cookie.1.clone();
    doubled.extend_from_slice(b"; ");
    doubled.extend_from_slice(&state_cookie.1);
    headers.push(("cookie".into(), doubled));
    assert_eq!(
        callback_of(&c, &headers, &callback).unwrap_err(),
        Failure::State
    );
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
    assert!(a.replace[0].1.starts_with(b"Bearer ey"));
    assert_eq!(a.replace[1].1, b"theme=dark");
}

#[test]
fn logout_clears_the_session_and_goes_to_cognito_logout() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let Logout::Out {
        response: r,
        revoke,
        ended,
    } = logout(login, b"GET", HOST.as_bytes(), &[], NOW).unwrap()
    else {
        panic!("not signed out")
    };
    assert_eq!((revoke, ended), (None, None), "no session");
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

#[test]
fn logout_ends_the_session_until_its_token_would_expire() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let cookies = session_cookies(login, "a.b.c", None, 300, &[1; 24]).unwrap();
    let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
    let Logout::Out { ended, revoke, .. } =
        logout(login, b"GET", HOST.as_bytes(), &[cookie_header(&refs)], NOW).unwrap()
    else {
        panic!()
    };
    assert_eq!(revoke, None);
    assert_eq!(
        ended,
        Some(Ended {
            sid: "the-sid".into(),
            until: NOW + 300
        })
    );
    // With a refresh token (revoked at the same time) a day at least.
    let cookies = session_cookies(login, "a.b.c", Some("r"), 300, &[1; 24]).unwrap();
    let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
    let Logout::Out { ended, revoke, .. } =
        logout(login, b"GET", HOST.as_bytes(), &[cookie_header(&refs)], NOW).unwrap()
    else {
        panic!()
    };
    assert!(revoke.is_some());
    assert_eq!(ended.unwrap().until, NOW + ENDED_REFRESHABLE_SECONDS);
}

#[test]
fn a_cross_site_logout_asks_first() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let h = |pairs: &[(&str, &str)]| -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let out = |method: &[u8], headers: Headers| {
        matches!(
            logout(login, method, HOST.as_bytes(), &headers, NOW).unwrap(),
            Logout::Out { .. }
        )
    };
    // A same-origin or same-site link, a typed URL, a client without Fetch Metadata: out.
    for site in ["same-origin", "same-site", "none"] {
        assert!(out(b"GET", h(&[("sec-fetch-site", site)])), "{site}");
    }
    assert!(out(b"GET", h(&[])));
    assert!(out(b"POST", h(&[("origin", "https://app.example.com")])));
    // Another site's link, image or form: a page to confirm, nothing ended.
    assert!(!out(b"GET", h(&[("sec-fetch-site", "cross-site")])));
    assert!(!out(b"POST", h(&[("sec-fetch-site", "cross-site")])));
    assert!(!out(b"POST", h(&[("origin", "https://evil.example")])));
    let Logout::Confirm(page) = logout(
        login,
        b"GET",
        HOST.as_bytes(),
        &h(&[("sec-fetch-site", "cross-site")]),
        NOW,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .contains("<form method=\"post\" action=\"/logout\">"));
    assert!(header(&page, "set-cookie").is_empty(), "nothing cleared");
    assert_eq!(header(&page, "x-frame-options"), ["DENY"]);
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
        renewed: false,
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
        renewed: false,
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
        Decision::Logout(_)
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
        .find(|c| c.starts_with("__Host-cea_session_0="))
        .unwrap();
    assert!(
        !session_cookie.contains("Max-Age"),
        "outlives its ID token: {session_cookie}"
    );
    let mut browser = vec![("accept".to_string(), b"*/*".to_vec())];
    browser.push(cookie_header(&cookies));
    let Session::Open(opened) = session(login, &browser) else {
        panic!()
    };
    assert_eq!(opened.refresh.as_deref(), Some("the-refresh-token"));
    // Valid for an hour: no refresh now; within refresh_before_seconds (60) of exp: refresh.
    assert!(matches!(
        decide_at(&c, "GET", "/app", &browser),
        Decision::Allow(_)
    ));
    let request = Request {
        renewed: false,
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
        for headers in [renewed, vec![cookie_header(&refs)]] {
            let Session::Open(s) = session(login, &headers) else {
                panic!()
            };
            assert_eq!(
                (s.id.as_str(), s.refresh.as_deref()),
                (new_id.as_str(), Some(kept))
            );
            assert_eq!(
                (&s.sid, &s.sub),
                (&opened.sid, &opened.sub),
                "the same session"
            );
        }
    }
    // Another user's tokens (OpenID Connect Core 12.2): the session ends.
    let other = sign(
        "key1",
        "k1",
        &with(id_claims(), "sub", "someone-else".into()),
    );
    assert_eq!(
        run(Some(200), json!({ "id_token": other })).unwrap_err(),
        Failure::SessionChanged
    );
    assert!(ended_by_refresh(login, &pending)
        .iter()
        .all(|c| c.starts_with("__Host-cea_session_") && c.contains("Max-Age=0")));
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
            b"a=1; __Host-cea_session_0=old; __Host-cea_session_1=old1; x=\xff".to_vec(),
        ),
        ("cookie".to_string(), b"b=2".to_vec()),
    ];
    let renewed = with_session(
        &login,
        &headers,
        Some(&[
            "__Host-cea_session_0=new; Path=/".to_string(),
            "__Host-cea_session_1=; Max-Age=0".to_string(),
        ]),
    );
    assert_eq!(
        renewed,
        vec![
            ("accept".to_string(), b"*/*".to_vec()),
            (
                "cookie".to_string(),
                b"a=1; x=\xff; b=2; __Host-cea_session_0=new".to_vec()
            ),
        ]
    );
    let none = with_session(&login, &headers, None);
    assert_eq!(
        none[1],
        ("cookie".to_string(), b"a=1; x=\xff; b=2".to_vec())
    );
}

#[test]
fn logout_revokes_the_refresh_token_first() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    let r = finished_with_refresh(&c, "the-refresh-token");
    let mut browser = navigation();
    browser.push(cookie_header(&header(&r, "set-cookie")));
    let Decision::Logout(out) = decide_at(&c, "GET", "/logout", &browser) else {
        panic!()
    };
    let Logout::Out {
        response: answer,
        revoke: Some(call),
        ended: Some(_),
    } = *out
    else {
        panic!("the session is ended and its refresh token revoked")
    };
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
    assert!(header(&answer, "location")[0].starts_with("https://auth.example.com/logout?"));
    let Logout::Out { revoke, .. } =
        logout(login, b"GET", HOST.as_bytes(), &navigation(), NOW).unwrap()
    else {
        panic!()
    };
    assert!(revoke.is_none(), "no session, nothing to revoke");
}

#[test]
fn login_states_are_bounded_and_a_failed_callback_clears_its_own() {
    let c = config();
    let login = c.login.as_ref().unwrap();
    // A flood: every start sees the browser's attempts so far and keeps at most
    // MAX_LOGIN_STATES of them, the newest.
    let mut jar: Vec<(String, String)> = Vec::new();
    for i in 0..20u8 {
        let pairs: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let headers = vec![("cookie".to_string(), pairs.join("; ").into_bytes())];
        let r = start(
            login,
            HOST.as_bytes(),
            b"/x",
            &headers,
            &random(i),
            NOW + u64::from(i),
        )
        .unwrap();
        for c in header(&r, "set-cookie") {
            let (pair, _) = c.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            jar.retain(|(n, _)| n != name);
            if !c.contains("Max-Age=0") {
                jar.push((name.into(), value.into()));
            }
        }
        assert!(jar.len() <= MAX_LOGIN_STATES, "{}", jar.len());
    }
    assert_eq!(jar.len(), MAX_LOGIN_STATES);
    // The newest attempts are the ones kept (the last start's state among them).
    let last = URL_SAFE_NO_PAD.encode([19u8; 16]);
    assert!(jar.iter().any(|(n, _)| n.ends_with(&last)));
    // Expired or foreign ones go at the next start.
    let headers = vec![(
        "cookie".to_string(),
        b"__Host-cea_login_AAAAAAAAAAAAAAAAAAAAAA=junk".to_vec(),
    )];
    let r = start(login, HOST.as_bytes(), b"/", &headers, &random(1), NOW).unwrap();
    assert!(header(&r, "set-cookie").iter().any(|c| c
        .starts_with("__Host-cea_login_AAAAAAAAAAAAAAAAAAAAAA=;")
        && c.contains("Max-Age=0")));
    // A long return path is not kept: the cookie stays small.
    let long = format!("/{}", "a".repeat(3000));
    let r = start(
        login,
        HOST.as_bytes(),
        long.as_bytes(),
        &[],
        &random(1),
        NOW,
    )
    .unwrap();
    assert!(header(&r, "set-cookie")[0].len() < 600);
    // A callback that fails clears its attempt's cookie.
    let (_, headers, callback) = started(&c, "/app");
    let failed = callback.replace("code=the-code&", "error=access_denied&");
    let Decision::Deny(d) = decide_at(&c, "GET", &failed, &headers) else {
        panic!()
    };
    assert_eq!(d.reason, "login_provider_error");
    let state = param(&callback, "state");
    assert!(header(&d.response, "set-cookie")
        .iter()
        .any(|c| c.starts_with(&format!("__Host-cea_login_{state}=;")) && c.contains("Max-Age=0")));
}

/// A login whose provider checks tokens online (`GetUser` through cluster `idp`), with a
/// route that needs a live token, `/live`; `every_request` as given.
fn online_config(every_request: bool) -> Config {
    config_with(
        login_json(),
        json!({ "providers": [{ "name": "cognito", "user_pool_id": crate::test_tokens::POOL,
            "client_ids": ["client1", "client2"],
            "online_check": { "cluster": "idp", "every_request": every_request },
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } }],
            "rules": [
            { "match": { "prefix": "/live" }, "require": { "authenticated": true, "active": true } },
            { "match": { "prefix": "/" }, "require": { "authenticated": true } }] }),
    )
}

/// An access token as Cognito issues it at the hosted UI, for `claims`.
fn access_token(claims: Value) -> String {
    sign("key1", "k1", &claims)
}

fn checkable_access() -> String {
    access_token(crate::test_tokens::checkable_access_claims(NOW))
}

/// The browser's headers after a sign-in whose token endpoint answered `access`.
fn signed_in_with_access(c: &Config, access: &str) -> Headers {
    let r = finished_answering(c, "/app", json!({ "access_token": access }));
    let mut browser = navigation();
    browser.push(cookie_header(&header(&r, "set-cookie")));
    browser
}

/// Kept online answers: every token's is `answer`.
struct Every(crate::online::Answer);

impl crate::online::Answers for Every {
    fn record(&self, _: usize, key: &crate::online::TokenKey) -> Option<crate::online::Record> {
        Some(crate::online::record(key, self.0, NOW * 1000, 60_000))
    }
}

fn decide_answered(
    c: &Config,
    path: &str,
    headers: &Headers,
    answer: crate::online::Answer,
) -> Decision {
    let request = Request::new(b"GET", path.as_bytes(), headers);
    let lists = Lists {
        online: &Every(answer),
        ..NO_LISTS
    };
    decide_with(
        &request,
        c,
        &keys(),
        &lists,
        &PureRust,
        &mut TokenCache::new(0),
        NOW,
        &|| Some(random(1)),
    )
}

#[test]
fn a_login_that_checks_sessions_online_asks_for_the_scope_get_user_requires() {
    let scopes = |c: &Config| {
        let (r, _, _) = started(c, "/");
        param(header(&r, "location")[0], "scope")
    };
    assert_eq!(scopes(&config()), "openid email profile");
    assert_eq!(
        scopes(&online_config(false)),
        "openid email profile aws.cognito.signin.user.admin"
    );
    // Asked once, where the configuration names it already.
    let mut listed = login_json();
    listed["scopes"] = json!(["openid", "aws.cognito.signin.user.admin"]);
    let c = config_with(
        listed,
        json!({ "providers": [{ "name": "cognito", "user_pool_id": crate::test_tokens::POOL,
            "client_ids": ["client1"], "online_check": { "cluster": "idp" },
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } }] }),
    );
    assert_eq!(scopes(&c), "openid aws.cognito.signin.user.admin");
}

#[test]
fn a_session_keeps_its_access_token_and_is_checked_online_with_it() {
    use crate::online::Answer;
    let c = online_config(false);
    let login = c.login.as_ref().unwrap();
    let access = checkable_access();
    let browser = signed_in_with_access(&c, &access);
    let Session::Open(opened) = session(login, &browser) else {
        panic!("no session")
    };
    assert_eq!(opened.access.as_deref(), Some(access.as_str()));
    // A login without online_check keeps no access token.
    let plain = config();
    let r = finished_answering(&plain, "/app", json!({ "access_token": access }));
    let cookies = [cookie_header(&header(&r, "set-cookie"))];
    let Session::Open(o) = session(plain.login.as_ref().unwrap(), &cookies) else {
        panic!()
    };
    assert_eq!(o.access, None);

    // Where a live token is needed, the session's access token is checked with Cognito.
    let Decision::Check(check) = decide_at(&c, "GET", "/live", &browser) else {
        panic!("an online check")
    };
    assert_eq!(check.token, access);
    assert_eq!(check.principal, "7c1e0b1c-0000-4000-8000-000000000001");
    assert!(matches!(
        decide_at(&c, "GET", "/app", &browser),
        Decision::Allow(_)
    ));
    assert!(matches!(
        decide_answered(&c, "/live", &browser, Answer::Active),
        Decision::Allow(_)
    ));
    // Signed out in Cognito (GlobalSignOut, a disabled or deleted user): the session is
    // refused; a browser is sent to sign in again, a script gets 401.
    assert!(matches!(
        decide_answered(&c, "/live", &browser, Answer::Revoked),
        Decision::Redirect(_)
    ));
    let script = script_of(&browser);
    let Decision::Deny(d) = decide_answered(&c, "/live", &script, Answer::Revoked) else {
        panic!("refused")
    };
    assert_eq!((d.reason, d.response.status), ("revoked", 401));
    // Under every_request, every route.
    let every = online_config(true);
    let browser = script_of(&signed_in_with_access(&every, &access));
    assert!(matches!(
        decide_at(&every, "GET", "/app", &browser),
        Decision::Check(_)
    ));
    let Decision::Deny(d) = decide_answered(&every, "/app", &browser, Answer::Revoked) else {
        panic!("refused")
    };
    assert_eq!(d.reason, "revoked");
}

/// The same browser's `fetch` of an API: its cookies, no navigation.
fn script_of(browser: &Headers) -> Headers {
    let mut h: Headers = browser
        .iter()
        .filter(|(n, _)| n == "cookie" || n == ":authority")
        .cloned()
        .collect();
    h.push(("accept".into(), b"application/json".to_vec()));
    h
}

#[test]
fn a_sign_in_whose_access_token_is_not_the_users_fails() {
    let c = online_config(false);
    let attempt = |access: Option<String>| {
        let (r, headers, callback) = started(&c, "/app");
        let nonce = param(header(&r, "location")[0], "nonce");
        let (_, pending) = callback_of(&c, &headers, &callback).unwrap();
        let mut body = json!({ "id_token": id_token_with_nonce(&nonce) });
        if let Some(a) = access {
            body["access_token"] = a.into();
        }
        let body = body.to_string();
        finish(
            &answer(&c, Some(200), body.as_bytes(), &keys(), NOW, &random(9)),
            &pending,
        )
        .map(|_| ())
    };
    let claims = crate::test_tokens::checkable_access_claims(NOW);
    assert_eq!(attempt(Some(checkable_access())), Ok(()));
    assert_eq!(attempt(None), Err(Failure::TokenResponse));
    for (what, bad) in [
        (
            "another user's",
            access_token(with(claims.clone(), "sub", "someone-else".into())),
        ),
        (
            "another client's",
            access_token(with(claims.clone(), "client_id", "client2".into())),
        ),
        ("an ID token", id_token_with_nonce("n")),
        (
            "expired",
            access_token(with(claims.clone(), "exp", (NOW - 600).into())),
        ),
        ("forged", format!("{}x", checkable_access())),
    ] {
        assert_eq!(attempt(Some(bad)), Err(Failure::AccessToken), "{what}");
    }
}

#[test]
fn a_session_is_renewed_when_its_access_token_is_due_and_keeps_the_new_one() {
    let c = online_config(false);
    let login = c.login.as_ref().unwrap();
    // An access token in its last seconds beside an ID token of an hour.
    let short = access_token(with(
        crate::test_tokens::checkable_access_claims(NOW),
        "exp",
        (NOW + 5).into(),
    ));
    let r = finished_answering(
        &c,
        "/app",
        json!({ "access_token": short, "refresh_token": "rt" }),
    );
    let mut browser = navigation();
    browser.push(cookie_header(&header(&r, "set-cookie")));
    let Decision::Refresh(refresh) = decide_at(&c, "GET", "/app", &browser) else {
        panic!("renewed first")
    };
    let (_, pending) = *refresh;
    let fresh = checkable_access();
    let body =
        json!({ "id_token": sign("key1", "k1", &id_claims()), "access_token": fresh }).to_string();
    let cookies = refreshed(
        &answer(&c, Some(200), body.as_bytes(), &keys(), NOW, &random(5)),
        &pending,
    )
    .unwrap();
    let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
    let Session::Open(o) = session(login, &[cookie_header(&refs)]) else {
        panic!()
    };
    assert_eq!(o.access.as_deref(), Some(fresh.as_str()));
    assert_eq!(o.refresh.as_deref(), Some("rt"));
    // A refresh answered with another user's access token ends nothing silently: it fails.
    let other = access_token(with(
        crate::test_tokens::checkable_access_claims(NOW),
        "sub",
        "someone-else".into(),
    ));
    let body =
        json!({ "id_token": sign("key1", "k1", &id_claims()), "access_token": other }).to_string();
    assert_eq!(
        refreshed(
            &answer(&c, Some(200), body.as_bytes(), &keys(), NOW, &random(5)),
            &pending
        )
        .unwrap_err(),
        Failure::AccessToken
    );
}

#[test]
fn a_session_with_cognito_sized_id_access_and_refresh_tokens_fits_two_cookies() {
    let c = online_config(false);
    let login = c.login.as_ref().unwrap();
    // Cognito-shaped tokens: an ID token and an access token of RS256 with a 2048-bit key,
    // a refresh token (an encrypted JWT) of about 1.8 KB.
    let id = sign("key1", "k1", &id_claims());
    let access = checkable_access();
    let stored = Stored {
        s: "A".repeat(22),
        u: "7c1e0b1c-0000-4000-8000-000000000001".into(),
        x: NOW + 3600,
        i: id.clone(),
        r: Some("r".repeat(1800)),
        a: Some(access.clone()),
    };
    let cookies = new_session(login, &stored, NOW, &random(1), 0).unwrap();
    let total: usize = cookies.iter().map(String::len).sum();
    println!(
        "ID token {} + access token {} + refresh token 1800 bytes → {} Set-Cookie(s), {total} bytes",
        id.len(),
        access.len(),
        cookies.len()
    );
    assert!(cookies.len() <= 2 && cookies.iter().all(|c| c.len() < 4096));
    let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
    let Session::Open(o) = session(login, &[cookie_header(&refs)]) else {
        panic!()
    };
    assert_eq!((o.id, o.access), (id, Some(access)));
}

#[test]
fn a_signed_in_browser_refused_for_what_a_sign_in_cannot_change_gets_a_page() {
    // A route that needs a live access token, and a session whose access token GetUser cannot
    // judge (the app client does not grant the admin scope): another sign-in would not help.
    let c = online_config(false);
    let unscoped = access_token(crate::test_tokens::access_claims(NOW));
    let browser = signed_in_with_access(&c, &unscoped);
    assert!(matches!(
        decide_at(&c, "GET", "/app", &browser),
        Decision::Allow(_)
    ));
    let Decision::Deny(d) = decide_at(&c, "GET", "/live", &browser) else {
        panic!("a page, not another sign-in")
    };
    assert_eq!(d.response.status, 401);
    assert!(d.response.body.contains("<h1>"), "{}", d.response.body);
    assert!(
        d.response.body.contains("checked with its issuer"),
        "{}",
        d.response.body
    );
    // Without a session the same route sends the browser to sign in.
    assert!(matches!(
        decide_at(&c, "GET", "/live", &navigation()),
        Decision::Redirect(_)
    ));
}

#[test]
fn an_ended_session_is_no_session() {
    struct Ended(String);
    impl ended::EndedSessions for Ended {
        fn is_ended(&self, sid: &str, now: u64) -> bool {
            sid == self.0 && now < NOW + 60
        }
    }
    let c = config();
    let r = finished(&c, "/app");
    let mut browser = navigation();
    browser.push(cookie_header(&header(&r, "set-cookie")));
    let sid = URL_SAFE_NO_PAD.encode([9u8; 16]);
    let decide = |ended: &dyn ended::EndedSessions| {
        let lists = Lists { ended, ..NO_LISTS };
        decide_with(
            &Request::new(b"GET", b"/app", &browser),
            &c,
            &keys(),
            &lists,
            &PureRust,
            &mut TokenCache::new(0),
            NOW,
            &|| Some(random(3)),
        )
    };
    assert!(matches!(decide(&Ended("other".into())), Decision::Allow(_)));
    assert!(
        matches!(decide(&Ended(sid)), Decision::Redirect(_)),
        "signs in again"
    );
}

#[test]
fn the_refresh_window_is_clamped_to_half_the_tokens_lifetime() {
    let mut l = login_json();
    l["refresh_before_seconds"] = json!(3600);
    let c = config_with(l, json!({}));
    let login = c.login.as_ref().unwrap();
    // A 5-minute token is renewed in its last 150 s, not at once.
    let claims = |iat: u64, exp: u64| {
        let token = sign(
            "key1",
            "k1",
            &with(with(id_claims(), "iat", iat.into()), "exp", exp.into()),
        );
        verify::verify(&token, &c.providers, &keys(), &PureRust, NOW).unwrap()
    };
    let short = claims(NOW, NOW + 300);
    assert!(!refresh_due(login, &short, NOW));
    assert!(!refresh_due(login, &short, NOW + 149));
    assert!(refresh_due(login, &short, NOW + 150));
    // An hour-long token with the default window of 60 s.
    let c = config();
    let hour = claims(NOW, NOW + 3600);
    assert!(!refresh_due(c.login.as_ref().unwrap(), &hour, NOW + 3539));
    assert!(refresh_due(c.login.as_ref().unwrap(), &hour, NOW + 3540));
}
