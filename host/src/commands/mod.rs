//! The commands of `grouper-sync`, one module each (`service`, `once`, `check`, `approve`, `log`,
//! `precompile`, `state`), over what they share: the sandbox limits, the compiled component, the
//! lock on `state_dir`, and one pass's sequence of side effects (`pass`).

pub mod approve;
mod check;
pub mod log;
pub mod once;
pub mod pass;
pub mod precompile;
mod service;
pub mod state;

use crate::options::Options;
pub use crate::outcome::ExitStatus;
use crate::sandbox::compiled;
use crate::sandbox::runner::{self, Limits, Runner};
use crate::sandbox::tls;
use crate::store::change_log::ChangeLog;
use crate::store::state::{LockError, StateLock, StateStore};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

/// What `grouper-sync` was asked to do, with the command's own arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run passes on a schedule until stopped (no command on the command line).
    Service(pass::PassArgs),
    /// One pass; the exit status tells the outcome.
    Once(once::Args),
    /// Validate the settings, show the hub token's scopes, read the targets; write nothing.
    Check,
    /// Record an approval of a withheld plan for the next pass.
    Approve(approve::Args),
    /// Print the change log.
    Log(log::Args),
    /// Compile the embedded component ahead of time into a directory (packaging).
    Precompile(precompile::Args),
    /// Show the user state.
    State(state::Args),
}

/// A withheld plan's name as given on the command line: 16 hex digits, any case.
pub(crate) fn plan_name(given: &str) -> Result<String, String> {
    let plan = given.trim().to_ascii_lowercase();
    if jupyterhub_grouper_sync::http_entry::is_plan_hash(&plan) {
        Ok(plan)
    } else {
        Err("a withheld plan is named by 16 hex digits (withheld_plan in the report)".into())
    }
}

/// Runs the command with the settings.
pub async fn execute(command: Command, opts: Options) -> ExitStatus {
    // Installed before anything slow (compiling the component takes a moment): a process started
    // from a background job inherits SIGINT as ignored, and the hub stops services with SIGINT, so
    // a signal during start-up must not be lost.
    let stop = if matches!(command, Command::Service(_)) {
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
        command,
        Command::Service(_) | Command::Once(_) | Command::Approve(_)
    ) {
        // refused before anything runs: whoever can write there can approve removals
        if let Some(why) = crate::store::state::unsafe_dir(&opts.state_dir) {
            tracing::error!("{why}");
            return ExitStatus::Config;
        }
    }
    match &command {
        Command::Approve(args) => return args.execute(&opts).await,
        Command::Log(args) => return args.execute(&opts),
        Command::Precompile(args) => return args.execute(),
        Command::State(args) => return args.execute(&opts),
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
    let runner = match load_runner(&opts, &command) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitStatus::Failed;
        }
    };
    match (command, stop) {
        (Command::Once(args), _) => args.execute(&opts, &runner, &limits).await,
        (Command::Check, _) => check::execute(&opts, &runner, &limits).await,
        (Command::Approve(_) | Command::Log(_) | Command::Precompile(_) | Command::State(_), _) => {
            unreachable!("approve, log, precompile and state run no pass")
        }
        (Command::Service(args), Some(stop)) => {
            service::execute(&args, &opts, &runner, &limits, stop).await
        }
        (Command::Service(_), None) => unreachable!("signals are installed for the service"),
    }
}

pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

fn load_runner(opts: &Options, command: &Command) -> anyhow::Result<Runner> {
    let started = std::time::Instant::now();
    let places = compiled::Places::installed(
        compile_cache(&opts.state_dir),
        !matches!(command, Command::Check),
    );
    let (runner, origin) = match &opts.component {
        Some(path) => {
            let wasm = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("reading --component {}: {e}", path.display()))?;
            Runner::load(&wasm, &places)?
        }
        None => Runner::load(runner::EMBEDDED_COMPONENT, &places)?,
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match origin {
        compiled::Origin::Shipped(path) | compiled::Origin::Cached(path) => {
            tracing::debug!(ms, path = %path.display(), "component loaded, compiled ahead of time")
        }
        compiled::Origin::Compiled { kept } => tracing::debug!(
            ms,
            kept = kept.as_ref().map(|p| p.display().to_string()),
            "component compiled"
        ),
    }
    Ok(runner)
}

/// Where compiled components are kept: under `state_dir`, and only while that directory and the
/// cache in it are the service user's alone (native code is loaded from there).
fn compile_cache(state_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let cache = state_dir.join("compiled");
    let safe = crate::store::state::unsafe_dir(state_dir).is_none()
        && crate::store::state::unsafe_dir(&cache).is_none();
    safe.then_some(cache)
}

/// The sandbox of every call; the trusted CAs are read once, here.
fn limits(opts: &Options) -> Result<Limits, String> {
    let started = std::time::Instant::now();
    let tls = tls::client_config(opts.ca_file.as_deref())?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(ms, "trusted CAs read");
    Ok(Limits {
        allowed_hosts: Some(opts.allowed_hosts.clone()),
        http_timeout_cap: opts.http_timeout_cap,
        tls,
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

/// What the lock on `state_dir` says about its holder, `grouper-sync <command>`.
fn lock_holder(command: &str) -> String {
    format!(
        "grouper-sync {command} (pid {}, since {})",
        std::process::id(),
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    )
}

/// Takes the lock on `state_dir` for `command`, waiting up to `lock_wait` for its holder (saying
/// who).
pub(crate) async fn lock_state(
    opts: &Options,
    store: &StateStore,
    command: &str,
) -> Result<StateLock, LockError> {
    let holder = lock_holder(command);
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

#[cfg(test)]
mod tests {
    use super::compile_cache;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn compiled_components_are_kept_only_where_no_one_else_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        assert_eq!(compile_cache(&state_dir), Some(state_dir.join("compiled")));
        std::fs::create_dir(&state_dir).unwrap();
        let mode = |path: &std::path::Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(&state_dir, 0o700);
        std::fs::create_dir(state_dir.join("compiled")).unwrap();
        mode(&state_dir.join("compiled"), 0o777);
        assert_eq!(compile_cache(&state_dir), None, "a cache others can write");
        mode(&state_dir.join("compiled"), 0o700);
        assert_eq!(compile_cache(&state_dir), Some(state_dir.join("compiled")));
        mode(&state_dir, 0o775);
        assert_eq!(
            compile_cache(&state_dir),
            None,
            "a state_dir its group can write"
        );
    }
}
