//! The captured Grouper exchanges in ../shared/fixtures/grouper (third-party data, read in place,
//! skipped with a message when absent): the client must parse every batch response, and the
//! simulator must answer each captured request with the captured status, headers and body.

use grouper_sync_testkit as common;

use common::fixture;
use grouper_sim::{Config, SimRequest, Simulator, Subject};
use jupyterhub_grouper_sync::model::SubjectLookup;
use jupyterhub_grouper_sync::wire::grouper::{parse_get_members, parse_write, WriteOp};
use jupyterhub_grouper_sync::wire::http::Response;
use serde_json::Value;
use std::sync::Arc;

fn grouper_response(status: u16, body: &Value) -> Response {
    Response {
        status,
        headers: vec![("x-grouper-success".into(), "T".into())],
        body: body.to_string().into_bytes(),
    }
}

#[test]
fn client_parses_every_batch_capture() {
    let cases = [
        (
            "getMembers_rest_response_v2_2_000_http200.json",
            "aStem:aGroup",
            vec!["10039438", "10021368", "GrouperSystem"],
        ),
        (
            "getMembers_rest_response_v2_5_000_http200.json",
            "aStem:aGroup",
            vec!["GrouperSystem", "10021368", "10039438", "test.subject.1"],
        ),
        (
            "getMembers_rest_response_server_v5_20_5_wiki_http200.json",
            "basis:hr:employee:dept:10410:affiliate",
            vec!["800000578", "800001267"],
        ),
    ];
    for (file, group, ids) in cases {
        let Some(body) = fixture(file) else { return };
        let page = parse_get_members(
            group,
            &SubjectLookup::SubjectId,
            &grouper_response(200, &body),
        )
        .unwrap();
        assert_eq!(
            page.members
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ids,
            "{file}"
        );
        assert_eq!(page.unresolvable, 0);
    }
    let pair = ["10021368".to_string(), "10039438".to_string()];
    for (file, op) in [
        (
            "addMember_rest_response_v2_2_000_http201.json",
            WriteOp::Add,
        ),
        (
            "addMember_rest_response_v2_5_000_http201.json",
            WriteOp::Add,
        ),
        (
            "deleteMember_rest_response_v2_5_000_http200.json",
            WriteOp::Delete,
        ),
    ] {
        let Some(body) = fixture(file) else { return };
        let status = if op == WriteOp::Add { 201 } else { 200 };
        let rows =
            parse_write(op, "aStem:aGroup", &pair, &grouper_response(status, &body)).unwrap();
        assert!(rows.iter().all(|r| r.success), "{file}: {rows:?}");
    }
    // Berkeley 2.2.1: HTTP 500 with two rows that worked and an unknown subject as EXCEPTION.
    let Some(body) =
        fixture("addMember_rest_response_v2_2_1_partial_failure_thirdparty_http_unknown.json")
    else {
        return;
    };
    let subjects = [
        "242881".to_string(),
        "211159".to_string(),
        "9999999".to_string(),
    ];
    let rows = parse_write(
        WriteOp::Add,
        "edu:berkeley:app:bcourses:testgroup",
        &subjects,
        &grouper_response(500, &body),
    )
    .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.success).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(rows[2].code, "EXCEPTION");
    assert_eq!(
        rows[2].subject_problem,
        Some("SUBJECT_NOT_FOUND"),
        "SUBJECT_NOT_FOUND inside an EXCEPTION row is an unresolvable subject"
    );
    assert_eq!(rows[2].reported_code(), "SUBJECT_NOT_FOUND");
    assert_eq!(rows[0].subject_problem, None);
    assert!(rows[2].message.len() <= 310 && !rows[2].message.contains('\n'));
}

/// The directory and group every Internet2 sample capture was taken against.
fn sample_world(server_version: &str, members: &[&str], fixture_group: &Value) -> Arc<Simulator> {
    let sim = Simulator::new(Config {
        server_version: server_version.into(),
        ..Config::default()
    });
    let attrs = |s: Subject, d: &str, l: &str, n: &str| {
        s.attribute("description", d)
            .attribute("loginid", l)
            .attribute("name", n)
    };
    let system_name = if server_version.starts_with("2.2") {
        "EveryEntity"
    } else {
        "GrouperSysAdmin"
    };
    sim.add_subject(attrs(
        Subject::new("g:isa", "GrouperSystem").named("GrouperSysAdmin"),
        "GrouperSysAdmin",
        "",
        system_name,
    ));
    for id in ["10021368", "10039438"] {
        sim.add_subject(attrs(Subject::new("jdbc", id), "", "", id));
    }
    sim.add_subject(attrs(
        Subject::new("jdbc", "test.subject.1").named("my name is test.subject.1"),
        "description.test.subject.1",
        "id.test.subject.1",
        "my name is test.subject.1",
    ));
    for id in ["800000578", "800001267"] {
        sim.add_subject(Subject::new("eduLDAP", id));
    }
    let name = fixture_group["name"].as_str().unwrap();
    sim.add_group(name);
    sim.edit_group(name, |g| {
        g.description = fixture_group["description"].as_str().unwrap().into();
        g.display_name = fixture_group["displayName"].as_str().unwrap().into();
        g.uuid = fixture_group["uuid"].as_str().unwrap().into();
        g.id_index = fixture_group["idIndex"].as_str().unwrap().parse().unwrap();
    });
    for m in members {
        let source = match *m {
            "GrouperSystem" => "g:isa",
            id if id.starts_with("800") => "eduLDAP",
            _ => "jdbc",
        };
        sim.add_member(name, source, m);
    }
    sim
}

/// Values that differ per installation or per call; their presence must still match.
const VOLATILE: &[&str] = &["millis", "resultMessage", "memberId", "resultWarnings"];

fn sort_key(v: &Value) -> Option<String> {
    v.get("id")
        .or_else(|| v.get("wsSubject").and_then(|s| s.get("id")))
        .and_then(Value::as_str)
        .map(String::from)
}

fn assert_same(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<&String> = e.keys().collect();
            let ak: Vec<&String> = a.keys().collect();
            assert_eq!(ek, ak, "keys differ at {path}");
            for (k, ev) in e {
                if !VOLATILE.contains(&k.as_str()) {
                    assert_same(ev, &a[k], &format!("{path}.{k}"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "array length differs at {path}");
            let (mut e, mut a) = (e.clone(), a.clone());
            // Member order is the database's on 2.2 servers; rows of writes keep request order.
            if path.ends_with("wsSubjects") {
                e.sort_by_key(sort_key);
                a.sort_by_key(sort_key);
            }
            for (i, (ev, av)) in e.iter().zip(&a).enumerate() {
                assert_same(ev, av, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "value differs at {path}"),
    }
}

struct Case {
    response: &'static str,
    request: Option<&'static str>,
    raw_body: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    server_version: &'static str,
    members: &'static [&'static str],
    status: u16,
    result_code: &'static str,
}

const SAMPLE_MEMBERS: &[&str] = &["GrouperSystem", "10021368", "10039438"];
const SAMPLE_MEMBERS_25: &[&str] = &["GrouperSystem", "10021368", "10039438", "test.subject.1"];
const V22: &str = "/grouper-ws/servicesRest/v2_2_000";
const G: &str = "aStem%3AaGroup";

fn cases() -> Vec<Case> {
    let c = |response,
             request,
             method,
             path: String,
             content_type,
             server_version,
             members,
             status,
             result_code| Case {
        response,
        request,
        raw_body: "",
        method,
        path: Box::leak(path.into_boxed_str()),
        content_type,
        server_version,
        members,
        status,
        result_code,
    };
    let json = Some("application/json; charset=UTF-8");
    let xjson = Some("text/x-json; charset=UTF-8");
    vec![
        c(
            "getMembers_rest_response_v2_5_000_http200.json",
            Some("getMembers_rest_request_v2_5_000.json"),
            "POST",
            "/grouper-ws/servicesRest/v2_5_000/groups".into(),
            json,
            "2.5.0",
            SAMPLE_MEMBERS_25,
            200,
            "SUCCESS",
        ),
        c(
            "getMembers_rest_response_v2_2_000_http200.json",
            Some("getMembers_rest_request_v2_2_000.json"),
            "POST",
            format!("{V22}/groups"),
            xjson,
            "2.2.0",
            SAMPLE_MEMBERS,
            200,
            "SUCCESS",
        ),
        c(
            "getMembers_rest_response_server_v5_20_5_wiki_http200.json",
            Some("getMembers_rest_request_v5_22_3_wiki.json"),
            "POST",
            "/grouper-ws/servicesRest/5.22.3/groups".into(),
            Some("application/json"),
            "5.20.5",
            &["800000578", "800001267"],
            200,
            "SUCCESS",
        ),
        c(
            "addMember_rest_response_v2_5_000_http201.json",
            Some("addMember_rest_request_v2_5_000.json"),
            "PUT",
            format!("/grouper-ws/servicesRest/v2_5_000/groups/{G}/members"),
            json,
            "2.5.0",
            SAMPLE_MEMBERS,
            201,
            "SUCCESS",
        ),
        c(
            "addMember_rest_response_v2_2_000_http201.json",
            Some("addMember_rest_request_v2_2_000.json"),
            "PUT",
            format!("{V22}/groups/{G}/members"),
            xjson,
            "2.2.0",
            SAMPLE_MEMBERS,
            201,
            "SUCCESS",
        ),
        c(
            "deleteMember_rest_response_v2_5_000_http200.json",
            Some("deleteMember_rest_request_v2_5_000.json"),
            "POST",
            format!("/grouper-ws/servicesRest/v2_5_000/groups/{G}/members"),
            json,
            "2.5.0",
            SAMPLE_MEMBERS,
            200,
            "SUCCESS",
        ),
        c(
            "hasMember_rest_response_v2_5_000_http200.json",
            Some("hasMember_rest_request_v2_5_000.json"),
            "POST",
            format!("/grouper-ws/servicesRest/v2_5_000/groups/{G}/members"),
            json,
            "2.5.0",
            SAMPLE_MEMBERS,
            200,
            "SUCCESS",
        ),
        c(
            "getMembers_lite_GET_response_v2_5_000_http200.json",
            None,
            "GET",
            format!("/grouper-ws/servicesRest/json/v2_5_000/groups/{G}/members"),
            None,
            "2.5.0",
            SAMPLE_MEMBERS_25,
            200,
            "SUCCESS",
        ),
        Case {
            raw_body: "wsLiteObjectType=WsRestGetMembersLiteRequest&actAsSubjectId=GrouperSystem",
            ..c(
                "getMembers_lite_POST_params_response_v2_2_000_http200.json",
                None,
                "POST",
                format!("{V22}/groups/{G}/members"),
                None,
                "2.2.0",
                SAMPLE_MEMBERS,
                200,
                "SUCCESS",
            )
        },
        c(
            "addMember_lite_PUT_response_v2_5_000_http200.json",
            None,
            "PUT",
            format!("/grouper-ws/servicesRest/json/v2_5_000/groups/{G}/members/10021368"),
            None,
            "2.5.0",
            SAMPLE_MEMBERS,
            200,
            "SUCCESS_ALREADY_EXISTED",
        ),
        c(
            "deleteMember_lite_DELETE_response_v2_2_000_http200.json",
            None,
            "DELETE",
            format!("/grouper-ws/servicesRest/json/v2_2_000/groups/{G}/members/10021368"),
            None,
            "2.2.0",
            SAMPLE_MEMBERS,
            200,
            "SUCCESS",
        ),
        c(
            "hasMember_lite_GET_response_v2_2_000_http200.json",
            None,
            "GET",
            format!("/grouper-ws/servicesRest/json/v2_2_000/groups/{G}/members/10021368"),
            None,
            "2.2.0",
            SAMPLE_MEMBERS,
            200,
            "IS_MEMBER",
        ),
    ]
}

#[test]
fn simulator_answers_like_the_captures() {
    for case in cases() {
        let Some(expected) = fixture(case.response) else {
            return;
        };
        let body = match case.request {
            Some(req) => match fixture(req) {
                Some(v) => v.to_string().into_bytes(),
                None => return,
            },
            None => case.raw_body.as_bytes().to_vec(),
        };
        let root = expected.as_object().unwrap().values().next().unwrap();
        let group = root
            .get("wsGroup")
            .or_else(|| root.get("wsGroupAssigned"))
            .or_else(|| root["results"][0].get("wsGroup"))
            .unwrap();
        let sim = sample_world(case.server_version, case.members, group);
        let mut headers = vec![(
            "Authorization".to_string(),
            "Basic R3JvdXBlclN5c3RlbTpwYXNz".to_string(),
        )];
        if let Some(ct) = case.content_type {
            headers.push(("Content-Type".into(), ct.into()));
        }
        let resp = sim.handle(&SimRequest {
            method: case.method.into(),
            target: case.path.into(),
            headers,
            body,
        });
        let actual = resp.json().unwrap_or_else(|| {
            panic!(
                "{}: not JSON: {}",
                case.response,
                String::from_utf8_lossy(&resp.body)
            )
        });
        assert_eq!(resp.status, case.status, "{}: {actual}", case.response);
        assert_eq!(
            resp.header("X-Grouper-resultCode"),
            Some(case.result_code),
            "{}",
            case.response
        );
        assert_eq!(resp.header("X-Grouper-success"), Some("T"));
        assert_eq!(resp.header("X-Grouper-resultCode2"), Some("NONE"));
        let ct = resp.header("Content-Type").unwrap();
        assert_eq!(
            ct.starts_with("text/x-json"),
            case.server_version.starts_with("2.2"),
            "{}: {ct}",
            case.response
        );
        assert_same(&expected, &actual, case.response);
    }
}

#[test]
fn simulator_matches_the_berkeley_partial_failure() {
    let Some(expected) =
        fixture("addMember_rest_response_v2_2_1_partial_failure_thirdparty_http_unknown.json")
    else {
        return;
    };
    let group = "edu:berkeley:app:bcourses:testgroup";
    let sim = Simulator::new(Config {
        server_version: "2.2.1".into(),
        ..Config::default()
    });
    sim.add_subject(Subject::new("ldap", "242881"));
    sim.add_subject(Subject::new("ldap", "211159"));
    sim.add_group(group);
    sim.add_member(group, "ldap", "242881");
    let body = serde_json::json!({"WsRestAddMemberRequest": {"subjectLookups": [{"subjectId": "242881"}, {"subjectId": "211159"}, {"subjectId": "9999999"}]}});
    let resp = sim.handle(&SimRequest {
        method: "PUT".into(),
        target: format!(
            "/gws/servicesRest/json/v2_2_100/groups/{}/members",
            group.replace(':', "%3A")
        ),
        headers: vec![
            (
                "Authorization".into(),
                "Basic R3JvdXBlclN5c3RlbTpwYXNz".into(),
            ),
            ("Content-Type".into(), "text/x-json; charset=UTF-8".into()),
        ],
        body: body.to_string().into_bytes(),
    });
    assert_eq!(resp.status, 500);
    assert_eq!(
        resp.header("X-Grouper-resultCode"),
        Some("PROBLEM_WITH_ASSIGNMENT")
    );
    let actual = resp.json().unwrap();
    let (e, a) = (
        &expected["WsAddMemberResults"],
        &actual["WsAddMemberResults"],
    );
    assert_same(&e["results"], &a["results"], "results");
    assert_eq!(
        e["resultMetadata"], a["resultMetadata"],
        "the top-level message is Grouper's, word for word"
    );
    let message = a["results"][2]["resultMetadata"]["resultMessage"]
        .as_str()
        .unwrap();
    assert!(message.starts_with("edu.internet2.middleware.grouper.ws.exceptions.WsInvalidQueryException: Problem with Subject, SUBJECT_NOT_FOUND"));
    assert_eq!(
        sim.member_ids(group),
        ["211159", "242881"],
        "the rows that worked are committed"
    );
}
