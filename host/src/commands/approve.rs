//! `grouper-sync approve PLAN`: an approval of a withheld plan, recorded for the next pass.

use super::{lock_state, plan_name, ExitStatus};
use crate::options::Options;
use crate::store::state::StateStore;

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The plan's 16-hex-digit name
    #[arg(value_parser = plan_name)]
    pub plan: String,
}

impl Args {
    /// Records the approval for the next pass.
    pub async fn execute(&self, opts: &Options) -> ExitStatus {
        let plan = &self.plan;
        let store = StateStore::new(&opts.state_dir);
        let lock = match lock_state(opts, &store, "approve").await {
            Ok(lock) => lock,
            Err(e) => {
                eprintln!("cannot record the approval: {e}");
                return ExitStatus::Failed;
            }
        };
        match store.approve(&lock, plan) {
            Ok(()) => {
                tracing::warn!(plan = %plan, "approved plan {plan}");
                println!(
                    "approved plan {plan}: the next pass applies it if it computes exactly this plan \
                     (unused, the approval expires in {} h)",
                    opts.approval_max_age.as_secs() / 3600
                );
                ExitStatus::Ok
            }
            Err(e) => {
                eprintln!("cannot record the approval: {e:#}");
                ExitStatus::Failed
            }
        }
    }
}
