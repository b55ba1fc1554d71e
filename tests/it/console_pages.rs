//! The console's pages beyond sign-in, tenants, keys and the admin playground (`console.rs`),
//! driven in headless Chromium (`browser.rs`) against the real server and the mock providers of
//! `console::Rig`: deployments streamed live and cancelled, knowledge in the user's and the
//! operator's view, every page of both views loading with data and without console errors,
//! accessibility checked by axe-core, the keyboard, errors in words, long tables paged 100 rows
//! at a time and a user's playground conversation resumed after a reload.

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, WAIT, with_browser};
use crate::console::{FAST_MODEL, Rig, SLOW_REPLY, open_page, sign_in_as_admin, unique};
use crate::harness::{BinaryServer, TestServer, expect_json};

/// What every test user signs in with.
const PASSWORD: &str = "console-test-password";

/// A deploy target printing [`DEPLOY_LINES`] numbered lines, one every 300 ms.
const COUNTING_TARGET: &str = r#"
[[deploy.targets]]
name = "counting"
description = "twenty numbered lines, 300 ms apart"
commands = ['i=1; while [ $i -le 20 ]; do echo "deploy-line $i"; i=$((i+1)); sleep 0.3; done']
"#;
const DEPLOY_LINES: u64 = 20;

/// The pages of each view, in nav order.
const ADMIN_PAGES: [&str; 9] =
    ["overview", "tenants", "keys", "playground", "agents", "requests", "knowledge", "deployments", "providers"];
const USER_PAGES: [&str; 3] = ["playground", "agents", "knowledge"];

/// Above this many bytes the console ingests a document through a job with progress.
const JOB_ABOVE: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Register a fresh user over HTTP; returns (email, access token).
async fn register_user(server: &TestServer) -> (String, String) {
    let email = format!("{}@example.com", unique("console-user"));
    let registered = server.register(&email, PASSWORD).await;
    let token = registered["access_token"].as_str().expect("an access token").to_string();
    (email, token)
}

/// Open the console and sign in as the user `email`; waits for the shell.
async fn sign_in_as_user(b: &Browser, server: &TestServer, email: &str) {
    b.goto(&server.url("/")).await;
    b.wait("form#signin").await;
    b.click("#signin-mode-user").await;
    b.type_into("#email", email).await;
    b.type_into("#password", PASSWORD).await;
    b.click("#signin-submit").await;
    b.wait("nav#nav").await;
    b.wait_text("#whoami", email, |t| t.trim() == email).await;
}

/// Watch the page (once per document): count each time a button stops being `aria-busy` (the
/// console's `busy()` wraps every action in it, so its end says the action finished, whatever
/// the outcome), and keep every text `#toast` showed, with its kind.
async fn instrument(b: &Browser) {
    b.js(
        "if (window.__consoleTest) return;
         const t = window.__consoleTest = { busyDone: {}, toasts: [] };
         new MutationObserver(records => {
             for (const r of records) {
                 if (r.oldValue !== null) t.busyDone[r.target.id || '?'] = (t.busyDone[r.target.id || '?'] || 0) + 1;
             }
         }).observe(document.body, { attributes: true, attributeFilter: ['aria-busy'], attributeOldValue: true, subtree: true });
         const toast = document.getElementById('toast');
         new MutationObserver(() => t.toasts.push({ text: toast.textContent, kind: toast.className }))
             .observe(toast, { childList: true, characterData: true, subtree: true });",
        vec![],
    )
    .await;
}

/// How many times the button `#id` finished being busy.
async fn busy_done(b: &Browser, id: &str) -> u64 {
    b.js("return (window.__consoleTest.busyDone[arguments[0]] || 0);", vec![json!(id)]).await.as_u64().unwrap_or(0)
}

/// Click the button `#id` and wait until the action it started has finished.
async fn click_and_finish(b: &Browser, id: &str) {
    let before = busy_done(b, id).await;
    b.click(&format!("#{id}")).await;
    let what = format!("the action of #{id} to finish");
    b.wait_until(&what, async || (busy_done(b, id).await > before).then_some(())).await;
}

/// Every text `#toast` showed since [`instrument`], as (text, kind).
async fn toasts(b: &Browser) -> Vec<(String, String)> {
    let seen = b.js("return window.__consoleTest.toasts;", vec![]).await;
    seen.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["text"].as_str().unwrap_or_default().to_string(), t["kind"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// The error toasts seen since [`instrument`].
async fn error_toasts(b: &Browser) -> Vec<String> {
    toasts(b).await.into_iter().filter(|(_, kind)| kind == "error").map(|(text, _)| text).collect()
}

/// `#toast`'s text if it is displayed.
async fn visible_toast(b: &Browser) -> Option<String> {
    let text =
        b.js("const t = document.querySelector('#toast'); return t && !t.hidden ? t.textContent : null;", vec![]).await;
    text.as_str().map(str::to_string)
}

/// Elements of the page that show an error: `.error` elements with text, and any displayed
/// element whose own text looks like a raw JSON body (`{"` …).
async fn visible_errors(b: &Browser) -> Vec<String> {
    let found = b
        .js(
            "const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
             const out = [];
             for (const e of document.querySelectorAll('#app .error')) {
                 if (shown(e) && e.textContent.trim()) out.push('.error: ' + e.textContent.trim());
             }
             for (const e of document.querySelectorAll('body *')) {
                 const own = [...e.childNodes].filter(n => n.nodeType === 3).map(n => n.data).join('').trim();
                 if (own.startsWith('{\"') && shown(e)) out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ': ' + own.slice(0, 200));
             }
             return out;",
            vec![],
        )
        .await;
    found.as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect()
}

/// The nav links' targets, in order.
async fn nav_links(b: &Browser) -> Vec<String> {
    let links =
        b.js("return [...document.querySelectorAll('nav#nav a')].map(a => a.getAttribute('href'));", vec![]).await;
    links.as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect()
}

/// The texts of the `.hit`s in `#kb-results`, and its whole text.
async fn search_results(b: &Browser) -> (Vec<String>, String) {
    let found = b
        .js(
            "const r = document.querySelector('#kb-results');
             return { hits: [...r.querySelectorAll('.hit')].map(h => h.innerText), text: r.innerText };",
            vec![],
        )
        .await;
    let hits = found["hits"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect();
    (hits, found["text"].as_str().unwrap_or_default().to_string())
}

/// Search the collection named in `#kb-collection` for `query` with `strategy`; returns the
/// `.hit` texts and the results' text once the search has finished.
async fn search(b: &Browser, query: &str, strategy: &str) -> (Vec<String>, String) {
    b.select_value("select#kb-strategy", strategy).await;
    b.type_into("input#kb-query", query).await;
    click_and_finish(b, "kb-search").await;
    search_results(b).await
}

/// Assert the first hit of a search contains `word` and shows a score.
fn assert_first_hit(hits: &[String], text: &str, word: &str, how: &str) {
    let first = hits.first().unwrap_or_else(|| panic!("{how}: no .hit in #kb-results, which says {text:?}"));
    assert!(first.to_lowercase().contains(word), "{how}: the first .hit does not contain {word:?}: {first:?}");
    let score = first.split("score ").nth(1).and_then(|rest| rest.split_whitespace().next());
    let score = score.unwrap_or_else(|| panic!("{how}: the first .hit shows no score: {first:?}"));
    assert!(score.parse::<f64>().is_ok(), "{how}: the first .hit's score {score:?} is no number: {first:?}");
}

/// Ingest what the form holds (click `#kb-ingest`); returns `#kb-progress-text` once done,
/// asserting it says "Added: 1 chunk." or "Added: N chunks." with N ≥ 2.
async fn ingest(b: &Browser) -> String {
    click_and_finish(b, "kb-ingest").await;
    let said = b.text("#kb-progress-text").await;
    let toast = visible_toast(b).await;
    assert!(said.starts_with("Added: "), "#kb-progress-text after ingesting says {said:?} (toast: {toast:?})");
    let counted = said.trim_start_matches("Added: ");
    let right = match counted.split_once(' ') {
        Some(("1", "chunk.")) => true,
        Some((n, "chunks.")) => n.replace(',', "").parse::<u64>().is_ok_and(|n| n >= 2),
        _ => false,
    };
    assert!(right, "no chunk count (with its plural) in {said:?}");
    said
}

/// Log a chat in the request log: a tenant key's chat with the fast model.
async fn chat_as_tenant(server: &TestServer, key: &str) {
    let body = json!({ "model": FAST_MODEL, "messages": [{ "role": "user", "content": "Hello there" }] });
    let response = server.v1(Method::POST, "/v1/chat/completions", key).json(&body).send().await.unwrap();
    expect_json(response, 200).await;
}

/// A tenant with one API key and one logged chat; returns (tenant id, raw key).
async fn tenant_with_a_chat(server: &TestServer, name: &str) -> (String, String) {
    let provisioned = server.provision(name, "pro", "generic").await;
    let id = provisioned["tenant_id"].as_str().expect("tenant id").to_string();
    let key = provisioned["raw_api_key"].as_str().expect("raw API key").to_string();
    chat_as_tenant(server, &key).await;
    (id, key)
}

/// A user's own data over HTTP: a collection with a document, and an agent of theirs.
async fn user_data(server: &TestServer, token: &str) {
    let doc =
        json!({ "collection": "user-notes", "content": "The user keeps notes about lighthouses.", "title": "Notes" });
    let response =
        server.client().post(server.url("/api/rag/ingest")).bearer_auth(token).json(&doc).send().await.unwrap();
    expect_json(response, 200).await;
    let agent = json!({ "name": "my-helper", "model": "balanced", "system_prompt": "You help.", "tools": [] });
    let response =
        server.client().post(server.url("/api/user/agents")).bearer_auth(token).json(&agent).send().await.unwrap();
    let status = response.status().as_u16();
    assert!((200..300).contains(&status), "creating a user agent: {status} {}", response.text().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Deployments.

/// A deploy's output shows up line by line while it runs; cancelling it ends it before all its
/// lines, the history lists it, and the server's own service row shows its logs. The server is
/// the binary: only `ares serve` keeps its recent log lines.
#[tokio::test]
async fn a_deploy_streams_its_output_live_and_is_cancelled_midway() {
    let root = tempfile::tempdir().unwrap();
    let server = &BinaryServer::builder(root.path()).config(COUNTING_TARGET).start();
    let admin_get = async |path: &str| {
        let request = server.client().get(server.url(path)).header("x-admin-secret", server.admin_secret());
        expect_json(request.send().await.unwrap(), 200).await
    };
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;
        instrument(b).await;
        open_page(b, "deployments").await;
        b.select_value("select#deploy-target", "counting").await;
        b.click("#deploy-start").await;
        b.wait("#deploy-live").await;

        let sample = "const out = document.querySelector('#deploy-output');
                      const status = document.querySelector('#deploy-status');
                      const live = document.querySelector('#deploy-live');
                      return { lines: out ? out.textContent.split('\\n').filter(l => l.startsWith('deploy-line ')).length : 0,
                               status: status ? status.textContent : null,
                               done: live ? (live.dataset.done || null) : null };";
        let mut counts: Vec<u64> = Vec::new();
        let started = Instant::now();
        while counts.len() < 2 {
            let seen = b.js(sample, vec![]).await;
            let lines = seen["lines"].as_u64().unwrap();
            if seen["status"] == "running" {
                if lines >= 1 && !counts.contains(&lines) {
                    counts.push(lines);
                }
            } else {
                assert!(
                    seen["status"].is_null(),
                    "#deploy-status left \"running\" before the output grew: {seen}; line counts seen {counts:?}"
                );
            }
            assert!(started.elapsed() < WAIT, "pre#deploy-output did not grow within {WAIT:?}: last {seen}; {counts:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("deploy output line counts seen while running: {counts:?}");

        click_and_finish(b, "deploy-cancel").await;
        b.wait_present("#deploy-live[data-done=\"1\"]").await;
        let ended = b.js(sample, vec![]).await;
        let status = ended["status"].as_str().unwrap_or_default().to_string();
        assert!(
            status != "running" && (status.contains("cancelled") || status.starts_with("failed")),
            "#deploy-status after cancelling: {status:?}"
        );
        let lines = ended["lines"].as_u64().unwrap();
        assert!(lines < DEPLOY_LINES, "all {DEPLOY_LINES} lines were printed: the cancel came too late ({ended})");

        let deploys = admin_get("/api/admin/deploys").await;
        let record = deploys["deploys"].as_array().unwrap().iter().find(|d| d["target"] == "counting").cloned();
        let record = record.unwrap_or_else(|| panic!("no deploy of target counting: {deploys}"));
        assert_eq!((record["status"].as_str(), record["note"].as_str()), (Some("failed"), Some("cancelled")), "{record}");
        let id = record["id"].as_str().unwrap();
        let row = format!("table#deploy-table tr[data-deploy-id=\"{id}\"]");
        b.wait_text(&row, "the cancelled deploy as failed", |t| t.contains("counting") && t.contains("failed")).await;

        // The server itself is a service, with its recent log lines.
        let service = "table#service-table tr[data-service=\"ares\"]";
        b.wait(service).await;
        b.click(&format!("{service} button")).await;
        b.wait("pre#service-log").await;
        let log = b.wait_text("pre#service-log", "the log lines", |t| !t.trim().is_empty() && t != "Loading…").await;
        println!("pre#service-log for ares: {:?}", log.chars().take(300).collect::<String>());
        let served = admin_get("/api/admin/services/ares/logs?lines=200").await;
        let first = served["lines"][0].as_str().unwrap_or_else(|| panic!("the server logged nothing: {served}"));
        assert!(log.contains(first), "pre#service-log lacks the first of the server's log lines {first:?}: {log:?}");
        assert!(log.contains("serving"), "pre#service-log lacks the server's start-up line: {log:?}");
        assert!(error_toasts(b).await.is_empty(), "error toasts: {:?}", error_toasts(b).await);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Knowledge.

/// A user adds pasted text, a document over 64 KB (with progress) and a file to their own
/// collections, and finds the rare word with every search strategy.
#[tokio::test]
async fn a_user_ingests_text_a_large_document_and_a_file_and_searches_every_way() {
    let rig = Rig::start();
    let server = &rig.server;
    let (email, _) = register_user(server).await;
    let dir = tempfile::tempdir().unwrap();
    with_browser(async |b| {
        sign_in_as_user(b, server, &email).await;
        instrument(b).await;
        open_page(b, "knowledge").await;

        // Pasted text, in a new collection, next to a document without the word.
        b.type_into("input#kb-collection", "field-notes").await;
        b.type_into("input#kb-title", "Heron notes").await;
        b.type_into("textarea#kb-content", "Herons stand in the shallows at dawn. Gulls argue over the pier.").await;
        ingest(b).await;
        b.type_into("input#kb-title", "Zephyrquill sighting").await;
        b.type_into(
            "textarea#kb-content",
            "On the third morning we saw a zephyrquill nesting in the reeds by the old mill.",
        )
        .await;
        ingest(b).await;
        b.wait("table#kb-table tr[data-collection=\"field-notes\"]").await;
        let row = b.text("table#kb-table tr[data-collection=\"field-notes\"]").await;
        assert!(row.contains("field-notes"), "the collection's row: {row:?}");

        for strategy in ["hybrid", "bm25", "semantic", "fuzzy"] {
            // Fuzzy matching is for typos: one letter dropped.
            let query = if strategy == "fuzzy" { "zephyrquil" } else { "zephyrquill" };
            let (hits, text) = search(b, query, strategy).await;
            assert_first_hit(&hits, &text, "zephyrquill", &format!("{strategy} search for {query:?}"));
        }

        // A document over 64 KB: an ingest job, with progress.
        let mut large = String::new();
        let mut section = 0;
        while large.len() <= JOB_ABOVE + 8 * 1024 {
            section += 1;
            let word = if section == 700 { " and a quorvantic lantern" } else { "" };
            large.push_str(&format!(
                "Section {section}: the harbour ledger records cargo {section}{word} arriving at dawn with the tide.\n"
            ));
        }
        assert!(large.len() > JOB_ABOVE);
        b.type_into("input#kb-collection", "harbour-ledger").await;
        b.type_into("input#kb-title", "Harbour ledger").await;
        b.js(
            "document.querySelector('#kb-content').value = arguments[0];
             const seen = window.__kbProgress = { texts: [], progressShown: false };
             const text = document.querySelector('#kb-progress-text');
             new MutationObserver(records => {
                 for (const r of records) for (const n of r.addedNodes) seen.texts.push(n.textContent);
             }).observe(text, { childList: true, characterData: true, subtree: true });
             const bar = document.querySelector('#kb-progress');
             new MutationObserver(() => { if (!bar.hidden) seen.progressShown = true; })
                 .observe(bar, { attributes: true, attributeFilter: ['hidden'] });",
            vec![json!(large)],
        )
        .await;
        let said = ingest(b).await;
        let progress = b.js("return window.__kbProgress;", vec![]).await;
        println!("large ingest: {said:?}; progress seen: {progress}");
        let texts: Vec<&str> = progress["texts"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let counted = texts.iter().any(|t| {
            let Some(rest) = t.strip_suffix(" chunks embedded") else { return false };
            let Some((x, y)) = rest.split_once(" of ") else { return false };
            x.replace(',', "").parse::<u64>().is_ok() && y.replace(',', "").parse::<u64>().is_ok()
        });
        assert!(
            counted || progress["progressShown"] == true,
            "neither \"x of y chunks embedded\" nor a <progress> was shown while the large document was added: {progress}"
        );
        let (hits, text) = search(b, "quorvantic", "bm25").await;
        assert_first_hit(&hits, &text, "quorvantic", "bm25 search of the large document");

        // A file.
        let path = dir.path().join("field-guide.txt");
        std::fs::write(&path, "The glimmerwick moth feeds only on night-blooming jasmine.\n").unwrap();
        b.type_into("input#kb-collection", "guides").await;
        b.wait_present("input#kb-title").await.clear().await.unwrap();
        b.wait_present("input#kb-file").await.send_keys(path.to_str().unwrap()).await.unwrap();
        ingest(b).await;
        b.wait("table#kb-table tr[data-collection=\"guides\"]").await;
        let (hits, text) = search(b, "glimmerwick", "hybrid").await;
        assert_first_hit(&hits, &text, "glimmerwick", "hybrid search of the file");
        assert!(hits[0].contains("field-guide.txt"), "the hit does not name the file: {:?}", hits[0]);

        for collection in ["field-notes", "harbour-ledger", "guides"] {
            b.wait(&format!("table#kb-table tr[data-collection=\"{collection}\"]")).await;
        }
        assert!(error_toasts(b).await.is_empty(), "error toasts: {:?}", error_toasts(b).await);
    })
    .await;
}

/// An operator works on a tenant's collections through its console key; another tenant's
/// search of the same collection name finds nothing.
#[tokio::test]
async fn an_operator_ingests_and_searches_a_tenants_collection_which_another_tenant_cannot_see() {
    let rig = Rig::start();
    let server = &rig.server;
    let owner = server.create_tenant(&unique("kb-owner"), "pro").await;
    let other = server.create_tenant(&unique("kb-other"), "pro").await;
    let (owner_id, other_id) = (owner["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;
        instrument(b).await;
        open_page(b, "knowledge").await;
        b.select_value("select#kb-tenant", owner_id).await;
        click_and_finish(b, "kb-key-make").await;
        b.wait_text("#kb-key-state", "that the tenant's key is in use", |t| t.starts_with("Working on")).await;
        let keys = server.admin_get(&format!("/api/admin/tenants/{owner_id}/api-keys")).await;
        assert!(
            keys["keys"].as_array().unwrap().iter().any(|k| k["name"] == "console-playground"),
            "#kb-key-make made no key: {keys}"
        );

        b.type_into("input#kb-collection", "handbook").await;
        b.type_into("input#kb-title", "Handbook").await;
        b.type_into("textarea#kb-content", "New staff collect a brassflint badge from the front desk on day one.")
            .await;
        ingest(b).await;
        for strategy in ["hybrid", "bm25"] {
            let (hits, text) = search(b, "brassflint", strategy).await;
            assert_first_hit(&hits, &text, "brassflint", &format!("the owner's {strategy} search"));
        }

        b.select_value("select#kb-tenant", other_id).await;
        b.wait_text("#kb-key-state", "that the tenant needs a key", |t| t.contains("needs a key")).await;
        click_and_finish(b, "kb-key-make").await;
        b.wait_text("#kb-key-state", "that the tenant's key is in use", |t| t.starts_with("Working on")).await;
        let (hits, text) = search(b, "brassflint", "hybrid").await;
        let toast = visible_toast(b).await;
        println!("the other tenant's search: results {text:?}, toast {toast:?}");
        assert!(
            hits.is_empty(),
            "after choosing the other tenant in #kb-tenant, its search of \"handbook\" (toast: {toast:?}) leaves \
             #kb-results showing .hit elements: {hits:?}"
        );
        if let Some(toast) = &toast {
            assert!(!toast.trim_start().starts_with('{'), "#toast shows raw JSON: {toast:?}");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Every page.

/// Per admin page, what its data shows once loaded (the data made by [`admin_data`]).
fn admin_page_shows(page: &str, tenant_id: &str) -> String {
    match page {
        "overview" => "svg.chart".to_string(),
        "tenants" => format!("table#tenant-table tr[data-tenant-id=\"{tenant_id}\"]"),
        "keys" => "table#key-table tr[data-key-id]".to_string(),
        "playground" => format!("select#pg-tenant option[value=\"{tenant_id}\"]"),
        "agents" => "table#tenant-agent-table".to_string(),
        "requests" => "table#req-table tr[data-request-id]".to_string(),
        "knowledge" => format!("select#kb-tenant option[value=\"{tenant_id}\"]"),
        "deployments" => "select#deploy-target option[value=\"counting\"]".to_string(),
        "providers" => "table#provider-table tr[data-provider=\"mock-slow-provider\"]".to_string(),
        other => panic!("no page {other}"),
    }
}

/// Visit every nav link, asserting each page loads, shows `shows(page)` and no error.
async fn visit_every_page(b: &Browser, pages: &[&str], shows: impl Fn(&str) -> String) {
    let expected: Vec<String> = pages.iter().map(|p| format!("#/{p}")).collect();
    assert_eq!(nav_links(b).await, expected, "the nav's links");
    for page in pages {
        open_page(b, page).await;
        b.wait_present(&shows(page)).await;
        let errors = visible_errors(b).await;
        assert!(errors.is_empty(), "#/{page} shows errors: {errors:?}");
        let severe = b.unexpected_severe().await;
        assert!(severe.is_empty(), "#/{page}: SEVERE console entries: {severe:?}");
    }
    let all = toasts(b).await;
    assert!(all.iter().all(|(text, _)| !text.trim_start().starts_with('{')), "a toast showed raw JSON: {all:?}");
    assert!(error_toasts(b).await.is_empty(), "error toasts while visiting every page: {all:?}");
}

#[tokio::test]
async fn every_admin_page_loads_its_data_without_errors() {
    let rig = Rig::start_with(COUNTING_TARGET);
    let server = &rig.server;
    let (tenant_id, _) = tenant_with_a_chat(server, &unique("every-page")).await;
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;
        instrument(b).await;
        visit_every_page(b, &ADMIN_PAGES, |page| admin_page_shows(page, &tenant_id)).await;
    })
    .await;
}

#[tokio::test]
async fn every_user_page_loads_its_data_without_errors() {
    let rig = Rig::start();
    let server = &rig.server;
    let (email, token) = register_user(server).await;
    user_data(server, &token).await;
    with_browser(async |b| {
        sign_in_as_user(b, server, &email).await;
        instrument(b).await;
        visit_every_page(b, &USER_PAGES, |page| {
            match page {
                "playground" => "select#pg-target option[value=\"my-helper\"]",
                "agents" => "table#user-agent-table tr[data-agent=\"my-helper\"]",
                "knowledge" => "table#kb-table tr[data-collection=\"user-notes\"]",
                other => panic!("no user page {other}"),
            }
            .to_string()
        })
        .await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Accessibility.

/// axe-core's WCAG 2 A and AA rules find nothing on the sign-in page and the main pages of both
/// views (with data on them).
#[tokio::test]
async fn axe_finds_no_wcag_a_or_aa_violations() {
    let rig = Rig::start();
    let server = &rig.server;
    let (tenant_id, _) = tenant_with_a_chat(server, &unique("axe-co")).await;
    let (email, token) = register_user(server).await;
    user_data(server, &token).await;
    with_browser(async |b| {
        let mut report: Vec<String> = Vec::new();
        let mut check = async |page: &str| {
            let violations = b.axe_violations(&["wcag2a", "wcag2aa"]).await;
            for v in &violations {
                let node = &v["nodes"][0];
                report.push(format!(
                    "{page}: {} ({}): {} — first node {} {} — {} [{} nodes]",
                    v["id"].as_str().unwrap_or("?"),
                    v["impact"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or("?"),
                    node["target"],
                    node["html"].as_str().unwrap_or_default(),
                    node["summary"].as_str().unwrap_or_default().replace('\n', " "),
                    v["nodes"].as_array().map_or(0, Vec::len),
                ));
            }
        };
        b.goto(&server.url("/")).await;
        b.wait("form#signin").await;
        check("sign-in").await;
        // The check can fail: an image without a text alternative is found.
        b.js(
            "const i = document.createElement('img'); i.id = 'axe-planted'; i.src = 'data:,'; document.body.append(i);",
            vec![],
        )
        .await;
        let planted = b.axe_violations(&["wcag2a", "wcag2aa"]).await;
        assert!(
            planted.iter().any(|v| v["id"] == "image-alt" && v["nodes"][0]["target"] == json!(["#axe-planted"])),
            "axe-core missed an <img> without alt: {planted:?}"
        );
        b.js("document.querySelector('#axe-planted').remove();", vec![]).await;

        b.type_into("#admin-secret", server.admin_secret()).await;
        b.click("#signin-submit").await;
        b.wait("nav#nav").await;
        for page in ["overview", "tenants", "keys", "playground", "requests", "knowledge"] {
            open_page(b, page).await;
            b.wait_present(&admin_page_shows(page, &tenant_id)).await;
            check(&format!("admin #/{page}")).await;
        }

        b.click("button#signout").await;
        b.wait("form#signin").await;
        b.click("#signin-mode-user").await;
        b.type_into("#email", &email).await;
        b.type_into("#password", PASSWORD).await;
        b.click("#signin-submit").await;
        b.wait_text("#whoami", &email, |t| t.trim() == email).await;
        for page in ["playground", "knowledge"] {
            open_page(b, page).await;
            check(&format!("user #/{page}")).await;
        }
        for line in &report {
            println!("axe violation: {line}");
        }
        assert!(report.is_empty(), "axe-core found {} WCAG 2 A/AA violations:\n{}", report.len(), report.join("\n"));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Keyboard.

/// Whether the focused element draws an outline.
async fn focus_outline(b: &Browser) -> String {
    let style = b.js("return getComputedStyle(document.activeElement).outlineStyle;", vec![]).await;
    style.as_str().unwrap_or_default().to_string()
}

/// Tab and Shift+Tab move through the sign-in form in order with a visible focus ring, Enter
/// in the secret field signs in, and Tab then reaches every nav link.
#[tokio::test]
async fn the_sign_in_form_and_the_nav_work_from_the_keyboard() {
    let rig = Rig::start();
    let server = &rig.server;
    with_browser(async |b| {
        b.goto(&server.url("/")).await;
        b.wait("form#signin").await;
        // The form focuses the secret field; Shift+Tab goes back to the mode radios (one tab
        // stop, the checked one), Tab forward through the field to the submit button.
        b.wait_until("#admin-secret to have focus", async || (b.focused().await == "#admin-secret").then_some(()))
            .await;
        b.press(Key::Tab, true).await;
        assert_eq!(b.focused().await, "#signin-mode-admin", "Shift+Tab from the secret field");
        let mut order = vec![b.focused().await];
        let mut outlines = vec![focus_outline(b).await];
        for _ in 0..2 {
            b.press(Key::Tab, false).await;
            order.push(b.focused().await);
            outlines.push(focus_outline(b).await);
        }
        assert_eq!(
            order,
            ["#signin-mode-admin", "#admin-secret", "#signin-submit"],
            "the Tab order of the sign-in form"
        );
        assert!(outlines.iter().all(|o| o != "none"), "focused elements without an outline: {order:?} → {outlines:?}");

        // The other mode's radio, by arrow key, brings its fields into the Tab order.
        b.press(Key::Tab, true).await;
        b.press(Key::Tab, true).await;
        assert_eq!(b.focused().await, "#signin-mode-admin");
        b.press(Key::Down, false).await;
        assert_eq!(b.focused().await, "#signin-mode-user", "ArrowDown in the mode radios");
        b.wait("#email").await;
        let mut user_order = Vec::new();
        for _ in 0..3 {
            b.press(Key::Tab, false).await;
            user_order.push(b.focused().await);
        }
        assert_eq!(user_order, ["#email", "#password", "#signin-submit"], "the Tab order in user mode");
        b.press(Key::Tab, true).await;
        b.press(Key::Tab, true).await;
        b.press(Key::Tab, true).await;
        assert_eq!(b.focused().await, "#signin-mode-user");
        b.press(Key::Up, false).await;
        assert_eq!(b.focused().await, "#signin-mode-admin", "ArrowUp in the mode radios");
        b.wait("#admin-secret").await;

        // Enter in the secret field signs in.
        b.press(Key::Tab, false).await;
        assert_eq!(b.focused().await, "#admin-secret");
        b.wait_present("#admin-secret").await.send_keys(server.admin_secret()).await.unwrap();
        b.press(Key::Enter, false).await;
        b.wait("nav#nav").await;
        b.wait_text("#whoami", "\"Admin\"", |t| t.trim() == "Admin").await;

        // Every nav link is a Tab stop, with a focus ring.
        let links: Vec<String> = nav_links(b).await.iter().map(|l| format!("a[href=\"{l}\"]")).collect();
        assert_eq!(links.len(), ADMIN_PAGES.len(), "{links:?}");
        let mut reached: Vec<String> = Vec::new();
        let mut path: Vec<String> = Vec::new();
        for _ in 0..60 {
            b.press(Key::Tab, false).await;
            let focused = b.focused().await;
            path.push(focused.clone());
            if links.contains(&focused) && !reached.contains(&focused) {
                let outline = focus_outline(b).await;
                assert_ne!(outline, "none", "{focused} has focus without an outline");
                reached.push(focused);
            }
            if reached.len() == links.len() {
                break;
            }
        }
        assert_eq!(reached, links, "nav links reached by Tab, in order (focus went {path:?})");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Errors in words.

/// The server's own words reach the page: an invalid tenant name, a wrong password.
#[tokio::test]
async fn errors_are_shown_in_the_servers_words_not_as_json() {
    let rig = Rig::start();
    let server = &rig.server;
    let (email, _) = register_user(server).await;
    with_browser(async |b| {
        // The deliberate 400 and 401 below, which Chromium logs as failed loads.
        b.expect_severe("the server responded with a status of 400");
        b.expect_severe("the server responded with a status of 401");
        sign_in_as_admin(b, server).await;
        instrument(b).await;
        open_page(b, "tenants").await;
        // The field's pattern would stop the form: the server's check is what is tested.
        b.js("document.querySelector('#tenant-name').removeAttribute('pattern');", vec![]).await;
        b.type_into("#tenant-create #tenant-name", "Bad Name!").await;
        click_and_finish(b, "tenant-create-submit").await;
        let toast = visible_toast(b).await.unwrap_or_else(|| panic!("no #toast after a refused tenant name"));
        assert!(toast.starts_with("Invalid tenant name"), "#toast says {toast:?}");
        let all = toasts(b).await;
        assert!(all.iter().all(|(text, _)| !text.trim_start().starts_with('{')), "a toast showed raw JSON: {all:?}");
        let role = b.js("return document.querySelector('#toast').getAttribute('role');", vec![]).await;
        assert_eq!(role, json!("alert"));
        let tenants = server.admin_get("/api/admin/tenants").await;
        assert_eq!(tenants["tenants"].as_array().unwrap().len(), 0, "a tenant was made: {tenants}");

        b.click("button#signout").await;
        b.wait("form#signin").await;
        b.click("#signin-mode-user").await;
        b.type_into("#email", &email).await;
        b.type_into("#password", "not-the-password").await;
        b.click("#signin-submit").await;
        let error = b.wait_text("#signin-error", "an error in words", |t| !t.trim().is_empty()).await;
        assert!(error.contains("Invalid credentials"), "#signin-error says {error:?}");
        assert!(!b.displayed_now("nav#nav").await, "no shell after a wrong password");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Long lists.

const MANY_TENANTS: usize = 1_050;

/// 1,050 tenants: the table shows 100 at a time with a pager, and Next shows the next 100.
#[tokio::test]
async fn a_thousand_tenants_are_paged_100_rows_at_a_time() {
    let rig = Rig::start();
    let server = &rig.server;
    let started = Instant::now();
    futures_util::stream::iter(0..MANY_TENANTS)
        .map(|i| async move { server.create_tenant(&format!("bulk-{i:04}"), "free").await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!("created {MANY_TENANTS} tenants in {:?}", started.elapsed());
    with_browser(async |b| {
        sign_in_as_admin(b, server).await;
        open_page(b, "tenants").await;
        let page = "return { ids: [...document.querySelectorAll('table#tenant-table tbody tr[data-tenant-id]')]
                                  .map(r => r.getAttribute('data-tenant-id')),
                             pager: [...document.querySelectorAll('.pager')].map(p => p.textContent.replace(/\\s+/g, ' ').trim()) };";
        let first = b.js(page, vec![]).await;
        let first_ids = first["ids"].as_array().unwrap().clone();
        assert_eq!(first_ids.len(), 100, "rows on page 1");
        let pager = first["pager"].to_string();
        assert!(pager.contains("Page 1 of 11") && pager.contains("1,050 rows"), ".pager says {pager}");

        b.click(".pager button:last-of-type").await;
        let what = "the pager to say \"Page 2 of 11\"";
        let second = b
            .wait_until(what, async || {
                let seen = b.js(page, vec![]).await;
                seen["pager"].to_string().contains("Page 2 of 11").then_some(seen)
            })
            .await;
        let second_ids = second["ids"].as_array().unwrap();
        assert_eq!(second_ids.len(), 100, "rows on page 2");
        assert!(second_ids.iter().all(|id| !first_ids.contains(id)), "page 2 repeats rows of page 1");
        let button = b.text(".pager button:last-of-type").await;
        assert_eq!(button.trim(), "Next", "the pager's last button");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The user's playground.

/// A user's streamed chat with the default agent is kept by the server: after a reload,
/// choosing the conversation shows both messages again.
#[tokio::test]
async fn a_users_playground_conversation_is_restored_after_a_reload() {
    let rig = Rig::start_with("[chat]\ndefault_agent = \"product\"\n");
    let server = &rig.server;
    let (email, token) = register_user(server).await;
    with_browser(async |b| {
        sign_in_as_user(b, server, &email).await;
        open_page(b, "playground").await;
        b.select_value("select#pg-target", "").await;
        let question = "What do you sell, in ten words?";
        b.type_into("textarea#pg-input", question).await;
        b.click("#pg-send").await;
        let done = "#pg-transcript .msg.assistant[data-done=\"1\"]";
        let answer = b.wait_text(done, "the whole reply", |t| !t.trim().is_empty()).await;
        assert_eq!(answer.trim(), SLOW_REPLY, "the streamed reply");
        let calls = rig.slow.chat_requests();
        assert_eq!(calls.len(), 1, "the default agent's model was called once");
        assert!(calls[0].is_stream(), "the user's playground streams");

        let response = server.client().get(server.url("/api/conversations")).bearer_auth(&token).send().await.unwrap();
        let conversations = expect_json(response, 200).await;
        let listed = conversations.as_array().unwrap();
        assert_eq!(listed.len(), 1, "one conversation kept by the server: {conversations}");
        let id = listed[0]["id"].as_str().unwrap().to_string();
        b.wait_present(&format!("select#pg-conversation option[value=\"{id}\"]")).await;

        // A reload: the session stays (sessionStorage), the transcript starts empty.
        b.goto(&server.url("/")).await;
        b.wait_text("#whoami", &email, |t| t.trim() == email).await;
        open_page(b, "playground").await;
        let shown = b.js("return document.querySelectorAll('#pg-transcript .msg').length;", vec![]).await;
        assert_eq!(shown, json!(0), "a fresh playground shows no messages");
        b.select_value("select#pg-conversation", &id).await;
        let what = "both messages restored in #pg-transcript";
        let restored = b
            .wait_until(what, async || {
                let messages = b
                    .js(
                        "return [...document.querySelectorAll('#pg-transcript .msg')]
                             .map(m => [m.classList.contains('user') ? 'user' : m.classList.contains('assistant') ? 'assistant' : m.className, m.textContent.trim()]);",
                        vec![],
                    )
                    .await;
                (messages.as_array().unwrap().len() >= 2).then_some(messages)
            })
            .await;
        assert_eq!(restored, json!([["user", question], ["assistant", SLOW_REPLY]]), "the restored transcript");
    })
    .await;
}

/// A user's access token is refreshed in the background before it expires (a minute ahead), so
/// a console left open keeps working: with 1-second tokens the tab holds a new one within a
/// refresh tick (15 s), and the pages still load their data with it.
#[tokio::test]
async fn a_users_access_token_is_refreshed_silently_before_it_expires() {
    let rig = Rig::start_with("[auth]\njwt_access_expiry = 1\n");
    let server = &rig.server;
    let (email, token) = register_user(server).await;
    user_data(server, &token).await;
    with_browser(async |b| {
        sign_in_as_user(b, server, &email).await;
        let held = async || {
            let session = b.js("return sessionStorage.getItem('ares.session')", vec![]).await;
            let session: Value = serde_json::from_str(session.as_str().expect("a stored session")).expect("JSON");
            session["access_token"].as_str().expect("an access token").to_string()
        };
        let first = held().await;
        let deadline = Instant::now() + Duration::from_secs(25);
        let mut refreshed = first.clone();
        while refreshed == first && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            refreshed = held().await;
        }
        assert_ne!(refreshed, first, "the access token was not refreshed within 25 s");
        let status = server
            .client()
            .get(server.url("/api/rag/collections"))
            .bearer_auth(&refreshed)
            .send()
            .await
            .expect("GET /api/rag/collections")
            .status();
        assert_eq!(status, 200, "the refreshed token works");
        open_page(b, "knowledge").await;
        b.wait("table#kb-table tr[data-collection=\"user-notes\"]").await;
        assert_eq!(b.text("#whoami").await.trim(), email, "still signed in");
    })
    .await;
}
