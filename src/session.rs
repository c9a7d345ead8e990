//! Browser sign-in, pure: who gets sent to Cognito's hosted UI, the login-state cookie of each
//! attempt, the callback's code exchange (as a call for the glue to make), and the session
//! cookie that carries the ID token from then on.
//!
//! The flow: a browser navigation without a valid session → [`start`] (302 to `/authorize`
//! with state, PKCE S256 and nonce; the attempt sealed in a cookie named after its state, so
//! tabs do not collide) → Cognito → the callback → [`callback`] (checks the state, builds the
//! token request) → the glue's call → [`finish`] (verifies the ID token as a bearer token is
//! verified, plus the nonce and the policy; sets the session; 302 back to the original path).

pub mod crypto;
pub mod url;

use crate::config::login::{CookieKey, Login};
use crate::config::{Config, TokenUse};
use crate::jwks::KeySet;
use crate::policy::{self, Refusal};
use crate::response::Response;
use crate::signature::SignatureVerifier;
use crate::verify::{self, VerifyError};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a login attempt may take, from the redirect to the callback.
pub const LOGIN_STATE_SECONDS: u64 = 600;
/// The longest value of one session cookie: with its name and attributes a `Set-Cookie`
/// stays under the 4096 bytes every browser keeps.
pub const CHUNK_BYTES: usize = 3800;
/// At most this many session cookies (about 30 KB of token).
pub const MAX_CHUNKS: usize = 8;
/// The longest authorization code accepted on the callback.
const MAX_CODE_BYTES: usize = 2048;

/// The random bytes one step needs, drawn by the glue from the host (WASI `random_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Random {
    pub state: [u8; 16],
    pub verifier: [u8; 32],
    pub nonce: [u8; 16],
    pub seal: [u8; crypto::NONCE_BYTES],
}

/// A request the glue makes for the core, then hands the answer to [`finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// What the callback remembers while the code is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    login_cookie: String,
    nonce: String,
    return_to: String,
    /// Session cookies the browser sent, to clear those the new session does not overwrite.
    old_chunks: usize,
}

/// What a refresh remembers while the refresh token is redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPending {
    pub refresh: String,
    old_chunks: usize,
}

/// A session with a refresh token: `{"i": ID token, "r": refresh token}` (a bare ID token,
/// which never starts with `{`, is a session without one).
#[derive(Serialize, Deserialize)]
struct Stored {
    i: String,
    r: String,
}

/// What the browser sent as a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Session {
    None,
    /// The ID token, opened; it still has to pass `verify` and the policy.
    Token(String),
    /// The ID token and the refresh token that renews it.
    Refreshable {
        id: String,
        refresh: String,
    },
    /// A session cookie that no configured key opens (tampered, foreign or rotated out).
    Unreadable,
}

/// Why a sign-in failed: the reason for logs and metrics, and the page the browser sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Cognito redirected back with `error=…` (the user cancelled, the client is misconfigured).
    Provider,
    /// No login-state cookie for the callback's `state`: expired, another browser, or forged.
    State,
    NoCode,
    BadHost,
    /// The token endpoint could not be reached or answered an error.
    Exchange,
    /// The token endpoint's answer holds no ID token.
    TokenResponse,
    IdToken(VerifyError),
    Nonce,
    Forbidden,
    NoPrincipal,
    /// The session cookie would not fit (an ID token over `MAX_CHUNKS` cookies).
    TooLarge,
    /// A valid callback that came before the provider's signing keys (just after a
    /// restart): its code is not exchanged, and the page loads itself again in a second.
    KeysNotLoaded,
}

impl Failure {
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Provider => "login_provider_error",
            Failure::State => "login_state",
            Failure::NoCode => "login_no_code",
            Failure::BadHost => "login_bad_host",
            Failure::Exchange => "login_exchange",
            Failure::TokenResponse => "login_token_response",
            Failure::IdToken(_) => "login_id_token",
            Failure::Nonce => "login_nonce",
            Failure::Forbidden => "login_forbidden",
            Failure::NoPrincipal => "login_no_principal",
            Failure::TooLarge => "login_too_large",
            Failure::KeysNotLoaded => "login_keys_not_loaded",
        }
    }

    fn status(self) -> u32 {
        match self {
            Failure::Exchange => 502,
            Failure::Forbidden => 403,
            Failure::IdToken(VerifyError::NoKeys { .. }) | Failure::KeysNotLoaded => 503,
            Failure::IdToken(_) | Failure::Nonce | Failure::NoPrincipal => 401,
            _ => 400,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Failure::Provider => "The sign-in service reported an error or the sign-in was cancelled.",
            Failure::State => "This sign-in attempt is unknown or has expired (it must finish within 10 minutes, in the browser that started it).",
            Failure::NoCode => "The sign-in service sent no authorization code.",
            Failure::BadHost => "The request names a host this gateway cannot sign in for.",
            Failure::Exchange => "The sign-in service could not be reached to finish the sign-in.",
            Failure::TokenResponse => "The sign-in service's answer held no ID token.",
            Failure::IdToken(VerifyError::NoKeys { .. }) => "The signing keys are not loaded yet; try again in a few seconds.",
            Failure::IdToken(_) => "The ID token from the sign-in service was not accepted.",
            Failure::Nonce => "The ID token does not belong to this sign-in attempt.",
            Failure::Forbidden => "You are signed in, but not allowed to open this page.",
            Failure::NoPrincipal => "The ID token names no usable user.",
            Failure::TooLarge => "The ID token is too large for a session cookie.",
            Failure::KeysNotLoaded => "The gateway is starting; this page tries again in a second.",
        }
    }

    /// A plain HTML page with a fixed text: no token, code or secret ever appears in it.
    /// With [`Failure::KeysNotLoaded`] the page reloads itself (the same callback URL, its
    /// code still unused) after a second, and says so with `Retry-After`.
    pub fn page(self) -> Response {
        let again = self == Failure::KeysNotLoaded;
        let body = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\">{}<title>Sign-in failed</title></head>\
             <body><h1>Sign-in failed</h1><p>{}</p><p><a href=\"/\">Start again</a></p></body></html>\n",
            if again { "<meta http-equiv=\"refresh\" content=\"1\">" } else { "" },
            self.description()
        );
        let mut headers = vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ];
        if again {
            headers.push(("retry-after".into(), "1".into()));
        }
        Response {
            status: self.status(),
            headers,
            body,
        }
    }
}

/// The login-state cookie's content.
#[derive(Serialize, Deserialize)]
struct LoginState {
    /// state
    s: String,
    /// PKCE code verifier
    v: String,
    /// nonce
    n: String,
    /// return path
    r: String,
    /// expires at (seconds since the epoch)
    e: u64,
}

/// Whether a request is a browser's top-level navigation, which may be sent to sign in:
/// GET or HEAD, `Accept` naming `text/html`, and — where the browser says (Fetch Metadata) —
/// mode `navigate` and destination `document`. A `fetch`/XHR never is.
pub fn is_navigation(method: &[u8], headers: &[(String, Vec<u8>)]) -> bool {
    if method != b"GET" && method != b"HEAD" {
        return false;
    }
    let value = |name: &str| crate::decision::header(headers, name);
    if value("sec-fetch-mode").is_some_and(|m| m != b"navigate")
        || value("sec-fetch-dest").is_some_and(|d| d != b"document")
        || value("x-requested-with").is_some()
    {
        return false;
    }
    value("accept").is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

/// The 302 to Cognito's authorize endpoint that starts a login, with the attempt's state
/// cookie. The return path is the request's own when it surely stays on this origin, else `/`.
pub fn start(
    login: &Login,
    authority: &[u8],
    path: &[u8],
    random: &Random,
    now: u64,
) -> Result<Response, Failure> {
    let redirect_uri = redirect_uri(login, authority)?;
    let state = URL_SAFE_NO_PAD.encode(random.state);
    let verifier = URL_SAFE_NO_PAD.encode(random.verifier);
    let nonce = URL_SAFE_NO_PAD.encode(random.nonce);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let attempt = LoginState {
        s: state.clone(),
        v: verifier,
        n: nonce.clone(),
        r: url::safe_return(path).unwrap_or_else(|| "/".into()),
        e: now.saturating_add(LOGIN_STATE_SECONDS),
    };
    let name = login_cookie_name(login, &state);
    let plaintext = serde_json::to_vec(&attempt).map_err(|_| Failure::State)?;
    let sealed =
        crypto::seal(current_key(login)?, &name, &plaintext, &random.seal).ok_or(Failure::State)?;
    let location = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}\
         &code_challenge={challenge}&code_challenge_method=S256&nonce={nonce}",
        login.authorize_url,
        url::encode(&login.client_id),
        url::encode(&redirect_uri),
        url::encode(&login.scopes),
    );
    let cookie = set_cookie(
        login,
        &name,
        &sealed,
        &login.callback_path,
        Some(LOGIN_STATE_SECONDS),
    );
    Ok(redirect(&location, vec![cookie]))
}

/// The callback: checks `state` against this browser's login-state cookie and builds the
/// token request (`client_secret_basic`, PKCE verifier).
pub fn callback(
    login: &Login,
    authority: &[u8],
    path: &[u8],
    headers: &[(String, Vec<u8>)],
    now: u64,
) -> Result<(Call, Pending), Failure> {
    let query = path
        .iter()
        .position(|&b| b == b'?')
        .and_then(|i| path.get(i.saturating_add(1)..))
        .unwrap_or_default();
    let state = url::query_param(query, "state")
        .filter(|s| s.len() == 22 && s.bytes().all(is_base64url))
        .ok_or(if url::query_param(query, "error").is_some() {
            Failure::Provider
        } else {
            Failure::State
        })?;
    let name = login_cookie_name(login, &state);
    let attempt: LoginState = cookie_values(headers, &name)
        .into_iter()
        .find_map(|v| crypto::open(&login.cookie_keys, &name, v))
        .and_then(|p| serde_json::from_slice(&p).ok())
        .filter(|a: &LoginState| a.s == state && a.e > now)
        .ok_or(Failure::State)?;
    if url::query_param(query, "error").is_some() {
        return Err(Failure::Provider);
    }
    let code = url::query_param(query, "code")
        .filter(|c| {
            !c.is_empty() && c.len() <= MAX_CODE_BYTES && c.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or(Failure::NoCode)?;
    let redirect_uri = redirect_uri(login, authority)?;
    let body = format!(
        "grant_type=authorization_code&client_id={}&code={}&redirect_uri={}&code_verifier={}",
        url::encode(&login.client_id),
        url::encode(&code),
        url::encode(&redirect_uri),
        url::encode(&attempt.v),
    );
    let call = token_call(login, body);
    let pending = Pending {
        login_cookie: name,
        nonce: attempt.n,
        return_to: url::safe_return(attempt.r.as_bytes()).unwrap_or_else(|| "/".into()),
        old_chunks: session_chunks(login, headers).len(),
    };
    Ok((call, pending))
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
    refresh_token: Option<String>,
}

/// The token endpoint's answer to a sign-in step's call, with what its ID token is verified
/// and the new session sealed with.
pub struct Answered<'a> {
    pub config: &'a Config,
    pub login: &'a Login,
    /// The answer's status; `None` when there was no answer.
    pub status: Option<u32>,
    pub body: &'a [u8],
    pub keys: &'a [Option<KeySet>],
    pub signatures: &'a dyn SignatureVerifier,
    pub now: u64,
    pub random: &'a Random,
}

impl Answered<'_> {
    /// The answer's tokens, its ID token verified exactly as a bearer token is and issued by
    /// the login's provider for its client.
    fn verified(&self) -> Result<(TokenResponse, verify::Claims), Failure> {
        if self.status != Some(200) {
            return Err(Failure::Exchange);
        }
        let tokens = serde_json::from_slice::<TokenResponse>(self.body)
            .map_err(|_| Failure::TokenResponse)?;
        let claims = verify::verify(
            &tokens.id_token,
            &self.config.providers,
            self.keys,
            self.signatures,
            self.now,
        )
        .map_err(Failure::IdToken)?;
        if claims.provider != self.login.provider {
            return Err(Failure::IdToken(VerifyError::UnknownIssuer));
        }
        if !matches!(claims.token_use, Some(TokenUse::Id) | None)
            || claims.client_id.as_deref() != Some(self.login.client_id.as_str())
        {
            return Err(Failure::IdToken(VerifyError::Audience));
        }
        Ok((tokens, claims))
    }
}

/// The answer to the callback's code exchange: the ID token verified, then its nonce and the
/// policy for the return path checked; the answer sets the session and sends the browser back.
pub fn finish(answer: &Answered, pending: &Pending) -> Result<Response, Failure> {
    let (config, login, now) = (answer.config, answer.login, answer.now);
    let (tokens, claims) = answer.verified()?;
    let id_token = tokens.id_token;
    if claims.all.get("nonce").and_then(|n| n.as_str()) != Some(pending.nonce.as_str()) {
        return Err(Failure::Nonce);
    }
    let access = policy::route(&config.policy, b"GET", pending.return_to.as_bytes())
        .map_or(&config.policy.fallback, |r| r.access);
    match policy::authorize(&claims, access, &config.policy) {
        Ok(_) => {}
        Err(Refusal::NoPrincipal(_)) => return Err(Failure::NoPrincipal),
        Err(Refusal::Forbidden(..)) => return Err(Failure::Forbidden),
    }
    let mut cookies = new_session(
        login,
        &id_token,
        tokens.refresh_token.as_deref(),
        &claims,
        now,
        &answer.random.seal,
        pending.old_chunks,
    )?;
    cookies.push(set_cookie(
        login,
        &pending.login_cookie,
        "",
        &login.callback_path,
        Some(0),
    ));
    Ok(redirect(&pending.return_to, cookies))
}

/// The token request that redeems a session's refresh token (`client_secret_basic`).
pub fn refresh_call(
    login: &Login,
    refresh: &str,
    headers: &[(String, Vec<u8>)],
) -> (Call, RefreshPending) {
    let body = format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}",
        url::encode(&login.client_id),
        url::encode(refresh),
    );
    let pending = RefreshPending {
        refresh: refresh.to_string(),
        old_chunks: session_chunks(login, headers).len(),
    };
    (token_call(login, body), pending)
}

/// The answer to a refresh: the new session's `Set-Cookie`s. The new ID token is verified as
/// at sign-in (no nonce: a refresh has none); a rotated refresh token replaces the old one.
pub fn refreshed(answer: &Answered, pending: &RefreshPending) -> Result<Vec<String>, Failure> {
    let (tokens, claims) = answer.verified()?;
    let refresh = tokens
        .refresh_token
        .unwrap_or_else(|| pending.refresh.clone());
    new_session(
        answer.login,
        &tokens.id_token,
        Some(&refresh),
        &claims,
        answer.now,
        &answer.random.seal,
        pending.old_chunks,
    )
}

/// The session cookies for a verified ID token (and refresh token), living as long as the
/// token, plus cookies that clear the chunks of the old session beyond the new one's.
#[allow(clippy::too_many_arguments)]
fn new_session(
    login: &Login,
    id_token: &str,
    refresh: Option<&str>,
    claims: &crate::verify::Claims,
    now: u64,
    seal: &[u8; crypto::NONCE_BYTES],
    old_chunks: usize,
) -> Result<Vec<String>, Failure> {
    let lifetime = claims
        .expires_at
        .unwrap_or(claims.valid_until)
        .saturating_sub(now);
    let mut cookies = session_cookies(login, id_token, refresh, lifetime, seal)?;
    for i in cookies.len()..old_chunks {
        cookies.push(set_cookie(login, &chunk_name(login, i), "", "/", Some(0)));
    }
    Ok(cookies)
}

/// The request's headers with its session replaced by the one `set_cookies` set (`None`:
/// without a session), so the request can be decided again after a refresh.
pub fn with_session(
    login: &Login,
    headers: &[(String, Vec<u8>)],
    set_cookies: Option<&[String]>,
) -> Vec<(String, Vec<u8>)> {
    let session = format!("{}session_", login.cookie_prefix);
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len().saturating_add(1));
    let mut pairs: Vec<String> = Vec::new();
    for (name, value) in headers {
        if name != "cookie" {
            out.push((name.clone(), value.clone()));
            continue;
        }
        for pair in value.split(|&b| b == b';') {
            let pair = String::from_utf8_lossy(pair).trim().to_string();
            if !pair.is_empty() && !pair.starts_with(&session) {
                pairs.push(pair);
            }
        }
    }
    for c in set_cookies.unwrap_or_default() {
        let pair = c.split(';').next().unwrap_or_default();
        if pair.starts_with(&session) && !pair.ends_with('=') {
            pairs.push(pair.to_string());
        }
    }
    if !pairs.is_empty() {
        out.push(("cookie".into(), pairs.join("; ").into_bytes()));
    }
    out
}

/// The session the request carries in its cookies.
pub fn session(login: &Login, headers: &[(String, Vec<u8>)]) -> Session {
    let chunks = session_chunks(login, headers);
    if chunks.is_empty() {
        return Session::None;
    }
    let sealed: String = chunks.concat();
    match crypto::open(&login.cookie_keys, &session_name(login), &sealed)
        .and_then(|p| String::from_utf8(p).ok())
    {
        Some(stored) if stored.starts_with('{') => match serde_json::from_str::<Stored>(&stored) {
            Ok(s) => Session::Refreshable {
                id: s.i,
                refresh: s.r,
            },
            Err(_) => Session::Unreadable,
        },
        Some(token) => Session::Token(token),
        None => Session::Unreadable,
    }
}

/// The sign-out: clears the session and sends the browser to Cognito's `/logout`, which
/// ends the hosted UI's own session and comes back to `post_logout_path`.
pub fn logout(
    login: &Login,
    authority: &[u8],
    headers: &[(String, Vec<u8>)],
) -> Result<Response, Failure> {
    let host = url::host(authority).ok_or(Failure::BadHost)?;
    let back = format!(
        "{}://{host}{}",
        login.external_scheme, login.post_logout_path
    );
    let location = format!(
        "{}?client_id={}&logout_uri={}",
        login.logout_url,
        url::encode(&login.client_id),
        url::encode(&back)
    );
    let chunks = session_chunks(login, headers).len().max(1);
    let cookies = (0..chunks)
        .map(|i| set_cookie(login, &chunk_name(login, i), "", "/", Some(0)))
        .collect();
    Ok(redirect(&location, cookies))
}

/// The `Cookie` header the upstream gets: the request's without the filter's own cookies
/// (the sealed session and login state are for the filter only). `None`: leave it as it is;
/// `Some(None)`: remove it; `Some(Some(v))`: set it to `v`. A header that is not UTF-8 is
/// left as it is.
pub fn upstream_cookie(login: &Login, headers: &[(String, Vec<u8>)]) -> Option<Option<String>> {
    let session = format!("{}session_", login.cookie_prefix);
    let attempt = format!("{}login_", login.cookie_prefix);
    let mut kept: Vec<&str> = Vec::new();
    let mut removed = false;
    for (_, value) in headers.iter().filter(|(n, _)| n == "cookie") {
        let value = std::str::from_utf8(value).ok()?;
        for pair in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or_default();
            if name.starts_with(&session) || name.starts_with(&attempt) {
                removed = true;
            } else {
                kept.push(pair);
            }
        }
    }
    removed.then(|| (!kept.is_empty()).then(|| kept.join("; ")))
}

/// At logout, the request that revokes the session's refresh token (RFC 7009, Cognito's
/// `/oauth2/revoke`, `client_secret_basic`), if the session has one.
pub fn revoke_call(login: &Login, headers: &[(String, Vec<u8>)]) -> Option<Call> {
    let Session::Refreshable { refresh, .. } = session(login, headers) else {
        return None;
    };
    let body = format!(
        "token={}&token_type_hint=refresh_token&client_id={}",
        url::encode(&refresh),
        url::encode(&login.client_id),
    );
    let mut call = token_call(login, body);
    for (name, value) in &mut call.headers {
        if name == ":path" {
            value.clone_from(&login.revoke_path);
        }
    }
    Some(call)
}

/// Whether `path` (with its query) is the login's callback or logout path.
pub fn is_path(path: &[u8], target: &str) -> bool {
    let bare = path.split(|&b| b == b'?').next().unwrap_or_default();
    bare == target.as_bytes()
}

/// The session's `Set-Cookie` headers: the ID token sealed once, the value split over
/// numbered cookies of at most [`CHUNK_BYTES`].
fn session_cookies(
    login: &Login,
    id_token: &str,
    refresh: Option<&str>,
    max_age: u64,
    nonce: &[u8; crypto::NONCE_BYTES],
) -> Result<Vec<String>, Failure> {
    let plaintext = match refresh {
        None => id_token.to_string(),
        Some(r) => serde_json::to_string(&Stored {
            i: id_token.to_string(),
            r: r.to_string(),
        })
        .map_err(|_| Failure::TooLarge)?,
    };
    // With a refresh token the session outlives its ID token: a browser-session cookie, which
    // ends when the refresh token is refused.
    let max_age = refresh.is_none().then_some(max_age);
    let sealed = crypto::seal(
        current_key(login)?,
        &session_name(login),
        plaintext.as_bytes(),
        nonce,
    )
    .ok_or(Failure::TooLarge)?;
    let chunks: Vec<&str> = sealed
        .as_bytes()
        .chunks(CHUNK_BYTES)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    if chunks.len() > MAX_CHUNKS {
        return Err(Failure::TooLarge);
    }
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, c)| set_cookie(login, &chunk_name(login, i), c, "/", max_age))
        .collect())
}

/// The values of session cookies `<prefix>session_0`, `_1`, … up to the first one missing.
fn session_chunks<'h>(login: &Login, headers: &'h [(String, Vec<u8>)]) -> Vec<&'h str> {
    let mut chunks = Vec::new();
    for i in 0..MAX_CHUNKS {
        match cookie_values(headers, &chunk_name(login, i)).first() {
            Some(v) => chunks.push(*v),
            None => break,
        }
    }
    chunks
}

/// Every value of cookie `name` in the request's `Cookie` headers.
fn cookie_values<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?.trim();
            let (n, v) = pair.split_once('=')?;
            (n == name).then_some(v)
        })
        .collect()
}

/// A POST to the token endpoint with `client_secret_basic` (RFC 6749 §2.3.1).
fn token_call(login: &Login, body: String) -> Call {
    let basic = STANDARD.encode(format!(
        "{}:{}",
        url::encode(&login.client_id),
        url::encode(&login.client_secret.0)
    ));
    Call {
        cluster: login.token.cluster.clone(),
        headers: vec![
            (":method".into(), "POST".into()),
            (":path".into(), login.token.path.clone()),
            (":authority".into(), login.token.authority.clone()),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("accept".into(), "application/json".into()),
            ("authorization".into(), format!("Basic {basic}")),
        ],
        body: body.into_bytes(),
        timeout_ms: login.token.timeout_ms,
    }
}

fn session_name(login: &Login) -> String {
    format!("{}session", login.cookie_prefix)
}

fn chunk_name(login: &Login, i: usize) -> String {
    format!("{}session_{i}", login.cookie_prefix)
}

fn login_cookie_name(login: &Login, state: &str) -> String {
    format!("{}login_{state}", login.cookie_prefix)
}

fn current_key(login: &Login) -> Result<&CookieKey, Failure> {
    login.cookie_keys.first().ok_or(Failure::State)
}

fn redirect_uri(login: &Login, authority: &[u8]) -> Result<String, Failure> {
    let host = url::host(authority).ok_or(Failure::BadHost)?;
    Ok(format!(
        "{}://{host}{}",
        login.external_scheme, login.callback_path
    ))
}

fn set_cookie(login: &Login, name: &str, value: &str, path: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path={path}; Secure; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if let Some(domain) = &login.cookie_domain {
        c.push_str(&format!("; Domain={domain}"));
    }
    c
}

fn redirect(location: &str, cookies: Vec<String>) -> Response {
    let mut headers = vec![
        ("location".to_string(), location.to_string()),
        ("cache-control".to_string(), "no-store".to_string()),
    ];
    headers.extend(cookies.into_iter().map(|c| ("set-cookie".to_string(), c)));
    Response {
        status: 302,
        headers,
        body: String::new(),
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests;
