//! One request through the native module: read its headers, ask the core, act on the
//! decision — or wait for keys and decide again when the main thread says so.

use super::abi::EnvoyFilter;
use super::config::{Native, EVENT_WAKE};
use super::now_ms;
use crate::cache::TokenCache;
use crate::decision::{decide_with, Allowed, Decision, Lists, Request};
use crate::response::Response;
use crate::runtime::wait::{self, Wait};
use log::debug;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// One request. Envoy may re-enter a hook from inside a callback, so its state is in cells
/// and no borrow is held across a call into Envoy.
pub struct Filter {
    native: Arc<Native>,
    /// The waiter id while the request waits for keys.
    parked: Cell<Option<u64>>,
    /// A local reply has been sent.
    answered: Cell<bool>,
}

/// What became of a request.
enum Outcome {
    Forward,
    Answered,
    Wait(Wait),
}

impl Filter {
    pub fn new(native: Arc<Native>) -> Filter {
        Filter {
            native,
            parked: Cell::new(None),
            answered: Cell::new(false),
        }
    }

    /// Whether the request goes on now (else it is answered or waits).
    pub fn on_request_headers(&self, envoy: EnvoyFilter) -> bool {
        match self.process(envoy, now_ms(), true) {
            Outcome::Forward => true,
            Outcome::Answered => false,
            Outcome::Wait(w) => {
                let parked = envoy
                    .scheduler()
                    .and_then(|scheduler| self.native.park(w, scheduler));
                match parked {
                    Some(id) => {
                        self.parked.set(Some(id));
                        false
                    }
                    // Too many wait already: decide now, without waiting.
                    None => matches!(self.process(envoy, now_ms(), false), Outcome::Forward),
                }
            }
        }
    }

    /// The main thread woke this request: decide again.
    pub fn on_scheduled(&self, envoy: EnvoyFilter, event: u64) {
        if event != EVENT_WAKE || self.parked.take().is_none() || self.answered.get() {
            return;
        }
        match self.process(envoy, now_ms(), false) {
            Outcome::Forward => envoy.continue_decoding(),
            Outcome::Answered | Outcome::Wait(_) => {}
        }
    }

    pub fn complete(&self) {
        if let Some(id) = self.parked.take() {
            self.native.forget(id);
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

    /// Decides the request at `now_ms` and rewrites its headers or answers it. With
    /// `may_wait`, a request that needs keys not loaded yet is held.
    fn process(&self, envoy: EnvoyFilter, now_ms: u64, may_wait: bool) -> Outcome {
        let native = &self.native;
        // Read as bytes: a client may send header values that are not UTF-8.
        let headers = envoy.request_headers();
        let pseudo = |name: &str| crate::decision::header(&headers, name).unwrap_or_default();
        let request = Request::new(pseudo(":method"), pseudo(":path"), &headers);
        let decision = decide(native, &request, envoy, now_ms);
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
                            return Outcome::Wait(w);
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
                        return Outcome::Wait(w);
                    }
                }
                crate::runtime::log::denial(native.config.denial_log_level, &denied, &request);
                native.metrics.denied(envoy, denied.reason);
                self.answer(envoy, &denied.response);
                Outcome::Answered
            }
            // Not reached: the native module refuses a configuration with an online check
            // or browser sign-in (config.rs); should one slip through, fail closed.
            Decision::Check(_)
            | Decision::Redirect(_)
            | Decision::Call(_)
            | Decision::Refresh(_)
            | Decision::Logout(_) => {
                self.answer(envoy, &internal_error());
                Outcome::Answered
            }
        }
    }

    fn answer(&self, envoy: EnvoyFilter, r: &Response) {
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

thread_local! {
    /// This worker's verified tokens, per configuration (dropped with it).
    static CACHES: RefCell<HashMap<u64, (Weak<Native>, TokenCache)>> = RefCell::new(HashMap::new());
}

/// Decides `request` with the current keys and this worker's cache.
fn decide(native: &Arc<Native>, request: &Request, envoy: EnvoyFilter, now_ms: u64) -> Decision {
    let keys = native.keys.load();
    let fetched = native.lists.load();
    let lists = Lists {
        fetched: &fetched,
        online: &crate::online::NoAnswers,
        ended: &crate::session::ended::NoneEnded,
    };
    CACHES.with(|caches| {
        let mut caches = caches.borrow_mut();
        if !caches.contains_key(&native.id) {
            // A new configuration on this worker: drop the caches of those that are gone.
            caches.retain(|_, (owner, _)| owner.strong_count() > 0);
        }
        let (_, cache) = caches.entry(native.id).or_insert_with(|| {
            (
                Arc::downgrade(native),
                TokenCache::with_limits(
                    native.config.token_cache_entries,
                    native.config.token_cache_bytes,
                ),
            )
        });
        let d = decide_with(
            request,
            &native.config,
            &keys,
            &lists,
            native.verifier.as_ref(),
            cache,
            now_ms / 1000,
            &|| None,
        );
        native.metrics.cache(envoy, cache.take_counts());
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
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    envoy.send_response(r.status, &headers, r.body.as_bytes());
}
