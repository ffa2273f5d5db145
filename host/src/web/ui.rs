//! The status page's two actions, **Approve** a withheld plan and **Run a pass now**, and who may
//! use them. Without a `ui_token` the page is read-only and both are refused. With one, an admin
//! signs in by posting the token (a session cookie, `HttpOnly` and `SameSite=Strict`, is set) and
//! every form carries the session's CSRF token; or a client sends `Authorization: Bearer TOKEN`.

use crate::store::state::{LockError, StateStore};
use jupyterhub_grouper_sync::http_entry::is_plan_hash;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub const COOKIE: &str = "grouper_sync_session";
/// A sign-in lasts this long.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No `ui_token` is configured: the page is read-only.
    Disabled,
    /// A token is configured, and this request carries no valid session or bearer token.
    Anonymous,
    /// Signed in through the form; forms must carry this CSRF token.
    Session { csrf: String },
    /// `Authorization: Bearer` with the token (not sent by browsers on their own: no CSRF check).
    Bearer,
}

/// What an action asks for, read from the request.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub form: Vec<(String, String)>,
}

/// What the page says after an action redirected back to it (`?done=…` on the redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    SignedIn,
    Approved(String),
    PassRequested,
}

impl Notice {
    fn query(&self) -> String {
        match self {
            Notice::SignedIn => "done=signed-in".into(),
            Notice::Approved(plan) => format!("done=approved&plan={plan}"),
            Notice::PassRequested => "done=run".into(),
        }
    }

    /// The notice a page request's query names; anything else (an unknown word, a plan that is
    /// not 16 hex digits) is none.
    pub fn from_query(query: Option<&str>) -> Option<Notice> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query?.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("done")? {
            "signed-in" => Some(Notice::SignedIn),
            "run" => Some(Notice::PassRequested),
            "approved" => get("plan")
                .filter(|p| is_plan_hash(p))
                .map(|p| Notice::Approved(p.to_string())),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Notice::SignedIn => "Signed in.".into(),
            Notice::Approved(plan) => format!(
                "Approved plan {plan}: the next pass applies it if the members it removes are \
                 still the same. Run a pass now to apply it at once."
            ),
            Notice::PassRequested => {
                "A pass was requested; it starts when no other pass is running. Reload this \
                 page to see it."
                    .into()
            }
        }
    }
}

/// An action's answer: a status, a body, and headers (a redirect, a cookie).
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: format!("{body}\n"),
        }
    }
    fn back_to_page(notice: Notice, extra: Vec<(&'static str, String)>) -> Answer {
        let mut headers = vec![("location", format!("./?{}", notice.query()))];
        headers.extend(extra);
        Answer {
            status: 303,
            headers,
            body: String::new(),
        }
    }
}

pub struct Ui {
    token: Option<String>,
    state_dir: PathBuf,
    /// Session id → CSRF token and when it was signed in.
    sessions: Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// Woken by **Run a pass now**.
    pub run_now: tokio::sync::Notify,
}

/// 32 random bytes as hex, from the system; none if it cannot give them (then nobody signs in).
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Ui {
    pub fn new(token: Option<String>, state_dir: impl Into<PathBuf>) -> Ui {
        Ui {
            token: token.filter(|t| !t.is_empty()),
            state_dir: state_dir.into(),
            sessions: Mutex::new(HashMap::new()),
            run_now: tokio::sync::Notify::new(),
        }
    }

    pub fn auth(&self, cookie: Option<&str>, authorization: Option<&str>) -> Auth {
        let Some(token) = &self.token else {
            return Auth::Disabled;
        };
        if let Some(bearer) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
            if same(bearer.trim(), token) {
                return Auth::Bearer;
            }
        }
        let session = cookie.and_then(|c| cookie_value(c, COOKIE));
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, (_, at)| at.elapsed() < SESSION_LIFETIME);
        match session.and_then(|s| sessions.get(s)) {
            Some((csrf, _)) => Auth::Session { csrf: csrf.clone() },
            None => Auth::Anonymous,
        }
    }

    /// Handles `POST /login`, `/approve` and `/run`; `None` for any other request.
    pub fn handle(&self, req: &Request) -> Option<Answer> {
        if req.method != "POST" || !matches!(req.path, "/login" | "/approve" | "/run") {
            return None;
        }
        let field = |name: &str| {
            req.form
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let auth = self.auth(req.cookie, req.authorization);
        if req.path == "/login" {
            return Some(self.login(field("token")));
        }
        let allowed = match &auth {
            Auth::Bearer => true,
            Auth::Session { csrf } => field("csrf").is_some_and(|c| same(c, csrf)),
            Auth::Disabled | Auth::Anonymous => false,
        };
        if !allowed {
            let why = match auth {
                Auth::Disabled => "the status page is read-only: no ui_token is configured",
                Auth::Session { .. } => "the form's CSRF token does not match the session",
                _ => "sign in with the ui_token first",
            };
            return Some(Answer::text(403, why));
        }
        Some(match req.path {
            "/approve" => self.approve(field("plan").unwrap_or_default()),
            _ => {
                tracing::warn!("a pass was requested from the status page");
                self.run_now.notify_one();
                Answer::back_to_page(Notice::PassRequested, Vec::new())
            }
        })
    }

    fn login(&self, given: Option<&str>) -> Answer {
        let Some(token) = &self.token else {
            return Answer::text(
                403,
                "the status page is read-only: no ui_token is configured",
            );
        };
        if !given.is_some_and(|g| same(g.trim(), token)) {
            tracing::warn!("a sign-in to the status page with a wrong token was refused");
            return Answer::text(403, "wrong token");
        }
        let (Some(session), Some(csrf)) = (random_hex(), random_hex()) else {
            return Answer::text(500, "no randomness for a session: sign-in is unavailable");
        };
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.clone(), (csrf, std::time::Instant::now()));
        Answer::back_to_page(
            Notice::SignedIn,
            vec![(
                "set-cookie",
                format!(
                    "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                    SESSION_LIFETIME.as_secs()
                ),
            )],
        )
    }

    fn approve(&self, plan: &str) -> Answer {
        let plan = plan.trim().to_ascii_lowercase();
        if !is_plan_hash(&plan) {
            return Answer::text(400, "not a plan name: 16 hex digits");
        }
        let store = StateStore::new(&self.state_dir);
        let holder = format!("the status page's Approve (pid {})", std::process::id());
        let lock = match store.try_lock(&holder) {
            Ok(lock) => lock,
            Err(LockError::Busy(by)) => {
                return Answer::text(
                    503,
                    &format!("a pass is running (state_dir is in use by {by}); approve again when it has finished"),
                )
            }
            Err(e) => return Answer::text(500, &format!("cannot record the approval: {e}")),
        };
        match store.approve(&lock, &plan) {
            Ok(()) => {
                tracing::warn!(plan = %plan, "approved plan {plan} from the status page");
                Answer::back_to_page(Notice::Approved(plan), Vec::new())
            }
            Err(e) => Answer::text(500, &format!("cannot record the approval: {e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post<'a>(path: &'a str, cookie: Option<&'a str>, form: &[(&str, &str)]) -> Request<'a> {
        Request {
            method: "POST",
            path,
            cookie,
            authorization: None,
            form: form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("grouper-sync-ui-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_notice_is_read_only_from_the_words_the_actions_write() {
        for n in [
            Notice::SignedIn,
            Notice::PassRequested,
            Notice::Approved("0123456789abcdef".into()),
        ] {
            assert_eq!(Notice::from_query(Some(&n.query())), Some(n));
        }
        for q in [
            None,
            Some(""),
            Some("done=other"),
            Some("done=approved"),
            Some("done=approved&plan=%3Cscript%3E"),
            Some("done=approved&plan=0123456789abcdeg"),
        ] {
            assert_eq!(Notice::from_query(q), None, "{q:?}");
        }
    }

    #[test]
    fn read_only_without_a_token() {
        let ui = Ui::new(None, dir("ro"));
        assert_eq!(ui.auth(None, Some("Bearer x")), Auth::Disabled);
        let a = ui
            .handle(&post("/approve", None, &[("plan", "0123456789abcdef")]))
            .unwrap();
        assert_eq!(a.status, 403);
        assert_eq!(
            ui.handle(&post("/login", None, &[("token", "")]))
                .unwrap()
                .status,
            403
        );
    }

    #[test]
    fn sign_in_csrf_and_bearer() {
        let ui = Ui::new(Some("s3cret-ui-token".into()), dir("auth"));
        let plan = [("plan", "0123456789abcdef")];
        assert_eq!(
            ui.handle(&post("/approve", None, &plan)).unwrap().status,
            403
        );
        assert_eq!(
            ui.handle(&post("/login", None, &[("token", "nope")]))
                .unwrap()
                .status,
            403
        );
        let signed = ui
            .handle(&post("/login", None, &[("token", "s3cret-ui-token")]))
            .unwrap();
        assert_eq!(signed.status, 303);
        let cookie = signed
            .headers
            .iter()
            .find(|(k, _)| *k == "set-cookie")
            .map(|(_, v)| v.split(';').next().unwrap().to_string())
            .unwrap();
        assert!(
            !cookie.contains("s3cret"),
            "the cookie is a session id, not the token"
        );
        let Auth::Session { csrf } = ui.auth(Some(&cookie), None) else {
            panic!("signed in")
        };
        let wrong = [("plan", "0123456789abcdef"), ("csrf", "forged")];
        assert_eq!(
            ui.handle(&post("/approve", Some(&cookie), &wrong))
                .unwrap()
                .status,
            403
        );
        let right = [("plan", "0123456789abcdef"), ("csrf", csrf.as_str())];
        assert_eq!(
            ui.handle(&post("/approve", Some(&cookie), &right))
                .unwrap()
                .status,
            303
        );
        let store = StateStore::new(dir("auth"));
        let lock = store.try_lock("a test").unwrap();
        // while a pass holds state_dir, an approval waits for it to finish
        let busy = ui.handle(&post("/approve", Some(&cookie), &right)).unwrap();
        assert_eq!(busy.status, 503, "{busy:?}");
        assert!(busy.body.contains("a pass is running"), "{}", busy.body);
        let approvals = store.approvals(&lock, std::time::Duration::from_secs(60));
        assert_eq!(approvals, ["0123456789abcdef"]);
        let mut bearer = post("/run", None, &[]);
        bearer.authorization = Some("Bearer s3cret-ui-token");
        assert_eq!(ui.handle(&bearer).unwrap().status, 303);
        let bad = [("plan", "not-a-plan"), ("csrf", csrf.as_str())];
        assert_eq!(
            ui.handle(&post("/approve", Some(&cookie), &bad))
                .unwrap()
                .status,
            400
        );
    }
}
