//! Reads the hub side of a pass: the paged user listing, then each user's record where a target
//! needs `auth_state`, with bounded fan-out. Failures of single users mark them unread.

use crate::error::{ErrorKind, Service, SyncError};
use crate::hub::{self, ListedUser, UserError};
use crate::mapping::{
    expand_targets, map_auth_state, needs_record, HubUser, PassTarget, UserRecord,
};
use crate::session::Session;
use crate::timestamp::response_date_seconds;
use crate::user_state::{Next, Prior, ReadReason, ReadReasons, StateStatus};
use std::collections::BTreeSet;

fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Upper bound on pages of any listing, whatever the server says.
pub const MAX_PAGES: usize = 100_000;

/// User records requested per slice of the fan-out.
const READ_SLICE: usize = 256;

/// The hub side as far as it could be read.
pub struct HubView {
    pub users: Vec<HubUser>,
    /// Why some selected user could not be read, when that happened (then nobody is removed).
    pub incomplete: Option<SyncError>,
    /// Why each user record read in this pass was read.
    pub reads: ReadReasons,
    /// Users whose subjects came from the user state instead of a read.
    pub from_state: usize,
    pub state_status: StateStatus,
    /// The user state for the next pass (`None` when the hub's clock is unknown).
    pub next_state: Option<Vec<u8>>,
    /// The targets of this pass, patterns resolved against the listed groups.
    pub targets: Vec<PassTarget>,
}

/// The listing: users in the hub's order, why it may be short, and the hub's clock.
pub struct Listing {
    pub users: Vec<ListedUser>,
    pub incomplete: Option<SyncError>,
    pub hub_time: Option<i64>,
}

/// Lists every hub user, page by page, keeping the fields the targets need.
pub fn list_users(s: &mut Session) -> Result<Listing, SyncError> {
    const WHAT: &str = "listing hub users";
    let settings = s.settings;
    let (mut offset, mut limit) = (0u64, settings.api_page_size as u64);
    let mut users: Vec<ListedUser> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut last_total = None;
    let mut first_total: Option<u64> = None;
    let mut shrank: Option<(u64, u64)> = None;
    let mut max_pages = MAX_PAGES;
    let mut hub_time = None;
    let keep = hub::Keep {
        user_info: settings.needs_user_info(),
        groups: settings.needs_groups(),
        servers: settings.needs_servers(),
    };
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
        let page = hub::parse_users_page(&resp, keep)?;
        if page_no == 1 {
            hub_time = response_date_seconds(&resp);
        }
        for u in page.users {
            if seen.insert(u.name.clone()) {
                users.push(u);
            }
        }
        if let Some(total) = page.total {
            if last_total.is_some_and(|before| total < before) {
                shrank = Some((first_total.unwrap_or(total), total));
            }
            first_total = first_total.or(Some(total));
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
    // Offset paging can skip users when others are deleted mid-listing: a shrinking total says
    // so even when the count of what we got matches the new total.
    let incomplete = match (shrank, last_total) {
        (Some((from, to)), _) => Some(SyncError::new(
            ErrorKind::HubIncomplete,
            format!("the hub's user total went from {from} to {to} while listing (users deleted during the pass?); a user may have been skipped"),
        )),
        (None, Some(total)) if (users.len() as u64) < total => Some(SyncError::new(
            ErrorKind::HubIncomplete,
            format!(
                "the hub reported {total} users but the listing returned {} (users changed during the pass?)",
                users.len()
            ),
        )),
        _ => None,
    };
    Ok(Listing {
        users,
        incomplete,
        hub_time,
    })
}

fn log_state(s: &Session, prior: &Prior) {
    match (prior.status, &prior.reason) {
        (status, Some(reason)) if status.is_warning() => s.log.warn(&format!(
            "{reason}; this pass reads every user's record and writes a new user state"
        )),
        // the host, which keeps the state, says why it has none
        (StateStatus::None, _) => s
            .log
            .debug("no user state: this pass reads every user's record"),
        (StateStatus::FullRequested, _) => s
            .log
            .info("full pass requested: reading every user's record"),
        _ => {}
    }
}

/// Does the hub group exist? (`read:groups:name`)
pub fn group_exists(s: &mut Session, group: &str) -> Result<bool, SyncError> {
    let settings = s.settings;
    let req = hub::group_request(&settings.hub_api_url, settings.hub_token.expose(), group);
    let resp = s.send(Service::Hub, &format!("reading hub group {group:?}"), &req)?;
    hub::parse_group_exists(group, &resp)
}

/// Lists the hub's users and reads the records the targets need: all of them, or with a usable
/// user state only those that are new, changed, recently active or due for refresh.
pub fn read(s: &mut Session, mut prior: Prior) -> Result<HubView, SyncError> {
    let settings = s.settings;
    let Listing {
        users: listed,
        mut incomplete,
        hub_time,
    } = list_users(s)?;
    s.log.info(&format!("listed {} hub users", listed.len()));
    if listed.is_empty() && !settings.allow_empty_hub {
        return Err(SyncError::new(
            ErrorKind::HubIncomplete,
            "the hub listed no users; refusing to treat that as an empty group (set allow_empty_hub=true if it is real)",
        ));
    }
    prior.at_hub_time(hub_time);
    log_state(s, &prior);
    // Activity is measured against the hub's clock, the machine's where the hub sent no Date.
    let now_us = hub_time.map_or_else(wall_clock_us, |t| t * 1_000_000);
    let mut users: Vec<HubUser> = listed
        .into_iter()
        .map(|u| HubUser::listed(u, now_us))
        .collect();
    let targets = expand_targets(&settings.targets, &users);
    let mappings = settings.auth_state_mappings();
    let mut next = hub_time.map(|now| Next::new(now, users.len(), settings));
    let mut reads = ReadReasons::default();
    let mut from_state = 0;
    let mut wanted: Vec<usize> = Vec::new();
    for (i, u) in users.iter_mut().enumerate() {
        let needed = targets
            .iter()
            .filter_map(|t| t.as_ref().ok())
            .any(|t| needs_record(t, u));
        if !needed {
            continue;
        }
        let decision = match hub_time {
            Some(now) => prior.decide(u, now, &settings.refresh),
            None => Err(ReadReason::Full),
        };
        match decision {
            Ok(entry) => {
                from_state += 1;
                if let Some(next) = &mut next {
                    next.remember(&entry);
                }
                u.record = UserRecord::Remembered(entry.subjects);
            }
            Err(reason) => {
                reads.count(reason);
                wanted.push(i);
            }
        }
    }
    if prior.status == StateStatus::Used {
        s.log.info(&format!(
            "user state: {from_state} remembered; reading {} (new {}, changed {}, recently active {}, refresh {})",
            wanted.len(),
            reads.new,
            reads.changed,
            reads.margin,
            reads.refresh
        ));
    }
    let state_status = prior.status;
    drop(prior);
    let mut unread: Vec<SyncError> = Vec::new();
    // In slices, so that memory holds one slice of requests and answers, not one per user.
    for slice in wanted.chunks(READ_SLICE) {
        let reqs: Vec<_> = slice
            .iter()
            .map(|&i| {
                hub::user_request(
                    &settings.hub_api_url,
                    settings.hub_token.expose(),
                    &users[i].name,
                )
            })
            .collect();
        let outcomes = s.send_all(Service::Hub, &reqs, settings.concurrency);
        for (&i, outcome) in slice.iter().zip(outcomes) {
            let user = &mut users[i];
            let name = &user.name;
            user.record = match outcome {
                Err(e) => {
                    unread.push(SyncError::transport(
                        Service::Hub,
                        &format!("reading hub user {name:?}"),
                        &e,
                    ));
                    UserRecord::Unread
                }
                Ok(resp) => match hub::parse_user(name, &resp) {
                    Ok(Some(state)) => {
                        let subjects = map_auth_state(&state, &mappings);
                        if let Some(next) = &mut next {
                            next.read(user, &subjects);
                        }
                        UserRecord::Read(subjects)
                    }
                    Ok(None) => UserRecord::Vanished,
                    Err(UserError::Permission(e)) => return Err(e),
                    Err(UserError::Unreadable(e)) => {
                        unread.push(e);
                        UserRecord::Unread
                    }
                },
            };
        }
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
    Ok(HubView {
        users,
        incomplete,
        reads,
        from_state,
        state_status,
        next_state: next.map(Next::encode),
        targets,
    })
}
