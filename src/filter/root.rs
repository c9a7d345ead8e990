//! RootContext: configuration, the tick, JWKS fetches, and requests waiting for keys.
//!
//! Each worker's root context syncs its key sets from shared data on every tick; whichever
//! worker wins the lease fetches. Requests that wait for keys are resumed from here.

use super::host_crypto;
use super::metrics::Metrics;

use super::http;
use crate::cache::TokenCache;
use crate::signature::PureRust;

use super::millis;
use super::online;
use super::revocation;
use super::shared::{OnlineState, RevocationLists, Seen, Shared, Waiter};
use super::shared_data;
use crate::config::{Config, KeySource, Provider, RemoteJwks};
use crate::jwks::{KeySet, Parsed, MAX_JWKS_BYTES};
use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    /// This VM's id for fetch leases.
    worker: u64,
    /// Outstanding `dispatch_http_call` tokens → what they fetch.
    pending: HashMap<u32, Fetch>,
}

/// What an outstanding call fetches, for which provider.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Jwks(usize),
    RevocationList(usize),
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        match self.pending.remove(&token) {
            Some(Fetch::Jwks(index)) => {
                let result = self.read_jwks_response(body_size);
                self.finish_fetch(index, result);
                self.wake_waiters();
            }
            Some(Fetch::RevocationList(index)) => {
                if let Some(shared) = &self.shared {
                    let now = millis(self.get_current_time());
                    revocation::finished(shared, self.worker, index, body_size, now);
                }
            }
            None => {
                if let Some(shared) = self.shared.as_ref().filter(|s| online::is_call(s, token)) {
                    let now = millis(self.get_current_time());
                    if let Some(key) = online::finished(shared, token, body_size, now) {
                        http::resume_online(shared, &key, now);
                    }
                }
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        follow_host_log_level();

        let bytes = self.get_plugin_configuration().unwrap_or_default();
        // The login section's secrets: vm_config.environment_variables reach the VM as its
        // WASI environment.
        let config = match Config::parse_with_env(&bytes, &|name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(e) => {
                error!("cognito-edge-auth: {e}");
                return false;
            }
        };
        for warning in config.login.iter().flat_map(|l| &l.warnings) {
            warn!("cognito-edge-auth: {warning}");
        }
        let n = config.providers.len();
        let mut keys = vec![None; n];
        let mut stores = Vec::with_capacity(n);
        for (slot, provider) in keys.iter_mut().zip(&config.providers) {
            match &provider.keys {
                KeySource::Local(doc) => {
                    *slot = KeySet::parse(doc.as_bytes()).ok().map(|p| p.keys);
                    stores.push(None);
                }
                KeySource::Remote(jwks) => stores.push(Some(shared_data::Keys::for_jwks(jwks))),
            }
        }
        info!("cognito-edge-auth: configured {n} provider(s)");
        let (config_native, cache_entries, cache_bytes) = (
            config.native_verification,
            config.token_cache_entries,
            config.token_cache_bytes,
        );
        self.worker = random_id();
        let metrics = Metrics::define(&config);
        let lists = RevocationLists::new(&config);
        self.shared = Some(Rc::new(Shared {
            config,
            keys: RefCell::new(keys),
            seen: RefCell::new(vec![Seen::default(); n]),
            waiters: RefCell::new(Vec::new()),
            stores,
            verifier: if config_native {
                host_crypto::detect()
            } else {
                info!("cognito-edge-auth: native_verification is off: verifying in pure Rust");
                Box::new(PureRust)
            },
            cache: RefCell::new(TokenCache::with_limits(cache_entries, cache_bytes)),
            refreshes: RefCell::new(HashMap::new()),
            renewals: Default::default(),
            metrics: RefCell::new(metrics),
            revocation: lists,
            online: OnlineState::default(),
            token_calls: Default::default(),
        }));
        if let Some(shared) = &self.shared {
            for (index, keys) in shared.keys.borrow().iter().enumerate() {
                if let Some(keys) = keys {
                    shared.metrics.borrow().keys_loaded(index, keys.len());
                }
            }
        }
        self.set_tick_period(TICK);
        self.on_tick();
        true
    }

    fn on_tick(&mut self) {
        follow_host_log_level();
        if let Some(shared) = &self.shared {
            shared.metrics.borrow_mut().flush();
        }

        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = millis(self.get_current_time());
        for index in 0..shared.config.providers.len() {
            let Some((provider, jwks, store)) = remote(&shared, index) else {
                continue;
            };

            sync(&shared, index, provider, store);
            let in_flight = self.pending.values().any(|&f| f == Fetch::Jwks(index));
            if !in_flight
                && store
                    .update(|s| s.take_lease(self.worker, now, jwks.timeout_ms))
                    .is_some()
            {
                self.start_fetch(index, jwks, now);
            }
        }
        let pending = &self.pending;
        let started = revocation::tick(&shared, self.worker, now, |index| {
            pending.values().any(|&f| f == Fetch::RevocationList(index))
        });
        for (token, index) in started {
            self.pending.insert(token, Fetch::RevocationList(index));
        }
        self.wake_waiters();
        shared.renewals.sweep(now);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(http::Http::new(shared, context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Installs a newer key set from shared data, and notes finished fetches.
fn sync(shared: &Shared, index: usize, provider: &Provider, store: &shared_data::Keys) {
    let Some(schedule) = store.schedule() else {
        return;
    };
    let seen = shared.seen.borrow().get(index).copied().unwrap_or_default();
    if schedule.version != seen.version {
        if let Some((version, body)) = store.body().filter(|(v, _)| *v != seen.version) {
            match KeySet::parse(&body) {
                Ok(parsed) => {
                    debug!(
                        "cognito-edge-auth: provider {}: keys version {version} picked up",
                        provider.name
                    );
                    install(shared, index, parsed.keys);
                }
                Err(e) => warn!(
                    "cognito-edge-auth: provider {}: shared JWKS unreadable: {e}",
                    provider.name
                ),
            }
            if let Some(s) = shared.seen.borrow_mut().get_mut(index) {
                s.version = version;
            }
        }
    }
    if let Some(s) = shared.seen.borrow_mut().get_mut(index) {
        s.attempts = schedule.attempts;
    }
}

/// Formats and sends only the log lines Envoy would print: a debug line per request costs
/// a hostcall otherwise. Followed on every tick, so `/logging?wasm=debug` takes effect.
fn follow_host_log_level() {
    if let Ok(level) = hostcalls::get_log_level() {
        proxy_wasm::set_log_level(level);
    }
}

/// Provider `index` with its remote JWKS and shared-data record, if it fetches one.
fn remote(shared: &Shared, index: usize) -> Option<(&Provider, &RemoteJwks, &shared_data::Keys)> {
    let provider = shared.config.providers.get(index)?;
    let KeySource::Remote(jwks) = &provider.keys else {
        return None;
    };
    let store = shared.stores.get(index)?.as_ref()?;
    Some((provider, jwks, store))
}

fn install(shared: &Shared, index: usize, keys: KeySet) {
    shared.metrics.borrow().keys_loaded(index, keys.len());
    if let Some(slot) = shared.keys.borrow_mut().get_mut(index) {
        *slot = Some(keys);
    }
}

impl Root {
    fn start_fetch(&mut self, index: usize, jwks: &RemoteJwks, now: u64) {
        let headers = vec![
            (":method", "GET"),
            (":path", jwks.path.as_str()),
            (":authority", jwks.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(jwks.timeout_ms);
        match self.dispatch_http_call(&jwks.cluster, headers, None, vec![], timeout) {
            Ok(token) => {
                self.pending.insert(token, Fetch::Jwks(index));
            }
            Err(status) => {
                let reason = format!("cannot call cluster {}: {status:?}", jwks.cluster);
                self.record_failure(index, now, &reason);
            }
        }
    }

    fn read_jwks_response(&self, body_size: usize) -> Result<(Vec<u8>, Parsed), String> {
        let status = self
            .get_http_call_response_header_bytes(":status")
            .map(|s| String::from_utf8_lossy(&s).into_owned());
        match status.as_deref() {
            None => return Err("no response (timeout or connection failure)".into()),
            Some("200") => {}
            Some(other) => return Err(format!("HTTP status {other}")),
        }
        if body_size > MAX_JWKS_BYTES {
            return Err(format!(
                "body of {body_size} bytes is over the {MAX_JWKS_BYTES}-byte bound"
            ));
        }
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        let parsed = KeySet::parse(&body).map_err(|e| e.to_string())?;
        Ok((body, parsed))
    }

    fn finish_fetch(&mut self, index: usize, result: Result<(Vec<u8>, Parsed), String>) {
        let now = millis(self.get_current_time());
        let (body, parsed) = match result {
            Ok(ok) => ok,
            Err(reason) => return self.record_failure(index, now, &reason),
        };
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Some((provider, jwks, store)) = remote(&shared, index) else {
            return;
        };
        let version = store.schedule().map_or(1, |s| s.version.saturating_add(1));
        store.set_body(version, &body);
        let refresh_ms = jwks.refresh_interval_seconds.saturating_mul(1000);
        let written = store.update(|s| Some(s.succeeded(self.worker, now, refresh_ms)));
        shared.metrics.borrow().fetched(index, true);
        let kids: Vec<&str> = parsed.keys.kids().collect();
        info!(
            "cognito-edge-auth: provider {}: JWKS fetched, {} key(s) [{}], version {version}",
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
        install(&shared, index, parsed.keys);
        let mut seen = shared.seen.borrow_mut();
        if let Some(s) = seen.get_mut(index) {
            s.version = version;
            s.attempts = written.map_or(s.attempts.saturating_add(1), |w| w.attempts);
        }
    }

    /// Keeps the last good keys and schedules a retry with backoff.
    fn record_failure(&mut self, index: usize, now: u64, reason: &str) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Some((provider, jwks, store)) = remote(&shared, index) else {
            return;
        };
        let refresh_ms = jwks.refresh_interval_seconds.saturating_mul(1000);
        let written = store.update(|s| Some(s.failed(self.worker, now, refresh_ms)));
        shared.metrics.borrow().fetched(index, false);
        let retry = written.map_or(0, |w| w.next_fetch_ms.saturating_sub(now));
        let kept = if shared.keys.borrow().get(index).is_some_and(Option::is_some) {
            "keeping the last good keys"
        } else {
            "no keys yet"
        };
        warn!("cognito-edge-auth: provider {}: JWKS fetch failed: {reason}; {kept}; retry in {retry} ms", provider.name);
        let mut seen = shared.seen.borrow_mut();
        if let (Some(s), Some(w)) = (seen.get_mut(index), written) {
            s.attempts = w.attempts;
        }
    }

    /// Resumes paused requests whose keys arrived, whose refetch finished, or whose wait ran out.
    fn wake_waiters(&self) {
        let Some(shared) = self.shared.as_ref() else {
            return;
        };
        let now = millis(self.get_current_time());
        let ready: Vec<Waiter> = {
            let keys = shared.keys.borrow();
            let seen = shared.seen.borrow();
            let mut waiters = shared.waiters.borrow_mut();
            let (ready, waiting) = waiters.drain(..).partition(|w: &Waiter| {
                if let Some(key) = &w.online {
                    return now >= w.deadline_ms || online::answered(shared, w.provider, key, now);
                }
                if let Some(key) = &w.renewal {
                    return now >= w.deadline_ms || super::sessions::renewal_settled(key, now);
                }
                let has_keys = keys.get(w.provider).is_some_and(Option::is_some);
                let fetched = seen
                    .get(w.provider)
                    .is_some_and(|s| s.attempts > w.attempts);
                now >= w.deadline_ms || fetched || (w.first_keys && has_keys)
            });
            *waiters = waiting;
            ready
        };
        // A fetch finished but brought no keys yet: wait on until the first deadline.
        http::wake(shared, ready, now, true);
    }
}

/// A random id for this VM, from the host's random source (WASI `random_get`).
fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish().max(1)
}
