//! The user state on disk: the bytes the component returned after a pass, handed back to the
//! next one. The host never interprets them (the component checks format, hub and settings);
//! it only keeps them safe: written atomically (temporary file, fsync, rename, fsync of the
//! directory), readable by the service's user alone, and never required: a missing or
//! unreadable file means a full pass.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "user-state.json";

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
                tracing::info!(path = %path.display(), "no user state yet; this pass reads every user's record");
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
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating state_dir {}", self.dir.display()))?;
        let path = self.path();
        let tmp = self
            .dir
            .join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let write = |tmp: &Path| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write(&tmp).and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
        // The rename is durable once the directory is.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
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
}
