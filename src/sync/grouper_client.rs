//! The Grouper side of a pass: reads a group's immediate members page by page and sends
//! add/delete batches, checking every row.

use crate::error::{ErrorKind, Service, SyncError};
use crate::model::Member;
use crate::model::Target;
use crate::settings::{in_folder, Settings};
use crate::sync::hub_reader::MAX_PAGES;
use crate::sync::report::{Change, SubjectFailure, TargetReport};
use crate::sync::session::Session;
use crate::wire::grouper::{self, Connection, GroupSaved, WriteOp};
use serde_json::Value;
use std::hash::BuildHasher;

pub fn connection(settings: &Settings) -> Connection {
    Connection::new(
        &settings.grouper_base_url,
        &settings.grouper_user,
        settings.grouper_password.expose(),
        &settings.grouper_content_type,
    )
}

/// Reads every immediate member of the target group, or fails: a partial read is never returned.
pub fn read_group(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
) -> Result<Vec<Member>, SyncError> {
    read_group_pages(s, conn, target, MAX_PAGES)
}

/// [`read_group`] with at most `max_pages` pages: a group that still has more is an error (an
/// incomplete read), never the members read so far.
fn read_group_pages(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
    max_pages: usize,
) -> Result<Vec<Member>, SyncError> {
    let page_size = s.settings.grouper_page_size;
    let what = format!("reading members of {}", target.group_path);
    let mut members = Vec::new();
    // hashes only, to tell a page with nothing new (duplicates go exactly, below)
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let hashes = std::collections::hash_map::RandomState::new();
    let mut unresolvable = 0;
    let mut complete = false;
    for page_number in 1..=max_pages {
        let req = grouper::get_members_request(
            conn,
            &target.group_path,
            &target.rules.lookup,
            target.rules.source_id.as_deref(),
            grouper::MemberFilter::for_target(target),
            (page_size, page_number),
        );
        let resp = s.send(Service::Grouper, &what, &req)?;
        let page = grouper::parse_get_members(&target.group_path, &target.rules.lookup, &resp)?;
        unresolvable += page.unresolvable;
        let count = page.members.len();
        let mut new = 0;
        for m in page.members {
            if seen.insert(hashes.hash_one((&m.source_id, &m.id))) {
                new += 1;
            }
            members.push(m);
        }
        // fewer than a page: the last one; more: the server ignored pageSize and sent everything
        if count != page_size {
            complete = true;
            break;
        }
        if new == 0 {
            return Err(SyncError::new(
                ErrorKind::GrouperBadAnswer,
                format!(
                    "{what}: page {page_number} repeated earlier members; the server does not page"
                ),
            ));
        }
    }
    if !complete {
        return Err(SyncError::new(
            ErrorKind::GrouperBadAnswer,
            format!(
                "{what}: still more members after {max_pages} pages of {page_size}; the read is incomplete, so nothing is written"
            ),
        ));
    }
    // a member on two pages (the group changed while it was read) counts once
    crate::model::keep_first_of_each(&mut members, |a, b| {
        (a.source_id.as_str(), a.id.as_str()).cmp(&(b.source_id.as_str(), b.id.as_str()))
    });
    if unresolvable > 0 {
        s.log.warn(&format!(
            "{}: Grouper could not resolve {unresolvable} member(s)",
            target.group_path
        ));
    }
    Ok(members)
}

/// Where a to_grouper target's group came from in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOrigin {
    /// It existed.
    Existing,
    /// It did not exist and this pass created it.
    Created,
    /// It does not exist; a pass that is not a dry run creates it.
    Missing,
}

/// Reads the target group; with `create_missing_groups`, a group that does not exist is created
/// first (inside `grouper_folder` only) and read as empty.
pub fn read_or_create_group(
    s: &mut Session,
    conn: &Connection,
    target: &Target,
    report: &mut TargetReport,
) -> Result<(Vec<Member>, GroupOrigin), SyncError> {
    let missing = match read_group(s, conn, target) {
        Err(e) if e.kind == ErrorKind::GroupNotFound && target.rules.create_missing => e,
        other => return other.map(|members| (members, GroupOrigin::Existing)),
    };
    let group = &target.group_path;
    let Some(folder) = &target.rules.grouper_folder else {
        return Err(missing);
    };
    if !in_folder(group, folder) {
        return Err(SyncError::config(format!(
            "{group} does not exist, and create_missing_groups creates groups only inside grouper_folder {folder}"
        )));
    }
    if s.settings.dry_run {
        s.log.info(&format!(
            "{group} does not exist; a pass that is not a dry run creates it"
        ));
        return Ok((Vec::new(), GroupOrigin::Missing));
    }
    let what = format!("creating the Grouper group {group}");
    let resp = s.send(
        Service::Grouper,
        &what,
        &grouper::group_save_request(conn, group),
    )?;
    match grouper::parse_group_save(group, &resp)? {
        GroupSaved::Created => {
            s.log.info(&format!("created the Grouper group {group}"));
            report.group_created = true;
            Ok((Vec::new(), GroupOrigin::Created))
        }
        GroupSaved::AlreadyExists => read_group(s, conn, target)
            .map(|members| (members, GroupOrigin::Existing))
            .map_err(|e| {
                if e.kind == ErrorKind::GroupNotFound {
                    SyncError::new(
                        ErrorKind::GroupNotFound,
                        format!("{group} exists (groupSave said GROUP_ALREADY_EXISTS) but the Grouper user cannot view it: grant it VIEW and READ"),
                    )
                } else {
                    e
                }
            }),
    }
}

/// Sends one operation's batches, counting each row into the report. Returns false when a batch
/// failed as a whole (its error is in the report and nothing more should be sent).
pub fn write(
    s: &mut Session,
    conn: &Connection,
    op: WriteOp,
    target: &Target,
    items: &[(Change, Value)],
    report: &mut TargetReport,
) -> bool {
    for batch in items.chunks(s.settings.grouper_batch_size) {
        let labels: Vec<String> = batch.iter().map(|(c, _)| c.subject.clone()).collect();
        let lookups: Vec<Value> = batch.iter().map(|(_, l)| l.clone()).collect();
        let req = grouper::write_request(conn, op, &target.group_path, &lookups);
        let what = format!("{} members of {}", op.as_str(), target.group_path);
        let rows = s
            .send(Service::Grouper, &what, &req)
            .and_then(|resp| grouper::parse_write(op, &target.group_path, &labels, &resp));
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                report.error = Some(e);
                return false;
            }
        };
        let mut confirmed = Vec::new();
        for (row, (change, _)) in rows.into_iter().zip(batch) {
            if row.success {
                match op {
                    WriteOp::Add => report.added += 1,
                    WriteOp::Delete => report.removed += 1,
                }
                confirmed.push(change.clone());
                continue;
            }
            if row.subject_problem.is_none() && report.error.is_none() {
                report.error = Some(SyncError::new(
                    grouper::code_kind(&row.code),
                    format!(
                        "{} {}: {} {}",
                        op.as_str(),
                        row.subject,
                        row.code,
                        row.message
                    ),
                ));
            }
            let code = row.reported_code().to_string();
            report.failures.push(SubjectFailure {
                operation: op.as_str().into(),
                subject: row.subject,
                code,
                message: row.message,
            });
        }
        s.confirmed(&target.written_group(), report, confirmed);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;
    use crate::test_support::{members_page, Fake};

    #[test]
    fn a_group_with_more_pages_than_the_cap_is_an_incomplete_read_not_a_short_list() {
        let settings = settings::for_tests(&[("grouper_page_size", "2")]);
        let mut page = 0;
        let mut fake = Fake {
            answer: |_: &crate::wire::http::Request| {
                page += 1;
                let (a, b) = (format!("{page}a"), format!("{page}b"));
                members_page(&[&a, &b]) // always a full page of new members
            },
            log: vec![],
            slept: vec![],
        };
        let mut s = Session::new(&settings, &mut fake);
        let conn = connection(&settings);
        let target = settings.targets[0].single().unwrap();
        let e = read_group_pages(&mut s, &conn, &target, 3).unwrap_err();
        assert_eq!(e.kind, ErrorKind::GrouperBadAnswer);
        assert!(e.message.contains("after 3 pages"), "{}", e.message);
        assert_eq!(s.requests.grouper, 3, "stopped at the cap");
    }
}
