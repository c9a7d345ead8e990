//! When to fetch a provider's JWKS, and which worker does it.
//!
//! Envoy runs one VM per worker thread. All of them share one `Schedule` per JWKS (in
//! Envoy's shared data, updated with compare-and-swap): a worker that finds a fetch due takes
//! a lease, fetches, and writes the result; the others pick the keys up on their tick. The
//! lease expires, so a worker that dies mid-fetch cannot block refreshes forever.
//!
//! Everything here is pure: the glue reads the record, calls one of these functions with
//! the time, and writes back what it returns.

use serde::{Deserialize, Serialize};

/// At most one fetch triggered by an unknown `kid` per this many milliseconds, per JWKS.
pub const UNKNOWN_KID_PENALTY_MS: u64 = 10_000;
/// First retry after a failed fetch; doubles on each further failure.
const FIRST_RETRY_MS: u64 = 1_000;
/// Retries back off to at most this (or the refresh interval, if shorter).
const MAX_RETRY_MS: u64 = 60_000;
/// A lease outlives the fetch timeout by this much before another worker may take over.
const LEASE_GRACE_MS: u64 = 1_000;

/// The shared record for one JWKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schedule {
    /// Bumped by every successful fetch; workers reload keys when it changes.
    pub version: u64,
    /// Fetches completed, successful or not; paused requests re-check when it changes.
    pub attempts: u64,
    /// The next fetch is due at this time (ms since the epoch).
    pub next_fetch_ms: u64,
    /// When the last fetch started.
    pub last_start_ms: u64,
    /// When a token with an unknown `kid` last brought a fetch forward (for the rate limit).
    pub last_refetch_ms: u64,
    /// Failures since the last success.
    pub failures: u32,
    /// The worker holding the fetch lease (0 = none), and until when.
    pub lease_owner: u64,
    pub lease_until_ms: u64,
}

/// What became of a request for an early fetch (a token with an unknown `kid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refetch {
    /// A fetch is now due; write the new record.
    Scheduled(Schedule),
    /// A fetch is already due or under way: wait for it.
    Pending,
    /// An unknown `kid` brought a fetch forward less than [`UNKNOWN_KID_PENALTY_MS`] ago.
    RateLimited,
}

impl Schedule {
    /// The record with the lease taken by `worker`, if a fetch is due and nobody holds it.
    pub fn take_lease(&self, worker: u64, now: u64, timeout_ms: u64) -> Option<Schedule> {
        if now < self.next_fetch_ms || self.leased(now) {
            return None;
        }
        Some(Schedule {
            lease_owner: worker,
            lease_until_ms: now
                .saturating_add(timeout_ms)
                .saturating_add(LEASE_GRACE_MS),
            last_start_ms: now,
            ..*self
        })
    }

    /// After a good fetch: a new version, the next one a refresh interval away.
    pub fn succeeded(&self, worker: u64, now: u64, refresh_ms: u64) -> Schedule {
        Schedule {
            version: self.version.saturating_add(1),
            attempts: self.attempts.saturating_add(1),
            next_fetch_ms: now.saturating_add(refresh_ms),
            failures: 0,
            ..self.release(worker)
        }
    }

    /// After a failed fetch: the keys stay, and the next try backs off exponentially.
    pub fn failed(&self, worker: u64, now: u64, refresh_ms: u64) -> Schedule {
        let failures = self.failures.saturating_add(1);
        Schedule {
            attempts: self.attempts.saturating_add(1),
            next_fetch_ms: now.saturating_add(retry_delay_ms(failures, refresh_ms)),
            failures,
            ..self.release(worker)
        }
    }

    /// A token named a `kid` we do not have: fetch now, unless an unknown `kid` already did
    /// so within the penalty interval (so a flood of random kids costs one fetch).
    pub fn request_refetch(&self, now: u64) -> Refetch {
        let penalized = self.last_refetch_ms != 0
            && now < self.last_refetch_ms.saturating_add(UNKNOWN_KID_PENALTY_MS);
        if penalized {
            Refetch::RateLimited
        } else if self.leased(now) || self.next_fetch_ms <= now {
            Refetch::Pending
        } else {
            Refetch::Scheduled(Schedule {
                next_fetch_ms: now,
                last_refetch_ms: now,
                ..*self
            })
        }
    }

    pub fn leased(&self, now: u64) -> bool {
        self.lease_owner != 0 && now < self.lease_until_ms
    }

    /// Drops the lease if `worker` still holds it (it may have expired and moved on).
    fn release(&self, worker: u64) -> Schedule {
        if self.lease_owner == worker {
            Schedule {
                lease_owner: 0,
                lease_until_ms: 0,
                ..*self
            }
        } else {
            *self
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record that does not decode is treated as absent (and rewritten).
    pub fn decode(bytes: &[u8]) -> Option<Schedule> {
        serde_json::from_slice(bytes).ok()
    }
}

/// 1 s, 2 s, 4 s … capped at 60 s or the refresh interval, whichever is shorter.
pub fn retry_delay_ms(failures: u32, refresh_ms: u64) -> u64 {
    let doubled = FIRST_RETRY_MS.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    doubled
        .min(MAX_RETRY_MS)
        .min(refresh_ms.max(FIRST_RETRY_MS))
}

/// The JWKS body as stored in shared data: its version, then the document.
pub fn encode_body(version: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn decode_body(stored: &[u8]) -> Option<(u64, &[u8])> {
    let (version, body) = stored.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*version), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000_000;
    const REFRESH: u64 = 600_000;

    #[test]
    fn a_new_record_is_due_and_one_worker_gets_the_lease() {
        let s = Schedule::default();
        let a = s.take_lease(1, T, 3000).unwrap();
        assert_eq!(
            (a.lease_owner, a.lease_until_ms, a.last_start_ms),
            (1, T + 4000, T)
        );
        assert_eq!(a.take_lease(2, T + 10, 3000), None, "leased");
        let b = a.take_lease(2, T + 4000, 3000).unwrap();
        assert_eq!(b.lease_owner, 2, "an expired lease can be taken over");
    }

    #[test]
    fn success_schedules_the_next_refresh_and_releases() {
        let s = Schedule::default().take_lease(1, T, 3000).unwrap();
        let ok = s.succeeded(1, T + 200, REFRESH);
        assert_eq!((ok.version, ok.attempts, ok.failures), (1, 1, 0));
        assert_eq!(ok.next_fetch_ms, T + 200 + REFRESH);
        assert!(!ok.leased(T + 201));
        assert_eq!(ok.take_lease(2, T + REFRESH, 3000), None, "not due yet");
        assert!(ok.take_lease(2, T + 200 + REFRESH, 3000).is_some());
    }

    #[test]
    fn failures_back_off_and_keep_the_version() {
        let mut s = Schedule {
            version: 3,
            ..Default::default()
        };
        let mut delays = vec![];
        for i in 0..9 {
            let now = T + i * 100_000;
            s = s
                .take_lease(1, s.next_fetch_ms.max(now), 3000)
                .unwrap()
                .failed(1, s.next_fetch_ms.max(now), REFRESH);
            delays.push(s.next_fetch_ms - s.last_start_ms);
        }
        assert_eq!(
            delays,
            vec![1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
        assert_eq!((s.version, s.failures, s.attempts), (3, 9, 9));
        assert_eq!(s.succeeded(1, T, REFRESH).failures, 0);
    }

    #[test]
    fn retry_never_waits_longer_than_the_refresh_interval() {
        assert_eq!(retry_delay_ms(10, 5_000), 5_000);
        assert_eq!(retry_delay_ms(1, 5_000), 1_000);
        assert_eq!(retry_delay_ms(u32::MAX, u64::MAX), 60_000);
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let fresh = Schedule::default()
            .take_lease(1, T, 3000)
            .unwrap()
            .succeeded(1, T + 100, REFRESH);
        let Refetch::Scheduled(s) = fresh.request_refetch(T + 200) else {
            panic!()
        };
        assert_eq!((s.next_fetch_ms, s.last_refetch_ms), (T + 200, T + 200));
        assert_eq!(
            s.request_refetch(T + 201),
            Refetch::RateLimited,
            "one per penalty interval"
        );
        let leased = s.take_lease(2, T + 250, 3000).unwrap();
        let done = leased.succeeded(2, T + 300, REFRESH);
        assert_eq!(done.request_refetch(T + 10_199), Refetch::RateLimited);
        let Refetch::Scheduled(_) = done.request_refetch(T + 10_200) else {
            panic!()
        };
        // A refresh already due or under way is waited for, without a new one.
        let due = Schedule {
            next_fetch_ms: T,
            ..Default::default()
        };
        assert_eq!(due.request_refetch(T + 1), Refetch::Pending);
        let under_way = due.take_lease(1, T + 1, 3000).unwrap();
        assert_eq!(under_way.request_refetch(T + 2), Refetch::Pending);
    }

    #[test]
    fn only_the_holder_releases_the_lease() {
        let s = Schedule::default().take_lease(1, T, 3000).unwrap();
        let taken_over = s.take_lease(2, T + 5000, 3000).unwrap();
        let late = taken_over.failed(1, T + 5001, REFRESH);
        assert_eq!(late.lease_owner, 2);
    }

    #[test]
    fn records_round_trip_and_garbage_is_absent() {
        let s = Schedule {
            version: 7,
            attempts: 9,
            ..Default::default()
        };
        assert_eq!(Schedule::decode(&s.encode()), Some(s));
        assert_eq!(Schedule::decode(b"junk"), None);
        let stored = encode_body(42, b"{\"keys\":[]}");
        assert_eq!(decode_body(&stored), Some((42, &b"{\"keys\":[]}"[..])));
        assert_eq!(decode_body(b"short"), None);
    }
}
