//! The diff between desired and current membership, and the safety rules that decide which
//! removals may go ahead. Pure: everything here is decided from values, without I/O.

use crate::model::Member;
use crate::model::{Direction, Mode, RemovalLimits, Target};
use std::collections::BTreeSet;

/// The subjects a group should hold, in order: a set of them, or a selection's subjects with
/// the users behind each, planned from directly (a copy into a set was ≈ 4 MB and 100,000
/// allocations a pass at 100,000 subjects).
pub trait Subjects {
    fn has(&self, subject: &str) -> bool;
    fn each_in_order(&self, f: &mut dyn FnMut(&str));
    fn is_empty(&self) -> bool;
}

impl Subjects for BTreeSet<String> {
    fn has(&self, subject: &str) -> bool {
        self.contains(subject)
    }
    fn each_in_order(&self, f: &mut dyn FnMut(&str)) {
        self.iter().for_each(|s| f(s));
    }
    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
}

/// Subject sources that hold Grouper groups and internal subjects, never hub users.
pub const UNMANAGED_SOURCES: &[&str] = &["g:gsa", "g:isa"];

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Subjects to add (in the form they are sent to Grouper).
    pub to_add: Vec<String>,
    /// Members that will be removed (after the safety rules).
    pub to_remove: Vec<Member>,
    /// Removals the diff asked for, before the safety rules.
    pub removal_candidates: usize,
    /// Removals held back, and why.
    pub withheld: Option<Withheld>,
    /// Would-be removals kept because they are listed in protected_members.
    pub protected_kept: usize,
    /// Members the sync does not manage: groups, internal subjects, other sources, no usable key.
    pub unmanaged_kept: usize,
    /// Would-be removals kept because the mode is additive.
    pub kept_by_mode: usize,
    /// Would-be removals of lost subjects (withheld, whatever else the plan does).
    pub lost_kept: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    pub count: usize,
    pub reason: String,
    /// The plan's name for approval: a stable hash of the target group and the exact removal
    /// set. `None` when the removals were withheld because a side was not read in full: no
    /// approval can stand in for a complete read.
    pub plan_hash: Option<String>,
    /// The removals an approval would let through.
    pub removals: Vec<Member>,
}

/// The approval name of removing exactly `removals` from `group`: the first 16 hex digits of
/// SHA-256 over the group and the sorted (source, id) pairs, so it does not depend on Grouper's
/// order. The name is a safety token (it lets removals through), so it comes from a
/// cryptographic hash: nobody can make another removal set with the same name.
pub fn plan_hash(group: &str, removals: &[Member]) -> String {
    let mut keys: Vec<(&str, &str)> = removals
        .iter()
        .map(|m| (m.source_id.as_str(), m.id.as_str()))
        .collect();
    keys.sort_unstable();
    let mut text = format!("{group}\n");
    for (source, id) in keys {
        text.push_str(&format!("{source}\t{id}\n"));
    }
    crate::policy::hashing::sha256_hex16(text.as_bytes())
}

impl Plan {
    /// Lets a withheld plan through if `approved` names it. Returns the hash it used.
    pub fn approve(&mut self, approved: &[String]) -> Option<String> {
        let hash = self.withheld.as_ref()?.plan_hash.clone()?;
        if !approved.iter().any(|a| a.eq_ignore_ascii_case(&hash)) {
            return None;
        }
        let withheld = self.withheld.take()?;
        self.to_remove.extend(withheld.removals);
        Some(hash)
    }
}

/// What the reads tell the plan besides the two sides' members.
#[derive(Debug, Clone, Copy, Default)]
pub struct Safety<'a> {
    /// Why a side was not read in full (then nobody is removed); `None` when both were.
    pub incomplete: Option<&'a str>,
    /// Keys of members whose hub users are still in the hub but whose read lost the subject:
    /// their removal is withheld (approvable) while the rest of the plan goes ahead.
    pub lost: Option<&'a BTreeSet<String>>,
    /// Members already removed from this group in the last 24 hours (the daily budget).
    pub removed_last_day: usize,
}

impl Safety<'_> {
    /// Both sides read in full, nothing lost, nothing removed lately.
    pub const COMPLETE: Safety<'static> = Safety {
        incomplete: None,
        lost: None,
        removed_last_day: 0,
    };
}

/// What the plan of one written group follows: the group's name in the plan's hash and the
/// messages, and the target's rules as they apply to that group's members.
#[derive(Debug, Clone, Copy)]
pub struct PlanScope<'a> {
    pub label: &'a str,
    pub direction: Direction,
    pub mode: Mode,
    pub limits: &'a RemovalLimits,
    /// Members (by key or id) never removed.
    pub protected: &'a BTreeSet<String>,
    /// Only members of this source are managed (`None`: any source but the unmanaged ones).
    pub source_id: Option<&'a str>,
}

impl<'a> PlanScope<'a> {
    /// A to_grouper target's plan: its Grouper group, by its own rules.
    pub fn of(target: &'a Target) -> Self {
        PlanScope {
            label: &target.group_path,
            direction: target.direction(),
            mode: target.rules.mode,
            limits: &target.rules.limits,
            protected: &target.rules.protected,
            source_id: target.rules.source_id.as_deref(),
        }
    }
}

/// Is this member one the sync manages (not a group or internal subject, of `source_id` when
/// set, with a key to match on)?
pub fn is_managed(member: &Member, source_id: Option<&str>) -> bool {
    if UNMANAGED_SOURCES.contains(&member.source_id.as_str()) || member.key.is_none() {
        return false;
    }
    source_id.is_none_or(|src| member.source_id == src)
}

/// The diff, and the safety rules over its removals, in this order: an incomplete read removes
/// nobody (not approvable); nobody desired, the per-pass limits or the daily budget withhold
/// every removal (approvable as one plan); otherwise lost subjects are withheld (approvable)
/// and the other removals go ahead.
pub fn plan(scope: &PlanScope, desired: &dyn Subjects, current: &[Member], safety: Safety) -> Plan {
    // Only members the sync manages count as present: with source_id set, the same id in
    // another source is another subject (found by the property tests).
    let mut current_keys: Vec<&str> = current
        .iter()
        .filter(|m| is_managed(m, scope.source_id))
        .filter_map(|m| m.key.as_deref())
        .collect();
    current_keys.sort_unstable();
    let mut to_add: Vec<String> = Vec::new();
    desired.each_in_order(&mut |s| {
        if current_keys.binary_search(&s).is_err() {
            to_add.push(s.to_string());
        }
    });

    let mut unmanaged_kept = 0;
    let mut protected_kept = 0;
    let mut candidates: Vec<Member> = Vec::new();
    for m in current {
        if !is_managed(m, scope.source_id) {
            unmanaged_kept += 1;
            continue;
        }
        let key = m.key.as_deref().unwrap_or_default();
        if desired.has(key) {
            continue;
        }
        if scope.protected.contains(key) || scope.protected.contains(&m.id) {
            protected_kept += 1;
            continue;
        }
        candidates.push(m.clone());
    }

    let n = candidates.len();
    let mut plan = Plan {
        to_add,
        to_remove: Vec::new(),
        removal_candidates: n,
        withheld: None,
        protected_kept,
        unmanaged_kept,
        kept_by_mode: 0,
        lost_kept: 0,
    };
    if n == 0 {
        return plan;
    }
    if scope.mode == Mode::Additive {
        plan.kept_by_mode = n;
        return plan;
    }
    let limits = scope.limits;
    if let Some(why) = safety.incomplete {
        plan.withheld = Some(Withheld {
            count: n,
            reason: format!("incomplete read, so nobody is removed: {why}"),
            plan_hash: None,
            removals: Vec::new(),
        });
        return plan;
    }
    let (lost, free): (Vec<Member>, Vec<Member>) = candidates.into_iter().partition(|m| {
        safety
            .lost
            .is_some_and(|lost| m.key.as_deref().is_some_and(|k| lost.contains(k)))
    });
    let f = free.len();
    plan.lost_kept = lost.len();
    let day = safety.removed_last_day + f;
    let lost_note = if lost.is_empty() {
        String::new()
    } else {
        format!(" ({} of them lost subjects)", lost.len())
    };
    // An empty desired set with members to remove is how a lost auth_state (no
    // JUPYTERHUB_CRYPT_KEY) or a wrong mapping looks: it empties the group, whatever its size.
    let withheld_reason = if desired.is_empty() {
        Some(match scope.direction {
            Direction::ToGrouper => format!(
                "no hub user maps to a subject, so all {n} managed member(s) would be removed (is auth_state readable, JUPYTERHUB_CRYPT_KEY set, the mapping right?)"
            ),
            Direction::ToHub => format!(
                "no member of the Grouper group maps to a hub user, so all {n} user(s) would leave the hub group (is the Grouper group empty on purpose, auth_state readable, the mapping right?)"
            ),
        })
    } else if f > limits.max_removals {
        Some(format!(
            "{f} removals exceed max_removals={}{lost_note}",
            limits.max_removals
        ))
    } else if f > limits.fraction_floor && (f as f64) > limits.max_fraction * current.len() as f64 {
        Some(format!(
            "{f} removals are more than max_removal_fraction={} of the {} current members{lost_note}",
            limits.max_fraction,
            current.len()
        ))
    } else if f > 0 && day > limits.max_per_day {
        Some(format!(
            "{f} removals would make {day} in 24 hours ({} already), more than max_removals_per_day={}{lost_note}",
            safety.removed_last_day, limits.max_per_day
        ))
    } else if f > 0
        && day > limits.fraction_floor
        && (day as f64)
            > limits.max_fraction_per_day * (current.len() + safety.removed_last_day) as f64
    {
        Some(format!(
            "{f} removals would make {day} in 24 hours ({} already), more than max_removal_fraction_per_day={} of the group{lost_note}",
            safety.removed_last_day, limits.max_fraction_per_day
        ))
    } else {
        None
    };
    let withhold = |count: usize, reason: String, removals: Vec<Member>| Withheld {
        count,
        reason,
        plan_hash: Some(plan_hash(scope.label, &removals)),
        removals,
    };
    match withheld_reason {
        Some(reason) => {
            let mut all = free;
            all.extend(lost);
            plan.withheld = Some(withhold(n, reason, all));
        }
        None => {
            plan.to_remove = free;
            if !lost.is_empty() {
                let reason = format!(
                    "{} member(s) belong to hub users who are still in the hub but whose auth_state no longer yields the subject an earlier read found (lost subjects: auth_state cleared or reshaped, JUPYTERHUB_CRYPT_KEY changed?); their membership is kept",
                    lost.len()
                );
                plan.withheld = Some(withhold(lost.len(), reason, lost));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of a to_grouper target's group.
    fn plan(
        target: &Target,
        desired: &BTreeSet<String>,
        current: &[Member],
        safety: Safety,
    ) -> Plan {
        super::plan(&PlanScope::of(target), desired, current, safety)
    }
    use crate::model::{RemovalLimits, Side, SubjectFrom, SubjectLookup, TargetRules, UserFilters};

    fn target(mode: Mode, max_removals: usize, max_fraction: f64, floor: usize) -> Target {
        Target {
            group_path: "a:b".into(),
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
                source_id: None,
                mode,
                limits: RemovalLimits {
                    max_removals,
                    max_fraction,
                    fraction_floor: floor,
                    max_per_day: usize::MAX,
                    max_fraction_per_day: 1.0,
                },
                protected: ["keep".to_string()].into(),
            },
        }
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            source_id: "ldap".into(),
            key: Some(id.into()),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const COMPLETE: Safety = Safety::COMPLETE;

    fn incomplete(why: &str) -> Safety<'_> {
        Safety {
            incomplete: Some(why),
            ..Safety::COMPLETE
        }
    }

    #[test]
    fn diff_adds_and_removes() {
        let cur = vec![member("1"), member("2"), member("stale")];
        let p = plan(
            &target(Mode::Mirror, 10, 1.0, 0),
            &set(&["1", "2", "3"]),
            &cur,
            COMPLETE,
        );
        assert_eq!(p.to_add, ["3"]);
        assert_eq!(p.to_remove, [member("stale")]);
        assert!(p.withheld.is_none());
    }

    #[test]
    fn protected_and_unmanaged_are_never_removed() {
        let cur = vec![
            member("keep"),
            Member {
                id: "etc:admins".into(),
                source_id: "g:gsa".into(),
                key: Some("etc:admins".into()),
            },
            Member {
                id: "GrouperSystem".into(),
                source_id: "g:isa".into(),
                key: Some("GrouperSystem".into()),
            },
            Member {
                id: "99".into(),
                source_id: "ldap".into(),
                key: None,
            },
        ];
        let p = plan(&target(Mode::Mirror, 10, 1.0, 0), &set(&[]), &cur, COMPLETE);
        assert!(p.to_remove.is_empty());
        assert_eq!((p.protected_kept, p.unmanaged_kept), (1, 3));
    }

    #[test]
    fn other_sources_are_unmanaged_when_a_source_is_set() {
        let mut t = target(Mode::Mirror, 10, 1.0, 0);
        t.rules.source_id = Some("ldap".into());
        let cur = vec![
            member("x"),
            Member {
                id: "y".into(),
                source_id: "jdbc".into(),
                key: Some("y".into()),
            },
        ];
        let p = plan(&t, &set(&["z"]), &cur, COMPLETE);
        assert_eq!(p.to_remove, [member("x")]);
        assert_eq!(p.unmanaged_kept, 1);
    }

    #[test]
    fn a_member_with_the_same_id_in_another_source_is_another_subject() {
        // found by tests/properties.rs: with source_id set, jdbc:u11 is not ldap:u11
        let mut t = target(Mode::Mirror, 10, 1.0, 0);
        t.rules.source_id = Some("ldap".into());
        let cur = vec![Member {
            id: "u11".into(),
            source_id: "jdbc".into(),
            key: Some("u11".into()),
        }];
        let p = plan(&t, &set(&["u11"]), &cur, COMPLETE);
        assert_eq!(p.to_add, ["u11"]);
        assert!(p.to_remove.is_empty());
    }

    #[test]
    fn incomplete_reads_remove_nobody_but_still_add() {
        let cur = vec![member("1"), member("stale")];
        for why in ["user x unread", "the hub listed fewer users than its total"] {
            let p = plan(
                &target(Mode::Mirror, 100, 1.0, 0),
                &set(&["1", "new"]),
                &cur,
                incomplete(why),
            );
            assert_eq!(p.to_add, ["new"]);
            assert!(p.to_remove.is_empty());
            let w = p.withheld.unwrap();
            assert_eq!(w.count, 1);
            assert!(w.reason.contains("incomplete read") && w.reason.contains(why));
        }
    }

    #[test]
    fn absolute_limit_withholds_all_removals() {
        let cur: Vec<Member> = (0..5).map(|i| member(&i.to_string())).collect();
        let p = plan(
            &target(Mode::Mirror, 3, 1.0, 0),
            &set(&["new"]),
            &cur,
            COMPLETE,
        );
        assert!(p.to_remove.is_empty());
        assert_eq!(p.to_add, ["new"]);
        assert!(p.withheld.unwrap().reason.contains("max_removals=3"));
        // exactly at the limit goes ahead
        let p = plan(
            &target(Mode::Mirror, 5, 1.0, 0),
            &set(&["new"]),
            &cur,
            COMPLETE,
        );
        assert_eq!(p.to_remove.len(), 5);
    }

    #[test]
    fn fraction_limit_applies_above_the_floor() {
        let cur: Vec<Member> = (0..100).map(|i| member(&i.to_string())).collect();
        let keep: BTreeSet<String> = (0..85).map(|i| i.to_string()).collect();
        // 15 of 100 is over 10 % and over the floor of 5
        let p = plan(&target(Mode::Mirror, 1000, 0.10, 5), &keep, &cur, COMPLETE);
        assert!(p.withheld.unwrap().reason.contains("max_removal_fraction"));
        // 3 of 4 is over the fraction but not over the floor: a small group can shed a stale member
        let small: Vec<Member> = (0..4).map(|i| member(&i.to_string())).collect();
        let p = plan(
            &target(Mode::Mirror, 1000, 0.10, 5),
            &set(&["0"]),
            &small,
            COMPLETE,
        );
        assert_eq!(p.to_remove.len(), 3);
    }

    #[test]
    fn additive_mode_never_removes() {
        let cur = vec![member("stale")];
        let p = plan(
            &target(Mode::Additive, 10, 1.0, 0),
            &set(&["a"]),
            &cur,
            COMPLETE,
        );
        assert!(p.to_remove.is_empty() && p.withheld.is_none());
        assert_eq!(p.kept_by_mode, 1);
        assert_eq!(p.to_add, ["a"]);
    }

    #[test]
    fn an_empty_desired_set_never_empties_even_a_small_group() {
        let small = vec![member("a"), member("b")];
        let p = plan(
            &target(Mode::Mirror, 1000, 1.0, 5),
            &set(&[]),
            &small,
            COMPLETE,
        );
        assert!(p.to_remove.is_empty());
        let withheld = p.withheld.unwrap();
        assert!(
            withheld.reason.contains("no hub user maps"),
            "{}",
            withheld.reason
        );
        assert!(
            withheld.plan_hash.is_some(),
            "it can be approved when it is real"
        );
    }

    #[test]
    fn empty_desired_against_full_group_is_withheld_by_fraction() {
        let cur: Vec<Member> = (0..30).map(|i| member(&i.to_string())).collect();
        let p = plan(
            &target(Mode::Mirror, 50, 0.10, 5),
            &set(&[]),
            &cur,
            COMPLETE,
        );
        assert!(p.to_remove.is_empty());
        assert_eq!(p.withheld.unwrap().count, 30);
    }

    #[test]
    fn an_approved_plan_goes_through_and_only_that_plan() {
        let cur: Vec<Member> = (0..8).map(|i| member(&format!("m{i}"))).collect();
        let t = target(Mode::Mirror, 5, 1.0, 0);
        let p = plan(&t, &set(&[]), &cur, COMPLETE);
        let hash = p.withheld.as_ref().unwrap().plan_hash.clone().unwrap();
        assert_eq!(hash.len(), 16);
        // the same removals in another order name the same plan
        let mut reversed = cur.clone();
        reversed.reverse();
        let again = plan(&t, &set(&[]), &reversed, COMPLETE);
        assert_eq!(again.withheld.unwrap().plan_hash.as_ref(), Some(&hash));
        // another plan (one member more) has another name and stays withheld
        let mut more = cur.clone();
        more.push(member("m8"));
        let mut other = plan(&t, &set(&[]), &more, COMPLETE);
        assert_ne!(
            other.withheld.as_ref().unwrap().plan_hash.as_ref(),
            Some(&hash)
        );
        assert_eq!(other.approve(std::slice::from_ref(&hash)), None);
        assert!(other.to_remove.is_empty() && other.withheld.is_some());
        // the approved one goes through, whole
        let mut p = p;
        assert_eq!(p.approve(&[hash.to_uppercase()]), Some(hash));
        assert_eq!(p.to_remove.len(), 8);
        assert!(p.withheld.is_none());
    }

    #[test]
    fn a_plan_is_named_by_sha256_of_its_group_and_sorted_removals() {
        // python3 -c "import hashlib; print(hashlib.sha256(b'a:b\nldap\t1\nldap\t2\n').hexdigest()[:16])"
        assert_eq!(
            plan_hash("a:b", &[member("2"), member("1")]),
            "5b7621c94dbea052"
        );
    }

    #[test]
    fn lost_subjects_are_withheld_apart_and_approvable_while_the_rest_goes() {
        let cur: Vec<Member> = ["1", "2", "gone", "lost1", "lost2"].map(member).to_vec();
        let lost = set(&["lost1", "lost2"]);
        let safety = Safety {
            lost: Some(&lost),
            ..Safety::COMPLETE
        };
        let t = target(Mode::Mirror, 10, 1.0, 0);
        let mut p = plan(&t, &set(&["1", "2"]), &cur, safety);
        assert_eq!(p.to_remove, [member("gone")], "a departure goes ahead");
        assert_eq!(p.lost_kept, 2);
        let w = p.withheld.clone().unwrap();
        assert_eq!((w.count, w.removals.len()), (2, 2));
        assert!(w.reason.contains("lost subjects"), "{}", w.reason);
        let hash = w.plan_hash.unwrap();
        assert_eq!(hash, plan_hash("a:b", &[member("lost1"), member("lost2")]));
        assert!(p.approve(&[hash]).is_some());
        assert_eq!(
            p.to_remove.len(),
            3,
            "approved: the departure and the lost ones"
        );
        // over a limit, everything is withheld as one plan
        let t = target(Mode::Mirror, 0, 1.0, 0);
        let p = plan(&t, &set(&["1", "2"]), &cur, safety);
        let w = p.withheld.unwrap();
        assert!(p.to_remove.is_empty() && w.count == 3 && w.removals.len() == 3);
        assert!(
            w.reason
                .contains("max_removals=0 (2 of them lost subjects)"),
            "{}",
            w.reason
        );
    }

    #[test]
    fn the_daily_budget_counts_removals_of_the_last_day() {
        let cur: Vec<Member> = (0..50).map(|i| member(&i.to_string())).collect();
        let keep: BTreeSet<String> = (0..45).map(|i| i.to_string()).collect();
        let mut t = target(Mode::Mirror, 50, 1.0, 0);
        t.rules.limits.max_per_day = 12;
        let day = |removed_last_day| Safety {
            removed_last_day,
            ..Safety::COMPLETE
        };
        assert_eq!(
            plan(&t, &keep, &cur, day(7)).to_remove.len(),
            5,
            "7 + 5 = 12 fits"
        );
        let p = plan(&t, &keep, &cur, day(8));
        assert!(p.to_remove.is_empty());
        let w = p.withheld.unwrap();
        assert!(
            w.reason.contains(
                "would make 13 in 24 hours (8 already), more than max_removals_per_day=12"
            ),
            "{}",
            w.reason
        );
        assert!(w.plan_hash.is_some());
        t.rules.limits.max_per_day = 1000;
        t.rules.limits.max_fraction_per_day = 0.2;
        t.rules.limits.fraction_floor = 5;
        // (5 + 7) of (50 + 7) is above 20 %
        let p = plan(&t, &keep, &cur, day(7));
        assert!(p
            .withheld
            .unwrap()
            .reason
            .contains("max_removal_fraction_per_day=0.2"));
        assert_eq!(
            plan(&t, &keep, &cur, day(5)).to_remove.len(),
            5,
            "10 of 55 fits"
        );
    }

    #[test]
    fn an_incomplete_read_cannot_be_approved() {
        let cur: Vec<Member> = (0..8).map(|i| member(&format!("m{i}"))).collect();
        let t = target(Mode::Mirror, 5, 1.0, 0);
        let mut p = plan(&t, &set(&[]), &cur, incomplete("1 user unread"));
        let w = p.withheld.as_ref().unwrap();
        assert_eq!(w.plan_hash, None);
        let any = plan_hash("a:b", &cur);
        assert_eq!(p.approve(&[any]), None);
        assert!(p.to_remove.is_empty());
    }
}
