//! Google's side of a target: the service account the sync acts as, and the Google Group a
//! target's group is provisioned to with the settings it keeps.

use crate::error::SyncError;
use crate::model::HttpUrl;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use serde_json::Value;
use std::collections::BTreeMap;

/// The fields of the Groups Settings API's group resource a PATCH may set (the reference's
/// writable fields; `kind` and `email` are Google's). Values are Google's to judge.
pub const WRITABLE_FIELDS: &[&str] = &[
    "name",
    "description",
    "whoCanJoin",
    "whoCanViewMembership",
    "whoCanViewGroup",
    "allowExternalMembers",
    "whoCanPostMessage",
    "allowWebPosting",
    "primaryLanguage",
    "isArchived",
    "archiveOnly",
    "messageModerationLevel",
    "spamModerationLevel",
    "replyTo",
    "customReplyTo",
    "includeCustomFooter",
    "customFooterText",
    "sendMessageDenyNotification",
    "defaultMessageDenyNotificationText",
    "membersCanPostAsTheGroup",
    "includeInGlobalAddressList",
    "whoCanLeaveGroup",
    "whoCanContactOwner",
    "whoCanDiscoverGroup",
    "whoCanModerateMembers",
    "whoCanModerateContent",
    "whoCanAssistContent",
    "enableCollaborativeInbox",
    "defaultSender",
];

/// A service account's key file, as far as the sync uses it. Debug shows no key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: Option<String>,
    /// Where the assertion is exchanged (an http(s) URL, checked).
    pub token_uri: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServiceAccountKey({}, token_uri {})",
            self.client_email, self.token_uri
        )
    }
}

impl PartialEq for ServiceAccountKey {
    fn eq(&self, other: &Self) -> bool {
        self.client_email == other.client_email
            && self.private_key_id == other.private_key_id
            && self.token_uri == other.token_uri
    }
}

fn config<T>(msg: impl Into<String>) -> Result<T, SyncError> {
    Err(SyncError::config(msg))
}

impl ServiceAccountKey {
    /// Reads the key file's JSON (`type` `service_account`, `client_email`, `private_key` as
    /// PKCS#8 PEM, `token_uri`). Errors never quote the key.
    pub fn parse(json_text: &str) -> Result<ServiceAccountKey, SyncError> {
        const WHAT: &str = "google_service_account_key";
        let Ok(Value::Object(v)) = serde_json::from_str::<Value>(json_text) else {
            return config(format!(
                "{WHAT} must be the service account's key file (JSON)"
            ));
        };
        let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        if field("type") != Some("service_account") {
            return config(format!("{WHAT}: \"type\" must be \"service_account\" (a key file of a service account, not an OAuth client)"));
        }
        let Some(client_email) = field("client_email") else {
            return config(format!("{WHAT}: no client_email"));
        };
        let Some(pem) = field("private_key") else {
            return config(format!("{WHAT}: no private_key"));
        };
        let Ok(key) = RsaPrivateKey::from_pkcs8_pem(pem) else {
            return config(format!(
                "{WHAT}: private_key is not a PKCS#8 RSA key in PEM"
            ));
        };
        let token_uri = field("token_uri").unwrap_or("https://oauth2.googleapis.com/token");
        if HttpUrl::parse(token_uri).is_err() || token_uri.contains(['?', '#']) {
            return config(format!(
                "{WHAT}: token_uri {token_uri:?} is not an http(s) URL"
            ));
        }
        Ok(ServiceAccountKey {
            client_email: client_email.to_string(),
            private_key_id: field("private_key_id").map(String::from),
            token_uri: token_uri.to_string(),
            key,
        })
    }

    /// The RSA key, for signing.
    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }
}

/// The Google Group a to_grouper target's group is provisioned to, and the settings it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleGroupPolicy {
    /// An address, or a template of one: `{extension}` is the Grouper group's last name part.
    pub address: String,
    /// Groups Settings API fields and the values wanted.
    pub settings: BTreeMap<String, String>,
}

impl GoogleGroupPolicy {
    /// The group's address for this Grouper group.
    pub fn address_for(&self, group_path: &str) -> String {
        let extension = group_path.rsplit(':').next().unwrap_or(group_path);
        self.address.replace("{extension}", extension)
    }
}
