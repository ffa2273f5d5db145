//! jupyterhub-grouper-sync: keeps a Grouper group in step with the users of a JupyterHub.
//!
//! The pure core (settings, mapping, plan, wire parsing) is plain Rust and unit-tested natively.
//! The WASI adapters (`component`) exist only in the `wasm32` build.

pub mod check;
pub mod error;
pub mod grouper;
pub mod grouper_client;
pub mod hashing;
pub mod http;
pub mod http_entry;
pub mod hub;
pub mod hub_reader;
pub mod log;
pub mod mapping;
pub mod pass;
pub mod plan;
pub mod report;
pub mod session;
pub mod settings;
pub mod timestamp;
pub mod to_hub;
pub mod user_state;

#[cfg(test)]
mod test_support;

#[cfg(target_arch = "wasm32")]
mod component;
