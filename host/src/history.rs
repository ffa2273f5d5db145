//! The recent passes, for the status page: one JSON object per pass in `state_dir/history.jsonl`
//! (readable by the service's user only), so the page shows them after a restart. Bounded: once
//! the file holds twice [`KEEP`] passes it is rewritten with the last [`KEEP`].

use crate::outcome::PassSummary;
use crate::state_store::{append_private, create_private_dir, json_lines, StateStore};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;

pub const FILE_NAME: &str = "history.jsonl";
/// Passes kept.
pub const KEEP: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub group: String,
    /// The hub group a to_hub target keeps (its sizes are the hub group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeps_hub_group: Option<String>,
    pub outcome: String,
    pub users_selected: u32,
    /// The group's size before the pass.
    pub current_members: u32,
    pub added: u32,
    pub removed: u32,
    /// Selected users without a usable subject.
    pub skipped: u32,
    pub withheld: u32,
    pub withheld_plan: Option<String>,
    pub withheld_members: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    /// When the pass ended (RFC 3339, UTC).
    pub time: String,
    pub duration_ms: u64,
    pub outcome: String,
    pub dry_run: bool,
    pub users_seen: u32,
    /// `[kind] message` of each error of the pass.
    pub errors: Vec<String>,
    pub targets: Vec<TargetRecord>,
}

impl PassRecord {
    pub fn new(s: &PassSummary, ended: jiff::Timestamp) -> PassRecord {
        PassRecord {
            time: ended.round(jiff::Unit::Second).unwrap_or(ended).to_string(),
            duration_ms: s.duration.as_millis() as u64,
            outcome: s.outcome.as_str().into(),
            dry_run: s.dry_run,
            users_seen: s.users_seen,
            errors: s.messages.clone(),
            targets: s
                .targets
                .iter()
                .map(|t| TargetRecord {
                    group: t.group.clone(),
                    keeps_hub_group: t.keeps_hub_group.clone(),
                    outcome: t.outcome.as_str().into(),
                    users_selected: t.users_selected,
                    current_members: t.current_members,
                    added: t.added,
                    removed: t.removed,
                    skipped: t.unmapped,
                    withheld: t.withheld,
                    withheld_plan: t.withheld_plan.clone(),
                    withheld_members: t.withheld_members.clone(),
                    error: t.error.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(dir: impl Into<PathBuf>) -> History {
        History { dir: dir.into() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    pub fn append(&self, record: &PassRecord) -> Result<()> {
        create_private_dir(&self.dir)?;
        append_private(&self.path(), &json_lines([record])?)?;
        // counting lines is enough to decide; the records are parsed only to rewrite
        let lines = fs::read(self.path())?
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        if lines >= 2 * KEEP {
            let all = self.all();
            let keep = json_lines(&all[all.len().saturating_sub(KEEP)..])?;
            StateStore::new(&self.dir).write_atomically(FILE_NAME, keep.as_bytes())?;
        }
        Ok(())
    }

    /// Every pass on record, oldest first; damaged lines are skipped.
    pub fn all(&self) -> Vec<PassRecord> {
        fs::read_to_string(self.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The last `n` passes, newest first.
    pub fn recent(&self, n: usize) -> Vec<PassRecord> {
        let mut all = self.all();
        all.reverse();
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> PassRecord {
        PassRecord {
            time: format!("2026-11-30T00:00:{:02}Z", i % 60),
            duration_ms: i,
            outcome: "converged".into(),
            dry_run: false,
            users_seen: 3,
            errors: Vec::new(),
            targets: Vec::new(),
        }
    }

    #[test]
    fn bounded_newest_first_and_survives_damage() {
        let dir = std::env::temp_dir().join(format!("grouper-sync-history-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let h = History::new(&dir);
        for i in 0..(2 * KEEP as u64 + 5) {
            h.append(&record(i)).unwrap();
        }
        let all = h.all();
        assert!(all.len() <= 2 * KEEP && all.len() >= KEEP, "{}", all.len());
        assert_eq!(all.last().unwrap().duration_ms, 2 * KEEP as u64 + 4);
        let recent = h.recent(3);
        assert_eq!(
            recent.iter().map(|r| r.duration_ms).collect::<Vec<_>>(),
            [
                2 * KEEP as u64 + 4,
                2 * KEEP as u64 + 3,
                2 * KEEP as u64 + 2
            ]
        );
        let mut f = fs::OpenOptions::new().append(true).open(h.path()).unwrap();
        std::io::Write::write_all(&mut f, b"{\"time\": tru\n").unwrap();
        drop(f);
        h.append(&record(999)).unwrap();
        assert_eq!(h.recent(1)[0].duration_ms, 999);
    }
}
