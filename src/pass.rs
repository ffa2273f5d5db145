//! One sync pass, as a short orchestration: read the hub, then per target read the group, plan,
//! write and report. Talks to the outside only through [`Transport`], so it runs natively in tests.

use crate::grouper::{self, Connection, WriteOp};
use crate::grouper_client;
use crate::http::Transport;
use crate::hub_reader::{self, HubView};
use crate::mapping::{desired_members, UserRecord};
use crate::plan::{plan, Plan};
use crate::report::{Outcome, Report, TargetReport};
use crate::session::Session;
use crate::settings::{LogLevel, Settings, Target};
use serde_json::Value;
use std::time::Instant;

/// What is left of `max_changes_per_pass` as the targets use it up.
struct ChangeBudget(Option<usize>);

impl ChangeBudget {
    /// Takes up to `n` changes; returns how many may be made.
    fn take(&mut self, n: usize) -> usize {
        match &mut self.0 {
            None => n,
            Some(left) => {
                let granted = n.min(*left);
                *left -= granted;
                granted
            }
        }
    }
}

fn apply(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
    p: &Plan,
    budget: &mut ChangeBudget,
    report: &mut TargetReport,
) {
    // Adds first: they never cost anyone their membership.
    let adds_allowed = budget.take(p.to_add.len());
    let removes_allowed = budget.take(p.to_remove.len());
    report.changes_remaining =
        (p.to_add.len() - adds_allowed) + (p.to_remove.len() - removes_allowed);
    let adds: Vec<(String, Value)> = p.to_add[..adds_allowed]
        .iter()
        .map(|subject| {
            let lookup =
                grouper::subject_lookup(subject, &target.lookup, target.source_id.as_deref());
            (subject.clone(), lookup)
        })
        .collect();
    let removes: Vec<(String, Value)> = p.to_remove[..removes_allowed]
        .iter()
        .map(|m| (m.id.clone(), grouper::member_lookup(m)))
        .collect();
    let _ = grouper_client::write(s, conn, WriteOp::Add, target, &adds, report)
        && grouper_client::write(s, conn, WriteOp::Delete, target, &removes, report);
}

fn sync_target(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
    hub: &HubView,
    budget: &mut ChangeBudget,
) -> TargetReport {
    let mut report = TargetReport::new(&target.group_path, target.mode.as_str());
    let desired = desired_members(target, &hub.users);
    report.users_selected = desired.selected;
    report.admins_skipped = desired.admins_skipped;
    report.users_mapped = desired.mapped;
    report.users_unmapped = desired.unmapped;
    report.duplicates_collapsed = desired.duplicates;
    if desired.unmapped > 0 {
        s.log.warn(&format!(
            "{}: {} selected user(s) have no usable subject in their auth_state and are skipped",
            target.group_path, desired.unmapped
        ));
    }
    let current = match grouper_client::read_group(s, conn, target) {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    report.current_members = current.len();
    // A group that could not be read in full never gets this far.
    let incomplete = hub.incomplete.as_ref().map(|e| e.message.as_str());
    let p = plan(target, &desired.subjects, &current, incomplete);
    report.to_add = p.to_add.len();
    report.to_remove = p.to_remove.len();
    report.protected_kept = p.protected_kept;
    report.unmanaged_kept = p.unmanaged_kept;
    report.kept_by_mode = p.kept_by_mode;
    if let Some(w) = &p.withheld {
        report.withheld_removals = w.count;
        report.withheld_reason = Some(w.reason.clone());
        s.log.warn(&format!(
            "{}: withholding {} removal(s): {}",
            target.group_path, w.count, w.reason
        ));
    }
    if s.log.enabled(LogLevel::Debug) {
        let removing: Vec<&str> = p.to_remove.iter().map(|m| m.id.as_str()).collect();
        s.log.debug(&format!(
            "{}: to add {:?}; to remove {:?}",
            target.group_path, p.to_add, removing
        ));
    }
    if !s.settings.dry_run {
        apply(s, conn, target, &p, budget, &mut report);
    }
    report.outcome = if report.error.is_some() {
        Outcome::Failed
    } else if p.withheld.is_some() {
        Outcome::RemovalsWithheld
    } else if report.changes_remaining > 0 {
        Outcome::ChangesRemaining
    } else {
        Outcome::Converged
    };
    report
}

fn log_summary(s: &Session, report: &Report) {
    let settings = s.settings;
    for t in &report.targets {
        s.log.info(&format!(
            "pass {}: {} outcome={} users={} mapped={} unmapped={} members={} to_add={} to_remove={} added={} removed={} withheld={} remaining={} failures={}{}",
            if settings.dry_run { "(dry run)" } else { "done" },
            t.group,
            t.outcome.as_str(),
            t.users_selected,
            t.users_mapped,
            t.users_unmapped,
            t.current_members,
            t.to_add,
            t.to_remove,
            t.added,
            t.removed,
            t.withheld_removals,
            t.changes_remaining,
            t.failures.len(),
            t.error.as_ref().map(|e| format!(" error [{}]: {}", e.kind, e.message)).unwrap_or_default()
        ));
    }
    if report.targets.is_empty() {
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        s.log.log(
            LogLevel::Error,
            &format!("pass failed: {}", errors.join("; ")),
        );
    }
}

/// Runs one complete pass and reports it. Never panics on bad input; errors end up in the report.
pub fn run(settings: &Settings, transport: &mut dyn Transport) -> Report {
    let started = Instant::now();
    let mut s = Session::new(settings, transport);
    let conn = grouper_client::connection(settings);
    let mut report = Report::new(settings.dry_run);
    match hub_reader::read(&mut s) {
        Err(e) => report.errors.push(e),
        Ok(hub) => {
            report.users_seen = hub.users.len();
            report.users_unread = hub
                .users
                .iter()
                .filter(|u| u.record == UserRecord::Unread)
                .count();
            report.users_vanished = hub
                .users
                .iter()
                .filter(|u| u.record == UserRecord::Vanished)
                .count();
            if let Some(why) = &hub.incomplete {
                report.errors.push(why.clone());
            }
            let mut budget = ChangeBudget(settings.max_changes_per_pass);
            for target in &settings.targets {
                let t = sync_target(&mut s, &conn, target, &hub, &mut budget);
                if let Some(e) = &t.error {
                    report.errors.push(e.clone());
                }
                report.changes_remaining += t.changes_remaining;
                report.targets.push(t);
            }
            report.outcome = report
                .targets
                .iter()
                .map(|t| t.outcome)
                .max()
                .unwrap_or(Outcome::Failed);
        }
    }
    report.requests = s.requests.clone();
    report.duration_ms = started.elapsed().as_millis() as u64;
    log_summary(&s, &report);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::http::{self, Outcome as HttpOutcome, Request, Response};
    use crate::settings;
    use std::time::Duration;

    /// A loopback-free stand-in for both services: the closure answers each request.
    struct Fake<F: FnMut(&Request) -> HttpOutcome> {
        answer: F,
        log: Vec<String>,
    }

    impl<F: FnMut(&Request) -> HttpOutcome> Transport for Fake<F> {
        fn send_all(&mut self, requests: &[Request], _: usize) -> Vec<HttpOutcome> {
            requests
                .iter()
                .map(|r| {
                    self.log.push(format!("{} {}", r.method.as_str(), r.url));
                    (self.answer)(r)
                })
                .collect()
        }
        fn sleep(&mut self, _: Duration) {}
    }

    fn settings(extra: &[(&str, &str)]) -> Settings {
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
        settings::parse(|k| Ok(m.get(k).cloned())).unwrap()
    }

    fn json(status: u16, body: serde_json::Value) -> HttpOutcome {
        Ok(Response {
            status,
            headers: vec![("x-grouper-success".into(), "T".into())],
            body: body.to_string().into_bytes(),
        })
    }

    fn members_page(ids: &[&str]) -> HttpOutcome {
        let subjects: Vec<_> = ids
            .iter()
            .map(|i| serde_json::json!({"id": i, "sourceId": "ldap", "success": "T"}))
            .collect();
        let mut result =
            serde_json::json!({"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}});
        if !subjects.is_empty() {
            result["wsSubjects"] = subjects.into();
        }
        json(
            200,
            serde_json::json!({"WsGetMembersResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "results": [result]}}),
        )
    }

    /// Grouper's answer to an addMember batch of one subject that was added.
    fn one_added() -> HttpOutcome {
        json(
            201,
            serde_json::json!({"WsAddMemberResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"},
                "results": [{"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}}]}}),
        )
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
        };
        let report = run(&settings(&[]), &mut fake);
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
        };
        let report = run(&settings(&[("retries", "2")]), &mut fake);
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
        };
        let report = run(&settings(&[]), &mut fake);
        assert_eq!(report.outcome, Outcome::Failed);
        assert!(report.errors[0].message.contains("allow_empty_hub"));
        let mut fake = Fake {
            answer: |r: &Request| hub_answer(r, &[]).unwrap_or_else(|| members_page(&[])),
            log: vec![],
        };
        let report = run(&settings(&[("allow_empty_hub", "true")]), &mut fake);
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
        };
        let report = run(&settings(&[]), &mut fake);
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
        };
        let report = run(
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
        };
        let report = run(
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
        };
        let report = run(
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
        };
        let s = settings(&[
            ("subject_from", "username"),
            ("max_changes_per_pass", "1"),
            ("grouper_batch_size", "1"),
        ]);
        let report = run(&s, &mut fake);
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
        };
        let report = run(&settings(&[]), &mut fake);
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.errors[0].kind, ErrorKind::HubForbidden);
        assert_eq!(
            report.errors[0].missing_scope.as_deref(),
            Some("list:users")
        );
        assert!(report.targets.is_empty());
    }
}
