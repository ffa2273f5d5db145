//! What an incremental pass remembers about hub users between passes, and the rule that decides
//! whose `auth_state` must be read again (../docs: jupyterhub-api.md §11).
//!
//! The component stays stateless: the host hands in the bytes the previous pass produced and
//! stores the bytes this pass returns. The state only ever saves reads; it never decides a
//! removal (only a user absent from a complete listing is removed, as in a full pass), and it
//! holds subjects, never `auth_state`.

use crate::mapping::{HubUser, MappedSubjects};
use crate::settings::{paths_text, Refresh, Settings};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const FORMAT: &str = "jupyterhub-grouper-sync/user-state";
pub const VERSION: u32 = 1;

/// What one user looked like when their `auth_state` was last read in a pass that read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "n")]
    pub name: String,
    /// `created` (µs since the epoch) as listed then.
    #[serde(rename = "c")]
    pub created: Option<i64>,
    /// `last_activity` (µs) as listed then.
    #[serde(rename = "a")]
    pub last_activity: Option<i64>,
    /// The subject found per mapping (`mappings` order); `null`: none.
    #[serde(rename = "s")]
    pub subjects: MappedSubjects,
    /// The hub's clock (s) at the start of the pass that read it.
    #[serde(rename = "r")]
    pub read_at: i64,
}

/// An entry as written: the same fields as [`Entry`], borrowed from the pass.
#[derive(Serialize)]
struct EntryRef<'a> {
    n: &'a str,
    c: Option<i64>,
    a: Option<i64>,
    s: &'a [Option<String>],
    r: i64,
}

/// Everything of a state file but its users (written first, then the entries as they come).
#[derive(Debug, Serialize)]
struct StateHead {
    format: String,
    version: u32,
    /// The hub API URL the users belong to.
    hub: String,
    /// The auth_state path lists the subjects were mapped with.
    mappings: Vec<String>,
    /// The hub's clock (s, the `Date` of the first list page) when the writing pass began.
    pass_hub_time: i64,
}

/// A state file as read (not `#[serde(flatten)]` over the head: that would buffer every entry).
#[derive(Debug, Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    hub: String,
    mappings: Vec<String>,
    pass_hub_time: i64,
    users: Vec<Entry>,
}

/// Enough of a state file to tell an old format from a broken one.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u32>,
}

/// What became of the state handed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateStatus {
    /// No state was handed in: every user's record is read.
    None,
    /// The state was used: only new, changed, recently active and refresh-slice users are read.
    Used,
    /// A full pass was asked for; the state was not consulted.
    FullRequested,
    /// The bytes are not a user state (or are damaged).
    Unreadable,
    /// The state belongs to another hub.
    Foreign,
    /// Another format version, other mapping settings, or a hub clock behind the state's.
    Outdated,
    /// The hub's answer carried no `Date`, so the hub's clock is unknown.
    NoHubTime,
}

impl StateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StateStatus::None => "none",
            StateStatus::Used => "used",
            StateStatus::FullRequested => "full-requested",
            StateStatus::Unreadable => "unreadable",
            StateStatus::Foreign => "foreign",
            StateStatus::Outdated => "outdated",
            StateStatus::NoHubTime => "no-hub-time",
        }
    }

    /// A state was handed in but could not be used: worth one warning.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            StateStatus::Unreadable
                | StateStatus::Foreign
                | StateStatus::Outdated
                | StateStatus::NoHubTime
        )
    }
}

/// Why a user's record is read in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadReason {
    /// Not in the state (new user, or not read successfully before).
    New,
    /// `created` or `last_activity` differ from what was seen at the last read.
    Changed,
    /// Active within the margin of the last read: auth_state may have been written after it.
    Margin,
    /// The user's turn in the rolling refresh.
    Refresh,
    /// No usable state: everyone is read.
    Full,
}

/// How many reads each reason caused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadReasons {
    pub new: usize,
    pub changed: usize,
    pub margin: usize,
    pub refresh: usize,
    pub full: usize,
}

impl ReadReasons {
    pub fn count(&mut self, reason: ReadReason) {
        *match reason {
            ReadReason::New => &mut self.new,
            ReadReason::Changed => &mut self.changed,
            ReadReason::Margin => &mut self.margin,
            ReadReason::Refresh => &mut self.refresh,
            ReadReason::Full => &mut self.full,
        } += 1;
    }

    pub fn total(&self) -> usize {
        self.new + self.changed + self.margin + self.refresh + self.full
    }
}

/// The state handed in, checked against these settings.
pub struct Prior {
    pub status: StateStatus,
    /// Why the state was not used (for the one warning).
    pub reason: Option<String>,
    known: Option<Known>,
}

struct Known {
    pass_hub_time: i64,
    users: HashMap<String, Entry>,
}

fn mapping_keys(settings: &Settings) -> Vec<String> {
    settings
        .auth_state_mappings()
        .into_iter()
        .map(|p| paths_text(p))
        .collect()
}

impl Prior {
    fn unusable(status: StateStatus, reason: impl Into<String>) -> Prior {
        Prior {
            status,
            reason: Some(reason.into()),
            known: None,
        }
    }

    fn other_version(version: u32) -> Prior {
        Prior::unusable(
            StateStatus::Outdated,
            format!("the user state is format version {version}; this build reads {VERSION}"),
        )
    }

    /// Reads the state handed in, and lets go of the bytes. Never fails: anything unusable
    /// means a full pass.
    pub fn load(bytes: Option<Vec<u8>>, full: bool, settings: &Settings) -> Prior {
        let Some(bytes) = bytes else {
            return Prior {
                status: StateStatus::None,
                reason: None,
                known: None,
            };
        };
        if full {
            return Prior {
                status: StateStatus::FullRequested,
                reason: None,
                known: None,
            };
        }
        let parsed = serde_json::from_slice::<StateFile>(&bytes);
        let file = match parsed {
            Ok(f) => {
                drop(bytes);
                f
            }
            Err(e) => {
                return match serde_json::from_slice::<Header>(&bytes) {
                    Ok(Header {
                        format: Some(format),
                        version: Some(version),
                    }) if format == FORMAT && version != VERSION => Prior::other_version(version),
                    _ => Prior::unusable(
                        StateStatus::Unreadable,
                        format!("the user state is not readable ({e})"),
                    ),
                }
            }
        };
        let head = &file;
        if head.format != FORMAT {
            return Prior::unusable(
                StateStatus::Unreadable,
                format!(
                    "the user state has format {:?}, not {FORMAT:?}",
                    head.format
                ),
            );
        }
        if head.version != VERSION {
            return Prior::other_version(head.version);
        }
        if head.hub != settings.hub_api_url {
            return Prior::unusable(
                StateStatus::Foreign,
                format!(
                    "the user state belongs to the hub at {}, not {}",
                    head.hub, settings.hub_api_url
                ),
            );
        }
        let keys = mapping_keys(settings);
        if head.mappings != keys {
            return Prior::unusable(
                StateStatus::Outdated,
                format!(
                    "the user state was mapped with auth_state paths {:?}; the settings now say {keys:?}",
                    head.mappings
                ),
            );
        }
        let pass_hub_time = file.pass_hub_time;
        let mut users = HashMap::with_capacity(file.users.len());
        for mut entry in file.users {
            if entry.subjects.len() != keys.len() || entry.read_at > pass_hub_time {
                return Prior::unusable(
                    StateStatus::Unreadable,
                    format!(
                        "the user state's entry for {:?} is inconsistent",
                        entry.name
                    ),
                );
            }
            // the name lives on as the key only (decide puts it back)
            users.insert(std::mem::take(&mut entry.name), entry);
        }
        Prior {
            status: StateStatus::Used,
            reason: None,
            known: Some(Known {
                pass_hub_time,
                users,
            }),
        }
    }

    /// Checks the state against the hub's clock of this pass; drops it if it cannot be trusted.
    pub fn at_hub_time(&mut self, now: Option<i64>) {
        let Some(known) = &self.known else { return };
        match now {
            None => {
                *self = Prior::unusable(
                    StateStatus::NoHubTime,
                    "the hub's answer had no Date header, so the user state cannot be compared",
                )
            }
            Some(now) if now < known.pass_hub_time => {
                *self = Prior::unusable(
                    StateStatus::Outdated,
                    format!(
                        "the hub's clock ({now}) is behind the user state's ({})",
                        known.pass_hub_time
                    ),
                )
            }
            Some(_) => {}
        }
    }

    /// What this pass does about one user whose record a target needs: the remembered entry, or
    /// why it must be read. Takes the entry out of the state (each user is asked about once).
    pub fn decide(
        &mut self,
        user: &HubUser,
        now: i64,
        refresh: &Refresh,
    ) -> Result<Entry, ReadReason> {
        let Some(known) = &mut self.known else {
            return Err(ReadReason::Full);
        };
        let Some((name, mut entry)) = known.users.remove_entry(&user.name) else {
            return Err(ReadReason::New);
        };
        entry.name = name;
        if user.created.is_none()
            || user.created != entry.created
            || user.last_activity != entry.last_activity
        {
            return Err(ReadReason::Changed);
        }
        let margin_start = (entry.read_at - refresh.activity_margin_seconds) * 1_000_000;
        if user.last_activity.is_some_and(|at| at >= margin_start) {
            return Err(ReadReason::Margin);
        }
        let period = refresh.full_refresh_seconds;
        let phase = refresh_phase(&user.name, period);
        let crossed =
            (now - phase).div_euclid(period) > (known.pass_hub_time - phase).div_euclid(period);
        if crossed || now - entry.read_at >= period {
            return Err(ReadReason::Refresh);
        }
        Ok(entry)
    }
}

/// Where in the refresh period a user's turn falls: a stable hash of the name (FNV-1a), so that
/// the users spread evenly over the period whatever the schedule.
pub fn refresh_phase(name: &str, period: i64) -> i64 {
    (crate::hashing::fnv1a64(name.as_bytes()) % period.max(1) as u64) as i64
}

/// The state a pass leaves for the next one: every user read successfully in it or remembered.
/// Written as it comes, so memory holds the encoded state once, not a copy of each user.
pub struct Next {
    pass_hub_time: i64,
    /// The state's JSON so far: the head, then the entries, comma-separated.
    json: Vec<u8>,
    count: usize,
}

impl Next {
    /// A state for about `users` users (room is reserved for them).
    pub fn new(pass_hub_time: i64, users: usize, settings: &Settings) -> Next {
        let head = StateHead {
            format: FORMAT.into(),
            version: VERSION,
            hub: settings.hub_api_url.clone(),
            mappings: mapping_keys(settings),
            pass_hub_time,
        };
        let mut json = Vec::with_capacity(256 + users * 96);
        serde_json::to_writer(&mut json, &head).expect("a state head always serializes");
        json.pop(); // its closing brace: the entries follow
        json.extend_from_slice(b",\"users\":[");
        Next {
            pass_hub_time,
            json,
            count: 0,
        }
    }

    fn push(&mut self, entry: EntryRef) {
        if self.count > 0 {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, &entry).expect("an entry always serializes");
        self.count += 1;
    }

    /// A user served from the state: kept as it was read.
    pub fn remember(&mut self, e: &Entry) {
        self.push(EntryRef {
            n: &e.name,
            c: e.created,
            a: e.last_activity,
            s: &e.subjects,
            r: e.read_at,
        });
    }

    /// A user read in this pass.
    pub fn read(&mut self, user: &HubUser, subjects: &[Option<String>]) {
        self.push(EntryRef {
            n: &user.name,
            c: user.created,
            a: user.last_activity,
            s: subjects,
            r: self.pass_hub_time,
        });
    }

    pub fn encode(mut self) -> Vec<u8> {
        self.json.extend_from_slice(b"]}");
        self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;

    const HOUR: i64 = 3600;
    const MICROS: i64 = 1_000_000;

    fn settings(extra: &[(&str, &str)]) -> Settings {
        settings::for_tests(extra)
    }

    fn listed(name: &str, created: i64, last_activity: Option<i64>) -> HubUser {
        HubUser {
            name: name.into(),
            admin: false,
            groups: Vec::new(),
            created: Some(created),
            last_activity,
            idle_seconds: None,
            server_running: false,
            user_info: None,
            record: crate::mapping::UserRecord::Listed,
        }
    }

    /// A state written by a pass at `t0` that read `users` then.
    fn state_at(s: &Settings, t0: i64, users: &[&HubUser]) -> Vec<u8> {
        let mut next = Next::new(t0, users.len(), s);
        for u in users {
            next.read(u, &[Some(format!("{}-id", u.name))]);
        }
        next.encode()
    }

    fn loaded(s: &Settings, bytes: &[u8], now: i64) -> Prior {
        let mut p = Prior::load(Some(bytes.to_vec()), false, s);
        p.at_hub_time(Some(now));
        p
    }

    #[test]
    fn unchanged_idle_users_are_remembered_and_changes_are_read() {
        let s = settings(&[]);
        let t0 = 1_800_000_000;
        let idle = listed("idle", 1, Some((t0 - 48 * HOUR) * MICROS));
        let never = listed("never", 1, None);
        let bytes = state_at(&s, t0, &[&idle, &never]);
        let now = t0 + HOUR;
        let mut p = loaded(&s, &bytes, now);
        assert_eq!(p.status, StateStatus::Used);
        let e = p
            .decide(&idle, now, &s.refresh)
            .expect("idle user remembered");
        assert_eq!(e.subjects, vec![Some("idle-id".to_string())]);
        assert!(p.decide(&never, now, &s.refresh).is_ok());
        assert_eq!(
            p.decide(&listed("newcomer", 1, None), now, &s.refresh),
            Err(ReadReason::New)
        );

        let mut p = loaded(&s, &bytes, now);
        let recreated = listed("idle", 2, idle.last_activity);
        assert_eq!(
            p.decide(&recreated, now, &s.refresh),
            Err(ReadReason::Changed)
        );
        let active = listed("never", 1, Some((now - 60) * MICROS));
        assert_eq!(p.decide(&active, now, &s.refresh), Err(ReadReason::Changed));
        let mut p = loaded(&s, &bytes, now);
        let unknown_created = HubUser {
            created: None,
            ..idle.clone()
        };
        assert_eq!(
            p.decide(&unknown_created, now, &s.refresh),
            Err(ReadReason::Changed),
            "without created, a deleted and recreated user cannot be told apart"
        );
    }

    #[test]
    fn activity_near_the_last_read_is_read_again() {
        let s = settings(&[("activity_margin_seconds", "900")]);
        let t0 = 1_800_000_000;
        // active 10 minutes before the pass read them: a login's auth_state write may be later
        let recent = listed("recent", 1, Some((t0 - 600) * MICROS));
        let bytes = state_at(&s, t0, &[&recent]);
        let mut p = loaded(&s, &bytes, t0 + HOUR);
        assert_eq!(
            p.decide(&recent, t0 + HOUR, &s.refresh),
            Err(ReadReason::Margin)
        );
        let s0 = settings(&[("activity_margin_seconds", "0")]);
        let bytes = state_at(&s0, t0, &[&recent]);
        let mut p = loaded(&s0, &bytes, t0 + HOUR);
        assert!(p.decide(&recent, t0 + HOUR, &s0.refresh).is_ok());
    }

    #[test]
    fn rolling_refresh_reads_every_user_once_per_period_spread_over_it() {
        let s = settings(&[("full_refresh_hours", "24")]);
        let t0 = 1_800_000_000;
        let users: Vec<HubUser> = (0..2400)
            .map(|i| listed(&format!("user{i:05}"), 1, None))
            .collect();
        let refs: Vec<&HubUser> = users.iter().collect();
        let mut bytes = state_at(&s, t0, &refs);
        let mut reads_per_user: HashMap<String, usize> = HashMap::new();
        let mut per_pass = Vec::new();
        // hourly passes for two days, each state built from the last
        for pass in 1..=48 {
            let now = t0 + pass * HOUR;
            let mut p = loaded(&s, &bytes, now);
            let mut next = Next::new(now, users.len(), &s);
            let mut reads = 0;
            for u in &users {
                match p.decide(u, now, &s.refresh) {
                    Ok(e) => next.remember(&e),
                    Err(reason) => {
                        assert_eq!(reason, ReadReason::Refresh);
                        reads += 1;
                        *reads_per_user.entry(u.name.clone()).or_default() += 1;
                        next.read(u, &[Some("x".into())]);
                    }
                }
            }
            per_pass.push(reads);
            bytes = next.encode();
        }
        assert!(
            reads_per_user.len() == users.len() && reads_per_user.values().all(|&n| n == 2),
            "every user twice in 48 hours"
        );
        let (min, max) = (
            per_pass.iter().min().unwrap(),
            per_pass.iter().max().unwrap(),
        );
        assert!(
            *min >= 50 && *max <= 160,
            "about 100 per hour: {per_pass:?}"
        );
    }

    #[test]
    fn downtime_longer_than_the_period_reads_everyone() {
        let s = settings(&[("full_refresh_hours", "1")]);
        let t0 = 1_800_000_000;
        let u = listed("u", 1, None);
        let bytes = state_at(&s, t0, &[&u]);
        let now = t0 + 2 * HOUR;
        let mut p = loaded(&s, &bytes, now);
        assert_eq!(p.decide(&u, now, &s.refresh), Err(ReadReason::Refresh));
    }

    #[test]
    fn unusable_states_mean_a_full_pass_with_a_reason() {
        let s = settings(&[]);
        let t0 = 1_800_000_000;
        let u = listed("u", 1, None);
        let good = state_at(&s, t0, &[&u]);
        let cases: Vec<(Vec<u8>, Settings, StateStatus, &str)> = vec![
            (b"{not json".to_vec(), s.clone(), StateStatus::Unreadable, "not readable"),
            (br#"{"format": "something/else", "version": 1, "hub": "x", "mappings": [], "pass_hub_time": 0, "users": []}"#.to_vec(),
                s.clone(), StateStatus::Unreadable, "format"),
            (br#"{"format": "jupyterhub-grouper-sync/user-state", "version": 99, "entries": {}}"#.to_vec(),
                s.clone(), StateStatus::Outdated, "version 99"),
            (good.clone(), settings(&[("jupyterhub_api_url", "http://other/hub/api")]),
                StateStatus::Foreign, "http://other/hub/api"),
            (good.clone(), settings(&[("auth_state_paths", "oauth_user.login_id")]),
                StateStatus::Outdated, "oauth_user.login_id"),
        ];
        for (bytes, settings, status, says) in cases {
            let mut p = Prior::load(Some(bytes), false, &settings);
            p.at_hub_time(Some(t0 + HOUR));
            assert_eq!(p.status, status, "{says}");
            assert!(p.status.is_warning());
            assert!(
                p.reason.as_deref().unwrap_or("").contains(says),
                "{:?}",
                p.reason
            );
            assert_eq!(
                p.decide(&u, t0 + HOUR, &settings.refresh),
                Err(ReadReason::Full)
            );
        }
        let mut behind = Prior::load(Some(good.clone()), false, &s);
        behind.at_hub_time(Some(t0 - 1));
        assert_eq!(behind.status, StateStatus::Outdated);
        let mut no_date = Prior::load(Some(good.clone()), false, &s);
        no_date.at_hub_time(None);
        assert_eq!(no_date.status, StateStatus::NoHubTime);
        let full = Prior::load(Some(good), true, &s);
        assert_eq!(full.status, StateStatus::FullRequested);
        assert!(!full.status.is_warning());
        assert_eq!(Prior::load(None, false, &s).status, StateStatus::None);
    }

    #[test]
    fn the_state_holds_the_mapped_subject_and_round_trips() {
        let s = settings(&[]);
        let u = listed("u", 7, Some(9));
        let t0 = 1_800_000_000;
        let bytes = state_at(&s, t0, &[&u]);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("\"s\":[\"u-id\"]"),
            "the subject, as mapped: {text}"
        );
        let mut p = loaded(&s, &bytes, t0);
        let e = p.decide(&u, t0, &s.refresh);
        // active in 1970, read at t0: far outside the margin, no refresh crossed yet
        assert_eq!(
            e.map(|e| (e.created, e.last_activity, e.read_at)),
            Ok((Some(7), Some(9), t0))
        );
    }
}
