//! `grouper-sync log`: the change log, filtered.

use super::{change_log, ExitStatus};
use crate::options::Options;
use crate::store::change_log;

/// `grouper-sync log`: the change log, filtered, as text or JSON lines.
pub fn execute(opts: &Options) -> ExitStatus {
    match change_log(opts).read(&opts.log.filter) {
        Ok(entries) => {
            for e in &entries {
                if opts.log.json {
                    println!("{}", serde_json::to_string(e).unwrap_or_default());
                } else {
                    println!("{}", change_log::text(e));
                }
            }
            ExitStatus::Ok
        }
        Err(e) => {
            eprintln!("cannot read the change log: {e:#}");
            ExitStatus::Failed
        }
    }
}
