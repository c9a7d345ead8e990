//! The online check of Cognito access tokens: is a token that verifies offline still live in
//! Cognito (not signed out with `GlobalSignOut`, `AdminUserGlobalSignOut` or `RevokeToken`)?
//!
//! The filter asks with `GetUser`, which needs no AWS credentials: the access token is the
//! credential. Answers are kept for `cache_seconds` in shared data, so every worker of the
//! process uses them; they are keyed by a SHA-256 of the token (never the token), in a fixed
//! number of slots so that a flood of distinct tokens cannot grow memory without bound.
//!
//! Everything here is pure: the core asks for a check ([`crate::decision::Decision::Check`]),
//! the glue makes the call, turns the response into an [`Answer`] with [`answer_of`], stores
//! the [`Record`] and decides the request again.

use crate::config::{Config, TokenUse, WhenUnreachable};
use crate::verify::Claims;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `X-Amz-Target` of the call.
pub const GET_USER_TARGET: &str = "AWSCognitoIdentityProviderService.GetUser";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Answers live in this many shared-data slots per provider (a newer answer whose hash
/// falls in the same slot replaces an older one).
pub const SLOTS: u32 = 65_536;
/// An "unreachable" answer is kept this long (or `cache_seconds`, if shorter) before the
/// next request asks again.
pub const UNREACHABLE_RETRY_MS: u64 = 5_000;
/// How long a client is told to wait when Cognito cannot be reached or too many checks are
/// under way.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// What Cognito said about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// `GetUser` succeeded: the token is live.
    Active,
    /// `NotAuthorizedException` (signed out, revoked, expired) or `UserNotFoundException`.
    Revoked,
    /// No answer, a timeout, a 5xx, throttling or anything else: we do not know.
    Unreachable,
}

/// A kept answer, as stored in shared data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The token's SHA-256, hex: a slot holds one token's answer at a time.
    pub key: String,
    pub answer: Answer,
    /// Valid until this time (ms since the epoch).
    pub until_ms: u64,
}

/// Where the kept answers come from (the glue reads shared data; tests use a map).
pub trait Answers {
    /// The record in the slot of `key` for provider `provider`, if any.
    fn record(&self, provider: usize, key: &TokenKey) -> Option<Record>;
}

/// No answers at all (every token needs a check).
pub struct NoAnswers;

impl Answers for NoAnswers {
    fn record(&self, _: usize, _: &TokenKey) -> Option<Record> {
        None
    }
}

/// The kept answers, with one token's read as "unreachable": for a request that cannot
/// wait for its check any longer (the call could not be made, or never answered).
pub struct AsUnreachable<'a> {
    pub inner: &'a dyn Answers,
    pub key: &'a TokenKey,
}

impl Answers for AsUnreachable<'_> {
    fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
        if key == self.key {
            return Some(Record {
                key: key.hex.clone(),
                answer: Answer::Unreachable,
                until_ms: u64::MAX,
            });
        }
        self.inner.record(provider, key)
    }
}

/// A token's SHA-256, in hex, and its slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub hex: String,
    pub slot: u32,
}

impl TokenKey {
    pub fn of(token: &str) -> TokenKey {
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let slot = digest
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_be_bytes(*b) % SLOTS);
        TokenKey { hex, slot }
    }
}

/// The kept answer for `key` at `now_ms`, if there is a current one for this very token.
pub fn lookup(
    answers: &dyn Answers,
    provider: usize,
    key: &TokenKey,
    now_ms: u64,
) -> Option<Answer> {
    answers
        .record(provider, key)
        .filter(|r| r.key == key.hex && now_ms < r.until_ms)
        .map(|r| r.answer)
}

/// The record to keep for `answer`: `cache_ms` for a definite answer, a short while for
/// "unreachable" (so a Cognito outage costs one call per token per few seconds).
pub fn record(key: &TokenKey, answer: Answer, now_ms: u64, cache_ms: u64) -> Record {
    let keep = match answer {
        Answer::Active | Answer::Revoked => cache_ms,
        Answer::Unreachable => UNREACHABLE_RETRY_MS.min(cache_ms),
    };
    Record {
        key: key.hex.clone(),
        answer,
        until_ms: now_ms.saturating_add(keep),
    }
}

/// What `GetUser`'s response means: HTTP status (`None`: no response) and body.
pub fn answer_of(status: Option<u32>, body: &[u8]) -> Answer {
    #[derive(Deserialize)]
    struct AwsError {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    match status {
        Some(200) => Answer::Active,
        Some(400) => {
            let kind = serde_json::from_slice::<AwsError>(body)
                .ok()
                .and_then(|e| e.kind)
                .unwrap_or_default();
            // The type may carry a namespace prefix: `…#NotAuthorizedException`.
            let name = kind.rsplit('#').next().unwrap_or_default();
            match name {
                "NotAuthorizedException" | "UserNotFoundException" => Answer::Revoked,
                _ => Answer::Unreachable,
            }
        }
        _ => Answer::Unreachable,
    }
}

/// What the online check makes of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to check, or a live token (or Cognito unreachable and `allow`): go on.
    Pass,
    /// An `active` route, and a token that cannot be checked (an ID token, or a provider
    /// without `online_check`).
    NotCheckable,
    /// Cognito said the token is dead.
    Revoked,
    /// Cognito cannot be reached and `when_unreachable` is `deny`.
    Unavailable,
    /// No current answer: ask Cognito about the token with this key.
    Ask(TokenKey),
}

/// The online check for a verified token, where its provider has one and the token is an
/// access token, on every request (`every_request`) or on an `active` route (`needs_active`).
pub fn step(
    config: &Config,
    claims: &Claims,
    token: &str,
    needs_active: bool,
    answers: &dyn Answers,
    now: u64,
) -> Step {
    let check = config
        .providers
        .get(claims.provider)
        .and_then(|p| p.online_check.as_ref())
        .filter(|_| claims.token_use == Some(TokenUse::Access));
    let Some(check) = check.filter(|c| c.every_request || needs_active) else {
        return if needs_active {
            Step::NotCheckable
        } else {
            Step::Pass
        };
    };
    let key = TokenKey::of(token);
    match lookup(answers, claims.provider, &key, now.saturating_mul(1000)) {
        Some(Answer::Active) => Step::Pass,
        Some(Answer::Revoked) => Step::Revoked,
        Some(Answer::Unreachable) => match check.when_unreachable {
            WhenUnreachable::Allow => Step::Pass,
            WhenUnreachable::Deny => Step::Unavailable,
        },
        None => Step::Ask(key),
    }
}

/// The body of the `GetUser` call for `token`. Serialized by serde, so a token cannot
/// break out of its string (it is a compact JWT anyway).
pub fn get_user_body(token: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "AccessToken": token })).unwrap_or_default()
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<(usize, u32), Record>);

    impl Answers for Map {
        fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
            self.0.get(&(provider, key.slot)).cloned()
        }
    }

    #[test]
    fn get_user_answers() {
        assert_eq!(
            answer_of(Some(200), b"{\"Username\":\"alice\"}"),
            Answer::Active
        );
        let e = |t: &str| format!("{{\"__type\":\"{t}\",\"message\":\"x\"}}").into_bytes();
        assert_eq!(
            answer_of(Some(400), &e("NotAuthorizedException")),
            Answer::Revoked,
            "moto and Cognito after GlobalSignOut"
        );
        assert_eq!(
            answer_of(
                Some(400),
                &e("com.amazonaws.cognito#NotAuthorizedException")
            ),
            Answer::Revoked
        );
        assert_eq!(
            answer_of(Some(400), &e("UserNotFoundException")),
            Answer::Revoked
        );
        for (status, body) in [
            (Some(400), e("TooManyRequestsException")),
            (Some(400), b"not json".to_vec()),
            (Some(403), e("NotAuthorizedException")),
            (Some(500), Vec::new()),
            (Some(503), Vec::new()),
            (None, Vec::new()),
        ] {
            assert_eq!(answer_of(status, &body), Answer::Unreachable, "{status:?}");
        }
    }

    #[test]
    fn keys_are_hashes_never_the_token() {
        let a = TokenKey::of("eyJhbGciOi.payload.sig");
        assert_eq!(a.hex.len(), 64);
        assert!(!a.hex.contains("eyJ"));
        assert!(a.slot < SLOTS);
        assert_eq!(a, TokenKey::of("eyJhbGciOi.payload.sig"));
        assert_ne!(a.hex, TokenKey::of("eyJhbGciOi.payload.siG").hex);
        let body = String::from_utf8(get_user_body("t\"x")).unwrap();
        assert_eq!(body, r#"{"AccessToken":"t\"x"}"#);
    }

    #[test]
    fn answers_are_kept_for_their_time_and_only_for_their_token() {
        let key = TokenKey::of("token-a");
        let t = 1_800_000_000_000;
        let mut m = Map(HashMap::new());
        assert_eq!(lookup(&m, 0, &key, t), None, "never asked");
        m.0.insert((0, key.slot), record(&key, Answer::Active, t, 60_000));
        assert_eq!(lookup(&m, 0, &key, t + 59_999), Some(Answer::Active));
        assert_eq!(lookup(&m, 0, &key, t + 60_000), None, "then asked again");
        assert_eq!(lookup(&m, 1, &key, t), None, "another provider's slot");
        // Another token in the same slot is not this token's answer.
        let mut other = record(&key, Answer::Revoked, t, 60_000);
        other.key = TokenKey::of("token-b").hex;
        m.0.insert((0, key.slot), other);
        assert_eq!(lookup(&m, 0, &key, t), None);

        let unreachable = record(&key, Answer::Unreachable, t, 60_000);
        assert_eq!(unreachable.until_ms, t + UNREACHABLE_RETRY_MS);
        assert_eq!(
            record(&key, Answer::Unreachable, t, 1_000).until_ms,
            t + 1_000
        );
        assert_eq!(Record::decode(&unreachable.encode()), Some(unreachable));
        assert_eq!(Record::decode(b"junk"), None);

        // A request that cannot wait any longer reads its token's answer as unreachable,
        // whatever is kept (and only its own).
        let other = TokenKey::of("token-c");
        m.0.insert((0, other.slot), record(&other, Answer::Active, t, 60_000));
        let overlay = AsUnreachable {
            inner: &m,
            key: &key,
        };
        assert_eq!(lookup(&overlay, 0, &key, t), Some(Answer::Unreachable));
        assert_eq!(
            lookup(&overlay, 0, &key, u64::MAX - 1),
            Some(Answer::Unreachable)
        );
        assert_eq!(lookup(&overlay, 0, &other, t), Some(Answer::Active));
    }

    use crate::cache::TokenCache;
    use crate::decision::{decide_with, Decision, Denied, Lists, Request, NOT_CHECKABLE, REVOKED};
    use crate::signature::PureRust;
    use crate::verify::tests::{access_claims, id_claims, keys, sign, NOW};
    use serde_json::json;

    fn bearer(token: &str) -> Vec<(String, Vec<u8>)> {
        vec![(
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        )]
    }

    fn denied(d: Decision) -> Denied {
        match d {
            Decision::Deny(d) => d,
            other => panic!("not denied: {other:?}"),
        }
    }

    /// Kept online answers, by token, for the tests.
    struct Kept(std::collections::HashMap<String, Record>);

    impl Answers for Kept {
        fn record(&self, _: usize, key: &TokenKey) -> Option<Record> {
            self.0.get(&key.hex).cloned()
        }
    }

    fn online_config(extra: serde_json::Value) -> Config {
        let mut online = json!({ "cluster": "cognito_idp" });
        for (k, v) in extra.as_object().unwrap() {
            online[k] = v.clone();
        }
        let full = json!({ "providers": [{
            "name": "cognito", "user_pool_id": "us-east-1_Abc123", "client_ids": ["client1"],
            "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" },
            "online_check": online,
        }], "rules": [
            { "match": { "prefix": "/admin" }, "require": { "active": true } },
            { "match": { "prefix": "/pub" }, "allow": "public" },
        ] });
        Config::parse(full.to_string().as_bytes()).unwrap()
    }

    fn decide_online(
        cfg: &Config,
        path: &'static str,
        token: &str,
        kept: &Kept,
        now: u64,
    ) -> Decision {
        let headers = bearer(token);
        let request = Request {
            renewed: false,
            method: b"GET",
            path: path.as_bytes(),
            headers: &headers,
        };
        let lists = Lists {
            ended: &crate::session::ended::NoneEnded,
            fetched: &[],
            online: kept,
        };
        decide_with(
            &request,
            cfg,
            &keys(),
            &lists,
            &PureRust,
            &mut TokenCache::new(16),
            now,
            &|| None,
        )
    }

    #[test]
    fn the_online_check_asks_then_decides_on_the_kept_answer() {
        let cfg = online_config(json!({}));
        let access = sign("key1", "k1", &access_claims());
        let id = sign("key1", "k1", &id_claims());
        let mut kept = Kept(Default::default());

        // Not an active route, not every request: no check.
        assert!(matches!(
            decide_online(&cfg, "/", &access, &kept, NOW),
            Decision::Allow(_)
        ));
        // An active route: check this access token, then resume.
        let Decision::Check(check) = decide_online(&cfg, "/admin", &access, &kept, NOW) else {
            panic!("no check asked")
        };
        assert_eq!(
            (check.provider, check.key.clone()),
            (0, TokenKey::of(&access))
        );
        assert_eq!(check.token, access);
        // An ID token cannot be checked: refused on an active route, with a reason.
        let d = denied(decide_online(&cfg, "/admin", &id, &kept, NOW));
        assert_eq!((d.response.status, d.reason), (401, "not_checkable"));
        assert!(d.response.body.contains(NOT_CHECKABLE));

        let now_ms = NOW * 1000;
        let keep = |kept: &mut Kept, answer| {
            kept.0.insert(
                check.key.hex.clone(),
                record(&check.key, answer, now_ms, 60_000),
            );
        };
        keep(&mut kept, Answer::Active);
        assert!(matches!(
            decide_online(&cfg, "/admin", &access, &kept, NOW),
            Decision::Allow(_)
        ));
        assert!(
            matches!(
                decide_online(&cfg, "/admin", &access, &kept, NOW + 60),
                Decision::Check(_)
            ),
            "asked again once the answer is older than cache_seconds"
        );
        keep(&mut kept, Answer::Revoked);
        let d = denied(decide_online(&cfg, "/admin", &access, &kept, NOW));
        assert_eq!((d.response.status, d.reason), (401, "revoked"));
        assert!(d.response.body.contains(REVOKED));
        assert_eq!(d.provider.as_deref(), Some("cognito"));
        keep(&mut kept, Answer::Unreachable);
        let d = denied(decide_online(&cfg, "/admin", &access, &kept, NOW));
        assert_eq!(
            (d.response.status, d.reason),
            (503, "online_unavailable"),
            "fail closed"
        );
        assert!(d
            .response
            .headers
            .iter()
            .any(|(n, v)| n == "retry-after" && v == "1"));

        let open = online_config(json!({ "when_unreachable": "allow" }));
        assert!(matches!(
            decide_online(&open, "/admin", &access, &kept, NOW),
            Decision::Allow(_)
        ));

        // every_request: checked on every route, also public ones with a token; ID tokens pass
        // (they cannot be checked) except on active routes.
        let every = online_config(json!({ "every_request": true }));
        let fresh = Kept(Default::default());
        assert!(matches!(
            decide_online(&every, "/", &access, &fresh, NOW),
            Decision::Check(_)
        ));
        assert!(matches!(
            decide_online(&every, "/pub", &access, &fresh, NOW),
            Decision::Check(_)
        ));
        assert!(matches!(
            decide_online(&every, "/", &id, &fresh, NOW),
            Decision::Allow(_)
        ));
    }
}
