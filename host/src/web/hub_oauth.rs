//! Signing people in through the hub, as JupyterHub's own `HubOAuth` does for service pages
//! (`jupyterhub/services/auth.py`): the page sends a browser that has no session to the hub's
//! authorize endpoint with a random `state` (also in a short-lived cookie) and a PKCE challenge;
//! the hub signs them in, checks they may access this service and sends them back with a code;
//! the service checks the state against the cookie, exchanges the code for a token, reads
//! `/hub/api/user` with it and decides from the token's **scopes** (never from the name) whether
//! they may read the page, or also approve.

use crate::options::page::HubOAuthSettings;
use crate::web::session::{insert_bounded, random_hex, same, Level};
use base64::Engine;
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sign-in not finished within this long is forgotten (as the hub's state cookie, 10 min).
pub const STATE_LIFETIME: Duration = Duration::from_secs(600);
/// Sign-ins in progress kept at most (anyone can start one); the oldest goes first.
const MAX_PENDING: usize = 1_000;

/// Why a sign-in did not complete; `kind` is what logs and metrics use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// The callback's `state` is missing, unknown, expired or not the browser's own.
    StateMismatch,
    /// The hub answered the authorize request with an error (the user declined, or the hub
    /// refused the client).
    Declined(String),
    /// The hub could not be reached for the token or the user.
    HubUnreachable(String),
    /// The hub answered with an unexpected status (a code already used, a wrong client secret).
    HubRefused { step: &'static str, status: u16 },
    /// The hub's answer was not the JSON it documents.
    BadAnswer(&'static str),
    /// Signed in, but the token's scopes do not include access to this service.
    NoAccess { user: String },
}

impl SignInError {
    pub fn kind(&self) -> &'static str {
        match self {
            SignInError::StateMismatch => "oauth-state-mismatch",
            SignInError::Declined(_) => "oauth-declined",
            SignInError::HubUnreachable(_) => "hub-unreachable",
            SignInError::HubRefused { .. } => "hub-refused",
            SignInError::BadAnswer(_) => "hub-bad-answer",
            SignInError::NoAccess { .. } => "no-access",
        }
    }

    /// The HTTP status the browser gets.
    pub fn status(&self) -> u16 {
        match self {
            SignInError::StateMismatch => 400,
            SignInError::Declined(_) | SignInError::NoAccess { .. } => 403,
            _ => 502,
        }
    }
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::StateMismatch => write!(
                f,
                "this sign-in was not started by this browser, or took longer than {} minutes: open the page again",
                STATE_LIFETIME.as_secs() / 60
            ),
            SignInError::Declined(why) => write!(f, "the hub did not sign you in: {why}"),
            SignInError::HubUnreachable(why) => write!(f, "cannot reach the hub to finish the sign-in: {why}"),
            SignInError::HubRefused { step, status } => {
                write!(f, "the hub refused the sign-in's {step} (HTTP {status}): open the page again")
            }
            SignInError::BadAnswer(what) => write!(f, "the hub's answer to the sign-in's {what} was not what JupyterHub sends"),
            SignInError::NoAccess { user } => write!(
                f,
                "{user} is signed in to the hub, but no role of theirs grants access to this service"
            ),
        }
    }
}

/// One exchange with the hub's API (the token endpoint, `/user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCall {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub type HubAnswer = Result<(u16, Vec<u8>), String>;

/// How the service reaches the hub's API: over the host's HTTPS client, or a script in tests.
pub trait HubHttp: Send + Sync {
    fn call(&self, call: HubCall) -> Pin<Box<dyn Future<Output = HubAnswer> + Send + '_>>;
}

struct Pending {
    verifier: String,
    next: String,
    started: Instant,
}

/// Who signed in, and what their token lets them do here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub level: Level,
    /// Where they were going when the sign-in started.
    pub next: String,
}

pub struct HubOAuth {
    pub settings: HubOAuthSettings,
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct UserAnswer {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// The PKCE challenge of a verifier (RFC 7636, S256).
fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl HubOAuth {
    pub fn new(settings: HubOAuthSettings) -> HubOAuth {
        HubOAuth {
            settings,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a sign-in that returns to `next`: the state (for the state cookie) and where to
    /// send the browser. None without randomness.
    pub fn begin(&self, next: &str) -> Option<(String, String)> {
        let (state, verifier) = (random_hex()?, random_hex()?);
        let s = &self.settings;
        let location = format!(
            "{}?{}",
            s.authorize_url,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &s.client_id)
                .append_pair("redirect_uri", &s.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge(&verifier))
                .append_pair("code_challenge_method", "S256")
                .finish()
        );
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let sign_in = Pending {
            verifier,
            next: next.to_string(),
            started: Instant::now(),
        };
        insert_bounded(
            &mut pending,
            MAX_PENDING,
            STATE_LIFETIME,
            |p| p.started,
            state.clone(),
            sign_in,
        );
        Some((state, location))
    }

    /// Takes the sign-in a callback names: its `state` must be one this service started, not
    /// expired, and the one in the browser's state cookie. A state is used once.
    fn take(
        &self,
        state: Option<&str>,
        cookie_state: Option<&str>,
    ) -> Result<Pending, SignInError> {
        let (Some(state), Some(cookie_state)) = (state, cookie_state) else {
            return Err(SignInError::StateMismatch);
        };
        if !same(state, cookie_state) {
            return Err(SignInError::StateMismatch);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .remove(state)
            .filter(|p| p.started.elapsed() < STATE_LIFETIME)
            .ok_or(SignInError::StateMismatch)
    }

    /// What a token with these scopes may do here: nothing without one of the access scopes.
    pub fn level(&self, scopes: &[String]) -> Option<Level> {
        let has = |wanted: &str| scopes.iter().any(|s| s == wanted);
        if !self.settings.access_scopes.iter().any(|s| has(s)) {
            return None;
        }
        Some(if has(&self.settings.approve_scope) {
            Level::Approver
        } else {
            Level::Reader
        })
    }

    /// Finishes the sign-in a callback brings back: `query` is the callback's query string,
    /// `cookie_state` the state cookie the browser sent.
    pub async fn finish(
        &self,
        hub: &dyn HubHttp,
        query: Option<&str>,
        cookie_state: Option<&str>,
    ) -> Result<Identity, SignInError> {
        let params: HashMap<String, String> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let pending = self.take(params.get("state").map(String::as_str), cookie_state)?;
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").unwrap_or(error);
            return Err(SignInError::Declined(description.clone()));
        }
        let code = params
            .get("code")
            .ok_or(SignInError::BadAnswer("callback (no code)"))?;
        let s = &self.settings;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &s.client_id)
            .append_pair("client_secret", &s.client_secret)
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &s.redirect_uri)
            .append_pair("code_verifier", &pending.verifier)
            .finish();
        let token: TokenAnswer = self
            .json(
                hub,
                "token request",
                HubCall {
                    method: "POST",
                    url: format!("{}/oauth2/token", s.api_url),
                    headers: vec![
                        ("content-type", "application/x-www-form-urlencoded".into()),
                        ("accept", "application/json".into()),
                    ],
                    body: form.into_bytes(),
                },
            )
            .await?;
        let user: UserAnswer = self
            .json(
                hub,
                "user request",
                HubCall {
                    method: "GET",
                    url: format!("{}/user", s.api_url),
                    headers: vec![
                        ("authorization", format!("token {}", token.access_token)),
                        ("accept", "application/json".into()),
                    ],
                    body: Vec::new(),
                },
            )
            .await?;
        match self.level(&user.scopes) {
            Some(level) => Ok(Identity {
                user: user.name,
                level,
                next: pending.next,
            }),
            None => Err(SignInError::NoAccess { user: user.name }),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        hub: &dyn HubHttp,
        step: &'static str,
        call: HubCall,
    ) -> Result<T, SignInError> {
        let (status, body) = hub.call(call).await.map_err(SignInError::HubUnreachable)?;
        if status != 200 {
            return Err(SignInError::HubRefused { step, status });
        }
        serde_json::from_slice(&body).map_err(|_| SignInError::BadAnswer(step))
    }
}

/// The hub's API over the host's own HTTPS client (the system's and `ca_file`'s CAs).
pub struct TlsHubHttp {
    pub trust: crate::sandbox::tls::Trust,
    pub timeout: Duration,
}

/// The largest answer read from the hub during a sign-in.
const MAX_ANSWER_BYTES: usize = 1 << 20;

impl HubHttp for TlsHubHttp {
    fn call(&self, call: HubCall) -> Pin<Box<dyn Future<Output = HubAnswer> + Send + '_>> {
        Box::pin(async move {
            use http_body_util::BodyExt;
            let uri: http::Uri = call.url.parse().map_err(|_| "not a URL".to_string())?;
            let authority = uri
                .authority()
                .map(|a| a.to_string())
                .ok_or("a URL without a host")?;
            let mut request = http::Request::builder()
                .method(call.method)
                .uri(uri)
                .header("host", authority);
            for (name, value) in &call.headers {
                request = request.header(*name, value);
            }
            let body = http_body_util::Full::new(bytes::Bytes::from(call.body))
                .map_err(|never| match never {});
            let request = request.body(body).map_err(|e| e.to_string())?;
            let options = wasmtime_wasi_http::RequestOptions {
                connect_timeout: Some(self.timeout),
                first_byte_timeout: Some(self.timeout),
                between_bytes_timeout: Some(self.timeout),
            };
            let exchange = async {
                let (response, io) =
                    crate::sandbox::tls::send(request, options, self.trust.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes()
                    .to_vec();
                let _ = io.await;
                Ok::<_, String>((status, body))
            };
            tokio::time::timeout(self.timeout * 2, exchange)
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }
}

/// A hub that answers the token and user requests from a script, recording the calls.
#[cfg(test)]
pub(crate) mod scripted {
    use super::*;

    pub(crate) struct ScriptedHub {
        answers: Mutex<Vec<HubAnswer>>,
        pub(crate) calls: Mutex<Vec<HubCall>>,
    }

    impl ScriptedHub {
        pub(crate) fn new(answers: Vec<HubAnswer>) -> ScriptedHub {
            ScriptedHub {
                answers: Mutex::new(answers.into_iter().rev().collect()),
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl HubHttp for ScriptedHub {
        fn call(&self, call: HubCall) -> Pin<Box<dyn Future<Output = HubAnswer> + Send + '_>> {
            self.calls.lock().unwrap().push(call);
            let answer = self
                .answers
                .lock()
                .unwrap()
                .pop()
                .expect("a scripted answer");
            Box::pin(async move { answer })
        }
    }

    /// A managed service's client, as the hub describes it.
    pub(crate) fn settings() -> HubOAuthSettings {
        HubOAuthSettings {
            client_id: "service-grouper-sync".into(),
            client_secret: "svc-secret".into(),
            api_url: "http://127.0.0.1:8081/hub/api".into(),
            authorize_url: "/hub/api/oauth2/authorize".into(),
            redirect_uri: "/services/grouper-sync/oauth_callback".into(),
            access_scopes: vec![
                "access:services".into(),
                "access:services!service=grouper-sync".into(),
            ],
            approve_scope: "custom:grouper-sync:approve".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scripted::{settings, ScriptedHub};
    use super::*;

    fn ok(json: serde_json::Value) -> HubAnswer {
        Ok((200, json.to_string().into_bytes()))
    }

    fn query_of(location: &str) -> HashMap<String, String> {
        let query = location.split_once('?').unwrap().1;
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn the_authorize_redirect_names_the_client_the_callback_and_a_pkce_challenge() {
        let oauth = HubOAuth::new(settings());
        let (state, location) = oauth.begin("/services/grouper-sync/").unwrap();
        assert!(
            location.starts_with("/hub/api/oauth2/authorize?"),
            "{location}"
        );
        let q = query_of(&location);
        assert_eq!(q["client_id"], "service-grouper-sync");
        assert_eq!(q["redirect_uri"], "/services/grouper-sync/oauth_callback");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["state"], state);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert!(!location.contains("svc-secret"));
        let (other, _) = oauth.begin("/").unwrap();
        assert_ne!(state, other, "every sign-in has its own state");
    }

    #[tokio::test]
    async fn a_callback_needs_the_state_this_browser_was_given_and_uses_it_once() {
        let oauth = HubOAuth::new(settings());
        let (state, _) = oauth.begin("/services/grouper-sync/").unwrap();
        let (other_state, _) = oauth.begin("/services/grouper-sync/").unwrap();
        let hub = ScriptedHub::new(Vec::new());
        let query = format!("code=c0de&state={state}");
        for (query, cookie) in [
            (query.as_str(), None),
            (query.as_str(), Some("forged")),
            // another browser's state, with its own cookie: a login CSRF
            (query.as_str(), Some(other_state.as_str())),
            ("code=c0de", Some(state.as_str())),
            ("code=c0de&state=unknown", Some("unknown")),
        ] {
            let refused = oauth.finish(&hub, Some(query), cookie).await;
            assert_eq!(
                refused,
                Err(SignInError::StateMismatch),
                "{query} {cookie:?}"
            );
        }
        assert!(
            hub.calls.lock().unwrap().is_empty(),
            "no code was exchanged"
        );
        // the right pair works once
        let hub = ScriptedHub::new(vec![
            ok(serde_json::json!({"access_token": "tok", "token_type": "Bearer"})),
            ok(serde_json::json!({"name": "ana", "admin": true,
                "scopes": ["access:services!service=grouper-sync", "custom:grouper-sync:approve", "read:users:name!user=ana"]})),
        ]);
        let identity = oauth
            .finish(&hub, Some(&query), Some(&state))
            .await
            .unwrap();
        assert_eq!(
            identity,
            Identity {
                user: "ana".into(),
                level: Level::Approver,
                next: "/services/grouper-sync/".into()
            }
        );
        let calls = hub.calls.lock().unwrap().clone();
        assert_eq!(calls[0].url, "http://127.0.0.1:8081/hub/api/oauth2/token");
        let form: HashMap<String, String> = form_urlencoded::parse(&calls[0].body)
            .into_owned()
            .collect();
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "c0de");
        assert_eq!(form["client_secret"], "svc-secret");
        assert_eq!(
            form["redirect_uri"],
            "/services/grouper-sync/oauth_callback"
        );
        assert_eq!(challenge(&form["code_verifier"]).len(), 43);
        assert_eq!(calls[1].url, "http://127.0.0.1:8081/hub/api/user");
        assert!(calls[1]
            .headers
            .contains(&("authorization", "token tok".into())));
        let again = oauth.finish(&hub, Some(&query), Some(&state)).await;
        assert_eq!(
            again,
            Err(SignInError::StateMismatch),
            "a state is used once"
        );
    }

    #[test]
    fn scopes_decide_reading_and_approving_never_the_name_or_admin_flag() {
        let oauth = HubOAuth::new(settings());
        let scopes = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(oauth.level(&scopes(&[])), None);
        assert_eq!(
            oauth.level(&scopes(&["admin:users", "custom:grouper-sync:approve"])),
            None
        );
        assert_eq!(
            oauth.level(&scopes(&["access:services!service=other"])),
            None,
            "another service's access"
        );
        assert_eq!(
            oauth.level(&scopes(&["access:services!service=grouper-sync"])),
            Some(Level::Reader)
        );
        assert_eq!(
            oauth.level(&scopes(&["access:services"])),
            Some(Level::Reader)
        );
        assert_eq!(
            oauth.level(&scopes(&[
                "access:services",
                "custom:grouper-sync:approve!user=ana"
            ])),
            Some(Level::Reader),
            "a filtered approve scope is not the scope"
        );
        assert_eq!(
            oauth.level(&scopes(&["access:services", "custom:grouper-sync:approve"])),
            Some(Level::Approver)
        );
        let admins = HubOAuth::new(HubOAuthSettings {
            approve_scope: "admin:users".into(),
            ..settings()
        });
        assert_eq!(
            admins.level(&scopes(&["access:services", "admin:users"])),
            Some(Level::Approver)
        );
    }

    #[tokio::test]
    async fn hub_failures_are_typed_and_sign_nobody_in() {
        let oauth = HubOAuth::new(settings());
        let cases: Vec<(Vec<HubAnswer>, &str)> = vec![
            (vec![Err("connection refused".into())], "hub-unreachable"),
            (
                vec![Ok((400, b"{\"error\":\"invalid_grant\"}".to_vec()))],
                "hub-refused",
            ),
            (vec![Ok((200, b"<html>".to_vec()))], "hub-bad-answer"),
            (
                vec![
                    ok(serde_json::json!({"access_token": "t"})),
                    Ok((403, Vec::new())),
                ],
                "hub-refused",
            ),
            (
                vec![
                    ok(serde_json::json!({"access_token": "t"})),
                    ok(
                        serde_json::json!({"name": "mallory", "scopes": ["read:users:name!user=mallory"]}),
                    ),
                ],
                "no-access",
            ),
        ];
        for (answers, kind) in cases {
            let (state, _) = oauth.begin("/").unwrap();
            let hub = ScriptedHub::new(answers);
            let query = format!("code=x&state={state}");
            let e = oauth
                .finish(&hub, Some(&query), Some(&state))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), kind, "{e}");
        }
        let (state, _) = oauth.begin("/").unwrap();
        let declined = oauth
            .finish(
                &ScriptedHub::new(Vec::new()),
                Some(&format!("error=access_denied&state={state}")),
                Some(&state),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (declined.kind(), declined.status()),
            ("oauth-declined", 403)
        );
    }
}
