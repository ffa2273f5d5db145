//! The `grouper-sync` host: runs the jupyterhub-grouper-sync component under wasmtime with
//! an egress allow-list, deadlines and memory limits, on a schedule, with metrics.
//!
//! - [`cli`]: the command line, each command's arguments a clap struct in its module;
//! - [`options`] (with `config_file`): the settings from flags, config file and environment, by
//!   the schema;
//! - [`commands`]: one module per command with its `execute`, and a pass's side effects
//!   (`commands::pass`);
//! - [`sandbox`]: the component under wasmtime; [`store`]: the state directory; [`web`]: the
//!   listener, status page and metrics; [`schedule`], [`outcome`]: when passes run, how they end.

pub mod cli;
pub mod commands;
mod config_file;
pub mod options;
pub mod outcome;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod web;
