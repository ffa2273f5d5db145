//! The host runs the real (embedded) component against the Grouper simulator and a fake hub:
//! egress policy, deadline, memory limit, the `once`/`check` commands, the service loop with
//! metrics and signals, and a search of every output for the secrets.

use grouper_sync_testkit::fake_hub;

use grouper_sync_testkit::wait as support;

use fake_hub::FakeHub;
use grouper_sim::tls::{TestCa, TlsFront, Validity};
use grouper_sim::{Config, Fault, FaultAction, Operation, Simulator, Subject};
use grouper_sync_host::sandbox::runner::{
    Call, Inputs, Limits, Runner, Stopped, EMBEDDED_COMPONENT,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::{wait_exit, wait_for};

const GROUP: &str = "edu:example:app:hub:hub-users";
const TOKEN: &str = "hubtoken-4d9f0e7a-DISTINCTIVE";
const PASSWORD: &str = "grouperpw-8c1b55d2-DISTINCTIVE";
const BIN: &str = env!("CARGO_BIN_EXE_grouper-sync");

struct World {
    sim: Arc<Simulator>,
    server: grouper_sim::ServerHandle,
    hub: FakeHub,
}

fn world() -> World {
    let users = vec![
        (
            "ana".to_string(),
            false,
            json!({"canvas_user": {"login_id": "100001"}, "access_token": "oauth-DISTINCTIVE"}),
        ),
        (
            "ben".to_string(),
            false,
            json!({"oauth_user": {"login_id": "100002"}}),
        ),
        ("cy".to_string(), false, Value::Null),
        (
            "prof".to_string(),
            true,
            json!({"canvas_user": {"login_id": "100009"}}),
        ),
    ];
    let hub = FakeHub::start(users, 200);
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: PASSWORD.into(),
        ..Config::default()
    });
    for id in ["100001", "100002", "100003", "100009", "stale"] {
        sim.add_subject(Subject::new("ldap", id));
    }
    sim.add_group(GROUP);
    sim.add_member(GROUP, "ldap", "stale");
    let server = sim.serve("127.0.0.1:0").unwrap();
    World { sim, server, hub }
}

fn config(w: &World) -> BTreeMap<String, String> {
    [
        ("jupyterhub_api_url", w.hub.url.clone()),
        ("jupyterhub_api_token", TOKEN.into()),
        ("grouper_base_url", w.server.base_url("v2_2_100")),
        ("grouper_user", "sync".into()),
        ("grouper_password", PASSWORD.into()),
        ("grouper_id_path", GROUP.into()),
        ("retries", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn origin(url: &str) -> String {
    grouper_sync_host::sandbox::egress::url_origin(url).unwrap()
}

fn limits(w: &World) -> Limits {
    Limits {
        allowed_hosts: Some(vec![origin(&w.hub.url), origin(&w.server.base_url("x"))]),
        http_timeout_cap: Duration::from_secs(30),
        tls: grouper_sync_host::sandbox::tls::client_config(None).unwrap(),
        deadline: Duration::from_secs(60),
        memory_bytes: 256 << 20,
    }
}

fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| Runner::new(EMBEDDED_COMPONENT).expect("embedded component compiles"))
}

/// The typed result of one call, its report read back from the report's own `json` field.
type Answer = Call<Result<Value, String>>;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(f);
    rt.shutdown_background();
    out
}

/// Reads a typed call's report back through its `json` field.
fn as_json<T>(
    c: Call<Result<T, grouper_sync_host::sandbox::bindings::SyncError>>,
    json: fn(&T) -> &str,
) -> Answer {
    eprintln!("--- component stderr ---\n{}", c.stderr);
    Call {
        result: c.result.map(|r| {
            r.map(|r| serde_json::from_str(json(&r)).unwrap())
                .map_err(|e| e.message)
        }),
        denied_requests: c.denied_requests,
        duration: c.duration,
        peak_memory_bytes: c.peak_memory_bytes,
        stdout: c.stdout,
        stderr: c.stderr,
    }
}

fn call(export: &str, config: &BTreeMap<String, String>, limits: &Limits) -> Answer {
    let inputs = Inputs::config(config);
    match export {
        "run" => {
            let full_pass = grouper_sync_host::sandbox::bindings::RunOptions {
                user_state: None,
                full: false,
                approved_plans: Vec::new(),
                removal_ledger: Vec::new(),
            };
            as_json(block_on(runner().run(&inputs, limits, full_pass)), |r| {
                &r.json
            })
        }
        _ => as_json(block_on(runner().check(&inputs, limits)), |r| &r.json),
    }
}

fn report(c: &Answer) -> &Value {
    match &c.result {
        Ok(Ok(r)) => r,
        other => panic!("expected a report, got {other:?}"),
    }
}

#[test]
fn egress_is_limited_to_the_configured_hosts() {
    let w = world();
    let mut only_hub = limits(&w);
    only_hub.allowed_hosts.as_mut().unwrap().truncate(1);
    let c = call("run", &config(&w), &only_hub);
    let r = report(&c);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["targets"][0]["error"]["kind"], "egress-denied", "{r}");
    assert!(
        r["targets"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("denied by the host's egress policy"),
        "{r}"
    );
    assert_eq!(c.denied_requests, 1);
    assert!(w.sim.requests().is_empty(), "nothing reached Grouper");

    let c = call("run", &config(&w), &limits(&w));
    assert_eq!(report(&c)["outcome"], "converged", "{:?}", c.result);
    assert_eq!(c.denied_requests, 0);
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);
}

#[test]
fn a_pass_over_its_deadline_is_stopped_and_the_next_one_runs() {
    let w = world();
    w.sim.push_fault(Fault {
        operation: Some(Operation::GetMembers),
        // far longer than any bound here: only the 2 s deadline can end this pass
        action: FaultAction::Delay(Duration::from_secs(900)),
        times: 1,
    });
    let mut short = limits(&w);
    short.deadline = Duration::from_secs(2);
    let c = call("run", &config(&w), &short);
    match &c.result {
        Err(Stopped::Deadline(e)) => assert!(e.contains("deadline"), "{e}"),
        other => panic!("expected a deadline stop, got {other:?}"),
    }
    assert_eq!(w.sim.member_ids(GROUP), ["stale"], "nothing was written");
    let c = call("run", &config(&w), &limits(&w));
    assert_eq!(report(&c)["outcome"], "converged");
}

#[test]
fn the_memory_limit_holds_and_the_next_pass_runs() {
    let w = world();
    let mut tiny = limits(&w);
    tiny.memory_bytes = 512 << 10;
    let c = call("run", &config(&w), &tiny);
    assert!(
        matches!(c.result, Err(Stopped::Trapped(_))),
        "{:?}",
        c.result
    );
    assert!(w.sim.requests().is_empty());
    let c = call("run", &config(&w), &limits(&w));
    assert_eq!(report(&c)["outcome"], "converged");
}

#[test]
fn check_reports_scopes_and_group_without_writing() {
    let w = world();
    let c = call("check", &config(&w), &limits(&w));
    let r = report(&c);
    assert_eq!(r["missing_scopes"], json!([]), "{r}");
    assert_eq!(r["groups_readable"][0][0], GROUP);
    w.hub.state.lock().unwrap().scopes = vec!["list:users".into(), "read:users".into()];
    let c = call("check", &config(&w), &limits(&w));
    assert_eq!(report(&c)["missing_scopes"], json!(["admin:auth_state"]));
    assert!(w
        .sim
        .requests()
        .iter()
        .all(|r| r.operation == Some(Operation::GetMembers)));
    assert_eq!(w.sim.member_ids(GROUP), ["stale"]);
}

/// Environment for the binary: URLs and user, with secrets from the environment or a file.
fn env(w: &World, password_file: &std::path::Path) -> Vec<(String, String)> {
    std::fs::write(password_file, format!("{PASSWORD}\n")).unwrap();
    vec![
        ("JUPYTERHUB_API_URL".into(), w.hub.url.clone()),
        ("JUPYTERHUB_API_TOKEN".into(), TOKEN.into()),
        ("GROUPER_BASE_URL".into(), w.server.base_url("v2_2_100")),
        ("GROUPER_USER".into(), "sync".into()),
        (
            "GROUPER_PASSWORD_FILE".into(),
            password_file.display().to_string(),
        ),
        ("GROUPER_ID_PATH".into(), GROUP.into()),
        (
            "GROUPER_SYNC_STATE_DIR".into(),
            password_file.with_file_name("state").display().to_string(),
        ),
    ]
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("grouper-sync-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_no_secrets(what: &str, text: &str) {
    for secret in [TOKEN, PASSWORD, "oauth-DISTINCTIVE"] {
        assert!(!text.contains(secret), "{what} leaked a secret");
    }
}

/// Runs the built `grouper-sync` with only `env`: exit status, stdout, stderr, neither leaking a secret.
fn run_command(env: &[(String, String)], args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_no_secrets(&format!("{args:?} stdout"), &stdout);
    assert_no_secrets(&format!("{args:?} stderr"), &stderr);
    (out.status.code(), stdout, stderr)
}

#[test]
fn once_and_check_commands_exit_codes_and_no_secret_leaks() {
    let w = world();
    let dir = scratch("once");
    let env = env(&w, &dir.join("pw"));
    let run = |args: &[&str]| run_command(&env, args);
    let (code, stdout, _) = run(&["check"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("admin:auth_state") && stdout.contains("readable"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(&["once", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (r["dry_run"].as_bool(), r["targets"][0]["to_add"].as_u64()),
        (Some(true), Some(2))
    );
    assert!(stderr.contains("(dry run)"), "{stderr}");
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["stale"],
        "a dry run writes nothing"
    );

    let (code, _, stderr) = run(&["once", "--log-format", "json", "--log-level", "debug"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every log line is JSON:\n{stderr}"
    );
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);

    // the pass above stored a user state; the next one reads only the listing
    let state_file = dir.join("state").join("user-state");
    let mode = std::fs::metadata(&state_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let (code, stdout, stderr) = run(&["once"]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["user_state"], "used", "{r}");
    assert_eq!(
        (r["users_fetched"].as_u64(), r["users_from_state"].as_u64()),
        (Some(0), Some(3))
    );
    assert!(stderr.contains("fetched=0 from_state=3"), "{stderr}");
    let (code, stdout, _) = run(&["once", "--full"]);
    assert_eq!(code, Some(0));
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (r["user_state"].as_str(), r["users_fetched"].as_u64()),
        (Some("full-requested"), Some(3))
    );
    // a damaged state costs one warning and a full pass, and is replaced
    std::fs::write(&state_file, b"{\"format\": tru").unwrap();
    let (code, stdout, stderr) = run(&["once"]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (r["user_state"].as_str(), r["users_fetched"].as_u64()),
        (Some("unreadable"), Some(3))
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("user state"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("user state is not readable"),
        "{stderr}"
    );
    // replaced by a good one, which `state show` prints as JSON
    let (code, stdout, stderr) = run(&["state", "show"]);
    assert_eq!(code, Some(0), "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["users"].as_array().map(Vec::len), Some(3), "{shown}");
    let subjects: Vec<&str> = shown["users"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["subjects"].as_object().unwrap().values())
        .filter_map(Value::as_str)
        .collect();
    assert!(
        subjects.contains(&"100001") && subjects.contains(&"100002"),
        "{shown}"
    );
    assert!(!stdout.contains("auth_state"), "{stdout}");

    let (code, _, stderr) = run(&["once", "--grouper_pass", "x"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("command line"), "{stderr}");
    let (code, _, stderr) = run(&["once", "--grouper_id_path", "edu:no:such"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("GROUP_NOT_FOUND"), "{stderr}");
    let (code, _, _) = run(&["once", "--max_removal_fraction", "7"]);
    assert_eq!(code, Some(2), "configuration errors exit 2");
}

#[test]
fn configuration_errors_of_the_built_binary_never_print_a_secret() {
    let w = world();
    let dir = scratch("config-errors");
    let base = env(&w, &dir.join("pw"));
    let with = |key: &str, value: String| -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = base.iter().filter(|(k, _)| k != key).cloned().collect();
        e.push((key.into(), value));
        e
    };
    let config = dir.join("bad.toml");
    let config_arg = config.display().to_string();
    type Case<'a> = (Vec<(String, String)>, String, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // a TOML syntax error on the secret's own line (an unterminated string)
        (
            base.clone(),
            format!("grouper_password = \"{PASSWORD}\n"),
            vec!["line 1, column"],
        ),
        // a duplicate key whose value is the secret
        (
            base.clone(),
            format!("grouper_password = \"a\"\ngrouper_password = \"{PASSWORD}\"\n"),
            vec!["line 2, column 1"],
        ),
        // credentials inside the URLs, from the environment and from the file
        (
            with(
                "JUPYTERHUB_API_URL",
                format!("http://svc:{TOKEN}@127.0.0.1:1/hub/api"),
            ),
            String::new(),
            vec!["jupyterhub_api_url", "***@"],
        ),
        (
            base.clone(),
            format!("grouper_base_url = \"https://app:{PASSWORD}@calgroups.example.edu/gws\"\n"),
            vec!["grouper_base_url", "***@"],
        ),
    ];
    for (env, text, says) in cases {
        std::fs::write(&config, text).unwrap();
        for command in ["once", "check"] {
            // run_command fails the test if stdout or stderr holds a secret
            let (code, _, stderr) = run_command(&env, &[command, "--config", &config_arg]);
            assert_eq!(code, Some(2), "{command}: {stderr}");
            for s in &says {
                assert!(stderr.contains(s), "{command}: {s:?} in {stderr}");
            }
        }
    }
    // a secret pasted as a stray word is named by its position
    let (code, _, stderr) = run_command(&base, &["once", PASSWORD]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("position 2"), "{stderr}");
}

#[test]
fn the_services_environment_and_a_config_file_naming_its_group_make_one_target() {
    let w = world();
    let dir = scratch("env-and-file");
    let env = env(&w, &dir.join("pw")); // GROUPER_ID_PATH = GROUP, as in the hub's service environment
    let config = dir.join("sync.toml");
    let config_arg = config.display().to_string();
    std::fs::write(
        &config,
        format!("[[targets]]\ngrouper_group = \"{GROUP}\"\nmax_removals = 50\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = run_command(&env, &["check", "--config", &config_arg]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("target "))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let (code, stdout, stderr) = run_command(&env, &["once", "--config", &config_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["targets"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);
    // disagreeing, the error names the keys
    std::fs::write(
        &config,
        format!("[[targets]]\ngrouper_group = \"{GROUP}\"\nmode = \"additive\"\n"),
    )
    .unwrap();
    let (code, _, stderr) = run_command(&env, &["once", "--config", &config_arg]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("differ in mode"), "{stderr}");
}

/// `env` with both URLs moved to TLS fronts reached as `localhost`.
fn https_env(
    env: &[(String, String)],
    hub: &TlsFront,
    grouper: &TlsFront,
) -> Vec<(String, String)> {
    let hub_url = format!("{}/hub/api", hub.url("localhost"));
    let grouper_url = format!(
        "{}/grouper-ws/servicesRest/json/v2_2_100",
        grouper.url("localhost")
    );
    env.iter()
        .map(|(k, v)| match k.as_str() {
            "JUPYTERHUB_API_URL" => (k.clone(), hub_url.clone()),
            "GROUPER_BASE_URL" => (k.clone(), grouper_url.clone()),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

#[test]
fn https_with_the_campus_ca_from_the_flag_or_the_environment() {
    let w = world();
    let dir = scratch("https");
    let ca = TestCa::new("Example Campus CA");
    let ca_file = dir.join("campus-ca.pem");
    ca.write_cert(&ca_file);
    let cert = ca.issue(&["localhost"], Validity::Current);
    let hub_addr = std::net::ToSocketAddrs::to_socket_addrs(
        &jupyterhub_grouper_sync::model::HttpUrl::parse(&w.hub.url)
            .unwrap()
            .authority(),
    )
    .unwrap()
    .next()
    .unwrap();
    let (hub, grouper) = (
        TlsFront::start(&cert, hub_addr),
        TlsFront::start(&cert, w.server.addr),
    );
    let plain_env = env(&w, &dir.join("pw"));
    let env = https_env(&plain_env, &hub, &grouper);
    let ca_path = ca_file.display().to_string();

    // without the campus CA: the pass fails, says why, and the group is untouched
    let (code, _, stderr) = run_command(&env, &["once"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown certificate authority") && stderr.contains("[tls]"),
        "{stderr}"
    );
    assert_eq!(w.sim.member_ids(GROUP), ["stale"]);

    let (code, stdout, stderr) = run_command(&env, &["once", "--ca-file", &ca_path]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);

    let mut with_env = env.clone();
    with_env.push(("GROUPER_SYNC_CA_FILE".into(), ca_path.clone()));
    let (code, stdout, stderr) = run_command(&with_env, &["check"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        !stderr.contains("unencrypted"),
        "https is not warned about: {stderr}"
    );

    let missing = dir.join("missing.pem").display().to_string();
    let (code, _, stderr) = run_command(&env, &["once", "--ca-file", &missing]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("missing.pem") && stderr.contains("cannot read"),
        "{stderr}"
    );

    // http:// to an address that is not loopback (0.0.0.0 still reaches this machine on Linux)
    let cleartext: Vec<(String, String)> = plain_env
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "JUPYTERHUB_API_URL" => (k, v.replace("127.0.0.1", "0.0.0.0")),
            _ => (k, v),
        })
        .collect();
    let (code, stdout, stderr) = run_command(&cleartext, &["check"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("unencrypted"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("jupyterhub_api_url"), "{stderr}");
}

#[test]
fn killed_in_the_middle_of_a_write_then_restarted_it_converges() {
    let w = world();
    let dir = scratch("killed");
    let env = env(&w, &dir.join("pw"));
    // a first pass leaves a user state behind
    let (code, _, stderr) = run_command(&env, &["once"]);
    assert_eq!(code, Some(0), "{stderr}");
    let state_file = dir.join("state").join("user-state");
    let state_before = std::fs::read(&state_file).unwrap();
    // someone new on the hub, someone stale in the group; Grouper commits the add and then hangs
    w.hub.state.lock().unwrap().users.push((
        "dee".into(),
        false,
        json!({"canvas_user": {"login_id": "100003"}}),
    ));
    w.sim.add_member(GROUP, "ldap", "stale");
    w.sim.clear_requests();
    w.sim.push_fault(Fault {
        operation: Some(Operation::AddMember),
        action: FaultAction::Delay(Duration::from_secs(120)),
        times: 1,
    });
    let mut child = Command::new(BIN)
        .arg("once")
        .env_clear()
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the add to reach Grouper", Duration::from_secs(300), || {
        w.sim
            .requests()
            .iter()
            .any(|r| r.operation == Some(Operation::AddMember))
    });
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100003", "stale"],
        "the add was committed, nothing was removed"
    );
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        state_before,
        "the state file is the last complete one"
    );
    // restarted: the next pass converges
    w.sim.clear_faults();
    let (code, stdout, stderr) = run_command(&env, &["once"]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002", "100003"]);
}

/// `(op, subject)` of change-log lines given as JSON lines.
fn ops_and_subjects(json_lines: &str) -> Vec<(String, String)> {
    json_lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            (
                e["op"].as_str().unwrap().into(),
                e["subject"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn a_pass_stopped_after_its_first_batch_leaves_that_batch_in_the_change_log() {
    // the adds are confirmed, the removal hangs; the pass is then stopped twice over: by its
    // deadline (`once`) and by SIGINT, as the hub stops its services at every restart
    for stop_by in ["deadline", "sigint"] {
        let w = world();
        let dir = scratch(&format!("stopped-{stop_by}"));
        let env = env(&w, &dir.join("pw"));
        w.sim.push_fault(Fault {
            operation: Some(Operation::DeleteMember),
            action: FaultAction::Delay(Duration::from_secs(900)),
            times: 1,
        });
        let state = dir.join("state");
        match stop_by {
            "deadline" => {
                let (code, _, stderr) =
                    run_command(&env, &["once", "--pass-deadline-seconds", "20"]);
                assert_eq!(code, Some(1), "{stderr}");
                assert!(stderr.contains("deadline"), "{stderr}");
            }
            _ => {
                let mut child = Command::new(BIN)
                    .env_clear()
                    .envs(env.iter().cloned())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                wait_for(
                    "the removal to reach Grouper",
                    Duration::from_secs(300),
                    || {
                        w.sim
                            .requests()
                            .iter()
                            .any(|r| r.operation == Some(Operation::DeleteMember))
                    },
                );
                Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(wait_exit(&mut child, Duration::from_secs(180)).success());
            }
        }
        // (the simulator commits the delayed removal before it hangs: Grouper did the removal,
        // but never said so, and an unconfirmed change is not logged)
        assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"], "{stop_by}");
        let logged = ops_and_subjects(
            &std::fs::read_to_string(state.join("changes.jsonl")).unwrap_or_default(),
        );
        assert_eq!(
            logged,
            [
                ("add".to_string(), "100001".to_string()),
                ("add".into(), "100002".into())
            ],
            "{stop_by}: the confirmed batch is in the log"
        );
    }
}

#[test]
fn one_writer_per_state_dir_and_a_state_dir_others_can_write_is_refused() {
    use grouper_sync_host::store::state::StateStore;
    let w = world();
    let dir = scratch("lock");
    let env = env(&w, &dir.join("pw"));
    let state = dir.join("state");
    let store = StateStore::new(&state);
    let held = store.try_lock("the test's own holder (pid 42)").unwrap();
    // a second writer says who holds state_dir instead of racing it
    let (code, _, stderr) = run_command(&env, &["once", "--lock-wait-seconds", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("state_dir is in use by the test's own holder (pid 42)"),
        "{stderr}"
    );
    assert_eq!(w.sim.member_ids(GROUP), ["stale"], "the pass did not run");
    let (code, _, stderr) = run_command(
        &env,
        &["approve", "0123456789abcdef", "--lock-wait-seconds", "0"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by the test's own holder"),
        "{stderr}"
    );
    // one that waits goes ahead once the holder lets go
    let log = dir.join("waiting.log");
    let mut child = Command::new(BIN)
        .arg("once")
        .env_clear()
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for(
        "once to wait for the lock",
        Duration::from_secs(300),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("waiting up to 60 s")
        },
    );
    drop(held);
    assert!(wait_exit(&mut child, Duration::from_secs(300)).success());
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);
    // a state_dir others can write is refused before anything runs
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [&["once"][..], &["approve", "0123456789abcdef"], &[]] {
        let (code, _, stderr) = run_command(&env, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("chmod go-w"), "{stderr}");
    }
}

/// The subject ids of the adds and deletes Grouper received, in order.
fn written_subjects(sim: &Simulator) -> Vec<(String, String)> {
    fn ids(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x.as_str()) {
                        ("subjectId", Some(id)) => out.push(id.to_string()),
                        _ => ids(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| ids(x, out)),
            _ => {}
        }
    }
    let mut written = Vec::new();
    for r in sim.requests() {
        let op = match r.operation {
            Some(Operation::AddMember) => "add",
            Some(Operation::DeleteMember) => "remove",
            _ => continue,
        };
        let mut found = Vec::new();
        ids(r.body.as_ref().unwrap_or(&Value::Null), &mut found);
        written.extend(found.into_iter().map(|id| (op.to_string(), id)));
    }
    written
}

#[test]
fn the_change_log_records_what_grouper_was_told_and_log_finds_it() {
    let w = world();
    let dir = scratch("changelog");
    let env = env(&w, &dir.join("pw"));
    let (code, _, stderr) = run_command(&env, &["once"]);
    assert_eq!(code, Some(0), "{stderr}");
    // a second process, after a change on the hub: the log is appended to
    w.hub
        .state
        .lock()
        .unwrap()
        .users
        .retain(|(n, _, _)| n != "ben");
    let (code, _, stderr) = run_command(&env, &["once"]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, stdout, stderr) = run_command(&env, &["log", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let entries: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let logged = ops_and_subjects(&stdout);
    assert_eq!(
        logged,
        written_subjects(&w.sim),
        "exactly what Grouper was told, in order"
    );
    assert_eq!(
        logged,
        [
            ("add", "100001"),
            ("add", "100002"),
            ("remove", "stale"),
            ("remove", "100002")
        ]
        .map(|(o, s)| (o.to_string(), s.to_string()))
    );
    assert_eq!(
        (
            entries[0]["hub_user"].as_str(),
            entries[0]["reason"].as_str()
        ),
        (Some("ana"), Some("in-hub"))
    );
    assert_eq!(entries[3]["reason"], "not-in-hub");
    assert_eq!(entries[3]["source"], "ldap");
    assert_ne!(entries[0]["pass"], entries[3]["pass"], "two passes");
    let mode = std::fs::metadata(dir.join("state").join("changes.jsonl"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let lines = |args: &[&str]| -> Vec<String> {
        let (code, stdout, stderr) = run_command(&env, args);
        assert_eq!(code, Some(0), "{stderr}");
        stdout.lines().map(String::from).collect()
    };
    let ben = lines(&["log", "--subject", "100002"]);
    assert_eq!(ben.len(), 2, "{ben:?}");
    assert!(
        ben[0].contains("add") && ben[0].contains("hub user ben"),
        "{ben:?}"
    );
    assert!(
        ben[1].contains("remove") && ben[1].contains("no hub user maps to it"),
        "{ben:?}"
    );
    assert_eq!(lines(&["log", "--hub-user", "ana"]).len(), 1);
    assert_eq!(lines(&["log", "--group", GROUP]).len(), 4);
    assert!(lines(&["log", "--since", "2999-01-01"]).is_empty());
    let (code, _, stderr) = run_command(&env, &["log", "--since", "last tuesday"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn the_status_page_shows_the_passes_and_a_withheld_plan_and_survives_a_restart() {
    let w = world();
    let dir = scratch("status");
    let env = env(&w, &dir.join("pw"));
    // a `once` pass whose removal the limit withholds
    let (code, stdout, stderr) = run_command(&env, &["once", "--max-removals", "0"]);
    assert_eq!(code, Some(3), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    let t = &report["targets"][0];
    let plan = t["withheld_plan"].as_str().unwrap().to_string();

    const PAGE_TOKEN: &str = "page-token-0b7d-DISTINCTIVE";
    let status_addr = format!("127.0.0.1:{}", free_port());
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "--GrouperSync.sync_every=3600",
            "--status-addr",
            &status_addr,
        ];
        args.extend_from_slice(extra);
        Command::new(BIN)
            .args(&args)
            .env_clear()
            .envs(env.iter().cloned())
            .env("GROUPER_SYNC_UI_TOKEN", PAGE_TOKEN)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let page_with = |what: &str, n: usize| {
        let mut page = String::new();
        wait_for(what, Duration::from_secs(300), || {
            page = std::net::TcpStream::connect(&status_addr)
                .ok()
                .map(|_| {
                    request(
                        &status_addr,
                        "/",
                        &[("Authorization", &format!("Bearer {PAGE_TOKEN}"))],
                    )
                    .1
                })
                .unwrap_or_default();
            page.matches("<td>removals_withheld</td>").count() >= n
        });
        page
    };
    let mut child = serve(&["--max-removals", "0"]);
    let page = page_with("the service's first pass on the page", 2);
    assert!(page.contains(GROUP), "{page}");
    assert!(page.contains(&plan), "the withheld plan's name is shown");
    assert!(page.contains("<code>stale</code>"), "its members on demand");
    // the numbers are the report's: 3 users selected, nothing added (the once pass did), 1 skipped, 1 withheld
    assert!(
        page.contains(
            "<td>removals_withheld</td><td>3</td><td>0</td><td>0</td><td>1</td><td>1</td>"
        ),
        "{page}"
    );
    // the once pass, from the history, with its report's own numbers
    let from_report = format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        t["outcome"].as_str().unwrap(),
        t["users_selected"],
        t["added"],
        t["removed"],
        t["users_unmapped"],
        t["withheld_removals"]
    );
    assert_eq!(
        from_report,
        "<td>removals_withheld</td><td>3</td><td>2</td><td>0</td><td>1</td><td>1</td>"
    );
    assert!(page.contains(&from_report), "{page}");
    assert!(page.contains("Next pass: "), "{page}");
    assert!(
        page.contains("grouper_password") && page.contains("(set)"),
        "settings shown, secrets masked"
    );
    assert_no_secrets("status page", &page);
    assert!(!page.contains(PAGE_TOKEN));
    // signed out: the sign-in form and nothing of the passes; another host name: nothing at all
    let (code, signed_out) = get(&status_addr, "/");
    assert_eq!(code, 200);
    assert!(signed_out.contains("action=\"login\""), "{signed_out}");
    for private in [GROUP, plan.as_str(), "stale", "grouper_user", "state_dir"] {
        assert!(
            !signed_out.contains(private),
            "a signed-out visitor sees {private}"
        );
    }
    let rebound = request(
        &status_addr,
        "/",
        &[
            ("Host", "evil.example"),
            ("Authorization", &format!("Bearer {PAGE_TOKEN}")),
        ],
    );
    assert_eq!(rebound.0, 421, "{}", rebound.1);
    assert!(!rebound.1.contains(GROUP));
    stop(&mut child, "INT", Duration::from_secs(60));

    // restarted: the earlier passes are still on the page, with the new one
    let mut child = serve(&["--max-removals", "0"]);
    let page = page_with("the restarted service's pass", 3);
    assert_no_secrets("status page", &page);
    stop(&mut child, "INT", Duration::from_secs(60));
}

/// One request with an optional cookie and form body: status, raw head, body.
fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

#[test]
fn the_status_page_approves_and_runs_a_pass_only_for_a_signed_in_admin() {
    const UI_TOKEN: &str = "ui-token-5e1f07-DISTINCTIVE";
    let w = world();
    let dir = scratch("ui");
    let mut env = env(&w, &dir.join("pw"));
    env.push(("GROUPER_SYNC_UI_TOKEN".into(), UI_TOKEN.into()));
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args([
            "--GrouperSync.sync_every=3600",
            "--status-addr",
            &metrics,
            "--max-removals",
            "0",
        ])
        .env_clear()
        .envs(env.iter().cloned())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the status page", Duration::from_secs(300), || {
        std::net::TcpStream::connect(&metrics).is_ok()
    });
    let (_, _, page) = exchange(&metrics, "GET", "/", None, "");
    assert!(page.contains("action=\"login\"") && !page.contains("action=\"approve\""));

    // not signed in, or signed in with the wrong token: refused
    assert_eq!(
        exchange(&metrics, "POST", "/approve", None, "plan=0123456789abcdef").0,
        403
    );
    assert_eq!(
        exchange(&metrics, "POST", "/login", None, "token=wrong").0,
        403
    );
    let (status, head, _) = exchange(
        &metrics,
        "POST",
        "/login",
        None,
        &format!("token={UI_TOKEN}"),
    );
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(
        head.contains("Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"),
        "{head}"
    );
    let mut signed_in = String::new();
    wait_for(
        "the first pass on the page",
        Duration::from_secs(300),
        || {
            signed_in = exchange(&metrics, "GET", "/", Some(&cookie), "").2;
            signed_in.contains("<td>removals_withheld</td>")
        },
    );
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002", "stale"]);
    let plan_at = signed_in.find("Withheld plan <code>").unwrap() + "Withheld plan <code>".len();
    let plan = signed_in[plan_at..plan_at + 16].to_string();
    let approve_form = format!("plan={plan}");
    let (_, head, signed_in) = exchange(&metrics, "GET", "/", Some(&cookie), "");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let csrf_at =
        signed_in.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = signed_in[csrf_at..csrf_at + 64].to_string();
    assert!(
        signed_in.contains(&format!("Approve plan {plan}")),
        "{signed_in}"
    );
    for text in [&page, &signed_in, &head] {
        assert_no_secrets("status page", text);
        assert!(
            !text.contains(UI_TOKEN),
            "the page never shows the ui token"
        );
    }
    // a forged form (no CSRF token) is refused even with the session cookie
    assert_eq!(
        exchange(&metrics, "POST", "/approve", Some(&cookie), &approve_form).0,
        403
    );
    assert!(!dir.join("state").join("approvals.json").exists());

    // Approve, then Run a pass now: exactly the plan is applied
    let form = format!("plan={plan}&csrf={csrf}");
    assert_eq!(
        exchange(&metrics, "POST", "/approve", Some(&cookie), &form).0,
        303
    );
    assert_eq!(
        exchange(
            &metrics,
            "POST",
            "/run",
            Some(&cookie),
            &format!("csrf={csrf}")
        )
        .0,
        303
    );
    wait_for(
        "the approved plan to be applied",
        Duration::from_secs(300),
        || w.sim.member_ids(GROUP) == ["100001", "100002"],
    );
    let log = std::fs::read_to_string(dir.join("state").join("changes.jsonl")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"approved-plan\"")
            && l.contains(&plan)
            && l.contains("\"stale\"")),
        "{log}"
    );
    let stderr = stop(&mut child, "INT", Duration::from_secs(60));
    assert_no_secrets("service stderr", &stderr);
    assert!(!stderr.contains(UI_TOKEN));
}

#[test]
fn a_withheld_plan_is_approved_once_and_a_changed_plan_stays_withheld() {
    let w = world();
    let dir = scratch("approve");
    let env = env(&w, &dir.join("pw"));
    let run = |args: &[&str]| {
        let (code, stdout, stderr) = run_command(&env, args);
        let report = serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null);
        (code, report, stdout, stderr)
    };
    // max_removals 0: the stale member's removal is withheld, and the plan is named
    let strict = ["once", "--max-removals", "0"];
    let (code, r, _, stderr) = run(&strict);
    assert_eq!(code, Some(3), "{stderr}");
    let plan = r["targets"][0]["withheld_plan"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        stderr.contains(&format!("grouper-sync approve {plan}")),
        "{stderr}"
    );
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002", "stale"]);

    let (code, _, stdout, stderr) = run(&["approve", "not-a-plan"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let (code, _, stdout, _) = run(&["approve", &plan]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(&plan), "{stdout}");

    // a dry run shows the approved plan would apply, and leaves the approval in place
    let (code, r, _, stderr) = run(&["once", "--max-removals", "0", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(r["targets"][0]["approved_plan"], plan.as_str());
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002", "stale"]);
    let approvals = std::fs::read_to_string(dir.join("state/approvals.json")).unwrap();
    assert!(
        approvals.contains(&plan),
        "a dry run used nothing up: {approvals}"
    );

    // the approved plan goes through, once
    let (code, r, _, stderr) = run(&strict);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(r["targets"][0]["approved_plan"], plan.as_str());
    assert_eq!(r["targets"][0]["removed"], 1);
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);
    assert!(stderr.contains("approval is used up"), "{stderr}");
    let approvals = std::fs::read_to_string(dir.join("state/approvals.json")).unwrap();
    assert!(!approvals.contains(&plan), "consumed: {approvals}");

    // a plan approved, then changed before the pass, stays withheld under its own name
    w.sim.add_member(GROUP, "ldap", "stale");
    let (_, r, _, _) = run(&strict);
    let approved = r["targets"][0]["withheld_plan"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(approved, plan, "the same removal set has the same name");
    run(&["approve", &approved]);
    w.sim.add_subject(Subject::new("ldap", "stale2"));
    w.sim.add_member(GROUP, "ldap", "stale2");
    let (code, r, _, stderr) = run(&strict);
    assert_eq!(code, Some(3), "{stderr}");
    let changed = r["targets"][0]["withheld_plan"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(changed, approved);
    assert_eq!(r["targets"][0]["approved_plan"], Value::Null);
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "stale", "stale2"]
    );
    let approvals = std::fs::read_to_string(dir.join("state/approvals.json")).unwrap();
    assert!(
        approvals.contains(&approved),
        "unused, it stays: {approvals}"
    );

    // --approve lets a plan through in this run only
    let (code, r, _, stderr) = run(&["once", "--max-removals", "0", "--approve", &changed]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(r["targets"][0]["removed"], 2);
    assert_eq!(w.sim.member_ids(GROUP), ["100001", "100002"]);
    let (code, _, _, stderr) = run(&["--approve", &changed]);
    assert_eq!(
        code,
        Some(2),
        "the service takes approvals through `approve`: {stderr}"
    );
}

fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, path, &[])
}

/// `GET path` with extra headers (a `Host` among them replaces the address).
fn request(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let host = headers
        .iter()
        .find(|(k, _)| *k == "Host")
        .map_or(addr, |(_, v)| v);
    let extra: String = headers
        .iter()
        .filter(|(k, _)| *k != "Host")
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the service binary with the world's environment and nothing else; stderr is piped.
fn spawn_service(w: &World, dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env(w, &dir.join("pw")))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGINT or SIGTERM, asserts a clean exit within `within`, returns what is left on stderr.
fn stop(child: &mut std::process::Child, signal: &str, within: Duration) -> String {
    Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(
        wait_exit(child, within).success(),
        "SIG{signal} stops the service cleanly within {within:?}"
    );
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).unwrap();
    }
    stderr
}

#[test]
fn service_runs_on_schedule_serves_metrics_and_stops_on_sigint() {
    let w = world();
    let dir = scratch("service");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_service(
        &w,
        &dir,
        &["--GrouperSync.sync_every=10", "--metrics-addr", &metrics],
    );
    wait_for("the first pass", Duration::from_secs(300), || {
        w.sim.member_ids(GROUP) == ["100001", "100002"]
    });
    wait_for("the metrics endpoint", Duration::from_secs(300), || {
        std::net::TcpStream::connect(&metrics).is_ok()
    });
    assert_eq!(get(&metrics, "/healthz").0, 200);
    // the metrics listener is no way to the status page
    assert_eq!(get(&metrics, "/").0, 404);
    assert_eq!(get(&metrics, "/approve").0, 404);
    wait_for("readiness", Duration::from_secs(300), || {
        get(&metrics, "/readyz").0 == 200
    });

    w.hub.state.lock().unwrap().users.push((
        "dee".into(),
        false,
        json!({"canvas_user": {"login_id": "100003"}}),
    ));
    wait_for("the next pass", Duration::from_secs(300), || {
        w.sim.member_ids(GROUP).contains(&"100003".to_string())
    });
    // The group changes before the pass ends and its metrics are recorded.
    wait_for(
        "the second pass to be counted",
        Duration::from_secs(300),
        || {
            get(&metrics, "/metrics")
                .1
                .contains("result=\"converged\"} 2")
        },
    );
    let (status, body) = get(&metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("grouper_sync_passes_total{result=\"converged\"} 2"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "grouper_sync_members_added_total{{group=\"{GROUP}\"}} 3"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "grouper_sync_members_removed_total{{group=\"{GROUP}\"}} 1"
        )),
        "{body}"
    );
    assert_no_secrets("metrics", &body);

    let stderr = stop(&mut child, "INT", Duration::from_secs(30));
    assert_no_secrets("service stderr", &stderr);
    assert!(stderr.contains("pass converged"), "{stderr}");
}

#[test]
fn a_failing_pass_does_not_stop_the_service() {
    let w = world();
    let dir = scratch("failing");
    w.hub.state.lock().unwrap().fail_page_at_offset = Some((0, 500));
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_service(
        &w,
        &dir,
        &[
            "--GrouperSync.sync_every=10",
            "--retries",
            "0",
            "--metrics-addr",
            &metrics,
        ],
    );
    wait_for("a failed pass", Duration::from_secs(300), || {
        std::net::TcpStream::connect(&metrics).is_ok()
            && get(&metrics, "/metrics")
                .1
                .contains("grouper_sync_passes_total{result=\"failed\"} 1")
    });
    assert_eq!(
        get(&metrics, "/readyz").0,
        503,
        "never ready without a success"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the service is still running after a failed pass"
    );
    let stderr = stop(&mut child, "TERM", Duration::from_secs(30));
    assert!(
        stderr.contains("pass failed") && stderr.contains("carries on"),
        "{stderr}"
    );
}

/// Starts the binary through `sh` with SIGINT ignored (`trap '' INT; exec …`), as a process
/// started from a background job is; its stderr is collected by a thread.
fn spawn_with_sigint_ignored(
    w: &World,
    dir: &std::path::Path,
    args: &str,
) -> (std::process::Child, Arc<std::sync::Mutex<String>>) {
    // A copy with no compiled component beside it (scripts/test.sh ships one beside BIN): this
    // one compiles the component at start, as a build without the wheel's file does.
    let bin = dir.join("bare").join("bin").join("grouper-sync");
    if !bin.exists() {
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(BIN, &bin).unwrap();
    }
    let script = format!("trap '' INT; exec {} {args}", bin.display());
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .envs(env(w, &dir.join("pw")))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let (sink, mut stderr) = (log.clone(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, log)
}

#[test]
fn sigint_stops_the_service_even_if_inherited_as_ignored_and_during_startup() {
    let w = world();
    let dir = scratch("sigint");
    // A SIGINT while the component is still being compiled is not lost.
    let (mut child, _) = spawn_with_sigint_ignored(&w, &dir, "--GrouperSync.sync_every=10");
    std::thread::sleep(Duration::from_millis(300));
    stop(&mut child, "INT", Duration::from_secs(30));

    // A disabled service stays alive and idle, and SIGINT stops it.
    let (mut child, log) =
        spawn_with_sigint_ignored(&w, &dir, "--enabled false --GrouperSync.sync_every=10");
    wait_for("the service to go idle", Duration::from_secs(300), || {
        log.lock().unwrap().contains("sync disabled")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a disabled service does not exit"
    );
    assert!(
        w.hub.state.lock().unwrap().requests.is_empty(),
        "a disabled service sends nothing"
    );
    stop(&mut child, "INT", Duration::from_secs(30));
}

#[test]
fn sigint_during_a_pass_abandons_it_and_sends_nothing_more() {
    let w = world();
    let dir = scratch("abandon");
    // The group read takes 4 s; the signal arrives while the pass waits for it.
    w.sim.push_fault(Fault {
        operation: Some(Operation::GetMembers),
        action: FaultAction::Delay(Duration::from_secs(4)),
        times: 1,
    });
    let mut child = spawn_service(&w, &dir, &["--GrouperSync.sync_every=10"]);
    wait_for(
        "the pass to reach Grouper",
        Duration::from_secs(300),
        || !w.sim.requests().is_empty(),
    );
    let stderr = stop(&mut child, "INT", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(5)); // past the delayed answer
    let ops: Vec<_> = w
        .sim
        .requests()
        .iter()
        .filter_map(|r| r.operation)
        .collect();
    assert_eq!(
        ops,
        [Operation::GetMembers],
        "nothing was sent after the signal"
    );
    assert_eq!(w.sim.member_ids(GROUP), ["stale"]);
    assert!(
        stderr.contains("abandoning the pass in progress"),
        "{stderr}"
    );
}
