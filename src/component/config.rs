//! Settings from `wasi:config/store` (the version the build selects), with the environment as
//! fallback: a key absent from config is read from its environment variable (`settings::env_name`).

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

    /// One key, from config or else from its environment variable. Empty counts as absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let from_store = self.store.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let from_env = || {
            let name = settings::env_name(key)?;
            self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v)
        };
        from_store
            .or_else(from_env)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }

    /// All sync settings; unknown config keys and unknown `GROUPER_SYNC_*` variables are errors.
    pub fn settings(&self) -> Result<Settings, SyncError> {
        settings::check_known_keys(self.store.iter().map(|(k, _)| k.as_str()))?;
        settings::check_known_env(self.env.iter().map(|(k, _)| k.as_str()))?;
        settings::parse(|key| Ok(self.get(key)))
    }
}
