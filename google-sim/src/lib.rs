//! A simulator of what grouper-sync asks of Google (docs/google.md): a service account's OAuth 2.0
//! token endpoint (the JWT-bearer grant of RFC 7523, checked as Google does: the RS256 signature
//! with the key's public half, `iss`, `aud`, `sub`, `scope`, and the `iat`/`exp` window; tokens
//! that expire) and the Groups Settings API's group resource (`GET`, `PATCH`; JSON only with
//! `alt=json`, Atom otherwise) with its documented fields and values, plus faults.
//!
//! [`GoogleSim::handle`] is a request -> response function; [`GoogleSim::serve`] puts it behind
//! the same small HTTP server the Grouper simulator uses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use grouper_sim::{form_params, percent_decode, ServerHandle, SimRequest, SimResponse};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod fields;
pub use fields::{default_settings, Values, FIELDS};

/// The scope of the Groups Settings API.
pub const SETTINGS_SCOPE: &str = "https://www.googleapis.com/auth/apps.groups.settings";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A service account's key as Google hands it out (the JSON file), made for one test.
pub struct ServiceAccount {
    pub client_email: String,
    /// The whole key file's JSON, as an admin pastes it into `google_service_account_key`.
    pub key_json: String,
}

/// Which requests a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Settings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status and body (and `Retry-After`), touching nothing.
    Status {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// Answer normally, after this long.
    Delay(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub endpoint: Endpoint,
    pub action: FaultAction,
    pub times: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The PATCH body's field names.
    pub fields: Vec<String>,
}

struct Token {
    expires: SystemTime,
    scopes: BTreeSet<String>,
}

struct State {
    /// The token endpoint's own URL: what `aud` must be (set by `serve`).
    token_url: String,
    accounts: HashMap<String, RsaPublicKey>,
    /// Scopes each account's domain-wide delegation grants.
    delegated: HashMap<String, BTreeSet<String>>,
    admins: BTreeSet<String>,
    groups: BTreeMap<String, Map<String, Value>>,
    tokens: HashMap<String, Token>,
    issued: u64,
    token_lifetime: Duration,
    api_enabled: bool,
    faults: VecDeque<Fault>,
    log: Vec<LoggedRequest>,
}

pub struct GoogleSim {
    state: Mutex<State>,
}

fn answer(status: u16, body: &Value) -> SimResponse {
    SimResponse {
        status,
        headers: vec![(
            "Content-Type".into(),
            "application/json; charset=UTF-8".into(),
        )],
        body: serde_json::to_vec_pretty(body).unwrap_or_default(),
        delay: None,
        truncate_at: None,
        stall: None,
    }
}

/// The Google API error envelope.
fn api_error(status: u16, message: &str, reason: &str, state: &str) -> SimResponse {
    answer(
        status,
        &json!({"error": {"code": status, "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": state}}),
    )
}

/// The token endpoint's error (RFC 6749 §5.2).
fn oauth_error(status: u16, error: &str, description: &str) -> SimResponse {
    answer(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn form(s: &str) -> HashMap<String, String> {
    form_params(s).into_iter().collect()
}

impl GoogleSim {
    pub fn new() -> Arc<Self> {
        Arc::new(GoogleSim {
            state: Mutex::new(State {
                token_url: String::new(),
                accounts: HashMap::new(),
                delegated: HashMap::new(),
                admins: BTreeSet::new(),
                groups: BTreeMap::new(),
                tokens: HashMap::new(),
                issued: 0,
                token_lifetime: Duration::from_secs(3600),
                api_enabled: true,
                faults: VecDeque::new(),
                log: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the simulator on `addr`; the token endpoint is `<base>/token`, the API `<base>`.
    pub fn serve(self: &Arc<Self>, addr: &str) -> std::io::Result<ServerHandle> {
        let sim = Arc::clone(self);
        let handle =
            grouper_sim::server::serve(addr, Arc::new(move |req: &SimRequest| sim.handle(req)))?;
        self.set_token_url(&format!("http://{}/token", handle.addr));
        Ok(handle)
    }

    /// The URL tokens are asked for at (and `aud` must name), when served behind a TLS front.
    pub fn set_token_url(&self, url: &str) {
        self.lock().token_url = url.to_string();
    }

    /// A new service account with a fresh 2048-bit RSA key; its key file names `token_uri`.
    pub fn add_service_account(&self, client_email: &str) -> ServiceAccount {
        use rsa::rand_core::SeedableRng;
        static KEYS_MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let made = KEYS_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            ^ made.rotate_left(48);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let key = RsaPrivateKey::new(&mut rng, 2048).expect("an RSA key");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 PEM")
            .to_string();
        let mut st = self.lock();
        st.accounts
            .insert(client_email.to_string(), RsaPublicKey::from(&key));
        let key_json = json!({
            "type": "service_account",
            "project_id": "grouper-sync-test",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": pem,
            "client_email": client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": st.token_url,
        })
        .to_string();
        ServiceAccount {
            client_email: client_email.to_string(),
            key_json,
        }
    }

    /// Grants the account domain-wide delegation for `scope` (the Workspace admin's step).
    pub fn delegate(&self, client_email: &str, scope: &str) {
        self.lock()
            .delegated
            .entry(client_email.to_string())
            .or_default()
            .insert(scope.to_string());
    }

    /// A Workspace user the account may act as (`sub`).
    pub fn add_admin(&self, email: &str) {
        self.lock().admins.insert(email.to_string());
    }

    /// A group as the provisioner makes it, with Google's defaults.
    pub fn add_group(&self, email: &str) {
        self.lock()
            .groups
            .insert(email.to_string(), default_settings(email));
    }

    pub fn remove_group(&self, email: &str) {
        self.lock().groups.remove(email);
    }

    pub fn settings(&self, email: &str) -> Option<Map<String, Value>> {
        self.lock().groups.get(email).cloned()
    }

    /// Changes a setting as someone in the Groups UI would.
    pub fn set_setting(&self, email: &str, field: &str, value: &str) {
        if let Some(g) = self.lock().groups.get_mut(email) {
            g.insert(field.to_string(), value.into());
        }
    }

    /// Makes every token issued so far expired.
    pub fn expire_tokens(&self) {
        for t in self.lock().tokens.values_mut() {
            t.expires = UNIX_EPOCH;
        }
    }

    /// How long new tokens live (Google: an hour).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Turns the Groups Settings API off for the project, as a console admin can.
    pub fn disable_api(&self) {
        self.lock().api_enabled = false;
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().issued
    }

    pub fn handle(&self, req: &SimRequest) -> SimResponse {
        let mut st = self.lock();
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let endpoint = if path == "/token" {
            Endpoint::Token
        } else {
            Endpoint::Settings
        };
        let fault = st
            .faults
            .iter()
            .position(|f| f.endpoint == endpoint && f.times > 0)
            .map(|i| {
                let f = &mut st.faults[i];
                f.times -= 1;
                let action = f.action.clone();
                if f.times == 0 {
                    st.faults.remove(i);
                }
                action
            });
        let mut fields = Vec::new();
        let delay = match &fault {
            Some(FaultAction::Delay(d)) => Some(*d),
            _ => None,
        };
        let mut resp = match fault {
            Some(FaultAction::Status {
                status,
                body,
                retry_after,
            }) => {
                let mut r = SimResponse {
                    status,
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: body.into_bytes(),
                    delay: None,
                    truncate_at: None,
                    stall: None,
                };
                if let Some(s) = retry_after {
                    r.headers.push(("Retry-After".into(), s.to_string()));
                }
                r
            }
            _ => match endpoint {
                Endpoint::Token => token(&mut st, req),
                Endpoint::Settings => settings(&mut st, req, path, query, &mut fields),
            },
        };
        if delay.is_some() {
            resp.delay = delay;
        }
        st.log.push(LoggedRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            status: resp.status,
            fields,
        });
        resp
    }
}

fn jwt_part(part: &str) -> Option<Value> {
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The JWT-bearer grant, checked in the order Google reports problems.
fn token(st: &mut State, req: &SimRequest) -> SimResponse {
    if req.method != "POST" {
        return oauth_error(405, "invalid_request", "POST only");
    }
    let params = form(&String::from_utf8_lossy(&req.body));
    if params.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        let g = params.get("grant_type").cloned().unwrap_or_default();
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {g}"),
        );
    }
    let assertion = params.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return oauth_error(400, "invalid_request", "Invalid JWT: not three parts");
    };
    let (Some(h), Some(c)) = (jwt_part(header), jwt_part(claims)) else {
        return oauth_error(400, "invalid_request", "Invalid JWT: cannot decode");
    };
    if h["alg"] != "RS256" {
        return oauth_error(400, "invalid_grant", "Invalid JWT Signature.");
    }
    let iss = c["iss"].as_str().unwrap_or_default();
    let Some(public) = st.accounts.get(iss) else {
        return oauth_error(400, "invalid_grant", "Invalid grant: account not found");
    };
    let verified = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|s| Signature::try_from(s.as_slice()).ok())
        .is_some_and(|sig| {
            VerifyingKey::<sha2::Sha256>::new(public.clone())
                .verify(format!("{header}.{claims}").as_bytes(), &sig)
                .is_ok()
        });
    if !verified {
        return oauth_error(400, "invalid_grant", "Invalid JWT Signature.");
    }
    if c["aud"].as_str() != Some(st.token_url.as_str()) {
        return oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let (iat, exp) = (c["iat"].as_i64(), c["exp"].as_i64());
    let now = now_secs();
    let window_ok = matches!((iat, exp), (Some(iat), Some(exp))
        if exp > iat && exp - iat <= 3600 && iat <= now + 300 && now < exp);
    if !window_ok {
        return oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
    }
    let sub = c["sub"].as_str().unwrap_or_default();
    if !st.admins.contains(sub) {
        return oauth_error(400, "invalid_grant", "Invalid email or User ID");
    }
    let scopes: BTreeSet<String> = c["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let granted = st.delegated.get(iss).cloned().unwrap_or_default();
    if scopes.is_empty() || !scopes.is_subset(&granted) {
        return oauth_error(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.");
    }
    st.issued += 1;
    let access_token = format!("ya29.sim-{}-{}", st.issued, now);
    st.tokens.insert(
        access_token.clone(),
        Token {
            expires: SystemTime::now() + st.token_lifetime,
            scopes,
        },
    );
    answer(
        200,
        &json!({"access_token": access_token,
            "expires_in": st.token_lifetime.as_secs().saturating_sub(1),
            "token_type": "Bearer"}),
    )
}

fn atom(email: &str, settings: &Map<String, Value>) -> SimResponse {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><entry xmlns=\"http://www.w3.org/2005/Atom\" xmlns:apps=\"http://schemas.google.com/apps/2006\">");
    xml.push_str(&format!("<id>tag:googleapis.com,2010:apps:groupssettings:GROUP:{email}</id><title>Groups Resource Entry</title>"));
    for (k, v) in settings {
        let v = v
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string());
        xml.push_str(&format!("<apps:{k}>{v}</apps:{k}>"));
    }
    xml.push_str("</entry>");
    SimResponse {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "application/atom+xml; charset=UTF-8".into(),
        )],
        body: xml.into_bytes(),
        delay: None,
        truncate_at: None,
        stall: None,
    }
}

/// `/groups/v1/groups/{email}`: GET and PATCH.
fn settings(
    st: &mut State,
    req: &SimRequest,
    path: &str,
    query: &str,
    logged_fields: &mut Vec<String>,
) -> SimResponse {
    let Some(email) = path.strip_prefix("/groups/v1/groups/").map(percent_decode) else {
        return api_error(404, "Not Found", "notFound", "NOT_FOUND");
    };
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| st.tokens.get(t));
    let Some(token) = token.filter(|t| t.expires > SystemTime::now()) else {
        return api_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", "authError", "UNAUTHENTICATED");
    };
    if !token.scopes.contains(SETTINGS_SCOPE) {
        return api_error(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            "PERMISSION_DENIED",
        );
    }
    if !st.api_enabled {
        return api_error(403, "Groups Settings API has not been used in project grouper-sync-test before or it is disabled. Enable it by visiting the API console, then retry.", "accessNotConfigured", "PERMISSION_DENIED");
    }
    let json_wanted = form(query).get("alt").map(String::as_str) == Some("json");
    let Some(group) = st.groups.get_mut(&email) else {
        return api_error(
            404,
            "Resource Not Found: groupUniqueId",
            "notFound",
            "NOT_FOUND",
        );
    };
    match req.method.as_str() {
        "GET" => {}
        "PATCH" => {
            let body: Value = match serde_json::from_slice(&req.body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return api_error(400, "Parse Error", "parseError", "INVALID_ARGUMENT"),
            };
            let changes = body.as_object().cloned().unwrap_or_default();
            for (field, value) in &changes {
                logged_fields.push(field.clone());
                if let Err(why) = fields::check(field, value) {
                    return api_error(400, &why, "invalid", "INVALID_ARGUMENT");
                }
            }
            for (field, value) in changes {
                if !fields::read_only(&field) {
                    group.insert(field, value);
                }
            }
        }
        other => {
            return api_error(
                405,
                &format!("Method {other} not allowed"),
                "httpMethodNotAllowed",
                "INVALID_ARGUMENT",
            )
        }
    }
    if json_wanted {
        answer(200, &Value::Object(group.clone()))
    } else {
        atom(&email, group)
    }
}
