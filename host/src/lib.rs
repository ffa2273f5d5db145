//! The `grouper-sync` host: runs the jupyterhub-grouper-sync component under wasmtime with
//! an egress allow-list, deadlines and memory limits, on a schedule, with metrics.

pub mod bindings;
pub mod change_log;
pub mod commands;
mod config_file;
pub mod egress;
pub mod endpoint;
pub mod history;
pub mod metrics;
pub mod options;
pub mod outcome;
pub mod progress;
pub mod runner;
pub mod schedule;
pub mod state_store;
pub mod status_page;
pub mod tls;
pub mod ui;
