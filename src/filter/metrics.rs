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
    cache_hits: Option<u32>,
    cache_misses: Option<u32>,
    providers: Vec<ProviderMetrics>,
    /// Counters by name: the online check's (`online.<provider>.<kind>`, defined up front) and
    /// the other counts of the runtime.
    named: HashMap<String, u32>,
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
                ..revocation_metrics(p)
            })
            .collect();
        for p in config.providers.iter().filter(|p| p.online_check.is_some()) {
            for kind in crate::runtime::metrics::ONLINE_KINDS {
                let name = crate::runtime::metrics::online(&p.name, kind);
                if let Some(id) = counter(&name) {
                    m.named.insert(name, id);
                }
            }
        }
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

    /// A counter by name (the runtime's counts), defined when first seen.
    pub fn count_named(&mut self, name: &str, by: u64) {
        let id = match self.named.get(name) {
            Some(&id) => Some(id),
            None => counter(name).inspect(|&id| {
                self.named.insert(name.to_string(), id);
            }),
        };
        self.count(id, by);
    }

    pub fn keys_loaded(&self, provider: usize, count: usize) {
        if let Some(id) = self.providers.get(provider).and_then(|p| p.keys) {
            let _ = hostcalls::record_metric(id, count as u64);
        }
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
