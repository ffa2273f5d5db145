//! `grouper-sync once`: one pass; the report on stdout, the outcome as the exit status.

use super::pass::pass;
use super::ExitStatus;
use crate::options::Options;
use crate::sandbox::runner::{Limits, Runner};

pub async fn execute(opts: &Options, runner: &Runner, limits: &Limits) -> ExitStatus {
    let summary = pass(opts, runner, limits, opts.full).await;
    if let Some(json) = &summary.json {
        println!("{json}");
    }
    summary.exit_status()
}
