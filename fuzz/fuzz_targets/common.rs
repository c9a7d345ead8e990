//! Shared by the fuzz targets: a configuration and key set like a real deployment's.

use cognito_edge_auth::config::Config;
use cognito_edge_auth::jwks::KeySet;
use std::sync::OnceLock;

/// A time at which the seed tokens are valid.
pub const NOW: u64 = 1_800_000_100;

pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::parse(include_bytes!("../config.json")).expect("fuzz/config.json"))
}

pub fn keys() -> &'static [Option<KeySet>] {
    static KEYS: OnceLock<Vec<Option<KeySet>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let parsed = KeySet::parse(include_bytes!("../jwks.json")).expect("fuzz/jwks.json");
        vec![Some(parsed.keys)]
    })
}
