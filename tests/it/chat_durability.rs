//! Durability that fits the record (`[storage].sync_interval_ms`): chat turns are answered
//! before their fsync, so under concurrent chat load every turn must be readable the moment it
//! is answered (read-your-writes), and a SIGKILL may lose at most the turns answered within the
//! sync interval before it — never an older one, and never a durable write (tenants created
//! meanwhile).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::{KEY_ENV, PROVIDER_KEY, provider_config};
use crate::harness::BinaryServer;
use crate::mock_provider::{MockProvider, Wire};

const SYNC_INTERVAL_MS: u64 = 200;
/// Scheduling and fsync time on a busy CI machine, on top of the interval.
const SLACK_MS: u64 = 300;
const CHATTERS: usize = 6;
const CREATORS: usize = 2;

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Per conversation: when each turn was answered, in order.
    turns: HashMap<String, Vec<Instant>>,
    /// Per conversation: turns sent, answered or not.
    sent: HashMap<String, usize>,
    /// Per conversation: the index of the user (token) who owns it.
    owner: HashMap<String, usize>,
    tenants: Vec<String>,
    failures: Vec<String>,
}

async fn register(client: &reqwest::Client, server: &BinaryServer, i: usize) -> String {
    let email = format!("chatter-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
    let response = client
        .post(server.url("/api/auth/register"))
        .json(&json!({ "email": email, "password": "correct-horse-battery" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().expect("an access token").to_string()
}

/// One user chatting in one conversation until the server goes away; after every answered
/// turn the conversation is read back and must hold every turn so far.
async fn chat(
    client: reqwest::Client,
    base: String,
    (who, token): (usize, String),
    seen: Arc<Mutex<Seen>>,
    killed: Arc<AtomicBool>,
) {
    let mut context: Option<String> = None;
    for turn in 1.. {
        let mut body = json!({ "message": format!("turn {turn}"), "agent_type": "product" });
        if let Some(id) = &context {
            body["context_id"] = id.clone().into();
            *seen.lock().unwrap().sent.entry(id.clone()).or_default() += 1;
        }
        let answered = client.post(format!("{base}/api/chat")).bearer_auth(&token).json(&body).send().await;
        let answer: Value = match answered {
            Ok(response) if response.status() == 200 => response.json().await.unwrap_or(Value::Null),
            Ok(response) if !killed.load(Ordering::SeqCst) => {
                seen.lock().unwrap().failures.push(format!("chat: HTTP {}", response.status()));
                return;
            }
            Ok(_) | Err(_) if killed.load(Ordering::SeqCst) => return,
            Ok(_) | Err(_) => {
                seen.lock().unwrap().failures.push("chat: transport error before the kill".into());
                return;
            }
        };
        let Some(id) = answer["context_id"].as_str().map(str::to_string) else { return };
        let at = Instant::now();
        {
            let mut seen = seen.lock().unwrap();
            if context.is_none() {
                seen.sent.insert(id.clone(), 1);
                seen.owner.insert(id.clone(), who);
            }
            seen.turns.entry(id.clone()).or_default().push(at);
        }
        context = Some(id.clone());
        // Read-your-writes: the answered turn is there at once, before any fsync.
        let read = client.get(format!("{base}/api/conversations/{id}")).bearer_auth(&token).send().await;
        let Ok(read) = read else { return };
        if read.status() != 200 {
            if !killed.load(Ordering::SeqCst) {
                seen.lock().unwrap().failures.push(format!("read back: HTTP {}", read.status()));
            }
            return;
        }
        let stored: Value = read.json().await.unwrap_or(Value::Null);
        let messages = stored["messages"].as_array().map_or(0, Vec::len);
        if messages != 2 * turn && !killed.load(Ordering::SeqCst) {
            seen.lock().unwrap().failures.push(format!("{id}: {messages} messages after {turn} answered turns"));
            return;
        }
    }
}

/// Durable writes beside the chat load: tenants, acknowledged only after their fsync.
async fn create_tenants(
    client: reqwest::Client,
    base: String,
    secret: String,
    worker: usize,
    seen: Arc<Mutex<Seen>>,
    killed: Arc<AtomicBool>,
) {
    for i in 0.. {
        let name = format!("durable-{worker}-{i}");
        let sent = client
            .post(format!("{base}/api/admin/tenants"))
            .header("x-admin-secret", &secret)
            .json(&json!({ "name": name, "tier": "pro" }))
            .send()
            .await;
        // Paced, so most commits carry chat turns only and are relaxed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        match sent {
            Ok(response) if response.status() == 201 => seen.lock().unwrap().tenants.push(name),
            _ if killed.load(Ordering::SeqCst) => return,
            _ => {
                seen.lock().unwrap().failures.push(format!("tenant {name} failed before the kill"));
                return;
            }
        }
    }
}

fn server(root: &std::path::Path, mock: &MockProvider) -> BinaryServer {
    BinaryServer::builder(root)
        .config(&provider_config(mock, Wire::OpenAi, KEY_ENV, 5))
        .config(&format!("[storage]\nsync_interval_ms = {SYNC_INTERVAL_MS}\n[quotas.users]\nmonthly_requests = 1000000\nmonthly_tokens = 1000000000\ndaily_requests = 1000000"))
        .env(KEY_ENV, PROVIDER_KEY)
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_chat_load_loses_at_most_the_sync_interval_of_chat_and_nothing_durable() {
    let mock = MockProvider::start();
    let dir = tempfile::tempdir().unwrap();
    let mut running = server(dir.path(), &mock);
    let client = running.client().clone();
    let base = running.url("");
    let base = base.trim_end_matches('/').to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..CHATTERS {
        let token = register(&client, &running, i).await;
        tokens.push(token.clone());
        workers.push(tokio::spawn(chat(client.clone(), base.clone(), (i, token), seen.clone(), killed.clone())));
    }
    for worker in 0..CREATORS {
        let secret = running.admin_secret().to_string();
        workers.push(tokio::spawn(create_tenants(
            client.clone(),
            base.clone(),
            secret,
            worker,
            seen.clone(),
            killed.clone(),
        )));
    }
    // Let the load run until plenty of turns are in, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let seen = seen.lock().unwrap();
            assert!(seen.failures.is_empty(), "failures under load: {:?}", seen.failures);
            let answered: usize = seen.turns.values().map(Vec::len).sum();
            if answered >= 600 && seen.tenants.len() >= 10 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the load made too little progress in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed.store(true, Ordering::SeqCst);
    let killed_at = Instant::now();
    assert!(!running.kill().success());
    for worker in workers {
        worker.await.unwrap();
    }
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();
    assert!(seen.failures.is_empty(), "{:?}", seen.failures);

    let restarted = server(dir.path(), &mock);
    // Durable writes: every acknowledged tenant is there.
    let listed: Value = restarted
        .client()
        .get(restarted.url("/api/admin/tenants"))
        .header("x-admin-secret", restarted.admin_secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<&str> = listed["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let lost: Vec<&String> = seen.tenants.iter().filter(|name| !stored.contains(&name.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged tenants lost: {lost:?}");

    // Chat: every turn answered more than the interval (plus slack) before the kill survives;
    // nothing beyond what was sent appears.
    let cutoff = killed_at - Duration::from_millis(SYNC_INTERVAL_MS + SLACK_MS);
    let conversations = seen.turns.len();
    let (mut at_risk, mut lost_recent) = (0, 0);
    for (id, answered) in &seen.turns {
        let durable = answered.iter().filter(|at| **at <= cutoff).count();
        at_risk += answered.len() - durable;
        let token = &tokens[seen.owner[id]];
        let read = restarted.client().get(restarted.url(&format!("/api/conversations/{id}"))).bearer_auth(token);
        let read = read.send().await.unwrap();
        // A conversation whose first turn was lost is gone entirely.
        let stored_turns = match read.status().as_u16() {
            200 => read.json::<Value>().await.unwrap()["messages"].as_array().map_or(0, Vec::len) / 2,
            404 => 0,
            other => panic!("{id}: HTTP {other} after the restart"),
        };
        assert!(
            stored_turns >= durable,
            "{id}: {stored_turns} turns after the restart, but {durable} were answered more than {} ms before the kill",
            SYNC_INTERVAL_MS + SLACK_MS
        );
        assert!(stored_turns <= seen.sent[id], "{id}: more turns stored than sent");
        lost_recent += answered.len().saturating_sub(stored_turns);
    }
    println!(
        "{conversations} conversations; {at_risk} turns answered within {} ms of the kill, {lost_recent} of them lost",
        SYNC_INTERVAL_MS + SLACK_MS
    );
}

/// Consecutive turns under concurrent load, with no read in between: the server answers a turn
/// once its exchange is queued for the writer, so it is the next turn's own history read that
/// must wait for that commit. Every upstream request must carry every earlier turn of its
/// conversation, and a fact a user stated in one turn must be in the next turn's prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_turn_sees_the_turns_answered_before_it_under_concurrent_load() {
    const CONVERSATIONS: usize = 8;
    const TURNS: usize = 12;
    let gateway = Arc::new(crate::gateway::Gateway::start(Wire::OpenAi));
    let mut tokens = Vec::new();
    for i in 0..CONVERSATIONS {
        tokens.push(if i % 2 == 0 { gateway.user().await } else { gateway.tenant(&format!("ryw-{i}")).await.1 });
    }
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            let mut context: Option<String> = None;
            for turn in 1..=TURNS {
                let message = if turn == 1 { format!("My name is Conv{i}") } else { format!("conv {i} turn {turn}") };
                // Users chat with a built-in agent; a `generic` tenant has `assistant`.
                let agent = if i % 2 == 0 { "product" } else { "assistant" };
                let mut body = json!({ "message": message, "agent_type": agent });
                if let Some(id) = &context {
                    body["context_id"] = id.clone().into();
                }
                let path = if i % 2 == 0 { "/api/chat" } else { "/v1/chat" };
                let answer = crate::harness::expect_json(gateway.post(path, &token, &body).await, 200).await;
                context = answer["context_id"].as_str().map(str::to_string);
                assert!(context.is_some(), "no context_id: {answer}");
                if i % 2 == 1 {
                    // The tenant's (cached) agent listing counts the run the moment it is answered.
                    let listed = crate::harness::expect_json(gateway.get("/v1/agents", &token).await, 200).await;
                    let assistant = listed["agents"].as_array().unwrap().iter().find(|a| a["name"] == "assistant");
                    assert_eq!(assistant.unwrap()["total_runs"], turn, "tenant {i}: {listed}");
                }
            }
            if i % 2 == 1 {
                // A tenant's runs are counted the moment its last chat is answered.
                let agent = crate::harness::expect_json(gateway.get("/v1/agents/assistant", &token).await, 200).await;
                assert_eq!(agent["total_runs"], TURNS, "tenant {i}: {agent}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let requests = gateway.mock.chat_requests();
    let mut checked = 0;
    for request in &requests {
        let turns = request.text_turns();
        let Some((_, last)) = turns.iter().rev().find(|(role, _)| role == "user") else { continue };
        let Some((i, turn)) = last
            .strip_prefix("conv ")
            .and_then(|rest| rest.split_once(" turn "))
            .and_then(|(i, turn)| Some((i.parse::<usize>().ok()?, turn.parse::<usize>().ok()?)))
        else {
            continue;
        };
        let users: Vec<&str> = turns.iter().filter(|(role, _)| role == "user").map(|(_, text)| text.as_str()).collect();
        let mut expected = vec![format!("My name is Conv{i}")];
        expected.extend((2..=turn).map(|t| format!("conv {i} turn {t}")));
        assert_eq!(users, expected, "conversation {i}, turn {turn}: the history misses an answered turn");
        if i % 2 == 0 && turn == 2 {
            let system = turns.iter().find(|(role, _)| role == "system").map(|(_, text)| text.as_str());
            assert!(
                system.is_some_and(|s| s.contains(&format!("Conv{i}"))),
                "user {i}: the fact stated in turn 1 is not in turn 2's prompt: {system:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, CONVERSATIONS * (TURNS - 1), "every later turn reached the provider once");
}
