//! Sealing cookie values: XChaCha20-Poly1305 with a random 24-byte nonce, the cookie's name
//! as associated data (a login-state cookie cannot pass for a session cookie), base64url.
//!
//! Layout before base64url: version (1 byte) · nonce (24) · ciphertext + tag (16).

use crate::config::login::CookieKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const NONCE_BYTES: usize = 24;
const VERSION: u8 = 1;
const TAG_BYTES: usize = 16;

/// `plaintext` sealed under `key` for the cookie `name`, with `nonce` (random, from the host).
pub fn seal(
    key: &CookieKey,
    name: &str,
    plaintext: &[u8],
    nonce: &[u8; NONCE_BYTES],
) -> Option<String> {
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let sealed = cipher
        .encrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad: name.as_bytes(),
            },
        )
        .ok()?;
    let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// The plaintext of cookie `name`'s `value`, if one of `keys` sealed it for that name and
/// nobody changed a bit of it since.
pub fn open(keys: &[CookieKey], name: &str, value: &str) -> Option<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
    let (&version, rest) = raw.split_first()?;
    if version != VERSION || rest.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, sealed) = rest.split_at_checked(NONCE_BYTES)?;
    let nonce = XNonce::from(<[u8; NONCE_BYTES]>::try_from(nonce).ok()?);
    keys.iter().find_map(|key| {
        XChaCha20Poly1305::new(&key.0.into())
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
    })
}

/// The length of a sealed value for a plaintext of `n` bytes.
pub fn sealed_len(n: usize) -> usize {
    (1 + NONCE_BYTES + n + TAG_BYTES)
        .saturating_mul(4)
        .div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> CookieKey {
        CookieKey([b; 32])
    }

    #[test]
    fn round_trip() {
        let v = seal(&key(1), "cea_session_0", b"hello", &[7; 24]).unwrap();
        assert_eq!(v.len(), sealed_len(5));
        assert_eq!(open(&[key(1)], "cea_session_0", &v).unwrap(), b"hello");
        assert!(!v.contains("hello"));
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let v = seal(&key(1), "n", b"payload", &[7; 24]).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&v).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 1;
            assert_eq!(
                open(&[key(1)], "n", &URL_SAFE_NO_PAD.encode(t)),
                None,
                "byte {i}"
            );
        }
        assert_eq!(open(&[key(1)], "n", &v[..v.len() - 1]), None, "truncated");
        assert_eq!(open(&[key(1)], "n", "not base64!"), None);
        assert_eq!(open(&[key(1)], "n", ""), None);
    }

    #[test]
    fn wrong_key_or_name_is_refused() {
        let v = seal(&key(1), "cea_session_0", b"x", &[7; 24]).unwrap();
        assert_eq!(open(&[key(2)], "cea_session_0", &v), None);
        assert_eq!(
            open(&[key(1)], "cea_login_abc", &v),
            None,
            "another cookie's name"
        );
    }

    #[test]
    fn rotation_opens_with_the_previous_key() {
        let old = seal(&key(1), "n", b"x", &[7; 24]).unwrap();
        let new = seal(&key(2), "n", b"x", &[8; 24]).unwrap();
        let keys = [key(2), key(1)];
        assert_eq!(open(&keys, "n", &old).unwrap(), b"x");
        assert_eq!(open(&keys, "n", &new).unwrap(), b"x");
        assert_eq!(
            open(&[key(2)], "n", &old),
            None,
            "once the old key is dropped"
        );
    }

    #[test]
    fn nonces_differ_so_values_differ() {
        let a = seal(&key(1), "n", b"x", &[1; 24]).unwrap();
        let b = seal(&key(1), "n", b"x", &[2; 24]).unwrap();
        assert_ne!(a, b);
    }
}
