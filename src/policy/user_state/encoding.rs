//! The user state's bytes, format version 2: the content of version 1 (a JSON document, still
//! read, so an upgrade keeps its state) in a binary encoding of less than half its size, read in
//! place. A pass holds the bytes and an index sorted by name (4 bytes a user) instead of a parsed
//! map, and decodes an entry only when it asks about that user: at 100,000 users the state costs a
//! pass ≈ 4 MB instead of ≈ 25. `grouper-sync state show` prints it as JSON.
//!
//! Layout: [`MAGIC`], the version (varint), the head (hub URL, the mapping keys, the pass's hub
//! time), then records, each a tag byte: [`USER`] and an entry, [`OTHER`] and a listed name, or
//! [`END`]. Integers are LEB128 varints (signed ones zigzag-encoded), strings a varint length and
//! UTF-8 bytes. An entry: name; flags ([`CREATED`], [`ACTIVITY`], [`LOST`], [`UNREAD`]); `created`
//! and `last_activity` (µs) when flagged; `pass_hub_time - read_at` (s); a subject per mapping
//! (0, or 1 + length and bytes); the lost subjects per mapping when flagged.

use super::Entry;
use crate::policy::mapping::MappedSubjects;

pub const MAGIC: &[u8] = b"jupyterhub-grouper-sync/user-state\n";
pub const VERSION: u32 = 2;

const END: u8 = 0;
const USER: u8 = 1;
const OTHER: u8 = 2;

const CREATED: u8 = 1;
const ACTIVITY: u8 = 2;
const LOST: u8 = 4;
const UNREAD: u8 = 8;

/// Everything of a state but its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub hub: String,
    pub mappings: Vec<String>,
    pub pass_hub_time: i64,
}

/// Why bytes are not a state of this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a user state at all, or damaged.
    Damaged(String),
    /// A user state of another format version.
    OtherVersion(u32),
}

fn damaged(what: impl Into<String>) -> DecodeError {
    DecodeError::Damaged(what.into())
}

// ---- writing ----

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_subjects(out: &mut Vec<u8>, subjects: &[Option<String>]) {
    for s in subjects {
        match s {
            None => out.push(0),
            Some(s) => {
                put_varint(out, s.len() as u64 + 1);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// An entry's fields, borrowed from wherever the pass has them.
pub struct EntryFields<'a> {
    pub name: &'a str,
    pub created: Option<i64>,
    pub last_activity: Option<i64>,
    pub subjects: &'a [Option<String>],
    pub read_at: i64,
    pub lost: Option<&'a [Option<String>]>,
    pub unread: bool,
}

impl<'a> From<&'a Entry> for EntryFields<'a> {
    fn from(e: &'a Entry) -> EntryFields<'a> {
        EntryFields {
            name: &e.name,
            created: e.created,
            last_activity: e.last_activity,
            subjects: &e.subjects,
            read_at: e.read_at,
            lost: e.lost.as_deref(),
            unread: e.unread,
        }
    }
}

/// A state written as the pass goes: the users, and the listed names kept apart until the end.
pub struct Writer {
    pass_hub_time: i64,
    bytes: Vec<u8>,
    others: Vec<u8>,
}

impl Writer {
    pub fn new(head: &Head, users: usize) -> Writer {
        let mut bytes = Vec::with_capacity(64 + head.hub.len() + users * 40);
        bytes.extend_from_slice(MAGIC);
        put_varint(&mut bytes, VERSION.into());
        put_str(&mut bytes, &head.hub);
        put_varint(&mut bytes, head.mappings.len() as u64);
        for m in &head.mappings {
            put_str(&mut bytes, m);
        }
        put_signed(&mut bytes, head.pass_hub_time);
        Writer {
            pass_hub_time: head.pass_hub_time,
            bytes,
            others: Vec::new(),
        }
    }

    pub fn user(&mut self, e: EntryFields) {
        let out = &mut self.bytes;
        out.push(USER);
        put_str(out, e.name);
        let flags = e.created.map_or(0, |_| CREATED)
            | e.last_activity.map_or(0, |_| ACTIVITY)
            | e.lost.map_or(0, |_| LOST)
            | if e.unread { UNREAD } else { 0 };
        out.push(flags);
        if let Some(c) = e.created {
            put_signed(out, c);
        }
        if let Some(a) = e.last_activity {
            put_signed(out, a);
        }
        put_signed(out, self.pass_hub_time - e.read_at);
        put_subjects(out, e.subjects);
        if let Some(lost) = e.lost {
            put_subjects(out, lost);
        }
    }

    pub fn other(&mut self, name: &str) {
        self.others.push(OTHER);
        put_str(&mut self.others, name);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.append(&mut self.others);
        self.bytes.push(END);
        self.bytes
    }
}

// ---- reading ----

/// Reads one value after another; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| damaged("it ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(damaged("a number is too long"))
    }

    fn signed(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn raw(&mut self, len: u64) -> Result<&'a str, DecodeError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.at.checked_add(len))
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| damaged("a text runs past the end"))?;
        let text = std::str::from_utf8(&self.bytes[self.at..end])
            .map_err(|_| damaged("a text is not UTF-8"))?;
        self.at = end;
        Ok(text)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.varint()?;
        self.raw(len)
    }

    fn subjects(&mut self, mappings: usize) -> Result<MappedSubjects, DecodeError> {
        (0..mappings)
            .map(|_| match self.varint()? {
                0 => Ok(None),
                n => Ok(Some(self.raw(n - 1)?.to_string())),
            })
            .collect()
    }

    fn skip_subjects(&mut self, mappings: usize) -> Result<(), DecodeError> {
        for _ in 0..mappings {
            match self.varint()? {
                0 => {}
                n => {
                    self.raw(n - 1)?;
                }
            }
        }
        Ok(())
    }
}

/// A state's bytes with an index of its users sorted by name; entries are decoded on demand.
pub struct Decoded {
    bytes: Vec<u8>,
    pub head: Head,
    /// Offsets of the users' entries (at their names), sorted by name.
    users: Vec<u32>,
    /// Offsets of the listed names.
    others: Vec<u32>,
}

/// The head of a state of this version: magic, version, head fields.
fn head(c: &mut Cursor) -> Result<Head, DecodeError> {
    if !c.bytes.starts_with(MAGIC) {
        return Err(damaged("it is not a user state"));
    }
    c.at = MAGIC.len();
    let version = c.varint()?;
    if version != u64::from(VERSION) {
        return Err(DecodeError::OtherVersion(
            u32::try_from(version).unwrap_or(u32::MAX),
        ));
    }
    let hub = c.str()?.to_string();
    let count = c.varint()?;
    if count > 64 {
        return Err(damaged("it names more than 64 mappings"));
    }
    let mappings = (0..count)
        .map(|_| Ok(c.str()?.to_string()))
        .collect::<Result<_, DecodeError>>()?;
    let pass_hub_time = c.signed()?;
    Ok(Head {
        hub,
        mappings,
        pass_hub_time,
    })
}

impl Decoded {
    /// Checks every record (an entry that would not decode later is found now) and indexes
    /// them. Of two entries with one name the later counts, as the reader of version 1 had it.
    pub fn new(bytes: Vec<u8>) -> Result<Decoded, DecodeError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(damaged("it is larger than 4 GiB"));
        }
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
        };
        let head = head(&mut c)?;
        let mappings = head.mappings.len();
        let (mut users, mut others) = (Vec::new(), Vec::new());
        loop {
            match c.byte()? {
                END => break,
                USER => {
                    users.push(c.at as u32);
                    let name = c.str()?;
                    let flags = c.byte()?;
                    if flags & !(CREATED | ACTIVITY | LOST | UNREAD) != 0 {
                        return Err(damaged(format!("the entry of {name:?} has unknown flags")));
                    }
                    if flags & CREATED != 0 {
                        c.signed()?;
                    }
                    if flags & ACTIVITY != 0 {
                        c.signed()?;
                    }
                    let age = c.signed()?;
                    if age < 0 || head.pass_hub_time.checked_sub(age).is_none() {
                        return Err(damaged(format!(
                            "the entry of {name:?} was read after the state was written"
                        )));
                    }
                    c.skip_subjects(mappings)?;
                    if flags & LOST != 0 {
                        c.skip_subjects(mappings)?;
                    }
                }
                OTHER => {
                    others.push(c.at as u32);
                    c.str()?;
                }
                tag => return Err(damaged(format!("unknown record {tag}"))),
            }
        }
        if c.at != bytes.len() {
            return Err(damaged("bytes follow its end"));
        }
        let mut decoded = Decoded {
            bytes,
            head,
            users,
            others,
        };
        // of equal names, the later entry (larger offset) sorts last and is the one kept
        let mut users = std::mem::take(&mut decoded.users);
        let mut order = crate::model::sorted_positions(users.len(), &mut |a, b| {
            decoded.name_at(users[a]).cmp(decoded.name_at(users[b]))
        });
        crate::model::reorder(&mut users, &mut order);
        users.dedup_by(|later, earlier| {
            let same = decoded.name_at(*later) == decoded.name_at(*earlier);
            if same {
                *earlier = *later;
            }
            same
        });
        decoded.users = users;
        Ok(decoded)
    }

    fn name_at(&self, offset: u32) -> &str {
        let mut c = Cursor {
            bytes: &self.bytes,
            at: offset as usize,
        };
        c.str().expect("checked when indexed")
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// The position of `name`'s entry in the index.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.users
            .binary_search_by(|&at| self.name_at(at).cmp(name))
            .ok()
    }

    pub fn user_name(&self, position: usize) -> &str {
        self.name_at(self.users[position])
    }

    /// The entry at `position` of the index.
    pub fn entry(&self, position: usize) -> Entry {
        let mappings = self.head.mappings.len();
        let mut c = Cursor {
            bytes: &self.bytes,
            at: self.users[position] as usize,
        };
        let decode = |c: &mut Cursor| -> Result<Entry, DecodeError> {
            let name = c.str()?.to_string();
            let flags = c.byte()?;
            let created = (flags & CREATED != 0).then(|| c.signed()).transpose()?;
            let last_activity = (flags & ACTIVITY != 0).then(|| c.signed()).transpose()?;
            let read_at = self.head.pass_hub_time - c.signed()?;
            let subjects = c.subjects(mappings)?;
            let lost = (flags & LOST != 0)
                .then(|| c.subjects(mappings))
                .transpose()?;
            Ok(Entry {
                name,
                created,
                last_activity,
                subjects,
                read_at,
                lost,
                unread: flags & UNREAD != 0,
            })
        };
        decode(&mut c).expect("checked when indexed")
    }

    /// The listed names without an entry.
    pub fn others(&self) -> impl Iterator<Item = &str> {
        self.others.iter().map(|&at| self.name_at(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            hub: "http://127.0.0.1:8081/hub/api".into(),
            mappings: vec!["canvas_user.login_id".into(), "oauth_user.id".into()],
            pass_hub_time: 1_800_000_000,
        }
    }

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            created: Some(-5),
            last_activity: Some(1_799_999_000_000_000),
            subjects: vec![Some("123".into()), None],
            read_at: 1_799_000_000,
            lost: Some(vec![None, Some("x-é".into())]),
            unread: true,
        }
    }

    fn write(entries: &[Entry], others: &[&str]) -> Vec<u8> {
        let mut w = Writer::new(&head(), entries.len());
        for e in entries {
            w.user(e.into());
        }
        for o in others {
            w.other(o);
        }
        w.finish()
    }

    #[test]
    fn entries_round_trip_and_are_found_by_name() {
        let plain = Entry {
            created: None,
            last_activity: None,
            lost: None,
            unread: false,
            subjects: vec![None, Some(String::new())],
            ..entry("b")
        };
        let bytes = write(&[entry("zed"), plain.clone(), entry("ä")], &["c", "a"]);
        let d = Decoded::new(bytes).unwrap();
        assert_eq!(d.head, head());
        assert_eq!(d.users(), 3);
        assert_eq!(d.entry(d.find("b").unwrap()), plain);
        assert_eq!(d.entry(d.find("zed").unwrap()), entry("zed"));
        assert_eq!(d.entry(d.find("ä").unwrap()), entry("ä"));
        assert_eq!(d.find("c"), None, "a listed name has no entry");
        assert_eq!(d.others().collect::<Vec<_>>(), ["c", "a"]);
        let names: Vec<&str> = (0..d.users()).map(|i| d.user_name(i)).collect();
        assert_eq!(names, ["b", "zed", "ä"], "sorted by name");
    }

    #[test]
    fn of_two_entries_with_one_name_the_later_counts() {
        let later = Entry {
            subjects: vec![Some("later".into()), None],
            ..entry("u")
        };
        let d = Decoded::new(write(&[entry("u"), entry("v"), later.clone()], &[])).unwrap();
        assert_eq!(d.users(), 2);
        assert_eq!(d.entry(d.find("u").unwrap()), later);
    }

    #[test]
    fn any_damage_is_found_when_indexed() {
        let bytes = write(&[entry("u"), entry("v")], &["w"]);
        // every truncation, and every single byte changed, is refused or still decodes whole
        for len in 0..bytes.len() {
            assert!(Decoded::new(bytes[..len].to_vec()).is_err(), "cut at {len}");
        }
        for at in 0..bytes.len() {
            for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                let mut changed = bytes.clone();
                changed[at] = v;
                if let Ok(d) = Decoded::new(changed) {
                    for i in 0..d.users() {
                        d.entry(i); // must not panic
                    }
                    d.others().count();
                }
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Decoded::new(longer).is_err(), "bytes after the end");
    }

    #[test]
    fn another_version_is_told_apart_from_damage() {
        let mut bytes = MAGIC.to_vec();
        put_varint(&mut bytes, 3);
        assert!(matches!(
            Decoded::new(bytes),
            Err(DecodeError::OtherVersion(3))
        ));
        assert!(matches!(
            Decoded::new(b"{\"format\": 1}".to_vec()),
            Err(DecodeError::Damaged(_))
        ));
    }

    #[test]
    fn a_state_is_less_than_half_of_version_1() {
        let entries: Vec<Entry> = (0..1000)
            .map(|i| Entry {
                name: format!("user{i:06}"),
                created: Some(1_700_000_000_000_000 + i),
                last_activity: Some(1_790_000_000_000_000 + i),
                subjects: vec![Some(format!("{}", 100_000 + i)), None],
                read_at: 1_799_999_000,
                lost: None,
                unread: false,
            })
            .collect();
        let binary = write(&entries, &[]).len();
        let json = serde_json::to_vec(&entries).unwrap().len();
        assert!(binary * 2 < json, "{binary} bytes against {json}");
    }
}
