//! The component's test harness: builds the release component once and runs it through the same
//! embedding as `grouper-sync` (`grouper_sync_host::sandbox::runner::Runner`: typed exports, both
//! wasi:config versions, wasi:http), with any export. The fakes, the real hub and the waits come
//! from the shared test kit, re-exported here.

use grouper_sync_host::sandbox::compiled::Places;
use grouper_sync_host::sandbox::runner::{Call, HttpAnswer, Inputs, Limits, Runner};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub use grouper_sync_testkit::*;

pub const SYNC_INTERFACE: &str = "jupyterhub-grouper-sync:sync/sync@0.1.0";

/// The default build, compiled and linked once per test process.
pub fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| runner_for(component_path()))
}

/// A runner for a built `.wasm` file, compiled once for all test processes (kept beside it, in
/// `<name>.compiled/`, as `grouper-sync` keeps it in `state_dir/compiled/`).
pub fn runner_for(path: &Path) -> Runner {
    let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let places = Places {
        shipped: None,
        cache: Some(path.with_extension("compiled")),
        write_cache: true,
    };
    Runner::load(&wasm, &places)
        .expect("compile and link the component")
        .0
}

/// Builds `target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm` (a no-op when fresh).
pub fn component_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_component(&[], "release"))
}

/// The `--features spin` build (wasi:config draft-2024-09-27), in `target/spin`.
pub fn spin_component_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_component(&["spin"], "spin"))
        .clone()
}

/// Builds the component with these cargo features into its own target directory (so that a
/// feature build never overwrites the default one) and returns the `.wasm` path.
pub fn build_component(features: &[&str], dir: &str) -> PathBuf {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&root).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "-p",
        "jupyterhub-grouper-sync",
    ]);
    let target_dir = if features.is_empty() {
        root.join("target")
    } else {
        cmd.args(["--features", &features.join(",")]);
        root.join("target").join(dir)
    };
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let status = cmd.status().expect("run cargo to build the component");
    assert!(
        status.success(),
        "building the component failed (is the wasm32-wasip2 target installed?)"
    );
    target_dir.join("wasm32-wasip2/release/jupyterhub_grouper_sync.wasm")
}

/// Generous limits: any host, a deadline far beyond any test's need.
pub fn open_limits() -> Limits {
    Limits {
        allowed_hosts: None,
        http_timeout_cap: Duration::from_secs(120),
        tls: system_trust(),
        deadline: Duration::from_secs(600),
        memory_bytes: 256 << 20,
    }
}

/// The host's default trust: the system's CA certificates only.
pub fn system_trust() -> grouper_sync_host::sandbox::tls::Trust {
    static TRUST: OnceLock<grouper_sync_host::sandbox::tls::Trust> = OnceLock::new();
    TRUST
        .get_or_init(|| grouper_sync_host::sandbox::tls::client_config(None).expect("system CAs"))
        .clone()
}

/// What one run of the component produced.
#[derive(Debug)]
pub struct Run {
    /// The typed export's result: `Ok(report JSON)` or `Err(config error text)`.
    pub result: Result<Value, String>,
    /// For `wasi:cli/run`: whether it returned ok (exit status 0).
    pub exit_ok: Option<bool>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn report(&self) -> &Value {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!(
                "expected a report, got config error: {e}\nstderr:\n{}",
                self.stderr
            ),
        }
    }
    pub fn target(&self) -> &Value {
        &self.report()["targets"][0]
    }

    /// What the component logged, wherever its entry logs: the text lines on stderr and the
    /// messages of the `{"log": …}` lines the typed exports write to stdout.
    pub fn log_text(&self) -> String {
        let records = self.stdout.lines().filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            v["log"]["message"].as_str().map(String::from)
        });
        std::iter::once(self.stderr.clone())
            .chain(records)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub enum Entry {
    /// `jupyterhub-grouper-sync:sync/sync.run`
    Typed,
    /// `wasi:cli/run`
    Cli,
}

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(f);
    // Abandoned connections (a timed-out request) must not hold the test up.
    rt.shutdown_background();
    out
}

pub fn inputs(config: &[(String, String)], env: &[(String, String)]) -> Inputs {
    Inputs {
        config: config.iter().cloned().collect::<BTreeMap<_, _>>(),
        env: env.to_vec(),
    }
}

/// Run options of a pass without a user state (a full pass).
pub fn no_state() -> grouper_sync_host::sandbox::bindings::RunOptions {
    grouper_sync_host::sandbox::bindings::RunOptions {
        user_state: None,
        full: false,
        approved_plans: Vec::new(),
        removal_ledger: Vec::new(),
    }
}

/// One typed pass of the default build given a user state: the JSON report (checked against the
/// typed fields) and the user state it returned.
pub fn run_incremental(
    config: &[(String, String)],
    user_state: Option<Vec<u8>>,
    full: bool,
) -> (Value, Option<Vec<u8>>) {
    let options = grouper_sync_host::sandbox::bindings::RunOptions {
        user_state,
        full,
        approved_plans: Vec::new(),
        removal_ledger: Vec::new(),
    };
    let call = block_on(runner().run(&inputs(config, &[]), &open_limits(), options));
    eprintln!("--- component stderr ---\n{}", call.stderr);
    let report = call
        .result
        .expect("the call was not stopped")
        .expect("the settings are valid");
    let parsed = typed_report(&report);
    assert_eq!(
        report.users_fetched as u64,
        parsed["users_fetched"].as_u64().unwrap()
    );
    assert_eq!(
        report.users_from_state as u64,
        parsed["users_from_state"].as_u64().unwrap()
    );
    (parsed, report.next_user_state)
}

/// The typed `check` of the default build with these `wasi:config` values.
pub fn run_check(config: &[(String, String)]) -> grouper_sync_host::sandbox::bindings::CheckReport {
    let call = block_on(runner().check(&inputs(config, &[]), &open_limits()));
    eprintln!("--- component stderr ---\n{}", call.stderr);
    match call.result {
        Ok(Ok(report)) => report,
        other => panic!("check did not report: {other:?}"),
    }
}

/// Runs the default build once with these `wasi:config` values and environment variables.
pub fn run_component(entry: Entry, config: &[(String, String)], env: &[(String, String)]) -> Run {
    run_with(runner(), entry, config, env)
}

/// Runs a given build once.
pub fn run_with(
    runner: &Runner,
    entry: Entry,
    config: &[(String, String)],
    env: &[(String, String)],
) -> Run {
    run_limited(runner, entry, config, env, &open_limits())
}

/// Runs a given build once within these limits (egress, trusted CAs, deadline).
pub fn run_limited(
    runner: &Runner,
    entry: Entry,
    config: &[(String, String)],
    env: &[(String, String)],
    limits: &Limits,
) -> Run {
    let inputs = inputs(config, env);
    let run = match entry {
        Entry::Typed => {
            let call = block_on(runner.run(&inputs, limits, no_state()));
            let result = match call.result.expect("the call was not stopped") {
                Ok(report) => Ok(typed_report(&report)),
                Err(e) => Err(format!(
                    "[{}] {}",
                    grouper_sync_host::sandbox::bindings::core_kind(e.kind),
                    e.message
                )),
            };
            Run {
                result,
                exit_ok: None,
                stdout: call.stdout,
                stderr: call.stderr,
            }
        }
        Entry::Cli => {
            let call = block_on(runner.cli_run(&inputs, limits));
            let exit_ok = call.result.expect("the call was not stopped");
            let result = serde_json::from_str(call.stdout.trim())
                .map_err(|e| format!("stdout is not one JSON line ({e}): {}", call.stdout));
            Run {
                result,
                exit_ok: Some(exit_ok),
                stdout: call.stdout,
                stderr: call.stderr,
            }
        }
    };
    eprintln!("--- component stderr ---\n{}", run.stderr);
    run
}

/// Sends one request to the component's HTTP entry.
pub fn http_request(
    runner: &Runner,
    config: &[(String, String)],
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> Call<HttpAnswer> {
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(format!("http://grouper-sync.test{path}"));
    if let Some(a) = authorization {
        builder = builder.header("authorization", a);
    }
    let request = builder
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let call = block_on(runner.handle_http(&inputs(config, &[]), &open_limits(), request));
    eprintln!("--- component stderr ---\n{}", call.stderr);
    call
}

/// Checks that the typed record agrees with its own `json` field, and returns the JSON.
fn typed_report(report: &grouper_sync_host::sandbox::bindings::Report) -> Value {
    let parsed: Value = serde_json::from_str(&report.json).expect("json field parses");
    assert_eq!(
        grouper_sync_host::sandbox::bindings::core_outcome(report.outcome).as_str(),
        parsed["outcome"].as_str().unwrap(),
        "typed outcome matches JSON"
    );
    assert_eq!(
        report.users_seen as u64,
        parsed["users_seen"].as_u64().unwrap()
    );
    assert_eq!(
        report.errors.len(),
        parsed["errors"].as_array().unwrap().len()
    );
    parsed
}
