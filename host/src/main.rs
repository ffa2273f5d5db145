//! `grouper-sync`: runs the jupyterhub-grouper-sync component as a long-lived JupyterHub
//! service (or once, or as a read-only check), with the component sandboxed by wasmtime.

use grouper_sync_host::metrics::{self, Metrics};
use grouper_sync_host::options::{self, Command, LogFormat, Options};
use grouper_sync_host::runner::{self, Call, CallOutcome, Limits, Runner};
use grouper_sync_host::schedule;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_WITHHELD: u8 = 3;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", options::help());
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version") {
        println!("grouper-sync {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let opts = match options::parse(&args, &|k| std::env::var(k).ok(), &|p| {
        Ok(std::fs::read_to_string(p)?)
    }) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("grouper-sync: {e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
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
    let level = match opts.log_level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
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

fn limits(opts: &Options) -> Limits {
    Limits {
        allowed_hosts: opts.allowed_hosts.clone(),
        http_timeout_cap: opts.http_timeout_cap,
        deadline: opts.pass_deadline,
        memory_bytes: opts.memory_limit_bytes,
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
    let runner = match load_runner(&opts) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match (opts.command, stop) {
        (Command::Once, _) => once(&opts, &runner).await,
        (Command::Check, _) => check(&opts, &runner).await,
        (Command::Service, Some(stop)) => service(&opts, &runner, stop).await,
        (Command::Service, None) => unreachable!("signals are installed for the service"),
    }
}

struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// What a pass amounted to, for logs, metrics and exit codes.
fn classify(call: &Call) -> (&'static str, Option<&Value>) {
    match &call.outcome {
        CallOutcome::Report(r) => match r["outcome"].as_str() {
            Some("converged") => ("converged", Some(r)),
            Some("removals_withheld") => ("removals_withheld", Some(r)),
            _ => ("failed", Some(r)),
        },
        CallOutcome::ConfigError(_) | CallOutcome::Trapped(_) => ("failed", None),
    }
}

fn log_pass(call: &Call, dry_run: bool) {
    let (result, report) = classify(call);
    let ms = call.duration.as_millis() as u64;
    match (&call.outcome, report) {
        (CallOutcome::ConfigError(e), _) => tracing::error!(result, "configuration error: {e}"),
        (CallOutcome::Trapped(e), _) => {
            tracing::error!(result, duration_ms = ms, "pass stopped: {e}")
        }
        (_, Some(r)) => {
            let total = |f: &str| {
                r["targets"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|t| t[f].as_u64()).sum::<u64>())
                    .unwrap_or(0)
            };
            let errors: Vec<&str> = r["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let line = format!(
                "pass {result}{}: users={} to_add={} to_remove={} added={} removed={} unmapped={} withheld={} failures={} duration_ms={ms}",
                if dry_run { " (dry run)" } else { "" },
                r["users_seen"],
                total("to_add"),
                total("to_remove"),
                total("added"),
                total("removed"),
                total("users_unmapped"),
                total("withheld_removals"),
                r["targets"].as_array().map(|t| t.iter().map(|t| t["failures"].as_array().map_or(0, Vec::len)).sum::<usize>()).unwrap_or(0),
            );
            match result {
                "failed" => tracing::error!(result, "{line}; errors: {}", errors.join("; ")),
                "removals_withheld" => tracing::warn!(result, "{line}"),
                _ => tracing::info!(result, "{line}"),
            }
        }
        (_, None) => {}
    }
    if call.denied_requests > 0 {
        tracing::warn!(
            denied = call.denied_requests,
            "the egress policy refused requests during the pass"
        );
    }
}

fn dry_run(opts: &Options) -> bool {
    opts.component_config
        .get("dry_run")
        .is_some_and(|v| matches!(v.as_str(), "true" | "1" | "yes" | "on"))
}

async fn once(opts: &Options, runner: &Runner) -> ExitCode {
    let call = runner
        .call("run", &opts.component_config, &limits(opts))
        .await;
    log_pass(&call, dry_run(opts));
    if let CallOutcome::Report(r) = &call.outcome {
        println!("{r}");
    }
    match (&call.outcome, classify(&call).0) {
        (CallOutcome::ConfigError(_), _) => ExitCode::from(EXIT_CONFIG),
        (_, "converged") => ExitCode::SUCCESS,
        (_, "removals_withheld") => ExitCode::from(EXIT_WITHHELD),
        _ => ExitCode::from(EXIT_FAILED),
    }
}

async fn check(opts: &Options, runner: &Runner) -> ExitCode {
    let call = runner
        .call("check", &opts.component_config, &limits(opts))
        .await;
    let report = match call.outcome {
        CallOutcome::Report(r) => r,
        CallOutcome::ConfigError(e) => {
            eprintln!("configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        CallOutcome::Trapped(e) => {
            eprintln!("check failed: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    println!("configuration: valid");
    println!("egress allowed to: {}", opts.allowed_hosts.join(", "));
    match report["hub_identity"].as_str() {
        Some(who) => println!(
            "hub token: {who}; scopes: {}",
            report["hub_scopes"]
                .as_array()
                .map(|s| s
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        None => println!("hub token: could not be checked"),
    }
    for s in report["missing_scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        println!("MISSING scope: {s} (add it to the service's role in c.JupyterHub.load_roles)");
    }
    for g in report["groups_readable"].as_array().into_iter().flatten() {
        println!(
            "grouper group {}: readable ({} member(s) on the first page)",
            g[0].as_str().unwrap_or("?"),
            g[1]
        );
    }
    for e in report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        println!("ERROR: {e}");
    }
    let ok = report["errors"].as_array().is_some_and(Vec::is_empty)
        && report["missing_scopes"]
            .as_array()
            .is_some_and(Vec::is_empty);
    println!(
        "{}",
        if ok {
            "check passed; nothing was written"
        } else {
            "check FAILED; nothing was written"
        }
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos as u64 ^ (std::process::id() as u64) << 20
}

async fn service(opts: &Options, runner: &Runner, stop: StopSignals) -> ExitCode {
    let StopSignals {
        int: mut sigint,
        term: mut sigterm,
    } = stop;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = opts.metrics_addr {
        match metrics::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
                tokio::spawn(metrics::serve(listener, metrics.clone(), opts.sync_every));
            }
            Err(e) => tracing::error!(%addr, "cannot serve metrics: {e}"),
        }
    }
    tracing::info!(
        sync_every_s = opts.sync_every.as_secs(),
        enabled = opts.enabled,
        dry_run = dry_run(opts),
        egress = %opts.allowed_hosts.join(","),
        "grouper-sync service started"
    );
    let limits = limits(opts);
    let mut failures = 0u32;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
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
        let call = tokio::select! {
            call = runner.call("run", &opts.component_config, &limits) => call,
            _ = sigint.recv() => { tracing::warn!("stopping: abandoning the pass in progress"); break }
            _ = sigterm.recv() => { tracing::warn!("stopping: abandoning the pass in progress"); break }
        };
        log_pass(&call, dry_run(opts));
        let (result, report) = classify(&call);
        metrics.record(result, report, call.duration, call.denied_requests);
        if result == "failed" {
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
            next = Instant::now() + schedule::jittered(opts.sync_every, seed());
        }
    }
    tracing::info!("grouper-sync stopped");
    ExitCode::SUCCESS
}
