//! Matrix end to end against a real Synapse homeserver: the bot logs in with a password, joins
//! invited rooms, pairs a DM sender, answers with an HTML `formatted_body`, and answers a mention in
//! a room thread inside that thread.
mod common;
mod peers;

use std::time::{Duration, Instant};

use common::*;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::{json, Value};

struct MatrixUser {
    http: reqwest::Client,
    base: String,
    token: String,
    txn: u32,
}

fn enc(s: &str) -> String {
    s.replace('!', "%21").replace(':', "%3A").replace('$', "%24").replace('@', "%40")
}

impl MatrixUser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rb = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn send(&mut self, room: &str, content: Value) -> String {
        self.txn += 1;
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/t{}", enc(room), self.txn);
        self.call(reqwest::Method::PUT, &path, Some(content)).await["event_id"].as_str().unwrap().to_string()
    }

    /// Wait for a message from `sender` in `room` matching `pred` (reads the room's recent events).
    async fn wait_message(&self, room: &str, sender: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(room));
            let v = self.call(reqwest::Method::GET, &path, None).await;
            if let Some(e) = v["chunk"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["type"] == "m.room.message" && e["sender"] == sender && pred(&e["content"]))
            {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "no matching message from {sender} in {room}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_joined(&self, room: &str, user: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room));
            let v = self.call(reqwest::Method::GET, &path, None).await;
            if v["joined"].get(user).is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "{user} never joined {room}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn synapse_pairing_dm_formatted_reply_and_thread() {
    let Some(dir) = peers::peers_dir() else { return };
    let server = peers::synapse(&dir);
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::new();
    peers::matrix_register(&http, &base, "bot", "bot-password-1").await;
    let alice_token = peers::matrix_register(&http, &base, "alice", "alice-password-1").await;
    let carol_token = peers::matrix_register(&http, &base, "carol", "carol-password-1").await;
    let mut alice = MatrixUser { http: http.clone(), base: base.clone(), token: alice_token, txn: 0 };
    let carol = MatrixUser { http: http.clone(), base: base.clone(), token: carol_token, txn: 0 };

    let mock = MockLlm::start().await.unwrap();
    let config = format!(
        r#"{{
          models: {{providers: {{local: {{baseUrl: "{}", apiKey: "sk-test", api: "openai-completions",
                     models: [{{id: "mock-model", contextWindow: 120000, maxTokens: 1024}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "local/mock-model"}}}}}},
          channels: {{matrix: {{homeserver: "{base}", userId: "@bot:localhost", password: "bot-password-1",
                               autoJoin: "always", groups: {{"*": {{requireMention: true, allowFrom: ["*"]}}}}}}}}
        }}"#,
        mock.openai_base_url()
    );
    let gw = TestGateway::start_with(Some(&config)).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let st = c.until("channels.status", json!({}), |v| v["channelAccounts"]["matrix"][0]["connected"] == true).await;
    assert_eq!(st["channelAccounts"]["matrix"][0]["bot"], "@bot:localhost");

    // A DM: alice invites the bot, which joins on its own.
    let dm = alice
        .call(
            reqwest::Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(json!({"invite": ["@bot:localhost"], "is_direct": true, "preset": "trusted_private_chat"})),
        )
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    alice.wait_joined(&dm, "@bot:localhost").await;
    alice.send(&dm, json!({"msgtype": "m.text", "body": "hello bot"})).await;
    let pairing = alice
        .wait_message(&dm, "@bot:localhost", |c| c["body"].as_str().is_some_and(|b| b.contains("Pairing code:")))
        .await;
    let body = pairing["content"]["body"].as_str().unwrap();
    let code = body.lines().find_map(|l| l.strip_prefix("Pairing code:")).unwrap().trim().to_string();
    let ok = c.call("channels.pairing.approve", json!({"channel": "matrix", "code": code})).await;
    assert_eq!(ok["id"], "@alice:localhost");

    mock.push([Reply::Text("Hi **Alice**, here is `code`.".into())]);
    alice.send(&dm, json!({"msgtype": "m.text", "body": "how are you?"})).await;
    let reply = alice.wait_message(&dm, "@bot:localhost", |c| c["body"] == "Hi Alice, here is code.").await;
    assert_eq!(reply["content"]["format"], "org.matrix.custom.html");
    assert_eq!(reply["content"]["formatted_body"], "Hi <b>Alice</b>, here is <code>code</code>.");

    // A room with three members: a thread root without a mention gets nothing; a mention inside the
    // thread is answered inside it.
    let room = alice
        .call(
            reqwest::Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(json!({"invite": ["@bot:localhost", "@carol:localhost"], "preset": "private_chat", "name": "Crew"})),
        )
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_string();
    carol.call(reqwest::Method::POST, &format!("/_matrix/client/v3/rooms/{}/join", enc(&room)), Some(json!({}))).await;
    alice.wait_joined(&room, "@bot:localhost").await;
    let root = alice.send(&room, json!({"msgtype": "m.text", "body": "planning the trip"})).await;
    mock.push_matching("weather", Reply::Text("Sunny all week.".into()));
    alice
        .send(
            &room,
            json!({"msgtype": "m.text", "body": "bot: what will the weather be?",
                            "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                                             "m.in_reply_to": {"event_id": root}}}),
        )
        .await;
    let answer = alice.wait_message(&room, "@bot:localhost", |c| c["body"] == "Sunny all week.").await;
    assert_eq!(answer["content"]["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(answer["content"]["m.relates_to"]["event_id"], root.as_str());
    let asked: Vec<String> = mock.requests().iter().map(|r| r["messages"].to_string()).collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(!asked.iter().any(|r| r.contains("planning the trip\"")), "the unmentioned root never reached the model");
}
