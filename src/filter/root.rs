//! RootContext: configuration, the tick, and JWKS fetches for this worker.

use super::http::Http;
use super::millis;
use crate::config::{Config, Provider};
use crate::jwks::KeySet;
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF_MS: u64 = 60_000;

/// What the root context shares with every HTTP context of this worker.
pub struct Shared {
    pub config: Config,
    /// `keys[i]` is provider i's current key set.
    pub keys: RefCell<Vec<Option<KeySet>>>,
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    fetches: Vec<FetchState>,
    /// Outstanding `dispatch_http_call` tokens → provider index.
    pending: HashMap<u32, usize>,
}

#[derive(Default, Clone)]
struct FetchState {
    next_at_ms: u64,
    in_flight: bool,
    failures: u32,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(index) = self.pending.remove(&token) else {
            return;
        };
        let result = self.read_jwks_response(body_size);
        self.finish_fetch(index, result);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Config::parse(&bytes) {
            Ok(config) => {
                info!(
                    "cognito-edge-auth: configured {} provider(s)",
                    config.providers.len()
                );
                self.fetches = vec![FetchState::default(); config.providers.len()];
                self.shared = Some(Rc::new(Shared {
                    keys: RefCell::new(vec![None; config.providers.len()]),
                    config,
                }));
                self.set_tick_period(TICK);
                true
            }
            Err(e) => {
                error!("cognito-edge-auth: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let now = millis(self.get_current_time());
        for index in 0..self.fetches.len() {
            let due = self
                .fetches
                .get(index)
                .is_some_and(|f| !f.in_flight && now >= f.next_at_ms);
            if due {
                self.start_fetch(index, now);
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Http::new(shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Root {
    fn provider(&self, index: usize) -> Option<&Provider> {
        self.shared.as_ref()?.config.providers.get(index)
    }

    fn start_fetch(&mut self, index: usize, now: u64) {
        let Some(p) = self.provider(index) else {
            return;
        };
        let jwks = &p.jwks;
        let headers = vec![
            (":method", "GET"),
            (":path", jwks.path.as_str()),
            (":authority", jwks.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(jwks.timeout_ms);
        let dispatched = self.dispatch_http_call(&jwks.cluster, headers, None, vec![], timeout);
        match dispatched {
            Ok(token) => {
                self.pending.insert(token, index);
                if let Some(f) = self.fetches.get_mut(index) {
                    f.in_flight = true;
                }
            }
            Err(status) => {
                let reason = format!("dispatch to cluster {} failed: {status:?}", jwks.cluster);
                self.fail_fetch(index, now, &reason);
            }
        }
    }

    fn read_jwks_response(&self, body_size: usize) -> Result<crate::jwks::Parsed, String> {
        let status = self
            .get_http_call_response_header_bytes(":status")
            .map(|s| String::from_utf8_lossy(&s).into_owned());
        match status.as_deref() {
            None => return Err("no response (timeout or connection failure)".into()),
            Some("200") => {}
            Some(other) => return Err(format!("HTTP status {other}")),
        }
        if body_size > crate::jwks::MAX_JWKS_BYTES {
            return Err(format!(
                "body of {body_size} bytes is over the {}-byte bound",
                crate::jwks::MAX_JWKS_BYTES
            ));
        }
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        KeySet::parse(&body).map_err(|e| e.to_string())
    }

    fn finish_fetch(&mut self, index: usize, result: Result<crate::jwks::Parsed, String>) {
        let now = millis(self.get_current_time());
        if let Some(f) = self.fetches.get_mut(index) {
            f.in_flight = false;
        }
        let parsed = match result {
            Ok(parsed) => parsed,
            Err(reason) => return self.fail_fetch(index, now, &reason),
        };
        let (Some(shared), Some(provider)) = (self.shared.clone(), self.provider(index)) else {
            return;
        };
        let kids: Vec<&str> = parsed.keys.kids().collect();
        info!(
            "cognito-edge-auth: provider {}: loaded {} key(s) [{}]",
            provider.name,
            kids.len(),
            kids.join(", ")
        );
        for why in &parsed.skipped {
            warn!(
                "cognito-edge-auth: provider {}: skipped {why}",
                provider.name
            );
        }
        let refresh_ms = provider.jwks.refresh_interval_seconds.saturating_mul(1000);
        if let Some(slot) = shared.keys.borrow_mut().get_mut(index) {
            *slot = Some(parsed.keys);
        }
        if let Some(f) = self.fetches.get_mut(index) {
            f.failures = 0;
            f.next_at_ms = now.saturating_add(refresh_ms);
        }
    }

    /// Keeps the last good keys and schedules a retry with exponential backoff.
    fn fail_fetch(&mut self, index: usize, now: u64, reason: &str) {
        let Some(provider) = self.provider(index) else {
            return;
        };
        let name = provider.name.clone();
        let cap = provider
            .jwks
            .refresh_interval_seconds
            .saturating_mul(1000)
            .min(MAX_BACKOFF_MS);
        let Some(f) = self.fetches.get_mut(index) else {
            return;
        };
        f.failures = f.failures.saturating_add(1);
        let backoff = 500u64.saturating_mul(1 << f.failures.min(16)).min(cap);
        f.next_at_ms = now.saturating_add(backoff);
        warn!("cognito-edge-auth: provider {name}: JWKS fetch failed: {reason}; keeping the last good keys, retry in {backoff} ms");
    }
}
