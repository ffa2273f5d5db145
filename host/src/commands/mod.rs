//! The commands of `grouper-sync`, one module each (`service`, `once`, `check`, `approve`, `log`),
//! over what they share: the sandbox limits, the compiled component, the lock on `state_dir`, and
//! one pass's sequence of side effects (`pass`).

mod approve;
mod check;
mod log;
mod once;
pub mod pass;
mod service;

use crate::options::{Command, Options};
pub use crate::outcome::ExitStatus;
use crate::sandbox::runner::{self, Limits, Runner};
use crate::sandbox::tls;
use crate::store::change_log::ChangeLog;
use crate::store::state::{LockError, StateLock, StateStore};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

/// Runs the command the options name.
pub async fn execute(opts: Options) -> ExitStatus {
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
                return ExitStatus::Failed;
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
        if let Some(why) = crate::store::state::unsafe_dir(&opts.state_dir) {
            tracing::error!("{why}");
            return ExitStatus::Config;
        }
    }
    match opts.command {
        Command::Approve => return approve::execute(&opts).await,
        Command::Log => return log::execute(&opts),
        _ => {}
    }
    let limits = match limits(&opts) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitStatus::Config;
        }
    };
    warn_cleartext(&opts);
    let runner = match load_runner(&opts) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitStatus::Failed;
        }
    };
    match (opts.command, stop) {
        (Command::Once, _) => once::execute(&opts, &runner, &limits).await,
        (Command::Check, _) => check::execute(&opts, &runner, &limits).await,
        (Command::Approve | Command::Log, _) => unreachable!("approve and log run no component"),
        (Command::Service, Some(stop)) => service::execute(&opts, &runner, &limits, stop).await,
        (Command::Service, None) => unreachable!("signals are installed for the service"),
    }
}

pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
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
            if crate::sandbox::egress::is_cleartext_remote(url) {
                tracing::warn!(
                    setting = key,
                    "{key} is http:// to a host other than this machine: its credentials cross the network unencrypted (use https://)"
                );
            }
        }
    }
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
pub(crate) async fn lock_state(opts: &Options, store: &StateStore) -> Result<StateLock, LockError> {
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

pub(crate) fn change_log(opts: &Options) -> ChangeLog {
    ChangeLog::new(
        &opts.state_dir,
        opts.change_log_max_bytes,
        opts.change_log_keep,
    )
}
