//! Keeping a Google Group's settings (the built component against the fake hub, the Grouper
//! simulator and the Google simulator): every failure of the token endpoint and the Groups
//! Settings API is typed, writes nothing it should not, and never costs a membership.

use grouper_sync_e2e as common;

use common::world::{error, settings, world, World, GROUP};
use common::*;
use google_sim::{Endpoint, Fault, FaultAction, GoogleSim, SETTINGS_SCOPE};
use serde_json::{json, Value};
use std::sync::Arc;

const EMAIL: &str = "hub-users@lists.example.edu";
const ADMIN: &str = "groups-admin@example.edu";

struct Google {
    sim: Arc<GoogleSim>,
    _server: grouper_sim::ServerHandle,
    url: String,
    key_json: String,
}

/// A Google with a delegated account, its admin and the hub-users group (Google's defaults).
fn google() -> Google {
    let sim = GoogleSim::new();
    let server = sim.serve("127.0.0.1:0").unwrap();
    let account = sim.add_service_account("sync@project.iam.gserviceaccount.com");
    sim.delegate(&account.client_email, SETTINGS_SCOPE);
    sim.add_admin(ADMIN);
    sim.add_group(EMAIL);
    Google {
        url: format!("http://{}", server.addr),
        sim,
        _server: server,
        key_json: account.key_json,
    }
}

fn config(w: &World, g: &Google, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut base = vec![
        ("google_group", "{extension}@lists.example.edu"),
        (
            "google_group_settings",
            r#"{"whoCanPostMessage": "ALL_MANAGERS_CAN_POST", "whoCanViewMembership": "ALL_MANAGERS_CAN_VIEW", "allowExternalMembers": false}"#,
        ),
        ("google_service_account_key", g.key_json.as_str()),
        ("google_admin_subject", ADMIN),
        ("google_api_url", g.url.as_str()),
    ];
    base.extend_from_slice(extra);
    with(settings(w), &base)
}

fn flat_target(r: &Value) -> Value {
    r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["group"] == GROUP)
        .cloned()
        .unwrap()
}

fn patches(g: &Google) -> usize {
    g.sim
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

fn status_fault(endpoint: Endpoint, status: u16, times: u32) -> Fault {
    Fault {
        endpoint,
        action: FaultAction::Status {
            status,
            body: format!(r#"{{"error": {{"code": {status}, "message": "simulated"}}}}"#),
            retry_after: (status == 429).then_some(1),
        },
        times,
    }
}

#[test]
fn a_dry_run_names_the_fields_it_would_set_and_sets_none() {
    let (w, g) = (world(), google());
    let run = run_component(Entry::Typed, &config(&w, &g, &[("dry_run", "true")]), &[]);
    let t = flat_target(run.report());
    assert_eq!(
        t["google"]["changed"],
        json!(["whoCanPostMessage", "whoCanViewMembership"]),
        "{t}"
    );
    assert_eq!(patches(&g), 0);
    assert_eq!(
        g.sim.settings(EMAIL).unwrap()["whoCanPostMessage"],
        "ANYONE_CAN_POST"
    );
}

#[test]
fn a_rejected_token_is_fetched_again_once_and_the_pass_goes_on() {
    let (w, g) = (world(), google());
    g.sim.push_fault(status_fault(Endpoint::Settings, 401, 1));
    let run = run_component(Entry::Typed, &config(&w, &g, &[]), &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(g.sim.tokens_issued(), 2);
    assert_eq!(
        flat_target(r)["google"]["changed"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn each_refusal_is_typed_writes_no_setting_and_keeps_the_membership_pass() {
    type Arrange = fn(&Google);
    let cases: [(&str, Arrange, &str); 5] = [
        // the key of an account without domain-wide delegation (added below)
        ("no delegation", |_| {}, "google-forbidden"),
        ("API disabled", |g| g.sim.disable_api(), "google-forbidden"),
        (
            "rate limited",
            |g| g.sim.push_fault(status_fault(Endpoint::Settings, 429, 10)),
            "google-unavailable",
        ),
        (
            "token endpoint down",
            |g| g.sim.push_fault(status_fault(Endpoint::Token, 503, 10)),
            "google-unavailable",
        ),
        ("an unknown admin", |_| {}, "google-unauthorized"),
    ];
    for (name, arrange, kind) in cases {
        let (w, g) = (world(), google());
        arrange(&g);
        let mut extra: Vec<(&str, String)> = vec![];
        if name == "no delegation" {
            let undelegated = g
                .sim
                .add_service_account("undelegated@project.iam.gserviceaccount.com");
            extra.push(("google_service_account_key", undelegated.key_json));
        }
        if name == "an unknown admin" {
            extra.push(("google_admin_subject", "nobody@example.edu".into()));
        }
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = run_component(
            Entry::Typed,
            &config(&w, &g, &[&extra[..], &[("retries", "1")]].concat()),
            &[],
        );
        let r = run.report();
        let t = flat_target(r);
        assert_eq!(t["outcome"], "failed", "{name}: {t}");
        let (got, message) = error(&t["error"]);
        assert_eq!(got, kind, "{name}: {message}");
        assert_eq!(patches(&g), 0, "{name}");
        // the membership half of the target was done first: the stale member went, the hub's came
        assert_eq!(t["added"], 3, "{name}: {t}");
        assert!(
            !w.sim.member_ids(GROUP).contains(&"stale1".to_string()),
            "{name}"
        );
        assert!(
            !run.stdout.contains("ya29.") && !run.stderr.contains("ya29."),
            "{name}: a token was logged"
        );
    }
}

#[test]
fn a_google_group_not_provisioned_yet_is_reported_not_failed() {
    let (w, g) = (world(), google());
    g.sim.remove_group(EMAIL);
    let run = run_component(Entry::Typed, &config(&w, &g, &[]), &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    let t = flat_target(r);
    assert_eq!(t["google"]["provisioned"], false, "{t}");
    assert!(t["error"].is_null(), "{t}");
}

#[test]
fn check_says_plainly_what_the_api_cannot_set() {
    let (w, g) = (world(), google());
    let check = run_check(&config(&w, &g, &[]));
    let t = check.targets.iter().find(|t| t.group == GROUP).unwrap();
    assert!(
        t.notes
            .iter()
            .any(|n| n.contains("who can view member email addresses") && n.contains("no field")),
        "{:?}",
        t.notes
    );
    assert!(
        t.notes
            .iter()
            .any(|n| n.contains(EMAIL) && n.contains("whoCanPostMessage")),
        "the fields a pass would set: {:?}",
        t.notes
    );
    assert_eq!(patches(&g), 0, "check writes nothing");
}

#[test]
fn a_google_slower_than_the_request_timeout_is_a_timeout_and_sets_nothing() {
    let (w, g) = (world(), google());
    g.sim.push_fault(Fault {
        endpoint: Endpoint::Settings,
        action: FaultAction::Delay(std::time::Duration::from_secs(120)),
        times: 10,
    });
    let cfg = config(
        &w,
        &g,
        &[("request_timeout_seconds", "1"), ("retries", "0")],
    );
    let run = run_component(Entry::Typed, &cfg, &[]);
    let t = flat_target(run.report());
    let (kind, message) = error(&t["error"]);
    assert_eq!(kind, "timeout", "{message}");
    assert_eq!(patches(&g), 0);
    assert_eq!(t["added"], 3, "{t}");
}
