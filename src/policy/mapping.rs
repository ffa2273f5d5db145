//! From hub users to Grouper subject values: which users a target selects, and what subject
//! each selected user maps to.

use crate::error::SyncError;
use crate::model::Member;
use crate::model::{Mode, Selection, Side, SubjectFrom, Target, TargetSpec, UserFilters};
use crate::settings::{self};
use crate::wire::hub::{AuthState, ListedUser};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Why a selected user could not be mapped to a subject. Never fatal: the user is skipped and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    NoAuthState,
    NoPathMatched,
    InvalidValue,
}

/// One subject per `auth_state` mapping (`Settings::auth_state_mappings` order); `None`: the
/// record holds no usable subject for that mapping. The auth_state itself is never kept.
pub type MappedSubjects = Vec<Option<String>>;

/// One user's information as far as the pass could read it.
#[derive(Debug, Clone, PartialEq)]
pub enum UserRecord {
    /// Only the list entry was needed (username or user_info mapping).
    Listed,
    /// `GET /users/{name}` answered in this pass.
    Read(MappedSubjects),
    /// Taken from the user state: read in an earlier pass, and nothing since says it changed.
    Remembered(MappedSubjects),
    /// The user was deleted between the list and the read.
    Vanished,
    /// The user's record could not be read (after retries).
    Unread,
}

/// A listed user and what the pass learned of their record.
#[derive(Debug, Clone, PartialEq)]
pub struct HubUser {
    pub name: String,
    pub admin: bool,
    /// `created` and `last_activity` as listed (µs since the epoch), for the user state.
    pub created: Option<i64>,
    pub last_activity: Option<i64>,
    /// The listed `user_info`, when a target maps from it.
    pub user_info: Option<Value>,
    /// The hub groups the user is in, when a target selects by hub group.
    pub groups: Vec<String>,
    /// Seconds from the user's `last_activity` to the hub's clock (`None`: never active).
    pub idle_seconds: Option<i64>,
    pub server_running: bool,
    pub record: UserRecord,
    /// Per mapping, a subject an earlier read found and the latest did not (`None`: nothing
    /// lost). The user is still in the hub, so the membership of a lost subject is kept.
    pub lost: Option<MappedSubjects>,
}

/// Does the user pass the target's filters (activity, running server, excluded names)?
pub fn passes_filters(filters: &UserFilters, user: &HubUser) -> bool {
    filters.active_within_days.is_none_or(|days| {
        user.idle_seconds
            .is_some_and(|s| s <= i64::from(days) * 86_400)
    }) && (!filters.only_active_servers || user.server_running)
        && filters
            .exclude_users
            .as_ref()
            .is_none_or(|p| !p.matches(&user.name))
}

/// Is the user in the hub group a to_grouper target selects from (every user without one, and
/// every user for to_hub, whose hub group is what it writes)?
fn in_selected_group(target: &Target, user: &HubUser) -> bool {
    match &target.side {
        Side::ToGrouper { hub_group: Some(g) } => user.groups.iter().any(|ug| ug == g),
        Side::ToGrouper { hub_group: None } | Side::ToHub { .. } => true,
    }
}

/// Does the target select this user (admins only if included; its hub group; the filters)?
pub fn selects(target: &Target, user: &HubUser) -> bool {
    (!user.admin || target.rules.include_admins)
        && in_selected_group(target, user)
        && passes_filters(&target.rules.filters, user)
}

impl HubUser {
    /// A listed user, with the hub's clock (µs since the epoch) to measure activity against.
    pub fn listed(u: ListedUser, now_us: i64) -> HubUser {
        HubUser {
            name: u.name,
            admin: u.admin,
            created: u.created,
            idle_seconds: u.last_activity.map(|t| (now_us - t).max(0) / 1_000_000),
            last_activity: u.last_activity,
            user_info: u.user_info,
            groups: u.groups,
            server_running: u.server_running,
            record: UserRecord::Listed,
            lost: None,
        }
    }
}

/// The selected users of one target by subject, with the counts the report needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Each subject with the selected users that map to it, in listing order.
    pub users_by_subject: BTreeMap<String, Vec<String>>,
    pub selected: usize,
    pub admins_skipped: usize,
    pub filtered: usize,
    pub mapped: usize,
    pub unmapped: usize,
    pub duplicates: usize,
    pub unread: usize,
    /// Lost subjects of selected users who map to no subject now, each with those users: their
    /// membership is kept (the removal withheld) until a read finds a subject again or an
    /// admin approves it.
    pub lost: BTreeMap<String, Vec<String>>,
}

/// A subject value: trimmed, non-empty, printable, and short enough for a Grouper lookup.
fn valid_subject(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t.len() <= 1024 && !t.chars().any(char::is_control)).then(|| t.to_string())
}

fn lookup_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |v, key| v.as_object()?.get(key))
}

/// The first path of `paths` that holds a usable string in `value`.
pub fn subject_in(value: &Value, paths: &[Vec<String>]) -> Result<String, Unmapped> {
    // Only strings count: the original once sent Canvas's numeric user id, the wrong identity.
    let mut found_invalid = false;
    for path in paths {
        match lookup_path(value, path) {
            Some(Value::String(s)) => match valid_subject(s) {
                Some(v) => return Ok(v),
                None => found_invalid = true,
            },
            Some(Value::Null) | None => {}
            Some(_) => found_invalid = true,
        }
    }
    Err(if found_invalid {
        Unmapped::InvalidValue
    } else {
        Unmapped::NoPathMatched
    })
}

/// Maps a freshly read `auth_state` for every mapping in use, so that it need not be kept.
pub fn map_auth_state(state: &AuthState, mappings: &[&Vec<Vec<String>>]) -> MappedSubjects {
    mappings
        .iter()
        .map(|paths| match state {
            AuthState::Present(v) => subject_in(v, paths).ok(),
            AuthState::Null => None,
        })
        .collect()
}

fn from_record(
    paths: &Vec<Vec<String>>,
    record: &UserRecord,
    mappings: &[&Vec<Vec<String>>],
) -> Result<String, Unmapped> {
    let subjects = match record {
        UserRecord::Read(s) | UserRecord::Remembered(s) => s,
        _ => return Err(Unmapped::NoAuthState),
    };
    let index = mappings
        .iter()
        .position(|m| *m == paths)
        .ok_or(Unmapped::NoAuthState)?;
    subjects
        .get(index)
        .cloned()
        .flatten()
        .ok_or(Unmapped::NoPathMatched)
}

/// The subject a target's mapping finds in the listed `user_info` alone, if any.
fn from_user_info(from: &SubjectFrom, user: &HubUser) -> Option<String> {
    match (from, &user.user_info) {
        (SubjectFrom::UserInfo { paths, .. }, Some(info)) => subject_in(info, paths).ok(),
        _ => None,
    }
}

/// The subject the user's mapping for this target lost, if any (the mapping finds none now).
fn lost_subject(
    from: &SubjectFrom,
    user: &HubUser,
    mappings: &[&Vec<Vec<String>>],
) -> Option<String> {
    let paths = from.auth_state_paths()?;
    let index = mappings.iter().position(|m| *m == paths)?;
    user.lost.as_ref()?.get(index)?.clone()
}

/// Does this target need the user's record (one `GET /users/{name}`) to map them?
pub fn needs_record(target: &Target, user: &HubUser) -> bool {
    if !selects(target, user) {
        return false;
    }
    match &target.rules.subject_from {
        SubjectFrom::Username { .. } => false,
        SubjectFrom::AuthState(_) => true,
        SubjectFrom::UserInfo { paths, .. } => user
            .user_info
            .as_ref()
            .is_none_or(|info| subject_in(info, paths).is_err()),
    }
}

/// Maps one user to a subject value.
pub fn subject_for(
    from: &SubjectFrom,
    user: &HubUser,
    mappings: &[&Vec<Vec<String>>],
) -> Result<String, Unmapped> {
    match from {
        SubjectFrom::Username { template } => {
            valid_subject(&template.replace("{name}", &user.name)).ok_or(Unmapped::InvalidValue)
        }
        SubjectFrom::AuthState(paths) => from_record(paths, &user.record, mappings),
        SubjectFrom::UserInfo { fallback, .. } => match from_user_info(from, user) {
            Some(subject) => Ok(subject),
            None => from_record(fallback, &user.record, mappings),
        },
    }
}

/// Selects a target's users and maps them; duplicates collapse into one subject.
pub fn desired_members(
    target: &Target,
    users: &[HubUser],
    mappings: &[&Vec<Vec<String>>],
) -> Desired {
    let mut d = Desired::default();
    for user in users {
        if user.admin && !target.rules.include_admins {
            d.admins_skipped += 1;
            continue;
        }
        if !selects(target, user) {
            if in_selected_group(target, user) {
                d.filtered += 1;
            }
            continue;
        }
        match user.record {
            UserRecord::Vanished => continue,
            UserRecord::Unread => {
                d.selected += 1;
                d.unread += 1;
                continue;
            }
            _ => d.selected += 1,
        }
        match subject_for(&target.rules.subject_from, user, mappings) {
            Ok(subject) => {
                d.mapped += 1;
                let names = d.users_by_subject.entry(subject).or_default();
                if !names.is_empty() {
                    d.duplicates += 1;
                }
                names.push(user.name.clone());
            }
            Err(_) => {
                d.unmapped += 1;
                if let Some(lost) = lost_subject(&target.rules.subject_from, user, mappings) {
                    d.lost.entry(lost).or_default().push(user.name.clone());
                }
            }
        }
    }
    d
}

/// A target of this pass, or why a group its pattern reached cannot be one (that group fails
/// alone).
pub type PassTarget = Result<Target, Unresolved>;

/// A group a pattern reached that cannot be a target, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    pub group: String,
    pub mode: Mode,
    pub error: SyncError,
}

/// The targets of this pass: a pattern target becomes one target per hub group (of the listed
/// users, in name order) whose whole name matches. A template that makes no valid group name,
/// or a group that an earlier entry already targets, is an error for that group alone.
pub fn expand_targets(targets: &[TargetSpec], users: &[HubUser]) -> Vec<PassTarget> {
    let names: BTreeSet<&str> = users
        .iter()
        .flat_map(|u| u.groups.iter().map(String::as_str))
        .collect();
    let mut out: Vec<PassTarget> = Vec::new();
    for t in targets {
        let Selection::HubGroupPattern(pattern) = &t.selection else {
            out.extend(t.single().map(Ok));
            continue;
        };
        for name in names.iter().copied() {
            let Some(captures) = pattern.captures(name) else {
                continue;
            };
            // the label of a group that cannot be made: the filled name, else the template
            let (label, made) = match settings::fill_template(&t.group_path, &captures) {
                Err(why) => (t.group_path.clone(), Err(why)),
                Ok(path) => {
                    let made = settings::parse_group_path("grouper_group", &path)
                        .map_err(|e| format!("it makes the group name {path:?}: {}", e.message));
                    (path, made)
                }
            };
            out.push(match made {
                Ok(group_path) => Ok(Target {
                    group_path,
                    side: Side::ToGrouper {
                        hub_group: Some(name.to_string()),
                    },
                    rules: t.rules.clone(),
                }),
                Err(why) => Err(Unresolved {
                    group: label,
                    mode: t.rules.mode,
                    error: SyncError::config(format!(
                        "hub group {name:?} cannot fill {}: {why}",
                        t.group_path
                    )),
                }),
            });
        }
    }
    let mut seen = BTreeSet::new();
    for entry in out.iter_mut() {
        if let Ok(t) = entry {
            if !seen.insert(t.group_path.clone()) {
                let group = t.group_path.clone();
                *entry = Err(Unresolved {
                    error: SyncError::config(format!(
                        "{group} is already the target of an earlier entry; each group may have one"
                    )),
                    group,
                    mode: t.rules.mode,
                });
            }
        }
    }
    out
}

impl Desired {
    pub fn subjects(&self) -> BTreeSet<String> {
        self.users_by_subject.keys().cloned().collect()
    }
}

/// to_hub: the hub users a Grouper group's members map back to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HubMembers {
    /// The selected hub users whose subject the group holds.
    pub names: BTreeSet<String>,
    /// Managed members no selected hub user maps to (skipped; hub users are never created).
    pub without_hub_user: usize,
    /// Members the target does not manage (groups, internal subjects, other sources).
    pub unmanaged: usize,
}

/// Maps a Grouper group's members back to the selected hub users through the target's subject
/// mapping (`desired` from [`desired_members`]): a member is a hub user when its key (subject
/// id, or identifier attribute) is a selected user's subject; every user with it counts.
pub fn hub_members(target: &Target, desired: &Desired, members: &[Member]) -> HubMembers {
    let mut out = HubMembers::default();
    for m in members {
        let key = match (
            &m.key,
            crate::policy::plan::is_managed(m, target.rules.source_id.as_deref()),
        ) {
            (Some(key), true) => key,
            _ => {
                out.unmanaged += 1;
                continue;
            }
        };
        match desired.users_by_subject.get(key) {
            Some(names) => out.names.extend(names.iter().cloned()),
            None => out.without_hub_user += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, RemovalLimits, SubjectLookup, TargetRules};

    #[test]
    fn a_pattern_becomes_one_target_per_matching_hub_group() {
        let from = || SubjectFrom::Username {
            template: "{name}".into(),
        };
        let t = pattern_spec(
            target(from(), false),
            "edu:x:course-{1}",
            "course-([a-z0-9]+)",
        );
        let fixed = TargetSpec {
            group_path: "edu:x:course-data8".into(),
            selection: Selection::HubGroup("data8-staff".into()),
            rules: target(from(), false).rules,
        };
        let mut ana = user("ana", false, UserRecord::Listed);
        ana.groups = vec!["course-data8".into(), "gpu".into(), "course-".into()];
        let mut ben = user("ben", false, UserRecord::Listed);
        ben.groups = vec!["course-cs61a".into(), "course-x::y".into()];
        let resolved = expand_targets(&[fixed, t], &[ana, ben]);
        let shown: Vec<String> = resolved
            .iter()
            .map(|r| match r {
                Ok(t) => format!("{} <- {}", t.group_path, t.hub_group().unwrap_or("")),
                Err(u) => format!("error {}: {}", u.group, u.error.message),
            })
            .collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert_eq!(shown[0], "edu:x:course-data8 <- data8-staff");
        assert_eq!(shown[1], "edu:x:course-cs61a <- course-cs61a");
        assert!(
            shown[2]
                .starts_with("error edu:x:course-data8: edu:x:course-data8 is already the target"),
            "{shown:?}"
        );
        // a name the template turns into an invalid group fails alone
        let odd = pattern_spec(target(from(), false), "edu:x:{1}", "team-(.*)");
        let mut cy = user("cy", false, UserRecord::Listed);
        cy.groups = vec!["team-".into(), "team-ok".into()];
        let resolved = expand_targets(&[odd], &[cy]);
        assert!(
            matches!(&resolved[0], Err(u) if u.error.message.contains("\"team-\"")),
            "{resolved:?}"
        );
        assert!(matches!(&resolved[1], Ok(t) if t.group_path == "edu:x:ok"));
    }

    #[test]
    fn captures_cannot_smuggle_a_folder_or_a_field_into_the_group_name() {
        let t = pattern_spec(
            target(
                SubjectFrom::Username {
                    template: "{name}".into(),
                },
                false,
            ),
            "edu:x:courses:{1}-{2}",
            "course-([^-]*)-(.*)",
        );
        let mut u = user("ana", false, UserRecord::Listed);
        u.groups = vec![
            "course-a:b-1".into(),    // ':' would make edu:x:courses:a a folder
            "course-{2}-evil".into(), // '{2}' must not be filled in a second time
            "course-data8-2026".into(),
        ];
        let resolved = expand_targets(&[t], &[u]);
        let shown: Vec<String> = resolved
            .iter()
            .map(|r| match r {
                Ok(t) => t.group_path.clone(),
                Err(u) => format!("error: {}", u.error.message),
            })
            .collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(
            shown[0].starts_with("error: hub group \"course-a:b-1\"")
                && shown[0].contains("capture {1} holds ':'"),
            "{shown:?}"
        );
        assert!(
            shown[2].starts_with("error: hub group \"course-{2}-evil\"")
                && shown[2].contains("capture {1} holds '{'"),
            "{shown:?}"
        );
        assert_eq!(shown[1], "edu:x:courses:data8-2026", "names in order");
    }

    #[test]
    fn filters_leave_out_idle_serverless_and_excluded_users() {
        let mut t = target(
            SubjectFrom::Username {
                template: "{name}".into(),
            },
            false,
        );
        let at = |name: &str, idle_days: Option<i64>, running: bool| {
            let mut u = user(name, false, UserRecord::Listed);
            u.idle_seconds = idle_days.map(|d| d * 86_400);
            u.server_running = running;
            u
        };
        let users = [
            at("fresh", Some(1), true),
            at("stale", Some(40), true),
            at("never", None, false),
            at("stopped", Some(2), false),
            at("test-bot", Some(0), true),
        ];
        let names = |t: &Target| {
            let d = desired_members(t, &users, &[]);
            (d.subjects().into_iter().collect::<Vec<_>>(), d.filtered)
        };
        assert_eq!(names(&t).1, 0);
        t.rules.filters.active_within_days = Some(30);
        assert_eq!(
            names(&t),
            (vec!["fresh".into(), "stopped".into(), "test-bot".into()], 2)
        );
        t.rules.filters.only_active_servers = true;
        assert_eq!(names(&t), (vec!["fresh".into(), "test-bot".into()], 3));
        t.rules.filters.exclude_users =
            Some(settings::name_pattern("exclude_users_pattern", "test-.*").unwrap());
        assert_eq!(names(&t), (vec!["fresh".into()], 4));
        // whole names only: "fresh" is not excluded by a pattern that matches part of it
        t.rules.filters = UserFilters {
            exclude_users: Some(settings::name_pattern("exclude_users_pattern", "res").unwrap()),
            ..UserFilters::default()
        };
        assert_eq!(names(&t).1, 0);
        // filters decide whose record is read, too
        t.rules.subject_from = SubjectFrom::AuthState(default_paths());
        t.rules.filters.only_active_servers = true;
        assert!(needs_record(&t, &users[0]) && !needs_record(&t, &users[2]));
    }

    #[test]
    fn grouper_members_map_back_to_every_hub_user_with_their_subject() {
        let p = default_paths();
        let mut t = target(SubjectFrom::AuthState(p.clone()), true);
        t.side = Side::ToHub {
            hub_group: "gpu".into(),
        };
        let mut boss = read("boss", true, json!({"canvas_user": {"login_id": "9"}}));
        boss.groups = vec!["other".into()];
        let users = vec![
            read("ana", false, json!({"canvas_user": {"login_id": "1"}})),
            read("ana2", false, json!({"oauth_user": {"login_id": "1"}})),
            read("ben", false, json!({"canvas_user": {"login_id": "2"}})),
            boss,
            user("cy", false, UserRecord::Read(vec![None])),
        ];
        let d = desired_members(&t, &users, &[&p]);
        // to_hub selects every user (not the hub group's members: that group is what it writes)
        assert_eq!(d.selected, 5);
        let member = |id: &str, source: &str| Member {
            id: id.into(),
            source_id: source.into(),
            key: Some(id.into()),
        };
        let members = [
            member("1", "ldap"),
            member("9", "ldap"),
            member("77", "ldap"),
            member("edu:x:staff", "g:gsa"),
        ];
        let m = hub_members(&t, &d, &members);
        assert_eq!(
            m.names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["ana", "ana2", "boss"]
        );
        assert_eq!((m.without_hub_user, m.unmanaged), (1, 1));
        t.rules.include_admins = false;
        let d = desired_members(&t, &users, &[&p]);
        assert!(!hub_members(&t, &d, &members).names.contains("boss"));
    }

    #[test]
    fn a_hub_group_target_selects_its_members_only() {
        let mut t = target(
            SubjectFrom::Username {
                template: "{name}".into(),
            },
            false,
        );
        t.side = Side::ToGrouper {
            hub_group: Some("course-101".into()),
        };
        let mut ana = user("ana", false, UserRecord::Listed);
        ana.groups = vec!["course-101".into(), "gpu".into()];
        let ben = user("ben", false, UserRecord::Listed);
        let mut boss = user("boss", true, UserRecord::Listed);
        boss.groups = vec!["course-101".into()];
        let users = [ana.clone(), ben.clone(), boss.clone()];
        let d = desired_members(&t, &users, &[]);
        assert_eq!(d.subjects().into_iter().collect::<Vec<_>>(), ["ana"]);
        assert_eq!((d.selected, d.admins_skipped), (1, 1));
        // auth_state is read only for the users a target selects
        t.rules.subject_from = SubjectFrom::AuthState(default_paths());
        assert!(needs_record(&t, &ana) && !needs_record(&t, &ben) && !needs_record(&t, &boss));
        t.side = Side::ToGrouper { hub_group: None };
        assert!(needs_record(&t, &ben));
    }
    use serde_json::json;

    fn paths(text: &str) -> Vec<Vec<String>> {
        text.split(',')
            .map(|p| p.split('.').map(String::from).collect())
            .collect()
    }

    fn default_paths() -> Vec<Vec<String>> {
        paths("canvas_user.login_id,oauth_user.login_id")
    }

    fn user(name: &str, admin: bool, record: UserRecord) -> HubUser {
        HubUser {
            name: name.into(),
            admin,
            groups: Vec::new(),
            idle_seconds: None,
            server_running: false,
            created: None,
            last_activity: None,
            user_info: None,
            record,
            lost: None,
        }
    }

    /// A user whose auth_state was read in this pass, mapped with the default paths.
    fn read(name: &str, admin: bool, state: Value) -> HubUser {
        let p = default_paths();
        user(
            name,
            admin,
            UserRecord::Read(map_auth_state(&AuthState::Present(state), &[&p])),
        )
    }

    /// A pattern target with `target`'s rules.
    fn pattern_spec(target: Target, template: &str, pattern: &str) -> TargetSpec {
        TargetSpec {
            group_path: template.into(),
            selection: Selection::HubGroupPattern(settings::group_pattern(pattern).unwrap()),
            rules: target.rules,
        }
    }

    fn target(from: SubjectFrom, include_admins: bool) -> Target {
        Target {
            group_path: "a:b".into(),
            side: Side::ToGrouper { hub_group: None },
            rules: TargetRules {
                filters: UserFilters::default(),
                create_missing: false,
                grouper_folder: None,
                include_admins,
                subject_from: from,
                lookup: SubjectLookup::SubjectId,
                source_id: None,
                mode: Mode::Mirror,
                limits: RemovalLimits {
                    max_removals: 10,
                    max_fraction: 0.5,
                    fraction_floor: 5,
                    max_per_day: 100,
                    max_fraction_per_day: 0.2,
                },
                protected: Default::default(),
            },
        }
    }

    #[test]
    fn canvas_first_then_oauth() {
        let p = default_paths();
        let both = json!({"canvas_user": {"login_id": "111"}, "oauth_user": {"login_id": "222"}});
        assert_eq!(subject_in(&both, &p), Ok("111".into()));
        let oauth = json!({"oauth_user": {"login_id": " 222 "}, "access_token": "x"});
        assert_eq!(subject_in(&oauth, &p), Ok("222".into()));
        let canvas_null =
            json!({"canvas_user": {"login_id": null}, "oauth_user": {"login_id": "333"}});
        assert_eq!(subject_in(&canvas_null, &p), Ok("333".into()));
    }

    #[test]
    fn unmappable_values_are_classified() {
        let p = default_paths();
        assert_eq!(subject_in(&json!({}), &p), Err(Unmapped::NoPathMatched));
        assert_eq!(
            subject_in(&json!({"canvas_user": "flat"}), &p),
            Err(Unmapped::NoPathMatched)
        );
        // A numeric id is not a login id: refuse rather than send the wrong identity.
        for bad in [json!(42), json!("  "), json!("a\nb")] {
            assert_eq!(
                subject_in(&json!({"canvas_user": {"login_id": bad}}), &p),
                Err(Unmapped::InvalidValue)
            );
        }
        let from = SubjectFrom::AuthState(p.clone());
        let null = user(
            "u",
            false,
            UserRecord::Read(map_auth_state(&AuthState::Null, &[&p])),
        );
        assert_eq!(
            subject_for(&from, &null, &[&p]),
            Err(Unmapped::NoPathMatched)
        );
        let unread = user("u", false, UserRecord::Unread);
        assert_eq!(
            subject_for(&from, &unread, &[&p]),
            Err(Unmapped::NoAuthState)
        );
    }

    #[test]
    fn each_mapping_in_use_is_mapped_once_per_read() {
        let (a, b) = (paths("x.id"), paths("y.id"));
        let state = AuthState::Present(json!({"x": {"id": "1"}, "y": {"id": "2"}}));
        let u = user(
            "u",
            false,
            UserRecord::Read(map_auth_state(&state, &[&a, &b])),
        );
        assert_eq!(
            subject_for(&SubjectFrom::AuthState(b.clone()), &u, &[&a, &b]),
            Ok("2".into())
        );
        let remembered = user(
            "u",
            false,
            UserRecord::Remembered(vec![Some("1".into()), None]),
        );
        assert_eq!(
            subject_for(&SubjectFrom::AuthState(a.clone()), &remembered, &[&a, &b]),
            Ok("1".into())
        );
        assert_eq!(
            subject_for(&SubjectFrom::AuthState(b.clone()), &remembered, &[&a, &b]),
            Err(Unmapped::NoPathMatched)
        );
    }

    #[test]
    fn username_template() {
        let from = SubjectFrom::Username {
            template: "{name}@example.edu".into(),
        };
        assert_eq!(
            subject_for(&from, &user("ana", false, UserRecord::Listed), &[]),
            Ok("ana@example.edu".into())
        );
    }

    #[test]
    fn user_info_first_then_the_auth_state_read() {
        let fallback = default_paths();
        let from = SubjectFrom::UserInfo {
            paths: paths("login_id"),
            fallback: fallback.clone(),
        };
        let t = target(from.clone(), false);
        let mut listed = user("a", false, UserRecord::Listed);
        listed.user_info = Some(json!({"login_id": "111"}));
        let needs = |u: &HubUser, t: &Target| needs_record(t, u);
        assert!(!needs(&listed, &t), "the list alone is enough");
        assert_eq!(subject_for(&from, &listed, &[&fallback]), Ok("111".into()));
        let mut without = read("b", false, json!({"canvas_user": {"login_id": "222"}}));
        without.user_info = Some(json!({"name": "b"}));
        assert!(needs(&without, &t), "no login id in user_info yet");
        assert_eq!(subject_for(&from, &without, &[&fallback]), Ok("222".into()));
        let admin = user("root", true, UserRecord::Listed);
        assert!(!needs(&admin, &t), "admins are not selected");
        let auth_state = target(SubjectFrom::AuthState(fallback), false);
        assert!(needs(&without, &auth_state));
    }

    #[test]
    fn selection_counts_and_dedup() {
        let p = default_paths();
        let users = vec![
            read("admin", true, json!({"canvas_user": {"login_id": "9"}})),
            read("a", false, json!({"canvas_user": {"login_id": "1"}})),
            read("a2", false, json!({"oauth_user": {"login_id": "1"}})),
            user(
                "b",
                false,
                UserRecord::Read(map_auth_state(&AuthState::Null, &[&p])),
            ),
            user("c", false, UserRecord::Unread),
            user("d", false, UserRecord::Vanished),
        ];
        let from = SubjectFrom::AuthState(p.clone());
        let d = desired_members(&target(from.clone(), false), &users, &[&p]);
        assert_eq!(d.subjects().into_iter().collect::<Vec<_>>(), ["1"]);
        assert_eq!(
            (
                d.selected,
                d.admins_skipped,
                d.mapped,
                d.unmapped,
                d.duplicates,
                d.unread
            ),
            (4, 1, 2, 1, 1, 1)
        );
        let with_admins = desired_members(&target(from, true), &users, &[&p]);
        assert!(with_admins.users_by_subject.contains_key("9"));
        assert_eq!(with_admins.admins_skipped, 0);
    }
}
