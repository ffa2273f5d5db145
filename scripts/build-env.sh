# Sourced by scripts/test.sh and .ci/run: the environment every build of theirs shares, so that a
# build made by one is fresh for the other (cargo's fingerprints include both variables).
#
# Warnings are errors. Clippy lints run inside the builds: `cargo clippy` is clippy-driver put in
# rustc's place for the workspace's own crates (RUSTC_WORKSPACE_WRAPPER); set here, the same lints
# (with -D warnings) run while the component, the wheel and the tests compile, and the dependencies
# (wasmtime, cranelift) are compiled once for all of them instead of checked a second time by a
# separate `cargo clippy` (≈ 3 of a cold CI run's 15 minutes).
export RUSTFLAGS="${RUSTFLAGS:--Dwarnings}"
export RUSTC_WORKSPACE_WRAPPER="${RUSTC_WORKSPACE_WRAPPER:-clippy-driver}"
