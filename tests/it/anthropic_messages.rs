//! `POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic's Messages wire format) against
//! a mock provider of each upstream format: the message shape and the provider's usage, the
//! exact event order of a stream, client tools round trips (plain and streamed), `agent:<name>`
//! with a server-side tool, both ways of sending the key, errors in Anthropic's shape (request,
//! quota, upstream before and after the first streamed byte) and token counting.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, SseEvent, calc_agent, sse_events};
use crate::harness::header;
use crate::mock_provider::{Script, SentToolCall, Wire};

/// `POST path` the way Anthropic's SDKs send it: the key as `x-api-key`, with the version and
/// a beta header.
async fn post(gw: &Gateway, path: &str, key: &str, body: &Value) -> reqwest::Response {
    gw.server
        .client()
        .post(gw.server.url(path))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-2024-04-04")
        .json(body)
        .send()
        .await
        .expect("POST request")
}

/// The response body, asserting its status.
async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(got, status, "{body}");
    body
}

/// An error response in Anthropic's shape, asserting status and error type; returns the message.
async fn expect_anthropic_error(response: reqwest::Response, status: u16, kind: &str) -> String {
    let body = json_of(response, status).await;
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["error", "type"], "{body}");
    body["error"]["message"].as_str().expect("a message").to_string()
}

fn user(text: &str) -> Value {
    json!({ "role": "user", "content": text })
}

fn weather_tool() -> Value {
    json!({
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] },
    })
}

/// Event names, asserting that each event's payload `type` is its name.
fn names(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let name = e.name.clone().unwrap_or_else(|| panic!("an unnamed event: {e:?}"));
            assert_eq!(e.json()["type"], name, "{e:?}");
            name
        })
        .collect()
}

fn named<'a>(events: &'a [SseEvent], name: &str) -> Vec<&'a SseEvent> {
    events.iter().filter(|e| e.name.as_deref() == Some(name)).collect()
}

#[tokio::test]
async fn messages_answer_in_each_wire_format_with_the_providers_usage() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("anthropic-plain").await;
        gw.mock.set_script(Script::reply("Hello from the mock.").usage(20, 5));
        let body = json!({
            "model": MODEL,
            "max_tokens": 64,
            "system": [{ "type": "text", "text": "Be brief." }],
            "messages": [user("Hi there"), { "role": "assistant", "content": "Hello!" }, {
                "role": "user", "content": [{ "type": "text", "text": "How are you?", "cache_control": { "type": "ephemeral" } }],
            }],
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "top_k": 5,
            "thinking": { "type": "disabled" },
            "metadata": { "user_id": "user-7" },
        });
        let response = post(&gw, "/v1/messages", &key, &body).await;
        assert!(header(&response, "x-ratelimit-remaining").is_some(), "{wire:?}: governed like /v1");
        let answer = json_of(response, 200).await;
        let id = answer["id"].as_str().unwrap();
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(
            answer,
            json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{ "type": "text", "text": "Hello from the mock." }],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": { "input_tokens": 20, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
            }),
            "{wire:?}"
        );

        let requests = gw.mock.chat_requests();
        assert_eq!(requests.len(), 1, "{wire:?}");
        let sent = &requests[0];
        assert!(!sent.is_stream());
        let expected: Vec<(String, String)> =
            [("system", "Be brief."), ("user", "Hi there"), ("assistant", "Hello!"), ("user", "How are you?")]
                .iter()
                .map(|(r, t)| (r.to_string(), t.to_string()))
                .collect();
        assert_eq!(sent.text_turns(), expected, "{wire:?}");
        let (stop, max_tokens) = match wire {
            Wire::OpenAi => (&sent.body["stop"], &sent.body["max_tokens"]),
            Wire::Anthropic => (&sent.body["stop_sequences"], &sent.body["max_tokens"]),
            Wire::Ollama => (&sent.body["options"]["stop"], &sent.body["options"]["num_predict"]),
        };
        assert_eq!((stop, max_tokens), (&json!(["END"]), &json!(64)), "{wire:?}: {}", sent.body);
    }
}

#[tokio::test]
async fn a_streamed_message_follows_anthropics_event_order_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("anthropic-stream").await;
        let reply = "Streaming works as expected.";
        gw.mock.set_script(Script::reply(reply).usage(30, 6));
        let body = json!({ "model": MODEL, "max_tokens": 100, "stream": true, "messages": [user("Stream please")] });
        let events = sse_events(post(&gw, "/v1/messages", &key, &body).await).await;

        let pieces = reply.split_inclusive(' ').count();
        let mut expected = vec!["message_start", "ping", "content_block_start"];
        expected.extend(std::iter::repeat_n("content_block_delta", pieces));
        expected.extend(["content_block_stop", "message_delta", "message_stop"]);
        assert_eq!(names(&events), expected, "{wire:?}");

        let start = events[0].json();
        let message = &start["message"];
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!((message["type"].as_str(), message["role"].as_str()), (Some("message"), Some("assistant")));
        assert_eq!((message["model"].as_str(), &message["content"]), (Some(MODEL), &json!([])));
        assert_eq!((&message["stop_reason"], &message["stop_sequence"]), (&Value::Null, &Value::Null));
        assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0, "the prompt's estimate: {start}");

        assert_eq!(
            events[2].json(),
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })
        );
        let text: String = named(&events, "content_block_delta")
            .iter()
            .map(|e| {
                let delta = e.json();
                assert_eq!((delta["index"].as_u64(), delta["delta"]["type"].as_str()), (Some(0), Some("text_delta")));
                delta["delta"]["text"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(text, reply, "{wire:?}");
        assert_eq!(named(&events, "content_block_stop")[0].json(), json!({ "type": "content_block_stop", "index": 0 }));
        assert_eq!(
            named(&events, "message_delta")[0].json(),
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                "usage": { "input_tokens": 30, "output_tokens": 6 },
            }),
            "{wire:?}: usage is the provider's"
        );
        assert_eq!(events.last().unwrap().json(), json!({ "type": "message_stop" }));

        let sent = &gw.mock.chat_requests()[0];
        assert!(sent.is_stream(), "{wire:?}");
        if wire == Wire::OpenAi {
            assert_eq!(sent.body["stream_options"]["include_usage"], true, "usage is asked for upstream");
        }
    }
}

#[tokio::test]
async fn client_tools_round_trip_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("anthropic-tools").await;
        gw.mock.enqueue(Script::tool_call("get_weather", json!({ "city": "Paris" })).usage(15, 4));
        let question = user("Weather in Paris?");
        let body = json!({
            "model": MODEL, "max_tokens": 200, "messages": [question.clone()],
            "tools": [weather_tool()], "tool_choice": { "type": "auto", "disable_parallel_tool_use": true },
        });
        let answer = json_of(post(&gw, "/v1/messages", &key, &body).await, 200).await;
        assert_eq!(answer["stop_reason"], "tool_use", "{wire:?}: {answer}");
        let content = answer["content"].as_array().unwrap();
        assert_eq!(content.len(), 1, "{wire:?}: only the call, no empty text block: {answer}");
        let call = &content[0];
        let call_id = call["id"].as_str().unwrap().to_string();
        assert!(!call_id.is_empty());
        assert_eq!(
            call,
            &json!({ "type": "tool_use", "id": call_id, "name": "get_weather", "input": { "city": "Paris" } }),
            "{wire:?}"
        );
        assert_eq!(
            (answer["usage"]["input_tokens"].as_u64(), answer["usage"]["output_tokens"].as_u64()),
            (Some(15), Some(4))
        );
        let first = &gw.mock.chat_requests()[0];
        assert_eq!(first.tools_offered(), Some(vec!["get_weather".to_string()]), "{wire:?}");

        // The client runs its tool and sends the result back (with some text beside it).
        gw.mock.set_script(Script::reply("It is 18 degrees in Paris.").usage(40, 8));
        let body = json!({
            "model": MODEL, "max_tokens": 200, "tools": [weather_tool()],
            "messages": [question, { "role": "assistant", "content": answer["content"] }, {
                "role": "user",
                "content": [
                    { "type": "tool_result", "tool_use_id": call_id, "content": [{ "type": "text", "text": "18 degrees, sunny" }] },
                    { "type": "text", "text": "Answer in one sentence." },
                ],
            }],
        });
        let answer = json_of(post(&gw, "/v1/messages", &key, &body).await, 200).await;
        assert_eq!(answer["content"], json!([{ "type": "text", "text": "It is 18 degrees in Paris." }]), "{wire:?}");
        assert_eq!(answer["stop_reason"], "end_turn");

        let second = &gw.mock.chat_requests()[1];
        let echoed = SentToolCall {
            id: (wire != Wire::Ollama).then(|| call_id.clone()),
            name: "get_weather".into(),
            arguments: json!({ "city": "Paris" }),
        };
        assert_eq!(second.tool_calls_sent(), [echoed], "{wire:?}");
        let results = second.tool_results();
        assert_eq!(results.len(), 1, "{wire:?}: {}", second.body);
        assert_eq!(results[0].content, "18 degrees, sunny", "{wire:?}");
        match wire {
            Wire::Ollama => assert_eq!(results[0].tool_name.as_deref(), Some("get_weather")),
            _ => assert_eq!(results[0].call_id.as_deref(), Some(call_id.as_str()), "{wire:?}"),
        }
        let last = second.text_turns().pop().unwrap();
        assert_eq!(last, ("user".to_string(), "Answer in one sentence.".to_string()), "{wire:?}");
    }
}

#[tokio::test]
async fn a_streamed_client_tool_call_arrives_as_a_tool_use_block_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("anthropic-stream-tools").await;
        let arguments = json!({ "city": "Oslo" });
        gw.mock.set_script(Script::tool_call("get_weather", arguments.clone()).text("Let me check. ").usage(12, 9));
        let body = json!({
            "model": MODEL, "max_tokens": 200, "stream": true,
            "messages": [user("Weather in Oslo?")], "tools": [weather_tool()],
        });
        let events = sse_events(post(&gw, "/v1/messages", &key, &body).await).await;
        let names = names(&events);
        let tool_start = names.iter().rposition(|n| n == "content_block_start").unwrap();
        assert_eq!(names[..3], ["message_start", "ping", "content_block_start"], "{wire:?}");
        assert_eq!(names[tool_start - 1], "content_block_stop", "{wire:?}: the text block closes first: {names:?}");
        assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"], "{wire:?}");

        let start = events[tool_start].json();
        assert_eq!(start["index"], 1, "{wire:?}");
        let block = &start["content_block"];
        assert_eq!((block["type"].as_str(), block["name"].as_str()), (Some("tool_use"), Some("get_weather")));
        assert_eq!(block["input"], json!({}));
        assert!(!block["id"].as_str().unwrap().is_empty());
        let partial: String = events[tool_start + 1..]
            .iter()
            .filter(|e| e.name.as_deref() == Some("content_block_delta"))
            .map(|e| {
                let delta = e.json();
                assert_eq!(
                    (delta["index"].as_u64(), delta["delta"]["type"].as_str()),
                    (Some(1), Some("input_json_delta"))
                );
                delta["delta"]["partial_json"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), arguments, "{wire:?}: {partial}");
        let text: String = events[..tool_start]
            .iter()
            .filter(|e| e.name.as_deref() == Some("content_block_delta"))
            .map(|e| e.json()["delta"]["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(text, "Let me check. ", "{wire:?}");
        let delta = named(&events, "message_delta")[0].json();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use", "{wire:?}");
        assert_eq!(delta["usage"], json!({ "input_tokens": 12, "output_tokens": 9 }), "{wire:?}");
    }
}

#[tokio::test]
async fn an_agent_model_runs_its_server_side_tool_and_answers_in_one_text_block() {
    let gw = Gateway::builder(Wire::OpenAi).config(&calc_agent("calc")).start();
    let (_, key) = gw.tenant("anthropic-agent").await;
    gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "6*7" })).usage(10, 3));
    gw.mock.enqueue(Script::reply("6*7 is 42.").usage(30, 6));
    let body = json!({ "model": "agent:calc", "max_tokens": 100, "messages": [user("What is 6*7?")] });
    let answer = json_of(post(&gw, "/v1/messages", &key, &body).await, 200).await;
    assert_eq!(answer["model"], "agent:calc");
    assert_eq!(answer["content"], json!([{ "type": "text", "text": "6*7 is 42." }]), "{answer}");
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["usage"]["input_tokens"], 40, "both model calls count");
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].text_turns()[0], ("system".to_string(), "You compute things.".to_string()));
    let result: Value = serde_json::from_str(&requests[1].tool_results()[0].content).unwrap();
    assert_eq!(result["result"], "42", "the server ran the calculator");

    // Streamed: the tool round is invisible, the answer one text block.
    gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "2+2" })));
    gw.mock.enqueue(Script::reply("2+2 is 4."));
    let body = json!({ "model": "agent:calc", "max_tokens": 100, "stream": true, "messages": [user("2+2?")] });
    let events = sse_events(post(&gw, "/v1/messages", &key, &body).await).await;
    let starts = named(&events, "content_block_start");
    assert_eq!(starts.len(), 1, "{events:?}");
    assert_eq!(starts[0].json()["content_block"]["type"], "text");
    assert_eq!(names(&events).last().map(String::as_str), Some("message_stop"));
}

#[tokio::test]
async fn keys_authenticate_as_x_api_key_or_bearer_and_request_errors_take_anthropics_shape() {
    let gw = Gateway::start(Wire::Anthropic);
    let (_, key) = gw.tenant("anthropic-auth").await;
    let body = json!({ "model": MODEL, "max_tokens": 16, "messages": [user("hi")] });
    json_of(post(&gw, "/v1/messages", &key, &body).await, 200).await;
    json_of(gw.post("/v1/messages", &key, &body).await, 200).await;

    let anonymous = gw.server.client().post(gw.server.url("/v1/messages")).json(&body).send().await.unwrap();
    expect_anthropic_error(anonymous, 401, "authentication_error").await;
    expect_anthropic_error(post(&gw, "/v1/messages", "ares_sk_not_a_key", &body).await, 401, "authentication_error")
        .await;

    let unknown = json!({ "model": "no-such-model", "max_tokens": 16, "messages": [user("hi")] });
    let message = expect_anthropic_error(post(&gw, "/v1/messages", &key, &unknown).await, 404, "not_found_error").await;
    assert!(message.contains("no-such-model"), "{message}");
    let agent = json!({ "model": "agent:nobody", "max_tokens": 16, "messages": [user("hi")] });
    expect_anthropic_error(post(&gw, "/v1/messages", &key, &agent).await, 404, "not_found_error").await;

    let no_max = json!({ "model": MODEL, "messages": [user("hi")] });
    let message =
        expect_anthropic_error(post(&gw, "/v1/messages", &key, &no_max).await, 400, "invalid_request_error").await;
    assert_eq!(message, "Missing required field: max_tokens");
    let image = json!({ "model": MODEL, "max_tokens": 16, "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "What is this?" },
        { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=" } },
    ] }] });
    let message =
        expect_anthropic_error(post(&gw, "/v1/messages", &key, &image).await, 400, "invalid_request_error").await;
    assert!(message.contains("'image'") && message.contains("messages[0].content[1]"), "{message}");
    let no_messages = json!({ "model": MODEL, "max_tokens": 16, "messages": [] });
    expect_anthropic_error(post(&gw, "/v1/messages", &key, &no_messages).await, 400, "invalid_request_error").await;
    assert_eq!(gw.mock.chat_requests().len(), 2, "refused requests never reach the provider");
}

#[tokio::test]
async fn an_exhausted_quota_is_a_rate_limit_error_with_retry_after() {
    let gw = Gateway::builder(Wire::Ollama)
        .config("[quotas.free]\nmonthly_requests = 1000\nmonthly_tokens = 100000\ndaily_requests = 2")
        .start();
    let provisioned = gw.server.provision("anthropic-quota", "free", "generic").await;
    let key = provisioned["raw_api_key"].as_str().unwrap().to_string();
    let body = json!({ "model": MODEL, "max_tokens": 16, "messages": [user("hi")] });
    for _ in 0..2 {
        json_of(post(&gw, "/v1/messages", &key, &body).await, 200).await;
    }
    let response = post(&gw, "/v1/messages", &key, &body).await;
    let retry_after: u64 = header(&response, "retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry_after > 0);
    assert_eq!(header(&response, "x-ratelimit-remaining").as_deref(), Some("0"));
    expect_anthropic_error(response, 429, "rate_limit_error").await;
    assert_eq!(gw.mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn upstream_failures_are_api_errors_before_the_stream_and_error_events_after() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("anthropic-failures").await;
        gw.mock.set_script(Script::error(500, "upstream exploded"));
        let body = json!({ "model": MODEL, "max_tokens": 16, "messages": [user("hi")] });
        let response = post(&gw, "/v1/messages", &key, &body).await;
        assert!(response.status().is_server_error(), "{wire:?}: {}", response.status());
        let status = response.status().as_u16();
        expect_anthropic_error(response, status, "api_error").await;

        // Streamed, the 200 and `message_start` are out before the provider answers.
        let streamed = json!({ "model": MODEL, "max_tokens": 16, "stream": true, "messages": [user("hi")] });
        let events = sse_events(post(&gw, "/v1/messages", &key, &streamed).await).await;
        assert_eq!(names(&events), ["message_start", "ping", "error"], "{wire:?}");
        assert_eq!(events[2].json()["error"]["type"], "api_error");

        for script in [
            Script::reply("This answer is cut off half way").truncated(),
            Script::reply("Broken JSON here").malformed(),
        ] {
            gw.mock.set_script(script);
            let body = json!({ "model": MODEL, "max_tokens": 16, "stream": true, "messages": [user("hi")] });
            let events = sse_events(post(&gw, "/v1/messages", &key, &body).await).await;
            let names: Vec<Option<String>> = events.iter().map(|e| e.name.clone()).collect();
            assert_eq!(names[..2], [Some("message_start".to_string()), Some("ping".to_string())], "{wire:?}");
            let last = events.last().unwrap();
            assert_eq!(last.name.as_deref(), Some("error"), "{wire:?}: {names:?}");
            let error = last.json();
            assert_eq!((error["type"].as_str(), error["error"]["type"].as_str()), (Some("error"), Some("api_error")));
            assert!(!error["error"]["message"].as_str().unwrap().is_empty());
            assert!(named(&events, "message_stop").is_empty(), "{wire:?}");
        }
    }
}

#[tokio::test]
async fn count_tokens_estimates_the_prompt_without_calling_upstream() {
    let gw = Gateway::builder(Wire::OpenAi).config(&calc_agent("calc")).start();
    let (_, key) = gw.tenant("anthropic-count").await;
    let short = json!({ "model": MODEL, "messages": [user("Hello, world")] });
    let counted = json_of(post(&gw, "/v1/messages/count_tokens", &key, &short).await, 200).await;
    assert_eq!(counted, json!({ "input_tokens": 3 }), "ceil(12 bytes / 4)");

    let long = json!({
        "model": "balanced", "system": "You are terse.", "tools": [weather_tool()],
        "messages": [user("Hello, world"), { "role": "assistant", "content": [
            { "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": "Rome" } },
        ] }, { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "toolu_1", "content": "warm" }] }],
    });
    let counted = json_of(post(&gw, "/v1/messages/count_tokens", &key, &long).await, 200).await;
    assert!(counted["input_tokens"].as_u64().unwrap() > 3 + 20, "{counted}");
    let agent = json!({ "model": "agent:calc", "messages": [user("Hello, world")] });
    let counted = json_of(post(&gw, "/v1/messages/count_tokens", &key, &agent).await, 200).await;
    assert!(counted["input_tokens"].as_u64().unwrap() > 3, "the agent's prompt counts: {counted}");

    let unknown = json!({ "model": "no-such-model", "messages": [user("hi")] });
    expect_anthropic_error(post(&gw, "/v1/messages/count_tokens", &key, &unknown).await, 404, "not_found_error").await;
    let response =
        gw.server.v1(Method::POST, "/v1/messages/count_tokens", "ares_sk_not_a_key").json(&short).send().await.unwrap();
    expect_anthropic_error(response, 401, "authentication_error").await;
    assert!(gw.mock.chat_requests().is_empty(), "nothing is called upstream");
}

/// What Claude Code (2.1) sends, as captured from it: `?beta=true`, `system` turns inside
/// `messages`, `cache_control` on blocks, a JSON string as `metadata.user_id`, and fields no
/// provider here has (`thinking`, `context_management`, `output_config`).
#[tokio::test]
async fn a_request_shaped_like_claude_codes_is_answered() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        gw.mock.set_script(Script::reply("Hello from ARES."));
        let (_, key) = gw.tenant("coder").await;
        let body = json!({
            "model": MODEL,
            "max_tokens": 32000,
            "stream": true,
            "system": [{ "type": "text", "text": "You are a coding agent.", "cache_control": { "type": "ephemeral" } }],
            "messages": [
                { "role": "user", "content": [
                    { "type": "text", "text": "<system-reminder>context</system-reminder>" },
                    { "type": "text", "text": "say hello", "cache_control": { "type": "ephemeral" } } ] },
                { "role": "system", "content": "Available agent types: claude." }
            ],
            "tools": [weather_tool()],
            "metadata": { "user_id": "{\"device_id\":\"d1\",\"session_id\":\"s1\"}" },
            "thinking": { "type": "adaptive" },
            "context_management": { "edits": [{ "type": "clear_thinking_20251015", "keep": "all" }] },
            "output_config": { "effort": "high" }
        });
        let response = gw
            .server
            .client()
            .post(gw.server.url("/v1/messages?beta=true"))
            .bearer_auth(&key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14")
            .json(&body)
            .send()
            .await
            .unwrap();
        let events = sse_events(response).await;
        let text: String = events
            .iter()
            .filter(|e| e.name.as_deref() == Some("content_block_delta"))
            .map(|e| e.json()["delta"]["text"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(text, "Hello from ARES.", "{wire:?}: {events:?}");
        assert_eq!(events.last().unwrap().name.as_deref(), Some("message_stop"));
        let sent = gw.mock.chat_requests().pop().unwrap();
        let transcript = sent.transcript();
        assert!(transcript.iter().any(|(_, text)| text.contains("Available agent types")), "{wire:?}: {transcript:?}");
        assert!(transcript.iter().any(|(role, text)| role == "user" && text.contains("say hello")));
    }
}
