//! Deep research (`POST /api/research`, API.md §1.4): a direct answer at depth 1; at depth ≥ 2 a
//! plan, the sub-questions answered (in parallel by default, one after another when the
//! `research` workflow says so) and a synthesis; `max_iterations` as a hard cap on model calls,
//! checked against the calls the mock provider actually received; sources; request errors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::harness::{expect_error, expect_json};
use crate::mock_provider::{RecordedRequest, Script, Wire};

const ORCHESTRATOR_PROMPT_START: &str = "You are a capable general assistant";
const FINANCE_PROMPT_START: &str = "You are a financial analyst.";
const DIRECT_PREFIX: &str = "Research this question and answer it thoroughly in Markdown:\n\n";

async fn research(gw: &Gateway, token: &str, body: &Value) -> reqwest::Response {
    gw.post("/api/research", token, body).await
}

async fn research_ok(gw: &Gateway, token: &str, body: &Value) -> Value {
    expect_json(research(gw, token, body).await, 200).await
}

fn system_prompt(request: &RecordedRequest) -> String {
    request.transcript().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect()
}

fn user_message(request: &RecordedRequest) -> String {
    let users: Vec<String> =
        request.transcript().into_iter().filter(|(role, _)| role == "user").map(|(_, text)| text).collect();
    assert_eq!(users.len(), 1, "one user message: {:?}", request.body);
    users.into_iter().next().unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// `sources` are exactly the titles of `source_details`, in order, and every detail is well formed.
fn assert_sources_consistent(outcome: &Value) {
    let details = outcome["source_details"].as_array().unwrap();
    let titles: Vec<String> = details.iter().map(|d| d["title"].as_str().unwrap().to_string()).collect();
    assert_eq!(strings(&outcome["sources"]), titles, "{outcome}");
    for detail in details {
        assert_eq!(detail.as_object().unwrap().len(), 3, "title, url, relevance_score: {detail}");
        assert!(detail["url"].is_null() || detail["url"].is_string(), "{detail}");
        let score = detail["relevance_score"].as_f64().unwrap();
        assert!((0.05..=1.0).contains(&score), "{detail}");
    }
}

#[tokio::test]
async fn depth_one_answers_directly_with_one_model_call() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let answer = "Rust is memory safe without a garbage collector. See https://www.rust-lang.org/learn.";
    gw.mock.set_script(Script::reply(answer));
    let query = "Is Rust memory safe?";
    let outcome = research_ok(&gw, &token, &json!({ "query": query, "depth": 1 })).await;

    assert_eq!(outcome["findings"], answer);
    assert_eq!(outcome["model_calls"], 1);
    assert_eq!(outcome["sub_questions"], 0);
    assert_eq!(outcome["agent"], "orchestrator", "the research workflow's entry agent");
    assert!(outcome["duration_ms"].is_u64(), "{outcome}");
    assert_eq!(outcome["sources"], json!([query]), "a direct answer is its own source");
    assert_eq!(outcome["source_details"][0]["title"], query);
    assert_eq!(outcome["source_details"][0]["url"], "https://www.rust-lang.org/learn");
    assert_eq!(outcome["source_details"][0]["relevance_score"], json!(1.0));
    assert_sources_consistent(&outcome);

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 1, "exactly one model call");
    assert!(system_prompt(&requests[0]).starts_with(ORCHESTRATOR_PROMPT_START), "{:?}", requests[0].body);
    assert_eq!(user_message(&requests[0]), format!("{DIRECT_PREFIX}{query}"));

    // The same at the smallest budget, and with any budget.
    for max_iterations in [1, 50] {
        let outcome =
            research_ok(&gw, &token, &json!({ "query": query, "depth": 1, "max_iterations": max_iterations })).await;
        assert_eq!(outcome["model_calls"], 1);
        assert_eq!(outcome["sub_questions"], 0);
    }
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[1].tools_offered(), None, "with one call left, no tools are offered");
}

#[tokio::test]
async fn depth_two_plans_answers_each_sub_question_and_synthesizes() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let query = "Rust memory safety";
    let subs = ["What is Rust memory safety?", "Who uses it?", "Why is safety hard?"];
    // Numbering, list markers, blank lines and repeats are cleaned out of the plan.
    gw.mock.enqueue(Script::reply(
        "1. What is Rust memory safety?\n2) Who uses it?\n\n- Why is safety hard?\n* who uses it?",
    ));
    let answers = ["Answer A. See https://example.com/a.", "Answer B.", "Answer C."];
    for answer in answers {
        gw.mock.enqueue(Script::reply(answer));
    }
    gw.mock.enqueue(Script::reply("## Findings\nAll combined."));

    let outcome = research_ok(&gw, &token, &json!({ "query": query, "depth": 2, "max_iterations": 5 })).await;
    assert_eq!(outcome["findings"], "## Findings\nAll combined.");
    assert_eq!(outcome["sub_questions"], 3);
    assert_eq!(outcome["model_calls"], 5, "plan + three answers + synthesis");
    assert_eq!(outcome["agent"], "orchestrator");
    assert_eq!(strings(&outcome["sources"]), subs, "one source per sub-question, in plan order");
    assert_sources_consistent(&outcome);

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 5, "model_calls is what the provider saw");
    for request in &requests {
        assert!(system_prompt(request).starts_with(ORCHESTRATOR_PROMPT_START));
        assert_eq!(request.tools_offered(), None, "every call here has a budget of one: no tools");
    }
    let plan = user_message(&requests[0]);
    assert!(plan.contains("at most 3 distinct sub-questions"), "{plan}");
    assert!(plan.ends_with(&format!("Question: {query}")), "{plan}");

    // The answers run concurrently, so which sub-question got which scripted answer is read
    // from the order the mock received them in (its queue answers in arrival order).
    let mut answered: BTreeMap<String, String> = BTreeMap::new();
    for (request, answer) in requests[1..4].iter().zip(answers) {
        let prompt = user_message(request);
        let sub = prompt.strip_prefix(DIRECT_PREFIX).unwrap_or_else(|| panic!("not a direct answer: {prompt}"));
        assert!(answered.insert(sub.to_string(), answer.to_string()).is_none(), "{sub} asked twice");
    }
    let mut asked: Vec<&str> = answered.keys().map(String::as_str).collect();
    asked.sort_unstable();
    let mut expected = subs.to_vec();
    expected.sort_unstable();
    assert_eq!(asked, expected, "each sub-question is researched once");

    let synthesis = user_message(&requests[4]);
    assert!(synthesis.contains(&format!("Question: {query}\n")), "{synthesis}");
    for (i, sub) in subs.iter().enumerate() {
        let section = format!("## Sub-question {}: {sub}\n{}\n", i + 1, answered[*sub]);
        assert!(synthesis.contains(&section), "synthesis lacks {section:?}:\n{synthesis}");
    }

    // Details: the URL the answer cites, and the share of the question's terms covered.
    let details = outcome["source_details"].as_array().unwrap();
    for (detail, sub) in details.iter().zip(subs) {
        let expected_url =
            if answered[sub].contains("https://example.com/a") { json!("https://example.com/a") } else { Value::Null };
        assert_eq!(detail["url"], expected_url, "{detail}");
    }
    // Two decimals, exactly: 3/3, 0/3 (floored at 0.05) and 1/3 of the terms.
    assert_eq!(details[0]["relevance_score"], json!(1.0));
    assert_eq!(details[1]["relevance_score"], json!(0.05));
    assert_eq!(details[2]["relevance_score"], json!(0.33));
}

#[tokio::test]
async fn defaults_are_depth_three_and_five_calls() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    gw.mock.set_script(Script::reply("What is A?\nWhat is B?\nWhat is C?"));
    let outcome = research_ok(&gw, &token, &json!({ "query": "Explain A, B and C" })).await;
    assert_eq!(outcome["sub_questions"], 3, "depth > 1 by default: the question is split");
    let calls = gw.mock.chat_requests().len();
    assert_eq!(outcome["model_calls"], calls as u64);
    assert!(calls <= 5, "{calls} model calls with the default budget of 5");
    assert_sources_consistent(&outcome);
}

/// A mock that spends whatever it is given: every reply is a three-line plan, and it calls the
/// calculator whenever tools are offered.
fn greedy() -> Script {
    Script::tool_call("calculator", json!({ "expression": "1+1" })).text("What is A?\nWhat is B?\nWhat is C?")
}

#[tokio::test]
async fn max_iterations_is_a_hard_cap_on_model_calls() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    gw.mock.set_script(greedy());
    let cases = [(3, 1), (3, 2), (3, 3), (3, 4), (3, 7), (3, 20), (2, 50), (10, 50), (10, 13), (2, 4), (5, 5)];
    for (depth, cap) in cases {
        let before = gw.mock.chat_requests().len();
        let body = json!({ "query": "Tell me about A, B and C", "depth": depth, "max_iterations": cap });
        let outcome = research_ok(&gw, &token, &body).await;
        let calls = gw.mock.chat_requests().len() - before;
        assert!(calls <= cap, "depth {depth}, max_iterations {cap}: {calls} model calls");
        assert_eq!(outcome["model_calls"], calls as u64, "depth {depth}, cap {cap}: the reported count is real");
        let subs = outcome["sub_questions"].as_u64().unwrap();
        if cap >= 4 {
            assert!(subs >= 2, "depth {depth}, cap {cap}: a budget of 4 or more splits ({outcome})");
        } else {
            assert_eq!(subs, 0, "depth {depth}, cap {cap}: too small a budget to split");
        }
        assert_eq!(outcome["sources"].as_array().unwrap().len() as u64, subs.max(1));
        assert_sources_consistent(&outcome);
    }
}

#[tokio::test]
async fn sub_questions_are_answered_in_parallel() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    let delay = Duration::from_secs(2);
    gw.mock.enqueue(Script::reply("What is A?\nWhat is B?\nWhat is C?"));
    for answer in ["A is first.", "B is second.", "C is third."] {
        gw.mock.enqueue(Script::reply(answer).delay(delay));
    }
    gw.mock.enqueue(Script::reply("A, B and C."));

    let started = Instant::now();
    let client = gw.server.client().clone();
    let url = gw.server.url("/api/research");
    let body = json!({ "query": "Explain A, B and C", "depth": 2, "max_iterations": 5 });
    let call = tokio::spawn(async move { client.post(url).bearer_auth(token).json(&body).send().await.unwrap() });

    // All three sub-questions reach the provider before any of them is answered.
    let requests = gw.mock.wait_until("the plan and three sub-questions", |r| r.len() >= 4).await;
    assert!(
        requests[1..4].iter().all(|r| !r.finished),
        "a sub-question was answered before the last one was asked: {:?}",
        requests.iter().map(|r| r.finished).collect::<Vec<_>>()
    );

    let outcome = expect_json(call.await.unwrap(), 200).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome["findings"], "A, B and C.");
    assert_eq!(outcome["sub_questions"], 3);
    assert_eq!(outcome["model_calls"], 5);
    // Sequentially this takes at least 3 × 2 s; concurrently about 2 s. Generous margin.
    assert!(elapsed < delay * 3, "three 2 s answers took {elapsed:?}: not concurrent");
}

#[tokio::test]
async fn a_sequential_research_workflow_answers_one_sub_question_at_a_time() {
    let gw = Gateway::builder(Wire::OpenAi)
        .config("[workflows.research]\nentry_agent = \"finance\"\nparallel_subagents = false\n")
        .start();
    let token = gw.user().await;
    let delay = Duration::from_millis(400);
    gw.mock.enqueue(Script::reply("What is A?\nWhat is B?\nWhat is C?"));
    for answer in ["A.", "B.", "C."] {
        gw.mock.enqueue(Script::reply(answer).delay(delay));
    }
    gw.mock.enqueue(Script::reply("Done."));
    let started = Instant::now();
    let outcome =
        research_ok(&gw, &token, &json!({ "query": "Explain A, B and C", "depth": 2, "max_iterations": 5 })).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome["agent"], "finance", "the research workflow's entry agent does the research");
    assert_eq!(outcome["sub_questions"], 3);
    assert_eq!(outcome["model_calls"], 5);
    // A lower bound, so not timing-sensitive: one after another, the delays add up.
    assert!(elapsed >= delay * 3, "three {delay:?} answers in {elapsed:?}: they overlapped");
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 5);
    assert!(system_prompt(&requests[0]).starts_with(FINANCE_PROMPT_START));
    let asked: Vec<String> = requests[1..4].iter().map(user_message).collect();
    let expected: Vec<String> =
        ["What is A?", "What is B?", "What is C?"].iter().map(|q| format!("{DIRECT_PREFIX}{q}")).collect();
    assert_eq!(asked, expected, "in plan order");
}

#[tokio::test]
async fn a_plan_with_fewer_than_two_sub_questions_is_answered_directly() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    gw.mock.enqueue(Script::reply("Just one question?"));
    gw.mock.enqueue(Script::reply("The direct answer."));
    let query = "A single-minded question";
    let outcome = research_ok(&gw, &token, &json!({ "query": query, "depth": 3, "max_iterations": 6 })).await;
    assert_eq!(outcome["findings"], "The direct answer.");
    assert_eq!(outcome["sub_questions"], 0);
    assert_eq!(outcome["model_calls"], 2, "the plan and the answer");
    assert_eq!(outcome["sources"], json!([query]));
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(user_message(&requests[1]), format!("{DIRECT_PREFIX}{query}"));
}

#[tokio::test]
async fn request_errors() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    for depth in [json!(0), json!(11), json!(-1), json!(1000)] {
        let body = json!({ "query": "q", "depth": depth });
        let error = expect_error(research(&gw, &token, &body).await, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], "depth must be between 1 and 10", "{body}");
    }
    for max_iterations in [json!(0), json!(51), json!(-3)] {
        let body = json!({ "query": "q", "max_iterations": max_iterations });
        let error = expect_error(research(&gw, &token, &body).await, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], "max_iterations must be between 1 and 50", "{body}");
    }
    for body in [json!({}), json!({ "query": "" }), json!({ "query": "  " }), json!({ "depth": 2 })] {
        let error = expect_error(research(&gw, &token, &body).await, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], "Missing required field: query", "{body}");
    }
    let error =
        expect_error(research(&gw, &token, &json!({ "query": "q", "depth": "3" })).await, 400, "INVALID_INPUT").await;
    assert_eq!(error["error"], "Invalid value for field: depth");

    let response = gw.server.client().post(gw.server.url("/api/research")).json(&json!({ "query": "q" })).send();
    expect_error(response.await.unwrap(), 401, "AUTH_MISSING").await;
    expect_error(research(&gw, "not-a-jwt", &json!({ "query": "q" })).await, 401, "AUTH_INVALID_TOKEN").await;

    assert!(gw.mock.chat_requests().is_empty(), "no rejected request reached the model");
}
