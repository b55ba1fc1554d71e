//! `POST /v1/completions` (OpenAI's legacy text completion) against a mock provider of each wire
//! format: the prompt as one user message, sampling passed upstream, `echo`, fill-in-the-middle
//! with `suffix`, streamed `text_completion` chunks with `include_usage`, and the 400s.

use serde_json::{Value, json};

use crate::gateway::{Gateway, MODEL, sse_events};
use crate::harness::expect_json;
use crate::mock_provider::{RecordedRequest, Script, Wire};
use crate::openai_responses::{openai_error, pair};

/// `stop` and `max_tokens` as each wire format carries them.
fn stop_and_max_tokens(wire: Wire, request: &RecordedRequest) -> (Value, Value) {
    let body = &request.body;
    match wire {
        Wire::OpenAi => (body["stop"].clone(), body["max_tokens"].clone()),
        Wire::Anthropic => (body["stop_sequences"].clone(), body["max_tokens"].clone()),
        Wire::Ollama => (body["options"]["stop"].clone(), body["options"]["num_predict"].clone()),
    }
}

#[tokio::test]
async fn a_plain_completion_in_every_wire_format() {
    let reply = "there lived a fox.";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (tenant, key) = gw.tenant("completer").await;
        gw.mock.set_script(Script::reply(reply).usage(6, 5));

        let body = json!({ "model": MODEL, "prompt": "Once upon a time", "max_tokens": 40, "stop": ["\n\n", "END"], "temperature": 0.2 });
        let answer = expect_json(gw.post("/v1/completions", &key, &body).await, 200).await;
        assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"), "{answer}");
        assert_eq!((answer["object"].as_str(), answer["model"].as_str()), (Some("text_completion"), Some(MODEL)));
        assert!(answer["created"].is_i64());
        assert_eq!(
            answer["choices"],
            json!([{ "text": reply, "index": 0, "logprobs": null, "finish_reason": "stop" }]),
            "{wire:?}"
        );
        assert_eq!(answer["usage"], json!({ "prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11 }));

        let requests = gw.mock.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].text_turns(),
            [pair("user", "Once upon a time")],
            "{wire:?}: the prompt is one user message"
        );
        assert_eq!(stop_and_max_tokens(wire, &requests[0]), (json!(["\n\n", "END"]), json!(40)), "{wire:?}");
        let usage = gw.server.admin_get(&format!("/api/admin/tenants/{tenant}/usage")).await;
        assert_eq!(usage["total_tokens"], 11, "{wire:?}: metered");
    }
}

#[tokio::test]
async fn max_tokens_defaults_to_16_and_echo_prepends_the_prompt() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("echo").await;
    gw.mock.set_script(Script::reply(" world"));

    let body = json!({ "model": MODEL, "prompt": ["Hello"], "echo": true, "n": 1 });
    let answer = expect_json(gw.post("/v1/completions", &key, &body).await, 200).await;
    assert_eq!(answer["choices"][0]["text"], "Hello world");
    assert_eq!(gw.mock.requests()[0].body["max_tokens"], 16, "OpenAI's documented default");
}

#[tokio::test]
async fn a_suffix_asks_the_model_to_fill_the_gap() {
    let gw = Gateway::start(Wire::Anthropic);
    let (_, key) = gw.tenant("fim").await;
    gw.mock.set_script(Script::reply("    return a + b"));

    let body =
        json!({ "model": MODEL, "prompt": "def add(a, b):\n", "suffix": "\nprint(add(1, 2))", "max_tokens": 64 });
    let answer = expect_json(gw.post("/v1/completions", &key, &body).await, 200).await;
    assert_eq!(answer["choices"][0]["text"], "    return a + b", "the reply is the middle, as is");
    let turns = gw.mock.requests()[0].text_turns();
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert_eq!(turns[0].0, "system");
    assert!(turns[0].1.contains("<FILL_HERE>"), "the instruction names the gap: {turns:?}");
    assert_eq!(turns[1], pair("user", "def add(a, b):\n<FILL_HERE>\nprint(add(1, 2))"));
}

#[tokio::test]
async fn a_streamed_completion_sends_text_chunks_then_usage_then_done() {
    let reply = "streamed words arrive in order";
    for wire in Wire::ALL {
        let gw = Gateway::start(wire);
        let (_, key) = gw.tenant("stream-completer").await;
        gw.mock.set_script(Script::reply(reply).usage(4, 8));

        let body = json!({
            "model": MODEL, "prompt": "Say:", "echo": true, "stream": true,
            "stream_options": { "include_usage": true }, "stop": "\n",
        });
        let events = sse_events(gw.post("/v1/completions", &key, &body).await).await;
        assert!(events.iter().all(|e| e.name.is_none()), "{wire:?}: unnamed events");
        let (done, chunks) = events.split_last().unwrap();
        assert_eq!(done.data, "[DONE]");
        let (usage, chunks) = chunks.split_last().unwrap();
        let usage = usage.json();
        assert_eq!(usage["choices"], json!([]), "{wire:?}");
        assert_eq!(usage["usage"], json!({ "prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12 }));
        let (last, deltas) = chunks.split_last().unwrap();
        let last = last.json();
        assert_eq!(
            (last["choices"][0]["finish_reason"].as_str(), &last["choices"][0]["text"]),
            (Some("stop"), &json!(""))
        );
        let mut text = String::new();
        for chunk in deltas {
            let chunk = chunk.json();
            assert_eq!(chunk["object"], "text_completion");
            assert!(chunk["id"].as_str().unwrap().starts_with("cmpl-"));
            assert_eq!(chunk["usage"], Value::Null, "every chunk but the last carries usage: null");
            assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
            assert_eq!(chunk["choices"][0]["logprobs"], Value::Null);
            text.push_str(chunk["choices"][0]["text"].as_str().unwrap());
        }
        assert_eq!(deltas[0].json()["choices"][0]["text"], "Say:", "{wire:?}: the echoed prompt comes first");
        assert_eq!(text, format!("Say:{reply}"), "{wire:?}");

        let request = &gw.mock.requests()[0];
        assert!(request.is_stream());
        assert_eq!(stop_and_max_tokens(wire, request).0, json!(["\n"]), "{wire:?}: stop passed upstream");
    }
}

#[tokio::test]
async fn an_agent_completes_with_its_own_limits() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("agent-completer").await;
    gw.mock.set_script(Script::reply("Sure."));

    let body = json!({ "model": "agent:assistant", "prompt": "Help me" });
    let answer = expect_json(gw.post("/v1/completions", &key, &body).await, 200).await;
    assert_eq!(answer["choices"][0]["text"], "Sure.");
    let request = &gw.mock.requests()[0];
    let turns = request.text_turns();
    assert_eq!(turns[0].0, "system", "the agent's prompt: {turns:?}");
    assert_eq!(turns.last().unwrap(), &pair("user", "Help me"));
    assert_ne!(request.body["max_tokens"], 16, "an agent is not held to the 16-token default");
}

#[tokio::test]
async fn invalid_completion_requests_are_400s_in_openai_shape() {
    let gw = Gateway::start(Wire::OpenAi);
    let (_, key) = gw.tenant("bad-completions").await;
    let cases = [
        (json!({ "model": MODEL, "prompt": "a", "n": 2 }), "n = 1"),
        (json!({ "model": MODEL, "prompt": "a", "best_of": 3 }), "best_of = 1"),
        (json!({ "model": MODEL, "prompt": ["a", "b"] }), "one prompt"),
        (json!({ "model": MODEL, "prompt": [1, 2, 3] }), "Token prompts"),
        (json!({ "model": MODEL, "prompt": "a", "logprobs": 2 }), "logprobs"),
        (json!({ "model": MODEL }), "prompt"),
        (json!({ "prompt": "a" }), "model"),
    ];
    for (body, says) in cases {
        let error = openai_error(gw.post("/v1/completions", &key, &body).await, 400, None).await;
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(error["error"]["message"].as_str().unwrap().contains(says), "{body} → {error}");
    }
    let unknown = json!({ "model": "no-such-model", "prompt": "a" });
    openai_error(gw.post("/v1/completions", &key, &unknown).await, 404, Some("model_not_found")).await;
    assert!(gw.mock.requests().is_empty());
}
