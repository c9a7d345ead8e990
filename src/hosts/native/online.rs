//! What the online check keeps for every worker thread of the process: the answers (with the
//! pending markers that keep the calls per token to one), the back-offs after throttling, and
//! each worker's calls under way. The .wasm keeps the same in Envoy's shared data
//! (src/filter/online.rs); the bookkeeping itself is the runtime's ([`crate::runtime::online`]).
//!
//! Answers sit in shards, each a small mutex-guarded map, chosen by the token's slot: a request
//! whose answer is kept locks one shard for a lookup; nothing else is locked on its way.

use super::lock;
use crate::online::{self, Answers, Backoff, Claim, Record, TokenKey};
use crate::runtime::online::{InFlight, Kept};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;

const SHARDS: usize = 32;
/// Answers kept per shard at most (as the .wasm's fixed slots bound them): past it, the
/// shard's stale answers go, and if none is stale, all of them.
const PER_SHARD: usize = 4_096;

pub struct OnlineState {
    shards: Vec<Mutex<HashMap<(usize, u32), Record>>>,
    backoffs: Mutex<HashMap<usize, Backoff>>,
    noted: Mutex<HashSet<usize>>,
    /// Each worker's calls under way, by flight id (the fair share is per worker, as in the
    /// .wasm).
    flights: Mutex<HashMap<ThreadId, InFlight>>,
}

impl Default for OnlineState {
    fn default() -> Self {
        OnlineState {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            backoffs: Mutex::default(),
            noted: Mutex::default(),
            flights: Mutex::default(),
        }
    }
}

impl OnlineState {
    fn shard(&self, key: &TokenKey) -> Option<MutexGuard<'_, HashMap<(usize, u32), Record>>> {
        let index = usize::try_from(key.slot).ok()? % SHARDS;
        self.shards.get(index).map(lock)
    }

    /// Runs `f` on this worker's calls under way.
    pub fn flights<T>(&self, f: impl FnOnce(&mut InFlight) -> T) -> T {
        let mut all = lock(&self.flights);
        let mine = all.entry(std::thread::current().id()).or_default();
        f(mine)
    }
}

impl Answers for OnlineState {
    fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
        self.shard(key)?.get(&(provider, key.slot)).cloned()
    }
}

impl Kept for OnlineState {
    fn claim(&self, provider: usize, key: &TokenKey, until_ms: u64, now_ms: u64) -> Claim {
        let Some(mut shard) = self.shard(key) else {
            return Claim::Ask;
        };
        let claim = online::claim(shard.get(&(provider, key.slot)), key, now_ms);
        if claim == Claim::Ask {
            bound(&mut shard, now_ms);
            shard.insert((provider, key.slot), online::pending(key, until_ms));
        }
        claim
    }

    fn keep(&self, provider: usize, key: &TokenKey, record: &Record) {
        if let Some(mut shard) = self.shard(key) {
            bound(&mut shard, super::now_ms());
            shard.insert((provider, key.slot), record.clone());
        }
    }

    fn backoff(&self, provider: usize) -> Option<Backoff> {
        lock(&self.backoffs).get(&provider).copied()
    }

    fn set_backoff(&self, provider: usize, backoff: Backoff) {
        lock(&self.backoffs).insert(provider, backoff);
    }

    fn first_note(&self, provider: usize) -> bool {
        lock(&self.noted).insert(provider)
    }
}

/// Makes room in a full shard: its stale answers go, or all of them.
fn bound(shard: &mut HashMap<(usize, u32), Record>, now_ms: u64) {
    if shard.len() < PER_SHARD {
        return;
    }
    shard.retain(|_, r| now_ms < r.until_ms);
    if shard.len() >= PER_SHARD {
        shard.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_token_and_answers_by_token() {
        let s = OnlineState::default();
        let (a, b) = (TokenKey::of("a"), TokenKey::of("b"));
        assert_eq!(s.claim(0, &a, 100, 0), Claim::Ask);
        assert_eq!(s.claim(0, &a, 100, 1), Claim::Join);
        assert_eq!(s.claim(1, &a, 100, 1), Claim::Ask, "per provider");
        assert_eq!(online::lookup(&s, 0, &a, 1), None, "a marker is no answer");
        s.keep(0, &a, &online::record(&a, online::Answer::Active, 1, 50));
        assert_eq!(online::lookup(&s, 0, &a, 2), Some(online::Answer::Active));
        assert_eq!(online::lookup(&s, 0, &b, 2), None);
        assert!(s.first_note(0));
        assert!(!s.first_note(0));
    }
}
