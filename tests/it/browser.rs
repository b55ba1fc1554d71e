//! Headless Chromium driven over W3C WebDriver, for the console tests (`console.rs`).
//!
//! Each [`Browser`] starts its own `chromedriver` on a free loopback port (a child in its own
//! process group, killed with everything it started when the browser is dropped) and opens one
//! session of headless Chromium with a fresh profile in a temporary directory. The client is
//! `fantoccini`, the well-kept W3C WebDriver client for Rust, used without TLS: chromedriver
//! speaks plain HTTP on 127.0.0.1.
//!
//! A test runs its body through [`Browser::run`], which on failure saves a screenshot to
//! `target/console-screenshots/<test name>.png` and prints its path, and at the end asserts that
//! the browser's console log (read from chromedriver's `POST /session/{id}/se/log`) has no
//! `SEVERE` entry but those the test said it expects ([`Browser::expect_severe`]).
//!
//! Without `/usr/bin/chromedriver` the tests fail, naming [`BROWSER_SETUP`]; they never skip.

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::{http_client, repo_root};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How the browser is installed; named in the failure when it is missing.
pub const BROWSER_SETUP: &str = "tests/browser/chromium_env.sh ensure";
/// Prints the path of axe-core's `axe.min.js`, which [`BROWSER_SETUP`] installs.
const AXE_PATH_COMMAND: &str = "tests/browser/chromium_env.sh";

/// How long a wait for the page may take before the test fails. A hang guard, generous for a
/// loaded two-core machine, not a performance assertion.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often waits poll the page.
pub const POLL: Duration = Duration::from_millis(40);
/// How long chromedriver may take to answer `/status`.
const DRIVER_START: Duration = Duration::from_secs(20);

/// The Chromium flags every session gets (plus `--user-data-dir`).
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// A `chromedriver` child process in its own process group.
struct ChromeDriver {
    child: Child,
    port: u16,
    /// The profile directory of the session, to find a browser that outlived the group kill.
    profile: PathBuf,
}

impl ChromeDriver {
    /// Start chromedriver on a free port and wait until its `/status` says it is ready.
    async fn start(profile: PathBuf) -> ChromeDriver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the console's browser tests need {CHROMIUM} and {CHROMEDRIVER}: run `{BROWSER_SETUP}` first"
        );
        let mut last_error = String::new();
        // The free port is found by binding and releasing it, so another process may take it in
        // between: try a few.
        for _ in 0..3 {
            let port = {
                let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
                probe.local_addr().expect("probe address").port()
            };
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command.spawn().unwrap_or_else(|e| panic!("spawn {CHROMEDRIVER}: {e} (run `{BROWSER_SETUP}`)"));
            let mut driver = ChromeDriver { child, port, profile: profile.clone() };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(e) => last_error = e,
            }
        }
        panic!("chromedriver never became ready: {last_error}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = http_client();
        let url = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{CHROMEDRIVER} exited with {status} before answering {url}"));
            }
            if let Ok(response) = client.get(&url).timeout(Duration::from_secs(2)).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{url} did not answer ready within {DRIVER_START:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The driver and what it started (the browser shares its process group unless it made
        // its own), by the group's id, which is the driver's pid.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A browser process that left the group still names our own profile directory.
        for pid in processes_using(&self.profile) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
}

/// Pids of the processes whose command line mentions `profile` (our own browser's).
fn processes_using(profile: &std::path::Path) -> Vec<u32> {
    let needle = profile.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
        })
        .collect()
}

/// One entry of the browser's console log, as chromedriver reports it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    /// `console-api`, `network`, `javascript`, ...
    pub source: String,
    pub message: String,
}

impl std::fmt::Display for LogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} {}] {}", self.level, self.source, self.message)
    }
}

/// A headless Chromium session and the chromedriver serving it. See the module docs.
pub struct Browser {
    client: Client,
    /// The test's name: the screenshot's file name.
    name: String,
    /// Every console entry read so far (chromedriver hands each out once).
    log: Mutex<Vec<LogEntry>>,
    /// Text of `SEVERE` entries the test expects (e.g. a deliberate 401 on a wrong password).
    expected_severe: Mutex<Vec<String>>,
    driver: ChromeDriver,
    /// Removed after the driver (and the browser) are gone.
    _profile: TempDir,
}

/// Whether an error from a WebDriver command means "try again": the element went away or is
/// not yet where it can be used.
fn transient(error: &CmdError) -> bool {
    matches!(
        error,
        CmdError::Standard(e) if matches!(
            e.error,
            ErrorStatus::NoSuchElement
                | ErrorStatus::StaleElementReference
                | ErrorStatus::ElementNotInteractable
                | ErrorStatus::ElementClickIntercepted
                | ErrorStatus::InvalidElementState
        )
    )
}

impl Browser {
    /// Start chromedriver and open a headless Chromium session. The test's name (for the
    /// screenshot) is the current thread's, which is the test's under `cargo test`.
    pub async fn start() -> Browser {
        let name =
            std::thread::current().name().unwrap_or("unnamed").rsplit("::").next().unwrap_or("unnamed").to_string();
        Browser::start_named(&name).await
    }

    pub async fn start_named(name: &str) -> Browser {
        let profile = tempfile::Builder::new().prefix("ares-console-chromium-").tempdir().expect("a profile dir");
        let driver = ChromeDriver::start(profile.path().to_path_buf()).await;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object") };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("open a headless Chromium session through {}: {e}", driver.url()));
        Browser {
            client,
            name: name.to_string(),
            log: Mutex::new(Vec::new()),
            expected_severe: Mutex::new(Vec::new()),
            driver,
            _profile: profile,
        }
    }

    /// Run the test's body. When it panics, save a screenshot (and print its path and the
    /// console log), close the session and panic again; when it succeeds, assert the console
    /// log has no unexpected `SEVERE` entry. Either way the session is closed.
    pub async fn run(self, body: impl AsyncFnOnce(&Browser)) {
        let outcome = AssertUnwindSafe(body(&self)).catch_unwind().await;
        match outcome {
            Ok(()) => {
                let severe = self.try_console_log().await.map(|log| self.unexpected(log));
                if !matches!(&severe, Ok(entries) if entries.is_empty()) {
                    self.save_screenshot().await;
                }
                self.close().await;
                match severe {
                    Ok(entries) => assert!(
                        entries.is_empty(),
                        "the browser console has SEVERE entries:\n{}",
                        entries.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
                    ),
                    Err(e) => panic!("could not read the browser console log: {e}"),
                }
            }
            Err(panic) => {
                self.save_screenshot().await;
                match self.try_console_log().await {
                    Ok(log) if log.is_empty() => {}
                    Ok(log) => {
                        println!("browser console log of {}:", self.name);
                        for entry in &log {
                            println!("  {entry}");
                        }
                    }
                    Err(e) => println!("could not read the browser console log of {}: {e}", self.name),
                }
                self.close().await;
                std::panic::resume_unwind(panic);
            }
        }
    }

    async fn close(self) {
        let Browser { client, driver, _profile, .. } = self;
        // Closing the session quits the browser; the driver goes when dropped.
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
    }

    /// Save a screenshot to `target/console-screenshots/<test name>.png` and print its path.
    pub async fn save_screenshot(&self) -> Option<PathBuf> {
        let dir = repo_root().join("target/console-screenshots");
        let path = dir.join(format!("{}.png", self.name));
        let taken = tokio::time::timeout(Duration::from_secs(10), self.client.screenshot()).await;
        match taken {
            Ok(Ok(png)) => {
                let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, png));
                match written {
                    Ok(()) => {
                        println!("screenshot of {}: {}", self.name, path.display());
                        Some(path)
                    }
                    Err(e) => {
                        println!("could not write the screenshot {}: {e}", path.display());
                        None
                    }
                }
            }
            Ok(Err(e)) => {
                println!("could not take a screenshot of {}: {e}", self.name);
                None
            }
            Err(_) => {
                println!("taking a screenshot of {} timed out", self.name);
                None
            }
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigate to `url` and wait until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) and return its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Resize the browser window (the viewport follows in headless mode).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap_or_else(|e| panic!("resize to {width}x{height}: {e}"));
    }

    /// A short account of the page for timeout messages: where it is and what it says.
    async fn page_state(&self) -> String {
        let state = self
            .client
            .execute(
                "const toast = document.querySelector('#toast');
                 const text = (document.body ? document.body.innerText : '').replace(/\\s+/g, ' ').trim();
                 return { url: location.href,
                          toast: toast && !toast.hidden ? toast.innerText : null,
                          text: text.length > 400 ? text.slice(0, 400) + '…' : text };",
                vec![],
            )
            .await;
        match state {
            Ok(state) => format!("page {} (toast: {}) shows: {:?}", state["url"], state["toast"], state["text"]),
            Err(e) => format!("(page state unreadable: {e})"),
        }
    }

    /// Poll `check` until it returns `Some`, failing after [`WAIT`] with `what` and the page's
    /// state in the message.
    pub async fn wait_until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {WAIT:?} waiting for {what}; {}", self.page_state().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first element matching `selector`, if any, without waiting.
    pub async fn find_now(&self, selector: &str) -> Option<Element> {
        match self.client.find(Locator::Css(selector)).await {
            Ok(element) => Some(element),
            Err(e) if transient(&e) => None,
            Err(e) => panic!("find `{selector}`: {e}"),
        }
    }

    /// Whether an element matching `selector` exists and is displayed, without waiting.
    pub async fn displayed_now(&self, selector: &str) -> bool {
        match self.find_now(selector).await {
            Some(element) => element.is_displayed().await.unwrap_or(false),
            None => false,
        }
    }

    /// Wait until an element matching `selector` exists (displayed or not).
    pub async fn wait_present(&self, selector: &str) -> Element {
        self.wait_until(&format!("`{selector}` to exist"), async || self.find_now(selector).await).await
    }

    /// Wait until an element matching `selector` exists and is displayed.
    pub async fn wait(&self, selector: &str) -> Element {
        let what = format!("`{selector}` to be displayed");
        self.wait_until(&what, async || {
            let element = self.find_now(selector).await?;
            element.is_displayed().await.unwrap_or(false).then_some(element)
        })
        .await
    }

    /// Wait until no element matching `selector` is displayed.
    pub async fn wait_hidden(&self, selector: &str) {
        let what = format!("`{selector}` to be hidden or gone");
        self.wait_until(&what, async || (!self.displayed_now(selector).await).then_some(())).await;
    }

    /// Wait for `selector` to be displayed, then click it (retrying while something covers it).
    pub async fn click(&self, selector: &str) {
        let what = format!("`{selector}` to take a click");
        self.wait_until(&what, async || {
            let element = self.find_now(selector).await?;
            if !element.is_displayed().await.unwrap_or(false) {
                return None;
            }
            match element.click().await {
                Ok(()) => Some(()),
                Err(e) if transient(&e) => None,
                Err(e) => panic!("click `{selector}`: {e}"),
            }
        })
        .await;
    }

    /// Wait for `selector` to be displayed, clear it and type `text` into it.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let what = format!("`{selector}` to take typing");
        self.wait_until(&what, async || {
            let element = self.find_now(selector).await?;
            if !element.is_displayed().await.unwrap_or(false) {
                return None;
            }
            let typed = match element.clear().await {
                Ok(()) => element.send_keys(text).await,
                Err(e) => Err(e),
            };
            match typed {
                Ok(()) => Some(()),
                Err(e) if transient(&e) => None,
                Err(e) => panic!("type into `{selector}`: {e}"),
            }
        })
        .await;
    }

    /// Choose the option with `value` in the `<select>` matching `selector`, waiting for the
    /// option to exist.
    pub async fn select_value(&self, selector: &str, value: &str) {
        let option = format!("{selector} option[value=\"{value}\"]");
        let what = format!("`{option}` to be chosen");
        self.wait_until(&what, async || {
            self.find_now(&option).await?;
            let select = self.find_now(selector).await?;
            match select.select_by_value(value).await {
                Ok(()) => Some(()),
                Err(e) if transient(&e) => None,
                Err(e) => panic!("choose {value:?} in `{selector}`: {e}"),
            }
        })
        .await;
        // WebDriver fires `input` and `change`; make sure the value took.
        let chosen = self.js("return document.querySelector(arguments[0]).value;", vec![json!(selector)]).await;
        assert_eq!(chosen, json!(value), "`{selector}` did not take the value {value:?}");
    }

    /// The rendered text of the element matching `selector` (waiting for it to exist).
    pub async fn text(&self, selector: &str) -> String {
        let element = self.wait_present(selector).await;
        match element.text().await {
            Ok(text) => text,
            // Re-rendered in between: read it again.
            Err(e) if transient(&e) => {
                self.wait_present(selector).await.text().await.unwrap_or_else(|e| panic!("text of `{selector}`: {e}"))
            }
            Err(e) => panic!("text of `{selector}`: {e}"),
        }
    }

    /// Wait until the text of `selector` satisfies `accept`; returns that text.
    pub async fn wait_text(&self, selector: &str, what: &str, accept: impl Fn(&str) -> bool) -> String {
        let description = format!("`{selector}` to show {what}");
        self.wait_until(&description, async || {
            let element = self.find_now(selector).await?;
            let text = element.text().await.ok()?;
            accept(&text).then_some(text)
        })
        .await
    }

    /// `document.body.innerText`.
    pub async fn body_text(&self) -> String {
        let text = self.js("return document.body ? document.body.innerText : '';", vec![]).await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// Press `key` on the keyboard (with Shift held when `shift`): the key goes to whatever has
    /// focus, as a person's would, not to an element the test picks.
    pub async fn press(&self, key: Key, shift: bool) {
        let mut keys = KeyActions::new("keyboard".to_string());
        if shift {
            keys = keys.then(KeyAction::Down { value: Key::Shift.into() });
        }
        keys = keys.then(KeyAction::Down { value: key.into() }).then(KeyAction::Up { value: key.into() });
        if shift {
            keys = keys.then(KeyAction::Up { value: Key::Shift.into() });
        }
        self.client.perform_actions(keys).await.unwrap_or_else(|e| panic!("press {key:?} (shift: {shift}): {e}"));
    }

    /// What has focus: `#id`, else `a[href="…"]`, else the tag name (`body` when nothing).
    pub async fn focused(&self) -> String {
        let focused = self
            .js(
                "const e = document.activeElement;
                 if (!e) return 'none';
                 if (e.id) return '#' + e.id;
                 if (e.tagName === 'A' && e.getAttribute('href')) return 'a[href=\"' + e.getAttribute('href') + '\"]';
                 return e.tagName.toLowerCase();",
                vec![],
            )
            .await;
        focused.as_str().unwrap_or_default().to_string()
    }

    /// Run axe-core (the real engine from npm, injected into the page once per document) on
    /// the whole document with the rules of `tags` (e.g. `wcag2a`); returns its violations,
    /// each `{id, impact, help, nodes: [{target, html, summary}]}`.
    pub async fn axe_violations(&self, tags: &[&str]) -> Vec<Value> {
        let loaded =
            self.js("return typeof window.axe === 'object' && typeof window.axe.run === 'function';", vec![]).await;
        if loaded != json!(true) {
            // As the body of the script itself: chromedriver runs it through the DevTools
            // protocol, which the page's CSP (no inline script, no eval) does not govern.
            let inject = format!("{}\n;return typeof window.axe;", axe_source());
            let kind = self.client.execute(&inject, vec![]).await.unwrap_or_else(|e| panic!("inject axe.min.js: {e}"));
            assert_eq!(kind, json!("object"), "axe.min.js did not define window.axe");
        }
        // A promise-returning script: chromedriver waits for it to settle.
        let result = self
            .js(
                "return axe.run(document, { runOnly: { type: 'tag', values: arguments[0] }, resultTypes: ['violations'] })
                   .then(r => ({
                       passed: r.passes.length,
                       violations: r.violations.map(v => ({
                           id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                           nodes: v.nodes.map(n => ({ target: n.target, html: n.html, summary: n.failureSummary })),
                       })),
                   }));",
                vec![json!(tags)],
            )
            .await;
        // A run that checked nothing would pass anything.
        assert!(result["passed"].as_u64().is_some_and(|n| n > 0), "axe.run passed no rule at all: {result}");
        result["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("axe.run answered no list of violations: {result}"))
            .clone()
    }

    /// The browser console entries so far (each read from chromedriver once and kept).
    pub async fn console_log(&self) -> Vec<LogEntry> {
        self.try_console_log().await.unwrap_or_else(|e| panic!("read the browser console log: {e}"))
    }

    async fn try_console_log(&self) -> Result<Vec<LogEntry>, String> {
        let fresh = self.read_driver_log().await?;
        let mut log = self.log.lock().expect("log lock");
        log.extend(fresh);
        Ok(log.clone())
    }

    /// New entries of chromedriver's browser log (`POST /session/{id}/se/log`, which hands each
    /// entry out once).
    async fn read_driver_log(&self) -> Result<Vec<LogEntry>, String> {
        let session = match self.client.session_id().await {
            Ok(Some(session)) => session,
            Ok(None) => return Err("no WebDriver session".to_string()),
            Err(e) => return Err(format!("no WebDriver session: {e}")),
        };
        let url = format!("{}/session/{session}/se/log", self.driver.url());
        let response = http_client()
            .post(&url)
            .json(&json!({ "type": "browser" }))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let body: Value = response.json().await.map_err(|e| format!("{url} answered no JSON: {e}"))?;
        let entries = body["value"].as_array().ok_or_else(|| format!("{url} answered no log entries: {body}"))?;
        let text = |entry: &Value, key: &str| entry[key].as_str().unwrap_or_default().to_string();
        Ok(entries
            .iter()
            .map(|entry| LogEntry {
                level: text(entry, "level"),
                source: text(entry, "source"),
                message: text(entry, "message"),
            })
            .collect())
    }

    /// Say that `SEVERE` entries containing `needle` are expected (e.g. the console's request
    /// that a wrong secret makes fail with a 401, which Chromium logs as a failed load).
    pub fn expect_severe(&self, needle: &str) {
        self.expected_severe.lock().expect("expected lock").push(needle.to_string());
    }

    /// `SEVERE` entries of the log so far that no [`Browser::expect_severe`] covers.
    pub async fn unexpected_severe(&self) -> Vec<LogEntry> {
        let log = self.console_log().await;
        self.unexpected(log)
    }

    fn unexpected(&self, log: Vec<LogEntry>) -> Vec<LogEntry> {
        let expected = self.expected_severe.lock().expect("expected lock").clone();
        log.into_iter()
            .filter(|e| e.level == "SEVERE" && !expected.iter().any(|needle| e.message.contains(needle)))
            .collect()
    }
}

/// The source of axe-core's `axe.min.js`, read once from the path `chromium_env.sh axe` prints.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let script = repo_root().join(AXE_PATH_COMMAND);
        let output = Command::new(&script)
            .arg("axe")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} axe: {e} (run `{BROWSER_SETUP}`)", script.display()));
        assert!(
            output.status.success(),
            "axe-core is not installed: {} (run `{BROWSER_SETUP}`)",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e} (run `{BROWSER_SETUP}`)"))
    })
}

/// Run `body` against a fresh browser named after the current test: [`Browser::start`] then
/// [`Browser::run`].
pub async fn with_browser(body: impl AsyncFnOnce(&Browser)) {
    Browser::start().await.run(body).await;
}
