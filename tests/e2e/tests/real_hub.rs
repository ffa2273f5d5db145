//! End to end against a real JupyterHub 6.x (pip-installed, started on 127.0.0.1 by
//! scripts/jupyterhub/hub.sh) and the Grouper simulator, with the component run by wasmtime.

use grouper_sync_e2e as common;

use common::world::{canvas, ops};
use common::*;
use grouper_sim::tls::{TestCa, TlsFront, Validity};
use grouper_sim::{Config, Operation, Simulator, Subject};
use jupyterhub_grouper_sync::wire::http::encode_segment;
use serde_json::json;

const GROUP: &str = "edu:example:app:datahub:datahub-users";

/// The sync's settings against this hub (its sync token) and this simulator.
fn sync_settings(hub: &RealHub, server: &grouper_sim::ServerHandle) -> Vec<(String, String)> {
    config(&[
        ("jupyterhub_api_url", &hub.api_url),
        ("jupyterhub_api_token", &hub.sync_token),
        ("grouper_base_url", &server.base_url("v2_2_100")),
        ("grouper_user", "sync"),
        ("grouper_password", "grouper-pw"),
        ("grouper_id_path", GROUP),
    ])
}

/// The simulator with the credentials of [`sync_settings`].
fn simulator() -> std::sync::Arc<Simulator> {
    Simulator::new(Config {
        user: "sync".into(),
        password: "grouper-pw".into(),
        ..Config::default()
    })
}

#[test]
fn real_hub_pass_gives_exactly_the_expected_membership() {
    let hub = RealHub::start("e2e");
    // 230 plain users (more than one 200-user page), plus the odd cases.
    let mut names: Vec<String> = (0..230).map(|i| format!("user{i:03}")).collect();
    names.extend(
        [
            "oauthonly",
            "noauth",
            "emptyauth",
            "numeric",
            "a#b?c",
            "boss",
        ]
        .map(String::from),
    );
    for chunk in names.chunks(100) {
        let (status, _) = hub.admin("POST", "/users", Some(&json!({ "usernames": chunk })));
        assert_eq!(status, 201, "creating users");
    }
    let (status, _) = hub.admin("PATCH", "/users/boss", Some(&json!({"admin": true})));
    assert_eq!(status, 200);
    let set_state = |name: &str, state: serde_json::Value| {
        let (status, body) = hub.admin(
            "PATCH",
            &format!("/users/{}", encode_segment(name)),
            Some(&json!({ "auth_state": state })),
        );
        assert_eq!(status, 200, "auth_state for {name}: {body}");
    };
    for i in 0..230 {
        set_state(
            &format!("user{i:03}"),
            json!({"canvas_user": {"login_id": format!("3{i:05}"), "name": "x"}, "access_token": "canvas-token-SECRET"}),
        );
    }
    set_state("oauthonly", json!({"oauth_user": {"login_id": "400001"}}));
    set_state("emptyauth", json!({}));
    set_state("numeric", json!({"canvas_user": {"login_id": 12345}}));
    set_state("a#b?c", json!({"canvas_user": {"login_id": "400002"}}));
    set_state("boss", json!({"canvas_user": {"login_id": "400003"}}));
    // "noauth" keeps auth_state null

    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: "grouper-pw".into(),
        server_version: "2.2.0".into(),
        ..Config::default()
    });
    let mut expected: Vec<String> = (0..230).map(|i| format!("3{i:05}")).collect();
    expected.extend(["400001", "400002"].map(String::from));
    for id in expected
        .iter()
        .chain(&["400003".to_string(), "stale9".to_string()])
    {
        sim.add_subject(Subject::new("ldap", id));
    }
    sim.add_group(GROUP);
    sim.add_member(GROUP, "ldap", "stale9");
    sim.add_member(GROUP, "ldap", "300007");
    let server = sim.serve("127.0.0.1:0").unwrap();

    let settings = with(
        sync_settings(&hub, &server),
        &[("grouper_page_size", "100"), ("grouper_batch_size", "50")],
    );
    let run = run_component(Entry::Typed, &settings, &[]);
    let (r, t) = (run.report(), run.target());
    assert_eq!(r["outcome"], "converged", "{r}");
    // the hub's own "admin" user exists too: 236 created + admin
    assert_eq!(r["users_seen"], 237);
    assert_eq!(t["admins_skipped"], 2, "admin and boss");
    assert_eq!(t["users_unmapped"], 3, "noauth, emptyauth, numeric");
    assert_eq!(t["added"], 231);
    assert_eq!(t["removed"], 1);
    expected.sort();
    assert_eq!(sim.member_ids(GROUP), expected);
    assert!(
        r["requests"]["jupyterhub"].as_u64().unwrap() >= 2 + 234,
        "two list pages and one GET per non-admin user"
    );
    assert!(!run.stderr.contains("canvas-token-SECRET") && !run.stderr.contains(&hub.sync_token));

    // a second pass over the real hub changes nothing
    sim.clear_requests();
    let again = run_component(Entry::Typed, &settings, &[]);
    assert_eq!(again.report()["outcome"], "converged");
    assert_eq!(
        (
            again.target()["to_add"].as_u64(),
            again.target()["to_remove"].as_u64()
        ),
        (Some(0), Some(0))
    );

    // the same hub and Grouper behind TLS (an ingress with a certificate from a campus CA): a
    // full pass over HTTPS reads every record and agrees
    let ca = TestCa::new("Example Campus CA");
    let cert = ca.issue(&["localhost"], Validity::Current);
    let hub_addr = hub.api_url["http://".len()..hub.api_url.find("/hub").unwrap()]
        .parse()
        .unwrap();
    let (hub_front, grouper_front) = (
        TlsFront::start(&cert, hub_addr),
        TlsFront::start(&cert, server.addr),
    );
    let ca_file = hub.dir.join("campus-ca.pem");
    ca.write_cert(&ca_file);
    let limits = grouper_sync_host::sandbox::runner::Limits {
        tls: grouper_sync_host::sandbox::tls::client_config(Some(&ca_file)).unwrap(),
        ..open_limits()
    };
    let grouper_base = server.base_url("v2_2_100");
    let https = with(
        settings.clone(),
        &[
            (
                "jupyterhub_api_url",
                &format!("{}/hub/api", hub_front.url("localhost")),
            ),
            (
                "grouper_base_url",
                &grouper_base.replace(
                    &format!("http://{}", server.addr),
                    &grouper_front.url("localhost"),
                ),
            ),
        ],
    );
    let over_tls = run_limited(runner(), Entry::Typed, &https, &[], &limits);
    let r = over_tls.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(r["users_seen"], 237, "{r}");
    assert!(r["requests"]["jupyterhub"].as_u64().unwrap() >= 2 + 234);
    assert_eq!(
        (
            over_tls.target()["to_add"].as_u64(),
            over_tls.target()["to_remove"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(sim.member_ids(GROUP), expected);

    // a token without admin:auth_state fails the pass with the scope named, and removes nobody
    hub.admin("DELETE", "/users/user005", None);
    let run = run_component(
        Entry::Typed,
        &with(
            settings.clone(),
            &[("jupyterhub_api_token", &hub.listonly_token)],
        ),
        &[],
    );
    assert_eq!(run.report()["outcome"], "failed");
    let error = &run.report()["errors"][0];
    assert_eq!(error["kind"], "hub-forbidden", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("admin:auth_state"),
        "{error}"
    );
    assert!(sim.member_ids(GROUP).contains(&"300005".to_string()));
    // a bad token: 403, named
    let run = run_component(
        Entry::Typed,
        &with(settings, &[("jupyterhub_api_token", "not-a-valid-token")]),
        &[],
    );
    let error = &run.report()["errors"][0];
    assert_eq!(error["kind"], "hub-unauthorized", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("rejected the token"),
        "{error}"
    );
}

/// Incremental passes against the real hub: a warm pass reads only the listing, a pass after
/// changes reads exactly the changed users, and removals follow the listing as in a full pass.
#[test]
fn real_hub_incremental_passes_read_only_what_changed() {
    let hub = RealHub::start("incremental");
    let names: Vec<String> = (0..250).map(|i| format!("inc{i:03}")).collect();
    for chunk in names.chunks(100) {
        let (status, _) = hub.admin("POST", "/users", Some(&json!({ "usernames": chunk })));
        assert_eq!(status, 201, "creating users");
    }
    let set_state = |name: &str, login: &str| {
        let (status, body) = hub.admin(
            "PATCH",
            &format!("/users/{name}"),
            Some(&json!({ "auth_state": canvas(login) })),
        );
        assert_eq!(status, 200, "auth_state for {name}: {body}");
    };
    for (i, name) in names.iter().enumerate() {
        set_state(name, &format!("5{i:05}"));
    }
    let sim = simulator();
    for i in 0..260 {
        sim.add_subject(Subject::new("ldap", &format!("5{i:05}")));
    }
    sim.add_group(GROUP);
    let server = sim.serve("127.0.0.1:0").unwrap();
    let settings = sync_settings(&hub, &server);
    let hub_requests = |r: &serde_json::Value| r["requests"]["jupyterhub"].as_u64().unwrap();

    // cold: no state, every record read
    let (cold, state) = run_incremental(&settings, None, false);
    assert_eq!(cold["outcome"], "converged", "{cold}");
    assert_eq!(cold["user_state"], "none");
    assert_eq!(
        cold["users_fetched"], 250,
        "the hub's admin user is not selected"
    );
    assert_eq!(sim.member_ids(GROUP).len(), 250);
    let state = state.expect("a user state");
    let text = String::from_utf8_lossy(&state);
    assert!(!text.contains("access_token") && !text.contains(&hub.sync_token));

    // warm: nothing changed, so the pass costs the listing (two pages of 200)
    sim.clear_requests();
    let (warm, state) = run_incremental(&settings, Some(state), false);
    assert_eq!(warm["outcome"], "converged", "{warm}");
    assert_eq!(warm["user_state"], "used");
    assert_eq!(
        (
            warm["users_fetched"].as_u64(),
            warm["users_from_state"].as_u64()
        ),
        (Some(0), Some(250))
    );
    assert_eq!(hub_requests(&warm), 2, "list pages only");
    assert_eq!(
        ops(&sim),
        [Operation::GetMembers],
        "Grouper: one read, no writes"
    );

    // changes: one user deleted, one created, one active through their own token
    hub.admin("DELETE", "/users/inc007", None);
    let (status, _) = hub.admin("POST", "/users/late", None);
    assert_eq!(status, 201);
    set_state("late", "500255");
    let (status, token) = hub.admin(
        "POST",
        "/users/inc010/tokens",
        Some(&json!({"expires_in": 600, "note": "activity"})),
    );
    assert_eq!(status, 201, "{token}");
    let (status, me) = http(
        "GET",
        &format!("{}/user", hub.api_url),
        token["token"].as_str().unwrap(),
        None,
    );
    assert_eq!(status, 200, "{me}");
    let (changed, state) = run_incremental(&settings, state, false);
    assert_eq!(changed["outcome"], "converged", "{changed}");
    let reasons = &changed["read_reasons"];
    assert_eq!(
        (reasons["new"].as_u64(), reasons["changed"].as_u64()),
        (Some(1), Some(1)),
        "late is new, inc010 was active: {reasons}"
    );
    assert_eq!(changed["users_fetched"], 2);
    assert_eq!(changed["users_departed"], 1, "inc007 was looked up: gone");
    assert_eq!(hub_requests(&changed), 2 + 2 + 1);
    let members = sim.member_ids(GROUP);
    assert!(
        !members.contains(&"500007".to_string()),
        "the deleted user is removed"
    );
    assert!(
        members.contains(&"500255".to_string()),
        "the new user is added"
    );
    assert_eq!(members.len(), 250);

    // an admin PATCH of auth_state leaves last_activity alone: only a refresh or --full sees it
    set_state("inc020", "500256");
    let (missed, state) = run_incremental(&settings, state, false);
    assert_eq!(
        missed["users_fetched"], 1,
        "only inc010, active within the margin of its last read: {missed}"
    );
    assert_eq!(missed["read_reasons"]["margin"], 1);
    assert!(sim.member_ids(GROUP).contains(&"500020".to_string()));
    let (full, _) = run_incremental(&settings, state, true);
    assert_eq!(full["user_state"], "full-requested");
    assert_eq!(full["users_fetched"], 250);
    let members = sim.member_ids(GROUP);
    assert!(members.contains(&"500256".to_string()) && !members.contains(&"500020".to_string()));
}

/// Hub groups made through the real hub's API drive their own Grouper groups in the same pass as
/// the all-users group: the list carries each user's groups (`read:users`), nothing else is asked.
#[test]
fn real_hub_groups_drive_their_grouper_groups() {
    const COURSE: &str = "edu:example:app:datahub:course-101";
    let hub = RealHub::start("groups");
    users_with_logins(&hub, &["gina", "hal", "ivy", "jon"], "70000");
    let (status, body) = hub.admin(
        "POST",
        "/groups/course-101",
        Some(&json!({"users": ["gina", "ivy"]})),
    );
    assert_eq!(status, 201, "{body}");
    let sim = simulator();
    for i in 0..5 {
        sim.add_subject(Subject::new("ldap", &format!("70000{i}")));
    }
    sim.add_group(GROUP);
    sim.add_group(COURSE);
    sim.add_member(COURSE, "ldap", "700004");
    let server = sim.serve("127.0.0.1:0").unwrap();
    let targets = format!(r#"[{{"grouper_group": "{COURSE}", "hub_group": "course-101"}}]"#);
    let settings = with(sync_settings(&hub, &server), &[("targets", &targets)]);
    let run = run_component(Entry::Typed, &settings, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(
        sim.member_ids(GROUP),
        ["700000", "700001", "700002", "700003"]
    );
    assert_eq!(sim.member_ids(COURSE), ["700000", "700002"]);
    // the hub group changes; the next pass follows it
    let (status, _) = hub.admin(
        "DELETE",
        "/groups/course-101/users",
        Some(&json!({"users": ["ivy"]})),
    );
    assert_eq!(status, 200);
    let (status, _) = hub.admin(
        "POST",
        "/groups/course-101/users",
        Some(&json!({"users": ["jon"]})),
    );
    assert_eq!(status, 200);
    let again = run_component(Entry::Typed, &settings, &[]);
    assert_eq!(again.report()["outcome"], "converged");
    assert_eq!(sim.member_ids(COURSE), ["700000", "700003"]);
}

/// The settings of a pass with only `targets` (no all-users group), with the token that may
/// change hub groups.
fn targets_settings(
    hub: &RealHub,
    server: &grouper_sim::ServerHandle,
    targets: &str,
) -> Vec<(String, String)> {
    config(&[
        ("jupyterhub_api_url", &hub.api_url),
        ("jupyterhub_api_token", &hub.groups_token),
        ("grouper_base_url", &server.base_url("v2_2_100")),
        ("grouper_user", "sync"),
        ("grouper_password", "grouper-pw"),
        ("targets", targets),
        ("retries", "0"),
    ])
}

/// Creates hub users with Canvas login ids `{prefix}{i}`.
fn users_with_logins(hub: &RealHub, names: &[&str], prefix: &str) {
    let (status, _) = hub.admin("POST", "/users", Some(&json!({ "usernames": names })));
    assert_eq!(status, 201);
    for (i, name) in names.iter().enumerate() {
        let (status, _) = hub.admin(
            "PATCH",
            &format!("/users/{name}"),
            Some(&json!({ "auth_state": canvas(&format!("{prefix}{i}")) })),
        );
        assert_eq!(status, 200);
    }
}

fn user_groups(hub: &RealHub, name: &str) -> Vec<String> {
    let (status, body) = hub.admin("GET", &format!("/users/{name}"), None);
    assert_eq!(status, 200, "{body}");
    let mut groups: Vec<String> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    groups.sort();
    groups
}

#[test]
fn real_hub_grouper_group_keeps_a_hub_group() {
    const GPU: &str = "edu:example:app:datahub:gpu-quota";
    // An authenticator that manages groups (every login sets the user's groups to its list), with
    // the README's post_auth_hook keeping the groups grouper-sync keeps.
    let hub = RealHub::start_with(
        "to-hub",
        &[
            (
                "JHUB_LOGIN_GROUPS",
                r#"{"kim": ["course-101"], "lee": ["course-101"]}"#,
            ),
            ("JHUB_KEEP_GROUPS", "gpu"),
        ],
    );
    users_with_logins(&hub, &["kim", "lee", "max", "ned"], "80000");
    let sim = simulator();
    for i in 0..4 {
        sim.add_subject(Subject::new("ldap", &format!("80000{i}")));
    }
    sim.add_group(GPU);
    for id in ["800000", "800002", "899999"] {
        sim.add_member(GPU, "ldap", id);
    }
    // a subgroup: its members are members of gpu-quota too (Grouper's effective membership)
    const GPU_STAFF: &str = "edu:example:app:datahub:gpu-staff";
    sim.add_group(GPU_STAFF);
    sim.add_member(GPU_STAFF, "ldap", "800003");
    sim.add_member(GPU, "g:gsa", &sim.group_uuid(GPU_STAFF).unwrap());
    let server = sim.serve("127.0.0.1:0").unwrap();
    let targets = format!(
        r#"[{{"grouper_group": "{GPU}", "direction": "to_hub", "hub_group": "gpu", "create_missing_groups": true}}]"#
    );
    let settings = targets_settings(&hub, &server, &targets);
    // The README's role, groups filtered to gpu (a token of the hub's admin user with exactly
    // those scopes), is enough for check and for the pass that creates and fills the group.
    let (status, body) = hub.admin(
        "POST",
        "/users/admin/tokens",
        Some(&json!({"scopes": ["list:users", "read:users", "admin:auth_state", "groups!group=gpu", "admin:groups"]})),
    );
    assert_eq!(status, 201, "{body}");
    let filtered = with(
        settings.clone(),
        &[("jupyterhub_api_token", body["token"].as_str().unwrap())],
    );
    // check: the scopes the target needs, the hub group it would create, nothing written
    let check = run_check(&filtered);
    assert!(check.ok, "{}", check.json);
    let t = &check.targets[0];
    assert_eq!(t.hub_group_exists, Some(false));
    assert_eq!(
        t.grouper_members,
        Some(5),
        "immediate and effective members"
    );
    assert!(t.scopes.iter().any(|s| s == "groups") && t.scopes.iter().any(|s| s == "admin:groups"));
    assert!(
        t.notes.iter().any(|n| n.contains("creates it")),
        "{:?}",
        t.notes
    );
    assert!(
        t.notes.iter().any(|n| n.contains("manage_groups")),
        "{:?}",
        t.notes
    );
    let (status, _) = hub.admin("GET", "/groups/gpu", None);
    assert_eq!(status, 404, "check created nothing");
    // the plain sync token lacks the group scopes: check names them
    let plain = with(
        settings.clone(),
        &[("jupyterhub_api_token", &hub.sync_token)],
    );
    let check = run_check(&plain);
    assert!(!check.ok);
    assert_eq!(
        check.missing_scopes,
        ["read:groups:name", "groups", "admin:groups"]
    );

    let run = run_component(Entry::Typed, &filtered, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    let t = &r["targets"][0];
    assert_eq!(t["direction"], "to_hub");
    assert_eq!(t["group_created"], true, "{t}");
    assert_eq!(
        t["members_without_hub_user"], 2,
        "899999 has no hub user; the subgroup itself is no person"
    );
    assert_eq!(hub.group_members("gpu"), ["kim", "max", "ned"]);
    assert!(
        sim.member_ids(GPU).len() == 4,
        "the Grouper group is only read"
    );

    // Grouper changes: kim leaves, lee joins. A pass whose Grouper read fails removes nobody.
    sim.edit_group(GPU, |g| {
        g.members
            .remove(&("ldap".to_string(), "800000".to_string()));
    });
    sim.add_member(GPU, "ldap", "800001");
    sim.push_fault(grouper_sim::Fault {
        operation: Some(Operation::GetMembers),
        action: grouper_sim::FaultAction::Status {
            status: 500,
            content_type: "text/html".into(),
            body: "<html>down</html>".into(),
            retry_after: None,
        },
        times: 5,
    });
    let failed_run = run_component(Entry::Typed, &settings, &[]);
    let failed = failed_run.report();
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert_eq!(
        failed["targets"][0]["error"]["kind"], "grouper-unavailable",
        "{failed}"
    );
    assert_eq!(
        hub.group_members("gpu"),
        ["kim", "max", "ned"],
        "nobody removed"
    );
    sim.clear_faults();
    // ned leaves the subgroup, so gpu-quota too
    sim.edit_group(GPU_STAFF, |g| g.members.clear());
    let run = run_component(Entry::Typed, &settings, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(hub.group_members("gpu"), ["lee", "max"]);

    // manage_groups: a login sets the user's groups to the authenticator's list. A group put there
    // through the API (scratch) is gone after the login; gpu stays because the hook keeps it.
    let (status, body) = hub.admin("POST", "/groups/scratch", Some(&json!({"users": ["lee"]})));
    assert_eq!(status, 201, "{body}");
    assert_eq!(user_groups(&hub, "lee"), ["gpu", "scratch"]);
    hub.login("lee");
    assert_eq!(user_groups(&hub, "lee"), ["course-101", "gpu"]);
    // kim is no longer in gpu; the hook does not bring it back
    hub.login("kim");
    assert_eq!(user_groups(&hub, "kim"), ["course-101"]);
    assert_eq!(hub.group_members("gpu"), ["lee", "max"]);
}

#[test]
fn real_hub_many_targets_in_one_pass() {
    const PREFIX: &str = "edu:example:app:datahub";
    let hub = RealHub::start("many-targets");
    let names = ["u0", "u1", "u2", "u3", "u4", "u5"];
    users_with_logins(&hub, &names, "90000");
    for (group, members) in [
        ("course-a", &["u0", "u1"][..]),
        ("course-b", &["u2"]),
        ("course-c", &["u3", "u4"]),
        ("staff", &["u5", "u0"]),
    ] {
        let (status, body) = hub.admin(
            "POST",
            &format!("/groups/{group}"),
            Some(&json!({ "users": members })),
        );
        assert_eq!(status, 201, "{body}");
    }
    // u1 and u2 use the hub (their own tokens), so their last_activity is now; the others never did
    for name in ["u1", "u2"] {
        let (status, body) = hub.admin(
            "POST",
            &format!("/users/{name}/tokens"),
            Some(&json!({"note": "activity"})),
        );
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        let (status, _) = http("GET", &format!("{}/user", hub.api_url), &token, None);
        assert_eq!(status, 200);
    }
    let sim = simulator();
    for i in 0..6 {
        sim.add_subject(Subject::new("ldap", &format!("90000{i}")));
    }
    for g in [
        "all",
        "course-a",
        "course-b",
        "course-c",
        "staff",
        "active",
        "gpu-quota",
    ] {
        sim.add_group(&format!("{PREFIX}:{g}"));
    }
    sim.add_member(&format!("{PREFIX}:course-a"), "ldap", "900005"); // stale: removed
    sim.add_member(&format!("{PREFIX}:gpu-quota"), "ldap", "900003");
    sim.add_member(&format!("{PREFIX}:gpu-quota"), "ldap", "900005");
    let server = sim.serve("127.0.0.1:0").unwrap();
    let targets = json!([
        {"grouper_group": format!("{PREFIX}:course-{{1}}"), "hub_group_pattern": "course-([a-z])"},
        {"grouper_group": format!("{PREFIX}:staff"), "hub_group": "staff"},
        {"grouper_group": format!("{PREFIX}:active"), "active_within_days": 1},
        {"grouper_group": format!("{PREFIX}:missing"), "hub_group": "staff"},
        {"grouper_group": format!("{PREFIX}:gpu-quota"), "direction": "to_hub", "hub_group": "gpu",
         "create_missing_groups": true},
    ])
    .to_string();
    let settings = with(
        targets_settings(&hub, &server, &targets),
        &[("grouper_id_path", &format!("{PREFIX}:all"))],
    );
    // check resolves the pattern from the hub's groups: one target per course group
    let check = run_check(&settings);
    let resolved: Vec<&str> = check
        .targets
        .iter()
        .map(|t| t.group.trim_start_matches(PREFIX))
        .collect();
    assert_eq!(
        resolved,
        [
            ":all",
            ":course-a",
            ":course-b",
            ":course-c",
            ":staff",
            ":active",
            ":missing",
            ":gpu-quota"
        ]
    );
    assert!(
        !check.ok,
        "the missing Grouper group is an error: {}",
        check.json
    );
    assert_eq!(check.missing_scopes, Vec::<String>::new());
    let run = run_component(Entry::Typed, &settings, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "failed", "the worst target: {r}");
    let outcomes: Vec<(String, String)> = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["group"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(PREFIX)
                    .to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        (":all", "converged"),
        (":course-a", "converged"),
        (":course-b", "converged"),
        (":course-c", "converged"),
        (":staff", "converged"),
        (":active", "converged"),
        (":missing", "failed"),
        (":gpu-quota", "converged"),
    ]
    .iter()
    .map(|(g, o)| (g.to_string(), o.to_string()))
    .collect();
    assert_eq!(outcomes, expected, "{r}");
    assert_eq!(r["targets"][6]["error"]["kind"], "group-not-found");
    let ids = |g: &str| sim.member_ids(&format!("{PREFIX}:{g}"));
    assert_eq!(
        ids("all"),
        ["900000", "900001", "900002", "900003", "900004", "900005"]
    );
    assert_eq!(ids("course-a"), ["900000", "900001"]);
    assert_eq!(ids("course-b"), ["900002"]);
    assert_eq!(ids("course-c"), ["900003", "900004"]);
    assert_eq!(ids("staff"), ["900000", "900005"]);
    assert_eq!(ids("active"), ["900001", "900002"]);
    assert_eq!(r["targets"][5]["users_filtered"], 4, "{r}");
    assert_eq!(hub.group_members("gpu"), ["u3", "u5"]);
    // one listing, one record read per user (the hub's own admin too: to_hub counts admins),
    // whatever the number of targets
    assert_eq!(r["users_fetched"], 7, "{r}");
    let hub_requests = r["requests"]["jupyterhub"].as_u64().unwrap();
    assert_eq!(
        hub_requests,
        1 + 7 + 3,
        "list, 7 records, gpu read/create/add"
    );
}

/// Starts or stops `name`'s server and waits until the users API (as the sync token sees it)
/// says so.
fn set_server(hub: &RealHub, name: &str, running: bool) {
    let (method, accepted) = if running {
        ("POST", [201, 202])
    } else {
        ("DELETE", [202, 204])
    };
    let (status, body) = hub.admin(method, &format!("/users/{name}/server"), None);
    assert!(
        accepted.contains(&status),
        "{method} {name}'s server: {status} {body}"
    );
    let started = std::time::Instant::now();
    loop {
        let url = format!("{}/users/{name}", hub.api_url);
        let (_, user) = http("GET", &url, &hub.sync_token, None);
        if user["server"].is_string() == running && user["pending"].is_null() {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "{name}'s server never became running={running}: {user}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn real_hub_only_active_servers_follows_running_servers() {
    // user servers are scripts/jupyterhub/user_server.py under SimpleLocalProcessSpawner
    let hub = RealHub::start_with("active-servers", &[("JHUB_USER_SERVERS", "1")]);
    users_with_logins(&hub, &["s0", "s1", "s2"], "91000");
    let sim = simulator();
    for i in 0..3 {
        sim.add_subject(Subject::new("ldap", &format!("91000{i}")));
    }
    sim.add_group(GROUP);
    let server = sim.serve("127.0.0.1:0").unwrap();
    set_server(&hub, "s0", true);
    set_server(&hub, "s2", true);
    // the README's role (list:users, read:users, admin:auth_state): `server` is in what it reads
    let settings = with(
        sync_settings(&hub, &server),
        &[("only_active_servers", "true")],
    );
    let run = run_component(Entry::Typed, &settings, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(sim.member_ids(GROUP), ["910000", "910002"]);
    assert_eq!(run.target()["users_filtered"], 1, "s1 has no server: {r}");
    assert_eq!(run.target()["users_selected"], 2, "{r}");

    // s2 stops its server and s1 starts one: the next pass follows
    set_server(&hub, "s2", false);
    set_server(&hub, "s1", true);
    let again = run_component(Entry::Typed, &settings, &[]);
    let r = again.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(sim.member_ids(GROUP), ["910000", "910001"]);
    assert_eq!(
        (
            again.target()["added"].as_u64(),
            again.target()["removed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
}
