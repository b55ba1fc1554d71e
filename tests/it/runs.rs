//! `POST /v1/agents/{name}/run` against a mock provider (API.md §1.10, §1.9.6, §4.3): JSON and
//! text outputs, failures as `failed` runs, the run lists and statistics, metering, and the
//! tenant boundary.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, model_id, provider_name};
use crate::harness::{expect_error, expect_json, header};
use crate::mock_provider::{Script, Wire};

fn rfc3339(text: &Value) -> time::OffsetDateTime {
    let text = text.as_str().unwrap_or_else(|| panic!("not a string: {text}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

fn tokens_remaining(response: &reqwest::Response) -> u64 {
    header(response, "x-quota-tokens-remaining").expect("a token quota header").parse().unwrap()
}

fn ids(items: &Value) -> Vec<String> {
    items.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn runs_execute_record_and_meter() {
    let gw = Gateway::start(Wire::Anthropic);
    let (tenant, key) = gw.tenant("runner").await;
    let agent_path = format!("/api/admin/tenants/{tenant}/agents/assistant");
    let config = json!({ "config": { "model": MODEL, "system_prompt": "Reply with JSON." } });
    let agent = expect_json(gw.server.admin(Method::PUT, &agent_path).json(&config).send().await.unwrap(), 200).await;
    let (gw, key) = (&gw, key.as_str());
    let run = |body: Value| async move { gw.post("/v1/agents/assistant/run", key, &body).await };

    // A JSON reply becomes the output object.
    gw.mock.enqueue(Script::reply(r#"{"risk_score": 0.7, "level": "medium"}"#).usage(10, 5));
    let input = json!({ "message": "Assess this", "context": { "amount": 15000 } });
    let response = run(json!({ "input": input })).await;
    let remaining_1 = tokens_remaining(&response);
    let first = expect_json(response, 200).await;
    assert_eq!(first["status"], "completed");
    assert_eq!(first["output"], json!({ "risk_score": 0.7, "level": "medium" }));
    assert_eq!(first["error"], Value::Null);
    assert_eq!(first["input"], input);
    assert_eq!((first["agent_name"].as_str(), first["agent_id"].clone()), (Some("assistant"), agent["id"].clone()));
    assert_eq!(first["tokens_used"], 15);
    assert!(uuid::Uuid::parse_str(first["id"].as_str().unwrap()).is_ok());
    assert!(rfc3339(&first["started_at"]) <= rfc3339(&first["finished_at"]));
    assert!(first["duration_ms"].is_u64());
    let sent = gw.mock.requests().pop().unwrap();
    assert_eq!(sent.body["model"], model_id(Wire::Anthropic), "the agent's configured model");
    let turns = sent.text_turns();
    assert_eq!(turns[0], ("system".to_string(), "Reply with JSON.".to_string()));
    let prompt = &turns[1].1;
    assert!(prompt.starts_with("Assess this") && prompt.contains("Context:") && prompt.contains("15000"), "{prompt}");

    // A text reply is wrapped; a bare body (no `input`) is accepted.
    gw.mock.enqueue(Script::reply("Plain words.").usage(4, 2));
    let response = run(json!({ "message": "Say something" })).await;
    let remaining_2 = tokens_remaining(&response);
    let second = expect_json(response, 200).await;
    assert_eq!(second["output"], json!({ "response": "Plain words." }));
    assert_eq!(second["tokens_used"], 6);

    // A provider failure is a failed run, still HTTP 200.
    gw.mock.enqueue(Script::error(500, "model crashed"));
    let response = run(json!({ "input": { "message": "Fail" } })).await;
    let remaining_3 = tokens_remaining(&response);
    let third = expect_json(response, 200).await;
    assert_eq!(third["status"], "failed");
    assert_eq!(third["output"], Value::Null);
    assert_eq!(third["error"], "Provider 'mock-anthropic' returned HTTP 500: model crashed");
    assert_eq!(third["tokens_used"], 0);

    // Each response's quota header reflects the tokens of the runs before it.
    assert_eq!((remaining_1 - remaining_2, remaining_2 - remaining_3), (15, 6));
    let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/usage")).await;
    assert_eq!(usage["total_tokens"], 21);
    assert_eq!((usage["total_runs"].as_u64(), usage["total_api_calls"].as_u64()), (Some(3), Some(3)));
    let response = gw.get("/v1/usage", key).await;
    assert_eq!(tokens_remaining(&response), remaining_1 - 21);

    // Run lists, newest first.
    let newest_first =
        [third["id"].clone(), second["id"].clone(), first["id"].clone()].map(|v| v.as_str().unwrap().to_string());
    let page = expect_json(gw.get("/v1/agents/assistant/runs", key).await, 200).await;
    assert_eq!(ids(&page["runs"]), newest_first);
    assert_eq!(page["items"], page["runs"]);
    assert_eq!(page["total"], 3);
    let statuses: Vec<&str> = page["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "completed", "completed"]);
    assert_eq!(page["runs"][2]["tokens_used"], 15);
    // Who answered each run, and after how many upstream requests; nobody answered the failed one.
    let served = format!("{}/{}", provider_name(Wire::Anthropic), model_id(Wire::Anthropic));
    assert_eq!(
        (page["runs"][2]["served_by"].as_str(), page["runs"][2]["attempts"].as_u64()),
        (Some(served.as_str()), Some(1))
    );
    assert_eq!((page["runs"][0]["served_by"].clone(), page["runs"][0]["attempts"].as_u64()), (Value::Null, Some(0)));
    let second_page = expect_json(gw.get("/v1/agents/assistant/runs?page=2&per_page=1", key).await, 200).await;
    assert_eq!(ids(&second_page["runs"]), newest_first[1..2]);
    assert_eq!((second_page["total"].as_u64(), second_page["total_pages"].as_u64()), (Some(3), Some(3)));
    let admin = gw.server.admin_get(&format!("{agent_path}/runs")).await;
    assert_eq!(ids(&admin["runs"]), newest_first);
    assert_eq!(admin["runs"][2]["input_tokens"], 10);
    assert_eq!(admin["runs"][2]["output_tokens"], 5);
    assert_eq!(
        (admin["runs"][2]["served_by"].as_str(), admin["runs"][2]["attempts"].as_u64()),
        (Some(served.as_str()), Some(1))
    );
    assert_eq!(admin["runs"][0]["error"], third["error"]);

    let stats = gw.server.admin_get(&format!("{agent_path}/stats")).await;
    assert_eq!(stats["total_runs"], 3);
    assert_eq!((stats["successful_runs"].clone(), stats["success_count"].clone()), (json!(2), json!(2)));
    assert_eq!((stats["failed_runs"].clone(), stats["failed_count"].clone()), (json!(1), json!(1)));
    assert!((stats["success_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{stats}");
    assert_eq!(stats["avg_tokens"], 21 / 3);
    assert_eq!((stats["total_input_tokens"].as_u64(), stats["total_output_tokens"].as_u64()), (Some(14), Some(7)));
    assert!(stats["avg_duration_ms"].is_u64());
    rfc3339(&stats["last_run"]);
}

#[tokio::test]
async fn run_requests_need_a_message_and_one_of_the_tenants_own_agents() {
    let gw = Gateway::start(Wire::Ollama);
    let (_, key) = gw.tenant("alpha").await;
    gw.server.provision("beta", "pro", "kasino").await;
    for body in [json!({ "input": {} }), json!({}), json!({ "input": { "message": " " } })] {
        let error = expect_error(gw.post("/v1/agents/assistant/run", &key, &body).await, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], "Missing required field: input.message", "{body}");
    }
    for name in ["kasino-classifier", "missing", "product"] {
        let body = json!({ "input": { "message": "hi" } });
        let error = expect_error(gw.post(&format!("/v1/agents/{name}/run"), &key, &body).await, 404, "NOT_FOUND").await;
        assert_eq!(error["error"], format!("Agent not found: {name}"));
        let error = expect_error(gw.get(&format!("/v1/agents/{name}/runs"), &key).await, 404, "NOT_FOUND").await;
        assert_eq!(error["error"], format!("Agent not found: {name}"));
    }
    assert!(gw.mock.requests().is_empty());
}

#[tokio::test]
async fn a_tenant_agent_on_a_tier_model_runs_on_the_default_model() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("tiered").await;
    // The generic template's agent asks for the "fast" tier, which no configured model serves.
    let run = gw.post("/v1/agents/assistant/run", &key, &json!({ "input": { "message": "hi" } })).await;
    let run = expect_json(run, 200).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], json!({ "response": "Hello from the mock provider." }));
    assert_eq!(gw.mock.requests()[0].body["model"], model_id(Wire::OpenAi));
}
