//! The one error type of the sync: a kind that logs, metrics and HTTP statuses use, and a message
//! for people. The WIT mirrors it (`error-kind`, `sync-error`).

use crate::wire::http::TransportError;
use serde::Serialize;
use std::fmt;

/// The error kinds, written once: each with its doc and its name (the WIT's `error-kind`, the
/// label in logs and metrics). `error_kinds!(callback, args…)` hands the list to a macro, so the
/// enum below and the component's and host's conversions from and to the WIT are all made from it
/// (the compiler then checks that the WIT's enum has exactly these variants).
#[macro_export]
macro_rules! error_kinds {
    ($callback:ident $(, $arg:tt)*) => {
        $callback! { $($arg,)* [
            /// A setting is missing or invalid.
            (Config, "config"),
            /// The hub rejected the token itself.
            (HubUnauthorized, "hub-unauthorized"),
            /// The token is valid but lacks a scope (named in `missing_scope` when the hub says which).
            (HubForbidden, "hub-forbidden"),
            /// The hub could not be reached or answered 5xx/429.
            (HubUnavailable, "hub-unavailable"),
            /// The hub answered something that is not what its API promises.
            (HubBadAnswer, "hub-bad-answer"),
            /// The hub was read, but not completely (unread users, a listing shorter than its total).
            (HubIncomplete, "hub-incomplete"),
            /// Grouper (or the container in front of it) rejected the credentials.
            (GrouperUnauthorized, "grouper-unauthorized"),
            /// The Grouper user may not read or change the group.
            (GrouperForbidden, "grouper-forbidden"),
            /// Grouper could not be reached or answered without a Grouper answer (5xx, 429).
            (GrouperUnavailable, "grouper-unavailable"),
            /// Grouper answered something that cannot be trusted (malformed, a failed row, wrong group).
            (GrouperBadAnswer, "grouper-bad-answer"),
            /// The target group does not exist, or the Grouper user cannot see it.
            (GroupNotFound, "group-not-found"),
            /// Google refused the service account's credentials or token (a deleted or disabled
            /// key, an unknown admin subject, a clock far off).
            (GoogleUnauthorized, "google-unauthorized"),
            /// Google refused the request: no domain-wide delegation for the scope, the Groups
            /// Settings API not enabled, or the admin may not manage the group.
            (GoogleForbidden, "google-forbidden"),
            /// Google could not be reached, or answered 429 (rate limit) or 5xx.
            (GoogleUnavailable, "google-unavailable"),
            /// Google answered something its API does not promise.
            (GoogleBadAnswer, "google-bad-answer"),
            /// A request timed out.
            (Timeout, "timeout"),
            /// The TLS handshake failed: a certificate from an unknown CA, expired, or for another host.
            (Tls, "tls"),
            /// The host's egress policy refused a request.
            (EgressDenied, "egress-denied"),
            /// The pass ran past the host's deadline and was stopped.
            (Deadline, "deadline"),
            /// Anything else: a trap, a host failure, a bug.
            (Internal, "internal"),
        ] }
    };
}

/// Maps `value` between two enums with the variants of a list such as [`error_kinds!`]'s:
/// `error_kinds!(convert_variants, value, From, To)` with `From` and `To` enum names in scope.
#[macro_export]
macro_rules! convert_variants {
    ($value:expr, $from:ident, $to:ident, [$($(#[$doc:meta])* ($variant:ident, $name:literal)),* $(,)?]) => {
        match $value { $($from::$variant => $to::$variant,)* }
    };
}

macro_rules! define_error_kind {
    ([$($(#[$doc:meta])* ($variant:ident, $name:literal)),* $(,)?]) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub enum ErrorKind {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl ErrorKind {
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorKind::$variant => $name,)* }
            }
        }
    };
}

error_kinds!(define_error_kind);

impl ErrorKind {
    /// Did the pass fail because the hub or Grouper (or the way to them) failed, rather than
    /// because of its own settings or the runtime? The HTTP entry answers 502 for these.
    pub fn is_upstream(self) -> bool {
        !matches!(
            self,
            ErrorKind::Config | ErrorKind::Deadline | ErrorKind::Internal
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which service a request went to, for classifying transport failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Hub,
    Grouper,
    Google,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncError {
    pub kind: ErrorKind,
    pub message: String,
    /// For `hub-forbidden`: the scope(s) the hub said it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_scope: Option<String>,
}

impl SyncError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SyncError {
            kind,
            message: message.into(),
            missing_scope: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.missing_scope = Some(scope.into());
        self
    }

    /// A request to `service` that produced no complete response.
    pub fn transport(service: Service, what: &str, e: &TransportError) -> Self {
        let kind = match (e, service) {
            (TransportError::Timeout(_), _) => ErrorKind::Timeout,
            (TransportError::Tls(_), _) => ErrorKind::Tls,
            (TransportError::Denied(_), _) => ErrorKind::EgressDenied,
            (TransportError::Other(_), _) => ErrorKind::Internal,
            (TransportError::Connect(_) | TransportError::Body(_), Service::Hub) => {
                ErrorKind::HubUnavailable
            }
            (TransportError::Connect(_) | TransportError::Body(_), Service::Grouper) => {
                ErrorKind::GrouperUnavailable
            }
            (TransportError::Connect(_) | TransportError::Body(_), Service::Google) => {
                ErrorKind::GoogleUnavailable
            }
            (TransportError::TooLarge, Service::Hub) => ErrorKind::HubBadAnswer,
            (TransportError::TooLarge, Service::Grouper) => ErrorKind::GrouperBadAnswer,
            (TransportError::TooLarge, Service::Google) => ErrorKind::GoogleBadAnswer,
        };
        Self::new(kind, format!("{what}: {e}"))
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for SyncError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_unique_kebab_names_matching_serde() {
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in ErrorKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn transport_failures_are_classified_by_service() {
        let refused = TransportError::Connect("refused".into());
        assert_eq!(
            SyncError::transport(Service::Hub, "x", &refused).kind,
            ErrorKind::HubUnavailable
        );
        assert_eq!(
            SyncError::transport(Service::Grouper, "x", &refused).kind,
            ErrorKind::GrouperUnavailable
        );
        let t = SyncError::transport(Service::Grouper, "x", &TransportError::Timeout("t".into()));
        assert_eq!(t.kind, ErrorKind::Timeout);
        let d = SyncError::transport(Service::Hub, "x", &TransportError::Denied("d".into()));
        assert_eq!(d.kind, ErrorKind::EgressDenied);
        assert!(d.kind.is_upstream() && !ErrorKind::Config.is_upstream());
    }
}
