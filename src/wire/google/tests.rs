use super::*;
use crate::test_support::google_answer;
use google_sim::{Endpoint, Fault, FaultAction, GoogleSim, SETTINGS_SCOPE};
use std::sync::Arc;

const ADMIN: &str = "admin@example.edu";
const GROUP: &str = "datahub-course-101@lists.example.edu";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A simulator whose token endpoint is `http://google/token`, a delegated account and an admin.
fn google() -> (Arc<GoogleSim>, ServiceAccountKey) {
    let sim = GoogleSim::new();
    sim.set_token_url("http://google/token");
    let account = sim.add_service_account("sync@project.iam.gserviceaccount.com");
    sim.delegate(&account.client_email, SETTINGS_SCOPE);
    sim.add_admin(ADMIN);
    sim.add_group(GROUP);
    let key = ServiceAccountKey::parse(&account.key_json).unwrap();
    (sim, key)
}

fn token(
    sim: &GoogleSim,
    key: &ServiceAccountKey,
    subject: &str,
) -> Result<AccessToken, SyncError> {
    let req = token_request(key, &assertion(key, subject, now()));
    parse_token(&google_answer(sim, &req))
}

#[test]
fn the_signed_assertion_gets_a_token_that_reads_and_patches_only_what_differs() {
    let (sim, key) = google();
    let t = token(&sim, &key, ADMIN).unwrap();
    assert!(t.expires_in > 3000, "{t:?}");
    let get = get_settings_request("http://google", GROUP, &t);
    assert_eq!(
        get.url,
        "http://google/groups/v1/groups/datahub-course-101%40lists.example.edu?alt=json"
    );
    let current = parse_settings(GROUP, &google_answer(&sim, &get))
        .unwrap()
        .unwrap();
    let wanted: BTreeMap<String, String> = [
        ("whoCanPostMessage", "ALL_MANAGERS_CAN_POST"),
        ("whoCanViewMembership", "ALL_MANAGERS_CAN_VIEW"),
        ("allowExternalMembers", "FALSE"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let change = differing(&wanted, &current);
    assert_eq!(
        change.keys().collect::<Vec<_>>(),
        ["whoCanPostMessage", "whoCanViewMembership"],
        "a boolean compares without case"
    );
    let patched = parse_settings(
        GROUP,
        &google_answer(
            &sim,
            &patch_settings_request("http://google", GROUP, &t, &change),
        ),
    )
    .unwrap()
    .unwrap();
    assert!(differing(&wanted, &patched).is_empty());
    assert_eq!(
        sim.requests().last().unwrap().fields,
        ["whoCanPostMessage", "whoCanViewMembership"]
    );
    assert_eq!(
        sim.settings(GROUP).unwrap()["whoCanPostMessage"],
        "ALL_MANAGERS_CAN_POST"
    );
}

#[test]
fn refused_grants_are_typed_and_say_what_to_fix() {
    let (sim, key) = google();
    // an unknown admin
    let e = token(&sim, &key, "nobody@example.edu").unwrap_err();
    assert_eq!(e.kind, ErrorKind::GoogleUnauthorized, "{}", e.message);
    assert!(e.message.contains("google_admin_subject"), "{}", e.message);
    // a key Google does not know (another account's, signed by a key it never saw)
    let other = GoogleSim::new();
    other.set_token_url("http://google/token");
    let stranger = ServiceAccountKey::parse(
        &other
            .add_service_account("sync@project.iam.gserviceaccount.com")
            .key_json,
    )
    .unwrap();
    let e = token(&sim, &stranger, ADMIN).unwrap_err();
    assert_eq!(e.kind, ErrorKind::GoogleUnauthorized);
    assert!(e.message.contains("Invalid JWT Signature"), "{}", e.message);
    // no domain-wide delegation for the scope
    let undelegated = sim.add_service_account("other@project.iam.gserviceaccount.com");
    let key = ServiceAccountKey::parse(&undelegated.key_json).unwrap();
    let e = token(&sim, &key, ADMIN).unwrap_err();
    assert_eq!(e.kind, ErrorKind::GoogleForbidden);
    assert!(
        e.message.contains("domain-wide delegation"),
        "{}",
        e.message
    );
}

#[test]
fn an_assertion_outside_the_hours_window_is_refused() {
    let (sim, key) = google();
    let stale = token_request(&key, &assertion(&key, ADMIN, now() - 7200));
    let e = parse_token(&google_answer(&sim, &stale)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::GoogleUnauthorized);
    assert!(e.message.contains("iat and exp"), "{}", e.message);
}

#[test]
fn api_failures_are_typed_and_a_group_not_yet_provisioned_is_none() {
    let (sim, key) = google();
    let read = |t: &AccessToken, email: &str| {
        parse_settings(
            email,
            &google_answer(&sim, &get_settings_request("http://google", email, t)),
        )
    };
    let t = token(&sim, &key, ADMIN).unwrap();
    assert_eq!(read(&t, "later@lists.example.edu"), Ok(None));
    sim.expire_tokens();
    assert_eq!(
        read(&t, GROUP).unwrap_err().kind,
        ErrorKind::GoogleUnauthorized
    );
    let t = token(&sim, &key, ADMIN).unwrap();
    let get = |email: &str| read(&t, email);
    sim.push_fault(Fault {
        endpoint: Endpoint::Settings,
        action: FaultAction::Status {
            status: 429,
            body: r#"{"error": {"code": 429, "message": "Rate Limit Exceeded"}}"#.into(),
            retry_after: Some(1),
        },
        times: 1,
    });
    assert_eq!(get(GROUP).unwrap_err().kind, ErrorKind::GoogleUnavailable);
    sim.disable_api();
    let e = get(GROUP).unwrap_err();
    assert_eq!(e.kind, ErrorKind::GoogleForbidden);
    assert!(e.message.contains("has not been used"), "{}", e.message);
}

#[test]
fn a_value_google_does_not_take_is_a_configuration_error() {
    let (sim, key) = google();
    let t = token(&sim, &key, ADMIN).unwrap();
    let bad: BTreeMap<String, String> =
        [("whoCanPostMessage".to_string(), "MANAGERS".to_string())].into();
    let e = parse_settings(
        GROUP,
        &google_answer(
            &sim,
            &patch_settings_request("http://google", GROUP, &t, &bad),
        ),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{}", e.message);
    assert_eq!(
        sim.settings(GROUP).unwrap()["whoCanPostMessage"],
        "ANYONE_CAN_POST"
    );
}

#[test]
fn a_key_file_that_is_not_a_service_accounts_is_refused_without_quoting_it() {
    let cases = [
        ("not json", "must be the service account's key file"),
        (
            r#"{"type": "authorized_user"}"#,
            "\"type\" must be \"service_account\"",
        ),
        (
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n"}"#,
            "not a PKCS#8 RSA key",
        ),
    ];
    for (text, expected) in cases {
        let e = ServiceAccountKey::parse(text).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.message.contains(expected), "{}", e.message);
        assert!(!e.message.contains("SECRET"), "{}", e.message);
    }
}
