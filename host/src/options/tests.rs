use super::*;

/// The settings of a command line over a fake environment and fake files.
fn run(a: &[&str], env: &[(&str, &str)], files: &[(&str, &str)]) -> Result<Options> {
    crate::cli::tests::run(a, env, files).map(|(_, options)| options)
}

const ENV: &[(&str, &str)] = &[
    ("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
    ("JUPYTERHUB_API_TOKEN", "envtoken"),
    (
        "GROUPER_BASE_URL",
        "https://calgroups.example.edu/gws/servicesRest/json/v2_2_100",
    ),
    ("GROUPER_USER", "envuser"),
    ("GROUPER_ID_PATH", "edu:env:group"),
];

#[test]
fn precedence_is_flags_then_file_then_env() {
    let file = (
        "/etc/gs.toml",
        "grouper_user = \"fileuser\"\ngrouper_id_path = \"edu:file:group\"\nsync_every = 600\n",
    );
    let o = run(
        &[
            "--config",
            "/etc/gs.toml",
            "--grouper_id_path",
            "edu:flag:group",
        ],
        ENV,
        &[file],
    )
    .unwrap();
    assert_eq!(o.component_config["grouper_id_path"], "edu:flag:group");
    assert_eq!(o.component_config["grouper_user"], "fileuser");
    assert_eq!(
        o.component_config["jupyterhub_api_url"],
        "http://127.0.0.1:8081/hub/api"
    );
    assert_eq!(o.sync_every, Duration::from_secs(600));
    let o = run(
        &["--GrouperSync.sync_every=120", "--config=/etc/gs.toml"],
        ENV,
        &[file],
    )
    .unwrap();
    assert_eq!(o.sync_every, Duration::from_secs(120));
}

#[test]
fn original_flags_work() {
    let o = run(
        &[
            "--url",
            "http://hub:8081/hub/api",
            "--api-page-size",
            "50",
            "--concurrency",
            "8",
            "--grouper_user",
            "u",
        ],
        ENV,
        &[],
    )
    .unwrap();
    assert_eq!(
        o.component_config["jupyterhub_api_url"],
        "http://hub:8081/hub/api"
    );
    assert_eq!(o.component_config["api_page_size"], "50");
    assert_eq!(o.component_config["concurrency"], "8");
    assert_eq!(
        o.allowed_hosts,
        ["http://hub:8081", "https://calgroups.example.edu:443"]
    );
    assert_eq!(
        run(&["once", "--dry-run"], ENV, &[])
            .unwrap()
            .component_config["dry_run"],
        "true"
    );
}

#[test]
fn approvals_expire_after_a_day_or_as_configured() {
    let o = run(&["approve", "0123456789ABCDEF"], ENV, &[]).unwrap();
    assert_eq!(o.approval_max_age, Duration::from_secs(24 * 3600));
    let file = ("/c.toml", "approval_max_age_hours = 2\n");
    let o = run(&["--config", "/c.toml", "once"], ENV, &[file]).unwrap();
    assert_eq!(o.approval_max_age, Duration::from_secs(7200));
}

#[test]
fn state_dir_from_flag_file_or_env() {
    let o = run(&["once"], ENV, &[]).unwrap();
    assert_eq!(o.state_dir, PathBuf::from("grouper-sync-state"));
    assert!(
        !o.component_config.contains_key("state_dir"),
        "a host setting"
    );
    let env = [ENV, &[("GROUPER_SYNC_STATE_DIR", "/var/lib/gs")]].concat();
    assert_eq!(
        run(&[], &env, &[]).unwrap().state_dir,
        PathBuf::from("/var/lib/gs")
    );
    let file = ("/c.toml", "state_dir = \"/srv/state\"\n");
    let o = run(&["--config", "/c.toml", "once", "--full"], &env, &[file]).unwrap();
    assert_eq!(
        o.state_dir,
        PathBuf::from("/srv/state"),
        "the file beats the environment"
    );
    let o = run(&["--state-dir", "/x", "--config", "/c.toml"], &env, &[file]).unwrap();
    assert_eq!(o.state_dir, PathBuf::from("/x"), "a flag beats both");
    assert!(run(&["--state_dir", " "], ENV, &[]).is_err());
}

#[test]
fn dry_run_is_read_like_the_component_reads_it() {
    for (value, expected) in [("TRUE", true), ("yes", true), ("On", true), ("0", false)] {
        let env = [ENV, &[("GROUPER_SYNC_DRY_RUN", value)]].concat();
        let o = run(&[], &env, &[]).unwrap();
        assert_eq!(o.dry_run, expected, "{value}");
        assert_eq!(
            jupyterhub_grouper_sync::settings::parse_bool(&o.component_config["dry_run"]),
            Some(expected)
        );
    }
    let env = [ENV, &[("GROUPER_SYNC_DRY_RUN", "maybe")]].concat();
    assert!(run(&[], &env, &[])
        .unwrap_err()
        .to_string()
        .contains("dry_run"));
}

#[test]
fn the_components_loop_interval_is_the_hosts_schedule() {
    let env = [ENV, &[("GROUPER_SYNC_EVERY_SECONDS", "600")]].concat();
    let o = run(&[], &env, &[]).unwrap();
    assert_eq!(o.sync_every, Duration::from_secs(600));
    assert!(!o.component_config.contains_key("sync_every_seconds"));
    let o = run(&["--sync_every_seconds", "120"], ENV, &[]).unwrap();
    assert_eq!(o.sync_every, Duration::from_secs(120));
    let file = ("/c.toml", "sync_every_seconds = 900\n");
    let o = run(&["--config", "/c.toml"], ENV, &[file]).unwrap();
    assert_eq!(o.sync_every, Duration::from_secs(900));
    assert!(!o.component_config.contains_key("sync_every_seconds"));
}

#[test]
fn passwords_on_the_command_line_are_refused() {
    for flag in [
        "--grouper_pass=x",
        "--grouper_password",
        "--GrouperSync.grouper_pass=x",
    ] {
        let e = run(&[flag, "x"], ENV, &[]).unwrap_err().to_string();
        assert!(
            e.contains("command line") && e.contains("GROUPER_PASSWORD"),
            "{e}"
        );
    }
}

#[test]
fn secrets_from_files() {
    let env = [
        ENV,
        &[
            ("GROUPER_PASSWORD_FILE", "/run/secrets/pw"),
            ("JUPYTERHUB_API_TOKEN_FILE", "/run/secrets/tok"),
        ],
    ]
    .concat();
    let o = run(
        &[],
        &env,
        &[
            ("/run/secrets/pw", "s3cret\n"),
            ("/run/secrets/tok", "filetoken\n"),
        ],
    )
    .unwrap();
    assert_eq!(o.component_config["grouper_password"], "s3cret");
    assert_eq!(o.component_config["jupyterhub_api_token"], "filetoken");
    assert!(!format!("{o:?}").contains("s3cret"));
    let e = run(&[], &[("GROUPER_PASSWORD_FILE", "/missing")], &[]).unwrap_err();
    assert!(format!("{e:#}").contains("/missing"));
    // the same through the config file, and the status page's token
    let file = "grouper_password_file = \"/run/secrets/pw\"\njupyterhub_api_token_file = \"/run/secrets/tok\"\nui_token_file = \"/run/secrets/ui\"\n";
    let o = run(
        &["--config", "/c.toml"],
        &ENV[..2],
        &[
            ("/c.toml", file),
            ("/run/secrets/pw", "filepw\n"),
            ("/run/secrets/tok", "filetoken2\n"),
            ("/run/secrets/ui", "uitoken\n"),
        ],
    )
    .unwrap();
    assert_eq!(o.component_config["grouper_password"], "filepw");
    assert_eq!(o.component_config["jupyterhub_api_token"], "filetoken2");
    assert_eq!(o.page.ui_token.as_deref(), Some("uitoken"));
    assert!(!o.component_config.contains_key("grouper_password_file"));
}

#[test]
fn unknown_and_invalid_options_are_named() {
    assert!(run(&["--bogus", "1"], ENV, &[])
        .unwrap_err()
        .to_string()
        .contains("--bogus"));
    let e = run(&["--sync-every", "0"], ENV, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sync_every must be a whole number of seconds from 1 to 2678400, not \"0\""),
        "{e}"
    );
    let e = run(&["--memory-limit-mb", "8"], ENV, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("memory_limit_mb must be a whole number of MiB from 16"),
        "{e}"
    );
    let e = run(&["--enabled", "perhaps"], ENV, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("enabled must be true or false"), "{e}");
    assert!(run(&["--timezone", "Mars/Olympus"], ENV, &[])
        .unwrap_err()
        .to_string()
        .contains("timezone"));
    let e = run(
        &["--config", "/c.toml"],
        ENV,
        &[("/c.toml", "dryrun = true\n")],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("dryrun"), "{e}");
    assert!(run(&["stray"], ENV, &[]).is_err());
}

#[test]
fn configuration_errors_name_the_key_and_position_never_a_secret() {
    const SECRET: &str = "S3CRET-do-not-print";
    let file = |text: &str| run(&["--config", "/c.toml"], ENV, &[("/c.toml", text)]);
    let cases: Vec<(&str, Result<Options>)> = vec![
        (
            "line 2, column",
            file(&format!(
                "grouper_user = \"u\"\ngrouper_password = \"{SECRET}\n"
            )),
        ),
        (
            "line 2, column 1",
            file(&format!(
                "grouper_password_file = \"/p\"\ngrouper_password_file = \"{SECRET}\"\n"
            )),
        ),
        ("line 1, column", file(&format!("{SECRET} oops\n"))),
        (
            "jupyterhub_api_url",
            run(
                &[],
                &[(
                    "JUPYTERHUB_API_URL",
                    &format!("http://svc:{SECRET}@hub:8081/hub/api"),
                )],
                &[],
            ),
        ),
        (
            "grouper_base_url",
            file(&format!(
                "grouper_base_url = \"https://app:{SECRET}@calgroups.example.edu/gws\"\n"
            )),
        ),
        ("position 2", run(&["check", SECRET], ENV, &[])),
        ("position 1", run(&[SECRET], ENV, &[])),
    ];
    for (names, result) in cases {
        let e = format!("{:#}", result.expect_err("an error"));
        assert!(e.contains(names), "{names}: {e}");
        assert!(!e.contains(SECRET), "{names}: {e}");
    }
}

#[test]
fn schedule_settings_from_file() {
    let file = ("/c.toml", "enabled = false\ntimezone = \"America/Los_Angeles\"\nallowed_dates = [\"2026-12-01\"]\nweekly_windows = [\"Mon-Fri 02:00-04:00\"]\nprotected_members = [\"a\", \"b\"]\n");
    let o = run(&["--config", "/c.toml"], ENV, &[file]).unwrap();
    assert!(!o.enabled);
    assert_eq!(o.windows.dates.len(), 1);
    assert_eq!(o.windows.weekly.len(), 1);
    assert_eq!(o.component_config["protected_members"], "a,b");
}

#[test]
fn target_tables_from_the_file_become_the_targets_list() {
    let file = (
        "/t.toml",
        "[[targets]]\ngrouper_group = \"edu:x:course-101\"\nhub_group = \"course-101\"\n\n\
         [[targets]]\ngrouper_group = \"edu:x:gpu\"\nhub_group = \"gpu\"\nmax_removals = 3\nprotected_members = [\"1\"]\n",
    );
    let o = run(&["--config", "/t.toml"], ENV, &[file]).unwrap();
    let targets: serde_json::Value = serde_json::from_str(&o.component_config["targets"]).unwrap();
    assert_eq!(
        targets,
        serde_json::json!([
            {"grouper_group": "edu:x:course-101", "hub_group": "course-101"},
            {"grouper_group": "edu:x:gpu", "hub_group": "gpu", "max_removals": 3, "protected_members": ["1"]}
        ])
    );
}

#[test]
fn help_lists_every_key() {
    let h = crate::cli::help();
    for key in KEYS {
        assert!(h.contains(key.name) && h.contains(key.env), "{}", key.name);
    }
    for key in HOST_KEYS {
        let name = key.name;
        assert!(
            h.contains(&name.replace('_', "-")) || h.contains(name),
            "{name}"
        );
        if let Some(d) = key.default {
            assert!(h.contains(&format!("(default {d})")), "{name}");
        }
    }
}

/// docs/configuration.md's host table shows each host key's default as the schema has it.
#[test]
fn the_configuration_reference_shows_every_host_default() {
    let doc = include_str!("../../../docs/configuration.md");
    for key in HOST_KEYS {
        let Some(default) = key.default else { continue };
        let (flag, name) = (
            format!("`--{}`", key.name.replace('_', "-")),
            format!("`{}`", key.name),
        );
        let row = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .find(|l| {
                let first = l.split(" | ").next().unwrap_or("");
                first.contains(&flag) || first.contains(&name)
            })
            .unwrap_or_else(|| panic!("no row for {}", key.name));
        let shown = row.split(" | ").nth(1).unwrap_or("");
        assert!(
            shown.starts_with(&format!("`{default}`")),
            "{}: the schema's default is {default}, the reference says {shown}",
            key.name
        );
    }
}

#[test]
fn the_google_origins_are_allowed_only_with_a_service_account_key() {
    let hub_and_grouper = ["http://127.0.0.1:8081", "https://calgroups.example.edu:443"];
    let o = run(&[], ENV, &[]).unwrap();
    assert_eq!(o.allowed_hosts, hub_and_grouper);
    // a google_group without a key allows nothing more (the component refuses the settings)
    let file = "google_group = \"{extension}@lists.example.edu\"\n";
    let o = run(&["--config", "/c.toml"], ENV, &[("/c.toml", file)]).unwrap();
    assert_eq!(o.allowed_hosts, hub_and_grouper);
    // the key (from its file): the API's origin and the key's token_uri's
    let key = r#"{"type": "service_account", "private_key": "KEY-SECRET-1f3a", "token_uri": "https://oauth2.example.com/token"}"#;
    let env = [
        ENV,
        &[(
            "GROUPER_SYNC_GOOGLE_SERVICE_ACCOUNT_KEY_FILE",
            "/run/secrets/google.json",
        )],
    ]
    .concat();
    let o = run(&[], &env, &[("/run/secrets/google.json", key)]).unwrap();
    assert_eq!(
        o.allowed_hosts,
        [
            hub_and_grouper[0],
            hub_and_grouper[1],
            "https://www.googleapis.com:443",
            "https://oauth2.example.com:443"
        ]
    );
    assert!(
        !format!("{o:?}").contains("KEY-SECRET"),
        "the key is a secret"
    );
}
