//! The settings: command-line options (generated here from the key tables, parsed by `cli`),
//! config file and environment, merged with precedence flags > file > environment.
//!
//! Component settings (the keys of `jupyterhub_grouper_sync::settings::KEYS`) are handed to the
//! component through `wasi:config`; the rest configure the host. Secrets may come from the
//! environment or from files (`*_FILE`, for Kubernetes secrets), never from the command line.

use anyhow::{anyhow, bail, Context, Result};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use jupyterhub_grouper_sync::settings::schema::whole;
use jupyterhub_grouper_sync::settings::{self, Key, Kind, LogLevel, Scope, KEYS, SYNC_INTERVAL};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config_file::{read_secret_file, toml_error, toml_to_string};

pub mod page;
use crate::schedule::{WeeklyWindow, Windows};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

jupyterhub_grouper_sync::choice_enum!(LogFormat, LOG_FORMATS, [Text, Json]);

#[derive(Clone)]
pub struct Options {
    pub component: Option<PathBuf>,
    /// What the component gets through `wasi:config` (secrets included: never print this).
    pub component_config: BTreeMap<String, String>,
    /// Whether passes are dry runs (read with the same parser as the component's).
    pub dry_run: bool,
    pub sync_every: Duration,
    pub enabled: bool,
    pub windows: Windows,
    pub metrics_addr: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
    pub pass_deadline: Duration,
    pub memory_limit_bytes: usize,
    pub http_timeout_cap: Duration,
    /// `scheme://host:port` origins the component may reach: those of the hub and Grouper URLs.
    pub allowed_hosts: Vec<String>,
    /// Where the user state of incremental passes is kept.
    pub state_dir: PathBuf,
    /// Recorded approvals older than this expire.
    pub approval_max_age: Duration,
    /// How long a pass, `once` or `approve` waits for another holder of `state_dir`'s lock.
    pub lock_wait: Duration,
    /// CA certificates trusted in addition to the system's (PEM).
    pub ca_file: Option<PathBuf>,
    /// The change log rotates at this size and keeps rotated files this long.
    pub change_log_max_bytes: u64,
    pub change_log_keep: Duration,
    /// The status page: where, for which host names, and how people sign in.
    pub page: page::PageOptions,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.component_config.keys().collect();
        f.debug_struct("Options")
            .field("component_config_keys", &keys)
            .field("sync_every", &self.sync_every)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

/// Host settings: names usable in the config file and, where a flag exists, on the command line;
/// in the same schema as the component's keys, so a default or bound is written once.
#[rustfmt::skip]
pub const HOST_KEYS: &[Key] = &[
    host("sync_every", "", SYNC_INTERVAL, Some("3600"), "seconds between passes"),
    host("enabled", "", Kind::Bool, Some("true"), "false keeps the service running but idle"),
    host("allowed_dates", "", Kind::List, None, "only run on these dates, e.g. [\"2026-12-01\"] (unset: any day)"),
    host("weekly_windows", "", Kind::List, None, "only run inside these windows, e.g. [\"Mon-Fri 02:00-04:00\"] (unset: any time)"),
    host("timezone", "", Kind::Text, Some("UTC"), "time zone of dates and windows, e.g. America/Los_Angeles"),
    host("pass_deadline_seconds", "", whole(5, 86_400, "seconds"), Some("900"), "a pass running longer is stopped"),
    host("memory_limit_mb", "", whole(16, 4096, "MiB"), Some("256"), "the component's memory limit"),
    host("http_timeout_cap_seconds", "", whole(1, 3600, "seconds"), Some("120"), "upper bound on every HTTP timeout"),
    host("metrics_addr", "", Kind::Path, None, "serve /metrics, /healthz, /readyz here, e.g. 127.0.0.1:9090 (unset: off); never the status page"),
    host("status_addr", "", Kind::Path, None, "serve the status page here, e.g. 127.0.0.1:9101 (unset: the address of JUPYTERHUB_SERVICE_URL when the hub gives the service a url, else off)"),
    host("status_hosts", "", Kind::List, None, "host names the status page answers to besides loopback and the hub's public URL, e.g. [\"hub.example.org\"]"),
    host("status_approve_scope", "", Kind::Text, Some(page::DEFAULT_APPROVE_SCOPE), "the hub scope that lets a signed-in user approve plans and run passes (the access scope lets them read)"),
    host("log_format", "", Kind::Choice(LOG_FORMATS), Some("text"), "text or json"),
    host("state_dir", "GROUPER_SYNC_STATE_DIR", Kind::Path, Some(crate::store::state::DEFAULT_DIR), "keep the user state of incremental passes here"),
    host("approval_max_age_hours", "", whole(1, 24 * 31, "hours"), Some("24"), "an approval of a withheld plan not used within this many hours expires"),
    host("lock_wait_seconds", "", whole(0, 3600, "seconds"), Some("60"), "a pass, once or approve waits this long for another grouper-sync using the same state_dir"),
    host("change_log_max_mb", "", whole(1, 4096, "MiB"), Some("16"), "the change log (changes.jsonl under state_dir) rotates at this size"),
    host("change_log_keep_days", "", whole(1, 36_500, "days"), Some("400"), "rotated change logs older than this are deleted"),
    host("ca_file", "GROUPER_SYNC_CA_FILE", Kind::Path, None, "also trust the CA certificates in this PEM file, e.g. a campus or InCommon CA (unset: system CAs only)"),
    host("component", "", Kind::Path, None, "run this .wasm instead of the embedded component"),
    host("jupyterhub_api_token_file", "", Kind::Path, None, "read the hub token from this file"),
    host("grouper_password_file", "", Kind::Path, None, "read the Grouper password from this file"),
    host("google_service_account_key_file", "", Kind::Path, None, "read the Google service account's key file (JSON) from this file"),
];

const LOG_FORMATS: &[&str] = &["text", "json"];

const fn host(
    name: &'static str,
    env: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key::new(name, env, kind, default, Scope::Host, help)
}

/// The host key named `name` (every name asked for is in [`HOST_KEYS`]: unit-tested).
fn host_key(name: &str) -> &'static Key {
    HOST_KEYS
        .iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("{name} is not in HOST_KEYS"))
}

const SECRET_FILE_ENVS: &[(&str, &str)] = &[
    ("jupyterhub_api_token", "JUPYTERHUB_API_TOKEN_FILE"),
    ("grouper_password", "GROUPER_PASSWORD_FILE"),
    (
        "google_service_account_key",
        "GROUPER_SYNC_GOOGLE_SERVICE_ACCOUNT_KEY_FILE",
    ),
];

/// Component keys the host handles itself instead of forwarding: the component's own loop
/// interval is the host's schedule.
const HOST_HANDLED_KEYS: &[(&str, &str)] = &[("sync_every_seconds", "sync_every")];

fn is_component_key(k: &str) -> bool {
    KEYS.iter().any(|key| key.name == k) && !HOST_HANDLED_KEYS.iter().any(|(c, _)| *c == k)
}

/// The key a setting is stored under: a host-handled component key becomes the host's own.
fn host_name(k: &str) -> &str {
    HOST_HANDLED_KEYS
        .iter()
        .find(|(c, _)| *c == k)
        .map_or(k, |(_, h)| h)
}

fn is_host_key(k: &str) -> bool {
    HOST_KEYS.iter().any(|key| key.name == k)
}

fn url_origin(key: &str, url: &str) -> Result<String> {
    jupyterhub_grouper_sync::model::HttpUrl::parse(url)
        .map(|u| u.origin())
        .map_err(|why| {
            anyhow!(
                "{key} must be an http:// or https:// URL with a host and no credentials ({why}), got {:?}",
                settings::redact_userinfo(url)
            )
        })
}

/// With a Google service account configured, the Groups Settings API's origin and the key's
/// token endpoint's; nothing otherwise. (A key that cannot be read adds nothing: the component
/// reports it.)
fn google_origins(values: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let Some(key) = values
        .get("google_service_account_key")
        .filter(|k| !k.trim().is_empty())
    else {
        return Ok(vec![]);
    };
    let api = values
        .get("google_api_url")
        .map(String::as_str)
        .or(settings::schema::key("google_api_url").default)
        .unwrap_or_default();
    let mut origins = vec![url_origin("google_api_url", api.trim())?];
    let token_uri = serde_json::from_str::<serde_json::Value>(key)
        .ok()
        .and_then(|k| k["token_uri"].as_str().map(String::from))
        .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
    if let Ok(origin) = url_origin("token_uri", &token_uri) {
        origins.push(origin);
    }
    origins.dedup();
    Ok(origins)
}

/// The original tool's and our older flag spellings, as aliases of the keys they set.
const FLAG_ALIASES: &[(&str, &str)] = &[
    ("url", "jupyterhub_api_url"),
    ("GrouperSync.sync_every", "sync_every"),
    ("sync_every_seconds", "sync_every"),
    ("sync-every-seconds", "sync_every"),
];

fn setting_arg(name: &'static str, help: String, env: Option<&'static str>) -> Arg {
    let kebab: &'static str = Box::leak(name.replace('_', "-").into_boxed_str());
    let mut arg = Arg::new(name)
        .long(name)
        .value_name("VALUE")
        .global(true)
        .action(ArgAction::Set)
        .help(help);
    if kebab != name {
        arg = arg.visible_alias(kebab);
    }
    for (alias, key) in FLAG_ALIASES {
        if *key == name {
            arg = arg.visible_alias(*alias);
        }
    }
    if let Some(env) = env {
        // Shown in --help; the value itself is read through the same lookup as every other layer.
        arg = arg.env(env).hide_env_values(true);
    }
    arg
}

/// Every setting as a global option, generated from the key tables.
pub fn setting_args() -> Vec<Arg> {
    let mut args = vec![Arg::new("config")
        .long("config")
        .value_name("FILE")
        .global(true)
        .help("TOML config file (keys as below)")
        .env("GROUPER_SYNC_CONFIG")];
    for key in KEYS
        .iter()
        .filter(|k| !k.is_secret() && is_component_key(k.name))
    {
        let mut arg = setting_arg(key.name, key.help_line(), Some(key.env));
        if key.name == "dry_run" {
            // `--dry-run` alone means true, as before
            arg = arg.num_args(0..=1).default_missing_value("true");
        }
        args.push(arg);
    }
    for key in HOST_KEYS.iter().filter(|k| !is_secret_file_key(k.name)) {
        let env = KEYS
            .iter()
            .find(|k| {
                HOST_HANDLED_KEYS
                    .iter()
                    .any(|(c, h)| *c == k.name && *h == key.name)
            })
            .map(|k| k.env)
            .or((!key.env.is_empty()).then_some(key.env));
        args.push(setting_arg(key.name, key.help_line(), env));
    }
    args
}

/// `<secret>_file`: config-file only, like the secret itself.
fn is_secret_file_key(name: &str) -> bool {
    SECRET_FILE_ENVS
        .iter()
        .any(|(secret, _)| name.strip_suffix("_file") == Some(*secret))
}

/// The ids of the generated setting options.
fn flag_ids() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(|k| !k.is_secret() && is_component_key(k.name))
        .map(|k| k.name)
        .chain(
            HOST_KEYS
                .iter()
                .map(|k| k.name)
                .filter(|n| !is_secret_file_key(n)),
        )
}

/// The secrets (which have no flags), for `--help` after the options.
pub fn secrets_help() -> String {
    let mut secrets = String::from("Secrets (environment or file only, never flags):\n");
    for key in KEYS.iter().filter(|k| k.is_secret()) {
        let file = SECRET_FILE_ENVS
            .iter()
            .find(|(k, _)| *k == key.name)
            .map(|(_, f)| {
                format!(
                    ", or a file named by {f} / {}_file in the config file",
                    key.name
                )
            })
            .unwrap_or_default();
        secrets.push_str(&format!(
            "  {:<24} {}; env {}{file}\n",
            key.name, key.help, key.env
        ));
    }
    secrets.push_str(
        "  ui_token                 signs admins in to the status page outside a hub, and scripts as a bearer token; env \
         GROUPER_SYNC_UI_TOKEN, or a file named by GROUPER_SYNC_UI_TOKEN_FILE / ui_token_file in the config file\n",
    );
    secrets
}

/// The settings from the parsed command line, the config file and the environment (`env` reads
/// a variable, `read` a file), merged with precedence flags > file > environment.
pub fn from_matches(
    matches: &ArgMatches,
    env: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&Path) -> Result<String>,
) -> Result<Options> {
    // 1. the flags given
    let from_flags = |id: &str| {
        (matches.value_source(id) == Some(ValueSource::CommandLine))
            .then(|| matches.get_one::<String>(id).cloned())
            .flatten()
    };
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    for id in flag_ids() {
        if let Some(v) = from_flags(id) {
            flags.insert(id.to_string(), v);
        }
    }
    let config_file = from_flags("config");

    // 2. the environment
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for key in KEYS {
        if let Some(v) = env(key.env).filter(|v| !v.is_empty()) {
            values.insert(host_name(key.name).into(), v);
        }
    }
    for key in HOST_KEYS.iter().filter(|k| !k.env.is_empty()) {
        if let Some(v) = env(key.env).filter(|v| !v.is_empty()) {
            values.insert(key.name.into(), v);
        }
    }
    for (key, var) in SECRET_FILE_ENVS {
        if let Some(path) = env(var).filter(|v| !v.is_empty()) {
            values.insert((*key).into(), read_secret_file(&path, read)?);
        }
    }

    let mut ui_token = env("GROUPER_SYNC_UI_TOKEN").filter(|v| !v.is_empty());
    if let Some(path) = env("GROUPER_SYNC_UI_TOKEN_FILE").filter(|v| !v.is_empty()) {
        ui_token = Some(read_secret_file(&path, read)?);
    }

    // 3. the config file
    let config_file = config_file.or_else(|| env("GROUPER_SYNC_CONFIG").filter(|v| !v.is_empty()));
    if let Some(path) = &config_file {
        let text = read(Path::new(path)).with_context(|| format!("reading config file {path}"))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        for (k, v) in &table {
            // [[targets]] tables and inline tables reach the component as the JSON its JSON keys
            // (`targets`, `google_group_settings`) take
            let json_key = KEYS
                .iter()
                .any(|key| key.name == k && key.kind == Kind::Json);
            let value = match v {
                toml::Value::Array(_) | toml::Value::Table(_) if json_key => {
                    serde_json::to_string(v).with_context(|| format!("config file {path}: {k}"))?
                }
                _ => toml_to_string(k, v)?,
            };
            let secret_of_file = k
                .strip_suffix("_file")
                .filter(|secret| SECRET_FILE_ENVS.iter().any(|(s, _)| s == secret));
            match (k.as_str(), secret_of_file) {
                (_, Some(secret)) => {
                    values.insert(secret.into(), read_secret_file(&value, read)?);
                }
                ("ui_token", _) => ui_token = Some(value),
                ("ui_token_file", _) => ui_token = Some(read_secret_file(&value, read)?),
                _ if is_component_key(k) || is_host_key(host_name(k)) => {
                    values.insert(host_name(k).into(), value);
                }
                _ => bail!("config file {path}: unknown setting {k:?} (see --help)"),
            }
        }
    }

    // 4. the flags win
    values.extend(flags);
    let page = page::page_options(&values, env, ui_token.filter(|t| !t.trim().is_empty()))?;
    build(values, page)
}

fn build(values: BTreeMap<String, String>, page: page::PageOptions) -> Result<Options> {
    let get = |name: &str| values.get(name).map(String::as_str);
    let number = |name: &str| -> Result<u64> {
        let value = host_key(name).whole(get(name)).map_err(|e| anyhow!(e.0))?;
        Ok(value.unwrap_or_else(|| panic!("{name} has a default")))
    };
    let seconds = |name: &str| number(name).map(Duration::from_secs);
    let sync_every = seconds("sync_every")?;
    let boolean = |name: &str| host_key(name).flag(get(name)).map_err(|e| anyhow!(e.0));
    // dry_run is the component's key: read with the component's schema
    let dry_run = settings::schema::key("dry_run")
        .flag(get("dry_run"))
        .map_err(|e| anyhow!(e.0))?;
    let enabled = boolean("enabled")?;
    let log_level: LogLevel = settings::schema::key("log_level")
        .choice(get("log_level"))
        .map_err(|e| anyhow!(e.0))?
        .unwrap_or(LogLevel::Info);
    let timezone = get("timezone")
        .or(host_key("timezone").default)
        .unwrap_or("UTC");
    let tz = jiff::tz::TimeZone::get(timezone)
        .map_err(|e| anyhow!("invalid timezone {timezone:?}: {e}"))?;
    // comma-separated, as the environment and flags give lists (a file's list is joined so)
    let items = |key: &str| {
        values
            .get(key)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()))
            .into_iter()
            .flatten()
    };
    let dates = items("allowed_dates")
        .map(|d| {
            d.parse::<jiff::civil::Date>()
                .map_err(|e| anyhow!("allowed_dates: {d:?} is not a YYYY-MM-DD date ({e})"))
        })
        .collect::<Result<Vec<_>>>()?;
    let weekly = items("weekly_windows")
        .map(WeeklyWindow::parse)
        .collect::<Result<Vec<_>>>()?;
    let log_format = host_key("log_format")
        .choice(get("log_format"))
        .map_err(|e| anyhow!(e.0))?
        .unwrap_or(LogFormat::Text);
    let metrics_addr = page::listen_addr(&values, "metrics_addr")?;
    if metrics_addr.is_some() && metrics_addr == page.addr {
        bail!(
            "metrics_addr and status_addr are both {}: the status page needs its own address, so that \
             opening /metrics to Prometheus never opens the page",
            page.addr.map(|a| a.to_string()).unwrap_or_default()
        );
    }
    let pass_deadline = seconds("pass_deadline_seconds")?;
    let http_timeout_cap = seconds("http_timeout_cap_seconds")?;
    let memory_mb = number("memory_limit_mb")?;
    let mut allowed_hosts = Vec::new();
    for key in ["jupyterhub_api_url", "grouper_base_url"] {
        if let Some(url) = values.get(key) {
            allowed_hosts.push(url_origin(key, url.trim())?);
        }
    }
    allowed_hosts.extend(google_origins(&values)?);
    let component_config = values
        .iter()
        .filter(|(k, _)| is_component_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Options {
        component: values.get("component").map(PathBuf::from),
        component_config,
        dry_run,
        sync_every,
        enabled,
        windows: Windows { dates, weekly, tz },
        metrics_addr,
        log_format,
        log_level,
        pass_deadline,
        memory_limit_bytes: (memory_mb as usize) << 20,
        http_timeout_cap,
        allowed_hosts,
        state_dir: match get("state_dir").map(str::trim) {
            None => PathBuf::from(host_key("state_dir").default.unwrap_or_default()),
            Some("") => bail!("state_dir must name a directory"),
            Some(d) => PathBuf::from(d),
        },
        approval_max_age: Duration::from_secs(number("approval_max_age_hours")? * 3600),
        lock_wait: seconds("lock_wait_seconds")?,
        change_log_max_bytes: number("change_log_max_mb")? << 20,
        change_log_keep: Duration::from_secs(number("change_log_keep_days")? * 86_400),
        page,
        ca_file: match values.get("ca_file").map(|f| f.trim()) {
            None => None,
            Some("") => bail!("ca_file must name a PEM file"),
            Some(f) => Some(PathBuf::from(f)),
        },
    })
}

#[cfg(test)]
mod tests;
