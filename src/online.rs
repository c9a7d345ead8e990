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
pub use crate::config::login::ADMIN_SCOPE;
/// After Cognito throttles (`TooManyRequestsException`), no check of the provider is made for
/// this long; each throttling soon after a back-off doubles it, up to [`BACKOFF_MAX_MS`].
pub const BACKOFF_FIRST_MS: u64 = 1_000;
pub const BACKOFF_MAX_MS: u64 = 30_000;

/// What Cognito said about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// `GetUser` succeeded: the token is live.
    Active,
    /// `NotAuthorizedException` (signed out, revoked, expired, user disabled),
    /// `UserNotFoundException`, or an account that must sign in again
    /// (`PasswordResetRequiredException`, `UserNotConfirmedException`).
    Revoked,
    /// `NotAuthorizedException` "Access Token does not have required scopes": `GetUser`
    /// cannot judge this token (it lacks [`ADMIN_SCOPE`]); it is not revoked.
    NotCheckable,
    /// `TooManyRequestsException` (or HTTP 429): read as unreachable, and the provider backs off.
    Throttled,
    /// No answer, a timeout, a 5xx, or anything else: we do not know.
    Unreachable,
    /// Not an answer: a worker is asking Cognito about this token right now (the marker that
    /// keeps the calls per token to one while workers race).
    Pending,
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
        .filter(|r| r.key == key.hex && now_ms < r.until_ms && r.answer != Answer::Pending)
        .map(|r| r.answer)
}

/// What a worker about to ask Cognito about `key` finds in its slot (`current`, at `now_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody is asking and there is no current answer: mark the slot and ask.
    Ask,
    /// Another worker is asking (or has just answered): wait for its answer.
    Join,
}

/// Whether to ask, given the slot's record.
pub fn claim(current: Option<&Record>, key: &TokenKey, now_ms: u64) -> Claim {
    match current {
        Some(r) if r.key == key.hex && now_ms < r.until_ms => Claim::Join,
        _ => Claim::Ask,
    }
}

/// The marker a worker writes before it asks: valid until `until_ms`, after which another
/// worker asks again (its call went missing).
pub fn pending(key: &TokenKey, until_ms: u64) -> Record {
    Record {
        key: key.hex.clone(),
        answer: Answer::Pending,
        until_ms,
    }
}

/// The record to keep for `answer`: `cache_ms` for a definite answer, a short while for
/// "unreachable" (so a Cognito outage costs one call per token per few seconds).
pub fn record(key: &TokenKey, answer: Answer, now_ms: u64, cache_ms: u64) -> Record {
    let keep = match answer {
        Answer::Active | Answer::Revoked | Answer::NotCheckable => cache_ms,
        Answer::Throttled | Answer::Unreachable | Answer::Pending => {
            UNREACHABLE_RETRY_MS.min(cache_ms)
        }
    };
    Record {
        key: key.hex.clone(),
        answer,
        until_ms: now_ms.saturating_add(keep),
    }
}

/// What `GetUser`'s response means: HTTP status (`None`: no response), the `x-amzn-errortype`
/// header and the body. Cognito names an error in the body's `__type` (possibly with a
/// namespace, `com.amazonaws…#NotAuthorizedException`) and in the header
/// (`NotAuthorizedException:http://internal.amazon.com/…`); its `message` tells the kinds of
/// `NotAuthorizedException` apart. Any shape not listed here fails closed as unreachable.
pub fn answer_of(status: Option<u32>, error_type: Option<&[u8]>, body: &[u8]) -> Answer {
    #[derive(Deserialize)]
    struct AwsBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
        #[serde(rename = "Username")]
        username: Option<String>,
    }
    let parsed = serde_json::from_slice::<AwsBody>(body).ok();
    match status {
        Some(200) if parsed.as_ref().is_some_and(|b| b.username.is_some()) => Answer::Active,
        Some(429) => Answer::Throttled,
        Some(400) => {
            let (kind, message) = parsed.map_or((None, None), |b| (b.kind, b.message));
            let header = error_type
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| h.split(':').next())
                .map(str::to_string);
            let kind = kind.or(header).unwrap_or_default();
            error_answer(
                kind.rsplit('#').next().unwrap_or_default().trim(),
                &message.unwrap_or_default(),
            )
        }
        _ => Answer::Unreachable,
    }
}

/// A 400's `__type` (without namespace) and `message`, read.
fn error_answer(kind: &str, message: &str) -> Answer {
    match kind {
        "NotAuthorizedException"
            if message
                .to_ascii_lowercase()
                .contains("does not have required scopes") =>
        {
            Answer::NotCheckable
        }
        // Revoked, expired, "User is disabled.", or a message we do not know: the issuer
        // refuses this token, which is what revoked means to the filter.
        "NotAuthorizedException"
        | "UserNotFoundException"
        | "PasswordResetRequiredException"
        | "UserNotConfirmedException" => Answer::Revoked,
        "TooManyRequestsException" | "ThrottlingException" => Answer::Throttled,
        _ => Answer::Unreachable,
    }
}

/// Whether `GetUser` can judge the access token of `claims`: its `scope` claim holds
/// [`ADMIN_SCOPE`] (tokens of the SDK's `InitiateAuth` do; hosted-UI tokens only when the app
/// client allows the scope and the sign-in asked for it; client-credentials tokens never).
pub fn checkable(claims: &Claims) -> bool {
    claims
        .all
        .get("scope")
        .and_then(|s| s.as_str())
        .is_some_and(|s| s.split(' ').any(|scope| scope == ADMIN_SCOPE))
}

/// A provider's back-off after throttling, kept in shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// No check is made before this time (ms since the epoch).
    pub until_ms: u64,
    /// How long this back-off lasts.
    pub step_ms: u64,
}

impl Backoff {
    /// The back-off after a throttling at `now_ms`: [`BACKOFF_FIRST_MS`], or twice the last one
    /// if Cognito throttles again within a step of its end.
    pub fn after_throttling(last: Option<Backoff>, now_ms: u64) -> Backoff {
        let step_ms = match last {
            Some(b) if now_ms < b.until_ms.saturating_add(b.step_ms) => {
                b.step_ms.saturating_mul(2).min(BACKOFF_MAX_MS)
            }
            _ => BACKOFF_FIRST_MS,
        };
        Backoff {
            until_ms: now_ms.saturating_add(step_ms),
            step_ms,
        }
    }

    pub fn holds(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Backoff> {
        serde_json::from_slice(bytes).ok()
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
    /// An `active` route, and an access token `GetUser` cannot judge: it lacks [`ADMIN_SCOPE`].
    NoAdminScope,
    /// Under `every_request`, an access token `GetUser` cannot judge: it passes unchecked, as
    /// an ID token does (counted and noted by the glue).
    Unchecked,
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
    let unchecked = if needs_active {
        Step::NoAdminScope
    } else {
        Step::Unchecked
    };
    // Never sent to Cognito: it would answer "does not have required scopes".
    if !checkable(claims) {
        return unchecked;
    }
    let key = TokenKey::of(token);
    match lookup(answers, claims.provider, &key, now.saturating_mul(1000)) {
        Some(Answer::Active) => Step::Pass,
        Some(Answer::Revoked) => Step::Revoked,
        Some(Answer::NotCheckable) => unchecked,
        Some(Answer::Throttled | Answer::Unreachable) => match check.when_unreachable {
            WhenUnreachable::Allow => Step::Pass,
            WhenUnreachable::Deny => Step::Unavailable,
        },
        Some(Answer::Pending) | None => Step::Ask(key),
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
    use serde_json::json;
    use std::collections::HashMap;

    struct Map(HashMap<(usize, u32), Record>);

    impl Answers for Map {
        fn record(&self, provider: usize, key: &TokenKey) -> Option<Record> {
            self.0.get(&(provider, key.slot)).cloned()
        }
    }

    /// Cognito's documented error kinds for `GetUser` (status, `__type`, `message`).
    fn error(kind: &str, message: &str) -> Vec<u8> {
        json!({ "__type": kind, "message": message })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn get_user_answers_by_kind() {
        assert_eq!(
            answer_of(
                Some(200),
                None,
                b"{\"Username\":\"alice\",\"UserAttributes\":[]}"
            ),
            Answer::Active
        );
        for (kind, message, answer) in [
            (
                "NotAuthorizedException",
                "Access Token has been revoked",
                Answer::Revoked,
            ),
            (
                "NotAuthorizedException",
                "Access Token has expired",
                Answer::Revoked,
            ),
            (
                "NotAuthorizedException",
                "User is disabled.",
                Answer::Revoked,
            ),
            (
                "NotAuthorizedException",
                "Invalid Access Token",
                Answer::Revoked,
            ),
            (
                "UserNotFoundException",
                "User does not exist.",
                Answer::Revoked,
            ),
            (
                "PasswordResetRequiredException",
                "Password reset required for the user",
                Answer::Revoked,
            ),
            (
                "UserNotConfirmedException",
                "User is not confirmed.",
                Answer::Revoked,
            ),
            (
                "NotAuthorizedException",
                "Access Token does not have required scopes",
                Answer::NotCheckable,
            ),
            (
                "TooManyRequestsException",
                "Rate exceeded",
                Answer::Throttled,
            ),
            ("ThrottlingException", "Rate exceeded", Answer::Throttled),
            ("InvalidParameterException", "x", Answer::Unreachable),
            ("ResourceNotFoundException", "x", Answer::Unreachable),
            ("SomethingNewException", "x", Answer::Unreachable),
        ] {
            assert_eq!(
                answer_of(Some(400), None, &error(kind, message)),
                answer,
                "{kind}: {message}"
            );
            let namespaced = format!("com.amazonaws.cognito.identity.idp.model#{kind}");
            assert_eq!(
                answer_of(Some(400), None, &error(&namespaced, message)),
                answer
            );
            // The kind only in the x-amzn-errortype header.
            let header =
                format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.swbup.service/");
            let body = json!({ "message": message }).to_string();
            assert_eq!(
                answer_of(Some(400), Some(header.as_bytes()), body.as_bytes()),
                answer
            );
        }
        for (status, body) in [
            (Some(400), b"not json".to_vec()),
            (Some(400), b"{}".to_vec()),
            (Some(200), b"not json".to_vec()),
            (Some(200), b"{}".to_vec()),
            (Some(403), error("ForbiddenException", "x")),
            (Some(403), error("NotAuthorizedException", "x")),
            (Some(500), error("InternalErrorException", "x")),
            (Some(503), Vec::new()),
            (None, Vec::new()),
        ] {
            assert_eq!(
                answer_of(status, None, &body),
                Answer::Unreachable,
                "{status:?}"
            );
        }
        assert_eq!(answer_of(Some(429), None, b""), Answer::Throttled);
    }

    #[test]
    fn only_tokens_with_the_admin_scope_are_checkable() {
        let claims = |scope: serde_json::Value| Claims {
            provider: 0,
            issuer: String::new(),
            token_use: Some(TokenUse::Access),
            client_id: None,
            kid: String::new(),
            expires_at: None,
            valid_until: 0,
            all: json!({ "scope": scope }).as_object().unwrap().clone(),
        };
        assert!(checkable(&claims(json!("aws.cognito.signin.user.admin"))));
        assert!(checkable(&claims(json!(
            "openid aws.cognito.signin.user.admin email"
        ))));
        assert!(!checkable(&claims(json!("openid email"))));
        assert!(!checkable(&claims(json!(
            "aws.cognito.signin.user.administrator"
        ))));
        assert!(!checkable(&claims(json!("api/read"))), "client credentials");
        assert!(!checkable(&claims(json!([
            "aws.cognito.signin.user.admin"
        ]))));
        assert!(!checkable(&claims(serde_json::Value::Null)));
    }

    #[test]
    fn a_pending_marker_is_joined_never_read_as_an_answer() {
        let key = TokenKey::of("token-a");
        let t = 1_800_000_000_000;
        let mut m = Map(HashMap::new());
        assert_eq!(claim(None, &key, t), Claim::Ask);
        let marker = pending(&key, t + 4_000);
        assert_eq!(claim(Some(&marker), &key, t + 3_999), Claim::Join);
        assert_eq!(
            claim(Some(&marker), &key, t + 4_000),
            Claim::Ask,
            "a lost call"
        );
        let mut other = marker.clone();
        other.key = TokenKey::of("token-b").hex;
        assert_eq!(
            claim(Some(&other), &key, t),
            Claim::Ask,
            "another token's slot"
        );
        m.0.insert((0, key.slot), marker);
        assert_eq!(lookup(&m, 0, &key, t), None, "pending is no answer");
        let answered = record(&key, Answer::Active, t, 60_000);
        assert_eq!(
            claim(Some(&answered), &key, t),
            Claim::Join,
            "answered meanwhile"
        );
        assert_eq!(Record::decode(&answered.encode()), Some(answered));
    }

    #[test]
    fn throttling_backs_off_doubling_while_it_goes_on() {
        let t = 1_800_000_000_000;
        let first = Backoff::after_throttling(None, t);
        assert_eq!(
            first,
            Backoff {
                until_ms: t + BACKOFF_FIRST_MS,
                step_ms: BACKOFF_FIRST_MS
            }
        );
        assert!(first.holds(t + BACKOFF_FIRST_MS - 1) && !first.holds(t + BACKOFF_FIRST_MS));
        let again = Backoff::after_throttling(Some(first), t + BACKOFF_FIRST_MS + 10);
        assert_eq!(again.step_ms, 2 * BACKOFF_FIRST_MS);
        let mut b = again;
        for _ in 0..10 {
            b = Backoff::after_throttling(Some(b), b.until_ms);
        }
        assert_eq!(b.step_ms, BACKOFF_MAX_MS);
        let later = Backoff::after_throttling(Some(b), b.until_ms + BACKOFF_MAX_MS);
        assert_eq!(
            later.step_ms, BACKOFF_FIRST_MS,
            "throttling long after starts over"
        );
        assert_eq!(Backoff::decode(&later.encode()), Some(later));
        assert_eq!(Backoff::decode(b"junk"), None);
        for answer in [Answer::Throttled, Answer::Unreachable] {
            let key = TokenKey::of("x");
            assert_eq!(
                record(&key, answer, t, 60_000).until_ms,
                t + UNREACHABLE_RETRY_MS
            );
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
    use crate::decision::{
        decide_with, Decision, Denied, Lists, Request, NOT_CHECKABLE, NOT_CHECKABLE_SCOPE_REASON,
        REVOKED,
    };
    use crate::signature::PureRust;
    use crate::verify::tests::{access_claims, id_claims, keys, sign, with, NOW};

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
        let access = sign(
            "key1",
            "k1",
            &with(access_claims(), "scope", ADMIN_SCOPE.into()),
        );
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
        assert_eq!(check.principal, access_claims()["sub"].as_str().unwrap());
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

    #[test]
    fn a_token_without_the_admin_scope_is_never_asked_about_nor_revoked() {
        let unscoped = sign("key1", "k1", &access_claims());
        let client_credentials = sign(
            "key1",
            "k1",
            &with(
                with(access_claims(), "scope", "api/read".into()),
                "username",
                serde_json::Value::Null,
            ),
        );
        let none = Kept(Default::default());
        for token in [&unscoped, &client_credentials] {
            // An active route: refused, saying why, without a check.
            let d = denied(decide_online(
                &online_config(json!({})),
                "/admin",
                token,
                &none,
                NOW,
            ));
            assert_eq!(
                (d.response.status, d.reason),
                (401, NOT_CHECKABLE_SCOPE_REASON)
            );
            assert!(
                d.response.body.contains("aws.cognito.signin.user.admin"),
                "{}",
                d.response.body
            );
            // every_request: passes unchecked, marked for the glue to count.
            let every = online_config(json!({ "every_request": true }));
            match decide_online(&every, "/", token, &none, NOW) {
                Decision::Allow(a) => assert_eq!(a.unchecked, Some(0)),
                other => panic!("not allowed: {other:?}"),
            }
        }
        // A scoped token Cognito answers "does not have required scopes" for (a trigger
        // changed it): kept as not checkable, never as revoked.
        let scoped = sign(
            "key1",
            "k1",
            &with(access_claims(), "scope", ADMIN_SCOPE.into()),
        );
        let key = TokenKey::of(&scoped);
        let mut kept = Kept(Default::default());
        kept.0.insert(
            key.hex.clone(),
            record(&key, Answer::NotCheckable, NOW * 1000, 60_000),
        );
        let d = denied(decide_online(
            &online_config(json!({})),
            "/admin",
            &scoped,
            &kept,
            NOW,
        ));
        assert_eq!(d.reason, NOT_CHECKABLE_SCOPE_REASON);
        let every = online_config(json!({ "every_request": true, "when_unreachable": "deny" }));
        assert!(matches!(
            decide_online(&every, "/", &scoped, &kept, NOW),
            Decision::Allow(_)
        ));
        // Throttled reads as unreachable: 503 by default, through with `allow`.
        kept.0.insert(
            key.hex.clone(),
            record(&key, Answer::Throttled, NOW * 1000, 60_000),
        );
        let d = denied(decide_online(&every, "/", &scoped, &kept, NOW));
        assert_eq!((d.response.status, d.reason), (503, "online_unavailable"));
        let open = online_config(json!({ "every_request": true, "when_unreachable": "allow" }));
        assert!(matches!(
            decide_online(&open, "/", &scoped, &kept, NOW),
            Decision::Allow(_)
        ));
        // A pending marker is no answer: ask (the glue joins the call under way).
        kept.0
            .insert(key.hex.clone(), pending(&key, NOW * 1000 + 5_000));
        assert!(matches!(
            decide_online(&every, "/", &scoped, &kept, NOW),
            Decision::Check(_)
        ));
    }
}
