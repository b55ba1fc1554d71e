//! Budgets: hard dollar limits per UTC month and day on a tenant and on each of its API keys
//! (`PUT /api/admin/tenants/{id}/budget`, `PUT /api/admin/tenants/{id}/api-keys/{key_id}/budget`),
//! enforced at admission with a reservation so concurrent requests cannot spend the same dollar
//! twice, refused with 402 in each dialect's shape, seeded from the cost rollups when a process
//! first sees a tenant or key (so restarts and UTC day/month boundaries are exact), shown in the
//! tenant view and key listing, audited, and alerted at 80 % and 100 %.
//!
//! Every amount is computed here from the contract, not read from the server: one model priced
//! at $0.15 / $0.60 per million tokens, a mock that reports 1,237 input and 567 output tokens,
//! so a request costs 525.75 micro-dollars, rounded half up to 526; a one-message prompt of 4
//! estimated tokens and the model's `max_tokens = 1000` make the admission estimate 600.6,
//! rounded up to 601.

use std::path::Path;
use std::time::{Duration, Instant};

use ares::store::costs::{self, CostRecord, Spend};
use ares::store::{self, MigrationPolicy, Store};
use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{KEY_ENV, PROVIDER_KEY, sse_events};
use crate::harness::{TestServer, expect_error, expect_json, header};
use crate::mock_provider::{MockProvider, Script, Wire};

/// Hang guard for what settles after an answer (the cost rollups, alerts); not a performance
/// assertion.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

const PROVIDER: &str = "budget-openai";
/// The one priced model (tier `balanced`, so every tier resolves to it).
const MODEL: &str = "metered";
/// An agent on [`MODEL`] with a short prompt, for `/v1/chat`.
const AGENT: &str = "frugal";

/// Prices in pico-dollars per token: $0.15 and $0.60 per million tokens.
const INPUT_PICO: u128 = 150_000;
const OUTPUT_PICO: u128 = 600_000;
/// The model's `max_tokens`: what the estimate assumes when a request sets none.
const MODEL_MAX_TOKENS: u64 = 1000;

/// What the mock reports for every answer unless a test says otherwise.
const REPORTED_INPUT: u32 = 1237;
const REPORTED_OUTPUT: u32 = 567;

/// The message every request sends: 15 bytes, 4 estimated tokens.
const PROMPT: &str = "Spend a little.";

/// One request's actual cost in micro-dollars: 1237 × 0.15 + 567 × 0.6 = 525.75 → 526.
const COST: u64 = 526;
/// One request's admission estimate: 4 × 0.15 + 1000 × 0.6 = 600.6 → 601 (rounded up).
const ESTIMATE: u64 = 601;

const PICO_PER_MICRO: u128 = 1_000_000;

// ---------------------------------------------------------------- money, computed here

/// A call's cost, in pico-dollars summed and rounded half up to micro-dollars.
fn cost_micros(input_tokens: u64, output_tokens: u64) -> u64 {
    let pico = u128::from(input_tokens) * INPUT_PICO + u128::from(output_tokens) * OUTPUT_PICO;
    u64::try_from((pico + PICO_PER_MICRO / 2) / PICO_PER_MICRO).unwrap()
}

/// The admission estimate: the prompt's estimated tokens at the input price plus `max_tokens`
/// at the output price, rounded up to micro-dollars.
fn estimate_micros(prompt: &str, max_tokens: u64) -> u64 {
    let prompt_tokens = u128::from((prompt.len() as u64).div_ceil(4));
    let pico = prompt_tokens * INPUT_PICO + u128::from(max_tokens) * OUTPUT_PICO;
    u64::try_from(pico.div_ceil(PICO_PER_MICRO)).unwrap()
}

/// Micro-dollars as the API shows them: six decimals.
fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Micro-dollars as messages show them: cents (`50.00`), or as many decimals as it takes
/// below a cent (`0.00052`).
fn cents(micros: u64) -> String {
    if micros.is_multiple_of(10_000) {
        let cents = micros / 10_000;
        return format!("{}.{:02}", cents / 100, cents % 100);
    }
    usd(micros).trim_end_matches('0').to_string()
}

/// A six-decimal dollar string back in micro-dollars.
fn micros_of(dollars: &str) -> u64 {
    let (whole, fraction) = dollars.split_once('.').unwrap_or_else(|| panic!("not a dollar amount: {dollars}"));
    assert_eq!(fraction.len(), 6, "not six decimals: {dollars}");
    whole.parse::<u64>().unwrap() * 1_000_000 + fraction.parse::<u64>().unwrap()
}

/// How many requests of `estimate` and `cost` a budget of `limit` admits one after another,
/// starting from `spent`; returns (admitted, spent after).
fn sequential(limit: u64, spent: u64, estimate: u64, cost: u64) -> (u64, u64) {
    let (mut admitted, mut spent) = (0, spent);
    while spent + estimate <= limit {
        admitted += 1;
        spent += cost;
    }
    (admitted, spent)
}

#[test]
fn the_tests_own_money_arithmetic_is_exact() {
    assert_eq!(cost_micros(u64::from(REPORTED_INPUT), u64::from(REPORTED_OUTPUT)), COST, "525.75 rounds up");
    assert_eq!(cost_micros(1235, 567), 525, "525.45 rounds down");
    assert_eq!(estimate_micros(PROMPT, MODEL_MAX_TOKENS), ESTIMATE, "600.6 rounds up");
    assert_eq!(estimate_micros(PROMPT, 100), 61, "60.6 rounds up");
    assert_eq!((usd(COST), usd(40_000), usd(1_234_567)), ("0.000526".into(), "0.040000".into(), "1.234567".into()));
    assert_eq!(micros_of("1.234567"), 1_234_567);
    assert_eq!(
        [cents(50_000_000), cents(0), cents(20_000), cents(520), cents(1_200), cents(2_630)],
        ["50.00", "0.00", "0.02", "0.00052", "0.0012", "0.00263"]
    );
    assert_eq!(sequential(1_000, 0, ESTIMATE, COST), (1, 526));
    assert_eq!(sequential(3_000, 526, ESTIMATE, COST), (4, 2_630));
}

// ---------------------------------------------------------------- the rig

/// The mock's usual answer.
fn reply() -> Script {
    Script::reply("Spent.").usage(REPORTED_INPUT, REPORTED_OUTPUT)
}

fn config(mock: &MockProvider) -> String {
    format!(
        r#"
[[providers]]
name = "{PROVIDER}"
type = "openai"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
connect_timeout_secs = 2
read_timeout_secs = 10
max_retries = 0

[[models]]
name = "{MODEL}"
provider = "{PROVIDER}"
model_id = "metered-upstream"
tier = "balanced"
max_tokens = {MODEL_MAX_TOKENS}
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6

[[agents]]
name = "{AGENT}"
model = "{MODEL}"
system_prompt = "Be brief."
"#,
        base_url = mock.base_url(Wire::OpenAi),
    )
}

/// A server whose one model is priced and served by a mock. The mock is dropped first, so a
/// call still in flight fails at once instead of holding up the server's shutdown.
struct Rig {
    mock: MockProvider,
    server: TestServer,
}

/// A provisioned tenant with its first API key.
struct Tenant {
    id: String,
    name: String,
    key: String,
    key_id: String,
    key_name: String,
}

/// What an answer showed: status, the cost and remaining-budget headers, the JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    cost: Option<String>,
    remaining: Option<String>,
    body: Value,
}

async fn answer_of(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let cost = header(&response, "x-ares-cost-usd");
    let remaining = header(&response, "x-budget-remaining-usd");
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Answer { status, cost, remaining, body }
}

/// `POST /v1/chat/completions` on [`MODEL`] with [`PROMPT`], with the request's own
/// `max_tokens` if given.
async fn completion_with(client: &reqwest::Client, url: &str, key: &str, max_tokens: Option<u64>) -> Answer {
    let mut body = json!({ "model": MODEL, "messages": [{ "role": "user", "content": PROMPT }] });
    if let Some(max_tokens) = max_tokens {
        body["max_tokens"] = max_tokens.into();
    }
    answer_of(client.post(url).bearer_auth(key).json(&body).send().await.expect("completion request")).await
}

impl Rig {
    fn start() -> Rig {
        let mock = MockProvider::start();
        mock.set_script(reply());
        let server = TestServer::builder().env(KEY_ENV, PROVIDER_KEY).config(&config(&mock)).start();
        Rig { mock, server }
    }

    /// A server on a data dir the test owns (so it can write the store between two servers).
    fn start_in(mock: MockProvider, data_dir: &Path) -> Rig {
        let server = TestServer::builder().env(KEY_ENV, PROVIDER_KEY).config(&config(&mock)).data_dir(data_dir).start();
        Rig { mock, server }
    }

    fn restart(self) -> Rig {
        let Rig { mock, server } = self;
        Rig { mock, server: server.restart() }
    }

    /// An `enterprise` tenant (no quota gets in the way) with its first API key.
    async fn tenant(&self, name: &str) -> Tenant {
        let provisioned = self.server.provision(name, "enterprise", "generic").await;
        let text = |field: &str| {
            provisioned[field].as_str().unwrap_or_else(|| panic!("no {field} in {provisioned}")).to_string()
        };
        Tenant {
            id: text("tenant_id"),
            name: name.to_string(),
            key: text("raw_api_key"),
            key_id: text("api_key_id"),
            key_name: format!("{name}-key"),
        }
    }

    /// Another API key of `tenant_id`, through the admin API: (raw key, key id).
    async fn second_key(&self, tenant_id: &str, name: &str) -> (String, String) {
        let response = self
            .server
            .admin(Method::POST, &format!("/api/admin/tenants/{tenant_id}/api-keys"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        let created = expect_json(response, 201).await;
        (created["raw_key"].as_str().unwrap().to_string(), created["id"].as_str().unwrap().to_string())
    }

    fn budget_path(tenant_id: &str, key_id: Option<&str>) -> String {
        match key_id {
            Some(key) => format!("/api/admin/tenants/{tenant_id}/api-keys/{key}/budget"),
            None => format!("/api/admin/tenants/{tenant_id}/budget"),
        }
    }

    async fn put_budget(&self, tenant_id: &str, key_id: Option<&str>, body: &Value) -> reqwest::Response {
        let path = Self::budget_path(tenant_id, key_id);
        self.server.admin(Method::PUT, &path).json(body).send().await.expect("budget request")
    }

    /// Set a budget, asserting 200; returns the answer.
    async fn set_budget(&self, tenant_id: &str, key_id: Option<&str>, body: Value) -> Value {
        expect_json(self.put_budget(tenant_id, key_id, &body).await, 200).await
    }

    async fn completion(&self, key: &str, max_tokens: Option<u64>) -> Answer {
        completion_with(self.server.client(), &self.server.url("/v1/chat/completions"), key, max_tokens).await
    }

    /// A completion that must be admitted: 200, costing [`COST`].
    async fn spend(&self, key: &str) -> Answer {
        let answer = self.completion(key, None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.cost.as_deref(), Some(usd(COST).as_str()), "X-Ares-Cost-Usd: {answer:?}");
        answer
    }

    /// A completion that must be refused, in the OpenAI shape; returns the message.
    async fn refused(&self, key: &str, max_tokens: Option<u64>) -> String {
        let answer = self.completion(key, max_tokens).await;
        openai_refusal(&answer)
    }

    /// `/v1/chat` with [`AGENT`].
    async fn chat(&self, key: &str) -> Answer {
        let body = json!({ "message": PROMPT, "agent_type": AGENT });
        answer_of(self.server.v1(Method::POST, "/v1/chat", key).json(&body).send().await.unwrap()).await
    }

    /// Anthropic's `/v1/messages` on [`MODEL`], `max_tokens` 1000 (the model's own).
    async fn messages(&self, key: &str) -> Answer {
        let body = json!({
            "model": MODEL, "max_tokens": MODEL_MAX_TOKENS,
            "messages": [{ "role": "user", "content": PROMPT }],
        });
        let request = self
            .server
            .client()
            .post(self.server.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body);
        answer_of(request.send().await.unwrap()).await
    }

    /// The tenant's `budget` in `GET /api/admin/tenants/{id}`.
    async fn tenant_budget(&self, tenant_id: &str) -> Value {
        self.server.admin_get(&format!("/api/admin/tenants/{tenant_id}")).await["budget"].clone()
    }

    /// A key's `budget` in the admin key listing.
    async fn key_budget(&self, tenant_id: &str, key_id: &str) -> Value {
        let listing = self.server.admin_get(&format!("/api/admin/tenants/{tenant_id}/api-keys")).await;
        let keys = listing["keys"].as_array().unwrap_or_else(|| panic!("no keys in {listing}"));
        let key = keys.iter().find(|k| k["id"] == key_id).unwrap_or_else(|| panic!("no key {key_id} in {listing}"));
        key["budget"].clone()
    }

    /// The tenant's budget view once this month's spending shows `spent_month` micro-dollars
    /// (spending reaches the rollups in the background).
    async fn tenant_budget_when(&self, tenant_id: &str, spent_month: u64) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let budget = self.tenant_budget(tenant_id).await;
            if budget["spent_this_month_usd"] == usd(spent_month) {
                return budget;
            }
            assert!(Instant::now() < deadline, "the tenant never showed ${} spent: {budget}", usd(spent_month));
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Rig::tenant_budget_when`] for a key in the listing.
    async fn key_budget_when(&self, tenant_id: &str, key_id: &str, spent_month: u64) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let budget = self.key_budget(tenant_id, key_id).await;
            if budget["spent_this_month_usd"] == usd(spent_month) {
                return budget;
            }
            assert!(Instant::now() < deadline, "the key never showed ${} spent: {budget}", usd(spent_month));
            tokio::time::sleep(POLL).await;
        }
    }

    async fn alerts(&self) -> Vec<Value> {
        self.server.admin_get("/api/admin/alerts").await["alerts"].as_array().unwrap().clone()
    }
}

/// A 402 of the OpenAI-compatible routes; returns its message.
fn openai_refusal(answer: &Answer) -> String {
    assert_eq!(answer.status, 402, "{answer:?}");
    let error = &answer.body["error"];
    assert_eq!(error["type"], "insufficient_quota", "{answer:?}");
    assert_eq!(error["code"], "budget_exceeded", "{answer:?}");
    error["message"].as_str().unwrap_or_else(|| panic!("no message: {answer:?}")).to_string()
}

/// The refusal message of a tenant budget.
fn tenant_message(tenant: &Tenant, spent: u64, limit: u64, period: &str) -> String {
    format!("Budget exceeded for tenant '{}': ${} of ${} used {period}", tenant.name, cents(spent), cents(limit))
}

/// The refusal message of an API key budget.
fn key_message(key_name: &str, spent: u64, limit: u64, period: &str) -> String {
    format!("Budget exceeded for API key '{key_name}': ${} of ${} used {period}", cents(spent), cents(limit))
}

/// A budget view as the contract shapes it.
fn view(tenant_id: &str, key_id: Option<&str>, monthly: Value, daily: Value, month: u64, today: u64) -> Value {
    let mut view = json!({
        "tenant_id": tenant_id,
        "monthly_usd": monthly,
        "daily_usd": daily,
        "spent_this_month_usd": usd(month),
        "spent_today_usd": usd(today),
    });
    if let Some(key) = key_id {
        view["key_id"] = key.into();
    }
    view
}

// ---------------------------------------------------------------- the tests

/// 100 requests in flight at once against $0.04: without a reservation each would see nothing
/// spent and all 100 would go through ($0.0526); with it, at most the budget is spent.
#[tokio::test]
async fn concurrent_requests_never_spend_past_the_budget() {
    const REQUESTS: u64 = 100;
    const LIMIT: u64 = 40_000;
    let rig = Rig::start();
    let tenant = rig.tenant("crowd").await;
    rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.04 })).await;
    const { assert!(REQUESTS * COST > LIMIT + COST, "a check-then-spend race would overshoot by more than one request") };

    // Every call waits at the provider, so all of them are in flight together.
    rig.mock.set_script(reply().delay(Duration::from_millis(500)));
    let client = rig.server.client().clone();
    let url = rig.server.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (client, url, key) = (client.clone(), url.clone(), tenant.key.clone());
            tokio::spawn(async move { completion_with(&client, &url, &key, None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    rig.mock.set_script(reply());

    let (admitted, refused): (Vec<&Answer>, Vec<&Answer>) = answers.iter().partition(|a| a.status == 200);
    let prefix = format!("Budget exceeded for tenant '{}': $", tenant.name);
    for answer in &refused {
        let message = openai_refusal(answer);
        assert!(
            message.starts_with(&prefix) && message.ends_with(" of $0.04 used this month"),
            "refusal message: {message}"
        );
    }
    let n = admitted.len() as u64;
    let from_headers: u64 = admitted
        .iter()
        .map(|a| micros_of(a.cost.as_deref().unwrap_or_else(|| panic!("no X-Ares-Cost-Usd: {a:?}"))))
        .sum();
    assert!(admitted.iter().all(|a| a.cost == Some(usd(COST))), "every admitted request cost {}", usd(COST));
    assert_eq!(from_headers, n * COST);
    assert!(from_headers <= LIMIT + COST, "{n} admitted spent ${} of a $0.04 budget", usd(from_headers));
    assert!(n >= LIMIT / ESTIMATE, "only {n} admitted: the budget covers {} estimates", LIMIT / ESTIMATE);
    assert!(!refused.is_empty(), "all {REQUESTS} admitted");
    assert_eq!(rig.mock.chat_requests().len() as u64, n, "refused requests never reach the provider");

    let budget = rig.tenant_budget_when(&tenant.id, n * COST).await;
    assert_eq!(budget, view(&tenant.id, None, json!(0.04), Value::Null, n * COST, n * COST));

    // Once nothing is in flight, what is left admits exactly what fits, one after another.
    let (more, spent) = sequential(LIMIT, n * COST, ESTIMATE, COST);
    for _ in 0..more {
        rig.spend(&tenant.key).await;
    }
    assert_eq!(rig.refused(&tenant.key, None).await, tenant_message(&tenant, spent, LIMIT, "this month"));
    let budget = rig.tenant_budget_when(&tenant.id, spent).await;
    assert_eq!(budget["spent_today_usd"], usd(spent));
    assert!(spent <= LIMIT);
}

/// A key's own budget below its tenant's: that key is refused with the key's message while
/// another key of the tenant goes on, until the tenant's budget stops every key.
#[tokio::test]
async fn a_key_budget_stops_its_key_and_the_tenant_budget_stops_all_keys() {
    const TENANT_LIMIT: u64 = 3_000;
    const KEY_LIMIT: u64 = 1_000;
    let rig = Rig::start();
    let tenant = rig.tenant("keyed").await;
    let (other_key, other_key_id) = rig.second_key(&tenant.id, "other").await;
    rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.003 })).await;
    let answer = rig.set_budget(&tenant.id, Some(&tenant.key_id), json!({ "monthly_usd": 0.001 })).await;
    assert_eq!(answer, view(&tenant.id, Some(&tenant.key_id), json!(0.001), Value::Null, 0, 0));

    // The limited key: one request fits its $0.001, the next does not.
    assert_eq!(sequential(KEY_LIMIT, 0, ESTIMATE, COST), (1, COST));
    rig.spend(&tenant.key).await;
    let message = rig.refused(&tenant.key, None).await;
    assert_eq!(message, key_message(&tenant.key_name, COST, KEY_LIMIT, "this month"));

    // The other key spends on under the tenant's budget alone.
    let (admitted, spent) = sequential(TENANT_LIMIT, COST, ESTIMATE, COST);
    assert!(admitted >= 2);
    for _ in 0..admitted {
        rig.spend(&other_key).await;
    }
    let message = rig.refused(&other_key, None).await;
    assert_eq!(message, tenant_message(&tenant, spent, TENANT_LIMIT, "this month"));

    // The first key, its own budget removed, is stopped by the tenant's too.
    let answer = rig.set_budget(&tenant.id, Some(&tenant.key_id), json!({ "monthly_usd": null })).await;
    assert_eq!((answer["monthly_usd"].clone(), answer["daily_usd"].clone()), (Value::Null, Value::Null));
    let message = rig.refused(&tenant.key, None).await;
    assert_eq!(message, tenant_message(&tenant, spent, TENANT_LIMIT, "this month"));

    // The views: the tenant's, and each key's in the listing.
    let budget = rig.tenant_budget_when(&tenant.id, spent).await;
    assert_eq!(budget, view(&tenant.id, None, json!(0.003), Value::Null, spent, spent));
    let first = rig.key_budget_when(&tenant.id, &tenant.key_id, COST).await;
    assert_eq!(first, view(&tenant.id, Some(&tenant.key_id), Value::Null, Value::Null, COST, COST));
    let other = rig.key_budget_when(&tenant.id, &other_key_id, spent - COST).await;
    assert_eq!(other, view(&tenant.id, Some(&other_key_id), Value::Null, Value::Null, spent - COST, spent - COST));
    assert_eq!(rig.mock.chat_requests().len() as u64, 1 + admitted, "refused requests never reach the provider");
}

/// `daily_usd` refuses with "used today"; removing it lets requests through again, and the
/// monthly budget, kept all along, still applies.
#[tokio::test]
async fn a_daily_budget_refuses_until_removed_and_the_monthly_one_still_applies() {
    let rig = Rig::start();
    let tenant = rig.tenant("daily").await;
    let answer = rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 1.0, "daily_usd": 0.001 })).await;
    assert_eq!(answer, view(&tenant.id, None, json!(1.0), json!(0.001), 0, 0));

    rig.spend(&tenant.key).await;
    let message = rig.refused(&tenant.key, None).await;
    assert_eq!(message, tenant_message(&tenant, COST, 1_000, "today"));

    let answer = rig.set_budget(&tenant.id, None, json!({ "daily_usd": null })).await;
    assert_eq!((answer["monthly_usd"].clone(), answer["daily_usd"].clone()), (json!(1.0), Value::Null));
    rig.spend(&tenant.key).await;

    // A lower monthly budget (the daily one stays removed) refuses "this month".
    let answer = rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.0015 })).await;
    assert_eq!((answer["monthly_usd"].clone(), answer["daily_usd"].clone()), (json!(0.0015), Value::Null));
    let message = rig.refused(&tenant.key, None).await;
    assert_eq!(message, tenant_message(&tenant, 2 * COST, 1_500, "this month"));
    let budget = rig.tenant_budget_when(&tenant.id, 2 * COST).await;
    assert_eq!(budget, view(&tenant.id, None, json!(0.0015), Value::Null, 2 * COST, 2 * COST));
}

/// Spending written into the rollups before the server starts: yesterday's does not count
/// today and last month's does not count this month (UTC), while today's counts for both.
#[tokio::test]
async fn spending_of_yesterday_and_last_month_does_not_count_and_todays_does() {
    let data = tempfile::tempdir().unwrap();
    let rig = Rig::start_in(MockProvider::start(), data.path());
    rig.mock.set_script(reply());
    let fresh = rig.tenant("fresh").await;
    let busy = rig.tenant("busy").await;
    // $0.01 a day and $0.10 a month, on the tenant and on its key.
    for key in [None, Some(fresh.key_id.as_str())] {
        rig.set_budget(&fresh.id, key, json!({ "monthly_usd": 0.1, "daily_usd": 0.01 })).await;
    }
    rig.set_budget(&busy.id, None, json!({ "monthly_usd": 0.02 })).await;
    let Rig { mock, server } = rig;
    drop(server);

    let now = time::OffsetDateTime::now_utc();
    let today = now.date().midnight().assume_utc();
    let yesterday = today - time::Duration::hours(12);
    let first_of_month = now.date().replace_day(1).unwrap().midnight().assume_utc();
    let last_month = first_of_month - time::Duration::hours(12);
    let yesterday_is_this_month = yesterday >= first_of_month;
    let spend = |tenant: &Tenant, at: time::OffsetDateTime, micros: u64| {
        let record = CostRecord {
            cost_micros: micros,
            requests: 1,
            input_tokens: 1_000,
            output_tokens: 1_000,
            cached_input_tokens: 0,
        };
        Spend {
            tenant_id: tenant.id.clone(),
            key_id: Some(tenant.key_id.clone()),
            at: at.unix_timestamp(),
            total: record,
            models: vec![(MODEL.to_string(), record)],
        }
    };
    // Each is over the budget it must not count against.
    let spends = [spend(&fresh, yesterday, 50_000), spend(&fresh, last_month, 1_000_000), spend(&busy, now, 19_900)];
    {
        let store = Store::open(&data.path().join(store::DB_FILE), MigrationPolicy::Apply).unwrap();
        store.write_blocking(|txn| costs::record_all(txn, &spends)).unwrap();
        store.close();
    }

    let rig = Rig::start_in(mock, data.path());
    let month_before = if yesterday_is_this_month { 50_000 } else { 0 };
    let budget = rig.tenant_budget(&fresh.id).await;
    assert_eq!(budget, view(&fresh.id, None, json!(0.1), json!(0.01), month_before, 0));
    let key = rig.key_budget(&fresh.id, &fresh.key_id).await;
    assert_eq!(key, view(&fresh.id, Some(&fresh.key_id), json!(0.1), json!(0.01), month_before, 0));

    // Admitted under both periods; what is left is the day's $0.01 less this request.
    let answer = rig.spend(&fresh.key).await;
    assert_eq!(answer.remaining, Some(usd(10_000 - COST)), "X-Budget-Remaining-Usd");
    let (admitted, spent_today) = sequential(10_000, COST, ESTIMATE, COST);
    for _ in 0..admitted {
        rig.spend(&fresh.key).await;
    }
    let message = rig.refused(&fresh.key, None).await;
    assert_eq!(message, tenant_message(&fresh, spent_today, 10_000, "today"));
    let budget = rig.tenant_budget_when(&fresh.id, month_before + spent_today).await;
    assert_eq!(budget["spent_today_usd"], usd(spent_today));
    let key = rig.key_budget_when(&fresh.id, &fresh.key_id, month_before + spent_today).await;
    assert_eq!(key["spent_today_usd"], usd(spent_today));

    // Today's spending counts this month and today.
    let budget = rig.tenant_budget(&busy.id).await;
    assert_eq!(budget, view(&busy.id, None, json!(0.02), Value::Null, 19_900, 19_900));
    let message = rig.refused(&busy.key, None).await;
    assert_eq!(message, tenant_message(&busy, 19_900, 20_000, "this month"));
    rig.set_budget(&busy.id, None, json!({ "monthly_usd": null, "daily_usd": 0.02 })).await;
    let message = rig.refused(&busy.key, None).await;
    assert_eq!(message, tenant_message(&busy, 19_900, 20_000, "today"));
    rig.set_budget(&busy.id, None, json!({ "daily_usd": 0.03 })).await;
    let answer = rig.spend(&busy.key).await;
    assert_eq!(answer.remaining, Some(usd(30_000 - 19_900 - COST)), "X-Budget-Remaining-Usd");
}

/// After a restart the spent figure is exactly what it was, and the remaining budget admits a
/// request that fits and refuses one that does not.
#[tokio::test]
async fn a_restart_keeps_spending_exact() {
    const LIMIT: u64 = 3_000;
    let rig = Rig::start();
    let tenant = rig.tenant("durable").await;
    rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.003 })).await;
    for _ in 0..3 {
        rig.spend(&tenant.key).await;
    }
    let spent = 3 * COST;
    let before = rig.tenant_budget_when(&tenant.id, spent).await;
    let key_before = rig.key_budget_when(&tenant.id, &tenant.key_id, spent).await;

    let rig = rig.restart();
    assert_eq!(rig.tenant_budget(&tenant.id).await, before);
    assert_eq!(rig.key_budget(&tenant.id, &tenant.key_id).await, key_before);
    assert_eq!(before, view(&tenant.id, None, json!(0.003), Value::Null, spent, spent));

    // $0.001422 is left: 2500 output tokens (estimate $0.001501) do not fit, 2000 ($0.001201) do.
    let (too_big, fits) = (estimate_micros(PROMPT, 2_500), estimate_micros(PROMPT, 2_000));
    assert!(spent + too_big > LIMIT && spent + fits <= LIMIT && too_big <= LIMIT && 2 * spent + fits > LIMIT);
    let message = rig.refused(&tenant.key, Some(2_500)).await;
    assert_eq!(message, tenant_message(&tenant, spent, LIMIT, "this month"));
    let answer = rig.completion(&tenant.key, Some(2_000)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.remaining, Some(usd(LIMIT - spent - COST)), "X-Budget-Remaining-Usd");
    rig.tenant_budget_when(&tenant.id, spent + COST).await;
}

/// Each dialect refuses in its own shape, and `X-Budget-Remaining-Usd` goes down by each
/// answer's cost.
#[tokio::test]
async fn each_dialect_refuses_in_its_own_shape_and_the_remaining_budget_goes_down_by_the_cost() {
    const LIMIT: u64 = 2_100;
    let rig = Rig::start();
    let tenant = rig.tenant("dialects").await;
    let unlimited = rig.tenant("unlimited").await;

    // No budget, no header.
    let answer = rig.spend(&unlimited.key).await;
    assert_eq!(answer.remaining, None, "{answer:?}");

    rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.0021 })).await;
    let completion = rig.spend(&tenant.key).await;
    assert_eq!(completion.remaining, Some(usd(LIMIT - COST)));

    let messages = rig.messages(&tenant.key).await;
    assert_eq!(messages.status, 200, "{messages:?}");
    assert_eq!(messages.cost, Some(usd(COST)));
    assert_eq!(messages.remaining, Some(usd(LIMIT - 2 * COST)));

    let chat = rig.chat(&tenant.key).await;
    assert_eq!(chat.status, 200, "{chat:?}");
    assert_eq!(chat.cost, Some(usd(COST)));
    assert_eq!(chat.remaining, Some(usd(LIMIT - 3 * COST)));
    for (earlier, later) in [(&completion, &messages), (&messages, &chat)] {
        let drop = micros_of(earlier.remaining.as_deref().unwrap()) - micros_of(later.remaining.as_deref().unwrap());
        assert_eq!(drop, micros_of(later.cost.as_deref().unwrap()), "the remaining budget goes down by the cost");
    }

    // $0.000522 left: less than any of these requests' estimates.
    let expected = tenant_message(&tenant, 3 * COST, LIMIT, "this month");
    let answer = rig.completion(&tenant.key, None).await;
    assert_eq!(openai_refusal(&answer), expected);

    let answer = rig.messages(&tenant.key).await;
    assert_eq!(answer.status, 402, "{answer:?}");
    assert_eq!(answer.body["type"], "error", "{answer:?}");
    assert_eq!(answer.body["error"]["type"], "billing_error", "{answer:?}");
    assert_eq!(answer.body["error"]["message"], expected.as_str(), "{answer:?}");

    let response =
        rig.server.v1(Method::POST, "/v1/chat", &tenant.key).json(&json!({ "message": PROMPT, "agent_type": AGENT }));
    let body = expect_error(response.send().await.unwrap(), 402, "BUDGET_EXCEEDED").await;
    assert_eq!(body, json!({ "error": expected, "code": "BUDGET_EXCEEDED" }));

    assert_eq!(rig.mock.chat_requests().len(), 4, "refused requests never reach the provider");
    rig.tenant_budget_when(&tenant.id, 3 * COST).await;
}

/// A stream holds its reservation until it ends, and then its actual cost replaces it.
#[tokio::test]
async fn a_stream_holds_its_reservation_until_its_end() {
    const LIMIT: u64 = 1_200;
    let rig = Rig::start();
    let tenant = rig.tenant("streamer").await;
    rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.0012 })).await;
    const { assert!(2 * ESTIMATE > LIMIT && COST + ESTIMATE <= LIMIT && 2 * COST + ESTIMATE > LIMIT) };

    rig.mock.enqueue(reply().pause_after(1));
    let request = rig.server.v1(Method::POST, "/v1/chat/completions", &tenant.key).json(&json!({
        "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": PROMPT }],
    }));
    let stream = tokio::spawn(async move { sse_events(request.send().await.unwrap()).await });
    rig.mock.wait_until("the streamed call", |requests| !requests.is_empty()).await;

    // While the stream runs, its estimate is held: nothing spent, yet no room for another.
    let message = rig.refused(&tenant.key, None).await;
    assert_eq!(message, tenant_message(&tenant, 0, LIMIT, "this month"));

    rig.mock.resume();
    let events = stream.await.expect("stream task");
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{events:?}");
    // The stream's cost is recorded at its end, and its hold released.
    rig.tenant_budget_when(&tenant.id, COST).await;
    let answer = rig.spend(&tenant.key).await;
    assert_eq!(answer.remaining, Some(usd(LIMIT - 2 * COST)));
    let message = rig.refused(&tenant.key, None).await;
    assert_eq!(message, tenant_message(&tenant, 2 * COST, LIMIT, "this month"));
}

/// The admin endpoints: who may set what, the answers' shape, the views, the audit log.
#[tokio::test]
async fn budget_changes_are_validated_shown_and_audited() {
    let rig = Rig::start();
    let tenant = rig.tenant("validated").await;
    let stranger = rig.tenant("stranger").await;
    let (_, second_key_id) = rig.second_key(&tenant.id, "second").await;

    // Refusals first: none of them changes anything or is audited.
    let response = rig.put_budget("no-such-tenant", None, &json!({ "monthly_usd": 5.0 })).await;
    expect_error(response, 404, "NOT_FOUND").await;
    let response = rig.put_budget("no-such-tenant", Some(&tenant.key_id), &json!({ "monthly_usd": 5.0 })).await;
    expect_error(response, 404, "NOT_FOUND").await;
    let response = rig.put_budget(&tenant.id, Some(&stranger.key_id), &json!({ "monthly_usd": 5.0 })).await;
    expect_error(response, 404, "NOT_FOUND").await;
    let response = rig.put_budget(&tenant.id, Some("no-such-key"), &json!({ "monthly_usd": 5.0 })).await;
    expect_error(response, 404, "NOT_FOUND").await;
    for body in [
        json!({ "monthly_usd": -1.0 }),
        json!({ "daily_usd": -0.01 }),
        json!({ "monthly_usd": "50" }),
        json!({ "daily_usd": true }),
        json!({ "monthly_usd": 5.0, "daily_usd": [1] }),
        json!({ "monthly_usd": { "usd": 5 } }),
    ] {
        for key in [None, Some(tenant.key_id.as_str())] {
            let response = rig.put_budget(&tenant.id, key, &body).await;
            expect_error(response, 422, "UNPROCESSABLE").await;
        }
    }
    for body in [json!({}), json!({ "weekly_usd": 5.0 })] {
        for key in [None, Some(tenant.key_id.as_str())] {
            let response = rig.put_budget(&tenant.id, key, &body).await;
            let error = expect_error(response, 400, "INVALID_INPUT").await;
            assert_eq!(error["error"], "Missing required field: monthly_usd");
        }
    }
    let response = rig
        .server
        .client()
        .put(rig.server.url(&Rig::budget_path(&tenant.id, None)))
        .json(&json!({ "monthly_usd": 5.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the admin secret is required");
    assert_eq!(rig.tenant_budget(&tenant.id).await, view(&tenant.id, None, Value::Null, Value::Null, 0, 0));
    let untouched = view(&tenant.id, Some(&tenant.key_id), Value::Null, Value::Null, 0, 0);
    assert_eq!(rig.key_budget(&tenant.id, &tenant.key_id).await, untouched);

    // Setting: a field left out is kept, null removes it.
    let answer = rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 50.0 })).await;
    assert_eq!(answer, view(&tenant.id, None, json!(50.0), Value::Null, 0, 0));
    let answer = rig.set_budget(&tenant.id, None, json!({ "daily_usd": 2.5 })).await;
    assert_eq!(answer, view(&tenant.id, None, json!(50.0), json!(2.5), 0, 0));
    let answer = rig.set_budget(&tenant.id, Some(&tenant.key_id), json!({ "daily_usd": 2.0, "monthly_usd": 10 })).await;
    assert_eq!(answer, view(&tenant.id, Some(&tenant.key_id), json!(10.0), json!(2.0), 0, 0));
    let key_answer =
        rig.set_budget(&tenant.id, Some(&tenant.key_id), json!({ "daily_usd": 2.0, "monthly_usd": null })).await;
    assert_eq!(key_answer, view(&tenant.id, Some(&tenant.key_id), Value::Null, json!(2.0), 0, 0));
    let answer = rig.set_budget(&stranger.id, None, json!({ "monthly_usd": 0 })).await;
    assert_eq!(answer, view(&stranger.id, None, json!(0.0), Value::Null, 0, 0));

    // The views.
    let detail = rig.server.admin_get(&format!("/api/admin/tenants/{}", tenant.id)).await;
    assert_eq!(detail["budget"], view(&tenant.id, None, json!(50.0), json!(2.5), 0, 0), "{detail}");
    assert_eq!(rig.key_budget(&tenant.id, &tenant.key_id).await, key_answer);
    let second = rig.key_budget(&tenant.id, &second_key_id).await;
    assert_eq!(second, view(&tenant.id, Some(&second_key_id), Value::Null, Value::Null, 0, 0));

    // A budget of zero admits nothing.
    let message = rig.refused(&stranger.key, None).await;
    assert_eq!(message, tenant_message(&stranger, 0, 0, "this month"));

    // The audit log: one entry per change, none for refusals.
    let log = rig.server.admin_get("/api/admin/audit-log").await;
    let entries = log["entries"].as_array().unwrap();
    let changes: Vec<&Value> = entries.iter().filter(|e| e["action"] == "set_budget").collect();
    assert_eq!(changes.len(), 5, "{log}");
    let of = |id: &str| changes.iter().filter(|e| e["resource_id"] == id).count();
    assert!(of(&tenant.id) >= 2 && of(&stranger.id) == 1, "{log}");
}

/// Crossing 80 % raises one warning and reaching 100 % one critical alert; spending in between
/// and refused requests after raise nothing more.
#[tokio::test]
async fn budget_alerts_are_raised_at_80_and_100_percent_once() {
    const LIMIT: u64 = 10_000;
    let rig = Rig::start();
    let tenant = rig.tenant("alerted").await;
    let quiet = rig.tenant("quiet").await;
    rig.set_budget(&tenant.id, None, json!({ "monthly_usd": 0.01 })).await;
    rig.set_budget(&quiet.id, None, json!({ "monthly_usd": 1.0 })).await;
    let budget_alerts = |list: &[Value], tenant_id: &str| -> Vec<String> {
        let mut severities: Vec<String> = list
            .iter()
            .filter(|a| a["tenant_id"] == tenant_id && a["source"] == "budget")
            .map(|a| a["severity"].as_str().unwrap().to_string())
            .collect();
        severities.sort();
        severities
    };

    // Below 80 %: nothing.
    rig.spend(&quiet.key).await;
    // A request whose provider reports far more than its estimate: $0.00814, past 80 %.
    let first = cost_micros(52_000, u64::from(REPORTED_OUTPUT));
    assert!((LIMIT * 8 / 10..LIMIT).contains(&first));
    rig.mock.enqueue(reply().usage(52_000, REPORTED_OUTPUT));
    let answer = rig.completion(&tenant.key, None).await;
    assert_eq!((answer.status, answer.cost.clone()), (200, Some(usd(first))), "{answer:?}");
    let deadline = Instant::now() + SETTLE;
    loop {
        let list = rig.alerts().await;
        if !budget_alerts(&list, &tenant.id).is_empty() {
            assert_eq!(budget_alerts(&list, &tenant.id), ["warning"]);
            break;
        }
        assert!(Instant::now() < deadline, "no warning at 80%: {list:?}");
        tokio::time::sleep(POLL).await;
    }

    // Still between 80 % and 100 %: no second warning.
    assert!(first + ESTIMATE <= LIMIT);
    rig.spend(&tenant.key).await;
    // A request with a small max_tokens fits; its provider reports enough to pass 100 %.
    let spent = first + COST;
    let small = estimate_micros(PROMPT, 100);
    let last = cost_micros(10_000, u64::from(REPORTED_OUTPUT));
    assert!(spent + small <= LIMIT && spent + last >= LIMIT);
    rig.mock.enqueue(reply().usage(10_000, REPORTED_OUTPUT));
    let answer = rig.completion(&tenant.key, Some(100)).await;
    assert_eq!((answer.status, answer.cost.clone()), (200, Some(usd(last))), "{answer:?}");
    let spent = spent + last;
    let deadline = Instant::now() + SETTLE;
    let list = loop {
        let list = rig.alerts().await;
        if budget_alerts(&list, &tenant.id).len() >= 2 {
            break list;
        }
        assert!(Instant::now() < deadline, "no critical alert at 100%: {list:?}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(budget_alerts(&list, &tenant.id), ["critical", "warning"]);
    for alert in list.iter().filter(|a| a["tenant_id"] == tenant.id) {
        assert_eq!((alert["source"].as_str(), alert["resolved"].as_bool()), (Some("budget"), Some(false)), "{alert}");
    }

    // Over the budget now: refused, whatever the request, and no more alerts.
    let prefix = format!("Budget exceeded for tenant '{}': $", tenant.name);
    for max_tokens in [None, Some(1)] {
        let message = rig.refused(&tenant.key, max_tokens).await;
        assert!(message.starts_with(&prefix) && message.ends_with(" of $0.01 used this month"), "{message}");
    }
    rig.spend(&quiet.key).await;
    rig.tenant_budget_when(&tenant.id, spent).await;
    rig.tenant_budget_when(&quiet.id, 2 * COST).await;
    rig.server.admin_get(&format!("/api/admin/tenants/{}/usage", tenant.id)).await;
    let list = rig.alerts().await;
    assert_eq!(budget_alerts(&list, &tenant.id), ["critical", "warning"]);
    assert!(budget_alerts(&list, &quiet.id).is_empty(), "{list:?}");
}
