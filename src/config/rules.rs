//! Route rules: what a rule matches (path, methods, case) and what it requires.

use super::*;

/// The methods a rule may name.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];
/// One route rule: the first rule whose path and method match decides the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub path: PathMatch,
    /// Upper case; empty for every method. `GET` also covers `HEAD`.
    pub methods: Vec<String>,
    /// `false`: the path is compared ASCII-case-insensitively (for Express, ASP.NET, IIS).
    pub case_sensitive: bool,
    pub access: Access,
    /// Report-only mode for this rule: a request it would refuse is logged, counted and
    /// forwarded instead.
    pub report_only: bool,
}

impl Rule {
    /// Whether a request refused under this rule is only reported (the rule's switch, or the
    /// whole filter's).
    pub fn reports(&self, config: &Config) -> bool {
        self.report_only || config.report_only
    }

    /// Whether the rule asks for an online check (`"active": true`).
    pub fn needs_active(&self) -> bool {
        matches!(&self.access, Access::Require(r) if r.iter().any(|r| r.active))
    }
}

/// Compared with the request path without its query string, percent escapes decoded
/// (see `policy::path`); the pattern is stored decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// No token needed; a token that is present must still be valid.
    Public,
    /// A valid token meeting at least one of these requirement sets.
    Require(Vec<Requirement>),
}

/// What an authenticated caller must also satisfy; every field that is set must hold.
/// The default (nothing set) is any authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirement {
    pub admin: bool,
    /// The access token must be live in Cognito (an online check); only in `require`.
    pub active: bool,
    /// Principal names, as configured.
    pub principals: Vec<String>,
    /// Lowercase email domains.
    pub domains: Vec<String>,
    pub groups_any: Vec<String>,
    pub groups_all: Vec<String>,
    pub scopes_any: Vec<String>,
    pub scopes_all: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    #[serde(rename = "match")]
    matcher: RawMatch,
    allow: Option<RawAllow>,
    require: Option<RawRequirement>,
    require_any: Option<Vec<RawRequirement>>,
    #[serde(default)]
    report_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    exact: Option<String>,
    prefix: Option<String>,
    methods: Option<Vec<String>>,
    case_sensitive: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawAllow {
    Public,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequirement {
    authenticated: Option<bool>,
    active: Option<bool>,
    admin: Option<bool>,
    principals: Option<Vec<String>>,
    domains: Option<Vec<String>>,
    groups_any: Option<Vec<String>>,
    groups_all: Option<Vec<String>>,
    scopes_any: Option<Vec<String>>,
    scopes_all: Option<Vec<String>>,
}

impl RawRule {
    pub(super) fn validate(
        self,
        at: &str,
        path_case_sensitive: Option<bool>,
    ) -> Result<Rule, ConfigError> {
        let m = self.matcher;
        let case_sensitive = m.case_sensitive.or(path_case_sensitive).unwrap_or(true);
        let path = match (m.exact, m.prefix) {
            (Some(p), None) => PathMatch::Exact(path_pattern(
                p,
                false,
                case_sensitive,
                &format!("{at}.match.exact"),
            )?),
            (None, Some(p)) => PathMatch::Prefix(path_pattern(
                p,
                true,
                case_sensitive,
                &format!("{at}.match.prefix"),
            )?),
            (Some(_), Some(_)) => {
                return Err(err(
                    format!("{at}.match"),
                    "set either exact or prefix, not both",
                ))
            }
            (None, None) => {
                return Err(err(
                    format!("{at}.match"),
                    "needs a path: exact or prefix (\"prefix\": \"/\" matches every path)",
                ))
            }
        };
        let methods = match m.methods {
            None => Vec::new(),
            Some(list) if list.is_empty() => {
                return Err(err(
                    format!("{at}.match.methods"),
                    "must list at least one method; leave it out to match every method",
                ))
            }
            Some(list) => each(&list, &format!("{at}.match.methods"), method)?,
        };
        let access = match (self.allow, self.require, self.require_any) {
            (Some(RawAllow::Public), None, None) => Access::Public,
            (None, Some(r), None) => Access::Require(vec![r.validate(&format!("{at}.require"))?]),
            (None, None, Some(list)) if list.is_empty() => {
                return Err(err(
                    format!("{at}.require_any"),
                    "must list at least one requirement",
                ))
            }
            (None, None, Some(list)) => {
                let any: Vec<Requirement> = list
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| r.validate(&format!("{at}.require_any[{i}]")))
                    .collect::<Result<_, _>>()?;
                if let Some(i) = any.iter().position(|r| r.active) {
                    return Err(err(
                        format!("{at}.require_any[{i}].active"),
                        "an online check cannot be an alternative: put \"active\": true in require",
                    ));
                }
                Access::Require(any)
            }
            (None, None, None) => {
                return Err(err(
                    at,
                    "needs an action: \"allow\": \"public\", require or require_any",
                ))
            }
            _ => return Err(err(at, "set only one of allow, require and require_any")),
        };
        Ok(Rule {
            path,
            methods,
            case_sensitive,
            access,
            report_only: self.report_only,
        })
    }
}

impl RawRequirement {
    pub(super) fn validate(self, at: &str) -> Result<Requirement, ConfigError> {
        if self.authenticated == Some(false) {
            return Err(err(
                format!("{at}.authenticated"),
                "only true is meaningful; use \"allow\": \"public\" for a route without a token",
            ));
        }
        if self.admin == Some(false) {
            return Err(err(
                format!("{at}.admin"),
                "only true is meaningful; leave it out to admit non-admins",
            ));
        }
        let list = |v: Option<Vec<String>>,
                    name: &str,
                    check: fn(&str, &str) -> Result<String, ConfigError>| {
            let field = format!("{at}.{name}");
            match v {
                None => Ok(Vec::new()),
                Some(v) if v.is_empty() => Err(err(field, "must list at least one value")),
                Some(v) => each(&v, &field, check),
            }
        };
        if self.active == Some(false) {
            return Err(err(
                format!("{at}.active"),
                "only true is meaningful; leave it out to accept offline-verified tokens",
            ));
        }
        let requirement = Requirement {
            admin: self.admin == Some(true),
            active: self.active == Some(true),
            principals: list(self.principals, "principals", principal_name)?,
            domains: list(self.domains, "domains", domain)?,
            groups_any: list(self.groups_any, "groups_any", group)?,
            groups_all: list(self.groups_all, "groups_all", group)?,
            scopes_any: list(self.scopes_any, "scopes_any", scope)?,
            scopes_all: list(self.scopes_all, "scopes_all", scope)?,
        };
        if self.authenticated.is_none() && requirement == Requirement::default() {
            return Err(err(
                at,
                "must state at least one requirement, e.g. {\"authenticated\": true}",
            ));
        }
        Ok(requirement)
    }
}

fn method(v: &str, at: &str) -> Result<String, ConfigError> {
    if METHODS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(err(
            at,
            format!("{v:?} is not a method; use one of {}", METHODS.join(", ")),
        ))
    }
}

/// Paths are matched without the query string, so a pattern cannot hold one; and decoded,
/// so the pattern is stored decoded.
fn path_pattern(
    p: String,
    prefix: bool,
    case_sensitive: bool,
    at: &str,
) -> Result<String, ConfigError> {
    if !p.starts_with('/') || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            at,
            "must be a path starting with '/', printable ASCII without spaces",
        ));
    }
    if p.contains('?') || p.contains('#') {
        return Err(err(
            at,
            "must not hold '?' or '#': rules match the path without its query string",
        ));
    }
    crate::policy::path::pattern(&p, prefix, case_sensitive).map_err(|m| err(at, m))
}
