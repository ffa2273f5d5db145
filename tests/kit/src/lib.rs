//! The project's one test kit, shared by the core's, the component's and the host's tests: a
//! scriptable fake JupyterHub (`fake_hub`), the real hub started by `scripts/jupyterhub/hub.sh`
//! (`real_hub`), a fake hub next to the Grouper simulator (`world`), the installed WASI platforms
//! (`platform`), bounded waits (`wait`), configuration pairs and the Grouper captures. It links
//! neither wasmtime nor the host, so the core's tests stay light.

pub mod fake_hub;
pub mod platform;
pub mod real_hub;
pub mod wait;
pub mod world;

pub use fake_hub::FakeHub;
pub use real_hub::{http, repo_root, RealHub};

use serde_json::Value;

/// Configuration as `wasi:config` pairs.
pub fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Replaces or adds pairs.
pub fn with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        base.retain(|(bk, _)| bk != k);
        base.push((k.to_string(), v.to_string()));
    }
    base
}

/// Reads a Grouper capture from ../shared/fixtures/grouper, or None (with a message) when absent.
pub fn fixture(name: &str) -> Option<Value> {
    let path = repo_root().join("../shared/fixtures/grouper").join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))),
        Err(_) => {
            eprintln!(
                "SKIP: Grouper fixture {} is absent (third-party captures live outside the repo)",
                path.display()
            );
            None
        }
    }
}
