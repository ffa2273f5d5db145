//! What the host keeps under `state_dir`, each file written atomically (temporary file, fsync,
//! rename, fsync of the directory) and readable by the service's user alone:
//! - `user-state`: the bytes the component returned after a pass, handed back to the next one.
//!   A pass never interprets them (the component checks format, hub and settings; `grouper-sync
//!   state show` prints them), and they are never required: a missing or unreadable file means a
//!   full pass. Earlier builds wrote `user-state.json` (format version 1, which the component still
//!   reads); it is read while no `user-state` exists and removed once one is written.
//! - `approvals.json`: withheld plans an admin approved, each used at most once, expiring.
//! - `removals.json`: how many members each pass removed from each group, and when, for the
//!   component's daily removal budget (the component decides; the host only keeps the record).
//! - `lock`: one writer at a time. A pass, `once` and `approve` hold it (`flock`), and it names
//!   who holds it.
//!
//! `state_dir` must belong to the service's user and be writable by nobody else, and no file
//! in it is opened through a symbolic link.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jupyterhub_grouper_sync::sync::report::RemovalRecord;

pub const FILE_NAME: &str = "user-state";
/// Where builds before format version 2 kept the user state.
pub const OLD_FILE_NAME: &str = "user-state.json";
pub const APPROVALS_FILE: &str = "approvals.json";
pub const REMOVALS_FILE: &str = "removals.json";
pub const LOCK_FILE: &str = "lock";

/// Removal records are kept this long (the budget looks back 24 hours).
const REMOVALS_KEPT: Duration = Duration::from_secs(48 * 3600);

/// Opens a file for reading, refusing a symbolic link in its place.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Reads a whole file, refusing a symbolic link in its place.
pub fn read_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_nofollow(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

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

    /// The stored state's bytes and the file they came from (the one an earlier build wrote,
    /// while there is no other).
    pub fn read(&self) -> std::io::Result<(Vec<u8>, PathBuf)> {
        let path = self.path();
        match read_nofollow(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let old = self.dir.join(OLD_FILE_NAME);
                read_nofollow(&old).map(|bytes| (bytes, old)).map_err(|_| e)
            }
            read => read.map(|bytes| (bytes, path)),
        }
    }

    /// The stored state, if there is one that can be read. Logs once why there is none.
    pub fn load(&self) -> Option<Vec<u8>> {
        let path = self.path();
        match self.read() {
            Ok((bytes, _)) => Some(bytes),
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

    /// Replaces the stored state atomically: a crash leaves the old file or the new one. An
    /// earlier build's file goes once the new one is in place.
    pub fn save(&self, _held: &StateLock, bytes: &[u8]) -> Result<()> {
        self.write_atomically(FILE_NAME, bytes)?;
        match fs::remove_file(self.dir.join(OLD_FILE_NAME)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                tracing::warn!("cannot remove the earlier build's {OLD_FILE_NAME}: {e}")
            }
            _ => {}
        }
        Ok(())
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

/// Why `state_dir` cannot be used safely: someone else could plant or change what the next
/// pass reads (an approval, a user state).
pub fn unsafe_dir(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return None, // created 0700 when needed
        Err(e) => return Some(format!("state_dir {}: {e}", dir.display())),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        Some(format!("state_dir {} is not a directory", dir.display()))
    } else if meta.uid() != me {
        Some(format!(
            "state_dir {} belongs to user id {}, not to the service's user ({me}); give it to that user (chown) or choose another",
            dir.display(),
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "state_dir {} is writable by {} (mode {:o}); `chmod go-w` it, since whoever can write there can approve removals",
            dir.display(),
            if meta.mode() & 0o002 != 0 { "everyone" } else { "its group" },
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// Why the lock on `state_dir` was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; what it wrote about itself.
    Busy(String),
    /// `state_dir` is not safe to use ([`unsafe_dir`]).
    Unsafe(String),
    Io(anyhow::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(holder) => write!(f, "state_dir is in use by {holder}"),
            LockError::Unsafe(why) => f.write_str(why),
            LockError::Io(e) => write!(f, "{e:#}"),
        }
    }
}

/// The exclusive lock on `state_dir`, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
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
        .custom_flags(libc::O_NOFOLLOW)
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
    /// Takes the lock on `state_dir` if nobody holds it, writing `holder` (who is asking) into
    /// it. Checks first that `state_dir` is safe, and creates it if needed.
    pub fn try_lock(&self, holder: &str) -> Result<StateLock, LockError> {
        if let Some(why) = unsafe_dir(&self.dir) {
            return Err(LockError::Unsafe(why));
        }
        create_private_dir(&self.dir).map_err(LockError::Io)?;
        let path = self.dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| LockError::Io(anyhow::anyhow!("opening {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = String::from_utf8_lossy(&read_nofollow(&path).unwrap_or_default())
                    .trim()
                    .to_string();
                return Err(LockError::Busy(if text.is_empty() {
                    "another grouper-sync".into()
                } else {
                    text
                }));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Io(anyhow::anyhow!(
                    "locking {}: {e}",
                    path.display()
                )))
            }
        }
        let _ = file.set_len(0);
        let _ = file.write_all(holder.as_bytes());
        Ok(StateLock { _file: file })
    }

    /// [`StateStore::try_lock`], waiting up to `wait` for a holder to let go.
    pub fn lock_blocking(&self, holder: &str, wait: Duration) -> Result<StateLock, LockError> {
        let until = std::time::Instant::now() + wait;
        loop {
            match self.try_lock(holder) {
                Err(LockError::Busy(_)) if std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                other => return other,
            }
        }
    }

    /// Removals of the last 24 hours and more, oldest first; an unreadable file counts as
    /// none, with a warning.
    pub fn removals(&self) -> Vec<RemovalRecord> {
        let path = self.dir.join(REMOVALS_FILE);
        match read_nofollow(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), "the removal record is not readable ({e}); the daily removal budget starts again from zero");
                Vec::new()
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read the removal record ({e}); the daily removal budget starts again from zero");
                Vec::new()
            }
        }
    }

    /// Adds `count` removals from `target` at `at` (seconds), dropping records past their use.
    pub fn record_removals(
        &self,
        _held: &StateLock,
        target: &str,
        count: u32,
        at: i64,
    ) -> Result<()> {
        let mut records = self.removals();
        let oldest = at - REMOVALS_KEPT.as_secs() as i64;
        records.retain(|r| r.at >= oldest);
        records.push(RemovalRecord {
            target: target.to_string(),
            at,
            count,
        });
        let bytes = serde_json::to_vec_pretty(&records).expect("records serialize");
        self.write_atomically(REMOVALS_FILE, &bytes)
    }

    fn read_approvals(&self) -> Result<Vec<Approval>> {
        let path = self.dir.join(APPROVALS_FILE);
        match read_nofollow(&path) {
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
    pub fn approve(&self, _held: &StateLock, plan: &str) -> Result<()> {
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
    pub fn approvals(&self, _held: &StateLock, max_age: Duration) -> Vec<String> {
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
    pub fn consume(&self, _held: &StateLock, used: &[String]) -> Result<()> {
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

    fn locked(store: &StateStore) -> StateLock {
        store.try_lock("a test").unwrap()
    }

    #[test]
    fn an_earlier_builds_state_is_read_until_a_new_one_is_written() {
        let dir = temp_dir("upgrade");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(OLD_FILE_NAME), b"version 1").unwrap();
        let store = StateStore::new(&dir);
        assert_eq!(store.load().as_deref(), Some(&b"version 1"[..]));
        assert_eq!(store.read().unwrap().1, dir.join(OLD_FILE_NAME));
        store.save(&locked(&store), b"version 2").unwrap();
        assert_eq!(store.load().as_deref(), Some(&b"version 2"[..]));
        assert!(!dir.join(OLD_FILE_NAME).exists(), "the old file is gone");
    }

    #[test]
    fn saves_atomically_privately_and_loads_back() {
        let dir = temp_dir("roundtrip").join("nested");
        let store = StateStore::new(&dir);
        assert_eq!(store.load(), None, "nothing stored yet");
        let lock = locked(&store);
        store.save(&lock, b"first").unwrap();
        store.save(&lock, b"second").unwrap();
        assert_eq!(store.load().as_deref(), Some(&b"second"[..]));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        leftovers.sort();
        assert_eq!(leftovers, [LOCK_FILE, FILE_NAME], "no temporary file left");
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
        let e = store.try_lock("a test").unwrap_err();
        assert!(e.to_string().contains("state_dir"), "{e}");
        assert_eq!(store.load(), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_writer_at_a_time_and_the_second_learns_who_holds_it() {
        let dir = temp_dir("lock");
        let store = StateStore::new(&dir);
        let first = store.try_lock("grouper-sync service (pid 1)").unwrap();
        match store.try_lock("grouper-sync once (pid 2)") {
            Err(LockError::Busy(holder)) => assert_eq!(holder, "grouper-sync service (pid 1)"),
            other => panic!("{other:?}"),
        }
        let waited = std::time::Instant::now();
        assert!(matches!(
            store.lock_blocking("once", Duration::from_millis(300)),
            Err(LockError::Busy(_))
        ));
        assert!(waited.elapsed() >= Duration::from_millis(300), "it waited");
        drop(first);
        let second = store.try_lock("grouper-sync once (pid 2)").unwrap();
        assert_eq!(
            fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
            "grouper-sync once (pid 2)"
        );
        drop(second);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_state_dir_others_can_write_is_refused_and_symlinks_are_not_followed() {
        let dir = temp_dir("unsafe");
        fs::create_dir_all(&dir).unwrap();
        for mode in [0o777, 0o770, 0o722] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            let e = StateStore::new(&dir).try_lock("test").unwrap_err();
            assert!(matches!(e, LockError::Unsafe(_)), "{mode:o}: {e}");
            assert!(e.to_string().contains("chmod go-w"), "{e}");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        let store = StateStore::new(&dir);
        let lock = locked(&store);
        // a planted link to somewhere else is neither read nor appended to
        let elsewhere = dir.join("elsewhere.json");
        fs::write(
            &elsewhere,
            br#"[{"plan": "0123456789abcdef", "approved_at": 99999999999}]"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(APPROVALS_FILE)).unwrap();
        assert!(store.approvals(&lock, Duration::from_secs(3600)).is_empty());
        std::os::unix::fs::symlink(&elsewhere, dir.join(FILE_NAME)).unwrap();
        assert_eq!(store.load(), None);
        let log = dir.join("changes.jsonl");
        std::os::unix::fs::symlink(&elsewhere, &log).unwrap();
        assert!(append_private(&log, "x\n").is_err());
        assert!(read_nofollow(&log).is_err());
        assert!(
            fs::read_to_string(&elsewhere).unwrap().starts_with("[{"),
            "untouched"
        );
        drop(lock);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn removals_are_recorded_for_the_daily_budget_and_old_ones_dropped() {
        let dir = temp_dir("removals");
        let store = StateStore::new(&dir);
        let lock = locked(&store);
        let t = 1_800_000_000;
        store
            .record_removals(&lock, "grouper:a:b", 3, t - 72 * 3600)
            .unwrap();
        store
            .record_removals(&lock, "grouper:a:b", 5, t - 3600)
            .unwrap();
        store.record_removals(&lock, "hub:gpu", 2, t).unwrap();
        let kept: Vec<(String, u32)> = store
            .removals()
            .into_iter()
            .map(|r| (r.target, r.count))
            .collect();
        assert_eq!(kept, [("grouper:a:b".into(), 5), ("hub:gpu".into(), 2)]);
        fs::write(dir.join(REMOVALS_FILE), b"garbage").unwrap();
        assert!(store.removals().is_empty());
        drop(lock);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn approvals_are_recorded_expire_and_are_used_once() {
        let dir = temp_dir("approvals");
        let store = StateStore::new(&dir);
        let lock = locked(&store);
        let approvals = || store.approvals(&lock, Duration::from_secs(3600));
        assert!(approvals().is_empty());
        store.approve(&lock, "0123456789abcdef").unwrap();
        store.approve(&lock, "fedcba9876543210").unwrap();
        store.approve(&lock, "0123456789abcdef").unwrap();
        assert_eq!(approvals(), ["fedcba9876543210", "0123456789abcdef"]);
        store.consume(&lock, &["0123456789abcdef".into()]).unwrap();
        assert_eq!(approvals(), ["fedcba9876543210"]);
        // an approval from long ago has expired, and is dropped from the file
        let old = serde_json::json!([{"plan": "1111111111111111", "approved_at": 1000}]);
        fs::write(dir.join(APPROVALS_FILE), old.to_string()).unwrap();
        assert!(approvals().is_empty());
        assert_eq!(store.read_approvals().unwrap(), []);
        fs::write(dir.join(APPROVALS_FILE), b"garbage").unwrap();
        assert!(approvals().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
