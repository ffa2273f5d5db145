//! `grouper-sync once`: one pass; the report on stdout, the outcome as the exit status.

use super::pass::{pass, PassArgs, PassRequest};
use super::{plan_name, ExitStatus};
use crate::options::Options;
use crate::sandbox::runner::{Limits, Runner};

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Args {
    #[command(flatten)]
    pub pass: PassArgs,
    /// Let this withheld plan through in this run only, if the pass computes exactly it
    #[arg(long, value_name = "PLAN", value_parser = plan_name)]
    pub approve: Option<String>,
}

impl Args {
    pub async fn execute(&self, opts: &Options, runner: &Runner, limits: &Limits) -> ExitStatus {
        let request = PassRequest {
            command: "once",
            full: self.pass.full,
            approved_now: self.approve.as_deref(),
        };
        let summary = pass(opts, runner, limits, request).await;
        if let Some(json) = &summary.json {
            println!("{json}");
        }
        summary.exit_status()
    }
}
