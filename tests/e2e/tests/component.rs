//! The built component, run by wasmtime in-process, against the Grouper simulator and a fake hub
//! (the fake hub is for fault injection; tests/e2e/tests/real_hub.rs uses a real JupyterHub).

use grouper_sync_e2e as common;

use common::world::*;
use common::*;
use grouper_sim::{Fault, FaultAction, Operation, Subject};
use serde_json::{json, Value};

/// The interfaces `world runtime` in wit/world.wit imports (versions aside), plus wasi:config.
const WORLD_IMPORTS: &[&str] = &[
    "wasi:http/outgoing-handler",
    "wasi:http/types",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:io/error",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

fn check_contract(path: &std::path::Path, config_import: &str) {
    let runner = runner_for(path);
    let ty = runner.component_type();
    let imports: Vec<String> = ty
        .imports(runner.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    for name in &imports {
        let (interface, version) = name.split_once('@').unwrap_or((name, ""));
        let allowed = (WORLD_IMPORTS.contains(&interface) && version.starts_with("0.2."))
            || name == config_import;
        assert!(
            allowed,
            "{}: unexpected import {name} (all: {imports:?})",
            path.display()
        );
    }
    for needed in [config_import, "wasi:http/outgoing-handler"] {
        assert!(
            imports.iter().any(|n| n.starts_with(needed)),
            "{}: {needed} not imported: {imports:?}",
            path.display()
        );
    }
    let exports: Vec<String> = ty
        .exports(runner.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    assert!(exports.contains(&SYNC_INTERFACE.to_string()), "{exports:?}");
    for e in ["wasi:cli/run@0.2.", "wasi:http/incoming-handler@0.2."] {
        assert!(exports.iter().any(|x| x.starts_with(e)), "{e}: {exports:?}");
    }
    assert!(
        !exports.iter().any(|x| x.contains("@0.3")),
        "no p3 handler beside the p2 one (Spin refuses two kinds): {exports:?}"
    );
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size < 1_000_000, "{} is {size} bytes", path.display());
}

#[test]
fn both_builds_import_and_export_exactly_the_world() {
    check_contract(component_path(), "wasi:config/store@0.2.0-rc.1");
    check_contract(
        &spin_component_path(),
        "wasi:config/store@0.2.0-draft-2024-09-27",
    );
}

#[test]
fn full_pass_converges_and_is_idempotent() {
    let w = world();
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    let r = run.report();
    let t = run.target();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    assert_eq!(r["users_seen"], 5);
    assert_eq!(
        (t["users_selected"].as_u64(), t["admins_skipped"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(
        (t["users_mapped"].as_u64(), t["users_unmapped"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (
            t["added"].as_u64(),
            t["removed"].as_u64(),
            t["unmanaged_kept"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    // the hub list was paged (limit 2) and the odd name percent-encoded
    let hub_requests = w.hub.state.lock().unwrap().requests.clone();
    assert!(
        hub_requests.iter().any(|r| r.contains("offset=4")),
        "{hub_requests:?}"
    );
    assert!(
        hub_requests.contains(&"/hub/api/users/dan%40example.edu".to_string()),
        "{hub_requests:?}"
    );
    assert!(
        !hub_requests.iter().any(|r| r.ends_with("/users/admin")),
        "admins are not read"
    );
    // the Grouper wire: text/x-json, no replaceAllExisting=T, batch add then delete
    let log = w.sim.requests();
    assert!(log
        .iter()
        .all(|r| r.content_type.as_deref() == Some("text/x-json; charset=UTF-8")));
    let add = log
        .iter()
        .find(|r| r.operation == Some(Operation::AddMember))
        .unwrap();
    assert_eq!(add.method, "PUT");
    assert_eq!(
        add.body.as_ref().unwrap()["WsRestAddMemberRequest"]["replaceAllExisting"],
        "F"
    );
    assert_eq!(
        ops(&w.sim),
        [
            Operation::GetMembers,
            Operation::AddMember,
            Operation::DeleteMember
        ]
    );

    w.sim.clear_requests();
    let again = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(again.report()["outcome"], "converged");
    assert_eq!(
        (
            again.target()["to_add"].as_u64(),
            again.target()["to_remove"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        ops(&w.sim),
        [Operation::GetMembers],
        "a converged group gets no writes"
    );
}

#[test]
fn user_info_mapping_reads_only_users_without_it() {
    let w = world();
    w.hub.state.lock().unwrap().user_info.extend([
        ("alice".to_string(), json!({"login_id": "100001"})),
        ("bob".to_string(), json!({"campus": {"uid": " 100002 "}})),
    ]);
    let config = with(
        settings(&w),
        &[
            ("subject_from", "user_info"),
            ("user_info_paths", "login_id,campus.uid"),
        ],
    );
    let run = run_component(Entry::Typed, &config, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    assert_eq!(
        r["users_fetched"], 2,
        "carol and dan have no user_info: {r}"
    );
    let mut reads: Vec<String> = w
        .hub
        .state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.starts_with("/hub/api/users/"))
        .cloned()
        .collect();
    reads.sort();
    assert_eq!(
        reads,
        ["/hub/api/users/carol", "/hub/api/users/dan%40example.edu"],
        "alice and bob come from the list alone"
    );
}

#[test]
fn dry_run_reports_the_plan_and_writes_nothing() {
    let w = world();
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("dry_run", "true")]),
        &[],
    );
    assert_eq!(run.report()["dry_run"], true);
    assert_eq!(
        (
            run.target()["to_add"].as_u64(),
            run.target()["to_remove"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        (
            run.target()["added"].as_u64(),
            run.target()["removed"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(ops(&w.sim), [Operation::GetMembers]);
    assert_eq!(w.sim.member_ids(GROUP), ["edu:example:staff", "stale1"]);
}

#[test]
fn hub_page_failure_removes_nobody() {
    let w = world();
    w.hub.state.lock().unwrap().fail_page_at_offset = Some((2, 500));
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "failed");
    let (kind, err) = error(&run.report()["errors"][0]);
    assert_eq!(kind, "hub-unavailable");
    assert!(
        err.contains("listing hub users") && err.contains("500"),
        "{err}"
    );
    assert!(ops(&w.sim).is_empty(), "nothing was sent to Grouper");
    assert_eq!(w.sim.member_ids(GROUP), ["edu:example:staff", "stale1"]);
}

#[test]
fn unreadable_user_withholds_removals_but_adds_the_rest() {
    let w = world();
    w.hub.state.lock().unwrap().fail_user = Some(("bob".into(), 500));
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "removals_withheld");
    assert_eq!(run.report()["users_unread"], 1);
    assert!(run.target()["withheld_reason"]
        .as_str()
        .unwrap()
        .contains("incomplete read"));
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100004", "edu:example:staff", "stale1"]
    );
}

#[test]
fn a_user_skipped_by_offset_paging_is_looked_up_and_kept() {
    use common::fake_hub::{HubAction, HubFault, HubRoute};
    let w = world();
    let settings = settings(&w);
    {
        // dan on the second page, where the shift will skip him
        let mut st = w.hub.state.lock().unwrap();
        let dan = st.users.remove(4);
        st.users.insert(2, dan);
    }
    let (first, state) = run_incremental(&settings, None, false);
    assert_eq!(first["outcome"], "converged", "{first}");
    let converged = w.sim.member_ids(GROUP);
    assert!(converged.contains(&"100004".to_string()), "{converged:?}");
    // between the first and the second page bob is deleted and erin created: the offsets
    // shift by one, dan is on no page, and the total stays the same
    w.sim.add_subject(Subject::new("ldap", "100005"));
    w.hub.state.lock().unwrap().faults.push(HubFault {
        route: HubRoute::List(2),
        action: HubAction::Mutate(|st| {
            st.users.retain(|(n, _, _)| n != "bob");
            st.users.push(("erin".into(), false, canvas("100005")));
        }),
        times: 1,
    });
    let (shifted, state) = run_incremental(&settings, state, false);
    assert_eq!(shifted["users_unlisted"], 1, "{shifted}");
    assert_eq!(shifted["outcome"], "converged", "{shifted}");
    let requests = w.hub.state.lock().unwrap().requests.clone();
    assert!(
        requests
            .iter()
            .any(|r| r == "/hub/api/users/dan%40example.edu"),
        "dan was looked up: {requests:?}"
    );
    let after = w.sim.member_ids(GROUP);
    assert!(after.contains(&"100004".to_string()), "dan kept: {after:?}");
    assert!(
        after.contains(&"100005".to_string()),
        "erin added: {after:?}"
    );
    // the next pass confirms bob gone (404), then removes him
    let (next, _) = run_incremental(&settings, state, false);
    assert_eq!(
        (
            next["users_departed"].as_u64(),
            next["targets"][0]["removed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{next}"
    );
    assert!(!w.sim.member_ids(GROUP).contains(&"100002".to_string()));
}

#[test]
fn grouper_read_failure_writes_nothing() {
    let w = world();
    w.sim.push_fault(Fault {
        operation: Some(Operation::GetMembers),
        action: FaultAction::Status {
            status: 500,
            content_type: "text/html".into(),
            body: "<html>Internal error</html>".into(),
            retry_after: None,
        },
        times: 1,
    });
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "failed");
    let (kind, err) = error(&run.target()["error"]);
    assert_eq!(kind, "grouper-unavailable");
    assert!(err.contains("HTTP 500"), "{}", run.target());
    assert_eq!(ops(&w.sim), [Operation::GetMembers]);
    assert_eq!(w.sim.member_ids(GROUP), ["edu:example:staff", "stale1"]);
}

#[test]
fn truncated_and_malformed_bodies_fail_safely() {
    for action in [FaultAction::TruncatedBody, FaultAction::MalformedJson] {
        let w = world();
        w.sim.push_fault(Fault {
            operation: Some(Operation::GetMembers),
            action: action.clone(),
            times: 10,
        });
        let run = run_component(Entry::Typed, &with(settings(&w), &[("retries", "1")]), &[]);
        assert_eq!(run.report()["outcome"], "failed", "{action:?}");
        let (kind, err) = error(&run.target()["error"]);
        assert!(
            err.contains("body") || err.contains("JSON"),
            "{action:?}: {err}"
        );
        assert!(
            matches!(kind, "grouper-unavailable" | "grouper-bad-answer"),
            "{action:?}: {kind}"
        );
        assert!(
            ops(&w.sim).iter().all(|o| *o == Operation::GetMembers),
            "{action:?}"
        );
        assert_eq!(w.sim.member_ids(GROUP), ["edu:example:staff", "stale1"]);
    }
}

#[test]
fn transient_grouper_errors_are_retried() {
    let w = world();
    w.sim.push_fault(Fault {
        operation: Some(Operation::AddMember),
        action: FaultAction::Status {
            status: 503,
            content_type: "text/plain".into(),
            body: "busy".into(),
            retry_after: Some(0),
        },
        times: 2,
    });
    w.sim.push_fault(Fault {
        operation: Some(Operation::DeleteMember),
        action: FaultAction::TruncatedBody,
        times: 1,
    });
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "converged", "{}", run.report());
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    let counts = ops(&w.sim);
    assert_eq!(
        counts
            .iter()
            .filter(|o| **o == Operation::AddMember)
            .count(),
        3
    );
    assert_eq!(
        counts
            .iter()
            .filter(|o| **o == Operation::DeleteMember)
            .count(),
        2,
        "a lost delete answer is retried; delete is idempotent"
    );
}

#[test]
fn unknown_subjects_are_reported_but_the_pass_converges() {
    let w = world();
    w.hub
        .state
        .lock()
        .unwrap()
        .users
        .push(("eve".into(), false, canvas("999999")));
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "converged");
    let failures = run.target()["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["subject"], "999999");
    assert_eq!(failures[0]["code"], "SUBJECT_NOT_FOUND");
    assert!(
        failures[0]["message"].as_str().unwrap().len() <= 310,
        "stack traces are cut"
    );
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
}

#[test]
fn removal_limit_withholds_removals_and_keeps_adds() {
    let w = world();
    for i in 0..8 {
        let id = format!("old{i}");
        w.sim.add_subject(Subject::new("ldap", &id));
        w.sim.add_member(GROUP, "ldap", &id);
    }
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("max_removals", "5")]),
        &[],
    );
    assert_eq!(run.report()["outcome"], "removals_withheld");
    assert_eq!(run.target()["withheld_removals"], 9);
    assert_eq!(run.target()["added"], 3);
    assert!(w.sim.member_ids(GROUP).contains(&"stale1".to_string()));
    // protected members and additive mode
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("mode", "additive")]),
        &[],
    );
    assert_eq!(run.report()["outcome"], "converged");
    assert_eq!(run.target()["removed"], 0);
    assert_eq!(
        run.target()["kept_by_mode"],
        9,
        "stale1 and old0..old7 stay, and are counted"
    );
    let protect: String = (0..8).map(|i| format!("old{i},")).collect();
    let run = run_component(
        Entry::Typed,
        &with(
            settings(&w),
            &[("max_removals", "5"), ("protected_members", &protect)],
        ),
        &[],
    );
    assert_eq!(run.target()["removed"], 1);
    assert_eq!(run.target()["protected_kept"], 8);
}

#[test]
fn grouper_errors_are_clear() {
    let w = world();
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("grouper_password", "wrong")]),
        &[],
    );
    let (kind, err) = error(&run.target()["error"]);
    assert_eq!(kind, "grouper-unauthorized");
    assert!(err.contains("rejected the credentials"), "{}", run.target());
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("grouper_id_path", "edu:example:nope")]),
        &[],
    );
    let (kind, err) = error(&run.target()["error"]);
    assert_eq!(kind, "group-not-found");
    assert!(err.contains("GROUP_NOT_FOUND"), "{err}");
    w.sim.edit_group(GROUP, |g| g.update_denied = true);
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "failed");
    let (kind, err) = error(&run.target()["error"]);
    assert_eq!(kind, "grouper-forbidden");
    assert!(err.contains("INSUFFICIENT_PRIVILEGES"), "{}", run.target());
    assert_eq!(w.sim.member_ids(GROUP), ["edu:example:staff", "stale1"]);
}

#[test]
fn configuration_errors_name_the_key() {
    let w = world();
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("dryrun", "true")]),
        &[],
    );
    assert!(
        run.result.as_ref().unwrap_err().contains("dryrun"),
        "{:?}",
        run.result
    );
    let run = run_component(
        Entry::Typed,
        &with(settings(&w), &[("max_removal_fraction", "2")]),
        &[],
    );
    assert!(run
        .result
        .as_ref()
        .unwrap_err()
        .contains("max_removal_fraction"));
    let mut missing = settings(&w);
    missing.retain(|(k, _)| k != "grouper_id_path");
    let run = run_component(Entry::Cli, &missing, &[]);
    assert_eq!(run.exit_ok, Some(false));
    let (kind, err) = error(&run.report()["errors"][0]);
    assert_eq!(kind, "config");
    assert!(err.contains("GROUPER_ID_PATH"), "{err}");
    assert!(ops(&w.sim).is_empty());
}

#[test]
fn cli_entry_reads_the_environment_and_prints_one_json_line() {
    let w = world();
    let env: Vec<(String, String)> = settings(&w)
        .into_iter()
        .map(|(k, v)| {
            let env = jupyterhub_grouper_sync::settings::KEYS
                .iter()
                .find(|key| key.name == k)
                .unwrap()
                .env;
            (env.to_string(), v)
        })
        .collect();
    let run = run_component(Entry::Cli, &[], &env);
    assert_eq!(run.exit_ok, Some(true), "{}", run.stdout);
    assert_eq!(run.stdout.trim().lines().count(), 1);
    assert_eq!(run.report()["outcome"], "converged");
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    // a config key wins over the environment
    let run = run_component(Entry::Cli, &config(&[("dry_run", "true")]), &env);
    assert_eq!(run.report()["dry_run"], true);
    // withheld removals exit non-zero too, and say why
    w.hub.state.lock().unwrap().fail_user = Some(("alice".into(), 502));
    w.sim.add_member(GROUP, "ldap", "stale1");
    let run = run_component(Entry::Cli, &config(&[("retries", "0")]), &env);
    assert_eq!(run.exit_ok, Some(false));
    assert_eq!(run.report()["outcome"], "removals_withheld");
}

#[test]
fn secrets_and_member_lists_stay_out_of_outputs() {
    for (entry, level) in [
        (Entry::Typed, "info"),
        (Entry::Cli, "info"),
        (Entry::Typed, "debug"),
    ] {
        let w = world();
        let run = run_component(entry, &with(settings(&w), &[("log_level", level)]), &[]);
        let all = format!("{}{}{:?}", run.stdout, run.stderr, run.result);
        for secret in [TOKEN, PASSWORD, "oauth-access-token-SECRET"] {
            assert!(!all.contains(secret), "{secret} leaked at {level}");
        }
        assert_eq!(
            run.log_text().contains("100001"),
            level == "debug",
            "member ids only at debug level"
        );
    }
}

#[test]
fn identifier_lookup_matches_members_by_attribute() {
    let w = world();
    w.sim.add_subject(
        Subject::new("ldap", "u-1")
            .identifier("100001")
            .attribute("uid", "100001"),
    );
    w.sim.add_subject(
        Subject::new("ldap", "u-old")
            .identifier("olduid")
            .attribute("uid", "olduid"),
    );
    w.sim.add_member(GROUP, "ldap", "u-1");
    w.sim.add_member(GROUP, "ldap", "u-old");
    w.hub
        .state
        .lock()
        .unwrap()
        .users
        .retain(|(n, _, _)| n == "alice");
    let cfg = with(
        settings(&w),
        &[
            ("subject_lookup", "subject_identifier"),
            ("identifier_attribute", "uid"),
            ("subject_source_id", "ldap"),
        ],
    );
    let run = run_component(Entry::Typed, &cfg, &[]);
    assert_eq!(run.report()["outcome"], "converged", "{}", run.report());
    assert_eq!(
        run.target()["to_add"],
        0,
        "alice is already a member as u-1"
    );
    // stale1 has no uid attribute, so it is not matched and not removed
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["edu:example:staff", "stale1", "u-1"]
    );
}

#[test]
fn user_records_are_fetched_concurrently_within_the_bound() {
    for (concurrency, expected_max) in [("1", 1), ("3", 3)] {
        let w = world();
        {
            let mut st = w.hub.state.lock().unwrap();
            for i in 0..9 {
                st.users
                    .push((format!("extra{i}"), false, canvas(&format!("20000{i}"))));
            }
            st.user_delay = std::time::Duration::from_millis(150);
        }
        let run = run_component(
            Entry::Typed,
            &with(
                settings(&w),
                &[("concurrency", concurrency), ("dry_run", "true")],
            ),
            &[],
        );
        assert_eq!(run.target()["users_mapped"], 12, "{}", run.report());
        let max = w.hub.state.lock().unwrap().max_in_flight;
        assert_eq!(max, expected_max, "concurrency={concurrency}");
    }
}

#[test]
fn slow_grouper_answers_time_out_and_write_nothing() {
    let w = world();
    w.sim.push_fault(Fault {
        operation: Some(Operation::GetMembers),
        // far longer than any bound here: only the 1 s request timeout can end this read
        action: FaultAction::Delay(std::time::Duration::from_secs(900)),
        times: 1,
    });
    let cfg = with(
        settings(&w),
        &[("request_timeout_seconds", "1"), ("retries", "0")],
    );
    // the host's cap and deadline well above 1 s: were the setting ignored, the deadline would
    // stop the call (and `run_limited` would fail) instead of the read timing out
    let limits = grouper_sync_host::sandbox::runner::Limits {
        http_timeout_cap: std::time::Duration::from_secs(600),
        deadline: std::time::Duration::from_secs(300),
        ..common::open_limits()
    };
    let run = common::run_limited(common::runner(), Entry::Typed, &cfg, &[], &limits);
    assert_eq!(run.report()["outcome"], "failed");
    let (kind, err) = error(&run.target()["error"]);
    assert_eq!(kind, "timeout");
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(w.sim.member_ids(GROUP), ["edu:example:staff", "stale1"]);
}

#[test]
fn the_typed_export_logs_records_with_fields_on_stdout_not_text_on_stderr() {
    let w = world();
    let run = run_component(Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "converged", "{}", run.stderr);
    let records: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("log").cloned())
        .collect();
    let summary = records
        .iter()
        .find(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("pass done"))
        })
        .unwrap_or_else(|| panic!("no summary record in {}", run.stdout));
    assert_eq!(summary["level"], "info");
    let fields: Vec<(String, String)> = serde_json::from_value(summary["fields"].clone()).unwrap();
    assert!(
        fields.contains(&("group".into(), GROUP.into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("outcome".into(), "converged".into())),
        "{fields:?}"
    );
    assert!(
        !run.stderr.contains("grouper-sync info:"),
        "records are not also text: {}",
        run.stderr
    );
}
