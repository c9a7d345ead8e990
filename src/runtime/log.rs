//! The denial log line both hosts write: status, reason, provider and principal when known,
//! method and path without the query string. Never the token.

use crate::config::LogLevel;
use crate::decision::{Denied, Reported, Request};

/// One line per denied request (at the configured level).
pub fn denial(level: LogLevel, denied: &Denied, request: &Request) {
    line(
        level,
        "denied",
        denied.response.status,
        denied.reason,
        denied.provider.as_deref(),
        denied.principal.as_deref(),
        request,
    );
}

/// One line per request forwarded in report-only mode that would have been refused (at the
/// denial's level): `report-only: would deny <status> reason=… provider=… principal=…`.
pub fn reported(level: LogLevel, reported: &Reported, request: &Request) {
    line(
        level,
        "report-only: would deny",
        reported.status,
        reported.reason,
        reported.provider.as_deref(),
        reported.principal.as_deref(),
        request,
    );
}

fn line(
    level: LogLevel,
    what: &str,
    status: u32,
    reason: &str,
    provider: Option<&str>,
    principal: Option<&str>,
    request: &Request,
) {
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
        "cognito-edge-auth: {what} {status} reason={reason} provider={} principal={} {} {}",
        provider.unwrap_or("-"),
        principal.map_or_else(|| "-".to_string(), |p| printable(p.as_bytes())),
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
