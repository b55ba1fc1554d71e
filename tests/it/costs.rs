//! Costs: what every request costs, to the micro-dollar, and where it shows — the
//! `X-Ares-Cost-Usd` header of non-streamed answers, the request log (`cost_usd`,
//! `cached_input_tokens`), runs, and the tenant rollups of `/v1/usage` and the admin tenant
//! usage (this month, today, by API key, by model) — plus `ares prices import` and the prices
//! file it writes.
//!
//! Every expected amount is computed here, independently of the server: prices are written as
//! decimal strings (`"0.15"` dollars per million tokens), turned into integer pico-dollars per
//! token by string arithmetic (×10^6, no float), multiplied by the tokens the mock reported
//! (normalised as the contract says: OpenAI's `prompt_tokens` already holds its cached tokens,
//! Anthropic's `input_tokens` holds neither cache reads nor cache writes), summed over a
//! request's successful upstream calls, and rounded once, half up, to the micro-dollar. Each
//! table case also carries the amount worked out by hand, and the test checks its own
//! arithmetic against it before asking the server.
//!
//! The upstreams are [`MockProvider`]s of all three wire formats, plus one OpenAI-compatible
//! mock whose calls are never retried (the primary of the fallback models) and one with a one
//! second read timeout (a timed-out attempt, then a retry).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{SseEvent, sse_events};
use crate::harness::{BinaryServer, TestServer, expect_json, header, http_client, run_cli};
use crate::mock_provider::{MockProvider, Script, Wire};

/// Hang guard for what settles after an answer (a stream's record and run, the rollups).
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The message every table case sends unless it says otherwise.
const QUESTION: &str = "How much does this answer cost?";

// ---------------------------------------------------------------- money, computed here

const PICO_PER_MICRO: u128 = 1_000_000;

/// A price in dollars per million tokens, written as a decimal (`"0.15"`, `"3.0"`), in
/// pico-dollars per token: `usd × 10^6`, by string arithmetic so no float is involved.
fn pico_per_token(usd_per_mtok: &str) -> u128 {
    let (whole, fraction) = usd_per_mtok.split_once('.').unwrap_or((usd_per_mtok, ""));
    assert!(fraction.len() <= 6, "{usd_per_mtok}: more decimals than a pico-dollar per token");
    let whole: u128 = whole.parse().unwrap_or_else(|e| panic!("{usd_per_mtok}: {e}"));
    let fraction: u128 = format!("{fraction:0<6}").parse().unwrap_or_else(|e| panic!("{usd_per_mtok}: {e}"));
    whole * 1_000_000 + fraction
}

/// Pico-dollars rounded half up to whole micro-dollars.
fn micros(pico: u128) -> u128 {
    (pico + PICO_PER_MICRO / 2) / PICO_PER_MICRO
}

/// Micro-dollars as the API shows dollars: six decimals.
fn dollars(micros: u128) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Pico-dollars rounded once and shown.
fn usd(pico: u128) -> String {
    dollars(micros(pico))
}

/// A model's prices as `[[models]]` keys; `None` leaves the key out.
#[derive(Debug, Clone, Copy)]
struct Price {
    input: Option<&'static str>,
    output: Option<&'static str>,
    cached: Option<&'static str>,
}

const UNPRICED: Price = Price { input: None, output: None, cached: None };

impl Price {
    const fn of(input: &'static str, output: &'static str, cached: &'static str) -> Price {
        Price { input: Some(input), output: Some(output), cached: Some(cached) }
    }

    /// Input and output prices; cached input left to default to the input price.
    const fn plain(input: &'static str, output: &'static str) -> Price {
        Price { input: Some(input), output: Some(output), cached: None }
    }

    fn toml(&self) -> String {
        let keys = [
            ("input_usd_per_mtok", self.input),
            ("output_usd_per_mtok", self.output),
            ("cached_input_usd_per_mtok", self.cached),
        ];
        keys.iter().filter_map(|(key, value)| value.map(|v| format!("{key} = {v}\n"))).collect()
    }

    /// The cost of one call in pico-dollars: fresh input at the input price, cached input at the
    /// cached price (the input price when none is set), output at the output price; an absent
    /// price is 0.
    fn cost(&self, tokens: Tokens) -> u128 {
        let input = self.input.map_or(0, pico_per_token);
        let cached = self.cached.map_or(input, pico_per_token);
        let output = self.output.map_or(0, pico_per_token);
        assert!(tokens.cached <= tokens.input, "{tokens:?}");
        u128::from(tokens.input - tokens.cached) * input
            + u128::from(tokens.cached) * cached
            + u128::from(tokens.output) * output
    }
}

/// Tokens as the contract counts them: `input` the whole prompt, `cached` the part of it read
/// from the provider's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tokens {
    input: u64,
    cached: u64,
    output: u64,
}

impl std::ops::Add for Tokens {
    type Output = Tokens;
    fn add(self, other: Tokens) -> Tokens {
        Tokens {
            input: self.input + other.input,
            cached: self.cached + other.cached,
            output: self.output + other.output,
        }
    }
}

/// What a provider of `wire` reports for `script`, normalised: OpenAI's `prompt_tokens`
/// already counts its `cached_tokens`; Anthropic's `input_tokens` counts neither cache reads
/// nor cache writes, which are both part of the prompt (only reads are cached input).
fn reported(wire: Wire, script: &Script) -> Tokens {
    let (input, read, written, output) = (
        u64::from(script.input_tokens),
        u64::from(script.cache_read_tokens),
        u64::from(script.cache_creation_tokens),
        u64::from(script.output_tokens),
    );
    match wire {
        Wire::OpenAi => Tokens { input, cached: read, output },
        Wire::Anthropic => Tokens { input: input + read + written, cached: read, output },
        Wire::Ollama => Tokens { input, cached: 0, output },
    }
}

/// The documented estimate when a provider reports no usage: ceil(UTF-8 bytes / 4).
fn estimate(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

#[test]
fn the_tests_own_money_arithmetic_is_exact() {
    assert_eq!(pico_per_token("0.15"), 150_000);
    assert_eq!(pico_per_token("0.075"), 75_000);
    assert_eq!(pico_per_token("3.0"), 3_000_000);
    assert_eq!(pico_per_token("15"), 15_000_000);
    assert_eq!(pico_per_token("0.499999"), 499_999);
    assert_eq!(
        (usd(499_999), usd(500_000), usd(1_499_999), usd(1_500_000)),
        ("0.000000".into(), "0.000001".into(), "0.000001".into(), "0.000002".into())
    );
    assert_eq!(usd(1_234_567_500_000), "1.234568");
    assert_eq!(dollars(0), "0.000000");
}

// ---------------------------------------------------------------- the rig

/// The upstreams, each a mock and a `[[providers]]` entry of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    /// OpenAI-compatible, one retry.
    Oai,
    /// Anthropic, one retry.
    Ant,
    /// Ollama, one retry.
    Oll,
    /// OpenAI-compatible, never retried: a failure goes straight to the model's fallback.
    Flaky,
    /// OpenAI-compatible with a one second read timeout, one retry.
    Slow,
}

impl Up {
    const ALL: [Up; 5] = [Up::Oai, Up::Ant, Up::Oll, Up::Flaky, Up::Slow];

    fn name(self) -> &'static str {
        match self {
            Up::Oai => "cost-openai",
            Up::Ant => "cost-anthropic",
            Up::Oll => "cost-ollama",
            Up::Flaky => "cost-flaky",
            Up::Slow => "cost-slow",
        }
    }

    fn wire(self) -> Wire {
        match self {
            Up::Oai | Up::Flaky | Up::Slow => Wire::OpenAi,
            Up::Ant => Wire::Anthropic,
            Up::Oll => Wire::Ollama,
        }
    }

    fn keys(self) -> &'static str {
        match self {
            Up::Flaky => "max_retries = 0\nread_timeout_secs = 10",
            Up::Slow => "max_retries = 1\nread_timeout_secs = 1",
            Up::Oai | Up::Ant | Up::Oll => "max_retries = 1\nread_timeout_secs = 10",
        }
    }
}

/// A `[[models]]` entry: its upstream, prices and any other keys (`fallbacks`).
struct ModelDef {
    name: &'static str,
    up: Up,
    price: Price,
    extra: &'static str,
}

const MODELS: &[ModelDef] = &[
    // OpenAI-style prices, fractional ones included.
    ModelDef { name: "mini", up: Up::Oai, price: Price::of("0.15", "0.6", "0.075"), extra: "" },
    ModelDef { name: "four-o", up: Up::Oai, price: Price::of("2.5", "10.0", "1.25"), extra: "" },
    ModelDef { name: "nocache", up: Up::Oai, price: Price::plain("1.25", "10.0"), extra: "" },
    ModelDef { name: "free", up: Up::Oai, price: UNPRICED, extra: "" },
    ModelDef { name: "zero", up: Up::Oai, price: Price::plain("0.0", "0.0"), extra: "" },
    // Rounding: half a micro-dollar per token, and a pico-dollar either side of it.
    ModelDef { name: "half", up: Up::Oai, price: Price::plain("0.5", "0.5"), extra: "" },
    ModelDef {
        name: "under",
        up: Up::Oai,
        price: Price { input: Some("0.499999"), output: None, cached: None },
        extra: "",
    },
    ModelDef {
        name: "over",
        up: Up::Oai,
        price: Price { input: Some("0.500001"), output: None, cached: None },
        extra: "",
    },
    ModelDef {
        name: "input-only",
        up: Up::Oai,
        price: Price { input: Some("3.0"), output: None, cached: None },
        extra: "",
    },
    ModelDef {
        name: "output-only",
        up: Up::Oai,
        price: Price { input: None, output: Some("2.0"), cached: None },
        extra: "",
    },
    // Anthropic-style prices.
    ModelDef { name: "sonnet", up: Up::Ant, price: Price::of("3.0", "15.0", "0.3"), extra: "" },
    ModelDef { name: "haiku", up: Up::Ant, price: Price::of("0.8", "4.0", "0.08"), extra: "" },
    ModelDef { name: "claude-nocache", up: Up::Ant, price: Price::plain("3.0", "15.0"), extra: "" },
    // Local models.
    ModelDef { name: "llama-priced", up: Up::Oll, price: Price::plain("0.1", "0.2"), extra: "" },
    ModelDef { name: "llama", up: Up::Oll, price: UNPRICED, extra: "" },
    // Expensive primaries that fail over to cheaper models (of another wire format, too).
    ModelDef { name: "primary", up: Up::Flaky, price: Price::plain("10.0", "30.0"), extra: "fallbacks = [\"mini\"]" },
    ModelDef {
        name: "primary-ant",
        up: Up::Flaky,
        price: Price::plain("5.0", "25.0"),
        extra: "fallbacks = [\"sonnet\"]",
    },
    ModelDef { name: "slowpoke", up: Up::Slow, price: Price::plain("1.0", "2.0"), extra: "" },
];

fn model(name: &str) -> &'static ModelDef {
    MODELS.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no model {name} in MODELS"))
}

/// Platform agents running the server-side calculator on a priced model: two model calls per
/// answer when the first one calls the tool.
const AGENTS: &[(&str, &str)] =
    &[("calc-mini", "mini"), ("calc-half", "half"), ("calc-sonnet", "sonnet"), ("calc-llama", "llama-priced")];

fn rig_config(mocks: &[(Up, MockProvider)]) -> String {
    let mut config = String::new();
    for (up, mock) in mocks {
        config.push_str(&format!(
            "\n[[providers]]\nname = \"{}\"\ntype = \"{}\"\nbase_url = \"{}\"\nconnect_timeout_secs = 2\n\
             retry_initial_ms = 1\nretry_max_ms = 5\nbreaker_failures = 50\n{}\n",
            up.name(),
            up.wire().kind(),
            mock.base_url(up.wire()),
            up.keys(),
        ));
    }
    for m in MODELS {
        config.push_str(&format!(
            "\n[[models]]\nname = \"{}\"\nprovider = \"{}\"\nmodel_id = \"{}-upstream\"\n{}{}\n",
            m.name,
            m.up.name(),
            m.name,
            m.price.toml(),
            m.extra,
        ));
    }
    for (agent, model) in AGENTS {
        config.push_str(&format!(
            "\n[[agents]]\nname = \"{agent}\"\nmodel = \"{model}\"\nsystem_prompt = \"You compute things.\"\n\
             tools = [\"calculator\"]\nmax_iterations = 3\n"
        ));
    }
    config
}

/// A server with every upstream and model above. The mocks are dropped before the server, so a
/// call still waiting on one fails at once instead of holding up the server's shutdown.
struct Rig {
    mocks: Vec<(Up, MockProvider)>,
    server: TestServer,
}

/// A provisioned tenant: id, raw API key, and that key's id (what `by_api_key` names it by).
struct Tenant {
    id: String,
    key: String,
    key_id: String,
}

impl Rig {
    fn start() -> Rig {
        let mocks: Vec<(Up, MockProvider)> = Up::ALL.iter().map(|up| (*up, MockProvider::start())).collect();
        let server = TestServer::builder().config(&rig_config(&mocks)).start();
        Rig { mocks, server }
    }

    /// Stop gracefully and serve the same config from the same data, the mocks kept.
    fn restart(self) -> Rig {
        let Rig { mocks, server } = self;
        Rig { mocks, server: server.restart() }
    }

    fn mock(&self, up: Up) -> &MockProvider {
        self.mocks.iter().find(|(u, _)| *u == up).map(|(_, m)| m).expect("every upstream has a mock")
    }

    /// Chat calls all upstreams have received.
    fn chat_calls(&self) -> usize {
        self.mocks.iter().map(|(_, m)| m.chat_requests().len()).sum()
    }

    /// An `enterprise` tenant (no quota gets in the way of a million tokens) with template agents.
    async fn tenant(&self, name: &str) -> Tenant {
        let provisioned = self.server.provision(name, "enterprise", "generic").await;
        let text = |field: &str| {
            provisioned[field].as_str().unwrap_or_else(|| panic!("no {field} in {provisioned}")).to_string()
        };
        Tenant { id: text("tenant_id"), key: text("raw_api_key"), key_id: text("api_key_id") }
    }

    /// A second API key of the tenant that `key` belongs to: (raw key, key id).
    async fn second_key(&self, key: &str) -> (String, String) {
        let response = self.server.v1(Method::POST, "/v1/api-keys", key).json(&json!({ "name": "second" })).send();
        let created = expect_json(response.await.expect("create a key"), 201).await;
        let text =
            |field: &str| created[field].as_str().unwrap_or_else(|| panic!("no {field} in {created}")).to_string();
        (text("secret"), text("key"))
    }
}

// ---------------------------------------------------------------- asking

/// How a request is sent.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// `POST /v1/chat/completions` on this model (`agent:<name>` runs a platform agent).
    Completion(&'static str),
    /// The same with `stream: true`.
    Stream(&'static str),
    /// `POST /v1/messages` (Anthropic's dialect).
    Messages(&'static str),
    /// The same with `stream: true`.
    MessagesStream(&'static str),
    /// `POST /v1/chat`: the platform agent `product` on this model.
    Chat(&'static str),
    /// `POST /v1/agents/{name}/run`: a tenant agent.
    Run(&'static str),
}

impl Ask {
    fn streamed(self) -> bool {
        matches!(self, Ask::Stream(_) | Ask::MessagesStream(_))
    }

    /// The agent the request's run is recorded under.
    fn run_name(self) -> &'static str {
        match self {
            Ask::Completion(model) | Ask::Stream(model) | Ask::Messages(model) | Ask::MessagesStream(model) => {
                model.strip_prefix("agent:").unwrap_or(model)
            }
            Ask::Chat(_) => "product",
            Ask::Run(agent) => agent,
        }
    }
}

/// What a request answered: its status and `X-Ares-Cost-Usd` (streams are read to their end).
struct Answered {
    status: u16,
    cost: Option<String>,
    body: Value,
    events: Vec<SseEvent>,
}

async fn send(server: &TestServer, key: &str, request_id: &str, ask: Ask, message: &str) -> Answered {
    let messages = json!([{ "role": "user", "content": message }]);
    let v1 = |path: &str| server.v1(Method::POST, path, key).header("x-request-id", request_id);
    let anthropic = || {
        server
            .client()
            .post(server.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("x-request-id", request_id)
    };
    let request = match ask {
        Ask::Completion(model) => v1("/v1/chat/completions").json(&json!({ "model": model, "messages": messages })),
        Ask::Stream(model) => {
            v1("/v1/chat/completions").json(&json!({ "model": model, "stream": true, "messages": messages }))
        }
        Ask::Messages(model) => anthropic().json(&json!({ "model": model, "max_tokens": 256, "messages": messages })),
        Ask::MessagesStream(model) => {
            anthropic().json(&json!({ "model": model, "max_tokens": 256, "stream": true, "messages": messages }))
        }
        Ask::Chat(model) => {
            v1("/v1/chat").json(&json!({ "message": message, "agent_type": "product", "model": model }))
        }
        Ask::Run(agent) => v1(&format!("/v1/agents/{agent}/run")).json(&json!({ "input": { "message": message } })),
    };
    let response = request.send().await.unwrap_or_else(|e| panic!("{ask:?}: {e}"));
    let status = response.status().as_u16();
    let cost = header(&response, "x-ares-cost-usd");
    if ask.streamed() && status == 200 {
        let events = sse_events(response).await;
        return Answered { status, cost, body: Value::Null, events };
    }
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{ask:?}: not JSON ({e}): {text}"));
    Answered { status, cost, body, events: Vec::new() }
}

/// One upstream call of a request: the script its mock answers with and, when it succeeds, the
/// model whose prices bill it and the tokens it bills.
struct Step {
    up: Up,
    script: Script,
    billed: Option<(&'static str, Tokens)>,
}

/// A successful call of `model`, billed for what its mock reports.
fn answer(model_name: &'static str, script: Script) -> Step {
    let up = model(model_name).up;
    Step { up, billed: Some((model_name, reported(up.wire(), &script))), script }
}

/// A failed attempt on `up`: it bills nothing.
fn failure(up: Up, script: Script) -> Step {
    Step { up, script, billed: None }
}

/// A successful call of `model` whose answer reports no usage: billed for the estimate of
/// `prompt` (the only message sent) and of the reply.
fn estimated(model_name: &'static str, prompt: &str, script: Script) -> Step {
    let up = model(model_name).up;
    let tokens = Tokens { input: estimate(prompt), cached: 0, output: estimate(&script.reply) };
    Step { up, script: script.no_usage(), billed: Some((model_name, tokens)) }
}

/// A request, its upstream calls, and its cost worked out by hand.
struct Case {
    what: &'static str,
    ask: Ask,
    message: &'static str,
    steps: Vec<Step>,
    expect: &'static str,
}

fn case(what: &'static str, ask: Ask, steps: Vec<Step>, expect: &'static str) -> Case {
    Case { what, ask, message: QUESTION, steps, expect }
}

impl Case {
    fn billed(&self) -> impl Iterator<Item = (&'static str, Tokens)> + '_ {
        self.steps.iter().filter_map(|s| s.billed)
    }

    /// Exact: the sum over the successful calls, each at its answering model's prices.
    fn pico(&self) -> u128 {
        self.billed().map(|(name, tokens)| model(name).price.cost(tokens)).sum()
    }

    fn tokens(&self) -> Tokens {
        self.billed().fold(Tokens::default(), |sum, (_, tokens)| sum + tokens)
    }

    /// The model that answered (the last successful call's).
    fn answered_by(&self) -> &'static str {
        self.billed().last().map(|(name, _)| name).unwrap_or_else(|| panic!("{}: nothing answers", self.what))
    }
}

/// Send `case` as `key` and check what the answer itself shows: every scripted upstream call
/// made, the cost header on a non-streamed answer (none on a stream). Returns its request id.
async fn run_case(rig: &Rig, key: &str, label: &str, case: &Case) -> String {
    assert_eq!(usd(case.pico()), case.expect, "{}: the hand-worked amount disagrees with the arithmetic", case.what);
    let request_id = format!("cost-{label}-{}", uuid::Uuid::new_v4().simple());
    for step in &case.steps {
        rig.mock(step.up).enqueue(step.script.clone());
    }
    let calls = rig.chat_calls();
    let answered = send(&rig.server, key, &request_id, case.ask, case.message).await;
    assert_eq!(answered.status, 200, "{}: {}", case.what, answered.body);
    assert_eq!(rig.chat_calls() - calls, case.steps.len(), "{}: every scripted upstream call was made", case.what);
    if case.ask.streamed() {
        assert_eq!(answered.cost, None, "{}: a stream's cost is not known when its head goes out", case.what);
        assert!(!answered.events.is_empty(), "{}: an empty stream", case.what);
    } else {
        assert_eq!(answered.cost.as_deref(), Some(case.expect), "{}: X-Ares-Cost-Usd", case.what);
    }
    request_id
}

// ---------------------------------------------------------------- reading back

/// Every request log record of `tenant_id`, by request id (admin view, all pages).
async fn admin_records(server: &TestServer, tenant_id: &str) -> HashMap<String, Value> {
    records(|cursor| {
        let mut query = vec![("tenant_id", tenant_id.to_string()), ("limit", "500".to_string())];
        query.extend(cursor.map(|c| ("cursor", c)));
        server.admin(Method::GET, "/api/admin/requests").query(&query)
    })
    .await
}

/// Every request log record the tenant of `key` sees in `GET /v1/requests`, by request id.
async fn tenant_records(server: &TestServer, key: &str) -> HashMap<String, Value> {
    records(|cursor| {
        let mut query = vec![("limit", "500".to_string())];
        query.extend(cursor.map(|c| ("cursor", c)));
        server.v1(Method::GET, "/v1/requests", key).query(&query)
    })
    .await
}

async fn records(page: impl Fn(Option<String>) -> reqwest::RequestBuilder) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut cursor = None;
    for _ in 0..100 {
        let body = expect_json(page(cursor.clone()).send().await.expect("list requests"), 200).await;
        for record in body["requests"].as_array().unwrap_or_else(|| panic!("no requests: {body}")) {
            let id = record["request_id"].as_str().unwrap_or_else(|| panic!("no request_id: {record}"));
            all.insert(id.to_string(), record.clone());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return all,
        }
    }
    panic!("more than 100 pages of request log");
}

/// Poll the admin's view of the request log until it has every one of `ids`.
async fn wait_records(server: &TestServer, tenant_id: &str, ids: &[String]) -> HashMap<String, Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let records = admin_records(server, tenant_id).await;
        let missing: Vec<&String> = ids.iter().filter(|id| !records.contains_key(*id)).collect();
        if missing.is_empty() {
            return records;
        }
        assert!(Instant::now() < deadline, "the request log never showed {missing:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// The ids of the runs recorded under `agent` (the admin's list, newest 200).
async fn run_ids(server: &TestServer, tenant_id: &str, agent: &str) -> HashSet<String> {
    let page = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/agents/{agent}/runs?limit=200")).await;
    let runs = page["runs"].as_array().unwrap_or_else(|| panic!("no runs: {page}"));
    runs.iter().map(|r| r["id"].as_str().unwrap_or_else(|| panic!("a run without id: {r}")).to_string()).collect()
}

/// Poll until exactly one run not in `before` is listed under `agent`; returns it.
async fn new_run(server: &TestServer, tenant_id: &str, agent: &str, before: &HashSet<String>) -> Value {
    let deadline = Instant::now() + SETTLE;
    let path = format!("/api/admin/tenants/{tenant_id}/agents/{agent}/runs?limit=200");
    loop {
        let page = server.admin_get(&path).await;
        let fresh: Vec<&Value> = page["runs"]
            .as_array()
            .unwrap_or_else(|| panic!("no runs: {page}"))
            .iter()
            .filter(|r| !before.contains(r["id"].as_str().unwrap_or_default()))
            .collect();
        match fresh.as_slice() {
            [run] => return (*run).clone(),
            [] => assert!(Instant::now() < deadline, "no new run of {agent} was recorded"),
            more => panic!("one request recorded {} runs of {agent}: {more:?}", more.len()),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `/v1/usage` once its `by_api_key` counts `requests` requests in all (spending of the
/// requests just answered settles in the background; more than that fails at once).
async fn settled_usage(server: &TestServer, key: &str, requests: u64) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let response = server.v1(Method::GET, "/v1/usage", key).send().await.expect("GET /v1/usage");
        assert_eq!(header(&response, "x-ares-cost-usd"), None, "/v1/usage calls no model");
        let usage = expect_json(response, 200).await;
        let counted: u64 = usage["cost"]["by_api_key"]
            .as_array()
            .unwrap_or_else(|| panic!("no cost.by_api_key: {usage}"))
            .iter()
            .map(|k| k["requests"].as_u64().unwrap_or_else(|| panic!("requests: {k}")))
            .sum();
        assert!(counted <= requests, "{counted} requests counted, only {requests} made: {usage}");
        if counted == requests {
            return usage;
        }
        assert!(Instant::now() < deadline, "the rollups never counted {requests} requests: {usage}");
        tokio::time::sleep(POLL).await;
    }
}

/// `cost` with `by_api_key` sorted by key id and `by_model` by model (the API's order is not
/// the subject here).
fn sorted_cost(cost: &Value) -> Value {
    let mut cost = cost.clone();
    for (list, by) in [("by_api_key", "key_id"), ("by_model", "model")] {
        let items = cost[list].as_array_mut().unwrap_or_else(|| panic!("no {list} array"));
        items.sort_by(|a, b| a[by].as_str().cmp(&b[by].as_str()));
    }
    cost
}

// ---------------------------------------------------------------- 1. the table

/// The cases of the table: prices (fractional, absent, zero, cached defaulting to input),
/// counts whose cost lands exactly on, just under and just over half a micro-dollar, every
/// wire format's usage (OpenAI's cached tokens inside the prompt, Anthropic's cache reads and
/// writes outside it, Ollama's counts), streams, tool loops of two model calls, fallbacks to a
/// model with other prices, retried 503/529s, resets and timeouts, and the estimate when the
/// provider reports nothing.
fn table() -> Vec<Case> {
    use Ask::*;
    let reply = || Script::reply("Counted.");
    let tool = || Script::tool_call("calculator", json!({ "expression": "6*7" }));
    let estimate_prompt = "Please, estimate what this request costs!";
    let estimate_reply = "Estimated answer, thirty bytes";
    assert_eq!((estimate_prompt.len(), estimate_reply.len()), (41, 30), "11 and 8 estimated tokens");
    vec![
        // OpenAI wire, plain usage.
        case("mini 1000 in / 500 out", Completion("mini"), vec![answer("mini", reply().usage(1000, 500))], "0.000450"),
        case(
            "mini a million each way",
            Completion("mini"),
            vec![answer("mini", reply().usage(1_000_000, 1_000_000))],
            "0.750000",
        ),
        case(
            "four-o 12345 / 678: exactly half a micro-dollar rounds up",
            Completion("four-o"),
            vec![answer("four-o", reply().usage(12_345, 678))],
            "0.037643",
        ),
        // OpenAI-style cached input (inside prompt_tokens).
        case(
            "four-o 2000 in, 1536 of them cached, 100 out",
            Completion("four-o"),
            vec![answer("four-o", reply().usage(2000, 100).cache_read(1536))],
            "0.004080",
        ),
        case(
            "mini 3 in (2 cached) / 1 out: 0.9 micro-dollars round up",
            Completion("mini"),
            vec![answer("mini", reply().usage(3, 1).cache_read(2))],
            "0.000001",
        ),
        case(
            "no cached price: cached input at the input price",
            Completion("nocache"),
            vec![answer("nocache", reply().usage(1000, 10).cache_read(800))],
            "0.001350",
        ),
        // Unpriced and zero-priced models.
        case("no prices cost nothing", Completion("free"), vec![answer("free", reply().usage(5000, 5000))], "0.000000"),
        case(
            "zero prices cost nothing",
            Completion("zero"),
            vec![answer("zero", reply().usage(5000, 5000))],
            "0.000000",
        ),
        case(
            "only an input price",
            Completion("input-only"),
            vec![answer("input-only", reply().usage(1000, 1000))],
            "0.003000",
        ),
        case(
            "only an output price",
            Completion("output-only"),
            vec![answer("output-only", reply().usage(1000, 1000))],
            "0.002000",
        ),
        // Rounding, half up.
        case("0.5 micro-dollars round up", Completion("half"), vec![answer("half", reply().usage(1, 0))], "0.000001"),
        case("1.5 micro-dollars round up", Completion("half"), vec![answer("half", reply().usage(3, 0))], "0.000002"),
        case("2.5 micro-dollars round up", Completion("half"), vec![answer("half", reply().usage(5, 0))], "0.000003"),
        case("0.499999 rounds down", Completion("under"), vec![answer("under", reply().usage(1, 0))], "0.000000"),
        case("0.500001 rounds up", Completion("over"), vec![answer("over", reply().usage(1, 0))], "0.000001"),
        case("1.499997 rounds down", Completion("under"), vec![answer("under", reply().usage(3, 0))], "0.000001"),
        case("1.500003 rounds up", Completion("over"), vec![answer("over", reply().usage(3, 0))], "0.000002"),
        case("0.45 rounds down", Completion("mini"), vec![answer("mini", reply().usage(3, 0))], "0.000000"),
        case("1.5 at $0.15 rounds up", Completion("mini"), vec![answer("mini", reply().usage(10, 0))], "0.000002"),
        // Anthropic wire: cache reads and writes are not in input_tokens.
        case(
            "sonnet 1000 in / 200 out",
            Completion("sonnet"),
            vec![answer("sonnet", reply().usage(1000, 200))],
            "0.006000",
        ),
        case(
            "sonnet cache read 5000 besides 100 in",
            Completion("sonnet"),
            vec![answer("sonnet", reply().usage(100, 50).cache_read(5000))],
            "0.002550",
        ),
        case(
            "sonnet cache creation 4000 besides 100 in, at the input price",
            Completion("sonnet"),
            vec![answer("sonnet", reply().usage(100, 50).cache_creation(4000))],
            "0.013050",
        ),
        case(
            "sonnet cache read and creation",
            Completion("sonnet"),
            vec![answer("sonnet", reply().usage(7, 9).cache_read(1000).cache_creation(333))],
            "0.001455",
        ),
        case(
            "haiku 1 in + 3 cache reads: 1.04 micro-dollars",
            Completion("haiku"),
            vec![answer("haiku", reply().usage(1, 0).cache_read(3))],
            "0.000001",
        ),
        case(
            "haiku 7 cache reads only: 0.56 micro-dollars",
            Completion("haiku"),
            vec![answer("haiku", reply().usage(0, 0).cache_read(7))],
            "0.000001",
        ),
        case(
            "haiku 6 cache reads only: 0.48 micro-dollars",
            Completion("haiku"),
            vec![answer("haiku", reply().usage(0, 0).cache_read(6))],
            "0.000000",
        ),
        case(
            "claude without a cached price: cache reads at the input price",
            Completion("claude-nocache"),
            vec![answer("claude-nocache", reply().usage(10, 0).cache_read(1000))],
            "0.003030",
        ),
        case(
            "Anthropic dialect on sonnet",
            Messages("sonnet"),
            vec![answer("sonnet", reply().usage(2000, 100))],
            "0.007500",
        ),
        // Ollama wire.
        case(
            "ollama priced 12345 / 6789",
            Completion("llama-priced"),
            vec![answer("llama-priced", reply().usage(12_345, 6789))],
            "0.002592",
        ),
        case("ollama unpriced", Completion("llama"), vec![answer("llama", reply().usage(12_345, 6789))], "0.000000"),
        // Streams: usage from the stream's own events; the cost shows in the log and the run.
        case(
            "OpenAI stream with cached tokens",
            Stream("mini"),
            vec![answer("mini", reply().usage(4000, 333).cache_read(1024))],
            "0.000723",
        ),
        case(
            "Anthropic stream with cache read and creation",
            Stream("sonnet"),
            vec![answer("sonnet", reply().usage(50, 77).cache_read(2000).cache_creation(100))],
            "0.002205",
        ),
        case("Ollama stream", Stream("llama-priced"), vec![answer("llama-priced", reply().usage(100, 50))], "0.000020"),
        case(
            "Anthropic dialect streamed from an Anthropic upstream with cache reads",
            MessagesStream("haiku"),
            vec![answer("haiku", reply().usage(1000, 100).cache_read(1000))],
            "0.001280",
        ),
        // Tool loops: two model calls, summed, rounded once.
        case(
            "calculator loop on mini, the second call partly cached",
            Completion("agent:calc-mini"),
            vec![answer("mini", tool().usage(200, 20)), answer("mini", reply().usage(260, 30).cache_read(200))],
            "0.000084",
        ),
        case(
            "calculator loop of two half micro-dollar calls: rounded once, not per call",
            Completion("agent:calc-half"),
            vec![answer("half", tool().usage(1, 0)), answer("half", reply().usage(1, 0))],
            "0.000001",
        ),
        case(
            "calculator loop on sonnet with a cache read",
            Completion("agent:calc-sonnet"),
            vec![answer("sonnet", tool().usage(500, 40)), answer("sonnet", reply().usage(20, 60).cache_read(500))],
            "0.003210",
        ),
        case(
            "streamed calculator loop on ollama",
            Stream("agent:calc-llama"),
            vec![answer("llama-priced", tool().usage(100, 10)), answer("llama-priced", reply().usage(150, 20))],
            "0.000031",
        ),
        // Failed attempts cost nothing; the model that answered prices the call.
        case(
            "503 retried: only the success costs",
            Completion("four-o"),
            vec![failure(Up::Oai, Script::error(503, "overloaded")), answer("four-o", reply().usage(1000, 1000))],
            "0.012500",
        ),
        case(
            "Anthropic 529 retried",
            Completion("haiku"),
            vec![failure(Up::Ant, Script::error(529, "overloaded")), answer("haiku", reply().usage(100, 100))],
            "0.000480",
        ),
        case(
            "reset connection retried",
            Completion("four-o"),
            vec![failure(Up::Oai, Script::reset()), answer("four-o", reply().usage(10, 10))],
            "0.000125",
        ),
        case(
            "timed-out attempt retried",
            Completion("slowpoke"),
            vec![
                failure(Up::Slow, reply().usage(1_000_000, 1_000_000).delay(Duration::from_millis(1500))),
                answer("slowpoke", reply().usage(1000, 500)),
            ],
            "0.002000",
        ),
        case(
            "fallback: the $10/$30 primary fails, mini answers at its own prices",
            Completion("primary"),
            vec![failure(Up::Flaky, Script::error(503, "down")), answer("mini", reply().usage(1000, 1000))],
            "0.000750",
        ),
        case(
            "fallback to another wire format: sonnet answers with a cache read",
            Completion("primary-ant"),
            vec![
                failure(Up::Flaky, Script::error(500, "down")),
                answer("sonnet", reply().usage(100, 10).cache_read(900)),
            ],
            "0.000720",
        ),
        // Other ways in.
        case(
            "ARES chat with a platform agent",
            Chat("mini"),
            vec![answer("mini", reply().usage(2000, 100))],
            "0.000360",
        ),
        case(
            "a tenant agent's run on sonnet",
            Run("assistant"),
            vec![answer("sonnet", Script::reply(r#"{"ok": true}"#).usage(300, 40).cache_read(700))],
            "0.001710",
        ),
        // No usage reported: estimated from the text.
        Case {
            message: estimate_prompt,
            ..case(
                "no usage: 11 + 8 estimated tokens at $2.50/$10",
                Completion("four-o"),
                vec![estimated("four-o", estimate_prompt, Script::reply(estimate_reply))],
                "0.000108",
            )
        },
        Case {
            message: estimate_prompt,
            ..case(
                "no usage in a stream: estimated",
                Stream("four-o"),
                vec![estimated("four-o", estimate_prompt, Script::reply(estimate_reply))],
                "0.000108",
            )
        },
    ]
}

/// Every case of [`table`] through the real server: the header of non-streamed answers, the
/// run of each request, and the request log (admin and tenant views) show the exact amount,
/// with the tokens normalised and the answering model named.
#[tokio::test]
async fn every_priced_case_costs_exactly_its_micro_dollars_in_header_run_and_request_log() {
    let rig = Rig::start();
    let tenant = rig.tenant("table").await;
    let agent = json!({ "config": { "model": "sonnet", "system_prompt": "Reply with JSON." } });
    let path = format!("/api/admin/tenants/{}/agents/assistant", tenant.id);
    expect_json(rig.server.admin(Method::PUT, &path).json(&agent).send().await.unwrap(), 200).await;

    let cases = table();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut sent = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let run_name = case.ask.run_name();
        let before = run_ids(&rig.server, &tenant.id, run_name).await;
        let request_id = run_case(&rig, &tenant.key, &i.to_string(), case).await;
        let run = new_run(&rig.server, &tenant.id, run_name, &before).await;
        assert_eq!(run["cost_usd"], case.expect, "{}: the run's cost: {run}", case.what);
        if let Ask::Run(agent) = case.ask {
            let listed = expect_json(
                rig.server.v1(Method::GET, &format!("/v1/agents/{agent}/runs"), &tenant.key).send().await.unwrap(),
                200,
            )
            .await;
            let same = listed["runs"].as_array().unwrap().iter().find(|r| r["id"] == run["id"]).cloned();
            let same = same.unwrap_or_else(|| panic!("{}: the run is not in /v1/agents/{agent}/runs", case.what));
            assert_eq!(same["cost_usd"], case.expect, "{}: {same}", case.what);
        }
        if case.message != QUESTION {
            // The estimate counts what was sent: nothing but the caller's one message.
            let sent = rig.mock(case.steps[0].up).chat_requests().pop().unwrap();
            assert_eq!(sent.text_turns(), [("user".to_string(), case.message.to_string())], "{}", case.what);
        }
        sent.push((request_id, case));
    }

    // A request whose every attempt fails called a model and costs nothing.
    for _ in 0..2 {
        rig.mock(Up::Oai).enqueue(Script::error(503, "still overloaded").usage(1_000_000, 1_000_000));
    }
    let failed_id = format!("cost-failed-{}", uuid::Uuid::new_v4().simple());
    let failed = send(&rig.server, &tenant.key, &failed_id, Ask::Completion("four-o"), QUESTION).await;
    assert!(failed.status >= 500, "{}: {}", failed.status, failed.body);
    assert_eq!(failed.cost.as_deref(), Some("0.000000"), "a failed request called a model: {}", failed.body);

    let ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).chain([failed_id.clone()]).collect();
    let admin = wait_records(&rig.server, &tenant.id, &ids).await;
    let own = tenant_records(&rig.server, &tenant.key).await;
    for (request_id, case) in &sent {
        let record = &admin[request_id];
        let tokens = case.tokens();
        assert_eq!(record["cost_usd"], case.expect, "{}: {record}", case.what);
        assert_eq!(
            (&record["input_tokens"], &record["cached_input_tokens"], &record["output_tokens"]),
            (&json!(tokens.input), &json!(tokens.cached), &json!(tokens.output)),
            "{}: {record}",
            case.what
        );
        assert_eq!(record["model"], case.answered_by(), "{}: the answering model: {record}", case.what);
        assert_eq!(record["attempts"], case.steps.len(), "{}: {record}", case.what);
        assert_eq!(&own[request_id], record, "{}: the tenant sees its record as the admin does", case.what);
    }
    let record = &admin[&failed_id];
    assert_eq!(
        (&record["cost_usd"], &record["input_tokens"], &record["attempts"]),
        (&json!("0.000000"), &json!(0), &json!(2)),
        "{record}"
    );
}

// ---------------------------------------------------------------- 2. rollups

/// What the rollups must add up to, kept from the requests' own costs: a request counts once
/// for its key and once for its model, at its cost rounded once.
#[derive(Default)]
struct Ledger {
    micros: u128,
    keys: BTreeMap<String, (u128, u64)>,
    models: BTreeMap<String, (u128, u64, Tokens)>,
}

impl Ledger {
    fn add(&mut self, key_id: &str, case: &Case) {
        let cost = micros(case.pico());
        let models: HashSet<&str> = case.billed().map(|(m, _)| m).collect();
        assert_eq!(models.len(), 1, "{}: the ledger takes requests answered by one model", case.what);
        self.micros += cost;
        let key = self.keys.entry(key_id.to_string()).or_default();
        key.0 += cost;
        key.1 += 1;
        let model = self.models.entry(case.answered_by().to_string()).or_default();
        model.0 += cost;
        model.1 += 1;
        model.2 = model.2 + case.tokens();
    }

    fn requests(&self) -> u64 {
        self.keys.values().map(|(_, n)| n).sum()
    }

    /// The `cost` object a usage answer must hold (sorted as [`sorted_cost`] sorts).
    fn cost(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(key_id, (cost, requests))| json!({ "key_id": key_id, "cost_usd": dollars(*cost), "requests": requests }))
            .collect();
        let models: Vec<Value> = self
            .models
            .iter()
            .map(|(name, (cost, requests, tokens))| {
                json!({
                    "model": name, "cost_usd": dollars(*cost), "requests": requests,
                    "input_tokens": tokens.input, "output_tokens": tokens.output,
                    "cached_input_tokens": tokens.cached,
                })
            })
            .collect();
        let total = dollars(self.micros);
        json!({ "month_usd": total, "today_usd": total, "by_api_key": keys, "by_model": models })
    }
}

/// Assert a usage answer (`/v1/usage` or the admin tenant usage) holds exactly `ledger`.
fn assert_usage(usage: &Value, ledger: &Ledger, what: &str) {
    assert_eq!(usage["total_cost_usd"], dollars(ledger.micros), "{what}: total_cost_usd: {usage}");
    assert_eq!(sorted_cost(&usage["cost"]), ledger.cost(), "{what}: {usage}");
}

/// Two keys of one tenant spend on two models (a stream, a tool loop of two calls and a
/// request costing under half a micro-dollar among them); another tenant spends too. Both
/// usage views of the first show this month, today, each key and each model exactly — the sum
/// of the costs its requests were answered with — and nothing of the other's.
#[tokio::test]
async fn usage_rolls_up_each_key_and_model_exactly_and_never_another_tenants_spending() {
    let rig = Rig::start();
    let acme = rig.tenant("acme").await;
    let (acme_second, acme_second_id) = rig.second_key(&acme.key).await;
    let globex = rig.tenant("globex").await;
    let reply = || Script::reply("Counted.");
    let tool = || Script::tool_call("calculator", json!({ "expression": "6*7" }));

    let spending: Vec<(&Tenant, Option<&str>, Case)> = vec![
        (
            &acme,
            None,
            case("k1 mini", Ask::Completion("mini"), vec![answer("mini", reply().usage(1000, 100))], "0.000210"),
        ),
        (
            &acme,
            None,
            case(
                "k1 sonnet cached",
                Ask::Completion("sonnet"),
                vec![answer("sonnet", reply().usage(10, 20).cache_read(1000))],
                "0.000630",
            ),
        ),
        (
            &acme,
            None,
            case("k1 mini stream", Ask::Stream("mini"), vec![answer("mini", reply().usage(500, 50))], "0.000105"),
        ),
        (
            &acme,
            Some(acme_second.as_str()),
            case(
                "k2 mini, 0.45 micro-dollars",
                Ask::Completion("mini"),
                vec![answer("mini", reply().usage(3, 0))],
                "0.000000",
            ),
        ),
        (
            &acme,
            Some(acme_second.as_str()),
            case(
                "k2 mini, 2.1 micro-dollars",
                Ask::Completion("mini"),
                vec![answer("mini", reply().usage(10, 1))],
                "0.000002",
            ),
        ),
        (
            &acme,
            Some(acme_second.as_str()),
            case("k2 sonnet", Ask::Messages("sonnet"), vec![answer("sonnet", reply().usage(100, 100))], "0.001800"),
        ),
        (
            &acme,
            Some(acme_second.as_str()),
            case(
                "k2 tool loop on mini",
                Ask::Completion("agent:calc-mini"),
                vec![answer("mini", tool().usage(200, 20)), answer("mini", reply().usage(260, 30).cache_read(200))],
                "0.000084",
            ),
        ),
        (
            &globex,
            None,
            case("globex mini", Ask::Completion("mini"), vec![answer("mini", reply().usage(1_000_000, 0))], "0.150000"),
        ),
        (
            &globex,
            None,
            case(
                "globex sonnet",
                Ask::Completion("sonnet"),
                vec![answer("sonnet", reply().usage(1000, 0))],
                "0.003000",
            ),
        ),
    ];

    let mut ledgers: HashMap<String, Ledger> = HashMap::new();
    for (i, (tenant, key, case)) in spending.iter().enumerate() {
        let (raw, key_id) = match key {
            Some(raw) => (*raw, acme_second_id.as_str()),
            None => (tenant.key.as_str(), tenant.key_id.as_str()),
        };
        run_case(&rig, raw, &format!("rollup-{i}"), case).await;
        ledgers.entry(tenant.id.clone()).or_default().add(key_id, case);
    }

    let acme_ledger = &ledgers[&acme.id];
    assert_eq!(dollars(acme_ledger.micros), "0.002831", "the test's own sum: 210 + 630 + 105 + 0 + 2 + 1800 + 84");
    let globex_ledger = &ledgers[&globex.id];
    assert_eq!(dollars(globex_ledger.micros), "0.153000");
    for (tenant, ledger) in [(&acme, acme_ledger), (&globex, globex_ledger)] {
        let usage = settled_usage(&rig.server, &tenant.key, ledger.requests()).await;
        assert_usage(&usage, ledger, &format!("/v1/usage of {}", tenant.id));
        let admin = rig.server.admin_get(&format!("/api/admin/tenants/{}/usage", tenant.id)).await;
        assert_usage(&admin, ledger, &format!("admin usage of {}", tenant.id));
    }
    // Either key of a tenant reads the same tenant-wide rollups.
    let usage = settled_usage(&rig.server, &acme_second, acme_ledger.requests()).await;
    assert_usage(&usage, acme_ledger, "/v1/usage with acme's second key");
    let keys: Vec<&String> = acme_ledger.keys.keys().collect();
    let mut expected_keys = vec![&acme.key_id, &acme_second_id];
    expected_keys.sort();
    assert_eq!(keys, expected_keys, "acme's rollups name its two keys, and no other");
}

// ---------------------------------------------------------------- 3. the dialects

/// Replies with cached tokens that every dialect test sends: from an OpenAI upstream (600 of
/// the 1000 prompt tokens cached, counted inside `prompt_tokens`) and from an Anthropic one
/// (100 fresh, 600 read from the cache and 300 written to it, all apart from `input_tokens`):
/// the same prompt of 1000 tokens, 600 of them cached, either way. With each model's cost.
fn cached_replies() -> [(&'static str, Script, &'static str); 2] {
    let replies = [
        ("four-o", Script::reply("Cached.").usage(1000, 50).cache_read(600), "0.002250"),
        ("sonnet", Script::reply("Cached.").usage(100, 50).cache_read(600).cache_creation(300), "0.002130"),
    ];
    for (name, script, cost) in &replies {
        let tokens = reported(model(name).up.wire(), script);
        assert_eq!((tokens.input, tokens.cached, tokens.output), (1000, 600, 50), "{name}: the same prompt either way");
        assert_eq!(usd(model(name).price.cost(tokens)), *cost, "{name}");
    }
    replies
}

const CACHE_ME: &str = "Cache me.";

/// Chat Completions reports the whole prompt as `prompt_tokens` with the cached part in
/// `prompt_tokens_details.cached_tokens`, JSON and in a stream's usage chunk; without cached
/// tokens there are no details at all.
#[tokio::test]
async fn chat_completions_report_cached_tokens_inside_prompt_tokens() {
    let rig = Rig::start();
    let tenant = rig.tenant("dialect-openai").await;
    let key = tenant.key.as_str();
    let openai_usage = json!({
        "prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
        "prompt_tokens_details": { "cached_tokens": 600 },
    });
    for (name, script, cost) in cached_replies() {
        rig.mock(model(name).up).set_script(script);
        let messages = json!([{ "role": "user", "content": CACHE_ME }]);
        let body = json!({ "model": name, "messages": messages });
        let response = rig.server.v1(Method::POST, "/v1/chat/completions", key).json(&body).send().await.unwrap();
        assert_eq!(header(&response, "x-ares-cost-usd").as_deref(), Some(cost), "{name}");
        let answer = expect_json(response, 200).await;
        assert_eq!(answer["usage"], openai_usage, "{name}: Chat Completions");

        let stream = json!({
            "model": name, "stream": true, "stream_options": { "include_usage": true }, "messages": messages,
        });
        let response = rig.server.v1(Method::POST, "/v1/chat/completions", key).json(&stream).send().await.unwrap();
        let events = sse_events(response).await;
        let usage: Vec<Value> = events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .map(|e| e.json()["usage"].clone())
            .filter(|u| !u.is_null())
            .collect();
        assert_eq!(usage, std::slice::from_ref(&openai_usage), "{name}: the streamed usage chunk: {events:?}");
    }

    rig.mock(Up::Oai).set_script(Script::reply("Fresh.").usage(1000, 50));
    let body = json!({ "model": "four-o", "messages": [{ "role": "user", "content": "Fresh." }] });
    let response = rig.server.v1(Method::POST, "/v1/chat/completions", key).json(&body).send().await.unwrap();
    assert_eq!(header(&response, "x-ares-cost-usd").as_deref(), Some("0.003000"));
    let answer = expect_json(response, 200).await;
    assert_eq!(answer["usage"], json!({ "prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050 }));
}

/// Anthropic's Messages reports the uncached rest of the prompt as `input_tokens` and the
/// cached part as `cache_read_input_tokens`, whichever upstream answered.
#[tokio::test]
async fn messages_report_cache_reads_apart_from_input_tokens() {
    let rig = Rig::start();
    let tenant = rig.tenant("dialect-anthropic").await;
    for (name, script, cost) in cached_replies() {
        rig.mock(model(name).up).set_script(script);
        let response = rig
            .server
            .client()
            .post(rig.server.url("/v1/messages"))
            .header("x-api-key", &tenant.key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({ "model": name, "max_tokens": 64, "messages": [{ "role": "user", "content": CACHE_ME }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "x-ares-cost-usd").as_deref(), Some(cost), "{name}");
        let answer = expect_json(response, 200).await;
        let usage = &answer["usage"];
        assert_eq!(
            (&usage["input_tokens"], &usage["cache_read_input_tokens"], &usage["output_tokens"]),
            (&json!(400), &json!(600), &json!(50)),
            "{name}: Messages: {usage}"
        );
    }
}

/// The Responses API reports the whole prompt as `input_tokens` with the cached part in
/// `input_tokens_details.cached_tokens`.
#[tokio::test]
async fn responses_report_cached_tokens_in_input_tokens_details() {
    let rig = Rig::start();
    let tenant = rig.tenant("dialect-responses").await;
    for (name, script, cost) in cached_replies() {
        rig.mock(model(name).up).set_script(script);
        let body = json!({ "model": name, "input": CACHE_ME });
        let response = rig.server.v1(Method::POST, "/v1/responses", &tenant.key).json(&body).send().await.unwrap();
        assert_eq!(header(&response, "x-ares-cost-usd").as_deref(), Some(cost), "{name}");
        let answer = expect_json(response, 200).await;
        let usage = &answer["usage"];
        assert_eq!(
            (&usage["input_tokens"], &usage["input_tokens_details"]["cached_tokens"], &usage["output_tokens"]),
            (&json!(1000), &json!(600), &json!(50)),
            "{name}: Responses: {usage}"
        );
    }
}

// ---------------------------------------------------------------- 4. prices import

fn fixture() -> String {
    format!("{}/tests/fixtures/litellm_prices.json", env!("CARGO_MANIFEST_DIR"))
}

/// A prices file as TOML.
fn read_prices(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{} is not TOML ({e}):\n{text}", path.display()))
}

/// One entry of a prices file: `(input, output, cached, context_length)`.
fn entry(prices: &toml::Table, id: &str) -> (Option<f64>, Option<f64>, Option<f64>, Option<i64>) {
    let table = prices.get(id).and_then(toml::Value::as_table).unwrap_or_else(|| panic!("no table {id:?}: {prices:?}"));
    let known = ["input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok", "context_length"];
    let unknown: Vec<&String> = table.keys().filter(|k| !known.contains(&k.as_str())).collect();
    assert!(unknown.is_empty(), "{id}: unexpected keys {unknown:?}");
    let price = |key: &str| table.get(key).map(|v| v.as_float().unwrap_or_else(|| panic!("{id}.{key} = {v}")));
    (
        price("input_usd_per_mtok"),
        price("output_usd_per_mtok"),
        price("cached_input_usd_per_mtok"),
        table.get("context_length").map(|v| v.as_integer().unwrap_or_else(|| panic!("{id}.context_length = {v}"))),
    )
}

/// `ares prices import` turns LiteLLM's per-token prices into dollars per million tokens (the
/// sample spec, an image model and an audio model, which have no token prices, skipped), keeps
/// only the `--model`s asked for, and refuses an unknown one with exit code 2. A server whose
/// `[pricing] file` is the result prices a model that sets no prices by its provider model id
/// — cached input at the imported cache-read price — while a model's own prices win and a
/// model id not in the file costs nothing.
#[tokio::test]
async fn imported_litellm_prices_price_models_that_set_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fixture = fixture();

    let out = run_cli(root, &["prices", "import", &fixture], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("wrote prices of 5 models to prices.toml (3 entries without token prices skipped)"),
        "{}",
        out.stdout
    );
    let prices = read_prices(&root.join("prices.toml"));
    let mut ids: Vec<&String> = prices.keys().collect();
    ids.sort();
    assert_eq!(
        ids,
        ["claude-3-5-sonnet-20241022", "gpt-4o", "gpt-4o-mini", "ollama/llama3", "text-embedding-3-small"],
        "{prices:?}"
    );
    assert_eq!(entry(&prices, "gpt-4o"), (Some(2.5), Some(10.0), Some(1.25), Some(128_000)));
    assert_eq!(entry(&prices, "gpt-4o-mini"), (Some(0.15), Some(0.6), Some(0.075), Some(128_000)));
    assert_eq!(entry(&prices, "claude-3-5-sonnet-20241022"), (Some(3.0), Some(15.0), Some(0.3), Some(200_000)));
    assert_eq!(entry(&prices, "text-embedding-3-small"), (Some(0.02), Some(0.0), None, Some(8191)));
    assert_eq!(entry(&prices, "ollama/llama3"), (Some(0.0), Some(0.0), None, Some(8192)));

    // --model keeps only those; --out names the file.
    let args = ["prices", "import", &fixture, "--out", "subset.toml", "--model", "gpt-4o-mini", "--model", "gpt-4o"];
    let out = run_cli(root, &args, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let subset = read_prices(&root.join("subset.toml"));
    let mut ids: Vec<&String> = subset.keys().collect();
    ids.sort();
    assert_eq!(ids, ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(entry(&subset, "gpt-4o-mini"), entry(&prices, "gpt-4o-mini"));

    // An unknown model id is the caller's mistake: exit 2, nothing written.
    let args = ["prices", "import", &fixture, "--out", "never.toml", "--model", "gpt-4o", "--model", "gpt-5-unknown"];
    let out = run_cli(root, &args, &[]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("gpt-5-unknown"), "{}", out.stderr);
    assert!(!root.join("never.toml").exists(), "nothing is written for a refused import");

    // A server priced by the file (relative to its config file, in `root`).
    let openai = MockProvider::start();
    let anthropic = MockProvider::start();
    let config = format!(
        r#"
[pricing]
file = "prices.toml"

[[providers]]
name = "imp-openai"
type = "openai"
base_url = "{openai_url}"
max_retries = 0

[[providers]]
name = "imp-anthropic"
type = "anthropic"
base_url = "{anthropic_url}"
max_retries = 0

[[models]]
name = "imported-mini"
provider = "imp-openai"
model_id = "gpt-4o-mini"

[[models]]
name = "imported-sonnet"
provider = "imp-anthropic"
model_id = "claude-3-5-sonnet-20241022"

[[models]]
name = "own-prices"
provider = "imp-openai"
model_id = "gpt-4o"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 1.0

[[models]]
name = "unlisted"
provider = "imp-openai"
model_id = "my-finetune"
"#,
        openai_url = openai.base_url(Wire::OpenAi),
        anthropic_url = anthropic.base_url(Wire::Anthropic),
    );
    let server = BinaryServer::builder(root).config(&config).start();
    let client = server.client();
    let provisioned = client
        .post(server.url("/api/admin/provision-client"))
        .header("x-admin-secret", server.admin_secret())
        .json(&json!({ "name": "importer", "tier": "enterprise", "product_type": "generic", "api_key_name": "k" }))
        .send()
        .await
        .unwrap();
    let provisioned = expect_json(provisioned, 201).await;
    let key = provisioned["raw_api_key"].as_str().unwrap().to_string();

    // Each price worked out from the fixture's per-token prices (× 10^12 pico-dollars).
    let mini = Price::of("0.15", "0.6", "0.075");
    let sonnet = Price::of("3.0", "15.0", "0.3");
    let own = Price::plain("1.0", "1.0");
    let checks = [
        (
            "imported-mini",
            &openai,
            Wire::OpenAi,
            Script::reply("a").usage(2000, 500).cache_read(1000),
            mini,
            "0.000525",
        ),
        (
            "imported-sonnet",
            &anthropic,
            Wire::Anthropic,
            Script::reply("b").usage(100, 10).cache_read(900).cache_creation(1000),
            sonnet,
            "0.003720",
        ),
        ("own-prices", &openai, Wire::OpenAi, Script::reply("c").usage(1000, 1000), own, "0.002000"),
        ("unlisted", &openai, Wire::OpenAi, Script::reply("d").usage(1000, 1000), UNPRICED, "0.000000"),
    ];
    for (name, mock, wire, script, price, expect) in checks {
        assert_eq!(usd(price.cost(reported(wire, &script))), expect, "{name}: the test's own arithmetic");
        mock.enqueue(script);
        let response = client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({ "model": name, "messages": [{ "role": "user", "content": "price me" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, "x-ares-cost-usd").as_deref(), Some(expect), "{name}");
        expect_json(response, 200).await;
    }
}

// ---------------------------------------------------------------- 5. restarts

/// Spending survives a graceful restart to the micro-dollar: what `/v1/usage` showed before is
/// what it shows after; spending made just before a second restart (never read back while the
/// server ran) is there after it too, adding up exactly.
#[tokio::test]
async fn a_restart_keeps_spending_exact_and_later_spending_adds_up() {
    let rig = Rig::start();
    let tenant = rig.tenant("durable").await;
    let reply = || Script::reply("Counted.");
    let before = [
        case(
            "four-o half-micro",
            Ask::Completion("four-o"),
            vec![answer("four-o", reply().usage(12_345, 678))],
            "0.037643",
        ),
        case(
            "sonnet cached",
            Ask::Completion("sonnet"),
            vec![answer("sonnet", reply().usage(7, 9).cache_read(1000).cache_creation(333))],
            "0.001455",
        ),
        case(
            "mini streamed",
            Ask::Stream("mini"),
            vec![answer("mini", reply().usage(4000, 333).cache_read(1024))],
            "0.000723",
        ),
    ];
    let mut ledger = Ledger::default();
    for (i, case) in before.iter().enumerate() {
        run_case(&rig, &tenant.key, &format!("before-{i}"), case).await;
        ledger.add(&tenant.key_id, case);
    }
    assert_eq!(dollars(ledger.micros), "0.039821");
    let shown = settled_usage(&rig.server, &tenant.key, ledger.requests()).await;
    assert_usage(&shown, &ledger, "before the restart");
    let days = shown["daily_usage"].as_array().unwrap_or_else(|| panic!("no daily_usage: {shown}"));
    assert_eq!(
        days.last().map(|day| &day["cost_usd"]),
        Some(&json!(dollars(ledger.micros))),
        "today's entry carries today's spending: {shown}"
    );

    let rig = rig.restart();
    let usage = expect_json(rig.server.v1(Method::GET, "/v1/usage", &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(
        (&usage["total_cost_usd"], &usage["cost"]),
        (&shown["total_cost_usd"], &shown["cost"]),
        "after the restart: {usage}"
    );
    let admin = rig.server.admin_get(&format!("/api/admin/tenants/{}/usage", tenant.id)).await;
    assert_usage(&admin, &ledger, "admin usage after the restart");

    let after = [
        case("mini rounding up", Ask::Completion("mini"), vec![answer("mini", reply().usage(10, 0))], "0.000002"),
        case(
            "tool loop on sonnet",
            Ask::Completion("agent:calc-sonnet"),
            vec![
                answer("sonnet", Script::tool_call("calculator", json!({ "expression": "1+1" })).usage(500, 40)),
                answer("sonnet", reply().usage(20, 60).cache_read(500)),
            ],
            "0.003210",
        ),
    ];
    for (i, case) in after.iter().enumerate() {
        run_case(&rig, &tenant.key, &format!("after-{i}"), case).await;
        ledger.add(&tenant.key_id, case);
    }
    assert_eq!(dollars(ledger.micros), "0.043033");
    // Restarted at once: what the last requests cost is written as the server stops.
    let rig = rig.restart();
    let usage = expect_json(rig.server.v1(Method::GET, "/v1/usage", &tenant.key).send().await.unwrap(), 200).await;
    assert_usage(&usage, &ledger, "after the second restart");
    let admin = rig.server.admin_get(&format!("/api/admin/tenants/{}/usage", tenant.id)).await;
    assert_usage(&admin, &ledger, "admin usage after the second restart");
}

// ---------------------------------------------------------------- the mock's usage shapes

/// The mock's cache counts and missing usage, in each wire format's own shape, proven against a
/// plain HTTP client (the tests above rely on them).
#[tokio::test]
async fn the_mock_reports_cache_counts_and_missing_usage_in_each_providers_shape() {
    let mock = MockProvider::start();
    let client = http_client();
    let ask = |wire: Wire, stream: bool| {
        let body = json!({ "model": "m", "stream": stream, "max_tokens": 8, "messages": [{ "role": "user", "content": "hi" }],
                           "stream_options": { "include_usage": true } });
        client.post(format!("{}{}", mock.url(), wire.path())).json(&body).send()
    };
    let cached = || Script::reply("x").usage(100, 5).cache_read(60).cache_creation(30);

    mock.enqueue(cached());
    let body: Value = ask(Wire::OpenAi, false).await.unwrap().json().await.unwrap();
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                "prompt_tokens_details": { "cached_tokens": 60 } })
    );
    mock.enqueue(cached());
    let text = ask(Wire::OpenAi, true).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#""prompt_tokens_details":{"cached_tokens":60}"#), "{text}");

    mock.enqueue(cached());
    let body: Value = ask(Wire::Anthropic, false).await.unwrap().json().await.unwrap();
    assert_eq!(
        body["usage"],
        json!({ "input_tokens": 100, "output_tokens": 5, "cache_read_input_tokens": 60,
                "cache_creation_input_tokens": 30 })
    );
    mock.enqueue(cached());
    let text = ask(Wire::Anthropic, true).await.unwrap().text().await.unwrap();
    let start = text.lines().find(|l| l.contains("message_start") && l.starts_with("data: ")).unwrap();
    let start: Value = serde_json::from_str(start.trim_start_matches("data: ")).unwrap();
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 60, "{start}");
    assert_eq!(start["message"]["usage"]["cache_creation_input_tokens"], 30, "{start}");

    // Plain scripts are unchanged: no cache fields at all.
    mock.enqueue(Script::reply("x").usage(100, 5));
    let body: Value = ask(Wire::Anthropic, false).await.unwrap().json().await.unwrap();
    assert_eq!(body["usage"], json!({ "input_tokens": 100, "output_tokens": 5 }));

    for wire in Wire::ALL {
        mock.enqueue(Script::reply("x").no_usage());
        let body: Value = ask(wire, false).await.unwrap().json().await.unwrap();
        for field in ["usage", "prompt_eval_count", "eval_count"] {
            assert!(body.get(field).is_none(), "{wire:?}: {field} in {body}");
        }
        mock.enqueue(Script::reply("x").no_usage());
        let text = ask(wire, true).await.unwrap().text().await.unwrap();
        for field in ["usage", "prompt_eval_count", "eval_count"] {
            assert!(!text.contains(field), "{wire:?}: {field} in {text}");
        }
    }
}
