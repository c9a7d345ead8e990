//! The native floor: an Envoy 1.40 dynamic module (libnoop_native.so) whose HTTP filter lets
//! every request through at once. What a request costs with it is what any dynamic-module
//! filter costs (the hooks Envoy calls per request); `make bench` shows it as a row beside the
//! proxy-wasm floor (bench/noop). The twenty hooks Envoy requires, each doing nothing.

use std::ffi::{c_char, c_void};

type Ptr = *mut c_void;

/// What Envoy gets as the module's config and filter pointers: any non-null address.
static ANCHOR: u8 = 0;

fn anchor() -> *const c_void {
    std::ptr::addr_of!(ANCHOR).cast()
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    ptr: *const u8,
    length: usize,
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    c"v0.2.0".as_ptr()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _envoy: Ptr,
    _name: Buffer,
    _config: Buffer,
) -> *const c_void {
    anchor()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_config: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _config: *const c_void,
    _envoy: Ptr,
) -> *const c_void {
    anchor()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_filter: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(_e: Ptr, _f: *const c_void) {}

macro_rules! status_hook {
    ($name:ident $(, $arg:ident: $ty:ty)*) => {
        #[no_mangle]
        pub extern "C" fn $name(_e: Ptr, _f: *const c_void $(, $arg: $ty)*) -> u32 {
            $( let _ = $arg; )*
            0 // Continue
        }
    };
}

status_hook!(envoy_dynamic_module_on_http_filter_request_headers, eos: bool);
status_hook!(envoy_dynamic_module_on_http_filter_request_body, eos: bool);
status_hook!(envoy_dynamic_module_on_http_filter_request_trailers);
status_hook!(envoy_dynamic_module_on_http_filter_response_headers, eos: bool);
status_hook!(envoy_dynamic_module_on_http_filter_response_body, eos: bool);
status_hook!(envoy_dynamic_module_on_http_filter_response_trailers);

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _e: Ptr,
    _f: *const c_void,
    _id: u64,
    _result: u32,
    _headers: *const c_void,
    _header_count: usize,
    _chunks: *const c_void,
    _chunk_count: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _e: Ptr,
    _f: *const c_void,
    _stream: u64,
    _headers: *const c_void,
    _count: usize,
    _eos: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _e: Ptr,
    _f: *const c_void,
    _stream: u64,
    _chunks: *const c_void,
    _count: usize,
    _eos: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _e: Ptr,
    _f: *const c_void,
    _stream: u64,
    _trailers: *const c_void,
    _count: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _e: Ptr,
    _f: *const c_void,
    _stream: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _e: Ptr,
    _f: *const c_void,
    _stream: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _e: Ptr,
    _f: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _e: Ptr,
    _f: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _e: Ptr,
    _f: *const c_void,
) {
}
