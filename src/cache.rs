//! The verified-token cache: claims of tokens whose signature and claims already held.
//!
//! Per worker, bounded, keyed by two independent 64-bit hashes of the whole token (so a hit
//! needs the byte-identical token). An entry lives no longer than the token's `exp`, and is
//! not used once its signing key has left the provider's key set. It only saves the
//! verification: the policy is still evaluated on every request.

use crate::jwks::KeySet;
use crate::verify::Claims;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

pub struct TokenCache {
    max_entries: usize,
    entries: HashMap<u64, Entry>,
    /// Insertion order, for evicting the oldest entry when full.
    order: VecDeque<u64>,
    index_hash: RandomState,
    check_hash: RandomState,
    /// Lookups since the last [`TokenCache::take_counts`]: (hits, misses).
    counts: (u64, u64),
}

struct Entry {
    check: u64,
    key_fingerprint: u64,
    claims: Rc<Claims>,
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens; 0 turns it off.
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            max_entries,
            entries: HashMap::new(),
            order: VecDeque::new(),
            index_hash: RandomState::new(),
            check_hash: RandomState::new(),
            counts: (0, 0),
        }
    }

    /// The claims of `token` if it was verified before, has not expired at `now` and its
    /// key is still in the provider's key set.
    pub fn get(&mut self, token: &str, now: u64, keys: &[Option<KeySet>]) -> Option<Rc<Claims>> {
        if self.max_entries == 0 {
            return None;
        }
        let index = self.index_hash.hash_one(token);
        let check = self.check_hash.hash_one(token);
        let usable = self.entries.get(&index).is_some_and(|e| {
            e.check == check && now < e.claims.expires_at && key_still_there(e, keys)
        });
        if usable {
            self.counts.0 = self.counts.0.saturating_add(1);
        } else {
            self.counts.1 = self.counts.1.saturating_add(1);
            // A stale entry under this hash (expired, key rotated out) goes now.
            if self.entries.get(&index).is_some_and(|e| e.check == check) {
                self.entries.remove(&index);
            }
            return None;
        }
        self.entries.get(&index).map(|e| Rc::clone(&e.claims))
    }

    /// Remembers a verified token. `key_fingerprint` identifies the key that signed it.
    pub fn insert(&mut self, token: &str, claims: Rc<Claims>, key_fingerprint: u64) {
        if self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let index = self.index_hash.hash_one(token);
        let check = self.check_hash.hash_one(token);
        let entry = Entry {
            check,
            key_fingerprint,
            claims,
        };
        if self.entries.insert(index, entry).is_none() {
            self.order.push_back(index);
        }
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
            cache.get(&token, NOW + 100, &keys()).is_none(),
            "not past exp"
        );
        assert!(cache.is_empty(), "the expired entry is dropped");
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
