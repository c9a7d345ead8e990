//! Fetching each provider's JWKS and revocation list through their clusters, in a process
//! whose hosts share one schedule (the native module: fetched once per process, on Envoy's
//! main thread).
//!
//! The schedule is [`crate::refresh::Schedule`], the one the wasm workers share through
//! Envoy's shared data: a refresh interval after a good fetch, exponential backoff after a
//! failed one, an early fetch for an unknown `kid` at most once per penalty interval.

use super::{metrics, Answer, Call, Host};
use crate::config::{Config, KeySource, RemoteJwks};
use crate::jwks::{KeySet, MAX_JWKS_BYTES};
use crate::refresh::{Refetch, Schedule};
use crate::revocation::{RevocationList, MAX_LIST_BYTES};
use log::{info, warn};

/// The one fetcher of this process (the lease holder in [`Schedule`]'s terms).
const OWNER: u64 = 1;

/// The fetch schedules of one configuration's providers.
pub struct Fetcher {
    /// Per provider: `None` for a provider with `local_jwks`.
    slots: Vec<Option<Slot>>,
    /// Per provider: `None` for a provider without `revocation_list`.
    lists: Vec<Option<Slot>>,
}

/// A revocation-list fetch that finished: provider `provider`'s new list, or `None` if it
/// failed (the last good list stays).
pub struct FetchedList {
    pub provider: usize,
    pub list: Option<RevocationList>,
}

#[derive(Default)]
struct Slot {
    schedule: Schedule,
    /// The call under way, if any.
    in_flight: Option<u64>,
}

/// A fetch that finished: provider `provider`'s new keys, or `None` if it failed (the last
/// good keys stay).
pub struct Fetched {
    pub provider: usize,
    pub keys: Option<KeySet>,
}

impl Fetcher {
    pub fn new(config: &Config) -> Fetcher {
        let slots = config
            .providers
            .iter()
            .map(|p| matches!(p.keys, KeySource::Remote(_)).then(Slot::default))
            .collect();
        let lists = config
            .providers
            .iter()
            .map(|p| p.revocation.remote.as_ref().map(|_| Slot::default()))
            .collect();
        Fetcher { slots, lists }
    }

    /// Starts the fetches that are due.
    pub fn tick(&mut self, config: &Config, host: &dyn Host, now_ms: u64) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let (Some(slot), Some(provider)) = (slot.as_mut(), config.providers.get(index)) else {
                continue;
            };
            let KeySource::Remote(jwks) = &provider.keys else {
                continue;
            };
            if let Err(reason) = start(slot, jwks, host, now_ms) {
                host.count(&metrics::jwks_fetch(&provider.name, false), 1);
                warn!(
                    "cognito-edge-auth: provider {}: JWKS fetch failed: cannot call cluster {}: {reason}; retry in {} ms",
                    provider.name,
                    jwks.cluster,
                    slot.schedule.next_fetch_ms.saturating_sub(now_ms)
                );
            }
        }
        for (index, slot) in self.lists.iter_mut().enumerate() {
            let (Some(slot), Some(provider)) = (slot.as_mut(), config.providers.get(index)) else {
                continue;
            };
            let Some(remote) = &provider.revocation.remote else {
                continue;
            };
            if let Err(reason) = start(slot, remote, host, now_ms) {
                host.count(&metrics::list_fetch(&provider.name, false), 1);
                warn!(
                    "cognito-edge-auth: provider {}: revocation list fetch failed: cannot call cluster {}: {reason}; retry in {} ms",
                    provider.name,
                    remote.cluster,
                    slot.schedule.next_fetch_ms.saturating_sub(now_ms)
                );
            }
        }
    }

    /// The answer to call `id`, if it fetched a revocation list. `had_list` says whether the
    /// provider has one (for the log line).
    pub fn answered_list(
        &mut self,
        config: &Config,
        host: &dyn Host,
        id: u64,
        answer: Answer<'_>,
        now_ms: u64,
        had_list: impl Fn(usize) -> bool,
    ) -> Option<FetchedList> {
        let index = self
            .lists
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.in_flight == Some(id)))?;
        let slot = self.lists.get_mut(index)?.as_mut()?;
        slot.in_flight = None;
        let provider = config.providers.get(index)?;
        let remote = provider.revocation.remote.as_ref()?;
        let refresh_ms = remote.refresh_interval_seconds.saturating_mul(1000);
        let case_sensitive = config.policy.trust(index).username_case_sensitive;
        let result = checked(answer, MAX_LIST_BYTES).and_then(|body| {
            RevocationList::parse(body, case_sensitive).map_err(|e| e.to_string())
        });
        match result {
            Ok(list) => {
                slot.schedule = slot.schedule.succeeded(OWNER, now_ms, refresh_ms);
                host.count(&metrics::list_fetch(&provider.name, true), 1);
                host.gauge(&metrics::list_entries(&provider.name), list.len() as u64);
                info!(
                    "cognito-edge-auth: provider {}: revocation list fetched, {} entries, version {}",
                    provider.name,
                    list.len(),
                    slot.schedule.version
                );
                Some(FetchedList {
                    provider: index,
                    list: Some(list),
                })
            }
            Err(reason) => {
                slot.schedule = slot.schedule.failed(OWNER, now_ms, refresh_ms);
                host.count(&metrics::list_fetch(&provider.name, false), 1);
                let kept = if had_list(index) {
                    "keeping the last good list"
                } else {
                    "no list yet"
                };
                warn!(
                    "cognito-edge-auth: provider {}: revocation list fetch failed: {reason}; {kept}; retry in {} ms",
                    provider.name,
                    slot.schedule.next_fetch_ms.saturating_sub(now_ms)
                );
                Some(FetchedList {
                    provider: index,
                    list: None,
                })
            }
        }
    }

    /// The answer to call `id`, if it was a JWKS fetch. `had_keys` says whether the provider has keys (for the log line).
    pub fn answered(
        &mut self,
        config: &Config,
        host: &dyn Host,
        id: u64,
        answer: Answer<'_>,
        now_ms: u64,
        had_keys: impl Fn(usize) -> bool,
    ) -> Option<Fetched> {
        let index = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.in_flight == Some(id)))?;
        let slot = self.slots.get_mut(index)?.as_mut()?;
        slot.in_flight = None;
        let provider = config.providers.get(index)?;
        let KeySource::Remote(jwks) = &provider.keys else {
            return None;
        };
        let refresh_ms = jwks.refresh_interval_seconds.saturating_mul(1000);
        match read(answer) {
            Ok(parsed) => {
                slot.schedule = slot.schedule.succeeded(OWNER, now_ms, refresh_ms);
                host.count(&metrics::jwks_fetch(&provider.name, true), 1);
                host.gauge(
                    &metrics::jwks_keys(&provider.name),
                    parsed.keys.len() as u64,
                );
                let kids: Vec<&str> = parsed.keys.kids().collect();
                info!(
                    "cognito-edge-auth: provider {}: JWKS fetched, {} key(s) [{}], version {}",
                    provider.name,
                    kids.len(),
                    kids.join(", "),
                    slot.schedule.version
                );
                for why in &parsed.skipped {
                    warn!(
                        "cognito-edge-auth: provider {}: skipped {why}",
                        provider.name
                    );
                }
                Some(Fetched {
                    provider: index,
                    keys: Some(parsed.keys),
                })
            }
            Err(reason) => {
                slot.schedule = slot.schedule.failed(OWNER, now_ms, refresh_ms);
                host.count(&metrics::jwks_fetch(&provider.name, false), 1);
                let kept = if had_keys(index) {
                    "keeping the last good keys"
                } else {
                    "no keys yet"
                };
                warn!(
                    "cognito-edge-auth: provider {}: JWKS fetch failed: {reason}; {kept}; retry in {} ms",
                    provider.name,
                    slot.schedule.next_fetch_ms.saturating_sub(now_ms)
                );
                Some(Fetched {
                    provider: index,
                    keys: None,
                })
            }
        }
    }

    /// A token named a `kid` provider `index` does not have: bring its fetch forward unless
    /// one did so lately. Whether a fetch is now due or under way (worth waiting for).
    pub fn refetch(&mut self, index: usize, now_ms: u64) -> bool {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return false;
        };
        if slot.in_flight.is_some() {
            return true;
        }
        match slot.schedule.request_refetch(now_ms) {
            Refetch::Scheduled(next) => {
                slot.schedule = next;
                true
            }
            Refetch::Pending => true,
            Refetch::RateLimited => false,
        }
    }

    /// Provider `index`'s completed fetches, good or bad.
    pub fn attempts(&self, index: usize) -> u64 {
        match self.slots.get(index) {
            Some(Some(slot)) => slot.schedule.attempts,
            _ => 0,
        }
    }
}

fn read(answer: Answer<'_>) -> Result<crate::jwks::Parsed, String> {
    KeySet::parse(checked(answer, MAX_JWKS_BYTES)?).map_err(|e| e.to_string())
}

/// The body of a good answer of at most `max` bytes.
fn checked(Answer { status, body }: Answer<'_>, max: usize) -> Result<&[u8], String> {
    match status {
        None => return Err("no response (timeout or connection failure)".into()),
        Some(200) => {}
        Some(other) => return Err(format!("HTTP status {other}")),
    }
    if body.len() > max {
        return Err(format!(
            "body of {} bytes is over the {max}-byte bound",
            body.len()
        ));
    }
    Ok(body)
}

/// Starts `slot`'s fetch of `remote` if it is due; a call that cannot be made counts as a
/// failed fetch (and is retried with backoff).
fn start(slot: &mut Slot, remote: &RemoteJwks, host: &dyn Host, now_ms: u64) -> Result<(), String> {
    if slot.in_flight.is_some() {
        return Ok(());
    }
    let Some(leased) = slot.schedule.take_lease(OWNER, now_ms, remote.timeout_ms) else {
        return Ok(());
    };
    slot.schedule = leased;
    let call = Call {
        cluster: &remote.cluster,
        headers: vec![
            (":method", "GET"),
            (":path", &remote.path),
            (":authority", &remote.authority),
            ("accept", "application/json"),
        ],
        body: &[],
        timeout_ms: remote.timeout_ms,
    };
    match host.call(&call) {
        Ok(id) => {
            slot.in_flight = Some(id);
            Ok(())
        }
        Err(reason) => {
            let refresh_ms = remote.refresh_interval_seconds.saturating_mul(1000);
            slot.schedule = slot.schedule.failed(OWNER, now_ms, refresh_ms);
            Err(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tokens::jwks;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<(String, String)>>,
        counts: RefCell<Vec<(String, u64)>>,
        refuse: bool,
    }

    impl Host for Recorder {
        fn call(&self, call: &Call<'_>) -> Result<u64, String> {
            if self.refuse {
                return Err("ClusterNotFound".into());
            }
            let path = call
                .headers
                .iter()
                .find(|(n, _)| *n == ":path")
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            self.calls.borrow_mut().push((call.cluster.into(), path));
            Ok(self.calls.borrow().len() as u64)
        }
        fn count(&self, name: &str, by: u64) {
            self.counts.borrow_mut().push((name.into(), by));
        }
        fn gauge(&self, name: &str, value: u64) {
            self.counts.borrow_mut().push((name.into(), value));
        }
    }

    fn config() -> Config {
        Config::parse(
            serde_json::json!({ "providers": [
                { "name": "local", "user_pool_id": "us-east-1_L", "client_ids": ["c"],
                  "local_jwks": serde_json::from_str::<serde_json::Value>(&jwks(&[("key1", "k1")])).unwrap() },
                { "name": "p", "user_pool_id": "us-east-1_Abc", "client_ids": ["c"],
                  "jwks": { "cluster": "j", "uri": "http://j/x/jwks.json", "refresh_interval_seconds": 60 } }
            ] })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn fetches_once_then_after_the_refresh_interval() {
        let (c, host) = (config(), Recorder::default());
        let mut f = Fetcher::new(&c);
        f.tick(&c, &host, 1000);
        f.tick(&c, &host, 1100);
        assert_eq!(
            *host.calls.borrow(),
            vec![("j".into(), "/x/jwks.json".into())]
        );
        let body = jwks(&[("key1", "k1"), ("key2", "k2")]);
        let done = f
            .answered(
                &c,
                &host,
                1,
                Answer::new(Some(200), body.as_bytes()),
                1200,
                |_| false,
            )
            .unwrap();
        assert_eq!(done.provider, 1);
        assert_eq!(done.keys.unwrap().len(), 2);
        assert_eq!(f.attempts(1), 1);
        assert!(host
            .counts
            .borrow()
            .contains(&("jwks.p.fetch_success".into(), 1)));
        assert!(host.counts.borrow().contains(&("jwks.p.keys".into(), 2)));
        f.tick(&c, &host, 1200 + 59_000);
        assert_eq!(host.calls.borrow().len(), 1);
        f.tick(&c, &host, 1200 + 60_000);
        assert_eq!(host.calls.borrow().len(), 2);
        assert!(f
            .answered(
                &c,
                &host,
                99,
                Answer::new(Some(200), body.as_bytes()),
                1,
                |_| true
            )
            .is_none());
    }

    #[test]
    fn a_failed_fetch_keeps_the_keys_and_backs_off() {
        let (c, host) = (config(), Recorder::default());
        let mut f = Fetcher::new(&c);
        f.tick(&c, &host, 1000);
        let done = f
            .answered(&c, &host, 1, Answer::new(Some(500), b""), 1100, |_| true)
            .unwrap();
        assert!(done.keys.is_none());
        assert_eq!(f.attempts(1), 1);
        f.tick(&c, &host, 1100 + 999);
        assert_eq!(host.calls.borrow().len(), 1, "first retry after 1 s");
        f.tick(&c, &host, 1100 + 1000);
        assert_eq!(host.calls.borrow().len(), 2);
        let done = f
            .answered(&c, &host, 2, Answer::new(None, b""), 2200, |_| true)
            .unwrap();
        assert!(done.keys.is_none());
        assert!(host
            .counts
            .borrow()
            .contains(&("jwks.p.fetch_failure".into(), 1)));
    }

    #[test]
    fn an_unknown_kid_brings_the_fetch_forward_once_per_penalty() {
        let (c, host) = (config(), Recorder::default());
        let mut f = Fetcher::new(&c);
        f.tick(&c, &host, 1000);
        assert!(f.refetch(1, 1050), "a fetch is under way");
        f.answered(
            &c,
            &host,
            1,
            Answer::new(Some(200), jwks(&[("key1", "k1")]).as_bytes()),
            1100,
            |_| false,
        );
        assert!(f.refetch(1, 20_000));
        f.tick(&c, &host, 20_000);
        assert_eq!(host.calls.borrow().len(), 2);
        f.answered(
            &c,
            &host,
            2,
            Answer::new(Some(200), jwks(&[("key1", "k1")]).as_bytes()),
            20_100,
            |_| true,
        );
        assert!(!f.refetch(1, 21_000), "rate-limited");
        assert!(!f.refetch(0, 21_000), "local keys are never fetched");
    }

    #[test]
    fn a_cluster_that_cannot_be_called_counts_as_a_failure() {
        let c = config();
        let host = Recorder {
            refuse: true,
            ..Recorder::default()
        };
        let mut f = Fetcher::new(&c);
        f.tick(&c, &host, 1000);
        assert_eq!(f.attempts(1), 1);
        assert!(host
            .counts
            .borrow()
            .contains(&("jwks.p.fetch_failure".into(), 1)));
    }
}
