//! The built component on real WASI platforms, end to end against a real JupyterHub 6.1.1 and the
//! Grouper simulator: `wasmtime serve` and `wasmtime run` (wasmtime CLI 48.0.2) and wasmCloud 2
//! `wash dev` (2.10.3), both installed from PyPI by `scripts/platforms.sh install`.

use grouper_sync_e2e as common;

use common::platform::{free_port, platform_bin, Platform};
use common::real_hub::{repo_root, request};
use common::*;
use grouper_sim::tls::{TestCa, TlsFront, Validity};
use grouper_sim::{Config, Operation, Simulator, Subject};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const GROUP: &str = "edu:example:app:datahub:datahub-users";
const PASSWORD: &str = "platform-grouper-pw-SECRET";
const SYNC_TOKEN: &str = "platform-sync-token-SECRET";
/// The group after a pass: the three users with a login id (the admin and the user without
/// auth_state are skipped), plus a group member the sync never touches.
const CONVERGED: [&str; 4] = ["100001", "100002", "100003", "edu:example:staff"];

/// A real hub with five users (two canvas_user, one oauth_user, one without auth_state, an admin).
fn seeded_hub(name: &str) -> RealHub {
    let hub = RealHub::start(name);
    let (status, _) = hub.admin(
        "POST",
        "/users",
        Some(&json!({"usernames": ["ana", "ben", "chen", "dee", "prof"]})),
    );
    assert_eq!(status, 201);
    assert_eq!(
        hub.admin("PATCH", "/users/prof", Some(&json!({"admin": true})))
            .0,
        200
    );
    for (user, state) in [
        ("ana", json!({"canvas_user": {"login_id": "100001"}})),
        ("ben", json!({"oauth_user": {"login_id": "100002"}})),
        ("chen", json!({"canvas_user": {"login_id": "100003"}})),
        ("prof", json!({"canvas_user": {"login_id": "100009"}})),
    ] {
        let path = format!("/users/{user}");
        assert_eq!(
            hub.admin("PATCH", &path, Some(&json!({ "auth_state": state })))
                .0,
            200
        );
    }
    hub
}

struct Grouper {
    sim: Arc<Simulator>,
    server: grouper_sim::ServerHandle,
}

impl Grouper {
    fn start() -> Grouper {
        let sim = Simulator::new(Config {
            user: "sync".into(),
            password: PASSWORD.into(),
            ..Config::default()
        });
        for id in ["100001", "100002", "100003", "100009", "199999"] {
            sim.add_subject(Subject::new("ldap", id));
        }
        sim.add_group(GROUP);
        sim.add_member(GROUP, "ldap", "199999");
        sim.add_member(GROUP, "g:gsa", "edu:example:staff");
        let server = sim.serve("127.0.0.1:0").unwrap();
        Grouper { sim, server }
    }

    fn url(&self) -> String {
        self.server.base_url("v2_2_100")
    }

    fn writes(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.operation != Some(Operation::GetMembers))
            .count()
    }
}

/// The non-secret settings of a pass from this hub into this Grouper.
fn settings(hub: &RealHub, grouper: &Grouper) -> Vec<(&'static str, String)> {
    vec![
        ("jupyterhub_api_url", hub.api_url.clone()),
        ("grouper_base_url", grouper.url()),
        ("grouper_user", "sync".to_string()),
        ("grouper_id_path", GROUP.to_string()),
    ]
}

fn scratch(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target")
        .join(format!("platform-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn post(base: &str, path: &str, token: Option<&str>) -> (u16, String, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    request(
        "POST",
        &format!("{base}{path}"),
        auth.as_deref(),
        Some(&json!({})),
    )
}

fn healthy(base: &str) -> bool {
    std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok()
        && request("GET", &format!("{base}/healthz"), None, None).0 == 200
}

fn assert_no_secrets(what: &str, text: &str, hub: &RealHub) {
    for secret in [PASSWORD, SYNC_TOKEN, hub.sync_token.as_str()] {
        assert!(!text.contains(secret), "{what} shows a secret");
    }
}

/// PATH with the platform binary's directory first, as an installed CLI would be.
fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `wasmtime serve` with no configuration at all.
fn wasmtime_serve(wasmtime: &Path, dir: &Path, name: &str) -> (Platform, String) {
    let port = free_port();
    let mut cmd = Command::new(wasmtime);
    cmd.args(["serve", "-Scli", "-Shttp", "-Sconfig", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(component_path())
        .env_clear();
    let mut serve = Platform::spawn(cmd, &dir.join(format!("{name}.log")));
    let base = format!("http://127.0.0.1:{port}");
    serve.wait_for("wasmtime serve to answer /healthz", |_| healthy(&base));
    (serve, base)
}

#[test]
fn wasmtime_serve_and_run_against_the_real_hub() {
    let Some(wasmtime) = platform_bin("wasmtime_cli", "wasmtime") else {
        return;
    };
    let hub = seeded_hub("wasmtime");
    let grouper = Grouper::start();
    let dir = scratch("wasmtime");
    let config = settings(&hub, &grouper);
    let secrets = [
        ("JUPYTERHUB_API_TOKEN", hub.sync_token.clone()),
        ("GROUPER_PASSWORD", PASSWORD.to_string()),
        ("GROUPER_SYNC_AUTH_TOKEN", SYNC_TOKEN.to_string()),
    ];

    // no configuration at all: health answers, the sync route is closed
    let (bare, base) = wasmtime_serve(&wasmtime, &dir, "bare");
    let (status, _, body) = post(&base, "/sync", Some(SYNC_TOKEN));
    assert_eq!(status, 503, "{body}");
    drop(bare);

    // the README's command: examples/wasmtime/serve.sh
    let port = free_port();
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("examples/wasmtime/serve.sh"))
        .env_clear()
        .env("PATH", path_with(&wasmtime))
        .env("WASM", component_path())
        .env("ADDR", format!("127.0.0.1:{port}"))
        .envs(config.iter().map(|(k, v)| (k.to_ascii_uppercase(), v)))
        .envs(secrets.iter().map(|(k, v)| (k, v)));
    let mut serve = Platform::spawn(cmd, &dir.join("serve.log"));
    let base = format!("http://127.0.0.1:{port}");
    serve.wait_for("examples/wasmtime/serve.sh to answer /healthz", |_| {
        healthy(&base)
    });
    let (status, head, _) = post(&base, "/sync", Some("not-the-token"));
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(
        grouper.sim.requests().is_empty(),
        "a refused call reaches nobody"
    );

    let (status, _, r) = post(&base, "/sync?dry_run=true", Some(SYNC_TOKEN));
    assert_eq!((status, r["dry_run"].as_bool()), (200, Some(true)), "{r}");
    assert_eq!(r["targets"][0]["to_add"], 3, "{r}");
    assert_eq!(grouper.writes(), 0, "a dry run writes nothing");

    let (status, _, r) = post(&base, "/sync", Some(SYNC_TOKEN));
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("converged")),
        "{r}"
    );
    assert_eq!(grouper.sim.member_ids(GROUP), CONVERGED);
    let (status, _, r) = post(&base, "/check", Some(SYNC_TOKEN));
    assert_eq!(status, 200, "{r}");
    assert_no_secrets("wasmtime serve output", &serve.output(), &hub);
    drop(serve);

    // `wasmtime run` with only the original tool's six environment variables (examples/wasmtime/run.sh)
    grouper.sim.add_member(GROUP, "ldap", "199999");
    let six = [
        ("JUPYTERHUB_API_URL", hub.api_url.clone()),
        ("JUPYTERHUB_API_TOKEN", hub.sync_token.clone()),
        ("GROUPER_BASE_URL", grouper.url()),
        ("GROUPER_USER", "sync".to_string()),
        ("GROUPER_PASSWORD", PASSWORD.to_string()),
        ("GROUPER_ID_PATH", GROUP.to_string()),
    ];
    let out = Command::new("bash")
        .arg(repo_root().join("examples/wasmtime/run.sh"))
        .env_clear()
        .env("PATH", path_with(&wasmtime))
        .env("WASM", component_path())
        .envs(six.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wasmtime run: {stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    let r: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(r["targets"][0]["removed"], 1);
    assert_eq!(grouper.sim.member_ids(GROUP), CONVERGED);
    assert_no_secrets("wasmtime run output", &format!("{stdout}{stderr}"), &hub);
}

/// A wash project directory: `.wash/config.yaml` pointing at the built component, settings in
/// `workload.config`, secrets from the environment through `secretFrom`, egress limited to
/// `allowed_hosts`.
fn wash_project(
    dir: &Path,
    address: &str,
    service: bool,
    config: &[(&str, String)],
    allowed_hosts: &[String],
    ca_paths: &[&Path],
) -> PathBuf {
    let project = dir.join(format!("project-{}", address.replace([':', '.'], "-")));
    std::fs::create_dir_all(project.join(".wash")).unwrap();
    let mut yaml = format!(
        "build:\n  command: \"true\"\n  component_path: {}\nwit:\n  skip_fetch: true\ndev:\n  address: {address}\n  service: {service}\n",
        component_path().display()
    );
    if !ca_paths.is_empty() {
        yaml.push_str("  http_client_ca_paths:\n");
        for path in ca_paths {
            yaml.push_str(&format!("    - \"{}\"\n", path.display()));
        }
    }
    yaml.push_str("workload:\n  config:\n");
    for (k, v) in config {
        yaml.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    yaml.push_str("  allowedHosts:\n");
    for h in allowed_hosts {
        yaml.push_str(&format!("    - \"{h}\"\n"));
    }
    yaml.push_str(
        "  environment:\n    secretFrom:\n      - sync-secrets\nsecrets:\n  sync-secrets:\n    fromEnv:\n      - JUPYTERHUB_API_TOKEN\n      - GROUPER_PASSWORD\n      - GROUPER_SYNC_AUTH_TOKEN\n",
    );
    std::fs::write(project.join(".wash/config.yaml"), yaml).unwrap();
    project
}

fn wash_dev(wash: &Path, project: &Path, home: &Path, hub: &RealHub, log: &str) -> Platform {
    let mut cmd = Command::new(wash);
    cmd.arg("dev")
        .current_dir(project)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("JUPYTERHUB_API_TOKEN", &hub.sync_token)
        .env("GROUPER_PASSWORD", PASSWORD)
        .env("GROUPER_SYNC_AUTH_TOKEN", SYNC_TOKEN);
    Platform::spawn(cmd, &project.join(log))
}

fn authority(url: &str) -> String {
    jupyterhub_grouper_sync::model::HttpUrl::parse(url)
        .unwrap()
        .authority()
}

#[test]
fn wasmcloud_wash_dev_serves_passes_limits_egress_and_runs_the_service_loop() {
    let Some(wash) = platform_bin("wash_cli", "wash") else {
        return;
    };
    let hub = seeded_hub("wash");
    let grouper = Grouper::start();
    let dir = scratch("wash");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = settings(&hub, &grouper);
    let allowed = vec![authority(&hub.api_url), authority(&grouper.url())];

    // the HTTP component: a pass through wash's HTTP address
    let address = format!("127.0.0.1:{}", free_port());
    let project = wash_project(&dir, &address, false, &config, &allowed, &[]);
    let mut dev = wash_dev(&wash, &project, &home, &hub, "http.log");
    let base = format!("http://{address}");
    dev.wait_for("wash dev to serve the component", |_| healthy(&base));
    let (status, _, _) = post(&base, "/sync", Some("wrong"));
    assert_eq!(status, 401);
    let (status, _, r) = post(&base, "/sync", Some(SYNC_TOKEN));
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("converged")),
        "{r}"
    );
    assert_eq!(grouper.sim.member_ids(GROUP), CONVERGED);
    assert_no_secrets("wash dev output", &dev.output(), &hub);
    drop(dev);

    // a third host (a Grouper on another port) is not in allowedHosts: denied, said so, no write
    let other = Grouper::start();
    let elsewhere = settings(&hub, &other);
    let address = format!("127.0.0.1:{}", free_port());
    let project = wash_project(&dir, &address, false, &elsewhere, &allowed, &[]);
    let mut dev = wash_dev(&wash, &project, &home, &hub, "denied.log");
    let base = format!("http://{address}");
    dev.wait_for("wash dev to serve the component", |_| healthy(&base));
    let (status, _, r) = post(&base, "/sync", Some(SYNC_TOKEN));
    assert_eq!(status, 502, "{r}");
    assert_eq!(r["targets"][0]["error"]["kind"], "egress-denied", "{r}");
    assert!(
        other.sim.requests().is_empty(),
        "nothing reached the other host"
    );
    drop(dev);

    // Grouper behind TLS with a certificate from a campus CA: trusted through wash's
    // `dev.http_client_ca_paths`, a pass converges; without it, the pass fails as `tls`, no write
    let ca = TestCa::new("Example Campus CA");
    let ca_file = dir.join("campus-ca.pem");
    ca.write_cert(&ca_file);
    let front = TlsFront::start(
        &ca.issue(&["localhost"], Validity::Current),
        grouper.server.addr,
    );
    let over_tls: Vec<(&str, String)> = config
        .iter()
        .map(|(k, v)| match *k {
            "grouper_base_url" => (
                *k,
                v.replace(
                    &format!("http://{}", grouper.server.addr),
                    &front.url("localhost"),
                ),
            ),
            _ => (*k, v.clone()),
        })
        .collect();
    let allowed_tls = vec![
        authority(&hub.api_url),
        format!("localhost:{}", front.addr.port()),
    ];
    grouper.sim.add_member(GROUP, "ldap", "199999");
    for trusted in [false, true] {
        let address = format!("127.0.0.1:{}", free_port());
        let ca_paths: &[&Path] = if trusted { &[&ca_file] } else { &[] };
        let project = wash_project(&dir, &address, false, &over_tls, &allowed_tls, ca_paths);
        let mut dev = wash_dev(&wash, &project, &home, &hub, &format!("tls-{trusted}.log"));
        let base = format!("http://{address}");
        dev.wait_for("wash dev to serve the component", |_| healthy(&base));
        let writes = grouper.writes();
        let (status, _, r) = post(&base, "/sync", Some(SYNC_TOKEN));
        if trusted {
            assert_eq!(
                (status, r["outcome"].as_str()),
                (200, Some("converged")),
                "{r}"
            );
            assert_eq!(grouper.sim.member_ids(GROUP), CONVERGED);
        } else {
            assert_eq!(status, 502, "{r}");
            assert_eq!(r["targets"][0]["error"]["kind"], "tls", "{r}");
            assert_eq!(grouper.writes(), writes, "nothing written without trust");
            assert!(grouper
                .sim
                .member_ids(GROUP)
                .contains(&"199999".to_string()));
        }
        drop(dev);
    }

    // the service: wasi:cli/run in loop mode, a pass every second
    grouper.sim.add_member(GROUP, "ldap", "199999");
    let looped = [
        config.clone(),
        vec![("sync_every_seconds", "1".to_string())],
    ]
    .concat();
    let address = format!("127.0.0.1:{}", free_port());
    let project = wash_project(&dir, &address, true, &looped, &allowed, &[]);
    let mut dev = wash_dev(&wash, &project, &home, &hub, "service.log");
    let converged_lines = |p: &Platform| {
        p.output()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["outcome"] == "converged")
            .count()
    };
    dev.wait_for("two converged passes of the service loop", |p| {
        converged_lines(p) >= 2
    });
    assert!(dev.output().contains("loop mode"));
    assert_eq!(grouper.sim.member_ids(GROUP), CONVERGED);
    assert_no_secrets("wash service output", &dev.output(), &hub);
}
