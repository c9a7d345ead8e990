//! The bound on sign-in calls to the token endpoint in flight per worker (code exchanges,
//! refreshes, revocations: each costs a call with the client secret). Junk callbacks against
//! a slow token endpoint fill this bound, answered 503 with `Retry-After`
//! ([`super::signin::busy`]), rather than the cluster's circuit breaker, which every sign-in
//! of the process shares. One per worker in both hosts (a worker's requests take and give back
//! places on its own thread).

use std::cell::Cell;
use std::rc::Rc;

/// The bound a configuration sets (`login.token_max_in_flight`; 0 without `login`).
pub fn max_in_flight(config: &crate::config::Config) -> usize {
    config.login.as_ref().map_or(0, |l| l.token.max_in_flight)
}

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
