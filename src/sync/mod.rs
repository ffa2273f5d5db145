//! One pass: read both sides through a [`session::Session`], plan each target with the policy,
//! write the changes, report. `pass` runs the targets; `target` is the pipeline both directions
//! share; `to_grouper` and `to_hub` write their side; `check` reads without writing.

pub mod check;
pub mod google;
pub mod grouper_client;
pub mod hub_client;
pub mod hub_reader;
pub mod log;
pub mod pass;
pub mod provisioning;
pub mod report;
pub mod session;
pub mod target;
pub mod to_grouper;
pub mod to_hub;

#[cfg(test)]
mod tests;
