//! `to_hub` targets through whole passes, against a hub and a Grouper in one fake.

use crate::error::ErrorKind;
use crate::model::Direction;
use crate::settings::Settings;
use crate::sync::pass::RunOptions;
use crate::sync::report::{ChangeReason, Outcome, Report};
use crate::test_support::Fake;
use crate::wire::http::{Method, Outcome as HttpOutcome, Request, Response};
use serde_json::json;

/// One to_hub target (Grouper `edu:x:gpu-quota` -> hub group `gpu`), usernames as subjects.
fn settings(target: &str, extra: &[(&str, &str)]) -> Settings {
    let targets = format!(
        r#"[{{"grouper_group": "edu:x:gpu-quota", "direction": "to_hub", "hub_group": "gpu"{target}}}]"#
    );
    let mut all = vec![
        ("grouper_id_path", ""),
        ("subject_from", "username"),
        ("retries", "0"),
        ("targets", targets.as_str()),
    ];
    all.extend_from_slice(extra);
    crate::settings::for_tests(&all)
}

/// A hub and a Grouper in one: `users` (name, hub groups), the Grouper group's member ids.
struct World {
    users: Vec<(&'static str, Vec<&'static str>)>,
    grouper: Vec<&'static str>,
    hub_group_exists: bool,
    /// The listing claims one more user than it returns.
    short_listing: bool,
    /// The hub answers writes to the group's users with this status and message.
    write_error: Option<(u16, &'static str)>,
    /// The hub answers the read of the group with this status.
    group_read_error: Option<u16>,
    /// Someone else creates the group between our read and our create (409).
    created_meanwhile: bool,
    /// `auth_state.canvas_user.login_id` by user, for passes that map from auth_state.
    logins: std::collections::HashMap<&'static str, Option<&'static str>>,
    /// `last_activity` by user.
    active: std::collections::HashMap<&'static str, &'static str>,
    sent: Vec<String>,
}

fn ok(status: u16, body: serde_json::Value) -> HttpOutcome {
    Ok(Response {
        status,
        headers: vec![
            ("x-grouper-success".into(), "T".into()),
            ("date".into(), "Sun, 29 Nov 2026 12:00:00 GMT".into()),
        ],
        body: body.to_string().into_bytes(),
    })
}

impl World {
    fn answer(&mut self, r: &Request) -> HttpOutcome {
        let body = r
            .body
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default();
        self.sent.push(
            format!("{} {} {body}", r.method.as_str(), r.url)
                .trim_end()
                .to_string(),
        );
        if r.url.starts_with("http://g/") {
            let subjects: Vec<_> = self
                .grouper
                .iter()
                .map(|i| json!({"id": i, "sourceId": "ldap", "success": "T"}))
                .collect();
            return ok(
                200,
                json!({"WsGetMembersResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"},
                    "results": [{"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "wsSubjects": subjects}]}}),
            );
        }
        if r.url.contains("/users?") {
            let items: Vec<_> = self
                .users
                .iter()
                .map(|(n, g)| {
                    json!({"kind": "user", "name": n, "admin": false, "groups": g,
                    "created": "2026-01-01T00:00:00.000000Z", "last_activity": self.active.get(n)})
                })
                .collect();
            let total = self.users.len() + usize::from(self.short_listing);
            return ok(
                200,
                json!({"items": items, "_pagination": {"offset": 0, "limit": 200, "total": total, "next": null}}),
            );
        }
        if let Some(name) = r.url.strip_prefix("http://hub/hub/api/users/") {
            return match self.logins.get(name) {
                Some(login) => ok(
                    200,
                    json!({"kind": "user", "name": name, "auth_state": {"canvas_user": {"login_id": login}}}),
                ),
                None => ok(404, json!({"status": 404, "message": null})),
            };
        }
        match (r.method, r.url.as_str()) {
            (Method::Get, "http://hub/hub/api/groups/gpu") if self.group_read_error.is_some() => {
                let status = self.group_read_error.unwrap_or(500);
                ok(
                    status,
                    json!({"status": status, "message": "Internal Server Error"}),
                )
            }
            (Method::Get, "http://hub/hub/api/groups/gpu") if self.hub_group_exists => {
                ok(200, json!({"kind": "group", "name": "gpu"}))
            }
            (Method::Get, "http://hub/hub/api/groups/gpu") => {
                ok(404, json!({"status": 404, "message": "No such group: gpu"}))
            }
            (Method::Post, "http://hub/hub/api/groups/gpu") if self.created_meanwhile => ok(
                409,
                json!({"status": 409, "message": "Group gpu already exists"}),
            ),
            (Method::Post, "http://hub/hub/api/groups/gpu") => {
                self.hub_group_exists = true;
                ok(201, json!({"kind": "group", "name": "gpu", "users": []}))
            }
            (Method::Post | Method::Delete, "http://hub/hub/api/groups/gpu/users") => {
                match self.write_error {
                    Some((status, message)) => {
                        ok(status, json!({"status": status, "message": message}))
                    }
                    None => ok(200, json!({"kind": "group", "name": "gpu"})),
                }
            }
            _ => panic!("unexpected request {} {}", r.method.as_str(), r.url),
        }
    }
}

/// One pass with `w` answering every request.
fn run(settings: &Settings, w: &mut World, options: RunOptions) -> Report {
    let mut fake = Fake::new(|r: &Request| w.answer(r));
    crate::sync::pass::run(settings, &mut fake, options)
}

fn world() -> World {
    World {
        users: vec![
            ("ana", vec!["gpu"]),
            ("ben", vec![]),
            ("cy", vec!["gpu", "other"]),
            ("dee", vec![]),
        ],
        grouper: vec!["ana", "ben", "zed"],
        hub_group_exists: true,
        short_listing: false,
        write_error: None,
        group_read_error: None,
        created_meanwhile: false,
        logins: Default::default(),
        active: Default::default(),
        sent: Vec::new(),
    }
}

#[test]
fn a_hub_user_whose_subject_was_lost_keeps_the_hub_group() {
    let mut w = world();
    w.logins = [
        ("ana", Some("a1")),
        ("ben", Some("b1")),
        ("cy", Some("c1")),
        ("dee", None),
    ]
    .into();
    w.grouper = vec!["a1", "c1"];
    let s = settings("", &[("subject_from", "auth_state")]);
    let first = run(&s, &mut w, RunOptions::default());
    assert_eq!(first.outcome, Outcome::Converged, "{:?}", first.errors);
    assert!(
        writes(&w).is_empty(),
        "ana and cy are in both: {:?}",
        writes(&w)
    );
    // cy logs in again, and their auth_state no longer holds a login id
    w.logins.insert("cy", None);
    w.active.insert("cy", "2026-11-29T11:59:00.000000Z");
    w.sent.clear();
    let options = RunOptions {
        user_state: first.next_user_state,
        ..RunOptions::default()
    };
    let second = run(&s, &mut w, options);
    let t = &second.targets[0];
    assert!(writes(&w).is_empty(), "cy stays in gpu: {:?}", writes(&w));
    assert_eq!((t.removed, t.subjects_lost), (0, 1), "{t:?}");
    assert_eq!(second.outcome, Outcome::RemovalsWithheld);
    assert!(t.withheld_plan.is_some(), "approvable");
}

fn writes(w: &World) -> Vec<&str> {
    w.sent
        .iter()
        .filter(|l| !l.starts_with("GET") && l.contains("/hub/api/groups/"))
        .map(String::as_str)
        .collect()
}

#[test]
fn the_hub_group_becomes_the_grouper_groups_hub_users() {
    let mut w = world();
    let s = settings(r#", "max_removals": 5"#, &[]);
    let report = run(&s, &mut w, RunOptions::default());
    let t = &report.targets[0];
    assert_eq!(report.outcome, Outcome::Converged, "{:?}", report.errors);
    assert_eq!(t.direction, Direction::ToHub);
    assert_eq!(
        writes(&w),
        [
            r#"POST http://hub/hub/api/groups/gpu/users {"users":["ben"]}"#,
            r#"DELETE http://hub/hub/api/groups/gpu/users {"users":["cy"]}"#
        ]
    );
    assert_eq!((t.current_members, t.added, t.removed), (2, 1, 1));
    assert_eq!(t.members_without_hub_user, 1, "zed has no hub user");
    let reasons: Vec<_> = t
        .changes
        .iter()
        .map(|c| (c.hub_user.as_deref().unwrap(), c.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("ben", ChangeReason::InGrouper),
            ("cy", ChangeReason::NotInGrouper)
        ]
    );
}

#[test]
fn a_refused_write_fails_the_target_names_the_scope_and_stops_writing() {
    let mut w = world();
    w.write_error = Some((
        403,
        "Action is not authorized with current scopes; requires any of [groups]",
    ));
    let report = run(&settings("", &[]), &mut w, RunOptions::default());
    let t = &report.targets[0];
    assert_eq!(t.outcome, Outcome::Failed);
    let e = t.error.as_ref().unwrap();
    assert_eq!(e.kind, ErrorKind::HubForbidden);
    assert_eq!(e.missing_scope.as_deref(), Some("groups"));
    assert_eq!(
        writes(&w).len(),
        1,
        "the removal is not sent after the add failed"
    );
    assert_eq!((t.added, t.removed), (0, 0));
    let mut w = world();
    w.write_error = Some((503, "busy"));
    let report = run(&settings("", &[]), &mut w, RunOptions::default());
    assert_eq!(
        report.targets[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::HubUnavailable)
    );
}

#[test]
fn a_hub_group_read_that_fails_writes_nothing_to_it() {
    let mut w = world();
    w.group_read_error = Some(500);
    let report = run(&settings("", &[]), &mut w, RunOptions::default());
    let t = &report.targets[0];
    assert_eq!(t.outcome, Outcome::Failed);
    assert_eq!(
        t.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::HubUnavailable)
    );
    assert!(writes(&w).is_empty(), "{:?}", w.sent);
    assert!(
        !w.sent.iter().any(|l| l.contains("http://g/")),
        "Grouper is not even read"
    );
}

#[test]
fn a_dry_run_creates_no_hub_group() {
    let mut w = world();
    w.hub_group_exists = false;
    let report = run(
        &settings(r#", "create_missing_groups": true"#, &[("dry_run", "true")]),
        &mut w,
        RunOptions::default(),
    );
    let t = &report.targets[0];
    assert_eq!(t.outcome, Outcome::Converged, "{:?}", t.error);
    assert!(!t.group_created);
    assert_eq!((t.current_members, t.to_add, t.to_remove), (0, 2, 0));
    assert!(writes(&w).is_empty(), "{:?}", w.sent);
}

#[test]
fn an_incomplete_hub_listing_adds_but_removes_nobody() {
    let mut w = world();
    w.short_listing = true;
    let report = run(&settings("", &[]), &mut w, RunOptions::default());
    let t = &report.targets[0];
    assert_eq!(t.outcome, Outcome::RemovalsWithheld);
    assert_eq!((t.added, t.removed, t.withheld_removals), (1, 0, 1));
    assert_eq!(
        t.withheld_plan, None,
        "an incomplete read is never approvable"
    );
    assert!(writes(&w).iter().all(|l| !l.starts_with("DELETE")));
}

#[test]
fn an_empty_grouper_group_empties_nothing_without_approval() {
    let mut w = world();
    w.grouper.clear();
    let s = settings("", &[]);
    let report = run(&s, &mut w, RunOptions::default());
    let t = &report.targets[0];
    assert_eq!(t.outcome, Outcome::RemovalsWithheld);
    assert!(
        t.withheld_reason
            .as_deref()
            .is_some_and(|r| r.contains("no member of the Grouper group maps to a hub user")),
        "{:?}",
        t.withheld_reason
    );
    assert!(writes(&w).is_empty(), "{:?}", w.sent);
    // the admin approves exactly that plan: the next pass applies it
    let plan = t.withheld_plan.clone().expect("approvable");
    let mut w2 = world();
    w2.grouper.clear();
    let options = RunOptions {
        approved_plans: vec![plan],
        ..RunOptions::default()
    };
    let report = run(&s, &mut w2, options);
    assert_eq!(report.targets[0].removed, 2);
    assert_eq!(
        report.targets[0].changes[0].reason,
        ChangeReason::ApprovedPlan
    );
}

#[test]
fn protected_dry_run_and_missing_groups() {
    // protected by subject (here: the name) keeps cy in the group
    let mut w = world();
    let report = run(
        &settings(r#", "protected_members": ["cy"]"#, &[]),
        &mut w,
        RunOptions::default(),
    );
    assert_eq!(report.targets[0].protected_kept, 1);
    assert_eq!(writes(&w).len(), 1, "{:?}", w.sent);
    // dry run: the plan, no writes
    let mut w = world();
    let report = run(
        &settings("", &[("dry_run", "true")]),
        &mut w,
        RunOptions::default(),
    );
    assert_eq!(
        (report.targets[0].to_add, report.targets[0].to_remove),
        (1, 1)
    );
    assert!(writes(&w).is_empty());
    // a missing hub group fails the target, named, and is not created unasked
    let mut w = world();
    w.hub_group_exists = false;
    let report = run(&settings("", &[]), &mut w, RunOptions::default());
    let e = report.targets[0].error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::GroupNotFound);
    assert!(e.message.contains("create_missing_groups"), "{e:?}");
    assert!(writes(&w).is_empty());
    // with create_missing_groups it is created, then filled
    let mut w = world();
    w.hub_group_exists = false;
    w.users.iter_mut().for_each(|u| u.1.clear());
    let report = run(
        &settings(r#", "create_missing_groups": true"#, &[]),
        &mut w,
        RunOptions::default(),
    );
    let t = &report.targets[0];
    assert!(t.group_created);
    assert_eq!(
        writes(&w),
        [
            "POST http://hub/hub/api/groups/gpu {}",
            r#"POST http://hub/hub/api/groups/gpu/users {"users":["ana","ben"]}"#
        ]
    );
    assert_eq!(t.outcome, Outcome::Converged);
    // created by someone else between the read and the create: not ours, but there
    let mut w = world();
    w.hub_group_exists = false;
    w.created_meanwhile = true;
    let report = run(
        &settings(r#", "create_missing_groups": true"#, &[]),
        &mut w,
        RunOptions::default(),
    );
    let t = &report.targets[0];
    assert_eq!(t.outcome, Outcome::Converged, "{:?}", t.error);
    assert!(!t.group_created);
    assert_eq!(t.added, 1);
}

#[test]
fn hub_writes_are_batched_by_hub_batch_size_not_grouper_batch_size() {
    let mut w = world();
    w.grouper = vec!["ana", "ben", "dee", "zed"];
    let s = settings(
        "",
        &[("hub_batch_size", "1"), ("grouper_batch_size", "100")],
    );
    let report = run(&s, &mut w, RunOptions::default());
    assert_eq!(report.outcome, Outcome::Converged, "{:?}", report.errors);
    assert_eq!(
        writes(&w),
        [
            r#"POST http://hub/hub/api/groups/gpu/users {"users":["ben"]}"#,
            r#"POST http://hub/hub/api/groups/gpu/users {"users":["dee"]}"#,
            r#"DELETE http://hub/hub/api/groups/gpu/users {"users":["cy"]}"#
        ]
    );
}
