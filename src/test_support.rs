//! Test doubles shared by the core's unit tests: a transport answered by a closure, and
//! Grouper's answers in their wire shapes.

use crate::wire::http::{Outcome, Request, Response, Transport};
use std::time::Duration;

/// A loopback-free stand-in for both services: the closure answers each request.
pub struct Fake<F: FnMut(&Request) -> Outcome> {
    pub answer: F,
    /// `METHOD URL` of every request, in order.
    pub log: Vec<String>,
    /// Every wait before a retry, in order.
    pub slept: Vec<Duration>,
}

impl<F: FnMut(&Request) -> Outcome> Fake<F> {
    pub fn new(answer: F) -> Self {
        Fake {
            answer,
            log: Vec::new(),
            slept: Vec::new(),
        }
    }
}

impl<F: FnMut(&Request) -> Outcome> Transport for Fake<F> {
    fn send_all(&mut self, requests: &[Request], _: usize) -> Vec<Outcome> {
        requests
            .iter()
            .map(|r| {
                self.log.push(format!("{} {}", r.method.as_str(), r.url));
                (self.answer)(r)
            })
            .collect()
    }
    fn sleep(&mut self, d: Duration) {
        self.slept.push(d);
    }
}

/// A request as the simulators' handlers take it (the path and query of its URL).
fn sim_request(r: &Request) -> grouper_sim::SimRequest {
    let after_host = r
        .url
        .split_once("://")
        .map_or(r.url.as_str(), |(_, rest)| rest);
    let target = after_host.find('/').map_or("/", |i| &after_host[i..]);
    grouper_sim::SimRequest {
        method: r.method.as_str().to_string(),
        target: target.to_string(),
        headers: r.headers.clone(),
        body: r.body.clone().unwrap_or_default(),
    }
}

/// A simulator's answer as the transport would hand it over.
fn sim_response(answer: grouper_sim::SimResponse) -> Response {
    Response {
        status: answer.status,
        headers: answer
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body: answer.body,
    }
}

/// The Grouper simulator's answer to a request.
pub fn simulated(sim: &grouper_sim::Simulator, r: &Request) -> Outcome {
    Ok(sim_response(sim.handle(&sim_request(r))))
}

/// The Google simulator's answer to a request.
pub fn google_answer(sim: &google_sim::GoogleSim, r: &Request) -> Response {
    sim_response(sim.handle(&sim_request(r)))
}

/// A JSON answer with Grouper's success header.
pub fn json(status: u16, body: serde_json::Value) -> Outcome {
    Ok(Response {
        status,
        headers: vec![("x-grouper-success".into(), "T".into())],
        body: body.to_string().into_bytes(),
    })
}

/// A getMembers page holding these `ldap` subject ids.
pub fn members_page(ids: &[&str]) -> Outcome {
    let subjects: Vec<_> = ids
        .iter()
        .map(|i| serde_json::json!({"id": i, "sourceId": "ldap", "success": "T"}))
        .collect();
    let mut result =
        serde_json::json!({"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}});
    if !subjects.is_empty() {
        result["wsSubjects"] = subjects.into();
    }
    json(
        200,
        serde_json::json!({"WsGetMembersResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "results": [result]}}),
    )
}

/// Grouper's answer to an addMember batch of one subject that was added.
pub fn one_added() -> Outcome {
    json(
        201,
        serde_json::json!({"WsAddMemberResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"},
            "results": [{"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}}]}}),
    )
}

/// A hub user of [`World`].
#[derive(Debug, Clone)]
pub struct WorldUser {
    pub name: String,
    pub created: i64,
    /// Seconds since the epoch; `None`: never active.
    pub last_activity: Option<i64>,
    /// `auth_state.canvas_user.login_id`; `None`: the auth_state has no login id.
    pub login: Option<String>,
}

/// A change to the hub's users, made while a pass lists them.
pub type UsersChange = Box<dyn FnMut(&mut Vec<WorldUser>)>;

/// A hub and a Grouper group in one, with state, answering as the real services do: the hub
/// pages by offset with a `Date` header and answers 404 for unknown users; Grouper keeps the
/// group's members and answers every write row by row.
pub struct World {
    pub users: Vec<WorldUser>,
    /// The hub's clock, seconds since the epoch.
    pub now: i64,
    pub page_size: usize,
    /// Runs once, before the hub answers the first list page after the first one.
    pub between_pages: Option<UsersChange>,
    /// The Grouper group's member ids (source `ldap`).
    pub members: std::collections::BTreeSet<String>,
    /// `METHOD URL` of every request of the last pass.
    pub sent: Vec<String>,
}

/// ISO 8601 with microseconds, as JupyterHub writes times.
pub fn iso(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // days since 1970-01-01 to a civil date (H. Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl World {
    /// `n` users `user000`… created at `now - 30 days`, never active, each with login
    /// `<name>-id`; the group holds every login.
    pub fn new(n: usize, now: i64) -> World {
        let users: Vec<WorldUser> = (0..n)
            .map(|i| WorldUser {
                name: format!("user{i:03}"),
                created: now - 30 * 86_400,
                last_activity: None,
                login: Some(format!("user{i:03}-id")),
            })
            .collect();
        let members = users.iter().filter_map(|u| u.login.clone()).collect();
        World {
            users,
            now,
            page_size: 200,
            between_pages: None,
            members,
            sent: Vec::new(),
        }
    }

    fn hub_json(&self, status: u16, body: serde_json::Value) -> Outcome {
        let date = std::time::UNIX_EPOCH + Duration::from_secs(self.now as u64);
        Ok(Response {
            status,
            headers: vec![("date".into(), httpdate::fmt_http_date(date))],
            body: body.to_string().into_bytes(),
        })
    }

    fn item(u: &WorldUser) -> serde_json::Value {
        serde_json::json!({"kind": "user", "name": u.name, "admin": false, "groups": [],
            "created": iso(u.created), "last_activity": u.last_activity.map(iso)})
    }

    pub fn answer(&mut self, r: &Request) -> Outcome {
        self.sent.push(format!("{} {}", r.method.as_str(), r.url));
        if let Some(query) = r.url.strip_prefix("http://hub/hub/api/users?") {
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|p| p.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            let (offset, limit) = (param("offset"), param("limit").min(self.page_size).max(1));
            if offset > 0 {
                if let Some(mut change) = self.between_pages.take() {
                    change(&mut self.users);
                }
            }
            let items: Vec<_> = self
                .users
                .iter()
                .skip(offset)
                .take(limit)
                .map(World::item)
                .collect();
            let total = self.users.len();
            let next = (offset + limit < total)
                .then(|| serde_json::json!({"offset": offset + limit, "limit": limit}));
            return self.hub_json(
                200,
                serde_json::json!({"items": items, "_pagination": {"offset": offset, "limit": limit, "total": total, "next": next}}),
            );
        }
        if let Some(name) = r.url.strip_prefix("http://hub/hub/api/users/") {
            return match self.users.iter().find(|u| u.name == name) {
                None => self.hub_json(404, serde_json::json!({"status": 404, "message": null})),
                Some(u) => {
                    let mut model = World::item(u);
                    model["auth_state"] = serde_json::json!({"canvas_user": {"login_id": u.login}});
                    self.hub_json(200, model)
                }
            };
        }
        if r.url.ends_with("/members") {
            let body: serde_json::Value =
                serde_json::from_slice(r.body.as_deref().unwrap_or_default()).unwrap_or_default();
            let (root, add) = match body.get("WsRestAddMemberRequest") {
                Some(req) => (req, true),
                None => (&body["WsRestDeleteMemberRequest"], false),
            };
            let rows: Vec<_> = root["subjectLookups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    let id = l["subjectId"].as_str().unwrap_or_default().to_string();
                    if add {
                        self.members.insert(id);
                    } else {
                        self.members.remove(&id);
                    }
                    serde_json::json!({"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}})
                })
                .collect();
            let root = if add {
                "WsAddMemberResults"
            } else {
                "WsDeleteMemberResults"
            };
            return json(
                200,
                serde_json::json!({root: {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "results": rows}}),
            );
        }
        if r.url.ends_with("/groups") {
            let ids: Vec<&str> = self.members.iter().map(String::as_str).collect();
            return members_page(&ids);
        }
        panic!("no answer for {} {}", r.method.as_str(), r.url);
    }

    /// One pass against this world: its report and the removals Grouper confirmed.
    pub fn pass(
        &mut self,
        settings: &crate::settings::Settings,
        options: crate::sync::pass::RunOptions,
    ) -> crate::sync::report::Report {
        self.sent.clear();
        let world = std::cell::RefCell::new(self);
        let mut fake = Fake {
            answer: |r: &Request| world.borrow_mut().answer(r),
            log: vec![],
            slept: vec![],
        };
        crate::sync::pass::run(settings, &mut fake, options)
    }
}
