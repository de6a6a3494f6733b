//! Telegram end to end: against the real `telegram-test-api` server (long polling, DMs, pairing,
//! a group mention rule), and against a small fake for what that server cannot do (429 with
//! `retry_after`, hostile updates, webhook mode with its secret).
mod common;
mod peers;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use common::*;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::{json, Value};

const BOT_TOKEN: &str = "123:ABC";

fn config(mock: &MockLlm, telegram: &str) -> String {
    format!(
        r#"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}}}}},
          channels: {{telegram: {{{telegram}}}}}
        }}"#,
        mock.openai_base_url()
    )
}

/// The simulated user's side of telegram-test-api.
struct TgUser {
    http: reqwest::Client,
    base: String,
}

impl TgUser {
    async fn say(&self, user: i64, chat: Value, text: &str) {
        let body = json!({"botToken": BOT_TOKEN, "from": {"id": user, "first_name": format!("user{user}"), "username": format!("user{user}")},
                          "chat": chat, "date": 1_700_000_000, "text": text});
        let r = self.http.post(format!("{}/sendMessage", self.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success());
    }

    /// What the bot sent to `chat`, so far.
    async fn bot_texts(&self, chat: i64) -> Vec<String> {
        let v: Value = self
            .http
            .post(format!("{}/getUpdatesHistory", self.base))
            .json(&json!({"token": BOT_TOKEN}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| {
                u["message"]["chat_id"].to_string().trim_matches('"') == chat.to_string() && u.get("updateId").is_some()
            })
            .filter(|u| u["message"]["from"].is_null())
            .filter_map(|u| u["message"]["text"].as_str().map(str::to_string))
            .collect()
    }

    /// Wait (polling the server's history) for a bot message in `chat` containing `needle`.
    async fn wait_bot(&self, chat: i64, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(t) = self.bot_texts(chat).await.into_iter().find(|t| t.contains(needle)) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no bot message with {needle:?} in chat {chat}: {:?}",
                self.bot_texts(chat).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn telegram_test_api_pairing_dm_and_group_mention() {
    let Some(dir) = peers::peers_dir() else { return };
    let server = peers::telegram(&dir);
    let base = format!("http://127.0.0.1:{}", server.port);
    let mock = MockLlm::start().await.unwrap();
    let tg = format!(
        r#"botToken: "{BOT_TOKEN}", apiRoot: "{base}", groups: {{"-1001": {{requireMention: true, allowFrom: ["*"]}}}}"#
    );
    let gw = TestGateway::start_with(Some(&config(&mock, &tg))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let st = c.until("channels.status", json!({}), |v| v["channelAccounts"]["telegram"][0]["connected"] == true).await;
    let acc = &st["channelAccounts"]["telegram"][0];
    assert_eq!((acc["bot"].as_str(), acc["mode"].as_str()), (Some("@TestNameBot"), Some("polling")));
    let user = TgUser { http: reqwest::Client::new(), base: base.clone() };

    user.say(42, json!({"id": 42, "type": "private", "first_name": "Alice"}), "hello bot").await;
    let pairing = user.wait_bot(42, "Pairing code:").await;
    let code = pairing.lines().find_map(|l| l.strip_prefix("Pairing code:")).unwrap().trim().to_string();
    let approved = c.call("channels.pairing.approve", json!({"channel": "telegram", "code": code})).await;
    assert_eq!(approved["id"], "42");

    mock.push([Reply::Text("All **fine** here, Alice.".into())]);
    user.say(42, json!({"id": 42, "type": "private", "first_name": "Alice"}), "how are you?").await;
    let reply = user.wait_bot(42, "here, Alice").await;
    assert_eq!(reply, "All <b>fine</b> here, Alice.", "Markdown went out as Telegram HTML");

    // A streamed answer: one draft message that grows, then carries the final text.
    let before = user.bot_texts(42).await.len();
    let parts = ["Streaming ", "a long answer ", "in several parts, ", "each a bit later, ", "until the end."];
    mock.push([Reply::Chunks(parts.iter().map(|p| p.to_string()).collect(), Duration::from_millis(500))]);
    user.say(42, json!({"id": 42, "type": "private", "first_name": "Alice"}), "tell me slowly").await;
    let draft = user.wait_bot(42, "Streaming a long answer").await;
    assert!(!draft.ends_with("until the end."), "a partial draft is shown while the model writes: {draft}");
    user.wait_bot(42, "until the end.").await;
    let texts = user.bot_texts(42).await;
    assert_eq!(texts.len(), before + 1, "the draft was edited into the final answer, not sent twice: {texts:?}");
    assert_eq!(texts.last().unwrap(), &parts.concat());

    let group = json!({"id": -1001, "type": "supergroup", "title": "Crew"});
    user.say(7, group.clone(), "random chatter without a name").await;
    mock.push_matching("ping", Reply::Text("pong".into()));
    user.say(7, group, "@TestNameBot ping").await;
    user.wait_bot(-1001, "pong").await;
    let asked: Vec<String> = mock.requests().iter().map(|r| r["messages"].to_string()).collect();
    assert_eq!(asked.len(), 3, "the two DMs and the mention only");
    assert!(asked.iter().all(|r| !r.contains("random chatter")));
    let sessions = c.call("sessions.list", json!({})).await;
    assert!(sessions["sessions"].as_array().unwrap().iter().any(|s| s["key"] == "agent:main:telegram:group:-1001"));
}

/// What the fake Bot API saw and will answer.
#[derive(Default)]
struct Fake {
    calls: Vec<(String, Value, Instant)>,
    updates_served: bool,
    send_429_left: u32,
}

async fn fake_bot_api(state: Arc<Mutex<Fake>>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/{token}/{method}",
            post(|axum::extract::Path((_t, method)): axum::extract::Path<(String, String)>,
                  axum::extract::State(st): axum::extract::State<Arc<Mutex<Fake>>>,
                  body: axum::body::Bytes| async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut f = st.lock().unwrap();
                f.calls.push((method.clone(), body, Instant::now()));
                let ok = |v: Value| (axum::http::StatusCode::OK, json!({"ok": true, "result": v}).to_string().into_bytes());
                match method.as_str() {
                    "getMe" => ok(json!({"id": 900, "is_bot": true, "username": "fakebot"})),
                    "getUpdates" if !f.updates_served => {
                        f.updates_served = true;
                        // Hostile batch: no sender, unknown fields and huge text, invalid UTF-8, then a good one.
                        let huge = "A".repeat(200_000);
                        let mut raw = format!(
                            r#"{{"ok":true,"result":[
                              {{"update_id":10,"message":{{"message_id":1,"chat":{{"id":5,"type":"private"}},"text":"no sender"}}}},
                              {{"update_id":11,"message":{{"message_id":2,"chat":{{"id":5,"type":"private"}},"from":{{"id":5}},"text":"{huge}","brand_new_field":{{"x":[1,2]}}}}}},
                              {{"update_id":12,"message":{{"message_id":3,"chat":{{"id":5,"type":"private"}},"from":{{"id":5}},"text":"bad "#
                        )
                        .into_bytes();
                        raw.extend_from_slice(&[0xff, 0xfe]);
                        raw.extend_from_slice(
                            br#" bytes"}},{"update_id":13,"message":{"message_id":4,"chat":{"id":5,"type":"private"},"from":{"id":5},"text":"real question"}}]}"#,
                        );
                        (axum::http::StatusCode::OK, raw)
                    }
                    "getUpdates" => ok(json!([])),
                    "sendMessage" if f.send_429_left > 0 => {
                        f.send_429_left -= 1;
                        let body = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                                          "parameters": {"retry_after": 1}});
                        (axum::http::StatusCode::TOO_MANY_REQUESTS, body.to_string().into_bytes())
                    }
                    "sendMessage" => ok(json!({"message_id": 77, "chat": {"id": 5, "type": "private"}, "date": 1})),
                    _ => ok(json!(true)),
                }
            }),
        )
        .with_state(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn hostile_updates_are_skipped_and_429_retry_after_is_honoured() {
    let fake = Arc::new(Mutex::new(Fake { send_429_left: 1, ..Default::default() }));
    let (base, _server) = fake_bot_api(fake.clone()).await;
    let mock = MockLlm::start().await.unwrap();
    mock.push_matching("real question", Reply::Text("real answer".into()));
    mock.push_matching("AAAA", Reply::Text("that was long".into()));
    mock.push_matching("bytes", Reply::Text("odd bytes".into()));
    let tg = format!(r#"botToken: "{BOT_TOKEN}", apiRoot: "{base}", dmPolicy: "allowlist", allowFrom: [5]"#);
    let gw = TestGateway::start_with(Some(&config(&mock, &tg))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let sends = loop {
        let sends: Vec<(Value, Instant)> = fake
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(m, ..)| m == "sendMessage")
            .map(|(_, b, t)| (b.clone(), *t))
            .collect();
        if sends.iter().any(|(b, _)| b["text"] == "real answer") && sends.len() == 4 {
            break sends;
        }
        assert!(Instant::now() < deadline, "not every reply was sent: {sends:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The first send got 429 with retry_after 1: the same message went again a second later.
    assert_eq!(sends[0].0, sends[1].0, "{sends:?}");
    assert!(sends[1].1 - sends[0].1 >= Duration::from_millis(950), "waited retry_after before resending");
    let real = sends.iter().find(|(b, _)| b["text"] == "real answer").unwrap();
    assert_eq!((real.0["chat_id"].as_i64(), real.0["reply_to_message_id"].as_i64()), (Some(5), Some(4)));
    // The huge and the invalid-UTF-8 updates reached the agent cut and repaired; the sender-less one never did.
    let asked: Vec<String> = mock.requests().iter().map(|r| r["messages"].to_string()).collect();
    assert!(!asked.iter().any(|r| r.contains("no sender")));
    let huge = asked.iter().find(|r| r.contains("AAAA")).expect("the long message was handled");
    assert!(huge.len() < 100_000, "inbound text is capped");
    assert!(asked.iter().any(|r| r.contains("bad \u{fffd}\u{fffd} bytes")), "{asked:?}");
    let st = c.call("channels.status", json!({})).await;
    assert_eq!(st["channelAccounts"]["telegram"][0]["running"], true, "still running after hostile input");
}

#[tokio::test]
async fn webhook_mode_registers_and_checks_the_secret() {
    let fake = Arc::new(Mutex::new(Fake { updates_served: true, ..Default::default() }));
    let (base, _server) = fake_bot_api(fake.clone()).await;
    let mock = MockLlm::start().await.unwrap();
    mock.push([Reply::Text("hook reply".into())]);
    let port = peers::free_port();
    let tg = format!(
        r#"botToken: "{BOT_TOKEN}", apiRoot: "{base}", dmPolicy: "open", allowFrom: ["*"],
           webhookUrl: "https://example.invalid/tg", webhookSecret: "s3cret-value", webhookPort: {port}, webhookPath: "/tg""#
    );
    let gw = TestGateway::start_with(Some(&config(&mock, &tg))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let st = c.until("channels.status", json!({}), |v| v["channelAccounts"]["telegram"][0]["connected"] == true).await;
    assert_eq!(st["channelAccounts"]["telegram"][0]["mode"], "webhook");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/tg");
    // The listener comes up right after setWebhook; wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let update = json!({"update_id": 1, "message": {"message_id": 9, "chat": {"id": 5, "type": "private"}, "from": {"id": 5}, "text": "via hook"}});
    let wrong = loop {
        match http.post(&url).header("x-telegram-bot-api-secret-token", "nope").json(&update).send().await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("webhook listener: {e}"),
        }
    };
    assert_eq!(wrong.status(), 401);
    let ok =
        http.post(&url).header("x-telegram-bot-api-secret-token", "s3cret-value").json(&update).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = fake.lock().unwrap().calls.clone();
        if calls.iter().any(|(m, b, _)| m == "sendMessage" && b["text"] == "hook reply") {
            let set = calls.iter().find(|(m, ..)| m == "setWebhook").expect("setWebhook called");
            assert_eq!(set.1["url"], "https://example.invalid/tg");
            assert_eq!(set.1["secret_token"], "s3cret-value");
            assert!(!calls.iter().any(|(m, ..)| m == "getUpdates"), "no polling in webhook mode");
            break;
        }
        assert!(Instant::now() < deadline, "no reply through the webhook");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
