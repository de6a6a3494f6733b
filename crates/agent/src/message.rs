//! Conversation messages as the transcript stores them (OpenClaw's pi-agent shape): `user`,
//! `assistant` (text, thinking and tool-call blocks, usage, stop reason) and `toolResult`.
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Block {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// Model reasoning (kept in the transcript, not shown as the answer).
    Thinking {
        /// The reasoning text.
        thinking: String,
    },
    /// A tool call made by the assistant.
    #[serde(rename_all = "camelCase")]
    ToolCall {
        /// Provider-assigned call id; the matching `toolResult` carries it.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments (a JSON object).
        arguments: Value,
    },
    /// An image (base64).
    #[serde(rename_all = "camelCase")]
    Image {
        /// Base64 data.
        data: String,
        /// MIME type.
        mime_type: String,
    },
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    /// Finished its answer.
    #[default]
    Stop,
    /// Hit the output token limit.
    Length,
    /// Wants tool results.
    ToolUse,
    /// Failed.
    Error,
    /// Aborted by the user.
    Aborted,
}

impl StopReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Stop => "stop",
            StopReason::Length => "length",
            StopReason::ToolUse => "toolUse",
            StopReason::Error => "error",
            StopReason::Aborted => "aborted",
        }
    }
}

/// Token usage of one model call (or a sum of calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub input: u64,
    /// Completion tokens.
    #[serde(default)]
    pub output: u64,
    /// Prompt tokens served from cache.
    #[serde(default)]
    pub cache_read: u64,
    /// Prompt tokens written to cache.
    #[serde(default)]
    pub cache_write: u64,
    /// All of the above.
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    /// Add another call's usage.
    pub fn add(&mut self, o: &Usage) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.total_tokens += o.total_tokens;
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum Message {
    /// From the user (or the gateway speaking for them).
    User {
        /// Content; a plain string in the transcript is read as one text block.
        #[serde(deserialize_with = "string_or_blocks")]
        content: Vec<Block>,
        /// ms since the epoch.
        #[serde(default)]
        timestamp: i64,
    },
    /// From the model.
    #[serde(rename_all = "camelCase")]
    Assistant {
        /// Text, thinking and tool calls, in order.
        content: Vec<Block>,
        /// Provider id.
        #[serde(default)]
        provider: String,
        /// Model id.
        #[serde(default)]
        model: String,
        /// Usage of the call that produced it.
        #[serde(default)]
        usage: Usage,
        /// Why it stopped.
        #[serde(default)]
        stop_reason: StopReason,
        /// Error text when `stopReason` is `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_message: Option<String>,
        /// ms since the epoch.
        #[serde(default)]
        timestamp: i64,
    },
    /// The result of one tool call.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        /// The call it answers.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// Output.
        #[serde(deserialize_with = "string_or_blocks")]
        content: Vec<Block>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
        /// ms since the epoch.
        #[serde(default)]
        timestamp: i64,
    },
}

fn string_or_blocks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Block>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Blocks(Vec<Block>),
    }
    Ok(match Either::deserialize(d)? {
        Either::Text(text) => vec![Block::Text { text }],
        Either::Blocks(b) => b,
    })
}

impl Message {
    /// A user message with one text block.
    pub fn user(text: impl Into<String>, timestamp: i64) -> Self {
        Message::User { content: vec![Block::Text { text: text.into() }], timestamp }
    }

    /// The text blocks joined.
    pub fn text(&self) -> String {
        let blocks = match self {
            Message::User { content, .. }
            | Message::Assistant { content, .. }
            | Message::ToolResult { content, .. } => content,
        };
        let mut out = String::new();
        for b in blocks {
            if let Block::Text { text } = b {
                out.push_str(text);
            }
        }
        out
    }

    /// The tool calls of an assistant message.
    pub fn tool_calls(&self) -> Vec<(&str, &str, &Value)> {
        match self {
            Message::Assistant { content, .. } => content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolCall { id, name, arguments } => Some((id.as_str(), name.as_str(), arguments)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A rough token count (4 characters per token), for compaction thresholds when the provider
    /// reported no usage.
    pub fn estimate_tokens(&self) -> u64 {
        let chars = match serde_json::to_string(self) {
            Ok(s) => s.len() as u64,
            Err(_) => 0,
        };
        chars.div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_transcript_shapes() {
        let u: Message = serde_json::from_value(json!({"role":"user","content":"hi","timestamp":1})).unwrap();
        assert_eq!(u.text(), "hi");
        let a: Message = serde_json::from_value(json!({"role":"assistant","content":[
            {"type":"text","text":"let me look"},
            {"type":"toolCall","id":"c1","name":"read","arguments":{"path":"a.txt"}}],
            "provider":"local","model":"m","usage":{"input":3,"output":2,"totalTokens":5},"stopReason":"toolUse","timestamp":2}))
        .unwrap();
        assert_eq!(a.tool_calls(), vec![("c1", "read", &json!({"path":"a.txt"}))]);
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["stopReason"], "toolUse");
        assert_eq!(back["content"][1]["type"], "toolCall");
        let r: Message = serde_json::from_value(json!({"role":"toolResult","toolCallId":"c1","toolName":"read",
            "content":[{"type":"text","text":"data"}],"isError":false,"timestamp":3}))
        .unwrap();
        assert_eq!(r.text(), "data");
    }
}
