//! The standard test world: a fake hub with every kind of user and a simulated Grouper group
//! holding one stale member and one group member the sync must never touch.

use crate::{config, FakeHub};
use grouper_sim::{Config, Operation, Simulator, Subject};
use serde_json::{json, Value};
use std::sync::Arc;

pub const GROUP: &str = "edu:example:app:hub:hub-users";
pub const TOKEN: &str = "hub-token-7f3e9c21-SECRET";
pub const PASSWORD: &str = "grouper-pw-b81d44aa-SECRET";

pub struct World {
    pub sim: Arc<Simulator>,
    pub server: grouper_sim::ServerHandle,
    pub hub: FakeHub,
}

pub fn canvas(login: &str) -> Value {
    json!({"canvas_user": {"login_id": login}, "access_token": "oauth-access-token-SECRET"})
}

/// A hub with: canvas users, an oauth_user-only user, a user without auth_state, an admin,
/// and a name that needs percent-encoding; a group holding one stale member and a manual group member.
pub fn world() -> World {
    let users = vec![
        ("alice".to_string(), false, canvas("100001")),
        (
            "bob".to_string(),
            false,
            json!({"oauth_user": {"login_id": "100002"}}),
        ),
        ("carol".to_string(), false, Value::Null),
        ("admin".to_string(), true, canvas("100009")),
        ("dan@example.edu".to_string(), false, canvas("100004")),
    ];
    let hub = FakeHub::start(users, 2);
    let sim = Simulator::new(Config {
        user: "svc-sync".into(),
        password: PASSWORD.into(),
        ..Config::default()
    });
    for id in ["100001", "100002", "100004", "100009", "stale1"] {
        sim.add_subject(Subject::new("ldap", id));
    }
    sim.add_group(GROUP);
    sim.add_member(GROUP, "ldap", "stale1");
    sim.add_member(GROUP, "g:gsa", "edu:example:staff");
    let server = sim.serve("127.0.0.1:0").unwrap();
    World { sim, server, hub }
}

pub fn settings(w: &World) -> Vec<(String, String)> {
    config(&[
        ("jupyterhub_api_url", &w.hub.url),
        ("jupyterhub_api_token", TOKEN),
        ("grouper_base_url", &w.server.base_url("v2_2_100")),
        ("grouper_user", "svc-sync"),
        ("grouper_password", PASSWORD),
        ("grouper_id_path", GROUP),
        ("retry_backoff_ms", "10"),
    ])
}

/// The kind and message of a typed error in the JSON report.
pub fn error(v: &Value) -> (&str, &str) {
    (
        v["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("no error kind in {v}")),
        v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {v}")),
    )
}

/// The Grouper operations the simulator received, in order.
pub fn ops(sim: &Simulator) -> Vec<Operation> {
    sim.requests().iter().filter_map(|r| r.operation).collect()
}
