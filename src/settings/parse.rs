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

mod targets;
use targets::*;

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
