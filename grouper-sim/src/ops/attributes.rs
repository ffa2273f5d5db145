//! Attribute assignments on groups, as the provisioning marks use them (docs/grouper-attributes.md):
//! getAttributeAssignments (`attributeAssignType` `group`, with the assignments on those
//! assignments) and assignAttributesBatch (`add_attr`, `assign_attr`, `remove_attr`, with
//! `assign_value` on single-valued string attributes), both posted to `/attributeAssignments`.

use super::*;
use crate::{AssignOwner, AssignTo, AttributeAssign};

fn assign_type(a: &AttributeAssign) -> &'static str {
    match a.owner {
        AssignOwner::Group(_) => "group",
        AssignOwner::Assignment(_) => "group_asgn",
    }
}

/// An assignment as Grouper lists it (`WsAttributeAssign`).
fn assign_json(st: &State, a: &AttributeAssign) -> Value {
    let def = st
        .attribute_names
        .get(&a.name)
        .map(|n| n.def.clone())
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("attributeAssignActionId".into(), hex_id("assign").into());
    m.insert("attributeAssignActionName".into(), "assign".into());
    m.insert("attributeAssignActionType".into(), "immediate".into());
    m.insert("attributeAssignDelegatable".into(), "FALSE".into());
    m.insert("attributeAssignType".into(), assign_type(a).into());
    m.insert("attributeDefId".into(), hex_id(&def).into());
    m.insert("attributeDefName".into(), def.into());
    m.insert("attributeDefNameId".into(), hex_id(&a.name).into());
    m.insert("attributeDefNameName".into(), a.name.clone().into());
    m.insert("createdOn".into(), "2026/12/07 09:00:00.000".into());
    m.insert("disallowed".into(), "F".into());
    m.insert("enabled".into(), "T".into());
    m.insert("id".into(), a.id.clone().into());
    m.insert("lastUpdated".into(), "2026/12/07 09:00:00.000".into());
    match &a.owner {
        AssignOwner::Group(g) => {
            let uuid = st.groups.get(g).map(|g| g.uuid.clone()).unwrap_or_default();
            m.insert("ownerGroupId".into(), uuid.into());
            m.insert("ownerGroupName".into(), g.clone().into());
        }
        AssignOwner::Assignment(id) => {
            m.insert("ownerAttributeAssignId".into(), id.clone().into());
        }
    }
    if !a.values.is_empty() {
        let values: Vec<Value> = a
            .values
            .iter()
            .map(|v| json!({"id": hex_id(&format!("{}={v}", a.id)), "valueSystem": v}))
            .collect();
        m.insert("wsAttributeAssignValues".into(), values.into());
    }
    Value::Object(m)
}

fn readable(st: &State, a: &AttributeAssign) -> bool {
    st.attribute_names
        .get(&a.name)
        .is_some_and(|n| !st.attr_read_denied.contains(&n.def))
}

fn name_list(v: Option<&Value>, key: &str) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|l| l.get(key).and_then(Value::as_str))
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn get_attribute_assignments(cx: &mut Ctx, inner: &Value) -> SimResponse {
    let op = Operation::GetAttributeAssignments;
    let kind = inner
        .get("attributeAssignType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.is_empty() {
        return invalid_query(cx, op, "attributeAssignType is required");
    }
    if kind != "group" {
        let msg = format!(
            "this simulator reads assignments of attributeAssignType group only, not {kind}"
        );
        return invalid_query(cx, op, &msg);
    }
    let groups = name_list(inner.get("wsOwnerGroupLookups"), "groupName");
    let names = name_list(inner.get("wsAttributeDefNameLookups"), "name");
    if groups.is_empty() && names.is_empty() {
        return invalid_query(
            cx,
            op,
            "You need to pass in an owner lookup or an attributeDefName lookup",
        );
    }
    if let Some(g) = groups.iter().find(|g| !cx.st.groups.contains_key(*g)) {
        let msg = format!("edu.internet2.middleware.grouper.exception.GroupNotFoundException: Cant find group: '{g}'");
        return invalid_query(cx, op, &msg);
    }
    if let Some(n) = names
        .iter()
        .find(|n| !cx.st.attribute_names.contains_key(*n))
    {
        let msg = format!("edu.internet2.middleware.grouper.exception.AttributeDefNameNotFoundException: Cant find attributeDefName by name: '{n}'");
        return invalid_query(cx, op, &msg);
    }
    let on_assignments = t_or_f(inner.get("includeAssignmentsOnAssignments")).unwrap_or(false);
    let st = &*cx.st;
    let mut found: Vec<&AttributeAssign> = st
        .assigns
        .iter()
        .filter(|a| match &a.owner {
            AssignOwner::Group(g) => groups.is_empty() || groups.contains(g),
            AssignOwner::Assignment(_) => false,
        })
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .filter(|a| readable(st, a))
        .collect();
    if on_assignments {
        let owners: BTreeSet<String> = found.iter().map(|a| a.id.clone()).collect();
        found.extend(st.assigns.iter().filter(|a| {
            matches!(&a.owner, AssignOwner::Assignment(o) if owners.contains(o)) && readable(st, a)
        }));
    }
    let assigns: Vec<Value> = found.iter().map(|a| assign_json(st, a)).collect();
    let mut out = Map::new();
    out.insert(
        "resultMetadata".into(),
        meta(
            "SUCCESS",
            true,
            Some(format!(", Found {} results.", assigns.len())),
        ),
    );
    if !assigns.is_empty() {
        out.insert("wsAttributeAssigns".into(), assigns.into());
        let owner_groups: BTreeSet<&String> = found
            .iter()
            .filter_map(|a| match &a.owner {
                AssignOwner::Group(g) => Some(g),
                AssignOwner::Assignment(_) => None,
            })
            .collect();
        let ws_groups: Vec<Value> = owner_groups
            .iter()
            .filter_map(|g| st.groups.get(*g))
            .map(|g| group_json(g, cx.legacy))
            .collect();
        out.insert("wsGroups".into(), ws_groups.into());
    }
    response(200, root_for(op), out, cx.st, "SUCCESS", true)
}

/// One batch entry against `assigns` (the batch's working copy): its result row and the
/// assignment the entry made or found (for later entries' `batchIndex`).
fn assign_one(
    cx: &Ctx,
    assigns: &mut Vec<AttributeAssign>,
    earlier: &[Option<String>],
    entry: &Value,
    next_id: &mut dyn FnMut() -> String,
) -> (Value, Option<String>) {
    let row = |code: &str, message: String| {
        json!({"changed": "F", "deleted": "F", "valuesChanged": "F",
               "resultMetadata": meta(code, false, Some(message))})
    };
    let st = &*cx.st;
    let kind = entry
        .get("attributeAssignType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let owner = match kind {
        "group" => {
            let g = entry
                .get("wsOwnerGroupLookup")
                .and_then(|l| l.get("groupName"))
                .and_then(Value::as_str)
                .unwrap_or("");
            match st.groups.get(g) {
                None => return (row("INVALID_QUERY", format!("edu.internet2.middleware.grouper.exception.GroupNotFoundException: Cant find group: '{g}'")), None),
                Some(group) if group.update_denied => {
                    let msg = format!("edu.internet2.middleware.grouper.exception.InsufficientPrivilegeException: Subject {} cannot GROUP_ATTR_UPDATE on group '{g}'", st.config.user);
                    return (row("INSUFFICIENT_PRIVILEGES", msg), None);
                }
                Some(_) => AssignOwner::Group(g.to_string()),
            }
        }
        "group_asgn" => {
            let lookup = entry.get("wsOwnerAttributeAssignLookup");
            let by_index = lookup
                .and_then(|l| l.get("batchIndex"))
                .and_then(Value::as_str)
                .and_then(|i| i.parse::<usize>().ok());
            let by_uuid = lookup.and_then(|l| l.get("uuid")).and_then(Value::as_str);
            let id = match (by_index, by_uuid) {
                (Some(i), _) => earlier.get(i).cloned().flatten(),
                (None, Some(u)) => Some(u.to_string()),
                (None, None) => None,
            };
            match id.filter(|id| assigns.iter().any(|a| a.id == *id)) {
                Some(id) => AssignOwner::Assignment(id),
                None => return (
                    row(
                        "INVALID_QUERY",
                        "Cant find the owner attribute assignment (wsOwnerAttributeAssignLookup)"
                            .into(),
                    ),
                    None,
                ),
            }
        }
        other => {
            let msg = format!("this simulator assigns attributeAssignType group and group_asgn only, not {other:?}");
            return (row("INVALID_QUERY", msg), None);
        }
    };
    let name = entry
        .get("wsAttributeDefNameLookup")
        .and_then(|l| l.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(attr) = st.attribute_names.get(name) else {
        let msg = format!("edu.internet2.middleware.grouper.exception.AttributeDefNameNotFoundException: Cant find attributeDefName by name: '{name}'");
        return (row("INVALID_QUERY", msg), None);
    };
    let fits = match attr.assign_to {
        AssignTo::Group => kind == "group",
        AssignTo::GroupAssignment => kind == "group_asgn",
    };
    if !fits {
        let msg = format!(
            "java.lang.RuntimeException: attributeDef {} cannot be assigned to {kind}",
            attr.def
        );
        return (row("EXCEPTION", msg), None);
    }
    if st.attr_update_denied.contains(&attr.def) {
        let msg = format!("edu.internet2.middleware.grouper.exception.InsufficientPrivilegeException: Subject {} cannot ATTR_UPDATE attributeDef {}", st.config.user, attr.def);
        return (row("INSUFFICIENT_PRIVILEGES", msg), None);
    }
    let values: Vec<String> = entry
        .get("values")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.get("valueSystem").and_then(Value::as_str))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let value_op = entry
        .get("attributeAssignValueOperation")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !values.is_empty() && attr.value_type.is_none() {
        let msg = format!(
            "java.lang.RuntimeException: attributeDef {} has no values (valueType marker)",
            attr.def
        );
        return (row("EXCEPTION", msg), None);
    }
    if values.len() > 1 && !attr.multi_assignable {
        let msg = format!(
            "java.lang.RuntimeException: attributeDef {} is single valued",
            attr.def
        );
        return (row("EXCEPTION", msg), None);
    }
    if !values.is_empty() && !matches!(value_op, "assign_value" | "add_value") {
        let msg = format!("Invalid attributeAssignValueOperation: {value_op:?}");
        return (row("INVALID_QUERY", msg), None);
    }
    let existing = assigns
        .iter()
        .position(|a| a.name == name && a.owner == owner);
    let operation = entry
        .get("attributeAssignOperation")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (at, changed, deleted) = match operation {
        "add_attr" if existing.is_some() && !attr.multi_assignable => {
            let msg = format!("java.lang.RuntimeException: attributeDef {} is not multi-assignable and is already assigned", attr.def);
            return (row("EXCEPTION", msg), None);
        }
        "assign_attr" if existing.is_some() => (existing, false, false),
        "add_attr" | "assign_attr" => {
            assigns.push(AttributeAssign {
                id: next_id(),
                name: name.to_string(),
                owner: owner.clone(),
                values: vec![],
            });
            (Some(assigns.len() - 1), true, false)
        }
        "remove_attr" => {
            let before = assigns.len();
            assigns.retain(|a| !(a.name == name && a.owner == owner));
            (None, false, assigns.len() != before)
        }
        other => {
            let msg = format!("Invalid attributeAssignOperation: {other:?}");
            return (row("INVALID_QUERY", msg), None);
        }
    };
    let mut values_changed = false;
    if let Some(i) = at {
        if !values.is_empty() && assigns[i].values != values {
            assigns[i].values = values;
            values_changed = true;
        }
    }
    let tf = |b: bool| if b { "T" } else { "F" };
    let mut out = json!({
        "changed": tf(changed),
        "deleted": tf(deleted),
        "valuesChanged": tf(values_changed),
        "resultMetadata": meta("SUCCESS", true, Some(", Found 1 results.".into())),
    });
    let id = at.map(|i| assigns[i].id.clone());
    if let Some(i) = at {
        out["wsAttributeAssigns"] = json!([assign_json(st, &assigns[i])]);
    }
    (out, id)
}

pub(super) fn assign_attributes_batch(cx: &mut Ctx, inner: &Value) -> SimResponse {
    let op = Operation::AssignAttributesBatch;
    let entries = inner
        .get("wsAssignAttributeBatchEntries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return invalid_query(cx, op, "wsAssignAttributeBatchEntries is required");
    }
    let tx = inner
        .get("txType")
        .and_then(Value::as_str)
        .unwrap_or("NONE")
        .to_ascii_uppercase();
    if !["", "NONE", "READ_WRITE_NEW", "READ_WRITE_OR_USE_EXISTING"].contains(&tx.as_str()) {
        return invalid_query(cx, op, &format!("Invalid txType: {tx}"));
    }
    let atomic = tx.starts_with("READ_WRITE");
    let mut assigns = cx.st.assigns.clone();
    let mut count = cx.st.assign_count;
    let mut rows = Vec::new();
    let mut made: Vec<Option<String>> = Vec::new();
    for entry in &entries {
        let mut next_id = || {
            count += 1;
            hex_id(&format!("attribute-assign-{count}"))
        };
        let (row, id) = assign_one(cx, &mut assigns, &made, entry, &mut next_id);
        rows.push(row);
        made.push(id);
    }
    let failed = rows
        .iter()
        .filter(|r| r["resultMetadata"]["success"] != "T")
        .count();
    if failed > 0 && atomic {
        // The transaction rolls back: nothing is kept, and the entries that had worked say so.
        for row in rows
            .iter_mut()
            .filter(|r| r["resultMetadata"]["success"] == "T")
        {
            *row = json!({"changed": "F", "deleted": "F", "valuesChanged": "F",
                "resultMetadata": meta("TRANSACTION_ROLLED_BACK", false,
                    Some("in a transaction, but another entry had a problem".into()))});
        }
    } else {
        cx.st.assigns = assigns;
        cx.st.assign_count = count;
    }
    let (status, code) = if failed == 0 {
        (200, "SUCCESS")
    } else {
        (500, "PROBLEM_WITH_ASSIGNMENT")
    };
    let mut out = Map::new();
    let text = format!(
        "Success for: clientVersion: {}.{}.{}, wsAssignAttributeBatchEntries: {} entries, {failed} failed",
        cx.client_version.0,
        cx.client_version.1,
        cx.client_version.2,
        rows.len()
    );
    out.insert("resultMetadata".into(), meta(code, failed == 0, Some(text)));
    out.insert("wsAssignAttributeBatchResultArray".into(), rows.into());
    response(status, root_for(op), out, cx.st, code, failed == 0)
}
