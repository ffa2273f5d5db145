use super::*;
use crate::web::hub_oauth::scripted::{settings, ScriptedHub};
use crate::web::hub_oauth::HubAnswer;

const PREFIX: &str = "/services/grouper-sync/";
const PLAN: &str = "0123456789abcdef";

fn dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("grouper-sync-ui-{}-{name}", std::process::id()))
}

fn cookies() -> CookiePolicy {
    CookiePolicy {
        path: PREFIX.into(),
        always_secure: false,
    }
}

fn token_ui(name: &str) -> Ui {
    Ui::new(None, Some("s3cret-ui-token".into()), cookies(), dir(name))
}

fn hub_ui(name: &str, answers: Vec<HubAnswer>) -> Ui {
    let hub: Box<dyn HubHttp> = Box::new(ScriptedHub::new(answers));
    Ui::new(
        Some((HubOAuth::new(settings()), hub)),
        None,
        cookies(),
        dir(name),
    )
}

/// A browser's top-level navigation (a link, the address bar, a form).
fn navigation() -> FetchMetadata<'static> {
    FetchMetadata {
        mode: Some("navigate"),
        dest: Some("document"),
        site: Some("same-origin"),
    }
}

/// A script's `fetch()` from a page on the same origin (a user's server).
fn script() -> FetchMetadata<'static> {
    FetchMetadata {
        mode: Some("cors"),
        dest: Some("empty"),
        site: Some("same-origin"),
    }
}

fn get<'a>(cookie: Option<&'a str>, fetch: FetchMetadata<'a>) -> Request<'a> {
    Request {
        method: "GET",
        path: "/",
        full_path: PREFIX,
        cookie,
        fetch,
        ..Request::default()
    }
}

fn post<'a>(path: &'a str, cookie: Option<&'a str>, form: &[(&str, &str)]) -> Request<'a> {
    Request {
        method: "POST",
        path,
        full_path: PREFIX,
        cookie,
        fetch: navigation(),
        form: form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Request::default()
    }
}

fn header<'a>(answer: &'a Answer, name: &str) -> Vec<&'a str> {
    answer
        .headers
        .iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `name=value` of the `Set-Cookie` that sets `name`.
fn cookie_pair(answer: &Answer, name: &str) -> String {
    header(answer, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")) && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {name} cookie set: {answer:?}"))
}

fn csrf_of(ui: &Ui, cookie: &str) -> String {
    match ui.page(&get(Some(cookie), navigation())) {
        PageAccess::Show(Viewer::Approver { csrf, .. }) => csrf,
        other => panic!("not an approver: {other:?}"),
    }
}

#[test]
fn without_any_sign_in_nothing_is_shown_and_nothing_is_allowed() {
    let ui = Ui::new(None, None, cookies(), dir("none"));
    let PageAccess::Answer(a) = ui.page(&get(None, navigation())) else {
        panic!("the page is not shown")
    };
    assert_eq!(a.status, 403);
    assert!(a.body.contains("needs a sign-in"), "{}", a.body);
    for path in ["/approve", "/run", "/login"] {
        let a = ui.handle(&post(path, None, &[("plan", PLAN)])).unwrap();
        assert_eq!(a.status, 403, "{path}");
    }
}

#[test]
fn with_the_ui_token_an_admin_signs_in_and_acts_with_the_csrf_token() {
    let ui = token_ui("token");
    assert_eq!(ui.page(&get(None, navigation())), PageAccess::SignInForm);
    assert_eq!(
        ui.handle(&post("/approve", None, &[("plan", PLAN)]))
            .unwrap()
            .status,
        403
    );
    assert_eq!(
        ui.handle(&post("/login", None, &[("token", "nope")]))
            .unwrap()
            .status,
        403
    );
    let signed = ui
        .handle(&post("/login", None, &[("token", "s3cret-ui-token")]))
        .unwrap();
    assert_eq!(signed.status, 303);
    let set = header(&signed, "set-cookie")[0];
    assert!(
        set.contains("Path=/services/grouper-sync/; HttpOnly; SameSite=Lax; Max-Age=3600"),
        "{set}"
    );
    let cookie = cookie_pair(&signed, SESSION_COOKIE);
    assert!(
        !cookie.contains("s3cret"),
        "the cookie is a session id, not the token"
    );
    let csrf = csrf_of(&ui, &cookie);
    let wrong = [("plan", PLAN), ("csrf", "forged")];
    assert_eq!(
        ui.handle(&post("/approve", Some(&cookie), &wrong))
            .unwrap()
            .status,
        403
    );
    let right = [("plan", PLAN), ("csrf", csrf.as_str())];
    assert_eq!(
        ui.handle(&post("/approve", Some(&cookie), &right))
            .unwrap()
            .status,
        303
    );
    let store = StateStore::new(dir("token"));
    let lock = store.try_lock("a test").unwrap();
    // while a pass holds state_dir, an approval waits for it to finish
    let busy = ui.handle(&post("/approve", Some(&cookie), &right)).unwrap();
    assert_eq!(busy.status, 503, "{busy:?}");
    assert!(busy.body.contains("a pass is running"), "{}", busy.body);
    let approvals = store.approvals(&lock, std::time::Duration::from_secs(60));
    assert_eq!(approvals, [PLAN]);
    drop(lock);
    let mut bearer = post("/run", None, &[]);
    bearer.authorization = Some("Bearer s3cret-ui-token");
    assert_eq!(ui.handle(&bearer).unwrap().status, 303);
    let bad = [("plan", "not-a-plan"), ("csrf", csrf.as_str())];
    assert_eq!(
        ui.handle(&post("/approve", Some(&cookie), &bad))
            .unwrap()
            .status,
        400
    );
}

#[test]
fn a_script_on_the_same_origin_gets_neither_the_page_nor_an_action_with_the_admins_cookie() {
    let ui = token_ui("script");
    let signed = ui
        .handle(&post("/login", None, &[("token", "s3cret-ui-token")]))
        .unwrap();
    let cookie = cookie_pair(&signed, SESSION_COOKIE);
    let csrf = csrf_of(&ui, &cookie);
    // the page read by fetch() or in a frame: not signed in
    assert_eq!(
        ui.page(&get(Some(&cookie), script())),
        PageAccess::SignInForm
    );
    let frame = FetchMetadata {
        dest: Some("iframe"),
        ..navigation()
    };
    assert_eq!(ui.page(&get(Some(&cookie), frame)), PageAccess::SignInForm);
    // a POST by fetch() is refused even with the right CSRF token (had the script learnt it)
    for fetch in [script(), frame] {
        let mut approve = post(
            "/approve",
            Some(&cookie),
            &[("plan", PLAN), ("csrf", &csrf)],
        );
        approve.fetch = fetch;
        assert_eq!(ui.handle(&approve).unwrap().status, 403, "{fetch:?}");
    }
    let store = StateStore::new(dir("script"));
    let lock = store.try_lock("a test").unwrap();
    assert!(store
        .approvals(&lock, std::time::Duration::from_secs(60))
        .is_empty());
}

#[tokio::test]
async fn behind_the_hub_a_visitor_is_sent_to_sign_in_and_comes_back_with_a_session() {
    let user = |scopes: &[&str]| -> Vec<HubAnswer> {
        vec![
            Ok((
                200,
                br#"{"access_token": "tok", "token_type": "Bearer"}"#.to_vec(),
            )),
            Ok((
                200,
                serde_json::json!({"name": "ana", "admin": true, "scopes": scopes})
                    .to_string()
                    .into_bytes(),
            )),
        ]
    };
    for (scopes, approver) in [
        (&["access:services!service=grouper-sync"][..], false),
        (
            &[
                "access:services!service=grouper-sync",
                "custom:grouper-sync:approve",
            ][..],
            true,
        ),
    ] {
        let ui = hub_ui("hub", user(scopes));
        // a script is refused, not redirected
        let PageAccess::Answer(refused) = ui.page(&get(None, script())) else {
            panic!("a script gets no redirect")
        };
        assert_eq!(refused.status, 403);
        let mut start = get(None, navigation());
        start.full_path = "/services/grouper-sync/?done=run";
        let PageAccess::Answer(redirect) = ui.page(&start) else {
            panic!("a redirect to the hub")
        };
        assert_eq!(redirect.status, 302);
        let location = header(&redirect, "location")[0];
        assert!(location.starts_with("/hub/api/oauth2/authorize?client_id=service-grouper-sync"));
        let state_cookie = cookie_pair(&redirect, STATE_COOKIE);
        assert!(header(&redirect, "set-cookie")[0].contains("Max-Age=600"));
        let state = state_cookie.split_once('=').unwrap().1;
        // the hub sends the browser back
        let query = format!("code=c0de&state={state}");
        let mut back = get(Some(&state_cookie), navigation());
        back.path = "/oauth_callback";
        back.query = Some(&query);
        let signed = ui.oauth_callback(&back).await;
        assert_eq!(signed.status, 302, "{signed:?}");
        assert_eq!(
            header(&signed, "location"),
            ["/services/grouper-sync/?done=run"]
        );
        assert!(
            header(&signed, "set-cookie")
                .iter()
                .any(|c| c.starts_with("grouper-sync-oauth-state=;") && c.contains("Max-Age=0")),
            "the state cookie is cleared"
        );
        let session = cookie_pair(&signed, SESSION_COOKIE);
        let page = ui.page(&get(Some(&session), navigation()));
        let run = |csrf: &str| {
            ui.handle(&post("/run", Some(&session), &[("csrf", csrf)]))
                .unwrap()
        };
        if approver {
            let PageAccess::Show(Viewer::Approver { csrf, .. }) = page else {
                panic!("{page:?}")
            };
            assert_eq!(run(&csrf).status, 303);
        } else {
            assert_eq!(
                page,
                PageAccess::Show(Viewer::Reader { user: "ana".into() })
            );
            let refused = run("");
            assert_eq!(refused.status, 403);
            // a reader's session has a CSRF token too, but no right to act
            let csrf = ui.sessions.find(Some(&session)).unwrap().csrf;
            let refused = run(&csrf);
            assert_eq!(refused.status, 403);
            assert!(refused.body.contains("not approve"), "{}", refused.body);
        }
        // the callback is used once
        let again = ui.oauth_callback(&back).await;
        assert_eq!(again.status, 400);
        // the ui_token form is not a way in behind the hub
        assert_eq!(
            ui.handle(&post("/login", None, &[("token", "")]))
                .unwrap()
                .status,
            403
        );
    }
}

#[tokio::test]
async fn a_callback_from_another_browser_or_a_user_without_access_signs_nobody_in() {
    let ui = hub_ui(
        "hub-refused",
        vec![
            Ok((200, br#"{"access_token": "tok"}"#.to_vec())),
            Ok((
                200,
                br#"{"name": "mallory", "scopes": ["read:users:name!user=mallory"]}"#.to_vec(),
            )),
        ],
    );
    let PageAccess::Answer(redirect) = ui.page(&get(None, navigation())) else {
        panic!()
    };
    let state_cookie = cookie_pair(&redirect, STATE_COOKIE);
    let state = state_cookie.split_once('=').unwrap().1.to_string();
    let query = format!("code=c0de&state={state}");
    // the attacker's own state, in the victim's browser without the cookie
    let mut forged = get(None, navigation());
    forged.query = Some(&query);
    let refused = ui.oauth_callback(&forged).await;
    assert_eq!(refused.status, 400);
    assert!(header(&refused, "set-cookie")
        .iter()
        .all(|c| !c.starts_with(SESSION_COOKIE)));
    let mut back = get(Some(&state_cookie), navigation());
    back.query = Some(&query);
    let refused = ui.oauth_callback(&back).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused
            .body
            .contains("mallory is signed in to the hub, but no role"),
        "{}",
        refused.body
    );
    assert!(header(&refused, "set-cookie")
        .iter()
        .all(|c| !c.starts_with(SESSION_COOKIE)));
}

#[test]
fn a_sign_in_returns_only_to_this_services_pages() {
    let ui = hub_ui("next", Vec::new());
    for (asked, returns) in [
        ("/services/grouper-sync/", "/services/grouper-sync/"),
        (
            "/services/grouper-sync/?done=run",
            "/services/grouper-sync/?done=run",
        ),
        (
            "/services/grouper-sync//evil.example/",
            "/services/grouper-sync/",
        ),
        (
            "/services/grouper-sync/oauth_callback?code=x",
            "/services/grouper-sync/",
        ),
        ("/hub/admin", "/services/grouper-sync/"),
        ("/services/grouper-sync/\\evil", "/services/grouper-sync/"),
    ] {
        assert_eq!(ui.return_path(asked), returns, "{asked}");
    }
}
