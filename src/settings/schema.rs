//! The one schema of every setting: its key, environment variable, kind (with bounds), default,
//! where it may be given and its help. The component's parser, the host's flags and config-file
//! keys and the configuration reference are all read from here; nothing else writes a default.

use std::fmt;
use std::str::FromStr;

/// What values a setting takes. Bounds and choices live here, once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    /// Never printed, never a command-line flag.
    Secret,
    /// An `http://` or `https://` URL with a host, no credentials and no query.
    Url,
    Bool,
    /// A whole number in `min..=max`, counted in `unit` (empty: a plain count).
    Whole {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// A number from 0 to 1.
    Fraction,
    Choice(&'static [&'static str]),
    /// Comma-separated values (a TOML list in a config file).
    List,
    /// Comma-separated dotted paths into a JSON object.
    Paths,
    /// A Grouper group or folder name (`stem:stem:extension`).
    Group,
    /// A regex over whole names.
    Pattern,
    /// A JSON document (`targets`).
    Json,
    /// A file-system path, or an address: text the host reads itself.
    Path,
}

/// Where a setting may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A flat setting of the whole pass.
    Pass,
    /// A flat setting that an entry of `targets` may override for its target.
    PassAndTarget,
    /// Only in an entry of `targets`.
    Target,
    /// A setting of the `grouper-sync` host, not of the component.
    Host,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// The environment variable read when the key is absent (empty: none).
    pub env: &'static str,
    pub kind: Kind,
    /// The value used when the key is absent, written as a user would write it; `None`: the
    /// setting is off, or required where `required` says so.
    pub default: Option<&'static str>,
    pub required: bool,
    pub scope: Scope,
    /// One line for `--help` and the reference; the default is added from `default`.
    pub help: &'static str,
}

/// The bounds of the pass interval: the component's `sync_every_seconds` and the host's
/// `sync_every` are one setting in two places.
pub const SYNC_INTERVAL: Kind = Kind::Whole {
    min: 1,
    max: 31 * 86_400,
    unit: "seconds",
};

/// A count with no useful upper bound (the same on 32-bit wasm and on the host).
const COUNT: Kind = Kind::Whole {
    min: 0,
    max: u32::MAX as u64,
    unit: "",
};

/// A `Whole` kind.
pub const fn whole(min: u64, max: u64, unit: &'static str) -> Kind {
    Kind::Whole { min, max, unit }
}

impl Key {
    /// An optional key (`required: false`) of this scope.
    pub const fn new(
        name: &'static str,
        env: &'static str,
        kind: Kind,
        default: Option<&'static str>,
        scope: Scope,
        help: &'static str,
    ) -> Key {
        Key {
            name,
            env,
            kind,
            default,
            required: false,
            scope,
            // Only the host prints help: the component (< 1 MB) leaves the text out.
            help: if cfg!(target_arch = "wasm32") {
                ""
            } else {
                help
            },
        }
    }
}

const fn setting(
    name: &'static str,
    env: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key::new(name, env, kind, default, Scope::Pass, help)
}

const fn required(name: &'static str, env: &'static str, kind: Kind, help: &'static str) -> Key {
    Key {
        required: true,
        ..setting(name, env, kind, None, help)
    }
}

const fn per_target(
    name: &'static str,
    env: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key {
        scope: Scope::PassAndTarget,
        ..setting(name, env, kind, default, help)
    }
}

const fn entry(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key {
        scope: Scope::Target,
        ..setting(name, "", kind, default, help)
    }
}

pub const MODES: &[&str] = &["mirror", "additive"];
pub const DIRECTIONS: &[&str] = &["to_grouper", "to_hub"];
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug"];
pub const SUBJECT_SOURCES: &[&str] = &["auth_state", "user_info", "username"];
pub const SUBJECT_LOOKUPS: &[&str] = &["subject_id", "subject_identifier"];
pub const CONTENT_TYPES: &[&str] = &["text/x-json", "application/json"];

/// Every key the component understands (the host's own are in the host, in the same form).
/// Anything else in `wasi:config` is rejected.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    required("jupyterhub_api_url", "JUPYTERHUB_API_URL", Kind::Url, "hub API URL, e.g. http://127.0.0.1:8081/hub/api"),
    required("jupyterhub_api_token", "JUPYTERHUB_API_TOKEN", Kind::Secret, "hub token with list:users, read:users, admin:auth_state"),
    required("grouper_base_url", "GROUPER_BASE_URL", Kind::Url, "Grouper WS URL, e.g. https://calgroups.berkeley.edu/gws/servicesRest/json/v2_2_100"),
    required("grouper_user", "GROUPER_USER", Kind::Text, "Grouper HTTP Basic user"),
    required("grouper_password", "GROUPER_PASSWORD", Kind::Secret, "Grouper HTTP Basic password"),
    setting("grouper_id_path", "GROUPER_ID_PATH", Kind::Group, None, "target group of all hub users, e.g. edu:berkeley:app:datahub:datahub-users (required unless targets)"),
    setting("targets", "GROUPER_SYNC_TARGETS", Kind::Json, None, "more target groups, a JSON list: [{\"grouper_group\": \"edu:x:course-101\", \"hub_group\": \"course-101\"}]"),
    setting("dry_run", "GROUPER_SYNC_DRY_RUN", Kind::Bool, Some("false"), "plan and report, write nothing"),
    per_target("mode", "GROUPER_SYNC_MODE", Kind::Choice(MODES), Some("mirror"), "mirror (add and remove) or additive (never remove)"),
    per_target("max_removals", "GROUPER_SYNC_MAX_REMOVALS", COUNT, Some("50"), "a pass that would remove more members removes none"),
    per_target("max_removal_fraction", "GROUPER_SYNC_MAX_REMOVAL_FRACTION", Kind::Fraction, Some("0.10"), "... or more than this fraction of the group"),
    per_target("removal_fraction_floor", "GROUPER_SYNC_REMOVAL_FRACTION_FLOOR", COUNT, Some("5"), "... once more than this many removals are planned"),
    per_target("max_removals_per_day", "GROUPER_SYNC_MAX_REMOVALS_PER_DAY", COUNT, Some("100"), "removals that would make more than this many in any 24 hours are withheld"),
    per_target("max_removal_fraction_per_day", "GROUPER_SYNC_MAX_REMOVAL_FRACTION_PER_DAY", Kind::Fraction, Some("0.20"), "... or more than this fraction of the group in 24 hours, past removal_fraction_floor"),
    per_target("protected_members", "GROUPER_SYNC_PROTECTED_MEMBERS", Kind::List, None, "comma-separated subjects never removed"),
    per_target("include_admins", "GROUPER_SYNC_INCLUDE_ADMINS", Kind::Bool, Some("false"), "also sync hub admins (to_hub targets: true)"),
    per_target("active_within_days", "GROUPER_SYNC_ACTIVE_WITHIN_DAYS", whole(1, 36_600, "days"), None, "only users active within this many days (unset: any)"),
    per_target("only_active_servers", "GROUPER_SYNC_ONLY_ACTIVE_SERVERS", Kind::Bool, Some("false"), "only users with a running server"),
    per_target("exclude_users_pattern", "GROUPER_SYNC_EXCLUDE_USERS_PATTERN", Kind::Pattern, None, "a regex over whole hub user names: matching users are never selected"),
    per_target("create_missing_groups", "GROUPER_SYNC_CREATE_MISSING_GROUPS", Kind::Bool, Some("false"), "create a target group that does not exist (Grouper groups only inside grouper_folder)"),
    per_target("grouper_folder", "GROUPER_SYNC_GROUPER_FOLDER", Kind::Group, None, "the Grouper folder (stem) in which create_missing_groups may create groups"),
    per_target("provision_to", "GROUPER_SYNC_PROVISION_TO", Kind::List, None, "Grouper provisioner ids (e.g. a Google provisioner's): a group the pass creates is marked for each"),
    per_target("ensure_provisioning", "GROUPER_SYNC_ENSURE_PROVISIONING", Kind::Bool, Some("false"), "also mark an existing group that lacks a provision_to mark (never removes one)"),
    per_target("google_group", "GROUPER_SYNC_GOOGLE_GROUP", Kind::Text, None, "the Google Group the group is provisioned to: an address, or a template ({extension}: the group's last name part)"),
    per_target("google_group_settings", "GROUPER_SYNC_GOOGLE_GROUP_SETTINGS", Kind::Json, None, "Groups Settings API fields and the values google_group keeps, e.g. {\"whoCanPostMessage\": \"ALL_MANAGERS_CAN_POST\"}"),
    setting("google_service_account_key", "GROUPER_SYNC_GOOGLE_SERVICE_ACCOUNT_KEY", Kind::Secret, None, "the service account's key file (JSON), with domain-wide delegation for the apps.groups.settings scope"),
    setting("google_admin_subject", "GROUPER_SYNC_GOOGLE_ADMIN_SUBJECT", Kind::Text, None, "the Workspace admin the service account acts as (the JWT's sub)"),
    setting("google_api_url", "GROUPER_SYNC_GOOGLE_API_URL", Kind::Url, Some("https://www.googleapis.com"), "the Groups Settings API's base URL"),
    setting("allow_empty_hub", "GROUPER_SYNC_ALLOW_EMPTY_HUB", Kind::Bool, Some("false"), "accept a hub that lists no users"),
    setting("subject_from", "GROUPER_SYNC_SUBJECT_FROM", Kind::Choice(SUBJECT_SOURCES), Some("auth_state"), "auth_state, user_info or username"),
    setting("user_info_paths", "GROUPER_SYNC_USER_INFO_PATHS", Kind::Paths, Some("login_id"), "with subject_from=user_info: ordered dotted user_info paths"),
    setting("auth_state_paths", "GROUPER_SYNC_AUTH_STATE_PATHS", Kind::Paths, Some("canvas_user.login_id,oauth_user.login_id"), "ordered dotted auth_state paths"),
    setting("username_template", "GROUPER_SYNC_USERNAME_TEMPLATE", Kind::Text, Some("{name}"), "with subject_from=username, e.g. {name}@example.edu"),
    setting("subject_lookup", "GROUPER_SYNC_SUBJECT_LOOKUP", Kind::Choice(SUBJECT_LOOKUPS), Some("subject_id"), "subject_id or subject_identifier"),
    setting("subject_source_id", "GROUPER_SYNC_SUBJECT_SOURCE_ID", Kind::Text, None, "send subjectSourceId and manage only members of that source"),
    setting("identifier_attribute", "GROUPER_SYNC_IDENTIFIER_ATTRIBUTE", Kind::Text, None, "with subject_identifier: the subject attribute to match members on"),
    setting("api_page_size", "GROUPER_SYNC_API_PAGE_SIZE", whole(1, 10_000, ""), Some("200"), "hub users per list page"),
    setting("concurrency", "GROUPER_SYNC_CONCURRENCY", whole(1, 64, ""), Some("1"), "hub user records fetched at once (2-4 for a hub far away, see BENCHMARKS.md)"),
    setting("grouper_page_size", "GROUPER_SYNC_GROUPER_PAGE_SIZE", whole(1, 100_000, ""), Some("1000"), "members per getMembers page"),
    setting("grouper_batch_size", "GROUPER_SYNC_GROUPER_BATCH_SIZE", whole(1, 10_000, ""), Some("100"), "subjects per addMember/deleteMember call"),
    setting("hub_batch_size", "GROUPER_SYNC_HUB_BATCH_SIZE", whole(1, 10_000, ""), Some("100"), "hub users per write to a hub group (to_hub targets)"),
    setting("grouper_content_type", "GROUPER_SYNC_GROUPER_CONTENT_TYPE", Kind::Choice(CONTENT_TYPES), Some("text/x-json"), "text/x-json or application/json"),
    setting("connect_timeout_seconds", "GROUPER_SYNC_CONNECT_TIMEOUT_SECONDS", whole(1, 600, "seconds"), Some("10"), "per request"),
    setting("request_timeout_seconds", "GROUPER_SYNC_REQUEST_TIMEOUT_SECONDS", whole(1, 3600, "seconds"), Some("60"), "first-byte and between-bytes timeout per request"),
    setting("retries", "GROUPER_SYNC_RETRIES", whole(0, 10, ""), Some("3"), "extra attempts for transient failures"),
    setting("retry_backoff_ms", "GROUPER_SYNC_RETRY_BACKOFF_MS", whole(0, 60_000, "milliseconds"), Some("500"), "first backoff, doubling, capped at 30 s"),
    setting("log_level", "GROUPER_SYNC_LOG_LEVEL", Kind::Choice(LOG_LEVELS), Some("info"), "error, warn, info or debug"),
    setting("full_refresh_hours", "GROUPER_SYNC_FULL_REFRESH_HOURS", whole(1, 24 * 366, "hours"), Some("24"), "incremental passes re-read every user's auth_state at least this often"),
    setting("activity_margin_seconds", "GROUPER_SYNC_ACTIVITY_MARGIN_SECONDS", whole(0, 7 * 86_400, "seconds"), Some("900"), "re-read users active this close to their last read"),
    setting("max_changes_per_pass", "GROUPER_SYNC_MAX_CHANGES_PER_PASS", COUNT, Some("0"), "at most this many adds and removes per pass; 0 is unlimited"),
    setting("sync_auth_token", "GROUPER_SYNC_AUTH_TOKEN", Kind::Secret, None, "bearer token of POST /sync and POST /check"),
    setting("sync_every_seconds", "GROUPER_SYNC_EVERY_SECONDS", SYNC_INTERVAL, None, "wasi:cli/run loops with a pass every this many seconds"),
    entry("grouper_group", Kind::Group, None, "the target's Grouper group, or a template of {0}, {1}… with hub_group_pattern"),
    entry("hub_group", Kind::Text, None, "to_grouper: only this hub group's members; to_hub: the hub group kept"),
    entry("hub_group_pattern", Kind::Pattern, None, "one target per hub group whose whole name matches"),
    entry("direction", Kind::Choice(DIRECTIONS), Some("to_grouper"), "to_grouper or to_hub"),
];

/// The key named `name`. Every name the parsers ask for is in [`KEYS`] (unit-tested), so a
/// missing one is a programming error.
pub fn key(name: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("{name} is not in settings::KEYS"))
}

/// The default of the key named `name`, at compile time (a key without one fails the build).
pub const fn default_of(name: &str) -> &'static str {
    let mut i = 0;
    while i < KEYS.len() {
        let (a, b) = (KEYS[i].name.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                match KEYS[i].default {
                    Some(d) => return d,
                    None => panic!("the key has no default"),
                }
            }
        }
        i += 1;
    }
    panic!("no such key")
}

/// The environment variable that stands in for a config key, if the key is known.
pub fn env_name(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|k| k.name == key && !k.env.is_empty())
        .map(|k| k.env)
}

/// A value that does not fit its key, said in words that name the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one reading of a boolean setting, used by the component and the host alike.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl Key {
    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    /// The help line with the default, as `--help` and the reference show it.
    pub fn help_line(&self) -> String {
        match self.default {
            Some(d) => format!("{} (default {d})", self.help),
            None => self.help.to_string(),
        }
    }

    /// The given value, else the default; blank counts as absent.
    fn value<'a>(&self, raw: Option<&'a str>) -> Option<&'a str>
    where
        'static: 'a,
    {
        raw.map(str::trim)
            .filter(|v| !v.is_empty())
            .or(self.default)
    }

    /// A `Whole` setting, within its bounds. `None`: absent with no default.
    pub fn whole(&self, raw: Option<&str>) -> Result<Option<u64>, ValueError> {
        let Kind::Whole { min, max, unit } = self.kind else {
            panic!("{} is not a whole number", self.name)
        };
        let Some(v) = self.value(raw) else {
            return Ok(None);
        };
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => {
                let of = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" of {unit}")
                };
                Err(ValueError(format!(
                    "{} must be a whole number{of} from {min} to {max}, not {v:?}",
                    self.name
                )))
            }
        }
    }

    /// A `Bool` setting.
    pub fn flag(&self, raw: Option<&str>) -> Result<bool, ValueError> {
        assert_eq!(self.kind, Kind::Bool, "{} is not a boolean", self.name);
        let v = self.value(raw).unwrap_or("false");
        parse_bool(v)
            .ok_or_else(|| ValueError(format!("{} must be true or false, not {v:?}", self.name)))
    }

    /// A `Fraction` setting.
    pub fn fraction(&self, raw: Option<&str>) -> Result<Option<f64>, ValueError> {
        assert_eq!(self.kind, Kind::Fraction, "{} is not a fraction", self.name);
        let Some(v) = self.value(raw) else {
            return Ok(None);
        };
        match v.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(Some(x)),
            _ => Err(ValueError(format!(
                "{} must be a number from 0 to 1, not {v:?}",
                self.name
            ))),
        }
    }

    /// A `Choice` setting, as its type.
    pub fn choice<T: FromStr>(&self, raw: Option<&str>) -> Result<Option<T>, ValueError> {
        let Kind::Choice(allowed) = self.kind else {
            panic!("{} is not a choice", self.name)
        };
        let Some(v) = self.value(raw) else {
            return Ok(None);
        };
        match v.parse::<T>() {
            Ok(t) if allowed.contains(&v) => Ok(Some(t)),
            _ => Err(ValueError(format!(
                "{} must be one of {}, not {v:?}",
                self.name,
                allowed.join(", ")
            ))),
        }
    }
}

/// A choice of [`Kind::Choice`] as a Rust enum: its names are the schema's list, in order
/// (`as_str`, `FromStr`, `Display`). Used by the host's choices too.
#[macro_export]
macro_rules! choice_enum {
    ($ty:ty, $names:expr, [$($variant:ident),+ $(,)?]) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                const VARIANTS: &[$ty] = &[$(<$ty>::$variant),+];
                let i = VARIANTS.iter().position(|v| *v == self).expect("every variant is listed");
                $names[i]
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::settings::ValueError;
            fn from_str(s: &str) -> Result<Self, $crate::settings::ValueError> {
                const VARIANTS: &[$ty] = &[$(<$ty>::$variant),+];
                const _: () = assert!(VARIANTS.len() == $names.len());
                $names
                    .iter()
                    .position(|n| *n == s)
                    .map(|i| VARIANTS[i])
                    .ok_or_else(|| {
                        $crate::settings::ValueError(format!("one of {}, not {s:?}", $names.join(", ")))
                    })
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub use choice_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Mode};
    use crate::settings::{ContentType, LogLevel, LookupKind, SubjectSource};

    #[test]
    fn every_default_is_a_valid_value_of_its_kind() {
        for k in KEYS {
            let Some(d) = k.default else { continue };
            let ok = match k.kind {
                Kind::Whole { .. } => k.whole(None).is_ok_and(|v| v.is_some()),
                Kind::Bool => parse_bool(d).is_some(),
                Kind::Fraction => k.fraction(None).is_ok_and(|v| v.is_some()),
                Kind::Choice(allowed) => allowed.contains(&d),
                Kind::Url => crate::model::HttpUrl::parse(d).is_ok(),
                Kind::Secret | Kind::Group | Kind::Json => false,
                Kind::Text | Kind::List | Kind::Paths | Kind::Pattern | Kind::Path => true,
            };
            assert!(ok, "{}: default {d:?} does not fit {:?}", k.name, k.kind);
            assert!(k.help_line().ends_with(&format!("(default {d})")));
        }
    }

    #[test]
    fn names_and_environment_variables_are_unique_and_secrets_have_no_default() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(
                    a.env.is_empty() || a.env != b.env,
                    "{} and {}",
                    a.name,
                    b.name
                );
            }
            assert_eq!(a.env.is_empty(), a.scope == Scope::Target, "{}", a.name);
            if a.is_secret() {
                assert_eq!(a.default, None, "{}", a.name);
            }
            assert!(
                !a.help.contains("(default"),
                "{}: the default is the schema's",
                a.name
            );
        }
        assert_eq!(env_name("mode"), Some("GROUPER_SYNC_MODE"));
        assert_eq!(env_name("direction"), None);
        assert_eq!(default_of("max_removals"), "50");
    }

    #[test]
    fn whole_numbers_are_bounded_and_errors_name_the_key_and_unit() {
        let k = key("connect_timeout_seconds");
        assert_eq!(k.whole(None), Ok(Some(10)));
        assert_eq!(k.whole(Some(" 600 ")), Ok(Some(600)));
        assert_eq!(
            k.whole(Some("601")).unwrap_err().0,
            "connect_timeout_seconds must be a whole number of seconds from 1 to 600, not \"601\""
        );
        assert_eq!(
            key("retries").whole(Some("x")).unwrap_err().0,
            "retries must be a whole number from 0 to 10, not \"x\""
        );
        assert_eq!(key("active_within_days").whole(Some("")), Ok(None));
        assert_eq!(key("dry_run").flag(Some("yes")), Ok(true));
        assert!(key("dry_run").flag(Some("maybe")).is_err());
        assert_eq!(key("max_removal_fraction").fraction(None), Ok(Some(0.10)));
        assert!(key("max_removal_fraction").fraction(Some("1.5")).is_err());
    }

    #[test]
    fn choices_are_the_enums_names_in_order() {
        fn round_trip<T: FromStr + fmt::Display>(names: &[&str]) {
            for n in names {
                let parsed = n.parse::<T>().ok().expect("each name parses");
                assert_eq!(parsed.to_string(), *n);
            }
            assert!("nonsense".parse::<T>().is_err());
        }
        round_trip::<Mode>(MODES);
        round_trip::<Direction>(DIRECTIONS);
        round_trip::<LogLevel>(LOG_LEVELS);
        round_trip::<SubjectSource>(SUBJECT_SOURCES);
        round_trip::<LookupKind>(SUBJECT_LOOKUPS);
        round_trip::<ContentType>(CONTENT_TYPES);
        assert_eq!(
            key("mode").choice::<Mode>(Some("copy")).unwrap_err().0,
            "mode must be one of mirror, additive, not \"copy\""
        );
        assert_eq!(
            key("log_level").choice::<LogLevel>(None),
            Ok(Some(LogLevel::Info))
        );
    }

    /// docs/configuration.md's table of keys is the schema's: every flat key once, with its
    /// environment variable and default (`required` where the schema requires it).
    #[test]
    fn the_configuration_reference_lists_every_key_as_the_schema_says() {
        let doc = include_str!("../../docs/configuration.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split(" | ").map(|c| c.trim_matches(['|', ' '])).collect())
            .filter(|cells: &Vec<&str>| cells.len() == 4 && cells[1].starts_with("`"))
            .collect();
        let flat: Vec<&Key> = KEYS.iter().filter(|k| k.scope != Scope::Target).collect();
        for k in &flat {
            let row = rows
                .iter()
                .find(|r| r[0] == format!("`{}`", k.name))
                .unwrap_or_else(|| panic!("docs/configuration.md has no row for {}", k.name));
            assert_eq!(row[1], format!("`{}`", k.env), "{}", k.name);
            match k.default {
                Some(d) => assert!(
                    row[2].starts_with(&format!("`{d}`")),
                    "{}: the schema's default is {d}, the reference says {}",
                    k.name,
                    row[2]
                ),
                None => assert_eq!(
                    row[2].starts_with("required"),
                    k.required,
                    "{}: {}",
                    k.name,
                    row[2]
                ),
            }
        }
        assert_eq!(rows.len(), flat.len(), "a row for a key the schema lacks");
    }
}
