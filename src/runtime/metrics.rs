//! The filter's metric names, the same in both builds. Envoy prefixes them: the .wasm's show
//! as `wasmcustom.cognito_edge_auth.<name>`, the .so's under the dynamic-module filter's stats
//! namespace (see docs/operations.md).

/// The prefix of every name below.
pub const PREFIX: &str = "cognito_edge_auth";

/// The denial reasons defined up front, so dashboards see them at zero.
pub const DENY_REASONS: [&str; 22] = [
    "missing",
    "invalid",
    "expired",
    "issuer",
    "audience",
    "no_keys",
    "no_principal",
    "path_not_normal",
    "method_not_normal",
    "domain",
    "unverified_email",
    "not_admin",
    "principal",
    "groups",
    "insufficient_scope",
    "forbidden",
    "revoked",
    "not_checkable",
    "not_checkable_scope",
    "online_unavailable",
    "online_busy",
    "login_busy",
];

pub const ALLOWED: &str = "allowed";
pub const CACHE_HITS: &str = "cache.hits";
pub const CACHE_MISSES: &str = "cache.misses";
/// Requests the native filter failed closed on because its code panicked.
pub const PANICS: &str = "panics";

/// `denied.<reason>`.
pub fn denied(reason: &str) -> String {
    format!("denied.{reason}")
}

/// `report.denied.<reason>`: requests forwarded in report-only mode that would have been
/// refused for `reason` (Envoy RBAC's `shadow_denied`, by reason).
pub fn reported(reason: &str) -> String {
    format!("report.denied.{reason}")
}

/// `jwks.<provider>.fetch_success` or `…fetch_failure`.
pub fn jwks_fetch(provider: &str, ok: bool) -> String {
    let outcome = if ok { "fetch_success" } else { "fetch_failure" };
    format!("jwks.{provider}.{outcome}")
}

/// `jwks.<provider>.keys` (a gauge).
pub fn jwks_keys(provider: &str) -> String {
    format!("jwks.{provider}.keys")
}

/// `revocation.<provider>.fetch_success` or `…fetch_failure`.
pub fn list_fetch(provider: &str, ok: bool) -> String {
    let outcome = if ok { "fetch_success" } else { "fetch_failure" };
    format!("revocation.{provider}.{outcome}")
}

/// `revocation.<provider>.entries` (a gauge).
pub fn list_entries(provider: &str) -> String {
    format!("revocation.{provider}.entries")
}

/// The kinds an online check counts per provider (`online.<provider>.<kind>`): its answers,
/// the checks not made while the provider backs off, and the access tokens `GetUser` cannot
/// judge that passed or were refused without a check.
pub const ONLINE_KINDS: [&str; 7] = [
    "active",
    "revoked",
    "unreachable",
    "not_checkable",
    "throttled",
    "backed_off",
    "unchecked",
];

/// `online.<provider>.<kind>`.
pub fn online(provider: &str, kind: &str) -> String {
    format!("online.{provider}.{kind}")
}

/// The kind an answer is counted as (a pending marker is no answer).
pub fn online_answer(answer: crate::online::Answer) -> Option<&'static str> {
    use crate::online::Answer;
    Some(match answer {
        Answer::Active => "active",
        Answer::Revoked => "revoked",
        Answer::NotCheckable => "not_checkable",
        Answer::Throttled => "throttled",
        Answer::Unreachable => "unreachable",
        Answer::Pending => return None,
    })
}

/// Browser sign-in's counters (defined only with `login`).
pub const LOGIN_EVENTS: [&str; 11] = [
    "login.started",
    "login.callbacks",
    "login.completed",
    "login.failed",
    "logout",
    "logout.confirm",
    "logout.revoked",
    "logout.revoke_failed",
    "logout.end_failed",
    "refresh.completed",
    "refresh.failed",
];

/// The denial reasons of browser sign-in's failures ([`crate::session::Failure::reason`]),
/// defined up front with `login` (the native module cannot define a counter later).
pub const LOGIN_DENY_REASONS: [&str; 13] = [
    "login_provider_error",
    "login_state",
    "login_no_code",
    "login_bad_host",
    "login_exchange",
    "login_token_response",
    "login_id_token",
    "login_nonce",
    "login_forbidden",
    "login_no_principal",
    "login_too_large",
    "login_keys_not_loaded",
    "refresh_session_changed",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sign_in_failure_is_defined_up_front() {
        use crate::session::Failure;
        use crate::verify::VerifyError;
        for f in [
            Failure::Provider,
            Failure::State,
            Failure::NoCode,
            Failure::BadHost,
            Failure::Exchange,
            Failure::TokenResponse,
            Failure::IdToken(VerifyError::Expired),
            Failure::Nonce,
            Failure::Forbidden,
            Failure::NoPrincipal,
            Failure::TooLarge,
            Failure::KeysNotLoaded,
            Failure::SessionChanged,
        ] {
            assert!(LOGIN_DENY_REASONS.contains(&f.reason()), "{f:?}");
        }
    }

    #[test]
    fn names_are_those_of_the_wasm_build() {
        assert_eq!(denied("expired"), "denied.expired");
        assert_eq!(reported("not_admin"), "report.denied.not_admin");
        assert_eq!(jwks_fetch("cognito", true), "jwks.cognito.fetch_success");
        assert_eq!(jwks_fetch("cognito", false), "jwks.cognito.fetch_failure");
        assert_eq!(jwks_keys("cognito"), "jwks.cognito.keys");
        assert_eq!(list_fetch("b", false), "revocation.b.fetch_failure");
        assert_eq!(list_entries("b"), "revocation.b.entries");
    }
}
