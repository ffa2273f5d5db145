//! The host's side of the contract, generated from the same `wit/world.wit` as the component
//! (world `sync-host`): the typed exports, and `wasi:config/store` in both versions a build may
//! import (rc.1 and Spin's draft-2024-09-27), so every build runs under this host. The other WASI
//! imports are wasmtime-wasi's and wasmtime-wasi-http's.

use std::collections::BTreeMap;
use wasmtime::component::HasData;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "sync-host",
    imports: { default: trappable },
    exports: { default: async },
});

pub use exports::jupyterhub_grouper_sync::sync::sync::{
    Change, ChangeOp, ChangeReason, CheckReport, Direction, ErrorKind, Mode, Outcome, ReadReasons,
    RemovalRecord, Report, RunOptions, SyncError, TargetReport, UserStateStatus,
};

use wasi::config0_2_0_draft_2024_09_27::store as draft_store;
use wasi::config0_2_0_rc_1::store as rc1_store;

/// The config values one call sees.
pub struct ConfigValues(pub BTreeMap<String, String>);

impl rc1_store::Host for ConfigValues {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, rc1_store::Error>> {
        Ok(Ok(self.0.get(&key).cloned()))
    }
    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, rc1_store::Error>> {
        Ok(Ok(self.0.clone().into_iter().collect()))
    }
}

impl draft_store::Host for ConfigValues {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, draft_store::Error>> {
        Ok(Ok(self.0.get(&key).cloned()))
    }
    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, draft_store::Error>> {
        Ok(Ok(self.0.clone().into_iter().collect()))
    }
}

struct Config;

impl HasData for Config {
    type Data<'a> = &'a mut ConfigValues;
}

/// Adds both `wasi:config/store` versions, reading the values through `get`.
pub fn add_config_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut ConfigValues,
) -> wasmtime::Result<()> {
    rc1_store::add_to_linker::<T, Config>(linker, get)?;
    draft_store::add_to_linker::<T, Config>(linker, get)?;
    Ok(())
}

/// The core's kind for a kind the component reported; the core owns the names logs and metrics use.
pub fn core_kind(k: ErrorKind) -> jupyterhub_grouper_sync::error::ErrorKind {
    use jupyterhub_grouper_sync::convert_variants;
    use jupyterhub_grouper_sync::error::ErrorKind as Core;
    jupyterhub_grouper_sync::error_kinds!(convert_variants, k, ErrorKind, Core)
}

pub fn core_outcome(o: Outcome) -> jupyterhub_grouper_sync::sync::report::Outcome {
    use jupyterhub_grouper_sync::sync::report::Outcome as O;
    match o {
        Outcome::Converged => O::Converged,
        Outcome::ChangesRemaining => O::ChangesRemaining,
        Outcome::RemovalsWithheld => O::RemovalsWithheld,
        Outcome::Failed => O::Failed,
    }
}
