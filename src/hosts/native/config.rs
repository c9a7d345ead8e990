//! The module configuration: one per filter configuration, shared by Envoy's main thread and
//! every worker (it is `Sync`).
//!
//! What workers read on every request — the configuration and each provider's key set — is
//! read without a lock: the key sets sit behind an [`ArcSwap`] that the main thread replaces
//! whole when a fetch brings new keys. What only the main thread changes (the fetch schedule)
//! and what a request touches only when it must wait (the waiters) sit behind mutexes.
//!
//! Time: Envoy's HTTP-filter ABI has no timer, so a small thread ([`Ticker`]) posts a tick to
//! the main thread through the config scheduler every 200 ms; the tick starts due fetches and
//! wakes requests whose wait ran out.

use super::abi::{ConfigScheduler, EnvoyConfig, FilterScheduler};
use super::crypto::AwsLc;
use super::metrics::Metrics;
use super::online::OnlineState;
use super::sessions::{Ended, Renewals};
use super::{lock, now_ms};
use crate::config::{Config, KeySource};
use crate::jwks::KeySet;
use crate::online::TokenKey;
use crate::revocation::RevocationList;
use crate::runtime::fetch::Fetcher;
use crate::runtime::wait::{Wait, MAX_WAITERS};
use crate::runtime::{Answer, Call, Host};
use crate::signature::{PureRust, SignatureVerifier};
use arc_swap::ArcSwap;
use log::{error, info, warn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(200);
/// The config scheduler's events.
const EVENT_TICK: u64 = 0;
/// A request's scheduler event: its wait is over.
pub const EVENT_WAKE: u64 = 1;

pub struct Native {
    pub config: Config,
    /// Tells this configuration's per-worker caches apart from another's.
    pub id: u64,
    /// `keys[i]` is provider i's current key set, replaced whole by the main thread.
    pub keys: ArcSwap<Vec<Option<KeySet>>>,
    /// `lists[i]` is provider i's fetched revocation list, replaced as the keys are.
    pub lists: ArcSwap<Vec<Option<RevocationList>>>,
    pub verifier: Box<dyn SignatureVerifier + Send + Sync>,
    pub metrics: Metrics,
    /// The online check's answers, back-offs and calls under way, for every worker.
    pub online: OnlineState,
    /// The browser sessions ended at logout, for every worker.
    pub ended: Ended,
    /// The session refreshes under way or just done, for every worker.
    pub renewals: Renewals,
    envoy: EnvoyConfig,
    fetcher: Mutex<Fetcher>,
    waiters: Mutex<Waiters>,
    scheduler: Option<Arc<ConfigScheduler>>,
    ticker: Mutex<Option<Ticker>>,
}

/// Paused requests, each with the scheduler that resumes it on its worker.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    waiting: Vec<(u64, Waiting, FilterScheduler)>,
}

/// What a paused request waits for.
pub enum Waiting {
    Keys(Wait),
    /// The online check's answer about `key` (this worker's call or another's), until
    /// `deadline_ms` at the latest.
    Online {
        provider: usize,
        key: TokenKey,
        deadline_ms: u64,
    },
    /// Another request's refresh of its session (keyed by the refresh token's hash), until
    /// `deadline_ms` at the latest.
    Renewal {
        key: TokenKey,
        deadline_ms: u64,
    },
}

impl Native {
    /// Parses and checks the configuration; `None` (after logging why, naming the field)
    /// refuses it, and Envoy refuses to start.
    pub fn new(envoy: EnvoyConfig, name: &[u8], json: &[u8]) -> Option<Arc<Native>> {
        let config = match Config::parse_with_env(json, &|name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(e) => {
                error!("cognito-edge-auth: {e}");
                return None;
            }
        };
        for warning in config.login.iter().flat_map(|l| &l.warnings) {
            warn!("cognito-edge-auth: {warning}");
        }
        let n = config.providers.len();
        let mut keys = vec![None; n];
        for (slot, provider) in keys.iter_mut().zip(&config.providers) {
            if let KeySource::Local(doc) = &provider.keys {
                *slot = KeySet::parse(doc.as_bytes()).ok().map(|p| p.keys);
            }
        }
        let metrics = Metrics::define(envoy, &config);
        for (index, set) in keys.iter().enumerate() {
            if let (Some(set), Some(p)) = (set, config.providers.get(index)) {
                metrics.gauge(
                    &crate::runtime::metrics::jwks_keys(&p.name),
                    set.len() as u64,
                );
            }
        }
        let verifier: Box<dyn SignatureVerifier + Send + Sync> = if config.native_verification {
            info!("cognito-edge-auth: signatures are verified natively (ring)");
            Box::new(AwsLc)
        } else {
            info!("cognito-edge-auth: native_verification is off: verifying in pure Rust");
            Box::new(PureRust)
        };
        info!(
            "cognito-edge-auth: configured {n} provider(s) (native module, filter {:?})",
            String::from_utf8_lossy(name)
        );
        let scheduler = envoy.scheduler().map(Arc::new);
        let native = Arc::new(Native {
            fetcher: Mutex::new(Fetcher::new(&config)),
            config,
            id: next_id(),
            keys: ArcSwap::from_pointee(keys),
            lists: ArcSwap::from_pointee(vec![None; n]),
            verifier,
            metrics,
            online: OnlineState::default(),
            ended: Ended::default(),
            renewals: Renewals::default(),
            envoy,
            waiters: Mutex::new(Waiters::default()),
            ticker: Mutex::new(None),
            scheduler,
        });
        // The first fetches start now, on the main thread; the ticker keeps time after.
        native.on_scheduled(EVENT_TICK);
        if let Some(scheduler) = &native.scheduler {
            *lock(&native.ticker) = Ticker::start(Arc::clone(scheduler));
        }
        Some(native)
    }

    /// Stops the ticker (Envoy is destroying the configuration, on the main thread).
    pub fn shut_down(&self) {
        if let Some(ticker) = lock(&self.ticker).take() {
            ticker.stop();
        }
        lock(&self.waiters).waiting.clear();
    }

    /// A tick on the main thread: start due fetches, wake requests whose wait ran out.
    pub fn on_scheduled(&self, _event: u64) {
        let now = now_ms();
        lock(&self.fetcher).tick(&self.config, self, now);
        self.wake(now);
    }

    /// A config-level call's answer, on the main thread.
    pub fn on_answer(&self, id: u64, status: Option<u32>, body: &[u8]) {
        let now = now_ms();
        let answer = Answer::new(status, body);
        let keys = self.keys.load();
        let lists = self.lists.load();
        let mut fetcher = lock(&self.fetcher);
        let has = |i: usize| keys.get(i).is_some_and(Option::is_some);
        if let Some(fetched) = fetcher.answered(&self.config, self, id, answer, now, has) {
            if let Some(new) = fetched.keys {
                self.keys
                    .store(Arc::new(replaced(&keys, fetched.provider, new)));
            }
        } else {
            let has = |i: usize| lists.get(i).is_some_and(Option::is_some);
            let fetched = fetcher.answered_list(&self.config, self, id, answer, now, has);
            if let Some(new) = fetched.as_ref().and_then(|f| f.list.clone()) {
                let provider = fetched.map_or(0, |f| f.provider);
                self.lists.store(Arc::new(replaced(&lists, provider, new)));
            }
        }
        drop(fetcher);
        self.wake(now);
    }

    /// A provider's completed fetches.
    pub fn attempts(&self, provider: usize) -> u64 {
        lock(&self.fetcher).attempts(provider)
    }

    /// Brings provider `provider`'s fetch forward (a token named an unknown `kid`); whether
    /// one is due or under way. The main thread is told at once.
    pub fn refetch(&self, provider: usize) -> bool {
        let due = lock(&self.fetcher).refetch(provider, now_ms());
        if due {
            if let Some(s) = &self.scheduler {
                s.commit(EVENT_TICK);
            }
        }
        due
    }

    /// Parks a request until `wait` is over; its scheduler resumes it on its worker. The id
    /// to [`Native::forget`] it by, or `None` when too many wait already.
    pub fn park(&self, wait: Waiting, scheduler: FilterScheduler) -> Option<u64> {
        let mut w = lock(&self.waiters);
        if w.waiting.len() >= MAX_WAITERS {
            return None;
        }
        w.next_id = w.next_id.wrapping_add(1);
        let id = w.next_id;
        w.waiting.push((id, wait, scheduler));
        Some(id)
    }

    /// A parked request went away: drop its scheduler (under the lock, so the main thread
    /// never commits a deleted one).
    pub fn forget(&self, id: u64) {
        lock(&self.waiters).waiting.retain(|(i, _, _)| *i != id);
    }

    /// Wakes the paused requests that may go on: their keys came, a fetch finished, their
    /// online answer came, or their wait ran out. From any thread.
    pub fn wake(&self, now: u64) {
        let keys = self.keys.load();
        let fetcher = lock(&self.fetcher);
        let mut w = lock(&self.waiters);
        w.waiting.retain(|(_, waiting, scheduler)| {
            let ready = match waiting {
                Waiting::Keys(wait) => {
                    let has_keys = keys.get(wait.provider).is_some_and(Option::is_some);
                    wait.ready(has_keys, fetcher.attempts(wait.provider), now)
                }
                Waiting::Online {
                    provider,
                    key,
                    deadline_ms,
                } => {
                    now >= *deadline_ms
                        || crate::online::lookup(&self.online, *provider, key, now).is_some()
                }
                Waiting::Renewal { key, deadline_ms } => {
                    now >= *deadline_ms || self.renewals.settled(key, now)
                }
            };
            if ready {
                scheduler.commit(EVENT_WAKE);
                false
            } else {
                true
            }
        });
    }
}

impl Host for Native {
    fn call(&self, call: &Call<'_>) -> Result<u64, String> {
        self.envoy
            .call(call.cluster, &call.headers, call.body, call.timeout_ms)
            .map_err(call_error)
    }

    fn count(&self, name: &str, by: u64) {
        self.metrics.count(name, by);
    }

    fn gauge(&self, name: &str, value: u64) {
        self.metrics.gauge(name, value);
    }
}

/// Why Envoy refused to start a call (`envoy_dynamic_module_type_http_callout_init_result`).
pub fn call_error(code: u32) -> String {
    match code {
        1 => "missing required headers".to_string(),
        2 => "cluster not found".to_string(),
        3 => "duplicate call id".to_string(),
        4 => "cannot create the request (no healthy host?)".to_string(),
        other => format!("error {other}"),
    }
}

/// `current` with provider `index`'s entry replaced by `new`.
fn replaced<T: Clone>(current: &[Option<T>], index: usize, new: T) -> Vec<Option<T>> {
    let mut next = current.to_vec();
    if let Some(slot) = next.get_mut(index) {
        *slot = Some(new);
    }
    next
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Posts a tick to the main thread every [`TICK`] until stopped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Ticker {
    fn start(scheduler: Arc<ConfigScheduler>) -> Option<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cognito-tick".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(TICK);
                    if !flag.load(Ordering::Acquire) {
                        scheduler.commit(EVENT_TICK);
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Ticker { stop, thread }),
            Err(e) => {
                warn!("cognito-edge-auth: no tick thread ({e}): keys are not refreshed");
                None
            }
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}
