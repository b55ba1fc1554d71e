//! The web console (issue 20), served by the server itself at `GET /` and `GET /console/<file>`:
//! plain HTTP checks of how it is served (CSP, ETag, gzip and the page's weight, HEAD, 404,
//! `[server].public_base_path`), and the console driven in headless Chromium (`browser.rs`)
//! against the real server and a mock provider, through the ids of its DOM contract: sign-in,
//! tenants, API keys shown once, the streaming playground, the request log, sign-out and a
//! phone-sized window. The other pages, accessibility, the keyboard and long tables are in
//! `console_pages.rs`, which shares this module's [`Rig`] and sign-in helpers.

use std::io::Read as _;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, WAIT, with_browser};
use crate::harness::{BinaryServer, TestServer, header};
use crate::mock_provider::{MockProvider, Script, Wire};

/// The variable the providers' key is read from, and the key.
const KEY_ENV: &str = "MOCK_LLM_KEY";
const PROVIDER_KEY: &str = "sk-mock-key";

/// A model answering at once, and one whose reply streams slowly, word by word.
pub(crate) const FAST_MODEL: &str = "mock-fast";
const SLOW_MODEL: &str = "mock-slow";
const SLOW_PROVIDER: &str = "mock-slow-provider";
const SLOW_MODEL_ID: &str = "slow-model-id";
/// What `X-Ares-Served-By` says of the slow model's answers.
const SLOW_SERVED_BY: &str = "mock-slow-provider/slow-model-id";
/// Streamed as one chunk per word, [`SLOW_CHUNK_DELAY`] apart.
pub(crate) const SLOW_REPLY: &str = "One two three four five six seven eight nine ten, said the slow mock.";
const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(200);

/// What every raw API key starts with (API.md §3.5).
const KEY_PREFIX: &str = "ares_";
/// Length of the listed key prefix: `ares_` + 8 hex.
const LISTED_PREFIX_LEN: usize = 13;

/// The page and everything it loads, compressed, must stay under this (issue 20).
const PAGE_WEIGHT_BUDGET: usize = 250_000;

/// A server with two mock providers behind it: [`FAST_MODEL`] and [`SLOW_MODEL`].
///
/// The mocks are dropped first, so a provider call still in flight fails at once instead of
/// holding up the server's shutdown.
pub(crate) struct Rig {
    fast: MockProvider,
    pub(crate) slow: MockProvider,
    pub(crate) server: TestServer,
}

impl Rig {
    pub(crate) fn start() -> Rig {
        Rig::start_with("")
    }

    pub(crate) fn start_with(extra: &str) -> Rig {
        let fast = MockProvider::start();
        fast.set_script(Script::reply("Fast answer.").usage(5, 2));
        let slow = MockProvider::start();
        slow.set_script(Script::reply(SLOW_REPLY).usage(12, 14).chunk_delay(SLOW_CHUNK_DELAY));
        let providers = format!(
            r#"
[[providers]]
name = "mock-fast-provider"
type = "openai"
base_url = "{fast_url}"
api_key_env = "{KEY_ENV}"
read_timeout_secs = 10
connect_timeout_secs = 2
max_retries = 0

[[providers]]
name = "{SLOW_PROVIDER}"
type = "openai"
base_url = "{slow_url}"
api_key_env = "{KEY_ENV}"
read_timeout_secs = 10
connect_timeout_secs = 2
max_retries = 0

[[models]]
name = "{FAST_MODEL}"
provider = "mock-fast-provider"
model_id = "fast-model-id"
tier = "fast"

[[models]]
name = "{SLOW_MODEL}"
provider = "{SLOW_PROVIDER}"
model_id = "{SLOW_MODEL_ID}"
tier = "balanced"
"#,
            fast_url = fast.base_url(Wire::OpenAi),
            slow_url = slow.base_url(Wire::OpenAi),
        );
        let server = TestServer::builder().env(KEY_ENV, PROVIDER_KEY).config(&providers).config(extra).start();
        Rig { fast, slow, server }
    }
}

/// What the console tests need of a server, in-process or the binary: where it is, and the
/// admin secret.
pub(crate) trait Served {
    fn url(&self, path: &str) -> String;
    fn admin_secret(&self) -> &str;
}

impl Served for TestServer {
    fn url(&self, path: &str) -> String {
        TestServer::url(self, path)
    }

    fn admin_secret(&self) -> &str {
        TestServer::admin_secret(self)
    }
}

impl Served for BinaryServer {
    fn url(&self, path: &str) -> String {
        BinaryServer::url(self, path)
    }

    fn admin_secret(&self) -> &str {
        BinaryServer::admin_secret(self)
    }
}

/// A tenant name no other test uses (tenant names are lowercase letters, digits and hyphens).
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Open the console and sign in as the admin; waits for the shell.
pub(crate) async fn sign_in_as_admin(b: &Browser, server: &impl Served) {
    b.goto(&server.url("/")).await;
    b.wait("form#signin").await;
    b.click("#signin-mode-admin").await;
    b.type_into("#admin-secret", server.admin_secret()).await;
    b.click("#signin-submit").await;
    b.wait("nav#nav").await;
    b.wait_text("#whoami", "\"Admin\"", |t| t.trim() == "Admin").await;
}

/// Go to `#/<page>` through its nav link and wait for its first data load.
pub(crate) async fn open_page(b: &Browser, page: &str) {
    b.click(&format!("nav#nav a[href=\"#/{page}\"]")).await;
    b.wait(&format!("[data-page=\"{page}\"][data-ready=\"1\"]")).await;
}

/// `GET /v1/agents` with `key`: the status.
async fn key_status(server: &TestServer, key: &str) -> u16 {
    server.v1(Method::GET, "/v1/agents", key).send().await.expect("GET /v1/agents").status().as_u16()
}

/// The `data-<attribute>` of the first row of `table` whose text (or first cell, with
/// `first_cell`) matches `text`, if any.
async fn row_id(b: &Browser, table: &str, attribute: &str, text: &str, first_cell: bool) -> Option<String> {
    let found = b
        .js(
            "const [table, attribute, text, firstCell] = arguments;
             const rows = [...document.querySelectorAll(table + ' tr[' + attribute + ']')];
             const row = rows.find(r => firstCell
                 ? (r.cells[0] && r.cells[0].innerText.trim() === text)
                 : r.innerText.includes(text));
             return row ? row.getAttribute(attribute) : null;",
            vec![json!(table), json!(attribute), json!(text), json!(first_cell)],
        )
        .await;
    found.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// The browser: the harness itself, then the console.

/// The harness works without the console: a page is read, and the browser's console log too.
#[tokio::test]
async fn harness_reads_a_page_and_the_browser_log() {
    with_browser(async |b| {
        b.goto("data:text/html,<title>t</title><p id=x>hi</p>").await;
        assert_eq!(b.text("#x").await, "hi");
        assert_eq!(b.js("return 40 + 2;", vec![]).await, json!(42));

        let marker = "harness-self-test-marker";
        b.js("console.error(arguments[0]); console.log('harness info line');", vec![json!(marker)]).await;
        let log = b.console_log().await;
        let severe =
            log.iter().find(|e| e.message.contains(marker)).unwrap_or_else(|| panic!("no {marker} in {log:?}"));
        assert_eq!(severe.level, "SEVERE", "{severe}");
        assert!(log.iter().any(|e| e.message.contains("harness info line") && e.level == "INFO"), "{log:?}");
        // The end-of-test check would otherwise (rightly) fail on it.
        b.expect_severe(marker);
        assert!(b.unexpected_severe().await.is_empty(), "{log:?}");

        let png = b.client().screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a screenshot is a PNG");
    })
    .await;
}

/// (a) A wrong admin secret is refused in words; the right one opens the shell as "Admin".
#[tokio::test]
async fn signing_in_as_admin_refuses_a_wrong_secret_in_words() {
    let rig = Rig::start();
    let server = &rig.server;
    with_browser(async |b| {
        // The console's request with the wrong secret fails with a 401, which Chromium logs as
        // "Failed to load resource: the server responded with a status of 401 (Unauthorized)".
        b.expect_severe("the server responded with a status of 401");
        b.goto(&server.url("/")).await;
        b.wait("form#signin").await;
        let admin_mode = b.js("return document.querySelector('#signin-mode-admin').checked;", vec![]).await;
        assert_eq!(admin_mode, json!(true), "admin mode is the default");
        b.wait("input#admin-secret[type=\"password\"]").await;
        assert!(!b.displayed_now("#email").await && !b.displayed_now("#password").await, "user fields hidden");
        b.click("#signin-mode-user").await;
        b.wait("#email").await;
        b.wait("#password").await;
        b.click("#signin-mode-admin").await;
        b.wait_hidden("#email").await;

        b.type_into("#admin-secret", "not-the-admin-secret").await;
        b.click("#signin-submit").await;
        let error = b.wait_text("#signin-error", "an error in words", |t| !t.trim().is_empty()).await;
        assert!(error.chars().filter(|c| c.is_alphabetic()).count() >= 5, "#signin-error has no words: {error:?}");
        assert!(!error.trim_start().starts_with('{'), "#signin-error shows raw JSON: {error:?}");
        let role = b.js("return document.querySelector('#signin-error').getAttribute('role');", vec![]).await;
        assert_eq!(role, json!("alert"), "#signin-error is an alert");
        assert!(!b.displayed_now("nav#nav").await, "no shell after a failed sign-in");

        b.type_into("#admin-secret", server.admin_secret()).await;
        b.click("#signin-submit").await;
        b.wait("nav#nav").await;
        b.wait_text("#whoami", "\"Admin\"", |t| t.trim() == "Admin").await;
        b.wait("main#page").await;
        b.wait_hidden("form#signin").await;
    })
    .await;
}

/// (b) A tenant made in the console, a key made for it and shown exactly once, which works
/// until it is revoked in the console.
#[tokio::test]
async fn tenants_and_keys_are_created_shown_once_and_revoked() {
    let rig = Rig::start();
    let server = &rig.server;
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;

        // The tenant.
        open_page(b, "tenants").await;
        let name = unique("console-co");
        b.type_into("#tenant-create #tenant-name", &name).await;
        b.select_value("#tenant-create #tenant-tier", "pro").await;
        // Gone if the page reloads: the row must appear without one.
        b.js("window.__consoleTestNoReload = true;", vec![]).await;
        b.click("#tenant-create-submit").await;
        let what = format!("a row named {name:?} in #tenant-table");
        let tenant_id =
            b.wait_until(&what, async || row_id(b, "table#tenant-table", "data-tenant-id", &name, true).await).await;
        let kept = b.js("return window.__consoleTestNoReload === true;", vec![]).await;
        assert_eq!(kept, json!(true), "the page reloaded to show the new tenant");
        let tenants = server.admin_get("/api/admin/tenants").await;
        let made = tenants["tenants"].as_array().unwrap().iter().find(|t| t["id"] == tenant_id.as_str()).cloned();
        let made = made.unwrap_or_else(|| panic!("row id {tenant_id} is no tenant: {tenants}"));
        assert_eq!((made["name"].as_str(), made["tier"].as_str()), (Some(name.as_str()), Some("pro")), "{made}");

        // A key for it, shown once.
        open_page(b, "keys").await;
        b.select_value("select#keys-tenant", &tenant_id).await;
        b.type_into("#key-create #key-name", "console-test-key").await;
        b.click("#key-create-submit").await;
        b.wait("#key-once").await;
        let raw = b.wait_text("#key-once code#key-raw", "a raw key", |t| !t.trim().is_empty()).await.trim().to_string();
        assert!(
            raw.starts_with(KEY_PREFIX) && raw.len() == 69 && raw[5..].bytes().all(|c| c.is_ascii_hexdigit()),
            "#key-raw is not a whole raw key: {raw:?}"
        );
        b.wait("#key-once #key-copy").await;
        assert_eq!(key_status(server, &raw).await, 200, "the key shown works");

        b.click("#key-once-dismiss").await;
        b.wait_until("the raw key to leave the page", async || {
            let text = b.body_text().await;
            (!text.contains(&raw)).then_some(())
        })
        .await;
        let html = b.js("return document.documentElement.outerHTML;", vec![]).await;
        assert!(!html.as_str().unwrap().contains(&raw), "the raw key is still in the page's HTML");
        let leftover =
            b.js("const k = document.querySelector('#key-raw'); return k ? k.textContent : '';", vec![]).await;
        assert_eq!(leftover, json!(""), "#key-raw is gone or empty after dismissing");

        let prefix = &raw[..LISTED_PREFIX_LEN];
        let what = format!("a row with prefix {prefix} in #key-table");
        let key_id =
            b.wait_until(&what, async || row_id(b, "table#key-table", "data-key-id", prefix, false).await).await;
        let keys = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/api-keys")).await;
        let listed = keys["keys"].as_array().unwrap().iter().find(|k| k["id"] == key_id.as_str()).cloned();
        let listed = listed.unwrap_or_else(|| panic!("row id {key_id} is no key of the tenant: {keys}"));
        assert_eq!(listed["prefix"], prefix, "{listed}");
        assert_eq!(listed["name"], "console-test-key", "{listed}");

        // A second key, left by navigating away: not shown again either.
        b.type_into("#key-create #key-name", "console-second-key").await;
        b.click("#key-create-submit").await;
        let second = b
            .wait_text("#key-once code#key-raw", "a second raw key", |t| {
                t.trim().starts_with(KEY_PREFIX) && t.trim() != raw
            })
            .await
            .trim()
            .to_string();
        open_page(b, "tenants").await;
        open_page(b, "keys").await;
        let text = b.body_text().await;
        assert!(!text.contains(&second), "the raw key is shown again after navigating away and back");
        let html = b.js("return document.documentElement.outerHTML;", vec![]).await;
        assert!(!html.as_str().unwrap().contains(&second), "the raw key is in the page's HTML after navigating back");

        // Revoked in the console: the key stops working.
        b.select_value("select#keys-tenant", &tenant_id).await;
        let revoke = format!("table#key-table tr[data-key-id=\"{key_id}\"] button.revoke");
        b.wait(&revoke).await;
        b.js("window.confirm = () => true;", vec![]).await;
        b.click(&revoke).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let status = key_status(server, &raw).await;
            if status == 401 {
                break;
            }
            assert!(Instant::now() < deadline, "the revoked key still answers {status} after {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(key_status(server, &second).await, 200, "revoking one key leaves the other working");
    })
    .await;
}

/// The request-log record of the playground's chat for `tenant_id`, once it is committed.
async fn logged_chat(server: &TestServer, tenant_id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = server.admin_get(&format!("/api/admin/requests?tenant_id={tenant_id}&limit=100")).await;
        let found = page["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["provider"] == SLOW_PROVIDER || r["model"] == SLOW_MODEL || r["model"] == SLOW_MODEL_ID);
        if let Some(record) = found {
            return record.clone();
        }
        assert!(Instant::now() < deadline, "no request of the playground's chat in the request log: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (c) The playground streams a slow answer as it arrives, and (d) that chat is in the request
/// log page, whose rows open their details.
#[tokio::test]
async fn the_playground_streams_an_answer_which_the_request_log_then_shows() {
    let rig = Rig::start();
    let server = &rig.server;
    let tenant = server.create_tenant(&unique("playground-co"), "pro").await;
    let tenant_id = tenant["id"].as_str().unwrap().to_string();
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;
        open_page(b, "playground").await;
        b.select_value("select#pg-tenant", &tenant_id).await;
        b.click("#pg-key-make").await;
        // The key loads the models the tenant may use.
        b.select_value("select#pg-target", SLOW_MODEL).await;
        let keys = server.admin_get(&format!("/api/admin/tenants/{tenant_id}/api-keys")).await;
        assert!(
            keys["keys"].as_array().unwrap().iter().any(|k| k["name"] == "console-playground"),
            "#pg-key-make made no key named console-playground: {keys}"
        );

        let question = "Count to ten, slowly please.";
        b.type_into("textarea#pg-input", question).await;
        b.click("#pg-send").await;

        // Sample the answer while it streams.
        let sample = "const all = document.querySelectorAll('#pg-transcript .msg.assistant');
                      const last = all[all.length - 1];
                      return last ? { text: last.textContent, done: last.getAttribute('data-done') } : null;";
        let mut partial_lengths: Vec<usize> = Vec::new();
        let started = Instant::now();
        let final_text = loop {
            let seen = b.js(sample, vec![]).await;
            if seen["done"] == "1" {
                break seen["text"].as_str().unwrap_or_default().to_string();
            }
            let length = seen["text"].as_str().map_or(0, |t| t.trim().len());
            if length > 0 && !partial_lengths.contains(&length) {
                partial_lengths.push(length);
            }
            assert!(
                started.elapsed() < WAIT,
                "the last .msg.assistant never got data-done=\"1\" within {WAIT:?}; last seen {seen}; lengths seen {partial_lengths:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!("streamed answer lengths seen before data-done: {partial_lengths:?}");
        assert!(
            partial_lengths.len() >= 2,
            "the answer did not grow while streaming: partial lengths seen before data-done {partial_lengths:?}"
        );
        assert_eq!(final_text.trim(), SLOW_REPLY, "the final .msg.assistant is the whole reply");
        let user_turns = b
            .js("return [...document.querySelectorAll('#pg-transcript .msg.user')].map(m => m.textContent.trim());", vec![])
            .await;
        assert!(user_turns.as_array().unwrap().iter().any(|t| t == question), "no .msg.user with the question: {user_turns}");
        b.wait_text("#pg-stats", SLOW_SERVED_BY, |t| t.contains(SLOW_SERVED_BY)).await;

        let calls = rig.slow.chat_requests();
        assert_eq!(calls.len(), 1, "the slow model was called once");
        assert!(calls[0].is_stream(), "the playground streams");
        assert!(calls[0].transcript().iter().any(|(role, text)| role == "user" && text == question));
        assert!(rig.fast.chat_requests().is_empty(), "the model not chosen was not called");

        // (d) The request log.
        let record = logged_chat(server, &tenant_id).await;
        let request_id = record["request_id"].as_str().unwrap().to_string();
        open_page(b, "requests").await;
        let row = format!("table#req-table tr[data-request-id=\"{request_id}\"]");
        b.wait_until(&format!("`{row}` (refreshing with #req-refresh)"), async || {
            if b.displayed_now(&row).await {
                return Some(());
            }
            b.click("#req-refresh").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        })
        .await;
        b.wait("input#req-filter-route").await;
        b.wait("select#req-filter-status").await;
        b.click(&row).await;
        let model = record["model"].as_str().unwrap_or(SLOW_MODEL).to_string();
        let detail = b.wait_text("#req-detail", "the request's details", |t| !t.trim().is_empty()).await;
        assert!(detail.contains(&model), "#req-detail does not name the model {model:?}: {detail:?}\nrecord: {record}");
    })
    .await;
}

/// (e) Signing out shows the sign-in form again and leaves nothing in sessionStorage.
#[tokio::test]
async fn signing_out_forgets_the_session() {
    let rig = Rig::start();
    let server = &rig.server;
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;
        let held = b.js("return sessionStorage.length;", vec![]).await;
        assert!(held.as_u64().unwrap_or(0) > 0, "the session is held in sessionStorage (contract), found none");

        b.click("button#signout").await;
        b.wait("form#signin").await;
        b.wait_hidden("nav#nav").await;
        let stored = b.js("return Object.keys(sessionStorage);", vec![]).await;
        assert_eq!(stored, json!([]), "sessionStorage after sign-out");

        // A reload does not sign in again.
        b.goto(&server.url("/")).await;
        b.wait("form#signin").await;
        assert!(!b.displayed_now("nav#nav").await, "a reload after sign-out shows the shell");
    })
    .await;
}

/// No horizontal scrolling in a 375 px wide window.
async fn assert_fits(b: &Browser, width: u64, when: &str) {
    let widths =
        b.js("return { scroll: document.documentElement.scrollWidth, inner: window.innerWidth };", vec![]).await;
    let scroll = widths["scroll"].as_u64().unwrap();
    assert!(scroll <= width, "{when}: the page scrolls sideways at {width} px (scrollWidth {scroll}): {widths}");
}

/// (f) At 375 px wide the sign-in form and the nav are usable.
#[tokio::test]
async fn the_console_is_usable_375_px_wide() {
    let rig = Rig::start();
    let server = &rig.server;
    with_browser(async |b| {
        b.set_window_size(375, 812).await;
        b.goto(&server.url("/")).await;
        let inner = b.js("return window.innerWidth;", vec![]).await.as_u64().unwrap();
        assert!(inner <= 375, "the window did not narrow to 375 px (innerWidth {inner})");

        b.wait("form#signin").await;
        for selector in ["#signin-mode-admin", "#signin-mode-user", "#admin-secret", "#signin-submit"] {
            b.wait(selector).await;
        }
        assert_fits(b, 375, "the sign-in form").await;
        let submit_right = b
            .js("return document.querySelector('#signin-submit').getBoundingClientRect().right;", vec![])
            .await
            .as_f64()
            .unwrap();
        assert!(submit_right <= 375.0, "#signin-submit reaches past the window: right edge {submit_right}");

        b.type_into("#admin-secret", server.admin_secret()).await;
        b.click("#signin-submit").await;
        b.wait_text("#whoami", "\"Admin\"", |t| t.trim() == "Admin").await;
        // A narrow window may fold the nav behind a disclosure button: the ARIA pattern, a
        // button that names what it controls (`aria-controls="nav"`) and says whether it is open.
        let toggle = "button[aria-controls=\"nav\"]";
        let folded = b
            .wait_until("nav#nav or a button[aria-controls=\"nav\"] to be displayed", async || {
                if b.displayed_now("nav#nav").await {
                    Some(false)
                } else if b.displayed_now(toggle).await {
                    Some(true)
                } else {
                    None
                }
            })
            .await;
        if folded {
            b.click(toggle).await;
            b.wait("nav#nav").await;
            let expanded = b
                .js("return document.querySelector(arguments[0]).getAttribute('aria-expanded');", vec![json!(toggle)])
                .await;
            assert_eq!(expanded, json!("true"), "the open nav's button says so (aria-expanded)");
        }
        let links = b
            .js(
                "return [...document.querySelectorAll('nav#nav a[href^=\"#/\"]')].map(a => a.getAttribute('href'));",
                vec![],
            )
            .await;
        let links: Vec<String> = links.as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect();
        assert!(links.len() >= 2, "nav#nav has page links: {links:?}");
        for link in &links {
            b.wait(&format!("nav#nav a[href=\"{link}\"]")).await;
        }
        assert_fits(b, 375, "the shell").await;
        open_page(b, "tenants").await;
        assert_fits(b, 375, "the tenants page").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP: how the console is served.

/// The directives of a Content-Security-Policy: name → sources.
fn csp_directives(policy: &str) -> Vec<(String, Vec<String>)> {
    policy
        .split(';')
        .filter_map(|directive| {
            let mut parts = directive.split_whitespace();
            let name = parts.next()?.to_ascii_lowercase();
            Some((name, parts.map(str::to_string).collect()))
        })
        .collect()
}

#[tokio::test]
async fn the_page_is_html_with_a_strict_csp_and_revalidates_by_etag() {
    let rig = Rig::start();
    let server = &rig.server;
    let response = server.get("/").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "GET / is {content_type:?}");
    let policy = header(&response, "content-security-policy").expect("a Content-Security-Policy header");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let directives = csp_directives(&policy);
    let script_src = directives.iter().find(|(name, _)| name == "script-src").map(|(_, s)| s.clone());
    let script_src = script_src.unwrap_or_else(|| panic!("no script-src in {policy}"));
    assert!(!script_src.iter().any(|s| s == "'unsafe-inline'"), "script-src allows inline scripts: {policy}");
    let etag = header(&response, "etag").expect("an ETag");
    let body = response.text().await.unwrap();
    assert!(body.to_ascii_lowercase().contains("<!doctype html>"), "{body}");

    let again = server.get("/").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "a repeat with If-None-Match: {etag}");
    assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    let other = server.get("/").header("if-none-match", "\"not-the-etag\"").send().await.unwrap();
    assert_eq!(other.status(), 200, "another ETag gets the page");
}

/// Resolve `reference` (from an attribute or an import) against the path `base` (a directory
/// ending in `/` or a file); `None` for other origins, fragments and `data:`.
fn resolve(base: &str, reference: &str) -> Option<String> {
    let reference = reference.split(['#', '?']).next().unwrap_or_default();
    if reference.is_empty() || reference.starts_with("//") || reference.contains(':') {
        return None;
    }
    let joined = if reference.starts_with('/') {
        reference.to_string()
    } else {
        let dir = &base[..=base.rfind('/').unwrap_or(0)];
        format!("{dir}{reference}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/').skip(1) {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The quoted values after each `needle` in `text` (e.g. `src=` → the attribute values).
fn quoted_after(text: &str, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        rest = &rest[at + needle.len()..];
        let trimmed = rest.trim_start();
        let Some(quote) = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'' || *c == '`') else { continue };
        if let Some(end) = trimmed[1..].find(quote) {
            found.push(trimmed[1..1 + end].to_string());
        }
    }
    found
}

/// The page's own `src`/`href` references, resolved against its `<base href>`.
fn page_references(html: &str) -> Vec<String> {
    let base = quoted_after(html, "<base href=").into_iter().next().unwrap_or_else(|| "/".to_string());
    let mut out = Vec::new();
    for needle in [" src=", " href="] {
        for reference in quoted_after(html, needle) {
            if let Some(path) = resolve(&base, &reference) {
                out.push(path);
            }
        }
    }
    out.retain(|p| p != &base);
    out
}

/// What a module (JS) or stylesheet (CSS) at `path` loads itself.
fn asset_references(path: &str, text: &str) -> Vec<String> {
    let mut specifiers = Vec::new();
    if path.ends_with(".js") || path.ends_with(".mjs") {
        for needle in ["from", "import", "import("] {
            specifiers.extend(quoted_after(text, needle));
        }
        // Only what is a module path: `./x.js`, `../x.js`, `/x.js` (words after `import` in
        // comments or strings are not).
        specifiers.retain(|s| (s.starts_with("./") || s.starts_with("../") || s.starts_with('/')) && !s.contains(' '));
    } else if path.ends_with(".css") {
        specifiers.extend(quoted_after(text, "@import"));
        let mut rest = text;
        while let Some(at) = rest.find("url(") {
            rest = &rest[at + 4..];
            let end = rest.find(')').unwrap_or(rest.len());
            specifiers.push(rest[..end].trim().trim_matches(['"', '\'']).to_string());
        }
    }
    specifiers.iter().filter_map(|s| resolve(path, s)).collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap_or_else(|e| panic!("not gzip: {e}"));
    out
}

/// `GET path` with `Accept-Encoding: gzip`: (status, content type, body as sent, body as text).
async fn fetch_gzip(server: &TestServer, path: &str) -> (u16, String, usize, String) {
    let response = server.get(path).header("accept-encoding", "gzip").send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type").unwrap_or_default();
    let encoding = header(&response, "content-encoding");
    let sent = response.bytes().await.unwrap();
    let plain = match encoding.as_deref() {
        Some("gzip") => gunzip(&sent),
        None => sent.to_vec(),
        Some(other) => panic!("{path}: unexpected Content-Encoding {other}"),
    };
    (status, content_type, sent.len(), String::from_utf8_lossy(&plain).into_owned())
}

#[tokio::test]
async fn the_page_and_its_assets_are_gzipped_and_weigh_under_250_kb() {
    let rig = Rig::start();
    let server = &rig.server;
    let plain = server.get("/").header("accept-encoding", "identity").send().await.unwrap();
    assert_eq!(header(&plain, "content-encoding"), None, "identity is not compressed");
    let plain = plain.text().await.unwrap();

    let packed = server.get("/").header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(packed.status(), 200);
    assert_eq!(header(&packed, "content-encoding").as_deref(), Some("gzip"), "GET / with Accept-Encoding: gzip");
    let vary = header(&packed, "vary").unwrap_or_default().to_ascii_lowercase();
    assert!(vary.contains("accept-encoding"), "a compressed answer varies by Accept-Encoding: {vary:?}");
    let packed = packed.bytes().await.unwrap();
    assert!(packed.starts_with(&[0x1f, 0x8b]), "the body is gzip");
    assert_eq!(String::from_utf8(gunzip(&packed)).unwrap(), plain, "gzip of the same page");

    // Everything the page loads, and everything that loads, once each.
    let mut total = packed.len();
    let mut sizes = vec![("/".to_string(), packed.len())];
    let mut queue = page_references(&plain);
    assert!(!queue.is_empty(), "the page references no asset: {plain}");
    let mut seen: Vec<String> = Vec::new();
    while let Some(path) = queue.pop() {
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        assert!(path.starts_with("/console/"), "the page loads {path}, outside /console/");
        let (status, content_type, size, text) = fetch_gzip(server, &path).await;
        assert_eq!(status, 200, "{path}, referenced by the console, is not served");
        if path.ends_with(".js") {
            assert!(
                content_type.starts_with("text/javascript") || content_type.starts_with("application/javascript"),
                "a module must be served as JavaScript: {path} is {content_type:?}"
            );
        } else if path.ends_with(".css") {
            assert!(content_type.starts_with("text/css"), "{path} is {content_type:?}");
        }
        total += size;
        sizes.push((path.clone(), size));
        queue.extend(asset_references(&path, &text));
    }
    println!("console page weight, compressed: {total} bytes: {sizes:?}");
    assert!(seen.iter().any(|p| p.ends_with(".js")), "the page loads no script: {seen:?}");
    assert!(
        total <= PAGE_WEIGHT_BUDGET,
        "the console weighs {total} bytes compressed (over {PAGE_WEIGHT_BUDGET}): {sizes:?}"
    );
}

#[tokio::test]
async fn head_answers_like_get_and_unknown_assets_are_404() {
    let rig = Rig::start();
    let server = &rig.server;
    let get = server.get("/").send().await.unwrap();
    let get_type = header(&get, "content-type");
    let get_etag = header(&get, "etag");
    let head = server.client().head(server.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD /");
    assert_eq!(header(&head, "content-type"), get_type, "HEAD / has GET's Content-Type");
    assert_eq!(header(&head, "etag"), get_etag, "HEAD / has GET's ETag");
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");

    let html = get.text().await.unwrap();
    let asset = page_references(&html).into_iter().find(|p| p.ends_with(".js")).expect("the page loads a script");
    let head = server.client().head(server.url(&asset)).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD {asset}");
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");

    let missing = server.get("/console/nope.js").send().await.unwrap();
    assert_eq!(missing.status(), 404, "an unknown console file");
}

#[tokio::test]
async fn a_public_base_path_serves_the_console_under_the_prefix_and_without_it() {
    let rig = Rig::start_with("[server]\npublic_base_path = \"/ares\"\n");
    let server = &rig.server;

    // A reverse proxy that passes the prefix on.
    let prefixed = server.get("/ares/").send().await.unwrap();
    assert_eq!(prefixed.status(), 200, "GET /ares/");
    let content_type = header(&prefixed, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "GET /ares/ is {content_type:?}");
    let html = prefixed.text().await.unwrap();
    assert!(html.contains("<base href=\"/ares/\">"), "GET /ares/ has no <base href=\"/ares/\">: {html}");
    let assets = page_references(&html);
    assert!(!assets.is_empty(), "the page references no asset: {html}");
    for asset in &assets {
        assert!(asset.starts_with("/ares/console/"), "under the prefix, the page loads {asset}");
        let status = server.get(asset).send().await.unwrap().status();
        assert_eq!(status, 200, "{asset} (under the prefix)");
    }
    let health = server.get("/ares/health").send().await.unwrap();
    assert_eq!(health.status(), 200, "GET /ares/health");

    // A reverse proxy that strips it.
    let stripped = server.get("/").send().await.unwrap();
    assert_eq!(stripped.status(), 200, "GET / with a public base path");
    let content_type = header(&stripped, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "GET / is {content_type:?}");
    let health = server.get("/health").send().await.unwrap();
    assert_eq!(health.status(), 200, "GET /health with a public base path");
}
