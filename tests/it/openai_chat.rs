//! `POST /v1/chat/completions` on the wire: the OpenAI Chat Completions format in front of
//! every upstream format (OpenAI, Anthropic, Ollama), plain and streamed, client tools round
//! trips, `agent:` models running server-side tools, and errors in OpenAI's shape.

use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, SseEvent, model_id, sse_events};
use crate::harness::{expect_json, header};
use crate::mock_provider::{Script, Wire};

const WEATHER_TOOL: &str = "get_weather";

fn weather_tools() -> Value {
    json!([{ "type": "function", "function": {
        "name": WEATHER_TOOL, "description": "Current weather",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }])
}

/// The JSON chunks of a Chat Completions stream, asserting it ends with `data: [DONE]`.
fn chunks(events: &[SseEvent]) -> Vec<Value> {
    let (last, rest) = events.split_last().expect("events");
    assert_eq!(last.data, "[DONE]", "the stream ends with [DONE]: {events:?}");
    rest.iter().map(SseEvent::json).collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect()
}

async fn error_body(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("JSON error body");
    let error = &body["error"];
    assert!(error["message"].is_string() && error["type"].is_string(), "OpenAI error shape: {body}");
    assert!(error.get("param").is_some() && error.get("code").is_some(), "param and code are present: {body}");
    body
}

#[tokio::test]
async fn a_completion_answers_in_openai_shape_from_every_upstream_format() {
    for wire in Wire::ALL {
        let gateway = Gateway::start(wire);
        gateway.mock.set_script(Script::reply("Paris is the capital.").usage(21, 5));
        let (_, key) = gateway.tenant("acme").await;
        let request = json!({
            "model": MODEL,
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": [{ "type": "text", "text": "Capital of France?" }] }
            ],
            "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 64, "stop": ["\n\n"], "seed": 7, "user": "u-1"
        });
        let response = gateway.post("/v1/chat/completions", &key, &request).await;
        assert!(header(&response, "x-ratelimit-limit").is_some(), "{wire:?}: governed like /v1/chat");
        let body = expect_json(response, 200).await;
        assert_eq!(body["object"], "chat.completion");
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["model"], MODEL);
        assert_eq!(
            body["choices"][0]["message"],
            json!({ "role": "assistant", "content": "Paris is the capital.", "refusal": null })
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            body["usage"],
            json!({ "prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26 }),
            "{wire:?}"
        );

        let sent = gateway.mock.chat_requests().pop().unwrap();
        assert_eq!(sent.body["model"], model_id(wire));
        assert_eq!(
            sent.transcript(),
            vec![("system".into(), "Be brief.".into()), ("user".into(), "Capital of France?".into())],
            "{wire:?}: the client's conversation, no agent prompt added"
        );
        match wire {
            Wire::OpenAi => {
                assert_eq!((sent.body["top_p"].as_f64(), sent.body["seed"].as_i64()), (Some(0.9), Some(7)));
                assert_eq!((sent.body["max_tokens"].as_u64(), sent.body["stop"].clone()), (Some(64), json!(["\n\n"])));
                assert_eq!(sent.body["user"], "u-1");
            }
            Wire::Anthropic => {
                assert_eq!(sent.body["stop_sequences"], json!(["\n\n"]));
                assert_eq!(sent.body["max_tokens"], 64);
            }
            Wire::Ollama => {
                assert_eq!(sent.body["options"]["num_predict"], 64);
                assert_eq!(sent.body["options"]["seed"], 7);
            }
        }
        let usage = expect_json(gateway.get("/v1/usage", &key).await, 200).await;
        assert!(usage.to_string().contains("26"), "{wire:?}: tokens metered: {usage}");
    }
}

#[tokio::test]
async fn a_stream_sends_chunks_usage_last_and_done_from_every_upstream_format() {
    for wire in Wire::ALL {
        let gateway = Gateway::start(wire);
        gateway.mock.set_script(Script::reply("one two three four").usage(9, 4));
        let (_, key) = gateway.tenant("acme").await;
        let request = json!({ "model": "balanced", "stream": true, "stream_options": { "include_usage": true },
                              "messages": [{ "role": "user", "content": "count" }] });
        let events = sse_events(gateway.post("/v1/chat/completions", &key, &request).await).await;
        let all = chunks(&events);
        assert_eq!(all[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(streamed_text(&all), "one two three four", "{wire:?}");
        let (usage_chunk, others) = all.split_last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"],
            json!({ "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13 }),
            "{wire:?}"
        );
        for chunk in others {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert!(chunk["usage"].is_null() && chunk.get("usage").is_some(), "usage: null on every other chunk");
            assert_eq!(chunk["id"], usage_chunk["id"]);
        }
        assert_eq!(others.last().unwrap()["choices"][0]["finish_reason"], "stop");
        // Without include_usage there is no usage chunk and no usage key.
        let request = json!({ "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": "count" }] });
        let plain = chunks(&sse_events(gateway.post("/v1/chat/completions", &key, &request).await).await);
        assert!(plain.iter().all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty()));
    }
}

#[tokio::test]
async fn client_tools_go_to_the_model_and_its_calls_come_back_to_the_client() {
    for wire in Wire::ALL {
        let gateway = Gateway::start(wire);
        gateway.mock.enqueue(Script::tool_call(WEATHER_TOOL, json!({ "city": "Oslo" })));
        gateway.mock.set_script(Script::reply("It is sunny in Oslo."));
        let (_, key) = gateway.tenant("acme").await;
        let mut messages = vec![json!({ "role": "user", "content": "Weather in Oslo?" })];
        let request = json!({ "model": MODEL, "messages": messages, "tools": weather_tools(), "tool_choice": "auto" });
        let body = expect_json(gateway.post("/v1/chat/completions", &key, &request).await, 200).await;
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{wire:?}");
        let message = &body["choices"][0]["message"];
        assert!(message["content"].is_null());
        let call = &message["tool_calls"][0];
        assert_eq!((call["type"].as_str(), call["function"]["name"].as_str()), (Some("function"), Some(WEATHER_TOOL)));
        let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({ "city": "Oslo" }));
        assert_eq!(gateway.mock.chat_requests()[0].tools_offered(), Some(vec![WEATHER_TOOL.to_string()]));
        assert_eq!(gateway.mock.chat_requests().len(), 1, "{wire:?}: the server never runs a client's tool");

        messages.push(message.clone());
        messages.push(json!({ "role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C" }));
        let request = json!({ "model": MODEL, "messages": messages, "tools": weather_tools() });
        let body = expect_json(gateway.post("/v1/chat/completions", &key, &request).await, 200).await;
        assert_eq!(body["choices"][0]["message"]["content"], "It is sunny in Oslo.");
        let sent = gateway.mock.chat_requests().pop().unwrap();
        let result = &sent.tool_results()[0];
        assert_eq!(result.content, "sunny, 21C");
        match wire {
            Wire::Ollama => assert_eq!(result.tool_name.as_deref(), Some(WEATHER_TOOL)),
            _ => assert_eq!(result.call_id.as_deref(), call["id"].as_str()),
        }
        assert_eq!(sent.tool_calls_sent()[0].arguments, json!({ "city": "Oslo" }), "{wire:?}");
    }
}

#[tokio::test]
async fn streamed_tool_calls_arrive_as_argument_deltas() {
    for wire in Wire::ALL {
        let gateway = Gateway::start(wire);
        gateway.mock.set_script(Script::tool_calls(&[
            (WEATHER_TOOL, json!({ "city": "Oslo" })),
            (WEATHER_TOOL, json!({ "city": "Bergen" })),
        ]));
        let (_, key) = gateway.tenant("acme").await;
        let request = json!({ "model": MODEL, "stream": true, "tools": weather_tools(),
                              "messages": [{ "role": "user", "content": "Weather in Oslo and Bergen?" }] });
        let all = chunks(&sse_events(gateway.post("/v1/chat/completions", &key, &request).await).await);
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for chunk in &all {
            for delta in chunk.pointer("/choices/0/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let index = delta["index"].as_u64().unwrap() as usize;
                if let Some(id) = delta["id"].as_str() {
                    assert_eq!(index, calls.len(), "{wire:?}: calls are numbered in order");
                    calls.push((
                        id.to_string(),
                        delta["function"]["name"].as_str().unwrap().to_string(),
                        String::new(),
                    ));
                }
                calls[index].2.push_str(delta["function"]["arguments"].as_str().unwrap_or_default());
            }
        }
        assert_eq!(calls.len(), 2, "{wire:?}: {all:?}");
        let cities: Vec<Value> =
            calls.iter().map(|c| serde_json::from_str::<Value>(&c.2).unwrap()["city"].clone()).collect();
        assert_eq!(cities, vec![json!("Oslo"), json!("Bergen")]);
        assert_eq!(all.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
    }
}

#[tokio::test]
async fn an_agent_model_runs_its_own_tools_on_the_server() {
    let gateway = Gateway::builder(Wire::OpenAi)
        .config(
            r#"
[[agents]]
name = "mathbot"
model = "balanced"
system_prompt = "You compute."
tools = ["calculator"]
"#,
        )
        .start();
    gateway.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "6*7" })));
    gateway.mock.set_script(Script::reply("The answer is 42."));
    let (tenant_id, key) = gateway.tenant("acme").await;
    let request = json!({ "model": "agent:mathbot", "messages": [{ "role": "user", "content": "6 times 7?" }] });
    let body = expect_json(gateway.post("/v1/chat/completions", &key, &request).await, 200).await;
    assert_eq!(body["model"], "agent:mathbot");
    assert_eq!(body["choices"][0]["message"]["content"], "The answer is 42.");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none(), "server-side tools are not shown as calls");
    let requests = gateway.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].transcript()[0], ("system".to_string(), "You compute.".to_string()));
    assert!(requests[1].tool_results()[0].content.contains("\"result\":\"42\""));

    // The run is recorded under the agent's name for the tenant; a bare model's under the model's.
    let (tenant, key) = (tenant_id, key);
    expect_json(
        gateway
            .post(
                "/v1/chat/completions",
                &key,
                &json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] }),
            )
            .await,
        200,
    )
    .await;
    for (agent, tokens) in [("mathbot", 2 * (11 + 7)), (MODEL, 11 + 7)] {
        let runs = gateway.server.admin_get(&format!("/api/admin/tenants/{tenant}/agents/{agent}/runs")).await;
        assert_eq!(runs["total"], 1, "{agent}: {runs}");
        assert_eq!(runs["runs"][0]["status"], "completed");
        let run = &runs["runs"][0];
        assert_eq!(run["input_tokens"].as_u64().unwrap() + run["output_tokens"].as_u64().unwrap(), tokens, "{run}");
    }
}

#[tokio::test]
async fn errors_come_in_openai_shape_with_the_sdk_statuses() {
    let gateway = Gateway::builder(Wire::OpenAi)
        .config("[quotas.free]\nmonthly_requests = 1\nmonthly_tokens = 100000\ndaily_requests = 10")
        .start();
    let (_, key) = gateway.tenant("acme").await;
    let hi = json!([{ "role": "user", "content": "hi" }]);

    let response =
        gateway.server.client().post(gateway.server.url("/v1/chat/completions")).json(&json!({})).send().await.unwrap();
    let body = error_body(response, 401).await;
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let body = error_body(gateway.post("/v1/chat/completions", "ares_wrong_key", &json!({})).await, 401).await;
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let body =
        error_body(gateway.post("/v1/chat/completions", &key, &json!({ "model": "nope", "messages": hi })).await, 404)
            .await;
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["param"].as_str()),
        (Some("model_not_found"), Some("model"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
    let body = error_body(
        gateway.post("/v1/chat/completions", &key, &json!({ "model": "agent:nobody", "messages": hi })).await,
        404,
    )
    .await;
    assert_eq!(body["error"]["code"], "model_not_found");
    // The router is not a model either, in any case.
    for router in ["agent:router", "agent:Router"] {
        let body = error_body(
            gateway.post("/v1/chat/completions", &key, &json!({ "model": router, "messages": hi })).await,
            404,
        )
        .await;
        assert_eq!(body["error"]["code"], "model_not_found", "{router}");
    }

    let body = error_body(gateway.post("/v1/chat/completions", &key, &json!({ "model": MODEL })).await, 400).await;
    assert_eq!(
        body["error"],
        json!({ "message": "Missing required field: messages", "type": "invalid_request_error", "param": "messages", "code": null })
    );
    let body = error_body(
        gateway.post("/v1/chat/completions", &key, &json!({ "model": MODEL, "messages": hi, "n": 2 })).await,
        400,
    )
    .await;
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let response = gateway
        .server
        .v1(reqwest::Method::POST, "/v1/chat/completions", &key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body = error_body(response, 400).await;
    assert_eq!(body["error"]["message"], "Invalid JSON in request body");

    gateway.mock.set_script(Script::error(500, "upstream exploded"));
    let body =
        error_body(gateway.post("/v1/chat/completions", &key, &json!({ "model": MODEL, "messages": hi })).await, 502)
            .await;
    assert_eq!(body["error"]["type"], "server_error");

    // A tenant on a one-request quota: the second call is a 429 with Retry-After.
    let free = gateway.server.provision("small", "free", "generic").await;
    let free_key = free["raw_api_key"].as_str().unwrap();
    gateway.mock.set_script(Script::reply("ok"));
    expect_json(gateway.post("/v1/chat/completions", free_key, &json!({ "model": MODEL, "messages": hi })).await, 200)
        .await;
    let response = gateway.post("/v1/chat/completions", free_key, &json!({ "model": MODEL, "messages": hi })).await;
    assert!(header(&response, "retry-after").is_some());
    let body = error_body(response, 429).await;
    assert_eq!(body["error"]["code"], "insufficient_quota");
}

#[tokio::test]
async fn an_upstream_failure_mid_stream_ends_with_an_error_chunk() {
    for wire in Wire::ALL {
        let gateway = Gateway::start(wire);
        gateway.mock.set_script(Script::reply("one two three four five six").truncated());
        let (_, key) = gateway.tenant("acme").await;
        let request = json!({ "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": "count" }] });
        let events = sse_events(gateway.post("/v1/chat/completions", &key, &request).await).await;
        let last = events.last().unwrap().json();
        assert_eq!(last["error"]["type"], "server_error", "{wire:?}: {events:?}");
        assert!(events.iter().all(|e| e.data != "[DONE]"));
    }
}

#[tokio::test]
async fn tier_names_work_wherever_a_model_is_named() {
    let gateway = Gateway::start(Wire::Ollama);
    let token = gateway.user().await;
    // A user agent naming tiers: one a model declares, one none does (the default model runs).
    for (name, tier) in [("tiered", "balanced"), ("fallback", "powerful")] {
        let body = json!({ "name": name, "model": tier, "system_prompt": "You help.", "tools": [] });
        expect_json(gateway.post("/api/user/agents", &token, &body).await, 201).await;
        let answer = gateway.chat_ok(&token, &json!({ "message": "hi", "agent_type": name })).await;
        assert_eq!(answer["model"], MODEL, "{tier}");
    }
    // The `model` field of /api/chat takes a tier, and `agent:<name>` names an agent.
    let answer =
        gateway.chat_ok(&token, &json!({ "message": "hi", "agent_type": "tiered", "model": "balanced" })).await;
    assert_eq!(answer["model"], MODEL);
    let answer = gateway.chat_ok(&token, &json!({ "message": "hi", "model": "agent:tiered" })).await;
    assert_eq!(answer["agent"], "tiered");
    let sent = gateway.mock.chat_requests().pop().unwrap();
    assert_eq!(sent.body["model"], model_id(Wire::Ollama));
    // Something that is neither stays a 422 on the ARES routes.
    let body = json!({ "name": "broken", "model": "no-such-model", "system_prompt": "x", "tools": [] });
    assert_eq!(gateway.post("/api/user/agents", &token, &body).await.status(), 422);
}

#[tokio::test]
async fn chat_routes_take_long_conversations_up_to_their_own_limit() {
    // Small limits, so a refused body still fits the socket buffers (a client still writing
    // when the server answers 413 and closes would see a reset instead of the answer).
    let limits = "[server]\nmax_body_bytes = 32768\nmax_chat_body_bytes = 65536";
    let gateway = Gateway::builder(Wire::OpenAi).config(limits).start();
    let (_, key) = gateway.tenant("acme").await;
    // 48 KiB of history: over the general body limit, within the chat routes' own.
    let long = "tool output ".repeat(48 * 1024 / 12);
    let messages = json!([{ "role": "user", "content": long }, { "role": "assistant", "content": "ok" },
                          { "role": "user", "content": "summarise" }]);
    let body = expect_json(
        gateway.post("/v1/chat/completions", &key, &json!({ "model": MODEL, "messages": messages })).await,
        200,
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let anthropic = json!({ "model": MODEL, "max_tokens": 10, "messages": messages });
    assert_eq!(gateway.post("/v1/messages", &key, &anthropic).await.status(), 200);
    // The ARES route keeps the default limit, and the chat routes refuse beyond theirs.
    assert_eq!(gateway.post("/v1/chat", &key, &json!({ "message": long })).await.status(), 413);
    let huge = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "x".repeat(66 * 1024) }] });
    let body = error_body(gateway.post("/v1/chat/completions", &key, &huge).await, 413).await;
    assert_eq!(body["error"]["code"], "request_too_large");
}
