//! What a worker's root context shares with its HTTP contexts: the configuration, the key
//! sets, the caches, the paused requests, and the state of fetches and online checks. Below
//! every other part of the glue: it holds state and knows no behaviour.

use super::metrics::Metrics;
use super::sessions::Written;
use super::shared_data;
use crate::cache::TokenCache;
use crate::config::Config;
use crate::jwks::KeySet;
use crate::online::{Record, TokenKey};
use crate::revocation::RevocationList;
use crate::runtime::online::InFlight;
use crate::signature::SignatureVerifier;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// What the root context shares with every HTTP context of this worker.
pub struct Shared {
    pub config: Config,
    /// `keys[i]` is provider i's current key set.
    pub keys: RefCell<Vec<Option<KeySet>>>,
    /// Per provider: what this worker has seen of the shared schedule.
    pub seen: RefCell<Vec<Seen>>,
    /// Paused requests waiting for keys.
    pub waiters: RefCell<Vec<Waiter>>,
    /// The shared-data keys of each remote provider (`None` for `local_jwks`).
    pub stores: Vec<Option<shared_data::Keys>>,
    /// Native through the host where it can, else pure Rust.
    pub verifier: Box<dyn SignatureVerifier>,
    /// Verified tokens of this worker.
    pub cache: RefCell<TokenCache>,
    /// Session refreshes in flight on this worker: refresh token → (when its answer is
    /// overdue, ms since the epoch; the requests waiting for it).
    pub refreshes: RefCell<HashMap<String, (u64, Vec<u32>)>>,
    /// The refreshes this worker settled in shared data, emptied when over.
    pub renewals: Written,
    pub metrics: RefCell<Metrics>,
    /// The fetched revocation lists of this worker.
    pub revocation: RevocationLists,
    /// Online checks under way, and the answers this worker got.
    pub online: OnlineState,
    /// Sign-in calls to the token endpoint in flight on this worker.
    pub token_calls: crate::runtime::token_calls::Bound,
}

#[derive(Default, Clone, Copy)]
pub struct Seen {
    pub version: u64,
    pub attempts: u64,
}

/// A paused request, and what it waits for.
pub struct Waiter {
    pub context_id: u32,
    pub provider: usize,
    /// Resume when `attempts` for the provider passes this (a fetch finished)…
    pub attempts: u64,
    /// …or when keys exist, if it waits for the first keys…
    pub first_keys: bool,
    /// …or at this time at the latest (ms since the epoch).
    pub deadline_ms: u64,
    /// Waits for the online check of this token instead (then only the deadline and the
    /// check's answer, this worker's or another's, wake it).
    pub online: Option<TokenKey>,
    /// Waits for another worker's refresh of its session instead (keyed by the refresh
    /// token's hash): its record settling or the deadline wakes it.
    pub renewal: Option<TokenKey>,
}

/// This worker's fetched lists, per provider.
pub struct RevocationLists {
    /// `lists[i]`: provider i's last good fetched list.
    pub lists: RefCell<Vec<Option<RevocationList>>>,
    /// The shared-data keys of each provider's list (`None` without `revocation_list`).
    pub(super) stores: Vec<Option<shared_data::Keys>>,
    /// The list version this worker has installed, per provider.
    pub(super) seen: RefCell<Vec<u64>>,
}

impl RevocationLists {
    pub fn new(config: &Config) -> RevocationLists {
        let n = config.providers.len();
        RevocationLists {
            lists: RefCell::new(vec![None; n]),
            stores: config
                .providers
                .iter()
                .map(|p| {
                    p.revocation
                        .remote
                        .as_ref()
                        .map(shared_data::Keys::for_revocation_list)
                })
                .collect(),
            seen: RefCell::new(vec![0; n]),
        }
    }
}

/// This worker's online-check state.
#[derive(Default)]
pub struct OnlineState {
    /// Calls under way, by `dispatch_http_call` token.
    pub(super) calls: RefCell<InFlight>,
    /// Answers this worker got, by token hash.
    pub(super) local: RefCell<HashMap<String, Record>>,
    /// Providers whose unchecked tokens this worker has explained in the log.
    pub(super) noted: RefCell<HashSet<usize>>,
}
