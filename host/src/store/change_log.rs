//! The change log: every add and removal Grouper confirmed, one JSON object per line in
//! `state_dir/changes.jsonl` (readable by the service's user alone), so that "who was removed last
//! Tuesday, and why" has an answer. Rotated by size into `changes-<time>.jsonl`; rotated files
//! older than the configured age are deleted.

use crate::store::state::{append_private, create_private_dir, json_lines, open_nofollow};
use anyhow::{Context, Result};
use jiff::Timestamp;
use jupyterhub_grouper_sync::model::Direction;
use jupyterhub_grouper_sync::sync::report::{ChangeOp, ChangeReason, ConfirmedBatch};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FILE_NAME: &str = "changes.jsonl";
const ROTATED_PREFIX: &str = "changes-";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When the pass ended (RFC 3339, UTC).
    pub time: String,
    /// The pass it belongs to.
    pub pass: String,
    /// The Grouper group.
    pub target: String,
    /// For a to_hub target: the hub group that was changed (the Grouper group was only read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_group: Option<String>,
    /// `add` or `remove`.
    pub op: String,
    pub subject: String,
    pub source: Option<String>,
    pub hub_user: Option<String>,
    /// `in-hub`, `not-in-hub`, `approved-plan`, and for to_hub `in-grouper`, `not-in-grouper`.
    pub reason: String,
    /// The approved plan, for `approved-plan`.
    pub plan: Option<String>,
}

/// The log's lines for one batch the component reported confirmed (at `at`, in pass `pass`).
pub fn batch_entries(batch: &ConfirmedBatch, pass: &str, at: Timestamp) -> Vec<Entry> {
    let time = at.round(jiff::Unit::Second).unwrap_or(at).to_string();
    batch
        .changes
        .iter()
        .map(|c| Entry {
            time: time.clone(),
            pass: pass.to_string(),
            target: batch.target.clone(),
            hub_group: (batch.direction == Direction::ToHub)
                .then(|| batch.hub_group.clone())
                .flatten(),
            op: match c.op {
                ChangeOp::Add => "add",
                ChangeOp::Remove => "remove",
            }
            .into(),
            subject: c.subject.clone(),
            source: c.source.clone(),
            hub_user: c.hub_user.clone(),
            reason: match c.reason {
                ChangeReason::InHub => "in-hub",
                ChangeReason::NotInHub => "not-in-hub",
                ChangeReason::ApprovedPlan => "approved-plan",
                ChangeReason::InGrouper => "in-grouper",
                ChangeReason::NotInGrouper => "not-in-grouper",
            }
            .into(),
            plan: (c.reason == ChangeReason::ApprovedPlan)
                .then(|| batch.approved_plan.clone())
                .flatten(),
        })
        .collect()
}

/// Which lines `grouper-sync log` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub subject: Option<String>,
    pub hub_user: Option<String>,
    pub target: Option<String>,
    pub since: Option<Timestamp>,
}

impl Filter {
    fn keeps(&self, e: &Entry) -> bool {
        let is = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        is(&self.subject, Some(&e.subject))
            && is(&self.hub_user, e.hub_user.as_deref())
            && (is(&self.target, Some(&e.target))
                || (self.target.is_some() && self.target == e.hub_group))
            && self
                .since
                .is_none_or(|since| e.time.parse::<Timestamp>().is_ok_and(|t| t >= since))
    }
}

#[derive(Debug, Clone)]
pub struct ChangeLog {
    dir: PathBuf,
    max_bytes: u64,
    keep: Duration,
}

impl ChangeLog {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64, keep: Duration) -> ChangeLog {
        ChangeLog {
            dir: dir.into(),
            max_bytes,
            keep,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Appends the lines (rotating first when the file has reached its size), flushed to disk.
    pub fn append(&self, entries: &[Entry], now: Timestamp) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        create_private_dir(&self.dir)?;
        let path = self.path();
        if fs::metadata(&path).is_ok_and(|m| m.len() >= self.max_bytes) {
            self.rotate(now)?;
        }
        append_private(&path, &json_lines(entries)?)?;
        Ok(())
    }

    fn rotate(&self, now: Timestamp) -> Result<()> {
        let stamp = now.strftime("%Y%m%dT%H%M%S%.6fZ").to_string();
        let rotated = self.dir.join(format!("{ROTATED_PREFIX}{stamp}.jsonl"));
        fs::rename(self.path(), &rotated)
            .with_context(|| format!("rotating the change log to {}", rotated.display()))?;
        let cutoff = now - jiff::SignedDuration::try_from(self.keep).unwrap_or_default();
        for (at, old) in self.rotated()? {
            if at < cutoff {
                let _ = fs::remove_file(&old);
            }
        }
        Ok(())
    }

    /// The rotated files with the time they were rotated, oldest first.
    fn rotated(&self) -> Result<Vec<(Timestamp, PathBuf)>> {
        let mut files = Vec::new();
        let dir = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.dir.display())),
        };
        for entry in dir.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stamp = name
                .strip_prefix(ROTATED_PREFIX)
                .and_then(|n| n.strip_suffix(".jsonl"));
            let at = stamp.and_then(|s| {
                let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S%.fZ", s).ok()?;
                Some(civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp())
            });
            if let Some(at) = at {
                files.push((at, entry.path()));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The lines the filter keeps, oldest first, from the rotated files and the current one. A
    /// line that cannot be read (a torn write after a crash) is skipped with a warning.
    pub fn read(&self, filter: &Filter) -> Result<Vec<Entry>> {
        let mut paths: Vec<PathBuf> = self.rotated()?.into_iter().map(|(_, p)| p).collect();
        paths.push(self.path());
        let mut out = Vec::new();
        for path in paths.iter().filter(|p| p.exists()) {
            read_file(path, filter, &mut out)?;
        }
        Ok(out)
    }
}

fn read_file(path: &Path, filter: &Filter, out: &mut Vec<Entry>) -> Result<()> {
    let file = open_nofollow(path).with_context(|| format!("opening {}", path.display()))?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) if filter.keeps(&e) => out.push(e),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "{}:{}: skipping a damaged line ({e})",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(())
}

/// One line for people: time, operation, subject (and hub user), group, reason.
pub fn text(e: &Entry) -> String {
    let who = match (&e.source, &e.hub_user) {
        (Some(s), Some(u)) => format!("{s}:{} (hub user {u})", e.subject),
        (Some(s), None) => format!("{s}:{}", e.subject),
        (None, Some(u)) => format!("{} (hub user {u})", e.subject),
        (None, None) => e.subject.clone(),
    };
    let why = match (e.reason.as_str(), &e.plan) {
        ("in-hub", _) => "a hub user maps to it".to_string(),
        ("not-in-hub", _) => "no hub user maps to it".to_string(),
        ("in-grouper", _) => format!("a member of {}", e.target),
        ("not-in-grouper", _) => format!("not a member of {}", e.target),
        ("approved-plan", Some(plan)) => format!("approved plan {plan}"),
        (other, _) => other.to_string(),
    };
    let group = match &e.hub_group {
        Some(hub_group) => format!("hub group {hub_group}"),
        None => e.target.clone(),
    };
    format!(
        "{}  {:<6}  {who}  {group}  {why}  (pass {})",
        e.time, e.op, e.pass
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: &str, op: &str, time: &str) -> Entry {
        Entry {
            time: time.into(),
            pass: "p1".into(),
            target: "a:b".into(),
            hub_group: None,
            op: op.into(),
            subject: subject.into(),
            source: Some("ldap".into()),
            hub_user: (op == "add").then(|| format!("user-{subject}")),
            reason: if op == "add" { "in-hub" } else { "not-in-hub" }.into(),
            plan: None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "grouper-sync-changelog-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn appends_filters_rotates_and_expires() {
        let dir = scratch("rotate");
        let log = ChangeLog::new(&dir, 200, Duration::from_secs(3600));
        let t0: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        log.append(&[entry("1", "add", "2026-11-01T00:00:00Z")], t0)
            .unwrap();
        log.append(
            &[
                entry("2", "add", "2026-11-02T00:00:00Z"),
                entry("3", "remove", "2026-11-02T00:00:00Z"),
            ],
            t0,
        )
        .unwrap();
        let all = log.read(&Filter::default()).unwrap();
        assert_eq!(all.len(), 3);
        let mode = fs::metadata(log.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        // past 200 bytes: the next append rotates, and everything is still read, in order
        let t1: Timestamp = "2026-11-02T00:00:00Z".parse().unwrap();
        log.append(&[entry("4", "add", "2026-11-03T00:00:00Z")], t1)
            .unwrap();
        let subjects: Vec<String> = log
            .read(&Filter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.subject)
            .collect();
        assert_eq!(subjects, ["1", "2", "3", "4"]);
        assert_eq!(log.rotated().unwrap().len(), 1);

        let only = |f: Filter| log.read(&f).unwrap().len();
        assert_eq!(
            only(Filter {
                subject: Some("3".into()),
                ..Filter::default()
            }),
            1
        );
        assert_eq!(
            only(Filter {
                hub_user: Some("user-2".into()),
                ..Filter::default()
            }),
            1
        );
        assert_eq!(
            only(Filter {
                target: Some("x:y".into()),
                ..Filter::default()
            }),
            0
        );
        let since = Some("2026-11-02T00:00:00Z".parse().unwrap());
        assert_eq!(
            only(Filter {
                since,
                ..Filter::default()
            }),
            3
        );

        // a rotation a day later drops the rotated file older than an hour
        fs::write(log.path(), "x".repeat(300)).unwrap();
        let t2: Timestamp = "2026-11-03T00:00:00Z".parse().unwrap();
        log.append(&[entry("5", "add", "2026-11-03T00:00:00Z")], t2)
            .unwrap();
        let rotated = log.rotated().unwrap();
        assert_eq!(rotated.len(), 1, "{rotated:?}");
        assert_eq!(rotated[0].0, t2);
    }

    #[test]
    fn a_damaged_line_is_skipped() {
        let dir = scratch("damaged");
        let log = ChangeLog::new(&dir, 1 << 20, Duration::from_secs(3600));
        let t0: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        log.append(&[entry("1", "add", "2026-11-01T00:00:00Z")], t0)
            .unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"time\": \"2026-11-01T00:0").unwrap();
        drop(f);
        log.append(&[entry("2", "add", "2026-11-01T00:00:00Z")], t0)
            .unwrap();
        assert_eq!(log.read(&Filter::default()).unwrap().len(), 1 + 1);
    }

    #[test]
    fn text_lines_say_who_and_why() {
        let mut e = entry("100001", "add", "2026-11-01T00:00:00Z");
        let line = text(&e);
        assert!(
            line.contains("ldap:100001 (hub user user-100001)")
                && line.contains("a hub user maps to it"),
            "{line}"
        );
        e.reason = "approved-plan".into();
        e.plan = Some("0123456789abcdef".into());
        assert!(text(&e).contains("approved plan 0123456789abcdef"));
        // to_hub: the hub group changed; the Grouper group is why
        e.hub_group = Some("gpu".into());
        e.reason = "not-in-grouper".into();
        e.op = "remove".into();
        let line = text(&e);
        assert!(
            line.contains("hub group gpu  not a member of a:b"),
            "{line}"
        );
        let by_hub_group = Filter {
            target: Some("gpu".into()),
            ..Filter::default()
        };
        assert!(by_hub_group.keeps(&e) && !by_hub_group.keeps(&entry("1", "add", "x")));
    }
}
