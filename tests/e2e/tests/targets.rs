//! Several target groups in one pass (the built component against the fake hub and the
//! simulator): the all-users group of the flat settings, and groups that follow hub groups. The hub
//! is listed once; each target is planned and written on its own, and one that fails fails alone.

use grouper_sync_e2e as common;

use common::world::{error, ops, settings, world, World, GROUP};
use common::*;
use grouper_sim::{Operation, Subject};

const COURSE: &str = "edu:example:app:hub:course-101";
const MISSING: &str = "edu:example:app:hub:gpu-quota";

fn with_course_groups(w: &World) {
    let mut st = w.hub.state.lock().unwrap();
    st.groups
        .insert("alice".into(), vec!["course-101".into(), "gpu".into()]);
    st.groups
        .insert("dan@example.edu".into(), vec!["course-101".into()]);
    st.groups.insert("admin".into(), vec!["course-101".into()]);
    drop(st);
    w.sim.add_group(COURSE);
    w.sim.add_subject(Subject::new("ldap", "100777"));
    w.sim.add_member(COURSE, "ldap", "100777"); // dropped the course
    w.sim.add_member(COURSE, "g:gsa", "edu:example:instructors");
}

const FOLDER: &str = "edu:example:app:hub";

/// The course groups, and bob in course-202, whose Grouper group does not exist.
fn world_with_a_new_course() -> World {
    let w = world();
    with_course_groups(&w);
    w.hub
        .state
        .lock()
        .unwrap()
        .groups
        .insert("bob".into(), vec!["course-202".into()]);
    w
}

fn targets_json() -> String {
    format!(
        r#"[{{"grouper_group": "{COURSE}", "hub_group": "course-101"}},
            {{"grouper_group": "{MISSING}", "hub_group": "gpu"}}]"#
    )
}

#[test]
fn hub_groups_drive_their_own_grouper_groups_and_a_failing_target_fails_alone() {
    let w = world();
    with_course_groups(&w);
    let cfg = with(settings(&w), &[("targets", &targets_json())]);
    let run = run_component(Entry::Typed, &cfg, &[]);
    let r = run.report();
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3, "{r}");
    // the flat all-users target, as always
    assert_eq!(targets[0]["group"], GROUP);
    assert_eq!(targets[0]["outcome"], "converged", "{r}");
    assert_eq!(
        w.sim.member_ids(GROUP),
        ["100001", "100002", "100004", "edu:example:staff"]
    );
    // the course: its two non-admin members in, the one who left out, the instructors group kept
    assert_eq!(targets[1]["group"], COURSE);
    assert_eq!(targets[1]["outcome"], "converged", "{r}");
    assert_eq!(
        (
            targets[1]["users_selected"].as_u64(),
            targets[1]["admins_skipped"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        w.sim.member_ids(COURSE),
        ["100001", "100004", "edu:example:instructors"]
    );
    // the missing Grouper group fails alone, and the pass says so
    assert_eq!(targets[2]["group"], MISSING);
    let (kind, message) = error(&targets[2]["error"]);
    assert_eq!(kind, "group-not-found", "{message}");
    assert_eq!(r["outcome"], "failed", "the worst of its targets");
    // the hub was listed once and each selected user's auth_state read once
    let hub_requests = w.hub.state.lock().unwrap().requests.clone();
    let lists = hub_requests
        .iter()
        .filter(|p| p.contains("/users?"))
        .count();
    let alice_reads = hub_requests
        .iter()
        .filter(|p| p.ends_with("/users/alice"))
        .count();
    assert_eq!((lists, alice_reads), (3, 1), "{hub_requests:?}");
}

#[test]
fn without_groups_in_the_list_the_pass_names_the_missing_scope_and_writes_nothing() {
    let w = world();
    with_course_groups(&w);
    w.hub.state.lock().unwrap().omit_groups = true;
    let cfg = with(settings(&w), &[("targets", &targets_json())]);
    let run = run_component(Entry::Typed, &cfg, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "failed");
    let (kind, message) = error(&r["errors"][0]);
    assert_eq!(kind, "hub-forbidden");
    assert!(message.contains("read:users:groups"), "{message}");
    assert_eq!(r["errors"][0]["missing_scope"], "read:users:groups");
    let writes = w
        .sim
        .requests()
        .iter()
        .filter(|q| {
            matches!(
                q.operation,
                Some(Operation::AddMember | Operation::DeleteMember)
            )
        })
        .count();
    assert_eq!(writes, 0);
    assert_eq!(
        w.sim.member_ids(COURSE),
        ["100777", "edu:example:instructors"]
    );
}

#[test]
fn a_bad_targets_list_is_a_configuration_error_naming_the_entry() {
    let w = world();
    let cfg = with(
        settings(&w),
        &[(
            "targets",
            r#"[{"grouper_group": "edu:x:y", "hub_grup": "x"}]"#,
        )],
    );
    let run = run_component(Entry::Typed, &cfg, &[]);
    let e = run.result.unwrap_err();
    assert!(
        e.contains("[config]") && e.contains("targets[0] (edu:x:y)") && e.contains("hub_grup"),
        "{e}"
    );
    assert!(w.sim.requests().is_empty());
}

#[test]
fn a_pattern_makes_one_target_per_course_group_and_a_missing_one_fails_alone() {
    let w = world();
    {
        let mut st = w.hub.state.lock().unwrap();
        st.groups.insert(
            "alice".into(),
            vec!["course-data8".into(), "course-cs61a".into(), "gpu".into()],
        );
        st.groups.insert("bob".into(), vec!["course-data8".into()]);
        st.groups
            .insert("dan@example.edu".into(), vec!["course-stat20".into()]);
    }
    for course in ["data8", "cs61a"] {
        w.sim
            .add_group(&format!("edu:example:app:hub:course-{course}"));
    }
    w.sim
        .add_member("edu:example:app:hub:course-cs61a", "ldap", "stale1");
    let targets = r#"[{"grouper_group": "edu:example:app:hub:course-{1}", "hub_group_pattern": "course-([a-z0-9]+)"}]"#;
    let cfg = with(settings(&w), &[("targets", targets)]);
    let run = run_component(Entry::Typed, &cfg, &[]);
    let r = run.report();
    let groups: Vec<&str> = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            GROUP,
            "edu:example:app:hub:course-cs61a",
            "edu:example:app:hub:course-data8",
            "edu:example:app:hub:course-stat20"
        ]
    );
    assert_eq!(
        w.sim.member_ids("edu:example:app:hub:course-data8"),
        ["100001", "100002"]
    );
    assert_eq!(
        w.sim.member_ids("edu:example:app:hub:course-cs61a"),
        ["100001"]
    );
    let (kind, _) = error(&r["targets"][3]["error"]);
    assert_eq!(kind, "group-not-found");
    for i in 0..3 {
        assert_eq!(r["targets"][i]["outcome"], "converged", "{r}");
    }
}

#[test]
fn create_missing_groups_makes_grouper_groups_inside_the_folder_only() {
    let w = world_with_a_new_course();
    // course-202 and gpu-quota do not exist; course-101 does
    let targets = format!(
        r#"[{{"grouper_group": "{FOLDER}:{{0}}", "hub_group_pattern": "course-.*",
              "create_missing_groups": true, "grouper_folder": "{FOLDER}"}},
            {{"grouper_group": "{MISSING}", "hub_group": "gpu", "create_missing_groups": true,
              "grouper_folder": "{FOLDER}"}}]"#
    );
    let cfg = with(settings(&w), &[("targets", &targets)]);
    // a dry run creates nothing and plans against an empty group
    let dry = run_component(
        Entry::Typed,
        &with(cfg.clone(), &[("dry_run", "true")]),
        &[],
    );
    let r = dry.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert!(!w.sim.has_group(MISSING));
    assert_eq!(r["targets"][3]["to_add"], 1, "{r}");

    let run = run_component(Entry::Typed, &cfg, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    let created: Vec<(&str, bool)> = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["group"].as_str().unwrap(),
                t["group_created"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        created,
        [
            (GROUP, false),
            (COURSE, false),
            ("edu:example:app:hub:course-202", true),
            (MISSING, true)
        ]
    );
    assert_eq!(
        w.sim.member_ids("edu:example:app:hub:course-202"),
        ["100002"]
    );
    assert_eq!(w.sim.member_ids(MISSING), ["100001"]);
    let saves = ops(&w.sim)
        .iter()
        .filter(|o| **o == Operation::GroupSave)
        .count();
    assert_eq!(saves, 2, "one groupSave per missing group");
    // the next pass finds them and creates nothing
    let again = run_component(Entry::Typed, &cfg, &[]);
    assert_eq!(again.report()["outcome"], "converged");
    assert_eq!(
        ops(&w.sim)
            .iter()
            .filter(|o| **o == Operation::GroupSave)
            .count(),
        2
    );
}

#[test]
fn a_group_that_cannot_be_created_fails_alone_and_says_why() {
    let w = world();
    with_course_groups(&w);
    w.sim.deny_create("edu:example:app:hub");
    let targets = format!(
        r#"[{{"grouper_group": "{MISSING}", "hub_group": "gpu", "create_missing_groups": true,
              "grouper_folder": "edu:example:app:hub"}},
            {{"grouper_group": "edu:nowhere:x", "hub_group": "gpu", "create_missing_groups": true,
              "grouper_folder": "edu:nowhere"}}]"#
    );
    let cfg = with(settings(&w), &[("targets", &targets)]);
    let run = run_component(Entry::Typed, &cfg, &[]);
    let r = run.report();
    assert_eq!(
        r["targets"][0]["outcome"], "converged",
        "the others converge: {r}"
    );
    let (kind, message) = error(&r["targets"][1]["error"]);
    assert_eq!(kind, "grouper-forbidden", "{message}");
    assert!(message.contains("CREATE"), "{message}");
    let (kind, message) = error(&r["targets"][2]["error"]);
    assert_eq!(kind, "group-not-found", "{message}");
    assert!(
        message.contains("the folder edu:nowhere does not exist"),
        "{message}"
    );
    assert!(!w.sim.has_group(MISSING));
}

#[test]
fn check_of_a_to_hub_target_reports_its_missing_grouper_group_as_an_error() {
    // create_missing_groups makes a to_hub target's hub group, never its Grouper group
    let w = world();
    let targets = format!(
        r#"[{{"grouper_group": "{MISSING}", "direction": "to_hub", "hub_group": "gpu",
              "create_missing_groups": true}}]"#
    );
    let check = run_check(&with(settings(&w), &[("targets", &targets)]));
    assert!(!check.ok);
    let t = check.targets.iter().find(|t| t.group == MISSING).unwrap();
    assert_eq!(t.grouper_members, None);
    assert!(
        t.notes
            .iter()
            .any(|n| n.contains("the first pass creates it")),
        "the hub group is created: {:?}",
        t.notes
    );
    assert!(
        !t.notes.iter().any(|n| n.contains(MISSING)),
        "the Grouper group is not: {:?}",
        t.notes
    );
    assert!(
        check
            .errors
            .iter()
            .any(|e| e.message.contains(MISSING) && e.message.contains("GROUP_NOT_FOUND")),
        "{}",
        check.json
    );
}

#[test]
fn a_created_group_is_marked_for_its_provisioners_in_the_same_pass_and_never_again() {
    let created = "edu:example:app:hub:course-202";
    let w = world_with_a_new_course();
    let targets = format!(
        r#"[{{"grouper_group": "{FOLDER}:{{0}}", "hub_group_pattern": "course-.*",
              "create_missing_groups": true, "grouper_folder": "{FOLDER}",
              "provision_to": ["bConnected", "LDAPBerkeleyIMO"]}}]"#
    );
    let cfg = with(settings(&w), &[("targets", &targets)]);
    let marking = |sim: &grouper_sim::Simulator| {
        ops(sim)
            .iter()
            .filter(|o| **o == Operation::AssignAttributesBatch)
            .count()
    };
    let provisioning = |r: &serde_json::Value, group: &str| {
        r["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["group"] == group)
            .map(|t| t["provisioning"].clone())
            .unwrap()
    };

    // a dry run plans the marks and assigns nothing
    let dry = run_component(
        Entry::Typed,
        &with(cfg.clone(), &[("dry_run", "true")]),
        &[],
    );
    let r = dry.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(
        provisioning(r, created)["marked"],
        serde_json::json!(["bConnected", "LDAPBerkeleyIMO"]),
        "{r}"
    );
    assert_eq!(marking(&w.sim), 0);

    let run = run_component(Entry::Typed, &cfg, &[]);
    let r = run.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(
        provisioning(r, created)["marked"],
        serde_json::json!(["bConnected", "LDAPBerkeleyIMO"])
    );
    // course-101 existed: without ensure_provisioning it is neither read nor marked
    assert!(provisioning(r, COURSE).is_null(), "{r}");
    assert_eq!(
        w.sim.provisioning_marks(created),
        [
            (Some("bConnected".into()), Some("bConnected".into())),
            (
                Some("LDAPBerkeleyIMO".into()),
                Some("LDAPBerkeleyIMO".into())
            )
        ]
    );
    assert!(w.sim.provisioning_marks(COURSE).is_empty());
    assert_eq!(w.sim.member_ids(created), ["100002"]);
    assert_eq!(marking(&w.sim), 2, "one transaction per provisioner");

    // the next pass changes nothing
    let again = run_component(Entry::Typed, &cfg, &[]);
    assert_eq!(again.report()["outcome"], "converged");
    assert_eq!(marking(&w.sim), 2);

    // ensure_provisioning: the existing course-101 gets its marks, created's are found
    let ensure = targets.replace(
        r#""provision_to""#,
        r#""ensure_provisioning": true, "provision_to""#,
    );
    let cfg = with(settings(&w), &[("targets", &ensure)]);
    let run1 = run_component(Entry::Typed, &cfg, &[]);
    let r = run1.report();
    assert_eq!(r["outcome"], "converged", "{r}");
    assert_eq!(
        provisioning(r, COURSE)["marked"],
        serde_json::json!(["bConnected", "LDAPBerkeleyIMO"])
    );
    assert_eq!(
        provisioning(r, created)["present"],
        serde_json::json!(["bConnected", "LDAPBerkeleyIMO"])
    );
    assert_eq!(marking(&w.sim), 4);
    let run2 = run_component(Entry::Typed, &cfg, &[]);
    let r = run2.report();
    assert_eq!(
        provisioning(r, COURSE)["marked"],
        serde_json::json!([]),
        "{r}"
    );
    assert_eq!(
        marking(&w.sim),
        4,
        "marked groups are read, not marked again"
    );
}

#[test]
fn a_mark_grouper_refuses_fails_its_target_after_the_members_are_written() {
    let w = world();
    w.sim.add_stem(FOLDER);
    w.sim
        .deny_attribute_update("etc:provisioning:provisioningDef");
    let targets = format!(
        r#"[{{"grouper_group": "{MISSING}", "hub_group": "gpu", "create_missing_groups": true,
              "grouper_folder": "{FOLDER}", "provision_to": "bConnected"}}]"#
    );
    {
        let mut st = w.hub.state.lock().unwrap();
        st.groups.insert("alice".into(), vec!["gpu".into()]);
    }
    let cfg = with(settings(&w), &[("targets", &targets)]);
    let run3 = run_component(Entry::Typed, &cfg, &[]);
    let r = run3.report();
    let t = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["group"] == MISSING)
        .unwrap()
        .clone();
    assert_eq!(t["outcome"], "failed", "{r}");
    let (kind, message) = error(&t["error"]);
    assert_eq!(kind, "grouper-forbidden", "{message}");
    assert!(message.contains("ensure_provisioning"), "{message}");
    assert_eq!(t["group_created"], true);
    assert_eq!(
        w.sim.member_ids(MISSING),
        ["100001"],
        "the members were written first"
    );
    assert!(w.sim.provisioning_marks(MISSING).is_empty());
    // the flat group's target is untouched by it
    let flat = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["group"] == GROUP)
        .unwrap();
    assert_eq!(flat["outcome"], "converged", "{r}");
}

#[test]
fn check_names_the_provisioners_a_group_is_not_marked_for() {
    let w = world();
    w.sim.add_group(COURSE);
    w.sim.mark_for_provisioning(COURSE, "bConnected", true);
    w.sim.mark_for_provisioning(COURSE, "AD", false);
    let targets = format!(
        r#"[{{"grouper_group": "{COURSE}", "hub_group": "course-101",
              "provision_to": "bConnected,LDAPBerkeleyIMO,AD"}}]"#
    );
    let check = run_check(&with(settings(&w), &[("targets", &targets)]));
    let t = check.targets.iter().find(|t| t.group == COURSE).unwrap();
    let p = t.provisioning.as_ref().expect("marks read");
    assert_eq!(p.present, ["bConnected"]);
    assert_eq!(p.missing, ["LDAPBerkeleyIMO"]);
    assert_eq!(p.switched_off, ["AD"]);
    assert!(
        t.notes.iter().any(
            |n| n.contains("not marked for provisioning to LDAPBerkeleyIMO")
                && n.contains("ensure_provisioning")
        ),
        "{:?}",
        t.notes
    );
    assert!(
        check.ok,
        "missing marks are notes, not errors: {}",
        check.json
    );
    // a Grouper without the provisioning attributes is an error check names
    w.sim.remove_provisioning_attributes();
    let check = run_check(&with(settings(&w), &[("targets", &targets)]));
    assert!(!check.ok);
    assert!(
        check
            .errors
            .iter()
            .any(|e| e.message.contains("Grouper 2.6")),
        "{}",
        check.json
    );
}
