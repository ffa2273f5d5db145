//! The fault matrix (TESTING.md lists it): each scenario breaks the hub or Grouper in one way
//! for one pass of the built component, then checks that nobody was wrongly removed, that the
//! report says what happened, and that the next pass, with the fault gone, converges.

use grouper_sync_e2e as common;

use common::fake_hub::{HubAction, HubFault, HubRoute};
use common::world::{canvas, ops, settings, world, World, GROUP};
use common::*;
use grouper_sim::{Fault, FaultAction, Operation, Subject};
use serde_json::{json, Value};
use std::time::Duration;

/// Longer than the scenarios' request timeout (2 s) by a margin a busy machine cannot eat.
const STALL: Duration = Duration::from_secs(6);

/// The group before the first pass: two members the hub confirms, one it does not (`stale1`),
/// and a group member the sync never manages.
const BEFORE: [&str; 4] = ["100001", "100002", "edu:example:staff", "stale1"];
/// The group when both sides are read: the hub's three mapped users and the group member.
const CONVERGED: [&str; 4] = ["100001", "100002", "100004", "edu:example:staff"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Converged,
    Withheld,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Converged => "converged",
            Outcome::Withheld => "removals_withheld",
            Outcome::Failed => "failed",
        }
    }
}

struct Scenario {
    name: &'static str,
    /// Breaks the world for the first pass.
    inject: fn(&World),
    /// Settings of the first pass only (e.g. a closed port).
    config: &'static [(&'static str, &'static str)],
    outcome: Outcome,
    /// An error of this kind is in the report (top level or the target's).
    kind: Option<&'static str>,
    /// What the report says (errors, withheld reason, failures), in part.
    says: &'static str,
    /// The group after a pass with the fault gone, when the fault changed what is right.
    converged: Option<&'static [&'static str]>,
}

const fn s(
    name: &'static str,
    inject: fn(&World),
    outcome: Outcome,
    kind: Option<&'static str>,
    says: &'static str,
) -> Scenario {
    Scenario {
        name,
        inject,
        config: &[],
        outcome,
        kind,
        says,
        converged: None,
    }
}

fn hub_fault(w: &World, route: HubRoute, action: HubAction, times: u32) {
    w.hub.state.lock().unwrap().faults.push(HubFault {
        route,
        action,
        times,
    });
}

fn hub_answer(w: &World, route: HubRoute, status: u16, content_type: &'static str, body: &str) {
    hub_fault(
        w,
        route,
        HubAction::Answer {
            status,
            content_type,
            body: body.into(),
            retry_after: None,
        },
        100,
    );
}

fn grouper_fault(w: &World, operation: Option<Operation>, action: FaultAction, times: u32) {
    w.sim.push_fault(Fault {
        operation,
        action,
        times,
    });
}

fn grouper_status(w: &World, op: Operation, status: u16, content_type: &str, body: &str) {
    grouper_fault(
        w,
        Some(op),
        FaultAction::Status {
            status,
            content_type: content_type.into(),
            body: body.into(),
            retry_after: None,
        },
        100,
    );
}

fn set_auth_state(w: &World, name: &str, state: Value) {
    let mut st = w.hub.state.lock().unwrap();
    if let Some(user) = st.users.iter_mut().find(|(n, _, _)| n == name) {
        user.2 = state;
    }
}

fn pagination(v: &mut Value) -> &mut Value {
    &mut v["_pagination"]
}

const GROUPER_EXCEPTION: &str = r#"{"WsGetMembersResults":{"resultMetadata":{"resultCode":"EXCEPTION","success":"F","resultMessage":"java.lang.RuntimeException: Problem with query, database unavailable\n\tat edu.internet2.middleware.grouper.ws.GrouperServiceLogic.getMembers(GrouperServiceLogic.java:1234)"}}}"#;
const TOMCAT_401: &str =
    "<html><head><title>Error 401 Unauthorized</title></head><body><h1>HTTP Status 401</h1></body></html>";

fn scenarios() -> Vec<Scenario> {
    use Outcome::*;
    vec![
        // --- the hub ---
        s(
            "hub: list answers 401",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    401,
                    "application/json",
                    r#"{"status": 401, "message": "Unauthorized"}"#,
                )
            },
            Failed,
            Some("hub-unauthorized"),
            "token",
        ),
        s(
            "hub: list answers 403 naming the scope",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    403,
                    "application/json",
                    r#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [list:users]"}"#,
                )
            },
            Failed,
            Some("hub-forbidden"),
            "list:users",
        ),
        s(
            "hub: list answers 404 (wrong API URL)",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    404,
                    "text/html",
                    "<html>404: Not Found</html>",
                )
            },
            Failed,
            Some("hub-bad-answer"),
            "404",
        ),
        s(
            "hub: list answers 500",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    500,
                    "application/json",
                    r#"{"status": 500, "message": "Internal Server Error"}"#,
                )
            },
            Failed,
            Some("hub-unavailable"),
            "500",
        ),
        s(
            "hub: list answers 503 on every retry",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    503,
                    "text/html",
                    "<html>Service Unavailable</html>",
                )
            },
            Failed,
            Some("hub-unavailable"),
            "503",
        ),
        s(
            "hub: list answers 503 once, the retry succeeds",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(0),
                    HubAction::Answer {
                        status: 503,
                        content_type: "text/html",
                        body: "busy".into(),
                        retry_after: None,
                    },
                    1,
                )
            },
            Converged,
            None,
            "",
        ),
        s(
            "hub: list answers 429 with Retry-After, then succeeds",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(0),
                    HubAction::Answer {
                        status: 429,
                        content_type: "application/json",
                        body: r#"{"status": 429, "message": "Too many requests"}"#.into(),
                        retry_after: Some(1),
                    },
                    1,
                )
            },
            Converged,
            None,
            "",
        ),
        s(
            "hub: the second list page answers 502",
            |w| {
                hub_answer(
                    w,
                    HubRoute::List(2),
                    502,
                    "text/html",
                    "<html>Bad Gateway</html>",
                )
            },
            Failed,
            Some("hub-unavailable"),
            "502",
        ),
        Scenario {
            config: &[("jupyterhub_api_url", "http://127.0.0.1:9/hub/api")],
            ..s(
                "hub: connection refused",
                |_| {},
                Failed,
                Some("hub-unavailable"),
                "connection failed",
            )
        },
        s(
            "hub: list times out before the headers",
            |w| hub_fault(w, HubRoute::AnyList, HubAction::Delay(STALL), 100),
            Failed,
            Some("timeout"),
            "timed out",
        ),
        s(
            "hub: list stalls in the middle of the body",
            |w| hub_fault(w, HubRoute::AnyList, HubAction::Stall(STALL), 100),
            Failed,
            Some("hub-unavailable"),
            "connection read timeout",
        ),
        s(
            "hub: list body cut short",
            |w| hub_fault(w, HubRoute::AnyList, HubAction::Truncate, 100),
            Failed,
            Some("hub-unavailable"),
            "could not be read",
        ),
        s(
            "hub: list body is not JSON",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    200,
                    "application/json",
                    r#"{"items": [{"name": "alice""#,
                )
            },
            Failed,
            Some("hub-bad-answer"),
            "listing hub users",
        ),
        s(
            "hub: an HTML error page with status 200",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyList,
                    200,
                    "text/html",
                    "<html><body>Hub is restarting</body></html>",
                )
            },
            Failed,
            Some("hub-bad-answer"),
            "listing hub users",
        ),
        s(
            "hub: next points back to the first page",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(2),
                    HubAction::Rewrite(|v| pagination(v)["next"]["offset"] = json!(0)),
                    100,
                )
            },
            Failed,
            Some("hub-bad-answer"),
            "offset",
        ),
        s(
            "hub: next repeats the same page",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(2),
                    HubAction::Rewrite(|v| pagination(v)["next"]["offset"] = json!(2)),
                    100,
                )
            },
            Failed,
            Some("hub-bad-answer"),
            "offset",
        ),
        s(
            "hub: total shrinks while listing (a user may be skipped)",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(2),
                    HubAction::Rewrite(|v| pagination(v)["total"] = json!(3)),
                    100,
                )
            },
            Withheld,
            Some("hub-incomplete"),
            "total went from 5 to 3",
        ),
        s(
            "hub: the listing ends before its total",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(2),
                    HubAction::Rewrite(|v| {
                        pagination(v)["total"] = json!(9);
                        pagination(v)["next"] = Value::Null;
                    }),
                    100,
                )
            },
            Withheld,
            Some("hub-incomplete"),
            "reported 9 users but the listing returned 4",
        ),
        s(
            "hub: a list page without items",
            |w| {
                hub_fault(
                    w,
                    HubRoute::List(0),
                    HubAction::Rewrite(|v| {
                        v.as_object_mut().unwrap().remove("items");
                    }),
                    100,
                )
            },
            Failed,
            Some("hub-bad-answer"),
            "listing hub users",
        ),
        Scenario {
            // The fake hub takes seconds to write 33 MiB on a busy debug build: past the 2 s
            // timeout this scenario is not about.
            config: &[("request_timeout_seconds", "120")],
            ..s(
                "hub: a list page larger than the size cap",
                |w| {
                    hub_fault(
                        w,
                        HubRoute::List(0),
                        HubAction::Rewrite(|v| v["padding"] = json!("x".repeat(33 << 20))),
                        100,
                    )
                },
                Failed,
                Some("hub-bad-answer"),
                "larger than 32 MiB",
            )
        },
        Scenario {
            converged: Some(&["100001", "100004", "edu:example:staff"]),
            ..s(
                "hub: a user deleted between list and read",
                |w| hub_fault(w, HubRoute::List(4), HubAction::DeleteUser("bob"), 1),
                Converged,
                None,
                "",
            )
        },
        s(
            "hub: a user's record answers 500",
            |w| {
                hub_answer(
                    w,
                    HubRoute::User("bob".into()),
                    500,
                    "application/json",
                    r#"{"status": 500, "message": null}"#,
                )
            },
            Withheld,
            None,
            "incomplete read",
        ),
        s(
            "hub: a user's record times out",
            |w| {
                hub_fault(
                    w,
                    HubRoute::User("alice".into()),
                    HubAction::Delay(STALL),
                    100,
                )
            },
            Withheld,
            None,
            "incomplete read",
        ),
        s(
            "hub: a user's record is cut short",
            |w| hub_fault(w, HubRoute::User("alice".into()), HubAction::Truncate, 100),
            Withheld,
            None,
            "incomplete read",
        ),
        s(
            "hub: a user's record is an HTML page",
            |w| {
                hub_answer(
                    w,
                    HubRoute::User("alice".into()),
                    200,
                    "text/html",
                    "<html>Login</html>",
                )
            },
            Withheld,
            None,
            "incomplete read",
        ),
        s(
            "hub: every record answers 403 (admin:auth_state missing)",
            |w| {
                hub_answer(
                    w,
                    HubRoute::AnyUser,
                    403,
                    "application/json",
                    r#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [admin:auth_state]"}"#,
                )
            },
            Failed,
            Some("hub-forbidden"),
            "admin:auth_state",
        ),
        s(
            "hub: auth_state of the wrong type (a string)",
            |w| set_auth_state(w, "bob", json!("oauth_user=100002")),
            Withheld,
            Some("hub-bad-answer"),
            "auth_state is neither an object nor null",
        ),
        s(
            "hub: every auth_state lost (null)",
            |w| {
                for n in ["alice", "bob", "dan@example.edu", "admin"] {
                    set_auth_state(w, n, Value::Null)
                }
            },
            Withheld,
            None,
            "no hub user maps to a subject",
        ),
        Scenario {
            converged: Some(&[
                "100001",
                "100002",
                "100004",
                "100005",
                "100006",
                "100007",
                "100010",
                "100011",
                "edu:example:staff",
            ]),
            ..s(
                "hub: names with /, %, unicode, spaces, . and ..",
                |w| {
                    let mut st = w.hub.state.lock().unwrap();
                    for (n, id) in [
                        ("a/b", "100005"),
                        ("50%off", "100006"),
                        ("jöns dü", "100007"),
                        (".", "100010"),
                        ("..", "100011"),
                    ] {
                        st.users.push((n.into(), false, canvas(id)));
                    }
                    drop(st);
                    for id in ["100005", "100006", "100007", "100010", "100011"] {
                        w.sim.add_subject(Subject::new("ldap", id));
                    }
                },
                Converged,
                None,
                "",
            )
        },
        // --- Grouper ---
        s(
            "grouper: 401 HTML page from the container",
            |w| grouper_status(w, Operation::GetMembers, 401, "text/html", TOMCAT_401),
            Failed,
            Some("grouper-unauthorized"),
            "rejected the credentials",
        ),
        s(
            "grouper: 500 with an EXCEPTION body",
            |w| {
                grouper_status(
                    w,
                    Operation::GetMembers,
                    500,
                    "text/x-json",
                    GROUPER_EXCEPTION,
                )
            },
            Failed,
            Some("grouper-bad-answer"),
            "EXCEPTION",
        ),
        s(
            "grouper: 503 from a load balancer on every retry",
            |w| {
                grouper_status(
                    w,
                    Operation::GetMembers,
                    503,
                    "text/html",
                    "<html>Service Unavailable</html>",
                )
            },
            Failed,
            Some("grouper-unavailable"),
            "503",
        ),
        s(
            "grouper: 429 with Retry-After, then the write succeeds",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::AddMember),
                    FaultAction::Status {
                        status: 429,
                        content_type: "text/plain".into(),
                        body: "slow down".into(),
                        retry_after: Some(1),
                    },
                    1,
                )
            },
            Converged,
            None,
            "",
        ),
        Scenario {
            config: &[(
                "grouper_base_url",
                "http://127.0.0.1:9/grouper-ws/servicesRest/json/v2_2_100",
            )],
            ..s(
                "grouper: connection refused",
                |_| {},
                Failed,
                Some("grouper-unavailable"),
                "connection failed",
            )
        },
        s(
            "grouper: the member listing times out",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::GetMembers),
                    FaultAction::Delay(STALL),
                    100,
                )
            },
            Failed,
            Some("timeout"),
            "timed out",
        ),
        s(
            "grouper: the member listing stalls mid-body",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::GetMembers),
                    FaultAction::StallMidBody(STALL),
                    100,
                )
            },
            Failed,
            Some("grouper-unavailable"),
            "connection read timeout",
        ),
        s(
            "grouper: the member listing is cut short",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::GetMembers),
                    FaultAction::TruncatedBody,
                    100,
                )
            },
            Failed,
            Some("grouper-unavailable"),
            "could not be read",
        ),
        s(
            "grouper: the member listing is not JSON",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::GetMembers),
                    FaultAction::MalformedJson,
                    100,
                )
            },
            Failed,
            Some("grouper-bad-answer"),
            "members",
        ),
        Scenario {
            config: &[("grouper_id_path", "edu:example:app:hub:hub-user")],
            ..s(
                "grouper: GROUP_NOT_FOUND (a typo in the path)",
                |_| {},
                Failed,
                Some("group-not-found"),
                "GROUP_NOT_FOUND",
            )
        },
        s(
            "grouper: INSUFFICIENT_PRIVILEGES on writes",
            |w| w.sim.edit_group(GROUP, |g| g.update_denied = true),
            Failed,
            Some("grouper-forbidden"),
            "INSUFFICIENT_PRIVILEGES",
        ),
        s(
            "grouper: SUBJECT_NOT_FOUND for the only user to add",
            |w| {
                w.sim.add_member(GROUP, "ldap", "100004");
                w.hub
                    .state
                    .lock()
                    .unwrap()
                    .users
                    .push(("eve".into(), false, canvas("999999")));
            },
            Converged,
            None,
            "SUBJECT_NOT_FOUND",
        ),
        Scenario {
            converged: Some(&CONVERGED),
            ..s(
                "grouper: PROBLEM_WITH_ASSIGNMENT with mixed rows",
                |w| {
                    let mut st = w.hub.state.lock().unwrap();
                    st.users.push(("eve".into(), false, canvas("999999")));
                },
                Converged,
                None,
                "SUBJECT_NOT_FOUND",
            )
        },
        s(
            "grouper: the add is committed but its answer times out",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::AddMember),
                    FaultAction::Delay(STALL),
                    100,
                )
            },
            Failed,
            Some("timeout"),
            "timed out",
        ),
        s(
            "grouper: the delete answers 500 (nothing removed)",
            |w| {
                grouper_status(
                    w,
                    Operation::DeleteMember,
                    500,
                    "text/x-json",
                    r#"{"WsDeleteMemberResults":{"resultMetadata":{"resultCode":"EXCEPTION","success":"F","resultMessage":"database unavailable"}}}"#,
                )
            },
            Failed,
            Some("grouper-bad-answer"),
            "EXCEPTION",
        ),
        s(
            "grouper: the group changes while it is paged",
            |w| {
                grouper_fault(
                    w,
                    Some(Operation::GetMembers),
                    FaultAction::ChangeMembers {
                        group: GROUP.into(),
                        add: vec![("ldap".into(), "100003".into())],
                        remove: vec![],
                    },
                    1,
                )
            },
            Converged,
            None,
            "",
        ),
        Scenario {
            converged: Some(&CONVERGED),
            ..s(
                "grouper: a subject id in two sources (SUBJECT_DUPLICATE)",
                |w| {
                    w.sim.add_subject(Subject::new("ldap", "shared7"));
                    w.sim.add_subject(Subject::new("g:isa", "shared7"));
                    w.hub.state.lock().unwrap().users.push((
                        "sam".into(),
                        false,
                        canvas("shared7"),
                    ));
                },
                Converged,
                None,
                "SUBJECT_DUPLICATE",
            )
        },
        Scenario {
            converged: Some(&["100001", "100002", "100004", "edu:aaa", "edu:example:staff"]),
            ..s(
                "grouper: the same member on two pages (a member added before the cursor)",
                |w| {
                    grouper_fault(
                        w,
                        Some(Operation::GetMembers),
                        FaultAction::ChangeMembers {
                            group: GROUP.into(),
                            add: vec![("g:gsa".into(), "edu:aaa".into())],
                            remove: vec![],
                        },
                        1,
                    )
                },
                Converged,
                None,
                "",
            )
        },
    ]
}

/// The world of every scenario: the standard one with the group already holding two of the
/// hub's users, so that a wrong removal would show.
fn matrix_world() -> World {
    let w = world();
    w.sim.add_member(GROUP, "ldap", "100001");
    w.sim.add_member(GROUP, "ldap", "100002");
    w
}

fn base_settings(w: &World) -> Vec<(String, String)> {
    with(
        settings(w),
        &[
            ("grouper_page_size", "2"),
            ("retries", "1"),
            ("request_timeout_seconds", "2"),
            ("connect_timeout_seconds", "2"),
        ],
    )
}

/// Every message in the report: errors, the withheld reason, and per-subject failures.
fn said(r: &Value) -> String {
    let mut text = Vec::new();
    let mut push = |v: &Value| {
        if let Some(s) = v.as_str() {
            text.push(s.to_string());
        }
    };
    for e in r["errors"].as_array().into_iter().flatten() {
        push(&e["message"]);
    }
    for t in r["targets"].as_array().into_iter().flatten() {
        push(&t["error"]["message"]);
        push(&t["withheld_reason"]);
        for f in t["failures"].as_array().into_iter().flatten() {
            push(&f["code"]);
            push(&f["message"]);
        }
    }
    text.join("\n")
}

fn kinds(r: &Value) -> Vec<String> {
    let top = r["errors"].as_array().into_iter().flatten();
    let targets = r["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| &t["error"]);
    top.chain(targets)
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect()
}

/// Runs one scenario; returns what went wrong, if anything.
fn run(sc: &Scenario) -> Result<(), String> {
    let w = matrix_world();
    assert_eq!(w.sim.member_ids(GROUP), BEFORE);
    (sc.inject)(&w);
    let first_config = with(base_settings(&w), sc.config);
    let first = run_limited(runner(), Entry::Typed, &first_config, &[], &open_limits());
    let r = first.report();
    let mut problems = Vec::new();
    if r["outcome"] != sc.outcome.as_str() {
        problems.push(format!(
            "outcome {} (expected {})",
            r["outcome"],
            sc.outcome.as_str()
        ));
    }
    if let Some(kind) = sc.kind {
        if !kinds(r).iter().any(|k| k == kind) {
            problems.push(format!("no error of kind {kind}: {:?}", kinds(r)));
        }
    }
    let text = said(r);
    if !text.contains(sc.says) {
        problems.push(format!("the report does not say {:?}: {text}", sc.says));
    }
    // nobody wrongly removed: every member the right answer keeps is still there, and a pass
    // that did not converge removed nobody at all
    let right = sc.converged.unwrap_or(&CONVERGED);
    let after = w.sim.member_ids(GROUP);
    for m in BEFORE.iter().filter(|m| right.contains(m)) {
        if !after.iter().any(|a| a == m) {
            problems.push(format!("{m} was wrongly removed"));
        }
    }
    if sc.outcome != Outcome::Converged && !after.iter().any(|a| a == "stale1") {
        problems.push("a pass that did not converge removed a member".into());
    }
    // the next pass, with the fault gone, converges
    w.sim.clear_faults();
    w.hub.state.lock().unwrap().faults.clear();
    w.sim.edit_group(GROUP, |g| g.update_denied = false);
    // the hub's data, repaired
    set_auth_state(&w, "alice", canvas("100001"));
    set_auth_state(&w, "bob", json!({"oauth_user": {"login_id": "100002"}}));
    set_auth_state(&w, "dan@example.edu", canvas("100004"));
    let second = run_limited(
        runner(),
        Entry::Typed,
        &base_settings(&w),
        &[],
        &open_limits(),
    );
    if second.report()["outcome"] != "converged" {
        problems.push(format!(
            "the next pass did not converge: {}",
            second.report()
        ));
    }
    let after = w.sim.member_ids(GROUP);
    if after != right {
        problems.push(format!(
            "after the next pass the group is {after:?}, expected {right:?}"
        ));
    }
    let writes = ops(&w.sim).into_iter().filter(|o| o.is_write()).count();
    if problems.is_empty() {
        eprintln!("ok: {} ({writes} writes in all)", sc.name);
        Ok(())
    } else {
        Err(format!("{}:\n  {}", sc.name, problems.join("\n  ")))
    }
}

#[test]
fn fault_matrix() {
    let scenarios = scenarios();
    assert!(scenarios.len() >= 40, "{} scenarios", scenarios.len());
    let only = std::env::var("FAULT_SCENARIO").ok();
    let failures: Vec<String> = scenarios
        .iter()
        .filter(|sc| only.as_deref().is_none_or(|o| sc.name.contains(o)))
        .filter_map(|sc| run(sc).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The matrix as TESTING.md's table: `cargo test -p grouper-sync-e2e --test faults -- --ignored --nocapture table`.
#[test]
#[ignore]
fn table() {
    for sc in scenarios() {
        println!("{}", row(&sc));
    }
}

fn row(sc: &Scenario) -> String {
    let says = if sc.says.is_empty() {
        String::new()
    } else {
        format!("\"{}\"", sc.says)
    };
    format!(
        "| {} | `{}` | {} | {} |",
        sc.name,
        sc.outcome.as_str(),
        sc.kind.map(|k| format!("`{k}`")).unwrap_or_default(),
        says
    )
}

#[test]
fn testing_md_lists_every_scenario() {
    let doc = std::fs::read_to_string(common::real_hub::repo_root().join("TESTING.md"))
        .expect("TESTING.md");
    let missing: Vec<String> = scenarios()
        .iter()
        .map(row)
        .filter(|r| !doc.contains(r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "TESTING.md lacks these rows (regenerate with the `table` test):\n{}",
        missing.join("\n")
    );
}
