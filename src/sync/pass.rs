//! One sync pass, as a short orchestration: read the hub, then per target hand the selection to
//! its direction (`to_grouper` or `to_hub`), and report. Talks to the outside only through [`Transport`], so it runs natively in tests.

use crate::model::Side;
use crate::policy::mapping::{desired_members, UserRecord};
use crate::policy::user_state::Prior;
use crate::settings::{LogLevel, Settings};
use crate::sync::log::LogTo;
use crate::sync::report::{
    removed_last_day, ChangeSink, Outcome, RemovalRecord, Report, TargetReport,
};
use crate::sync::session::Session;
use crate::sync::target::{selection_report, ChangeBudget, PassContext};
use crate::sync::{grouper_client, hub_reader, to_grouper, to_hub};
use crate::wire::http::Transport;
use std::time::Instant;

fn log_summary(s: &Session, report: &Report) {
    let settings = s.settings;
    for t in &report.targets {
        let line = format!(
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
        );
        s.log.record(
            LogLevel::Info,
            &line,
            &[
                ("group", t.group.clone()),
                ("outcome", t.outcome.as_str().to_string()),
                ("added", t.added.to_string()),
                ("removed", t.removed.to_string()),
                ("withheld", t.withheld_removals.to_string()),
            ],
        );
    }
    if report.targets.is_empty() {
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        s.log.log(
            LogLevel::Error,
            &format!("pass failed: {}", errors.join("; ")),
        );
    }
}

/// What a pass is given besides its settings.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The user state the previous pass returned (`None`: read every user's record).
    pub user_state: Option<Vec<u8>>,
    /// Read every user's record even with a usable user state.
    pub full: bool,
    /// Withheld plans an admin approved (`withheld_plan` hashes): such a plan goes through if the
    /// pass computes exactly it.
    pub approved_plans: Vec<String>,
    /// Removals of earlier passes, for the daily budget (older than 24 hours are ignored).
    pub removal_ledger: Vec<RemovalRecord>,
}

/// Runs one complete pass and reports it. Never panics on bad input; errors end up in the report.
pub fn run(settings: &Settings, transport: &mut dyn Transport, options: RunOptions) -> Report {
    run_reporting(settings, transport, options, None, LogTo::Stderr)
}

/// [`run`], handing every write batch the services confirmed to `sink` as it happens, and the
/// log records to `log_to`.
pub fn run_reporting(
    settings: &Settings,
    transport: &mut dyn Transport,
    options: RunOptions,
    sink: Option<&mut dyn ChangeSink>,
    log_to: LogTo,
) -> Report {
    let started = Instant::now();
    let mut s = Session::new(settings, transport).logging_to(log_to);
    if let Some(sink) = sink {
        s = s.with_sink(sink);
    }
    let conn = grouper_client::connection(settings);
    let mut report = Report::new(settings.dry_run);
    let prior = Prior::load(options.user_state, options.full, settings);
    report.user_state = prior.status;
    match hub_reader::read(&mut s, prior) {
        Err(e) => report.errors.push(e),
        Ok(mut hub) => {
            report.users_fetched = hub.reads.total();
            report.users_from_state = hub.from_state;
            report.read_reasons = hub.reads;
            report.user_state = hub.state_status;
            report.next_user_state = hub.next_state.take();
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
            report.users_departed = hub.departed;
            report.users_unlisted = hub.unlisted_found;
            if let Some(why) = &hub.incomplete {
                report.errors.push(why.clone());
            }
            let mut budget = ChangeBudget::new(settings.max_changes_per_pass);
            let now = hub.hub_time.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
            });
            // Every target's selection first: then, unless a to_hub target maps its group back
            // to them, the hub users are let go before any Grouper group is read (at 100,000
            // users they and a group's members would otherwise be held at once).
            let mappings = settings.auth_state_mappings();
            let users = std::mem::take(&mut hub.users);
            let selections: Vec<_> = hub
                .targets
                .iter()
                .map(|t| {
                    t.as_ref()
                        .map(|t| (t, desired_members(t, &users, &mappings)))
                })
                .collect();
            let to_hub = selections.iter().any(|t| {
                t.as_ref()
                    .is_ok_and(|(t, _)| matches!(t.side, Side::ToHub { .. }))
            });
            if to_hub {
                hub.users = users;
            } else {
                drop(users);
            }
            let cx = PassContext {
                conn: &conn,
                hub: &hub,
                approved_plans: &options.approved_plans,
                removed_last_day: removed_last_day(&options.removal_ledger, now),
            };
            for selection in selections {
                let t = match selection {
                    Ok((target, desired)) => {
                        let report = selection_report(&s, target, &desired);
                        match &target.side {
                            Side::ToHub { hub_group } => to_hub::sync(
                                &mut s,
                                &cx,
                                target,
                                hub_group,
                                &desired,
                                report,
                                &mut budget,
                            ),
                            Side::ToGrouper { .. } => {
                                to_grouper::sync(&mut s, &cx, target, &desired, report, &mut budget)
                            }
                        }
                    }
                    Err(unresolved) => {
                        let mut failed = TargetReport::new(&unresolved.group, unresolved.mode);
                        failed.error = Some(unresolved.error.clone());
                        failed
                    }
                };
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
            let lost: usize = report.targets.iter().map(|t| t.subjects_lost).sum();
            if lost > 0 {
                s.log.warn(&format!(
                    "{lost} membership(s) kept for hub users who are still in the hub but whose auth_state no longer yields the subject an earlier read found (lost subjects); see withheld_plan"
                ));
            }
        }
    }
    report.requests = s.requests.clone();
    report.duration_ms = started.elapsed().as_millis() as u64;
    log_summary(&s, &report);
    report
}
