//! Browser sessions as the whole Envoy process knows them (shared data, seen by every worker):
//! the sessions ended at logout.

use crate::session::ended::{self, EndedSessions, Slot};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// How often a compare-and-swap is retried when another worker wrote in between.
const CAS_TRIES: usize = 8;

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
    let key = key(sid);
    for _ in 0..CAS_TRIES {
        let (slot, cas) = match hostcalls::get_shared_data(&key) {
            Ok((Some(bytes), cas)) => (Slot::decode(&bytes), cas),
            _ => (Slot::default(), None),
        };
        let next = slot.with(sid, until, now).encode();
        match hostcalls::set_shared_data(&key, Some(&next), cas) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(_) => return false,
        }
    }
    false
}
