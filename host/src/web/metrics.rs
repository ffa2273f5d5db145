//! Pass metrics through `prometheus-client` (OpenMetrics text, served by `endpoint`), and the
//! readiness `/readyz` reports.

use crate::outcome::PassSummary;
use jupyterhub_grouper_sync::error::ErrorKind;
use jupyterhub_grouper_sync::sync::report::Outcome;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const RESULTS: &[Outcome] = &[
    Outcome::Converged,
    Outcome::ChangesRemaining,
    Outcome::RemovalsWithheld,
    Outcome::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

type GaugeF64 = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    passes: Family<ResultLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    duration: Histogram,
    last_attempt: GaugeF64,
    last_success: GaugeF64,
    last_duration: GaugeF64,
    added: Family<GroupLabel, Counter>,
    removed: Family<GroupLabel, Counter>,
    skipped: Family<GroupLabel, Counter>,
    withheld: Family<GroupLabel, Counter>,
    subjects_lost: Family<GroupLabel, Gauge>,
    users_unlisted: Counter,
    egress_denied: Counter,
    records_read: Family<ReasonLabel, Counter>,
    users_from_state: Gauge,
    component_memory: Gauge,
    component_instances: Gauge,
    /// Monotonic time of the last pass that did not fail, for readiness.
    succeeded_at: Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            passes: Family::default(),
            errors: Family::default(),
            // 50 ms … ~27 min: a pass against a large hub can take many minutes.
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 16)),
            last_attempt: GaugeF64::default(),
            last_success: GaugeF64::default(),
            last_duration: GaugeF64::default(),
            added: Family::default(),
            removed: Family::default(),
            skipped: Family::default(),
            withheld: Family::default(),
            subjects_lost: Family::default(),
            users_unlisted: Counter::default(),
            egress_denied: Counter::default(),
            records_read: Family::default(),
            users_from_state: Gauge::default(),
            component_memory: Gauge::default(),
            component_instances: Gauge::default(),
            succeeded_at: Mutex::new(None),
        };
        // Every result and kind is present from the start, so rates and alerts see zeros.
        for r in RESULTS {
            let _ = m.passes.get_or_create(&ResultLabel { result: r.as_str() });
        }
        for k in ErrorKind::ALL {
            let _ = m.errors.get_or_create(&KindLabel { kind: k.as_str() });
        }
        let mut registry = Registry::default();
        macro_rules! register {
            ($($name:literal, $help:literal, $metric:ident;)*) => {
                $(registry.register($name, $help, m.$metric.clone());)*
            };
        }
        register! {
            "grouper_sync_passes", "Sync passes by result", passes;
            "grouper_sync_pass_errors", "Errors of passes, by kind", errors;
            "grouper_sync_pass_duration_seconds", "Duration of passes", duration;
            "grouper_sync_last_attempt_timestamp_seconds", "When the last pass finished", last_attempt;
            "grouper_sync_last_success_timestamp_seconds", "When the last pass that did not fail finished", last_success;
            "grouper_sync_last_pass_duration_seconds", "Duration of the last pass", last_duration;
            "grouper_sync_members_added", "Members added to a Grouper group", added;
            "grouper_sync_members_removed", "Members removed from a Grouper group", removed;
            "grouper_sync_users_skipped", "Selected hub users without a usable subject", skipped;
            "grouper_sync_removals_withheld", "Removals held back by the safety rules", withheld;
            "grouper_sync_subjects_lost", "Members kept in the last pass because their hub users, still in the hub, no longer map to the subject an earlier read found", subjects_lost;
            "grouper_sync_users_unlisted", "Hub users the listing did not return (offset paging skipped them) found by looking them up", users_unlisted;
            "grouper_sync_egress_denied", "Outgoing requests refused by the egress policy", egress_denied;
            "grouper_sync_user_records_read", "Hub user records read (GET /users/{name}), by why they were read", records_read;
            "grouper_sync_users_from_state", "Users of the last pass whose subjects came from the user state", users_from_state;
            "grouper_sync_component_memory_bytes", "The component's largest linear memory in the last pass", component_memory;
            "grouper_sync_component_instances", "Component instances alive now (one while a pass runs, none between passes)", component_instances;
        }
        Metrics { registry, ..m }
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    /// Records one pass. A pass that withheld removals (or left changes for the next pass) still
    /// brought the group as far as safety allows, so it counts as a success for readiness.
    pub fn record(&self, pass: &PassSummary) {
        self.passes
            .get_or_create(&ResultLabel {
                result: pass.outcome.as_str(),
            })
            .inc();
        for kind in &pass.error_kinds {
            self.errors
                .get_or_create(&KindLabel {
                    kind: kind.as_str(),
                })
                .inc();
        }
        let seconds = pass.duration.as_secs_f64();
        self.duration.observe(seconds);
        self.last_duration.set(seconds);
        self.last_attempt.set(now_seconds());
        if pass.succeeded() {
            self.last_success.set(now_seconds());
            *self.succeeded_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        for t in &pass.targets {
            let group = GroupLabel {
                group: t.group.clone(),
            };
            self.added.get_or_create(&group).inc_by(t.added.into());
            self.removed.get_or_create(&group).inc_by(t.removed.into());
            self.skipped.get_or_create(&group).inc_by(t.unmapped.into());
            self.withheld
                .get_or_create(&group)
                .inc_by(t.withheld.into());
            self.subjects_lost
                .get_or_create(&group)
                .set(t.subjects_lost.into());
        }
        self.users_unlisted.inc_by(pass.users_unlisted.into());
        self.egress_denied.inc_by(pass.denied_requests.into());
        for (reason, n) in pass.records_read {
            self.records_read
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n.into());
        }
        self.users_from_state.set(pass.users_from_state.into());
        self.component_memory
            .set(i64::try_from(pass.peak_memory_bytes).unwrap_or(i64::MAX));
    }

    pub fn ready(&self, sync_every: Duration) -> bool {
        self.succeeded_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < sync_every * 2)
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        self.component_instances
            .set(crate::sandbox::runner::live_instances() as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::TargetSummary;

    fn pass(outcome: Outcome, kinds: &[ErrorKind]) -> PassSummary {
        let call = crate::sandbox::runner::Call {
            result: Err(crate::sandbox::runner::Stopped::Trapped("x".into())),
            denied_requests: 0,
            duration: Duration::from_millis(500),
            peak_memory_bytes: 0,
            stdout: String::new(),
            stderr: String::new(),
        };
        let mut p = PassSummary::from_call(&call);
        p.outcome = outcome;
        p.error_kinds = kinds.to_vec();
        p
    }

    #[test]
    fn records_and_renders_openmetrics() {
        let m = Metrics::default();
        assert!(!m.ready(Duration::from_secs(60)));
        let mut ok = pass(Outcome::Converged, &[]);
        ok.targets = vec![TargetSummary {
            group: "edu:x:users".into(),
            keeps_hub_group: None,
            outcome: Outcome::Converged,
            users_selected: 9,
            current_members: 7,
            withheld_plan: None,
            withheld_members: Vec::new(),
            error: None,
            to_add: 3,
            to_remove: 1,
            added: 3,
            removed: 1,
            unmapped: 2,
            withheld: 0,
            failures: 0,
            subjects_lost: 4,
        }];
        ok.records_read[0].1 = 5;
        ok.records_read[3].1 = 7;
        ok.users_from_state = 988;
        ok.users_unlisted = 1;
        ok.peak_memory_bytes = 3 << 20;
        let mut failed = pass(
            Outcome::Failed,
            &[ErrorKind::GrouperUnavailable, ErrorKind::EgressDenied],
        );
        failed.denied_requests = 2;
        m.record(&failed);
        m.record(&ok);
        let text = m.render();
        for line in [
            "grouper_sync_passes_total{result=\"converged\"} 1",
            "grouper_sync_passes_total{result=\"failed\"} 1",
            "grouper_sync_passes_total{result=\"removals_withheld\"} 0",
            "grouper_sync_pass_errors_total{kind=\"grouper-unavailable\"} 1",
            "grouper_sync_pass_errors_total{kind=\"egress-denied\"} 1",
            "grouper_sync_pass_errors_total{kind=\"config\"} 0",
            "grouper_sync_members_added_total{group=\"edu:x:users\"} 3",
            "grouper_sync_users_skipped_total{group=\"edu:x:users\"} 2",
            "grouper_sync_egress_denied_total 2",
            "grouper_sync_user_records_read_total{reason=\"new\"} 5",
            "grouper_sync_user_records_read_total{reason=\"refresh\"} 7",
            "grouper_sync_user_records_read_total{reason=\"full\"} 0",
            "grouper_sync_users_from_state 988",
            "grouper_sync_subjects_lost{group=\"edu:x:users\"} 4",
            "grouper_sync_users_unlisted_total 1",
            "grouper_sync_component_memory_bytes 3145728",
            "grouper_sync_pass_duration_seconds_count 2",
            "# TYPE grouper_sync_pass_duration_seconds histogram",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("grouper_sync_last_success_timestamp_seconds "));
        assert!(m.ready(Duration::from_secs(60)));
    }
}
