//! jupyterhub-grouper-sync: keeps a Grouper group in step with the users of a JupyterHub.
//!
//! The pure core (settings, mapping, plan, wire parsing) is plain Rust and unit-tested natively.
//! The WASI adapters (`component`) exist only in the `wasm32` build.

pub mod check;
pub mod grouper;
pub mod http;
pub mod hub;
pub mod log;
pub mod mapping;
pub mod pass;
pub mod plan;
pub mod report;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod component;
