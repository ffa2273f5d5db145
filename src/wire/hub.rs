//! JupyterHub REST API: the requests the sync sends and the parsing of their answers.

use crate::error::{ErrorKind, SyncError};
use crate::wire::http::{encode_segment, truncate, Method, Request, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

mod user_entry;

pub const PAGINATION_ACCEPT: &str = "application/jupyterhub-pagination+json";

/// A user as listed by `GET /users`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedUser {
    pub name: String,
    pub admin: bool,
    /// `created`, in microseconds since the epoch; `None` when absent or unreadable.
    pub created: Option<i64>,
    /// `last_activity`, in microseconds since the epoch; `None` when never active (or unreadable).
    pub last_activity: Option<i64>,
    /// `user_info` (JupyterHub >= 6), kept only when a target maps subjects from it.
    pub user_info: Option<Value>,
    /// The hub groups the user is in, kept only when a target selects by hub group.
    pub groups: Vec<String>,
    /// A server of the user's is running: the default one once ready (`server`, with
    /// `read:users`), or any named or still starting one (`servers`, with `read:servers`).
    pub server_running: bool,
}

/// Which optional fields of the list to keep (each costs memory per user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub user_info: bool,
    pub groups: bool,
    pub servers: bool,
}

impl Keep {
    pub const ALL: Keep = Keep {
        user_info: true,
        groups: true,
        servers: true,
    };
    pub const LEAN: Keep = Keep {
        user_info: false,
        groups: false,
        servers: false,
    };
}

/// What `GET /users/{name}` told us about a user's `auth_state`.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthState {
    /// `"auth_state": {...}`
    Present(Value),
    /// `"auth_state": null`: the user has none (never logged in with auth_state enabled).
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsersPage {
    pub users: Vec<ListedUser>,
    pub total: Option<u64>,
    /// The page size the hub applied (it clamps the requested limit).
    pub limit: Option<u64>,
    /// `(offset, limit)` of the next page, if any.
    pub next: Option<(u64, u64)>,
}

fn bad_answer(message: String) -> SyncError {
    SyncError::new(ErrorKind::HubBadAnswer, message)
}

fn auth(req: Request, token: &str) -> Request {
    req.header("Authorization", format!("token {token}"))
}

pub fn list_users_request(api_url: &str, token: &str, offset: u64, limit: u64) -> Request {
    let url = format!("{api_url}/users?offset={offset}&limit={limit}");
    auth(Request::new(Method::Get, url), token).header("Accept", PAGINATION_ACCEPT)
}

pub fn user_request(api_url: &str, token: &str, name: &str) -> Request {
    let url = format!("{api_url}/users/{}", encode_segment(name));
    auth(Request::new(Method::Get, url), token).header("Accept", "application/json")
}

/// `GET /user`: who the token belongs to, and its scopes.
pub fn whoami_request(api_url: &str, token: &str) -> Request {
    auth(Request::new(Method::Get, format!("{api_url}/user")), token)
        .header("Accept", "application/json")
}

/// The token's owner as `check` shows it (`kind name`), and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub identity: String,
    pub scopes: Vec<String>,
}

/// The answer to [`whoami_request`].
pub fn parse_whoami(resp: &Response) -> Result<TokenOwner, SyncError> {
    const WHAT: &str = "JupyterHub /user";
    if resp.status != 200 {
        return Err(status_error(WHAT, resp));
    }
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|e| bad_answer(format!("{WHAT}: not JSON ({e})")))?;
    let text = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    Ok(TokenOwner {
        identity: format!("{} {}", text("kind"), text("name")),
        scopes: v
            .get("scopes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// `GET /groups/{name}`: does the hub group exist? (`read:groups:name`, which `list:groups` and
/// `groups` include.)
pub fn group_request(api_url: &str, token: &str, group: &str) -> Request {
    let url = format!("{api_url}/groups/{}", encode_segment(group));
    auth(Request::new(Method::Get, url), token).header("Accept", "application/json")
}

/// `POST /groups/{name}`: creates an empty hub group (`admin:groups`).
pub fn create_group_request(api_url: &str, token: &str, group: &str) -> Request {
    let url = format!("{api_url}/groups/{}", encode_segment(group));
    auth(Request::new(Method::Post, url), token)
        .header("Content-Type", "application/json")
        .body(b"{}".to_vec())
}

/// `POST` (add) or `DELETE` (remove) `/groups/{name}/users` with `{"users": [...]}` (`groups`).
pub fn group_users_request(
    api_url: &str,
    token: &str,
    group: &str,
    add: bool,
    users: &[String],
) -> Request {
    let url = format!("{api_url}/groups/{}/users", encode_segment(group));
    let method = if add { Method::Post } else { Method::Delete };
    let body = serde_json::json!({ "users": users })
        .to_string()
        .into_bytes();
    auth(Request::new(method, url), token)
        .header("Content-Type", "application/json")
        .body(body)
}

/// The answer to [`group_request`]: `Ok(true)` exists, `Ok(false)` does not.
pub fn parse_group_exists(group: &str, resp: &Response) -> Result<bool, SyncError> {
    match resp.status {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(status_error(&format!("reading hub group {group:?}"), resp)),
    }
}

/// Turns a non-2xx hub answer into a typed error with a message an admin can act on.
pub fn status_error(what: &str, resp: &Response) -> SyncError {
    let message = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from));
    match (resp.status, message.as_deref()) {
        (403, Some(m)) if m.contains("requires any of") => {
            let scopes = m.split("requires any of").nth(1).unwrap_or("").trim();
            SyncError::new(
                ErrorKind::HubForbidden,
                format!(
                    "{what}: the JupyterHub token lacks a needed scope: the hub requires any of {scopes}; \
                     add one to the service's role"
                ),
            )
            .with_scope(scopes.trim_matches(['[', ']']).to_string())
        }
        (401 | 403, _) => SyncError::new(
            ErrorKind::HubUnauthorized,
            format!(
                "{what}: JupyterHub rejected the token (HTTP {} Missing or invalid credentials): check jupyterhub_api_token",
                resp.status
            ),
        ),
        (404, _) => bad_answer(format!(
            "{what}: not found (404): check jupyterhub_api_url, which should end in /hub/api"
        )),
        (status, m) => {
            let kind = if status == 429 || status >= 500 {
                ErrorKind::HubUnavailable
            } else {
                ErrorKind::HubBadAnswer
            };
            let detail = match m {
                Some(m) => truncate(m, 200),
                None => truncate(&String::from_utf8_lossy(&resp.body), 200),
            };
            SyncError::new(kind, format!("{what}: HTTP {status}: {detail}"))
        }
    }
}

fn parse_json(what: &str, body: &[u8]) -> Result<Value, SyncError> {
    serde_json::from_slice(body)
        .map_err(|e| bad_answer(format!("{what}: the hub's answer is not valid JSON ({e})")))
}

/// A page of `GET /users`: its entries stay text until each is read into a user.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(rename = "_pagination")]
    pagination: Option<Value>,
}

/// Why a list answer could not be read as a page, for an answer that is not one.
fn unreadable_page(body: &[u8]) -> SyncError {
    const WHAT: &str = "listing hub users";
    match parse_json(WHAT, body) {
        Err(e) => e,
        Ok(Value::Object(_)) => bad_answer(format!("{WHAT}: answer has no items list")),
        Ok(_) => bad_answer(format!(
            "{WHAT}: the hub answered without pagination (JupyterHub older than 2.0, or a proxy dropped the Accept header); \
             such a list can be silently truncated, so the pass stops"
        )),
    }
}

/// Parses one answer of `GET /users` sent with the pagination Accept header.
pub fn parse_users_page(resp: &Response, keep: Keep) -> Result<UsersPage, SyncError> {
    const WHAT: &str = "listing hub users";
    if resp.status != 200 {
        return Err(status_error(WHAT, resp));
    }
    // Only an object can carry the pagination (a struct would also read a JSON array).
    let page: Page = match serde_json::from_slice(&resp.body) {
        Ok(page) if resp.body.trim_ascii_start().starts_with(b"{") => page,
        _ => return Err(unreadable_page(&resp.body)),
    };
    let Some(items) = page.items else {
        return Err(unreadable_page(&resp.body));
    };
    let users = items
        .into_iter()
        .map(|item| user_entry::parse(item, keep))
        .collect::<Result<Vec<_>, _>>()?;
    let pagination = page.pagination.as_ref().and_then(Value::as_object);
    let total = pagination
        .and_then(|p| p.get("total"))
        .and_then(Value::as_u64);
    let limit = pagination
        .and_then(|p| p.get("limit"))
        .and_then(Value::as_u64);
    let next = match pagination.and_then(|p| p.get("next")) {
        None | Some(Value::Null) => None,
        Some(n) => {
            let offset = n.get("offset").and_then(Value::as_u64);
            let limit = n.get("limit").and_then(Value::as_u64);
            match (offset, limit) {
                (Some(o), Some(l)) if l > 0 => Some((o, l)),
                _ => {
                    return Err(bad_answer(format!(
                        "{WHAT}: malformed _pagination.next: {}",
                        truncate(&n.to_string(), 200)
                    )))
                }
            }
        }
    };
    Ok(UsersPage {
        users,
        total,
        limit,
        next,
    })
}

/// Parses `GET /users/{name}` as a user model with the list's fields (for a user the listing
/// did not return). `Ok(None)`: the user does not exist (404).
pub fn parse_user_model(
    name: &str,
    resp: &Response,
    keep: Keep,
) -> Result<Option<ListedUser>, UserError> {
    let what = format!("looking up hub user {name:?}");
    match resp.status {
        404 => return Ok(None),
        403 => return Err(UserError::Permission(status_error(&what, resp))),
        200 => {}
        _ => return Err(UserError::Unreadable(status_error(&what, resp))),
    }
    let entry = serde_json::from_slice::<&RawValue>(&resp.body).map_err(|e| {
        UserError::Unreadable(bad_answer(format!(
            "{what}: the hub's answer is not valid JSON ({e})"
        )))
    })?;
    let user = user_entry::parse(entry, keep).map_err(|e| match e.kind {
        ErrorKind::HubForbidden => UserError::Permission(e),
        _ => UserError::Unreadable(e),
    })?;
    if user.name != name {
        return Err(UserError::Unreadable(bad_answer(format!(
            "{what}: the hub answered with user {:?}",
            user.name
        ))));
    }
    Ok(Some(user))
}

/// Why one user's record could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// The token may not read users or auth_state: every user would fail the same way.
    Permission(SyncError),
    /// This user's record could not be read; the user counts as unread.
    Unreadable(SyncError),
}

/// Parses `GET /users/{name}`. `Ok(None)`: the user no longer exists (404).
pub fn parse_user(name: &str, resp: &Response) -> Result<Option<AuthState>, UserError> {
    let what = format!("reading hub user {name:?}");
    if resp.status == 404 {
        return Ok(None);
    }
    if resp.status == 403 {
        return Err(UserError::Permission(status_error(&what, resp)));
    }
    if resp.status != 200 {
        return Err(UserError::Unreadable(status_error(&what, resp)));
    }
    let v = parse_json(&what, &resp.body).map_err(UserError::Unreadable)?;
    match v.get("auth_state") {
        // The key is left out entirely when the token may not read auth_state.
        None => Err(UserError::Permission(SyncError::new(ErrorKind::HubForbidden, format!(
            "{what}: the answer has no auth_state field, so the token lacks the admin:auth_state scope \
             (or the hub does not enable auth_state)"
        )).with_scope("admin:auth_state"))),
        Some(Value::Null) => Ok(Some(AuthState::Null)),
        Some(state @ Value::Object(_)) => Ok(Some(AuthState::Present(state.clone()))),
        Some(_) => Err(UserError::Unreadable(bad_answer(format!("{what}: auth_state is neither an object nor null")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn builds_requests() {
        let r = list_users_request("http://h/hub/api", "t0k", 0, 200);
        assert_eq!(r.url, "http://h/hub/api/users?offset=0&limit=200");
        assert!(r
            .headers
            .contains(&("Accept".into(), PAGINATION_ACCEPT.into())));
        assert!(r
            .headers
            .contains(&("Authorization".into(), "token t0k".into())));
        let u = user_request("http://h/hub/api", "t", "a b@c/d");
        assert_eq!(u.url, "http://h/hub/api/users/a%20b%40c%2Fd");
        // a user or group named `.` or `..` is never a path step
        assert_eq!(
            user_request("http://h/hub/api", "t", "..").url,
            "http://h/hub/api/users/%2E%2E"
        );
        assert_eq!(
            group_request("http://h/hub/api", "t", ".").url,
            "http://h/hub/api/groups/%2E"
        );
        assert_eq!(
            group_users_request("http://h/hub/api", "t", "..", true, &[]).url,
            "http://h/hub/api/groups/%2E%2E/users"
        );
    }

    fn parse_users_page_plain(resp: &Response) -> Result<UsersPage, SyncError> {
        parse_users_page(resp, Keep::LEAN)
    }

    #[test]
    fn running_servers_come_from_server_and_servers() {
        let body = r#"{"items": [
            {"kind": "user", "name": "default", "server": "/user/default/", "servers": {}},
            {"kind": "user", "name": "named", "server": null, "servers": {"gpu": {"ready": true}}},
            {"kind": "user", "name": "stopped", "server": null, "servers": {}},
            {"kind": "user", "name": "no-read-servers", "server": null}],
          "_pagination": {"offset": 0, "limit": 200, "total": 4, "next": null}}"#;
        let keep = Keep {
            servers: true,
            ..Keep::LEAN
        };
        let p = parse_users_page(&ok(body), keep).unwrap();
        let running: Vec<bool> = p.users.iter().map(|u| u.server_running).collect();
        assert_eq!(running, [true, true, false, false]);
        // a token that sees neither field cannot tell: the pass stops and names the scope
        let blind = r#"{"items": [{"kind": "user", "name": "a"}],
          "_pagination": {"offset": 0, "limit": 200, "total": 1, "next": null}}"#;
        let e = parse_users_page(&ok(blind), keep).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HubForbidden);
        assert_eq!(e.missing_scope.as_deref(), Some("read:users"));
        assert!(!parse_users_page(&ok(blind), Keep::LEAN).unwrap().users[0].server_running);
    }

    #[test]
    fn list_items_carry_times_and_user_info_when_asked() {
        let body = r#"{"items": [
            {"kind": "user", "name": "a", "created": "2026-11-29T12:34:56.000001Z",
             "last_activity": null, "user_info": {"login_id": "111"}},
            {"kind": "user", "name": "b", "created": "garbage", "last_activity": "2026-11-29T12:34:57Z",
             "user_info": null}],
          "_pagination": {"offset": 0, "limit": 200, "total": 2, "next": null}}"#;
        let p = parse_users_page(
            &ok(body),
            Keep {
                user_info: true,
                groups: false,
                servers: false,
            },
        )
        .unwrap();
        assert_eq!(p.users[0].created, Some(1_795_955_696_000_001));
        assert_eq!(p.users[0].last_activity, None);
        assert_eq!(
            p.users[0].user_info,
            Some(serde_json::json!({"login_id": "111"}))
        );
        assert_eq!(p.users[1].created, None, "unreadable times read as unknown");
        assert_eq!(p.users[1].last_activity, Some(1_795_955_697_000_000));
        assert_eq!(p.users[1].user_info, None);
        let lean = parse_users_page(&ok(body), Keep::LEAN).unwrap();
        assert_eq!(
            lean.users[0].user_info, None,
            "dropped unless a target needs it"
        );
    }

    #[test]
    fn parses_a_real_page_shape() {
        let body = r#"{"items": [
            {"kind": "user", "name": "admin", "admin": true, "roles": ["user","admin"], "auth_state": null},
            {"kind": "user", "name": "user00000", "admin": false, "auth_state": null, "user_info": null}],
          "_pagination": {"offset": 0, "limit": 2, "total": 5,
             "next": {"offset": 2, "limit": 2, "url": "http://127.0.0.1:8081/hub/api/users?offset=2&limit=2"}}}"#;
        let p = parse_users_page_plain(&ok(body)).unwrap();
        assert_eq!(p.users.len(), 2);
        assert!(p.users[0].admin);
        assert_eq!(p.total, Some(5));
        assert_eq!(p.limit, Some(2));
        assert_eq!(p.next, Some((2, 2)));
        let last =
            r#"{"items": [], "_pagination": {"offset": 9, "limit": 2, "total": 5, "next": null}}"#;
        assert_eq!(parse_users_page_plain(&ok(last)).unwrap().next, None);
    }

    #[test]
    fn plain_array_is_refused() {
        let e = parse_users_page_plain(&ok(r#"[{"name": "a"}]"#)).unwrap_err();
        assert!(e.message.contains("without pagination"), "{e}");
    }

    #[test]
    fn scope_errors_name_the_scope() {
        let r = Response {
            status: 403,
            headers: vec![],
            body: br#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [list:users]"}"#.to_vec(),
        };
        let e = parse_users_page(&r, Keep::LEAN).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HubForbidden);
        assert_eq!(e.missing_scope.as_deref(), Some("list:users"));
        assert!(
            e.message.contains("[list:users]") && e.message.contains("scope"),
            "{e}"
        );
        let bad = Response {
            status: 403,
            headers: vec![],
            body: br#"{"status": 403, "message": "Missing or invalid credentials."}"#.to_vec(),
        };
        let e = parse_users_page(&bad, Keep::LEAN).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HubUnauthorized);
        assert!(e.message.contains("jupyterhub_api_token"), "{e}");
    }

    fn page_of(entries: &str) -> String {
        format!(
            r#"{{"items": [{entries}], "_pagination": {{"offset": 0, "limit": 200, "total": 9, "next": null}}}}"#
        )
    }

    #[test]
    fn entries_are_read_field_by_field() {
        // what the sync does not read is skipped, whatever its shape
        let body = page_of(
            r#"{"kind": "user", "name": "na\u00efve \"q\"", "admin": false, "roles": ["user"],
                "auth_state": {"deep": [1, {"x": null}]}, "pending": null, "scopes": [],
                "created": "2026-11-29T12:34:56Z", "last_activity": "2026-11-29T12:34:\u0035\u0037Z",
                "groups": ["g1", 7, null, "g\/2"], "server": null, "servers": {}, "user_info": [1]},
               {"name": "b", "admin": null, "last_activity": 17, "server": "/user/b/"}"#,
        );
        let keep = Keep::ALL;
        let users = parse_users_page(&ok(&body), Keep::LEAN).unwrap().users;
        assert_eq!(users[0].name, "na\u{ef}ve \"q\"");
        assert!(!users[0].admin && !users[1].admin);
        assert_eq!(users[0].created, Some(1_795_955_696_000_000));
        assert_eq!(users[0].last_activity, Some(1_795_955_697_000_000));
        assert_eq!(users[1].last_activity, None, "a number is no time");
        assert!(users[0].groups.is_empty() && users[0].user_info.is_none());
        let e = parse_users_page(&ok(&body), keep).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::HubForbidden,
            "b's list carries no groups"
        );
        let body = page_of(
            r#"{"name": "a", "groups": ["g1", 7, null, "g\/2"], "server": null, "servers": {}, "user_info": [1]},
               {"name": "b", "groups": [], "server": "/user/b/", "user_info": {"id": "7"}},
               {"name": "c", "groups": [], "server": null, "servers": {"gpu": {}}}"#,
        );
        let users = parse_users_page(&ok(&body), keep).unwrap().users;
        assert_eq!(users[0].groups, ["g1", "g/2"]);
        let running: Vec<bool> = users.iter().map(|u| u.server_running).collect();
        assert_eq!(running, [false, true, true]);
        assert_eq!(users[0].user_info, None, "user_info that is no object");
        assert_eq!(users[1].user_info, Some(serde_json::json!({"id": "7"})));
    }

    #[test]
    fn malformed_entries_are_refused_with_their_text() {
        for (entry, says) in [
            (r#"["a"]"#, "not an object"),
            (r#"{"name": 7}"#, "malformed"),
            (r#"{"name": ""}"#, "without a name"),
            (r#"{"name": "a", "admin": "yes"}"#, "non-boolean admin"),
            (r#"{"name": "a", "kind": "service"}"#, "has kind"),
            (r#"{"name": "a", "name": "b"}"#, "malformed"),
        ] {
            let e = parse_users_page_plain(&ok(&page_of(entry))).unwrap_err();
            assert_eq!(e.kind, ErrorKind::HubBadAnswer, "{entry}");
            assert!(e.message.contains(says), "{entry}: {e}");
        }
        let e = parse_users_page_plain(&ok(r#"{"_pagination": {}}"#)).unwrap_err();
        assert!(e.message.contains("no items list"), "{e}");
        let e = parse_users_page_plain(&ok(r#" [{"items": []}]"#)).unwrap_err();
        assert!(e.message.contains("without pagination"), "{e}");
    }

    #[test]
    fn truncated_or_bad_json_is_an_error() {
        assert!(parse_users_page_plain(&ok(r#"{"items": [{"name": "a"#))
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(parse_users_page_plain(&ok(r#"{"items": [{"admin": false}]}"#)).is_err());
        assert!(parse_users_page_plain(&ok(
            r#"{"items": [], "_pagination": {"next": {"offset": "x"}}}"#
        ))
        .is_err());
    }

    #[test]
    fn user_auth_state_cases() {
        let with = ok(r#"{"name": "u", "auth_state": {"canvas_user": {"login_id": "100"}}}"#);
        assert!(matches!(
            parse_user("u", &with).unwrap(),
            Some(AuthState::Present(_))
        ));
        assert_eq!(
            parse_user("u", &ok(r#"{"name": "u", "auth_state": null}"#)).unwrap(),
            Some(AuthState::Null)
        );
        let Err(UserError::Permission(missing)) =
            parse_user("u", &ok(r#"{"name": "u", "admin": false}"#))
        else {
            panic!("a missing auth_state key is a permission problem")
        };
        assert!(missing.message.contains("admin:auth_state"), "{missing}");
        assert_eq!(missing.kind, ErrorKind::HubForbidden);
        let broken = Response {
            status: 500,
            headers: vec![],
            body: b"oops".to_vec(),
        };
        assert!(matches!(
            parse_user("u", &broken),
            Err(UserError::Unreadable(_))
        ));
        let gone = Response {
            status: 404,
            headers: vec![],
            body: br#"{"status": 404, "message": null}"#.to_vec(),
        };
        assert_eq!(parse_user("u", &gone).unwrap(), None);
    }

    #[test]
    fn whoami_names_the_owner_and_its_scopes_and_refuses_anything_else() {
        let r = whoami_request("http://hub/hub/api", "t");
        assert_eq!(r.url, "http://hub/hub/api/user");
        let owner = parse_whoami(&ok(
            r#"{"kind": "service", "name": "grouper-sync", "scopes": ["list:users", "read:users"]}"#,
        ))
        .unwrap();
        assert_eq!(owner.identity, "service grouper-sync");
        assert_eq!(owner.scopes, ["list:users", "read:users"]);
        let denied = Response {
            status: 401,
            ..ok(r#"{"status": 401, "message": "Unauthorized"}"#)
        };
        assert_eq!(
            parse_whoami(&denied).unwrap_err().kind,
            ErrorKind::HubUnauthorized
        );
        let html = parse_whoami(&ok("<html>")).unwrap_err();
        assert_eq!(html.kind, ErrorKind::HubBadAnswer);
        assert!(html.message.contains("/user: not JSON"), "{}", html.message);
    }
}
