//! Where the component runs: the typed bindings of the WIT, the component compiled ahead of
//! time, wasmtime with its limits and deadline, the egress allow-list, TLS roots, and the progress
//! lines the component writes.

pub mod bindings;
pub mod compiled;
pub mod egress;
pub mod progress;
pub mod runner;
pub mod tls;
