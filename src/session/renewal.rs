//! One refresh per session per Envoy process, as data: the record a host keeps in state every
//! worker sees (shared data in the .wasm), keyed by the refresh token being redeemed.
//!
//! The first request that finds its session due marks the record pending and makes the call;
//! a parallel request of the same session, on any worker, finds the mark and waits for the
//! record to settle. The renewed session's cookies stay in the record for the login's
//! `refresh_grace_seconds` (at least [`MIN_KEEP_MS`]): a request that still carries the
//! session it renewed — a parallel one, or a tab that sends the predecessor of a rotated
//! refresh token — gets the renewed session instead of a second token call, which Cognito
//! would refuse once a rotated token's grace period is over.
//!
//! Records live in a fixed number of slots by a hash of the refresh token (never the token),
//! so that many sessions cannot grow the shared state without bound; two sessions renewed at
//! once in the same slot only lose the coalescing (each makes its own call).

use crate::online::TokenKey;
use serde::{Deserialize, Serialize};

/// A renewed session is kept at least this long, so that requests waiting for it on other
/// workers (woken on their next tick) find it.
pub const MIN_KEEP_MS: u64 = 5_000;
/// A failed refresh is kept this long: its parallel requests go on without the session rather
/// than each try again.
pub const FAILED_KEEP_MS: u64 = 5_000;

/// What became of a refresh, as kept in shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A worker is redeeming the refresh token now.
    Pending,
    /// Renewed: the new session's `Set-Cookie`s (sealed, as the browser gets them).
    Renewed(Vec<String>),
    /// The token endpoint refused or could not be reached.
    Failed,
}

/// A refresh of one session, in its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewal {
    /// The refresh token's SHA-256, hex: a slot holds one refresh at a time.
    pub key: String,
    pub state: State,
    /// Current until this time (ms since the epoch).
    pub until_ms: u64,
}

/// What a request whose session is due finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing current for this refresh token: mark it pending and make the call.
    Ask,
    /// Another request is making the call: wait until this time at the latest.
    Join(u64),
    /// Renewed a moment ago: go on with these cookies.
    Renewed(Vec<String>),
    /// Failed a moment ago: go on without the session.
    Failed,
}

impl Renewal {
    /// The mark of a refresh under way until `until_ms`.
    pub fn pending(key: &TokenKey, until_ms: u64) -> Renewal {
        Renewal {
            key: key.hex.clone(),
            state: State::Pending,
            until_ms,
        }
    }

    /// A refresh that renewed the session at `now_ms` into `cookies`, kept `grace_seconds`.
    pub fn renewed(
        key: &TokenKey,
        cookies: Vec<String>,
        now_ms: u64,
        grace_seconds: u64,
    ) -> Renewal {
        Renewal {
            key: key.hex.clone(),
            state: State::Renewed(cookies),
            until_ms: now_ms.saturating_add(grace_seconds.saturating_mul(1000).max(MIN_KEEP_MS)),
        }
    }

    /// A refresh that failed at `now_ms`.
    pub fn failed(key: &TokenKey, now_ms: u64) -> Renewal {
        Renewal {
            key: key.hex.clone(),
            state: State::Failed,
            until_ms: now_ms.saturating_add(FAILED_KEEP_MS),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for anything else (an empty slot, another version's record).
    pub fn decode(bytes: &[u8]) -> Option<Renewal> {
        serde_json::from_slice(bytes).ok()
    }
}

/// What the refresh of `key` finds in its slot (`current`) at `now_ms`.
pub fn found(current: Option<&Renewal>, key: &TokenKey, now_ms: u64) -> Found {
    match current.filter(|r| r.key == key.hex && now_ms < r.until_ms) {
        None => Found::Ask,
        Some(r) => match &r.state {
            State::Pending => Found::Join(r.until_ms),
            State::Renewed(cookies) => Found::Renewed(cookies.clone()),
            State::Failed => Found::Failed,
        },
    }
}

/// Whether a request waiting for the refresh of `key` may go on: the slot holds no pending
/// mark for it any more (settled, expired, or taken by another session's refresh).
pub fn settled(current: Option<&Renewal>, key: &TokenKey, now_ms: u64) -> bool {
    !matches!(found(current, key, now_ms), Found::Join(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_is_asked_once_joined_then_shared_for_its_grace_window() {
        let key = TokenKey::of("refresh-token-1");
        let other = TokenKey::of("refresh-token-2");
        assert_eq!(found(None, &key, 1_000), Found::Ask);
        let pending = Renewal::pending(&key, 11_000);
        assert_eq!(found(Some(&pending), &key, 1_000), Found::Join(11_000));
        assert!(!settled(Some(&pending), &key, 1_000));
        // Another session's refresh in the slot is not this one's.
        assert_eq!(found(Some(&pending), &other, 1_000), Found::Ask);
        assert!(settled(Some(&pending), &other, 1_000));
        // A mark whose call never answered is taken over.
        assert_eq!(found(Some(&pending), &key, 11_000), Found::Ask);

        let cookies = vec!["__Host-cea_session_0=sealed; Path=/".to_string()];
        let renewed = Renewal::renewed(&key, cookies.clone(), 2_000, 60);
        let stored = Renewal::decode(&renewed.encode()).unwrap();
        assert_eq!(found(Some(&stored), &key, 61_999), Found::Renewed(cookies));
        assert!(settled(Some(&stored), &key, 2_000));
        assert_eq!(found(Some(&stored), &key, 62_000), Found::Ask);
        // A window of 0 still lets the parallel requests see it.
        let brief = Renewal::renewed(&key, vec![], 2_000, 0);
        assert_eq!(brief.until_ms, 2_000 + MIN_KEEP_MS);

        let failed = Renewal::failed(&key, 2_000);
        assert_eq!(found(Some(&failed), &key, 3_000), Found::Failed);
        assert_eq!(
            found(Some(&failed), &key, 2_000 + FAILED_KEEP_MS),
            Found::Ask
        );
        assert_eq!(Renewal::decode(b""), None);
        assert_eq!(Renewal::decode(b"{\"key\":1}"), None);
    }
}
