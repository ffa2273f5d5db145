//! Test harness: builds the release component once, instantiates it in-process with wasmtime 48
//! (wasi, wasi-http, wasi-config), and runs either export. Also a small fake JupyterHub for fault
//! injection (the real hub is used by tests/real_hub.rs).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::{Component, Val};
use wasmtime::Store;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub mod runtime;
pub use runtime::{engine, Host};

pub const SYNC_INTERFACE: &str = "jupyterhub-grouper-sync:sync/sync@0.1.0";

/// The component, compiled once per test process.
pub fn component() -> &'static Component {
    static COMPONENT: OnceLock<Component> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        Component::from_file(engine(), component_path()).expect("compile component")
    })
}

/// Builds `target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm` (a no-op when fresh).
/// The wasm build uses its own lock directory, so this is safe inside `cargo test`.
pub fn component_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "jupyterhub-grouper-sync",
            ])
            .status()
            .expect("run cargo to build the component");
        assert!(
            status.success(),
            "building the component failed (is the wasm32-wasip2 target installed?)"
        );
        root.join("target/wasm32-wasip2/release/jupyterhub_grouper_sync.wasm")
    })
}

/// What one run of the component produced.
#[derive(Debug)]
pub struct Run {
    /// The typed export's result: `Ok(report JSON)` or `Err(config error text)`.
    pub result: Result<Value, String>,
    /// For `wasi:cli/run`: whether it returned ok (exit status 0).
    pub exit_ok: Option<bool>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn report(&self) -> &Value {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!(
                "expected a report, got config error: {e}\nstderr:\n{}",
                self.stderr
            ),
        }
    }
    pub fn target(&self) -> &Value {
        &self.report()["targets"][0]
    }
}

pub enum Entry {
    /// `jupyterhub-grouper-sync:sync/sync.run`
    Typed,
    /// `wasi:cli/run`
    Cli,
}

/// Runs the component once with these `wasi:config` values and environment variables.
pub fn run_component(entry: Entry, config: &[(String, String)], env: &[(String, String)]) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = rt.block_on(async {
        let stdout = MemoryOutputPipe::new(1 << 20);
        let stderr = MemoryOutputPipe::new(1 << 20);
        let wasi = wasmtime_wasi::WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(env)
            .build();
        let mut store = Store::new(engine(), Host::new(wasi, config));
        let instance = runtime::linker()
            .instantiate_async(&mut store, component())
            .await
            .expect("instantiate");
        let (iface, func_name) = match entry {
            Entry::Typed => (SYNC_INTERFACE, "run"),
            Entry::Cli => ("wasi:cli/run@0.2.2", "run"),
        };
        let iface_idx = instance
            .get_export_index(&mut store, None, iface)
            .expect("interface export");
        let func_idx = instance
            .get_export_index(&mut store, Some(&iface_idx), func_name)
            .expect("run export");
        let func = instance.get_func(&mut store, func_idx).expect("func");
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &[], &mut results)
            .await
            .expect("call run");
        let (result, exit_ok) = match (&entry, &results[0]) {
            (Entry::Typed, Val::Result(Ok(Some(report)))) => (Ok(typed_report(report)), None),
            (Entry::Typed, Val::Result(Err(Some(err)))) => (Err(format!("{err:?}")), None),
            (Entry::Cli, Val::Result(r)) => (Err("cli".into()), Some(r.is_ok())),
            (_, other) => panic!("unexpected result {other:?}"),
        };
        let stdout = String::from_utf8_lossy(&stdout.contents()).into_owned();
        let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
        let result = match entry {
            Entry::Cli => serde_json::from_str(stdout.trim())
                .map_err(|e| format!("stdout is not one JSON line ({e}): {stdout}")),
            Entry::Typed => result,
        };
        eprintln!("--- component stderr ---\n{stderr}");
        Run {
            result,
            exit_ok,
            stdout,
            stderr,
        }
    });
    // Abandoned connections (a timed-out request) must not hold the test up.
    rt.shutdown_background();
    run
}

/// Reads the typed record: returns its `json` field parsed, after checking that the typed
/// outcome and counts agree with it.
fn typed_report(report: &Val) -> Value {
    let Val::Record(fields) = report else {
        panic!("report is not a record: {report:?}")
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {name}"))
    };
    let Val::String(json) = field("json") else {
        panic!("json field")
    };
    let parsed: Value = serde_json::from_str(json).expect("json field parses");
    let Val::Enum(outcome) = field("outcome") else {
        panic!("outcome field")
    };
    assert_eq!(
        outcome.replace('-', "_"),
        parsed["outcome"].as_str().unwrap(),
        "typed outcome matches JSON"
    );
    let Val::U32(seen) = field("users-seen") else {
        panic!("users-seen")
    };
    assert_eq!(*seen as u64, parsed["users_seen"].as_u64().unwrap());
    parsed
}

/// Configuration as `wasi:config` pairs.
pub fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Replaces or adds pairs.
pub fn with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        base.retain(|(bk, _)| bk != k);
        base.push((k.to_string(), v.to_string()));
    }
    base
}

/// Reads a Grouper capture from ../shared/fixtures/grouper, or None (with a message) when absent.
pub fn fixture(name: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/grouper")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))),
        Err(_) => {
            eprintln!(
                "SKIP: Grouper fixture {} is absent (third-party captures live outside the repo)",
                path.display()
            );
            None
        }
    }
}

/// A fake JupyterHub speaking the real API's shapes, for fault injection.
pub struct FakeHub {
    pub url: String,
    pub state: Arc<Mutex<FakeHubState>>,
    _server: grouper_sim::ServerHandle,
}

#[derive(Default)]
pub struct FakeHubState {
    /// (name, admin, auth_state)
    pub users: Vec<(String, bool, Value)>,
    pub page_limit: usize,
    /// Answer the list page at this offset with this status.
    pub fail_page_at_offset: Option<(usize, u16)>,
    /// Answer this user's record with this status.
    pub fail_user: Option<(String, u16)>,
    pub requests: Vec<String>,
    /// Each user-record request waits this long, so overlapping requests can be counted.
    pub user_delay: std::time::Duration,
    pub in_flight: usize,
    pub max_in_flight: usize,
}

impl FakeHub {
    pub fn start(users: Vec<(String, bool, Value)>, page_limit: usize) -> FakeHub {
        let state = Arc::new(Mutex::new(FakeHubState {
            users,
            page_limit,
            ..Default::default()
        }));
        let st = state.clone();
        let server = grouper_sim::server::serve(
            "127.0.0.1:0",
            Arc::new(move |req: &grouper_sim::SimRequest| {
                let is_user = req.target.contains("/users/");
                let delay = {
                    let mut s = st.lock().unwrap();
                    if is_user {
                        s.in_flight += 1;
                        s.max_in_flight = s.max_in_flight.max(s.in_flight);
                    }
                    s.user_delay
                };
                if is_user {
                    std::thread::sleep(delay);
                }
                let (status, body) = fake_hub_answer(&st, &req.target);
                if is_user {
                    st.lock().unwrap().in_flight -= 1;
                }
                grouper_sim::SimResponse {
                    status,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: body.to_string().into_bytes(),
                    delay: None,
                    truncate_at: None,
                }
            }),
        )
        .expect("fake hub");
        FakeHub {
            url: format!("http://{}/hub/api", server.addr),
            state,
            _server: server,
        }
    }
}

fn fake_hub_answer(state: &Mutex<FakeHubState>, url: &str) -> (u16, Value) {
    let mut st = state.lock().unwrap();
    st.requests.push(url.to_string());
    let path = url.strip_prefix("/hub/api").unwrap_or(url);
    if let Some(query) = path.strip_prefix("/users?") {
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse::<usize>().ok())
        };
        let offset = param("offset").unwrap_or(0);
        let limit = param("limit").unwrap_or(50).min(st.page_limit);
        if let Some((at, status)) = st.fail_page_at_offset {
            if at == offset {
                return (
                    status,
                    json!({"status": status, "message": "Internal Server Error"}),
                );
            }
        }
        let total = st.users.len();
        let items: Vec<Value> = st
            .users
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(n, admin, _)| json!({"kind": "user", "name": n, "admin": admin, "auth_state": null}))
            .collect();
        let next = if offset + limit < total {
            json!({"offset": offset + limit, "limit": limit, "url": "ignored"})
        } else {
            Value::Null
        };
        return (
            200,
            json!({"items": items, "_pagination": {"offset": offset, "limit": limit, "total": total, "next": next}}),
        );
    }
    if let Some(name) = path.strip_prefix("/users/") {
        let name = decode(name);
        if let Some((n, status)) = &st.fail_user {
            if *n == name {
                return (*status, json!({"status": status, "message": null}));
            }
        }
        return match st.users.iter().find(|(n, _, _)| *n == name) {
            Some((n, admin, state)) => (
                200,
                json!({"kind": "user", "name": n, "admin": admin, "auth_state": state}),
            ),
            None => (404, json!({"status": 404, "message": null})),
        };
    }
    (404, json!({"status": 404, "message": null}))
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal HTTP/1.1 client for seeding the real hub (loopback, no TLS).
pub fn http(method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to hub");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: token {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A real JupyterHub started by scripts/jupyterhub/hub.sh; stopped on drop.
pub struct RealHub {
    pub dir: PathBuf,
    pub api_url: String,
    pub admin_token: String,
    pub sync_token: String,
    pub listonly_token: String,
}

impl RealHub {
    pub fn start(name: &str) -> RealHub {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root
            .join("target")
            .join(format!("jhub-{name}-{}", std::process::id()));
        let status = std::process::Command::new(root.join("scripts/jupyterhub/hub.sh"))
            .arg("start")
            .arg(&dir)
            .status()
            .expect("run scripts/jupyterhub/hub.sh");
        assert!(
            status.success(),
            "the real JupyterHub did not start (see {}/jupyterhub.log)",
            dir.display()
        );
        let env = std::fs::read_to_string(dir.join("hub.env")).unwrap();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        RealHub {
            api_url: get("JUPYTERHUB_API_URL"),
            admin_token: get("JHUB_ADMIN_TOKEN"),
            sync_token: get("JHUB_SYNC_TOKEN"),
            listonly_token: get("JHUB_LISTONLY_TOKEN"),
            dir,
        }
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        http(
            method,
            &format!("{}{path}", self.api_url),
            &self.admin_token,
            body,
        )
    }
}

impl Drop for RealHub {
    fn drop(&mut self) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let _ = std::process::Command::new(root.join("scripts/jupyterhub/hub.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
