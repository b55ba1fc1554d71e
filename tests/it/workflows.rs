//! Workflows (API.md §1.5): the list (names and `?detailed=true`), the built-in `default`
//! workflow's router → specialist chain with both step field sets, the request's context reaching
//! every agent, the fallback agent (and stopping without one), the `max_depth` and
//! `max_iterations` caps — the latter counted in model calls, tool rounds included, checked
//! against what the mock provider actually received — a user's own agent as the entry agent, and
//! request errors. Workflows from a directory of TOON files are in `config_dirs`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL};
use crate::harness::{expect_error, expect_json};
use crate::mock_provider::{RecordedRequest, Script, Wire};

const ROUTER_PROMPT_START: &str = "You route a user's request";
const SALES_PROMPT_START: &str = "You are a sales analyst.";
const ORCHESTRATOR_PROMPT_START: &str = "You are a capable general assistant";
const HR_PROMPT_START: &str = "You are a human-resources specialist.";
const CONTEXT_HEADER: &str = "\n\nContext provided with this request (JSON):\n";

/// Workflows and agents the tests below run, on top of the built-in ones.
const WORKFLOWS: &str = r#"
[[agents]]
name = "cruncher"
model = "mock-model"
system_prompt = "You crunch numbers."
tools = ["calculator"]
max_iterations = 10

[workflows.strict]
entry_agent = "router"

[workflows.loop]
entry_agent = "router"
fallback_agent = "orchestrator"
max_depth = 3
max_iterations = 10

[workflows.shallow]
entry_agent = "router"
fallback_agent = "orchestrator"
max_depth = 1
max_iterations = 10

[workflows.exact]
entry_agent = "router"
max_depth = 2
max_iterations = 10

[workflows.one-call]
entry_agent = "router"
fallback_agent = "orchestrator"
max_depth = 3
max_iterations = 1

[workflows.crunch-2]
entry_agent = "router"
max_iterations = 2

[workflows.crunch-3]
entry_agent = "router"
max_iterations = 3

[workflows.crunch-4]
entry_agent = "router"
max_iterations = 4

[workflows.crunch-7]
entry_agent = "router"
max_depth = 5
max_iterations = 7

[workflows.crunch-alone]
entry_agent = "cruncher"
max_iterations = 3

[workflows.triage]
entry_agent = "hr"
fallback_agent = "orchestrator"
max_depth = 2
max_iterations = 4
parallel_subagents = true
"#;

fn gateway() -> Gateway {
    Gateway::builder(Wire::OpenAi).config(WORKFLOWS).start()
}

async fn run(gw: &Gateway, token: &str, workflow: &str, body: &Value) -> reqwest::Response {
    gw.post(&format!("/api/workflows/{workflow}"), token, body).await
}

async fn run_ok(gw: &Gateway, token: &str, workflow: &str, body: &Value) -> Value {
    expect_json(run(gw, token, workflow, body).await, 200).await
}

fn system_prompt(request: &RecordedRequest) -> String {
    request.transcript().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect()
}

/// The one user message of a workflow step's first model call.
fn user_message(request: &RecordedRequest) -> String {
    let users: Vec<String> =
        request.transcript().into_iter().filter(|(role, _)| role == "user").map(|(_, text)| text).collect();
    assert_eq!(users.len(), 1, "one user message per step: {:?}", request.body);
    users.into_iter().next().unwrap()
}

/// `(query, context)` of a prompt the server built: the query, then the context as JSON.
fn split_prompt(prompt: &str) -> (String, Value) {
    let (query, context) =
        prompt.split_once(CONTEXT_HEADER).unwrap_or_else(|| panic!("no context section in the prompt {prompt:?}"));
    let context: Value =
        serde_json::from_str(context).unwrap_or_else(|e| panic!("the context is not JSON ({e}): {context:?}"));
    (query.to_string(), context)
}

fn names(value: &Value) -> Vec<&str> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Every field of one reasoning-path step, both field sets (`agent`/`action` and
/// `agent_name`/`input`/`output`/`timestamp`) plus the call count.
fn assert_step(step: &Value, agent: &str, action: &str, input: &str, output: &str, model_calls: u64) {
    assert_eq!(step["agent"], agent, "{step}");
    assert_eq!(step["agent_name"], agent, "{step}");
    assert_eq!(step["action"], action, "{step}");
    assert_eq!(step["input"], input, "{step}");
    assert_eq!(step["output"], output, "{step}");
    assert_eq!(step["model_calls"], model_calls, "{step}");
    assert!(step["duration_ms"].is_u64(), "{step}");
    assert!(step["timestamp"].is_i64(), "{step}");
}

#[tokio::test]
async fn the_list_has_built_in_and_configured_workflows_in_both_forms() {
    let gw = gateway();
    let token = gw.user().await;
    let listed = expect_json(gw.get("/api/workflows", &token).await, 200).await;
    assert_eq!(
        names(&listed),
        [
            "crunch-2",
            "crunch-3",
            "crunch-4",
            "crunch-7",
            "crunch-alone",
            "default",
            "exact",
            "loop",
            "one-call",
            "research",
            "shallow",
            "strict",
            "triage"
        ]
    );
    let not_detailed = expect_json(gw.get("/api/workflows?detailed=false", &token).await, 200).await;
    assert_eq!(not_detailed, listed);

    let detailed = expect_json(gw.get("/api/workflows?detailed=true", &token).await, 200).await;
    let detailed = detailed.as_array().unwrap();
    assert_eq!(detailed.iter().map(|w| w["name"].as_str().unwrap()).collect::<Vec<_>>(), names(&listed));
    let find = |name: &str| detailed.iter().find(|w| w["name"] == name).unwrap().clone();
    assert_eq!(
        find("default"),
        json!({ "name": "default", "entry_agent": "router", "fallback_agent": "orchestrator",
                "max_depth": 3, "max_iterations": 5, "parallel_subagents": false })
    );
    assert_eq!(
        find("research"),
        json!({ "name": "research", "entry_agent": "orchestrator", "fallback_agent": null,
                "max_depth": 3, "max_iterations": 10, "parallel_subagents": true })
    );
    assert_eq!(
        find("triage"),
        json!({ "name": "triage", "entry_agent": "hr", "fallback_agent": "orchestrator",
                "max_depth": 2, "max_iterations": 4, "parallel_subagents": true })
    );
    assert_eq!(
        find("strict"),
        json!({ "name": "strict", "entry_agent": "router", "fallback_agent": null,
                "max_depth": 3, "max_iterations": 5, "parallel_subagents": false }),
        "unset fields take the documented defaults"
    );
    assert!(gw.mock.chat_requests().is_empty(), "listing calls no model");
}

#[tokio::test]
async fn a_configured_workflow_replaces_the_built_in_of_the_same_name() {
    let gw = Gateway::builder(Wire::OpenAi)
        .config("[workflows.default]\nentry_agent = \"hr\"\nmax_depth = 1\nmax_iterations = 2\n")
        .start();
    let token = gw.user().await;
    let listed = expect_json(gw.get("/api/workflows", &token).await, 200).await;
    assert_eq!(names(&listed), ["default", "research"]);
    let detailed = expect_json(gw.get("/api/workflows?detailed=true", &token).await, 200).await;
    assert_eq!(
        detailed[0],
        json!({ "name": "default", "entry_agent": "hr", "fallback_agent": null,
                "max_depth": 1, "max_iterations": 2, "parallel_subagents": false })
    );
    gw.mock.set_script(Script::reply("Take the leave."));
    let outcome = run_ok(&gw, &token, "default", &json!({ "query": "How much leave do I get?" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["hr"]);
    assert!(system_prompt(&gw.mock.chat_requests()[0]).starts_with(HR_PROMPT_START));
}

#[tokio::test]
async fn the_default_workflow_routes_to_the_specialist_the_router_names() {
    let gw = gateway();
    let token = gw.user().await;
    gw.mock.enqueue(Script::reply("sales"));
    gw.mock.enqueue(Script::reply("Sales grew 12% last quarter."));
    let query = "How did sales do last quarter?";
    let before = unix_now();
    let outcome = run_ok(&gw, &token, "default", &json!({ "query": query })).await;
    let after = unix_now();

    assert_eq!(outcome["final_response"], "Sales grew 12% last quarter.");
    assert_eq!(outcome["steps_executed"], 2);
    assert_eq!(names(&outcome["agents_used"]), ["router", "sales"]);
    assert_eq!(outcome["model_calls"], 2);
    assert_eq!(outcome["limit_reached"], Value::Null);
    assert!(outcome["duration_ms"].is_u64(), "{outcome}");
    let path = outcome["reasoning_path"].as_array().unwrap();
    assert_eq!(path.len(), 2);
    assert_step(&path[0], "router", "Routed to sales agent.", query, "sales", 1);
    assert_step(&path[1], "sales", "Sales grew 12% last quarter.", query, "Sales grew 12% last quarter.", 1);
    for step in path {
        let at = step["timestamp"].as_i64().unwrap();
        assert!((before..=after).contains(&at), "timestamp {at} outside [{before}, {after}]");
        assert!(step.get("limit_reached").is_none(), "no cap stopped this run: {step}");
    }
    assert!(path[0]["timestamp"].as_i64() <= path[1]["timestamp"].as_i64());

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2, "one call per step");
    assert!(system_prompt(&requests[0]).starts_with(ROUTER_PROMPT_START), "{:?}", requests[0].body);
    assert_eq!(user_message(&requests[0]), query, "no context: the prompt is the query");
    assert_eq!(requests[0].tools_offered(), None, "the router has no tools");
    assert!(system_prompt(&requests[1]).starts_with(SALES_PROMPT_START), "{:?}", requests[1].body);
    assert_eq!(user_message(&requests[1]), query, "the specialist gets the original query");
    assert_eq!(requests[1].tools_offered(), Some(vec!["calculator".to_string()]));
    for request in &requests {
        assert_eq!(request.body["model"], crate::gateway::model_id(Wire::OpenAi));
    }
}

#[tokio::test]
async fn the_context_reaches_every_agent_of_the_chain() {
    let gw = gateway();
    let token = gw.user().await;
    let context = json!({ "customer": "ACME GmbH", "region": "EU", "quarter": { "year": 2025, "q": 3 } });
    let query = "Summarise the customer's quarter";

    // router → sales.
    gw.mock.enqueue(Script::reply("sales"));
    gw.mock.enqueue(Script::reply("Quarter summarised."));
    let outcome = run_ok(&gw, &token, "default", &json!({ "query": query, "context": context })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "sales"]);
    // router → (no agent named) → the fallback.
    gw.mock.enqueue(Script::reply("no idea"));
    gw.mock.enqueue(Script::reply("Fallback answer."));
    let outcome = run_ok(&gw, &token, "default", &json!({ "query": query, "context": context })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "orchestrator"]);
    // router → router → router.
    gw.mock.set_script(Script::reply("router"));
    let outcome = run_ok(&gw, &token, "loop", &json!({ "query": query, "context": context })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "router", "router"]);

    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 7);
    for (i, request) in requests.iter().enumerate() {
        let (sent_query, sent_context) = split_prompt(&user_message(request));
        assert_eq!(sent_query, query, "request {i}");
        assert_eq!(sent_context, context, "request {i}: the whole context, as sent");
    }
    // Steps report the query the caller asked, not the prompt with its context.
    for step in outcome["reasoning_path"].as_array().unwrap() {
        assert_eq!(step["input"], query);
    }

    // An empty or null context adds nothing to the prompt.
    gw.mock.enqueue(Script::reply("hr"));
    gw.mock.enqueue(Script::reply("HR answer."));
    run_ok(&gw, &token, "default", &json!({ "query": query, "context": {} })).await;
    gw.mock.enqueue(Script::reply("hr"));
    gw.mock.enqueue(Script::reply("HR answer."));
    run_ok(&gw, &token, "default", &json!({ "query": query, "context": null })).await;
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 11);
    for request in &requests[7..] {
        assert_eq!(user_message(request), query);
    }
}

#[tokio::test]
async fn a_router_answer_naming_no_known_agent_goes_to_the_fallback() {
    let gw = gateway();
    let token = gw.user().await;
    gw.mock.enqueue(Script::reply("I have no idea, sorry"));
    gw.mock.enqueue(Script::reply("Here is a general answer."));
    let query = "Tell me something about everything";
    let outcome = run_ok(&gw, &token, "default", &json!({ "query": query })).await;
    assert_eq!(outcome["final_response"], "Here is a general answer.");
    assert_eq!(names(&outcome["agents_used"]), ["router", "orchestrator"]);
    assert_eq!(outcome["steps_executed"], 2);
    assert_eq!(outcome["model_calls"], 2);
    assert_eq!(outcome["limit_reached"], Value::Null);
    let path = outcome["reasoning_path"].as_array().unwrap();
    assert_step(
        &path[0],
        "router",
        "No known agent named; falling back to orchestrator agent.",
        query,
        "I have no idea, sorry",
        1,
    );
    assert_step(&path[1], "orchestrator", "Here is a general answer.", query, "Here is a general answer.", 1);
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert!(system_prompt(&requests[1]).starts_with(ORCHESTRATOR_PROMPT_START), "{:?}", requests[1].body);

    // A configured fallback is used the same way.
    let gw = Gateway::builder(Wire::OpenAi)
        .config("[workflows.people]\nentry_agent = \"router\"\nfallback_agent = \"hr\"\n")
        .start();
    let token = gw.user().await;
    gw.mock.enqueue(Script::reply("Nothing fits"));
    gw.mock.enqueue(Script::reply("Ask your manager."));
    let outcome = run_ok(&gw, &token, "people", &json!({ "query": "Who approves my leave?" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "hr"]);
    assert_eq!(outcome["reasoning_path"][0]["action"], "No known agent named; falling back to hr agent.");
    assert_eq!(outcome["final_response"], "Ask your manager.");
    assert!(system_prompt(&gw.mock.chat_requests()[1]).starts_with(HR_PROMPT_START));
}

#[tokio::test]
async fn without_a_fallback_an_unknown_answer_stops_after_the_router() {
    let gw = gateway();
    let token = gw.user().await;
    gw.mock.set_script(Script::reply("no idea"));
    let query = "Something nobody handles";
    let outcome = run_ok(&gw, &token, "strict", &json!({ "query": query })).await;
    assert_eq!(outcome["steps_executed"], 1);
    assert_eq!(names(&outcome["agents_used"]), ["router"]);
    assert_eq!(outcome["final_response"], "no idea", "the last step's output");
    assert_eq!(outcome["model_calls"], 1);
    assert_eq!(outcome["limit_reached"], Value::Null, "no cap stopped it");
    let path = outcome["reasoning_path"].as_array().unwrap();
    assert_eq!(path.len(), 1);
    assert_step(&path[0], "router", "No known agent named and no fallback agent; stopping.", query, "no idea", 1);
    assert!(path[0].get("limit_reached").is_none());
    assert_eq!(gw.mock.chat_requests().len(), 1);

    // The same workflow still routes when the router names an agent.
    gw.mock.enqueue(Script::reply("hr"));
    gw.mock.enqueue(Script::reply("HR here."));
    let outcome = run_ok(&gw, &token, "strict", &json!({ "query": "Hiring question" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "hr"]);
    assert_eq!(outcome["reasoning_path"][0]["action"], "Routed to hr agent.");
}

#[tokio::test]
async fn max_depth_stops_a_router_that_keeps_naming_itself() {
    let gw = gateway();
    let token = gw.user().await;
    gw.mock.set_script(Script::reply("router"));
    let query = "Go around in circles";
    let outcome = run_ok(&gw, &token, "loop", &json!({ "query": query })).await;
    assert_eq!(outcome["steps_executed"], 3);
    assert_eq!(names(&outcome["agents_used"]), ["router", "router", "router"]);
    assert_eq!(outcome["limit_reached"], "max_depth");
    assert_eq!(outcome["model_calls"], 3);
    assert_eq!(outcome["final_response"], "router");
    let path = outcome["reasoning_path"].as_array().unwrap();
    for (i, step) in path.iter().enumerate() {
        assert_step(step, "router", "Routed to router agent.", query, "router", 1);
        if i + 1 < path.len() {
            assert!(step.get("limit_reached").is_none(), "only the last step carries the limit: {step}");
        }
    }
    assert_eq!(path[2]["limit_reached"], "max_depth");
    assert_eq!(gw.mock.chat_requests().len(), 3, "no call beyond the depth cap");

    // max_depth 1: the router's choice is never run.
    gw.mock.set_script(Script::reply("sales"));
    let outcome = run_ok(&gw, &token, "shallow", &json!({ "query": query })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router"]);
    assert_eq!(outcome["limit_reached"], "max_depth");
    assert_eq!(outcome["reasoning_path"][0]["action"], "Routed to sales agent.");
    assert_eq!(outcome["reasoning_path"][0]["limit_reached"], "max_depth");
    assert_eq!(gw.mock.chat_requests().len(), 4);

    // A chain that ends by itself at exactly max_depth steps was not stopped by the cap.
    gw.mock.enqueue(Script::reply("sales"));
    gw.mock.enqueue(Script::reply("Numbers."));
    let outcome = run_ok(&gw, &token, "exact", &json!({ "query": query })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "sales"]);
    assert_eq!(outcome["limit_reached"], Value::Null);
    assert!(outcome["reasoning_path"][1].get("limit_reached").is_none());
}

#[tokio::test]
async fn max_iterations_one_runs_only_the_router() {
    let gw = gateway();
    let token = gw.user().await;
    gw.mock.set_script(Script::reply("sales"));
    let query = "Sales numbers, please";
    let outcome = run_ok(&gw, &token, "one-call", &json!({ "query": query })).await;
    assert_eq!(outcome["steps_executed"], 1);
    assert_eq!(names(&outcome["agents_used"]), ["router"]);
    assert_eq!(outcome["model_calls"], 1);
    assert_eq!(outcome["limit_reached"], "max_iterations");
    assert_eq!(outcome["final_response"], "sales");
    let step = &outcome["reasoning_path"][0];
    assert_step(step, "router", "Routed to sales agent.", query, "sales", 1);
    assert_eq!(step["limit_reached"], "max_iterations");
    assert_eq!(gw.mock.chat_requests().len(), 1);
}

/// A mock that calls the calculator whenever it may: every model call the budget allows is made.
fn tool_happy() -> Script {
    Script::tool_call("calculator", json!({ "expression": "6*7" })).text("Still crunching")
}

#[tokio::test]
async fn tool_rounds_count_against_max_iterations() {
    let gw = gateway();
    let token = gw.user().await;
    // (workflow, cap): router (1 call) → cruncher with what is left.
    for (workflow, cap) in [("crunch-2", 2usize), ("crunch-3", 3), ("crunch-4", 4), ("crunch-7", 7)] {
        let before = gw.mock.chat_requests().len();
        gw.mock.enqueue(Script::reply("cruncher"));
        gw.mock.set_script(tool_happy());
        let outcome = run_ok(&gw, &token, workflow, &json!({ "query": "What is 6*7?" })).await;
        let requests: Vec<RecordedRequest> = gw.mock.chat_requests().split_off(before);

        assert!(requests.len() <= cap, "{workflow}: {} model calls for a cap of {cap}", requests.len());
        assert_eq!(outcome["model_calls"], requests.len() as u64, "{workflow}: the reported count is the real one");
        assert_eq!(names(&outcome["agents_used"]), ["router", "cruncher"], "{workflow}");
        let path = outcome["reasoning_path"].as_array().unwrap();
        assert_eq!(path[0]["model_calls"], 1, "{workflow}");
        assert_eq!(path[1]["model_calls"], (requests.len() - 1) as u64, "{workflow}");
        // The mock always wants another tool round, so the cruncher spends all it is given.
        assert_eq!(requests.len(), cap, "{workflow}: the budget is used, not wasted");
        assert_eq!(outcome["final_response"], "Still crunching", "{workflow}");

        let cruncher = &requests[1..];
        assert!(cruncher.iter().all(|r| system_prompt(r) == "You crunch numbers."), "{workflow}");
        if cap == 2 {
            // One call left: no tools offered at all, so the model must answer.
            assert_eq!(cruncher[0].tools_offered(), None, "{workflow}");
            assert!(cruncher[0].body.get("tools").is_none(), "{workflow}: {:?}", cruncher[0].body);
        } else {
            // Tool rounds while they fit, then one forced answer.
            let (last, rounds) = cruncher.split_last().unwrap();
            for (i, round) in rounds.iter().enumerate() {
                assert_eq!(round.tools_offered(), Some(vec!["calculator".to_string()]), "{workflow} round {i}");
                assert_eq!(round.tool_results().len(), i, "{workflow} round {i}");
            }
            assert_eq!(last.tools_offered(), None, "{workflow}: the last call may not call tools");
            assert_eq!(last.tool_results().len(), rounds.len(), "{workflow}");
            let result: Value = serde_json::from_str(&last.tool_results()[0].content).unwrap();
            assert_eq!(result["result"], "42", "{workflow}: the tool really ran");
        }
    }

    // A tool-calling entry agent on its own is held to the cap as well.
    let before = gw.mock.chat_requests().len();
    gw.mock.set_script(tool_happy());
    let outcome = run_ok(&gw, &token, "crunch-alone", &json!({ "query": "What is 6*7?" })).await;
    let requests = gw.mock.chat_requests().split_off(before);
    assert_eq!(requests.len(), 3);
    assert_eq!(outcome["model_calls"], 3);
    assert_eq!(names(&outcome["agents_used"]), ["cruncher"]);
    assert_eq!(requests[2].tools_offered(), None);
}

#[tokio::test]
async fn a_users_own_agent_can_enter_a_workflow_for_its_owner_only() {
    let gw = Gateway::builder(Wire::OpenAi)
        .config(
            "[workflows.mine]\nentry_agent = \"alice-helper\"\n\n\
             [workflows.mine-or-hr]\nentry_agent = \"alice-helper\"\nfallback_agent = \"hr\"\n",
        )
        .start();
    let (alice, bob) = (gw.user().await, gw.user().await);
    let agent = json!({ "name": "alice-helper", "model": MODEL, "system_prompt": "You are Alice's helper." });
    expect_json(gw.post("/api/user/agents", &alice, &agent).await, 201).await;

    gw.mock.set_script(Script::reply("Helped."));
    let outcome = run_ok(&gw, &alice, "mine", &json!({ "query": "Help me" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["alice-helper"]);
    assert_eq!(outcome["final_response"], "Helped.");
    assert_eq!(outcome["reasoning_path"][0]["action"], "Helped.");
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(system_prompt(&requests[0]), "You are Alice's helper.");

    let error = expect_error(run(&gw, &bob, "mine", &json!({ "query": "Help me" })).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"], "Agent not found: alice-helper");
    assert_eq!(gw.mock.chat_requests().len(), 1, "no model call for a run that cannot start");

    // With a fallback, Bob's run goes to the fallback instead of Alice's agent.
    let outcome = run_ok(&gw, &bob, "mine-or-hr", &json!({ "query": "Help me" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["hr"]);
    let requests = gw.mock.chat_requests();
    assert_eq!(requests.len(), 2);
    assert!(system_prompt(&requests[1]).starts_with(HR_PROMPT_START));
    // ...while Alice's own run of it still uses her agent.
    let outcome = run_ok(&gw, &alice, "mine-or-hr", &json!({ "query": "Help me" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["alice-helper"]);
}

#[tokio::test]
async fn request_errors() {
    let gw = gateway();
    let token = gw.user().await;

    let unknown = expect_error(run(&gw, &token, "nope", &json!({ "query": "hi" })).await, 404, "NOT_FOUND").await;
    assert_eq!(unknown["error"], "Workflow 'nope' not found");

    for body in [json!({}), json!({ "query": "" }), json!({ "query": "   " }), json!({ "context": { "a": 1 } })] {
        let error = expect_error(run(&gw, &token, "default", &body).await, 400, "INVALID_INPUT").await;
        assert_eq!(error["error"], "Missing required field: query", "{body}");
    }
    for context in [json!([1, 2]), json!("text"), json!(42), json!(true)] {
        let body = json!({ "query": "hi", "context": context });
        let error = expect_error(run(&gw, &token, "default", &body).await, 422, "UNPROCESSABLE").await;
        assert_eq!(error["error"], "context must be a JSON object", "{body}");
    }
    let not_json = gw
        .server
        .v1(Method::POST, "/api/workflows/default", &token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(not_json, 400, "INVALID_INPUT").await;

    // No token, a bad token: 401 before anything else (the workflow need not exist).
    for path in ["/api/workflows/default", "/api/workflows/nope"] {
        let response =
            gw.server.client().post(gw.server.url(path)).json(&json!({ "query": "hi" })).send().await.unwrap();
        expect_error(response, 401, "AUTH_MISSING").await;
        let response = gw.post(path, "not-a-jwt", &json!({ "query": "hi" })).await;
        expect_error(response, 401, "AUTH_INVALID_TOKEN").await;
    }
    expect_error(gw.server.get("/api/workflows").send().await.unwrap(), 401, "AUTH_MISSING").await;
    expect_error(gw.get("/api/workflows", "not-a-jwt").await, 401, "AUTH_INVALID_TOKEN").await;

    assert!(gw.mock.chat_requests().is_empty(), "no failed request reached the model");
}

#[tokio::test]
async fn a_provider_failure_fails_the_run() {
    let gw = gateway();
    let token = gw.user().await;
    gw.mock.enqueue(Script::reply("sales"));
    gw.mock.enqueue(Script::error(500, "upstream exploded"));
    expect_error(run(&gw, &token, "default", &json!({ "query": "Sales?" })).await, 502, "LLM_ERROR").await;
    assert_eq!(gw.mock.chat_requests().len(), 2);
}

#[tokio::test]
async fn the_iteration_cap_can_stop_a_longer_chain_and_a_zero_cap_runs_nothing() {
    let gw = Gateway::builder(Wire::OpenAi)
        .config(
            "[workflows.two-calls]\nentry_agent = \"router\"\nmax_depth = 5\nmax_iterations = 2\n\n\
             [workflows.nothing]\nentry_agent = \"router\"\nmax_depth = 0\n",
        )
        .start();
    let token = gw.user().await;
    gw.mock.set_script(Script::reply("router"));
    let outcome = run_ok(&gw, &token, "two-calls", &json!({ "query": "Again" })).await;
    assert_eq!(names(&outcome["agents_used"]), ["router", "router"]);
    assert_eq!(outcome["limit_reached"], "max_iterations");
    assert_eq!(outcome["model_calls"], 2);
    let path = outcome["reasoning_path"].as_array().unwrap();
    assert!(path[0].get("limit_reached").is_none(), "{}", path[0]);
    assert_eq!(path[1]["limit_reached"], "max_iterations");
    assert_eq!(gw.mock.chat_requests().len(), 2);

    let outcome = run_ok(&gw, &token, "nothing", &json!({ "query": "Anything" })).await;
    assert_eq!(outcome["final_response"], "No response generated");
    assert_eq!(outcome["steps_executed"], 0);
    assert_eq!(outcome["agents_used"], json!([]));
    assert_eq!(outcome["reasoning_path"], json!([]));
    assert_eq!(outcome["model_calls"], 0);
    assert_eq!(outcome["limit_reached"], "max_depth");
    assert_eq!(gw.mock.chat_requests().len(), 2, "no model call");
}
