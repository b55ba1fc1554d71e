//! A streamed Messages answer as Anthropic's typed events: `message_start`, `ping`, then per
//! content block `content_block_start` → `content_block_delta`… → `content_block_stop`, then
//! `message_delta` (stop reason, usage) and `message_stop`. Every event carries its name both
//! as `event:` and as the payload's `type`; a failure after the start is `event: error`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::messages::usage_json;
use crate::api::streaming::Framing;
use crate::error::{ApiError, Dialect};
use crate::http::{response, sse};
use crate::llm::coordinator::Turn;
use crate::llm::types::{FinishReason, Usage};

/// Anthropic's `stop_reason` and `stop_sequence`. A stop sequence is known only when the
/// provider names it (Anthropic upstreams do); others report it as a plain stop, `end_turn`.
pub fn stop_fields(turn: &Turn) -> Value {
    let reason = match (&turn.stop_sequence, turn.finish_reason) {
        (Some(_), FinishReason::Stop) => "stop_sequence",
        (_, reason) => stop_reason(reason),
    };
    json!({ "stop_reason": reason, "stop_sequence": turn.stop_sequence })
}

fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
    }
}

/// One event: the payload gets `type` = the event's name.
fn event(name: &str, mut payload: Value) -> Bytes {
    payload["type"] = Value::from(name);
    sse::named(name, &payload.to_string())
}

/// The Messages stream of one answer.
pub struct MessageEvents {
    id: String,
    model: String,
    /// The prompt's estimate, announced in `message_start` before the provider reports usage.
    input_tokens: u64,
    /// The content block being written, if any.
    open: Option<usize>,
    /// Blocks started so far (the next block's index).
    blocks: usize,
    /// The content block of each client tool call, by the call's index.
    tool_blocks: Vec<(usize, usize)>,
}

impl MessageEvents {
    pub fn new(id: String, model: String, input_tokens: u64) -> MessageEvents {
        MessageEvents { id, model, input_tokens, open: None, blocks: 0, tool_blocks: Vec::new() }
    }

    /// Close the open block and start `block` as the next one.
    fn start_block(&mut self, block: Value) -> (usize, Vec<Bytes>) {
        let mut frames = self.close_block();
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some(index);
        frames.push(event("content_block_start", json!({ "index": index, "content_block": block })));
        (index, frames)
    }

    fn close_block(&mut self) -> Vec<Bytes> {
        match self.open.take() {
            Some(index) => vec![event("content_block_stop", json!({ "index": index }))],
            None => Vec::new(),
        }
    }

    fn is_text_open(&self) -> bool {
        self.open.is_some_and(|open| self.tool_blocks.iter().all(|(_, block)| *block != open))
    }
}

impl Framing for MessageEvents {
    fn open(&mut self) -> Vec<Bytes> {
        let message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage_json(Usage { input_tokens: self.input_tokens, output_tokens: 1, cached_input_tokens: 0 }),
        });
        vec![event("message_start", json!({ "message": message })), event("ping", json!({}))]
    }

    fn text(&mut self, delta: &str) -> Vec<Bytes> {
        if delta.is_empty() {
            return Vec::new();
        }
        let (index, mut frames) = if self.is_text_open() {
            (self.open.unwrap_or_default(), Vec::new())
        } else {
            self.start_block(json!({ "type": "text", "text": "" }))
        };
        frames.push(event(
            "content_block_delta",
            json!({ "index": index, "delta": { "type": "text_delta", "text": delta } }),
        ));
        frames
    }

    fn tool_call_start(&mut self, index: usize, id: &str, name: &str) -> Vec<Bytes> {
        let (block, frames) = self.start_block(json!({ "type": "tool_use", "id": id, "name": name, "input": {} }));
        self.tool_blocks.push((index, block));
        frames
    }

    fn tool_call_arguments(&mut self, index: usize, fragment: &str) -> Vec<Bytes> {
        let Some(&(_, block)) = self.tool_blocks.iter().find(|(call, _)| *call == index) else { return Vec::new() };
        if fragment.is_empty() {
            return Vec::new();
        }
        let delta = json!({ "type": "input_json_delta", "partial_json": fragment });
        vec![event("content_block_delta", json!({ "index": block, "delta": delta }))]
    }

    fn done(&mut self, turn: &Turn, tokens: Usage) -> Vec<Bytes> {
        let mut frames = self.close_block();
        let delta = stop_fields(turn);
        let usage = json!({ "input_tokens": tokens.input_tokens, "output_tokens": tokens.output_tokens });
        frames.push(event("message_delta", json!({ "delta": delta, "usage": usage })));
        frames.push(event("message_stop", json!({})));
        frames
    }

    fn failed(&mut self, error: &ApiError) -> Vec<Bytes> {
        vec![sse::named("error", &response::error_body(error, Dialect::Anthropic).to_string())]
    }

    fn keep_alive(&mut self) -> Bytes {
        event("ping", json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(frames: &[Bytes]) -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(f).unwrap_or_default();
                let name = text.lines().next().and_then(|l| l.strip_prefix("event: ")).unwrap_or_default();
                let data = text.lines().nth(1).and_then(|l| l.strip_prefix("data: ")).unwrap_or_default();
                let payload: Value = serde_json::from_str(data).unwrap_or_default();
                assert_eq!(payload["type"], name, "{text}");
                format!("{name}:{}", payload["index"])
            })
            .collect()
    }

    #[test]
    fn text_then_tool_calls_are_consecutive_blocks() {
        let mut events = MessageEvents::new("msg_1".into(), "m".into(), 3);
        let mut frames = events.open();
        frames.extend(events.text("Let me "));
        frames.extend(events.text("check."));
        frames.extend(events.tool_call_start(0, "call_a", "lookup"));
        frames.extend(events.tool_call_arguments(0, "{\"q\":"));
        frames.extend(events.tool_call_start(1, "call_b", "lookup"));
        frames.extend(events.tool_call_arguments(1, "{}"));
        frames.extend(events.tool_call_arguments(0, "1}"));
        let turn = Turn {
            content: String::new(),
            usage: Usage::default(),
            finish_reason: FinishReason::ToolCalls,
            tool_calls: 0,
            client_calls: Vec::new(),
            stop_sequence: None,
            model_calls: 1,
            served: None,
        };
        frames.extend(events.done(&turn, Usage { input_tokens: 5, output_tokens: 2, cached_input_tokens: 0 }));
        assert_eq!(
            names(&frames),
            [
                "message_start:null",
                "ping:null",
                "content_block_start:0",
                "content_block_delta:0",
                "content_block_delta:0",
                "content_block_stop:0",
                "content_block_start:1",
                "content_block_delta:1",
                "content_block_stop:1",
                "content_block_start:2",
                "content_block_delta:2",
                "content_block_delta:1",
                "content_block_stop:2",
                "message_delta:null",
                "message_stop:null",
            ]
        );
    }

    #[test]
    fn a_named_stop_sequence_is_reported_as_such() {
        let mut turn = Turn {
            content: "done".into(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            tool_calls: 0,
            client_calls: Vec::new(),
            stop_sequence: None,
            model_calls: 1,
            served: None,
        };
        assert_eq!(stop_fields(&turn), json!({ "stop_reason": "end_turn", "stop_sequence": null }));
        turn.stop_sequence = Some("END".into());
        assert_eq!(stop_fields(&turn), json!({ "stop_reason": "stop_sequence", "stop_sequence": "END" }));
        turn.finish_reason = FinishReason::Length;
        assert_eq!(stop_fields(&turn)["stop_reason"], "max_tokens");
    }
}
