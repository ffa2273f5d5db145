//! `grouper-sync precompile DIR`: the packaging step that compiles the embedded component ahead of
//! time for this binary's engine (`sandbox::compiled`), so that no installed process compiles it.

use super::ExitStatus;
use crate::sandbox::{compiled, runner};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Where to write it: the installation's share/grouper-sync (the wheel's data directory)
    pub dir: PathBuf,
}

impl Args {
    pub fn execute(&self) -> ExitStatus {
        let written = runner::engine().and_then(|engine| {
            compiled::precompile(&engine, runner::EMBEDDED_COMPONENT, &self.dir)
        });
        match written {
            Ok(path) => {
                println!("{}", path.display());
                ExitStatus::Ok
            }
            Err(e) => {
                tracing::error!("{e:#}");
                ExitStatus::Failed
            }
        }
    }
}
