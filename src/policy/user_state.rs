//! What an incremental pass remembers about hub users between passes, and the rule that decides
//! whose `auth_state` must be read again (../docs: jupyterhub-api.md §11).
//!
//! The component stays stateless: the host hands in the bytes the previous pass produced and
//! stores the bytes this pass returns. The state holds subjects, never `auth_state`. It saves
//! reads, and it guards removals: a user it knows who is missing from the listing is looked up
//! before anyone is removed (offset paging can skip a user), and a user whose read now finds no
//! subject where it found one before keeps the subject as *lost* (their membership is kept).

mod encoding;

use crate::policy::mapping::{HubUser, MappedSubjects};
use crate::settings::{paths_text, Refresh, Settings};
use encoding::{DecodeError, Decoded, EntryFields, Head, Writer};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "jupyterhub-grouper-sync/user-state";
/// The version this build writes; it reads version 1 (JSON) too.
pub const VERSION: u32 = encoding::VERSION;
const JSON_VERSION: u32 = 1;

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

/// A state file of version 1, JSON (read when upgrading; re-encoded as version 2 on reading).
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
    state: Decoded,
    /// Per position of the state's index: the pass has asked about that user.
    taken: Vec<bool>,
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
            format!(
                "the user state is format version {version}; this build reads {JSON_VERSION} and {VERSION}"
            ),
        )
    }

    /// Reads the state handed in. Never fails: anything unusable means a full pass.
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
        let keys = mapping_keys(settings);
        let decoded = if bytes.starts_with(encoding::MAGIC) {
            Decoded::new(bytes)
        } else {
            from_json(bytes, Some(keys.len()))
        };
        let state = match decoded {
            Ok(state) => state,
            Err(DecodeError::OtherVersion(v)) => return Prior::other_version(v),
            Err(DecodeError::Damaged(why)) => {
                return Prior::unusable(
                    StateStatus::Unreadable,
                    format!("the user state is not readable ({why})"),
                )
            }
        };
        let head = &state.head;
        if head.hub != settings.hub_api_url {
            return Prior::unusable(
                StateStatus::Foreign,
                format!(
                    "the user state belongs to the hub at {}, not {}",
                    head.hub, settings.hub_api_url
                ),
            );
        }
        if head.mappings != keys {
            return Prior::unusable(
                StateStatus::Outdated,
                format!(
                    "the user state was mapped with auth_state paths {:?}; the settings now say {keys:?}",
                    head.mappings
                ),
            );
        }
        Prior {
            status: StateStatus::Used,
            reason: None,
            known: Some(Known {
                taken: vec![false; state.users()],
                state,
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
            Some(now) if now < known.state.head.pass_hub_time => (
                StateStatus::Outdated,
                format!(
                    "the hub's clock ({now}) is behind the user state's ({})",
                    known.state.head.pass_hub_time
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
        let state = &known.state;
        let mut out: Vec<Unlisted> = (0..state.users())
            .filter(|&i| !known.taken[i] && !listed.contains(state.user_name(i)))
            .map(|i| {
                let entry = state.entry(i);
                Unlisted {
                    name: entry.name.clone(),
                    entry: Some(entry),
                }
            })
            .collect();
        out.extend(
            state
                .others()
                .filter(|name| !listed.contains(name))
                .map(|name| Unlisted {
                    name: name.to_string(),
                    entry: None,
                }),
        );
        self.known = None;
        let order =
            crate::model::sorted_positions(out.len(), &mut |a, b| out[a].name.cmp(&out[b].name));
        let mut slots: Vec<Option<Unlisted>> = out.into_iter().map(Some).collect();
        let mut out: Vec<Unlisted> = order
            .iter()
            .filter_map(|&i| slots[i as usize].take())
            .collect();
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
        // each user is asked about once: a second question finds nothing
        let position = known.state.find(&user.name).filter(|&i| !known.taken[i]);
        let Some(position) = position else {
            return Decision::Read(Reread::new(if reuse {
                ReadReason::New
            } else {
                ReadReason::Full
            }));
        };
        known.taken[position] = true;
        let pass_hub_time = known.state.head.pass_hub_time;
        let entry = known.state.entry(position);
        // deleted and recreated (or no `created` to tell): perhaps another person
        if user.created.get().is_none() || user.created.get() != entry.created {
            return Decision::Read(Reread::new(if reuse {
                ReadReason::Changed
            } else {
                ReadReason::Full
            }));
        }
        let last_activity = user.last_activity.get();
        let reason = if !reuse {
            Some(ReadReason::Full)
        } else if entry.unread {
            Some(ReadReason::New)
        } else if last_activity != entry.last_activity {
            Some(ReadReason::Changed)
        } else if last_activity
            .is_some_and(|at| at >= (entry.read_at - refresh.activity_margin_seconds) * 1_000_000)
        {
            Some(ReadReason::Margin)
        } else {
            let period = refresh.full_refresh_seconds;
            let phase = refresh_phase(&user.name, period);
            let crossed =
                (now - phase).div_euclid(period) > (pass_hub_time - phase).div_euclid(period);
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

/// Version 1's JSON state as version 2's bytes, its entries checked against the mappings.
/// `mappings`: how many subjects an entry must hold (`None`: as many as the file's own mappings).
fn from_json(bytes: Vec<u8>, mappings: Option<usize>) -> Result<Decoded, DecodeError> {
    let file = match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(file) => file,
        Err(e) => {
            return Err(match serde_json::from_slice::<Header>(&bytes) {
                Ok(Header {
                    format: Some(format),
                    version: Some(version),
                }) if format == FORMAT && version != JSON_VERSION => {
                    DecodeError::OtherVersion(version)
                }
                _ => DecodeError::Damaged(e.to_string()),
            })
        }
    };
    drop(bytes);
    if file.format != FORMAT {
        return Err(DecodeError::Damaged(format!(
            "it has format {:?}, not {FORMAT:?}",
            file.format
        )));
    }
    if file.version != JSON_VERSION {
        return Err(DecodeError::OtherVersion(file.version));
    }
    let mappings = mappings.unwrap_or(file.mappings.len());
    let head = Head {
        hub: file.hub,
        mappings: file.mappings,
        pass_hub_time: file.pass_hub_time,
    };
    let mut writer = Writer::new(&head, file.users.len());
    for entry in &file.users {
        let lost_len = entry.lost.as_ref().map_or(mappings, Vec::len);
        if entry.subjects.len() != mappings
            || lost_len != mappings
            || entry.read_at > head.pass_hub_time
        {
            return Err(DecodeError::Damaged(format!(
                "the entry for {:?} is inconsistent",
                entry.name
            )));
        }
        writer.user(entry.into());
    }
    for name in &file.others {
        writer.other(name);
    }
    Decoded::new(writer.finish())
}

/// The state a pass leaves for the next one: every user read successfully in it or remembered,
/// and the names of the other listed users. Encoded as it comes, so memory holds the encoded
/// state once, not a copy of each user.
pub struct Next {
    pass_hub_time: i64,
    writer: Writer,
}

impl Next {
    /// A state for about `users` users (room is reserved for them).
    pub fn new(pass_hub_time: i64, users: usize, settings: &Settings) -> Next {
        let head = Head {
            hub: settings.hub_api_url.clone(),
            mappings: mapping_keys(settings),
            pass_hub_time,
        };
        Next {
            pass_hub_time,
            writer: Writer::new(&head, users),
        }
    }

    /// A user served from the state, or one whose read failed in this pass (then read again
    /// next time): kept as it was read.
    pub fn remember(&mut self, e: &Entry) {
        self.writer.user(e.into());
    }

    /// A user read in this pass, with the subjects the read lost.
    pub fn read(
        &mut self,
        user: &HubUser,
        subjects: &[Option<String>],
        lost: Option<&[Option<String>]>,
    ) {
        self.writer.user(EntryFields {
            name: &user.name,
            created: user.created.get(),
            last_activity: user.last_activity.get(),
            subjects,
            read_at: self.pass_hub_time,
            lost,
            unread: false,
        });
    }

    /// A listed user whose record was not needed: only the name is kept.
    pub fn listed(&mut self, name: &str) {
        self.writer.other(name);
    }

    pub fn encode(self) -> Vec<u8> {
        self.writer.finish()
    }
}

/// A state's bytes as JSON (`grouper-sync state show`): the head, every entry with the mapping
/// it was read with, the other listed names. `auth_state` is never in a state.
pub fn show(bytes: Vec<u8>) -> Result<serde_json::Value, String> {
    use serde_json::{json, Map, Value};
    let state = if bytes.starts_with(encoding::MAGIC) {
        Decoded::new(bytes)
    } else {
        from_json(bytes, None)
    }
    .map_err(|e| match e {
        DecodeError::OtherVersion(v) => {
            format!("format version {v}; this build reads {JSON_VERSION} and {VERSION}")
        }
        DecodeError::Damaged(why) => format!("not readable: {why}"),
    })?;
    let per_mapping = |subjects: &MappedSubjects| -> Value {
        let mut m = Map::new();
        for (key, subject) in state.head.mappings.iter().zip(subjects) {
            m.insert(key.clone(), json!(subject));
        }
        Value::Object(m)
    };
    let users: Vec<Value> = (0..state.users())
        .map(|i| {
            let e = state.entry(i);
            let mut u = json!({
                "name": e.name,
                "created_us": e.created,
                "last_activity_us": e.last_activity,
                "read_at": e.read_at,
                "subjects": per_mapping(&e.subjects),
            });
            if let Some(lost) = &e.lost {
                u["lost"] = per_mapping(lost);
            }
            if e.unread {
                u["unread"] = json!(true);
            }
            u
        })
        .collect();
    Ok(json!({
        "format": FORMAT,
        "version": VERSION,
        "hub": state.head.hub,
        "mappings": state.head.mappings,
        "pass_hub_time": state.head.pass_hub_time,
        "users": users,
        "others": state.others().collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests;
