//! grouper-sync-bench: incremental passes of `grouper-sync` (release build) against the original
//! tool's strategy (serial per-user reads, one full-replace write), side by side on the same real
//! JupyterHub 6.1.1 and the Grouper simulator; then a fast fake hub for memory and time growth.
//! BENCHMARKS.md has the command and a recorded output.

mod client;
mod proxy;
mod scopes;
mod seed;
mod startup;

use grouper_sync_testkit::{fake_hub, real_hub};

use anyhow::{bail, Context, Result};
use clap::Parser;
use grouper_sim::{Config, Simulator, Subject};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GROUP: &str = "edu:example:app:bench:hub-users";
const GROUPER_PASSWORD: &str = "bench-grouper-pw";

#[derive(Parser, Debug)]
#[command(about = "Benchmark grouper-sync against the original tool's strategy")]
struct Args {
    /// Real-hub sizes (users with auth_state)
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    sizes: Vec<usize>,
    /// Fake-hub sizes, for memory and time growth
    #[arg(long, value_delimiter = ',', default_value = "20000,100000")]
    fake_sizes: Vec<usize>,
    /// Runs per cheap scenario (list floor, warm, 1 % changed); the median is shown
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs of the expensive ones (cold passes and the baseline)
    #[arg(long, default_value_t = 1)]
    cold_runs: usize,
    /// Latencies added to every hub request, in ms (0: loopback)
    #[arg(long, value_delimiter = ',', default_value = "0,5")]
    latency_ms: Vec<u64>,
    /// Concurrencies of the cold pass
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    cold_concurrency: Vec<usize>,
    /// The concurrency of warm and changed passes
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// The grouper-sync command: the installed wheel's (scripts/wheel.sh), which ships the
    /// component compiled ahead of time
    #[arg(long, default_value = "target/wheel-venv/bin/grouper-sync")]
    bin: PathBuf,
    /// Starts per start-up row (exec of `once` to its first hub request); 0 skips the table
    #[arg(long, default_value_t = 7)]
    startup_runs: usize,
    /// At each real-hub size (no latency added): the list timed with tokens of fewer scopes
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    scope_study: bool,
    /// Fail unless every pass converged, and warm passes wrote nothing and read no user but
    /// recently active ones (margin) and the refresh slice
    #[arg(long)]
    check: bool,
}

/// One measured run.
#[derive(Debug, Clone, Default)]
struct Sample {
    wall: f64,
    pass: f64,
    hub_requests: f64,
    hub_side: f64,
    grouper_requests: f64,
    grouper_kb: f64,
    subjects_sent: f64,
    rss_mb: f64,
    component_mb: f64,
    fetched: f64,
}

fn median(samples: &[Sample], f: fn(&Sample) -> f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

struct Row {
    name: String,
    samples: Vec<Sample>,
}

impl Row {
    fn new(name: impl Into<String>, samples: Vec<Sample>) -> Row {
        Row {
            name: name.into(),
            samples,
        }
    }
}

/// `n` measurements of `measure`.
fn times(n: usize, mut measure: impl FnMut() -> Result<Sample>) -> Result<Vec<Sample>> {
    (0..n).map(|_| measure()).collect()
}

fn print_table(title: &str, rows: &[Row], baseline_wall: Option<f64>) {
    println!("\n### {title}\n");
    println!("| scenario | runs | wall s | pass s | hub req | hub-side s | users read | Grouper req | Grouper KB | subjects sent | host RSS MB | component MB | baseline ÷ this (wall) | (pass) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let m = |f: fn(&Sample) -> f64| median(&r.samples, f);
        let opt = |v: f64| {
            if v.is_nan() || v == 0.0 {
                "–".to_string()
            } else {
                format!("{v:.1}")
            }
        };
        let ratio = |t: f64| {
            baseline_wall
                .filter(|_| t > 0.0)
                .map(|b| format!("{:.1}×", b / t))
                .unwrap_or_else(|| "–".into())
        };
        println!(
            "| {} | {} | {:.2} | {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.1} | {:.0} | {} | {} | {} | {} |",
            r.name,
            r.samples.len(),
            m(|s| s.wall),
            if m(|s| s.pass) > 0.0 { format!("{:.2}", m(|s| s.pass)) } else { "–".into() },
            m(|s| s.hub_requests),
            m(|s| s.hub_side),
            m(|s| s.fetched),
            m(|s| s.grouper_requests),
            m(|s| s.grouper_kb),
            m(|s| s.subjects_sent),
            opt(m(|s| s.rss_mb)),
            opt(m(|s| s.component_mb)),
            ratio(m(|s| s.wall)),
            ratio(m(|s| s.pass)),
        );
    }
}

/// The hub's own account of the time it spent on `/hub/api/users` requests since `from`.
fn hub_side_seconds(log: &Path, from: u64) -> (f64, u64) {
    let text = std::fs::read(log).unwrap_or_default();
    let new = &text[(from as usize).min(text.len())..];
    let mut ms = 0.0;
    for line in String::from_utf8_lossy(new).lines() {
        if line.contains(" /hub/api/users") {
            if let Some(v) = line
                .split_whitespace()
                .last()
                .and_then(|t| t.strip_suffix("ms"))
                .and_then(|t| t.parse::<f64>().ok())
            {
                ms += v;
            }
        }
    }
    (ms / 1000.0, text.len() as u64)
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// What the simulator received since it was last cleared.
fn grouper_traffic(sim: &Simulator, s: &mut Sample) {
    let requests = sim.requests();
    s.grouper_requests = requests.len() as f64;
    let mut bytes = 0usize;
    let mut subjects = 0usize;
    for r in &requests {
        if let Some(body) = &r.body {
            bytes += body.to_string().len();
            if r.method != "GET" {
                subjects += count_lookups(body);
            }
        }
    }
    s.grouper_kb = bytes as f64 / 1024.0;
    s.subjects_sent = subjects as f64;
}

fn count_lookups(v: &Value) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                if k == "subjectLookups" {
                    v.as_array().map_or(0, Vec::len)
                } else {
                    count_lookups(v)
                }
            })
            .sum(),
        Value::Array(a) => a.iter().map(count_lookups).sum(),
        _ => 0,
    }
}

#[derive(Clone)]
struct Setup {
    hub_url: String,
    token: String,
    grouper_url: String,
    log: Option<PathBuf>,
    sim: Arc<Simulator>,
}

/// Runs `grouper-sync once` and measures it (peak RSS from wait4).
fn run_grouper_sync(
    args: &Args,
    setup: &Setup,
    state_dir: &Path,
    concurrency: usize,
) -> Result<(Sample, Value)> {
    setup.sim.clear_requests();
    let from = setup.log.as_deref().map(log_len).unwrap_or(0);
    let started = Instant::now();
    let mut child = Command::new(&args.bin)
        .arg("once")
        .env_clear()
        .envs([
            ("JUPYTERHUB_API_URL", setup.hub_url.as_str()),
            ("JUPYTERHUB_API_TOKEN", setup.token.as_str()),
            ("GROUPER_BASE_URL", setup.grouper_url.as_str()),
            ("GROUPER_USER", "sync"),
            ("GROUPER_PASSWORD", GROUPER_PASSWORD),
            ("GROUPER_ID_PATH", GROUP),
            ("GROUPER_SYNC_STATE_DIR", &state_dir.display().to_string()),
            ("GROUPER_SYNC_CONCURRENCY", &concurrency.to_string()),
            ("GROUPER_SYNC_MAX_REMOVALS", "1000"),
            // 1 % changed deletes 0.3 % a run: at 20,000 users two runs pass the default 100 a day
            ("GROUPER_SYNC_MAX_REMOVALS_PER_DAY", "10000"),
        ])
        .env("GROUPER_SYNC_CONFIG", state_dir.join("host.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", args.bin.display()))?;
    let pid = child.id() as libc::pid_t;
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let peak = peak_rss_watcher(pid);
    // reaped here; `child` is never waited on
    wait_pid(pid);
    let rss_kb = peak.join().unwrap_or(0);
    let wall = started.elapsed().as_secs_f64();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("grouper-sync printed no report; stderr:\n{stderr}"))?;
    let mut s = Sample {
        wall,
        pass: report["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        hub_requests: report["requests"]["jupyterhub"].as_f64().unwrap_or(0.0),
        rss_mb: rss_kb as f64 / 1024.0,
        fetched: report["users_fetched"].as_f64().unwrap_or(0.0),
        ..Sample::default()
    };
    s.component_mb = stderr
        .split("component_memory_mb=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    if let Some(log) = &setup.log {
        s.hub_side = hub_side_seconds(log, from).0;
    }
    grouper_traffic(&setup.sim, &mut s);
    if args.check && report["outcome"] != "converged" {
        bail!("a pass did not converge: {report}\n{stderr}");
    }
    Ok((s, report))
}

/// The child's peak RSS (KB): its own `VmHWM`, read until it exits. (`wait4`'s `ru_maxrss` would
/// not do: a child started with vfork+exec inherits its parent's high-water mark.)
fn peak_rss_watcher(pid: libc::pid_t) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        loop {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return peak;
            };
            match status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            {
                Some(kb) => peak = peak.max(kb),
                None => return peak, // exited: a zombie has no memory left to report
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn wait_pid(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
    }
}

fn list_all(hub_url: &str, token: &str) -> Result<Vec<Value>> {
    let auth = format!("token {token}");
    let mut users = Vec::new();
    let mut offset = 0;
    loop {
        let a = client::request(
            "GET",
            &format!("{hub_url}/users?offset={offset}&limit=200"),
            &[
                ("Authorization", &auth),
                ("Accept", "application/jupyterhub-pagination+json"),
            ],
            None,
        )?;
        let v = a.json()?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        users.extend(items);
        match v["_pagination"]["next"]["offset"].as_u64() {
            Some(next) => offset = next,
            None => return Ok(users),
        }
    }
}

/// The list alone, as both tools do it first: the floor of any pass.
fn list_floor(setup: &Setup) -> Result<Sample> {
    let from = setup.log.as_deref().map(log_len).unwrap_or(0);
    let started = Instant::now();
    let users = list_all(&setup.hub_url, &setup.token)?;
    let mut s = Sample {
        wall: started.elapsed().as_secs_f64(),
        hub_requests: users.len().div_ceil(200) as f64,
        ..Sample::default()
    };
    if let Some(log) = &setup.log {
        s.hub_side = hub_side_seconds(log, from).0;
    }
    Ok(s)
}

/// The original tool's strategy: list, then one GET per non-admin user, one at a time, then one
/// addMember with replaceAllExisting=T and every subject.
fn baseline(setup: &Setup) -> Result<Sample> {
    setup.sim.clear_requests();
    let from = setup.log.as_deref().map(log_len).unwrap_or(0);
    let started = Instant::now();
    let auth = format!("token {}", setup.token);
    let users = list_all(&setup.hub_url, &setup.token)?;
    let mut requests = users.len().div_ceil(200);
    let mut subjects = Vec::new();
    for u in users.iter().filter(|u| u["admin"] != true) {
        let name = u["name"].as_str().unwrap_or_default();
        let a = client::request(
            "GET",
            &format!("{}/users/{name}", setup.hub_url),
            &[("Authorization", &auth)],
            None,
        )?;
        requests += 1;
        let v = a.json()?;
        let state = &v["auth_state"];
        let login = state["canvas_user"]["login_id"]
            .as_str()
            .or(state["oauth_user"]["login_id"].as_str());
        if let Some(login) = login {
            subjects.push(json!({"subjectId": login}));
        }
    }
    let body =
        json!({"WsRestAddMemberRequest": {"replaceAllExisting": "T", "subjectLookups": subjects}});
    let a = client::request(
        "PUT",
        &format!("{}/groups/{GROUP}/members", setup.grouper_url),
        &[
            (
                "Authorization",
                &client::basic_auth("sync", GROUPER_PASSWORD),
            ),
            ("Content-Type", "text/x-json"),
        ],
        Some(body.to_string().as_bytes()),
    )?;
    if a.status >= 300 {
        bail!("the baseline's replace failed: HTTP {}", a.status);
    }
    let mut s = Sample {
        wall: started.elapsed().as_secs_f64(),
        hub_requests: requests as f64,
        fetched: (requests - users.len().div_ceil(200)) as f64,
        ..Sample::default()
    };
    if let Some(log) = &setup.log {
        s.hub_side = hub_side_seconds(log, from).0;
    }
    grouper_traffic(&setup.sim, &mut s);
    Ok(s)
}

fn simulator(ids: usize) -> Result<(Arc<Simulator>, grouper_sim::ServerHandle, String)> {
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: GROUPER_PASSWORD.into(),
        ..Config::default()
    });
    for i in 0..ids {
        sim.add_subject(Subject::new("ldap", &login(i)));
    }
    sim.add_group(GROUP);
    let server = sim.serve("127.0.0.1:0")?;
    let url = server.base_url("v2_2_100");
    Ok((sim, server, url))
}

fn login(i: usize) -> String {
    format!("{:07}", 3_000_000 + i)
}

fn canvas(i: usize) -> Value {
    json!({"canvas_user": {"login_id": login(i), "name": "Bench User"}, "access_token": "bench-token-not-a-secret"})
}

/// About 1 % of the users change: 0.4 % new, 0.3 % deleted, 0.3 % log in (their token is
/// used, so last_activity moves, and their auth_state is rewritten).
fn apply_changes(hub: &real_hub::RealHub, live: &mut Vec<(String, usize)>, next_id: &mut usize) {
    let n = live.len();
    let (new, deleted, active) = (
        (n * 4 / 1000).max(1),
        (n * 3 / 1000).max(1),
        (n * 3 / 1000).max(1),
    );
    for _ in 0..new {
        let name = format!("new{:06}", *next_id);
        hub.admin("POST", &format!("/users/{name}"), None);
        hub.admin(
            "PATCH",
            &format!("/users/{name}"),
            Some(&json!({"auth_state": canvas(*next_id)})),
        );
        live.push((name, *next_id));
        *next_id += 1;
    }
    for _ in 0..deleted {
        let (name, _) = live.remove(0);
        hub.admin("DELETE", &format!("/users/{name}"), None);
    }
    for k in 0..active {
        let (name, _) = live[(k * 97 + 13) % live.len()].clone();
        hub.admin(
            "PATCH",
            &format!("/users/{name}"),
            Some(&json!({"auth_state": canvas(*next_id)})),
        );
        *next_id += 1;
        let (_, token) = hub.admin(
            "POST",
            &format!("/users/{name}/tokens"),
            Some(&json!({"expires_in": 3600})),
        );
        if let Some(t) = token["token"].as_str() {
            let _ = real_hub::http("GET", &format!("{}/user", hub.api_url), t, None);
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = real_hub::repo_root().join("target/bench").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host.toml"), "pass_deadline_seconds = 7200\n").unwrap();
    dir
}

fn real_hub_size(args: &Args, n: usize) -> Result<()> {
    let hub = seed::real_hub(n, canvas)?;
    let (sim, _server, grouper_url) = simulator(n * 2 + 1000)?;
    let mut live: Vec<(String, usize)> = (0..n).map(|i| (format!("user{i:06}"), i)).collect();
    let mut next_id = n;
    let upstream: std::net::SocketAddr = hub
        .api_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()?;
    for &latency in &args.latency_ms {
        let hub_url = if latency == 0 {
            hub.api_url.clone()
        } else {
            let p = proxy::start(upstream, Duration::from_millis(latency))?;
            format!("http://{}/hub/api", p.addr)
        };
        let setup = Setup {
            hub_url,
            token: hub.sync_token.clone(),
            grouper_url: grouper_url.clone(),
            log: Some(hub.dir.join("jupyterhub.log")),
            sim: sim.clone(),
        };
        let mut rows = vec![Row::new(
            "list only (floor)",
            times(args.runs, || list_floor(&setup))?,
        )];
        let base = times(args.cold_runs, || baseline(&setup))?;
        let baseline_wall = median(&base, |s| s.wall);
        rows.push(Row::new("baseline: original's strategy", base));
        let state = scratch(&format!("{n}-{latency}"));
        for &c in &args.cold_concurrency {
            let cold = times(args.cold_runs, || {
                sim.edit_group(GROUP, |g| g.members.clear());
                let _ = std::fs::remove_file(state.join("user-state"));
                Ok(run_grouper_sync(args, &setup, &state, c)?.0)
            })?;
            rows.push(Row::new(format!("cold, concurrency {c}"), cold));
        }
        // the state now comes from a cold pass at the last concurrency
        let warm = times(args.runs, || {
            let (s, report) = run_grouper_sync(args, &setup, &state, args.concurrency)?;
            let why = &report["read_reasons"];
            if args.check
                && (why["new"] != 0
                    || why["changed"] != 0
                    || why["full"] != 0
                    || s.subjects_sent != 0.0)
            {
                bail!("a warm pass with nothing changed read users or wrote: {report}");
            }
            Ok(s)
        })?;
        rows.push(Row::new("warm, nothing changed", warm));
        let changed = times(args.runs, || {
            apply_changes(&hub, &mut live, &mut next_id);
            Ok(run_grouper_sync(args, &setup, &state, args.concurrency)?.0)
        })?;
        rows.push(Row::new("warm, 1 % changed", changed));
        rows.push(Row::new(
            "baseline after the changes",
            times(args.cold_runs, || baseline(&setup))?,
        ));
        print_table(
            &format!("real JupyterHub 6.1.1, {n} users, {latency} ms added per hub request"),
            &rows,
            Some(baseline_wall),
        );
        if latency == 0 && args.scope_study {
            scopes::table(args, &hub, &setup, n)?;
        }
    }
    Ok(())
}

fn fake_hub_size(args: &Args, n: usize) -> Result<()> {
    let users = (0..n)
        .map(|i| (format!("user{i:06}"), false, canvas(i)))
        .collect();
    let hub = fake_hub::FakeHub::start(users, 200);
    let (sim, _server, grouper_url) = simulator(n)?;
    let setup = Setup {
        hub_url: hub.url.clone(),
        token: "fake".into(),
        grouper_url,
        log: None,
        sim,
    };
    let state = scratch(&format!("fake-{n}"));
    let rows = vec![
        Row::new(
            "list only (floor)",
            times(args.runs, || list_floor(&setup))?,
        ),
        Row::new(
            "cold, concurrency 4",
            times(1, || Ok(run_grouper_sync(args, &setup, &state, 4)?.0))?,
        ),
        Row::new(
            "warm, nothing changed",
            times(args.runs, || {
                Ok(run_grouper_sync(args, &setup, &state, args.concurrency)?.0)
            })?,
        ),
    ];
    print_table(
        &format!("fake hub, {n} users (memory and growth)"),
        &rows,
        None,
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.bin.exists() {
        bail!(
            "{} not found: scripts/wheel.sh builds and installs it",
            args.bin.display()
        );
    }
    println!("## grouper-sync-bench\n");
    println!("Medians; wall = the whole `grouper-sync once` process (start-up included), pass = the component's own duration_ms; hub-side = the hub's logged request time for /hub/api/users*. Baseline ÷ this compares wall times with the baseline measured in the same table.");
    if args.startup_runs > 0 {
        startup::table(&args.bin, &scratch("startup"), args.startup_runs)?;
    }
    // a size of 0 skips that kind (`--sizes 0`)
    for &n in args.sizes.iter().filter(|&&n| n > 0) {
        real_hub_size(&args, n)?;
    }
    for &n in args.fake_sizes.iter().filter(|&&n| n > 0) {
        fake_hub_size(&args, n)?;
    }
    Ok(())
}
