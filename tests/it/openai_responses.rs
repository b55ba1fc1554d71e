//! `POST /v1/responses` (OpenAI's Responses API) against a mock provider of each wire format:
//! the response object, the typed stream events and their order, instructions and input items
//! reaching the upstream, a client function-tool round trip (plain and streamed), `agent:<name>`,
//! and errors in OpenAI's shape (before and during a stream).

use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, SseEvent, calc_agent, sse_events};
use crate::harness::{expect_json, header};
use crate::mock_provider::{Script, SentToolResult, Wire};

/// An OpenAI-shaped error: `{"error": {"message", "type", "param", "code"}}` with `status`.
pub async fn openai_error(response: reqwest::Response, status: u16, code: Option<&str>) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "no message in {body}");
    assert!(error["type"].is_string(), "no type in {body}");
    assert!(error.get("param").is_some(), "no param in {body}");
    assert_eq!(error["code"].as_str(), code, "wrong code in {body}");
    body
}

pub fn pair(role: &str, text: &str) -> (String, String) {
    (role.to_string(), text.to_string())
}

/// Event names, asserting each event's `type` repeats its name and `sequence_number` counts up
/// from 0.
fn names(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let name = event.name.clone().unwrap_or_else(|| panic!("every event is named: {event:?}"));
            let data = event.json();
            assert_eq!(data["type"], name.as_str(), "{event:?}");
            assert_eq!(data["sequence_number"], i, "{event:?}");
            name
        })
        .collect()
}

/// The payloads of the events named `name`.
fn of(events: &[SseEvent], name: &str) -> Vec<Value> {
    events.iter().filter(|e| e.name.as_deref() == Some(name)).map(SseEvent::json).collect()
}

const WEATHER_TOOL: &str = "get_weather";

fn weather_tools() -> Value {
    json!([{
        "type": "function",
        "name": WEATHER_TOOL,
        "description": "The weather in a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] },
    }])
}

#[tokio::test]
async fn a_plain_response_in_every_wire_format() {
    let reply = "Hello there, friend.";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (tenant, key) = gw.tenant("responder").await;
        gw.mock.set_script(Script::reply(reply).usage(12, 5));

        let body = json!({ "model": MODEL, "input": "Hi", "instructions": "Be brief.", "temperature": 0.5 });
        let response = gw.post("/v1/responses", &key, &body).await;
        assert!(header(&response, "x-ratelimit-remaining").is_some(), "governed like the rest of /v1");
        let answer = expect_json(response, 200).await;
        assert!(answer["id"].as_str().unwrap().starts_with("resp_"), "{answer}");
        assert_eq!(answer["object"], "response");
        assert!(answer["created_at"].is_i64());
        assert_eq!((answer["status"].as_str(), answer["model"].as_str()), (Some("completed"), Some(MODEL)));
        assert_eq!((&answer["error"], &answer["incomplete_details"]), (&Value::Null, &Value::Null));
        let output = answer["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{wire:?}: {answer}");
        assert_eq!(output[0]["type"], "message");
        assert!(output[0]["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!((output[0]["role"].as_str(), output[0]["status"].as_str()), (Some("assistant"), Some("completed")));
        assert_eq!(output[0]["content"], json!([{ "type": "output_text", "text": reply, "annotations": [] }]));
        assert_eq!(answer["output_text"], reply);
        assert_eq!(
            answer["usage"],
            json!({
                "input_tokens": 12, "input_tokens_details": { "cached_tokens": 0 },
                "output_tokens": 5, "output_tokens_details": { "reasoning_tokens": 0 },
                "total_tokens": 17,
            }),
            "{wire:?}: usage from upstream"
        );
        // The request's settings come back, as the SDKs' Response model wants them.
        assert_eq!(answer["instructions"], "Be brief.");
        assert_eq!(answer["temperature"], 0.5);
        assert_eq!((&answer["tools"], &answer["tool_choice"]), (&json!([]), &json!("auto")));
        assert_eq!(answer["parallel_tool_calls"], true);
        assert_eq!(answer["text"], json!({ "format": { "type": "text" } }));

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 1, "{wire:?}");
        assert!(!requests[0].is_stream());
        let expected = [pair("system", "Be brief."), pair("user", "Hi")];
        assert_eq!(requests[0].text_turns(), expected, "{wire:?}: instructions are the system message");

        let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/usage")).await;
        assert_eq!(usage["total_tokens"], 17, "{wire:?}: metered");
    }
}

#[tokio::test]
async fn a_streamed_response_sends_typed_events_in_order() {
    let reply = "Events arrive one by one.";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (tenant, key) = gw.tenant("streamer").await;
        gw.mock.set_script(Script::reply(reply).usage(9, 6));

        let body = json!({ "model": MODEL, "input": "Go", "stream": true });
        let events = sse_events(gw.post("/v1/responses", &key, &body).await).await;
        let names = names(&events);
        let deltas = of(&events, "response.output_text.delta");
        let mut expected = vec!["response.created", "response.in_progress", "response.output_item.added"];
        expected.push("response.content_part.added");
        expected.extend(std::iter::repeat_n("response.output_text.delta", deltas.len()));
        expected.extend([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]);
        assert_eq!(names, expected, "{wire:?}");
        assert!(deltas.len() > 1, "{wire:?}: the text streams in pieces");

        let created = &events[0].json()["response"];
        assert_eq!((created["status"].as_str(), &created["output"]), (Some("in_progress"), &json!([])));
        let id = created["id"].as_str().unwrap().to_string();
        let item = &of(&events, "response.output_item.added")[0];
        let item_id = item["item"]["id"].as_str().unwrap();
        assert_eq!((item["output_index"].as_u64(), item["item"]["type"].as_str()), (Some(0), Some("message")));
        let text: String = deltas
            .iter()
            .map(|d| {
                assert_eq!((d["item_id"].as_str(), d["output_index"].as_u64()), (Some(item_id), Some(0)));
                assert_eq!(d["content_index"], 0);
                d["delta"].as_str().unwrap()
            })
            .collect();
        assert_eq!(text, reply, "{wire:?}: the deltas concatenate to the reply");
        assert_eq!(of(&events, "response.output_text.done")[0]["text"], reply);
        assert_eq!(of(&events, "response.content_part.done")[0]["part"]["text"], reply);
        let done = &of(&events, "response.output_item.done")[0]["item"];
        assert_eq!((done["status"].as_str(), &done["content"][0]["text"]), (Some("completed"), &json!(reply)));

        let completed = &events.last().unwrap().json()["response"];
        assert_eq!((completed["id"].as_str(), completed["status"].as_str()), (Some(id.as_str()), Some("completed")));
        assert_eq!(completed["output"][0]["content"][0]["text"], reply);
        assert_eq!(
            (&completed["usage"]["input_tokens"], &completed["usage"]["output_tokens"]),
            (&json!(9), &json!(6)),
            "{wire:?}: usage from upstream"
        );
        assert_eq!(completed["usage"]["total_tokens"], 15);
        assert!(gw.mock.requests()[0].is_stream(), "{wire:?}: streamed from the provider too");
        let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/usage")).await;
        assert_eq!(usage["total_tokens"], 15, "{wire:?}: a stream is metered when it ends");
    }
}

#[tokio::test]
async fn input_items_become_the_conversation() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("history").await;
        let body = json!({
            "model": MODEL,
            "instructions": "Answer in French.",
            "input": [
                { "role": "user", "content": "first question" },
                { "type": "message", "role": "assistant", "content": [{ "type": "output_text", "text": "first answer" }] },
                { "type": "message", "role": "user", "content": [{ "type": "input_text", "text": "second question" }] },
            ],
        });
        expect_json(gw.post("/v1/responses", &key, &body).await, 200).await;
        let expected = [
            pair("system", "Answer in French."),
            pair("user", "first question"),
            pair("assistant", "first answer"),
            pair("user", "second question"),
        ];
        assert_eq!(gw.mock.requests()[0].text_turns(), expected, "{wire:?}");
    }
}

#[tokio::test]
async fn a_function_tool_round_trips() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("tools").await;
        let arguments = json!({ "city": "Paris" });
        gw.mock.enqueue(Script::tool_call(WEATHER_TOOL, arguments.clone()).usage(20, 4));
        gw.mock.set_script(Script::reply("It is 18C and sunny in Paris."));

        let question = json!({ "role": "user", "content": "Weather in Paris?" });
        let body = json!({ "model": MODEL, "input": [question], "tools": weather_tools(), "tool_choice": "auto" });
        let first = expect_json(gw.post("/v1/responses", &key, &body).await, 200).await;
        assert_eq!(first["status"], "completed");
        let output = first["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{wire:?}: only the call, no empty message: {first}");
        let call = &output[0];
        assert_eq!((call["type"].as_str(), call["name"].as_str()), (Some("function_call"), Some(WEATHER_TOOL)));
        assert_eq!(call["status"], "completed");
        assert!(call["id"].as_str().unwrap().starts_with("fc_"));
        let call_id = call["call_id"].as_str().unwrap().to_string();
        assert!(!call_id.is_empty());
        let sent: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(sent, arguments, "{wire:?}: arguments are a JSON string");
        assert_eq!(first["tools"], weather_tools(), "the tools are echoed");
        assert_eq!(gw.mock.requests()[0].tools_offered(), Some(vec![WEATHER_TOOL.to_string()]), "{wire:?}");

        // The client runs the tool and sends the call and its output back.
        let output_item = json!({ "type": "function_call_output", "call_id": call_id, "output": "18C and sunny" });
        let body = json!({ "model": MODEL, "input": [question, call, output_item], "tools": weather_tools() });
        let second = expect_json(gw.post("/v1/responses", &key, &body).await, 200).await;
        assert_eq!(second["output_text"], "It is 18C and sunny in Paris.", "{wire:?}");
        assert_eq!(second["output"][0]["type"], "message");

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 2, "{wire:?}: the server never runs a client's tool");
        let echoed = requests[1].tool_calls_sent();
        assert_eq!(echoed.len(), 1, "{wire:?}");
        assert_eq!((echoed[0].name.as_str(), &echoed[0].arguments), (WEATHER_TOOL, &arguments), "{wire:?}");
        let result = SentToolResult {
            call_id: (wire != Wire::Ollama).then(|| call_id.clone()),
            tool_name: (wire == Wire::Ollama).then(|| WEATHER_TOOL.to_string()),
            content: "18C and sunny".into(),
        };
        assert_eq!(requests[1].tool_results(), [result], "{wire:?}: the tool's output reached the model");
    }
}

#[tokio::test]
async fn a_streamed_function_call_has_its_own_item_and_argument_deltas() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("stream-tools").await;
        let arguments = json!({ "city": "Oslo" });
        gw.mock.set_script(Script::tool_call(WEATHER_TOOL, arguments.clone()).text("Let me check. "));

        let body = json!({ "model": MODEL, "input": "Weather in Oslo?", "tools": weather_tools(), "stream": true });
        let events = sse_events(gw.post("/v1/responses", &key, &body).await).await;
        let names = names(&events);
        let position = |name: &str| names.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name}: {names:?}"));
        assert_eq!(names.last().map(String::as_str), Some("response.completed"), "{wire:?}");

        let added = of(&events, "response.output_item.added");
        assert_eq!(added.len(), 2, "{wire:?}: a message, then the call: {names:?}");
        assert_eq!(added[0]["item"]["type"], "message");
        let call = &added[1];
        assert_eq!((call["output_index"].as_u64(), call["item"]["type"].as_str()), (Some(1), Some("function_call")));
        assert_eq!((call["item"]["name"].as_str(), call["item"]["arguments"].as_str()), (Some(WEATHER_TOOL), Some("")));
        let item_id = call["item"]["id"].as_str().unwrap();
        let text: String =
            of(&events, "response.output_text.delta").iter().map(|d| d["delta"].as_str().unwrap()).collect();
        assert_eq!(text, "Let me check. ", "{wire:?}");
        let item_done = of(&events, "response.output_item.done");
        assert_eq!(item_done[0]["item"]["type"], "message", "{wire:?}: the message closes before the call opens");
        assert!(
            position("response.output_item.done")
                < names.iter().rposition(|n| n == "response.output_item.added").unwrap()
        );

        let streamed: String = of(&events, "response.function_call_arguments.delta")
            .iter()
            .map(|d| {
                assert_eq!((d["item_id"].as_str(), d["output_index"].as_u64()), (Some(item_id), Some(1)));
                d["delta"].as_str().unwrap()
            })
            .collect();
        let parsed: Value = serde_json::from_str(&streamed).unwrap();
        assert_eq!(parsed, arguments, "{wire:?}: the argument deltas concatenate to the arguments");
        let args_done = &of(&events, "response.function_call_arguments.done")[0];
        assert_eq!(
            (args_done["arguments"].as_str(), args_done["name"].as_str()),
            (Some(streamed.as_str()), Some(WEATHER_TOOL))
        );
        assert_eq!(item_done[1]["item"]["status"], "completed");

        let completed = &events.last().unwrap().json()["response"];
        let output = completed["output"].as_array().unwrap();
        assert_eq!(output.len(), 2, "{wire:?}: {completed}");
        assert_eq!(output[1]["call_id"], call["item"]["call_id"]);
        assert_eq!(output[1]["arguments"], streamed.as_str());
        assert_eq!(completed["output_text"], "Let me check. ");
    }
}

#[tokio::test]
async fn an_agent_model_runs_the_agent_with_its_server_side_tools() {
    for wire in Wire::ALL {
        let gw = Gateway::builder(wire).config(&calc_agent("calc")).start();
        let (_, key) = gw.tenant("agents").await;
        gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "6*7" })).usage(10, 3));
        gw.mock.set_script(Script::reply("6*7 is 42.").usage(30, 6));

        let body = json!({ "model": "agent:calc", "input": "What is 6*7?" });
        let answer = expect_json(gw.post("/v1/responses", &key, &body).await, 200).await;
        assert_eq!(answer["model"], "agent:calc");
        let output = answer["output"].as_array().unwrap();
        assert_eq!(output.len(), 1, "{wire:?}: the agent's tool calls are not shown: {answer}");
        assert_eq!(answer["output_text"], "6*7 is 42.");
        assert_eq!(answer["usage"]["total_tokens"], 10 + 3 + 30 + 6, "{wire:?}: both model calls count");

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 2, "{wire:?}");
        assert_eq!(requests[0].transcript()[0], pair("system", "You compute things."), "{wire:?}");
        let results = requests[1].tool_results();
        assert_eq!(results.len(), 1, "{wire:?}");
        assert!(results[0].content.contains("42"), "{wire:?}: the server ran the calculator: {results:?}");

        // Streamed too: one message with the final text.
        gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "6*7" })));
        let body = json!({ "model": "agent:calc", "input": "What is 6*7?", "stream": true });
        let events = sse_events(gw.post("/v1/responses", &key, &body).await).await;
        names(&events);
        let completed = &events.last().unwrap().json()["response"];
        assert_eq!(completed["status"], "completed", "{wire:?}");
        assert_eq!(completed["output_text"], "6*7 is 42.");
        assert!(of(&events, "response.function_call_arguments.delta").is_empty());
    }
}

#[tokio::test]
async fn errors_come_in_openai_shape() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("errors").await;
    let post = |body: Value| {
        let (gw, key) = (&gw, key.clone());
        async move { gw.post("/v1/responses", &key, &body).await }
    };

    let missing = openai_error(post(json!({ "input": "Hi" })).await, 400, None).await;
    assert_eq!(missing["error"]["type"], "invalid_request_error");
    assert_eq!(missing["error"]["param"], "model");
    let unknown =
        openai_error(post(json!({ "model": "no-such-model", "input": "Hi" })).await, 404, Some("model_not_found"))
            .await;
    assert!(unknown["error"]["message"].as_str().unwrap().contains("no-such-model"), "{unknown}");
    openai_error(post(json!({ "model": "agent:nobody", "input": "Hi" })).await, 404, Some("model_not_found")).await;
    let previous = json!({ "model": MODEL, "input": "Hi", "previous_response_id": "resp_123" });
    let previous = openai_error(post(previous).await, 400, None).await;
    assert_eq!(previous["error"]["message"], "previous_response_id is not supported: send the whole conversation");
    openai_error(post(json!({ "model": MODEL })).await, 400, None).await;
    openai_error(post(json!({ "model": MODEL, "input": [] })).await, 400, None).await;
    let hosted = json!({ "model": MODEL, "input": "Hi", "tools": [{ "type": "web_search_preview" }] });
    let hosted = openai_error(post(hosted).await, 400, None).await;
    assert!(hosted["error"]["message"].as_str().unwrap().contains("web_search_preview"), "{hosted}");
    let image = json!({ "model": MODEL, "input": [{ "role": "user", "content": [{ "type": "input_image", "image_url": "x" }] }] });
    openai_error(post(image).await, 400, None).await;
    let reference = json!({ "model": MODEL, "input": [{ "type": "item_reference", "id": "msg_1" }] });
    openai_error(post(reference).await, 400, None).await;
    assert!(gw.mock.requests().is_empty(), "nothing invalid reached the provider");

    // `store: true` is accepted (nothing is kept either way).
    let stored = expect_json(post(json!({ "model": MODEL, "input": "Hi", "store": true })).await, 200).await;
    assert_eq!(stored["store"], false);

    gw.mock.set_script(Script::error(500, "upstream exploded"));
    let upstream =
        openai_error(post(json!({ "model": MODEL, "input": "Hi" })).await, 502, Some("upstream_error")).await;
    assert_eq!(upstream["error"]["type"], "server_error");
}

#[tokio::test]
async fn a_failure_mid_stream_ends_with_response_failed() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("failing").await;
        gw.mock.set_script(Script::reply("this answer will be cut short somewhere").truncated());

        let body = json!({ "model": MODEL, "input": "Go", "stream": true });
        let events = sse_events(gw.post("/v1/responses", &key, &body).await).await;
        let names = names(&events);
        assert_eq!(names[0], "response.created");
        assert_eq!(names.last().map(String::as_str), Some("response.failed"), "{wire:?}: {names:?}");
        assert!(!names.iter().any(|n| n == "response.completed"));
        let failed = &events.last().unwrap().json()["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["error"]["code"], "server_error", "{wire:?}: {failed}");
        assert!(failed["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        for item in failed["output"].as_array().unwrap() {
            assert_eq!(item["status"], "incomplete", "{wire:?}: {item}");
        }
    }
}

#[tokio::test]
async fn settings_reach_the_upstream() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("settings").await;
    let schema = json!({ "type": "object", "properties": { "n": { "type": "integer" } } });
    let body = json!({
        "model": MODEL, "input": "A number, please", "max_output_tokens": 50, "top_p": 0.75, "user": "u-1",
        "text": { "format": { "type": "json_schema", "name": "number", "schema": schema, "strict": true } },
        "tools": weather_tools(), "tool_choice": { "type": "function", "name": WEATHER_TOOL }, "parallel_tool_calls": false,
    });
    let answer = expect_json(gw.post("/v1/responses", &key, &body).await, 200).await;
    assert_eq!(answer["max_output_tokens"], 50);
    assert_eq!(answer["text"]["format"]["name"], "number", "text is echoed");
    assert_eq!(answer["parallel_tool_calls"], false);

    let sent = &gw.mock.requests()[0].body;
    assert_eq!((&sent["max_tokens"], &sent["top_p"], &sent["user"]), (&json!(50), &json!(0.75), &json!("u-1")));
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);
    assert_eq!(sent["tool_choice"]["function"]["name"], WEATHER_TOOL);
    assert_eq!(sent["parallel_tool_calls"], false);
}
