//! The native host: the same filter as an Envoy dynamic module (`libcognito_edge_auth.so`,
//! `envoy.filters.http.dynamic_modules`), for Envoy 1.40.
//!
//! - `abi`: the binding to Envoy's C ABI, and (`abi::hooks`) the hooks it exports; all `unsafe`
//!   is there.
//! - `config`: the configuration shared by every worker thread, the JWKS fetches (on the main
//!   thread, once per process) and the requests waiting for keys.
//! - `filter`: one request: headers → the core's decision → headers rewritten or an answer.
//! - `crypto`: signatures verified natively with `aws-lc-rs` (chosen by measurement,
//!   docs/benchmarks.md).
//! - `metrics`: Envoy counters and gauges, named as in the .wasm build.
//! - `online`, `sessions`: what every worker shares — the online check's answers, the sessions
//!   ended at logout.
//! - `filter::token_endpoint`: browser sign-in's calls to the token endpoint for one request.
//! - `probe` (feature `panic-probe`, tests only): a request header that makes a hook panic.

mod abi;
mod config;
mod crypto;
mod filter;
mod metrics;
mod online;
#[cfg(feature = "panic-probe")]
mod probe;
mod sessions;

pub use crypto::AwsLc;

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Once per process (`on_program_init`): logs go to Envoy's log (component `dynamic_modules`),
/// and a panic's default report to stderr is replaced by one log line from the hook that
/// caught it.
pub(super) fn init() {
    let _ = log::set_logger(&EnvoyLog);
    log::set_max_level(log::LevelFilter::Trace);
    std::panic::set_hook(Box::new(|_| {}));
}

/// A hook caught a panic: logged once per process (the count is in the `panics` counter…
/// of the configuration, when the hook has one).
pub(super) fn panicked(hook: &str, payload: &Box<dyn Any + Send>) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log::error!(
            "cognito-edge-auth: panic in {hook} ({what}); the request failed closed (further panics are counted in cognito_edge_auth.panics, not logged)"
        );
    }
}

/// A lock that survives a panic of its last holder: every value behind the module's locks is
/// replaced whole, so what a panicking holder left is whole too.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds since the epoch; 0 if the clock is before it.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The `log` facade onto Envoy's logger, at Envoy's level for dynamic modules.
struct EnvoyLog;

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        abi::log_enabled(metadata.level())
    }

    fn log(&self, record: &log::Record) {
        if abi::log_enabled(record.level()) {
            abi::log(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}
