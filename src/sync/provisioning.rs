//! A to_grouper target's provisioning marks (`provision_to`): a group the pass created is marked
//! for each provisioner in the same pass; with `ensure_provisioning`, an existing group's missing
//! marks are added. A mark is never removed or changed, and one an admin switched off stays off.

use crate::error::{Service, SyncError};
use crate::model::Target;
use crate::sync::grouper_client::GroupOrigin;
use crate::sync::report::{ProvisioningReport, TargetReport};
use crate::sync::session::Session;
use crate::sync::target::fail_after_writes;
use crate::wire::grouper::provisioning::{self, MarkState};
use crate::wire::grouper::Connection;

/// Brings the group's marks to `provision_to` as far as the target allows; runs after the
/// membership writes, so that a failure here never stands in their way.
pub fn ensure_marks(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
    origin: GroupOrigin,
    report: &mut TargetReport,
) {
    let wanted = &target.rules.provisioning;
    if wanted.provision_to.is_empty() {
        return;
    }
    let group = &target.group_path;
    let mut out = ProvisioningReport::default();
    let to_mark: Vec<String> = match origin {
        GroupOrigin::Created | GroupOrigin::Missing => wanted.provision_to.clone(),
        GroupOrigin::Existing if !wanted.ensure => return,
        GroupOrigin::Existing => {
            let marks = match read_marks(s, conn, target) {
                Ok(m) => m,
                Err(e) => {
                    report.provisioning = Some(out);
                    return fail_after_writes(s, report, e);
                }
            };
            for id in &marks.switched_off {
                s.log.warn(&format!(
                    "{group}: marked for {id} with provisioningDoProvision off; left as an admin set it"
                ));
            }
            out.present = marks.present;
            out.switched_off = marks.switched_off;
            marks.missing
        }
    };
    if s.settings.dry_run || origin == GroupOrigin::Missing {
        if !to_mark.is_empty() {
            s.log.info(&format!(
                "{group}: a pass that is not a dry run marks it for provisioning to {}",
                to_mark.join(", ")
            ));
        }
        out.marked = to_mark;
        report.provisioning = Some(out);
        return;
    }
    for id in to_mark {
        let what = format!("marking {group} for the provisioner {id}");
        let marked = s
            .send(
                Service::Grouper,
                &what,
                &provisioning::mark_request(conn, group, &id),
            )
            .and_then(|resp| provisioning::parse_mark(group, &id, &resp));
        match marked {
            Ok(()) => {
                s.log
                    .info(&format!("{group}: marked for provisioning to {id}"));
                out.marked.push(id);
            }
            Err(mut e) => {
                if origin == GroupOrigin::Created && !wanted.ensure {
                    e.message.push_str(&format!(
                        "; {group} was created but is not marked for {id}: later passes mark it only with ensure_provisioning = true (or mark it in the Grouper UI)"
                    ));
                }
                report.provisioning = Some(out);
                return fail_after_writes(s, report, e);
            }
        }
    }
    report.provisioning = Some(out);
}

/// How a target's group stands with each of its `provision_to` provisioners.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Marks {
    pub present: Vec<String>,
    /// Not marked (or marked where the Grouper user cannot read it).
    pub missing: Vec<String>,
    /// Marked, with `provisioningDoProvision` switched off by someone.
    pub switched_off: Vec<String>,
}

/// Reads the group's markers and sorts the target's provisioners by them.
pub fn read_marks(s: &mut Session, conn: &Connection, target: &Target) -> Result<Marks, SyncError> {
    let group = &target.group_path;
    let what = format!("reading the provisioning marks of {group}");
    let markers = s
        .send(
            Service::Grouper,
            &what,
            &provisioning::read_request(conn, group),
        )
        .and_then(|resp| provisioning::parse_read(group, &resp))?;
    let mut out = Marks::default();
    for id in &target.rules.provisioning.provision_to {
        let list = match provisioning::mark_state(&markers, id) {
            MarkState::Provisioned => &mut out.present,
            MarkState::SwitchedOff => &mut out.switched_off,
            MarkState::Missing => &mut out.missing,
        };
        list.push(id.clone());
    }
    Ok(out)
}
