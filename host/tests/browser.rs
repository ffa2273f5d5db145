//! The status page in a real browser: Debian's headless Chromium driven over W3C WebDriver
//! (chromedriver), against a running `grouper-sync` with the simulator and a fake hub. An admin
//! signs in, sees the withheld plan, clicks **Approve** and **Run a pass now**, and the next pass
//! applies exactly that plan. A screenshot is kept in `target/status-page.png`.
//!
//! `.ci/run` installs `chromium` and `chromium-driver` with apt. Elsewhere, without them, the
//! test skips with a message; in CI (`CI` set) it fails.

use grouper_sync_testkit::fake_hub;

use grouper_sync_testkit::wait as support;

use base64::Engine;
use fake_hub::FakeHub;
use grouper_sim::{Config, Simulator, Subject};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::wait_for;

const GROUP: &str = "edu:example:app:hub:hub-users";
const HUB_TOKEN: &str = "browser-hub-token-DISTINCTIVE";
const PASSWORD: &str = "browser-grouper-pw-DISTINCTIVE";
const UI_TOKEN: &str = "browser-ui-token-DISTINCTIVE";
const BIN: &str = env!("CARGO_BIN_EXE_grouper-sync");

fn tool(path: &str) -> Option<PathBuf> {
    if Path::new(path).is_file() {
        return Some(PathBuf::from(path));
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} is missing; .ci/run installs chromium and chromium-driver with apt");
    }
    eprintln!("SKIP: {path} is missing (apt install chromium chromium-driver)");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange with a JSON body (or none): status and body. Reads exactly the
/// answer's length (chromedriver keeps connections open).
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    use std::io::BufRead;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        reader.read_exact(&mut out).unwrap();
    } else {
        reader.read_to_end(&mut out).unwrap();
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}

/// A chromedriver with one headless Chromium session; both end with the test.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Browser {
    fn start(chromedriver: &Path, chromium: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        wait_for("chromedriver", Duration::from_secs(120), || {
            std::net::TcpStream::connect(&addr).is_ok()
                && http(&addr, "GET", "/status", None)
                    .1
                    .contains("\"ready\":true")
        });
        let profile =
            std::env::temp_dir().join(format!("grouper-sync-chromium-{}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let (status, body) = http(&addr, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new WebDriver session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("/session/{}{path}", self.session);
        let (status, text) = http(&self.addr, method, &url, body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text_of(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the page an action redirected to says `what` (a form's submission navigates
    /// after the click returns, so the next click must wait for the new page).
    fn wait_for_notice(&self, what: &str) {
        wait_for(what, Duration::from_secs(120), || {
            self.source()
                .contains(&format!("<p class=\"notice\">{what}"))
        });
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn screenshot(&self, to: &Path) {
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn an_admin_approves_a_withheld_plan_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) =
        (tool("/usr/bin/chromium"), tool("/usr/bin/chromedriver"))
    else {
        return;
    };
    let hub = FakeHub::start(
        vec![
            (
                "ana".into(),
                false,
                json!({"canvas_user": {"login_id": "100001"}}),
            ),
            (
                "ben".into(),
                false,
                json!({"oauth_user": {"login_id": "100002"}}),
            ),
            ("cy".into(), false, Value::Null),
        ],
        200,
    );
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: PASSWORD.into(),
        ..Config::default()
    });
    for id in ["100001", "100002", "stale7"] {
        sim.add_subject(Subject::new("ldap", id));
    }
    sim.add_group(GROUP);
    sim.add_member(GROUP, "ldap", "stale7");
    let server = sim.serve("127.0.0.1:0").unwrap();
    let dir = std::env::temp_dir().join(format!("grouper-sync-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut service = Command::new(BIN)
        .args([
            "--GrouperSync.sync_every=3600",
            "--metrics-addr",
            &metrics,
            "--max-removals",
            "0",
        ])
        .env_clear()
        .env("JUPYTERHUB_API_URL", &hub.url)
        .env("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
        .env("GROUPER_BASE_URL", server.base_url("v2_2_100"))
        .env("GROUPER_USER", "sync")
        .env("GROUPER_PASSWORD", PASSWORD)
        .env("GROUPER_ID_PATH", GROUP)
        .env("GROUPER_SYNC_STATE_DIR", dir.join("state"))
        .env("GROUPER_SYNC_UI_TOKEN", UI_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first pass", Duration::from_secs(300), || {
        sim.member_ids(GROUP) == ["100001", "100002", "stale7"]
    });
    let browser = Browser::start(&chromedriver, &chromium);
    let page = format!("http://{metrics}/");
    wait_for("the pass on the page", Duration::from_secs(300), || {
        browser.open(&page);
        browser.source().contains("removals_withheld")
    });

    // the numbers on the page are the pass's: 3 users, 2 added, 1 skipped, 1 withheld
    let row = browser.text_of("tbody tr");
    assert!(row.contains("removals_withheld 3 2 0 1 1"), "{row}");
    let plan = browser.text_of(".withheld p code");
    assert_eq!(plan.len(), 16, "{plan}");
    assert!(
        browser.source().contains("stale7"),
        "the plan's members on demand"
    );

    // sign in, approve, run now
    browser.type_into("input[name=token]", UI_TOKEN);
    browser.click("form[action='login'] button");
    browser.wait_for_notice("Signed in.");
    // the screenshot for README: a withheld plan, its members opened, the buttons
    browser.click(".withheld details summary");
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/status-page.png");
    browser.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    eprintln!("screenshot: {}", shot.display());
    browser.click("form[action='approve'] button");
    browser.wait_for_notice(&format!("Approved plan {plan}"));
    browser.click("form[action='run'] button");
    browser.wait_for_notice("A pass was requested");
    wait_for(
        "the approved plan applied",
        Duration::from_secs(300),
        || sim.member_ids(GROUP) == ["100001", "100002"],
    );
    wait_for(
        "the applying pass on the page",
        Duration::from_secs(300),
        || {
            browser.open(&page);
            browser.text_of("tbody tr").contains("converged")
        },
    );
    let source = browser.source();
    for secret in [HUB_TOKEN, PASSWORD, UI_TOKEN] {
        assert!(!source.contains(secret), "the page holds no secret");
    }

    // a POST without the session (as another site would send it) is refused
    let (status, _) = http(&metrics, "POST", "/approve", Some(&json!({})));
    assert_eq!(status, 403);
    drop(browser);
    let _ = Command::new("kill")
        .args(["-INT", &service.id().to_string()])
        .status();
    let _ = support::wait_exit(&mut service, Duration::from_secs(60));
}
