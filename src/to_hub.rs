//! A `to_hub` target: the Grouper group's members, mapped back to hub users through the subject
//! mapping, become the hub group's membership. The same safety rules as the other direction: an
//! incomplete read of either side removes nobody; removal limits, protected members, dry run.

use crate::error::{ErrorKind, Service, SyncError};
use crate::grouper::Member;
use crate::grouper_client;
use crate::hub;
use crate::hub_reader::{self, HubView};
use crate::mapping::{hub_members, Desired};
use crate::pass::{plan_target, target_outcome, ChangeBudget, PassContext};
use crate::plan::Plan;
use crate::report::{Change, ChangeOp, ChangeReason, TargetReport};
use crate::session::Session;
use crate::settings::Target;
use std::collections::{BTreeMap, BTreeSet};

/// The source the plan gives hub users (they have no Grouper source).
const HUB_SOURCE: &str = "jupyterhub";

/// Makes sure the hub group exists; creates it with `create_missing_groups`. `Ok(false)`: it is
/// missing and this is a dry run, so the pass plans against an empty group.
fn ensure_group(
    s: &mut Session,
    target: &Target,
    group: &str,
    report: &mut TargetReport,
) -> Result<bool, SyncError> {
    if hub_reader::group_exists(s, group)? {
        return Ok(true);
    }
    if !target.create_missing {
        return Err(SyncError::new(
            ErrorKind::GroupNotFound,
            format!(
                "the hub group {group:?} does not exist; create it (POST /groups/{group}) or set create_missing_groups = true for this target"
            ),
        ));
    }
    if s.settings.dry_run {
        s.log.info(&format!(
            "hub group {group:?} does not exist; a pass that is not a dry run creates it"
        ));
        return Ok(false);
    }
    let settings = s.settings;
    let req = hub::create_group_request(&settings.hub_api_url, settings.hub_token.expose(), group);
    let what = format!("creating hub group {group:?}");
    let resp = s.send(Service::Hub, &what, &req)?;
    match resp.status {
        // 409: created by someone else since the read; it exists, which is what we wanted
        201 | 409 => {
            report.group_created = resp.status == 201;
            if report.group_created {
                s.log.info(&format!("created hub group {group:?}"));
            }
            Ok(true)
        }
        _ => Err(hub::status_error(&what, &resp)),
    }
}

/// The hub group's members as the listing showed them, in the plan's member form.
fn current_members(hub: &HubView, group: &str) -> Vec<Member> {
    hub.users
        .iter()
        .filter(|u| u.groups.iter().any(|g| g == group))
        .map(|u| Member {
            id: u.name.clone(),
            source_id: HUB_SOURCE.into(),
            key: Some(u.name.clone()),
        })
        .collect()
}

/// Each selected hub user's subject, for the change log.
fn subjects_by_user(desired: &Desired) -> BTreeMap<&str, &str> {
    desired
        .users_by_subject
        .iter()
        .flat_map(|(subject, names)| names.iter().map(move |n| (n.as_str(), subject.as_str())))
        .collect()
}

/// Sends the plan's adds, then its removals, in batches; stops at the first batch that fails.
fn apply(
    s: &mut Session,
    group: &str,
    written: &str,
    p: &Plan,
    desired: &Desired,
    budget: &mut ChangeBudget,
    report: &mut TargetReport,
) {
    let adds_allowed = budget.take(p.to_add.len());
    let removes_allowed = budget.take(p.to_remove.len());
    report.changes_remaining =
        (p.to_add.len() - adds_allowed) + (p.to_remove.len() - removes_allowed);
    let removals: Vec<String> = p.to_remove[..removes_allowed]
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let batch = s.settings.grouper_batch_size;
    let subjects = subjects_by_user(desired);
    let steps = [
        (ChangeOp::Add, &p.to_add[..adds_allowed]),
        (ChangeOp::Remove, &removals[..]),
    ];
    for (op, names) in steps {
        let reason = match op {
            ChangeOp::Add => ChangeReason::InGrouper,
            ChangeOp::Remove if report.approved_plan.is_some() => ChangeReason::ApprovedPlan,
            ChangeOp::Remove => ChangeReason::NotInGrouper,
        };
        for chunk in names.chunks(batch) {
            let settings = s.settings;
            let add = op == ChangeOp::Add;
            let req = hub::group_users_request(
                &settings.hub_api_url,
                settings.hub_token.expose(),
                group,
                add,
                chunk,
            );
            let what = format!(
                "{} {} user(s) {} hub group {group:?}",
                if add { "adding" } else { "removing" },
                chunk.len(),
                if add { "to" } else { "from" }
            );
            let sent = s.send(Service::Hub, &what, &req).and_then(|resp| {
                if resp.status == 200 {
                    Ok(())
                } else {
                    Err(hub::status_error(&what, &resp))
                }
            });
            if let Err(e) = sent {
                report.error = Some(e);
                return;
            }
            if add {
                report.added += chunk.len();
            } else {
                report.removed += chunk.len();
            }
            let confirmed = chunk
                .iter()
                .map(|name| Change {
                    op,
                    // the user's subject; the name where they map to none
                    subject: subjects
                        .get(name.as_str())
                        .unwrap_or(&name.as_str())
                        .to_string(),
                    source: None,
                    hub_user: Some(name.clone()),
                    reason,
                })
                .collect();
            s.confirmed(written, report, confirmed);
        }
    }
}

/// One `to_hub` target: read the hub group (from the listing) and the Grouper group, plan, write.
pub fn sync(
    s: &mut Session,
    cx: &PassContext,
    target: &Target,
    desired: &Desired,
    mut report: TargetReport,
    budget: &mut ChangeBudget,
) -> TargetReport {
    let Some(group) = target.hub_group.as_deref() else {
        report.error = Some(SyncError::config("a to_hub target needs hub_group"));
        return report;
    };
    let exists = match ensure_group(s, target, group, &mut report) {
        Ok(exists) => exists,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let members = match grouper_client::read_group(s, cx.conn, target) {
        Ok(m) => m,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let wanted = hub_members(target, desired, &members);
    report.members_without_hub_user = wanted.without_hub_user + wanted.unmanaged;
    if report.members_without_hub_user > 0 {
        s.log.info(&format!(
            "{}: {} member(s) of {} map to no selected hub user and are skipped",
            group, report.members_without_hub_user, target.group_path
        ));
    }
    let current = if exists {
        current_members(cx.hub, group)
    } else {
        Vec::new()
    };
    // The plan sees hub users: protection by subject covers the users who map to it, and the
    // plan's name says which hub group it changes.
    let mut protected = target.protected.clone();
    for (subject, names) in &desired.users_by_subject {
        if target.protected.contains(subject) {
            protected.extend(names.iter().cloned());
        }
    }
    let hub_side = Target {
        group_path: format!("{} -> hub group {group}", target.group_path),
        source_id: None,
        protected,
        ..target.clone()
    };
    // users who lost their subject keep their hub group membership
    let lost: BTreeSet<String> = desired.lost.values().flatten().cloned().collect();
    let p = plan_target(
        s,
        cx,
        &hub_side,
        (&wanted.names, &current),
        &lost,
        &mut report,
    );
    if !s.settings.dry_run {
        let written = target.written_group();
        apply(s, group, &written, &p, desired, budget, &mut report);
    }
    report.outcome = target_outcome(&report, &p);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::http::Transport;
    use crate::http::{Method, Outcome as HttpOutcome, Request, Response};
    use crate::pass::{run, RunOptions};
    use crate::report::Outcome;
    use crate::settings::{Direction, Settings};
    use serde_json::json;
    use std::time::Duration;

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
                    .map(|(n, g)| json!({"kind": "user", "name": n, "admin": false, "groups": g,
                        "created": "2026-01-01T00:00:00.000000Z", "last_activity": self.active.get(n)}))
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
                (Method::Get, "http://hub/hub/api/groups/gpu")
                    if self.group_read_error.is_some() =>
                {
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

    impl Transport for World {
        fn send_all(&mut self, requests: &[Request], _: usize) -> Vec<HttpOutcome> {
            requests.iter().map(|r| self.answer(r)).collect()
        }
        fn sleep(&mut self, _: Duration) {}
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
}
