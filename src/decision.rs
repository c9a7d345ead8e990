//! One request, as data: headers → token → verified claims → policy → a decision the glue
//! acts on.

use crate::cache::{Slot, TokenCache};
use crate::config::{Access, Config, HeaderSource};
use crate::jwks::KeySet;
use crate::online::{self, Answers, Step, TokenKey};
use crate::policy::{self, Outcome, Refusal};
use crate::response::{self, Response};
use crate::revocation::RevocationList;
use crate::session::ended::EndedSessions;
use crate::session::{self, Random, Session};
use crate::signature::SignatureVerifier;
use crate::token::{self, ExtractError};
use crate::verify::{self, Claims, VerifyError};
use std::ops::ControlFlow;
use std::rc::Rc;

mod browser;
#[cfg(test)]
mod report_tests;

/// How long a client is told to wait when keys are not loaded yet.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The parts of a request the decision needs, as Envoy hands them over.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    /// `:method`.
    pub method: &'r [u8],
    /// `:path`, with its query string.
    pub path: &'r [u8],
    /// (lowercase name, raw value) pairs.
    pub headers: &'r [(String, Vec<u8>)],
    /// The request's session was just renewed (it is decided again with the new one): it is
    /// used as it is, never renewed again.
    pub renewed: bool,
}

impl<'r> Request<'r> {
    pub fn new(method: &'r [u8], path: &'r [u8], headers: &'r [(String, Vec<u8>)]) -> Self {
        Request {
            method,
            path,
            headers,
            renewed: false,
        }
    }
}

/// What the filter does with a request.
#[derive(Debug)]
pub enum Decision {
    /// Forward the request upstream, after changing its headers.
    Allow(Allowed),
    /// Answer the request with `response` and do not forward it.
    Deny(Denied),
    /// Ask Cognito whether the access token is live, keep the answer, then decide the
    /// request again (the glue pauses it meanwhile).
    Check(Check),
    /// Send the browser elsewhere (to sign in, back after signing in or out).
    Redirect(Redirected),
    /// Make `call` (the callback's code exchange), then answer with [`session::finish`].
    Call(Box<(session::Call, session::Pending)>),
    /// Make `call` (redeem the session's refresh token), then decide the request again with
    /// the session [`session::refreshed`] gives ([`session::with_session`]).
    Refresh(Box<(session::Call, session::RefreshPending)>),
    /// A request to `logout_path`: a page that asks to confirm, or the session to end in the
    /// process, the refresh token to revoke, then the answer (whatever the call's outcome).
    Logout(Box<session::Logout>),
}

/// An online check the glue must make: `GetUser` with `token` through provider
/// `provider`'s `online_check`, the answer kept under `key`.
#[derive(Debug)]
pub struct Check {
    pub provider: usize,
    pub key: TokenKey,
    /// The access token, for the call's body only: never logged.
    pub token: String,
    /// The token's `sub` (empty without one): whose check it is, for the fair share of calls.
    pub principal: String,
}

#[derive(Debug)]
pub struct Redirected {
    pub response: Response,
    /// A short, stable reason for logs and metrics.
    pub reason: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Headers to remove first: every incoming identity header, always; and the token's
    /// header when `forward` is false.
    pub remove: Vec<String>,
    /// Headers to add next: the verified identity. Empty for an anonymous request. Shared
    /// with the token cache, which renders them once per token and rule. Every name is one
    /// the filter owns (the prefix, `claim_to_headers`), so once `remove` is done none is in
    /// the request: they are added, never replaced (a replace scans the header map; Envoy's
    /// add does not).
    pub set: Rc<[(String, String)]>,
    /// Headers to replace last, which the request may carry: the session's ID token as
    /// `authorization`, the `cookie` header without the filter's cookies (bytes: the
    /// application's own cookies may hold any).
    pub replace: Vec<(String, Vec<u8>)>,
    /// A short, stable reason for logs and metrics.
    pub reason: &'static str,
    /// The provider of an access token that passed without its online check because `GetUser`
    /// cannot judge it (it lacks the admin scope), for the glue to count and explain.
    pub unchecked: Option<usize>,
    /// Report-only mode: the refusal this request would have had. The glue logs and counts
    /// it, then forwards the request (after waiting for keys, as it would before refusing).
    pub reported: Option<Reported>,
}

/// A refusal that report-only mode turned into forwarding (as Envoy RBAC's `shadow_rules`
/// and Istio's `istio.io/dry-run` do): what the filter would have answered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The status it would have answered (400, 401, 403, 503).
    pub status: u32,
    /// The refusal's reason, as in `denied.<reason>`.
    pub reason: &'static str,
    pub provider: Option<String>,
    /// The caller, when the token was verified and names one.
    pub principal: Option<String>,
    /// The verification failure: a request without keys yet waits for them first, as it
    /// would before a refusal.
    pub error: Option<VerifyError>,
}

/// The reason of a request forwarded in report-only mode.
pub const REPORT_ONLY: &str = "report_only";

#[derive(Debug)]
pub struct Denied {
    pub response: Response,
    /// A short, stable reason for logs and metrics.
    pub reason: &'static str,
    /// The verification failure, when a token was present and checked.
    pub error: Option<VerifyError>,
    /// The provider that issued the token, once its `iss` was matched and verified.
    pub provider: Option<String>,
    /// The caller, when the token was valid but the policy refused it.
    pub principal: Option<String>,
    /// The sign-in step that failed, when this is the answer to a callback.
    pub login: Option<session::Failure>,
    /// A browser refused for this could be helped by signing in (no session, or one whose
    /// token is expired, invalid, revoked or ended); never for what a sign-in cannot change.
    pub sign_in: bool,
}

impl Denied {
    fn new(response: Response, reason: &'static str, error: Option<VerifyError>) -> Denied {
        Denied {
            response,
            reason,
            error,
            provider: None,
            principal: None,
            login: None,
            sign_in: false,
        }
    }
}

impl Decision {
    /// Names the provider of a verified token in a denial, for the log.
    fn naming_provider(self, config: &Config, provider: usize) -> Decision {
        match self {
            Decision::Deny(mut d) => {
                d.provider = config.providers.get(provider).map(|p| p.name.clone());
                Decision::Deny(d)
            }
            allowed => allowed,
        }
    }
}

/// The reason of a request let through on a public route without an identity.
const ANONYMOUS: &str = "public_anonymous";

/// The `error_description` of a token on a revocation list, or signed out in Cognito.
pub const REVOKED: &str = "the token has been revoked";
/// The `error_description` on an `active` route for a token that cannot be checked online.
pub const NOT_CHECKABLE: &str =
    "this route requires an access token that can be checked with its issuer";
/// The `error_description` on an `active` route for an access token without the scope
/// `GetUser` requires.
pub const NOT_CHECKABLE_SCOPE: &str =
    "this route requires an access token that can be checked with its issuer, and this one lacks the scope aws.cognito.signin.user.admin that the check needs";
/// The reason of a refusal of such a token.
pub const NOT_CHECKABLE_SCOPE_REASON: &str = "not_checkable_scope";

/// Decides a request at time `now`, verifying its token with the worker's key sets and
/// signature verifier unless the token cache already holds it. Only the inline revocation
/// lists apply (see [`decide_with`]). A cache serves one configuration (it remembers the
/// policy's outcome per token and rule): the glue makes a new one with each configuration.
pub fn decide(
    request: &Request,
    config: &Config,
    keys: &[Option<KeySet>],
    signatures: &dyn SignatureVerifier,
    cache: &mut TokenCache,
    now: u64,
) -> Decision {
    let lists = Lists {
        fetched: &[],
        online: &online::NoAnswers,
        ended: &session::ended::NoneEnded,
    };
    decide_with(
        request,
        config,
        keys,
        &lists,
        signatures,
        cache,
        now,
        &|| None,
    )
}

/// What the glue knows beyond the configuration and the keys: the fetched revocation lists
/// (`fetched[i]` for provider i, `None` while there is none), the kept online answers and the
/// sessions ended at logout.
pub struct Lists<'a> {
    pub fetched: &'a [Option<RevocationList>],
    pub online: &'a dyn Answers,
    pub ended: &'a dyn EndedSessions,
}

/// As [`decide`], with what the glue keeps and draws:
/// - the fetched revocation lists and the online answers (`lists`): a listed token is
///   refused, cached or not; an access token that must be checked online and has no current
///   answer gives [`Decision::Check`];
/// - browser sign-in: `random` draws the bytes a new login needs (without them a browser
///   gets today's 401, never a login with weak randomness).
#[allow(clippy::too_many_arguments)]
pub fn decide_with(
    request: &Request,
    config: &Config,
    keys: &[Option<KeySet>],
    lists: &Lists,
    signatures: &dyn SignatureVerifier,
    cache: &mut TokenCache,
    now: u64,
    random: &dyn Fn() -> Option<Random>,
) -> Decision {
    match &config.login {
        None => decide_token(request, config, keys, lists, signatures, cache, now),
        Some(login) => browser::decide(
            request, config, login, keys, lists, signatures, cache, now, random,
        ),
    }
}

/// The request's token (a token header, a token cookie, or the session) through verify, the
/// revocation lists, the policy and the online check; in report-only mode (the filter's or
/// the matched rule's), a refusal becomes forwarding with the refusal [`Reported`].
fn decide_token(
    request: &Request,
    config: &Config,
    keys: &[Option<KeySet>],
    lists: &Lists,
    signatures: &dyn SignatureVerifier,
    cache: &mut TokenCache,
    now: u64,
) -> Decision {
    let mut seen = Seen::default();
    match enforced(
        request, config, keys, lists, signatures, cache, now, &mut seen,
    ) {
        Decision::Deny(denied) if reports(config, &seen) => report(denied, config, seen),
        decision => decision,
    }
}

/// What [`enforced`] learnt on its way, for report-only mode.
#[derive(Default)]
struct Seen {
    /// The identity headers the request came with (and token headers with `forward: false`):
    /// stripped in report-only mode too.
    remove: Vec<String>,
    /// The rule that matched, if one did.
    rule: Option<usize>,
    /// The token's verified claims, if it was verified.
    claims: Option<Rc<Claims>>,
}

/// Whether a refusal is only reported: the whole filter is in report-only mode, or the rule
/// that matched is. A request no rule could route (400) is reported only by the filter's
/// switch.
fn reports(config: &Config, seen: &Seen) -> bool {
    config.report_only
        || seen
            .rule
            .and_then(|i| config.policy.rules.get(i))
            .is_some_and(|r| r.reports(config))
}

/// A refusal in report-only mode: forwarded, with the client's identity headers stripped and
/// the verified identity set when there is one — the identity the filter would give this
/// token on a public route (so never one that fails domain enforcement), and none for a
/// revoked token.
fn report(denied: Denied, config: &Config, seen: Seen) -> Decision {
    let mut principal = denied.principal;
    let set = match seen.claims.as_deref() {
        Some(claims) if denied.reason != "revoked" => {
            match policy::authorize(claims, &Access::Public, &config.policy) {
                Ok(Some(identity)) => {
                    let provider = config
                        .providers
                        .get(claims.provider)
                        .map_or("", |p| p.name.as_str());
                    let set =
                        response::identity_headers(&identity, claims, provider, &config.identity);
                    principal = principal.or(Some(identity.principal));
                    set.into()
                }
                _ => Rc::from([]),
            }
        }
        _ => Rc::from([]),
    };
    Decision::Allow(Allowed {
        remove: seen.remove,
        set,
        replace: Vec::new(),
        reason: REPORT_ONLY,
        unchecked: None,
        reported: Some(Reported {
            status: denied.response.status,
            reason: denied.reason,
            provider: denied.provider,
            principal,
            error: denied.error,
        }),
    })
}

/// As [`decide_token`], enforcing: what the filter decides, noting in `seen` what report-only
/// mode needs.
#[allow(clippy::too_many_arguments)]
fn enforced(
    request: &Request,
    config: &Config,
    keys: &[Option<KeySet>],
    lists: &Lists,
    signatures: &dyn SignatureVerifier,
    cache: &mut TokenCache,
    now: u64,
    seen: &mut Seen,
) -> Decision {
    let realm = config.realm.as_str();
    // Stripped on every forwarded request, whatever the route: a client never speaks for
    // the filter.
    let mut remove = incoming_identity_headers(request.headers, config);
    // With `forward: false` no credential in a token header reaches the upstream, recognised
    // or not, whatever the route.
    if !config.forward {
        remove.extend(token_headers(request.headers, &config.from_headers));
    }
    seen.remove.clone_from(&remove);
    if config.bypass_cors_preflight && policy::is_cors_preflight(request.method, request.headers) {
        return allow(remove, Rc::from([]), "cors_preflight");
    }
    let route = match policy::route(&config.policy, request.method, request.path) {
        Ok(route) => route,
        Err(e) => {
            return deny(
                response::invalid_request(realm, e.description()),
                e.reason(),
                None,
            )
        }
    };
    seen.rule = route.rule;
    let public = matches!(route.access, Access::Public);

    // On a public route a token is optional, but one that is sent must be valid.
    let extracted = token::extract(request.headers, token::Sources::of(config));
    // A session ended at logout is no session, wherever its copy comes from.
    let session = match (&extracted, config.login.as_ref()) {
        (Ok(None), Some(login)) => match session::session(login, request.headers) {
            Session::Open(s) if !lists.ended.is_ended(&s.sid, now) => Some(s),
            _ => None,
        },
        _ => None,
    };
    let token = match extracted {
        Ok(Some(token)) => token,
        Ok(None) => match &session {
            Some(s) => s.id.as_str(),
            None if public => return allow(remove, Rc::from([]), "public"),
            None => return signing_in(deny(response::missing_token(realm), "missing", None)),
        },
        Err(ExtractError::Multiple) => {
            return deny(
                response::invalid_request(realm, ExtractError::Multiple.description()),
                "invalid",
                None,
            )
        }
        Err(e) => {
            return deny(
                response::invalid_token(realm, e.description()),
                "invalid",
                None,
            )
        }
    };
    let slot = cache.slot(token);
    let verified = verify_cached(token, slot, config, keys, signatures, cache, now);
    // Where sessions are checked online, the session's access token (what `GetUser` takes),
    // verified as a bearer access token is.
    let access = match (config.login.as_ref(), session.as_ref()) {
        (Some(login), Some(s)) if login.online => s.access.as_deref().map(|a| {
            let claims = verify_cached(a, cache.slot(a), config, keys, signatures, cache, now);
            (a, claims)
        }),
        _ => None,
    };
    // A session about to expire, or expired, is renewed first when it can be (and was not
    // just renewed: a renewed session is used as it is); so is one whose access token is.
    if let (Some(login), Some(s)) = (config.login.as_ref(), session.as_ref()) {
        let due_by = |verified: &Result<Rc<Claims>, VerifyError>| match verified {
            Ok(claims) => session::refresh_due(login, claims, now),
            Err(e) => *e == VerifyError::Expired,
        };
        let due = due_by(&verified) || access.as_ref().is_some_and(|(_, v)| due_by(v));
        if due && !request.renewed {
            if let Some(refresh) = session::refresh_call(login, s, request.headers) {
                return Decision::Refresh(Box::new(refresh));
            }
        }
    }
    let claims = match verified {
        Ok(claims) => {
            seen.claims = Some(Rc::clone(&claims));
            claims
        }
        Err(e @ VerifyError::NoKeys { .. }) => {
            return deny(
                response::unavailable(RETRY_AFTER_SECONDS, &e.description()),
                e.reason(),
                Some(e),
            )
        }
        Err(e) => {
            return signing_in(deny(
                response::invalid_token(realm, &e.description()),
                e.reason(),
                Some(e),
            ))
        }
    };

    // After the cache: a list that changes applies to tokens verified before it did.
    if is_revoked(&claims, config, lists.fetched) {
        return signing_in(deny(
            response::invalid_token(realm, REVOKED),
            "revoked",
            None,
        ))
        .naming_provider(config, claims.provider);
    }

    let outcome = match cache.outcome(slot, route.rule) {
        Some(outcome) => outcome,
        None => {
            let outcome = Rc::new(outcome_of(&claims, route.access, public, config));
            cache.remember(slot, route.rule, Rc::clone(&outcome));
            outcome
        }
    };
    match &*outcome {
        Outcome::Allowed { set, reason } => {
            // A caller who is let in with an identity is checked online where the route or
            // the provider asks for it, each time: the cached outcome only says who it is.
            let needs_active =
                matches!(route.access, Access::Require(r) if r.iter().any(|r| r.active));
            // A session is checked with its access token, where it keeps one.
            let step = match &access {
                _ if *reason == ANONYMOUS => ControlFlow::Continue(false),
                Some((a, Ok(access))) => {
                    online_step(config, access, a, needs_active, lists.online, now)
                }
                Some((_, Err(e))) => ControlFlow::Break(signing_in(deny(
                    response::invalid_token(realm, &e.description()),
                    e.reason(),
                    Some(*e),
                ))),
                None => online_step(config, &claims, token, needs_active, lists.online, now),
            };
            match step {
                ControlFlow::Break(decision) => decision,
                ControlFlow::Continue(unchecked) => match allow(remove, Rc::clone(set), reason) {
                    Decision::Allow(a) if unchecked => Decision::Allow(Allowed {
                        unchecked: Some(claims.provider),
                        ..a
                    }),
                    d => d,
                },
            }
        }
        Outcome::Refused(Refusal::NoPrincipal(description)) => deny(
            response::invalid_token(realm, description),
            "no_principal",
            None,
        ),
        Outcome::Refused(Refusal::Forbidden(f, principal)) => {
            let response = if f.is_scope() {
                response::insufficient_scope(realm, f.description())
            } else {
                response::forbidden(f.description())
            };
            let mut denied = Denied::new(response, f.reason(), None);
            denied.principal = Some(principal.clone());
            Decision::Deny(denied)
        }
    }
    .naming_provider(config, claims.provider)
}

/// The policy on a verified token: the identity headers and reason, or the refusal.
fn outcome_of(claims: &Claims, access: &Access, public: bool, config: &Config) -> Outcome {
    match policy::authorize(claims, access, &config.policy) {
        Ok(identity) => {
            let provider = config
                .providers
                .get(claims.provider)
                .map_or("", |p| p.name.as_str());
            let (set, reason) = match identity {
                Some(i) => (
                    response::identity_headers(&i, claims, provider, &config.identity),
                    if public { "public" } else { "authorized" },
                ),
                None => (Vec::new(), ANONYMOUS),
            };
            Outcome::Allowed {
                set: set.into(),
                reason,
            }
        }
        Err(refusal) => Outcome::Refused(refusal),
    }
}

/// The online check's verdict as a decision: `Continue` to go on and allow (`true`:
/// unchecked, as `GetUser` cannot judge the token).
fn online_step(
    config: &Config,
    claims: &Claims,
    token: &str,
    needs_active: bool,
    answers: &dyn Answers,
    now: u64,
) -> ControlFlow<Decision, bool> {
    let realm = config.realm.as_str();
    ControlFlow::Break(
        match online::step(config, claims, token, needs_active, answers, now) {
            Step::Pass => return ControlFlow::Continue(false),
            Step::Unchecked => return ControlFlow::Continue(true),
            Step::NotCheckable => deny(
                response::invalid_token(realm, NOT_CHECKABLE),
                "not_checkable",
                None,
            ),
            Step::NoAdminScope => deny(
                response::invalid_token(realm, NOT_CHECKABLE_SCOPE),
                NOT_CHECKABLE_SCOPE_REASON,
                None,
            ),
            Step::Revoked => signing_in(deny(
                response::invalid_token(realm, REVOKED),
                "revoked",
                None,
            )),
            Step::Unavailable => deny(
                response::unavailable(
                    online::RETRY_AFTER_SECONDS,
                    "the token cannot be checked with its issuer right now",
                ),
                "online_unavailable",
                None,
            ),
            Step::Ask(key) => Decision::Check(Check {
                provider: claims.provider,
                key,
                token: token.to_string(),
                principal: claims
                    .all
                    .get("sub")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string(),
            }),
        },
    )
}

/// Whether the provider's inline or fetched revocation list holds the token.
fn is_revoked(claims: &Claims, config: &Config, fetched: &[Option<RevocationList>]) -> bool {
    let inline = config
        .providers
        .get(claims.provider)
        .and_then(|p| p.revocation.inline.as_ref());
    let fetched = fetched.get(claims.provider).and_then(Option::as_ref);
    inline.is_some_and(|l| l.revokes(claims)) || fetched.is_some_and(|l| l.revokes(claims))
}

/// The names of the incoming headers the filter owns, once each.
fn incoming_identity_headers(headers: &[(String, Vec<u8>)], config: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in headers {
        if !config.identity.strips(name) {
            continue; // the usual case: no allocation
        }
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The token headers (`from_headers`, `_` read as `-`), whatever they hold: with
/// `forward: false` no credential in them reaches the upstream.
fn token_headers(headers: &[(String, Vec<u8>)], sources: &[HeaderSource]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, _) in headers {
        if token::is_token_header(name, sources)
            && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            names.push(name.to_ascii_lowercase());
        }
    }
    names
}

fn allow(remove: Vec<String>, set: Rc<[(String, String)]>, reason: &'static str) -> Decision {
    Decision::Allow(Allowed {
        remove,
        set,
        replace: Vec::new(),
        reason,
        unchecked: None,
        reported: None,
    })
}

/// The token's claims from the cache, or verified now (and then cached).
fn verify_cached(
    token: &str,
    slot: Slot,
    config: &Config,
    keys: &[Option<KeySet>],
    signatures: &dyn SignatureVerifier,
    cache: &mut TokenCache,
    now: u64,
) -> Result<Rc<Claims>, VerifyError> {
    if let Some(claims) = cache.get_at(slot, now, keys) {
        return Ok(claims);
    }
    let claims = Rc::new(verify::verify(
        token,
        &config.providers,
        keys,
        signatures,
        now,
    )?);
    let fingerprint = keys
        .get(claims.provider)
        .and_then(Option::as_ref)
        .and_then(|set| set.get(&claims.kid))
        .map(|key| key.fingerprint);
    if let Some(fingerprint) = fingerprint {
        cache.insert_at(slot, Rc::clone(&claims), fingerprint);
    }
    Ok(claims)
}

fn deny(response: Response, reason: &'static str, error: Option<VerifyError>) -> Decision {
    Decision::Deny(Denied::new(response, reason, error))
}

/// A denial a browser can overcome by signing in (again).
fn signing_in(decision: Decision) -> Decision {
    match decision {
        Decision::Deny(denied) => Decision::Deny(Denied {
            sign_in: true,
            ..denied
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::config as config_with;
    use crate::signature::PureRust;

    use crate::verify::tests::{access_claims, config, id_claims, keys, sign, with, NOW};
    use serde_json::json;

    type Headers = Vec<(String, Vec<u8>)>;

    fn bearer(token: &str) -> Headers {
        vec![(
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        )]
    }

    fn plus(mut headers: Headers, name: &str, value: &str) -> Headers {
        headers.push((name.into(), value.as_bytes().to_vec()));
        headers
    }

    fn run_with(
        method: &str,
        path: &str,
        headers: &[(String, Vec<u8>)],
        config: &Config,
        keys: &[Option<KeySet>],
    ) -> Decision {
        let request = Request {
            renewed: false,
            method: method.as_bytes(),
            path: path.as_bytes(),
            headers,
        };
        decide(
            &request,
            config,
            keys,
            &PureRust,
            &mut TokenCache::new(0),
            NOW,
        )
    }

    fn run(method: &str, path: &str, headers: &[(String, Vec<u8>)], config: &Config) -> Decision {
        run_with(method, path, headers, config, &keys())
    }

    fn get(headers: &[(String, Vec<u8>)], config: &Config) -> Decision {
        run("GET", "/", headers, config)
    }

    fn denied(d: Decision) -> Denied {
        match d {
            Decision::Deny(d) => d,
            Decision::Check(c) => panic!("check: {:?}", c.key),
            other => panic!("not denied: {other:?}"),
        }
    }

    fn allowed(d: Decision) -> Allowed {
        match d {
            Decision::Allow(a) => a,
            Decision::Check(c) => panic!("check: {:?}", c.key),
            other => panic!("not allowed: {other:?}"),
        }
    }

    fn set<'a>(a: &'a Allowed, name: &str) -> Option<&'a str> {
        a.set
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn id_token() -> String {
        sign("key1", "k1", &id_claims())
    }

    #[test]
    fn valid_token_is_allowed_with_its_identity() {
        let a = allowed(get(&bearer(&id_token()), &config()));
        assert_eq!(a.reason, "authorized");
        assert_eq!(set(&a, "x-auth-principal"), Some("alice"));
        assert_eq!(set(&a, "x-auth-email"), Some("alice@example.com"));
        assert_eq!(set(&a, "x-auth-admin"), Some("false"));
        assert_eq!(set(&a, "x-auth-client-id"), Some("client1"));
        assert_eq!(set(&a, "x-auth-provider"), Some("cognito"));
        assert!(a.remove.is_empty());
        let a = allowed(get(
            &bearer(&sign("key1", "k1", &access_claims())),
            &config(),
        ));
        assert_eq!(
            set(&a, "x-auth-principal"),
            Some("alice"),
            "from `username`"
        );
        assert_eq!(set(&a, "x-auth-token-use"), Some("access"));
    }

    #[test]
    fn each_failure_maps_to_its_status() {
        let d = denied(get(&[], &config()));
        assert_eq!((d.response.status, d.reason), (401, "missing"));
        let d = denied(get(&bearer("not-a-jwt"), &config()));
        assert_eq!((d.response.status, d.reason), (401, "invalid"));
        let token = id_token();
        let d = denied(run_with("GET", "/", &bearer(&token), &config(), &[None]));
        assert_eq!((d.response.status, d.reason), (503, "no_keys"));
        let request = Request {
            renewed: false,
            method: b"GET",
            path: b"/",
            headers: &bearer(&token),
        };
        let d = denied(decide(
            &request,
            &config(),
            &keys(),
            &PureRust,
            &mut TokenCache::new(0),
            NOW + 7200,
        ));
        assert_eq!(
            (d.response.status, d.reason, d.error),
            (401, "expired", Some(VerifyError::Expired))
        );
        let mut two = bearer(&token);
        two.extend(bearer(&token));
        assert_eq!(denied(get(&two, &config())).response.status, 400);
    }

    #[test]
    fn missing_token_needs_no_keys() {
        let d = denied(run_with("GET", "/", &[], &config(), &[None]));
        assert_eq!(d.response.status, 401);
    }

    #[test]
    fn a_token_without_a_principal_is_invalid() {
        let c = config_with(json!({ "principal_claims": ["email"] }));
        let token = sign("key1", "k1", &access_claims());
        let d = denied(get(&bearer(&token), &c));
        assert_eq!((d.response.status, d.reason), (401, "no_principal"));
        let challenge = &d
            .response
            .headers
            .iter()
            .find(|(n, _)| n == "www-authenticate")
            .unwrap()
            .1;
        assert!(
            challenge.contains("error=\"invalid_token\", error_description=\"the token has no usable principal claim (looked for email)\""),
            "{challenge}"
        );
    }

    #[test]
    fn forbidden_and_insufficient_scope() {
        let c = config_with(json!({ "rules": [
            { "match": { "prefix": "/admin" }, "require": { "admin": true } },
            { "match": { "prefix": "/api" }, "require": { "scopes_all": ["api/write"] } },
        ]}));
        let d = denied(run("GET", "/admin", &bearer(&id_token()), &c));
        assert_eq!((d.response.status, d.reason), (403, "not_admin"));
        assert!(d
            .response
            .headers
            .iter()
            .all(|(n, _)| n != "www-authenticate"));
        assert!(d.response.body.contains("\"error\":\"forbidden\""));
        let access = sign("key1", "k1", &access_claims());
        let d = denied(run("GET", "/api/x", &bearer(&access), &c));
        assert_eq!((d.response.status, d.reason), (403, "insufficient_scope"));
        assert!(d
            .response
            .headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.contains("error=\"insufficient_scope\"")));
        let write = sign(
            "key1",
            "k1",
            &with(access_claims(), "scope", "openid api/write".into()),
        );
        assert!(matches!(
            run("GET", "/api/x", &bearer(&write), &c),
            Decision::Allow(_)
        ));
    }

    #[test]
    fn domain_enforcement_is_403() {
        let c = config_with(
            json!({ "principal_domain": "open-metadata.org", "enforce_principal_domain": true }),
        );
        let d = denied(get(&bearer(&id_token()), &c));
        assert_eq!((d.response.status, d.reason), (403, "domain"));
        assert!(d
            .response
            .body
            .contains("the principal's email domain is not allowed"));
    }

    #[test]
    fn public_routes_need_no_token_but_refuse_a_bad_one() {
        let c = config_with(
            json!({ "rules": [{ "match": { "prefix": "/public" }, "allow": "public" }] }),
        );
        let spoofed = plus(vec![], "x-auth-admin", "true");
        let a = allowed(run("GET", "/public/x?y", &spoofed, &c));
        assert_eq!(
            (a.reason, a.remove.as_slice()),
            ("public", &["x-auth-admin".to_string()][..])
        );
        assert!(a.set.is_empty());
        let d = denied(run("GET", "/public/x", &bearer("not-a-jwt"), &c));
        assert_eq!(d.response.status, 401);
        let expired = sign("key1", "k1", &with(id_claims(), "exp", (NOW - 3600).into()));
        assert_eq!(
            denied(run("GET", "/public", &bearer(&expired), &c)).reason,
            "expired"
        );
        let a = allowed(run("GET", "/public", &bearer(&id_token()), &c));
        assert_eq!(set(&a, "x-auth-principal"), Some("alice"));
        // A path the upstream could resolve to another rule's resource is refused.
        let d = denied(run("GET", "/public/../admin", &[], &c));
        assert_eq!((d.response.status, d.reason), (400, "path_not_normal"));
        // An identity refused elsewhere goes on as anonymous.
        let enforced = config_with(json!({
            "principal_domain": "open-metadata.org", "enforce_principal_domain": true,
            "rules": [{ "match": { "prefix": "/public" }, "allow": "public" }]
        }));
        let a = allowed(run("GET", "/public", &bearer(&id_token()), &enforced));
        assert_eq!((a.reason, a.set.len()), ("public_anonymous", 0));
    }

    #[test]
    fn incoming_identity_headers_are_always_removed() {
        let c = config_with(json!({
            "claim_to_headers": [{ "header_name": "x-tenant", "claim_name": "custom:tenant" }]
        }));
        let headers = plus(
            plus(
                plus(
                    plus(bearer(&id_token()), "x-auth-admin", "true"),
                    "X-Auth-Principal",
                    "root",
                ),
                "x-tenant",
                "evil",
            ),
            "x-auth-admin",
            "true",
        );
        let a = allowed(get(&headers, &c));
        assert_eq!(a.remove, ["x-auth-admin", "x-auth-principal", "x-tenant"]);
        assert_eq!(set(&a, "x-auth-admin"), Some("false"));
        assert_eq!(set(&a, "x-tenant"), None, "the token has no such claim");
        let tenant = sign(
            "key1",
            "k1",
            &with(id_claims(), "custom:tenant", "acme".into()),
        );
        let a = allowed(get(&plus(bearer(&tenant), "x-tenant", "evil"), &c));
        assert_eq!(set(&a, "x-tenant"), Some("acme"));
        // Underscore twins: CGI/WSGI upstreams read x_auth_principal as X-Auth-Principal.
        let twins = plus(
            plus(
                plus(vec![], "x_auth_principal", "root"),
                "X_Auth-Admin",
                "true",
            ),
            "x_tenant",
            "evil",
        );
        let public = config_with(json!({
            "claim_to_headers": [{ "header_name": "x-tenant", "claim_name": "custom:tenant" }],
            "rules": [{ "match": { "prefix": "/" }, "allow": "public" }]
        }));
        let a = allowed(get(&twins, &public));
        assert_eq!(a.remove, ["x_auth_principal", "x_auth-admin", "x_tenant"]);
    }

    #[test]
    fn forward_false_removes_the_token_header() {
        let c = config_with(json!({ "forward": false }));
        let headers = plus(bearer(&id_token()), "x-other", "1");
        assert_eq!(allowed(get(&headers, &c)).remove, ["authorization"]);
        assert!(allowed(get(&bearer(&id_token()), &config()))
            .remove
            .is_empty());
        let custom =
            config_with(json!({ "forward": false, "from_headers": [{ "name": "x-jwt" }] }));
        let headers = plus(
            vec![("authorization".into(), b"Basic x".to_vec())],
            "x-jwt",
            &id_token(),
        );
        assert_eq!(
            allowed(get(&headers, &custom)).remove,
            ["x-jwt"],
            "authorization is not a token header here"
        );
        let both = config_with(json!({ "forward": false, "from_headers": [
            { "name": "authorization", "value_prefix": "Bearer " }, { "name": "x-jwt" }] }));
        let headers = plus(bearer(&id_token()), "x_jwt", "");
        assert_eq!(
            allowed(get(&headers, &both)).remove,
            ["authorization", "x_jwt"],
            "every token header goes, whatever it holds"
        );
        let public = config_with(json!({ "forward": false,
            "rules": [{ "match": { "prefix": "/" }, "allow": "public" }] }));
        let basic = vec![("authorization".into(), b"Basic eDp5".to_vec())];
        assert_eq!(allowed(get(&basic, &public)).remove, ["authorization"]);
    }

    #[test]
    fn cognito_id_tokens_of_users_in_many_groups_fit_the_default_bound() {
        // A hundred groups with names of 82 and 122 characters: 12 KB and 17 KB tokens.
        for (name_len, min, max) in [(82, 12_000, 13_000), (122, 17_000, 18_000)] {
            let groups: Vec<String> = (0..100)
                .map(|i| format!("{i:03}-{}", "g".repeat(name_len - 4)))
                .collect();
            let token = sign(
                "key1",
                "k1",
                &with(id_claims(), "cognito:groups", json!(groups)),
            );
            assert!((min..max).contains(&token.len()), "{} bytes", token.len());
            let a = allowed(get(&bearer(&token), &config()));
            assert_eq!(
                set(&a, "x-auth-groups").map(|g| g.split(',').count()),
                Some(100)
            );
        }
    }

    #[test]
    fn a_token_header_in_another_form_is_refused_even_on_public_routes() {
        let public =
            config_with(json!({ "rules": [{ "match": { "prefix": "/" }, "allow": "public" }] }));
        let token = id_token();
        for (value, status) in [
            (format!("Bearer\t{token}"), 401),
            (format!("Bearer:{token}"), 401),
            ("Bearer".to_string(), 401),
            (format!("Basic eDp5, Bearer {token}"), 400),
        ] {
            let headers = vec![("authorization".to_string(), value.clone().into_bytes())];
            let d = denied(get(&headers, &public));
            assert_eq!(d.response.status, status, "{value}");
        }
        let big = config_with(json!({ "max_token_bytes": 1024 }));
        let padded = sign(
            "key1",
            "k1",
            &with(id_claims(), "custom:pad", "x".repeat(2000).into()),
        );
        assert!(allowed(get(&bearer(&padded), &config_with(json!({})))).reason == "authorized");
        let d = denied(get(&bearer(&padded), &big));
        assert_eq!((d.response.status, d.reason), (401, "invalid"));
    }

    #[test]
    fn cors_preflight_bypass() {
        let preflight = plus(
            plus(
                plus(vec![], "origin", "https://app.example.com"),
                "access-control-request-method",
                "POST",
            ),
            "x-auth-admin",
            "true",
        );
        let c = config_with(json!({ "bypass_cors_preflight": true }));
        let a = allowed(run("OPTIONS", "/api", &preflight, &c));
        assert_eq!(
            (a.reason, a.remove.as_slice()),
            ("cors_preflight", &["x-auth-admin".to_string()][..])
        );
        assert_eq!(
            denied(run("OPTIONS", "/api", &preflight, &config()))
                .response
                .status,
            401
        );
        assert_eq!(
            denied(run("OPTIONS", "/api", &[], &c)).response.status,
            401,
            "not a preflight"
        );
    }

    #[test]
    fn a_cached_token_skips_verification_but_not_the_policy() {
        let token = id_token();
        let mut cache = TokenCache::new(16);
        let request = |path: &'static [u8], h: &'static Headers| Request {
            renewed: false,
            method: b"GET",
            path,
            headers: h,
        };
        let headers: &'static Headers = Box::leak(Box::new(bearer(&token)));
        let cfg = config();
        let first = decide(
            &request(b"/", headers),
            &cfg,
            &keys(),
            &PureRust,
            &mut cache,
            NOW,
        );
        assert!(matches!(first, Decision::Allow(_)));
        assert_eq!(cache.len(), 1);
        // A verifier that refuses everything: only a cache hit can still allow the token.
        struct Refuse;
        impl SignatureVerifier for Refuse {
            fn verify(
                &self,
                _: jsonwebtoken::Algorithm,
                _: &crate::jwks::Key,
                _: &[u8],
                _: &[u8],
            ) -> bool {
                false
            }
        }
        let hit = decide(
            &request(b"/", headers),
            &cfg,
            &keys(),
            &Refuse,
            &mut cache,
            NOW,
        );
        assert!(matches!(hit, Decision::Allow(_)), "served from the cache");
        let mut admin_only = cfg.clone();
        admin_only.policy = config_with(
            json!({ "rules": [{ "match": { "prefix": "/" }, "require": { "admin": true } }] }),
        )
        .policy;
        let d = denied(decide(
            &request(b"/", headers),
            &admin_only,
            &keys(),
            &Refuse,
            &mut cache,
            NOW,
        ));
        assert_eq!(d.response.status, 403, "the policy is evaluated on a hit");
        let expired = decide(
            &request(b"/", headers),
            &cfg,
            &keys(),
            &PureRust,
            &mut cache,
            NOW + 7200,
        );
        assert!(
            matches!(expired, Decision::Deny(_)),
            "an expired token is not served from the cache"
        );
    }

    #[test]
    fn the_policy_outcome_is_remembered_per_rule_and_decides_the_same() {
        let cfg = config_with(json!({ "admin_principals": ["alice"], "rules": [
            { "match": { "prefix": "/admin" }, "require": { "groups_any": ["nobody"] } },
            { "match": { "prefix": "/public" }, "allow": "public" },
        ]}));
        let headers = bearer(&id_token());
        let mut cache = TokenCache::new(16);
        let at = |path: &str, cache: &mut TokenCache| {
            let request = Request {
                renewed: false,
                method: b"GET",
                path: path.as_bytes(),
                headers: &headers,
            };
            let fresh = decide(
                &request,
                &cfg,
                &keys(),
                &PureRust,
                &mut TokenCache::new(0),
                NOW,
            );
            let cached = decide(&request, &cfg, &keys(), &PureRust, cache, NOW);
            (format!("{fresh:?}"), format!("{cached:?}"))
        };
        for round in 0..3 {
            for path in ["/", "/admin", "/public", "/other"] {
                let (fresh, cached) = at(path, &mut cache);
                assert_eq!(fresh, cached, "{path} in round {round}");
            }
        }
        assert_eq!(cache.len(), 1);
        assert!(
            cache.bytes() > id_token().len() + 512,
            "the outcomes count in the byte bound"
        );
    }

    #[test]
    fn a_policy_denial_names_the_provider_and_the_caller() {
        let admin_only = config_with(
            json!({ "rules": [{ "match": { "prefix": "/" }, "require": { "admin": true } }] }),
        );
        let d = denied(run("GET", "/", &bearer(&id_token()), &admin_only));
        assert_eq!((d.response.status, d.reason), (403, "not_admin"));
        assert_eq!(
            (d.provider.as_deref(), d.principal.as_deref()),
            (Some("cognito"), Some("alice"))
        );
        let d = denied(get(&bearer("not-a-jwt"), &config()));
        assert_eq!((d.provider, d.principal), (None, None));
    }
}
