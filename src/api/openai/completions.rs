//! `POST /v1/completions`: OpenAI's legacy text completion over the chat service, for the editors
//! that still use it (fill-in-the-middle with `suffix`). The prompt becomes one user message to
//! the model (or to `agent:<name>`); `n` must be 1 and there are no logprobs. Streams are
//! `text_completion` chunks ending in `data: [DONE]`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::chat::{common_sampling, invalid, model_error, opt_u32, persona_for, required, stateless};
use crate::api::Context;
use crate::api::chat::payer;
use crate::api::streaming::{self, Framing};
use crate::chat::{self, ChatInput, Persona};
use crate::error::{ApiError, Dialect};
use crate::http::{Request, Response, response, sse};
use crate::llm::coordinator::Turn;
use crate::llm::types::{FinishReason, Message, Role, Sampling, Usage};

/// OpenAI's documented default for `max_tokens` on this endpoint. Applied to models only: an
/// agent keeps its own limit, since its tool rounds must fit in it too.
const DEFAULT_MAX_TOKENS: u32 = 16;

/// Where the gap is, in a fill-in-the-middle prompt.
const GAP: &str = "<FILL_HERE>";

/// Chat models have no FIM tokens, so a `suffix` turns the request into an instruction: this
/// system message, then one user message holding the prompt, [`GAP`] and the suffix. The reply
/// is the text for the gap, returned as the completion.
const FILL_IN_THE_MIDDLE: &str = "You complete documents. The user's message is a document with a gap marked \
<FILL_HERE>. Reply with exactly the text that belongs in place of <FILL_HERE> and nothing else: no explanation, \
no code fences, no repetition of the text before or after the gap.";

/// The parts of a completion request the gateway acts on.
struct Parsed {
    model: String,
    input: ChatInput,
    /// `echo`: the prompt, to put before the completion.
    echo: Option<String>,
    stream: bool,
    include_usage: bool,
}

pub async fn create(ctx: &Context, request: Request) -> Result<Response, ApiError> {
    let body: Value = ctx.json(request).await?;
    let parsed = parse(ctx, body)?;
    let id = format!("cmpl-{}", uuid::Uuid::now_v7().simple());
    let created = crate::clock::now_unix();
    if parsed.stream {
        let prepared = chat::prepare(&ctx.app, parsed.input).await.map_err(|e| model_error(&parsed.model, e))?;
        let framing = TextFraming {
            chunk: Chunk { id, created, model: parsed.model, include_usage: parsed.include_usage },
            echo: parsed.echo,
        };
        return Ok(streaming::respond(&ctx.app, prepared, framing, payer(&ctx.principal), &[]).await);
    }
    let done =
        chat::complete(&ctx.app, parsed.input, ctx.token_counter()).await.map_err(|e| model_error(&parsed.model, e))?;
    let tokens = done.finished.tokens;
    ctx.note_served(done.outcome.as_ref().ok());
    let turn = done.outcome.map_err(|f| ApiError::from(f.error))?;
    let text = parsed.echo.unwrap_or_default() + &turn.content;
    let body = json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": parsed.model,
        "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason(turn.finish_reason) }],
        "usage": super::chat::usage_json(tokens),
    });
    Ok(response::json(StatusCode::OK, &body))
}

/// Parse and validate a completion body.
fn parse(ctx: &Context, body: Value) -> Result<Parsed, ApiError> {
    let Value::Object(body) = body else { return Err(ApiError::InvalidJson) };
    let model =
        required(&body, "model")?.as_str().filter(|m| !m.is_empty()).ok_or_else(|| invalid("model"))?.to_string();
    let prompt = prompt(required(&body, "prompt")?)?;
    for field in ["n", "best_of"] {
        if opt_u32(&body, field)?.is_some_and(|n| n != 1) {
            return Err(ApiError::BadRequest(format!("Only {field} = 1 is supported")));
        }
    }
    if opt_u32(&body, "logprobs")?.is_some_and(|n| n > 0) {
        return Err(ApiError::BadRequest("logprobs are not supported".into()));
    }
    let suffix = match body.get("suffix") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(_) => return Err(invalid("suffix")),
    };
    let messages = if suffix.is_empty() {
        vec![Message::new(Role::User, prompt.clone())]
    } else {
        vec![Message::new(Role::System, FILL_IN_THE_MIDDLE), Message::new(Role::User, format!("{prompt}{GAP}{suffix}"))]
    };
    let (persona, _model_name) = persona_for(&model);
    let default_max_tokens = (persona == Persona::Model).then_some(DEFAULT_MAX_TOKENS);
    let sampling =
        Sampling { max_tokens: opt_u32(&body, "max_tokens")?.or(default_max_tokens), ..common_sampling(&body)? };
    let input = stateless(ctx, &model, messages, Vec::new(), sampling)?;
    let echo = flag(&body, "echo").then_some(prompt);
    let include_usage = body.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool);
    Ok(Parsed { model, input, echo, stream: flag(&body, "stream"), include_usage: include_usage.unwrap_or(false) })
}

fn flag(body: &Map<String, Value>, field: &str) -> bool {
    body.get(field).and_then(Value::as_bool).unwrap_or(false)
}

/// `prompt`: a string, or an array holding one string. Token arrays are refused: tokens mean
/// nothing across the providers behind the gateway.
fn prompt(value: &Value) -> Result<String, ApiError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Array(items) => match items.as_slice() {
            [] => Err(ApiError::BadRequest("prompt must not be empty".into())),
            [Value::String(text)] => Ok(text.clone()),
            [Value::Number(_), ..] | [Value::Array(_)] => {
                Err(ApiError::BadRequest("Token prompts are not supported: send the prompt as text".into()))
            }
            [_] => Err(invalid("prompt")),
            _ => Err(ApiError::BadRequest("Only one prompt per request is supported".into())),
        },
        _ => Err(invalid("prompt")),
    }
}

/// No client tools here, so an answer ends by stopping or by running out of tokens.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::ToolCalls => "stop",
    }
}

/// The fields every streamed `text_completion` chunk repeats.
struct Chunk {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
}

impl Chunk {
    fn with(&self, choices: Value, usage: Option<Value>) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk
    }

    fn text(&self, text: &str, finish_reason: Option<&str>) -> Bytes {
        let choice = json!({ "text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason });
        sse::data(&self.with(json!([choice]), None).to_string())
    }
}

/// `text_completion` chunks; with `echo`, the prompt is the first one.
struct TextFraming {
    chunk: Chunk,
    echo: Option<String>,
}

impl Framing for TextFraming {
    fn open(&mut self) -> Vec<Bytes> {
        self.echo.take().filter(|p| !p.is_empty()).map(|prompt| self.chunk.text(&prompt, None)).into_iter().collect()
    }

    fn text(&mut self, delta: &str) -> Vec<Bytes> {
        vec![self.chunk.text(delta, None)]
    }

    fn done(&mut self, turn: &Turn, tokens: Usage) -> Vec<Bytes> {
        let mut frames = vec![self.chunk.text("", Some(finish_reason(turn.finish_reason)))];
        if self.chunk.include_usage {
            let last = self.chunk.with(json!([]), Some(super::chat::usage_json(tokens)));
            frames.push(sse::data(&last.to_string()));
        }
        frames.push(sse::data("[DONE]"));
        frames
    }

    fn failed(&mut self, error: &ApiError) -> Vec<Bytes> {
        // The SDKs raise an APIError for a chunk carrying `error`.
        vec![sse::data(&response::error_body(error, Dialect::OpenAi).to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_one_text() {
        assert_eq!(prompt(&json!("a")).ok(), Some("a".to_string()));
        assert_eq!(prompt(&json!(["a"])).ok(), Some("a".to_string()));
        for refused in [json!([]), json!(["a", "b"]), json!([1, 2]), json!([[1, 2]]), json!([null]), json!(3)] {
            assert!(prompt(&refused).is_err(), "{refused}");
        }
    }
}
