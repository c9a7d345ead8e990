//! HttpContext: read the request, ask the core for a decision, act on it.
//!
//! `process` works on whichever request is the effective context, so the root context can
//! run it again for a request it resumes once keys have arrived.

use super::millis;
use super::online;
use super::online::WasmHost;
use super::sessions::{self, SharedSessions};
use super::shared::{Shared, Waiter};
use crate::decision::{decide_with, Allowed, Decision, Denied, Lists, Request};
use crate::online::TokenKey;
use crate::refresh::Refetch;
use crate::response::Response;
use crate::runtime::online::{Started, WhenBusy};
use crate::runtime::signin::{self, Known, LogoutStep, TokenAnswer};
use crate::runtime::token_calls;
use crate::runtime::wait::MAX_WAITERS;
use crate::runtime::Host;
use crate::session::renewal::{Found, Renewal};
use crate::session::{self, Random};
use crate::verify::VerifyError;
use log::debug;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::rc::Rc;

pub struct Http {
    shared: Rc<Shared>,
    context_id: u32,
    /// The callback's code exchange in flight: its call token and what it remembers.
    exchange: Option<(u32, session::Pending)>,
    /// The session refresh this request started: its call token and what it remembers.
    refreshing: Option<(u32, session::RefreshPending)>,
    /// `Set-Cookie`s for the response (a renewed session).
    set_cookies: Vec<String>,
    /// The logout's revocation in flight: its call token and the answer to send after it.
    revoking: Option<(u32, Response)>,
    /// This request's place in the worker's bound on token-endpoint calls, while it has one.
    token_call: Option<token_calls::Slot>,
}

impl Http {
    pub fn new(shared: Rc<Shared>, context_id: u32) -> Self {
        Http {
            shared,
            context_id,
            exchange: None,
            refreshing: None,
            set_cookies: Vec::new(),
            revoking: None,
            token_call: None,
        }
    }

    /// Takes a place for this request's token-endpoint call; `false` when the worker's bound is
    /// full, and the request has been answered 503.
    fn take_token_call(&mut self) -> bool {
        if !self.reserve_token_call() {
            send(&signin::busy(&WasmHost(&self.shared)));
        }
        self.token_call.is_some()
    }

    /// Takes a place for this request's token-endpoint call, answering nothing; `false` when
    /// the worker's bound is full.
    fn reserve_token_call(&mut self) -> bool {
        let max = token_calls::max_in_flight(&self.shared.config);
        self.token_call = self.shared.token_calls.take(max);
        self.token_call.is_some()
    }

    /// Sends a sign-in step's call to the token endpoint's cluster; its answer arrives in
    /// `on_http_call_response` under the returned token.
    fn dispatch(&self, call: &session::Call) -> Result<u32, proxy_wasm::types::Status> {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let timeout = std::time::Duration::from_millis(call.timeout_ms);
        self.dispatch_http_call(&call.cluster, headers, Some(&call.body), vec![], timeout)
    }

    /// A request to `logout_path`: the confirmation page, or the session ended in the process,
    /// its refresh token revoked, then the logout's answer (also when the revocation fails: the
    /// browser's session ends either way).
    fn logout(&mut self, logout: session::Logout) -> Action {
        let now = millis(self.get_current_time()) / 1000;
        let shared = Rc::clone(&self.shared);
        let host = WasmHost(&shared);
        let step = signin::logout(&host, &SharedSessions, logout, now, || {
            self.reserve_token_call()
        });
        match step {
            LogoutStep::Send(response) => send(&response),
            LogoutStep::Revoke(call, response) => match self.dispatch(&call) {
                Ok(token) => self.revoking = Some((token, response)),
                Err(status) => {
                    signin::revoke_not_made(&host, &call.cluster, &format!("{status:?}"));
                    send(&response);
                }
            },
        }
        Action::Pause
    }

    /// Renews the session, once per session in the process: a request whose session is being
    /// renewed on this worker waits for that refresh; one being renewed on another worker waits
    /// for its record in shared data; one renewed a moment ago (within the login's
    /// `refresh_grace_seconds`) goes on with the renewed session and passes it to the browser.
    fn refresh(&mut self, call: &session::Call, pending: session::RefreshPending) -> Action {
        let now = millis(self.get_current_time());
        // A refresh in flight: wait for it. One whose answer is overdue (its request went away
        // before the answer) is taken over, with the requests that waited for it.
        let mut waiting = Vec::new();
        if let Some((deadline, w)) = self.shared.refreshes.borrow_mut().get_mut(&pending.refresh) {
            if now < *deadline {
                self.token_call = None; // no call of its own
                w.push(self.context_id);
                return Action::Pause;
            }
            waiting = std::mem::take(w);
        }
        let key = TokenKey::of(&pending.refresh);
        let deadline = now
            .saturating_add(call.timeout_ms)
            .saturating_add(signin::REFRESH_GRACE_MS);
        match sessions::claim_renewal(&key, deadline, now) {
            Found::Ask => {}
            Found::Join(until) => {
                self.token_call = None;
                release(&self.shared, now, waiting, Known::AsItIs);
                self.shared.waiters.borrow_mut().push(Waiter {
                    context_id: self.context_id,
                    provider: 0,
                    attempts: 0,
                    first_keys: false,
                    deadline_ms: until,
                    online: None,
                    renewal: Some(key),
                });
                let _ = hostcalls::set_effective_context(self.context_id);
                return Action::Pause;
            }
            found => {
                self.token_call = None;
                WasmHost(&self.shared).count("refresh.shared", 1);
                let known = Known::from(found);
                release(&self.shared, now, waiting, known.clone());
                let _ = hostcalls::set_effective_context(self.context_id);
                if let Known::Renewed(cookies) = &known {
                    self.set_cookies.clone_from(cookies);
                }
                return match redecide(&self.shared, now, known) {
                    Outcome::Forward => Action::Continue,
                    _ => Action::Pause,
                };
            }
        }
        match self.dispatch(call) {
            Ok(token) => {
                self.shared
                    .refreshes
                    .borrow_mut()
                    .insert(pending.refresh.clone(), (deadline, waiting));
                self.refreshing = Some((token, pending));
                Action::Pause
            }
            Err(status) => {
                signin::refresh_not_made(
                    &WasmHost(&self.shared),
                    &call.cluster,
                    &format!("{status:?}"),
                );
                self.shared.refreshes.borrow_mut().remove(&pending.refresh);
                self.shared
                    .renewals
                    .settle(&key, &Renewal::failed(&key, now));
                release(&self.shared, now, waiting, Known::Failed);
                let _ = hostcalls::set_effective_context(self.context_id);
                match redecide(&self.shared, now, Known::Failed) {
                    Outcome::Forward => Action::Continue,
                    _ => Action::Pause,
                }
            }
        }
    }

    /// The refresh's answer: this request and those that waited for it go on with the renewed
    /// session, or without one if it failed (a browser signs in again, an API call gets 401).
    fn refreshed(&mut self, pending: session::RefreshPending, body_size: usize) {
        let shared = Rc::clone(&self.shared);
        let now_ms = millis(self.get_current_time());
        let r = self.answered(body_size, |a| {
            signin::refreshed(
                &shared.config,
                &WasmHost(&shared),
                &SharedSessions,
                a,
                &pending,
                now_ms,
            )
        });
        let waiting = shared
            .refreshes
            .borrow_mut()
            .remove(&pending.refresh)
            .map(|(_, w)| w)
            .unwrap_or_default();
        // For the requests of this session on other workers, and those that come within the
        // grace window with the session it renewed.
        let key = TokenKey::of(&pending.refresh);
        let known = match shared.config.login.as_ref() {
            Some(login) => {
                let (settled, known) = Known::settled(login, &key, r.cookies.as_deref(), now_ms);
                shared.renewals.settle(&key, &settled);
                known
            }
            None => Known::Failed,
        };
        if let Outcome::Forward = redecide(&shared, now_ms, known.clone()) {
            let _ = hostcalls::resume_http_request();
        }
        release(&shared, now_ms, waiting, known);
        let _ = hostcalls::set_effective_context(self.context_id);
        self.set_cookies = r.set_cookies;
    }

    /// Makes the callback's token request; the answer arrives in `on_http_call_response`.
    fn exchange(&mut self, call: &session::Call, pending: session::Pending) -> Action {
        match self.dispatch(call) {
            Ok(token) => self.exchange = Some((token, pending)),
            Err(status) => send(&signin::exchange_not_made(
                &self.shared.config,
                &WasmHost(&self.shared),
                &pending,
                &call.cluster,
                &format!("{status:?}"),
            )),
        }
        Action::Pause
    }
}

impl Context for Http {
    /// A request that went away with its refresh in flight: the requests waiting for that
    /// refresh go on without the session rather than wait for an answer that never comes.
    fn on_done(&mut self) -> bool {
        if let Some((_, pending)) = self.refreshing.take() {
            let waiting = self
                .shared
                .refreshes
                .borrow_mut()
                .remove(&pending.refresh)
                .map(|(_, w)| w)
                .unwrap_or_default();
            let now = millis(self.get_current_time());
            release(&self.shared, now, waiting, Known::AsItIs);
        }
        true
    }

    /// The answer to a call this request made: its sign-in step's (code exchange, refresh,
    /// revocation), or an online check dispatched while it was decided.
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        // Its token-endpoint call (the only call a request holding a place makes) is over.
        self.token_call = None;
        if let Some((expected, response)) = self.revoking.take() {
            if token == expected {
                let status = self
                    .get_http_call_response_header(":status")
                    .and_then(|s| s.parse::<u32>().ok());
                signin::revoked(&WasmHost(&self.shared), status);
                send(&response);
                return;
            }
            self.revoking = Some((expected, response));
        }
        if let Some((expected, pending)) = self.refreshing.take() {
            if token == expected {
                return self.refreshed(pending, body_size);
            }
            self.refreshing = Some((expected, pending));
        }
        if let Some((expected, pending)) = self.exchange.take() {
            if token == expected {
                return self.exchanged(pending, body_size);
            }
            self.exchange = Some((expected, pending));
        }
        let now = millis(self.get_current_time());
        if let Some(key) = online::finished(&self.shared, token, body_size, now) {
            resume_online(&self.shared, &key, now);
        }
    }
}

impl Http {
    /// The token endpoint's answer to a call of this request, with this worker's keys and
    /// fresh randomness, handed to `step` (a sign-in step of the runtime).
    fn answered<T>(&self, body_size: usize, step: impl FnOnce(&TokenAnswer) -> T) -> T {
        let status = self
            .get_http_call_response_header(":status")
            .and_then(|s| s.parse::<u32>().ok());
        let body = if body_size <= signin::MAX_TOKEN_RESPONSE_BYTES {
            self.get_http_call_response_body(0, body_size)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let keys = self.shared.keys.borrow();
        step(&TokenAnswer {
            status,
            body: &body,
            keys: &keys,
            signatures: self.shared.verifier.as_ref(),
            random: random(),
        })
    }

    /// The callback's code exchange answered: set the session, or show why not.
    fn exchanged(&mut self, pending: session::Pending, body_size: usize) {
        let shared = Rc::clone(&self.shared);
        let now = millis(self.get_current_time()) / 1000;
        let response = self.answered(body_size, |a| {
            signin::exchanged(&shared.config, &WasmHost(&shared), a, &pending, now)
        });
        send(&response);
    }
}

/// Lets the requests that waited for a refresh go on, as `known` says.
fn release(shared: &Shared, now_ms: u64, waiting: Vec<u32>, known: Known) {
    for id in waiting {
        if hostcalls::set_effective_context(id).is_err() {
            continue; // the request is gone
        }
        if let Outcome::Forward = redecide(shared, now_ms, known.clone()) {
            let _ = hostcalls::resume_http_request();
        }
    }
}

/// Decides the effective context's request again, its session renewed, ended or as it is
/// (`known`), and acts on it; never waits, never refreshes again.
fn redecide(shared: &Shared, now_ms: u64, known: Known) -> Outcome {
    let Some(login) = shared.config.login.as_ref() else {
        return Outcome::Answered;
    };
    let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
    let headers = known.headers(login, headers);
    match process_headers(shared, now_ms, false, &headers, true) {
        Outcome::Call(_) | Outcome::Refresh(_) | Outcome::Logout(_) => {
            send(&signin::not_again(&WasmHost(shared)));
            Outcome::Answered
        }
        other => other,
    }
}

/// Decides again the requests of this worker that wait for the online answer about `key`.
pub fn resume_online(shared: &Shared, key: &TokenKey, now_ms: u64) {
    let ready: Vec<Waiter> = {
        let mut waiters = shared.waiters.borrow_mut();
        let (ready, waiting) = waiters
            .drain(..)
            .partition(|w: &Waiter| w.online.as_ref() == Some(key));
        *waiters = waiting;
        ready
    };
    wake(shared, ready, now_ms, false);
}

/// Decides again the paused requests `ready` and acts on each: it goes on, is answered, or
/// waits again (under its first deadline with `keep_deadline`, else under the new wait's).
pub fn wake(shared: &Shared, ready: Vec<Waiter>, now_ms: u64, keep_deadline: bool) {
    for w in ready {
        if hostcalls::set_effective_context(w.context_id).is_err() {
            continue; // the request is gone
        }
        match resume(shared, now_ms, now_ms < w.deadline_ms) {
            Outcome::Forward => {
                let _ = hostcalls::resume_http_request();
            }
            Outcome::Answered | Outcome::Call(_) | Outcome::Refresh(_) | Outcome::Logout(_) => {}
            Outcome::Wait(mut again) => {
                again.context_id = w.context_id;
                if keep_deadline {
                    again.deadline_ms = w.deadline_ms;
                }
                shared.waiters.borrow_mut().push(again);
            }
        }
    }
}

/// Decides again a request that waited (for keys, an online answer, or another worker's
/// refresh of its session) and acts on it. A session still due for renewal goes on as the
/// process-wide record of its refresh says: a waiter never makes a call of its own.
pub fn resume(shared: &Shared, now_ms: u64, may_wait: bool) -> Outcome {
    match process(shared, now_ms, may_wait) {
        Outcome::Refresh(refresh) => {
            let (_, pending) = *refresh;
            let found = sessions::renewal_found(&TokenKey::of(&pending.refresh), now_ms);
            redecide(shared, now_ms, Known::from(found))
        }
        // Code exchanges and logouts are decided before any wait.
        Outcome::Call(_) | Outcome::Logout(_) => {
            send(&signin::not_again(&WasmHost(shared)));
            Outcome::Answered
        }
        other => other,
    }
}

/// The random bytes of one sign-in step, from the host (WASI `random_get`).
fn random() -> Option<Random> {
    signin::random(|bytes| getrandom::getrandom(bytes).is_ok())
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let now = millis(self.get_current_time());
        let outcome = process(&self.shared, now, true);
        let calls = matches!(outcome, Outcome::Call(_) | Outcome::Refresh(_));
        if calls && !self.take_token_call() {
            return Action::Pause;
        }
        match outcome {
            Outcome::Forward => Action::Continue,
            Outcome::Answered => Action::Pause,
            Outcome::Wait(mut waiter) => {
                waiter.context_id = self.context_id;
                self.shared.waiters.borrow_mut().push(waiter);
                Action::Pause
            }
            Outcome::Call(call) => {
                let (call, pending) = *call;
                self.exchange(&call, pending)
            }
            Outcome::Refresh(refresh) => {
                let (call, pending) = *refresh;
                self.refresh(&call, pending)
            }
            Outcome::Logout(logout) => self.logout(*logout),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // A renewed session reaches the browser with the answer to the request that renewed it.
        for cookie in std::mem::take(&mut self.set_cookies) {
            self.add_http_response_header("set-cookie", &cookie);
        }
        Action::Continue
    }
}

/// What became of a request.
pub enum Outcome {
    /// Its headers are rewritten; let it through to the upstream.
    Forward,
    /// A deny response has been sent.
    Answered,
    /// Pause it until keys arrive (the caller fills in the context id).
    Wait(Waiter),
    /// Make the callback's code exchange, then answer (only from `on_http_request_headers`).
    Call(Box<(session::Call, session::Pending)>),
    /// Renew the session first (only from `on_http_request_headers`).
    Refresh(Box<(session::Call, session::RefreshPending)>),
    /// Sign out (only from `on_http_request_headers`).
    Logout(Box<session::Logout>),
}

/// Decides the effective context's request at `now_ms`, then rewrites its headers or sends
/// the deny response. With `may_wait`, a request that needs keys not loaded yet is held.
pub fn process(shared: &Shared, now_ms: u64, may_wait: bool) -> Outcome {
    // Read as bytes: a client may send header values that are not UTF-8.
    let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
    process_headers(shared, now_ms, may_wait, &headers, false)
}

/// As [`process`], deciding on `headers` (the request's, or with `renewed` its headers with
/// the session just renewed).
fn process_headers(
    shared: &Shared,
    now_ms: u64,
    may_wait: bool,
    headers: &[(String, Vec<u8>)],
    renewed: bool,
) -> Outcome {
    let pseudo = |name: &str| crate::headers::header(headers, name).unwrap_or_default();
    let request = Request {
        renewed,
        ..Request::new(pseudo(":method"), pseudo(":path"), headers)
    };

    let mut decision = decide_now(shared, &request, now_ms, None);
    if let Decision::Check(check) = &decision {
        if may_wait {
            match online::start(shared, check, now_ms) {
                Started::Wait { deadline_ms } => {
                    return Outcome::Wait(online::waiter(check, deadline_ms))
                }
                Started::Busy => {
                    let unreachable = decide_now(shared, &request, now_ms, Some(&check.key));
                    match crate::runtime::online::when_busy(&unreachable) {
                        WhenBusy::Report(reported) => {
                            let level = shared.config.denial_log_level;
                            crate::runtime::log::reported(level, &reported, &request);
                            let mut metrics = shared.metrics.borrow_mut();
                            metrics.reported(reported.reason);
                            metrics.allowed();
                            if let Decision::Allow(allowed) = &unreachable {
                                forward(allowed);
                            }
                            return Outcome::Forward;
                        }
                        WhenBusy::Answer(denied) => {
                            shared.metrics.borrow_mut().denied(denied.reason);
                            let level = shared.config.denial_log_level;
                            crate::runtime::log::denial(level, &denied, &request);
                            answer(&denied);
                            return Outcome::Answered;
                        }
                    }
                }
                Started::Failed | Started::BackedOff => {}
            }
        }
        // No answer, and none to wait for: decide as if Cognito could not be reached.
        decision = decide_now(shared, &request, now_ms, Some(&check.key));
    }
    online::note_unchecked(shared, &decision);
    match decision {
        Decision::Allow(allowed) => {
            if let Some(reported) = &allowed.reported {
                // Report-only: wait for keys as a refusal would, then report and forward.
                if let Some(waiter) = may_wait
                    .then(|| wait_for_keys(shared, reported.error, now_ms))
                    .flatten()
                {
                    return Outcome::Wait(waiter);
                }
                let level = shared.config.denial_log_level;
                crate::runtime::log::reported(level, reported, &request);
                shared.metrics.borrow_mut().reported(reported.reason);
            }
            shared.metrics.borrow_mut().allowed();
            forward(&allowed);
            Outcome::Forward
        }
        Decision::Deny(denied) => {
            if let Some(waiter) = may_wait
                .then(|| wait_for_keys(shared, denied.error, now_ms))
                .flatten()
            {
                return Outcome::Wait(waiter);
            }
            // A callback that failed: counted and logged as every failed sign-in is.
            if signin::denied_callback(&WasmHost(shared), &denied) {
                answer(&denied);
                return Outcome::Answered;
            }
            if denied.login.is_none() {
                crate::runtime::log::denial(shared.config.denial_log_level, &denied, &request);
            }
            shared.metrics.borrow_mut().denied(denied.reason);
            answer(&denied);
            Outcome::Answered
        }
        Decision::Check(_) => {
            // Not reached: with the answer read as unreachable the core decides.
            let _ = hostcalls::send_http_response(503, vec![("retry-after", "1")], None);
            Outcome::Answered
        }
        Decision::Redirect(redirected) => {
            signin::redirected(&WasmHost(shared), &redirected);
            send(&redirected.response);
            Outcome::Answered
        }
        Decision::Call(call) => {
            WasmHost(shared).count("login.callbacks", 1);
            Outcome::Call(call)
        }
        Decision::Refresh(refresh) => Outcome::Refresh(refresh),
        Decision::Logout(logout) => Outcome::Logout(logout),
    }
}

/// Decides `request` with this worker's keys, lists and cache and the kept online answers;
/// `unreachable`: read that token's answer as "Cognito cannot be reached".
fn decide_now(
    shared: &Shared,
    request: &Request,
    now_ms: u64,
    unreachable: Option<&TokenKey>,
) -> Decision {
    let keys = shared.keys.borrow();
    let fetched = shared.revocation.lists.borrow();
    let kept = online::SharedAnswers(shared);
    let overlay;
    let answers: &dyn crate::online::Answers = match unreachable {
        Some(key) => {
            overlay = crate::online::AsUnreachable { inner: &kept, key };
            &overlay
        }
        None => &kept,
    };
    let lists = Lists {
        fetched: &fetched,
        online: answers,
        ended: &sessions::SharedEnded,
    };
    let mut cache = shared.cache.borrow_mut();
    let d = decide_with(
        request,
        &shared.config,
        &keys,
        &lists,
        shared.verifier.as_ref(),
        &mut cache,
        now_ms / 1000,
        &random,
    );
    shared.metrics.borrow_mut().cache(cache.take_counts());
    d
}

fn forward(allowed: &Allowed) {
    debug!("cognito-edge-auth: allowed ({})", allowed.reason);
    for name in &allowed.remove {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }
    // Absent once `remove` is done (see `Allowed::set`): an add, which does not scan the map.
    for (name, value) in allowed.set.iter() {
        let _ = hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value);
    }
    for (name, value) in &allowed.replace {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
    }
}

fn answer(denied: &Denied) {
    send(&denied.response);
}

fn send(r: &Response) {
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let _ = hostcalls::send_http_response(r.status, headers, Some(r.body.as_bytes()));
}

/// Whether a denied request should rather wait: for a provider's first keys (up to
/// `startup_wait_ms`), or for a refetch after an unknown `kid` (rate-limited), as
/// [`crate::runtime::wait::for_denial`] says for both hosts.
fn wait_for_keys(shared: &Shared, error: Option<VerifyError>, now_ms: u64) -> Option<Waiter> {
    if shared.waiters.borrow().len() >= MAX_WAITERS {
        return None;
    }
    let attempts = |p: usize| shared.seen.borrow().get(p).map_or(0, |s| s.attempts);
    // An early fetch of the provider's JWKS: whether one is now due or under way.
    let refetch = |p: usize| {
        let Some(store) = shared.stores.get(p).and_then(Option::as_ref) else {
            return false;
        };
        let mut pending = false;
        let scheduled = store.update(|s| match s.request_refetch(now_ms) {
            Refetch::Scheduled(next) => Some(next),
            Refetch::Pending => {
                pending = true;
                None
            }
            Refetch::RateLimited => None,
        });
        scheduled.is_some() || pending
    };
    let wait = crate::runtime::wait::for_denial(&shared.config, error, now_ms, attempts, refetch)?;
    Some(Waiter {
        context_id: 0,
        provider: wait.provider,
        attempts: wait.attempts,
        first_keys: wait.first_keys,
        deadline_ms: wait.deadline_ms,
        online: None,
        renewal: None,
    })
}
