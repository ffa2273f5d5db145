//! `grouper-sync log`: the change log, filtered.

use super::{change_log, ExitStatus};
use crate::options::Options;
use crate::store::change_log::{self, Filter};
use anyhow::anyhow;

#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Only this subject id
    #[arg(long)]
    pub subject: Option<String>,
    /// Only this hub user
    #[arg(long = "hub-user")]
    pub hub_user: Option<String>,
    /// Only this Grouper group
    #[arg(long = "group")]
    pub group: Option<String>,
    /// Only changes at or after this time (2026-11-24, or 2026-11-24T08:00:00Z)
    #[arg(long, value_parser = parse_since)]
    pub since: Option<jiff::Timestamp>,
    /// One JSON object per line instead of text
    #[arg(long)]
    pub json: bool,
}

/// `--since`: a date (midnight UTC) or an RFC 3339 time.
fn parse_since(v: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let day: jiff::civil::Date = v
        .parse()
        .map_err(|_| anyhow!("expected a date (2026-11-24) or a time (2026-11-24T08:00:00Z)"))?;
    Ok(day.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

impl Args {
    pub fn filter(&self) -> Filter {
        Filter {
            subject: self.subject.clone(),
            hub_user: self.hub_user.clone(),
            target: self.group.clone(),
            since: self.since,
        }
    }

    /// The change log, filtered, as text or JSON lines.
    pub fn execute(&self, opts: &Options) -> ExitStatus {
        match change_log(opts).read(&self.filter()) {
            Ok(entries) => {
                for e in &entries {
                    if self.json {
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
}
