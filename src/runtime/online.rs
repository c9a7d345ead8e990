//! The online check's bookkeeping, the same for both hosts: when a check the core asks for is
//! made, joined, refused for the fair share or skipped while the provider backs off; what an
//! answer means and what is kept of it; the log lines and counters around it.
//!
//! What every worker of the process shares (the kept answers, the pending markers that keep the
//! calls per token to one, the back-offs) sits behind [`Kept`]: shared data in the .wasm, a
//! process-wide structure in the native module. The calls a worker has under way are an
//! [`InFlight`] per worker in both.

use super::metrics;
use super::{Call, Host};
use crate::config::Config;
use crate::decision::{Check, Decision, NOT_CHECKABLE_SCOPE_REASON};
use crate::online::{self, Answer, Answers, Backoff, Claim, Record, TokenKey};
use log::{debug, warn};
use std::collections::HashMap;

/// A waiting request gives up this long after its call's timeout (the call's own timeout
/// answers first; this is for a call whose answer never arrives).
pub const WAIT_GRACE_MS: u64 = 2_000;
/// `GetUser` answers are small; more than this is not read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the workers of one process share about online checks.
pub trait Kept: Answers {
    /// Marks `key`'s slot as being asked about until `until_ms`, unless a worker is asking
    /// already or has just answered ([`Claim::Join`] then). Atomic: of two workers racing for
    /// one token, one asks and the other joins.
    fn claim(&self, provider: usize, key: &TokenKey, until_ms: u64, now_ms: u64) -> Claim;
    /// Keeps `record` (an answer, or "unreachable" for a call that could not be made).
    fn keep(&self, provider: usize, key: &TokenKey, record: &Record);
    /// The provider's current back-off after throttling, if any.
    fn backoff(&self, provider: usize) -> Option<Backoff>;
    fn set_backoff(&self, provider: usize, backoff: Backoff);
    /// Whether this is the first time (in the process, as far as the host can tell) that the
    /// provider's unchecked tokens are to be explained in the log.
    fn first_note(&self, provider: usize) -> bool;
}

/// One call under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flight {
    pub provider: usize,
    pub key: TokenKey,
    pub deadline_ms: u64,
    /// Whose check it is (`sub`), for the fair share.
    pub principal: String,
}

/// One worker's calls under way, by the id the host gave each.
#[derive(Debug, Default)]
pub struct InFlight {
    calls: HashMap<u64, Flight>,
}

impl InFlight {
    /// The call `id`, taken out (its answer came).
    pub fn take(&mut self, id: u64) -> Option<Flight> {
        self.calls.remove(&id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.calls.contains_key(&id)
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// What became of a check the core asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Pause the request until the answer, or until `deadline_ms` at the latest.
    Wait { deadline_ms: u64 },
    /// Too many checks under way on this worker, or for this principal: answer 503.
    Busy,
    /// The call could not be made: decide as if Cognito were unreachable.
    Failed,
    /// Cognito throttled the provider a moment ago: no call, decide as if unreachable.
    BackedOff,
}

/// Starts the check, or joins one under way for the same token on this worker or another
/// (the slot's pending marker): one call per token per process. The call goes out through
/// `host`, and its id is remembered in `flights`.
pub fn start(
    config: &Config,
    kept: &dyn Kept,
    flights: &mut InFlight,
    host: &dyn Host,
    check: &Check,
    now_ms: u64,
) -> Started {
    let Some((provider, oc)) = config
        .providers
        .get(check.provider)
        .and_then(|p| Some((p, p.online_check.as_ref()?)))
    else {
        return Started::Failed;
    };
    let deadline_ms = now_ms
        .saturating_add(oc.timeout_ms)
        .saturating_add(WAIT_GRACE_MS);
    let wait = Started::Wait { deadline_ms };
    flights.calls.retain(|_, c| now_ms < c.deadline_ms);
    if flights.calls.values().any(|c| c.key == check.key) {
        return wait;
    }
    if kept
        .backoff(check.provider)
        .is_some_and(|b| b.holds(now_ms))
    {
        host.count(&metrics::online(&provider.name, "backed_off"), 1);
        return Started::BackedOff;
    }
    let principal_calls = flights
        .calls
        .values()
        .filter(|c| c.principal == check.principal)
        .count();
    if flights.calls.len() >= oc.max_in_flight || principal_calls >= oc.max_in_flight_per_principal
    {
        return Started::Busy;
    }
    if kept.claim(check.provider, &check.key, deadline_ms, now_ms) == Claim::Join {
        debug!("cognito-edge-auth: online check: joined the call of another worker");
        return wait;
    }
    let body = online::get_user_body(&check.token);
    let call = Call {
        cluster: &oc.cluster,
        headers: vec![
            (":method", "POST"),
            (":path", "/"),
            (":authority", oc.authority.as_str()),
            ("content-type", online::CONTENT_TYPE),
            ("x-amz-target", online::GET_USER_TARGET),
        ],
        body: &body,
        timeout_ms: oc.timeout_ms,
    };
    match host.call(&call) {
        Ok(id) => {
            flights.calls.insert(
                id,
                Flight {
                    provider: check.provider,
                    key: check.key.clone(),
                    deadline_ms,
                    principal: check.principal.clone(),
                },
            );
            wait
        }
        Err(e) => {
            debug!(
                "cognito-edge-auth: online check: cannot call cluster {}: {e}",
                oc.cluster
            );
            // Requests of other workers that joined this call are answered at once.
            let cache_ms = oc.cache_seconds.saturating_mul(1000);
            let record = online::record(&check.key, Answer::Unreachable, now_ms, cache_ms);
            kept.keep(check.provider, &check.key, &record);
            Started::Failed
        }
    }
}

/// The answer to `flight`'s call (`status` `None`: none came): read by kind, counted, logged,
/// kept; a throttling starts or doubles the provider's back-off. The host then decides again
/// the requests that wait for it.
#[allow(clippy::too_many_arguments)]
pub fn finished(
    config: &Config,
    kept: &dyn Kept,
    host: &dyn Host,
    flight: &Flight,
    status: Option<u32>,
    error_type: Option<&[u8]>,
    body: &[u8],
    now_ms: u64,
) -> Record {
    let body = body.get(..MAX_ANSWER_BYTES).unwrap_or(body);
    let answer = online::answer_of(status, error_type, body);
    let provider = config.providers.get(flight.provider);
    let name = provider.map_or("-", |p| p.name.as_str());
    let cache_ms = provider
        .and_then(|p| p.online_check.as_ref())
        .map_or(0, |c| c.cache_seconds.saturating_mul(1000));
    debug!(
        "cognito-edge-auth: provider {name}: online check: {answer:?} (HTTP {})",
        status.map_or_else(|| "none".to_string(), |s| s.to_string())
    );
    if let Some(kind) = metrics::online_answer(answer) {
        host.count(&metrics::online(name, kind), 1);
    }
    match answer {
        Answer::Throttled => {
            let next = Backoff::after_throttling(kept.backoff(flight.provider), now_ms);
            kept.set_backoff(flight.provider, next);
            warn!(
                "cognito-edge-auth: provider {name}: Cognito throttles GetUser; no online check for {} ms",
                next.step_ms
            );
        }
        Answer::NotCheckable => warn!(
            "cognito-edge-auth: provider {name}: Cognito says an access token with the scope {} \
             does not have the scopes GetUser requires; it is treated as not checkable",
            online::ADMIN_SCOPE
        ),
        _ => {}
    }
    let record = online::record(&flight.key, answer, now_ms, cache_ms);
    kept.keep(flight.provider, &flight.key, &record);
    record
}

/// Counts and explains a decision on an access token that `GetUser` cannot judge (passed
/// unchecked, or refused on an `active` route): explained in the log once per provider.
pub fn note_unchecked(config: &Config, kept: &dyn Kept, host: &dyn Host, decision: &Decision) {
    let provider = match decision {
        Decision::Allow(a) => a.unchecked,
        Decision::Deny(d) if d.reason == NOT_CHECKABLE_SCOPE_REASON => {
            let name = d.provider.as_deref();
            config
                .providers
                .iter()
                .position(|p| Some(p.name.as_str()) == name)
        }
        _ => None,
    };
    let Some(p) = provider.and_then(|i| Some((i, config.providers.get(i)?))) else {
        return;
    };
    host.count(&metrics::online(&p.1.name, "unchecked"), 1);
    if !kept.first_note(p.0) {
        return;
    }
    warn!(
        "cognito-edge-auth: provider {}: access tokens without the scope {} are not checked online: \
         Cognito's GetUser refuses them. They are refused on routes with \"active\": true and pass \
         unchecked under every_request. Tokens from the SDK's InitiateAuth carry the scope; for \
         hosted-UI sign-ins, allow it in the app client (AllowedOAuthScopes) and ask for it in the \
         authorize request's scope; client-credentials tokens never carry it",
        p.1.name,
        online::ADMIN_SCOPE
    );
}

/// The denial of a check that does not fit the fair share (503 `online_busy`).
pub fn busy() -> crate::decision::Denied {
    crate::decision::Denied {
        response: crate::response::unavailable(
            online::RETRY_AFTER_SECONDS,
            "too many token checks are under way",
        ),
        reason: "online_busy",
        error: None,
        provider: None,
        principal: None,
        login: None,
        sign_in: false,
    }
}

/// A check that does not fit the fair share: answered 503, or in report-only mode (where
/// `unreachable`, the request decided with Cognito read as unreachable, is forwarded) the 503
/// it would have had, reported.
pub enum WhenBusy {
    Answer(crate::decision::Denied),
    Report(crate::decision::Reported),
}

pub fn when_busy(unreachable: &Decision) -> WhenBusy {
    let denied = busy();
    match unreachable {
        Decision::Allow(a) if a.reported.is_some() => WhenBusy::Report(crate::decision::Reported {
            status: denied.response.status,
            reason: denied.reason,
            provider: None,
            principal: None,
            error: None,
        }),
        _ => WhenBusy::Answer(denied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Memory {
        records: RefCell<HashMap<(usize, u32), Record>>,
        backoff: RefCell<Option<Backoff>>,
        calls: RefCell<Vec<String>>,
        counts: RefCell<Vec<String>>,
        kept: RefCell<Vec<Record>>,
        fail: bool,
    }

    impl Answers for Memory {
        fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
            self.records.borrow().get(&(provider, key.slot)).cloned()
        }
    }

    impl Kept for Memory {
        fn claim(&self, provider: usize, key: &TokenKey, until_ms: u64, now_ms: u64) -> Claim {
            let mut r = self.records.borrow_mut();
            let c = online::claim(r.get(&(provider, key.slot)), key, now_ms);
            if c == Claim::Ask {
                r.insert((provider, key.slot), online::pending(key, until_ms));
            }
            c
        }
        fn keep(&self, _: usize, _: &TokenKey, record: &Record) {
            self.kept.borrow_mut().push(record.clone());
        }
        fn backoff(&self, _: usize) -> Option<Backoff> {
            *self.backoff.borrow()
        }
        fn set_backoff(&self, _: usize, b: Backoff) {
            *self.backoff.borrow_mut() = Some(b);
        }
        fn first_note(&self, _: usize) -> bool {
            true
        }
    }

    impl Host for Memory {
        fn call(&self, call: &Call<'_>) -> Result<u64, String> {
            if self.fail {
                return Err("no".into());
            }
            self.calls.borrow_mut().push(call.cluster.to_string());
            Ok(self.calls.borrow().len() as u64)
        }
        fn count(&self, name: &str, _: u64) {
            self.counts.borrow_mut().push(name.to_string());
        }
        fn gauge(&self, _: &str, _: u64) {}
    }

    fn config() -> Config {
        Config::parse(
            serde_json::json!({ "providers": [{ "name": "p", "user_pool_id": "us-east-1_Abc",
                "client_ids": ["c"], "jwks": { "cluster": "idp", "uri": "https://idp/jwks.json" },
                "online_check": { "cluster": "idp", "max_in_flight": 2, "max_in_flight_per_principal": 1 } }] })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn check(token: &str, principal: &str) -> Check {
        Check {
            provider: 0,
            key: TokenKey::of(token),
            token: token.into(),
            principal: principal.into(),
        }
    }

    #[test]
    fn one_call_per_token_a_fair_share_and_the_bound() {
        let (c, m) = (config(), Memory::default());
        let mut f = InFlight::default();
        let a = start(&c, &m, &mut f, &m, &check("t1", "alice"), 0);
        assert!(matches!(a, Started::Wait { .. }));
        assert_eq!(start(&c, &m, &mut f, &m, &check("t1", "alice"), 0), a);
        assert_eq!(m.calls.borrow().len(), 1, "the same token joins");
        assert_eq!(
            start(&c, &m, &mut f, &m, &check("t2", "alice"), 0),
            Started::Busy,
            "alice's share is one"
        );
        assert!(matches!(
            start(&c, &m, &mut f, &m, &check("t3", "bob"), 0),
            Started::Wait { .. }
        ));
        assert_eq!(
            start(&c, &m, &mut f, &m, &check("t4", "carol"), 0),
            Started::Busy,
            "two in flight"
        );
        let flight = f.take(1).unwrap();
        let r = finished(&c, &m, &m, &flight, Some(429), None, b"", 10);
        assert_eq!(r.answer, Answer::Throttled);
        assert!(m.backoff.borrow().is_some_and(|b| b.holds(11)));
        assert_eq!(
            start(&c, &m, &mut f, &m, &check("t5", "dave"), 11),
            Started::BackedOff
        );
        assert!(m
            .counts
            .borrow()
            .contains(&"online.p.throttled".to_string()));
        assert!(m
            .counts
            .borrow()
            .contains(&"online.p.backed_off".to_string()));
    }

    #[test]
    fn a_call_that_cannot_be_made_keeps_unreachable() {
        let c = config();
        let m = Memory {
            fail: true,
            ..Memory::default()
        };
        let mut f = InFlight::default();
        assert_eq!(
            start(&c, &m, &mut f, &m, &check("t1", "a"), 0),
            Started::Failed
        );
        assert!(f.is_empty());
        assert!(m
            .kept
            .borrow()
            .iter()
            .any(|r| r.answer == Answer::Unreachable));
    }
}
