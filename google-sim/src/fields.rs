//! The Groups Settings API's group resource: its fields and the values each takes
//! (developers.google.com, "Groups Settings API reference: groups"). Booleans are the strings
//! `"true"` and `"false"`.

use serde_json::{json, Map, Value};

pub enum Values {
    OneOf(&'static [&'static str]),
    Bool,
    Text,
    /// Set by Google (`kind`, `email`): a PATCH may carry it, nothing changes.
    ReadOnly,
}

const MODERATORS: &[&str] = &["ALL_MEMBERS", "OWNERS_AND_MANAGERS", "OWNERS_ONLY", "NONE"];

pub const FIELDS: &[(&str, Values)] = &[
    ("kind", Values::ReadOnly),
    ("email", Values::ReadOnly),
    ("name", Values::Text),
    ("description", Values::Text),
    (
        "whoCanJoin",
        Values::OneOf(&[
            "ANYONE_CAN_JOIN",
            "ALL_IN_DOMAIN_CAN_JOIN",
            "INVITED_CAN_JOIN",
            "CAN_REQUEST_TO_JOIN",
        ]),
    ),
    (
        "whoCanViewMembership",
        Values::OneOf(&[
            "ALL_IN_DOMAIN_CAN_VIEW",
            "ALL_MEMBERS_CAN_VIEW",
            "ALL_MANAGERS_CAN_VIEW",
            "ALL_OWNERS_CAN_VIEW",
        ]),
    ),
    (
        "whoCanViewGroup",
        Values::OneOf(&[
            "ANYONE_CAN_VIEW",
            "ALL_IN_DOMAIN_CAN_VIEW",
            "ALL_MEMBERS_CAN_VIEW",
            "ALL_MANAGERS_CAN_VIEW",
            "ALL_OWNERS_CAN_VIEW",
        ]),
    ),
    ("allowExternalMembers", Values::Bool),
    (
        "whoCanPostMessage",
        Values::OneOf(&[
            "NONE_CAN_POST",
            "ALL_MANAGERS_CAN_POST",
            "ALL_MEMBERS_CAN_POST",
            "ALL_OWNERS_CAN_POST",
            "ALL_IN_DOMAIN_CAN_POST",
            "ANYONE_CAN_POST",
        ]),
    ),
    ("allowWebPosting", Values::Bool),
    ("primaryLanguage", Values::Text),
    ("isArchived", Values::Bool),
    ("archiveOnly", Values::Bool),
    (
        "messageModerationLevel",
        Values::OneOf(&[
            "MODERATE_ALL_MESSAGES",
            "MODERATE_NON_MEMBERS",
            "MODERATE_NEW_MEMBERS",
            "MODERATE_NONE",
        ]),
    ),
    (
        "spamModerationLevel",
        Values::OneOf(&["ALLOW", "MODERATE", "SILENTLY_MODERATE", "REJECT"]),
    ),
    (
        "replyTo",
        Values::OneOf(&[
            "REPLY_TO_CUSTOM",
            "REPLY_TO_SENDER",
            "REPLY_TO_LIST",
            "REPLY_TO_OWNER",
            "REPLY_TO_IGNORE",
            "REPLY_TO_MANAGERS",
        ]),
    ),
    ("customReplyTo", Values::Text),
    ("includeCustomFooter", Values::Bool),
    ("customFooterText", Values::Text),
    ("sendMessageDenyNotification", Values::Bool),
    ("defaultMessageDenyNotificationText", Values::Text),
    ("membersCanPostAsTheGroup", Values::Bool),
    ("includeInGlobalAddressList", Values::Bool),
    (
        "whoCanLeaveGroup",
        Values::OneOf(&[
            "ALL_MANAGERS_CAN_LEAVE",
            "ALL_MEMBERS_CAN_LEAVE",
            "NONE_CAN_LEAVE",
        ]),
    ),
    (
        "whoCanContactOwner",
        Values::OneOf(&[
            "ALL_IN_DOMAIN_CAN_CONTACT",
            "ALL_MANAGERS_CAN_CONTACT",
            "ALL_MEMBERS_CAN_CONTACT",
            "ANYONE_CAN_CONTACT",
        ]),
    ),
    (
        "whoCanDiscoverGroup",
        Values::OneOf(&[
            "ANYONE_CAN_DISCOVER",
            "ALL_IN_DOMAIN_CAN_DISCOVER",
            "ALL_MEMBERS_CAN_DISCOVER",
        ]),
    ),
    ("whoCanModerateMembers", Values::OneOf(MODERATORS)),
    ("whoCanModerateContent", Values::OneOf(MODERATORS)),
    ("whoCanAssistContent", Values::OneOf(MODERATORS)),
    ("enableCollaborativeInbox", Values::Bool),
    ("defaultSender", Values::OneOf(&["DEFAULT_SELF", "GROUP"])),
];

pub(crate) fn read_only(field: &str) -> bool {
    FIELDS
        .iter()
        .any(|(f, v)| *f == field && matches!(v, Values::ReadOnly))
}

/// Is `value` one Google takes for `field`? Unknown fields and values are refused.
pub(crate) fn check(field: &str, value: &Value) -> Result<(), String> {
    let Some((_, values)) = FIELDS.iter().find(|(f, _)| *f == field) else {
        return Err(format!("Invalid field selection {field}"));
    };
    let Some(text) = value.as_str() else {
        return Err(format!("Invalid value for {field}: a string"));
    };
    let ok = match values {
        Values::OneOf(allowed) => allowed.contains(&text),
        Values::Bool => matches!(text, "true" | "false"),
        Values::Text | Values::ReadOnly => true,
    };
    if ok {
        Ok(())
    } else {
        Err("Invalid Value".into())
    }
}

/// A newly provisioned group's settings (what Google's defaults make of it).
pub fn default_settings(email: &str) -> Map<String, Value> {
    let name = email.split('@').next().unwrap_or(email);
    let v = json!({
        "kind": "groupsSettings#groups",
        "email": email,
        "name": name,
        "description": "",
        "whoCanJoin": "CAN_REQUEST_TO_JOIN",
        "whoCanViewMembership": "ALL_MEMBERS_CAN_VIEW",
        "whoCanViewGroup": "ALL_MEMBERS_CAN_VIEW",
        "allowExternalMembers": "false",
        "whoCanPostMessage": "ANYONE_CAN_POST",
        "allowWebPosting": "true",
        "primaryLanguage": "en_US",
        "isArchived": "false",
        "archiveOnly": "false",
        "messageModerationLevel": "MODERATE_NONE",
        "spamModerationLevel": "MODERATE",
        "replyTo": "REPLY_TO_IGNORE",
        "customReplyTo": "",
        "includeCustomFooter": "false",
        "customFooterText": "",
        "sendMessageDenyNotification": "false",
        "defaultMessageDenyNotificationText": "",
        "membersCanPostAsTheGroup": "false",
        "includeInGlobalAddressList": "true",
        "whoCanLeaveGroup": "ALL_MEMBERS_CAN_LEAVE",
        "whoCanContactOwner": "ANYONE_CAN_CONTACT",
        "whoCanDiscoverGroup": "ALL_IN_DOMAIN_CAN_DISCOVER",
        "whoCanModerateMembers": "OWNERS_AND_MANAGERS",
        "whoCanModerateContent": "OWNERS_AND_MANAGERS",
        "whoCanAssistContent": "OWNERS_AND_MANAGERS",
        "enableCollaborativeInbox": "false",
        "defaultSender": "DEFAULT_SELF",
    });
    v.as_object().cloned().unwrap_or_default()
}
