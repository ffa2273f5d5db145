//! Reads the hub side of a pass: the paged user listing, then each user's record where a target
//! needs `auth_state`, with bounded fan-out. Failures of single users mark them unread.

use crate::error::{ErrorKind, Service, SyncError};
use crate::policy::mapping::{
    expand_targets, map_auth_state, needs_record, HubUser, PassTarget, UserRecord,
};
use crate::policy::user_state::{
    lost_subjects, Decision, Entry, Next, Prior, ReadReasons, StateStatus, Unlisted,
};
use crate::sync::session::Session;
use crate::wire::hub::{self, UserError};
use crate::wire::timestamp::response_date_seconds;
use std::collections::HashSet;

fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Upper bound on pages of any listing, whatever the server says.
pub const MAX_PAGES: usize = 100_000;

/// Users the listing makes room for from the hub's total before it has them (beyond, it grows).
const RESERVE_AT_MOST: usize = 1_000_000;

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
    /// The hub's clock (s) at the first list page, when it sent one.
    pub hub_time: Option<i64>,
    /// Users the state knew and the listing did not return that the hub confirmed gone (404).
    pub departed: usize,
    /// Users the state knew and the listing did not return who still exist (offset paging
    /// skipped them); they were read directly and count as listed.
    pub unlisted_found: usize,
}

/// The listing: users in the hub's order, why it may be short, and the hub's clock.
pub struct Listing {
    pub users: Vec<HubUser>,
    pub incomplete: Option<SyncError>,
    pub hub_time: Option<i64>,
}

/// Lists every hub user, page by page, keeping the fields the targets need. Each user is made a
/// [`HubUser`] as its page comes, idle since `now_us` (given the hub's clock of the first page),
/// so that the pages and the listed users are never held beside the result.
pub fn list_users(
    s: &mut Session,
    now_us: &mut dyn FnMut(Option<i64>) -> i64,
) -> Result<Listing, SyncError> {
    const WHAT: &str = "listing hub users";
    let settings = s.settings;
    let (mut offset, mut limit) = (0u64, settings.api_page_size as u64);
    let mut users: Vec<HubUser> = Vec::new();
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
        drop(resp);
        let now = now_us(hub_time);
        users.extend(page.users.into_iter().map(|u| HubUser::listed(u, now)));
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
                // Room for everyone at once: growing by doubling would hold the old and the new
                // buffer together (1.5 times the users at 100,000). Bounded: the total is the
                // hub's word.
                users.reserve_exact(
                    (total as usize)
                        .min(RESERVE_AT_MOST)
                        .saturating_sub(users.len()),
                );
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
    // a user on two pages (offset paging while users are added) counts once
    crate::model::keep_first_of_each(&mut users, |a, b| a.name.cmp(&b.name));
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

/// One request of the fan-out after the listing.
enum Lookup {
    /// A listed user's record, and what the state knew of them.
    Record(usize, Option<Entry>),
    /// A user the state knew whom the listing did not return: gone, or skipped?
    Departure(Unlisted),
}

/// Lists the hub's users and reads the records the targets need: all of them, or with a usable
/// user state only those that are new, changed, recently active or due for refresh. Users the
/// state knew and the listing did not return are looked up (gone, or skipped by offset paging):
/// absence alone never counts as a departure.
pub fn read(s: &mut Session, mut prior: Prior) -> Result<HubView, SyncError> {
    let settings = s.settings;
    // Activity is measured against the hub's clock, the machine's (read once) where the hub sent
    // no Date.
    let mut machine_now = None;
    let mut now_of = |hub_time: Option<i64>| match hub_time {
        Some(t) => t * 1_000_000,
        None => *machine_now.get_or_insert_with(wall_clock_us),
    };
    let Listing {
        mut users,
        mut incomplete,
        hub_time,
    } = list_users(s, &mut now_of)?;
    s.log.info(&format!("listed {} hub users", users.len()));
    if users.is_empty() && !settings.allow_empty_hub {
        return Err(SyncError::new(
            ErrorKind::HubIncomplete,
            "the hub listed no users; refusing to treat that as an empty group (set allow_empty_hub=true if it is real)",
        ));
    }
    prior.at_hub_time(hub_time);
    log_state(s, &prior);
    let now_us = now_of(hub_time);
    let targets = expand_targets(&settings.targets, &users);
    let mappings = settings.auth_state_mappings();
    let mut next = hub_time.map(|now| Next::new(now, users.len(), settings));
    let mut reads = ReadReasons::default();
    let mut from_state = 0;
    let mut lookups: Vec<Lookup> = Vec::new();
    let needs = |u: &HubUser| {
        targets
            .iter()
            .filter_map(|t| t.as_ref().ok())
            .any(|t| needs_record(t, u))
    };
    for (i, u) in users.iter_mut().enumerate() {
        if !needs(u) {
            if let Some(next) = &mut next {
                next.listed(&u.name);
            }
            continue;
        }
        let decision = match hub_time {
            Some(now) => prior.decide(u, now, &settings.refresh),
            None => prior.decide(u, wall_clock_us() / 1_000_000, &settings.refresh),
        };
        match decision {
            Decision::Remembered(entry) => {
                from_state += 1;
                if let Some(next) = &mut next {
                    next.remember(&entry);
                }
                u.lost = entry.lost;
                u.record = UserRecord::Remembered(entry.subjects);
            }
            Decision::Read(reread) => {
                reads.count(reread.reason);
                lookups.push(Lookup::Record(i, reread.before));
            }
        }
    }
    let listed_names: HashSet<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let unlisted = prior.unlisted(&listed_names);
    drop(listed_names);
    let departure_checks = unlisted.len();
    lookups.extend(unlisted.into_iter().map(Lookup::Departure));
    if prior.status == StateStatus::Used {
        s.log.info(&format!(
            "user state: {from_state} remembered; reading {} (new {}, changed {}, recently active {}, refresh {}); {departure_checks} not listed, looked up",
            reads.total(),
            reads.new,
            reads.changed,
            reads.margin,
            reads.refresh
        ));
    }
    let state_status = prior.status;
    drop(prior);
    let keep = hub::Keep {
        user_info: settings.needs_user_info(),
        groups: settings.needs_groups(),
        servers: settings.needs_servers(),
    };
    let mut unread: Vec<SyncError> = Vec::new();
    let (mut departed, mut unlisted_found) = (0, 0);
    // In slices, so that memory holds one slice of requests and answers, not one per user.
    let mut pending = lookups.into_iter().peekable();
    while pending.peek().is_some() {
        let slice: Vec<Lookup> = pending.by_ref().take(READ_SLICE).collect();
        let reqs: Vec<_> = slice
            .iter()
            .map(|lookup| {
                let name = match lookup {
                    Lookup::Record(i, _) => &users[*i].name,
                    Lookup::Departure(u) => &u.name,
                };
                hub::user_request(&settings.hub_api_url, settings.hub_token.expose(), name)
            })
            .collect();
        let outcomes = s.send_all(Service::Hub, &reqs, settings.concurrency);
        for (lookup, outcome) in slice.into_iter().zip(outcomes) {
            match lookup {
                Lookup::Record(i, before) => {
                    let user = &mut users[i];
                    let outcome = outcome.map_err(|e| {
                        let what = format!("reading hub user {:?}", user.name);
                        UserError::Unreadable(SyncError::transport(Service::Hub, &what, &e))
                    });
                    read_record(user, outcome, before, &mappings, next.as_mut(), &mut unread)?;
                }
                Lookup::Departure(gone) => {
                    let what = format!("looking up hub user {:?}, who was not listed", gone.name);
                    let answer = outcome
                        .map_err(|e| {
                            UserError::Unreadable(SyncError::transport(Service::Hub, &what, &e))
                        })
                        .and_then(|resp| {
                            hub::parse_user_model(&gone.name, &resp, keep)
                                .map(|found| (found, resp))
                        });
                    match answer {
                        Ok((None, _)) => departed += 1,
                        Ok((Some(found), resp)) => {
                            unlisted_found += 1;
                            let mut user = HubUser::listed(found, now_us);
                            if needs(&user) {
                                read_record(
                                    &mut user,
                                    Ok(resp),
                                    gone.entry,
                                    &mappings,
                                    next.as_mut(),
                                    &mut unread,
                                )?;
                            } else if let Some(next) = &mut next {
                                next.listed(&user.name);
                            }
                            users.push(user);
                        }
                        Err(UserError::Permission(e)) => return Err(e),
                        Err(UserError::Unreadable(e)) => {
                            // not confirmed gone: kept in the state, looked up again next pass
                            if let Some(next) = &mut next {
                                match gone.entry {
                                    Some(mut entry) => {
                                        entry.unread = true;
                                        next.remember(&entry);
                                    }
                                    None => next.listed(&gone.name),
                                }
                            }
                            unread.push(e);
                        }
                    }
                }
            }
        }
    }
    if unlisted_found > 0 {
        s.log.warn(&format!(
            "{unlisted_found} hub user(s) the listing did not return still exist (offset paging skipped them while users were added or deleted); they were read directly"
        ));
    }
    if departed > 0 {
        s.log.info(&format!(
            "{departed} hub user(s) left the hub since the last pass"
        ));
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
        hub_time,
        departed,
        unlisted_found,
    })
}

/// Takes one answer of `GET /users/{name}` into the user's record: the subjects it maps to and
/// the ones it lost since `before`. A token that may not read records fails the pass; any
/// other failure leaves the user unread (and what the state knew of them, for the next pass).
fn read_record(
    user: &mut HubUser,
    outcome: Result<crate::wire::http::Response, UserError>,
    before: Option<Entry>,
    mappings: &[&Vec<Vec<String>>],
    next: Option<&mut Next>,
    unread: &mut Vec<SyncError>,
) -> Result<(), SyncError> {
    let parsed = outcome.and_then(|resp| hub::parse_user(&user.name, &resp));
    user.record = match parsed {
        Ok(Some(state)) => {
            let subjects = map_auth_state(&state, mappings);
            let lost = lost_subjects(before.as_ref(), &subjects);
            if let Some(next) = next {
                next.read(user, &subjects, lost.as_deref());
            }
            user.lost = lost;
            UserRecord::Read(subjects)
        }
        Ok(None) => UserRecord::Vanished,
        Err(UserError::Permission(e)) => return Err(e),
        Err(UserError::Unreadable(e)) => {
            if let (Some(next), Some(mut entry)) = (next, before) {
                entry.unread = true;
                next.remember(&entry);
            }
            unread.push(e);
            UserRecord::Unread
        }
    };
    Ok(())
}
