//! What the host keeps under `state_dir`, each file written atomically (temporary file, fsync,
//! rename, fsync of the directory) and readable by the service's user alone:
//! - `user-state.json`: the bytes the component returned after a pass, handed back to the next
//!   one. The host never interprets them (the component checks format, hub and settings), and
//!   they are never required: a missing or unreadable file means a full pass.
//! - `approvals.json`: withheld plans an admin approved, each used at most once, expiring.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FILE_NAME: &str = "user-state.json";
pub const APPROVALS_FILE: &str = "approvals.json";

/// The default `state_dir`: relative to the working directory, which for a hub-managed service
/// is the service's `cwd`, else the hub's own directory (where `jupyterhub.sqlite` lives).
pub const DEFAULT_DIR: &str = "grouper-sync-state";

#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> StateStore {
        StateStore { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The stored state, if there is one that can be read. Logs once why there is none.
    pub fn load(&self) -> Option<Vec<u8>> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "no user state yet (first pass, or state_dir is new); this pass reads every user's record");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read the user state ({e}); this pass reads every user's record");
                None
            }
        }
    }

    /// Replaces the stored state atomically: a crash leaves the old file or the new one.
    pub fn save(&self, bytes: &[u8]) -> Result<()> {
        self.write_atomically(FILE_NAME, bytes)
    }

    /// Replaces `name` under `state_dir` atomically: a crash leaves the old file or the new one.
    pub fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<()> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join(name);
        // created 0600 next to the target; removed again if anything fails before the rename
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .tempfile_in(&self.dir)?;
            tmp.write_all(bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path)?;
            Ok(())
        };
        write().with_context(|| format!("writing {}", path.display()))?;
        // The rename is durable once the directory is.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Creates `state_dir` (and its parents) readable by the service's user alone.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating state_dir {}", dir.display()))
}

/// Appends text to `path` (created 0600), flushed to disk. A last line torn by a crash is ended
/// first, so that it cannot swallow the first new line.
pub fn append_private(path: &Path, text: &str) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut torn = false;
    if file.metadata()?.len() > 0 {
        file.seek(SeekFrom::End(-1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        torn = last[0] != b'\n';
    }
    if torn {
        file.write_all(b"\n")?;
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// Values as JSON lines.
pub fn json_lines<'a, T: Serialize + 'a>(items: impl IntoIterator<Item = &'a T>) -> Result<String> {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(item)?);
        text.push('\n');
    }
    Ok(text)
}

/// One approval of a withheld plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub plan: String,
    /// Seconds since the epoch.
    pub approved_at: u64,
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl StateStore {
    fn read_approvals(&self) -> Result<Vec<Approval>> {
        let path = self.dir.join(APPROVALS_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a list of approvals", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn write_approvals(&self, approvals: &[Approval]) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(approvals).expect("approvals serialize");
        self.write_atomically(APPROVALS_FILE, &bytes)
    }

    /// Records an approval (replacing an older one of the same plan).
    pub fn approve(&self, plan: &str) -> Result<()> {
        let mut approvals = self.read_approvals()?;
        approvals.retain(|a| a.plan != plan);
        approvals.push(Approval {
            plan: plan.to_string(),
            approved_at: now_seconds(),
        });
        self.write_approvals(&approvals)
    }

    /// The approvals younger than `max_age`; expired ones are dropped from the file, each logged.
    /// An unreadable file approves nothing (and says why).
    pub fn approvals(&self, max_age: Duration) -> Vec<String> {
        let approvals = match self.read_approvals() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{e:#}; no withheld plan is approved");
                return Vec::new();
            }
        };
        let now = now_seconds();
        let (live, expired): (Vec<Approval>, Vec<Approval>) = approvals
            .into_iter()
            .partition(|a| now.saturating_sub(a.approved_at) < max_age.as_secs());
        if !expired.is_empty() {
            for a in &expired {
                tracing::warn!(plan = %a.plan, "the approval of plan {} expired unused", a.plan);
            }
            if let Err(e) = self.write_approvals(&live) {
                tracing::warn!("{e:#}");
            }
        }
        live.into_iter().map(|a| a.plan).collect()
    }

    /// Removes approvals that a pass used: each lets its plan through once.
    pub fn consume(&self, used: &[String]) -> Result<()> {
        let mut approvals = self.read_approvals()?;
        let before = approvals.len();
        approvals.retain(|a| !used.contains(&a.plan));
        if approvals.len() != before {
            self.write_approvals(&approvals)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "grouper-sync-state-test-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn saves_atomically_privately_and_loads_back() {
        let dir = temp_dir("roundtrip").join("nested");
        let store = StateStore::new(&dir);
        assert_eq!(store.load(), None, "nothing stored yet");
        store.save(b"first").unwrap();
        store.save(b"second").unwrap();
        assert_eq!(store.load().as_deref(), Some(&b"second"[..]));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [FILE_NAME], "no temporary file left");
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn an_unwritable_state_dir_is_an_error_not_a_panic() {
        let dir = temp_dir("blocked");
        fs::create_dir_all(&dir).unwrap();
        // a file where the directory should be
        let blocked = dir.join("not-a-dir");
        fs::write(&blocked, b"x").unwrap();
        let store = StateStore::new(blocked.join("state"));
        let e = store.save(b"x").unwrap_err();
        assert!(format!("{e:#}").contains("state_dir"), "{e:#}");
        assert_eq!(store.load(), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn approvals_are_recorded_expire_and_are_used_once() {
        let dir = temp_dir("approvals");
        let store = StateStore::new(&dir);
        assert!(store.approvals(Duration::from_secs(3600)).is_empty());
        store.approve("0123456789abcdef").unwrap();
        store.approve("fedcba9876543210").unwrap();
        store.approve("0123456789abcdef").unwrap();
        assert_eq!(
            store.approvals(Duration::from_secs(3600)),
            ["fedcba9876543210", "0123456789abcdef"]
        );
        store.consume(&["0123456789abcdef".into()]).unwrap();
        assert_eq!(
            store.approvals(Duration::from_secs(3600)),
            ["fedcba9876543210"]
        );
        // an approval from long ago has expired, and is dropped from the file
        let old = serde_json::json!([{"plan": "1111111111111111", "approved_at": 1000}]);
        fs::write(dir.join(APPROVALS_FILE), old.to_string()).unwrap();
        assert!(store.approvals(Duration::from_secs(3600)).is_empty());
        assert_eq!(store.read_approvals().unwrap(), []);
        fs::write(dir.join(APPROVALS_FILE), b"garbage").unwrap();
        assert!(store.approvals(Duration::from_secs(3600)).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
