//! One sync pass: read the hub, read each target group, plan, write, report.
//! Talks to the outside only through [`Transport`], so it runs natively in tests too.

use crate::grouper::{self, Connection, Member, WriteOp};
use crate::http::{self, send_with_retries, Outcome as HttpOutcome, Request, Transport};
use crate::hub::{self, ListedUser, UserError};
use crate::log::Logger;
use crate::mapping::{desired_members, HubUser, UserRecord};
use crate::plan::plan;
use crate::report::{Outcome, Report, Requests, SubjectFailure, TargetReport};
use crate::settings::{Settings, SubjectFrom, Target};
use std::collections::BTreeSet;
use std::time::Instant;

/// Upper bound on pages of any listing, whatever the server says.
const MAX_PAGES: usize = 100_000;

struct Pass<'a> {
    settings: &'a Settings,
    transport: &'a mut dyn Transport,
    log: Logger,
    requests: Requests,
    grouper: Connection,
}

/// The hub side as far as it could be read.
struct HubView {
    users: Vec<HubUser>,
    /// `Some(reason)` when some selected user could not be read.
    incomplete: Option<String>,
}

fn transport_error(what: &str, outcome: HttpOutcome) -> Result<http::Response, String> {
    outcome.map_err(|e| format!("{what}: {e}"))
}

impl Pass<'_> {
    fn hub_send(&mut self, requests: &[Request], in_flight: usize) -> Vec<HttpOutcome> {
        let h = &self.settings.http;
        let (out, sent) =
            send_with_retries(self.transport, requests, in_flight, h.retries, h.backoff);
        self.requests.jupyterhub += sent;
        out
    }

    fn grouper_send(&mut self, request: &Request) -> HttpOutcome {
        let h = &self.settings.http;
        let (mut out, sent) = send_with_retries(
            self.transport,
            std::slice::from_ref(request),
            1,
            h.retries,
            h.backoff,
        );
        self.requests.grouper += sent;
        out.pop().expect("one outcome per request")
    }

    fn list_users(&mut self) -> Result<(Vec<ListedUser>, Option<String>), String> {
        let s = self.settings;
        let (mut offset, mut limit) = (0u64, s.api_page_size as u64);
        let mut users: Vec<ListedUser> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut last_total = None;
        let mut max_pages = MAX_PAGES;
        for page_no in 1.. {
            if page_no > max_pages {
                return Err(format!(
                    "listing hub users: more than {max_pages} pages; _pagination.next never ended"
                ));
            }
            let req = hub::list_users_request(&s.hub_api_url, s.hub_token.expose(), offset, limit);
            let resp = transport_error("listing hub users", self.hub_send(&[req], 1).remove(0))?;
            let page = hub::parse_users_page(&resp).map_err(|e| e.0)?;
            for u in page.users {
                if seen.insert(u.name.clone()) {
                    users.push(u);
                }
            }
            if let Some(total) = page.total {
                last_total = Some(total);
                if page_no == 1 {
                    let applied = page
                        .limit
                        .or(page.next.map(|(_, l)| l))
                        .unwrap_or(limit)
                        .max(1);
                    max_pages = total.div_ceil(applied) as usize + 2;
                }
            }
            match page.next {
                None => break,
                Some((next_offset, next_limit)) => {
                    if next_offset <= offset {
                        return Err(format!(
                            "listing hub users: _pagination.next went from offset {offset} to {next_offset}; refusing to loop"
                        ));
                    }
                    (offset, limit) = (next_offset, next_limit);
                }
            }
        }
        // Offset paging can skip users when others are deleted mid-listing; count what we got.
        let incomplete = match last_total {
            Some(total) if (users.len() as u64) < total => Some(format!(
                "the hub reported {total} users but the listing returned {} (users changed during the pass?)",
                users.len()
            )),
            _ => None,
        };
        Ok((users, incomplete))
    }

    fn read_hub(&mut self) -> Result<HubView, String> {
        let s = self.settings;
        let (listed, mut incomplete) = self.list_users()?;
        self.log.info(&format!("listed {} hub users", listed.len()));
        if listed.is_empty() && !s.allow_empty_hub {
            return Err("the hub listed no users; refusing to treat that as an empty group (set allow_empty_hub=true if it is real)".into());
        }
        let needs_record = |u: &ListedUser| {
            s.targets.iter().any(|t| {
                matches!(t.subject_from, SubjectFrom::AuthState(_))
                    && (t.include_admins || !u.admin)
            })
        };
        let wanted: Vec<usize> = (0..listed.len())
            .filter(|&i| needs_record(&listed[i]))
            .collect();
        let mut records: Vec<UserRecord> = vec![UserRecord::Listed; listed.len()];
        if !wanted.is_empty() {
            let reqs: Vec<Request> = wanted
                .iter()
                .map(|&i| hub::user_request(&s.hub_api_url, s.hub_token.expose(), &listed[i].name))
                .collect();
            let outcomes = self.hub_send(&reqs, s.concurrency);
            let mut unread: Vec<String> = Vec::new();
            for (&i, outcome) in wanted.iter().zip(outcomes) {
                let name = &listed[i].name;
                records[i] = match outcome {
                    Err(e) => {
                        unread.push(format!("reading hub user {name:?}: {e}"));
                        UserRecord::Unread
                    }
                    Ok(resp) => match hub::parse_user(name, &resp) {
                        Ok(Some(state)) => UserRecord::Read(state),
                        Ok(None) => UserRecord::Vanished,
                        Err(UserError::Permission(e)) => return Err(e.0),
                        Err(UserError::Unreadable(e)) => {
                            unread.push(e.0);
                            UserRecord::Unread
                        }
                    },
                };
            }
            if let Some(first) = unread.first() {
                self.log.warn(&format!(
                    "{} hub user record(s) could not be read; first: {first}",
                    unread.len()
                ));
                incomplete.get_or_insert(format!(
                    "{} hub user record(s) could not be read; first: {first}",
                    unread.len()
                ));
            }
        }
        let users = listed
            .into_iter()
            .zip(records)
            .map(|(u, record)| HubUser {
                name: u.name,
                admin: u.admin,
                record,
            })
            .collect();
        Ok(HubView { users, incomplete })
    }

    fn read_group(&mut self, target: &Target) -> Result<Vec<Member>, String> {
        let s = self.settings;
        let page_size = s.grouper_page_size;
        let mut members = Vec::new();
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let mut unresolvable = 0;
        for page_number in 1..=MAX_PAGES {
            let req = grouper::get_members_request(
                &self.grouper,
                &target.group_path,
                &target.lookup,
                target.source_id.as_deref(),
                page_size,
                page_number,
            );
            let what = format!("reading members of {}", target.group_path);
            let resp = transport_error(&what, self.grouper_send(&req))?;
            let page = grouper::parse_get_members(&target.group_path, &target.lookup, &resp)
                .map_err(|e| e.0)?;
            unresolvable += page.unresolvable;
            let count = page.members.len();
            let mut new = 0;
            for m in page.members {
                if seen.insert((m.source_id.clone(), m.id.clone())) {
                    new += 1;
                    members.push(m);
                }
            }
            if count > page_size {
                break; // the server ignored pageSize and sent everything
            }
            if count < page_size {
                break;
            }
            if new == 0 {
                return Err(format!(
                    "{what}: page {page_number} repeated earlier members; the server does not page"
                ));
            }
        }
        if unresolvable > 0 {
            self.log.warn(&format!(
                "{}: Grouper could not resolve {unresolvable} member(s)",
                target.group_path
            ));
        }
        Ok(members)
    }

    /// Sends one operation's batches; returns false when a batch failed as a whole.
    fn write(
        &mut self,
        op: WriteOp,
        target: &Target,
        items: &[(String, serde_json::Value)],
        report: &mut TargetReport,
    ) -> bool {
        for batch in items.chunks(self.settings.grouper_batch_size) {
            let labels: Vec<String> = batch.iter().map(|(label, _)| label.clone()).collect();
            let lookups: Vec<serde_json::Value> = batch.iter().map(|(_, l)| l.clone()).collect();
            let req = grouper::write_request(&self.grouper, op, &target.group_path, &lookups);
            let what = format!("{} members of {}", op.as_str(), target.group_path);
            let rows = transport_error(&what, self.grouper_send(&req)).and_then(|resp| {
                grouper::parse_write(op, &target.group_path, &labels, &resp).map_err(|e| e.0)
            });
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    report.error = Some(e);
                    return false;
                }
            };
            for row in rows {
                if row.success {
                    match op {
                        WriteOp::Add => report.added += 1,
                        WriteOp::Delete => report.removed += 1,
                    }
                    continue;
                }
                if row.subject_problem.is_none() && report.error.is_none() {
                    report.error = Some(format!(
                        "{} {}: {} {}",
                        op.as_str(),
                        row.subject,
                        row.code,
                        row.message
                    ));
                }
                let code = row.reported_code().to_string();
                report.failures.push(SubjectFailure {
                    operation: op.as_str().into(),
                    subject: row.subject,
                    code,
                    message: row.message,
                });
            }
        }
        true
    }

    fn sync_target(&mut self, target: &Target, hub: &HubView) -> TargetReport {
        let mut report = TargetReport::new(&target.group_path, target.mode.as_str());
        let desired = desired_members(target, &hub.users);
        report.users_selected = desired.selected;
        report.admins_skipped = desired.admins_skipped;
        report.users_mapped = desired.mapped;
        report.users_unmapped = desired.unmapped;
        report.duplicates_collapsed = desired.duplicates;
        if desired.unmapped > 0 {
            self.log.warn(&format!(
                "{}: {} selected user(s) have no usable subject in their auth_state and are skipped",
                target.group_path, desired.unmapped
            ));
        }
        let current = match self.read_group(target) {
            Ok(c) => c,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        };
        report.current_members = current.len();
        // A group that could not be read in full never gets this far.
        let p = plan(
            target,
            &desired.subjects,
            &current,
            hub.incomplete.as_deref(),
        );
        report.to_add = p.to_add.len();
        report.to_remove = p.to_remove.len();
        report.protected_kept = p.protected_kept;
        report.unmanaged_kept = p.unmanaged_kept;
        report.kept_by_mode = p.kept_by_mode;
        if let Some(w) = &p.withheld {
            report.withheld_removals = w.count;
            report.withheld_reason = Some(w.reason.clone());
            self.log.warn(&format!(
                "{}: withholding {} removal(s): {}",
                target.group_path, w.count, w.reason
            ));
        }
        if self.log.enabled(crate::settings::LogLevel::Debug) {
            let removing: Vec<&str> = p.to_remove.iter().map(|m| m.id.as_str()).collect();
            self.log.debug(&format!(
                "{}: to add {:?}; to remove {:?}",
                target.group_path, p.to_add, removing
            ));
        }
        if !self.settings.dry_run {
            let adds: Vec<(String, serde_json::Value)> = p
                .to_add
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        grouper::subject_lookup(s, &target.lookup, target.source_id.as_deref()),
                    )
                })
                .collect();
            let removes: Vec<(String, serde_json::Value)> = p
                .to_remove
                .iter()
                .map(|m| (m.id.clone(), grouper::member_lookup(m)))
                .collect();
            let _ = self.write(WriteOp::Add, target, &adds, &mut report)
                && self.write(WriteOp::Delete, target, &removes, &mut report);
        }
        report.outcome = if report.error.is_some() {
            Outcome::Failed
        } else if p.withheld.is_some() {
            Outcome::RemovalsWithheld
        } else {
            Outcome::Converged
        };
        report
    }
}

/// Runs one complete pass and reports it. Never panics on bad input; errors end up in the report.
pub fn run(settings: &Settings, transport: &mut dyn Transport) -> Report {
    let started = Instant::now();
    let log = Logger {
        level: settings.log_level,
    };
    let grouper = Connection::new(
        &settings.grouper_base_url,
        &settings.grouper_user,
        settings.grouper_password.expose(),
        &settings.grouper_content_type,
    );
    let mut pass = Pass {
        settings,
        transport,
        log,
        requests: Requests::default(),
        grouper,
    };
    let mut report = Report {
        outcome: Outcome::Failed,
        dry_run: settings.dry_run,
        users_seen: 0,
        users_unread: 0,
        users_vanished: 0,
        targets: Vec::new(),
        errors: Vec::new(),
        duration_ms: 0,
        requests: Requests::default(),
    };
    match pass.read_hub() {
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
            for target in &settings.targets {
                let t = pass.sync_target(target, &hub);
                if let Some(e) = &t.error {
                    report.errors.push(e.clone());
                }
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
    report.requests = pass.requests.clone();
    report.duration_ms = started.elapsed().as_millis() as u64;
    for t in &report.targets {
        log.info(&format!(
            "pass {}: {} outcome={} users={} mapped={} unmapped={} members={} to_add={} to_remove={} added={} removed={} withheld={} failures={}{}",
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
            t.failures.len(),
            t.error.as_ref().map(|e| format!(" error: {e}")).unwrap_or_default()
        ));
    }
    if report.targets.is_empty() {
        log.log(
            crate::settings::LogLevel::Error,
            &format!("pass failed: {}", report.errors.join("; ")),
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;
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
        assert!(
            report.errors[0].contains("reading members of a:b"),
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
        assert!(report.errors[0].contains("allow_empty_hub"));
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
            report.errors[0].contains("refusing to loop"),
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
            report.errors[0].contains("reported 3 users"),
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
            report.errors[0].contains("does not page"),
            "{:?}",
            report.errors
        );
        assert_eq!(pages, 2);
    }
}
