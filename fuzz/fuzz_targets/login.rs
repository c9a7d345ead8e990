//! Browser sign-in: a whole request (as in `request`) through `decide_with` with a `login`
//! section — the callback's query and login-state cookie, session cookies, the logout path —
//! and the return-URL check on the raw path.
#![no_main]

use cognito_edge_auth::cache::TokenCache;
use cognito_edge_auth::config::Config;
use cognito_edge_auth::decision::{decide_with, Decision, Lists, Request};
use cognito_edge_auth::online::NoAnswers;
use cognito_edge_auth::session::{self, Random};
use cognito_edge_auth::signature::PureRust;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// No fetched revocation lists, no online answers.
const NO_LISTS: Lists<'static> =
    Lists { fetched: &[], online: &NoAnswers, ended: &session::ended::NoneEnded };

mod common;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut c: serde_json::Value =
            serde_json::from_slice(include_bytes!("../config.json")).expect("fuzz/config.json");
        c["login"] = serde_json::json!({
            "provider": "cognito", "client_id": "client1", "client_secret_env": "S",
            "cookie_key_env": "K", "domain": "https://auth.example.com", "token_cluster": "auth",
            "logout_path": "/logout" });
        let env = |name: &str| match name {
            "S" => Some("secret".to_string()),
            "K" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
            _ => None,
        };
        Config::parse_with_env(c.to_string().as_bytes(), &env).expect("the login config")
    })
}

const RANDOM: Random = Random { state: [1; 16], verifier: [2; 32], nonce: [3; 16], seal: [4; 24] };

fuzz_target!(|data: &[u8]| {
    let (method, path, headers) = common::request_parts(data);
    if let Some(back) = session::url::safe_return(path) {
        assert!(back.starts_with('/') && !back.starts_with("//") && !back.contains('\\'), "{back}");
    }
    let login = config().login.as_ref().expect("login");
    let _ = session::session(login, &headers);
    let request = Request::new(method, path, &headers);
    let mut cache = TokenCache::new(8);
    let random = || Some(RANDOM);
    match decide_with(&request, config(), common::keys(), &NO_LISTS, &PureRust, &mut cache, common::NOW, &random) {
        Decision::Redirect(r) => {
            let location = &r.response.headers.iter().find(|(n, _)| n == "location").expect("location").1;
            assert!(
                location.starts_with("https://auth.example.com/oauth2/authorize?")
                    || location.starts_with("https://auth.example.com/logout?"),
                "{location}"
            );
            for (_, v) in &r.response.headers {
                assert!(!v.contains('\r') && !v.contains('\n'));
            }
        }
        Decision::Call(call) => {
            let (call, _) = *call;
            for (_, v) in &call.headers {
                assert!(!v.contains('\r') && !v.contains('\n'));
            }
        }
        Decision::Refresh(refresh) => {
            let (call, _) = *refresh;
            for (_, v) in &call.headers {
                assert!(!v.contains('\r') && !v.contains('\n'));
            }
        }
        Decision::Logout(logout) => match *logout {
            session::Logout::Confirm(page) => assert_eq!(page.status, 200),
            session::Logout::Out { response, revoke, .. } => {
                for (_, v) in response.headers.iter().chain(revoke.iter().flat_map(|c| &c.headers)) {
                    assert!(!v.contains('\r') && !v.contains('\n'));
                }
            }
        },
        Decision::Deny(d) => assert!(!d.response.body.contains("secret")),
        Decision::Allow(_) | Decision::Check(_) => {}
    }
});
