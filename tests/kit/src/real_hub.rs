//! A real JupyterHub started by scripts/jupyterhub/hub.sh, and a minimal HTTP client to seed it.

use serde_json::Value;
use std::path::PathBuf;

/// The repository root (this file is used from the root crate's and the host's tests).
pub fn repo_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("scripts/jupyterhub/hub.sh").exists() {
        assert!(
            dir.pop(),
            "scripts/jupyterhub/hub.sh not found above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// A minimal HTTP/1.1 client for seeding the real hub (loopback, no TLS).
pub fn http(method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let (status, _, body) = request(method, url, Some(&format!("token {token}")), body);
    (status, body)
}

/// One loopback HTTP/1.1 request: status, response head (lower-cased) and JSON body (or null).
pub fn request(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
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
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
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
    /// A token with the sync's scopes plus `groups` and `admin:groups` (for to_hub targets).
    pub groups_token: String,
    /// The hub's own URL (`…/hub`), for browser-like requests such as a login.
    pub hub_url: String,
    /// Where the proxy serves the hub, services and user servers on one origin
    /// (`http://127.0.0.1:PORT`; only with `JHUB_PROXY=chp`).
    pub public_url: String,
}

impl RealHub {
    pub fn start(name: &str) -> RealHub {
        Self::start_with(name, &[])
    }

    /// Starts a hub with extra environment for hub.sh (e.g. `JHUB_SYNC_SERVICE`).
    pub fn start_with(name: &str, env: &[(&str, &str)]) -> RealHub {
        let root = repo_root();
        let dir = root
            .join("target")
            .join(format!("jhub-{name}-{}", std::process::id()));
        let status = std::process::Command::new(root.join("scripts/jupyterhub/hub.sh"))
            .arg("start")
            .arg(&dir)
            .envs(env.iter().copied())
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
            groups_token: get("JHUB_GROUPS_TOKEN"),
            hub_url: get("JHUB_HUB_URL"),
            public_url: get("JHUB_PUBLIC_URL"),
            dir,
        }
    }

    /// Logs `name` in through the login form, as a browser would (scripts/jupyterhub/login.py).
    pub fn login(&self, name: &str) {
        let root = repo_root();
        let venv = std::env::var("JHUB_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target/jhub-venv"));
        let out = std::process::Command::new(venv.join("bin/python"))
            .arg(root.join("scripts/jupyterhub/login.py"))
            .arg(&self.hub_url)
            .arg(name)
            .output()
            .expect("run login.py");
        assert!(
            out.status.success(),
            "login of {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The members of a hub group, sorted (admin token).
    pub fn group_members(&self, group: &str) -> Vec<String> {
        let (status, body) = self.admin("GET", &format!("/groups/{group}"), None);
        assert_eq!(status, 200, "{body}");
        let mut names: Vec<String> = body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
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
        let root = repo_root();
        let _ = std::process::Command::new(root.join("scripts/jupyterhub/hub.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
