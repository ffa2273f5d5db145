use super::*;
use crate::policy::mapping::ListedTime;
use crate::settings;
use std::collections::HashMap;

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
        created: Some(created).into(),
        last_activity: last_activity.into(),
        idle_seconds: None,
        server_running: false,
        user_info: None,
        record: crate::policy::mapping::UserRecord::Listed,
        lost: None,
    }
}

/// A state written by a pass at `t0` that read `users` then.
fn state_at(s: &Settings, t0: i64, users: &[&HubUser]) -> Vec<u8> {
    let mut next = Next::new(t0, users.len(), s);
    for u in users {
        next.read(u, &[Some(format!("{}-id", u.name))], None);
    }
    next.encode()
}

impl Prior {
    /// `decide`, with only the reason of a read.
    fn why(&mut self, u: &HubUser, now: i64, r: &Refresh) -> Result<Entry, ReadReason> {
        match self.decide(u, now, r) {
            Decision::Remembered(e) => Ok(e),
            Decision::Read(r) => Err(r.reason),
        }
    }

    fn remembered(&mut self, u: &HubUser, now: i64, r: &Refresh) -> Entry {
        match self.decide(u, now, r) {
            Decision::Remembered(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn reread(&mut self, u: &HubUser, now: i64, r: &Refresh) -> Reread {
        match self.decide(u, now, r) {
            Decision::Read(r) => r,
            other => panic!("{other:?}"),
        }
    }
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
    let e = p.why(&idle, now, &s.refresh).expect("idle user remembered");
    assert_eq!(e.subjects, vec![Some("idle-id".to_string())]);
    assert!(p.why(&never, now, &s.refresh).is_ok());
    assert_eq!(
        p.why(&listed("newcomer", 1, None), now, &s.refresh),
        Err(ReadReason::New)
    );

    let mut p = loaded(&s, &bytes, now);
    let recreated = listed("idle", 2, idle.last_activity.get());
    assert_eq!(p.why(&recreated, now, &s.refresh), Err(ReadReason::Changed));
    let active = listed("never", 1, Some((now - 60) * MICROS));
    assert_eq!(p.why(&active, now, &s.refresh), Err(ReadReason::Changed));
    let mut p = loaded(&s, &bytes, now);
    let unknown_created = HubUser {
        created: ListedTime::NONE,
        ..idle.clone()
    };
    assert_eq!(
        p.why(&unknown_created, now, &s.refresh),
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
        p.why(&recent, t0 + HOUR, &s.refresh),
        Err(ReadReason::Margin)
    );
    let s0 = settings(&[("activity_margin_seconds", "0")]);
    let bytes = state_at(&s0, t0, &[&recent]);
    let mut p = loaded(&s0, &bytes, t0 + HOUR);
    assert!(p.why(&recent, t0 + HOUR, &s0.refresh).is_ok());
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
            match p.why(u, now, &s.refresh) {
                Ok(e) => next.remember(&e),
                Err(reason) => {
                    assert_eq!(reason, ReadReason::Refresh);
                    reads += 1;
                    *reads_per_user.entry(u.name.clone()).or_default() += 1;
                    next.read(u, &[Some("x".into())], None);
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
    assert_eq!(p.why(&u, now, &s.refresh), Err(ReadReason::Refresh));
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
            p.why(&u, t0 + HOUR, &settings.refresh),
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
fn losses_unread_users_and_listed_names_are_kept_and_read_back() {
    let s = settings(&[]);
    let t0 = 1_800_000_000;
    let (a, b, c) = (
        listed("a", 1, None),
        listed("b", 1, None),
        listed("c", 1, None),
    );
    let mut next = Next::new(t0, 3, &s);
    next.read(&a, &[None], Some(&[Some("a-id".into())]));
    next.remember(&Entry {
        name: "b".into(),
        created: Some(1),
        last_activity: None,
        subjects: vec![Some("b-id".into())],
        read_at: t0,
        lost: None,
        unread: true,
    });
    next.listed("c");
    let bytes = next.encode();
    let mut p = loaded(&s, &bytes, t0 + 60);
    // a: remembered with its loss; b: read again (its last read failed), what was known kept
    let e = p.remembered(&a, t0 + 60, &s.refresh);
    assert_eq!(e.lost, Some(vec![Some("a-id".to_string())]));
    let again = p.reread(&b, t0 + 60, &s.refresh);
    assert_eq!(again.reason, ReadReason::New);
    assert_eq!(again.before.unwrap().subjects, [Some("b-id".to_string())]);
    // c was only listed; d is new. Not listed now: c
    let listed_now: std::collections::HashSet<&str> = ["a", "b", "d"].into();
    let unlisted = p.unlisted(&listed_now);
    assert_eq!(
        unlisted,
        [Unlisted {
            name: "c".into(),
            entry: None
        }]
    );
    // a full pass reads everyone but still knows what was read
    let mut full = Prior::load(Some(bytes), true, &s);
    assert_eq!(full.status, StateStatus::FullRequested);
    let r = full.reread(&a, t0 + 60, &s.refresh);
    assert_eq!(r.reason, ReadReason::Full);
    assert!(r.before.is_some());
    assert!(
        !full.unlisted(&["a"].into()).is_empty(),
        "b and c are looked up"
    );
    // deleted and recreated (another `created`): perhaps another person, nothing is carried
    let recreated = listed("a", 2, None);
    let mut p = loaded(&s, &next_bytes_with(&s, t0, &a), t0 + 60);
    let r = p.reread(&recreated, t0 + 60, &s.refresh);
    assert_eq!((r.reason, r.before), (ReadReason::Changed, None));
    _ = c;
}

fn next_bytes_with(s: &Settings, t0: i64, u: &HubUser) -> Vec<u8> {
    let mut next = Next::new(t0, 1, s);
    next.read(u, &[Some("x".into())], None);
    next.encode()
}

#[test]
fn a_read_loses_only_where_it_finds_nothing() {
    let before = Entry {
        name: "u".into(),
        created: Some(1),
        last_activity: None,
        subjects: vec![Some("one".into()), None],
        read_at: 0,
        lost: Some(vec![None, Some("two".into())]),
        unread: false,
    };
    assert_eq!(
        lost_subjects(Some(&before), &[None, None]),
        Some(vec![Some("one".into()), Some("two".into())]),
        "a loss stays lost"
    );
    assert_eq!(
        lost_subjects(Some(&before), &[Some("other".into()), Some("two".into())]),
        None,
        "a subject found again, or another one, replaces what was lost"
    );
    assert_eq!(
        lost_subjects(None, &[None, None]),
        None,
        "no earlier read, no loss"
    );
}

#[test]
fn the_state_holds_the_mapped_subject_and_round_trips() {
    let s = settings(&[]);
    let u = listed("u", 7, Some(9));
    let t0 = 1_800_000_000;
    let bytes = state_at(&s, t0, &[&u]);
    let shown = show(bytes.clone()).unwrap();
    assert_eq!(
        shown["users"][0]["subjects"],
        serde_json::json!({ mapping_keys(&s)[0].clone(): "u-id" }),
        "the subject, as mapped: {shown}"
    );
    let mut p = loaded(&s, &bytes, t0);
    let e = p.why(&u, t0, &s.refresh);
    // active in 1970, read at t0: far outside the margin, no refresh crossed yet
    assert_eq!(
        e.map(|e| (e.created, e.last_activity, e.read_at)),
        Ok((Some(7), Some(9), t0))
    );
}

/// A state written by the JSON version 1 of earlier builds is read as it was, so an upgrade
/// reads only what changed; the pass after it writes version 2.
#[test]
fn a_version_1_state_is_read_after_an_upgrade() {
    let s = settings(&[]);
    let t0 = 1_800_000_000;
    let v1 = serde_json::json!({
        "format": FORMAT, "version": 1, "hub": s.hub_api_url,
        "mappings": mapping_keys(&s), "pass_hub_time": t0,
        "users": [
            {"n": "idle", "c": 1, "a": (t0 - 48 * HOUR) * MICROS, "s": ["idle-id"], "r": t0},
            {"n": "lost", "c": 1, "a": null, "s": [null], "r": t0, "l": ["old-id"]},
            {"n": "failed", "c": 1, "a": null, "s": ["f-id"], "r": t0, "u": true},
        ],
        "others": ["admin"],
    });
    let bytes = serde_json::to_vec(&v1).unwrap();
    let mut p = loaded(&s, &bytes, t0 + 60);
    assert_eq!(p.status, StateStatus::Used);
    let idle = listed("idle", 1, Some((t0 - 48 * HOUR) * MICROS));
    assert_eq!(
        p.remembered(&idle, t0 + 60, &s.refresh).subjects,
        [Some("idle-id".to_string())]
    );
    let lost = p.remembered(&listed("lost", 1, None), t0 + 60, &s.refresh);
    assert_eq!(lost.lost, Some(vec![Some("old-id".to_string())]));
    let failed = p.reread(&listed("failed", 1, None), t0 + 60, &s.refresh);
    assert_eq!(failed.reason, ReadReason::New);
    let unlisted = p.unlisted(&["idle", "lost", "failed"].into());
    assert_eq!(
        unlisted,
        [Unlisted {
            name: "admin".into(),
            entry: None
        }]
    );
    assert_eq!(
        show(bytes).unwrap()["users"].as_array().map(Vec::len),
        Some(3)
    );
    let inconsistent = serde_json::json!({
        "format": FORMAT, "version": 1, "hub": s.hub_api_url,
        "mappings": mapping_keys(&s), "pass_hub_time": t0,
        "users": [{"n": "u", "c": 1, "a": null, "s": ["a", "b"], "r": t0}],
    });
    let p = Prior::load(Some(serde_json::to_vec(&inconsistent).unwrap()), false, &s);
    assert_eq!(p.status, StateStatus::Unreadable);
}

#[test]
fn a_user_is_decided_once() {
    let s = settings(&[]);
    let t0 = 1_800_000_000;
    let u = listed("u", 1, None);
    let mut p = loaded(&s, &state_at(&s, t0, &[&u]), t0 + 60);
    assert!(p.why(&u, t0 + 60, &s.refresh).is_ok());
    assert_eq!(p.why(&u, t0 + 60, &s.refresh), Err(ReadReason::New));
    assert!(p.unlisted(&["v"].into()).is_empty(), "u was asked about");
}
