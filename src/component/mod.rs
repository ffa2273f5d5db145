//! The WASI adapters: the exports (`sync`, `wasi:cli/run`, `wasi:http/incoming-handler`), settings
//! from `wasi:config`, and HTTP over `wasi:http`. The rules live in the core; this only moves data.

// Every WASI interface maps to waki's bindings, so that one set of wasi:http/io types serves both
// our outgoing transport (written over those bindings) and our own exports; only wasi:config, std's extra cli imports and our
// interface are generated here. The two builds differ only in the world (and so the config version).
macro_rules! bindings {
    ($world:literal, $config:literal) => {
        wit_bindgen::generate!({
            path: "wit",
            world: $world,
            with: {
                "wasi:http/types@0.2.2": waki::bindings::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.2": waki::bindings::wasi::http::outgoing_handler,
                "wasi:io/poll@0.2.2": waki::bindings::wasi::io::poll,
                "wasi:io/streams@0.2.2": waki::bindings::wasi::io::streams,
                "wasi:io/error@0.2.2": waki::bindings::wasi::io::error,
                "wasi:clocks/monotonic-clock@0.2.2": waki::bindings::wasi::clocks::monotonic_clock,
                "wasi:clocks/wall-clock@0.2.2": waki::bindings::wasi::clocks::wall_clock,
                "wasi:cli/stdin@0.2.2": waki::bindings::wasi::cli::stdin,
                "wasi:cli/stdout@0.2.2": waki::bindings::wasi::cli::stdout,
                "wasi:cli/stderr@0.2.2": waki::bindings::wasi::cli::stderr,
                $config: generate,
            },
            generate_all,
        });
    };
}

#[cfg(not(feature = "spin"))]
bindings!("grouper-sync", "wasi:config/store@0.2.0-rc.1");
#[cfg(feature = "spin")]
bindings!(
    "grouper-sync-spin",
    "wasi:config/store@0.2.0-draft-2024-09-27"
);

// The WIT holds two versions of wasi:config, so wit-bindgen puts the version in the module name.
#[cfg(feature = "spin")]
use wasi::config0_2_0_draft_2024_09_27::store as config_store;
#[cfg(not(feature = "spin"))]
use wasi::config0_2_0_rc_1::store as config_store;

mod config;
mod entry;
mod transport;

struct Component;

export!(Component);
