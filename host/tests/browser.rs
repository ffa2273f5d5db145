//! The status page in a real browser: Debian's headless Chromium driven over W3C WebDriver
//! (chromedriver).
//! - Outside a hub (a fake hub, the `ui_token`): an admin signs in, sees the withheld plan, clicks
//!   **Approve** and **Run a pass now**, and the next pass applies exactly that plan.
//! - As a hub service page: a real JupyterHub with its real proxy (configurable-http-proxy) runs
//!   `grouper-sync` with the README's service entry and roles. A signed-out visitor gets the hub's
//!   login page; a user without a role gets the hub's 403; a reader sees no member id; the admin
//!   signs in through the hub's form and OAuth, approves and runs a pass. JavaScript served by a
//!   user's server on the same origin, run in the admin's browser, gets neither a member id nor an
//!   approval. The README's screenshot is kept in `target/status-page.png`.
//!
//! `.ci/run` installs `chromium` and `chromium-driver` with apt. Elsewhere, without them, the
//! test skips with a message; in CI (`CI` set) it fails.

use grouper_sync_testkit::fake_hub;
use grouper_sync_testkit::real_hub::RealHub;

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
        // a fresh profile per browser: no cookie of an earlier one (a hub login) carries over
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("grouper-sync-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
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

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_string()
    }

    fn title(&self) -> String {
        self.call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The cookies the browser would send to the current page's URL.
    fn cookies(&self) -> Vec<Value> {
        self.call("GET", "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the current page's source says `what`, and returns it.
    fn wait_for_source(&self, what: &str, says: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let source = self.source();
            if source.contains(says) {
                return source;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "timed out waiting for {what} at {}: {source}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Signs in through the hub's login form (the DummyAuthenticator takes any password).
    fn hub_login(&self, name: &str) {
        self.wait_for_source("the hub's login form", "id=\"username_input\"");
        self.type_into("#username_input", name);
        self.type_into("#password_input", "any-password");
        self.click("#login_submit");
    }

    /// Clicks **Approve** on the page shown, then **Run a pass now**, each awaited.
    fn approve_and_run(&self, plan: &str) {
        self.click("form[action='approve'] button");
        self.wait_for_notice(&format!("Approved plan {plan}"));
        self.click("form[action='run'] button");
        self.wait_for_notice("A pass was requested");
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
            "--status-addr",
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
    // signed out: the sign-in form, and nothing of the passes
    browser.open(&page);
    let signed_out = browser.source();
    assert!(signed_out.contains("name=\"token\""), "{signed_out}");
    assert!(!signed_out.contains(GROUP) && !signed_out.contains("stale7"));
    browser.type_into("input[name=token]", UI_TOKEN);
    browser.click("form[action='login'] button");
    browser.wait_for_notice("Signed in.");
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
    browser.click(".withheld details summary");
    browser.approve_and_run(&plan);
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

const SERVICE: &str = "grouper-sync-managed";
const APPROVE_SCOPE: &str = "custom:grouper-sync:approve";
const HUB_GROUP: &str = "edu:example:app:hub:page-users";

/// The status page as a hub service, configured as the README shows: the service entry with a
/// `url`, `oauth_no_confirm` and the approve scope the client may ask for; the custom scope; a
/// role for approvers (the hub admin) and one for readers.
fn page_service(command: &[&str], environment: Value, url: &str) -> Value {
    json!({
        "command": command,
        "environment": environment,
        "service": {
            "url": url,
            "oauth_no_confirm": true,
            "oauth_client_allowed_scopes": [APPROVE_SCOPE],
        },
        "custom_scopes": {
            APPROVE_SCOPE: {"description": "Approve grouper-sync's withheld plans and run passes"},
        },
        "roles": [
            {
                "name": "grouper-sync-approvers",
                "scopes": [format!("access:services!service={SERVICE}"), APPROVE_SCOPE],
                "users": ["admin"],
            },
            {
                "name": "grouper-sync-readers",
                "scopes": [format!("access:services!service={SERVICE}")],
                "users": ["ben"],
            },
        ],
    })
}

/// JavaScript a user serves from their own server, on the hub's origin: it reads the status page,
/// posts an approval (by `fetch` and by a form into a frame) and frames the page, then writes what
/// it got into `#out` and sets the title to `done`.
fn attack_page(plan: &str) -> String {
    let page = format!("/services/{SERVICE}/");
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>running</title><pre id="out"></pre>
<script>
const page = "{page}";
const result = {{}};
const bounded = (f) => new Promise((done) => {{ f(done); setTimeout(done, 60000); }});
async function attempt(name, f) {{ try {{ await f(); }} catch (e) {{ result[name + "_error"] = String(e); }} }}
(async () => {{
  await attempt("read", async () => {{
    const r = await fetch(page, {{ credentials: "include" }});
    result.read_status = r.status; result.read_text = await r.text();
  }});
  await attempt("post", async () => {{
    const r = await fetch(page + "approve", {{ method: "POST", credentials: "include",
      headers: {{ "content-type": "application/x-www-form-urlencoded" }}, body: "plan={plan}&csrf=guessed" }});
    result.post_status = r.status; result.post_text = await r.text();
  }});
  await attempt("frame", () => bounded((done) => {{
    const f = document.createElement("iframe");
    f.onload = () => {{ try {{ result.frame_text = f.contentDocument.documentElement.outerHTML; }} catch (e) {{ result.frame_error = String(e); }} done(); }};
    f.src = page; document.body.appendChild(f);
  }}));
  await attempt("form", () => bounded((done) => {{
    const f = document.createElement("iframe"); f.name = "sink";
    f.onload = () => {{ try {{ result.form_text = f.contentDocument.documentElement.outerHTML; }} catch (e) {{ result.form_error = String(e); }} done(); }};
    document.body.appendChild(f);
    const form = document.createElement("form");
    form.method = "POST"; form.action = page + "approve"; form.target = "sink";
    for (const [k, v] of [["plan", "{plan}"], ["csrf", "guessed"]]) {{
      const i = document.createElement("input"); i.name = k; i.value = v; form.appendChild(i);
    }}
    document.body.appendChild(form); form.submit();
  }}));
  document.getElementById("out").textContent = JSON.stringify(result);
  document.title = "done";
}})();
</script>
"#
    )
}

#[test]
fn through_the_hubs_proxy_only_a_signed_in_approver_sees_members_and_approves() {
    let (Some(chromium), Some(chromedriver)) =
        (tool("/usr/bin/chromium"), tool("/usr/bin/chromedriver"))
    else {
        return;
    };
    let sim = Simulator::new(Config {
        user: "sync".into(),
        password: PASSWORD.into(),
        ..Config::default()
    });
    for id in ["900001", "stale7"] {
        sim.add_subject(Subject::new("ldap", id));
    }
    sim.add_group(HUB_GROUP);
    sim.add_member(HUB_GROUP, "ldap", "stale7");
    let server = sim.serve("127.0.0.1:0").unwrap();
    let crypt_key = "5a1e0c9d8b7f6e5d4c3b2a190817f6e5d4c3b2a1908f7e6d5c4b3a2918076f5e";

    // users first (ana with a login id), then the hub again with the service and its proxy
    {
        let hub = RealHub::start_with("page", &[("JUPYTERHUB_CRYPT_KEY", crypt_key)]);
        let users = json!({"usernames": ["ana", "ben", "mallory"]});
        assert_eq!(hub.admin("POST", "/users", Some(&users)).0, 201);
        let login = json!({"auth_state": {"canvas_user": {"login_id": "900001"}}});
        assert_eq!(hub.admin("PATCH", "/users/ana", Some(&login)).0, 200);
    }
    let state = std::env::temp_dir().join(format!("grouper-sync-page-{}", std::process::id()));
    let url = format!("http://127.0.0.1:{}", free_port());
    let spec = page_service(
        &[BIN, "--GrouperSync.sync_every=3600", "--max-removals", "0"],
        json!({
            "GROUPER_BASE_URL": server.base_url("v2_2_100"),
            "GROUPER_USER": "sync",
            "GROUPER_PASSWORD": PASSWORD,
            "GROUPER_ID_PATH": HUB_GROUP,
            "GROUPER_SYNC_STATE_DIR": state.join("state"),
        }),
        &url,
    );
    let hub = RealHub::start_with(
        "page",
        &[
            ("JUPYTERHUB_CRYPT_KEY", crypt_key),
            ("JHUB_KEEP_DB", "1"),
            ("JHUB_PROXY", "chp"),
            ("JHUB_USER_SERVERS", "1"),
            ("JHUB_SYNC_SERVICE", &spec.to_string()),
        ],
    );
    wait_for("the service's first pass", Duration::from_secs(300), || {
        sim.member_ids(HUB_GROUP) == ["900001", "stale7"]
    });
    let proxy = hub.public_url.trim_start_matches("http://").to_string();
    let page = format!("{}/services/{SERVICE}/", hub.public_url);

    // through the proxy, another Host is refused by the service itself
    let (status, _) = raw_get(&proxy, &format!("/services/{SERVICE}/"), "evil.example");
    assert_eq!(status, 421, "a rebound host name");
    // signed out: sent to the hub, nothing of the page
    let (status, body) = raw_get(&proxy, &format!("/services/{SERVICE}/"), &proxy);
    assert!(
        status == 302 && !body.contains("stale7"),
        "a signed-out visitor is sent to the hub: {status}"
    );

    // mallory (no role): the hub's login, then the hub's 403; ben (the readers' role): outcomes
    // and counts, no member id, no button
    let signed_in_as = |user: &str, says: &str| {
        let browser = Browser::start(&chromedriver, &chromium);
        browser.open(&page);
        browser.hub_login(user);
        browser.wait_for_source(&format!("the page for {user}"), says)
    };
    let refused = signed_in_as("mallory", "403");
    assert!(refused.contains("permission to access"), "{refused}");
    assert!(!refused.contains("stale7") && !refused.contains("removals_withheld"));
    let read = signed_in_as("ben", "removals_withheld");
    assert!(read.contains("You may read this page"), "{read}");
    assert!(!read.contains("stale7") && !read.contains("action=\"approve\""));

    // the admin: the hub's login page, then back on the page through OAuth
    let browser = Browser::start(&chromedriver, &chromium);
    browser.open(&page);
    wait_for("the hub's login page", Duration::from_secs(300), || {
        browser.url().contains("/hub/login")
    });
    browser.hub_login("admin");
    let signed_in =
        browser.wait_for_source("the page after the OAuth sign-in", "removals_withheld");
    assert!(browser.url().starts_with(&page), "{}", browser.url());
    assert!(signed_in.contains("stale7"), "an approver sees the members");
    let plan = browser.text_of(".withheld p code");
    assert_eq!(plan.len(), 16, "{plan}");
    let session = browser
        .cookies()
        .into_iter()
        .find(|c| c["name"] == "grouper-sync-session")
        .expect("the session cookie");
    assert_eq!(session["path"], format!("/services/{SERVICE}/"));
    assert_eq!(session["httpOnly"], true);
    browser.click(".withheld details summary");
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/status-page.png");
    browser.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    eprintln!("screenshot: {}", shot.display());

    // mallory's server serves JavaScript on the same origin; the admin opens it
    let home = hub.dir.join("homes").join("mallory");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("index.html"), attack_page(&plan)).unwrap();
    let started = hub.admin("POST", "/users/mallory/server", None).0;
    assert!(matches!(started, 201 | 202), "{started}");
    let attack = format!("{}/user/mallory/", hub.public_url);
    wait_for(
        "mallory's server behind the proxy",
        Duration::from_secs(300),
        || {
            raw_get(&proxy, "/user/mallory/", &proxy)
                .1
                .contains("<script>")
        },
    );
    browser.open(&attack);
    wait_for("the script to finish", Duration::from_secs(300), || {
        browser.title() == "done"
    });
    assert!(
        browser
            .cookies()
            .iter()
            .all(|c| c["name"] != "grouper-sync-session"),
        "the session cookie is not sent to a user's server"
    );
    let result: Value = serde_json::from_str(&browser.text_of("#out")).unwrap();
    let text = result.to_string();
    assert!(
        !text.contains("stale7"),
        "the script read a member id: {text}"
    );
    assert!(
        !text.contains("name=\\\"csrf\\\""),
        "the script read a CSRF token: {text}"
    );
    assert_eq!(result["read_status"], 403, "{text}");
    assert_eq!(result["post_status"], 403, "{text}");
    assert!(
        !state.join("state").join("approvals.json").exists()
            || !std::fs::read_to_string(state.join("state").join("approvals.json"))
                .unwrap()
                .contains(&plan),
        "the script approved the plan"
    );

    // the admin approves and runs a pass from the page
    browser.open(&page);
    browser.wait_for_source("the page again", "removals_withheld");
    browser.approve_and_run(&plan);
    wait_for(
        "the approved plan applied",
        Duration::from_secs(300),
        || sim.member_ids(HUB_GROUP) == ["900001"],
    );
    let source = browser.source();
    for secret in [PASSWORD, hub.sync_token.as_str()] {
        assert!(!source.contains(secret), "the page holds no secret");
    }
    drop(browser);
    drop(hub);
}

/// One `GET` through the proxy with this `Host`: status and body (the redirect is not followed).
fn raw_get(addr: &str, path: &str, host: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
