//! Browser sessions as every worker thread of the process sees them (the .wasm keeps them in
//! Envoy's shared data, src/filter/sessions.rs): the sessions ended at logout — the same slots
//! ([`crate::session::ended`]), each behind its own lock in one of a few shards — and the
//! refreshes under way or just done ([`crate::session::renewal`]).

use crate::online::TokenKey;
use crate::runtime::signin::EndSessions;
use crate::session::ended::{self, EndedSessions, Slot};
use crate::session::renewal::{self, Found, Renewal};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 16;

pub struct Ended {
    shards: Vec<Mutex<HashMap<u32, Slot>>>,
}

impl Default for Ended {
    fn default() -> Self {
        Ended {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Ended {
    /// The shard of session `sid`'s slot, locked, and the slot's number.
    fn shard(&self, sid: &str) -> Option<(MutexGuard<'_, HashMap<u32, Slot>>, u32)> {
        let slot = ended::slot(sid);
        let index = usize::try_from(slot).ok()? % SHARDS;
        let shard = self.shards.get(index)?;
        Some((super::lock(shard), slot))
    }
}

impl EndedSessions for Ended {
    fn is_ended(&self, sid: &str, now: u64) -> bool {
        self.shard(sid)
            .is_some_and(|(shard, slot)| shard.get(&slot).is_some_and(|s| s.holds(sid, now)))
    }
}

impl EndSessions for Ended {
    fn end(&self, sid: &str, until: u64, now: u64) -> bool {
        let Some((mut shard, slot)) = self.shard(sid) else {
            return false;
        };
        let next = shard
            .get(&slot)
            .cloned()
            .unwrap_or_default()
            .with(sid, until, now);
        shard.insert(slot, next);
        true
    }
}

/// The refreshes of the process under way or just done, by the refresh token's hash: one
/// refresh per session per process. Locked only by requests whose session is due; entries go
/// when they are over.
#[derive(Default)]
pub struct Renewals(Mutex<HashMap<String, Renewal>>);

impl Renewals {
    fn locked(&self) -> MutexGuard<'_, HashMap<String, Renewal>> {
        super::lock(&self.0)
    }

    /// What the refresh of `key` finds; with [`Found::Ask`] it is marked pending until
    /// `until_ms`, under the lock, so that of two workers racing one asks and the other joins.
    pub fn claim(&self, key: &TokenKey, until_ms: u64, now_ms: u64) -> Found {
        let mut map = self.locked();
        map.retain(|_, r| now_ms < r.until_ms);
        let found = renewal::found(map.get(&key.hex), key, now_ms);
        if found == Found::Ask {
            map.insert(key.hex.clone(), Renewal::pending(key, until_ms));
        }
        found
    }

    /// What became of the refresh of `key`, for the requests that joined it.
    pub fn found(&self, key: &TokenKey, now_ms: u64) -> Found {
        renewal::found(self.locked().get(&key.hex), key, now_ms)
    }

    /// Whether a request waiting for the refresh of `key` may go on.
    pub fn settled(&self, key: &TokenKey, now_ms: u64) -> bool {
        renewal::settled(self.locked().get(&key.hex), key, now_ms)
    }

    /// Keeps a renewed or failed refresh for the requests that come with the same session.
    pub fn settle(&self, key: &TokenKey, settled: Renewal) {
        self.locked().insert(key.hex.clone(), settled);
    }

    /// A refresh whose request went away before its answer: its mark goes, and the requests
    /// that joined it go on with the session as it is.
    pub fn abandon(&self, key: &TokenKey) {
        let mut map = self.locked();
        if map
            .get(&key.hex)
            .is_some_and(|r| r.state == renewal::State::Pending)
        {
            map.remove(&key.hex);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refresh_per_session_in_the_process() {
        let r = Renewals::default();
        let (a, b) = (TokenKey::of("rt-a"), TokenKey::of("rt-b"));
        assert_eq!(r.claim(&a, 10_000, 1_000), Found::Ask);
        assert_eq!(r.claim(&a, 10_000, 1_001), Found::Join(10_000));
        assert_eq!(r.claim(&b, 10_000, 1_001), Found::Ask, "another session");
        assert!(!r.settled(&a, 1_002));
        r.settle(&a, Renewal::renewed(&a, vec!["c".into()], 2_000, 60));
        assert!(r.settled(&a, 2_001));
        assert_eq!(r.claim(&a, 70_000, 2_001), Found::Renewed(vec!["c".into()]));
        r.abandon(&b);
        assert_eq!(r.found(&b, 2_002), Found::Ask);
        // Over: gone at the next claim.
        assert_eq!(r.claim(&a, 90_000, 62_000), Found::Ask);
    }

    #[test]
    fn an_ended_session_is_refused_until_its_time() {
        let e = Ended::default();
        assert!(!e.is_ended("s1", 10));
        assert!(e.end("s1", 100, 10));
        assert!(e.is_ended("s1", 99));
        assert!(!e.is_ended("s1", 100));
        assert!(!e.is_ended("s2", 50));
    }
}
