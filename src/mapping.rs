//! From hub users to Grouper subject values: which users a target selects, and what subject
//! each selected user maps to.

use crate::hub::AuthState;
use crate::settings::{SubjectFrom, Target};
use serde_json::Value;
use std::collections::BTreeSet;

/// Why a selected user could not be mapped to a subject. Never fatal: the user is skipped and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    NoAuthState,
    NoPathMatched,
    InvalidValue,
}

/// One user's information as far as the pass could read it.
#[derive(Debug, Clone, PartialEq)]
pub enum UserRecord {
    /// Only the list entry was needed (username mapping).
    Listed,
    /// `GET /users/{name}` answered.
    Read(AuthState),
    /// The user was deleted between the list and the read.
    Vanished,
    /// The user's record could not be read (after retries).
    Unread,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HubUser {
    pub name: String,
    pub admin: bool,
    pub record: UserRecord,
}

/// The desired membership of one target, with the counts the report needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Desired {
    pub subjects: BTreeSet<String>,
    pub selected: usize,
    pub admins_skipped: usize,
    pub mapped: usize,
    pub unmapped: usize,
    pub duplicates: usize,
    pub unread: usize,
}

/// A subject value: trimmed, non-empty, printable, and short enough for a Grouper lookup.
fn valid_subject(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t.len() <= 1024 && !t.chars().any(char::is_control)).then(|| t.to_string())
}

fn lookup_path<'a>(state: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(state, |v, key| v.as_object()?.get(key))
}

/// Maps one user to a subject value.
pub fn subject_for(
    from: &SubjectFrom,
    name: &str,
    record: &UserRecord,
) -> Result<String, Unmapped> {
    match from {
        SubjectFrom::Username { template } => {
            valid_subject(&template.replace("{name}", name)).ok_or(Unmapped::InvalidValue)
        }
        SubjectFrom::AuthState(paths) => {
            let state = match record {
                UserRecord::Read(AuthState::Present(v)) => v,
                _ => return Err(Unmapped::NoAuthState),
            };
            // Only strings count: the original once sent Canvas's numeric user id, the wrong identity.
            let mut found_invalid = false;
            for path in paths {
                match lookup_path(state, path) {
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
    }
}

/// Selects a target's users and maps them; duplicates collapse into one subject.
pub fn desired_members(target: &Target, users: &[HubUser]) -> Desired {
    let mut d = Desired::default();
    for user in users {
        if user.admin && !target.include_admins {
            d.admins_skipped += 1;
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
        match subject_for(&target.subject_from, &user.name, &user.record) {
            Ok(subject) => {
                d.mapped += 1;
                if !d.subjects.insert(subject) {
                    d.duplicates += 1;
                }
            }
            Err(_) => d.unmapped += 1,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Mode, RemovalLimits, SubjectLookup};
    use serde_json::json;

    fn default_paths() -> SubjectFrom {
        SubjectFrom::AuthState(vec![
            vec!["canvas_user".into(), "login_id".into()],
            vec!["oauth_user".into(), "login_id".into()],
        ])
    }

    fn read(v: Value) -> UserRecord {
        UserRecord::Read(AuthState::Present(v))
    }

    fn target(from: SubjectFrom, include_admins: bool) -> Target {
        Target {
            group_path: "a:b".into(),
            include_admins,
            subject_from: from,
            lookup: SubjectLookup::SubjectId,
            source_id: None,
            mode: Mode::Mirror,
            limits: RemovalLimits {
                max_removals: 10,
                max_fraction: 0.5,
                fraction_floor: 5,
            },
            protected: Default::default(),
        }
    }

    #[test]
    fn canvas_first_then_oauth() {
        let from = default_paths();
        let both =
            read(json!({"canvas_user": {"login_id": "111"}, "oauth_user": {"login_id": "222"}}));
        assert_eq!(subject_for(&from, "u", &both), Ok("111".into()));
        let oauth = read(json!({"oauth_user": {"login_id": " 222 "}, "access_token": "x"}));
        assert_eq!(subject_for(&from, "u", &oauth), Ok("222".into()));
        let canvas_null =
            read(json!({"canvas_user": {"login_id": null}, "oauth_user": {"login_id": "333"}}));
        assert_eq!(subject_for(&from, "u", &canvas_null), Ok("333".into()));
    }

    #[test]
    fn unmappable_users_are_classified() {
        let from = default_paths();
        assert_eq!(
            subject_for(&from, "u", &UserRecord::Read(AuthState::Null)),
            Err(Unmapped::NoAuthState)
        );
        assert_eq!(
            subject_for(&from, "u", &read(json!({}))),
            Err(Unmapped::NoPathMatched)
        );
        assert_eq!(
            subject_for(&from, "u", &read(json!({"canvas_user": "flat"}))),
            Err(Unmapped::NoPathMatched)
        );
        // A numeric id is not a login id: refuse rather than send the wrong identity.
        assert_eq!(
            subject_for(&from, "u", &read(json!({"canvas_user": {"login_id": 42}}))),
            Err(Unmapped::InvalidValue)
        );
        assert_eq!(
            subject_for(
                &from,
                "u",
                &read(json!({"canvas_user": {"login_id": "  "}}))
            ),
            Err(Unmapped::InvalidValue)
        );
        assert_eq!(
            subject_for(
                &from,
                "u",
                &read(json!({"canvas_user": {"login_id": "a\nb"}}))
            ),
            Err(Unmapped::InvalidValue)
        );
    }

    #[test]
    fn username_template() {
        let from = SubjectFrom::Username {
            template: "{name}@example.edu".into(),
        };
        assert_eq!(
            subject_for(&from, "ana", &UserRecord::Listed),
            Ok("ana@example.edu".into())
        );
    }

    #[test]
    fn selection_counts_and_dedup() {
        let users = vec![
            HubUser {
                name: "admin".into(),
                admin: true,
                record: read(json!({"canvas_user": {"login_id": "9"}})),
            },
            HubUser {
                name: "a".into(),
                admin: false,
                record: read(json!({"canvas_user": {"login_id": "1"}})),
            },
            HubUser {
                name: "a2".into(),
                admin: false,
                record: read(json!({"oauth_user": {"login_id": "1"}})),
            },
            HubUser {
                name: "b".into(),
                admin: false,
                record: UserRecord::Read(AuthState::Null),
            },
            HubUser {
                name: "c".into(),
                admin: false,
                record: UserRecord::Unread,
            },
            HubUser {
                name: "d".into(),
                admin: false,
                record: UserRecord::Vanished,
            },
        ];
        let d = desired_members(&target(default_paths(), false), &users);
        assert_eq!(d.subjects.iter().collect::<Vec<_>>(), ["1"]);
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
        let with_admins = desired_members(&target(default_paths(), true), &users);
        assert!(with_admins.subjects.contains("9"));
        assert_eq!(with_admins.admins_skipped, 0);
    }
}
