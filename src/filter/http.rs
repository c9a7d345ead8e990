//! HttpContext: read the request, ask the core for a decision, act on it.
//!
//! `process` works on whichever request is the effective context, so the root context can
//! run it again for a request it resumes once keys have arrived.

use super::millis;
use super::root::{Shared, Waiter};
use crate::config::{KeySource, LogLevel};
use crate::decision::{decide_with, Allowed, Decision, Denied, Request};
use crate::refresh::Refetch;
use crate::response::Response;
use crate::session::{self, Failure, Random};
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
    /// The callback's code exchange in flight: its call token and what it remembers.
    exchange: Option<(u32, session::Pending)>,
}

impl Http {
    pub fn new(shared: Rc<Shared>, context_id: u32) -> Self {
        Http {
            shared,
            context_id,
            exchange: None,
        }
    }

    /// Makes the callback's token request; the answer arrives in `on_http_call_response`.
    fn exchange(&mut self, call: &session::Call, pending: session::Pending) -> Action {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let timeout = std::time::Duration::from_millis(call.timeout_ms);
        match self.dispatch_http_call(&call.cluster, headers, Some(&call.body), vec![], timeout) {
            Ok(token) => self.exchange = Some((token, pending)),
            Err(status) => {
                log::warn!(
                    "cognito-edge-auth: login failed reason={} (cannot call cluster {}: {status:?})",
                    Failure::Exchange.reason(),
                    call.cluster
                );
                login_failed(&self.shared, Failure::Exchange);
            }
        }
        Action::Pause
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some((expected, pending)) = self.exchange.take() else {
            return;
        };
        if token != expected {
            return;
        }
        let shared = Rc::clone(&self.shared);
        let Some(login) = shared.config.login.as_ref() else {
            return;
        };
        let status = self
            .get_http_call_response_header(":status")
            .and_then(|s| s.parse::<u32>().ok());
        let body = if body_size <= MAX_TOKEN_RESPONSE_BYTES {
            self.get_http_call_response_body(0, body_size)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let now = millis(self.get_current_time()) / 1000;
        let result = match random() {
            None => Err(Failure::Exchange),
            Some(r) => {
                let keys = shared.keys.borrow();
                session::finish(
                    &shared.config,
                    login,
                    &pending,
                    status,
                    &body,
                    &keys,
                    shared.verifier.as_ref(),
                    now,
                    &r,
                )
            }
        };
        match result {
            Ok(response) => {
                shared.metrics.borrow_mut().event("login.completed");
                debug!("cognito-edge-auth: login completed");
                send(&response);
            }
            Err(f) => {
                log::warn!(
                    "cognito-edge-auth: login failed reason={}{}",
                    f.reason(),
                    match (f, status) {
                        (Failure::IdToken(e), _) => format!(" ({})", e.description()),
                        (Failure::Exchange, Some(s)) => format!(" (token endpoint answered {s})"),
                        (Failure::Exchange, None) => " (no answer from the token endpoint)".into(),
                        _ => String::new(),
                    }
                );
                login_failed(&shared, f);
            }
        }
    }
}

/// A token endpoint answer larger than this is refused (Cognito's are a few KB).
const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// Counts a failed sign-in and sends its error page.
pub fn login_failed(shared: &Shared, f: Failure) {
    let mut metrics = shared.metrics.borrow_mut();
    metrics.event("login.failed");
    metrics.denied(f.reason());
    drop(metrics);
    send(&f.page());
}

/// The random bytes of one sign-in step, from the host (WASI `random_get`).
fn random() -> Option<Random> {
    let mut r = Random {
        state: [0; 16],
        verifier: [0; 32],
        nonce: [0; 16],
        seal: [0; session::crypto::NONCE_BYTES],
    };
    getrandom::getrandom(&mut r.state).ok()?;
    getrandom::getrandom(&mut r.verifier).ok()?;
    getrandom::getrandom(&mut r.nonce).ok()?;
    getrandom::getrandom(&mut r.seal).ok()?;
    Some(r)
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
            Outcome::Call(call) => {
                let (call, pending) = *call;
                self.exchange(&call, pending)
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
    /// Make the callback's code exchange, then answer (only from `on_http_request_headers`).
    Call(Box<(session::Call, session::Pending)>),
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

    let decision = {
        let keys = shared.keys.borrow();
        let mut cache = shared.cache.borrow_mut();
        let verifier = shared.verifier.as_ref();
        let d = decide_with(
            &request,
            &shared.config,
            &keys,
            verifier,
            &mut cache,
            now_ms / 1000,
            &random,
        );
        shared.metrics.borrow_mut().cache(cache.take_counts());
        d
    };
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
        Decision::Redirect(redirected) => {
            shared.metrics.borrow_mut().event(match redirected.reason {
                "login" => "login.started",
                _ => "logout",
            });
            debug!("cognito-edge-auth: redirected ({})", redirected.reason);
            send(&redirected.response);
            Outcome::Answered
        }
        Decision::Call(call) => {
            shared.metrics.borrow_mut().event("login.callbacks");
            Outcome::Call(call)
        }
    }
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
    for (name, value) in &allowed.set {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
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
            })
        }
        _ => None,
    }
}
