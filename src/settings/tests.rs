//! The settings: every key, default, bound and error.

use super::*;
use crate::model::SubjectLookup;
use std::collections::HashMap;

fn base() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("jupyterhub_api_url", "http://127.0.0.1:8081/hub/api/"),
        ("jupyterhub_api_token", "tok-secret"),
        (
            "grouper_base_url",
            "https://calgroups.example.edu/gws/servicesRest/json/v2_2_100",
        ),
        ("grouper_user", "svc"),
        ("grouper_password", "pw-secret"),
        ("grouper_id_path", "edu:berkeley:app:datahub:datahub-users"),
    ])
}

fn parse_map(m: &HashMap<&'static str, &'static str>) -> Result<Settings, ConfigError> {
    parse(|k| Ok(m.get(k).map(|v| v.to_string())))
}

#[test]
fn the_environments_group_and_an_agreeing_targets_entry_are_one_target() {
    // as the hub's service environment gives GROUPER_ID_PATH (here with mode additive) and
    // the config file a [[targets]] table for the same group
    let mut m = base();
    m.insert("mode", "additive");
    let groups = |m: &HashMap<&'static str, &'static str>| -> Vec<String> {
        parse_map(m)
            .unwrap()
            .targets
            .iter()
            .map(|t| t.group_path.clone())
            .collect()
    };
    m.insert(
        "targets",
        r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users"},
            {"grouper_group": "edu:x:staff", "hub_group": "staff"}]"#,
    );
    assert_eq!(
        groups(&m),
        ["edu:berkeley:app:datahub:datahub-users", "edu:x:staff"]
    );
    m.insert(
        "targets",
        r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users", "mode": "additive", "max_removals": 50}]"#,
    );
    assert_eq!(groups(&m).len(), 1, "the same values agree");
    // disagreeing: the error names the keys that differ
    m.insert(
        "targets",
        r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users", "mode": "mirror", "max_removals": 5, "hub_group": "staff"}]"#,
    );
    let e = parse_map(&m).unwrap_err().message;
    assert!(
        e.contains("named by grouper_id_path (GROUPER_ID_PATH) and by targets[0]")
            && e.contains("differ in hub_group, mode, max_removals;"),
        "{e}"
    );
    // two entries of the targets list naming one group stay an error
    m.insert(
        "targets",
        r#"[{"grouper_group": "edu:x:a"}, {"grouper_group": "edu:x:a"}]"#,
    );
    assert!(parse_map(&m)
        .unwrap_err()
        .message
        .contains("target of two entries"));
}

#[test]
fn a_url_with_credentials_is_refused_without_printing_them() {
    for (key, url) in [
        (
            "jupyterhub_api_url",
            "http://svc:HUB-SECRET@127.0.0.1:8081/hub/api",
        ),
        (
            "grouper_base_url",
            "https://app-sync:GROUPER-SECRET@calgroups.example.edu/gws",
        ),
        (
            "grouper_base_url",
            "https://GROUPER-SECRET@calgroups.example.edu",
        ),
    ] {
        let mut m = base();
        m.insert(key, url);
        let e = parse_map(&m).unwrap_err();
        assert!(e.message.starts_with(key), "{}", e.message);
        assert!(!e.message.contains("SECRET"), "{}", e.message);
        assert!(e.message.contains("***@"), "{}", e.message);
    }
    assert_eq!(
        redact_userinfo("https://h/a@b"),
        "https://h/a@b",
        "an @ in the path is no credential"
    );
    assert_eq!(redact_userinfo("u:p@h"), "***@h");
}

#[test]
fn defaults_match_the_original_tool() {
    let s = parse_map(&base()).unwrap();
    assert_eq!(s.hub_api_url, "http://127.0.0.1:8081/hub/api");
    let t = &s.targets[0];
    assert_eq!(
        t.rules.subject_from,
        SubjectFrom::AuthState(vec![
            vec!["canvas_user".into(), "login_id".into()],
            vec!["oauth_user".into(), "login_id".into()]
        ])
    );
    assert!(!t.rules.include_admins);
    assert_eq!(t.rules.mode, Mode::Mirror);
    assert_eq!(t.rules.lookup, SubjectLookup::SubjectId);
    assert!(!s.dry_run);
    assert_eq!(s.grouper_content_type, "text/x-json; charset=UTF-8");
    assert!(!s.auth_state_mappings().is_empty());
}

#[test]
fn missing_required_key_names_key_and_env() {
    let mut m = base();
    m.remove("grouper_password");
    let e = parse_map(&m).unwrap_err().message;
    assert!(
        e.contains("grouper_password") && e.contains("GROUPER_PASSWORD"),
        "{e}"
    );
}

#[test]
fn invalid_values_name_the_key() {
    for (k, v) in [
        ("dry_run", "maybe"),
        ("mode", "replace"),
        ("max_removal_fraction", "1.5"),
        ("concurrency", "0"),
        ("api_page_size", "ten"),
        ("jupyterhub_api_url", "ftp://x"),
        ("grouper_id_path", "a/b"),
        ("subject_lookup", "guess"),
        ("log_level", "trace"),
        ("full_refresh_hours", "0"),
        ("activity_margin_seconds", "-5"),
        ("subject_from", "email"),
    ] {
        let mut m = base();
        m.insert(k, v);
        let e = parse_map(&m).unwrap_err().message;
        assert!(e.contains(k), "{k}: {e}");
    }
}

#[test]
fn identifier_lookup_needs_attribute() {
    let mut m = base();
    m.insert("subject_lookup", "subject_identifier");
    assert!(parse_map(&m)
        .unwrap_err()
        .message
        .contains("identifier_attribute"));
    m.insert("identifier_attribute", "uid");
    let s = parse_map(&m).unwrap();
    assert_eq!(
        s.targets[0].rules.lookup,
        SubjectLookup::SubjectIdentifier {
            attribute: "uid".into()
        }
    );
}

#[test]
fn username_template() {
    let mut m = base();
    m.insert("subject_from", "username");
    m.insert("username_template", "{name}@example.edu");
    let s = parse_map(&m).unwrap();
    assert_eq!(
        s.targets[0].rules.subject_from,
        SubjectFrom::Username {
            template: "{name}@example.edu".into()
        }
    );
    assert!(s.auth_state_mappings().is_empty());
    m.insert("username_template", "{user}@x");
    assert!(parse_map(&m)
        .unwrap_err()
        .message
        .contains("username_template"));
}

#[test]
fn user_info_with_auth_state_fallback_and_refresh_settings() {
    let s = parse_map(&base()).unwrap();
    assert_eq!(
        s.refresh,
        Refresh {
            full_refresh_seconds: 24 * 3600,
            activity_margin_seconds: 900
        }
    );
    let mut m = base();
    m.insert("subject_from", "user_info");
    m.insert("user_info_paths", "campus.uid, login_id");
    m.insert("full_refresh_hours", "6");
    m.insert("activity_margin_seconds", "0");
    let s = parse_map(&m).unwrap();
    let SubjectFrom::UserInfo { paths, fallback } = &s.targets[0].rules.subject_from else {
        panic!("{:?}", s.targets[0].rules.subject_from)
    };
    assert_eq!(paths_text(paths), "campus.uid,login_id");
    assert_eq!(paths_text(fallback), DEFAULT_AUTH_STATE_PATHS);
    assert!(s.needs_user_info() && !s.auth_state_mappings().is_empty());
    assert_eq!(s.auth_state_mappings(), [fallback]);
    assert_eq!(s.refresh.full_refresh_seconds, 6 * 3600);
    assert_eq!(s.refresh.activity_margin_seconds, 0);
    let mut m = base();
    m.insert("user_info_paths", "login_id");
    assert!(parse_map(&m)
        .unwrap_err()
        .message
        .contains("subject_from=user_info"));
    m.insert("subject_from", "user_info");
    m.insert("user_info_paths", "a..b");
    assert!(parse_map(&m)
        .unwrap_err()
        .message
        .contains("user_info_paths"));
}

#[test]
fn unknown_keys_and_env_are_named() {
    let e = check_known_keys(["grouper_user", "dryrun"])
        .unwrap_err()
        .message;
    assert!(e.contains("dryrun") && !e.contains("grouper_user"));
    assert!(check_known_keys(KEYS.iter().map(|k| k.name)).is_ok());
    let e = check_known_env(["PATH", "GROUPER_SYNC_DRYRUN", "GROUPER_SYNC_DRY_RUN"])
        .unwrap_err()
        .message;
    assert!(e.contains("GROUPER_SYNC_DRYRUN") && !e.contains("GROUPER_SYNC_DRY_RUN,"));
}

#[test]
fn secrets_do_not_debug_print() {
    let s = parse_map(&base()).unwrap();
    let dump = format!("{s:?}");
    assert!(
        !dump.contains("tok-secret") && !dump.contains("pw-secret"),
        "{dump}"
    );
}

#[test]
fn one_reading_of_booleans_and_authorities() {
    for t in ["true", "TRUE", " yes", "On", "1"] {
        assert_eq!(parse_bool(t), Some(true), "{t}");
    }
    for f in ["false", "False", "no", "OFF", "0"] {
        assert_eq!(parse_bool(f), Some(false), "{f}");
    }
    assert_eq!(parse_bool("maybe"), None);
    for (url, authority) in [
        (
            "https://CalGroups.Berkeley.edu/gws",
            Some("calgroups.berkeley.edu:443"),
        ),
        ("http://127.0.0.1:8081/hub/api", Some("127.0.0.1:8081")),
        ("http://[::1]:9/x", Some("[::1]:9")),
        ("http://[::1]/x", Some("[::1]:80")),
        ("http://h:0/", None),
        ("http://h:99999/", None),
        ("http://user:pw@h/", None),
        ("ftp://h/", None),
        ("http:///x", None),
    ] {
        assert_eq!(
            crate::model::HttpUrl::parse(url)
                .ok()
                .map(|u| u.authority())
                .as_deref(),
            authority,
            "{url}"
        );
    }
    assert_eq!(env_name("dry_run"), Some("GROUPER_SYNC_DRY_RUN"));
    assert_eq!(env_name("nope"), None);
}

#[test]
fn targets_add_groups_with_the_flat_settings_as_defaults() {
    let mut m = base();
    m.insert("max_removals", "7");
    m.insert(
        "targets",
        r#"[{"grouper_group": "edu:x:course-101", "hub_group": "course-101"},
            {"grouper_group": "edu:x:gpu", "hub_group": "gpu", "mode": "additive",
             "max_removals": 2, "protected_members": ["100", "200"], "include_admins": true}]"#,
    );
    let s = parse_map(&m).unwrap();
    let groups: Vec<(&str, Option<&str>)> = s
        .targets
        .iter()
        .map(|t| (t.group_path.as_str(), t.hub_group()))
        .collect();
    assert_eq!(
        groups,
        [
            ("edu:berkeley:app:datahub:datahub-users", None),
            ("edu:x:course-101", Some("course-101")),
            ("edu:x:gpu", Some("gpu"))
        ]
    );
    assert_eq!(
        s.targets[1].rules.limits.max_removals, 7,
        "the flat value is the default"
    );
    assert_eq!(s.targets[1].rules.mode, Mode::Mirror);
    let gpu = &s.targets[2];
    assert_eq!(
        (
            gpu.rules.mode,
            gpu.rules.limits.max_removals,
            gpu.rules.include_admins
        ),
        (Mode::Additive, 2, true)
    );
    assert_eq!(gpu.rules.protected.len(), 2);
    assert!(s.needs_groups());
    // without the flat group, the list alone
    m.remove("grouper_id_path");
    assert_eq!(parse_map(&m).unwrap().targets.len(), 2);
    assert!(!parse_map(&base()).unwrap().needs_groups());
}

#[test]
fn to_hub_targets_and_filters() {
    let mut m = base();
    m.insert("active_within_days", "30");
    m.insert(
        "targets",
        r#"[{"grouper_group": "edu:x:gpu-quota", "direction": "to_hub", "hub_group": "gpu",
             "create_missing_groups": true},
            {"grouper_group": "edu:x:active", "only_active_servers": true,
             "exclude_users_pattern": "test-.*", "active_within_days": 7,
             "create_missing_groups": true, "grouper_folder": "edu:x"}]"#,
    );
    let s = parse_map(&m).unwrap();
    let (all, gpu, active) = (&s.targets[0], &s.targets[1], &s.targets[2]);
    assert_eq!(all.rules.filters.active_within_days, Some(30));
    assert_eq!(gpu.direction(), Direction::ToHub);
    assert_eq!(gpu.hub_group(), Some("gpu"));
    assert!(
        gpu.rules.include_admins,
        "to_hub: admins are hub users like any other"
    );
    assert!(
        gpu.rules.create_missing,
        "a missing hub group needs no folder"
    );
    assert!(!all.rules.include_admins);
    assert_eq!(
        gpu.rules.filters.active_within_days,
        Some(30),
        "flat filters are defaults"
    );
    assert_eq!(active.rules.filters.active_within_days, Some(7));
    assert!(active.rules.filters.only_active_servers);
    assert!(active
        .rules
        .filters
        .exclude_users
        .as_ref()
        .unwrap()
        .matches("test-1"));
    assert!(!active
        .rules
        .filters
        .exclude_users
        .as_ref()
        .unwrap()
        .matches("a-test-1"));
    assert!(s.needs_servers() && s.needs_groups());
    assert!(in_folder("edu:x:active", "edu:x") && !in_folder("edu:xy:a", "edu:x"));
}

#[test]
fn bad_targets_name_the_entry_and_the_key() {
    for (targets, says) in [
        ("not json", "JSON list"),
        (r#"{"grouper_group": "a:b"}"#, "JSON list"),
        (r#"["a:b"]"#, "targets[0] must be an object"),
        (
            r#"[{"grouper_group": "a:b", "hub_grup": "x"}]"#,
            "targets[0] (a:b): unknown key \"hub_grup\"",
        ),
        (
            r#"[{"hub_group": "x"}]"#,
            "targets[0] (no grouper_group): missing required setting grouper_group",
        ),
        (
            r#"[{"grouper_group": "a:b"}, {"grouper_group": "c:d", "mode": "replace"}]"#,
            "targets[1] (c:d): mode must be one of",
        ),
        (
            r#"[{"grouper_group": "a:b", "direction": "to_hub"}]"#,
            "targets[0] (a:b): direction to_hub needs hub_group",
        ),
        (
            r#"[{"grouper_group": "a:{1}", "direction": "to_hub", "hub_group_pattern": "(x)"}]"#,
            "give hub_group, not hub_group_pattern",
        ),
        (
            r#"[{"grouper_group": "a:b", "direction": "to_hub", "hub_group": "g"},
               {"grouper_group": "c:d", "direction": "to_hub", "hub_group": "g"}]"#,
            "hub group g is kept by two to_hub entries",
        ),
        (
            r#"[{"grouper_group": "a:b", "direction": "both"}]"#,
            "direction must be one of",
        ),
        (
            r#"[{"grouper_group": "a:b", "exclude_users_pattern": "(x"}]"#,
            "targets[0] (a:b): exclude_users_pattern \"(x\" is not a valid regex",
        ),
        (
            r#"[{"grouper_group": "a:b", "active_within_days": 0}]"#,
            "targets[0] (a:b): active_within_days",
        ),
        (
            r#"[{"grouper_group": "a:b", "create_missing_groups": true}]"#,
            "a:b: create_missing_groups needs grouper_folder",
        ),
        (
            r#"[{"grouper_group": "a:b", "create_missing_groups": true, "grouper_folder": "c"}]"#,
            "creates groups only inside grouper_folder c",
        ),
        (
            r#"[{"grouper_group": "a::b"}]"#,
            "targets[0] (a::b): grouper_group must be a Grouper group name",
        ),
        (
            r#"[{"grouper_group": "a:b", "provision_to": "google provisioner"}]"#,
            "targets[0] (a:b): provision_to: \"google provisioner\" is not a provisioner id",
        ),
        (
            r#"[{"grouper_group": "a:b", "ensure_provisioning": true}]"#,
            "ensure_provisioning needs provision_to",
        ),
        (
            r#"[{"grouper_group": "a:b", "direction": "to_hub", "hub_group": "x", "provision_to": "AD"}]"#,
            "a to_hub target only reads its group",
        ),
        (
            r#"[{"grouper_group": "edu:berkeley:app:datahub:datahub-users", "hub_group": "x"}]"#,
            "by targets[0], which differ in hub_group;",
        ),
        (
            r#"[{"grouper_group": "a:{1}", "hub_group_pattern": "course-(.+"}]"#,
            "not a valid regex",
        ),
        (
            r#"[{"grouper_group": "a:{2}", "hub_group_pattern": "course-(.+)"}]"#,
            "uses {2}, but hub_group_pattern \"course-(.+)\" has only 1 capture group",
        ),
        (r#"[{"grouper_group": "a:{1}"}]"#, "no hub_group_pattern"),
        (
            r#"[{"grouper_group": "a:{1}", "hub_group": "x", "hub_group_pattern": "(x)"}]"#,
            "not both",
        ),
    ] {
        let mut m = base();
        m.insert("targets", targets);
        let e = parse_map(&m).unwrap_err().message;
        assert!(e.contains(says), "{targets}: {e}");
    }
    let mut m = base();
    m.remove("grouper_id_path");
    assert!(parse_map(&m)
        .unwrap_err()
        .message
        .contains("grouper_id_path"));
}

#[test]
fn protected_members_list() {
    let mut m = base();
    m.insert("protected_members", " 100, 200 ,,300");
    let s = parse_map(&m).unwrap();
    assert_eq!(s.targets[0].rules.protected.len(), 3);
}

#[test]
fn provisioners_are_per_target_with_the_flat_setting_as_default_and_to_hub_left_out() {
    let mut m = base();
    m.insert("provision_to", "bConnected, LDAPBerkeleyIMO");
    m.insert(
        "targets",
        r#"[{"grouper_group": "a:b", "ensure_provisioning": true},
            {"grouper_group": "a:c", "provision_to": ["AD"]},
            {"grouper_group": "a:d", "direction": "to_hub", "hub_group": "d"}]"#,
    );
    let s = parse_map(&m).unwrap();
    let marks: Vec<(String, Vec<String>, bool)> = s
        .targets
        .iter()
        .map(|t| {
            let p = &t.rules.provisioning;
            (t.group_path.clone(), p.provision_to.clone(), p.ensure)
        })
        .collect();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        marks,
        [
            (
                "edu:berkeley:app:datahub:datahub-users".to_string(),
                ids(&["bConnected", "LDAPBerkeleyIMO"]),
                false
            ),
            ("a:b".into(), ids(&["bConnected", "LDAPBerkeleyIMO"]), true),
            ("a:c".into(), ids(&["AD"]), false),
            ("a:d".into(), vec![], false),
        ]
    );
}
