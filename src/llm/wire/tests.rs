//! Wire conversions for each provider, without a network.

use serde_json::json;

use super::*;
use crate::llm::types::{Message, Sampling, StreamEvent, ToolSpec};

fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages,
        tools: vec![ToolSpec {
            name: "calculator".into(),
            description: "math".into(),
            parameters: json!({"type": "object"}),
        }],
        tools_disabled: false,
        sampling: Sampling { max_tokens: Some(100), ..Sampling::default() },
    }
}

#[test]
fn a_forced_final_answer_lists_tools_but_forbids_calls() {
    let mut forced = request(history_with_tool_turn());
    forced.tools_disabled = true;
    let openai = request_body(ProviderKind::Openai, &forced, false);
    assert_eq!((openai["tools"].as_array().unwrap().len(), openai["tool_choice"].as_str()), (1, Some("none")));
    let anthropic = request_body(ProviderKind::Anthropic, &forced, false);
    assert_eq!(anthropic["tool_choice"]["type"], "none");
    assert!(anthropic["tools"].is_array(), "Anthropic needs the definitions when the history has tool blocks");
    let ollama = request_body(ProviderKind::Ollama, &forced, false);
    assert!(ollama.get("tools").is_none());
}

fn history_with_tool_turn() -> Vec<Message> {
    let call = ToolCall { id: "c1".into(), name: "calculator".into(), arguments: json!({"expression": "2+2"}) };
    vec![
        Message::new(Role::System, "be brief"),
        Message::new(Role::User, "what is 2+2?"),
        Message { tool_calls: vec![call.clone()], ..Message::new(Role::Assistant, "") },
        Message::tool_result(&call, "4"),
    ]
}

#[test]
fn openai_request_carries_tools_and_tool_results() {
    let body = request_body(ProviderKind::Openai, &request(history_with_tool_turn()), true);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["arguments"], r#"{"expression":"2+2"}"#);
    assert_eq!(body["messages"][3]["tool_call_id"], "c1");
    assert_eq!(body["tools"][0]["function"]["name"], "calculator");
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn anthropic_request_moves_system_out_and_tool_results_into_user_turns() {
    let body = request_body(ProviderKind::Anthropic, &request(history_with_tool_turn()), false);
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
    assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(body["messages"][2]["role"], "user");
    assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "c1");
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(body["max_tokens"], 100);
}

#[test]
fn ollama_request_uses_object_arguments_and_options() {
    let body = request_body(ProviderKind::Ollama, &request(history_with_tool_turn()), true);
    assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["arguments"]["expression"], "2+2");
    assert_eq!(body["messages"][3]["tool_name"], "calculator");
    assert_eq!(body["options"]["num_predict"], 100);
    assert_eq!(body["stream"], true);
}

#[test]
fn responses_parse_text_calls_and_usage() {
    let openai = json!({
        "choices": [{"message": {"content": null, "tool_calls": [{"id": "a", "type": "function",
            "function": {"name": "calculator", "arguments": "{\"expression\":\"1+1\"}"}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3}
    });
    let r = parse_response(ProviderKind::Openai, &openai).unwrap();
    assert_eq!(r.tool_calls[0].arguments["expression"], "1+1");
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.usage, Some(Usage { input_tokens: 5, output_tokens: 3, cached_input_tokens: 0 }));

    let anthropic = json!({"content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 2, "output_tokens": 1}});
    let r = parse_response(ProviderKind::Anthropic, &anthropic).unwrap();
    assert_eq!((r.content.as_str(), r.finish_reason), ("Hi", FinishReason::Stop));

    let ollama = json!({"message": {"role": "assistant", "content": "Yo"}, "done": true, "prompt_eval_count": 4, "eval_count": 2});
    let r = parse_response(ProviderKind::Ollama, &ollama).unwrap();
    assert_eq!(r.usage, Some(Usage { input_tokens: 4, output_tokens: 2, cached_input_tokens: 0 }));
    assert!(parse_response(ProviderKind::Openai, &json!({})).is_err());
}

#[test]
fn the_text_answer_fast_path_reads_every_body_as_the_json_tree_does() {
    // (body, whether the typed path answers it rather than handing it to the tree)
    let bodies: [(&str, bool); 16] = [
        (
            r#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            true,
        ),
        (r#"{"choices":[{"message":{"content":"cut"},"finish_reason":"length"}]}"#, true),
        (r#"{"choices":[{"message":{"content":null,"tool_calls":null},"finish_reason":null}],"usage":null}"#, true),
        (
            r#"{"choices":[{"message":{"content":"a\"b\u00e9"}}],"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":20}}}"#,
            true,
        ),
        (
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":null}}}"#,
            true,
        ),
        (
            r#"{"choices":[{"message":{"content":"x"}},{"message":{"content":"second"}}],"error":{"message":"ignored"}}"#,
            true,
        ),
        (
            r#"{"choices":[{"message":{"content":"x","tool_calls":[{"id":"k","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
            false,
        ),
        (r#"{"choices":[{"message":{"content":"x","tool_calls":[]}}]}"#, false),
        (r#"{"choices":[{"message":{"content":[{"type":"text","text":"parts"}]}}]}"#, false),
        (r#"{"choices":[{"message":{"content":"x"},"finish_reason":7}]}"#, false),
        (r#"{"choices":[{"message":{"content":"x"}}],"usage":5}"#, false),
        (r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":null,"completion_tokens":1.5}}"#, false),
        (r#"{"choices":[{"message":{"content":"x"}}],"choices":[{"message":{"content":"y"}}]}"#, false),
        (r#"{"choices":[{"finish_reason":"stop"}]}"#, false),
        (r#"{"choices":[]}"#, false),
        (r#"{"choices":[{"message":{"content":"x"}}]"#, false),
    ];
    for (body, fast) in bodies {
        let tree = serde_json::from_slice::<serde_json::Value>(body.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|value| parse_response(ProviderKind::Openai, &value));
        assert_eq!(parse_response_bytes(ProviderKind::Openai, body.as_bytes()), tree, "{body}");
        assert_eq!(openai_text_response(body.as_bytes()).is_some(), fast, "{body}");
    }
}

fn decode(kind: ProviderKind, lines: &[&str]) -> (Vec<String>, Result<ChatResponse, String>) {
    let mut decoder = StreamDecoder::new(kind);
    let mut deltas = Vec::new();
    for line in lines {
        for event in decoder.line(line).unwrap() {
            if let StreamEvent::Delta(text) = event {
                deltas.push(text);
            }
        }
    }
    (deltas, decoder.finish())
}

/// Every event of a stream, `Done` excluded.
fn events(kind: ProviderKind, lines: &[&str]) -> (Vec<StreamEvent>, ChatResponse) {
    let mut decoder = StreamDecoder::new(kind);
    let events = lines.iter().flat_map(|line| decoder.line(line).unwrap()).collect();
    (events, decoder.finish().unwrap())
}

#[test]
fn tool_call_deltas_are_streamed_in_every_format() {
    let (openai, done) = events(
        ProviderKind::Openai,
        &[
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"get_weather","arguments":""}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "data: [DONE]",
        ],
    );
    assert_eq!(
        openai,
        vec![
            StreamEvent::ToolCallStart { index: 0, id: "c1".into(), name: "get_weather".into() },
            StreamEvent::ToolCallArguments { index: 0, fragment: "{\"city\":".into() },
            StreamEvent::ToolCallArguments { index: 0, fragment: "\"Oslo\"}".into() },
        ]
    );
    assert_eq!(done.tool_calls[0].arguments, json!({"city": "Oslo"}));

    let (anthropic, _) = events(
        ProviderKind::Anthropic,
        &[
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"tu1","name":"get_weather","input":{}}}"#,
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Oslo\"}"}}"#,
            r#"data: {"type":"message_stop"}"#,
        ],
    );
    assert_eq!(anthropic[0], StreamEvent::ToolCallStart { index: 0, id: "tu1".into(), name: "get_weather".into() });
    assert_eq!(anthropic.len(), 2);

    let (ollama, done) = events(
        ProviderKind::Ollama,
        &[
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Oslo"}}}]},"done":true}"#,
        ],
    );
    assert!(matches!(&ollama[0], StreamEvent::ToolCallStart { index: 0, name, .. } if name == "get_weather"));
    assert_eq!(ollama[1], StreamEvent::ToolCallArguments { index: 0, fragment: r#"{"city":"Oslo"}"#.into() });
    assert_eq!(done.finish_reason, FinishReason::ToolCalls);
}

#[test]
fn parallel_calls_that_reuse_index_zero_stay_apart() {
    // Some Ollama-compatible servers number every parallel call 0; a new id means a new call.
    let (events, done) = events(
        ProviderKind::Openai,
        &[
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"one","arguments":"{}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"two","arguments":"{\"x\":1}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ],
    );
    let names: Vec<&str> = done.tool_calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(done.tool_calls[1].arguments, json!({"x": 1}));
    assert!(events.contains(&StreamEvent::ToolCallStart { index: 1, id: "b".into(), name: "two".into() }));
}

#[test]
fn a_usage_chunk_with_null_choices_is_read() {
    // vLLM's final usage chunk carries `choices: null`.
    let (_, done) = events(
        ProviderKind::Openai,
        &[
            r#"data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}"#,
            r#"data: {"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            "data: [DONE]",
        ],
    );
    assert_eq!(done.usage, Some(Usage { input_tokens: 3, output_tokens: 1, cached_input_tokens: 0 }));
}

#[test]
fn sampling_reaches_each_provider_in_its_own_terms() {
    let mut req = request(vec![Message::new(Role::User, "hi")]);
    req.sampling = Sampling {
        max_tokens: Some(50),
        temperature: Some(0.5),
        top_p: Some(0.9),
        stop: vec!["END".into()],
        seed: Some(7),
        user: Some("u1".into()),
        response_format: Some(ResponseFormat::JsonObject),
        tool_choice: Some(ToolChoice::Named("calculator".into())),
        parallel_tool_calls: Some(false),
    };
    let openai = request_body(ProviderKind::Openai, &req, true);
    assert_eq!(openai["stop"], json!(["END"]));
    assert_eq!((openai["seed"].as_i64(), openai["user"].as_str()), (Some(7), Some("u1")));
    assert_eq!(openai["tool_choice"]["function"]["name"], "calculator");
    assert_eq!(openai["parallel_tool_calls"], false);
    assert_eq!(openai["response_format"]["type"], "json_object");
    assert_eq!(openai["stream_options"]["include_usage"], true);
    let anthropic = request_body(ProviderKind::Anthropic, &req, false);
    assert_eq!(anthropic["stop_sequences"], json!(["END"]));
    assert_eq!(
        anthropic["tool_choice"],
        json!({"type": "tool", "name": "calculator", "disable_parallel_tool_use": true})
    );
    assert_eq!(anthropic["metadata"]["user_id"], "u1");
    assert!(anthropic.get("response_format").is_none());
    let ollama = request_body(ProviderKind::Ollama, &req, false);
    assert_eq!(ollama["options"]["stop"], json!(["END"]));
    assert_eq!((ollama["options"]["seed"].as_i64(), ollama["format"].as_str()), (Some(7), Some("json")));
}

#[test]
fn openai_stream_assembles_text_tool_calls_and_usage() {
    let (deltas, done) = decode(
        ProviderKind::Openai,
        &[
            r#"data: {"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"data: {"choices":[{"delta":{"content":"lo"}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"calculator","arguments":"{\"expr"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ession\":\"3*3\"}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}"#,
            "data: [DONE]",
        ],
    );
    assert_eq!(deltas, ["Hel", "lo"]);
    let done = done.unwrap();
    assert_eq!(done.content, "Hello");
    assert_eq!(done.tool_calls[0].arguments["expression"], "3*3");
    assert_eq!(done.usage, Some(Usage { input_tokens: 9, output_tokens: 4, cached_input_tokens: 0 }));
}

#[test]
fn anthropic_stream_assembles_text_and_usage() {
    let (deltas, done) = decode(
        ProviderKind::Anthropic,
        &[
            "event: message_start",
            r#"data: {"type":"message_start","message":{"usage":{"input_tokens":7}}}"#,
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}"#,
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"there"}}"#,
            r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
            r#"data: {"type":"message_stop"}"#,
        ],
    );
    assert_eq!(deltas, ["Hi ", "there"]);
    assert_eq!(done.unwrap().usage, Some(Usage { input_tokens: 7, output_tokens: 2, cached_input_tokens: 0 }));
}

#[test]
fn ollama_stream_and_truncation() {
    let (deltas, done) = decode(
        ProviderKind::Ollama,
        &[r#"{"message":{"content":"a"},"done":false}"#, r#"{"message":{"content":"b"},"done":true,"eval_count":2}"#],
    );
    assert_eq!(deltas, ["a", "b"]);
    assert_eq!(done.unwrap().content, "ab");
    let (_, truncated) = decode(ProviderKind::Ollama, &[r#"{"message":{"content":"a"},"done":false}"#]);
    assert!(truncated.is_err());
    let mut decoder = StreamDecoder::new(ProviderKind::Openai);
    assert!(decoder.line("data: {not json").is_err());
}

#[test]
fn provider_error_bodies_yield_their_message() {
    assert_eq!(error_message(r#"{"error":{"message":"bad key"}}"#).as_deref(), Some("bad key"));
    assert_eq!(error_message(r#"{"error":"model not found"}"#).as_deref(), Some("model not found"));
    assert_eq!(error_message("<html>"), None);
}

#[test]
fn anthropic_names_the_stop_sequence_that_ended_the_answer() {
    let body = json!({ "content": [{ "type": "text", "text": "one two" }], "stop_reason": "stop_sequence",
                       "stop_sequence": "three", "usage": { "input_tokens": 1, "output_tokens": 2 } });
    let r = parse_response(ProviderKind::Anthropic, &body).unwrap();
    assert_eq!((r.finish_reason, r.stop_sequence.as_deref()), (FinishReason::Stop, Some("three")));
    let (_, done) = events(
        ProviderKind::Anthropic,
        &[
            r#"data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"three"},"usage":{"output_tokens":2}}"#,
            r#"data: {"type":"message_stop"}"#,
        ],
    );
    assert_eq!(done.stop_sequence.as_deref(), Some("three"));
}

/// Every sampling field set, a named tool choice and a JSON schema: the OpenAI body in full.
fn everything() -> ChatRequest {
    let mut everything = request(history_with_tool_turn());
    everything.sampling = Sampling {
        max_tokens: Some(64),
        temperature: Some(0.9),
        top_p: Some(0.5),
        stop: vec!["END".into()],
        seed: Some(7),
        user: Some("u-1".into()),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
            strict: Some(true),
        }),
        tool_choice: Some(ToolChoice::Named("calculator".into())),
        parallel_tool_calls: Some(false),
    };
    everything
}

#[test]
fn the_openai_body_is_exactly_the_documented_request() {
    let body = request_body(ProviderKind::Openai, &everything(), true);
    let expected = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is 2+2?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "calculator", "arguments": "{\"expression\":\"2+2\"}"}}]},
            {"role": "tool", "content": "4", "tool_call_id": "c1"},
        ],
        "stream": true,
        "tools": [{"type": "function", "function": {"name": "calculator", "description": "math",
            "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "calculator"}},
        "parallel_tool_calls": false,
        "max_tokens": 64,
        "temperature": 0.9,
        "top_p": 0.5,
        "stop": ["END"],
        "seed": 7,
        "user": "u-1",
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
        "stream_options": {"include_usage": true},
    });
    assert_eq!(body, expected);
    // Without tools there is no tool choice or parallel flag, and unset settings are left out.
    let mut plain = everything();
    plain.tools.clear();
    plain.sampling = Sampling::default();
    let body = request_body(ProviderKind::Openai, &plain, false);
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["messages", "model", "stream"]);
}

#[test]
fn the_bytes_sent_are_the_request_body_in_every_wire() {
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic, ProviderKind::Ollama] {
        for stream in [false, true] {
            let request = everything();
            let sent: Value = serde_json::from_slice(&encode_request(kind, &request, stream).unwrap()).unwrap();
            assert_eq!(sent, request_body(kind, &request, stream), "{kind:?}, stream {stream}");
        }
    }
}

#[test]
fn openai_chunks_off_the_text_path_decode_as_before() {
    // Text, then a tool call in the middle, escapes, vLLM's `choices: null` usage chunk and a
    // finish reason: the text fast path and the general path must agree on all of it.
    let (events, done) = events(
        ProviderKind::Openai,
        &[
            r#"data: {"choices":[{"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
            r#"data: {"choices":[{"delta":{"content":"Say \"hi\"\n"},"finish_reason":null}]}"#,
            r#"data: {"choices":[{"delta":{"content":7}}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"calculator","arguments":"{}"}}]}}]}"#,
            r#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
            r#"data: {"choices":null,"usage":{"prompt_tokens":12,"completion_tokens":5}}"#,
            "data: [DONE]",
        ],
    );
    assert_eq!(events[0], StreamEvent::Delta("Say \"hi\"\n".into()));
    assert!(matches!(&events[1], StreamEvent::ToolCallStart { name, .. } if name == "calculator"));
    assert_eq!(events[2], StreamEvent::ToolCallArguments { index: 0, fragment: "{}".into() });
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(done.content, "Say \"hi\"\n");
    assert_eq!(done.finish_reason, FinishReason::ToolCalls);
    assert_eq!(done.usage, Some(Usage { input_tokens: 12, output_tokens: 5, cached_input_tokens: 0 }));
    let mut decoder = StreamDecoder::new(ProviderKind::Openai);
    assert_eq!(decoder.line(r#"data: {"error":{"message":"overloaded"}}"#), Err("overloaded".to_string()));
}
