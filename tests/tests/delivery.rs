//! Delivery on loopback with real peers: an HTTP receiver that fails and then accepts (and
//! checks signatures), one that refuses, one that never answers, a real SMTP server
//! (aiosmtpd), a restart in the middle of a backlog, a shutdown with attempts hanging, and
//! one tenant's hanging receivers and backlog beside another tenant's message.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;
use stagecraft::config::Config;
use stagecraft::model::{Channel, MessageStatus, OutboxMessage};
use stagecraft::store::Changeset;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// What the receiver does with the n-th request (0-based).
#[derive(Clone, Copy)]
enum Behaviour {
    /// 503 with `Retry-After: 1` this many times, then 200.
    FailThenAccept(usize),
    Reject400,
    Always503,
    /// 200 after this long.
    Slow(Duration),
    /// Reads the request and never answers.
    Hang,
}

/// Every request the receiver got: headers and body.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[derive(Clone)]
struct Receiver {
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Seen,
}

impl Receiver {
    async fn start(b: Behaviour) -> (Receiver, String) {
        let r = Receiver {
            behaviour: Arc::new(Mutex::new(b)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let n = {
                        let mut seen = state.seen.lock().unwrap();
                        seen.push((headers, body.to_vec()));
                        seen.len() - 1
                    };
                    let b = *state.behaviour.lock().unwrap();
                    match b {
                        Behaviour::FailThenAccept(k) if n < k => (
                            AxumStatus::SERVICE_UNAVAILABLE,
                            [("retry-after", "1")],
                            "busy",
                        )
                            .into_response(),
                        Behaviour::FailThenAccept(_) => (AxumStatus::OK, "ok").into_response(),
                        Behaviour::Reject400 => {
                            (AxumStatus::BAD_REQUEST, "no such order").into_response()
                        }
                        Behaviour::Always503 => {
                            (AxumStatus::SERVICE_UNAVAILABLE, "down").into_response()
                        }
                        Behaviour::Slow(d) => {
                            tokio::time::sleep(d).await;
                            (AxumStatus::OK, "ok").into_response()
                        }
                        Behaviour::Hang => std::future::pending().await,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.delivery.base_backoff = Duration::from_millis(100);
    c.delivery.retry_window = Duration::from_secs(5);
    c.delivery.tick = Duration::from_millis(25);
    c.delivery.recheck = Duration::from_millis(100);
    // The receivers here live on loopback, which webhooks may not reach by default.
    c.delivery.allow_internal_destinations = true;
    c
}

/// Binds the effector to queue one message per created lead; returns the binding's id.
async fn queue_on_create(s: &Server, channel: &str, to: &str, key: Option<&str>) -> String {
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let mut cfg = json!({"channel": channel, "to": to});
    if let Some(k) = key {
        cfg["key"] = json!(k);
    }
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "created"}], "config": cfg, "grants": {"channels": [channel]}}),
    )
    .await
}

/// Points binding `b` (the effector) at another message.
async fn requeue_as(s: &Server, b: &str, config: Value, channel: &str) {
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"config": config, "grants": {"channels": [channel]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// Sets the tenant's channel settings (admin).
async fn set_channels(s: &Server, settings: Value) -> stagecraft_tests::Response {
    s.call(
        reqwest::Method::PUT,
        "/v1/channels",
        Some(ADMIN_KEY),
        Some(settings),
    )
    .await
}

/// The id of the one message queued for `record`.
async fn message_for(s: &Server, record: &Value) -> String {
    let id = record["id"].as_str().unwrap();
    let msgs = s.get(&format!("/v1/messages?record={id}"), ADMIN_KEY).await;
    msgs.body["messages"][0]["id"].as_str().unwrap().to_string()
}

async fn only_message(s: &Server) -> Value {
    let all = s.get("/v1/messages", ADMIN_KEY).await;
    let msgs = all.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    msgs[0].clone()
}

async fn settled(s: &Server, id: &str, status: &str) -> Value {
    eventually(&format!("message {id} to be {status}"), 400, || async {
        let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
        (m["status"] == status).then_some(m)
    })
    .await
}

#[tokio::test]
async fn webhooks_retry_on_503_honoring_retry_after_then_deliver_signed() {
    let (rx, url) = Receiver::start(Behaviour::FailThenAccept(2)).await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    let ch = set_channels(&s, json!({"webhook": {"allowed_hosts": ["127.0.0.1"]}})).await;
    assert_eq!(ch.status, StatusCode::OK, "{:?}", ch.body);
    let secret = ch.body["webhook_secret"].as_str().unwrap().to_string();
    let b = queue_on_create(&s, "webhook", &url, Some("order-1")).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Hook"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    let m = settled(&s, &id, "sent").await;

    let attempts = m["attempts"].as_array().unwrap();
    let codes: Vec<u64> = attempts
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![503, 503, 200]);
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["at"].as_str().unwrap()).unwrap()
    };
    assert!(
        at(1) - at(0) >= chrono::Duration::milliseconds(950),
        "Retry-After: 1 was honored"
    );
    assert_eq!(attempts[0]["error"], "HTTP 503 Service Unavailable");

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (headers, body) in &seen {
        assert_eq!(headers["stagecraft-message-id"], id.as_str());
        assert_eq!(headers["idempotency-key"], "order-1");
        let sig = headers["stagecraft-signature"].to_str().unwrap();
        let (t, v1) = sig.split_once(",v1=").unwrap();
        let t = t.trim_start_matches("t=");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            v1,
            "valid signature"
        );
        let envelope: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(envelope["id"], id.as_str());
        assert_eq!(envelope["tenant"], "default");
        assert_eq!(envelope["idempotency_key"], "order-1");
    }

    // The same idempotency key is never queued (or sent) again: the change commits without
    // the message, so the outbox still holds one when the create answers.
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Hook again"}))
        .await;
    only_message(&s).await;
    // Nothing else goes out: a message queued after it, with a key of its own, is sent,
    // and the receiver got that one only.
    requeue_as(
        &s,
        &b,
        json!({"channel": "webhook", "to": url, "key": "order-2"}),
        "webhook",
    )
    .await;
    let later = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Hook later"}))
        .await;
    let later = message_for(&s, &later).await;
    settled(&s, &later, "sent").await;
    let all = s.get("/v1/messages", ADMIN_KEY).await;
    assert_eq!(all.body["messages"].as_array().unwrap().len(), 2);
    assert_eq!(rx.count(), 4);
}

#[tokio::test]
async fn a_4xx_is_a_dead_letter_at_once_and_an_admin_can_retry_it() {
    let (rx, url) = Receiver::start(Behaviour::Reject400).await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    set_channels(&s, json!({"webhook": {"allowed_hosts": ["*"]}})).await;
    queue_on_create(&s, "webhook", &url, None).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Dead"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    let m = settled(&s, &id, "dead").await;
    assert_eq!(
        m["attempts"].as_array().unwrap().len(),
        1,
        "no retry on 400"
    );
    // The status line, never the receiver's reply.
    assert_eq!(m["attempts"][0]["error"], "HTTP 400 Bad Request");
    assert_eq!(rx.count(), 1);
    // A dead letter is not tried again: a message queued after it is attempted (and dies
    // too), and the first still has its one attempt.
    let next = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Dead too"}))
        .await;
    let next = message_for(&s, &next).await;
    settled(&s, &next, "dead").await;
    let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(rx.count(), 2);
    let dead = s
        .get("/v1/messages?status=dead&channel=webhook", ADMIN_KEY)
        .await;
    assert_eq!(dead.body["messages"].as_array().unwrap().len(), 2);

    // Only admins retry, only dead letters.
    let dev = s.key(ADMIN_KEY, "developer").await;
    assert_eq!(
        s.post(&format!("/v1/messages/{id}/retry"), &dev, json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    *rx.behaviour.lock().unwrap() = Behaviour::FailThenAccept(0);
    let r = s
        .post(&format!("/v1/messages/{id}/retry"), ADMIN_KEY, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let m = settled(&s, &id, "sent").await;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 2);
    let r = s
        .post(&format!("/v1/messages/{id}/retry"), ADMIN_KEY, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        s.post("/v1/messages/msg_nope/retry", ADMIN_KEY, json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn retries_stop_at_the_retry_window_and_disallowed_hosts_are_refused() {
    let (_rx, url) = Receiver::start(Behaviour::Always503).await;
    let dir = temp_dir();
    let mut c = config(dir.path());
    c.delivery.retry_window = Duration::from_secs(1);
    let s = Server::start_with(c).await;
    set_channels(&s, json!({"webhook": {"allowed_hosts": ["127.0.0.1"]}})).await;
    queue_on_create(&s, "webhook", &url, None).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Down"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    let m = settled(&s, &id, "dead").await;
    assert!(
        m["attempts"].as_array().unwrap().len() >= 2,
        "it retried before giving up: {m}"
    );

    // A host outside the allow-list is never contacted.
    set_channels(
        &s,
        json!({"webhook": {"allowed_hosts": ["hooks.example.com"]}}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Elsewhere"}))
        .await;
    let id = message_for(&s, &lead).await;
    let m = settled(&s, &id, "dead").await;
    assert!(
        m["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{m}"
    );
}

#[tokio::test]
async fn without_settings_messages_stay_queued_until_a_channel_is_configured() {
    let (rx, url) = Receiver::start(Behaviour::FailThenAccept(0)).await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    let b = queue_on_create(&s, "sms", "+48600100200", None).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Text me"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    // The worker has had its turn at it once a message queued after it (in-app, which
    // needs no settings) is delivered.
    requeue_as(&s, &b, json!({"channel": "notify", "to": "ann"}), "notify").await;
    let later = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Notify me"}))
        .await;
    let later = message_for(&s, &later).await;
    settled(&s, &later, "sent").await;
    let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
    assert_eq!(m["status"], "queued", "never dropped, never marked sent");
    assert!(m["attempts"].as_array().unwrap().is_empty());

    let r = set_channels(&s, json!({"sms": {"url": "ftp://nope"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = set_channels(&s, json!({"sms": {"url": url, "token": "provider-token"}})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["settings"]["sms"].get("token").is_none(),
        "secrets are write-only"
    );
    settled(&s, &id, "sent").await;
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0["authorization"], "Bearer provider-token");
    // Omitting the token keeps it for the same endpoint, but never carries it to a new one.
    set_channels(&s, json!({"sms": {"url": url}})).await;
    assert_eq!(
        s.state
            .store
            .channels("default")
            .unwrap()
            .sms
            .unwrap()
            .token
            .as_deref(),
        Some("provider-token")
    );
    set_channels(
        &s,
        json!({"sms": {"url": "https://attacker.example/collect"}}),
    )
    .await;
    assert!(s
        .state
        .store
        .channels("default")
        .unwrap()
        .sms
        .unwrap()
        .token
        .is_none());
    let body: Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(body["to"], "+48600100200");
}

#[tokio::test]
async fn notify_creates_an_in_app_notification() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    queue_on_create(&s, "notify", "ann", None).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ping ann"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    settled(&s, &id, "sent").await;
    let n = s.get("/v1/notifications?user=ann", ADMIN_KEY).await;
    let n = n.body["notifications"].as_array().unwrap().clone();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["record"], lead["id"]);
    assert!(
        s.get("/v1/notifications?user=bob", ADMIN_KEY).await.body["notifications"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Other keys read only the notifications of the user they act for.
    let r = s
        .post(
            "/v1/keys",
            ADMIN_KEY,
            json!({"role": "agent", "name": "ann's key", "user": "ann"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["user"], "ann");
    let ann = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(
        s.get("/v1/notifications?user=ann", &ann).await.body["notifications"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s.get("/v1/notifications?user=bob", &ann).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message().contains("own user"), "{}", r.message());
    let anonymous = s.key(ADMIN_KEY, "agent").await;
    assert_eq!(
        s.get("/v1/notifications?user=ann", &anonymous).await.status,
        StatusCode::FORBIDDEN
    );
}

/// aiosmtpd on loopback, writing what it receives into a Maildir.
struct Smtp {
    child: tokio::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    async fn start() -> Smtp {
        let tools = std::env::var("STAGECRAFT_TOOLS").unwrap_or_else(|_| {
            format!("{}/.cache/stagecraft-tools", std::env::var("HOME").unwrap())
        });
        let python = format!("{tools}/py/bin/python");
        assert!(
            std::path::Path::new(&python).exists(),
            "aiosmtpd missing: run scripts/install-guest-tools"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = temp_dir();
        let child = tokio::process::Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("mail"))
            .kill_on_drop(true)
            .spawn()
            .expect("start aiosmtpd");
        eventually("the SMTP server to listen", 200, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Smtp {
            child,
            port,
            maildir,
        }
    }

    fn received(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail/new");
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_relay() {
    let mut smtp = Smtp::start().await;
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    let r = set_channels(
        &s,
        json!({"email": {
        "host": "127.0.0.1", "port": smtp.port, "tls": "none", "from": "Acme CRM <crm@acme.test>",
        "username": null, "password": null}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    queue_on_create(&s, "email", "ada@example.com", None).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Mail me"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    let m = settled(&s, &id, "sent").await;
    assert_eq!(m["attempts"][0]["status"], 250);
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.contains("Subject: hello"), "{mail}");
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(
        mail.contains(&format!("Message-ID: <{id}@stagecraft>")),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("about {}", lead["id"].as_str().unwrap())),
        "{mail}"
    );

    // A recipient that is not an address is a dead letter, not a retry loop.
    let b = s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(
        &format!("/v1/bindings/{b}"),
        ADMIN_KEY,
        json!({"config": {"channel": "email", "to": "not an address"}}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Bad mail"}))
        .await;
    let bad = message_for(&s, &lead).await;
    let m = settled(&s, &bad, "dead").await;
    assert!(
        m["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not an email address"),
        "{m}"
    );

    // The relay going away means retries, not loss.
    smtp.child.kill().await.unwrap();
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Relay down"}))
        .await;
    let _ = lead;
    s.patch(
        &format!("/v1/bindings/{b}"),
        ADMIN_KEY,
        json!({"config": {"channel": "email", "to": "bob@example.com"}}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Relay down 2"}))
        .await;
    let down = message_for(&s, &lead).await;
    let m = eventually("a failed attempt", 200, || async {
        let m = s.get(&format!("/v1/messages/{down}"), ADMIN_KEY).await.body;
        (!m["attempts"].as_array().unwrap().is_empty()).then_some(m)
    })
    .await;
    assert_ne!(m["status"], "sent");
    assert_ne!(m["status"], "dead", "connection failures are retried: {m}");
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_backlog_loses_nothing() {
    const N: usize = 12;
    let (rx, url) = Receiver::start(Behaviour::Slow(Duration::from_millis(100))).await;
    let dir = temp_dir();
    let mut c = config(dir.path());
    c.delivery.per_destination = 1;
    let s = Server::start_with(c.clone()).await;
    set_channels(&s, json!({"webhook": {"allowed_hosts": ["*"]}})).await;
    queue_on_create(&s, "webhook", &url, None).await;
    for i in 0..N {
        s.record(ADMIN_KEY, json!({"kind": "lead", "name": format!("B{i}")}))
            .await;
    }
    eventually("some deliveries", 200, || async {
        (rx.count() >= 2).then_some(())
    })
    .await;
    let dir_path = s.stop().await;
    let delivered_before = rx.count();
    assert!(
        delivered_before < N,
        "the backlog was still draining ({delivered_before} of {N})"
    );
    let s = Server::start_with({
        let mut c2 = c;
        c2.data_dir = dir_path;
        c2
    })
    .await;
    eventually("the whole backlog", 400, || async {
        let sent = s.get("/v1/messages?status=sent", ADMIN_KEY).await;
        (sent.body["messages"].as_array().unwrap().len() == N).then_some(())
    })
    .await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for (h, _) in rx.seen.lock().unwrap().iter() {
        *per_id
            .entry(h["stagecraft-message-id"].to_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), N, "every message arrived");
    assert!(
        per_id.values().all(|n| *n <= 2),
        "at most once more after a restart: {per_id:?}"
    );
}

#[tokio::test]
async fn a_slow_destination_does_not_hold_up_the_others() {
    let (slow, slow_url) = Receiver::start(Behaviour::Slow(Duration::from_millis(1500))).await;
    let (fast, fast_url) = Receiver::start(Behaviour::FailThenAccept(0)).await;
    let dir = temp_dir();
    let mut c = config(dir.path());
    c.delivery.concurrency = 2;
    // One tenant here: its share is the whole server.
    c.delivery.per_tenant = Some(2);
    c.delivery.per_destination = 1;
    let s = Server::start_with(c).await;
    set_channels(&s, json!({"webhook": {"allowed_hosts": ["*"]}})).await;
    queue_on_create(&s, "webhook", &slow_url, None).await;
    for i in 0..4 {
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": format!("Slow {i}")}),
        )
        .await;
    }
    eventually("the slow receiver to be busy", 100, || async {
        (slow.count() >= 1).then_some(())
    })
    .await;
    let b = s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(
        &format!("/v1/bindings/{b}"),
        ADMIN_KEY,
        json!({"config": {"channel": "webhook", "to": fast_url}}),
    )
    .await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Fast"}))
        .await;
    eventually(
        "the fast receiver served while the slow one is busy",
        20,
        || async { (fast.count() == 1).then_some(()) },
    )
    .await;
    assert!(slow.count() < 4, "the slow backlog was still draining");
}

#[tokio::test]
async fn by_default_webhooks_cannot_reach_internal_addresses() {
    let (rx, url) = Receiver::start(Behaviour::FailThenAccept(0)).await;
    let dir = temp_dir();
    let mut c = config(dir.path());
    c.delivery.allow_internal_destinations = false;
    let s = Server::start_with(c).await;
    set_channels(&s, json!({"webhook": {"allowed_hosts": ["*"]}})).await;
    queue_on_create(&s, "webhook", &url, None).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Probe loopback"}))
        .await;
    let b = s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A name that resolves to loopback is refused too, not just the literal.
    let by_name = url.replace("127.0.0.1", "localhost");
    s.patch(
        &format!("/v1/bindings/{b}"),
        ADMIN_KEY,
        json!({"config": {"channel": "webhook", "to": by_name}}),
    )
    .await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Probe by name"}))
        .await;
    let all = s.get("/v1/messages", ADMIN_KEY).await.body["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 2);
    for m in all {
        let id = m["id"].as_str().unwrap().to_string();
        let m = eventually("an attempt", 200, || async {
            let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
            (!m["attempts"].as_array().unwrap().is_empty()).then_some(m)
        })
        .await;
        let error = m["attempts"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.starts_with("refused: "), "{m}");
        assert_eq!(m["status"], "dead", "a refusal is final: {m}");
    }
    assert_eq!(rx.count(), 0, "the internal receiver was never reached");
}

#[tokio::test]
async fn bad_channel_settings_are_refused_by_name() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    let email = |from: &str, port: u16| json!({"email": {"host": "smtp.example.com", "port": port, "tls": "starttls", "from": from}});
    let r = set_channels(&s, email("not an address", 587)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("from"), "{}", r.message());
    let r = set_channels(&s, email("crm@example.com", 0)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("port"), "{}", r.message());
    let r = set_channels(&s, json!({"fax": {"number": "1"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "unknown_field");
    let r = set_channels(
        &s,
        json!({"email": {"host": "h", "port": 25, "tls": "sometimes", "from": "a@b.co"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("sometimes"), "{}", r.message());
    let dev = s.key(ADMIN_KEY, "developer").await;
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/channels",
            Some(&dev),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get("/v1/channels", &dev).await.status,
        StatusCode::FORBIDDEN
    );
    // Nothing refused was stored.
    assert_eq!(
        s.state.store.channels("default").unwrap(),
        stagecraft::model::ChannelConfig::default()
    );
}

/// A signed-in console session's cookie (sign-in form, its CSRF token, the session cookie).
async fn console_cookie(s: &Server) -> String {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = c
        .get(format!("{}/console/login", s.base))
        .send()
        .await
        .unwrap();
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_string()
    };
    let login = cookie(&form, "sc_login");
    let html = form.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let token = &html[at..at + html[at..].find('"').unwrap()];
    let r = c
        .post(format!("{}/console/login", s.base))
        .header(reqwest::header::COOKIE, login)
        .form(&[("key", ADMIN_KEY), ("csrf", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    cookie(&r, "sc_session")
}

#[tokio::test]
async fn a_queued_message_says_why_it_waits_in_the_api_the_cli_and_the_console() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path())).await;
    queue_on_create(&s, "email", "ada@example.com", None).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Mail me"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
    assert_eq!(m["status"], "queued");
    assert_eq!(m["waiting"]["reason"], "channel_not_configured", "{m}");
    assert_eq!(m["waiting"]["message"], "email channel not configured");
    assert_eq!(only_message(&s).await["waiting"], m["waiting"]);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .arg("messages")
        .env("STAGECRAFT_URL", &s.base)
        .env("STAGECRAFT_KEY", ADMIN_KEY)
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("queued: email channel not configured"),
        "{table}"
    );
    assert!(
        !table.contains("next"),
        "no next attempt that never comes: {table}"
    );

    let cookie = console_cookie(&s).await;
    let page = |lang: &'static str| {
        let cookie = cookie.clone();
        let url = format!("{}/console/messages", s.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .header(reqwest::header::COOKIE, cookie)
                .header("accept-language", lang)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let html = page("en").await;
    assert!(html.contains("email channel not configured"), "{html}");
    assert!(!html.contains("next attempt"), "{html}");
    let html = page("es").await;
    assert!(html.contains("canal email sin configurar"), "{html}");

    // Once the channel has settings, the reason follows them: a relay refusing connections
    // makes it a retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = set_channels(
        &s,
        json!({"email": {"host": "127.0.0.1", "port": closed, "tls": "none", "from": "crm@acme.test"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let m = eventually("a failed attempt", 400, || async {
        let m = s.get(&format!("/v1/messages/{id}"), ADMIN_KEY).await.body;
        (m["status"] == "queued" && !m["attempts"].as_array().unwrap().is_empty()).then_some(m)
    })
    .await;
    assert_eq!(m["attempts"][0]["error"], "connection refused", "{m}");
    assert_eq!(m["waiting"]["reason"], "retry_scheduled", "{m}");
    assert!(m["waiting"]["message"]
        .as_str()
        .unwrap()
        .starts_with("retry after"));
}

#[tokio::test]
async fn shutdown_abandons_an_attempt_the_receiver_never_answers_and_start_requeues_it() {
    let (rx, url) = Receiver::start(Behaviour::Hang).await;
    let dir = temp_dir();
    let mut c = config(dir.path());
    c.delivery.shutdown_grace = Duration::from_secs(1);
    let s = Server::start_with(c.clone()).await;
    let r = set_channels(
        &s,
        json!({"webhook": {"allowed_hosts": ["127.0.0.1"], "timeout_seconds": 60}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    queue_on_create(&s, "webhook", &url, None).await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Hang up"}))
        .await;
    let id = only_message(&s).await["id"].as_str().unwrap().to_string();
    eventually("the receiver to hold the attempt", 400, || async {
        (rx.count() == 1).then_some(())
    })
    .await;

    let asked = Instant::now();
    let dir_path = s.stop().await;
    let took = asked.elapsed();
    // The grace is 1 s; the bound is generous for a loaded machine and far below the
    // attempt's own 60 s timeout, which stop used to wait for.
    assert!(took < Duration::from_secs(20), "stop took {took:?}");

    // The abandoned message is re-queued at start and delivered: one extra delivery.
    *rx.behaviour.lock().unwrap() = Behaviour::FailThenAccept(0);
    c.data_dir = dir_path;
    let s = Server::start_with(c).await;
    let m = settled(&s, &id, "sent").await;
    assert_eq!(
        m["attempts"].as_array().unwrap().len(),
        1,
        "the abandoned attempt recorded nothing: {m}"
    );
    assert_eq!(rx.count(), 2);
    let ids: Vec<String> = rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["stagecraft-message-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![id.clone(), id]);
}

/// Queued webhooks `numbers` of `tenant`, the n-th due `n` ms after `at`, to `urls` in turn:
/// committed straight to the store, a backlog in the due index as big as wanted, at once.
fn backlog(
    tenant: &str,
    at: chrono::DateTime<chrono::Utc>,
    numbers: std::ops::Range<usize>,
    urls: &[String],
) -> Changeset {
    let mut cs = Changeset::new(tenant);
    for i in numbers {
        cs.messages.push(OutboxMessage {
            id: format!("msg_{tenant}_{i:06}"),
            channel: Channel::Webhook,
            to: urls[i % urls.len()].clone(),
            subject: "backlog".into(),
            body: format!("message {i}"),
            idempotency_key: None,
            record: None,
            run: format!("run_{tenant}_{i:06}"),
            status: MessageStatus::Queued,
            created_at: at + chrono::Duration::milliseconds(i as i64),
            attempts: Vec::new(),
            next_attempt_at: None,
            sent_at: None,
        });
    }
    cs
}

#[tokio::test]
async fn a_tenant_with_hanging_receivers_and_a_backlog_cannot_hold_up_another_tenant() {
    const BACKLOG: usize = 5000;
    // Tenant A (the admin key's, "default"): six receivers that never answer, each its own
    // destination, and a backlog of messages to them due before anything tenant B queues.
    let mut hanging = Vec::new();
    for _ in 0..6 {
        hanging.push(Receiver::start(Behaviour::Hang).await);
    }
    let (fast, fast_url) = Receiver::start(Behaviour::FailThenAccept(0)).await;
    let dir = temp_dir();
    let mut c = config(dir.path());
    c.delivery.shutdown_grace = Duration::from_secs(1);
    // The default slots: 16 in all, a quarter (4) per tenant, 4 per destination.
    assert_eq!(c.delivery.concurrency, 16);
    assert_eq!(c.delivery.per_tenant(), 4);
    let s = Server::start_with(c).await;
    let r = set_channels(
        &s,
        json!({"webhook": {"allowed_hosts": ["127.0.0.1"], "timeout_seconds": 60}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Tenant B: a webhook channel and a binding that queues one webhook per lead.
    let r = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let b = r.body["admin_key"].as_str().unwrap().to_string();
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/channels",
            Some(&b),
            Some(json!({"webhook": {"allowed_hosts": ["127.0.0.1"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    s.upload_guest(&b, "effector", "effector").await;
    s.bind(
        &b,
        json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "created"}], "config": {"channel": "webhook", "to": fast_url},
        "grants": {"channels": ["webhook"]}}),
    )
    .await;

    // A's backlog, ten minutes overdue.
    let urls: Vec<String> = hanging.iter().map(|(_, u)| u.clone()).collect();
    let overdue = chrono::Utc::now() - chrono::Duration::minutes(10);
    for part in (0..BACKLOG).step_by(500) {
        let cs = backlog("default", overdue, part..part + 500, &urls);
        s.state.store.commit(&cs).unwrap();
    }
    let hung = || hanging.iter().map(|(r, _)| r.count()).sum::<usize>();
    eventually("tenant A's receivers to hold attempts", 400, || async {
        (hung() >= 4).then_some(())
    })
    .await;

    // While A's attempts hang: one message of B's behind all of A's backlog in time order,
    // too old to count as lately due (only a sweep past A's entries finds it), and one new.
    let queued = Instant::now();
    let behind = overdue + chrono::Duration::minutes(5);
    let old = backlog("globex", behind, 0..1, std::slice::from_ref(&fast_url));
    s.state.store.commit(&old).unwrap();
    s.record(&b, json!({"kind": "lead", "name": "Globex lead"}))
        .await;
    eventually("tenant B's webhooks to be delivered", 400, || async {
        (fast.count() == 2).then_some(())
    })
    .await;
    let took = queued.elapsed();
    // Generous for a loaded machine; A's receivers hold their attempts for 60 s.
    assert!(took < Duration::from_secs(10), "B waited {took:?}");
    let r = s.get("/v1/messages?status=sent", &b).await;
    assert_eq!(
        r.body["messages"].as_array().unwrap().len(),
        2,
        "{:?}",
        r.body
    );

    // A holds its share of the slots and no more, all of them still hanging.
    assert_eq!(hung(), 4, "tenant A's attempts in flight");
    let r = s.get("/v1/messages?status=sending", ADMIN_KEY).await;
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 4);
    s.stop().await;
}
