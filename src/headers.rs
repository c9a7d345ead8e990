//! A request's headers as both hosts hand them over: lowercase names, values as raw bytes
//! (a client may send values that are not UTF-8).

/// The value of request header `name` (lowercase, as Envoy hands headers over): the first
/// one, if the request has several.
pub fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}
