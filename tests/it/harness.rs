//! Servers for tests: the library served in-process ([`TestServer`]), the compiled binary as a
//! child process ([`BinaryServer`]), a CLI runner ([`run_cli`]) and response assertions.
//!
//! Nothing here touches the process environment or a fixed port: secrets reach the server
//! through an env-lookup closure (in-process) or an explicit child environment (binary), and
//! every listener binds 127.0.0.1:0.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The admin secret every server gets unless a test asks for generated secrets.
pub const ADMIN_SECRET: &str = "test-admin-secret";
/// A JWT signing secret of the required minimum length (32).
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef-0123";

/// Merged under every test's own config: the IP limiter out of the way (tests fire requests
/// much faster than a client would) and a short drain so a stuck connection cannot stall a test.
const BASE_CONFIG: &str = r#"
[server]
rate_limit_per_second = 10000
rate_limit_burst = 10000
shutdown_grace_secs = 5
"#;

/// Guard against hangs, not a performance assertion: how long a child may take to start or exit.
const PROCESS_GUARD: Duration = Duration::from_secs(30);

/// Deep-merge `extra` over `base` (tables merge key by key; any other value is replaced).
pub fn merge_toml(base: &str, extra: &str) -> String {
    fn merge_into(base: &mut toml::Table, extra: toml::Table) {
        for (key, value) in extra {
            match (base.get_mut(&key), value) {
                (Some(toml::Value::Table(into)), toml::Value::Table(from)) => merge_into(into, from),
                (_, value) => {
                    base.insert(key, value);
                }
            }
        }
    }
    let mut merged: toml::Table = base.parse().unwrap_or_else(|e| panic!("base config is not TOML: {e}\n{base}"));
    let extra: toml::Table = extra.parse().unwrap_or_else(|e| panic!("test config is not TOML: {e}\n{extra}"));
    merge_into(&mut merged, extra);
    toml::to_string(&merged).expect("a merged TOML table serializes")
}

fn default_env() -> HashMap<String, String> {
    HashMap::from([
        ("ADMIN_API_KEY".to_string(), ADMIN_SECRET.to_string()),
        ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
    ])
}

/// A reqwest client that ignores proxy settings of the developer's environment. The timeout is
/// a hang guard only.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(PROCESS_GUARD).build().expect("reqwest client builds")
}

/// Where a server keeps its data: a directory the server owns, or one the test owns.
enum DataDir {
    Owned(TempDir),
    Borrowed(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Owned(dir) => dir.path(),
            DataDir::Borrowed(path) => path,
        }
    }
}

/// Configures a [`TestServer`]; see [`TestServer::builder`].
pub struct TestServerBuilder {
    config: String,
    env: HashMap<String, String>,
    data_dir: Option<DataDir>,
    listener: Option<std::net::TcpListener>,
}

/// In-process servers log their warnings and errors into the test's captured output (shown only
/// when the test fails; `RUST_LOG` overrides the level): a 500 then says what failed, instead of
/// only `Internal server error`. The server's threads are spawned from the test's, so they
/// inherit its capture.
fn capture_server_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

impl TestServerBuilder {
    /// Merge `toml` over the config so far (so `[server]` may appear in several calls).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = merge_toml(&self.config, toml);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// No `ADMIN_API_KEY`/`JWT_SECRET`: the server generates both into `<data>/secrets/`.
    pub fn generated_secrets(mut self) -> Self {
        self.env.remove("ADMIN_API_KEY");
        self.env.remove("JWT_SECRET");
        self
    }

    /// Serve from `path` (which the test owns) instead of a fresh temporary directory.
    pub fn data_dir(mut self, path: &Path) -> Self {
        self.data_dir = Some(DataDir::Borrowed(path.to_path_buf()));
        self
    }

    /// Serve on `listener` (bound by the test, so its port can go into the config) instead of
    /// a fresh 127.0.0.1:0. A restart binds a fresh port again.
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Build the app and serve it on its own thread and runtime. Panics if it cannot start.
    pub fn start(self) -> TestServer {
        capture_server_logs();
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => DataDir::Owned(tempfile::tempdir().expect("temp data dir")),
        };
        let env = Arc::new(self.env);
        let lookup_env = env.clone();
        let lookup = move |name: &str| lookup_env.get(name).cloned();

        let loaded = ares::config::load_str(&self.config, "test.toml", &lookup)
            .unwrap_or_else(|e| panic!("test config rejected: {e}\n{}", self.config));
        // A typo in a test's config would otherwise silently test the defaults.
        let unknown: Vec<&String> = loaded.warnings.iter().filter(|w| w.contains("unknown key")).collect();
        assert!(unknown.is_empty(), "test config has unknown keys: {unknown:?}");

        // Where the server takes its admin secret from, in its order (API.md §3.6).
        let fallback_env = loaded.config.auth.api_key_env.clone();
        let built = ares::build_app(loaded.config, data_dir.path(), &lookup)
            .unwrap_or_else(|e| panic!("test server failed to start: {e}"));
        let from_env = ["ADMIN_API_KEY", fallback_env.as_str()].into_iter().find_map(|name| env.get(name).cloned());
        let admin_secret = match (&built.generated_admin_secret, from_env) {
            (Some((secret, _)), _) => secret.clone(),
            (None, Some(secret)) => secret,
            (None, None) => read_secret(data_dir.path(), "admin_secret"),
        };

        let listener = match self.listener {
            Some(listener) => listener,
            None => std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"),
        };
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Arc::new(built.app);
        let thread = std::thread::Builder::new()
            .name(format!("ares-test-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    ares::run(listener, app, async {
                        let _ = stopped.await;
                    })
                    .await
                })
            })
            .expect("spawn the server thread");

        TestServer {
            addr,
            admin_secret,
            client: http_client(),
            config: self.config,
            env,
            data_dir: Some(data_dir),
            running: Some(Running { stop, thread }),
        }
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn finish(self) {
        let _ = self.stop.send(());
        let outcome = self.thread.join();
        if std::thread::panicking() {
            return;
        }
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("server returned an error: {e}"),
            Err(_) => panic!("server thread panicked"),
        }
    }
}

/// The real server, in-process, on 127.0.0.1 with an ephemeral port and its own data dir.
/// Dropping it shuts it down gracefully.
pub struct TestServer {
    addr: SocketAddr,
    admin_secret: String,
    client: reqwest::Client,
    /// Kept so [`TestServer::restart`] serves the same config with the same environment.
    config: String,
    env: Arc<HashMap<String, String>>,
    /// `None` only transiently, while a restart moves it to the new server.
    data_dir: Option<DataDir>,
    running: Option<Running>,
}

impl TestServer {
    /// Defaults: [`ADMIN_SECRET`], [`JWT_SECRET`], a fresh temp data dir, a generous rate limit.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder { config: merge_toml(BASE_CONFIG, ""), env: default_env(), data_dir: None, listener: None }
    }

    pub fn start() -> TestServer {
        Self::builder().start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn admin_secret(&self) -> &str {
        &self.admin_secret
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.as_ref().expect("a running server has a data dir").path()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    /// A request to an admin route, with the admin secret.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).header("x-admin-secret", &self.admin_secret)
    }

    /// Create a tenant through the admin API, asserting 201; returns the tenant JSON.
    pub async fn create_tenant(&self, name: &str, tier: &str) -> Value {
        let response = self
            .admin(reqwest::Method::POST, "/api/admin/tenants")
            .json(&serde_json::json!({ "name": name, "tier": tier }))
            .send()
            .await
            .expect("create tenant request");
        let status = response.status();
        let body: Value = response.json().await.expect("tenant JSON");
        assert_eq!(status, 201, "creating tenant {name}: {body}");
        body
    }

    /// `GET` an admin route, asserting 200; returns the JSON body.
    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self.admin(reqwest::Method::GET, path).send().await.expect("admin GET request");
        expect_json(response, 200).await
    }

    /// Provision a client (tenant, template agents, API key) through the admin API, asserting
    /// 201; returns the response JSON (`tenant_id`, `raw_api_key`, ...).
    pub async fn provision(&self, name: &str, tier: &str, product_type: &str) -> Value {
        let body = serde_json::json!({
            "name": name, "tier": tier, "product_type": product_type, "api_key_name": format!("{name}-key"),
        });
        let response = self
            .admin(reqwest::Method::POST, "/api/admin/provision-client")
            .json(&body)
            .send()
            .await
            .expect("provision request");
        expect_json(response, 201).await
    }

    /// A request to a tenant route (`/v1/...`) with `key` as the bearer token.
    pub fn v1(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    /// Register a user, asserting 200; returns the response JSON (tokens and `user_id`).
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let response = self
            .client
            .post(self.url("/api/auth/register"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("register request");
        expect_json(response, 200).await
    }

    /// Graceful stop: signal, drain, close the store, join the server thread. Idempotent.
    ///
    /// Blocks the calling thread. An HTTP/2 client on the test's runtime cannot answer the
    /// server's shutdown handshake meanwhile, so drain would wait out the grace period; tests
    /// holding h2 connections use [`TestServer::shutdown_async`].
    pub fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            running.finish();
        }
    }

    /// [`TestServer::shutdown`] that keeps the test's runtime (and its connections) running.
    pub async fn shutdown_async(&mut self) {
        if let Some(running) = self.running.take() {
            tokio::task::spawn_blocking(move || running.finish()).await.expect("shutdown task");
        }
    }

    /// Shut down gracefully, then serve the same config and environment from the same data dir.
    pub fn restart(mut self) -> TestServer {
        self.shutdown();
        let builder = TestServerBuilder {
            config: self.config.clone(),
            env: self.env.as_ref().clone(),
            data_dir: self.data_dir.take(),
            listener: None,
        };
        builder.start()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read_secret(data_dir: &Path, file: &str) -> String {
    let path = data_dir.join("secrets").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_string()
}

/// Configures a [`BinaryServer`]; see [`BinaryServer::builder`].
pub struct BinaryServerBuilder {
    root: PathBuf,
    config: Option<String>,
    env: HashMap<String, String>,
}

impl BinaryServerBuilder {
    /// Merge `toml` over the config so far.
    pub fn config(mut self, toml: &str) -> Self {
        let base = self.config.take().unwrap_or_else(|| merge_toml(BASE_CONFIG, ""));
        self.config = Some(merge_toml(&base, toml));
        self
    }

    /// Pass no `--config`: with no `ares.toml` in the working directory, built-in defaults apply.
    pub fn no_config_file(mut self) -> Self {
        self.config = None;
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// No `ADMIN_API_KEY`/`JWT_SECRET` in the child's environment.
    pub fn generated_secrets(mut self) -> Self {
        self.env.remove("ADMIN_API_KEY");
        self.env.remove("JWT_SECRET");
        self
    }

    /// Spawn `ares --data-dir <root>/data [--config <root>/ares-test.toml] --port 0` and wait
    /// until it prints its listening line. Panics (with its stderr) if it exits first.
    pub fn start(self) -> BinaryServer {
        let data_dir = self.root.join("data");
        let mut command = ares_command(&self.root);
        command.arg("--data-dir").arg(&data_dir).args(["--port", "0"]);
        let mut config_path = None;
        if let Some(config) = &self.config {
            let path = self.root.join("ares-test.toml");
            std::fs::write(&path, config).expect("write the test config");
            command.arg("--config").arg(&path);
            config_path = Some(path);
        }
        command.envs(&self.env).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the ares binary");

        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_tx, line_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = stdout_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().expect("stdout lock").push(line.clone());
                let _ = line_tx.send(line);
            }
        });
        let pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut sink = sink.lock().expect("stderr lock");
                sink.push_str(&line);
                sink.push('\n');
            }
        });

        let prefix = format!("ares {} listening on http://", env!("CARGO_PKG_VERSION"));
        let deadline = Instant::now() + PROCESS_GUARD;
        let mut generated = None;
        let addr: SocketAddr = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match line_rx.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(secret) = line.strip_prefix("Generated an admin secret (shown once): ") {
                        generated = Some(secret.trim().to_string());
                    }
                    if let Some(addr) = line.strip_prefix(&prefix) {
                        break addr.trim().parse().unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    // The pipe is closed now, so the reader has everything the process wrote.
                    let _ = stderr_reader.join();
                    panic!(
                        "ares did not report listening ({status:?})\nstdout: {:?}\nstderr: {}",
                        stdout_lines.lock().expect("stdout lock"),
                        stderr.lock().expect("stderr lock")
                    );
                }
            }
        };

        let admin_secret = match (generated, self.env.get("ADMIN_API_KEY")) {
            (Some(secret), _) => secret,
            (None, Some(secret)) => secret.clone(),
            (None, None) => read_secret(&data_dir, "admin_secret"),
        };
        BinaryServer {
            child,
            addr,
            admin_secret,
            data_dir,
            config_path,
            stdout: stdout_lines,
            stderr,
            client: http_client(),
        }
    }
}

/// The compiled `ares` binary serving on an ephemeral port, for tests that need a real process:
/// signals, crashes, exit codes, start-up output.
pub struct BinaryServer {
    child: Child,
    addr: SocketAddr,
    admin_secret: String,
    data_dir: PathBuf,
    /// The file passed as `--config`, if any.
    config_path: Option<PathBuf>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    client: reqwest::Client,
}

impl BinaryServer {
    /// Data in `<root>/data`, config in `<root>/ares-test.toml`, working directory `root`.
    pub fn builder(root: &Path) -> BinaryServerBuilder {
        BinaryServerBuilder { root: root.to_path_buf(), config: Some(merge_toml(BASE_CONFIG, "")), env: default_env() }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// [`TestServer::provision`] against the binary: a tenant with its agents and API key,
    /// asserting 201.
    pub async fn provision(&self, name: &str, tier: &str, product_type: &str) -> Value {
        let body = serde_json::json!({
            "name": name, "tier": tier, "product_type": product_type, "api_key_name": format!("{name}-key"),
        });
        let response = self
            .client()
            .post(self.url("/api/admin/provision-client"))
            .header("x-admin-secret", self.admin_secret())
            .json(&body)
            .send()
            .await
            .expect("provision request");
        expect_json(response, 201).await
    }

    pub fn admin_secret(&self) -> &str {
        &self.admin_secret
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The config file the server was started with (`<root>/ares-test.toml`); panics when it
    /// was started without one.
    pub fn config_path(&self) -> &Path {
        self.config_path.as_deref().expect("the server was started with --config")
    }

    /// All of stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lock").clone()
    }

    /// Wait (within the hang guard) until stderr contains `needle`; returns all of stderr.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + PROCESS_GUARD;
        loop {
            let text = self.stderr.lock().expect("stderr lock").clone();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "stderr never contained {needle:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server")
    }

    /// Send `signal` (`INT`, `TERM`, …) through `kill`, without waiting.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// Wait (within the hang guard) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        wait_with_guard(&mut self.child)
    }

    /// SIGTERM (through `kill -TERM`, since the crate forbids `unsafe`), then wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed");
        wait_with_guard(&mut self.child)
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `ares` with a clean environment (only `PATH`), working in `dir`, so neither the developer's
/// variables nor a stray `./ares.toml` can leak in.
fn ares_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ares"));
    command.current_dir(dir).env_clear().stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

fn wait_with_guard(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PROCESS_GUARD;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the ares process did not exit within {PROCESS_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a finished CLI invocation printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Run `ares <args>` in `dir` with exactly `env` (plus `PATH`); panics if it does not exit
/// within the hang guard.
pub fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let mut command = ares_command(dir);
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn the ares binary");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = wait_with_guard(&mut child);
    CliOutput { status, stdout: stdout.join().expect("stdout reader"), stderr: stderr.join().expect("stderr reader") }
}

/// Assert the documented error envelope — JSON with a string `error` and the given `code` —
/// and return the body for further checks.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status();
    let content_type = header(&response, "content-type");
    let text = response.text().await.expect("error body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "error body must be JSON: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "no error message in {body}");
    assert_eq!(body["code"], code, "wrong code in {body}");
    body
}

/// Assert a JSON success response with `status`; return the body.
pub async fn expect_json(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status();
    let content_type = header(&response, "content-type");
    let text = response.text().await.expect("response body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "not JSON: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// A response header as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().expect("ASCII header").to_string())
}

/// How the Python SDK environment is made; named in the failure when it is missing.
pub const PYTHON_SETUP: &str = "tests/sdk/python_env.sh ensure";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter of `target/sdk-venv` (the official `openai`, `anthropic` and `mcp` SDKs);
/// panics with the set-up command when the venv is missing or was made from another
/// `requirements.txt`.
pub fn venv_python() -> PathBuf {
    let venv = repo_root().join("target/sdk-venv");
    let python = venv.join("bin/python");
    let installed = std::fs::read(venv.join("requirements.txt")).ok();
    let wanted = std::fs::read(repo_root().join("tests/sdk/requirements.txt")).expect("tests/sdk/requirements.txt");
    assert!(
        python.exists() && installed.is_some(),
        "no Python SDK environment at {}: run `{PYTHON_SETUP}` first (the README's test command does)",
        venv.display()
    );
    assert!(
        installed.as_ref() == Some(&wanted),
        "the Python SDK environment at {} is out of date with tests/sdk/requirements.txt: run `{PYTHON_SETUP}`",
        venv.display()
    );
    python
}

/// What a [`StubServer`] answers with.
pub type StubResponse = http::Response<http_body_util::Full<bytes::Bytes>>;

/// A fake peer over HTTP/1 on 127.0.0.1 (an OTLP receiver, a slow embedder), on its own thread
/// and runtime so it outlives the servers under test and their restarts; stopped (and its
/// answers still pending cancelled) when dropped.
pub struct StubServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StubServer {
    pub fn start<F, Fut>(answer: F) -> StubServer
    where
        F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = StubResponse> + Send + 'static,
    {
        StubServer::start_with("stub", move |request| {
            let reply = answer(request);
            async move { Ok::<_, std::convert::Infallible>(reply.await) }
        })
    }

    /// [`StubServer::start`] for peers that stream their answers or drop a connection (an
    /// `Err` closes it unanswered): the mock provider. `name` names the thread.
    pub fn start_with<F, Fut, B, E>(name: &str, answer: F) -> StubServer
    where
        F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<http::Response<B>, E>> + Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a stub server");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("stub server address");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        let stream = tokio::select! {
                            _ = &mut stopped => return,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                        };
                        let service = hyper::service::service_fn(answer.clone());
                        tokio::spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                // Dropping the runtime cancels every connection task: hung and paused answers
                // included, so a test never waits on them.
                drop(runtime);
            })
            .expect("spawn a stub server thread");
        StubServer { addr, stop: Some(stop), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
