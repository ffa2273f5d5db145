use super::*;

fn conn() -> Connection {
    Connection::new(
        "https://g.example.edu/grouper-ws/servicesRest/json/v2_2_100/",
        "svc",
        "pw",
        "text/x-json; charset=UTF-8",
    )
}

fn resp(status: u16, body: &str, grouper: bool) -> Response {
    let headers = if grouper {
        vec![("x-grouper-success".into(), "T".into())]
    } else {
        vec![]
    };
    Response {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn group_save_rows_are_read_as_grouper_ws_md_section_13_says() {
    let req = group_save_request(&conn(), "edu:x:course-101");
    let body: Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
    let save = &body["WsRestGroupSaveRequest"]["wsGroupToSaves"][0];
    assert_eq!(
        req.url,
        "https://g.example.edu/grouper-ws/servicesRest/json/v2_2_100/groups"
    );
    assert_eq!(
        (
            save["saveMode"].as_str(),
            save["createParentStemsIfNotExist"].as_str()
        ),
        (Some("INSERT"), Some("F"))
    );
    assert_eq!(save["wsGroup"]["displayExtension"], "course-101");
    let answer = |status: u16, code: &str, success: &str, message: &str| {
        let top = if success == "T" {
            "SUCCESS"
        } else {
            "PROBLEM_SAVING_GROUPS"
        };
        resp(
            status,
            &json!({"WsGroupSaveResults": {"resultMetadata": {"resultCode": top, "success": success},
                "results": [{"resultMetadata": {"resultCode": code, "success": success, "resultMessage": message},
                             "wsGroup": {"name": "edu:x:course-101"}}]}})
            .to_string(),
            true,
        )
    };
    let parse = |r: &Response| parse_group_save("edu:x:course-101", r);
    assert_eq!(
        parse(&answer(201, "SUCCESS_INSERTED", "T", "")),
        Ok(GroupSaved::Created)
    );
    assert_eq!(
        parse(&answer(
            500,
            "GROUP_ALREADY_EXISTS",
            "F",
            "GroupAddAlreadyExistsException"
        )),
        Ok(GroupSaved::AlreadyExists)
    );
    let stem = parse(&answer(500, "EXCEPTION", "F", "java.lang.RuntimeException: edu.internet2.middleware.grouper.exception.StemNotFoundException: Cant find stem: 'edu:x'")).unwrap_err();
    assert_eq!(stem.kind, ErrorKind::GroupNotFound);
    assert!(
        stem.message.contains("the folder edu:x does not exist"),
        "{}",
        stem.message
    );
    let privilege = parse(&answer(500, "EXCEPTION", "F", "java.lang.RuntimeException: edu.internet2.middleware.grouper.exception.InsufficientPrivilegeException: x")).unwrap_err();
    assert_eq!(privilege.kind, ErrorKind::GrouperForbidden);
    let other = parse(&answer(
        500,
        "EXCEPTION",
        "F",
        "java.lang.NullPointerException\n\tat x",
    ))
    .unwrap_err();
    assert_eq!(other.kind, ErrorKind::GrouperBadAnswer);
    assert!(
        !other.message.contains("\tat"),
        "stack traces are cut: {}",
        other.message
    );
}

#[test]
fn requests_have_the_wire_shape() {
    let r = get_members_request(
        &conn(),
        "a:b",
        &SubjectLookup::SubjectId,
        None,
        MemberFilter::Immediate,
        (500, 2),
    );
    assert_eq!(
        r.url,
        "https://g.example.edu/grouper-ws/servicesRest/json/v2_2_100/groups"
    );
    let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["WsRestGetMembersRequest"]["pageNumber"], "2");
    assert_eq!(body["WsRestGetMembersRequest"]["memberFilter"], "Immediate");
    assert!(body["WsRestGetMembersRequest"]
        .get("clientVersion")
        .is_none());
    assert!(r
        .headers
        .contains(&("Authorization".into(), "Basic c3ZjOnB3".into())));
    assert!(r
        .headers
        .contains(&("Content-Type".into(), "text/x-json; charset=UTF-8".into())));

    let lookups: Vec<Value> = ["1", "2"]
        .iter()
        .map(|s| subject_lookup(s, &SubjectLookup::SubjectId, Some("ldap")))
        .collect();
    let w = write_request(&conn(), WriteOp::Add, "edu:x:y", &lookups);
    assert_eq!(w.method, Method::Put);
    assert!(w.url.ends_with("/groups/edu%3Ax%3Ay/members"));
    let body: Value = serde_json::from_slice(w.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["WsRestAddMemberRequest"]["replaceAllExisting"], "F");
    assert_eq!(
        body["WsRestAddMemberRequest"]["subjectLookups"][1],
        json!({"subjectId": "2", "subjectSourceId": "ldap"})
    );
    let id = SubjectLookup::SubjectIdentifier {
        attribute: "uid".into(),
    };
    let d = write_request(
        &conn(),
        WriteOp::Delete,
        "edu:x:y",
        &[subject_lookup("u1", &id, None)],
    );
    assert_eq!(d.method, Method::Post);
    let body: Value = serde_json::from_slice(d.body.as_ref().unwrap()).unwrap();
    assert_eq!(
        body["WsRestDeleteMemberRequest"]["subjectLookups"][0],
        json!({"subjectIdentifier": "u1"})
    );
    let m = Member {
        id: "7".into(),
        source_id: "ldap".into(),
        key: Some("jdoe".into()),
    };
    assert_eq!(
        member_lookup(&m),
        json!({"subjectId": "7", "subjectSourceId": "ldap"})
    );
}

#[test]
#[should_panic(expected = "empty subject list")]
fn never_sends_an_empty_list() {
    write_request(&conn(), WriteOp::Delete, "a:b", &[]);
}

#[test]
fn empty_group_has_no_wssubjects() {
    let body = r#"{"WsGetMembersResults":{"resultMetadata":{"resultCode":"SUCCESS","success":"T"},
        "results":[{"resultMetadata":{"resultCode":"SUCCESS","success":"T"},"wsGroup":{"name":"a:b"}}]}}"#;
    let p = parse_get_members("a:b", &SubjectLookup::SubjectId, &resp(200, body, true)).unwrap();
    assert!(p.members.is_empty());
}

#[test]
fn group_not_found_is_an_error() {
    let body = r#"{"WsGetMembersResults":{"resultMetadata":{"resultCode":"PROBLEM_GETTING_MEMBERS","success":"F"},
        "results":[{"resultMetadata":{"resultCode":"GROUP_NOT_FOUND","success":"F","resultMessage":"Invalid group"}}]}}"#;
    let e =
        parse_get_members("a:b", &SubjectLookup::SubjectId, &resp(500, body, true)).unwrap_err();
    assert!(e.message.contains("GROUP_NOT_FOUND"), "{e}");
    assert_eq!(e.kind, ErrorKind::GroupNotFound);
}

#[test]
fn non_json_401_and_html_500() {
    let e = parse_get_members(
        "a:b",
        &SubjectLookup::SubjectId,
        &resp(401, "<html>Unauthorized</html>", false),
    )
    .unwrap_err();
    assert!(e.message.contains("credentials"), "{e}");
    assert_eq!(e.kind, ErrorKind::GrouperUnauthorized);
    let e = parse_get_members(
        "a:b",
        &SubjectLookup::SubjectId,
        &resp(500, "<html>boom</html>", false),
    )
    .unwrap_err();
    assert!(e.message.contains("without a Grouper answer"), "{e}");
    assert_eq!(e.kind, ErrorKind::GrouperUnavailable);
    let e = parse_get_members(
        "a:b",
        &SubjectLookup::SubjectId,
        &resp(200, "{\"WsGetMembersRes", true),
    )
    .unwrap_err();
    assert!(e.message.contains("not valid JSON"), "{e}");
    assert_eq!(e.kind, ErrorKind::GrouperBadAnswer);
}

#[test]
fn identifier_attribute_becomes_the_key() {
    let body = r#"{"WsGetMembersResults":{"resultMetadata":{"resultCode":"SUCCESS","success":"T"},
        "subjectAttributeNames":["uid"],
        "results":[{"resultMetadata":{"resultCode":"SUCCESS","success":"T"},
          "wsSubjects":[{"id":"10","sourceId":"ldap","success":"T","attributeValues":["jdoe"]}]}]}}"#;
    let lk = SubjectLookup::SubjectIdentifier {
        attribute: "uid".into(),
    };
    let p = parse_get_members("a:b", &lk, &resp(200, body, true)).unwrap();
    assert_eq!(p.members[0].key.as_deref(), Some("jdoe"));
    assert_eq!(p.members[0].id, "10");
}

#[test]
fn subject_problems_are_classified_from_code_or_exception_text() {
    let body = r#"{"WsAddMemberResults":{"resultMetadata":{"resultCode":"PROBLEM_WITH_ASSIGNMENT","success":"F"},
        "results":[
          {"resultMetadata":{"resultCode":"EXCEPTION","success":"F","resultMessage":"WsInvalidQueryException: Problem with Subject, SUBJECT_DUPLICATE, WsSubjectLookup[x]"}},
          {"resultMetadata":{"resultCode":"SUBJECT_NOT_FOUND","success":"F"}},
          {"resultMetadata":{"resultCode":"INSUFFICIENT_PRIVILEGES","success":"F"}}]}}"#;
    let subjects: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let rows = parse_write(WriteOp::Add, "a:b", &subjects, &resp(500, body, true)).unwrap();
    let codes: Vec<&str> = rows.iter().map(RowResult::reported_code).collect();
    assert_eq!(
        codes,
        [
            "SUBJECT_DUPLICATE",
            "SUBJECT_NOT_FOUND",
            "INSUFFICIENT_PRIVILEGES"
        ]
    );
    assert_eq!(
        rows[2].subject_problem, None,
        "a privilege problem is not a subject problem"
    );
}

#[test]
fn write_rows_mismatch_is_an_error() {
    let body = r#"{"WsAddMemberResults":{"resultMetadata":{"resultCode":"SUCCESS","success":"T"},
        "results":[{"resultMetadata":{"resultCode":"SUCCESS","success":"T"}}]}}"#;
    let e = parse_write(
        WriteOp::Add,
        "a:b",
        &["1".into(), "2".into()],
        &resp(201, body, true),
    )
    .unwrap_err();
    assert!(e.message.contains("2 subjects"), "{e}");
}

#[test]
fn problem_answer_is_reported() {
    let body = r#"{"WsRestResultProblem":{"resultMetadata":{"resultCode":"INVALID_QUERY","success":"F","resultMessage":"bad version\nstack"}}}"#;
    let e = parse_write(
        WriteOp::Delete,
        "a:b",
        &["1".into()],
        &resp(400, body, true),
    )
    .unwrap_err();
    assert!(
        e.message.contains("INVALID_QUERY")
            && e.message.contains("bad version")
            && !e.message.contains("stack"),
        "{e}"
    );
}
