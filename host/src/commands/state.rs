//! `grouper-sync state show`: the user state under `state_dir` as JSON (its stored form is a
//! compact binary encoding; see `jupyterhub_grouper_sync::policy::user_state`).

use super::ExitStatus;
use crate::options::Options;
use crate::store::state::StateStore;

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Print the user state as JSON: per user the subjects last read and when, the users only
    /// listed (never auth_state, which the state does not hold)
    Show,
}

impl Args {
    pub fn execute(&self, opts: &Options) -> ExitStatus {
        let Action::Show = self.action;
        let (bytes, path) = match StateStore::new(&opts.state_dir).read() {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(
                    "no user state to show under {}: {e}",
                    opts.state_dir.display()
                );
                return ExitStatus::Failed;
            }
        };
        match jupyterhub_grouper_sync::policy::user_state::show(bytes) {
            Ok(json) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                );
                ExitStatus::Ok
            }
            Err(why) => {
                tracing::error!("{}: {why}", path.display());
                ExitStatus::Failed
            }
        }
    }
}
