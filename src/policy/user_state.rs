//! What an incremental pass remembers about hub users between passes, and the rule that decides
//! whose `auth_state` must be read again (../docs: jupyterhub-api.md §11).
//!
//! The component stays stateless: the host hands in the bytes the previous pass produced and
//! stores the bytes this pass returns. The state holds subjects, never `auth_state`. It saves
//! reads, and it guards removals: a user it knows who is missing from the listing is looked up
//! before anyone is removed (offset paging can skip a user), and a user whose read now finds no
//! subject where it found one before keeps the subject as *lost* (their membership is kept).

use crate::policy::mapping::{HubUser, MappedSubjects};
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
    /// Per mapping, the subject an earlier read found and a later one did not (a lost subject:
    /// the user is still in the hub, so their membership is kept).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<MappedSubjects>,
    /// The last read of this user failed: read them again, but keep what was known.
    #[serde(rename = "u", default, skip_serializing_if = "is_false")]
    pub unread: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Entry {
    /// The subject known for mapping `j`: the one read, or the one lost since.
    fn known_subject(&self, j: usize) -> Option<&String> {
        self.subjects
            .get(j)
            .and_then(Option::as_ref)
            .or_else(|| self.lost.as_ref()?.get(j)?.as_ref())
    }
}

/// What a read that found `subjects` loses of what `before` knew: per mapping, the earlier
/// subject where the read found none. `None` when nothing was lost.
pub fn lost_subjects(
    before: Option<&Entry>,
    subjects: &[Option<String>],
) -> Option<MappedSubjects> {
    let before = before?;
    let lost: MappedSubjects = subjects
        .iter()
        .enumerate()
        .map(|(j, now)| match now {
            Some(_) => None,
            None => before.known_subject(j).cloned(),
        })
        .collect();
    lost.iter().any(Option::is_some).then_some(lost)
}

/// An entry as written: the same fields as [`Entry`], borrowed from the pass.
#[derive(Serialize)]
struct EntryRef<'a> {
    n: &'a str,
    c: Option<i64>,
    a: Option<i64>,
    s: &'a [Option<String>],
    r: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    l: Option<&'a [Option<String>]>,
    #[serde(skip_serializing_if = "is_false")]
    u: bool,
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
    /// Listed users without an entry (their records were not needed), for departure checks.
    #[serde(default)]
    others: Vec<String>,
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
    /// Whether remembered entries may stand in for reads (only with status `Used`). Without,
    /// a known state still tells lost subjects and departures.
    reuse: bool,
}

struct Known {
    pass_hub_time: i64,
    users: HashMap<String, Entry>,
    others: std::collections::HashSet<String>,
}

/// Why a user's record is read, and what the state knew of them (for lost subjects).
#[derive(Debug, Clone, PartialEq)]
pub struct Reread {
    pub reason: ReadReason,
    /// The entry of the same user (same `created`), if the state had one.
    pub before: Option<Entry>,
}

impl Reread {
    fn new(reason: ReadReason) -> Reread {
        Reread {
            reason,
            before: None,
        }
    }
}

/// What a pass does about one user whose record a target needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Served from the state: read in an earlier pass, and nothing since says it changed.
    Remembered(Entry),
    /// Read again, for this reason.
    Read(Reread),
}

/// A user the state knew whom the listing did not return: gone, or skipped by offset paging.
#[derive(Debug, Clone, PartialEq)]
pub struct Unlisted {
    pub name: String,
    /// Their entry, when their record had been read.
    pub entry: Option<Entry>,
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
            reuse: false,
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
                reuse: false,
            };
        };
        let mut prior = Prior::parse(bytes, settings);
        if full {
            // every record is read, but what the state knew still tells losses and departures
            prior.status = StateStatus::FullRequested;
            prior.reason = None;
            prior.reuse = false;
        }
        prior
    }

    fn parse(bytes: Vec<u8>, settings: &Settings) -> Prior {
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
            let lost_len = entry.lost.as_ref().map_or(keys.len(), Vec::len);
            if entry.subjects.len() != keys.len()
                || lost_len != keys.len()
                || entry.read_at > pass_hub_time
            {
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
                others: file.others.into_iter().collect(),
            }),
            reuse: true,
        }
    }

    /// Checks the state against the hub's clock of this pass. A state that cannot be trusted to
    /// stand in for reads is still kept for lost subjects and departures.
    pub fn at_hub_time(&mut self, now: Option<i64>) {
        let Some(known) = &self.known else { return };
        if self.status != StateStatus::Used {
            return;
        }
        let why = match now {
            None => (
                StateStatus::NoHubTime,
                "the hub's answer had no Date header, so the user state cannot be compared"
                    .to_string(),
            ),
            Some(now) if now < known.pass_hub_time => (
                StateStatus::Outdated,
                format!(
                    "the hub's clock ({now}) is behind the user state's ({})",
                    known.pass_hub_time
                ),
            ),
            Some(_) => return,
        };
        (self.status, self.reason, self.reuse) = (why.0, Some(why.1), false);
    }

    /// Users the state knew (read or listed) whom the listing did not return, with their
    /// entries; they are taken out of the state.
    pub fn unlisted(&mut self, listed: &std::collections::HashSet<&str>) -> Vec<Unlisted> {
        let Some(known) = &mut self.known else {
            return Vec::new();
        };
        let mut out: Vec<Unlisted> = known
            .users
            .drain()
            .filter(|(name, _)| !listed.contains(name.as_str()))
            .map(|(name, mut entry)| {
                entry.name = name.clone();
                Unlisted {
                    name,
                    entry: Some(entry),
                }
            })
            .collect();
        out.extend(
            known
                .others
                .drain()
                .filter(|name| !listed.contains(name.as_str()))
                .map(|name| Unlisted { name, entry: None }),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        out
    }

    /// What this pass does about one user whose record a target needs: the remembered entry, or
    /// why it must be read. Takes the entry out of the state (each user is asked about once).
    pub fn decide(&mut self, user: &HubUser, now: i64, refresh: &Refresh) -> Decision {
        let reuse = self.reuse;
        let Some(known) = &mut self.known else {
            return Decision::Read(Reread::new(ReadReason::Full));
        };
        let Some((name, mut entry)) = known.users.remove_entry(&user.name) else {
            return Decision::Read(Reread::new(if reuse {
                ReadReason::New
            } else {
                ReadReason::Full
            }));
        };
        entry.name = name;
        // deleted and recreated (or no `created` to tell): perhaps another person
        if user.created.is_none() || user.created != entry.created {
            return Decision::Read(Reread::new(if reuse {
                ReadReason::Changed
            } else {
                ReadReason::Full
            }));
        }
        let reason = if !reuse {
            Some(ReadReason::Full)
        } else if entry.unread {
            Some(ReadReason::New)
        } else if user.last_activity != entry.last_activity {
            Some(ReadReason::Changed)
        } else if user
            .last_activity
            .is_some_and(|at| at >= (entry.read_at - refresh.activity_margin_seconds) * 1_000_000)
        {
            Some(ReadReason::Margin)
        } else {
            let period = refresh.full_refresh_seconds;
            let phase = refresh_phase(&user.name, period);
            let crossed =
                (now - phase).div_euclid(period) > (known.pass_hub_time - phase).div_euclid(period);
            (crossed || now - entry.read_at >= period).then_some(ReadReason::Refresh)
        };
        match reason {
            Some(reason) => Decision::Read(Reread {
                reason,
                before: Some(entry),
            }),
            None => Decision::Remembered(entry),
        }
    }
}

/// Where in the refresh period a user's turn falls: a stable hash of the name (FNV-1a), so that
/// the users spread evenly over the period whatever the schedule.
pub fn refresh_phase(name: &str, period: i64) -> i64 {
    (crate::policy::hashing::fnv1a64(name.as_bytes()) % period.max(1) as u64) as i64
}

/// The state a pass leaves for the next one: every user read successfully in it or remembered.
/// Written as it comes, so memory holds the encoded state once, not a copy of each user.
pub struct Next {
    pass_hub_time: i64,
    /// The state's JSON so far: the head, then the entries, comma-separated.
    json: Vec<u8>,
    count: usize,
    /// `others` so far: the JSON strings of listed users without an entry, comma-separated.
    others: Vec<u8>,
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
            others: Vec::new(),
        }
    }

    fn push(&mut self, entry: EntryRef) {
        if self.count > 0 {
            self.json.push(b',');
        }
        serde_json::to_writer(&mut self.json, &entry).expect("an entry always serializes");
        self.count += 1;
    }

    /// A user served from the state, or one whose read failed in this pass (then read again
    /// next time): kept as it was read.
    pub fn remember(&mut self, e: &Entry) {
        self.push(EntryRef {
            n: &e.name,
            c: e.created,
            a: e.last_activity,
            s: &e.subjects,
            r: e.read_at,
            l: e.lost.as_deref(),
            u: e.unread,
        });
    }

    /// A user read in this pass, with the subjects the read lost.
    pub fn read(
        &mut self,
        user: &HubUser,
        subjects: &[Option<String>],
        lost: Option<&[Option<String>]>,
    ) {
        self.push(EntryRef {
            n: &user.name,
            c: user.created,
            a: user.last_activity,
            s: subjects,
            r: self.pass_hub_time,
            l: lost,
            u: false,
        });
    }

    /// A listed user whose record was not needed: only the name is kept.
    pub fn listed(&mut self, name: &str) {
        if !self.others.is_empty() {
            self.others.push(b',');
        }
        serde_json::to_writer(&mut self.others, name).expect("a name always serializes");
    }

    pub fn encode(mut self) -> Vec<u8> {
        self.json.extend_from_slice(b"],\"others\":[");
        self.json.append(&mut self.others);
        self.json.extend_from_slice(b"]}");
        self.json
    }
}

#[cfg(test)]
mod tests;
