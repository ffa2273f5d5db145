//! The membership operations: add, delete, has and get members, in their full and lite forms.

use super::*;

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

pub(super) fn add_member(cx: &mut Ctx, group: &str, inner: &Value) -> SimResponse {
    let op = Operation::AddMember;
    let Some(g) = cx.st.groups.get(group).map(Group::head) else {
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
    let mut kept: BTreeSet<(String, String)> = BTreeSet::new();
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
                kept.insert(key.clone());
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
    let g = cx.st.groups.get(group).map(Group::head).unwrap_or(g);
    write_envelope(cx, op, &g, rows, msg)
}

pub(super) fn delete_member(cx: &mut Ctx, group: &str, inner: &Value) -> SimResponse {
    let op = Operation::DeleteMember;
    let Some(g) = cx.st.groups.get(group).map(Group::head) else {
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

pub(super) fn has_member(cx: &mut Ctx, group: &str, inner: &Value) -> SimResponse {
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
    // Borrowed where it can be: a page of a large group must not copy the whole group (a
    // 100,000-member group is read in 101 pages).
    let listed: std::borrow::Cow<BTreeSet<(String, String)>> = match filter.as_str() {
        "immediate" => std::borrow::Cow::Borrowed(&g.members),
        "all" => match effective() {
            nested if nested.is_empty() => std::borrow::Cow::Borrowed(&g.members),
            nested => std::borrow::Cow::Owned(g.members.union(&nested).cloned().collect()),
        },
        "effective" => std::borrow::Cow::Owned(effective()),
        "nonimmediate" => {
            std::borrow::Cow::Owned(effective().difference(&g.members).cloned().collect())
        }
        // the simulator has no composite groups
        "composite" => std::borrow::Cow::Owned(BTreeSet::new()),
        other => return Err(format!("Invalid memberFilter: {other}")),
    };
    let descending = t_or_f(q.get("ascending")) == Some(false);
    let (start, size) = match page_size {
        Some(size) => (
            (page_number.unwrap_or(1).max(1) - 1) * size.max(1),
            size.max(1),
        ),
        None => (0, usize::MAX),
    };
    // a set iterates in (sourceId, subjectId) order: the default sort, and the subjectId order
    // too when every member has one source (first and last agree), as in any large group
    let one_source = match (listed.first(), listed.last()) {
        (Some(first), Some(last)) => first.0 == last.0,
        _ => true,
    };
    let members: Vec<&(String, String)> = if one_source
        && sources
            .as_ref()
            .is_none_or(|s| listed.first().is_none_or(|m| s.contains(&m.0)))
    {
        let in_order: Box<dyn Iterator<Item = &(String, String)>> = if descending {
            Box::new(listed.iter().rev())
        } else {
            Box::new(listed.iter())
        };
        in_order.skip(start).take(size).collect()
    } else {
        let mut members: Vec<&(String, String)> = listed
            .iter()
            .filter(|(src, _)| sources.as_ref().is_none_or(|s| s.contains(src)))
            .collect();
        if q.get("sortString").and_then(Value::as_str) == Some("subjectId") {
            members.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        }
        if descending {
            members.reverse();
        }
        members.into_iter().skip(start).take(size).collect()
    };
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

pub(super) fn get_members(cx: &mut Ctx, q: &Value) -> SimResponse {
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
        let Some(g) = cx.st.groups.get(name) else {
            all_ok = false;
            let msg = format!(
                "Invalid group for 'wsGroupLookup', WsGroupLookup[pitGroups=[],groupName={name}]"
            );
            results.push(json!({"resultMetadata": meta("GROUP_NOT_FOUND", false, Some(msg))}));
            continue;
        };
        let listing = match list_members(cx, g, q, &attribute_names, false) {
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
        row.insert("wsGroup".into(), group_json(g, cx.legacy));
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

pub(super) fn get_members_lite(
    cx: &mut Ctx,
    group: &str,
    params: &[(String, String)],
) -> SimResponse {
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
pub(super) fn lite_subject_op(
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
    let g = cx.st.groups.get(group).map(Group::head).unwrap_or(g);
    inner.insert(group_key.into(), group_json(&g, cx.legacy));
    match subject {
        Some(s) => inner.insert("wsSubject".into(), subject_row_json(&s, true)),
        None => inner.insert("wsSubject".into(), json!({"id": id})),
    };
    response(status, root_for(op), inner, cx.st, code, success)
}
