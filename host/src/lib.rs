//! The `grouper-sync` host: runs the jupyterhub-grouper-sync component under wasmtime with
//! an egress allow-list, deadlines and memory limits, on a schedule, with metrics.
//!
//! - [`options`] (with `config_file`): flags, config file and environment, by the schema;
//! - [`commands`]: one module per command, and a pass's side effects (`commands::pass`);
//! - [`sandbox`]: the component under wasmtime; [`store`]: the state directory; [`web`]: the
//!   listener, status page and metrics; [`schedule`], [`outcome`]: when passes run, how they end.

pub mod commands;
mod config_file;
pub mod options;
pub mod outcome;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod web;
