//! The filter's counters and gauges, defined with `define_metric`.
//!
//! Envoy shows them in `/stats` and `/stats/prometheus` under `wasmcustom.cognito_edge_auth.`;
//! a name defined by every worker VM is one stat for the whole process. Per-request counts are
//! added up in the VM and flushed on each tick (every 200 ms): a hostcall per counter per
//! request would cost more than the decision.

use crate::config::Config;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::collections::HashMap;

const PREFIX: &str = "cognito_edge_auth";

/// The denial reasons defined up front, so dashboards see them at zero (one list for both builds).
use crate::runtime::metrics::DENY_REASONS;

#[derive(Default)]
pub struct Metrics {
    allowed: Option<u32>,
    denied: HashMap<&'static str, u32>,
    /// `report.denied.<reason>` by reason.
    reported: HashMap<&'static str, u32>,
    /// Sign-in events (`login.started`, `login.completed`, `logout`), defined when first seen.
    events: HashMap<&'static str, u32>,
    cache_hits: Option<u32>,
    cache_misses: Option<u32>,
    providers: Vec<ProviderMetrics>,
    /// Counts not yet sent to Envoy, by metric id.
    pending: HashMap<u32, u64>,
}

#[derive(Default, Clone, Copy)]
struct ProviderMetrics {
    fetch_success: Option<u32>,
    fetch_failure: Option<u32>,
    keys: Option<u32>,
    /// Defined only for a provider with a fetched revocation list.
    list_success: Option<u32>,
    list_failure: Option<u32>,
    list_entries: Option<u32>,
    /// Defined only for a provider with an online check: answers by kind.
    online_active: Option<u32>,
    online_revoked: Option<u32>,
    online_unreachable: Option<u32>,
    /// Cognito said the token lacks the scope `GetUser` needs.
    online_not_checkable: Option<u32>,
    /// Cognito throttled (`TooManyRequestsException`).
    online_throttled: Option<u32>,
    /// Checks not made while the provider backs off after throttling.
    online_backed_off: Option<u32>,
    /// Access tokens without the admin scope, passed or refused without a check.
    online_unchecked: Option<u32>,
}

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        let mut m = Metrics {
            allowed: counter("allowed"),
            cache_hits: counter("cache.hits"),
            cache_misses: counter("cache.misses"),
            ..Metrics::default()
        };
        for reason in DENY_REASONS {
            if let Some(id) = counter(&format!("denied.{reason}")) {
                m.denied.insert(reason, id);
            }
        }
        if config.reports_anywhere() {
            for reason in DENY_REASONS {
                if let Some(id) = counter(&crate::runtime::metrics::reported(reason)) {
                    m.reported.insert(reason, id);
                }
            }
        }
        m.providers = config
            .providers
            .iter()
            .map(|p| ProviderMetrics {
                fetch_success: counter(&format!("jwks.{}.fetch_success", p.name)),
                fetch_failure: counter(&format!("jwks.{}.fetch_failure", p.name)),
                keys: define(MetricType::Gauge, &format!("jwks.{}.keys", p.name)),
                ..online_metrics(p, revocation_metrics(p))
            })
            .collect();
        m
    }

    pub fn allowed(&mut self) {
        self.count(self.allowed, 1);
    }

    pub fn denied(&mut self, reason: &'static str) {
        let id = match self.denied.get(reason) {
            Some(&id) => Some(id),
            None => counter(&format!("denied.{reason}")).inspect(|&id| {
                self.denied.insert(reason, id);
            }),
        };
        self.count(id, 1);
    }

    /// A request forwarded in report-only mode that would have been refused for `reason`.
    pub fn reported(&mut self, reason: &'static str) {
        let id = match self.reported.get(reason) {
            Some(&id) => Some(id),
            None => counter(&crate::runtime::metrics::reported(reason)).inspect(|&id| {
                self.reported.insert(reason, id);
            }),
        };
        self.count(id, 1);
    }

    pub fn event(&mut self, name: &'static str) {
        let id = match self.events.get(name) {
            Some(&id) => Some(id),
            None => counter(name).inspect(|&id| {
                self.events.insert(name, id);
            }),
        };
        self.count(id, 1);
    }

    pub fn cache(&mut self, (hits, misses): (u64, u64)) {
        self.count(self.cache_hits, hits);
        self.count(self.cache_misses, misses);
    }

    /// Sends the counts added up since the last flush.
    pub fn flush(&mut self) {
        for (id, by) in self.pending.drain() {
            add(Some(id), by);
        }
    }

    fn count(&mut self, id: Option<u32>, by: u64) {
        if let (Some(id), true) = (id, by > 0) {
            let n = self.pending.entry(id).or_insert(0);
            *n = n.saturating_add(by);
        }
    }

    pub fn fetched(&self, provider: usize, ok: bool) {
        if let Some(p) = self.providers.get(provider) {
            add(if ok { p.fetch_success } else { p.fetch_failure }, 1);
        }
    }

    pub fn list_fetched(&self, provider: usize, ok: bool) {
        if let Some(p) = self.providers.get(provider) {
            add(if ok { p.list_success } else { p.list_failure }, 1);
        }
    }

    pub fn list_loaded(&self, provider: usize, entries: usize) {
        if let Some(id) = self.providers.get(provider).and_then(|p| p.list_entries) {
            let _ = hostcalls::record_metric(id, entries as u64);
        }
    }

    /// One answer of an online check.
    pub fn online_answer(&self, provider: usize, answer: crate::online::Answer) {
        use crate::online::Answer;
        if let Some(p) = self.providers.get(provider) {
            add(
                match answer {
                    Answer::Active => p.online_active,
                    Answer::Revoked => p.online_revoked,
                    Answer::NotCheckable => p.online_not_checkable,
                    Answer::Throttled => p.online_throttled,
                    Answer::Unreachable => p.online_unreachable,
                    Answer::Pending => None,
                },
                1,
            );
        }
    }

    /// A check not made: the provider backs off after throttling.
    pub fn online_backed_off(&self, provider: usize) {
        add(
            self.providers
                .get(provider)
                .and_then(|p| p.online_backed_off),
            1,
        );
    }

    /// An access token that `GetUser` cannot judge, not checked.
    pub fn online_unchecked(&self, provider: usize) {
        add(
            self.providers
                .get(provider)
                .and_then(|p| p.online_unchecked),
            1,
        );
    }

    pub fn keys_loaded(&self, provider: usize, count: usize) {
        if let Some(id) = self.providers.get(provider).and_then(|p| p.keys) {
            let _ = hostcalls::record_metric(id, count as u64);
        }
    }
}

fn online_metrics(p: &crate::config::Provider, base: ProviderMetrics) -> ProviderMetrics {
    if p.online_check.is_none() {
        return base;
    }
    let name = |what: &str| format!("online.{}.{what}", p.name);
    ProviderMetrics {
        online_active: counter(&name("active")),
        online_revoked: counter(&name("revoked")),
        online_unreachable: counter(&name("unreachable")),
        online_not_checkable: counter(&name("not_checkable")),
        online_throttled: counter(&name("throttled")),
        online_backed_off: counter(&name("backed_off")),
        online_unchecked: counter(&name("unchecked")),
        ..base
    }
}

fn revocation_metrics(p: &crate::config::Provider) -> ProviderMetrics {
    if p.revocation.remote.is_none() {
        return ProviderMetrics::default();
    }
    let name = |what: &str| format!("revocation.{}.{what}", p.name);
    ProviderMetrics {
        list_success: counter(&name("fetch_success")),
        list_failure: counter(&name("fetch_failure")),
        list_entries: define(MetricType::Gauge, &name("entries")),
        ..ProviderMetrics::default()
    }
}

fn counter(name: &str) -> Option<u32> {
    define(MetricType::Counter, name)
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, &format!("{PREFIX}.{name}")).ok()
}

fn add(id: Option<u32>, by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        let _ = hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}
