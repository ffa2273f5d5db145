//! Routing (the operations themselves are in members.rs, group_save.rs and attributes.rs),
//! following Grouper's servlet: authentication first, then the URL
//! (`/<ctx>/servicesRest[/<format>]/<version>/groups/...` or `.../attributeAssignments`), then the
//! body's root key (which, not the HTTP verb, picks the operation when a body is present).

use crate::{group_json, hex_id, meta, Group, SimRequest, SimResponse, State, Subject};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

mod attributes;
mod group_save;
mod members;

use attributes::{assign_attributes_batch, get_attribute_assignments};

use group_save::group_save;
use members::{
    add_member, delete_member, get_members, get_members_lite, has_member, lite_subject_op,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    GetMembers,
    GetMembersLite,
    AddMember,
    AddMemberLite,
    DeleteMember,
    DeleteMemberLite,
    HasMember,
    HasMemberLite,
    /// groupSave (batch), which creates groups.
    GroupSave,
    /// getAttributeAssignments (batch): the provisioning marks a group carries.
    GetAttributeAssignments,
    /// assignAttributesBatch: marking a group for a provisioner.
    AssignAttributesBatch,
}

impl Operation {
    /// Does it change a membership?
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::AddMember
                | Operation::AddMemberLite
                | Operation::DeleteMember
                | Operation::DeleteMemberLite
        )
    }
}

const VERSION_RE_HINT: &str = "^[vV]?(\\d+)[\\._](\\d+)[\\._](\\d+)(-?rc(\\d+)|-SNAPSHOT)?$";

/// Parses a Grouper version segment (`v2_2_100`, `2.5.0`, `5.22.3`, `v2_5_000-rc1`).
pub(crate) fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let s = s.strip_suffix("-SNAPSHOT").unwrap_or(s);
    let s = match s.find("rc") {
        Some(i) if s[i + 2..].chars().all(|c| c.is_ascii_digit()) && i + 2 < s.len() => {
            s[..i].trim_end_matches('-')
        }
        _ => s,
    };
    let parts: Vec<&str> = s.split(['.', '_']).collect();
    match parts.as_slice() {
        [a, b, c]
            if [a, b, c]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|ch| ch.is_ascii_digit())) =>
        {
            Some((a.parse().ok()?, b.parse().ok()?, c.parse().ok()?))
        }
        _ => None,
    }
}

/// Decodes `%XX` escapes and `+` (form encoding), as the servlet container does.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` pairs, decoded.
pub fn form_params(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

struct Ctx<'a> {
    st: &'a mut State,
    client_version: (u32, u32, u32),
    legacy: bool,
}

fn response(
    status: u16,
    root: &str,
    mut inner: Map<String, Value>,
    st: &State,
    header_code: &str,
    success: bool,
) -> SimResponse {
    let legacy = is_legacy(&st.config.server_version);
    let mut response_meta = json!({"millis": "3", "serverVersion": st.config.server_version});
    if let (Some(server), Some(client)) = (
        parse_version(&st.config.server_version),
        inner
            .remove("__client")
            .and_then(|v| v.as_str().and_then(parse_version)),
    ) {
        if (client.0, client.1) > (server.0, server.1) {
            response_meta["resultWarnings"] = format!(
                ", Client version: {}.{}.{} is greater than (major/minor) server version: {}",
                client.0, client.1, client.2, st.config.server_version
            )
            .into();
        }
    }
    inner.insert("responseMetadata".into(), response_meta);
    let body = json!({ root: Value::Object(inner) });
    let content_type = if legacy {
        "text/x-json;charset=UTF-8"
    } else {
        "application/json;charset=UTF-8"
    };
    SimResponse {
        status,
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            ("X-Grouper-resultCode".into(), header_code.into()),
            (
                "X-Grouper-success".into(),
                if success { "T" } else { "F" }.into(),
            ),
            ("X-Grouper-resultCode2".into(), "NONE".into()),
        ],
        body: serde_json::to_vec_pretty(&body).unwrap_or_default(),
        delay: None,
        truncate_at: None,
        stall: None,
    }
}

fn is_legacy(server_version: &str) -> bool {
    parse_version(server_version).is_some_and(|(a, b, _)| (a, b) < (2, 5))
}

fn problem(st: &State, status: u16, code: &str, message: String) -> SimResponse {
    let mut inner = Map::new();
    inner.insert("resultMetadata".into(), meta(code, false, Some(message)));
    response(status, "WsRestResultProblem", inner, st, code, false)
}

fn unauthorized() -> SimResponse {
    SimResponse {
        status: 401,
        headers: vec![
            ("Content-Type".into(), "text/html;charset=utf-8".into()),
            ("WWW-Authenticate".into(), "Basic realm=\"Grouper\"".into()),
        ],
        body: b"<html><head><title>401 Unauthorized</title></head><body><h1>HTTP Status 401 - Unauthorized</h1></body></html>".to_vec(),
        delay: None,
        truncate_at: None,
        stall: None,
    }
}

fn decode_basic(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?
        .strip_prefix("Basic ")
        .or_else(|| header?.strip_prefix("basic "))?;
    let mut bytes = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in encoded.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        } as u32;
        buf = buf << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buf >> bits) as u8);
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    // Grouper's built-in authenticator splits on the last colon.
    let i = text.rfind(':')?;
    Some((text[..i].to_string(), text[i + 1..].to_string()))
}

/// Returns the operation (when one was recognised) and the response.
pub(crate) fn handle(st: &mut State, req: &SimRequest) -> (Option<Operation>, SimResponse) {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if segments.len() < 2 || segments[1] != "servicesRest" {
        let mut r = unauthorized();
        r.status = 404;
        r.headers.truncate(1);
        r.body = b"<html><body>404 Not Found</body></html>".to_vec();
        return (None, r);
    }
    // Container authentication runs before Grouper sees the request.
    let creds = decode_basic(req.header("authorization"));
    let allowed = creds
        .as_ref()
        .is_some_and(|(u, p)| *u == st.config.user && *p == st.config.password);
    let disallowed = creds.is_some() && st.config.disallowed_user.as_ref() == creds.as_ref();
    if !allowed && !disallowed {
        return (None, unauthorized());
    }
    let rest = &segments[2..];
    let (version_seg, rest) = match rest.first().map(|s| parse_version(s)) {
        Some(Some(_)) => (rest[0].clone(), &rest[1..]),
        _ => match rest {
            [format, version, rest @ ..]
                if matches!(format.as_str(), "json" | "xml" | "xhtml")
                    && parse_version(version).is_some() =>
            {
                if format != "json" {
                    let msg = format!("this simulator answers only json, not {format}");
                    return (None, problem(st, 400, "INVALID_QUERY", msg));
                }
                (version.clone(), rest)
            }
            _ => {
                let msg = format!(
                    "Cant find version in url (expected {VERSION_RE_HINT}): uri: {path}, method: {}, decoded url strings: {:?}",
                    req.method, segments
                );
                return (None, problem(st, 400, "INVALID_QUERY", msg));
            }
        },
    };
    let client_version = parse_version(&version_seg).unwrap_or((0, 0, 0));
    let legacy = is_legacy(&st.config.server_version);

    // The body: JSON (by Content-Type), form parameters, or nothing.
    let content_type = req.header("content-type").map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let trimmed = String::from_utf8_lossy(&req.body).trim().to_string();
    let mut params: Vec<(String, String)> = form_params(query);
    let mut body: Option<Value> = None;
    if !trimmed.is_empty() {
        match content_type.as_deref() {
            None if trimmed.starts_with('{') || trimmed.starts_with('<') => {
                let msg = "No request HTTP Content-type: header, but there was content detected"
                    .to_string();
                return (None, problem(st, 500, "EXCEPTION", msg));
            }
            None | Some("application/x-www-form-urlencoded") => {
                params.extend(form_params(&trimmed))
            }
            Some("text/x-json") => {}
            Some("application/json") if !legacy => {}
            Some(other) => {
                let msg = format!("Cant find WsRestRequestContentType for content type: {other}");
                return (None, problem(st, 500, "EXCEPTION", msg));
            }
        }
        if content_type.as_deref().is_some_and(|c| c.contains("json")) {
            match serde_json::from_str::<Value>(&trimmed) {
                Ok(v) => body = Some(v),
                Err(e) => {
                    return (
                        None,
                        problem(st, 500, "EXCEPTION", format!("Problem parsing JSON: {e}")),
                    )
                }
            }
        }
    }
    let mut cx = Ctx {
        st,
        client_version,
        legacy,
    };
    let user_disallowed = disallowed;
    route(
        &mut cx,
        req,
        rest,
        body,
        &params,
        user_disallowed,
        &version_seg,
    )
}

fn group_from_path(rest: &[String]) -> Option<&String> {
    match rest {
        [_, g, ..] => Some(g),
        _ => None,
    }
}

fn route(
    cx: &mut Ctx,
    req: &SimRequest,
    rest: &[String],
    body: Option<Value>,
    params: &[(String, String)],
    disallowed: bool,
    version_seg: &str,
) -> (Option<Operation>, SimResponse) {
    if rest.first().map(String::as_str) == Some("attributeAssignments") {
        return route_attribute_assignments(cx, req, rest, body, disallowed);
    }
    if rest.first().map(String::as_str) != Some("groups") {
        let msg = format!(
            "Invalid resource: {:?}, expecting groups or attributeAssignments",
            rest.first()
        );
        return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
    }
    let group_in_path = group_from_path(rest).cloned();
    let members_seg = rest.get(2).map(String::as_str);
    if group_in_path.is_some() && members_seg != Some("members") {
        return (
            None,
            problem(
                cx.st,
                400,
                "INVALID_QUERY",
                format!("Invalid operation: {members_seg:?}"),
            ),
        );
    }
    let subject_seg: Option<(Option<String>, String)> = match &rest[rest.len().min(3)..] {
        [] => None,
        [id] => Some((None, id.clone())),
        [s, src, i, id] if s == "sourceId" && i == "subjectId" => {
            Some((Some(src.clone()), id.clone()))
        }
        other => {
            let msg = format!("Invalid subject path: {other:?}");
            return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
        }
    };
    let lite_type = params
        .iter()
        .find(|(k, _)| k == "wsLiteObjectType")
        .map(|(_, v)| v.as_str());

    if let Some(body) = body {
        let Some((root, inner)) = body
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| (k.clone(), v.clone()))
        else {
            return (
                None,
                problem(
                    cx.st,
                    500,
                    "EXCEPTION",
                    "Cant parse the request body".into(),
                ),
            );
        };
        if inner
            .get("clientVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| parse_version(v) != parse_version(version_seg))
        {
            let msg = "The field 'clientVersion' is set twice to two different values".to_string();
            return (None, problem(cx.st, 500, "EXCEPTION", msg));
        }
        let op = match root.as_str() {
            "WsRestGetMembersRequest" if group_in_path.is_none() => Operation::GetMembers,
            "WsRestGetMembersRequest" => {
                // Grouper falls through to the hasMember-lite cast and fails.
                let msg = "java.lang.ClassCastException: WsRestGetMembersRequest cannot be cast to WsRestHasMemberLiteRequest".into();
                return (None, problem(cx.st, 500, "EXCEPTION", msg));
            }
            "WsRestAddMemberRequest" if subject_seg.is_none() => Operation::AddMember,
            "WsRestDeleteMemberRequest" if subject_seg.is_none() => Operation::DeleteMember,
            "WsRestHasMemberRequest" if subject_seg.is_none() => Operation::HasMember,
            "WsRestGroupSaveRequest" if group_in_path.is_none() => Operation::GroupSave,
            "WsRestGroupSaveRequest" => {
                let msg = "Dont pass group name when saving batch groups".into();
                return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
            }
            other => {
                let msg = format!(
                    "Cant find a handler for {other} at this url, method: {}",
                    req.method
                );
                return (None, problem(cx.st, 500, "EXCEPTION", msg));
            }
        };
        let group = match pick_group(cx, group_in_path.as_deref(), &inner, op) {
            Ok(g) => g,
            Err(resp) => return (Some(op), resp),
        };
        if disallowed {
            return (Some(op), exception(cx, op, "User is not authorized"));
        }
        let resp = match op {
            Operation::GetMembers => get_members(cx, &inner),
            Operation::GroupSave => group_save(cx, &inner),
            Operation::AddMember => add_member(cx, group.as_deref().unwrap_or(""), &inner),
            Operation::DeleteMember => delete_member(cx, group.as_deref().unwrap_or(""), &inner),
            _ => has_member(cx, group.as_deref().unwrap_or(""), &inner),
        };
        return (Some(op), resp);
    }

    let Some(group) = group_in_path else {
        let msg = format!("Invalid request: {} /groups without a body", req.method);
        return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
    };
    let op = match (req.method.as_str(), &subject_seg) {
        ("GET" | "POST", None) => Operation::GetMembersLite,
        ("GET" | "POST", Some(_)) => Operation::HasMemberLite,
        ("PUT", Some(_)) => Operation::AddMemberLite,
        ("DELETE", Some(_)) => Operation::DeleteMemberLite,
        (m, _) => {
            let msg = format!("Invalid method {m} for this url");
            return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
        }
    };
    if disallowed {
        return (Some(op), exception(cx, op, "User is not authorized"));
    }
    if lite_type.is_some_and(|t| t != "WsRestGetMembersLiteRequest")
        || (lite_type.is_some() && op != Operation::GetMembersLite)
    {
        let msg = format!("Invalid wsLiteObjectType {lite_type:?} for this url");
        return (Some(op), problem(cx.st, 400, "INVALID_QUERY", msg));
    }
    let params: &[(String, String)] = if lite_type.is_some() { params } else { &[] };
    let resp = match (op, subject_seg) {
        (Operation::GetMembersLite, _) => get_members_lite(cx, &group, params),
        (op, Some((src, id))) => lite_subject_op(cx, op, &group, src, &id),
        _ => unreachable!("subject ops always have a subject segment"),
    };
    (Some(op), resp)
}

/// `/attributeAssignments`: a body whose root key picks the operation (the lite forms and
/// attribute definitions are not simulated).
fn route_attribute_assignments(
    cx: &mut Ctx,
    req: &SimRequest,
    rest: &[String],
    body: Option<Value>,
    disallowed: bool,
) -> (Option<Operation>, SimResponse) {
    if rest.len() != 1 {
        let msg = format!("Invalid attributeAssignments url: {rest:?}");
        return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
    }
    let Some((root, inner)) = body
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|o| o.iter().next())
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        let msg = format!(
            "Invalid request: {} /attributeAssignments without a body",
            req.method
        );
        return (None, problem(cx.st, 400, "INVALID_QUERY", msg));
    };
    let op = match root.as_str() {
        "WsRestGetAttributeAssignmentsRequest" => Operation::GetAttributeAssignments,
        "WsRestAssignAttributesBatchRequest" => Operation::AssignAttributesBatch,
        other => {
            let msg = format!(
                "Cant find a handler for {other} at this url, method: {}",
                req.method
            );
            return (None, problem(cx.st, 500, "EXCEPTION", msg));
        }
    };
    if disallowed {
        return (Some(op), exception(cx, op, "User is not authorized"));
    }
    let resp = match op {
        Operation::GetAttributeAssignments => get_attribute_assignments(cx, &inner),
        _ => assign_attributes_batch(cx, &inner),
    };
    (Some(op), resp)
}

fn root_for(op: Operation) -> &'static str {
    match op {
        Operation::GetMembers => "WsGetMembersResults",
        Operation::GetMembersLite => "WsGetMembersLiteResult",
        Operation::AddMember => "WsAddMemberResults",
        Operation::AddMemberLite => "WsAddMemberLiteResult",
        Operation::DeleteMember => "WsDeleteMemberResults",
        Operation::DeleteMemberLite => "WsDeleteMemberLiteResult",
        Operation::HasMember => "WsHasMemberResults",
        Operation::HasMemberLite => "WsHasMemberLiteResult",
        Operation::GroupSave => "WsGroupSaveResults",
        Operation::GetAttributeAssignments => "WsGetAttributeAssignmentsResults",
        Operation::AssignAttributesBatch => "WsAssignAttributesBatchResults",
    }
}

fn exception(cx: &mut Ctx, op: Operation, message: &str) -> SimResponse {
    let mut inner = Map::new();
    inner.insert(
        "resultMetadata".into(),
        meta(
            "EXCEPTION",
            false,
            Some(format!("java.lang.RuntimeException: {message}")),
        ),
    );
    response(500, root_for(op), inner, cx.st, "EXCEPTION", false)
}

fn t_or_f(v: Option<&Value>) -> Option<bool> {
    v.and_then(Value::as_str)
        .map(|s| matches!(s.to_ascii_lowercase().as_str(), "t" | "true"))
}

fn invalid_query(cx: &mut Ctx, op: Operation, message: &str) -> SimResponse {
    let mut inner = Map::new();
    inner.insert(
        "resultMetadata".into(),
        meta("INVALID_QUERY", false, Some(message.to_string())),
    );
    response(400, root_for(op), inner, cx.st, "INVALID_QUERY", false)
}

/// The group from the URL and/or the body's `wsGroupLookup`; they must agree (`pickOne`).
fn pick_group(
    cx: &mut Ctx,
    in_path: Option<&str>,
    inner: &Value,
    op: Operation,
) -> Result<Option<String>, SimResponse> {
    if matches!(op, Operation::GetMembers | Operation::GroupSave) {
        return Ok(None);
    }
    let in_body = inner
        .get("wsGroupLookup")
        .and_then(|l| l.get("groupName"))
        .and_then(Value::as_str);
    match (in_path, in_body) {
        (Some(a), Some(b)) if a != b => {
            let msg = "The field 'groupName' is set twice to two different values".to_string();
            Err(problem(cx.st, 500, "EXCEPTION", msg))
        }
        (Some(a), _) => Ok(Some(a.to_string())),
        (None, Some(b)) => Ok(Some(b.to_string())),
        (None, None) => Err(problem(
            cx.st,
            400,
            "INVALID_QUERY",
            "Need a group name in the url or wsGroupLookup".into(),
        )),
    }
}

#[cfg(test)]
mod tests;
