//! User memory (`GET /api/memory`, API.md §1.4): facts and preferences learned from what a user
//! says in successful chats (never from the model's replies), updated in place, forgotten on
//! request, given back in the system prompt of that user's later chats, never shown or given to
//! another user, and switched off by `[memory] learn = false` / `inject = false`.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::gateway::{Gateway, PASSWORD, sse_events};
use crate::harness::{expect_error, expect_json};
use crate::mock_provider::{RecordedRequest, Script, Wire};

const PRODUCT_PROMPT_START: &str = "You are a product specialist.";
const SECTION_HEADER: &str = "What you know about this user from earlier conversations:";

/// A fresh user: (access token, user id).
async fn user(gw: &Gateway) -> (String, String) {
    let email = format!("memory-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered = gw.server.register(&email, PASSWORD).await;
    (registered["access_token"].as_str().unwrap().to_string(), registered["user_id"].as_str().unwrap().to_string())
}

/// One successful chat with the product agent (a single model call); returns what the model was
/// sent.
async fn chat(gw: &Gateway, token: &str, message: &str) -> RecordedRequest {
    let before = gw.mock.chat_requests().len();
    gw.chat_ok(token, &json!({ "message": message, "agent_type": "product" })).await;
    let mut requests = gw.mock.chat_requests().split_off(before);
    assert_eq!(requests.len(), 1, "one model call per chat");
    requests.pop().unwrap()
}

async fn memory(gw: &Gateway, token: &str) -> Value {
    expect_json(gw.get("/api/memory", token).await, 200).await
}

fn system_prompt(request: &RecordedRequest) -> String {
    let systems: Vec<String> =
        request.transcript().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect();
    assert_eq!(systems.len(), 1, "one system prompt: {:?}", request.body);
    systems.into_iter().next().unwrap()
}

/// `(category, fact_key, fact_value, confidence)` of every fact.
fn facts(memory: &Value) -> Vec<(String, String, String, f64)> {
    memory["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["category"].as_str().unwrap().to_string(),
                f["fact_key"].as_str().unwrap().to_string(),
                f["fact_value"].as_str().unwrap().to_string(),
                f["confidence"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn fact(category: &str, key: &str, value: &str, confidence: f64) -> (String, String, String, f64) {
    (category.to_string(), key.to_string(), value.to_string(), confidence)
}

fn find_fact<'a>(memory: &'a Value, key: &str) -> &'a Value {
    memory["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fact_key"] == key)
        .unwrap_or_else(|| panic!("no fact {key} in {memory}"))
}

fn timestamp(value: &Value) -> OffsetDateTime {
    let text = value.as_str().unwrap_or_else(|| panic!("not a string: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
}

#[tokio::test]
async fn a_new_user_has_no_memory() {
    let gw = Gateway::start(Wire::OpenAi);
    let (token, user_id) = user(&gw).await;
    assert_eq!(memory(&gw, &token).await, json!({ "user_id": user_id, "preferences": [], "facts": [] }));

    expect_error(gw.server.get("/api/memory").send().await.unwrap(), 401, "AUTH_MISSING").await;
    expect_error(gw.get("/api/memory", "not-a-jwt").await, 401, "AUTH_INVALID_TOKEN").await;
}

#[tokio::test]
async fn successful_chats_teach_facts_and_preferences() {
    let gw = Gateway::start(Wire::OpenAi);
    let (token, user_id) = user(&gw).await;
    // The model's own words are never learned.
    gw.mock.set_script(Script::reply("My name is Bot. I live in the cloud. I prefer formal answers."));

    let before = OffsetDateTime::now_utc().unix_timestamp();
    chat(&gw, &token, "Hi! My employer is Acme Corp. I prefer concise answers.").await;
    let after = OffsetDateTime::now_utc().unix_timestamp();
    let learned = memory(&gw, &token).await;
    assert_eq!(learned["user_id"], user_id);
    assert_eq!(facts(&learned), [fact("work", "employer", "Acme Corp", 0.8)]);
    assert_eq!(
        learned["preferences"],
        json!([{ "category": "communication", "key": "tone", "value": "concise answers", "confidence": 0.9 }])
    );
    let employer = find_fact(&learned, "employer");
    assert_eq!(employer.as_object().unwrap().len(), 8, "{employer}");
    assert!(uuid::Uuid::parse_str(employer["id"].as_str().unwrap()).is_ok(), "{employer}");
    assert_eq!(employer["user_id"], user_id);
    let created = timestamp(&employer["created_at"]).unix_timestamp();
    assert!((before..=after).contains(&created), "{created} outside [{before}, {after}]");
    assert_eq!(employer["updated_at"], employer["created_at"]);

    // More shapes, one message each; talk about the conversation teaches nothing.
    chat(&gw, &token, "Remember that my boss is Dana").await;
    chat(&gw, &token, "I live in Lisbon").await;
    chat(&gw, &token, "Call me Sam!").await;
    chat(&gw, &token, "My question is how to sort a list").await;
    chat(&gw, &token, "The weather is nice").await;
    chat(&gw, &token, "Please always reply in French").await;
    let learned = memory(&gw, &token).await;
    assert_eq!(
        facts(&learned),
        [
            fact("work", "employer", "Acme Corp", 0.8),
            fact("work", "boss", "Dana", 0.95),
            fact("personal", "location", "Lisbon", 0.8),
            fact("personal", "preferred_name", "Sam", 0.8),
        ]
    );
    let preferences = learned["preferences"].as_array().unwrap();
    assert_eq!(preferences.len(), 2, "{learned}");
    assert!(
        preferences
            .contains(&json!({ "category": "communication", "key": "language", "value": "French", "confidence": 0.9 }))
    );
    assert!(
        !learned.to_string().contains("Bot") && !learned.to_string().contains("cloud"),
        "the model's reply was learned: {learned}"
    );

    // A streamed chat teaches too.
    gw.mock.set_script(Script::reply("Noted."));
    let body = json!({ "message": "My dog is Rex", "agent_type": "product" });
    sse_events(gw.post("/api/chat/stream", &token, &body).await).await;
    let learned = memory(&gw, &token).await;
    assert!(facts(&learned).contains(&fact("personal", "dog", "Rex", 0.8)), "{learned}");

    // A chat that fails teaches nothing.
    gw.mock.enqueue(Script::error(500, "upstream exploded"));
    let failed = gw.post("/api/chat", &token, &json!({ "message": "My cat is Tom", "agent_type": "product" })).await;
    expect_error(failed, 502, "LLM_ERROR").await;
    let after_failure = memory(&gw, &token).await;
    assert_eq!(after_failure, learned, "a failed chat changed memory");
}

#[tokio::test]
async fn learning_the_same_key_again_updates_it() {
    let gw = Gateway::start(Wire::OpenAi);
    gw.mock.set_script(Script::reply("Noted."));
    let (token, _) = user(&gw).await;
    chat(&gw, &token, "My employer is Acme Corp. I prefer concise answers.").await;
    let first = memory(&gw, &token).await;
    let original = find_fact(&first, "employer").clone();

    // Timestamps have one-second resolution; make sure the update lands in a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    chat(&gw, &token, "I work for Globex. I prefer formal answers.").await;
    let second = memory(&gw, &token).await;
    assert_eq!(facts(&second), [fact("work", "employer", "Globex", 0.8)], "updated, not added");
    let updated = find_fact(&second, "employer");
    assert_eq!(updated["id"], original["id"], "the fact keeps its id");
    assert_eq!(updated["created_at"], original["created_at"], "and its creation time");
    assert!(timestamp(&updated["updated_at"]) > timestamp(&original["updated_at"]), "{original} → {updated}");
    assert_eq!(
        second["preferences"],
        json!([{ "category": "communication", "key": "tone", "value": "formal answers", "confidence": 0.9 }])
    );

    // "remember" raises the confidence of the same fact.
    chat(&gw, &token, "Remember that my employer is Initech").await;
    let third = memory(&gw, &token).await;
    assert_eq!(facts(&third), [fact("work", "employer", "Initech", 0.95)]);
    assert_eq!(find_fact(&third, "employer")["id"], original["id"]);
}

#[tokio::test]
async fn forget_removes_the_named_fact_only() {
    let gw = Gateway::start(Wire::OpenAi);
    gw.mock.set_script(Script::reply("Noted."));
    let (token, _) = user(&gw).await;
    chat(&gw, &token, "My employer is Acme Corp. I live in Lisbon. I prefer concise answers.").await;
    assert_eq!(facts(&memory(&gw, &token).await).len(), 2);

    chat(&gw, &token, "Forget my employer.").await;
    let learned = memory(&gw, &token).await;
    assert_eq!(facts(&learned), [fact("personal", "location", "Lisbon", 0.8)]);
    assert_eq!(learned["preferences"].as_array().unwrap().len(), 1, "preferences stay");

    // Forgetting what is not known changes nothing.
    chat(&gw, &token, "Forget my shoe size").await;
    assert_eq!(memory(&gw, &token).await, learned);

    // A forgotten fact is no longer given to the model.
    let sent = chat(&gw, &token, "What do you know?").await;
    let prompt = system_prompt(&sent);
    assert!(prompt.contains("- location (personal): Lisbon"), "{prompt}");
    assert!(!prompt.contains("Acme"), "a forgotten fact is still in the prompt: {prompt}");
}

#[tokio::test]
async fn memory_is_given_back_in_the_users_later_chats() {
    let gw = Gateway::start(Wire::OpenAi);
    gw.mock.set_script(Script::reply("Noted."));
    let (token, _) = user(&gw).await;

    let first = chat(&gw, &token, "My employer is Acme Corp. I prefer concise answers.").await;
    let plain = system_prompt(&first);
    assert!(plain.starts_with(PRODUCT_PROMPT_START), "{plain}");
    assert!(!plain.contains(SECTION_HEADER), "nothing was known before this chat: {plain}");

    let second = chat(&gw, &token, "Which product fits my company?").await;
    assert_eq!(
        system_prompt(&second),
        format!(
            "{plain}\n\n{SECTION_HEADER}\n- employer (work): Acme Corp\n- prefers (communication / tone): concise answers"
        )
    );

    // The most recently learned comes first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    chat(&gw, &token, "I live in Lisbon").await;
    let third = chat(&gw, &token, "Anything else?").await;
    assert_eq!(
        system_prompt(&third),
        format!(
            "{plain}\n\n{SECTION_HEADER}\n- location (personal): Lisbon\n- employer (work): Acme Corp\n\
             - prefers (communication / tone): concise answers"
        )
    );

    // Streamed chats and routed chats get it too (the routing call itself is not about the user).
    let body = json!({ "message": "Hello", "agent_type": "product" });
    sse_events(gw.post("/api/chat/stream", &token, &body).await).await;
    let streamed = gw.mock.chat_requests().pop().unwrap();
    assert!(system_prompt(&streamed).contains("- employer (work): Acme Corp"), "{:?}", streamed.body);

    let before = gw.mock.chat_requests().len();
    gw.mock.enqueue(Script::reply("product"));
    gw.chat_ok(&token, &json!({ "message": "Which product should I buy?" })).await;
    let routed = gw.mock.chat_requests().split_off(before);
    assert_eq!(routed.len(), 2);
    let answer_prompt = system_prompt(&routed[1]);
    assert!(answer_prompt.starts_with(PRODUCT_PROMPT_START), "{answer_prompt}");
    assert!(answer_prompt.contains("- employer (work): Acme Corp"), "{answer_prompt}");
}

#[tokio::test]
async fn one_users_memory_is_never_anothers() {
    let gw = Gateway::start(Wire::OpenAi);
    gw.mock.set_script(Script::reply("Noted."));
    let (alice, alice_id) = user(&gw).await;
    let (bob, bob_id) = user(&gw).await;

    chat(&gw, &alice, "My employer is Acme Corp. I prefer concise answers. Call me Zebulon.").await;
    assert_eq!(memory(&gw, &bob).await, json!({ "user_id": bob_id, "preferences": [], "facts": [] }));
    let bobs_prompt = system_prompt(&chat(&gw, &bob, "Which product fits my company?").await);
    assert!(!bobs_prompt.contains(SECTION_HEADER), "Bob got a memory section: {bobs_prompt}");
    for secret in ["Acme", "concise", "Zebulon"] {
        assert!(!bobs_prompt.contains(secret), "Bob's prompt has Alice's {secret:?}: {bobs_prompt}");
    }

    // Both learn the same key: each sees and is told only their own.
    chat(&gw, &bob, "My employer is Globex.").await;
    let alices = memory(&gw, &alice).await;
    let bobs = memory(&gw, &bob).await;
    assert_eq!(alices["user_id"], alice_id);
    assert_eq!(bobs["user_id"], bob_id);
    assert_eq!(facts(&bobs), [fact("work", "employer", "Globex", 0.8)]);
    assert_eq!(bobs["preferences"], json!([]));
    assert!(facts(&alices).contains(&fact("work", "employer", "Acme Corp", 0.8)), "{alices}");
    assert!(!alices.to_string().contains("Globex"), "{alices}");
    for fact in bobs["facts"].as_array().unwrap() {
        assert_eq!(fact["user_id"], bob_id);
    }
    for fact in alices["facts"].as_array().unwrap() {
        assert_eq!(fact["user_id"], alice_id);
    }
    let alices_prompt = system_prompt(&chat(&gw, &alice, "Hello").await);
    assert!(alices_prompt.contains("- employer (work): Acme Corp") && !alices_prompt.contains("Globex"));
    let bobs_prompt = system_prompt(&chat(&gw, &bob, "Hello").await);
    assert!(bobs_prompt.contains("- employer (work): Globex"), "{bobs_prompt}");
    for secret in ["Acme", "concise", "Zebulon"] {
        assert!(!bobs_prompt.contains(secret), "Bob's prompt has Alice's {secret:?}: {bobs_prompt}");
    }

    // Bob forgetting his employer leaves Alice's alone.
    chat(&gw, &bob, "Forget my employer").await;
    assert!(facts(&memory(&gw, &bob).await).is_empty());
    assert_eq!(memory(&gw, &alice).await, alices);
}

#[tokio::test]
async fn learn_false_learns_nothing() {
    let gw = Gateway::builder(Wire::OpenAi).config("[memory]\nlearn = false\n").start();
    gw.mock.set_script(Script::reply("Noted."));
    let (token, user_id) = user(&gw).await;
    chat(&gw, &token, "My employer is Acme Corp. I prefer concise answers. Remember that my boss is Dana.").await;
    assert_eq!(memory(&gw, &token).await, json!({ "user_id": user_id, "preferences": [], "facts": [] }));
    let prompt = system_prompt(&chat(&gw, &token, "Hello").await);
    assert!(prompt.starts_with(PRODUCT_PROMPT_START) && !prompt.contains(SECTION_HEADER), "{prompt}");
}

#[tokio::test]
async fn inject_false_learns_but_keeps_memory_out_of_prompts() {
    let gw = Gateway::builder(Wire::OpenAi).config("[memory]\ninject = false\n").start();
    gw.mock.set_script(Script::reply("Noted."));
    let (token, _) = user(&gw).await;
    let first = system_prompt(&chat(&gw, &token, "My employer is Acme Corp. I prefer concise answers.").await);
    assert_eq!(facts(&memory(&gw, &token).await), [fact("work", "employer", "Acme Corp", 0.8)]);
    let second = system_prompt(&chat(&gw, &token, "Hello").await);
    assert_eq!(second, first, "the prompt is the agent's own");
    assert!(!second.contains(SECTION_HEADER) && !second.contains("Acme"), "{second}");
}
