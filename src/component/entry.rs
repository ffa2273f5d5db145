//! The three entry points, each a thin shell over the core: the typed `sync` interface, the
//! `wasi:cli/run` command (one pass, or a loop with `sync_every_seconds`), and the HTTP handler.

use super::config::Config;
use super::exports::jupyterhub_grouper_sync::sync::sync as wit;
use super::exports::wasi::cli::run::Guest as RunGuest;
use super::exports::wasi::http::incoming_handler::Guest as HttpGuest;
use super::transport::WasiTransport;
use super::Component;
use crate::convert_variants;
use crate::error::{ErrorKind, SyncError};
use crate::http_entry::{self, Action, Decision, Reply};
use crate::model::{Direction, Mode};
use crate::policy::user_state::StateStatus;
use crate::settings::{self, Secret, Settings};
use crate::sync::check::{self, CheckReport};
use crate::sync::log::LogTo;
use crate::sync::pass::RunOptions;
use crate::sync::report::{
    Change, ChangeOp, ChangeReason, ChangeSink, ConfirmedBatch, Outcome, ProgressLine,
    RemovalRecord, Report, TargetReport,
};
use std::io::Write as _;
use std::time::Duration;
use waki::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// A pass of the stateless entries (`wasi:cli/run`, HTTP): every user's record is read.
fn run_pass(settings: &Settings, approved_plans: Vec<String>) -> Report {
    crate::sync::pass::run(
        settings,
        &mut WasiTransport { settings },
        RunOptions {
            approved_plans,
            ..RunOptions::default()
        },
    )
}

fn run_check(settings: &Settings, log_to: LogTo) -> CheckReport {
    check::run(settings, &mut WasiTransport { settings }, log_to)
}

fn load_settings() -> Result<Settings, SyncError> {
    Config::load()?.settings()
}

/// Writes each confirmed batch to stdout as it happens (the `run` export's progress lines).
struct StdoutProgress;

impl ChangeSink for StdoutProgress {
    fn confirmed(&mut self, batch: &ConfirmedBatch) {
        let line = ProgressLine::Confirmed(batch.clone());
        if let Ok(text) = serde_json::to_string(&line) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }
}

impl wit::Guest for Component {
    fn run(options: wit::RunOptions) -> Result<wit::Report, wit::SyncError> {
        let settings = load_settings().map_err(|e| to_wit_error(&e))?;
        let mut report = crate::sync::pass::run_reporting(
            &settings,
            &mut WasiTransport {
                settings: &settings,
            },
            RunOptions {
                user_state: options.user_state,
                full: options.full,
                approved_plans: options.approved_plans,
                removal_ledger: options
                    .removal_ledger
                    .into_iter()
                    .map(|r| RemovalRecord {
                        target: r.target,
                        at: r.at,
                        count: r.count,
                    })
                    .collect(),
            },
            Some(&mut StdoutProgress),
            LogTo::ProgressLines,
        );
        let next_user_state = report.next_user_state.take();
        Ok(wit::Report {
            next_user_state,
            ..to_wit_report(&report)
        })
    }

    fn check() -> Result<wit::CheckReport, wit::SyncError> {
        let settings = load_settings().map_err(|e| to_wit_error(&e))?;
        let r = run_check(&settings, LogTo::ProgressLines);
        Ok(wit::CheckReport {
            ok: r.ok(),
            hub_identity: r.hub_identity.clone(),
            hub_scopes: r.hub_scopes.clone(),
            missing_scopes: r.missing_scopes.clone(),
            groups_readable: r
                .groups_readable
                .iter()
                .map(|(g, n)| (g.clone(), count(*n)))
                .collect(),
            targets: r
                .targets
                .iter()
                .map(|t| wit::TargetCheck {
                    group: t.group.clone(),
                    direction: to_wit_direction(t.direction),
                    hub_group: t.hub_group.clone(),
                    scopes: t.scopes.clone(),
                    grouper_members: t.grouper_members.map(count),
                    hub_group_exists: t.hub_group_exists,
                    provisioning: t.provisioning.as_ref().map(|p| wit::ProvisioningCheck {
                        present: p.present.clone(),
                        missing: p.missing.clone(),
                        switched_off: p.switched_off.clone(),
                    }),
                    notes: t.notes.clone(),
                })
                .collect(),
            errors: r.errors.iter().map(to_wit_error).collect(),
            json: serde_json::to_string(&r).unwrap_or_default(),
        })
    }
}

/// `sync_every_seconds`, when set: the command loops instead of running one pass.
fn loop_interval(config: &Config) -> Result<Option<Duration>, SyncError> {
    settings::schema::key("sync_every_seconds")
        .whole(config.get("sync_every_seconds").as_deref())
        .map(|n| n.map(Duration::from_secs))
        .map_err(|e| SyncError::config(e.0))
}

/// One pass with fresh settings, its report printed as one JSON line.
fn print_one_pass() -> Report {
    let report = match load_settings() {
        Ok(settings) => run_pass(&settings, Vec::new()),
        Err(e) => {
            eprintln!("grouper-sync error: {e}");
            Report::not_started(e)
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", report.to_json());
    let _ = out.flush();
    report
}

impl RunGuest for Component {
    /// One pass (exit 0 only when converged); with `sync_every_seconds`, a pass every interval
    /// until the platform stops the component. A loop that cannot read its own interval exits 1.
    fn run() -> Result<(), ()> {
        let interval = match Config::load().and_then(|c| loop_interval(&c)) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("grouper-sync error: {e}");
                println!("{}", Report::not_started(e).to_json());
                return Err(());
            }
        };
        let Some(every) = interval else {
            return match print_one_pass().outcome {
                Outcome::Converged => Ok(()),
                _ => Err(()),
            };
        };
        eprintln!(
            "grouper-sync info: loop mode: a pass every {} s",
            every.as_secs()
        );
        loop {
            print_one_pass();
            std::thread::sleep(every);
        }
    }
}

fn method_name(m: &Method) -> &str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(s) => s.as_str(),
    }
}

fn answer(out: ResponseOutparam, reply: Reply) {
    let fields: Vec<(String, Vec<u8>)> = reply
        .headers
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .chain([(
            "content-length".to_string(),
            reply.body.len().to_string().into_bytes(),
        )])
        .collect();
    let headers = Fields::from_list(&fields).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        for chunk in reply.body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}

impl HttpGuest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = request.method();
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let authorization = request
            .headers()
            .get(&"authorization".to_string())
            .into_iter()
            .next()
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        drop(request);
        // Read only by the routes that need it: /healthz and refusals never touch the config.
        let config = std::cell::OnceCell::new();
        let load = || config.get_or_init(Config::load);
        let token = || {
            load()
                .as_ref()
                .map(|c| c.get("sync_auth_token").map(Secret::new))
                .map_err(Clone::clone)
        };
        let reply =
            match http_entry::route(method_name(&method), &path, authorization.as_deref(), token) {
                Decision::Answer(reply) => reply,
                Decision::Run(action) => match load()
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(Config::settings)
                {
                    Err(e) => http_entry::config_error_reply(e),
                    Ok(mut settings) => match action {
                        Action::Sync { dry_run, approve } => {
                            settings.dry_run |= dry_run;
                            let approved = approve.into_iter().collect();
                            http_entry::report_reply(&run_pass(&settings, approved))
                        }
                        Action::Check => {
                            http_entry::check_reply(&run_check(&settings, LogTo::Stderr))
                        }
                    },
                },
            };
        answer(out, reply);
    }
}

fn count(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

fn to_wit_kind(k: ErrorKind) -> wit::ErrorKind {
    use wit::ErrorKind as Wit;
    crate::error_kinds!(convert_variants, k, ErrorKind, Wit)
}

fn to_wit_error(e: &SyncError) -> wit::SyncError {
    wit::SyncError {
        kind: to_wit_kind(e.kind),
        message: e.message.clone(),
        missing_scope: e.missing_scope.clone(),
    }
}

fn to_wit_outcome(o: Outcome) -> wit::Outcome {
    match o {
        Outcome::Converged => wit::Outcome::Converged,
        Outcome::ChangesRemaining => wit::Outcome::ChangesRemaining,
        Outcome::RemovalsWithheld => wit::Outcome::RemovalsWithheld,
        Outcome::Failed => wit::Outcome::Failed,
    }
}

fn to_wit_target(t: &TargetReport) -> wit::TargetReport {
    wit::TargetReport {
        group: t.group.clone(),
        direction: to_wit_direction(t.direction),
        hub_group: t.hub_group.clone(),
        outcome: to_wit_outcome(t.outcome),
        mode: match t.mode {
            Mode::Mirror => wit::Mode::Mirror,
            Mode::Additive => wit::Mode::Additive,
        },
        users_selected: count(t.users_selected),
        admins_skipped: count(t.admins_skipped),
        users_filtered: count(t.users_filtered),
        members_without_hub_user: count(t.members_without_hub_user),
        group_created: t.group_created,
        provisioning: t.provisioning.as_ref().map(|p| wit::ProvisioningReport {
            marked: p.marked.clone(),
            present: p.present.clone(),
            switched_off: p.switched_off.clone(),
        }),
        google: t.google.as_ref().map(|g| wit::GoogleReport {
            group: g.group.clone(),
            provisioned: g.provisioned,
            changed: g.changed.clone(),
        }),
        users_mapped: count(t.users_mapped),
        users_unmapped: count(t.users_unmapped),
        duplicates_collapsed: count(t.duplicates_collapsed),
        current_members: count(t.current_members),
        to_add: count(t.to_add),
        to_remove: count(t.to_remove),
        added: count(t.added),
        removed: count(t.removed),
        protected_kept: count(t.protected_kept),
        unmanaged_kept: count(t.unmanaged_kept),
        kept_by_mode: count(t.kept_by_mode),
        subjects_lost: count(t.subjects_lost),
        withheld_removals: count(t.withheld_removals),
        withheld_reason: t.withheld_reason.clone(),
        withheld_plan: t.withheld_plan.clone(),
        withheld_members: t.withheld_members.clone(),
        approved_plan: t.approved_plan.clone(),
        changes_remaining: count(t.changes_remaining),
        failures: t
            .failures
            .iter()
            .map(|f| wit::SubjectFailure {
                operation: f.operation.clone(),
                subject: f.subject.clone(),
                code: f.code.clone(),
                message: f.message.clone(),
            })
            .collect(),
        error: t.error.as_ref().map(to_wit_error),
        changes: t.changes.iter().map(to_wit_change).collect(),
    }
}

fn to_wit_direction(d: Direction) -> wit::Direction {
    match d {
        Direction::ToHub => wit::Direction::ToHub,
        Direction::ToGrouper => wit::Direction::ToGrouper,
    }
}

fn to_wit_change(c: &Change) -> wit::Change {
    wit::Change {
        op: match c.op {
            ChangeOp::Add => wit::ChangeOp::Add,
            ChangeOp::Remove => wit::ChangeOp::Remove,
        },
        subject: c.subject.clone(),
        source: c.source.clone(),
        hub_user: c.hub_user.clone(),
        reason: match c.reason {
            ChangeReason::InHub => wit::ChangeReason::InHub,
            ChangeReason::NotInHub => wit::ChangeReason::NotInHub,
            ChangeReason::ApprovedPlan => wit::ChangeReason::ApprovedPlan,
            ChangeReason::InGrouper => wit::ChangeReason::InGrouper,
            ChangeReason::NotInGrouper => wit::ChangeReason::NotInGrouper,
        },
    }
}

fn to_wit_report(r: &Report) -> wit::Report {
    wit::Report {
        outcome: to_wit_outcome(r.outcome),
        dry_run: r.dry_run,
        users_seen: count(r.users_seen),
        users_unread: count(r.users_unread),
        users_vanished: count(r.users_vanished),
        users_departed: count(r.users_departed),
        users_unlisted: count(r.users_unlisted),
        users_fetched: count(r.users_fetched),
        users_from_state: count(r.users_from_state),
        read_reasons: wit::ReadReasons {
            new_users: count(r.read_reasons.new),
            changed: count(r.read_reasons.changed),
            margin: count(r.read_reasons.margin),
            refresh: count(r.read_reasons.refresh),
            full: count(r.read_reasons.full),
        },
        user_state: match r.user_state {
            StateStatus::None => wit::UserStateStatus::None,
            StateStatus::Used => wit::UserStateStatus::Used,
            StateStatus::FullRequested => wit::UserStateStatus::FullRequested,
            StateStatus::Unreadable => wit::UserStateStatus::Unreadable,
            StateStatus::Foreign => wit::UserStateStatus::Foreign,
            StateStatus::Outdated => wit::UserStateStatus::Outdated,
            StateStatus::NoHubTime => wit::UserStateStatus::NoHubTime,
        },
        targets: r.targets.iter().map(to_wit_target).collect(),
        errors: r.errors.iter().map(to_wit_error).collect(),
        changes_remaining: count(r.changes_remaining),
        duration_ms: r.duration_ms,
        jupyterhub_requests: r.requests.jupyterhub,
        grouper_requests: r.requests.grouper,
        google_requests: r.requests.google,
        json: r.to_json(),
        next_user_state: None,
    }
}
