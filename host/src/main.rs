//! `grouper-sync`: runs the jupyterhub-grouper-sync component as a long-lived JupyterHub
//! service (or once, or as a read-only check), with the component sandboxed by wasmtime.

use grouper_sync_host::bindings::{core_kind, Direction, RemovalRecord, RunOptions};
use grouper_sync_host::change_log::{self, ChangeLog};
use grouper_sync_host::endpoint::{self, Board};
use grouper_sync_host::history::{History, PassRecord};
use grouper_sync_host::metrics::Metrics;
use grouper_sync_host::options::{self, Command, LogFormat, Options};
use grouper_sync_host::outcome::PassSummary;
use grouper_sync_host::progress::OnBatch;
use grouper_sync_host::runner::{self, Inputs, Limits, Runner};
use grouper_sync_host::schedule;
use grouper_sync_host::state_store::{LockError, StateLock, StateStore};
use grouper_sync_host::status_page;
use grouper_sync_host::tls;
use grouper_sync_host::ui::Ui;
use jupyterhub_grouper_sync::settings::LogLevel;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match options::parse(&args, &|k| std::env::var(k).ok(), &|p| {
        Ok(std::fs::read_to_string(p)?)
    }) {
        Ok(o) => o,
        Err(e) => match e.downcast::<clap::Error>() {
            // --help and --version print and succeed; a command-line mistake exits 2 with usage.
            Ok(clap_error) => {
                let _ = clap_error.print();
                return ExitCode::from(if clap_error.use_stderr() {
                    EXIT_CONFIG
                } else {
                    0
                });
            }
            Err(e) => {
                eprintln!("grouper-sync: {e:#}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    init_logging(&opts);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = rt.block_on(run(opts));
    // Do not wait for an abandoned pass's connections on the way out.
    rt.shutdown_background();
    code
}

fn init_logging(opts: &Options) {
    use std::io::IsTerminal;
    let level = match opts.log_level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match opts.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn load_runner(opts: &Options) -> anyhow::Result<Runner> {
    let started = std::time::Instant::now();
    let runner = match &opts.component {
        Some(path) => {
            let wasm = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("reading --component {}: {e}", path.display()))?;
            Runner::new(&wasm)?
        }
        None => Runner::new(runner::EMBEDDED_COMPONENT)?,
    };
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "component compiled"
    );
    Ok(runner)
}

/// The sandbox of every call; the trusted CAs are read once, here.
fn limits(opts: &Options) -> Result<Limits, String> {
    Ok(Limits {
        allowed_hosts: Some(opts.allowed_hosts.clone()),
        http_timeout_cap: opts.http_timeout_cap,
        tls: tls::client_config(opts.ca_file.as_deref())?,
        deadline: opts.pass_deadline,
        memory_bytes: opts.memory_limit_bytes,
    })
}

/// Credentials sent over `http://` to another machine cross the network in clear text.
fn warn_cleartext(opts: &Options) {
    for key in ["jupyterhub_api_url", "grouper_base_url"] {
        if let Some(url) = opts.component_config.get(key) {
            if grouper_sync_host::egress::is_cleartext_remote(url) {
                tracing::warn!(
                    setting = key,
                    "{key} is http:// to a host other than this machine: its credentials cross the network unencrypted (use https://)"
                );
            }
        }
    }
}

async fn run(opts: Options) -> ExitCode {
    // Installed before anything slow (compiling the component takes a moment): a process started
    // from a background job inherits SIGINT as ignored, and the hub stops services with SIGINT, so
    // a signal during start-up must not be lost.
    let stop = if opts.command == Command::Service {
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some(StopSignals { int, term }),
            _ => {
                tracing::error!("cannot install signal handlers");
                return ExitCode::from(EXIT_FAILED);
            }
        }
    } else {
        None
    };
    if matches!(
        opts.command,
        Command::Service | Command::Once | Command::Approve
    ) {
        // refused before anything runs: whoever can write there can approve removals
        if let Some(why) = grouper_sync_host::state_store::unsafe_dir(&opts.state_dir) {
            tracing::error!("{why}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    match opts.command {
        Command::Approve => return approve(&opts).await,
        Command::Log => return print_log(&opts),
        _ => {}
    }
    let limits = match limits(&opts) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    warn_cleartext(&opts);
    let runner = match load_runner(&opts) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match (opts.command, stop) {
        (Command::Once, _) => once(&opts, &runner, &limits).await,
        (Command::Check, _) => check(&opts, &runner, &limits).await,
        (Command::Approve | Command::Log, _) => unreachable!("approve and log run no component"),
        (Command::Service, Some(stop)) => service(&opts, &runner, &limits, stop).await,
        (Command::Service, None) => unreachable!("signals are installed for the service"),
    }
}

struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// What the lock on `state_dir` says about its holder.
fn lock_holder(opts: &Options) -> String {
    let command = match opts.command {
        Command::Service => "service",
        Command::Once => "once",
        Command::Check => "check",
        Command::Approve => "approve",
        Command::Log => "log",
    };
    format!(
        "grouper-sync {command} (pid {}, since {})",
        std::process::id(),
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    )
}

/// Takes the lock on `state_dir`, waiting up to `lock_wait` for its holder (saying who).
async fn lock_state(opts: &Options, store: &StateStore) -> Result<StateLock, LockError> {
    let holder = lock_holder(opts);
    let until = Instant::now() + opts.lock_wait;
    let mut said = false;
    loop {
        match store.try_lock(&holder) {
            Err(LockError::Busy(by)) if Instant::now() < until => {
                if !said {
                    tracing::info!(
                        "state_dir is in use by {by}; waiting up to {} s",
                        opts.lock_wait.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// One pass through the typed export under the lock on `state_dir`, given the stored user
/// state, approvals and removals: every change the services confirm is logged as it happens,
/// and afterwards the next state is stored and the approvals it applied are used up.
async fn pass(opts: &Options, runner: &Runner, limits: &Limits, full: bool) -> PassSummary {
    let started = jiff::Timestamp::now();
    let store = StateStore::new(&opts.state_dir);
    let lock = match lock_state(opts, &store).await {
        Ok(lock) => lock,
        Err(e) => {
            let summary = PassSummary::not_run(format!("the pass did not run: {e}"));
            summary.log();
            return summary;
        }
    };
    let mut approved_plans = store.approvals(&lock, opts.approval_max_age);
    if let (Command::Once, Some(plan)) = (opts.command, &opts.approve) {
        approved_plans.push(plan.clone());
    }
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
        full,
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
        .run_with_progress(
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

/// The status page's view of the service: schedule and settings (no secret values).
fn page_context(opts: &Options) -> status_page::Context {
    let mut schedule = vec![format!(
        "a pass every {} s{}",
        opts.sync_every.as_secs(),
        if opts.enabled {
            ""
        } else {
            " — disabled (enabled=false)"
        }
    )];
    if opts.dry_run {
        schedule.push("dry run: passes plan and report, and write nothing".into());
    }
    if !opts.windows.dates.is_empty() {
        let dates: Vec<String> = opts.windows.dates.iter().map(|d| d.to_string()).collect();
        schedule.push(format!("only on {}", dates.join(", ")));
    }
    for w in &opts.windows.weekly {
        schedule.push(format!("inside {w}"));
    }
    if !opts.windows.unrestricted() {
        schedule.push(format!(
            "time zone {}",
            opts.windows.tz.iana_name().unwrap_or("UTC")
        ));
    }
    let mut settings: Vec<(String, String)> = opts
        .component_config
        .iter()
        .map(|(k, v)| {
            let secret = jupyterhub_grouper_sync::settings::KEYS
                .iter()
                .any(|key| key.name == k && key.is_secret());
            (k.clone(), if secret { "(set)".into() } else { v.clone() })
        })
        .collect();
    settings.push(("state_dir".into(), opts.state_dir.display().to_string()));
    if let Some(ca) = &opts.ca_file {
        settings.push(("ca_file".into(), ca.display().to_string()));
    }
    status_page::Context {
        schedule,
        next_pass: None,
        settings,
    }
}

async fn once(opts: &Options, runner: &Runner, limits: &Limits) -> ExitCode {
    let summary = pass(opts, runner, limits, opts.full).await;
    if let Some(json) = &summary.json {
        println!("{json}");
    }
    ExitCode::from(summary.exit_code())
}

fn change_log(opts: &Options) -> ChangeLog {
    ChangeLog::new(
        &opts.state_dir,
        opts.change_log_max_bytes,
        opts.change_log_keep,
    )
}

/// `grouper-sync log`: the change log, filtered, as text or JSON lines.
fn print_log(opts: &Options) -> ExitCode {
    match change_log(opts).read(&opts.log.filter) {
        Ok(entries) => {
            for e in &entries {
                if opts.log.json {
                    println!("{}", serde_json::to_string(e).unwrap_or_default());
                } else {
                    println!("{}", change_log::text(e));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read the change log: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `grouper-sync approve PLAN`: records the approval for the next pass.
async fn approve(opts: &Options) -> ExitCode {
    let Some(plan) = &opts.approve else {
        return ExitCode::from(EXIT_CONFIG);
    };
    let store = StateStore::new(&opts.state_dir);
    let lock = match lock_state(opts, &store).await {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("cannot record the approval: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match store.approve(&lock, plan) {
        Ok(()) => {
            tracing::warn!(plan = %plan, "approved plan {plan}");
            println!(
                "approved plan {plan}: the next pass applies it if it computes exactly this plan \
                 (unused, the approval expires in {} h)",
                opts.approval_max_age.as_secs() / 3600
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot record the approval: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn check(opts: &Options, runner: &Runner, limits: &Limits) -> ExitCode {
    let call = runner
        .check(&Inputs::config(&opts.component_config), limits)
        .await;
    runner::relog(&call.stderr);
    let report = match call.result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("configuration: {}", e.message);
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(stopped) => {
            eprintln!("check failed: {}", stopped.message());
            return ExitCode::from(EXIT_FAILED);
        }
    };
    println!("configuration: valid");
    println!("egress allowed to: {}", opts.allowed_hosts.join(", "));
    match &report.hub_identity {
        Some(who) => println!("hub token: {who}; scopes: {}", report.hub_scopes.join(", ")),
        None => println!("hub token: could not be checked"),
    }
    for s in &report.missing_scopes {
        println!("MISSING scope: {s} (add it to the service's role in c.JupyterHub.load_roles)");
    }
    for t in &report.targets {
        let (arrow, hub) = match (&t.direction, &t.hub_group) {
            (Direction::ToHub, Some(g)) => ("->", format!("hub group {g}")),
            (_, Some(g)) => ("<-", format!("hub group {g}")),
            (_, None) => ("<-", "all hub users".to_string()),
        };
        let members = match t.grouper_members {
            Some(n) => format!("readable, {n} member(s) on the first page"),
            None => "not read".to_string(),
        };
        println!(
            "target {} {arrow} {hub}: {members}; needs {}",
            t.group,
            t.scopes.join(", ")
        );
        for note in &t.notes {
            println!("  note: {note}");
        }
    }
    for e in &report.errors {
        println!("ERROR [{}]: {}", core_kind(e.kind), e.message);
    }
    println!(
        "{}",
        if report.ok {
            "check passed; nothing was written"
        } else {
            "check FAILED; nothing was written"
        }
    );
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

async fn service(opts: &Options, runner: &Runner, limits: &Limits, stop: StopSignals) -> ExitCode {
    let StopSignals {
        int: mut sigint,
        term: mut sigterm,
    } = stop;
    let metrics = Arc::new(Metrics::default());
    let board = Arc::new(Board {
        history: History::new(&opts.state_dir),
        context: std::sync::Mutex::new(page_context(opts)),
        ui: Ui::new(opts.ui_token.clone(), &opts.state_dir),
        prefix: opts.service_prefix.clone(),
    });
    let (stop_serving, serving_stopped) = tokio::sync::watch::channel(false);
    let mut server = None;
    if let Some(addr) = opts.metrics_addr {
        match endpoint::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
                let router = endpoint::router(metrics.clone(), board.clone(), opts.sync_every);
                server = Some(tokio::spawn(endpoint::serve(
                    listener,
                    router,
                    serving_stopped,
                )));
            }
            Err(e) => tracing::error!(%addr, "cannot serve metrics: {e}"),
        }
    }
    tracing::info!(
        sync_every_s = opts.sync_every.as_secs(),
        enabled = opts.enabled,
        dry_run = opts.dry_run,
        egress = %opts.allowed_hosts.join(","),
        "grouper-sync service started"
    );
    let mut failures = 0u32;
    let mut next = Instant::now();
    let mut full = opts.full;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let at = jiff::SignedDuration::try_from(wait)
            .ok()
            .and_then(|w| jiff::Timestamp::now().checked_add(w).ok())
            .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string());
        board
            .context
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_pass = at;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = board.ui.run_now.notified() => {}
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
        if !opts.enabled {
            tracing::info!("sync disabled (enabled=false); staying idle");
            next = Instant::now() + opts.sync_every;
            continue;
        }
        let now = jiff::Timestamp::now();
        if !opts.windows.unrestricted() && !opts.windows.allows_at(now) {
            match opts.windows.next_allowed(now) {
                Some(at) => {
                    let wait = Duration::try_from(at.timestamp().duration_since(now))
                        .unwrap_or(opts.sync_every);
                    tracing::info!(next = %at, "outside the allowed dates/windows; waiting");
                    next = Instant::now() + wait.max(Duration::from_secs(1));
                }
                None => {
                    tracing::warn!(
                        "no allowed date or window lies ahead; staying idle (check allowed_dates)"
                    );
                    next = Instant::now() + Duration::from_secs(86_400);
                }
            }
            continue;
        }
        let summary = tokio::select! {
            summary = pass(opts, runner, limits, full) => summary,
            _ = sigint.recv() => { tracing::warn!("stopping: abandoning the pass in progress"); break }
            _ = sigterm.recv() => { tracing::warn!("stopping: abandoning the pass in progress"); break }
        };
        metrics.record(&summary);
        full = false;
        if !summary.succeeded() {
            failures += 1;
            let delay = schedule::failure_delay(failures, opts.sync_every);
            tracing::info!(
                failures,
                retry_in_s = delay.as_secs(),
                "pass failed; the service carries on"
            );
            next = Instant::now() + delay;
        } else {
            failures = 0;
            // without randomness the pass runs on the interval itself
            let seed = getrandom::u64().unwrap_or(5_000);
            next = Instant::now() + schedule::jittered(opts.sync_every, seed);
        }
    }
    // Graceful: stop accepting, let a scrape in progress finish, but never hold up the exit.
    let _ = stop_serving.send(true);
    if let Some(server) = server {
        let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    }
    tracing::info!("grouper-sync stopped");
    ExitCode::SUCCESS
}
