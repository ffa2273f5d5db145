//! The recent passes, for the status page: one JSON object per pass in `state_dir/history.jsonl`
//! (readable by the service's user only), so the page shows them after a restart. Bounded: once
//! the file holds twice [`KEEP`] passes it is rewritten with the last [`KEEP`].

use crate::outcome::{PassSummary, TargetSummary};
use crate::store::state::{append_private, create_private_dir, json_lines, StateStore};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const FILE_NAME: &str = "history.jsonl";
/// Passes kept.
pub const KEEP: usize = 200;

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
    pub targets: Vec<TargetSummary>,
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
            targets: s.targets.clone(),
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
        let lines = crate::store::state::read_nofollow(&self.path())?
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
        crate::store::state::read_nofollow(&self.path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
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

/// What identifies one content of the file without reading it: passes only ever append or
/// rewrite it, both of which change its length or its modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// The passes read, and the file as it was when they were read.
type Cached = Option<(Option<FileStamp>, Arc<Vec<PassRecord>>)>;

/// The recent passes as the status page shows them, kept in memory and read again only when the
/// file changed (a pass of the service, or of a `grouper-sync once` beside it, appended to it).
pub struct RecentPasses {
    history: History,
    cached: Mutex<Cached>,
    reads: std::sync::atomic::AtomicU64,
}

impl RecentPasses {
    pub fn new(history: History) -> RecentPasses {
        RecentPasses {
            history,
            cached: Mutex::new(None),
            reads: Default::default(),
        }
    }

    fn stamp(&self) -> Option<FileStamp> {
        let meta = std::fs::symlink_metadata(self.history.path()).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// The last [`KEEP`] passes, newest first.
    pub fn get(&self) -> Arc<Vec<PassRecord>> {
        let stamp = self.stamp();
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, passes)) = cached.as_ref() {
            if *seen == stamp {
                return passes.clone();
            }
        }
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let passes = Arc::new(self.history.recent(KEEP));
        *cached = Some((stamp, passes.clone()));
        passes
    }

    /// How often the file was read (for tests).
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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

    #[test]
    fn the_page_reads_the_file_again_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let recent = RecentPasses::new(History::new(dir.path()));
        assert!(recent.get().is_empty());
        assert!(recent.get().is_empty());
        assert_eq!(recent.reads(), 1, "no file: read once");
        // another process (`grouper-sync once`) appends
        History::new(dir.path()).append(&record(1)).unwrap();
        assert_eq!(recent.get()[0].duration_ms, 1);
        for _ in 0..5 {
            assert_eq!(recent.get().len(), 1);
        }
        assert_eq!(recent.reads(), 2, "unchanged: served from memory");
        History::new(dir.path()).append(&record(2)).unwrap();
        assert_eq!(
            recent
                .get()
                .iter()
                .map(|r| r.duration_ms)
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(recent.reads(), 3);
    }

    #[test]
    fn reads_a_target_as_written_before_it_carried_planned_counts() {
        let line = r#"{"time":"2026-11-29T10:00:00Z","duration_ms":5,"outcome":"removals_withheld","dry_run":false,"users_seen":3,"errors":[],"targets":[{"group":"edu:x","outcome":"removals_withheld","users_selected":3,"current_members":4,"added":1,"removed":0,"skipped":1,"withheld":2,"withheld_plan":"0123456789abcdef","withheld_members":["a","b"],"error":null}]}"#;
        let record: PassRecord = serde_json::from_str(line).unwrap();
        let t = &record.targets[0];
        assert_eq!(
            t.outcome,
            jupyterhub_grouper_sync::sync::report::Outcome::RemovalsWithheld
        );
        assert_eq!((t.unmapped, t.withheld, t.to_add, t.failures), (1, 2, 0, 0));
        assert_eq!(t.keeps_hub_group, None);
        // and written back in the same shape
        let again = serde_json::to_string(&record).unwrap();
        assert!(
            again.contains("\"skipped\":1") && !again.contains("keeps_hub_group"),
            "{again}"
        );
    }
}
