//! A fake JupyterHub speaking the real API's shapes (pagination, 403/404 bodies), for fault
//! injection. The real hub is in real_hub.rs.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

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
    /// What `GET /user` (whoami) reports for the token.
    pub scopes: Vec<String>,
    /// `user_info` of listed users (JupyterHub >= 6), by name; `null` for the others.
    pub user_info: std::collections::HashMap<String, Value>,
    /// Scripted faults, first match wins.
    pub faults: Vec<HubFault>,
    /// `last_activity` of listed users (ISO 8601), by name; `null` for the others.
    pub last_activity: std::collections::HashMap<String, String>,
    /// Hub groups by user name; every list item carries `groups` unless `omit_groups`.
    pub groups: std::collections::HashMap<String, Vec<String>>,
    /// List items without `groups`, as for a token lacking read:users:groups.
    pub omit_groups: bool,
}

/// Which requests a scripted fault hits.
#[derive(Debug, Clone)]
pub enum HubRoute {
    /// The list page at this offset.
    List(usize),
    AnyList,
    /// This user's record.
    User(String),
    AnyUser,
}

/// What a scripted fault does.
#[derive(Debug, Clone)]
pub enum HubAction {
    /// Answer this instead (nothing else happens).
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
        retry_after: Option<u64>,
    },
    /// Wait this long before the headers.
    Delay(std::time::Duration),
    /// Send half the body, wait this long, send the rest.
    Stall(std::time::Duration),
    /// Close the connection halfway through the body.
    Truncate,
    /// Change the JSON answer (e.g. its `_pagination`).
    Rewrite(fn(&mut Value)),
    /// Answer normally, then delete this user (as an admin would, between list and read).
    DeleteUser(&'static str),
    /// Change the hub's users first, then answer (e.g. users deleted and created between two
    /// list pages).
    Mutate(fn(&mut FakeHubState)),
}

#[derive(Debug, Clone)]
pub struct HubFault {
    pub route: HubRoute,
    pub action: HubAction,
    /// How many matching requests it hits.
    pub times: u32,
}

impl HubRoute {
    fn matches(&self, path: &str) -> bool {
        let list_offset = path.strip_prefix("/hub/api/users?").map(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("offset="))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        });
        let user = path.strip_prefix("/hub/api/users/").map(decode);
        match self {
            HubRoute::List(at) => list_offset == Some(*at),
            HubRoute::AnyList => list_offset.is_some(),
            HubRoute::User(name) => user.as_deref() == Some(name.as_str()),
            HubRoute::AnyUser => user.is_some(),
        }
    }
}

impl FakeHubState {
    fn take_fault(&mut self, path: &str) -> Option<HubAction> {
        let i = self
            .faults
            .iter()
            .position(|f| f.times > 0 && f.route.matches(path))?;
        self.faults[i].times -= 1;
        let action = self.faults[i].action.clone();
        if self.faults[i].times == 0 {
            self.faults.remove(i);
        }
        Some(action)
    }
}

impl FakeHub {
    pub fn start(users: Vec<(String, bool, Value)>, page_limit: usize) -> FakeHub {
        let state = Arc::new(Mutex::new(FakeHubState {
            users,
            page_limit,
            scopes: ["list:users", "read:users", "admin:auth_state"]
                .map(String::from)
                .to_vec(),
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
                let fault = st.lock().unwrap().take_fault(&req.target);
                if let Some(HubAction::Mutate(change)) = &fault {
                    change(&mut st.lock().unwrap());
                }
                let (status, mut body) = match &fault {
                    Some(HubAction::Answer { .. }) => (0, Value::Null),
                    _ => fake_hub_answer(&st, &req.target),
                };
                if is_user {
                    st.lock().unwrap().in_flight -= 1;
                }
                let date = httpdate::fmt_http_date(std::time::SystemTime::now());
                let mut resp = grouper_sim::SimResponse {
                    status,
                    headers: vec![
                        ("Content-Type".into(), "application/json".into()),
                        ("Date".into(), date.clone()),
                    ],
                    body: Vec::new(),
                    delay: None,
                    truncate_at: None,
                    stall: None,
                };
                match fault {
                    None => {}
                    Some(HubAction::Answer {
                        status,
                        content_type,
                        body: raw,
                        retry_after,
                    }) => {
                        resp.status = status;
                        resp.headers = vec![
                            ("Content-Type".into(), content_type.into()),
                            ("Date".into(), date),
                        ];
                        if let Some(secs) = retry_after {
                            resp.headers.push(("Retry-After".into(), secs.to_string()));
                        }
                        resp.body = raw.into_bytes();
                        return resp;
                    }
                    Some(HubAction::Delay(d)) => resp.delay = Some(d),
                    Some(HubAction::Stall(d)) => resp.stall = Some(d),
                    Some(HubAction::Truncate) | Some(HubAction::Mutate(_)) => {}
                    Some(HubAction::Rewrite(change)) => change(&mut body),
                    Some(HubAction::DeleteUser(name)) => {
                        st.lock().unwrap().users.retain(|(n, _, _)| n != name)
                    }
                }
                resp.body = body.to_string().into_bytes();
                if matches!(fault, Some(HubAction::Truncate)) {
                    resp.truncate_at = Some(resp.body.len() / 2);
                }
                resp
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
    // A proxy in front of the hub resolves `.` and `..` segments (RFC 3986 §5.2.4): such a
    // request never reaches the user it names.
    if path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return (404, json!({"status": 404, "message": null}));
    }
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
            .map(|(n, admin, _)| {
                let mut item = json!({"kind": "user", "name": n, "admin": admin, "auth_state": null,
                    "created": "2026-01-01T00:00:00.000000Z",
                    "last_activity": st.last_activity.get(n).cloned().map_or(Value::Null, Value::String),
                    "user_info": st.user_info.get(n).cloned().unwrap_or(Value::Null)});
                if !st.omit_groups {
                    item["groups"] = json!(st.groups.get(n).cloned().unwrap_or_default());
                }
                item
            })
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
    if path == "/user" {
        return (
            200,
            json!({"kind": "service", "name": "grouper-sync", "admin": false, "scopes": st.scopes}),
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
