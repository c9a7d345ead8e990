//! Sessions ended at logout, as the process keeps them: a copy of a session cookie taken before
//! logout is refused on every worker until its ID token would have expired.
//!
//! The glue keeps them where every worker sees them (proxy-wasm shared data), in a fixed number
//! of slots picked by the session id, each holding a short list: memory stays bounded however
//! many users sign out. Pure: encoding, adding and looking up.

use sha2::{Digest, Sha256};

/// Slots per process; a logout writes one, a request with a session reads one.
pub const SLOTS: u32 = 4096;
/// Ended sessions kept per slot (the earliest to expire is dropped first past this): about
/// 130,000 sessions ended within one token lifetime before any is forgotten early.
pub const PER_SLOT: usize = 32;

/// Whether a session has been ended, as the glue knows it.
pub trait EndedSessions {
    fn is_ended(&self, sid: &str, now: u64) -> bool;
}

/// No session has been ended (no login, or a host that keeps none).
pub struct NoneEnded;

impl EndedSessions for NoneEnded {
    fn is_ended(&self, _: &str, _: u64) -> bool {
        false
    }
}

/// The slot of session `sid`.
pub fn slot(sid: &str) -> u32 {
    Sha256::digest(sid.as_bytes())
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_be_bytes(*b) % SLOTS)
}

/// One slot's records: `sid until` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot(Vec<(String, u64)>);

impl Slot {
    pub fn decode(bytes: &[u8]) -> Slot {
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        Slot(
            text.lines()
                .filter_map(|line| {
                    let (sid, until) = line.split_once(' ')?;
                    Some((sid.to_string(), until.parse().ok()?))
                })
                .collect(),
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for (sid, until) in &self.0 {
            out.push_str(&format!("{sid} {until}\n"));
        }
        out.into_bytes()
    }

    /// Whether `sid` is ended at `now`.
    pub fn holds(&self, sid: &str, now: u64) -> bool {
        self.0.iter().any(|(s, until)| s == sid && now < *until)
    }

    /// This slot with `sid` ended until `until`, without records past their time, and at most
    /// [`PER_SLOT`] records (the ones that expire last).
    pub fn with(&self, sid: &str, until: u64, now: u64) -> Slot {
        let mut records: Vec<(String, u64)> = self
            .0
            .iter()
            .filter(|(s, u)| s != sid && now < *u)
            .cloned()
            .collect();
        records.push((sid.to_string(), until));
        records.sort_by_key(|r| std::cmp::Reverse(r.1));
        records.truncate(PER_SLOT);
        Slot(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_stays_ended_until_its_time() {
        let slot = Slot::default().with("abc", 200, 100);
        let slot = Slot::decode(&slot.encode());
        assert!(slot.holds("abc", 199));
        assert!(!slot.holds("abc", 200));
        assert!(!slot.holds("abd", 150));
    }

    #[test]
    fn a_slot_forgets_what_expired_and_keeps_the_latest() {
        let mut slot = Slot::default().with("old", 50, 10);
        for i in 0..PER_SLOT + 5 {
            slot = slot.with(&format!("s{i}"), 1000 + i as u64, 60);
        }
        assert!(!slot.0.iter().any(|(s, _)| s == "old"), "expired");
        assert_eq!(slot.0.len(), PER_SLOT);
        assert!(slot.holds(&format!("s{}", PER_SLOT + 4), 900));
        assert!(!slot.holds("s0", 900), "the first to expire goes first");
    }

    #[test]
    fn junk_decodes_to_nothing_and_slots_spread() {
        assert_eq!(Slot::decode(b"\xff\xfe junk"), Slot::default());
        assert!(slot("a") < SLOTS);
        assert_ne!(slot("a"), slot("b"));
    }
}
