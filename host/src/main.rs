//! `grouper-sync`: runs the jupyterhub-grouper-sync component as a long-lived JupyterHub
//! service (or once, or as a read-only check), with the component sandboxed by wasmtime. This
//! file only parses the command line (`cli`) and dispatches to `grouper_sync_host::commands`.

use grouper_sync_host::cli;
use grouper_sync_host::commands::{self, ExitStatus};
use grouper_sync_host::options::{LogFormat, Options};
use jupyterhub_grouper_sync::settings::LogLevel;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, opts) = match cli::parse(&args, &|k| std::env::var(k).ok(), &|p| {
        Ok(std::fs::read_to_string(p)?)
    }) {
        Ok(o) => o,
        Err(e) => match e.downcast::<clap::Error>() {
            // --help and --version print and succeed; a command-line mistake exits 2 with usage.
            Ok(clap_error) => {
                let _ = clap_error.print();
                return if clap_error.use_stderr() {
                    ExitStatus::Config.into()
                } else {
                    ExitCode::SUCCESS
                };
            }
            Err(e) => {
                eprintln!("grouper-sync: {e:#}");
                return ExitStatus::Config.into();
            }
        },
    };
    init_logging(&opts);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitStatus::Failed.into();
        }
    };
    let code = rt.block_on(commands::execute(command, opts));
    // Do not wait for an abandoned pass's connections on the way out.
    rt.shutdown_background();
    code.into()
}

/// The host's own events and the component's at `log_level`; its libraries' (wasmtime, cranelift,
/// rustls, hyper) at warnings and errors only: their debug events would flood a debug log (compiling
/// the component alone writes thousands of lines).
fn init_logging(opts: &Options) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match opts.log_level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_target("grouper_sync_host", level)
        .with_target("component", level);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match opts.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .init(),
        LogFormat::Text => builder.finish().with(filter).init(),
    }
}
