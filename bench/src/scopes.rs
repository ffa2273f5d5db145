//! Does a token with fewer scopes make the hub's list cheaper? The same listing, timed with tokens
//! of the README's role and of narrower scope sets, each asked of the hub for its `admin` user.

use crate::{list_floor, median, times, Args, Setup};
use anyhow::{bail, Result};
use grouper_sync_testkit::real_hub::{self, RealHub};
use serde_json::{json, Value};

const SCOPE_SETS: &[&[&str]] = &[
    &["list:users", "read:users", "admin:auth_state"],
    &[
        "list:users",
        "read:users:name",
        "read:users:activity",
        "read:users:groups",
        "admin:auth_state",
    ],
    &["list:users", "read:users:name"],
];

pub fn table(args: &Args, hub: &RealHub, setup: &Setup, n: usize) -> Result<()> {
    println!("\n### real JupyterHub 6.1.1, {n} users: the list by the token's scopes\n");
    println!(
        "| token's scopes | runs | list s | hub-side s | bytes per user | keys of each user |"
    );
    println!("|---|---|---|---|---|---|");
    for scopes in SCOPE_SETS {
        let (status, answer) = hub.admin(
            "POST",
            "/users/admin/tokens",
            Some(&json!({"scopes": scopes, "expires_in": 3600, "note": "grouper-sync-bench"})),
        );
        let Some(token) = answer["token"].as_str() else {
            bail!("a token with {scopes:?} for the hub's admin user: HTTP {status} {answer}");
        };
        let (status, page) = real_hub::http(
            "GET",
            &format!("{}/users?limit=200", setup.hub_url),
            token,
            None,
        );
        let users = page.as_array().map(Vec::as_slice).unwrap_or_default();
        if status != 200 || users.is_empty() {
            bail!("listing with {scopes:?}: HTTP {status}");
        }
        let bytes = Value::Array(users.to_vec()).to_string().len() / users.len();
        let mut keys: Vec<&str> = users[0]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let with_token = Setup {
            token: token.to_string(),
            ..setup.clone()
        };
        let samples = times(args.runs, || list_floor(&with_token))?;
        println!(
            "| {} | {} | {:.2} | {:.2} | {bytes} | {} |",
            scopes.join(", "),
            samples.len(),
            median(&samples, |s| s.wall),
            median(&samples, |s| s.hub_side),
            keys.join(", ")
        );
    }
    Ok(())
}
