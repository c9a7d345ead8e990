//! The per-document records (a JWKS, a revocation list) in Envoy's shared data, which every
//! worker VM of the plugin sees.

use crate::config::RemoteJwks;
use crate::refresh::{self, Schedule};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// How often a compare-and-swap is retried when another worker wrote in between.
const CAS_TRIES: usize = 8;
/// The `cas` of a write that must only create a key: Envoy refuses it (`CasMismatch`) once the
/// key exists, unless the entry's own `cas` is this (one in four billion writes).
pub const CREATE_ONLY: u32 = u32::MAX;

/// Applies `change` to the value at `name` atomically: compare-and-swap, tried again when
/// another worker wrote in between. `change` sees the current bytes (`None`: no value yet) and
/// returns those to write, or `None` to leave the value alone. `true` if it wrote.
pub fn update(name: &str, mut change: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>) -> bool {
    for _ in 0..CAS_TRIES {
        let (current, cas) = match hostcalls::get_shared_data(name) {
            Ok((bytes, cas)) => (bytes, cas),
            Err(_) => (None, None),
        };
        let Some(next) = change(current.as_deref()) else {
            return false;
        };
        match hostcalls::set_shared_data(name, Some(&next), Some(cas.unwrap_or(CREATE_ONLY))) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// The shared-data keys of one JWKS. Keyed by cluster and URI, so plugins that fetch the same
/// document share it, and ones that fetch different documents never mix them up.
pub struct Keys {
    schedule: String,
    body: String,
}

impl Keys {
    pub fn for_jwks(jwks: &RemoteJwks) -> Keys {
        Keys::at(format!(
            "cognito-edge-auth/v1/{}/{}",
            jwks.cluster, jwks.uri
        ))
    }

    /// A fetched revocation list: its own keys, even where its URI is a JWKS's.
    pub fn for_revocation_list(list: &RemoteJwks) -> Keys {
        Keys::at(format!(
            "cognito-edge-auth/v1/revocation/{}/{}",
            list.cluster, list.uri
        ))
    }

    fn at(base: String) -> Keys {
        Keys {
            schedule: format!("{base}/schedule"),
            body: format!("{base}/body"),
        }
    }

    /// The current schedule, `None` while no worker has created it.
    pub fn schedule(&self) -> Option<Schedule> {
        match hostcalls::get_shared_data(&self.schedule) {
            Ok((Some(bytes), _)) => Schedule::decode(&bytes),
            _ => None,
        }
    }

    /// Applies `change` to the schedule atomically. `change` returns `None` to leave it alone.
    /// Returns the record written, or `None` if nothing was written.
    pub fn update(
        &self,
        mut change: impl FnMut(&Schedule) -> Option<Schedule>,
    ) -> Option<Schedule> {
        for _ in 0..CAS_TRIES {
            let (current, cas) = match hostcalls::get_shared_data(&self.schedule) {
                Ok((Some(bytes), cas)) => (Schedule::decode(&bytes), cas),
                _ => (None, None),
            };
            let Some(current) = current else {
                // First worker here (or a record we cannot read): create it, and take any
                // lease on a later tick, so two creators cannot both end up holding one.
                let _ = hostcalls::set_shared_data(
                    &self.schedule,
                    Some(&Schedule::default().encode()),
                    None,
                );
                return None;
            };
            let next = change(&current)?;
            match hostcalls::set_shared_data(&self.schedule, Some(&next.encode()), cas) {
                Ok(()) => return Some(next),
                Err(Status::CasMismatch) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    pub fn body(&self) -> Option<(u64, Vec<u8>)> {
        match hostcalls::get_shared_data(&self.body) {
            Ok((Some(stored), _)) => refresh::decode_body(&stored).map(|(v, b)| (v, b.to_vec())),
            _ => None,
        }
    }

    pub fn set_body(&self, version: u64, body: &[u8]) {
        let _ = hostcalls::set_shared_data(
            &self.body,
            Some(&refresh::encode_body(version, body)),
            None,
        );
    }
}
