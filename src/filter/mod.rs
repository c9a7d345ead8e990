//! The only code that talks to proxy-wasm.

mod host_crypto;
pub mod http;
mod metrics;

mod online;
mod revocation;
pub mod root;
mod sessions;
mod shared;
mod shared_data;

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch; 0 if the host clock is before it.
fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
