//! Reads the hub side of a pass: the paged user listing, then each user's record where a target
//! needs `auth_state`, with bounded fan-out. Failures of single users mark them unread.

use crate::error::{ErrorKind, Service, SyncError};
use crate::hub::{self, ListedUser, UserError};
use crate::mapping::{HubUser, UserRecord};
use crate::session::Session;
use crate::settings::SubjectFrom;
use std::collections::BTreeSet;

/// Upper bound on pages of any listing, whatever the server says.
pub const MAX_PAGES: usize = 100_000;

/// The hub side as far as it could be read.
pub struct HubView {
    pub users: Vec<HubUser>,
    /// Why some selected user could not be read, when that happened (then nobody is removed).
    pub incomplete: Option<SyncError>,
}

fn list_users(s: &mut Session) -> Result<(Vec<ListedUser>, Option<SyncError>), SyncError> {
    const WHAT: &str = "listing hub users";
    let settings = s.settings;
    let (mut offset, mut limit) = (0u64, settings.api_page_size as u64);
    let mut users: Vec<ListedUser> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut last_total = None;
    let mut max_pages = MAX_PAGES;
    for page_no in 1.. {
        if page_no > max_pages {
            return Err(SyncError::new(
                ErrorKind::HubBadAnswer,
                format!("{WHAT}: more than {max_pages} pages; _pagination.next never ended"),
            ));
        }
        let req = hub::list_users_request(
            &settings.hub_api_url,
            settings.hub_token.expose(),
            offset,
            limit,
        );
        let resp = s.send(Service::Hub, WHAT, &req)?;
        let page = hub::parse_users_page(&resp)?;
        for u in page.users {
            if seen.insert(u.name.clone()) {
                users.push(u);
            }
        }
        if let Some(total) = page.total {
            last_total = Some(total);
            if page_no == 1 {
                let applied = page
                    .limit
                    .or(page.next.map(|(_, l)| l))
                    .unwrap_or(limit)
                    .max(1);
                max_pages = total.div_ceil(applied) as usize + 2;
            }
        }
        match page.next {
            None => break,
            Some((next_offset, next_limit)) => {
                if next_offset <= offset {
                    return Err(SyncError::new(
                        ErrorKind::HubBadAnswer,
                        format!("{WHAT}: _pagination.next went from offset {offset} to {next_offset}; refusing to loop"),
                    ));
                }
                (offset, limit) = (next_offset, next_limit);
            }
        }
    }
    // Offset paging can skip users when others are deleted mid-listing; count what we got.
    let incomplete = match last_total {
        Some(total) if (users.len() as u64) < total => Some(SyncError::new(
            ErrorKind::HubIncomplete,
            format!(
                "the hub reported {total} users but the listing returned {} (users changed during the pass?)",
                users.len()
            ),
        )),
        _ => None,
    };
    Ok((users, incomplete))
}

/// Lists the hub's users and reads the records the targets need.
pub fn read(s: &mut Session) -> Result<HubView, SyncError> {
    let settings = s.settings;
    let (listed, mut incomplete) = list_users(s)?;
    s.log.info(&format!("listed {} hub users", listed.len()));
    if listed.is_empty() && !settings.allow_empty_hub {
        return Err(SyncError::new(
            ErrorKind::HubIncomplete,
            "the hub listed no users; refusing to treat that as an empty group (set allow_empty_hub=true if it is real)",
        ));
    }
    let needs_record = |u: &ListedUser| {
        settings.targets.iter().any(|t| {
            matches!(t.subject_from, SubjectFrom::AuthState(_)) && (t.include_admins || !u.admin)
        })
    };
    let wanted: Vec<usize> = (0..listed.len())
        .filter(|&i| needs_record(&listed[i]))
        .collect();
    let mut records: Vec<UserRecord> = vec![UserRecord::Listed; listed.len()];
    if !wanted.is_empty() {
        let reqs: Vec<_> = wanted
            .iter()
            .map(|&i| {
                hub::user_request(
                    &settings.hub_api_url,
                    settings.hub_token.expose(),
                    &listed[i].name,
                )
            })
            .collect();
        let outcomes = s.send_all(Service::Hub, &reqs, settings.concurrency);
        let mut unread: Vec<SyncError> = Vec::new();
        for (&i, outcome) in wanted.iter().zip(outcomes) {
            let name = &listed[i].name;
            records[i] = match outcome {
                Err(e) => {
                    unread.push(SyncError::transport(
                        Service::Hub,
                        &format!("reading hub user {name:?}"),
                        &e,
                    ));
                    UserRecord::Unread
                }
                Ok(resp) => match hub::parse_user(name, &resp) {
                    Ok(Some(state)) => UserRecord::Read(state),
                    Ok(None) => UserRecord::Vanished,
                    Err(UserError::Permission(e)) => return Err(e),
                    Err(UserError::Unreadable(e)) => {
                        unread.push(e);
                        UserRecord::Unread
                    }
                },
            };
        }
        if let Some(first) = unread.first() {
            let message = format!(
                "{} hub user record(s) could not be read; first: {}",
                unread.len(),
                first.message
            );
            s.log.warn(&message);
            // The kind says why (unavailable, timeout, …); the message says how many.
            incomplete.get_or_insert(SyncError::new(first.kind, message));
        }
    }
    let users = listed
        .into_iter()
        .zip(records)
        .map(|(u, record)| HubUser {
            name: u.name,
            admin: u.admin,
            record,
        })
        .collect();
    Ok(HubView { users, incomplete })
}
