//! From hub users to Grouper subject values: which users a target selects, and what subject
//! each selected user maps to.

use crate::error::SyncError;
use crate::model::Member;
use crate::model::{Mode, Selection, Side, SubjectFrom, Target, TargetSpec, UserFilters};
use crate::policy::subject_users::{SubjectUsers, SubjectUsersBuilder};
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
    /// `created` and `last_activity` as listed, for the user state.
    pub created: ListedTime,
    pub last_activity: ListedTime,
    /// The listed `user_info`, when a target maps from it (boxed: most users have none kept, and
    /// a `Value` in place would cost every user 24 bytes).
    pub user_info: Option<Box<Value>>,
    /// The hub groups the user is in, when a target selects by hub group.
    pub groups: Vec<String>,
    /// Seconds from the user's `last_activity` to the hub's clock (`None`: never active), at most
    /// `u32::MAX` (136 years, beyond every `active_within_days`).
    pub idle_seconds: Option<u32>,
    pub server_running: bool,
    pub record: UserRecord,
    /// Per mapping, a subject an earlier read found and the latest did not (`None`: nothing
    /// lost). The user is still in the hub, so the membership of a lost subject is kept.
    pub lost: Option<MappedSubjects>,
}

/// A listed time (µs since the epoch) or none, in 8 bytes where an `Option<i64>` takes 16 (an
/// `i64` aligns to 8 in the component too): 1.6 MB of the component's memory at 100,000 users.
/// `i64::MIN` is none; no timestamp the hub sends (four-digit years) comes near it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedTime(i64);

impl ListedTime {
    pub const NONE: ListedTime = ListedTime(i64::MIN);

    pub fn get(self) -> Option<i64> {
        (self != Self::NONE).then_some(self.0)
    }
}

impl From<Option<i64>> for ListedTime {
    fn from(t: Option<i64>) -> Self {
        t.map_or(Self::NONE, ListedTime)
    }
}

/// Does the user pass the target's filters (activity, running server, excluded names)?
pub fn passes_filters(filters: &UserFilters, user: &HubUser) -> bool {
    filters.active_within_days.is_none_or(|days| {
        user.idle_seconds
            .is_some_and(|s| i64::from(s) <= i64::from(days) * 86_400)
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
            created: u.created.into(),
            idle_seconds: u.last_activity.map(|t| {
                u32::try_from((now_us.saturating_sub(t)).max(0) / 1_000_000).unwrap_or(u32::MAX)
            }),
            last_activity: u.last_activity.into(),
            user_info: u.user_info.map(Box::new),
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
    pub users_by_subject: SubjectUsers,
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
    let mut by_subject = SubjectUsersBuilder::with_capacity(users.len());
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
                by_subject.add(&subject, &user.name);
            }
            Err(_) => {
                d.unmapped += 1;
                if let Some(lost) = lost_subject(&target.rules.subject_from, user, mappings) {
                    d.lost.entry(lost).or_default().push(user.name.clone());
                }
            }
        }
    }
    d.users_by_subject = by_subject.build();
    d.duplicates = d.mapped - d.users_by_subject.subjects().count();
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
        let mut users = desired.users_by_subject.users_of(key).peekable();
        if users.peek().is_none() {
            out.without_hub_user += 1;
        }
        out.names.extend(users.map(String::from));
    }
    out
}

#[cfg(test)]
mod tests;
