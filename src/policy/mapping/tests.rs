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
        shown[2].starts_with("error edu:x:course-data8: edu:x:course-data8 is already the target"),
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
    let at = |name: &str, idle_days: Option<u32>, running: bool| {
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
        (
            d.users_by_subject
                .subjects()
                .map(String::from)
                .collect::<Vec<String>>(),
            d.filtered,
        )
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
    assert_eq!(d.users_by_subject.subjects().collect::<Vec<_>>(), ["ana"]);
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
        created: ListedTime::NONE,
        last_activity: ListedTime::NONE,
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
            provisioning: Default::default(),
            google: None,
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
    let canvas_null = json!({"canvas_user": {"login_id": null}, "oauth_user": {"login_id": "333"}});
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
    listed.user_info = Some(Box::new(json!({"login_id": "111"})));
    let needs = |u: &HubUser, t: &Target| needs_record(t, u);
    assert!(!needs(&listed, &t), "the list alone is enough");
    assert_eq!(subject_for(&from, &listed, &[&fallback]), Ok("111".into()));
    let mut without = read("b", false, json!({"canvas_user": {"login_id": "222"}}));
    without.user_info = Some(Box::new(json!({"name": "b"})));
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
    assert_eq!(d.users_by_subject.subjects().collect::<Vec<_>>(), ["1"]);
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
    assert!(with_admins.users_by_subject.contains("9"));
    assert_eq!(with_admins.admins_skipped, 0);
}
