//! Host-agnostic orchestration around the core: when to fetch a provider's JWKS and what to
//! make of the answer ([`fetch`]), when a request waits for keys and when it may go on
//! ([`wait`]), and the names of the metrics ([`metrics`]).
//!
//! Nothing here knows proxy-wasm or Envoy's dynamic-module ABI: a host makes calls to a
//! cluster and counts through the small [`Host`] interface, and logs through the `log` facade.
//! The native host (src/hosts/native) runs on all of it. The wasm glue (src/filter) uses the
//! waits, the online check's and sign-in's bookkeeping and the metric names; it schedules its
//! JWKS fetches itself, through the lease in shared data ([`crate::refresh`]), because each of
//! its workers is a VM of its own and one of them must fetch for the process.

pub mod fetch;
pub mod log;
pub mod metrics;
pub mod online;
pub mod signin;
pub mod token_calls;
pub mod wait;

/// A call to an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    pub cluster: &'a str,
    /// Including `:method`, `:path` and `:authority`.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    pub timeout_ms: u64,
}

/// A call's answer: its `:status` (`None`: no answer, a timeout or a reset) and its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    pub status: Option<u32>,
    pub body: &'a [u8],
}

impl<'a> Answer<'a> {
    pub fn new(status: Option<u32>, body: &'a [u8]) -> Answer<'a> {
        Answer { status, body }
    }
}

/// What the runtime needs from a host.
pub trait Host {
    /// Starts `call`; its answer comes back to the runtime under the returned id.
    fn call(&self, call: &Call<'_>) -> Result<u64, String>;
    /// Adds `by` to the counter `name` (a name from [`metrics`]).
    fn count(&self, name: &str, by: u64);
    /// Sets the gauge `name` (a name from [`metrics`]).
    fn gauge(&self, name: &str, value: u64);
}
