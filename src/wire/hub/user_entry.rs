//! One user of `GET /users` (or `GET /users/{name}`), read straight into the fields the sync
//! keeps. A page is 200 such entries and a large hub lists hundreds of pages each pass: building
//! a JSON tree of every entry (its roles, scopes, servers, auth_state…) only to take six fields
//! out of it was most of a warm pass's time in the component.

use super::{bad_answer, Keep, ListedUser};
use crate::error::{ErrorKind, SyncError};
use crate::wire::http::truncate;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// The fields read; every other one is skipped without being built. A field whose meaning
/// depends on its type stays raw until it is needed.
#[derive(Deserialize)]
struct Entry<'a> {
    name: Option<String>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    admin: Option<&'a RawValue>,
    #[serde(borrow)]
    created: Option<&'a RawValue>,
    #[serde(borrow)]
    last_activity: Option<&'a RawValue>,
    #[serde(borrow)]
    user_info: Option<&'a RawValue>,
    #[serde(borrow)]
    groups: Option<&'a RawValue>,
    /// `Some` whenever the key is there, `null` included: a list without the key tells nothing.
    #[serde(borrow, default, deserialize_with = "present")]
    server: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    servers: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A JSON string's text, borrowed unless it has escapes; `None` for any other JSON value.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let json = raw.get();
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        match serde_json::from_slice(json.as_bytes()) {
            Ok(Value::String(s)) => Some(Cow::Owned(s)),
            _ => None,
        }
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn timestamp(raw: Option<&RawValue>) -> Option<i64> {
    crate::wire::timestamp::parse_iso8601_micros(&text(raw?)?)
}

/// A field kept whole, as JSON.
fn json(raw: &RawValue, field: &str, name: &str) -> Result<Value, SyncError> {
    serde_json::from_slice(raw.get().as_bytes())
        .map_err(|e| bad_answer(format!("the {field} of user {name:?}: {e}")))
}

/// Parses one entry; `item` is its JSON text, quoted (shortened) in the errors.
pub(super) fn parse(item: &RawValue, keep: Keep) -> Result<ListedUser, SyncError> {
    let quoted = || truncate(item.get(), 120);
    // (a struct would also read a JSON array)
    if !item.get().starts_with('{') {
        return Err(bad_answer(format!(
            "user list entry is not an object: {}",
            quoted()
        )));
    }
    let entry: Entry = serde_json::from_slice(item.get().as_bytes())
        .map_err(|e| bad_answer(format!("user list entry {} is malformed ({e})", quoted())))?;
    let name = entry
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad_answer(format!("user list entry without a name: {}", quoted())))?;
    // `kind` is "user" in JupyterHub >= 2; anything else in /users would be a surprise.
    if let Some(kind) = entry.kind.filter(|k| k != "user") {
        return Err(bad_answer(format!(
            "user list entry {name:?} has kind {kind:?}"
        )));
    }
    let admin = match entry.admin.map(RawValue::get) {
        None | Some("null" | "false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_answer(format!(
                "user {name:?} has a non-boolean admin field: {}",
                truncate(other, 60)
            )))
        }
    };
    let groups =
        match (keep.groups, entry.groups) {
            (false, _) => Vec::new(),
            (true, Some(raw)) if raw.get().starts_with('[') => json(raw, "groups", &name)?
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|g| match g {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            (true, _) => return Err(SyncError::new(
                ErrorKind::HubForbidden,
                "listing hub users: the list carries no groups, so the token cannot read them; \
                 give the service's role read:users:groups (or read:users)",
            )
            .with_scope("read:users:groups")),
        };
    let server_running = keep.servers
        && match (entry.server, entry.servers) {
            (Some(server), _) if server.get().starts_with('"') => true,
            (_, Some(servers)) if servers.get().starts_with('{') => {
                json(servers, "servers", &name)?
                    .as_object()
                    .is_some_and(|servers| !servers.is_empty())
            }
            (None, None) => {
                return Err(SyncError::new(
                    ErrorKind::HubForbidden,
                    "listing hub users: the list carries no server fields, so only_active_servers cannot tell who has one running; \
                     give the service's role read:users (and read:servers for named servers)",
                )
                .with_scope("read:users"))
            }
            _ => false,
        };
    let user_info = match entry.user_info {
        Some(raw) if keep.user_info && raw.get().starts_with('{') => {
            Some(json(raw, "user_info", &name)?)
        }
        _ => None,
    };
    Ok(ListedUser {
        created: timestamp(entry.created),
        last_activity: timestamp(entry.last_activity),
        name,
        server_running,
        admin,
        user_info,
        groups,
    })
}
