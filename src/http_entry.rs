//! The HTTP entry's rules, pure: which route a request takes, who may call it, and which status a
//! report answers with. The WASI adapter only moves bytes in and out.

use crate::error::{ErrorKind, SyncError};
use crate::settings::{parse_bool, Secret};
use crate::sync::check::CheckReport;
use crate::sync::report::{Outcome, Report};
use serde::Serialize;

/// What a caller asked for, once it may have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// One pass; `dry_run` forces a dry run (a query can never turn a configured dry run off);
    /// `approve` names a withheld plan to let through if the pass computes exactly it.
    Sync {
        dry_run: bool,
        approve: Option<String>,
    },
    /// The read-only check.
    Check,
}

/// The answer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }

    fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({"error": {"kind": kind, "message": message}}),
        )
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The route decision: run an action, or answer at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(Action),
    Answer(Reply),
}

/// Compares two secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A plan name as the report gives it: 16 hex digits.
pub fn is_plan_hash(value: &str) -> bool {
    value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads `?dry_run=…&approve=HASH`; any other parameter or a bad value is a bad query.
fn sync_query(query: &str) -> Result<Action, String> {
    let (mut dry_run, mut approve) = (false, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
        match name {
            "dry_run" => {
                dry_run = parse_bool(value)
                    .ok_or_else(|| format!("dry_run must be true or false, not {value:?}"))?
            }
            "approve" if is_plan_hash(value) => approve = Some(value.to_ascii_lowercase()),
            "approve" => {
                return Err(format!(
                    "approve must be a withheld plan's 16-hex-digit name, not {value:?}"
                ))
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; only dry_run and approve are accepted"
                ))
            }
        }
    }
    Ok(Action::Sync { dry_run, approve })
}

/// Decides what to do with a request. `token` reads the configured `sync_auth_token`; it is only
/// called for the routes that need it, so `/healthz` works without any configuration.
pub fn route(
    method: &str,
    path_with_query: &str,
    authorization: Option<&str>,
    token: impl FnOnce() -> Result<Option<Secret>, SyncError>,
) -> Decision {
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""));
    let allow = match path {
        "/healthz" => "GET",
        "/sync" | "/check" => "POST",
        _ => {
            return Decision::Answer(Reply::error(
                404,
                "not-found",
                "no such route; the routes are POST /sync, POST /check and GET /healthz",
            ))
        }
    };
    if !allow.split(", ").any(|m| m == method) {
        return Decision::Answer(
            Reply::error(
                405,
                "method-not-allowed",
                &format!("{path} accepts {allow}"),
            )
            .header("allow", allow),
        );
    }
    if path == "/healthz" {
        return Decision::Answer(Reply::json(200, &serde_json::json!({"status": "ok"})));
    }
    let expected = match token() {
        Ok(Some(t)) if !t.expose().is_empty() => t,
        Ok(_) => {
            return Decision::Answer(Reply::error(
                503,
                "not-configured",
                &format!("{path} is not configured: set the secret config key sync_auth_token (or GROUPER_SYNC_AUTH_TOKEN)"),
            ))
        }
        Err(e) => return Decision::Answer(Reply::error(503, e.kind.as_str(), &e.message)),
    };
    let authorized = bearer(authorization)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.expose().as_bytes()));
    if !authorized {
        return Decision::Answer(
            Reply::error(
                401,
                "unauthorized",
                "a valid Authorization: Bearer token is required",
            )
            .header("www-authenticate", "Bearer realm=\"grouper-sync\""),
        );
    }
    match path {
        "/check" => Decision::Run(Action::Check),
        _ => match sync_query(query) {
            Ok(action) => Decision::Run(action),
            Err(e) => Decision::Answer(Reply::error(400, "bad-query", &e)),
        },
    }
}

/// The status a pass answers with: 200 converged (or changes remaining: call again), 409 removals
/// withheld, 502 the hub or Grouper failed, 500 any other failure. The body is the report.
pub fn report_reply(report: &Report) -> Reply {
    let status = match report.outcome {
        Outcome::Converged | Outcome::ChangesRemaining => 200,
        Outcome::RemovalsWithheld => 409,
        Outcome::Failed => match report.first_error_kind() {
            Some(kind) if kind.is_upstream() => 502,
            _ => 500,
        },
    };
    Reply::json(status, report)
}

/// The check's answer: 200 when it passed, else 502 for hub/Grouper problems, 500 otherwise.
pub fn check_reply(check: &CheckReport) -> Reply {
    let status = if check.ok() {
        200
    } else {
        match check.errors.first().map(|e| e.kind) {
            Some(kind) if !kind.is_upstream() => 500,
            _ => 502,
        }
    };
    Reply::json(status, check)
}

/// The answer when the settings were rejected before anything ran.
pub fn config_error_reply(error: SyncError) -> Reply {
    debug_assert_eq!(error.kind, ErrorKind::Config);
    report_reply(&Report::not_started(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Result<Option<Secret>, SyncError> {
        Ok(Some(Secret::new("s3cret-token")))
    }

    fn status(d: &Decision) -> u16 {
        match d {
            Decision::Answer(r) => r.status,
            Decision::Run(a) => panic!("expected an answer, got {a:?}"),
        }
    }

    #[test]
    fn sync_takes_an_approved_plan_by_its_name() {
        let ok = Some("Bearer s3cret-token");
        assert_eq!(
            route("POST", "/sync?approve=0123456789ABCDEF", ok, token),
            Decision::Run(Action::Sync {
                dry_run: false,
                approve: Some("0123456789abcdef".into())
            })
        );
        for bad in [
            "/sync?approve=",
            "/sync?approve=xyz",
            "/sync?approve=0123456789abcdef0",
        ] {
            let Decision::Answer(reply) = route("POST", bad, ok, token) else {
                panic!("{bad} must be refused")
            };
            assert_eq!(reply.status, 400, "{bad}");
            assert!(String::from_utf8_lossy(&reply.body).contains("approve"));
        }
    }

    #[test]
    fn routes_need_the_bearer_token() {
        let ok = Some("Bearer s3cret-token");
        assert_eq!(
            route("POST", "/sync", ok, token),
            Decision::Run(Action::Sync {
                dry_run: false,
                approve: None
            })
        );
        assert_eq!(
            route(
                "POST",
                "/sync?dry_run=true",
                Some("bearer s3cret-token"),
                token
            ),
            Decision::Run(Action::Sync {
                dry_run: true,
                approve: None
            })
        );
        assert_eq!(
            route("POST", "/check", ok, token),
            Decision::Run(Action::Check)
        );
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("s3cret-token"),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret-token2"),
        ] {
            let d = route("POST", "/sync", auth, token);
            assert_eq!(status(&d), 401, "{auth:?}");
            let Decision::Answer(r) = d else {
                unreachable!()
            };
            assert!(r
                .headers
                .iter()
                .any(|(n, v)| n == "www-authenticate" && v.starts_with("Bearer")));
            assert!(!String::from_utf8_lossy(&r.body).contains("s3cret"));
        }
    }

    #[test]
    fn fails_closed_without_a_token() {
        for configured in [None, Some(Secret::new(""))] {
            let d = route("POST", "/sync", Some("Bearer x"), || Ok(configured.clone()));
            assert_eq!(status(&d), 503);
        }
        let d = route("POST", "/check", None, || {
            Err(SyncError::config("store down"))
        });
        assert_eq!(status(&d), 503);
    }

    #[test]
    fn health_needs_no_config_and_bad_requests_are_named() {
        let never =
            || -> Result<Option<Secret>, SyncError> { panic!("no config read for /healthz") };
        assert_eq!(status(&route("GET", "/healthz", None, never)), 200);
        assert_eq!(status(&route("GET", "/nope", None, never)), 404);
        let d = route("GET", "/sync", None, never);
        assert_eq!(status(&d), 405);
        let Decision::Answer(r) = d else {
            unreachable!()
        };
        assert!(r.headers.contains(&("allow".into(), "POST".into())));
        let ok = Some("Bearer s3cret-token");
        assert_eq!(
            status(&route("POST", "/sync?dry_run=maybe", ok, token)),
            400
        );
        assert_eq!(status(&route("POST", "/sync?force=1", ok, token)), 400);
    }

    #[test]
    fn report_statuses() {
        let mut r = Report::new(false);
        r.outcome = Outcome::Converged;
        assert_eq!(report_reply(&r).status, 200);
        r.outcome = Outcome::ChangesRemaining;
        assert_eq!(report_reply(&r).status, 200);
        r.outcome = Outcome::RemovalsWithheld;
        assert_eq!(report_reply(&r).status, 409);
        r.outcome = Outcome::Failed;
        r.errors = vec![SyncError::new(ErrorKind::GrouperUnavailable, "down")];
        let reply = report_reply(&r);
        assert_eq!(reply.status, 502);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["errors"][0]["kind"], "grouper-unavailable");
        r.errors = vec![SyncError::new(ErrorKind::Internal, "bug")];
        assert_eq!(report_reply(&r).status, 500);
        assert_eq!(
            config_error_reply(SyncError::config("missing x")).status,
            500
        );
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
