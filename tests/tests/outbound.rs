//! Where deliveries may go: one guard for webhooks, SMS providers and SMTP relays. A tenant's
//! settings (or a module's webhook URL) that point at this host's network are refused as
//! written, and when a name resolves there, before any connection is made — loopback
//! listeners here count the connections they accept and must see none. With
//! `allow_internal_destinations` the same settings deliver end to end. A failed attempt
//! records a short status, never what the other side answered; each channel may set its
//! timeout. (Every peer here is on 127.0.0.1; no test connects anywhere else.)

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft::config::Config;
use stagecraft::model::ChannelConfig;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the hostile internal services would leak if a reply were ever recorded.
const SECRET: &str = "internal-secret-7f3a";

fn config(dir: &std::path::Path, allow_internal: bool) -> Config {
    let mut c = Config::new(dir);
    c.delivery.base_backoff = Duration::from_millis(100);
    c.delivery.retry_window = Duration::from_secs(30);
    c.delivery.tick = Duration::from_millis(25);
    c.delivery.recheck = Duration::from_millis(100);
    c.delivery.allow_internal_destinations = allow_internal;
    c
}

/// A loopback port that counts the connections it accepts (and closes them).
struct Tripwire {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Tripwire {
    async fn start() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Tripwire { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A minimal SMTP server on loopback: accepts everything, or answers `RCPT` with `rcpt`
/// (e.g. a 550 carrying text nobody should get to read). Keeps each message's data.
struct Smtp {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
}

impl Smtp {
    async fn start(rcpt: &'static str) -> Smtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(format!("220 fake ESMTP {SECRET}\r\n").as_bytes())
                        .await
                        .unwrap();
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(d) = &mut data {
                            if line == "." {
                                store.lock().unwrap().push(data.take().unwrap());
                                w.write_all(b"250 queued\r\n").await.unwrap();
                            } else {
                                d.push_str(&line);
                                d.push('\n');
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply = match verb.as_str() {
                            "EHLO" | "HELO" => "250 fake\r\n".to_string(),
                            "RCPT" => format!("{rcpt}\r\n"),
                            "DATA" => {
                                data = Some(String::new());
                                "354 go ahead\r\n".into()
                            }
                            "QUIT" => {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => "250 ok\r\n".into(),
                        };
                        if w.write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Smtp { port, received }
    }
}

/// An HTTP endpoint on loopback answering every POST with `status` and a body nobody should
/// get to read; keeps each request's authorization header.
async fn http_peer(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let log = log.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                log.lock().unwrap().push(auth);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    format!("{SECRET}: the admin panel says hello"),
                )
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// A module that queues one message on `channel` per created lead; its binding may use every
/// channel, so switching its config switches the channel. Returns the binding's id.
async fn queue_on_create(s: &Server, channel: &str, to: &str) -> String {
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "created"}], "config": {"channel": channel, "to": to},
        "grants": {"channels": ["sms", "email", "webhook"]}}),
    )
    .await
}

/// Points the module at another channel and recipient.
async fn switch(s: &Server, binding: &str, channel: &str, to: &str) {
    let r = s
        .patch(
            &format!("/v1/bindings/{binding}"),
            ADMIN_KEY,
            json!({"config": {"channel": channel, "to": to}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn put_channels(s: &Server, settings: Value) -> stagecraft_tests::Response {
    s.call(
        reqwest::Method::PUT,
        "/v1/channels",
        Some(ADMIN_KEY),
        Some(settings),
    )
    .await
}

/// Stores settings as they may already be on disk (saved before they were checked when
/// saved), or as a name that resolved publicly when saved and internally later would be.
fn store_channels(s: &Server, settings: Value) {
    let cfg: ChannelConfig = serde_json::from_value(settings).unwrap();
    let op = stagecraft::store::Op::PutChannels { config: cfg };
    let cs = stagecraft::store::Changeset::op("default", op);
    s.state.store.commit(&cs).unwrap();
}

/// Creates a lead and returns the message its module queued, after its first attempt.
async fn attempted(s: &Server, name: &str) -> Value {
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": name}))
        .await;
    let rec = lead["id"].as_str().unwrap();
    eventually(&format!("an attempt for {name}"), 1200, || async {
        let m = s
            .get(&format!("/v1/messages?record={rec}"), ADMIN_KEY)
            .await;
        let m = m.body["messages"][0].clone();
        (m["attempts"].as_array().is_some_and(|a| !a.is_empty())).then_some(m)
    })
    .await
}

fn first_error(m: &Value) -> String {
    m["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn settings_naming_an_internal_destination_are_refused_when_saved() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), false)).await;
    let email = |host: &str| json!({"email": {"host": host, "port": 25, "tls": "none", "from": "crm@acme.test"}});
    for (settings, field, problem) in [
        (
            json!({"sms": {"url": "http://127.0.0.1:9/send", "token": "t"}}),
            "sms.url",
            "127.0.0.1 is loopback",
        ),
        (
            json!({"sms": {"url": "http://[::ffff:169.254.169.254]/latest"}}),
            "sms.url",
            "link-local",
        ),
        (
            json!({"sms": {"url": "http://localhost:9/send"}}),
            "sms.url",
            "loopback name",
        ),
        (email("127.0.0.1"), "email.host", "loopback"),
        (email("::7f00:1"), "email.host", "IPv4-compatible"),
        (email("10.0.0.25"), "email.host", "private"),
        (email("2130706433"), "email.host", "127.0.0.1 is loopback"),
        (email("smtp.localhost"), "email.host", "loopback name"),
        (
            json!({"webhook": {"allowed_hosts": ["192.168.1.10:8080"]}}),
            "webhook.allowed_hosts",
            "private",
        ),
    ] {
        let r = put_channels(&s, settings.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{settings}");
        assert_eq!(r.code(), "invalid");
        let m = r.message();
        assert!(m.starts_with(&format!("{field}: refused: ")), "{m}");
        assert!(m.contains(problem), "{m}");
        assert!(m.contains("--allow-internal-destinations"), "{m}");
    }
    // Nothing refused was stored.
    assert_eq!(
        s.state.store.channels("default").unwrap(),
        ChannelConfig::default()
    );
    // Public destinations are fine, and names are left to the check at send time.
    let r = put_channels(
        &s,
        json!({"sms": {"url": "https://sms.example.com/send"},
               "email": {"host": "smtp.example.com", "port": 587, "tls": "starttls", "from": "crm@acme.test"},
               "webhook": {"allowed_hosts": ["hooks.example.com", "93.184.216.34"]}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // A server that allows internal destinations takes them.
    let dir2 = temp_dir();
    let open = Server::start_with(config(dir2.path(), true)).await;
    let r = put_channels(&open, json!({"sms": {"url": "http://127.0.0.1:9/send"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// Channel settings are stored per tenant and read for every delivery: each text has a
/// length and the allowed hosts a count, refused by name, and nothing refused is stored.
#[tokio::test]
async fn channel_settings_have_a_size_refused_by_name() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), false)).await;
    let long = |n: usize| "a".repeat(n);
    let email = |field: &str, value: Value| {
        let mut e = json!({"host": "smtp.example.com", "port": 587, "tls": "starttls",
            "from": "crm@acme.test"});
        e[field] = value;
        json!({ "email": e })
    };
    for (settings, field) in [
        (
            email("host", json!(format!("{}.example.com", long(250)))),
            "email.host",
        ),
        (email("username", json!(long(257))), "email.username"),
        (email("password", json!(long(1025))), "email.password"),
        (
            email("from", json!(format!("{} <crm@acme.test>", long(600)))),
            "email.from",
        ),
        (
            json!({"sms": {"url": format!("https://sms.example.com/{}", long(2100))}}),
            "sms.url",
        ),
        (
            json!({"sms": {"url": "https://sms.example.com/send", "token": long(4097)}}),
            "sms.token",
        ),
        (
            json!({"webhook": {"allowed_hosts": [format!("{}.example.com", long(300))]}}),
            "webhook.allowed_hosts",
        ),
        (
            json!({"webhook": {"allowed_hosts": (0..101).map(|i| format!("h{i}.example.com")).collect::<Vec<_>>()}}),
            "webhook.allowed_hosts",
        ),
    ] {
        let r = put_channels(&s, settings.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(r.code(), "invalid");
        assert!(
            r.message().starts_with(&format!("{field}: ")),
            "{}",
            r.message()
        );
        assert!(r.message().contains("at most"), "{}", r.message());
    }
    assert_eq!(
        s.state.store.channels("default").unwrap(),
        ChannelConfig::default()
    );
    // A hundred allowed hosts and a long token are fine.
    let r = put_channels(
        &s,
        json!({"webhook": {"allowed_hosts": (0..100).map(|i| format!("h{i}.example.com")).collect::<Vec<_>>()},
               "sms": {"url": "https://sms.example.com/send", "token": long(4096)}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// The hostile-module case: a module queues SMS for a tenant whose provider URL points at
/// loopback (by literal, and by a name resolving there). The provider token must never leave.
#[tokio::test]
async fn hostile_ssrf_through_sms_is_refused_before_any_connection() {
    let wire = Tripwire::start().await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), false)).await;
    queue_on_create(&s, "sms", "+48600100200").await;
    for (host, why) in [
        ("127.0.0.1", "refused: 127.0.0.1 is loopback (127.0.0.0/8)"),
        (
            "[::ffff:127.0.0.1]",
            "refused: ::ffff:127.0.0.1 is loopback",
        ),
        ("localhost", "refused: localhost is a loopback name"),
        ("localhost.", "refused: localhost. is a loopback name"),
    ] {
        let url = format!("http://{host}:{}/send", wire.port);
        store_channels(&s, json!({"sms": {"url": url, "token": "provider-token"}}));
        let m = attempted(&s, host).await;
        assert_eq!(m["status"], "dead", "a refusal is final: {m}");
        let error = first_error(&m);
        assert!(error.starts_with(why), "{host}: {error}");
    }
    assert_eq!(
        wire.accepted(),
        0,
        "the loopback service was never connected to"
    );
}

/// The hostile-module case through email: a relay host on loopback, which would also make the
/// SMTP setting a port scanner (a closed port answering differently from an open one).
#[tokio::test]
async fn hostile_ssrf_through_smtp_is_refused_before_any_connection() {
    let wire = Tripwire::start().await;
    let closed = {
        // A port nothing listens on: its answer must not differ from an open port's.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), false)).await;
    queue_on_create(&s, "email", "ada@example.com").await;
    let mut errors = Vec::new();
    for (host, port) in [
        ("127.0.0.1", wire.port),
        ("127.0.0.1", closed),
        ("::1", wire.port),
        ("localhost", wire.port),
        ("LOCALHOST", closed),
    ] {
        store_channels(
            &s,
            json!({"email": {"host": host, "port": port, "tls": "starttls",
                             "from": "crm@acme.test", "username": "crm", "password": "pw"}}),
        );
        let m = attempted(&s, &format!("{host}:{port}")).await;
        assert_eq!(m["status"], "dead", "{m}");
        let error = first_error(&m);
        assert!(error.starts_with("refused: "), "{host}:{port}: {error}");
        assert!(
            !error.contains("connection"),
            "no port-state oracle: {error}"
        );
        errors.push(error);
    }
    assert_eq!(
        errors[0], errors[1],
        "an open and a closed port look the same"
    );
    assert_eq!(
        wire.accepted(),
        0,
        "the loopback service was never connected to"
    );
}

#[tokio::test]
async fn with_internal_destinations_allowed_sms_and_smtp_deliver_on_loopback() {
    let (sms_url, sms_seen) = http_peer(200).await;
    let smtp = Smtp::start("250 ok").await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let r = put_channels(
        &s,
        json!({"sms": {"url": sms_url, "token": "provider-token"},
               "email": {"host": "localhost", "port": smtp.port, "tls": "none", "from": "crm@acme.test"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let b = queue_on_create(&s, "sms", "+48600100200").await;
    let m = attempted(&s, "Text me").await;
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(*sms_seen.lock().unwrap(), vec!["Bearer provider-token"]);

    switch(&s, &b, "email", "ada@example.com").await;
    let m = attempted(&s, "Mail me").await;
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["attempts"][0]["status"], 250);
    let mails = smtp.received.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: hello"), "{}", mails[0]);
}

#[tokio::test]
async fn a_failed_attempt_records_a_status_never_the_reply() {
    let (sms_url, _) = http_peer(500).await;
    let (hook_url, _) = http_peer(400).await;
    let smtp = Smtp::start("550 5.1.1 internal-secret-7f3a mailbox of the CFO").await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let r = put_channels(
        &s,
        json!({"sms": {"url": sms_url},
               "webhook": {"allowed_hosts": ["127.0.0.1"]},
               "email": {"host": "127.0.0.1", "port": smtp.port, "tls": "none", "from": "crm@acme.test"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let b = queue_on_create(&s, "sms", "+1").await;
    let mut ids = Vec::new();
    for (channel, to, expected) in [
        ("sms", "+1", "HTTP 500 Internal Server Error"),
        ("webhook", hook_url.as_str(), "HTTP 400 Bad Request"),
        ("email", "cfo@acme.test", "SMTP 550 mailbox unavailable"),
    ] {
        switch(&s, &b, channel, to).await;
        let m = attempted(&s, channel).await;
        assert_eq!(first_error(&m), expected, "{m}");
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    // Nowhere in what the API returns.
    for id in &ids {
        let one = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await;
        assert!(!one.body.to_string().contains(SECRET), "{}", one.body);
    }
    let all = s.get("/v1/messages", ADMIN_KEY).await;
    assert!(!all.body.to_string().contains(SECRET), "{}", all.body);
}

#[tokio::test]
async fn each_channel_may_set_its_timeout_within_bounds() {
    // A receiver that takes the connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    // The server's default would outlast the test: only the channel's own setting can end
    // the attempt in time.
    c.delivery.timeout = Duration::from_secs(600);
    let s = Server::start_with(c).await;
    for (settings, field) in [
        (
            json!({"webhook": {"allowed_hosts": ["*"], "timeout_seconds": 0}}),
            "webhook.timeout_seconds",
        ),
        (
            json!({"webhook": {"allowed_hosts": ["*"], "timeout_seconds": 61}}),
            "webhook.timeout_seconds",
        ),
        (
            json!({"sms": {"url": "https://sms.example.com", "timeout_seconds": 3600}}),
            "sms.timeout_seconds",
        ),
        (
            json!({"email": {"host": "smtp.example.com", "port": 25, "tls": "none", "from": "a@b.co", "timeout_seconds": 0}}),
            "email.timeout_seconds",
        ),
    ] {
        let r = put_channels(&s, settings).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.message().starts_with(field), "{}", r.message());
        assert!(r.message().contains("1 to 60 seconds"), "{}", r.message());
    }
    let r = put_channels(
        &s,
        json!({"webhook": {"allowed_hosts": ["*"], "timeout_seconds": 1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["settings"]["webhook"]["timeout_seconds"], 1);
    queue_on_create(&s, "webhook", &url).await;
    let m = attempted(&s, "Slow receiver").await;
    assert_eq!(first_error(&m), "timed out", "{m}");
    assert!(
        m["status"] == "queued" || m["status"] == "sending",
        "a timeout is retried (at-least-once): {m}"
    );
}

/// `serve --allow-internal-webhooks`, the flag's old name, still opens internal destinations.
#[tokio::test]
async fn the_old_flag_name_still_allows_internal_destinations() {
    let dir = temp_dir();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-internal-webhooks",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.strip_prefix("listening on ") {
                return a.to_string();
            }
        }
        panic!("the server stopped before listening");
    })
    .await
    .expect("the server listens");
    let r = reqwest::Client::new()
        .put(format!("http://{addr}/v1/channels"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"sms": {"url": "http://127.0.0.1:9/send"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    child.kill().await.unwrap();
}
