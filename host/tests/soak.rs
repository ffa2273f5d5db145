//! A bounded soak of the built `grouper-sync` service: a pass every second against the simulator
//! and a fake hub, with random faults on both and random membership churn between passes. It ends
//! with the group equal to what the hub says, and checks that the host's memory (RSS), its open
//! file descriptors and its live component instances do not grow.
//!
//! CI runs 60 passes; the long run (figures in TESTING.md):
//! `SOAK_PASSES=600 cargo test -p grouper-sync-host --release --test soak -- --nocapture`.

use grouper_sync_testkit::fake_hub;

use grouper_sync_testkit::wait as support;

use fake_hub::{FakeHub, HubAction, HubFault, HubRoute};
use grouper_sim::{Config, Fault, FaultAction, Operation, Simulator, Subject};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{wait_exit, wait_for};

const GROUP: &str = "edu:example:app:hub:hub-users";
const PASSWORD: &str = "soak-grouper-pw";
const BIN: &str = env!("CARGO_BIN_EXE_grouper-sync");
const STAFF: &str = "edu:example:staff";

/// A small deterministic generator (xorshift64*), so a failing soak can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn login(id: u32) -> Value {
    json!({"canvas_user": {"login_id": id.to_string()}})
}

/// What the hub says the group should hold.
fn expected(hub: &FakeHub) -> Vec<String> {
    let st = hub.state.lock().unwrap();
    let mut ids: BTreeSet<String> = st
        .users
        .iter()
        .filter(|(_, admin, _)| !admin)
        .filter_map(|(_, _, s)| s["canvas_user"]["login_id"].as_str().map(String::from))
        .collect();
    ids.insert(STAFF.into());
    ids.into_iter().collect()
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The value of a metric line (exact name and labels) in an OpenMetrics scrape.
fn metric(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn passes(scrape: &str) -> u64 {
    [
        "converged",
        "changes_remaining",
        "removals_withheld",
        "failed",
    ]
    .iter()
    .map(|r| {
        metric(
            scrape,
            &format!("grouper_sync_passes_total{{result=\"{r}\"}}"),
        ) as u64
    })
    .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Injects one random fault for the coming pass(es).
fn random_fault(rng: &mut Rng, sim: &Simulator, hub: &FakeHub) -> &'static str {
    let stall = Duration::from_secs(3); // past the 2 s request timeout
    let grouper = |op: Option<Operation>, action: FaultAction, times: u32| {
        sim.push_fault(Fault {
            operation: op,
            action,
            times,
        })
    };
    let on_hub = |route: HubRoute, action: HubAction, times: u32| {
        hub.state.lock().unwrap().faults.push(HubFault {
            route,
            action,
            times,
        })
    };
    let status = |status: u16| FaultAction::Status {
        status,
        content_type: "text/html".into(),
        body: "<html>unavailable</html>".into(),
        retry_after: None,
    };
    let hub_status = |status: u16| HubAction::Answer {
        status,
        content_type: "text/html",
        body: "<html>unavailable</html>".into(),
        retry_after: None,
    };
    match rng.below(9) {
        0 => {
            grouper(Some(Operation::GetMembers), status(500), 3);
            "grouper 500 on getMembers"
        }
        1 => {
            grouper(Some(Operation::AddMember), FaultAction::Delay(stall), 2);
            "grouper add committed, answer timed out"
        }
        2 => {
            grouper(Some(Operation::DeleteMember), status(503), 2);
            "grouper 503 on delete"
        }
        3 => {
            grouper(Some(Operation::GetMembers), FaultAction::TruncatedBody, 2);
            "grouper body cut short"
        }
        4 => {
            on_hub(HubRoute::AnyList, hub_status(503), 3);
            "hub 503 on the list"
        }
        5 => {
            on_hub(HubRoute::AnyUser, hub_status(500), 4);
            "hub 500 on user records"
        }
        6 => {
            on_hub(HubRoute::AnyList, HubAction::Stall(stall), 2);
            "hub list stalled mid-body"
        }
        7 => {
            on_hub(HubRoute::AnyList, HubAction::Truncate, 2);
            "hub list cut short"
        }
        _ => {
            grouper(None, FaultAction::MalformedJson, 1);
            "grouper answer not JSON"
        }
    }
}

/// Changes the hub or the group the way people do between passes.
fn churn(rng: &mut Rng, sim: &Simulator, hub: &FakeHub, next_user: &mut u32, clock: &mut i64) {
    let mut st = hub.state.lock().unwrap();
    if rng.chance(40) {
        *next_user += 1;
        let name = format!("user{next_user:04}");
        st.users.push((name, false, login(200_000 + *next_user)));
    }
    if rng.chance(25) && st.users.len() > 10 {
        let i = rng.below(st.users.len());
        st.users.remove(i);
    }
    if rng.chance(25) {
        // a login that changes the user's campus id, as the hub records it
        let i = rng.below(st.users.len());
        let id = 200_000 + 1_000 + rng.below(1_000) as u32;
        st.users[i].2 = login(id);
        *clock += 60;
        let at = jiff::Timestamp::from_second(*clock).unwrap();
        let name = st.users[i].0.clone();
        st.last_activity
            .insert(name, at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    }
    drop(st);
    if rng.chance(20) {
        // somebody else adds a member the hub does not know
        let id = 200_000 + 3_000 + rng.below(100) as u32;
        sim.add_member(GROUP, "ldap", &id.to_string());
    }
}

#[test]
fn soak_with_random_faults_and_churn() {
    let passes_wanted: u64 = std::env::var("SOAK_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_50a1);
    let mut rng = Rng(seed | 1);

    let users: Vec<(String, bool, Value)> = (0..40)
        .map(|i| (format!("user{i:04}"), false, login(200_000 + i)))
        .collect();
    let hub = FakeHub::start(users, 20);
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: PASSWORD.into(),
        ..Config::default()
    });
    for id in 200_000..204_100u32 {
        sim.add_subject(Subject::new("ldap", &id.to_string()));
    }
    sim.add_group(GROUP);
    for id in 200_000..200_030u32 {
        sim.add_member(GROUP, "ldap", &id.to_string());
    }
    for stale in ["203001", "203002", "203003"] {
        sim.add_member(GROUP, "ldap", stale);
    }
    sim.add_member(GROUP, "g:gsa", STAFF);
    let server = sim.serve("127.0.0.1:0").unwrap();

    let dir = std::env::temp_dir().join(format!("grouper-sync-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args([
            "--GrouperSync.sync_every=1",
            "--metrics-addr",
            &metrics,
            "--retries",
            "1",
            "--retry-backoff-ms",
            "10",
            "--request-timeout-seconds",
            "2",
            "--max-removal-fraction",
            "0.5",
            "--removal-fraction-floor",
            "20",
            // the churn of an hour of passes is more than a day's budget of a real group
            "--max-removal-fraction-per-day",
            "1",
            "--max-removals-per-day",
            "100000",
            "--log-level",
            "error",
        ])
        .env_clear()
        .env("JUPYTERHUB_API_URL", &hub.url)
        .env("JUPYTERHUB_API_TOKEN", "soak-hub-token")
        .env("GROUPER_BASE_URL", server.base_url("v2_2_100"))
        .env("GROUPER_USER", "sync")
        .env("GROUPER_PASSWORD", PASSWORD)
        .env("GROUPER_ID_PATH", GROUP)
        .env("GROUPER_SYNC_STATE_DIR", dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let scrape = || get(&metrics, "/metrics").unwrap_or_default();
    let wait_passes = |n: u64| {
        wait_for(&format!("pass {n}"), Duration::from_secs(300), || {
            passes(&scrape()) >= n
        })
    };

    let (mut next_user, mut clock) = (100u32, 1_800_000_000i64);
    let mut samples: Vec<(u64, usize)> = Vec::new();
    let mut faults: Vec<&str> = Vec::new();
    let mut max_instances = 0.0f64;
    for n in 1..=passes_wanted {
        wait_passes(n);
        samples.push((rss_kib(pid), open_fds(pid)));
        max_instances = max_instances.max(metric(&scrape(), "grouper_sync_component_instances"));
        // the scrape above may land inside the next pass: at most one instance is alive
        if rng.chance(30) {
            faults.push(random_fault(&mut rng, &sim, &hub));
        }
        churn(&mut rng, &sim, &hub, &mut next_user, &mut clock);
    }
    // the faults stop; the next passes must bring the group to exactly what the hub says
    sim.clear_faults();
    hub.state.lock().unwrap().faults.clear();
    let converged_before = metric(&scrape(), "grouper_sync_passes_total{result=\"converged\"}");
    wait_for(
        "two converged passes after the faults",
        Duration::from_secs(300),
        || {
            metric(&scrape(), "grouper_sync_passes_total{result=\"converged\"}")
                >= converged_before + 2.0
        },
    );
    let final_scrape = scrape();
    let group = sim.member_ids(GROUP);

    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(120));
    assert!(status.success(), "the service stopped cleanly: {status:?}");

    let total = passes(&final_scrape);
    let failed = metric(
        &final_scrape,
        "grouper_sync_passes_total{result=\"failed\"}",
    );
    let withheld = metric(
        &final_scrape,
        "grouper_sync_passes_total{result=\"removals_withheld\"}",
    );
    let warm = &samples[samples.len().min(10)..];
    let quarter = (warm.len() / 4).max(1);
    let (early, late) = (&warm[..quarter], &warm[warm.len() - quarter..]);
    let max_rss = |s: &[(u64, usize)]| s.iter().map(|x| x.0).max().unwrap_or(0);
    let max_fds = |s: &[(u64, usize)]| s.iter().map(|x| x.1).max().unwrap_or(0);
    eprintln!(
        "soak: seed {seed:#x}, {total} passes ({failed} failed, {withheld} withheld), {} faults injected, \
         {} hub users at the end; RSS KiB first {} / early max {} / late max {} / overall max {}; \
         open fds early max {} / late max {}; max live instances {max_instances}",
        faults.len(),
        hub.state.lock().unwrap().users.len(),
        samples[0].0,
        max_rss(early),
        max_rss(late),
        max_rss(&samples),
        max_fds(early),
        max_fds(late),
    );

    assert_eq!(group, expected(&hub), "the group is what the hub says");
    assert!(failed > 0.0 || faults.is_empty(), "the faults were felt");
    assert!(
        max_rss(late) <= max_rss(early) + 16 * 1024,
        "host memory grew: early max {} KiB, late max {} KiB",
        max_rss(early),
        max_rss(late)
    );
    assert!(
        max_fds(late) <= max_fds(early) + 4,
        "open file descriptors grew: {} -> {}",
        max_fds(early),
        max_fds(late)
    );
    assert!(
        max_instances <= 1.0,
        "no instance outlives its pass: {max_instances} alive at once"
    );
}
