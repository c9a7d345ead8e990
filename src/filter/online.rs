//! Online checks of Cognito access tokens: the `GetUser` call, the answers in shared data
//! (every worker of the process uses them), and the requests that wait for an answer.

use super::http::{self, Outcome};
use super::root::{Shared, Waiter};
use crate::decision::Check;
use crate::online::{self, Answers, Record, TokenKey};
use log::debug;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// A waiting request gives up this long after its call's timeout (the call's own timeout
/// answers first; this is for a call whose answer never arrives).
const WAIT_GRACE_MS: u64 = 2_000;
/// `GetUser` answers are small; more than this is not read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Answers this worker wrote, kept locally too (in case shared data refuses a write).
const MAX_LOCAL_ANSWERS: usize = 4_096;

/// This worker's online-check state.
#[derive(Default)]
pub struct State {
    /// Calls under way: `dispatch_http_call` token → the check.
    calls: RefCell<HashMap<u32, Call>>,
    /// Answers this worker got, by token hash.
    local: RefCell<HashMap<String, Record>>,
}

struct Call {
    provider: usize,
    key: TokenKey,
    deadline_ms: u64,
}

/// What became of a check the core asked for.
pub enum Started {
    /// Pause the request until the answer (the caller fills in the context id).
    Wait(Waiter),
    /// Too many checks under way on this worker: answer 503.
    Busy,
    /// The call could not be made: decide as if Cognito were unreachable.
    Failed,
}

/// The kept answers: this worker's own, then shared data.
pub struct SharedAnswers<'a>(pub &'a Shared);

impl Answers for SharedAnswers<'_> {
    fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
        if let Some(r) = self.0.online.local.borrow().get(&key.hex) {
            return Some(r.clone());
        }
        let name = slot_key(self.0, provider, key)?;
        match hostcalls::get_shared_data(&name) {
            Ok((Some(bytes), _)) => Record::decode(&bytes),
            _ => None,
        }
    }
}

/// Starts the check (or joins one under way for the same token on this worker).
pub fn start(shared: &Shared, check: &Check, now_ms: u64) -> Started {
    let Some(config) = shared
        .config
        .providers
        .get(check.provider)
        .and_then(|p| p.online_check.as_ref())
    else {
        return Started::Failed;
    };
    let deadline_ms = now_ms
        .saturating_add(config.timeout_ms)
        .saturating_add(WAIT_GRACE_MS);
    let waiter = Waiter {
        context_id: 0,
        provider: check.provider,
        attempts: 0,
        first_keys: false,
        deadline_ms,
        online: Some(check.key.hex.clone()),
    };
    let mut calls = shared.online.calls.borrow_mut();
    calls.retain(|_, c| now_ms < c.deadline_ms);
    if calls.values().any(|c| c.key == check.key) {
        return Started::Wait(waiter);
    }
    if calls.len() >= config.max_in_flight {
        return Started::Busy;
    }
    let headers = vec![
        (":method", "POST"),
        (":path", "/"),
        (":authority", config.authority.as_str()),
        ("content-type", online::CONTENT_TYPE),
        ("x-amz-target", online::GET_USER_TARGET),
    ];
    let body = online::get_user_body(&check.token);
    let timeout = Duration::from_millis(config.timeout_ms);
    match hostcalls::dispatch_http_call(&config.cluster, headers, Some(&body), vec![], timeout) {
        Ok(token) => {
            calls.insert(
                token,
                Call {
                    provider: check.provider,
                    key: check.key.clone(),
                    deadline_ms,
                },
            );
            Started::Wait(waiter)
        }
        Err(status) => {
            debug!(
                "cognito-edge-auth: online check: cannot call cluster {}: {status:?}",
                config.cluster
            );
            Started::Failed
        }
    }
}

/// Whether `token` is one of this worker's online-check calls.
pub fn is_call(shared: &Shared, token: u32) -> bool {
    shared.online.calls.borrow().contains_key(&token)
}

/// The answer to call `token` arrived (or it timed out): keep it, resume its requests.
pub fn finished(shared: &Shared, token: u32, body_size: usize, now_ms: u64) {
    let Some(call) = shared.online.calls.borrow_mut().remove(&token) else {
        return;
    };
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| String::from_utf8(s).ok())
        .and_then(|s| s.parse::<u32>().ok());
    let body = hostcalls::get_buffer(
        BufferType::HttpCallResponseBody,
        0,
        body_size.min(MAX_ANSWER_BYTES),
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let answer = online::answer_of(status, &body);
    let provider = shared.config.providers.get(call.provider);
    let cache_ms = provider
        .and_then(|p| p.online_check.as_ref())
        .map_or(0, |c| c.cache_seconds.saturating_mul(1000));
    debug!(
        "cognito-edge-auth: provider {}: online check: {answer:?} (HTTP {})",
        provider.map_or("-", |p| p.name.as_str()),
        status.map_or_else(|| "none".to_string(), |s| s.to_string())
    );
    shared.metrics.borrow().online_answer(call.provider, answer);
    let record = online::record(&call.key, answer, now_ms, cache_ms);
    if let Some(name) = slot_key(shared, call.provider, &call.key) {
        let _ = hostcalls::set_shared_data(&name, Some(&record.encode()), None);
    }
    {
        let mut local = shared.online.local.borrow_mut();
        local.retain(|_, r| now_ms < r.until_ms);
        if local.len() >= MAX_LOCAL_ANSWERS {
            local.clear();
        }
        local.insert(call.key.hex.clone(), record);
    }
    resume(shared, &call.key.hex, now_ms);
}

/// Decides again the requests of this worker that wait for the answer about `key`.
fn resume(shared: &Shared, key: &str, now_ms: u64) {
    let ready: Vec<Waiter> = {
        let mut waiters = shared.waiters.borrow_mut();
        let (ready, waiting) = waiters
            .drain(..)
            .partition(|w: &Waiter| w.online.as_deref() == Some(key));
        *waiters = waiting;
        ready
    };
    for w in ready {
        if hostcalls::set_effective_context(w.context_id).is_err() {
            continue; // the request is gone
        }
        match http::process(shared, now_ms, now_ms < w.deadline_ms) {
            Outcome::Forward => {
                let _ = hostcalls::resume_http_request();
            }
            Outcome::Answered => {}
            // Sign-in steps are decided before the online check: never from a waiter.
            Outcome::Call(_) | Outcome::Refresh(_) | Outcome::Logout(_) => {
                let f = crate::session::Failure::Exchange;
                http::login_failed(shared, f, &f.page())
            }
            Outcome::Wait(mut again) => {
                again.context_id = w.context_id;
                shared.waiters.borrow_mut().push(again);
            }
        }
    }
}

/// The shared-data key of the slot that holds `key`'s answer: per issuer, so two plugins
/// checking the same pool share answers and different pools never mix.
fn slot_key(shared: &Shared, provider: usize, key: &TokenKey) -> Option<String> {
    let issuer = shared.config.providers.get(provider)?.issuers.first()?;
    Some(format!("cognito-edge-auth/v1/online/{issuer}/{}", key.slot))
}
