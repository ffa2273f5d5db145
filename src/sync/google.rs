//! A to_grouper target's Google Group settings (`google_group`, `google_group_settings`): read the
//! group's settings, PATCH only the fields that differ, report which. A group Google does not
//! have yet (the provisioner runs minutes after the group is marked) is reported and tried again
//! by the next pass. One token per pass, fetched when first needed and again once if Google
//! refuses it.

use crate::error::{ErrorKind, Service, SyncError};
use crate::model::Target;
use crate::settings::GoogleAccess;
use crate::sync::report::{GoogleReport, TargetReport};
use crate::sync::session::Session;
use crate::sync::target::fail_after_writes;
use crate::wire::google::{self, AccessToken};
use crate::wire::http::{Request, Response};

/// Brings the target's Google Group to its settings; runs after the membership writes and marks.
pub fn keep_settings(s: &mut Session, target: &Target, report: &mut TargetReport) {
    // the settings outlive the session's borrow: the service account's key is not copied
    let settings = s.settings;
    let (Some(policy), Some(access)) = (&target.rules.google, settings.google.as_ref()) else {
        return;
    };
    let email = policy.address_for(&target.group_path);
    let mut out = GoogleReport {
        group: email.clone(),
        provisioned: false,
        changed: Vec::new(),
    };
    let result = (|| -> Result<(), SyncError> {
        let Some(current) = read(s, access, &email)? else {
            s.log.info(&format!(
                "{}: the Google Group {email} does not exist yet (the provisioner makes it); the next pass looks again",
                target.group_path
            ));
            return Ok(());
        };
        out.provisioned = true;
        let change = google::differing(&policy.settings, &current);
        if change.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = change.keys().cloned().collect();
        if s.settings.dry_run {
            s.log.info(&format!(
                "{email}: a pass that is not a dry run sets {}",
                fields.join(", ")
            ));
            out.changed = fields;
            return Ok(());
        }
        let what = format!("changing the Google Group settings of {email}");
        let resp = call(s, access, &what, |t| {
            google::patch_settings_request(&access.api_url, &email, t, &change)
        })?;
        let after = google::parse_settings(&email, &resp)?.ok_or_else(|| {
            SyncError::new(
                ErrorKind::GoogleBadAnswer,
                format!("{what}: 404 for a group Google had just listed"),
            )
        })?;
        let unkept = google::differing(&change, &after);
        if !unkept.is_empty() {
            return Err(SyncError::new(
                ErrorKind::GoogleBadAnswer,
                format!(
                    "{what}: Google answered the PATCH without {}",
                    unkept.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        s.log.warn(&format!(
            "{email}: set {} to the policy (they differed)",
            fields.join(", ")
        ));
        out.changed = fields;
        Ok(())
    })();
    report.google = Some(out);
    if let Err(e) = result {
        fail_after_writes(s, report, e);
    }
}

/// The group's settings; `None` when Google does not have the group (yet).
pub fn read(
    s: &mut Session,
    access: &GoogleAccess,
    email: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, SyncError> {
    let what = format!("reading the Google Group settings of {email}");
    let resp = call(s, access, &what, |t| {
        google::get_settings_request(&access.api_url, email, t)
    })?;
    google::parse_settings(email, &resp)
}

/// Sends one API request with the pass's token; a 401 drops the token and tries once more with a
/// fresh one (it expired, or was revoked).
fn call(
    s: &mut Session,
    access: &GoogleAccess,
    what: &str,
    request: impl Fn(&AccessToken) -> Request,
) -> Result<Response, SyncError> {
    let first = pass_token(s, access)?;
    let resp = s.send(Service::Google, what, &request(&first))?;
    if resp.status != 401 {
        return Ok(resp);
    }
    s.google_token = None;
    let fresh = pass_token(s, access)?;
    s.send(Service::Google, what, &request(&fresh))
}

fn pass_token(s: &mut Session, access: &GoogleAccess) -> Result<AccessToken, SyncError> {
    if let Some(t) = &s.google_token {
        return Ok(t.clone());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let assertion = google::assertion(&access.key, &access.admin_subject, now);
    let resp = s.send(
        Service::Google,
        "getting a Google access token",
        &google::token_request(&access.key, &assertion),
    )?;
    let t = google::parse_token(&resp)?;
    s.google_token = Some(t.clone());
    Ok(t)
}
