//! Routing and the membership operations, following Grouper's servlet: authentication first,
//! then the URL (`/<ctx>/servicesRest[/<format>]/<version>/groups/...`), then the body's root
//! key (which, not the HTTP verb, picks the operation when a body is present).

use crate::{group_json, hex_id, meta, Group, SimRequest, SimResponse, State, Subject};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

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

fn percent_decode(s: &str) -> String {
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

fn form_params(s: &str) -> Vec<(String, String)> {
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
    if rest.first().map(String::as_str) != Some("groups") {
        let msg = format!("Invalid resource: {:?}, expecting groups", rest.first());
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

/// One entry of `wsGroupToSaves`: its result row, changing the state as Grouper's `GroupSave`
/// would (grouper-ws.md §13.2–13.6).
fn save_one(cx: &mut Ctx, entry: &Value) -> Value {
    let row = |code: &str, success: bool, message: String, group: Value| json!({"resultMetadata": meta(code, success, Some(message)), "wsGroup": group});
    let name = entry
        .get("wsGroup")
        .and_then(|g| g.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let lookup_only = json!({ "name": name });
    let mode = entry
        .get("saveMode")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .unwrap_or("INSERT_OR_UPDATE")
        .to_ascii_uppercase();
    if !["INSERT", "UPDATE", "INSERT_OR_UPDATE"].contains(&mode.as_str()) {
        let msg = format!("Invalid saveMode: {mode}");
        return row("INVALID_QUERY", false, msg, lookup_only);
    }
    let Some((stem, extension)) = name
        .rsplit_once(':')
        .filter(|(s, e)| !s.is_empty() && !e.is_empty())
    else {
        let msg = format!("java.lang.RuntimeException: Group name must contain a colon: '{name}'");
        return row("EXCEPTION", false, msg, lookup_only);
    };
    let lookup = entry
        .get("wsGroupLookup")
        .and_then(|l| l.get("groupName"))
        .and_then(Value::as_str);
    if mode == "INSERT" && lookup.is_some_and(|l| l != name) {
        let msg = "java.lang.RuntimeException: Must not pass in a lookup name for an insert".into();
        return row("EXCEPTION", false, msg, lookup_only);
    }
    let display = entry["wsGroup"]
        .get("displayExtension")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or(extension)
        .to_string();
    let description = entry["wsGroup"]
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(existing) = cx.st.groups.get_mut(name) {
        if mode == "INSERT" {
            let msg = format!("java.lang.RuntimeException: edu.internet2.middleware.grouper.exception.GroupAddAlreadyExistsException: group already exists with name: '{name}'");
            return row("GROUP_ALREADY_EXISTS", false, msg, lookup_only);
        }
        existing.display_name = format!("{stem}:{display}");
        existing.description = description;
        let g = group_json(existing, cx.legacy);
        return row("SUCCESS_UPDATED", true, String::new(), g);
    }
    if mode == "UPDATE" {
        let msg = format!("java.lang.RuntimeException: edu.internet2.middleware.grouper.exception.GroupNotFoundException: Cant find group: '{name}'");
        return row("EXCEPTION", false, msg, lookup_only);
    }
    let create_stems = t_or_f(entry.get("createParentStemsIfNotExist")).unwrap_or(false);
    if !cx.st.stem_exists(stem) {
        if !create_stems {
            let msg = format!("java.lang.RuntimeException: edu.internet2.middleware.grouper.exception.StemNotFoundException: Cant find stem: '{stem}' (from update on stem name: '{stem}')");
            return row("EXCEPTION", false, msg, lookup_only);
        }
        cx.st.stems.insert(stem.to_string());
    }
    if cx.st.create_denied.iter().any(|f| f == stem) {
        let msg = format!("java.lang.RuntimeException: edu.internet2.middleware.grouper.exception.InsufficientPrivilegeException: subject cannot CREATE in stem '{stem}'");
        return row("EXCEPTION", false, msg, lookup_only);
    }
    let id_index = 10000 + cx.st.groups.len() as u64;
    let group = Group {
        name: name.into(),
        display_name: format!("{stem}:{display}"),
        description,
        uuid: hex_id(name),
        id_index,
        members: Default::default(),
        update_denied: false,
    };
    let g = group_json(&group, cx.legacy);
    cx.st.groups.insert(name.into(), group);
    row("SUCCESS_INSERTED", true, String::new(), g)
}

fn group_save(cx: &mut Ctx, inner: &Value) -> SimResponse {
    let op = Operation::GroupSave;
    let entries = inner
        .get("wsGroupToSaves")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return invalid_query(cx, op, "wsGroupToSaves is required");
    }
    let rows: Vec<Value> = entries.iter().map(|e| save_one(cx, e)).collect();
    let failures = rows
        .iter()
        .filter(|r| r["resultMetadata"]["success"] != "T")
        .count();
    let successes = rows.len() - failures;
    let (status, code, text) = if failures == 0 {
        (
            201,
            "SUCCESS",
            format!(
                "Success for: clientVersion: {}.{}.{}, wsGroupToSaves: Array size: {}",
                cx.client_version.0,
                cx.client_version.1,
                cx.client_version.2,
                rows.len()
            ),
        )
    } else {
        (
            500,
            "PROBLEM_SAVING_GROUPS",
            format!("There were {successes} successes and {failures} failures of saving groups."),
        )
    };
    let mut out = Map::new();
    out.insert(
        "resultMetadata".into(),
        meta(code, failures == 0, Some(text)),
    );
    out.insert("results".into(), Value::Array(rows));
    response(status, root_for(op), out, cx.st, code, failures == 0)
}

fn t_or_f(v: Option<&Value>) -> Option<bool> {
    v.and_then(Value::as_str)
        .map(|s| matches!(s.to_ascii_lowercase().as_str(), "t" | "true"))
}

enum Resolved {
    Found(Subject),
    NotFound,
    Duplicate,
}

fn lookup_desc(l: &Value) -> String {
    let mut parts = Vec::new();
    for k in ["subjectId", "subjectSourceId", "subjectIdentifier"] {
        if let Some(v) = l.get(k).and_then(Value::as_str) {
            parts.push(format!("{k}={v}"));
        }
    }
    format!("WsSubjectLookup[{}]", parts.join(","))
}

fn resolve(st: &State, l: &Value) -> Result<Resolved, String> {
    let id = l
        .get("subjectId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let ident = l
        .get("subjectIdentifier")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let source = l
        .get("subjectSourceId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let in_source = |s: &&Subject| source.is_none_or(|src| s.source_id == src);
    let found: Vec<&Subject> = match (id, ident) {
        (Some(id), _) => st.subjects_with_id(id).filter(in_source).collect(),
        (None, Some(ident)) => st
            .subjects
            .iter()
            .filter(in_source)
            .filter(|s| s.identifiers.iter().any(|i| i == ident))
            .collect(),
        (None, None) => return Err("Need a subjectId or subjectIdentifier".into()),
    };
    Ok(match found.as_slice() {
        [] => Resolved::NotFound,
        [one] => Resolved::Found((*one).clone()),
        _ => Resolved::Duplicate,
    })
}

fn subject_row_json(s: &Subject, with_name: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), s.id.clone().into());
    if with_name {
        m.insert("name".into(), s.name.clone().into());
    }
    m.insert("resultCode".into(), "SUCCESS".into());
    m.insert("sourceId".into(), s.source_id.clone().into());
    m.insert("success".into(), "T".into());
    Value::Object(m)
}

fn lookups(inner: &Value) -> Vec<Value> {
    inner
        .get("subjectLookups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn group_not_found(cx: &mut Ctx, op: Operation, group: &str) -> SimResponse {
    let mut inner = Map::new();
    let msg =
        format!("Invalid group for 'wsGroupLookup', WsGroupLookup[pitGroups=[],groupName={group}]");
    inner.insert(
        "resultMetadata".into(),
        meta("GROUP_NOT_FOUND", false, Some(msg)),
    );
    response(404, root_for(op), inner, cx.st, "GROUP_NOT_FOUND", false)
}

fn write_envelope(
    cx: &mut Ctx,
    op: Operation,
    group: &Group,
    rows: Vec<Value>,
    message: String,
) -> SimResponse {
    let failures = rows
        .iter()
        .filter(|r| r["resultMetadata"]["success"] != "T")
        .count();
    let successes = rows.len() - failures;
    let (ok_status, bad_code, group_key, verb) = match op {
        Operation::AddMember => (
            201,
            "PROBLEM_WITH_ASSIGNMENT",
            "wsGroupAssigned",
            "added to",
        ),
        Operation::DeleteMember => (200, "PROBLEM_DELETING_MEMBERS", "wsGroup", "deleted from"),
        _ => (200, "PROBLEM_CHECKING_MEMBERS", "wsGroup", "checked in"),
    };
    let mut inner = Map::new();
    let (status, code) = if failures == 0 {
        (ok_status, "SUCCESS")
    } else {
        (500, bad_code)
    };
    let text = if failures == 0 {
        message
    } else {
        format!(
            "There were {successes} successes and {failures} failures of users {verb} the group."
        )
    };
    inner.insert(
        "resultMetadata".into(),
        meta(code, failures == 0, Some(text)),
    );
    if !rows.is_empty() {
        inner.insert("results".into(), Value::Array(rows));
    }
    inner.insert(group_key.into(), group_json(group, cx.legacy));
    response(status, root_for(op), inner, cx.st, code, failures == 0)
}

fn success_message(cx: &Ctx, group: &str, subjects: &[Value]) -> String {
    let listed: Vec<String> = subjects
        .iter()
        .enumerate()
        .map(|(i, l)| format!("[{i}]: {}", lookup_desc(l)))
        .collect();
    format!(
        "Success for: clientVersion: {}.{}.{}, wsGroupLookup: WsGroupLookup[pitGroups=[],groupName={group}], subjectLookups: Array size: {}: {}\n",
        cx.client_version.0,
        cx.client_version.1,
        cx.client_version.2,
        subjects.len(),
        listed.join("\n")
    )
}

fn add_member(cx: &mut Ctx, group: &str, inner: &Value) -> SimResponse {
    let op = Operation::AddMember;
    let Some(g) = cx.st.groups.get(group).cloned() else {
        return group_not_found(cx, op, group);
    };
    let subjects = lookups(inner);
    if subjects.is_empty() {
        if cx.legacy {
            return invalid_query(cx, op, "subjectLookups length must be at least 1");
        }
        // Newer servers accept an empty list; with replaceAllExisting that empties the group.
        if t_or_f(inner.get("replaceAllExisting")) == Some(true) {
            if let Some(g) = cx.st.groups.get_mut(group) {
                g.members.clear();
            }
        }
        return write_envelope(cx, op, &g, Vec::new(), "No subjects were passed in".into());
    }
    let already_code = if cx.client_version >= (1, 4, 0) {
        "SUCCESS_ALREADY_EXISTED"
    } else {
        "SUCCESS"
    };
    let mut rows = Vec::new();
    let mut kept: Vec<(String, String)> = Vec::new();
    for l in &subjects {
        let row = match resolve(cx.st, l) {
            Err(msg) => json!({"resultMetadata": meta("INVALID_QUERY", false, Some(msg))}),
            Ok(Resolved::NotFound) => {
                let id = l
                    .get("subjectId")
                    .or_else(|| l.get("subjectIdentifier"))
                    .cloned()
                    .unwrap_or_default();
                let msg = format!(
                    "edu.internet2.middleware.grouper.ws.exceptions.WsInvalidQueryException: Problem with Subject, SUBJECT_NOT_FOUND, {}\n\tat edu.internet2.middleware.grouper.ws.coresoap.WsSubjectLookup.retrieveSubject(WsSubjectLookup.java:248)",
                    lookup_desc(l)
                );
                json!({"resultMetadata": meta("EXCEPTION", false, Some(msg)), "wsSubject": {"id": id}})
            }
            Ok(Resolved::Duplicate) => {
                json!({"resultMetadata": meta("SUBJECT_DUPLICATE", false, None)})
            }
            Ok(Resolved::Found(s)) if g.update_denied => {
                json!({"resultMetadata": meta("INSUFFICIENT_PRIVILEGES", false, None), "wsSubject": subject_row_json(&s, true)})
            }
            Ok(Resolved::Found(s)) => {
                let key = (s.source_id.clone(), s.id.clone());
                kept.push(key.clone());
                let inserted = cx
                    .st
                    .groups
                    .get_mut(group)
                    .is_some_and(|g| g.members.insert(key));
                let code = if inserted { "SUCCESS" } else { already_code };
                json!({"resultMetadata": meta(code, true, None), "wsSubject": subject_row_json(&s, true)})
            }
        };
        rows.push(row);
    }
    if t_or_f(inner.get("replaceAllExisting")) == Some(true) && !g.update_denied {
        if let Some(g) = cx.st.groups.get_mut(group) {
            g.members.retain(|m| kept.contains(m));
        }
    }
    let msg = success_message(cx, group, &subjects);
    let g = cx.st.groups.get(group).cloned().unwrap_or(g);
    write_envelope(cx, op, &g, rows, msg)
}

fn invalid_query(cx: &mut Ctx, op: Operation, message: &str) -> SimResponse {
    let mut inner = Map::new();
    inner.insert(
        "resultMetadata".into(),
        meta("INVALID_QUERY", false, Some(message.to_string())),
    );
    response(400, root_for(op), inner, cx.st, "INVALID_QUERY", false)
}

fn delete_member(cx: &mut Ctx, group: &str, inner: &Value) -> SimResponse {
    let op = Operation::DeleteMember;
    let Some(g) = cx.st.groups.get(group).cloned() else {
        return group_not_found(cx, op, group);
    };
    let subjects = lookups(inner);
    if subjects.is_empty() {
        return invalid_query(cx, op, "You must pass in at least one subject");
    }
    if subjects.len() > cx.st.config.subjects_max {
        let msg = format!(
            "subjectLookups length must be less than {}",
            cx.st.config.subjects_max
        );
        return invalid_query(cx, op, &msg);
    }
    let mut rows = Vec::new();
    for l in &subjects {
        let row = match resolve(cx.st, l) {
            Err(msg) => json!({"resultMetadata": meta("INVALID_QUERY", false, Some(msg))}),
            Ok(Resolved::Duplicate) => {
                json!({"resultMetadata": meta("SUBJECT_DUPLICATE", false, None)})
            }
            Ok(_) if g.update_denied => {
                json!({"resultMetadata": meta("INSUFFICIENT_PRIVILEGES", false, None)})
            }
            Ok(Resolved::Found(s)) => {
                let removed = cx
                    .st
                    .groups
                    .get_mut(group)
                    .is_some_and(|g| g.members.remove(&(s.source_id.clone(), s.id.clone())));
                let code = if removed {
                    "SUCCESS"
                } else {
                    "SUCCESS_WASNT_IMMEDIATE"
                };
                json!({"resultMetadata": meta(code, true, None), "wsSubject": subject_row_json(&s, true)})
            }
            Ok(Resolved::NotFound) => {
                // A member row whose subject is unresolvable is still deleted, by id and source.
                let id = l
                    .get("subjectId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let src = l.get("subjectSourceId").and_then(Value::as_str);
                let removed = cx.st.groups.get_mut(group).is_some_and(|g| {
                    let before = g.members.len();
                    g.members
                        .retain(|(s, i)| !(i == &id && src.is_none_or(|src| src == s)));
                    g.members.len() < before
                });
                let code = if removed {
                    "SUCCESS"
                } else {
                    "SUCCESS_WASNT_IMMEDIATE"
                };
                json!({"resultMetadata": meta(code, true, None), "wsSubject": {"id": id, "resultCode": "SUBJECT_NOT_FOUND", "success": "F"}})
            }
        };
        rows.push(row);
    }
    let msg = success_message(cx, group, &subjects);
    write_envelope(cx, op, &g, rows, msg)
}

fn has_member(cx: &mut Ctx, group: &str, inner: &Value) -> SimResponse {
    let op = Operation::HasMember;
    let Some(g) = cx.st.groups.get(group).cloned() else {
        return group_not_found(cx, op, group);
    };
    let subjects = lookups(inner);
    if subjects.is_empty() {
        return invalid_query(
            cx,
            op,
            "Must pass in at least one subject to check for membership",
        );
    }
    let rows = subjects
        .iter()
        .map(|l| match resolve(cx.st, l) {
            Err(msg) => json!({"resultMetadata": meta("INVALID_QUERY", false, Some(msg))}),
            Ok(Resolved::Duplicate) => json!({"resultMetadata": meta("SUBJECT_DUPLICATE", false, None)}),
            Ok(Resolved::NotFound) => json!({"resultMetadata": meta("SUBJECT_NOT_FOUND", true, None)}),
            Ok(Resolved::Found(s)) => {
                let is = g.members.contains(&(s.source_id.clone(), s.id.clone()));
                json!({"resultMetadata": meta(if is { "IS_MEMBER" } else { "IS_NOT_MEMBER" }, true, None), "wsSubject": subject_row_json(&s, true)})
            }
        })
        .collect();
    let msg = success_message(cx, group, &subjects);
    write_envelope(cx, op, &g, rows, msg)
}

struct Listing {
    subjects: Vec<Value>,
    all_resolved: bool,
}

/// Lists a group's members the way getMembers does: sorted, filtered by source, paged.
fn list_members(
    cx: &Ctx,
    g: &Group,
    q: &Value,
    attribute_names: &[String],
    with_name: bool,
) -> Result<Listing, String> {
    let page_size = q.get("pageSize").and_then(Value::as_str).map(|s| {
        s.parse::<usize>()
            .map_err(|_| format!("Invalid pageSize: {s}"))
    });
    let page_number = q.get("pageNumber").and_then(Value::as_str).map(|s| {
        s.parse::<usize>()
            .map_err(|_| format!("Invalid pageNumber: {s}"))
    });
    let page_size = page_size.transpose()?;
    let page_number = page_number.transpose()?;
    if page_number.is_some() && page_size.is_none() {
        return Err("If you pass in pageNumber you need to pass in pageSize".into());
    }
    let sources: Option<Vec<String>> = q.get("sourceIds").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    });
    let filter = q
        .get("memberFilter")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .unwrap_or("All")
        .to_ascii_lowercase();
    let effective = || cx.st.effective_members(g);
    let listed: BTreeSet<(String, String)> = match filter.as_str() {
        "immediate" => g.members.clone(),
        "all" => g.members.union(&effective()).cloned().collect(),
        "effective" => effective(),
        "nonimmediate" => effective().difference(&g.members).cloned().collect(),
        // the simulator has no composite groups
        "composite" => BTreeSet::new(),
        other => return Err(format!("Invalid memberFilter: {other}")),
    };
    let mut members: Vec<&(String, String)> = listed
        .iter()
        .filter(|(src, _)| sources.as_ref().is_none_or(|s| s.contains(src)))
        .collect();
    match q.get("sortString").and_then(Value::as_str) {
        Some("subjectId") => members.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))),
        Some(_) | None => members.sort(),
    }
    if t_or_f(q.get("ascending")) == Some(false) {
        members.reverse();
    }
    if let Some(size) = page_size {
        let size = size.max(1);
        let start = (page_number.unwrap_or(1).max(1) - 1) * size;
        members = members.into_iter().skip(start).take(size).collect();
    }
    let mut all_resolved = true;
    let subjects = members
        .into_iter()
        .map(|(src, id)| {
            let mut m = Map::new();
            m.insert("id".into(), id.clone().into());
            if !cx.legacy {
                m.insert(
                    "memberId".into(),
                    hex_id(&format!("member:{src}:{id}")).into(),
                );
            }
            m.insert("sourceId".into(), src.clone().into());
            match cx.st.subjects_with_id(id).find(|s| &s.source_id == src) {
                Some(s) => {
                    if !attribute_names.is_empty() {
                        let values: Vec<Value> = attribute_names
                            .iter()
                            .map(|a| s.attributes.get(a).cloned().unwrap_or_default().into())
                            .collect();
                        m.insert("attributeValues".into(), values.into());
                    }
                    if with_name || !attribute_names.is_empty() {
                        m.insert("name".into(), s.name.clone().into());
                    }
                    m.insert("resultCode".into(), "SUCCESS".into());
                    m.insert("success".into(), "T".into());
                }
                None => {
                    all_resolved = false;
                    m.insert("resultCode".into(), "UNRESOLVABLE".into());
                    m.insert("success".into(), "F".into());
                }
            }
            Value::Object(m)
        })
        .collect();
    Ok(Listing {
        subjects,
        all_resolved,
    })
}

fn get_members(cx: &mut Ctx, q: &Value) -> SimResponse {
    let op = Operation::GetMembers;
    let group_lookups = q
        .get("wsGroupLookups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if group_lookups.is_empty() {
        return invalid_query(cx, op, "You must pass in at least one group");
    }
    let attribute_names: Vec<String> = q
        .get("subjectAttributeNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut results = Vec::new();
    let mut all_ok = true;
    for l in &group_lookups {
        let name = l
            .get("groupName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(g) = cx.st.groups.get(name).cloned() else {
            all_ok = false;
            let msg = format!(
                "Invalid group for 'wsGroupLookup', WsGroupLookup[pitGroups=[],groupName={name}]"
            );
            results.push(json!({"resultMetadata": meta("GROUP_NOT_FOUND", false, Some(msg))}));
            continue;
        };
        let listing = match list_members(cx, &g, q, &attribute_names, false) {
            Ok(l) => l,
            Err(msg) => return invalid_query(cx, op, &msg),
        };
        let mut row = Map::new();
        let row_code = if listing.all_resolved {
            "SUCCESS"
        } else {
            "PROBLEM_GETTING_MEMBERS"
        };
        all_ok &= listing.all_resolved;
        row.insert(
            "resultMetadata".into(),
            meta(row_code, listing.all_resolved, None),
        );
        row.insert("wsGroup".into(), group_json(&g, cx.legacy));
        if !listing.subjects.is_empty() {
            row.insert("wsSubjects".into(), listing.subjects.into());
        }
        results.push(Value::Object(row));
    }
    let mut inner = Map::new();
    let (status, code) = if all_ok {
        (200, "SUCCESS")
    } else {
        (500, "PROBLEM_GETTING_MEMBERS")
    };
    let msg = format!(
        "Success for: clientVersion: {}.{}.{}, wsGroupLookups: Array size: {}",
        cx.client_version.0,
        cx.client_version.1,
        cx.client_version.2,
        group_lookups.len()
    );
    inner.insert("resultMetadata".into(), meta(code, all_ok, Some(msg)));
    inner.insert("results".into(), results.into());
    if !attribute_names.is_empty() {
        inner.insert("subjectAttributeNames".into(), attribute_names.into());
    }
    inner.insert(
        "__client".into(),
        format!(
            "{}.{}.{}",
            cx.client_version.0, cx.client_version.1, cx.client_version.2
        )
        .into(),
    );
    response(status, root_for(op), inner, cx.st, code, all_ok)
}

fn get_members_lite(cx: &mut Ctx, group: &str, params: &[(String, String)]) -> SimResponse {
    let op = Operation::GetMembersLite;
    let Some(g) = cx.st.groups.get(group).cloned() else {
        return group_not_found(cx, op, group);
    };
    let mut q = Map::new();
    for (k, v) in params {
        match k.as_str() {
            "sourceIds" => {
                q.insert(
                    k.clone(),
                    v.split(',')
                        .map(|s| Value::from(s.trim()))
                        .collect::<Vec<_>>()
                        .into(),
                );
            }
            _ => {
                q.insert(k.clone(), v.clone().into());
            }
        }
    }
    let attribute_names: Vec<String> = params
        .iter()
        .find(|(k, _)| k == "subjectAttributeNames")
        .map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let listing = match list_members(cx, &g, &Value::Object(q), &attribute_names, false) {
        Ok(l) => l,
        Err(msg) => return invalid_query(cx, op, &msg),
    };
    let mut inner = Map::new();
    let (status, code) = if listing.all_resolved {
        (200, "SUCCESS")
    } else {
        (500, "PROBLEM_GETTING_MEMBERS")
    };
    let msg = format!(
        "Success for: clientVersion: {}.{}.{}, wsGroupLookups: Array size: 1",
        cx.client_version.0, cx.client_version.1, cx.client_version.2
    );
    inner.insert(
        "resultMetadata".into(),
        meta(code, listing.all_resolved, Some(msg)),
    );
    inner.insert("wsGroup".into(), group_json(&g, cx.legacy));
    if !listing.subjects.is_empty() {
        inner.insert("wsSubjects".into(), listing.subjects.into());
    }
    if !attribute_names.is_empty() {
        inner.insert("subjectAttributeNames".into(), attribute_names.into());
    }
    response(
        status,
        root_for(op),
        inner,
        cx.st,
        code,
        listing.all_resolved,
    )
}

/// hasMember, addMember and deleteMember lite: one subject from the URL; status from its code.
fn lite_subject_op(
    cx: &mut Ctx,
    op: Operation,
    group: &str,
    source: Option<String>,
    id: &str,
) -> SimResponse {
    let Some(g) = cx.st.groups.get(group).cloned() else {
        return group_not_found(cx, op, group);
    };
    let mut lookup = json!({"subjectId": id});
    if let Some(src) = &source {
        lookup["subjectSourceId"] = src.clone().into();
    }
    let resolved = resolve(cx.st, &lookup).unwrap_or(Resolved::NotFound);
    let (status, code, subject) = match (op, resolved) {
        (_, Resolved::Duplicate) => (409, "SUBJECT_DUPLICATE", None),
        (Operation::DeleteMemberLite, Resolved::NotFound) => (200, "SUBJECT_NOT_FOUND", None),
        (_, Resolved::NotFound) => (404, "SUBJECT_NOT_FOUND", None),
        (Operation::AddMemberLite | Operation::DeleteMemberLite, Resolved::Found(s))
            if g.update_denied =>
        {
            (403, "INSUFFICIENT_PRIVILEGES", Some(s))
        }
        (Operation::HasMemberLite, Resolved::Found(s)) => {
            let is = g.members.contains(&(s.source_id.clone(), s.id.clone()));
            (200, if is { "IS_MEMBER" } else { "IS_NOT_MEMBER" }, Some(s))
        }
        (Operation::AddMemberLite, Resolved::Found(s)) => {
            let inserted = cx
                .st
                .groups
                .get_mut(group)
                .is_some_and(|g| g.members.insert((s.source_id.clone(), s.id.clone())));
            if inserted {
                (201, "SUCCESS", Some(s))
            } else {
                (200, "SUCCESS_ALREADY_EXISTED", Some(s))
            }
        }
        (_, Resolved::Found(s)) => {
            let removed = cx
                .st
                .groups
                .get_mut(group)
                .is_some_and(|g| g.members.remove(&(s.source_id.clone(), s.id.clone())));
            (
                200,
                if removed {
                    "SUCCESS"
                } else {
                    "SUCCESS_WASNT_IMMEDIATE"
                },
                Some(s),
            )
        }
    };
    let success = !matches!(
        code,
        "SUBJECT_NOT_FOUND" | "SUBJECT_DUPLICATE" | "INSUFFICIENT_PRIVILEGES"
    );
    let mut inner = Map::new();
    let msg = success_message(cx, group, std::slice::from_ref(&lookup));
    inner.insert("resultMetadata".into(), meta(code, success, Some(msg)));
    let group_key = if op == Operation::AddMemberLite {
        "wsGroupAssigned"
    } else {
        "wsGroup"
    };
    let g = cx.st.groups.get(group).cloned().unwrap_or(g);
    inner.insert(group_key.into(), group_json(&g, cx.legacy));
    match subject {
        Some(s) => inner.insert("wsSubject".into(), subject_row_json(&s, true)),
        None => inner.insert("wsSubject".into(), json!({"id": id})),
    };
    response(status, root_for(op), inner, cx.st, code, success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("v2_2_100"), Some((2, 2, 100)));
        assert_eq!(parse_version("v2_5_000"), Some((2, 5, 0)));
        assert_eq!(parse_version("5.22.3"), Some((5, 22, 3)));
        assert_eq!(parse_version("V2_5_000-rc1"), Some((2, 5, 0)));
        assert_eq!(parse_version("2.5.0-SNAPSHOT"), Some((2, 5, 0)));
        assert_eq!(parse_version("json"), None);
        assert_eq!(parse_version("v2_5"), None);
    }

    #[test]
    fn basic_auth_splits_on_last_colon() {
        assert_eq!(
            decode_basic(Some("Basic dXNlcjpwYTpzcw==")),
            Some(("user:pa".into(), "ss".into()))
        );
        assert_eq!(decode_basic(Some("Bearer x")), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("aStem%3AaGroup"), "aStem:aGroup");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}
