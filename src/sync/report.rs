//! The structured report of one pass. Holds counts and per-subject failures; never secrets,
//! tokens or auth_state, and no member lists (those go to the debug log only).

use crate::error::{ErrorKind, SyncError};
use crate::model::{Direction, Mode};
use crate::policy::user_state::{ReadReasons, StateStatus};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Converged,
    /// Everything planned was safe, but `max_changes_per_pass` left some changes for the next pass.
    ChangesRemaining,
    RemovalsWithheld,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Converged => "converged",
            Outcome::ChangesRemaining => "changes_remaining",
            Outcome::RemovalsWithheld => "removals_withheld",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectFailure {
    pub operation: String,
    pub subject: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    /// The Grouper group (written by to_grouper, read by to_hub).
    pub group: String,
    pub direction: Direction,
    /// The hub group selected (to_grouper) or written (to_hub).
    pub hub_group: Option<String>,
    pub outcome: Outcome,
    pub mode: Mode,
    pub users_selected: usize,
    pub admins_skipped: usize,
    /// Users left out by the target's filters (activity, running server, excluded names).
    pub users_filtered: usize,
    /// to_hub: Grouper members that no hub user maps to (skipped: hub users are never created).
    pub members_without_hub_user: usize,
    /// The written group did not exist and was created in this pass.
    pub group_created: bool,
    /// What the pass found and did about the group's provisioning marks (`provision_to`); none
    /// when it had nothing to do (no `provision_to`, or an existing group without
    /// `ensure_provisioning`).
    pub provisioning: Option<ProvisioningReport>,
    /// What the pass found and did about the Google Group's settings (`google_group`).
    pub google: Option<GoogleReport>,
    pub users_mapped: usize,
    pub users_unmapped: usize,
    pub duplicates_collapsed: usize,
    pub current_members: usize,
    pub to_add: usize,
    pub to_remove: usize,
    pub added: usize,
    pub removed: usize,
    pub protected_kept: usize,
    pub unmanaged_kept: usize,
    /// Members not in the hub that a mirror pass would remove, kept because the mode is additive.
    pub kept_by_mode: usize,
    /// Members kept because their hub users are still in the hub but read no subject where an
    /// earlier read found one (their removal is withheld under a plan name).
    pub subjects_lost: usize,
    pub withheld_removals: usize,
    pub withheld_reason: Option<String>,
    /// The withheld plan's name for `grouper-sync approve` (none for an incomplete read).
    pub withheld_plan: Option<String>,
    /// The member ids the withheld plan would remove; member ids stay out of the JSON.
    #[serde(skip)]
    pub withheld_members: Vec<String>,
    /// The approved plan this pass applied.
    pub approved_plan: Option<String>,
    /// Planned changes not made because of `max_changes_per_pass`.
    pub changes_remaining: usize,
    pub failures: Vec<SubjectFailure>,
    pub error: Option<SyncError>,
    /// The changes Grouper confirmed, for the host's change log; member ids stay out of the JSON.
    #[serde(skip)]
    pub changes: Vec<Change>,
}

/// A target's Google Group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GoogleReport {
    /// Its address.
    pub group: String,
    /// Google has it (false: not provisioned yet; the next pass looks again).
    pub provisioned: bool,
    /// The settings fields set in this pass because they differed (a dry run: would be).
    pub changed: Vec<String>,
}

/// A target's provisioning marks, by provisioner id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProvisioningReport {
    /// Marked in this pass (a dry run: would be).
    pub marked: Vec<String>,
    /// Already marked.
    pub present: Vec<String>,
    /// Marked, but with `provisioningDoProvision` switched off by someone: left alone.
    pub switched_off: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeOp {
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeReason {
    /// A selected hub user maps to the subject and the group did not hold it.
    InHub,
    /// No selected hub user maps to the member any more.
    NotInHub,
    /// Removed by an approved withheld plan.
    ApprovedPlan,
    /// to_hub: the Grouper group holds the user's subject and the hub group did not hold the user.
    InGrouper,
    /// to_hub: the Grouper group no longer holds the user's subject.
    NotInGrouper,
}

/// One add or removal Grouper confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub op: ChangeOp,
    pub subject: String,
    pub source: Option<String>,
    pub hub_user: Option<String>,
    pub reason: ChangeReason,
}

/// The changes of one write batch, as soon as the service confirmed them: under `sync.run` the
/// component writes each as one line of JSON to stdout, `{"confirmed": {…}}`, so that a host
/// logs every confirmed change even of a pass it stops (deadline, SIGINT). The report at the
/// end holds the same changes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedBatch {
    /// The Grouper group of the target.
    pub target: String,
    pub direction: Direction,
    /// The hub group a to_hub target writes.
    pub hub_group: Option<String>,
    /// The group written, as the removal budget counts it ([`crate::settings::Target::written_group`]).
    pub written: String,
    /// The approved plan, for removals it let through.
    pub approved_plan: Option<String>,
    pub changes: Vec<Change>,
}

/// One line of the component's stdout under the typed exports: `{"confirmed": …}` or
/// `{"log": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressLine {
    Confirmed(ConfirmedBatch),
    Log(crate::sync::log::LogRecord),
}

impl ConfirmedBatch {
    pub fn removals(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.op == ChangeOp::Remove)
            .count()
    }
}

/// Receives each confirmed batch as it happens.
pub trait ChangeSink {
    fn confirmed(&mut self, batch: &ConfirmedBatch);
}

/// Removals from one written group at one time, as the host keeps them for the daily budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalRecord {
    /// [`crate::settings::Target::written_group`].
    pub target: String,
    /// Seconds since the epoch.
    pub at: i64,
    pub count: u32,
}

/// Removals per written group within the 24 hours before `now` (seconds since the epoch).
pub fn removed_last_day(
    ledger: &[RemovalRecord],
    now: i64,
) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    // records from after `now` count too: the host's clock may run ahead of the hub's
    for r in ledger.iter().filter(|r| r.at > now - 86_400) {
        *out.entry(r.target.clone()).or_default() += r.count as usize;
    }
    out
}

impl TargetReport {
    pub fn new(group: &str, mode: Mode) -> Self {
        TargetReport {
            group: group.to_string(),
            direction: Direction::ToGrouper,
            hub_group: None,
            outcome: Outcome::Failed,
            mode,
            users_selected: 0,
            admins_skipped: 0,
            users_filtered: 0,
            members_without_hub_user: 0,
            group_created: false,
            provisioning: None,
            google: None,
            users_mapped: 0,
            users_unmapped: 0,
            duplicates_collapsed: 0,
            current_members: 0,
            to_add: 0,
            to_remove: 0,
            added: 0,
            removed: 0,
            protected_kept: 0,
            unmanaged_kept: 0,
            kept_by_mode: 0,
            subjects_lost: 0,
            withheld_removals: 0,
            withheld_reason: None,
            withheld_plan: None,
            withheld_members: Vec::new(),
            approved_plan: None,
            changes_remaining: 0,
            failures: Vec::new(),
            error: None,
            changes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub jupyterhub: u32,
    pub grouper: u32,
    pub google: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub dry_run: bool,
    pub users_seen: usize,
    pub users_unread: usize,
    pub users_vanished: usize,
    /// Users the state knew whom the listing did not return, confirmed gone (404).
    pub users_departed: usize,
    /// Users the state knew whom the listing did not return who still exist (skipped by offset
    /// paging); read directly.
    pub users_unlisted: usize,
    /// User records read from the hub (`GET /users/{name}`) in this pass.
    pub users_fetched: usize,
    /// Users whose subjects came from the user state instead.
    pub users_from_state: usize,
    pub read_reasons: ReadReasons,
    /// What became of the user state handed in.
    pub user_state: StateStatus,
    pub targets: Vec<TargetReport>,
    pub errors: Vec<SyncError>,
    pub changes_remaining: usize,
    pub duration_ms: u64,
    pub requests: Requests,
    /// The user state for the next pass; never part of the JSON report.
    #[serde(skip)]
    pub next_user_state: Option<Vec<u8>>,
}

impl Report {
    /// A report with nothing done yet (outcome failed until the pass says otherwise).
    pub fn new(dry_run: bool) -> Report {
        Report {
            outcome: Outcome::Failed,
            dry_run,
            users_seen: 0,
            users_unread: 0,
            users_vanished: 0,
            users_departed: 0,
            users_unlisted: 0,
            users_fetched: 0,
            users_from_state: 0,
            read_reasons: ReadReasons::default(),
            user_state: StateStatus::None,
            targets: Vec::new(),
            errors: Vec::new(),
            changes_remaining: 0,
            duration_ms: 0,
            requests: Requests::default(),
            next_user_state: None,
        }
    }

    /// The report of a pass that could not start (its settings were rejected).
    pub fn not_started(error: SyncError) -> Report {
        let mut report = Report::new(false);
        report.errors.push(error);
        report
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({"outcome": "failed", "errors": [{"kind": "internal", "message": format!("report: {e}")}]})
                .to_string()
        })
    }

    /// The kind of the first error, which decides between "upstream failed" and "other failure".
    pub fn first_error_kind(&self) -> Option<ErrorKind> {
        self.errors.first().map(|e| e.kind)
    }

    /// Process exit status for `wasi:cli/run`: 0 only for a converged pass.
    pub fn exit_ok(&self) -> bool {
        self.outcome == Outcome::Converged
    }
}
