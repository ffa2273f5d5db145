//! A read-only check of a configuration: the hub token's identity and scopes, and that the
//! Grouper credentials can read the target group. Writes nothing.

use crate::error::{ErrorKind, Service, SyncError};
use crate::grouper;
use crate::grouper_client;
use crate::http::{Method, Request, Transport};
use crate::hub;
use crate::session::Session;
use crate::settings::Settings;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Who the hub says the token belongs to.
    pub hub_identity: Option<String>,
    pub hub_scopes: Vec<String>,
    /// Scopes the sync needs that the token does not have.
    pub missing_scopes: Vec<String>,
    /// The groups that could be read, with the number of members on the first page.
    pub groups_readable: Vec<(String, usize)>,
    pub errors: Vec<SyncError>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.missing_scopes.is_empty()
    }
}

/// The scopes a pass needs with these settings.
pub fn required_scopes(settings: &Settings) -> Vec<&'static str> {
    let mut scopes = vec!["list:users"];
    if settings.needs_auth_state() {
        scopes.extend(["read:users", "admin:auth_state"]);
    }
    if settings.needs_groups() {
        scopes.push("read:users:groups");
    }
    scopes
}

/// Does a token with `have` hold `scope`? `read:users` includes its `read:users:…` subscopes.
fn holds(have: &[String], scope: &str) -> bool {
    have.iter().any(|h| {
        h == scope
            || scope
                .strip_prefix(h.as_str())
                .is_some_and(|rest| rest.starts_with(':') && h == "read:users")
    })
}

pub fn run(settings: &Settings, transport: &mut dyn Transport) -> CheckReport {
    let mut s = Session::new(settings, transport);
    let mut report = CheckReport {
        hub_identity: None,
        hub_scopes: Vec::new(),
        missing_scopes: Vec::new(),
        groups_readable: Vec::new(),
        errors: Vec::new(),
    };
    const WHAT: &str = "JupyterHub /user";
    let whoami = Request::new(Method::Get, format!("{}/user", settings.hub_api_url))
        .header(
            "Authorization",
            format!("token {}", settings.hub_token.expose()),
        )
        .header("Accept", "application/json");
    match s.send(Service::Hub, WHAT, &whoami) {
        Err(e) => report.errors.push(e),
        Ok(resp) if resp.status != 200 => report.errors.push(hub::status_error(WHAT, &resp)),
        Ok(resp) => match serde_json::from_slice::<Value>(&resp.body) {
            Err(e) => report.errors.push(SyncError::new(
                ErrorKind::HubBadAnswer,
                format!("{WHAT}: not JSON ({e})"),
            )),
            Ok(v) => {
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?");
                let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
                report.hub_identity = Some(format!("{kind} {name}"));
                report.hub_scopes = v
                    .get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                report.missing_scopes = required_scopes(settings)
                    .into_iter()
                    .filter(|s| !holds(&report.hub_scopes, s))
                    .map(String::from)
                    .collect();
            }
        },
    }
    let conn = grouper_client::connection(settings);
    // a pattern's groups are known only from a listing: each pass resolves them
    for target in settings
        .targets
        .iter()
        .filter(|t| t.hub_group_pattern.is_none())
    {
        let req = grouper::get_members_request(
            &conn,
            &target.group_path,
            &target.lookup,
            target.source_id.as_deref(),
            10,
            1,
        );
        let what = format!("reading members of {}", target.group_path);
        let parsed = s
            .send(Service::Grouper, &what, &req)
            .and_then(|resp| grouper::parse_get_members(&target.group_path, &target.lookup, &resp));
        match parsed {
            Ok(page) => report
                .groups_readable
                .push((target.group_path.clone(), page.members.len())),
            Err(e) => report.errors.push(e),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_users_holds_its_group_subscope() {
        let have = vec!["list:users".to_string(), "read:users".to_string()];
        assert!(holds(&have, "read:users:groups") && holds(&have, "list:users"));
        assert!(!holds(&have, "admin:auth_state"));
        assert!(!holds(
            &["read:users:name".to_string()],
            "read:users:groups"
        ));
    }
}
