//! Google, as a service account with domain-wide delegation reaches it (docs/google.md): the
//! key file, the RS256-signed JWT exchanged at the key's `token_uri` (RFC 7523), and the Groups
//! Settings API's group resource (`GET` and `PATCH`, always `alt=json`: the API's historical
//! default is Atom). Strict parsers; every failure a typed error.

use crate::error::{ErrorKind, SyncError};
use crate::model::ServiceAccountKey;
use crate::wire::http::{encode_segment, truncate, Method, Request, Response};
use base64ct::{Base64UrlUnpadded, Encoding};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub use crate::model::google::WRITABLE_FIELDS;

/// The scope the sync asks for: the group settings, nothing else.
pub const SCOPE: &str = "https://www.googleapis.com/auth/apps.groups.settings";

/// The JWT-bearer assertion for `key`: RS256 over `header.claims`, `iat` now, `exp` an hour on.
pub fn assertion(key: &ServiceAccountKey, subject: &str, now: i64) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = kid.clone().into();
    }
    let claims = json!({
        "iss": key.client_email,
        "sub": subject,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
    );
    let signature =
        SigningKey::<sha2::Sha256>::new(key.private_key().clone()).sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        Base64UrlUnpadded::encode_string(&signature.to_bytes())
    )
}

/// An access token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(expires in {} s)", self.expires_in)
    }
}

pub fn token_request(key: &ServiceAccountKey, assertion: &str) -> Request {
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    );
    Request::new(Method::Post, key.token_uri.clone())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body.into_bytes())
}

fn json_body(resp: &Response) -> Option<Value> {
    serde_json::from_slice(&resp.body).ok()
}

/// The kind of a Google answer that is not a success.
fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::GoogleUnauthorized,
        403 => ErrorKind::GoogleForbidden,
        429 | 500..=599 => ErrorKind::GoogleUnavailable,
        _ => ErrorKind::GoogleBadAnswer,
    }
}

/// Parses the token endpoint's answer. Google answers a refused grant with `error` and
/// `error_description` (400 `invalid_grant`, 401 `unauthorized_client`).
pub fn parse_token(resp: &Response) -> Result<AccessToken, SyncError> {
    const WHAT: &str = "getting a Google access token";
    let body = json_body(resp);
    if resp.status == 200 {
        let token = body
            .as_ref()
            .and_then(|b| b["access_token"].as_str())
            .filter(|t| !t.is_empty());
        let expires_in = body.as_ref().and_then(|b| b["expires_in"].as_u64());
        return match (token, expires_in) {
            (Some(t), Some(e)) => Ok(AccessToken {
                token: t.to_string(),
                expires_in: e,
            }),
            _ => Err(SyncError::new(
                ErrorKind::GoogleBadAnswer,
                format!("{WHAT}: HTTP 200 without access_token and expires_in"),
            )),
        };
    }
    let error = body
        .as_ref()
        .and_then(|b| b["error"].as_str())
        .unwrap_or("")
        .to_string();
    let description = body
        .as_ref()
        .and_then(|b| b["error_description"].as_str())
        .map(|d| truncate(d, 300))
        .unwrap_or_else(|| truncate(String::from_utf8_lossy(&resp.body).trim(), 200));
    let (kind, hint) = match error.as_str() {
        "unauthorized_client" => (
            ErrorKind::GoogleForbidden,
            "the service account has no domain-wide delegation for the scope https://www.googleapis.com/auth/apps.groups.settings: a Workspace admin grants it (Security, API controls, Domain-wide delegation)",
        ),
        "invalid_grant" => (
            ErrorKind::GoogleUnauthorized,
            "check google_service_account_key (the key may be deleted or disabled), google_admin_subject (a Workspace admin's address) and the clock",
        ),
        _ => (status_kind(resp.status), ""),
    };
    let mut message = format!("{WHAT}: HTTP {}, {error}: {description}", resp.status);
    if !hint.is_empty() {
        message.push_str(&format!(" ({hint})"));
    }
    Err(SyncError::new(kind, message))
}

fn group_url(api: &str, email: &str) -> String {
    format!(
        "{}/groups/v1/groups/{}?alt=json",
        api.trim_end_matches('/'),
        encode_segment(email)
    )
}

pub fn get_settings_request(api: &str, email: &str, token: &AccessToken) -> Request {
    Request::new(Method::Get, group_url(api, email))
        .header("Authorization", format!("Bearer {}", token.token))
        .header("Accept", "application/json")
}

/// A PATCH of only these fields.
pub fn patch_settings_request(
    api: &str,
    email: &str,
    token: &AccessToken,
    fields: &BTreeMap<String, String>,
) -> Request {
    let body: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    Request::new(Method::Patch, group_url(api, email))
        .header("Authorization", format!("Bearer {}", token.token))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(Value::Object(body).to_string().into_bytes())
}

/// Parses the group resource: `None` when Google has no such group (404: not provisioned yet).
pub fn parse_settings(
    email: &str,
    resp: &Response,
) -> Result<Option<Map<String, Value>>, SyncError> {
    let what = format!("the Google Group settings of {email}");
    if resp.status == 404 {
        return Ok(None);
    }
    let body = json_body(resp);
    if resp.status != 200 {
        let message = body
            .as_ref()
            .and_then(|b| b["error"]["message"].as_str())
            .map(|m| truncate(m, 300))
            .unwrap_or_else(|| truncate(String::from_utf8_lossy(&resp.body).trim(), 200));
        let kind = match resp.status {
            400 => ErrorKind::Config,
            s => status_kind(s),
        };
        let hint = match resp.status {
            400 => " (a google_group_settings value Google does not take)",
            403 => " (the token lacks the scope, the Groups Settings API is not enabled in the service account's project, or google_admin_subject may not manage this group)",
            _ => "",
        };
        return Err(SyncError::new(
            kind,
            format!("{what}: HTTP {}: {message}{hint}", resp.status),
        ));
    }
    match body {
        Some(Value::Object(m))
            if m.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email)) =>
        {
            Ok(Some(m))
        }
        Some(Value::Object(_)) => Err(SyncError::new(
            ErrorKind::GoogleBadAnswer,
            format!("{what}: the answer is for another group"),
        )),
        _ => Err(SyncError::new(
            ErrorKind::GoogleBadAnswer,
            format!("{what}: HTTP 200 without a JSON group resource"),
        )),
    }
}

/// The fields of `wanted` whose current value differs (`true`/`false` compare without case).
pub fn differing(
    wanted: &BTreeMap<String, String>,
    current: &Map<String, Value>,
) -> BTreeMap<String, String> {
    let same = |have: &str, want: &str| {
        have == want || (matches!(have, "true" | "false") && have.eq_ignore_ascii_case(want))
    };
    wanted
        .iter()
        .filter(|(field, want)| {
            !current
                .get(*field)
                .and_then(Value::as_str)
                .is_some_and(|have| same(have, want))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
