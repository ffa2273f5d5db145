//! A `to_hub` target: the Grouper group's members, mapped back to hub users through the subject
//! mapping, become the hub group's membership. The same safety rules as the other direction: an
//! incomplete read of either side removes nobody; removal limits, protected members, dry run.

use crate::model::Member;
use crate::model::Target;
use crate::policy::mapping::{hub_members, Desired};
use crate::policy::plan::{Plan, PlanScope};
use crate::sync::grouper_client;
use crate::sync::hub_client;
use crate::sync::hub_reader::HubView;
use crate::sync::report::{Change, ChangeOp, ChangeReason, TargetReport};
use crate::sync::session::Session;
use crate::sync::target::{plan_target, target_outcome, ChangeBudget, PassContext};
use std::collections::{BTreeMap, BTreeSet};

/// The hub group's members as the listing showed them.
fn current_members(hub: &HubView, group: &str) -> Vec<Member> {
    hub.users
        .iter()
        .filter(|u| u.groups.iter().any(|g| g == group))
        .map(|u| Member::hub_user(&u.name))
        .collect()
}

/// Each selected hub user's subject, for the change log.
fn subjects_by_user(desired: &Desired) -> BTreeMap<&str, &str> {
    desired
        .users_by_subject
        .iter()
        .map(|(subject, name)| (name, subject))
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
    let allowed = budget.allow(p);
    report.changes_remaining = allowed.remaining;
    let removals: Vec<String> = p.to_remove[..allowed.removes]
        .iter()
        .map(|m| m.id.clone())
        .collect();
    let batch = s.settings.hub_batch_size;
    let subjects = subjects_by_user(desired);
    let steps = [
        (ChangeOp::Add, &p.to_add[..allowed.adds]),
        (ChangeOp::Remove, &removals[..]),
    ];
    for (op, names) in steps {
        let reason = match op {
            ChangeOp::Add => ChangeReason::InGrouper,
            ChangeOp::Remove if report.approved_plan.is_some() => ChangeReason::ApprovedPlan,
            ChangeOp::Remove => ChangeReason::NotInGrouper,
        };
        for chunk in names.chunks(batch) {
            let add = op == ChangeOp::Add;
            let sent = hub_client::write_users(s, group, add, chunk);
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

/// One `to_hub` target, keeping hub group `group`: read the hub group (from the listing) and the
/// Grouper group, plan, write.
pub fn sync(
    s: &mut Session,
    cx: &PassContext,
    target: &Target,
    group: &str,
    desired: &Desired,
    mut report: TargetReport,
    budget: &mut ChangeBudget,
) -> TargetReport {
    let exists = match hub_client::ensure_group(s, target, group, &mut report) {
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
    let mut protected = target.rules.protected.clone();
    for (subject, name) in desired.users_by_subject.iter() {
        if target.rules.protected.contains(subject) {
            protected.insert(name.to_string());
        }
    }
    let label = format!("{} -> hub group {group}", target.group_path);
    let scope = PlanScope {
        label: &label,
        protected: &protected,
        source_id: None,
        ..PlanScope::of(target)
    };
    // users who lost their subject keep their hub group membership
    let lost: BTreeSet<String> = desired.lost.values().flatten().cloned().collect();
    let p = plan_target(
        s,
        cx,
        target,
        &scope,
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
