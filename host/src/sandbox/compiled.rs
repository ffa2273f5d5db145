//! The component as native code. Compiling it with cranelift takes most of a second on 2 cores,
//! longer than a warm pass at 1,000 users, so a process first looks for it compiled ahead of time:
//! shipped beside the binary (the wheel's `share/grouper-sync/`, made by `grouper-sync precompile`
//! at build), then in its cache (under `state_dir`). Only then does it compile, and it keeps the
//! result in the cache for the next process.
//!
//! A compiled file is named by a digest of the component's bytes and of the engine's settings
//! (wasmtime's version, target and flags), so a file made for another component or another build
//! is never picked up; wasmtime checks the same again when it loads one, and a file it refuses is
//! compiled over. Loading native code trusts the file as much as the binary itself: the shipped
//! one is installed with it, the cache sits in `state_dir`, which the host already refuses to use
//! when others can write there.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled components are looked for, in this order.
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// Installed with the binary (read only).
    pub shipped: Option<PathBuf>,
    /// Written by this host after compiling (when `write_cache`).
    pub cache: Option<PathBuf>,
    /// Off for a command that writes nothing (`check`, perhaps run by another user).
    pub write_cache: bool,
}

impl Places {
    /// The wheel's data directory beside the binary (`<prefix>/bin/grouper-sync` and
    /// `<prefix>/share/grouper-sync/`), and `cache` for what this host compiles.
    pub fn installed(cache: Option<PathBuf>, write_cache: bool) -> Places {
        let shipped = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join(SHIPPED_DIR)));
        Places {
            shipped,
            cache,
            write_cache,
        }
    }
}

/// Relative to the installation prefix.
pub const SHIPPED_DIR: &str = "share/grouper-sync";

/// How the component came to be ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled ahead of time and installed with the binary.
    Shipped(PathBuf),
    /// Compiled by an earlier process and kept in the cache.
    Cached(PathBuf),
    /// Compiled now; `kept` is where the cache holds it (none: no cache, or it could not be
    /// written, which only costs the next process the same compilation).
    Compiled { kept: Option<PathBuf> },
}

/// The file name of `wasm` compiled by `engine`.
pub fn file_name(engine: &Engine, wasm: &[u8]) -> String {
    struct Digesting(Sha256);
    impl Hasher for Digesting {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only the digest is read")
        }
    }
    let mut digest = Digesting(Sha256::new());
    digest.0.update(wasm);
    engine.precompile_compatibility_hash().hash(&mut digest);
    let hex: String = digest.0.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{PREFIX}{hex}{SUFFIX}")
}

/// A compiled component's file name: `PREFIX`, the digest in hex, `SUFFIX`.
const PREFIX: &str = "jupyterhub_grouper_sync-";
const SUFFIX: &str = ".cwasm";

fn compile(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    engine
        .precompile_component(wasm)
        .map_err(|e| anyhow::anyhow!("compiling the component: {e:#}"))
}

/// The component, from the first place that has it compiled for this engine, else compiled now
/// (and kept in the cache).
pub fn load(engine: &Engine, wasm: &[u8], places: &Places) -> anyhow::Result<(Component, Origin)> {
    let name = file_name(engine, wasm);
    let found = [
        (
            places.shipped.as_deref(),
            Origin::Shipped as fn(PathBuf) -> Origin,
        ),
        (places.cache.as_deref(), Origin::Cached),
    ];
    for (dir, origin) in found {
        let Some(path) = dir.map(|d| d.join(&name)).filter(|p| p.is_file()) else {
            continue;
        };
        // SAFETY: the file was written by `Engine::precompile_component` of this same build
        // (its name carries the digest of the component and the engine's settings), in a place
        // as trusted as the binary (module comment); wasmtime checks its header and settings.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, origin(path))),
            Err(e) => tracing::warn!(
                path = %path.display(),
                "the compiled component could not be loaded; compiling it again: {e:#}"
            ),
        }
    }
    let compiled = compile(engine, wasm)?;
    // SAFETY: these bytes were just made by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled) }?;
    let kept = places
        .cache
        .as_deref()
        .filter(|_| places.write_cache)
        .and_then(|dir| match keep(dir, &name, &compiled, Sharing::Private) {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "not keeping the compiled component (the next start compiles it again): {e}"
                );
                None
            }
        });
    Ok((component, Origin::Compiled { kept }))
}

/// Compiles `wasm` into `dir` under its [`file_name`] (the packaging step).
pub fn precompile(engine: &Engine, wasm: &[u8], dir: &Path) -> anyhow::Result<PathBuf> {
    let compiled = compile(engine, wasm)?;
    keep(dir, &file_name(engine, wasm), &compiled, Sharing::Installed)
        .map_err(|e| anyhow::anyhow!("writing into {}: {e}", dir.display()))
}

/// Who may read a written file.
#[derive(Clone, Copy)]
enum Sharing {
    /// The cache: the service's user alone, like the rest of `state_dir`.
    Private,
    /// An installation's file: everyone (the service may run as another user than the installer).
    Installed,
}

/// Writes `bytes` as `dir/name` atomically (a process loading it never sees half a file), and
/// removes the other compiled components there: after an upgrade they are never loaded again.
fn keep(dir: &Path, name: &str, bytes: &[u8], sharing: Sharing) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let (dir_mode, file_mode) = match sharing {
        Sharing::Private => (0o700, 0o600),
        Sharing::Installed => (0o755, 0o644),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(dir)?;
    let path = dir.join(name);
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(file_mode))?;
    file.persist(&path).map_err(|e| e.error)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let other = entry.file_name();
        let other = other.to_string_lossy();
        if other != name && other.starts_with(PREFIX) && other.ends_with(SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::runner;

    /// The smallest component (one empty core module), in its binary form: this build of
    /// wasmtime has no text parser.
    fn wasm() -> Vec<u8> {
        let module: &[u8] = b"\0asm\x01\0\0\0";
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        bytes.extend_from_slice(&[0x01, module.len() as u8]); // a core module section
        bytes.extend_from_slice(module);
        bytes
    }

    fn places(shipped: Option<PathBuf>, cache: PathBuf) -> Places {
        Places {
            shipped,
            cache: Some(cache),
            write_cache: true,
        }
    }

    #[test]
    fn compiles_once_then_loads_from_the_cache_then_from_the_shipped_file() {
        let engine = runner::engine().unwrap();
        let wasm = wasm();
        let dir = tempfile::tempdir().unwrap();
        let places = places(Some(dir.path().join("shipped")), dir.path().join("cache"));
        let cached = dir.path().join("cache").join(file_name(&engine, &wasm));
        let (_, origin) = load(&engine, &wasm, &places).unwrap();
        assert_eq!(
            origin,
            Origin::Compiled {
                kept: Some(cached.clone())
            }
        );
        let (_, origin) = load(&engine, &wasm, &places).unwrap();
        assert_eq!(origin, Origin::Cached(cached.clone()));
        let shipped = precompile(&engine, &wasm, &dir.path().join("shipped")).unwrap();
        let (_, origin) = load(&engine, &wasm, &places).unwrap();
        assert_eq!(origin, Origin::Shipped(shipped));
    }

    #[test]
    fn a_damaged_or_foreign_file_is_compiled_over() {
        let engine = runner::engine().unwrap();
        let wasm = wasm();
        let dir = tempfile::tempdir().unwrap();
        let places = places(None, dir.path().to_path_buf());
        let path = dir.path().join(file_name(&engine, &wasm));
        std::fs::write(&path, b"not a compiled component").unwrap();
        let stale = dir
            .path()
            .join("jupyterhub_grouper_sync-000000000000000000000000.cwasm");
        std::fs::write(&stale, b"an older build's").unwrap();
        let (_, origin) = load(&engine, &wasm, &places).unwrap();
        assert_eq!(
            origin,
            Origin::Compiled {
                kept: Some(path.clone())
            }
        );
        assert!(!stale.exists(), "the older build's file is removed");
        let (_, origin) = load(&engine, &wasm, &places).unwrap();
        assert_eq!(origin, Origin::Cached(path));
    }

    #[test]
    fn the_name_follows_the_component_and_the_engine() {
        let engine = runner::engine().unwrap();
        let other_engine = {
            let mut config = wasmtime::Config::new();
            config.epoch_interruption(false);
            Engine::new(&config).unwrap()
        };
        let wasm = wasm();
        let mut changed = wasm.clone();
        changed.extend_from_slice(&[0x00, 0x01, 0x00]); // a custom section with an empty name
        assert_eq!(file_name(&engine, &wasm), file_name(&engine, &wasm));
        assert_ne!(file_name(&engine, &wasm), file_name(&engine, &changed));
        assert_ne!(file_name(&engine, &wasm), file_name(&other_engine, &wasm));
    }

    #[test]
    fn an_unwritable_cache_only_costs_the_next_start() {
        let engine = runner::engine().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("a-file");
        std::fs::write(&blocked, b"").unwrap();
        let (_, origin) = load(&engine, &wasm(), &places(None, blocked.join("cache"))).unwrap();
        assert_eq!(origin, Origin::Compiled { kept: None });
    }

    #[test]
    fn a_command_that_writes_nothing_reads_the_cache_but_never_fills_it() {
        let engine = runner::engine().unwrap();
        let wasm = wasm();
        let dir = tempfile::tempdir().unwrap();
        let read_only = Places {
            write_cache: false,
            ..places(None, dir.path().to_path_buf())
        };
        let (_, origin) = load(&engine, &wasm, &read_only).unwrap();
        assert_eq!(origin, Origin::Compiled { kept: None });
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        load(&engine, &wasm, &places(None, dir.path().to_path_buf())).unwrap();
        let (_, origin) = load(&engine, &wasm, &read_only).unwrap();
        assert!(matches!(origin, Origin::Cached(_)), "{origin:?}");
    }
}
