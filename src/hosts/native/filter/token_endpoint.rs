//! Browser sign-in's steps for one request of the native module: the callback's code exchange,
//! the session's refresh (one per session per process, the others waiting for it, and the
//! renewed session kept for `refresh_grace_seconds`), and the logout's revocation, each a
//! callout of the request to the token endpoint's cluster. What each step's answer means,
//! counts and logs is the runtime's ([`crate::runtime::signin`]), as for the .wasm.

use super::{str_pairs, with_worker, Filter, Outcome};
use crate::hosts::native::abi::{CalloutAnswer, EnvoyFilter};
use crate::hosts::native::config::{call_error, Waiting};
use crate::hosts::native::now_ms;
use crate::online::TokenKey;
use crate::response::Response;
use crate::runtime::signin::{self, Known, LogoutStep, TokenAnswer};
use crate::runtime::Host;
use crate::session::renewal::{Found, Renewal};
use crate::session::{self, Random};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// A sign-in step's call under way.
pub enum Step {
    /// The callback's code exchange.
    Exchange(session::Pending),
    /// The session's refresh.
    Refresh(session::RefreshPending),
    /// The logout's revocation, and the logout's answer to send after it.
    Revoke(Response),
}

/// The random bytes of one sign-in step (`aws-lc-rs`'s system randomness: the kernel's
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

    /// Renews the session, once per session in the process: a request whose session is being
    /// renewed (on any worker) waits for that refresh; one renewed a moment ago (within the
    /// login's `refresh_grace_seconds`) goes on with the renewed session and passes it to the
    /// browser. Whether the request goes on now.
    pub(super) fn refresh(
        &self,
        envoy: EnvoyFilter,
        call: &session::Call,
        pending: session::RefreshPending,
        now: u64,
    ) -> bool {
        let native = &self.native;
        let key = TokenKey::of(&pending.refresh);
        let deadline_ms = now
            .saturating_add(call.timeout_ms)
            .saturating_add(signin::REFRESH_GRACE_MS);
        match native.renewals.claim(&key, deadline_ms, now) {
            Found::Ask => {}
            Found::Join(until) => {
                *self.token_call.borrow_mut() = None; // no call of its own
                let wait = Waiting::Renewal {
                    key,
                    deadline_ms: until,
                };
                return self.act(envoy, Outcome::Wait(wait));
            }
            found => {
                *self.token_call.borrow_mut() = None;
                native.count("refresh.shared", 1);
                let known = Known::from(found);
                if let Known::Renewed(cookies) = &known {
                    self.set_cookies.borrow_mut().clone_from(cookies);
                }
                return self.redecide(envoy, now, &known);
            }
        }
        match self.dispatch(envoy, call, Step::Refresh(pending)) {
            Ok(()) => false,
            Err(why) => {
                signin::refresh_not_made(native.as_ref(), &call.cluster, &why);
                native.renewals.settle(&key, Renewal::failed(&key, now));
                native.wake(now);
                self.redecide(envoy, now, &Known::Failed)
            }
        }
    }

    /// A request still due for renewal after it waited: as the process's record of its
    /// session's refresh says. Whether it goes on now.
    pub(super) fn renewed_elsewhere(
        &self,
        envoy: EnvoyFilter,
        pending: &session::RefreshPending,
        now: u64,
    ) -> bool {
        let found = self
            .native
            .renewals
            .found(&TokenKey::of(&pending.refresh), now);
        self.redecide(envoy, now, &Known::from(found))
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
                // For the requests of this session on every worker, and those that come within
                // the grace window with the session it renewed.
                let known = match native.config.login.as_ref() {
                    Some(login) => {
                        let key = TokenKey::of(&pending.refresh);
                        let (settled, known) =
                            Known::settled(login, &key, r.cookies.as_deref(), now);
                        native.renewals.settle(&key, settled);
                        known
                    }
                    None => Known::Failed,
                };
                native.wake(now);
                *self.set_cookies.borrow_mut() = r.set_cookies;
                if self.redecide(envoy, now, &known) {
                    envoy.continue_decoding();
                }
            }
            Step::Revoke(response) => {
                signin::revoked(native, answer.status);
                self.answer(envoy, &response);
            }
        }
    }

    /// Decides the request again with its session renewed, gone or as it is (`known`), and
    /// acts on it; never waits, never refreshes again. Whether the request goes on.
    fn redecide(&self, envoy: EnvoyFilter, now: u64, known: &Known) -> bool {
        let Some(login) = self.native.config.login.as_ref() else {
            return false;
        };
        let headers = known.headers(login, envoy.request_headers());
        let outcome = self.process(envoy, &headers, now, false, true);
        self.act(envoy, outcome)
    }

    /// The request went away: a refresh it had in flight lets the requests waiting for it go on
    /// (with the session as it is, rather than wait for an answer that never comes).
    pub(super) fn signin_complete(&self) {
        if let Some((_, Step::Refresh(pending))) = self.step.borrow_mut().take() {
            self.native
                .renewals
                .abandon(&TokenKey::of(&pending.refresh));
            self.native.wake(now_ms());
        }
        self.token_call.borrow_mut().take();
    }
}
