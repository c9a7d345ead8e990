//! The refresh of a session: the token request that redeems its refresh token, the renewed
//! session from the answer (the same user, OpenID Connect Core 12.2), and when a session is
//! due for it.

use super::{
    chunk_name, clear, expiry, new_session, session_chunk_count, subject, token_call, url,
    Answered, Call, Failure, Opened, Stored,
};
use crate::config::login::Login;
use crate::verify;

/// What a refresh remembers while the refresh token is redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPending {
    pub refresh: String,
    /// The session's id and user: the renewed session keeps the one and must be the other.
    sid: String,
    sub: String,
    old_chunks: usize,
}

impl RefreshPending {
    /// The id of the session being renewed.
    pub fn sid(&self) -> &str {
        &self.sid
    }
}

/// The token request that redeems a session's refresh token (`client_secret_basic`); `None`
/// for a session without one.
pub fn refresh_call(
    login: &Login,
    session: &Opened,
    headers: &[(String, Vec<u8>)],
) -> Option<(Call, RefreshPending)> {
    let refresh = session.refresh.as_deref()?;
    let body = format!(
        "grant_type=refresh_token&client_id={}&refresh_token={}",
        url::encode(&login.client_id),
        url::encode(refresh),
    );
    let pending = RefreshPending {
        refresh: refresh.to_string(),
        sid: session.sid.clone(),
        sub: session.sub.clone(),
        old_chunks: session_chunk_count(login, headers),
    };
    Some((token_call(login, body), pending))
}

/// The answer to a refresh: the new session's `Set-Cookie`s. The new ID token is verified as
/// at sign-in (no nonce: a refresh has none) and must name the session's user; issuer and
/// client are the login's by [`Answered::verified`]. A rotated refresh token replaces the old
/// one. The session keeps its id, so a logout before the refresh still ends it.
pub fn refreshed(answer: &Answered, pending: &RefreshPending) -> Result<Vec<String>, Failure> {
    let (tokens, claims) = answer.verified()?;
    if subject(&claims).as_deref() != Some(pending.sub.as_str()) {
        return Err(Failure::SessionChanged);
    }
    let access = answer.access_token(tokens.access_token, &pending.sub)?;
    let stored = Stored {
        s: pending.sid.clone(),
        u: pending.sub.clone(),
        x: expiry(&claims),
        i: tokens.id_token,
        r: Some(
            tokens
                .refresh_token
                .unwrap_or_else(|| pending.refresh.clone()),
        ),
        a: access,
    };
    new_session(
        answer.login,
        &stored,
        answer.now,
        answer.random,
        pending.old_chunks,
    )
}

/// Whether a session's valid ID token is due for renewal: it expires within
/// `refresh_before_seconds`, clamped to half the token's own lifetime (`exp - iat`). A
/// token that lives 5 minutes is renewed in its last 150 s, never at once: a refresh
/// always yields a session that is used.
pub fn refresh_due(login: &Login, claims: &verify::Claims, now: u64) -> bool {
    let Some(exp) = claims.expires_at else {
        return false;
    };
    let lifetime = claims
        .all
        .get("iat")
        .and_then(serde_json::Value::as_u64)
        .map(|iat| exp.saturating_sub(iat));
    let window = lifetime.map_or(login.refresh_before_seconds, |l| {
        login.refresh_before_seconds.min(l / 2)
    });
    exp <= now.saturating_add(window)
}

/// The `Set-Cookie`s that end the session a refresh was for (its answer named another user).
pub fn ended_by_refresh(login: &Login, pending: &RefreshPending) -> Vec<String> {
    (0..pending.old_chunks.max(1))
        .map(|i| clear(login, &chunk_name(login, i)))
        .collect()
}
