//! Requests that wait for keys: whether a denied request should rather wait, and when a
//! waiting one may be decided again.

use crate::config::{Config, KeySource};
use crate::verify::VerifyError;

/// A request waiting on an unknown-kid refetch waits this long past the fetch timeout.
pub const REFETCH_GRACE_MS: u64 = 2_000;
/// Paused requests per worker (wasm) or per process (native) beyond which new ones are
/// answered at once.
pub const MAX_WAITERS: usize = 4096;

/// What a paused request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub provider: usize,
    /// Go on once the provider's completed fetches pass this (a fetch finished)…
    pub attempts: u64,
    /// …or once it has keys, if it waits for the first ones…
    pub first_keys: bool,
    /// …or at this time at the latest (ms since the epoch).
    pub deadline_ms: u64,
}

impl Wait {
    /// Whether the request may be decided again: its keys came, a fetch finished, or its wait
    /// ran out.
    pub fn ready(&self, has_keys: bool, attempts: u64, now_ms: u64) -> bool {
        now_ms >= self.deadline_ms || attempts > self.attempts || (self.first_keys && has_keys)
    }
}

/// Whether a request denied with `error` should rather wait: for a provider's first keys (up
/// to `startup_wait_ms`), or for a refetch after an unknown `kid`. `attempts` gives a
/// provider's completed fetches; `refetch` asks for an early fetch of a provider's JWKS and
/// says whether one is now due or under way (it is rate-limited).
pub fn for_denial(
    config: &Config,
    error: Option<VerifyError>,
    now_ms: u64,
    attempts: impl Fn(usize) -> u64,
    refetch: impl FnOnce(usize) -> bool,
) -> Option<Wait> {
    match error? {
        VerifyError::NoKeys { provider } if config.startup_wait_ms > 0 => Some(Wait {
            provider,
            attempts: attempts(provider),
            first_keys: true,
            deadline_ms: now_ms.saturating_add(config.startup_wait_ms),
        }),
        VerifyError::UnknownKid { provider } => {
            let KeySource::Remote(jwks) = &config.providers.get(provider)?.keys else {
                return None;
            };
            refetch(provider).then(|| Wait {
                provider,
                attempts: attempts(provider),
                first_keys: false,
                deadline_ms: now_ms
                    .saturating_add(jwks.timeout_ms)
                    .saturating_add(REFETCH_GRACE_MS),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(startup_wait_ms: u64) -> Config {
        Config::parse(
            serde_json::json!({
                "startup_wait_ms": startup_wait_ms,
                "providers": [{ "name": "p", "user_pool_id": "us-east-1_Abc",
                    "client_ids": ["c"],
                    "jwks": { "cluster": "j", "uri": "http://j/jwks.json", "timeout_ms": 1000 } }]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn no_keys_waits_for_the_first_keys_up_to_the_start_up_wait() {
        let c = config(3000);
        let w = for_denial(
            &c,
            Some(VerifyError::NoKeys { provider: 0 }),
            10,
            |_| 4,
            |_| true,
        )
        .unwrap();
        assert_eq!(
            w,
            Wait {
                provider: 0,
                attempts: 4,
                first_keys: true,
                deadline_ms: 3010
            }
        );
        assert!(!w.ready(false, 4, 100));
        assert!(w.ready(true, 4, 100), "keys came");
        assert!(w.ready(false, 5, 100), "a fetch finished");
        assert!(w.ready(false, 4, 3010), "the wait ran out");
        assert_eq!(
            for_denial(
                &config(0),
                Some(VerifyError::NoKeys { provider: 0 }),
                10,
                |_| 0,
                |_| true
            ),
            None,
            "no start-up wait configured"
        );
    }

    #[test]
    fn an_unknown_kid_waits_for_a_refetch_unless_rate_limited() {
        let c = config(0);
        let e = Some(VerifyError::UnknownKid { provider: 0 });
        let w = for_denial(&c, e, 10, |_| 1, |_| true).unwrap();
        assert!(!w.first_keys);
        assert_eq!(w.deadline_ms, 10 + 1000 + REFETCH_GRACE_MS);
        assert!(!w.ready(true, 1, 11), "old keys are not the new ones");
        assert_eq!(for_denial(&c, e, 10, |_| 1, |_| false), None);
    }

    #[test]
    fn other_denials_do_not_wait() {
        let c = config(3000);
        assert_eq!(for_denial(&c, None, 10, |_| 0, |_| true), None);
        assert_eq!(
            for_denial(&c, Some(VerifyError::Expired), 10, |_| 0, |_| true),
            None
        );
    }
}
