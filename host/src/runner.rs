//! Runs the component: one engine and one compiled component per process, a fresh store per
//! pass with its own config, egress policy, memory limit and deadline.

use crate::egress::EgressPolicy;
use anyhow::{anyhow, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

const SYNC_INTERFACE: &str = "jupyterhub-grouper-sync:sync/sync@0.1.0";
const EPOCH_TICK: Duration = Duration::from_millis(50);

/// The embedded release component (built by build.rs).
pub static EMBEDDED_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jupyterhub_grouper_sync.wasm"));

struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    config: WasiConfigVariables,
    egress: EgressPolicy,
    limits: StoreLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// Limits for one call into the component.
#[derive(Debug, Clone)]
pub struct Limits {
    pub allowed_hosts: Vec<String>,
    pub http_timeout_cap: Duration,
    pub deadline: Duration,
    pub memory_bytes: usize,
}

/// What one call produced.
#[derive(Debug)]
pub enum CallOutcome {
    /// The export returned a report (its JSON).
    Report(Value),
    /// The settings were rejected before anything ran.
    ConfigError(String),
    /// The component trapped (deadline, memory limit, bug) or could not be instantiated.
    Trapped(String),
}

#[derive(Debug)]
pub struct Call {
    pub outcome: CallOutcome,
    pub denied_requests: u32,
    pub duration: Duration,
}

pub struct Runner {
    engine: Engine,
    component: Component,
    linker: Linker<HostState>,
}

impl Runner {
    /// Compiles the component once.
    pub fn new(wasm: &[u8]) -> Result<Runner> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let ticker = engine.weak();
        std::thread::spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match ticker.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        });
        let component =
            Component::new(&engine, wasm).map_err(|e| anyhow!("loading the component: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |h: &mut HostState| {
            WasiConfig::from(&h.config)
        })?;
        Ok(Runner {
            engine,
            component,
            linker,
        })
    }

    /// Calls `run` or `check` with these `wasi:config` values. The component gets no environment
    /// variables, no arguments, no files; its stderr is re-logged line by line.
    pub async fn call(
        &self,
        export: &str,
        config: &BTreeMap<String, String>,
        limits: &Limits,
    ) -> Call {
        let started = Instant::now();
        let stderr = MemoryOutputPipe::new(1 << 20);
        let denied = Arc::new(AtomicU32::new(0));
        let state = HostState {
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            config: WasiConfigVariables::from_iter(
                config.iter().map(|(k, v)| (k.clone(), v.clone())),
            ),
            egress: EgressPolicy {
                allowed: Arc::new(limits.allowed_hosts.clone()),
                timeout_cap: limits.http_timeout_cap,
                denied: denied.clone(),
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(32)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let deadline = started + limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        // The epoch deadline stops running wasm; the timeout also stops a guest waiting on I/O.
        let result = tokio::time::timeout(
            limits.deadline + EPOCH_TICK * 4,
            self.invoke(&mut store, export),
        )
        .await;
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                let text = match e.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => format!(
                        "the pass exceeded its deadline of {} s and was stopped",
                        limits.deadline.as_secs()
                    ),
                    _ => format!("the component trapped: {e:#}"),
                };
                CallOutcome::Trapped(text)
            }
            Err(_) => CallOutcome::Trapped(format!(
                "the pass exceeded its deadline of {} s and was stopped",
                limits.deadline.as_secs()
            )),
        };
        relog(&String::from_utf8_lossy(&stderr.contents()));
        Call {
            outcome,
            denied_requests: denied.load(Ordering::Relaxed),
            duration: started.elapsed(),
        }
    }

    async fn invoke(
        &self,
        store: &mut Store<HostState>,
        export: &str,
    ) -> wasmtime::Result<CallOutcome> {
        let instance = self
            .linker
            .instantiate_async(&mut *store, &self.component)
            .await?;
        let iface = instance
            .get_export_index(&mut *store, None, SYNC_INTERFACE)
            .ok_or_else(|| {
                wasmtime::format_err!("the component does not export {SYNC_INTERFACE}")
            })?;
        let index = instance
            .get_export_index(&mut *store, Some(&iface), export)
            .ok_or_else(|| wasmtime::format_err!("the component does not export {export}"))?;
        let func = instance
            .get_func(&mut *store, index)
            .ok_or_else(|| wasmtime::format_err!("{export} is not a function"))?;
        let mut results = [Val::Bool(false)];
        func.call_async(&mut *store, &[], &mut results).await?;
        Ok(match &results[0] {
            Val::Result(Ok(Some(record))) => match record_json(record) {
                Some(json) => CallOutcome::Report(json),
                None => CallOutcome::Trapped("the component's answer has no json field".into()),
            },
            Val::Result(Err(Some(err))) => CallOutcome::ConfigError(variant_text(err)),
            other => {
                CallOutcome::Trapped(format!("unexpected answer from the component: {other:?}"))
            }
        })
    }
}

/// The `json` field of the report / check-report record.
fn record_json(record: &Val) -> Option<Value> {
    let Val::Record(fields) = record else {
        return None;
    };
    fields
        .iter()
        .find(|(n, _)| n == "json")
        .and_then(|(_, v)| match v {
            Val::String(s) => serde_json::from_str(s).ok(),
            _ => None,
        })
}

fn variant_text(v: &Val) -> String {
    match v {
        Val::Variant(_, Some(payload)) => match payload.as_ref() {
            Val::String(s) => s.clone(),
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// Re-emits the component's `grouper-sync LEVEL: message` lines through tracing.
fn relog(stderr: &str) {
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let rest = line.strip_prefix("grouper-sync ").unwrap_or(line);
        match rest.split_once(": ") {
            Some(("error", m)) => tracing::error!(target: "component", "{m}"),
            Some(("warn", m)) => tracing::warn!(target: "component", "{m}"),
            Some(("debug", m)) => tracing::debug!(target: "component", "{m}"),
            Some(("info", m)) => tracing::info!(target: "component", "{m}"),
            _ => tracing::info!(target: "component", "{line}"),
        }
    }
}
