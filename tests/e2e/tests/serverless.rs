//! The serverless entry points of the built component, driven through grouper-sync's embedding:
//! the HTTP handler (`POST /sync`, `POST /check`, `GET /healthz`, auth, statuses), the loop mode
//! of `wasi:cli/run`, `max_changes_per_pass`, and the `--features spin` build (wasi:config
//! draft-2024-09-27) running a full pass and a `POST /sync`.

use grouper_sync_e2e as common;

use common::world::*;
use common::*;
use grouper_sim::Operation;
use grouper_sync_host::sandbox::runner::{HttpAnswer, Limits, Runner, Stopped};
use serde_json::Value;
use std::time::Duration;

const SYNC_TOKEN: &str = "sync-route-token-5be1-SECRET";

fn with_token(w: &World) -> Vec<(String, String)> {
    with(settings(w), &[("sync_auth_token", SYNC_TOKEN)])
}

fn bearer() -> String {
    format!("Bearer {SYNC_TOKEN}")
}

fn answer(
    runner: &Runner,
    cfg: &[(String, String)],
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> HttpAnswer {
    let call = http_request(runner, cfg, method, path, auth);
    let answer = call.result.expect("the handler was not stopped");
    for secret in [TOKEN, PASSWORD, SYNC_TOKEN] {
        let body = String::from_utf8_lossy(&answer.body);
        assert!(!body.contains(secret), "{method} {path} answered a secret");
        assert!(
            !call.stderr.contains(secret),
            "{method} {path} logged a secret"
        );
    }
    answer
}

fn json_body(a: &HttpAnswer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&a.body)
        )
    })
}

fn header<'a>(a: &'a HttpAnswer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn healthz_answers_without_any_configuration() {
    let a = answer(runner(), &[], "GET", "/healthz", None);
    assert_eq!(a.status, 200);
    assert_eq!(json_body(&a)["status"], "ok");
    let a = answer(runner(), &[], "GET", "/nowhere", None);
    assert_eq!(a.status, 404);
}

#[test]
fn sync_route_fails_closed_and_refuses_wrong_tokens() {
    let w = world();
    // no token configured: 503, and nothing is read or written
    let a = answer(runner(), &settings(&w), "POST", "/sync", Some(&bearer()));
    assert_eq!(a.status, 503);
    assert!(String::from_utf8_lossy(&a.body).contains("sync_auth_token"));
    for auth in [
        None,
        Some("Bearer wrong-token".to_string()),
        Some(SYNC_TOKEN.to_string()),
    ] {
        let a = answer(runner(), &with_token(&w), "POST", "/sync", auth.as_deref());
        assert_eq!(a.status, 401, "{auth:?}");
        assert!(header(&a, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    }
    let a = answer(runner(), &with_token(&w), "GET", "/sync", Some(&bearer()));
    assert_eq!((a.status, header(&a, "allow")), (405, Some("POST")));
    let a = answer(
        runner(),
        &with_token(&w),
        "POST",
        "/sync?force=yes",
        Some(&bearer()),
    );
    assert_eq!(a.status, 400);
    assert!(w.sim.requests().is_empty(), "nothing reached Grouper");
    assert!(
        w.hub.state.lock().unwrap().requests.is_empty(),
        "nothing reached the hub"
    );
}

#[test]
fn post_sync_dry_run_then_real_pass_then_check() {
    let w = world();
    let a = answer(
        runner(),
        &with_token(&w),
        "POST",
        "/sync?dry_run=true",
        Some(&bearer()),
    );
    let r = json_body(&a);
    assert_eq!(
        (a.status, &r["outcome"]),
        (200, &Value::from("converged")),
        "{r}"
    );
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        (&r["targets"][0]["to_add"], &r["targets"][0]["added"]),
        (&3.into(), &0.into())
    );
    assert_eq!(ops(&w.sim), [Operation::GetMembers], "a dry run only reads");

    let a = answer(runner(), &with_token(&w), "POST", "/sync", Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(a.status, 200, "{r}");
    assert_eq!(header(&a, "content-type"), Some("application/json"));
    assert_eq!(
        (r["outcome"].as_str(), r["dry_run"].as_bool()),
        (Some("converged"), Some(false))
    );
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );

    let before = w.sim.requests().len();
    let a = answer(runner(), &with_token(&w), "POST", "/check", Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(a.status, 200, "{r}");
    assert_eq!(r["groups_readable"][0][0], GROUP);
    assert!(w.sim.requests()[before..]
        .iter()
        .all(|r| r.operation == Some(Operation::GetMembers)));
}

#[test]
fn statuses_say_what_happened() {
    let w = world();
    // removals withheld: a user's record cannot be read
    w.hub.state.lock().unwrap().fail_user = Some(("bob".into(), 500));
    let a = answer(runner(), &with_token(&w), "POST", "/sync", Some(&bearer()));
    assert_eq!(a.status, 409);
    assert_eq!(json_body(&a)["outcome"], "removals_withheld");
    assert!(w.sim.member_ids(GROUP).contains(&"stale1".to_string()));
    // the hub fails: 502 with the kind
    w.hub.state.lock().unwrap().fail_page_at_offset = Some((0, 503));
    let a = answer(runner(), &with_token(&w), "POST", "/sync", Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(a.status, 502, "{r}");
    assert_eq!(error(&r["errors"][0]).0, "hub-unavailable");
    // a setting is invalid: 500 with the report
    let bad = with(with_token(&w), &[("max_removal_fraction", "2")]);
    let a = answer(runner(), &bad, "POST", "/sync", Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(a.status, 500, "{r}");
    assert_eq!(r["outcome"], "failed");
    let (kind, message) = error(&r["errors"][0]);
    assert_eq!(kind, "config");
    assert!(message.contains("max_removal_fraction"), "{message}");
    assert!(
        w.sim.member_ids(GROUP).contains(&"stale1".to_string()),
        "nobody removed"
    );
}

#[test]
fn post_sync_lets_an_approved_withheld_plan_through() {
    let w = world();
    let strict = with(with_token(&w), &[("max_removals", "0")]);
    let a = answer(runner(), &strict, "POST", "/sync", Some(&bearer()));
    assert_eq!(a.status, 409);
    let r = json_body(&a);
    let plan = r["targets"][0]["withheld_plan"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(w.sim.member_ids(GROUP).contains(&"stale1".to_string()));
    // another plan's name changes nothing
    let path = "/sync?approve=0000000000000000";
    let a = answer(runner(), &strict, "POST", path, Some(&bearer()));
    assert_eq!(a.status, 409);
    assert_eq!(json_body(&a)["targets"][0]["withheld_plan"], plan.as_str());
    let path = format!("/sync?approve={plan}");
    let a = answer(runner(), &strict, "POST", &path, Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(a.status, 200, "{r}");
    assert_eq!(r["targets"][0]["approved_plan"], plan.as_str());
    assert!(!w.sim.member_ids(GROUP).contains(&"stale1".to_string()));
}

#[test]
fn max_changes_per_pass_leaves_the_rest_to_the_next_call() {
    let w = world();
    let cfg = with(
        with_token(&w),
        &[("max_changes_per_pass", "2"), ("grouper_batch_size", "1")],
    );
    let a = answer(runner(), &cfg, "POST", "/sync", Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(a.status, 200, "{r}");
    assert_eq!(r["outcome"], "changes_remaining");
    assert_eq!(
        (&r["changes_remaining"], &r["targets"][0]["added"]),
        (&2.into(), &2.into())
    );
    let a = answer(runner(), &cfg, "POST", "/sync", Some(&bearer()));
    let r = json_body(&a);
    assert_eq!(
        (r["outcome"].as_str(), r["changes_remaining"].as_u64()),
        (Some("converged"), Some(0)),
        "{r}"
    );
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
}

#[test]
fn cli_loop_mode_runs_a_pass_every_interval_until_stopped() {
    let w = world();
    let cfg = with(settings(&w), &[("sync_every_seconds", "1")]);
    let limits = Limits {
        deadline: Duration::from_secs(20),
        ..open_limits()
    };
    let call = block_on(runner().cli_run(&inputs(&cfg, &[]), &limits));
    assert!(
        matches!(call.result, Err(Stopped::Deadline(_))),
        "the loop runs until the platform stops it: {:?}",
        call.result
    );
    let reports: Vec<Value> = call
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON report per line"))
        .collect();
    assert!(reports.len() >= 2, "{} passes in 20 s", reports.len());
    assert_eq!(reports[0]["targets"][0]["added"], 3);
    assert!(reports[1..]
        .iter()
        .all(|r| r["outcome"] == "converged" && r["targets"][0]["added"] == 0));
    assert!(call.stderr.contains("loop mode"));

    let bad = with(settings(&w), &[("sync_every_seconds", "often")]);
    let run = run_component(Entry::Cli, &bad, &[]);
    assert_eq!(run.exit_ok, Some(false));
    assert_eq!(error(&run.report()["errors"][0]).0, "config");
}

#[test]
fn spin_build_runs_a_pass_and_answers_post_sync() {
    let spin = runner_for(&spin_component_path());
    let w = world();
    let run = run_with(&spin, Entry::Typed, &settings(&w), &[]);
    assert_eq!(run.report()["outcome"], "converged", "{}", run.report());
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    let w = world();
    let a = answer(&spin, &with_token(&w), "POST", "/sync", Some(&bearer()));
    assert_eq!(a.status, 200, "{}", json_body(&a));
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    let a = answer(&spin, &with_token(&w), "POST", "/sync", Some("Bearer nope"));
    assert_eq!(a.status, 401);
}
