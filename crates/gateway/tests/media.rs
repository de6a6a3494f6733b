//! Media generation as background tasks against the real HTTP shapes of OpenAI Images, OpenAI Videos
//! and MiniMax music (a scripted server on loopback), with every completion delivered by the policy.
mod common;

use common::*;
use homarus_mockllm::{MockLlm, Reply, MOCK_IMAGE, MOCK_MUSIC, MOCK_VIDEO};
use serde_json::{json, Value};

fn config(mock: &MockLlm, direct_send: bool) -> String {
    format!(
        r#"{{models: {{providers: {{
              local: {{baseUrl: "{v1}", api: "openai-completions", models: [{{id: "m"}}]}},
              openai: {{baseUrl: "{v1}", apiKey: "sk-media"}},
              minimax: {{baseUrl: "{root}", apiKey: "mm-key"}}}}}},
            agents: {{defaults: {{model: "local/m"}}}},
            tools: {{media: {{asyncCompletion: {{directSend: {direct_send}}}}}}}}}"#,
        v1 = mock.openai_base_url(),
        root = mock.anthropic_base_url()
    )
}

/// Ask the agent (via the scripted model) to call `tool` with `args`, and return the task once its
/// delivery is recorded.
async fn run_tool(c: &mut Client, mock: &MockLlm, tool: &str, args: Value) -> Value {
    mock.push([Reply::ToolCall { name: tool.into(), args }, Reply::Text("on it".into())]);
    c.call(
        "chat.send",
        json!({"sessionKey": "agent:main:main", "message": "make it", "idempotencyKey": format!("ask-{tool}")}),
    )
    .await;
    let tasks = c
        .until("tasks.list", json!({}), |v| {
            v["tasks"].as_array().unwrap().iter().any(|t| t["kind"] == tool && t["deliveryStatus"] != "not_applicable")
        })
        .await;
    tasks["tasks"].as_array().unwrap().iter().find(|t| t["kind"] == tool).unwrap().clone()
}

fn media_file(t: &Value) -> Vec<u8> {
    let path = t["result"].as_str().unwrap().strip_prefix("MEDIA:").unwrap().to_string();
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn an_image_is_generated_in_the_background_and_the_requester_session_is_woken() {
    let mock = MockLlm::start().await.unwrap();
    mock.push_matching("image_generate finished", Reply::Text("Here is your lobster.".into()));
    let gw = TestGateway::start_with(Some(&config(&mock, true))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let t = run_tool(&mut c, &mock, "image_generate", json!({"prompt": "a red lobster"})).await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["deliveryStatus"], "session_queued", "images always wake the session");
    assert_eq!(media_file(&t), MOCK_IMAGE);
    let req = &mock.media_requests()[0];
    assert_eq!(req["path"], "/v1/images/generations");
    assert_eq!(req["body"]["prompt"], "a red lobster");
    let history = c
        .until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
            v["messages"].as_array().unwrap().iter().any(|m| m["content"][0]["text"] == "Here is your lobster.")
        })
        .await;
    let wake = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["content"][0]["text"].as_str().unwrap_or("").contains("[System events"))
        .cloned()
        .unwrap();
    assert!(wake["content"][0]["text"].as_str().unwrap().contains("MEDIA:"), "{wake}");
}

#[tokio::test]
async fn music_always_wakes_the_session_even_with_direct_send_on() {
    let mock = MockLlm::start().await.unwrap();
    mock.push_matching("music_generate finished", Reply::Text("Your song is ready.".into()));
    let gw = TestGateway::start_with(Some(&config(&mock, true))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let t = run_tool(&mut c, &mock, "music_generate", json!({"prompt": "sea shanty", "lyrics": "yo ho"})).await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["deliveryStatus"], "session_queued");
    assert_eq!(media_file(&t), MOCK_MUSIC);
    assert_eq!(mock.media_requests()[0]["body"]["lyrics"], "yo ho");
    c.until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
        v["messages"].as_array().unwrap().iter().any(|m| m["content"][0]["text"] == "Your song is ready.")
    })
    .await;
}

#[tokio::test]
async fn a_video_with_direct_send_goes_straight_to_the_chat_and_a_failed_send_falls_back() {
    std::env::set_var("HOMARUS_VIDEO_POLL_MS", "50");
    let mock = MockLlm::start().await.unwrap();
    let gw = TestGateway::start_with(Some(&config(&mock, true))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    let t = run_tool(&mut c, &mock, "video_generate", json!({"prompt": "lobster dance", "seconds": 4})).await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["deliveryStatus"], "delivered");
    assert_eq!(media_file(&t), MOCK_VIDEO);
    let paths: Vec<String> = mock.media_requests().iter().map(|r| r["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths, ["/v1/videos"]);
    let history = c.call("chat.history", json!({"sessionKey": "agent:main:main"})).await;
    let last = history["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(last["content"][0]["text"].as_str().unwrap().starts_with("video_generate finished"), "{last}");
    assert_eq!(mock.requests().len(), 2, "no agent turn for a direct send");

    // The direct send fails (the chat's transcript cannot be written): the session wake takes over.
    mock.hold_videos(true);
    let mock2 = &mock;
    mock2.push([
        Reply::ToolCall { name: "video_generate".into(), args: json!({"prompt": "second dance"}) },
        Reply::Text("again".into()),
    ]);
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "another", "idempotencyKey": "v2"})).await;
    c.until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
        v["messages"].as_array().unwrap().last().unwrap()["content"][0]["text"] == "again"
    })
    .await;
    let file = c.call("sessions.describe", json!({"key": "agent:main:main"})).await["session"]["sessionFile"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::rename(&file, format!("{file}.moved")).unwrap();
    std::fs::create_dir(&file).unwrap();
    mock.hold_videos(false);
    let tasks = c
        .until("tasks.list", json!({}), |v| {
            v["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["title"] == "second dance" && t["deliveryStatus"] == "session_queued")
        })
        .await;
    assert!(tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["title"] == "second dance" && t["status"] == "completed"));
}

#[tokio::test]
async fn a_repeated_request_reports_the_running_task_and_failures_are_reported() {
    std::env::set_var("HOMARUS_VIDEO_POLL_MS", "50");
    let mock = MockLlm::start().await.unwrap();
    mock.hold_videos(true);
    let gw = TestGateway::start_with(Some(&config(&mock, false))).await;
    let (mut c, _) = connect_cli(&gw.url()).await;
    mock.push([
        Reply::ToolCall { name: "video_generate".into(), args: json!({"prompt": "slow video"}) },
        Reply::ToolCall { name: "video_generate".into(), args: json!({"prompt": "slow video"}) },
        Reply::Text("waiting".into()),
    ]);
    c.call("chat.send", json!({"sessionKey": "agent:main:main", "message": "twice", "idempotencyKey": "t"})).await;
    let history = c
        .until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
            v["messages"].as_array().unwrap().last().unwrap()["content"][0]["text"] == "waiting"
        })
        .await;
    let results = tool_results(&history);
    assert!(results[0].starts_with("Started video_generate"), "{results:?}");
    assert!(results[1].starts_with("video_generate is already working on this"), "{results:?}");
    assert_eq!(mock.media_requests().len(), 1, "one provider job");
    mock.hold_videos(false);

    // A refused prompt ends the task as failed and the requester hears why.
    mock.push_matching("image_generate failed", Reply::Text("The image was refused.".into()));
    let t = run_tool(&mut c, &mock, "image_generate", json!({"prompt": "FAIL please"})).await;
    assert_eq!(t["status"], "failed");
    assert!(t["error"].as_str().unwrap().contains("rejected by the safety system"), "{t}");
    c.until("chat.history", json!({"sessionKey": "agent:main:main"}), |v| {
        v["messages"].as_array().unwrap().iter().any(|m| m["content"][0]["text"] == "The image was refused.")
    })
    .await;
}
