//! End to end: a real JupyterHub 6.1.1 starts `grouper-sync` as a hub-managed service, configured
//! exactly as an admin would (`c.JupyterHub.services` with `command` and `environment`, and a role
//! with list:users, read:users, admin:auth_state). The first pass brings the simulator's group to
//! the hub's users, a user added later appears after the next pass, and stopping the hub stops the
//! service cleanly. The command is the pip-installed one when `GROUPER_SYNC_BIN` names it (CI sets
//! it after `scripts/wheel.sh`), and that command's `--help` and `check` are exercised too.

use grouper_sync_testkit::real_hub;

use grouper_sync_testkit::wait as support;

use grouper_sim::{Config, Simulator, Subject};
use real_hub::RealHub;
use serde_json::json;
use std::time::{Duration, Instant};
use support::wait_for;

const GROUP: &str = "edu:example:app:datahub:datahub-users";

/// The `grouper-sync` under test: the installed command in CI (required there), else this build's.
fn grouper_sync_command() -> String {
    match std::env::var("GROUPER_SYNC_BIN") {
        Ok(bin) if !bin.is_empty() => {
            assert!(
                !bin.contains("/target/debug/") && !bin.contains("/target/release/"),
                "GROUPER_SYNC_BIN must be an installed command, not a build output: {bin}"
            );
            bin
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must run the pip-installed command: set GROUPER_SYNC_BIN after scripts/wheel.sh")
        }
        _ => {
            eprintln!("GROUPER_SYNC_BIN is not set; testing this build's binary instead of an installed one (run scripts/wheel.sh to test the wheel)");
            env!("CARGO_BIN_EXE_grouper-sync").to_string()
        }
    }
}

#[test]
fn the_hub_runs_grouper_sync_as_a_managed_service() {
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: "managed-pw-3c9a".into(),
        ..Config::default()
    });
    for id in ["700001", "700002", "700004", "stale7"] {
        sim.add_subject(Subject::new("ldap", id));
    }
    sim.add_group(GROUP);
    sim.add_member(GROUP, "ldap", "stale7");
    let server = sim.serve("127.0.0.1:0").unwrap();
    let crypt_key = "7c2f0a9e4b1d8c3f6a5e2d9b0c7f4a1e8d3b6c9f2a5e0d7b4c1f8a3e6d9b2c5f";

    let command = grouper_sync_command();
    let help = std::process::Command::new(&command)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("grouper_id_path"));

    // Seed the hub first (users exist before the service's first pass), then restart it with the service.
    {
        let hub = RealHub::start_with("managed", &[("JUPYTERHUB_CRYPT_KEY", crypt_key)]);
        assert_eq!(
            hub.admin(
                "POST",
                "/users",
                Some(&json!({"usernames": ["ana", "ben", "cy"]}))
            )
            .0,
            201
        );
        assert_eq!(
            hub.admin(
                "PATCH",
                "/users/ana",
                Some(&json!({"auth_state": {"canvas_user": {"login_id": "700001"}}}))
            )
            .0,
            200
        );
        assert_eq!(
            hub.admin(
                "PATCH",
                "/users/ben",
                Some(&json!({"auth_state": {"oauth_user": {"login_id": "700002"}}}))
            )
            .0,
            200
        );
        let check = std::process::Command::new(&command)
            .args(["--log_level", "debug", "check"])
            .env_clear()
            .envs([
                ("JUPYTERHUB_API_URL", hub.api_url.as_str()),
                ("JUPYTERHUB_API_TOKEN", hub.sync_token.as_str()),
                ("GROUPER_BASE_URL", &server.base_url("v2_2_100")),
                ("GROUPER_USER", "sync"),
                ("GROUPER_PASSWORD", "managed-pw-3c9a"),
                ("GROUPER_ID_PATH", GROUP),
            ])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "check: {out}\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(out.contains("check passed; nothing was written"), "{out}");
        assert_eq!(sim.member_ids(GROUP), ["stale7"], "check wrote nothing");
        if std::env::var("GROUPER_SYNC_BIN").is_ok_and(|b| !b.is_empty()) {
            // the wheel's component, compiled when the wheel was built, not at this start
            let log = String::from_utf8_lossy(&check.stderr);
            assert!(
                log.contains("component loaded, compiled ahead of time")
                    && log.contains("/share/grouper-sync/jupyterhub_grouper_sync-"),
                "{log}"
            );
        }
    }
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let service = json!({
        "command": [command, "--GrouperSync.sync_every=10", "--metrics-addr", metrics],
        "environment": {
            "GROUPER_BASE_URL": server.base_url("v2_2_100"),
            "GROUPER_USER": "sync",
            "GROUPER_PASSWORD": "managed-pw-3c9a",
            "GROUPER_ID_PATH": GROUP,
        },
    });
    let hub = RealHub::start_with(
        "managed",
        &[
            ("JUPYTERHUB_CRYPT_KEY", crypt_key),
            ("JHUB_KEEP_DB", "1"),
            ("JHUB_SYNC_SERVICE", &service.to_string()),
        ],
    );
    wait_for("the service's first pass", Duration::from_secs(300), || {
        sim.member_ids(GROUP) == ["700001", "700002"]
    });

    assert_eq!(
        hub.admin("POST", "/users", Some(&json!({"usernames": ["dee"]})))
            .0,
        201
    );
    assert_eq!(
        hub.admin(
            "PATCH",
            "/users/dee",
            Some(&json!({"auth_state": {"canvas_user": {"login_id": "700004"}}}))
        )
        .0,
        200
    );
    wait_for("the next pass", Duration::from_secs(300), || {
        sim.member_ids(GROUP) == ["700001", "700002", "700004"]
    });
    assert!(
        std::net::TcpStream::connect(&metrics).is_ok(),
        "the service serves metrics"
    );

    let log = std::fs::read_to_string(hub.dir.join("jupyterhub.log")).unwrap();
    assert!(
        log.contains("Starting service 'grouper-sync-managed'"),
        "the hub started the service"
    );
    assert!(
        !log.contains("managed-pw-3c9a"),
        "the password is not in the hub's log"
    );

    let stopping = Instant::now();
    drop(hub);
    assert!(
        stopping.elapsed() < Duration::from_secs(180),
        "the hub stopped promptly: {:?}",
        stopping.elapsed()
    );
    wait_for("the service to exit", Duration::from_secs(300), || {
        std::net::TcpStream::connect(&metrics).is_err()
    });
    let log = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        format!(
            "../target/jhub-managed-{}/jupyterhub.log",
            std::process::id()
        ),
    ))
    .unwrap();
    assert!(
        !log.contains("Service grouper-sync-managed exited with status"),
        "it never crashed or exited on its own:\n{log}"
    );
}
