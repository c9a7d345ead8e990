//! Browser sessions as the whole Envoy process knows them (shared data, seen by every worker):
//! the sessions ended at logout, and the refreshes under way or just done (one per session per
//! process, see [`crate::session::renewal`]).

use super::shared_data;
use crate::online::TokenKey;
use crate::session::ended::{self, EndedSessions, Slot};
use crate::session::renewal::{self, Found, Renewal};
use proxy_wasm::hostcalls;
use std::cell::RefCell;

fn key(sid: &str) -> String {
    format!("cognito-edge-auth/v1/ended/{}", ended::slot(sid))
}

/// The ended sessions in shared data.
pub struct SharedEnded;

impl EndedSessions for SharedEnded {
    fn is_ended(&self, sid: &str, now: u64) -> bool {
        match hostcalls::get_shared_data(&key(sid)) {
            Ok((Some(bytes), _)) => Slot::decode(&bytes).holds(sid, now),
            _ => false,
        }
    }
}

/// Ends sessions in shared data, for the runtime's sign-in steps.
pub struct SharedSessions;

impl crate::runtime::signin::EndSessions for SharedSessions {
    fn end(&self, sid: &str, until: u64, now: u64) -> bool {
        end(sid, until, now)
    }
}

/// Ends session `sid` in the process until `until`; `false` if it could not be written.
pub fn end(sid: &str, until: u64, now: u64) -> bool {
    shared_data::update(&key(sid), |current| {
        let slot = current.map(Slot::decode).unwrap_or_default();
        Some(slot.with(sid, until, now).encode())
    })
}

fn renewal_key(key: &TokenKey) -> String {
    format!("cognito-edge-auth/v1/renewal/{}", key.slot)
}

fn renewal(key: &TokenKey) -> Option<Renewal> {
    match hostcalls::get_shared_data(&renewal_key(key)) {
        Ok((Some(bytes), _)) => Renewal::decode(&bytes),
        _ => None,
    }
}

/// What the refresh of `key` (a refresh token's hash) finds in the process; with
/// [`Found::Ask`] the slot is marked pending until `until_ms`, atomically, so that of two
/// workers racing one asks and the other joins. Shared data that refuses writes: ask.
pub fn claim_renewal(key: &TokenKey, until_ms: u64, now_ms: u64) -> Found {
    let mut found = Found::Ask;
    shared_data::update(&renewal_key(key), |current| {
        found = renewal::found(current.and_then(Renewal::decode).as_ref(), key, now_ms);
        (found == Found::Ask).then(|| Renewal::pending(key, until_ms).encode())
    });
    found
}

/// What became of the refresh of `key`, for the requests that joined it.
pub fn renewal_found(key: &TokenKey, now_ms: u64) -> Found {
    renewal::found(renewal(key).as_ref(), key, now_ms)
}

/// Whether a request waiting for the refresh of `key` may go on.
pub fn renewal_settled(key: &TokenKey, now_ms: u64) -> bool {
    renewal::settled(renewal(key).as_ref(), key, now_ms)
}

/// The renewals this worker wrote, until when: their slots are emptied after that (a renewed
/// session's cookies are a few KB).
#[derive(Default)]
pub struct Written(RefCell<Vec<(TokenKey, u64)>>);

impl Written {
    /// Keeps `settled` (a renewed or failed refresh) for the process.
    pub fn settle(&self, key: &TokenKey, settled: &Renewal) {
        let _ = hostcalls::set_shared_data(&renewal_key(key), Some(&settled.encode()), None);
        self.0.borrow_mut().push((key.clone(), settled.until_ms));
    }

    /// Empties the slots of this worker's renewals that are over, unless another refresh has
    /// taken the slot since.
    pub fn sweep(&self, now_ms: u64) {
        let over: Vec<TokenKey> = {
            let mut written = self.0.borrow_mut();
            let (over, current) = written.drain(..).partition(|(_, until)| *until <= now_ms);
            *written = current;
            over.into_iter().map(|(key, _)| key).collect()
        };
        for key in over {
            shared_data::update(&renewal_key(&key), |current| {
                let r = current.and_then(Renewal::decode)?;
                (r.key == key.hex && r.until_ms <= now_ms).then(Vec::new)
            });
        }
    }
}
