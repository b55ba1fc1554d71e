//! Proves the mock provider speaks each wire format (JSON and streaming) by talking to it with
//! a plain HTTP client, before any server code relies on it.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::harness::{header, http_client};
use crate::mock_provider::{
    MOCK_EMBEDDING_DIMENSIONS, MockProvider, RerankStyle, Script, SentToolCall, SentToolResult, Wire, cosine,
    mock_embedding,
};

/// One server-sent event: its `event:` name (if any) and its `data:` payload.
#[derive(Debug)]
struct Event {
    name: Option<String>,
    data: String,
}

fn parse_sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = Event { name: None, data: String::new() };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.name = Some(name.to_string());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                }
            }
            event
        })
        .collect()
}

async fn post(mock: &MockProvider, path: &str, body: Value) -> reqwest::Response {
    http_client().post(format!("{}{path}", mock.url())).json(&body).send().await.expect("request to the mock")
}

#[tokio::test]
async fn openai_json_answers_the_script_and_records_the_request() {
    let mock = MockProvider::start();
    mock.set_script(Script::reply("Paris is the capital.").usage(12, 5));
    let response = http_client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .bearer_auth("sk-test")
        .json(&json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "Capital of France?" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["choices"][0]["message"], json!({ "role": "assistant", "content": "Paris is the capital." }));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"], json!({ "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17 }));

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(requests[0].body["messages"][0]["content"], "Capital of France?");
}

#[tokio::test]
async fn openai_stream_sends_deltas_usage_and_done() {
    let mock = MockProvider::start();
    mock.set_script(Script::reply("one two three").usage(4, 3));
    let body =
        json!({ "model": "gpt-test", "stream": true, "stream_options": { "include_usage": true }, "messages": [] });
    let response = post(&mock, "/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type").as_deref(), Some("text/event-stream"));
    let events = parse_sse(&response.text().await.unwrap());

    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "one two three");
    let deltas = chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(deltas.count(), 3, "one delta per word");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json!({ "prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7 }));

    // Without stream_options.include_usage there is no usage chunk, as with OpenAI.
    let response = post(&mock, "/v1/chat/completions", json!({ "model": "m", "stream": true })).await;
    let events = parse_sse(&response.text().await.unwrap());
    assert!(events.iter().all(|e| !e.data.contains("\"usage\"")), "{events:?}");
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
}

#[tokio::test]
async fn anthropic_json_and_stream() {
    let mock = MockProvider::start();
    mock.set_script(Script::reply("Bonjour le monde").usage(9, 4));
    let response = http_client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({ "model": "claude-test", "max_tokens": 64, "messages": [{ "role": "user", "content": "Hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["content"], json!([{ "type": "text", "text": "Bonjour le monde" }]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"], json!({ "input_tokens": 9, "output_tokens": 4 }));
    let recorded = &mock.requests()[0];
    assert_eq!(recorded.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));

    let response = post(&mock, "/v1/messages", json!({ "model": "claude-test", "stream": true })).await;
    assert_eq!(header(&response, "content-type").as_deref(), Some("text/event-stream"));
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let data: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    for (name, value) in names.iter().zip(&data) {
        assert_eq!(value["type"], *name, "the data's type repeats the event name");
    }
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 9);
    let text: String = data.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "Bonjour le monde");
    assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[7]["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn ollama_json_and_ndjson_stream() {
    let mock = MockProvider::start();
    mock.set_script(Script::reply("local model says hi").usage(6, 4));
    let response = post(&mock, "/api/chat", json!({ "model": "llama3.2", "stream": false, "messages": [] })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["message"], json!({ "role": "assistant", "content": "local model says hi" }));
    assert_eq!(body["done"], true);
    assert_eq!((body["prompt_eval_count"].as_u64(), body["eval_count"].as_u64()), (Some(6), Some(4)));

    // Ollama streams by default: no `stream` field means NDJSON.
    let response = post(&mock, "/api/chat", json!({ "model": "llama3.2", "messages": [] })).await;
    assert_eq!(header(&response, "content-type").as_deref(), Some("application/x-ndjson"));
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "four words and the final line: {text}");
    assert!(lines[..4].iter().all(|l| l["done"] == false));
    let content: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
    assert_eq!(content, "local model says hi");
    let last = lines.last().unwrap();
    assert_eq!((last["done"].as_bool(), last["done_reason"].as_str()), (Some(true), Some("stop")));
    assert_eq!((last["prompt_eval_count"].as_u64(), last["eval_count"].as_u64()), (Some(6), Some(4)));
}

#[tokio::test]
async fn scripted_errors_use_each_providers_error_shape() {
    let mock = MockProvider::start();
    mock.set_script(Script::error(429, "slow down"));
    let cases = [
        (
            "/v1/chat/completions",
            json!({ "error": { "message": "slow down", "type": "rate_limit_error", "param": null, "code": null } }),
        ),
        ("/v1/messages", json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "slow down" } })),
        ("/api/chat", json!({ "error": "slow down" })),
    ];
    for (path, expected) in cases {
        let response = post(&mock, path, json!({ "model": "m", "stream": true })).await;
        assert_eq!(response.status(), 429, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), expected, "{path}");
    }
}

#[tokio::test]
async fn queued_scripts_come_first_and_unknown_paths_are_recorded() {
    let mock = MockProvider::start();
    mock.set_script(Script::reply("default"));
    mock.enqueue(Script::error(503, "warming up"));
    mock.enqueue(Script::reply("second"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = post(&mock, "/api/chat", json!({ "model": "m", "stream": false })).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        seen.push((status, body["message"]["content"].as_str().or(body["error"].as_str()).unwrap().to_string()));
    }
    let expected = [(503, "warming up"), (200, "second"), (200, "default")].map(|(s, t)| (s, t.to_string()));
    assert_eq!(seen, expected);

    // Unknown routes answer 404, are recorded, and do not consume queued scripts.
    mock.enqueue(Script::reply("kept"));
    let response = post(&mock, "/v1/images/generations", json!({ "prompt": "x" })).await;
    assert_eq!(response.status(), 404);
    let response = http_client().get(format!("{}/api/chat", mock.url())).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = post(&mock, "/api/chat", json!({ "model": "m", "stream": false })).await;
    assert_eq!(response.json::<Value>().await.unwrap()["message"]["content"], "kept");
    let paths: Vec<(String, String)> = mock.requests().into_iter().map(|r| (r.method, r.path)).collect();
    let expected = [
        ("POST", "/api/chat"),
        ("POST", "/api/chat"),
        ("POST", "/api/chat"),
        ("POST", "/v1/images/generations"),
        ("GET", "/api/chat"),
        ("POST", "/api/chat"),
    ]
    .map(|(m, p)| (m.to_string(), p.to_string()));
    assert_eq!(paths, expected);
}

#[tokio::test]
async fn delays_hold_back_the_first_byte_and_space_out_chunks() {
    let mock = MockProvider::start();
    let delay = Duration::from_millis(150);
    mock.set_script(Script::reply("a b c").delay(delay));
    let started = Instant::now();
    let response = post(&mock, "/v1/messages", json!({ "model": "m" })).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= delay, "headers arrived before the scripted delay");

    let gap = Duration::from_millis(40);
    mock.set_script(Script::reply("a b c").chunk_delay(gap));
    let started = Instant::now();
    let response = post(&mock, "/v1/chat/completions", json!({ "model": "m", "stream": true })).await;
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    // 1 role chunk + 3 deltas + finish + [DONE] = 6 chunks, so at least 5 gaps.
    assert!(started.elapsed() >= gap * 5, "chunks were not spaced out");
    let events = parse_sse(std::str::from_utf8(&received).unwrap());
    assert_eq!(events.len(), 6);
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn tool_calls_in_each_wire_format_json_and_streamed() {
    let mock = MockProvider::start();
    let arguments = json!({ "expression": "2+3*4" });
    mock.set_script(Script::tool_calls(&[("calculator", arguments.clone()), ("web_search", json!({ "query": "q" }))]));

    // OpenAI: string arguments, finish_reason "tool_calls"; streamed as delta.tool_calls pieces.
    let body: Value = post(&mock, "/v1/chat/completions", json!({ "model": "m" })).await.json().await.unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!((call["type"].as_str(), call["function"]["name"].as_str()), (Some("function"), Some("calculator")));
    let text = call["function"]["arguments"].as_str().expect("OpenAI arguments are a string");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), arguments);
    assert_eq!(choice["message"]["tool_calls"][1]["function"]["name"], "web_search");

    let body = json!({ "model": "m", "stream": true, "stream_options": { "include_usage": true } });
    let events = parse_sse(&post(&mock, "/v1/chat/completions", body).await.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for part in chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array()).flatten() {
        let index = part["index"].as_u64().unwrap() as usize;
        if calls.len() <= index {
            calls.push(Default::default());
        }
        if let Some(id) = part["id"].as_str() {
            calls[index].0 = id.to_string();
        }
        calls[index].1.push_str(part["function"]["name"].as_str().unwrap_or_default());
        calls[index].2.push_str(part["function"]["arguments"].as_str().unwrap_or_default());
    }
    assert_eq!(calls.len(), 2);
    assert!(calls[0].0.starts_with("call_"), "{calls:?}");
    assert_eq!(calls[0].1, "calculator");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].2).unwrap(), arguments);
    let argument_parts = chunks.iter().filter(|c| {
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().is_some_and(|a| !a.is_empty())
    });
    assert_eq!(argument_parts.count(), 4, "each call's arguments arrive in two pieces");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    // Anthropic: tool_use blocks with object input, stop_reason "tool_use"; streamed as
    // content_block_start + input_json_delta.
    let body: Value = post(&mock, "/v1/messages", json!({ "model": "m" })).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    let blocks = body["content"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "no empty text block: {body}");
    assert_eq!((blocks[0]["type"].as_str(), blocks[0]["name"].as_str()), (Some("tool_use"), Some("calculator")));
    assert_eq!(blocks[0]["input"], arguments);
    assert!(blocks[0]["id"].as_str().unwrap().starts_with("toolu_"));

    let events =
        parse_sse(&post(&mock, "/v1/messages", json!({ "model": "m", "stream": true })).await.text().await.unwrap());
    let data: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let starts: Vec<&Value> = data.iter().filter(|d| d["type"] == "content_block_start").collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        (starts[0]["content_block"]["type"].as_str(), starts[0]["content_block"]["name"].as_str()),
        (Some("tool_use"), Some("calculator"))
    );
    let partial: String = data
        .iter()
        .filter(|d| d["index"] == 0 && d["delta"]["type"] == "input_json_delta")
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), arguments);
    let stop = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
    assert_eq!(data.last().unwrap()["type"], "message_stop");

    // Ollama: message.tool_calls with object arguments, JSON and streamed.
    let body: Value = post(&mock, "/api/chat", json!({ "model": "m", "stream": false })).await.json().await.unwrap();
    assert_eq!(
        body["message"]["tool_calls"][0],
        json!({ "function": { "name": "calculator", "arguments": arguments } })
    );
    let lines = ndjson(&post(&mock, "/api/chat", json!({ "model": "m" })).await.text().await.unwrap());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["message"]["tool_calls"][0]["function"]["arguments"], arguments);
    assert_eq!(lines[1]["done"], true);

    // Text alongside tool calls comes first.
    mock.set_script(Script::tool_call("calculator", arguments.clone()).text("Let me compute."));
    let body: Value = post(&mock, "/v1/messages", json!({ "model": "m" })).await.json().await.unwrap();
    assert_eq!(body["content"][0], json!({ "type": "text", "text": "Let me compute." }));
    assert_eq!(body["content"][1]["type"], "tool_use");
}

#[tokio::test]
async fn truncated_and_malformed_answers_in_each_wire_format() {
    let mock = MockProvider::start();
    for wire in Wire::ALL {
        let stream = json!({ "model": "m", "stream": true });
        mock.set_script(Script::reply("one two three four").truncated());
        let text = post(&mock, wire.path(), stream.clone()).await.text().await.unwrap();
        assert!(text.contains("one "), "{wire:?} sends a first part: {text}");
        for terminal in ["[DONE]", "message_stop", "\"done\":true", "four"] {
            assert!(!text.contains(terminal), "{wire:?}: a truncated stream has no {terminal}: {text}");
        }
        let json_body = post(&mock, wire.path(), json!({ "model": "m", "stream": false })).await.text().await.unwrap();
        assert!(serde_json::from_str::<Value>(&json_body).is_err(), "{wire:?}: cut JSON: {json_body}");
        assert!(!json_body.is_empty());

        mock.set_script(Script::reply("one two three four").malformed());
        let text = post(&mock, wire.path(), stream).await.text().await.unwrap();
        let bad = if wire == Wire::Ollama { "\n{not json\n" } else { "\n\ndata: {not json\n\n" };
        assert!(text.contains(bad), "{wire:?}: {text}");
        let json_body = post(&mock, wire.path(), json!({ "model": "m", "stream": false })).await.text().await.unwrap();
        assert_eq!(json_body, "{not json");
    }
}

#[tokio::test]
async fn a_hanging_answer_never_arrives_and_the_mock_still_stops() {
    let mock = MockProvider::start();
    mock.set_script(Script::hang());
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(200)).build().unwrap();
    let outcome = client.post(format!("{}/api/chat", mock.url())).json(&json!({ "model": "m" })).send().await;
    assert!(outcome.unwrap_err().is_timeout());
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].finished);
    // Dropping the mock with the request still pending must not block.
    drop(mock);
}

#[tokio::test]
async fn paused_streams_wait_for_resume_and_hang_ups_are_recorded() {
    let mock = MockProvider::start();
    mock.set_script(Script::reply("a b c d").pause_after(2));
    let response = post(&mock, "/api/chat", json!({ "model": "m" })).await;
    let mut stream = response.bytes_stream();
    let mut received = String::new();
    while received.lines().count() < 2 {
        received.push_str(std::str::from_utf8(&stream.next().await.unwrap().unwrap()).unwrap());
    }
    assert_eq!(received.lines().count(), 2, "nothing past the pause: {received}");
    assert!(!mock.requests()[0].finished);
    mock.resume();
    while let Some(chunk) = stream.next().await {
        received.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(ndjson(&received).len(), 5);
    let requests = mock.wait_until("the stream finished", |r| r[0].finished).await;
    assert!(!requests[0].abandoned);

    // A client that hangs up mid-stream: the mock sees its answer abandoned.
    mock.set_script(Script::reply("a b c d e f g h").pause_after(1).chunk_delay(Duration::from_millis(10)));
    let response = post(&mock, "/api/chat", json!({ "model": "m" })).await;
    let mut stream = response.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    mock.resume();
    let requests = mock.wait_until("the hang-up", |r| r[1].abandoned).await;
    assert!(!requests[1].finished);
}

#[tokio::test]
async fn recorded_requests_read_alike_in_each_wire_format() {
    let mock = MockProvider::start();
    let tool = json!({ "name": "calculator" });
    let cases = [
        (
            "/v1/chat/completions",
            json!({ "model": "m", "tools": [{ "type": "function", "function": tool }], "messages": [
                { "role": "system", "content": "sys" },
                { "role": "user", "content": "q" },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "c1", "type": "function", "function": { "name": "calculator", "arguments": "{\"expression\":\"1+1\"}" } },
                ]},
                { "role": "tool", "tool_call_id": "c1", "content": "2" },
            ]}),
            Some("c1"),
            None,
        ),
        (
            "/v1/messages",
            json!({ "model": "m", "system": "sys", "tools": [tool], "messages": [
                { "role": "user", "content": "q" },
                { "role": "assistant", "content": [
                    { "type": "tool_use", "id": "c1", "name": "calculator", "input": { "expression": "1+1" } },
                ]},
                { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "c1", "content": "2" }] },
            ]}),
            Some("c1"),
            None,
        ),
        (
            "/api/chat",
            json!({ "model": "m", "stream": false, "tools": [{ "type": "function", "function": tool }], "messages": [
                { "role": "system", "content": "sys" },
                { "role": "user", "content": "q" },
                { "role": "assistant", "content": "", "tool_calls": [
                    { "function": { "name": "calculator", "arguments": { "expression": "1+1" } } },
                ]},
                { "role": "tool", "tool_name": "calculator", "content": "2" },
            ]}),
            None,
            Some("calculator"),
        ),
    ];
    for (path, body, call_id, tool_name) in cases {
        post(&mock, path, body).await;
        let recorded = mock.requests().pop().unwrap();
        assert_eq!(recorded.tools_offered(), Some(vec!["calculator".to_string()]), "{path}");
        let turns = recorded.text_turns();
        let turns: Vec<(&str, &str)> = turns.iter().map(|(r, t)| (r.as_str(), t.as_str())).collect();
        assert_eq!(turns, [("system", "sys"), ("user", "q"), ("tool", "2")], "{path}");
        let call = SentToolCall {
            id: call_id.map(str::to_string),
            name: "calculator".into(),
            arguments: json!({ "expression": "1+1" }),
        };
        assert_eq!(recorded.tool_calls_sent(), [call], "{path}");
        let result = SentToolResult {
            call_id: call_id.map(str::to_string),
            tool_name: tool_name.map(str::to_string),
            content: "2".into(),
        };
        assert_eq!(recorded.tool_results(), [result], "{path}");
    }
    post(&mock, "/api/chat", json!({ "model": "m", "messages": [] })).await;
    assert_eq!(mock.requests().pop().unwrap().tools_offered(), None);
}

#[tokio::test]
async fn embeddings_are_deterministic_bags_of_words_in_both_wire_formats() {
    let mock = MockProvider::start();
    let vector =
        |value: &Value| -> Vec<f32> { value.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };

    // Ollama: {model, input: [...]} → {embeddings: [[...]]}, in input order.
    let response =
        post(&mock, "/api/embed", json!({ "model": "m", "input": ["The car", "an automobile", "a cat"] })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let embeddings: Vec<Vec<f32>> = body["embeddings"].as_array().unwrap().iter().map(vector).collect();
    assert_eq!(embeddings.len(), 3);
    assert!(embeddings.iter().all(|v| v.len() == MOCK_EMBEDDING_DIMENSIONS));
    assert_eq!(embeddings[0], mock_embedding("The car", MOCK_EMBEDDING_DIMENSIONS));
    assert_eq!(embeddings[1], mock_embedding("an automobile", MOCK_EMBEDDING_DIMENSIONS));
    // A synonym shares its concept's coordinate; an unrelated word does not.
    assert!(cosine(&mock_embedding("automobile", 64), &mock_embedding("car", 64)) > 0.99);
    assert!(cosine(&mock_embedding("automobile", 64), &mock_embedding("cat", 64)) < 0.01);

    // OpenAI: {model, input} → {data: [{index, embedding}]} (last first: clients sort by index);
    // a bare string input is one text.
    mock.set_embedding_dimensions(8);
    let response = post(&mock, "/v1/embeddings", json!({ "model": "m", "input": ["one", "two"] })).await;
    let body: Value = response.json().await.unwrap();
    let indexes: Vec<u64> = body["data"].as_array().unwrap().iter().map(|d| d["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [1, 0]);
    assert_eq!(vector(&body["data"][1]["embedding"]), mock_embedding("one", 8));
    let body: Value =
        post(&mock, "/v1/embeddings", json!({ "model": "m", "input": "solo" })).await.json().await.unwrap();
    assert_eq!(vector(&body["data"][0]["embedding"]), mock_embedding("solo", 8));

    mock.set_embedding_status(500);
    assert_eq!(post(&mock, "/api/embed", json!({ "input": ["x"] })).await.status(), 500);
    assert_eq!(mock.embedding_requests().len(), 4);
    assert!(mock.chat_requests().is_empty());
}

#[tokio::test]
async fn rerank_scores_by_overlap_or_by_needles_in_jina_or_tei_shape() {
    let mock = MockProvider::start();
    let request = json!({
        "model": "rr", "query": "reset password", "top_n": 2,
        "documents": ["nothing relevant", "password reset steps", "reset only"],
    });
    let body: Value = post(&mock, "/rerank", request.clone()).await.json().await.unwrap();
    assert_eq!(
        body["results"],
        json!([{ "index": 1, "relevance_score": 1.0 }, { "index": 2, "relevance_score": 0.5 }]),
        "{body}"
    );
    mock.set_rerank_scores(&[("nothing", 0.75)]);
    mock.set_rerank_style(RerankStyle::Tei);
    let body: Value = post(&mock, "/rerank", request).await.json().await.unwrap();
    assert_eq!(body, json!([{ "index": 0, "score": 0.75 }, { "index": 1, "score": 0.0 }]));
    assert_eq!(mock.rerank_requests().len(), 2);
}
