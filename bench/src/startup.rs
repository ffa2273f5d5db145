//! Process start-up: from exec of `grouper-sync once` to its first request to the hub, with the
//! component compiled ahead of time and shipped (the installed wheel), kept in `state_dir` by an
//! earlier process, and compiled at start; with the steps before the first request the host
//! reports at debug level.

use anyhow::{Context, Result};
use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One start: milliseconds to the first request, and the host's own account of its steps.
#[derive(Debug, Default, Clone)]
struct Start {
    first_request_ms: f64,
    trusted_cas_ms: f64,
    component_ms: f64,
    /// "shipped", "cached" or "compiled", as the host's log said
    component_from: String,
}

/// Starts `bin once` against a listener and stops it at its first connection.
fn start(bin: &Path, state_dir: &Path) -> Result<Start> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["--log_level", "debug", "--log_format", "json", "once"])
        .env_clear()
        .envs([
            ("JUPYTERHUB_API_URL", format!("{url}/hub/api")),
            ("JUPYTERHUB_API_TOKEN", "startup".into()),
            ("GROUPER_BASE_URL", format!("{url}/grouper-ws")),
            ("GROUPER_USER", "sync".into()),
            ("GROUPER_PASSWORD", "startup".into()),
            ("GROUPER_ID_PATH", "edu:example:startup".into()),
            ("GROUPER_SYNC_STATE_DIR", state_dir.display().to_string()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    // read while it runs: a full pipe would stop it before its first request
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });
    let (connection, _) = listener.accept()?;
    let first_request_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(connection);
    let _ = child.kill();
    child.wait()?;
    let log = log.join().unwrap_or_default();
    let mut s = Start {
        first_request_ms,
        ..Start::default()
    };
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let ms = event["ms"].as_f64().unwrap_or(0.0);
        match event["message"].as_str().unwrap_or("") {
            "trusted CAs read" => s.trusted_cas_ms = ms,
            "component loaded, compiled ahead of time" => {
                s.component_ms = ms;
                s.component_from = if event["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/share/grouper-sync/"))
                {
                    "shipped".into()
                } else {
                    "cached".into()
                };
            }
            "component compiled" => {
                s.component_ms = ms;
                s.component_from = "compiled".into();
            }
            _ => {}
        }
    }
    Ok(s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `bin` as an installation without the shipped file: a copy in a directory of its own.
fn bare_copy(bin: &Path, scratch: &Path) -> Result<PathBuf> {
    let dir = scratch.join("bare/bin");
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join("grouper-sync");
    std::fs::copy(bin, &copy).with_context(|| format!("copying {}", bin.display()))?;
    Ok(copy)
}

/// The start-up table: `runs` starts of each kind, medians.
pub fn table(bin: &Path, scratch: &Path, runs: usize) -> Result<()> {
    let shipped = bin
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("share/grouper-sync"))
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .is_some_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".cwasm")))
        });
    let bare = bare_copy(bin, scratch)?;
    let fresh = |n: usize| {
        let dir = scratch.join(format!("state-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    };
    let mut rows: Vec<(&str, Vec<Start>)> = Vec::new();
    let mut n = 0;
    let mut starts = |bin: &Path, reuse: bool| -> Result<Vec<Start>> {
        n += 1;
        let kept = fresh(n);
        if reuse {
            start(bin, &kept)?; // compiles once and keeps it
        }
        (0..runs)
            .map(|i| {
                let dir = if reuse {
                    kept.clone()
                } else {
                    fresh(n * 1000 + i)
                };
                start(bin, &dir)
            })
            .collect()
    };
    if shipped {
        rows.push((
            "compiled at build, shipped in the wheel (fresh state_dir)",
            starts(bin, false)?,
        ));
    }
    rows.push((
        "kept in state_dir/compiled by an earlier start",
        starts(&bare, true)?,
    ));
    rows.push((
        "compiled at start (nothing shipped or kept)",
        starts(&bare, false)?,
    ));
    let version = (0..runs)
        .map(|_| {
            let t = Instant::now();
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .status()?;
            Ok(t.elapsed().as_secs_f64() * 1000.0)
        })
        .collect::<Result<Vec<f64>>>()?;
    println!("\n### start-up: exec of `grouper-sync once` to its first request to the hub\n");
    if !shipped {
        println!("({} has no share/grouper-sync/*.cwasm beside it: not an installed wheel, so the shipped row is missing; scripts/wheel.sh builds one)\n", bin.display());
    }
    println!(
        "| component | runs | first request ms | trusted CAs ms | component ms | loaded from |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, starts) in &rows {
        let m = |f: fn(&Start) -> f64| median(starts.iter().map(f).collect());
        let from: Vec<&str> = starts.iter().map(|s| s.component_from.as_str()).collect();
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.0} | {} |",
            starts.len(),
            m(|s| s.first_request_ms),
            m(|s| s.trusted_cas_ms),
            m(|s| s.component_ms),
            if from.iter().all(|f| *f == from[0]) {
                from[0].to_string()
            } else {
                from.join(",")
            },
        );
    }
    println!(
        "\n`grouper-sync --version` (the process alone): {:.0} ms, median of {runs}.",
        median(version)
    );
    Ok(())
}
