//! The hosts that run the core. The proxy-wasm glue is still in `crate::filter` (its move to
//! `hosts/wasm` comes with its adoption of `crate::runtime`).

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
