//! The verified-token cache: claims of tokens whose signature and claims already held.
//!
//! Per worker, bounded in entries and in bytes, keyed by two independent 64-bit hashes of
//! the whole token (so a hit needs the byte-identical token). An entry lives exactly as long
//! as `verify` would accept the token (`exp` plus the clock skew), and is not used once its
//! signing key has left the provider's key set. Besides the claims, an entry remembers the
//! policy's outcome (identity headers rendered, or the refusal) per route rule: it depends
//! only on the claims, the rule and the configuration, all fixed for the entry's life.

use crate::config::DEFAULT_TOKEN_CACHE_BYTES;
use crate::jwks::KeySet;
use crate::policy::Outcome;
use crate::verify::Claims;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

/// What an entry costs beyond its token's length (the hash map slot, the claims' maps).
const ENTRY_OVERHEAD_BYTES: usize = 512;

pub struct TokenCache {
    max_entries: usize,
    max_bytes: usize,
    /// The summed cost of the entries: their tokens' lengths plus a fixed overhead each
    /// (the decoded claims are smaller than the token that carried them).
    bytes: usize,
    entries: HashMap<u64, Entry>,
    /// Insertion order, for evicting the oldest entry: (index, sequence number). An item
    /// whose entry was replaced or dropped stays until it reaches the front or the queue is
    /// compacted, so the queue never holds more than twice the entries (plus a little).
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
    index_hash: RandomState,
    check_hash: RandomState,
    /// Lookups since the last [`TokenCache::take_counts`]: (hits, misses).
    counts: (u64, u64),
}

struct Entry {
    check: u64,
    key_fingerprint: u64,
    claims: Rc<Claims>,
    /// The policy's outcome for this token per rule index (`None`: no rule matched). At most
    /// one per rule of the configuration.
    outcomes: Vec<(Option<usize>, Rc<Outcome>)>,
    seq: u64,
    cost: usize,
}

/// Where a token is, or would go, in the cache: its two hashes, computed once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    index: u64,
    check: u64,
    len: usize,
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens and the default byte bound
    /// ([`DEFAULT_TOKEN_CACHE_BYTES`]); 0 turns it off.
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache::with_limits(max_entries, DEFAULT_TOKEN_CACHE_BYTES)
    }

    /// A cache of at most `max_entries` tokens costing at most `max_bytes` in all.
    pub fn with_limits(max_entries: usize, max_bytes: usize) -> TokenCache {
        TokenCache {
            max_entries,
            max_bytes,
            bytes: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            index_hash: RandomState::new(),
            check_hash: RandomState::new(),
            counts: (0, 0),
        }
    }

    /// The slot of `token`: hashed once, for [`TokenCache::get_at`], [`TokenCache::insert_at`],
    /// [`TokenCache::outcome`] and [`TokenCache::remember`]. Not hashed when the cache is off.
    pub fn slot(&self, token: &str) -> Slot {
        if self.max_entries == 0 {
            return Slot {
                index: 0,
                check: 0,
                len: token.len(),
            };
        }
        Slot {
            index: self.index_hash.hash_one(token),
            check: self.check_hash.hash_one(token),
            len: token.len(),
        }
    }

    /// The claims of `token` if it was verified before, `verify` would still accept it at
    /// `now`, and its key is still in the provider's key set.
    pub fn get(&mut self, token: &str, now: u64, keys: &[Option<KeySet>]) -> Option<Rc<Claims>> {
        self.get_at(self.slot(token), now, keys)
    }

    /// [`TokenCache::get`] for the token of `slot`.
    pub fn get_at(&mut self, slot: Slot, now: u64, keys: &[Option<KeySet>]) -> Option<Rc<Claims>> {
        if self.max_entries == 0 {
            return None;
        }
        let Slot { index, check, .. } = slot;
        let usable = self.entries.get(&index).is_some_and(|e| {
            e.check == check && now < e.claims.valid_until && key_still_there(e, keys)
        });
        if usable {
            self.counts.0 = self.counts.0.saturating_add(1);
        } else {
            self.counts.1 = self.counts.1.saturating_add(1);
            // A stale entry under this hash (expired, key rotated out) goes now.
            if self.entries.get(&index).is_some_and(|e| e.check == check) {
                self.remove(index);
            }
            return None;
        }
        self.entries.get(&index).map(|e| Rc::clone(&e.claims))
    }

    /// Remembers a verified token. `key_fingerprint` identifies the key that signed it.
    pub fn insert(&mut self, token: &str, claims: Rc<Claims>, key_fingerprint: u64) {
        self.insert_at(self.slot(token), claims, key_fingerprint);
    }

    /// [`TokenCache::insert`] for the token of `slot`.
    pub fn insert_at(&mut self, slot: Slot, claims: Rc<Claims>, key_fingerprint: u64) {
        let cost = slot.len.saturating_add(ENTRY_OVERHEAD_BYTES);
        if self.max_entries == 0 || cost > self.max_bytes {
            return;
        }
        let Slot { index, check, .. } = slot;
        self.remove(index);
        while self.entries.len() >= self.max_entries
            || self.bytes.saturating_add(cost) > self.max_bytes
        {
            if !self.evict_oldest() {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let entry = Entry {
            check,
            key_fingerprint,
            claims,
            outcomes: Vec::new(),
            seq,
            cost,
        };
        self.entries.insert(index, entry);
        self.bytes = self.bytes.saturating_add(cost);
        self.order.push_back((index, seq));
        if self.order.len() > self.entries.len().saturating_mul(2).saturating_add(64) {
            let entries = &self.entries;
            self.order
                .retain(|(i, s)| entries.get(i).is_some_and(|e| e.seq == *s));
        }
    }

    /// The policy's outcome remembered for the token of `slot` under route rule `rule`.
    /// Only meaningful right after [`TokenCache::get_at`] or [`TokenCache::insert_at`] of the
    /// same slot, whose claims it was computed from.
    pub fn outcome(&self, slot: Slot, rule: Option<usize>) -> Option<Rc<Outcome>> {
        let entry = self.entries.get(&slot.index)?;
        if entry.check != slot.check {
            return None;
        }
        entry
            .outcomes
            .iter()
            .find(|(r, _)| *r == rule)
            .map(|(_, o)| Rc::clone(o))
    }

    /// Remembers the policy's outcome for the cached token of `slot` under `rule`, if the
    /// token is cached and the outcome fits in the byte bound (else it is simply computed
    /// again next time).
    pub fn remember(&mut self, slot: Slot, rule: Option<usize>, outcome: Rc<Outcome>) {
        let cost = outcome.cost();
        if self.bytes.saturating_add(cost) > self.max_bytes {
            return;
        }
        let Some(entry) = self.entries.get_mut(&slot.index) else {
            return;
        };
        if entry.check != slot.check || entry.outcomes.iter().any(|(r, _)| *r == rule) {
            return;
        }
        entry.outcomes.push((rule, outcome));
        entry.cost = entry.cost.saturating_add(cost);
        self.bytes = self.bytes.saturating_add(cost);
    }

    /// (hits, misses) since the last call, for the metrics.
    pub fn take_counts(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.counts)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the entries cost in all (see [`TokenCache::with_limits`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, index: u64) {
        if let Some(e) = self.entries.remove(&index) {
            self.bytes = self.bytes.saturating_sub(e.cost);
        }
    }

    /// Drops the oldest live entry; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((index, seq)) = self.order.pop_front() {
            if self.entries.get(&index).is_some_and(|e| e.seq == seq) {
                self.remove(index);
                return true;
            }
        }
        false
    }
}

fn key_still_there(entry: &Entry, keys: &[Option<KeySet>]) -> bool {
    keys.get(entry.claims.provider)
        .and_then(Option::as_ref)
        .and_then(|set| set.get(&entry.claims.kid))
        .is_some_and(|key| key.fingerprint == entry.key_fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::PureRust;
    use crate::verify::tests::{config, id_claims, jwks, keys, sign, with, NOW};
    use crate::verify::verify;

    fn verified(token: &str) -> (Rc<Claims>, u64) {
        let keys = keys();
        let claims = Rc::new(verify(token, &config().providers, &keys, &PureRust, NOW).unwrap());
        let fp = keys[0]
            .as_ref()
            .unwrap()
            .get(&claims.kid)
            .unwrap()
            .fingerprint;
        (claims, fp)
    }

    #[test]
    fn a_verified_token_is_a_hit_until_it_expires() {
        let token = sign("key1", "k1", &with(id_claims(), "exp", (NOW + 100).into()));
        let mut cache = TokenCache::new(10);
        assert!(cache.get(&token, NOW, &keys()).is_none());
        let (claims, fp) = verified(&token);
        cache.insert(&token, claims.clone(), fp);
        assert_eq!(cache.get(&token, NOW, &keys()), Some(claims.clone()));
        assert_eq!(cache.get(&token, NOW + 99, &keys()), Some(claims));
        assert!(
            cache.get(&token, NOW + 159, &keys()).is_some(),
            "within the clock skew (60 s) verify still accepts it, and so does the cache"
        );
        assert!(
            cache.get(&token, NOW + 160, &keys()).is_none(),
            "not past exp + skew"
        );
        assert!(cache.is_empty(), "the expired entry is dropped");
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_token_without_exp_is_kept_at_most_the_bound() {
        use crate::verify::tests::bots;
        use crate::verify::NO_EXP_CACHE_SECONDS;
        let (config, keys) = bots(Some(false));
        let token = sign(
            "key1",
            "om1",
            &serde_json::json!({ "iss": "open-metadata.org", "sub": "bot", "iat": NOW - 10 }),
        );
        let claims = Rc::new(verify(&token, &config.providers, &keys, &PureRust, NOW).unwrap());
        let fp = keys[0].as_ref().unwrap().get("om1").unwrap().fingerprint;
        let mut cache = TokenCache::new(10);
        cache.insert(&token, claims, fp);
        assert!(cache
            .get(&token, NOW + NO_EXP_CACHE_SECONDS - 1, &keys)
            .is_some());
        assert!(
            cache
                .get(&token, NOW + NO_EXP_CACHE_SECONDS, &keys)
                .is_none(),
            "then it is verified again"
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn a_token_inside_the_skew_window_is_a_hit_not_a_reinsert() {
        // Expired 10 s ago, inside the 60 s skew: verify accepts it.
        let token = sign("key1", "k1", &with(id_claims(), "exp", (NOW - 10).into()));
        let mut cache = TokenCache::new(10);
        let (claims, fp) = verified(&token);
        assert_eq!(claims.valid_until, NOW + 50);
        cache.insert(&token, claims, fp);
        for _ in 0..1000 {
            assert!(cache.get(&token, NOW, &keys()).is_some());
        }
        assert_eq!((cache.len(), cache.order.len()), (1, 1));
    }

    #[test]
    fn nothing_grows_without_bound_while_the_cache_is_not_full() {
        // Entries that go stale and come back (expired, re-verified) or are replaced leave
        // at most a bounded number of queue items behind.
        let token = sign("key1", "k1", &id_claims());
        let mut cache = TokenCache::new(4096);
        let (claims, fp) = verified(&token);
        for _ in 0..20_000 {
            cache.insert(&token, claims.clone(), fp);
            assert!(
                cache.get(&token, u64::MAX, &keys()).is_none(),
                "stale: dropped"
            );
        }
        cache.insert(&token, claims.clone(), fp);
        assert_eq!(cache.len(), 1);
        assert!(cache.order.len() <= 2 + 64, "{}", cache.order.len());
        for _ in 0..20_000 {
            cache.insert(&token, claims.clone(), fp);
        }
        assert!(cache.order.len() <= 2 + 64, "{}", cache.order.len());
        assert_eq!(cache.bytes(), token.len() + ENTRY_OVERHEAD_BYTES);
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let tokens: Vec<String> = (0..6)
            .map(|i| {
                sign(
                    "key1",
                    "k1",
                    &with(id_claims(), "pad", "x".repeat(1000 * (i + 1)).into()),
                )
            })
            .collect();
        let budget = tokens[4].len() + tokens[5].len() + 2 * ENTRY_OVERHEAD_BYTES;
        let mut cache = TokenCache::with_limits(100, budget);
        for t in &tokens {
            let (claims, fp) = verified(t);
            cache.insert(t, claims, fp);
            assert!(cache.bytes() <= budget);
        }
        assert_eq!(cache.len(), 2, "the oldest went to make room");
        assert!(cache.get(&tokens[5], NOW, &keys()).is_some());
        assert!(cache.get(&tokens[4], NOW, &keys()).is_some());
        assert!(cache.get(&tokens[0], NOW, &keys()).is_none());
        // A token larger than the whole budget is not cached (and evicts nothing).
        let mut small = TokenCache::with_limits(100, 1024);
        let (claims, fp) = verified(&tokens[5]);
        small.insert(&tokens[5], claims, fp);
        assert!(small.is_empty());
    }

    #[test]
    fn only_the_identical_token_hits() {
        let token = sign("key1", "k1", &id_claims());
        let mut cache = TokenCache::new(10);
        let (claims, fp) = verified(&token);
        cache.insert(&token, claims, fp);
        let mut other = token.clone();
        other.push('A');
        assert!(cache.get(&other, NOW, &keys()).is_none());
        assert!(cache.get(&token[..token.len() - 1], NOW, &keys()).is_none());
    }

    #[test]
    fn an_entry_whose_key_left_the_jwks_is_not_used() {
        let token = sign("key1", "k1", &id_claims());
        let mut cache = TokenCache::new(10);
        let (claims, fp) = verified(&token);
        cache.insert(&token, claims, fp);
        let rotated = vec![Some(
            KeySet::parse(jwks(&[("key2", "k2")]).as_bytes())
                .unwrap()
                .keys,
        )];
        assert!(cache.get(&token, NOW, &rotated).is_none());
        // The same kid now naming another key does not count either.
        let reused = vec![Some(
            KeySet::parse(jwks(&[("key2", "k1")]).as_bytes())
                .unwrap()
                .keys,
        )];
        assert!(cache.get(&token, NOW, &reused).is_none());
        assert!(cache.get(&token, NOW, &[None]).is_none());
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest() {
        let mut cache = TokenCache::new(3);
        let tokens: Vec<String> = (0..5)
            .map(|i| {
                sign(
                    "key1",
                    "k1",
                    &with(id_claims(), "sub", format!("user{i}").into()),
                )
            })
            .collect();
        for t in &tokens {
            let (claims, fp) = verified(t);
            cache.insert(t, claims, fp);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&tokens[0], NOW, &keys()).is_none());
        assert!(cache.get(&tokens[4], NOW, &keys()).is_some());
    }

    #[test]
    fn zero_entries_turns_it_off() {
        let token = sign("key1", "k1", &id_claims());
        let mut cache = TokenCache::new(0);
        let (claims, fp) = verified(&token);
        cache.insert(&token, claims, fp);
        assert!(cache.get(&token, NOW, &keys()).is_none());
    }
}
