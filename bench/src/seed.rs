//! The real hub's users, seeded once per size and kept: writing `auth_state` takes one `PATCH` per
//! user (≈ 110 s for 5,000 users), so the first run keeps the seeded database and its crypt key in
//! `target/bench-seed/<n>-v1/`, and every later run starts its hub on a copy of them.

use anyhow::{bail, Context, Result};
use grouper_sync_testkit::real_hub::{self, RealHub};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Bump when the seeded content changes: older copies are then seeded again.
const SEED_VERSION: &str = "v1";

/// A real hub with `n` users `user000000…`, user `i` with the auth_state `auth_state(i)`.
pub fn real_hub(n: usize, auth_state: fn(usize) -> Value) -> Result<RealHub> {
    let kept = real_hub::repo_root()
        .join("target/bench-seed")
        .join(format!("{n}-{SEED_VERSION}"));
    let name = format!("bench-{n}");
    if kept.join("complete").exists() {
        let started = Instant::now();
        let key = std::fs::read_to_string(kept.join("crypt_key"))?;
        let dir = real_hub::repo_root()
            .join("target")
            .join(format!("jhub-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(
            kept.join("jupyterhub.sqlite"),
            dir.join("jupyterhub.sqlite"),
        )?;
        let hub = RealHub::start_with(
            &name,
            &[("JHUB_KEEP_DB", "1"), ("JUPYTERHUB_CRYPT_KEY", key.trim())],
        );
        check_seeded(&hub, n, auth_state)?;
        eprintln!(
            "{n} users with auth_state from {} in {:.0} s",
            kept.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(hub);
    }
    let key = crypt_key()?;
    let hub = RealHub::start_with(&name, &[("JUPYTERHUB_CRYPT_KEY", &key)]);
    let started = Instant::now();
    let names: Vec<String> = (0..n).map(|i| format!("user{i:06}")).collect();
    for chunk in names.chunks(500) {
        let (status, body) = hub.admin("POST", "/users", Some(&json!({ "usernames": chunk })));
        if status != 201 {
            bail!("creating users: {status} {body}");
        }
    }
    for (i, name) in names.iter().enumerate() {
        let (status, body) = hub.admin(
            "PATCH",
            &format!("/users/{name}"),
            Some(&json!({"auth_state": auth_state(i)})),
        );
        if status != 200 {
            bail!("auth_state of {name}: {status} {body}");
        }
    }
    eprintln!(
        "seeded {n} users with auth_state in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    keep(&hub.dir.join("jupyterhub.sqlite"), &key, &kept)
        .with_context(|| format!("keeping the seeded hub in {}", kept.display()))?;
    Ok(hub)
}

/// A fresh JUPYTERHUB_CRYPT_KEY (64 hex digits), kept with the database it encrypts.
fn crypt_key() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Copies the running hub's database (SQLite's online backup: consistent while the hub runs)
/// and the key its auth_state is encrypted with; `complete` is written last.
fn keep(db: &Path, key: &str, kept: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(kept);
    std::fs::create_dir_all(kept)?;
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2]); src.backup(dst); dst.close()",
        ])
        .arg(db)
        .arg(kept.join("jupyterhub.sqlite"))
        .status()?;
    if !status.success() {
        bail!("python3's sqlite3 backup failed");
    }
    std::fs::write(kept.join("crypt_key"), key)?;
    std::fs::write(kept.join("complete"), "")?;
    Ok(())
}

/// A kept database must hold what a fresh seeding would: every user, and auth_state readable with
/// the kept key (the last user's, as the sync's own token reads it).
fn check_seeded(hub: &RealHub, n: usize, auth_state: fn(usize) -> Value) -> Result<()> {
    // (a plain list: without the pagination Accept header the hub sends no total)
    let (status, page) = hub.admin("GET", &format!("/users?offset={}&limit=1", n - 1), None);
    if status != 200 || page.as_array().is_none_or(Vec::is_empty) {
        bail!("the kept hub lists fewer than {n} users (HTTP {status}): remove target/bench-seed and run again");
    }
    let last = format!("user{:06}", n - 1);
    let (status, user) = real_hub::http(
        "GET",
        &format!("{}/users/{last}", hub.api_url),
        &hub.sync_token,
        None,
    );
    if status != 200 || user["auth_state"] != auth_state(n - 1) {
        bail!("the kept hub's {last} has no readable auth_state (HTTP {status}): remove target/bench-seed and run again");
    }
    Ok(())
}
