use super::*;
use crate::test_support::simulated;
use grouper_sim::{Config, Simulator};
use std::sync::Arc;

const GROUP: &str = "edu:berkeley:app:datahub:course-101";

fn conn(sim: &Simulator) -> (Connection, impl Fn(&Request) -> Response + '_) {
    let conn = Connection::new(
        "http://g/grouper-ws/servicesRest/json/v2_5_000",
        "GrouperSystem",
        "pass",
        "application/json; charset=UTF-8",
    );
    (conn, move |r: &Request| simulated(sim, r).unwrap())
}

fn sim_with_group() -> Arc<Simulator> {
    let sim = Simulator::new(Config::default());
    sim.add_group(GROUP);
    sim
}

#[test]
fn the_mark_is_one_transaction_of_marker_target_and_do_provision_and_reads_back() {
    let sim = sim_with_group();
    let (conn, send) = conn(&sim);
    let read = |sim_group: &str| parse_read(sim_group, &send(&read_request(&conn, sim_group)));
    assert_eq!(read(GROUP), Ok(vec![]));
    assert_eq!(
        mark_state(&read(GROUP).unwrap(), "bConnected"),
        MarkState::Missing
    );

    let req = mark_request(&conn, GROUP, "bConnected");
    assert_eq!(
        req.url,
        "http://g/grouper-ws/servicesRest/json/v2_5_000/attributeAssignments"
    );
    let body: Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
    let batch = &body["WsRestAssignAttributesBatchRequest"];
    assert_eq!(batch["txType"], "READ_WRITE_NEW");
    assert_eq!(
        batch["wsAssignAttributeBatchEntries"][0]["attributeAssignOperation"],
        "add_attr"
    );
    assert_eq!(parse_mark(GROUP, "bConnected", &send(&req)), Ok(()));
    assert_eq!(
        sim.provisioning_marks(GROUP),
        vec![(Some("bConnected".into()), Some("bConnected".into()))]
    );
    // A second provisioner gets a marker of its own; the first keeps its values.
    parse_mark(
        GROUP,
        "LDAPBerkeleyIMO",
        &send(&mark_request(&conn, GROUP, "LDAPBerkeleyIMO")),
    )
    .unwrap();
    let markers = read(GROUP).unwrap();
    assert_eq!(markers.len(), 2);
    assert_eq!(mark_state(&markers, "bConnected"), MarkState::Provisioned);
    assert_eq!(
        mark_state(&markers, "LDAPBerkeleyIMO"),
        MarkState::Provisioned
    );
    assert_eq!(mark_state(&markers, "AD"), MarkState::Missing);
}

#[test]
fn a_marker_switched_off_by_an_admin_is_told_apart_from_a_missing_one() {
    let sim = sim_with_group();
    sim.mark_for_provisioning(GROUP, "bConnected", false);
    let (conn, send) = conn(&sim);
    let markers = parse_read(GROUP, &send(&read_request(&conn, GROUP))).unwrap();
    assert_eq!(
        markers,
        vec![Marker {
            target: Some("bConnected".into()),
            do_provision: None
        }]
    );
    assert_eq!(mark_state(&markers, "bConnected"), MarkState::SwitchedOff);
}

#[test]
fn without_attr_update_nothing_is_assigned_and_the_error_says_what_to_grant() {
    let sim = sim_with_group();
    sim.deny_attribute_update("etc:provisioning:provisioningValueDef");
    let (conn, send) = conn(&sim);
    let resp = send(&mark_request(&conn, GROUP, "bConnected"));
    assert_eq!(resp.status, 500);
    let e = parse_mark(GROUP, "bConnected", &resp).unwrap_err();
    assert_eq!(e.kind, ErrorKind::GrouperForbidden, "{}", e.message);
    assert!(e.message.contains("ATTR_UPDATE"), "{}", e.message);
    // The marker of entry 0 was rolled back with the values that failed.
    assert_eq!(sim.provisioning_marks(GROUP), vec![]);
}

#[test]
fn marks_the_grouper_user_cannot_read_are_invisible_not_an_error() {
    let sim = sim_with_group();
    sim.mark_for_provisioning(GROUP, "bConnected", true);
    sim.deny_attribute_read("etc:provisioning:provisioningDef");
    let (conn, send) = conn(&sim);
    assert_eq!(
        parse_read(GROUP, &send(&read_request(&conn, GROUP))),
        Ok(vec![])
    );
}

#[test]
fn a_grouper_without_the_provisioning_attributes_is_a_configuration_error() {
    let sim = sim_with_group();
    sim.remove_provisioning_attributes();
    let (conn, send) = conn(&sim);
    let e = parse_read(GROUP, &send(&read_request(&conn, GROUP))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{}", e.message);
    let e = parse_mark(GROUP, "x", &send(&mark_request(&conn, GROUP, "x"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{}", e.message);
    assert!(e.message.contains("Grouper 2.6"), "{}", e.message);
}

#[test]
fn a_group_the_grouper_user_cannot_update_is_forbidden_and_unmarked() {
    let sim = sim_with_group();
    sim.edit_group(GROUP, |g| g.update_denied = true);
    let (conn, send) = conn(&sim);
    let e = parse_mark(GROUP, "x", &send(&mark_request(&conn, GROUP, "x"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::GrouperForbidden);
    assert_eq!(sim.provisioning_marks(GROUP), vec![]);
}

#[test]
fn answers_that_cannot_be_trusted_are_refused() {
    let ok = |body: Value| Response {
        status: 200,
        headers: vec![("x-grouper-success".into(), "T".into())],
        body: body.to_string().into_bytes(),
    };
    let top = json!({"resultCode": "SUCCESS", "success": "T"});
    // a marker of another group
    let other = ok(
        json!({"WsGetAttributeAssignmentsResults": {"resultMetadata": top,
        "wsAttributeAssigns": [{"id": "1", "attributeAssignType": "group",
            "attributeDefNameName": MARKER, "ownerGroupName": "edu:other", "enabled": "T"}]}}),
    );
    assert_eq!(
        parse_read(GROUP, &other).unwrap_err().kind,
        ErrorKind::GrouperBadAnswer
    );
    // fewer rows than entries sent, with a success on top
    let short = ok(
        json!({"WsAssignAttributesBatchResults": {"resultMetadata": top,
        "wsAssignAttributeBatchResultArray": [{"resultMetadata": top}]}}),
    );
    assert_eq!(
        parse_mark(GROUP, "x", &short).unwrap_err().kind,
        ErrorKind::GrouperBadAnswer
    );
    // a disabled marker does not count
    let disabled = ok(
        json!({"WsGetAttributeAssignmentsResults": {"resultMetadata": top,
        "wsAttributeAssigns": [{"id": "1", "attributeAssignType": "group",
            "attributeDefNameName": MARKER, "ownerGroupName": GROUP, "enabled": "F"}]}}),
    );
    assert_eq!(parse_read(GROUP, &disabled), Ok(vec![]));
}
