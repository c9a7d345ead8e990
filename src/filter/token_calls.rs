//! The bound on sign-in calls to the token endpoint in flight per worker (code exchanges,
//! refreshes, revocations: each costs a call with the client secret). Junk callbacks against
//! a slow token endpoint fill this bound, answered 503 with `Retry-After`, rather than the
//! cluster's circuit breaker, which every sign-in of the process shares.

use crate::response::{self, Response};
use std::cell::Cell;
use std::rc::Rc;

/// How long a client is told to wait when the bound is full.
const RETRY_AFTER_SECONDS: u64 = 1;

/// This worker's calls in flight.
#[derive(Default)]
pub struct Bound {
    in_flight: Rc<Cell<usize>>,
}

/// One call's place in the bound, given back when dropped.
pub struct Slot(Rc<Cell<usize>>);

impl Bound {
    /// A place for one more call, if fewer than `max` are in flight.
    pub fn take(&self, max: usize) -> Option<Slot> {
        let n = self.in_flight.get();
        if n >= max {
            return None;
        }
        self.in_flight.set(n.saturating_add(1));
        Some(Slot(Rc::clone(&self.in_flight)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The answer to a request whose call does not fit.
pub fn busy() -> Response {
    response::unavailable(RETRY_AFTER_SECONDS, "too many sign-in calls are under way")
}
