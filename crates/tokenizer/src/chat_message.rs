//! [`ChatMessage`]: one turn of a conversation, as chat templates expect it.

use serde::{Deserialize, Serialize};

/// One message. Fields follow the `transformers` chat format (which is OpenAI's, except that a
/// tool call's `arguments` is a JSON object, not a string holding JSON). Absent optional fields
/// are absent for the template too (`message.tool_calls is defined` is false).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text. Usually a string; some templates also accept a list of `{"type": "text", ...}`
    /// parts. `None` for an assistant message that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a `tool` message: the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An assistant message's reasoning, given back by the client, for the templates that show
    /// it again (gpt-oss before the tool calls it led to; Qwen3 in the turns after the last user
    /// message, when the message has content, even empty).
    /// Templates read it as `reasoning_content` (Qwen3, DeepSeek) or `thinking` (gpt-oss): the
    /// template sees both.
    #[serde(
        default,
        rename = "reasoning_content",
        alias = "thinking",
        skip_serializing_if = "Option::is_none"
    )]
    pub reasoning: Option<String>,
}

/// A function call requested by the assistant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `"function"` today.
    #[serde(rename = "type", default = "function_type")]
    pub call_type: String,
    pub function: ToolCallFunction,
}

/// The function and arguments of a [`ToolCall`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    pub name: String,
    /// The arguments as a JSON object (templates serialize it with `tojson`).
    pub arguments: serde_json::Value,
}

fn function_type() -> String {
    "function".to_owned()
}

impl ChatMessage {
    /// A message with `role` and text `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: Some(serde_json::Value::String(content.into())),
            ..ChatMessage::default()
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("system", content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("assistant", content)
    }

    /// An assistant message that calls tools (and says nothing else).
    pub fn assistant_tool_calls(tool_calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage {
            role: "assistant".to_owned(),
            tool_calls: Some(tool_calls),
            ..ChatMessage::default()
        }
    }

    /// A tool's result.
    pub fn tool(
        content: impl Into<String>,
        tool_call_id: Option<String>,
        name: Option<String>,
    ) -> ChatMessage {
        ChatMessage { tool_call_id, name, ..ChatMessage::new("tool", content) }
    }

    /// The texts the template writes out: the content when a string, or the `text` of each
    /// part of a content list, and the reasoning.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = match &self.content {
            Some(serde_json::Value::String(text)) => vec![text.as_str()],
            Some(serde_json::Value::Array(parts)) => {
                parts.iter().filter_map(|part| part.get("text")?.as_str()).collect()
            }
            _ => Vec::new(),
        };
        texts.extend(self.reasoning.as_deref());
        texts
    }

    /// The message with each of its [`texts`](Self::texts) for which `replace` returns a
    /// replacement replaced by it.
    pub fn map_texts(&self, mut replace: impl FnMut(&str) -> Option<String>) -> ChatMessage {
        let mut message = self.clone();
        match &mut message.content {
            Some(serde_json::Value::String(text)) => {
                if let Some(new) = replace(text) {
                    *text = new;
                }
            }
            Some(serde_json::Value::Array(parts)) => {
                for part in parts {
                    if let Some(serde_json::Value::String(text)) = part.get_mut("text") {
                        if let Some(new) = replace(text) {
                            *text = new;
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(reasoning) = &mut message.reasoning {
            if let Some(new) = replace(reasoning) {
                *reasoning = new;
            }
        }
        message
    }

    /// The content when it is a plain string.
    pub fn text(&self) -> Option<&str> {
        self.content.as_ref().and_then(serde_json::Value::as_str)
    }
}

impl ToolCall {
    /// A call of function `name` with JSON `arguments`.
    pub fn function(name: impl Into<String>, arguments: serde_json::Value) -> ToolCall {
        ToolCall {
            id: None,
            call_type: function_type(),
            function: ToolCallFunction { name: name.into(), arguments },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_not_serialized() {
        let json = serde_json::to_value(ChatMessage::user("hi")).expect("serializable");
        assert_eq!(json, serde_json::json!({"role": "user", "content": "hi"}));
    }

    #[test]
    fn tool_call_type_defaults_to_function() {
        let call: ToolCall =
            serde_json::from_value(serde_json::json!({"function": {"name": "f", "arguments": {}}}))
                .expect("valid tool call");
        assert_eq!(call.call_type, "function");
    }
}
