//! What one call of `sync.run` amounted to, read from the typed report: the result that logs,
//! metrics, exit codes and the schedule use, and the kinds of its errors.

/// The exit statuses of every command, written once (`--help` and docs/operations.md list them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Converged, or the command did what it was asked.
    Ok = 0,
    Failed = 1,
    /// The configuration or the command line is invalid.
    Config = 2,
    /// Removals were withheld by a safety rule.
    Withheld = 3,
    /// `max_changes_per_pass` left changes for the next pass.
    Remaining = 4,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status as u8)
    }
}

use crate::sandbox::bindings::{core_kind, core_outcome, Direction, Report, SyncError};
use crate::sandbox::runner::Call;
use jupyterhub_grouper_sync::error::ErrorKind;
use jupyterhub_grouper_sync::sync::report::Outcome;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One target group's part of a pass: per-group metrics, and as kept in the pass history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub group: String,
    /// The hub group a to_hub target keeps (then the sizes are the hub group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keeps_hub_group: Option<String>,
    pub outcome: Outcome,
    pub users_selected: u32,
    /// The group's size before the pass.
    pub current_members: u32,
    pub withheld_plan: Option<String>,
    pub withheld_members: Vec<String>,
    /// `[kind] message`.
    pub error: Option<String>,
    #[serde(default)]
    pub to_add: u32,
    #[serde(default)]
    pub to_remove: u32,
    pub added: u32,
    pub removed: u32,
    /// Selected users without a usable subject.
    #[serde(rename = "skipped")]
    pub unmapped: u32,
    pub withheld: u32,
    #[serde(default)]
    pub failures: u32,
    /// Members kept because their hub users' subjects were lost.
    #[serde(default)]
    pub subjects_lost: u32,
}

/// A pass as the host accounts for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PassSummary {
    pub outcome: Outcome,
    /// The kind of every error of the pass (the pass's own, and the host's when it stopped it).
    pub error_kinds: Vec<ErrorKind>,
    pub messages: Vec<String>,
    pub users_seen: u32,
    /// User records read from the hub, by reason: new, changed, margin, refresh, full.
    pub records_read: [(&'static str, u32); 5],
    /// Users whose subjects came from the user state.
    pub users_from_state: u32,
    /// Users the listing did not return who still exist (found by the departure check).
    pub users_unlisted: u32,
    pub targets: Vec<TargetSummary>,
    pub changes_remaining: u32,
    pub denied_requests: u32,
    pub duration: Duration,
    /// The largest linear memory the component grew to.
    pub peak_memory_bytes: usize,
    pub dry_run: bool,
    /// The component's JSON report, when it produced one.
    pub json: Option<String>,
    /// The settings were rejected before anything ran.
    pub config_error: bool,
}

fn error_line(e: &SyncError) -> String {
    format!("[{}] {}", core_kind(e.kind), e.message)
}

impl PassSummary {
    fn empty(call_duration: Duration, denied: u32) -> PassSummary {
        PassSummary {
            outcome: Outcome::Failed,
            error_kinds: Vec::new(),
            messages: Vec::new(),
            users_seen: 0,
            records_read: [
                ("new", 0),
                ("changed", 0),
                ("margin", 0),
                ("refresh", 0),
                ("full", 0),
            ],
            users_from_state: 0,
            users_unlisted: 0,
            targets: Vec::new(),
            changes_remaining: 0,
            denied_requests: denied,
            duration: call_duration,
            peak_memory_bytes: 0,
            dry_run: false,
            json: None,
            config_error: false,
        }
    }

    /// A pass that did not run (the host could not start it), and why.
    pub fn not_run(message: String) -> PassSummary {
        let mut s = PassSummary::empty(Duration::ZERO, 0);
        s.messages.push(message);
        s
    }

    pub fn from_call(call: &Call<Result<Report, SyncError>>) -> PassSummary {
        let mut s = PassSummary::empty(call.duration, call.denied_requests);
        s.peak_memory_bytes = call.peak_memory_bytes;
        match &call.result {
            Err(stopped) => {
                s.error_kinds.push(stopped.kind());
                s.messages
                    .push(format!("[{}] {}", stopped.kind(), stopped.message()));
            }
            Ok(Err(config)) => {
                s.config_error = true;
                s.error_kinds.push(core_kind(config.kind));
                s.messages.push(error_line(config));
            }
            Ok(Ok(r)) => {
                s.outcome = core_outcome(r.outcome);
                s.error_kinds = r.errors.iter().map(|e| core_kind(e.kind)).collect();
                s.messages = r.errors.iter().map(error_line).collect();
                s.users_seen = r.users_seen;
                let why = &r.read_reasons;
                s.records_read = [
                    ("new", why.new_users),
                    ("changed", why.changed),
                    ("margin", why.margin),
                    ("refresh", why.refresh),
                    ("full", why.full),
                ];
                s.users_from_state = r.users_from_state;
                s.users_unlisted = r.users_unlisted;
                s.targets = r
                    .targets
                    .iter()
                    .map(|t| TargetSummary {
                        group: t.group.clone(),
                        keeps_hub_group: (t.direction == Direction::ToHub)
                            .then(|| t.hub_group.clone())
                            .flatten(),
                        outcome: core_outcome(t.outcome),
                        users_selected: t.users_selected,
                        current_members: t.current_members,
                        withheld_plan: t.withheld_plan.clone(),
                        withheld_members: t.withheld_members.clone(),
                        error: t.error.as_ref().map(error_line),
                        to_add: t.to_add,
                        to_remove: t.to_remove,
                        added: t.added,
                        removed: t.removed,
                        unmapped: t.users_unmapped,
                        withheld: t.withheld_removals,
                        failures: t.failures.len() as u32,
                        subjects_lost: t.subjects_lost,
                    })
                    .collect();
                s.changes_remaining = r.changes_remaining;
                s.dry_run = r.dry_run;
                s.json = Some(r.json.clone());
            }
        }
        if s.denied_requests > 0 && !s.error_kinds.contains(&ErrorKind::EgressDenied) {
            s.error_kinds.push(ErrorKind::EgressDenied);
        }
        s
    }

    /// User records read from the hub, whatever the reason.
    pub fn users_fetched(&self) -> u32 {
        self.records_read.iter().map(|(_, n)| n).sum()
    }

    /// One count summed over the pass's targets.
    pub fn total(&self, count: fn(&TargetSummary) -> u32) -> u32 {
        self.targets.iter().map(count).sum()
    }

    /// Counts as a success for readiness and the schedule: the group is as up to date as safety allows.
    pub fn succeeded(&self) -> bool {
        self.outcome != Outcome::Failed
    }

    /// Exit status of `once`.
    pub fn exit_status(&self) -> ExitStatus {
        match self.outcome {
            _ if self.config_error => ExitStatus::Config,
            Outcome::Converged => ExitStatus::Ok,
            Outcome::Failed => ExitStatus::Failed,
            Outcome::RemovalsWithheld => ExitStatus::Withheld,
            Outcome::ChangesRemaining => ExitStatus::Remaining,
        }
    }

    pub fn log(&self) {
        let result = self.outcome.as_str();
        let ms = self.duration.as_millis() as u64;
        let kinds: Vec<&str> = self.error_kinds.iter().map(|k| k.as_str()).collect();
        let line = format!(
            "pass {result}{}: users={} fetched={} from_state={} to_add={} to_remove={} added={} removed={} unmapped={} withheld={} remaining={} failures={} duration_ms={ms} component_memory_mb={:.1}",
            if self.dry_run { " (dry run)" } else { "" },
            self.users_seen,
            self.users_fetched(),
            self.users_from_state,
            self.total(|t| t.to_add),
            self.total(|t| t.to_remove),
            self.total(|t| t.added),
            self.total(|t| t.removed),
            self.total(|t| t.unmapped),
            self.total(|t| t.withheld),
            self.changes_remaining,
            self.total(|t| t.failures),
            self.peak_memory_bytes as f64 / (1 << 20) as f64,
        );
        match self.outcome {
            Outcome::Failed => tracing::error!(
                result,
                error_kinds = %kinds.join(","),
                "{line}; errors: {}",
                self.messages.join("; ")
            ),
            Outcome::RemovalsWithheld | Outcome::ChangesRemaining => {
                tracing::warn!(result, "{line}")
            }
            Outcome::Converged => tracing::info!(result, "{line}"),
        }
        if self.denied_requests > 0 {
            tracing::warn!(
                denied = self.denied_requests,
                "the egress policy refused requests during the pass"
            );
        }
    }
}
