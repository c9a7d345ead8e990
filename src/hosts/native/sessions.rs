//! The browser sessions ended at logout, as every worker thread of the process sees them (the
//! .wasm keeps them in Envoy's shared data, src/filter/sessions.rs): the same slots
//! ([`crate::session::ended`]), each behind its own lock in one of a few shards.

use crate::runtime::signin::EndSessions;
use crate::session::ended::{self, EndedSessions, Slot};
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
        Some((
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            slot,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

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
