//! Real WASI platforms installed by `scripts/platforms.sh install` (wasmtime CLI, wasmCloud's
//! `wash`): where their binaries are, and a child process that is killed with its whole process
//! group when the test ends.

use crate::real_hub::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const INSTALL: &str = "scripts/platforms.sh install";

/// The platform binary (`wasmtime_cli/wasmtime` or `wash_cli/wash` inside the platform venv).
/// Outside CI a missing platform skips the test with a message naming the install command; in
/// CI (`CI` set) it fails, because `.ci/run` installs both.
pub fn platform_bin(package_dir: &str, name: &str) -> Option<PathBuf> {
    let lib = repo_root().join("target/platform-venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages").join(package_dir).join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "{name} is not installed under {}; CI must run `{INSTALL}` first",
                lib.display()
            )
        }
        None => {
            eprintln!("SKIP: {name} is not installed; run `{INSTALL}` to run this test");
            None
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A platform process with its output in a log file; killed (with its children) on drop.
pub struct Platform {
    child: Child,
    pub log: PathBuf,
}

impl Platform {
    pub fn spawn(mut cmd: Command, log: &Path) -> Platform {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::create(log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        Platform {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded generously) until `ok` holds, failing with the platform's output.
    pub fn wait_for(&mut self, what: &str, mut ok: impl FnMut(&Platform) -> bool) {
        let started = Instant::now();
        while !ok(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the platform exited ({status}) before {what}:\n{}",
                    self.output()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "timed out waiting for {what}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        // The negative pid names the process group: the platform and anything it started.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
