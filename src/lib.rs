//! jupyterhub-grouper-sync: keeps a Grouper group in step with the users of a JupyterHub.
//!
//! The layers, each depending only on those above it:
//! - [`error`], [`model`]: the error kinds; targets (as configured and as a pass runs them) and
//!   the members a plan compares;
//! - [`settings`]: every configuration key, parsed into the model;
//! - [`wire`]: HTTP values and the strict request builders and parsers of both APIs;
//! - [`policy`]: the pure rules (mapping users to subjects, the plan and its safety limits, the
//!   user state of incremental passes);
//! - [`sync`]: one pass, with one module per direction over a shared target pipeline;
//! - [`http_entry`]: the HTTP entry's routes; `component`: the WASI shell (only in the `wasm32`
//!   build), which only moves data between WASI and the layers above.

pub mod error;
pub mod http_entry;
pub mod model;
pub mod policy;
pub mod settings;
pub mod sync;
pub mod wire;

#[cfg(test)]
mod test_support;

#[cfg(target_arch = "wasm32")]
mod component;
