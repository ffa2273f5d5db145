//! Property tests of the pure core (proptest, stable Rust). CI runs the default number of cases;
//! a longer run: `PROPTEST_CASES=20000 cargo test --release --test properties`.
//!
//! - The plan: no removal of a protected, unmanaged or still-desired member, never more than the
//!   limits allow, nobody after a partial read, and applying the plan gives the desired set.
//! - Every parser of hub and Grouper answers, of the user state and of the config: random and
//!   mutated inputs (seeded from the captured Grouper fixtures when present, and from built-in
//!   answers) give a value or a typed error, never a panic.

use jupyterhub_grouper_sync::model::Member;
use jupyterhub_grouper_sync::model::{
    Mode, RemovalLimits, Side, SubjectFrom, SubjectLookup, Target, TargetRules, UserFilters,
};
use jupyterhub_grouper_sync::policy::plan::{plan, PlanScope, Safety, UNMANAGED_SOURCES};
use jupyterhub_grouper_sync::policy::subject_users::SubjectUsersBuilder;
use jupyterhub_grouper_sync::policy::user_state;
use jupyterhub_grouper_sync::settings::{self, Settings, KEYS};
use jupyterhub_grouper_sync::wire::grouper::{self, WriteOp};
use jupyterhub_grouper_sync::wire::http::Response;
use jupyterhub_grouper_sync::wire::{hub, timestamp};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const SOURCES: &[&str] = &["ldap", "jdbc", "g:gsa", "g:isa"];

fn member_strategy() -> impl Strategy<Value = Member> {
    (0u8..30, 0usize..SOURCES.len(), any::<bool>()).prop_map(|(id, source, resolvable)| {
        let id = format!("u{id}");
        Member {
            key: resolvable.then(|| id.clone()),
            id,
            source_id: SOURCES[source].into(),
        }
    })
}

fn target_strategy() -> impl Strategy<Value = Target> {
    (
        any::<bool>(),
        0usize..40,
        0.0f64..=1.0,
        0usize..10,
        proptest::collection::btree_set((0u8..30).prop_map(|i| format!("u{i}")), 0..4),
        proptest::option::of(Just("ldap".to_string())),
        (0usize..60, 0.0f64..=1.0),
    )
        .prop_map(
            |(
                additive,
                max_removals,
                max_fraction,
                fraction_floor,
                protected,
                source_id,
                (max_per_day, max_fraction_per_day),
            )| Target {
                group_path: "edu:example:app:hub:hub-users".into(),
                side: Side::ToGrouper { hub_group: None },
                rules: TargetRules {
                    filters: UserFilters::default(),
                    create_missing: false,
                    grouper_folder: None,
                    provisioning: Default::default(),
                    google: None,
                    include_admins: false,
                    subject_from: SubjectFrom::Username {
                        template: "{name}".into(),
                    },
                    lookup: SubjectLookup::SubjectId,
                    source_id,
                    mode: if additive {
                        Mode::Additive
                    } else {
                        Mode::Mirror
                    },
                    limits: RemovalLimits {
                        max_removals,
                        max_fraction,
                        fraction_floor,
                        max_per_day,
                        max_fraction_per_day,
                    },
                    protected,
                },
            },
        )
}

fn managed(m: &Member, t: &Target) -> bool {
    !UNMANAGED_SOURCES.contains(&m.source_id.as_str())
        && m.key.is_some()
        && t.rules.source_id.as_ref().is_none_or(|s| *s == m.source_id)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plans_never_remove_what_they_must_not(
        target in target_strategy(),
        current in proptest::collection::vec(member_strategy(), 0..40),
        desired in proptest::collection::btree_set((0u8..30).prop_map(|i| format!("u{i}")), 0..30),
        incomplete in proptest::option::of(Just("user u3 unread")),
        lost in proptest::collection::btree_set((0u8..30).prop_map(|i| format!("u{i}")), 0..6),
        removed_last_day in 0usize..80,
    ) {
        let safety = Safety { incomplete, lost: Some(&lost), removed_last_day };
        let p = plan(&PlanScope::of(&target), &desired, &current, safety);
        let removed = &p.to_remove;
        prop_assert!(removed.len() <= target.rules.limits.max_removals);
        if removed.len() > target.rules.limits.fraction_floor {
            prop_assert!(removed.len() as f64 <= target.rules.limits.max_fraction * current.len() as f64);
        }
        // the daily budget: what this pass removes and what the last 24 hours did
        if !removed.is_empty() {
            let day = removed_last_day + removed.len();
            prop_assert!(day <= target.rules.limits.max_per_day);
            if day > target.rules.limits.fraction_floor {
                prop_assert!(day as f64 <= target.rules.limits.max_fraction_per_day * (current.len() + removed_last_day) as f64);
            }
        }
        // a lost subject is never removed without an approval
        prop_assert!(removed.iter().all(|m| !m.key.as_ref().is_some_and(|k| lost.contains(k))));
        if incomplete.is_some() || desired.is_empty() || target.rules.mode == Mode::Additive {
            prop_assert!(removed.is_empty());
        }
        for m in removed {
            prop_assert!(current.contains(m), "removes only current members");
            prop_assert!(managed(m, &target), "never an unmanaged member: {m:?}");
            let key = m.key.as_deref().unwrap_or_default();
            prop_assert!(!desired.contains(key), "never a desired member");
            prop_assert!(!target.rules.protected.contains(key) && !target.rules.protected.contains(&m.id));
        }
        let current_keys: BTreeSet<&str> = current
            .iter()
            .filter(|m| managed(m, &target))
            .filter_map(|m| m.key.as_deref())
            .collect();
        for a in &p.to_add {
            prop_assert!(desired.contains(a) && !current_keys.contains(a.as_str()));
        }
        // diff ∘ apply = desired, on the members the sync manages
        if p.withheld.is_none() && target.rules.mode == Mode::Mirror && incomplete.is_none() {
            prop_assert_eq!(p.lost_kept, 0, "nothing lost was a removal");
            let mut after: BTreeSet<String> = current
                .iter()
                .filter(|m| managed(m, &target) && !removed.contains(m))
                .filter_map(|m| m.key.clone())
                .collect();
            after.extend(p.to_add.iter().cloned());
            let kept: BTreeSet<String> = after
                .iter()
                .filter(|k| !desired.contains(*k) && !target.rules.protected.contains(*k))
                .cloned()
                .collect();
            prop_assert!(desired.iter().all(|d| after.contains(d)), "every desired subject is in");
            // what stays without being desired: members the same key also names in an
            // unmanaged or protected row (kept by those rules), never a plain managed member
            for k in &kept {
                prop_assert!(
                    current.iter().any(|m| m.key.as_deref() == Some(k.as_str())
                        && (target.rules.protected.contains(&m.id) || !managed(m, &target))),
                    "{k} stays but is neither desired nor protected"
                );
            }
        }
        // the name of a withheld plan does not depend on Grouper's order
        let mut reversed = current.clone();
        reversed.reverse();
        let again = plan(&PlanScope::of(&target), &desired, &reversed, safety);
        prop_assert_eq!(
            p.withheld.as_ref().map(|w| w.plan_hash.clone()),
            again.withheld.as_ref().map(|w| w.plan_hash.clone())
        );
    }

    /// The packed selection a pass plans from is the map it replaced: the same subjects in the
    /// same order, each with its users in the order added, and the same plan as from a set of its
    /// subjects (so the packing can never turn a desired member into a removal).
    #[test]
    fn a_packed_selection_is_the_map_it_replaced(
        pairs in proptest::collection::vec(("(u[0-9]{0,2}|é|)", "[a-z]{1,3}"), 0..60),
        target in target_strategy(),
        current in proptest::collection::vec(member_strategy(), 0..40),
    ) {
        let mut builder = SubjectUsersBuilder::default();
        let mut model: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (subject, name) in &pairs {
            builder.add(subject, name);
            model.entry(subject.clone()).or_default().push(name.clone());
        }
        let packed = builder.build();
        prop_assert_eq!(packed.subjects().collect::<Vec<_>>(), model.keys().map(String::as_str).collect::<Vec<_>>());
        for (subject, names) in &model {
            prop_assert!(packed.contains(subject));
            prop_assert_eq!(packed.users_of(subject).collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let pairs_in_order: Vec<(&str, &str)> = model
            .iter()
            .flat_map(|(s, names)| names.iter().map(move |n| (s.as_str(), n.as_str())))
            .collect();
        prop_assert_eq!(packed.iter().collect::<Vec<_>>(), pairs_in_order);
        prop_assert!(!packed.contains("absent-subject"));
        let set: BTreeSet<String> = model.keys().cloned().collect();
        let safety = Safety { incomplete: None, lost: None, removed_last_day: 0 };
        let from_packed = plan(&PlanScope::of(&target), &packed, &current, safety);
        let from_set = plan(&PlanScope::of(&target), &set, &current, safety);
        prop_assert_eq!(from_packed, from_set);
    }
}

/// Seeds for the parsers: the captured Grouper answers (when present) and built-in answers of
/// every shape the sync reads.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vec![
        json!({"items": [{"kind": "user", "name": "alice", "admin": false, "created": "2026-01-01T00:00:00.000000Z", "last_activity": null, "auth_state": null, "user_info": {"login_id": "1"}}], "_pagination": {"offset": 0, "limit": 200, "total": 1, "next": null}}).to_string().into_bytes(),
        json!({"kind": "user", "name": "alice", "admin": false, "auth_state": {"canvas_user": {"login_id": "100001"}}}).to_string().into_bytes(),
        json!({"WsGetMembersResults": {"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "results": [{"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "wsGroup": {"name": "a:b"}, "wsSubjects": [{"id": "1", "sourceId": "ldap", "resultCode": "SUCCESS", "success": "T"}]}]}}).to_string().into_bytes(),
        json!({"WsAddMemberResults": {"resultMetadata": {"resultCode": "PROBLEM_WITH_ASSIGNMENT", "success": "F"}, "results": [{"resultMetadata": {"resultCode": "SUCCESS", "success": "T"}, "wsSubject": {"id": "1"}}, {"resultMetadata": {"resultCode": "SUBJECT_NOT_FOUND", "success": "F"}, "wsSubject": {"id": "2"}}], "wsGroupAssigned": {"name": "a:b"}}}).to_string().into_bytes(),
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/grouper");
    match std::fs::read_dir(&dir) {
        Ok(entries) => seeds.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read(e.path()).ok()),
        ),
        Err(_) => eprintln!(
            "note: {} is absent; the parsers are fed the built-in seeds only",
            dir.display()
        ),
    }
    seeds
}

fn random_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the node at a pseudo-random position of `v` (chosen by `pick`) with `with`.
fn replace_node(v: &mut Value, pick: &mut u64, with: &Value) {
    *pick = pick
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let children: usize = match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    if children == 0 || pick.is_multiple_of(4) {
        *v = with.clone();
        return;
    }
    let i = (*pick >> 8) as usize % children;
    match v {
        Value::Array(a) => replace_node(&mut a[i], pick, with),
        Value::Object(o) => {
            if let Some((_, child)) = o.iter_mut().nth(i) {
                replace_node(child, pick, with)
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    Replace(u64, Value),
    Random(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Mutation::Flip),
        (any::<u64>(), random_json()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Mutation::Random),
    ]
}

fn mutate(seed: &[u8], m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::Truncate(at) => seed[..at % (seed.len() + 1)].to_vec(),
        Mutation::Flip(flips) => {
            let mut b = seed.to_vec();
            for (at, byte) in flips {
                if !b.is_empty() {
                    let i = at % b.len();
                    b[i] = *byte;
                }
            }
            b
        }
        Mutation::Replace(pick, with) => match serde_json::from_slice::<Value>(seed) {
            Ok(mut v) => {
                let mut p = *pick;
                replace_node(&mut v, &mut p, with);
                v.to_string().into_bytes()
            }
            Err(_) => seed.to_vec(),
        },
        Mutation::Random(bytes) => bytes.clone(),
    }
}

fn response(status: u16, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type".into(), "text/x-json;charset=UTF-8".into()),
            ("x-grouper-success".into(), "T".into()),
            ("x-grouper-resultcode".into(), "SUCCESS".into()),
            ("date".into(), "Mon, 30 Nov 2026 06:00:00 GMT".into()),
        ],
        body,
    }
}

fn lookups() -> [SubjectLookup; 2] {
    [
        SubjectLookup::SubjectId,
        SubjectLookup::SubjectIdentifier {
            attribute: "uid".into(),
        },
    ]
}

/// The required settings, valid.
const REQUIRED: [(&str, &str); 6] = [
    ("jupyterhub_api_url", "http://127.0.0.1:8081/hub/api"),
    ("jupyterhub_api_token", "t"),
    ("grouper_base_url", "https://g.example.edu/gws"),
    ("grouper_user", "u"),
    ("grouper_password", "p"),
    ("grouper_id_path", "edu:example:app:hub:hub-users"),
];

fn valid_settings() -> Settings {
    settings::parse(|k| {
        Ok(REQUIRED
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string()))
    })
    .expect("valid settings")
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn answer_parsers_never_panic(
        seed in 0usize..64,
        m in mutation(),
        status in prop_oneof![Just(200u16), Just(201), Just(500), 100u16..600],
    ) {
        let seeds = seeds();
        let body = mutate(&seeds[seed % seeds.len()], &m);
        let resp = response(status, body);
        let _ = hub::parse_users_page(&resp, hub::Keep::ALL);
        let _ = hub::parse_users_page(&resp, hub::Keep::LEAN);
        let _ = hub::parse_user("alice", &resp);
        for lookup in lookups() {
            let _ = grouper::parse_get_members("a:b", &lookup, &resp);
        }
        let subjects = ["1".to_string(), "2".to_string()];
        for op in [WriteOp::Add, WriteOp::Delete] {
            if let Ok(rows) = grouper::parse_write(op, "a:b", &subjects, &resp) {
                prop_assert_eq!(rows.len(), subjects.len(), "one row per subject sent");
            }
        }
        let _ = timestamp::response_date_seconds(&resp);
    }

    #[test]
    fn the_user_state_loads_from_any_bytes(
        seed in proptest::collection::vec(any::<u8>(), 0..400),
        keep in any::<bool>(),
        full in any::<bool>(),
    ) {
        let settings = valid_settings();
        let bytes = if keep {
            // a real state file, mutated
            let mut next = user_state::Next::new(1_800_000_000, 1, &settings);
            next.remember(&user_state::Entry {
                name: "alice".into(),
                created: Some(1_700_000_000_000_000),
                last_activity: None,
                subjects: vec![Some("100001".into())],
                read_at: 1_800_000_000,
                lost: seed.first().map(|_| vec![Some("100009".into())]),
                unread: seed.len() % 2 == 0,
            });
            next.listed("bob");
            let mut b = next.encode();
            for (i, x) in seed.iter().enumerate().take(8) {
                let at = (*x as usize * 7 + i) % b.len().max(1);
                if !b.is_empty() { b[at] = seed[(i + 1) % seed.len()]; }
            }
            b
        } else {
            seed
        };
        let prior = user_state::Prior::load(Some(bytes), full, &settings);
        prop_assert!(!full || prior.status == user_state::StateStatus::FullRequested);
    }

    #[test]
    fn config_parsing_gives_a_value_or_an_error_naming_a_key(
        values in proptest::collection::vec((0usize..KEYS.len(), ".{0,24}"), 0..12),
    ) {
        let lookup = |k: &str| -> Result<Option<String>, String> {
            if let Some((_, v)) = values.iter().rev().find(|(i, _)| KEYS[*i].name == k) {
                return Ok(Some(v.clone()));
            }
            Ok(REQUIRED.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        };
        if let Err(e) = settings::parse(lookup) {
            prop_assert!(
                KEYS.iter().any(|k| e.message.contains(k.name)),
                "the error names a setting: {}", e.message
            );
        }
    }

    #[test]
    fn timestamps_parse_or_not_without_panicking(s in ".{0,40}") {
        let _ = timestamp::parse_iso8601_micros(&s);
        let _ = jupyterhub_grouper_sync::model::HttpUrl::parse(&s);
        let _ = jupyterhub_grouper_sync::http_entry::is_plan_hash(&s);
    }
}

/// The mutations start from answers the parsers accept, so they probe past the first check.
#[test]
fn the_built_in_seeds_are_valid_answers() {
    let seeds = seeds();
    let page = hub::parse_users_page(
        &response(200, seeds[0].clone()),
        hub::Keep {
            user_info: true,
            groups: false,
            servers: false,
        },
    )
    .unwrap();
    assert_eq!(page.users.len(), 1);
    assert!(hub::parse_user("alice", &response(200, seeds[1].clone()))
        .unwrap()
        .is_some());
    let members = grouper::parse_get_members(
        "a:b",
        &SubjectLookup::SubjectId,
        &response(200, seeds[2].clone()),
    )
    .unwrap();
    assert_eq!(members.members.len(), 1);
    let rows = grouper::parse_write(
        WriteOp::Add,
        "a:b",
        &["1".to_string(), "2".to_string()],
        &response(201, seeds[3].clone()),
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
}
