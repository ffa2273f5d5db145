//! A read-only check of a configuration: the hub token's identity and scopes, the targets as a
//! pass would resolve them (patterns expanded from the hub's groups), the scopes each needs, and
//! that the Grouper credentials can read each Grouper group. Writes nothing.

use crate::error::{ErrorKind, Service, SyncError};
use crate::model::{Direction, Selection, Side, Target, TargetSpec};
use crate::policy::mapping::{expand_targets, HubUser};
use crate::settings::Settings;
use crate::sync::google;
use crate::sync::grouper_client;
use crate::sync::hub_reader;
use crate::sync::log::LogTo;
use crate::sync::provisioning::{self, Marks};
use crate::sync::session::Session;
use crate::wire::grouper;
use crate::wire::http::Transport;
use crate::wire::hub;
use serde::Serialize;

/// One target as `check` resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetCheck {
    pub group: String,
    pub direction: Direction,
    pub hub_group: Option<String>,
    /// The hub scopes this target needs.
    pub scopes: Vec<String>,
    /// Members on the first page (up to 10) of the Grouper group; `None` when it was not read.
    pub grouper_members: Option<usize>,
    /// Whether the hub group exists (to_hub targets; `None` when not looked up).
    pub hub_group_exists: Option<bool>,
    /// The group's provisioning marks for `provision_to` (`None`: none configured, or the
    /// group was not read).
    pub provisioning: Option<Marks>,
    /// What an admin should know: groups that would be created, managed-groups caveats.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Who the hub says the token belongs to.
    pub hub_identity: Option<String>,
    pub hub_scopes: Vec<String>,
    /// Scopes the sync needs that the token does not have.
    pub missing_scopes: Vec<String>,
    /// The groups that could be read, with the number of members on the first page.
    pub groups_readable: Vec<(String, usize)>,
    /// The targets, patterns expanded.
    pub targets: Vec<TargetCheck>,
    pub errors: Vec<SyncError>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.missing_scopes.is_empty()
    }
}

/// The hub scopes one target needs. The hub lists a token's scopes expanded (`read:users`
/// with its `read:users:…` subscopes, `groups` with `read:groups`…), so each is named as the
/// narrowest scope that grants it.
pub fn target_scopes(target: &Target) -> Vec<String> {
    let mut scopes = vec!["list:users".to_string()];
    let mut add = |s: &str| {
        if !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_string());
        }
    };
    // auth_state (also user_info's fallback) needs a read of the user's record
    if target.rules.subject_from.auth_state_paths().is_some() {
        add("read:users");
        add("admin:auth_state");
    }
    if target.hub_group().is_some() {
        add("read:users:groups");
    }
    if target.rules.filters.active_within_days.is_some() {
        add("read:users:activity");
    }
    if target.rules.filters.only_active_servers {
        add("read:users");
    }
    if target.direction() == Direction::ToHub {
        add("read:groups:name");
        add("groups");
        if target.rules.create_missing {
            add("admin:groups");
        }
    }
    scopes
}

/// Does a token with `have` hold `scope` (for `group`, where the scope may be filtered to one
/// group, `groups!group=gpu`)? `read:users` includes its `read:users:…` subscopes.
fn holds(have: &[String], scope: &str, group: Option<&str>) -> bool {
    have.iter().any(|h| {
        h == scope
            || group.is_some_and(|g| *h == format!("{scope}!group={g}"))
            || scope
                .strip_prefix(h.as_str())
                .is_some_and(|rest| rest.starts_with(':') && h == "read:users")
    })
}

/// The users as a pass lists them (groups only), to resolve patterns; `None` when no target has
/// a pattern.
fn listed_users(s: &mut Session) -> Result<Option<Vec<HubUser>>, SyncError> {
    if s.settings
        .targets
        .iter()
        .all(|t| !matches!(t.selection, Selection::HubGroupPattern(_)))
    {
        return Ok(None);
    }
    Ok(Some(hub_reader::list_users(s, &mut |_| 0)?.users))
}

pub fn run(settings: &Settings, transport: &mut dyn Transport, log_to: LogTo) -> CheckReport {
    let mut s = Session::new(settings, transport).logging_to(log_to);
    let mut report = CheckReport {
        hub_identity: None,
        hub_scopes: Vec::new(),
        missing_scopes: Vec::new(),
        groups_readable: Vec::new(),
        targets: Vec::new(),
        errors: Vec::new(),
    };
    let whoami = hub::whoami_request(&settings.hub_api_url, settings.hub_token.expose());
    match s
        .send(Service::Hub, "JupyterHub /user", &whoami)
        .and_then(|resp| hub::parse_whoami(&resp))
    {
        Err(e) => report.errors.push(e),
        Ok(owner) => {
            report.hub_identity = Some(owner.identity);
            report.hub_scopes = owner.scopes;
        }
    }
    let users = match listed_users(&mut s) {
        Ok(users) => users,
        Err(e) => {
            report.errors.push(e);
            None
        }
    };
    let resolved = match &users {
        Some(users) => expand_targets(&settings.targets, users),
        // the listing failed: the pattern targets are left out (the error says why)
        None => settings
            .targets
            .iter()
            .filter_map(TargetSpec::single)
            .map(Ok)
            .collect(),
    };
    let conn = grouper_client::connection(settings);
    for entry in resolved {
        let target = match entry {
            Ok(t) => t,
            Err(unresolved) => {
                report.errors.push(unresolved.error);
                continue;
            }
        };
        let mut checked = TargetCheck {
            group: target.group_path.clone(),
            direction: target.direction(),
            hub_group: target.hub_group().map(String::from),
            scopes: target_scopes(&target),
            grouper_members: None,
            hub_group_exists: None,
            provisioning: None,
            notes: Vec::new(),
        };
        if report.hub_identity.is_some() {
            for scope in &checked.scopes {
                let group = target.hub_group();
                if !holds(&report.hub_scopes, scope, group)
                    && !report.missing_scopes.contains(scope)
                {
                    report.missing_scopes.push(scope.clone());
                }
            }
        }
        if let Side::ToHub { hub_group: group } = &target.side {
            match hub_reader::group_exists(&mut s, group) {
                Ok(true) => checked.hub_group_exists = Some(true),
                Ok(false) if target.rules.create_missing => {
                    checked.hub_group_exists = Some(false);
                    checked.notes.push(format!(
                        "the hub group {group} does not exist; the first pass creates it"
                    ));
                }
                Ok(false) => {
                    checked.hub_group_exists = Some(false);
                    report.errors.push(SyncError::new(
                        ErrorKind::GroupNotFound,
                        format!("the hub group {group:?} does not exist; create it or set create_missing_groups = true"),
                    ));
                }
                Err(e) => report.errors.push(e),
            }
            checked.notes.push(format!(
                "if the authenticator manages groups (manage_groups = True), every login sets a user's groups to the authenticator's list and drops {group} until the next pass; keep it with the post_auth_hook in docs/targets.md"
            ));
        }
        let req = grouper::get_members_request(
            &conn,
            &target.group_path,
            &target.rules.lookup,
            target.rules.source_id.as_deref(),
            grouper::MemberFilter::for_target(&target),
            (10, 1),
        );
        let what = format!("reading members of {}", target.group_path);
        let parsed = s.send(Service::Grouper, &what, &req).and_then(|resp| {
            grouper::parse_get_members(&target.group_path, &target.rules.lookup, &resp)
        });
        match parsed {
            Ok(page) => {
                checked.grouper_members = Some(page.members.len());
                report
                    .groups_readable
                    .push((target.group_path.clone(), page.members.len()));
                if !target.rules.provisioning.provision_to.is_empty() {
                    match check_marks(&mut s, &conn, &target, &mut checked.notes) {
                        Ok(marks) => checked.provisioning = Some(marks),
                        Err(e) => report.errors.push(e),
                    }
                }
                if let Err(e) = check_google(&mut s, &target, &mut checked.notes) {
                    report.errors.push(e);
                }
            }
            // only to_grouper targets create Grouper groups; to_hub creates the hub group
            Err(e)
                if e.kind == ErrorKind::GroupNotFound
                    && target.rules.create_missing
                    && target.direction() == Direction::ToGrouper =>
            {
                checked.notes.push(format!(
                    "{} does not exist; the first pass creates it in {}",
                    target.group_path,
                    target.rules.grouper_folder.as_deref().unwrap_or("?")
                ));
                let provision_to = &target.rules.provisioning.provision_to;
                if !provision_to.is_empty() {
                    checked.notes.push(format!(
                        "... and marks it for provisioning to {}",
                        provision_to.join(", ")
                    ));
                }
            }
            Err(e) => report.errors.push(e),
        }
        report.targets.push(checked);
    }
    report
}

/// Reads the target's Google Group, with a note on the fields a pass would set, and says what
/// the API cannot set.
fn check_google(
    s: &mut Session,
    target: &Target,
    notes: &mut Vec<String>,
) -> Result<(), SyncError> {
    // the settings outlive the session's borrow: the service account's key is not copied
    let settings = s.settings;
    let (Some(policy), Some(access)) = (&target.rules.google, settings.google.as_ref()) else {
        return Ok(());
    };
    notes.push(
        "who can view member email addresses has no field in the Groups Settings API: set it in the Google Groups or Admin console".into(),
    );
    let email = policy.address_for(&target.group_path);
    match google::read(s, access, &email)? {
        None => notes.push(format!(
            "the Google Group {email} does not exist yet: the provisioner makes it, and the first pass after that sets its settings"
        )),
        Some(current) => {
            let change = crate::wire::google::differing(&policy.settings, &current);
            if change.is_empty() {
                notes.push(format!("the Google Group {email} has the settings of google_group_settings"));
            } else {
                notes.push(format!(
                    "the Google Group {email}: a pass sets {} (they differ)",
                    change.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// Reads the group's marks for the target's provisioners, with a note for each one not marked.
fn check_marks(
    s: &mut Session,
    conn: &grouper::Connection,
    target: &Target,
    notes: &mut Vec<String>,
) -> Result<Marks, SyncError> {
    let group = &target.group_path;
    let marks = provisioning::read_marks(s, conn, target)?;
    for id in &marks.switched_off {
        notes.push(format!("{group} is marked for {id} with provisioningDoProvision off: {id} does not provision it, and the sync leaves that as it is"));
    }
    let fix = if target.rules.provisioning.ensure {
        "the next pass marks it (ensure_provisioning)"
    } else {
        "set ensure_provisioning = true, or mark it in the Grouper UI"
    };
    for id in &marks.missing {
        notes.push(format!("{group} is not marked for provisioning to {id} (or the Grouper user cannot read its marks: it needs ATTR_READ on etc:provisioning:provisioningDef): {fix}"));
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_users_holds_its_group_subscope() {
        let have = vec!["list:users".to_string(), "read:users".to_string()];
        assert!(holds(&have, "read:users:groups", None) && holds(&have, "list:users", None));
        assert!(!holds(&have, "admin:auth_state", None));
        assert!(!holds(
            &["read:users:name".to_string()],
            "read:users:groups",
            None
        ));
        let filtered = vec!["groups!group=gpu".to_string()];
        assert!(holds(&filtered, "groups", Some("gpu")));
        assert!(!holds(&filtered, "groups", Some("cpu")) && !holds(&filtered, "groups", None));
    }

    #[test]
    fn each_target_names_the_scopes_it_needs() {
        let s = crate::settings::for_tests(&[(
            "targets",
            r#"[{"grouper_group": "x:course", "hub_group": "course"},
                {"grouper_group": "x:gpu", "direction": "to_hub", "hub_group": "gpu", "create_missing_groups": true},
                {"grouper_group": "x:active", "active_within_days": 3}]"#,
        )]);
        let scopes: Vec<Vec<String>> = s
            .targets
            .iter()
            .map(|t| target_scopes(&t.single().unwrap()))
            .collect();
        assert_eq!(scopes[0], ["list:users", "read:users", "admin:auth_state"]);
        assert_eq!(
            scopes[1],
            [
                "list:users",
                "read:users",
                "admin:auth_state",
                "read:users:groups"
            ]
        );
        assert_eq!(
            scopes[2],
            [
                "list:users",
                "read:users",
                "admin:auth_state",
                "read:users:groups",
                "read:groups:name",
                "groups",
                "admin:groups"
            ]
        );
        assert_eq!(
            scopes[3].last().map(String::as_str),
            Some("read:users:activity")
        );
        let username = crate::settings::for_tests(&[("subject_from", "username")]);
        assert_eq!(
            target_scopes(&username.targets[0].single().unwrap()),
            ["list:users"]
        );
    }
}
