//! What the service keeps on disk in its state directory: the user state, approvals and removal
//! ledger under one lock (`state`), every confirmed change (`change_log`), the passes' history.

pub mod change_log;
pub mod history;
pub mod state;
