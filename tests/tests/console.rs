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

/// Refreshes docs/console-board.png and docs/console-run.png from a demo server
/// (`scripts/screenshots` runs this).
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
    let b = Browser::start().await;
    b.set_window(1400, 820).await;
    b.goto(&format!("{}/console/login", s.base)).await;
    b.type_into(&b.find("#key").await, ADMIN_KEY).await;
    b.click(&b.find("#sign-in").await).await;
    b.find("#board").await;
    b.goto(&format!("{}/console/pipelines/leads", s.base)).await;
    b.find("#board").await;
    b.screenshot(&out.join("console-board.png")).await;
    let runs = stagecraft_tests::eventually("a demo run", 400, || async {
        let runs = s.runs(ADMIN_KEY, "outcome=ok").await;
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
