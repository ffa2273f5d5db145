//! Runs the component: one engine and one pre-linked component (`InstancePre`) per process, a
//! fresh store per call with its own config, environment, egress policy, memory limit and
//! deadline. The exports are called through the typed bindings generated from `wit/world.wit`.

use crate::sandbox::bindings::{
    self, CheckReport, ConfigValues, Report, RunOptions, SyncError, SyncHostPre,
};
use crate::sandbox::compiled;
use crate::sandbox::egress::EgressPolicy;
use crate::sandbox::progress::{OnBatch, ProgressStdout};
use anyhow::{anyhow, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

const EPOCH_TICK: Duration = Duration::from_millis(50);

/// The embedded release component (built by build.rs).
pub static EMBEDDED_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jupyterhub_grouper_sync.wasm"));

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    config: ConfigValues,
    egress: EgressPolicy,
    limits: MemoryLimiter,
}

/// Component instances (stores) alive in this process: one per call in progress.
static LIVE_INSTANCES: AtomicUsize = AtomicUsize::new(0);

pub fn live_instances() -> usize {
    LIVE_INSTANCES.load(Ordering::Relaxed)
}

impl Drop for HostState {
    fn drop(&mut self) {
        LIVE_INSTANCES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The store's limits, noting the largest linear memory the component grew to.
struct MemoryLimiter {
    limits: StoreLimits,
    peak: Arc<AtomicUsize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak.fetch_max(desired, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
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
    /// `scheme://host:port` origins the component may reach; `None` allows any (tests only).
    pub allowed_hosts: Option<Vec<String>>,
    pub http_timeout_cap: Duration,
    /// The roots HTTPS requests are verified against (`tls::client_config`).
    pub tls: crate::sandbox::tls::Trust,
    pub deadline: Duration,
    pub memory_bytes: usize,
}

/// What one call is given: `wasi:config` values and (for tests of the env fallback) environment
/// variables. The host itself never passes environment variables.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub config: BTreeMap<String, String>,
    pub env: Vec<(String, String)>,
}

impl Inputs {
    pub fn config(config: &BTreeMap<String, String>) -> Inputs {
        Inputs {
            config: config.clone(),
            env: Vec::new(),
        }
    }
}

/// Why a call produced no answer of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The call ran past its deadline (kind `deadline`).
    Deadline(String),
    /// The component trapped or could not be instantiated (kind `internal`).
    Trapped(String),
}

impl Stopped {
    pub fn kind(&self) -> jupyterhub_grouper_sync::error::ErrorKind {
        use jupyterhub_grouper_sync::error::ErrorKind;
        match self {
            Stopped::Deadline(_) => ErrorKind::Deadline,
            Stopped::Trapped(_) => ErrorKind::Internal,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Stopped::Deadline(m) | Stopped::Trapped(m) => m,
        }
    }
}

/// One call: its typed result, what the sandbox saw, and the component's output.
#[derive(Debug)]
pub struct Call<T> {
    pub result: Result<T, Stopped>,
    pub denied_requests: u32,
    pub duration: Duration,
    /// The largest linear memory the component grew to, in bytes.
    pub peak_memory_bytes: usize,
    pub stdout: String,
    pub stderr: String,
}

/// The answer of the HTTP entry.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Runner {
    engine: Engine,
    pre: SyncHostPre<HostState>,
    /// The same pre-linked component, seen through the standard `wasi:http/proxy` bindings.
    proxy: ProxyPre<HostState>,
}

struct Prepared {
    store: Store<HostState>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    denied: Arc<AtomicU32>,
    peak_memory: Arc<AtomicUsize>,
    started: Instant,
}

/// The engine every component of this host is compiled for: `grouper-sync precompile` and the
/// loading of a compiled file must agree on it (the file's name carries its settings).
pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Ok(Engine::new(&config)?)
}

impl Runner {
    /// Compiles and links the component.
    pub fn new(wasm: &[u8]) -> Result<Runner> {
        Ok(Runner::load(wasm, &compiled::Places::default())?.0)
    }

    /// Links the component, compiled ahead of time if one of `places` has it, else compiled now.
    pub fn load(wasm: &[u8], places: &compiled::Places) -> Result<(Runner, compiled::Origin)> {
        let engine = engine()?;
        let ticker = engine.weak();
        std::thread::spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match ticker.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        });
        let (component, origin) = compiled::load(&engine, wasm, places)
            .map_err(|e| anyhow!("loading the component: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::add_config_to_linker(&mut linker, |h: &mut HostState| &mut h.config)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("linking the component: {e}"))?;
        let proxy = ProxyPre::new(pre.clone())
            .map_err(|e| anyhow!("the component exports no wasi:http/incoming-handler: {e}"))?;
        let pre = SyncHostPre::new(pre)
            .map_err(|e| anyhow!("the component does not match wit/world.wit: {e}"))?;
        Ok((Runner { engine, pre, proxy }, origin))
    }

    pub fn component_type(&self) -> wasmtime::component::types::Component {
        self.pre.instance_pre().component().component_type()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh store; with `progress`, the component's stdout goes to it line by line instead
    /// of into [`Call::stdout`].
    fn prepare(&self, inputs: &Inputs, limits: &Limits, progress: Option<OnBatch>) -> Prepared {
        let started = Instant::now();
        let stdout = MemoryOutputPipe::new(1 << 22);
        let stderr = MemoryOutputPipe::new(1 << 22);
        let denied = Arc::new(AtomicU32::new(0));
        let peak_memory = Arc::new(AtomicUsize::new(0));
        let mut wasi = WasiCtx::builder();
        match progress {
            Some(on_batch) => wasi.stdout(ProgressStdout::new(on_batch)),
            None => wasi.stdout(stdout.clone()),
        };
        let state = HostState {
            wasi: wasi.stderr(stderr.clone()).envs(&inputs.env).build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            config: ConfigValues(inputs.config.clone()),
            egress: EgressPolicy {
                allowed: limits.allowed_hosts.clone().map(Arc::new),
                timeout_cap: limits.http_timeout_cap,
                tls: limits.tls.clone(),
                denied: denied.clone(),
            },
            limits: MemoryLimiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .instances(32)
                    .trap_on_grow_failure(true)
                    .build(),
                peak: peak_memory.clone(),
            },
        };
        LIVE_INSTANCES.fetch_add(1, Ordering::Relaxed);
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
        Prepared {
            store,
            stdout,
            stderr,
            denied,
            peak_memory,
            started,
        }
    }

    /// Runs `body` against a fresh instance under the deadline, and collects what it left.
    async fn call<T, F, Fut>(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        progress: Option<OnBatch>,
        body: F,
    ) -> Call<T>
    where
        F: FnOnce(Store<HostState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<T>>,
    {
        let p = self.prepare(inputs, limits, progress);
        let deadline_text = format!(
            "the call exceeded its deadline of {} s and was stopped",
            limits.deadline.as_secs()
        );
        // The epoch deadline stops running wasm; the timeout also stops a guest waiting on I/O.
        let result = tokio::time::timeout(limits.deadline + EPOCH_TICK * 4, body(p.store)).await;
        let result = match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => Stopped::Deadline(deadline_text),
                _ => Stopped::Trapped(format!("the component trapped: {e:#}")),
            }),
            Err(_) => Err(Stopped::Deadline(deadline_text)),
        };
        Call {
            result,
            denied_requests: p.denied.load(Ordering::Relaxed),
            duration: p.started.elapsed(),
            peak_memory_bytes: p.peak_memory.load(Ordering::Relaxed),
            stdout: String::from_utf8_lossy(&p.stdout.contents()).into_owned(),
            stderr: String::from_utf8_lossy(&p.stderr.contents()).into_owned(),
        }
    }

    /// `sync.run`: one pass, given the previous pass's user state. `Err(SyncError)` inside
    /// means the settings were rejected. Confirmed batches are dropped (see [`Runner::run_with_progress`]).
    pub async fn run(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        options: RunOptions,
    ) -> Call<Result<Report, SyncError>> {
        self.run_reporting(inputs, limits, options, None).await
    }

    /// `sync.run`, handing each batch the hub or Grouper confirmed to `on_batch` as soon as the
    /// component reports it (also when the call is stopped before it ends), and logging its
    /// records as they come. ([`Runner::run`] keeps both lines in [`Call::stdout`] instead.)
    pub async fn run_with_progress(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        options: RunOptions,
        on_batch: OnBatch,
    ) -> Call<Result<Report, SyncError>> {
        self.run_reporting(inputs, limits, options, Some(on_batch))
            .await
    }

    async fn run_reporting(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        options: RunOptions,
        progress: Option<OnBatch>,
    ) -> Call<Result<Report, SyncError>> {
        let pre = self.pre.clone();
        self.call(inputs, limits, progress, |mut store| async move {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .jupyterhub_grouper_sync_sync_sync()
                .call_run(&mut store, &options)
                .await
        })
        .await
    }

    /// `sync.check`: read-only.
    pub async fn check(
        &self,
        inputs: &Inputs,
        limits: &Limits,
    ) -> Call<Result<CheckReport, SyncError>> {
        let pre = self.pre.clone();
        self.call(inputs, limits, None, |mut store| async move {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .jupyterhub_grouper_sync_sync_sync()
                .call_check(&mut store)
                .await
        })
        .await
    }

    /// `wasi:cli/run`: `Ok(true)` for exit status 0. Its report lines are in `stdout`.
    pub async fn cli_run(&self, inputs: &Inputs, limits: &Limits) -> Call<bool> {
        let pre = self.pre.clone();
        self.call(inputs, limits, None, |mut store| async move {
            let instance = pre.instantiate_async(&mut store).await?;
            let exit = instance.wasi_cli_run().call_run(&mut store).await?;
            Ok(exit.is_ok())
        })
        .await
    }

    /// `wasi:http/incoming-handler`: one request, answered in full.
    pub async fn handle_http(
        &self,
        inputs: &Inputs,
        limits: &Limits,
        request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Call<HttpAnswer> {
        use http_body_util::BodyExt;
        let pre = self.proxy.clone();
        self.call(inputs, limits, None, |mut store| async move {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let request = request.map(|b| {
                b.map_err(
                    |never: std::convert::Infallible| -> wasmtime_wasi_http::Error {
                        match never {}
                    },
                )
            });
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            let instance = pre.instantiate_async(&mut store).await?;
            let task = async {
                instance
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let (handled, response) = tokio::join!(task, async {
                let response: hyper::Response<HyperOutgoingBody> = match receiver.await {
                    Ok(Ok(r)) => r,
                    Ok(Err(code)) => {
                        return Err(anyhow!("the handler answered with an error: {code:?}"))
                    }
                    Err(_) => return Err(anyhow!("the handler never set a response")),
                };
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| anyhow!("reading the handler's body: {e:?}"))?
                    .to_bytes();
                Ok(HttpAnswer {
                    status: parts.status.as_u16(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: body.to_vec(),
                })
            });
            handled?;
            response.map_err(|e| wasmtime::format_err!("{e:#}"))
        })
        .await
    }
}

/// Re-emits the component's `grouper-sync LEVEL: message` lines through tracing.
pub fn relog(stderr: &str) {
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
