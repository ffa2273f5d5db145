//! Settings from `wasi:config/store` (the version the build selects), with the environment as
//! fallback: a key absent from config is read under its environment variable's name
//! (`settings::env_name`), first from config (wasmCloud 2 puts a workload's environment and
//! secrets there under those names), then from the environment.

use super::config_store as store;
use crate::error::SyncError;
use crate::settings::{self, Settings};

/// A snapshot of the config store and the environment, taken once per request or pass.
pub struct Config {
    store: Vec<(String, String)>,
    env: Vec<(String, String)>,
}

impl Config {
    pub fn load() -> Result<Config, SyncError> {
        let store = store::get_all()
            .map_err(|e| SyncError::config(format!("wasi:config get-all failed: {e:?}")))?;
        Ok(Config {
            store,
            env: std::env::vars().collect(),
        })
    }

    /// One key: from config, else from config or the environment under its variable's name.
    /// Empty counts as absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let find = |pairs: &[(String, String)], name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let env_name = settings::env_name(key);
        find(&self.store, key)
            .or_else(|| env_name.and_then(|n| find(&self.store, n)))
            .or_else(|| env_name.and_then(|n| find(&self.env, n)))
    }

    /// All sync settings; unknown config keys and unknown `GROUPER_SYNC_*` variables are errors.
    pub fn settings(&self) -> Result<Settings, SyncError> {
        settings::check_known_keys(self.store.iter().map(|(k, _)| k.as_str()))?;
        settings::check_known_env(self.env.iter().map(|(k, _)| k.as_str()))?;
        settings::parse(|key| Ok(self.get(key)))
    }
}
