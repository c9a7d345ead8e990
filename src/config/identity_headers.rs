//! The identity headers: their names, which incoming headers the filter owns, and the
//! claims copied into headers (`claim_to_headers`).

use super::*;

const DEFAULT_IDENTITY_HEADER_PREFIX: &str = "x-auth-";
/// Headers an identity header prefix must not cover: stripping them would break requests.
const PROTECTED_HEADERS: [&str; 10] = [
    "authorization",
    "cookie",
    "host",
    "content-type",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "x-envoy-internal",
    "x-real-ip",
];
/// Headers a claim may not be copied into: framing, routing and credentials.
const RESERVED_HEADERS: [&str; 13] = [
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "expect",
    "authorization",
    "cookie",
];

/// The names of the identity headers, all lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// Every incoming header with this prefix is removed.
    pub prefix: String,
    pub principal: String,
    pub email: String,
    pub sub: String,
    pub groups: String,
    pub admin: String,
    pub token_use: String,
    pub client_id: String,
    pub issuer: String,
    pub provider: String,
    pub claim_to_headers: Vec<ClaimToHeader>,
}

/// Copy a claim into a request header, as Envoy's `jwt_authn` does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeader {
    pub header_name: String,
    pub claim_name: String,
}

impl IdentityHeaders {
    /// Whether the filter owns incoming header `name`: it starts with the prefix or is a
    /// `claim_to_headers` name, ignoring case and reading `_` as `-` (CGI, WSGI and PHP
    /// upstreams turn both into the same `HTTP_X_AUTH_…` variable).
    pub fn strips(&self, name: &str) -> bool {
        name.get(..self.prefix.len())
            .is_some_and(|head| same_header_name(head, &self.prefix))
            || self
                .claim_to_headers
                .iter()
                .any(|c| same_header_name(&c.header_name, name))
    }
}

/// Header names that an upstream could read as the same: ASCII case ignored, `_` read as `-`.
pub fn same_header_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

pub(super) fn identity_headers(
    prefix: Option<String>,
    claim_to_headers: Vec<ClaimToHeader>,
) -> Result<IdentityHeaders, ConfigError> {
    let prefix = prefix
        .unwrap_or_else(|| DEFAULT_IDENTITY_HEADER_PREFIX.into())
        .to_ascii_lowercase();
    if !is_header_name(&prefix) || !prefix.ends_with('-') || prefix.len() < 3 {
        return Err(err(
            "identity_header_prefix",
            "must be a header name prefix ending in '-', such as x-auth-",
        ));
    }
    if let Some(h) = PROTECTED_HEADERS.iter().find(|h| h.starts_with(&prefix)) {
        return Err(err(
            "identity_header_prefix",
            format!("would strip the {h} header from every request"),
        ));
    }
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let mut identity = IdentityHeaders {
        principal: name("principal"),
        email: name("email"),
        sub: name("sub"),
        groups: name("groups"),
        admin: name("admin"),
        token_use: name("token-use"),
        client_id: name("client-id"),
        issuer: name("issuer"),
        provider: name("provider"),
        prefix,
        claim_to_headers: Vec::with_capacity(claim_to_headers.len()),
    };
    let fixed = [
        &identity.principal,
        &identity.email,
        &identity.sub,
        &identity.groups,
        &identity.admin,
        &identity.token_use,
        &identity.client_id,
        &identity.issuer,
        &identity.provider,
    ]
    .map(String::clone);
    for (i, c) in claim_to_headers.into_iter().enumerate() {
        let at = format!("claim_to_headers[{i}]");
        let header_name = c.header_name.to_ascii_lowercase();
        if !is_header_name(&header_name) {
            return Err(err(
                format!("{at}.header_name"),
                "must be a header name (letters, digits, '-', '_')",
            ));
        }
        if RESERVED_HEADERS.contains(&header_name.as_str()) || fixed.contains(&header_name) {
            return Err(err(
                format!("{at}.header_name"),
                format!("{header_name} is reserved"),
            ));
        }
        if identity
            .claim_to_headers
            .iter()
            .any(|c| c.header_name == header_name)
        {
            return Err(err(format!("{at}.header_name"), "duplicate header name"));
        }
        if c.claim_name.is_empty() {
            return Err(err(format!("{at}.claim_name"), "must not be empty"));
        }
        identity.claim_to_headers.push(ClaimToHeader {
            header_name,
            claim_name: c.claim_name,
        });
    }
    Ok(identity)
}
