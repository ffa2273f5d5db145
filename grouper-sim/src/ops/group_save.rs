//! groupSave: creating and updating groups (grouper-ws.md §13).

use super::*;

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

pub(super) fn group_save(cx: &mut Ctx, inner: &Value) -> SimResponse {
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
