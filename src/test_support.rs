//! Test doubles shared by the core's unit tests: a transport answered by a closure, and
//! Grouper's answers in their wire shapes.

use crate::http::{Outcome, Request, Response, Transport};
use std::time::Duration;

/// A loopback-free stand-in for both services: the closure answers each request.
pub struct Fake<F: FnMut(&Request) -> Outcome> {
    pub answer: F,
    /// `METHOD URL` of every request, in order.
    pub log: Vec<String>,
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
    fn sleep(&mut self, _: Duration) {}
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
