//! The service: a pass at start and then on the schedule, the metrics endpoint and status page,
//! stopped by SIGINT or SIGTERM.

use super::pass::{pass, PassArgs, PassRequest};
use super::{ExitStatus, StopSignals};
use crate::options::Options;
use crate::sandbox::runner::{Limits, Runner};
use crate::schedule;
use crate::store::history::{History, RecentPasses};
use crate::web::endpoint::{self, Board};
use crate::web::guard::AllowedHosts;
use crate::web::hub_oauth::{HubHttp, HubOAuth, TlsHubHttp};
use crate::web::metrics::Metrics;
use crate::web::session::CookiePolicy;
use crate::web::status_page;
use crate::web::ui::Ui;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Runs the service until a signal stops it.
pub async fn execute(
    args: &PassArgs,
    opts: &Options,
    runner: &Runner,
    limits: &Limits,
    stop: StopSignals,
) -> ExitStatus {
    let StopSignals {
        int: mut sigint,
        term: mut sigterm,
    } = stop;
    let metrics = Arc::new(Metrics::default());
    let board = Arc::new(board(opts, limits));
    let (stop_serving, serving_stopped) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    if let Some(addr) = opts.metrics_addr {
        let router = endpoint::metrics_router(
            metrics.clone(),
            opts.sync_every,
            opts.page.prefix.as_deref(),
        );
        servers.extend(
            listen(
                "/metrics, /healthz and /readyz",
                addr,
                router,
                &serving_stopped,
            )
            .await,
        );
    }
    if let Some(addr) = opts.page.addr {
        tracing::info!(
            hosts = %board.hosts.names().join(","),
            sign_in = sign_in_of(opts),
            "the status page answers to these host names"
        );
        let router = endpoint::status_router(board.clone());
        servers.extend(listen("the status page", addr, router, &serving_stopped).await);
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
    let mut full = args.full;
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
            summary = pass(opts, runner, limits, PassRequest { command: "service", full, approved_now: None }) => summary,
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
    for server in servers {
        let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    }
    tracing::info!("grouper-sync stopped");
    ExitStatus::Ok
}

/// Serves `router` on `addr` until `stopped`; a port that cannot be bound is logged, not fatal.
async fn listen(
    what: &str,
    addr: std::net::SocketAddr,
    router: axum::Router,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    match endpoint::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "serving {what}");
            Some(tokio::spawn(endpoint::serve(
                listener,
                router,
                stopped.clone(),
            )))
        }
        Err(e) => {
            tracing::error!(%addr, "cannot serve {what}: {e}");
            None
        }
    }
}

/// How browsers sign in to the status page, for the start-up log.
fn sign_in_of(opts: &Options) -> &'static str {
    match (&opts.page.hub_oauth, &opts.page.ui_token) {
        (Some(_), _) => "through the hub (OAuth)",
        (None, Some(_)) => "with the ui_token",
        (None, None) => "none configured: the page shows nothing",
    }
}

/// What the status page reads and who may see it.
fn board(opts: &Options, limits: &Limits) -> Board {
    let hub = opts.page.hub_oauth.clone().map(|settings| {
        let http: Box<dyn HubHttp> = Box::new(TlsHubHttp {
            trust: limits.tls.clone(),
            timeout: HUB_SIGN_IN_TIMEOUT,
        });
        (HubOAuth::new(settings), http)
    });
    let cookies = CookiePolicy {
        path: opts.page.prefix.clone().unwrap_or_else(|| "/".into()),
        always_secure: opts.page.always_secure,
    };
    Board {
        history: RecentPasses::new(History::new(&opts.state_dir)),
        context: std::sync::Mutex::new(page_context(opts)),
        ui: Ui::new(hub, opts.page.ui_token.clone(), cookies, &opts.state_dir),
        prefix: opts.page.prefix.clone(),
        hosts: AllowedHosts::new(opts.page.hosts.iter().map(String::as_str)),
    }
}

/// How long the hub has to answer a sign-in's token and user requests.
const HUB_SIGN_IN_TIMEOUT: Duration = Duration::from_secs(30);

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
