//! `/api/chat/stream` (raw text events) and `/v1/chat/stream` (JSON deltas) against a mock
//! provider of each wire format (API.md §1.4, §1.10, §6): the event formats, persistence after
//! the stream, errors before and during the stream, true streaming, and client hang-ups.

use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::{Gateway, SseEvent, SseReader, sse_events};
use crate::harness::{expect_error, expect_json, header};
use crate::mock_provider::{Script, Wire};

/// How many chunks each wire format sends before its first text delta, plus that delta.
fn chunks_through_first_delta(wire: Wire) -> usize {
    match wire {
        // The role chunk, then the first delta.
        Wire::OpenAi => 2,
        // message_start, content_block_start, ping, then the first delta.
        Wire::Anthropic => 4,
        Wire::Ollama => 1,
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

fn context_id(response: &reqwest::Response) -> String {
    let id = header(response, "x-context-id").expect("an X-Context-Id header");
    assert!(!id.is_empty());
    id
}

/// The run statistics of `agent` for `tenant`.
async fn stats(gw: &Gateway, tenant: &str, agent: &str) -> Value {
    gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/agents/{agent}/stats")).await
}

#[tokio::test]
async fn jwt_stream_sends_raw_text_chunks_and_persists_the_exchange() {
    let reply = "Streaming works in every format.";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let token = gw.user().await;
        gw.mock.enqueue(Script::reply("product").usage(3, 1));
        gw.mock.set_script(Script::reply(reply).usage(20, 5));

        let response = gw.post("/api/chat/stream", &token, &json!({ "message": "Tell me" })).await;
        let context = context_id(&response);
        assert_eq!(header(&response, "x-agent").as_deref(), Some("product"));
        let events = sse_events(response).await;
        assert!(events.iter().all(|e| e.name.is_none()), "{wire:?}: {events:?}");
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, words(reply), "{wire:?}: one event per provider delta, nothing else");
        assert_eq!(data.concat(), reply);

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 2);
        assert!(!requests[0].is_stream(), "routing is a plain call");
        assert!(requests[1].is_stream(), "{wire:?}: the answer is streamed from the provider");

        let stored = expect_json(gw.get(&format!("/api/conversations/{context}"), &token).await, 200).await;
        let messages: Vec<(&str, &str)> = stored["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        assert_eq!(messages, [("user", "Tell me"), ("assistant", reply)], "{wire:?}");
    }
}

/// Deltas of `/v1/chat/stream` events before the last, asserting their shape.
fn deltas(events: &[SseEvent]) -> String {
    let (_, body) = events.split_last().expect("at least the final event");
    body.iter()
        .map(|event| {
            assert!(event.name.is_none(), "{event:?}");
            let value = event.json();
            assert_eq!(value.as_object().unwrap().len(), 2, "only delta and finish_reason: {value}");
            assert_eq!(value["finish_reason"], Value::Null);
            value["delta"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn v1_stream_sends_json_deltas_and_a_final_event() {
    let reply = "Deltas as JSON objects.";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (tenant, key) = gw.tenant("streamer").await;
        gw.mock.set_script(Script::reply(reply).usage(8, 4));

        let response = gw.post("/v1/chat/stream", &key, &json!({ "message": "go", "agent_type": "product" })).await;
        let context = context_id(&response);
        assert!(header(&response, "x-ratelimit-remaining").is_some(), "quota headers come with the head");
        let events = sse_events(response).await;
        assert_eq!(deltas(&events), reply, "{wire:?}");
        assert_eq!(events.len(), words(reply).len() + 1);
        assert!(events.iter().all(|e| e.data != "[DONE]"));
        let last = events.last().unwrap();
        assert!(last.name.is_none());
        assert_eq!(
            last.json(),
            json!({ "delta": "", "finish_reason": "stop", "tokens_used": 12, "context_id": context }),
            "{wire:?}"
        );

        let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/usage")).await;
        assert_eq!((usage["total_tokens"].as_u64(), usage["total_api_calls"].as_u64()), (Some(12), Some(1)));
        let stats = stats(&gw, &tenant, "product").await;
        assert_eq!((stats["total_runs"].as_u64(), stats["successful_runs"].as_u64()), (Some(1), Some(1)));
        assert_eq!((stats["total_input_tokens"].as_u64(), stats["total_output_tokens"].as_u64()), (Some(8), Some(4)));
    }
}

#[tokio::test]
async fn errors_before_the_stream_are_plain_json() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let (_, key) = gw.tenant("early").await;
    for (path, bearer) in [("/api/chat/stream", token.as_str()), ("/v1/chat/stream", key.as_str())] {
        let cases = [
            (json!({ "message": "hi", "agent_type": "nope" }), 404, "NOT_FOUND"),
            (json!({ "message": "hi", "agent_type": "router" }), 400, "INVALID_INPUT"),
            (json!({ "message": "hi", "model": "x" }), 422, "UNPROCESSABLE"),
            (json!({ "agent_type": "product" }), 400, "INVALID_INPUT"),
        ];
        for (body, status, code) in cases {
            expect_error(gw.post(path, bearer, &body).await, status, code).await;
        }
        let client = gw.server.client();
        let response = client.post(gw.server.url(path)).bearer_auth(bearer).body("{nope").send().await.unwrap();
        let error = expect_error(response, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], "Invalid JSON in request body");
        let response = client.post(gw.server.url(path)).json(&json!({ "message": "hi" })).send().await.unwrap();
        expect_error(response, 401, "AUTH_MISSING").await;
    }
    assert!(gw.mock.requests().is_empty());
}

#[tokio::test]
async fn mid_stream_failures_end_with_an_error_event() {
    let reply = "one two three four five six seven eight";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let provider = gw.provider();
        let token = gw.user().await;
        let (tenant, key) = gw.tenant("faulty").await;
        let ask = json!({ "message": "go", "agent_type": "product" });
        for (failure, script) in
            [("truncated", Script::reply(reply).truncated()), ("malformed", Script::reply(reply).malformed())]
        {
            let case = format!("{wire:?} {failure}");
            let invalid = format!("Provider '{provider}' sent an invalid response");

            gw.mock.set_script(script.clone());
            let response = gw.post("/api/chat/stream", &token, &ask).await;
            let context = context_id(&response);
            let events = sse_events(response).await;
            let (last, text) = events.split_last().unwrap();
            assert!(text.iter().all(|e| e.name.is_none()), "{case}: {events:?}");
            let streamed: String = text.iter().map(|e| e.data.as_str()).collect();
            assert!(!streamed.is_empty() && reply.starts_with(&streamed), "{case}: {streamed:?}");
            assert_eq!(last.name.as_deref(), Some("error"), "{case}: {events:?}");
            let error = last.json();
            assert_eq!(error["code"], "LLM_ERROR");
            assert!(error["error"].as_str().unwrap().starts_with(&invalid), "{case}: {error}");
            let path = format!("/api/conversations/{context}");
            expect_error(gw.get(&path, &token).await, 404, "NOT_FOUND").await;

            gw.mock.set_script(script);
            let events = sse_events(gw.post("/v1/chat/stream", &key, &ask).await).await;
            let streamed = deltas(&events);
            assert!(!streamed.is_empty() && reply.starts_with(&streamed), "{case}: {streamed:?}");
            let last = events.last().unwrap().json();
            assert_eq!((last["delta"].as_str(), last["finish_reason"].as_str()), (Some(""), Some("error")), "{case}");
            assert_eq!(last["code"], "LLM_ERROR");
            assert!(last["error"].as_str().unwrap().starts_with(&invalid), "{case}: {last}");
        }
        let stats = stats(&gw, &tenant, "product").await;
        assert_eq!((stats["total_runs"].as_u64(), stats["failed_runs"].as_u64()), (Some(2), Some(2)), "{wire:?}");
    }
}

#[tokio::test]
async fn the_first_event_arrives_before_the_provider_finishes() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let token = gw.user().await;
        let reply = "first second third";
        gw.mock.set_script(Script::reply(reply).pause_after(chunks_through_first_delta(wire)));

        let response = gw.post("/api/chat/stream", &token, &json!({ "message": "go", "agent_type": "product" })).await;
        let mut reader = SseReader::new(response);
        let first = reader.next_event().await.expect("a first event");
        assert_eq!(first.data, "first ", "{wire:?}");
        let upstream = gw.mock.requests().pop().unwrap();
        assert!(!upstream.finished, "{wire:?}: the provider is still holding back the rest of its answer");

        gw.mock.resume();
        let rest: String = reader.rest().await.iter().map(|e| e.data.clone()).collect();
        assert_eq!(format!("{}{rest}", first.data), reply);
        gw.mock.wait_until("the whole answer sent", |r| r.last().is_some_and(|r| r.finished)).await;
    }
}

#[tokio::test]
async fn a_client_hanging_up_closes_the_provider_stream_and_still_meters() {
    let reply = "word ".repeat(40);
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (tenant, key) = gw.tenant("leaver").await;
        let script = Script::reply(reply.trim_end())
            .pause_after(chunks_through_first_delta(wire))
            .chunk_delay(Duration::from_millis(20));
        gw.mock.set_script(script);

        let response = gw.post("/v1/chat/stream", &key, &json!({ "message": "go", "agent_type": "product" })).await;
        let mut reader = SseReader::new(response);
        let first = reader.next_event().await.expect("a first event").json();
        assert_eq!(first, json!({ "delta": "word ", "finish_reason": null }));
        drop(reader);
        gw.mock.resume();

        // The server notices at its next write, stops reading, and the provider's send fails.
        let requests =
            gw.mock.wait_until("the upstream stream abandoned", |r| r.last().is_some_and(|r| r.abandoned)).await;
        assert!(!requests.last().unwrap().finished, "{wire:?}");

        // What the abandoned answer cost is still recorded, with a failed run (once the server
        // has finished the request in the background).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (stats, usage) = loop {
            let stats = stats(&gw, &tenant, "product").await;
            let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/usage")).await;
            if stats["total_runs"] == 1 && usage["total_tokens"].as_u64().unwrap() > 0 {
                break (stats, usage);
            }
            assert!(std::time::Instant::now() < deadline, "{wire:?}: nothing recorded: {stats} {usage}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(stats["failed_runs"], 1, "{wire:?}: {stats}");
        assert_eq!(usage["total_api_calls"], 1, "{usage}");
        let runs = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/agents/product/runs")).await;
        let run = &runs["runs"][0];
        assert_eq!(run["status"], "failed");
        assert!(run["tokens_used"].as_u64().unwrap() > 0, "{run}");
    }
}

#[tokio::test]
async fn a_client_hanging_up_before_the_first_token_closes_the_provider_stream_and_still_records_the_run() {
    for wire in Wire::ALL {
        // As above: neither the read timeout nor the keep-alive may be what closes the stream.
        let gw = Gateway::builder(wire).read_timeout_secs(120).start();
        let (tenant, key) = gw.tenant("leaver").await;
        // The provider answers with its headers and then nothing (a model still loading): the
        // server has sent the client nothing yet either.
        gw.mock.set_script(Script::reply("too late").pause_after(0));
        let ask = json!({ "message": "go", "agent_type": "product" });
        let request = tokio::spawn(gw.server.v1(reqwest::Method::POST, "/v1/chat/stream", &key).json(&ask).send());
        gw.mock.wait_until("the upstream call", |r| !r.is_empty()).await;
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled(), "{wire:?}: the server answered before any content");

        let requests =
            gw.mock.wait_until("the upstream stream abandoned", |r| r.last().is_some_and(|r| r.abandoned)).await;
        assert!(!requests.last().unwrap().finished, "{wire:?}");
        // The turn is still finished: a failed run that cost nothing.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let stats = stats(&gw, &tenant, "product").await;
            if stats["total_runs"] == 1 {
                break stats;
            }
            assert!(std::time::Instant::now() < deadline, "{wire:?}: no run recorded: {stats}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(stats["failed_runs"], 1, "{wire:?}: {stats}");
    }
}

#[tokio::test]
async fn a_client_hanging_up_while_the_provider_is_silent_closes_its_stream_at_once() {
    for wire in Wire::ALL {
        // A read timeout far beyond the mock's wait guard (10 s) and the keep-alive period (15 s):
        // neither may be what closes the provider's stream.
        let gw = Gateway::builder(wire).read_timeout_secs(120).start();
        let (_, key) = gw.tenant("leaver").await;
        // The provider sends its first words, then nothing until the test resumes it (never).
        gw.mock.set_script(Script::reply("first second third").pause_after(chunks_through_first_delta(wire)));

        let response = gw.post("/v1/chat/stream", &key, &json!({ "message": "go", "agent_type": "product" })).await;
        let mut reader = SseReader::new(response);
        assert_eq!(reader.next_event().await.expect("a first event").json()["delta"], "first ");
        drop(reader);

        // No token will come to make the server write: the server must see the hang-up itself.
        let requests =
            gw.mock.wait_until("the upstream stream abandoned", |r| r.last().is_some_and(|r| r.abandoned)).await;
        assert!(!requests.last().unwrap().finished, "{wire:?}");
    }
}
