//! Browser sign-in's steps around the core, the same for both hosts: what a sign-in step's
//! call to the token endpoint is answered with (the code exchange, the refresh, the logout's
//! revocation), what is counted and logged at each step, and what a logout ends. The host makes
//! the calls, pauses and resumes requests, and sets the cookies.

use super::Host;
use crate::config::Config;
use crate::decision::{Denied, Redirected};
use crate::jwks::KeySet;
use crate::online::TokenKey;
use crate::response::{self, Response};
use crate::session::renewal::{Found, Renewal};
use crate::session::{self, Failure, Random};
use crate::signature::SignatureVerifier;
use log::{debug, info, warn};

/// A token endpoint answer larger than this is refused (Cognito's are a few KB).
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;
/// A refresh whose answer is this late past its timeout is taken over by the next request.
pub const REFRESH_GRACE_MS: u64 = 2_000;
/// How long a client is told to wait when the bound on token-endpoint calls is full.
const RETRY_AFTER_SECONDS: u64 = 1;

/// The random bytes of one sign-in step, each field filled by the host's `fill` (`false`: no
/// randomness to be had, and no step).
pub fn random(mut fill: impl FnMut(&mut [u8]) -> bool) -> Option<Random> {
    let mut r = Random {
        state: [0; 16],
        verifier: [0; 32],
        nonce: [0; 16],
        seal: [0; session::crypto::NONCE_BYTES],
    };
    let filled = fill(&mut r.state) && fill(&mut r.verifier) && fill(&mut r.nonce);
    (filled && fill(&mut r.seal)).then_some(r)
}

/// The sessions ended at logout, as the whole process knows them.
pub trait EndSessions {
    /// Ends session `sid` until `until`; `false` if it could not be recorded.
    fn end(&self, sid: &str, until: u64, now: u64) -> bool;
}

/// A call to the token endpoint answered: what reading it needs.
pub struct TokenAnswer<'a> {
    /// The answer's status; `None` when there was no answer.
    pub status: Option<u32>,
    pub body: &'a [u8],
    pub keys: &'a [Option<KeySet>],
    pub signatures: &'a dyn SignatureVerifier,
    /// Fresh randomness from the host (`None`: none could be drawn; the step fails).
    pub random: Option<Random>,
}

impl TokenAnswer<'_> {
    /// Hands the answer to `step` (a sign-in step of the core). A body larger than any token
    /// response is read as empty, which the core refuses.
    fn read<T>(
        &self,
        config: &Config,
        now: u64,
        step: impl FnOnce(&session::Answered) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let body = if self.body.len() <= MAX_TOKEN_RESPONSE_BYTES {
            self.body
        } else {
            &[]
        };
        let (Some(login), Some(random)) = (config.login.as_ref(), self.random.as_ref()) else {
            return Err(Failure::Exchange);
        };
        step(&session::Answered {
            config,
            login,
            status: self.status,
            body,
            keys: self.keys,
            signatures: self.signatures,
            now,
            random,
        })
    }
}

/// The callback's code exchange answered (at `now`, seconds): the response that sets the
/// session and sends the browser back, or the page of the failure.
pub fn exchanged(
    config: &Config,
    host: &dyn Host,
    answer: &TokenAnswer,
    pending: &session::Pending,
    now: u64,
) -> Response {
    match answer.read(config, now, |a| session::finish(a, pending)) {
        Ok(response) => {
            host.count("login.completed", 1);
            debug!("cognito-edge-auth: login completed");
            response
        }
        Err(f) => {
            warn!(
                "cognito-edge-auth: login failed reason={}{}",
                f.reason(),
                match (f, answer.status) {
                    (Failure::IdToken(e), _) => format!(" ({})", e.description()),
                    (Failure::Exchange, Some(s)) => format!(" (token endpoint answered {s})"),
                    (Failure::Exchange, None) => " (no answer from the token endpoint)".into(),
                    _ => String::new(),
                }
            );
            failed(host, f, &failed_page(config, f, pending))
        }
    }
}

/// The code exchange could not be made (`why`): the page of the failed sign-in.
pub fn exchange_not_made(
    config: &Config,
    host: &dyn Host,
    pending: &session::Pending,
    cluster: &str,
    why: &str,
) -> Response {
    warn!(
        "cognito-edge-auth: login failed reason={} (cannot call cluster {cluster}: {why})",
        Failure::Exchange.reason(),
    );
    failed(
        host,
        Failure::Exchange,
        &failed_page(config, Failure::Exchange, pending),
    )
}

/// A sign-in that failed: counted, its page returned.
pub fn failed(host: &dyn Host, f: Failure, page: &Response) -> Response {
    host.count("login.failed", 1);
    host.count(&super::metrics::denied(f.reason()), 1);
    page.clone()
}

/// The page of a sign-in that failed after its callback, clearing the attempt's cookie.
fn failed_page(config: &Config, f: Failure, pending: &session::Pending) -> Response {
    match config.login.as_ref() {
        Some(login) => f.page_clearing(login, Some(pending.attempt())),
        None => f.page(),
    }
}

/// What a request whose session was due knows of its refresh, made by it or by another
/// request of the process ([`crate::session::renewal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Renewed: these cookies hold the new session.
    Renewed(Vec<String>),
    /// The refresh failed: go on without the session.
    Failed,
    /// Nothing (its call never answered, or its record gave way to another session's): go on
    /// with the session as it is, which passes while its ID token is valid.
    AsItIs,
}

impl From<Found> for Known {
    fn from(found: Found) -> Known {
        match found {
            Found::Renewed(cookies) => Known::Renewed(cookies),
            Found::Failed => Known::Failed,
            Found::Ask | Found::Join(_) => Known::AsItIs,
        }
    }
}

impl Known {
    /// The request's headers with its session as this says: renewed, gone, or as it was.
    pub fn headers(
        &self,
        login: &crate::config::login::Login,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Vec<(String, Vec<u8>)> {
        match self {
            Known::Renewed(cookies) => session::with_session(login, &headers, Some(cookies)),
            Known::Failed => session::with_session(login, &headers, None),
            Known::AsItIs => headers,
        }
    }

    /// The record the process keeps of a refresh of `key` that ended at `now_ms` with
    /// `cookies` (`None`: failed), and what its requests know.
    pub fn settled(
        login: &crate::config::login::Login,
        key: &TokenKey,
        cookies: Option<&[String]>,
        now_ms: u64,
    ) -> (Renewal, Known) {
        match cookies {
            Some(c) => (
                Renewal::renewed(key, c.to_vec(), now_ms, login.refresh_grace_seconds),
                Known::Renewed(c.to_vec()),
            ),
            None => (Renewal::failed(key, now_ms), Known::Failed),
        }
    }
}

/// A refresh's outcome.
pub struct Refreshed {
    /// The renewed session's `Set-Cookie`s (`None`: the refresh failed): the request and those
    /// that waited for it are decided again with it, or without a session.
    pub cookies: Option<Vec<String>>,
    /// The `Set-Cookie`s for the response to the request that refreshed.
    pub set_cookies: Vec<String>,
}

/// The refresh's answer (at `now_ms`): the renewed session, or none; a refresh that named
/// another user ends the session in the process and clears its cookies.
pub fn refreshed(
    config: &Config,
    host: &dyn Host,
    sessions: &dyn EndSessions,
    answer: &TokenAnswer,
    pending: &session::RefreshPending,
    now_ms: u64,
) -> Refreshed {
    let now = now_ms / 1000;
    match answer.read(config, now, |a| session::refreshed(a, pending)) {
        Ok(cookies) => {
            host.count("refresh.completed", 1);
            debug!("cognito-edge-auth: session refreshed");
            Refreshed {
                set_cookies: cookies.clone(),
                cookies: Some(cookies),
            }
        }
        Err(f) => {
            host.count("refresh.failed", 1);
            warn!(
                "cognito-edge-auth: refresh failed reason={}{}",
                f.reason(),
                match answer.status {
                    Some(s) if s != 200 => format!(" (token endpoint answered {s})"),
                    None => " (no answer from the token endpoint)".into(),
                    _ => String::new(),
                }
            );
            // Another user's tokens: the session ends here and in every worker. A failed
            // refresh otherwise leaves the old cookie (the next sign-in replaces it).
            let mut set_cookies = Vec::new();
            if let (Failure::SessionChanged, Some(login)) = (f, config.login.as_ref()) {
                let until = now.saturating_add(session::ENDED_REFRESHABLE_SECONDS);
                sessions.end(pending.sid(), until, now);
                set_cookies = session::ended_by_refresh(login, pending);
            }
            Refreshed {
                cookies: None,
                set_cookies,
            }
        }
    }
}

/// The refresh could not be made (`why`): counted and logged; the request goes on without
/// its session.
pub fn refresh_not_made(host: &dyn Host, cluster: &str, why: &str) {
    warn!("cognito-edge-auth: refresh failed (cannot call cluster {cluster}: {why})");
    host.count("refresh.failed", 1);
}

/// What a logout does next.
pub enum LogoutStep {
    /// Answer with this.
    Send(Response),
    /// Revoke the refresh token with this call, then answer (whatever the call's outcome).
    Revoke(session::Call, Response),
}

/// A request to `logout_path` (at `now`, seconds): the confirmation page, or the session ended
/// in the process (every worker refuses a copy of its cookie from now on) and its refresh token
/// to revoke when `reserve` finds a place for the call; with the bound full the logout goes on
/// without revoking (counted as a failed revocation).
pub fn logout(
    host: &dyn Host,
    sessions: &dyn EndSessions,
    logout: session::Logout,
    now: u64,
    reserve: impl FnOnce() -> bool,
) -> LogoutStep {
    let (response, revoke, ended) = match logout {
        session::Logout::Confirm(page) => {
            host.count("logout.confirm", 1);
            return LogoutStep::Send(page);
        }
        session::Logout::Out {
            response,
            revoke,
            ended,
        } => (response, revoke, ended),
    };
    host.count("logout", 1);
    if let Some(ended) = ended {
        if !sessions.end(&ended.sid, ended.until, now) {
            warn!("cognito-edge-auth: logout could not end the session in shared data");
            host.count("logout.end_failed", 1);
        }
    }
    let revoke_wanted = revoke.is_some();
    match revoke.filter(|_| reserve()) {
        Some(call) => LogoutStep::Revoke(call, response),
        None => {
            if revoke_wanted {
                host.count("logout.revoke_failed", 1);
            }
            LogoutStep::Send(response)
        }
    }
}

/// The revocation could not be made (`why`).
pub fn revoke_not_made(host: &dyn Host, cluster: &str, why: &str) {
    warn!("cognito-edge-auth: revocation failed (cannot call cluster {cluster}: {why})");
    host.count("logout.revoke_failed", 1);
}

/// The revocation's answer (`status` `None`: none came).
pub fn revoked(host: &dyn Host, status: Option<u32>) {
    if status == Some(200) {
        host.count("logout.revoked", 1);
    } else {
        host.count("logout.revoke_failed", 1);
        warn!(
            "cognito-edge-auth: revocation failed (token endpoint answered {})",
            status.map_or_else(|| "nothing".to_string(), |s| s.to_string())
        );
    }
}

/// A sign-in step whose call does not fit the bound on token-endpoint calls: counted, logged,
/// and answered 503 with `Retry-After`.
pub fn busy(host: &dyn Host) -> Response {
    host.count(&super::metrics::denied("login_busy"), 1);
    warn!("cognito-edge-auth: denied 503 reason=login_busy (token endpoint calls)");
    response::unavailable(RETRY_AFTER_SECONDS, "too many sign-in calls are under way")
}

/// A browser sent to sign in (or elsewhere): counted and logged.
pub fn redirected(host: &dyn Host, redirected: &Redirected) {
    host.count(
        match redirected.reason {
            "login" => "login.started",
            other => other,
        },
        1,
    );
    debug!("cognito-edge-auth: redirected ({})", redirected.reason);
}

/// A denial that answers a sign-in callback: logged, and a callback that failed counted as a
/// failed sign-in (its page is the denial's response). Whether it was counted so (else the
/// host counts the denial as any other).
pub fn denied_callback(host: &dyn Host, denied: &Denied) -> bool {
    match denied.login {
        // Not a failure: the page comes back with the same code once the keys are in.
        Some(Failure::KeysNotLoaded) => {
            info!(
                "cognito-edge-auth: a sign-in callback came before the keys; its page tries again"
            );
            false
        }
        Some(f) => {
            warn!("cognito-edge-auth: login failed reason={}", f.reason());
            failed(host, f, &denied.response);
            true
        }
        None => false,
    }
}

/// The sign-in steps that a request decided again (after a wait or a refresh) never makes:
/// a failed sign-in's page.
pub fn not_again(host: &dyn Host) -> Response {
    failed(host, Failure::Exchange, &Failure::Exchange.page())
}
