//! Grouper WS REST/JSON: the requests the sync sends and a strict reading of the answers
//! (HTTP status, `X-Grouper-*` headers, top-level result, and every per-subject row).

use crate::error::{ErrorKind, SyncError};
use crate::model::Member;
use crate::model::{Direction, SubjectLookup, Target};
use crate::wire::http::{base64, encode_segment, truncate, Method, Request, Response};
use serde_json::{json, Map, Value};

pub mod provisioning;

/// How to reach one Grouper WS endpoint.
#[derive(Clone)]
pub struct Connection {
    pub base_url: String,
    pub authorization: String,
    pub content_type: String,
}

impl Connection {
    pub fn new(base_url: &str, user: &str, password: &str, content_type: &str) -> Self {
        Connection {
            base_url: base_url.trim_end_matches('/').to_string(),
            // Sent preemptively: Grouper's own clients do, and a 401 challenge may never come.
            authorization: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            content_type: content_type.to_string(),
        }
    }

    fn post_json(&self, method: Method, url: String, body: &Value) -> Request {
        Request::new(method, url)
            .header("Authorization", self.authorization.clone())
            .header("Content-Type", self.content_type.clone())
            .header("Accept", "application/json, text/x-json")
            .body(body.to_string().into_bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    Add,
    Delete,
}

impl WriteOp {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOp::Add => "add",
            WriteOp::Delete => "delete",
        }
    }
    fn root(self) -> &'static str {
        match self {
            WriteOp::Add => "WsAddMemberResults",
            WriteOp::Delete => "WsDeleteMemberResults",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    pub members: Vec<Member>,
    /// Grouper listed members it could not resolve (they are still members, with an id).
    pub unresolvable: usize,
}

/// The result of one subject in an add or delete batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowResult {
    pub subject: String,
    pub success: bool,
    pub code: String,
    pub message: String,
    /// `SUBJECT_NOT_FOUND` or `SUBJECT_DUPLICATE` when Grouper could not (uniquely) find the
    /// subject, whether as the row's code or inside an `EXCEPTION` row's message, as 2.2 servers
    /// answer addMember. Reported, not fatal.
    pub subject_problem: Option<&'static str>,
}

impl RowResult {
    /// The code to report: the subject problem when there is one, else Grouper's row code.
    pub fn reported_code(&self) -> &str {
        self.subject_problem.unwrap_or(&self.code)
    }
}

fn gerr<T>(kind: ErrorKind, msg: impl Into<String>) -> Result<T, SyncError> {
    Err(SyncError::new(kind, msg))
}

/// The kind of a failed Grouper result code.
pub fn code_kind(code: &str) -> ErrorKind {
    match code {
        "GROUP_NOT_FOUND" => ErrorKind::GroupNotFound,
        "INSUFFICIENT_PRIVILEGES" => ErrorKind::GrouperForbidden,
        _ => ErrorKind::GrouperBadAnswer,
    }
}

/// The lookup for a subject being added, as the settings say to send it.
pub fn subject_lookup(subject: &str, lookup: &SubjectLookup, source_id: Option<&str>) -> Value {
    let mut l = Map::new();
    let field = match lookup {
        SubjectLookup::SubjectId => "subjectId",
        SubjectLookup::SubjectIdentifier { .. } => "subjectIdentifier",
    };
    l.insert(field.into(), subject.into());
    if let Some(src) = source_id {
        l.insert("subjectSourceId".into(), src.into());
    }
    Value::Object(l)
}

/// The lookup for a current member being removed: exactly the id and source Grouper listed.
pub fn member_lookup(member: &Member) -> Value {
    let mut l = Map::new();
    l.insert("subjectId".into(), member.id.clone().into());
    if !member.source_id.is_empty() {
        l.insert("subjectSourceId".into(), member.source_id.clone().into());
    }
    Value::Object(l)
}

/// Which members getMembers lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFilter {
    /// The memberships the sync writes (and so the only ones it may remove).
    Immediate,
    /// Everyone who is a member, directly or through subgroups: what a to_hub target reads.
    All,
}

impl MemberFilter {
    pub fn for_target(target: &Target) -> MemberFilter {
        match target.direction() {
            Direction::ToHub => MemberFilter::All,
            Direction::ToGrouper => MemberFilter::Immediate,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            MemberFilter::Immediate => "Immediate",
            MemberFilter::All => "All",
        }
    }
}

/// Batch getMembers, posted to `/groups` (posting it to `/groups/{g}/members` is routed elsewhere).
pub fn get_members_request(
    conn: &Connection,
    group: &str,
    lookup: &SubjectLookup,
    source_id: Option<&str>,
    filter: MemberFilter,
    (page_size, page_number): (usize, usize),
) -> Request {
    let mut req = json!({
        "wsGroupLookups": [{"groupName": group}],
        "memberFilter": filter.as_str(),
        "includeSubjectDetail": "F",
        "pageSize": page_size.to_string(),
        "pageNumber": page_number.to_string(),
        "sortString": "subjectId",
        "ascending": "T",
    });
    if let SubjectLookup::SubjectIdentifier { attribute } = lookup {
        req["subjectAttributeNames"] = json!([attribute]);
    }
    if let Some(src) = source_id {
        req["sourceIds"] = json!([src]);
    }
    conn.post_json(
        Method::Post,
        format!("{}/groups", conn.base_url),
        &json!({ "WsRestGetMembersRequest": req }),
    )
}

/// addMember is a PUT, deleteMember a POST: the body's root key picks the operation.
pub fn write_request(conn: &Connection, op: WriteOp, group: &str, lookups: &[Value]) -> Request {
    assert!(
        !lookups.is_empty(),
        "an empty subject list must never be sent"
    );
    let url = format!("{}/groups/{}/members", conn.base_url, encode_segment(group));
    match op {
        WriteOp::Add => conn.post_json(
            Method::Put,
            url,
            &json!({"WsRestAddMemberRequest": {"subjectLookups": lookups, "replaceAllExisting": "F"}}),
        ),
        WriteOp::Delete => conn.post_json(Method::Post, url, &json!({"WsRestDeleteMemberRequest": {"subjectLookups": lookups}})),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn is_true(v: &Value) -> bool {
    matches!(
        str_field(v, "success"),
        "T" | "t" | "true" | "TRUE" | "True"
    )
}

/// The first line of a Grouper message, shortened: messages can hold whole Java stack traces.
fn short_message(v: &Value) -> String {
    let m = str_field(v, "resultMessage");
    truncate(m.lines().next().unwrap_or(""), 300)
}

/// Checks transport-level answers and returns the operation's envelope object.
fn envelope<'a>(
    what: &str,
    resp: &Response,
    body: &'a Value,
    root: &str,
) -> Result<&'a Map<String, Value>, SyncError> {
    let obj = body.as_object().and_then(|o| {
        if let Some(problem) = o.get("WsRestResultProblem") {
            return Some(Err(problem));
        }
        o.get(root).and_then(Value::as_object).map(Ok)
    });
    match obj {
        Some(Ok(env)) => Ok(env),
        Some(Err(problem)) => {
            let meta = problem
                .get("resultMetadata")
                .cloned()
                .unwrap_or(Value::Null);
            gerr(
                code_kind(str_field(&meta, "resultCode")),
                format!(
                    "{what}: Grouper refused the request (HTTP {}, {}): {}",
                    resp.status,
                    str_field(&meta, "resultCode"),
                    short_message(&meta)
                ),
            )
        }
        None => gerr(
            ErrorKind::GrouperBadAnswer,
            format!(
                "{what}: HTTP {} with an answer that is not a {root} object",
                resp.status
            ),
        ),
    }
}

fn parse_body(what: &str, resp: &Response) -> Result<Value, SyncError> {
    let grouper_answered = resp.header("x-grouper-success").is_some();
    if !grouper_answered && matches!(resp.status, 401 | 403) {
        return gerr(ErrorKind::GrouperUnauthorized, format!(
            "{what}: Grouper rejected the credentials (HTTP {}): check grouper_user and grouper_password",
            resp.status
        ));
    }
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) => Ok(v),
        Err(e) if (200..300).contains(&resp.status) || grouper_answered => gerr(
            ErrorKind::GrouperBadAnswer,
            format!(
                "{what}: HTTP {} with a body that is not valid JSON ({e})",
                resp.status
            ),
        ),
        Err(_) => gerr(
            if resp.status == 429 || resp.status >= 500 {
                ErrorKind::GrouperUnavailable
            } else {
                ErrorKind::GrouperBadAnswer
            },
            format!(
                "{what}: HTTP {} without a Grouper answer: {}",
                resp.status,
                truncate(String::from_utf8_lossy(&resp.body).trim(), 200)
            ),
        ),
    }
}

/// Parses one page of getMembers.
pub fn parse_get_members(
    group: &str,
    lookup_kind: &SubjectLookup,
    resp: &Response,
) -> Result<MembersPage, SyncError> {
    let what = format!("reading members of {group}");
    let body = parse_body(&what, resp)?;
    let env = envelope(&what, resp, &body, "WsGetMembersResults")?;
    let top = env.get("resultMetadata").cloned().unwrap_or(Value::Null);
    let results = env
        .get("results")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let [result] = results else {
        return gerr(
            ErrorKind::GrouperBadAnswer,
            format!(
                "{what}: HTTP {}, {} {}: expected one group result, got {}",
                resp.status,
                str_field(&top, "resultCode"),
                short_message(&top),
                results.len()
            ),
        );
    };
    let meta = result.get("resultMetadata").cloned().unwrap_or(Value::Null);
    let row_code = str_field(&meta, "resultCode");
    match row_code {
        "SUCCESS" if is_true(&meta) => {}
        // Members whose source cannot resolve them are still listed, with their ids.
        "PROBLEM_GETTING_MEMBERS" if result.get("wsSubjects").is_some() => {}
        "GROUP_NOT_FOUND" => {
            return gerr(ErrorKind::GroupNotFound, format!(
                "{what}: GROUP_NOT_FOUND: the group does not exist or the Grouper user cannot view it (check the group name: grouper_id_path or the target's grouper_group)"
            ))
        }
        code => return gerr(code_kind(code), format!("{what}: HTTP {}, {code}: {}", resp.status, short_message(&meta))),
    }
    if let Some(name) = result
        .get("wsGroup")
        .and_then(|g| g.get("name"))
        .and_then(Value::as_str)
    {
        if name != group {
            return gerr(
                ErrorKind::GrouperBadAnswer,
                format!("{what}: Grouper answered for a different group ({name})"),
            );
        }
    }
    let attr_index = match lookup_kind {
        SubjectLookup::SubjectId => None,
        SubjectLookup::SubjectIdentifier { attribute } => {
            let names = env.get("subjectAttributeNames").and_then(Value::as_array);
            let index = names.and_then(|n| n.iter().position(|a| a.as_str() == Some(attribute)));
            // An empty page has neither wsSubjects nor subjectAttributeNames.
            if index.is_none() && result.get("wsSubjects").is_some() {
                return gerr(
                    ErrorKind::GrouperBadAnswer,
                    format!("{what}: Grouper did not return the subject attribute {attribute}"),
                );
            }
            index
        }
    };
    let mut page = MembersPage {
        members: Vec::new(),
        unresolvable: 0,
    };
    for s in result
        .get("wsSubjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let id = str_field(s, "id");
        if id.is_empty() {
            return gerr(
                ErrorKind::GrouperBadAnswer,
                format!(
                    "{what}: a member without an id: {}",
                    truncate(&s.to_string(), 200)
                ),
            );
        }
        if !is_true(s) {
            page.unresolvable += 1;
        }
        let key = match attr_index {
            None => Some(id.to_string()),
            Some(i) => s
                .get("attributeValues")
                .and_then(|a| a.get(i))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(String::from),
        };
        page.members.push(Member {
            id: id.to_string(),
            source_id: str_field(s, "sourceId").to_string(),
            key,
        });
    }
    Ok(page)
}

/// Parses an addMember or deleteMember answer into one row per subject sent, in order.
/// Returns an error when the batch as a whole failed (no per-subject rows to trust).
pub fn parse_write(
    op: WriteOp,
    group: &str,
    subjects: &[String],
    resp: &Response,
) -> Result<Vec<RowResult>, SyncError> {
    let what = format!(
        "{} members of {group}",
        if op == WriteOp::Add {
            "adding"
        } else {
            "removing"
        }
    );
    let body = parse_body(&what, resp)?;
    let env = envelope(&what, resp, &body, op.root())?;
    let top = env.get("resultMetadata").cloned().unwrap_or(Value::Null);
    let top_code = str_field(&top, "resultCode");
    let rows = match env.get("results").and_then(Value::as_array) {
        Some(rows) => rows,
        None if top_code == "GROUP_NOT_FOUND" => {
            return gerr(ErrorKind::GroupNotFound, format!(
                "{what}: GROUP_NOT_FOUND: the group does not exist or the Grouper user cannot view it (check the group name: grouper_id_path or the target's grouper_group)"
            ))
        }
        None => return gerr(code_kind(top_code), format!("{what}: HTTP {}, {top_code}: {}", resp.status, short_message(&top))),
    };
    if rows.len() != subjects.len() {
        return gerr(
            ErrorKind::GrouperBadAnswer,
            format!(
                "{what}: sent {} subjects but Grouper answered {} rows",
                subjects.len(),
                rows.len()
            ),
        );
    }
    let top_ok = is_true(&top) && (200..300).contains(&resp.status);
    let out: Vec<RowResult> = subjects
        .iter()
        .zip(rows)
        .map(|(subject, row)| {
            let meta = row.get("resultMetadata").cloned().unwrap_or(Value::Null);
            let code = str_field(&meta, "resultCode").to_string();
            let full_message = str_field(&meta, "resultMessage");
            let subject_problem = ["SUBJECT_NOT_FOUND", "SUBJECT_DUPLICATE"]
                .into_iter()
                .find(|p| code == *p || full_message.contains(p));
            RowResult {
                subject: subject.clone(),
                success: is_true(&meta),
                code,
                message: short_message(&meta),
                subject_problem,
            }
        })
        .collect();
    if top_ok && out.iter().any(|r| !r.success) {
        return gerr(
            ErrorKind::GrouperBadAnswer,
            format!("{what}: Grouper reported success but some rows failed"),
        );
    }
    Ok(out)
}

/// groupSave of one missing group: `INSERT` (never overwrites a group that exists) without
/// creating folders (a wrong folder is a configuration error to report). See grouper-ws.md §13.
pub fn group_save_request(conn: &Connection, group: &str) -> Request {
    let extension = group.rsplit(':').next().unwrap_or(group);
    conn.post_json(
        Method::Post,
        format!("{}/groups", conn.base_url),
        &json!({"WsRestGroupSaveRequest": {"wsGroupToSaves": [{
            "saveMode": "INSERT",
            "createParentStemsIfNotExist": "F",
            "wsGroupLookup": {"groupName": group},
            "wsGroup": {
                "name": group,
                "displayExtension": extension,
                "description": "Kept by jupyterhub-grouper-sync (created with create_missing_groups)",
            },
        }]}}),
    )
}

/// What a groupSave of a missing group did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSaved {
    Created,
    /// Someone created it meanwhile, or the Grouper user cannot see it.
    AlreadyExists,
}

/// Parses the answer to [`group_save_request`] by its row, as grouper-ws.md §13.6 says: failures
/// come back as `EXCEPTION` rows whose message names the Java exception.
pub fn parse_group_save(group: &str, resp: &Response) -> Result<GroupSaved, SyncError> {
    let what = format!("creating the Grouper group {group}");
    let body = parse_body(&what, resp)?;
    let env = envelope(&what, resp, &body, "WsGroupSaveResults")?;
    let top = env.get("resultMetadata").cloned().unwrap_or(Value::Null);
    let Some(row) = env
        .get("results")
        .and_then(Value::as_array)
        .and_then(|rows| rows.first())
    else {
        return gerr(
            code_kind(str_field(&top, "resultCode")),
            format!(
                "{what}: HTTP {}, {}: {}",
                resp.status,
                str_field(&top, "resultCode"),
                short_message(&top)
            ),
        );
    };
    let meta = row.get("resultMetadata").cloned().unwrap_or(Value::Null);
    let code = str_field(&meta, "resultCode");
    let message = str_field(&meta, "resultMessage");
    match code {
        "SUCCESS_INSERTED" | "SUCCESS" if is_true(&meta) => Ok(GroupSaved::Created),
        "GROUP_ALREADY_EXISTS" => Ok(GroupSaved::AlreadyExists),
        _ => {
            let folder = group.rsplit_once(':').map_or("", |(f, _)| f);
            let (kind, why) = if code == "STEM_NOT_FOUND"
                || message.contains("StemNotFoundException")
                || message.contains("Cant find stem")
            {
                (
                    ErrorKind::GroupNotFound,
                    format!(
                        "the folder {folder} does not exist (grouper-sync does not create folders)"
                    ),
                )
            } else if code == "INSUFFICIENT_PRIVILEGES"
                || message.contains("InsufficientPrivilegeException")
            {
                (
                    ErrorKind::GrouperForbidden,
                    format!("the Grouper user may not create groups in {folder}: grant it CREATE on that folder"),
                )
            } else {
                (
                    ErrorKind::GrouperBadAnswer,
                    format!("{code}: {}", short_message(&meta)),
                )
            };
            gerr(kind, format!("{what}: {why}"))
        }
    }
}

#[cfg(test)]
mod tests;
