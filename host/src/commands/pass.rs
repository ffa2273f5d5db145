//! One pass's sequence of side effects, under the lock on `state_dir`: the stored user state,
//! approvals and removal ledger in; every confirmed batch into the change log and the ledger as it
//! happens; afterwards the next user state stored, the approvals applied used up, the history.

use super::{change_log, lock_state};
use crate::options::Options;
use crate::outcome::PassSummary;
use crate::sandbox::bindings::{RemovalRecord, RunOptions};
use crate::sandbox::bindings::{Report, SyncError};
use crate::sandbox::progress::OnBatch;
use crate::sandbox::runner::{self, Call, Inputs, Limits, Runner};
use crate::store::change_log;
use crate::store::history::{History, PassRecord};
use crate::store::state::StateStore;
use std::future::Future;
use std::sync::Arc;

/// What a pass needs of the runner: the typed `run`, each confirmed batch handed to `on_batch`
/// as it happens. [`Runner`] is the real one; the tests below use a scripted one.
pub trait PassRunner {
    fn run_pass(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        options: RunOptions,
        on_batch: OnBatch,
    ) -> impl Future<Output = Call<Result<Report, SyncError>>>;
}

impl PassRunner for Runner {
    fn run_pass(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        options: RunOptions,
        on_batch: OnBatch,
    ) -> impl Future<Output = Call<Result<Report, SyncError>>> {
        self.run_with_progress(inputs, limits, options, on_batch)
    }
}

/// What the service's and `once`'s passes take from the command line.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct PassArgs {
    /// Read every user's record in the (first) pass, whatever the user state says; a new user
    /// state is written as usual
    #[arg(long)]
    pub full: bool,
}

/// One pass's request: every user's record read or not, and a plan approved for this pass only
/// (`once --approve`), on top of the recorded approvals.
#[derive(Debug, Clone, Default)]
pub struct PassRequest<'a> {
    pub command: &'static str,
    pub full: bool,
    pub approved_now: Option<&'a str>,
}

/// One pass through the typed export under the lock on `state_dir`, given the stored user
/// state, approvals and removals: every change the services confirm is logged as it happens,
/// and afterwards the next state is stored and the approvals it applied are used up.
pub async fn pass(
    opts: &Options,
    runner: &impl PassRunner,
    limits: &Limits,
    request: PassRequest<'_>,
) -> PassSummary {
    let started = jiff::Timestamp::now();
    let store = StateStore::new(&opts.state_dir);
    let lock = match lock_state(opts, &store, request.command).await {
        Ok(lock) => lock,
        Err(e) => {
            let summary = PassSummary::not_run(format!("the pass did not run: {e}"));
            summary.log();
            return summary;
        }
    };
    let mut approved_plans = store.approvals(&lock, opts.approval_max_age);
    approved_plans.extend(request.approved_now.map(String::from));
    let removal_ledger = store
        .removals()
        .into_iter()
        .map(|r| RemovalRecord {
            target: r.target,
            at: r.at,
            count: r.count,
        })
        .collect();
    let options = RunOptions {
        user_state: store.load(),
        full: request.full,
        approved_plans,
        removal_ledger,
    };
    let pass_id = started.strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    let lock = Arc::new(lock);
    let on_batch: OnBatch = {
        let (log, store, lock, pass_id) = (
            change_log(opts),
            store.clone(),
            lock.clone(),
            pass_id.clone(),
        );
        Arc::new(move |batch| {
            let at = jiff::Timestamp::now();
            let entries = change_log::batch_entries(&batch, &pass_id, at);
            if let Err(e) = log.append(&entries, at) {
                tracing::error!(
                    "cannot write the change log ({e:#}); {} change(s) of this pass are not in it",
                    entries.len()
                );
            }
            let removed = batch.removals() as u32;
            if removed > 0 {
                if let Err(e) =
                    store.record_removals(&lock, &batch.written, removed, at.as_second())
                {
                    tracing::warn!("cannot record the removals for the daily budget ({e:#})");
                }
            }
        })
    };
    let call = runner
        .run_pass(
            &Inputs::config(&opts.component_config),
            limits,
            options,
            on_batch,
        )
        .await;
    runner::relog(&call.stderr);
    if let Ok(Ok(report)) = &call.result {
        if let Some(next) = &report.next_user_state {
            if let Err(e) = store.save(&lock, next) {
                tracing::warn!(
                    "cannot store the user state ({e:#}); the next pass reads every user's record"
                );
            }
        }
        let used: Vec<String> = report
            .targets
            .iter()
            .filter_map(|t| {
                let plan = t.approved_plan.clone()?;
                if report.dry_run {
                    tracing::info!(plan = %plan, group = %t.group, "approved plan {plan} would apply (dry run); its approval stays");
                    return None;
                }
                tracing::warn!(plan = %plan, group = %t.group, "approved plan {plan} was applied; its approval is used up");
                Some(plan)
            })
            .collect();
        if let Err(e) = store.consume(&lock, &used) {
            tracing::warn!("cannot mark the approval used ({e:#})");
        }
    }
    let ended = jiff::Timestamp::now();
    let summary = PassSummary::from_call(&call);
    summary.log();
    let record = PassRecord::new(&summary, ended);
    if let Err(e) = History::new(&opts.state_dir).append(&record) {
        tracing::warn!("cannot record the pass in the history ({e:#})");
    }
    drop(lock);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ExitStatus;
    use crate::sandbox::bindings::{
        Direction, Mode, Outcome, ReadReasons, TargetReport, UserStateStatus,
    };
    use jupyterhub_grouper_sync::model::Direction as CoreDirection;
    use jupyterhub_grouper_sync::sync::report::{Change, ChangeOp, ChangeReason, ConfirmedBatch};
    use std::sync::Mutex;
    use std::time::Duration;

    const PLAN: &str = "0123456789abcdef";

    /// A runner that hands one confirmed batch to the pass and returns a scripted report.
    struct Scripted {
        report: Report,
        seen: Mutex<Option<RunOptions>>,
    }

    impl PassRunner for Scripted {
        fn run_pass(
            &self,
            _: &Inputs,
            _: &Limits,
            options: RunOptions,
            on_batch: OnBatch,
        ) -> impl Future<Output = Call<Result<Report, SyncError>>> {
            *self.seen.lock().unwrap() = Some(options);
            on_batch(ConfirmedBatch {
                target: "edu:x:users".into(),
                direction: CoreDirection::ToGrouper,
                hub_group: None,
                written: "grouper:edu:x:users".into(),
                approved_plan: Some(PLAN.into()),
                changes: vec![Change {
                    op: ChangeOp::Remove,
                    subject: "100009".into(),
                    source: Some("ldap".into()),
                    hub_user: None,
                    reason: ChangeReason::ApprovedPlan,
                }],
            });
            std::future::ready(Call {
                result: Ok(Ok(self.report.clone())),
                denied_requests: 0,
                duration: Duration::from_millis(5),
                peak_memory_bytes: 1 << 20,
                stdout: String::new(),
                stderr: String::new(),
            })
        }
    }

    fn report(dry_run: bool) -> Report {
        let target = TargetReport {
            group: "edu:x:users".into(),
            direction: Direction::ToGrouper,
            hub_group: None,
            outcome: Outcome::Converged,
            mode: Mode::Mirror,
            users_selected: 3,
            admins_skipped: 0,
            users_filtered: 0,
            members_without_hub_user: 0,
            group_created: false,
            provisioning: None,
            google: None,
            users_mapped: 3,
            users_unmapped: 0,
            duplicates_collapsed: 0,
            current_members: 4,
            to_add: 0,
            to_remove: 1,
            added: 0,
            removed: u32::from(!dry_run),
            protected_kept: 0,
            unmanaged_kept: 0,
            kept_by_mode: 0,
            subjects_lost: 0,
            withheld_removals: 0,
            withheld_reason: None,
            withheld_plan: None,
            withheld_members: vec![],
            approved_plan: Some(PLAN.into()),
            changes_remaining: 0,
            failures: vec![],
            error: None,
            changes: vec![],
        };
        Report {
            outcome: Outcome::Converged,
            dry_run,
            users_seen: 3,
            users_unread: 0,
            users_vanished: 0,
            users_departed: 0,
            users_unlisted: 0,
            users_fetched: 3,
            users_from_state: 0,
            read_reasons: ReadReasons {
                new_users: 0,
                changed: 0,
                margin: 0,
                refresh: 0,
                full: 3,
            },
            user_state: UserStateStatus::None,
            targets: vec![target],
            errors: vec![],
            changes_remaining: 0,
            duration_ms: 5,
            jupyterhub_requests: 2,
            grouper_requests: 2,
            google_requests: 0,
            json: r#"{"outcome":"converged"}"#.into(),
            next_user_state: Some(b"next state".to_vec()),
        }
    }

    fn options(dir: &std::path::Path) -> Options {
        let args = ["once", "--state-dir", &dir.display().to_string()].map(String::from);
        crate::cli::parse(&args, &|_| None, &|p| {
            anyhow::bail!("no file {}", p.display())
        })
        .unwrap()
        .1
    }

    fn limits() -> Limits {
        Limits {
            allowed_hosts: Some(vec![]),
            http_timeout_cap: Duration::from_secs(1),
            tls: crate::sandbox::tls::client_config(None).unwrap(),
            deadline: Duration::from_secs(1),
            memory_bytes: 1 << 24,
        }
    }

    /// Runs one scripted pass over a state dir holding an approval of PLAN.
    fn scripted_pass(dry_run: bool) -> (tempfile::TempDir, RunOptions, PassSummary) {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let store = StateStore::new(dir.path());
        let lock = store.try_lock("test").unwrap();
        store.approve(&lock, PLAN).unwrap();
        store
            .record_removals(
                &lock,
                "grouper:edu:x:users",
                2,
                jiff::Timestamp::now().as_second(),
            )
            .unwrap();
        drop(lock);
        let runner = Scripted {
            report: report(dry_run),
            seen: Mutex::new(None),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let summary = rt.block_on(pass(
            &opts,
            &runner,
            &limits(),
            PassRequest {
                command: "once",
                ..PassRequest::default()
            },
        ));
        let seen = runner.seen.lock().unwrap().take().expect("the runner ran");
        (dir, seen, summary)
    }

    #[test]
    fn a_pass_hands_in_the_stored_state_and_stores_what_came_back() {
        let (dir, seen, summary) = scripted_pass(false);
        // in: the recorded approval and the ledger of the last day
        assert_eq!(seen.approved_plans, [PLAN]);
        assert_eq!(seen.removal_ledger.len(), 1);
        assert_eq!(seen.removal_ledger[0].count, 2);
        assert_eq!(seen.user_state, None);
        assert_eq!(summary.exit_status(), ExitStatus::Ok);
        // out: the next state, the batch in the change log and the ledger, the approval used up,
        // the pass in the history
        let store = StateStore::new(dir.path());
        assert_eq!(store.load().as_deref(), Some(&b"next state"[..]));
        let logged = change_log::ChangeLog::new(dir.path(), 1 << 20, Duration::from_secs(86_400))
            .read(&Default::default())
            .unwrap();
        assert_eq!(logged.len(), 1);
        assert_eq!(
            (logged[0].op.as_str(), logged[0].subject.as_str()),
            ("remove", "100009")
        );
        let ledger: u32 = store.removals().iter().map(|r| r.count).sum();
        assert_eq!(ledger, 3);
        let lock = store.try_lock("test").unwrap();
        assert!(store.approvals(&lock, Duration::from_secs(3600)).is_empty());
        assert_eq!(History::new(dir.path()).all().len(), 1);
    }

    #[test]
    fn a_dry_run_keeps_its_approval() {
        let (dir, _, _) = scripted_pass(true);
        let store = StateStore::new(dir.path());
        let lock = store.try_lock("test").unwrap();
        assert_eq!(store.approvals(&lock, Duration::from_secs(3600)), [PLAN]);
    }
}
