//! The built `grouper-sync` on a real JupyterHub 6.1.1: keeping a hub group from a Grouper group
//! (`direction = "to_hub"` in a `[[targets]]` table of the config file: `check` lists the target
//! with its scopes, `once` fills the hub group, and the change log records the hub group that
//! changed), and keeping everyone's membership when every user's `auth_state` loses its login id.

use grouper_sync_testkit::real_hub;

use grouper_sim::{Config, Simulator, Subject};
use real_hub::RealHub;
use serde_json::{json, Value};
use std::process::Command;

const GPU: &str = "edu:example:app:datahub:gpu-quota";
const BIN: &str = env!("CARGO_BIN_EXE_grouper-sync");
const GROUPER_PW: &str = "groups-pw-51b2";

/// The simulator the `once` tests write to, knowing kim's subject 810001.
fn simulator_with_kim() -> std::sync::Arc<Simulator> {
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: GROUPER_PW.into(),
        ..Config::default()
    });
    sim.add_subject(Subject::new("ldap", "810001"));
    sim
}

/// Runs the built `grouper-sync` with this config file against the real hub (its groups token)
/// and the simulator at `grouper`, and checks that neither the Grouper password nor any of
/// `secrets` reaches its output: (exit code, stdout, stderr).
fn run_with_config(
    config: &std::path::Path,
    hub: &RealHub,
    grouper: &str,
    args: &[&str],
    secrets: &[&str],
) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs([
            ("GROUPER_SYNC_CONFIG", config.display().to_string()),
            ("JUPYTERHUB_API_URL", hub.api_url.clone()),
            ("JUPYTERHUB_API_TOKEN", hub.groups_token.clone()),
            ("GROUPER_BASE_URL", grouper.to_string()),
            ("GROUPER_USER", "sync".into()),
            ("GROUPER_PASSWORD", GROUPER_PW.into()),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for secret in std::iter::once(&GROUPER_PW).chain(secrets) {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked:\n{stdout}\n{stderr}"
        );
    }
    (out.status.code(), stdout, stderr)
}

#[test]
fn once_keeps_a_hub_group_and_logs_its_changes() {
    let hub = RealHub::start("host-to-hub");
    assert_eq!(
        hub.admin(
            "POST",
            "/users",
            Some(&json!({"usernames": ["kim", "lee"]}))
        )
        .0,
        201
    );
    for (name, login) in [("kim", "810001"), ("lee", "810002")] {
        let state = json!({"auth_state": {"canvas_user": {"login_id": login}}});
        assert_eq!(
            hub.admin("PATCH", &format!("/users/{name}"), Some(&state))
                .0,
            200
        );
    }
    let sim = simulator_with_kim();
    sim.add_group(GPU);
    sim.add_member(GPU, "ldap", "810001");
    let server = sim.serve("127.0.0.1:0").unwrap();

    let dir = std::env::temp_dir().join(format!("grouper-sync-groups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("grouper-sync.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n\n[[targets]]\ngrouper_group = \"{GPU}\"\ndirection = \"to_hub\"\nhub_group = \"gpu\"\ncreate_missing_groups = true\n",
            dir.join("state").display().to_string()
        ),
    )
    .unwrap();
    let grouper_sync =
        |args: &[&str]| run_with_config(&config, &hub, &server.base_url("v2_2_100"), args, &[]);

    let (code, out, err) = grouper_sync(&["check"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "target {GPU} -> hub group gpu: readable, 1 member(s)"
        )),
        "{out}"
    );
    assert!(out.contains("needs list:users, read:users, admin:auth_state, read:users:groups, read:groups:name, groups, admin:groups"), "{out}");
    assert!(out.contains("the first pass creates it"), "{out}");

    let (code, out, err) = grouper_sync(&["once"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(hub.group_members("gpu"), ["kim"]);

    let (code, out, err) = grouper_sync(&["log", "--group", "gpu", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(
        (
            lines[0]["op"].as_str(),
            lines[0]["hub_group"].as_str(),
            lines[0]["hub_user"].as_str(),
            lines[0]["subject"].as_str(),
            lines[0]["reason"].as_str(),
            lines[0]["target"].as_str()
        ),
        (
            Some("add"),
            Some("gpu"),
            Some("kim"),
            Some("810001"),
            Some("in-grouper"),
            Some(GPU)
        )
    );
    let (_, text, _) = grouper_sync(&["log"]);
    assert!(
        text.contains(
            "810001 (hub user kim)  hub group gpu  a member of edu:example:app:datahub:gpu-quota"
        ),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The unlucky deployment of issue 18: after a converged pass every user's `auth_state` is
/// rewritten (through the admin API) to a shape without a login id, and some users are active
/// again. The incremental `once` that re-reads them, and a full one after it, remove nobody.
#[test]
fn once_after_every_auth_state_lost_its_login_id_removes_nobody() {
    const GROUP: &str = "edu:example:app:datahub:datahub-users";
    const PW: &str = "lost-pw-07c3";
    let hub = RealHub::start("host-lost-subjects");
    let names: Vec<String> = (0..300).map(|i| format!("lost{i:03}")).collect();
    for chunk in names.chunks(100) {
        let (status, _) = hub.admin("POST", "/users", Some(&json!({ "usernames": chunk })));
        assert_eq!(status, 201);
    }
    let set_state = |name: &str, state: Value| {
        let (status, body) = hub.admin(
            "PATCH",
            &format!("/users/{name}"),
            Some(&json!({ "auth_state": state })),
        );
        assert_eq!(status, 200, "{name}: {body}");
    };
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: PW.into(),
        ..Config::default()
    });
    for (i, name) in names.iter().enumerate() {
        let login = format!("9{i:05}");
        set_state(name, json!({"canvas_user": {"login_id": login}}));
        sim.add_subject(Subject::new("ldap", &login));
    }
    sim.add_group(GROUP);
    let server = sim.serve("127.0.0.1:0").unwrap();
    let dir = std::env::temp_dir().join(format!("grouper-sync-lost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let grouper_sync = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_clear()
            .envs([
                ("JUPYTERHUB_API_URL", hub.api_url.clone()),
                ("JUPYTERHUB_API_TOKEN", hub.sync_token.clone()),
                ("GROUPER_BASE_URL", server.base_url("v2_2_100")),
                ("GROUPER_USER", "sync".into()),
                ("GROUPER_PASSWORD", PW.into()),
                ("GROUPER_ID_PATH", GROUP.into()),
                (
                    "GROUPER_SYNC_STATE_DIR",
                    dir.join("state").display().to_string(),
                ),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null);
        (out.status.code(), report, stderr)
    };
    let (code, r, err) = grouper_sync(&["once"]);
    assert_eq!(code, Some(0), "{r}\n{err}");
    assert_eq!(sim.member_ids(GROUP).len(), 300);

    // an authenticator upgrade: every auth_state without a login id; 25 users active again
    for name in &names {
        set_state(name, json!({"canvas_user": {"name": "no login id here"}}));
    }
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string();
    for name in names.iter().step_by(12) {
        let (status, body) = hub.admin(
            "POST",
            &format!("/users/{name}/activity"),
            Some(&json!({ "last_activity": now })),
        );
        assert_eq!(status, 200, "{name} active: {body}");
    }
    let (code, r, err) = grouper_sync(&["once"]);
    let t = &r["targets"][0];
    assert_eq!(code, Some(3), "removals withheld: {r}\n{err}");
    assert_eq!(
        (t["removed"].as_u64(), t["to_remove"].as_u64()),
        (Some(0), Some(0)),
        "{t}"
    );
    assert!(t["subjects_lost"].as_u64().unwrap() >= 25, "{t}");
    assert!(t["withheld_plan"].is_string(), "approvable: {t}");
    assert!(err.contains("lost subjects"), "one warning says so: {err}");
    assert_eq!(sim.member_ids(GROUP).len(), 300, "nobody removed");

    // a full pass reads everyone again, and keeps everyone
    let (code, r, err) = grouper_sync(&["once", "--full"]);
    let t = &r["targets"][0];
    assert_eq!(code, Some(3), "{r}\n{err}");
    assert_eq!(
        (
            r["users_fetched"].as_u64(),
            t["removed"].as_u64(),
            t["subjects_lost"].as_u64()
        ),
        (Some(300), Some(0), Some(300)),
        "{t}"
    );
    assert_eq!(sim.member_ids(GROUP).len(), 300, "nobody removed");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21's end to end: one `grouper-sync once` on the real hub creates a course group from a
/// pattern, marks it for the configured provisioner and, with the Google simulator standing in for
/// the provisioned Google Group, brings its settings to the policy; the next pass changes nothing,
/// and settings changed behind its back are restored and reported. (A Google Group the
/// provisioner has not made yet: `tests/e2e/tests/google.rs`.)
#[test]
fn once_creates_a_course_group_marks_it_and_keeps_its_google_group_settings() {
    const FOLDER: &str = "edu:example:app:datahub:courses";
    const COURSE: &str = "edu:example:app:datahub:courses:course-data8";
    const EMAIL: &str = "course-data8@lists.example.edu";
    let hub = RealHub::start("host-google");
    assert_eq!(
        hub.admin("POST", "/users", Some(&json!({"usernames": ["kim"]})))
            .0,
        201
    );
    let state = json!({"auth_state": {"canvas_user": {"login_id": "810001"}}});
    assert_eq!(hub.admin("PATCH", "/users/kim", Some(&state)).0, 200);
    assert_eq!(hub.admin("POST", "/groups/course-data8", None).0, 201);
    assert_eq!(
        hub.admin(
            "POST",
            "/groups/course-data8/users",
            Some(&json!({"users": ["kim"]}))
        )
        .0,
        200
    );
    let sim = simulator_with_kim();
    sim.add_stem(FOLDER);
    let server = sim.serve("127.0.0.1:0").unwrap();
    let google = google_sim::GoogleSim::new();
    let google_server = google.serve("127.0.0.1:0").unwrap();
    let account = google.add_service_account("grouper-sync@project.iam.gserviceaccount.com");
    google.delegate(&account.client_email, google_sim::SETTINGS_SCOPE);
    google.add_admin("groups-admin@example.edu");

    let dir = std::env::temp_dir().join(format!("grouper-sync-google-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("service-account.json");
    std::fs::write(&key_file, &account.key_json).unwrap();
    let config = dir.join("grouper-sync.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = {state:?}
google_service_account_key_file = {key:?}
google_admin_subject = "groups-admin@example.edu"
google_api_url = "http://{google}"

[[targets]]
grouper_group = "{FOLDER}:{{0}}"
hub_group_pattern = "course-.*"
create_missing_groups = true
grouper_folder = "{FOLDER}"
provision_to = ["bConnected"]
google_group = "{{extension}}@lists.example.edu"
google_group_settings = {{whoCanPostMessage = "ALL_MANAGERS_CAN_POST", whoCanViewMembership = "ALL_MANAGERS_CAN_VIEW"}}
"#,
            state = dir.join("state").display().to_string(),
            key = key_file.display().to_string(),
            google = google_server.addr,
        ),
    )
    .unwrap();
    let once = || {
        let (code, stdout, stderr) = run_with_config(
            &config,
            &hub,
            &server.base_url("v2_2_100"),
            &["once"],
            &["BEGIN PRIVATE KEY", "ya29."],
        );
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let target = report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["group"] == COURSE)
            .cloned()
            .unwrap_or_else(|| panic!("no {COURSE} in {report}"));
        (report, target)
    };
    let patches = || {
        google
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    };

    // the simulated provisioner has the Google Group ready (with Google's defaults): one `once`
    // creates the group, adds its member, marks it and sets the two fields
    google.add_group(EMAIL);
    let (report, t) = once();
    assert_eq!(t["group_created"], true, "{t}");
    assert_eq!(t["outcome"], "converged", "{t}");
    assert_eq!(sim.member_ids(COURSE), ["810001"]);
    assert_eq!(t["provisioning"]["marked"], json!(["bConnected"]), "{t}");
    assert_eq!(
        sim.provisioning_marks(COURSE),
        [(Some("bConnected".into()), Some("bConnected".into()))]
    );
    assert_eq!(
        t["google"]["changed"],
        json!(["whoCanPostMessage", "whoCanViewMembership"]),
        "{t}"
    );
    assert_eq!(
        report["requests"]["google"], 3,
        "token, GET, PATCH: {report}"
    );
    let settings = google.settings(EMAIL).unwrap();
    assert_eq!(settings["whoCanPostMessage"], "ALL_MANAGERS_CAN_POST");
    assert_eq!(settings["whoCanViewMembership"], "ALL_MANAGERS_CAN_VIEW");
    assert_eq!(patches(), 1);

    // nothing differs: nothing is changed, in Google or in Grouper
    let (_, t) = once();
    assert_eq!(t["google"]["changed"], json!([]), "{t}");
    assert_eq!(
        (t["added"].clone(), t["removed"].clone()),
        (json!(0), json!(0)),
        "{t}"
    );
    assert!(
        t["provisioning"].is_null(),
        "an existing group is not marked again: {t}"
    );
    assert_eq!(sim.provisioning_marks(COURSE).len(), 1);
    assert_eq!(patches(), 1);

    // changed in the Groups UI: restored and reported
    google.set_setting(EMAIL, "whoCanPostMessage", "ANYONE_CAN_POST");
    let (_, t) = once();
    assert_eq!(t["google"]["changed"], json!(["whoCanPostMessage"]), "{t}");
    assert_eq!(
        google.settings(EMAIL).unwrap()["whoCanPostMessage"],
        "ALL_MANAGERS_CAN_POST"
    );
    assert_eq!(patches(), 2);
    std::fs::remove_dir_all(&dir).ok();
}
