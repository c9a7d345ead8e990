//! Revocation lists: tokens that verify but are refused, by `jti`, `origin_jti`, `sub` or
//! username.
//!
//! A provider may have an inline list (in the configuration) and a fetched one (through an
//! Envoy cluster, on the shared schedule of `refresh`). Both have the same JSON form:
//!
//! ```json
//! { "jti": ["…"], "origin_jti": ["…"], "sub": ["…"], "username": ["…"] }
//! ```
//!
//! Every field is optional; unknown fields are refused (a misspelt field would revoke
//! nothing). A document is bounded in bytes and in entries; one over a bound is refused as a
//! whole, and the last good list stays in use.

use crate::verify::Claims;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// A fetched list larger than this is refused (the last good one is kept).
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;
/// At most this many entries in one list, all fields together.
pub const MAX_ENTRIES: usize = 100_000;
/// An entry longer than this cannot be a claim value Cognito or OpenMetadata issues.
pub const MAX_ENTRY_BYTES: usize = 1024;

/// The claims whose values a `username` entry is compared with.
const USERNAME_CLAIMS: [&str; 2] = ["username", "cognito:username"];

/// One revocation list, ready for lookups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationList {
    jti: HashSet<String>,
    origin_jti: HashSet<String>,
    sub: HashSet<String>,
    /// ASCII-lowercased when usernames compare case-insensitively.
    username: HashSet<String>,
    username_case_sensitive: bool,
}

/// Why a list document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    TooLarge(usize),
    TooManyEntries(usize),
    /// Not JSON of the documented form (unknown field, wrong type …), with serde's words.
    NotAList(String),
    /// An entry that is empty or longer than [`MAX_ENTRY_BYTES`]: field and position.
    BadEntry(&'static str, usize),
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::TooLarge(n) => {
                write!(f, "the list is {n} bytes, over the {MAX_LIST_BYTES}-byte bound")
            }
            ListError::TooManyEntries(n) => {
                write!(f, "the list has {n} entries, over the bound of {MAX_ENTRIES}")
            }
            ListError::NotAList(e) => write!(
                f,
                "not a revocation list ({{\"jti\", \"origin_jti\", \"sub\", \"username\"}} arrays of strings): {e}"
            ),
            ListError::BadEntry(field, i) => write!(
                f,
                "{field}[{i}] must be a non-empty string of at most {MAX_ENTRY_BYTES} bytes"
            ),
        }
    }
}

/// The JSON form of a list, inline or fetched.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawList {
    #[serde(default)]
    pub jti: Vec<String>,
    #[serde(default)]
    pub origin_jti: Vec<String>,
    #[serde(default)]
    pub sub: Vec<String>,
    #[serde(default)]
    pub username: Vec<String>,
}

impl RevocationList {
    /// Parses a fetched list document, within the bounds.
    pub fn parse(body: &[u8], username_case_sensitive: bool) -> Result<Self, ListError> {
        if body.len() > MAX_LIST_BYTES {
            return Err(ListError::TooLarge(body.len()));
        }
        let raw: RawList =
            serde_json::from_slice(body).map_err(|e| ListError::NotAList(e.to_string()))?;
        RevocationList::from_raw(raw, username_case_sensitive)
    }

    /// Checks the entries of a parsed list and builds the lookup sets.
    pub fn from_raw(raw: RawList, username_case_sensitive: bool) -> Result<Self, ListError> {
        let total = raw.jti.len() + raw.origin_jti.len() + raw.sub.len() + raw.username.len();
        if total > MAX_ENTRIES {
            return Err(ListError::TooManyEntries(total));
        }
        let fold = |s: String| {
            if username_case_sensitive {
                s
            } else {
                s.to_ascii_lowercase()
            }
        };
        Ok(RevocationList {
            jti: entries(raw.jti, "jti", |s| s)?,
            origin_jti: entries(raw.origin_jti, "origin_jti", |s| s)?,
            sub: entries(raw.sub, "sub", |s| s)?,
            username: entries(raw.username, "username", fold)?,
            username_case_sensitive,
        })
    }

    /// Entries in all.
    pub fn len(&self) -> usize {
        self.jti.len() + self.origin_jti.len() + self.sub.len() + self.username.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the verified token is on this list: its `jti`, `origin_jti` or `sub` claim,
    /// or its `username` / `cognito:username`, equals an entry of that kind.
    pub fn revokes(&self, claims: &Claims) -> bool {
        let claim = |name: &str| claims.all.get(name).and_then(Value::as_str);
        let listed =
            |set: &HashSet<String>, name: &str| claim(name).is_some_and(|v| set.contains(v));
        if listed(&self.jti, "jti") || listed(&self.origin_jti, "origin_jti") {
            return true;
        }
        if listed(&self.sub, "sub") {
            return true;
        }
        if self.username.is_empty() {
            return false;
        }
        USERNAME_CLAIMS.iter().filter_map(|n| claim(n)).any(|name| {
            if self.username_case_sensitive {
                self.username.contains(name)
            } else {
                self.username.contains(&name.to_ascii_lowercase())
            }
        })
    }
}

fn entries(
    values: Vec<String>,
    field: &'static str,
    fold: impl Fn(String) -> String,
) -> Result<HashSet<String>, ListError> {
    let mut set = HashSet::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        if v.is_empty() || v.len() > MAX_ENTRY_BYTES {
            return Err(ListError::BadEntry(field, i));
        }
        set.insert(fold(v));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::claims;
    use serde_json::json;

    fn list(v: Value, case_sensitive: bool) -> Result<RevocationList, ListError> {
        RevocationList::parse(v.to_string().as_bytes(), case_sensitive)
    }

    #[test]
    fn each_kind_of_entry_revokes_the_token_that_carries_it() {
        let l = list(
            json!({ "jti": ["j1"], "origin_jti": ["o1"], "sub": ["s1"], "username": ["bot1"] }),
            true,
        )
        .unwrap();
        assert_eq!(l.len(), 4);
        assert!(l.revokes(&claims(json!({ "jti": "j1" }))));
        assert!(l.revokes(&claims(json!({ "origin_jti": "o1" }))));
        assert!(l.revokes(&claims(json!({ "sub": "s1" }))));
        assert!(l.revokes(&claims(json!({ "username": "bot1" }))));
        assert!(l.revokes(&claims(json!({ "cognito:username": "bot1" }))));
        // Only the claim of the entry's kind counts.
        assert!(!l.revokes(&claims(
            json!({ "sub": "j1", "jti": "s1", "origin_jti": "j1" })
        )));
        assert!(!l.revokes(&claims(json!({ "preferred_username": "bot1" }))));
        assert!(!l.revokes(&claims(
            json!({ "jti": "j2", "sub": "s2", "username": "bot2" })
        )));
        // Values that are not strings never match.
        assert!(!l.revokes(&claims(json!({ "jti": ["j1"], "sub": 1 }))));
    }

    #[test]
    fn usernames_compare_as_the_provider_says() {
        let exact = list(json!({ "username": ["Bot1"] }), true).unwrap();
        assert!(exact.revokes(&claims(json!({ "username": "Bot1" }))));
        assert!(!exact.revokes(&claims(json!({ "username": "bot1" }))));
        let folded = list(json!({ "username": ["Bot1"] }), false).unwrap();
        assert!(folded.revokes(&claims(json!({ "username": "bOT1" }))));
        // sub and jti are exact whatever the provider says.
        let subs = list(json!({ "sub": ["ABC"] }), false).unwrap();
        assert!(!subs.revokes(&claims(json!({ "sub": "abc" }))));
        // ASCII only: KELVIN SIGN is not k.
        let k = list(json!({ "username": ["k"] }), false).unwrap();
        assert!(!k.revokes(&claims(json!({ "username": "\u{212A}" }))));
    }

    #[test]
    fn an_empty_document_is_an_empty_list() {
        let l = list(json!({}), true).unwrap();
        assert!(l.is_empty());
        assert!(!l.revokes(&claims(json!({ "jti": "j1", "sub": "s" }))));
    }

    #[test]
    fn documents_of_another_form_are_refused() {
        for bad in [
            json!({ "subs": ["s1"] }),
            json!({ "sub": "s1" }),
            json!({ "sub": [1] }),
            json!(["s1"]),
            json!(null),
        ] {
            assert!(
                matches!(list(bad.clone(), true), Err(ListError::NotAList(_))),
                "{bad}"
            );
        }
        assert_eq!(
            list(json!({ "jti": ["ok", ""] }), true),
            Err(ListError::BadEntry("jti", 1))
        );
        let long = "x".repeat(MAX_ENTRY_BYTES + 1);
        assert_eq!(
            list(json!({ "sub": [long] }), true),
            Err(ListError::BadEntry("sub", 0))
        );
        assert!(RevocationList::parse(b"not json", true).is_err());
    }

    #[test]
    fn lists_are_bounded_in_bytes_and_entries() {
        let at_bound: Vec<String> = (0..MAX_ENTRIES).map(|i| format!("j{i}")).collect();
        let l = list(json!({ "jti": at_bound }), true).unwrap();
        assert_eq!(l.len(), MAX_ENTRIES);
        let over: Vec<String> = (0..MAX_ENTRIES / 2 + 1).map(|i| format!("j{i}")).collect();
        assert_eq!(
            list(json!({ "jti": over.clone(), "sub": over }), true),
            Err(ListError::TooManyEntries(MAX_ENTRIES + 2))
        );
        let big = vec![b' '; MAX_LIST_BYTES + 1];
        assert_eq!(
            RevocationList::parse(&big, true),
            Err(ListError::TooLarge(MAX_LIST_BYTES + 1))
        );
        assert!(ListError::TooLarge(1)
            .to_string()
            .contains("4194304-byte bound"));
    }

    use crate::cache::TokenCache;
    use crate::config::Config;
    use crate::decision::{decide, decide_with, Decision, Denied, Lists, Request, REVOKED};
    use crate::online;
    use crate::policy::tests::config as config_with;
    use crate::signature::PureRust;
    use crate::verify::tests::{id_claims, keys, sign, NOW};

    fn bearer(token: &str) -> Vec<(String, Vec<u8>)> {
        vec![(
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        )]
    }

    fn id_token() -> String {
        sign("key1", "k1", &id_claims())
    }

    fn denied(d: Decision) -> Denied {
        match d {
            Decision::Deny(d) => d,
            other => panic!("not denied: {other:?}"),
        }
    }

    #[test]
    fn a_revoked_token_is_refused_also_from_the_cache_and_on_public_routes() {
        let token = id_token();
        let headers = bearer(&token);
        let request = |path: &'static [u8]| Request {
            renewed: false,
            method: b"GET",
            path,
            headers: &headers,
        };
        let mut cfg =
            config_with(json!({ "rules": [{ "match": { "prefix": "/pub" }, "allow": "public" }] }));
        let mut cache = TokenCache::new(16);
        let run = |cfg: &Config, fetched: &[Option<RevocationList>], cache: &mut TokenCache| {
            let lists = Lists {
                ended: &crate::session::ended::NoneEnded,
                fetched,
                online: &online::NoAnswers,
            };
            decide_with(
                &request(b"/"),
                cfg,
                &keys(),
                &lists,
                &PureRust,
                cache,
                NOW,
                &|| None,
            )
        };
        assert!(matches!(run(&cfg, &[], &mut cache), Decision::Allow(_)));
        assert_eq!(cache.len(), 1);

        // A fetched list that names the token's sub: refused, although the cache holds it.
        let list =
            |v: serde_json::Value| RevocationList::parse(v.to_string().as_bytes(), true).unwrap();
        let by_sub = [Some(list(
            json!({ "sub": ["7c1e0b1c-0000-4000-8000-000000000001"] }),
        ))];
        let d = denied(run(&cfg, &by_sub, &mut cache));
        assert_eq!((d.response.status, d.reason), (401, "revoked"));
        assert_eq!(d.provider.as_deref(), Some("cognito"));
        assert!(d.response.body.contains(REVOKED), "{}", d.response.body);
        assert!(d
            .response
            .headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.contains("error=\"invalid_token\"")));
        let public = decide_with(
            &request(b"/pub"),
            &cfg,
            &keys(),
            &Lists {
                ended: &crate::session::ended::NoneEnded,
                fetched: &by_sub,
                online: &online::NoAnswers,
            },
            &PureRust,
            &mut cache,
            NOW,
            &|| None,
        );
        assert_eq!(
            denied(public).reason,
            "revoked",
            "a token that is sent must be valid"
        );

        // Another provider's list does not apply; an unrelated entry does not either.
        let other = [None, by_sub[0].clone()];
        assert!(matches!(run(&cfg, &other, &mut cache), Decision::Allow(_)));
        let unrelated = [Some(list(json!({ "username": ["bob"], "jti": ["x"] })))];
        assert!(matches!(
            run(&cfg, &unrelated, &mut cache),
            Decision::Allow(_)
        ));

        // The inline list of the configuration applies through `decide` too.
        cfg.providers[0].revocation.inline = Some(list(json!({ "username": ["alice"] })));
        assert!(matches!(run(&cfg, &[], &mut cache), Decision::Deny(_)));
        let d = denied(decide(
            &request(b"/"),
            &cfg,
            &keys(),
            &PureRust,
            &mut cache,
            NOW,
        ));
        assert_eq!(d.reason, "revoked");
    }
}
