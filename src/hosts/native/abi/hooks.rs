//! The hooks Envoy calls (`abi.h`: `envoy_dynamic_module_on_*`): the module's entry points,
//! each a thin shell that turns the raw pointers back into the module's own objects
//! ([`Native`], [`Filter`]) and runs the body under [`guard`]. They live inside `abi` because
//! turning a pointer back is `unsafe`; what they call is above the binding, and nothing below
//! calls them.

use super::*;
use crate::hosts::native::config::Native;
use crate::hosts::native::filter::{self, Filter};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Panics

/// Runs a hook's body; a panic is caught, logged once, counted, and answered with `failed`
/// (the hook's fail-closed result).
fn guard<T>(hook: &str, failed: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            crate::hosts::native::panicked(hook, &payload);
            failed
        }
    }
}

/// Runs the body of a hook of request `f`; on a panic (`None`), the request is failed
/// closed: answered 500 unless an answer went out, and counted.
fn guard_request<T>(
    hook: &str,
    envoy: EnvoyFilter,
    f: &Filter,
    body: impl FnOnce() -> T,
) -> Option<T> {
    let done = guard(hook, None, || Some(body()));
    if done.is_none() {
        guard(hook, (), || f.panicked(envoy));
    }
    done
}

/// The module config behind a hook's pointer.
fn native<'a>(ptr: *const c_void) -> Option<&'a Native> {
    // SAFETY: a non-null `ptr` is what config_new returned (`Arc::into_raw`), and Envoy calls
    // no hook with it after config_destroy, which is where the Arc is taken back.
    unsafe { ptr.cast::<Native>().as_ref() }
}

/// The filter behind a hook's pointer.
fn filter<'a>(ptr: *const c_void) -> Option<&'a Filter> {
    // SAFETY: a non-null `ptr` is what `new` returned (`Box::into_raw`), and Envoy calls no
    // hook with it after `destroy`, which frees it. Only shared references are made.
    unsafe { ptr.cast::<Filter>().as_ref() }
}

// ---------------------------------------------------------------------------------------
// Hooks (abi.h: envoy_dynamic_module_on_*)

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guard("program_init", std::ptr::null(), || {
        crate::hosts::native::init();
        ABI_VERSION.as_ptr().cast()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: Ptr,
    name: Buffer,
    config: Buffer,
) -> *const c_void {
    guard("config_new", std::ptr::null(), || {
        match Native::new(EnvoyConfig(envoy), &name.to_vec(), &config.to_vec()) {
            Some(native) => Arc::into_raw(native).cast(),
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guard("config_destroy", (), || {
        if config.is_null() {
            return;
        }
        // SAFETY: `config` came from Arc::into_raw in config_new, and Envoy destroys it once.
        let native = unsafe { Arc::from_raw(config.cast::<Native>()) };
        native.shut_down();
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _envoy: Ptr,
    config: *const c_void,
    event: u64,
) {
    guard("config_scheduled", (), || {
        if let Some(native) = native(config) {
            native.on_scheduled(event);
        }
    })
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _envoy: Ptr,
    config: *const c_void,
    id: u64,
    result: u32,
    headers: *const Header,
    header_count: usize,
    chunks: *const Buffer,
    chunk_count: usize,
) {
    guard("config_http_callout_done", (), || {
        let Some(native) = native(config) else { return };
        let answer = answer(result, headers, header_count, chunks, chunk_count);
        native.on_answer(id, answer.status, &answer.body);
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    envoy: Ptr,
) -> *const c_void {
    guard("new", std::ptr::null(), || {
        if native(config).is_none() {
            return std::ptr::null();
        }
        // SAFETY: `config` came from Arc::into_raw and is alive (Envoy destroys the config
        // only after its filters): count one more owner for the filter.
        let native = unsafe {
            Arc::increment_strong_count(config.cast::<Native>());
            Arc::from_raw(config.cast::<Native>())
        };
        let _ = envoy; // each hook passes it again
        Box::into_raw(Box::new(Filter::new(native)))
            .cast_const()
            .cast()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_ptr: *const c_void) {
    guard("destroy", (), || {
        if filter_ptr.is_null() {
            return;
        }
        // SAFETY: `filter_ptr` came from Box::into_raw in `new`; Envoy destroys it once and
        // calls no hook with it afterwards.
        let f = unsafe { Box::from_raw(filter_ptr.cast::<Filter>().cast_mut()) };
        f.destroy();
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: Ptr,
    filter_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    let envoy = EnvoyFilter(envoy);
    let Some(f) = filter(filter_ptr) else {
        guard("request_headers", (), || filter::fail_closed(envoy));
        return STOP_ITERATION;
    };
    match guard_request("request_headers", envoy, f, || f.on_request_headers(envoy)) {
        Some(true) => CONTINUE,
        Some(false) | None => STOP_ITERATION,
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy: Ptr,
    filter_ptr: *const c_void,
    event: u64,
) {
    let envoy = EnvoyFilter(envoy);
    let Some(f) = filter(filter_ptr) else { return };
    guard_request("scheduled", envoy, f, || f.on_scheduled(envoy, event));
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _envoy: Ptr,
    filter_ptr: *const c_void,
) {
    guard("stream_complete", (), || {
        if let Some(f) = filter(filter_ptr) {
            f.complete();
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _envoy: Ptr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: Ptr,
    _filter: *const c_void,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: Ptr,
    filter_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    let envoy = EnvoyFilter(envoy);
    if let Some(f) = filter(filter_ptr) {
        // A panic here leaves the response as it is: it is under way already.
        guard("response_headers", (), || f.on_response_headers(envoy));
    }
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: Ptr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: Ptr,
    _filter: *const c_void,
) -> u32 {
    CONTINUE
}

/// The answer to a call this request made (its online check, its sign-in step's call).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: Ptr,
    filter_ptr: *const c_void,
    id: u64,
    result: u32,
    headers: *const Header,
    header_count: usize,
    chunks: *const Buffer,
    chunk_count: usize,
) {
    let envoy = EnvoyFilter(envoy);
    let Some(f) = filter(filter_ptr) else { return };
    guard_request("http_callout_done", envoy, f, || {
        let answer = answer(result, headers, header_count, chunks, chunk_count);
        f.on_callout_done(envoy, id, &answer);
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: Ptr,
    _filter: *const c_void,
    _stream: u64,
    _headers: *const Header,
    _header_count: usize,
    _end_of_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: Ptr,
    _filter: *const c_void,
    _stream: u64,
    _chunks: *const Buffer,
    _chunk_count: usize,
    _end_of_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: Ptr,
    _filter: *const c_void,
    _stream: u64,
    _trailers: *const Header,
    _trailer_count: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: Ptr,
    _filter: *const c_void,
    _stream: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: Ptr,
    _filter: *const c_void,
    _stream: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: Ptr,
    _filter: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: Ptr,
    _filter: *const c_void,
) {
}
