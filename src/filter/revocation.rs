//! Fetched revocation lists: one fetch per process per interval (the shared schedule of
//! `refresh`, as for a JWKS), the last good list kept on any failure.

use super::shared::Shared;
use super::shared_data;
use crate::config::RemoteList;
use crate::revocation::{RevocationList, MAX_LIST_BYTES};
use log::{debug, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use std::time::Duration;

/// On each tick: installs newer lists from shared data, and starts the fetches that are due
/// and whose lease this worker won. Returns the started calls (token, provider).
pub fn tick(
    shared: &Shared,
    worker: u64,
    now: u64,
    in_flight: impl Fn(usize) -> bool,
) -> Vec<(u32, usize)> {
    let mut started = Vec::new();
    for index in 0..shared.config.providers.len() {
        let Some((remote, store)) = remote(shared, index) else {
            continue;
        };
        sync(shared, index, store);
        if in_flight(index)
            || store
                .update(|s| s.take_lease(worker, now, remote.timeout_ms))
                .is_none()
        {
            continue;
        }
        let headers = vec![
            (":method", "GET"),
            (":path", remote.path.as_str()),
            (":authority", remote.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(remote.timeout_ms);
        match hostcalls::dispatch_http_call(&remote.cluster, headers, None, vec![], timeout) {
            Ok(token) => started.push((token, index)),
            Err(status) => failed(
                shared,
                worker,
                index,
                now,
                &format!("cannot call cluster {}: {status:?}", remote.cluster),
            ),
        }
    }
    started
}

/// A fetch of provider `index`'s list finished (the call's response is readable now).
pub fn finished(shared: &Shared, worker: u64, index: usize, body_size: usize, now: u64) {
    let Some((remote, store)) = remote(shared, index) else {
        return;
    };
    let case_sensitive = shared.config.policy.trust(index).username_case_sensitive;
    let result = read_response(body_size).and_then(|body| {
        RevocationList::parse(&body, case_sensitive)
            .map(|list| (body, list))
            .map_err(|e| e.to_string())
    });
    let (body, list) = match result {
        Ok(ok) => ok,
        Err(reason) => return failed(shared, worker, index, now, &reason),
    };
    let version = store.schedule().map_or(1, |s| s.version.saturating_add(1));
    store.set_body(version, &body);
    let refresh_ms = remote.refresh_interval_seconds.saturating_mul(1000);
    store.update(|s| Some(s.succeeded(worker, now, refresh_ms)));
    shared.metrics.borrow().list_fetched(index, true);
    info!(
        "cognito-edge-auth: provider {}: revocation list fetched, {} entries, version {version}",
        provider_name(shared, index),
        list.len()
    );
    install(shared, index, version, list);
}

fn read_response(body_size: usize) -> Result<Vec<u8>, String> {
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .map(|s| String::from_utf8_lossy(&s).into_owned());
    match status.as_deref() {
        None => return Err("no response (timeout or connection failure)".into()),
        Some("200") => {}
        Some(other) => return Err(format!("HTTP status {other}")),
    }
    if body_size > MAX_LIST_BYTES {
        return Err(format!(
            "body of {body_size} bytes is over the {MAX_LIST_BYTES}-byte bound"
        ));
    }
    Ok(
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default(),
    )
}

/// Keeps the last good list and schedules a retry with backoff.
fn failed(shared: &Shared, worker: u64, index: usize, now: u64, reason: &str) {
    let Some((remote, store)) = remote(shared, index) else {
        return;
    };
    let refresh_ms = remote.refresh_interval_seconds.saturating_mul(1000);
    let written = store.update(|s| Some(s.failed(worker, now, refresh_ms)));
    shared.metrics.borrow().list_fetched(index, false);
    let retry = written.map_or(0, |w| w.next_fetch_ms.saturating_sub(now));
    let kept = if shared
        .revocation
        .lists
        .borrow()
        .get(index)
        .is_some_and(Option::is_some)
    {
        "keeping the last good list"
    } else {
        "no list yet"
    };
    warn!(
        "cognito-edge-auth: provider {}: revocation list fetch failed: {reason}; {kept}; retry in {retry} ms",
        provider_name(shared, index)
    );
}

/// Installs a newer list that another worker fetched.
fn sync(shared: &Shared, index: usize, store: &shared_data::Keys) {
    let Some(schedule) = store.schedule() else {
        return;
    };
    let seen = shared.revocation.seen.borrow().get(index).copied();
    if seen == Some(schedule.version) {
        return;
    }
    let Some((version, body)) = store.body().filter(|(v, _)| Some(*v) != seen) else {
        return;
    };
    let case_sensitive = shared.config.policy.trust(index).username_case_sensitive;
    match RevocationList::parse(&body, case_sensitive) {
        Ok(list) => {
            debug!(
                "cognito-edge-auth: provider {}: revocation list version {version} picked up",
                provider_name(shared, index)
            );
            install(shared, index, version, list);
        }
        Err(e) => {
            warn!(
                "cognito-edge-auth: provider {}: shared revocation list unreadable: {e}",
                provider_name(shared, index)
            );
            if let Some(s) = shared.revocation.seen.borrow_mut().get_mut(index) {
                *s = version;
            }
        }
    }
}

fn install(shared: &Shared, index: usize, version: u64, list: RevocationList) {
    shared.metrics.borrow().list_loaded(index, list.len());
    if let Some(slot) = shared.revocation.lists.borrow_mut().get_mut(index) {
        *slot = Some(list);
    }
    if let Some(s) = shared.revocation.seen.borrow_mut().get_mut(index) {
        *s = version;
    }
}

fn remote(shared: &Shared, index: usize) -> Option<(&RemoteList, &shared_data::Keys)> {
    let remote = shared
        .config
        .providers
        .get(index)?
        .revocation
        .remote
        .as_ref()?;
    let store = shared.revocation.stores.get(index)?.as_ref()?;
    Some((remote, store))
}

fn provider_name(shared: &Shared, index: usize) -> &str {
    shared
        .config
        .providers
        .get(index)
        .map_or("-", |p| p.name.as_str())
}
