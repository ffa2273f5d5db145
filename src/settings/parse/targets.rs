//! The `targets` list: each entry read with the flat settings as its defaults, and the settings
//! in which two entries of one group differ.

use super::*;

/// The keys an entry of `targets` may have: the schema's entry keys, then the flat keys an entry
/// may override.
pub(super) fn target_keys() -> impl Iterator<Item = &'static str> {
    let of = |scope: Scope| KEYS.iter().filter(move |k| k.scope == scope);
    of(Scope::Target)
        .chain(of(Scope::PassAndTarget))
        .map(|k| k.name)
}

/// A JSON value as the flat settings would hold it: lists comma-joined, `null` absent.
pub(super) fn flat_value(v: &Value) -> Option<String> {
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
pub(super) fn parse_targets(
    text: &str,
    base: &TargetRules,
) -> Result<Vec<TargetSpec>, ConfigError> {
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

pub(super) fn target_entry<F: Fn(&str) -> Result<Option<String>, String>>(
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
pub(super) fn user_filters<F: Fn(&str) -> Result<Option<String>, String>>(
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

pub(super) fn folder_setting<F: Fn(&str) -> Result<Option<String>, String>>(
    r: &Reader<F>,
    base: Option<&String>,
) -> Result<Option<String>, ConfigError> {
    match r.raw("grouper_folder")? {
        None => Ok(base.cloned()),
        Some(f) => parse_group_path("grouper_folder", &f).map(Some),
    }
}

/// `google_group` and `google_group_settings`, else `base`'s.
pub(super) fn google_group_setting<F: Fn(&str) -> Result<Option<String>, String>>(
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
pub(super) fn google_settings_table(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
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
pub(super) fn provisioning_setting<F: Fn(&str) -> Result<Option<String>, String>>(
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
pub(super) fn limits<F: Fn(&str) -> Result<Option<String>, String>>(
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
pub(super) fn differing_keys(spec_a: &TargetSpec, spec_b: &TargetSpec) -> Vec<&'static str> {
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
