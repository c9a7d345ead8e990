//! Who a verified caller is, built only from what the issuer vouches for (docs/security-model.md, "Security
//! model").
//!
//! - An email is evidence of a domain only as the token's own `email` claim with
//!   `email_verified` true (or a provider whose every email is vouched for). Nothing is ever
//!   completed with `principal_domain`.
//! - A configured name (`admin_principals`, `principals`) matches a verified email's local
//!   part in one of the configured domains, or the value of a claim the operator names as
//!   immutable for that provider (`name_claims`), byte for byte unless the provider declares
//!   its usernames case-insensitive (then ASCII case is ignored; Unicode is never folded).
//! - A value with anything but visible ASCII, or with `"` `,` `;` `\`, never matches and never
//!   becomes a name; such a group never matches and never reaches a header.

use super::Refusal;
use crate::config::values::{is_name, is_name_byte, is_safe_value};
use crate::config::{Policy, PrincipalSource, TokenUse, Trust};
use crate::verify::Claims;
use serde_json::{Map, Value};

/// The claim that carries an email address in list mode, and the only one `email_verified`
/// speaks for.
const EMAIL_CLAIM: &str = "email";

/// The verified caller, as the upstream learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The first usable principal claim: a verified email's local part (lowercase), or a
    /// name claim's value (lowercase only where the provider's usernames are
    /// case-insensitive). A display name: it proves nothing by itself.
    pub principal: String,
    /// The token's email address, verified or not (only a verified one goes upstream).
    pub email: Option<Email>,
    pub admin: bool,
    /// `cognito:groups`, without values that could not be matched or sent safely.
    pub groups: Vec<String>,
    /// A machine client's token (client credentials, no user): exempt from domain
    /// enforcement because the provider lists its client in `machine_clients`.
    pub machine: bool,
    /// Values of the provider's `name_claims`: what configured names are compared with.
    names: Vec<String>,
    /// The provider declares usernames case-insensitive: names compare ignoring ASCII case.
    names_ignore_case: bool,
}

/// An email address taken from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub address: String,
    /// Before the `@`, as sent.
    pub local: String,
    /// After the `@`, ASCII lowercase.
    pub domain: String,
    /// The issuer vouches for it: the `email` claim with `email_verified` true, or a
    /// provider with `require_email_verified: false`.
    pub verified: bool,
}

/// Why a caller does not pass domain enforcement or a `domains` requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainFailure {
    /// The token has no email address at all.
    NoEmail,
    /// The address is of another domain.
    OtherDomain,
    /// The address is of the right domain but the issuer does not vouch for it.
    Unverified,
}

impl Identity {
    /// Who the verified caller is, or why the token names nobody usable (401).
    pub fn of(claims: &Claims, policy: &Policy) -> Result<Identity, Refusal> {
        let all = &claims.all;
        let trust = policy.trust(claims.provider);
        let (principal, email) = match &policy.principal {
            PrincipalSource::Claims(list) => {
                let email = email(all, EMAIL_CLAIM, trust);
                let principal = list
                    .iter()
                    .find_map(|claim| {
                        principal_from(all, claim, EMAIL_CLAIM, email.as_ref(), trust)
                    })
                    .ok_or_else(|| {
                        Refusal::NoPrincipal(format!(
                            "the token has no usable principal claim (looked for {})",
                            list.join(", ")
                        ))
                    })?;
                (principal, email)
            }
            PrincipalSource::Mapping {
                username,
                email: email_claim,
            } => {
                let from = email_claim.as_deref().unwrap_or(EMAIL_CLAIM);
                let email = email(all, from, trust);
                let principal = principal_from(all, username, from, email.as_ref(), trust)
                    .ok_or_else(|| {
                        Refusal::NoPrincipal(format!("the token has no usable {username} claim"))
                    })?;
                if email_claim.is_some() && email.is_none() {
                    return Err(Refusal::NoPrincipal(format!(
                        "the token's {from} claim is not a usable email address"
                    )));
                }
                (principal, email)
            }
        };
        let machine = claims.token_use == Some(TokenUse::Access)
            && !all.contains_key("username")
            && claims
                .client_id
                .as_ref()
                .is_some_and(|c| trust.machine_clients.contains(c));
        let mut identity = Identity {
            principal,
            email,
            admin: false,
            groups: groups(all),
            machine,
            names: trust
                .name_claims
                .iter()
                .filter_map(|claim| name_value(all.get(claim)))
                .collect(),
            names_ignore_case: !trust.username_case_sensitive,
        };
        identity.admin = policy
            .admin_principals
            .iter()
            .any(|name| identity.is_named(name, policy))
            || identity
                .groups
                .iter()
                .any(|g| policy.admin_groups.contains(g));
        Ok(identity)
    }

    /// The email address the upstream may be told: only one the issuer vouches for.
    pub fn verified_email(&self) -> Option<&str> {
        self.email
            .as_ref()
            .filter(|e| e.verified)
            .map(|e| e.address.as_str())
    }

    /// Whether the configured principal `name` is this caller: a verified email of one of
    /// the configured domains with that local part, or a trusted name claim with that value.
    pub fn is_named(&self, name: &str, policy: &Policy) -> bool {
        let by_email = self.email.as_ref().is_some_and(|e| {
            e.verified && policy.is_own_domain(&e.domain) && e.local.eq_ignore_ascii_case(name)
        });
        by_email
            || self.names.iter().any(|n| {
                if self.names_ignore_case {
                    n.eq_ignore_ascii_case(name)
                } else {
                    n == name
                }
            })
    }

    /// Whether the caller's verified email is of one of `domains` (lowercase).
    pub fn email_domain_in(&self, domains: &[String]) -> Result<(), DomainFailure> {
        self.verified_email_of(|d| domains.iter().any(|x| x == d))
    }

    /// `enforce_principal_domain`: a verified email of `principal_domain` or an allowed
    /// domain; a listed machine client passes without one.
    pub fn domain_check(&self, policy: &Policy) -> Result<(), DomainFailure> {
        if self.machine {
            return Ok(());
        }
        self.verified_email_of(|d| policy.is_own_domain(d))
    }

    fn verified_email_of(&self, domain_ok: impl Fn(&str) -> bool) -> Result<(), DomainFailure> {
        match &self.email {
            None => Err(DomainFailure::NoEmail),
            Some(e) if !domain_ok(&e.domain) => Err(DomainFailure::OtherDomain),
            Some(e) if !e.verified => Err(DomainFailure::Unverified),
            Some(_) => Ok(()),
        }
    }
}

/// The principal from one claim: the email's local part when the claim is the one the
/// email comes from and the email is verified, else the claim's value as a name.
fn principal_from(
    all: &Map<String, Value>,
    claim: &str,
    email_claim: &str,
    email: Option<&Email>,
    trust: &Trust,
) -> Option<String> {
    if claim == email_claim {
        return email
            .filter(|e| e.verified)
            .map(|e| e.local.to_ascii_lowercase());
    }
    let name = name_value(all.get(claim))?;
    Some(if trust.username_case_sensitive {
        name
    } else {
        name.to_ascii_lowercase()
    })
}

/// A claim value usable as a name (see [`is_name`]).
fn name_value(value: Option<&Value>) -> Option<String> {
    value?.as_str().filter(|v| is_name(v)).map(str::to_string)
}

/// The address in `claim`: one `@` with a usable local part and a domain of letters,
/// digits, `-` and `.`; verified only as the `email` claim with `email_verified` true, or
/// when the provider vouches for every address.
fn email(all: &Map<String, Value>, claim: &str, trust: &Trust) -> Option<Email> {
    let address = all.get(claim)?.as_str()?;
    let (local, domain) = address.split_once('@')?;
    let local_ok = !local.is_empty() && local.bytes().all(is_name_byte) && !local.contains('@');
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !local_ok || !domain_ok || address.len() > 320 {
        return None;
    }
    let vouched = claim == EMAIL_CLAIM
        && match all.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            // Cognito sends a boolean; moto and some pools' triggers send the string.
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
    Some(Email {
        address: address.to_string(),
        local: local.to_string(),
        domain: domain.to_ascii_lowercase(),
        verified: vouched || !trust.require_email_verified,
    })
}

/// `cognito:groups`, keeping only groups that can be compared and sent as they are.
fn groups(all: &Map<String, Value>) -> Vec<String> {
    match all.get("cognito:groups") {
        Some(Value::Array(groups)) => groups
            .iter()
            .filter_map(Value::as_str)
            .filter(|g| is_safe_value(g))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::tests::{
        authenticated, claims, decide, forbidden, identify_in, om, policy, user,
    };
    use crate::policy::{authorize, Forbidden};
    use serde_json::json;

    /// A pool (provider 0, `pool` fields merged in) and a plain JWT issuer (provider 1,
    /// `plain` fields merged in), with the top-level `fields`.
    fn two_providers(fields: Value, pool: Value, plain: Value) -> Policy {
        let mut v = json!({ "providers": [
            { "name": "cognito", "user_pool_id": "us-east-1_Abc123", "client_ids": ["client1", "m2m"],
              "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } },
            { "name": "bots", "issuer": "open-metadata.org",
              "jwks": { "cluster": "om", "uri": "https://om.example/api/v1/system/config/jwks" } },
        ]});
        for (k, val) in pool.as_object().unwrap() {
            v["providers"][0][k] = val.clone();
        }
        for (k, val) in plain.as_object().unwrap() {
            v["providers"][1][k] = val.clone();
        }
        for (k, val) in fields.as_object().unwrap() {
            v[k] = val.clone();
        }
        Config::parse(v.to_string().as_bytes()).unwrap().policy
    }

    /// Claims of a Cognito access token of `client`.
    fn access(client: &str, all: Value) -> Claims {
        let mut c = claims(all);
        c.token_use = Some(TokenUse::Access);
        c.client_id = Some(client.into());
        c
    }

    /// Claims of provider 1 (the plain JWT issuer).
    fn bot(all: Value) -> Claims {
        let mut c = claims(all);
        c.provider = 1;
        c.token_use = None;
        c.client_id = None;
        c
    }

    fn verified(email: &str, username: &str) -> Value {
        json!({ "sub": "s-1", "email": email, "email_verified": true, "cognito:username": username })
    }

    #[test]
    fn the_principal_is_the_first_usable_claim() {
        let p = policy(json!({}));
        let i = identify_in(&p, verified("Alice.Smith@Example.com", "alice")).unwrap();
        assert_eq!(i.principal, "alice.smith", "a verified email's local part");
        assert_eq!(i.verified_email(), Some("Alice.Smith@Example.com"));
        assert_eq!(
            i.email.as_ref().map(|e| e.domain.as_str()),
            Some("example.com")
        );
        // An unverified email is not a principal: the next claim is.
        let i = identify_in(
            &p,
            json!({ "email": "boss@example.com", "cognito:username": "Eve" }),
        )
        .unwrap();
        assert_eq!(
            i.principal, "Eve",
            "a case-sensitive pool's username, as it is"
        );
        assert_eq!(i.verified_email(), None);
        // Access tokens carry `username` and no email.
        let i = identify_in(&p, json!({ "username": "Bob", "sub": "s" })).unwrap();
        assert_eq!((i.principal.as_str(), i.email), ("Bob", None));
        // preferred_username is not a default principal claim: users set it.
        let i = identify_in(&p, json!({ "preferred_username": "root", "sub": "s-9" })).unwrap();
        assert_eq!(i.principal, "s-9");
    }

    #[test]
    fn unusable_values_never_become_names() {
        let p = policy(json!({}));
        for bad in [
            json!(""),
            json!(" alice"),
            json!("alice "),
            json!("a b"),
            json!(7),
            json!(["a"]),
            json!("a\nb"),
            json!("a,b"),
            json!("a;b"),
            json!("a\"b"),
            json!("a\\b"),
            json!("user1@open-metadata.org"),
            json!("\u{212A}im"),
            json!("ﬀ"),
            json!("Zoë"),
            json!("x".repeat(257)),
        ] {
            let i = identify_in(&p, json!({ "cognito:username": bad, "sub": "S-1" })).unwrap();
            assert_eq!(i.principal, "S-1", "{bad}");
        }
        for bad in [
            "@example.com",
            "a@",
            "a@b@c",
            "a,b@example.com",
            "a@exa mple.com",
            "a@exämple.com",
            "ａ@example.com",
        ] {
            let i = identify_in(
                &p,
                json!({ "email": bad, "email_verified": true, "sub": "S-1" }),
            )
            .unwrap();
            assert_eq!((i.principal.as_str(), i.email), ("S-1", None), "{bad}");
        }
    }

    #[test]
    fn a_missing_principal_is_a_401_naming_the_claims() {
        let p = policy(json!({ "principal_claims": ["email", "sub"] }));
        assert_eq!(
            identify_in(&p, json!({ "username": "x" })),
            Err(Refusal::NoPrincipal(
                "the token has no usable principal claim (looked for email, sub)".into()
            ))
        );
        assert!(
            identify_in(&p, json!({ "email": "x@example.com" })).is_err(),
            "an unverified email names nobody"
        );
    }

    #[test]
    fn nothing_is_completed_with_the_principal_domain() {
        // A Cognito access token: no email. Before, alice@open-metadata.org was implied.
        let om = policy(json!({
            "admin_principals": ["user1"],
            "principal_domain": "open-metadata.org",
            "enforce_principal_domain": true,
        }));
        let token = access("client1", json!({ "username": "alice", "sub": "s" }));
        let i = Identity::of(&token, &om).unwrap();
        assert_eq!((i.principal.as_str(), i.verified_email()), ("alice", None));
        assert_eq!(i.domain_check(&om), Err(DomainFailure::NoEmail));
        assert!(matches!(
            authorize(&token, &authenticated(), &om),
            Err(Refusal::Forbidden(Forbidden::NoDomain, _))
        ));
        assert!(Forbidden::NoDomain
            .description()
            .contains("pre token generation"));
        // Nor does a bare name become the admin of that name.
        let i = Identity::of(&access("client1", json!({ "username": "user1" })), &om).unwrap();
        assert!(!i.admin);
        assert!(!i.is_named("user1", &om));
    }

    #[test]
    fn email_verified_vouches_only_for_the_email_claim() {
        let p = policy(json!({ "principal_domain": "x.com" }));
        let v = |all: Value| {
            identify_in(&p, all)
                .unwrap()
                .verified_email()
                .map(str::to_string)
        };
        assert_eq!(
            v(json!({ "sub": "s", "email": "a@x.com", "email_verified": true })).as_deref(),
            Some("a@x.com")
        );
        assert!(
            v(json!({ "sub": "s", "email": "a@x.com", "email_verified": "TRUE" })).is_some(),
            "moto sends a string"
        );
        for not in [json!(false), json!("false"), json!(1), json!(null)] {
            assert!(
                v(json!({ "sub": "s", "email": "a@x.com", "email_verified": not })).is_none(),
                "{not}"
            );
        }
        assert!(v(json!({ "sub": "s", "email": "a@x.com" })).is_none());
        // A mapping that takes the email from another claim: email_verified is not about it.
        let upn =
            policy(json!({ "principal_claim_mapping": { "username": "sub", "email": "upn" } }));
        let i = identify_in(
            &upn,
            json!({ "sub": "s", "upn": "a@x.com", "email_verified": true }),
        )
        .unwrap();
        assert_eq!(i.verified_email(), None);
        // A provider that vouches for every email it issues.
        let lax = two_providers(
            json!({}),
            json!({}),
            json!({ "require_email_verified": false }),
        );
        let i = Identity::of(
            &bot(json!({ "sub": "ingestion-bot", "email": "ingestion-bot@open-metadata.org" })),
            &lax,
        )
        .unwrap();
        assert_eq!(i.verified_email(), Some("ingestion-bot@open-metadata.org"));
        let i = Identity::of(&claims(json!({ "sub": "s", "email": "a@x.com" })), &lax).unwrap();
        assert_eq!(
            i.verified_email(),
            None,
            "the pool still needs email_verified"
        );
        // The top-level default applies to providers that do not say.
        let all_lax = two_providers(
            json!({ "require_email_verified": false }),
            json!({}),
            json!({}),
        );
        let i = Identity::of(&claims(json!({ "sub": "s", "email": "a@x.com" })), &all_lax).unwrap();
        assert_eq!(i.verified_email(), Some("a@x.com"));
    }

    #[test]
    fn a_claim_mapping_names_the_claims() {
        let p = policy(
            json!({ "principal_claim_mapping": { "username": "cognito:username", "email": "email" } }),
        );
        let i = identify_in(
            &p,
            json!({ "cognito:username": "Dave", "email": "d@example.com", "email_verified": "true" }),
        )
        .unwrap();
        assert_eq!(
            (i.principal.as_str(), i.verified_email()),
            ("Dave", Some("d@example.com"))
        );
        assert_eq!(
            identify_in(&p, json!({ "email": "d@example.com" })),
            Err(Refusal::NoPrincipal(
                "the token has no usable cognito:username claim".into()
            ))
        );
        assert_eq!(
            identify_in(&p, json!({ "cognito:username": "dave", "email": "dave" })),
            Err(Refusal::NoPrincipal(
                "the token's email claim is not a usable email address".into()
            ))
        );
        let by_email = policy(json!({ "principal_claim_mapping": { "username": "email" } }));
        let i = identify_in(
            &by_email,
            json!({ "email": "D@example.com", "email_verified": true }),
        )
        .unwrap();
        assert_eq!(i.principal, "d");
        assert!(identify_in(&by_email, json!({ "email": "D@example.com" })).is_err());
    }

    #[test]
    fn domain_enforcement_needs_a_verified_email_of_the_domain() {
        let om = om();
        let ok = |c: Value| decide(&om, c, &authenticated());
        assert_eq!(ok(user("user3@open-metadata.org")), Ok(true));
        assert_eq!(
            ok(user("user3@OPEN-METADATA.ORG")),
            Ok(true),
            "domains ignore case"
        );
        assert_eq!(
            forbidden(&om, user("user3@example.com"), &authenticated()),
            Forbidden::DomainNotAllowed
        );
        assert_eq!(
            forbidden(&om, user("user3@sub.open-metadata.org"), &authenticated()),
            Forbidden::DomainNotAllowed,
            "exact domains, no subdomains"
        );
        let unverified =
            json!({ "sub": "s", "email": "user3@open-metadata.org", "email_verified": false });
        assert_eq!(
            forbidden(&om, unverified, &authenticated()),
            Forbidden::UnverifiedEmail
        );
        assert_eq!(
            forbidden(
                &om,
                json!({ "sub": "s", "preferred_username": "user3" }),
                &authenticated()
            ),
            Forbidden::NoDomain
        );
        let allowed = policy(
            json!({ "principal_domain": "open-metadata.org", "enforce_principal_domain": true, "allowed_domains": ["Partner.example"] }),
        );
        assert_eq!(
            decide(&allowed, user("p@partner.EXAMPLE"), &authenticated()),
            Ok(true)
        );
        let open = policy(json!({ "principal_domain": "open-metadata.org" }));
        assert_eq!(
            decide(&open, user("x@example.com"), &authenticated()),
            Ok(true),
            "not enforced"
        );
    }

    #[test]
    fn machine_clients_pass_domain_enforcement_only_when_listed() {
        let fields = json!({ "principal_domain": "example.com", "enforce_principal_domain": true });
        let strict = two_providers(fields.clone(), json!({}), json!({}));
        let m2m = json!({ "sub": "m2m", "scope": "api/read" });
        assert!(matches!(
            authorize(&access("m2m", m2m.clone()), &authenticated(), &strict),
            Err(Refusal::Forbidden(Forbidden::NoDomain, _))
        ));
        let listed = two_providers(fields, json!({ "machine_clients": ["m2m"] }), json!({}));
        let i = authorize(&access("m2m", m2m.clone()), &authenticated(), &listed)
            .unwrap()
            .unwrap();
        assert!(i.machine && !i.admin);
        assert_eq!(i.principal, "m2m");
        // A user's token of that client is a user's: it needs the verified email.
        let users = json!({ "sub": "s", "username": "alice" });
        assert!(authorize(&access("m2m", users), &authenticated(), &listed).is_err());
        // An ID token of that client is a user's too.
        assert!(authorize(&claims(m2m), &authenticated(), &listed).is_err());
    }

    #[test]
    fn admins_by_verified_email_of_the_domain() {
        let om = om();
        let admin = |c: Value| identify_in(&om, c).unwrap().admin;
        assert!(admin(user("user1@open-metadata.org")));
        assert!(
            admin(user("USER2@open-metadata.org")),
            "local parts ignore ASCII case"
        );
        assert!(!admin(user("user3@open-metadata.org")));
        assert!(
            !admin(user("user1@evil.example")),
            "user1 of another domain is not user1"
        );
        assert!(!admin(
            json!({ "email": "user1@open-metadata.org", "email_verified": false, "sub": "s" })
        ));
        assert!(!admin(json!({ "preferred_username": "user1", "sub": "s" })));
        assert!(
            !admin(json!({ "cognito:username": "user1", "sub": "s" })),
            "names need name_claims"
        );
        assert!(!admin(user("\u{212A}im@open-metadata.org")));
        // Without a configured domain an email never names anybody.
        let bare = policy(json!({ "admin_principals": ["user1"] }));
        assert!(
            !identify_in(&bare, user("user1@anywhere.example"))
                .unwrap()
                .admin
        );
    }

    #[test]
    fn admins_by_a_name_claim_compare_exactly_unless_the_pool_says_otherwise() {
        let fields = json!({ "admin_principals": ["user1", "kim"] });
        let exact = two_providers(
            fields.clone(),
            json!({ "name_claims": ["cognito:username", "username"] }),
            json!({}),
        );
        let admin = |p: &Policy, name: &str| {
            let id =
                Identity::of(&claims(json!({ "sub": "s", "cognito:username": name })), p).unwrap();
            let acc = Identity::of(
                &access("client1", json!({ "sub": "s", "username": name })),
                p,
            )
            .unwrap();
            assert_eq!(id.admin, acc.admin, "{name}: both token kinds agree");
            id.admin
        };
        assert!(admin(&exact, "user1"));
        assert!(
            !admin(&exact, "USER1"),
            "a case-sensitive pool: USER1 is someone else"
        );
        assert!(!admin(&exact, "User1"));
        assert!(!admin(&exact, "\u{212A}im"), "KELVIN SIGN is not K");
        assert!(!admin(&exact, "user1,"));
        let folded = two_providers(
            fields,
            json!({ "name_claims": ["cognito:username", "username"], "username_case_sensitive": false }),
            json!({}),
        );
        assert!(admin(&folded, "USER1"), "declared case-insensitive");
        assert!(admin(&folded, "Kim"));
        assert!(!admin(&folded, "\u{212A}im"), "never Unicode folding");
        let i = Identity::of(
            &claims(json!({ "sub": "s", "cognito:username": "USER1" })),
            &folded,
        )
        .unwrap();
        assert_eq!(i.principal, "user1", "one name per person upstream");
    }

    #[test]
    fn a_plain_issuers_sub_is_nobody_unless_named() {
        let fields = json!({ "admin_principals": ["root"] });
        let p = two_providers(fields.clone(), json!({}), json!({}));
        let i = Identity::of(&bot(json!({ "sub": "root" })), &p).unwrap();
        assert_eq!((i.principal.as_str(), i.admin), ("root", false));
        let named = two_providers(fields, json!({}), json!({ "name_claims": ["sub"] }));
        assert!(
            Identity::of(&bot(json!({ "sub": "root" })), &named)
                .unwrap()
                .admin
        );
        assert!(
            !Identity::of(&claims(json!({ "sub": "root" })), &named)
                .unwrap()
                .admin,
            "the pool's sub is not named by the bots' trust"
        );
    }

    #[test]
    fn principals_requirements_use_the_same_evidence() {
        let p = two_providers(
            json!({ "principal_domain": "example.com" }),
            json!({ "name_claims": ["username"] }),
            json!({}),
        );
        let only = |names: Value| {
            let c = json!({ "rules": [{ "match": { "prefix": "/" }, "require": { "principals": names } }] });
            policy(c).rules[0].access.clone()
        };
        let alice = only(json!(["alice"]));
        let ok = |c: &Claims| authorize(c, &alice, &p).is_ok();
        assert!(ok(&claims(user("alice@example.com"))));
        assert!(!ok(&claims(user("alice@evil.example"))));
        assert!(ok(&access(
            "client1",
            json!({ "sub": "s", "username": "alice" })
        )));
        assert!(!ok(&access(
            "client1",
            json!({ "sub": "s", "username": "Alice" })
        )));
        assert!(!ok(&claims(
            json!({ "sub": "s", "preferred_username": "alice" })
        )));
    }

    #[test]
    fn groups_that_could_be_misread_are_dropped() {
        let p = policy(json!({ "admin_groups": ["admins"] }));
        let i = identify_in(&p, json!({ "sub": "s", "cognito:groups": ["a", "b,admins", "c;d", "q\"", " admins", "admins", "Zoë"] })).unwrap();
        assert_eq!(i.groups, vec!["a", "admins", "Zoë"]);
        assert!(i.admin);
        let i = identify_in(&p, json!({ "sub": "s", "cognito:groups": ["Admins"] })).unwrap();
        assert!(!i.admin, "group names are exact");
        let i = identify_in(&p, json!({ "sub": "s", "cognito:groups": "admins" })).unwrap();
        assert!(!i.admin && i.groups.is_empty(), "not a list");
    }

    #[test]
    fn trust_settings_are_checked_at_load() {
        let refused = |pool: Value, plain: Value| {
            let mut v = json!({ "providers": [
                { "name": "cognito", "user_pool_id": "us-east-1_Abc123", "client_ids": ["client1"],
                  "jwks": { "cluster": "c", "uri": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc123/.well-known/jwks.json" } },
                { "name": "bots", "issuer": "open-metadata.org", "jwks": { "cluster": "om", "uri": "https://om.example/jwks" } },
            ]});
            for (k, val) in pool.as_object().unwrap() {
                v["providers"][0][k] = val.clone();
            }
            for (k, val) in plain.as_object().unwrap() {
                v["providers"][1][k] = val.clone();
            }
            Config::parse(v.to_string().as_bytes())
                .unwrap_err()
                .to_string()
        };
        let e = refused(json!({ "name_claims": ["preferred_username"] }), json!({}));
        assert!(
            e.contains("`providers[0].name_claims[0]`") && e.contains("set by users"),
            "{e}"
        );
        let e = refused(json!({ "name_claims": ["custom:employee"] }), json!({}));
        assert!(e.contains("sub, cognito:username, username"), "{e}");
        let e = refused(json!({}), json!({ "name_claims": ["email"] }));
        assert!(e.contains("`providers[1].name_claims[0]`"), "{e}");
        let e = refused(json!({ "name_claims": [] }), json!({}));
        assert!(e.contains("`providers[0].name_claims`"), "{e}");
        let e = refused(json!({ "machine_clients": ["nope"] }), json!({}));
        assert!(e.contains("`providers[0].machine_clients[0]`"), "{e}");
        let e = refused(json!({}), json!({ "machine_clients": ["x"] }));
        assert!(e.contains("`providers[1].machine_clients`"), "{e}");
        let e = refused(json!({ "username_case_sensitive": "no" }), json!({}));
        assert!(e.contains("providers[0].username_case_sensitive"), "{e}");
        // The plain issuer may name its own claims.
        two_providers(
            json!({}),
            json!({}),
            json!({ "name_claims": ["sub", "username"] }),
        );
    }
}
