//! `/api/chat` and `/v1/chat` against a mock provider of each wire format (API.md §1.3, §1.4,
//! §1.10): the response superset and its headers, routing, history, both request forms, request
//! errors, and how each provider failure becomes an HTTP error; and `GET /api/agents`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, PROVIDER_KEY, model_id, sse_events};
use crate::harness::{TestServer, expect_error, expect_json, header};
use crate::mock_provider::{RecordedRequest, Script, Wire};

const ROUTER_PROMPT_START: &str = "You route a user's request";
const PRODUCT_PROMPT_START: &str = "You are a product specialist.";

/// `(role, text)` pairs as owned strings, for comparing with [`RecordedRequest::text_turns`].
fn turns(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(r, t)| (r.to_string(), t.to_string())).collect()
}

/// The text turns of a request without its system prompt(s).
fn dialogue(request: &RecordedRequest) -> Vec<(String, String)> {
    request.text_turns().into_iter().filter(|(role, _)| role != "system").collect()
}

fn system_prompt(request: &RecordedRequest) -> String {
    let systems: Vec<String> =
        request.text_turns().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect();
    systems.join("\n\n")
}

fn assert_authenticated(wire: Wire, request: &RecordedRequest) {
    match wire {
        Wire::Anthropic => {
            assert_eq!(request.header("x-api-key"), Some(PROVIDER_KEY));
            assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        }
        Wire::OpenAi | Wire::Ollama => {
            assert_eq!(request.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
        }
    }
}

#[tokio::test]
async fn chat_routes_answers_and_reports_usage_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let token = gw.user().await;
        gw.mock.enqueue(Script::reply("product").usage(3, 1));
        gw.mock.set_script(Script::reply("Our best product is the Widget.").usage(20, 5));

        let response = gw.post("/api/chat", &token, &json!({ "message": "Which product should I buy?" })).await;
        let headers = ["x-input-tokens", "x-output-tokens", "x-context-id"].map(|h| header(&response, h));
        let body = expect_json(response, 200).await;
        assert_eq!(body["response"], "Our best product is the Widget.", "{wire:?}");
        assert_eq!(body["content"], body["response"]);
        assert_eq!(body["agent"], "product");
        assert_eq!(body["agent_source"], "system");
        assert_eq!(body["model"], MODEL);
        assert_eq!(body["sources"], Value::Null);
        assert_eq!(body["finish_reason"], "stop");
        assert_eq!(body["tokens_used"], 3 + 1 + 20 + 5, "the router's call counts too");
        let context_id = body["context_id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(context_id).is_ok(), "{body}");
        assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok(), "{body}");
        assert_eq!(headers, [Some("23".to_string()), Some("6".to_string()), Some(context_id.to_string())]);

        let requests = gw.mock.chat_requests();
        assert_eq!(requests.len(), 2, "{wire:?}: one routing call, one answer");
        for request in &requests {
            assert_eq!(request.path, wire.path());
            assert_eq!(request.body["model"], model_id(wire));
            assert!(!request.is_stream(), "{wire:?}: /api/chat does not stream");
            assert_authenticated(wire, request);
        }
        assert!(system_prompt(&requests[0]).starts_with(ROUTER_PROMPT_START), "{:?}", requests[0].body);
        assert_eq!(dialogue(&requests[0]), turns(&[("user", "Which product should I buy?")]));
        assert!(system_prompt(&requests[1]).starts_with(PRODUCT_PROMPT_START), "{:?}", requests[1].body);
        assert_eq!(dialogue(&requests[1]), turns(&[("user", "Which product should I buy?")]));
    }
}

#[tokio::test]
async fn a_router_answer_naming_no_agent_falls_back_to_the_orchestrator() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    gw.mock.enqueue(Script::reply("I cannot decide"));
    gw.mock.set_script(Script::reply("Orchestrated."));
    let body = gw.chat_ok(&token, &json!({ "message": "Something complex" })).await;
    assert_eq!((body["agent"].as_str(), body["response"].as_str()), (Some("orchestrator"), Some("Orchestrated.")));
    let answer = gw.mock.requests().pop().unwrap();
    assert_eq!(answer.tools_offered(), Some(vec!["calculator".to_string(), "web_search".to_string()]));
}

#[tokio::test]
async fn context_id_continues_the_conversation_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let token = gw.user().await;
        gw.mock.enqueue(Script::reply("Nice to meet you, Ada."));
        let first = gw.chat_ok(&token, &json!({ "message": "My name is Ada.", "agent_type": "product" })).await;
        let context_id = first["context_id"].as_str().unwrap();

        gw.mock.enqueue(Script::reply("Your name is Ada."));
        let body = json!({ "message": "What is my name?", "agent_type": "product", "context_id": context_id });
        let second = gw.chat_ok(&token, &body).await;
        assert_eq!(second["context_id"], context_id);
        assert_eq!(second["response"], "Your name is Ada.");
        let sent = gw.mock.requests().pop().unwrap();
        let expected =
            [("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "What is my name?")];
        assert_eq!(dialogue(&sent), turns(&expected), "{wire:?}");
        assert!(system_prompt(&sent).starts_with(PRODUCT_PROMPT_START));

        // An id the client chooses starts a conversation under that id.
        let body = json!({ "message": "Hello", "agent_type": "product", "context_id": "client-chosen-id" });
        let own = gw.chat_ok(&token, &body).await;
        assert_eq!(own["context_id"], "client-chosen-id");
        assert_eq!(dialogue(&gw.mock.requests().pop().unwrap()), turns(&[("user", "Hello")]));
        let stored = expect_json(gw.get("/api/conversations/client-chosen-id", &token).await, 200).await;
        assert_eq!(stored["messages"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn the_messages_array_form_sends_its_history_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let token = gw.user().await;
        gw.mock.set_script(Script::reply("6"));
        let body = json!({
            "agent_type": "product",
            "messages": [
                { "role": "system", "content": "Answer briefly." },
                { "role": "user", "content": "2+2?" },
                { "role": "assistant", "content": "4" },
                { "role": "user", "content": "And 3+3?" },
            ],
        });
        let answer = gw.chat_ok(&token, &body).await;
        assert_eq!(answer["response"], "6");
        let sent = gw.mock.requests().pop().unwrap();
        assert_eq!(dialogue(&sent), turns(&[("user", "2+2?"), ("assistant", "4"), ("user", "And 3+3?")]), "{wire:?}");
        let system = system_prompt(&sent);
        assert!(system.starts_with(PRODUCT_PROMPT_START) && system.contains("Answer briefly."), "{system}");

        // The stored conversation holds the prompt and the answer.
        let path = format!("/api/conversations/{}", answer["context_id"].as_str().unwrap());
        let stored = expect_json(gw.get(&path, &token).await, 200).await;
        let contents: Vec<&str> =
            stored["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(contents, ["And 3+3?", "6"]);
    }
}

#[tokio::test]
async fn bad_requests_fail_before_any_provider_call() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let cases = [
        (json!({ "message": "hi", "model": "x" }), 422, "UNPROCESSABLE", "Invalid model: 'x'"),
        (
            json!({ "message": "hi", "agent_type": "router" }),
            400,
            "INVALID_INPUT",
            "Router agent cannot be called directly",
        ),
        (
            json!({ "message": "hi", "agent_type": "Router" }),
            400,
            "INVALID_INPUT",
            "Router agent cannot be called directly",
        ),
        (json!({ "message": "hi", "agent_type": "nope" }), 404, "NOT_FOUND", "Agent not found: nope"),
        (json!({}), 400, "INVALID_INPUT", "Missing required field: message"),
        (json!({ "message": "   " }), 400, "INVALID_INPUT", "Missing required field: message"),
        (
            json!({ "messages": [{ "role": "assistant", "content": "hi" }] }),
            400,
            "INVALID_INPUT",
            "Missing required field: message",
        ),
        (
            json!({ "messages": [{ "role": "robot", "content": "hi" }] }),
            400,
            "INVALID_INPUT",
            "Invalid value for field: messages[0].role",
        ),
    ];
    for (body, status, code, message) in cases {
        let error = expect_error(gw.post("/api/chat", &token, &body).await, status, code).await;
        assert_eq!(error["error"], message, "{body}");
    }
    let response = gw.server.client().post(gw.server.url("/api/chat")).bearer_auth(&token).body("{nope").send().await;
    let error = expect_error(response.unwrap(), 400, "INVALID_INPUT").await;
    assert_eq!(error["error"], "Invalid JSON in request body");
    let response = gw.server.client().post(gw.server.url("/api/chat")).json(&json!({ "message": "hi" })).send().await;
    expect_error(response.unwrap(), 401, "AUTH_MISSING").await;
    assert!(gw.mock.requests().is_empty(), "{:?}", gw.mock.requests());

    // A configured model by name or provider-side id, and any-case built-in names, are fine.
    for (model, agent) in [(MODEL.to_string(), "PRODUCT"), (model_id(Wire::OpenAi), "product")] {
        let body = json!({ "message": "hi", "model": model, "agent_type": agent });
        let answer = gw.chat_ok(&token, &body).await;
        assert_eq!((answer["model"].as_str(), answer["agent"].as_str()), (Some(MODEL), Some("product")));
    }
}

#[tokio::test]
async fn provider_failures_become_gateway_errors_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let provider = gw.provider();
        let token = gw.user().await;
        let ask = json!({ "message": "hi", "agent_type": "product" });

        gw.mock.enqueue(Script::error(500, "upstream exploded"));
        let error = expect_error(gw.post("/api/chat", &token, &ask).await, 502, "LLM_ERROR").await;
        assert_eq!(error["error"], format!("Provider '{provider}' returned HTTP 500: upstream exploded"), "{wire:?}");

        gw.mock.enqueue(Script::error(429, "slow down"));
        let response = gw.post("/api/chat", &token, &ask).await;
        assert_eq!(header(&response, "retry-after").as_deref(), Some("60"));
        let error = expect_error(response, 429, "RATE_LIMIT_EXCEEDED").await;
        assert_eq!(error["error"], format!("Rate limit exceeded for provider '{provider}'"));
        assert_eq!(error["retry_after"], 60);

        for script in [Script::reply("cut short").truncated(), Script::reply("garbage").malformed()] {
            gw.mock.enqueue(script);
            let error = expect_error(gw.post("/api/chat", &token, &ask).await, 502, "LLM_ERROR").await;
            let message = error["error"].as_str().unwrap();
            assert!(message.starts_with(&format!("Provider '{provider}' sent an invalid response")), "{message}");
        }

        // Nothing was persisted for the failed chats.
        assert_eq!(expect_json(gw.get("/api/conversations", &token).await, 200).await, json!([]));
        assert_eq!(gw.mock.requests().len(), 4);
    }
}

/// `read_timeout_secs` bounds silence, not the length of an answer: a provider that says
/// nothing for longer times out (504, or the final error event of a stream that had started),
/// while a stream that keeps sending may take longer than the timeout in total.
#[tokio::test]
async fn read_timeouts_bound_silence_not_the_length_of_a_stream() {
    let hanging = Gateway::builder(Wire::OpenAi).read_timeout_secs(1).start();
    let stalling = Gateway::builder(Wire::Anthropic).read_timeout_secs(1).start();
    let steady = Gateway::builder(Wire::Ollama).read_timeout_secs(1).start();
    let (token, stalling_token, steady_token) = (hanging.user().await, stalling.user().await, steady.user().await);
    hanging.mock.set_script(Script::hang());
    // The first word, then silence (the mock is never resumed).
    stalling.mock.set_script(Script::reply("first and never more").pause_after(4));
    // Four words, 300 ms apart: longer than the timeout in total, never silent that long.
    steady.mock.set_script(Script::reply("slow but steady words").chunk_delay(Duration::from_millis(300)));
    let ask = json!({ "message": "hi", "agent_type": "product" });
    let (plain, stream, stalled_stream, long_stream) = tokio::join!(
        hanging.post("/api/chat", &token, &ask),
        hanging.post("/api/chat/stream", &token, &ask),
        stalling.post("/api/chat/stream", &stalling_token, &ask),
        steady.post("/api/chat/stream", &steady_token, &ask),
    );

    let error = expect_error(plain, 504, "LLM_TIMEOUT").await;
    assert_eq!(error["error"], "Provider 'mock-openai' timed out");
    // The stream had started: its failure is the final `error` event.
    let events = sse_events(stream).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].name.as_deref(), Some("error"));
    assert_eq!(events[0].json(), json!({ "error": "Provider 'mock-openai' timed out", "code": "LLM_TIMEOUT" }));

    let events = sse_events(stalled_stream).await;
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data[0], "first ", "{events:?}");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].name.as_deref(), Some("error"));
    assert_eq!(events[1].json(), json!({ "error": "Provider 'mock-anthropic' timed out", "code": "LLM_TIMEOUT" }));

    let events = sse_events(long_stream).await;
    assert!(events.iter().all(|e| e.name.is_none()), "{events:?}");
    let text: String = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(text, "slow but steady words");
}

#[tokio::test]
async fn a_provider_without_its_key_is_unavailable() {
    let gw = Gateway::builder(Wire::Anthropic).unset_key().start();
    let token = gw.user().await;
    for body in [json!({ "message": "hi", "agent_type": "product" }), json!({ "message": "hi" })] {
        let error = expect_error(gw.post("/api/chat", &token, &body).await, 503, "SERVICE_UNAVAILABLE").await;
        assert_eq!(
            error["error"],
            "Provider 'mock-anthropic' is not available: environment variable MOCK_LLM_KEY_NOT_SET is not set"
        );
    }
    assert!(gw.mock.requests().is_empty(), "a disabled provider is never called");
}

#[tokio::test]
async fn no_providers_configured_is_unavailable() {
    let gw = Gateway::builder(Wire::Ollama).no_providers().start();
    let token = gw.user().await;
    for body in [json!({ "message": "hi", "agent_type": "product" }), json!({ "message": "hi" })] {
        let error = expect_error(gw.post("/api/chat", &token, &body).await, 503, "SERVICE_UNAVAILABLE").await;
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with("No LLM provider is configured"), "{message}");
    }
    let (_, key) = gw.tenant("unconfigured").await;
    let body = json!({ "message": "hi", "agent_type": "product" });
    expect_error(gw.post("/v1/chat", &key, &body).await, 503, "SERVICE_UNAVAILABLE").await;
}

#[tokio::test]
async fn v1_chat_answers_tenants_records_runs_and_meters_tokens() {
    let gw = Gateway::start(Wire::OpenAi);
    let (tenant_id, key) = gw.tenant("chatter").await;
    gw.mock.set_script(Script::reply("Tenant answer.").usage(20, 5));

    // Quickstart form: message + platform agent.
    let response = gw.post("/v1/chat", &key, &json!({ "message": "hi", "agent_type": "product" })).await;
    let tokens_before: u64 = header(&response, "x-quota-tokens-remaining").unwrap().parse().unwrap();
    let body = expect_json(response, 200).await;
    assert_eq!(body["response"], "Tenant answer.");
    assert_eq!((body["agent"].as_str(), body["agent_source"].as_str()), (Some("product"), Some("system")));
    assert_eq!(body["tokens_used"], 25);

    // V1-page form: messages + model + the tenant's own agent.
    let body =
        json!({ "messages": [{ "role": "user", "content": "hello" }], "model": MODEL, "agent_type": "assistant" });
    let response = gw.post("/v1/chat", &key, &body).await;
    let tokens_after: u64 = header(&response, "x-quota-tokens-remaining").unwrap().parse().unwrap();
    let body = expect_json(response, 200).await;
    assert_eq!((body["agent"].as_str(), body["agent_source"].as_str()), (Some("assistant"), Some("tenant")));
    assert_eq!(tokens_before - tokens_after, 25, "the first chat's tokens count against the quota");

    let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage")).await;
    assert_eq!((usage["total_tokens"].as_u64(), usage["total_api_calls"].as_u64()), (Some(50), Some(2)));
    for agent in ["product", "assistant"] {
        let runs = gw.server.admin_get(&format!("/api/admin/tenants/{tenant_id}/agents/{agent}/runs")).await;
        let runs = runs["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "{agent}: {runs:?}");
        assert_eq!((runs[0]["status"].as_str(), runs[0]["tokens_used"].as_u64()), (Some("completed"), Some(25)));
    }
}

#[tokio::test]
async fn platform_agents_are_listed_without_auth() {
    let server = TestServer::builder()
        .config(
            r#"
# An agent's model must be configured (or a tier): nothing is called in this test.
[[providers]]
name = "mock"
type = "ollama"
base_url = "http://127.0.0.1:9"

[[models]]
name = "mock-model"
provider = "mock"
model_id = "m"

[[agents]]
name = "support"
description = "Helps customers"
model = "mock-model"
tools = ["calculator"]

[[agents]]
name = "hr"
description = "Our own HR agent"
model = "powerful"
system_prompt = "You are our HR bot."
"#,
        )
        .start();
    let agents = expect_json(server.get("/api/agents").send().await.unwrap(), 200).await;
    let agents = agents.as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["router", "orchestrator", "product", "invoice", "sales", "finance", "hr", "support"]);
    for agent in agents {
        let mut keys: Vec<&String> = agent.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["agent_type", "description", "display_name", "model", "name", "tools"], "{agent}");
        assert_eq!(agent["agent_type"], agent["name"]);
    }
    let by_name = |name: &str| agents.iter().find(|a| a["name"] == name).unwrap().clone();
    assert_eq!(
        by_name("product"),
        json!({
            "name": "product", "agent_type": "product", "display_name": "Product Agent",
            "description": "Handles product-related queries and recommendations", "model": "balanced", "tools": [],
        })
    );
    assert_eq!(by_name("router")["description"], "Routes incoming requests to the most appropriate specialist agent.");
    assert_eq!(by_name("orchestrator")["tools"], json!(["calculator", "web_search"]));
    assert_eq!(
        by_name("support"),
        json!({
            "name": "support", "agent_type": "support", "display_name": "support",
            "description": "Helps customers", "model": "mock-model", "tools": ["calculator"],
        })
    );
    let hr = by_name("hr");
    assert_eq!((hr["description"].as_str(), hr["model"].as_str()), (Some("Our own HR agent"), Some("powerful")));
}

#[tokio::test]
async fn a_configured_agent_replaces_the_built_in_of_that_name() {
    let gw = Gateway::builder(Wire::Ollama)
        .config(
            r#"
[[agents]]
name = "hr"
system_prompt = "You are our HR bot."
"#,
        )
        .start();
    let token = gw.user().await;
    let answer = gw.chat_ok(&token, &json!({ "message": "Leave policy?", "agent_type": "hr" })).await;
    assert_eq!(answer["agent"], "hr");
    assert_eq!(system_prompt(&gw.mock.requests()[0]), "You are our HR bot.");
}

/// `[chat].default_agent` answers a chat that names no agent: one model call with that agent's
/// prompt, no router call before it; naming an agent still wins.
#[tokio::test]
async fn the_default_agent_answers_chats_without_agent_type_in_one_call() {
    let gw = Gateway::builder(Wire::OpenAi)
        .config(
            r#"
[chat]
default_agent = "concierge"

[[agents]]
name = "concierge"
system_prompt = "You are the front desk."
"#,
        )
        .start();
    let token = gw.user().await;
    let answer = gw.chat_ok(&token, &json!({ "message": "Where do I start?" })).await;
    assert_eq!(answer["agent"], "concierge", "{answer}");
    let requests = gw.mock.requests();
    assert_eq!(requests.len(), 1, "no router call: {requests:?}");
    assert_eq!(system_prompt(&requests[0]), "You are the front desk.");
    let named = gw.chat_ok(&token, &json!({ "message": "Leave policy?", "agent_type": "hr" })).await;
    assert_eq!(named["agent"], "hr");
}

#[tokio::test]
async fn a_client_leaving_before_a_plain_answer_still_leaves_a_failed_run_and_its_counted_request() {
    let gw = Gateway::builder(Wire::OpenAi).read_timeout_secs(120).start();
    let (tenant_id, key) = gw.tenant("leaver").await;
    // The provider takes its time; the client does not wait for it.
    gw.mock.set_script(Script::reply("too late").delay(Duration::from_secs(5)));
    let ask = json!({ "message": "hello?", "agent_type": "product" });
    let request = tokio::spawn(gw.server.v1(reqwest::Method::POST, "/v1/chat", &key).json(&ask).send());
    let sent = gw.mock.wait_until("the upstream call", |r| !r.is_empty()).await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled(), "the server answered before its upstream");
    // The provider was sent the prompt and bills it; nothing came back. The prompt is counted
    // as an abandoned stream's is: an estimate of 4 bytes a token, each message rounded up.
    let prompt: u64 = sent[0].text_turns().iter().map(|(_, text)| (text.len() as u64).div_ceil(4)).sum();
    assert!(prompt > 0);

    // The turn is recorded as a failed run that used its prompt, as an abandoned stream's is,
    // and the request counts in the tenant's usage (calls and tokens) as it did against its
    // quota. Both are written as the dropped handler unwinds, the run a moment before the usage.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (runs, usage) = loop {
        let runs = gw.server.admin_get(&format!("/api/admin/tenants/{tenant_id}/agents/product/runs")).await;
        let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage")).await;
        let runs = runs["runs"].as_array().unwrap().clone();
        if !runs.is_empty() && usage["total_api_calls"].as_u64() != Some(0) {
            break (runs, usage);
        }
        assert!(std::time::Instant::now() < deadline, "not recorded: runs {runs:?}, usage {usage}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "failed", "{runs:?}");
    assert_eq!(runs[0]["tokens_used"].as_u64(), Some(prompt), "{runs:?}");
    assert_eq!(runs[0]["error"], "The client disconnected before the answer was complete", "{runs:?}");
    assert_eq!((usage["total_api_calls"].as_u64(), usage["total_tokens"].as_u64()), (Some(1), Some(prompt)), "{usage}");

    // The next chat is recorded beside it as usual.
    gw.mock.set_script(Script::reply("in time"));
    let body = expect_json(gw.post("/v1/chat", &key, &ask).await, 200).await;
    assert_eq!(body["response"], "in time");
    let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant_id}/usage")).await;
    assert_eq!(usage["total_api_calls"].as_u64(), Some(2), "{usage}");
}
