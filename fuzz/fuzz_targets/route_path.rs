//! The path check: a path the filter accepts is one that every modelled upstream resolves
//! to the resource the rules saw — servlet containers (`;` parameters dropped, `%uXXXX`
//! decoded, dot segments resolved), Werkzeug/Flask (escapes decoded once), a double-decoding
//! proxy — and, when rules ignore case, one that a Unicode-aware case-insensitive upstream
//! matches against a rule exactly when the rule's ASCII-case-insensitive match does.
#![no_main]

use cognito_edge_auth::policy::path::{canonical, models, path_matches, pattern};
use libfuzzer_sys::fuzz_target;

/// Rule patterns (ASCII, as case-insensitive patterns must be).
const PATTERNS: [&str; 8] = ["/admin", "/admin/", "/public/", "/s", "/k", "/i", "/Key/", "/"];

fuzz_target!(|data: &[u8]| {
    let plain = canonical(data, false);
    let folding = canonical(data, true);
    if let Ok(seen) = &plain {
        if seen != "*" {
            for upstream in models::UPSTREAMS {
                let resolved = upstream.resolve(data);
                assert_eq!(resolved.as_deref(), Some(seen.as_ref()), "{}", upstream.name);
            }
        }
    }
    if let Ok(seen) = &folding {
        assert_eq!(plain.as_ref().ok(), Some(seen), "case folding only refuses more");
        for p in PATTERNS {
            assert_eq!(
                path_matches(seen, p, true, false),
                models::unicode_ci_prefix(seen, p),
                "{p}"
            );
        }
    }
    // A pattern is stored in the form a request that spells it is matched in.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(stored) = pattern(text, false, true) {
            assert_eq!(plain.as_deref().ok(), Some(stored.as_str()));
        }
    }
});
