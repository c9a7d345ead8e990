//! Browser sign-in, pure: who gets sent to Cognito's hosted UI, the login-state cookie of each
//! attempt, the callback's code exchange (as a call for the glue to make), and the session
//! cookie that carries the ID token from then on.
//!
//! The flow: a browser navigation without a valid session → [`start`] (302 to `/authorize`
//! with state, PKCE S256 and nonce; the attempt sealed in a cookie named after its state, so
//! tabs do not collide) → Cognito → the callback → [`callback`] (checks the state, builds the
//! token request) → the glue's call → [`finish`] (verifies the ID token as a bearer token is
//! verified, plus the nonce and the policy; sets the session; 302 back to the original path).

pub mod cookies;
pub mod crypto;
pub mod ended;
mod logout;
mod refresh;
pub mod renewal;
pub mod url;

pub use logout::{logout, Ended, Logout};
pub use refresh::{ended_by_refresh, refresh_call, refresh_due, refreshed, RefreshPending};

use crate::config::login::{CookieKey, Login};
use crate::config::{Config, TokenUse};
use crate::jwks::KeySet;
use crate::policy::{self, Refusal};
use crate::response::Response;
use crate::signature::SignatureVerifier;
use crate::verify::{self, VerifyError};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use cookies::{chunk_name, clear, login_cookie_name, session_name, set_cookie, Lookup};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a login attempt may take, from the redirect to the callback.
pub const LOGIN_STATE_SECONDS: u64 = 600;
/// The longest value of one session cookie: with its name and attributes a `Set-Cookie`
/// stays under the 4096 bytes every browser keeps.
pub const CHUNK_BYTES: usize = 3800;
/// At most this many session cookies (about 30 KB of token).
pub const MAX_CHUNKS: usize = 8;
/// At most this many sign-ins in progress per browser: a page on any site can start sign-ins
/// in a victim's browser, and each leaves a login-state cookie that every request carries.
/// Starting one more clears the oldest.
pub const MAX_LOGIN_STATES: usize = 4;
/// A session ended at logout is refused this long at least when it could be renewed with its
/// refresh token (which logout revokes with Cognito): a copy then cannot renew itself if the
/// revocation did not get through.
pub const ENDED_REFRESHABLE_SECONDS: u64 = 24 * 3600;
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

/// A session as sealed in its cookies.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The session's id: random at sign-in, kept through refreshes (what logout ends).
    s: String,
    /// The user (`sub`) the session was opened for.
    u: String,
    /// When the ID token expires (seconds since the epoch).
    x: u64,
    /// The ID token.
    i: String,
    /// The refresh token, when Cognito gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// The access token, kept when the login checks sessions online (`GetUser` takes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
}

/// A session the browser sent, opened: it still has to pass `verify` and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub sid: String,
    pub sub: String,
    /// When its ID token expires (seconds since the epoch).
    pub expires_at: u64,
    pub id: String,
    pub refresh: Option<String>,
    /// The access token, in a session of a login that checks sessions online.
    pub access: Option<String>,
}

/// What the browser sent as a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Session {
    None,
    Open(Opened),
    /// Session cookies that no configured key opens (tampered, foreign or rotated out), or a
    /// session cookie sent twice.
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
    /// The token endpoint's answer holds no ID token (or, where sessions are checked online,
    /// no access token).
    TokenResponse,
    IdToken(VerifyError),
    /// The answer's access token is not one of the login's provider and client for the user
    /// of its ID token.
    AccessToken,
    Nonce,
    Forbidden,
    NoPrincipal,
    /// The session cookie would not fit (an ID token over `MAX_CHUNKS` cookies).
    TooLarge,
    /// A valid callback that came before the provider's signing keys (just after a
    /// restart): its code is not exchanged, and the page loads itself again in a second.
    KeysNotLoaded,
    /// A refresh answered with another user's tokens (OpenID Connect Core 12.2): the session
    /// ends.
    SessionChanged,
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
            Failure::AccessToken => "login_access_token",
            Failure::Nonce => "login_nonce",
            Failure::Forbidden => "login_forbidden",
            Failure::NoPrincipal => "login_no_principal",
            Failure::TooLarge => "login_too_large",
            Failure::KeysNotLoaded => "login_keys_not_loaded",
            Failure::SessionChanged => "refresh_session_changed",
        }
    }

    fn status(self) -> u32 {
        match self {
            Failure::Exchange => 502,
            Failure::Forbidden => 403,
            Failure::IdToken(VerifyError::NoKeys { .. }) | Failure::KeysNotLoaded => 503,
            Failure::IdToken(_)
            | Failure::AccessToken
            | Failure::Nonce
            | Failure::NoPrincipal
            | Failure::SessionChanged => 401,
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
            Failure::AccessToken => "The access token from the sign-in service was not accepted.",
            Failure::Nonce => "The ID token does not belong to this sign-in attempt.",
            Failure::Forbidden => "You are signed in, but not allowed to open this page.",
            Failure::NoPrincipal => "The ID token names no usable user.",
            Failure::TooLarge => "The ID token is too large for a session cookie.",
            Failure::KeysNotLoaded => "The gateway is starting; this page tries again in a second.",
            Failure::SessionChanged => "The session could not be renewed for the same user; sign in again.",
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

    /// [`Failure::page`], clearing the login-state cookie `attempt` of the callback that
    /// failed (unless it comes back with its code unused), so failed sign-ins leave nothing.
    pub fn page_clearing(self, login: &Login, attempt: Option<&str>) -> Response {
        let mut page = self.page();
        if let Some(name) = attempt.filter(|_| self != Failure::KeysNotLoaded) {
            page.headers.push(("set-cookie".into(), clear(login, name)));
        }
        page
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
    let value = |name: &str| crate::headers::header(headers, name);
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
/// The browser's other attempts beyond [`MAX_LOGIN_STATES`] (the oldest first), expired or
/// unreadable ones are cleared with it.
pub fn start(
    login: &Login,
    authority: &[u8],
    path: &[u8],
    headers: &[(String, Vec<u8>)],
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
    let mut cookies = stale_attempts(login, headers, now);
    cookies.push(set_cookie(login, &name, &sealed, Some(LOGIN_STATE_SECONDS)));
    Ok(redirect(&location, cookies))
}

/// `Set-Cookie`s that clear the browser's login-state cookies a new attempt must not join:
/// unreadable, expired or sent twice, and the oldest beyond `MAX_LOGIN_STATES - 1`.
fn stale_attempts(login: &Login, headers: &[(String, Vec<u8>)], now: u64) -> Vec<String> {
    let found = cookies::login_states(login, headers);
    let mut live: Vec<(u64, &str)> = Vec::new();
    let mut stale: Vec<&str> = Vec::new();
    for (name, value) in &found {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if !crate::config::is_cookie_name(name) || stale.contains(&name) {
            continue; // not a name a Set-Cookie can carry, or cleared already
        }
        let twice = found.iter().filter(|(n, _)| *n == name.as_bytes()).count() > 1;
        let expires = std::str::from_utf8(value)
            .ok()
            .and_then(|v| crypto::open(&login.cookie_keys, name, v))
            .and_then(|p| serde_json::from_slice::<LoginState>(&p).ok())
            .map(|a| a.e)
            .filter(|&e| e > now);
        match expires {
            Some(e) if !twice => live.push((e, name)),
            _ => stale.push(name),
        }
    }
    live.sort_unstable();
    let keep = MAX_LOGIN_STATES.saturating_sub(1);
    let excess = live.len().saturating_sub(keep);
    stale.extend(live.iter().take(excess).map(|(_, n)| *n));
    stale.into_iter().map(|n| clear(login, n)).collect()
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
    let query = query_of(path);
    let state = callback_state(path).ok_or(if url::query_param(query, "error").is_some() {
        Failure::Provider
    } else {
        Failure::State
    })?;
    let name = login_cookie_name(login, &state);
    // The attempt's cookie, sent once: a second one with that name is not this browser's.
    let Lookup::One(sealed) = cookies::lookup(headers, &name) else {
        return Err(Failure::State);
    };
    let attempt: LoginState = crypto::open(&login.cookie_keys, &name, sealed)
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
        old_chunks: session_chunk_count(login, headers),
    };
    Ok((call, pending))
}

/// The page for a callback that failed, clearing the attempt's login-state cookie.
pub fn callback_failed(login: &Login, path: &[u8], f: Failure) -> Response {
    let attempt = callback_state(path).map(|state| login_cookie_name(login, &state));
    f.page_clearing(login, attempt.as_deref())
}

/// The callback's `state`, if it has the form the filter gives it.
fn callback_state(path: &[u8]) -> Option<String> {
    url::query_param(query_of(path), "state")
        .filter(|s| s.len() == 22 && s.bytes().all(is_base64url))
}

fn query_of(path: &[u8]) -> &[u8] {
    path.iter()
        .position(|&b| b == b'?')
        .and_then(|i| path.get(i.saturating_add(1)..))
        .unwrap_or_default()
}

impl Pending {
    /// The login-state cookie of the attempt this callback finishes.
    pub fn attempt(&self) -> &str {
        &self.login_cookie
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
    access_token: Option<String>,
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

    /// The answer's access token, kept in the session when the login checks sessions online:
    /// verified as a bearer access token is, of the login's provider and client, for `sub`
    /// (the user of the ID token). `None` when sessions are not checked online.
    fn access_token(&self, token: Option<String>, sub: &str) -> Result<Option<String>, Failure> {
        if !self.login.online {
            return Ok(None);
        }
        let token = token.ok_or(Failure::TokenResponse)?;
        let claims = verify::verify(
            &token,
            &self.config.providers,
            self.keys,
            self.signatures,
            self.now,
        )
        .map_err(|_| Failure::AccessToken)?;
        let ours = claims.provider == self.login.provider
            && claims.token_use == Some(TokenUse::Access)
            && claims.client_id.as_deref() == Some(self.login.client_id.as_str())
            && subject(&claims).as_deref() == Some(sub);
        if !ours {
            return Err(Failure::AccessToken);
        }
        Ok(Some(token))
    }
}

/// The answer to the callback's code exchange: the ID token verified, then its nonce and the
/// policy for the return path checked; the answer sets the session and sends the browser back.
pub fn finish(answer: &Answered, pending: &Pending) -> Result<Response, Failure> {
    let (config, login) = (answer.config, answer.login);
    let (tokens, claims) = answer.verified()?;
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
    let sub = subject(&claims).ok_or(Failure::NoPrincipal)?;
    let access = answer.access_token(tokens.access_token, &sub)?;
    let stored = Stored {
        s: URL_SAFE_NO_PAD.encode(answer.random.state),
        u: sub,
        x: expiry(&claims),
        i: tokens.id_token,
        r: tokens.refresh_token,
        a: access,
    };
    let mut cookies = new_session(
        login,
        &stored,
        answer.now,
        answer.random,
        pending.old_chunks,
    )?;
    cookies.push(clear(login, &pending.login_cookie));
    Ok(redirect(&pending.return_to, cookies))
}

fn subject(claims: &verify::Claims) -> Option<String> {
    claims
        .all
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn expiry(claims: &verify::Claims) -> u64 {
    claims.expires_at.unwrap_or(claims.valid_until)
}

/// The session cookies for `stored`, living as long as its ID token (with a refresh token:
/// as long as the browser session), plus cookies that clear the chunks of the old session
/// beyond the new one's.
fn new_session(
    login: &Login,
    stored: &Stored,
    now: u64,
    random: &Random,
    old_chunks: usize,
) -> Result<Vec<String>, Failure> {
    let max_age = stored.r.is_none().then(|| stored.x.saturating_sub(now));
    let plaintext = serde_json::to_vec(stored).map_err(|_| Failure::TooLarge)?;
    let sealed = crypto::seal(
        current_key(login)?,
        &session_name(login),
        &plaintext,
        &random.seal,
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
    let mut cookies: Vec<String> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| set_cookie(login, &chunk_name(login, i), c, max_age))
        .collect();
    for i in cookies.len()..old_chunks {
        cookies.push(clear(login, &chunk_name(login, i)));
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
    let pairs: Vec<String> = set_cookies
        .unwrap_or_default()
        .iter()
        .filter_map(|c| cookies::pair_of(c))
        .filter(|p| p.starts_with(&format!("{}session_", login.cookie_prefix)))
        .map(str::to_string)
        .collect();
    cookies::replace_session(login, headers, &pairs)
}

/// The session the request carries in its cookies: chunks `<prefix>session_0`, `_1`, … up to
/// the first one missing, each sent exactly once.
pub fn session(login: &Login, headers: &[(String, Vec<u8>)]) -> Session {
    let mut sealed = String::new();
    for i in 0..MAX_CHUNKS {
        match cookies::lookup(headers, &chunk_name(login, i)) {
            Lookup::One(v) => sealed.push_str(v),
            Lookup::Absent => break,
            Lookup::Unusable => return Session::Unreadable,
        }
    }
    if sealed.is_empty() {
        return Session::None;
    }
    match crypto::open(&login.cookie_keys, &session_name(login), &sealed)
        .and_then(|p| serde_json::from_slice::<Stored>(&p).ok())
    {
        Some(s) => Session::Open(Opened {
            sid: s.s,
            sub: s.u,
            expires_at: s.x,
            id: s.i,
            refresh: s.r,
            access: s.a,
        }),
        None => Session::Unreadable,
    }
}

/// The `Cookie` header the upstream gets: the request's without the filter's own cookies
/// (the sealed session and login state are for the filter only), byte for byte otherwise.
/// `None`: leave it as it is; `Some(None)`: remove it; `Some(Some(v))`: set it to `v`.
pub fn upstream_cookie(login: &Login, headers: &[(String, Vec<u8>)]) -> Option<Option<Vec<u8>>> {
    cookies::without_ours(login, headers)
}

/// Whether `path` (with its query) is the login's callback or logout path.
pub fn is_path(path: &[u8], target: &str) -> bool {
    let bare = path.split(|&b| b == b'?').next().unwrap_or_default();
    bare == target.as_bytes()
}

/// How many session cookies `<prefix>session_0`, `_1`, … the request carries, to clear those a
/// new session does not overwrite.
fn session_chunk_count(login: &Login, headers: &[(String, Vec<u8>)]) -> usize {
    (0..MAX_CHUNKS)
        .take_while(|&i| cookies::lookup(headers, &chunk_name(login, i)) != Lookup::Absent)
        .count()
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
