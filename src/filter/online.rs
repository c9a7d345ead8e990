//! Online checks of Cognito access tokens: the `GetUser` call, the answers in shared data
//! (every worker of the process uses them), and the requests that wait for an answer.

use super::http::{self, Outcome};
use super::root::{Shared, Waiter};
use super::shared_data;
use crate::decision::{Check, Decision, NOT_CHECKABLE_SCOPE_REASON};
use crate::online::{self, Answer, Answers, Backoff, Claim, Record, TokenKey};
use log::{debug, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
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
    /// Providers whose unchecked tokens this worker has explained in the log.
    noted: RefCell<HashSet<usize>>,
}

struct Call {
    provider: usize,
    key: TokenKey,
    deadline_ms: u64,
    /// Whose check it is (`sub`), for the fair share.
    principal: String,
}

/// What became of a check the core asked for.
pub enum Started {
    /// Pause the request until the answer (the caller fills in the context id).
    Wait(Waiter),
    /// Too many checks under way on this worker, or for this principal: answer 503.
    Busy,
    /// The call could not be made: decide as if Cognito were unreachable.
    Failed,
    /// Cognito throttled the provider a moment ago: no call, decide as if unreachable.
    BackedOff,
}

/// The kept answers: this worker's own, then shared data.
pub struct SharedAnswers<'a>(pub &'a Shared);

impl Answers for SharedAnswers<'_> {
    fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
        // This worker's own answer while it is current; after that, shared data's (another
        // worker may have asked again since).
        let now_ms = hostcalls::get_current_time().map_or(0, super::millis);
        if let Some(r) = self.0.online.local.borrow().get(&key.hex) {
            if now_ms < r.until_ms {
                return Some(r.clone());
            }
        }
        let name = slot_key(self.0, provider, key)?;
        match hostcalls::get_shared_data(&name) {
            Ok((Some(bytes), _)) => Record::decode(&bytes),
            _ => None,
        }
    }
}

/// Starts the check, or joins one under way for the same token on this worker or another
/// (the slot's pending marker): one call per token per process.
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
        online: Some(check.key.clone()),
        renewal: None,
    };
    let mut calls = shared.online.calls.borrow_mut();
    calls.retain(|_, c| now_ms < c.deadline_ms);
    if calls.values().any(|c| c.key == check.key) {
        return Started::Wait(waiter);
    }
    if backoff(shared, check.provider).is_some_and(|b| b.holds(now_ms)) {
        shared.metrics.borrow().online_backed_off(check.provider);
        return Started::BackedOff;
    }
    let principal_calls = calls
        .values()
        .filter(|c| c.principal == check.principal)
        .count();
    if calls.len() >= config.max_in_flight || principal_calls >= config.max_in_flight_per_principal
    {
        return Started::Busy;
    }
    let slot = slot_key(shared, check.provider, &check.key);
    if let Some(name) = &slot {
        if mark_pending(name, &check.key, deadline_ms, now_ms) == Claim::Join {
            debug!("cognito-edge-auth: online check: joined the call of another worker");
            return Started::Wait(waiter);
        }
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
                    principal: check.principal.clone(),
                },
            );
            Started::Wait(waiter)
        }
        Err(status) => {
            debug!(
                "cognito-edge-auth: online check: cannot call cluster {}: {status:?}",
                config.cluster
            );
            // Requests of other workers that joined this call are answered at once.
            if let Some(name) = &slot {
                let cache_ms = config.cache_seconds.saturating_mul(1000);
                let record = online::record(&check.key, Answer::Unreachable, now_ms, cache_ms);
                let _ = hostcalls::set_shared_data(name, Some(&record.encode()), None);
            }
            Started::Failed
        }
    }
}

/// Marks the slot `name` as asked about `key` until `until_ms`, unless a worker is asking
/// already (or has just answered): [`Claim::Join`] then. Compare-and-swap, so of two workers
/// racing for the same token one asks and the other joins.
fn mark_pending(name: &str, key: &TokenKey, until_ms: u64, now_ms: u64) -> Claim {
    let marker = online::pending(key, until_ms).encode();
    let mut claim = Claim::Ask;
    shared_data::update(name, |current| {
        claim = online::claim(current.and_then(Record::decode).as_ref(), key, now_ms);
        (claim == Claim::Ask).then(|| marker.clone())
    });
    // Written, or shared data refuses writes: ask (bounded per worker all the same).
    claim
}

/// Whether a current answer about `key` is in shared data (another worker's call answered).
pub fn answered(shared: &Shared, provider: usize, key: &TokenKey, now_ms: u64) -> bool {
    online::lookup(&SharedAnswers(shared), provider, key, now_ms).is_some()
}

/// Counts and explains a decision on an access token that `GetUser` cannot judge (passed
/// unchecked, or refused on an `active` route).
pub fn note_unchecked(shared: &Shared, decision: &Decision) {
    let provider = match decision {
        Decision::Allow(a) => a.unchecked,
        Decision::Deny(d) if d.reason == NOT_CHECKABLE_SCOPE_REASON => {
            let name = d.provider.as_deref();
            shared
                .config
                .providers
                .iter()
                .position(|p| Some(p.name.as_str()) == name)
        }
        _ => None,
    };
    if let Some(provider) = provider {
        unchecked(shared, provider);
    }
}

/// An access token of `provider` that `GetUser` cannot judge passed or was refused without a
/// check: counted, and explained in the log once per provider (per process, as far as shared
/// data can tell).
fn unchecked(shared: &Shared, provider: usize) {
    shared.metrics.borrow().online_unchecked(provider);
    if !shared.online.noted.borrow_mut().insert(provider) {
        return;
    }
    let Some(p) = shared.config.providers.get(provider) else {
        return;
    };
    let Some(issuer) = p.issuers.first() else {
        return;
    };
    let name = format!("cognito-edge-auth/v1/online/{issuer}/unchecked-noted");
    if hostcalls::set_shared_data(&name, Some(b"1"), Some(shared_data::CREATE_ONLY)).is_err() {
        return; // another worker has explained it
    }
    warn!(
        "cognito-edge-auth: provider {}: access tokens without the scope {} are not checked online: \
         Cognito's GetUser refuses them. They are refused on routes with \"active\": true and pass \
         unchecked under every_request. Tokens from the SDK's InitiateAuth carry the scope; for \
         hosted-UI sign-ins, allow it in the app client (AllowedOAuthScopes) and ask for it in the \
         authorize request's scope; client-credentials tokens never carry it",
        p.name,
        online::ADMIN_SCOPE
    );
}

/// The provider's current back-off after throttling, if any.
fn backoff(shared: &Shared, provider: usize) -> Option<Backoff> {
    match hostcalls::get_shared_data(&backoff_key(shared, provider)?) {
        Ok((Some(bytes), _)) => Backoff::decode(&bytes),
        _ => None,
    }
}

fn backoff_key(shared: &Shared, provider: usize) -> Option<String> {
    let issuer = shared.config.providers.get(provider)?.issuers.first()?;
    Some(format!("cognito-edge-auth/v1/online/{issuer}/backoff"))
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
    let error_type =
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, "x-amzn-errortype")
            .ok()
            .flatten();
    let answer = online::answer_of(status, error_type.as_deref(), &body);
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
    match answer {
        Answer::Throttled => {
            if let Some(name) = backoff_key(shared, call.provider) {
                let next = Backoff::after_throttling(backoff(shared, call.provider), now_ms);
                let _ = hostcalls::set_shared_data(&name, Some(&next.encode()), None);
                warn!(
                    "cognito-edge-auth: provider {}: Cognito throttles GetUser; no online check for {} ms",
                    provider.map_or("-", |p| p.name.as_str()),
                    next.step_ms
                );
            }
        }
        Answer::NotCheckable => warn!(
            "cognito-edge-auth: provider {}: Cognito says an access token with the scope {} \
             does not have the scopes GetUser requires; it is treated as not checkable",
            provider.map_or("-", |p| p.name.as_str()),
            online::ADMIN_SCOPE
        ),
        _ => {}
    }
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
    resume(shared, &call.key, now_ms);
}

/// Decides again the requests of this worker that wait for the answer about `key`.
fn resume(shared: &Shared, key: &TokenKey, now_ms: u64) {
    let ready: Vec<Waiter> = {
        let mut waiters = shared.waiters.borrow_mut();
        let (ready, waiting) = waiters
            .drain(..)
            .partition(|w: &Waiter| w.online.as_ref() == Some(key));
        *waiters = waiting;
        ready
    };
    for w in ready {
        if hostcalls::set_effective_context(w.context_id).is_err() {
            continue; // the request is gone
        }
        match http::resume(shared, now_ms, now_ms < w.deadline_ms) {
            Outcome::Forward => {
                let _ = hostcalls::resume_http_request();
            }
            Outcome::Answered | Outcome::Call(_) | Outcome::Refresh(_) | Outcome::Logout(_) => {}
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
