//! Test harness: builds the release component once, instantiates it in-process with wasmtime 48
//! (wasi, wasi-http, wasi-config), and runs either export. Also a small fake JupyterHub for fault
//! injection (the real hub is used by tests/real_hub.rs).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wasmtime::component::{Component, Val};
use wasmtime::Store;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub mod fake_hub;
pub mod real_hub;
pub mod runtime;
#[allow(unused_imports)]
pub use fake_hub::FakeHub;
#[allow(unused_imports)]
pub use real_hub::{http, RealHub};
pub use runtime::{engine, Host};

pub const SYNC_INTERFACE: &str = "jupyterhub-grouper-sync:sync/sync@0.1.0";

/// The component, compiled once per test process.
pub fn component() -> &'static Component {
    static COMPONENT: OnceLock<Component> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        Component::from_file(engine(), component_path()).expect("compile component")
    })
}

/// Builds `target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm` (a no-op when fresh).
/// The wasm build uses its own lock directory, so this is safe inside `cargo test`.
pub fn component_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "jupyterhub-grouper-sync",
            ])
            .status()
            .expect("run cargo to build the component");
        assert!(
            status.success(),
            "building the component failed (is the wasm32-wasip2 target installed?)"
        );
        root.join("target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm")
    })
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
}

pub enum Entry {
    /// `jupyterhub-grouper-sync:sync/sync.run`
    Typed,
    /// `wasi:cli/run`
    Cli,
}

/// Runs the component once with these `wasi:config` values and environment variables.
pub fn run_component(entry: Entry, config: &[(String, String)], env: &[(String, String)]) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = rt.block_on(async {
        let stdout = MemoryOutputPipe::new(1 << 20);
        let stderr = MemoryOutputPipe::new(1 << 20);
        let wasi = wasmtime_wasi::WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(env)
            .build();
        let mut store = Store::new(engine(), Host::new(wasi, config));
        let instance = runtime::linker()
            .instantiate_async(&mut store, component())
            .await
            .expect("instantiate");
        let (iface, func_name) = match entry {
            Entry::Typed => (SYNC_INTERFACE, "run"),
            Entry::Cli => ("wasi:cli/run@0.2.2", "run"),
        };
        let iface_idx = instance
            .get_export_index(&mut store, None, iface)
            .expect("interface export");
        let func_idx = instance
            .get_export_index(&mut store, Some(&iface_idx), func_name)
            .expect("run export");
        let func = instance.get_func(&mut store, func_idx).expect("func");
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &[], &mut results)
            .await
            .expect("call run");
        let (result, exit_ok) = match (&entry, &results[0]) {
            (Entry::Typed, Val::Result(Ok(Some(report)))) => (Ok(typed_report(report)), None),
            (Entry::Typed, Val::Result(Err(Some(err)))) => (Err(format!("{err:?}")), None),
            (Entry::Cli, Val::Result(r)) => (Err("cli".into()), Some(r.is_ok())),
            (_, other) => panic!("unexpected result {other:?}"),
        };
        let stdout = String::from_utf8_lossy(&stdout.contents()).into_owned();
        let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
        let result = match entry {
            Entry::Cli => serde_json::from_str(stdout.trim())
                .map_err(|e| format!("stdout is not one JSON line ({e}): {stdout}")),
            Entry::Typed => result,
        };
        eprintln!("--- component stderr ---\n{stderr}");
        Run {
            result,
            exit_ok,
            stdout,
            stderr,
        }
    });
    // Abandoned connections (a timed-out request) must not hold the test up.
    rt.shutdown_background();
    run
}

/// Reads the typed record: returns its `json` field parsed, after checking that the typed
/// outcome and counts agree with it.
fn typed_report(report: &Val) -> Value {
    let Val::Record(fields) = report else {
        panic!("report is not a record: {report:?}")
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {name}"))
    };
    let Val::String(json) = field("json") else {
        panic!("json field")
    };
    let parsed: Value = serde_json::from_str(json).expect("json field parses");
    let Val::Enum(outcome) = field("outcome") else {
        panic!("outcome field")
    };
    assert_eq!(
        outcome.replace('-', "_"),
        parsed["outcome"].as_str().unwrap(),
        "typed outcome matches JSON"
    );
    let Val::U32(seen) = field("users-seen") else {
        panic!("users-seen")
    };
    assert_eq!(*seen as u64, parsed["users_seen"].as_u64().unwrap());
    parsed
}

/// Configuration as `wasi:config` pairs.
pub fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Replaces or adds pairs.
pub fn with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        base.retain(|(bk, _)| bk != k);
        base.push((k.to_string(), v.to_string()));
    }
    base
}

/// Reads a Grouper capture from ../shared/fixtures/grouper, or None (with a message) when absent.
pub fn fixture(name: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/grouper")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))),
        Err(_) => {
            eprintln!(
                "SKIP: Grouper fixture {} is absent (third-party captures live outside the repo)",
                path.display()
            );
            None
        }
    }
}
