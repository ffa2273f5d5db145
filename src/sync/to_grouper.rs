//! A `to_grouper` target: read the Grouper group (creating it where allowed), plan, and write the
//! adds and then the removals in batches through the Grouper client.

use crate::model::Target;
use crate::policy::mapping::Desired;
use crate::policy::plan::Plan;
use crate::policy::plan::PlanScope;
use crate::sync::google;
use crate::sync::grouper_client;
use crate::sync::provisioning;
use crate::sync::report::{Change, ChangeOp, ChangeReason, TargetReport};
use crate::sync::session::Session;
use crate::sync::target::{plan_target, target_outcome, ChangeBudget, PassContext};
use crate::wire::grouper::{self, Connection, WriteOp};
use serde_json::Value;
use std::collections::BTreeSet;

/// A `to_grouper` target: read the Grouper group, plan, write.
pub fn sync(
    s: &mut Session,
    cx: &PassContext,
    target: &Target,
    desired: &Desired,
    mut report: TargetReport,
    budget: &mut ChangeBudget,
) -> TargetReport {
    let (current, origin) =
        match grouper_client::read_or_create_group(s, cx.conn, target, &mut report) {
            Ok(read) => read,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        };
    // A group that could not be read in full never gets this far.
    let lost: BTreeSet<String> = desired.lost.keys().cloned().collect();
    let p = plan_target(
        s,
        cx,
        target,
        &PlanScope::of(target),
        (&desired.users_by_subject, &current),
        &lost,
        &mut report,
    );
    if !s.settings.dry_run {
        apply(s, cx.conn, target, &p, budget, desired, &mut report);
    }
    provisioning::ensure_marks(s, cx.conn, target, origin, &mut report);
    google::keep_settings(s, target, &mut report);
    report.outcome = target_outcome(&report, &p);
    report
}

fn apply(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
    p: &Plan,
    budget: &mut ChangeBudget,
    desired: &Desired,
    report: &mut TargetReport,
) {
    let allowed = budget.allow(p);
    report.changes_remaining = allowed.remaining;
    // Lookups are built one batch at a time: memory holds a batch, not the whole plan.
    let batch = s.settings.grouper_batch_size;
    for chunk in p.to_add[..allowed.adds].chunks(batch) {
        let adds: Vec<(Change, Value)> = chunk
            .iter()
            .map(|subject| {
                let lookup = grouper::subject_lookup(
                    subject,
                    &target.rules.lookup,
                    target.rules.source_id.as_deref(),
                );
                let change = Change {
                    op: ChangeOp::Add,
                    subject: subject.clone(),
                    source: target.rules.source_id.clone(),
                    hub_user: desired
                        .users_by_subject
                        .users_of(subject)
                        .next()
                        .map(String::from),
                    reason: ChangeReason::InHub,
                };
                (change, lookup)
            })
            .collect();
        if !grouper_client::write(s, conn, WriteOp::Add, target, &adds, report) {
            return;
        }
    }
    for chunk in p.to_remove[..allowed.removes].chunks(batch) {
        let reason = if report.approved_plan.is_some() {
            ChangeReason::ApprovedPlan
        } else {
            ChangeReason::NotInHub
        };
        let removes: Vec<(Change, Value)> = chunk
            .iter()
            .map(|m| {
                let change = Change {
                    op: ChangeOp::Remove,
                    subject: m.id.clone(),
                    source: Some(m.source_id.clone()),
                    hub_user: None,
                    reason,
                };
                (change, grouper::member_lookup(m))
            })
            .collect();
        if !grouper_client::write(s, conn, WriteOp::Delete, target, &removes, report) {
            return;
        }
    }
}
