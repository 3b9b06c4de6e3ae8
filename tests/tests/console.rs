//! The admin console end to end: a real headless Chromium (WebDriver) signs in, moves a card
//! and sees the run, sees an inline rejection, uploads a module with a forbidden import and
//! sees the API's error, enables a binding; plain HTTP checks the rules the browser cannot
//! show: CSRF and Origin refusals, roles, tenant isolation, logout, expiry, revocation, and
//! the language picked from Accept-Language.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{redirect, StatusCode};
use stagecraft_tests::browser::Browser;
use stagecraft_tests::{guest, json, temp_dir, Server, ADMIN_KEY};

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.to_string())
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// The hidden CSRF token in a page.
fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a form token");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A signed-in HTTP session: the cookie header and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in(s: &Server, key: &str) -> Session {
    let c = client();
    let form = c
        .get(format!("{}/console/login", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let login = cookie_value(&set_cookie(&form, "sc_login").unwrap());
    let html = form.text().await.unwrap();
    let token = csrf_in(&html);
    let r = c
        .post(format!("{}/console/login", s.base))
        .header(COOKIE, format!("sc_login={login}"))
        .form(&[("key", key), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign-in redirects");
    let sc = set_cookie(&r, "sc_session").expect("session cookie");
    assert!(sc.contains("HttpOnly"), "{sc}");
    assert!(sc.contains("SameSite=Strict"), "{sc}");
    assert!(sc.contains("Max-Age="), "{sc}");
    let cookie = format!("sc_session={}", cookie_value(&sc));
    let page = c
        .get(format!("{}/console/modules", s.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Session {
        csrf: csrf_in(&page),
        cookie,
    }
}

async fn get_page(s: &Server, session: &Session, path: &str) -> (StatusCode, String) {
    let r = client()
        .get(format!("{}{}", s.base, path))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    let body = r.text().await.unwrap();
    (status, location.unwrap_or(body))
}

async fn post_form(
    s: &Server,
    session: &Session,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> (StatusCode, String) {
    let mut req = client()
        .post(format!("{}{}", s.base, path))
        .header(COOKIE, &session.cookie)
        .form(form);
    if let Some(o) = origin {
        req = req.header(ORIGIN, o);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

/// A component importing an interface no module may use.
fn forbidden_component() -> Vec<u8> {
    wat::parse_str(r#"(component (import "acme:tools/steal@1.0.0" (instance)))"#).unwrap()
}

/// Server with `mover` (inline on every stage change) and `gatekeeper` (inline, rejects leads
/// without email entering `qualified`) on the leads pipeline, and a lead without email.
async fn automated_server(dir: &std::path::Path) -> (Server, String) {
    let s = Server::start(dir).await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    s.upload_guest(ADMIN_KEY, "gatekeeper", "gatekeeper").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "mover", "version": 1, "mode": "inline",
               "triggers": [{"on": "stage_changed"}]}),
    )
    .await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "gatekeeper", "version": 1, "mode": "inline",
               "triggers": [{"on": "entered_stage", "stage": "qualified"}],
               "grants": {"fields": ["vetted"]}}),
    )
    .await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada Lovelace", "pipeline": "leads"}),
        )
        .await;
    (s, lead["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn in_a_browser_sign_in_move_a_card_see_the_run_upload_and_enable() {
    let dir = temp_dir();
    let (s, lead) = automated_server(dir.path()).await;
    let b = Browser::start().await;

    // Signing in: the console sends an anonymous visitor to the sign-in form.
    b.goto(&format!("{}/console/", s.base)).await;
    let key = b.find("#key").await;
    assert!(
        b.url().await.ends_with("/console/login"),
        "{}",
        b.url().await
    );
    b.type_into(&key, ADMIN_KEY).await;
    b.click(&b.find("#sign-in").await).await;
    // An admin lands on the dashboard; the board is one link away.
    b.find("#dashboard").await;
    b.click(&b.find("a[href='/console/board']").await).await;
    b.find("#board").await;
    assert!(
        b.url().await.contains("/console/pipelines/"),
        "{}",
        b.url().await
    );
    b.click(&b.find("a[href='/console/pipelines/leads']").await)
        .await;
    b.wait_for_text("Ada Lovelace").await;

    // Move the card to Contacted: the API's move runs the inline module.
    b.select(&format!("#stage-{lead}"), "contacted").await;
    b.click(&b.find(&format!("#card-{lead} button.move")).await)
        .await;
    b.wait_for_text("Moved Ada Lovelace to contacted").await;
    let column = b.find("section[data-stage=contacted]").await;
    assert!(b.text(&column).await.contains("Ada Lovelace"));
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(r.body["stage"], "contacted");

    // The record page shows the run that move caused, and the stage history.
    b.goto(&format!("{}/console/records/{lead}", s.base)).await;
    let runs = b.find("#record-runs").await;
    let text = b.text(&runs).await;
    assert!(text.contains("mover v1") && text.contains("ok"), "{text}");
    let history = b.text(&b.find("#history").await).await;
    assert!(history.contains("New → Contacted"), "{history}");

    // The run page: event, host calls, effects, logs, fuel, memory, duration.
    b.click(&b.find("#record-runs a").await).await;
    let page = b.wait_for_text("Fuel").await;
    for part in [
        "stage_changed",
        "Host calls",
        "Logs",
        "Peak memory",
        "Duration",
        "mover saw",
    ] {
        assert!(page.contains(part), "run page lacks {part}: {page}");
    }

    // An inline rejection shows the module's message on the board; nothing moved.
    b.goto(&format!("{}/console/pipelines/leads", s.base)).await;
    b.select(&format!("#stage-{lead}"), "qualified").await;
    b.click(&b.find(&format!("#card-{lead} button.move")).await)
        .await;
    b.wait_for_text("leads need an email address").await;
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(
        r.body["stage"], "contacted",
        "a rejected move leaves the record"
    );

    // Uploading a module with a forbidden import shows the API's error, and stores nothing.
    b.goto(&format!("{}/console/modules", s.base)).await;
    let files = temp_dir();
    let path = Browser::temp_file(files.path(), "stranger.wasm", &forbidden_component());
    b.type_into(&b.find("#module-name").await, "stranger").await;
    b.type_into(&b.find("#module-file").await, path.to_str().unwrap())
        .await;
    b.click(&b.find("#upload").await).await;
    let error = b.text(&b.find("#upload-error").await).await;
    assert!(error.contains("forbidden_import"), "{error}");
    assert!(error.contains("acme:tools/steal@1.0.0"), "{error}");
    let r = s.get("/v1/modules/stranger", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The language switch on that error page leads back to the upload form, in Spanish.
    b.click(&b.find("a[hreflang=es]").await).await;
    b.wait_for_text("Subir una versión nueva").await;
    assert!(
        b.url().await.ends_with("/console/modules"),
        "{}",
        b.url().await
    );
    b.click(&b.find("a[hreflang=en]").await).await;
    b.wait_for_text("Upload a new version").await;

    // A good upload lands on the module page with its versions and a dry run.
    b.goto(&format!("{}/console/modules", s.base)).await;
    let path = Browser::temp_file(files.path(), "mover.wasm", &guest("mover"));
    b.type_into(&b.find("#module-name").await, "mover").await;
    b.type_into(&b.find("#module-file").await, path.to_str().unwrap())
        .await;
    b.click(&b.find("#upload").await).await;
    b.wait_for_text("Uploaded mover version 2").await;
    b.select("#dry-record", &lead).await;
    b.click(&b.find("#dry-run").await).await;
    let result = b.text(&b.find("#dry-run-result").await).await;
    assert!(result.contains("ok"), "{result}");

    // Enabling a disabled binding from the console is what the API then reports.
    let binding = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "deals", "module": "mover", "version": 1,
                   "triggers": [{"on": "created"}], "enabled": false}),
        )
        .await;
    b.goto(&format!("{}/console/bindings", s.base)).await;
    let row = format!("#binding-{binding}");
    assert!(b.text(&b.find(&row).await).await.contains("disabled"));
    b.click(&b.find(&format!("{row} button.toggle")).await)
        .await;
    b.wait_for_text("mover is enabled").await;
    let r = s.get(&format!("/v1/bindings/{binding}"), ADMIN_KEY).await;
    assert_eq!(r.body["enabled"], true, "{:?}", r.body);

    // Dragging a card onto a column submits the card's own move form. (WebDriver cannot
    // perform a native HTML5 drag in Chromium, so the page gets the drag events the browser
    // would send.)
    b.goto(&format!("{}/console/pipelines/leads", s.base)).await;
    b.execute(
        r#"const card = document.getElementById("card-" + arguments[0]);
           const column = document.querySelector('section[data-stage="disqualified"]');
           const dt = new DataTransfer();
           card.dispatchEvent(new DragEvent("dragstart", {bubbles: true, dataTransfer: dt}));
           column.dispatchEvent(new DragEvent("dragover", {bubbles: true, cancelable: true, dataTransfer: dt}));
           column.dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: dt}));"#,
        json!([lead]),
    )
    .await;
    b.wait_for_text("Moved Ada Lovelace to disqualified").await;
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(r.body["stage"], "disqualified");
}

#[tokio::test]
async fn forms_need_the_session_token_and_this_origin() {
    let dir = temp_dir();
    let (s, lead) = automated_server(dir.path()).await;
    let admin = sign_in(&s, ADMIN_KEY).await;
    let path = format!("/console/records/{lead}/stage");
    let page = client()
        .get(format!("{}/console/pipelines/leads", s.base))
        .header(COOKIE, &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY", "no framing");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"));
    assert_eq!(page.headers()["cache-control"], "no-store");

    let (status, _) = post_form(&s, &admin, &path, &[("stage", "contacted")], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token");
    let (status, _) = post_form(
        &s,
        &admin,
        &path,
        &[("stage", "contacted"), ("csrf", "0".repeat(64).as_str())],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "wrong token");
    let (status, body) = post_form(
        &s,
        &admin,
        &path,
        &[("stage", "contacted"), ("csrf", &admin.csrf)],
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "foreign origin");
    assert!(body.contains("another site"), "{body}");
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(r.body["stage"], "new", "refused forms change nothing");

    let (status, _) = post_form(
        &s,
        &admin,
        &path,
        &[("stage", "contacted"), ("csrf", &admin.csrf)],
        Some(&s.base),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(r.body["stage"], "contacted");

    // Signing in itself needs the sign-in form's token.
    let r = client()
        .post(format!("{}/console/login", s.base))
        .form(&[("key", ADMIN_KEY), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, "sc_session").is_none());

    // The session cookie is no API credential: the API still wants a bearer key.
    let r = client()
        .get(format!("{}/v1/records", s.base))
        .header(COOKIE, &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_agent_moves_cards_but_gets_no_binding_controls_and_cannot_forge_them() {
    let dir = temp_dir();
    let (s, lead) = automated_server(dir.path()).await;
    let r = s.get("/v1/bindings", ADMIN_KEY).await;
    let binding = r.body["bindings"][0]["id"].as_str().unwrap().to_string();
    let agent_key = s.key(ADMIN_KEY, "agent").await;
    let agent = sign_in(&s, &agent_key).await;

    let (status, board) = get_page(&s, &agent, "/console/pipelines/leads").await;
    assert_eq!(status, StatusCode::OK);
    assert!(board.contains("Ada Lovelace"));
    assert!(board.contains("class=\"move\""), "agents move records");
    assert!(
        !board.contains("/console/bindings"),
        "no binding link for agents"
    );
    assert!(
        !board.contains("/console/modules"),
        "no module link for agents"
    );

    let (status, page) = get_page(&s, &agent, "/console/bindings").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("this needs a developer key; yours is agent"),
        "{page}"
    );
    assert!(!page.contains("button class=\"toggle\""));

    // A hand-made POST to a binding action is refused by the API, and changes nothing.
    let (status, page) = post_form(
        &s,
        &agent,
        &format!("/console/bindings/{binding}/enabled"),
        &[("enabled", "false"), ("csrf", &agent.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("this needs an admin key; yours is agent"),
        "{page}"
    );
    let r = s.get(&format!("/v1/bindings/{binding}"), ADMIN_KEY).await;
    assert_eq!(r.body["enabled"], true);

    // The agent's move goes through the API like anyone's.
    let (status, _) = post_form(
        &s,
        &agent,
        &format!("/console/records/{lead}/stage"),
        &[("stage", "contacted"), ("csrf", &agent.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(r.body["stage"], "contacted");

    // A developer sees bindings but no controls.
    let dev_key = s.key(ADMIN_KEY, "developer").await;
    let dev = sign_in(&s, &dev_key).await;
    let (status, page) = get_page(&s, &dev, "/console/bindings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("gatekeeper"));
    assert!(
        !page.contains("class=\"toggle\""),
        "no toggles for developers"
    );
    assert!(!page.contains("new-binding"));
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_data() {
    let dir = temp_dir();
    let (s, lead) = automated_server(dir.path()).await;
    let r = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let globex_key = r.body["admin_key"].as_str().unwrap().to_string();
    s.record(
        &globex_key,
        json!({"kind": "lead", "name": "Grace Hopper", "pipeline": "leads"}),
    )
    .await;
    let globex = sign_in(&s, &globex_key).await;
    let (_, board) = get_page(&s, &globex, "/console/pipelines/leads").await;
    assert!(board.contains("Grace Hopper"));
    assert!(!board.contains("Ada Lovelace"));
    let (status, page) = get_page(&s, &globex, &format!("/console/records/{lead}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    let (_, page) = get_page(&s, &globex, "/console/modules").await;
    assert!(!page.contains("gatekeeper"));
    let (status, _) = post_form(
        &s,
        &globex,
        &format!("/console/records/{lead}/stage"),
        &[("stage", "contacted"), ("csrf", &globex.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = s.get(&format!("/v1/records/{lead}"), ADMIN_KEY).await;
    assert_eq!(
        r.body["stage"], "new",
        "another tenant's record is untouched"
    );
}

#[tokio::test]
async fn sessions_end_on_logout_revocation_and_expiry() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let admin = sign_in(&s, ADMIN_KEY).await;
    let (status, _) = get_page(&s, &admin, "/console/modules").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post_form(
        &s,
        &admin,
        "/console/logout",
        &[("csrf", &admin.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, location) = get_page(&s, &admin, "/console/modules").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/console/login");

    // Revoking the key ends its sessions at once.
    let r = s
        .post(
            "/v1/keys",
            ADMIN_KEY,
            json!({"role": "admin", "name": "temp"}),
        )
        .await;
    let (id, secret) = (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    );
    let temp = sign_in(&s, &secret).await;
    assert_eq!(
        get_page(&s, &temp, "/console/modules").await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.delete(&format!("/v1/keys/{id}"), ADMIN_KEY).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get_page(&s, &temp, "/console/modules").await.1,
        "/console/login"
    );

    // A wrong key gets the sign-in form back with a clear error and no session.
    let c = client();
    let form = c
        .get(format!("{}/console/login", s.base))
        .send()
        .await
        .unwrap();
    let login = cookie_value(&set_cookie(&form, "sc_login").unwrap());
    let token = csrf_in(&form.text().await.unwrap());
    let r = c
        .post(format!("{}/console/login", s.base))
        .header(COOKIE, format!("sc_login={login}"))
        .form(&[("key", "not-a-key"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "sc_session").is_none());
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Unknown or revoked API key."));
    s.stop().await;

    // With a zero lifetime a session is over before its first use.
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.console_session_ttl = std::time::Duration::ZERO;
    let s = Server::start_with(config).await;
    let expired = sign_in_cookie_only(&s).await;
    let (status, location) = get_page(&s, &expired, "/console/modules").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/console/login");
}

/// Signs in and returns the session without visiting a page (for the expiry test).
async fn sign_in_cookie_only(s: &Server) -> Session {
    let c = client();
    let form = c
        .get(format!("{}/console/login", s.base))
        .send()
        .await
        .unwrap();
    let login = cookie_value(&set_cookie(&form, "sc_login").unwrap());
    let token = csrf_in(&form.text().await.unwrap());
    let r = c
        .post(format!("{}/console/login", s.base))
        .header(COOKIE, format!("sc_login={login}"))
        .form(&[("key", ADMIN_KEY), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    Session {
        cookie: format!(
            "sc_session={}",
            cookie_value(&set_cookie(&r, "sc_session").unwrap())
        ),
        csrf: String::new(),
    }
}

#[tokio::test]
async fn the_language_follows_the_browser_and_the_switch() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    for (accept, expect) in [
        ("es-ES,es;q=0.9,en;q=0.5", "Clave de API"),
        ("pt-BR,pt;q=0.9", "Chave de API"),
        ("pl,en;q=0.5", "Klucz API"),
        ("de-DE,fr;q=0.8", "API key"),
    ] {
        let html = client()
            .get(format!("{}/console/login", s.base))
            .header(ACCEPT_LANGUAGE, accept)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(expect), "{accept}: {html}");
    }
    // The switch sets a cookie that wins over the header, and links back to the page.
    let r = client()
        .get(format!(
            "{}/console/lang?lang=pl&back=%2Fconsole%2Fruns",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/console/runs");
    assert!(set_cookie(&r, "sc_lang").unwrap().starts_with("sc_lang=pl"));
    let r = client()
        .get(format!(
            "{}/console/lang?lang=es&back=https%3A%2F%2Fevil.example",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/console/", "no open redirect");

    let mut admin = sign_in(&s, ADMIN_KEY).await;
    admin.cookie.push_str("; sc_lang=pl");
    let (_, page) = get_page(&s, &admin, "/console/modules").await;
    assert!(page.contains("Prześlij nową wersję"), "{page}");
    assert!(page.contains("lang=\"pl\""));
    for code in ["en", "es", "pt", "pl"] {
        assert!(
            page.contains(&format!("/console/lang?lang={code}")),
            "switch to {code}"
        );
    }
}

/// Refreshes the README's screenshots in docs/ from a demo server (`scripts/screenshots`
/// runs this): the dashboard, the board, a run, a replay's differences and a config form.
#[tokio::test]
#[ignore = "writes the README's screenshots; run by scripts/screenshots"]
async fn screenshots() {
    let out = std::env::var("STAGECRAFT_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs"));
    std::fs::create_dir_all(&out).unwrap();
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    stagecraft::demo::seed(&s.state, "default").await.unwrap();
    // A scoring module on a pipeline of its own, and a stricter version 2 to replay.
    let r = s
        .post(
            "/v1/pipelines",
            ADMIN_KEY,
            json!({"id": "inbound", "name": "Inbound", "kind": "lead", "stages": [
                {"id": "new", "name": "New", "semantic": "open"},
                {"id": "qualified", "name": "Qualified", "semantic": "open"},
                {"id": "won", "name": "Won", "semantic": "won"},
                {"id": "lost", "name": "Lost", "semantic": "lost"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    s.upload_guest(ADMIN_KEY, "scoring", "scorer").await;
    let scoring = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "inbound", "module": "scoring", "version": 1, "mode": "inline",
                   "triggers": [{"on": "created"}],
                   "grants": {"fields": ["score"], "channels": ["notify"]}}),
        )
        .await;
    for (name, size) in [
        ("Ada Lovelace", Some(640)),
        ("Grace Hopper", Some(910)),
        ("Alan Turing", Some(550)),
        ("Edsger Dijkstra", Some(300)),
        ("Barbara Liskov", Some(580)),
        ("Nobody Known", None),
        ("Ken Thompson", Some(720)),
    ] {
        let mut body = json!({"kind": "lead", "name": name, "pipeline": "inbound"});
        if let Some(n) = size {
            body["custom"] = json!({"size": n});
        }
        s.post("/v1/records", ADMIN_KEY, body).await;
    }
    s.upload_guest(ADMIN_KEY, "scoring", "scorer-strict").await;
    let b = Browser::start().await;
    b.set_window(1400, 900).await;
    b.goto(&format!("{}/console/login", s.base)).await;
    b.type_into(&b.find("#key").await, ADMIN_KEY).await;
    b.click(&b.find("#sign-in").await).await;
    b.find("#dashboard").await;
    b.screenshot(&out.join("console-dashboard.png")).await;
    b.goto(&format!("{}/console/pipelines/leads?field=score", s.base))
        .await;
    b.find("#board").await;
    b.screenshot(&out.join("console-board.png")).await;
    let runs = stagecraft_tests::eventually("a demo run", 400, || async {
        let runs = s.runs(ADMIN_KEY, "outcome=ok&module=lead-scoring").await;
        runs.into_iter()
            .find(|r| !r["effects"].as_array().unwrap().is_empty())
    })
    .await;
    b.goto(&format!(
        "{}/console/runs/{}",
        s.base,
        runs["id"].as_str().unwrap()
    ))
    .await;
    b.find("#run").await;
    b.screenshot(&out.join("console-run.png")).await;
    b.goto(&format!("{}/console/modules/scoring#replay", s.base))
        .await;
    b.select("#replay-binding", &scoring).await;
    b.click(&b.find("#start-replay").await).await;
    b.find("#replay-summary").await;
    b.execute(
        "window.scrollTo(0, document.getElementById('replay-summary').offsetTop - 70)",
        json!([]),
    )
    .await;
    b.screenshot(&out.join("console-replay.png")).await;
    let renewal = s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["module"] == "lead-scoring")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&format!("{}/console/bindings/{renewal}#settings", s.base))
        .await;
    b.find("#config-form").await;
    b.execute(
        "document.getElementById('config-section').scrollIntoView()",
        json!([]),
    )
    .await;
    b.screenshot(&out.join("console-config-form.png")).await;
}

#[tokio::test]
async fn binding_edits_check_json_first_and_switch_versions_through_the_api() {
    let dir = temp_dir();
    let (s, lead) = automated_server(dir.path()).await;
    assert_eq!(s.upload_guest(ADMIN_KEY, "mover", "mover").await, 2);
    let r = s.get("/v1/bindings?pipeline=leads", ADMIN_KEY).await;
    let mover = r.body["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["module"] == "mover")
        .unwrap()
        .clone();
    let id = mover["id"].as_str().unwrap().to_string();
    let revision = mover["revision"].to_string();
    let admin = sign_in(&s, ADMIN_KEY).await;
    let path = format!("/console/bindings/{id}");
    let (status, page) = get_page(&s, &admin, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("v2 · "), "both versions offered: {page}");

    // Config that is not JSON is refused before anything is sent, naming the field.
    let form = |version: &'static str, config: &'static str| {
        vec![
            ("csrf", admin.csrf.clone()),
            ("version", version.to_string()),
            ("mode", "inline".to_string()),
            ("order", "0".to_string()),
            ("triggers", r#"[{"on": "stage_changed"}]"#.to_string()),
            ("config", config.to_string()),
            ("grants", "{}".to_string()),
            ("enabled", "on".to_string()),
            ("revision", revision.clone()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, String)> = f;
        let path = path.clone();
        let cookie = admin.cookie.clone();
        let base = s.base.clone();
        async move {
            let r = client()
                .post(format!("{base}{path}"))
                .header(COOKIE, cookie)
                .form(&pairs)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, page) = send(form("2", "{\"target\": ")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("The field “config” is not valid JSON"),
        "{page}"
    );
    let r = s.get(&format!("/v1/bindings/{id}"), ADMIN_KEY).await;
    assert_eq!(r.body["version"], 1, "nothing saved");

    // A version the module does not have: the API's own message.
    let (status, page) = send(form("9", "{}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("has no version 9"), "{page}");

    // Switching to version 2 (and back: a rollback is a switch) is what the API then shows.
    let (status, _) = send(form("2", r#"{"target": "qualified"}"#)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = s.get(&format!("/v1/bindings/{id}"), ADMIN_KEY).await;
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["config"]["target"], "qualified");

    // Runs filter by module and outcome, through the API's filters.
    s.post(
        &format!("/v1/records/{lead}/stage"),
        ADMIN_KEY,
        json!({"stage": "contacted"}),
    )
    .await;
    let (status, page) = get_page(&s, &admin, "/console/runs?module=mover&outcome=ok").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("mover v2"), "{page}");
    let (_, page) = get_page(&s, &admin, "/console/runs?module=gatekeeper").await;
    assert!(page.contains("No runs."), "{page}");
}

#[tokio::test]
async fn the_outbox_shows_a_dead_letter_and_an_admin_retries_it() {
    // A webhook receiver that refuses every delivery: a 4xx is a dead letter at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { (axum::http::StatusCode::BAD_REQUEST, "no such order") }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.delivery.tick = std::time::Duration::from_millis(25);
    config.delivery.allow_internal_destinations = true;
    let s = Server::start_with(config).await;
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/channels",
            Some(ADMIN_KEY),
            Some(json!({"webhook": {"allowed_hosts": ["*"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
               "triggers": [{"on": "created"}], "config": {"channel": "webhook", "to": hook},
               "grants": {"channels": ["webhook"]}}),
    )
    .await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Dead letter"}))
        .await;
    let id = stagecraft_tests::eventually("a dead letter", 400, || async {
        let r = s.get("/v1/messages?status=dead", ADMIN_KEY).await;
        r.body["messages"][0]["id"].as_str().map(str::to_string)
    })
    .await;

    let admin = sign_in(&s, ADMIN_KEY).await;
    let (status, page) = get_page(&s, &admin, "/console/messages?status=dead").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("message-{id}")), "{page}");
    assert!(
        page.contains("dead letter") && page.contains("HTTP 400"),
        "{page}"
    );
    assert!(page.contains(&format!("/console/messages/{id}/retry")));

    // Developers see the outbox but cannot retry; the API refuses a forged retry.
    let dev_key = s.key(ADMIN_KEY, "developer").await;
    let dev = sign_in(&s, &dev_key).await;
    let (_, page) = get_page(&s, &dev, "/console/messages").await;
    assert!(!page.contains("/retry\""), "no retry button for developers");
    let (status, _) = post_form(
        &s,
        &dev,
        &format!("/console/messages/{id}/retry"),
        &[("csrf", &dev.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = post_form(
        &s,
        &admin,
        &format!("/console/messages/{id}/retry"),
        &[("csrf", &admin.csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let m = stagecraft_tests::eventually("the retried attempt", 400, || async {
        let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
        (m["attempts"].as_array().unwrap().len() == 2).then_some(m)
    })
    .await;
    assert_eq!(m["status"], "dead", "refused again: {m}");
}

#[tokio::test]
async fn an_upload_too_large_to_forward_is_explained_not_dropped() {
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.limits.module_bytes = 64 * 1024;
    let s = Server::start_with(config).await;
    let admin = sign_in(&s, ADMIN_KEY).await;
    let boundary = "stagecraftboundary";
    let mut body = Vec::new();
    for (name, value) in [("csrf", admin.csrf.as_str()), ("name", "huge")] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.wasm\"\r\nContent-Type: application/wasm\r\n\r\n").as_bytes(),
    );
    body.extend(std::iter::repeat_n(0u8, 300 * 1024));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = client()
        .post(format!("{}/console/modules/upload", s.base))
        .header(COOKIE, &admin.cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let page = r.text().await.unwrap();
    assert!(page.contains("module_too_large"), "{page}");
    assert!(
        page.contains("larger than the upload limit of 65,536 bytes"),
        "{page}"
    );
    let r = s.get("/v1/modules/huge", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The lead-scoring example as the host embeds it: a version with a config schema.
fn lead_scoring() -> Vec<u8> {
    stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "lead-scoring")
        .unwrap()
        .1
        .to_vec()
}

/// Server with `scoring` v1 (size / 10 into `score`, qualified from 50; a lead without a size
/// is refused) inline on leads and `mover` inline on deals; leads Ada (64), Grace (91), Alan
/// (55), a refused one, and a deal. Returns the server and the scoring binding.
async fn scoring_server(dir: &std::path::Path) -> (Server, String) {
    let s = Server::start(dir).await;
    s.upload_guest(ADMIN_KEY, "scoring", "scorer").await;
    let scoring = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "scoring", "version": 1, "mode": "inline",
                   "triggers": [{"on": "created"}],
                   "grants": {"fields": ["score"], "channels": ["notify"]}}),
        )
        .await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "deals", "module": "mover", "version": 1, "mode": "inline",
               "triggers": [{"on": "created"}]}),
    )
    .await;
    for (name, size) in [
        ("Ada Lovelace", 640),
        ("Grace Hopper", 910),
        ("Alan Turing", 550),
    ] {
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": name, "custom": {"size": size}}),
        )
        .await;
    }
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "No Size"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    s.record(ADMIN_KEY, json!({"kind": "deal", "name": "Acme rollout"}))
        .await;
    (s, scoring)
}

async fn browser_sign_in(b: &Browser, s: &Server) {
    b.goto(&format!("{}/console/login", s.base)).await;
    b.type_into(&b.find("#key").await, ADMIN_KEY).await;
    b.click(&b.find("#sign-in").await).await;
}

#[tokio::test]
async fn in_a_browser_the_dashboard_charts_a_replay_and_a_one_click_rollback() {
    let dir = temp_dir();
    let (s, scoring) = scoring_server(dir.path()).await;
    let b = Browser::start().await;
    browser_sign_in(&b, &s).await;

    // The dashboard: every enabled binding, the one with failures first, with its numbers
    // and a sparkline whose text alternative says what it shows.
    b.find("#dashboard").await;
    let first = b
        .execute(
            "return document.querySelector('#dashboard tbody tr').id",
            json!([]),
        )
        .await;
    assert_eq!(first, json!(format!("dash-{scoring}")), "failing first");
    let row = b.text(&b.find(&format!("#dash-{scoring}")).await).await;
    assert!(
        row.contains("scoring v1") && row.contains("failing"),
        "{row}"
    );
    assert!(row.contains("25.0%"), "1 of 4 runs failed: {row}");
    let spark = b
        .property(
            &b.find(&format!("#dash-{scoring} svg.spark")).await,
            "outerHTML",
        )
        .await;
    assert!(
        spark
            .as_str()
            .unwrap()
            .contains("Runs in the last 24 hours: 4, failed: 1"),
        "{spark}"
    );
    assert!(b.page_text().await.contains("Bindings with failures: 1."));

    // The binding page charts its activity from the stats API, over a chosen window.
    b.click(&b.find(&format!("#dash-{scoring} a")).await).await;
    b.find("#activity").await;
    assert_eq!(b.count("#activity svg.chart").await, 4);
    let desc = b
        .property(&b.find("#binding-runs-d").await, "textContent")
        .await;
    assert!(
        desc.as_str().unwrap().contains("runs 4, not ok 1"),
        "{desc}"
    );
    b.click(&b.find("a[href$='window=24h#activity']").await)
        .await;
    b.wait_for_text("Activity · Last 24 hours").await;
    let legend = b.text(&b.find("#figure-binding-runs .legend").await).await;
    assert!(
        legend.contains("ok") && legend.contains("guest_error"),
        "{legend}"
    );

    // Replay: a stricter version 2, started from the module page, shows where it differs.
    assert_eq!(
        s.upload_guest(ADMIN_KEY, "scoring", "scorer-strict").await,
        2
    );
    b.goto(&format!("{}/console/modules/scoring", s.base)).await;
    b.find("#figure-module-duration").await;
    b.select("#replay-binding", &scoring).await;
    b.click(&b.find("#start-replay").await).await;
    b.find("#replay-summary").await;
    assert_eq!(b.text(&b.find("#replay-different").await).await, "2");
    let ada = s.get("/v1/records?q=Ada", ADMIN_KEY).await.body["records"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let diffs = b.text(&b.find("main").await).await;
    assert!(
        diffs.contains("Ada Lovelace") && diffs.contains("Alan Turing"),
        "{diffs}"
    );
    assert!(!diffs.contains("Grace Hopper ·"), "91 qualifies either way");
    assert!(
        b.try_find(&format!("article.diff a[href='/console/records/{ada}']"))
            .await
            .is_some(),
        "the record's name links to it"
    );
    let committed = b.text(&b.find("article.diff .side.original").await).await;
    assert!(committed.contains("Committed by v1"), "{committed}");
    assert!(committed.contains("− Move new → qualified"), "{committed}");
    let candidate = b.text(&b.find("article.diff .side.candidate").await).await;
    assert!(candidate.contains("Candidate v2 would"), "{candidate}");
    assert!(!candidate.contains("qualified"), "{candidate}");

    // Enabling the candidate is a version switch; rolling back is one click.
    b.click(&b.find(&format!("#enable-candidate-{scoring}")).await)
        .await;
    b.wait_for_text("scoring now runs version 2.").await;
    assert_eq!(b.text(&b.find("#binding-version").await).await, "v2");
    let r = s.get(&format!("/v1/bindings/{scoring}"), ADMIN_KEY).await;
    assert_eq!(r.body["version"], 2);
    let rollback = b.find("#rollback-button").await;
    assert_eq!(b.text(&rollback).await, "Roll back to v1");
    b.click(&rollback).await;
    b.wait_for_text("scoring now runs version 1.").await;
    let r = s.get(&format!("/v1/bindings/{scoring}"), ADMIN_KEY).await;
    assert_eq!(r.body["version"], 1);
    assert_eq!(
        b.text(&b.find("#rollback-button").await).await,
        "Roll back to v2",
        "and forward again"
    );
}

#[tokio::test]
async fn in_a_browser_without_javascript_records_are_searched_created_and_edited() {
    let dir = temp_dir();
    let (s, ada) = automated_server(dir.path()).await;
    let b = Browser::start_without_javascript().await;
    // Scripts really are off in this browser.
    b.goto("data:text/html,<title>static</title><script>document.title='ran'</script>")
        .await;
    assert_eq!(b.title().await, "static");
    browser_sign_in(&b, &s).await;
    b.find("#dashboard").await;

    // Search by name or email, through the API's filter.
    b.goto(&format!("{}/console/records", s.base)).await;
    b.type_into(&b.find("#rs-q").await, "lovelace").await;
    b.click(&b.find("#search-records").await).await;
    let table = b.text(&b.find("#records").await).await;
    assert!(table.contains("Ada Lovelace"), "{table}");
    b.goto(&format!("{}/console/records?q=nobody", s.base))
        .await;
    b.find("#no-records").await;

    // A new lead in `qualified` without an email: the inline module refuses it, and says why.
    b.goto(&format!("{}/console/records", s.base)).await;
    b.click(&b.find("#new-lead").await).await;
    b.type_into(&b.find("#r-name").await, "Grace Hopper").await;
    b.select("#r-place", "leads|qualified").await;
    b.click(&b.find("#save-record").await).await;
    let error = b.text(&b.find("#record-error").await).await;
    assert!(
        error.contains("Automation refused the change")
            && error.contains("leads need an email address"),
        "{error}"
    );
    // The API's validation error shows at the field it names, the rest kept as typed.
    let email = b.find("#r-email").await;
    b.type_into(&email, "grace-at-navy").await;
    b.type_into(&b.find("#r-new-key-0").await, "score").await;
    b.type_into(&b.find("#r-new-value-0").await, "70").await;
    b.click(&b.find("#save-record").await).await;
    let field = b.text(&b.find("#r-email-error").await).await;
    assert!(field.contains("is not an email address"), "{field}");
    assert_eq!(
        b.property(&b.find("#r-name").await, "value").await,
        "Grace Hopper"
    );
    let email = b.find("#r-email").await;
    b.clear(&email).await;
    b.type_into(&email, "grace@navy.example").await;
    b.click(&b.find("#save-record").await).await;
    b.wait_for_text("Created Grace Hopper.").await;
    let grace = s
        .get("/v1/records?q=grace%40navy.example", ADMIN_KEY)
        .await
        .body["records"][0]
        .clone();
    assert_eq!(grace["stage"], "qualified");
    assert_eq!(grace["custom"]["score"], 70, "typed: a number");

    // Editing Ada: an owner and a custom field; a bad email is named at its field.
    b.goto(&format!("{}/console/records/{ada}", s.base)).await;
    b.click(&b.find("#edit-record").await).await;
    b.type_into(&b.find("#r-owner").await, "ann").await;
    b.type_into(&b.find("#r-email").await, "nope").await;
    b.type_into(&b.find("#r-new-key-0").await, "score").await;
    b.type_into(&b.find("#r-new-value-0").await, "55").await;
    b.click(&b.find("#save-record").await).await;
    b.find("#r-email-error").await;
    b.clear(&b.find("#r-email").await).await;
    b.click(&b.find("#save-record").await).await;
    b.wait_for_text("Saved Ada Lovelace.").await;
    let r = s.get(&format!("/v1/records/{ada}"), ADMIN_KEY).await.body;
    assert_eq!(r["owner"], "ann");
    assert_eq!(r["custom"]["score"], 55);
    assert!(r["email"].is_null());

    // Board cards show a chosen custom field (remembered), the owner; filters narrow them.
    b.goto(&format!("{}/console/pipelines/leads?field=score", s.base))
        .await;
    let card = b.text(&b.find(&format!("#card-{ada}")).await).await;
    assert!(card.contains("score: 55") && card.contains("ann"), "{card}");
    b.goto(&format!("{}/console/pipelines/leads", s.base)).await;
    let card = b.text(&b.find(&format!("#card-{ada}")).await).await;
    assert!(
        card.contains("score: 55"),
        "the choice is remembered: {card}"
    );
    b.type_into(&b.find("#bf-owner").await, "ann").await;
    b.click(&b.find("#apply-board-filters").await).await;
    let board = b.text(&b.find("#board").await).await;
    assert!(
        board.contains("Ada Lovelace") && !board.contains("Grace Hopper"),
        "{board}"
    );

    // A deal with an amount: its card shows amount and currency.
    b.goto(&format!("{}/console/records/new?kind=deal", s.base))
        .await;
    b.type_into(&b.find("#r-name").await, "Acme rollout").await;
    b.type_into(&b.find("#r-amount").await, "1200.5").await;
    b.type_into(&b.find("#r-currency").await, "EUR").await;
    b.type_into(&b.find("#r-owner").await, "bob").await;
    b.click(&b.find("#save-record").await).await;
    b.wait_for_text("Created Acme rollout.").await;
    b.goto(&format!("{}/console/pipelines/deals", s.base)).await;
    let board = b.text(&b.find("#board").await).await;
    assert!(
        board.contains("1,200.50 EUR") && board.contains("bob"),
        "{board}"
    );
}

#[tokio::test]
async fn in_a_browser_without_javascript_a_config_form_from_the_schema() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let r = s.upload(ADMIN_KEY, "lead-scoring", lead_scoring()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let b = Browser::start_without_javascript().await;
    browser_sign_in(&b, &s).await;
    b.find("#dashboard-summary").await;

    // A new binding: pipeline, module and version first, then the form of that schema.
    b.goto(&format!("{}/console/bindings", s.base)).await;
    b.select("#nb-pipeline", "leads").await;
    b.select("#nb-module", "lead-scoring").await;
    b.click(&b.find("#continue-binding").await).await;
    b.find("#config-form").await;
    let input = |name: &str| format!("#config-form [name='cfg/{name}']");
    assert_eq!(
        b.property(&b.find(&input("threshold")).await, "type").await,
        "number"
    );
    assert_eq!(
        b.property(&b.find(&input("assign")).await, "tagName").await,
        "SELECT"
    );
    b.type_into(&b.find(&input("threshold")).await, "40").await;
    b.type_into(&b.find(&input("team")).await, "ann\nbob").await;
    b.select(&input("assign"), "round_robin").await;
    b.type_into(&b.find(&input("size_points")).await, r#"[{"min": "big"}]"#)
        .await;
    b.click(&b.find("#create-binding").await).await;
    // The API's 422 names the JSON path; the form shows it at that input, keeping the rest.
    let field = b.text(&b.find("#config-form .field.invalid").await).await;
    assert!(field.contains("size_points"), "{field}");
    assert!(b
        .page_text()
        .await
        .contains("\"config\" at \"/size_points/0/min\""));
    assert_eq!(
        b.property(&b.find(&input("threshold")).await, "value")
            .await,
        "40"
    );
    assert_eq!(
        s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"],
        json!([])
    );
    let points = b.find(&input("size_points")).await;
    b.clear(&points).await;
    b.type_into(&points, r#"[{"min": 100, "points": 15}]"#)
        .await;
    b.click(&b.find("#create-binding").await).await;
    b.wait_for_text("Binding created.").await;
    let binding = &s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"][0];
    assert_eq!(
        binding["config"],
        json!({"threshold": 40, "team": ["ann", "bob"], "assign": "round_robin",
               "size_points": [{"min": 100, "points": 15}]})
    );

    // The edit page shows the form filled in; the JSON text is the fallback, checked too.
    assert_eq!(
        b.property(&b.find(&input("threshold")).await, "value")
            .await,
        "40"
    );
    assert_eq!(
        b.property(&b.find(&input("team")).await, "value").await,
        "ann\nbob"
    );
    b.click(&b.find("#config-source-json").await).await;
    b.click(&b.find("#config-section details summary").await)
        .await;
    let text = b.find("#config-json").await;
    b.clear(&text).await;
    b.type_into(&text, r#"{"threshold": "high"}"#).await;
    b.click(&b.find("#save-binding").await).await;
    let error = b.text(&b.find("#binding-error").await).await;
    assert!(error.contains("\"config\" at \"/threshold\""), "{error}");
    let text = b.find("#config-json").await;
    b.clear(&text).await;
    b.type_into(&text, r#"{"threshold": 45}"#).await;
    b.click(&b.find("#save-binding").await).await;
    b.wait_for_text("Binding saved.").await;
    let binding = &s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"][0];
    assert_eq!(binding["config"], json!({"threshold": 45}));
}

#[tokio::test]
async fn every_new_page_works_in_every_language_and_without_script() {
    let dir = temp_dir();
    let (s, scoring) = scoring_server(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "scoring", "scorer-strict").await;
    s.upload(ADMIN_KEY, "lead-scoring", lead_scoring()).await;
    let r = s
        .post(
            "/v1/modules/scoring/versions/2/replay",
            ADMIN_KEY,
            json!({"binding": scoring, "last": 100}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let replay = r.body["id"].as_str().unwrap().to_string();
    let lead = s.get("/v1/records?q=Ada", ADMIN_KEY).await.body["records"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin = sign_in(&s, ADMIN_KEY).await;
    let pages = [
        "/console/".to_string(),
        "/console/pipelines/leads?field=size&q=a&owner=".to_string(),
        "/console/records".to_string(),
        "/console/records?q=ada&kind=lead&stage=new".to_string(),
        "/console/records/new?kind=lead&pipeline=leads".to_string(),
        "/console/records/new?kind=deal".to_string(),
        "/console/records/new?kind=company".to_string(),
        format!("/console/records/{lead}/edit"),
        "/console/modules/scoring?window=30d".to_string(),
        format!("/console/replays/{replay}"),
        "/console/bindings".to_string(),
        "/console/bindings/new?pipeline=leads&module=lead-scoring&version=1".to_string(),
        format!("/console/bindings/{scoring}?window=24h&previous=2"),
    ];
    let keys: Vec<String> = stagecraft::console::i18n::keys(stagecraft::console::i18n::Lang::En)
        .unwrap()
        .into_iter()
        .filter(|k| k.contains('-'))
        .collect();
    for code in ["en", "es", "pt", "pl"] {
        let lang = stagecraft::console::i18n::Lang::from_code(code).unwrap();
        let session = Session {
            cookie: format!("{}; sc_lang={code}", admin.cookie),
            csrf: admin.csrf.clone(),
        };
        for path in &pages {
            let (status, html) = get_page(&s, &session, path).await;
            assert_eq!(status, StatusCode::OK, "{code} {path}: {html}");
            assert!(html.contains(&format!("lang=\"{code}\"")), "{code} {path}");
            let dashboard = stagecraft::console::i18n::text(lang, "nav-dashboard", &[]);
            assert!(html.contains(&dashboard), "{code} {path}: no {dashboard:?}");
            for key in &keys {
                assert!(
                    !html.contains(&format!(">{key}<")),
                    "{code} {path} shows the raw key {key}"
                );
            }
            // Nothing needs a script: the only one anywhere is the board's optional drag.
            assert!(!html.contains("<script>"), "{code} {path}: inline script");
        }
    }
    // Localised numbers and dates on a chart axis and in its table.
    let pl = Session {
        cookie: format!("{}; sc_lang=pl", admin.cookie),
        csrf: admin.csrf.clone(),
    };
    let (_, html) = get_page(&s, &pl, &format!("/console/bindings/{scoring}?window=7d")).await;
    let today = chrono::Utc::now().format("%d.%m").to_string();
    assert!(
        html.contains(&format!(">{today}")),
        "Polish day.month on the axis"
    );
    assert!(html.contains("Odsetek błędów"), "{html}");

    // Agents see no automation: the home page is their board; no replay, no controls.
    let agent_key = s.key(ADMIN_KEY, "agent").await;
    let agent = sign_in(&s, &agent_key).await;
    let (status, location) = get_page(&s, &agent, "/console/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/console/board");
    let (status, page) = get_page(&s, &agent, "/console/records").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"new-lead\""), "agents create records");
    // Developers replay but cannot switch versions; a forged switch is the API's 403.
    let dev_key = s.key(ADMIN_KEY, "developer").await;
    let dev = sign_in(&s, &dev_key).await;
    let (_, page) = get_page(&s, &dev, &format!("/console/replays/{replay}")).await;
    assert!(
        !page.contains("enable-candidate-"),
        "no switch for developers"
    );
    let (_, page) = get_page(&s, &dev, "/console/records").await;
    assert!(
        !page.contains("id=\"new-lead\""),
        "developers do not write records"
    );
    let (status, page) = post_form(
        &s,
        &dev,
        &format!("/console/bindings/{scoring}/switch"),
        &[("csrf", &dev.csrf), ("version", "2")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let r = s.get(&format!("/v1/bindings/{scoring}"), ADMIN_KEY).await;
    assert_eq!(r.body["version"], 1);
}

#[tokio::test]
async fn a_large_replay_runs_in_the_background_and_its_page_follows_it() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let binding = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
                   "triggers": [{"on": "created"}], "config": {"work": 2_000_000}}),
        )
        .await;
    // More runs than a replay finishes within its request.
    for i in 0..60 {
        s.record(ADMIN_KEY, json!({"kind": "lead", "name": format!("L{i}")}))
            .await;
    }
    let admin = sign_in(&s, ADMIN_KEY).await;
    let r = client()
        .post(format!("{}/console/modules/effector/replay", s.base))
        .header(COOKIE, &admin.cookie)
        .form(&[
            ("csrf", admin.csrf.as_str()),
            ("version", "1"),
            ("binding", binding.as_str()),
            ("window", "hours:24"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(page.starts_with("/console/replays/rpl_"), "{page}");
    // While it runs the page reloads itself (no script) and shows progress; once done it
    // stops reloading and shows the summary.
    let (status, html) = get_page(&s, &admin, &page).await;
    assert_eq!(status, StatusCode::OK);
    if !html.contains("id=\"replay-enable\"") {
        assert!(
            html.contains(r#"<meta http-equiv="refresh" content="2">"#),
            "{html}"
        );
        assert!(html.contains("<progress max=\"100\""), "{html}");
        assert!(html.contains("of 60"), "{html}");
    }
    let done = stagecraft_tests::eventually("the replay to finish", 600, || async {
        let (_, html) = get_page(&s, &admin, &page).await;
        html.contains("id=\"replay-enable\"").then_some(html)
    })
    .await;
    assert!(!done.contains("http-equiv=\"refresh\""));
    assert!(
        done.contains("No differences: the candidate does exactly what the enabled version did."),
        "{done}"
    );
    assert!(done.contains("v1 already runs on this binding."), "{done}");
}
