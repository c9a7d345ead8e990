//! Online checks of Cognito access tokens: the `GetUser` call, the answers in shared data
//! (every worker of the process uses them), and the requests that wait for an answer.

use super::shared::{Shared, Waiter};
use super::shared_data;
use crate::decision::{Check, Decision};
use crate::online::{self, Answers, Backoff, Claim, Record, TokenKey};
use crate::runtime::{self, online::Kept, online::Started, Host};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::time::Duration;

/// Answers this worker wrote, kept locally too (in case shared data refuses a write).
const MAX_LOCAL_ANSWERS: usize = 4_096;

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

impl Kept for SharedAnswers<'_> {
    fn claim(&self, provider: usize, key: &TokenKey, until_ms: u64, now_ms: u64) -> Claim {
        match slot_key(self.0, provider, key) {
            Some(name) => mark_pending(&name, key, until_ms, now_ms),
            None => Claim::Ask,
        }
    }

    fn keep(&self, provider: usize, key: &TokenKey, record: &Record) {
        if let Some(name) = slot_key(self.0, provider, key) {
            let _ = hostcalls::set_shared_data(&name, Some(&record.encode()), None);
        }
        let now_ms = hostcalls::get_current_time().map_or(0, super::millis);
        let mut local = self.0.online.local.borrow_mut();
        local.retain(|_, r| now_ms < r.until_ms);
        if local.len() >= MAX_LOCAL_ANSWERS {
            local.clear();
        }
        local.insert(record.key.clone(), record.clone());
    }

    fn backoff(&self, provider: usize) -> Option<Backoff> {
        match hostcalls::get_shared_data(&backoff_key(self.0, provider)?) {
            Ok((Some(bytes), _)) => Backoff::decode(&bytes),
            _ => None,
        }
    }

    fn set_backoff(&self, provider: usize, backoff: Backoff) {
        if let Some(name) = backoff_key(self.0, provider) {
            let _ = hostcalls::set_shared_data(&name, Some(&backoff.encode()), None);
        }
    }

    /// Once per worker, and once per process as far as shared data can tell.
    fn first_note(&self, provider: usize) -> bool {
        if !self.0.online.noted.borrow_mut().insert(provider) {
            return false;
        }
        let Some(issuer) = self
            .0
            .config
            .providers
            .get(provider)
            .and_then(|p| p.issuers.first())
        else {
            return false;
        };
        let name = format!("cognito-edge-auth/v1/online/{issuer}/unchecked-noted");
        hostcalls::set_shared_data(&name, Some(b"1"), Some(shared_data::CREATE_ONLY)).is_ok()
    }
}

/// The host seam for the runtime: calls with `dispatch_http_call`, counts by name.
pub struct WasmHost<'a>(pub &'a Shared);

impl Host for WasmHost<'_> {
    fn call(&self, call: &crate::runtime::Call<'_>) -> Result<u64, String> {
        let timeout = Duration::from_millis(call.timeout_ms);
        hostcalls::dispatch_http_call(
            call.cluster,
            call.headers.clone(),
            Some(call.body),
            vec![],
            timeout,
        )
        .map(u64::from)
        .map_err(|status| format!("{status:?}"))
    }

    fn count(&self, name: &str, by: u64) {
        self.0.metrics.borrow_mut().count_named(name, by);
    }

    fn gauge(&self, _name: &str, _value: u64) {}
}

/// Starts the check, or joins one under way for the same token on this worker or another:
/// one call per token per process (see [`runtime::online::start`]).
pub fn start(shared: &Shared, check: &Check, now_ms: u64) -> Started {
    let mut calls = shared.online.calls.borrow_mut();
    runtime::online::start(
        &shared.config,
        &SharedAnswers(shared),
        &mut calls,
        &WasmHost(shared),
        check,
        now_ms,
    )
}

/// The waiter of a request paused by [`Started::Wait`] (the caller fills in the context id).
pub fn waiter(check: &Check, deadline_ms: u64) -> Waiter {
    Waiter {
        context_id: 0,
        provider: check.provider,
        attempts: 0,
        first_keys: false,
        deadline_ms,
        online: Some(check.key.clone()),
        renewal: None,
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

/// Counts and explains a decision on an access token that `GetUser` cannot judge.
pub fn note_unchecked(shared: &Shared, decision: &Decision) {
    runtime::online::note_unchecked(
        &shared.config,
        &SharedAnswers(shared),
        &WasmHost(shared),
        decision,
    );
}

fn backoff_key(shared: &Shared, provider: usize) -> Option<String> {
    let issuer = shared.config.providers.get(provider)?.issuers.first()?;
    Some(format!("cognito-edge-auth/v1/online/{issuer}/backoff"))
}

/// Whether `token` is one of this worker's online-check calls.
pub fn is_call(shared: &Shared, token: u32) -> bool {
    shared.online.calls.borrow().contains(u64::from(token))
}

/// The answer to call `token` arrived (or it timed out): keeps it, and returns the token
/// key whose waiting requests may now go on (see [`super::http::resume_online`]).
pub fn finished(shared: &Shared, token: u32, body_size: usize, now_ms: u64) -> Option<TokenKey> {
    let call = shared.online.calls.borrow_mut().take(u64::from(token))?;
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| String::from_utf8(s).ok())
        .and_then(|s| s.parse::<u32>().ok());
    let body = hostcalls::get_buffer(
        BufferType::HttpCallResponseBody,
        0,
        body_size.min(runtime::online::MAX_ANSWER_BYTES),
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let error_type =
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, "x-amzn-errortype")
            .ok()
            .flatten();
    runtime::online::finished(
        &shared.config,
        &SharedAnswers(shared),
        &WasmHost(shared),
        &call,
        status,
        error_type.as_deref(),
        &body,
        now_ms,
    );
    Some(call.key)
}

/// The shared-data key of the slot that holds `key`'s answer: per issuer, so two plugins
/// checking the same pool share answers and different pools never mix.
fn slot_key(shared: &Shared, provider: usize, key: &TokenKey) -> Option<String> {
    let issuer = shared.config.providers.get(provider)?.issuers.first()?;
    Some(format!("cognito-edge-auth/v1/online/{issuer}/{}", key.slot))
}
