//! Embeds the release component in the `grouper-sync` binary. It is built from the workspace
//! root into its own target directory (`target/host-embed`), so the nested cargo never waits on
//! the outer build's lock. `GROUPER_SYNC_COMPONENT=path.wasm` embeds a prebuilt file instead.

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
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for path in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let target_dir = root.join("target/host-embed");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "jupyterhub-grouper-sync",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // clippy's wrapper and the outer build's flags are not meant for the nested build
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("running cargo to build the component");
    assert!(
        status.success(),
        "building the component for embedding failed (is the wasm32-wasip2 target installed?)"
    );
    let built = target_dir.join("wasm32-wasip2/release/jupyterhub_grouper_sync.wasm");
    std::fs::copy(&built, &out).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}
