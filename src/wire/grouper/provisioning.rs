//! A group's provisioning marks (docs/grouper-attributes.md): which provisioners the group is
//! marked for (getAttributeAssignments) and marking it for one more (assignAttributesBatch, in
//! one transaction: the marker and its two values, or nothing).

use super::{envelope, gerr, is_true, parse_body, short_message, str_field, Connection};
use crate::error::{ErrorKind, SyncError};
use crate::wire::http::{Method, Request, Response};
use serde_json::{json, Value};

/// The marker (multi-assignable: one per provisioner) and the values on a marker's assignment.
pub const MARKER: &str = "etc:provisioning:provisioningMarker";
pub const TARGET: &str = "etc:provisioning:provisioningTarget";
pub const DO_PROVISION: &str = "etc:provisioning:provisioningDoProvision";

/// One marker on the group, with the values on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// `provisioningTarget`: the provisioner's id.
    pub target: Option<String>,
    /// `provisioningDoProvision`: the provisioner's id when it should provision.
    pub do_provision: Option<String>,
}

/// How a group stands with one provisioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkState {
    /// A marker names it, and its `provisioningDoProvision` names it too.
    Provisioned,
    /// A marker names it, but `provisioningDoProvision` does not: someone switched it off, and
    /// the sync leaves that alone.
    SwitchedOff,
    /// No marker the Grouper user can read names it.
    Missing,
}

pub fn mark_state(markers: &[Marker], provisioner: &str) -> MarkState {
    let named = |v: &Option<String>| v.as_deref() == Some(provisioner);
    let mut state = MarkState::Missing;
    for m in markers.iter().filter(|m| named(&m.target)) {
        if named(&m.do_provision) {
            return MarkState::Provisioned;
        }
        state = MarkState::SwitchedOff;
    }
    state
}

fn url(conn: &Connection) -> String {
    format!("{}/attributeAssignments", conn.base_url)
}

/// The group's markers, with the assignments on them (their values).
pub fn read_request(conn: &Connection, group: &str) -> Request {
    conn.post_json(
        Method::Post,
        url(conn),
        &json!({"WsRestGetAttributeAssignmentsRequest": {
            "attributeAssignType": "group",
            "wsOwnerGroupLookups": [{"groupName": group}],
            "wsAttributeDefNameLookups": [{"name": MARKER}],
            "includeAssignmentsOnAssignments": "T",
        }}),
    )
}

/// The error for a top-level or row failure of an attribute operation.
fn failure(what: &str, status: u16, meta: &Value) -> SyncError {
    let code = str_field(meta, "resultCode");
    let message = str_field(meta, "resultMessage");
    let (kind, why) = if message.contains("AttributeDefNameNotFoundException") {
        (
            ErrorKind::Config,
            format!("this Grouper has no {MARKER} (the provisioning framework of Grouper 2.6+): provision_to cannot work here"),
        )
    } else if message.contains("GroupNotFoundException") || code == "GROUP_NOT_FOUND" {
        (
            ErrorKind::GroupNotFound,
            "the group does not exist or the Grouper user cannot view it".into(),
        )
    } else if code == "INSUFFICIENT_PRIVILEGES" || message.contains("InsufficientPrivilege") {
        (
            ErrorKind::GrouperForbidden,
            format!(
                "the Grouper user may not assign the provisioning attributes: it needs ATTR_UPDATE on \
                 the group and on etc:provisioning:provisioningDef and provisioningValueDef ({})",
                short_message(meta)
            ),
        )
    } else {
        (
            ErrorKind::GrouperBadAnswer,
            format!("HTTP {status}, {code}: {}", short_message(meta)),
        )
    };
    SyncError::new(kind, format!("{what}: {why}"))
}

/// Parses the markers of [`read_request`]. Assignments the Grouper user cannot read are left out
/// by Grouper itself, so a marker that is missing here may exist unseen.
pub fn parse_read(group: &str, resp: &Response) -> Result<Vec<Marker>, SyncError> {
    let what = format!("reading the provisioning marks of {group}");
    let body = parse_body(&what, resp)?;
    let env = envelope(&what, resp, &body, "WsGetAttributeAssignmentsResults")?;
    let top = env.get("resultMetadata").cloned().unwrap_or(Value::Null);
    if !(is_true(&top) && str_field(&top, "resultCode") == "SUCCESS") {
        return Err(failure(&what, resp.status, &top));
    }
    let assigns = env
        .get("wsAttributeAssigns")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let enabled = |a: &&Value| str_field(a, "enabled") != "F";
    let mut markers = Vec::new();
    for marker in assigns.iter().filter(enabled).filter(|a| {
        str_field(a, "attributeAssignType") == "group"
            && str_field(a, "attributeDefNameName") == MARKER
    }) {
        let owner = str_field(marker, "ownerGroupName");
        if owner != group {
            return gerr(
                ErrorKind::GrouperBadAnswer,
                format!("{what}: Grouper answered with a marker of another group ({owner})"),
            );
        }
        let id = str_field(marker, "id");
        if id.is_empty() {
            return gerr(
                ErrorKind::GrouperBadAnswer,
                format!("{what}: a marker without an id"),
            );
        }
        let value = |name: &str| {
            assigns
                .iter()
                .filter(enabled)
                .find(|a| {
                    str_field(a, "attributeAssignType") == "group_asgn"
                        && str_field(a, "ownerAttributeAssignId") == id
                        && str_field(a, "attributeDefNameName") == name
                })
                .and_then(|a| a.get("wsAttributeAssignValues"))
                .and_then(Value::as_array)
                .and_then(|vs| vs.first())
                .map(|v| str_field(v, "valueSystem").to_string())
                .filter(|v| !v.is_empty())
        };
        markers.push(Marker {
            target: value(TARGET),
            do_provision: value(DO_PROVISION),
        });
    }
    Ok(markers)
}

/// One value entry on the marker that entry 0 of the batch adds.
fn value_entry(name: &str, value: &str) -> Value {
    json!({
        "attributeAssignType": "group_asgn",
        "attributeAssignOperation": "assign_attr",
        "wsOwnerAttributeAssignLookup": {"batchIndex": "0"},
        "wsAttributeDefNameLookup": {"name": name},
        "attributeAssignValueOperation": "assign_value",
        "values": [{"valueSystem": value}],
    })
}

/// Marks the group for `provisioner`: a new marker (`add_attr`: markers are multi-assignable, and
/// `assign_attr` would reuse another provisioner's marker) with `provisioningTarget` and
/// `provisioningDoProvision`, in one transaction.
pub fn mark_request(conn: &Connection, group: &str, provisioner: &str) -> Request {
    conn.post_json(
        Method::Post,
        url(conn),
        &json!({"WsRestAssignAttributesBatchRequest": {
            "txType": "READ_WRITE_NEW",
            "wsAssignAttributeBatchEntries": [
                {
                    "attributeAssignType": "group",
                    "attributeAssignOperation": "add_attr",
                    "wsOwnerGroupLookup": {"groupName": group},
                    "wsAttributeDefNameLookup": {"name": MARKER},
                },
                value_entry(TARGET, provisioner),
                value_entry(DO_PROVISION, provisioner),
            ],
        }}),
    )
}

/// Parses the answer to [`mark_request`]: every one of the three rows must have succeeded.
pub fn parse_mark(group: &str, provisioner: &str, resp: &Response) -> Result<(), SyncError> {
    let what = format!("marking {group} for the provisioner {provisioner}");
    let body = parse_body(&what, resp)?;
    let env = envelope(&what, resp, &body, "WsAssignAttributesBatchResults")?;
    let top = env.get("resultMetadata").cloned().unwrap_or(Value::Null);
    let rows = env
        .get("wsAssignAttributeBatchResultArray")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let row_meta = |r: &Value| r.get("resultMetadata").cloned().unwrap_or(Value::Null);
    // The row that failed says why; rows rolled back with it do not.
    if let Some(failed) = rows
        .iter()
        .map(row_meta)
        .find(|m| !is_true(m) && str_field(m, "resultCode") != "TRANSACTION_ROLLED_BACK")
    {
        return Err(failure(&what, resp.status, &failed));
    }
    if rows.len() != 3 {
        return Err(if is_true(&top) {
            SyncError::new(
                ErrorKind::GrouperBadAnswer,
                format!(
                    "{what}: sent 3 entries but Grouper answered {} rows",
                    rows.len()
                ),
            )
        } else {
            failure(&what, resp.status, &top)
        });
    }
    if !(is_true(&top) && rows.iter().map(row_meta).all(|m| is_true(&m))) {
        return Err(failure(&what, resp.status, &top));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
