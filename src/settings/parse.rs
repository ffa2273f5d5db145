//! Reading the settings: the flat keys, then the `targets` list with the flat keys as each
//! entry's defaults, then the checks across targets. Every default and bound is the schema's.

use super::names::{
    group_pattern, in_folder, parse_group_path, parse_hub_group_name, template_fields,
};
use super::schema::{env_name, key, Scope, ValueError, KEYS};
use super::*;
use crate::model::google::WRITABLE_FIELDS;
use crate::model::{
    GoogleGroupPolicy, HttpUrl, Provisioning, RemovalLimits, Selection, ServiceAccountKey,
    SubjectLookup, TargetRules, UserFilters,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::str::FromStr;

/// Reads settings through a lookup, typed by the schema: every default and bound comes from
/// [`KEYS`]. The `_or` forms take a target's base value instead of the default.
pub(super) struct Reader<F> {
    pub(super) lookup: F,
}

fn config_error(e: ValueError) -> ConfigError {
    SyncError::config(e.0)
}

impl<F: Fn(&str) -> Result<Option<String>, String>> Reader<F> {
    pub(super) fn raw(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(name) {
            Ok(Some(v)) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(v),
            Err(e) => err(format!("could not read configuration key {name}: {e}")),
        }
    }

    fn env_of(name: &str) -> &'static str {
        env_name(name).unwrap_or("")
    }

    pub(super) fn required(&self, name: &str) -> Result<String, ConfigError> {
        match self.raw(name)? {
            Some(v) => Ok(v.trim().to_string()),
            None => err(format!(
                "missing required setting {name} (config key {name} or environment variable {})",
                Self::env_of(name)
            )),
        }
    }

    pub(super) fn required_secret(&self, name: &str) -> Result<Secret, ConfigError> {
        // Secrets are not trimmed of inner content, only checked for presence.
        match self.raw(name)? {
            Some(v) => Ok(Secret(v)),
            None => err(format!(
                "missing required secret {name} (config key {name} or environment variable {})",
                Self::env_of(name)
            )),
        }
    }

    /// A `Bool` key: the given value, else `base`, else the schema's default.
    pub(super) fn flag_or(&self, name: &str, base: Option<bool>) -> Result<bool, ConfigError> {
        match (self.raw(name)?, base) {
            (None, Some(b)) => Ok(b),
            (v, _) => key(name).flag(v.as_deref()).map_err(config_error),
        }
    }

    pub(super) fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        self.flag_or(name, None)
    }

    /// A `Whole` key with a default (or `base`), as a count.
    pub(super) fn whole_or(&self, name: &str, base: Option<usize>) -> Result<usize, ConfigError> {
        match (self.raw(name)?, base) {
            (None, Some(b)) => Ok(b),
            (v, _) => Ok(key(name)
                .whole(v.as_deref())
                .map_err(config_error)?
                .unwrap_or_else(|| panic!("{name} has a default"))
                as usize),
        }
    }

    pub(super) fn whole(&self, name: &str) -> Result<usize, ConfigError> {
        self.whole_or(name, None)
    }

    /// A `Whole` key without a default: `None` when absent.
    pub(super) fn optional_whole(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        key(name)
            .whole(self.raw(name)?.as_deref())
            .map_err(config_error)
    }

    pub(super) fn fraction_or(&self, name: &str, base: Option<f64>) -> Result<f64, ConfigError> {
        match (self.raw(name)?, base) {
            (None, Some(b)) => Ok(b),
            (v, _) => Ok(key(name)
                .fraction(v.as_deref())
                .map_err(config_error)?
                .unwrap_or_else(|| panic!("{name} has a default"))),
        }
    }

    /// A `Choice` key as its enum: the given value, else `base`, else the schema's default.
    pub(super) fn choice_or<T: FromStr>(
        &self,
        name: &str,
        base: Option<T>,
    ) -> Result<T, ConfigError> {
        match (self.raw(name)?, base) {
            (None, Some(b)) => Ok(b),
            (v, _) => Ok(key(name)
                .choice(v.as_deref())
                .map_err(config_error)?
                .unwrap_or_else(|| panic!("{name} has a default"))),
        }
    }

    pub(super) fn choice<T: FromStr>(&self, name: &str) -> Result<T, ConfigError> {
        self.choice_or(name, None)
    }

    /// A `Text` or `Paths` key, else its default.
    pub(super) fn text(&self, name: &str) -> Result<String, ConfigError> {
        Ok(self
            .raw(name)?
            .unwrap_or_else(|| key(name).default.unwrap_or_default().to_string()))
    }
}

fn http_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    let lowercase_scheme = v.starts_with("http://") || v.starts_with("https://");
    if lowercase_scheme && HttpUrl::parse(v).is_ok() && !v.contains(['?', '#', ' ']) {
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

/// The keys an entry of `targets` may have: the schema's entry keys, then the flat keys an entry
/// may override.
fn target_keys() -> impl Iterator<Item = &'static str> {
    let of = |scope: Scope| KEYS.iter().filter(move |k| k.scope == scope);
    of(Scope::Target)
        .chain(of(Scope::PassAndTarget))
        .map(|k| k.name)
}

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
fn parse_targets(text: &str, base: &TargetRules) -> Result<Vec<TargetSpec>, ConfigError> {
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
        if let Some(k) = obj.keys().find(|k| !target_keys().any(|t| t == k.as_str())) {
            return Err(at(SyncError::config(format!(
                "unknown key {k:?}; an entry may have {}",
                target_keys().collect::<Vec<_>>().join(", ")
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
    base: &TargetRules,
) -> Result<TargetSpec, ConfigError> {
    let direction: Direction = r.choice("direction")?;
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
    let selection = match (direction, hub_group, hub_group_pattern) {
        (Direction::ToHub, _, Some(_)) => {
            return err(
                "direction to_hub keeps one hub group: give hub_group, not hub_group_pattern",
            )
        }
        (Direction::ToHub, None, None) => {
            return err("direction to_hub needs hub_group: the hub group it keeps")
        }
        (Direction::ToHub, Some(g), None) => {
            parse_hub_group_name(&g)?;
            Selection::KeepsHubGroup(g)
        }
        (Direction::ToGrouper, Some(_), Some(_)) => {
            return err("give hub_group or hub_group_pattern, not both")
        }
        (Direction::ToGrouper, Some(g), None) => Selection::HubGroup(g),
        (Direction::ToGrouper, None, Some(pattern)) => {
            let compiled = group_pattern(&pattern)?;
            let captures = compiled.captures_len();
            for n in template_fields(&group_path) {
                if n >= captures {
                    return err(format!(
                        "grouper_group uses {{{n}}}, but hub_group_pattern {pattern:?} has only {} capture group(s)",
                        captures - 1
                    ));
                }
            }
            Selection::HubGroupPattern(compiled)
        }
        (Direction::ToGrouper, None, None) => Selection::AllUsers,
    };
    if !matches!(selection, Selection::HubGroupPattern(_))
        && !template_fields(&group_path).is_empty()
    {
        return err("grouper_group has {n} fields but no hub_group_pattern to fill them");
    }
    let google = match direction {
        Direction::ToGrouper => google_group_setting(r, base.google.as_ref())?,
        Direction::ToHub if r.raw("google_group")?.is_some() => {
            return err("google_group keeps the Google Group a to_grouper target's group is provisioned to; a to_hub target only reads its group")
        }
        Direction::ToHub => None,
    };
    let provisioning = match direction {
        Direction::ToGrouper => provisioning_setting(r, &base.provisioning)?,
        // A to_hub target reads its Grouper group; the flat settings' marks are not its to make.
        Direction::ToHub if r.raw("provision_to")?.is_some() => {
            return err("provision_to marks the Grouper groups to_grouper targets write; a to_hub target only reads its group")
        }
        Direction::ToHub => Provisioning::default(),
    };
    // In to_hub the admins are hub users like any other: a Grouper roster holds them too.
    let admins_default = direction == Direction::ToHub || base.include_admins;
    Ok(TargetSpec {
        group_path,
        selection,
        rules: TargetRules {
            include_admins: r.flag_or("include_admins", Some(admins_default))?,
            filters: user_filters(r, &base.filters)?,
            create_missing: r.flag_or("create_missing_groups", Some(base.create_missing))?,
            grouper_folder: folder_setting(r, base.grouper_folder.as_ref())?,
            provisioning,
            google,
            mode: r.choice_or("mode", Some(base.mode))?,
            limits: limits(r, Some(&base.limits))?,
            protected,
            ..base.clone()
        },
    })
}

/// The filters of a target, with `base`'s where a key is absent.
fn user_filters<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: &UserFilters,
) -> Result<UserFilters, ConfigError> {
    Ok(UserFilters {
        active_within_days: match r.optional_whole("active_within_days")? {
            None => base.active_within_days,
            Some(days) => Some(days as u32),
        },
        only_active_servers: r.flag_or("only_active_servers", Some(base.only_active_servers))?,
        exclude_users: match r.raw("exclude_users_pattern")? {
            None => base.exclude_users.clone(),
            Some(p) if p.trim().is_empty() => None,
            Some(p) => Some(super::names::anchored("exclude_users_pattern", &p)?),
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

/// `google_group` and `google_group_settings`, else `base`'s.
fn google_group_setting<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: Option<&GoogleGroupPolicy>,
) -> Result<Option<GoogleGroupPolicy>, ConfigError> {
    let address = match r.raw("google_group")? {
        None => base.map(|b| b.address.clone()),
        Some(a) => Some(a.trim().to_string()),
    };
    let settings = match r.raw("google_group_settings")? {
        None => base.map(|b| b.settings.clone()).unwrap_or_default(),
        Some(text) => google_settings_table(&text)?,
    };
    let Some(address) = address else {
        if !settings.is_empty() {
            return err(
                "google_group_settings needs google_group, the Google Group they are kept on",
            );
        }
        return Ok(None);
    };
    let probe = address.replace("{extension}", "x");
    let valid = probe.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !probe.contains(['{', '}', ' ', '/', '?', '#', ':'])
            && !domain.contains('@')
    });
    if !valid {
        return err(format!(
            "google_group must be a Google Group's address, or a template of one with {{extension}} (the Grouper group's last name part), e.g. {{extension}}@lists.example.edu; got {address:?}"
        ));
    }
    if settings.is_empty() {
        return err(
            "google_group needs google_group_settings, the Groups Settings API fields to keep",
        );
    }
    Ok(Some(GoogleGroupPolicy { address, settings }))
}

/// `google_group_settings`: a JSON object (a TOML inline table in the config file) of Groups
/// Settings API fields to strings (booleans as `true`/`false`).
fn google_settings_table(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    const SHAPE: &str = "google_group_settings must be an object of Groups Settings API fields, e.g. {\"whoCanPostMessage\": \"ALL_MANAGERS_CAN_POST\"}";
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return err(SHAPE);
    };
    let mut out = BTreeMap::new();
    for (field, value) in map {
        if !WRITABLE_FIELDS.contains(&field.as_str()) {
            let hint = if field.to_ascii_lowercase().contains("email") {
                " (the Groups Settings API has no field for who can view member email addresses: set it in the Google Groups or Admin console)"
            } else {
                ""
            };
            return err(format!(
                "google_group_settings: {field:?} is not a field of the Groups Settings API a pass can set{hint}"
            ));
        }
        let value = match value {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            other => {
                return err(format!(
                    "google_group_settings: {field} must be a string, got {other}"
                ))
            }
        };
        out.insert(field, value);
    }
    Ok(out)
}

/// `provision_to` and `ensure_provisioning`, else `base`'s.
fn provisioning_setting<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: &Provisioning,
) -> Result<Provisioning, ConfigError> {
    let provision_to = match r.raw("provision_to")? {
        None => base.provision_to.clone(),
        Some(list) => {
            let ids: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if let Some(bad) = ids.iter().find(|id| {
                !id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            }) {
                return err(format!(
                    "provision_to: {bad:?} is not a provisioner id (the provisioner's config id, e.g. googleProvisioner or LDAPBerkeleyIMO)"
                ));
            }
            ids
        }
    };
    let ensure = r.flag_or("ensure_provisioning", Some(base.ensure))?;
    if ensure && provision_to.is_empty() {
        return err(
            "ensure_provisioning needs provision_to, the provisioners to mark the group for",
        );
    }
    Ok(Provisioning {
        provision_to,
        ensure,
    })
}

/// The removal limits: the given values, else `base`'s (a target's flat settings), else the
/// schema's defaults.
fn limits<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: Option<&RemovalLimits>,
) -> Result<RemovalLimits, ConfigError> {
    Ok(RemovalLimits {
        max_removals: r.whole_or("max_removals", base.map(|b| b.max_removals))?,
        max_fraction: r.fraction_or("max_removal_fraction", base.map(|b| b.max_fraction))?,
        fraction_floor: r.whole_or("removal_fraction_floor", base.map(|b| b.fraction_floor))?,
        max_per_day: r.whole_or("max_removals_per_day", base.map(|b| b.max_per_day))?,
        max_fraction_per_day: r.fraction_or(
            "max_removal_fraction_per_day",
            base.map(|b| b.max_fraction_per_day),
        )?,
    })
}

/// The settings in which two targets of the same group differ, by key.
fn differing_keys(spec_a: &TargetSpec, spec_b: &TargetSpec) -> Vec<&'static str> {
    let (a, b) = (&spec_a.rules, &spec_b.rules);
    let pattern = |s: &TargetSpec| match &s.selection {
        Selection::HubGroupPattern(p) => Some(p.as_str().to_string()),
        _ => None,
    };
    let checks: [(&str, bool); 20] = [
        ("direction", spec_a.direction() == spec_b.direction()),
        ("hub_group", spec_a.hub_group() == spec_b.hub_group()),
        ("hub_group_pattern", pattern(spec_a) == pattern(spec_b)),
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
            "provision_to",
            a.provisioning.provision_to == b.provisioning.provision_to,
        ),
        (
            "ensure_provisioning",
            a.provisioning.ensure == b.provisioning.ensure,
        ),
        ("google_group", a.google == b.google),
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

    let mode: Mode = r.choice("mode")?;
    let auth_state_paths = || -> Result<Vec<Vec<String>>, ConfigError> {
        parse_paths(
            "auth_state_paths",
            DEFAULT_AUTH_STATE_PATHS,
            &r.text("auth_state_paths")?,
        )
    };
    let subject_from = match r.choice("subject_from")? {
        SubjectSource::Username => SubjectFrom::Username {
            template: parse_template(&r.text("username_template")?)?,
        },
        SubjectSource::UserInfo => SubjectFrom::UserInfo {
            paths: parse_paths(
                "user_info_paths",
                DEFAULT_USER_INFO_PATHS,
                &r.text("user_info_paths")?,
            )?,
            fallback: auth_state_paths()?,
        },
        SubjectSource::AuthState => SubjectFrom::AuthState(auth_state_paths()?),
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
    let lookup = match r.choice("subject_lookup")? {
        LookupKind::SubjectIdentifier => SubjectLookup::SubjectIdentifier {
            attribute: attribute.ok_or_else(|| {
                SyncError::config(
                    "subject_lookup=subject_identifier needs identifier_attribute: the Grouper subject attribute \
                     (e.g. uid) whose value equals the identifier, so current members can be matched"
                )
            })?,
        },
        LookupKind::SubjectId => {
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
    let content_type = match r.choice("grouper_content_type")? {
        ContentType::ApplicationJson => "application/json; charset=UTF-8",
        ContentType::TextXJson => "text/x-json; charset=UTF-8",
    };
    let log_level: LogLevel = r.choice("log_level")?;

    let flat_path = flat_group
        .as_deref()
        .map(|g| parse_group_path("grouper_id_path", g))
        .transpose()?;
    let base = TargetRules {
        include_admins: r.flag("include_admins")?,
        filters: user_filters(&r, &UserFilters::default())?,
        create_missing: r.flag("create_missing_groups")?,
        grouper_folder: folder_setting(&r, None)?,
        provisioning: provisioning_setting(&r, &Provisioning::default())?,
        google: google_group_setting(&r, None)?,
        subject_from,
        lookup,
        source_id: r.raw("subject_source_id")?.map(|s| s.trim().to_string()),
        mode,
        limits: limits(&r, None)?,
        protected,
    };
    let flat = flat_path.map(|group_path| TargetSpec {
        group_path,
        selection: Selection::AllUsers,
        rules: base.clone(),
    });
    let mut targets: Vec<TargetSpec> = flat.iter().cloned().collect();
    if let Some(text) = &more_targets {
        for (i, entry) in parse_targets(text, &base)?.into_iter().enumerate() {
            let Some(flat) = flat.as_ref().filter(|f| f.group_path == entry.group_path) else {
                targets.push(entry);
                continue;
            };
            // The service's environment (GROUPER_ID_PATH) and a config file naming the same
            // group: one target when they agree.
            let differ = differing_keys(flat, &entry);
            if !differ.is_empty() {
                return err(format!(
                    "the Grouper group {} is named by grouper_id_path (GROUPER_ID_PATH) and by targets[{i}], \
                     which differ in {}; make them agree, or name the group once",
                    flat.group_path,
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
        .filter_map(|t| match &t.selection {
            Selection::KeepsHubGroup(g) => Some(g),
            _ => None,
        })
        .find(|g| !kept.insert(*g))
    {
        return err(format!(
            "the hub group {dup} is kept by two to_hub entries; each hub group may have one"
        ));
    }
    for t in &targets {
        if t.rules.create_missing && t.direction() == Direction::ToGrouper {
            match &t.rules.grouper_folder {
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

    let google = google_access(&r, &targets)?;

    Ok(Settings {
        google,
        hub_api_url,
        hub_token,
        grouper_base_url,
        grouper_user,
        grouper_password,
        grouper_content_type: content_type.to_string(),
        grouper_page_size: r.whole("grouper_page_size")?,
        grouper_batch_size: r.whole("grouper_batch_size")?,
        hub_batch_size: r.whole("hub_batch_size")?,
        api_page_size: r.whole("api_page_size")?,
        concurrency: r.whole("concurrency")?,
        dry_run: r.flag("dry_run")?,
        allow_empty_hub: r.flag("allow_empty_hub")?,
        log_level,
        http: HttpSettings {
            connect_timeout: Duration::from_secs(r.whole("connect_timeout_seconds")? as u64),
            request_timeout: Duration::from_secs(r.whole("request_timeout_seconds")? as u64),
            retries: r.whole("retries")? as u32,
            backoff: Duration::from_millis(r.whole("retry_backoff_ms")? as u64),
        },
        targets,
        max_changes_per_pass: match r.whole("max_changes_per_pass")? {
            0 => None,
            n => Some(n),
        },
        refresh: Refresh {
            full_refresh_seconds: r.whole("full_refresh_hours")? as i64 * 3600,
            activity_margin_seconds: r.whole("activity_margin_seconds")? as i64,
        },
    })
}

/// The service account, required when a target names a `google_group`.
fn google_access<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    targets: &[TargetSpec],
) -> Result<Option<GoogleAccess>, ConfigError> {
    let Some(first) = targets.iter().find(|t| t.rules.google.is_some()) else {
        return Ok(None);
    };
    let needed = |key: &str| {
        format!(
            "{}: google_group needs {key} (config key {key} or environment variable {})",
            first.group_path,
            env_name(key).unwrap_or("")
        )
    };
    let Some(key) = r.raw("google_service_account_key")? else {
        return err(needed("google_service_account_key"));
    };
    let Some(admin_subject) = r.raw("google_admin_subject")?.map(|s| s.trim().to_string()) else {
        return err(needed("google_admin_subject"));
    };
    if !admin_subject.contains('@') || admin_subject.contains(char::is_whitespace) {
        return err("google_admin_subject must be the address of a Workspace admin the service account acts as");
    }
    let api_url = http_url("google_api_url", &r.text("google_api_url")?)?;
    Ok(Some(GoogleAccess {
        key: ServiceAccountKey::parse(&key)?,
        admin_subject,
        api_url,
    }))
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
