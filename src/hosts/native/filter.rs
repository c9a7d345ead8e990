//! One request through the native module: read its headers, ask the core, act on the
//! decision — or wait for keys or an online answer and decide again when woken. Browser
//! sign-in's steps (calls to the token endpoint, refreshes, logout) are in `signin.rs`.

use super::abi::{CalloutAnswer, EnvoyFilter};
use super::config::{call_error, Native, Waiting, EVENT_WAKE};
use super::now_ms;
use crate::cache::TokenCache;
use crate::decision::{decide_with, Allowed, Decision, Lists, Request};
use crate::online::{AsUnreachable, TokenKey};
use crate::response::Response;
use crate::runtime::online::{Started, WhenBusy};
use crate::runtime::signin;
use crate::runtime::token_calls::Bound;
use crate::runtime::wait;
use crate::runtime::{Call, Host};
use crate::session;
use log::debug;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

mod token_endpoint;

/// One request. Envoy may re-enter a hook from inside a callback, so its state is in cells
/// and no borrow is held across a call into Envoy.
pub struct Filter {
    pub(super) native: Arc<Native>,
    /// While the request waits: its waiter id, and the deadline of an online check's wait.
    parked: Cell<Option<Parked>>,
    /// A local reply has been sent.
    answered: Cell<bool>,
    /// The online check this request asked for: Envoy's callout id and the flight's id.
    online_call: Cell<Option<(u64, u64)>>,
    /// Its sign-in step's call to the token endpoint under way: Envoy's callout id, the step.
    pub(super) step: RefCell<Option<(u64, token_endpoint::Step)>>,
    /// Its place in this worker's bound on token-endpoint calls, while it has one.
    pub(super) token_call: RefCell<Option<crate::runtime::token_calls::Slot>>,
    /// `Set-Cookie`s for the response (a renewed session).
    pub(super) set_cookies: RefCell<Vec<String>>,
}

#[derive(Clone, Copy)]
struct Parked {
    id: u64,
    /// Waits for an online answer until then (else for keys).
    online_deadline: Option<u64>,
}

/// What became of a request.
pub(super) enum Outcome {
    Forward,
    Answered,
    Wait(Waiting),
    /// Make the callback's code exchange, then answer.
    Call(Box<(session::Call, session::Pending)>),
    /// Renew the session first.
    Refresh(Box<(session::Call, session::RefreshPending)>),
    /// Sign out.
    Logout(Box<session::Logout>),
}

impl Filter {
    pub fn new(native: Arc<Native>) -> Filter {
        Filter {
            native,
            parked: Cell::new(None),
            answered: Cell::new(false),
            online_call: Cell::new(None),
            step: RefCell::new(None),
            token_call: RefCell::new(None),
            set_cookies: RefCell::new(Vec::new()),
        }
    }

    /// Whether the request goes on now (else it is answered or waits).
    pub fn on_request_headers(&self, envoy: EnvoyFilter) -> bool {
        let headers = envoy.request_headers();
        #[cfg(feature = "panic-probe")]
        super::probe::on_request_headers(&headers);
        let now = now_ms();
        match self.process(envoy, &headers, now, true, false) {
            Outcome::Call(call) => {
                let (call, pending) = *call;
                if self.take_token_call(envoy) {
                    self.exchange(envoy, &call, pending);
                }
                false
            }
            Outcome::Refresh(refresh) => {
                let (call, pending) = *refresh;
                self.take_token_call(envoy) && self.refresh(envoy, &call, pending, now)
            }
            Outcome::Logout(logout) => {
                self.logout(envoy, *logout, now);
                false
            }
            outcome => self.act(envoy, outcome),
        }
    }

    /// Acts on an outcome: whether the request goes on now (else it is answered or waits).
    /// A sign-in step is never made by a request decided again: it fails.
    pub(super) fn act(&self, envoy: EnvoyFilter, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Forward => true,
            Outcome::Answered => false,
            Outcome::Call(_) | Outcome::Refresh(_) | Outcome::Logout(_) => {
                self.answer(envoy, &signin::not_again(self.native.as_ref()));
                false
            }
            Outcome::Wait(w) => {
                let online_deadline = match &w {
                    Waiting::Online { deadline_ms, .. } => Some(*deadline_ms),
                    Waiting::Keys(_) | Waiting::Renewal { .. } => None,
                };
                let parked = envoy
                    .scheduler()
                    .and_then(|scheduler| self.native.park(w, scheduler));
                match parked {
                    Some(id) => {
                        self.parked.set(Some(Parked {
                            id,
                            online_deadline,
                        }));
                        false
                    }
                    // Too many wait already: decide now, without waiting.
                    None => {
                        let headers = envoy.request_headers();
                        let outcome = self.process(envoy, &headers, now_ms(), false, false);
                        self.act(envoy, outcome)
                    }
                }
            }
        }
    }

    /// The request was woken (its keys or its online answer came, or its wait ran out):
    /// decide again.
    pub fn on_scheduled(&self, envoy: EnvoyFilter, event: u64) {
        if self.answered.get() {
            return;
        }
        if event != EVENT_WAKE {
            return;
        }
        let Some(parked) = self.parked.take() else {
            return;
        };
        let now = now_ms();
        // An online wait may wait on (the answer came, but another check is due); a wait for
        // keys is over.
        let may_wait = parked.online_deadline.is_some_and(|d| now < d);
        let headers = envoy.request_headers();
        let goes_on = match self.process(envoy, &headers, now, may_wait, false) {
            // Still due for renewal (it waited for another request's refresh of its session,
            // or for keys meanwhile): as the process's record of that refresh says; a request
            // that waited never makes a call of its own.
            Outcome::Refresh(refresh) => {
                let (_, pending) = *refresh;
                self.renewed_elsewhere(envoy, &pending, now)
            }
            outcome => self.act(envoy, outcome),
        };
        if goes_on {
            envoy.continue_decoding();
        }
    }

    /// The answer to a call this request made.
    pub fn on_callout_done(&self, envoy: EnvoyFilter, id: u64, answer: &CalloutAnswer) {
        if let Some((_, flight)) = self.online_call.get().filter(|(c, _)| *c == id) {
            self.online_call.set(None);
            self.online_answered(flight, answer);
            return;
        }
        self.token_answered(envoy, id, answer);
    }

    /// The answer to this request's online check: kept for every worker, and every request
    /// that waits for it woken (this one too: it is parked as they are).
    fn online_answered(&self, flight: u64, answer: &CalloutAnswer) {
        let native = &*self.native;
        let now = now_ms();
        if let Some(f) = native.online.flights(|calls| calls.take(flight)) {
            crate::runtime::online::finished(
                &native.config,
                &native.online,
                native,
                &f,
                answer.status,
                answer.header("x-amzn-errortype"),
                &answer.body,
                now,
            );
        }
        native.wake(now);
    }

    /// A renewed session reaches the browser with the answer to the request that renewed it.
    pub fn on_response_headers(&self, envoy: EnvoyFilter) {
        let cookies = std::mem::take(&mut *self.set_cookies.borrow_mut());
        for cookie in cookies {
            envoy.add_response_header("set-cookie", &cookie);
        }
    }

    pub fn complete(&self) {
        self.signin_complete();
        if let Some(parked) = self.parked.take() {
            self.native.forget(parked.id);
        }
        // Its online check goes with it (those that joined it wait out their deadline).
        if let Some((_, flight)) = self.online_call.take() {
            self.native.online.flights(|calls| calls.take(flight));
        }
    }

    pub fn destroy(&self) {
        self.complete();
    }

    /// A hook of this request panicked: answer 500 unless an answer went out, count it.
    pub fn panicked(&self, envoy: EnvoyFilter) {
        self.native.metrics.panicked();
        if !self.answered.replace(true) {
            send(envoy, &internal_error());
        }
    }

    /// Decides the request with `headers` (its own, read as bytes: a client may send header
    /// values that are not UTF-8; or with its session just `renewed`) at `now_ms`, and rewrites
    /// its headers or answers it. With `may_wait`, a request that needs keys not loaded yet or
    /// an online answer is held.
    pub(super) fn process(
        &self,
        envoy: EnvoyFilter,
        headers: &[(String, Vec<u8>)],
        now_ms: u64,
        may_wait: bool,
        renewed: bool,
    ) -> Outcome {
        let native = &self.native;
        let pseudo = |name: &str| crate::headers::header(headers, name).unwrap_or_default();
        let request = Request {
            renewed,
            ..Request::new(pseudo(":method"), pseudo(":path"), headers)
        };
        let mut decision = decide(native, &request, envoy, now_ms, None);
        if let Decision::Check(check) = &decision {
            if may_wait {
                let host = StreamHost {
                    native,
                    envoy,
                    call: &self.online_call,
                };
                let started = native.online.flights(|calls| {
                    crate::runtime::online::start(
                        &native.config,
                        &native.online,
                        calls,
                        &host,
                        check,
                        now_ms,
                    )
                });
                match started {
                    Started::Wait { deadline_ms } => {
                        return Outcome::Wait(Waiting::Online {
                            provider: check.provider,
                            key: check.key.clone(),
                            deadline_ms,
                        })
                    }
                    Started::Busy => {
                        let unreachable = decide(native, &request, envoy, now_ms, Some(&check.key));
                        let level = native.config.denial_log_level;
                        match crate::runtime::online::when_busy(&unreachable) {
                            WhenBusy::Report(reported) => {
                                crate::runtime::log::reported(level, &reported, &request);
                                native.metrics.reported(envoy, reported.reason);
                                native.metrics.allowed(envoy);
                                if let Decision::Allow(allowed) = &unreachable {
                                    forward(envoy, allowed);
                                }
                                return Outcome::Forward;
                            }
                            WhenBusy::Answer(denied) => {
                                native.metrics.denied(envoy, denied.reason);
                                crate::runtime::log::denial(level, &denied, &request);
                                self.answer(envoy, &denied.response);
                                return Outcome::Answered;
                            }
                        }
                    }
                    Started::Failed | Started::BackedOff => {}
                }
            }
            // No answer, and none to wait for: decide as if Cognito could not be reached.
            decision = decide(native, &request, envoy, now_ms, Some(&check.key));
        }
        crate::runtime::online::note_unchecked(
            &native.config,
            &native.online,
            native.as_ref(),
            &decision,
        );
        match decision {
            Decision::Allow(allowed) => {
                if let Some(reported) = &allowed.reported {
                    // Report-only: wait for keys as a refusal would, then report and forward.
                    if may_wait {
                        let wait = wait::for_denial(
                            &native.config,
                            reported.error,
                            now_ms,
                            |p| native.attempts(p),
                            |p| native.refetch(p),
                        );
                        if let Some(w) = wait {
                            return Outcome::Wait(Waiting::Keys(w));
                        }
                    }
                    let level = native.config.denial_log_level;
                    crate::runtime::log::reported(level, reported, &request);
                    native.metrics.reported(envoy, reported.reason);
                }
                native.metrics.allowed(envoy);
                forward(envoy, &allowed);
                Outcome::Forward
            }
            Decision::Deny(denied) => {
                if may_wait {
                    let wait = wait::for_denial(
                        &native.config,
                        denied.error,
                        now_ms,
                        |p| native.attempts(p),
                        |p| native.refetch(p),
                    );
                    if let Some(w) = wait {
                        return Outcome::Wait(Waiting::Keys(w));
                    }
                }
                // A callback that failed: counted and logged as every failed sign-in is.
                if signin::denied_callback(native.as_ref(), &denied) {
                    self.answer(envoy, &denied.response);
                    return Outcome::Answered;
                }
                if denied.login.is_none() {
                    crate::runtime::log::denial(native.config.denial_log_level, &denied, &request);
                }
                native.metrics.denied(envoy, denied.reason);
                self.answer(envoy, &denied.response);
                Outcome::Answered
            }
            Decision::Redirect(redirected) => {
                signin::redirected(native.as_ref(), &redirected);
                self.answer(envoy, &redirected.response);
                Outcome::Answered
            }
            Decision::Call(call) => {
                native.count("login.callbacks", 1);
                Outcome::Call(call)
            }
            Decision::Refresh(refresh) => Outcome::Refresh(refresh),
            Decision::Logout(logout) => Outcome::Logout(logout),
            // Not reached: with the answer read as unreachable the core decides.
            Decision::Check(_) => {
                self.answer(envoy, &internal_error());
                Outcome::Answered
            }
        }
    }

    pub(super) fn answer(&self, envoy: EnvoyFilter, r: &Response) {
        self.answered.set(true);
        send(envoy, r);
    }
}

/// A request whose decision failed: 500, as the README documents, never the upstream.
pub fn internal_error() -> Response {
    Response {
        status: 500,
        headers: vec![("content-type".into(), "application/json".into())],
        body:
            r#"{"error":"internal_error","error_description":"the authentication filter failed"}"#
                .into(),
    }
}

/// A request Envoy handed over without a filter: fail closed.
pub fn fail_closed(envoy: EnvoyFilter) {
    send(envoy, &internal_error());
}

/// What one worker keeps for one configuration: its verified tokens and its bound on
/// token-endpoint calls.
pub(super) struct Worker {
    owner: Weak<Native>,
    cache: TokenCache,
    pub token_calls: Bound,
}

thread_local! {
    /// This worker's state, per configuration (dropped with it).
    static WORKERS: RefCell<HashMap<u64, Worker>> = RefCell::new(HashMap::new());
}

/// Runs `f` on this worker's state for `native`. Calls no Envoy callback: hold none in `f`.
pub(super) fn with_worker<T>(native: &Arc<Native>, f: impl FnOnce(&mut Worker) -> T) -> T {
    WORKERS.with(|workers| {
        let mut workers = workers.borrow_mut();
        if !workers.contains_key(&native.id) {
            // A new configuration on this worker: drop the state of those that are gone.
            workers.retain(|_, w| w.owner.strong_count() > 0);
        }
        let worker = workers.entry(native.id).or_insert_with(|| Worker {
            owner: Arc::downgrade(native),
            cache: TokenCache::with_limits(
                native.config.token_cache_entries,
                native.config.token_cache_bytes,
            ),
            token_calls: Bound::default(),
        });
        f(worker)
    })
}

/// Decides `request` with the current keys, the kept online answers and this worker's cache;
/// `unreachable`: read that token's answer as "Cognito cannot be reached".
fn decide(
    native: &Arc<Native>,
    request: &Request,
    envoy: EnvoyFilter,
    now_ms: u64,
    unreachable: Option<&TokenKey>,
) -> Decision {
    let keys = native.keys.load();
    let fetched = native.lists.load();
    let overlay;
    let online: &dyn crate::online::Answers = match unreachable {
        Some(key) => {
            overlay = AsUnreachable {
                inner: &native.online,
                key,
            };
            &overlay
        }
        None => &native.online,
    };
    let lists = Lists {
        fetched: &fetched,
        online,
        ended: &native.ended,
    };
    with_worker(native, |worker| {
        let d = decide_with(
            request,
            &native.config,
            &keys,
            &lists,
            native.verifier.as_ref(),
            &mut worker.cache,
            now_ms / 1000,
            &token_endpoint::random,
        );
        native.metrics.cache(envoy, worker.cache.take_counts());
        d
    })
}

fn forward(envoy: EnvoyFilter, allowed: &Allowed) {
    debug!("cognito-edge-auth: allowed ({})", allowed.reason);
    for name in &allowed.remove {
        envoy.set_request_header(name, None);
    }
    for (name, value) in allowed.set.iter() {
        envoy.add_request_header(name, value);
    }
    for (name, value) in &allowed.replace {
        envoy.set_request_header(name, Some(value));
    }
}

fn send(envoy: EnvoyFilter, r: &Response) {
    envoy.send_response(r.status, &str_pairs(&r.headers), r.body.as_bytes());
}

/// Header pairs as views.
pub(super) fn str_pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The runtime's host for one request: its calls go out as this stream's callouts (answered
/// to `http_callout_done` on its worker), its counts to the configuration's counters.
struct StreamHost<'a> {
    native: &'a Native,
    envoy: EnvoyFilter,
    /// Where the request remembers its call: Envoy's callout id and the flight's.
    call: &'a Cell<Option<(u64, u64)>>,
}

impl Host for StreamHost<'_> {
    /// Returns a flight id unique in the process (Envoy's callout ids are per stream).
    fn call(&self, call: &Call<'_>) -> Result<u64, String> {
        let id = self
            .envoy
            .callout(call.cluster, &call.headers, call.body, call.timeout_ms)
            .map_err(call_error)?;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let flight = NEXT.fetch_add(1, Ordering::Relaxed);
        self.call.set(Some((id, flight)));
        Ok(flight)
    }

    fn count(&self, name: &str, by: u64) {
        self.native.count(name, by);
    }

    fn gauge(&self, name: &str, value: u64) {
        self.native.gauge(name, value);
    }
}
