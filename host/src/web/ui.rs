//! Who may use the status page and its two actions, **Approve** a withheld plan and **Run a pass
//! now**. Nothing but `/healthz` is shown to a visitor who is not signed in:
//! - behind a hub (the service is the hub's OAuth client), a visitor is sent to the hub to sign in
//!   (`hub_oauth`); the token's scopes make them a reader or an approver;
//! - outside a hub, an admin signs in by posting the `ui_token`;
//! - a script sends `Authorization: Bearer <ui_token>`.
//!
//! A session cookie counts only on a top-level navigation (`guard`), and every form carries the
//! session's CSRF token.

use crate::store::state::{LockError, StateStore};
use crate::web::guard::FetchMetadata;
use crate::web::hub_oauth::{HubHttp, HubOAuth, STATE_LIFETIME};
use crate::web::session::{
    cookie_value, same, CookiePolicy, Level, Session, Sessions, SESSION_COOKIE, SESSION_LIFETIME,
    STATE_COOKIE,
};
use crate::web::status_page::Viewer;
use jupyterhub_grouper_sync::http_entry::is_plan_hash;
use std::path::PathBuf;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visitor {
    /// No session (or a cookie that may not count for this request) and no bearer token.
    Anonymous,
    SignedIn(Session),
    /// `Authorization: Bearer` with the `ui_token` (browsers never send it on their own).
    Bearer,
}

/// What an action or page request carries, read from the HTTP request.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path below the service's prefix (`/approve`).
    pub path: &'a str,
    /// The path as the browser asked for it (`/services/grouper-sync/`), where a sign-in returns.
    pub full_path: &'a str,
    pub query: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub fetch: FetchMetadata<'a>,
    /// The proxy says the browser used HTTPS (`X-Forwarded-Proto: https`).
    pub forwarded_https: bool,
    pub form: Vec<(String, String)>,
}

/// What a page request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum PageAccess {
    /// The page, as this viewer may see it.
    Show(Viewer),
    /// The `ui_token` sign-in form, and nothing else.
    SignInForm,
    /// A redirect (to the hub's sign-in) or a refusal.
    Answer(Answer),
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
    hub: Option<(HubOAuth, Box<dyn HubHttp>)>,
    token: Option<String>,
    sessions: Sessions,
    cookies: CookiePolicy,
    state_dir: PathBuf,
    /// Woken by **Run a pass now**.
    pub run_now: tokio::sync::Notify,
}

const NOT_CONFIGURED: &str = "the status page needs a sign-in: run grouper-sync as a hub service \
     with a url (it signs people in through the hub), or set ui_token";

impl Ui {
    /// `hub`: sign people in through the hub; `token`: the `ui_token`; `cookies`: where the
    /// page's cookies are scoped.
    pub fn new(
        hub: Option<(HubOAuth, Box<dyn HubHttp>)>,
        token: Option<String>,
        cookies: CookiePolicy,
        state_dir: impl Into<PathBuf>,
    ) -> Ui {
        Ui {
            hub,
            token: token.filter(|t| !t.trim().is_empty()),
            sessions: Sessions::default(),
            cookies,
            state_dir: state_dir.into(),
            run_now: tokio::sync::Notify::new(),
        }
    }

    pub fn visitor(&self, req: &Request) -> Visitor {
        if let (Some(token), Some(bearer)) = (
            &self.token,
            req.authorization.and_then(|a| a.strip_prefix("Bearer ")),
        ) {
            if same(bearer.trim(), token) {
                return Visitor::Bearer;
            }
        }
        if !req.fetch.cookie_may_authenticate(req.method) {
            return Visitor::Anonymous;
        }
        match self.sessions.find(req.cookie) {
            Some(session) => Visitor::SignedIn(session),
            None => Visitor::Anonymous,
        }
    }

    /// What a `GET` of the page gets.
    pub fn page(&self, req: &Request) -> PageAccess {
        match self.visitor(req) {
            Visitor::Bearer => PageAccess::Show(Viewer::Approver {
                user: "a client with the ui_token".into(),
                csrf: String::new(),
            }),
            Visitor::SignedIn(s) => PageAccess::Show(match s.level {
                Level::Approver => Viewer::Approver {
                    user: s.user,
                    csrf: s.csrf,
                },
                Level::Reader => Viewer::Reader { user: s.user },
            }),
            Visitor::Anonymous => match &self.hub {
                Some((oauth, _)) if req.fetch.is_navigation() => {
                    match oauth.begin(&self.return_path(req.full_path)) {
                        Some((state, location)) => PageAccess::Answer(Answer {
                            status: 302,
                            headers: vec![
                                ("location", location),
                                (
                                    "set-cookie",
                                    self.cookies.set(
                                        STATE_COOKIE,
                                        &state,
                                        STATE_LIFETIME,
                                        req.forwarded_https,
                                    ),
                                ),
                            ],
                            body: String::new(),
                        }),
                        None => PageAccess::Answer(Answer::text(
                            500,
                            "no randomness for a sign-in: sign-in is unavailable",
                        )),
                    }
                }
                Some(_) => PageAccess::Answer(Answer::text(
                    403,
                    "sign in first: open this page in the browser",
                )),
                None if self.token.is_some() => PageAccess::SignInForm,
                None => PageAccess::Answer(Answer::text(403, NOT_CONFIGURED)),
            },
        }
    }

    /// Where a sign-in returns: the page asked for, if it is one of this service's paths.
    fn return_path(&self, full_path: &str) -> String {
        let home = self.cookies.path.clone();
        let safe = full_path.starts_with(&home)
            && !full_path.contains("//")
            && !full_path.contains('\\')
            && !full_path.contains("oauth_callback");
        if safe {
            full_path.to_string()
        } else {
            home
        }
    }

    /// `GET oauth_callback`: the hub sends the browser back with a code.
    pub async fn oauth_callback(&self, req: &Request<'_>) -> Answer {
        let Some((oauth, hub)) = &self.hub else {
            return Answer::text(404, "this service does not sign people in through the hub");
        };
        let clear_state = (
            "set-cookie",
            self.cookies.clear(STATE_COOKIE, req.forwarded_https),
        );
        let cookie_state = req.cookie.and_then(|c| cookie_value(c, STATE_COOKIE));
        let identity = match oauth.finish(hub.as_ref(), req.query, cookie_state).await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(kind = e.kind(), "a sign-in to the status page failed: {e}");
                let mut answer = Answer::text(e.status(), &e.to_string());
                answer.headers.push(clear_state);
                return answer;
            }
        };
        let Some(session) = self.sessions.create(&identity.user, identity.level) else {
            return Answer::text(500, "no randomness for a session: sign-in is unavailable");
        };
        tracing::info!(
            user = %identity.user,
            level = ?identity.level,
            "signed in to the status page through the hub"
        );
        Answer {
            status: 302,
            headers: vec![
                ("location", identity.next),
                clear_state,
                (
                    "set-cookie",
                    self.cookies.set(
                        SESSION_COOKIE,
                        &session,
                        SESSION_LIFETIME,
                        req.forwarded_https,
                    ),
                ),
            ],
            body: String::new(),
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
        if req.path == "/login" {
            return Some(self.login(field("token"), req.forwarded_https));
        }
        let visitor = self.visitor(req);
        let refusal = match &visitor {
            Visitor::Bearer => None,
            Visitor::SignedIn(s) if !field("csrf").is_some_and(|c| same(c, &s.csrf)) => {
                Some("the form's CSRF token does not match the session")
            }
            Visitor::SignedIn(s) if s.level == Level::Reader => Some(
                "you may read this page, not approve or run passes: that needs the approve scope \
                 (status_approve_scope) in one of your hub roles",
            ),
            Visitor::SignedIn(_) => None,
            Visitor::Anonymous if self.hub.is_none() && self.token.is_none() => {
                Some(NOT_CONFIGURED)
            }
            Visitor::Anonymous => Some("sign in first"),
        };
        if let Some(why) = refusal {
            return Some(Answer::text(403, why));
        }
        let by = match &visitor {
            Visitor::SignedIn(s) => s.user.as_str(),
            _ => "a client with the ui_token",
        };
        Some(match req.path {
            "/approve" => self.approve(field("plan").unwrap_or_default(), by),
            _ => {
                tracing::warn!(by, "a pass was requested from the status page");
                self.run_now.notify_one();
                Answer::back_to_page(Notice::PassRequested, Vec::new())
            }
        })
    }

    fn login(&self, given: Option<&str>, forwarded_https: bool) -> Answer {
        if self.hub.is_some() {
            return Answer::text(403, "sign in through the hub: open the page");
        }
        let Some(token) = &self.token else {
            return Answer::text(403, NOT_CONFIGURED);
        };
        if !given.is_some_and(|g| same(g.trim(), token)) {
            tracing::warn!("a sign-in to the status page with a wrong token was refused");
            return Answer::text(403, "wrong token");
        }
        let Some(session) = self
            .sessions
            .create("an admin with the ui_token", Level::Approver)
        else {
            return Answer::text(500, "no randomness for a session: sign-in is unavailable");
        };
        Answer::back_to_page(
            Notice::SignedIn,
            vec![(
                "set-cookie",
                self.cookies
                    .set(SESSION_COOKIE, &session, SESSION_LIFETIME, forwarded_https),
            )],
        )
    }

    fn approve(&self, plan: &str, by: &str) -> Answer {
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
                tracing::warn!(plan = %plan, by, "approved plan {plan} from the status page");
                Answer::back_to_page(Notice::Approved(plan), Vec::new())
            }
            Err(e) => Answer::text(500, &format!("cannot record the approval: {e:#}")),
        }
    }
}

#[cfg(test)]
mod tests;
