//! HttpContext: read the request, ask the core for a decision, act on it.
//!
//! `process` works on whichever request is the effective context, so the root context can
//! run it again for a request it resumes once keys have arrived.

use super::millis;
use super::online;
use super::root::{Shared, Waiter};
use crate::config::{KeySource, LogLevel};
use crate::decision::{decide_with, Allowed, Decision, Denied, Lists, Request};
use crate::online::TokenKey;
use crate::refresh::Refetch;
use crate::response;
use crate::verify::VerifyError;
use log::debug;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::rc::Rc;

/// Paused requests per worker beyond which new ones are answered at once.
const MAX_WAITERS: usize = 4096;
/// A request waiting on an unknown-kid refetch waits this long past the fetch timeout.
const REFETCH_GRACE_MS: u64 = 2_000;

pub struct Http {
    shared: Rc<Shared>,
    context_id: u32,
}

impl Http {
    pub fn new(shared: Rc<Shared>, context_id: u32) -> Self {
        Http { shared, context_id }
    }
}

impl Context for Http {
    /// An online check dispatched while this request was decided: its answer.
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let now = millis(self.get_current_time());
        online::finished(&self.shared, token, body_size, now);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let now = millis(self.get_current_time());
        match process(&self.shared, now, true) {
            Outcome::Forward => Action::Continue,
            Outcome::Answered => Action::Pause,
            Outcome::Wait(mut waiter) => {
                waiter.context_id = self.context_id;
                self.shared.waiters.borrow_mut().push(waiter);
                Action::Pause
            }
        }
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
}

/// Decides the effective context's request at `now_ms`, then rewrites its headers or sends
/// the deny response. With `may_wait`, a request that needs keys not loaded yet is held.
pub fn process(shared: &Shared, now_ms: u64, may_wait: bool) -> Outcome {
    // Read as bytes: a client may send header values that are not UTF-8.
    let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[][..], |(_, v)| v.as_slice())
    };
    let request = Request {
        method: pseudo(":method"),
        path: pseudo(":path"),
        headers: &headers,
    };

    let mut decision = decide_now(shared, &request, now_ms, None);
    if let Decision::Check(check) = &decision {
        if may_wait {
            match online::start(shared, check, now_ms) {
                online::Started::Wait(waiter) => return Outcome::Wait(waiter),
                online::Started::Busy => {
                    let denied = Denied {
                        response: response::unavailable(
                            crate::online::RETRY_AFTER_SECONDS,
                            "too many token checks are under way",
                        ),
                        reason: "online_busy",
                        error: None,
                        provider: None,
                        principal: None,
                    };
                    shared.metrics.borrow_mut().denied(denied.reason);
                    log_denial(shared.config.denial_log_level, &denied, &request);
                    answer(&denied);
                    return Outcome::Answered;
                }
                online::Started::Failed => {}
            }
        }
        // No answer, and none to wait for: decide as if Cognito could not be reached.
        decision = decide_now(shared, &request, now_ms, Some(&check.key));
    }
    match decision {
        Decision::Allow(allowed) => {
            shared.metrics.borrow_mut().allowed();
            forward(&allowed);
            Outcome::Forward
        }
        Decision::Deny(denied) => {
            if let Some(waiter) = may_wait
                .then(|| wait_for_keys(shared, &denied, now_ms))
                .flatten()
            {
                return Outcome::Wait(waiter);
            }
            shared.metrics.borrow_mut().denied(denied.reason);
            log_denial(shared.config.denial_log_level, &denied, &request);
            answer(&denied);
            Outcome::Answered
        }
        Decision::Check(_) => {
            // Not reached: with the answer read as unreachable the core decides.
            let _ = hostcalls::send_http_response(503, vec![("retry-after", "1")], None);
            Outcome::Answered
        }
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
    );
    shared.metrics.borrow_mut().cache(cache.take_counts());
    d
}

/// One line per denied request: status, reason, provider and principal when known, method
/// and path without its query string. Never the token.
fn log_denial(level: LogLevel, denied: &Denied, request: &Request) {
    let level = match level {
        LogLevel::Off => return,
        LogLevel::Debug => log::Level::Debug,
        LogLevel::Info => log::Level::Info,
        LogLevel::Warn => log::Level::Warn,
    };
    let path = request
        .path
        .split(|&b| b == b'?')
        .next()
        .unwrap_or_default();
    log::log!(
        level,
        "cognito-edge-auth: denied {} reason={} provider={} principal={} {} {}",
        denied.response.status,
        denied.reason,
        denied.provider.as_deref().unwrap_or("-"),
        denied
            .principal
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| printable(p.as_bytes())),
        printable(request.method),
        printable(path),
    );
}

/// At most 256 bytes, with anything but printable ASCII shown as `?`.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes.get(..256).unwrap_or(bytes));
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn forward(allowed: &Allowed) {
    debug!("cognito-edge-auth: allowed ({})", allowed.reason);
    for name in &allowed.remove {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
    }
    for (name, value) in allowed.set.iter() {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
    }
}

fn answer(denied: &Denied) {
    let r = &denied.response;
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let _ = hostcalls::send_http_response(r.status, headers, Some(r.body.as_bytes()));
}

/// Whether a denied request should rather wait: for a provider's first keys (up to
/// `startup_wait_ms`), or for a refetch after an unknown `kid` (rate-limited).
fn wait_for_keys(shared: &Shared, denied: &Denied, now_ms: u64) -> Option<Waiter> {
    if shared.waiters.borrow().len() >= MAX_WAITERS {
        return None;
    }
    let attempts = |p: usize| shared.seen.borrow().get(p).map_or(0, |s| s.attempts);
    match denied.error? {
        VerifyError::NoKeys { provider } if shared.config.startup_wait_ms > 0 => Some(Waiter {
            context_id: 0,
            provider,
            attempts: attempts(provider),
            first_keys: true,
            deadline_ms: now_ms.saturating_add(shared.config.startup_wait_ms),
            online: None,
        }),
        VerifyError::UnknownKid { provider } => {
            let store = shared.stores.get(provider)?.as_ref()?;
            let KeySource::Remote(jwks) = &shared.config.providers.get(provider)?.keys else {
                return None;
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
            (scheduled.is_some() || pending).then(|| Waiter {
                context_id: 0,
                provider,
                attempts: attempts(provider),
                first_keys: false,
                deadline_ms: now_ms
                    .saturating_add(jwks.timeout_ms)
                    .saturating_add(REFETCH_GRACE_MS),
                online: None,
            })
        }
        _ => None,
    }
}
