//! Whole passes of the `to_grouper` direction against scripted answers and the simulated world.

use crate::error::ErrorKind;
use crate::settings;
use crate::settings::Settings;
use crate::sync::pass::*;
use crate::sync::report::{Outcome, RemovalRecord, Report};
use crate::test_support::{json, members_page, one_added, Fake};
use crate::wire::http::Transport;
use crate::wire::http::{self, Outcome as HttpOutcome, Request, Response};

fn run_full(settings: &Settings, transport: &mut dyn Transport) -> Report {
    run(settings, transport, RunOptions::default())
}

fn settings(extra: &[(&str, &str)]) -> Settings {
    settings::for_tests(extra)
}

fn hub_answer(r: &Request, users: &[(&str, Option<&str>)]) -> Option<HttpOutcome> {
    if r.url.contains("/users?") {
        let items: Vec<_> = users
            .iter()
            .map(|(n, _)| serde_json::json!({"kind": "user", "name": n, "admin": false}))
            .collect();
        return Some(json(
            200,
            serde_json::json!({"items": items, "_pagination": {"offset": 0, "limit": 200, "total": users.len(), "next": null}}),
        ));
    }
    let name = r.url.rsplit('/').next()?;
    let (_, login) = users.iter().find(|(n, _)| *n == name)?;
    Some(json(
        200,
        serde_json::json!({"name": name, "auth_state": login.map(|l| serde_json::json!({"canvas_user": {"login_id": l}}))}),
    ))
}

#[test]
fn grouper_read_failure_writes_nothing() {
    let users = [("a", Some("1"))];
    let mut fake = Fake {
        answer: |r: &Request| {
            hub_answer(r, &users).unwrap_or_else(|| {
                Ok(Response {
                    status: 500,
                    headers: vec![],
                    body: b"<html>".to_vec(),
                })
            })
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(&settings(&[]), &mut fake);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.errors[0].kind, ErrorKind::GrouperUnavailable);
    assert_eq!(
        report.targets[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::GrouperUnavailable)
    );
    assert!(
        report.errors[0].message.contains("reading members of a:b"),
        "{:?}",
        report.errors
    );
    assert!(
        !fake
            .log
            .iter()
            .any(|l| l.starts_with("PUT") || l.contains("/members")),
        "{:?}",
        fake.log
    );
}

#[test]
fn unread_user_blocks_removals_but_not_adds() {
    let users = [("a", Some("1")), ("b", Some("2"))];
    let mut fake = Fake {
        answer: |r: &Request| {
            if r.url.ends_with("/users/b") {
                return Err(http::TransportError::Connect("reset".into()));
            }
            if r.url.ends_with("/groups") {
                return members_page(&["stale"]);
            }
            if r.method == http::Method::Put {
                return one_added();
            }
            hub_answer(r, &users).expect("no other requests")
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(&settings(&[("retries", "2")]), &mut fake);
    let t = &report.targets[0];
    assert_eq!(report.users_unread, 1);
    assert_eq!((t.added, t.removed, t.withheld_removals), (1, 0, 1));
    assert_eq!(t.outcome, Outcome::RemovalsWithheld);
    assert_eq!(
        fake.log.iter().filter(|l| l.ends_with("/users/b")).count(),
        3,
        "retried twice"
    );
    assert!(!fake
        .log
        .iter()
        .any(|l| l.starts_with("POST") && l.ends_with("/members")));
}

#[test]
fn empty_hub_is_an_error_unless_allowed() {
    let mut fake = Fake {
        answer: |r: &Request| hub_answer(r, &[]).unwrap_or_else(|| members_page(&["x"])),
        log: vec![],
        slept: vec![],
    };
    let report = run_full(&settings(&[]), &mut fake);
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.errors[0].message.contains("allow_empty_hub"));
    let mut fake = Fake {
        answer: |r: &Request| hub_answer(r, &[]).unwrap_or_else(|| members_page(&[])),
        log: vec![],
        slept: vec![],
    };
    let report = run_full(&settings(&[("allow_empty_hub", "true")]), &mut fake);
    assert_eq!(report.outcome, Outcome::Converged);
}

#[test]
fn runaway_pagination_is_refused() {
    let mut fake = Fake {
        answer: |_: &Request| {
            json(
                200,
                serde_json::json!({"items": [{"kind": "user", "name": "a"}],
                "_pagination": {"offset": 0, "limit": 1, "total": 3, "next": {"offset": 0, "limit": 1}}}),
            )
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(&settings(&[]), &mut fake);
    assert!(
        report.errors[0].message.contains("refusing to loop"),
        "{:?}",
        report.errors
    );
}

#[test]
fn a_listing_shorter_than_the_hubs_total_withholds_removals() {
    // The hub says 3 users but the pages held only 2 (someone was deleted mid-listing and the
    // offsets shifted): the missing user might be skipped, not gone.
    let mut fake = Fake {
        answer: |r: &Request| {
            if r.url.ends_with("/groups") {
                return members_page(&["a@x", "stale@x"]);
            }
            if r.method == http::Method::Put {
                return one_added();
            }
            json(
                200,
                serde_json::json!({"items": [{"kind": "user", "name": "a"}, {"kind": "user", "name": "b"}],
                "_pagination": {"offset": 0, "limit": 200, "total": 3, "next": null}}),
            )
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(
        &settings(&[
            ("subject_from", "username"),
            ("username_template", "{name}@x"),
        ]),
        &mut fake,
    );
    let t = &report.targets[0];
    assert_eq!(
        report.outcome,
        Outcome::RemovalsWithheld,
        "{:?}",
        report.errors
    );
    assert_eq!((t.added, t.removed, t.withheld_removals), (1, 0, 1));
    assert!(
        report.errors[0].message.contains("reported 3 users"),
        "{:?}",
        report.errors
    );
    assert!(
        !fake
            .log
            .iter()
            .any(|l| l.starts_with("POST") && l.ends_with("/members")),
        "no delete was sent"
    );
}

#[test]
fn page_bound_uses_the_limit_the_hub_applied() {
    // 7 users, the hub clamps every page to 2 although 200 were asked for.
    let mut fake = Fake {
        answer: |r: &Request| {
            if r.url.ends_with("/groups") {
                return members_page(&[]);
            }
            let offset: u64 = r
                .url
                .split("offset=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let items: Vec<_> = (offset..(offset + 2).min(7))
                .map(|i| serde_json::json!({"kind": "user", "name": format!("u{i}")}))
                .collect();
            let next = if offset + 2 < 7 {
                serde_json::json!({"offset": offset + 2, "limit": 2})
            } else {
                serde_json::Value::Null
            };
            json(
                200,
                serde_json::json!({"items": items, "_pagination": {"offset": offset, "limit": 2, "total": 7, "next": next}}),
            )
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(
        &settings(&[("subject_from", "username"), ("dry_run", "true")]),
        &mut fake,
    );
    assert_eq!(report.outcome, Outcome::Converged, "{:?}", report.errors);
    assert_eq!(report.users_seen, 7);
    assert_eq!(report.targets[0].to_add, 7);
}

#[test]
fn grouper_paging_stops_on_short_page_and_detects_non_paging_servers() {
    let users = [("a", Some("1"))];
    let mut pages = 0;
    let mut fake = Fake {
        answer: |r: &Request| {
            if r.url.ends_with("/groups") {
                pages += 1;
                return members_page(&["1", "2"]); // same full page every time
            }
            hub_answer(r, &users).unwrap()
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(
        &settings(&[("grouper_page_size", "2"), ("dry_run", "true")]),
        &mut fake,
    );
    assert!(
        report.errors[0].message.contains("does not page"),
        "{:?}",
        report.errors
    );
    assert_eq!(pages, 2);
}

#[test]
fn max_changes_per_pass_applies_adds_first_and_reports_the_rest() {
    let users = [("a", None), ("b", None), ("c", None)];
    let mut adds_sent = 0;
    let mut fake = Fake {
        answer: |r: &Request| {
            if r.url.ends_with("/groups") {
                return members_page(&["a", "gone1", "gone2"]);
            }
            if r.method == http::Method::Put {
                adds_sent += 1;
                return one_added();
            }
            if r.method == http::Method::Post && r.url.ends_with("/members") {
                panic!("no removal fits the budget");
            }
            hub_answer(r, &users).expect("no other requests")
        },
        log: vec![],
        slept: vec![],
    };
    let s = settings(&[
        ("subject_from", "username"),
        ("max_changes_per_pass", "1"),
        ("grouper_batch_size", "1"),
    ]);
    let report = run_full(&s, &mut fake);
    let t = &report.targets[0];
    assert_eq!((t.to_add, t.to_remove), (2, 2));
    assert_eq!((t.added, t.removed), (1, 0));
    assert_eq!(t.changes_remaining, 3);
    assert_eq!(report.changes_remaining, 3);
    assert_eq!(report.outcome, Outcome::ChangesRemaining);
    assert_eq!(adds_sent, 1);
}

#[test]
fn hub_scope_error_is_typed_and_names_the_scope() {
    let mut fake = Fake {
        answer: |_: &Request| {
            Ok(Response {
                status: 403,
                headers: vec![],
                body: br#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [list:users]"}"#.to_vec(),
            })
        },
        log: vec![],
        slept: vec![],
    };
    let report = run_full(&settings(&[]), &mut fake);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.errors[0].kind, ErrorKind::HubForbidden);
    assert_eq!(
        report.errors[0].missing_scope.as_deref(),
        Some("list:users")
    );
    assert!(report.targets.is_empty());
}

/// A hub whose list carries `created`/`last_activity` and a `Date`, as JupyterHub's does.
struct DatedHub {
    /// name, created, last_activity, login id
    users: Vec<(String, &'static str, Option<&'static str>, Option<String>)>,
    date: &'static str,
    fail_reads_of: Option<String>,
}

impl DatedHub {
    fn answer(&self, r: &Request) -> Option<HttpOutcome> {
        let dated = |body: serde_json::Value| -> HttpOutcome {
            Ok(Response {
                status: 200,
                headers: vec![("date".into(), self.date.into())],
                body: body.to_string().into_bytes(),
            })
        };
        if r.url.contains("/users?") {
            let items: Vec<_> = self
                .users
                .iter()
                .map(|(n, created, active, _)| {
                    serde_json::json!({"kind": "user", "name": n, "admin": false,
                        "created": created, "last_activity": active})
                })
                .collect();
            return Some(dated(
                serde_json::json!({"items": items, "_pagination": {"offset": 0, "limit": 200, "total": self.users.len(), "next": null}}),
            ));
        }
        let name = r.url.strip_prefix("http://hub/hub/api/users/")?;
        if self.fail_reads_of.as_deref() == Some(name) {
            return Some(Err(http::TransportError::Connect("reset".into())));
        }
        let Some((_, _, _, login)) = self.users.iter().find(|(n, ..)| n == name) else {
            return Some(Ok(Response {
                status: 404,
                headers: vec![("date".into(), self.date.into())],
                body: br#"{"status": 404, "message": null}"#.to_vec(),
            }));
        };
        Some(dated(
            serde_json::json!({"name": name, "auth_state": {"canvas_user": {"login_id": login}}}),
        ))
    }
}

fn incremental_pass(
    hub: &DatedHub,
    group: &[&str],
    state: Option<Vec<u8>>,
) -> (Report, Vec<String>) {
    let mut fake = Fake {
        answer: |r: &Request| {
            if r.url.ends_with("/groups") {
                return members_page(group);
            }
            if r.method == http::Method::Put {
                return one_added();
            }
            if r.method == http::Method::Post {
                return json(
                    200,
                    serde_json::json!({"WsDeleteMemberResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"},
                        "results": [{"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}}]}}),
                );
            }
            hub.answer(r).expect("no other requests")
        },
        log: vec![],
        slept: vec![],
    };
    let options = RunOptions {
        user_state: state,
        full: false,
        approved_plans: Vec::new(),
        removal_ledger: Vec::new(),
    };
    let report = run(&settings(&[("retries", "0")]), &mut fake, options);
    let reads = fake
        .log
        .into_iter()
        .filter(|l| l.starts_with("GET http://hub/hub/api/users/"))
        .collect();
    (report, reads)
}

fn hub_user(
    name: &str,
    active: Option<&'static str>,
) -> (String, &'static str, Option<&'static str>, Option<String>) {
    (
        name.to_string(),
        "2026-01-01T00:00:00.000000Z",
        active,
        Some(format!("{name}-id")),
    )
}

#[test]
fn a_warm_pass_reads_only_what_changed_and_removes_as_a_full_pass_would() {
    let old = Some("2026-06-01T00:00:00.000000Z");
    let mut hub = DatedHub {
        users: vec![hub_user("a", old), hub_user("b", old), hub_user("c", None)],
        date: "Sun, 29 Nov 2026 12:00:00 GMT",
        fail_reads_of: None,
    };
    let (cold, reads) = incremental_pass(&hub, &["a-id", "b-id", "c-id"], None);
    assert_eq!(cold.outcome, Outcome::Converged, "{:?}", cold.errors);
    assert_eq!((cold.users_fetched, cold.read_reasons.full), (3, 3));
    assert_eq!(reads.len(), 3);
    let state = cold
        .next_user_state
        .clone()
        .expect("a state for the next pass");
    assert!(!String::from_utf8_lossy(&state).contains("auth_state"));

    // an hour later: nothing changed, so only the list is read
    hub.date = "Sun, 29 Nov 2026 13:00:00 GMT";
    let (warm, reads) = incremental_pass(&hub, &["a-id", "b-id", "c-id"], Some(state));
    assert_eq!(
        warm.user_state,
        crate::policy::user_state::StateStatus::Used
    );
    assert_eq!((warm.users_fetched, warm.users_from_state), (0, 3));
    assert!(reads.is_empty(), "{reads:?}");
    assert_eq!(warm.targets[0].to_add + warm.targets[0].to_remove, 0);
    let state = warm.next_user_state.clone().unwrap();

    // b was deleted, d is new, a logged in again: read d and a; look b up (gone); remove b;
    // add d
    hub.users.retain(|u| u.0 != "b");
    hub.users.push(hub_user("d", None));
    hub.users[0].2 = Some("2026-11-29T13:30:00.000000Z");
    hub.date = "Sun, 29 Nov 2026 14:00:00 GMT";
    let (changed, reads) = incremental_pass(&hub, &["a-id", "b-id", "c-id"], Some(state));
    assert_eq!(
        reads,
        [
            "GET http://hub/hub/api/users/a",
            "GET http://hub/hub/api/users/d",
            "GET http://hub/hub/api/users/b"
        ]
    );
    assert_eq!((changed.users_departed, changed.users_unlisted), (1, 0));
    assert_eq!(
        (changed.read_reasons.changed, changed.read_reasons.new),
        (1, 1)
    );
    let t = &changed.targets[0];
    assert_eq!((t.added, t.removed), (1, 1), "{:?}", changed.errors);
    assert_eq!(changed.outcome, Outcome::Converged);
}

#[test]
fn a_failed_read_is_unread_as_in_a_full_pass_and_read_again_next_time() {
    let old = Some("2026-06-01T00:00:00.000000Z");
    let mut hub = DatedHub {
        users: vec![hub_user("a", old), hub_user("b", old)],
        date: "Sun, 29 Nov 2026 12:00:00 GMT",
        fail_reads_of: Some("b".into()),
    };
    let (first, _) = incremental_pass(&hub, &["a-id", "b-id", "stale"], None);
    let t = &first.targets[0];
    assert_eq!(first.users_unread, 1);
    assert_eq!(t.removed, 0, "an unread user withholds every removal");
    assert_eq!(first.outcome, Outcome::RemovalsWithheld);
    let state = first.next_user_state.clone().unwrap();
    hub.fail_reads_of = None;
    hub.date = "Sun, 29 Nov 2026 13:00:00 GMT";
    let (second, reads) = incremental_pass(&hub, &["a-id", "b-id", "stale"], Some(state));
    assert_eq!(
        reads,
        ["GET http://hub/hub/api/users/b"],
        "only the unread user"
    );
    assert_eq!(second.read_reasons.new, 1);
    assert_eq!(second.targets[0].removed, 1, "now complete: stale goes");
    assert_eq!(second.outcome, Outcome::Converged);
}

use crate::test_support::World;

fn after(state: Option<Vec<u8>>) -> RunOptions {
    RunOptions {
        user_state: state,
        ..RunOptions::default()
    }
}

const T0: i64 = 1_796_000_000;

#[test]
fn subjects_lost_for_everyone_over_many_incremental_passes_remove_nobody() {
    let settings = settings(&[("retries", "0")]);
    let mut w = World::new(300, T0);
    let first = w.pass(&settings, RunOptions::default());
    assert_eq!(first.outcome, Outcome::Converged, "{:?}", first.errors);
    let mut state = first.next_user_state;
    let before = w.members.clone();
    // every auth_state rewritten to a shape without a login id (an authenticator upgrade,
    // enable_auth_state turned off, a rotated crypt key)
    for u in &mut w.users {
        u.login = None;
    }
    let mut lost = 0;
    // hourly passes for 30 hours, past full_refresh_hours: everyone is read again
    for hour in 1..=30 {
        w.now = T0 + hour * 3600;
        let now = w.now;
        for u in w.users.iter_mut().skip((hour as usize * 25) % 300).take(25) {
            u.last_activity = Some(now - 60); // 25 users active again each hour
        }
        let r = w.pass(&settings, after(state.take()));
        let t = &r.targets[0];
        assert_eq!((t.removed, t.to_remove), (0, 0), "hour {hour}: {t:?}");
        assert_eq!(w.members, before, "hour {hour}: nobody removed");
        assert!(
            t.subjects_lost >= lost,
            "hour {hour}: losses are remembered"
        );
        lost = t.subjects_lost;
        assert_eq!(r.outcome, Outcome::RemovalsWithheld, "hour {hour}");
        assert!(t.withheld_plan.is_some(), "approvable");
        state = r.next_user_state;
    }
    assert_eq!(lost, 300, "by now every user was read again");
    // a full pass follows the same rule
    let full = w.pass(
        &settings,
        RunOptions {
            user_state: state.clone(),
            full: true,
            ..RunOptions::default()
        },
    );
    let t = &full.targets[0];
    assert_eq!((t.removed, t.subjects_lost), (0, 300));
    // an admin who knows why approves the plan: then they go
    let plan = t.withheld_plan.clone().unwrap();
    let approved = w.pass(
        &settings,
        RunOptions {
            user_state: full.next_user_state,
            approved_plans: vec![plan],
            ..RunOptions::default()
        },
    );
    assert_eq!(
        approved.targets[0].removed, 300,
        "{:?}",
        approved.targets[0]
    );
    assert!(w.members.is_empty());
}

#[test]
fn a_read_that_finds_a_different_subject_replaces_the_old_one() {
    let settings = settings(&[("retries", "0")]);
    let mut w = World::new(20, T0);
    let state = w.pass(&settings, RunOptions::default()).next_user_state;
    w.now = T0 + 3600;
    w.users[3].login = Some("new-id".into());
    w.users[3].last_activity = Some(w.now - 60);
    w.users[4].login = None; // lost: kept
    w.users[4].last_activity = Some(w.now - 60);
    let r = w.pass(&settings, after(state));
    let t = &r.targets[0];
    assert_eq!((t.added, t.removed, t.subjects_lost), (1, 1, 1), "{t:?}");
    assert!(w.members.contains("new-id") && !w.members.contains("user003-id"));
    assert!(w.members.contains("user004-id"), "the lost subject stays");
    assert_eq!(r.outcome, Outcome::RemovalsWithheld);
}

#[test]
fn the_daily_budget_withholds_removals_that_add_up_over_passes() {
    let settings = settings(&[("retries", "0")]);
    let mut w = World::new(100, T0);
    let mut state = w.pass(&settings, RunOptions::default()).next_user_state;
    let mut ledger: Vec<RemovalRecord> = Vec::new();
    let mut removed = Vec::new();
    // 8 users leave the hub every hour: each pass alone is within max_removals and
    // max_removal_fraction (10 %), but 20 % of the group in 24 hours is the daily budget
    for hour in 1..=3 {
        w.now = T0 + hour * 3600;
        w.users.drain(..8);
        let r = w.pass(
            &settings,
            RunOptions {
                removal_ledger: ledger.clone(),
                ..after(state.take())
            },
        );
        let t = &r.targets[0];
        removed.push(t.removed);
        ledger.push(RemovalRecord {
            target: "grouper:a:b".into(),
            at: w.now,
            count: t.removed as u32,
        });
        state = r.next_user_state;
        if hour == 3 {
            assert_eq!(r.outcome, Outcome::RemovalsWithheld);
            assert!(
                t.withheld_reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("max_removal_fraction_per_day"),
                "{t:?}"
            );
            assert!(t.withheld_plan.is_some(), "approvable");
        }
    }
    assert_eq!(
        removed,
        [8, 8, 0],
        "the third pass would make 24 of 92 in a day"
    );
    // a day later the earlier removals have left the window
    w.now = T0 + 27 * 3600;
    let r = w.pass(
        &settings,
        RunOptions {
            removal_ledger: ledger.clone(),
            ..after(state)
        },
    );
    assert_eq!((r.targets[0].removed, r.outcome), (8, Outcome::Converged));
}

#[test]
fn a_user_skipped_by_offset_paging_is_looked_up_not_removed() {
    let settings = settings(&[("retries", "0")]);
    let mut w = World::new(5, T0);
    w.page_size = 2;
    let state = w.pass(&settings, RunOptions::default()).next_user_state;
    // between the first and second page, user001 is deleted and user009 created: the
    // offsets shift, user002 is on no page, and the total stays 5
    w.between_pages = Some(Box::new(|users| {
        users.retain(|u| u.name != "user001");
        users.push(crate::test_support::WorldUser {
            name: "user009".into(),
            created: T0,
            last_activity: None,
            login: Some("user009-id".into()),
        });
    }));
    w.now = T0 + 3600;
    let r = w.pass(&settings, after(state));
    assert_eq!(r.users_unlisted, 1, "{:?}", r);
    assert!(w
        .sent
        .contains(&"GET http://hub/hub/api/users/user002".to_string()));
    assert!(
        w.members.contains("user002-id"),
        "skipped by the listing, not removed"
    );
    assert!(w.members.contains("user009-id"));
    assert_eq!(r.outcome, Outcome::Converged, "{:?}", r.errors);
    // the next pass finds user001 gone (404) and removes them
    w.now = T0 + 7200;
    let r = w.pass(&settings, after(r.next_user_state));
    assert_eq!((r.users_departed, r.targets[0].removed), (1, 1));
    assert!(!w.members.contains("user001-id") && w.members.contains("user002-id"));
}

#[test]
fn a_failed_listing_leaves_the_previous_state_in_place() {
    let mut fake = Fake {
        answer: |_: &Request| {
            Ok(Response {
                status: 503,
                headers: vec![],
                body: vec![],
            })
        },
        log: vec![],
        slept: vec![],
    };
    let options = RunOptions {
        user_state: Some(b"{}".to_vec()),
        full: false,
        approved_plans: Vec::new(),
        removal_ledger: Vec::new(),
    };
    let report = run(&settings(&[("retries", "0")]), &mut fake, options);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.next_user_state, None, "the host keeps what it has");
}
