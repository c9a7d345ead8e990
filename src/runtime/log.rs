//! The denial log line both hosts write: status, reason, provider and principal when known,
//! method and path without the query string. Never the token.

use crate::config::LogLevel;
use crate::decision::{Denied, Request};

/// One line per denied request (at the configured level).
pub fn denial(level: LogLevel, denied: &Denied, request: &Request) {
    let level = match level {
        LogLevel::Off => return,
        LogLevel::Debug => log::Level::Debug,
        LogLevel::Info => log::Level::Info,
        LogLevel::Warn => log::Level::Warn,
    };
    if !log::log_enabled!(level) {
        return;
    }
    let path = request
        .path
        .split(|&b| b == b'?')
        .next()
        .unwrap_or_default();
    log::log!(
        level,
        "cognito-edge-auth: denied {} reason={} provider={} principal={} {} {}",
        denied.response.status,
        denied.reason,
        denied.provider.as_deref().unwrap_or("-"),
        denied
            .principal
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| printable(p.as_bytes())),
        printable(request.method),
        printable(path),
    );
}

/// At most 256 bytes, with anything but printable ASCII shown as `?`.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes.get(..256).unwrap_or(bytes));
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}
