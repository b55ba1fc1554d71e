//! The tool-call loop against a mock provider of each wire format: the calculator round trip
//! (plain and streamed), parallel calls, `max_iterations` and the forced final answer, tool
//! errors fed back to the model, and agents without tools.

use serde_json::{Value, json};

use crate::gateway::{Gateway, sse_events};
use crate::mock_provider::{RecordedRequest, Script, SentToolCall, SentToolResult, Wire};

const AGENTS: &str = r#"
[[agents]]
name = "calc"
model = "mock-model"
system_prompt = "You compute things."
tools = ["calculator"]
max_iterations = 3

[[agents]]
name = "looper"
tools = ["calculator"]
max_iterations = 2

[[agents]]
name = "searcher"
tools = ["web_search"]
"#;

const FINAL_ANSWER_NOTE_START: &str = "You have used all the tool calls available";

fn gateway(wire: Wire) -> Gateway {
    Gateway::builder(wire).config(AGENTS).start()
}

fn calculator() -> Option<Vec<String>> {
    Some(vec!["calculator".to_string()])
}

/// The id the mock gave call `index` of its `sequence`-th answer, as the server must echo it;
/// Ollama has no call ids (its results carry the tool's name instead).
fn mock_call_id(wire: Wire, sequence: usize, index: usize) -> Option<String> {
    match wire {
        Wire::OpenAi => Some(format!("call_mock_{sequence}_{index}")),
        Wire::Anthropic => Some(format!("toolu_mock_{sequence}_{index}")),
        Wire::Ollama => None,
    }
}

/// The tool result sent for call `index` of the mock's `sequence`-th answer.
fn result_for(wire: Wire, sequence: usize, index: usize, tool: &str, content: &str) -> SentToolResult {
    SentToolResult {
        call_id: mock_call_id(wire, sequence, index),
        tool_name: (wire == Wire::Ollama).then(|| tool.to_string()),
        content: content.to_string(),
    }
}

fn calculator_result(expression: &str, result: &str) -> String {
    json!({ "expression": expression, "result": result }).to_string()
}

fn parsed(result: &SentToolResult) -> Value {
    serde_json::from_str(&result.content).unwrap_or_else(|e| panic!("a tool result is JSON ({e}): {result:?}"))
}

fn last_text_turn(request: &RecordedRequest) -> (String, String) {
    request.text_turns().pop().unwrap()
}

#[tokio::test]
async fn a_calculator_call_round_trips_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = gateway(wire);
        let token = gw.user().await;
        let arguments = json!({ "expression": "2+3*4" });
        gw.mock.enqueue(Script::tool_call("calculator", arguments.clone()).usage(10, 3));
        gw.mock.set_script(Script::reply("2+3*4 is 14.").usage(30, 6));

        let answer = gw.chat_ok(&token, &json!({ "message": "What is 2+3*4?", "agent_type": "calc" })).await;
        assert_eq!(answer["response"], "2+3*4 is 14.", "{wire:?}");
        assert_eq!(answer["finish_reason"], "stop");
        assert_eq!(answer["tokens_used"], 10 + 3 + 30 + 6, "both model calls count");

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 2, "{wire:?}");
        assert_eq!(requests[0].tools_offered(), calculator());
        assert_eq!(requests[1].tools_offered(), calculator(), "tools stay offered while rounds remain");
        let call = SentToolCall { id: mock_call_id(wire, 1, 0), name: "calculator".into(), arguments };
        assert_eq!(requests[1].tool_calls_sent(), [call], "{wire:?}: the assistant's call is echoed back");
        let results = requests[1].tool_results();
        assert_eq!(results, [result_for(wire, 1, 0, "calculator", &calculator_result("2+3*4", "14"))], "{wire:?}");
        assert_eq!(parsed(&results[0])["result"], "14");
        let transcript = requests[1].transcript();
        let question = transcript.iter().position(|(_, text)| text == "What is 2+3*4?").unwrap();
        let result = transcript.iter().position(|(role, _)| role == "tool").unwrap();
        assert!(question < result, "{wire:?}: the result follows the question: {transcript:?}");
    }
}

#[tokio::test]
async fn a_streamed_calculator_call_round_trips_in_each_wire_format() {
    for wire in Wire::ALL {
        let gw = gateway(wire);
        let token = gw.user().await;
        gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "(1+2)*5" })));
        gw.mock.set_script(Script::reply("The result is 15."));

        let response =
            gw.post("/api/chat/stream", &token, &json!({ "message": "(1+2)*5?", "agent_type": "calc" })).await;
        let events = sse_events(response).await;
        let text: String = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(text, "The result is 15.", "{wire:?}: {events:?}");

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 2, "{wire:?}");
        assert!(requests.iter().all(RecordedRequest::is_stream));
        let expected = result_for(wire, 1, 0, "calculator", &calculator_result("(1+2)*5", "15"));
        assert_eq!(requests[1].tool_results(), [expected], "{wire:?}: the streamed call was assembled and run");
    }
}

#[tokio::test]
async fn parallel_calls_send_back_one_result_each() {
    for wire in Wire::ALL {
        let gw = gateway(wire);
        let token = gw.user().await;
        let calls = [("calculator", json!({ "expression": "2+3*4" })), ("calculator", json!({ "expression": "10/4" }))];
        gw.mock.enqueue(Script::tool_calls(&calls));
        gw.mock.set_script(Script::reply("14 and 2.5"));

        let answer = gw.chat_ok(&token, &json!({ "message": "Both, please", "agent_type": "calc" })).await;
        assert_eq!(answer["response"], "14 and 2.5");
        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 2, "{wire:?}: both calls answered in one round");
        assert_eq!(requests[1].tool_calls_sent().len(), 2);
        let expected = [
            result_for(wire, 1, 0, "calculator", &calculator_result("2+3*4", "14")),
            result_for(wire, 1, 1, "calculator", &calculator_result("10/4", "2.5")),
        ];
        assert_eq!(requests[1].tool_results(), expected, "{wire:?}");
        if wire == Wire::Anthropic {
            let last = requests[1].body["messages"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["role"], "user");
            assert_eq!(last["content"].as_array().unwrap().len(), 2, "both results in one user turn: {last}");
        }
    }
}

#[tokio::test]
async fn max_iterations_bounds_the_rounds_and_forces_a_final_answer() {
    for wire in Wire::ALL {
        let gw = gateway(wire);
        let token = gw.user().await;
        // A model that never stops calling tools.
        gw.mock.set_script(
            Script::tool_call("calculator", json!({ "expression": "1+1" })).text("Still working.").usage(5, 1),
        );

        let answer = gw.chat_ok(&token, &json!({ "message": "Loop", "agent_type": "looper" })).await;
        assert_eq!(answer["response"], "Still working.", "{wire:?}: the final request's text is the answer");
        assert_eq!(answer["tokens_used"], 3 * 6);

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 3, "{wire:?}: two tool rounds and one final request");
        assert_eq!(requests[0].tools_offered(), calculator());
        assert_eq!(requests[1].tools_offered(), calculator());
        assert_eq!(requests[2].tools_offered(), None, "{wire:?}: the final request offers no callable tools");
        if wire != Wire::Ollama {
            // Still listed (Anthropic refuses tool blocks in a history without definitions).
            assert!(requests[2].body["tools"].is_array(), "{wire:?}: tools listed with tool_choice none");
        }
        assert_eq!(requests[2].tool_results().len(), 2, "the results of both rounds");
        let (role, note) = last_text_turn(&requests[2]);
        assert!(role == "user" && note.starts_with(FINAL_ANSWER_NOTE_START), "{wire:?}: {note:?}");
    }
}

#[tokio::test]
async fn tool_errors_go_back_to_the_model_and_the_chat_goes_on() {
    for wire in Wire::ALL {
        let gw = gateway(wire);
        let token = gw.user().await;

        // A tool the agent does not have.
        gw.mock.enqueue(Script::tool_call("web_search", json!({ "query": "weather" })));
        gw.mock.enqueue(Script::reply("I cannot search."));
        let answer = gw.chat_ok(&token, &json!({ "message": "Weather?", "agent_type": "calc" })).await;
        assert_eq!(answer["response"], "I cannot search.");
        let results = gw.mock.requests()[1].tool_results();
        assert_eq!(results.len(), 1, "{wire:?}");
        assert_eq!(parsed(&results[0]), json!({ "error": "Tool 'web_search' is not available to this agent" }));

        // web_search without a configured endpoint: the air-gapped case.
        gw.mock.enqueue(Script::tool_call("web_search", json!({ "query": "weather" })));
        gw.mock.enqueue(Script::reply("Search is not available here."));
        let answer = gw.chat_ok(&token, &json!({ "message": "Weather?", "agent_type": "searcher" })).await;
        assert_eq!(answer["response"], "Search is not available here.");
        let requests = gw.mock.requests();
        assert_eq!(requests[2].tools_offered(), Some(vec!["web_search".to_string()]));
        let results = requests[3].tool_results();
        assert_eq!(results.len(), 1, "{wire:?}");
        let error = parsed(&results[0])["error"].as_str().unwrap().to_string();
        assert!(error.contains("not configured"), "{wire:?}: {error}");

        // A calculator error (bad expression) is a result too.
        gw.mock.enqueue(Script::tool_call("calculator", json!({ "expression": "2+*" })));
        gw.mock.enqueue(Script::reply("That is not an expression."));
        gw.chat_ok(&token, &json!({ "message": "2+*?", "agent_type": "calc" })).await;
        let results = gw.mock.requests()[5].tool_results();
        assert!(parsed(&results[0])["error"].as_str().unwrap().starts_with("Cannot evaluate '2+*'"), "{results:?}");
    }
}

#[tokio::test]
async fn agents_without_tools_are_offered_none() {
    for wire in Wire::ALL {
        let gw = gateway(wire);
        let token = gw.user().await;
        gw.chat_ok(&token, &json!({ "message": "hi", "agent_type": "product" })).await;
        let (_, key) = gw.tenant("toolless").await;
        let answer = expect_run(&gw, &key).await;
        assert_eq!(answer["status"], "completed");
        for request in gw.mock.requests() {
            assert_eq!(request.tools_offered(), None, "{wire:?}: {:?}", request.body);
            assert!(request.body.get("tools").is_none());
        }
    }
}

async fn expect_run(gw: &Gateway, key: &str) -> Value {
    let response = gw.post("/v1/agents/assistant/run", key, &json!({ "input": { "message": "hi" } })).await;
    crate::harness::expect_json(response, 200).await
}
