//! Our narrow binding to Envoy 1.40's dynamic-module ABI (`abi.h`, ABI version v0.2.0): the
//! hooks this module exports (`hooks`) and the callbacks of Envoy's it calls (here). Every
//! `unsafe` of the crate is in this module.
//!
//! Each symbol's shape was read in Envoy's `abi.h` and each callback checked against the
//! binary (`readelf --dyn-syms -W …/envoy | grep envoy_dynamic_module`); a Rust cdylib is
//! linked with BIND_NOW, so a callback Envoy does not export fails the load at start-up.
//!
//! Pointers handed over: the module config is an `Arc<Native>` turned into a raw pointer in
//! `config_new` and taken back in `config_destroy`; a filter is a `Box<Filter>` from `new` to
//! `destroy`. Hooks only ever take shared references (`&Native`, `&Filter`): Envoy may
//! re-enter a hook from inside a callback (a local reply runs the response path), so no
//! `&mut` may be live across a callback.
//!
//! A panic never crosses the ABI: each hook runs its body under `catch_unwind`, and a caught
//! panic fails closed (see `hooks::guard`).

use std::ffi::{c_char, c_void};

mod hooks;

/// The ABI version Envoy 1.40 logs as matched (`Dynamic module ABI version v0.2.0 matched.`).
const ABI_VERSION: &[u8] = b"v0.2.0\0";

// ---------------------------------------------------------------------------------------
// Shapes (abi.h: envoy_dynamic_module_type_*)

/// `envoy_dynamic_module_type_module_buffer` (and `…_envoy_buffer`): a view of bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    ptr: *const u8,
    length: usize,
}

impl Buffer {
    fn of(bytes: &[u8]) -> Buffer {
        Buffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    const NULL: Buffer = Buffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes of a buffer Envoy handed over, copied.
    fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() || self.length == 0 {
            return Vec::new();
        }
        // SAFETY: Envoy guarantees a non-null buffer it hands over points to `length`
        // readable bytes for the duration of the hook or callback that returned it; we copy
        // them before returning.
        unsafe { std::slice::from_raw_parts(self.ptr, self.length) }.to_vec()
    }
}

/// `envoy_dynamic_module_type_module_http_header` / `…_envoy_http_header`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Header {
    key: Buffer,
    value: Buffer,
}

const REQUEST_HEADERS: u32 = 0; // envoy_dynamic_module_type_http_header_type_RequestHeader
const RESPONSE_HEADERS: u32 = 2; // envoy_dynamic_module_type_http_header_type_ResponseHeader
const CONTINUE: u32 = 0; // …_status_Continue of every filter hook
const STOP_ITERATION: u32 = 1; // …_request_headers_status_StopIteration
const CALLOUT_SUCCESS: u32 = 0; // envoy_dynamic_module_type_http_callout_result_Success
/// The largest document fetched (a revocation list; a JWKS is smaller).
const MAX_ANSWER_BYTES: usize = crate::revocation::MAX_LIST_BYTES;

type Ptr = *mut c_void;

#[allow(improper_ctypes)]
extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: Buffer);
    fn envoy_dynamic_module_callback_log_enabled(level: u32) -> bool;

    fn envoy_dynamic_module_callback_http_get_headers_size(filter: Ptr, kind: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: Ptr,
        kind: u32,
        out: *mut Header,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: Ptr,
        kind: u32,
        key: Buffer,
        value: Buffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: Ptr,
        kind: u32,
        key: Buffer,
        value: Buffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        filter: Ptr,
        status: u32,
        headers: *const Header,
        count: usize,
        body: Buffer,
        details: Buffer,
    );
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: Ptr);
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: Ptr,
        id_out: *mut u64,
        cluster: Buffer,
        headers: *const Header,
        count: usize,
        body: Buffer,
        timeout_ms: u64,
    ) -> u32;

    fn envoy_dynamic_module_callback_http_filter_scheduler_new(filter: Ptr) -> Ptr;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler: Ptr, event: u64);
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: Ptr);

    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(config: Ptr) -> Ptr;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: Ptr,
        event: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: Ptr);

    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: Ptr,
        id_out: *mut u64,
        cluster: Buffer,
        headers: *const Header,
        count: usize,
        body: Buffer,
        timeout_ms: u64,
    ) -> u32;

    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: Ptr,
        name: Buffer,
        labels: *const Buffer,
        label_count: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: Ptr,
        name: Buffer,
        labels: *const Buffer,
        label_count: usize,
        id_out: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: Ptr,
        id: usize,
        labels: *const Buffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: Ptr,
        id: usize,
        labels: *const Buffer,
        label_count: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: Ptr,
        id: usize,
        labels: *const Buffer,
        label_count: usize,
        value: u64,
    ) -> u32;
}

// ---------------------------------------------------------------------------------------
// Safe handles

/// Envoy's side of the filter configuration (`DynamicModuleHttpFilterConfig`).
#[derive(Clone, Copy)]
pub struct EnvoyConfig(Ptr);

// SAFETY: the pointer is only dereferenced by Envoy. Metric definitions and calls are made on
// the main thread only (config_new, config_scheduled, config_http_callout_done); counters
// and gauges are atomic in Envoy's stats store, so adding to them from any thread is safe.
unsafe impl Send for EnvoyConfig {}
// SAFETY: as for Send.
unsafe impl Sync for EnvoyConfig {}

impl EnvoyConfig {
    /// Defines a counter (only during `config_new`: Envoy freezes stat creation after it).
    pub fn define_counter(&self, name: &str) -> Option<usize> {
        let mut id = 0usize;
        // SAFETY: `self.0` is the config pointer Envoy gave config_new, alive until
        // config_destroy; the name buffer outlives the call; `id` is a valid out pointer.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.0,
                Buffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (r == 0).then_some(id)
    }

    /// Defines a gauge (as [`EnvoyConfig::define_counter`]).
    pub fn define_gauge(&self, name: &str) -> Option<usize> {
        let mut id = 0usize;
        // SAFETY: as in define_counter.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_gauge(
                self.0,
                Buffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (r == 0).then_some(id)
    }

    pub fn increment(&self, id: usize, by: u64) {
        // SAFETY: a live config pointer (see define_counter) and an id it defined; no labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.0,
                id,
                std::ptr::null(),
                0,
                by,
            );
        }
    }

    pub fn set_gauge(&self, id: usize, value: u64) {
        // SAFETY: as in increment.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_set_gauge(
                self.0,
                id,
                std::ptr::null(),
                0,
                value,
            );
        }
    }

    /// Starts a call to `cluster` whose answer comes to `config_http_callout_done` on the main
    /// thread. Call only on the main thread: Envoy answers a config-level call on the thread
    /// that started it, and its call table is not locked.
    pub fn call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        start_call(
            envoy_dynamic_module_callback_http_filter_config_http_callout,
            self.0,
            cluster,
            headers,
            body,
            timeout_ms,
        )
    }

    /// A scheduler that posts `config_scheduled` to the main thread, from any thread.
    pub fn scheduler(&self) -> Option<ConfigScheduler> {
        // SAFETY: a live config pointer; Envoy returns a new scheduler we own until delete.
        let p = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!p.is_null()).then_some(ConfigScheduler(p))
    }
}

/// Posts events to the main thread (`config_scheduled`). Deleted on drop.
pub struct ConfigScheduler(Ptr);

// SAFETY: Envoy's config scheduler posts to the main dispatcher, which is thread-safe, and
// holds only a weak reference to the config: committing from any thread is allowed, also
// after the config is gone. It is deleted once, on drop.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as for Send; commit takes no lock in the module and mutates nothing of ours.
unsafe impl Sync for ConfigScheduler {}

impl ConfigScheduler {
    pub fn commit(&self, event: u64) {
        // SAFETY: a scheduler from scheduler_new, not yet deleted (we own it).
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event) }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: deleted exactly once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// Posts `scheduled` to one request's worker thread, from any thread. Deleted on drop.
pub struct FilterScheduler(Ptr);

// SAFETY: Envoy's filter scheduler posts to the request's worker dispatcher (thread-safe) and
// holds a weak reference to the filter, so a commit after the request is gone is dropped.
unsafe impl Send for FilterScheduler {}

impl FilterScheduler {
    pub fn commit(&self, event: u64) {
        // SAFETY: a scheduler from scheduler_new, not yet deleted (we own it).
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event) }
    }
}

impl Drop for FilterScheduler {
    fn drop(&mut self) {
        // SAFETY: deleted exactly once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

/// Envoy's side of one request (`DynamicModuleHttpFilter`), valid during the hook it was
/// passed to.
#[derive(Clone, Copy)]
pub struct EnvoyFilter(Ptr);

impl EnvoyFilter {
    /// The request headers, names as Envoy keeps them (lowercase), values as raw bytes.
    pub fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        // SAFETY: `self.0` is the filter pointer of the running hook.
        let n =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.0, REQUEST_HEADERS) };
        let mut raw = vec![
            Header {
                key: Buffer::NULL,
                value: Buffer::NULL
            };
            n
        ];
        // SAFETY: `raw` has room for the `n` headers Envoy just counted; nothing changes the
        // map in between (same thread, no callback).
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_headers(
                self.0,
                REQUEST_HEADERS,
                raw.as_mut_ptr(),
            )
        };
        if !ok {
            return Vec::new();
        }
        raw.into_iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(&h.key.to_vec()).into_owned(),
                    h.value.to_vec(),
                )
            })
            .collect()
    }

    /// Replaces request header `name` (`None`: removes it).
    pub fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
        let value = value.map_or(Buffer::NULL, Buffer::of);
        // SAFETY: the filter pointer of the running hook; both buffers outlive the call
        // (Envoy copies them). A null value removes the header.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                REQUEST_HEADERS,
                Buffer::of(name.as_bytes()),
                value,
            );
        }
    }

    pub fn add_request_header(&self, name: &str, value: &str) {
        self.add_header(REQUEST_HEADERS, name, value);
    }

    /// Adds a header to the response (during the response-headers hook).
    pub fn add_response_header(&self, name: &str, value: &str) {
        self.add_header(RESPONSE_HEADERS, name, value);
    }

    /// Adds a header to the request's (`REQUEST_HEADERS`) or its response's headers.
    fn add_header(&self, kind: u32, name: &str, value: &str) {
        // SAFETY: the filter pointer of the running hook, and a header type of abi.h; both
        // buffers outlive the call (Envoy copies them).
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.0,
                kind,
                Buffer::of(name.as_bytes()),
                Buffer::of(value.as_bytes()),
            );
        }
    }

    /// Answers the request locally. Envoy may run this module's response hooks before it
    /// returns.
    pub fn send_response(&self, status: u32, headers: &[(&str, &str)], body: &[u8]) {
        let headers = header_views(headers);
        // SAFETY: the filter pointer of the running hook; the header array and strings, the
        // body and the details outlive the call (Envoy copies them).
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                status,
                headers.as_ptr(),
                headers.len(),
                Buffer::of(body),
                Buffer::of(b"cognito_edge_auth"),
            );
        }
    }

    /// Starts a call to `cluster` for this request; its answer comes to `http_callout_done`
    /// with the returned id, on this request's worker. Envoy may answer it before this
    /// returns (a call that fails at once).
    pub fn callout(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        start_call(
            envoy_dynamic_module_callback_http_filter_http_callout,
            self.0,
            cluster,
            headers,
            body,
            timeout_ms,
        )
    }

    /// Lets a paused request go on to the next filter.
    pub fn continue_decoding(&self) {
        // SAFETY: the filter pointer of the running hook.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.0) }
    }

    pub fn scheduler(&self) -> Option<FilterScheduler> {
        // SAFETY: the filter pointer of the running hook; Envoy returns a new scheduler we
        // own until delete.
        let p = unsafe { envoy_dynamic_module_callback_http_filter_scheduler_new(self.0) };
        (!p.is_null()).then_some(FilterScheduler(p))
    }

    pub fn increment(&self, id: usize, by: u64) {
        // SAFETY: the filter pointer of the running hook, and a counter id its config defined.
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.0,
                id,
                std::ptr::null(),
                0,
                by,
            );
        }
    }
}

/// Envoy's two ways to start a call (a configuration's, a stream's): the same shape.
type StartCall =
    unsafe extern "C" fn(Ptr, *mut u64, Buffer, *const Header, usize, Buffer, u64) -> u32;

/// Starts a call with `start` for `owner` (the configuration or the stream pointer that
/// `start` takes, live for the running hook); the call's id, or Envoy's reason for refusing
/// it.
fn start_call(
    start: StartCall,
    owner: Ptr,
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Result<u64, u32> {
    let headers = header_views(headers);
    let mut id = 0u64;
    // SAFETY: `owner` is the live pointer `start` takes; the header array, its strings, the
    // cluster name and the body outlive the call (Envoy copies them into its request); `id`
    // is a valid out pointer.
    let r = unsafe {
        start(
            owner,
            &mut id,
            Buffer::of(cluster.as_bytes()),
            headers.as_ptr(),
            headers.len(),
            Buffer::of(body),
            timeout_ms,
        )
    };
    if r == 0 {
        Ok(id)
    } else {
        Err(r)
    }
}

/// Views of `headers` for Envoy (valid while `headers` is).
fn header_views(headers: &[(&str, &str)]) -> Vec<Header> {
    headers
        .iter()
        .map(|(k, v)| Header {
            key: Buffer::of(k.as_bytes()),
            value: Buffer::of(v.as_bytes()),
        })
        .collect()
}

/// Envoy's log levels (`envoy_dynamic_module_type_log_level`).
pub fn log_enabled(level: log::Level) -> bool {
    // SAFETY: a plain value in, a bool out; callable from any thread.
    unsafe { envoy_dynamic_module_callback_log_enabled(envoy_level(level)) }
}

pub fn log(level: log::Level, message: &str) {
    // SAFETY: the message outlives the call; callable from any thread.
    unsafe { envoy_dynamic_module_callback_log(envoy_level(level), Buffer::of(message.as_bytes())) }
}

fn envoy_level(level: log::Level) -> u32 {
    match level {
        log::Level::Trace => 0,
        log::Level::Debug => 1,
        log::Level::Info => 2,
        log::Level::Warn => 3,
        log::Level::Error => 4,
    }
}

/// A call's answer, copied out of Envoy's buffers.
pub struct CalloutAnswer {
    /// `None`: no answer (a reset, a timeout, too large).
    pub status: Option<u32>,
    /// Its headers (names as Envoy keeps them, lowercase).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl CalloutAnswer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

/// The `:status`, the headers and the body of a call's answer.
pub(super) fn answer(
    result: u32,
    headers: *const Header,
    header_count: usize,
    chunks: *const Buffer,
    chunk_count: usize,
) -> CalloutAnswer {
    let none = CalloutAnswer {
        status: None,
        headers: Vec::new(),
        body: Vec::new(),
    };
    if result != CALLOUT_SUCCESS {
        return none;
    }
    let headers: &[Header] = if headers.is_null() {
        &[]
    } else {
        // SAFETY: Envoy passes `header_count` headers, valid until the hook returns.
        unsafe { std::slice::from_raw_parts(headers, header_count) }
    };
    let headers: Vec<(Vec<u8>, Vec<u8>)> = headers
        .iter()
        .map(|h| (h.key.to_vec(), h.value.to_vec()))
        .collect();
    let status = headers
        .iter()
        .find(|(k, _)| k == b":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok());
    let chunks: &[Buffer] = if chunks.is_null() {
        &[]
    } else {
        // SAFETY: Envoy passes `chunk_count` body chunks, valid until the hook returns.
        unsafe { std::slice::from_raw_parts(chunks, chunk_count) }
    };
    let mut body = Vec::new();
    for chunk in chunks {
        if body.len() > MAX_ANSWER_BYTES {
            break; // over every bound already: no need to copy the rest
        }
        body.extend(chunk.to_vec());
    }
    CalloutAnswer {
        status,
        headers,
        body,
    }
}
