//! Embeds the release component in the `grouper-sync` binary, built from the workspace root by a
//! nested cargo. `GROUPER_SYNC_COMPONENT=path.wasm` embeds a prebuilt file instead.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("jupyterhub_grouper_sync.wasm");
    println!("cargo:rerun-if-env-changed=GROUPER_SYNC_COMPONENT");
    if let Ok(prebuilt) = std::env::var("GROUPER_SYNC_COMPONENT") {
        println!("cargo:rerun-if-changed={prebuilt}");
        std::fs::copy(&prebuilt, &out)
            .unwrap_or_else(|e| panic!("copying GROUPER_SYNC_COMPONENT={prebuilt}: {e}"));
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("host/ is in the workspace")
        .to_path_buf();
    for path in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    // The workspace's own target directory, with the caller's flags and clippy wrapper: one build
    // of the component serves the host and scripts/test.sh (and one built before is fresh here).
    // A `release` build of the host (cargo install) holds target/release, which the nested build
    // needs for its build scripts: that one builds apart.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let shared = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target_dir = if shared.is_relative() || out_dir.starts_with(shared.join("release")) {
        root.join("target/host-embed")
    } else {
        shared
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut nested = Command::new(cargo);
    nested
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "jupyterhub-grouper-sync",
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    // What cargo sets for a build script is not the nested build's: with it, the nested build
    // would fingerprint unlike a direct one (dependencies' build scripts watch TARGET, OPT_LEVEL…)
    // and build the component a second time. The clippy wrapper stays, and the caller's RUSTFLAGS,
    // which cargo hands a build script as CARGO_ENCODED_RUSTFLAGS (and the nested cargo reads).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if ["CARGO_CFG_", "CARGO_PKG_", "CARGO_MANIFEST_"]
            .iter()
            .any(|p| key.starts_with(p))
            || [
                "RUSTC",
                "RUSTDOC",
                "TARGET",
                "HOST",
                "OPT_LEVEL",
                "DEBUG",
                "PROFILE",
                "NUM_JOBS",
                "OUT_DIR",
            ]
            .contains(&&*key)
        {
            nested.env_remove(&*key);
        }
    }
    let status = nested
        .status()
        .expect("running cargo to build the component");
    assert!(
        status.success(),
        "building the component for embedding failed (is the wasm32-wasip2 target installed?)"
    );
    let built = target_dir.join("wasm32-wasip2/release/jupyterhub_grouper_sync.wasm");
    std::fs::copy(&built, &out).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}
