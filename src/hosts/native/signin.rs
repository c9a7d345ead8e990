//! Browser sign-in's steps for one request of the native module: the callback's code exchange,
//! the session's refresh (one per session per worker, the others waiting for it), and the
//! logout's revocation, each a callout of the request to the token endpoint's cluster. What
//! each step's answer means, counts and logs is the runtime's ([`crate::runtime::signin`]),
//! as for the .wasm.

use super::abi::{CalloutAnswer, EnvoyFilter, FilterScheduler};
use super::config::call_error;
use super::filter::{str_pairs, with_worker, Filter};
use super::now_ms;
use crate::response::Response;
use crate::runtime::signin::{self, LogoutStep, TokenAnswer};
use crate::session::{self, Random};
use ring::rand::{SecureRandom, SystemRandom};
use std::cell::RefCell;
use std::rc::{Rc, Weak};

/// A request's scheduler event: the refresh it waited for is over.
pub const EVENT_REFRESHED: u64 = 2;

/// A sign-in step's call under way.
pub enum Step {
    /// The callback's code exchange.
    Exchange(session::Pending),
    /// The session's refresh.
    Refresh(session::RefreshPending),
    /// The logout's revocation, and the logout's answer to send after it.
    Revoke(Response),
}

/// Where a request that waits for another's refresh of its session gets the outcome (on the
/// same worker): the renewed session's `Set-Cookie`s, or `None` for no session.
pub struct Handoff {
    scheduler: FilterScheduler,
    result: RefCell<Option<Vec<String>>>,
}

/// The random bytes of one sign-in step (`ring`'s system randomness: the kernel's
/// `getrandom`).
pub fn random() -> Option<Random> {
    let rng = SystemRandom::new();
    signin::random(|bytes| rng.fill(bytes).is_ok())
}

impl Filter {
    /// Takes a place for this request's token-endpoint call; `false` when the worker's bound is
    /// full, and the request has been answered 503.
    pub(super) fn take_token_call(&self, envoy: EnvoyFilter) -> bool {
        if !self.reserve_token_call() {
            self.answer(envoy, &signin::busy(self.native.as_ref()));
            return false;
        }
        true
    }

    /// Takes a place for this request's token-endpoint call, answering nothing; `false` when
    /// the worker's bound is full.
    fn reserve_token_call(&self) -> bool {
        let max = crate::runtime::token_calls::max_in_flight(&self.native.config);
        let slot = with_worker(&self.native, |w| w.token_calls.take(max));
        let taken = slot.is_some();
        *self.token_call.borrow_mut() = slot;
        taken
    }

    /// Sends a sign-in step's call; its answer comes to [`Filter::token_answered`].
    fn dispatch(&self, envoy: EnvoyFilter, call: &session::Call, step: Step) -> Result<(), String> {
        let headers = str_pairs(&call.headers);
        let id = envoy
            .callout(&call.cluster, &headers, &call.body, call.timeout_ms)
            .map_err(call_error)?;
        *self.step.borrow_mut() = Some((id, step));
        Ok(())
    }

    /// The callback's code exchange: the answer comes later.
    pub(super) fn exchange(
        &self,
        envoy: EnvoyFilter,
        call: &session::Call,
        pending: session::Pending,
    ) {
        let native = self.native.as_ref();
        if let Err(why) = self.dispatch(envoy, call, Step::Exchange(pending.clone())) {
            let page =
                signin::exchange_not_made(&native.config, native, &pending, &call.cluster, &why);
            self.answer(envoy, &page);
        }
    }

    /// Renews the session: one refresh per session per worker is in flight; a request whose
    /// session is being renewed waits for that refresh. Whether the request goes on now.
    pub(super) fn refresh(
        &self,
        envoy: EnvoyFilter,
        call: &session::Call,
        pending: session::RefreshPending,
        now: u64,
    ) -> bool {
        let native = &self.native;
        let in_flight = with_worker(native, |w| {
            w.refreshes
                .get(&pending.refresh)
                .is_some_and(|(deadline, _)| now < *deadline)
        });
        if in_flight {
            *self.token_call.borrow_mut() = None; // no call of its own
            if let Some(scheduler) = envoy.scheduler() {
                let handoff = Rc::new(Handoff {
                    scheduler,
                    result: RefCell::new(None),
                });
                let waiter = Rc::downgrade(&handoff);
                with_worker(native, |w| {
                    if let Some((_, waiting)) = w.refreshes.get_mut(&pending.refresh) {
                        waiting.push(waiter);
                    }
                });
                *self.handoff.borrow_mut() = Some(handoff);
                return false;
            }
            return self.redecide(envoy, now, None);
        }
        // None in flight, or one whose answer is overdue (its request went away before the
        // answer): taken over, with the requests that waited for it.
        let waiting = with_worker(native, |w| w.refreshes.remove(&pending.refresh))
            .map(|(_, w)| w)
            .unwrap_or_default();
        let refresh = pending.refresh.clone();
        match self.dispatch(envoy, call, Step::Refresh(pending)) {
            Ok(()) => {
                let deadline = now
                    .saturating_add(call.timeout_ms)
                    .saturating_add(signin::REFRESH_GRACE_MS);
                with_worker(native, |w| w.refreshes.insert(refresh, (deadline, waiting)));
                false
            }
            Err(why) => {
                signin::refresh_not_made(native.as_ref(), &call.cluster, &why);
                release(waiting, None);
                self.redecide(envoy, now, None)
            }
        }
    }

    /// A request to `logout_path`: the confirmation page, or the session ended in the process,
    /// its refresh token revoked, then the logout's answer (also when the revocation fails).
    pub(super) fn logout(&self, envoy: EnvoyFilter, logout: session::Logout, now: u64) {
        let native = self.native.as_ref();
        let step = signin::logout(native, &native.ended, logout, now / 1000, || {
            self.reserve_token_call()
        });
        match step {
            LogoutStep::Send(response) => self.answer(envoy, &response),
            LogoutStep::Revoke(call, response) => {
                if let Err(why) = self.dispatch(envoy, &call, Step::Revoke(response.clone())) {
                    signin::revoke_not_made(native, &call.cluster, &why);
                    self.answer(envoy, &response);
                }
            }
        }
    }

    /// The answer to this request's sign-in step's call `id`.
    pub(super) fn token_answered(&self, envoy: EnvoyFilter, id: u64, answer: &CalloutAnswer) {
        let step = {
            let mut step = self.step.borrow_mut();
            match step.take() {
                Some((expected, s)) if expected == id => s,
                other => {
                    *step = other;
                    return;
                }
            }
        };
        // Its token-endpoint call is over.
        *self.token_call.borrow_mut() = None;
        let native = self.native.as_ref();
        let now = now_ms();
        let keys = native.keys.load();
        let token_answer = TokenAnswer {
            status: answer.status,
            body: &answer.body,
            keys: &keys,
            signatures: native.verifier.as_ref(),
            random: random(),
        };
        match step {
            Step::Exchange(pending) => {
                let response =
                    signin::exchanged(&native.config, native, &token_answer, &pending, now / 1000);
                self.answer(envoy, &response);
            }
            Step::Refresh(pending) => {
                let r = signin::refreshed(
                    &native.config,
                    native,
                    &native.ended,
                    &token_answer,
                    &pending,
                    now,
                );
                let waiting = with_worker(&self.native, |w| w.refreshes.remove(&pending.refresh))
                    .map(|(_, w)| w)
                    .unwrap_or_default();
                *self.set_cookies.borrow_mut() = r.set_cookies;
                if self.redecide(envoy, now, r.cookies.as_deref()) {
                    envoy.continue_decoding();
                }
                release(waiting, r.cookies.as_deref());
            }
            Step::Revoke(response) => {
                signin::revoked(native, answer.status);
                self.answer(envoy, &response);
            }
        }
    }

    /// The refresh this request waited for is over: decide again with its outcome.
    pub(super) fn on_refreshed(&self, envoy: EnvoyFilter) {
        let Some(handoff) = self.handoff.borrow_mut().take() else {
            return;
        };
        let cookies = handoff.result.borrow_mut().take();
        if self.redecide(envoy, now_ms(), cookies.as_deref()) {
            envoy.continue_decoding();
        }
    }

    /// Decides the request again with its session replaced by the one `cookies` set (`None`:
    /// without a session), and acts on it; never waits, never refreshes again. Whether the
    /// request goes on.
    fn redecide(&self, envoy: EnvoyFilter, now: u64, cookies: Option<&[String]>) -> bool {
        let Some(login) = self.native.config.login.as_ref() else {
            return false;
        };
        let headers = envoy.request_headers();
        let renewed = session::with_session(login, &headers, cookies);
        let outcome = self.process(envoy, &renewed, now, false, true);
        self.act(envoy, outcome)
    }

    /// The request went away: a refresh it had in flight releases the requests waiting for it
    /// (without the session, rather than wait for an answer that never comes).
    pub(super) fn signin_complete(&self) {
        if let Some((_, Step::Refresh(pending))) = self.step.borrow_mut().take() {
            let waiting = with_worker(&self.native, |w| w.refreshes.remove(&pending.refresh))
                .map(|(_, w)| w)
                .unwrap_or_default();
            release(waiting, None);
        }
        self.handoff.borrow_mut().take();
        self.token_call.borrow_mut().take();
    }
}

/// Wakes the requests that waited for a refresh, with the renewed session or without one.
fn release(waiting: Vec<Weak<Handoff>>, cookies: Option<&[String]>) {
    for handoff in waiting.iter().filter_map(Weak::upgrade) {
        *handoff.result.borrow_mut() = cookies.map(<[String]>::to_vec);
        handoff.scheduler.commit(EVENT_REFRESHED);
    }
}
