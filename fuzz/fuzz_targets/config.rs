//! The plugin configuration, as an operator (or a typo) writes it.
#![no_main]

use cognito_edge_auth::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Config::parse(data) {
        // Every refusal renders to a message.
        assert!(!e.to_string().is_empty());
    }
});
