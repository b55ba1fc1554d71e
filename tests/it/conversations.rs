//! Conversations (API.md §1.7): list, read, rename, delete — only the caller's own; anybody
//! else's is a 404 exactly like a missing one, for chatting into it too.

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::harness::{expect_error, expect_json};
use crate::mock_provider::{Script, Wire};

/// Chat as `token` into conversation `context_id`, answering `reply`.
async fn say(gw: &Gateway, token: &str, context_id: &str, message: &str, reply: &str) {
    gw.mock.enqueue(Script::reply(reply));
    let body = json!({ "message": message, "agent_type": "product", "context_id": context_id });
    let answer = gw.chat_ok(token, &body).await;
    assert_eq!(answer["context_id"], context_id);
}

async fn send(gw: &Gateway, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = gw.server.v1(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

fn messages(conversation: &Value) -> Vec<(String, String)> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn rfc3339(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("not a string: {value}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"));
}

#[tokio::test]
async fn conversations_are_listed_read_renamed_and_deleted() {
    let gw = Gateway::start(Wire::OpenAi);
    let token = gw.user().await;
    // Timestamps have whole seconds, and ties are ordered by id (descending): these ids keep
    // "newest first" true whether or not the two chats fall in the same second.
    let (older, newer) = ("conv-a-older", "conv-b-newer");
    say(&gw, &token, older, "Hello", "Hi!").await;
    say(&gw, &token, newer, "Prices?", "Cheap.").await;

    let list = expect_json(gw.get("/api/conversations", &token).await, 200).await;
    let list = list.as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newer, older]);
    for item in list {
        assert_eq!(item["title"], "", "an unset title lists as \"\": {item}");
        assert_eq!(item["message_count"], 2);
        rfc3339(&item["created_at"]);
        rfc3339(&item["updated_at"]);
    }

    say(&gw, &token, older, "How are you?", "Fine.").await;
    let path = format!("/api/conversations/{older}");
    let conversation = expect_json(gw.get(&path, &token).await, 200).await;
    assert_eq!(conversation["id"], older);
    assert_eq!(conversation["title"], Value::Null, "an unset title reads as null");
    assert_eq!(conversation["message_count"], 4);
    let expected = [("user", "Hello"), ("assistant", "Hi!"), ("user", "How are you?"), ("assistant", "Fine.")];
    assert_eq!(messages(&conversation), pairs(&expected));
    for message in conversation["messages"].as_array().unwrap() {
        assert!(message["id"].as_str().is_some_and(|id| !id.is_empty()), "{message}");
        rfc3339(&message["created_at"]);
    }

    let renamed = send(&gw, Method::PUT, &path, &token, Some(json!({ "title": "Small talk" }))).await;
    let renamed = expect_json(renamed, 200).await;
    assert_eq!(renamed["success"], true);
    assert_eq!(renamed["title"], "Small talk");
    let conversation = expect_json(gw.get(&path, &token).await, 200).await;
    assert_eq!(conversation["title"], "Small talk");
    assert_eq!(conversation["messages"].as_array().unwrap().len(), 4, "renaming keeps the messages");
    let list = expect_json(gw.get("/api/conversations", &token).await, 200).await;
    assert!(list.as_array().unwrap().iter().any(|c| c["id"] == older && c["title"] == "Small talk"), "{list}");
    let cleared = send(&gw, Method::PUT, &path, &token, Some(json!({ "title": null }))).await;
    assert_eq!(expect_json(cleared, 200).await["success"], true);
    assert_eq!(expect_json(gw.get(&path, &token).await, 200).await["title"], Value::Null);

    let deleted = send(&gw, Method::DELETE, &path, &token, None).await;
    assert_eq!(deleted.status(), 204);
    assert!(deleted.text().await.unwrap().is_empty());
    let error = expect_error(gw.get(&path, &token).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"], "Conversation not found");
    expect_error(send(&gw, Method::DELETE, &path, &token, None).await, 404, "NOT_FOUND").await;
    let list = expect_json(gw.get("/api/conversations", &token).await, 200).await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newer]);

    let error = expect_error(gw.get("/api/conversations/never-existed", &token).await, 404, "NOT_FOUND").await;
    assert_eq!(error["error"], "Conversation not found");
    let response = gw.server.get("/api/conversations").send().await.unwrap();
    expect_error(response, 401, "AUTH_MISSING").await;
}

#[tokio::test]
async fn another_users_conversation_is_not_found() {
    let gw = Gateway::start(Wire::Ollama);
    let alice = gw.user().await;
    let bob = gw.user().await;
    say(&gw, &alice, "alice-private", "My secret", "Kept.").await;
    let path = "/api/conversations/alice-private";
    let calls_before = gw.mock.requests().len();

    let not_found = |response| async move {
        let error = expect_error(response, 404, "NOT_FOUND").await;
        assert_eq!(error["error"], "Conversation not found");
    };
    not_found(gw.get(path, &bob).await).await;
    not_found(send(&gw, Method::PUT, path, &bob, Some(json!({ "title": "Mine now" }))).await).await;
    not_found(send(&gw, Method::DELETE, path, &bob, None).await).await;
    let body = json!({ "message": "Append this", "agent_type": "product", "context_id": "alice-private" });
    not_found(gw.post("/api/chat", &bob, &body).await).await;
    not_found(gw.post("/api/chat/stream", &bob, &body).await).await;
    assert_eq!(gw.mock.requests().len(), calls_before, "nothing reached the provider");
    assert_eq!(expect_json(gw.get("/api/conversations", &bob).await, 200).await, json!([]));

    // Alice's conversation is untouched.
    let conversation = expect_json(gw.get(path, &alice).await, 200).await;
    assert_eq!(conversation["title"], Value::Null);
    assert_eq!(messages(&conversation), pairs(&[("user", "My secret"), ("assistant", "Kept.")]));

    // A tenant's API key cannot reach a user's conversation either.
    let (_, key) = gw.tenant("outsider").await;
    not_found(gw.post("/v1/chat", &key, &body).await).await;
}
