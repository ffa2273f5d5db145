//! Runs one sync pass of the built component under wasmtime, like
//! `wasmtime run -S http -S config --env … jupyterhub_grouper_sync.wasm`: the listed environment
//! variables (JUPYTERHUB_*, GROUPER_*, GROUPER_SYNC_*) are passed through, nothing else, and the
//! `wasi:cli/run` export prints the report as one JSON line. Exits with the component's status.
//!
//! cargo run --example run_pass -- target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm
//!
//! The long-running service with scheduling, sandboxing and metrics is the `grouper-sync` host.

#[path = "../tests/common/runtime.rs"]
mod runtime;

use wasmtime::component::{Component, Val};
use wasmtime::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm".into());
    let component = Component::from_file(runtime::engine(), &path)
        .map_err(|e| anyhow::anyhow!("loading {path}: {e}"))?;
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("JUPYTERHUB_") || k.starts_with("GROUPER_"))
        .collect();
    let wasi = wasmtime_wasi::WasiCtx::builder()
        .inherit_stdout()
        .inherit_stderr()
        .envs(&env)
        .build();
    let mut store = Store::new(runtime::engine(), runtime::Host::new(wasi, &[]));
    let instance = runtime::linker()
        .instantiate_async(&mut store, &component)
        .await?;
    let iface = instance
        .get_export_index(&mut store, None, "wasi:cli/run@0.2.2")
        .ok_or_else(|| anyhow::anyhow!("no wasi:cli/run export"))?;
    let run = instance
        .get_export_index(&mut store, Some(&iface), "run")
        .ok_or_else(|| anyhow::anyhow!("no run"))?;
    let func = instance
        .get_func(&mut store, run)
        .ok_or_else(|| anyhow::anyhow!("run is not a function"))?;
    let mut result = [Val::Bool(false)];
    func.call_async(&mut store, &[], &mut result).await?;
    let ok = matches!(result[0], Val::Result(Ok(_)));
    std::process::exit(if ok { 0 } else { 1 });
}
