//! The hub's writes, as the Grouper client holds Grouper's: a hub group made when missing (with
//! `create_missing_groups`), and users added to or removed from it in one request per batch.

use crate::error::{ErrorKind, Service, SyncError};
use crate::model::Target;
use crate::sync::hub_reader;
use crate::sync::report::TargetReport;
use crate::sync::session::Session;
use crate::wire::hub;

/// Makes sure the hub group exists; creates it with `create_missing_groups`. `Ok(false)`: it is
/// missing and this is a dry run, so the pass plans against an empty group.
pub fn ensure_group(
    s: &mut Session,
    target: &Target,
    group: &str,
    report: &mut TargetReport,
) -> Result<bool, SyncError> {
    if hub_reader::group_exists(s, group)? {
        return Ok(true);
    }
    if !target.rules.create_missing {
        return Err(SyncError::new(
            ErrorKind::GroupNotFound,
            format!(
                "the hub group {group:?} does not exist; create it (POST /groups/{group}) or set create_missing_groups = true for this target"
            ),
        ));
    }
    if s.settings.dry_run {
        s.log.info(&format!(
            "hub group {group:?} does not exist; a pass that is not a dry run creates it"
        ));
        return Ok(false);
    }
    let settings = s.settings;
    let req = hub::create_group_request(&settings.hub_api_url, settings.hub_token.expose(), group);
    let what = format!("creating hub group {group:?}");
    let resp = s.send(Service::Hub, &what, &req)?;
    match resp.status {
        // 409: created by someone else since the read; it exists, which is what we wanted
        201 | 409 => {
            report.group_created = resp.status == 201;
            if report.group_created {
                s.log.info(&format!("created hub group {group:?}"));
            }
            Ok(true)
        }
        _ => Err(hub::status_error(&what, &resp)),
    }
}

/// Adds (`add`) or removes these users of the hub group; `Ok` only when the hub confirmed it.
pub fn write_users(
    s: &mut Session,
    group: &str,
    add: bool,
    users: &[String],
) -> Result<(), SyncError> {
    let settings = s.settings;
    let req = hub::group_users_request(
        &settings.hub_api_url,
        settings.hub_token.expose(),
        group,
        add,
        users,
    );
    let what = format!(
        "{} {} user(s) {} hub group {group:?}",
        if add { "adding" } else { "removing" },
        users.len(),
        if add { "to" } else { "from" }
    );
    let resp = s.send(Service::Hub, &what, &req)?;
    if resp.status == 200 {
        Ok(())
    } else {
        Err(hub::status_error(&what, &resp))
    }
}
