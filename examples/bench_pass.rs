//! Benchmark: full sync passes against a real JupyterHub 6.1.1 (started on 127.0.0.1 by
//! scripts/jupyterhub/hub.sh) and the Grouper simulator, with the release component in wasmtime.
//!
//! cargo run --release --example bench_pass -- [USERS] (default 1000)
//!
//! Prints, per concurrency setting, the wall time of a first pass (every user added) and of a
//! second pass (nothing to change), with the request counts from the pass report.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use grouper_sim::{Config, Simulator, Subject};
use serde_json::json;
use std::time::Instant;

const GROUP: &str = "edu:example:app:bench:users";

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let hub = RealHub::start("bench");
    let names: Vec<String> = (0..users).map(|i| format!("u{i:05}")).collect();
    let seed = Instant::now();
    for chunk in names.chunks(200) {
        assert_eq!(
            hub.admin("POST", "/users", Some(&json!({ "usernames": chunk })))
                .0,
            201
        );
    }
    for (i, n) in names.iter().enumerate() {
        let state = json!({"auth_state": {"canvas_user": {"login_id": format!("{}", 500000 + i)}}});
        assert_eq!(
            hub.admin("PATCH", &format!("/users/{n}"), Some(&state)).0,
            200
        );
    }
    println!(
        "seeded {users} users with auth_state in {:.1} s",
        seed.elapsed().as_secs_f64()
    );
    let _ = runner(); // compile once, outside the timings

    println!("concurrency | pass     | wall s | hub requests | grouper requests | outcome");
    for concurrency in ["1", "4", "16"] {
        let sim = Simulator::new(Config {
            user: "b".into(),
            password: "b".into(),
            ..Config::default()
        });
        for i in 0..users {
            sim.add_subject(Subject::new("ldap", &format!("{}", 500000 + i)));
        }
        sim.add_group(GROUP);
        let server = sim.serve("127.0.0.1:0").unwrap();
        let settings = config(&[
            ("jupyterhub_api_url", &hub.api_url),
            ("jupyterhub_api_token", &hub.sync_token),
            ("grouper_base_url", &server.base_url("v2_2_100")),
            ("grouper_user", "b"),
            ("grouper_password", "b"),
            ("grouper_id_path", GROUP),
            ("concurrency", concurrency),
            ("log_level", "warn"),
        ]);
        for pass in ["first", "no-op"] {
            let start = Instant::now();
            let run = run_component(Entry::Typed, &settings, &[]);
            let wall = start.elapsed().as_secs_f64();
            let r = run.report();
            println!(
                "{concurrency:>11} | {pass:<8} | {wall:>6.2} | {:>12} | {:>16} | {}",
                r["requests"]["jupyterhub"], r["requests"]["grouper"], r["outcome"]
            );
        }
        assert_eq!(sim.member_ids(GROUP).len(), users);
    }
}
