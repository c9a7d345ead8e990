//! The filter's counters and gauges as Envoy stats, named as in the .wasm build
//! ([`crate::runtime::metrics`]). Envoy freezes stat creation once a configuration is loaded,
//! so every name is defined up front, in `config_new`.

use super::abi::{EnvoyConfig, EnvoyFilter};
use crate::config::Config;
use crate::runtime::metrics::{self as names, PREFIX};
use std::collections::HashMap;

pub struct Metrics {
    envoy: EnvoyConfig,
    allowed: Option<usize>,
    cache_hits: Option<usize>,
    cache_misses: Option<usize>,
    panics: Option<usize>,
    /// `denied.<reason>` by reason.
    denied: HashMap<&'static str, usize>,
    /// `report.denied.<reason>` by reason, when report-only mode is on anywhere.
    reported: HashMap<&'static str, usize>,
    /// Every other counter and gauge by name (without the prefix).
    counters: HashMap<String, usize>,
    gauges: HashMap<String, usize>,
}

impl Metrics {
    pub fn define(envoy: EnvoyConfig, config: &Config) -> Metrics {
        let counter = |name: &str| envoy.define_counter(&format!("{PREFIX}.{name}"));
        let mut m = Metrics {
            envoy,
            allowed: counter(names::ALLOWED),
            cache_hits: counter(names::CACHE_HITS),
            cache_misses: counter(names::CACHE_MISSES),
            panics: counter(names::PANICS),
            denied: HashMap::new(),
            reported: HashMap::new(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
        };
        for reason in names::DENY_REASONS {
            if let Some(id) = counter(&names::denied(reason)) {
                m.denied.insert(reason, id);
            }
            if config.reports_anywhere() {
                if let Some(id) = counter(&names::reported(reason)) {
                    m.reported.insert(reason, id);
                }
            }
        }
        for p in &config.providers {
            for ok in [true, false] {
                let name = names::jwks_fetch(&p.name, ok);
                if let Some(id) = counter(&name) {
                    m.counters.insert(name, id);
                }
            }
            let mut gauges = vec![names::jwks_keys(&p.name)];
            if p.revocation.remote.is_some() {
                for ok in [true, false] {
                    let name = names::list_fetch(&p.name, ok);
                    if let Some(id) = counter(&name) {
                        m.counters.insert(name, id);
                    }
                }
                gauges.push(names::list_entries(&p.name));
            }
            if p.online_check.is_some() {
                for kind in names::ONLINE_KINDS {
                    let name = names::online(&p.name, kind);
                    if let Some(id) = counter(&name) {
                        m.counters.insert(name, id);
                    }
                }
            }
            for name in gauges {
                if let Some(id) = envoy.define_gauge(&format!("{PREFIX}.{name}")) {
                    m.gauges.insert(name, id);
                }
            }
        }
        if config.login.is_some() {
            for reason in names::LOGIN_DENY_REASONS {
                if let Some(id) = counter(&names::denied(reason)) {
                    m.denied.insert(reason, id);
                }
            }
            for name in names::LOGIN_EVENTS {
                if let Some(id) = counter(name) {
                    m.counters.insert(name.to_string(), id);
                }
            }
        }
        m
    }

    pub fn allowed(&self, filter: EnvoyFilter) {
        add(filter, self.allowed, 1);
    }

    /// A denial; a reason not defined up front is not counted (Envoy froze stat creation).
    pub fn denied(&self, filter: EnvoyFilter, reason: &str) {
        add(filter, self.denied.get(reason).copied(), 1);
    }

    /// A request forwarded in report-only mode that would have been refused for `reason`.
    pub fn reported(&self, filter: EnvoyFilter, reason: &str) {
        add(filter, self.reported.get(reason).copied(), 1);
    }

    pub fn cache(&self, filter: EnvoyFilter, (hits, misses): (u64, u64)) {
        add(filter, self.cache_hits, hits);
        add(filter, self.cache_misses, misses);
    }

    /// A panic caught in a hook (any thread).
    pub fn panicked(&self) {
        if let Some(id) = self.panics {
            self.envoy.increment(id, 1);
        }
    }

    /// A counter by name (any thread: Envoy's counters are atomic).
    pub fn count(&self, name: &str, by: u64) {
        let id = self.counters.get(name).or_else(|| {
            name.strip_prefix("denied.")
                .and_then(|reason| self.denied.get(reason))
        });
        if let Some(&id) = id {
            self.envoy.increment(id, by);
        }
    }

    pub fn gauge(&self, name: &str, value: u64) {
        if let Some(&id) = self.gauges.get(name) {
            self.envoy.set_gauge(id, value);
        }
    }
}

fn add(filter: EnvoyFilter, id: Option<usize>, by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        filter.increment(id, by);
    }
}
