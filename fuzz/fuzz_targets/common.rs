//! Shared by the fuzz targets: a configuration and key set like a real deployment's.

use cognito_edge_auth::config::Config;
use cognito_edge_auth::jwks::KeySet;
use std::sync::OnceLock;

/// A time at which the seed tokens are valid.
pub const NOW: u64 = 1_800_000_100;

#[allow(dead_code)] // the login target has a configuration of its own
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

/// A request's method, path and headers (name, raw value).
#[allow(dead_code)] // the verify targets need no request
pub type Parts<'a> = (&'a [u8], &'a [u8], Vec<(String, Vec<u8>)>);

/// A request as the fuzz targets spell it: "METHOD PATH" on the first line, then
/// "name: value" header lines, as raw bytes (names lowercased, as Envoy hands them over).
#[allow(dead_code)] // the verify targets need no request
pub fn request_parts(data: &[u8]) -> Parts<'_> {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut parts = first.splitn(2, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let headers = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?.trim().to_ascii_lowercase();
            let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
            Some((name, value.to_vec()))
        })
        .collect();
    (method, path, headers)
}
