//! Settings: every configuration key, its default, and validation.
//!
//! [`schema`] holds each key once (name, environment variable, kind and bounds, default, help);
//! [`parse`] reads values from a lookup function (in the component: `wasi:config/store`, then the
//! environment variable named in the schema) into the typed [`Settings`]. Parsing is pure so that
//! it is unit-tested natively.

mod names;
mod parse;
pub mod schema;
#[cfg(test)]
mod tests;

pub use names::{
    anchored as name_pattern, fill_template, group_pattern, in_folder, parse_group_path,
    template_fields,
};
#[cfg(test)]
pub(crate) use parse::for_tests;
pub use parse::{parse, redact_userinfo};
pub use schema::{env_name, parse_bool, Key, Kind, Scope, ValueError, KEYS, SYNC_INTERVAL};

use crate::error::SyncError;
use crate::model::{Direction, Mode, SubjectFrom, TargetSpec};
use schema::{
    choice_enum, CONTENT_TYPES, DIRECTIONS, LOG_LEVELS, MODES, SUBJECT_LOOKUPS, SUBJECT_SOURCES,
};
use std::fmt;
use std::time::Duration;

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

choice_enum!(Mode, MODES, [Mirror, Additive]);
choice_enum!(Direction, DIRECTIONS, [ToGrouper, ToHub]);

/// `subject_from`: where the subject comes from (the paths and template are read with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSource {
    AuthState,
    UserInfo,
    Username,
}

choice_enum!(
    SubjectSource,
    SUBJECT_SOURCES,
    [AuthState, UserInfo, Username]
);

/// `subject_lookup`, before its attribute is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    SubjectId,
    SubjectIdentifier,
}

choice_enum!(LookupKind, SUBJECT_LOOKUPS, [SubjectId, SubjectIdentifier]);

/// `grouper_content_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    TextXJson,
    ApplicationJson,
}

choice_enum!(ContentType, CONTENT_TYPES, [TextXJson, ApplicationJson]);

/// How incremental passes decide whose `auth_state` to read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Every user is re-read at least this often (seconds).
    pub full_refresh_seconds: i64,
    /// Users active within this many seconds of their last read are read again.
    pub activity_margin_seconds: i64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

choice_enum!(LogLevel, LOG_LEVELS, [Error, Warn, Info, Debug]);

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Extra attempts after the first for transient failures.
    pub retries: u32,
    pub backoff: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub hub_api_url: String,
    pub hub_token: Secret,
    pub grouper_base_url: String,
    pub grouper_user: String,
    pub grouper_password: Secret,
    pub grouper_content_type: String,
    pub grouper_page_size: usize,
    pub grouper_batch_size: usize,
    pub hub_batch_size: usize,
    pub api_page_size: usize,
    pub concurrency: usize,
    pub dry_run: bool,
    pub allow_empty_hub: bool,
    pub log_level: LogLevel,
    pub http: HttpSettings,
    pub targets: Vec<TargetSpec>,
    /// At most this many adds and removes per pass (the rest wait for the next pass).
    pub max_changes_per_pass: Option<usize>,
    pub refresh: Refresh,
    /// How the pass reaches Google, when a target names a `google_group`.
    pub google: Option<GoogleAccess>,
}

/// The service account the pass acts as toward the Groups Settings API.
#[derive(Debug, Clone, PartialEq)]
pub struct GoogleAccess {
    pub key: crate::model::ServiceAccountKey,
    /// The Workspace admin the account acts as (`sub`).
    pub admin_subject: String,
    /// The API's base URL (`google_api_url`).
    pub api_url: String,
}

impl Settings {
    /// The distinct `auth_state` path lists the targets map with, in a stable order: a user's
    /// record is mapped once per entry, and the user state stores one subject per entry.
    pub fn auth_state_mappings(&self) -> Vec<&Vec<Vec<String>>> {
        let mut out: Vec<&Vec<Vec<String>>> = Vec::new();
        for paths in self
            .targets
            .iter()
            .filter_map(|t| t.rules.subject_from.auth_state_paths())
        {
            if !out.contains(&paths) {
                out.push(paths);
            }
        }
        out
    }

    /// Does a target select users by hub group or keep one (so the list must carry groups)?
    pub fn needs_groups(&self) -> bool {
        self.targets.iter().any(TargetSpec::uses_hub_groups)
    }

    /// Does a target select only users with a running server (so the list must carry them)?
    pub fn needs_servers(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.rules.filters.only_active_servers)
    }

    /// Does any target map subjects from the listed `user_info`?
    pub fn needs_user_info(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.rules.subject_from, SubjectFrom::UserInfo { .. }))
    }
}

/// The schema's defaults of the two path lists, for messages and the user state.
pub const DEFAULT_AUTH_STATE_PATHS: &str = schema::default_of("auth_state_paths");
pub const DEFAULT_USER_INFO_PATHS: &str = schema::default_of("user_info_paths");

/// A path list as written in the settings (`a.b,c.d`).
pub fn paths_text(paths: &[Vec<String>]) -> String {
    paths
        .iter()
        .map(|p| p.join("."))
        .collect::<Vec<_>>()
        .join(",")
}

/// A configuration problem (kind `config`); the message names the key.
pub type ConfigError = SyncError;

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(SyncError::config(msg))
}

/// Rejects config keys this component does not know (a typo must not silently become a default).
/// A key may also be spelled as its environment variable: wasmCloud 2 hands a workload's
/// environment and secrets to `wasi:config` under their variable names.
pub fn check_known_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut unknown: Vec<&str> = keys
        .into_iter()
        .filter(|k| !KEYS.iter().any(|known| known.name == *k || known.env == *k))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if unknown.is_empty() {
        Ok(())
    } else {
        err(format!(
            "unknown configuration key(s): {} (docs/configuration.md lists the known keys)",
            unknown.join(", ")
        ))
    }
}

/// Rejects `GROUPER_SYNC_*` environment variables that name no setting.
pub fn check_known_env<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut unknown: Vec<&str> = names
        .into_iter()
        .filter(|n| n.starts_with("GROUPER_SYNC_") && !KEYS.iter().any(|k| k.env == *n))
        .collect();
    unknown.sort_unstable();
    if unknown.is_empty() {
        Ok(())
    } else {
        err(format!(
            "unknown environment variable(s): {}",
            unknown.join(", ")
        ))
    }
}
