//! Settings: every configuration key, its default, and validation.
//!
//! Values come from a lookup function (in the component: `wasi:config/store`, then the
//! environment variable named in [`KEYS`]). Parsing is pure so that it is unit-tested natively.

use crate::error::SyncError;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// A configuration key with the environment variable used when the key is absent from config.
pub struct Key {
    pub name: &'static str,
    pub env: &'static str,
    pub secret: bool,
    /// One line for `--help`.
    pub help: &'static str,
}

const fn key(name: &'static str, env: &'static str, help: &'static str) -> Key {
    Key {
        name,
        env,
        secret: false,
        help,
    }
}

const fn secret(name: &'static str, env: &'static str, help: &'static str) -> Key {
    Key {
        name,
        env,
        secret: true,
        help,
    }
}

/// Every key the component understands. Anything else in `wasi:config` is rejected.
pub const KEYS: &[Key] = &[
    key(
        "jupyterhub_api_url",
        "JUPYTERHUB_API_URL",
        "hub API URL, e.g. http://127.0.0.1:8081/hub/api",
    ),
    secret(
        "jupyterhub_api_token",
        "JUPYTERHUB_API_TOKEN",
        "hub token with list:users, read:users, admin:auth_state",
    ),
    key(
        "grouper_base_url",
        "GROUPER_BASE_URL",
        "Grouper WS URL, e.g. https://calgroups.berkeley.edu/gws/servicesRest/json/v2_2_100",
    ),
    key("grouper_user", "GROUPER_USER", "Grouper HTTP Basic user"),
    secret(
        "grouper_password",
        "GROUPER_PASSWORD",
        "Grouper HTTP Basic password",
    ),
    key(
        "grouper_id_path",
        "GROUPER_ID_PATH",
        "target group, e.g. edu:berkeley:app:datahub:datahub-users",
    ),
    key(
        "targets",
        "GROUPER_SYNC_TARGETS",
        "more target groups, a JSON list: [{\"grouper_group\": \"edu:x:course-101\", \"hub_group\": \"course-101\"}]",
    ),
    key(
        "dry_run",
        "GROUPER_SYNC_DRY_RUN",
        "plan and report, write nothing (default false)",
    ),
    key(
        "mode",
        "GROUPER_SYNC_MODE",
        "mirror (add and remove) or additive (never remove) (default mirror)",
    ),
    key(
        "max_removals",
        "GROUPER_SYNC_MAX_REMOVALS",
        "a pass that would remove more members removes none (default 50)",
    ),
    key(
        "max_removal_fraction",
        "GROUPER_SYNC_MAX_REMOVAL_FRACTION",
        "... or more than this fraction of the group (default 0.10)",
    ),
    key(
        "removal_fraction_floor",
        "GROUPER_SYNC_REMOVAL_FRACTION_FLOOR",
        "... once more than this many removals are planned (default 5)",
    ),
    key(
        "max_removals_per_day",
        "GROUPER_SYNC_MAX_REMOVALS_PER_DAY",
        "removals that would make more than this many in any 24 hours are withheld (default 100)",
    ),
    key(
        "max_removal_fraction_per_day",
        "GROUPER_SYNC_MAX_REMOVAL_FRACTION_PER_DAY",
        "... or more than this fraction of the group in 24 hours, past removal_fraction_floor (default 0.20)",
    ),
    key(
        "protected_members",
        "GROUPER_SYNC_PROTECTED_MEMBERS",
        "comma-separated subjects never removed",
    ),
    key(
        "include_admins",
        "GROUPER_SYNC_INCLUDE_ADMINS",
        "also sync hub admins (default false)",
    ),
    key(
        "active_within_days",
        "GROUPER_SYNC_ACTIVE_WITHIN_DAYS",
        "only users active within this many days (default: any)",
    ),
    key(
        "only_active_servers",
        "GROUPER_SYNC_ONLY_ACTIVE_SERVERS",
        "only users with a running server (default false)",
    ),
    key(
        "exclude_users_pattern",
        "GROUPER_SYNC_EXCLUDE_USERS_PATTERN",
        "a regex over whole hub user names: matching users are never selected",
    ),
    key(
        "create_missing_groups",
        "GROUPER_SYNC_CREATE_MISSING_GROUPS",
        "create a target group that does not exist (default false; Grouper groups only inside grouper_folder)",
    ),
    key(
        "grouper_folder",
        "GROUPER_SYNC_GROUPER_FOLDER",
        "the Grouper folder (stem) in which create_missing_groups may create groups",
    ),
    key(
        "allow_empty_hub",
        "GROUPER_SYNC_ALLOW_EMPTY_HUB",
        "accept a hub that lists no users (default false)",
    ),
    key(
        "subject_from",
        "GROUPER_SYNC_SUBJECT_FROM",
        "auth_state, user_info or username (default auth_state)",
    ),
    key(
        "user_info_paths",
        "GROUPER_SYNC_USER_INFO_PATHS",
        "with subject_from=user_info: ordered dotted user_info paths (default login_id)",
    ),
    key(
        "auth_state_paths",
        "GROUPER_SYNC_AUTH_STATE_PATHS",
        "ordered dotted auth_state paths (default canvas_user.login_id,oauth_user.login_id)",
    ),
    key(
        "username_template",
        "GROUPER_SYNC_USERNAME_TEMPLATE",
        "with subject_from=username, e.g. {name}@example.edu",
    ),
    key(
        "subject_lookup",
        "GROUPER_SYNC_SUBJECT_LOOKUP",
        "subject_id or subject_identifier (default subject_id)",
    ),
    key(
        "subject_source_id",
        "GROUPER_SYNC_SUBJECT_SOURCE_ID",
        "send subjectSourceId and manage only members of that source",
    ),
    key(
        "identifier_attribute",
        "GROUPER_SYNC_IDENTIFIER_ATTRIBUTE",
        "with subject_identifier: the subject attribute to match members on",
    ),
    key(
        "api_page_size",
        "GROUPER_SYNC_API_PAGE_SIZE",
        "hub users per list page (default 200)",
    ),
    key(
        "concurrency",
        "GROUPER_SYNC_CONCURRENCY",
        "hub user records fetched at once, 1-64 (default 1; 2-4 for a hub far away, see BENCHMARKS.md)",
    ),
    key(
        "grouper_page_size",
        "GROUPER_SYNC_GROUPER_PAGE_SIZE",
        "members per getMembers page (default 1000)",
    ),
    key(
        "grouper_batch_size",
        "GROUPER_SYNC_GROUPER_BATCH_SIZE",
        "subjects per addMember/deleteMember call (default 100)",
    ),
    key(
        "grouper_content_type",
        "GROUPER_SYNC_GROUPER_CONTENT_TYPE",
        "text/x-json or application/json (default text/x-json)",
    ),
    key(
        "connect_timeout_seconds",
        "GROUPER_SYNC_CONNECT_TIMEOUT_SECONDS",
        "per request (default 10)",
    ),
    key(
        "request_timeout_seconds",
        "GROUPER_SYNC_REQUEST_TIMEOUT_SECONDS",
        "first-byte and between-bytes timeout per request (default 60)",
    ),
    key(
        "retries",
        "GROUPER_SYNC_RETRIES",
        "extra attempts for transient failures (default 3)",
    ),
    key(
        "retry_backoff_ms",
        "GROUPER_SYNC_RETRY_BACKOFF_MS",
        "first backoff, doubling, capped at 30 s (default 500)",
    ),
    key(
        "log_level",
        "GROUPER_SYNC_LOG_LEVEL",
        "error, warn, info or debug (default info)",
    ),
    key(
        "full_refresh_hours",
        "GROUPER_SYNC_FULL_REFRESH_HOURS",
        "incremental passes re-read every user's auth_state at least this often (default 24)",
    ),
    key(
        "activity_margin_seconds",
        "GROUPER_SYNC_ACTIVITY_MARGIN_SECONDS",
        "re-read users active this close to their last read (default 900)",
    ),
    key(
        "max_changes_per_pass",
        "GROUPER_SYNC_MAX_CHANGES_PER_PASS",
        "at most this many adds and removes per pass (default unlimited)",
    ),
    secret(
        "sync_auth_token",
        "GROUPER_SYNC_AUTH_TOKEN",
        "bearer token of POST /sync and POST /check",
    ),
    key(
        "sync_every_seconds",
        "GROUPER_SYNC_EVERY_SECONDS",
        "wasi:cli/run loops with a pass every this many seconds",
    ),
];

/// The environment variable that stands in for a config key, if the key is known.
pub fn env_name(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|k| k.name == key).map(|k| k.env)
}

/// The one reading of a boolean setting, used by the component and the host alike.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `host:port` (lower-case, default port filled in) of an `http://` or `https://` URL; the one
/// reading of a URL's authority, used for the egress allow-list and for validation.
pub fn url_authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // userinfo is not allowed: credentials go in their own settings
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.ends_with(']') => (h, Some(p)),
        _ => (authority.as_str(), None),
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    Some(format!("{host}:{port}"))
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Adds missing members and removes members who are no longer hub users.
    Mirror,
    /// Only adds; never removes anyone.
    Additive,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mirror => "mirror",
            Mode::Additive => "additive",
        }
    }
}

/// Where a user's Grouper subject value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectFrom {
    /// The first `auth_state` path (each a list of object keys) that holds a non-empty string.
    AuthState(Vec<Vec<String>>),
    /// The hub username put through a template containing `{name}`.
    Username { template: String },
    /// The first `user_info` path (listed with every user, JupyterHub >= 6) that holds a
    /// non-empty string; users whose `user_info` lacks it fall back to these `auth_state` paths.
    UserInfo {
        paths: Vec<Vec<String>>,
        fallback: Vec<Vec<String>>,
    },
}

impl SubjectFrom {
    /// The `auth_state` paths this mapping may need a user's record for.
    pub fn auth_state_paths(&self) -> Option<&Vec<Vec<String>>> {
        match self {
            SubjectFrom::AuthState(paths) => Some(paths),
            SubjectFrom::UserInfo { fallback, .. } => Some(fallback),
            SubjectFrom::Username { .. } => None,
        }
    }
}

/// How incremental passes decide whose `auth_state` to read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Every user is re-read at least this often (seconds).
    pub full_refresh_seconds: i64,
    /// Users active within this many seconds of their last read are read again.
    pub activity_margin_seconds: i64,
}

/// How the subject value is sent to Grouper, and so how current members are matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectLookup {
    /// `subjectId`; current members match on their subject id.
    SubjectId,
    /// `subjectIdentifier`; current members match on the value of this subject attribute.
    SubjectIdentifier { attribute: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemovalLimits {
    /// A pass that would remove more than this many members removes none.
    pub max_removals: usize,
    /// ... or more than this fraction of the current group, once above `fraction_floor` removals.
    pub max_fraction: f64,
    pub fraction_floor: usize,
    /// The daily budget: removals that would make more than this many in any 24 hours are
    /// withheld, ...
    pub max_per_day: usize,
    /// ... or more than this fraction of the group (past `fraction_floor`).
    pub max_fraction_per_day: f64,
}

/// Which side a target writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Hub users (or one hub group's members) -> the Grouper group.
    ToGrouper,
    /// The Grouper group's members, mapped back to hub users -> the hub group.
    ToHub,
}

/// A regex matched against whole names.
#[derive(Debug, Clone)]
pub struct NamePattern(regex_lite::Regex);

impl NamePattern {
    pub fn new(key: &str, pattern: &str) -> Result<NamePattern, ConfigError> {
        anchored(key, pattern).map(NamePattern)
    }
    pub fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Which hub users a target counts, besides its hub group and the admin rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFilters {
    /// Only users whose `last_activity` lies within this many days of the hub's clock.
    pub active_within_days: Option<u32>,
    /// Only users with a running server (any of their servers).
    pub only_active_servers: bool,
    /// Users whose whole name matches are never selected.
    pub exclude_users: Option<NamePattern>,
}

/// One (selection -> target group) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub group_path: String,
    pub direction: Direction,
    /// `to_grouper`: only the members of this hub group (`None`: every hub user).
    /// `to_hub`: the hub group this target keeps.
    pub hub_group: Option<String>,
    /// One target per hub group whose whole name matches this regex; `group_path` is then a
    /// template (`{0}` the name, `{1}`… its captures). Resolved in each pass.
    pub hub_group_pattern: Option<String>,
    pub include_admins: bool,
    pub subject_from: SubjectFrom,
    pub lookup: SubjectLookup,
    pub source_id: Option<String>,
    pub mode: Mode,
    pub limits: RemovalLimits,
    pub protected: BTreeSet<String>,
    pub filters: UserFilters,
    /// Create the written group when it does not exist.
    pub create_missing: bool,
    /// The folder in which a missing Grouper group may be created.
    pub grouper_folder: Option<String>,
}

impl Target {
    /// The group this target writes, as the removal budget counts it: `grouper:<group>` for
    /// to_grouper, `hub:<hub group>` for to_hub.
    pub fn written_group(&self) -> String {
        match (self.direction, &self.hub_group) {
            (Direction::ToHub, Some(g)) => format!("hub:{g}"),
            _ => format!("grouper:{}", self.group_path),
        }
    }
}

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
    pub api_page_size: usize,
    pub concurrency: usize,
    pub dry_run: bool,
    pub allow_empty_hub: bool,
    pub log_level: LogLevel,
    pub http: HttpSettings,
    pub targets: Vec<Target>,
    /// At most this many adds and removes per pass (the rest wait for the next pass).
    pub max_changes_per_pass: Option<usize>,
    pub refresh: Refresh,
}

impl Settings {
    /// The distinct `auth_state` path lists the targets map with, in a stable order: a user's
    /// record is mapped once per entry, and the user state stores one subject per entry.
    pub fn auth_state_mappings(&self) -> Vec<&Vec<Vec<String>>> {
        let mut out: Vec<&Vec<Vec<String>>> = Vec::new();
        for paths in self
            .targets
            .iter()
            .filter_map(|t| t.subject_from.auth_state_paths())
        {
            if !out.contains(&paths) {
                out.push(paths);
            }
        }
        out
    }

    /// Does a target select users by hub group or keep one (so the list must carry groups)?
    pub fn needs_groups(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.hub_group.is_some() || t.hub_group_pattern.is_some())
    }

    /// Does a target select only users with a running server (so the list must carry them)?
    pub fn needs_servers(&self) -> bool {
        self.targets.iter().any(|t| t.filters.only_active_servers)
    }

    /// Does any target map subjects from the listed `user_info`?
    pub fn needs_user_info(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.subject_from, SubjectFrom::UserInfo { .. }))
    }
}

pub const DEFAULT_AUTH_STATE_PATHS: &str = "canvas_user.login_id,oauth_user.login_id";
pub const DEFAULT_USER_INFO_PATHS: &str = "login_id";

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
            "unknown configuration key(s): {} (known keys are listed in the README)",
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

struct Reader<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Result<Option<String>, String>> Reader<F> {
    fn raw(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(name) {
            Ok(Some(v)) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(v),
            Err(e) => err(format!("could not read configuration key {name}: {e}")),
        }
    }

    fn env_of(name: &str) -> &'static str {
        env_name(name).unwrap_or("")
    }

    fn required(&self, name: &str) -> Result<String, ConfigError> {
        match self.raw(name)? {
            Some(v) => Ok(v.trim().to_string()),
            None => err(format!(
                "missing required setting {name} (config key {name} or environment variable {})",
                Self::env_of(name)
            )),
        }
    }

    fn required_secret(&self, name: &str) -> Result<Secret, ConfigError> {
        // Secrets are not trimmed of inner content, only checked for presence.
        match self.raw(name)? {
            Some(v) => Ok(Secret(v)),
            None => err(format!(
                "missing required secret {name} (config key {name} or environment variable {})",
                Self::env_of(name)
            )),
        }
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name)? {
            None => Ok(default),
            Some(v) => match parse_bool(&v) {
                Some(b) => Ok(b),
                None => err(format!("{name} must be true or false, not {:?}", v.trim())),
            },
        }
    }

    fn uint(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        match self.raw(name)? {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => err(format!(
                    "{name} must be a whole number from {min} to {max}, not {:?}",
                    v.trim()
                )),
            },
        }
    }

    fn fraction(&self, name: &str, default: f64) -> Result<f64, ConfigError> {
        match self.raw(name)? {
            None => Ok(default),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
                _ => err(format!(
                    "{name} must be a number from 0 to 1, not {:?}",
                    v.trim()
                )),
            },
        }
    }

    fn choice(&self, name: &str, default: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let v = self
            .raw(name)?
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| default.to_string());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            err(format!(
                "{name} must be one of {}, not {v:?}",
                allowed.join(", ")
            ))
        }
    }
}

fn http_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    let lowercase_scheme = v.starts_with("http://") || v.starts_with("https://");
    if lowercase_scheme && url_authority(v).is_some() && !v.contains(['?', '#', ' ']) {
        Ok(v.to_string())
    } else {
        err(format!(
            "{name} must be an http:// or https:// URL with a host, no credentials and no query, got {:?}",
            redact_userinfo(value)
        ))
    }
}

/// A URL as it may be shown in an error: credentials before an `@` in the authority are
/// replaced by `***` (`https://***@host/…`), so a password put into a URL is never printed.
pub fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

fn parse_paths(key: &str, default: &str, value: &str) -> Result<Vec<Vec<String>>, ConfigError> {
    let paths: Vec<Vec<String>> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split('.')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    if paths.is_empty() || paths.iter().any(|p| p.iter().any(String::is_empty)) {
        return err(format!(
            "{key} must be a comma-separated list of dotted paths such as {default}, got {value:?}"
        ));
    }
    Ok(paths)
}

fn parse_template(value: &str) -> Result<String, ConfigError> {
    let without = value.replace("{name}", "");
    if !value.contains("{name}") || without.contains(['{', '}']) {
        return err(format!(
            "username_template must contain {{name}} and no other braces, e.g. {{name}}@example.edu; got {value:?}"
        ));
    }
    Ok(value.to_string())
}

/// Grouper group names are `stem:stem:extension`; the path is put in a URL segment.
pub fn parse_group_path(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.is_empty() || v.contains('/') || v.starts_with(':') || v.ends_with(':') || v.contains("::")
    {
        return err(format!(
            "{key} must be a Grouper group name such as edu:berkeley:app:datahub:datahub-users, got {value:?}"
        ));
    }
    Ok(v.to_string())
}

/// The keys an entry of `targets` may have.
const TARGET_KEYS: &[&str] = &[
    "grouper_group",
    "hub_group",
    "hub_group_pattern",
    "direction",
    "mode",
    "max_removals",
    "max_removal_fraction",
    "removal_fraction_floor",
    "max_removals_per_day",
    "max_removal_fraction_per_day",
    "protected_members",
    "include_admins",
    "active_within_days",
    "only_active_servers",
    "exclude_users_pattern",
    "create_missing_groups",
    "grouper_folder",
];

/// A JSON value as the flat settings would hold it: lists comma-joined, `null` absent.
fn flat_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(flat_value)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// The `targets` list: each entry a target group, selecting every hub user or one hub group's
/// members, with the flat settings as defaults. Errors name the entry and the key.
fn parse_targets(text: &str, base: &Target) -> Result<Vec<Target>, ConfigError> {
    const SHAPE: &str = "targets must be a JSON list of objects, e.g. [{\"grouper_group\": \"edu:x:course-101\", \"hub_group\": \"course-101\"}]";
    let list: Value =
        serde_json::from_str(text).map_err(|e| SyncError::config(format!("{SHAPE} ({e})")))?;
    let items = list.as_array().ok_or_else(|| SyncError::config(SHAPE))?;
    let mut targets = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| SyncError::config(format!("targets[{i}] must be an object; {SHAPE}")))?;
        let name = obj
            .get("grouper_group")
            .and_then(Value::as_str)
            .unwrap_or("no grouper_group");
        let at = |e: SyncError| SyncError::config(format!("targets[{i}] ({name}): {}", e.message));
        if let Some(k) = obj.keys().find(|k| !TARGET_KEYS.contains(&k.as_str())) {
            return Err(at(SyncError::config(format!(
                "unknown key {k:?}; an entry may have {}",
                TARGET_KEYS.join(", ")
            ))));
        }
        let r = Reader {
            lookup: |k: &str| Ok(obj.get(k).and_then(flat_value)),
        };
        targets.push(target_entry(&r, base).map_err(at)?);
    }
    Ok(targets)
}

fn target_entry<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: &Target,
) -> Result<Target, ConfigError> {
    let direction = match r
        .choice("direction", "to_grouper", &["to_grouper", "to_hub"])?
        .as_str()
    {
        "to_hub" => Direction::ToHub,
        _ => Direction::ToGrouper,
    };
    let protected = match r.raw("protected_members")? {
        None => base.protected.clone(),
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    };
    let hub_group = r.raw("hub_group")?.map(|g| g.trim().to_string());
    let hub_group_pattern = r.raw("hub_group_pattern")?;
    let group_path = parse_group_path("grouper_group", &r.required("grouper_group")?)?;
    if direction == Direction::ToHub {
        if hub_group_pattern.is_some() {
            return err(
                "direction to_hub keeps one hub group: give hub_group, not hub_group_pattern",
            );
        }
        match &hub_group {
            None => return err("direction to_hub needs hub_group: the hub group it keeps"),
            Some(g) => parse_hub_group_name(g)?,
        }
    }
    if let Some(pattern) = &hub_group_pattern {
        if hub_group.is_some() {
            return err("give hub_group or hub_group_pattern, not both");
        }
        let captures = group_pattern(pattern)?.captures_len();
        for n in template_fields(&group_path) {
            if n >= captures {
                return err(format!(
                    "grouper_group uses {{{n}}}, but hub_group_pattern {pattern:?} has only {} capture group(s)",
                    captures - 1
                ));
            }
        }
    } else if !template_fields(&group_path).is_empty() {
        return err("grouper_group has {n} fields but no hub_group_pattern to fill them");
    }
    // In to_hub the admins are hub users like any other: a Grouper roster holds them too.
    let admins_default = direction == Direction::ToHub || base.include_admins;
    Ok(Target {
        group_path,
        direction,
        hub_group,
        hub_group_pattern,
        include_admins: r.bool("include_admins", admins_default)?,
        filters: user_filters(r, &base.filters)?,
        create_missing: r.bool("create_missing_groups", base.create_missing)?,
        grouper_folder: folder_setting(r, base.grouper_folder.as_ref())?,
        mode: match r
            .choice("mode", base.mode.as_str(), &["mirror", "additive"])?
            .as_str()
        {
            "additive" => Mode::Additive,
            _ => Mode::Mirror,
        },
        limits: RemovalLimits {
            max_removals: r.uint("max_removals", base.limits.max_removals, 0, usize::MAX)?,
            max_fraction: r.fraction("max_removal_fraction", base.limits.max_fraction)?,
            fraction_floor: r.uint(
                "removal_fraction_floor",
                base.limits.fraction_floor,
                0,
                usize::MAX,
            )?,
            max_per_day: r.uint(
                "max_removals_per_day",
                base.limits.max_per_day,
                0,
                usize::MAX,
            )?,
            max_fraction_per_day: r.fraction(
                "max_removal_fraction_per_day",
                base.limits.max_fraction_per_day,
            )?,
        },
        protected,
        ..base.clone()
    })
}

/// The filters of a target, with `base`'s where a key is absent.
fn user_filters<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: &UserFilters,
) -> Result<UserFilters, ConfigError> {
    Ok(UserFilters {
        active_within_days: match r.raw("active_within_days")? {
            None => base.active_within_days,
            Some(_) => Some(r.uint("active_within_days", 0, 1, 36_600)? as u32),
        },
        only_active_servers: r.bool("only_active_servers", base.only_active_servers)?,
        exclude_users: match r.raw("exclude_users_pattern")? {
            None => base.exclude_users.clone(),
            Some(p) if p.trim().is_empty() => None,
            Some(p) => Some(NamePattern::new("exclude_users_pattern", &p)?),
        },
    })
}

fn folder_setting<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: Option<&String>,
) -> Result<Option<String>, ConfigError> {
    match r.raw("grouper_folder")? {
        None => Ok(base.cloned()),
        Some(f) => parse_group_path("grouper_folder", &f).map(Some),
    }
}

/// A hub group name as the groups API takes it in a path.
fn parse_hub_group_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return err(format!("hub_group {name:?} is not a JupyterHub group name"));
    }
    Ok(())
}

/// Is `group` inside `folder` (at any depth)?
pub fn in_folder(group: &str, folder: &str) -> bool {
    group
        .strip_prefix(folder)
        .is_some_and(|rest| rest.starts_with(':') && rest.len() > 1)
}

/// The regex of setting `key`, matching whole names only.
fn anchored(key: &str, pattern: &str) -> Result<regex_lite::Regex, ConfigError> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| SyncError::config(format!("{key} {pattern:?} is not a valid regex: {e}")))
}

/// A `hub_group_pattern`, matched against whole hub group names.
pub fn group_pattern(pattern: &str) -> Result<regex_lite::Regex, ConfigError> {
    anchored("hub_group_pattern", pattern)
}

/// The `{n}` fields of a group template.
pub fn template_fields(template: &str) -> Vec<usize> {
    let mut fields = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                if let Ok(n) = after[..close].parse() {
                    fields.push(n);
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    fields
}

/// Characters a hub group's name or capture may not bring into a Grouper group name: `:` would
/// make a sub-folder, braces a field, control characters an unreadable name.
fn forbidden_in_capture(c: char) -> bool {
    c == ':' || c == '{' || c == '}' || c.is_control()
}

/// A group template with a hub group's name (`{0}`) and captures (`{1}`…) filled in, in one
/// scan: a filled-in value is never read as a field again. A value holding `:`, a brace or a
/// control character is refused (`Err` says which field and which character).
pub fn fill_template(template: &str, captures: &regex_lite::Captures) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let field = after
            .find('}')
            .and_then(|close| Some((after[..close].parse::<usize>().ok()?, close)));
        match field {
            Some((n, close)) => {
                let value = captures.get(n).map_or("", |m| m.as_str());
                if let Some(c) = value.chars().find(|&c| forbidden_in_capture(c)) {
                    let what = if n == 0 {
                        "its name".to_string()
                    } else {
                        format!("capture {{{n}}}")
                    };
                    return Err(format!(
                        "{what} holds {c:?}; a hub group name or capture may hold any character but ':' (a sub-folder), braces and control characters"
                    ));
                }
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The settings in which two targets of the same group differ, by key.
fn differing_keys(a: &Target, b: &Target) -> Vec<&'static str> {
    let checks: [(&str, bool); 17] = [
        ("direction", a.direction == b.direction),
        ("hub_group", a.hub_group == b.hub_group),
        (
            "hub_group_pattern",
            a.hub_group_pattern == b.hub_group_pattern,
        ),
        ("include_admins", a.include_admins == b.include_admins),
        ("mode", a.mode == b.mode),
        (
            "max_removals",
            a.limits.max_removals == b.limits.max_removals,
        ),
        (
            "max_removal_fraction",
            a.limits.max_fraction == b.limits.max_fraction,
        ),
        (
            "removal_fraction_floor",
            a.limits.fraction_floor == b.limits.fraction_floor,
        ),
        (
            "max_removals_per_day",
            a.limits.max_per_day == b.limits.max_per_day,
        ),
        (
            "max_removal_fraction_per_day",
            a.limits.max_fraction_per_day == b.limits.max_fraction_per_day,
        ),
        ("protected_members", a.protected == b.protected),
        (
            "active_within_days",
            a.filters.active_within_days == b.filters.active_within_days,
        ),
        (
            "only_active_servers",
            a.filters.only_active_servers == b.filters.only_active_servers,
        ),
        (
            "exclude_users_pattern",
            a.filters.exclude_users == b.filters.exclude_users,
        ),
        (
            "create_missing_groups",
            a.create_missing == b.create_missing,
        ),
        ("grouper_folder", a.grouper_folder == b.grouper_folder),
        (
            "subject mapping",
            a.subject_from == b.subject_from && a.lookup == b.lookup && a.source_id == b.source_id,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(key, _)| key)
        .collect()
}

/// Builds [`Settings`] from a key lookup. The lookup returns `Ok(None)` for an absent key.
pub fn parse(
    lookup: impl Fn(&str) -> Result<Option<String>, String>,
) -> Result<Settings, ConfigError> {
    let r = Reader { lookup };
    let hub_api_url = http_url("jupyterhub_api_url", &r.required("jupyterhub_api_url")?)?;
    let hub_token = r.required_secret("jupyterhub_api_token")?;
    let grouper_base_url = http_url("grouper_base_url", &r.required("grouper_base_url")?)?;
    let grouper_user = r.required("grouper_user")?;
    let grouper_password = r.required_secret("grouper_password")?;
    let flat_group = r.raw("grouper_id_path")?;
    let more_targets = r.raw("targets")?;
    if flat_group.is_none() && more_targets.is_none() {
        r.required("grouper_id_path")?;
    }

    let mode = match r
        .choice("mode", "mirror", &["mirror", "additive"])?
        .as_str()
    {
        "additive" => Mode::Additive,
        _ => Mode::Mirror,
    };
    let auth_state_paths = || -> Result<Vec<Vec<String>>, ConfigError> {
        parse_paths(
            "auth_state_paths",
            DEFAULT_AUTH_STATE_PATHS,
            &r.raw("auth_state_paths")?
                .unwrap_or_else(|| DEFAULT_AUTH_STATE_PATHS.into()),
        )
    };
    let subject_from = match r
        .choice(
            "subject_from",
            "auth_state",
            &["auth_state", "user_info", "username"],
        )?
        .as_str()
    {
        "username" => SubjectFrom::Username {
            template: parse_template(
                &r.raw("username_template")?
                    .unwrap_or_else(|| "{name}".into()),
            )?,
        },
        "user_info" => SubjectFrom::UserInfo {
            paths: parse_paths(
                "user_info_paths",
                DEFAULT_USER_INFO_PATHS,
                &r.raw("user_info_paths")?
                    .unwrap_or_else(|| DEFAULT_USER_INFO_PATHS.into()),
            )?,
            fallback: auth_state_paths()?,
        },
        _ => SubjectFrom::AuthState(auth_state_paths()?),
    };
    if !matches!(subject_from, SubjectFrom::Username { .. })
        && r.raw("username_template")?.is_some()
    {
        return err("username_template is set but subject_from is not username; set subject_from=username to use it");
    }
    if !matches!(subject_from, SubjectFrom::UserInfo { .. }) && r.raw("user_info_paths")?.is_some()
    {
        return err("user_info_paths is set but subject_from is not user_info; set subject_from=user_info to use it");
    }
    let attribute = r.raw("identifier_attribute")?.map(|a| a.trim().to_string());
    let lookup = match r.choice("subject_lookup", "subject_id", &["subject_id", "subject_identifier"])?.as_str() {
        "subject_identifier" => SubjectLookup::SubjectIdentifier {
            attribute: attribute.ok_or_else(|| {
                SyncError::config(
                    "subject_lookup=subject_identifier needs identifier_attribute: the Grouper subject attribute \
                     (e.g. uid) whose value equals the identifier, so current members can be matched"
                )
            })?,
        },
        _ => {
            if attribute.is_some() {
                return err("identifier_attribute is only used with subject_lookup=subject_identifier");
            }
            SubjectLookup::SubjectId
        }
    };
    let protected = r
        .raw("protected_members")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let content_type = match r
        .choice(
            "grouper_content_type",
            "text/x-json",
            &["text/x-json", "application/json"],
        )?
        .as_str()
    {
        "application/json" => "application/json; charset=UTF-8",
        _ => "text/x-json; charset=UTF-8",
    };
    let log_level = match r
        .choice("log_level", "info", &["error", "warn", "info", "debug"])?
        .as_str()
    {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "debug" => LogLevel::Debug,
        _ => LogLevel::Info,
    };

    let base = Target {
        group_path: flat_group
            .as_deref()
            .map(|g| parse_group_path("grouper_id_path", g))
            .transpose()?
            .unwrap_or_default(),
        direction: Direction::ToGrouper,
        hub_group: None,
        hub_group_pattern: None,
        include_admins: r.bool("include_admins", false)?,
        filters: user_filters(&r, &UserFilters::default())?,
        create_missing: r.bool("create_missing_groups", false)?,
        grouper_folder: folder_setting(&r, None)?,
        subject_from,
        lookup,
        source_id: r.raw("subject_source_id")?.map(|s| s.trim().to_string()),
        mode,
        limits: RemovalLimits {
            max_removals: r.uint("max_removals", 50, 0, usize::MAX)?,
            max_fraction: r.fraction("max_removal_fraction", 0.10)?,
            fraction_floor: r.uint("removal_fraction_floor", 5, 0, usize::MAX)?,
            max_per_day: r.uint("max_removals_per_day", 100, 0, usize::MAX)?,
            max_fraction_per_day: r.fraction("max_removal_fraction_per_day", 0.20)?,
        },
        protected,
    };
    let mut targets = Vec::new();
    if flat_group.is_some() {
        targets.push(base.clone());
    }
    if let Some(text) = &more_targets {
        for (i, entry) in parse_targets(text, &base)?.into_iter().enumerate() {
            if flat_group.is_none() || entry.group_path != base.group_path {
                targets.push(entry);
                continue;
            }
            // The service's environment (GROUPER_ID_PATH) and a config file naming the same
            // group: one target when they agree.
            let differ = differing_keys(&base, &entry);
            if !differ.is_empty() {
                return err(format!(
                    "the Grouper group {} is named by grouper_id_path (GROUPER_ID_PATH) and by targets[{i}], \
                     which differ in {}; make them agree, or name the group once",
                    base.group_path,
                    differ.join(", ")
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = targets.iter().find(|t| !seen.insert(t.group_path.as_str())) {
        return err(format!(
            "the Grouper group {} is the target of two entries; each group may have one",
            dup.group_path
        ));
    }
    let mut kept = BTreeSet::new();
    if let Some(dup) = targets
        .iter()
        .filter(|t| t.direction == Direction::ToHub)
        .find(|t| !kept.insert(t.hub_group.as_deref()))
    {
        return err(format!(
            "the hub group {} is kept by two to_hub entries; each hub group may have one",
            dup.hub_group.as_deref().unwrap_or_default()
        ));
    }
    for t in &targets {
        if t.create_missing && t.direction == Direction::ToGrouper {
            match &t.grouper_folder {
                None => return err(format!(
                    "{}: create_missing_groups needs grouper_folder, the folder in which groups may be created",
                    t.group_path
                )),
                Some(folder) if !t.group_path.contains('{') && !in_folder(&t.group_path, folder) => {
                    return err(format!(
                        "{}: create_missing_groups creates groups only inside grouper_folder {folder}",
                        t.group_path
                    ))
                }
                Some(_) => {}
            }
        }
    }

    Ok(Settings {
        hub_api_url,
        hub_token,
        grouper_base_url,
        grouper_user,
        grouper_password,
        grouper_content_type: content_type.to_string(),
        grouper_page_size: r.uint("grouper_page_size", 1000, 1, 100_000)?,
        grouper_batch_size: r.uint("grouper_batch_size", 100, 1, 10_000)?,
        api_page_size: r.uint("api_page_size", 200, 1, 10_000)?,
        concurrency: r.uint("concurrency", 1, 1, 64)?,
        dry_run: r.bool("dry_run", false)?,
        allow_empty_hub: r.bool("allow_empty_hub", false)?,
        log_level,
        http: HttpSettings {
            connect_timeout: Duration::from_secs(
                r.uint("connect_timeout_seconds", 10, 1, 600)? as u64
            ),
            request_timeout: Duration::from_secs(
                r.uint("request_timeout_seconds", 60, 1, 3600)? as u64
            ),
            retries: r.uint("retries", 3, 0, 10)? as u32,
            backoff: Duration::from_millis(r.uint("retry_backoff_ms", 500, 0, 60_000)? as u64),
        },
        targets,
        max_changes_per_pass: match r.uint("max_changes_per_pass", 0, 0, usize::MAX)? {
            0 => None,
            n => Some(n),
        },
        refresh: Refresh {
            full_refresh_seconds: r.uint("full_refresh_hours", 24, 1, 24 * 366)? as i64 * 3600,
            activity_margin_seconds: r.uint("activity_margin_seconds", 900, 0, 7 * 86_400)? as i64,
        },
    })
}

/// Valid settings for unit tests (hub `http://hub/hub/api`, group `a:b`, no backoff), with
/// `extra` keys added or replaced; an empty value removes the key.
#[cfg(test)]
pub(crate) fn for_tests(extra: &[(&str, &str)]) -> Settings {
    let mut m: std::collections::HashMap<String, String> = [
        ("jupyterhub_api_url", "http://hub/hub/api"),
        ("jupyterhub_api_token", "t"),
        (
            "grouper_base_url",
            "http://g/gws/servicesRest/json/v2_2_100",
        ),
        ("grouper_user", "u"),
        ("grouper_password", "p"),
        ("grouper_id_path", "a:b"),
        ("retry_backoff_ms", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m.retain(|_, v| !v.is_empty());
    parse(|k| Ok(m.get(k).cloned())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("jupyterhub_api_url", "http://127.0.0.1:8081/hub/api/"),
            ("jupyterhub_api_token", "tok-secret"),
            (
                "grouper_base_url",
                "https://calgroups.example.edu/gws/servicesRest/json/v2_2_100",
            ),
            ("grouper_user", "svc"),
            ("grouper_password", "pw-secret"),
            ("grouper_id_path", "edu:berkeley:app:datahub:datahub-users"),
        ])
    }

    fn parse_map(m: &HashMap<&'static str, &'static str>) -> Result<Settings, ConfigError> {
        parse(|k| Ok(m.get(k).map(|v| v.to_string())))
    }

    #[test]
    fn the_environments_group_and_an_agreeing_targets_entry_are_one_target() {
        // as the hub's service environment gives GROUPER_ID_PATH (here with mode additive) and
        // the config file a [[targets]] table for the same group
        let mut m = base();
        m.insert("mode", "additive");
        let groups = |m: &HashMap<&'static str, &'static str>| -> Vec<String> {
            parse_map(m)
                .unwrap()
                .targets
                .iter()
                .map(|t| t.group_path.clone())
                .collect()
        };
        m.insert(
            "targets",
            r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users"},
                {"grouper_group": "edu:x:staff", "hub_group": "staff"}]"#,
        );
        assert_eq!(
            groups(&m),
            ["edu:berkeley:app:datahub:datahub-users", "edu:x:staff"]
        );
        m.insert(
            "targets",
            r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users", "mode": "additive", "max_removals": 50}]"#,
        );
        assert_eq!(groups(&m).len(), 1, "the same values agree");
        // disagreeing: the error names the keys that differ
        m.insert(
            "targets",
            r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users", "mode": "mirror", "max_removals": 5, "hub_group": "staff"}]"#,
        );
        let e = parse_map(&m).unwrap_err().message;
        assert!(
            e.contains("named by grouper_id_path (GROUPER_ID_PATH) and by targets[0]")
                && e.contains("differ in hub_group, mode, max_removals;"),
            "{e}"
        );
        // two entries of the targets list naming one group stay an error
        m.insert(
            "targets",
            r#"[{"grouper_group": "edu:x:a"}, {"grouper_group": "edu:x:a"}]"#,
        );
        assert!(parse_map(&m)
            .unwrap_err()
            .message
            .contains("target of two entries"));
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_printing_them() {
        for (key, url) in [
            (
                "jupyterhub_api_url",
                "http://svc:HUB-SECRET@127.0.0.1:8081/hub/api",
            ),
            (
                "grouper_base_url",
                "https://app-sync:GROUPER-SECRET@calgroups.example.edu/gws",
            ),
            (
                "grouper_base_url",
                "https://GROUPER-SECRET@calgroups.example.edu",
            ),
        ] {
            let mut m = base();
            m.insert(key, url);
            let e = parse_map(&m).unwrap_err();
            assert!(e.message.starts_with(key), "{}", e.message);
            assert!(!e.message.contains("SECRET"), "{}", e.message);
            assert!(e.message.contains("***@"), "{}", e.message);
        }
        assert_eq!(
            redact_userinfo("https://h/a@b"),
            "https://h/a@b",
            "an @ in the path is no credential"
        );
        assert_eq!(redact_userinfo("u:p@h"), "***@h");
    }

    #[test]
    fn defaults_match_the_original_tool() {
        let s = parse_map(&base()).unwrap();
        assert_eq!(s.hub_api_url, "http://127.0.0.1:8081/hub/api");
        let t = &s.targets[0];
        assert_eq!(
            t.subject_from,
            SubjectFrom::AuthState(vec![
                vec!["canvas_user".into(), "login_id".into()],
                vec!["oauth_user".into(), "login_id".into()]
            ])
        );
        assert!(!t.include_admins);
        assert_eq!(t.mode, Mode::Mirror);
        assert_eq!(t.lookup, SubjectLookup::SubjectId);
        assert!(!s.dry_run);
        assert_eq!(s.grouper_content_type, "text/x-json; charset=UTF-8");
        assert!(!s.auth_state_mappings().is_empty());
    }

    #[test]
    fn missing_required_key_names_key_and_env() {
        let mut m = base();
        m.remove("grouper_password");
        let e = parse_map(&m).unwrap_err().message;
        assert!(
            e.contains("grouper_password") && e.contains("GROUPER_PASSWORD"),
            "{e}"
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("dry_run", "maybe"),
            ("mode", "replace"),
            ("max_removal_fraction", "1.5"),
            ("concurrency", "0"),
            ("api_page_size", "ten"),
            ("jupyterhub_api_url", "ftp://x"),
            ("grouper_id_path", "a/b"),
            ("subject_lookup", "guess"),
            ("log_level", "trace"),
            ("full_refresh_hours", "0"),
            ("activity_margin_seconds", "-5"),
            ("subject_from", "email"),
        ] {
            let mut m = base();
            m.insert(k, v);
            let e = parse_map(&m).unwrap_err().message;
            assert!(e.contains(k), "{k}: {e}");
        }
    }

    #[test]
    fn identifier_lookup_needs_attribute() {
        let mut m = base();
        m.insert("subject_lookup", "subject_identifier");
        assert!(parse_map(&m)
            .unwrap_err()
            .message
            .contains("identifier_attribute"));
        m.insert("identifier_attribute", "uid");
        let s = parse_map(&m).unwrap();
        assert_eq!(
            s.targets[0].lookup,
            SubjectLookup::SubjectIdentifier {
                attribute: "uid".into()
            }
        );
    }

    #[test]
    fn username_template() {
        let mut m = base();
        m.insert("subject_from", "username");
        m.insert("username_template", "{name}@example.edu");
        let s = parse_map(&m).unwrap();
        assert_eq!(
            s.targets[0].subject_from,
            SubjectFrom::Username {
                template: "{name}@example.edu".into()
            }
        );
        assert!(s.auth_state_mappings().is_empty());
        m.insert("username_template", "{user}@x");
        assert!(parse_map(&m)
            .unwrap_err()
            .message
            .contains("username_template"));
    }

    #[test]
    fn user_info_with_auth_state_fallback_and_refresh_settings() {
        let s = parse_map(&base()).unwrap();
        assert_eq!(
            s.refresh,
            Refresh {
                full_refresh_seconds: 24 * 3600,
                activity_margin_seconds: 900
            }
        );
        let mut m = base();
        m.insert("subject_from", "user_info");
        m.insert("user_info_paths", "campus.uid, login_id");
        m.insert("full_refresh_hours", "6");
        m.insert("activity_margin_seconds", "0");
        let s = parse_map(&m).unwrap();
        let SubjectFrom::UserInfo { paths, fallback } = &s.targets[0].subject_from else {
            panic!("{:?}", s.targets[0].subject_from)
        };
        assert_eq!(paths_text(paths), "campus.uid,login_id");
        assert_eq!(paths_text(fallback), DEFAULT_AUTH_STATE_PATHS);
        assert!(s.needs_user_info() && !s.auth_state_mappings().is_empty());
        assert_eq!(s.auth_state_mappings(), [fallback]);
        assert_eq!(s.refresh.full_refresh_seconds, 6 * 3600);
        assert_eq!(s.refresh.activity_margin_seconds, 0);
        let mut m = base();
        m.insert("user_info_paths", "login_id");
        assert!(parse_map(&m)
            .unwrap_err()
            .message
            .contains("subject_from=user_info"));
        m.insert("subject_from", "user_info");
        m.insert("user_info_paths", "a..b");
        assert!(parse_map(&m)
            .unwrap_err()
            .message
            .contains("user_info_paths"));
    }

    #[test]
    fn unknown_keys_and_env_are_named() {
        let e = check_known_keys(["grouper_user", "dryrun"])
            .unwrap_err()
            .message;
        assert!(e.contains("dryrun") && !e.contains("grouper_user"));
        assert!(check_known_keys(KEYS.iter().map(|k| k.name)).is_ok());
        let e = check_known_env(["PATH", "GROUPER_SYNC_DRYRUN", "GROUPER_SYNC_DRY_RUN"])
            .unwrap_err()
            .message;
        assert!(e.contains("GROUPER_SYNC_DRYRUN") && !e.contains("GROUPER_SYNC_DRY_RUN,"));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = parse_map(&base()).unwrap();
        let dump = format!("{s:?}");
        assert!(
            !dump.contains("tok-secret") && !dump.contains("pw-secret"),
            "{dump}"
        );
    }

    #[test]
    fn one_reading_of_booleans_and_authorities() {
        for t in ["true", "TRUE", " yes", "On", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "False", "no", "OFF", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
        for (url, authority) in [
            (
                "https://CalGroups.Berkeley.edu/gws",
                Some("calgroups.berkeley.edu:443"),
            ),
            ("http://127.0.0.1:8081/hub/api", Some("127.0.0.1:8081")),
            ("http://[::1]:9/x", Some("[::1]:9")),
            ("http://[::1]/x", Some("[::1]:80")),
            ("http://h:0/", None),
            ("http://h:99999/", None),
            ("http://user:pw@h/", None),
            ("ftp://h/", None),
            ("http:///x", None),
        ] {
            assert_eq!(url_authority(url).as_deref(), authority, "{url}");
        }
        assert_eq!(env_name("dry_run"), Some("GROUPER_SYNC_DRY_RUN"));
        assert_eq!(env_name("nope"), None);
    }

    #[test]
    fn targets_add_groups_with_the_flat_settings_as_defaults() {
        let mut m = base();
        m.insert("max_removals", "7");
        m.insert(
            "targets",
            r#"[{"grouper_group": "edu:x:course-101", "hub_group": "course-101"},
                {"grouper_group": "edu:x:gpu", "hub_group": "gpu", "mode": "additive",
                 "max_removals": 2, "protected_members": ["100", "200"], "include_admins": true}]"#,
        );
        let s = parse_map(&m).unwrap();
        let groups: Vec<(&str, Option<&str>)> = s
            .targets
            .iter()
            .map(|t| (t.group_path.as_str(), t.hub_group.as_deref()))
            .collect();
        assert_eq!(
            groups,
            [
                ("edu:berkeley:app:datahub:datahub-users", None),
                ("edu:x:course-101", Some("course-101")),
                ("edu:x:gpu", Some("gpu"))
            ]
        );
        assert_eq!(
            s.targets[1].limits.max_removals, 7,
            "the flat value is the default"
        );
        assert_eq!(s.targets[1].mode, Mode::Mirror);
        let gpu = &s.targets[2];
        assert_eq!(
            (gpu.mode, gpu.limits.max_removals, gpu.include_admins),
            (Mode::Additive, 2, true)
        );
        assert_eq!(gpu.protected.len(), 2);
        assert!(s.needs_groups());
        // without the flat group, the list alone
        m.remove("grouper_id_path");
        assert_eq!(parse_map(&m).unwrap().targets.len(), 2);
        assert!(!parse_map(&base()).unwrap().needs_groups());
    }

    #[test]
    fn to_hub_targets_and_filters() {
        let mut m = base();
        m.insert("active_within_days", "30");
        m.insert(
            "targets",
            r#"[{"grouper_group": "edu:x:gpu-quota", "direction": "to_hub", "hub_group": "gpu",
                 "create_missing_groups": true},
                {"grouper_group": "edu:x:active", "only_active_servers": true,
                 "exclude_users_pattern": "test-.*", "active_within_days": 7,
                 "create_missing_groups": true, "grouper_folder": "edu:x"}]"#,
        );
        let s = parse_map(&m).unwrap();
        let (all, gpu, active) = (&s.targets[0], &s.targets[1], &s.targets[2]);
        assert_eq!(all.filters.active_within_days, Some(30));
        assert_eq!(gpu.direction, Direction::ToHub);
        assert_eq!(gpu.hub_group.as_deref(), Some("gpu"));
        assert!(
            gpu.include_admins,
            "to_hub: admins are hub users like any other"
        );
        assert!(gpu.create_missing, "a missing hub group needs no folder");
        assert!(!all.include_admins);
        assert_eq!(
            gpu.filters.active_within_days,
            Some(30),
            "flat filters are defaults"
        );
        assert_eq!(active.filters.active_within_days, Some(7));
        assert!(active.filters.only_active_servers);
        assert!(active
            .filters
            .exclude_users
            .as_ref()
            .unwrap()
            .matches("test-1"));
        assert!(!active
            .filters
            .exclude_users
            .as_ref()
            .unwrap()
            .matches("a-test-1"));
        assert!(s.needs_servers() && s.needs_groups());
        assert!(in_folder("edu:x:active", "edu:x") && !in_folder("edu:xy:a", "edu:x"));
    }

    #[test]
    fn bad_targets_name_the_entry_and_the_key() {
        for (targets, says) in [
            ("not json", "JSON list"),
            (r#"{"grouper_group": "a:b"}"#, "JSON list"),
            (r#"["a:b"]"#, "targets[0] must be an object"),
            (
                r#"[{"grouper_group": "a:b", "hub_grup": "x"}]"#,
                "targets[0] (a:b): unknown key \"hub_grup\"",
            ),
            (
                r#"[{"hub_group": "x"}]"#,
                "targets[0] (no grouper_group): missing required setting grouper_group",
            ),
            (
                r#"[{"grouper_group": "a:b"}, {"grouper_group": "c:d", "mode": "replace"}]"#,
                "targets[1] (c:d): mode must be one of",
            ),
            (
                r#"[{"grouper_group": "a:b", "direction": "to_hub"}]"#,
                "targets[0] (a:b): direction to_hub needs hub_group",
            ),
            (
                r#"[{"grouper_group": "a:{1}", "direction": "to_hub", "hub_group_pattern": "(x)"}]"#,
                "give hub_group, not hub_group_pattern",
            ),
            (
                r#"[{"grouper_group": "a:b", "direction": "to_hub", "hub_group": "g"},
                   {"grouper_group": "c:d", "direction": "to_hub", "hub_group": "g"}]"#,
                "hub group g is kept by two to_hub entries",
            ),
            (
                r#"[{"grouper_group": "a:b", "direction": "both"}]"#,
                "direction must be one of",
            ),
            (
                r#"[{"grouper_group": "a:b", "exclude_users_pattern": "(x"}]"#,
                "targets[0] (a:b): exclude_users_pattern \"(x\" is not a valid regex",
            ),
            (
                r#"[{"grouper_group": "a:b", "active_within_days": 0}]"#,
                "targets[0] (a:b): active_within_days",
            ),
            (
                r#"[{"grouper_group": "a:b", "create_missing_groups": true}]"#,
                "a:b: create_missing_groups needs grouper_folder",
            ),
            (
                r#"[{"grouper_group": "a:b", "create_missing_groups": true, "grouper_folder": "c"}]"#,
                "creates groups only inside grouper_folder c",
            ),
            (
                r#"[{"grouper_group": "a::b"}]"#,
                "targets[0] (a::b): grouper_group must be a Grouper group name",
            ),
            (
                r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users", "hub_group": "x"}]"#,
                "by targets[0], which differ in hub_group;",
            ),
            (
                r#"[{"grouper_group": "a:{1}", "hub_group_pattern": "course-(.+"}]"#,
                "not a valid regex",
            ),
            (
                r#"[{"grouper_group": "a:{2}", "hub_group_pattern": "course-(.+)"}]"#,
                "uses {2}, but hub_group_pattern \"course-(.+)\" has only 1 capture group",
            ),
            (r#"[{"grouper_group": "a:{1}"}]"#, "no hub_group_pattern"),
            (
                r#"[{"grouper_group": "a:{1}", "hub_group": "x", "hub_group_pattern": "(x)"}]"#,
                "not both",
            ),
        ] {
            let mut m = base();
            m.insert("targets", targets);
            let e = parse_map(&m).unwrap_err().message;
            assert!(e.contains(says), "{targets}: {e}");
        }
        let mut m = base();
        m.remove("grouper_id_path");
        assert!(parse_map(&m)
            .unwrap_err()
            .message
            .contains("grouper_id_path"));
    }

    #[test]
    fn protected_members_list() {
        let mut m = base();
        m.insert("protected_members", " 100, 200 ,,300");
        let s = parse_map(&m).unwrap();
        assert_eq!(s.targets[0].protected.len(), 3);
    }
}
