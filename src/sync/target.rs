//! The pipeline both directions share: a target's report from its selection, its plan under the
//! safety rules (with an approved plan let through), the per-pass change budget, its outcome.

use crate::model::Member;
use crate::model::Target;
use crate::policy::mapping::Desired;
use crate::policy::plan::{plan, Plan, PlanScope, Safety, Subjects};
use crate::settings::LogLevel;
use crate::sync::hub_reader::HubView;
use crate::sync::report::{Outcome, TargetReport};
use crate::sync::session::Session;
use crate::wire::grouper::Connection;
use std::collections::BTreeSet;

/// What is left of `max_changes_per_pass` as the targets use it up.
pub struct ChangeBudget(Option<usize>);

/// How many of a plan's adds and removals a pass may make now, adds first.
pub struct Allowed {
    pub adds: usize,
    pub removes: usize,
    /// What waits for the next pass.
    pub remaining: usize,
}

impl ChangeBudget {
    pub fn new(max_changes_per_pass: Option<usize>) -> Self {
        ChangeBudget(max_changes_per_pass)
    }

    /// Takes what this plan may make now: adds first, since they never cost anyone their
    /// membership.
    pub fn allow(&mut self, p: &Plan) -> Allowed {
        let adds = self.take(p.to_add.len());
        let removes = self.take(p.to_remove.len());
        Allowed {
            adds,
            removes,
            remaining: (p.to_add.len() - adds) + (p.to_remove.len() - removes),
        }
    }

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

/// A target's report with what the selection found.
pub fn selection_report(s: &Session, target: &Target, desired: &Desired) -> TargetReport {
    let mut report = TargetReport::new(&target.group_path, target.rules.mode);
    report.direction = target.direction();
    report.hub_group = target.hub_group().map(String::from);
    report.users_selected = desired.selected;
    report.admins_skipped = desired.admins_skipped;
    report.users_filtered = desired.filtered;
    report.users_mapped = desired.mapped;
    report.users_unmapped = desired.unmapped;
    report.duplicates_collapsed = desired.duplicates;
    if desired.unmapped > 0 {
        s.log.warn(&format!(
            "{}: {} selected user(s) have no usable subject in their auth_state and are skipped",
            target.group_path, desired.unmapped
        ));
    }
    report
}

/// Plans a target's written group (by `scope`) from what was read (`desired` and `current`;
/// removals withheld when the hub was not read in full), lets an approved plan through, and
/// reports the plan.
pub fn plan_target(
    s: &Session,
    cx: &PassContext,
    target: &Target,
    scope: &PlanScope,
    (desired, current): (&dyn Subjects, &[Member]),
    lost: &BTreeSet<String>,
    report: &mut TargetReport,
) -> Plan {
    report.current_members = current.len();
    let safety = Safety {
        incomplete: cx.hub.incomplete.as_ref().map(|e| e.message.as_str()),
        lost: Some(lost),
        removed_last_day: cx
            .removed_last_day
            .get(&target.written_group())
            .copied()
            .unwrap_or(0),
    };
    let mut p = plan(scope, desired, current, safety);
    if let Some(hash) = p.approve(cx.approved_plans) {
        s.log.warn(&format!(
            "{}: {} approved plan {hash}: removing {} the safety rules had withheld",
            scope.label,
            if s.settings.dry_run {
                "(dry run) would apply"
            } else {
                "applying"
            },
            p.to_remove.len()
        ));
        report.approved_plan = Some(hash);
    }
    report_plan(s, scope.label, &p, report);
    p
}

/// Logs a withheld plan and puts it in the report.
fn report_plan(s: &Session, label: &str, p: &Plan, report: &mut TargetReport) {
    report.to_add = p.to_add.len();
    report.to_remove = p.to_remove.len();
    report.protected_kept = p.protected_kept;
    report.unmanaged_kept = p.unmanaged_kept;
    report.kept_by_mode = p.kept_by_mode;
    report.subjects_lost = p.lost_kept;
    if let Some(w) = &p.withheld {
        report.withheld_removals = w.count;
        report.withheld_reason = Some(w.reason.clone());
        report.withheld_plan = w.plan_hash.clone();
        report.withheld_members = w.removals.iter().map(|m| m.id.clone()).collect();
        let approve = w
            .plan_hash
            .as_ref()
            .map(|h| {
                format!(" (plan {h}; `grouper-sync approve {h}` lets exactly this plan through)")
            })
            .unwrap_or_default();
        let mut fields = vec![
            ("group", label.to_string()),
            ("withheld", w.count.to_string()),
        ];
        if let Some(plan) = &w.plan_hash {
            fields.push(("plan", plan.clone()));
        }
        s.log.record(
            LogLevel::Warn,
            &format!(
                "{label}: withholding {} removal(s): {}{approve}",
                w.count, w.reason
            ),
            &fields,
        );
    }
    if s.log.enabled(LogLevel::Debug) {
        let ids =
            |members: &[Member]| -> Vec<String> { members.iter().map(|m| m.id.clone()).collect() };
        let withheld = p
            .withheld
            .as_ref()
            .map(|w| ids(&w.removals))
            .unwrap_or_default();
        s.log.debug(&format!(
            "{label}: to add {:?}; to remove {:?}; withheld {:?}",
            p.to_add,
            ids(&p.to_remove),
            withheld
        ));
    }
}

/// A failure after the target's membership writes (its marks, its Google Group): the target's
/// error when it has none yet (a failed membership write says more), else a warning.
pub fn fail_after_writes(s: &Session, report: &mut TargetReport, e: crate::error::SyncError) {
    if report.error.is_none() {
        report.error = Some(e);
    } else {
        s.log.warn(&format!("{}: {}", report.group, e.message));
    }
}

/// The outcome of a target once its plan ran.
pub fn target_outcome(report: &TargetReport, p: &Plan) -> Outcome {
    if report.error.is_some() {
        Outcome::Failed
    } else if p.withheld.is_some() {
        Outcome::RemovalsWithheld
    } else if report.changes_remaining > 0 {
        Outcome::ChangesRemaining
    } else {
        Outcome::Converged
    }
}

/// What every target of a pass shares.
pub struct PassContext<'a> {
    pub conn: &'a Connection,
    pub hub: &'a HubView,
    /// Withheld plans an admin approved.
    pub approved_plans: &'a [String],
    /// Removals per written group in the last 24 hours, for the daily budget.
    pub removed_last_day: std::collections::HashMap<String, usize>,
}
