//! The wasmtime 48 embedding used by the tests and the benchmark: one engine, a
//! linker with wasi (p2), wasi:http (outgoing only) and wasi:config, and per-run host state.

use std::sync::OnceLock;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&Config::new()).expect("engine"))
}

pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    config: WasiConfigVariables,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

pub fn linker() -> &'static Linker<Host> {
    static LINKER: OnceLock<Linker<Host>> = OnceLock::new();
    LINKER.get_or_init(|| {
        let mut l = Linker::new(engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut l).expect("wasi");
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l).expect("wasi-http");
        wasmtime_wasi_config::add_to_linker(&mut l, |h: &mut Host| WasiConfig::from(&h.config))
            .expect("wasi-config");
        l
    })
}

impl Host {
    pub fn new(wasi: WasiCtx, config: &[(String, String)]) -> Self {
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            config: WasiConfigVariables::from_iter(config.iter().cloned()),
        }
    }
}
